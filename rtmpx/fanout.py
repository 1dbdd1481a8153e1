"""Fan-out of media to RTMP players: :class:`Outbox`, :class:`Gate`, :func:`deliver`.

Re-exports the compiled :mod:`rtmpx._fanout` (or, with
``RTMPX_PUREPYTHON=1``, the pure twin :mod:`rtmpx._fanout_py`); see the
twin's docstring for the rule.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if not TYPE_CHECKING and os.environ.get("RTMPX_PUREPYTHON") == "1":
    from ._fanout_py import DUE, FLUSH, IDLE, KICK_QUEUE, Gate, Outbox, deliver
else:
    from ._fanout import DUE, FLUSH, IDLE, KICK_QUEUE, Gate, Outbox, deliver

__all__ = ["DUE", "FLUSH", "IDLE", "KICK_QUEUE", "Gate", "Outbox", "deliver"]
