"""Recording to FLV: every frame in a valid file, and a killed server (kill -9)
leaves a file FFmpeg reads to its last complete tag."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rtmpx.flv import FLVReader, Tag
from rtmpx.server import Request, Server
from rtmpx.server import recorder as recorder_module

from ..peers import ffmpeg_exe, lavfi_publish_args, packet_count, publish_frames, run, wait_for


def publish(ffmpeg: str, url: str, seconds: float, realtime: bool = False,
            publish_type: str | None = None) -> list[str]:
    return [ffmpeg, "-hide_banner", "-loglevel", "error", *(["-re"] if realtime else []),
            *lavfi_publish_args(seconds), "-f", "flv",
            *(["-rtmp_live", publish_type] if publish_type else []), url]


@pytest.mark.interop
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


@pytest.mark.interop
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


@pytest.mark.interop
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


@pytest.mark.interop
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


# --- without an external peer ------------------------------------------------------------

def tags_of(path: Path) -> list[Tag]:
    with FLVReader(path) as reader:
        tags = list(reader)
        assert not reader.truncated and not reader.bad_previous_sizes
    return tags


def video_numbers(path: Path) -> list[int]:
    """The numbers publish_frames put in the coded video frames of a file."""
    return [int.from_bytes(t.payload[5:9], "big") for t in tags_of(path)
            if t.is_video and not t.frame().is_sequence_header]


async def publish_all(server: Server, names: list[str], frames: int = 10,
                      publish_type: str = "live") -> None:
    for name in names:
        await publish_frames(f"rtmp://127.0.0.1:{server.port}/live/", frames, name=name,
                             publish_type=publish_type)
    await wait_for(lambda: not server.hub.channels)


async def test_a_republish_within_the_same_second_gets_its_own_file(tmp_path: Path) -> None:
    """Regression: files were opened with "wb" under one-second names, so a
    republish within the same second truncated the earlier recording."""
    async with Server(port=0, record_dir=tmp_path) as server:
        await publish_all(server, ["cam", "cam", "cam"], frames=20)
    files = list((tmp_path / "live").glob("cam-*.flv"))
    assert len(files) == 3
    assert [video_numbers(f) for f in files] == [list(range(20))] * 3


async def test_names_that_look_alike_never_share_a_file(tmp_path: Path) -> None:
    """Regression: names that sanitised alike ("cam x", "cam_x") shared file
    names, so one recording overwrote or mixed with the other."""
    names = ["cam x", "cam_x", "cam%20x", "..", "../cam", "cam/x", "CAM", "cam" * 60, "кам"]
    async with Server(port=0, record_dir=tmp_path / "rec") as server:
        await publish_all(server, names, frames=5)
    files = [p for p in (tmp_path / "rec").rglob("*") if p.is_file()]
    assert len(files) == len(names) and len({p.name for p in files}) == len(names)
    assert all(p.parent == tmp_path / "rec" / "live" for p in files)  # nothing escaped
    assert all(video_numbers(p) == list(range(5)) for p in files)


async def test_append_continues_only_its_own_stream(tmp_path: Path) -> None:
    """Regression: the append glob for "cam" matched "cam-x-<time>.flv", so
    one stream's append went into another stream's recording."""
    async with Server(port=0, record_dir=tmp_path) as server:
        await publish_all(server, ["cam-x"], frames=10, publish_type="record")
        await publish_all(server, ["cam", "cam"], frames=10, publish_type="append")
    (other,) = (tmp_path / "live").glob("cam-x-*.flv")
    assert video_numbers(other) == list(range(10))  # untouched
    (mine,) = [p for p in (tmp_path / "live").glob("cam-*.flv") if p != other]
    assert video_numbers(mine) == list(range(10)) * 2
    stamps = [t.timestamp for t in tags_of(mine) if t.is_video]
    assert stamps == sorted(stamps)  # the second part continues the first


async def test_a_corrupt_recording_is_left_alone(tmp_path: Path) -> None:
    """Regression: appending to a corrupt file raised ProtocolError, which
    the recorder did not catch: the publisher was aborted."""
    folder = tmp_path / "live"
    folder.mkdir()
    bad = folder / "cam-20200101-000000.flv"
    bad.write_bytes(b"not an flv file at all" * 50)
    async with Server(port=0, record_dir=tmp_path) as server:
        await publish_all(server, ["cam"], frames=10, publish_type="append")
    assert bad.read_bytes() == b"not an flv file at all" * 50
    (new,) = [p for p in folder.glob("cam-*.flv") if p != bad]
    assert video_numbers(new) == list(range(10))


async def test_an_explicit_path_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "chosen.flv"
    target.write_bytes(b"keep me")

    def on_publish(request: Request) -> None:
        request.record = target

    async with Server(port=0, on_publish=on_publish) as server:
        await publish_all(server, ["a", "b"], frames=5)
    assert target.read_bytes() == b"keep me"
    assert [video_numbers(tmp_path / f"chosen-{n}.flv") for n in (1, 2)] == [list(range(5))] * 2


async def test_file_work_runs_off_the_event_loop(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the scan before an append (and every write) ran on the
    event loop, stalling every connection for the length of a file."""
    threads: set[threading.Thread] = set()
    scan = recorder_module._resume_point

    def spying_scan(path: Path) -> int | None:
        threads.add(threading.current_thread())
        return scan(path)

    class SpyingWriter(recorder_module.FLVWriter):
        def write_tag(self, *args: object) -> None:
            threads.add(threading.current_thread())
            super().write_tag(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(recorder_module, "_resume_point", spying_scan)
    monkeypatch.setattr(recorder_module, "FLVWriter", SpyingWriter)
    async with Server(port=0, record_dir=tmp_path) as server:
        await publish_all(server, ["cam"], frames=10)
        await publish_all(server, ["cam"], frames=10, publish_type="append")
    assert threads and threading.main_thread() not in threads
