"""HTTP-FLV and WebSocket-FLV viewers (rtmpx.server.webflv): FFmpeg 9 and
5.1 read them, aiohttp's WebSocket client reads WebSocket-FLV, and a
viewer is bounded like an RTMP player."""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import rtmpx
from rtmpx.flv import FLVReader, Tag
from rtmpx.server import HubLimits, Server
from rtmpx.server.http import HttpServer
from rtmpx.server.webflv import FlvStream

from ..peers import (
    debian_tool,
    ffmpeg_exe,
    lavfi_publish_args,
    publish_frames,
    start,
    stop,
    wait_for,
)

pytestmark = pytest.mark.asyncio

#: FFmpeg 9's HTTP reader says this at the end of every chunked body, also
#: one served by aiohttp from a file: not ours to fix (exit status 0).
FFMPEG_CHUNKED_EOF = "Error during demuxing: Input/output error"


def _tags(data: bytes) -> list[Tag]:
    with FLVReader(io.BytesIO(data)) as reader:
        return list(reader)


def _viewers(server: Server) -> list[FlvStream]:
    return [v for v in server.context.viewers if isinstance(v, FlvStream) and v.sink]


async def _raw_get(port: int, path: str, *, rcvbuf: int | None = None,
                   method: str = "GET") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


def _ffmpeg_reader(ffmpeg: str, url: str, out: Path) -> subprocess.Popen[bytes]:
    return start([ffmpeg, "-hide_banner", "-v", "error", "-i", url, "-c", "copy", "-y",
                  "-f", "flv", str(out)])


def _decode_errors(ffmpeg: str, path: Path) -> str:
    done = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize("reader", ["ffmpeg9", "ffmpeg5"])
async def test_ffmpeg_reads_http_flv_from_a_keyframe(reader: str, tmp_path: Path) -> None:
    ff9 = ffmpeg_exe()
    ffmpeg = ff9 if reader == "ffmpeg9" else debian_tool("ffmpeg")
    async with Server(port=0, http_port=0) as server:
        publisher = start([ff9, "-hide_banner", "-loglevel", "error", "-re",
                           *lavfi_publish_args(4.0), "-f", "flv",
                           f"rtmp://127.0.0.1:{server.port}/live/cam"])
        try:
            await wait_for(lambda: (c := server.hub.get(("live", "cam"))) is not None
                           and c.live and c.gop_bytes > 0, timeout=15)
            await asyncio.sleep(0.7)  # join mid-GOP: the cache starts it at a keyframe
            out = tmp_path / "got.flv"
            viewer = _ffmpeg_reader(ffmpeg, f"http://127.0.0.1:{server.http_port}/live/cam.flv",
                                    out)
            await wait_for(lambda: len(_viewers(server)) == 1, timeout=10)
            stream = server.stats()["streams"][0]
            assert [p["protocol"] for p in stream["players"]] == ["http-flv"]
            # what the dashboard shows: from the sequence headers and the metadata
            assert stream["video"] == {"codec": "avc", "width": 160, "height": 120,
                                       "codecs": stream["video"]["codecs"], "fps": 25.0}
            assert stream["video"]["codecs"].startswith("avc1.")
            assert stream["audio"] == {"codec": "aac", "sample_rate": 44100, "channels": 1,
                                       "codecs": "mp4a.40.2"}
            code, err = await asyncio.to_thread(stop, viewer, 30)
        finally:
            await asyncio.to_thread(stop, publisher, 30)
    assert code == 0, err
    assert all(FFMPEG_CHUNKED_EOF in line for line in err.strip().splitlines()), err
    tags = _tags(out.read_bytes())
    video = [t.frame() for t in tags if t.is_video]
    coded = [f for f in video if not f.is_sequence_header]
    assert video[0].is_sequence_header and coded[0].is_keyframe
    assert len(coded) >= 25  # about 3 s of 25 fps after joining
    assert any(t.is_audio for t in tags)
    assert _decode_errors(ff9, out) == ""


