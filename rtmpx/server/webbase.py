"""What the HTTP handlers of live streams share (:mod:`rtmpx.server.webflv`,
:mod:`rtmpx.server.webhls`): the stream a path names, the peer, the
server's admission rules (shutdown, connection limits, ``on_play``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..session.base import MAX_NAME
from .connection import ConnectionContext
from .hooks import Request
from .hub import StreamKey
from .limits import limit_hit

__all__ = ["CORS", "admit", "allowed", "findable", "live", "peer_of", "refuse",
           "stream_key"]

#: Headers every answer carries: web players on other origins may read them.
CORS = {"Access-Control-Allow-Origin": "*"}


def stream_key(request: web.Request) -> StreamKey | None:
    """The stream a path's ``{app}`` and ``{name}`` name, or None for
    names no publisher could have."""
    app = request.match_info.get("app", "")
    name = request.match_info.get("name", "")
    if not app or not name or len(app) > MAX_NAME or len(name) > MAX_NAME:
        return None
    return StreamKey(app, name)


def peer_of(request: web.Request) -> tuple[str, str]:
    """The peer as ``"ip:port"``, and its address."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}", str(peer[0])
    return str(peer), str(peer)


def refuse(status: int, text: str) -> web.Response:
    """A short plain-text answer."""
    return web.Response(status=status, text=text + "\n", headers=CORS)


def live(context: ConnectionContext, key: StreamKey) -> bool:
    """Whether something publishes ``key`` here."""
    channel = context.hub.get(key)
    return channel is not None and channel.live


def findable(context: ConnectionContext, key: StreamKey) -> bool:
    """Whether something publishes ``key``, here or on a sibling process
    (whose stream comes here once a viewer asks for it)."""
    return live(context, key) or (context.elsewhere is not None and context.elsewhere(key))


def admit(context: ConnectionContext, request: web.Request) -> web.Response | None:
    """None if the server takes one more viewer from the request's peer,
    else the answer: 503 while shutting down or at a connection limit."""
    if context.closing:
        return refuse(503, "shutting down")
    peer, ip = peer_of(request)
    limit, why = context.over_limits(ip)
    if limit:
        limit_hit(limit, peer, "viewer refused")
        return refuse(503, why)
    return None


async def allowed(context: ConnectionContext, request: web.Request,
                  key: StreamKey) -> web.Response | None:
    """None if ``on_play`` lets the request play ``key`` (it is given the
    query string), else a 403; the hook has ``connect_timeout`` seconds."""
    peer, _ = peer_of(request)
    hook = Request("play", key.app, key.name, request.query_string, peer,
                   f"{request.scheme}://{request.host}/{key.app}")
    try:
        async with asyncio.timeout(context.connect_timeout):
            ok, why = await context.hooks.ask("on_play", hook)
    except TimeoutError:
        ok, why = False, "on_play took too long"
    if not ok:
        return refuse(403, why or "play rejected")
    return None
