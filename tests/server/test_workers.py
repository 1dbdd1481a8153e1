"""``rtmpx serve --workers 2``: real processes on one port (SO_REUSEPORT).

The kernel spreads connections over the workers as it likes: each test
opens connections until the stats show one on every worker it needs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rtmpx
from rtmpx.errors import StatusError
from rtmpx.flv import read_tags

from ..peers import free_port, publish_frames

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT: Linux"),
]

KEYINT = 10


class Cluster:
    """``rtmpx serve --workers 2`` in a subprocess, with its stats endpoint."""

    def __init__(self, tmp: Path, *extra: str, workers: int = 2) -> None:
        self.port, self.stats_port = free_port(), free_port()
        self.record = tmp / "rec"
        self.log = (tmp / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtmpx", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers),
             "--stats-port", str(self.stats_port), "--record", str(self.record), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline().decode()
        assert "with 2 workers" in banner, banner
        self.url = f"rtmp://127.0.0.1:{self.port}/live/s"

    def stats_now(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats",
                                    timeout=10) as answer:
            found: dict[str, Any] = json.loads(answer.read())
        return found

    async def stats(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.stats_now)

    async def until(self, predicate: Any) -> dict[str, Any]:
        """The stats, once ``predicate(stats)`` holds (polled)."""
        for _ in range(400):
            stats = await self.stats()
            if predicate(stats):
                return stats
            await asyncio.sleep(0.05)
        raise AssertionError(f"stats never matched: {stats}")

    def stop(self) -> int:
        """SIGTERM, and the exit code (killed if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self.log.close()
        return code


@contextlib.contextmanager
def cluster(tmp: Path, *extra: str) -> Iterator[Cluster]:
    running = Cluster(tmp, *extra)
    try:
        yield running
    finally:
        running.stop()


def worker_of(stats: dict[str, Any], before: dict[str, Any]) -> int | None:
    """The worker whose connections grew since ``before``."""
    was = {w["index"]: w["connections"] for w in before["workers"]}
    grown = [w["index"] for w in stats["workers"] if w["connections"] > was.get(w["index"], 0)]
    return grown[0] if len(grown) == 1 else None


async def play_numbers(url: str, started: asyncio.Event) -> list[tuple[int, bool]]:
    """The video frames a player gets until the unpublish: (number, keyframe)."""
    frames: list[tuple[int, bool]] = []
    async with rtmpx.connect(url) as client:
        stream = client.play()
        await stream
        started.set()
        async with asyncio.timeout(60):
            async for item in stream:
                if isinstance(item, rtmpx.Frame) and item.kind == "video" \
                        and not item.is_sequence_header:
                    frames.append((int.from_bytes(item.payload[5:9], "big"), item.is_keyframe))
    return frames


async def open_players(c: Cluster, at_least: int) -> tuple[list[asyncio.Task[Any]], list[int]]:
    """Players waiting for ``live/s``, until every worker has one (and
    ``at_least`` are open); the worker of each."""
    tasks: list[asyncio.Task[Any]] = []
    workers: list[int] = []
    while len(tasks) < at_least or len(set(workers)) < 2:
        assert len(tasks) < 40, f"the kernel put every player on one worker: {workers}"
        started = asyncio.Event()
        tasks.append(asyncio.create_task(play_numbers(c.url, started)))
        await started.wait()
        opened = len(tasks)
        stats = await c.until(lambda s, n=opened: s["players"] == n)
        seen = [p["worker"] for s in stats["streams"] for p in s["players"]]
        workers = sorted(seen)
    return tasks, workers


def check_frames(frames: list[tuple[int, bool]], total: int) -> None:
    """From a keyframe on, every frame, in order, to the last one."""
    assert frames, "no frames"
    first, key = frames[0]
    assert key and first % KEYINT == 0, frames[:3]
    assert [n for n, _ in frames] == list(range(first, total)), frames


def test_players_on_every_worker_get_every_frame_and_stats_add_up(tmp_path: Path) -> None:
    total = 120

    async def main(c: Cluster) -> None:
        players, workers = await open_players(c, 6)
        publisher = asyncio.create_task(
            publish_frames(c.url, total, keyint=KEYINT, interval=0.01))
        stats = await c.until(lambda s: s["publishers"] == 1)
        (stream,) = stats["streams"]   # listed once, though played on both workers
        assert stream["key"] == "live/s" and stream["live"]
        owner = stream["publisher"]["worker"]
        assert owner in (0, 1)
        assert sorted(p["worker"] for p in stream["players"]) == workers
        assert {0, 1} <= set(workers)  # players on the publisher's worker and on the other
        assert stats["players"] == len(players)
        assert [w["index"] for w in stats["workers"]] == [0, 1]
        assert await publisher == total
        for frames in await asyncio.gather(*players):
            check_frames(frames, total)
        stats = await c.until(lambda s: s["publishers"] == 0 and s["players"] == 0)
        assert stats["connections"] == 0   # the pull between workers is not counted

    with cluster(tmp_path) as c:
        asyncio.run(main(c))
        assert c.stop() == 0
    recordings = list((c.record / "live").iterdir())
    assert len(recordings) == 1   # only the publisher's worker records
    numbers = [int.from_bytes(t.payload[5:9], "big") for t in read_tags(recordings[0])
               if t.is_video and t.payload[1] == 1]
    assert numbers == list(range(total))


async def connection_on(c: Cluster, worker: int,
                        spare: list[rtmpx.Client]) -> rtmpx.Client:
    """A client connected to ``worker`` (others opened meanwhile go to ``spare``)."""
    for _ in range(40):
        before = await c.until(lambda s: s["connections"] == len(spare) + 1)
        client = await rtmpx.connect(c.url)
        stats = await c.until(lambda s: s["connections"] == len(spare) + 2)
        if worker_of(stats, before) == worker:
            return client
        spare.append(client)
    raise AssertionError("the kernel put every connection on one worker")


def test_duplicate_publish_is_refused_on_every_worker(tmp_path: Path) -> None:
    async def main(c: Cluster) -> None:
        async with rtmpx.connect(c.url) as first, await first.publish() as stream:
            await stream.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(8))
            stats = await c.until(lambda s: s["publishers"] == 1)
            owner = stats["streams"][0]["publisher"]["worker"]
            spare: list[rtmpx.Client] = []
            try:
                for worker in (1 - owner, owner):
                    client = await connection_on(c, worker, spare)
                    spare.append(client)
                    with pytest.raises(StatusError) as refused:
                        await client.publish()
                    assert refused.value.code == "NetStream.Publish.BadName"
                stats = await c.stats()
                assert stats["streams"][0]["publisher"]["worker"] == owner
            finally:
                for client in spare:
                    await client.close()

    with cluster(tmp_path) as c:
        asyncio.run(main(c))


