"""Real peers for interop tests: FFmpeg from PyPI, Debian's tools if present.

Every helper is bounded in time; a missing peer makes the test skip and
say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rtmpx.flv import Tag, read_tags
from rtmpx.media import Frame


def ffmpeg_exe() -> str:
    """The modern FFmpeg (9.x) from the imageio-ffmpeg package."""
    try:
        import imageio_ffmpeg
    except ImportError:
        pytest.skip("imageio-ffmpeg is not installed (pip install -e '.[test]')")
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def debian_tool(name: str) -> str:
    """A Debian-packaged tool (ffmpeg 5.1, ffprobe, rtmpdump, nginx) or skip."""
    for candidate in (f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install it; .ci/run does)")
    return found


def listener() -> socket.socket:
    """A TCP socket listening on 127.0.0.1 on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def lavfi_publish_args(seconds: float = 2.0, rate: int = 25, gop: int = 10) -> list[str]:
    """FFmpeg input + encoding arguments for a small H.264/AAC test stream."""
    return [
        "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={rate}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", str(gop), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k",
    ]


def start(args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start a peer process with its output captured."""
    return subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> tuple[int, str]:
    """Wait for a peer to end (killing it after ``timeout``); its code and stderr."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return proc.returncode, err.decode("utf-8", "replace")


def packet_count(ffmpeg: str, path: Path, stream: str = "v:0") -> int:
    """Packets of one stream of a media file, as FFmpeg reads them."""
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy",
         "-f", "framecrc", "-"],
        capture_output=True, text=True, timeout=60, check=True)
    return sum(1 for line in out.stdout.splitlines() if line and not line.startswith("#"))


NGINX = Path("/usr/sbin/nginx")
NGINX_RTMP = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_sync(args: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
    """Run a peer to its end (killed after ``timeout``), its output captured."""
    return subprocess.run(list(args), capture_output=True, timeout=timeout, check=False)


def encode_flv_files(folder: Path, cases: dict[str, list[str]], seconds: float,
                     parallel: int = 2) -> dict[str, Path]:
    """An FLV file per case (FFmpeg 9 input and encoding arguments), ``seconds``
    long, encoded ``parallel`` at a time: those that FFmpeg made."""
    ffmpeg = ffmpeg_exe()
    jobs = {name: [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args,
                   "-t", str(seconds), "-f", "flv", str(folder / f"{name}.flv")]
            for name, args in cases.items()}
    with ThreadPoolExecutor(parallel) as pool:
        done = dict(zip(jobs, pool.map(run_sync, jobs.values()), strict=True))
    return {name: folder / f"{name}.flv" for name, proc in done.items() if proc.returncode == 0}


@dataclass
class Sample:
    """A small H.264/AAC FLV file made by FFmpeg, and its tags."""

    path: Path
    tags: list[Tag]

    @property
    def video_frames(self) -> int:
        """Coded video frames (not sequence headers or ends)."""
        return sum(1 for t in self.tags if t.is_video and coded(t.frame()))

    @property
    def audio_frames(self) -> int:
        return sum(1 for t in self.tags if t.is_audio and not t.frame().is_sequence_header)


def coded(frame: Frame) -> bool:
    """A coded video frame: not a sequence header or end."""
    return not frame.is_sequence_header and not frame.is_end_of_sequence


def make_sample(ffmpeg: str, path: Path, seconds: float = 2.0) -> Sample:
    """A small H.264/AAC FLV file made by FFmpeg (lavfi), with its tags."""
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                    *lavfi_publish_args(seconds), "-f", "flv", str(path)],
                   check=True, timeout=60, capture_output=True)
    return Sample(path, read_tags(path))


