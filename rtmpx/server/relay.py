"""Relaying between servers: push (republish upstream) and pull (edge).

* Push: every live stream (or those of one app) is republished to each
  upstream URL (``rtmp://host/app``), under the same stream name.  A
  :class:`Pusher` follows one publication; it reconnects with backoff and
  resumes at a keyframe: after a reconnect, or when it falls behind, it
  sends the metadata, the sequence headers and the GOP cache again, then
  live media.  Until it first connects it queues everything (bounded), so
  a short publish is pushed whole; when the publication ends, it sends
  what it has queued and unpublishes upstream.  It follows the upstream's
  reconnect requests (Enhanced RTMP; it advertises capsEx Reconnect): it
  pushes there up to the next keyframe, unpublishes, and pushes to the
  ``tcUrl`` the upstream named (or the same one) from that keyframe on,
  the metadata and header messages it had sent first, then every message
  queued since (it keeps queuing while it reconnects, and keeps trying
  with backoff if the new upstream is not there yet).  If the upstream
  closes first, it moves at once and resumes at a keyframe: the GOP
  cache's, or the queue's next when the cache holds none.
* Logs show upstream and origin URLs without their query strings (which
  may carry a token).
* Pull: when a player asks for a key that has no local publisher, a
  :class:`Puller` plays the stream from the origin (``rtmp://origin/app``)
  and publishes it here.  It follows the origin across unpublish and
  republish, retries with backoff while players wait, and is dropped when
  the last player leaves.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from ..client import Client, HeaderReplay, PublishStream, connect
from ..errors import RtmpError
from ..events import Metadata, ReconnectRequested
from ..url import RtmpURL, parse_tc_url, parse_url
from .hooks import Request, TaskSet
from .hub import AUDIO, DATA, PACKET_OVERHEAD, VIDEO, Channel, Hub, Packet, Publication, StreamKey

__all__ = ["MAX_BACKOFF", "PullOwner", "Puller", "Pusher", "Relays", "push_targets"]

log = logging.getLogger("rtmpx.relay")

#: The longest wait between two attempts, seconds.
MAX_BACKOFF = 30.0

#: What a pull holds (messages, bytes) while paused before its socket stops.
PULL_QUEUE = 256
PULL_QUEUE_BYTES = 1024 * 1024


def push_targets(push: Sequence[Any]) -> list[tuple[str | None, str]]:
    """Push entries as (local app or None for every app, upstream URL);
    an entry is a URL or an ``(app, url)`` pair."""
    targets: list[tuple[str | None, str]] = []
    for entry in push:
        if isinstance(entry, str):
            targets.append((None, entry))
        else:
            app, url = entry
            targets.append((app, url))
        parse_url(targets[-1][1])  # fail early on a bad URL
    return targets


class _Start(enum.Enum):
    """How a push starts on the upstream a reconnect request sent it to."""

    REPLAY = "replay"   # at a switch point: the metadata and headers sent, then the queue
    RESUME = "resume"   # at a keyframe: the GOP cache's, else the queue's next


class Pusher:
    """Republishes one publication to one upstream server (a follower)."""

    def __init__(self, tasks: TaskSet, publication: Publication, url: str,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.publication = publication
        self.channel = publication.channel
        self.name = publication.key.name
        self.url = url
        self._target: RtmpURL = parse_url(url)
        self.max_bytes = max_bytes
        self.queue: deque[Packet] = deque()   # everything from the start, until connected
        self.queued_bytes = 0
        self.resync = False           # True: behind, restart from the GOP cache
        self._start_as: _Start | None = None  # after a move, until the new upstream has it
        self._skip = False            # drop queued frames up to the next keyframe
        self._sent_metadata: Packet | None = None   # what the upstream has, to replay
        self._sent: HeaderReplay[Packet] = HeaderReplay()
        self.ended = False
        self.connected = False
        self.messages_sent = 0
        self.reconnects = 0
        self.reconnect_requests = 0   # the upstream's reconnect requests followed
        self._move_to: str | None = None  # where a reconnect request sends us
        self._video_sent = False
        self._wakeup = asyncio.Event()
        publication.follow(self)
        self.task = tasks.spawn(self._run())

    def __repr__(self) -> str:
        return f"<Pusher {self.publication.key} -> {self.where}>"

    @property
    def where(self) -> str:
        """The upstream URL without its query strings (which may carry a token)."""
        return self._target.redacted

    # -- the Subscriber contract --------------------------------------------------------

    def publish_started(self, publication: Publication, now: float) -> None:
        pass  # made at the start of its publication

    def packet(self, packet: Packet, now: float) -> None:
        if self.resync:
            return  # the GOP cache will bring us up to date
        if self.queued_bytes > self.max_bytes:
            log.warning("push %s -> %s behind: restarting at a keyframe", self.publication.key,
                        self.where)
            self._clear()
            self.resync = True
        else:
            self.queue.append(packet)
            self.queued_bytes += len(packet.payload) + PACKET_OVERHEAD
        self._wakeup.set()

    def publish_ended(self, publication: Publication, reason: str) -> None:
        self.ended = True
        self._wakeup.set()  # send what is queued, then unpublish upstream

    # -- the task --------------------------------------------------------------------

    def _clear(self) -> None:
        self.queue.clear()
        self.queued_bytes = 0

    def _reconnect_requested(self, event: ReconnectRequested) -> None:
        """The upstream asks us to reconnect: we move at the next keyframe."""
        self._move_to = event.tc_url
        self.reconnect_requests += 1
        log.info("push %s -> %s: the upstream asks us to reconnect to %s (%s): moving at the "
                 "next keyframe", self.publication.key, self.where,
                 parse_tc_url(event.tc_url).redacted, event.description[:200])
        self._wakeup.set()

    def _follow(self, *, switch: bool) -> None:
        """Push to where the reconnect request said (a ``tcUrl``: its whole
        path is the application).  At a ``switch`` point the queue starts
        at it: the new upstream gets what this one was sent of metadata and
        headers, then the queue; else it resumes at a keyframe."""
        assert self._move_to is not None
        self.url, self._move_to = self._move_to, None
        self._target = parse_tc_url(self.url)
        self.connected = False
        self._start_as = _Start.REPLAY if switch else _Start.RESUME
        self.reconnects += 1

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                async with connect(self._target,
                                   on_reconnect_request=self._reconnect_requested) as client:
                    stream = await client.publish(self.name)
                    self.connected = True
                    backoff = 1.0
                    log.info("pushing %s to %s/%s", self.publication.key, self.where, self.name)
                    await self._forward(stream)
                    await stream.close()
                if self._move_to is None or self.ended:
                    return
                self._follow(switch=True)  # at a keyframe: straight on to the new upstream
                continue
            except (OSError, RtmpError, TimeoutError) as exc:
                if self.ended:
                    log.warning("push %s -> %s failed after the publish ended: %s",
                                self.publication.key, self.where, exc)
                    return
                if self._move_to is not None:  # the upstream closed first: move now
                    log.info("push %s -> %s ended (%s): moving as asked", self.publication.key,
                             self.where, exc)
                    self._follow(switch=False)
                    continue
                log.warning("push %s -> %s failed: %s; retry in %.0f s", self.publication.key,
                            self.where, exc, backoff)
            self.connected = False
            if self._start_as is None:  # broken mid-stream: resume at a keyframe
                self.resync = True
            # else a move whose new upstream is not there yet: keep queuing
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _start(self, stream: PublishStream) -> None:
        """What a new upstream connection gets first (see :class:`_Start`)."""
        start, self._start_as = self._start_as, None
        if start is None or self.resync:
            return  # the queue from the start, or the GOP cache (behind)
        if start is _Start.RESUME:
            startup = list(self.channel.startup())
            if any(not p.header for p in startup):
                self._clear()  # a GOP cache: from its keyframe, and live from there
                for packet in startup:
                    await self._send(stream, packet)
                return
            self._skip = self._video_sent  # none: the queue from its next keyframe
        if self._sent_metadata is not None:
            await self._send(stream, self._sent_metadata)
        for packet in list(self._sent):
            await self._send(stream, packet)

    async def _forward(self, stream: PublishStream) -> None:
        await self._start(stream)
        while True:
            if self.resync and not self.ended:
                self._clear()
                self.resync = self._skip = False
                for packet in list(self.channel.startup()):
                    await self._send(stream, packet)
            while self.queue:
                packet = self.queue[0]
                if self._moving and (packet.keyframe or not self._video_sent):
                    return  # a switch point: the rest goes to the new upstream
                if self._skip:
                    if packet.keyframe:
                        self._skip = False
                    elif packet.type_id != DATA and not packet.header:
                        self._pop(packet)  # a frame before the keyframe we resume at
                        continue
                await self._send(stream, packet)
                self._pop(packet)  # once sent: a failed send leaves it for the next upstream
                if self.resync:
                    break
            if self.ended and not self.queue:
                return
            if self._moving and not self._video_sent:
                return  # no video to wait for
            if not self.queue and not self.resync:
                self._wakeup.clear()
                await self._wakeup.wait()

    def _pop(self, packet: Packet) -> None:
        if self.queue and self.queue[0] is packet:  # not cleared meanwhile (behind)
            self.queue.popleft()
            self.queued_bytes -= len(packet.payload) + PACKET_OVERHEAD

    @property
    def _moving(self) -> bool:
        """A reconnect request to follow (not once the publication ended:
        then what is queued still goes where it was going)."""
        return self._move_to is not None and not self.ended

    async def _send(self, stream: PublishStream, packet: Packet) -> None:
        if packet.type_id == VIDEO:
            self._video_sent = True
            await stream.send_video(packet.timestamp, packet.payload)
        elif packet.type_id == AUDIO:
            await stream.send_audio(packet.timestamp, packet.payload)
        elif packet.metadata is not None:
            await stream.send_metadata(packet.metadata, packet.timestamp)
        else:
            await stream.send_data(packet.timestamp, packet.payload)
        self.messages_sent += 1
        if packet.metadata is not None:  # what a new upstream gets first after a move
            self._sent_metadata = packet
        elif packet.headers:
            self._sent.put(packet.headers, packet, len(packet.payload))


class PullOwner(Protocol):
    """What a :class:`Puller` works for: :class:`Relays`, or a worker's
    relays of its siblings' streams (:mod:`rtmpx.server.workers`)."""

    @property
    def hub(self) -> Hub:
        """Where the pulled stream is published."""

    @property
    def tasks(self) -> TaskSet:
        """Where the pull's task runs."""

    def pull_done(self, puller: Puller) -> None:
        """The pull ended (closed, or gave up for a local publisher)."""


