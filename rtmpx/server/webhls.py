"""Low-Latency HLS and a live fMP4 stream, served from one packager per stream.

* ``GET /{app}/{name}.m3u8``: the LL-HLS media playlist
  (:mod:`rtmpx.hls`); with ``_HLS_msn`` (and ``_HLS_part``) a blocking
  reload, answered once the playlist has that segment (or part), 400 for
  one too far ahead, 503 if it does not come within three target
  durations.  A plain request is answered once the playlist has a complete
  segment (what players without LL-HLS need), within the same deadline.
* ``GET /{app}/{name}/init.mp4`` (``init-N.mp4``), ``/{app}/{name}/{msn}.m4s``,
  ``/{app}/{name}/{msn}.{part}.m4s``: the init segment, a segment, a part;
  a request for the part named by the playlist's preload hint waits for it.
* ``GET /{app}/{name}.mp4``: the same fragments as one live fMP4 stream
  (WebSocket: a text message with the MIME type and codecs, the init
  segment, then one binary message per part; plain HTTP: a chunked body),
  from the latest part that starts with a keyframe: what the dashboard's
  preview plays through Media Source Extensions.

The first request for a stream starts its packager (:class:`HlsOutput`, a
hub subscriber fed the channel's metadata, headers and GOP cache first, so
that the first segment starts at once); one without requests for
:data:`IDLE_SECONDS` is stopped.  Packagers are bounded by
:class:`~rtmpx.hls.HLSConfig` (their bytes count in the server's memory
budget); requests that wait, and fMP4 streams, count against the
connection limits while they last.  An unknown stream is a 404 at once
(one expected from a sibling worker or an edge's origin: after
:data:`~rtmpx.server.webflv.PULL_WAIT`).  ``on_play`` decides on the
playlist and media requests alike (the playlist's URIs carry its query
string); its yes is remembered per address and query string for
:data:`ALLOWED_SECONDS`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..hls import Availability, HLSConfig, Packager, PartInfo
from .connection import ConnectionContext
from .hub import Channel, Packet, Publication, StreamKey
from .limits import limit_hit
from .webbase import CORS, admit, allowed, findable, peer_of, refuse, stream_key
from .webflv import FINISH_TIMEOUT, PULL_WAIT

__all__ = ["ALLOWED_SECONDS", "IDLE_SECONDS", "MAX_OUTPUTS", "MAX_PARTS_BEHIND",
           "REPUBLISH_GRACE", "HlsOutput", "HlsOutputs"]

log = logging.getLogger("rtmpx.http")

#: Seconds without a request after which a stream's packager stops.
IDLE_SECONDS = 30.0
#: Seconds an ended publication's playlist waits for its publisher to come
#: back before it ends (``EXT-X-ENDLIST``).
REPUBLISH_GRACE = 5.0
#: Parts a live fMP4 viewer may fall behind before it skips to the newest
#: keyframe.
MAX_PARTS_BEHIND = 8

#: Streams with a packager at most (each holds up to HLSConfig.max_bytes).
MAX_OUTPUTS = 256
#: Seconds an ``on_play`` yes for a query string is remembered, and how many
#: query strings a stream remembers.
ALLOWED_SECONDS = 10.0
MAX_ALLOWED = 1024
#: A query string carried into playlists: this long at most, of URI-safe
#: characters only (no quotes, no line breaks).
MAX_QUERY = 1024
_SAFE_QUERY = re.compile(r"[A-Za-z0-9._~%&=+:,;/@!*'()-]*")
_URI = re.compile(r'URI="([^"]*)"')

_MEDIA = re.compile(r"(?:init(?:-(\d{1,9}))?\.mp4|(\d{1,12})\.m4s|(\d{1,12})\.(\d{1,6})\.m4s)")


class HlsOutput:
    """One stream's packager, as a subscriber of its channel; waiters are
    woken on every change of the playlist.

    A publication that ends is ended in the playlist (``EXT-X-ENDLIST``)
    only :data:`REPUBLISH_GRACE` seconds later: a publisher that comes back
    by then (an encoder that reconnects) goes on in the same playlist (its
    timestamps follow on; new codecs start a discontinuity), so players
    keep playing.  After that, a new publication starts a new packager."""

    def __init__(self, key: StreamKey, config: HLSConfig) -> None:
        self.key = key
        self.config = config
        self.packager: Packager | None = None
        self.last_request = time.monotonic()
        self._changed = asyncio.Event()
        self._ending: asyncio.TimerHandle | None = None
        #: what ``on_play`` allowed (peer address and query string), until when
        self.allowed: dict[str, float] = {}
        #: requests waiting for its first publication
        self.pending = 0

    def __repr__(self) -> str:
        return f"<HlsOutput {self.key}>"

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        """Wait (``timeout`` seconds at most) for the next change."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    # -- the Subscriber contract ----------------------------------------------------

    def publish_started(self, publication: Publication, now: float) -> None:
        if self._ending is not None:  # back within the grace: the playlist goes on
            self._ending.cancel()
            self._ending = None
        if self.packager is None or self.packager.ended:
            self.packager = Packager(self.config)
        self._wake()

    def packet(self, packet: Packet, now: float) -> None:
        packager = self.packager
        if packager is None or packager.ended:
            return
        before = packager.version
        packager.feed(packet.type_id, packet.timestamp, packet.payload)
        if packager.version != before:
            self._wake()

    def publish_ended(self, publication: Publication, reason: str) -> None:
        if self.packager is not None and not self.packager.ended and self._ending is None:
            self._ending = asyncio.get_running_loop().call_later(REPUBLISH_GRACE, self._end)

    def _end(self) -> None:
        self._ending = None
        if self.packager is not None and not self.packager.ended:
            self.packager.end()
            self._wake()

    def output_stats(self) -> dict[str, Any]:
        """What the stats say of it (:class:`rtmpx.server.stats.Output`)."""
        packager = self.packager
        return {"kind": "ll-hls", "segments": packager.segment_count if packager else 0,
                "bytes": self.queued_bytes, "codecs": packager.codecs if packager else "",
                "ended": bool(packager and packager.ended)}

    @property
    def queued_bytes(self) -> int:
        """Bytes the packager holds (the memory budget counts them)."""
        return self.packager.held_bytes if self.packager is not None else 0

    def stop(self) -> None:
        """No more media comes (the output is dropped): waiters are answered."""
        if self._ending is not None:
            self._ending.cancel()
        self._end()
        self._wake()


