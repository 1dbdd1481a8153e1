"""The rtmpx client and server together with real peers, and relaying
between servers: push to nginx-rtmp (and another rtmpx, with reconnects),
pull from nginx-rtmp as an edge."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

import rtmpx
from rtmpx.events import Metadata
from rtmpx.server import HubLimits, Server, StreamKey

from ..peers import (
    AAC_SEQ,
    Sample,
    aac_frame,
    coded,
    ffmpeg_exe,
    free_port,
    lavfi_publish_args,
    live,
    messages_in,
    packet_count,
    publish_frames,
    run,
    sinks,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


async def publish_sample(url: str, sample: Sample, realtime: bool = False) -> None:
    """Publish the sample FLV with the rtmpx client (at its pace if realtime)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with rtmpx.connect(url) as client, await client.publish() as stream:
        for tag in sample.tags:
            if realtime:
                await asyncio.sleep(max(0.0, start + tag.timestamp / 1000 - loop.time()))
            if tag.is_script:
                values = tag.script()
                await stream.send_metadata(values[1])
            elif tag.is_video:
                await stream.send_video(tag.timestamp, tag.payload)
            elif tag.is_audio:
                await stream.send_audio(tag.timestamp, tag.payload)


async def play_frames(url: str, *, limit: float = 30.0) -> list[Any]:
    """Everything an rtmpx client playing ``url`` gets until the unpublish."""
    items: list[Any] = []
    async with rtmpx.connect(url) as client:
        async with asyncio.timeout(limit):
            async for item in client.play():
                items.append(item)
    return items


def ffmpeg_publish(ffmpeg: str, url: str, seconds: float) -> list[str]:
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", *lavfi_publish_args(seconds),
            "-f", "flv", url]


def ffmpeg_play(ffmpeg: str, url: str, out: Path) -> list[str]:
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-rw_timeout", "5000000",
            "-i", url, "-c", "copy", "-f", "flv", str(out)]


