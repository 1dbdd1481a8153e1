"""The hub and the RTMP player policy without asyncio: fake publishers,
players whose connection is a real ServerSession over a fake transport,
and a clock passed in."""

from __future__ import annotations

from typing import Any

import pytest

from rtmpx import amf
from rtmpx.fanout import Outbox
from rtmpx.server.hub import (
    MAX_HEADERS,
    PACKET_OVERHEAD,
    Channel,
    Hub,
    HubLimits,
    Packet,
    Publication,
    StreamKey,
)
from rtmpx.server.limits import MemoryBudget
from rtmpx.server.player import PlayerSink
from rtmpx.session import ServerSession, StreamState

from ..session.test_session import AAC_RAW, AAC_SEQ, AVC_INTER, AVC_KEY, AVC_SEQ
from ..session.test_states import Server as SessionHarness
from ..session.test_states import status_codes

KEY = StreamKey("live", "cam")


class FakePublisher:
    def __init__(self, peer: str = "pub") -> None:
        self.peer = peer
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def stop(self, reason: str) -> None:
        self.calls.append(f"stop:{reason}")


class FakeConnection:
    """A player's connection: a real session playing ``stream_id``, a fake
    transport whose unsent bytes (``queued``) the test sets."""

    def __init__(self) -> None:
        self.harness = SessionHarness()
        self.stream_id = self.harness.stream_in(StreamState.PLAYING)
        self.wire = bytearray()
        self._queued = 0
        self.kicked: list[str] = []
        # no flush timer: every message is flushed at once
        self.outbox = Outbox(self.session, 0, self.flush)
        self.outbox.transport = self

    def get_write_buffer_size(self) -> int:  # the transport's, for the outbox
        return self._queued

    @property
    def queued(self) -> int:
        return self._queued

    @queued.setter
    def queued(self, value: int) -> None:  # as if the transport paused or resumed writing
        self._queued = value
        self.outbox.measure()

    @property
    def session(self) -> ServerSession:
        return self.harness.session

    def flush(self) -> None:
        self.outbox.flushed()
        self.wire += self.session.data_to_send()
        self.outbox.measure()

    def queued_bytes(self) -> int:
        return self.queued

    def backlog(self) -> int:
        return self.queued

    def kick(self, reason: str) -> None:
        self.kicked.append(reason)

    def received(self) -> list[Any]:
        """What the player decoded since the last call: (type, ts, payload)
        for media and data, ("status", code) for onStatus."""
        out: list[Any] = []
        for m in self.harness.reader.feed(bytes(self.wire)):
            if m.type_id == 20:
                out += [("status", code) for _, code in status_codes([amf.loads_all(m.payload)])]
            elif m.type_id in (8, 9, 18):
                out.append((m.type_id, m.timestamp, m.payload))
        self.wire.clear()
        return out


class Observer:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def publication_started(self, publication: Publication) -> None:
        self.log.append(("started", publication))

    def publication_ended(self, publication: Publication, reason: str) -> None:
        self.log.append(("ended", reason))

    def demand_changed(self, channel: Channel) -> None:
        self.log.append(("demand", len(channel.players)))


