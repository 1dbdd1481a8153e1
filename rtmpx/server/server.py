"""The asyncio RTMP server: accepts publishers and players, relays live
streams, records FLV, and hands every frame to Python code.

::

    async with rtmpx.Server(port=1935) as server:
        async for stream in server.publishes():        # each new publish
            async for frame in stream:                 # until unpublish
                frame.timestamp, frame.kind, frame.is_keyframe, frame.payload

Each connection is a :class:`~rtmpx.server.connection.Connection` driving
a sans-I/O :class:`~rtmpx.ServerSession`; the relay is the
:class:`~rtmpx.server.hub.Hub`.  This class holds the policy: hooks,
recording, ingest streams, push and pull relays, limits, shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl as _ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..errors import RtmpError
from ..pacing import FLUSH_INTERVAL, Flusher
from ..session import SessionConfig
from ..session.base import MAX_NAME
from ..session.capabilities import DEFAULT_CAPABILITIES, LEGACY, Capabilities
from .connection import Connection, ConnectionContext, RtmpPublisher
from .hooks import Hook, Hooks, Request, TaskSet, request_of
from .hub import Channel, Hub, HubLimits, HubObserver, Publication, Publisher, StreamKey
from .ingest import IncomingStream
from .limits import MemoryBudget, limit_hit
from .recorder import Recordings
from .relay import Relays
from .stats import collect

if TYPE_CHECKING:
    from ..hls import HLSConfig
    from .http import HttpServer

__all__ = ["Server"]

log = logging.getLogger("rtmpx.server")

#: Streams :meth:`Server.publishes` holds for an iteration that does not
#: take them; later publishes are not handed to it until it does.
MAX_PENDING_STREAMS = 16


def _check_tc_url(tc_url: str | None) -> None:
    if tc_url is not None and len(tc_url) > MAX_NAME:
        raise ValueError(f"tc_url longer than {MAX_NAME} characters")


def _anywhere(key: StreamKey) -> bool:
    return True


def _tell(observer: Callable[..., None], *args: Any) -> None:
    """Tell an observer: its bug is logged and costs the hub nothing."""
    try:
        observer(*args)
    except Exception:
        log.exception("%r failed", observer)


class _Policy:
    """What the server does when the hub says a publication started or
    ended, or a channel's players changed (a :class:`HubObserver`)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def publication_started(self, publication: Publication) -> None:
        server = self.server
        if not publication.internal:  # a copy: its origin records, pushes, hands it out
            self._started(publication)
        for observer in server.observers:
            _tell(observer.publication_started, publication)

    def _started(self, publication: Publication) -> None:
        server = self.server
        request = request_of(publication)
        record = request.record
        if record is None and server.record_dir is not None:
            record = True
        if record and server.record_gate is not None and not server.record_gate(publication):
            record = None
        if record:
            server.recordings.start(publication, record, request.publish_type)
        for queue in server._watchers:
            if queue.full():  # the application does not take the streams it asked for
                log.warning("ingest: %d streams not taken yet: %s is not handed out",
                            queue.qsize(), publication.key)
                continue
            queue.put_nowait(IncomingStream(publication, server.ingest_buffer))
        if server.relays is not None:
            server.relays.publication_started(publication)

    def publication_ended(self, publication: Publication, reason: str) -> None:
        server = self.server
        if server.relays is not None:
            if not publication.internal:
                server.relays.publication_ended(publication)
            server.relays.demand_changed(publication.channel)  # players wait: pull?
        if not publication.internal:  # no hook for a copy: its origin runs them
            request = request_of(publication)
            log.info("%s stopped publishing %s (%s)", publication.publisher.peer,
                     publication.key, reason)
            server.hooks.notify("on_unpublish", Request(
                "unpublish", request.app, request.name, request.query, request.peer,
                request.tc_url, publish_type=request.publish_type))
        for observer in server.observers:
            _tell(observer.publication_ended, publication, reason)

    def demand_changed(self, channel: Channel) -> None:
        if self.server.relays is not None:
            self.server.relays.demand_changed(channel)
        for observer in self.server.observers:
            _tell(observer.demand_changed, channel)


