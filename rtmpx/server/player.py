"""An RTMP player as a hub subscriber: the slow-player policy.

A :class:`PlayerSink` sends a channel's packets to one message stream of
one connection, through that connection's session (so that every byte to
the peer comes from its session).  The bytes of a message are chunked
once per (chunk size, stream id) and shared by every player with that
shape (:func:`rtmpx.session.encode_shared`).

Its queue is the connection's write buffer (what the peer has not taken
yet: media merged for the next flush does not count, see
:meth:`rtmpx.server.connection.Connection.send_media`), bounded by the
policy: a player that falls behind (more than ``max_queue`` bytes queued) loses
non-key video until the next keyframe (audio and sequence headers are
kept); one that stays behind - its queue above half of ``max_queue`` -
for longer than ``max_lag`` seconds, or whose queue passes twice
``max_queue`` anyway, is disconnected.  Neither slows the publisher or the
other players.  No asyncio here: time is passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from ..session import ServerSession, StreamState, encode_shared
from .hub import AUDIO, VIDEO, HubLimits, Packet, Publication
from .limits import limit_hit

__all__ = ["PlayerOutput", "PlayerSink", "PlayerStats"]

log = logging.getLogger("rtmpx.server")


class PlayerOutput(Protocol):
    """What a player writes through: its connection."""

    @property
    def session(self) -> ServerSession:
        """The connection's session: every byte goes through it."""

    def flush(self) -> None:
        """Write what the session has queued."""

    def send_media(self, type_id: int, data: bytes) -> None:
        """Queue shared media bytes (written with the next flush)."""

    def queued_bytes(self) -> int:
        """Bytes held for the peer (its backlog and writes not flushed yet)."""

    def backlog(self) -> int:
        """Bytes written that the peer has not taken yet: how far behind it is."""

    def kick(self, reason: str) -> None:
        """Disconnect the peer."""


@dataclass(slots=True)
class PlayerStats:
    """What a player has seen: visible in the server's stats."""

    bytes_sent: int = 0
    messages_sent: int = 0
    dropped: int = 0
    disconnected_for_lag: bool = False


class PlayerSink:
    """One player of a channel: a message stream on some connection.

    Set ``joined`` once :meth:`rtmpx.server.hub.Hub.subscribe` returned: a
    publication that starts after that is announced to the player
    (StreamBegin, NetStream.Play.PublishNotify)."""

    __slots__ = ("_behind_since", "_max_queue", "_skip_to_key", "audio", "closed", "joined",
                 "limits", "output", "paused", "peer", "stats", "stream_id", "video")

    def __init__(self, output: PlayerOutput, stream_id: int, limits: HubLimits, *,
                 peer: str = "", audio: bool = True, video: bool = True) -> None:
        self.output = output
        self.stream_id = stream_id
        self.limits = limits
        self._max_queue = limits.max_queue
        self.peer = peer
        self.audio = audio
        self.video = video
        self.paused = False
        self.stats = PlayerStats()
        self.joined = False
        self.closed = False
        self._skip_to_key = True   # a player starts at a keyframe
        self._behind_since: float | None = None

    def __repr__(self) -> str:
        return f"<PlayerSink {self.peer} stream {self.stream_id}>"

    @property
    def queued_bytes(self) -> int:
        """Bytes written to the player but not yet sent."""
        return self.output.queued_bytes()

    def behind_seconds(self, now: float) -> float:
        """For how long the player has been behind (0 when it keeps up)."""
        return 0.0 if self._behind_since is None else now - self._behind_since

    # -- the Subscriber contract ---------------------------------------------------

    def _playing(self) -> bool:
        """Whether the stream still plays (its connection may have ended the
        play in the same read, before the hub heard of it)."""
        return not self.closed and \
            self.output.session.stream_state(self.stream_id) is StreamState.PLAYING

    def publish_started(self, publication: Publication, now: float) -> None:
        if not self._playing():
            return
        if self.joined:
            self.output.session.notify_publish(self.stream_id)
            self.output.flush()
        self.restart()

    def publish_ended(self, publication: Publication, reason: str) -> None:
        if not self._playing():
            return
        self.output.session.notify_unpublish(self.stream_id)
        self.output.flush()
        self.restart()

    def packet(self, packet: Packet, now: float) -> None:
        """Deliver one packet, or drop it by the slow-player rule."""
        if self.closed:
            return
        type_id = packet.type_id
        header = packet.header
        output = self.output
        max_queue = self._max_queue
        if type_id == VIDEO and not header:
            if self.paused or not self.video:
                return
            queued = output.backlog()
            if queued > max_queue:
                # behind: drop video until the next keyframe
                self._skip_to_key = True
                if self._behind_since is None:
                    self._behind_since = now
                self.stats.dropped += 1
                return
            if self._skip_to_key:
                if not packet.keyframe or queued > max_queue // 2:
                    self.stats.dropped += 1
                    return
                self._skip_to_key = False
                self._behind_since = None
        elif type_id == AUDIO and not header and (self.paused or not self.audio):
            return
        else:
            queued = output.backlog()
        if queued > 2 * max_queue:
            self.kick(f"max_queue={max_queue}", "write queue over twice max_queue")
            return
        session = output.session
        shape = (session.chunk_size, self.stream_id)
        shared = packet.shared
        if shared is None:
            shared = packet.shared = {}
        data = shared.get(shape)
        if data is None:
            data = shared[shape] = encode_shared(type_id, packet.timestamp, packet.payload,
                                                 self.stream_id, shape[0])
        output.send_media(type_id, data)
        stats = self.stats
        stats.bytes_sent += len(data)
        stats.messages_sent += 1

    # -- policy ---------------------------------------------------------------------

    def check_lag(self, now: float) -> None:
        """Disconnect the player if it stayed behind longer than max_lag.
        A player whose queue drained is no longer behind, even while it
        waits for the next keyframe (a long GOP)."""
        if self._behind_since is None:
            return
        if self.output.backlog() <= self.limits.max_queue // 2:
            self._behind_since = None
        elif now - self._behind_since > self.limits.max_lag:
            self.stats.disconnected_for_lag = True
            self.kick(f"max_lag={self.limits.max_lag:g}", "behind for longer")

    def kick(self, limit: str, reason: str) -> None:
        """Disconnect the player's connection: it broke ``limit``."""
        if not self.closed:
            self.closed = True
            limit_hit(limit, self.peer, f"slow player disconnected: {reason}")
            self.output.kick(reason)

    def restart(self) -> None:
        """Start again at the next keyframe (a new publisher, a seek, an unpause)."""
        self._skip_to_key = True
        self._behind_since = None

    def pause(self, paused: bool) -> None:
        """The player paused (no media until it resumes) or resumed."""
        self.paused = paused
        if not paused:
            self.restart()
