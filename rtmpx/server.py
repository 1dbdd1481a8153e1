"""The asyncio RTMP server: accepts publishers and players, relays live
streams, records FLV, and hands every frame to Python code.

::

    async with rtmpx.Server(port=1935) as server:
        async for stream in server.publishes():        # each new publish
            async for frame in stream:                 # until unpublish
                frame.timestamp, frame.kind, frame.is_keyframe, frame.payload

Each connection is an :class:`asyncio.Protocol` driving a sans-I/O
:class:`~rtmpx.session.ServerSession`; every protocol decision lives there.
The relay itself (GOP cache, shared fan-out, slow players) is
:mod:`rtmpx.hub`.  Hooks (``on_connect``, ``on_publish``, ``on_play``,
``on_unpublish``, ``on_disconnect``) are async or plain callables given a
:class:`Request`; raising or returning ``False`` rejects with the proper
``_error``/``onStatus``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import ssl as _ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import parse_qs

from .constants import MessageType as MT
from .errors import ProtocolError, RtmpError
from .events import (
    AudioData,
    ConnectRequest,
    DataMessage,
    Event,
    Metadata,
    Pause,
    PlayRequest,
    PublishRequest,
    ReceiveAudio,
    ReceiveVideo,
    Seek,
    StreamClosed,
    StreamDeleted,
    Unpublished,
    VideoData,
)
from .hub import Channel, Hub, HubLimits, Sink
from .media import parse_audio, parse_video
from .session import ServerSession, SessionConfig

__all__ = ["IncomingStream", "Request", "Server"]

log = logging.getLogger("rtmpx.server")

Hook = Callable[["Request"], Any]
_AUDIO, _VIDEO, _DATA = int(MT.AUDIO), int(MT.VIDEO), int(MT.DATA_AMF0)


@dataclass(slots=True)
class Request:
    """What a hook is told about a connect, publish, play or disconnect.

    ``query`` is the raw query string (``token=abc``), ``params`` the same
    parsed (first value of each key).  For publish, set ``record`` to True
    (or a path) in ``on_publish`` to record that stream.
    """

    action: str                       # "connect", "publish", "play", "unpublish", "disconnect"
    app: str
    name: str
    query: str
    peer: str
    tc_url: str = ""
    publish_type: str = ""
    connect_params: dict[str, Any] = field(default_factory=dict)
    record: bool | str | Path | None = None

    @property
    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    @property
    def key(self) -> str:
        """The stream key: ``app/name``."""
        return f"{self.app}/{self.name}"


class IncomingStream:
    """One publish, as an async iterator of frames (``rtmpx.media.Frame``)
    and metadata (``rtmpx.events.Metadata``), ending at unpublish.

    The buffer is bounded (``max_items``): a consumer that falls behind
    pauses reading from this one publisher, never from others.
    """

    def __init__(self, request: Request, connection: _Connection, max_items: int) -> None:
        self.request = request
        self.key = request.key
        self.app = request.app
        self.name = request.name
        self.query = request.query
        self.peer = request.peer
        self.publish_type = request.publish_type
        self.metadata: dict[str, Any] | None = None
        self._conn = connection
        self._items: deque[Any] = deque()
        self._max = max_items
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._channel: Channel | None = None

    def _on_message(self, type_id: int, timestamp: int, payload: bytes,
                    metadata: dict[str, Any] | None) -> None:
        if type_id == _VIDEO:
            item: Any = parse_video(timestamp, payload)
        elif type_id == _AUDIO:
            item = parse_audio(timestamp, payload)
        elif metadata is not None:
            self.metadata = metadata
            item = Metadata(0, timestamp, metadata, payload)
        else:
            return  # other data messages are relayed, not part of the ingest API
        self._items.append(item)
        if len(self._items) >= self._max and not self._paused:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self) -> None:
        self._ended = True
        self._detach()
        self._wake()

    def _detach(self) -> None:
        if self._channel is not None:
            try:
                self._channel.listeners.remove(self._on_message)
            except ValueError:
                pass
            self._channel = None
        if self._paused:
            self._paused = False
            self._conn.resume_reading()

    def __aiter__(self) -> IncomingStream:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if self._paused and len(self._items) <= self._max // 2:
            self._paused = False
            self._conn.resume_reading()
        return item

    def close(self) -> None:
        """Stop receiving frames (the publish itself goes on)."""
        self._items.clear()
        self._end()

    def __repr__(self) -> str:
        return f"<IncomingStream {self.key} from {self.peer}>"


class _Publication:
    """A publishing message stream of a connection."""

    __slots__ = ("channel", "recorder", "request", "stream_id")

    def __init__(self, stream_id: int, channel: Channel, request: Request) -> None:
        self.stream_id = stream_id
        self.channel = channel
        self.request = request
        self.recorder: Any = None


class _Connection(asyncio.Protocol):
    """One client connection: bytes to the session, events to the server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.session = ServerSession(server.session_config, epoch_ms=int(time.time() * 1000))
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.started = self.last_rx = time.monotonic()
        self.deadline: float | None = self.started + server.handshake_timeout
        self.publications: dict[int, _Publication] = {}
        self.sinks: dict[int, tuple[Sink, Channel, Request]] = {}
        self.pending: set[asyncio.Task[None]] = set()
        self.closed = False
        self.bytes_in = 0
        self._read_pauses = 0
        self.app = ""
        self.tc_url = ""
        self.connect_params: dict[str, Any] = {}
        self._pinged = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance
        self.transport = tp = cast(asyncio.Transport, transport)
        peer = tp.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        server = self.server
        if len(server.connections) >= server.max_connections:
            log.warning("refusing %s: max_connections=%d reached", self.peer,
                        server.max_connections)
            tp.abort()
            self.closed = True
            return
        server.connections.add(self)
        tp.set_write_buffer_limits(high=server.limits.max_queue)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_rx = time.monotonic()
        self.bytes_in += len(data)
        try:
            events = self.session.receive_data(data)
            for event in events:
                self._event(event)
        except ProtocolError as exc:
            log.warning("%s broke the protocol: %s", self.peer, exc)
            self.abort()
            return
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for task in self.pending:
            task.cancel()
        for stream_id in list(self.publications):
            self._end_publish(stream_id, "disconnect")
        for stream_id in list(self.sinks):
            self._end_play(stream_id)
        if self.session.state not in ("handshake", "await_connect"):
            self.server._hook("on_disconnect", Request("disconnect", self.app, "", "",
                                                       self.peer, self.tc_url))
        log.info("%s disconnected", self.peer)

    # -- output ----------------------------------------------------------------------

    def flush(self) -> None:
        out = self.session.data_to_send()
        if out and self.transport is not None and not self.closed:
            self.transport.write(out)

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    def close(self) -> None:
        """Flush, then close the connection."""
        if self.transport is not None and not self.closed:
            self.flush()
            self.closed = True
            self.transport.close()

    def pause_reading(self) -> None:
        self._read_pauses += 1
        if self._read_pauses == 1 and self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self._read_pauses = max(0, self._read_pauses - 1)
        if self._read_pauses == 0 and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- events -------------------------------------------------------------------------

    def _event(self, event: Event) -> None:
        if isinstance(event, (VideoData, AudioData)):   # the hot path first
            pub = self.publications.get(event.stream_id)
            if pub is not None:
                type_id = _VIDEO if isinstance(event, VideoData) else _AUDIO
                pub.channel.media(type_id, event.timestamp, event.payload, self.last_rx)
        elif isinstance(event, Metadata):
            pub = self.publications.get(event.stream_id)
            if pub is not None:
                pub.channel.set_metadata(dict(event.metadata), event.payload, event.timestamp,
                                         self.last_rx)
        elif isinstance(event, DataMessage):
            pub = self.publications.get(event.stream_id)
            if pub is not None:
                pub.channel.data(event.timestamp, event.payload, self.last_rx)
        elif isinstance(event, ConnectRequest):
            self._decide(self._connect(event))
        elif isinstance(event, PublishRequest):
            self._decide(self._publish(event))
        elif isinstance(event, PlayRequest):
            self._decide(self._play(event))
        elif isinstance(event, (Unpublished, StreamClosed, StreamDeleted)):
            if event.stream_id in self.publications:
                self._end_publish(event.stream_id, "unpublish")
            if event.stream_id in self.sinks and not isinstance(event, Unpublished):
                self._end_play(event.stream_id)
        elif isinstance(event, (ReceiveAudio, ReceiveVideo)):
            entry = self.sinks.get(event.stream_id)
            if entry is not None:
                if isinstance(event, ReceiveAudio):
                    entry[0].audio = event.enabled
                else:
                    entry[0].video = event.enabled
        elif isinstance(event, Pause):
            self._pause(event)
        elif isinstance(event, Seek) and event.stream_id in self.sinks:
            self.session.send_status(event.stream_id, "NetStream.Seek.Notify",
                                     "Seeking a live stream restarts at a keyframe.")
            self.sinks[event.stream_id][0].restart()

    def _decide(self, decision: Awaitable[None]) -> None:
        """Run a decision (which may await a hook) and flush its answer."""
        task = asyncio.ensure_future(decision)
        if task.done():
            return
        self.pending.add(task)
        task.add_done_callback(self._decided)

    def _decided(self, task: asyncio.Task[None]) -> None:
        self.pending.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: error while deciding: %r", self.peer, exc)
            self.abort()
            return
        self.flush()

    async def _connect(self, event: ConnectRequest) -> None:
        request = Request("connect", event.app, "", event.query, self.peer, event.tc_url,
                          connect_params=event.params)
        ok, why = await self.server._ask("on_connect", request)
        if self.closed:
            return
        self.app, self.tc_url, self.connect_params = event.app, event.tc_url, event.params
        if ok:
            self.session.accept_connect()
            self.deadline = None
            log.info("%s connected to app %r", self.peer, event.app)
        else:
            self.session.reject_connect(why or "Connection rejected.")
            log.info("%s: connect to %r rejected: %s", self.peer, event.app, why)
            self.flush()
            self.close()

    async def _publish(self, event: PublishRequest) -> None:
        request = Request("publish", self.app, event.name, event.query, self.peer, self.tc_url,
                          publish_type=event.publish_type, connect_params=self.connect_params)
        ok, why = await self.server._ask("on_publish", request)
        if self.closed:
            return
        if not ok:
            self.session.reject_publish(event.stream_id, why or "Publish rejected.",
                                        code="NetStream.Publish.Rejected")
            log.info("%s: publish %s rejected: %s", self.peer, request.key, why)
            return
        channel = self.server.hub.channel(request.key)
        if channel.live:
            if self.server.duplicate_publish == "replace":
                old_conn, old_stream = channel.publisher
                log.info("%s replaces the publisher of %s", self.peer, request.key)
                old_conn._end_publish(old_stream, "replaced")
                old_conn.close()
            else:
                self.session.reject_publish(event.stream_id,
                                            f"{request.key} is already being published.")
                log.info("%s: publish %s refused: already published", self.peer, request.key)
                self.server.hub.discard_if_idle(channel)
                return
        self.session.accept_publish(event.stream_id)
        pub = _Publication(event.stream_id, channel, request)
        self.publications[event.stream_id] = pub
        self.server._start_publish(self, pub)

    async def _play(self, event: PlayRequest) -> None:
        request = Request("play", self.app, event.name, event.query, self.peer, self.tc_url,
                          connect_params=self.connect_params)
        ok, why = await self.server._ask("on_play", request)
        if self.closed:
            return
        if not ok:
            self.session.reject_play(event.stream_id, why or "Play rejected.",
                                     code="NetStream.Play.Failed")
            log.info("%s: play %s rejected: %s", self.peer, request.key, why)
            return
        if event.stream_id in self.sinks:   # a new play on the same stream
            self._end_play(event.stream_id)
        self.session.accept_play(event.stream_id)
        self.flush()
        assert self.transport is not None
        sink = Sink(self.transport, event.stream_id, self.session.chunk_size, self.server.limits,
                    peer=self.peer, flush=self.flush, on_kick=self._kicked,
                    owner=self)
        channel = self.server.hub.channel(request.key)
        self.sinks[event.stream_id] = (sink, channel, request)
        channel.add_sink(sink, time.monotonic())
        log.info("%s plays %s%s", self.peer, request.key, "" if channel.live else " (waiting)")
        self.server._player_joined(channel)

    def _kicked(self, sink: Sink, why: str) -> None:
        self.abort()

    def _pause(self, event: Pause) -> None:
        entry = self.sinks.get(event.stream_id)
        if entry is None:
            return
        sink = entry[0]
        sink.audio = sink.video = not event.paused
        if event.paused:
            self.session.send_status(event.stream_id, "NetStream.Pause.Notify", "Paused.")
        else:
            sink.restart()
            self.session.send_status(event.stream_id, "NetStream.Unpause.Notify", "Unpaused.")

    def _end_publish(self, stream_id: int, why: str) -> None:
        pub = self.publications.pop(stream_id, None)
        if pub is None:
            return
        self.server._stop_publish(self, pub, why)

    def _end_play(self, stream_id: int) -> None:
        entry = self.sinks.pop(stream_id, None)
        if entry is None:
            return
        sink, channel, _ = entry
        sink.closed = True
        channel.remove_sink(sink)
        self.server._player_left(channel)


