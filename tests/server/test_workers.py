"""``rtmpx serve --workers 2``: real processes on one port (SO_REUSEPORT).

The kernel spreads connections over the workers as it likes: each test
opens connections until the stats show one on every worker it needs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import rtmpx
from rtmpx.errors import StatusError
from rtmpx.flv import read_tags
from rtmpx.server import workers
from rtmpx.server.control import MAX_LINE, ControlChannel
from rtmpx.server.hooks import Request
from rtmpx.server.hub import StreamKey
from rtmpx.server.recorder import encode_name
from rtmpx.server.workers import Supervisor, Worker

from ..peers import channel, free_port, live, messages_in, publish_frames, wait_for

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


async def flv_numbers(url: str) -> list[tuple[int, bool]]:
    """The video frames an HTTP-FLV viewer gets until the body ends: (number, keyframe)."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        body = await asyncio.wait_for(response.read(), 60)
    tags = read_tags(io.BytesIO(body))
    return [(int.from_bytes(t.payload[5:9], "big"), t.payload[0] >> 4 == 1) for t in tags
            if t.is_video and t.payload[1] == 1]


def test_http_viewers_on_every_worker_get_every_frame(tmp_path: Path) -> None:
    """--http-port with --workers: every worker serves the web players on
    the shared port; a viewer on a worker that does not have the stream
    gets it pulled from its sibling; /stats there is the cluster's."""
    total = 150
    web = free_port()

    async def main(c: Cluster) -> None:
        publisher = asyncio.create_task(
            publish_frames(c.url, total, keyint=KEYINT, interval=0.02))
        await c.until(lambda s: s["publishers"] == 1)
        url = f"http://127.0.0.1:{web}/live/s.flv"
        viewers: list[asyncio.Task[list[tuple[int, bool]]]] = []
        seen: set[int] = set()
        while len(seen) < 2:
            assert len(viewers) < 30, "the kernel put every viewer on one worker"
            viewers.append(asyncio.create_task(flv_numbers(url)))
            opened = len(viewers)
            stats = await c.until(lambda s, n=opened: s["players"] == n)
            seen = {p["worker"] for s in stats["streams"] for p in s["players"]}
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{web}/stats") as answer:
            cluster_stats = await answer.json()   # from whichever worker took it
        assert [w["index"] for w in cluster_stats["workers"]] == [0, 1]
        assert {p["protocol"] for s in cluster_stats["streams"] for p in s["players"]} == \
            {"http-flv"}
        (stream,) = cluster_stats["streams"]   # with what the owner says it carries
        assert stream["video"]["codec"] == "avc" and stream["audio"]["codec"] == "aac"
        assert len(stream["recordings"]) == 1 and cluster_stats["rtmp_port"] == c.port
        assert await publisher == total
        for frames in await asyncio.gather(*viewers):
            check_frames(frames, total)

    with cluster(tmp_path, "--http-port", str(web)) as c:
        asyncio.run(main(c))
        assert c.stop() == 0


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


# -- a supervisor and its workers in this process, over their real control channel ----------
#
# Each worker's server listens on a port of its own, so that a test picks the
# worker a client reaches; the supervisor spawns no process (Supervisor.listen).


class InProcess:
    def __init__(self, supervisor: Supervisor, workers: list[Worker],
                 servers: list[rtmpx.Server]) -> None:
        self.supervisor = supervisor
        self.workers = workers
        self.servers = servers

    def url(self, index: int, name: str = "s") -> str:
        return f"rtmp://127.0.0.1:{self.servers[index].port}/live/{name}"

    async def roundtrip(self, index: int) -> None:
        """A request from worker ``index`` answered: whatever it sent before
        is handled by the supervisor, whatever the supervisor sent before
        the answer is handled by the worker."""
        channel = self.workers[index].channel
        assert channel is not None
        await channel.request({"op": "ping"})

    async def close(self) -> None:
        for worker, server in zip(self.workers, self.servers, strict=True):
            await worker.close()
            await server.close()
            worker.detach()
        await self.supervisor.close()


@contextlib.asynccontextmanager
async def in_process(count: int = 2, **options: Any) -> AsyncIterator[InProcess]:
    supervisor = Supervisor(count, {}, host="127.0.0.1", port=0)
    await supervisor.listen()
    workers: list[Worker] = []
    servers: list[rtmpx.Server] = []
    cluster = InProcess(supervisor, workers, servers)
    try:
        for index in range(count):
            worker = await Worker.connect(supervisor.control_path, index)
            server = rtmpx.Server("127.0.0.1", 0, on_publish=worker.claim, admit=worker.admit,
                                  record_gate=worker.record_gate, **options)
            workers.append(worker)
            servers.append(server)
            await worker.start(server)
        for child in supervisor.children:
            await child.ready.wait()
        yield cluster
    finally:
        await cluster.close()