class Puller:
    """Plays a stream from an origin and publishes it here (a
    :class:`~rtmpx.server.hub.Publisher`).  Pausing it really pauses: it
    stops reading its play stream, whose bounded queue then stops the
    socket.  ``url`` names the origin's application; an ``internal`` pull
    publishes an internal copy (see :class:`~rtmpx.server.hub.Publication`)."""

    def __init__(self, relays: PullOwner, key: StreamKey, url: str | RtmpURL, *,
                 internal: bool = False) -> None:
        self.relays = relays
        self.key = key
        self.url = url
        self.internal = internal
        self.publication: Publication | None = None
        self.closing = False
        self._running = asyncio.Event()
        self._running.set()
        self.task = relays.tasks.spawn(self._run())

    def __repr__(self) -> str:
        return f"<Puller {self.key} from {self.where}>"

    @property
    def where(self) -> str:
        """The origin URL without its query strings (which may carry a token)."""
        return (self.url if isinstance(self.url, RtmpURL) else parse_url(self.url)).redacted

    @property
    def peer(self) -> str:
        return f"pull:{self.where}"

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self, reason: str) -> None:
        """A local publisher replaced us, or the server shuts down."""
        self.publication = None
        self.close()

    def close(self) -> None:
        """Stop pulling now: the publication ends at once, the task soon."""
        self.closing = True
        self._end("pull dropped")
        self.task.cancel()
        self.relays.pull_done(self)

    def _end(self, reason: str) -> None:
        publication, self.publication = self.publication, None
        if publication is not None:
            self.relays.hub.unpublish(publication, reason)

    async def _run(self) -> None:
        backoff = 1.0
        try:
            while not self.closing:
                try:
                    async with connect(self.url) as client:
                        while not self.closing:
                            got_media = await self._play_once(client)
                            self._end("unpublish")  # the origin's publisher left: play again
                            if got_media:
                                backoff = 1.0
                            elif not self.closing:  # an origin that ends every play at once
                                await asyncio.sleep(backoff)
                                backoff = min(backoff * 2, MAX_BACKOFF)
                except (OSError, RtmpError, TimeoutError) as exc:
                    log.warning("pull %s from %s failed: %s; retry in %.0f s", self.key,
                                self.where, exc, backoff)
                    self._end("pull failed")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self._end("pull ended")
            self.relays.pull_done(self)

    async def _play_once(self, client: Client) -> bool:
        """One play of the origin's stream, to its end; whether media came."""
        hub = self.relays.hub
        async with client.play(self.key.name, max_queue=PULL_QUEUE,
                               max_queue_bytes=PULL_QUEUE_BYTES) as stream:
            async for item in stream:
                await self._running.wait()
                now = time.monotonic()
                publication = self.publication
                if publication is None:
                    request = Request("publish", self.key.app, self.key.name, "", self.peer,
                                      publish_type="live")
                    publication = hub.publish(self.key, self, request, now,
                                              internal=self.internal)
                    if publication is None:
                        log.info("pull %s: a local publisher came first", self.key)
                        self.closing = True
                        self.relays.pull_done(self)
                        return False
                    self.publication = publication
                if isinstance(item, Metadata):
                    publication.metadata(dict(item.metadata), item.payload, item.timestamp, now)
                else:
                    kind = VIDEO if item.kind == "video" else AUDIO
                    publication.media(kind, item.timestamp, bytes(item.payload), now)
        return self.publication is not None


