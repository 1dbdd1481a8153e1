"""HTTP-FLV and WebSocket-FLV viewers: a live stream as one FLV byte stream.

``GET /{app}/{name}.flv`` answers with a chunked ``video/x-flv`` body: the
FLV header, the stream's metadata and sequence headers, the media since its
latest keyframe (the channel's GOP cache), then live media, until the
publication ends (the body ends cleanly) or the viewer goes.  The same path
with a WebSocket upgrade sends the same bytes as binary messages
(WebSocket-FLV, what mpegts.js and flv.js play).  Tag bodies are the RTMP
payloads as they came, so HEVC, AV1, VP9 and Opus go out as Enhanced FLV.

A viewer is a player like an RTMP one (:class:`~rtmpx.server.player.GateSink`):
it is served by the compiled fan-out (an FLV tag is made once per packet and
shared by every viewer), its media is merged and written at the flusher's
ticks, and the same slow-player rule bounds it: past ``max_queue`` bytes
queued it loses video until the next keyframe, past twice that (or behind
for longer than ``max_lag``, or not taking what was written for
``idle_timeout``) it is disconnected.  Its queue is what the HTTP
connection's transport holds plus what waits for the writer.  Viewers count
against ``max_connections`` and ``max_connections_per_ip``, are asked about
by ``on_play`` (the query string is the request's), and show in the stats.

An unknown stream (nothing publishes it) is a 404 at once (one that may
come from a sibling worker or an edge's origin: after :data:`PULL_WAIT`);
a server at its connection limits answers 503, a play refused by
``on_play`` 403.  The body ends with its publication (players reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from aiohttp import WSMsgType, web

from ..fanout import DUE, FLUSH, Outbox
from ..flv import encode_header, encode_tag
from .connection import ConnectionContext
from .hub import Channel, HubLimits, Publication, StreamKey
from .limits import limit_hit
from .player import GateSink
from .webbase import CORS, admit, allowed, findable, peer_of, refuse, stream_key

__all__ = ["FINISH_TIMEOUT", "PULL_WAIT", "FlvStream", "FlvViewer", "serve_flv"]

log = logging.getLogger("rtmpx.http")

#: Seconds a viewer whose stream ended may take to receive its last bytes.
FINISH_TIMEOUT = 5.0
#: Seconds a viewer of a stream that is not here waits for it to come: one
#: live on a sibling process (``rtmpx serve --workers``), or at an edge's
#: origin (``pull``); then a 404.
PULL_WAIT = 5.0
#: Bytes of one message a WebSocket-FLV viewer may send us (it has nothing
#: to say: anything but control frames is ignored).
MAX_WS_MESSAGE = 4096

_AUDIO, _VIDEO = 8, 9


def _encode(type_id: int, timestamp: int, payload: bytes, stream_id: int,
            chunk_size: int) -> bytes:
    """The fan-out's encoder for FLV viewers: one tag (a form shared by all
    of them: chunk size 0 and stream id 0, which no RTMP player has)."""
    return encode_tag(type_id, timestamp, payload)


class FlvViewer(GateSink):
    """One HTTP-FLV or WebSocket-FLV viewer of a channel; ``started`` is
    set once a publication feeds it."""

    __slots__ = ("protocol", "started")

    output: FlvStream

    def __init__(self, output: FlvStream, limits: HubLimits, *, peer: str,
                 protocol: str) -> None:
        super().__init__(output, 0, limits, _encode, peer=peer)
        self.protocol = protocol
        self.started = asyncio.Event()

    def publish_started(self, publication: Publication, now: float) -> None:
        self.started.set()
        super().publish_started(publication, now)

    def publish_ended(self, publication: Publication, reason: str) -> None:
        """The stream ended: so does the FLV body (what the viewer was owed
        is written first)."""
        self.output.finish()


class _Rest:
    """The rest of a coroutine that ran eagerly up to its first wait (it
    yielded ``waiting``), awaited by a task: what Python 3.12's eager tasks
    do, for one write."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        waiting = self.waiting
        while True:
            try:
                value = yield waiting
            except BaseException as exc:  # noqa: BLE001 - cancelled: the coroutine is told
                try:
                    waiting = self.coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = self.coro.send(value)
                except StopIteration:
                    return


