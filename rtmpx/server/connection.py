"""One client connection: an :class:`asyncio.Protocol` driving a
:class:`~rtmpx.ServerSession`.

Bytes go to the session, its events to the hub and the hooks, and every
byte for the peer comes from the session (:meth:`Connection.flush`).  The
connection decides policy only: hooks, which channel, limits.

Backpressure: the connection stops reading from its peer while its own
writes are paused (the peer does not read), or while a follower of one of
its publications is full; it is dropped if its write buffer passes
``max_write_buffer`` anyway.  A connection whose reading is paused is not
idle.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ..constants import MessageType as MT
from ..constants import StatusCode
from ..errors import InvalidStateError, ProtocolError
from ..events import (
    AudioData,
    ConnectRequest,
    DataMessage,
    Event,
    MediaBatch,
    Metadata,
    Pause,
    PlayRequest,
    PlayStopped,
    PublishRequest,
    ReceiveAudio,
    ReceiveVideo,
    Seek,
    Unpublished,
    VideoData,
)
from ..fanout import DUE, FLUSH, Outbox
from ..pacing import Flusher, Pacer, read_buffer
from ..session import ConnectionState, ServerSession, SessionConfig
from ..session.base import Buffer
from ..session.capabilities import DEFAULT_CAPABILITIES, LEGACY, Capabilities
from .hooks import Hooks, Request
from .hub import Channel, Hub, HubLimits, Publication, StreamKey
from .limits import limit_hit
from .player import PlayerSink

__all__ = ["CLOSE_TIMEOUT", "HALF_OPEN_GRACE", "MERGE_MAX", "Connection", "ConnectionContext",
           "RtmpPublisher", "Viewer"]

log = logging.getLogger("rtmpx.server")

_AUDIO, _VIDEO = int(MT.AUDIO), int(MT.VIDEO)

#: Seconds a closing connection waits for the peer to close its end.
CLOSE_TIMEOUT = 5.0
#: Seconds a half-open connection is safe from the per-address cap: a burst
#: of honest connects from one address (an edge, a NAT, a test rig) is
#: over by then; idle sockets are not.
HALF_OPEN_GRACE = 2.0
#: Merged media bytes a connection holds at most (and at most an eighth of
#: ``HubLimits.max_queue``): more are written at once.
MERGE_MAX = 64 * 1024


class Viewer(Protocol):
    """A peer served over another protocol than RTMP (an HTTP-FLV or
    WebSocket-FLV viewer, :mod:`rtmpx.server.webflv`; an LL-HLS request or
    live fMP4 stream, :mod:`rtmpx.server.webhls`): counted in the
    connection limits, checked by the server's timers with the
    connections, ended by its shutdown."""

    @property
    def ip(self) -> str:
        """Its address (what the per-address limit counts)."""

    def check(self, now: float) -> None:
        """Its timers (about once a second)."""

    def queued_bytes(self) -> int:
        """Bytes held for it (the memory budget counts them)."""

    def kick(self, reason: str) -> None:
        """Drop it."""

    def shutdown(self) -> None:
        """The server closes: finish what is owed (soon), or go at once."""


@dataclass(slots=True)
class ConnectionContext:
    """What every connection of a server shares: the hub, the hooks, the
    settings, and the set of open connections."""

    hub: Hub
    hooks: Hooks
    session_config: SessionConfig
    limits: HubLimits
    handshake_timeout: float
    connect_timeout: float
    idle_timeout: float
    max_connections: int
    replace: bool
    max_write_buffer: int
    max_half_open: int = 256
    max_half_open_per_ip: int = 16
    max_connections_per_ip: int | None = None
    ssl: _ssl.SSLContext | None = None
    #: what the server says it supports to Enhanced RTMP clients
    capabilities: Capabilities = DEFAULT_CAPABILITIES
    #: merges the players' media writes (None: each message written at once)
    flusher: Flusher | None = None
    connections: set[Connection] = field(default_factory=set)
    #: the HTTP-FLV and WebSocket-FLV viewers (:mod:`rtmpx.server.webflv`):
    #: established connections too, for the limits
    viewers: set[Viewer] = field(default_factory=set)
    #: whether a key is live on a sibling process (``rtmpx serve --workers``:
    #: a viewer of it here waits for the pull from there)
    elsewhere: Callable[[StreamKey], bool] | None = None
    #: connections whose connect is not accepted yet, oldest first
    half_open: dict[Connection, None] = field(default_factory=dict)
    closing: bool = False   # the server shuts down: no new connections

    def trim_half_open(self, ip: str, now: float) -> None:
        """Evict the oldest half-open connections of ``ip`` past
        ``max_half_open_per_ip``, among those older than :data:`HALF_OPEN_GRACE`."""
        same_ip = [c for c in self.half_open if c.ip == ip]
        excess = len(same_ip) - self.max_half_open_per_ip
        for conn in same_ip[:max(excess, 0)]:
            if now - conn.started <= HALF_OPEN_GRACE:
                break
            conn.evict(f"max_half_open_per_ip={self.max_half_open_per_ip}")

    def evict_one(self) -> None:
        """The half-open table is full: the oldest connection of the address
        that holds the most goes (one address flooding cannot push out
        everyone else's connects, however young its own are)."""
        by_ip: dict[str, list[Connection]] = {}
        for conn in self.half_open:  # oldest first
            by_ip.setdefault(conn.ip, []).append(conn)
        victims = max(by_ip.values(), key=len)
        victims[0].evict(f"max_half_open={self.max_half_open}")

    def trim_all_half_open(self, now: float) -> None:
        """:meth:`trim_half_open` for every address over its cap (once a second)."""
        counts: dict[str, int] = {}
        for conn in self.half_open:
            counts[conn.ip] = counts.get(conn.ip, 0) + 1
        for ip, count in counts.items():
            if count > self.max_half_open_per_ip:
                self.trim_half_open(ip, now)

    def established(self, ip: str | None = None) -> int:
        """Connections past connect, and viewers (from ``ip`` only, when given)."""
        return (sum(1 for c in self.connections
                    if c not in self.half_open and (ip is None or c.ip == ip))
                + sum(1 for v in self.viewers if ip is None or v.ip == ip))

    @property
    def merge_max(self) -> int:
        """Merged media bytes a player's connection holds at most before a
        flush is due at once: small next to a player's queue bound, so that
        a flush cannot jump a backlog past the drop rule to the kick (0: no
        merging, every message written at once)."""
        return min(MERGE_MAX, self.limits.max_queue // 8) if self.flusher is not None else 0

    def over_limits(self, ip: str) -> tuple[str, str]:
        """The limit one more established connection from ``ip`` would
        break, and the reason the peer is told (empty if none)."""
        if self.established() >= self.max_connections:
            limit = f"max_connections={self.max_connections}"
            return limit, f"Server full ({limit})."
        per_ip = self.max_connections_per_ip
        if per_ip is not None and self.established(ip) >= per_ip:
            limit = f"max_connections_per_ip={per_ip}"
            return limit, f"Too many connections from {ip} ({limit})."
        return "", ""


class RtmpPublisher:
    """A publishing message stream of a connection, as the hub's
    :class:`~rtmpx.server.hub.Publisher`."""

    __slots__ = ("connection", "stream_id")

    def __init__(self, connection: Connection, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id

    @property
    def peer(self) -> str:
        return self.connection.peer

    def pause(self) -> None:
        self.connection.hold_reading()

    def resume(self) -> None:
        self.connection.release_reading()

    def stop(self, reason: str) -> None:
        """Replaced or shut down: the connection goes (an encoder reconnects)."""
        self.connection.publication_stopped(self.stream_id, reason)


class Connection(asyncio.BufferedProtocol):
    """One client connection: bytes to the session, events to the hub."""

    def __init__(self, context: ConnectionContext) -> None:
        self.context = context
        self.session = ServerSession(context.session_config, epoch_ms=int(time.time() * 1000),
                                     capabilities=context.capabilities, batch_media=True)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.ip = "?"
        self.started = self.last_rx = self._active = time.monotonic()
        self.publications: dict[int, Publication] = {}
        self.players: dict[int, tuple[PlayerSink, Channel]] = {}
        self.closed = False
        self.bytes_in = 0
        self.app = ""
        self.tc_url = ""
        self.connect_params: dict[str, Any] = {}
        self.capabilities = LEGACY   # what the client's connect advertised
        self._decisions: set[asyncio.Task[None]] = set()
        self._holds = 0          # pauses asked by followers of our publications
        self._write_paused = False
        self._write_paused_since = 0.0
        self._reading = True
        self._pinged = 0.0
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._abort_later: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._stage = ""         # what the half-open deadline waits for
        self._tls: asyncio.Task[None] | None = None
        self._early: list[bytes] = []   # bytes that came with the end of the TLS handshake
        self._backlogged = False
        self._pacer = Pacer(self._receive, self._paced)
        self._flusher = context.flusher
        # media for our players (the fan-out appends to the session's output)
        self.outbox = Outbox(self.session, context.merge_max, self._media_due)

    def __repr__(self) -> str:
        return f"<Connection {self.peer}>"

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance
        self.transport = tp = cast(asyncio.Transport, transport)
        self.outbox.transport = tp
        peer = tp.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.ip = str(peer[0]) if isinstance(peer, tuple) else self.peer
        ctx = self.context
        if ctx.closing:
            self.closed = True
            tp.abort()
            return
        ctx.connections.add(self)
        tp.set_write_buffer_limits(high=ctx.limits.max_queue)
        # half-open until connect is accepted (TLS handshake included): a
        # budget of its own, in which a newcomer evicts the oldest (never
        # the other way round), and a deadline per stage kept on time
        ctx.half_open[self] = None
        ctx.trim_half_open(self.ip, self.started)
        if len(ctx.half_open) > ctx.max_half_open:
            ctx.evict_one()
        if ctx.ssl is not None:
            tp.pause_reading()  # the TLS layer takes the bytes from here
            self._tls = asyncio.ensure_future(self._start_tls(tp, ctx.ssl))
            self._arm("TLS handshake", ctx.handshake_timeout)
        else:
            self._arm("C0+C1", ctx.handshake_timeout)

    async def _start_tls(self, raw: asyncio.Transport, context: _ssl.SSLContext) -> None:
        """RTMPS: the TLS handshake, counted as half-open (asyncio's own
        TLS server would hide it from us until it is done)."""
        loop = asyncio.get_running_loop()
        tp: asyncio.Transport | None = None
        try:
            tp = await loop.start_tls(raw, self, context, server_side=True,
                                      ssl_handshake_timeout=self.context.handshake_timeout)
        except (OSError, _ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("%s: TLS handshake failed: %s", self.peer, exc)
        finally:
            self._tls = None
        if tp is None or self.closed:
            if tp is not None:
                tp.abort()
            raw.abort()
            if not self.lost.done():
                self.connection_lost(None)
            return
        self.transport = self.outbox.transport = tp  # the rule reads the TLS layer's backlog
        tp.set_write_buffer_limits(high=self.context.limits.max_queue)
        self._arm("C0+C1", self.context.handshake_timeout)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def get_buffer(self, sizehint: int) -> memoryview:
        return read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(read_buffer()[:nbytes])

    def data_received(self, data: Buffer) -> None:
        """Received bytes (maybe in :func:`~rtmpx.pacing.read_buffer`: handled
        or copied before this returns)."""
        if self.closed:
            return
        if self._tls is not None:
            # decrypted before start_tls returned the transport to answer on
            self._early.append(bytes(data))
            return
        self.last_rx = time.monotonic()
        self.bytes_in += len(data)
        self._pacer.feed(data)

    def _receive(self, data: Buffer) -> int:
        """Bytes to the session, its events to the hub (for the
        :class:`Pacer`): returns the bytes the session still holds unread,
        or -1 once the connection is gone."""
        if self.closed:
            return -1
        session = self.session
        try:
            for event in session.receive_data(data, bounded=True):
                self._event(event)
            if self._deadline is not None:
                self._next_stage()
        except ProtocolError as exc:
            limit_hit("protocol", self.peer, str(exc)[:200])
            self.abort()
            return -1
        except Exception:  # a bug: it costs this connection, never the server
            log.exception("%s: error while handling its data", self.peer)
            self.abort()
            return -1
        self.flush()
        return -1 if self.closed else session.input_pending

    def _paced(self, hold: bool) -> None:
        """The pacer keeps input for a later loop turn: stop reading meanwhile."""
        self._backlogged = hold
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self._pacer.finish()  # what the peer sent before it went
        self.closed = True
        self._established()
        if self._tls is not None:
            self._tls.cancel()
        if self._abort_later is not None:
            self._abort_later.cancel()
        if not self.lost.done():
            self.lost.set_result(None)
        ctx = self.context
        ctx.connections.discard(self)
        for task in self._decisions:
            task.cancel()
        for stream_id in list(self.publications):
            self._end_publish(stream_id, "disconnect")
        for stream_id in list(self.players):
            self._end_play(stream_id)
        if self.session.state not in (ConnectionState.HANDSHAKE, ConnectionState.AWAIT_CONNECT):
            ctx.hooks.notify("on_disconnect", Request("disconnect", self.app, "", "", self.peer,
                                                      self.tc_url,
                                                      capabilities=self.capabilities))
        log.info("%s disconnected", self.peer)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._write_paused_since = time.monotonic()
        self.outbox.measure()
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self.outbox.measure()  # the peer took most of its backlog
        self._update_reading()

    # -- output ------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the session has queued (the one write path to the peer)."""
        outbox = self.outbox
        if not outbox.queue:  # nothing to write (a publisher's reads, mostly)
            if outbox.state:
                outbox.flushed()
            return
        out = outbox.take()   # the session's output: control, commands and media
        transport = self.transport
        if transport is not None and not self.closed:
            transport.writelines(out)
            if outbox.measure() > self.context.max_write_buffer:
                limit_hit(f"max_write_buffer={self.context.max_write_buffer}", self.peer,
                          "does not read: disconnected")
                self.abort()

    def _media_due(self) -> None:
        """The fan-out merged media for us (:class:`rtmpx.fanout.Outbox`):
        flush now, or at the flusher's next tick."""
        outbox = self.outbox
        if outbox.state == FLUSH:
            self.flush()
        elif outbox.state == DUE and self._flusher is not None:
            self._flusher.due(self)

    def backlog(self) -> int:
        """Bytes written to the transport that the peer has not taken yet
        (what tells a slow reader; merged bytes waiting for their flush
        are ours to send, not the peer's delay)."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def queued_bytes(self) -> int:
        """Bytes held for the peer: its backlog and the merged bytes due."""
        return self.outbox.merged + self.backlog()

    def request_reconnect(self, tc_url: str | None = None,
                          description: str = "The server asks you to reconnect.") -> bool:
        """Ask the peer to reconnect (to ``tc_url``, else the same server),
        if it can: connected, and it advertised capsEx Reconnect.  Whether
        it was asked.  The connection stays until the peer leaves."""
        if self.closed:
            return False
        try:
            self.session.send_reconnect_request(tc_url, description)
        except InvalidStateError:
            return False  # not connected (yet, or any more), or a legacy client
        self.flush()
        log.info("%s asked to reconnect%s", self.peer, " elsewhere" if tc_url else "")
        return True

    def kick(self, reason: str) -> None:
        """Drop the peer (a slow player)."""
        self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    def evict(self, reason: str) -> None:
        """A half-open connection makes room for a newer one."""
        limit_hit(reason, self.peer, "dropped before connect for a newcomer")
        self._established()
        self.abort()

    def _established(self) -> None:
        """No longer half-open (connected, or gone)."""
        self.context.half_open.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _arm(self, stage: str, timeout: float) -> None:
        """The next half-open stage must be over within ``timeout`` seconds."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._stage = stage
        self._deadline = asyncio.get_running_loop().call_later(timeout, self._too_late, timeout)

    def _next_stage(self) -> None:
        """After input: re-arm the deadline when the session moved on."""
        state = self.session.state
        ctx = self.context
        if state is ConnectionState.HANDSHAKE:
            if self.session.hello_received and self._stage == "C0+C1":
                self._arm("C2", ctx.handshake_timeout)
        elif (state in (ConnectionState.AWAIT_CONNECT, ConnectionState.CONNECT_PENDING)
              and self._stage in ("C0+C1", "C2")):
            self._arm("connect", ctx.connect_timeout)

    def _too_late(self, timeout: float) -> None:
        self._deadline = None
        if not self.closed:
            name = "connect_timeout" if self._stage == "connect" else "handshake_timeout"
            limit_hit(f"{name}={timeout:g}", self.peer, f"{self._stage} not done in time")
            self.abort()

    def close(self) -> None:
        """Flush, then close gracefully: a FIN after our last byte, and we
        read (and ignore) until the peer closes too, for at most
        :data:`CLOSE_TIMEOUT` seconds.  (Closing at once would reset the
        connection if the peer's data is unread, and the peer would lose
        the end of what we sent: an ``_error``, an UnpublishNotify.)"""
        transport = self.transport
        if transport is None or self.closed:
            return
        if self._tls is not None:  # nothing owed before TLS is up
            self.abort()
            return
        self.flush()
        self.closed = True
        if not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:  # the peer reset the connection (its loss is on its way)
            transport.abort()
            return
        if not self._reading:
            self._reading = True
            transport.resume_reading()
        self._abort_later = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT,
                                                                  transport.abort)

    # -- reading: paused while a follower is full or our writes are ----------------------

    @property
    def reading_paused(self) -> bool:
        """Whether we stopped reading from the peer (backpressure)."""
        return not self._reading

    def hold_reading(self) -> None:
        """A follower of one of our publications is full."""
        self._holds += 1
        self._update_reading()

    def release_reading(self) -> None:
        self._holds = max(0, self._holds - 1)
        self._update_reading()

    def _update_reading(self) -> None:
        want = self._holds == 0 and not self._write_paused and not self._backlogged
        if want == self._reading or self.transport is None or self.closed:
            return
        self._reading = want
        if want:
            self.last_rx = time.monotonic()  # time paused by us is not idle time
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()

    # -- timers ------------------------------------------------------------------------

    def check(self, now: float) -> None:
        """Deadlines, idle time and pings (called about once a second)."""
        if self.closed:
            return
        ctx = self.context
        if self.publications or self.players or self in ctx.half_open:
            self._active = now
        if self._write_paused and now - self._write_paused_since > ctx.idle_timeout:
            limit_hit(f"idle_timeout={ctx.idle_timeout:g}", self.peer,
                      "has not read what we sent")
            self.abort()
        elif not self._reading:
            self.last_rx = now  # paused by a follower (for a bounded time): not idle
        elif now - self.last_rx > ctx.idle_timeout:
            limit_hit(f"idle_timeout={ctx.idle_timeout:g}", self.peer, "sent nothing")
            self.abort()
        elif now - self._active > ctx.idle_timeout:
            # answering pings alone does not keep a slot
            limit_hit(f"idle_timeout={ctx.idle_timeout:g}", self.peer,
                      "neither published nor played")
            self.close()
        elif (now - self.last_rx > ctx.idle_timeout / 3
              and now - self._pinged > ctx.idle_timeout / 3
              and self.session.state is ConnectionState.CONNECTED):
            self._pinged = now
            self.session.ping(int(time.time() * 1000) & 0xFFFFFFFF)
            self.flush()
        if self.players:
            self.outbox.measure()
        for sink, _ in list(self.players.values()):
            sink.check_lag(now)

    # -- events -------------------------------------------------------------------------

    def _event(self, event: Event) -> None:
        if type(event) is MediaBatch:   # the hot path first
            pub = self.publications.get(event.stream_id)
            if pub is not None:
                pub.media_run(event.messages, self.last_rx)
        elif isinstance(event, (VideoData, AudioData)):  # aggregates' messages
            pub = self.publications.get(event.stream_id)
            if pub is not None:
                pub.media(_VIDEO if isinstance(event, VideoData) else _AUDIO, event.timestamp,
                          event.payload, self.last_rx)
        elif isinstance(event, Metadata):
            pub = self.publications.get(event.stream_id)
            if pub is not None:
                pub.metadata(dict(event.metadata), event.payload, event.timestamp,
                             self.last_rx)
        elif isinstance(event, DataMessage):
            pub = self.publications.get(event.stream_id)
            if pub is not None:
                pub.data(event.timestamp, event.payload, self.last_rx)
        elif isinstance(event, ConnectRequest):
            self._decide(self._connect(event))
        elif isinstance(event, PublishRequest):
            self._decide(self._publish(event))
        elif isinstance(event, PlayRequest):
            self._decide(self._play(event))
        elif isinstance(event, Unpublished):
            self._end_publish(event.stream_id, "unpublish")
        elif isinstance(event, PlayStopped):
            self._end_play(event.stream_id)
        elif isinstance(event, (ReceiveAudio, ReceiveVideo, Pause, Seek)):
            entry = self.players.get(event.stream_id)
            if entry is None:
                return
            sink = entry[0]
            if isinstance(event, ReceiveAudio):
                sink.audio = event.enabled
            elif isinstance(event, ReceiveVideo):
                sink.video = event.enabled
            elif isinstance(event, Pause):
                sink.pause(event.paused)
            else:
                sink.restart()  # a live stream: seeking restarts at a keyframe

    def _decide(self, decision: Awaitable[None]) -> None:
        """Run a decision (which may await a hook) and flush its answer."""
        task = asyncio.ensure_future(decision)
        self._decisions.add(task)
        task.add_done_callback(self._decided)

    def _decided(self, task: asyncio.Task[None]) -> None:
        self._decisions.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: error while deciding", self.peer, exc_info=exc)
            self.abort()
            return
        self.flush()

    async def _connect(self, event: ConnectRequest) -> None:
        ctx = self.context
        request = Request("connect", event.app, "", event.query, self.peer, event.tc_url,
                          connect_params=event.params, capabilities=event.capabilities)
        ok, why = await ctx.hooks.ask("on_connect", request)
        if self.closed:
            return
        self.app, self.tc_url, self.connect_params = event.app, event.tc_url, event.params
        self.capabilities = event.capabilities
        if ok:
            limit, why = self.context.over_limits(self.ip)
            if limit:
                limit_hit(limit, self.peer, "connect refused")
        if not ok or why:
            self.session.reject_connect(why or "Connection rejected.")
            log.info("%s: connect to %r rejected: %s", self.peer, event.app, why)
            self.close()
            return
        self._established()
        self._active = time.monotonic()
        log.info("%s connected to app %r", self.peer, event.app)
        try:
            later = self.session.accept_connect()  # commands sent while we decided
        except ProtocolError as exc:
            limit_hit("protocol", self.peer, str(exc)[:200])
            self.abort()
            return
        for held in later:
            self._event(held)

    def _request(self, action: str, event: PublishRequest | PlayRequest) -> Request:
        publish_type = event.publish_type if isinstance(event, PublishRequest) else ""
        return Request(action, self.app, event.name, event.query, self.peer, self.tc_url,
                       publish_type=publish_type, connect_params=self.connect_params,
                       capabilities=self.capabilities)

    async def _publish(self, event: PublishRequest) -> None:
        ctx = self.context
        request = self._request("publish", event)
        ok, why = await ctx.hooks.ask("on_publish", request)
        if self.closed or not self.session.is_pending(event):
            return  # gone, or the client closed the stream while we decided
        stream_id = event.stream_id
        budget = ctx.hub.budget
        if ok and budget.over:
            ok, why = False, f"Server busy (max_memory={budget.limit})."
            limit_hit(f"max_memory={budget.limit}", self.peer, f"publish {request.key} refused")
        if not ok:
            self.session.reject_publish(stream_id, why or "Publish rejected.",
                                        code=StatusCode.PUBLISH_REJECTED)
            log.info("%s: publish %s rejected: %s", self.peer, request.key, why)
            return
        publication = ctx.hub.publish(request.key, RtmpPublisher(self, stream_id), request,
                                      time.monotonic(), replace=ctx.replace)
        if publication is None:
            self.session.reject_publish(stream_id, f"{request.key} is already being published.")
            log.info("%s: publish %s refused: already published", self.peer, request.key)
            return
        self.publications[stream_id] = publication
        self.session.accept_publish(stream_id)
        log.info("%s publishes %s (%s)", self.peer, request.key, request.publish_type)

    async def _play(self, event: PlayRequest) -> None:
        ctx = self.context
        request = self._request("play", event)
        ok, why = await ctx.hooks.ask("on_play", request)
        if self.closed or not self.session.is_pending(event):
            return
        stream_id = event.stream_id
        if not ok:
            self.session.reject_play(stream_id, why or "Play rejected.",
                                     code=StatusCode.PLAY_FAILED)
            log.info("%s: play %s rejected: %s", self.peer, request.key, why)
            return
        self.session.accept_play(stream_id)
        self.flush()
        audio, video = self.session.receiving(stream_id)
        sink = PlayerSink(self, stream_id, ctx.limits, peer=self.peer, audio=audio, video=video)
        channel = ctx.hub.subscribe(request.key, sink, time.monotonic())
        sink.joined = True
        self.players[stream_id] = (sink, channel)
        log.info("%s plays %s%s", self.peer, request.key, "" if channel.live else " (waiting)")

    # -- ends ----------------------------------------------------------------------------

    def _end_publish(self, stream_id: int, reason: str) -> None:
        publication = self.publications.pop(stream_id, None)
        if publication is not None:
            self.context.hub.unpublish(publication, reason)

    def publication_stopped(self, stream_id: int, reason: str) -> None:
        """The hub ended one of our publications (replaced, shutdown): we close."""
        self.publications.pop(stream_id, None)
        log.info("%s: publication on stream %d ended (%s): closing", self.peer, stream_id,
                 reason)
        self.close()

    def _end_play(self, stream_id: int) -> None:
        entry = self.players.pop(stream_id, None)
        if entry is not None:
            sink, channel = entry
            sink.closed = True
            self.context.hub.unsubscribe(channel, sink)
