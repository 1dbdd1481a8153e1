"""Players as hub subscribers: the slow-player policy.

:class:`GateSink` is what every player shares - RTMP players here, HTTP-FLV
and WebSocket-FLV viewers in :mod:`rtmpx.server.webflv`: a
:class:`~rtmpx.fanout.Gate` in the compiled fan-out, the slow-player rule,
counters for the stats.  A :class:`PlayerSink` sends a channel's packets to one message stream of
one connection, appended to that connection's session output (so that
every byte to the peer goes out through its session, in order).  The bytes
of a message are chunked once per (chunk size, stream id) and shared by
every player with that shape (:func:`rtmpx.session.encode_shared`); the
loop over a channel's players and the rule below run compiled
(:mod:`rtmpx.fanout`: the sink's :class:`~rtmpx.fanout.Gate`).

Its queue is the connection's write buffer (what the peer has not taken
yet: media merged for the next flush does not count, see
:class:`rtmpx.fanout.Outbox`), bounded by the
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

from ..fanout import KICK_ERROR, Encoder, Gate, Outbox
from ..session import ServerSession, StreamState, encode_shared
from .hub import HubLimits, Packet, Publication, fan_out
from .limits import limit_hit

__all__ = ["GateSink", "PlayerOutput", "PlayerSink", "PlayerStats", "SinkOutput"]

log = logging.getLogger("rtmpx.server")


class SinkOutput(Protocol):
    """What a player writes through: its connection (or HTTP response)."""

    @property
    def outbox(self) -> Outbox:
        """Where the fan-out queues media for the connection (its session's
        output queue, flushed by the connection)."""

    def flush(self) -> None:
        """Write what the session has queued."""

    def queued_bytes(self) -> int:
        """Bytes held for the peer (its backlog and writes not flushed yet)."""

    def backlog(self) -> int:
        """Bytes written that the peer has not taken yet: how far behind it is."""

    def kick(self, reason: str) -> None:
        """Disconnect the peer."""


class PlayerOutput(SinkOutput, Protocol):
    """What an RTMP player writes through: its connection."""

    @property
    def session(self) -> ServerSession:
        """The connection's session: every byte goes through it."""


@dataclass(slots=True)
class PlayerStats:
    """What a player has seen: visible in the server's stats."""

    bytes_sent: int = 0
    messages_sent: int = 0
    dropped: int = 0
    disconnected_for_lag: bool = False