KEY = StreamKey("live", "s")


def test_a_cancelled_claim_gives_back_the_key_it_gets() -> None:
    async def main() -> None:
        async with in_process() as c:
            worker = c.workers[0]
            request = Request("publish", "live", "s", "", "127.0.0.1:1")
            hook = asyncio.ensure_future(worker.claim(request))
            await asyncio.sleep(0)        # the claim is sent ...
            hook.cancel()                 # ... and its connection goes
            with pytest.raises(asyncio.CancelledError):
                await hook
            await c.roundtrip(0)          # the grant came back, the release went
            await c.roundtrip(0)
            assert KEY not in c.supervisor.owners and KEY not in worker.owned
            async with rtmpx.connect(c.url(1)) as client, await client.publish():
                await c.roundtrip(1)
                assert c.supervisor.owners[KEY] == 1

    asyncio.run(main())


def test_a_forced_takeover_drops_the_old_owners_publisher(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "CLAIM_TIMEOUT", 0.2)

    async def main() -> None:
        async with in_process(duplicate_publish="replace") as c, \
                rtmpx.connect(c.url(0)) as first, await first.publish() as stream:
            await stream.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(8))
            await wait_for(lambda: live(c.servers[0], "live/s"))
            assert c.supervisor.owners[KEY] == 0
            old = c.workers[0].channel
            assert old is not None
            old.writer.transport.pause_reading()  # worker 0 hangs: it never lets go
            async with rtmpx.connect(c.url(1)) as second, await second.publish():
                assert c.supervisor.owners[KEY] == 1   # taken over
                old.writer.transport.resume_reading()
                await c.roundtrip(0)
                assert KEY not in c.workers[0].owned
                assert not live(c.servers[0], "live/s")
                assert live(c.servers[1], "live/s")
                assert c.supervisor.owners[KEY] == 1

    asyncio.run(main())


def test_sibling_pulls_do_not_count_against_the_public_limits() -> None:
    async def main() -> None:
        async with in_process(max_connections_per_ip=1) as c:
            started = asyncio.Event()
            player = asyncio.create_task(play_numbers(c.url(1), started))
            await started.wait()
            await c.roundtrip(1)
            publisher = asyncio.create_task(
                publish_frames(c.url(0), 100_000, keyint=KEYINT, interval=0.01))
            # worker 1 pulls from worker 0, from 127.0.0.1 like the publisher
            await wait_for(lambda: messages_in(c.servers[1], "live/s") > 20)
            server = c.servers[0]
            assert len(server.connections) == 1    # the publisher; the pull counts apart
            stats = c.workers[0].stats()
            assert stats["connections"] == 1
            (stream,) = stats["streams"]
            assert stream["players"] == [] and stream["publisher"]["worker"] == 0
            (stream,) = c.workers[1].stats()["streams"]
            assert stream["publisher"] is None and len(stream["players"]) == 1
            publisher.cancel()
            player.cancel()
            await asyncio.gather(publisher, player, return_exceptions=True)

    asyncio.run(main())


def test_stats_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "MAX_STATS_PLAYERS", 1)

    async def main() -> None:
        async with in_process() as c:
            players = []
            for _ in range(2):
                started = asyncio.Event()
                players.append(asyncio.create_task(play_numbers(c.url(0), started)))
                await started.wait()
            async with rtmpx.connect(c.url(0)) as client, await client.publish() as stream:
                await stream.send_metadata({f"k{i}": "x" * 1000 for i in range(200)})
                await wait_for(lambda: (found := channel(c.servers[0], "live/s")) is not None
                               and found.metadata is not None)
                stats = await c.supervisor.stats()
                (entry,) = stats["streams"]
                assert entry["metadata"] == {"truncated": True}
                assert len(entry["players"]) == 1 and stats["truncated"]
            for task in players:
                task.cancel()
            await asyncio.gather(*players, return_exceptions=True)

    asyncio.run(main())


