"""The sans-I/O sessions: pairs wired in memory, state rules, real FFmpeg."""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtmpx import InvalidStateError, ProtocolError, RtmpError, amf
from rtmpx.chunk import ChunkWriter, Message
from rtmpx.events import (
    Acknowledged,
    AudioData,
    CallResult,
    CommandCall,
    Connected,
    ConnectRejected,
    ConnectRequest,
    DataMessage,
    Event,
    HandshakeComplete,
    Metadata,
    PingResponse,
    PlayRequest,
    PublishRequest,
    Status,
    StreamClosed,
    StreamCreated,
    StreamDeleted,
    Unpublished,
    UserControl,
    VideoData,
)
from rtmpx.session import ClientSession, ServerSession, SessionConfig, StreamState

from ..peers import ffmpeg_exe, lavfi_publish_args, listener, packet_count, start, stop


class Pair:
    """A client and a server session joined in memory, every byte passed
    through, optionally in random slices."""

    def __init__(self, *, split: random.Random | None = None, **client_kw: Any) -> None:
        self.server = ServerSession()
        self.client = ClientSession("live", "rtmp://127.0.0.1/live", **client_kw)
        self.split = split
        self.server_events: list[Event] = []
        self.client_events: list[Event] = []

    def _feed(self, session: ClientSession | ServerSession, data: bytes) -> list[Event]:
        if self.split is None:
            return session.receive_data(data)
        events: list[Event] = []
        pos = 0
        while pos < len(data):
            n = self.split.randint(1, 300)
            events += session.receive_data(data[pos:pos + n])
            pos += n
        return events

    def pump(self) -> tuple[list[Event], list[Event]]:
        got_s: list[Event] = []
        got_c: list[Event] = []
        for _ in range(50):
            a = self.client.data_to_send()
            if a:
                got_s += self._feed(self.server, a)
            b = self.server.data_to_send()
            if b:
                got_c += self._feed(self.client, b)
            if not a and not b:
                break
        self.server_events += got_s
        self.client_events += got_c
        return got_s, got_c

    def connect(self) -> None:
        self.client.connect()
        s, _ = self.pump()
        assert isinstance(s[-1], ConnectRequest)
        self.server.accept_connect()
        _, c = self.pump()
        assert isinstance(c[-1], Connected)

    def stream(self) -> int:
        self.client.create_stream()
        s, c = self.pump()
        created = [e for e in c if isinstance(e, StreamCreated)]
        assert created and [e for e in s if isinstance(e, StreamCreated)]
        return created[0].stream_id


