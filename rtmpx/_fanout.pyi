"""Type stub of :mod:`rtmpx._fanout`, the compiled fan-out.

:mod:`rtmpx._fanout_py` is its pure-Python twin with the same API.
"""

from collections.abc import Callable, Sequence
from typing import Any

from ._fanout_py import Encoder, HeaderKey, _Budget, _Message, _Session

__all__ = ["DUE", "FLUSH", "IDLE", "KICK_ERROR", "KICK_QUEUE", "PACKET_OVERHEAD", "Gate",
           "GopCache", "Outbox", "Packet", "deliver", "relay"]

IDLE: int
DUE: int
FLUSH: int
KICK_QUEUE: str
KICK_ERROR: str
PACKET_OVERHEAD: int

class Packet:
    """One message of a publication, as every subscriber gets it."""

    type_id: int
    timestamp: int
    payload: bytes
    header: bool
    headers: tuple[HeaderKey, ...]
    keyframe: bool
    metadata: dict[str, Any] | None
    shared: dict[Any, bytes] | None
    def __init__(self, type_id: int, timestamp: int, payload: bytes, header: bool = False,
                 keyframe: bool = False, metadata: dict[str, Any] | None = None,
                 headers: tuple[HeaderKey, ...] = ()) -> None: ...
    @classmethod
    def media(cls, type_id: int, timestamp: int, payload: bytes) -> Packet:
        """An audio or video packet, classified per track (:func:`~rtmpx.media.classify`)."""

class GopCache:
    """The media since the latest keyframe of the primary video track, bounded."""

    max_bytes: int
    max_entries: int
    budget: _Budget
    @property
    def packets(self) -> list[Packet]: ...
    @property
    def bytes(self) -> int: ...
    @property
    def valid(self) -> bool: ...
    def __init__(self, max_bytes: int, max_entries: int, budget: _Budget) -> None: ...
    def drop(self) -> None:
        """Forget the cached packets until the next keyframe."""
    def add(self, packet: Packet) -> None:
        """Keep an audio or video packet that is not a header."""

def relay(messages: Sequence[_Message], gop: GopCache, gates: list[Gate], now: float,
          safely: Callable[[Callable[[], None]], None],
          keep_header: Callable[[Packet], None]) -> int:
    """A publisher's audio and video messages through the GOP cache (headers
    to ``keep_header``) and the gates; returns the payload bytes."""

class Outbox:
    """The media due to one connection: its session's output queue, the
    bytes merged since the last flush, the peer's backlog."""

    @property
    def session(self) -> _Session: ...
    @property
    def queue(self) -> list[bytes]: ...
    @property
    def chunk_size(self) -> int:
        """The session's chunk size as of the last flush."""
    merge_max: int
    notify: Callable[[], None]
    transport: Any
    merged: int
    state: int
    def __init__(self, session: _Session, merge_max: int,
                 notify: Callable[[], None]) -> None: ...
    def backlog(self) -> int:
        """Bytes written to the transport that the peer has not taken yet."""
    @property
    def last_backlog(self) -> int:
        """The backlog as of the last :meth:`measure` (what the rule reads)."""
    def measure(self) -> int:
        """Read :meth:`backlog` into :attr:`last_backlog` and return it."""
    def take(self) -> list[bytes]:
        """Everything queued for the peer (the session's output, which it
        leaves empty), in order; as :meth:`flushed` after."""
    def flushed(self) -> None:
        """The queue was taken: nothing is merged any more (and the
        session's chunk size is read again)."""
    def add(self, data: bytes) -> bool:
        """Append media bytes; True when :attr:`state` rose (call :attr:`notify`)."""

class Gate:
    """One player of a channel and the slow-player rule."""

    @property
    def outbox(self) -> Outbox: ...
    stream_id: int
    max_queue: int
    encode: Encoder
    notify: Callable[[], None]
    audio: bool
    video: bool
    paused: bool
    closed: bool
    kicked: str
    error: BaseException | None
    skip_to_key: bool
    behind_since: float
    bytes_sent: int
    messages_sent: int
    dropped: int
    def __init__(self, outbox: Outbox, stream_id: int, max_queue: int, encode: Encoder,
                 notify: Callable[[], None]) -> None: ...

def deliver(packet: Packet, gates: Sequence[Gate], now: float) -> list[Gate | Outbox]:
    """Hand ``packet`` to every gate by the slow-player rule; returns the
    gates and outboxes whose ``notify()`` must be called, in order."""
