"""rtmpx: fast, typed RTMP for Python.

The compiled cores (AMF, chunk stream, handshake) sit under a sans-I/O
session layer and a thin asyncio server and client.  See the README for
the commands that install and run it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from .server import (
    AllowApps,
    Denied,
    HubLimits,
    IncomingStream,
    Request,
    Server,
    StreamKey,
    TokenAuth,
    all_of,
    load_tokens,
)
from .session import Capabilities, ClientSession, ServerSession, SessionConfig

__all__ = [
    "AMFDecodeError",
    "AMFEncodeError",
    "AllowApps",
    "Capabilities",
    "ChunkReader",
    "ChunkWriter",
    "Client",
    "ClientSession",
    "ConnectionRejectedError",
    "Denied",
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
    "TokenAuth",
    "__version__",
    "all_of",
    "connect",
    "load_tokens",
]

if TYPE_CHECKING:
    from .server.http import HttpServer as StatsServer


def __getattr__(name: str) -> Any:
    """``StatsServer`` (:class:`rtmpx.server.http.HttpServer`), imported with
    aiohttp only when asked for."""
    if name == "StatsServer":
        from .server.http import HttpServer

        return HttpServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
