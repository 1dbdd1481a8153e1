"""Enhanced RTMP multitrack through the server: relay, late joiners, ingest
API and recording (issue 9)."""

from __future__ import annotations

import asyncio
import functools
import subprocess
from pathlib import Path

import pytest

import rtmpx
from rtmpx.flv import FLVReader
from rtmpx.server import Server

from ..peers import ffmpeg_exe, run, sinks, wait_for
from ..session.test_session import AAC_RAW, AAC_SEQ
from .test_hub import CTS0, HVCC, enhanced, one_track

#: OneTrack, ManyTracks and ManyTracksManyCodecs messages, as a publisher sends them.
SEQ0 = enhanced(1, 0, HVCC)
SEQ1 = one_track(1, 0, 1, HVCC + b"\x01")
MANY_SEQ = (bytes([0x96, 0x10]) + b"avc1" + b"\x02\x00\x00\x03abc"
            + b"\x03\x00\x00\x02de")                              # ManyTracks: tracks 2, 3
META1 = one_track(1, 4, 1, rtmpx.amf.dumps_all(["colorInfo", {"colorConfig": {}}]))
KEY0 = enhanced(1, 1, CTS0 + b"\x00\x00\x00\x02\x26\x01")
KEY1 = one_track(1, 1, 1, CTS0 + b"\x00\x00\x00\x02\x26\x01")
MANY_CODECS = (bytes([0x96, 0x21]) + b"avc1" + b"\x02\x00\x00\x08" + CTS0
               + b"\x00\x00\x00\x01\x65" + b"hvc1" + b"\x01\x00\x00\x09" + CTS0
               + b"\x00\x00\x00\x02\x26\x01")                   # ManyTracksManyCodecs
INTER0 = enhanced(2, 1, CTS0 + b"\x00\x00\x00\x02\x02\x01")
# ModEx: TimestampOffsetNano 100 ns, then CodedFrames
MODEX0 = bytes.fromhex("a7 02 000064 01") + b"hvc1" + CTS0 + b"\x00\x00\x00\x02\x02\x01"
STREAM = [(9, SEQ0), (9, SEQ1), (9, MANY_SEQ), (9, META1), (8, AAC_SEQ), (9, KEY0), (9, KEY1),
          (9, MANY_CODECS), (8, AAC_RAW), (9, INTER0), (9, KEY1), (9, MODEX0), (9, INTER0)]


async def test_multitrack_relayed_byte_exact_to_players_ingest_and_recording(
        tmp_path: Path) -> None:
    async with Server(port=0, record_dir=tmp_path) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/mt"
        ingested: list[tuple[str, int, bytes]] = []
        offsets: list[int] = []

        async def ingest() -> None:
            async for stream in server.publishes():
                async for item in stream:
                    if isinstance(item, rtmpx.Frame):
                        ingested.append((item.kind, item.track_id, bytes(item.payload)))
                        offsets.append(item.timestamp_offset_ns)
                return

        async def play(client: rtmpx.Client) -> list[tuple[int, bytes]]:
            return [(9 if f.kind == "video" else 8, bytes(f.payload))
                    async for f in client.play("mt")]

        consumer = asyncio.create_task(ingest())
        async with rtmpx.connect(url) as live, rtmpx.connect(url) as late:
            live_player = asyncio.create_task(play(live))
            await wait_for(lambda: sinks(server, "live/mt") == 1, 5)
            async with rtmpx.connect(url) as pub, await pub.publish() as out:
                for i, (type_id, payload) in enumerate(STREAM):
                    send = out.send_video if type_id == 9 else out.send_audio
                    await send(40 * i, payload)
                # a late joiner gets every track's configuration, then the GOP
                # from track 0's keyframe (not restarted by track 1's)
                late_player = asyncio.create_task(play(late))
                await wait_for(lambda: sinks(server, "live/mt") == 2, 5)
                await asyncio.sleep(0.2)
            assert await asyncio.wait_for(live_player, 10) == STREAM
            assert await asyncio.wait_for(late_player, 10) == STREAM
        await asyncio.wait_for(consumer, 10)
    assert [(kind, track) for kind, track, _ in ingested] == [
        ("video", 0), ("video", 1), ("video", 2), ("video", 1), ("audio", 0), ("video", 0),
        ("video", 1), ("video", 2), ("audio", 0), ("video", 0), ("video", 1), ("video", 0),
        ("video", 0)]
    assert offsets[-2:] == [100, 0]  # ModEx TimestampOffsetNano, on the frame only
    assert [p for _, _, p in ingested] == [p for _, p in STREAM]
    (recording,) = (tmp_path / "live").glob("mt-*.flv")
    with FLVReader(recording) as reader:
        tags = [(t.type_id, bytes(t.payload)) for t in reader if not t.is_script]
    assert tags == STREAM  # the recorder writes what it received


