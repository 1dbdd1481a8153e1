"""The asyncio client: real peers (FFmpeg, nginx-rtmp), TLS, and the error
paths against small scripted servers built on ServerSession.

Every peer runs on 127.0.0.1 on a free port, every wait is bounded, and
every process started here is stopped at the end of its test.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

import rtmpx
from rtmpx import ProtocolError
from rtmpx.chunk import ChunkWriter, Message
from rtmpx.client import (
    Client,
    ConnectionRejectedError,
    PlayStream,
    PublishStream,
    StatusError,
    connect,
)
from rtmpx.events import (
    CommandCall,
    ConnectRequest,
    Event,
    HandshakeComplete,
    Metadata,
    PlayRequest,
    PublishRequest,
    VideoData,
)
from rtmpx.flv import Tag
from rtmpx.media import Frame
from rtmpx.session import ServerSession, SessionConfig
from rtmpx.url import parse_url

from .peers import Sample, coded, ffmpeg_exe, free_port, packet_count, start, stop

pytestmark = pytest.mark.timeout(120)


# --- helpers ------------------------------------------------------------------------

@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


async def stop_async(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> tuple[int, str]:
    """:func:`peers.stop` without blocking the event loop."""
    return await asyncio.to_thread(stop, proc, timeout)


async def connect_retry(url: str, *, seconds: float = 15.0, **kwargs: Any) -> Client:
    """Connect, retrying while the peer is not listening yet (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await connect(url, **kwargs)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def send_tags(stream: PublishStream, tags: list[Tag], *, realtime: bool = False) -> None:
    """Publish the tags of an FLV file (script data as metadata)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for tag in tags:
        if realtime:
            delay = tag.timestamp / 1000 - (loop.time() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
        if tag.is_video:
            await stream.send_video(tag.timestamp, tag.payload)
        elif tag.is_audio:
            await stream.send_frame(tag.frame())
        elif tag.is_script:
            values = tag.script()
            if values and values[0] == "onMetaData":
                await stream.send_metadata(dict(values[1]), tag.timestamp)


async def collect(play: PlayStream, seconds: float = 30.0) -> list[Frame | Metadata]:
    """Everything a play stream yields until it ends (bounded)."""
    items: list[Frame | Metadata] = []
    async with asyncio.timeout(seconds):
        async for item in play:
            items.append(item)
    return items


def check_video(items: list[Frame | Metadata], expected_frames: int) -> None:
    """Sequence header first, then a keyframe, every frame, timestamps in order."""
    video = [f for f in items if isinstance(f, Frame) and f.kind == "video"]
    assert video, "no video arrived"
    assert video[0].is_sequence_header and video[0].codec == "avc"
    assert video[1].is_keyframe and not video[1].is_sequence_header
    assert sum(1 for v in video if coded(v)) == expected_frames
    stamps = [v.timestamp for v in video]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[1]
    audio = [f for f in items if isinstance(f, Frame) and f.kind == "audio"]
    assert audio and audio[0].codec == "aac"


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


# --- the FFmpeg peers -------------------------------------------------------------------

@pytest.mark.interop
@pytest.mark.parametrize("complex_handshake", [True, False], ids=["digest", "simple"])
async def test_publish_to_ffmpeg(complex_handshake: bool, sample: Sample, tmp_path: Path,
                                 procs: list[subprocess.Popen[bytes]]) -> None:
    ffmpeg = ffmpeg_exe()
    port = free_port()
    out = tmp_path / "out.flv"
    procs.append(proc := start([ffmpeg, "-hide_banner", "-loglevel", "error", "-listen", "1",
                                "-i", f"rtmp://127.0.0.1:{port}/live/key", "-c", "copy",
                                "-f", "flv", str(out)]))
    async with await connect_retry(f"rtmp://127.0.0.1:{port}/live/key",
                                   complex_handshake=complex_handshake) as client:
        assert client.connected is not None
        assert client.connected.info["code"] == "NetConnection.Connect.Success"
        async with await client.publish() as stream:
            assert stream.name == "key"
            await send_tags(stream, sample.tags)
        assert stream.closed and stream.bytes_sent > sample.path.stat().st_size * 0.9
    assert client.closed
    code, err = await stop_async(proc)
    assert code == 0, err
    assert packet_count(ffmpeg, out, "v:0") == sample.video_frames == 50
    assert packet_count(ffmpeg, out, "a:0") == sample.audio_frames
    assert not other_tasks()


@pytest.mark.interop
async def test_play_from_ffmpeg(sample: Sample, procs: list[subprocess.Popen[bytes]]) -> None:
    ffmpeg = ffmpeg_exe()
    port = free_port()
    procs.append(proc := start([ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
                                "-i", str(sample.path), "-c", "copy", "-f", "flv",
                                "-listen", "1", f"rtmp://127.0.0.1:{port}/live/key"]))
    client = await connect_retry(f"rtmp://127.0.0.1:{port}/live/key")
    try:
        play = client.play()
        items = await collect(play)
        assert play.metadata is not None and play.metadata["width"] == 160.0
        assert isinstance(items[0], Metadata)
    finally:
        await client.close()
    code, err = await stop_async(proc)
    assert code == 0, err
    check_video(items, sample.video_frames)


# --- RTMPS: FFmpeg cannot listen with TLS ("rtmp_listen not available for rtmps"), so
# a TLS-terminating proxy in front of a plain `ffmpeg -listen 1` is the peer.

@pytest.fixture
async def tls_proxy(certificate: tuple[Path, Path]
                    ) -> AsyncIterator[Callable[[int], Awaitable[int]]]:
    """``await tls_proxy(upstream_port) -> tls_port``: TLS in, plain TCP to
    the upstream (retried until it listens), bytes copied both ways."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()
    ports: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        deadline = time.monotonic() + 15
        while True:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", ports[0])
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    writer.close()
                    return
                await asyncio.sleep(0.05)
        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def make(upstream: int) -> int:
        ports.append(upstream)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield make
    for server in servers:
        server.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        await server.wait_closed()


@pytest.mark.interop
@pytest.mark.parametrize("scheme", ["rtmps", "rtmp+ssl"])
async def test_rtmps_publish_to_ffmpeg(scheme: str, sample: Sample, tmp_path: Path,
                                       certificate: tuple[Path, Path],
                                       tls_proxy: Callable[[int], Awaitable[int]],
                                       procs: list[subprocess.Popen[bytes]]) -> None:
    ffmpeg = ffmpeg_exe()
    port = free_port()
    out = tmp_path / "out.flv"
    procs.append(proc := start([ffmpeg, "-hide_banner", "-loglevel", "error", "-listen", "1",
                                "-i", f"rtmp://127.0.0.1:{port}/live/key", "-c", "copy",
                                "-f", "flv", str(out)]))
    tls_port = await tls_proxy(port)
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    url = f"{scheme.split('+')[0]}://127.0.0.1:{tls_port}/live/key"
    async with connect(url, ssl=trust) as client:
        assert client._transport is not None
        assert client._transport.get_extra_info("ssl_object") is not None
        async with await client.publish() as stream:
            await send_tags(stream, sample.tags)
    code, err = await stop_async(proc)
    assert code == 0, err
    assert packet_count(ffmpeg, out, "v:0") == sample.video_frames


async def test_rtmps_untrusted_certificate(tls_proxy: Callable[[int], Awaitable[int]]) -> None:
    tls_port = await tls_proxy(free_port())
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(f"rtmps://127.0.0.1:{tls_port}/live/key", timeout=5)


# --- nginx-rtmp ---------------------------------------------------------------------------

@pytest.mark.interop
async def test_nginx_rtmpx_publishes_rtmpx_plays(nginx: int, sample: Sample) -> None:
    url = f"rtmp://127.0.0.1:{nginx}/live/relay1"
    async with connect(url) as player, connect(url) as publisher:
        play = await player.play()
        assert play.stream_id is not None
        items_task = asyncio.create_task(collect(play))
        async with await publisher.publish() as stream:
            await send_tags(stream, sample.tags)
        items = await items_task
    check_video(items, sample.video_frames)
    assert play.metadata is not None and play.metadata["height"] == 120.0
    assert not other_tasks()


def _established_to(port: int) -> int:
    """TCP connections to 127.0.0.1:port in state ESTABLISHED (Linux /proc)."""
    target = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == target and fields[3] == "01":
            count += 1
    return count


@pytest.mark.interop
async def test_nginx_rtmpx_publishes_ffmpeg_plays(nginx: int, sample: Sample, tmp_path: Path,
                                                  procs: list[subprocess.Popen[bytes]]) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see the player connect")
    ffmpeg = ffmpeg_exe()
    url = f"rtmp://127.0.0.1:{nginx}/live/relay2"
    out = tmp_path / "out.flv"
    before = _established_to(nginx)
    # FFmpeg keeps waiting after Play.UnpublishNotify: a read timeout (3 s) ends it
    procs.append(proc := start([ffmpeg, "-hide_banner", "-loglevel", "error",
                                "-rw_timeout", "3000000", "-i", url,
                                "-c", "copy", "-t", "30", "-f", "flv", str(out)]))
    async with asyncio.timeout(15):
        while _established_to(nginx) <= before:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # its play command reaches nginx
    async with connect(url) as publisher, await publisher.publish() as stream:
        await send_tags(stream, sample.tags, realtime=True)
    code, err = await stop_async(proc)
    assert code == 0, err
    assert packet_count(ffmpeg, out, "v:0") == sample.video_frames
    assert packet_count(ffmpeg, out, "a:0") >= sample.audio_frames - 2


@pytest.mark.interop
async def test_nginx_ffmpeg_publishes_rtmpx_plays(nginx: int, sample: Sample,
                                                  procs: list[subprocess.Popen[bytes]]) -> None:
    ffmpeg = ffmpeg_exe()
    url = f"rtmp://127.0.0.1:{nginx}/live/relay3"
    async with connect(url) as player:
        async with player.play() as play:
            items_task = asyncio.create_task(collect(play))
            procs.append(proc := start([ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
                                        "-i", str(sample.path), "-c", "copy", "-f", "flv",
                                        url]))
            items = await items_task
        code, err = await stop_async(proc)
    assert code == 0, err
    check_video(items, sample.video_frames)


@pytest.mark.interop
async def test_nginx_rejects_a_second_publisher(nginx: int, sample: Sample) -> None:
    url = f"rtmp://127.0.0.1:{nginx}/live/taken"
    async with connect(url) as first, connect(url) as second:
        async with await first.publish() as stream:
            await send_tags(stream, sample.tags[:5])
            with pytest.raises(StatusError) as info:
                await second.publish()
            assert info.value.code == "NetStream.Publish.BadName"
            assert info.value.info.get("level") == "error"
            assert not second.closed  # the connection survives a refused publish
        # once the first publisher left, the name is free again
        async with await second.publish() as again:
            await send_tags(again, sample.tags[:5])


# --- scripted servers on ServerSession: error paths and flow control --------------------

OnEvent = Callable[["SessionServer", ServerSession, Event], None]


def default_on_event(server: SessionServer, session: ServerSession, event: Event) -> None:
    if isinstance(event, ConnectRequest):
        session.accept_connect()
    elif isinstance(event, PublishRequest):
        session.accept_publish(event.stream_id)
    elif isinstance(event, PlayRequest):
        session.accept_play(event.stream_id)


class SessionServer:
    """A minimal asyncio RTMP server: one ServerSession per connection,
    scripted by ``on_event``; ``reading`` paused stops reading the socket
    (with a small receive buffer, so that TCP pushes back soon)."""

    def __init__(self, on_event: OnEvent = default_on_event, *,
                 config: SessionConfig | None = None, rcvbuf: int | None = None,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.on_event = on_event
        self.config = config
        self.rcvbuf = rcvbuf
        self.reading = asyncio.Event()
        self.reading.set()
        self.writers: list[asyncio.StreamWriter] = []
        self.handlers: set[asyncio.Task[Any]] = set()
        self.events: list[Event] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind((self.host, 0))
        self._server = await asyncio.start_server(self._handle, sock=sock)
        self.port = int(sock.getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        await self._server.wait_closed()
        if self.handlers:  # the connection handlers end too: no task outlives the server
            _, pending = await asyncio.wait(self.handlers, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def wait_for(self, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait (bounded) until ``predicate()`` holds."""
        async with asyncio.timeout(seconds):
            while not predicate():
                await asyncio.sleep(0.01)

    def url(self, path: str = "live/key") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"rtmp://{host}:{self.port}/{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        session = ServerSession(self.config)
        try:
            while True:
                await self.reading.wait()
                data = await reader.read(65536)
                if not data:
                    break
                for event in session.receive_data(data):
                    self.events.append(event)
                    self.on_event(self, session, event)
                    writer.write(session.data_to_send())
                writer.write(session.data_to_send())
                await writer.drain()
        except (ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_connect_await_and_context_manager() -> None:
    async with SessionServer() as server:
        client = await connect(server.url())
        assert not client.closed and client.url.stream == "key"
        assert client.session.state is rtmpx.session.ConnectionState.CONNECTED
        await client.close()
        await client.close()  # twice is harmless
        assert client.closed
        async with connect(server.url(), chunk_size=60000) as client2:
            assert client2.session.chunk_size == 60000
        assert client2.closed
    req = [e for e in server.events if isinstance(e, ConnectRequest)]
    assert [(r.app, r.tc_url) for r in req] == [("live", f"rtmp://127.0.0.1:{server.port}/live")] * 2
    assert all(isinstance(e, HandshakeComplete) and e.complex
               for e in server.events if isinstance(e, HandshakeComplete))
    assert not other_tasks()


async def test_connection_refused_is_quick() -> None:
    t0 = time.monotonic()
    with pytest.raises(ConnectionError):
        await connect(f"rtmp://127.0.0.1:{free_port()}/live/key", timeout=5)
    assert time.monotonic() - t0 < 2


async def test_silent_server_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts, reads nothing, says nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await connect(f"rtmp://127.0.0.1:{port}/live/key", timeout=1)
        assert 0.9 < time.monotonic() - t0 < 3
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()
    assert not other_tasks()


async def test_connect_rejected() -> None:
    def reject(server: SessionServer, session: ServerSession, event: Event) -> None:
        if isinstance(event, ConnectRequest):
            session.reject_connect("bad token")

    async with SessionServer(reject) as server:
        with pytest.raises(ConnectionRejectedError) as info:
            await connect(server.url())
    assert info.value.info["code"] == "NetConnection.Connect.Rejected"
    assert info.value.description == "bad token"


async def test_connection_dropped_during_connect() -> None:
    def drop(server: SessionServer, session: ServerSession, event: Event) -> None:
        if isinstance(event, ConnectRequest):
            server.writers[-1].transport.abort()

    async with SessionServer(drop) as server:
        with pytest.raises(ConnectionError):
            await connect(server.url(), timeout=5)


GARBAGE = ChunkWriter().encode(Message(20, b"\x05\x05", 0, 0))  # a command without a name


async def test_protocol_error_during_connect_closes_cleanly() -> None:
    def garbage(server: SessionServer, session: ServerSession, event: Event) -> None:
        if isinstance(event, ConnectRequest):
            server.writers[-1].write(GARBAGE)

    async with SessionServer(garbage) as server:
        with pytest.raises(ProtocolError, match="malformed command"):
            await connect(server.url(), timeout=5)
    assert not other_tasks()


async def test_protocol_error_while_playing() -> None:
    def play_then_garbage(server: SessionServer, session: ServerSession, event: Event) -> None:
        default_on_event(server, session, event)
        if isinstance(event, PlayRequest):
            session.send_video(event.stream_id, 0, b"\x17\x00\x00\x00\x00\x01\x64\x00")
            server.writers[-1].write(session.data_to_send())
            server.writers[-1].write(GARBAGE)

    async with SessionServer(play_then_garbage) as server:
        client = await connect(server.url())
        items: list[Frame | Metadata] = []
        with pytest.raises(ProtocolError):
            async with asyncio.timeout(5):
                async for item in client.play():
                    items.append(item)
        assert client.closed
        with pytest.raises(ProtocolError):
            await client.publish("x")  # every later use sees the same error
        await client.close()
    assert not other_tasks()


async def test_publish_and_play_refused() -> None:
    def refuse(server: SessionServer, session: ServerSession, event: Event) -> None:
        if isinstance(event, PublishRequest):
            session.reject_publish(event.stream_id, "no", "NetStream.Publish.Denied")
        elif isinstance(event, PlayRequest):
            session.reject_play(event.stream_id)
        else:
            default_on_event(server, session, event)

    async with SessionServer(refuse) as server, connect(server.url()) as client:
        with pytest.raises(StatusError) as info:
            await client.publish()
        assert (info.value.code, info.value.description) == ("NetStream.Publish.Denied", "no")
        with pytest.raises(StatusError) as info:
            await collect(client.play("missing"))
        assert info.value.code == "NetStream.Play.StreamNotFound"
        assert not client._streams  # both streams were deleted again
    names = [type(e).__name__ for e in server.events]
    assert names.count("StreamDeleted") == 2


async def test_call_results_and_errors() -> None:
    def answer(server: SessionServer, session: ServerSession, event: Event) -> None:
        default_on_event(server, session, event)
        if isinstance(event, CommandCall) and event.name == "getTime":
            session.result(event, 1234.0, {"zone": event.args[0]})

    async with SessionServer(answer, config=SessionConfig(accept_calls=frozenset({"getTime"}))
                             ) as server, connect(server.url()) as client:
        assert await client.call("getTime", "utc") == (1234.0, {"zone": "utc"})
        with pytest.raises(StatusError) as info:
            await client.call("nope")
        assert info.value.code == "NetConnection.Call.Failed"


async def test_unanswered_waits_are_bounded_and_woken_by_close() -> None:
    def mute(server: SessionServer, session: ServerSession, event: Event) -> None:
        if isinstance(event, ConnectRequest):
            session.accept_connect()  # never answers publish or play

    async with SessionServer(mute) as server:
        client = await connect(server.url(), timeout=0.5)
        with pytest.raises(TimeoutError):
            await client.publish()
        client.timeout = None
        waiting = asyncio.create_task(client.play().start())
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await client.close()
        with pytest.raises(ConnectionError):
            await waiting
    assert not other_tasks()


async def test_play_backpressure_pauses_reading() -> None:
    count, size = 2000, 1500
    frame = b"\x27\x01\x00\x00\x00" + b"x" * (size - 5)

    def flood(server: SessionServer, session: ServerSession, event: Event) -> None:
        default_on_event(server, session, event)
        if isinstance(event, PlayRequest):
            session.send_video(event.stream_id, 0, b"\x17\x00\x00\x00\x00\x01\x64\x00")
            for i in range(count):
                session.send_video(event.stream_id, i * 40, frame)
            session.notify_unpublish(event.stream_id)

    async with SessionServer(flood) as server, connect(server.url()) as client:
        play = await client.play(max_queue=50)
        transport = client._transport
        assert transport is not None
        async with asyncio.timeout(5):
            while transport.is_reading():
                await asyncio.sleep(0.01)
        held = len(play._queue)
        one_read = int(getattr(transport, "max_size", 256 * 1024))
        assert 50 <= held <= 50 + one_read // size + 1  # bounded: the limit + one read
        await asyncio.sleep(0.2)
        assert len(play._queue) == held  # nothing more read while paused
        items = await collect(play)
        assert transport.is_reading()
    video = [f for f in items if isinstance(f, Frame)]
    assert len(video) == count + 1
    assert [v.timestamp for v in video[1:]] == [i * 40 for i in range(count)]


async def test_publish_backpressure_waits_for_the_transport() -> None:
    frame = b"\x27\x01\x00\x00\x00" + b"x" * 65531
    total = 400  # 26 MB: more than the socket buffers and the 1 MiB high-water mark

    async with SessionServer(rcvbuf=65536) as server, connect(server.url()) as client:
        stream = await client.publish()
        server.reading.clear()

        async def pump() -> None:
            for i in range(total):
                await stream.send_video(i * 40, frame)

        task = asyncio.create_task(pump())
        async with asyncio.timeout(10):
            while not client._write_paused:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert not task.done()  # waiting for the transport to drain
        transport = client._transport
        assert transport is not None
        assert transport.get_write_buffer_size() < 2 * 1024 * 1024
        server.reading.set()
        async with asyncio.timeout(30):
            await task
        assert stream.bytes_sent >= total * len(frame)
        await server.wait_for(
            lambda: sum(isinstance(e, VideoData) for e in server.events) == total)
        await stream.close()


async def test_send_on_a_closed_stream_or_client_raises() -> None:
    async with SessionServer() as server:
        client = await connect(server.url())
        stream = await client.publish("a")
        await stream.close()
        with pytest.raises(Exception, match="closed"):
            await stream.send_video(0, b"\x17\x01\x00\x00\x00")
        stream2 = await client.publish("b")
        await client.close()
        assert stream2.closed
        with pytest.raises(ConnectionError):
            await stream2.send_audio(0, b"\xaf\x01")
        with pytest.raises(ValueError):
            await client.publish("")


async def test_play_past_unpublish_until_the_connection_closes() -> None:
    def two_publishes(server: SessionServer, session: ServerSession, event: Event) -> None:
        default_on_event(server, session, event)
        if isinstance(event, PlayRequest):
            sid = event.stream_id
            session.send_metadata(sid, {"width": 320.0})
            session.send_video(sid, 0, b"\x17\x00\x00\x00\x00\x01\x64\x00")
            session.send_video(sid, 40, b"\x17\x01\x00\x00\x00ab")
            session.notify_unpublish(sid)
            session.notify_publish(sid)
            session.send_metadata(sid, {"width": 640.0})
            session.send_video(sid, 80, b"\x27\x01\x00\x00\x00cd")
            server.writers[-1].write(session.data_to_send())
            server.writers[-1].close()

    async with SessionServer(two_publishes) as server:
        client = await connect(parse_url(server.url("live")), timeout=5)
        play = client.play("key", until_unpublish=False)
        items = await collect(play, 10)
        assert [type(i).__name__ for i in items] == ["Metadata", "Frame", "Frame", "Metadata",
                                                     "Frame"]
        assert play.metadata == {"width": 640.0}
        assert [i.timestamp for i in items if isinstance(i, Frame)] == [0, 40, 80]
        assert client.closed  # the server closed the connection: a clean end
        await client.close()
    assert not other_tasks()


async def test_ipv6() -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        server = SessionServer(host="::1")
        await server.__aenter__()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        async with connect(server.url("app/inst/key?t=1")) as client, \
                await client.publish() as stream:
            await stream.send_video(0, b"\x17\x00\x00\x00\x00\x01\x64\x00")
        await server.wait_for(lambda: any(isinstance(e, VideoData) for e in server.events))
    finally:
        await server.__aexit__(None, None, None)
    req = next(e for e in server.events if isinstance(e, ConnectRequest))
    assert (req.app, req.tc_url) == ("app/inst", f"rtmp://[::1]:{server.port}/app/inst")
    pub = next(e for e in server.events if isinstance(e, PublishRequest))
    assert (pub.name, pub.query) == ("key", "t=1")


async def test_send_waits_are_bounded_by_the_timeout() -> None:
    """Review finding: a server that took none of our data made send_*
    wait for ever (a push relay hung on a stalled upstream)."""
    frame = b"\x27\x01\x00\x00\x00" + b"x" * 65531
    async with SessionServer(rcvbuf=65536) as server:
        client = await connect(server.url(), timeout=1.0)
        stream = await client.publish()
        server.reading.clear()
        with pytest.raises(TimeoutError, match="took none of our data"):
            async with asyncio.timeout(30):
                for i in range(1000):
                    await stream.send_video(i * 40, frame)
        server.reading.set()
        client._transport.abort()  # type: ignore[union-attr]
        await client.close()


# --- Enhanced RTMP: capabilities and reconnect requests ---------------------------------

async def test_the_server_capabilities_and_an_async_reconnect_callback() -> None:
    from rtmpx.server import Server
    from rtmpx.session.capabilities import DEFAULT_CAPABILITIES

    from .peers import wait_for

    seen: list[str] = []

    async def on_request(event: rtmpx.events.ReconnectRequested) -> None:
        await asyncio.sleep(0.01)
        seen.append(event.tc_url)

    async with Server(port=0) as server, \
            rtmpx.connect(f"rtmp://127.0.0.1:{server.port}/live",
                          on_reconnect_request=on_request) as client:
        assert client.server_capabilities == DEFAULT_CAPABILITIES
        assert not client.reconnect_requested
        assert len(server.request_reconnect(tc_url="rtmp://elsewhere/live")) == 1
        await wait_for(lambda: seen == ["rtmp://elsewhere/live"], 5)
        assert client.reconnect_request is not None
        assert client.reconnect_request.description == "The server asks you to reconnect."
        assert not client.closed   # asked, not dropped: the application decides


async def test_a_publish_follows_a_reconnect_request_to_another_server() -> None:
    """follow_reconnect: the stream goes on to the next keyframe on the old
    server, then moves to the tcUrl it was given and starts there with the
    metadata, the sequence headers and that keyframe."""
    from rtmpx.server import Server

    from .peers import AAC_SEQ, AVC_SEQ, aac_frame, avc_frame, sinks, wait_for

    async with Server(port=0) as second:
        first = Server(port=0)
        await first.start()
        items: list[Any] = []

        async def watch(port: int, into: list[Any]) -> None:
            async with rtmpx.connect(f"rtmp://127.0.0.1:{port}/live/moving") as viewer:
                async for item in viewer.play():
                    into.append(item)

        on_first: list[Any] = []
        watchers = [asyncio.create_task(watch(second.port, items)),
                    asyncio.create_task(watch(first.port, on_first))]
        await wait_for(lambda: sinks(second, "live/moving") == sinks(first, "live/moving") == 1)
        client = await rtmpx.connect(f"rtmp://127.0.0.1:{first.port}/live/moving",
                                     follow_reconnect=True)
        assert client.session.capabilities.reconnect   # it acts on requests: it says so
        stream = await client.publish()
        await stream.send_metadata({"width": 16.0, "height": 16.0})
        await stream.send_video(0, AVC_SEQ)
        await stream.send_audio(0, AAC_SEQ)

        async def frames(start: int, stop: int) -> None:
            for i in range(start, stop):
                await stream.send_video(40 * i, avc_frame(i % 10 == 0, i))
                await stream.send_audio(40 * i + 1, aac_frame(i))
                await asyncio.sleep(0.005)

        await frames(0, 25)
        closing = asyncio.create_task(
            first.close(reconnect_tc_url=f"rtmp://127.0.0.1:{second.port}/live"))
        await wait_for(lambda: client.reconnect_requested, 5)
        await frames(25, 60)   # 25..29 to the first server; from keyframe 30, the second
        await asyncio.wait_for(closing, 10)
        assert stream.reconnects == 1 and client.closed
        assert stream.client is not client and stream.client.url.port == second.port
        await stream.close()
        assert stream.client.closed   # the connection the move opened goes with the stream
        await asyncio.wait_for(asyncio.gather(*watchers), 10)
    assert isinstance(items[0], Metadata) and items[0].metadata["width"] == 16.0
    video = [f for f in items if isinstance(f, Frame) and f.kind == "video"]
    audio = [f for f in items if isinstance(f, Frame) and f.kind == "audio"]
    assert video[0].is_sequence_header and audio[0].is_sequence_header
    coded = [f for f in video if not f.is_sequence_header]
    assert coded[0].is_keyframe
    assert [f.timestamp for f in coded] == [40 * i for i in range(30, 60)]
    before = [f.timestamp for f in on_first if isinstance(f, Frame) and f.kind == "video"
              and not f.is_sequence_header]
    assert before == [40 * i for i in range(30)]   # up to the keyframe, nothing lost


async def test_without_follow_reconnect_a_publish_stays() -> None:
    from rtmpx.server import Server

    from .peers import wait_for

    async with Server(port=0) as server, \
            rtmpx.connect(f"rtmp://127.0.0.1:{server.port}/live/stay",
                          on_reconnect_request=lambda _: None) as client, \
            await client.publish() as stream:
        server.request_reconnect(("live", "stay"), tc_url="rtmp://127.0.0.1:1/live")
        await wait_for(lambda: client.reconnect_requested, 5)
        await stream.send_video(0, b"\x17\x01\x00\x00\x00key")   # a keyframe: no move
        assert stream.reconnects == 0 and stream.client is client and not client.closed


async def test_a_move_keeps_an_application_of_two_segments() -> None:
    """Review finding: following a reconnect request re-parsed its tcUrl (an
    application URL) as a stream URL: a publish to ``live/instance/key``
    asked to reconnect to the same server moved to app ``live``."""
    from rtmpx.server import Server, StreamKey

    from .peers import AVC_SEQ, avc_frame, wait_for

    async with Server(port=0) as server, \
            rtmpx.connect(f"rtmp://127.0.0.1:{server.port}/live/instance/key",
                          follow_reconnect=True) as client, \
            await client.publish() as stream:
        await stream.send_video(0, AVC_SEQ)
        await stream.send_video(0, avc_frame(True, 0))
        assert server.request_reconnect(("live/instance", "key"))   # this server again
        await wait_for(lambda: client.reconnect_requested, 5)
        await stream.send_video(40, avc_frame(True, 1))             # a keyframe: the move
        assert stream.reconnects == 1
        assert stream.client.session.app == "live/instance"
        await wait_for(lambda: [k for k, ch in server.hub.channels.items() if ch.live]
                       == [StreamKey("live/instance", "key")], 5)


def test_the_header_replay_keeps_the_latest_per_key_bounded() -> None:
    from rtmpx.client import HeaderReplay

    replay: HeaderReplay[str] = HeaderReplay(max_keys=3, max_bytes=100)
    assert replay.put([("video", 0, 1), ("video", 1, 1)], "both", 10)  # two tracks: once
    assert replay.put([("audio", 0, 1)], "aac", 10)
    assert list(replay) == ["both", "aac"] and replay.bytes == 20
    assert replay.put([("video", 0, 1)], "v0", 10)  # newer for track 0: moves last
    assert list(replay) == ["both", "aac", "v0"] and replay.bytes == 30
    assert replay.put([("video", 1, 1)], "v1", 10)  # "both" is no one's latest: gone
    assert list(replay) == ["aac", "v0", "v1"] and replay.bytes == 30
    assert not replay.put([("video", 2, 1)], "v2", 10)   # a fourth key: not kept
    assert not replay.put([("audio", 0, 1)], "big", 81)  # beyond the bytes: not kept,
    assert list(replay) == ["v0", "v1"] and replay.bytes == 20  # the stale one dropped
    assert replay.put([("audio", 0, 1)], "fits", 80) and replay.bytes == 100


async def test_a_move_replays_every_track_header() -> None:
    """Review finding: the replay after a move kept one header per message
    type: a multitrack publisher reached the new server with one track's
    sequence start, without its video Metadata or audio MultichannelConfig."""
    from rtmpx.server import Server

    from .peers import AAC_SEQ, sinks, wait_for

    def track(track_id: int, packet_type: int, body: bytes) -> bytes:
        # Enhanced video, Multitrack OneTrack: FrameType 1, then the track's packet type
        return bytes([0x80 | 0x10 | 6, packet_type]) + b"hvc1" + bytes([track_id]) + body

    keyframe = bytes([0x80 | 0x10 | 3]) + b"hvc1" + b"\x00\x00\x00\x02\x26\x01"
    headers = [(9, track(0, 0, b"old config")), (9, track(1, 0, b"track 1")),
               (9, track(0, 4, b"colorInfo")), (8, AAC_SEQ),
               (8, bytes([0x90 | 4]) + b"Opus" + b"\x02\x01\x00\x00"),  # MultichannelConfig
               (9, track(0, 0, b"new config"))]
    async with Server(port=0) as first, Server(port=0) as second:
        items: list[Any] = []

        async def watch() -> None:
            async with rtmpx.connect(f"rtmp://127.0.0.1:{second.port}/live/mt") as viewer:
                async for item in viewer.play():
                    items.append(item)

        watcher = asyncio.create_task(watch())
        await wait_for(lambda: sinks(second, "live/mt") == 1)
        async with rtmpx.connect(f"rtmp://127.0.0.1:{first.port}/live/mt",
                                 follow_reconnect=True) as client:
            stream = await client.publish()
            for type_id, payload in headers:
                await (stream.send_video if type_id == 9 else stream.send_audio)(0, payload)
            await stream.send_video(0, keyframe)
            first.request_reconnect(("live", "mt"), tc_url=f"rtmp://127.0.0.1:{second.port}/live")
            await wait_for(lambda: client.reconnect_requested, 5)
            await stream.send_video(40, keyframe)
            assert stream.reconnects == 1
            await stream.close()
        await asyncio.wait_for(watcher, 10)
    # each (kind, track, header kind) once, the newest last, then the keyframe
    assert [bytes(i.payload) for i in items] == [p for _, p in headers[1:]] + [keyframe]


async def test_a_publish_follows_a_restart_of_its_server() -> None:
    """Review finding: Server.close() asks clients to reconnect to its own
    address (a restart); the stream moved at its next keyframe while the
    server was still closing, was refused, and died (stream_id None, the
    keyframe lost).  Now it tries again while its senders wait: the server
    started on the same port a second later gets every frame from that
    keyframe on, video and audio (sent by two tasks)."""
    from rtmpx.server import Server

    from .peers import AAC_SEQ, AVC_SEQ, aac_frame, avc_frame, wait_for

    def numbers(items: list[Any], kind: str) -> list[int]:
        offset = 5 if kind == "video" else 2
        return [int.from_bytes(bytes(f.payload)[offset:offset + 4], "big") for f in items
                if isinstance(f, Frame) and f.kind == kind and not f.is_sequence_header]

    async def take(server: Server, into: list[Any]) -> None:
        async for incoming in server.publishes():
            async for item in incoming:
                into.append(item)
            return

    first = Server(port=0)
    await first.start()
    port = first.port
    on_first: list[Any] = []
    on_second: list[Any] = []
    takers = [asyncio.create_task(take(first, on_first))]
    await asyncio.sleep(0.05)
    client = await rtmpx.connect(f"rtmp://127.0.0.1:{port}/live/restart",
                                 follow_reconnect=True)
    stream = await client.publish()
    await stream.send_video(0, AVC_SEQ)
    await stream.send_audio(0, AAC_SEQ)

    async def video(start: int, stop: int) -> None:
        for i in range(start, stop):
            await stream.send_video(40 * i, avc_frame(i % 5 == 0, i))
            await asyncio.sleep(0.01)

    async def audio(start: int, stop: int) -> None:
        for i in range(start, stop):
            await stream.send_audio(40 * i + 1, aac_frame(i))
            await asyncio.sleep(0.01)

    await asyncio.gather(video(0, 8), audio(0, 8))
    closing = asyncio.create_task(first.close())   # to this address again
    await wait_for(lambda: client.reconnect_requested, 5)

    async def restart() -> Server:
        await closing
        await asyncio.sleep(1.0)
        second = Server(port=port)
        await second.start()
        takers.append(asyncio.create_task(take(second, on_second)))
        return second

    restarting = asyncio.create_task(restart())
    await asyncio.gather(video(8, 40), audio(8, 40))   # keyframe 10 moves the stream
    second = await restarting
    assert stream.reconnects == 1 and stream.client.url.port == port
    await stream.close()
    await asyncio.wait_for(takers[1], 10)
    await second.close()
    await client.close()
    await asyncio.gather(*takers)
    assert numbers(on_first, "video") == list(range(10))
    assert numbers(on_second, "video") == list(range(10, 40))   # from the switch keyframe
    assert numbers(on_first, "audio") + numbers(on_second, "audio") == list(range(40))
    assert [f.is_sequence_header for f in on_second if isinstance(f, Frame)][:2] == [True] * 2


async def test_a_move_that_never_reaches_the_new_server_closes_the_stream() -> None:
    from rtmpx.server import Server

    from .peers import aac_frame, avc_frame, wait_for

    async with Server(port=0) as server, \
            rtmpx.connect(f"rtmp://127.0.0.1:{server.port}/live/gone", follow_reconnect=True,
                          follow_reconnect_timeout=1.2) as client, \
            await client.publish() as stream:
        server.request_reconnect(("live", "gone"), tc_url=f"rtmp://127.0.0.1:{free_port()}/x")
        await wait_for(lambda: client.reconnect_requested, 5)
        started = time.monotonic()
        with pytest.raises(ConnectionError) as raised:
            await stream.send_video(0, avc_frame(True, 0))
        assert 1.0 <= time.monotonic() - started < 5.0   # tried again, for the time given
        assert stream.closed
        with pytest.raises(ConnectionError) as again:
            await stream.send_audio(0, aac_frame(0))     # every send: the same error
        assert again.value is raised.value
