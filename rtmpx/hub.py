"""The live relay hub: one publisher per stream key, any number of players.

A :class:`Channel` holds what a player that joins late needs (metadata, the
audio and video sequence headers, and the media since the latest
keyframe: the GOP cache) and fans every message out to its players.  A
message is chunked once per (chunk size, message stream id) and the same
bytes are written to every player that shares them.

Players are :class:`Sink` objects with a bounded write queue (the
transport's buffer, which the hub never lets grow past ``max_queue``): a
player that falls behind first loses non-key video until the next keyframe
(audio and sequence headers are kept), and one that stays behind longer
than ``max_lag`` seconds, or whose queue passes twice ``max_queue`` anyway,
is disconnected.  Neither slows the publisher or the other players.

No asyncio here: sinks write to anything with ``write``,
``get_write_buffer_size`` and ``abort``, and time is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .chunk import ChunkWriter, Message
from .constants import MessageType as MT
from .media import is_sequence_header, is_video_keyframe

__all__ = ["Channel", "Hub", "HubLimits", "Sink", "SinkStats", "Transport"]

log = logging.getLogger("rtmpx.server")

_AUDIO, _VIDEO, _DATA = int(MT.AUDIO), int(MT.VIDEO), int(MT.DATA_AMF0)
_CSID = {_AUDIO: 4, _VIDEO: 6, _DATA: 5}  # media csids; commands use 3, control 2


class Transport(Protocol):
    """What a sink writes to (an asyncio transport fits)."""

    def write(self, data: bytes) -> None: ...
    def get_write_buffer_size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Per-player and per-channel bounds (security and memory settings).

    ``max_queue``: bytes a player may have queued before video is dropped
    to the next keyframe; ``max_lag``: seconds a player may stay behind
    before it is disconnected; ``max_gop_bytes``: the largest GOP cache
    (a longer GOP is not cached: late joiners wait for the next keyframe).
    """

    max_queue: int = 4 * 1024 * 1024
    max_lag: float = 10.0
    max_gop_bytes: int = 32 * 1024 * 1024


def encode_standalone(type_id: int, timestamp: int, payload: bytes, stream_id: int,
                      chunk_size: int) -> bytes:
    """Chunk one message with a full (fmt 0) header: decodable by any player
    whatever it received before, so the bytes can be shared."""
    writer = ChunkWriter(chunk_size=chunk_size)
    return writer.encode(Message(type_id, payload, timestamp & 0xFFFFFFFF, stream_id,
                                 _CSID.get(type_id, 5)))


@dataclass(slots=True)
class SinkStats:
    """What a player's sink has seen: visible in the server's stats."""

    bytes_sent: int = 0
    messages_sent: int = 0
    dropped: int = 0
    disconnected_for_lag: bool = False


