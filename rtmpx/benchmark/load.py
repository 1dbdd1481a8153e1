"""The lean load generator: ``python3 -m rtmpx.benchmark.load SPEC_JSON``.

A process of its own, so that what it spends is not the server's, built
on rtmpx's sans-I/O core under bare :class:`asyncio.Protocol` objects
(uvloop when importable):

* Each connection runs a :class:`~rtmpx.ClientSession` for the handshake,
  ``connect`` and ``publish``/``play``: the sequences a real encoder and
  player send.
* Publishers send an FLV sample's tags chunked once, at load time, by
  :class:`~rtmpx.ChunkWriter` (a full header per message); each send
  patches the 3 timestamp bytes (and, for the delay metric, the send time
  embedded at :data:`STAMP_AT` of a video body) and writes the rest as is.
  Paced publishers follow the tags' timestamps (the sample's bitrate);
  unpaced ones write as fast as the server takes it.
* Players count the bytes they read and nothing else, apart from an
  Acknowledgement every :data:`ACK_EVERY` seconds (the server's window);
  delay players let their session parse each message to read the send
  time back.
* Idle connections stop after ``connect``.

The generator reports on stdout, one JSON object a line, ``{"mark": ...}``
as it goes (``published``, ``idle``, ``players``, ``start``, ``stop``,
``step_start``, ``step_end``; ``ramp_failed`` when players of a ramp
step could not join, which ends the ramp), then ``{"result": ...}``; the runner reads
the server's CPU and memory at those marks.  Its own CPU
(``getrusage``) over the window is in the ``stop`` mark.  A line
``stop`` on stdin, or its end, stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import struct
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, cast

from .. import amf
from ..chunk import ChunkWriter, Message, default_csid
from ..constants import MessageType as MT
from ..events import (
    Connected,
    ConnectRejected,
    Event,
    PlayStarted,
    PlayStopped,
    PublishStarted,
    StreamFailed,
    VideoData,
)
from ..flv import read_tags
from ..session import ClientSession
from .runner import raise_nofile

__all__ = [
    "ACK_EVERY",
    "MAGIC",
    "STAMP_AT",
    "Chunked",
    "LoadSpec",
    "main",
    "percentile",
    "prechunk",
    "run_loop",
]

#: Where a stamped video body carries :data:`MAGIC` and the send time
#: (``time.monotonic_ns()``, big-endian u64): after the FLV video header.
STAMP_AT = 5
MAGIC = b"rtmpxbt\x00"
_STAMP = struct.Struct(">8sQ")
_HEADER = 12   # basic header (1 byte: csid < 64) + message header of fmt 0
_TS_LIMIT = 0xF00000  # unpaced timestamps start over below the extended range
#: Seconds between the Acknowledgements of a counting player.
ACK_EVERY = 2.0
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What the generator does (all on ``rtmp://host:port/app``).

    ``publishers`` publish ``bench0``, ``bench1``, ... (``paced``: at the
    sample's rate; else as fast as the server reads); ``players`` play
    ``bench0`` counting bytes, ``delay_players`` play it reading the send
    times (``stamp`` embeds them); ``idle`` connections only connect.
    After ``warmup`` seconds, the window of ``seconds`` is measured.
    With ``ramp_step``, players join ``ramp_step`` at a time up to
    ``ramp_max``, each step measured for ``seconds``.
    """

    port: int
    sample: str = ""
    host: str = "127.0.0.1"
    app: str = "live"
    publishers: int = 0
    paced: bool = True
    stamp: bool = False
    players: int = 0
    delay_players: int = 0
    idle: int = 0
    warmup: float = 1.0
    seconds: float = 5.0
    ramp_step: int = 0
    ramp_max: int = 0
    concurrency: int = 8
    timeout: float = 60.0

    def to_json(self) -> str:
        """The spec as the generator's command-line argument."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        """The spec of :meth:`to_json`."""
        return cls(**json.loads(text))


# --- pre-chunked tags ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Chunked:
    """One media message, chunked once: ``head`` is the fmt 0 header and
    the first body bytes (timestamp at 1..3, stamp at ``_HEADER +
    STAMP_AT``), ``rest`` the remaining bytes on the wire."""

    timestamp: int
    head: bytes
    rest: bytes
    stampable: bool

    @property
    def size(self) -> int:
        """Bytes on the wire."""
        return len(self.head) + len(self.rest)


def _chunk(type_id: int, payload: bytes, stream_id: int, chunk_size: int,
           timestamp: int, stampable: bool) -> Chunked:
    data = ChunkWriter(chunk_size=chunk_size).encode(
        Message(type_id, payload, 0, stream_id, default_csid(type_id)))
    if data[0] >> 6 != 0 or data[0] & 0x3F != default_csid(type_id):
        raise RuntimeError("unexpected chunk header layout")  # pragma: no cover
    split = _HEADER + (STAMP_AT + _STAMP.size if stampable else 0)
    return Chunked(timestamp, data[:split], data[split:], stampable)


def prechunk(path: str, stream_id: int, chunk_size: int) -> tuple[list[Chunked], list[Chunked],
                                                                   int]:
    """An FLV file as (headers, media, loop length in ms): the metadata
    and sequence headers sent once, at timestamp 0, then the media looped."""
    headers: list[Chunked] = []
    media: list[Chunked] = []
    first: int | None = None
    last = 0
    for tag in read_tags(path):
        if tag.is_script:
            body = amf.dumps_all(["@setDataFrame"]) + tag.payload
            headers.append(_chunk(MT.DATA_AMF0, body, stream_id, chunk_size, 0, False))
            continue
        frame = tag.frame()
        if frame.is_sequence_header or frame.is_end_of_sequence:
            headers.append(_chunk(tag.type_id, tag.payload, stream_id, chunk_size, 0, False))
            continue
        first = tag.timestamp if first is None else first
        last = tag.timestamp
        stampable = tag.is_video and len(tag.payload) >= STAMP_AT + _STAMP.size \
            and chunk_size >= STAMP_AT + _STAMP.size
        media.append(_chunk(tag.type_id, tag.payload, stream_id, chunk_size,
                            tag.timestamp - (first or 0), stampable))
    if not media:
        raise ValueError(f"{path}: no audio or video to send")
    gap = (last - (first or 0)) // max(len(media) - 1, 1)
    return headers, media, last - (first or 0) + max(gap, 1)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank (0.0 if empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[rank]


# --- connections ------------------------------------------------------------------

class _Counters:
    """What every connection adds to (one object: no per-connection sums)."""

    __slots__ = ("delays", "lost", "rx", "timing", "tx")

    def __init__(self) -> None:
        self.tx = 0
        self.rx = 0
        self.lost = 0
        self.timing = False
        self.delays: list[float] = []


class _Connection(asyncio.Protocol):
    """One RTMP connection: a :class:`ClientSession` under a bare protocol.

    Every byte to the peer goes through :meth:`write` (the session's
    bytes first), so nothing overtakes a command.
    """

    def __init__(self, spec: LoadSpec, counters: _Counters) -> None:
        self.counters = counters
        self.session = ClientSession(spec.app, f"rtmp://{spec.host}:{spec.port}/{spec.app}")
        self.session.connect()
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=256 * 1024)
        self.write()

    def write(self, *parts: bytes | bytearray) -> None:
        """Send the session's pending bytes, then ``parts``."""
        if self.transport is None or self.closed:
            return
        pending = self.session.data_to_send()
        if pending:
            self.transport.writelines((pending, *parts))
        elif parts:
            self.transport.writelines(parts)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()
        reason = ConnectionError(f"connection lost: {exc}" if exc else "connection closed")
        for future in (self.connected, self.started):
            if not future.done():
                future.set_exception(reason)
                future.exception()  # retrieved: a setup that gave up is not an error log
        if self.started.done() and not self.started.exception():
            self.counters.lost += 1

    def close(self) -> None:
        """Close the socket (no goodbye: the bench is over)."""
        if self.transport is not None and not self.closed:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.session.receive_data(data)
        except Exception as exc:  # noqa: BLE001 - the setup fails with it
            self._fail(exc)
            return
        for event in events:
            self.on_event(event)
        self.write()

    def _fail(self, exc: BaseException) -> None:
        for future in (self.connected, self.started):
            if not future.done():
                future.set_exception(exc)
        self.close()

    def on_event(self, event: Event) -> None:
        """What the role does with one session event."""
        if isinstance(event, Connected):
            if not self.connected.done():
                self.connected.set_result(None)
        elif isinstance(event, (ConnectRejected, StreamFailed)):
            self._fail(ConnectionError(f"refused: {event}"))


