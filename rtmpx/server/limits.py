"""Server-wide limits: the memory budget, and one rate-limited log line per
violation.

:class:`MemoryBudget` is the sum of what the server holds for its peers:
GOP caches (charged at once, as they grow), and queues - players' write
buffers, chunk reassembly, ingest streams, recordings, push relays -
sampled once a second.  Over the budget the server drops its GOP caches
and refuses new publishes until it is back under.

:func:`limit_hit` logs that a peer hit a limit: one line naming the limit
and the peer, at most :data:`LOG_BURST` lines per limit every
:data:`LOG_WINDOW` seconds (then one line counts what was left out), so
an attack cannot flood the log.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

__all__ = ["LIMITS", "LOG_BURST", "LOG_WINDOW", "Limit", "MemoryBudget", "limit_hit"]

log = logging.getLogger("rtmpx.server")

#: Lines per limit logged in one window; more are counted, not logged.
LOG_BURST = 10
#: The window of :data:`LOG_BURST`, in seconds.
LOG_WINDOW = 10.0

# limit -> (window start, lines logged in it, lines left out)
_windows: dict[str, tuple[float, int, int]] = {}


def limit_hit(limit: str, peer: str, detail: str = "", *, level: int = logging.WARNING) -> None:
    """Log that ``peer`` hit ``limit`` (e.g. ``"max_half_open=128"``), rate-limited."""
    name = limit.partition("=")[0]
    now = time.monotonic()
    start, shown, left_out = _windows.get(name, (now, 0, 0))
    if now - start >= LOG_WINDOW:
        if left_out:
            log.log(level, "limit %s: %d more peers in %.0f s (not logged)", name, left_out,
                    now - start)
        start, shown, left_out = now, 0, 0
    if shown < LOG_BURST:
        log.log(level, "%s: limit %s%s", peer, limit, f": {detail}" if detail else "")
        shown += 1
    else:
        left_out += 1
    _windows[name] = (start, shown, left_out)


class MemoryBudget:
    """What the server may hold for its peers, in bytes (``limit``).

    ``gop`` and ``headers`` are charged by the channels' GOP and header
    caches as they grow and released as they are cleared; ``queues`` is
    the sum of every other buffer, sampled by the server once a second.
    """

    __slots__ = ("gop", "headers", "limit", "queues")

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("the memory budget must be positive")
        self.limit = limit
        self.gop = 0
        self.headers = 0
        self.queues = 0

    def __repr__(self) -> str:
        return f"<MemoryBudget {self.used}/{self.limit}>"

    @property
    def used(self) -> int:
        """Bytes held now (the queues as last sampled)."""
        return self.gop + self.headers + self.queues

    @property
    def over(self) -> bool:
        """Whether the server holds more than its budget."""
        return self.used > self.limit

    def room_for(self, size: int) -> bool:
        """Whether a cache may grow by ``size`` bytes."""
        return self.used + size <= self.limit


class Limit(NamedTuple):
    """One setting of the server's limits: its keyword, where it goes
    (``"server"``: a :class:`~rtmpx.Server` keyword; ``"hub"``: a
    :class:`~rtmpx.HubLimits` field; ``"session"``: a
    :class:`~rtmpx.SessionConfig` field), its type, and what it bounds."""

    keyword: str
    where: str
    type: type
    help: str

    @property
    def option(self) -> str:
        """Its ``rtmpx serve`` option."""
        return "--" + self.keyword.replace("_", "-")


#: Every limit and timeout, as the README's Security table and ``rtmpx
#: serve`` list them (defaults are those of the classes).
LIMITS: tuple[Limit, ...] = (
    Limit("handshake_timeout", "server", float, "seconds for each handshake stage (TLS, C0+C1, C2)"),
    Limit("connect_timeout", "server", float,
          "seconds from the handshake until connect is accepted (on_connect included)"),
    Limit("idle_timeout", "server", float,
          "seconds without input, or without publishing or playing, before a disconnect"),
    Limit("hold_timeout", "server", float,
          "seconds an ingest consumer or a recording may keep its publisher paused"),
    Limit("max_connections", "server", int, "established connections"),
    Limit("max_connections_per_ip", "server", int,
          "established connections per address"),
    Limit("max_half_open", "server", int,
          "connections before connect is accepted (a newcomer evicts the oldest)"),
    Limit("max_half_open_per_ip", "server", int,
          "half-open connections per address (those younger than 2 s are spared)"),
    Limit("max_memory", "server", int,
          "bytes of caches and queues for all peers; past it GOP caches are dropped and "
          "publishes refused"),
    Limit("ingest_buffer", "server", int, "bytes an ingest stream (server.publishes()) holds"),
    Limit("max_queue", "hub", int, "bytes queued to a player before video is dropped"),
    Limit("max_lag", "hub", float, "seconds a player may stay behind before a disconnect"),
    Limit("max_gop_bytes", "hub", int, "bytes of one channel's GOP cache"),
    Limit("max_gop_entries", "hub", int, "packets of one channel's GOP cache"),
    Limit("max_header_bytes", "hub", int,
          "bytes of the headers one channel keeps for late joiners (all tracks)"),
    Limit("max_message_size", "session", int, "bytes of one message"),
    Limit("max_chunk_streams", "session", int, "chunk streams per connection"),
    Limit("max_buffered", "session", int, "bytes of incomplete messages per connection"),
    Limit("max_connect_message", "session", int,
          "bytes of one message, and of incomplete ones, before connect is done"),
    Limit("max_connect_chunk_streams", "session", int, "chunk streams before connect is done"),
    Limit("max_streams", "session", int, "message streams (createStream) per connection"),
    Limit("max_aggregate_messages", "session", int, "messages in one aggregate message"),
    Limit("max_deferred", "session", int, "commands held while on_connect decides"),
    Limit("amf_max_depth", "session", int, "nesting of an AMF value"),
    Limit("amf_max_values", "session", int,
          "values one command or data body decodes to (references expanded)"),
)
