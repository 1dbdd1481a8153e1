"""rtmpx: fast, typed RTMP for Python.

The compiled cores (AMF, chunk stream, handshake) sit under a sans-I/O
session layer and a thin asyncio server and client.  See the README for
the commands that install and run it.
"""

from __future__ import annotations

from ._version import __version__
from .chunk import ChunkReader, ChunkWriter, Message
from .client import Client, PlayStream, PublishStream, connect
from .constants import StatusCode
from .errors import (
    AMFDecodeError,
    AMFEncodeError,
    ConnectionRejectedError,
    HandshakeError,
    InvalidStateError,
    ProtocolError,
    RtmpError,
    StatusError,
)
from .media import Frame
from .server import HubLimits, IncomingStream, Request, Server, StatsServer, StreamKey
from .session import ClientSession, ServerSession, SessionConfig

__all__ = [
    "AMFDecodeError",
    "AMFEncodeError",
    "ChunkReader",
    "ChunkWriter",
    "Client",
    "ClientSession",
    "ConnectionRejectedError",
    "Frame",
    "HandshakeError",
    "HubLimits",
    "IncomingStream",
    "InvalidStateError",
    "Message",
    "PlayStream",
    "ProtocolError",
    "PublishStream",
    "Request",
    "RtmpError",
    "Server",
    "ServerSession",
    "SessionConfig",
    "StatsServer",
    "StatusCode",
    "StatusError",
    "StreamKey",
    "__version__",
    "connect",
]