async def test_a_websocket_client_reads_websocket_flv() -> None:
    async with Server(port=0, http_port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/ws"
        publisher = asyncio.create_task(publish_frames(url, 100, keyint=10, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "ws"))) is not None
                       and c.gop_bytes > 0)
        await asyncio.sleep(0.1)  # mid-GOP
        received = bytearray()
        messages = 0
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"http://127.0.0.1:{server.http_port}/live/ws.flv") as ws:
            assert [p["protocol"] for p in server.stats()["streams"][0]["players"]] == \
                ["ws-flv"]
            async for msg in ws:
                assert msg.type == aiohttp.WSMsgType.BINARY
                received += msg.data
                messages += 1
            assert ws.close_code == aiohttp.WSCloseCode.OK  # the stream ended: a clean close
        await publisher
        await wait_for(lambda: not server.context.viewers)
    assert received[:3] == b"FLV" and received[4] == 5  # audio and video
    tags = _tags(bytes(received))
    assert tags[0].type_id == 18  # onMetaData first
    video = [t.frame() for t in tags if t.is_video]
    assert video[0].is_sequence_header and video[1].is_keyframe
    numbers = [int.from_bytes(t.payload[5:9], "big") for t in tags
               if t.is_video and not t.frame().is_sequence_header]
    assert numbers == list(range(numbers[0], 100)) and numbers[0] % 10 == 0  # nothing lost


async def test_an_unknown_stream_is_a_prompt_404_and_head_has_no_body() -> None:
    async with Server(port=0, http_port=0) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.http_port}"
        async with asyncio.timeout(5):
            async with http.get(f"{base}/live/nothing.flv") as response:
                assert response.status == 404
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/x", 10, interval=0.05, hold=2))
        await wait_for(lambda: (c := server.hub.get(("live", "x"))) is not None and c.live)
        async with http.head(f"{base}/live/x.flv") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "video/x-flv"
        async with http.get(f"{base}/other/x.flv") as response:
            assert response.status == 404
        assert not server.context.viewers
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_the_body_ends_cleanly_when_the_publisher_stops() -> None:
    async with Server(port=0, http_port=0) as server:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/e", 60, keyint=10, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "e"))) is not None
                       and c.gop_bytes > 0)
        reader, writer = await _raw_get(server.http_port, "/live/e.flv")
        data = await asyncio.wait_for(reader.read(), 20)  # until the server ends the body
        writer.close()
        await publisher
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body.endswith(b"\r\n0\r\n\r\n")  # the last chunk: not a cut connection


@pytest.mark.parametrize("max_queue", [64 * 1024, 512 * 1024])
async def test_a_viewer_that_never_reads_is_dropped_and_others_keep_playing(
        max_queue: int) -> None:
    """Bounded either way: with a small max_queue the rule sees the
    transport's backlog grow after each write; with a large one aiohttp's
    writes start to wait (the transport paused) and what piles up
    meanwhile is held, and counted."""
    limits = HubLimits(max_queue=max_queue, max_lag=60)
    async with Server(port=0, http_port=0, limits=limits) as server:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/slow", 600, keyint=25, interval=0.005,
            size=20_000))
        await wait_for(lambda: (c := server.hub.get(("live", "slow"))) is not None and c.live)
        _, stuck = await _raw_get(server.http_port, "/live/slow.flv", rcvbuf=4096)
        await wait_for(lambda: len(_viewers(server)) == 1)
        for viewer in _viewers(server):
            viewer.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        got = 0
        peak = 0
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{server.http_port}/live/slow.flv") as good:
            while len(_viewers(server)) == 2 or got < 1_000_000:
                chunk = await asyncio.wait_for(good.content.read(65536), 10)
                assert chunk
                got += len(chunk)
                peak = max([peak, *(v.queued_bytes() for v in _viewers(server))])
            stats = server.stats()
        stuck.close()
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
    # dropped past twice max_queue (plus what one flush adds), never unbounded
    assert peak <= 2 * limits.max_queue + 256 * 1024
    assert [p["protocol"] for s in stats["streams"] for p in s["players"]] == ["http-flv"]


