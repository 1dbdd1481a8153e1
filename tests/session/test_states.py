"""Walks every entry of every state table of :mod:`rtmpx.session.states`.

For each ``(state, input) -> (action, next state)`` a session is brought to
``state`` through its public API and real bytes, the input is applied the
way a peer or an application would, and the test checks both the next
state and what the action promises (an event, an answer on the wire, or
nothing).  Every pair missing from a table is tried too: from the peer it
must raise :class:`~rtmpx.ProtocolError`, from the application
:class:`~rtmpx.InvalidStateError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from rtmpx import InvalidStateError, ProtocolError, amf
from rtmpx.chunk import ChunkReader, ChunkWriter, Message
from rtmpx.events import (
    CallResult,
    CommandCall,
    Connected,
    ConnectRejected,
    ConnectRequest,
    Event,
    FCUnpublish,
    HandshakeComplete,
    Pause,
    PlayRequest,
    PlayStarted,
    PlayStopped,
    PublishRequest,
    PublishStarted,
    ReceiveAudio,
    ReceiveVideo,
    Seek,
    Status,
    StreamClosed,
    StreamCreated,
    StreamDeleted,
    StreamFailed,
    Unpublished,
    VideoData,
)
from rtmpx.session import ClientSession, ServerSession
from rtmpx.session.states import (
    CLIENT_CONNECTION,
    CLIENT_STREAM,
    SERVER_CONNECTION,
    SERVER_STREAM,
    Action,
    ConnectionInput,
    ConnectionState,
    StreamInput,
    StreamState,
)

from .test_session import AVC_KEY, Pair, command, of

SS, SI, A = StreamState, StreamInput, Action
CS, CI = ConnectionState, ConnectionInput


def decode_commands(reader: ChunkReader, data: bytes) -> list[list[Any]]:
    """The AMF0 commands in a chunk stream (everything else skipped)."""
    return [amf.loads_all(m.payload) for m in reader.feed(data) if m.type_id == 20]


def status_codes(commands: list[list[Any]]) -> list[tuple[str, str]]:
    """(level, code) of every onStatus (and _error) in ``commands``."""
    out = []
    for values in commands:
        if values[0] in ("onStatus", "_error") and len(values) > 3 \
                and isinstance(values[3], dict):
            out.append((values[3].get("level", ""), values[3].get("code", "")))
    return out


# --- the server's stream table --------------------------------------------------------

class Server:
    """A connected ServerSession fed raw client messages; ``reader`` (a
    ChunkReader class) decodes everything it sends after the handshake."""

    def __init__(self, reader: Callable[[], Any] = ChunkReader) -> None:
        pair = Pair()
        pair.pump()  # the handshake only
        self.session = pair.server
        self.writer = ChunkWriter()
        self.reader = reader()
        events = self.send(command("connect", 1, {"app": "live", "tcUrl": "rtmp://h/live"}))
        assert of(ConnectRequest, events)
        self.session.accept_connect()
        self.replies()

    def send(self, *messages: Message) -> list[Event]:
        return self.session.receive_data(b"".join(self.writer.encode(m) for m in messages))

    def replies(self) -> list[list[Any]]:
        return decode_commands(self.reader, self.session.data_to_send())

    def stream_in(self, state: StreamState) -> int:
        created = of(StreamCreated, self.send(command("createStream", 2, None)))
        sid = int(created[0].stream_id)
        if state in (SS.PUBLISH_PENDING, SS.PUBLISHING):
            self.send(command("publish", 0, None, "k", "live", stream_id=sid))
            if state is SS.PUBLISHING:
                self.session.accept_publish(sid)
        elif state in (SS.PLAY_PENDING, SS.PLAYING):
            self.send(command("play", 0, None, "k", stream_id=sid))
            if state is SS.PLAYING:
                self.session.accept_play(sid)
        self.replies()
        assert self.session.stream_state(sid) is state
        return sid

    def apply(self, sid: int, what: StreamInput, state: StreamState) -> list[Event]:
        session = self.session
        publishing = state in (SS.PUBLISH_PENDING, SS.PUBLISHING)
        peer: dict[StreamInput, Message] = {
            SI.PUBLISH: command("publish", 0, None, "k2", "live", stream_id=sid),
            SI.PLAY: command("play", 0, None, "k2", stream_id=sid),
            SI.CLOSE: command("closeStream", 0, None, stream_id=sid),
            SI.DELETE: command("deleteStream", 0, None, float(sid)),
            SI.FC_UNPUBLISH: command("FCUnpublish", 5, None, "k"),
            SI.PAUSE: command("pause", 0, None, True, 0.0, stream_id=sid),
            SI.SEEK: command("seek", 0, None, 100.0, stream_id=sid),
            SI.RECEIVE_AUDIO: command("receiveAudio", 0, None, False, stream_id=sid),
            SI.RECEIVE_VIDEO: command("receiveVideo", 0, None, False, stream_id=sid),
            SI.MEDIA: Message(9, AVC_KEY, 0, sid),
        }
        if what in peer:
            return self.send(peer[what])
        if what is SI.ACCEPT:
            (session.accept_publish if publishing else session.accept_play)(sid)
        else:
            (session.reject_publish if publishing else session.reject_play)(sid)
        return []


SERVER_STATES = [SS.IDLE, SS.PUBLISH_PENDING, SS.PUBLISHING, SS.PLAY_PENDING, SS.PLAYING]
SERVER_INPUTS = [SI.PUBLISH, SI.PLAY, SI.CLOSE, SI.DELETE, SI.FC_UNPUBLISH, SI.PAUSE, SI.SEEK,
                 SI.RECEIVE_AUDIO, SI.RECEIVE_VIDEO, SI.MEDIA, SI.ACCEPT, SI.REJECT]
LIFECYCLE = (PublishRequest, PlayRequest, Unpublished, PlayStopped, VideoData, Pause, Seek,
             ReceiveAudio, ReceiveVideo)


def lifecycle(events: list[Event]) -> list[type]:
    return [type(e) for e in events if isinstance(e, LIFECYCLE)]


def check_server_action(action: Action, what: StreamInput, events: list[Event],
                        codes: list[tuple[str, str]]) -> None:
    kinds = lifecycle(events)
    expected: dict[Action, list[type]] = {
        A.REQUEST: [PublishRequest if what is SI.PUBLISH else PlayRequest],
        A.DELIVER: [VideoData],
        A.UNPUBLISH: [Unpublished],
        A.STOP: [PlayStopped],
        A.REPLAY: [PlayStopped, PlayRequest],
        A.PAUSE: [Pause],
        A.SEEK: [Seek],
        A.MUTE: [ReceiveAudio if what is SI.RECEIVE_AUDIO else ReceiveVideo],
    }
    assert kinds == expected.get(action, []), (action, events)
    if action is A.ACCEPT:
        assert codes and codes[-1][1] in ("NetStream.Publish.Start", "NetStream.Play.Start")
    elif action is A.REJECT:
        assert codes and codes[-1][0] == "error"
    elif action is A.PAUSE:
        assert codes == [("status", "NetStream.Pause.Notify")]
    elif action is A.SEEK:
        assert codes == [("status", "NetStream.Seek.Notify")]
    else:
        assert codes == [], (action, codes)
    if action is A.DROP:
        assert events == []
    if action is A.IGNORE:
        assert all(isinstance(e, FCUnpublish) for e in events), events
    if action in (A.NONE, A.CANCEL):
        assert all(isinstance(e, (StreamClosed, StreamDeleted, FCUnpublish)) for e in events)


@pytest.mark.parametrize(("state", "what"), list(SERVER_STREAM),
                         ids=[f"{s.name}-{i.name}" for s, i in SERVER_STREAM])
def test_server_stream_table(state: StreamState, what: StreamInput) -> None:
    action, after = SERVER_STREAM[(state, what)]
    server = Server()
    sid = server.stream_in(state)
    events = server.apply(sid, what, state)
    check_server_action(action, what, events, status_codes(server.replies()))
    if what is SI.DELETE:
        assert server.session.stream_state(sid) is None  # gone with its state
    else:
        assert server.session.stream_state(sid) is after
    if action is A.CANCEL:  # the pending request is void
        assert not any(server.session.is_pending(e) for e in events
                       if isinstance(e, (PublishRequest, PlayRequest)))


SERVER_MISSING = [(s, i) for s, i in itertools.product(SERVER_STATES, SERVER_INPUTS)
                  if (s, i) not in SERVER_STREAM and i is not SI.FC_UNPUBLISH]


@pytest.mark.parametrize(("state", "what"), SERVER_MISSING,
                         ids=[f"{s.name}-{i.name}" for s, i in SERVER_MISSING])
def test_server_stream_missing_pairs_are_errors(state: StreamState, what: StreamInput) -> None:
    server = Server()
    sid = server.stream_in(state)
    error = InvalidStateError if what in (SI.ACCEPT, SI.REJECT) else ProtocolError
    with pytest.raises(error):
        server.apply(sid, what, state)


def test_fc_unpublish_only_touches_publishing_streams() -> None:
    # FCUnpublish names a stream, not a message stream id: streams in other
    # states with that name are left alone (the only pairs not in the table)
    for state in (SS.IDLE, SS.PLAY_PENDING, SS.PLAYING):
        server = Server()
        sid = server.stream_in(state)
        assert of(FCUnpublish, server.apply(sid, SI.FC_UNPUBLISH, state))
        assert server.session.stream_state(sid) is state


# --- the client's stream table --------------------------------------------------------

class Client:
    """A connected ClientSession fed raw server messages."""

    def __init__(self) -> None:
        pair = Pair()
        pair.pump()
        self.session = pair.client
        self.writer = ChunkWriter()
        self.reader = ChunkReader()
        self.session.connect()
        self.sent()
        events = self.feed(command("_result", 1, {"fmsVer": "x"},
                                   {"level": "status", "code": "NetConnection.Connect.Success"}))
        assert of(Connected, events)

    def feed(self, *messages: Message) -> list[Event]:
        return self.session.receive_data(b"".join(self.writer.encode(m) for m in messages))

    def sent(self) -> list[Message]:
        return self.reader.feed(self.session.data_to_send())

    def status(self, sid: int, level: str, code: str) -> list[Event]:
        return self.feed(command("onStatus", 0, None, {"level": level, "code": code},
                                 stream_id=sid))

    def stream_in(self, state: StreamState) -> int:
        txn = self.session.create_stream()
        sid = 1
        self.feed(command("_result", txn, None, float(sid)))
        if state in (SS.PUBLISH_PENDING, SS.PUBLISHING):
            self.session.publish(sid, "k")
            if state is SS.PUBLISHING:
                self.status(sid, "status", "NetStream.Publish.Start")
        elif state in (SS.PLAY_PENDING, SS.PLAYING, SS.PLAY_STOPPED):
            self.session.play(sid, "k")
            if state is not SS.PLAY_PENDING:
                self.status(sid, "status", "NetStream.Play.Start")
            if state is SS.PLAY_STOPPED:
                self.status(sid, "status", "NetStream.Play.UnpublishNotify")
        self.sent()
        assert self.session.stream_state(sid) is state
        return sid

    def apply(self, sid: int, what: StreamInput) -> list[Event]:
        s = self.session
        local: dict[StreamInput, Callable[[], None]] = {
            SI.PUBLISH: lambda: s.publish(sid, "k2"),
            SI.PLAY: lambda: s.play(sid, "k2"),
            SI.CLOSE: lambda: s.close_stream(sid),
            SI.DELETE: lambda: s.delete_stream(sid),
            SI.PAUSE: lambda: s.pause(sid, True, 0),
            SI.SEEK: lambda: s.seek(sid, 100),
            SI.RECEIVE_AUDIO: lambda: s.receive_audio(sid, False),
            SI.RECEIVE_VIDEO: lambda: s.receive_video(sid, False),
            SI.SEND: lambda: s.send_video(sid, 0, AVC_KEY),
        }
        if what in local:
            local[what]()
            return []
        peer = {
            SI.PUBLISH_START: ("status", "NetStream.Publish.Start"),
            SI.PLAY_START: ("status", "NetStream.Play.Start"),
            SI.PLAY_STOP: ("status", "NetStream.Play.UnpublishNotify"),
            SI.FAIL: ("error", "NetStream.Play.Failed"),
        }
        if what in peer:
            return self.status(sid, *peer[what])
        assert what is SI.MEDIA
        return self.feed(Message(9, AVC_KEY, 0, sid))


CLIENT_STATES = list(StreamState)
CLIENT_LOCAL = [SI.PUBLISH, SI.PLAY, SI.CLOSE, SI.DELETE, SI.PAUSE, SI.SEEK, SI.RECEIVE_AUDIO,
                SI.RECEIVE_VIDEO, SI.SEND]
CLIENT_PEER = [SI.PUBLISH_START, SI.PLAY_START, SI.PLAY_STOP, SI.FAIL, SI.MEDIA]


def check_client_action(action: Action, what: StreamInput, events: list[Event],
                        sent: list[Message]) -> None:
    typed = [type(e) for e in events if not isinstance(e, Status)]
    expected: dict[Action, list[type]] = {
        A.STARTED: [PublishStarted if what is SI.PUBLISH_START else PlayStarted],
        A.STOPPED: [PlayStopped],
        A.FAILED: [StreamFailed],
        A.DELIVER: [VideoData],
    }
    assert typed == expected.get(action, []), (action, events)
    if action is A.SEND:
        assert sent, "the command or media went out"
        if what is SI.SEND:
            assert sent[-1].type_id == 9
        else:
            assert amf.loads_all(sent[0].payload)[0] == what.value
    else:
        assert sent == []
    if action is A.DROP:
        assert events == []


@pytest.mark.parametrize(("state", "what"), list(CLIENT_STREAM),
                         ids=[f"{s.name}-{i.name}" for s, i in CLIENT_STREAM])
def test_client_stream_table(state: StreamState, what: StreamInput) -> None:
    action, after = CLIENT_STREAM[(state, what)]
    client = Client()
    sid = client.stream_in(state)
    events = client.apply(sid, what)
    check_client_action(action, what, events, client.sent())
    if what is SI.DELETE:
        assert client.session.stream_state(sid) is None
    else:
        assert client.session.stream_state(sid) is after


CLIENT_MISSING = [(s, i) for s, i in itertools.product(CLIENT_STATES, CLIENT_LOCAL + CLIENT_PEER)
                  if (s, i) not in CLIENT_STREAM]


@pytest.mark.parametrize(("state", "what"), CLIENT_MISSING,
                         ids=[f"{s.name}-{i.name}" for s, i in CLIENT_MISSING])
def test_client_stream_missing_pairs_are_errors(state: StreamState, what: StreamInput) -> None:
    client = Client()
    sid = client.stream_in(state)
    with pytest.raises(InvalidStateError if what in CLIENT_LOCAL else ProtocolError):
        client.apply(sid, what)


def test_every_peer_status_has_a_row() -> None:
    # the server's statuses never make a client drop the connection
    assert all((s, i) in CLIENT_STREAM for s in CLIENT_STATES for i in CLIENT_PEER)


# --- the connection tables ------------------------------------------------------------

def handshaken_server() -> tuple[Pair, ChunkWriter]:
    pair = Pair()
    pair.pump()
    return pair, ChunkWriter()


def server_connection_case(state: ConnectionState, what: ConnectionInput) -> None:
    """Bring a server to ``state``, apply ``what``, check the entry's promise."""
    action, after = SERVER_CONNECTION[(state, what)]
    if state is CS.HANDSHAKE:
        session = ServerSession()
        client = ClientSession("live", "rtmp://h/live")
        session.receive_data(client.data_to_send())           # C0 C1
        client.receive_data(session.data_to_send())           # S0 S1 S2
        events = session.receive_data(client.data_to_send())  # C2
        assert of(HandshakeComplete, events) and session.state is after
        return
    pair, w = handshaken_server()
    server = pair.server
    reader = ChunkReader()
    connect = command("connect", 1, {"app": "live", "capsEx": 1.0})  # can be asked to reconnect
    if state is not CS.AWAIT_CONNECT:
        server.receive_data(w.encode(connect))
        if state is CS.CONNECTED:
            server.accept_connect()
        elif state is CS.REJECTED:
            server.reject_connect()
    decode_commands(reader, server.data_to_send())
    assert server.state is state
    later: list[Event] = []
    if what is CI.CONNECT:
        events = server.receive_data(w.encode(connect))
    elif what is CI.COMMAND:
        events = server.receive_data(w.encode(command("createStream", 2, None)))
    elif what is CI.ACCEPT:
        events = []
        later = server.accept_connect()
    elif what is CI.CALL:
        events = []
        server.send_reconnect_request()
    else:
        events = []
        server.reject_connect()
    replies = decode_commands(reader, server.data_to_send())
    assert server.state is after
    if action is A.REQUEST:
        assert of(ConnectRequest, events)
    elif action is A.DEFER:
        assert events == [] and replies == []
        later = server.accept_connect()
        assert of(StreamCreated, later)  # processed once connect is accepted
    elif action is A.ACCEPT:
        assert status_codes(replies) == [] and replies[-1][0] == "_result"
        assert replies[-1][3]["code"] == "NetConnection.Connect.Success"
        assert later == []
    elif action is A.REJECT:
        assert status_codes(replies) == [("error", "NetConnection.Connect.Rejected")]
    elif action is A.PROCESS:
        assert of(StreamCreated, events) and replies[0][0] == "_result"
    elif action is A.DROP:
        assert events == [] and replies == []
    elif action is A.SEND:
        assert status_codes(replies) == [("status", "NetConnection.Connect.ReconnectRequest")]
    else:
        raise AssertionError(f"unchecked action {action}")


