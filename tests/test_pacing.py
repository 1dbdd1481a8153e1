"""The pacer: one connection's flood of tiny messages takes turns with the others."""

from __future__ import annotations

import asyncio
import time

from rtmpx.pacing import SLICE, TURN, Pacer


class Recorder:
    def __init__(self, cost: float = 0.0, stop_after: int | None = None) -> None:
        self.cost = cost
        self.got = bytearray()
        self.slices = 0
        self.holds: list[bool] = []
        self.stop_after = stop_after

    def handle(self, data: memoryview) -> bool:
        assert len(data) <= SLICE
        self.got += data
        self.slices += 1
        if self.cost:
            time.sleep(self.cost)
        return self.stop_after is None or self.slices < self.stop_after

    def hold(self, on: bool) -> None:
        self.holds.append(on)


async def test_a_long_read_is_spread_over_loop_turns() -> None:
    """Issue 8: thousands of messages in one read were all processed in one
    go, and everyone else waited seconds."""
    rec = Recorder(cost=TURN / 2)
    pacer = Pacer(rec.handle, rec.hold)
    data = bytes(range(256)) * (40 * SLICE // 256)
    others: list[int] = []

    async def someone_else() -> None:
        for _ in range(50):
            others.append(rec.slices)
            await asyncio.sleep(0)

    task = asyncio.create_task(someone_else())
    await asyncio.sleep(0)
    pacer.feed(data)
    assert rec.slices <= 4 and rec.holds == [True]  # reading paused, the rest waits
    pacer.feed(b"more")                               # a read that raced the pause
    await task
    while pacer.waiting:
        await asyncio.sleep(0)
    assert bytes(rec.got) == data + b"more"
    assert rec.holds.count(False) == rec.holds.count(True)  # reading resumed
    assert len(set(others)) > 5  # the other task ran between the turns


async def test_small_reads_go_straight_through() -> None:
    rec = Recorder()
    pacer = Pacer(rec.handle, rec.hold)
    pacer.feed(b"x" * SLICE)
    assert rec.slices == 1 and not rec.holds and not pacer.waiting


async def test_finish_delivers_the_backlog_and_a_gone_connection_stops_it() -> None:
    rec = Recorder(cost=TURN)
    pacer = Pacer(rec.handle, rec.hold)
    data = b"y" * (10 * SLICE)
    pacer.feed(data)
    assert pacer.waiting
    pacer.finish()  # the connection is lost: what came before is still handled
    assert bytes(rec.got) == data and not pacer.waiting
    gone = Recorder(stop_after=2)
    pacer = Pacer(gone.handle, gone.hold)
    pacer.feed(data)
    assert gone.slices == 2 and not pacer.waiting
