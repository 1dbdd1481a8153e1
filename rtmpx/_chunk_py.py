"""Pure-Python RTMP chunk stream codec, the twin of :mod:`rtmpx._chunk`.

Same API and byte-for-byte the same behaviour as the compiled core; it is
the test oracle and the benchmark baseline, so it is written to be read.

* :class:`Message` - one RTMP message (type, payload, timestamp, message
  stream id, chunk stream id).
* :class:`ChunkReader` - bytes in, completed messages out.  Any split of
  the input is fine, down to one byte per :meth:`ChunkReader.feed`.
* :class:`ChunkWriter` - message in, chunked bytes out, most compact
  header for each message.

Wire rules (see ``docs/rtmp-notes.md``, "Chunk stream"):

* basic header: fmt (2 bits) + chunk stream id in 1, 2 or 3 bytes
  (csid 2..63, 64..319, 64..65599; the 3-byte form is little-endian);
* message header by fmt: 0 = timestamp, length, type, stream id (4 bytes
  little-endian); 1 = timestamp delta, length, type; 2 = timestamp delta;
  3 = nothing;
* a 3-byte timestamp field of 0xFFFFFF means a 4-byte big-endian extended
  value follows (absolute for fmt 0, a delta for fmt 1/2);
* a fmt 3 chunk that starts a new message repeats the previous delta; as
  in FFmpeg (and the Adobe specification), the "delta" after a fmt 0 header
  is that header's own timestamp field;
* after an extended header on a chunk stream, the reader peeks at the next
  four bytes of each fmt 3 chunk and consumes them only when they equal the
  stored extended value (peers differ on whether they repeat it); the writer
  always repeats it.

Security: every limit is a keyword argument of :class:`ChunkReader` and
raises :class:`~rtmpx.errors.ProtocolError`.  Memory for a message grows with
the bytes that actually arrive, never from its declared length alone.
"""

from __future__ import annotations

from typing import Any

from rtmpx.errors import ProtocolError

__all__ = ["ChunkReader", "ChunkWriter", "Message", "default_csid"]

_MASK32 = 0xFFFFFFFF
_EXTENDED = 0xFFFFFF  # 3-byte timestamp field value announcing an extended timestamp
_MAX_HEADER = 18  # 3-byte basic header + 11-byte fmt 0 header + 4-byte extended timestamp
_MAX_LENGTH = 0xFFFFFF  # message length is a 24-bit field
_MAX_CHUNK_SIZE = 0x7FFFFFFF
_MIN_CSID = 2
_MAX_CSID = 65599
_MESSAGE_HEADER_SIZE = (11, 7, 3, 0)  # by fmt

TYPE_SET_CHUNK_SIZE = 1
TYPE_ABORT = 2
TYPE_AGGREGATE = 22
#: The smallest part of an aggregate: an 11-byte header and a 4-byte back pointer.
_AGGREGATE_PART = 15

# Chunk stream chosen by the writer when Message.csid is None.
_DEFAULT_CSID = {
    **dict.fromkeys((1, 2, 3, 4, 5, 6), 2),  # protocol control and user control
    **dict.fromkeys((20, 17), 3),  # commands (AMF0, AMF3)
    8: 4,  # audio
    **dict.fromkeys((18, 15), 5),  # data (AMF0, AMF3)
    9: 6,  # video
}


def default_csid(type_id: int) -> int:
    """The chunk stream id the writer uses for a message of ``type_id``."""
    return _DEFAULT_CSID.get(type_id, 3)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")


class Message:
    """One RTMP message.  Immutable; compares equal on all five fields.

    ``csid`` is the chunk stream id: the reader sets it on what it returns;
    ``None`` lets the writer pick one from ``type_id``.
    """

    __slots__ = ("csid", "payload", "stream_id", "timestamp", "type_id")

    type_id: int
    payload: bytes
    timestamp: int
    stream_id: int
    csid: int | None

    def __init__(
        self,
        type_id: int,
        payload: bytes,
        timestamp: int = 0,
        stream_id: int = 0,
        csid: int | None = None,
    ) -> None:
        _check_int("type_id", type_id, 0, 255)
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        _check_int("timestamp", timestamp, 0, _MASK32)
        _check_int("stream_id", stream_id, 0, _MASK32)
        if csid is not None:
            _check_int("csid", csid, _MIN_CSID, _MAX_CSID)
        set_field = object.__setattr__
        set_field(self, "type_id", type_id)
        set_field(self, "payload", payload)
        set_field(self, "timestamp", timestamp)
        set_field(self, "stream_id", stream_id)
        set_field(self, "csid", csid)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Message is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Message is immutable: cannot delete {name!r}")

    def _key(self) -> tuple[int, bytes, int, int, int | None]:
        return (self.type_id, self.payload, self.timestamp, self.stream_id, self.csid)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        return (Message, self._key())

    def __repr__(self) -> str:
        payload = self.payload
        shown = repr(payload[:16]) + ("..." if len(payload) > 16 else "")
        return (
            f"Message(type_id={self.type_id}, payload=<{len(payload)} bytes {shown}>, "
            f"timestamp={self.timestamp}, stream_id={self.stream_id}, csid={self.csid})"
        )


