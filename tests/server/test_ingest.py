"""The ingest API (``server.publishes()``): bounded in bytes, never holding
back a publisher nobody consumes, never dropping one that waits for its
consumer.  No external peer: the rtmpx client publishes."""

from __future__ import annotations

import asyncio
from typing import Any

import rtmpx
from rtmpx.events import Metadata
from rtmpx.server import IncomingStream, Server
from rtmpx.server.hub import PACKET_OVERHEAD

from ..peers import publish_frames, wait_for


async def collect_streams(server: Server, into: list[IncomingStream]) -> None:
    async for stream in server.publishes():
        into.append(stream)


async def test_a_stream_nobody_iterates_does_not_hold_its_publisher() -> None:
    """Regression: an IncomingStream the application never iterated stalled
    its publisher after 512 messages (and the stalled publisher was then
    dropped as idle)."""
    limit = 64 * 1024
    async with Server(port=0, ingest_buffer=limit) as server:
        streams: list[IncomingStream] = []
        watcher = asyncio.create_task(collect_streams(server, streams))
        await asyncio.sleep(0.05)
        url = f"rtmp://127.0.0.1:{server.port}/live/ignored"
        # 6000 frames of 2 kB: far more than any socket buffer holds
        await asyncio.wait_for(publish_frames(url, 6000, keyint=20, size=2000), 60)
        await wait_for(lambda: not server.hub.channels)  # the publish ended
        stream = streams[0]
        assert stream.dropped > 0
        assert stream.buffered_bytes <= limit + 2000 + PACKET_OVERHEAD
        # a late consumer starts with metadata and sequence headers, then a keyframe
        items: list[Any] = []
        async with asyncio.timeout(10):
            async for item in stream:
                items.append(item)
        assert isinstance(items[0], Metadata)
        assert [i.kind for i in items[1:3]] == ["video", "audio"]
        assert all(i.is_sequence_header for i in items[1:3])
        video = [i for i in items[3:] if i.kind == "video"]
        assert video and video[0].is_keyframe
        numbers = [int.from_bytes(bytes(v.payload)[5:9], "big") for v in video]
        assert numbers == list(range(numbers[0], 6000))  # the end of the publish, in order
        watcher.cancel()


async def test_a_paused_publisher_is_not_idle() -> None:
    """Regression: a publisher paused for a slow ingest consumer stopped
    sending (we stopped reading it) and was dropped as idle."""
    async with Server(port=0, idle_timeout=1.5, ingest_buffer=2048) as server:
        got: list[Any] = []

        async def consume() -> None:
            async for stream in server.publishes():
                async for item in stream:
                    got.append(item)
                    if len(got) == 1:
                        await asyncio.sleep(4.0)  # far past the idle timeout
                return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        url = f"rtmp://127.0.0.1:{server.port}/live/patient"
        await asyncio.wait_for(publish_frames(url, 3000, size=200), 60)
        await asyncio.wait_for(consumer, 60)
    frames = [g for g in got if not isinstance(g, Metadata)]
    assert len(frames) == 2 + 2 * 3000   # headers + every frame: nothing lost
    video = [int.from_bytes(bytes(f.payload)[5:9], "big") for f in frames
             if f.kind == "video" and not f.is_sequence_header]
    assert video == list(range(3000))


