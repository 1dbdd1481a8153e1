"""The client end of an RTMP connection, sans I/O.

::

    session = ClientSession("live", "rtmp://example.com/live")
    session.connect()
    sock.sendall(session.data_to_send())              # C0 + C1
    while True:
        for event in session.receive_data(sock.recv(65536)):
            if isinstance(event, Connected):
                session.start_publish("key")          # releaseStream ... publish
            elif isinstance(event, PublishStarted):
                session.send_video(event.stream_id, 0, avc_sequence_header)
        sock.sendall(session.data_to_send())

The publish and play sequences (releaseStream, FCPublish, createStream,
publish; createStream, play, SetBufferLength; FCUnpublish and deleteStream
at the end) and the meaning of the server's ``onStatus`` codes live here:
the application sees :class:`~rtmpx.events.PublishStarted`,
:class:`~rtmpx.events.PlayStarted`, :class:`~rtmpx.events.PlayStopped` and
:class:`~rtmpx.events.StreamFailed`.

Enhanced RTMP: ``connect`` advertises the session's ``capabilities``
(``fourCcList``, ``[video|audio]FourCcInfoMap``, ``capsEx``; default
:data:`~rtmpx.session.capabilities.DEFAULT_CAPABILITIES`, None for a legacy
connect) and :attr:`ClientSession.server_capabilities` is what the server
answered.  A NetConnection.Connect.ReconnectRequest ``onStatus`` on stream
0 becomes :class:`~rtmpx.events.ReconnectRequested`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any

from .. import amf
from ..chunk import Message
from ..constants import MessageType as MT
from ..constants import StatusCode, status_text
from ..constants import UserControlEvent as UC
from ..errors import InvalidStateError, ProtocolError
from ..events import (
    AudioData,
    CallResult,
    CommandCall,
    Connected,
    ConnectRejected,
    PlayStarted,
    PlayStopped,
    PublishStarted,
    ReconnectRequested,
    Status,
    StreamCreated,
    StreamFailed,
    VideoData,
)
from ..handshake import ClientHandshake
from ..url import parse_url, resolve_url
from .base import MAX_NAME, Buffer, MessageStream, Session, SessionConfig, stream_id_arg
from .capabilities import DEFAULT_CAPABILITIES, LEGACY, Capabilities
from .states import (
    CLIENT_CONNECTION,
    CLIENT_STREAM,
    Action,
    ConnectionInput,
    StreamInput,
)

__all__ = ["ClientSession"]

_UC_BUFFER = struct.Struct(">HII")

#: What each ``onStatus`` code means for the stream it is sent on.
_STATUS_INPUT: dict[str, StreamInput] = {
    StatusCode.PUBLISH_START: StreamInput.PUBLISH_START,
    StatusCode.PLAY_START: StreamInput.PLAY_START,
    StatusCode.PLAY_PUBLISH_NOTIFY: StreamInput.PLAY_START,
    StatusCode.PLAY_UNPUBLISH_NOTIFY: StreamInput.PLAY_STOP,
    StatusCode.PLAY_STOP: StreamInput.PLAY_STOP,
    StatusCode.PLAY_COMPLETE: StreamInput.PLAY_STOP,
}


class ClientSession(Session):
    """The client end of one RTMP connection.

    C0+C1 are ready in :meth:`data_to_send` at once.  Call
    :meth:`connect` (before or after the handshake); once
    :class:`~rtmpx.events.Connected` arrives, :meth:`start_publish` or
    :meth:`start_play` run the whole sequence a real encoder or player
    sends.  The steps are there too (:meth:`create_stream`, then
    :meth:`publish` or :meth:`play` on the id that
    :class:`~rtmpx.events.StreamCreated` brings).

    ``capabilities`` is what ``connect`` advertises (Enhanced RTMP;
    default :data:`~rtmpx.session.capabilities.DEFAULT_CAPABILITIES`; None
    or ``Capabilities()`` for a legacy connect); ``params`` entries win
    over it.
    """

    _connection_table = CLIENT_CONNECTION
    _stream_table = CLIENT_STREAM

    def __init__(self, app: str, tc_url: str, *, config: SessionConfig | None = None,
                 flash_ver: str = "FMLE/3.0 (compatible; rtmpx)",
                 params: dict[str, Any] | None = None, complex_handshake: bool = True,
                 epoch_ms: int = 0, random: Callable[[int], bytes] = os.urandom,
                 capabilities: Capabilities | None = DEFAULT_CAPABILITIES) -> None:
        super().__init__(config)
        self.app = app
        self.tc_url = tc_url
        self.capabilities = capabilities if capabilities is not None else LEGACY
        self._handshake = ClientHandshake(complex=complex_handshake, epoch_ms=epoch_ms,
                                          random=random)
        self._out.append(self._handshake.start())
        self._connect_params: dict[str, Any] = {
            "app": app, "type": "nonprivate", "flashVer": flash_ver, "tcUrl": tc_url,
        }
        self._connect_params.update(self.capabilities.to_amf())
        if params:
            self._connect_params.update(params)
        self._connect_queued = False
        self._next_txn = 2.0
        self._calls: dict[float, str] = {}
        # createStream transaction -> what start_publish/start_play do once it exists
        self._sequences: dict[float, tuple[Any, ...]] = {}
        self._cancelled: set[float] = set()   # their streams are deleted on arrival
        self.server_properties: dict[str, Any] = {}
        #: what the server's connect ``_result`` says it supports (empty until then)
        self.server_capabilities = LEGACY

    def _handshake_done(self) -> None:
        if self._connect_queued:
            self._connection_input(ConnectionInput.CONNECT, local=True, name="connect()")
            self._send_connect()

    # -- NetConnection ----------------------------------------------------------

    def connect(self) -> None:
        """Send ``connect`` (at once, or right after the handshake)."""
        if self._connect_queued:
            raise InvalidStateError("connect() was already called")
        action = self._connection_input(ConnectionInput.CONNECT, local=True, name="connect()")
        self._connect_queued = True
        if action is Action.SEND:
            self._send_connect()

    def _send_connect(self) -> None:
        if self.config.chunk_size != self._writer.chunk_size:
            self.set_chunk_size(self.config.chunk_size)
        self._calls[1.0] = "connect"
        self._command(0, "connect", 1.0, self._connect_params)

    def call(self, name: str, *args: Any, command_object: Any = None,
             stream_id: int = 0) -> float:
        """Call a server method; the answer arrives as
        :class:`~rtmpx.events.CallResult`.  Returns the transaction id."""
        self._connection_input(ConnectionInput.CALL, local=True, name=f"{name}()")
        txn = self._next_txn
        self._next_txn += 1
        self._calls[txn] = name
        self._command(stream_id, name, txn, command_object, *args)
        return txn

    def create_stream(self) -> float:
        """Ask for a message stream; :class:`~rtmpx.events.StreamCreated`
        brings its id.  Returns the transaction id."""
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
        stream = self._local_stream(stream_id, "delete_stream()")
        self._stream_input(stream, StreamInput.DELETE, local=True)
        del self._streams[stream_id]
        self._command(0, "deleteStream", 0.0, None, float(stream_id))

    # -- the sequences of real encoders and players ---------------------------------

    def start_publish(self, name: str, publish_type: str = "live") -> float:
        """Publish ``name`` as encoders do: releaseStream, FCPublish and
        createStream now, ``publish`` once the stream exists.

        Returns the request id (the createStream transaction id) that
        :class:`~rtmpx.events.PublishStarted` or
        :class:`~rtmpx.events.StreamFailed` will carry."""
        _check_publish_type(publish_type)
        self.release_stream(name)
        self.fc_publish(name)
        txn = self.create_stream()
        self._sequences[txn] = ("publish", name, publish_type)
        return txn

    def start_play(self, name: str, start: float = -2, duration: float = -1,
                   reset: bool = True, buffer_ms: int | None = 1000) -> float:
        """Play ``name`` as players do: createStream now, then ``play`` and
        SetBufferLength once the stream exists.

        Returns the request id that :class:`~rtmpx.events.PlayStarted` or
        :class:`~rtmpx.events.StreamFailed` will carry."""
        txn = self.create_stream()
        self._sequences[txn] = ("play", name, start, duration, reset, buffer_ms)
        return txn

    def cancel_request(self, request_id: float) -> None:
        """Give up a :meth:`start_publish`/:meth:`start_play` whose stream
        does not exist yet: when the server's answer comes, the stream is
        deleted at once and nothing is published or played."""
        if self._sequences.pop(request_id, None) is not None:
            self._cancelled.add(request_id)

    def stop_publish(self, stream_id: int) -> None:
        """End a publish as encoders do: FCUnpublish, then deleteStream."""
        stream = self._local_stream(stream_id, "stop_publish()")
        self.fc_unpublish(stream.name)
        self.delete_stream(stream_id)

    def stop_play(self, stream_id: int) -> None:
        """End a play: deleteStream."""
        self.delete_stream(stream_id)

    # -- NetStream ----------------------------------------------------------------

    def _local_stream(self, stream_id: int, call: str) -> MessageStream:
        self._connection_input(ConnectionInput.CALL, local=True, name=call)
        stream = self._streams.get(stream_id)
        if stream is None:
            raise InvalidStateError(f"{call}: no stream {stream_id}; call create_stream() first")
        return stream

    def publish(self, stream_id: int, name: str, publish_type: str = "live") -> None:
        """Start publishing ``name`` (``live``, ``record`` or ``append``) on a
        stream made by :meth:`create_stream`."""
        _check_publish_type(publish_type)
        stream = self._local_stream(stream_id, "publish()")
        self._stream_input(stream, StreamInput.PUBLISH, local=True)
        stream.name, stream.publish_type = name, publish_type
        self._command(stream_id, "publish", 0.0, None, name, publish_type)

    def play(self, stream_id: int, name: str, start: float = -2, duration: float = -1,
             reset: bool = True, buffer_ms: int | None = 1000) -> None:
        """Start playing ``name``; SetBufferLength follows when ``buffer_ms``."""
        stream = self._local_stream(stream_id, "play()")
        self._stream_input(stream, StreamInput.PLAY, local=True)
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
        self._stream_command(stream_id, StreamInput.CLOSE)

    def _stream_command(self, stream_id: int, what: StreamInput, *args: Any) -> None:
        stream = self._local_stream(stream_id, f"{what.value}()")
        self._stream_input(stream, what, local=True)
        self._command(stream_id, what.value, 0.0, None, *args)

    def receive_audio(self, stream_id: int, enabled: bool) -> None:
        """Ask the server to send (or stop) audio on a stream we play."""
        self._stream_command(stream_id, StreamInput.RECEIVE_AUDIO, enabled)

    def receive_video(self, stream_id: int, enabled: bool) -> None:
        """Ask the server to send (or stop) video on a stream we play."""
        self._stream_command(stream_id, StreamInput.RECEIVE_VIDEO, enabled)

    def pause(self, stream_id: int, paused: bool, position_ms: float) -> None:
        """Pause or resume a stream we play."""
        self._stream_command(stream_id, StreamInput.PAUSE, paused, float(position_ms))

    def seek(self, stream_id: int, position_ms: float) -> None:
        """Seek a stream we play."""
        self._stream_command(stream_id, StreamInput.SEEK, float(position_ms))

    def _send(self, type_id: int, stream_id: int, timestamp: int, payload: Buffer) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise InvalidStateError(f"stream {stream_id} is not publishing")
        self._stream_input(stream, StreamInput.SEND, local=True)
        self._media(type_id, stream_id, timestamp, payload)

    def send_audio(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Publish an audio message (an FLV audio tag body), timestamp in ms."""
        self._send(MT.AUDIO, stream_id, timestamp, payload)

    def send_video(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Publish a video message (an FLV video tag body), timestamp in ms."""
        self._send(MT.VIDEO, stream_id, timestamp, payload)

    def send_metadata(self, stream_id: int, metadata: dict[str, Any],
                      timestamp: int = 0) -> None:
        """Publish ``@setDataFrame("onMetaData", metadata)``."""
        self.send_data(stream_id, timestamp, amf.dumps_all(
            ["@setDataFrame", "onMetaData", amf.ECMAArray(metadata)]))

    def send_data(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Publish an AMF0 data message body as is."""
        self._send(MT.DATA_AMF0, stream_id, timestamp, payload)

    # -- from the server ------------------------------------------------------------

    def _on_command(self, stream_id: int, name: str, txn: float, obj: Any,
                    args: tuple[Any, ...]) -> None:
        action = self._connection_input(ConnectionInput.COMMAND, name=f"command {name!r}")
        if action is not Action.PROCESS:
            return  # Action.DROP: after a rejected connect
        if name == "_result" or name == "_error":
            self._on_result(txn, obj, args, name == "_error")
        elif name == "onStatus":
            self._on_status(stream_id, args)
        else:
            call = CommandCall(name, txn, obj, args, stream_id)
            self._events.append(call)
            if name not in self.config.accept_calls and txn:
                self.error(call, "Method not found.")

    def _on_result(self, txn: float, obj: Any, args: tuple[Any, ...], error: bool) -> None:
        name = self._calls.pop(txn, "")
        info = args[0] if args and isinstance(args[0], dict) else {}
        if name == "connect":
            self._connection_input(ConnectionInput.REJECT if error else ConnectionInput.ACCEPT,
                                   name="connect answer")
            if error:
                self._events.append(ConnectRejected(info))
            else:
                self.server_properties = obj if isinstance(obj, dict) else {}
                encoding = info.get("objectEncoding", 0)
                self.object_encoding = 3 if encoding == 3 else 0
                # in the properties, as the spec says; some servers put them in the info
                caps = Capabilities.from_amf(self.server_properties)
                self.server_capabilities = caps if caps.enhanced else Capabilities.from_amf(info)
                self._events.append(Connected(self.server_properties, info,
                                              capabilities=self.server_capabilities))
        elif name == "createStream":
            self._on_stream_created(txn, obj, args, error, info)
        else:
            self._events.append(CallResult(txn, obj, args, error, name))

    def _on_stream_created(self, txn: float, obj: Any, args: tuple[Any, ...], error: bool,
                           info: dict[str, Any]) -> None:
        sequence = self._sequences.pop(txn, None)
        if txn in self._cancelled:
            self._cancelled.discard(txn)
            stream_id = stream_id_arg(args[0]) if args and not error else None
            if stream_id is not None:
                self._command(0, "deleteStream", 0.0, None, float(stream_id))
            return
        if error:
            if sequence is not None:
                self._events.append(StreamFailed(0, txn, status_text(info, "code"),
                                                 status_text(info, "description"), info))
            else:
                self._events.append(CallResult(txn, obj, args, True, "createStream"))
            return
        stream_id = stream_id_arg(args[0]) if args else None
        if stream_id is None:
            raise ProtocolError("createStream result without a valid stream id")
        if len(self._streams) >= self.config.max_streams:
            raise ProtocolError("server gave more streams than max_streams")
        self._streams[stream_id] = MessageStream(stream_id, txn)
        self._events.append(StreamCreated(stream_id, txn))
        if sequence is None:
            return
        if sequence[0] == "publish":
            self.publish(stream_id, sequence[1], sequence[2])
        else:
            self.play(stream_id, *sequence[1:])

    def _on_status(self, stream_id: int, args: tuple[Any, ...]) -> None:
        info = args[0] if args and isinstance(args[0], dict) else {}
        code = status_text(info, "code")
        level = status_text(info, "level")
        description = status_text(info, "description")
        self._events.append(Status(stream_id, level, code, description, info))
        if stream_id == 0:  # NetConnection
            if code == StatusCode.RECONNECT_REQUEST and level == "status":
                self._on_reconnect_request(description, info)
            return
        what = StreamInput.FAIL if level == "error" else _STATUS_INPUT.get(code)
        stream = self._streams.get(stream_id)
        if what is None or stream is None:
            return
        action = self._stream_input(stream, what)
        if action is Action.STARTED:
            if what is StreamInput.PUBLISH_START:
                self._events.append(PublishStarted(stream_id, stream.name, stream.request_id))
            else:
                self._events.append(PlayStarted(stream_id, stream.name, code,
                                                stream.request_id))
        elif action is Action.STOPPED:
            self._events.append(PlayStopped(stream_id, stream.name, code))
        elif action is Action.FAILED:
            self._events.append(StreamFailed(stream_id, stream.request_id, code, description,
                                             info))

    def _on_reconnect_request(self, description: str, info: dict[str, Any]) -> None:
        """ReconnectRequested, to the server's tcUrl resolved against ours;
        a request whose tcUrl is not a usable rtmp(s) URL is ignored."""
        reference = info.get("tcUrl")
        if reference is None:
            reference = ""
        if not isinstance(reference, str) or len(reference) > MAX_NAME:
            return
        tc_url = resolve_url(self.tc_url, reference)
        try:
            parse_url(tc_url)
        except ValueError:
            return
        self._events.append(ReconnectRequested(tc_url, description, info))

    def _on_user_control(self, p: bytes) -> None:
        super()._on_user_control(p)
        if len(p) >= 6 and (p[0] << 8 | p[1]) == UC.STREAM_EOF:
            stream = self._streams.get(int.from_bytes(p[2:6], "big"))
            if stream is not None and \
                    self._stream_input(stream, StreamInput.PLAY_STOP) is Action.STOPPED:
                self._events.append(PlayStopped(stream.stream_id, stream.name, ""))

    def _on_media(self, m: Message) -> None:
        if self._media_action(m.stream_id) is Action.DELIVER:
            cls = VideoData if m.type_id == MT.VIDEO else AudioData
            self._events.append(cls(m.stream_id, m.timestamp, m.payload))

    def _on_data(self, m: Message) -> None:
        if m.stream_id == 0 or self._media_action(m.stream_id) is Action.DELIVER:
            self._events.append(self._parse_data(m))


def _check_publish_type(publish_type: str) -> None:
    if publish_type not in ("live", "record", "append"):
        raise ValueError("publish_type must be 'live', 'record' or 'append'")
