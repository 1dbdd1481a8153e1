"""The server's HTTP side, on aiohttp: live streams for web players, and stats.

:class:`HttpServer` serves the dashboard (``GET /``, files under
``/static/``), ``GET /stats`` (JSON) and ``GET /metrics`` (Prometheus text) for anything with a ``stats()`` method
(a :class:`~rtmpx.Server`, or the supervisor of ``rtmpx serve --workers``,
whose ``stats()`` is async); given a server's
:class:`~rtmpx.server.connection.ConnectionContext`, also its live streams:
``GET /{app}/{name}.flv``, HTTP-FLV or (with a WebSocket upgrade)
WebSocket-FLV (:mod:`rtmpx.server.webflv`), ``GET /{app}/{name}.m3u8``
(LL-HLS, its media under ``/{app}/{name}/``) and ``/{app}/{name}.mp4``
(live fMP4) (:mod:`rtmpx.server.webhls`).  ``rtmpx serve --http-port N`` and
``Server(http_port=N)`` start one next to the RTMP listener;
``--stats-port`` is the same server under its old name.

aiohttp parses the requests (bounded lines and headers); a connection
that does not finish a request within ``request_timeout`` seconds is
closed (a slowloris holds nothing for long), and so is one idle that long
between requests.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import socket
from importlib import resources
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from ..errors import RtmpError
from .stats import HasStats, prometheus_text
from .webflv import serve_flv
from .webhls import HlsOutputs

if TYPE_CHECKING:
    from ..hls import HLSConfig
    from .connection import ConnectionContext

__all__ = ["REQUEST_TIMEOUT", "HttpServer"]

log = logging.getLogger("rtmpx.http")

#: Seconds a connection may take to send a whole request, or stay idle
#: between two.
REQUEST_TIMEOUT = 10.0
#: Seconds the HTTP side gives its requests to end when it closes (after
#: the server ended its viewers, see :meth:`rtmpx.Server.close`).
SHUTDOWN_TIMEOUT = 1.0


class HttpServer:
    """Serves ``source``'s stats over HTTP on ``host:port`` (0: any free
    port, see :attr:`port` once started), and the live streams of the
    server whose connection ``context`` is given (``reuse_port``: the port
    is shared with other processes, as the workers of ``rtmpx serve
    --workers`` share it; ``hls``: the LL-HLS settings, segment and part
    durations and bounds, :class:`~rtmpx.hls.HLSConfig`)."""

    def __init__(self, source: HasStats, host: str = "127.0.0.1", port: int = 8080, *,
                 request_timeout: float = REQUEST_TIMEOUT,
                 context: ConnectionContext | None = None, reuse_port: bool = False,
                 hls: HLSConfig | None = None) -> None:
        if not request_timeout > 0:
            raise ValueError("request_timeout must be positive")
        self.source = source
        self.context = context
        self.reuse_port = reuse_port
        #: the streams' LL-HLS packagers (with a ``context``)
        self.hls = HlsOutputs(context, hls) if context is not None else None
        self.host = host
        self.port = port
        self.request_timeout = request_timeout
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"<HttpServer http://{self.host}:{self.port}>"

    async def start(self) -> None:
        """Listen; returns once the socket is bound."""
        if self._runner is not None:
            raise RuntimeError("HTTP server already started")
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{file}", self._static)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/metrics", self._metrics)
        if self.context is not None and self.hls is not None:
            app.router.add_get(r"/{app}/{name:[^/]+}.flv", self._flv)
            app.router.add_get(r"/{app}/{name:[^/]+}.m3u8", self.hls.playlist)
            app.router.add_get(r"/{app}/{name:[^/]+}.mp4", self.hls.stream)
            app.router.add_get(r"/{app}/{name}/{file}", self.hls.media)
        # keepalive_timeout is also how long aiohttp waits for a request's head;
        # the viewers are done with when the server closes (Server.close)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               keepalive_timeout=self.request_timeout,
                               shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            sock = _listening_socket(self.host, self.port, self.reuse_port)
            self.port = int(sock.getsockname()[1])
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("HTTP on http://%s:%d (%s/stats, /metrics)", self.host, self.port,
                 "dashboard /, web players /APP/STREAM.flv .m3u8 .mp4, "
                 if self.context is not None else "")

    async def close(self) -> None:
        """Stop listening and close every HTTP connection."""
        runner, self._runner = self._runner, None
        try:
            if self.hls is not None:
                self.hls.close()
        finally:
            if runner is not None:
                await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _collect(self) -> dict[str, Any]:
        """The source's stats; 503 when they cannot be had (a worker whose
        supervisor does not answer in time)."""
        try:
            found = self.source.stats()
            stats: dict[str, Any] = await found if inspect.isawaitable(found) else found
        except (RtmpError, TimeoutError, ConnectionError) as exc:
            log.warning("stats unavailable: %s", str(exc)[:200])
            raise web.HTTPServiceUnavailable(text="stats unavailable\n") from None
        return stats

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(await self._collect(), indent=1),
                            content_type="application/json")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        """The dashboard (``/?stream=app/name`` opens a stream's preview)."""
        return _static_file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return _static_file(request.match_info.get("file", ""))

    async def _flv(self, request: web.Request) -> web.StreamResponse:
        assert self.context is not None
        return await serve_flv(self.context, request)

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(text=prometheus_text(await self._collect()))
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return response


#: The dashboard's files (package data), by suffix: their content types.
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".svg": "image/svg+xml", ".png": "image/png"}
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(?:html|js|css|svg|png)")


def _static_file(name: str) -> web.Response:
    """One of the dashboard's files, or 404 (only plain names: no paths)."""
    if not _STATIC_NAME.fullmatch(name):
        return web.Response(status=404, text="no such file\n")
    try:
        data = resources.files(__package__).joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return web.Response(status=404, text="no such file\n")
    kind = _STATIC_TYPES[name[name.rindex("."):]]
    return web.Response(body=data, headers={
        "Content-Type": kind + ("; charset=utf-8" if kind.startswith("text") else ""),
        "Cache-Control": "no-cache"})


def _listening_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A bound, listening TCP socket for ``host:port`` (so that the port is
    known at once, also for port 0); ``reuse_port``: shared with other
    processes (``SO_REUSEPORT``: the workers of ``rtmpx serve --workers``)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
