"""What both ends of an RTMP connection share: chunking, protocol control,
acknowledgements, AMF commands, the state tables.

:class:`Session` is the base of :class:`~rtmpx.ServerSession` and
:class:`~rtmpx.ClientSession`.  It does no I/O and reads no clock: feed
what the socket delivered to :meth:`Session.receive_data`, act on the
:mod:`events <rtmpx.events>` it returns, call methods to answer or to
send, and write :meth:`Session.data_to_send` to the socket.

A peer that breaks the protocol makes :meth:`Session.receive_data` raise
:class:`~rtmpx.ProtocolError` (the connection should then be closed); a
call that the current state does not allow raises
:class:`~rtmpx.InvalidStateError`.  Every state change goes through the
tables of :mod:`rtmpx.session.states`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from .. import amf
from ..chunk import ChunkReader, ChunkWriter, Message
from ..constants import MessageType as MT
from ..constants import StatusCode
from ..constants import UserControlEvent as UC
from ..errors import InvalidStateError, ProtocolError
from ..events import (
    Acknowledged,
    BufferLength,
    ChunkSizeChanged,
    CommandCall,
    DataMessage,
    Event,
    HandshakeComplete,
    Metadata,
    PeerBandwidth,
    PeerWindow,
    PingResponse,
    UserControl,
)
from .states import Action, ConnectionInput, ConnectionState, StreamInput, StreamState

__all__ = ["Buffer", "MessageStream", "Session", "SessionConfig", "encode_shared", "split_query"]

Buffer = bytes | bytearray | memoryview

#: Messages :meth:`Session.receive_data` reads per call when ``bounded``.
BATCH = 256

_U32 = struct.Struct(">I")
_UC_U32 = struct.Struct(">HI")
_BW = struct.Struct(">IB")
_SET_DATA_FRAME = b"\x02\x00\x0d@setDataFrame"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Settings of a session; the limits are security settings.

    ``chunk_size`` is the size of the chunks we send (announced with Set
    Chunk Size once connected); ``window_ack_size`` and ``peer_bandwidth``
    are what a server announces at connect.  The ``max_*`` limits bound
    what a peer can make us hold: chunk-stream reassembly (see
    :class:`~rtmpx.ChunkReader`), message streams per connection, the AMF
    decoder of command and data bodies (``amf_max_depth``;
    ``amf_max_values``: the values one body may decode to, references
    expanded; ``amf_references``: whether a body may use AMF object
    references at all - FFmpeg, OBS and Flash never send them there), and
    the commands a server holds while its application decides a connect
    (``max_deferred``).  Until connect is done, smaller limits hold:
    ``max_connect_message`` bytes for one message and for all incomplete
    ones, and ``max_connect_chunk_streams`` chunk streams (a connect and
    what an encoder pipelines after it fit with room to spare).
    ``max_aggregate_messages`` bounds the messages one aggregate message
    may carry (servers send a few dozen: a flood of tiny ones in one
    message would be split in one go).  ``accept_calls``
    names the custom commands the application answers itself (with
    ``result``/``error``); any other unknown command is answered with
    ``_error`` at once.
    """

    chunk_size: int = 4096
    window_ack_size: int = 2_500_000
    peer_bandwidth: int = 2_500_000
    max_message_size: int = 8 * 1024 * 1024
    max_chunk_streams: int = 64
    max_buffered: int = 16 * 1024 * 1024
    max_streams: int = 16
    max_deferred: int = 16
    max_connect_message: int = 64 * 1024
    max_connect_chunk_streams: int = 8
    max_aggregate_messages: int = 4096
    amf_max_depth: int = 64
    amf_max_values: int = 100_000
    amf_references: bool = False
    accept_calls: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= 0x7FFFFFFF:
            raise ValueError("chunk_size must be 1..0x7FFFFFFF")
        if not 1 <= self.window_ack_size <= 0xFFFFFFFF:
            raise ValueError("window_ack_size must be 1..2**32-1")


def split_query(name: str) -> tuple[str, str]:
    """``"key?token=x"`` -> ``("key", "token=x")``; no ``?`` gives ``""``."""
    base, _, query = name.partition("?")
    return base, query


