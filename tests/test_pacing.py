"""The pacer: one connection's flood of tiny messages takes turns with the others."""

from __future__ import annotations

import asyncio
import time

import pytest

from rtmpx.pacing import TURN, Flusher, Pacer

#: Bytes the fake session below reads per call (a real one: BATCH messages).
STEP = 8192


class Recorder:
    """A session that reads at most STEP bytes per call and holds the rest,
    as a chunk reader bounded by ``max_messages`` does."""

    def __init__(self, cost: float = 0.0, stop_after: int | None = None) -> None:
        self.cost = cost
        self.got = bytearray()
        self.held = bytearray()
        self.calls = 0
        self.holds: list[bool] = []
        self.stop_after = stop_after

    def handle(self, data: bytes | bytearray | memoryview) -> int:
        self.held += data
        self.got += self.held[:STEP]
        del self.held[:STEP]
        self.calls += 1
        if self.cost:
            time.sleep(self.cost)
        if self.stop_after is not None and self.calls >= self.stop_after:
            return -1
        return len(self.held)

    def hold(self, on: bool) -> None:
        self.holds.append(on)


async def test_a_long_read_is_spread_over_loop_turns() -> None:
    """Issue 8: thousands of messages in one read were all processed in one
    go, and everyone else waited seconds."""
    rec = Recorder(cost=TURN / 2)
    pacer = Pacer(rec.handle, rec.hold)
    data = bytes(range(256)) * (40 * STEP // 256)
    others: list[int] = []

    async def someone_else() -> None:
        for _ in range(50):
            others.append(rec.calls)
            await asyncio.sleep(0)

    task = asyncio.create_task(someone_else())
    await asyncio.sleep(0)
    pacer.feed(data)
    assert rec.calls <= 4 and rec.holds == [True]  # reading paused, the rest waits
    assert pacer.waiting == len(data) - len(rec.got)
    pacer.feed(b"more")                               # a read that raced the pause
    await task
    while pacer.waiting:
        await asyncio.sleep(0)
    assert bytes(rec.got) == data + b"more"
    assert rec.holds.count(False) == rec.holds.count(True)  # reading resumed
    assert len(set(others)) > 5  # the other task ran between the turns


async def test_a_read_the_session_takes_at_once_is_one_call() -> None:
    rec = Recorder()
    pacer = Pacer(rec.handle, rec.hold)
    pacer.feed(b"x" * STEP)
    assert rec.calls == 1 and not rec.holds and not pacer.waiting
    pacer.feed(b"y" * (3 * STEP))   # a large read of cheap messages: calls until done
    assert rec.calls == 4 and not rec.holds and not pacer.waiting


async def test_finish_delivers_the_backlog_and_a_gone_connection_stops_it() -> None:
    rec = Recorder(cost=TURN)
    pacer = Pacer(rec.handle, rec.hold)
    data = b"y" * (10 * STEP)
    pacer.feed(data)
    assert pacer.waiting
    pacer.feed(b"late")
    pacer.finish()  # the connection is lost: what came before is still handled
    assert bytes(rec.got) == data + b"late" and not pacer.waiting
    gone = Recorder(stop_after=2)
    pacer = Pacer(gone.handle, gone.hold)
    pacer.feed(data)
    assert gone.calls == 2 and not pacer.waiting


class Flushed:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def flush(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("a bug")


async def test_the_flusher_flushes_each_due_connection_once_per_tick() -> None:
    log: list[str] = []
    a, b, bad = Flushed(log, "a"), Flushed(log, "b"), Flushed(log, "bad", fail=True)
    flusher = Flusher(0.01)
    flusher.due(a)
    flusher.due(bad)   # a failing flush costs only its own connection
    flusher.due(b)
    assert log == []   # nothing before the tick
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_later(0.05, done.set_result, None)
    await done
    assert log == ["a", "bad", "b"]
    flusher.due(a)
    flusher.close()    # shutting down: what is due goes now
    assert log[-1] == "a"


def test_a_flush_interval_is_a_short_positive_time() -> None:
    for bad in (0, -1, 2):
        with pytest.raises(ValueError):
            Flusher(bad)


async def test_a_read_from_inside_the_handling_of_one_comes_after_it() -> None:
    """A transport closed while a read is handled may read on at once (asyncio's
    TLS shutdown does): that read waits for the current one, in order."""
    got: list[bytes] = []
    pacer: Pacer

    def handle(data: bytes | bytearray | memoryview) -> int:
        got.append(bytes(data))
        if bytes(data) == b"first":
            pacer.feed(b"inner")      # re-entered
            got.append(b"first-done")
        return 0

    pacer = Pacer(handle, lambda on: None)
    pacer.feed(b"first")
    assert got == [b"first", b"first-done", b"inner"] and not pacer.waiting
