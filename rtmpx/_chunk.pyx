# cython: language_level=3
"""Compiled RTMP chunk stream codec.

The compiled twin of :mod:`rtmpx._chunk_py` (same API, same bytes, same
messages; that module's docstring states the wire rules).

* :class:`Message` - one RTMP message.
* :class:`ChunkReader` - bytes in, completed messages out, any split.
* :class:`ChunkWriter` - message in, chunked bytes out.

Implementation notes: the reader keeps its per-chunk-stream state in a C
array of structs, reads the fed buffer through a ``const unsigned char*``
with a length check before every read, and reassembles each message in a
single ``bytes`` object that grows (geometrically, capped at the declared
length, and never beyond the bytes actually at hand) as chunks arrive, and
is handed out as the payload without another copy.  A message that arrives
whole in one chunk is copied once, straight from the input.  Partial-message
capacity is at most twice the bytes received, or the bytes received plus the
rest of the current input, whichever is larger.

Cython does not bounds-check raw-pointer indexing, so the per-function
``boundscheck``/``wraparound`` decorators mark the functions whose reads are
guarded by explicit length checks; those checks are what keep every read in
bounds (the test suite also passes under AddressSanitizer/UBSan).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from rtmpx.errors import ProtocolError

__all__ = ["Message", "ChunkReader", "ChunkWriter", "default_csid"]


cdef extern from "Python.h":
    # Raw-pointer forms, so that a partial message's buffer can live in a C struct.
    PyObject* _new_bytes "PyBytes_FromStringAndSize"(const char* s, Py_ssize_t n) except NULL
    char* _bytes_data "PyBytes_AS_STRING"(PyObject* o) noexcept
    int _PyBytes_Resize(PyObject** o, Py_ssize_t n) except -1


cdef enum:
    EXTENDED = 0xFFFFFF       # 3-byte timestamp field announcing an extended timestamp
    MAX_HEADER = 18           # 3-byte basic + 11-byte fmt 0 header + 4-byte extended timestamp
    MAX_LENGTH = 0xFFFFFF     # message length is a 24-bit field
    MAX_CHUNK_SIZE = 0x7FFFFFFF
    MIN_CSID = 2
    MAX_CSID = 65599
    TYPE_SET_CHUNK_SIZE = 1
    TYPE_ABORT = 2
    TYPE_AGGREGATE = 22
    AGGREGATE_PART = 15       # the smallest part of an aggregate: 11-byte header, 4-byte back pointer


cpdef int default_csid(int type_id) noexcept:
    """The chunk stream id the writer uses for a message of ``type_id``."""
    if 1 <= type_id <= 6:
        return 2
    if type_id == 8:
        return 4
    if type_id == 18 or type_id == 15:
        return 5
    if type_id == 9:
        return 6
    return 3  # commands (20, 17) and everything else


cdef int _check_int(str name, object value, object low, object high) except -1:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")
    return 0


cdef inline uint32_t _be24(const uint8_t* p) noexcept:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | p[2]


cdef inline uint32_t _be32(const uint8_t* p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint32_t _le32(const uint8_t* p) noexcept:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


@cython.final
@cython.freelist(256)
cdef class Message:
    """One RTMP message.  Immutable; compares equal on all five fields.

    ``csid`` is the chunk stream id: the reader sets it on what it returns;
    ``None`` lets the writer pick one from ``type_id``.
    """

    cdef readonly int type_id
    cdef readonly bytes payload
    cdef readonly uint32_t timestamp
    cdef readonly uint32_t stream_id
    cdef int _csid  # -1: None

    def __init__(self, type_id, payload, timestamp=0, stream_id=0, csid=None):
        _check_int("type_id", type_id, 0, 255)
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        _check_int("timestamp", timestamp, 0, 0xFFFFFFFF)
        _check_int("stream_id", stream_id, 0, 0xFFFFFFFF)
        if csid is not None:
            _check_int("csid", csid, MIN_CSID, MAX_CSID)
        self.type_id = type_id
        self.payload = payload
        self.timestamp = timestamp
        self.stream_id = stream_id
        self._csid = -1 if csid is None else csid

    @property
    def csid(self):
        """The chunk stream id, or None (the writer then picks one)."""
        return None if self._csid < 0 else self._csid

    def __eq__(self, other):
        cdef Message o
        if not isinstance(other, Message):
            return NotImplemented
        o = <Message>other
        return (self.type_id == o.type_id and self.timestamp == o.timestamp
                and self.stream_id == o.stream_id and self._csid == o._csid
                and self.payload == o.payload)

    def __hash__(self):
        return hash((self.type_id, self.payload, self.timestamp, self.stream_id, self.csid))

    def __repr__(self):
        payload = self.payload
        shown = repr(payload[:16]) + ("..." if len(payload) > 16 else "")
        return (
            f"Message(type_id={self.type_id}, payload=<{len(payload)} bytes {shown}>, "
            f"timestamp={self.timestamp}, stream_id={self.stream_id}, csid={self.csid})"
        )

    def __reduce__(self):
        return (Message, (self.type_id, self.payload, self.timestamp, self.stream_id, self.csid))


# ---------------------------------------------------------------- reader

ctypedef struct InStream:
    uint32_t csid
    uint32_t timestamp   # timestamp of the latest message begun here
    uint32_t delta       # what a fmt 3 chunk starting a new message adds
    uint32_t ext_value   # value of the latest extended timestamp (if ext)
    uint32_t length
    uint32_t stream_id
    uint32_t filled      # payload bytes received of the active message
    int type_id
    bint ext             # the latest fmt 0/1/2 header had an extended timestamp
    bint active          # a message is incomplete here
    PyObject* buf        # owned bytes object of capacity cap, or NULL
    Py_ssize_t cap


@cython.final
cdef class ChunkReader:
    """Reassembles RTMP messages from the chunk stream.

    Security settings (each violation raises ProtocolError):

    * ``max_message_size``: largest message length a header may declare;
    * ``max_chunk_streams``: most distinct chunk stream ids;
    * ``max_buffered``: most bytes of incomplete messages held at once.

    ``max_messages`` (0: no bound) is the most messages one :meth:`feed`
    returns (an aggregate counts as the messages it may carry, one per 15
    bytes: a part's header and back pointer; a caller reads what is
    pending, with ``feed(b"")``, before it feeds more): the rest of its input waits (:attr:`pending`) for the next
    feed, ``feed(b"")`` included, so that a caller can bound its work per
    call whatever the input packs (one-byte messages).
    """

    cdef InStream* _streams
    cdef Py_ssize_t _nstreams
    cdef Py_ssize_t _capstreams
    cdef Py_ssize_t _last          # index of the last chunk stream looked up
    cdef Py_ssize_t _cur           # index whose chunk payload is being read, -1 between chunks
    cdef uint32_t _chunk_left      # payload bytes still to come in the current chunk
    cdef uint32_t _chunk_size
    cdef uint8_t _hbuf[MAX_HEADER] # an incomplete chunk header carried to the next feed
    cdef Py_ssize_t _hlen
    cdef uint64_t _received
    cdef long long _buffered
    cdef long long _max_buffered
    cdef long long _max_message_size
    cdef Py_ssize_t _max_chunk_streams
    cdef Py_ssize_t _max_messages  # 0: unbounded
    cdef Py_ssize_t _taken         # messages the current feed returned (aggregates weigh more)
    cdef bytes _rest               # input a bounded feed left for the next one...
    cdef Py_ssize_t _rest_at       # ...from this offset (no copy per batch)
    cdef bint _failed

    def __cinit__(self):
        self._streams = NULL
        self._nstreams = 0
        self._capstreams = 0
        self._last = 0
        self._cur = -1
        self._chunk_size = 128
        self._hlen = 0

    def __init__(self, *, max_message_size=8 * 1024 * 1024, max_chunk_streams=64,
                 max_buffered=16 * 1024 * 1024, max_messages=0):
        _check_int("max_message_size", max_message_size, 0, 2**62)
        _check_int("max_chunk_streams", max_chunk_streams, 1, 2**62)
        _check_int("max_buffered", max_buffered, 0, 2**62)
        _check_int("max_messages", max_messages, 0, 2**31)
        self._max_message_size = max_message_size
        self._max_chunk_streams = max_chunk_streams
        self._max_buffered = max_buffered
        self._max_messages = max_messages

    def set_limits(self, *, max_message_size=None, max_chunk_streams=None, max_buffered=None):
        """Change limits (those given); they apply to what comes next.

        A server keeps small limits until a peer's connect is accepted,
        then raises them."""
        if max_message_size is not None:
            _check_int("max_message_size", max_message_size, 0, 2**62)
        if max_chunk_streams is not None:
            _check_int("max_chunk_streams", max_chunk_streams, 1, 2**62)
        if max_buffered is not None:
            _check_int("max_buffered", max_buffered, 0, 2**62)
        if max_message_size is not None:
            self._max_message_size = max_message_size
        if max_chunk_streams is not None:
            self._max_chunk_streams = max_chunk_streams
        if max_buffered is not None:
            self._max_buffered = max_buffered

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._streams != NULL:
            for i in range(self._nstreams):
                Py_XDECREF(self._streams[i].buf)
            PyMem_Free(self._streams)
            self._streams = NULL

    @property
    def chunk_size(self):
        """The current inbound chunk size (128 until a Set Chunk Size)."""
        return self._chunk_size

    @property
    def bytes_received(self):
        """Every byte ever given to :meth:`feed`."""
        return self._received

    @property
    def buffered(self):
        """Bytes of incomplete messages held now (bounded by ``max_buffered``),
        and :attr:`pending` input."""
        return self._buffered + self._pending()

    @property
    def pending(self):
        """Bytes of input a feed bounded by ``max_messages`` left unread:
        the next feed reads them first."""
        return self._pending()

    cdef inline Py_ssize_t _pending(self) noexcept:
        return len(self._rest) - self._rest_at if self._rest is not None else 0

    def feed(self, data):
        """Consume ``data`` (after any :attr:`pending` input); return every
        message it completes, in order (at most ``max_messages``)."""
        cdef Py_buffer view
        cdef list out = []
        cdef bytes whole
        cdef Py_ssize_t used, start
        if self._failed:
            raise ProtocolError("chunk reader is unusable after an earlier error")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._received += <uint64_t>view.len
            self._taken = 0
            try:
                if self._rest is None:
                    used = self._run(<const uint8_t*>view.buf, view.len, out, True)
                    if used < view.len:
                        self._rest = PyBytes_FromStringAndSize(<const char*>view.buf + used,
                                                               view.len - used)
                        self._rest_at = 0
                else:
                    whole = self._rest
                    start = self._rest_at
                    self._rest = None
                    if view.len:  # new input while some is pending: after it
                        whole = whole[start:] + PyBytes_FromStringAndSize(
                            <const char*>view.buf, view.len)
                        start = 0
                    used = self._run(<const uint8_t*>_bytes_data(<PyObject*>whole) + start,
                                     len(whole) - start, out, True)
                    if start + used < len(whole):
                        self._rest = whole
                        self._rest_at = start + used
            except BaseException:
                self._failed = True
                raise
        finally:
            PyBuffer_Release(&view)
        return out

    cdef inline Py_ssize_t _find(self, uint32_t csid) noexcept:
        cdef Py_ssize_t i
        if self._last < self._nstreams and self._streams[self._last].csid == csid:
            return self._last
        for i in range(self._nstreams):
            if self._streams[i].csid == csid:
                self._last = i
                return i
        return -1

    cdef Py_ssize_t _add_stream(self, uint32_t csid) except -1:
        cdef Py_ssize_t newcap
        cdef InStream* grown
        if self._nstreams >= self._max_chunk_streams:
            raise ProtocolError(f"more than {self._max_chunk_streams} chunk streams")
        if self._nstreams == self._capstreams:
            newcap = self._capstreams * 2 if self._capstreams else 8
            grown = <InStream*>PyMem_Realloc(self._streams, newcap * sizeof(InStream))
            if grown == NULL:
                raise MemoryError()
            self._streams = grown
            self._capstreams = newcap
        memset(&self._streams[self._nstreams], 0, sizeof(InStream))
        self._streams[self._nstreams].csid = csid
        self._nstreams += 1
        self._last = self._nstreams - 1
        return self._last

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Py_ssize_t _run(self, const uint8_t* p, Py_ssize_t n, list out, bint bounded) except -1:
        """Read ``p[:n]``; returns the bytes consumed: ``n``, or less when
        ``bounded`` and ``max_messages`` messages are out (at a chunk
        boundary: the rest is read by a later call)."""
        cdef Py_ssize_t pos = 0, take, used, pending
        cdef InStream* st
        cdef uint8_t leftover[MAX_HEADER]
        while True:
            if self._cur < 0:
                # Between chunks: parse the next chunk header.
                if pos >= n:
                    return n
                if bounded and self._max_messages and self._taken >= self._max_messages:
                    return pos
                pending = self._hlen
                if pending:
                    take = MAX_HEADER - pending
                    if take > n - pos:
                        take = n - pos
                    memcpy(&self._hbuf[pending], p + pos, take)
                    used = self._header(self._hbuf, pending + take)
                    if used == 0:  # still incomplete (so the feed is used up)
                        self._hlen = pending + take
                        return n
                    self._hlen = 0
                    if used < pending:
                        # A fmt 3 header that did not consume the 4 bytes it
                        # peeked at: the rest of the carried bytes come first.
                        memcpy(leftover, &self._hbuf[used], pending - used)
                        self._run(leftover, pending - used, out, False)
                    else:
                        pos += used - pending
                else:
                    used = self._header(p + pos, n - pos)
                    if used == 0:  # incomplete header: keep it for the next feed
                        memcpy(self._hbuf, p + pos, n - pos)
                        self._hlen = n - pos
                        return n
                    pos += used
            else:
                # Inside a chunk's payload.
                st = &self._streams[self._cur]
                take = self._chunk_left
                if take > n - pos:
                    take = n - pos
                if take == st.length:
                    # The whole message in this one chunk, all at hand: one copy.
                    if take > self._max_buffered - self._buffered:
                        raise ProtocolError(
                            f"more than {self._max_buffered} bytes of incomplete messages")
                    self._chunk_left = 0
                    self._cur = -1
                    st.active = False
                    self._emit(st, PyBytes_FromStringAndSize(<const char*>(p + pos), take), out)
                    pos += take
                    continue
                if take:
                    self._append(st, p + pos, take, n - pos)
                    pos += take
                    self._chunk_left -= <uint32_t>take
                if self._chunk_left:
                    return n  # wait for the rest of this chunk
                self._cur = -1
                if st.filled == st.length:
                    self._complete(st, out)

    cdef int _append(self, InStream* st, const uint8_t* src, Py_ssize_t take,
                     Py_ssize_t at_hand) except -1:
        """Add ``take`` payload bytes; grow the buffer within what is at hand."""
        cdef Py_ssize_t needed = <Py_ssize_t>st.filled + take
        cdef Py_ssize_t newcap
        self._buffered += take
        if self._buffered > self._max_buffered:
            raise ProtocolError(f"more than {self._max_buffered} bytes of incomplete messages")
        if needed > st.cap:
            newcap = 2 * st.cap
            if newcap < 64:
                newcap = 64
            if newcap < st.filled + at_hand:
                newcap = st.filled + at_hand  # bytes already in memory may all be ours
            if newcap > st.length:
                newcap = st.length
            if st.buf == NULL:
                st.buf = _new_bytes(NULL, newcap)
            else:
                _PyBytes_Resize(&st.buf, newcap)  # on failure: st.buf = NULL, raises
            st.cap = newcap
        memcpy(_bytes_data(st.buf) + st.filled, src, take)
        st.filled += <uint32_t>take
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Py_ssize_t _header(self, const uint8_t* w, Py_ssize_t n) except -1:
        """Parse one chunk header at ``w`` (``n`` >= 1 bytes) and apply it.

        Returns the header length, or 0 when ``n`` is too short (then nothing
        has changed).
        """
        cdef uint32_t fmt = w[0] >> 6
        cdef uint32_t csid = w[0] & 0x3F
        cdef uint32_t field, value, length = 0, stream_id = 0
        cdef int type_id = 0
        cdef Py_ssize_t i = 1, need, idx
        cdef InStream* st = NULL
        cdef bint extended
        if csid == 0:
            if n < 2:
                return 0
            csid = 64 + w[1]
            i = 2
        elif csid == 1:
            if n < 3:
                return 0
            csid = 64 + w[1] + 256 * <uint32_t>w[2]
            i = 3
        idx = self._find(csid)
        if idx >= 0:
            st = &self._streams[idx]
        elif fmt != 0:
            raise ProtocolError(f"chunk fmt {fmt} on chunk stream {csid} before any fmt 0 header")

        if fmt == 3:
            if st.ext:
                if n < i + 4:
                    return 0  # wait: the next 4 bytes may be a repeated extended timestamp
                if _be32(w + i) == st.ext_value:
                    i += 4  # they are: consume them
            if not st.active:
                st.timestamp += st.delta  # uint32 arithmetic wraps mod 2**32
                self._begin(idx)
            else:
                self._continue(idx)
            return i

        if fmt == 0:
            need = i + 11
        elif fmt == 1:
            need = i + 7
        else:
            need = i + 3
        if n < need:
            return 0
        field = _be24(w + i)
        if fmt <= 1:
            length = _be24(w + i + 3)
            type_id = w[i + 6]
        if fmt == 0:
            stream_id = _le32(w + i + 7)
        i = need
        extended = field == EXTENDED
        if extended:
            if n < i + 4:
                return 0
            value = _be32(w + i)
            i += 4
        else:
            value = field

        if st != NULL and st.active:
            # A full header in the middle of a message: accept it only if it
            # describes the same message, and treat the chunk as a continuation.
            if fmt <= 1 and (length != st.length or type_id != st.type_id):
                raise ProtocolError(
                    f"message length/type changed in the middle of a message on chunk stream {csid}")
            if fmt == 0 and stream_id != st.stream_id:
                raise ProtocolError(
                    f"message stream id changed in the middle of a message on chunk stream {csid}")
            self._continue(idx)
            return i

        if fmt <= 1 and length > self._max_message_size:
            raise ProtocolError(
                f"message of {length} bytes exceeds max_message_size={self._max_message_size}")
        if st == NULL:
            idx = self._add_stream(csid)
            st = &self._streams[idx]
        if fmt == 0:
            st.timestamp = value
            st.stream_id = stream_id
        else:
            st.timestamp += value
        if fmt <= 1:
            st.length = length
            st.type_id = type_id
        st.delta = value  # after fmt 0 this is the timestamp itself, as in FFmpeg
        st.ext = extended
        st.ext_value = value if extended else 0
        self._begin(idx)
        return i

    cdef inline void _begin(self, Py_ssize_t idx) noexcept:
        """A chunk that starts a new message on stream ``idx`` follows."""
        cdef InStream* st = &self._streams[idx]
        st.active = True
        st.filled = 0
        self._cur = idx
        self._chunk_left = self._chunk_size if self._chunk_size < st.length else st.length

    cdef inline void _continue(self, Py_ssize_t idx) noexcept:
        """A continuation chunk of the active message on stream ``idx`` follows."""
        cdef InStream* st = &self._streams[idx]
        cdef uint32_t left = st.length - st.filled
        self._cur = idx
        self._chunk_left = self._chunk_size if self._chunk_size < left else left

    cdef int _complete(self, InStream* st, list out) except -1:
        cdef bytes payload
        if st.length == 0:
            payload = b""
        else:
            payload = <bytes>st.buf   # new reference; then drop the struct's one
            Py_XDECREF(st.buf)
            st.buf = NULL
            st.cap = 0
        st.active = False
        self._buffered -= st.length
        st.filled = 0
        return self._emit(st, payload, out)

    cdef int _emit(self, InStream* st, bytes payload, list out) except -1:
        cdef Message m = Message.__new__(Message)
        cdef uint32_t value
        cdef Py_ssize_t idx
        cdef InStream* target
        cdef const uint8_t* p
        m.type_id = st.type_id
        m.payload = payload
        m.timestamp = st.timestamp
        m.stream_id = st.stream_id
        m._csid = <int>st.csid
        out.append(m)
        self._taken += 1
        if st.type_id == TYPE_AGGREGATE:  # as many messages as it may carry
            self._taken += PyBytes_GET_SIZE(payload) // AGGREGATE_PART
        if st.type_id == TYPE_SET_CHUNK_SIZE:
            if PyBytes_GET_SIZE(payload) < 4:
                raise ProtocolError("Set Chunk Size message shorter than 4 bytes")
            value = _be32(<const uint8_t*>PyBytes_AS_STRING(payload))
            if value == 0 or value > MAX_CHUNK_SIZE:
                raise ProtocolError(f"invalid chunk size {value:#x}")
            self._chunk_size = value
        elif st.type_id == TYPE_ABORT:
            if PyBytes_GET_SIZE(payload) < 4:
                raise ProtocolError("Abort message shorter than 4 bytes")
            value = _be32(<const uint8_t*>PyBytes_AS_STRING(payload))
            idx = self._find(value) if value <= MAX_CSID else -1
            if idx >= 0:
                target = &self._streams[idx]
                if target.active:
                    self._buffered -= target.filled
                    Py_XDECREF(target.buf)
                    target.buf = NULL
                    target.cap = 0
                    target.filled = 0
                    target.active = False
        return 0


# ---------------------------------------------------------------- writer

ctypedef struct OutStream:
    uint32_t csid
    uint32_t timestamp
    uint32_t delta       # delta a fmt 3 new message would repeat ...
    bint delta_ok        # ... if there is one
    uint32_t length
    uint32_t stream_id
    int type_id


cdef inline Py_ssize_t _put_basic(uint8_t* out, uint32_t fmt, uint32_t csid) noexcept:
    if csid < 64:
        out[0] = <uint8_t>((fmt << 6) | csid)
        return 1
    if csid < 320:
        out[0] = <uint8_t>(fmt << 6)
        out[1] = <uint8_t>(csid - 64)
        return 2
    out[0] = <uint8_t>((fmt << 6) | 1)
    out[1] = <uint8_t>((csid - 64) & 0xFF)
    out[2] = <uint8_t>((csid - 64) >> 8)
    return 3


cdef inline void _put_be32(uint8_t* out, uint32_t v) noexcept:
    out[0] = <uint8_t>(v >> 24)
    out[1] = <uint8_t>(v >> 16)
    out[2] = <uint8_t>(v >> 8)
    out[3] = <uint8_t>v


cdef inline void _put_be24(uint8_t* out, uint32_t v) noexcept:
    out[0] = <uint8_t>(v >> 16)
    out[1] = <uint8_t>(v >> 8)
    out[2] = <uint8_t>v


@cython.final
cdef class ChunkWriter:
    """Splits messages into chunks with the most compact headers."""

    cdef OutStream* _streams
    cdef Py_ssize_t _nstreams
    cdef Py_ssize_t _capstreams
    cdef Py_ssize_t _last
    cdef uint32_t _chunk_size

    def __cinit__(self):
        self._streams = NULL
        self._nstreams = 0
        self._capstreams = 0
        self._last = 0
        self._chunk_size = 128

    def __init__(self, *, chunk_size=128):
        _check_int("chunk_size", chunk_size, 1, MAX_CHUNK_SIZE)
        self._chunk_size = chunk_size

    def __dealloc__(self):
        PyMem_Free(self._streams)
        self._streams = NULL

    @property
    def chunk_size(self):
        """The current outbound chunk size."""
        return self._chunk_size

    def set_chunk_size(self, size):
        """Encode a Set Chunk Size message; ``size`` applies to what follows it."""
        _check_int("chunk size", size, 1, MAX_CHUNK_SIZE)
        data = self.encode(Message(TYPE_SET_CHUNK_SIZE, int(size).to_bytes(4, "big"), 0, 0, 2))
        self._chunk_size = size
        return data

    def forget(self, csid):
        """Forget what was last sent on chunk stream ``csid``: its next
        message gets a full (fmt 0) header.  Call it when bytes chunked
        elsewhere were sent on ``csid`` in between."""
        cdef Py_ssize_t i
        _check_int("csid", csid, 2, 65599)
        for i in range(self._nstreams):
            if self._streams[i].csid == <uint32_t>csid:
                self._nstreams -= 1
                if i != self._nstreams:
                    self._streams[i] = self._streams[self._nstreams]
                self._last = 0
                return

    cdef OutStream* _stream(self, uint32_t csid, bint* fresh) except NULL:
        cdef Py_ssize_t i, newcap
        cdef OutStream* grown
        fresh[0] = False
        if self._last < self._nstreams and self._streams[self._last].csid == csid:
            return &self._streams[self._last]
        for i in range(self._nstreams):
            if self._streams[i].csid == csid:
                self._last = i
                return &self._streams[i]
        if self._nstreams == self._capstreams:
            newcap = self._capstreams * 2 if self._capstreams else 8
            grown = <OutStream*>PyMem_Realloc(self._streams, newcap * sizeof(OutStream))
            if grown == NULL:
                raise MemoryError()
            self._streams = grown
            self._capstreams = newcap
        memset(&self._streams[self._nstreams], 0, sizeof(OutStream))
        self._streams[self._nstreams].csid = csid
        self._last = self._nstreams
        self._nstreams += 1
        fresh[0] = True
        return &self._streams[self._last]

    @cython.boundscheck(False)
    @cython.wraparound(False)
    @cython.cdivision(True)
    def encode(self, Message message not None):
        """Return ``message`` as chunks."""
        cdef bytes payload = message.payload
        cdef Py_ssize_t length = PyBytes_GET_SIZE(payload)
        cdef uint32_t csid, ts = message.timestamp, delta = 0, field, fmt
        cdef bint fresh, extended
        cdef OutStream* st
        cdef uint8_t header[MAX_HEADER]
        cdef uint8_t cont[7]
        cdef Py_ssize_t hlen, clen, size, nextra, total, off, piece
        cdef const char* src
        cdef char* dst
        if length > MAX_LENGTH:
            raise ValueError(f"message payload of {length} bytes exceeds 0xFFFFFF")
        csid = <uint32_t>message._csid if message._csid >= 0 else <uint32_t>default_csid(message.type_id)
        st = self._stream(csid, &fresh)
        if not fresh:
            delta = ts - st.timestamp
        if fresh or st.stream_id != message.stream_id or delta >= 0x80000000:
            fmt = 0  # first message here, another message stream, or time went backwards
            field = ts
        elif <uint32_t>length != st.length or message.type_id != st.type_id:
            fmt = 1
            field = delta
        elif not st.delta_ok or delta != st.delta:
            fmt = 2
            field = delta
        else:
            fmt = 3
            field = delta
        extended = field >= EXTENDED

        hlen = _put_basic(header, fmt, csid)
        if fmt <= 2:
            _put_be24(header + hlen, EXTENDED if extended else field)
            hlen += 3
        if fmt <= 1:
            _put_be24(header + hlen, <uint32_t>length)
            header[hlen + 3] = <uint8_t>message.type_id
            hlen += 4
        if fmt == 0:
            header[hlen] = <uint8_t>message.stream_id
            header[hlen + 1] = <uint8_t>(message.stream_id >> 8)
            header[hlen + 2] = <uint8_t>(message.stream_id >> 16)
            header[hlen + 3] = <uint8_t>(message.stream_id >> 24)
            hlen += 4
        if extended:
            _put_be32(header + hlen, field)
            hlen += 4

        st.timestamp = ts
        st.length = <uint32_t>length
        st.type_id = message.type_id
        st.stream_id = message.stream_id
        if fmt == 0:
            # The reader's delta is now ts (FFmpeg) but nginx-rtmp takes 0:
            # only rely on it when both agree.
            st.delta = 0
            st.delta_ok = ts == 0
        elif fmt != 3:
            st.delta = delta
            st.delta_ok = True

        clen = _put_basic(cont, 3, csid)
        if extended:
            _put_be32(cont + clen, field)
            clen += 4
        size = self._chunk_size
        nextra = (length - 1) // size if length > size else 0
        total = hlen + length + nextra * clen
        out = PyBytes_FromStringAndSize(NULL, total)
        dst = PyBytes_AS_STRING(out)
        src = PyBytes_AS_STRING(payload)
        memcpy(dst, header, hlen)
        dst += hlen
        piece = size if size < length else length
        memcpy(dst, src, piece)
        dst += piece
        off = piece
        while off < length:
            memcpy(dst, cont, clen)
            dst += clen
            piece = length - off
            if piece > size:
                piece = size
            memcpy(dst, src + off, piece)
            dst += piece
            off += piece
        return out