def _ffmpeg_frames(ffmpeg: str, path: Path, stream: str) -> tuple[int, str]:
    out = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path),
                          "-map", stream, "-f", "framecrc", "-"],
                         check=False, capture_output=True, text=True, timeout=60)
    return sum(line.startswith("0,") for line in out.stdout.splitlines()), out.stderr


@pytest.fixture
def multitrack_flv(tmp_path: Path) -> Path:
    """6 s of two H.264 tracks and AAC, written by FFmpeg 9 (its FLV muxer
    writes track 1 as OneTrack)."""
    source = tmp_path / "mt.flv"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
                    "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-map", "0", "-map", "1",
                    "-map", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "6", str(source)],
                   check=True, timeout=120, capture_output=True)
    return source


@pytest.mark.interop
async def test_ffmpeg_multitrack_late_joiner_decodes_every_track(
        multitrack_flv: Path, tmp_path: Path) -> None:
    """FFmpeg 9 publishes two H.264 tracks and AAC; an FFmpeg that joins
    late records every track, and each decodes from its first frame without
    an error (with one sequence header per kind, track 1 had none)."""
    ffmpeg = ffmpeg_exe()
    source = multitrack_flv
    late = tmp_path / "late.flv"
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/mt"
        publisher = asyncio.create_task(run(ffmpeg, "-hide_banner", "-loglevel", "error",
                                            "-re", "-i", str(source), "-map", "0", "-c", "copy",
                                            "-f", "flv", url, timeout=60))
        await wait_for(lambda: server.hub.get(("live", "mt")) is not None
                       and server.hub.get(("live", "mt")).live, 20)
        await asyncio.sleep(1.5)  # well into the stream: a GOP and more
        code, err = await run(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", url,
                              "-map", "0", "-c", "copy", "-t", "1.5", "-y", str(late),
                              timeout=60)
        assert code == 0, err
        code, err = await publisher
        assert code == 0, err
    for stream in ("0:v:0", "0:v:1", "0:a:0"):
        frames, errors = _ffmpeg_frames(ffmpeg, late, stream)
        assert frames > 20 and not errors.strip(), (stream, frames, errors)




@functools.cache
def _encoders(ffmpeg: str) -> str:
    return subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True,
                          text=True, check=True, timeout=30).stdout


ENHANCED_CODECS = [
    ("libx265", ["-x265-params", "log-level=error:keyint=10"], "aac"),
    ("libsvtav1", ["-preset", "12", "-svtav1-params", "keyint=10"], "libopus"),
    ("libvpx-vp9", ["-deadline", "realtime", "-cpu-used", "8", "-g", "10"], "flac"),
    ("libx264", ["-preset", "ultrafast", "-g", "10"], "ac3"),
    ("libx264", ["-preset", "ultrafast", "-g", "10"], "eac3"),
]


@pytest.mark.interop
@pytest.mark.parametrize(("video", "options", "audio"), ENHANCED_CODECS,
                         ids=[f"{v}-{a}" for v, _, a in ENHANCED_CODECS])
async def test_ffmpeg9_enhanced_codecs_reach_a_late_joiner(video: str, options: list[str],
                                                           audio: str, tmp_path: Path) -> None:
    """FFmpeg 9 publishes each Enhanced RTMP codec; an FFmpeg that joins
    late gets every configuration and starts at a keyframe: both tracks
    decode without an error from the first frame."""
    ffmpeg = ffmpeg_exe()
    for name in (video, audio):
        if f" {name} " not in _encoders(ffmpeg):
            pytest.skip(f"this FFmpeg has no {name}")
    late = tmp_path / "late.flv"
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/enh"
        publisher = asyncio.create_task(run(
            ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
            "-c:v", video, *options, "-pix_fmt", "yuv420p", "-c:a", audio,
            "-f", "flv", url, timeout=60))
        await wait_for(lambda: server.hub.get(("live", "enh")) is not None
                       and server.hub.get(("live", "enh")).live, 20)
        await asyncio.sleep(1.2)
        code, err = await run(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", url,
                              "-c", "copy", "-t", "1", "-y", str(late), timeout=60)
        assert code == 0, err
        code, err = await publisher
        assert code == 0, err
    for stream in ("0:v:0", "0:a:0"):
        frames, errors = _ffmpeg_frames(ffmpeg, late, stream)
        assert frames > 5 and not errors.strip(), (stream, frames, errors)
