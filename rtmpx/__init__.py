"""rtmpx: fast, typed RTMP for Python.

The compiled cores (AMF, chunk stream, handshake) sit under a sans-I/O
session layer and a thin asyncio server and client.  See the README for
the commands that install and run it.
"""

from __future__ import annotations

from ._version import __version__
from .errors import AMFDecodeError, AMFEncodeError, HandshakeError, ProtocolError, RtmpError

__all__ = [
    "AMFDecodeError",
    "AMFEncodeError",
    "HandshakeError",
    "ProtocolError",
    "RtmpError",
    "__version__",
]
