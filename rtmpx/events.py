"""Events of the sans-I/O RTMP sessions.

:class:`~rtmpx.session.ServerSession` and :class:`~rtmpx.session.ClientSession`
turn received bytes into these small, frozen, slotted dataclasses.  Events
that ask the application for a decision (:class:`ConnectRequest`,
:class:`PublishRequest`, :class:`PlayRequest`) are answered with the
session's ``accept_*`` / ``reject_*`` methods; the rest are information.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .constants import status_text

if TYPE_CHECKING:
    from .chunk import Message
    from .session.capabilities import Capabilities

__all__ = [
    "Acknowledged",
    "AudioData",
    "BufferLength",
    "CallResult",
    "ChunkSizeChanged",
    "CommandCall",
    "ConnectRejected",
    "ConnectRequest",
    "Connected",
    "DataMessage",
    "Event",
    "FCPublish",
    "FCUnpublish",
    "HandshakeComplete",
    "MediaBatch",
    "Metadata",
    "Pause",
    "PeerBandwidth",
    "PeerWindow",
    "PingResponse",
    "PlayRequest",
    "PlayStarted",
    "PlayStopped",
    "PublishRequest",
    "PublishStarted",
    "ReceiveAudio",
    "ReceiveVideo",
    "ReconnectRequested",
    "ReleaseStream",
    "Seek",
    "Status",
    "StreamClosed",
    "StreamCreated",
    "StreamDeleted",
    "StreamFailed",
    "Unpublished",
    "UserControl",
    "VideoData",
]


class Event:
    """Base class of every session event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HandshakeComplete(Event):
    """The handshake finished; ``complex`` says whether digests were used."""

    complex: bool
    peer_version: int


@dataclass(frozen=True, slots=True)
class ConnectRequest(Event):
    """A client's ``connect``: answer with ``accept_connect``/``reject_connect``.

    ``app`` is the application path (``live`` or ``live/instance``), with
    any ``?query`` split off into ``query``; ``params`` is the whole
    command object (tcUrl, flashVer, objectEncoding, ...); ``args`` are the
    optional extra arguments some clients append.  ``capabilities`` is
    what the client said it supports (Enhanced RTMP ``fourCcList``,
    ``videoFourCcInfoMap``, ``audioFourCcInfoMap``, ``capsEx``; a
    :class:`~rtmpx.session.capabilities.Capabilities`, empty for a legacy
    client).
    """

    app: str
    query: str
    tc_url: str
    params: dict[str, Any]
    object_encoding: int
    args: tuple[Any, ...] = ()
    capabilities: Capabilities = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """Client side: the server accepted ``connect``; ``capabilities`` is
    what its answer says it supports (Enhanced RTMP; empty for a legacy
    server)."""

    properties: dict[str, Any]
    info: dict[str, Any]
    capabilities: Capabilities = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class ReconnectRequested(Event):
    """Client side: the server asks us to reconnect (Enhanced RTMP v2
    ``onStatus`` NetConnection.Connect.ReconnectRequest on stream 0): keep
    streaming up to a media boundary (a keyframe), then connect to
    ``tc_url`` and leave this server.

    ``tc_url`` is where to go: the server's ``tcUrl`` resolved against
    ours (it may be relative), or our own when it named none; ``info`` is
    the whole status object.
    """

    tc_url: str
    description: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectRejected(Event):
    """Client side: the server answered ``connect`` with ``_error``."""

    info: dict[str, Any]

    @property
    def description(self) -> str:
        return status_text(self.info, "description")


@dataclass(frozen=True, slots=True)
class StreamCreated(Event):
    """A message stream now exists (server: the client's createStream was
    answered; client: the server's answer arrived)."""

    stream_id: int
    transaction_id: float = 0.0


@dataclass(frozen=True, slots=True)
class PublishRequest(Event):
    """A client wants to publish: answer with ``accept_publish``/``reject_publish``.

    ``publish_type`` is ``"live"``, ``"record"`` or ``"append"``;
    ``query`` is what followed ``?`` in the stream name (tokens).
    """

    stream_id: int
    name: str
    query: str
    publish_type: str


@dataclass(frozen=True, slots=True)
class PlayRequest(Event):
    """A client wants to play: answer with ``accept_play``/``reject_play``.

    ``start`` is -2 (live, else recorded), -1 (live only) or a position in
    ms; ``duration`` -1 means until the end; ``reset`` flushes playlists.
    """

    stream_id: int
    name: str
    query: str
    start: float
    duration: float
    reset: bool


@dataclass(frozen=True, slots=True)
class PublishStarted(Event):
    """Client side: the server accepted our publish (NetStream.Publish.Start).

    ``request_id`` is the transaction id of the createStream that made the
    stream (what :meth:`~rtmpx.ClientSession.start_publish` returned)."""

    stream_id: int
    name: str
    request_id: float = 0.0


@dataclass(frozen=True, slots=True)
class PlayStarted(Event):
    """Client side: the server started our play (NetStream.Play.Start), or
    the stream came back after a :class:`PlayStopped`
    (NetStream.Play.PublishNotify, or Play.Start again): ``code`` says which."""

    stream_id: int
    name: str
    code: str
    request_id: float = 0.0


