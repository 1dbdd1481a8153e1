"""The asyncio RTMP server, one module a job.

* :mod:`~rtmpx.server.server` - :class:`Server`: lifecycle and policy.
* :mod:`~rtmpx.server.connection` - one client connection (asyncio glue).
* :mod:`~rtmpx.server.hub` - publications, channels, the GOP cache and
  the one :class:`~rtmpx.server.hub.Subscriber` contract (no asyncio).
* :mod:`~rtmpx.server.player` - RTMP players and the slow-player policy.
* :mod:`~rtmpx.server.ingest` - :class:`IncomingStream`, frames for Python code.
* :mod:`~rtmpx.server.recorder` - FLV recording on threads of its own.
* :mod:`~rtmpx.server.relay` - push and pull relays.
* :mod:`~rtmpx.server.hooks` - :class:`Request` and the hooks.
* :mod:`~rtmpx.server.auth` - ready-made checks: tokens, application allow-lists.
* :mod:`~rtmpx.server.stats` - stats as a dict and as Prometheus text.
* :mod:`~rtmpx.server.http` - :class:`HttpServer` (aiohttp): ``/stats``, ``/metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .auth import AllowApps, Denied, TokenAuth, all_of, load_tokens
from .hooks import Request
from .hub import HubLimits, StreamKey
from .ingest import IncomingStream
from .server import Server

if TYPE_CHECKING:
    from .http import HttpServer
    from .http import HttpServer as StatsServer


def __getattr__(name: str) -> Any:
    """``HttpServer`` (and ``StatsServer``, its first name), imported with
    aiohttp only when asked for."""
    if name in ("HttpServer", "StatsServer"):
        from .http import HttpServer

        return HttpServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AllowApps",
    "Denied",
    "HttpServer",
    "HubLimits",
    "IncomingStream",
    "Request",
    "Server",
    "StatsServer",
    "StreamKey",
    "TokenAuth",
    "all_of",
    "load_tokens",
]