class Sink:
    """One player of a channel: a message stream on some connection."""

    __slots__ = (
        "_behind_since",
        "_flush",
        "_skip_to_key",
        "audio",
        "chunk_size",
        "closed",
        "limits",
        "on_kick",
        "owner",
        "peer",
        "stats",
        "stream_id",
        "transport",
        "video",
    )

    def __init__(self, transport: Transport, stream_id: int, chunk_size: int,
                 limits: HubLimits, *, peer: str = "",
                 flush: Callable[[], None] | None = None,
                 on_kick: Callable[[Sink, str], None] | None = None,
                 owner: Any = None) -> None:
        self.transport = transport
        self.stream_id = stream_id
        self.chunk_size = chunk_size
        self.limits = limits
        self.stats = SinkStats()
        self.peer = peer
        self.audio = True
        self.video = True
        self._skip_to_key = True   # a player starts at a keyframe
        self._behind_since: float | None = None
        self._flush = flush
        self.on_kick = on_kick
        self.owner = owner  # what the sink belongs to (the server's connection)
        self.closed = False

    @property
    def queued_bytes(self) -> int:
        """Bytes written to the player but not yet sent."""
        return int(self.transport.get_write_buffer_size())

    def behind_seconds(self, now: float) -> float:
        """For how long the player has been behind (0 when it keeps up)."""
        return 0.0 if self._behind_since is None else now - self._behind_since

    def write(self, data: bytes) -> None:
        if self._flush is not None:
            self._flush()  # the connection's own pending bytes go first
        self.transport.write(data)
        self.stats.bytes_sent += len(data)
        self.stats.messages_sent += 1

    def offer(self, type_id: int, header: bool, key: bool, data: bytes, now: float) -> None:
        """Deliver one fanned-out message, or drop it by the slow-player rule."""
        if self.closed:
            return
        if type_id == _VIDEO:
            if not self.video and not header:
                return
            if not header and self._skip_to_key:
                if not key or self.queued_bytes > self.limits.max_queue // 2:
                    self.stats.dropped += 1
                    return
                self._skip_to_key = False
                self._behind_since = None
            elif not header and self.queued_bytes > self.limits.max_queue:
                # behind: drop video until the next keyframe
                self._skip_to_key = True
                if self._behind_since is None:
                    self._behind_since = now
                self.stats.dropped += 1
                return
        elif type_id == _AUDIO and not self.audio and not header:
            return
        if self.queued_bytes > 2 * self.limits.max_queue:
            self.kick("write queue over twice max_queue")
            return
        self.write(data)

    def check_lag(self, now: float) -> None:
        """Disconnect the player if it stayed behind longer than max_lag."""
        if self._behind_since is not None and now - self._behind_since > self.limits.max_lag:
            self.stats.disconnected_for_lag = True
            self.kick(f"behind for more than {self.limits.max_lag:g} s")

    def kick(self, why: str) -> None:
        if not self.closed:
            self.closed = True
            log.warning("disconnecting slow player %s: %s", self.peer, why)
            if self.on_kick is not None:
                self.on_kick(self, why)

    def restart(self) -> None:
        """A new publisher: start again at its first keyframe."""
        self._skip_to_key = True
        self._behind_since = None