def test_replace_across_workers(tmp_path: Path) -> None:
    async def main(c: Cluster) -> None:
        async with rtmpx.connect(c.url) as first, await first.publish() as stream:
            await stream.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(8))
            stats = await c.until(lambda s: s["publishers"] == 1)
            owner = stats["streams"][0]["publisher"]["worker"]
            spare: list[rtmpx.Client] = []
            try:
                client = await connection_on(c, 1 - owner, spare)
                spare.append(client)
                await client.publish()
                stats = await c.until(
                    lambda s: s["publishers"] == 1
                    and s["streams"][0]["publisher"]["worker"] == 1 - owner)
            finally:
                for client in spare:
                    await client.close()

    with cluster(tmp_path, "--replace") as c:
        asyncio.run(main(c))


def test_sigterm_stops_every_worker_and_completes_recordings(tmp_path: Path) -> None:
    async def main(c: Cluster) -> list[int]:
        players, _ = await open_players(c, 2)
        publisher = asyncio.create_task(
            publish_frames(c.url, 100_000, keyint=KEYINT, interval=0.005))
        stats = await c.until(lambda s: s["streams"] and s["streams"][0]["publisher"]
                              and s["streams"][0]["publisher"]["messages"] > 100
                              and all(p["messages"] > 50 for p in s["streams"][0]["players"]))
        pids = [w["pid"] for w in stats["workers"]]
        code = await asyncio.to_thread(c.stop)
        assert code == 0
        for frames in await asyncio.gather(*players):  # told, not cut
            assert frames and frames[0][1]
        with contextlib.suppress(Exception):
            await publisher
        return pids

    with cluster(tmp_path) as c:
        pids = asyncio.run(main(c))
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            b"rtmpx" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    (recording,) = (c.record / "live").iterdir()
    tags = read_tags(recording)  # every tag whole: the worker closed the file
    numbers = [int.from_bytes(t.payload[5:9], "big") for t in tags
               if t.is_video and t.payload[1] == 1]
    assert numbers == list(range(len(numbers))) and len(numbers) > 40
    assert os.path.getsize(recording) > 0


def test_a_dead_worker_is_started_again(tmp_path: Path) -> None:
    async def main(c: Cluster) -> None:
        stats = await c.stats()
        victim = stats["workers"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        stats = await c.until(lambda s: len(s["workers"]) == 2
                              and s["workers"][0]["pid"] != victim["pid"])
        players, workers = await open_players(c, 2)   # both serve again
        assert {0, 1} <= set(workers)
        assert await publish_frames(c.url, 60, keyint=KEYINT, interval=0.01) == 60
        for frames in await asyncio.gather(*players):
            check_frames(frames, 60)

    with cluster(tmp_path) as c:
        asyncio.run(main(c))
        assert c.stop() == 0