@contextlib.contextmanager
def nginx_rtmp(folder: Path) -> Iterator[int]:
    """nginx with the Debian RTMP module, in the foreground, on a free port;
    application ``live`` relays live streams."""
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is missing (apt-get install nginx libnginx-mod-rtmp)")
    if not NGINX_RTMP.exists():
        pytest.skip(f"{NGINX_RTMP} is missing (apt-get install libnginx-mod-rtmp)")
    (folder / "logs").mkdir(exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
error_log stderr warn;
pid {folder}/nginx.pid;
load_module {NGINX_RTMP};
events {{}}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
        }}
    }}
}}
""")
    log = (folder / "stderr.log").open("wb")
    proc = subprocess.Popen([str(NGINX), "-c", str(conf), "-p", str(folder)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nginx exited: {(folder / 'stderr.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not listen within 15 s")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


# --- asyncio helpers ---------------------------------------------------------------

async def run(*args: str, timeout: float = 60.0) -> tuple[int, str]:
    """Run a peer to its end (killed after ``timeout``): exit code, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        _, err = await proc.communicate()
    return proc.returncode or 0, err.decode("utf-8", "replace")


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    """Poll ``predicate`` every 50 ms until it holds (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def channel(server: Any, key: str) -> Any:
    """The hub channel of ``"app/name"`` on an rtmpx server, or None."""
    app, _, name = key.partition("/")
    return server.hub.get((app, name))


def sinks(server: Any, key: str) -> int:
    """Players of a key on an rtmpx server."""
    found = channel(server, key)
    return len(found.players) if found is not None else 0


def live(server: Any, key: str) -> bool:
    """Whether a key has a publisher on an rtmpx server."""
    found = channel(server, key)
    return found is not None and found.live


def messages_in(server: Any, key: str) -> int:
    """Messages the current publication of a key has received."""
    found = channel(server, key)
    return found.publication.messages_in if found is not None and found.live else 0


# --- synthetic media and raw peers (no external process) -------------------------------

#: Small FLV tag bodies that parse as H.264/AAC (sequence headers, key and
#: inter frames): enough for the relay, the recorder and the ingest API.
AVC_SEQ = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04abcd\x01\x00\x02ef"
AAC_SEQ = b"\xaf\x00\x12\x10"


def avc_frame(key: bool, n: int, size: int = 600) -> bytes:
    """An AVC NALU video tag body: keyframe or inter frame number ``n``."""
    return (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + n.to_bytes(4, "big") \
        + b"v" * size


def aac_frame(n: int, size: int = 100) -> bytes:
    return b"\xaf\x01" + n.to_bytes(4, "big") + b"a" * size


async def publish_frames(url: str, frames: int, *, name: str | None = None, keyint: int = 25,
                         interval: float = 0.0, start: int = 0, size: int = 600,
                         publish_type: str = "live", hold: float = 0.0) -> int:
    """Publish metadata, sequence headers and ``frames`` video frames (with
    audio between them) with the rtmpx client; a keyframe every ``keyint``,
    ``interval`` seconds apart, timestamps 40 ms apart from ``start``.
    Stays ``hold`` seconds after the last frame; returns the frames sent."""
    import rtmpx

    async with rtmpx.connect(url, timeout=10) as client, \
            await client.publish(name, type=publish_type) as stream:
        await stream.send_metadata({"width": 16.0, "height": 16.0})
        await stream.send_video(start, AVC_SEQ)
        await stream.send_audio(start, AAC_SEQ)
        for i in range(frames):
            ts = start + 40 * i
            await stream.send_video(ts, avc_frame(i % keyint == 0, i, size))
            await stream.send_audio(ts + 1, aac_frame(i))
            if interval:
                await asyncio.sleep(interval)
        if hold:
            await asyncio.sleep(hold)
    return frames


class RawPeer:
    """A :class:`rtmpx.ClientSession` over a plain TCP connection, driven by
    hand: for tests that send what the rtmpx client never would."""

    def __init__(self, port: int, app: str = "live", *, rcvbuf: int | None = None,
                 source: str | None = None) -> None:
        from rtmpx import ClientSession

        self.port = port
        self.session = ClientSession(app, f"rtmp://127.0.0.1:{port}/{app}")
        self.events: list[Any] = []
        self.rcvbuf = rcvbuf
        self.source = source    # a local address of 127.0.0.0/8 to connect from
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.closed = False

    async def open(self, *, connect: bool = True) -> RawPeer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        if self.source is not None:
            sock.bind((self.source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        if connect:
            from rtmpx.events import Connected

            self.session.connect()
            self.flush()
            await self.until(lambda: any(isinstance(e, Connected) for e in self.events))
        return self

    def flush(self) -> None:
        assert self.writer is not None
        data = self.session.data_to_send()
        if data:
            self.writer.write(data)

    def send_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def read_once(self, timeout: float = 10.0) -> bool:
        """Read what arrives (once); False when the server closed."""
        assert self.reader is not None
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except ConnectionError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.events += self.session.receive_data(data)
        self.flush()
        return True

    async def until(self, predicate: Any, timeout: float = 10.0) -> None:
        """Read until ``predicate()`` holds (AssertionError if the server
        closes first or the time runs out)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("condition not reached in time")
            try:
                if not await self.read_once(left):
                    raise AssertionError("the server closed the connection")
            except TimeoutError:
                raise AssertionError("condition not reached in time") from None

    async def closed_by_server(self, timeout: float = 10.0) -> bool:
        """Read until the server closes (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not await self.read_once(deadline - time.monotonic()):
                    return True
            except TimeoutError:
                return False
        return False

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def create_stream(self) -> int:
        """createStream, and wait for its id."""
        from rtmpx.events import StreamCreated

        txn = self.session.create_stream()
        self.flush()
        await self.until(lambda: any(isinstance(e, StreamCreated) and e.transaction_id == txn
                                     for e in self.events))
        return next(e.stream_id for e in self.events
                    if isinstance(e, StreamCreated) and e.transaction_id == txn)

    async def close(self) -> None:
        """Close (abort, if what we wrote is still unsent)."""
        if self.writer is not None:
            if self.writer.transport.get_write_buffer_size():
                self.writer.transport.abort()
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 5)
            except (ConnectionError, OSError, TimeoutError):
                pass


def shrink_send_buffers(server: Any, size: int = 8192) -> None:
    """Make the kernel hold little for each connection of an rtmpx server,
    so that a peer that does not read shows in the server's own queue."""
    for conn in server.connections:
        if conn.transport is not None:
            sock = conn.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
