"""Sans-I/O RTMP sessions: bytes in, events out; calls in, bytes out.

:class:`ServerSession` is the server end of one connection,
:class:`ClientSession` the client end.  Neither does I/O nor reads a clock:
feed what the socket delivered to :meth:`~_Session.receive_data`, act on the
:mod:`events <rtmpx.events>` it returns, call methods to answer or to send,
and write :meth:`~_Session.data_to_send` to the socket::

    session = ServerSession()
    while True:
        for event in session.receive_data(sock.recv(65536)):
            if isinstance(event, ConnectRequest):
                session.accept_connect()
            elif isinstance(event, PublishRequest):
                session.accept_publish(event.stream_id)
            elif isinstance(event, VideoData):
                ...
        sock.sendall(session.data_to_send())

The sessions run the handshake, answer protocol control (acknowledgements
when the peer's window is reached, ping responses, Window Ack Size after a
Set Peer Bandwidth), and turn NetConnection/NetStream commands into events.
Every state rule is in :mod:`rtmpx._states`.  A peer that breaks the
protocol makes :meth:`receive_data` raise :class:`~rtmpx.ProtocolError`
(the connection should then be closed); misuse of the API raises
:class:`~rtmpx.RtmpError`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _states as S
from . import amf
from .chunk import ChunkReader, ChunkWriter, Message
from .constants import MessageType as MT
from .constants import UserControlEvent as UC
from .errors import ProtocolError, RtmpError
from .events import (
    Acknowledged,
    AudioData,
    BufferLength,
    CallResult,
    ChunkSizeChanged,
    CommandCall,
    Connected,
    ConnectRejected,
    ConnectRequest,
    DataMessage,
    Event,
    FCPublish,
    FCUnpublish,
    HandshakeComplete,
    Metadata,
    Pause,
    PeerBandwidth,
    PeerWindow,
    PingResponse,
    PlayRequest,
    PublishRequest,
    ReceiveAudio,
    ReceiveVideo,
    ReleaseStream,
    Seek,
    Status,
    StreamClosed,
    StreamCreated,
    StreamDeleted,
    Unpublished,
    UserControl,
    VideoData,
)
from .handshake import ClientHandshake, ServerHandshake

__all__ = ["ClientSession", "ServerSession", "SessionConfig", "split_query"]

Buffer = bytes | bytearray | memoryview

_U32 = struct.Struct(">I")
_UC_U32 = struct.Struct(">HI")
_UC_BUFFER = struct.Struct(">HII")
_BW = struct.Struct(">IB")
_SET_DATA_FRAME = b"\x02\x00\x0d@setDataFrame"

#: What a server says about itself in the connect ``_result``.
SERVER_PROPERTIES = {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0, "mode": 1.0}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Settings of a session; the limits are security settings.

    ``chunk_size`` is the size of the chunks we send (announced with Set
    Chunk Size once connected); ``window_ack_size`` and ``peer_bandwidth``
    are what a server announces at connect.  The ``max_*`` limits bound
    what a peer can make us hold: chunk-stream reassembly (see
    :class:`~rtmpx.ChunkReader`), message streams per connection, and the
    AMF decoder of commands.  ``accept_calls`` names the custom commands
    the application answers itself (with ``result``/``error``); any other
    unknown command is answered with ``_error`` at once.
    """

    chunk_size: int = 4096
    window_ack_size: int = 2_500_000
    peer_bandwidth: int = 2_500_000
    max_message_size: int = 8 * 1024 * 1024
    max_chunk_streams: int = 64
    max_buffered: int = 16 * 1024 * 1024
    max_streams: int = 16
    amf_max_depth: int = 64
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


class _Stream:
    """One message stream of a connection."""

    __slots__ = ("name", "publish_type", "query", "state", "stream_id")

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.state = S.IDLE
        self.name = ""
        self.query = ""
        self.publish_type = ""