class Follower:
    """A follower that records what it gets."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def publish_started(self, publication: Publication, now: float) -> None:
        self.got.append("started")

    def packet(self, packet: Packet, now: float) -> None:
        self.got.append(packet.payload)

    def publish_ended(self, publication: Publication, reason: str) -> None:
        self.got.append(f"ended:{reason}")

    def hold_expired(self) -> None:
        self.got.append("expired")


def player(hub: Hub, key: StreamKey = KEY, now: float = 0.0,
           limits: HubLimits | None = None) -> tuple[PlayerSink, FakeConnection, Channel]:
    conn = FakeConnection()
    sink = PlayerSink(conn, conn.stream_id, limits or hub.limits, peer="p")
    channel = hub.subscribe(key, sink, now)
    sink.joined = True
    return sink, conn, channel


def feed(publication: Publication, now: float = 0.0) -> None:
    publication.metadata({"width": 1.0}, amf.dumps_all(["onMetaData", {"width": 1.0}]), 0, now)
    publication.media(9, 0, AVC_SEQ, now)
    publication.media(8, 0, AAC_SEQ, now)
    publication.media(9, 0, AVC_KEY, now)
    publication.media(8, 10, AAC_RAW, now)
    publication.media(9, 40, AVC_INTER, now)


def test_replace_keeps_the_channel_and_refuses_a_third_without_replace() -> None:
    """Regression: ending the old publisher discarded the channel when it had
    no players; the new one then published into a deleted channel (later
    players waited forever, stats missed it, a third publisher was accepted
    next to the second)."""
    observer = Observer()
    hub = Hub(observer=observer)
    a, b, c = FakePublisher("a"), FakePublisher("b"), FakePublisher("c")
    first = hub.publish(KEY, a, "info-a", 0.0)
    assert first is not None
    second = hub.publish(KEY, b, "info-b", 1.0, replace=True)
    assert second is not None and not first.live and second.live
    assert a.calls == ["stop:replaced"]
    assert hub.channels[KEY].publication is second
    assert [e[0] for e in observer.log] == ["started", "ended", "started"]
    assert hub.publish(KEY, c, "info-c", 2.0) is None   # refused: still one publisher
    feed(second)
    _, conn, channel = player(hub)                       # a later player sees the second
    got = conn.received()
    assert [g[2] for g in got if g[0] == 9] == [AVC_SEQ, AVC_KEY, AVC_INTER]
    assert channel is hub.get(("live", "cam"))
    hub.unpublish(first, "late")  # the old one ending late changes nothing
    assert channel.publication is second


def test_waiting_players_hear_publish_and_unpublish_and_stay() -> None:
    hub = Hub()
    sink, conn, channel = player(hub)
    assert not channel.live and conn.received() == []
    for round_ in range(2):
        publication = hub.publish(KEY, FakePublisher(), None, 0.0)
        assert publication is not None
        feed(publication)
        hub.unpublish(publication, "unpublish")
        got = conn.received()
        assert got[0] == ("status", "NetStream.Play.PublishNotify")
        assert got[-1] == ("status", "NetStream.Play.UnpublishNotify")
        assert [g[2] for g in got if g[0] == 9] == [AVC_SEQ, AVC_KEY, AVC_INTER]
    assert hub.get(KEY) is channel and channel.players == [sink]


def test_a_late_player_starts_with_the_cache() -> None:
    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    feed(publication)
    publication.media(9, 80, AVC_INTER, 0.0)
    _, conn, _ = player(hub)
    got = conn.received()
    assert not any(g[0] == "status" for g in got)  # no PublishNotify after Play.Start
    assert [(g[0], g[2]) for g in got] == [
        (18, amf.dumps_all(["onMetaData", {"width": 1.0}])), (9, AVC_SEQ), (8, AAC_SEQ),
        (9, AVC_KEY), (8, AAC_RAW), (9, AVC_INTER), (9, AVC_INTER)]


def enhanced(frame_type: int, packet_type: int, body: bytes, fourcc: bytes = b"hvc1") -> bytes:
    """An Enhanced RTMP video message of track 0 (no multitrack header)."""
    return bytes([0x80 | frame_type << 4 | packet_type]) + fourcc + body


def one_track(frame_type: int, packet_type: int, track: int, body: bytes,
              fourcc: bytes = b"hvc1") -> bytes:
    """A multitrack OneTrack video message (as FFmpeg writes tracks >= 1)."""
    return bytes([0x80 | frame_type << 4 | 6, packet_type]) + fourcc + bytes([track]) + body


CTS0 = b"\x00\x00\x00"
HVCC = bytes.fromhex("01 01 60 00 00 00 b0 00 00 00 00 00 5d f0 00 fc fd f8 f8 00 00 0f 00")


def test_multitrack_late_joiner_gets_every_track_and_the_gop_follows_track_0() -> None:
    """Issue 9: the channel kept one video and one audio sequence header, so
    per-track SequenceStarts overwrote each other, video Metadata and audio
    MultichannelConfig were not kept, and any track's keyframe restarted
    the GOP cache."""
    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    seq0 = enhanced(1, 0, HVCC)
    seq1 = one_track(1, 0, 1, HVCC + b"\x01")
    meta1 = one_track(1, 4, 1, amf.dumps_all(["colorInfo", {"colorConfig": {}}]))
    channels = b"\x94Opus\x00\x02"                  # audio MultichannelConfig
    key0 = enhanced(1, 1, CTS0 + b"\x00\x00\x00\x02\x26\x01")
    key1 = one_track(1, 1, 1, CTS0 + b"\x00\x00\x00\x02\x26\x01")
    inter0 = enhanced(2, 1, CTS0 + b"\x00\x00\x00\x02\x02\x01")
    sent = [(9, seq0), (9, seq1), (9, meta1), (8, AAC_SEQ), (8, channels),
            (9, key0), (9, key1), (9, inter0), (9, key1), (8, AAC_RAW), (9, inter0)]
    for i, (type_id, payload) in enumerate(sent):
        publication.media(type_id, 40 * i, payload, 0.0)
    _, conn, _ = player(hub)
    got = [g[2] for g in conn.received()]
    # every track's configuration, in arrival order; the GOP from track 0's
    # keyframe, not restarted by track 1's
    assert got == [seq0, seq1, meta1, AAC_SEQ, channels, key0, key1, inter0, key1, AAC_RAW,
                   inter0]
    # a newer header replaces its own kind and track only, and moves last
    seq1b = one_track(1, 0, 1, HVCC + b"\x02")
    publication.media(9, 500, seq1b, 0.0)
    publication.media(9, 540, key0, 0.0)
    _, conn, _ = player(hub)
    assert [g[2] for g in conn.received()] == [seq0, meta1, AAC_SEQ, channels, seq1b, key0]


def test_a_many_tracks_header_covers_each_of_its_tracks() -> None:
    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    both = bytes([0x96, 0x10]) + b"avc1" + b"\x00\x00\x00\x03abc" + b"\x01\x00\x00\x02de"
    publication.media(9, 0, both, 0.0)
    packet = Packet.media(9, 0, both)
    assert packet.header and packet.headers == (("video", 0, 1), ("video", 1, 1))
    _, conn, _ = player(hub)
    assert [g[2] for g in conn.received()] == [both]  # once, not once per track
    newer1 = one_track(1, 0, 1, b"xyz", b"avc1")
    publication.media(9, 40, newer1, 0.0)
    _, conn, _ = player(hub)
    assert [g[2] for g in conn.received()] == [both, newer1]  # still needed for track 0


def test_header_kinds_per_channel_are_bounded() -> None:
    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    for track in range(256):
        publication.media(9, track, one_track(1, 0, track, HVCC), 0.0)
    assert len(list(hub.channels[KEY].startup())) == MAX_HEADERS


def test_headers_are_bounded_in_bytes_and_charged_to_the_budget() -> None:
    """Review of issue 9: the header cache was bounded in keys only (64
    packets of up to 8 MiB: 512 MiB per channel) and max_memory never saw
    it.  Header bytes are capped per channel and charged to the budget."""
    budget = MemoryBudget(64 * 1024 * 1024)
    hub = Hub(HubLimits(max_header_bytes=1024 * 1024), budget=budget)
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    big = bytes(100 * 1024)
    for track in range(64):
        publication.media(9, track, one_track(1, 0, track, big), 0.0)
    channel = hub.channels[KEY]
    kept = list(channel.startup())
    assert len(kept) == 10  # 10 x 100 KiB fit in 1 MiB; the others are not kept
    assert channel.header_bytes == sum(len(p.payload) + PACKET_OVERHEAD for p in kept)
    assert budget.headers == channel.header_bytes
    # a replacement of a kept track's header is taken (the size changes little)
    publication.media(9, 99, one_track(1, 0, 0, big + b"x"), 0.0)
    assert len(list(channel.startup())) == 10 and budget.headers == channel.header_bytes
    # the budget's room counts too
    budget.queues = budget.limit - budget.headers  # full
    publication.media(9, 100, one_track(1, 0, 0, big + b"xy"), 0.0)
    assert budget.headers == channel.header_bytes and not budget.over
    hub.unpublish(publication, "unpublish")
    assert budget.headers == 0


def test_players_with_the_same_shape_share_the_bytes() -> None:
    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    _, conn1, _ = player(hub)
    _, conn2, _ = player(hub)
    packet = Packet.media(9, 0, AVC_KEY)
    for p in list(hub.channels[KEY].players):
        p.packet(packet, 0.0)
    assert packet.shared is not None and len(packet.shared) == 1  # encoded once
    assert conn1.received()[-1] == conn2.received()[-1] == (9, 0, AVC_KEY)


def test_followers_end_with_their_publication_players_stay() -> None:
    observer = Observer()
    hub = Hub(observer=observer)
    sink, _, channel = player(hub)
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    follower = Follower()
    publication.follow(follower)
    publication.media(9, 0, AVC_KEY, 0.0)
    hub.unpublish(publication, "unpublish")
    assert follower.got == [AVC_KEY, "ended:unpublish"]
    assert publication.followers == [] and channel.players == [sink]
    publication.follow(follower)   # too late: nothing follows an ended publication
    assert publication.followers == []
    hub.unsubscribe(channel, sink)
    assert KEY not in hub.channels  # idle: gone
    assert ("demand", 0) in observer.log


def test_followers_pause_the_publisher_until_all_resume() -> None:
    hub = Hub()
    publisher = FakePublisher()
    publication = hub.publish(KEY, publisher, None, 0.0)
    assert publication is not None
    one, two = Follower(), Follower()
    publication.pause(one, 0.0)
    publication.pause(two, 0.0)
    publication.pause(one, 0.0)
    publication.resume(one)
    assert publisher.calls == ["pause"] and publication.paused
    publication.unfollow(two)   # leaving releases its pause
    assert publisher.calls == ["pause", "resume"] and not publication.paused


def test_stream_keys_are_unambiguous() -> None:
    """Regression: keys were f"{app}/{name}", so app "live" + name "a/b" and
    app "live/a" + name "b" were one channel."""
    hub = Hub()
    one = hub.publish(StreamKey("live", "a/b"), FakePublisher(), None, 0.0)
    two = hub.publish(StreamKey("live/a", "b"), FakePublisher(), None, 0.0)
    assert one is not None and two is not None and one.channel is not two.channel
    assert str(one.key) == str(two.key) == "live/a/b"  # the same to read, not to the hub


def test_slow_player_drops_video_to_the_next_keyframe_keeps_audio() -> None:
    hub = Hub(HubLimits(max_queue=1000, max_lag=5.0))
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    sink, conn, _ = player(hub)
    publication.media(9, 0, AVC_SEQ, 0.0)
    publication.media(9, 0, AVC_KEY, 0.0)
    conn.received()
    conn.queued = 1500                    # the player does not read
    publication.media(9, 40, AVC_INTER, 1.0)
    publication.media(8, 41, AAC_RAW, 1.0)
    assert [g[0] for g in conn.received()] == [8]   # video dropped, audio kept
    assert sink.stats.dropped == 1 and sink.behind_seconds(3.0) == 2.0
    conn.queued = 0
    publication.media(9, 80, AVC_INTER, 2.0)        # still waiting for a keyframe
    publication.media(9, 120, AVC_KEY, 2.0)
    assert [g[2] for g in conn.received()] == [AVC_KEY]
    assert sink.behind_seconds(3.0) == 0.0
    conn.queued = 2001
    publication.media(8, 130, AAC_RAW, 3.0)
    assert conn.kicked == ["write queue over twice max_queue"]


def test_a_drained_player_is_not_behind_even_in_a_long_gop() -> None:
    """Regression: with x264's default GOP (10 s) a player behind for a moment
    stayed "behind" until the next keyframe and was kicked for lag although
    its queue had drained."""
    hub = Hub(HubLimits(max_queue=1000, max_lag=2.0))
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    sink, conn, _ = player(hub)
    publication.media(9, 0, AVC_KEY, 0.0)
    conn.queued = 1500                                # a spike
    publication.media(9, 40, AVC_INTER, 0.5)
    conn.queued = 0                                   # drained
    for t in range(1, 10):                            # no keyframe for 9 s
        publication.media(9, 40 + t * 1000, AVC_INTER, float(t))
        sink.check_lag(float(t))
    assert conn.kicked == [] and sink.behind_seconds(9.0) == 0.0
    # a player that stays behind is still disconnected
    conn.queued = 1500
    publication.media(9, 20_000, AVC_INTER, 10.0)
    sink.check_lag(11.0)
    assert conn.kicked == []
    sink.check_lag(12.5)
    assert sink.stats.disconnected_for_lag and conn.kicked


def test_paused_and_muted_players_get_no_media_but_headers() -> None:
    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    sink, conn, _ = player(hub)
    publication.media(9, 0, AVC_KEY, 0.0)
    conn.received()
    sink.pause(True)
    publication.media(9, 40, AVC_INTER, 0.0)
    publication.media(8, 40, AAC_RAW, 0.0)
    publication.media(9, 40, AVC_SEQ, 0.0)
    assert [g[2] for g in conn.received()] == [AVC_SEQ]
    sink.pause(False)
    sink.audio = False
    publication.media(9, 80, AVC_KEY, 0.0)
    publication.media(8, 80, AAC_RAW, 0.0)
    assert [g[2] for g in conn.received()] == [AVC_KEY]


def test_gop_cache_bound() -> None:
    hub = Hub(HubLimits(max_gop_bytes=12_000))
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    publication.media(9, 0, AVC_KEY, 0.0)
    publication.media(9, 40, AVC_KEY, 0.0)
    assert hub.channels[KEY].gop_bytes == len(AVC_KEY) + PACKET_OVERHEAD
    for i in range(20):
        publication.media(9, 80 + i, AVC_INTER, 0.0)
    channel = hub.channels[KEY]
    assert channel.gop_bytes <= 12_000
    assert [p.payload for p in channel.startup()] == []  # too long a GOP: not kept


def test_tiny_messages_cannot_fill_the_gop_cache() -> None:
    """Issue 8: the GOP cache counted payload bytes only, so after one
    keyframe, 1-byte audio messages (~150 bytes of Python objects each)
    could make a channel hold gigabytes.  Each entry is now charged its
    overhead too, and the entries are capped."""
    hub = Hub(HubLimits(max_gop_entries=1000))
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    publication.media(9, 0, AVC_KEY, 0.0)
    for i in range(5000):
        publication.media(8, i, b"\xaf", 0.0)
        assert len(list(hub.channels[KEY].startup())) <= 1000
    assert list(hub.channels[KEY].startup()) == []  # dropped until the next keyframe
    publication.media(9, 6000, AVC_KEY, 0.0)
    assert len(list(hub.channels[KEY].startup())) == 1
    # charged per entry: 1-byte payloads cost PACKET_OVERHEAD each
    hub = Hub(HubLimits(max_gop_bytes=100 * (PACKET_OVERHEAD + 1)))
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    publication.media(9, 0, AVC_KEY, 0.0)  # 1 entry over: the cache is dropped
    for i in range(200):
        publication.media(8, i, b"\xaf", 0.0)
    assert list(hub.channels[KEY].startup()) == []


def test_gop_caches_share_the_memory_budget() -> None:
    budget = MemoryBudget(3 * (len(AVC_KEY) + PACKET_OVERHEAD))
    hub = Hub(budget=budget)
    keys = [StreamKey("live", str(i)) for i in range(4)]
    publications = [hub.publish(key, FakePublisher(), None, 0.0) for key in keys]
    for publication in publications:
        assert publication is not None
        publication.media(9, 0, AVC_KEY, 0.0)
    cached = [len(list(hub.channels[key].startup())) for key in keys]
    assert cached == [1, 1, 1, 0]  # the fourth has no room
    assert budget.gop == 3 * (len(AVC_KEY) + PACKET_OVERHEAD) and not budget.over
    budget.queues = 1  # the queues grew: no room for more
    assert budget.over
    assert hub.drop_caches() == 3 * (len(AVC_KEY) + PACKET_OVERHEAD)
    assert budget.gop == 0
    assert all(list(hub.channels[key].startup()) == [] for key in keys)
    hub.unpublish(publications[0], "unpublish")  # nothing is released twice
    assert budget.gop == 0


def test_close_ends_every_publication() -> None:
    observer = Observer()
    hub = Hub(observer=observer)
    publishers = [FakePublisher(str(i)) for i in range(3)]
    for i, p in enumerate(publishers):
        hub.publish(StreamKey("live", str(i)), p, None, 0.0)
    ended = hub.close()
    assert len(ended) == 3 and not hub.channels
    assert [p.calls for p in publishers] == [["stop:shutdown"]] * 3


def test_an_ending_publication_releases_its_publisher() -> None:
    """A publication that ends while a follower holds it paused resumes the
    publisher (else a connection stays paused: it never reads the peer's
    close, and the peer's last bytes are lost)."""
    hub = Hub()
    publisher = FakePublisher()
    publication = hub.publish(KEY, publisher, None, 0.0)
    assert publication is not None
    follower = Follower()
    publication.follow(follower)
    publication.pause(follower, 0.0)
    hub.unpublish(publication, "unpublish")
    assert publisher.calls == ["pause", "resume"]
    publication.resume(follower)  # late: nothing more
    assert publisher.calls == ["pause", "resume"]


def test_holds_expire() -> None:
    """A follower may hold its publisher only so long: a paused publisher is
    not read, so not even its leaving could be seen."""
    hub = Hub()
    publisher = FakePublisher()
    publication = hub.publish(KEY, publisher, None, 0.0)
    assert publication is not None
    slow, slower = Follower(), Follower()
    publication.pause(slow, 10.0)
    publication.pause(slower, 15.0)
    hub.expire_holds(69.0, 60.0)
    assert publisher.calls == ["pause"] and slow.got == [] and slower.got == []
    hub.expire_holds(70.5, 60.0)
    assert slow.got == ["expired"] and publisher.calls == ["pause"]   # slower still holds
    hub.expire_holds(75.5, 60.0)
    assert slower.got == ["expired"] and publisher.calls == ["pause", "resume"]
    assert not publication.paused


def test_a_failing_subscriber_costs_nobody_else() -> None:
    class Broken(Follower):
        def packet(self, packet: Packet, now: float) -> None:
            raise RuntimeError("bug")

        def publish_ended(self, publication: Publication, reason: str) -> None:
            raise RuntimeError("bug")

    observer = Observer()
    hub = Hub(observer=observer)
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    broken, fine = Broken(), Follower()
    publication.follow(broken)
    publication.follow(fine)
    publication.media(9, 0, AVC_KEY, 0.0)
    hub.unpublish(publication, "unpublish")
    assert fine.got == [AVC_KEY, "ended:unpublish"]
    assert observer.log[-1] == ("ended", "unpublish") and KEY not in hub.channels


@pytest.mark.parametrize("follow", [False, True])
def test_a_run_of_media_is_relayed_as_message_by_message(follow: bool) -> None:
    """``Publication.media_run`` (a session's MediaBatch: compiled when only
    RTMP players listen, message by message when a follower does) leaves
    players, late joiners, the caches and the counters as ``media`` does."""
    from rtmpx.chunk import Message
    stream = [(9, 0, AVC_SEQ), (8, 0, AAC_SEQ), (9, 0, AVC_KEY), (8, 10, AAC_RAW),
              (9, 40, AVC_INTER), (9, 80, AVC_SEQ), (9, 80, AVC_KEY), (9, 120, AVC_INTER)]
    outcomes = []
    for run in (False, True):
        hub = Hub()
        publication = hub.publish(KEY, FakePublisher(), None, 0.0)
        assert publication is not None
        _, early, _ = player(hub)
        follower = Follower()
        if follow:
            publication.follow(follower)
        if run:
            publication.media_run([Message(t, p, ts, 1) for t, ts, p in stream[:5]], 1.0)
            publication.media_run([Message(t, p, ts, 1) for t, ts, p in stream[5:]], 1.0)
        else:
            for t, ts, p in stream:
                publication.media(t, ts, p, 1.0)
        _, late, channel = player(hub)
        outcomes.append((early.received(), late.received(), follower.got, channel.gop_bytes,
                         hub.budget.gop, hub.budget.headers, publication.bytes_in,
                         publication.messages_in))
    assert outcomes[0] == outcomes[1]
    assert [g[2] for g in outcomes[1][1] if g[0] == 9] == [AVC_SEQ, AVC_KEY, AVC_INTER]


def test_a_player_whose_fan_out_fails_is_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    """From review: a failing player (a bug) made deliver raise, and the
    players before it in the same call were never flushed again."""
    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    first, a, _ = player(hub)
    bad, b, _ = player(hub)
    _, c, _ = player(hub)

    def broken(*args: Any) -> bytes:
        raise RuntimeError("bug")

    bad.gate.encode = broken
    bad.gate.stream_id += 100   # its own shape: encoded for it alone
    feed(publication)
    assert b.kicked == ["internal error"] and bad.closed
    assert "fan-out failed" in caplog.text
    for conn in (a, c):
        assert [g[2] for g in conn.received() if g[0] == 9] == [AVC_SEQ, AVC_KEY, AVC_INTER]
    assert not a.kicked and not c.kicked and first.stats.messages_sent > 0


def test_a_subscriber_with_a_gate_of_its_own_making_is_served_one_by_one() -> None:
    """From review: anything with a ``gate`` attribute went to the compiled
    fan-out, which refuses what is not a Gate - every packet of the channel
    then failed for the real players too."""

    class Odd(Follower):
        gate = "not a Gate"
        queued_bytes = 0

    hub = Hub()
    publication = hub.publish(KEY, FakePublisher(), None, 0.0)
    assert publication is not None
    _, conn, channel = player(hub)
    odd = Odd()
    hub.subscribe(KEY, odd, 0.0)
    assert channel.others == [odd] and len(channel.gates) == 1
    feed(publication)
    assert AVC_KEY in odd.got
    assert [g[2] for g in conn.received() if g[0] == 9] == [AVC_SEQ, AVC_KEY, AVC_INTER]
    hub.unsubscribe(channel, odd)
    assert channel.others == [] and len(channel.gates) == 1


def test_a_stream_key_reads_on_one_line() -> None:
    """A name with a line break cannot forge a log line (str() is what logs show)."""
    assert str(StreamKey("live", "cam")) == "live/cam"
    assert str(StreamKey("live", "caméra")) == "live/caméra"
    assert "\n" not in str(StreamKey("live", "a\nINFO forged")) == "live/a\\nINFO forged"
