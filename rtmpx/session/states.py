"""Every state rule of the RTMP sessions, as tables.

A connection has one :class:`ConnectionState`; each message stream (the
ids createStream hands out) has its own :class:`StreamState`.  An input -
something the peer sent, or a call of the application - moves a state to
another only through these tables, h2-style: ``(state, input) ->
(action, next state)``.  The session looks the pair up, changes the state,
and then does what the :class:`Action` says.

A pair that is missing is illegal.  From the peer that is a
:class:`~rtmpx.ProtocolError` (the connection is dropped); from the
application it is :class:`~rtmpx.InvalidStateError` (a misuse of the API).
Where a peer does something odd but harmless (a pause before its play is
answered, a status for a stream it already closed), the table says so
with an explicit :attr:`Action.IGNORE` or :attr:`Action.DROP`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, IntEnum
from typing import Final

__all__ = [
    "CLIENT_CONNECTION",
    "CLIENT_STREAM",
    "SERVER_CONNECTION",
    "SERVER_STREAM",
    "Action",
    "ConnectionInput",
    "ConnectionState",
    "StreamInput",
    "StreamState",
]


class ConnectionState(IntEnum):
    """The state of a connection."""

    HANDSHAKE = 0        #: bytes are handshake bytes
    AWAIT_CONNECT = 1    #: handshake done, no connect yet
    CONNECT_PENDING = 2  #: server: the application decides; client: connect sent
    CONNECTED = 3
    REJECTED = 4         #: connect refused: nothing more happens


class StreamState(IntEnum):
    """The state of one message stream."""

    IDLE = 0             #: created, neither publishing nor playing
    PUBLISH_PENDING = 1  #: publish asked, not yet answered
    PUBLISHING = 2
    PLAY_PENDING = 3     #: play asked, not yet answered
    PLAYING = 4
    PLAY_STOPPED = 5     #: client: the server said the stream ended (it may come back)


class ConnectionInput(Enum):
    """What moves a connection."""

    HANDSHAKE_DONE = "handshake done"
    CONNECT = "connect"    #: server: the peer's connect; client: the application's connect()
    COMMAND = "command"    #: any other command from the peer
    CALL = "call"          #: a command the application sends (server: a reconnect request)
    ACCEPT = "accept"      #: server: the application accepts; client: the server's _result
    REJECT = "reject"      #: server: the application refuses; client: the server's _error


class StreamInput(Enum):
    """What moves a message stream.

    Commands are the peer's on the server and the application's on the
    client; ``MEDIA`` is audio, video or data from the peer; ``SEND`` is
    media the client application publishes; the status inputs are what the
    server's ``onStatus`` (or StreamEOF) said to a client.
    """

    PUBLISH = "publish"
    PLAY = "play"
    CLOSE = "closeStream"
    DELETE = "deleteStream"
    FC_UNPUBLISH = "FCUnpublish"
    PAUSE = "pause"
    SEEK = "seek"
    RECEIVE_AUDIO = "receiveAudio"
    RECEIVE_VIDEO = "receiveVideo"
    MEDIA = "media"
    ACCEPT = "accept"                #: server: the application accepts the request
    REJECT = "reject"                #: server: the application refuses it
    SEND = "send"                    #: client: the application sends media
    PUBLISH_START = "publish start"  #: client: NetStream.Publish.Start
    PLAY_START = "play start"        #: client: NetStream.Play.Start / Play.PublishNotify
    PLAY_STOP = "play stop"          #: client: UnpublishNotify, Play.Stop/Complete, StreamEOF
    FAIL = "fail"                    #: client: an onStatus of level "error"


class Action(Enum):
    """What a session does after a transition."""

    NONE = "none"          #: the state change is all
    REQUEST = "request"    #: ask the application (ConnectRequest, PublishRequest, PlayRequest)
    DEFER = "defer"        #: hold the command until connect is decided
    PROCESS = "process"    #: handle the command
    DROP = "drop"          #: discard the message: nothing is emitted, nothing is sent
    IGNORE = "ignore"      #: a command that changes nothing here: no answer, no event
    ACCEPT = "accept"      #: send the success answer (Connect.Success, Publish.Start, Play.Start)
    REJECT = "reject"      #: send the refusal (_error, error onStatus)
    CANCEL = "cancel"      #: the peer withdrew a pending request: the decision is void
    UNPUBLISH = "unpublish"  #: server: a publish ended (Unpublished)
    STOP = "stop"          #: server: a play ended (PlayStopped)
    REPLAY = "replay"      #: server: a play replaces the current one (PlayStopped, PlayRequest)
    PAUSE = "pause"        #: server: answer Pause/Unpause.Notify, tell the application
    SEEK = "seek"          #: server: answer Seek.Notify, tell the application
    MUTE = "mute"          #: server: receiveAudio/receiveVideo, tell the application
    DELIVER = "deliver"    #: media for the application
    QUEUE = "queue"        #: client: connect() before the handshake: sent when it is done
    SEND = "send"          #: client: send the command or media
    STARTED = "started"    #: client: PublishStarted / PlayStarted
    STOPPED = "stopped"    #: client: PlayStopped
    FAILED = "failed"      #: client: StreamFailed


_CS = ConnectionState
_CI = ConnectionInput
_SS = StreamState
_SI = StreamInput
_A = Action


def _rows(states: Iterable[StreamState], inputs: Iterable[StreamInput], action: Action,
          to: StreamState | None = None) -> dict[tuple[StreamState, StreamInput],
                                                   tuple[Action, StreamState]]:
    """Rows for every (state, input) pair: ``action``, then ``to`` (default:
    the state stays)."""
    return {(s, i): (action, s if to is None else to) for s in states for i in inputs}


#: Server: the connection.  Commands before connect are a protocol error;
#: commands that arrive while the application decides connect are held
#: and processed once it accepts (clients that pipeline createStream).
#: The application's own NetConnection messages (a reconnect request) go
#: out only once connected.
SERVER_CONNECTION: Final[dict[tuple[ConnectionState, ConnectionInput],
                              tuple[Action, ConnectionState]]] = {
    (_CS.HANDSHAKE, _CI.HANDSHAKE_DONE): (_A.NONE, _CS.AWAIT_CONNECT),
    (_CS.AWAIT_CONNECT, _CI.CONNECT): (_A.REQUEST, _CS.CONNECT_PENDING),
    (_CS.CONNECT_PENDING, _CI.COMMAND): (_A.DEFER, _CS.CONNECT_PENDING),
    (_CS.CONNECT_PENDING, _CI.ACCEPT): (_A.ACCEPT, _CS.CONNECTED),
    (_CS.CONNECT_PENDING, _CI.REJECT): (_A.REJECT, _CS.REJECTED),
    (_CS.CONNECTED, _CI.COMMAND): (_A.PROCESS, _CS.CONNECTED),
    (_CS.CONNECTED, _CI.CALL): (_A.SEND, _CS.CONNECTED),
    (_CS.REJECTED, _CI.CONNECT): (_A.DROP, _CS.REJECTED),
    (_CS.REJECTED, _CI.COMMAND): (_A.DROP, _CS.REJECTED),
}

#: Client: the connection.  ``connect()`` may come before the handshake
#: is done; the server may send commands (onBWDone) before its answer.
CLIENT_CONNECTION: Final[dict[tuple[ConnectionState, ConnectionInput],
                              tuple[Action, ConnectionState]]] = {
    (_CS.HANDSHAKE, _CI.CONNECT): (_A.QUEUE, _CS.HANDSHAKE),
    (_CS.HANDSHAKE, _CI.HANDSHAKE_DONE): (_A.NONE, _CS.AWAIT_CONNECT),
    (_CS.AWAIT_CONNECT, _CI.CONNECT): (_A.SEND, _CS.CONNECT_PENDING),
    (_CS.CONNECT_PENDING, _CI.ACCEPT): (_A.ACCEPT, _CS.CONNECTED),
    (_CS.CONNECT_PENDING, _CI.REJECT): (_A.REJECT, _CS.REJECTED),
    (_CS.CONNECT_PENDING, _CI.COMMAND): (_A.PROCESS, _CS.CONNECT_PENDING),
    (_CS.CONNECTED, _CI.COMMAND): (_A.PROCESS, _CS.CONNECTED),
    (_CS.CONNECTED, _CI.CALL): (_A.SEND, _CS.CONNECTED),
    (_CS.REJECTED, _CI.COMMAND): (_A.DROP, _CS.REJECTED),
}

_NETSTREAM_CONTROL = (_SI.PAUSE, _SI.SEEK, _SI.RECEIVE_AUDIO, _SI.RECEIVE_VIDEO)
_CLOSE = (_SI.CLOSE, _SI.DELETE)

#: Server: each message stream.  Inputs are the client's commands and
#: media, and the application's decisions (ACCEPT, REJECT).
SERVER_STREAM: Final[dict[tuple[StreamState, StreamInput], tuple[Action, StreamState]]] = {
    (_SS.IDLE, _SI.PUBLISH): (_A.REQUEST, _SS.PUBLISH_PENDING),
    (_SS.IDLE, _SI.PLAY): (_A.REQUEST, _SS.PLAY_PENDING),
    **_rows([_SS.IDLE], _CLOSE, _A.NONE),
    **_rows([_SS.IDLE], _NETSTREAM_CONTROL, _A.IGNORE),
    (_SS.IDLE, _SI.MEDIA): (_A.DROP, _SS.IDLE),

    (_SS.PUBLISH_PENDING, _SI.ACCEPT): (_A.ACCEPT, _SS.PUBLISHING),
    (_SS.PUBLISH_PENDING, _SI.REJECT): (_A.REJECT, _SS.IDLE),
    **_rows([_SS.PUBLISH_PENDING], (*_CLOSE, _SI.FC_UNPUBLISH), _A.CANCEL, _SS.IDLE),
    **_rows([_SS.PUBLISH_PENDING], _NETSTREAM_CONTROL, _A.IGNORE),
    (_SS.PUBLISH_PENDING, _SI.MEDIA): (_A.DROP, _SS.PUBLISH_PENDING),  # not yet accepted

    (_SS.PUBLISHING, _SI.MEDIA): (_A.DELIVER, _SS.PUBLISHING),
    **_rows([_SS.PUBLISHING], (*_CLOSE, _SI.FC_UNPUBLISH), _A.UNPUBLISH, _SS.IDLE),
    **_rows([_SS.PUBLISHING], _NETSTREAM_CONTROL, _A.IGNORE),

    (_SS.PLAY_PENDING, _SI.ACCEPT): (_A.ACCEPT, _SS.PLAYING),
    (_SS.PLAY_PENDING, _SI.REJECT): (_A.REJECT, _SS.IDLE),
    (_SS.PLAY_PENDING, _SI.PLAY): (_A.REQUEST, _SS.PLAY_PENDING),  # supersedes the pending one
    **_rows([_SS.PLAY_PENDING], _CLOSE, _A.CANCEL, _SS.IDLE),
    **_rows([_SS.PLAY_PENDING], (_SI.PAUSE, _SI.SEEK), _A.IGNORE),  # as nginx-rtmp: no answer
    **_rows([_SS.PLAY_PENDING], (_SI.RECEIVE_AUDIO, _SI.RECEIVE_VIDEO), _A.MUTE),
    (_SS.PLAY_PENDING, _SI.MEDIA): (_A.DROP, _SS.PLAY_PENDING),

    (_SS.PLAYING, _SI.PLAY): (_A.REPLAY, _SS.PLAY_PENDING),
    **_rows([_SS.PLAYING], _CLOSE, _A.STOP, _SS.IDLE),
    (_SS.PLAYING, _SI.PAUSE): (_A.PAUSE, _SS.PLAYING),
    (_SS.PLAYING, _SI.SEEK): (_A.SEEK, _SS.PLAYING),
    **_rows([_SS.PLAYING], (_SI.RECEIVE_AUDIO, _SI.RECEIVE_VIDEO), _A.MUTE),
    (_SS.PLAYING, _SI.MEDIA): (_A.DROP, _SS.PLAYING),  # a player has nothing to send
}

_STATUS = (_SI.PUBLISH_START, _SI.PLAY_START, _SI.PLAY_STOP)
_PLAY_STATES = (_SS.PLAY_PENDING, _SS.PLAYING, _SS.PLAY_STOPPED)

#: Client: each message stream.  Inputs are the application's commands
#: and media, and what the server answers.
CLIENT_STREAM: Final[dict[tuple[StreamState, StreamInput], tuple[Action, StreamState]]] = {
    (_SS.IDLE, _SI.PUBLISH): (_A.SEND, _SS.PUBLISH_PENDING),
    (_SS.IDLE, _SI.PLAY): (_A.SEND, _SS.PLAY_PENDING),
    **_rows([_SS.IDLE], _CLOSE, _A.SEND),
    **_rows([_SS.IDLE], (*_STATUS, _SI.FAIL), _A.IGNORE),  # for a stream we stopped
    (_SS.IDLE, _SI.MEDIA): (_A.DROP, _SS.IDLE),            # still in flight

    (_SS.PUBLISH_PENDING, _SI.PUBLISH_START): (_A.STARTED, _SS.PUBLISHING),
    (_SS.PUBLISH_PENDING, _SI.FAIL): (_A.FAILED, _SS.IDLE),
    **_rows([_SS.PUBLISH_PENDING], _CLOSE, _A.SEND, _SS.IDLE),
    **_rows([_SS.PUBLISH_PENDING], (_SI.PLAY_START, _SI.PLAY_STOP), _A.IGNORE),
    (_SS.PUBLISH_PENDING, _SI.MEDIA): (_A.DROP, _SS.PUBLISH_PENDING),

    (_SS.PUBLISHING, _SI.SEND): (_A.SEND, _SS.PUBLISHING),
    (_SS.PUBLISHING, _SI.FAIL): (_A.FAILED, _SS.IDLE),
    **_rows([_SS.PUBLISHING], _CLOSE, _A.SEND, _SS.IDLE),
    **_rows([_SS.PUBLISHING], _STATUS, _A.IGNORE),
    (_SS.PUBLISHING, _SI.MEDIA): (_A.DROP, _SS.PUBLISHING),

    (_SS.PLAY_PENDING, _SI.PLAY_START): (_A.STARTED, _SS.PLAYING),
    **_rows([_SS.PLAY_PENDING], (_SI.PUBLISH_START, _SI.PLAY_STOP), _A.IGNORE),
    (_SS.PLAYING, _SI.PLAY_START): (_A.IGNORE, _SS.PLAYING),     # Play.Start again
    **_rows([_SS.PLAYING, _SS.PLAY_STOPPED], [_SI.PUBLISH_START], _A.IGNORE),
    (_SS.PLAYING, _SI.PLAY_STOP): (_A.STOPPED, _SS.PLAY_STOPPED),
    (_SS.PLAY_STOPPED, _SI.PLAY_START): (_A.STARTED, _SS.PLAYING),  # republished
    (_SS.PLAY_STOPPED, _SI.PLAY_STOP): (_A.IGNORE, _SS.PLAY_STOPPED),
    **_rows(_PLAY_STATES, [_SI.MEDIA], _A.DELIVER),  # servers may send data before Play.Start
    **_rows(_PLAY_STATES, [_SI.FAIL], _A.FAILED, _SS.IDLE),
    **_rows(_PLAY_STATES, _CLOSE, _A.SEND, _SS.IDLE),
    **_rows(_PLAY_STATES, [_SI.PLAY], _A.SEND, _SS.PLAY_PENDING),
    **_rows(_PLAY_STATES, _NETSTREAM_CONTROL, _A.SEND),
}
