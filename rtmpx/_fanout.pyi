"""Type stub of :mod:`rtmpx._fanout`, the compiled fan-out.

:mod:`rtmpx._fanout_py` is its pure-Python twin with the same API.
"""

from collections.abc import Callable, Sequence
from typing import Any

from ._fanout_py import Encoder, _Packet, _Session

__all__ = ["DUE", "FLUSH", "IDLE", "KICK_QUEUE", "Gate", "Outbox", "deliver"]

IDLE: int
DUE: int
FLUSH: int
KICK_QUEUE: str

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
    skip_to_key: bool
    behind_since: float
    bytes_sent: int
    messages_sent: int
    dropped: int
    def __init__(self, outbox: Outbox, stream_id: int, max_queue: int, encode: Encoder,
                 notify: Callable[[], None]) -> None: ...

def deliver(packet: _Packet, gates: Sequence[Gate], now: float) -> list[Gate | Outbox]:
    """Hand ``packet`` to every gate by the slow-player rule; returns the
    gates and outboxes whose ``notify()`` must be called, in order."""
