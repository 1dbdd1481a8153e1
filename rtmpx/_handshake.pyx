# cython: language_level=3
"""The RTMP handshake as sans-I/O state machines: the compiled core.

Same API and same output bytes as the pure-Python twin
:mod:`rtmpx._handshake_py` (the test oracle and benchmark baseline); the
full description of the API, the wire format and the errors is in that
module's docstring and in ``_handshake.pyi``.  In short:

``ServerHandshake(*, epoch_ms=0, random=os.urandom, version=DEFAULT_SERVER_VERSION)``
    ``feed(data) -> bytes`` (S0+S1+S2 from the call that completes C0+C1,
    else ``b""``); properties ``done``, ``leftover``, ``complex``,
    ``schema``, ``peer_version``, ``peer_epoch``, ``c2_ok``.

``ClientHandshake(*, complex=True, epoch_ms=0, random=os.urandom, version=DEFAULT_CLIENT_VERSION, schema=1)``
    ``start() -> bytes`` (C0+C1), ``feed(data) -> bytes`` (C2 from the call
    that completes S0+S1+S2, else ``b""``); properties ``done``,
    ``leftover``, ``complex``, ``server_digest_ok``, ``schema``, ``s2_ok``,
    ``peer_version``, ``peer_epoch``.

Helpers: ``digest_offset(block, schema)``, ``make_digest(block, offset,
key)``, ``find_digest(block, key)``, ``imprint_digest(block, schema, key)``,
``response_signature(peer_digest, key, body)``.

No I/O and no clock: bytes and ``epoch_ms`` go in, bytes come out.
SHA-256 is OpenSSL's, through :func:`hmac.digest`; this module does the
offset arithmetic, the buffer assembly (one ``bytes`` object per message)
and the state handling on raw ``const unsigned char*`` with explicit length
checks.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcmp, memcpy

import hmac as _hmac
import os as _os

from .errors import HandshakeError, RtmpError

__all__ = [
    "HANDSHAKE_SIZE",
    "DIGEST_SIZE",
    "RTMP_VERSION",
    "RTMPE_VERSION",
    "GENUINE_FP_KEY",
    "GENUINE_FMS_KEY",
    "FP_KEY_PARTIAL",
    "FMS_KEY_PARTIAL",
    "DEFAULT_CLIENT_VERSION",
    "DEFAULT_SERVER_VERSION",
    "digest_offset",
    "make_digest",
    "find_digest",
    "imprint_digest",
    "response_signature",
    "ServerHandshake",
    "ClientHandshake",
]

cdef enum:
    HS_SIZE = 1536        # C1/S1/C2/S2
    DG_SIZE = 32          # HMAC-SHA256
    BODY_SIZE = 1504      # HS_SIZE - DG_SIZE
    RAND_SIZE = 1528      # HS_SIZE - 8
    HELLO_SIZE = 1537     # C0 + C1
    SERVER_HELLO = 3073   # S0 + S1 + S2

# States (the same numbers as in the pure twin).
cdef enum:
    ST_NEW = 0
    ST_WANT_HELLO = 1
    ST_WANT_C2 = 2
    ST_DONE = 3
    ST_FAILED = 4

HANDSHAKE_SIZE = HS_SIZE
DIGEST_SIZE = DG_SIZE
RTMP_VERSION = 3
RTMPE_VERSION = 6

_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
GENUINE_FP_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL
GENUINE_FMS_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL
FP_KEY_PARTIAL = GENUINE_FP_KEY[:30]
FMS_KEY_PARTIAL = GENUINE_FMS_KEY[:36]
DEFAULT_CLIENT_VERSION = b"\x09\x00\x7c\x02"
DEFAULT_SERVER_VERSION = b"\x04\x05\x00\x01"

cdef bytes _FP_FULL = GENUINE_FP_KEY
cdef bytes _FMS_FULL = GENUINE_FMS_KEY
cdef bytes _FP_PART = FP_KEY_PARTIAL
cdef bytes _FMS_PART = FMS_KEY_PARTIAL
cdef object _hmac_digest = _hmac.digest
cdef str _SHA256 = "sha256"


# ---------------------------------------------------------------- primitives

cdef inline Py_ssize_t _offset(const unsigned char* block, int schema) noexcept nogil:
    # Leaf: the caller guarantees HS_SIZE readable bytes and schema in {0, 1}.
    cdef Py_ssize_t base = 8 if schema == 1 else 772
    return (<Py_ssize_t>block[base] + block[base + 1] + block[base + 2]
            + block[base + 3]) % 728 + base + 4


cdef int _copy_digest(object digest, unsigned char* dst) except -1:
    # Copy a 32-byte digest returned by hmac into dst, checking its length.
    cdef const unsigned char[::1] view = digest
    if view.shape[0] != DG_SIZE:
        raise ValueError(f"expected a {DG_SIZE}-byte digest, got {view.shape[0]}")
    memcpy(dst, &view[0], DG_SIZE)
    return 0


cdef bytes _hmac_cut(bytes key, const unsigned char* block, Py_ssize_t off):
    # HMAC-SHA256(key, block[0:off] + block[off+32:1536]); off in 0..1504.
    cdef bytes msg = PyBytes_FromStringAndSize(NULL, BODY_SIZE)
    cdef char* p = PyBytes_AS_STRING(msg)
    memcpy(p, block, off)
    memcpy(p + off, block + off + DG_SIZE, BODY_SIZE - off)
    return _hmac_digest(key, msg, _SHA256)


cdef int _find_schema(bytes key, const unsigned char* block) except -2:
    # 1 or 0: the schema whose digest validates (1 tried first), -1: none.
    cdef int schema
    cdef Py_ssize_t off
    cdef unsigned char digest[DG_SIZE]
    cdef int i
    for i in range(2):
        schema = 1 - i  # 1 first, then 0
        off = _offset(block, schema)
        _copy_digest(_hmac_cut(key, block, off), digest)
        if memcmp(digest, block + off, DG_SIZE) == 0:
            return schema
    return -1


cdef Py_ssize_t _imprint(bytes key, unsigned char* block, int schema) except -1:
    # Write block's digest for schema in place; return its offset.
    cdef Py_ssize_t off = _offset(block, schema)
    _copy_digest(_hmac_cut(key, block, off), block + off)
    return off


cdef bytes _signature(bytes key, const unsigned char* peer_digest, object body):
    # HMAC-SHA256(HMAC-SHA256(key, peer_digest), body)
    cdef bytes temp = _hmac_digest(
        key, PyBytes_FromStringAndSize(<const char*>peer_digest, DG_SIZE), _SHA256)
    return _hmac_digest(temp, body, _SHA256)


cdef bint _signed_ok(bytes key, const unsigned char* peer_digest,
                     const unsigned char* block) except -1:
    # Does block (HS_SIZE bytes) end with the signature of its first 1504?
    cdef unsigned char sig[DG_SIZE]
    _copy_digest(
        _signature(key, peer_digest, PyBytes_FromStringAndSize(<const char*>block, BODY_SIZE)),
        sig)
    return memcmp(sig, block + BODY_SIZE, DG_SIZE) == 0


cdef inline void _put_u32(unsigned char* p, unsigned long v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline unsigned long _get_u32(const unsigned char* p) noexcept nogil:
    return ((<unsigned long>p[0] << 24) | (<unsigned long>p[1] << 16)
            | (<unsigned long>p[2] << 8) | p[3])


cdef int _fill_random(object random, Py_ssize_t n, unsigned char* dst) except -1:
    # dst[0:n] = random(n), checking the length.
    cdef const unsigned char[::1] view = random(n)
    if view.shape[0] != n:
        raise ValueError(f"random({n}) returned {view.shape[0]} bytes")
    memcpy(dst, &view[0], n)
    return 0


cdef int _check_version_byte(unsigned char value, str what) except -1:
    if value == 3:
        return 0
    if value == 6:
        raise HandshakeError(
            f"{what} asks for RTMPE (version 6, encrypted RTMP), which is not supported")
    raise HandshakeError(f"{what} carries RTMP version {value}, expected 3")


cdef unsigned long _epoch_value(object epoch_ms) except? 0xFFFFFFFF:
    return <unsigned long>(int(epoch_ms) & 0xFFFFFFFF)


cdef int _version_bytes(object version, unsigned char* dst) except -1:
    cdef const unsigned char[::1] view = bytes(version)
    if view.shape[0] != 4:
        raise ValueError(f"version must be 4 bytes, got {view.shape[0]}")
    if view[0] == 0 and view[1] == 0 and view[2] == 0 and view[3] == 0:
        raise ValueError("version must not be all zero: peers take that as a simple handshake")
    memcpy(dst, &view[0], 4)
    return 0


cdef const unsigned char* _block_ptr(const unsigned char[::1] view) except NULL:
    if view.shape[0] != HS_SIZE:
        raise ValueError(f"a handshake block is {HS_SIZE} bytes, got {view.shape[0]}")
    return &view[0]


# ------------------------------------------------------------ public helpers

def digest_offset(block, int schema):
    """Offset of the 32-byte digest inside a 1536-byte C1/S1.

    Schema 1 (digest first): ``(b[8] + b[9] + b[10] + b[11]) % 728 + 12``.
    Schema 0 (key first): ``(b[772] + b[773] + b[774] + b[775]) % 728 + 776``.
    """
    cdef const unsigned char[::1] view = bytes(block)
    cdef const unsigned char* p = _block_ptr(view)
    if schema != 0 and schema != 1:
        raise ValueError(f"schema must be 0 or 1, got {schema!r}")
    return _offset(p, schema)


def make_digest(block, Py_ssize_t offset, key):
    """HMAC-SHA256(key, block without its 32 bytes at ``offset``)."""
    cdef const unsigned char[::1] view = bytes(block)
    cdef const unsigned char* p = _block_ptr(view)
    if offset < 0 or offset > BODY_SIZE:
        raise ValueError(f"digest offset must be in 0..{BODY_SIZE}, got {offset}")
    return _hmac_cut(bytes(key), p, offset)


def find_digest(block, key):
    """The schema (1 tried first, then 0) whose digest in ``block`` is valid
    under ``key``, or ``None``."""
    cdef const unsigned char[::1] view = bytes(block)
    cdef int schema = _find_schema(bytes(key), _block_ptr(view))
    return None if schema < 0 else schema


def imprint_digest(block, int schema, key):
    """A copy of ``block`` with its digest for ``schema`` under ``key``
    written in place."""
    cdef bytes src = bytes(block)
    cdef const unsigned char[::1] view = src
    _block_ptr(view)
    if schema != 0 and schema != 1:
        raise ValueError(f"schema must be 0 or 1, got {schema!r}")
    cdef bytes out = PyBytes_FromStringAndSize(<const char*>&view[0], HS_SIZE)
    _imprint(bytes(key), <unsigned char*>PyBytes_AS_STRING(out), schema)
    return out


def response_signature(peer_digest, key, body):
    """``HMAC-SHA256(HMAC-SHA256(key, peer_digest), body)``: the last 32
    bytes of a complex S2 (full FMS key, C1's digest) or C2 (full FP key,
    S1's digest); ``body`` is the first 1504 bytes."""
    cdef bytes d = bytes(peer_digest)
    cdef bytes b = bytes(body)
    if len(d) != DG_SIZE:
        raise ValueError(f"a digest is {DG_SIZE} bytes, got {len(d)}")
    if len(b) != BODY_SIZE:
        raise ValueError(f"a response body is {BODY_SIZE} bytes, got {len(b)}")
    return _signature(bytes(key), <const unsigned char*>PyBytes_AS_STRING(d), b)


# ------------------------------------------------------------------ machines

@cython.final
@cython.auto_pickle(False)
cdef class ServerHandshake:
    """Server side: C0+C1 in, S0+S1+S2 out, C2 in.  See the module docstring."""

    cdef int _state
    cdef Py_ssize_t _have          # bytes of the current block received
    cdef int _schema               # -1: simple
    cdef bint _c2_ok
    cdef bint _c1_done
    cdef unsigned long _epoch
    cdef object _random
    cdef bytes _leftover
    cdef unsigned char _version[4]
    cdef unsigned char _c1[HS_SIZE]
    cdef unsigned char _s1[HS_SIZE]
    cdef unsigned char _c2[HS_SIZE]
    cdef Py_ssize_t _s1_off        # offset of S1's digest (complex only)

    def __init__(self, *, epoch_ms=0, random=_os.urandom, version=DEFAULT_SERVER_VERSION):
        self._epoch = _epoch_value(epoch_ms)
        _version_bytes(version, self._version)
        self._random = random
        self._state = ST_WANT_HELLO
        self._have = -1            # -1: C0 not seen yet
        self._schema = -1
        self._c2_ok = False
        self._c1_done = False
        self._leftover = b""
        self._s1_off = 0

    def feed(self, const unsigned char[::1] data not None):
        """Take received bytes; return the bytes to send now (maybe ``b""``)."""
        cdef Py_ssize_t n = data.shape[0]
        cdef Py_ssize_t take
        cdef const unsigned char* p
        cdef bytes out = b""
        if self._state == ST_DONE:
            raise RtmpError("handshake already done: give further bytes to the chunk layer")
        if self._state == ST_FAILED:
            raise HandshakeError("the handshake already failed")
        if n == 0:
            return out
        p = &data[0]
        if self._state == ST_WANT_HELLO:
            if self._have < 0:
                if p[0] != 3:
                    self._state = ST_FAILED
                    _check_version_byte(p[0], "C0")
                p += 1
                n -= 1
                self._have = 0
            take = HS_SIZE - self._have
            if n < take:
                take = n
            memcpy(self._c1 + self._have, p, take)
            self._have += take
            p += take
            n -= take
            if self._have < HS_SIZE:
                return out
            self._state = ST_FAILED  # stays failed if building the answer raises
            out = self._answer()
            self._state = ST_WANT_C2
            self._have = 0
        # ST_WANT_C2
        take = HS_SIZE - self._have
        if n < take:
            take = n
        memcpy(self._c2 + self._have, p, take)
        self._have += take
        p += take
        n -= take
        if self._have < HS_SIZE:
            return out
        self._leftover = PyBytes_FromStringAndSize(<const char*>p, n)
        self._c2_ok = memcmp(self._c2 + 8, self._s1 + 8, HS_SIZE - 8) == 0
        if not self._c2_ok and self._schema >= 0:
            self._c2_ok = _signed_ok(_FP_FULL, self._s1 + self._s1_off, self._c2)
        self._state = ST_DONE
        return out

    cdef bytes _answer(self):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, SERVER_HELLO)
        cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
        cdef unsigned char* s1 = self._s1
        cdef Py_ssize_t c1_off
        cdef object body
        self._c1_done = True
        o[0] = 3
        self._schema = _find_schema(_FP_PART, self._c1)
        _put_u32(s1, self._epoch)
        if self._schema < 0:
            s1[4] = 0
            s1[5] = 0
            s1[6] = 0
            s1[7] = 0
            _fill_random(self._random, RAND_SIZE, s1 + 8)
            memcpy(o + 1, s1, HS_SIZE)
            memcpy(o + 1 + HS_SIZE, self._c1, HS_SIZE)
            return out
        memcpy(s1 + 4, self._version, 4)
        _fill_random(self._random, RAND_SIZE, s1 + 8)
        self._s1_off = _imprint(_FMS_PART, s1, self._schema)
        memcpy(o + 1, s1, HS_SIZE)
        _fill_random(self._random, BODY_SIZE, o + 1 + HS_SIZE)
        body = PyBytes_FromStringAndSize(<const char*>(o + 1 + HS_SIZE), BODY_SIZE)
        c1_off = _offset(self._c1, self._schema)
        _copy_digest(_signature(_FMS_FULL, self._c1 + c1_off, body), o + 1 + HS_SIZE + BODY_SIZE)
        return out

    @property
    def done(self):
        """True once C2 has been fully received."""
        return self._state == ST_DONE

    @property
    def leftover(self):
        """Bytes that followed C2 in the feed that completed it."""
        return self._leftover

    @property
    def complex(self):
        """True if C1 carried a valid digest (so S1/S2 were complex)."""
        return self._schema >= 0

    @property
    def schema(self):
        """Schema of C1's digest (1 or 0), or None."""
        return None if self._schema < 0 else self._schema

    @property
    def peer_version(self):
        """C1 bytes 4..7 as a big-endian int, None before C1."""
        return _get_u32(self._c1 + 4) if self._c1_done else None

    @property
    def peer_epoch(self):
        """C1 bytes 0..3 as a big-endian int, None before C1."""
        return _get_u32(self._c1) if self._c1_done else None

    @property
    def c2_ok(self):
        """True if C2 echoed S1 (bytes 8..) or carried the right signature."""
        return self._c2_ok