@dataclass(frozen=True, slots=True)
class PlayStopped(Event):
    """A play on ``stream_id`` ended.

    Client side: the server said the stream ended; ``code`` is the
    ``onStatus`` code (NetStream.Play.UnpublishNotify, Play.Stop,
    Play.Complete) or ``""`` for a StreamEOF user control.  The stream may
    come back (:class:`PlayStarted` again) when it is republished.
    Server side: the player stopped playing (closeStream, deleteStream, or
    a new ``play`` on the same stream); ``code`` is ``""``."""

    stream_id: int
    name: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class StreamFailed(Event):
    """Client side: the server refused our publish or play, or ended it
    with an error ``onStatus`` (``stream_id`` is 0 when even the
    createStream failed).  ``request_id`` is the createStream transaction
    id of the stream, as in :class:`PublishStarted`."""

    stream_id: int
    request_id: float
    code: str
    description: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReleaseStream(Event):
    """``releaseStream(name)``, sent by encoders before publishing (answered)."""

    name: str


@dataclass(frozen=True, slots=True)
class FCPublish(Event):
    """``FCPublish(name)`` (answered with onFCPublish)."""

    name: str


@dataclass(frozen=True, slots=True)
class FCUnpublish(Event):
    """``FCUnpublish(name)`` (answered with onFCUnpublish)."""

    name: str


@dataclass(frozen=True, slots=True)
class Unpublished(Event):
    """A stream that was publishing stopped (closeStream, deleteStream,
    FCUnpublish).  A disconnect is the shell's business, not an event."""

    stream_id: int
    name: str


@dataclass(frozen=True, slots=True)
class StreamDeleted(Event):
    """``deleteStream(stream_id)``: the stream is gone."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamClosed(Event):
    """``closeStream`` on ``stream_id``: playing or publishing there stopped."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ReceiveAudio(Event):
    """A player turned audio on or off."""

    stream_id: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class ReceiveVideo(Event):
    """A player turned video on or off."""

    stream_id: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class Pause(Event):
    """A player paused (``paused=True``) or resumed at ``position`` ms."""

    stream_id: int
    paused: bool
    position: float


@dataclass(frozen=True, slots=True)
class Seek(Event):
    """A player asked to seek to ``position`` ms."""

    stream_id: int
    position: float


@dataclass(frozen=True, slots=True)
class CommandCall(Event):
    """A command the session does not handle itself (a custom ``call``).

    Names listed in the session's ``accept_calls`` are the application's
    to answer with ``result()``/``error()``; any other gets ``_error`` at
    once (when the caller expects an answer, ``transaction_id != 0``).
    """

    name: str
    transaction_id: float
    command_object: Any
    args: tuple[Any, ...]
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class CallResult(Event):
    """The peer's ``_result`` (or ``_error``, ``error=True``) to our ``call``."""

    transaction_id: float
    command_object: Any
    args: tuple[Any, ...]
    error: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True)
class Status(Event):
    """Client side: an ``onStatus`` (NetStream.Publish.Start, Play.Start, ...)."""

    stream_id: int
    level: str
    code: str
    description: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AudioData(Event):
    """An audio message: an FLV audio tag body (``rtmpx.media`` parses it)."""

    stream_id: int
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class VideoData(Event):
    """A video message: an FLV video tag body (``rtmpx.media`` parses it)."""

    stream_id: int
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class MediaBatch(Event):
    """Audio and video messages of one publishing stream, in order, that
    came one after the other: what would each be an :class:`AudioData` or
    :class:`VideoData` from a :class:`~rtmpx.session.ServerSession` made
    with ``batch_media=True`` (one event, no object per message).  Each
    message has ``type_id`` (8 audio, 9 video), ``timestamp`` and
    ``payload`` (:class:`~rtmpx.chunk.Message`)."""

    stream_id: int
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Metadata(Event):
    """``@setDataFrame("onMetaData", {...})`` from a publisher, or
    ``onMetaData`` to a player, decoded.  ``payload`` is the AMF0 body as a
    player should get it: ``onMetaData`` + the metadata, without
    ``@setDataFrame``."""

    stream_id: int
    timestamp: int
    metadata: dict[str, Any]
    payload: bytes


@dataclass(frozen=True, slots=True)
class DataMessage(Event):
    """Any other data message: ``name`` and the values that follow it."""

    stream_id: int
    timestamp: int
    name: str
    values: tuple[Any, ...]
    payload: bytes


@dataclass(frozen=True, slots=True)
class UserControl(Event):
    """A user control event (StreamBegin 0, StreamEOF 1, StreamDry 2,
    StreamIsRecorded 4, ...), with its stream id (or first u32) in
    ``value`` and any further bytes in ``data``."""

    event_type: int
    value: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class PingResponse(Event):
    """The peer answered our ping; ``timestamp`` is the one we sent."""

    timestamp: int


@dataclass(frozen=True, slots=True)
class BufferLength(Event):
    """A player's SetBufferLength for ``stream_id``."""

    stream_id: int
    milliseconds: int


@dataclass(frozen=True, slots=True)
class Acknowledged(Event):
    """The peer acknowledged ``sequence`` bytes (mod 2**32) of ours."""

    sequence: int


@dataclass(frozen=True, slots=True)
class PeerWindow(Event):
    """The peer's Window Acknowledgement Size."""

    size: int


@dataclass(frozen=True, slots=True)
class PeerBandwidth(Event):
    """The peer's Set Peer Bandwidth (limit type 0 hard, 1 soft, 2 dynamic)."""

    size: int
    limit_type: int


@dataclass(frozen=True, slots=True)
class ChunkSizeChanged(Event):
    """The peer changed the size of the chunks it sends."""

    size: int
