"""The RTMP handshake as sans-I/O state machines: the pure-Python twin.

This module and the compiled :mod:`rtmpx._handshake` have the same API and
produce the same bytes for the same ``random`` and ``epoch_ms``.  This one is
written to be read: it is the test oracle and the benchmark baseline.

Nothing here does I/O or reads a clock.  Bytes go in through ``feed()``,
bytes to send come out of ``start()``/``feed()``, and the time field of
C1/S1 is whatever ``epoch_ms`` the caller passes in.

Wire format (Adobe RTMP 1.0 plus the de-facto Flash digest scheme)
------------------------------------------------------------------
C0/S0 is one byte, the version, 3.  C1/S1/C2/S2 are 1536 bytes each.  C1/S1
are ``time (u32 BE) + version (4 bytes) + 1528 random bytes``.

* Simple handshake: C1's bytes 4..7 are zero, S2 is an exact echo of C1 and
  C2 an exact echo of S1.
* Complex ("digest") handshake: a 32-byte HMAC-SHA256 digest sits inside
  C1/S1 at one of two places (:func:`digest_offset`), computed over the other
  1504 bytes (:func:`make_digest`) with the first 30 bytes of
  :data:`GENUINE_FP_KEY` for C1 and the first 36 of :data:`GENUINE_FMS_KEY`
  for S1.  S2 = 1504 random bytes + :func:`response_signature` of them keyed
  by C1's digest and the full FMS key; C2 the same with S1's digest and the
  full FP key.

API
---
``ServerHandshake(*, epoch_ms=0, random=os.urandom, version=DEFAULT_SERVER_VERSION)``
    ``feed(data) -> bytes``: give it what the socket delivered, send what it
    returns.  It returns S0+S1+S2 (3073 bytes) from the call that completes
    C0+C1, ``b""`` otherwise.  Properties: ``done`` (C2 fully received),
    ``leftover`` (bytes that followed C2 in the completing ``feed()``: the
    first chunk-stream bytes, hand them to the chunk layer), ``complex``
    (C1 carried a valid digest, so S1/S2 were complex), ``schema`` (the
    schema of C1's digest, 1 or 0, or ``None``), ``peer_version`` and
    ``peer_epoch`` (C1 bytes 4..7 and 0..3 as ints, ``None`` before C1),
    ``c2_ok`` (C2 echoes S1's bytes 8..1535 or, after a complex C1, carries
    the right signature; never a reason to fail: real clients such as FFmpeg
    publishing echo S1 even after a complex C1).
    A C1 without a valid digest (schema 1 tried first, then 0) gets the
    simple answer: S1 = time + four zero bytes + random, S2 = C1 echoed.
    A complex C1 gets S1 = time + ``version`` + random with a digest at the
    client's schema, and the signed S2.

``ClientHandshake(*, complex=True, epoch_ms=0, random=os.urandom, version=DEFAULT_CLIENT_VERSION, schema=1)``
    ``start() -> bytes``: C0+C1 (1537 bytes), once.  ``feed(data) -> bytes``:
    returns C2 from the call that completes S0+S1+S2, ``b""`` otherwise.
    Properties: ``done``, ``leftover`` (bytes after S2), ``server_digest_ok``
    (S1 carried a valid FMS digest, schema 1 tried first, then 0),
    ``complex`` (our C1 was complex and S1's digest is valid, so C2 is the
    signed answer; otherwise C2 echoes S1), ``schema`` (S1's digest schema
    or ``None``), ``s2_ok`` (S2 echoes C1's bytes 8..1535 or, after our
    complex C1, carries the right signature), ``peer_version``,
    ``peer_epoch`` (of S1).  With ``complex=False`` C1's bytes 4..7 are
    zero and ``version``/``schema`` are not used.

``random(n)`` must return ``n`` bytes.  Call pattern, identical in both
twins: the server calls ``random(1528)`` for S1 and, after a complex C1,
``random(1504)`` for S2; the client calls ``random(1528)`` in ``start()``
and ``random(1504)`` when it answers a complex S1.  ``epoch_ms`` is
reduced modulo 2**32 and written big-endian into bytes 0..3 of C1/S1.

Errors: a C0/S0 other than 3 raises :class:`~rtmpx.errors.HandshakeError`
(6, RTMPE, says so), as soon as that byte arrives; the machine is then
failed and every later ``feed()`` raises ``HandshakeError`` again (so does
a machine whose ``feed()`` raised anything else while building its
answer).  Misuse (``feed()`` after ``done``, client ``feed()`` before
``start()``, a second ``start()``) raises :class:`~rtmpx.errors.RtmpError`.
Bad constructor arguments and a ``random`` that returns the wrong length
raise ``ValueError``.

Real peers (each checked by ``tests/test_handshake.py``)
--------------------------------------------------------
* FFmpeg as a client sends a complex C1 (version 0x80000702, schema 1).
  Publishing, it checks nothing and echoes S1 as C2; playing, it checks
  S1's digest and S2's signature when S1 byte 4 is >= 3 (it hangs up on a
  mismatch) and signs its C2.
* FFmpeg as a server (``-listen 1``) does the simple handshake: S1 with a
  zero version, S2 = C1 with bytes 4..7 zeroed; it requires C2 to echo
  S1's bytes 8.., which is why echoes are compared from byte 8.
* librtmp/rtmpdump sends a complex C1 only for SWF verification or RTMPE,
  else a simple one; it verifies S1 and S2 and compares a simple S2 with
  its C1 byte for byte (hence S2 is an exact echo).
* nginx-rtmp answers a complex C1 with S1 version 0d0e0a0d and a signed S2.

Memory: a machine holds at most about 3 KiB of handshake state whatever
the peer sends; ``leftover`` is at most what the completing ``feed()``
carried.  Nothing here needs a limit keyword.

Helpers
-------
:func:`digest_offset`, :func:`make_digest`, :func:`find_digest`,
:func:`imprint_digest` and :func:`response_signature` are the building
blocks, exported for tests and tools.  Blocks are 1536-byte bytes-like
objects; anything else raises ``ValueError``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from .errors import HandshakeError, RtmpError

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

#: Size of C1, S1, C2 and S2.
HANDSHAKE_SIZE = 1536
#: Size of an HMAC-SHA256 digest.
DIGEST_SIZE = 32
#: The only C0/S0 value accepted.
RTMP_VERSION = 3
#: The C0/S0 value of RTMPE (encrypted RTMP), refused with a clear message.
RTMPE_VERSION = 6

_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
#: "Genuine Adobe Flash Player 001" + 32 fixed bytes (62 bytes).
GENUINE_FP_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL
#: "Genuine Adobe Flash Media Server 001" + 32 fixed bytes (68 bytes).
GENUINE_FMS_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL
#: The C1 digest key: the text part of the FP key (30 bytes).
FP_KEY_PARTIAL = GENUINE_FP_KEY[:30]
#: The S1 digest key: the text part of the FMS key (36 bytes).
FMS_KEY_PARTIAL = GENUINE_FMS_KEY[:36]
#: C1 bytes 4..7 of a complex client: Flash Player 9.0.124.2.
DEFAULT_CLIENT_VERSION = b"\x09\x00\x7c\x02"
#: S1 bytes 4..7 of a complex server: FMS 4.5.0.1.
DEFAULT_SERVER_VERSION = b"\x04\x05\x00\x01"

_BODY_SIZE = HANDSHAKE_SIZE - DIGEST_SIZE  # 1504
_ZERO4 = b"\x00\x00\x00\x00"

# States, shared by both machines.
_NEW = 0  # client only: start() not called yet
_WANT_HELLO = 1  # waiting for C0+C1 (server) or S0+S1+S2 (client)
_WANT_C2 = 2  # server only
_DONE = 3
_FAILED = 4


def _as_block(block: bytes | bytearray | memoryview) -> bytes:
    data = bytes(memoryview(block))
    if len(data) != HANDSHAKE_SIZE:
        raise ValueError(f"a handshake block is {HANDSHAKE_SIZE} bytes, got {len(data)}")
    return data


def digest_offset(block: bytes | bytearray | memoryview, schema: int) -> int:
    """Offset of the 32-byte digest inside a 1536-byte C1/S1.

    Schema 1 (digest first): ``(b[8] + b[9] + b[10] + b[11]) % 728 + 12``.
    Schema 0 (key first): ``(b[772] + b[773] + b[774] + b[775]) % 728 + 776``.
    """
    data = _as_block(block)
    if schema == 1:
        base = 8
    elif schema == 0:
        base = 772
    else:
        raise ValueError(f"schema must be 0 or 1, got {schema!r}")
    return (data[base] + data[base + 1] + data[base + 2] + data[base + 3]) % 728 + base + 4


def make_digest(block: bytes | bytearray | memoryview, offset: int, key: bytes) -> bytes:
    """HMAC-SHA256(key, block without its 32 bytes at ``offset``)."""
    data = _as_block(block)
    if not 0 <= offset <= _BODY_SIZE:
        raise ValueError(f"digest offset must be in 0..{_BODY_SIZE}, got {offset}")
    return hmac.digest(key, data[:offset] + data[offset + DIGEST_SIZE :], "sha256")


def find_digest(block: bytes | bytearray | memoryview, key: bytes) -> int | None:
    """The schema (1 tried first, then 0) whose digest in ``block`` is valid
    under ``key``, or ``None`` if neither is."""
    data = _as_block(block)
    for schema in (1, 0):
        offset = digest_offset(data, schema)
        if make_digest(data, offset, key) == data[offset : offset + DIGEST_SIZE]:
            return schema
    return None


def imprint_digest(block: bytes | bytearray | memoryview, schema: int, key: bytes) -> bytes:
    """A copy of ``block`` with its digest for ``schema`` computed under
    ``key`` and written in place."""
    data = bytearray(_as_block(block))
    offset = digest_offset(data, schema)
    data[offset : offset + DIGEST_SIZE] = make_digest(data, offset, key)
    return bytes(data)


def response_signature(peer_digest: bytes, key: bytes, body: bytes) -> bytes:
    """The last 32 bytes of a complex S2/C2:
    ``HMAC-SHA256(HMAC-SHA256(key, peer_digest), body)``, where ``body`` is
    the first 1504 bytes of S2/C2, ``peer_digest`` the digest of the C1/S1
    being answered and ``key`` the full 68-byte FMS key (S2) or 62-byte FP
    key (C2)."""
    peer_digest = bytes(peer_digest)
    body = bytes(body)
    if len(peer_digest) != DIGEST_SIZE:
        raise ValueError(f"a digest is {DIGEST_SIZE} bytes, got {len(peer_digest)}")
    if len(body) != _BODY_SIZE:
        raise ValueError(f"a response body is {_BODY_SIZE} bytes, got {len(body)}")
    return hmac.digest(hmac.digest(key, peer_digest, "sha256"), body, "sha256")


def _epoch_field(epoch_ms: int) -> bytes:
    return (int(epoch_ms) & 0xFFFFFFFF).to_bytes(4, "big")


def _version_field(version: bytes) -> bytes:
    version = bytes(version)
    if len(version) != 4:
        raise ValueError(f"version must be 4 bytes, got {len(version)}")
    if version == _ZERO4:
        raise ValueError("version must not be all zero: peers take that as a simple handshake")
    return version


def _random_bytes(random: Callable[[int], bytes], n: int) -> bytes:
    data = bytes(random(n))
    if len(data) != n:
        raise ValueError(f"random({n}) returned {len(data)} bytes")
    return data


def _check_version_byte(value: int, what: str) -> None:
    if value == RTMP_VERSION:
        return
    if value == RTMPE_VERSION:
        raise HandshakeError(
            f"{what} asks for RTMPE (version 6, encrypted RTMP), which is not supported"
        )
    raise HandshakeError(f"{what} carries RTMP version {value}, expected 3")


def _signed_ok(block: bytes, peer_digest: bytes | None, key: bytes) -> bool:
    if peer_digest is None:
        return False
    expected = response_signature(peer_digest, key, block[:_BODY_SIZE])
    return expected == block[_BODY_SIZE:]


class ServerHandshake:
    """Server side: C0+C1 in, S0+S1+S2 out, C2 in.  See the module docstring."""

    def __init__(
        self,
        *,
        epoch_ms: int = 0,
        random: Callable[[int], bytes] = os.urandom,
        version: bytes = DEFAULT_SERVER_VERSION,
    ) -> None:
        self._epoch = _epoch_field(epoch_ms)
        self._version = _version_field(version)
        self._random = random
        self._state = _WANT_HELLO
        self._buf = bytearray()
        self._c1 = b""
        self._s1 = b""
        self._schema: int | None = None
        self._c1_digest: bytes | None = None
        self._s1_digest: bytes | None = None
        self._c2_ok = False
        self._leftover = b""

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take received bytes; return the bytes to send now (maybe ``b""``)."""
        view = memoryview(data)
        if self._state == _DONE:
            raise RtmpError("handshake already done: give further bytes to the chunk layer")
        if self._state == _FAILED:
            raise HandshakeError("the handshake already failed")
        if not view.nbytes:
            return b""
        buf = self._buf
        buf += view
        out = b""
        if self._state == _WANT_HELLO:
            if buf[0] != RTMP_VERSION:
                self._state = _FAILED
                _check_version_byte(buf[0], "C0")
            if len(buf) < 1 + HANDSHAKE_SIZE:
                return b""
            c1 = bytes(buf[1 : 1 + HANDSHAKE_SIZE])
            del buf[: 1 + HANDSHAKE_SIZE]
            self._state = _FAILED  # stays failed if building the answer raises
            out = self._answer(c1)
            self._state = _WANT_C2
        if len(buf) < HANDSHAKE_SIZE:
            return out
        c2 = bytes(buf[:HANDSHAKE_SIZE])
        self._leftover = bytes(buf[HANDSHAKE_SIZE:])
        buf.clear()
        self._c2_ok = c2[8:] == self._s1[8:] or _signed_ok(c2, self._s1_digest, GENUINE_FP_KEY)
        self._state = _DONE
        return out

    def _answer(self, c1: bytes) -> bytes:
        self._c1 = c1
        schema = find_digest(c1, FP_KEY_PARTIAL)
        if schema is None:
            s1 = self._epoch + _ZERO4 + _random_bytes(self._random, HANDSHAKE_SIZE - 8)
            s2 = c1
        else:
            self._schema = schema
            offset = digest_offset(c1, schema)
            self._c1_digest = c1[offset : offset + DIGEST_SIZE]
            s1 = self._epoch + self._version + _random_bytes(self._random, HANDSHAKE_SIZE - 8)
            s1 = imprint_digest(s1, schema, FMS_KEY_PARTIAL)
            offset = digest_offset(s1, schema)
            self._s1_digest = s1[offset : offset + DIGEST_SIZE]
            body = _random_bytes(self._random, _BODY_SIZE)
            s2 = body + response_signature(self._c1_digest, GENUINE_FMS_KEY, body)
        self._s1 = s1
        return bytes([RTMP_VERSION]) + s1 + s2

    @property
    def done(self) -> bool:
        """True once C2 has been fully received."""
        return self._state == _DONE

    @property
    def leftover(self) -> bytes:
        """Bytes that followed C2 in the feed that completed it."""
        return self._leftover

    @property
    def complex(self) -> bool:
        """True if C1 carried a valid digest (so S1/S2 were complex)."""
        return self._schema is not None

    @property
    def schema(self) -> int | None:
        """Schema of C1's digest (1 or 0), or None."""
        return self._schema

    @property
    def peer_version(self) -> int | None:
        """C1 bytes 4..7 as a big-endian int, None before C1."""
        return int.from_bytes(self._c1[4:8], "big") if self._c1 else None

    @property
    def peer_epoch(self) -> int | None:
        """C1 bytes 0..3 as a big-endian int, None before C1."""
        return int.from_bytes(self._c1[0:4], "big") if self._c1 else None

    @property
    def c2_ok(self) -> bool:
        """True if C2 echoed S1 (bytes 8..) or carried the right signature."""
        return self._c2_ok