class Relays:
    """The push and pull relays of one server (part of its policy)."""

    def __init__(self, hub: Hub, tasks: TaskSet, push: Sequence[Any] = (),
                 pull: str | None = None) -> None:
        self.hub = hub
        self.tasks = tasks
        self.targets = push_targets(push)
        self.pull_url = pull
        if pull is not None:
            parse_url(pull)
        self.pushers: dict[StreamKey, list[Pusher]] = {}
        self.pullers: dict[StreamKey, Puller] = {}
        self.closed = False

    def publication_started(self, publication: Publication) -> None:
        """Push it upstream (unless we pull it from there)."""
        if isinstance(publication.publisher, Puller):
            return  # never push back what we pull
        pushers = [Pusher(self.tasks, publication, url) for app, url in self.targets
                   if app is None or app == publication.key.app]
        if pushers:
            self.pushers[publication.key] = pushers

    def publication_ended(self, publication: Publication) -> None:
        pushers = self.pushers.get(publication.key)
        if pushers and pushers[0].publication is publication:
            del self.pushers[publication.key]

    def demand_changed(self, channel: Channel) -> None:
        """Pull a key players wait for; drop the pull when the last one left."""
        if self.pull_url is None or self.closed:
            return
        key = channel.key
        puller = self.pullers.get(key)
        if channel.players and puller is None and not channel.live:
            origin = parse_url(self.pull_url)
            url = str(origin) if origin.app else f"{self.pull_url.rstrip('/')}/{key.app}"
            self.pullers[key] = Puller(self, key, url)
            log.info("pulling %s from %s", key, parse_url(url).redacted)
        elif not channel.players and puller is not None:
            log.info("last player of %s left: dropping the pull", key)
            puller.close()

    def pull_done(self, puller: Puller) -> None:
        if self.pullers.get(puller.key) is puller:
            del self.pullers[puller.key]

    def close(self) -> None:
        """Drop every pull (pushes end with their publications); start no more."""
        self.closed = True
        for puller in list(self.pullers.values()):
            puller.close()