class FlvStream:
    """The bytes owed to one viewer, and their writes.

    The fan-out appends FLV tags to :attr:`output` (this object is the
    :class:`~rtmpx.fanout.Outbox`'s session, with chunk size 0); a flush
    (at once past ``merge_max``, else at the flusher's next tick) writes
    them with ``send`` (the aiohttp response's or WebSocket's write), run at
    once up to its first wait: aiohttp writes to the transport straight
    away and waits only while the transport holds more than its high-water
    mark, so a viewer that keeps up costs no task switch.  A write that
    waits is finished by a task, and what comes meanwhile is held
    (:attr:`pending`) and measured at each flush, so that the slow-player
    rule sees it."""

    #: the Outbox's session protocol: no chunking (see :func:`_encode`)
    chunk_size = 0

    def __init__(self, context: ConnectionContext, peer: str, ip: str,
                 transport: asyncio.Transport) -> None:
        self.context = context
        self.peer = peer
        self.ip = ip
        self.transport = transport
        self.output: list[bytes] = []
        self.outbox = Outbox(self, context.merge_max, self._media_due)
        self.outbox.transport = self  # backlog(): ours plus the transport's
        #: the viewer, once it plays (its lag is checked with the timers)
        self.sink: GateSink | None = None
        self.closed = False     # aborted (kicked, or the peer went)
        self.finished = False   # the stream ended: write what is owed, then end
        self._send: Callable[[bytes], Coroutine[Any, Any, None]] | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._busy: asyncio.Task[None] | None = None   # a write that waits for the peer
        self._writing_since = -1.0   # when it began waiting (-1: none)
        self._done = asyncio.Event()

    def __repr__(self) -> str:
        return f"<FlvStream {self.peer}>"

    # -- the Outbox's transport and the SinkOutput contract -----------------------------

    def get_write_buffer_size(self) -> int:
        """Bytes owed to the peer and not taken yet: what is held while a
        write waits, and what the transport holds."""
        return self._pending_bytes + self.transport.get_write_buffer_size()

    def backlog(self) -> int:
        return self.get_write_buffer_size()

    def queued_bytes(self) -> int:
        return self.outbox.merged + self.backlog()

    def flush(self) -> None:
        """Write what the fan-out queued (or hold it while a write waits)."""
        outbox = self.outbox
        if not outbox.queue:
            if outbox.state:
                outbox.flushed()
            return
        chunks = outbox.take()
        if self.closed:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._send is not None and self._busy is None:
            self._write(data)
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._busy is not None:  # the peer is slow: measure the pile
            ctx = self.context
            if outbox.measure() > ctx.max_write_buffer:
                limit_hit(f"max_write_buffer={ctx.max_write_buffer}", self.peer,
                          "does not read: disconnected")
                self.kick("does not read")

    def _write(self, data: bytes) -> None:
        """Write ``data`` now, up to the send's first wait; a task finishes it."""
        assert self._send is not None
        coro = self._send(data)
        try:
            waiting = coro.send(None)
        except StopIteration:
            self.outbox.measure()
            return
        except (ConnectionError, RuntimeError):  # the peer went (aiohttp's kinds)
            self.gone()
            return
        except Exception:  # a bug: it costs this viewer only
            log.exception("%r: write failed: disconnected", self)
            self.kick("internal error")
            return
        self._writing_since = time.monotonic()
        self._busy = asyncio.ensure_future(self._finish(_Rest(coro, waiting)))

    async def _finish(self, rest: _Rest) -> None:
        """Finish a write that waits, then write what came meanwhile."""
        try:
            await rest
            while self._pending and not self.closed:
                data = b"".join(self._pending)
                self._pending.clear()
                self._pending_bytes = 0  # the transport holds them from the first step on
                self._writing_since = time.monotonic()
                assert self._send is not None
                await self._send(data)
        except (ConnectionError, RuntimeError):
            self.gone()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: it costs this viewer only
            log.exception("%r: write failed: disconnected", self)
            self.kick("internal error")
        finally:
            self._busy = None
            self._writing_since = -1.0
            self.outbox.measure()
            self._settle()

    def _settle(self) -> None:
        """Tell :meth:`run` when the viewer is done with: dropped or gone, or
        finished with nothing owed (nothing is, before the response began)."""
        if self.closed or (self.finished and self._busy is None
                           and (not self._pending or self._send is None)):
            self._done.set()

    def _media_due(self) -> None:
        outbox = self.outbox
        if outbox.state == FLUSH:
            self.flush()
        elif outbox.state == DUE and self.context.flusher is not None:
            self.context.flusher.due(self)

    def kick(self, reason: str) -> None:
        """Drop the viewer at once."""
        if not self.closed:
            self.closed = True
            self.transport.abort()
            self._settle()

    def gone(self) -> None:
        """The peer closed its end: stop writing."""
        self.closed = True
        self._settle()

    def finish(self) -> None:
        """The stream ended: write what is owed, then end the body."""
        self.flush()
        self.finished = True
        self._settle()

    def shutdown(self) -> None:
        self.finish()

    def check(self, now: float) -> None:
        """The viewer's timers (about once a second): a peer that went, or
        that has not taken what it was sent for ``idle_timeout`` seconds."""
        if self.closed:
            return
        if self.transport.is_closing():
            self.gone()
            return
        idle = self.context.idle_timeout
        if self._writing_since >= 0 and now - self._writing_since > idle:
            limit_hit(f"idle_timeout={idle:g}", self.peer, "has not read what we sent")
            self.kick("idle")
            return
        self.outbox.measure()
        if self.sink is not None:
            self.sink.check_lag(now)

    async def done(self) -> None:
        """Wait until the viewer is done with (dropped, gone, or finished)."""
        await self._done.wait()

    async def run(self, send: Callable[[bytes], Coroutine[Any, Any, None]]) -> bool:
        """Write with ``send`` from now on (what was held first) until the
        stream ends (True) or the viewer is dropped or goes (False)."""
        self._send = send
        if self._pending and self._busy is None:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._write(data)
        self._settle()
        try:
            await self._done.wait()
        finally:
            busy = self._busy
            if busy is not None:  # dropped while a write waits
                busy.cancel()
                await asyncio.gather(busy, return_exceptions=True)
        return not self.closed