#: The chunk streams shared media goes on (:func:`encode_shared`): audio,
#: video, data.  Not the writer's defaults (2 to 6): a session's own
#: messages never go there, so shared bytes (full headers only) and the
#: session's compressed headers never meet on one chunk stream.
SHARED_CSID: dict[int, int] = {int(MT.AUDIO): 7, int(MT.VIDEO): 8, int(MT.DATA_AMF0): 9}
_SHARED_CSIDS = frozenset(SHARED_CSID.values())


def encode_shared(type_id: int, timestamp: int, payload: bytes, stream_id: int,
                  chunk_size: int) -> bytes:
    """Chunk one media message (audio, video or AMF0 data) with a full
    header, decodable whatever the player received before: bytes that many
    sessions with the same chunk size and stream id can send
    (:meth:`Session.send_shared`)."""
    writer = ChunkWriter(chunk_size=chunk_size)
    return writer.encode(Message(type_id, payload, timestamp & 0xFFFFFFFF, stream_id,
                                 SHARED_CSID[type_id]))


class MessageStream:
    """The bookkeeping of one message stream of a connection (the sessions' own)."""

    __slots__ = ("audio", "name", "publish_type", "query", "request", "request_id", "state",
                 "stream_id", "video")

    def __init__(self, stream_id: int, request_id: float = 0.0) -> None:
        self.stream_id = stream_id
        self.state = StreamState.IDLE
        self.name = ""
        self.query = ""
        self.publish_type = ""
        self.request: Event | None = None   # server: the pending PublishRequest/PlayRequest
        self.request_id = request_id        # client: the createStream transaction
        self.audio = True                   # server: receiveAudio / receiveVideo
        self.video = True


def _table_error(what: str, state: IntEnum, local: bool) -> Exception:
    message = f"{what} is not allowed in state {state.name}"
    return InvalidStateError(message) if local else ProtocolError(message)


class _Handshake(Protocol):
    """What a session needs of its handshake (server or client side)."""

    @property
    def done(self) -> bool: ...
    @property
    def complex(self) -> bool: ...
    @property
    def peer_version(self) -> int | None: ...
    @property
    def leftover(self) -> bytes: ...
    def feed(self, data: Buffer) -> bytes: ...


