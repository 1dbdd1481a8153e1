"""The server end of an RTMP connection, sans I/O.

::

    session = ServerSession()
    while True:
        for event in session.receive_data(sock.recv(65536)):
            if isinstance(event, ConnectRequest):
                for later in session.accept_connect():   # commands held meanwhile
                    ...
            elif isinstance(event, PublishRequest):
                session.accept_publish(event.stream_id)
            elif isinstance(event, VideoData):
                ...
        sock.sendall(session.data_to_send())

The session runs the handshake, answers protocol control, and answers by
itself everything that needs no decision: createStream, releaseStream,
FCPublish/FCUnpublish, _checkbw, getStreamLength, pause and seek
(NetStream.Pause.Notify, Unpause.Notify, Seek.Notify), unknown calls
(``_error``).  Connect, publish and play are the application's to decide.

Enhanced RTMP negotiation: the client's ``fourCcList``,
``[video|audio]FourCcInfoMap`` and ``capsEx`` are read into
:attr:`ServerSession.peer_capabilities` (and the
:class:`~rtmpx.events.ConnectRequest`); a client that sent any of them
gets the server's own :attr:`ServerSession.capabilities` in the properties
of the connect ``_result``, a legacy client the legacy answer.
:meth:`ServerSession.send_reconnect_request` asks a client that advertised
capsEx Reconnect to reconnect.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .. import amf
from ..chunk import Message
from ..constants import MessageType as MT
from ..constants import StatusCode
from ..constants import UserControlEvent as UC
from ..errors import InvalidStateError, ProtocolError
from ..events import (
    AudioData,
    CallResult,
    CommandCall,
    ConnectRequest,
    Event,
    FCPublish,
    FCUnpublish,
    MediaBatch,
    Pause,
    PlayRequest,
    PlayStopped,
    PublishRequest,
    ReceiveAudio,
    ReceiveVideo,
    ReleaseStream,
    Seek,
    StreamClosed,
    StreamCreated,
    StreamDeleted,
    Unpublished,
    VideoData,
)
from ..handshake import ServerHandshake
from .base import (
    MAX_NAME,
    Buffer,
    MessageStream,
    Session,
    SessionConfig,
    checked_name,
    num_arg,
    split_query,
    str_arg,
    stream_id_arg,
)
from .capabilities import DEFAULT_CAPABILITIES, LEGACY, Capabilities
from .states import (
    SERVER_CONNECTION,
    SERVER_STREAM,
    Action,
    ConnectionInput,
    StreamInput,
    StreamState,
)

__all__ = ["SERVER_PROPERTIES", "ServerSession"]

#: What a server says about itself in the connect ``_result``.
SERVER_PROPERTIES = {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0, "mode": 1.0}

_STREAM_COMMANDS = {
    "publish": StreamInput.PUBLISH, "play": StreamInput.PLAY, "closeStream": StreamInput.CLOSE,
    "pause": StreamInput.PAUSE, "seek": StreamInput.SEEK,
    "receiveAudio": StreamInput.RECEIVE_AUDIO, "receiveVideo": StreamInput.RECEIVE_VIDEO,
}

_Command = tuple[int, str, float, Any, tuple[Any, ...]]


class ServerSession(Session):
    """The server end of one RTMP connection.

    Decisions: :meth:`accept_connect` / :meth:`reject_connect` answer a
    :class:`~rtmpx.events.ConnectRequest`, :meth:`accept_publish` /
    :meth:`reject_publish` a :class:`~rtmpx.events.PublishRequest`,
    :meth:`accept_play` / :meth:`reject_play` a
    :class:`~rtmpx.events.PlayRequest`; :meth:`is_pending` tells whether
    a request still waits for its answer (the peer may withdraw it with
    closeStream or deleteStream while the application decides).  To
    players: :meth:`send_audio`, :meth:`send_video`, :meth:`send_metadata`,
    :meth:`send_data`, :meth:`~rtmpx.session.Session.send_shared`,
    :meth:`notify_unpublish`, :meth:`notify_publish`.  To the client:
    :meth:`send_reconnect_request`.

    ``capabilities`` is what the server says it supports to a client that
    speaks Enhanced RTMP (default: :data:`~rtmpx.session.capabilities.DEFAULT_CAPABILITIES`;
    None or ``Capabilities()``: the legacy answer to everyone).
    ``batch_media``: audio and video of a publishing stream come as
    :class:`~rtmpx.events.MediaBatch` events (one per run of them) rather
    than one :class:`~rtmpx.events.AudioData` or
    :class:`~rtmpx.events.VideoData` each: what a relay wants.
    """

    _connection_table = SERVER_CONNECTION
    _stream_table = SERVER_STREAM

    def __init__(self, config: SessionConfig | None = None, *, epoch_ms: int = 0,
                 random: Callable[[int], bytes] = os.urandom,
                 capabilities: Capabilities | None = DEFAULT_CAPABILITIES,
                 batch_media: bool = False) -> None:
        super().__init__(config)
        self.batch_media = batch_media
        self.capabilities = capabilities if capabilities is not None else LEGACY
        #: what the client's connect said it supports (empty until then, and for a legacy client)
        self.peer_capabilities = LEGACY
        self.reconnect_requested = False  # send_reconnect_request() was called
        self._handshake = ServerHandshake(epoch_ms=epoch_ms, random=random)
        self._connect_txn = 1.0
        self._next_stream_id = 1
        self._deferred: list[_Command] = []
        self.app = ""
        self.connect_params: dict[str, Any] = {}

    # -- commands from the client ---------------------------------------------------

    def _on_command(self, stream_id: int, name: str, txn: float, obj: Any,
                    args: tuple[Any, ...]) -> None:
        what = ConnectionInput.CONNECT if name == "connect" else ConnectionInput.COMMAND
        action = self._connection_input(what, name=f"command {name!r}")
        if action is Action.REQUEST:
            self._on_connect(txn, obj, args)
        elif action is Action.DEFER:
            if len(self._deferred) >= self.config.max_deferred:
                raise ProtocolError(f"more than {self.config.max_deferred} commands "
                                    "before connect was answered")
            self._deferred.append((stream_id, name, txn, obj, args))
        elif action is Action.PROCESS:
            self._process(stream_id, name, txn, obj, args)
        # Action.DROP: a rejected connection; the application closes it

    def _process(self, stream_id: int, name: str, txn: float, obj: Any,
                 args: tuple[Any, ...]) -> None:
        what = _STREAM_COMMANDS.get(name)
        if what is not None:
            self._on_stream_command(stream_id, what, args)
        elif name == "createStream":
            self._on_create_stream(txn)
        elif name == "deleteStream":
            self._on_delete_stream(args)
        elif name == "releaseStream":
            self._events.append(ReleaseStream(str_arg(args, 0)))
            if txn:
                self._command(0, "_result", txn, None, amf.UNDEFINED)
        elif name == "FCPublish":
            stream_name = str_arg(args, 0)
            self._events.append(FCPublish(stream_name))
            self._command(0, "onFCPublish", 0.0, None,
                          {"code": str(StatusCode.PUBLISH_START), "description": stream_name})
            if txn:
                self._command(0, "_result", txn, None, amf.UNDEFINED)
        elif name == "FCUnpublish":
            self._on_fc_unpublish(txn, str_arg(args, 0))
        elif name == "FCSubscribe" or name == "FCUnsubscribe":
            # librtmp (rtmpdump) subscribes before a live play, as FMS wanted
            # (an _error would be reported to its user): answered as FMS does
            code = StatusCode.PLAY_START if name == "FCSubscribe" else StatusCode.PLAY_STOP
            self._command(0, f"on{name}", 0.0, None,
                          {"code": str(code), "description": str_arg(args, 0)})
            if txn:
                self._command(0, "_result", txn, None, amf.UNDEFINED)
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
                self.error(call, "Method not found.")

    def _on_connect(self, txn: float, obj: Any, args: tuple[Any, ...]) -> None:
        params = obj if isinstance(obj, dict) else {}
        app_field = params.get("app", "")
        app, query = split_query(checked_name(app_field, "app")
                                 if isinstance(app_field, str) else "")
        tc_url = params.get("tcUrl", "")
        tc_url = checked_name(tc_url, "tcUrl") if isinstance(tc_url, str) else ""
        if not query and "?" in tc_url:
            query = tc_url.partition("?")[2]
        encoding = params.get("objectEncoding", 0)
        self.object_encoding = 3 if encoding == 3 else 0
        self._connect_txn = txn
        self.app = app.strip("/")
        self.connect_params = params
        self.peer_capabilities = Capabilities.from_amf(params)
        self._events.append(ConnectRequest(self.app, query, tc_url, params,
                                           self.object_encoding, args,
                                           capabilities=self.peer_capabilities))

    def accept_connect(self, properties: dict[str, Any] | None = None,
                       info: dict[str, Any] | None = None) -> list[Event]:
        """Accept the pending connect: Window Ack Size, Set Peer Bandwidth,
        Set Chunk Size, then ``_result`` with NetConnection.Connect.Success.
        The properties (``properties``, default :data:`SERVER_PROPERTIES`)
        also carry :attr:`capabilities` when the client spoke Enhanced RTMP
        (any key given in ``properties`` wins).

        Returns the events of the commands the client sent while the
        connect was pending (clients may send createStream, releaseStream
        or FCPublish without waiting): they are processed now, in order.
        Raises :class:`~rtmpx.ProtocolError` if one of them broke the
        protocol: the session is then dead, as after bad input."""
        self._connection_input(ConnectionInput.ACCEPT, local=True, name="accept_connect()")
        cfg = self.config
        self.set_window_ack_size(cfg.window_ack_size)
        self._control(MT.SET_PEER_BANDWIDTH, _bandwidth(cfg.peer_bandwidth))
        if cfg.chunk_size != self._writer.chunk_size:
            self.set_chunk_size(cfg.chunk_size)
        reply = {"level": "status", "code": str(StatusCode.CONNECT_SUCCESS),
                 "description": "Connection succeeded.",
                 "objectEncoding": float(self.object_encoding)}
        if info:
            reply.update(info)
        props = dict(properties or SERVER_PROPERTIES)
        if self.peer_capabilities.enhanced:  # a legacy client: the legacy answer
            for key, value in self.capabilities.to_amf().items():
                props.setdefault(key, value)
        self._command(0, "_result", self._connect_txn, props, reply)
        deferred, self._deferred = self._deferred, []
        try:
            for command in deferred:
                self._on_command(*command)
        except ProtocolError as exc:
            self._failed = exc
            raise
        return self._take_events()

    def reject_connect(self, description: str = "Connection rejected.",
                       code: StatusCode | str = StatusCode.CONNECT_REJECTED) -> None:
        """Refuse the pending connect with ``_error``; then close the connection."""
        self._connection_input(ConnectionInput.REJECT, local=True, name="reject_connect()")
        self._deferred.clear()
        self._command(0, "_error", self._connect_txn, None,
                      {"level": "error", "code": str(code), "description": description})

    def send_reconnect_request(self, tc_url: str | None = None,
                               description: str = "The server asks you to reconnect.") -> None:
        """Ask the client to reconnect (Enhanced RTMP v2): ``onStatus`` on
        stream 0, level ``status``, NetConnection.Connect.ReconnectRequest,
        with ``tcUrl`` when given (where to: absolute, or relative to the
        client's tcUrl; else the same server).  The client goes on to a
        media boundary, then reconnects and leaves; keep serving it until
        it does.

        Raises :class:`~rtmpx.InvalidStateError` before connect is accepted
        and for a client that did not advertise capsEx Reconnect (a legacy
        client would not understand it), :class:`ValueError` for a
        ``tc_url`` longer than :data:`~rtmpx.session.base.MAX_NAME`."""
        self._connection_input(ConnectionInput.CALL, local=True, name="send_reconnect_request()")
        if not self.peer_capabilities.reconnect:
            raise InvalidStateError("send_reconnect_request(): the client did not advertise "
                                    "capsEx Reconnect")
        extra: dict[str, Any] = {}
        if tc_url is not None:
            if len(tc_url) > MAX_NAME:
                raise ValueError(f"tc_url longer than {MAX_NAME} characters")
            extra["tcUrl"] = tc_url
        self._status(0, "status", StatusCode.RECONNECT_REQUEST, description, **extra)
        self.reconnect_requested = True

    def _on_create_stream(self, txn: float) -> None:
        if len(self._streams) >= self.config.max_streams:
            self._command(0, "_error", txn, None,
                          {"level": "error", "code": str(StatusCode.CALL_FAILED),
                           "description": "Too many streams."})
            return
        stream_id = self._next_stream_id
        while stream_id in self._streams:
            stream_id += 1
        self._next_stream_id = stream_id + 1
        self._streams[stream_id] = MessageStream(stream_id)
        self._command(0, "_result", txn, None, float(stream_id))
        self._events.append(StreamCreated(stream_id, txn))

    def _on_stream_command(self, stream_id: int, what: StreamInput,
                           args: tuple[Any, ...]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            if what is StreamInput.PUBLISH or what is StreamInput.PLAY:
                raise ProtocolError(f"{what.value} on stream {stream_id}, "
                                    "which was never created")
            return  # closeStream, pause, ... for a stream already deleted: harmless
        action = self._stream_input(stream, what)
        if what is StreamInput.CLOSE:
            self._end(stream, action)
            self._events.append(StreamClosed(stream_id))
        elif action is Action.REPLAY:
            self._events.append(PlayStopped(stream_id, stream.name))
            self._request_play(stream, args)
        elif action is Action.REQUEST:
            if what is StreamInput.PUBLISH:
                self._request_publish(stream, args)
            else:
                self._request_play(stream, args)
        elif action is Action.PAUSE:
            paused = bool(args[0]) if args else True
            if paused:
                self._status(stream_id, "status", StatusCode.PAUSE_NOTIFY,
                             f"Paused {stream.name}.", details=stream.name)
            else:
                self._status(stream_id, "status", StatusCode.UNPAUSE_NOTIFY,
                             f"Unpaused {stream.name}.", details=stream.name)
            self._events.append(Pause(stream_id, paused, num_arg(args, 1, 0.0)))
        elif action is Action.SEEK:
            self._status(stream_id, "status", StatusCode.SEEK_NOTIFY,
                         "Seeking a live stream restarts at a keyframe.", details=stream.name)
            self._events.append(Seek(stream_id, num_arg(args, 0, 0.0)))
        elif action is Action.MUTE:
            enabled = bool(args[0]) if args else True
            if what is StreamInput.RECEIVE_AUDIO:
                stream.audio = enabled
                self._events.append(ReceiveAudio(stream_id, enabled))
            else:
                stream.video = enabled
                self._events.append(ReceiveVideo(stream_id, enabled))
        # Action.IGNORE: nothing to answer, nothing to tell

    def _end(self, stream: MessageStream, action: Action) -> None:
        """What a closeStream, deleteStream or FCUnpublish ends."""
        if action is Action.CANCEL:
            stream.request = None  # the pending request is void
        elif action is Action.UNPUBLISH:
            self._events.append(Unpublished(stream.stream_id, stream.name))
        elif action is Action.STOP:
            self._events.append(PlayStopped(stream.stream_id, stream.name))

    def _request_publish(self, stream: MessageStream, args: tuple[Any, ...]) -> None:
        stream.name, stream.query = split_query(str_arg(args, 0))
        kind = args[1] if len(args) > 1 and isinstance(args[1], str) else "live"
        stream.publish_type = kind.lower()
        stream.request = PublishRequest(stream.stream_id, stream.name, stream.query,
                                        stream.publish_type)
        self._events.append(stream.request)

    def _request_play(self, stream: MessageStream, args: tuple[Any, ...]) -> None:
        stream.name, stream.query = split_query(str_arg(args, 0))
        start = num_arg(args, 1, -2.0)
        duration = num_arg(args, 2, -1.0)
        reset = bool(args[3]) if len(args) > 3 and args[3] is not None else True
        stream.request = PlayRequest(stream.stream_id, stream.name, stream.query, start,
                                     duration, reset)
        self._events.append(stream.request)

    def _on_delete_stream(self, args: tuple[Any, ...]) -> None:
        stream_id = stream_id_arg(args[0]) if args else None
        stream = self._streams.get(stream_id) if stream_id is not None else None
        if stream is None:
            return  # clients delete streams that are already gone: harmless
        self._end(stream, self._stream_input(stream, StreamInput.DELETE))
        del self._streams[stream.stream_id]
        self._events.append(StreamDeleted(stream.stream_id))

    def _on_fc_unpublish(self, txn: float, name: str) -> None:
        self._events.append(FCUnpublish(name))
        base, _ = split_query(name)
        for stream in list(self._streams.values()):
            if stream.name == base and stream.state in (StreamState.PUBLISHING,
                                                        StreamState.PUBLISH_PENDING):
                self._end(stream, self._stream_input(stream, StreamInput.FC_UNPUBLISH))
        self._command(0, "onFCUnpublish", 0.0, None,
                      {"code": str(StatusCode.UNPUBLISH_SUCCESS), "description": name})
        if txn:
            self._command(0, "_result", txn, None, amf.UNDEFINED)

    # -- publish and play decisions ---------------------------------------------------

    def is_pending(self, request: PublishRequest | PlayRequest) -> bool:
        """Whether ``request`` still waits for accept/reject: False once the
        client closed or deleted its stream, or sent a newer request on it."""
        stream = self._streams.get(request.stream_id)
        return stream is not None and stream.request is request

    def _decide(self, stream_id: int, what: StreamInput, call: str) -> MessageStream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise InvalidStateError(f"{call}: no stream {stream_id} on this connection")
        self._stream_input(stream, what, local=True)
        stream.request = None
        return stream

    def accept_publish(self, stream_id: int) -> None:
        """Accept a pending publish: StreamBegin and NetStream.Publish.Start."""
        stream = self._decide(stream_id, StreamInput.ACCEPT, "accept_publish()")
        self._user_control(UC.STREAM_BEGIN, stream_id)
        self._status(stream_id, "status", StatusCode.PUBLISH_START,
                     f"{stream.name} is now published.", details=stream.name)

    def reject_publish(self, stream_id: int, description: str = "Publish rejected.",
                       code: StatusCode | str = StatusCode.PUBLISH_BAD_NAME) -> None:
        """Refuse a pending publish with an error onStatus (BadName by default)."""
        stream = self._decide(stream_id, StreamInput.REJECT, "reject_publish()")
        self._status(stream_id, "error", code, description, details=stream.name)

    def accept_play(self, stream_id: int, *, reset: bool | None = None) -> None:
        """Accept a pending play: StreamBegin, NetStream.Play.Reset (when the
        play asked for a reset, or ``reset``), Play.Start and
        ``|RtmpSampleAccess``; then send metadata, sequence headers, media."""
        stream = self._streams.get(stream_id)
        request = stream.request if stream is not None else None
        if reset is None:
            reset = request.reset if isinstance(request, PlayRequest) else True
        stream = self._decide(stream_id, StreamInput.ACCEPT, "accept_play()")
        self._user_control(UC.STREAM_BEGIN, stream_id)
        if reset:
            self._status(stream_id, "status", StatusCode.PLAY_RESET,
                         f"Playing and resetting {stream.name}.", details=stream.name)
        self._status(stream_id, "status", StatusCode.PLAY_START,
                     f"Started playing {stream.name}.", details=stream.name)
        self.send_message(Message(MT.DATA_AMF0,
                                  amf.dumps_all(["|RtmpSampleAccess", True, True]),
                                  0, stream_id))

    def reject_play(self, stream_id: int, description: str = "Stream not found.",
                    code: StatusCode | str = StatusCode.PLAY_STREAM_NOT_FOUND) -> None:
        """Refuse a pending play with an error onStatus."""
        stream = self._decide(stream_id, StreamInput.REJECT, "reject_play()")
        self._status(stream_id, "error", code, description, details=stream.name)

    def receiving(self, stream_id: int) -> tuple[bool, bool]:
        """What a player asked for with receiveAudio/receiveVideo: (audio, video)."""
        stream = self._streams.get(stream_id)
        return (stream.audio, stream.video) if stream is not None else (True, True)

    def send_status(self, stream_id: int, code: StatusCode | str, description: str = "",
                    level: str = "status", **extra: Any) -> None:
        """Send any onStatus on a stream (the escape hatch)."""
        self._status(stream_id, level, code, description, **extra)

    def _playing(self, stream_id: int, call: str) -> MessageStream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.state is not StreamState.PLAYING:
            raise InvalidStateError(f"{call}: stream {stream_id} is not playing")
        return stream

    def notify_unpublish(self, stream_id: int) -> None:
        """Tell a player its publisher left: StreamEOF, Play.UnpublishNotify.
        The player stays connected, waiting for a republish."""
        stream = self._playing(stream_id, "notify_unpublish()")
        self._user_control(UC.STREAM_EOF, stream_id)
        self._status(stream_id, "status", StatusCode.PLAY_UNPUBLISH_NOTIFY,
                     f"{stream.name} is now unpublished.", details=stream.name)

    def notify_publish(self, stream_id: int) -> None:
        """Tell a waiting player a publisher arrived: StreamBegin, Play.PublishNotify."""
        stream = self._playing(stream_id, "notify_publish()")
        self._user_control(UC.STREAM_BEGIN, stream_id)
        self._status(stream_id, "status", StatusCode.PLAY_PUBLISH_NOTIFY,
                     f"{stream.name} is now published.", details=stream.name)

    def send_audio(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Send an audio message (an FLV audio tag body) to a player."""
        self._playing(stream_id, "send_audio()")
        self._media(MT.AUDIO, stream_id, timestamp, payload)

    def send_video(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Send a video message (an FLV video tag body) to a player."""
        self._playing(stream_id, "send_video()")
        self._media(MT.VIDEO, stream_id, timestamp, payload)

    def send_data(self, stream_id: int, timestamp: int, payload: Buffer) -> None:
        """Send an AMF0 data message body as is (e.g. ``Metadata.payload``)."""
        self._playing(stream_id, "send_data()")
        self._media(MT.DATA_AMF0, stream_id, timestamp, payload)

    def send_metadata(self, stream_id: int, metadata: dict[str, Any],
                      timestamp: int = 0) -> None:
        """Send ``onMetaData`` with ``metadata`` to a player."""
        self.send_data(stream_id, timestamp,
                       amf.dumps_all(["onMetaData", amf.ECMAArray(metadata)]))

    # -- media and data from a publisher ---------------------------------------------

    def _handle_all(self, messages: list[Message]) -> None:
        if not self.batch_media:
            super()._handle_all(messages)
            return
        streams = self._streams
        events = self._events
        run: list[Message] = []
        run_stream = -1     # the stream of the run being added to (none: -1)
        for m in messages:
            t = m.type_id
            if t == 9 or t == 8:
                stream_id = m.stream_id
                if stream_id == run_stream:
                    run.append(m)
                    continue
                stream = streams.get(stream_id)
                if stream is not None and stream.state is StreamState.PUBLISHING:
                    run = [m]
                    run_stream = stream_id
                    events.append(MediaBatch(stream_id, run))
                    continue
            run_stream = -1  # anything else ends the run (it may change the stream's state)
            self._handle(m)

    def _on_media(self, m: Message) -> None:
        stream = self._streams.get(m.stream_id)
        if (stream is not None and stream.state is StreamState.PUBLISHING  # the fast path
                or self._media_action(m.stream_id) is Action.DELIVER):
            cls = VideoData if m.type_id == MT.VIDEO else AudioData
            self._events.append(cls(m.stream_id, m.timestamp, m.payload))

    def _on_data(self, m: Message) -> None:
        if self._media_action(m.stream_id) is Action.DELIVER:
            self._events.append(self._parse_data(m))


def _bandwidth(size: int) -> bytes:
    """A Set Peer Bandwidth body with the dynamic limit type (2)."""
    return size.to_bytes(4, "big") + b"\x02"