def test_a_control_answer_too_long_is_an_error_not_a_dead_channel() -> None:
    async def main() -> None:
        left, right = socket.socketpair()

        def handle(message: dict[str, Any]) -> dict[str, Any]:
            return {"blob": "x" * (MAX_LINE + 1)} if message["op"] == "big" else {"ok": True}

        ends = []
        for sock, handler in ((left, handle), (right, handle)):
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE)
            ends.append(ControlChannel(reader, writer, handler))
        runs = [asyncio.ensure_future(end.run()) for end in ends]
        answer = await ends[0].request({"op": "big"})
        assert "error" in answer and "blob" not in answer
        assert (await ends[0].request({"op": "small"}))["ok"]
        with pytest.raises(ValueError):
            ends[0].send({"blob": "x" * MAX_LINE})
        for end in ends:
            end.close()
        await asyncio.gather(*runs)

    asyncio.run(main())


def test_a_key_is_released_only_once_its_recording_is_closed(tmp_path: Path) -> None:
    async def main() -> None:
        async with in_process(record_dir=tmp_path) as c:
            recordings = c.servers[0].recordings
            series = f"{(tmp_path / encode_name('live')).resolve()}/{encode_name('s')}"
            with recordings.series_lock(series):   # the recorder cannot close its file yet
                await publish_frames(c.url(0), 30, keyint=KEYINT)
                await wait_for(lambda: not live(c.servers[0], "live/s"))
                await c.roundtrip(0)
                await c.roundtrip(0)
                assert recordings.writing(KEY)
                assert c.supervisor.owners.get(KEY) == 0   # not released yet
            await wait_for(lambda: not recordings.writing(KEY))
            await c.roundtrip(0)
            await c.roundtrip(0)
            assert KEY not in c.supervisor.owners

    asyncio.run(main())


def test_a_pulled_key_is_recorded_by_one_worker(tmp_path: Path) -> None:
    async def main() -> None:
        async with rtmpx.Server("127.0.0.1", 0) as origin, in_process(record_dir=tmp_path / "rec",
                                      pull=f"rtmp://127.0.0.1:{origin.port}/live") as c:
            players = []
            for index in (0, 1):
                started = asyncio.Event()
                players.append(asyncio.create_task(play_numbers(c.url(index), started)))
                await started.wait()
            await c.roundtrip(0)
            await c.roundtrip(1)
            total = 60
            assert await publish_frames(f"rtmp://127.0.0.1:{origin.port}/live/s", total,
                                        keyint=KEYINT, interval=0.01, hold=0.5) == total
            for frames in await asyncio.gather(*players):
                assert frames
        recordings = list((tmp_path / "rec").rglob("*.flv"))
        assert len(recordings) == 1, recordings

    asyncio.run(main())


def test_a_failed_start_leaves_nothing_behind(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    async def main() -> None:
        supervisor = Supervisor(1, {}, host="127.0.0.1", port=0,
                                command=[str(tmp_path / "no-such-program")])
        with pytest.raises(OSError):
            await supervisor.start()
        assert list(tmp_path.iterdir()) == []
        # the port was let go: it can be bound again without SO_REUSEPORT
        with socket.socket() as again:
            again.bind(("127.0.0.1", supervisor.port))

    asyncio.run(main())


def test_the_servers_timers_cover_the_internal_connections() -> None:
    async def main() -> None:
        async with in_process(idle_timeout=1.0) as c:
            worker = c.workers[0]
            internal = worker._context
            assert internal is not None and internal is not c.servers[0].context
            url = f"rtmp://127.0.0.1:{worker.internal_port}/live?{workers.TOKEN_PARAM}={worker.token}"
            async with rtmpx.connect(url):
                assert len(internal.connections) == 1 and not c.servers[0].connections
                # neither publishes nor plays: the server's tick closes it
                await wait_for(lambda: not internal.connections)

    asyncio.run(main())


def test_the_cluster_s_stats_fit_a_control_message() -> None:
    """Regression: past 1 MiB of JSON the supervisor's answer to a worker's
    /stats was refused ("answer too long"): now streams are left out."""
    stream = {"key": "live/x", "players": [{"peer": "p" * 100}] * 1000}
    stats = {"uptime": 1.0, "streams": [dict(stream, key=f"live/{i}") for i in range(20)]}
    fitted = workers.fit_stats(stats, MAX_LINE - 4096)
    assert len(json.dumps(fitted)) <= MAX_LINE - 4096
    assert fitted["truncated"] and 0 < len(fitted["streams"]) < 20
    assert fitted["streams"][0]["key"] == "live/0"
    assert workers.fit_stats({"streams": []}, 100) == {"streams": []}
