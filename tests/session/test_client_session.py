"""ClientSession: the publish and play sequences of real encoders and
players, and what the server's onStatus codes mean, as events."""

from __future__ import annotations

from rtmpx import amf
from rtmpx.chunk import Message
from rtmpx.events import (
    FCPublish,
    PlayRequest,
    PlayStarted,
    PlayStopped,
    PublishRequest,
    PublishStarted,
    ReleaseStream,
    StreamCreated,
    StreamDeleted,
    StreamFailed,
    Unpublished,
    VideoData,
)
from rtmpx.session import StreamState

from .test_session import AVC_KEY, Pair, command, of
from .test_states import Client


def test_start_publish_runs_the_encoder_sequence() -> None:
    pair = Pair()
    pair.connect()
    request = pair.client.start_publish("key?token=1", "record")
    s, c = pair.pump()
    assert [type(e) for e in s if not isinstance(e, StreamCreated)] == [
        ReleaseStream, FCPublish, PublishRequest]
    sid = of(StreamCreated, c)[0].stream_id
    assert of(PublishRequest, s)[0].publish_type == "record"
    assert not of(PublishStarted, c)
    pair.server.accept_publish(sid)
    _, c = pair.pump()
    assert of(PublishStarted, c) == [PublishStarted(sid, "key?token=1", request)]
    pair.client.send_video(sid, 0, AVC_KEY)
    s, _ = pair.pump()
    assert of(VideoData, s)[0].payload == AVC_KEY
    pair.client.stop_publish(sid)
    s, _ = pair.pump()
    assert of(Unpublished, s) and of(StreamDeleted, s)
    assert pair.client.stream_state(sid) is None


def test_start_play_runs_the_player_sequence_and_follows_the_stream() -> None:
    pair = Pair()
    pair.connect()
    request = pair.client.start_play("cam", buffer_ms=500)
    s, c = pair.pump()
    sid = of(StreamCreated, c)[0].stream_id
    assert of(PlayRequest, s)[0].name == "cam"
    pair.server.accept_play(sid)
    _, c = pair.pump()
    assert of(PlayStarted, c) == [PlayStarted(sid, "cam", "NetStream.Play.Start", request)]
    pair.server.notify_unpublish(sid)   # StreamEOF + UnpublishNotify: one PlayStopped
    _, c = pair.pump()
    assert of(PlayStopped, c) == [PlayStopped(sid, "cam", "")]
    assert pair.client.stream_state(sid) is StreamState.PLAY_STOPPED
    pair.server.notify_publish(sid)     # republished: the play goes on
    _, c = pair.pump()
    assert of(PlayStarted, c) == [PlayStarted(sid, "cam", "NetStream.Play.PublishNotify",
                                              request)]
    pair.client.stop_play(sid)
    s, _ = pair.pump()
    assert of(PlayStopped, s) == [PlayStopped(sid, "cam")] and of(StreamDeleted, s)


def test_refusals_are_stream_failed() -> None:
    pair = Pair()
    pair.connect()
    request = pair.client.start_publish("taken")
    _, c = pair.pump()
    sid = of(StreamCreated, c)[0].stream_id
    pair.server.reject_publish(sid, "in use")
    _, c = pair.pump()
    failed = of(StreamFailed, c)
    assert [(f.stream_id, f.request_id, f.code, f.description) for f in failed] == [
        (sid, request, "NetStream.Publish.BadName", "in use")]
    assert pair.client.stream_state(sid) is StreamState.IDLE


def test_a_refused_create_stream_fails_the_sequence() -> None:
    client = Client()
    request = client.session.start_play("k")
    client.sent()
    events = client.feed(command("_error", request, None,
                                 {"level": "error", "code": "NetConnection.Call.Failed",
                                  "description": "Too many streams."}))
    assert of(StreamFailed, events) == [StreamFailed(
        0, request, "NetConnection.Call.Failed", "Too many streams.",
        {"level": "error", "code": "NetConnection.Call.Failed",
         "description": "Too many streams."})]


def test_an_error_while_playing_fails_the_stream() -> None:
    client = Client()
    sid = client.stream_in(StreamState.PLAYING)
    events = client.status(sid, "error", "NetStream.Play.StreamNotFound")
    assert of(StreamFailed, events)[0].code == "NetStream.Play.StreamNotFound"
    assert client.session.stream_state(sid) is StreamState.IDLE


def test_play_stop_codes() -> None:
    for code in ("NetStream.Play.Stop", "NetStream.Play.Complete",
                 "NetStream.Play.UnpublishNotify"):
        client = Client()
        sid = client.stream_in(StreamState.PLAYING)
        assert of(PlayStopped, client.status(sid, "status", code)) == [
            PlayStopped(sid, "k", code)]
        assert of(PlayStopped, client.status(sid, "status", code)) == []  # once


def test_stream_eof_stops_a_play() -> None:
    client = Client()
    sid = client.stream_in(StreamState.PLAYING)
    eof = Message(4, b"\x00\x01" + sid.to_bytes(4, "big"), 0, 0, 2)
    assert of(PlayStopped, client.feed(eof)) == [PlayStopped(sid, "k", "")]


def test_sequence_commands_on_the_wire() -> None:
    client = Client()
    client.session.start_publish("s")
    names = [amf.loads_all(m.payload)[0] for m in client.sent()]
    assert names == ["releaseStream", "FCPublish", "createStream"]


def test_a_cancelled_request_deletes_its_late_stream() -> None:
    """Review finding: a publish given up (timed out) before the server made
    its stream still went out when the createStream answer came, leaving an
    orphan publication on the server."""
    client = Client()
    request = client.session.start_publish("late")
    client.sent()
    client.session.cancel_request(request)
    events = client.feed(command("_result", request, None, 5.0))
    assert not of(StreamCreated, events)
    sent = [amf.loads_all(m.payload) for m in client.sent()]
    assert [v[0] for v in sent] == ["deleteStream"] and sent[0][3] == 5.0
    assert client.session.stream_state(5) is None