@pytest.mark.parametrize(("state", "what"), list(SERVER_CONNECTION),
                         ids=[f"{s.name}-{i.name}" for s, i in SERVER_CONNECTION])
def test_server_connection_table(state: ConnectionState, what: ConnectionInput) -> None:
    server_connection_case(state, what)


@pytest.mark.parametrize(("state", "what", "error"), [
    (CS.AWAIT_CONNECT, CI.COMMAND, ProtocolError),      # a command before connect
    (CS.CONNECT_PENDING, CI.CONNECT, ProtocolError),    # connect twice
    (CS.CONNECTED, CI.CONNECT, ProtocolError),
    (CS.AWAIT_CONNECT, CI.ACCEPT, InvalidStateError),   # nothing to accept
    (CS.CONNECTED, CI.ACCEPT, InvalidStateError),
    (CS.CONNECTED, CI.REJECT, InvalidStateError),
    (CS.REJECTED, CI.ACCEPT, InvalidStateError),
    (CS.AWAIT_CONNECT, CI.CALL, InvalidStateError),     # a reconnect request before connect
    (CS.CONNECT_PENDING, CI.CALL, InvalidStateError),
    (CS.REJECTED, CI.CALL, InvalidStateError),
])
def test_server_connection_missing_pairs(state: ConnectionState, what: ConnectionInput,
                                         error: type[Exception]) -> None:
    assert (state, what) not in SERVER_CONNECTION
    pair, w = handshaken_server()
    server = pair.server
    if state is not CS.AWAIT_CONNECT:
        server.receive_data(w.encode(command("connect", 1, {"app": "live", "capsEx": 1.0})))
        if state is CS.CONNECTED:
            server.accept_connect()
        elif state is CS.REJECTED:
            server.reject_connect()
    with pytest.raises(error):
        if what is CI.CALL:
            server.send_reconnect_request()
        elif what is CI.COMMAND:
            server.receive_data(w.encode(command("createStream", 2, None)))
        elif what is CI.CONNECT:
            server.receive_data(w.encode(command("connect", 1, {"app": "live"})))
        else:
            server.accept_connect()


