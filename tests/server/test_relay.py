"""The rtmpx client and server together with real peers, and relaying
between servers: push to nginx-rtmp (and another rtmpx, with reconnects),
pull from nginx-rtmp as an edge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import rtmpx
from rtmpx.events import Metadata
from rtmpx.server import Server

from ..peers import (
    Sample,
    coded,
    ffmpeg_exe,
    free_port,
    lavfi_publish_args,
    live,
    packet_count,
    run,
    sinks,
    wait_for,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


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