def of(kind: type, events: list[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


AVC_SEQ = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04abcd\x01\x00\x02ef"
AVC_KEY = b"\x17\x01\x00\x00\x00" + b"K" * 5000
AVC_INTER = b"\x27\x01\x00\x00\x00" + b"i" * 700
AAC_SEQ = b"\xaf\x00\x12\x10"
AAC_RAW = b"\xaf\x01" + b"a" * 200


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_publish_flow(seed: int | None) -> None:
    pair = Pair(split=random.Random(seed) if seed is not None else None)
    pair.connect()
    req = of(ConnectRequest, pair.server_events)[0]
    assert (req.app, req.tc_url, req.object_encoding) == ("live", "rtmp://127.0.0.1/live", 0)
    assert of(HandshakeComplete, pair.server_events)[0].complex
    pair.client.release_stream("key")
    pair.client.fc_publish("key")
    sid = pair.stream()
    pair.client.publish(sid, "key?token=secret", "record")
    s, _ = pair.pump()
    assert s == [PublishRequest(sid, "key", "token=secret", "record")]
    pair.server.accept_publish(sid)
    _, c = pair.pump()
    assert [e.code for e in of(Status, c)] == ["NetStream.Publish.Start"]
    assert of(Status, c)[0].stream_id == sid
    pair.client.send_metadata(sid, {"width": 640.0, "height": 360.0})
    sent = [(0, AVC_SEQ), (0, AAC_SEQ), (0, AVC_KEY), (23, AAC_RAW), (40, AVC_INTER),
            (0xFFFFFF + 5, AVC_INTER), (0xFFFFFFFF, AVC_INTER), (3, AVC_INTER)]
    for ts, payload in sent:
        if payload[0] >> 4 == 10:
            pair.client.send_audio(sid, ts, payload)
        else:
            pair.client.send_video(sid, ts, payload)
    s, _ = pair.pump()
    meta = of(Metadata, s)
    assert meta[0].metadata == {"width": 640.0, "height": 360.0}
    assert amf.loads_all(meta[0].payload) == ["onMetaData", {"width": 640.0, "height": 360.0}]
    media = [(e.timestamp, e.payload) for e in s if isinstance(e, (AudioData, VideoData))]
    assert media == sent
    pair.client.fc_unpublish("key")
    pair.client.delete_stream(sid)
    s, _ = pair.pump()
    assert of(Unpublished, s) == [Unpublished(sid, "key")]
    assert of(StreamDeleted, s) == [StreamDeleted(sid)]


@pytest.mark.parametrize("seed", [None, 7])
def test_play_flow(seed: int | None) -> None:
    pair = Pair(split=random.Random(seed) if seed is not None else None)
    pair.connect()
    sid = pair.stream()
    pair.client.play(sid, "key?t=1")
    s, _ = pair.pump()
    assert of(PlayRequest, s) == [PlayRequest(sid, "key", "t=1", -2.0, -1.0, True)]
    pair.server.accept_play(sid)
    pair.server.send_metadata(sid, {"width": 320.0})
    pair.server.send_video(sid, 0, AVC_SEQ)
    pair.server.send_audio(sid, 0, AAC_SEQ)
    pair.server.send_video(sid, 0, AVC_KEY)
    pair.server.notify_unpublish(sid)
    _, c = pair.pump()
    codes = [e.code for e in of(Status, c)]
    assert codes == ["NetStream.Play.Reset", "NetStream.Play.Start",
                     "NetStream.Play.UnpublishNotify"]
    assert [e.event_type for e in of(UserControl, c)] == [0, 1]  # StreamBegin, StreamEOF
    assert of(DataMessage, c)[0].name == "|RtmpSampleAccess"
    assert of(Metadata, c)[0].metadata == {"width": 320.0}
    assert [e.payload for e in c if isinstance(e, (AudioData, VideoData))] == \
        [AVC_SEQ, AAC_SEQ, AVC_KEY]
    assert pair.client.stream_state(sid) is StreamState.PLAY_STOPPED  # UnpublishNotify
    pair.client.close_stream(sid)
    s, _ = pair.pump()
    assert of(StreamClosed, s) == [StreamClosed(sid)]


def test_connect_rejected() -> None:
    pair = Pair()
    pair.client.connect()
    pair.pump()
    pair.server.reject_connect("bad token")
    _, c = pair.pump()
    assert of(ConnectRejected, c)[0].description == "bad token"
    with pytest.raises(RtmpError):
        pair.client.create_stream()


def test_publish_rejected_then_accepted_on_retry() -> None:
    pair = Pair()
    pair.connect()
    sid = pair.stream()
    pair.client.publish(sid, "taken")
    pair.pump()
    pair.server.reject_publish(sid)
    _, c = pair.pump()
    status = of(Status, c)[0]
    assert (status.level, status.code) == ("error", "NetStream.Publish.BadName")
    assert pair.client.stream_state(sid) is StreamState.IDLE
    with pytest.raises(RtmpError):
        pair.client.send_video(sid, 0, AVC_KEY)
    pair.client.publish(sid, "free")
    pair.pump()
    pair.server.accept_publish(sid)
    pair.pump()
    assert pair.client.stream_state(sid) is StreamState.PUBLISHING


def test_custom_calls() -> None:
    pair = Pair()
    pair.server = ServerSession(SessionConfig(accept_calls=frozenset({"getTime"})))
    pair.connect()
    txn_known = pair.client.call("getTime", "utc")
    txn_unknown = pair.client.call("rm_rf")
    s, c = pair.pump()
    calls = of(CommandCall, s)
    assert [(x.name, x.args) for x in calls] == [("getTime", ("utc",)), ("rm_rf", ())]
    errors = of(CallResult, c)
    assert [(e.transaction_id, e.error) for e in errors] == [(txn_unknown, True)]
    pair.server.result(calls[0], 1234.0)
    _, c = pair.pump()
    assert of(CallResult, c) == [CallResult(txn_known, None, (1234.0,), False, "getTime")]


def test_acknowledgements_follow_the_peer_window() -> None:
    pair = Pair()
    pair.connect()
    sid = pair.stream()
    pair.client.publish(sid, "k")
    pair.pump()
    pair.server.accept_publish(sid)
    pair.pump()
    pair.client.set_window_ack_size(10_000)  # "acknowledge every 10 kB of mine"
    pair.pump()
    for i in range(10):
        pair.client.send_video(sid, i * 40, AVC_KEY)
    pair.pump()
    acks = of(Acknowledged, pair.client_events)
    assert acks and all(a.sequence <= pair.server.bytes_received for a in acks)
    assert acks[-1].sequence >= pair.server.bytes_received - 10_000


def test_ping_is_answered() -> None:
    pair = Pair()
    pair.connect()
    pair.server.ping(123456)
    _, c = pair.pump()
    assert not of(PingResponse, c)
    pair.pump()
    assert of(PingResponse, pair.server_events) == [PingResponse(123456)]


# --- state rules: the peer broke the protocol -------------------------------

def raw_server(*messages: Message) -> tuple[ServerSession, Callable[[], None]]:
    """A server past the handshake, and a feeder of raw chunked messages."""
    pair = Pair()
    pair.pump()  # handshake only
    writer = ChunkWriter()

    def feed() -> None:
        pair.server.receive_data(b"".join(writer.encode(m) for m in messages))

    return pair.server, feed


def command(name: str, txn: float, obj: Any, *args: Any, stream_id: int = 0) -> Message:
    return Message(20, amf.dumps_all([name, txn, obj, *args]), 0, stream_id)


CONNECT = command("connect", 1, {"app": "live", "tcUrl": "rtmp://h/live"})


@pytest.mark.parametrize("messages", [
    [command("createStream", 2, None)],                       # before connect
    [command("publish", 0, None, "k", "live", stream_id=1)],  # before connect
    [CONNECT, CONNECT],                                       # twice
    [Message(20, b"\x05\x05", 0, 0)],                         # no command name
    [Message(20, b"\x02\x00\x01", 0, 0)],                     # truncated AMF
], ids=["create-before-connect", "publish-before-connect", "connect-twice",
        "no-name", "bad-amf"])
def test_illegal_commands_raise(messages: list[Message]) -> None:
    server, feed = raw_server(*messages)
    with pytest.raises(ProtocolError):
        feed()
    with pytest.raises(ProtocolError):
        server.receive_data(b"\x00")  # dead from then on


def connected_server() -> tuple[ServerSession, ChunkWriter]:
    server, feed = raw_server(CONNECT)
    feed()
    server.accept_connect()
    server.data_to_send()
    return server, ChunkWriter()


def test_stream_rules() -> None:
    server, w = connected_server()
    with pytest.raises(ProtocolError, match="never created"):
        server.receive_data(w.encode(command("publish", 0, None, "k", stream_id=1)))
    server, w = connected_server()
    events = server.receive_data(w.encode(command("createStream", 2, None))
                                 + w.encode(command("play", 0, None, "k", stream_id=1)))
    assert of(PlayRequest, events)
    server.accept_play(1)
    with pytest.raises(InvalidStateError):
        server.accept_play(1)  # not pending any more: misuse of the API
    # a player sending video, media on streams never created: dropped, as nginx-rtmp does
    assert server.receive_data(w.encode(Message(9, AVC_KEY, 0, 1))
                               + w.encode(Message(8, b"\xaf\x01", 0, 7))) == []


def test_media_before_publish_is_accepted_is_dropped() -> None:
    server, w = connected_server()
    events = server.receive_data(
        w.encode(command("createStream", 2, None))
        + w.encode(command("publish", 0, None, "k", "live", stream_id=1))
        + w.encode(Message(9, AVC_KEY, 0, 1)))
    assert of(PublishRequest, events) and not of(VideoData, events)


def test_amf3_command_and_aggregate() -> None:
    server, w = connected_server()
    server.receive_data(w.encode(command("createStream", 2, None))
                        + w.encode(command("publish", 0, None, "k", stream_id=1)))
    server.accept_publish(1)
    # an AMF3 command message: one 0x00, then AMF0 values (here a custom call)
    body = b"\x00" + amf.dumps_all(["hello", 7, None, b"raw"])
    events = server.receive_data(w.encode(Message(17, body, 0, 0)))
    assert of(CommandCall, events)[0].args == (b"raw",)
    # an aggregate of three sub-messages, timestamps rebased on the first

    def sub(type_id: int, ts: int, payload: bytes) -> bytes:
        head = bytes([type_id]) + len(payload).to_bytes(3, "big") + \
            (ts & 0xFFFFFF).to_bytes(3, "big") + bytes([ts >> 24]) + b"\x00\x00\x00"
        return head + payload + struct.pack(">I", 11 + len(payload))

    agg = sub(9, 5000, AVC_KEY) + sub(8, 5020, AAC_RAW) + sub(9, 5040, AVC_INTER)
    events = server.receive_data(w.encode(Message(22, agg, 1000, 1)))
    assert [(type(e).__name__, e.timestamp) for e in events] == [
        ("VideoData", 1000), ("AudioData", 1020), ("VideoData", 1040)]
    with pytest.raises(ProtocolError, match="truncated aggregate"):
        server.receive_data(w.encode(Message(22, agg[:-3], 2000, 1)))
    # issue 8: 500,000 one-byte messages in one aggregate were split in one
    # go (seconds of the event loop); at most max_aggregate_messages now
    server, w = connected_server()
    server.receive_data(w.encode(command("createStream", 2, None))
                        + w.encode(command("publish", 0, None, "k", stream_id=1)))
    server.accept_publish(1)
    tiny = sub(8, 0, b"\xaf")
    assert len(server.receive_data(w.encode(Message(22, tiny * 4096, 0, 1)))) == 4096
    with pytest.raises(ProtocolError, match="max_aggregate_messages=4096"):
        server.receive_data(w.encode(Message(22, tiny * 4097, 0, 1)))


def test_unknown_types_and_shared_objects_are_ignored() -> None:
    server, w = connected_server()
    assert server.receive_data(w.encode(Message(19, b"\x00\x03abc", 0, 0))
                               + w.encode(Message(0x30, b"xyz", 0, 0))) == []


def test_chunk_limits_come_from_the_config() -> None:
    server = ServerSession(SessionConfig(max_message_size=1000))
    pair = Pair()
    pair.server = server
    pair.connect()
    sid = pair.stream()
    pair.client.publish(sid, "k")
    pair.pump()
    server.accept_publish(sid)
    pair.pump()
    pair.client.send_video(sid, 0, b"\x17" * 2000)
    with pytest.raises(ProtocolError):
        pair.pump()


# --- real FFmpeg against a minimal server built on ServerSession ------------------

def serve(sock: socket.socket, session: ServerSession,
          on_event: Callable[[ServerSession, Event], None], deadline: float = 60.0) -> None:
    """Drive one connection with blocking sockets until the peer closes."""
    sock.settimeout(deadline)
    with sock:
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return
            if not data:
                return
            for event in session.receive_data(data):
                on_event(session, event)
            out = session.data_to_send()
            if out:
                sock.sendall(out)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What real FFmpeg publishes to a ServerSession: every event."""
    ffmpeg = ffmpeg_exe()
    lst = listener()
    port = lst.getsockname()[1]
    proc = start([ffmpeg, "-hide_banner", "-loglevel", "error", *lavfi_publish_args(2.0),
                  "-f", "flv", f"rtmp://127.0.0.1:{port}/live/key?token=abc"])
    events: list[Event] = []

    def on_event(session: ServerSession, event: Event) -> None:
        events.append(event)
        if isinstance(event, ConnectRequest):
            session.accept_connect()
        elif isinstance(event, PublishRequest):
            session.accept_publish(event.stream_id)

    lst.settimeout(30)
    try:
        conn, _ = lst.accept()
    finally:
        lst.close()
    serve(conn, ServerSession(), on_event)
    code, err = stop(proc)
    assert code == 0, err
    return {"events": events}


@pytest.mark.interop
def test_ffmpeg_publishes_to_a_server_session(published: dict[str, Any]) -> None:
    events = published["events"]
    assert of(HandshakeComplete, events)[0].complex  # FFmpeg sends a digest C1
    req = of(ConnectRequest, events)[0]
    assert req.app == "live" and req.tc_url.startswith("rtmp://127.0.0.1:")
    pub = of(PublishRequest, events)[0]
    assert (pub.name, pub.query, pub.publish_type) == ("key", "token=abc", "live")
    meta = of(Metadata, events)[0].metadata
    assert (meta["width"], meta["height"], meta["videocodecid"]) == (160.0, 120.0, 7.0)
    video = of(VideoData, events)
    audio = of(AudioData, events)
    assert video[0].payload[:2] == b"\x17\x00"  # AVC sequence header first
    assert audio[0].payload[0] >> 4 == 10 and audio[0].payload[1] == 0  # AAC header
    frames = [v for v in video if v.payload[1] == 1]  # AVC NALUs (not header / end)
    assert len(frames) == 50  # 2 s at 25 fps
    assert [v.timestamp for v in video[1:]] == sorted(v.timestamp for v in video[1:])
    assert of(Unpublished, events)  # FCUnpublish / deleteStream at the end


@pytest.mark.interop
def test_ffmpeg_plays_from_a_server_session(published: dict[str, Any],
                                            tmp_path: Path) -> None:
    events = published["events"]
    meta = of(Metadata, events)[0]
    media = [e for e in events if isinstance(e, (AudioData, VideoData))]
    ffmpeg = ffmpeg_exe()
    lst = listener()
    port = lst.getsockname()[1]
    out = tmp_path / "out.flv"
    proc = start([ffmpeg, "-hide_banner", "-loglevel", "error", "-i",
                  f"rtmp://127.0.0.1:{port}/live/key", "-c", "copy", "-f", "flv", str(out)])
    plays: list[PlayRequest] = []

    def on_event(session: ServerSession, event: Event) -> None:
        if isinstance(event, ConnectRequest):
            session.accept_connect()
        elif isinstance(event, PlayRequest):
            plays.append(event)
            session.accept_play(event.stream_id)
            session.send_data(event.stream_id, 0, meta.payload)
            for m in media:
                send = session.send_video if isinstance(m, VideoData) else session.send_audio
                send(event.stream_id, m.timestamp, m.payload)
            session.notify_unpublish(event.stream_id)

    lst.settimeout(30)
    try:
        conn, _ = lst.accept()
    finally:
        lst.close()
    thread = threading.Thread(target=serve, args=(conn, ServerSession(), on_event, 30.0))
    thread.start()
    code, err = stop(proc, timeout=60)
    thread.join(30)
    assert plays and plays[0].name == "key"
    assert code == 0, err
    frames = [m for m in media if isinstance(m, VideoData) and m.payload[1] == 1]
    assert packet_count(ffmpeg, out, "v:0") == len(frames) == 50
