"""Fair turns on the event loop for the connections of one process.

A peer can pack thousands of messages into one read (a flood of empty or
one-byte messages; uvloop reads a busy socket many times per loop turn),
and each message costs Python work.  :class:`Pacer` hands received bytes
to a session in slices and stops after :data:`TURN` seconds: the rest
waits for a later loop turn, with reading paused meanwhile, so one peer
delays everyone else by at most about one turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["SLICE", "TURN", "Pacer"]

#: Bytes handed to a session at once (at most this many messages, too).
SLICE = 8192
#: Seconds of work one connection may take per loop turn.
TURN = 0.01


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
