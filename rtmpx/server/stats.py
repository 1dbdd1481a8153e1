"""A server's stats: the numbers.

:func:`collect` gathers streams, publishers, players, bytes and drops from
a hub; :func:`prometheus_text` writes them in the Prometheus text format.
:class:`rtmpx.server.http.HttpServer` serves both.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol, runtime_checkable

from .. import fmp4
from ..errors import ProtocolError
from ..media import parse_audio, parse_video
from .connection import Connection
from .hub import Channel, Hub
from .player import GateSink
from .recorder import Recorder

__all__ = ["HasStats", "Output", "collect", "jsonable", "prometheus_text"]

log = logging.getLogger("rtmpx.stats")

_MAX_REQUEST = 8192
_MAX_DEPTH = 8
_MAX_ITEMS = 200
_MAX_TEXT = 1000


@runtime_checkable
class Output(Protocol):
    """A subscriber that is an output of a stream, not one player (an
    LL-HLS packager): its entry in the stream's ``outputs``."""

    def output_stats(self) -> dict[str, Any]: ...


class HasStats(Protocol):
    """What :class:`~rtmpx.server.http.HttpServer` serves: anything with ``stats()`` (a Server,
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


def _number(value: Any) -> float | None:
    """A finite number from untrusted metadata, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and abs(value) < 1e9 else None


def _tracks(channel: Channel) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What the stream carries, from its sequence headers (the primary
    tracks) and metadata: video codec, size, frame rate; audio codec,
    sample rate, channels.  None for a kind it does not carry."""
    metadata = channel.metadata or {}
    video: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    for packet in channel.startup():
        if not packet.header:
            continue
        if packet.type_id == 9 and video is None:
            frame = parse_video(packet.timestamp, packet.payload)
            if not frame.is_sequence_header:
                continue
            video = {"codec": frame.codec, "width": None, "height": None, "codecs": None}
            try:
                track = fmp4.video_track(packet.payload)
            except ProtocolError:
                pass
            else:
                video.update(width=track.width or None, height=track.height or None,
                             codecs=track.codecs)
        elif packet.type_id == 8 and audio is None:
            frame = parse_audio(packet.timestamp, packet.payload)
            if not frame.is_sequence_header:
                continue
            audio = {"codec": frame.codec, "sample_rate": None, "channels": None, "codecs": None}
            try:
                atrack = fmp4.audio_track(packet.payload)
            except ProtocolError:
                pass
            else:
                audio.update(sample_rate=atrack.sample_rate, channels=atrack.channels,
                             codecs=atrack.codecs)
    if video is not None:
        width, height = _number(metadata.get("width")), _number(metadata.get("height"))
        if video["width"] is None and width and height:
            video.update(width=int(width), height=int(height))
        video["fps"] = _number(metadata.get("framerate"))
    return video, audio


def collect(hub: Hub, connections: Iterable[Connection], uptime: float, *,
            viewers: int = 0) -> dict[str, Any]:
    """Streams, publishers, players, bytes in/out, drops and lag, as a dict;
    ``viewers`` (HTTP-FLV and WebSocket-FLV) count as connections."""
    now = time.monotonic()
    streams = []
    bytes_in = bytes_out = drops = 0
    conns = list(connections)
    for key, channel in sorted(hub.channels.items()):
        players = []
        outputs = []
        for player in channel.players:
            if isinstance(player, Output):
                outputs.append(player.output_stats())
            if not isinstance(player, GateSink):
                continue
            players.append({
                "peer": player.peer, "protocol": player.protocol, "bytes": player.stats.bytes_sent,
                "messages": player.stats.messages_sent, "dropped": player.stats.dropped,
                "queued_bytes": player.queued_bytes, "behind_seconds": player.behind_seconds(now),
            })
            bytes_out += player.stats.bytes_sent
            drops += player.stats.dropped
        publisher = None
        recordings: list[dict[str, Any]] = []
        publication = channel.publication
        if publication is not None:
            publisher = {"peer": publication.publisher.peer, "bytes": publication.bytes_in,
                         "messages": publication.messages_in,
                         "seconds": now - publication.started_at, "paused": publication.paused}
            bytes_in += publication.bytes_in
            recordings = [{"path": str(f.path), "tags": f.tags} for f in publication.followers
                          if isinstance(f, Recorder) and f.path is not None]
        video, audio = _tracks(channel) if channel.live else (None, None)
        streams.append({"key": str(key), "app": key.app, "name": key.name,
                        "live": channel.live, "publisher": publisher, "video": video,
                        "audio": audio, "players": players, "outputs": outputs,
                        "recordings": recordings,
                        "metadata": jsonable(channel.metadata)})
    return {
        "uptime": uptime,
        "connections": len(conns) + viewers,
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
