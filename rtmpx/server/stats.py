"""A server's stats: the numbers, and a tiny HTTP endpoint for them.

:func:`collect` gathers streams, publishers, players, bytes and drops from
a hub.  :class:`StatsServer` serves them: ``GET /stats`` (or ``/``) as
JSON, ``GET /metrics`` in the Prometheus text format.  It reads one
request line and its headers (bounded), answers, and closes.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

from .connection import Connection
from .hub import Hub
from .player import PlayerSink

__all__ = ["StatsServer", "collect", "jsonable", "prometheus_text"]

log = logging.getLogger("rtmpx.stats")

_MAX_REQUEST = 8192
_MAX_DEPTH = 8
_MAX_ITEMS = 200
_MAX_TEXT = 1000


class HasStats(Protocol):
    """What :class:`StatsServer` serves: anything with ``stats()`` (a Server,
    or a supervisor of workers, whose ``stats()`` is async)."""

    def stats(self) -> dict[str, Any] | Awaitable[dict[str, Any]]: ...


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a decoded (untrusted) value, bounded: at most
    :data:`_MAX_DEPTH` levels, :data:`_MAX_ITEMS` entries per container and
    :data:`_MAX_TEXT` characters per string (cycles end at the depth bound)."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if depth >= _MAX_DEPTH:
        return "..."
    if isinstance(value, dict):
        out = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                break
            out[str(k)[:_MAX_TEXT] if isinstance(k, (str, int, float)) else type(k).__name__] = \
                jsonable(v, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value[:_MAX_ITEMS]]
    return type(value).__name__


def collect(hub: Hub, connections: Iterable[Connection], uptime: float) -> dict[str, Any]:
    """Streams, publishers, players, bytes in/out, drops and lag, as a dict."""
    now = time.monotonic()
    streams = []
    bytes_in = bytes_out = drops = 0
    conns = list(connections)
    for key, channel in sorted(hub.channels.items()):
        players = []
        for player in channel.players:
            if not isinstance(player, PlayerSink):
                continue
            players.append({
                "peer": player.peer, "bytes": player.stats.bytes_sent,
                "messages": player.stats.messages_sent, "dropped": player.stats.dropped,
                "queued_bytes": player.queued_bytes, "behind_seconds": player.behind_seconds(now),
            })
            bytes_out += player.stats.bytes_sent
            drops += player.stats.dropped
        publisher = None
        publication = channel.publication
        if publication is not None:
            publisher = {"peer": publication.publisher.peer, "bytes": publication.bytes_in,
                         "messages": publication.messages_in,
                         "seconds": now - publication.started_at, "paused": publication.paused}
            bytes_in += publication.bytes_in
        streams.append({"key": str(key), "app": key.app, "name": key.name,
                        "live": channel.live, "publisher": publisher, "players": players,
                        "metadata": jsonable(channel.metadata)})
    return {
        "uptime": uptime,
        "connections": len(conns),
        "streams": streams,
        "publishers": sum(1 for s in streams if s["live"]),
        "players": sum(len(s["players"]) for s in streams),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "dropped": drops,
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(stats: dict[str, Any]) -> str:
    """Server stats in the Prometheus exposition format (version 0.0.4)."""
    lines = []

    def metric(name: str, kind: str, help_text: str,
               samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")

    metric("rtmpx_uptime_seconds", "gauge", "Seconds since the server started.",
           [({}, stats["uptime"])])
    metric("rtmpx_connections", "gauge", "Open connections.", [({}, stats["connections"])])
    metric("rtmpx_streams", "gauge", "Stream keys with a publisher or players.",
           [({}, len(stats["streams"]))])
    metric("rtmpx_publishers", "gauge", "Live publishers.", [({}, stats["publishers"])])
    metric("rtmpx_players", "gauge", "Connected players.", [({}, stats["players"])])
    metric("rtmpx_bytes_in_total", "counter", "Media bytes received from publishers.",
           [({"stream": s["key"]}, s["publisher"]["bytes"] if s["publisher"] else 0)
            for s in stats["streams"]])
    metric("rtmpx_bytes_out_total", "counter", "Bytes sent to players.",
           [({"stream": s["key"], "peer": p["peer"]}, p["bytes"])
            for s in stats["streams"] for p in s["players"]])
    metric("rtmpx_dropped_total", "counter", "Video messages dropped for slow players.",
           [({"stream": s["key"], "peer": p["peer"]}, p["dropped"])
            for s in stats["streams"] for p in s["players"]])
    metric("rtmpx_player_queued_bytes", "gauge", "Bytes queued to a player, not yet sent.",
           [({"stream": s["key"], "peer": p["peer"]}, p["queued_bytes"])
            for s in stats["streams"] for p in s["players"]])
    metric("rtmpx_player_lag_seconds", "gauge", "How long a player has been behind.",
           [({"stream": s["key"], "peer": p["peer"]}, p["behind_seconds"])
            for s in stats["streams"] for p in s["players"]])
    return "\n".join(lines) + "\n"


class StatsServer:
    """Serves a :class:`~rtmpx.Server`'s stats over HTTP on ``host:port``."""

    def __init__(self, server: HasStats, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.rtmp = server
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  limit=_MAX_REQUEST)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("stats on http://%s:%d/stats and /metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _stats(self) -> dict[str, Any]:
        found = self.rtmp.stats()
        return await found if inspect.isawaitable(found) else found

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            parts = head.split(b"\r\n", 1)[0].split()
            method, path = (parts[0], parts[1].split(b"?")[0]) if len(parts) >= 2 else (b"", b"")
            if method not in (b"GET", b"HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path in (b"/", b"/stats"):
                status, ctype = "200 OK", "application/json"
                body = json.dumps(await self._stats(), indent=1).encode()
            elif path == b"/metrics":
                status, ctype = "200 OK", "text/plain; version=0.0.4"
                body = prometheus_text(await self._stats()).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /stats or /metrics\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