class _Waiter:
    """A request being answered (a playlist or part that waits, a live
    fMP4 stream), as a viewer: counted in the connection limits, its
    transport's backlog in the memory budget; kicked, it is cancelled."""

    __slots__ = ("ip", "task", "transport")

    def __init__(self, request: web.Request) -> None:
        self.ip = peer_of(request)[1]
        self.transport = request.transport
        self.task = asyncio.current_task()

    def check(self, now: float) -> None:
        pass

    def queued_bytes(self) -> int:
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def kick(self, reason: str) -> None:
        if self.task is not None:
            self.task.cancel()

    def shutdown(self) -> None:
        self.kick("shutdown")  # a long poll or an endless stream: nothing is owed


class HlsOutputs:
    """The packagers of a server's streams, started on demand, and the
    request handlers that serve them."""

    def __init__(self, context: ConnectionContext, config: HLSConfig | None = None) -> None:
        self.context = context
        self.config = config or HLSConfig()
        self.outputs: dict[StreamKey, tuple[HlsOutput, Channel]] = {}
        self.closed = False
        self._reaper: asyncio.Task[None] | None = None

    def close(self) -> None:
        """Stop every packager (and start no more)."""
        self.closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for key in list(self.outputs):
            try:
                self._drop(key)
            except Exception:  # a bug: the others are stopped still
                log.exception("HLS of %s: error while stopping", key)

    def _drop(self, key: StreamKey) -> None:
        found = self.outputs.pop(key, None)
        if found is not None:
            output, channel = found
            output.stop()
            self.context.hub.unsubscribe(channel, output)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(IDLE_SECONDS / 3)
            now = time.monotonic()
            for key, (output, _) in list(self.outputs.items()):
                if now - output.last_request > IDLE_SECONDS:
                    log.info("HLS of %s stopped: no requests for %g s", key, IDLE_SECONDS)
                    self._drop(key)

    def output(self, key: StreamKey, *, start: bool) -> HlsOutput | None:
        """The packager of ``key`` (started, if ``start`` and it is live)."""
        found = self.outputs.get(key)
        if found is not None:
            found[0].last_request = time.monotonic()
            return found[0]
        if not start or self.closed or not findable(self.context, key) \
                or len(self.outputs) >= MAX_OUTPUTS or key.name in (".", ".."):
            return None
        # the playlist is /app/name.m3u8: its media are under /app/name/
        prefix = quote(key.name, safe="") + "/"
        output = HlsOutput(key, dataclasses.replace(self.config, prefix=prefix))
        # live here, or on a sibling: its stream comes once we subscribe
        channel = self.context.hub.subscribe(key, output, time.monotonic())
        self.outputs[key] = (output, channel)
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap())
        log.info("HLS of %s started", key)
        return output

    # -- handlers ---------------------------------------------------------------------------

    async def _opened(self, request: web.Request,
                      waiter: _Waiter) -> HlsOutput | web.Response:
        """The packager of the stream a playlist or stream request names
        (started if need be, and fed: a stream pulled from elsewhere takes
        up to :data:`PULL_WAIT` seconds to come), or the refusal: 404 for a
        stream nobody publishes, 503 at the limits, 403 from ``on_play``.
        ``waiter`` counts the request from the start."""
        key = stream_key(request)
        if key is None or self.output(key, start=False) is None and \
                not findable(self.context, key):
            return refuse(404, "no such stream")
        refused = admit(self.context, request)
        if refused is not None:
            return refused
        if key not in self.outputs and len(self.outputs) >= MAX_OUTPUTS:
            return refuse(503, f"too many streams packaged (at most {MAX_OUTPUTS})")
        self.context.viewers.add(waiter)  # counted from now on, on_play included
        refused, asked = await self._allowed(request, key)
        if refused is not None:
            return refused
        output = self.output(key, start=True)
        if output is None:
            return refuse(404, "no such stream")
        if asked:  # on_play said yes now (the output may be new)
            _remember(output, request)
        if output.packager is None:  # pulled from a sibling or an origin: it may not come
            loop = asyncio.get_running_loop()
            until = loop.time() + PULL_WAIT
            output.pending += 1
            try:
                while output.packager is None and loop.time() < until:
                    await output.changed(until - loop.time())
            finally:
                output.pending -= 1
            if output.packager is None:
                if not output.pending and self.outputs.get(key, (None,))[0] is output:
                    self._drop(key)  # and its pull: nobody else waits for it
                return refuse(404, "no such stream")
        return output

    async def _allowed(self, request: web.Request,
                       key: StreamKey) -> tuple[web.Response | None, bool]:
        """``on_play``'s answer for a request (None: yes; else the refusal),
        and whether the hook was asked now.  A yes is remembered for
        :data:`ALLOWED_SECONDS` per peer address and query string (a player
        reloads its playlist and fetches parts several times a second: the
        hook is asked again only then, however often it comes)."""
        raw = request.rel_url.raw_query_string
        if len(raw) > MAX_QUERY or not _SAFE_QUERY.fullmatch(raw):
            return refuse(400, "bad query string"), False
        if not self.context.hooks.has("on_play"):
            return None, False
        found = self.outputs.get(key)
        if found is not None and found[0].allowed.get(_allowance(request), 0.0) > \
                time.monotonic():
            return None, False
        return await allowed(self.context, request, key), True

    async def playlist(self, request: web.Request) -> web.StreamResponse:
        """``GET /{app}/{name}.m3u8``; the query string (a token, say) is
        carried into every URI of the playlist, so that its media are asked
        for with it."""
        waiter = _Waiter(request)
        try:
            return await self._playlist(request, waiter)
        finally:
            self.context.viewers.discard(waiter)

    async def _playlist(self, request: web.Request, waiter: _Waiter) -> web.StreamResponse:
        output = await self._opened(request, waiter)
        if isinstance(output, web.Response):
            return output
        try:
            msn = _int_param(request, "_HLS_msn")
            part = _int_param(request, "_HLS_part")
        except ValueError:
            return refuse(400, "bad _HLS_msn or _HLS_part")
        if part is not None and msn is None:
            return refuse(400, "_HLS_part without _HLS_msn")
        deadline = 3 * self.config.target_duration

        def ready(packager: Packager) -> Availability:
            if msn is not None:
                return packager.playlist_ready(msn, part)
            return Availability.READY if packager.segment_count or packager.ended \
                else Availability.WAIT

        packager = await self._wait(output, ready, deadline)
        if isinstance(packager, web.Response):
            return packager
        query = _carried(request.rel_url.raw_query_string)
        text = packager.playlist()
        if query:
            text = _with_query(text, query)
        return web.Response(body=text.encode(), headers={
            **CORS, "Content-Type": "application/vnd.apple.mpegurl",
            "Cache-Control": "no-cache"})

    async def media(self, request: web.Request) -> web.StreamResponse:
        """``GET /{app}/{name}/{file}``: an init segment, segment or part
        (``on_play`` decides on its query string, as for the playlist)."""
        waiter = _Waiter(request)
        try:
            return await self._media(request, waiter)
        finally:
            self.context.viewers.discard(waiter)

    async def _media(self, request: web.Request, waiter: _Waiter) -> web.StreamResponse:
        key = stream_key(request)
        match = _MEDIA.fullmatch(request.match_info.get("file", ""))
        output = self.output(key, start=False) if key is not None else None
        if key is None or match is None or output is None:
            return refuse(404, "no such stream or file")
        refused = admit(self.context, request)
        if refused is not None:
            return refused
        self.context.viewers.add(waiter)
        refused, asked = await self._allowed(request, key)
        if refused is not None:
            return refused
        if asked:
            _remember(output, request)
        init, segment, part_msn, part = match.groups()
        if segment is None and part_msn is None:  # an init segment
            index = int(init or 0)
            data = output.packager.init(index) if output.packager is not None else None
            return _media(data)
        msn = int(segment if segment is not None else part_msn)
        number = int(part) if part is not None else None

        def ready(packager: Packager) -> Availability:
            return packager.media_ready(msn, number)

        packager = await self._wait(output, ready, 3 * self.config.target_duration)
        if isinstance(packager, web.Response):
            return refuse(404, "no such file") if packager.status == 400 else packager
        return _media(packager.segment(msn) if number is None else packager.part(msn, number))

    async def _wait(self, output: HlsOutput, ready: Callable[[Packager], Availability],
                    deadline: float) -> Packager | web.Response:
        """Hold the request until ``ready`` says so (or ``deadline`` passes: 503)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline
        while True:
            packager = output.packager
            if packager is not None:
                answer = ready(packager)
                if answer is Availability.READY:
                    return packager
                if answer is Availability.INVALID:
                    return refuse(400, "never comes")
            left = until - loop.time()
            if left <= 0:
                return web.Response(status=503, text="not yet\n",
                                    headers={**CORS, "Retry-After": "1"})
            await output.changed(left)
            output.last_request = time.monotonic()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``GET /{app}/{name}.mp4``: live fMP4 (WebSocket, or a chunked body)."""
        waiter = _Waiter(request)
        try:
            output = await self._opened(request, waiter)
            if isinstance(output, web.Response):
                return output
            if request.method == "HEAD":
                return web.Response(content_type="video/mp4", headers=CORS)
            return await self._stream(request, output)
        finally:
            self.context.viewers.discard(waiter)

    async def _stream(self, request: web.Request, output: HlsOutput) -> web.StreamResponse:
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        response: web.StreamResponse
        send: Callable[[bytes], Awaitable[None]]
        if websocket:
            ws = web.WebSocketResponse(max_msg_size=4096, autoping=True, compress=False)
            await ws.prepare(request)
            response, send = ws, ws.send_bytes
            reader = asyncio.ensure_future(_until_closed(ws))
        else:
            http = web.StreamResponse(headers={**CORS, "Content-Type": "video/mp4",
                                               "Cache-Control": "no-cache, no-store"})
            http.enable_chunked_encoding()
            await http.prepare(request)
            response, send = http, http.write
            reader = None
        idle = self.context.idle_timeout
        packager: Packager | None = None
        sent: tuple[int, int] | None = None   # the last part sent
        init = -1
        transport = request.transport
        try:
            while (reader is None or not reader.done()) and \
                    transport is not None and not transport.is_closing():
                output.last_request = time.monotonic()
                if output.packager is not packager:  # a new publication
                    packager, sent, init = output.packager, None, -1
                if packager is None:
                    await output.changed(1.0)
                    continue
                todo = _next_parts(packager.parts(), sent)
                for p in todo:
                    if p.init != init:
                        if not websocket and init >= 0:
                            return await _end(response)  # a new init: a new stream
                        init = p.init
                        data = packager.init(init)
                        if data is None:
                            break
                        if isinstance(response, web.WebSocketResponse):
                            async with asyncio.timeout(idle):
                                await response.send_str(json.dumps({
                                    "mime": f'video/mp4; codecs="{packager.codecs}"',
                                    "codecs": packager.codecs}))
                        async with asyncio.timeout(idle):
                            await send(data)
                    async with asyncio.timeout(idle):  # a viewer that does not read goes
                        await send(p.data)
                    sent = (p.msn, p.part)
                if packager.ended and not todo:
                    return await _end(response)
                await output.changed(1.0)
        except (ConnectionError, RuntimeError):
            pass  # the viewer went
        except TimeoutError:
            limit_hit(f"idle_timeout={idle:g}", peer_of(request)[0],
                      "live fMP4 viewer does not read: disconnected")
            if request.transport is not None:
                request.transport.abort()
        finally:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        return response


