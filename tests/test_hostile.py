"""Hostile clients against a live ``rtmpx serve`` process (issue 8).

Each case attacks a server subprocess (``python3 -m rtmpx serve`` with its
defaults, started once for the module) while a normal publish+play runs
alongside, from loopback addresses of its own (the whole 127.0.0.0/8 range
is local).  Whatever the attack, every case checks that:

* the server process is still alive;
* a new session from yet another address completes handshake, connect,
  createStream and play within :data:`PROBE_DEADLINE` seconds, during the
  attack and after it;
* the server's event loop never stalls longer than :data:`STALL_BOUND`: a
  waiting player pings it every 100 ms and times the answers (a probe
  only sees a stall that happens to overlap it; this sees all of them);
* the server's resident memory stays under :data:`RSS_BOUND_MB` (the
  kernel's peak ``VmHWM``, reset at the start of each case, and ``VmRSS``
  sampled every 20 ms);
* the player alongside receives every video and audio frame the publisher
  alongside sent, in order.

A case may add checks of its own (the sender of a reference bomb is
disconnected, descriptors return to their count, ...).  All problems of a
case are reported together.  The figures of every case (peak memory,
descriptors, probe times, longest stall, frames alongside, server log
lines) go into a table, printed at the end of the module (``pytest -s``)
and written to :data:`REPORT` (``RTMPX_HOSTILE_REPORT`` to change it).
A case that fails gets the server process replaced for the next case.

Addresses: case ``k`` attacks from ``127.10.k.*``; its publisher, player
and pinger alongside are ``127.20.k.1``-``3``; its probes ``127.30.k.*``.

Two cases need shorter deadlines than the defaults to finish in seconds:
they run against a second ``rtmpx serve`` with the options of
:data:`SHORT_TIMEOUTS`.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import rtmpx
from rtmpx import amf
from rtmpx.chunk import ChunkWriter, Message
from rtmpx.events import (
    AudioData,
    PingResponse,
    PlayStarted,
    PlayStopped,
    PublishStarted,
    StreamFailed,
    VideoData,
)

from .peers import AAC_SEQ, AVC_SEQ, RawPeer, aac_frame, avc_frame, free_port
from .test_amf import reference_bomb

#: The most resident memory the server may use in any case, in MB.  An
#: idle ``rtmpx serve`` takes 29 MB; the heaviest case that the limits
#: already bound peaks at 79-91 MB (4 MB frames in one chunk each, relayed
#: and cached); a publisher 100 times faster than real time with players
#: at 45-50 MB.  Less than twice the heaviest is too close to it; past
#: that, only a missing bound reaches it.
RSS_BOUND_MB = 160
#: Seconds a new session may take for handshake+connect+createStream+play.
PROBE_DEADLINE = 5.0
#: The longest the server's event loop may stall (seconds).  A new session
#: needs four round trips (C0C1, C2+connect, createStream, play), each of
#: which may wait for one stall: a quarter of PROBE_DEADLINE keeps every
#: newcomer within it, whenever it comes.  Cases that the limits bound
#: stall the loop for at most 0.3 s.
STALL_BOUND = PROBE_DEADLINE / 4
#: Frames per second of the publish alongside.
ALONGSIDE_FPS = 50
#: The longest an attack may run (its own waits are shorter).
ATTACK_DEADLINE = 60.0
#: Descriptors the server may hold above its count before an attack of
#: sockets idle before connect: its half-open budget and some room.
HALF_OPEN_FD_BOUND = inspect.signature(rtmpx.Server).parameters["max_half_open"].default + 64
#: Resident memory (MB) that 3000 connect/close cycles may add.
CHURN_GROWTH_MB = 16
#: The limits of the server for the cases that need short deadlines
#: (``rtmpx serve --handshake-timeout 1.0 ...``).
SHORT_TIMEOUTS = {"handshake_timeout": 1.0, "connect_timeout": 2.0, "idle_timeout": 4.0}
#: 1-byte audio messages after one keyframe in the GOP entry-count attack:
#: without a per-entry charge, ~120 bytes each stay cached (180 MB).
GOP_ENTRIES = 1_500_000

REPORT = Path(os.environ.get("RTMPX_HOSTILE_REPORT", "/tmp/rtmpx-hostile-rss.txt"))

MB = 1024 * 1024


# --- the server process ------------------------------------------------------------------

@dataclass
class ServerProc:
    """A running ``rtmpx serve`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    label: str
    failed_case: str = ""   # a case failed against it: the next one gets a new process

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def memory(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB; (0, 0) once the process is gone."""
        values = {"VmRSS": 0, "VmHWM": 0}
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    key, _, rest = line.partition(":")
                    if key in values:
                        values[key] = int(rest.split()[0])
        except OSError:
            pass
        return values["VmRSS"] / 1024, values["VmHWM"] / 1024

    def reset_peak(self) -> bool:
        """Reset the kernel's peak RSS (VmHWM) of the process; False if not allowed."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return False
        return True

    def fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def log_lines(self) -> int:
        try:
            with self.log.open("rb") as f:
                return sum(1 for _ in f)
        except OSError:
            return 0

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def spawn_server(folder: Path, **limits: float) -> ServerProc:
    """Start ``rtmpx serve`` on a free port of 127.0.0.1, with its defaults
    but for ``limits`` (``idle_timeout=4.0`` is ``--idle-timeout 4.0``),
    and wait until it listens.  It runs the rtmpx these tests import; its
    log goes to ``folder``."""
    port = free_port()
    options = [arg for name, value in limits.items()
               for arg in ("--" + name.replace("_", "-"), str(value))]
    args = [sys.executable, "-m", "rtmpx", "--log-level", "warning", "serve",
            "--host", "127.0.0.1", "--port", str(port), *options]
    label = " ".join(["rtmpx serve", *options])
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"server-{port}.log"
    env = dict(os.environ, PYTHONPATH=str(Path(rtmpx.__file__).parents[1]))
    for name in ("RTMPX_PUBLISH_TOKEN", "RTMPX_PLAY_TOKEN"):  # the defaults: no auth
        env.pop(name, None)
    with log.open("wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, cwd=folder, env=env)
    server = ServerProc(proc, port, log, label)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while b"serving" not in line:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                server.stop()
                pytest.fail(f"{label} did not start within 30 s: {server.log_tail()}")
            line = proc.stdout.readline()
            if not line and not server.alive():
                pytest.fail(f"{label} exited at start: {server.log_tail()}")
    return server


class LiveServer:
    """The server process a group of cases shares.  After a case that
    failed against it (it may be dead, or hold what the attack left) the
    next case gets a new one, and the table says so: one failure does not
    fail the cases after it."""

    def __init__(self, folder: Path, **limits: float) -> None:
        self.folder = folder
        self.limits = limits
        self.server: ServerProc | None = None
        self.restarts: list[str] = []

    def get(self) -> ServerProc:
        server = self.server
        if server is not None:
            if not server.alive():
                why = f"the server exited with {server.proc.returncode}"
            elif server.failed_case:
                why = f"{server.failed_case!r} failed (RSS then {server.memory()[0]:.0f} MB)"
            else:
                return server
            self.restarts.append(why)
            server.stop()
        self.server = spawn_server(self.folder, **self.limits)
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="module")
def _serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("hostile"))
    live.get()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def _short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("hostile-short"), **SHORT_TIMEOUTS)
    yield live
    live.stop()


@pytest.fixture
def serve(_serve: LiveServer) -> ServerProc:
    """``rtmpx serve`` with its defaults (shared by the module)."""
    return _serve.get()


@pytest.fixture
def short(_short: LiveServer) -> ServerProc:
    """A server with short handshake, connect and idle deadlines (:data:`SHORT_TIMEOUTS`)."""
    return _short.get()


# --- the table --------------------------------------------------------------------------

@dataclass
class Row:
    case: str
    server: str
    start_mb: float         # VmRSS when the case started
    peak_mb: float          # VmHWM, reset when the case started
    sampled_mb: float       # the largest VmRSS sampled every 20 ms
    end_mb: float
    fds: str                # before / at the end of the attack / after
    probes: str             # seconds each probe took
    stall: float            # the longest ping round trip
    alongside: str
    log_lines: int          # lines the server logged during the case
    seconds: float
    problems: list[str]
    notes: list[str]


RESULTS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def _table(_serve: LiveServer, _short: LiveServer) -> Iterator[None]:
    started = time.monotonic()
    yield
    title = (f"rtmpx hostile clients: RSS bound {RSS_BOUND_MB} MB, probe deadline "
             f"{PROBE_DEADLINE:.0f} s, stall bound {STALL_BOUND:.2f} s; "
             f"module {time.monotonic() - started:.0f} s")
    heads = (f"{'case':34} {'verdict':7} {'start MB':>8} {'peak MB':>8} {'sampled':>8} "
             f"{'end MB':>7} {'fds':>10} {'probe s':>15} {'stall s':>7} {'alongside':>17} "
             f"{'log':>5} {'secs':>5}  server")
    lines = [title, heads]
    for r in RESULTS:
        lines.append(f"{r.case:34} {'FAIL' if r.problems else 'ok':7} {r.start_mb:8.1f} "
                     f"{r.peak_mb:8.1f} {r.sampled_mb:8.1f} {r.end_mb:7.1f} {r.fds:>10} "
                     f"{r.probes:>15} {r.stall:7.2f} {r.alongside:>17} {r.log_lines:5d} "
                     f"{r.seconds:5.1f}  {r.server}")
    for r in RESULTS:
        for problem in r.problems:
            lines.append(f"  {r.case}: {problem}")
        for note in r.notes:
            lines.append(f"  {r.case} (note): {note}")
    for live in (_serve, _short):
        for why in live.restarts:
            lines.append(f"  new server process after a case: {why}")
    text = "\n".join(lines) + "\n"
    try:
        REPORT.write_text(text)
    except OSError:
        pass
    print("\n" + text)


# --- raw peers --------------------------------------------------------------------------

async def tcp(port: int, source: str, *, rcvbuf: int | None = None
              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the server from ``source`` (an address of 127.0.0.0/8)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
            sock, ("127.0.0.1", port)), 10)
        return await asyncio.open_connection(sock=sock, limit=1 << 20)
    except BaseException:
        sock.close()
        raise


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def c0c1() -> bytes:
    """C0 and a simple-handshake C1 (time 0, zero version)."""
    return b"\x03" + bytes(8) + os.urandom(1528)


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The simple handshake: C0C1, S0S1S2, C2 (the echo of S1)."""
    writer.write(c0c1())
    s = await asyncio.wait_for(reader.readexactly(1 + 2 * 1536), 10)
    writer.write(s[1:1537])


def chunked(type_id: int, body: bytes, *, stream_id: int = 0, csid: int = 3,
            chunk_size: int = 128, timestamp: int = 0) -> bytes:
    """One message, chunked with a full first header."""
    return ChunkWriter(chunk_size=chunk_size).encode(
        Message(type_id, body, timestamp, stream_id, csid))


def amf0(*values: Any) -> bytes:
    return amf.dumps_all(list(values))


def command(*values: Any, stream_id: int = 0, csid: int = 3) -> bytes:
    """An AMF0 command message, in 128-byte chunks."""
    return chunked(20, amf0(*values), stream_id=stream_id, csid=csid)


def header0(csid: int, length: int, type_id: int, stream_id: int = 0,
            timestamp: int = 0) -> bytes:
    """A fmt 0 chunk header (basic header in its shortest form)."""
    if csid < 64:
        basic = bytes([csid])
    elif csid < 320:
        basic = bytes([0, csid - 64])
    else:
        basic = bytes([1]) + (csid - 64).to_bytes(2, "little")
    return basic + timestamp.to_bytes(3, "big") + length.to_bytes(3, "big") \
        + bytes([type_id]) + stream_id.to_bytes(4, "little")


def set_chunk_size(size: int) -> bytes:
    return chunked(1, struct.pack(">L", size), csid=2)


def ping_request(value: int) -> bytes:
    return chunked(4, struct.pack(">HL", 6, value), csid=2)


CONNECT_OBJECT = {"app": "live", "type": "nonprivate", "flashVer": "FMLE/3.0",
                  "tcUrl": "rtmp://127.0.0.1/live"}
CONNECT = ["connect", 1.0, CONNECT_OBJECT]
CONNECTED = b"NetConnection.Connect.Success"


async def read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = 10.0) -> None:
    """Read until ``marker`` has arrived (AssertionError on close, TimeoutError)."""
    tail = b""
    async with asyncio.timeout(timeout):
        while True:
            data = await reader.read(1 << 16)
            if not data:
                raise AssertionError(f"closed before {marker!r}")
            tail = tail[-len(marker):] + data
            if marker in tail:
                return


async def connected(port: int, source: str, *, rcvbuf: int | None = None
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection past handshake and connect (our chunks stay 128 bytes)."""
    reader, writer = await tcp(port, source, rcvbuf=rcvbuf)
    try:
        await handshake(reader, writer)
        writer.write(command(*CONNECT))
        await read_until(reader, CONNECTED)
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Read (and drop) until the server closes (True) or ``timeout`` (False)."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(1 << 16):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        pass
    return True


async def gather_bounded(jobs: Sequence[tuple[int, Callable[[], Awaitable[Any]]]],
                         per_address: int = 4) -> list[Any]:
    """Run ``(address, job)`` pairs, at most ``per_address`` at a time from
    one address (the server evicts the oldest handshake of an address that
    has more than a few in progress); results (or exceptions) in order."""
    gates: dict[int, asyncio.Semaphore] = {}

    async def one(address: int, job: Callable[[], Awaitable[Any]]) -> Any:
        gate = gates.setdefault(address, asyncio.Semaphore(per_address))
        async with gate:
            return await job()

    return await asyncio.gather(*(one(a, job) for a, job in jobs), return_exceptions=True)


async def drain(writer: asyncio.StreamWriter, timeout: float) -> bool:
    """Wait until the kernel took what we wrote; False after ``timeout``."""
    try:
        await asyncio.wait_for(writer.drain(), timeout)
        return True
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return True


def video_numbers(peer: RawPeer) -> list[int]:
    """The numbers of the coded video frames (:func:`avc_frame`) a player got."""
    return [int.from_bytes(e.payload[5:9], "big") for e in peer.of(VideoData)
            if e.payload[1:2] == b"\x01"]


def audio_numbers(peer: RawPeer) -> list[int]:
    return [int.from_bytes(e.payload[2:6], "big") for e in peer.of(AudioData)
            if e.payload[1:2] == b"\x01"]


# --- what runs alongside every attack -----------------------------------------------------

class Alongside:
    """A normal publisher and player of one key: the player joins first (it
    must get every frame), the publisher sends ALONGSIDE_FPS video+audio
    frames a second, numbered, until :meth:`finish`."""

    def __init__(self, port: int, key: str, publisher_ip: str, player_ip: str) -> None:
        self.key = key
        self.player = RawPeer(port, source=player_ip)
        self.publisher = RawPeer(port, source=publisher_ip)
        self.sent = 0
        self.got = 0
        self.stream_id = 0
        self.stalled = ""
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        async with asyncio.timeout(15):
            await self.player.open()
            self.player.session.start_play(self.key)
            self.player.flush()
            await self.player.until(lambda: self.player.of(PlayStarted))
            await self.publisher.open()
            self.publisher.session.start_publish(self.key)
            self.publisher.flush()
            await self.publisher.until(lambda: self.publisher.of(PublishStarted))
        self.stream_id = self.publisher.of(PublishStarted)[0].stream_id
        session = self.publisher.session
        session.send_metadata(self.stream_id, {"width": 16.0, "height": 16.0})
        session.send_video(self.stream_id, 0, AVC_SEQ)
        session.send_audio(self.stream_id, 0, AAC_SEQ)
        self.publisher.flush()
        self._tasks = [asyncio.create_task(self._play()),
                       asyncio.create_task(_keep_reading(self.publisher)),
                       asyncio.create_task(self._send())]

    async def _play(self) -> None:
        """Read until the server says the publish ended."""
        seen = 0
        while await self.player.read_once(120):
            if any(isinstance(e, PlayStopped) for e in self.player.events[seen:]):
                return
            seen = len(self.player.events)

    async def _send(self) -> None:
        session, writer = self.publisher.session, self.publisher.writer
        assert writer is not None
        i = 0
        while not self._stop.is_set():
            ts = 40 * i
            session.send_video(self.stream_id, ts, avc_frame(i % 25 == 0, i, 300))
            session.send_audio(self.stream_id, ts + 1, aac_frame(i, 60))
            self.publisher.flush()
            i += 1
            self.sent = i
            if not await drain(writer, 10):
                self.stalled = f"the publisher alongside could not send for 10 s (frame {i})"
                return
            try:
                await asyncio.wait_for(self._stop.wait(), 1 / ALONGSIDE_FPS)
            except TimeoutError:
                pass

    async def finish(self, server_alive: bool) -> list[str]:
        """Stop publishing; what went wrong (the player's frames checked)."""
        self._stop.set()
        player, publisher_reader, sender = self._tasks
        problems = []
        try:
            await asyncio.wait_for(sender, 15)
        except TimeoutError:
            problems.append("the publisher alongside did not stop in 15 s")
        if self.stalled:
            problems.append(self.stalled)
        if self.publisher.closed:
            problems.append("the server closed the publisher alongside")
        elif server_alive:
            try:
                self.publisher.session.stop_publish(self.stream_id)
                self.publisher.flush()
            except rtmpx.RtmpError as exc:
                problems.append(f"the publisher alongside could not stop: {exc!r}")
        try:
            await asyncio.wait_for(asyncio.shield(player), 10 if server_alive else 1)
        except TimeoutError:
            problems.append("the player alongside was not told the publish ended within 10 s")
        except (AssertionError, ConnectionError, OSError) as exc:
            problems.append(f"the player alongside failed: {exc!r}")
        if self.player.closed and not self.player.of(PlayStopped):
            problems.append("the server closed the player alongside")
        for task in (player, publisher_reader):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.player.close()
        await self.publisher.close()
        expected = list(range(self.sent))
        video, audio = video_numbers(self.player), audio_numbers(self.player)
        self.got = len(video)
        for kind, got in (("video", video), ("audio", audio)):
            if got != expected:
                missing = sorted(set(expected) - set(got))
                problems.append(
                    f"the player alongside got {len(got)} of {self.sent} {kind} frames "
                    f"(missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                    f"in order: {got == sorted(got)})")
        return problems


class Monitor:
    """How long the server's event loop stalls: a waiting player that pings
    the server every 100 ms; the longest round trip (a ping still
    unanswered at the end counts for the time it waited)."""

    def __init__(self, port: int, source: str, key: str) -> None:
        self.peer = RawPeer(port, source=source)
        self.key = key
        self.worst = 0.0
        self.error = ""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with asyncio.timeout(15):
            await self.peer.open()
            self.peer.session.start_play(self.key)
            self.peer.flush()
            await self.peer.until(lambda: self.peer.of(PlayStarted))
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        peer = self.peer
        for n in itertools.count(1):
            sent = time.monotonic()
            peer.session.ping(n)
            peer.flush()
            try:
                await peer.until(lambda n=n: any(
                    isinstance(e, PingResponse) and e.timestamp == n for e in peer.events), 600)
            except (AssertionError, ConnectionError, OSError) as exc:
                self.error = f"the pinger alongside failed: {exc}"
                return
            finally:
                self.worst = max(self.worst, time.monotonic() - sent)
            peer.events.clear()
            try:
                await asyncio.wait_for(self._stop.wait(), 0.1)
                return
            except TimeoutError:
                pass

    async def stop(self) -> float:
        """The longest round trip seen (s)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.peer.close()
        return self.worst


async def _keep_reading(peer: RawPeer) -> None:
    """Read and drop what the server sends (its pings get answered)."""
    try:
        while await peer.read_once(120):
            peer.events.clear()
    except (ConnectionError, OSError, TimeoutError):
        pass


# --- one case ---------------------------------------------------------------------------

_CASE_NUMBERS = itertools.count(1)


@dataclass
class Attack:
    """What an attack gets: the server, its addresses, and the checks it may call."""

    server: ServerProc
    number: int
    fd_base: int
    problems: list[str] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    peers: list[RawPeer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    def ip(self, j: int) -> str:
        """The attacker's address number ``j`` (1..250)."""
        return f"127.10.{self.number}.{j}"

    def track(self, writer: asyncio.StreamWriter) -> asyncio.StreamWriter:
        """Close this connection when the case ends."""
        self.writers.append(writer)
        return writer

    def peer(self, j: int, **kwargs: Any) -> RawPeer:
        """A :class:`RawPeer` from address ``j``, closed when the case ends."""
        peer = RawPeer(self.port, source=self.ip(j), **kwargs)
        self.peers.append(peer)
        return peer

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    async def probe(self, label: str = "during the attack") -> None:
        """A new session from another address: handshake, connect,
        createStream and play, all within PROBE_DEADLINE."""
        peer = RawPeer(self.port, source=f"127.30.{self.number}.{len(self.probes) + 1}")
        started = time.monotonic()
        try:
            async with asyncio.timeout(PROBE_DEADLINE):
                await peer.open()
                peer.session.start_play(f"probe-{self.number}-{len(self.probes)}")
                peer.flush()
                await peer.until(lambda: peer.of(PlayStarted) or peer.of(StreamFailed))
            if not peer.of(PlayStarted):
                self.problems.append(f"probe {label}: play refused: {peer.of(StreamFailed)}")
        except (TimeoutError, AssertionError, OSError) as exc:
            self.problems.append(f"probe {label}: no session after "
                                 f"{time.monotonic() - started:.1f} s ({exc!r})")
        finally:
            self.probes.append(time.monotonic() - started)
            await peer.close()

    async def fds_back(self, timeout: float = 10.0) -> int:
        """Wait until the server has no more descriptors than at the start
        of the attack; the count at the end."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.server.fds()
            if count <= self.fd_base or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.1)   # /proc has nothing to wait on

    async def close_all(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        for peer in self.peers:
            if peer.writer is not None:
                peer.writer.transport.abort()
        self.writers.clear()
        self.peers.clear()


async def _sample_memory(server: ServerProc, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], server.memory()[0])
        await asyncio.sleep(0.02)   # /proc has nothing to wait on


async def run_case(server: ServerProc, name: str,
                   attack: Callable[[Attack], Awaitable[None]]) -> None:
    """Run ``attack`` with the publish+play and the pinger alongside, then check the server."""
    number = next(_CASE_NUMBERS)
    started = time.monotonic()
    log_start = server.log_lines()
    peak_was_reset = server.reset_peak()   # else VmHWM holds earlier cases' peaks
    start_mb = server.memory()[0]
    sampled = [start_mb]
    sampler = asyncio.create_task(_sample_memory(server, sampled))
    problems: list[str] = []
    alongside = Alongside(server.port, f"alongside-{number}", f"127.20.{number}.1",
                          f"127.20.{number}.2")
    monitor = Monitor(server.port, f"127.20.{number}.3", f"monitor-{number}")
    ctx = Attack(server, number, fd_base=server.fds())
    fds_before, fds_attack, stall = ctx.fd_base, -1, -1.0
    completed = False
    try:
        await alongside.start()
        await monitor.start()
        ctx.fd_base = server.fds()
        try:
            async with asyncio.timeout(ATTACK_DEADLINE):
                await attack(ctx)
        except TimeoutError:
            problems.append(f"the attack did not end within {ATTACK_DEADLINE:.0f} s")
        except AssertionError as exc:
            problems.append(f"attack: {exc}")
        fds_attack = server.fds()
        stall = await monitor.stop()
        if monitor.error:
            problems.append(monitor.error)
        await ctx.close_all()
        if not ctx.probes:
            problems.append("the attack made no probe")
        await ctx.probe("after the attack")
        problems += ctx.problems
        problems += await alongside.finish(server.alive())
        completed = True
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        if stall < 0:
            stall = await monitor.stop()
        await ctx.close_all()
        rss, hwm = server.memory()
        if not completed:
            problems.append("the case did not run to its end (see the error)")
        if not server.alive():
            problems.insert(0, f"the server died (exit {server.proc.returncode}): "
                               f"{server.log_tail(5)}")
        if stall > STALL_BOUND:
            problems.append(f"the server's event loop stalled {stall:.2f} s "
                            f"(a ping's round trip; bound {STALL_BOUND:.2f} s)")
        peak = max(hwm, sampled[0]) if peak_was_reset else sampled[0]
        if peak > RSS_BOUND_MB:
            problems.append(f"server RSS peaked at {peak:.0f} MB > {RSS_BOUND_MB} MB "
                            f"(VmHWM {hwm:.0f} MB, sampled {sampled[0]:.0f} MB, "
                            f"{start_mb:.0f} MB at the start)")
        RESULTS.append(Row(
            name, server.label, start_mb, hwm, sampled[0], rss,
            f"{fds_before}/{fds_attack}/{server.fds()}",
            "/".join(f"{p:.2f}" for p in ctx.probes), stall,
            f"{alongside.got}/{alongside.sent} frames", server.log_lines() - log_start,
            time.monotonic() - started, list(problems), list(ctx.notes)))
        if problems or not completed:
            server.failed_case = name
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


# --- publishers and players of the attacks -------------------------------------------------

async def _start_publisher(ctx: Attack, j: int, key: str, **kwargs: Any) -> tuple[RawPeer, int]:
    """A publisher of ``key`` from the attacker's address ``j``, sequence headers sent."""
    peer = ctx.peer(j, **kwargs)
    await peer.open()
    peer.session.start_publish(key)
    peer.flush()
    await peer.until(lambda: peer.of(PublishStarted))
    sid = peer.of(PublishStarted)[0].stream_id
    peer.session.send_video(sid, 0, AVC_SEQ)
    peer.session.send_audio(sid, 0, AAC_SEQ)
    peer.flush()
    return peer, sid


async def _start_player(ctx: Attack, j: int, key: str, **kwargs: Any) -> RawPeer:
    peer = ctx.peer(j, **kwargs)
    await peer.open()
    peer.session.start_play(key)
    peer.flush()
    await peer.until(lambda: peer.of(PlayStarted))
    return peer


async def _flood(ctx: Attack, peer: RawPeer, sid: int, total: int, frame: int,
                 keyint: int) -> int:
    """Publish ``total`` bytes of video as fast as the server takes them;
    the bytes sent."""
    assert peer.writer is not None
    sent = i = 0
    while sent < total and not peer.closed:
        for _ in range(10):
            peer.session.send_video(sid, 40 * i, avc_frame(i % keyint == 0, i, frame))
            i += 1
            sent += frame
        peer.flush()
        if not await drain(peer.writer, 10):
            ctx.problems.append(f"the flooding publisher was held for 10 s after {sent} bytes")
            break
    return sent


async def _publish_and_watch(ctx: Attack, j: int, chunk_size: int, frames: int,
                             size: int) -> None:
    """Publish ``frames`` video+audio frames in chunks ``chunk_size`` long,
    each once the player of the key got the one before: it must get every
    one (in step, so that no player queue limit comes into play)."""
    key = f"chunks-{ctx.number}-{chunk_size}"
    player = await _start_player(ctx, j + 1, key)
    publisher = ctx.peer(j)
    publisher.session = rtmpx.ClientSession(
        "live", f"rtmp://127.0.0.1:{ctx.port}/live",
        config=rtmpx.SessionConfig(chunk_size=chunk_size))
    await publisher.open()
    publisher.session.start_publish(key)
    publisher.flush()
    await publisher.until(lambda: publisher.of(PublishStarted))
    sid = publisher.of(PublishStarted)[0].stream_id
    reading = asyncio.create_task(_keep_reading(publisher))
    session = publisher.session
    session.send_video(sid, 0, AVC_SEQ)
    session.send_audio(sid, 0, AAC_SEQ)
    try:
        for i in range(frames):
            session.send_video(sid, 40 * i, avc_frame(i % 10 == 0, i, size))
            session.send_audio(sid, 40 * i + 1, aac_frame(i))
            publisher.flush()
            await player.until(lambda i=i: len(video_numbers(player)) > i, 20)
    except AssertionError as exc:
        ctx.problems.append(f"chunk size {chunk_size}: the player: {exc}")
    reading.cancel()
    got = video_numbers(player)
    ctx.check(got == list(range(frames)),
              f"chunk size {chunk_size}: the player got {len(got)} of {frames} frames")


# --- the cases ----------------------------------------------------------------------------

_CONNECT_TAIL = amf0(1.0, {"app": "live"})

#: Reference bombs (AMF0 0x07 references, AMF3 object references; 40
#: levels, 2**42 paths once expanded), a few hundred bytes each, as the
#: first value of the first command.
BOMBS_BEFORE_CONNECT = [
    ("AMF0 strict-array", 20, reference_bomb(0, "strict-arrays", 40) + _CONNECT_TAIL),
    ("AMF3 array", 17, b"\x00\x11" + reference_bomb(3, "arrays", 40) + _CONNECT_TAIL),
    ("AMF3 object", 17, b"\x00\x11" + reference_bomb(3, "objects", 40) + _CONNECT_TAIL),
]


async def test_reference_bomb_before_connect(serve: ServerProc) -> None:
    """Issue 8's critical case: a command of 315-477 bytes whose first value
    expands to 2**42 paths, before connect is answered."""
    async def attack(ctx: Attack) -> None:
        sent = []
        for j, (what, type_id, body) in enumerate(BOMBS_BEFORE_CONNECT, 1):
            assert len(body) < 600, (what, len(body))
            reader, writer = await tcp(ctx.port, ctx.ip(j))
            ctx.track(writer)
            await handshake(reader, writer)
            writer.write(chunked(type_id, body))
            sent.append((what, len(body), reader))
        await ctx.probe()
        for what, size, reader in sent:
            ctx.check(await closed_by_server(reader, 5),
                      f"the {size}-byte {what} bomb before connect: its sender is still "
                      "connected after 5 s")

    await run_case(serve, "reference bomb before connect", attack)


async def test_reference_bomb_after_connect(serve: ServerProc) -> None:
    """Reference bombs in a call, an AMF3 command, a publisher's onMetaData
    and an AMF3 data message (the ones re-encoded to AMF0 for players)."""
    bomb0 = reference_bomb(0, "strict-arrays", 40)
    bomb3 = reference_bomb(3, "objects", 40)
    commands = [
        ("AMF0 call argument", 20, amf0("someCall", 2.0, None) + bomb0),
        ("AMF3 command object", 17, b"\x00" + amf0("someCall", 2.0) + b"\x11" + bomb3),
    ]
    data = [
        ("AMF0 onMetaData", 18, amf0("@setDataFrame", "onMetaData") + bomb0),
        ("AMF3 data message", 15, b"\x00" + amf0("@setDataFrame", "onMetaData") + b"\x11" + bomb3),
    ]

    async def attack(ctx: Attack) -> None:
        sent = []
        for j, (what, type_id, body) in enumerate(commands, 1):
            reader, writer = await connected(ctx.port, ctx.ip(j))
            ctx.track(writer)
            writer.write(chunked(type_id, body))
            sent.append((what, reader))
        for j, (what, type_id, body) in enumerate(data, 3):
            peer, sid = await _start_publisher(ctx, j, f"bomb-{ctx.number}-{j}")
            peer.send_raw(chunked(type_id, body, stream_id=sid, csid=9, chunk_size=4096))
            assert peer.reader is not None
            sent.append((what, peer.reader))
        await ctx.probe()
        for what, reader in sent:
            ctx.check(await closed_by_server(reader, 5),
                      f"a reference bomb as {what}: its sender is still connected after 5 s")

    await run_case(serve, "reference bomb after connect", attack)


async def test_slowloris(serve: ServerProc) -> None:
    """900 sockets that send C0 (or C0+C1) and idle, from six addresses:
    newcomers get in at once, and the server holds no more than its
    half-open budget of them."""
    async def attack(ctx: Attack) -> None:
        async def idle(j: int, first: bytes) -> None:
            _, writer = await tcp(ctx.port, ctx.ip(j))
            ctx.track(writer)
            writer.write(first)

        jobs = [(j, partial(idle, j, first)) for j in range(1, 7)
                for first in [b"\x03"] * 100 + [c0c1()] * 50]
        failed = [r for r in await gather_bounded(jobs, 10) if isinstance(r, BaseException)]
        ctx.notes.append(f"{len(jobs) - len(failed)} idle sockets opened ({len(failed)} failed)")
        await ctx.probe()
        fds = ctx.server.fds()
        ctx.check(fds <= ctx.fd_base + HALF_OPEN_FD_BOUND,
                  f"the server holds {fds - ctx.fd_base} more descriptors with "
                  f"{len(jobs)} idle sockets (bound {HALF_OPEN_FD_BOUND})")
        await ctx.probe("again")

    await run_case(serve, "slowloris (900 idle sockets)", attack)


async def test_slowloris_deadlines(short: ServerProc) -> None:
    """Sockets that stop, or go on a byte at a time, at each stage before
    connect are closed by that stage's deadline, on time: C0+C1 and C2
    within handshake_timeout, connect within connect_timeout of the
    handshake's end."""
    handshake_limit = SHORT_TIMEOUTS["handshake_timeout"]
    connect_limit = SHORT_TIMEOUTS["connect_timeout"]
    stages = ["C0", "C1 a byte at a time", "C0C1, no C2", "handshake, no connect",
              "half a connect", "connect a byte at a time"]

    async def attack(ctx: Attack) -> None:
        async def stalled(j: int, stage: str) -> tuple[str, float, float]:
            """Stop at ``stage``; (stage, its deadline, seconds until the server closed)."""
            reader, writer = await tcp(ctx.port, ctx.ip(j))
            ctx.track(writer)
            since, limit, drip = time.monotonic(), handshake_limit, b""
            if stage == "C0":
                writer.write(b"\x03")
            elif stage == "C1 a byte at a time":
                writer.write(b"\x03")
                drip = c0c1()[1:]
            elif stage == "C0C1, no C2":
                writer.write(c0c1())
            else:
                await handshake(reader, writer)
                since, limit = time.monotonic(), connect_limit
                connect = command(*CONNECT)
                if stage == "half a connect":
                    writer.write(connect[:len(connect) // 2])
                elif stage == "connect a byte at a time":
                    drip = connect
            for byte in drip:   # a byte every 200 ms until the server closes
                writer.write(bytes([byte]))
                try:
                    if not await asyncio.wait_for(reader.read(1 << 16), 0.2):
                        break
                except TimeoutError:
                    continue
                except (ConnectionError, OSError):
                    break
            await closed_by_server(reader, limit + 5)
            return stage, limit, time.monotonic() - since

        probe = asyncio.create_task(ctx.probe())
        results = await asyncio.gather(*(stalled(j, stage) for j in range(1, 5)
                                         for stage in stages), return_exceptions=True)
        await probe
        failed = [r for r in results if isinstance(r, BaseException)]
        ctx.check(not failed, f"{len(failed)} stalled peers failed to start: {failed[:3]}")
        done = [r for r in results if isinstance(r, tuple)]
        for stage in stages:
            times = [t for s, _, t in done if s == stage]
            if times:
                ctx.notes.append(f"{stage}: closed after {min(times):.1f}..{max(times):.1f} s")
        late = [(stage, round(t, 1)) for stage, limit, t in done if t > limit + 1.0]
        ctx.check(not late, f"{len(late)} of {len(done)} sockets stalled before connect "
                            f"outlived their stage's deadline ({SHORT_TIMEOUTS}) by more "
                            f"than 1 s: {late[:8]}")

    await run_case(short, "stalled handshakes closed on time", attack)


async def test_cheap_connects(serve: ServerProc) -> None:
    """300 clients from six addresses that connect and do nothing else."""
    async def attack(ctx: Attack) -> None:
        async def hold(j: int) -> None:
            _, writer = await connected(ctx.port, ctx.ip(j))
            ctx.track(writer)

        jobs = [(j, partial(hold, j)) for j in range(1, 7) for _ in range(50)]
        failed = [r for r in await gather_bounded(jobs) if isinstance(r, BaseException)]
        ctx.check(not failed, f"{len(failed)} of {len(jobs)} connects failed: {failed[:3]}")
        await ctx.probe()

    await run_case(serve, "cheap connects (300 held)", attack)


async def test_cheap_connects_that_answer_pings(short: ServerProc) -> None:
    """100 clients that connect and answer pings, nothing else: they do
    not keep their slots past idle_timeout."""
    limit = SHORT_TIMEOUTS["idle_timeout"]

    async def attack(ctx: Attack) -> None:
        peers = [ctx.peer(j) for j in range(1, 5) for _ in range(25)]
        failed = [r for r in await gather_bounded([(n // 25, p.open)
                                                   for n, p in enumerate(peers)])
                  if isinstance(r, BaseException)]
        ctx.check(not failed, f"{len(failed)} of {len(peers)} connects failed: {failed[:3]}")
        since = time.monotonic()

        async def closed(peer: RawPeer) -> bool:   # reading answers the server's pings
            return peer.closed or await peer.closed_by_server(limit + 6)

        *ends, _ = await asyncio.gather(*(closed(p) for p in peers), ctx.probe())
        held = sum(1 for end in ends if not end)
        ctx.notes.append(f"all closed after {time.monotonic() - since:.1f} s "
                         f"(idle_timeout={limit})" if not held else f"{held} still open")
        ctx.check(not held, f"{held} of {len(peers)} clients that only answer pings still "
                            f"connected {limit + 6:.0f} s after connect "
                            f"(idle_timeout={limit})")

    await run_case(short, "cheap connects answering pings", attack)


async def test_random_bytes(serve: ServerProc) -> None:
    """Random bytes at every stage: first byte, after C0, after the
    handshake, after connect."""
    async def attack(ctx: Attack) -> None:
        async def noise(j: int, stage: str) -> asyncio.StreamReader:
            if stage == "connected":
                reader, writer = await connected(ctx.port, ctx.ip(j))
            else:
                reader, writer = await tcp(ctx.port, ctx.ip(j))
                if stage == "C0":
                    writer.write(b"\x03")
                elif stage == "handshake":
                    await handshake(reader, writer)
            ctx.track(writer)
            writer.write(os.urandom(256 * 1024 if stage == "connected" else 64 * 1024))
            return reader

        stages = ["none", "C0", "handshake", "connected"]
        jobs = [(j, partial(noise, j, s)) for j in range(1, 5) for s in stages
                for _ in range(10)]
        readers = await gather_bounded(jobs)
        await ctx.probe()
        closed = await asyncio.gather(*(closed_by_server(r, 3) for r in readers
                                        if isinstance(r, asyncio.StreamReader)))
        ctx.notes.append(f"{sum(closed)} of {len(jobs)} noisy peers closed by the server "
                         f"within 3 s ({sum(isinstance(r, BaseException) for r in readers)} "
                         "could not even start)")

    await run_case(serve, "random bytes", attack)


async def test_truncated_handshakes(serve: ServerProc) -> None:
    """480 peers that close (or reset) mid-C1, mid-C2, mid-connect: the
    server keeps no descriptor of them."""
    async def attack(ctx: Attack) -> None:
        async def cut(j: int, stage: str, rst: bool) -> None:
            reader, writer = await tcp(ctx.port, ctx.ip(j))
            if stage == "mid-C1":
                writer.write(c0c1()[:700])
            else:
                writer.write(c0c1())
                s = await asyncio.wait_for(reader.readexactly(1 + 2 * 1536), 10)
                if stage == "mid-C2":
                    writer.write(s[1:700])
                else:
                    connect = command(*CONNECT)
                    writer.write(s[1:1537] + connect[:len(connect) // 2])
            await drain(writer, 5)
            if rst:
                reset(writer)
            else:
                writer.close()

        jobs = [(j, partial(cut, j, s, r)) for j in range(1, 5)
                for s in ("mid-C1", "mid-C2", "mid-connect") for r in (False, True)
                for _ in range(20)]
        failed = [r for r in await gather_bounded(jobs) if isinstance(r, BaseException)]
        ctx.check(not failed, f"{len(failed)} truncated handshakes failed early: {failed[:3]}")
        await ctx.probe()
        fds = await ctx.fds_back()
        ctx.check(fds <= ctx.fd_base, f"{fds - ctx.fd_base} descriptors left after "
                                      f"{len(jobs)} truncated handshakes")

    await run_case(serve, "truncated handshakes", attack)


async def test_chunk_stream_id_explosion(serve: ServerProc) -> None:
    """Tens of thousands of distinct chunk stream ids: each with an
    incomplete message before connect, each with a complete one after."""
    incomplete = b"".join(header0(csid, 200, 20) + b"x" for csid in range(3, 20003))
    complete = b"".join(header0(csid, 4, 3) + b"\0\0\0\1" for csid in range(4, 65600))

    async def attack(ctx: Attack) -> None:
        readers = []
        for j in range(1, 5):
            reader, writer = await tcp(ctx.port, ctx.ip(j))
            ctx.track(writer)
            await handshake(reader, writer)
            writer.write(incomplete)
            readers.append(("incomplete messages before connect", reader))
        for j in range(5, 9):
            reader, writer = await connected(ctx.port, ctx.ip(j))
            ctx.track(writer)
            writer.write(complete)
            readers.append(("complete messages after connect", reader))
        await ctx.probe()
        for what, reader in readers:
            ctx.check(await closed_by_server(reader, 5),
                      f"20000+ chunk streams with {what}: the peer is still connected")

    await run_case(serve, "chunk stream id explosion", attack)


async def test_huge_declared_lengths(serve: ServerProc) -> None:
    """Headers that declare long messages whose bodies never come: nothing
    is reserved for them."""
    lengths = (0xFFFFFF, 8 * MB, 4 * MB, 60 * 1024)

    async def attack(ctx: Attack) -> None:
        async def declare(j: int, after_connect: bool, length: int) -> None:
            if after_connect:
                reader, writer = await connected(ctx.port, ctx.ip(j))
                csids = range(4, 64)
            else:
                reader, writer = await tcp(ctx.port, ctx.ip(j))
                await handshake(reader, writer)
                csids = range(3, 11)
            ctx.track(writer)
            writer.write(b"".join(header0(csid, length, 9 if csid % 2 else 20)
                                  for csid in csids))

        jobs = [(j, partial(declare, j, False, n)) for j in range(1, 6)
                for n in lengths for _ in range(2)]
        jobs += [(j, partial(declare, j, True, 8 * MB)) for j in range(6, 9)
                 for _ in range(10)]
        failed = [r for r in await gather_bounded(jobs) if isinstance(r, BaseException)]
        ctx.check(not failed, f"{len(failed)} peers failed to start: {failed[:3]}")
        declared = 5 * 2 * 8 * sum(lengths) + 3 * 10 * 60 * 8 * MB
        ctx.notes.append(f"{len(jobs)} peers declared {declared / MB:.0f} MB in all")
        await ctx.probe()

    await run_case(serve, "huge declared lengths, no body", attack)


async def test_bodies_that_never_end_before_connect(serve: ServerProc) -> None:
    """Issue 8: before connect, a peer could pin a whole reassembly buffer.
    32 peers send 7.6 MB of an 8 MB message (one chunk) and stop."""
    length = 8_000_000
    body = bytes(length - 1000)

    async def attack(ctx: Attack) -> None:
        async def pin(j: int) -> bool:
            reader, writer = await tcp(ctx.port, ctx.ip(j))
            ctx.track(writer)
            await handshake(reader, writer)
            writer.write(set_chunk_size(0x7FFFFFFF) + header0(3, length, 20))
            for offset in range(0, len(body), MB):
                writer.write(body[offset:offset + MB])
                await drain(writer, 10)
                if reader.at_eof() or writer.transport.is_closing() \
                        or reader.exception() is not None:
                    return False
            return True

        results = await gather_bounded([(j, partial(pin, j)) for j in range(1, 5)
                                        for _ in range(8)], 2)
        failed = [r for r in results if isinstance(r, BaseException)]
        ctx.notes.append(f"{sum(r is True for r in results)} of {len(results)} peers sent "
                         f"{len(body) / MB:.1f} MB of a message before connect "
                         f"({len(failed)} failed: {failed[:2]})")
        await ctx.probe()

    await run_case(serve, "unfinished bodies before connect", attack)


async def test_huge_connect_objects(serve: ServerProc) -> None:
    """Issue 8: connect command objects of 0.74 MB of tiny values (45,000
    numbers), which cost many times that once decoded and kept, from 40
    clients."""
    params = {f"k{i:05d}": float(i) for i in range(45_000)}
    body = command("connect", 1.0, {**CONNECT_OBJECT, **params})

    async def attack(ctx: Attack) -> None:
        async def big_connect(j: int) -> bool:
            reader, writer = await tcp(ctx.port, ctx.ip(j))
            ctx.track(writer)
            await handshake(reader, writer)
            writer.write(body)
            try:
                await read_until(reader, CONNECTED, 15)
                return True
            except (AssertionError, ConnectionError):   # closed or reset: refused
                return False

        results = await gather_bounded([(j, partial(big_connect, j)) for j in range(1, 6)
                                        for _ in range(8)], 2)
        failed = [r for r in results if isinstance(r, BaseException)]
        ctx.notes.append(f"{sum(r is True for r in results)} of {len(results)} connects of "
                         f"{len(body) / MB:.2f} MB were accepted ({len(failed)} failed: "
                         f"{failed[:2]})")
        await ctx.probe()

    await run_case(serve, "1 MB connect objects", attack)


async def test_chunk_size_extremes(serve: ServerProc) -> None:
    """Set Chunk Size 1 and 0x7FFFFFFF: publishers using them are relayed
    whole, 1 MB messages in 1-byte chunks cost only their bytes, invalid
    sizes (0, top bit set) end only their sender."""
    one_byte_chunks = set_chunk_size(1) + chunked(8, os.urandom(MB), csid=4, chunk_size=1)

    async def attack(ctx: Attack) -> None:
        for j in (1, 2):
            reader, writer = await connected(ctx.port, ctx.ip(j))
            ctx.track(writer)
            writer.write(one_byte_chunks)
        invalid = []
        for j, size in enumerate((0, 0x80000000, 0xFFFFFFFF), 3):
            reader, writer = await connected(ctx.port, ctx.ip(j))
            ctx.track(writer)
            writer.write(set_chunk_size(size))
            invalid.append((size, reader))
        probe = asyncio.create_task(ctx.probe())
        await asyncio.gather(_publish_and_watch(ctx, 10, 1, 40, 3000),
                             _publish_and_watch(ctx, 20, 0x7FFFFFFF, 6, 4 * MB))
        await probe
        for size, reader in invalid:
            ctx.check(await closed_by_server(reader, 2),
                      f"Set Chunk Size {size:#x} did not end the connection")

    await run_case(serve, "chunk size 1 and 0x7FFFFFFF", attack)


def _nested_strict_arrays(depth: int) -> bytes:
    return b"\x0a\x00\x00\x00\x01" * depth + b"\x05"


def _nested_objects(depth: int) -> bytes:
    return b"\x03\x00\x01a" * depth + b"\x05" + b"\x00\x00\x09" * depth


def _nested_ecma(depth: int) -> bytes:
    return b"\x08\x00\x00\x00\x01\x00\x01a" * depth + b"\x05" + b"\x00\x00\x09" * depth


def _nested_amf3_arrays(depth: int) -> bytes:
    return b"\x09\x03\x01" * depth + b"\x01"


async def test_deep_amf(serve: ServerProc) -> None:
    """AMF nested far deeper than amf_max_depth, before and after connect."""
    before = [
        ("AMF0 strict arrays x10000 as the command name", 20, _nested_strict_arrays(10_000)),
        ("AMF0 objects x5000 as the connect object", 20,
         amf0("connect", 1.0) + _nested_objects(5000)),
        ("AMF0 ECMA arrays x5000 as the connect object", 20,
         amf0("connect", 1.0) + _nested_ecma(5000)),
        ("AMF3 arrays x10000 as the connect object", 17,
         b"\x00" + amf0("connect", 1.0) + b"\x11" + _nested_amf3_arrays(10_000)),
    ]
    after = [
        ("AMF0 strict arrays x1000000 as a call argument", 20,
         amf0("someCall", 2.0, None) + _nested_strict_arrays(1_000_000)),
        ("AMF3 arrays x1000000 as a call argument", 17,
         b"\x00" + amf0("someCall", 2.0, None) + b"\x11" + _nested_amf3_arrays(1_000_000)),
    ]
    messages = [(what, chunked(type_id, body)) for what, type_id, body in before + after]
    metadata = amf0("@setDataFrame", "onMetaData") + _nested_ecma(100)

    async def attack(ctx: Attack) -> None:
        sent = []
        for j, (what, data) in enumerate(messages, 1):
            if j <= len(before):
                reader, writer = await tcp(ctx.port, ctx.ip(j))
                await handshake(reader, writer)
                what += " (before connect)"
            else:
                reader, writer = await connected(ctx.port, ctx.ip(j))
            ctx.track(writer)
            writer.write(data)
            sent.append((what, reader))
        peer, sid = await _start_publisher(ctx, 20, f"deep-{ctx.number}")
        peer.send_raw(chunked(18, metadata, stream_id=sid, csid=9, chunk_size=4096))
        assert peer.reader is not None
        sent.append(("onMetaData nested 100 deep", peer.reader))
        await ctx.probe()
        for what, reader in sent:
            ctx.check(await closed_by_server(reader, 5),
                      f"{what}: the peer is still connected after 5 s")

    await run_case(serve, "deep AMF nesting", attack)


async def test_commands_in_the_wrong_state(serve: ServerProc) -> None:
    """Commands the state does not allow, ids that do not exist, a
    createStream flood: answered or refused, nothing more."""
    nan, inf = float("nan"), float("inf")
    scripts: list[tuple[str, bool, bytes]] = [
        ("publish, play, createStream before connect", False,
         command("createStream", 2.0, None)
         + command("publish", 0.0, None, "k", "live", stream_id=1)
         + command("play", 0.0, None, "k", stream_id=1)),
        ("play on stream 0", True, command("play", 0.0, None, "k", stream_id=0)),
        ("publish on stream 0 and on stream 7 never made", True,
         command("publish", 0.0, None, "k0", "live", stream_id=0)
         + command("publish", 0.0, None, "k7", "live", stream_id=7)),
        ("deleteStream of unknown ids", True, b"".join(
            command("deleteStream", 0.0, None, v)
            for v in (1e9, -1.0, nan, inf, -inf, 0.0, 65535.0, 2.0 ** 53, "x", None, True))),
        ("closeStream, pause, seek, receiveAudio/Video on streams 0 and 99", True, b"".join(
            command(name, 0.0, None, *args, stream_id=sid)
            for sid in (0, 99) for name, args in (
                ("closeStream", ()), ("pause", (True, 0.0)), ("seek", (1e12,)),
                ("receiveAudio", (False,)), ("receiveVideo", (nan,))))),
        ("connect again", True, command(*CONNECT)),
        ("media and data on a stream never made", True,
         chunked(9, avc_frame(True, 0), stream_id=5, csid=6)
         + chunked(8, aac_frame(0), stream_id=5, csid=4)
         + chunked(18, amf0("@setDataFrame", "onMetaData", {"a": 1.0}), stream_id=5, csid=5)),
        ("FCPublish and releaseStream of 60 KB names, 100 times", True, b"".join(
            command(name, 0.0, None, "n" * 60_000)
            for name in ("FCPublish", "releaseStream") for _ in range(50))),
        ("createStream x20000", True, b"".join(
            command("createStream", float(i + 2), None) for i in range(20_000))),
    ]

    async def attack(ctx: Attack) -> None:
        conns = []
        for j, (what, connect_first, data) in enumerate(scripts, 1):
            if connect_first:
                reader, writer = await connected(ctx.port, ctx.ip(j))
            else:
                reader, writer = await tcp(ctx.port, ctx.ip(j))
                await handshake(reader, writer)
            ctx.track(writer)
            writer.write(data)
            conns.append((what, reader))
        await ctx.probe()
        closed = await asyncio.gather(*(closed_by_server(r, 2) for _, r in conns))
        ctx.notes.append("disconnected: " + ("; ".join(w for (w, _), c in zip(conns, closed)
                                                       if c) or "none"))

    await run_case(serve, "commands in the wrong state", attack)


async def test_players_that_never_read(serve: ServerProc) -> None:
    """Twelve players that never read a byte, fed 40 MB as fast as the
    publisher can send."""
    async def attack(ctx: Attack) -> None:
        key = f"unread-{ctx.number}"
        for n in range(12):
            await _start_player(ctx, 1 + n % 3, key, rcvbuf=4096)
        publisher, sid = await _start_publisher(ctx, 5, key)
        reading = asyncio.create_task(_keep_reading(publisher))
        probe = asyncio.create_task(ctx.probe())
        sent = await _flood(ctx, publisher, sid, 40 * MB, 100_000, 10)
        await probe
        ctx.notes.append(f"published {sent / MB:.0f} MB")
        reading.cancel()

    await run_case(serve, "players that never read", attack)


async def test_command_senders_that_never_read(serve: ServerProc) -> None:
    """Four clients that flood calls and pings (every one answered) for 6 s
    and never read an answer."""
    calls = b"".join(command(f"call{i:05d}" + "x" * 200, float(i + 10), None)
                     for i in range(2000))
    burst = calls + b"".join(ping_request(i) for i in range(1000))

    async def attack(ctx: Attack) -> None:
        async def flood(j: int) -> int:
            _, writer = await connected(ctx.port, ctx.ip(j), rcvbuf=4096)
            ctx.track(writer)
            sent = 0
            deadline = time.monotonic() + 6
            while sent < 30 * MB and time.monotonic() < deadline \
                    and not writer.transport.is_closing():
                writer.write(burst)
                sent += len(burst)
                await drain(writer, 0.5)
            return sent

        flooding = asyncio.gather(*(flood(1 + n % 2) for n in range(4)),
                                  return_exceptions=True)
        await ctx.probe()
        sent = await flooding
        ctx.notes.append("written (MB): " + ", ".join(
            f"{s / MB:.1f}" if isinstance(s, int) else repr(s) for s in sent))

    await run_case(serve, "command senders that never read", attack)


async def test_publisher_faster_than_real_time(serve: ServerProc) -> None:
    """200 MB of video as fast as it goes, three players reading all they can."""
    async def attack(ctx: Attack) -> None:
        key = f"fast-{ctx.number}"
        players = [await _start_player(ctx, n, key) for n in range(1, 4)]
        received = [0] * len(players)

        async def drink(n: int, peer: RawPeer) -> None:
            assert peer.reader is not None
            try:
                while data := await asyncio.wait_for(peer.reader.read(1 << 20), 60):
                    received[n] += len(data)
            except (ConnectionError, OSError, TimeoutError):
                pass

        drinking = [asyncio.create_task(drink(n, p)) for n, p in enumerate(players)]
        publisher, sid = await _start_publisher(ctx, 5, key)
        reading = asyncio.create_task(_keep_reading(publisher))
        probe = asyncio.create_task(ctx.probe())
        started = time.monotonic()
        sent = await _flood(ctx, publisher, sid, 200 * MB, 100_000, 25)
        seconds = time.monotonic() - started
        await probe
        ctx.notes.append(f"published {sent / MB:.0f} MB in {seconds:.1f} s "
                         f"({sent / 100_000 * 0.04 / seconds:.0f}x real time at 25 fps); "
                         f"players read {', '.join(f'{r / MB:.0f}' for r in received)} MB")
        for task in [*drinking, reading]:
            task.cancel()

    await run_case(serve, "publisher faster than real time", attack)


async def test_gop_entry_count(serve: ServerProc) -> None:
    """Issue 8: one keyframe, then 1.5 million 1-byte audio messages (2
    bytes each on the wire), each kept by the GOP cache for late joiners
    at ~120 bytes of Python objects unless the cache is charged per entry
    and capped in entries."""
    csid = 20
    block = bytes([0xC0 | csid, 0x2F]) * 100_000   # fmt 3: same length, type, delta

    async def attack(ctx: Attack) -> None:
        publisher, sid = await _start_publisher(ctx, 1, f"entries-{ctx.number}")
        publisher.session.send_video(sid, 40, avc_frame(True, 0))
        publisher.flush()
        publisher.send_raw(header0(csid, 1, 8, sid, 41) + b"\x2f"    # then delta 1 ms
                           + bytes([0x40 | csid]) + (1).to_bytes(3, "big")
                           + (1).to_bytes(3, "big") + b"\x08\x2f")
        assert publisher.writer is not None
        started = time.monotonic()
        probe = None
        for n in range(GOP_ENTRIES // 100_000):
            publisher.send_raw(block)
            await drain(publisher.writer, 10)
            if n == 2:
                probe = asyncio.create_task(ctx.probe())
        # the answer to a ping comes after every message before it was handled
        publisher.session.ping(0x5EED)
        publisher.flush()
        await publisher.until(lambda: any(isinstance(e, PingResponse) and e.timestamp == 0x5EED
                                          for e in publisher.events), 60)
        ctx.notes.append(f"{GOP_ENTRIES} messages taken in {time.monotonic() - started:.1f} s; "
                         f"RSS then {ctx.server.memory()[0]:.0f} MB")
        assert probe is not None
        await probe

    await run_case(serve, "GOP entry count", attack)


async def test_header_cache_flood(serve: ServerProc) -> None:
    """Review of issue 9: per-track headers were bounded in keys only (64
    of up to 8 MiB each per channel, unseen by max_memory).  Four streams
    each send 64 OneTrack SequenceStarts of 1 MiB, then ModEx chains as
    long as a message (a Python loop turn per 3 bytes before the bound)."""
    config = bytes(1024 * 1024)
    modex = bytes([0x97]) + bytes.fromhex("00aaf7") * (1024 * 1024 // 3)

    async def attack(ctx: Attack) -> None:
        async def flood(j: int) -> None:
            publisher, sid = await _start_publisher(ctx, j, f"headers-{ctx.number}-{j}")
            assert publisher.writer is not None
            for track in range(64):
                payload = bytes([0x90 | 6, 0x00]) + b"hvc1" + bytes([track]) + config
                publisher.session.send_video(sid, track, payload)
                publisher.flush()
                await drain(publisher.writer, 20)
            for i in range(8):
                publisher.session.send_video(sid, 100 + i, modex)
                publisher.flush()
                await drain(publisher.writer, 20)
            publisher.session.ping(0x4EAD)
            publisher.flush()
            await publisher.until(lambda: any(
                isinstance(e, PingResponse) and e.timestamp == 0x4EAD
                for e in publisher.events), 60)

        sending = asyncio.gather(*(flood(j) for j in (1, 2, 3, 4)))
        probe = asyncio.create_task(ctx.probe())
        await sending
        await probe

    await run_case(serve, "header cache flood", attack)


def _aggregate_of_tiny_audio(count: int, stream_id: int) -> bytes:
    """The body of an aggregate message (type 22) of ``count`` 1-byte audio
    messages (16 bytes each, header and back-pointer included)."""
    return b"".join(b"\x08\x00\x00\x01" + (i & 0xFFFFFF).to_bytes(3, "big") + b"\x00"
                    + stream_id.to_bytes(3, "big") + b"\x2f" + (12).to_bytes(4, "big")
                    for i in range(count))


async def test_aggregates_of_tiny_messages(serve: ServerProc) -> None:
    """The entry-count attack in aggregate messages.  One 8 MB aggregate of
    half a million 1-byte audio messages used to be split out of the read
    that completed it (seconds of the event loop): past
    max_aggregate_messages (4096) the sender is disconnected.  Aggregates
    at the limit, 200 of them (819,200 messages), are taken in turns."""
    huge = _aggregate_of_tiny_audio(8_000_000 // 16, 1)
    full = _aggregate_of_tiny_audio(4096, 1)

    async def attack(ctx: Attack) -> None:
        async def oversize(j: int) -> None:
            publisher, sid = await _start_publisher(ctx, j, f"aggregates-{ctx.number}-{j}")
            publisher.session.send_video(sid, 40, avc_frame(True, 0))
            publisher.flush()
            publisher.send_raw(chunked(22, huge, stream_id=sid, csid=20, chunk_size=4096))
            ctx.check(await publisher.closed_by_server(10),
                      "an aggregate of 500,000 messages was taken")

        async def at_the_limit(j: int) -> None:
            publisher, sid = await _start_publisher(ctx, j, f"aggregates-{ctx.number}-{j}")
            publisher.session.send_video(sid, 40, avc_frame(True, 0))
            publisher.flush()
            one = chunked(22, full, stream_id=sid, csid=20, chunk_size=4096)
            for _ in range(200):
                publisher.send_raw(one)
            publisher.session.ping(0xA66)
            publisher.flush()
            await publisher.until(lambda: any(
                isinstance(e, PingResponse) and e.timestamp == 0xA66
                for e in publisher.events), 60)

        sending = asyncio.gather(oversize(1), at_the_limit(2))
        probe = asyncio.create_task(ctx.probe())
        await sending
        await probe

    await run_case(serve, "aggregates of tiny messages", attack)


async def test_connection_churn(serve: ServerProc) -> None:
    """3000 connect/close cycles (closed or reset, before or after the
    answer, some after a createStream): no descriptor or memory is left."""
    async def attack(ctx: Attack) -> None:
        async def cycle(n: int) -> None:
            reader, writer = await tcp(ctx.port, ctx.ip(1 + n % 4))
            try:
                await handshake(reader, writer)
                writer.write(command(*CONNECT))
                if n % 5 != 4:  # one in five leaves before the answer
                    await read_until(reader, CONNECTED)
                if n % 3 == 0:
                    writer.write(command("createStream", 2.0, None))
            finally:
                if n % 2:
                    reset(writer)
                else:
                    writer.close()

        async def cycles(start: int, count: int) -> list[BaseException]:
            results = await gather_bounded([(n % 4, partial(cycle, n))
                                            for n in range(start, start + count)])
            return [r for r in results if isinstance(r, BaseException)]

        failed = await cycles(0, 300)                    # warm up
        await ctx.fds_back()
        before = ctx.server.memory()[0]
        started = time.monotonic()
        probe = asyncio.create_task(ctx.probe())
        failed += await cycles(300, 3000)
        seconds = time.monotonic() - started
        await probe
        fds = await ctx.fds_back()
        after = ctx.server.memory()[0]
        ctx.notes.append(f"3000 cycles in {seconds:.1f} s; RSS {before:.1f} -> {after:.1f} MB")
        ctx.check(not failed, f"{len(failed)} of 3300 cycles failed: {failed[:3]}")
        ctx.check(fds <= ctx.fd_base, f"{fds - ctx.fd_base} descriptors left after the churn")
        ctx.check(after - before <= CHURN_GROWTH_MB,
                  f"RSS grew {after - before:.1f} MB over 3000 cycles (bound {CHURN_GROWTH_MB})")

    await run_case(serve, "connection churn", attack)
