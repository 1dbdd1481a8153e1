"""Every frame of a publish, for Python code: :class:`IncomingStream`."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ..events import Metadata
from ..media import PRIMARY_TRACK, Frame, HeaderReplay, parse_audio, parse_video
from .hooks import request_of
from .hub import AUDIO, PACKET_OVERHEAD, VIDEO, Packet, Publication

__all__ = ["IncomingStream"]


class IncomingStream:
    """One publish, as an async iterator of frames (:class:`rtmpx.media.Frame`)
    and metadata (:class:`rtmpx.events.Metadata`), ending at unpublish.

    The buffer is bounded in bytes (``max_bytes``; each item is charged
    its payload plus :data:`PACKET_OVERHEAD`):

    * Once the application iterates the stream, a full buffer pauses that
      one publisher (never others) until the consumer has drained it to
      half.  A paused publisher is not dropped as idle: it waits for its
      consumer, up to the server's ``hold_timeout``.  A consumer that takes
      nothing for that long is taken for gone: the stream stops holding the
      publisher back and is cut as below, until the consumer takes again.
    * Before the first iteration nothing is held back: a full buffer is
      cut to the latest metadata and sequence headers, and the stream
      starts again at the next keyframe (``dropped`` counts what was cut).
    * :meth:`close` detaches the stream (the publish itself goes on).
    """

    def __init__(self, publication: Publication, max_bytes: int) -> None:
        request = request_of(publication)
        self.request = request
        self.key = request.key
        self.app = request.app
        self.name = request.name
        self.query = request.query
        self.peer = request.peer
        self.publish_type = request.publish_type
        self.metadata: dict[str, Any] | None = None
        self.max_bytes = max_bytes
        self.dropped = 0
        self._publication: Publication | None = publication
        self._items: deque[Frame | Metadata] = deque()
        self._bytes = 0
        self._consumed = False
        self._paused = False
        self._skip_to_key = False
        # the latest metadata and header of each (kind, track, header kind)
        self._headers: HeaderReplay[Frame | Metadata] = HeaderReplay(
            max_bytes=publication.channel.limits.max_header_bytes)
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        publication.follow(self)

    def __repr__(self) -> str:
        return f"<IncomingStream {self.key} from {self.peer}>"

    @property
    def buffered_bytes(self) -> int:
        """What the buffer holds now, as charged against ``max_bytes``."""
        return self._bytes

    @property
    def queued_bytes(self) -> int:
        """The same as :attr:`buffered_bytes` (the :class:`Subscriber` name)."""
        return self._bytes

    # -- the Subscriber contract ----------------------------------------------------

    def publish_started(self, publication: Publication, now: float) -> None:
        pass  # made at the start of its publication

    def packet(self, packet: Packet, now: float) -> None:
        type_id = packet.type_id
        item: Frame | Metadata
        if type_id == VIDEO:
            item = parse_video(packet.timestamp, packet.payload)
        elif type_id == AUDIO:
            item = parse_audio(packet.timestamp, packet.payload)
        elif packet.metadata is not None:
            self.metadata = packet.metadata
            item = Metadata(0, packet.timestamp, packet.metadata, packet.payload)
        else:
            return  # other data messages are relayed, not part of the ingest API
        if packet.header:
            self._headers.put(packet.headers or (type_id,), item,
                              len(item.payload) + PACKET_OVERHEAD)
        elif self._skip_to_key:
            if not packet.keyframe:
                self.dropped += 1
                return
            self._skip_to_key = False
        self._items.append(item)
        self._bytes += len(packet.payload) + PACKET_OVERHEAD
        if self._bytes > self.max_bytes:
            if self._consumed:
                self._pause(now)
            else:
                self._cut()
        self._wake()

    def hold_expired(self) -> None:
        """The consumer took nothing for the server's hold timeout: stop
        holding the publisher, keep the buffer bounded by cutting it."""
        self._paused = False
        self._consumed = False
        self._cut()

    def publish_ended(self, publication: Publication, reason: str) -> None:
        self._end()

    # -- buffer policy ------------------------------------------------------------

    def _cut(self) -> None:
        """Nobody iterates yet: keep the headers and the media from the latest
        keyframe (if that fits in half the buffer), else restart at the next
        keyframe."""
        items = list(self._items)
        headers = list(self._headers)
        header_ids = {id(h) for h in headers}
        tail: list[Frame | Metadata] = []
        for i in range(len(items) - 1, -1, -1):
            item = items[i]
            if isinstance(item, Frame) and item.kind == "video" and item.is_keyframe \
                    and item.track_id == PRIMARY_TRACK:
                tail = [x for x in items[i:] if id(x) not in header_ids]
                break
        size = sum(len(x.payload) + PACKET_OVERHEAD for x in tail)
        if size > self.max_bytes // 2:
            tail = []
        self._skip_to_key = not tail and any(
            isinstance(h, Frame) and h.kind == "video" for h in self._headers)
        kept = headers + tail
        self.dropped += len(items) - len(kept)
        self._items = deque(kept)
        self._bytes = sum(len(x.payload) + PACKET_OVERHEAD for x in kept)

    def _pause(self, now: float) -> None:
        if not self._paused and self._publication is not None:
            self._paused = True
            self._publication.pause(self, now)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._publication is not None:
                self._publication.resume(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self) -> None:
        self._ended = True
        self._resume()
        self._publication = None
        self._wake()

    # -- the application's side -------------------------------------------------------

    def __aiter__(self) -> IncomingStream:
        return self

    async def __anext__(self) -> Frame | Metadata:
        self._consumed = True
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        self._bytes -= len(item.payload) + PACKET_OVERHEAD
        if self._paused and self._bytes <= self.max_bytes // 2:
            self._resume()
        return item

    def close(self) -> None:
        """Stop receiving frames (the publish itself goes on)."""
        self._items.clear()
        self._bytes = 0
        publication = self._publication
        if publication is not None:
            publication.unfollow(self)
        self._end()