def _next_parts(parts: list[PartInfo], sent: tuple[int, int] | None) -> list[PartInfo]:
    """What a live fMP4 viewer gets next, having had ``sent`` last: the
    parts after it; a newcomer, or one whose next part is gone, or one more
    than :data:`MAX_PARTS_BEHIND` behind, from the newest part that starts
    with a keyframe (after ``sent``: never a part twice)."""
    after = 0
    if sent is not None:
        found = [i for i, p in enumerate(parts) if (p.msn, p.part) == sent]
        if found:
            after = found[0] + 1
            if len(parts) - after <= MAX_PARTS_BEHIND:
                return parts[after:]
        elif parts and (parts[0].msn, parts[0].part) <= sent:
            return [p for p in parts if (p.msn, p.part) > sent]  # nothing gone
    keys = [i for i, p in enumerate(parts) if p.independent and i >= after]
    if keys:
        return parts[keys[-1]:]
    return parts[after:] if sent is not None else []


async def _end(response: web.StreamResponse) -> web.StreamResponse:
    try:
        async with asyncio.timeout(FINISH_TIMEOUT):
            if isinstance(response, web.WebSocketResponse):
                await response.close()
            else:
                await response.write_eof()
    except (ConnectionError, RuntimeError, TimeoutError):
        pass
    return response


