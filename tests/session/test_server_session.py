"""ServerSession: shared fan-out bytes, requests withdrawn while the
application decides, leniency where nginx-rtmp is lenient."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtmpx import InvalidStateError, ProtocolError, amf
from rtmpx._chunk_py import ChunkReader as PureReader
from rtmpx.chunk import ChunkWriter, Message
from rtmpx.events import (
    AudioData,
    DataMessage,
    Event,
    MediaBatch,
    Metadata,
    Pause,
    PlayRequest,
    PlayStopped,
    PublishRequest,
    Seek,
    Status,
    StreamCreated,
    StreamDeleted,
    VideoData,
)
from rtmpx.session import ServerSession, SessionConfig, StreamState, encode_shared

from .test_session import AVC_KEY, AVC_SEQ, Pair, command, of
from .test_states import Server, status_codes


def shared(server: ServerSession, sid: int, type_id: int, timestamp: int,
           payload: bytes) -> None:
    """What the hub does for every player: chunk once, send through the session."""
    server.send_shared(type_id, encode_shared(type_id, timestamp, payload, sid,
                                              server.chunk_size))


@pytest.mark.parametrize("again", ["closeStream", "play"])
def test_a_second_play_after_shared_media_stays_in_sync(again: str) -> None:
    """Regression: the session's own header on chunk stream 5
    (|RtmpSampleAccess) used to be measured against its last own message
    there, while the player's last header on that chunk stream came from
    shared fan-out bytes: a fmt 3 header the player decoded as garbage."""
    pair = Pair()
    pair.connect()
    sid = pair.stream()
    player = pair.client
    for round_ in range(3):
        player.play(sid, "k")
        s, _ = pair.pump()
        assert of(PlayRequest, s)
        pair.server.accept_play(sid)
        meta = amf.dumps_all(["onMetaData", {"width": 320.0 + round_}])
        shared(pair.server, sid, 18, 0, meta)
        shared(pair.server, sid, 9, 0, AVC_SEQ)
        shared(pair.server, sid, 9, 40, AVC_KEY)
        _, c = pair.pump()
        assert [e.name for e in of(DataMessage, c)] == ["|RtmpSampleAccess"]
        assert of(Metadata, c)[0].metadata == {"width": 320.0 + round_}
        assert [e.payload for e in of(VideoData, c)] == [AVC_SEQ, AVC_KEY]
        if again == "closeStream":
            player.close_stream(sid)
            s, _ = pair.pump()
            assert of(PlayStopped, s) == [PlayStopped(sid, "k")]


def test_shared_bytes_then_own_messages_decode_with_a_strict_reader() -> None:
    """The same, message by message, with the pure-Python reader as the player."""
    server = Server(reader=PureReader)
    sid = server.stream_in(StreamState.PLAYING)
    session = server.session
    expected = []
    for i in range(4):
        cue = amf.dumps_all(["onCuePoint", "x" * (10 + i)])
        text = amf.dumps_all(["onTextData", {"text": "t" * i}])
        shared(session, sid, 18, 0, cue)
        session.send_data(sid, 0, text)
        shared(session, sid, 9, 40 * i, AVC_KEY)
        session.send_video(sid, 40 * i + 1, AVC_SEQ)
        expected += [(18, 0, cue), (18, 0, text), (9, 40 * i, AVC_KEY), (9, 40 * i + 1, AVC_SEQ)]
    got = [(m.type_id, m.timestamp, m.payload)
           for m in server.reader.feed(session.data_to_send())]
    assert got == expected


@pytest.mark.parametrize("withdraw", ["closeStream", "deleteStream"])
@pytest.mark.parametrize("kind", ["publish", "play"])
def test_a_request_withdrawn_while_the_application_decides(withdraw: str, kind: str) -> None:
    """Regression: closeStream/deleteStream during an async hook used to make
    the late accept raise, which aborted the whole connection."""
    server = Server()
    sid = server.stream_in(StreamState.IDLE)
    events = server.send(command(kind, 0, None, "k", stream_id=sid))
    request = events[0]
    assert isinstance(request, (PublishRequest, PlayRequest))
    assert server.session.is_pending(request)
    if withdraw == "closeStream":
        server.send(command("closeStream", 0, None, stream_id=sid))
    else:
        server.send(command("deleteStream", 0, None, float(sid)))
    assert not server.session.is_pending(request)
    with pytest.raises(InvalidStateError):  # what a shell must not do: it checks is_pending
        (server.session.accept_publish if kind == "publish" else server.session.accept_play)(sid)
    # the connection goes on
    assert of(StreamCreated, server.send(command("createStream", 3, None)))


def test_a_newer_play_supersedes_a_pending_one() -> None:
    server = Server()
    sid = server.stream_in(StreamState.IDLE)
    first = server.send(command("play", 0, None, "a", stream_id=sid))[0]
    second = server.send(command("play", 0, None, "b", stream_id=sid))[0]
    assert isinstance(first, PlayRequest) and isinstance(second, PlayRequest)
    assert not server.session.is_pending(first) and server.session.is_pending(second)


def test_a_replay_ends_the_current_play_first() -> None:
    """The shell hears PlayStopped before the new PlayRequest, so a refused
    re-play leaves nothing streaming."""
    server = Server()
    sid = server.stream_in(StreamState.PLAYING)
    events = server.send(command("play", 0, None, "other", stream_id=sid))
    assert [type(e) for e in events] == [PlayStopped, PlayRequest]
    server.session.reject_play(sid)
    assert server.session.stream_state(sid) is StreamState.IDLE


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 0.5, 2.0**40, "1", None, True])
def test_delete_stream_with_a_strange_id_is_harmless(value: object) -> None:
    """Regression: deleteStream(NaN) raised ValueError out of data_received."""
    server = Server()
    sid = server.stream_in(StreamState.PUBLISHING)
    assert server.send(command("deleteStream", 0, None, value)) == []
    assert server.session.stream_state(sid) is StreamState.PUBLISHING
    assert of(StreamDeleted, server.send(command("deleteStream", 0, None, float(sid))))


@pytest.mark.parametrize("name", ["pause", "seek", "receiveAudio"])
def test_pause_and_seek_while_a_play_is_pending_are_ignored(name: str) -> None:
    """Regression: they used to be protocol errors; nginx-rtmp ignores them."""
    server = Server()
    sid = server.stream_in(StreamState.PLAY_PENDING)
    events = server.send(command(name, 0, None, True, 0.0, stream_id=sid))
    assert not of(Pause, events) and not of(Seek, events)
    assert server.session.stream_state(sid) is StreamState.PLAY_PENDING
    server.session.accept_play(sid)
    if name == "receiveAudio":
        assert server.session.receiving(sid) == (True, True)


def test_pause_unpause_and_seek_are_answered_by_the_session() -> None:
    server = Server()
    sid = server.stream_in(StreamState.PLAYING)
    assert of(Pause, server.send(command("pause", 0, None, True, 10.0, stream_id=sid))) == \
        [Pause(sid, True, 10.0)]
    assert of(Pause, server.send(command("pause", 0, None, False, 10.0, stream_id=sid))) == \
        [Pause(sid, False, 10.0)]
    assert of(Seek, server.send(command("seek", 0, None, 5.0, stream_id=sid))) == \
        [Seek(sid, 5.0)]
    assert [code for _, code in status_codes(server.replies())] == [
        "NetStream.Pause.Notify", "NetStream.Unpause.Notify", "NetStream.Seek.Notify"]


def test_play_reset_follows_the_request() -> None:
    for reset in (True, False):
        server = Server()
        sid = server.stream_in(StreamState.IDLE)
        server.send(command("play", 0, None, "k", -2.0, -1.0, reset, stream_id=sid))
        server.session.accept_play(sid)
        codes = [code for _, code in status_codes(server.replies())]
        assert ("NetStream.Play.Reset" in codes) is reset


def test_commands_sent_before_connect_is_answered_are_held() -> None:
    """Regression: a client that pipelines createStream (and more) after
    connect, while the application still decides, used to be dropped."""
    pair = Pair()
    pair.pump()
    w = ChunkWriter()
    server = pair.server
    events = server.receive_data(
        w.encode(command("connect", 1, {"app": "live"}))
        + w.encode(command("releaseStream", 2, None, "k"))
        + w.encode(command("createStream", 3, None))
        + w.encode(Message(9, AVC_KEY, 0, 1))   # media on a stream not made yet: dropped
        + w.encode(command("publish", 0, None, "k", "live", stream_id=1)))
    assert len(events) == 1
    replies = server.data_to_send()
    assert replies == b""  # nothing answered before connect
    later = server.accept_connect()
    assert [type(e).__name__ for e in later] == ["ReleaseStream", "StreamCreated",
                                                 "PublishRequest"]


def test_held_commands_are_bounded() -> None:
    pair = Pair()
    pair.server = ServerSession(SessionConfig(max_deferred=3))
    pair.pump()
    w = ChunkWriter()
    server = pair.server
    server.receive_data(w.encode(command("connect", 1, {"app": "live"})))
    server.receive_data(b"".join(w.encode(command("_checkbw", 2 + i, None)) for i in range(3)))
    with pytest.raises(ProtocolError, match="before connect"):
        server.receive_data(w.encode(command("_checkbw", 9, None)))


def test_small_limits_hold_until_connect_is_accepted() -> None:
    """Before connect is accepted, one peer cannot make the server hold
    more than max_connect_message bytes (a 1 MiB connect object used to be
    taken, decoded and kept)."""
    w = ChunkWriter()
    big = {"app": "live", "pad": "x" * 70_000}
    pair = Pair()
    pair.pump()
    with pytest.raises(ProtocolError, match="max_message_size=65536"):
        pair.server.receive_data(w.encode(command("connect", 1, big)))
    w = ChunkWriter()
    pair = Pair()
    pair.pump()
    server = pair.server
    server.receive_data(w.encode(command("connect", 1, {"app": "live"})))
    with pytest.raises(ProtocolError, match="max_message_size=65536"):  # still pending
        server.receive_data(w.encode(command("myCall", 2, None, ["x"] * 70_000)))
    w = ChunkWriter()
    pair = Pair()
    pair.pump()
    server = pair.server
    server.receive_data(w.encode(command("connect", 1, {"app": "live"})))
    server.accept_connect()
    events = server.receive_data(w.encode(command("myCall", 2, None, ["x"] * 70_000)))
    assert [type(e).__name__ for e in events] == ["CommandCall"]


def test_chunk_streams_before_connect_are_few() -> None:
    pair = Pair()
    pair.pump()
    # fmt 0 headers of 200-byte commands, each cut after its first chunk
    data = b"".join(bytes([3 + i]) + bytes.fromhex("000000 0000c8 14 00000000") + bytes(128)
                    for i in range(9))
    with pytest.raises(ProtocolError, match="more than 8 chunk streams"):
        pair.server.receive_data(data)


@pytest.mark.parametrize("where", ["app", "tcUrl", "stream"])
def test_names_are_bounded(where: str) -> None:
    """Names are logged, shown in stats and used as keys: a peer cannot
    give one of megabytes."""
    from rtmpx.session.base import MAX_NAME

    long = "n" * (MAX_NAME + 1)
    w = ChunkWriter()
    pair = Pair()
    pair.pump()
    server = pair.server
    params = {"app": "live", "tcUrl": "rtmp://h/live"}
    if where != "stream":
        params[where] = long
        with pytest.raises(ProtocolError, match="MAX_NAME"):
            server.receive_data(w.encode(command("connect", 1, params)))
        return
    server.receive_data(w.encode(command("connect", 1, params)))
    server.accept_connect()
    server.receive_data(w.encode(command("createStream", 2, None)))
    with pytest.raises(ProtocolError, match="MAX_NAME"):
        server.receive_data(w.encode(command("publish", 0, None, long, "live", stream_id=1)))


def test_a_held_command_that_breaks_the_protocol_kills_the_session() -> None:
    """Found by fuzzing (corpus find-deferred-play-before-create): a play on
    a stream never created, held while the application decided, raised
    from accept_connect() but left the session alive."""
    pair = Pair()
    pair.pump()
    w = ChunkWriter()
    server = pair.server
    server.receive_data(w.encode(command("connect", 1, {"app": "live"}))
                        + w.encode(command("play", 0, None, "k", stream_id=5)))
    with pytest.raises(ProtocolError):
        server.accept_connect()
    with pytest.raises(ProtocolError, match="already failed"):
        server.receive_data(w.encode(command("createStream", 2, None)))


def test_commands_held_then_connect_rejected_are_dropped() -> None:
    pair = Pair()
    pair.pump()
    w = ChunkWriter()
    session = pair.server
    session.receive_data(w.encode(command("connect", 1, {"app": "live"}))
                         + w.encode(command("createStream", 2, None)))
    session.reject_connect()
    out = session.data_to_send()
    assert b"_error" in out and out.count(b"_result") == 0
    assert session.receive_data(w.encode(command("createStream", 3, None))) == []


def test_fc_subscribe_is_answered_as_fms_does() -> None:
    """librtmp sends FCSubscribe before a live play; an _error for it made
    rtmpdump print "ERROR: rtmp server sent error"."""
    pair = Pair()
    pair.pump()
    w = ChunkWriter()
    server = pair.server
    server.receive_data(w.encode(command("connect", 1, {"app": "live"})))
    server.accept_connect()
    reader = PureReader()
    reader.feed(server.data_to_send())
    server.receive_data(w.encode(command("FCSubscribe", 3, None, "key")))
    names = [amf.loads_all(m.payload)[0] for m in reader.feed(server.data_to_send())]
    assert names == ["onFCSubscribe", "_result"]


def test_unknown_calls_do_not_echo_their_name() -> None:
    server = Server()
    server.send(command("x" * 1000, 5, None))
    reply = server.replies()[0]
    assert reply[0] == "_error" and "x" * 10 not in str(reply)


def test_status_events_are_information_only() -> None:
    # a server session never emits Status (that is the client's)
    server = Server()
    sid = server.stream_in(StreamState.PLAYING)
    assert not of(Status, server.send(command("onStatus", 0, None, {"code": "x"},
                                              stream_id=sid)))


def test_fc_unpublish_withdraws_a_pending_publish() -> None:
    """Review finding: FCUnpublish on a pending publish voided the request
    but left the stream pending: no answer ever, and a retry was refused."""
    server = Server()
    sid = server.stream_in(StreamState.PUBLISH_PENDING)
    server.send(command("FCUnpublish", 0, None, "k"))
    assert server.session.stream_state(sid) is StreamState.IDLE
    retry = server.send(command("publish", 0, None, "k", "live", stream_id=sid))
    assert of(PublishRequest, retry) and server.session.is_pending(retry[0])


def test_a_bounded_read_takes_a_batch_and_keeps_the_rest() -> None:
    """Issue 10: a caller that takes turns (the Pacer) hands a whole large
    read at once; ``bounded`` reads at most BATCH messages of it per call."""
    from rtmpx.events import AudioData
    from rtmpx.session.base import BATCH

    pair = Pair()
    pair.connect()
    sid = pair.stream()
    pair.client.publish(sid, "flood")
    pair.pump()
    pair.server.accept_publish(sid)
    pair.pump()
    count = 3 * BATCH + 7
    for i in range(count):
        pair.client.send_audio(sid, i, b"\xaf\x01" + bytes([i % 256]))
    wire = pair.client.data_to_send()
    server = pair.server
    got = server.receive_data(wire, bounded=True)
    assert len(of(AudioData, got)) == BATCH and server.input_pending > 0
    calls = 1
    while server.input_pending:
        got += server.receive_data(b"", bounded=True)
        calls += 1
    audio = of(AudioData, got)
    assert calls == 4 and [a.timestamp for a in audio] == list(range(count))
    # unbounded (the default): everything in one call
    for i in range(count):
        pair.client.send_audio(sid, count + i, b"\xaf\x01\x00")
    assert len(of(AudioData, server.receive_data(pair.client.data_to_send()))) == count
    assert server.input_pending == 0


def _flatten(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for e in events:
        if isinstance(e, MediaBatch):
            out += [(VideoData if m.type_id == 9 else AudioData)(e.stream_id, m.timestamp,
                                                                 m.payload) for m in e.messages]
        else:
            out.append(e)
    return out


_client_step = st.one_of(
    st.tuples(st.just("media"), st.sampled_from([0, 1, 2]), st.sampled_from([8, 9])),
    st.tuples(st.just("meta"), st.sampled_from([0, 1])),
    st.tuples(st.just("ping")),
    st.tuples(st.just("close"), st.sampled_from([0, 1])),
    st.tuples(st.just("aggregate"), st.sampled_from([0, 1])),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_client_step, max_size=40), st.lists(st.integers(1, 400), max_size=8))
def test_batched_media_is_the_same_messages_in_the_same_order(
        steps: list[tuple[Any, ...]], cuts: list[int]) -> None:
    """``batch_media=True`` gives runs of a publishing stream's media as
    one MediaBatch each: flattened, the very events of an unbatched session,
    whatever ends a run (data, control, a closed stream, another stream)
    and however the bytes are split."""
    runs = []
    for batch in (False, True):
        server = Server()
        session = server.session
        session.batch_media = batch
        sids = [server.stream_in(StreamState.PUBLISHING), server.stream_in(StreamState.PUBLISHING),
                server.stream_in(StreamState.PLAYING)]
        wire = b""
        for ts, step in enumerate(steps):
            if step[0] == "media":
                payload = (AVC_KEY[:20] if step[2] == 9 else b"\xaf\x01aac") + bytes([ts % 256])
                wire += server.writer.encode(Message(step[2], payload, ts, sids[step[1]]))
            elif step[0] == "meta":
                body = amf.dumps_all(["@setDataFrame", "onMetaData", {"ts": float(ts)}])
                wire += server.writer.encode(Message(18, body, ts, sids[step[1]]))
            elif step[0] == "ping":
                wire += server.writer.encode(Message(4, b"\x00\x06" + ts.to_bytes(4, "big"), 0, 0))
            elif step[0] == "close":
                wire += server.writer.encode(command("closeStream", 0, None,
                                                     stream_id=sids[step[1]]))
            else:
                inner = b"".join(
                    bytes([9]) + (9).to_bytes(3, "big") + ts.to_bytes(3, "big") + b"\x00"
                    + b"\x00\x00\x00" + b"\x27\x01\x00\x00\x00agg\x01" + (20).to_bytes(4, "big")
                    for _ in range(2))
                wire += server.writer.encode(Message(22, inner, ts, sids[step[1]]))
        events: list[Event] = []
        at = 0
        for cut in [*cuts, len(wire)]:
            events += session.receive_data(wire[at:at + cut])
            at += cut
        events += session.receive_data(wire[at:])
        if batch:
            assert all(e.messages for e in events if isinstance(e, MediaBatch))
        runs.append(_flatten(events))
    assert runs[0] == runs[1]


def test_shared_chunk_streams_are_the_sessions_own_by_the_escape_hatch_only_safely() -> None:
    """Shared media goes on chunk streams 7-9, which the session's writer
    never uses; a message sent there by hand through ``send_message`` (the
    escape hatch) gets full headers, so that shared bytes before and after
    it still decode."""
    from rtmpx.chunk import default_csid
    from rtmpx.session.base import SHARED_CSID
    assert not set(SHARED_CSID.values()) & {default_csid(t) for t in range(256)}
    server = Server(reader=PureReader)
    sid = server.stream_in(StreamState.PLAYING)
    session = server.session
    csid = SHARED_CSID[9]
    shared(session, sid, 9, 0, AVC_KEY)
    session.send_message(Message(9, AVC_SEQ, 10, sid, csid))
    session.send_message(Message(9, AVC_SEQ, 20, sid, csid))
    shared(session, sid, 9, 30, AVC_KEY)
    session.send_message(Message(9, AVC_SEQ, 40, sid, csid))
    got = [(m.timestamp, m.payload) for m in server.reader.feed(session.data_to_send())]
    assert got == [(0, AVC_KEY), (10, AVC_SEQ), (20, AVC_SEQ), (30, AVC_KEY), (40, AVC_SEQ)]