async def test_viewers_count_against_the_connection_limits() -> None:
    async with Server(port=0, http_port=0, max_connections=2) as server, \
            aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/n", 200, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "n"))) is not None and c.live)
        url = f"http://127.0.0.1:{server.http_port}/live/n.flv"
        async with http.get(url) as first:
            assert first.status == 200
            await first.content.read(100)
            async with http.get(url) as second:
                assert second.status == 503
                assert "max_connections=2" in await second.text()
            with pytest.raises(rtmpx.RtmpError):  # nor an RTMP player
                async with rtmpx.connect(f"rtmp://127.0.0.1:{server.port}/live", timeout=5):
                    pass
            await wait_for(lambda: server.stats()["connections"] == 2)  # the refused one went
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_on_play_decides_with_the_query_string() -> None:
    asked: list[Any] = []

    def on_play(request: Any) -> bool:
        asked.append(request)
        return bool(request.params.get("token") == "good")

    async with Server(port=0, http_port=0, on_play=on_play) as server, \
            aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/k", 200, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "k"))) is not None and c.live)
        base = f"http://127.0.0.1:{server.http_port}/live/k.flv"
        async with http.get(base + "?token=bad") as response:
            assert response.status == 403
        async with http.get(base + "?token=good") as response:
            assert response.status == 200
            assert (await response.content.read(3)) == b"FLV"
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
    assert [(r.action, r.app, r.name, r.query) for r in asked] == [
        ("play", "live", "k", "token=bad"), ("play", "live", "k", "token=good")]


async def test_a_stream_outlives_the_request_timeout_and_the_server_closes_viewers() -> None:
    """The HTTP request deadline bounds requests, not a stream being
    played; closing the server ends every viewer's body."""
    async with Server(port=0) as server:
        http = HttpServer(server, port=0, context=server.context, request_timeout=1.0)
        await http.start()
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/t", 1000, interval=0.01))
        await wait_for(lambda: (c := server.hub.get(("live", "t"))) is not None and c.live)
        reader, writer = await _raw_get(http.port, "/live/t.flv")
        received = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + 2.5
        while loop.time() < until:
            received += len(await asyncio.wait_for(reader.read(65536), 5))
        assert len(_viewers(server)) == 1
        await asyncio.wait_for(server.close(), 15)
        rest = await asyncio.wait_for(reader.read(), 10)
        assert rest.endswith(b"0\r\n\r\n")
        writer.close()
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
        await http.close()
    assert received > 100_000


async def test_an_edge_serves_http_flv_of_a_stream_it_pulls_on_demand() -> None:
    """With ``pull``, a web viewer of a stream the edge does not have waits
    for the pull from the origin (an unknown one there: 404 after the wait)."""
    async with Server(port=0) as origin, \
            Server(port=0, http_port=0, pull=f"rtmp://127.0.0.1:{origin.port}/live") as edge, \
            aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{origin.port}/live/far", 150, keyint=10, interval=0.02))
        await wait_for(lambda: (c := origin.hub.get(("live", "far"))) is not None
                       and c.gop_bytes > 0)
        async with http.get(f"http://127.0.0.1:{edge.http_port}/live/far.flv") as response:
            assert response.status == 200
            body = await asyncio.wait_for(response.read(), 30)  # until the origin's end
        await publisher
        tags = _tags(body)
        numbers = [int.from_bytes(t.payload[5:9], "big") for t in tags
                   if t.is_video and not t.frame().is_sequence_header]
        assert numbers and numbers[0] % 10 == 0 and numbers == list(range(numbers[0], 150))
        async with http.get(f"http://127.0.0.1:{edge.http_port}/live/none.flv") as response:
            assert response.status == 404   # the origin does not have it either
        await wait_for(lambda: edge.relays is not None and not edge.relays.pullers)