class Server:
    """An RTMP server: live relay, recording, ingest API, relays.

    Every argument has a safe default; the limits are security settings:
    ``handshake_timeout`` (for each stage of the handshake: TLS, C0+C1,
    C2), ``connect_timeout`` (from the handshake until connect is accepted,
    the ``on_connect`` hook included),
    ``idle_timeout`` (nothing received for that long: disconnect; a ping
    is sent first; a connection we paused is not idle; a connection that
    neither publishes nor plays for that long is closed too, whatever
    pings it answers), ``hold_timeout``
    (the longest an ingest stream's consumer or a recording's disk may
    keep its publisher paused: then it lets go, see :class:`IncomingStream`),
    ``max_connections`` (established connections; more get ``_error``
    NetConnection.Connect.Rejected, "Server full"), ``max_connections_per_ip``
    (off by default: many players may share an address behind a NAT or an
    edge), ``max_half_open``/``max_half_open_per_ip`` (connections before
    connect is accepted: a budget of their own, where a newcomer evicts the
    oldest, so idle sockets cannot lock users out; the per-address cap
    spares connections younger than 2 s, so that a burst of honest connects
    from one address is not cut), the chunk/AMF limits of ``session_config``, the
    per-player bounds of ``limits``, ``ingest_buffer``, the bytes an
    :class:`IncomingStream` may hold, and ``max_memory``: the bytes the
    server may hold for all its peers (GOP caches, players' write buffers,
    chunk reassembly, ingest streams, recordings and push queues; see
    :class:`~rtmpx.server.limits.MemoryBudget`): past it, GOP caches are
    dropped and new publishes refused until it is back under.

    ``duplicate_publish`` is ``"reject"`` (a second publisher of a live key
    gets NetStream.Publish.BadName) or ``"replace"`` (the old one is
    disconnected: an encoder that reconnects takes over at once).
    ``record_dir`` records every publish to
    ``record_dir/app/name-<time>.flv`` (``on_publish`` can also set
    ``request.record``); publish type ``append`` appends to the newest
    recording of the key.  ``push`` republishes live streams upstream;
    ``pull`` fetches streams with no local publisher from an origin.

    Hooks (``on_connect``, ``on_publish``, ``on_play``, ``on_unpublish``,
    ``on_disconnect``) are plain or async callables given a
    :class:`Request`; raising or returning ``False`` rejects with the
    proper ``_error``/``onStatus``.

    Enhanced RTMP: ``capabilities`` is what the connect ``_result`` tells
    a client that advertised Enhanced RTMP capabilities (default: any
    codec forwarded, reconnect requests, multitrack, ModEx; None: the
    legacy answer to everyone); ``Request.capabilities`` is what the client
    advertised.  :meth:`request_reconnect` asks clients that advertised
    capsEx Reconnect to reconnect; :meth:`close` asks them all first and
    serves them for up to ``reconnect_grace`` seconds while the publishers
    among them leave.

    ``reuse_port`` binds with ``SO_REUSEPORT`` (Linux: several processes
    share the port, the kernel spreads connections; ``rtmpx serve
    --workers``).  :attr:`observers` are told what the hub does after the
    server's own policy (a worker's relaying between siblings).  ``admit``
    is asked before a publication that is not internal starts (see
    :attr:`Hub.admit <rtmpx.server.hub.Hub.admit>`); ``record_gate``
    before one would be recorded (False: it is not).
    :meth:`add_internal_listener` opens a second, private listener.

    ``http_port``: an HTTP server on ``host:http_port`` (0: a free port)
    starts and stops with this one (:attr:`http`, a
    :class:`~rtmpx.server.http.HttpServer`): the live streams as HTTP-FLV
    and WebSocket-FLV (``/{app}/{name}.flv``), LL-HLS (``.m3u8``, with
    the settings of ``hls``, an :class:`~rtmpx.hls.HLSConfig`), live fMP4
    (``.mp4``), the dashboard (``/``), ``/stats`` (JSON) and ``/metrics``
    (Prometheus).

    ``flush_interval``: players' media is written in merged batches, one
    ``writev`` per player at most every ``flush_interval`` seconds (default
    :data:`FLUSH_INTERVAL`; a system call per message and player is most of
    what fan-out costs); 0 writes every message at once.  Control traffic
    always goes out at once, taking queued media along.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1935, *,
                 ssl: _ssl.SSLContext | None = None,
                 reuse_port: bool = False,
                 session_config: SessionConfig | None = None,
                 limits: HubLimits | None = None,
                 handshake_timeout: float = 5.0,
                 connect_timeout: float = 10.0,
                 idle_timeout: float = 60.0,
                 hold_timeout: float = 60.0,
                 max_connections: int = 1000,
                 max_connections_per_ip: int | None = None,
                 max_half_open: int = 256,
                 max_half_open_per_ip: int = 16,
                 duplicate_publish: str = "reject",
                 record_dir: str | Path | None = None,
                 push: Sequence[Any] = (),
                 pull: str | None = None,
                 ingest_buffer: int = 8 * 1024 * 1024,
                 max_memory: int = 512 * 1024 * 1024,
                 on_connect: Hook | None = None,
                 on_publish: Hook | None = None,
                 on_play: Hook | None = None,
                 on_unpublish: Hook | None = None,
                 on_disconnect: Hook | None = None,
                 capabilities: Capabilities | None = DEFAULT_CAPABILITIES,
                 reconnect_grace: float = 5.0,
                 flush_interval: float = FLUSH_INTERVAL,
                 admit: Callable[[StreamKey, Publisher], bool] | None = None,
                 record_gate: Callable[[Publication], bool] | None = None,
                 http_port: int | None = None,
                 hls: HLSConfig | None = None) -> None:
        if duplicate_publish not in ("reject", "replace"):
            raise ValueError("duplicate_publish must be 'reject' or 'replace'")
        self.host = host
        self.port = port
        #: the HTTP server on ``host:http_port`` once started (None without ``http_port``)
        self.http: HttpServer | None = None
        self.http_port = http_port
        self.hls = hls
        self.ssl = ssl
        self.reuse_port = reuse_port
        #: more policy, told of every publication start and end and demand change
        self.observers: list[HubObserver] = []
        self.session_config = session_config or SessionConfig()
        self.limits = limits or HubLimits()
        self.duplicate_publish = duplicate_publish
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.ingest_buffer = ingest_buffer
        self.hold_timeout = hold_timeout
        self.reconnect_grace = reconnect_grace
        self.tasks = TaskSet()
        self.hooks = Hooks(self.tasks, on_connect=on_connect, on_publish=on_publish,
                           on_play=on_play, on_unpublish=on_unpublish,
                           on_disconnect=on_disconnect)
        self.budget = MemoryBudget(max_memory)
        self.hub = Hub(self.limits, observer=_Policy(self), budget=self.budget)
        self.hub.admit = admit
        self.record_gate = record_gate
        self.recordings = Recordings(self.record_dir)
        self.relays = Relays(self.hub, self.tasks, push, pull) if push or pull else None
        self.context = ConnectionContext(
            hub=self.hub, hooks=self.hooks, session_config=self.session_config,
            limits=self.limits, handshake_timeout=handshake_timeout,
            connect_timeout=connect_timeout, ssl=ssl,
            idle_timeout=idle_timeout, max_connections=max_connections,
            max_connections_per_ip=max_connections_per_ip, max_half_open=max_half_open,
            max_half_open_per_ip=max_half_open_per_ip,
            replace=duplicate_publish == "replace",
            max_write_buffer=2 * self.limits.max_queue + self.session_config.max_message_size,
            capabilities=capabilities if capabilities is not None else LEGACY,
            flusher=Flusher(flush_interval) if flush_interval > 0 else None,
            # an edge: any stream may be at the origin (a web viewer waits for the pull)
            elsewhere=_anywhere if pull else None)
        self._server: asyncio.Server | None = None
        self._internal: list[tuple[asyncio.Server, ConnectionContext]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._watchers: list[asyncio.Queue[IncomingStream | None]] = []
        self._closed = False
        self.started_at = 0.0

    @property
    def connections(self) -> set[Connection]:
        """The open connections (not those of internal listeners)."""
        return self.context.connections

    def _contexts(self) -> list[ConnectionContext]:
        return [self.context, *(context for _, context in self._internal)]

    async def add_internal_listener(self, hooks: Hooks, host: str = "127.0.0.1",
                                    port: int = 0) -> tuple[int, ConnectionContext]:
        """Listen on ``host:port`` too, for peers of the server's own (a
        worker's siblings): no TLS, ``hooks`` instead of the server's, and
        connections of their own, counted apart from the public ones (not in
        :attr:`connections` or the stats, no per-address caps), under the
        same limits and timers; closed with the server.  The port and the
        listener's context (whose ``connections`` are its own)."""
        context = dataclasses.replace(
            self.context, ssl=None, hooks=hooks, connections=set(), half_open={},
            max_connections_per_ip=None, max_half_open_per_ip=self.context.max_half_open,
            closing=False)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: Connection(context), host, port)
        self._internal.append((listener, context))
        return int(listener.sockets[0].getsockname()[1]), context

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; returns once the socket is bound (see :attr:`port`)."""
        if self._server is not None:
            raise RtmpError("server already started")
        loop = asyncio.get_running_loop()
        context = self.context
        self._server = await loop.create_server(
            lambda: Connection(context), self.host, self.port, reuse_address=True,
            reuse_port=self.reuse_port or None)
        self.port = self._server.sockets[0].getsockname()[1]
        self.started_at = time.monotonic()
        self._ticker = asyncio.create_task(self._tick())
        log.info("listening on %s:%d%s", self.host, self.port, " (TLS)" if self.ssl else "")
        if self.http_port is not None:
            from .http import HttpServer  # aiohttp, only for a server that serves HTTP

            http = HttpServer(self, self.host, self.http_port, context=self.context,
                              hls=self.hls)
            try:
                await http.start()
            except BaseException:
                await self.close()
                raise
            self.http = http
            self.http_port = http.port

    async def serve_forever(self) -> None:
        """Start if needed, then serve until cancelled or closed."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            pass

    async def close(self, timeout: float = 5.0, *, reconnect_tc_url: str | None = None) -> None:
        """Shut down, finishing what is owed: stop accepting; ask every
        client that advertised capsEx Reconnect (and was not asked yet) to
        reconnect - to ``reconnect_tc_url`` (absolute, or relative to each
        client's tcUrl), else to this address (a restart) - and serve them
        as before while the publishers among them leave by themselves, for
        up to ``reconnect_grace`` seconds (legacy clients are never asked); end
        every publication (players are told, recordings get their last
        tags and are closed, pushes send what they have); close every
        connection; run the on_unpublish/on_disconnect hooks; then return.
        Each wait is bounded by ``timeout`` seconds (recordings: six times
        that).  Raises ValueError (and does nothing) for a
        ``reconnect_tc_url`` longer than :data:`~rtmpx.session.base.MAX_NAME`."""
        _check_tc_url(reconnect_tc_url)
        if self._server is None:
            return
        server, self._server = self._server, None
        self._closed = True
        for context in self._contexts():
            context.closing = True
        server.close()
        for listener, _ in self._internal:
            listener.close()
        await self._let_clients_reconnect(min(timeout, self.reconnect_grace), reconnect_tc_url)
        if self._ticker is not None:
            self._ticker.cancel()
        if self.relays is not None:
            self.relays.close()
        self.hub.close("shutdown")
        for queue in self._watchers:
            while queue.full():  # make room for the end marker
                stream = queue.get_nowait()
                if stream is not None:
                    stream.close()
            queue.put_nowait(None)
        connections = [conn for context in self._contexts() for conn in context.connections]
        for conn in connections:
            conn.close()
        if self.context.flusher is not None:
            self.context.flusher.close()
        lost = [conn.lost for conn in connections if not conn.lost.done()]
        if lost:
            await asyncio.wait(lost, timeout=timeout)
            for conn in connections:
                if not conn.lost.done():
                    conn.abort()
        await self._end_viewers(timeout)
        await self.recordings.close(6 * timeout)
        await self.tasks.wait(timeout)
        if self._ticker is not None:
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        log.info("server closed")

    async def _end_viewers(self, timeout: float) -> None:
        """HTTP viewers finish what they owe (``timeout`` seconds at most);
        those left are dropped."""
        viewers = self.context.viewers
        for viewer in list(viewers):
            viewer.shutdown()
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while viewers and loop.time() < until:
            await asyncio.sleep(0.05)
        for viewer in list(viewers):
            viewer.kick("shutdown")
        viewers.clear()

    async def _let_clients_reconnect(self, grace: float, tc_url: str | None) -> None:
        """Ask the clients that can to reconnect; wait (``grace`` seconds at
        most) for the publishers asked, now or before, to go: until then
        what they send (up to their next keyframe) still reaches the
        players, who were asked too and follow at their own pace."""
        asked = sum(conn.request_reconnect(tc_url, "The server is shutting down.")
                    for conn in list(self.connections) if not conn.session.reconnect_requested)
        leaving = [conn.lost for conn in self.connections
                   if conn.session.reconnect_requested and conn.publications
                   and not conn.lost.done()]
        if asked:
            log.info("shutting down: %d clients asked to reconnect", asked)
        if leaving and grace > 0:
            log.info("waiting up to %g s for %d publishers to leave", grace, len(leaving))
            await asyncio.wait(leaving, timeout=grace)

    def request_reconnect(self, key: StreamKey | tuple[str, str] | None = None, *,
                          peer: str | None = None, tc_url: str | None = None,
                          description: str = "The server asks you to reconnect.") -> list[str]:
        """Ask clients to reconnect (Enhanced RTMP v2 ReconnectRequest): the
        publisher of ``key`` (``(app, name)``), the connection from
        ``peer`` (``"ip:port"``, as in the stats), or, with neither, every
        connection.  Only clients that advertised capsEx Reconnect are
        asked; legacy clients never are.  ``tc_url`` is where to go
        (absolute, or relative to the client's tcUrl); None: this server
        again.  The clients keep being served until they leave.  Returns
        the peers asked.  Raises ValueError (and asks nobody) for a
        ``tc_url`` longer than :data:`~rtmpx.session.base.MAX_NAME`."""
        _check_tc_url(tc_url)
        targets: list[Connection]
        if key is not None:
            channel = self.hub.get(key)
            publication = channel.publication if channel is not None else None
            publisher = publication.publisher if publication is not None else None
            # an RTMP connection (a pull has no client to ask)
            targets = [publisher.connection] if isinstance(publisher, RtmpPublisher) else []
        else:
            targets = list(self.connections)
        if peer is not None:
            targets = [conn for conn in targets if conn.peer == peer]
        return [conn.peer for conn in targets if conn.request_reconnect(tc_url, description)]

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
            self.hub.expire_holds(now, self.hold_timeout)
            contexts = self._contexts()
            for context in contexts:
                context.trim_all_half_open(now)
            self._check_memory()
            for conn in [conn for context in contexts for conn in context.connections]:
                try:
                    conn.check(now)
                except Exception:  # a bug must not stop the timers of everyone
                    log.exception("%s: error in its timers", conn.peer)
                    conn.abort()
            for viewer in list(self.context.viewers):
                try:
                    viewer.check(now)
                except Exception:
                    log.exception("%r: error in its timers", viewer)
                    viewer.kick("internal error")

    def _check_memory(self) -> None:
        """Sample what the queues hold; over the budget, drop the GOP caches."""
        budget = self.budget
        queues = 0
        for context in self._contexts():
            for conn in context.connections:
                queues += conn.queued_bytes() + conn.session.buffered_bytes
            for viewer in context.viewers:
                queues += viewer.queued_bytes()
        for channel in self.hub.channels.values():
            for other in channel.others:  # players without a gate: LL-HLS packagers
                queues += other.queued_bytes
            if channel.publication is not None:
                for follower in channel.publication.followers:
                    queues += follower.queued_bytes
        budget.queues = queues
        if budget.over and budget.gop:
            released = self.hub.drop_caches()
            limit_hit(f"max_memory={budget.limit}", "server",
                      f"{budget.used + released} bytes held: GOP caches dropped "
                      f"({released} bytes)")

    # -- the ingest API ----------------------------------------------------------------------

    async def publishes(self) -> AsyncIterator[IncomingStream]:
        """Each new publish, as an :class:`IncomingStream`, until the server closes.

        Iterate every stream it yields, or ``close()`` it: once iterated,
        its bounded buffer pauses that publisher when full.  At most
        :data:`MAX_PENDING_STREAMS` streams wait to be taken; publishes
        beyond that are not handed to an iteration that does not take them."""
        if self._closed:
            return
        queue: asyncio.Queue[IncomingStream | None] = asyncio.Queue(MAX_PENDING_STREAMS)
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
        uptime = time.monotonic() - self.started_at if self.started_at else 0.0
        stats = collect(self.hub, self.connections, uptime, viewers=len(self.context.viewers))
        stats["rtmp_port"] = self.port
        return stats
