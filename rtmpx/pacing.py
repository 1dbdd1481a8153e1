"""Fair turns on the event loop for the connections of one process, and
merged writes.

A peer can pack thousands of messages into one read (a flood of empty or
one-byte messages; uvloop reads a busy socket many times per loop turn),
and each message costs Python work.  :class:`Pacer` hands received bytes
to a session in slices and stops after :data:`TURN` seconds: the rest
waits for a later loop turn, with reading paused meanwhile, so one peer
delays everyone else by at most about one turn.

Writes go the other way: a relay sends each message to many peers, and a
system call per message and peer is most of what fan-out costs.
:class:`Flusher` lets a connection queue media and have it written with
its next flush, one ``writelines`` (``writev``) for everything due, at
most ``interval`` seconds later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["FLUSH_INTERVAL", "SLICE", "TURN", "Flushable", "Flusher", "Pacer"]

log = logging.getLogger("rtmpx")

#: Bytes handed to a session at once (at most this many messages, too).
SLICE = 8192
#: Seconds of work one connection may take per loop turn.
TURN = 0.01
#: Seconds between merged writes, by default (``rtmpx.Server(flush_interval=)``).
FLUSH_INTERVAL = 0.02


class Pacer:
    """Feeds received bytes to ``handle`` slice by slice, for at most
    :data:`TURN` seconds per loop turn.

    ``handle(data)`` processes bytes and returns False once the connection
    is gone (the rest is dropped); ``hold(True)`` pauses reading while a
    backlog waits, ``hold(False)`` resumes it.
    """

    __slots__ = ("_backlog", "_handle", "_hold")

    def __init__(self, handle: Callable[[memoryview], bool],
                 hold: Callable[[bool], None]) -> None:
        self._handle = handle
        self._hold = hold
        self._backlog: bytearray | None = None

    @property
    def waiting(self) -> int:
        """Bytes received and not processed yet."""
        return len(self._backlog) if self._backlog is not None else 0

    def feed(self, data: bytes) -> None:
        """Bytes from the transport."""
        if self._backlog is not None:  # a read that came before the pause took effect
            self._backlog += data
            return
        self._run(memoryview(data))

    def _run(self, view: memoryview) -> None:
        n = len(view)
        if n <= SLICE:
            self._handle(view)
            return
        start = time.perf_counter()
        pos = 0
        while pos < n:
            if not self._handle(view[pos:pos + SLICE]):
                return
            pos += SLICE
            if pos < n and time.perf_counter() - start > TURN:
                self._backlog = bytearray(view[pos:])
                self._hold(True)
                asyncio.get_running_loop().call_soon(self._next_turn)
                return

    def _next_turn(self) -> None:
        backlog, self._backlog = self._backlog, None
        if backlog is None:
            return
        self._hold(False)
        self._run(memoryview(backlog))

    def finish(self) -> None:
        """Process the backlog now, whatever the time (the connection is
        lost: what it received before is still owed to the others)."""
        backlog, self._backlog = self._backlog, None
        if backlog is not None:
            view = memoryview(backlog)
            for pos in range(0, len(view), SLICE):
                if not self._handle(view[pos:pos + SLICE]):
                    return


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
