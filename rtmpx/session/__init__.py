"""Sans-I/O RTMP sessions: bytes in, events out; calls in, bytes out.

:class:`ServerSession` is the server end of one connection,
:class:`ClientSession` the client end, both built on :class:`Session`
(chunking, protocol control, acknowledgements).  None does I/O or reads a
clock.  Every state rule is a table in :mod:`rtmpx.session.states`.
"""

from __future__ import annotations

from .base import Session, SessionConfig, encode_shared, split_query
from .capabilities import DEFAULT_CAPABILITIES, Capabilities, CapsEx, FourCcInfo
from .client import ClientSession
from .server import SERVER_PROPERTIES, ServerSession
from .states import ConnectionState, StreamState

__all__ = [
    "DEFAULT_CAPABILITIES",
    "SERVER_PROPERTIES",
    "Capabilities",
    "CapsEx",
    "ClientSession",
    "ConnectionState",
    "FourCcInfo",
    "ServerSession",
    "Session",
    "SessionConfig",
    "StreamState",
    "encode_shared",
    "split_query",
]
