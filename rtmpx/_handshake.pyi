"""Type stub of the compiled RTMP handshake core (``rtmpx._handshake``).

The pure-Python twin :mod:`rtmpx._handshake_py` has the same API and
produces the same bytes for the same ``random`` and ``epoch_ms``; its module
docstring is the full reference (wire format, call pattern of ``random``,
errors).

Sans-I/O: no sockets, no clock.  ``feed()`` takes what the socket delivered
(any split, one byte at a time included) and returns what to send now.

Server::

    hs = ServerHandshake(epoch_ms=now_ms)
    send(hs.feed(received))          # S0+S1+S2 once C0+C1 are in, else b""
    if hs.done:
        chunk_layer.feed(hs.leftover)

Client::

    hs = ClientHandshake(epoch_ms=now_ms)
    send(hs.start())                 # C0+C1
    send(hs.feed(received))          # C2 once S0+S1+S2 are in, else b""
    if hs.done:
        chunk_layer.feed(hs.leftover)

Errors: a C0/S0 other than 3 raises ``HandshakeError`` (version 6 is named
as RTMPE), after which the machine stays failed; ``feed()`` after ``done``,
``feed()`` before ``start()`` and a second ``start()`` raise ``RtmpError``;
bad arguments and a ``random`` returning the wrong length raise
``ValueError``.
"""

from collections.abc import Callable
from typing import Final, final

from typing_extensions import Buffer

__all__ = [
    "DEFAULT_CLIENT_VERSION",
    "DEFAULT_SERVER_VERSION",
    "DIGEST_SIZE",
    "FMS_KEY_PARTIAL",
    "FP_KEY_PARTIAL",
    "GENUINE_FMS_KEY",
    "GENUINE_FP_KEY",
    "HANDSHAKE_SIZE",
    "RTMPE_VERSION",
    "RTMP_VERSION",
    "ClientHandshake",
    "ServerHandshake",
    "digest_offset",
    "find_digest",
    "imprint_digest",
    "make_digest",
    "response_signature",
]

HANDSHAKE_SIZE: Final[int]  # 1536: C1, S1, C2, S2
DIGEST_SIZE: Final[int]  # 32
RTMP_VERSION: Final[int]  # 3
RTMPE_VERSION: Final[int]  # 6, refused
GENUINE_FP_KEY: Final[bytes]  # 62 bytes: "Genuine Adobe Flash Player 001" + 32
GENUINE_FMS_KEY: Final[bytes]  # 68 bytes: "Genuine Adobe Flash Media Server 001" + 32
FP_KEY_PARTIAL: Final[bytes]  # first 30 bytes of GENUINE_FP_KEY: C1 digest key
FMS_KEY_PARTIAL: Final[bytes]  # first 36 bytes of GENUINE_FMS_KEY: S1 digest key
DEFAULT_CLIENT_VERSION: Final[bytes]  # 09 00 7c 02 (Flash Player 9.0.124.2)
DEFAULT_SERVER_VERSION: Final[bytes]  # 04 05 00 01 (FMS 4.5.0.1)

def digest_offset(block: Buffer, schema: int) -> int:
    """Offset of the digest in a 1536-byte C1/S1.

    schema 1: ``(b[8]+b[9]+b[10]+b[11]) % 728 + 12``;
    schema 0: ``(b[772]+b[773]+b[774]+b[775]) % 728 + 776``.
    ``ValueError`` for a block that is not 1536 bytes or a schema not 0/1.
    """

def make_digest(block: Buffer, offset: int, key: Buffer) -> bytes:
    """``HMAC-SHA256(key, block[:offset] + block[offset+32:])`` (1504 bytes in)."""

def find_digest(block: Buffer, key: Buffer) -> int | None:
    """Schema (1 tried first, then 0) whose digest validates under ``key``, or None."""

def imprint_digest(block: Buffer, schema: int, key: Buffer) -> bytes:
    """Copy of ``block`` with its digest for ``schema`` written in place."""

def response_signature(peer_digest: Buffer, key: Buffer, body: Buffer) -> bytes:
    """``HMAC-SHA256(HMAC-SHA256(key, peer_digest), body)``: the last 32 bytes
    of a complex S2 (key = full FMS key, peer_digest = C1's digest) or C2
    (full FP key, S1's digest); ``body`` = the first 1504 bytes."""

@final
class ServerHandshake:
    """Server side: C0+C1 in, S0+S1+S2 out, C2 in.

    ``random(n)`` is called with 1528 (S1) and, after a complex C1, 1504 (S2).
    S1 time field = ``epoch_ms`` mod 2**32; S1 bytes 4..7 = ``version`` when
    answering a complex C1, zero otherwise.  A simple C1 gets S2 = C1 echoed.
    """

    def __init__(
        self,
        *,
        epoch_ms: int = 0,
        random: Callable[[int], bytes] = ...,
        version: bytes = ...,
    ) -> None: ...
    def feed(self, data: Buffer) -> bytes:
        """Bytes received in; bytes to send out (S0+S1+S2 once, else b"")."""
    @property
    def done(self) -> bool:
        """C2 fully received."""
    @property
    def leftover(self) -> bytes:
        """Bytes that followed C2 in the completing feed: the chunk layer's."""
    @property
    def complex(self) -> bool:
        """C1 carried a valid digest; S1/S2 were complex."""
    @property
    def schema(self) -> int | None:
        """Schema of C1's digest (1 or 0), None for a simple C1."""
    @property
    def peer_version(self) -> int | None:
        """C1 bytes 4..7 (big-endian), None before C1."""
    @property
    def peer_epoch(self) -> int | None:
        """C1 bytes 0..3 (big-endian), None before C1."""
    @property
    def c2_ok(self) -> bool:
        """C2 echoed S1 (bytes 8..1535) or carried the right signature.
        Informational only: a bad C2 never fails the handshake."""

@final
class ClientHandshake:
    """Client side: C0+C1 out, S0+S1+S2 in, C2 out.

    ``random(n)`` is called with 1528 in ``start()`` and 1504 when answering a
    complex S1.  ``complex=False`` sends zero C1 bytes 4..7 and no digest;
    ``schema`` (0 or 1) places the C1 digest; ``version`` must be 4 non-zero
    bytes.
    """

    def __init__(
        self,
        *,
        complex: bool = True,
        epoch_ms: int = 0,
        random: Callable[[int], bytes] = ...,
        version: bytes = ...,
        schema: int = 1,
    ) -> None: ...
    def start(self) -> bytes:
        """C0+C1 (1537 bytes); once."""
    def feed(self, data: Buffer) -> bytes:
        """Bytes received in; C2 once S0+S1+S2 are in, else b""."""
    @property
    def done(self) -> bool:
        """S0+S1+S2 fully received and C2 returned."""
    @property
    def leftover(self) -> bytes:
        """Bytes that followed S2 in the completing feed: the chunk layer's."""
    @property
    def complex(self) -> bool:
        """Our C1 was complex and S1's digest validated: C2 is signed."""
    @property
    def server_digest_ok(self) -> bool:
        """S1 carried a valid FMS digest (schema 1 or 0)."""
    @property
    def schema(self) -> int | None:
        """Schema of S1's digest, None if it has none."""
    @property
    def s2_ok(self) -> bool:
        """S2 echoed C1 (bytes 8..1535) or carried the right signature."""
    @property
    def peer_version(self) -> int | None:
        """S1 bytes 4..7 (big-endian), None before S1."""
    @property
    def peer_epoch(self) -> int | None:
        """S1 bytes 0..3 (big-endian), None before S1."""
