"""Recording to FLV: every frame in a valid file, and a killed server (kill -9)
leaves a file FFmpeg reads to its last complete tag."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtmpx.flv import FLVReader
from rtmpx.server import Request, Server

from ..peers import ffmpeg_exe, lavfi_publish_args, packet_count, run

pytestmark = pytest.mark.interop


def publish(ffmpeg: str, url: str, seconds: float, realtime: bool = False,
            publish_type: str | None = None) -> list[str]:
    return [ffmpeg, "-hide_banner", "-loglevel", "error", *(["-re"] if realtime else []),
            *lavfi_publish_args(seconds), "-f", "flv",
            *(["-rtmp_live", publish_type] if publish_type else []), url]


async def test_record_dir_gets_every_frame(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    async with Server(port=0, record_dir=tmp_path) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/rec"
        code, err = await run(*publish(ffmpeg, url, 2.0))
        assert code == 0, err
        for _ in range(100):  # the recorder closes when the unpublish arrives
            if not server.hub.channels:
                break
            await asyncio.sleep(0.05)
    files = list((tmp_path / "live").glob("rec-*.flv"))
    assert len(files) == 1
    assert packet_count(ffmpeg, files[0], "v:0") == 50
    assert packet_count(ffmpeg, files[0], "a:0") > 80
    with FLVReader(files[0]) as reader:
        tags = list(reader)
        assert not reader.truncated and not reader.bad_previous_sizes
    assert tags[0].is_script and tags[0].script()[0] == "onMetaData"
    assert tags[1].frame().is_sequence_header


async def test_on_publish_hook_chooses_what_to_record(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    target = tmp_path / "chosen.flv"

    def on_publish(request: Request) -> None:
        if request.name == "keep":
            request.record = target

    async with Server(port=0, on_publish=on_publish) as server:
        for name in ("keep", "skip"):
            code, err = await run(*publish(ffmpeg, f"rtmp://127.0.0.1:{server.port}/live/{name}",
                                           1.0))
            assert code == 0, err
        await asyncio.sleep(0.3)
    assert packet_count(ffmpeg, target, "v:0") == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chosen.flv"]


async def publish_file(url: str, path: Path, publish_type: str) -> None:
    """Publish an FLV file with the rtmpx client (FFmpeg always says "live")."""
    from rtmpx import connect

    async with connect(url) as client, await client.publish(type=publish_type) as stream:
        with FLVReader(path) as reader:
            for tag in reader:
                if tag.is_video:
                    await stream.send_video(tag.timestamp, tag.payload)
                elif tag.is_audio:
                    await stream.send_audio(tag.timestamp, tag.payload)


async def test_record_and_append_publish_types(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    source = tmp_path / "source.flv"
    code, err = await run(ffmpeg, "-hide_banner", "-loglevel", "error",
                          *lavfi_publish_args(1.0), "-f", "flv", str(source))
    assert code == 0, err
    record_dir = tmp_path / "rec"
    async with Server(port=0, record_dir=record_dir) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/app"
        await publish_file(url, source, "record")
        await asyncio.sleep(0.3)
        await publish_file(url, source, "append")
        await asyncio.sleep(0.3)
    files = list((record_dir / "live").glob("app-*.flv"))
    assert len(files) == 1
    assert packet_count(ffmpeg, files[0], "v:0") == 50
    with FLVReader(files[0]) as reader:
        stamps = [t.timestamp for t in reader if t.is_video and not t.frame().is_sequence_header]
    assert stamps == sorted(stamps) and len(set(stamps)) == 50  # the second part follows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kill_9_leaves_a_readable_file(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rtmpx", "--log-level", "warning", "serve", "--host",
         "127.0.0.1", "--port", str(port), "--record", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert b"serving" in server.stdout.readline()  # listening
        publisher = subprocess.Popen(publish(ffmpeg, f"rtmp://127.0.0.1:{port}/live/crash",
                                             30.0, realtime=True),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            files: list[Path] = []
            while time.monotonic() < deadline:
                files = list((tmp_path / "live").glob("crash-*.flv"))
                if files and files[0].stat().st_size > 50_000:
                    break
                time.sleep(0.1)
            assert files, "no recording appeared"
            os.kill(server.pid, signal.SIGKILL)
            server.wait(10)
        finally:
            publisher.kill()
            publisher.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    path = files[0]
    with FLVReader(path) as reader:
        tags = list(reader)
    frames = sum(1 for t in tags if t.is_video and t.frame().is_keyframe is not None
                 and not t.frame().is_sequence_header)
    assert frames > 10
    # FFmpeg reads the same complete video frames, without an error that matters
    assert packet_count(ffmpeg, path, "v:0") in (frames, frames + 1)
