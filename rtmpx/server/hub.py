"""The live relay hub: publications by stream key, and what subscribes to them.

A :class:`Channel` is one stream key.  It has at most one
:class:`Publication` at a time - fed by a :class:`Publisher` (an RTMP
connection, a pull relay) - and any number of :class:`Subscriber` objects:
RTMP players, recorders, ingest streams, push relays (and, later, HTTP
outputs) all plug in through that one contract.  The channel keeps what a
subscriber that joins late needs (metadata, the audio and video sequence
headers, and the media since the latest keyframe: the GOP cache) and
hands every :class:`Packet` to every subscriber.

Two kinds of subscriber:

* *players* subscribe to the channel (:meth:`Hub.subscribe`): they wait
  for a publisher, outlive a publication and see the next one;
* *followers* follow one publication (:meth:`Publication.follow`): they are
  dropped when it ends.

The :class:`Hub` starts and ends publications (one per key; a second
publisher is refused, or replaces the first) and tells a
:class:`HubObserver` - the server's policy - when a publication starts or
ends and when a channel's demand (its players) changes.

No asyncio and no clock: time is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..constants import MessageType as MT
from ..fanout import (
    PACKET_OVERHEAD,
    Gate,
    GopCache,
    HeaderKey,
    Outbox,
    Packet,
    deliver,
    relay,
)
from ..media import MAX_HEADERS, HeaderReplay
from .limits import MemoryBudget

__all__ = [
    "MAX_HEADERS",
    "PACKET_OVERHEAD",
    "Channel",
    "HeaderKey",
    "Holder",
    "Hub",
    "HubLimits",
    "HubObserver",
    "MediaMessage",
    "Packet",
    "Publication",
    "Publisher",
    "StreamKey",
    "Subscriber",
    "fan_out",
]

log = logging.getLogger("rtmpx.server")

AUDIO, VIDEO, DATA = int(MT.AUDIO), int(MT.VIDEO), int(MT.DATA_AMF0)


def _safely(callback: Callable[..., None], *args: Any) -> None:
    """Call a subscriber or the observer: a bug in one of them is logged and
    costs nobody else (the other subscribers, the hub's own bookkeeping)."""
    try:
        callback(*args)
    except Exception:
        log.exception("%r failed", callback)


def _gate_of(player: Subscriber) -> Gate | None:
    """The player's :class:`~rtmpx.fanout.Gate`, if it has a real one (anything
    else called ``gate`` is called one packet at a time, like any subscriber)."""
    gate = getattr(player, "gate", None)
    return gate if isinstance(gate, Gate) else None


def fan_out(packet: Packet, gates: list[Gate], now: float) -> None:
    """Deliver ``packet`` through ``gates`` (:func:`rtmpx.fanout.deliver`:
    compiled, no Python per player), then tell whoever needs to act: a
    connection whose merged writes are due, a player the slow-player rule
    disconnects."""
    try:
        todo: list[Gate | Outbox] = deliver(packet, gates, now)
    except Exception:  # a bug: this packet is lost to these players, nothing else
        log.exception("fan-out of %r failed", packet)
        return
    for item in todo:
        _safely(item.notify)


class StreamKey(NamedTuple):
    """A stream's identity: application and stream name, kept apart (app
    ``live`` + name ``a/b`` is not app ``live/a`` + name ``b``).  ``str()``
    gives ``app/name`` for people to read (and to log: control
    characters, such as a line break that would forge a log line, are
    escaped)."""

    app: str
    name: str

    def __str__(self) -> str:
        text = f"{self.app}/{self.name}"
        return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Per-player and per-channel bounds (security and memory settings).

    ``max_queue``: bytes a player may have queued before video is dropped
    to the next keyframe; ``max_lag``: seconds a player may stay behind
    (its queue above half of ``max_queue``) before it is disconnected;
    ``max_gop_bytes`` and ``max_gop_entries``: the largest GOP cache, in
    bytes (each packet charged its payload plus :data:`PACKET_OVERHEAD`)
    and in packets (a longer GOP is not cached: late joiners wait for the
    next keyframe); ``max_header_bytes``: the headers a channel keeps for
    late joiners (sequence headers, video Metadata, MultichannelConfig of
    every track; real ones take a few hundred bytes each), charged the same
    way, at most :data:`MAX_HEADERS` of them: a header past either is not
    kept.
    """

    max_queue: int = 4 * 1024 * 1024
    max_lag: float = 10.0
    max_gop_bytes: int = 32 * 1024 * 1024
    max_gop_entries: int = 10_000
    max_header_bytes: int = 1024 * 1024


class MediaMessage(Protocol):
    """An audio or video message as a publisher hands it on (a
    :class:`rtmpx.chunk.Message`)."""

    @property
    def type_id(self) -> int:
        """8 (audio) or 9 (video)."""

    @property
    def timestamp(self) -> int:
        """Milliseconds."""

    @property
    def payload(self) -> bytes:
        """The FLV tag body."""


class Publisher(Protocol):
    """Whoever feeds a publication: an RTMP connection, a pull relay."""

    @property
    def peer(self) -> str:
        """Who publishes, for logs and stats."""

    def pause(self) -> None:
        """Stop taking input for now (a follower is full)."""

    def resume(self) -> None:
        """Take input again."""

    def stop(self, reason: str) -> None:
        """The hub ended the publication (``"replaced"``, ``"shutdown"``):
        stop feeding it."""


class Subscriber(Protocol):
    """Anything that receives a channel's packets: the one contract of
    players, recorders, ingest streams and relays.

    A player may also have a ``gate`` attribute (a
    :class:`rtmpx.fanout.Gate`, as :class:`rtmpx.server.player.PlayerSink`
    has): the channel's live packets then reach it through
    :func:`fan_out` (compiled), not :meth:`packet`; the cached packets a
    joining player gets still come through :meth:`packet`."""

    def publish_started(self, publication: Publication, now: float) -> None:
        """A publication started (players: also when they join a live
        channel, before the cached packets)."""

    def packet(self, packet: Packet, now: float) -> None:
        """One packet of the publication."""

    def publish_ended(self, publication: Publication, reason: str) -> None:
        """The publication ended (``"unpublish"``, ``"disconnect"``,
        ``"replaced"``, ``"shutdown"``, ...)."""

    @property
    def queued_bytes(self) -> int:
        """Bytes it holds, not delivered yet (charged to the memory budget)."""


class Holder(Subscriber, Protocol):
    """A follower that may pause its publisher (:meth:`Publication.pause`)."""

    def hold_expired(self) -> None:
        """It held the publisher longer than the server allows: it must stop
        holding it (and stay bounded without: drop, cut, or give up)."""


class HubObserver(Protocol):
    """The server's policy, told what happens in the hub."""

    def publication_started(self, publication: Publication) -> None:
        """A publication started: attach followers (recording, ingest, push)."""

    def publication_ended(self, publication: Publication, reason: str) -> None:
        """A publication ended (its followers were already told)."""

    def demand_changed(self, channel: Channel) -> None:
        """A channel's players came or went (``channel.players``)."""


class Publication:
    """One publish of a stream key, from start to end.

    ``info`` is what the server knows of it (an
    :class:`rtmpx.server.Request`: see :func:`rtmpx.server.hooks.request_of`);
    ``internal`` marks a copy of a stream published elsewhere.  Followers
    that cannot keep up call :meth:`pause` (and :meth:`resume` later): the
    publisher is paused while any follower asks it to be, and no longer
    than the server allows (:meth:`expire_holds`): a paused publisher is
    not read, so it could not even be seen leaving.
    """

    def __init__(self, channel: Channel, publisher: Publisher, info: object, now: float,
                 internal: bool = False) -> None:
        self.channel = channel
        self.key = channel.key
        self.publisher = publisher
        self.info = info
        #: a copy of a stream published elsewhere (a worker's relay of a
        #: sibling's publication): players see it, the policy does not record,
        #: push or hand it out
        self.internal = internal
        self.started_at = now
        self.followers: list[Subscriber] = []
        self.bytes_in = 0
        self.messages_in = 0
        self.live = True
        self._pausers: dict[int, tuple[Holder, float]] = {}

    def __repr__(self) -> str:
        return f"<Publication {self.key} by {self.publisher.peer}>"

    @property
    def paused(self) -> bool:
        """Whether the publisher is paused for a follower."""
        return bool(self._pausers)

    def follow(self, subscriber: Subscriber) -> None:
        """Add a follower: it gets every later packet and the end."""
        if self.live:
            self.followers.append(subscriber)

    def unfollow(self, subscriber: Subscriber) -> None:
        """Remove a follower (and any pause it asked for)."""
        try:
            self.followers.remove(subscriber)
        except ValueError:
            pass
        self.resume(subscriber)

    def pause(self, follower: Holder, now: float) -> None:
        """``follower`` is full: pause the publisher until it resumes."""
        if self.live and id(follower) not in self._pausers:
            self._pausers[id(follower)] = (follower, now)
            if len(self._pausers) == 1:
                self.publisher.pause()

    def resume(self, follower: Subscriber) -> None:
        """``follower`` has room again."""
        if self._pausers.pop(id(follower), None) is not None \
                and not self._pausers and self.live:
            self.publisher.resume()

    def expire_holds(self, now: float, limit: float) -> None:
        """Followers that held the publisher for more than ``limit`` seconds
        are told (:meth:`Holder.hold_expired`) and let go of it."""
        for key, (follower, since) in list(self._pausers.items()):
            if now - since > limit and self._pausers.pop(key, None) is not None:
                log.warning("%s held the publisher of %s for %.0f s: let go", follower, self.key,
                            now - since)
                _safely(follower.hold_expired)
                if not self._pausers and self.live:
                    self.publisher.resume()

    def release(self) -> None:
        """Resume the publisher if any follower paused it (the publication ends)."""
        if self._pausers:
            self._pausers.clear()
            self.publisher.resume()

    # -- from the publisher -------------------------------------------------------

    def media(self, type_id: int, timestamp: int, payload: bytes, now: float) -> None:
        """One audio or video message."""
        self.bytes_in += len(payload)
        self.messages_in += 1
        self._send(Packet.media(type_id, timestamp, payload), now)

    def media_run(self, messages: Sequence[MediaMessage], now: float) -> None:
        """Audio and video messages, in order (a session's
        :class:`~rtmpx.events.MediaBatch`).  When only RTMP players listen
        (no followers, no other subscribers), the whole run goes through
        :func:`rtmpx.fanout.relay`: compiled, Python once per run."""
        if not self.live:
            return
        channel = self.channel
        if self.followers or channel.others:
            for m in messages:
                self.media(m.type_id, m.timestamp, m.payload, now)
            return
        try:
            self.bytes_in += relay(messages, channel.gop, channel.gates, now, _safely,
                                   channel.cache)
        except Exception:  # a bug: the rest of this run is lost, nothing else
            log.exception("relay of %d messages of %s failed", len(messages), self.key)
        self.messages_in += len(messages)

    def metadata(self, metadata: dict[str, Any], payload: bytes, timestamp: int,
                 now: float) -> None:
        """``onMetaData``: ``payload`` is the AMF0 body players get."""
        self._send(Packet(DATA, timestamp, payload, True, False, metadata), now)

    def data(self, timestamp: int, payload: bytes, now: float) -> None:
        """Any other data message (onTextData, onCuePoint, ...): relayed, not cached."""
        self._send(Packet(DATA, timestamp, payload, True), now)

    def _send(self, packet: Packet, now: float) -> None:
        if not self.live:
            return
        channel = self.channel
        channel.cache(packet)
        if channel.gates:
            fan_out(packet, channel.gates, now)
        for player in channel.others:
            try:
                player.packet(packet, now)
            except Exception:  # free until it raises
                log.exception("%r failed", player)
        for follower in self.followers:
            try:
                follower.packet(packet, now)
            except Exception:
                log.exception("%r failed", follower)


class Channel:
    """One stream key: its publication, GOP cache and players."""

    def __init__(self, key: StreamKey, limits: HubLimits,
                 budget: MemoryBudget | None = None) -> None:
        self.key = key
        self.limits = limits
        self.budget = budget if budget is not None else MemoryBudget(1 << 62)
        self.publication: Publication | None = None
        self.players: list[Subscriber] = []
        #: the players with a :class:`~rtmpx.fanout.Gate` (RTMP players: the
        #: compiled fan-out serves them), and the others (called one by one)
        self.gates: list[Gate] = []
        self.others: list[Subscriber] = []
        self.metadata: dict[str, Any] | None = None
        self._metadata: Packet | None = None
        # the latest header packet of each (kind, track, header kind), in
        # the order they came (a newer one moves to the end)
        self._headers: HeaderReplay[Packet] = HeaderReplay(max_bytes=limits.max_header_bytes)
        #: the media since the latest keyframe, for late joiners
        self.gop = GopCache(limits.max_gop_bytes, limits.max_gop_entries, self.budget)

    def __repr__(self) -> str:
        return f"<Channel {self.key} live={self.live} players={len(self.players)}>"

    @property
    def live(self) -> bool:
        """Whether a publication feeds the channel now."""
        return self.publication is not None

    @property
    def idle(self) -> bool:
        """No publication and no players: the channel can go."""
        return self.publication is None and not self.players

    def reset(self) -> None:
        """Forget the cached stream state (a publisher left or arrived)."""
        self.metadata = None
        self._metadata = None
        self.budget.headers -= self._headers.bytes
        self._headers = HeaderReplay(max_bytes=self.limits.max_header_bytes)
        self.drop_gop()

    @property
    def gop_bytes(self) -> int:
        """Bytes of the GOP cache (each packet charged its payload and
        :data:`PACKET_OVERHEAD`)."""
        return self.gop.bytes

    def drop_gop(self) -> None:
        """Forget the GOP cache until the next keyframe."""
        self.gop.drop()

    def cache(self, packet: Packet) -> None:
        """Keep what a late joiner needs."""
        if packet.type_id == DATA:
            if packet.metadata is not None:
                self.metadata = packet.metadata
                self._metadata = packet
            return
        if packet.header:
            headers = self._headers
            before = headers.bytes
            room = max(self.budget.limit - self.budget.used, 0)
            headers.put(packet.headers, packet, len(packet.payload) + PACKET_OVERHEAD,
                        max_bytes=before + room)
            self.budget.headers += headers.bytes - before
            return
        self.gop.add(packet)  # too long a GOP is not kept: late joiners wait for a keyframe

    def startup(self) -> Iterator[Packet]:
        """What a joining subscriber gets first: metadata, sequence headers,
        then the media since the latest keyframe."""
        if self._metadata is not None:
            yield self._metadata
        yield from self._headers  # each once, though it may cover several tracks
        yield from self.gop.packets

    @property
    def header_bytes(self) -> int:
        """Bytes of the headers kept for late joiners (charged as packets)."""
        return self._headers.bytes


class Hub:
    """All channels of a server, by :class:`StreamKey`."""

    def __init__(self, limits: HubLimits | None = None,
                 observer: HubObserver | None = None,
                 budget: MemoryBudget | None = None) -> None:
        self.limits = limits if limits is not None else HubLimits()
        self.observer = observer
        #: GOP caches are charged to it; see :class:`~rtmpx.server.limits.MemoryBudget`
        self.budget = budget if budget is not None else MemoryBudget(1 << 62)
        self.channels: dict[StreamKey, Channel] = {}
        self.closed = False
        #: asked before a publication that is not internal starts: False
        #: refuses it as if the key were live (None: every one is admitted)
        self.admit: Callable[[StreamKey, Publisher], bool] | None = None

    def get(self, key: StreamKey | tuple[str, str]) -> Channel | None:
        """The channel of ``key``, if it exists."""
        return self.channels.get(StreamKey(*key))

    def _channel(self, key: StreamKey) -> Channel:
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = Channel(key, self.limits, self.budget)
        return channel

    def _discard_if_idle(self, channel: Channel) -> None:
        if channel.idle and self.channels.get(channel.key) is channel:
            del self.channels[channel.key]

    # -- publications ---------------------------------------------------------------

    def publish(self, key: StreamKey, publisher: Publisher, info: object, now: float, *,
                replace: bool = False, internal: bool = False) -> Publication | None:
        """Start a publication of ``key``.  If the key is live already, the
        old publication ends (``replace``) or None is returned (the caller
        refuses the publish); None too when :attr:`admit` refuses it."""
        if self.closed:
            return None
        if not internal and self.admit is not None and not self.admit(key, publisher):
            return None
        channel = self._channel(key)
        old = channel.publication
        if old is not None:
            if not replace:
                return None
            log.info("%s replaces %s as the publisher of %s", publisher.peer, old.publisher.peer,
                     key)
            self._end(old, "replaced")
            old.publisher.stop("replaced")
        publication = Publication(channel, publisher, info, now, internal)
        channel.reset()
        channel.publication = publication
        if self.observer is not None:
            _safely(self.observer.publication_started, publication)
        for player in list(channel.players):
            _safely(player.publish_started, publication, now)
        return publication

    def unpublish(self, publication: Publication, reason: str) -> None:
        """End ``publication`` (harmless if it already ended)."""
        if publication.live:
            self._end(publication, reason)
            self._discard_if_idle(publication.channel)

    def _end(self, publication: Publication, reason: str) -> None:
        publication.live = False
        channel = publication.channel
        channel.publication = None
        followers, publication.followers = publication.followers, []
        publication.release()
        for follower in followers:
            _safely(follower.publish_ended, publication, reason)
        for player in list(channel.players):
            _safely(player.publish_ended, publication, reason)
        channel.reset()
        if self.observer is not None:
            _safely(self.observer.publication_ended, publication, reason)

    # -- players ---------------------------------------------------------------------

    def subscribe(self, key: StreamKey, player: Subscriber, now: float) -> Channel:
        """Add a player to ``key``'s channel (made if needed); if it is live,
        the player gets the publication's start and the cached packets."""
        channel = self._channel(key)
        channel.players.append(player)
        gate = _gate_of(player)
        if gate is not None:
            channel.gates.append(gate)
        else:
            channel.others.append(player)
        publication = channel.publication
        if publication is not None:
            _safely(player.publish_started, publication, now)
            for packet in channel.startup():
                _safely(player.packet, packet, now)
        if self.observer is not None:
            _safely(self.observer.demand_changed, channel)
        return channel

    def unsubscribe(self, channel: Channel, player: Subscriber) -> None:
        """Remove a player (harmless if it is not there)."""
        try:
            channel.players.remove(player)
        except ValueError:
            return
        gate = _gate_of(player)
        if gate is not None:
            channel.gates.remove(gate)
        else:
            channel.others.remove(player)
        if self.observer is not None:
            _safely(self.observer.demand_changed, channel)
        self._discard_if_idle(channel)

    def drop_caches(self) -> int:
        """Forget every GOP cache (the memory budget is spent); returns the
        bytes released."""
        released = self.budget.gop
        for channel in self.channels.values():
            channel.drop_gop()
        return released

    def expire_holds(self, now: float, limit: float) -> None:
        """:meth:`Publication.expire_holds` for every publication."""
        for channel in list(self.channels.values()):
            if channel.publication is not None:
                channel.publication.expire_holds(now, limit)

    def close(self, reason: str = "shutdown") -> list[Publication]:
        """End every publication (the publishers are told to stop) and refuse
        new ones; returns the ended ones."""
        self.closed = True
        ended = [c.publication for c in self.channels.values() if c.publication is not None]
        for publication in ended:
            self.unpublish(publication, reason)
            publication.publisher.stop(reason)
        return ended
