"""Fair turns on the event loop for the connections of one process, and
merged writes.

A peer can pack thousands of messages into one read (a flood of empty or
one-byte messages; uvloop reads a busy socket many times per loop turn),
and each message costs Python work.  A session reads at most
:data:`rtmpx.session.base.BATCH` messages per call when asked (the rest
of the read waits in its chunk reader), and :class:`Pacer` calls it
again until the read is done or :data:`TURN` seconds have passed: the
rest waits for a later loop turn, with reading paused meanwhile, so one
peer delays everyone else by at most about one turn.  Large reads of
large messages take one call.

Reads land in one buffer per thread (:func:`read_buffer`, for
``asyncio.BufferedProtocol``): no allocation and no copy per read; the
bytes are handled, or copied if they must wait, before the next read.

Writes go the other way: a relay sends each message to many peers, and a
system call per message and peer is most of what fan-out costs.
:class:`Flusher` lets a connection queue media and have it written with
its next flush, one ``writelines`` (``writev``) for everything due, at
most ``interval`` seconds later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeAlias

__all__ = ["FLUSH_INTERVAL", "READ_SIZE", "TURN", "Flushable", "Flusher", "Pacer", "read_buffer"]

log = logging.getLogger("rtmpx")

Buffer: TypeAlias = bytes | bytearray | memoryview

#: Seconds of work one connection may take per loop turn.
TURN = 0.01
#: Seconds between merged writes, by default (``rtmpx.Server(flush_interval=)``):
#: chosen by measurement (``rtmpx bench``, 2026-12-01) as the most merging that
#: keeps players' p99 delay within 100 ms of nginx-rtmp's (+91 ms); 50 ms costs
#: about 15% more CPU at 100 players and 30% more at 500.
FLUSH_INTERVAL = 0.09
#: Bytes one read may bring (the size of :func:`read_buffer`).
READ_SIZE = 256 * 1024

_reads = threading.local()


def read_buffer() -> memoryview:
    """Where a connection's reads go (``asyncio.BufferedProtocol.get_buffer``):
    one buffer per thread, shared by every connection of the thread's event
    loop, so what a read brings must be handled or copied before
    ``buffer_updated`` returns (a :class:`Pacer` does)."""
    try:
        view: memoryview = _reads.view
    except AttributeError:
        view = _reads.view = memoryview(bytearray(READ_SIZE))
    return view


class Pacer:
    """Hands received bytes to ``handle``, and calls it again (with no new
    bytes) while it has input left, for at most :data:`TURN` seconds per
    loop turn.

    ``handle(data)`` processes bytes (a bounded number of messages) and
    returns the bytes it still holds unread, or -1 once the connection is
    gone (the rest is dropped); ``hold(True)`` pauses reading while input
    waits for a later turn, ``hold(False)`` resumes it.
    """

    __slots__ = ("_again", "_busy", "_handle", "_hold", "_late", "_waiting")

    def __init__(self, handle: Callable[[Buffer], int],
                 hold: Callable[[bool], None]) -> None:
        self._handle = handle
        self._hold = hold
        self._waiting = 0                  # bytes the session held at the last call
        self._late: list[bytes] | None = None  # reads that raced the pause
        self._busy = False                 # handling a read
        self._again: list[bytes] = []      # reads that came while one was handled

    @property
    def waiting(self) -> int:
        """Bytes received and not processed yet."""
        late = sum(map(len, self._late)) if self._late is not None else 0
        return max(self._waiting, 0) + late + sum(map(len, self._again))

    def feed(self, data: Buffer) -> None:
        """Bytes from the transport (they may be :func:`read_buffer`'s: what
        waits is copied)."""
        if self._late is not None:  # a read that came before the pause took effect
            self._late.append(bytes(data))
        elif self._busy:  # a read from inside the handling of the last one (a TLS
            self._again.append(bytes(data))  # transport closed there reads on)
        else:
            self._run(data)

    def _run(self, data: Buffer) -> None:
        start = time.perf_counter()
        self._busy = True
        try:
            left = self._waiting = self._handle(data)
            while left > 0 or (left == 0 and self._again):
                if time.perf_counter() - start > TURN:
                    self._late, self._again = self._again, []
                    self._hold(True)
                    asyncio.get_running_loop().call_soon(self._next_turn)
                    return
                more = b"" if left > 0 else b"".join(self._again)
                if left == 0:
                    self._again.clear()
                left = self._waiting = self._handle(more)
        finally:
            self._busy = False

    def _next_turn(self) -> None:
        late, self._late = self._late, None
        if late is None:
            return
        self._hold(False)
        self._run(b"".join(late))

    def finish(self) -> None:
        """Process what is left now, whatever the time (the connection is
        lost: what it received before is still owed to the others)."""
        late, self._late = self._late or [], None
        late += self._again
        self._again = []
        if not late and self._waiting <= 0:
            return
        left = self._waiting = self._handle(b"".join(late))
        while left > 0:
            left = self._waiting = self._handle(b"")


class Flushable(Protocol):
    """What a :class:`Flusher` flushes: a connection."""

    def flush(self) -> None:
        """Write everything queued for the peer."""


class Flusher:
    """Flushes, every ``interval`` seconds, the connections that queued
    writes since the last tick: one timer for all of them, armed only
    while some connection waits.

    A connection calls :meth:`due` when it queues the first bytes after
    its last flush; it may flush earlier (control traffic goes out at
    once), which leaves a harmless empty flush at the tick.
    """

    __slots__ = ("_due", "_timer", "interval")

    def __init__(self, interval: float) -> None:
        if not 0 < interval <= 1:
            raise ValueError("a flush interval is over 0 and at most 1 second")
        self.interval = interval
        self._due: list[Flushable] = []
        self._timer: asyncio.TimerHandle | None = None

    def due(self, connection: Flushable) -> None:
        """``connection`` has bytes to write: flush it at the next tick."""
        self._due.append(connection)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        due, self._due = self._due, []
        for connection in due:
            try:
                connection.flush()
            except Exception:  # a bug: it costs that connection's bytes only
                log.exception("%r: error while flushing", connection)

    def close(self) -> None:
        """Flush what is due now and stop (the server shuts down)."""
        if self._timer is not None:
            self._timer.cancel()
        self._tick()