def _flags(channel: Channel) -> tuple[bool, bool]:
    """The FLV header's audio and video flags: what the stream carries, as
    far as its metadata and sequence headers tell (both when neither does)."""
    metadata = channel.metadata or {}
    audio = "audiocodecid" in metadata
    video = "videocodecid" in metadata
    for packet in channel.startup():
        if packet.header:
            audio = audio or packet.type_id == _AUDIO
            video = video or packet.type_id == _VIDEO
    return (audio, video) if audio or video else (True, True)


async def serve_flv(context: ConnectionContext, request: web.Request) -> web.StreamResponse:
    """Answer ``GET /{app}/{name}.flv`` (HTTP-FLV, or WebSocket-FLV when
    the request asks for an upgrade)."""
    key = stream_key(request)
    if key is None or not findable(context, key):
        return refuse(404, "no such stream")
    refused = admit(context, request)
    if refused is not None:
        return refused
    transport = request.transport
    if transport is None or transport.is_closing():
        return refuse(400, "gone")
    peer, ip = peer_of(request)
    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    protocol = "ws-flv" if websocket else "http-flv"
    stream = FlvStream(context, peer, ip, transport)
    context.viewers.add(stream)  # counted from now on, the on_play decision included
    try:
        refused = await allowed(context, request, key)
        if refused is not None:
            log.info("%s: %s play %s rejected", peer, protocol, key)
            return refused
        if not findable(context, key):
            return refuse(404, "no such stream")
        if request.method == "HEAD":
            return web.Response(content_type="video/x-flv", headers=CORS)
        return await _play(context, request, key, stream, protocol)
    finally:
        context.viewers.discard(stream)


async def _play(context: ConnectionContext, request: web.Request, key: StreamKey,
                stream: FlvStream, protocol: str) -> web.StreamResponse:
    transport = stream.transport
    peer = stream.peer
    viewer = stream.sink = FlvViewer(stream, context.limits, peer=peer, protocol=protocol)
    channel = context.hub.get(key)
    audio, video = _flags(channel) if channel is not None else (True, True)
    stream.output.append(encode_header(audio=audio, video=video))
    channel = context.hub.subscribe(key, viewer, time.monotonic())
    viewer.joined = True
    reader: asyncio.Future[None] | None = None
    try:
        if not channel.live:  # live on a sibling or at the origin: wait for its pull
            started = asyncio.ensure_future(viewer.started.wait())
            done = asyncio.ensure_future(stream.done())
            try:
                await asyncio.wait({started, done}, timeout=PULL_WAIT,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                started.cancel()
                done.cancel()
            if stream.closed or stream.finished:  # dropped, or the server closes
                return refuse(503, "shutting down" if context.closing else "gone")
            if not viewer.started.is_set():
                return refuse(404, "no such stream")
        response: web.StreamResponse
        send: Callable[[bytes], Coroutine[Any, Any, None]]
        if protocol == "ws-flv":
            ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE, autoping=True,
                                       compress=False)
            await ws.prepare(request)
            response, send = ws, ws.send_bytes
            reader = asyncio.ensure_future(_drain_input(ws, stream))
        else:
            http = web.StreamResponse(headers={
                "Content-Type": "video/x-flv", "Cache-Control": "no-cache, no-store", **CORS})
            http.enable_chunked_encoding()
            await http.prepare(request)
            response, send = http, http.write
        stream.flush()
        log.info("%s plays %s over %s", peer, key, protocol)
        completed = await stream.run(send)
    finally:
        viewer.closed = True
        context.hub.unsubscribe(channel, viewer)
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    if completed:
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            async with asyncio.timeout(FINISH_TIMEOUT):
                if isinstance(response, web.WebSocketResponse):
                    await response.close()
                else:
                    await response.write_eof()
    elif not transport.is_closing():
        transport.abort()
    log.info("%s stopped playing %s over %s%s", peer, key, protocol,
             "" if completed else " (disconnected)")
    return response


async def _drain_input(ws: web.WebSocketResponse, stream: FlvStream) -> None:
    """Read a WebSocket viewer's messages (answering pings; a close ends the
    viewer): it has nothing else to say."""
    while True:
        msg = await ws.receive()
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                        WSMsgType.ERROR):
            stream.gone()  # aiohttp answered the close
            return