class Server:
    """An RTMP server: live relay, recording, ingest API.

    Every argument has a safe default; the limits are security settings:
    ``handshake_timeout`` (handshake and connect must be done by then),
    ``idle_timeout`` (nothing received for that long: disconnect; a ping
    is sent first), ``max_connections``, the chunk/AMF limits of
    ``session_config`` and the per-player bounds of ``limits``.

    ``duplicate_publish`` is ``"reject"`` (a second publisher of a live key
    gets NetStream.Publish.BadName) or ``"replace"`` (the old one is
    disconnected).  ``record_dir`` records every publish to
    ``record_dir/app/name-<time>.flv`` (``on_publish`` can also set
    ``request.record``); publish type ``append`` appends to the newest
    recording of the key.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1935, *,
                 ssl: _ssl.SSLContext | None = None,
                 session_config: SessionConfig | None = None,
                 limits: HubLimits | None = None,
                 handshake_timeout: float = 10.0,
                 idle_timeout: float = 60.0,
                 max_connections: int = 1000,
                 duplicate_publish: str = "reject",
                 record_dir: str | Path | None = None,
                 push: Sequence[str] = (),
                 pull: str | None = None,
                 ingest_buffer: int = 512,
                 on_connect: Hook | None = None,
                 on_publish: Hook | None = None,
                 on_play: Hook | None = None,
                 on_unpublish: Hook | None = None,
                 on_disconnect: Hook | None = None) -> None:
        if duplicate_publish not in ("reject", "replace"):
            raise ValueError("duplicate_publish must be 'reject' or 'replace'")
        self.host = host
        self.port = port
        self.ssl = ssl
        self.session_config = session_config or SessionConfig()
        self.limits = limits or HubLimits()
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.duplicate_publish = duplicate_publish
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.push = list(push)
        self.pull = pull
        self.ingest_buffer = ingest_buffer
        self.hooks: dict[str, Hook | None] = {
            "on_connect": on_connect, "on_publish": on_publish, "on_play": on_play,
            "on_unpublish": on_unpublish, "on_disconnect": on_disconnect,
        }
        self.hub = Hub(self.limits)
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._watchers: list[asyncio.Queue[IncomingStream | None]] = []
        self._ingest: dict[str, list[IncomingStream]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._relays: Any = None
        self.started_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; returns once the socket is bound (see :attr:`port`)."""
        if self._server is not None:
            raise RtmpError("server already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host,
                                                self.port, ssl=self.ssl, reuse_address=True)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        self.started_at = time.monotonic()
        self._ticker = asyncio.create_task(self._tick())
        if self.push or self.pull:
            from .relay import Relays

            self._relays = Relays(self)
        log.info("listening on %s:%d%s", self.host, self.port, " (TLS)" if self.ssl else "")

    async def serve_forever(self) -> None:
        """Start if needed, then serve until cancelled or closed."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            pass

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, tell players, close recordings and connections."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._relays is not None:
            await self._relays.close()
        for conn in list(self.connections):
            for stream_id in list(conn.publications):
                conn._end_publish(stream_id, "shutdown")
        for conn in list(self.connections):
            conn.close()
        for queue in self._watchers:
            queue.put_nowait(None)
        for task in list(self._background):
            task.cancel()
        try:
            await asyncio.wait_for(server.wait_closed(), timeout)
        except TimeoutError:
            for conn in list(self.connections):
                conn.abort()
        log.info("server closed")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _tick(self) -> None:
        """Once a second: deadlines, idle connections, pings, slow players."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.closed:
                    continue
                if conn.deadline is not None and now > conn.deadline:
                    log.warning("%s: no handshake+connect within %.0f s", conn.peer,
                                self.handshake_timeout)
                    conn.abort()
                elif now - conn.last_rx > self.idle_timeout:
                    log.warning("%s: idle for %.0f s", conn.peer, self.idle_timeout)
                    conn.abort()
                elif (now - conn.last_rx > self.idle_timeout / 3
                      and now - conn._pinged > self.idle_timeout / 3
                      and conn.session.state == "connected"):
                    conn._pinged = now
                    conn.session.ping(int(time.time() * 1000) & 0xFFFFFFFF)
                    conn.flush()
            self.hub.check_lag(now)

    # -- hooks --------------------------------------------------------------------------

    async def _ask(self, name: str, request: Request) -> tuple[bool, str]:
        """Run a decision hook: (allowed, reason)."""
        hook = self.hooks.get(name)
        if hook is None:
            return True, ""
        try:
            result = hook(request)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # noqa: BLE001 - a hook that raises rejects, with its reason
            log.info("%s hook rejected %s: %s", name, request.key, exc)
            return False, str(exc) or type(exc).__name__
        if result is False:
            return False, ""
        return True, ""

    def _hook(self, name: str, request: Request) -> None:
        """Run a notification hook in the background; errors are logged."""
        hook = self.hooks.get(name)
        if hook is None:
            return

        async def run() -> None:
            try:
                result = hook(request)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%s hook failed", name)

        self._spawn(run())

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- publish and play bookkeeping --------------------------------------------------------

    def _start_publish(self, conn: _Connection, pub: _Publication) -> None:
        channel = pub.channel
        channel.reset()
        channel.publisher = (conn, pub.stream_id)
        for sink in list(channel.sinks):
            owner = self._sink_owner(sink)
            if owner is not None:
                owner.session.notify_publish(sink.stream_id)
                owner.flush()
            sink.restart()
        log.info("%s publishes %s (%s)", conn.peer, pub.request.key, pub.request.publish_type)
        record = pub.request.record
        if record is None and self.record_dir is not None:
            record = True
        if record:
            from .recorder import Recorder

            try:
                pub.recorder = Recorder.start(self, pub.request, record, channel)
            except OSError as exc:
                log.error("cannot record %s: %s", pub.request.key, exc)
        streams = []
        for queue in self._watchers:
            stream = IncomingStream(pub.request, conn, self.ingest_buffer)
            stream._channel = channel
            channel.listeners.append(stream._on_message)
            streams.append(stream)
            queue.put_nowait(stream)
        self._ingest[pub.request.key] = streams
        if self._relays is not None:
            self._relays.published(channel, pub.request)

    def _stop_publish(self, conn: _Connection, pub: _Publication, why: str) -> None:
        channel = pub.channel
        if channel.publisher is not None and channel.publisher[0] is conn:
            channel.publisher = None
        for stream in self._ingest.pop(pub.request.key, []):
            stream._end()
        if pub.recorder is not None:
            pub.recorder.close()
        if self._relays is not None:
            self._relays.unpublished(channel)
        for sink in list(channel.sinks):
            owner = self._sink_owner(sink)
            if owner is not None and not owner.closed:
                owner.session.notify_unpublish(sink.stream_id)
                owner.flush()
        channel.reset()
        log.info("%s stopped publishing %s (%s)", conn.peer, pub.request.key, why)
        self._hook("on_unpublish", Request("unpublish", pub.request.app, pub.request.name,
                                           pub.request.query, conn.peer, pub.request.tc_url,
                                           publish_type=pub.request.publish_type))
        self.hub.discard_if_idle(channel)

    def _sink_owner(self, sink: Sink) -> _Connection | None:
        owner = sink.owner
        return owner if isinstance(owner, _Connection) else None

    def _player_joined(self, channel: Channel) -> None:
        if self._relays is not None:
            self._relays.player_joined(channel)

    def _relays_pull_done(self, puller: Any) -> None:
        if self._relays is not None:
            self._relays.pull_done(puller)

    def _player_left(self, channel: Channel) -> None:
        if self._relays is not None:
            self._relays.player_left(channel)
        self.hub.discard_if_idle(channel)

    # -- the ingest API ----------------------------------------------------------------------

    async def publishes(self) -> AsyncIterator[IncomingStream]:
        """Each new publish, as an :class:`IncomingStream`, until the server closes.

        Iterate every stream it yields (or ``close()`` it): its buffer is
        bounded, and a full buffer pauses that publisher.
        """
        queue: asyncio.Queue[IncomingStream | None] = asyncio.Queue()
        self._watchers.append(queue)
        try:
            while True:
                stream = await queue.get()
                if stream is None:
                    return
                yield stream
        finally:
            self._watchers.remove(queue)

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Streams, publishers, players, bytes in/out, drops and lag, as a dict."""
        now = time.monotonic()
        streams = []
        bytes_in = bytes_out = drops = 0
        for key, channel in sorted(self.hub.channels.items()):
            players = []
            for sink in channel.sinks:
                players.append({
                    "peer": sink.peer, "bytes": sink.stats.bytes_sent,
                    "messages": sink.stats.messages_sent, "dropped": sink.stats.dropped,
                    "queued_bytes": sink.queued_bytes, "behind_seconds": sink.behind_seconds(now),
                })
                bytes_out += sink.stats.bytes_sent
                drops += sink.stats.dropped
            publisher = None
            if channel.publisher is not None:
                conn = channel.publisher[0]
                publisher = {"peer": conn.peer, "bytes": channel.bytes_in,
                             "messages": channel.messages_in}
            bytes_in += channel.bytes_in
            streams.append({"key": key, "live": channel.live, "publisher": publisher,
                            "players": players, "metadata": _jsonable(channel.metadata)})
        return {
            "uptime": now - self.started_at if self.started_at else 0.0,
            "connections": len(self.connections),
            "streams": streams,
            "publishers": sum(1 for s in streams if s["live"]),
            "players": sum(len(s["players"]) for s in streams),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "dropped": drops,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe form of an app or stream name (no path traversal)."""
    name = _SAFE.sub("_", text).strip("._") or "_"
    return name[:120]
