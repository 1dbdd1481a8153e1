"""Every state rule of the RTMP sessions, as tables.

A connection has one state; each message stream (the ids createStream
hands out) has its own.  An input - a command the peer sent, media, or a
decision of the application - moves a state to another only through these
tables.  A pair that is missing is illegal: from the peer that is a
:class:`~rtmpx.ProtocolError` (the connection is dropped), from the
application a misuse of the API (:class:`~rtmpx.RtmpError`).
"""

from __future__ import annotations

from typing import Final

# --- connection states -------------------------------------------------------
HANDSHAKE: Final = "handshake"            # bytes are handshake bytes
AWAIT_CONNECT: Final = "await_connect"    # server: waiting for connect
CONNECT_PENDING: Final = "connect_pending"  # server: app deciding; client: connect sent
CONNECTED: Final = "connected"
REJECTED: Final = "rejected"              # connect refused: nothing more is legal

# --- stream states -----------------------------------------------------------
IDLE: Final = "idle"                      # created, neither publishing nor playing
PUBLISH_PENDING: Final = "publish_pending"  # publish asked, not yet answered
PUBLISHING: Final = "publishing"
PLAY_PENDING: Final = "play_pending"
PLAYING: Final = "playing"

# Pseudo-commands: decisions of the application and media messages.
ACCEPT: Final = "<accept>"
REJECT: Final = "<reject>"
MEDIA: Final = "<media>"        # audio, video or data on the stream
START: Final = "<start>"        # client: the server's onStatus ...Start arrived
FAIL: Final = "<fail>"          # client: the server's onStatus error arrived
CLIENT_SEND: Final = "<send>"   # client: the application sends media

# Server side: the commands a client may send in each connection state.
# Stream-level commands (publish, play, ...) are further checked against
# SERVER_STREAM below.
SERVER_CONNECTION: Final[dict[str, frozenset[str]]] = {
    AWAIT_CONNECT: frozenset({"connect"}),
    CONNECT_PENDING: frozenset(),
    CONNECTED: frozenset({
        "createStream", "releaseStream", "FCPublish", "FCUnpublish", "deleteStream",
        "closeStream", "publish", "play", "receiveAudio", "receiveVideo", "pause", "seek",
        "_checkbw", "getStreamLength", "_result", "_error", "<call>",
    }),
    REJECTED: frozenset(),
}

# Server side: (stream state, input) -> next stream state.
SERVER_STREAM: Final[dict[tuple[str, str], str]] = {
    (IDLE, "publish"): PUBLISH_PENDING,
    (IDLE, "play"): PLAY_PENDING,
    (IDLE, "closeStream"): IDLE,
    (IDLE, "receiveAudio"): IDLE,
    (IDLE, "receiveVideo"): IDLE,
    (PUBLISH_PENDING, ACCEPT): PUBLISHING,
    (PUBLISH_PENDING, REJECT): IDLE,
    (PUBLISH_PENDING, "closeStream"): IDLE,
    (PUBLISH_PENDING, MEDIA): PUBLISH_PENDING,   # dropped: not yet accepted
    (PUBLISHING, MEDIA): PUBLISHING,
    (PUBLISHING, "closeStream"): IDLE,
    (PUBLISHING, "FCUnpublish"): IDLE,
    (PLAY_PENDING, ACCEPT): PLAYING,
    (PLAY_PENDING, REJECT): IDLE,
    (PLAY_PENDING, "closeStream"): IDLE,
    (PLAY_PENDING, "receiveAudio"): PLAY_PENDING,
    (PLAY_PENDING, "receiveVideo"): PLAY_PENDING,
    (PLAYING, "closeStream"): IDLE,
    (PLAYING, "play"): PLAY_PENDING,           # a new play on the same stream
    (PLAYING, "receiveAudio"): PLAYING,
    (PLAYING, "receiveVideo"): PLAYING,
    (PLAYING, "pause"): PLAYING,
    (PLAYING, "seek"): PLAYING,
}

# Client side: (stream state, input) -> next stream state.  Inputs are the
# application's calls (publish, play, ...) and the server's answers.
CLIENT_STREAM: Final[dict[tuple[str, str], str]] = {
    (IDLE, "publish"): PUBLISH_PENDING,
    (IDLE, "play"): PLAY_PENDING,
    (IDLE, "closeStream"): IDLE,
    (PUBLISH_PENDING, START): PUBLISHING,
    (PUBLISH_PENDING, FAIL): IDLE,
    (PUBLISH_PENDING, "closeStream"): IDLE,
    (PUBLISHING, CLIENT_SEND): PUBLISHING,
    (PUBLISHING, "closeStream"): IDLE,
    (PUBLISHING, FAIL): IDLE,
    (PLAY_PENDING, START): PLAYING,
    (PLAY_PENDING, FAIL): IDLE,
    (PLAY_PENDING, MEDIA): PLAY_PENDING,      # servers may send data before Play.Start
    (PLAY_PENDING, "closeStream"): IDLE,
    (PLAYING, START): PLAYING,                # Play.Start again after a republish
    (PLAYING, MEDIA): PLAYING,
    (PLAYING, FAIL): IDLE,
    (PLAYING, "closeStream"): IDLE,
    (PLAYING, "pause"): PLAYING,
    (PLAYING, "seek"): PLAYING,
    (PLAYING, "receiveAudio"): PLAYING,
    (PLAYING, "receiveVideo"): PLAYING,
    (PLAYING, "play"): PLAY_PENDING,
}