class ClientHandshake:
    """Client side: C0+C1 out, S0+S1+S2 in, C2 out.  See the module docstring."""

    def __init__(
        self,
        *,
        complex: bool = True,
        epoch_ms: int = 0,
        random: Callable[[int], bytes] = os.urandom,
        version: bytes = DEFAULT_CLIENT_VERSION,
        schema: int = 1,
    ) -> None:
        if schema not in (0, 1):
            raise ValueError(f"schema must be 0 or 1, got {schema!r}")
        self._c1_complex = bool(complex)
        self._epoch = _epoch_field(epoch_ms)
        self._version = _version_field(version) if self._c1_complex else _ZERO4
        self._c1_schema = schema
        self._random = random
        self._state = _NEW
        self._buf = bytearray()
        self._c1 = b""
        self._s1 = b""
        self._c1_digest: bytes | None = None
        self._schema: int | None = None
        self._s2_ok = False
        self._leftover = b""

    def start(self) -> bytes:
        """Return C0+C1 (1537 bytes).  Call once, before ``feed()``."""
        if self._state != _NEW:
            raise RtmpError("start() was already called")
        c1 = self._epoch + self._version + _random_bytes(self._random, HANDSHAKE_SIZE - 8)
        if self._c1_complex:
            c1 = imprint_digest(c1, self._c1_schema, FP_KEY_PARTIAL)
            offset = digest_offset(c1, self._c1_schema)
            self._c1_digest = c1[offset : offset + DIGEST_SIZE]
        self._c1 = c1
        self._state = _WANT_HELLO
        return bytes([RTMP_VERSION]) + c1

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take received bytes; return the bytes to send now (maybe ``b""``)."""
        view = memoryview(data)
        if self._state == _NEW:
            raise RtmpError("call start() before feed()")
        if self._state == _DONE:
            raise RtmpError("handshake already done: give further bytes to the chunk layer")
        if self._state == _FAILED:
            raise HandshakeError("the handshake already failed")
        if not view.nbytes:
            return b""
        buf = self._buf
        buf += view
        if buf[0] != RTMP_VERSION:
            self._state = _FAILED
            _check_version_byte(buf[0], "S0")
        if len(buf) < 1 + 2 * HANDSHAKE_SIZE:
            return b""
        s1 = bytes(buf[1 : 1 + HANDSHAKE_SIZE])
        s2 = bytes(buf[1 + HANDSHAKE_SIZE : 1 + 2 * HANDSHAKE_SIZE])
        self._leftover = bytes(buf[1 + 2 * HANDSHAKE_SIZE :])
        buf.clear()
        self._state = _FAILED  # stays failed if building C2 raises
        self._s1 = s1
        self._schema = find_digest(s1, FMS_KEY_PARTIAL)
        self._s2_ok = s2[8:] == self._c1[8:] or _signed_ok(s2, self._c1_digest, GENUINE_FMS_KEY)
        if self.complex:
            assert self._schema is not None
            offset = digest_offset(s1, self._schema)
            body = _random_bytes(self._random, _BODY_SIZE)
            c2 = body + response_signature(s1[offset : offset + DIGEST_SIZE], GENUINE_FP_KEY, body)
        else:
            c2 = s1
        self._state = _DONE
        return c2

    @property
    def done(self) -> bool:
        """True once S0+S1+S2 have been received (C2 was returned)."""
        return self._state == _DONE

    @property
    def leftover(self) -> bytes:
        """Bytes that followed S2 in the feed that completed it."""
        return self._leftover

    @property
    def server_digest_ok(self) -> bool:
        """True if S1 carried a valid FMS digest (schema 1 or 0)."""
        return self._schema is not None

    @property
    def complex(self) -> bool:
        """True if our C1 was complex and S1's digest is valid (C2 signed)."""
        return self._c1_complex and self._schema is not None

    @property
    def schema(self) -> int | None:
        """Schema of S1's digest (1 or 0), or None."""
        return self._schema

    @property
    def s2_ok(self) -> bool:
        """True if S2 echoed C1 (bytes 8..) or carried the right signature."""
        return self._s2_ok

    @property
    def peer_version(self) -> int | None:
        """S1 bytes 4..7 as a big-endian int, None before S1."""
        return int.from_bytes(self._s1[4:8], "big") if self._s1 else None

    @property
    def peer_epoch(self) -> int | None:
        """S1 bytes 0..3 as a big-endian int, None before S1."""
        return int.from_bytes(self._s1[0:4], "big") if self._s1 else None
