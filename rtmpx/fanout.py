"""The relay's per-message work: :class:`Packet`, :class:`GopCache`, fan-out to
RTMP players (:class:`Outbox`, :class:`Gate`, :func:`deliver`), :func:`relay`.

Re-exports the compiled :mod:`rtmpx._fanout` (or, with
``RTMPX_PUREPYTHON=1``, the pure twin :mod:`rtmpx._fanout_py`); see the
twin's docstring for the rule.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._fanout_py import Encoder, HeaderKey

if not TYPE_CHECKING and os.environ.get("RTMPX_PUREPYTHON") == "1":
    from ._fanout_py import (
        DUE,
        FLUSH,
        IDLE,
        KICK_ERROR,
        KICK_QUEUE,
        PACKET_OVERHEAD,
        Gate,
        GopCache,
        Outbox,
        Packet,
        deliver,
        relay,
    )
else:
    from ._fanout import (
        DUE,
        FLUSH,
        IDLE,
        KICK_ERROR,
        KICK_QUEUE,
        PACKET_OVERHEAD,
        Gate,
        GopCache,
        Outbox,
        Packet,
        deliver,
        relay,
    )

__all__ = ["DUE", "FLUSH", "IDLE", "KICK_ERROR", "KICK_QUEUE", "PACKET_OVERHEAD", "Encoder",
           "Gate", "GopCache", "HeaderKey", "Outbox", "Packet", "deliver", "relay"]