class _Idle(_Connection):
    """Connects, then does nothing."""

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        if isinstance(event, Connected) and not self.started.done():
            self.started.set_result(0)


class _Player(_Connection):
    """Plays ``name``; once started, counts bytes (or, with ``parse``,
    lets the session parse them and reads the send times of stamped video)."""

    def __init__(self, spec: LoadSpec, counters: _Counters, name: str, parse: bool) -> None:
        super().__init__(spec, counters)
        self.name = name
        self.parse = parse
        self.counting = False
        self.base = 0     # session bytes when counting began
        self.count = 0    # bytes counted since

    def data_received(self, data: bytes) -> None:
        self.counters.rx += len(data)
        if self.counting:
            self.count += len(data)
            return
        super().data_received(data)

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        if isinstance(event, Connected):
            self.session.start_play(self.name)
        elif isinstance(event, PlayStarted):
            if not self.started.done():
                self.started.set_result(event.stream_id)
            if not self.parse:
                self.counting = True
                self.base = self.session.bytes_received
        elif isinstance(event, VideoData) and self.counters.timing:
            payload = event.payload
            if payload[STAMP_AT:STAMP_AT + 8] == MAGIC:
                sent = _STAMP.unpack_from(payload, STAMP_AT)[1]
                self.counters.delays.append((time.monotonic_ns() - sent) / 1e6)
        elif isinstance(event, PlayStopped):
            self.close()

    def acknowledge(self) -> None:
        """An Acknowledgement of the bytes counted (the session acks by itself
        while it parses)."""
        if self.counting and not self.closed:
            total = (self.base + self.count) & 0xFFFFFFFF
            self.session.send_message(Message(MT.ACKNOWLEDGEMENT, _U32.pack(total), 0, 0, 2))
            self.write()