@pytest.mark.parametrize(("encoder", "codec", "audio"), [
    (["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=10:log-level=error",
      "-c:a", "aac"], "hevc", "aac"),
    (["-c:v", "libsvtav1", "-preset", "12", "-g", "10", "-svtav1-params", "lp=1",
      "-c:a", "libopus", "-b:a", "48k"], "av1", "opus"),
    (["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "10",
      "-c:a", "libopus", "-b:a", "48k"], "vp9", "opus"),
])
async def test_ffmpeg_reads_enhanced_http_flv(
        tmp_path: Path, encoder: list[str], codec: str, audio: str) -> None:
    """FFmpeg 9 publishes HEVC, AV1 or VP9 (with AAC or Opus) over Enhanced
    RTMP; HTTP-FLV carries the same Enhanced FLV tags, which FFmpeg 9 reads
    back and decodes."""
    ffmpeg = ffmpeg_exe()
    async with Server(port=0, http_port=0) as server:
        publisher = start([
            ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3",
            *encoder, "-pix_fmt", "yuv420p", "-f", "flv",
            f"rtmp://127.0.0.1:{server.port}/live/{codec}"])
        try:
            await wait_for(lambda: (c := server.hub.get(("live", codec))) is not None
                           and c.live and c.gop_bytes > 0, timeout=20)
            out = tmp_path / "got.flv"
            viewer = _ffmpeg_reader(ffmpeg,
                                    f"http://127.0.0.1:{server.http_port}/live/{codec}.flv", out)
            code, err = await asyncio.to_thread(stop, viewer, 30)
        finally:
            await asyncio.to_thread(stop, publisher, 30)
    assert code == 0, err
    tags = _tags(out.read_bytes())
    assert {t.frame().codec for t in tags if t.is_video} == {codec}
    assert {t.frame().codec for t in tags if t.is_audio} == {audio}
    probe = await asyncio.to_thread(  # what FFmpeg 9 makes of the streams
        subprocess.run, [ffmpeg, "-hide_banner", "-i", str(out)],
        capture_output=True, text=True, timeout=30, check=False)
    assert f"Video: {codec}" in probe.stderr and f"Audio: {audio}" in probe.stderr, probe.stderr
    assert _decode_errors(ffmpeg, out) == ""


class _Transport:
    """What FlvStream asks of its transport."""

    def __init__(self) -> None:
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


async def test_a_write_that_fails_unexpectedly_costs_that_viewer_only() -> None:
    """Regression: an exception other than the peer going, raised by a
    write that had waited, left bytes held and never written (later ones
    went first) and run() waiting for ever after finish()."""
    async with Server(port=0) as server:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wire: list[bytes] = []

        async def send(data: bytes) -> None:
            wire.append(data)
            if data == b"A":
                await gate  # waits for the peer, as aiohttp's drain does

        transport = _Transport()
        stream = FlvStream(server.context, "peer", "127.0.0.1", transport)  # type: ignore[arg-type]
        stream.output.append(b"A")
        stream.flush()
        run = asyncio.ensure_future(stream.run(send))
        await asyncio.sleep(0)
        stream.output.append(b"B")
        stream.flush()  # held: a write waits
        gate.set_exception(ValueError("a bug"))
        completed = await asyncio.wait_for(run, 5)
        stream.output.append(b"C")
        stream.flush()
    assert completed is False and transport.aborted and stream.closed
    assert wire == [b"A"]  # nothing after, nothing out of order


async def test_a_viewer_waiting_for_a_pull_does_not_hold_up_shutdown() -> None:
    """Regression: Server.close() waited out PULL_WAIT (5 s) for an
    HTTP-FLV viewer of a stream expected from a sibling or an origin."""
    server = Server(port=0, http_port=0)
    await server.start()
    server.context.elsewhere = lambda key: True  # as a worker or an edge says
    async with aiohttp.ClientSession() as http:
        request = asyncio.ensure_future(
            http.get(f"http://127.0.0.1:{server.http_port}/live/later.flv"))
        await wait_for(lambda: len(server.context.viewers) == 1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(server.close(), 15)
        assert loop.time() - began < 2.0
        response = await request
        assert response.status == 503
        response.release()