@pytest.mark.interop
async def test_rtmpx_client_publishes_ffmpeg_plays(sample: Sample, tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    out = tmp_path / "out.flv"
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/c2f"
        player = asyncio.create_task(run(*ffmpeg_play(ffmpeg, url, out)))
        await wait_for(lambda: sinks(server, "live/c2f"))
        await publish_sample(url, sample)
        code, err = await asyncio.wait_for(player, 30)
        assert code == 0, err
    assert packet_count(ffmpeg, out, "v:0") == sample.video_frames


@pytest.mark.interop
async def test_ffmpeg_publishes_rtmpx_client_plays() -> None:
    ffmpeg = ffmpeg_exe()
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/f2c"
        player = asyncio.create_task(play_frames(url))
        await wait_for(lambda: sinks(server, "live/f2c"))
        code, err = await run(*ffmpeg_publish(ffmpeg, url, 2.0))
        assert code == 0, err
        items = await player
    assert isinstance(items[0], Metadata)
    video = [f for f in items if not isinstance(f, Metadata) and f.kind == "video"]
    assert video[0].is_sequence_header and video[1].is_keyframe
    assert sum(1 for f in video if coded(f)) == 50


@pytest.mark.interop
async def test_push_to_nginx(nginx: int, tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    upstream = f"rtmp://127.0.0.1:{nginx}/live"
    async with Server(port=0, push=[upstream]) as server:
        player = asyncio.create_task(play_frames(f"{upstream}/pushed"))
        await asyncio.sleep(0.5)
        code, err = await run(*ffmpeg_publish(
            ffmpeg, f"rtmp://127.0.0.1:{server.port}/live/pushed", 3.0))
        assert code == 0, err
        items = await asyncio.wait_for(player, 40)
    video = [f for f in items if not isinstance(f, Metadata) and f.kind == "video"]
    assert video and video[0].is_sequence_header
    frames = [f for f in video if coded(f)]
    assert frames[0].is_keyframe and len(frames) >= 60  # of 75: nginx joins at a keyframe


@pytest.mark.interop
async def test_push_reconnects_and_resumes_at_a_keyframe(sample: Sample) -> None:
    ffmpeg = ffmpeg_exe()
    port = free_port()
    async with Server(port=0, push=[f"rtmp://127.0.0.1:{port}/live"]) as edge:
        publisher = asyncio.create_task(run(*ffmpeg_publish(
            ffmpeg, f"rtmp://127.0.0.1:{edge.port}/live/retry", 8.0)))
        await asyncio.sleep(2.0)   # the upstream is not there yet: the push retries
        async with Server(port=port) as origin:
            await wait_for(lambda: live(origin, "live/retry"),
                           15)
            items = await play_frames(f"rtmp://127.0.0.1:{port}/live/retry")
        code, err = await publisher
        assert code == 0, err
    video = [f for f in items if not isinstance(f, Metadata) and f.kind == "video"]
    assert video[0].is_sequence_header
    frames = [f for f in video if coded(f)]
    assert frames and frames[0].is_keyframe
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)


@pytest.mark.interop
async def test_pull_from_nginx_as_an_edge(nginx: int, tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    origin = f"rtmp://127.0.0.1:{nginx}/live"
    publisher = asyncio.create_task(run(*ffmpeg_publish(ffmpeg, f"{origin}/pulled", 6.0)))
    await asyncio.sleep(1.0)
    async with Server(port=0, pull=origin) as edge:
        url = f"rtmp://127.0.0.1:{edge.port}/live/pulled"
        async with rtmpx.connect(url) as client:
            video = []
            async with asyncio.timeout(30):
                async for item in client.play():
                    if not isinstance(item, Metadata) and item.kind == "video":
                        video.append(item)
                        if sum(1 for f in video if coded(f)) >= 40:
                            break
        frames = [f for f in video if coded(f)]
        assert video[0].is_sequence_header and frames[0].is_keyframe
        # the last player left: the edge drops the pull
        await wait_for(lambda: not edge.hub.channels and not edge.relays.pullers, 10)
    code, err = await publisher
    assert code == 0, err


@pytest.mark.interop
def test_server_and_client_on_uvloop(sample: Sample) -> None:
    """uvloop's transports are not asyncio.Transport subclasses; the CLI
    picks uvloop when installed, so both ends must work on it."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> int:
        async with Server(port=0) as server:
            url = f"rtmp://127.0.0.1:{server.port}/live/uv"
            player = asyncio.ensure_future(play_frames(url))
            await wait_for(lambda: sinks(server, "live/uv"))
            await publish_sample(url, sample)
            items = await asyncio.wait_for(player, 30)
        return sum(1 for f in items if not isinstance(f, Metadata) and f.kind == "video"
                   and coded(f))

    assert uvloop.run(main()) == sample.video_frames


# --- relays between rtmpx servers (no external peer) ----------------------------------

def frame_numbers(items: list[Any]) -> list[int]:
    """The numbers publish_frames puts in its video frames."""
    return [int.from_bytes(bytes(i.payload)[5:9], "big") for i in items
            if not isinstance(i, Metadata) and i.kind == "video" and coded(i)]


async def test_pull_follows_the_origin_across_a_republish() -> None:
    """Regression: the pull ended with the origin's unpublish and never
    restarted, while players waited."""
    async with Server(port=0) as origin, \
            Server(port=0, pull=f"rtmp://127.0.0.1:{origin.port}/live") as edge:
        async with rtmpx.connect(f"rtmp://127.0.0.1:{edge.port}/live/re") as client:
            items: list[Any] = []
            play = client.play(until_unpublish=False)
            await play

            async def watch() -> None:
                async for item in play:
                    items.append(item)

            watcher = asyncio.create_task(watch())
            await wait_for(lambda: edge.relays is not None and edge.relays.pullers)
            source = f"rtmp://127.0.0.1:{origin.port}/live/re"
            for start in (0, 1000):
                await wait_for(lambda: sinks(origin, "live/re") == 1)  # the pull waits there
                await publish_frames(source, 30, start=start, interval=0.01, keyint=10)
                await wait_for(lambda start=start: max(frame_numbers(items), default=-1) >= 29
                               and (start == 0 or len(frame_numbers(items)) >= 31), 15)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        stamps = [i.timestamp for i in items if not isinstance(i, Metadata) and coded(i)
                  and i.kind == "video"]
        assert min(stamps) < 1000 <= max(stamps)  # frames of both publishes


async def test_a_replay_on_the_same_connection_gets_a_live_pull() -> None:
    """Regression: a player that played again on its connection saw the dying
    pull of its first play and waited forever."""
    async with Server(port=0) as origin, \
            Server(port=0, pull=f"rtmp://127.0.0.1:{origin.port}/live") as edge:
        source = f"rtmp://127.0.0.1:{origin.port}/live/again"
        publisher = asyncio.create_task(publish_frames(source, 2000, interval=0.01, keyint=10))
        await wait_for(lambda: live(origin, "live/again"))
        async with rtmpx.connect(f"rtmp://127.0.0.1:{edge.port}/live/again") as client:
            for _ in range(3):
                got = 0
                async with client.play() as play, asyncio.timeout(15):
                    async for item in play:
                        got += not isinstance(item, Metadata) and item.kind == "video"
                        if got >= 5:
                            break
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_a_paused_pull_really_pauses() -> None:
    """Regression: pausing a pull (its ingest consumer is full) did nothing:
    the pull kept reading from the origin and buffering."""
    limits = HubLimits(max_queue=64 * 1024, max_lag=60.0)
    async with Server(port=0, limits=limits) as origin, \
            Server(port=0, pull=f"rtmp://127.0.0.1:{origin.port}/live",
                   ingest_buffer=4096) as edge:
        source = f"rtmp://127.0.0.1:{origin.port}/live/p"
        publisher = asyncio.create_task(publish_frames(source, 3000, interval=0.005,
                                                       size=20_000))
        await wait_for(lambda: live(origin, "live/p"))

        async def stall() -> None:
            async for stream in edge.publishes():
                await anext(stream)      # iterate once: from now on it holds its publisher
                await asyncio.sleep(3600)

        staller = asyncio.create_task(stall())
        async with rtmpx.connect(f"rtmp://127.0.0.1:{edge.port}/live/p") as client:
            play = client.play()
            await play
            # the origin sees the edge stop reading: its player falls behind
            await wait_for(lambda: any(p["dropped"] > 0 for s in origin.stats()["streams"]
                                       for p in s["players"]), 20)
            await play.close()
        staller.cancel()
        publisher.cancel()
        await asyncio.gather(staller, publisher, return_exceptions=True)


async def test_push_ends_with_its_publication() -> None:
    """Regression: push listeners were removed in a spawned task, after the
    channel was checked for being idle: one channel leaked per key."""
    async with Server(port=0) as origin, \
            Server(port=0, push=[f"rtmp://127.0.0.1:{origin.port}/live"]) as edge:
        received: list[Any] = []

        async def take() -> None:
            async for stream in origin.publishes():
                async for item in stream:
                    received.append(item)

        taker = asyncio.create_task(take())
        for key in ("a", "b", "c"):
            await publish_frames(f"rtmp://127.0.0.1:{edge.port}/live/{key}", 40, keyint=10)
        await wait_for(lambda: not edge.hub.channels, 10)
        # all of it, to the last frame, and every push unpublished upstream
        await wait_for(lambda: len(frame_numbers(received)) == 3 * 40, 10)
        await wait_for(lambda: not origin.hub.channels, 10)
        taker.cancel()


async def test_an_origin_that_ends_every_play_at_once_is_not_hammered() -> None:
    """Review finding: the pull re-played without any pause when the origin
    answered Play.Start then UnpublishNotify at once: thousands of plays a
    second.  The origin here is a real ServerSession scripted to do that."""
    plays = 0

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal plays
        session = rtmpx.ServerSession()
        try:
            while data := await reader.read(65536):
                for event in session.receive_data(data):
                    if isinstance(event, rtmpx.events.ConnectRequest):
                        session.accept_connect()
                    elif isinstance(event, rtmpx.events.PlayRequest):
                        plays += 1
                        session.accept_play(event.stream_id)
                        session.notify_unpublish(event.stream_id)
                writer.write(session.data_to_send())
        except (rtmpx.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()

    scripted = await asyncio.start_server(origin, "127.0.0.1", 0)
    port = scripted.sockets[0].getsockname()[1]
    try:
        async with Server(port=0, pull=f"rtmp://127.0.0.1:{port}/live") as edge, \
                rtmpx.connect(f"rtmp://127.0.0.1:{edge.port}/live") as client:
            play = client.play("k")
            await play
            await asyncio.sleep(3.5)
            assert 1 <= plays <= 4   # 1 s, 2 s, ... apart: a backoff, not a storm
    finally:
        scripted.close()


async def test_players_left_waiting_by_a_local_publisher_get_the_pull() -> None:
    """Review finding: the pull started only when players arrived; players
    still waiting when a local publisher left never got the origin's stream."""
    async with Server(port=0) as origin, \
            Server(port=0, pull=f"rtmp://127.0.0.1:{origin.port}/live") as edge:
        source = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{origin.port}/live/k", 3000, interval=0.005, start=100_000))
        await wait_for(lambda: live(origin, "live/k"))
        local = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{edge.port}/live/k", 50, interval=0.01, hold=0.5))
        await wait_for(lambda: live(edge, "live/k"))
        async with rtmpx.connect(f"rtmp://127.0.0.1:{edge.port}/live") as client:
            play = client.play("k", until_unpublish=False)
            await play
            await local                         # the local publisher leaves
            async with asyncio.timeout(15):
                async for item in play:         # the origin's frames follow
                    if not isinstance(item, Metadata) and item.timestamp >= 100_000:
                        break
        source.cancel()
        await asyncio.gather(source, return_exceptions=True)


async def test_push_follows_a_reconnect_request_to_another_server() -> None:
    """The upstream shuts down and names another server: the push goes on to
    the next keyframe there, then pushes to the new server from a keyframe,
    metadata and sequence headers first; the old upstream waits for it."""
    async with Server(port=0) as second:
        first = Server(port=0, reconnect_grace=10.0)
        await first.start()
        async with Server(port=0, push=[f"rtmp://127.0.0.1:{first.port}/live"]) as edge:
            items: list[Any] = []
            watcher = asyncio.create_task(
                play_into(f"rtmp://127.0.0.1:{second.port}/live/moved", items))
            await wait_for(lambda: sinks(second, "live/moved") == 1)
            publisher = asyncio.create_task(publish_frames(
                f"rtmp://127.0.0.1:{edge.port}/live/moved", 150, keyint=10, interval=0.01))
            await wait_for(lambda: messages_in(first, "live/moved") > 40, 10)
            (pusher,) = edge.relays.pushers[StreamKey("live", "moved")]
            started = time.monotonic()
            await first.close(reconnect_tc_url=f"rtmp://127.0.0.1:{second.port}/live")
            assert time.monotonic() - started < 3.0   # it left at its next keyframe
            await wait_for(lambda: live(second, "live/moved"), 10)
            assert pusher.reconnect_requests == 1
            assert pusher.url == f"rtmp://127.0.0.1:{second.port}/live"
            await publisher
            await asyncio.wait_for(watcher, 20)
    assert isinstance(items[0], Metadata)
    video = [f for f in items if not isinstance(f, Metadata) and f.kind == "video"]
    assert video[0].is_sequence_header
    assert any(not isinstance(f, Metadata) and f.kind == "audio" and f.is_sequence_header
               for f in items)
    numbers = frame_numbers(items)
    frames = [f for f in video if coded(f)]
    assert frames[0].is_keyframe and numbers[0] % 10 == 0
    assert numbers == list(range(numbers[0], 150))   # from that keyframe, to the end


async def play_into(url: str, items: list[Any]) -> None:
    async with rtmpx.connect(url) as client:
        async for item in client.play():
            items.append(item)


async def publish_audio(url: str, frames: int, *, interval: float = 0.01) -> None:
    """Metadata, the AAC sequence header and ``frames`` numbered AAC frames."""
    async with rtmpx.connect(url, timeout=10) as client, await client.publish() as stream:
        await stream.send_metadata({"audiocodecid": 10.0})
        await stream.send_audio(0, AAC_SEQ)
        for i in range(frames):
            await stream.send_audio(40 * i, aac_frame(i))
            await asyncio.sleep(interval)


def audio_numbers(items: list[Any]) -> list[int]:
    return [int.from_bytes(bytes(i.payload)[2:6], "big") for i in items
            if not isinstance(i, Metadata) and i.kind == "audio" and not i.is_sequence_header]


@pytest.mark.parametrize("case", ["video", "audio only", "upstream closes first"])
async def test_a_push_follows_a_reconnect_request_without_a_gop_cache(case: str) -> None:
    """Review finding: following a reconnect request, the push dropped what
    came while it reconnected and rebuilt from the GOP cache: with none (a
    GOP over max_gop_entries, or audio only) the frames from the switch
    point until the new publish started were lost.  Now it keeps its queue
    from the switch point (or resumes at the queue's next keyframe when the
    upstream went first) and sends what the upstream had of metadata and
    headers first.  The new upstream takes 0.5 s to accept a connection."""
    audio_only = case == "audio only"

    async def slow(request: Any) -> bool:
        await asyncio.sleep(0.5)
        return True

    async with Server(port=0, on_connect=slow) as second:
        first = Server(port=0, reconnect_grace=0.0 if case == "upstream closes first" else 10.0)
        await first.start()
        async with Server(port=0, limits=HubLimits(max_gop_entries=1),
                          push=[f"rtmp://127.0.0.1:{first.port}/live"]) as edge:
            on_first: list[Any] = []
            on_second: list[Any] = []
            watchers = [asyncio.create_task(play_into(f"rtmp://127.0.0.1:{s.port}/live/nogop",
                                                      items))
                        for s, items in ((first, on_first), (second, on_second))]
            await wait_for(lambda: sinks(second, "live/nogop") == sinks(first, "live/nogop") == 1)
            url = f"rtmp://127.0.0.1:{edge.port}/live/nogop"
            publisher = asyncio.create_task(
                publish_audio(url, 150) if audio_only
                else publish_frames(url, 150, keyint=10, interval=0.01))
            await wait_for(lambda: messages_in(first, "live/nogop") > 40, 10)
            await first.close(reconnect_tc_url=f"rtmp://127.0.0.1:{second.port}/live")
            await publisher
            await asyncio.wait_for(asyncio.gather(*watchers), 20)
    assert isinstance(on_second[0], Metadata)
    assert any(not isinstance(f, Metadata) and f.is_sequence_header for f in on_second[1:3])
    numbers = audio_numbers(on_second) if audio_only else frame_numbers(on_second)
    assert numbers == list(range(numbers[0], 150))   # nothing lost after the switch
    if not audio_only:
        frames = [f for f in on_second if not isinstance(f, Metadata) and f.kind == "video"
                  and coded(f)]
        assert frames[0].is_keyframe and numbers[0] % 10 == 0
    before = audio_numbers(on_first) if audio_only else frame_numbers(on_first)
    if case != "upstream closes first":   # and nothing before it: the first had the rest
        assert before + numbers == list(range(150))
    else:   # it resumed at the next keyframe after what reached the first (give or take
        assert numbers[0] <= before[-1] + 20   # the frames lost with the connection)


async def test_relays_log_no_token(caplog: pytest.LogCaptureFixture) -> None:
    """Review finding: the push relay logged its upstream URLs whole, tokens
    included; the README says the relays log URLs without query strings."""
    caplog.set_level(logging.DEBUG, logger="rtmpx")
    async with Server(port=0) as upstream, \
            Server(port=0, push=[f"rtmp://127.0.0.1:{free_port()}/live?token=SECRET0",
                                 f"rtmp://127.0.0.1:{upstream.port}/live?token=SECRET1"],
                   pull=f"rtmp://127.0.0.1:{free_port()}/live?token=SECRET2") as edge:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{edge.port}/live/tok", 150, keyint=10, interval=0.01))
        await wait_for(lambda: live(upstream, "live/tok"))
        pushers = edge.relays.pushers[StreamKey("live", "tok")]
        assert upstream.request_reconnect(
            ("live", "tok"), tc_url=f"rtmp://127.0.0.1:{upstream.port}/live?token=SECRET3")
        async with rtmpx.connect(f"rtmp://127.0.0.1:{edge.port}/live") as client:
            await client.play("pulled")                      # a pull that fails
            await wait_for(lambda: "retry in" in caplog.text and pushers[1].reconnects > 0
                           and edge.relays.pullers, 10)
            shown = [repr(p) for p in pushers] + [repr(p) + p.peer
                                                  for p in edge.relays.pullers.values()]
        await publisher
    assert "push live/tok" in caplog.text and "pull live/pulled" in caplog.text
    assert "SECRET" not in caplog.text and "SECRET" not in "".join(shown)


async def test_a_push_follows_a_reconnect_request_to_an_application_of_two_segments() -> None:
    """Review finding: the push re-parsed the tcUrl it was sent to as a stream
    URL: ``rtmp://h/live/instance`` became app ``live``."""
    async with Server(port=0) as second, Server(port=0) as first, \
            Server(port=0, push=[f"rtmp://127.0.0.1:{first.port}/live"]) as edge:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{edge.port}/live/two", 100, keyint=10, interval=0.01))
        await wait_for(lambda: live(first, "live/two"))
        first.request_reconnect(("live", "two"),
                                tc_url=f"rtmp://127.0.0.1:{second.port}/live/instance")
        await wait_for(lambda: [k for k, c in second.hub.channels.items() if c.live], 10)
        assert [k for k, c in second.hub.channels.items() if c.live] \
            == [StreamKey("live/instance", "two")]
        await publisher
