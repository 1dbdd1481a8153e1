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
* :mod:`~rtmpx.server.stats` - stats, JSON and Prometheus over HTTP.
"""

from __future__ import annotations

from .auth import AllowApps, Denied, TokenAuth, all_of, load_tokens
from .hooks import Request
from .hub import HubLimits, StreamKey
from .ingest import IncomingStream
from .server import Server
from .stats import StatsServer

__all__ = [
    "AllowApps",
    "Denied",
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