class _Publisher(_Connection):
    """Publishes ``name`` and sends pre-chunked tags."""

    def __init__(self, spec: LoadSpec, counters: _Counters, name: str) -> None:
        super().__init__(spec, counters)
        self.name = name

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        if isinstance(event, Connected):
            self.session.start_publish(self.name)
        elif isinstance(event, PublishStarted) and not self.started.done():
            self.started.set_result(event.stream_id)

    def send(self, c: Chunked, timestamp: int, stamp: bool) -> None:
        """Send one message at ``timestamp`` (ms, below 2**24)."""
        head = bytearray(c.head)
        head[1] = timestamp >> 16 & 0xFF
        head[2] = timestamp >> 8 & 0xFF
        head[3] = timestamp & 0xFF
        if stamp and c.stampable:
            _STAMP.pack_into(head, _HEADER + STAMP_AT, MAGIC, time.monotonic_ns())
        self.write(head, c.rest)
        self.counters.tx += len(head) + len(c.rest)

    async def run(self, headers: list[Chunked], media: list[Chunked], length: int,
                  paced: bool, stamp: bool, stop: asyncio.Event) -> None:
        """Send the headers, then the media in a loop until ``stop``."""
        loop = asyncio.get_running_loop()
        for c in headers:
            self.send(c, 0, False)
        offset = 0
        i = 0
        n = len(media)
        began = loop.time()
        while not stop.is_set() and not self.closed:
            if not self.writable.is_set():
                await self.writable.wait()
                continue
            if paced:
                c = media[i]
                wait = began + (offset + c.timestamp) / 1000 - loop.time()
                if wait > 0.002:
                    await asyncio.sleep(wait)
                    continue
                self.send(c, offset + c.timestamp, stamp)
            else:
                burst = 0
                while burst < 1 << 20 and self.writable.is_set() and not self.closed:
                    c = media[i]
                    self.send(c, offset + c.timestamp, stamp)
                    burst += c.size
                    i += 1
                    if i == n:
                        i = 0
                        offset += length
                        if offset > _TS_LIMIT:
                            offset = 0
                await asyncio.sleep(0)
                continue
            i += 1
            if i == n:
                i = 0
                offset += length


# --- the generator -----------------------------------------------------------------