class _Session:
    """What both ends share: chunking, protocol control, acknowledgements."""

    _stream_table: dict[tuple[str, str], str]

    def __init__(self, config: SessionConfig | None) -> None:
        self.config = config if config is not None else SessionConfig()
        cfg = self.config
        self._reader = ChunkReader(max_message_size=cfg.max_message_size,
                                   max_chunk_streams=cfg.max_chunk_streams,
                                   max_buffered=cfg.max_buffered)
        self._writer = ChunkWriter()
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self.state = S.HANDSHAKE
        self._streams: dict[int, _Stream] = {}
        self._peer_window = 0        # the peer's Window Ack Size: when we must ack
        self._acked = 0              # bytes_received at our last acknowledgement
        self._window_sent = 0        # the Window Ack Size we last told the peer
        self._failed: ProtocolError | None = None
        self._in_aggregate = False
        self.object_encoding = 0

    # -- the I/O edge ---------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed received bytes; returns the events they complete.

        Raises :class:`~rtmpx.ProtocolError` when the peer broke the
        protocol; the session is then dead and raises again on any input.
        """
        if self._failed is not None:
            raise ProtocolError(f"session already failed: {self._failed}")
        try:
            if self.state == S.HANDSHAKE:
                data = self._feed_handshake(data)
            if data:
                for message in self._reader.feed(data):
                    self._handle(message)
                self._maybe_acknowledge()
        except ProtocolError as exc:
            self._failed = exc
            raise
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (empty when there are none)."""
        if not self._out:
            return b""
        out = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        return out

    @property
    def bytes_received(self) -> int:
        """Chunk-stream bytes received (after the handshake)."""
        return int(self._reader.bytes_received)

    @property
    def chunk_size(self) -> int:
        """The size of the chunks we send."""
        return int(self._writer.chunk_size)

    def stream_state(self, stream_id: int) -> str | None:
        """The state of a message stream (see :mod:`rtmpx._states`), or None."""
        stream = self._streams.get(stream_id)
        return stream.state if stream is not None else None

    def _feed_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        raise NotImplementedError

    # -- sending ------------------------------------------------------------------

    def send_message(self, message: Message) -> None:
        """Queue any message (the escape hatch under the typed methods)."""
        self._out.append(self._writer.encode(message))

    def send_raw(self, data: bytes) -> None:
        """Queue bytes already chunked by the caller (fan-out of shared chunks)."""
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

    def _status(self, stream_id: int, level: str, code: str, description: str,
                **extra: Any) -> None:
        info = {"level": level, "code": code, "description": description}
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
              code: str = "NetConnection.Call.Failed") -> None:
        """Answer a :class:`CommandCall` with ``_error``."""
        self._command(call.stream_id, "_error", call.transaction_id, None,
                      {"level": "error", "code": code, "description": description})

    # -- receiving ----------------------------------------------------------------

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

    def _media_allowed(self, stream_id: int) -> bool:
        """Whether media on ``stream_id`` is delivered (True) or dropped (False)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return self._unknown_stream_media(stream_id)
        nxt = self._stream_table.get((stream.state, S.MEDIA))
        if nxt is None:
            raise ProtocolError(f"media on stream {stream_id} in state {stream.state}")
        return nxt == S.PUBLISHING or nxt == S.PLAYING or nxt == S.PLAY_PENDING

    def _unknown_stream_media(self, stream_id: int) -> bool:
        raise ProtocolError(f"media on unknown stream {stream_id}")

    def _decode_amf(self, m: Message) -> list[Any]:
        body: bytes | memoryview = m.payload
        if m.type_id == MT.COMMAND_AMF3 or m.type_id == MT.DATA_AMF3:
            # AMF3 command/data bodies start with one 0x00, then AMF0 values
            # that may switch to AMF3 (marker 0x11)
            body = memoryview(body)[1:] if body[:1] == b"\x00" else body
        return amf.loads_all(body, max_depth=self.config.amf_max_depth,
                             max_length=self.config.max_message_size)

    def _on_command_message(self, m: Message) -> None:
        values = self._decode_amf(m)
        if not values or not isinstance(values[0], str):
            raise ProtocolError(f"malformed command message: {values[:2]!r}")
        txn = values[1] if len(values) > 1 else None
        if not isinstance(txn, (int, float)) or isinstance(txn, bool):
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
        self._in_aggregate = True
        try:
            while pos < n:
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

    def _move(self, stream: _Stream, what: str, *, local: bool = False) -> str:
        """Apply one transition of the stream table, or refuse it."""
        nxt = self._stream_table.get((stream.state, what))
        if nxt is None:
            msg = f"{what} is not allowed on stream {stream.stream_id} in state {stream.state}"
            if local:
                raise RtmpError(msg)
            raise ProtocolError(msg)
        stream.state = nxt
        return nxt

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


def _u32(p: bytes, what: str) -> int:
    if len(p) < 4:
        raise ProtocolError(f"{what} message shorter than 4 bytes")
    return int(_U32.unpack_from(p)[0])


# --- server ----------------------------------------------------------------------

_SERVER_COMMANDS = frozenset().union(*S.SERVER_CONNECTION.values())


class ServerSession(_Session):
    """The server end of one RTMP connection.

    Decisions: :meth:`accept_connect` / :meth:`reject_connect` answer a
    :class:`~rtmpx.events.ConnectRequest`, :meth:`accept_publish` /
    :meth:`reject_publish` a :class:`~rtmpx.events.PublishRequest`,
    :meth:`accept_play` / :meth:`reject_play` a
    :class:`~rtmpx.events.PlayRequest`.  To players:
    :meth:`send_audio`, :meth:`send_video`, :meth:`send_metadata`,
    :meth:`send_data`, :meth:`notify_unpublish`, :meth:`notify_publish`.
    """

    _stream_table = S.SERVER_STREAM

    def __init__(self, config: SessionConfig | None = None, *, epoch_ms: int = 0,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        super().__init__(config)
        self._handshake = ServerHandshake(epoch_ms=epoch_ms, random=random)
        self._connect_txn = 1.0
        self._next_stream_id = 1
        self.app = ""
        self.connect_params: dict[str, Any] = {}

    def _feed_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        hs = self._handshake
        reply = hs.feed(data)
        if reply:
            self._out.append(reply)
        if not hs.done:
            return b""
        self.state = S.AWAIT_CONNECT
        self._events.append(HandshakeComplete(bool(hs.complex), int(hs.peer_version or 0)))
        return bytes(hs.leftover)

    # -- commands from the client ---------------------------------------------------

    def _on_command(self, stream_id: int, name: str, txn: float, obj: Any,
                    args: tuple[Any, ...]) -> None:
        allowed = S.SERVER_CONNECTION.get(self.state, frozenset())
        known = name in _SERVER_COMMANDS
        if (name if known else "<call>") not in allowed:
            raise ProtocolError(f"command {name!r} is not allowed in state {self.state}")
        if name == "connect":
            self._on_connect(txn, obj, args)
        elif name == "createStream":
            self._on_create_stream(txn)
        elif name in ("publish", "play", "closeStream", "receiveAudio", "receiveVideo",
                      "pause", "seek"):
            self._on_stream_command(stream_id, name, txn, args)
        elif name == "deleteStream":
            self._on_delete_stream(args)
        elif name == "releaseStream":
            self._events.append(ReleaseStream(_str_arg(args, 0)))
            if txn:
                self._command(0, "_result", txn, None, amf.UNDEFINED)
        elif name == "FCPublish":
            stream_name = _str_arg(args, 0)
            self._events.append(FCPublish(stream_name))
            self._command(0, "onFCPublish", 0.0, None,
                          {"code": "NetStream.Publish.Start", "description": stream_name})
            if txn:
                self._command(0, "_result", txn, None, amf.UNDEFINED)
        elif name == "FCUnpublish":
            self._on_fc_unpublish(txn, _str_arg(args, 0))
        elif name == "_checkbw":
            if txn:
                self._command(0, "_result", txn, None, amf.UNDEFINED)
        elif name == "getStreamLength":
            if txn:
                self._command(stream_id, "_result", txn, None, 0.0)
        elif name == "_result" or name == "_error":
            self._events.append(CallResult(txn, obj, args, name == "_error"))
        else:
            call = CommandCall(name, txn, obj, args, stream_id)
            self._events.append(call)
            if name not in self.config.accept_calls and txn:
                self.error(call, f"Method not found ({name}).")

    def _on_connect(self, txn: float, obj: Any, args: tuple[Any, ...]) -> None:
        params = obj if isinstance(obj, dict) else {}
        app_field = params.get("app", "")
        app, query = split_query(app_field if isinstance(app_field, str) else "")
        tc_url = params.get("tcUrl", "")
        tc_url = tc_url if isinstance(tc_url, str) else ""
        if not query and "?" in tc_url:
            query = tc_url.partition("?")[2]
        encoding = params.get("objectEncoding", 0)
        self.object_encoding = 3 if encoding == 3 else 0
        self._connect_txn = txn
        self.app = app.strip("/")
        self.connect_params = params
        self.state = S.CONNECT_PENDING
        self._events.append(ConnectRequest(self.app, query, tc_url, params,
                                           self.object_encoding, args))

    def accept_connect(self, properties: dict[str, Any] | None = None,
                       info: dict[str, Any] | None = None) -> None:
        """Accept the pending connect: Window Ack Size, Set Peer Bandwidth,
        Set Chunk Size, then ``_result`` with NetConnection.Connect.Success."""
        self._expect_state(S.CONNECT_PENDING, "accept_connect")
        cfg = self.config
        self.set_window_ack_size(cfg.window_ack_size)
        self._control(MT.SET_PEER_BANDWIDTH, _BW.pack(cfg.peer_bandwidth, 2))
        if cfg.chunk_size != self._writer.chunk_size:
            self.set_chunk_size(cfg.chunk_size)
        reply = {"level": "status", "code": "NetConnection.Connect.Success",
                 "description": "Connection succeeded.",
                 "objectEncoding": float(self.object_encoding)}
        if info:
            reply.update(info)
        self._command(0, "_result", self._connect_txn, dict(properties or SERVER_PROPERTIES),
                      reply)
        self.state = S.CONNECTED

    def reject_connect(self, description: str = "Connection rejected.",
                       code: str = "NetConnection.Connect.Rejected") -> None:
        """Refuse the pending connect with ``_error``; then close the connection."""
        self._expect_state(S.CONNECT_PENDING, "reject_connect")
        self._command(0, "_error", self._connect_txn, None,
                      {"level": "error", "code": code, "description": description})
        self.state = S.REJECTED

    def _expect_state(self, state: str, what: str) -> None:
        if self.state != state:
            raise RtmpError(f"{what}() needs connection state {state}, not {self.state}")

    def _on_create_stream(self, txn: float) -> None:
        if len(self._streams) >= self.config.max_streams:
            self._command(0, "_error", txn, None,
                          {"level": "error", "code": "NetConnection.Call.Failed",
                           "description": "Too many streams."})
            return
        stream_id = self._next_stream_id
        while stream_id in self._streams:
            stream_id += 1
        self._next_stream_id = stream_id + 1
        self._streams[stream_id] = _Stream(stream_id)
        self._command(0, "_result", txn, None, float(stream_id))
        self._events.append(StreamCreated(stream_id, txn))

    def _on_stream_command(self, stream_id: int, name: str, txn: float,
                           args: tuple[Any, ...]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise ProtocolError(f"{name} on stream {stream_id}, which was never created")
        before = stream.state
        self._move(stream, name)
        if name == "publish":
            stream.name, stream.query = split_query(_str_arg(args, 0))
            kind = args[1] if len(args) > 1 and isinstance(args[1], str) else "live"
            stream.publish_type = kind.lower()
            self._events.append(PublishRequest(stream_id, stream.name, stream.query,
                                               stream.publish_type))
        elif name == "play":
            stream.name, stream.query = split_query(_str_arg(args, 0))
            start = _num_arg(args, 1, -2.0)
            duration = _num_arg(args, 2, -1.0)
            reset = bool(args[3]) if len(args) > 3 and args[3] is not None else True
            self._events.append(PlayRequest(stream_id, stream.name, stream.query, start,
                                            duration, reset))
        elif name == "closeStream":
            if before == S.PUBLISHING:
                self._events.append(Unpublished(stream_id, stream.name))
            self._events.append(StreamClosed(stream_id))
        elif name == "receiveAudio":
            self._events.append(ReceiveAudio(stream_id, bool(args[0]) if args else True))
        elif name == "receiveVideo":
            self._events.append(ReceiveVideo(stream_id, bool(args[0]) if args else True))
        elif name == "pause":
            paused = bool(args[0]) if args else True
            self._events.append(Pause(stream_id, paused, _num_arg(args, 1, 0.0)))
        elif name == "seek":
            self._events.append(Seek(stream_id, _num_arg(args, 0, 0.0)))

    def _on_delete_stream(self, args: tuple[Any, ...]) -> None:
        stream_id = int(_num_arg(args, 0, 0.0))
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return  # clients delete streams that are already gone: harmless
        if stream.state == S.PUBLISHING:
            self._events.append(Unpublished(stream_id, stream.name))
        self._events.append(StreamDeleted(stream_id))

    def _on_fc_unpublish(self, txn: float, name: str) -> None:
        self._events.append(FCUnpublish(name))
        base, _ = split_query(name)
        for stream in self._streams.values():
            if stream.state == S.PUBLISHING and stream.name == base:
                self._move(stream, "FCUnpublish")
                self._events.append(Unpublished(stream.stream_id, stream.name))
        self._command(0, "onFCUnpublish", 0.0, None,
                      {"code": "NetStream.Unpublish.Success", "description": name})
        if txn:
            self._command(0, "_result", txn, None, amf.UNDEFINED)

    # -- publish and play decisions ---------------------------------------------------

    def _local_stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise RtmpError(f"no stream {stream_id} on this connection")
        return stream

    def accept_publish(self, stream_id: int) -> None:
        """Accept a pending publish: StreamBegin and NetStream.Publish.Start."""
        stream = self._local_stream(stream_id)
        self._move(stream, S.ACCEPT, local=True)
        self._user_control(UC.STREAM_BEGIN, stream_id)
        self._status(stream_id, "status", "NetStream.Publish.Start",
                     f"{stream.name} is now published.", details=stream.name)

    def reject_publish(self, stream_id: int, description: str = "Publish rejected.",
                       code: str = "NetStream.Publish.BadName") -> None:
        """Refuse a pending publish with an error onStatus (BadName by default)."""
        stream = self._local_stream(stream_id)
        self._move(stream, S.REJECT, local=True)
        self._status(stream_id, "error", code, description, details=stream.name)

    def accept_play(self, stream_id: int, *, reset: bool = True) -> None:
        """Accept a pending play: StreamBegin, Play.Reset, Play.Start and
        ``|RtmpSampleAccess``; then send metadata, sequence headers, media."""
        stream = self._local_stream(stream_id)
        self._move(stream, S.ACCEPT, local=True)
        self._user_control(UC.STREAM_BEGIN, stream_id)
        if reset:
            self._status(stream_id, "status", "NetStream.Play.Reset",
                         f"Playing and resetting {stream.name}.", details=stream.name)
        self._status(stream_id, "status", "NetStream.Play.Start",
                     f"Started playing {stream.name}.", details=stream.name)
        self.send_message(Message(MT.DATA_AMF0,
                                  amf.dumps_all(["|RtmpSampleAccess", True, True]),
                                  0, stream_id))

    def reject_play(self, stream_id: int, description: str = "Stream not found.",
                    code: str = "NetStream.Play.StreamNotFound") -> None:
        """Refuse a pending play with an error onStatus."""
        stream = self._local_stream(stream_id)
        self._move(stream, S.REJECT, local=True)
        self._status(stream_id, "error", code, description, details=stream.name)

    def send_status(self, stream_id: int, code: str, description: str = "",
                    level: str = "status", **extra: Any) -> None:
        """Send any onStatus on a stream (e.g. NetStream.Seek.Notify)."""
        self._status(stream_id, level, code, description, **extra)

    def notify_unpublish(self, stream_id: int) -> None:
        """Tell a player its publisher left: StreamEOF, Play.UnpublishNotify.
        The player stays connected, waiting for a republish."""
        stream = self._local_stream(stream_id)
        self._user_control(UC.STREAM_EOF, stream_id)
        self._status(stream_id, "status", "NetStream.Play.UnpublishNotify",
                     f"{stream.name} is now unpublished.", details=stream.name)

    def notify_publish(self, stream_id: int) -> None:
        """Tell a waiting player a publisher arrived: StreamBegin, Play.PublishNotify."""
        stream = self._local_stream(stream_id)
        self._user_control(UC.STREAM_BEGIN, stream_id)
        self._status(stream_id, "status", "NetStream.Play.PublishNotify",
                     f"{stream.name} is now published.", details=stream.name)

    def _playing(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.state != S.PLAYING:
            raise RtmpError(f"stream {stream_id} is not playing")

    def send_audio(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Send an audio message (an FLV audio tag body) to a player."""
        self._playing(stream_id)
        self._media(MT.AUDIO, stream_id, timestamp, payload)

    def send_video(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Send a video message (an FLV video tag body) to a player."""
        self._playing(stream_id)
        self._media(MT.VIDEO, stream_id, timestamp, payload)

    def send_data(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Send an AMF0 data message body as is (e.g. ``Metadata.payload``)."""
        self._playing(stream_id)
        self._media(MT.DATA_AMF0, stream_id, timestamp, payload)

    def send_metadata(self, stream_id: int, metadata: dict[str, Any],
                      timestamp: int = 0) -> None:
        """Send ``onMetaData`` with ``metadata`` to a player."""
        self.send_data(stream_id, timestamp,
                       amf.dumps_all(["onMetaData", amf.ECMAArray(metadata)]))

    # -- media and data from a publisher ---------------------------------------------

    def _on_media(self, m: Message) -> None:
        stream = self._streams.get(m.stream_id)
        if stream is not None and stream.state == S.PUBLISHING:  # the fast path
            cls = VideoData if m.type_id == MT.VIDEO else AudioData
            self._events.append(cls(m.stream_id, m.timestamp, m.payload))
        elif self._media_allowed(m.stream_id):
            raise AssertionError("unreachable: only a publishing stream takes media")

    def _on_data(self, m: Message) -> None:
        if self._media_allowed(m.stream_id):
            self._events.append(self._parse_data(m))


# --- client ----------------------------------------------------------------------

class ClientSession(_Session):
    """The client end of one RTMP connection.

    C0+C1 are ready in :meth:`data_to_send` at once.  Call
    :meth:`connect` (before or after the handshake), then
    :meth:`create_stream`, then :meth:`publish` or :meth:`play` on the id
    that :class:`~rtmpx.events.StreamCreated` brings.
    """

    _stream_table = S.CLIENT_STREAM

    def __init__(self, app: str, tc_url: str, *, config: SessionConfig | None = None,
                 flash_ver: str = "FMLE/3.0 (compatible; rtmpx)",
                 params: dict[str, Any] | None = None, complex_handshake: bool = True,
                 epoch_ms: int = 0, random: Callable[[int], bytes] = os.urandom) -> None:
        super().__init__(config)
        self.app = app
        self.tc_url = tc_url
        self._handshake = ClientHandshake(complex=complex_handshake, epoch_ms=epoch_ms,
                                          random=random)
        self._out.append(self._handshake.start())
        self._connect_params: dict[str, Any] = {
            "app": app, "type": "nonprivate", "flashVer": flash_ver, "tcUrl": tc_url,
        }
        if params:
            self._connect_params.update(params)
        self._connect_queued = False
        self._next_txn = 2.0
        self._calls: dict[float, str] = {}
        self.server_properties: dict[str, Any] = {}

    def _feed_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        hs = self._handshake
        reply = hs.feed(data)
        if reply:
            self._out.append(reply)
        if not hs.done:
            return b""
        self.state = S.AWAIT_CONNECT
        self._events.append(HandshakeComplete(bool(hs.complex), int(hs.peer_version or 0)))
        if self._connect_queued:
            self._send_connect()
        return bytes(hs.leftover)

    # -- NetConnection ----------------------------------------------------------

    def connect(self) -> None:
        """Send ``connect`` (at once, or right after the handshake)."""
        if self._connect_queued or self.state not in (S.HANDSHAKE, S.AWAIT_CONNECT):
            raise RtmpError("connect() was already called")
        self._connect_queued = True
        if self.state == S.AWAIT_CONNECT:
            self._send_connect()

    def _send_connect(self) -> None:
        if self.config.chunk_size != self._writer.chunk_size:
            self.set_chunk_size(self.config.chunk_size)
        self._calls[1.0] = "connect"
        self._command(0, "connect", 1.0, self._connect_params)
        self.state = S.CONNECT_PENDING

    def _connected(self, what: str) -> None:
        if self.state != S.CONNECTED:
            raise RtmpError(f"{what}() needs a connected session (state {self.state})")

    def call(self, name: str, *args: Any, command_object: Any = None,
             stream_id: int = 0) -> float:
        """Call a server method; the answer arrives as :class:`CallResult`.
        Returns the transaction id."""
        self._connected("call")
        txn = self._next_txn
        self._next_txn += 1
        self._calls[txn] = name
        self._command(stream_id, name, txn, command_object, *args)
        return txn

    def create_stream(self) -> float:
        """Ask for a message stream; :class:`StreamCreated` brings its id."""
        return self.call("createStream")

    def release_stream(self, name: str) -> None:
        """``releaseStream(name)`` as encoders send it before publishing."""
        self.call("releaseStream", name)

    def fc_publish(self, name: str) -> None:
        """``FCPublish(name)``."""
        self.call("FCPublish", name)

    def fc_unpublish(self, name: str) -> None:
        """``FCUnpublish(name)``."""
        self.call("FCUnpublish", name)

    def delete_stream(self, stream_id: int) -> None:
        """``deleteStream``: the stream is gone on both ends."""
        self._connected("delete_stream")
        self._streams.pop(stream_id, None)
        self._command(0, "deleteStream", 0.0, None, float(stream_id))

    # -- NetStream ----------------------------------------------------------------

    def _local_stream(self, stream_id: int) -> _Stream:
        self._connected("stream command")
        stream = self._streams.get(stream_id)
        if stream is None:
            raise RtmpError(f"no stream {stream_id}: call create_stream() first")
        return stream

    def publish(self, stream_id: int, name: str, publish_type: str = "live") -> None:
        """Start publishing ``name`` (``live``, ``record`` or ``append``)."""
        if publish_type not in ("live", "record", "append"):
            raise ValueError("publish_type must be 'live', 'record' or 'append'")
        stream = self._local_stream(stream_id)
        self._move(stream, "publish", local=True)
        stream.name, stream.publish_type = name, publish_type
        self._command(stream_id, "publish", 0.0, None, name, publish_type)

    def play(self, stream_id: int, name: str, start: float = -2, duration: float = -1,
             reset: bool = True, buffer_ms: int | None = 1000) -> None:
        """Start playing ``name``; SetBufferLength follows when ``buffer_ms``."""
        stream = self._local_stream(stream_id)
        self._move(stream, "play", local=True)
        stream.name = name
        self._command(stream_id, "play", 0.0, None, name, float(start), float(duration), reset)
        if buffer_ms is not None:
            self.set_buffer_length(stream_id, buffer_ms)

    def set_buffer_length(self, stream_id: int, milliseconds: int) -> None:
        """User control SetBufferLength for a stream we play."""
        self._control(MT.USER_CONTROL, _UC_BUFFER.pack(UC.SET_BUFFER_LENGTH, stream_id,
                                                        milliseconds))

    def close_stream(self, stream_id: int) -> None:
        """``closeStream``: stop publishing or playing on the stream."""
        stream = self._local_stream(stream_id)
        self._move(stream, "closeStream", local=True)
        self._command(stream_id, "closeStream", 0.0, None)

    def _stream_command(self, stream_id: int, name: str, *args: Any) -> None:
        stream = self._local_stream(stream_id)
        self._move(stream, name, local=True)
        self._command(stream_id, name, 0.0, None, *args)

    def receive_audio(self, stream_id: int, enabled: bool) -> None:
        """Ask the server to send (or stop) audio on a stream we play."""
        self._stream_command(stream_id, "receiveAudio", enabled)

    def receive_video(self, stream_id: int, enabled: bool) -> None:
        """Ask the server to send (or stop) video on a stream we play."""
        self._stream_command(stream_id, "receiveVideo", enabled)

    def pause(self, stream_id: int, paused: bool, position_ms: float) -> None:
        """Pause or resume a stream we play."""
        self._stream_command(stream_id, "pause", paused, float(position_ms))

    def seek(self, stream_id: int, position_ms: float) -> None:
        """Seek a stream we play."""
        self._stream_command(stream_id, "seek", float(position_ms))

    def _publishing(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.state != S.PUBLISHING:
            raise RtmpError(f"stream {stream_id} is not publishing")

    def send_audio(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Publish an audio message (an FLV audio tag body), timestamp in ms."""
        self._publishing(stream_id)
        self._media(MT.AUDIO, stream_id, timestamp, payload)

    def send_video(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Publish a video message (an FLV video tag body), timestamp in ms."""
        self._publishing(stream_id)
        self._media(MT.VIDEO, stream_id, timestamp, payload)

    def send_metadata(self, stream_id: int, metadata: dict[str, Any],
                      timestamp: int = 0) -> None:
        """Publish ``@setDataFrame("onMetaData", metadata)``."""
        self.send_data(stream_id, timestamp, amf.dumps_all(
            ["@setDataFrame", "onMetaData", amf.ECMAArray(metadata)]))

    def send_data(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Publish an AMF0 data message body as is."""
        self._publishing(stream_id)
        self._media(MT.DATA_AMF0, stream_id, timestamp, payload)

    # -- from the server ------------------------------------------------------------

    def _on_command(self, stream_id: int, name: str, txn: float, obj: Any,
                    args: tuple[Any, ...]) -> None:
        if self.state == S.HANDSHAKE or self.state == S.AWAIT_CONNECT:
            raise ProtocolError(f"command {name!r} before connect")
        if name == "_result" or name == "_error":
            self._on_result(txn, obj, args, name == "_error")
        elif name == "onStatus":
            self._on_status(stream_id, args)
        else:
            call = CommandCall(name, txn, obj, args, stream_id)
            self._events.append(call)
            if name not in self.config.accept_calls and txn:
                self.error(call, f"Method not found ({name}).")

    def _on_result(self, txn: float, obj: Any, args: tuple[Any, ...], error: bool) -> None:
        name = self._calls.pop(txn, "")
        if name == "connect" and self.state == S.CONNECT_PENDING:
            info = args[0] if args and isinstance(args[0], dict) else {}
            if error:
                self.state = S.REJECTED
                self._events.append(ConnectRejected(info))
            else:
                self.state = S.CONNECTED
                self.server_properties = obj if isinstance(obj, dict) else {}
                encoding = info.get("objectEncoding", 0)
                self.object_encoding = 3 if encoding == 3 else 0
                self._events.append(Connected(self.server_properties, info))
        elif name == "createStream" and not error:
            if not args or not isinstance(args[0], (int, float)) or isinstance(args[0], bool) \
                    or not 0 < args[0] < 2**32:
                raise ProtocolError(f"createStream result without a stream id: {args!r}")
            stream_id = int(args[0])
            if len(self._streams) >= self.config.max_streams:
                raise ProtocolError("server gave more streams than max_streams")
            self._streams[stream_id] = _Stream(stream_id)
            self._events.append(StreamCreated(stream_id, txn))
        else:
            self._events.append(CallResult(txn, obj, args, error, name))

    def _on_status(self, stream_id: int, args: tuple[Any, ...]) -> None:
        info = args[0] if args and isinstance(args[0], dict) else {}
        code = str(info.get("code", ""))
        level = str(info.get("level", ""))
        stream = self._streams.get(stream_id)
        if stream is not None:
            if level == "error":
                what: str | None = S.FAIL
            elif code in ("NetStream.Publish.Start", "NetStream.Play.Start"):
                what = S.START
            else:
                what = None
            if what is not None and (stream.state, what) in self._stream_table:
                self._move(stream, what)
        self._events.append(Status(stream_id, level, code, str(info.get("description", "")),
                                   info))

    def _unknown_stream_media(self, stream_id: int) -> bool:
        return False  # media still in flight for a stream we deleted: dropped

    def _on_media(self, m: Message) -> None:
        if self._media_allowed(m.stream_id):
            cls = VideoData if m.type_id == MT.VIDEO else AudioData
            self._events.append(cls(m.stream_id, m.timestamp, m.payload))

    def _on_data(self, m: Message) -> None:
        if m.stream_id == 0 or self._media_allowed(m.stream_id):
            self._events.append(self._parse_data(m))


# --- argument helpers --------------------------------------------------------------

def _bytes(payload: Buffer) -> bytes:
    return payload if type(payload) is bytes else bytes(payload)


def _str_arg(args: tuple[Any, ...], i: int) -> str:
    if len(args) <= i:
        return ""
    value = args[i]
    if not isinstance(value, str):
        raise ProtocolError(f"expected a string argument, got {type(value).__name__}")
    return value


def _num_arg(args: tuple[Any, ...], i: int, default: float) -> float:
    if len(args) <= i or args[i] is None:
        return default
    value = args[i]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"expected a number argument, got {type(value).__name__}")
    return float(value)

