"""rtmpx: fast, typed RTMP for Python.

The compiled cores (AMF, chunk stream, handshake) sit under a sans-I/O
session layer and a thin asyncio server and client.  See the README for
the commands that install and run it.
"""

from __future__ import annotations

from ._version import __version__
from .chunk import ChunkReader, ChunkWriter, Message
from .client import Client, ConnectionRejectedError, PlayStream, PublishStream, StatusError, connect
from .errors import AMFDecodeError, AMFEncodeError, HandshakeError, ProtocolError, RtmpError
from .hub import HubLimits
from .media import Frame
from .server import IncomingStream, Request, Server
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
    "Message",
    "PlayStream",
    "ProtocolError",
    "PublishStream",
    "Request",
    "RtmpError",
    "Server",
    "ServerSession",
    "SessionConfig",
    "StatusError",
    "__version__",
    "connect",
]