class Generator:
    """Runs one :class:`LoadSpec`, printing marks with ``emit``."""

    def __init__(self, spec: LoadSpec, emit: Callable[[dict[str, Any]], None]) -> None:
        self.spec = spec
        self.emit = emit
        self.counters = _Counters()
        self.stop = asyncio.Event()
        self.connections: list[_Connection] = []
        self._gate = asyncio.Semaphore(spec.concurrency)

    def mark(self, name: str, **values: Any) -> None:
        """Report a mark (the runner measures the server at it)."""
        self.emit({"mark": name, "t": time.monotonic(), **values})

    async def open(self, conn: _Connection) -> int:
        """Connect ``conn`` (at most ``concurrency`` before connect is
        accepted: a server bounds half-open connections per address) and
        return the stream id once it publishes or plays."""
        loop = asyncio.get_running_loop()
        self.connections.append(conn)
        async with asyncio.timeout(self.spec.timeout):
            async with self._gate:
                await loop.create_connection(lambda: conn, self.spec.host, self.spec.port)
                await conn.connected
            return await conn.started

    async def open_all(self, conns: list[_Connection]) -> None:
        """Open ``conns`` concurrently; the first failure fails all."""
        await asyncio.gather(*(self.open(c) for c in conns))

    def cpu(self) -> float:
        """This process's CPU seconds (user + system)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self.stop.wait()
        except TimeoutError:
            pass

    def _window(self) -> tuple[float, float, int, int]:
        c = self.counters
        return time.monotonic(), self.cpu(), c.tx, c.rx

    def _since(self, start: tuple[float, float, int, int]) -> dict[str, Any]:
        t0, cpu0, tx0, rx0 = start
        c = self.counters
        return {"seconds": time.monotonic() - t0, "load_cpu": self.cpu() - cpu0,
                "tx_bytes": c.tx - tx0, "rx_bytes": c.rx - rx0, "lost": c.lost}

    async def _acknowledge(self) -> None:
        while True:
            await asyncio.sleep(ACK_EVERY)
            for conn in self.connections:
                if isinstance(conn, _Player):
                    conn.acknowledge()

    async def run(self) -> None:
        """Set up, measure (marks on ``emit``), tear down."""
        spec = self.spec
        tasks: list[asyncio.Task[None]] = []
        acks = asyncio.create_task(self._acknowledge())
        try:
            publishers = [_Publisher(spec, self.counters, f"bench{i}")
                          for i in range(spec.publishers)]
            await self.open_all(list(publishers))
            if publishers:
                chunked: dict[tuple[int, int], tuple[list[Chunked], list[Chunked], int]] = {}
                for pub in publishers:
                    key = (pub.started.result(), pub.session.chunk_size)
                    if key not in chunked:
                        chunked[key] = prechunk(spec.sample, *key)
                    tasks.append(asyncio.create_task(pub.run(
                        *chunked[key], spec.paced, spec.stamp, self.stop)))
            self.mark("published", publishers=len(publishers))
            if spec.idle:
                await self.open_all([_Idle(spec, self.counters) for _ in range(spec.idle)])
                await asyncio.sleep(0.5)
                self.mark("idle", connections=spec.idle)
            players: list[_Connection] = [_Player(spec, self.counters, "bench0", True)
                                          for _ in range(spec.delay_players)]
            players += [_Player(spec, self.counters, "bench0", False)
                        for _ in range(spec.players)]
            await self.open_all(players)
            self.mark("players", players=len(players))
            if spec.ramp_step:
                await self._ramp(len(players))
                return
            await self._sleep(spec.warmup)
            start = self._window()
            self.counters.timing = True
            self.mark("start")
            await self._sleep(spec.seconds)
            self.counters.timing = False
            delays = self.counters.delays
            self.mark("stop", **self._since(start), delay_count=len(delays),
                      delay_p50_ms=percentile(delays, 0.5), delay_p99_ms=percentile(delays, 0.99))
        finally:
            self.stop.set()
            acks.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(acks, *tasks, return_exceptions=True)
            for conn in self.connections:
                conn.close()
            await asyncio.sleep(0.1)

    async def _ramp(self, players: int) -> None:
        spec = self.spec
        while not self.stop.is_set() and players < spec.ramp_max:
            step = min(spec.ramp_step, spec.ramp_max - players)
            outcomes = await asyncio.gather(
                *(self.open(_Player(spec, self.counters, "bench0", False)) for _ in range(step)),
                return_exceptions=True)
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:  # the steps measured so far stand; say where the ramp ended
                self.mark("ramp_failed", players=players + step - len(failed),
                          failed=len(failed),
                          reason=f"{type(failed[0]).__name__}: {failed[0]}")
                break
            players += step
            await self._sleep(spec.warmup)
            if self.stop.is_set():
                break  # told to stop while this step joined: not measured
            start = self._window()
            self.mark("step_start", players=players)
            await self._sleep(spec.seconds)
            if self.stop.is_set():
                break
            self.mark("step_end", players=players, **self._since(start))


def _emit(values: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(values) + "\n")
    sys.stdout.flush()


async def _main(spec: LoadSpec) -> int:
    gen = Generator(spec, _emit)
    loop = asyncio.get_running_loop()

    def watch_stdin() -> None:  # "stop", or the runner is gone
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        loop.call_soon_threadsafe(gen.stop.set)

    threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()
    try:
        await gen.run()
    except Exception as exc:  # noqa: BLE001 - reported to the runner
        _emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _emit({"result": {"loop": type(loop).__module__}})
    return 0


def run_loop(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro`` on uvloop when it is importable, else on asyncio."""
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return asyncio.run(coro)
    return int(uvloop.run(coro))


def main(argv: list[str] | None = None) -> int:
    """Run the spec given as the one argument (JSON)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m rtmpx.benchmark.load SPEC_JSON", file=sys.stderr)
        return 2
    raise_nofile()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run_loop(_main(LoadSpec.from_json(args[0])))


if __name__ == "__main__":
    sys.exit(main())