class _InStream:
    """Reader state of one chunk stream."""

    __slots__ = (
        "active",
        "buf",
        "csid",
        "delta",
        "ext",
        "ext_value",
        "length",
        "stream_id",
        "timestamp",
        "type_id",
    )

    def __init__(self, csid: int) -> None:
        self.csid = csid
        self.timestamp = 0  # timestamp of the latest message begun here
        self.delta = 0  # what a fmt 3 chunk starting a new message adds
        self.ext = False  # the latest fmt 0/1/2 header had an extended timestamp
        self.ext_value = 0  # ... and this was its value
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.buf = bytearray()  # payload received so far of the active message
        self.active = False  # a message is incomplete on this chunk stream


class ChunkReader:
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

    def __init__(
        self,
        *,
        max_message_size: int = 8 * 1024 * 1024,
        max_chunk_streams: int = 64,
        max_buffered: int = 16 * 1024 * 1024,
        max_messages: int = 0,
    ) -> None:
        _check_int("max_message_size", max_message_size, 0, 2**62)
        _check_int("max_chunk_streams", max_chunk_streams, 1, 2**62)
        _check_int("max_buffered", max_buffered, 0, 2**62)
        _check_int("max_messages", max_messages, 0, 2**31)
        self._max_message_size = max_message_size
        self._max_chunk_streams = max_chunk_streams
        self._max_buffered = max_buffered
        self._max_messages = max_messages
        self._rest: bytes | None = None  # input a bounded feed left for the next one...
        self._rest_at = 0  # ...from this offset (no copy per batch)
        self._taken = 0  # messages the current feed returned (aggregates weigh more)
        self._streams: dict[int, _InStream] = {}
        self._chunk_size = 128
        self._received = 0
        self._buffered = 0  # bytes held in incomplete messages, all chunk streams
        self._header = bytearray()  # an incomplete chunk header carried to the next feed
        self._cur: _InStream | None = None  # the chunk stream whose chunk payload is being read
        self._chunk_left = 0  # payload bytes still to come in the current chunk
        self._failed = False

    def set_limits(
        self,
        *,
        max_message_size: int | None = None,
        max_chunk_streams: int | None = None,
        max_buffered: int | None = None,
    ) -> None:
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

    @property
    def chunk_size(self) -> int:
        """The current inbound chunk size (128 until a Set Chunk Size)."""
        return self._chunk_size

    @property
    def bytes_received(self) -> int:
        """Every byte ever given to :meth:`feed`."""
        return self._received

    @property
    def buffered(self) -> int:
        """Bytes of incomplete messages held now (bounded by ``max_buffered``),
        and :attr:`pending` input."""
        return self._buffered + self.pending

    @property
    def pending(self) -> int:
        """Bytes of input a feed bounded by ``max_messages`` left unread:
        the next feed reads them first."""
        return len(self._rest) - self._rest_at if self._rest is not None else 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Consume ``data`` (after any :attr:`pending` input); return every
        message it completes, in order (at most ``max_messages``)."""
        if self._failed:
            raise ProtocolError("chunk reader is unusable after an earlier error")
        view = memoryview(data)
        if not view.c_contiguous:
            raise BufferError("chunk reader needs a C-contiguous buffer")
        view = view.cast("B")
        self._received += len(view)
        self._taken = 0
        out: list[Message] = []
        try:
            whole: bytes | None = None
            start = 0
            if self._rest is not None:
                whole, start, self._rest = self._rest, self._rest_at, None
                if len(view):  # new input while some is pending: after it
                    whole, start = whole[start:] + bytes(view), 0
                view = memoryview(whole)[start:]
            used = self._run(view, out, True)
            if used < len(view):
                if whole is None:
                    self._rest, self._rest_at = bytes(view[used:]), 0
                else:
                    self._rest, self._rest_at = whole, start + used
        except BaseException:
            self._failed = True
            raise
        return out

    def _run(self, view: memoryview, out: list[Message], bounded: bool) -> int:
        """Read ``view``; returns the bytes consumed: all, or fewer when
        ``bounded`` and ``max_messages`` messages are out (at a chunk
        boundary: the rest is read by a later call)."""
        n = len(view)
        pos = 0
        while True:
            if self._cur is None:
                # Between chunks: parse the next chunk header.
                if pos >= n:
                    return n
                if bounded and self._max_messages and self._taken >= self._max_messages:
                    return pos
                pending = len(self._header)
                take = min(_MAX_HEADER - pending, n - pos)
                window = bytes(self._header) + bytes(view[pos : pos + take])
                used = self._parse_header(window)
                if used == 0:  # incomplete header: keep it for the next feed
                    self._header = bytearray(window)
                    return n
                self._header.clear()
                if used < pending:
                    # A fmt 3 header that did not consume the 4 bytes it peeked
                    # at: the rest of the carried bytes come first.
                    self._run(memoryview(window[used:pending]), out, False)
                else:
                    pos += used - pending
            else:
                # Inside a chunk's payload.
                st = self._cur
                take = min(self._chunk_left, n - pos)
                if take:
                    st.buf += view[pos : pos + take]
                    pos += take
                    self._chunk_left -= take
                    self._buffered += take
                    if self._buffered > self._max_buffered:
                        raise ProtocolError(
                            f"more than {self._max_buffered} bytes of incomplete messages"
                        )
                if self._chunk_left:
                    return n  # wait for the rest of this chunk
                self._cur = None
                if len(st.buf) == st.length:
                    self._complete(st, out)

    def _parse_header(self, w: bytes) -> int:
        """Parse one chunk header at the start of ``w`` and apply it.

        Returns the header length, or 0 when ``w`` holds too few bytes (then
        nothing has changed).
        """
        n = len(w)
        fmt = w[0] >> 6
        csid = w[0] & 0x3F
        i = 1
        if csid == 0:
            if n < 2:
                return 0
            csid = 64 + w[1]
            i = 2
        elif csid == 1:
            if n < 3:
                return 0
            csid = 64 + w[1] + 256 * w[2]
            i = 3
        st = self._streams.get(csid)
        if st is None and fmt != 0:
            raise ProtocolError(f"chunk fmt {fmt} on chunk stream {csid} before any fmt 0 header")

        if fmt == 3:
            assert st is not None
            if st.ext:
                if n < i + 4:
                    return 0  # wait: the next 4 bytes may be a repeated extended timestamp
                if int.from_bytes(w[i : i + 4], "big") == st.ext_value:
                    i += 4  # they are: consume them
            if not st.active:
                st.timestamp = (st.timestamp + st.delta) & _MASK32
                self._begin(st)
            else:
                self._continue(st)
            return i

        need = i + _MESSAGE_HEADER_SIZE[fmt]
        if n < need:
            return 0
        field = int.from_bytes(w[i : i + 3], "big")
        if fmt <= 1:
            length = int.from_bytes(w[i + 3 : i + 6], "big")
            type_id = w[i + 6]
        if fmt == 0:
            stream_id = int.from_bytes(w[i + 7 : i + 11], "little")
        i = need
        extended = field == _EXTENDED
        if extended:
            if n < i + 4:
                return 0
            value = int.from_bytes(w[i : i + 4], "big")
            i += 4
        else:
            value = field

        if st is not None and st.active:
            # A full header in the middle of a message: accept it only if it
            # describes the same message, and treat the chunk as a continuation.
            if fmt <= 1 and (length != st.length or type_id != st.type_id):
                raise ProtocolError(
                    f"message length/type changed in the middle of a message on chunk stream {csid}"
                )
            if fmt == 0 and stream_id != st.stream_id:
                raise ProtocolError(
                    f"message stream id changed in the middle of a message on chunk stream {csid}"
                )
            self._continue(st)
            return i

        if fmt <= 1 and length > self._max_message_size:
            raise ProtocolError(
                f"message of {length} bytes exceeds max_message_size={self._max_message_size}"
            )
        if st is None:
            if len(self._streams) >= self._max_chunk_streams:
                raise ProtocolError(f"more than {self._max_chunk_streams} chunk streams")
            st = self._streams[csid] = _InStream(csid)
        if fmt == 0:
            st.timestamp = value
            st.stream_id = stream_id
        else:
            st.timestamp = (st.timestamp + value) & _MASK32
        if fmt <= 1:
            st.length = length
            st.type_id = type_id
        st.delta = value  # after fmt 0 this is the timestamp itself, as in FFmpeg
        st.ext = extended
        st.ext_value = value if extended else 0
        self._begin(st)
        return i

    def _begin(self, st: _InStream) -> None:
        """A chunk that starts a new message on ``st`` follows."""
        st.active = True
        st.buf = bytearray()
        self._cur = st
        self._chunk_left = min(self._chunk_size, st.length)

    def _continue(self, st: _InStream) -> None:
        """A continuation chunk of the active message on ``st`` follows."""
        self._cur = st
        self._chunk_left = min(self._chunk_size, st.length - len(st.buf))

    def _complete(self, st: _InStream, out: list[Message]) -> None:
        payload = bytes(st.buf)
        st.buf = bytearray()
        st.active = False
        self._buffered -= st.length
        out.append(Message(st.type_id, payload, st.timestamp, st.stream_id, st.csid))
        self._taken += 1
        if st.type_id == TYPE_AGGREGATE:  # as many messages as it may carry
            self._taken += len(payload) // _AGGREGATE_PART
        if st.type_id == TYPE_SET_CHUNK_SIZE:
            if len(payload) < 4:
                raise ProtocolError("Set Chunk Size message shorter than 4 bytes")
            size = int.from_bytes(payload[:4], "big")
            if size == 0 or size > _MAX_CHUNK_SIZE:
                raise ProtocolError(f"invalid chunk size {size:#x}")
            self._chunk_size = size
        elif st.type_id == TYPE_ABORT:
            if len(payload) < 4:
                raise ProtocolError("Abort message shorter than 4 bytes")
            target = self._streams.get(int.from_bytes(payload[:4], "big"))
            if target is not None and target.active:
                self._buffered -= len(target.buf)
                target.buf = bytearray()
                target.active = False


class _OutStream:
    """Writer state of one chunk stream: what the peer's reader now holds."""

    __slots__ = ("delta", "length", "stream_id", "timestamp", "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta: int | None = None  # delta a fmt 3 new message would repeat
        self.length = 0
        self.type_id = 0
        self.stream_id = 0


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    return bytes(((fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))


class ChunkWriter:
    """Splits messages into chunks with the most compact headers."""

    def __init__(self, *, chunk_size: int = 128) -> None:
        _check_int("chunk_size", chunk_size, 1, _MAX_CHUNK_SIZE)
        self._chunk_size = chunk_size
        self._streams: dict[int, _OutStream] = {}

    @property
    def chunk_size(self) -> int:
        """The current outbound chunk size."""
        return self._chunk_size

    def set_chunk_size(self, size: int) -> bytes:
        """Encode a Set Chunk Size message; ``size`` applies to what follows it."""
        _check_int("chunk size", size, 1, _MAX_CHUNK_SIZE)
        data = self.encode(Message(TYPE_SET_CHUNK_SIZE, size.to_bytes(4, "big"), 0, 0, 2))
        self._chunk_size = size
        return data

    def forget(self, csid: int) -> None:
        """Forget what was last sent on chunk stream ``csid``: its next
        message gets a full (fmt 0) header.  Call it when bytes chunked
        elsewhere were sent on ``csid`` in between."""
        _check_int("csid", csid, 2, 65599)
        self._streams.pop(csid, None)

    def encode(self, message: Message) -> bytes:
        """Return ``message`` as chunks."""
        if not isinstance(message, Message):
            raise TypeError(f"expected a Message, not {type(message).__name__}")
        payload = message.payload
        length = len(payload)
        if length > _MAX_LENGTH:
            raise ValueError(f"message payload of {length} bytes exceeds 0xFFFFFF")
        csid = message.csid if message.csid is not None else default_csid(message.type_id)
        ts = message.timestamp
        st = self._streams.get(csid)
        delta = 0
        if st is not None:
            delta = (ts - st.timestamp) & _MASK32
        if st is None or st.stream_id != message.stream_id or delta >= 0x80000000:
            fmt = 0  # first message here, another message stream, or time went backwards
            field = ts
        elif length != st.length or message.type_id != st.type_id:
            fmt = 1
            field = delta
        elif delta != st.delta:
            fmt = 2
            field = delta
        else:
            fmt = 3
            field = delta
        extended = field >= _EXTENDED

        header = bytearray(_basic_header(fmt, csid))
        if fmt <= 2:
            header += min(field, _EXTENDED).to_bytes(3, "big")
        if fmt <= 1:
            header += length.to_bytes(3, "big")
            header.append(message.type_id)
        if fmt == 0:
            header += message.stream_id.to_bytes(4, "little")
        if extended:
            header += field.to_bytes(4, "big")

        if st is None:
            st = self._streams[csid] = _OutStream()
        st.timestamp = ts
        st.length = length
        st.type_id = message.type_id
        st.stream_id = message.stream_id
        if fmt == 0:
            # The reader's delta is now ts (FFmpeg) but nginx-rtmp takes 0:
            # only rely on it when both agree.
            st.delta = 0 if ts == 0 else None
        elif fmt != 3:
            st.delta = delta

        continuation = _basic_header(3, csid)
        if extended:
            continuation += field.to_bytes(4, "big")
        out = bytearray(header)
        size = self._chunk_size
        out += payload[:size]
        for start in range(size, length, size):
            out += continuation
            out += payload[start : start + size]
        return bytes(out)