@cython.final
@cython.auto_pickle(False)
cdef class ClientHandshake:
    """Client side: C0+C1 out, S0+S1+S2 in, C2 out.  See the module docstring."""

    cdef int _state
    cdef Py_ssize_t _have          # -1: S0 not seen; else bytes of S1+S2 received
    cdef int _schema               # S1's digest schema, -1: none
    cdef int _c1_schema
    cdef bint _c1_complex
    cdef bint _s2_ok
    cdef unsigned long _epoch
    cdef object _random
    cdef bytes _leftover
    cdef unsigned char _version[4]
    cdef unsigned char _c1[HS_SIZE]
    cdef unsigned char _in[2 * HS_SIZE]   # S1 + S2
    cdef Py_ssize_t _c1_off

    def __init__(self, *, complex=True, epoch_ms=0, random=_os.urandom,
                 version=DEFAULT_CLIENT_VERSION, schema=1):
        if schema != 0 and schema != 1:
            raise ValueError(f"schema must be 0 or 1, got {schema!r}")
        self._c1_complex = bool(complex)
        self._epoch = _epoch_value(epoch_ms)
        if self._c1_complex:
            _version_bytes(version, self._version)
        else:
            self._version[0] = 0
            self._version[1] = 0
            self._version[2] = 0
            self._version[3] = 0
        self._c1_schema = schema
        self._random = random
        self._state = ST_NEW
        self._have = -1
        self._schema = -1
        self._s2_ok = False
        self._leftover = b""
        self._c1_off = 0

    def start(self):
        """Return C0+C1 (1537 bytes).  Call once, before ``feed()``."""
        if self._state != ST_NEW:
            raise RtmpError("start() was already called")
        _put_u32(self._c1, self._epoch)
        memcpy(self._c1 + 4, self._version, 4)
        _fill_random(self._random, RAND_SIZE, self._c1 + 8)
        if self._c1_complex:
            self._c1_off = _imprint(_FP_PART, self._c1, self._c1_schema)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, HELLO_SIZE)
        cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
        o[0] = 3
        memcpy(o + 1, self._c1, HS_SIZE)
        self._state = ST_WANT_HELLO
        return out

    def feed(self, const unsigned char[::1] data not None):
        """Take received bytes; return the bytes to send now (maybe ``b""``)."""
        cdef Py_ssize_t n = data.shape[0]
        cdef Py_ssize_t take
        cdef const unsigned char* p
        cdef const unsigned char* s1 = self._in
        cdef const unsigned char* s2 = self._in + HS_SIZE
        cdef bytes c2
        cdef bytes body
        if self._state == ST_NEW:
            raise RtmpError("call start() before feed()")
        if self._state == ST_DONE:
            raise RtmpError("handshake already done: give further bytes to the chunk layer")
        if self._state == ST_FAILED:
            raise HandshakeError("the handshake already failed")
        if n == 0:
            return b""
        p = &data[0]
        if self._have < 0:
            if p[0] != 3:
                self._state = ST_FAILED
                _check_version_byte(p[0], "S0")
            p += 1
            n -= 1
            self._have = 0
        take = 2 * HS_SIZE - self._have
        if n < take:
            take = n
        memcpy(self._in + self._have, p, take)
        self._have += take
        p += take
        n -= take
        if self._have < 2 * HS_SIZE:
            return b""
        self._leftover = PyBytes_FromStringAndSize(<const char*>p, n)
        self._state = ST_FAILED  # stays failed if building C2 raises
        self._schema = _find_schema(_FMS_PART, s1)
        self._s2_ok = memcmp(s2 + 8, self._c1 + 8, HS_SIZE - 8) == 0
        if not self._s2_ok and self._c1_complex:
            self._s2_ok = _signed_ok(_FMS_FULL, self._c1 + self._c1_off, s2)
        if self._c1_complex and self._schema >= 0:
            c2 = PyBytes_FromStringAndSize(NULL, HS_SIZE)
            _fill_random(self._random, BODY_SIZE, <unsigned char*>PyBytes_AS_STRING(c2))
            body = PyBytes_FromStringAndSize(PyBytes_AS_STRING(c2), BODY_SIZE)
            _copy_digest(
                _signature(_FP_FULL, s1 + _offset(s1, self._schema), body),
                <unsigned char*>PyBytes_AS_STRING(c2) + BODY_SIZE)
        else:
            c2 = PyBytes_FromStringAndSize(<const char*>s1, HS_SIZE)
        self._state = ST_DONE
        return c2

    @property
    def done(self):
        """True once S0+S1+S2 have been received (C2 was returned)."""
        return self._state == ST_DONE

    @property
    def leftover(self):
        """Bytes that followed S2 in the feed that completed it."""
        return self._leftover

    @property
    def server_digest_ok(self):
        """True if S1 carried a valid FMS digest (schema 1 or 0)."""
        return self._schema >= 0

    @property
    def complex(self):
        """True if our C1 was complex and S1's digest is valid (C2 signed)."""
        return self._c1_complex and self._schema >= 0

    @property
    def schema(self):
        """Schema of S1's digest (1 or 0), or None."""
        return None if self._schema < 0 else self._schema

    @property
    def s2_ok(self):
        """True if S2 echoed C1 (bytes 8..) or carried the right signature."""
        return self._s2_ok

    @property
    def peer_version(self):
        """S1 bytes 4..7 as a big-endian int, None before S1."""
        return _get_u32(self._in + 4) if self._state == ST_DONE else None

    @property
    def peer_epoch(self):
        """S1 bytes 0..3 as a big-endian int, None before S1."""
        return _get_u32(self._in) if self._state == ST_DONE else None