class Channel:
    """One stream key (``app/name``): its publisher, GOP cache and players."""

    def __init__(self, key: str, limits: HubLimits) -> None:
        self.key = key
        self.limits = limits
        self.publisher: Any = None
        self.sinks: list[Sink] = []
        self.metadata: dict[str, Any] | None = None
        self.metadata_payload: bytes | None = None
        self.video_header: tuple[int, bytes] | None = None
        self.audio_header: tuple[int, bytes] | None = None
        self.gop: list[tuple[int, int, bytes]] = []   # (type_id, timestamp, payload)
        self.gop_bytes = 0
        self._gop_valid = False
        self.bytes_in = 0
        self.messages_in = 0
        # called with (type_id, timestamp, payload, metadata or None) for
        # every message: the recorder, ingest streams, push relays
        self.listeners: list[Callable[[int, int, bytes, dict[str, Any] | None], None]] = []

    @property
    def live(self) -> bool:
        return self.publisher is not None

    def reset(self) -> None:
        """Forget the cached stream state (a publisher left or arrived)."""
        self.metadata = None
        self.metadata_payload = None
        self.video_header = None
        self.audio_header = None
        self.gop.clear()
        self.gop_bytes = 0
        self._gop_valid = False

    # -- from the publisher ---------------------------------------------------------

    def set_metadata(self, metadata: dict[str, Any], payload: bytes, timestamp: int,
                     now: float) -> None:
        self.metadata = metadata
        self.metadata_payload = payload
        self._fan_out(_DATA, timestamp, payload, True, False, now)
        for listener in self.listeners:
            listener(_DATA, timestamp, payload, metadata)

    def data(self, timestamp: int, payload: bytes, now: float) -> None:
        """Any other data message (onTextData, onCuePoint, ...): relayed, not cached."""
        self._fan_out(_DATA, timestamp, payload, True, False, now)
        for listener in self.listeners:
            listener(_DATA, timestamp, payload, None)

    def media(self, type_id: int, timestamp: int, payload: bytes, now: float) -> None:
        """One audio or video message from the publisher."""
        self.bytes_in += len(payload)
        self.messages_in += 1
        header = is_sequence_header(type_id, payload)
        key = type_id == _VIDEO and not header and is_video_keyframe(payload)
        if header:
            if type_id == _VIDEO:
                self.video_header = (timestamp, payload)
            else:
                self.audio_header = (timestamp, payload)
        else:
            self._cache(type_id, timestamp, payload, key)
        self._fan_out(type_id, timestamp, payload, header, key, now)
        for listener in self.listeners:
            listener(type_id, timestamp, payload, None)

    def _cache(self, type_id: int, timestamp: int, payload: bytes, key: bool) -> None:
        if key:
            self.gop.clear()
            self.gop_bytes = 0
            self._gop_valid = True
        if not self._gop_valid:
            return
        self.gop_bytes += len(payload)
        if self.gop_bytes > self.limits.max_gop_bytes:
            self.gop.clear()   # too long a GOP to keep: late joiners wait for a keyframe
            self.gop_bytes = 0
            self._gop_valid = False
            return
        self.gop.append((type_id, timestamp, payload))

    def _fan_out(self, type_id: int, timestamp: int, payload: bytes, header: bool, key: bool,
                 now: float) -> None:
        if not self.sinks:
            return
        encoded: dict[tuple[int, int], bytes] = {}
        for sink in self.sinks:
            shape = (sink.chunk_size, sink.stream_id)
            data = encoded.get(shape)
            if data is None:
                data = encoded[shape] = encode_standalone(type_id, timestamp, payload,
                                                          sink.stream_id, sink.chunk_size)
            sink.offer(type_id, header, key, data, now)

    # -- players ---------------------------------------------------------------------

    def startup(self) -> Iterator[tuple[int, int, bytes]]:
        """What a joining player gets first: metadata, sequence headers, then
        the media since the latest keyframe."""
        if self.metadata_payload is not None:
            yield _DATA, 0, self.metadata_payload
        if self.video_header is not None:
            yield _VIDEO, self.video_header[0], self.video_header[1]
        if self.audio_header is not None:
            yield _AUDIO, self.audio_header[0], self.audio_header[1]
        yield from self.gop

    def add_sink(self, sink: Sink, now: float) -> None:
        """Attach a player; if the stream is live it gets the cached start."""
        self.sinks.append(sink)
        if self.live:
            self.replay(sink, now)

    def replay(self, sink: Sink, now: float) -> None:
        for type_id, timestamp, payload in self.startup():
            header = type_id == _DATA or is_sequence_header(type_id, payload)
            key = type_id == _VIDEO and not header and is_video_keyframe(payload)
            data = encode_standalone(type_id, timestamp, payload, sink.stream_id,
                                     sink.chunk_size)
            sink.offer(type_id, header, key, data, now)

    def remove_sink(self, sink: Sink) -> None:
        try:
            self.sinks.remove(sink)
        except ValueError:
            pass

    @property
    def idle(self) -> bool:
        """No publisher, no players, no listeners: the channel can go."""
        return self.publisher is None and not self.sinks and not self.listeners


class Hub:
    """All channels of a server, by key (``app/name``)."""

    def __init__(self, limits: HubLimits | None = None) -> None:
        self.limits = limits if limits is not None else HubLimits()
        self.channels: dict[str, Channel] = {}

    def channel(self, key: str) -> Channel:
        """The channel for ``key``, made if needed."""
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = Channel(key, self.limits)
        return channel

    def get(self, key: str) -> Channel | None:
        return self.channels.get(key)

    def discard_if_idle(self, channel: Channel) -> None:
        if channel.idle and self.channels.get(channel.key) is channel:
            del self.channels[channel.key]

    def check_lag(self, now: float) -> None:
        """Disconnect every player that stayed behind too long."""
        for channel in list(self.channels.values()):
            for sink in list(channel.sinks):
                sink.check_lag(now)