def client_in(state: ConnectionState) -> tuple[ClientSession, ServerSession, ChunkWriter]:
    """A client in ``state`` (its server end in memory), and a writer of
    raw server messages for it."""
    client = ClientSession("live", "rtmp://h/live")
    server = ServerSession()
    w = ChunkWriter()
    if state is CS.HANDSHAKE:
        return client, server, w
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    if state is not CS.AWAIT_CONNECT:
        client.connect()
        if state is CS.CONNECTED:
            client.receive_data(w.encode(command("_result", 1, None, {"code": "ok"})))
        elif state is CS.REJECTED:
            client.receive_data(w.encode(command("_error", 1, None, {"code": "no"})))
    client.data_to_send()
    assert client.state is state
    return client, server, w


def test_client_connection_table() -> None:
    checked = set()
    # connect() during the handshake is queued, then sent
    client, server, _ = client_in(CS.HANDSHAKE)
    c0c1 = client.data_to_send()
    client.connect()
    checked.add((CS.HANDSHAKE, CI.CONNECT))
    assert client.state is CS.HANDSHAKE and client.data_to_send() == b""
    server.receive_data(c0c1)
    events = client.receive_data(server.data_to_send())
    checked.add((CS.HANDSHAKE, CI.HANDSHAKE_DONE))
    assert of(HandshakeComplete, events) and client.state is CS.CONNECT_PENDING
    checked.add((CS.AWAIT_CONNECT, CI.CONNECT))
    # connect() after the handshake is sent at once
    client, _, _ = client_in(CS.AWAIT_CONNECT)
    client.connect()
    assert client.state is CS.CONNECT_PENDING and b"connect" in client.data_to_send()
    # the answers
    for answer, kind, after in (("_result", Connected, CS.CONNECTED),
                                ("_error", ConnectRejected, CS.REJECTED)):
        client, _, w = client_in(CS.CONNECT_PENDING)
        events = client.receive_data(w.encode(command(answer, 1, None, {"code": "x"})))
        assert of(kind, events) and client.state is after
    checked |= {(CS.CONNECT_PENDING, CI.ACCEPT), (CS.CONNECT_PENDING, CI.REJECT)}
    # commands from the server before and after its answer
    for state in (CS.CONNECT_PENDING, CS.CONNECTED):
        client, _, w = client_in(state)
        events = client.receive_data(w.encode(command("onBWDone", 0, None)))
        assert of(CommandCall, events) and client.state is state
        checked.add((state, CI.COMMAND))
    client, _, w = client_in(CS.REJECTED)
    assert client.receive_data(w.encode(command("onBWDone", 0, None))) == []
    checked.add((CS.REJECTED, CI.COMMAND))
    # the application's calls once connected
    client, _, w = client_in(CS.CONNECTED)
    txn = client.call("hello", 1)
    assert b"hello" in client.data_to_send()
    events = client.receive_data(w.encode(command("_result", txn, None, 2)))
    assert of(CallResult, events)[0].args == (2,)
    checked.add((CS.CONNECTED, CI.CALL))
    assert checked == set(CLIENT_CONNECTION)


@pytest.mark.parametrize("state", [CS.HANDSHAKE, CS.AWAIT_CONNECT, CS.CONNECT_PENDING,
                                   CS.REJECTED])
def test_client_calls_need_a_connection(state: ConnectionState) -> None:
    client, _, _ = client_in(state)
    with pytest.raises(InvalidStateError):
        client.call("hello")
    with pytest.raises(InvalidStateError):
        client.start_publish("k")


@pytest.mark.parametrize("state", [CS.CONNECT_PENDING, CS.CONNECTED, CS.REJECTED])
def test_client_connect_twice_is_misuse(state: ConnectionState) -> None:
    client, _, _ = client_in(state)
    with pytest.raises(InvalidStateError):
        client.connect()


def test_client_commands_before_connect_are_protocol_errors() -> None:
    client, _, w = client_in(CS.AWAIT_CONNECT)
    with pytest.raises(ProtocolError):
        client.receive_data(w.encode(command("onBWDone", 0, None)))


def test_every_action_is_used() -> None:
    used = {a for table in (SERVER_CONNECTION, CLIENT_CONNECTION, SERVER_STREAM, CLIENT_STREAM)
            for a, _ in table.values()}
    assert used == set(Action)
