"""RTMP numbers and names: message types, user control events, status codes."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "MAX_STATUS_TEXT",
    "MessageType",
    "StatusCode",
    "UserControlEvent",
    "status_text",
]

DEFAULT_PORT = 1935
DEFAULT_TLS_PORT = 443


class MessageType(IntEnum):
    """Message type ids (the ``type_id`` of a :class:`~rtmpx.Message`)."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEvent(IntEnum):
    """User control (message type 4) event types."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7
    SWF_VERIFY_REQUEST = 0x1A
    SWF_VERIFY_RESPONSE = 0x1B
    BUFFER_EMPTY = 0x1F
    BUFFER_READY = 0x20


class StatusCode(StrEnum):
    """The ``code`` of the status objects in ``_result``/``_error``/``onStatus``.

    A :class:`~enum.StrEnum`: each member equals its wire string, so it
    compares equal to the ``code`` a peer sent.
    """

    CONNECT_SUCCESS = "NetConnection.Connect.Success"
    CONNECT_REJECTED = "NetConnection.Connect.Rejected"
    CONNECT_CLOSED = "NetConnection.Connect.Closed"
    RECONNECT_REQUEST = "NetConnection.Connect.ReconnectRequest"  #: Enhanced RTMP v2
    CALL_FAILED = "NetConnection.Call.Failed"
    PUBLISH_START = "NetStream.Publish.Start"
    PUBLISH_BAD_NAME = "NetStream.Publish.BadName"
    PUBLISH_REJECTED = "NetStream.Publish.Rejected"
    UNPUBLISH_SUCCESS = "NetStream.Unpublish.Success"
    PLAY_START = "NetStream.Play.Start"
    PLAY_RESET = "NetStream.Play.Reset"
    PLAY_STOP = "NetStream.Play.Stop"
    PLAY_COMPLETE = "NetStream.Play.Complete"
    PLAY_FAILED = "NetStream.Play.Failed"
    PLAY_STREAM_NOT_FOUND = "NetStream.Play.StreamNotFound"
    PLAY_PUBLISH_NOTIFY = "NetStream.Play.PublishNotify"
    PLAY_UNPUBLISH_NOTIFY = "NetStream.Play.UnpublishNotify"
    PAUSE_NOTIFY = "NetStream.Pause.Notify"
    UNPAUSE_NOTIFY = "NetStream.Unpause.Notify"
    SEEK_NOTIFY = "NetStream.Seek.Notify"


#: The longest status field (code, level, description) taken from a peer.
MAX_STATUS_TEXT = 1000


def status_text(info: Any, key: str, default: str = "") -> str:
    """Field ``key`` of a status object from the peer, as text: a string
    (cut to :data:`MAX_STATUS_TEXT` characters), else ``default`` - never
    the ``str()`` of an untrusted structure, which can be huge."""
    value = info.get(key, default) if isinstance(info, dict) else default
    return value[:MAX_STATUS_TEXT] if isinstance(value, str) else default