class GateSink:
    """One player of a channel, served by the compiled fan-out.

    Its packets are delivered by its :attr:`gate` (:mod:`rtmpx.fanout`),
    which also keeps its switches and counters; ``encode`` makes the bytes
    of a packet for it (``stream_id`` and the output's chunk size say which
    form: players of the same form share it).  Set ``joined`` once
    :meth:`rtmpx.server.hub.Hub.subscribe` returned.  Subclasses say what
    happens when a publication starts or ends (:meth:`publish_started`,
    :meth:`publish_ended`)."""

    __slots__ = ("_lagged", "gate", "joined", "limits", "output", "peer")

    #: what the stats call it
    protocol = "rtmp"

    def __init__(self, output: SinkOutput, stream_id: int, limits: HubLimits, encode: Encoder,
                 *, peer: str = "", audio: bool = True, video: bool = True) -> None:
        self.output = output
        self.limits = limits
        self.peer = peer
        self.joined = False
        self._lagged = False
        self.gate = gate = Gate(output.outbox, stream_id, limits.max_queue, encode,
                                self._gate_kicked)
        gate.audio = audio
        gate.video = video

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer}>"

    # the player's switches, kept by its gate

    @property
    def audio(self) -> bool:
        """Whether it receives audio (``receiveAudio``)."""
        return self.gate.audio

    @audio.setter
    def audio(self, value: bool) -> None:
        self.gate.audio = value

    @property
    def video(self) -> bool:
        """Whether it receives video (``receiveVideo``)."""
        return self.gate.video

    @video.setter
    def video(self, value: bool) -> None:
        self.gate.video = value

    @property
    def paused(self) -> bool:
        """Whether it paused (no media until it resumes: see :meth:`pause`)."""
        return self.gate.paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self.gate.paused = value

    @property
    def closed(self) -> bool:
        """Whether it is gone (stopped playing, or disconnected)."""
        return self.gate.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self.gate.closed = value

    @property
    def stats(self) -> PlayerStats:
        """What it has seen so far (a snapshot: read it again for news)."""
        gate = self.gate
        return PlayerStats(gate.bytes_sent, gate.messages_sent, gate.dropped, self._lagged)

    @property
    def queued_bytes(self) -> int:
        """Bytes written to the player but not yet sent."""
        return self.output.queued_bytes()

    def behind_seconds(self, now: float) -> float:
        """For how long the player has been behind (0 when it keeps up)."""
        since = self.gate.behind_since
        return 0.0 if since < 0 else now - since

    # -- the Subscriber contract ---------------------------------------------------

    def publish_started(self, publication: Publication, now: float) -> None:
        """A publication starts feeding the channel (at once, for a player
        that joins a live channel)."""
        self.restart()

    def publish_ended(self, publication: Publication, reason: str) -> None:
        """The publication ended."""
        self.restart()

    def packet(self, packet: Packet, now: float) -> None:
        """Deliver one packet (a cached one, to a joining player), or drop it
        by the slow-player rule; live packets come through the hub's
        :func:`~rtmpx.server.hub.fan_out` instead."""
        fan_out(packet, [self.gate], now)

    # -- policy ---------------------------------------------------------------------

    def check_lag(self, now: float) -> None:
        """Disconnect the player if it stayed behind longer than max_lag.
        A player whose queue drained is no longer behind, even while it
        waits for the next keyframe (a long GOP)."""
        gate = self.gate
        if gate.behind_since < 0:
            return
        if self.output.backlog() <= self.limits.max_queue // 2:
            gate.behind_since = -1.0
        elif now - gate.behind_since > self.limits.max_lag:
            self._lagged = True
            self.kick(f"max_lag={self.limits.max_lag:g}", "behind for longer")

    def kick(self, limit: str, reason: str) -> None:
        """Disconnect the player's connection: it broke ``limit``."""
        if not self.closed:
            self.closed = True
            self._disconnect(limit, reason)

    def _gate_kicked(self) -> None:
        """The gate closed the player: its queue passed twice ``max_queue``,
        or delivering to it raised (a bug, logged here)."""
        gate = self.gate
        if gate.kicked == KICK_ERROR:
            log.error("%r: fan-out failed: disconnected", self, exc_info=gate.error)
            self.output.kick("internal error")
            return
        max_queue = self.limits.max_queue
        self._disconnect(f"max_queue={max_queue}", "write queue over twice max_queue")

    def _disconnect(self, limit: str, reason: str) -> None:
        limit_hit(limit, self.peer, f"slow player disconnected: {reason}")
        self.output.kick(reason)

    def restart(self) -> None:
        """Start again at the next keyframe (a new publisher, a seek, an unpause)."""
        self.gate.skip_to_key = True
        self.gate.behind_since = -1.0

    def pause(self, paused: bool) -> None:
        """The player paused (no media until it resumes) or resumed."""
        self.gate.paused = paused
        if not paused:
            self.restart()


class PlayerSink(GateSink):
    """One RTMP player of a channel: message stream ``stream_id`` of a
    connection.  A publication that starts after it joined is announced to
    it (StreamBegin, NetStream.Play.PublishNotify), one that ends too."""

    __slots__ = ("stream_id",)

    output: PlayerOutput

    def __init__(self, output: PlayerOutput, stream_id: int, limits: HubLimits, *,
                 peer: str = "", audio: bool = True, video: bool = True) -> None:
        super().__init__(output, stream_id, limits, encode_shared, peer=peer, audio=audio,
                         video=video)
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"<PlayerSink {self.peer} stream {self.stream_id}>"

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
