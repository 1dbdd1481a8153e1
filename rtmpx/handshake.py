"""The RTMP handshake (simple and complex) as sans-I/O state machines.

Re-exports the compiled :mod:`rtmpx._handshake` (or, with
``RTMPX_PUREPYTHON=1``, the pure twin :mod:`rtmpx._handshake_py`); see the
twin's docstring for the full API.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if not TYPE_CHECKING and os.environ.get("RTMPX_PUREPYTHON") == "1":
    from ._handshake_py import (
        DEFAULT_CLIENT_VERSION,
        DEFAULT_SERVER_VERSION,
        GENUINE_FMS_KEY,
        GENUINE_FP_KEY,
        ClientHandshake,
        ServerHandshake,
        digest_offset,
        find_digest,
        imprint_digest,
        make_digest,
        response_signature,
    )
else:
    from ._handshake import (
        DEFAULT_CLIENT_VERSION,
        DEFAULT_SERVER_VERSION,
        GENUINE_FMS_KEY,
        GENUINE_FP_KEY,
        ClientHandshake,
        ServerHandshake,
        digest_offset,
        find_digest,
        imprint_digest,
        make_digest,
        response_signature,
    )

__all__ = [
    "DEFAULT_CLIENT_VERSION",
    "DEFAULT_SERVER_VERSION",
    "GENUINE_FMS_KEY",
    "GENUINE_FP_KEY",
    "ClientHandshake",
    "ServerHandshake",
    "digest_offset",
    "find_digest",
    "imprint_digest",
    "make_digest",
    "response_signature",
]
