"""Fan-out: one media message to many RTMP players (pure-Python twin of
:mod:`rtmpx._fanout`).

A relay hands every message of a stream to every player of it.  Done in
Python, that is a few microseconds per message and player, most of what
fan-out costs; :func:`deliver` does the whole loop over a channel's
players in one call (compiled: no Python per player), and leaves Python
only the rare work: a connection whose merged writes became due, a player
to disconnect.

* :class:`Outbox` - the bytes due to one connection: its session's output
  queue (:attr:`rtmpx.session.Session.output`), the media bytes merged
  into it since the last flush, and the peer's backlog (its transport's
  ``get_write_buffer_size()``).  Its ``chunk_size`` is the session's as of
  the last flush: whoever changes the session's chunk size flushes before
  more media is queued (a server session sets it once, on connect).  The
  rule reads the backlog as of the owner's last :meth:`Outbox.measure`:
  the owner measures after each flush (a backlog grows only then) and
  when the transport pauses or resumes writing, so it may be high by what
  the peer took since, never low.
* :class:`Gate` - one player (a message stream of a connection) and the
  slow-player rule: a player whose backlog passes ``max_queue`` loses
  non-key video until the next keyframe (audio and headers are kept), and
  one whose backlog passes twice ``max_queue`` is to be disconnected.
* :func:`deliver` - one packet to many gates; returns what needs Python.
* :class:`Packet` - one message of a publication as every subscriber gets
  it, classified once (:meth:`Packet.media`).
* :class:`GopCache` - the media since the latest keyframe, bounded.
* :func:`relay` - a run of a publisher's media messages through all of
  that: Python per run, not per message, when only gates listen.

No I/O, no clock, no logging: the time is passed in, and whatever needs
an action is returned to the caller, who calls its ``notify``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .media import PRIMARY_TRACK, classify

__all__ = ["DUE", "FLUSH", "IDLE", "KICK_ERROR", "KICK_QUEUE", "PACKET_OVERHEAD", "Gate",
           "GopCache", "Outbox", "Packet", "deliver", "relay"]

#: What a header packet is kept as: ``(kind, track id, header kind)`` (see
#: :class:`~rtmpx.media.TrackInfo`).
HeaderKey = tuple[str, int, int]

#: Bytes a buffered packet is charged on top of its payload (the Python
#: objects that carry it), so that queues of tiny messages are bounded too.
PACKET_OVERHEAD = 200

AUDIO, VIDEO = 8, 9

#: :attr:`Outbox.state`: nothing merged since the last flush; media merged,
#: to be written at the next tick of the flush timer; to be flushed now.
IDLE, DUE, FLUSH = 0, 1, 2

#: Kick reasons (:attr:`Gate.kicked`): the queue passed twice ``max_queue``;
#: delivering to the player raised (a bug: :attr:`Gate.error` holds it).
KICK_QUEUE = "queue"
KICK_ERROR = "error"


class _Session(Protocol):
    @property
    def output(self) -> list[bytes]: ...
    @property
    def chunk_size(self) -> int: ...


#: ``encode(type_id, timestamp, payload, stream_id, chunk_size)``: the
#: chunked bytes of a message (:func:`rtmpx.session.encode_shared`).
Encoder = Callable[[int, int, bytes, int, int], bytes]


class Outbox:
    """The media due to one connection.

    ``session`` is its session: media bytes go to the end of its output
    queue, in order with everything else it sends.  ``merge_max``: bytes
    merged before a flush is due at once (0: at once after every message,
    when there is no flush timer).  ``transport`` (set once connected) tells
    the backlog.  ``notify()`` is called (by whoever called :func:`deliver`)
    when :attr:`state` rose: to flush now (:data:`FLUSH`) or to ask the
    flush timer (:data:`DUE`).  The owner calls :meth:`flushed` when it
    took the queue.
    """

    __slots__ = ("chunk_size", "last_backlog", "merge_max", "merged", "notify", "queue",
                 "session", "state", "transport")

    def __init__(self, session: _Session, merge_max: int,
                 notify: Callable[[], None]) -> None:
        if merge_max < 0:
            raise ValueError("merge_max must be >= 0")
        self.session = session
        self.queue = session.output
        self.chunk_size = session.chunk_size
        self.merge_max = merge_max
        self.notify = notify
        self.transport: Any = None
        self.merged = 0
        self.state = IDLE
        self.last_backlog = 0

    def backlog(self) -> int:
        """Bytes written to the transport that the peer has not taken yet."""
        transport = self.transport
        return 0 if transport is None else int(transport.get_write_buffer_size())

    def measure(self) -> int:
        """Read :meth:`backlog` into :attr:`last_backlog` (what the rule
        reads) and return it."""
        self.last_backlog = self.backlog()
        return self.last_backlog

    def take(self) -> list[bytes]:
        """Everything queued for the peer (the session's output, which it
        leaves empty), in order; as :meth:`flushed` after."""
        chunks = self.queue[:]
        self.queue.clear()
        self.flushed()
        return chunks

    def flushed(self) -> None:
        """The queue was taken: nothing is merged any more (and the
        session's chunk size is read again)."""
        self.merged = 0
        self.state = IDLE
        self.chunk_size = self.session.chunk_size

    def add(self, data: bytes) -> bool:
        """Append media bytes; True when :attr:`state` rose (call :attr:`notify`)."""
        self.queue.append(data)
        merged = self.merged = self.merged + len(data)
        state = self.state
        if state == FLUSH:
            return False
        if merged >= self.merge_max:
            self.state = FLUSH
            return True
        if state == IDLE:
            self.state = DUE
            return True
        return False


class Gate:
    """One player of a channel: message stream ``stream_id`` of the
    connection whose :class:`Outbox` is ``outbox``.

    The player's switches (``audio``, ``video``, ``paused``, ``closed``)
    are set by its owner; ``skip_to_key`` (it waits for a keyframe: a new
    player, a seek, one that fell behind) and ``behind_since`` (when it fell
    behind, or -1) by the rule.  ``kicked`` is set (with ``closed``) when
    the rule disconnects it (:data:`KICK_QUEUE`), or when delivering to it
    raised (:data:`KICK_ERROR`, the exception in ``error``): ``notify()`` is
    then called.
    """

    __slots__ = ("audio", "behind_since", "bytes_sent", "closed", "dropped", "encode", "error",
                 "kicked", "max_queue", "messages_sent", "notify", "outbox", "paused",
                 "skip_to_key", "stream_id", "video")

    def __init__(self, outbox: Outbox, stream_id: int, max_queue: int, encode: Encoder,
                 notify: Callable[[], None]) -> None:
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.outbox = outbox
        self.stream_id = stream_id
        self.max_queue = max_queue
        self.encode = encode
        self.notify = notify
        self.audio = True
        self.video = True
        self.paused = False
        self.closed = False
        self.kicked = ""
        self.error: BaseException | None = None
        self.skip_to_key = True
        self.behind_since = -1.0
        self.bytes_sent = 0
        self.messages_sent = 0
        self.dropped = 0


def deliver(packet: Packet, gates: Sequence[Gate], now: float) -> list[Gate | Outbox]:
    """Hand ``packet`` to every gate by the slow-player rule: append its
    chunked bytes (made once per chunk size and stream id, kept in
    ``packet.shared``) to each outbox.  Returns the gates and outboxes whose
    ``notify()`` must be called, in order (usually none)."""
    todo: list[Gate | Outbox] = []
    for gate in gates:  # all or nothing: no gate is served if one is not a Gate
        if type(gate) is not Gate:
            raise TypeError(f"not a Gate: {type(gate).__name__}")
    type_id = packet.type_id
    header = packet.header
    plain_video = type_id == VIDEO and not header
    plain_audio = type_id == AUDIO and not header
    shared = packet.shared
    last_shape: tuple[int, int] | None = None
    last_data = b""
    for gate in gates:
        if gate.closed:
            continue
        outbox = gate.outbox
        max_queue = gate.max_queue
        if plain_video:
            if gate.paused or not gate.video:
                continue
            queued = outbox.last_backlog
            if queued > max_queue:  # behind: drop video until the next keyframe
                gate.skip_to_key = True
                if gate.behind_since < 0:
                    gate.behind_since = now
                gate.dropped += 1
                continue
            if gate.skip_to_key:
                if not packet.keyframe or queued > max_queue // 2:
                    gate.dropped += 1
                    continue
                gate.skip_to_key = False
                gate.behind_since = -1.0
        elif plain_audio and (gate.paused or not gate.audio):
            continue
        else:
            queued = outbox.last_backlog
        if queued > 2 * max_queue:
            gate.closed = True
            gate.kicked = KICK_QUEUE
            todo.append(gate)
            continue
        try:
            shape = (outbox.chunk_size, gate.stream_id)
            if shape == last_shape:
                data = last_data
            else:
                if shared is None:
                    shared = packet.shared = {}
                found = shared.get(shape)
                if found is None:
                    found = shared[shape] = gate.encode(type_id, packet.timestamp,
                                                        packet.payload, shape[1], shape[0])
                if not isinstance(found, bytes):
                    raise TypeError(f"an encoding must be bytes, not {type(found).__name__}")
                data = found
                last_shape, last_data = shape, data
            if outbox.add(data):
                todo.append(outbox)
        except Exception as exc:  # noqa: BLE001 - a bug: it costs this player only
            # (its owner logs it)
            last_shape = None
            gate.closed = True
            gate.kicked = KICK_ERROR
            gate.error = exc
            todo.append(gate)
            continue
        gate.bytes_sent += len(data)
        gate.messages_sent += 1
    return todo


class Packet:
    """One message of a publication, as every subscriber gets it.

    ``type_id`` is 8 (audio), 9 (video) or 18 (AMF0 data); ``header`` is
    True for what a late joiner needs (sequence headers, video Metadata,
    audio MultichannelConfig, data messages: never dropped), and
    ``headers`` names each such header it carries as ``(kind, track id,
    header kind)`` (several for a multitrack message); ``keyframe`` is True
    for a keyframe of the primary video track (track 0: the GOP cache and
    players start there); ``metadata`` is the decoded dict of an
    ``onMetaData``.  ``shared`` (None until a subscriber needs it) holds
    forms derived once for many subscribers (an RTMP player's chunk
    encoding, by chunk size and stream id).
    """

    __slots__ = ("header", "headers", "keyframe", "metadata", "payload", "shared", "timestamp",
                 "type_id")

    def __init__(self, type_id: int, timestamp: int, payload: bytes, header: bool = False,
                 keyframe: bool = False, metadata: dict[str, Any] | None = None,
                 headers: tuple[HeaderKey, ...] = ()) -> None:
        self.type_id = type_id
        self.timestamp = timestamp
        self.payload = payload
        self.header = bool(header)
        self.headers = tuple(headers)
        self.keyframe = bool(keyframe)
        self.metadata = metadata
        self.shared: dict[Any, bytes] | None = None

    @classmethod
    def media(cls, type_id: int, timestamp: int, payload: bytes) -> Packet:
        """An audio or video packet, classified per track (:func:`~rtmpx.media.classify`)."""
        tracks = classify(type_id, payload)
        if len(tracks) == 1:  # legacy and single-track: the usual case
            t = tracks[0]
            if t.header:
                return cls(type_id, timestamp, payload, True, False, None,
                           ((t.kind, t.track_id, t.header),))
            return cls(type_id, timestamp, payload, False,
                       type_id == VIDEO and t.keyframe and t.track_id == PRIMARY_TRACK)
        headers = tuple((t.kind, t.track_id, t.header) for t in tracks if t.header)
        key = type_id == VIDEO and not headers and any(
            t.keyframe and t.track_id == PRIMARY_TRACK for t in tracks)
        return cls(type_id, timestamp, payload, bool(headers), key, None, headers)

    def __repr__(self) -> str:
        return f"<Packet type={self.type_id} ts={self.timestamp} {len(self.payload)} bytes>"


class _Budget(Protocol):
    gop: int

    def room_for(self, size: int) -> bool: ...


class GopCache:
    """The media since the latest keyframe of the primary video track, for
    late joiners: at most ``max_bytes`` (each packet charged its payload and
    :data:`PACKET_OVERHEAD`) and ``max_entries`` packets, charged to
    ``budget.gop`` (a :class:`rtmpx.server.limits.MemoryBudget`).  A GOP
    that outgrows a bound is dropped: late joiners wait for the next
    keyframe."""

    __slots__ = ("budget", "bytes", "max_bytes", "max_entries", "packets", "valid")

    def __init__(self, max_bytes: int, max_entries: int, budget: _Budget) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.budget = budget
        self.packets: list[Packet] = []
        self.bytes = 0
        self.valid = False   # since a keyframe: what follows is worth keeping

    def drop(self) -> None:
        """Forget the cached packets until the next keyframe."""
        self.packets.clear()
        self.budget.gop -= self.bytes
        self.bytes = 0
        self.valid = False

    def add(self, packet: Packet) -> None:
        """Keep an audio or video packet that is not a header."""
        if packet.keyframe:
            self.drop()
            self.valid = True
        if not self.valid:
            return
        size = len(packet.payload) + PACKET_OVERHEAD
        if (self.bytes + size > self.max_bytes or len(self.packets) >= self.max_entries
                or not self.budget.room_for(size)):
            self.drop()  # too long a GOP to keep
            return
        self.bytes += size
        self.budget.gop += size
        self.packets.append(packet)


class _Message(Protocol):
    @property
    def type_id(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def payload(self) -> bytes: ...


def relay(messages: Sequence[_Message], gop: GopCache, gates: Sequence[Gate], now: float,
          safely: Callable[[Callable[[], None]], None],
          keep_header: Callable[[Packet], None]) -> int:
    """A publisher's audio and video messages, in order: each made a
    :class:`Packet`, kept in ``gop`` or, for a header, given to
    ``keep_header``, then delivered to ``gates``; ``safely(item.notify)`` is
    called for what :func:`deliver` returns, as it returns it.  Returns the
    payload bytes."""
    total = 0
    for m in messages:
        payload = m.payload
        total += len(payload)
        packet = Packet.media(m.type_id, m.timestamp, payload)
        if packet.header:
            keep_header(packet)
        else:
            gop.add(packet)
        if gates:
            for item in deliver(packet, gates, now):
                safely(item.notify)
    return total