async def test_a_slow_consumer_pauses_only_its_own_publisher() -> None:
    async with Server(port=0, ingest_buffer=4096) as server:
        counts: dict[str, int] = {"slow": 0, "quick": 0}
        paused_seen = False

        async def consume(stream: IncomingStream) -> None:
            nonlocal paused_seen
            async for _ in stream:
                counts[stream.name] += 1
                if stream.name == "slow":
                    paused_seen = paused_seen or any(
                        s["name"] == "slow" and s["publisher"] and s["publisher"]["paused"]
                        for s in server.stats()["streams"])
                    await asyncio.sleep(0.002)

        async def watch() -> None:
            async with asyncio.TaskGroup() as group:
                async for stream in server.publishes():
                    group.create_task(consume(stream))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)
        base = f"rtmp://127.0.0.1:{server.port}/live"
        slow = asyncio.create_task(publish_frames(f"{base}/slow", 1500, size=300))
        await wait_for(lambda: counts["slow"] > 0)
        await asyncio.wait_for(publish_frames(f"{base}/quick", 200, size=300), 20)
        await wait_for(lambda: counts["quick"] == 3 + 400)  # all of it, while "slow" waits
        assert counts["slow"] < 3 + 3000
        await asyncio.wait_for(slow, 60)
        await wait_for(lambda: counts["slow"] == 3 + 3000, 30)
        assert paused_seen
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_close_detaches_a_stream() -> None:
    async with Server(port=0, ingest_buffer=2048) as server:
        streams: list[IncomingStream] = []
        watcher = asyncio.create_task(collect_streams(server, streams))
        await asyncio.sleep(0.05)
        url = f"rtmp://127.0.0.1:{server.port}/live/closed"
        publisher = asyncio.create_task(publish_frames(url, 2000, size=300))
        await wait_for(lambda: bool(streams))
        assert await anext(streams[0]) is not None   # iterating: it may pause the publisher
        streams[0].close()
        await asyncio.wait_for(publisher, 30)        # the publish goes on
        assert [item async for item in streams[0]] == []
        watcher.cancel()


def test_incoming_stream_is_exported() -> None:
    assert rtmpx.IncomingStream is IncomingStream


async def test_an_abandoned_consumer_lets_go_of_its_publisher() -> None:
    """Review finding: a consumer that left its iteration without close()
    held the publisher paused for ever: the paused connection was not read,
    so even the encoder's death went unseen and the key stayed taken."""
    async with Server(port=0, idle_timeout=30.0, hold_timeout=1.5,
                      ingest_buffer=64 * 1024) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/left"
        taken = asyncio.Event()

        async def app() -> None:
            async for stream in server.publishes():
                async for _ in stream:
                    taken.set()
                    break                     # leaves without close()
                await asyncio.sleep(3600)

        consumer = asyncio.create_task(app())
        await asyncio.sleep(0.05)
        publisher = asyncio.create_task(publish_frames(url, 3000, size=5000))
        await asyncio.wait_for(taken.wait(), 10)
        # held at most hold_timeout: then the stream is cut and the publish goes on
        assert await asyncio.wait_for(publisher, 30) == 3000
        await wait_for(lambda: not server.hub.channels)
        # and the key is free again
        assert await asyncio.wait_for(publish_frames(url, 10), 10) == 10
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def test_publishes_after_close_ends_at_once() -> None:
    server = Server(port=0)
    await server.start()
    await server.close()
    assert [s async for s in server.publishes()] == []


async def test_ingest_headers_are_bounded() -> None:
    """Review of issue 9: an IncomingStream kept every header key (2 x 256
    x 3) with no byte bound, and its cut was quadratic in them."""
    from rtmpx.server.hub import MAX_HEADERS

    from .test_hub import HVCC, one_track

    async with Server(port=0) as server:
        streams: list[IncomingStream] = []
        collector = asyncio.create_task(collect_streams(server, streams))
        url = f"rtmp://127.0.0.1:{server.port}/live/hdr"
        async with rtmpx.connect(url) as client, await client.publish() as out:
            await wait_for(lambda: streams, 5)
            for track in range(256):
                await out.send_video(track, one_track(1, 0, track, HVCC))
            await out.send_video(300, one_track(1, 0, 0, bytes(2 * 1024 * 1024)))
            await asyncio.sleep(0.3)
            headers = list(streams[0]._headers)
            assert len(headers) <= MAX_HEADERS
            assert sum(len(h.payload) for h in headers) <= 1024 * 1024
        collector.cancel()