class Session:
    """The shared base of :class:`~rtmpx.ServerSession` and
    :class:`~rtmpx.ClientSession`."""

    _handshake: _Handshake | None   # None once done: its blocks are not needed any more

    _connection_table: dict[tuple[ConnectionState, ConnectionInput],
                            tuple[Action, ConnectionState]]
    _stream_table: dict[tuple[StreamState, StreamInput], tuple[Action, StreamState]]

    def __init__(self, config: SessionConfig | None) -> None:
        self.config = config if config is not None else SessionConfig()
        cfg = self.config
        # small limits until connect is done (see _connected)
        self._reader = ChunkReader(
            max_message_size=min(cfg.max_message_size, cfg.max_connect_message),
            max_chunk_streams=min(cfg.max_chunk_streams, cfg.max_connect_chunk_streams),
            max_buffered=min(cfg.max_buffered, cfg.max_connect_message),
            max_messages=BATCH)
        self._writer = ChunkWriter()
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._state = ConnectionState.HANDSHAKE
        self._streams: dict[int, MessageStream] = {}
        self._peer_window = 0        # the peer's Window Ack Size: when we must ack
        self._acked = 0              # bytes_received at our last acknowledgement
        self._window_sent = 0        # the Window Ack Size we last told the peer
        self._failed: ProtocolError | None = None
        self._in_aggregate = False
        self._hello = False
        self.object_encoding = 0

    # -- the I/O edge ---------------------------------------------------------

    def receive_data(self, data: Buffer, *, bounded: bool = False) -> list[Event]:
        """Feed received bytes; returns the events they complete.

        ``bounded``: read at most :data:`BATCH` messages; the rest of the
        input waits (:attr:`input_pending`) for a later call,
        ``receive_data(b"", bounded=True)`` included (a caller that takes
        turns with other work: :class:`rtmpx.pacing.Pacer`).

        Raises :class:`~rtmpx.ProtocolError` when the peer broke the
        protocol; the session is then dead and raises again on any input.
        """
        if self._failed is not None:
            raise ProtocolError(f"session already failed: {self._failed}")
        try:
            if self._state is ConnectionState.HANDSHAKE:
                data = self._feed_handshake(data)
            reader = self._reader
            if data or reader.pending:
                self._handle_all(reader.feed(data))
                while not bounded and reader.pending:
                    self._handle_all(reader.feed(b""))
                self._maybe_acknowledge()
        except ProtocolError as exc:
            self._failed = exc
            raise
        return self._take_events()

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (empty when there are none)."""
        if not self._out:
            return b""
        out = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        return out

    def chunks_to_send(self) -> Sequence[bytes]:
        """What :meth:`data_to_send` joins, unjoined: the byte strings to
        write now, in order, for ``writelines`` (``writev``) without a copy."""
        out = self._out
        if not out:
            return ()
        chunks = out[:]
        out.clear()
        return chunks

    @property
    def output(self) -> list[bytes]:
        """The queue :meth:`chunks_to_send` takes: byte strings for the peer,
        in wire order; the same list for the session's life.  A fan-out may
        append bytes made by :func:`encode_shared` to it directly (what
        :meth:`send_shared` does), and nothing else."""
        return self._out

    @property
    def state(self) -> ConnectionState:
        """The connection's state (see :mod:`rtmpx.session.states`)."""
        return self._state

    @property
    def hello_received(self) -> bool:
        """Whether the peer's first handshake packet (C0+C1, or S0+S1) is
        in: a server then waits for C2."""
        return self._hello

    @property
    def input_pending(self) -> int:
        """Bytes received and not read yet by a ``bounded`` call (more than
        :data:`BATCH` messages came at once): call :meth:`receive_data` again."""
        return int(self._reader.pending)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of incomplete messages the session holds (chunk reassembly)."""
        return int(self._reader.buffered)

    @property
    def bytes_received(self) -> int:
        """Chunk-stream bytes received (after the handshake)."""
        return int(self._reader.bytes_received)

    @property
    def chunk_size(self) -> int:
        """The size of the chunks we send."""
        return int(self._writer.chunk_size)

    def stream_state(self, stream_id: int) -> StreamState | None:
        """The state of a message stream, or None if there is no such stream."""
        stream = self._streams.get(stream_id)
        return stream.state if stream is not None else None

    def _feed_handshake(self, data: Buffer) -> bytes:
        """Handshake bytes; returns what came after it (chunk-stream bytes)."""
        hs = self._handshake
        if hs is None:  # spent (the connection table keeps input from here)
            return b""
        reply = hs.feed(data)
        if reply:
            self._hello = True
            self._out.append(reply)
        if not hs.done:
            return b""
        self._connection_input(ConnectionInput.HANDSHAKE_DONE)
        self._events.append(HandshakeComplete(bool(hs.complex), int(hs.peer_version or 0)))
        self._handshake = None  # 4.6 KiB per connection (C1, S1, C2) let go
        self._handshake_done()
        return bytes(hs.leftover)

    def _handshake_done(self) -> None:
        """What a role does once the handshake is over."""

    # -- the state tables -----------------------------------------------------------

    def _connection_input(self, what: ConnectionInput, *, local: bool = False,
                          name: str = "") -> Action:
        """Apply one transition of the connection table, or refuse it."""
        row = self._connection_table.get((self._state, what))
        if row is None:
            raise _table_error(name or what.value, self._state, local)
        before = self._state
        action, self._state = row
        if self._state is ConnectionState.CONNECTED and before is not ConnectionState.CONNECTED:
            self._connected()
        return action

    def _connected(self) -> None:
        """Connect is done: the full limits hold from now on."""
        cfg = self.config
        self._reader.set_limits(max_message_size=cfg.max_message_size,
                                max_chunk_streams=cfg.max_chunk_streams,
                                max_buffered=cfg.max_buffered)

    def _stream_input(self, stream: MessageStream, what: StreamInput, *, local: bool = False) -> Action:
        """Apply one transition of the stream table, or refuse it."""
        row = self._stream_table.get((stream.state, what))
        if row is None:
            raise _table_error(f"{what.value} on stream {stream.stream_id}", stream.state, local)
        action, stream.state = row
        return action

    # -- sending ------------------------------------------------------------------

    def send_message(self, message: Message) -> None:
        """Queue any message (the escape hatch under the typed methods).  On
        a chunk stream of shared media (:data:`SHARED_CSID`) it has a full
        header, and so has the writer's next message there."""
        csid = message.csid
        if csid in _SHARED_CSIDS:
            self._writer.forget(csid)
            self._out.append(self._writer.encode(message))
            self._writer.forget(csid)
        else:
            self._out.append(self._writer.encode(message))

    def send_shared(self, type_id: int, data: bytes) -> None:
        """Queue a media message of ``type_id`` chunked by :func:`encode_shared`
        (once for many peers).  Those bytes go on chunk streams of their own
        (:data:`SHARED_CSID`), which the session's own writer never uses: no
        header of ours is ever measured against one the peer did not get."""
        self._out.append(data)

    def _media(self, type_id: int, stream_id: int, timestamp: int, payload: Buffer) -> None:
        self._out.append(self._writer.encode(
            Message(type_id, _bytes(payload), timestamp & 0xFFFFFFFF, stream_id)))

    def _control(self, type_id: int, payload: bytes) -> None:
        self._out.append(self._writer.encode(Message(type_id, payload, 0, 0, 2)))

    def _user_control(self, event: int, value: int) -> None:
        self._control(MT.USER_CONTROL, _UC_U32.pack(event, value & 0xFFFFFFFF))

    def _command(self, stream_id: int, name: str, txn: float, obj: Any, *args: Any) -> None:
        payload = amf.dumps_all((name, txn, obj) + args)
        self._out.append(self._writer.encode(Message(MT.COMMAND_AMF0, payload, 0, stream_id)))

    def _status(self, stream_id: int, level: str, code: StatusCode | str, description: str,
                **extra: Any) -> None:
        info = {"level": level, "code": str(code), "description": description}
        info.update(extra)
        self._command(stream_id, "onStatus", 0.0, None, info)

    def set_chunk_size(self, size: int) -> None:
        """Send Set Chunk Size and use ``size`` for every later chunk."""
        self._out.append(self._writer.set_chunk_size(size))

    def set_window_ack_size(self, size: int) -> None:
        """Tell the peer how often we want acknowledgements."""
        self._window_sent = size
        self._control(MT.WINDOW_ACK_SIZE, _U32.pack(size))

    def ping(self, now_ms: int) -> None:
        """Send a PingRequest; the answer comes as :class:`PingResponse`."""
        self._user_control(UC.PING_REQUEST, now_ms)

    def result(self, call: CommandCall, *values: Any) -> None:
        """Answer a :class:`CommandCall` with ``_result`` (values after null)."""
        self._command(call.stream_id, "_result", call.transaction_id, None, *values)

    def error(self, call: CommandCall, description: str = "Call failed.",
              code: StatusCode | str = StatusCode.CALL_FAILED) -> None:
        """Answer a :class:`CommandCall` with ``_error``."""
        self._command(call.stream_id, "_error", call.transaction_id, None,
                      {"level": "error", "code": str(code), "description": description})

    # -- receiving ----------------------------------------------------------------

    def _handle_all(self, messages: list[Message]) -> None:
        for message in messages:
            self._handle(message)

    def _handle(self, m: Message) -> None:
        t = m.type_id
        if t == MT.VIDEO or t == MT.AUDIO:
            self._on_media(m)
        elif t == MT.COMMAND_AMF0 or t == MT.COMMAND_AMF3:
            self._on_command_message(m)
        elif t == MT.DATA_AMF0 or t == MT.DATA_AMF3:
            self._on_data(m)
        elif t <= MT.SET_PEER_BANDWIDTH:
            self._on_control(m)
        elif t == MT.AGGREGATE:
            self._on_aggregate(m)
        # shared objects (16, 19) and undefined types are ignored

    def _on_media(self, m: Message) -> None:
        raise NotImplementedError

    def _on_data(self, m: Message) -> None:
        raise NotImplementedError

    def _on_command(self, stream_id: int, name: str, txn: float, obj: Any,
                    args: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _media_action(self, stream_id: int) -> Action:
        """DELIVER or DROP, by the stream table (an unknown stream: DROP)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return Action.DROP  # never created, or deleted with media still in flight
        return self._stream_input(stream, StreamInput.MEDIA)

    def _decode_amf(self, m: Message) -> list[Any]:
        body: bytes | memoryview = m.payload
        if m.type_id == MT.COMMAND_AMF3 or m.type_id == MT.DATA_AMF3:
            # AMF3 command/data bodies start with one 0x00, then AMF0 values
            # that may switch to AMF3 (marker 0x11)
            body = memoryview(body)[1:] if body[:1] == b"\x00" else body
        cfg = self.config
        return amf.loads_all(body, max_depth=cfg.amf_max_depth, max_length=cfg.max_message_size,
                             max_values=cfg.amf_max_values, references=cfg.amf_references)

    def _on_command_message(self, m: Message) -> None:
        values = self._decode_amf(m)
        if not values or not isinstance(values[0], str):
            got = type(values[0]).__name__ if values else "nothing"
            raise ProtocolError(f"malformed command message: starts with {got}, not a name")
        txn = values[1] if len(values) > 1 else None
        if not isinstance(txn, (int, float)) or isinstance(txn, bool) or not math.isfinite(txn):
            # FFmpeg's listen mode sends onFCPublish as the name alone: a
            # command without a transaction id is taken as transaction 0
            self._on_command(m.stream_id, values[0], 0.0, None, tuple(values[1:]))
            return
        obj = values[2] if len(values) > 2 else None
        self._on_command(m.stream_id, values[0], float(txn), obj, tuple(values[3:]))

    def _on_control(self, m: Message) -> None:
        p = m.payload
        t = m.type_id
        if t == MT.SET_CHUNK_SIZE:
            # the chunk reader already applied it at the byte where it ended
            self._events.append(ChunkSizeChanged(_u32(p, "Set Chunk Size") & 0x7FFFFFFF))
        elif t == MT.ABORT:
            _u32(p, "Abort")  # applied by the chunk reader
        elif t == MT.ACKNOWLEDGEMENT:
            self._events.append(Acknowledged(_u32(p, "Acknowledgement")))
        elif t == MT.WINDOW_ACK_SIZE:
            size = _u32(p, "Window Acknowledgement Size")
            self._peer_window = size
            self._events.append(PeerWindow(size))
        elif t == MT.SET_PEER_BANDWIDTH:
            if len(p) < 5:
                raise ProtocolError("Set Peer Bandwidth shorter than 5 bytes")
            size, limit = _BW.unpack_from(p)
            self._events.append(PeerBandwidth(size, limit))
            if size != self._window_sent:
                self.set_window_ack_size(size)
        elif t == MT.USER_CONTROL:
            self._on_user_control(p)

    def _on_user_control(self, p: bytes) -> None:
        if len(p) < 2:
            raise ProtocolError("User Control message shorter than 2 bytes")
        event = p[0] << 8 | p[1]
        value = _U32.unpack_from(p, 2)[0] if len(p) >= 6 else 0
        if event == UC.PING_REQUEST:
            if len(p) < 6:
                raise ProtocolError("PingRequest without a timestamp")
            self._user_control(UC.PING_RESPONSE, value)
        elif event == UC.PING_RESPONSE:
            self._events.append(PingResponse(value))
        elif event == UC.SET_BUFFER_LENGTH:
            if len(p) < 10:
                raise ProtocolError("SetBufferLength shorter than 10 bytes")
            self._events.append(BufferLength(value, _U32.unpack_from(p, 6)[0]))
        else:
            self._events.append(UserControl(event, value, bytes(p[6:])))

    def _on_aggregate(self, m: Message) -> None:
        """Split an aggregate into its sub-messages, timestamps rebased so
        that the first one has the aggregate's timestamp."""
        if self._in_aggregate:
            raise ProtocolError("aggregate message inside an aggregate")
        p = m.payload
        n = len(p)
        pos = 0
        first: int | None = None
        left = self.config.max_aggregate_messages
        self._in_aggregate = True
        try:
            while pos < n:
                left -= 1
                if left < 0:
                    raise ProtocolError("aggregate of more than max_aggregate_messages="
                                        f"{self.config.max_aggregate_messages} messages")
                if n - pos < 11:
                    raise ProtocolError("truncated aggregate sub-message header")
                type_id = p[pos]
                size = p[pos + 1] << 16 | p[pos + 2] << 8 | p[pos + 3]
                ts = p[pos + 4] << 16 | p[pos + 5] << 8 | p[pos + 6] | p[pos + 7] << 24
                if n - pos - 11 < size + 4:
                    raise ProtocolError("truncated aggregate sub-message")
                if type_id not in (MT.AUDIO, MT.VIDEO, MT.DATA_AMF0, MT.DATA_AMF3):
                    raise ProtocolError(f"aggregate sub-message of type {type_id}")
                if first is None:
                    first = ts
                body = p[pos + 11:pos + 11 + size]
                pos += 11 + size + 4  # header, body, back pointer
                stamp = (m.timestamp + ts - first) & 0xFFFFFFFF
                self._handle(Message(type_id, bytes(body), stamp, m.stream_id, m.csid))
        finally:
            self._in_aggregate = False

    def _maybe_acknowledge(self) -> None:
        if self._peer_window:
            received = self._reader.bytes_received
            if received - self._acked >= self._peer_window:
                self._acked = received
                self._control(MT.ACKNOWLEDGEMENT, _U32.pack(received & 0xFFFFFFFF))

    def _parse_data(self, m: Message) -> Event:
        """A data message as Metadata or DataMessage."""
        values = self._decode_amf(m)
        body = m.payload
        if values and values[0] == "@setDataFrame" and len(values) >= 3 \
                and values[1] == "onMetaData" and isinstance(values[2], dict):
            if m.type_id == MT.DATA_AMF0 and body.startswith(_SET_DATA_FRAME):
                player_body = body[len(_SET_DATA_FRAME):]   # no re-encoding
            else:
                player_body = amf.dumps_all(["onMetaData", values[2]])
            return Metadata(m.stream_id, m.timestamp, values[2], player_body)
        if values and values[0] == "onMetaData" and len(values) >= 2 \
                and isinstance(values[1], dict):
            player_body = body if m.type_id == MT.DATA_AMF0 else amf.dumps_all(values[:2])
            return Metadata(m.stream_id, m.timestamp, values[1], player_body)
        if values and isinstance(values[0], str):
            return DataMessage(m.stream_id, m.timestamp, values[0], tuple(values[1:]), body)
        return DataMessage(m.stream_id, m.timestamp, "", tuple(values), body)


# --- argument helpers --------------------------------------------------------------

def _u32(p: bytes, what: str) -> int:
    if len(p) < 4:
        raise ProtocolError(f"{what} message shorter than 4 bytes")
    return int(_U32.unpack_from(p)[0])


def _bytes(payload: Buffer) -> bytes:
    return payload if type(payload) is bytes else bytes(payload)


#: The longest name a peer may give (application, stream name with its
#: query, tcUrl): names are logged, shown in stats and used as keys.
MAX_NAME = 4096


def checked_name(value: str, what: str) -> str:
    """``value``, or ProtocolError if it is longer than :data:`MAX_NAME`."""
    if len(value) > MAX_NAME:
        raise ProtocolError(f"{what} of {len(value)} characters (limit MAX_NAME={MAX_NAME})")
    return value


def str_arg(args: tuple[Any, ...], i: int) -> str:
    """Argument ``i`` of a command: a string ("" when absent) of at most
    :data:`MAX_NAME` characters."""
    if len(args) <= i:
        return ""
    value = args[i]
    if not isinstance(value, str):
        raise ProtocolError(f"expected a string argument, got {type(value).__name__}")
    return checked_name(value, "a string argument")


def num_arg(args: tuple[Any, ...], i: int, default: float) -> float:
    """Argument ``i`` of a command: a number (``default`` when absent or null)."""
    if len(args) <= i or args[i] is None:
        return default
    value = args[i]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"expected a number argument, got {type(value).__name__}")
    return float(value)


def stream_id_arg(value: Any) -> int | None:
    """A message stream id from the wire: a whole number in 1..2**32-1, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not (math.isfinite(value) and value == int(value) and 0 < value < 2**32):
        return None
    return int(value)