async def _until_closed(ws: web.WebSocketResponse) -> None:
    async for _ in ws:  # nothing to hear but control frames: aiohttp answers them
        pass


def _media(data: bytes | None) -> web.Response:
    if data is None:
        return refuse(404, "no such file")
    # no caching: a later publication's packager uses the same names
    return web.Response(body=data, headers={**CORS, "Content-Type": "video/mp4",
                                            "Cache-Control": "no-cache"})


def _allowance(request: web.Request) -> str:
    """What an ``on_play`` yes is remembered by: the peer's address and the
    query string it carries."""
    return f"{peer_of(request)[1]} {_carried(request.rel_url.raw_query_string)}"


def _remember(output: HlsOutput, request: web.Request) -> None:
    """``on_play`` said yes to the request just now: for ``output``'s
    stream it is not asked again about that address and query string for
    :data:`ALLOWED_SECONDS`."""
    cache = output.allowed
    if len(cache) >= MAX_ALLOWED:
        cache.clear()
    cache[_allowance(request)] = time.monotonic() + ALLOWED_SECONDS


def _carried(query: str) -> str:
    """The part of a query string that the playlist's URIs carry (and
    ``on_play`` is asked about): all but the ``_HLS_`` directives."""
    return "&".join(item for item in query.split("&") if item and not item.startswith("_HLS_"))


def _with_query(playlist: str, query: str) -> str:
    """``playlist`` with ``?query`` after every URI (a segment line, or a
    ``URI="..."`` attribute); ``query`` is checked safe (:data:`_SAFE_QUERY`)."""
    lines = []
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            line += "?" + query
        elif 'URI="' in line:
            line = _URI.sub(lambda m: f'URI="{m.group(1)}?{query}"', line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _int_param(request: web.Request, name: str) -> int | None:
    """A query parameter's whole number (None when absent; ValueError when
    it is not one)."""
    text = request.query.get(name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 12:
        raise ValueError(name)
    return int(text)
