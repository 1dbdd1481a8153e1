# cython: language_level=3
"""Compiled fan-out: one media message to many RTMP players.

The compiled twin of :mod:`rtmpx._fanout_py` (same API, same decisions;
that module's docstring states the rule).  :func:`deliver` runs the loop
over a channel's players in C: per player it reads a few C fields, asks
the transport for its backlog (one C-level method call) and appends the
shared bytes to the session's output list; Python runs only for what it
returns (a connection to flush, a player to disconnect).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append

from rtmpx.media import AUDIO as _AUDIO_KIND
from rtmpx.media import HEADER_METADATA, HEADER_SEQUENCE, PRIMARY_TRACK, classify
from rtmpx.media import VIDEO as _VIDEO_KIND

__all__ = ["DUE", "FLUSH", "IDLE", "KICK_ERROR", "KICK_QUEUE", "PACKET_OVERHEAD", "Gate",
           "GopCache", "Outbox", "Packet", "deliver", "relay"]

PACKET_OVERHEAD = 200
cdef Py_ssize_t OVERHEAD = PACKET_OVERHEAD

# the headers tuples of the usual header packets (as Packet.media makes them)
cdef tuple V_SEQUENCE = ((_VIDEO_KIND, PRIMARY_TRACK, HEADER_SEQUENCE),)
cdef tuple V_METADATA = ((_VIDEO_KIND, PRIMARY_TRACK, HEADER_METADATA),)
cdef tuple A_SEQUENCE = ((_AUDIO_KIND, PRIMARY_TRACK, HEADER_SEQUENCE),)
cdef tuple NO_HEADERS = ()

cdef enum:
    AUDIO = 8
    VIDEO = 9
    S_IDLE = 0
    S_DUE = 1
    S_FLUSH = 2

IDLE = 0
DUE = 1
FLUSH = 2
KICK_QUEUE = "queue"
KICK_ERROR = "error"



cdef class Packet:
    """One message of a publication (see :class:`rtmpx._fanout_py.Packet`)."""

    cdef public int type_id
    cdef public object timestamp
    cdef public object payload
    cdef public bint header
    cdef public tuple headers
    cdef public bint keyframe
    cdef public object metadata
    cdef public object shared

    def __init__(self, int type_id, timestamp, payload, bint header=False, bint keyframe=False,
                 metadata=None, headers=()):
        self.type_id = type_id
        self.timestamp = timestamp
        self.payload = payload
        self.header = header
        self.headers = tuple(headers)
        self.keyframe = keyframe
        self.metadata = metadata
        self.shared = None

    @classmethod
    def media(cls, int type_id, timestamp, payload):
        """An audio or video packet, classified per track (:func:`~rtmpx.media.classify`)."""
        return make_media(type_id, timestamp, payload)

    def __repr__(self):
        return f"<Packet type={self.type_id} ts={self.timestamp} {len(self.payload)} bytes>"


cdef inline Packet new_packet(int type_id, timestamp, payload, bint header, bint keyframe,
                              tuple headers):
    cdef Packet packet = Packet.__new__(Packet)
    packet.type_id = type_id
    packet.timestamp = timestamp
    packet.payload = payload
    packet.header = header
    packet.headers = headers
    packet.keyframe = keyframe
    packet.metadata = None
    packet.shared = None
    return packet


cdef Packet make_media(int type_id, timestamp, payload):
    """Packet.media: the usual messages (legacy AVC-like video, AAC, Enhanced
    single-track headers and frames with a plain FrameType) in C, the others
    through :func:`rtmpx.media.classify`; same results."""
    cdef const unsigned char* p
    cdef Py_ssize_t n
    cdef int b0, frame_type, codec_id, packet_type
    if type(payload) is bytes:
        p = <const unsigned char*>PyBytes_AS_STRING(payload)
        n = PyBytes_GET_SIZE(payload)
        if n == 0:
            return new_packet(type_id, timestamp, payload, False, False, NO_HEADERS)
        b0 = p[0]
        if type_id == VIDEO:
            frame_type = b0 >> 4
            if not b0 & 0x80:
                codec_id = b0 & 0x0F
                if codec_id == 7 or codec_id == 12 or codec_id == 13:  # AVC-like
                    if n < 5 or frame_type == 0 or frame_type > 4:
                        return new_packet(type_id, timestamp, payload, False, False, NO_HEADERS)
                    packet_type = p[1]
                    if packet_type == 1:
                        return new_packet(type_id, timestamp, payload, False,
                                          frame_type == 1 or frame_type == 4, NO_HEADERS)
                    if packet_type == 0:
                        return new_packet(type_id, timestamp, payload, True, False, V_SEQUENCE)
                    return new_packet(type_id, timestamp, payload, False, False, NO_HEADERS)
            else:
                packet_type = b0 & 0x0F
                frame_type &= 7
                if packet_type < 6:  # not multitrack
                    if n < 5 or (frame_type > 4 and packet_type != 4):
                        return new_packet(type_id, timestamp, payload, False, False, NO_HEADERS)
                    if packet_type == 0 or packet_type == 5:  # SequenceStart, MPEG2TS
                        return new_packet(type_id, timestamp, payload, True, False, V_SEQUENCE)
                    if packet_type == 4:  # Metadata
                        return new_packet(type_id, timestamp, payload, True, False, V_METADATA)
                    if packet_type == 2 or frame_type == 2 or frame_type == 3:
                        return new_packet(type_id, timestamp, payload, False, False, NO_HEADERS)
                    if packet_type == 3 and frame_type != 0:  # CodedFramesX
                        return new_packet(type_id, timestamp, payload, False, True, NO_HEADERS)
        elif type_id == AUDIO:
            if b0 >> 4 == 10:  # AAC
                if n < 2 or p[1] > 1:
                    return new_packet(type_id, timestamp, payload, False, False, NO_HEADERS)
                if p[1] == 0:
                    return new_packet(type_id, timestamp, payload, True, False, A_SEQUENCE)
                return new_packet(type_id, timestamp, payload, False, False, NO_HEADERS)
    return slow_media(type_id, timestamp, payload)


cdef Packet slow_media(int type_id, timestamp, payload):
    tracks = classify(type_id, payload)
    if len(tracks) == 1:
        t = tracks[0]
        if t.header:
            return new_packet(type_id, timestamp, payload, True, False,
                              ((t.kind, t.track_id, t.header),))
        return new_packet(type_id, timestamp, payload, False,
                          type_id == VIDEO and t.keyframe and t.track_id == PRIMARY_TRACK,
                          NO_HEADERS)
    headers = tuple([(t.kind, t.track_id, t.header) for t in tracks if t.header])
    key = type_id == VIDEO and not headers and any(
        [t.keyframe and t.track_id == PRIMARY_TRACK for t in tracks])
    return new_packet(type_id, timestamp, payload, bool(headers), key, headers)


cdef class GopCache:
    """The media since the latest keyframe (see :class:`rtmpx._fanout_py.GopCache`)."""

    cdef public Py_ssize_t max_bytes
    cdef public Py_ssize_t max_entries
    cdef public object budget
    cdef readonly list packets
    cdef readonly Py_ssize_t bytes
    cdef readonly bint valid

    def __init__(self, Py_ssize_t max_bytes, Py_ssize_t max_entries, budget):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.budget = budget
        self.packets = []
        self.bytes = 0
        self.valid = False

    cpdef drop(self):
        """Forget the cached packets until the next keyframe."""
        del self.packets[:]
        if self.bytes:
            self.budget.gop -= self.bytes
        self.bytes = 0
        self.valid = False

    cpdef add(self, Packet packet):
        """Keep an audio or video packet that is not a header."""
        cdef Py_ssize_t size
        if packet.keyframe:
            self.drop()
            self.valid = True
        if not self.valid:
            return
        size = len(packet.payload) + OVERHEAD
        if (self.bytes + size > self.max_bytes or len(self.packets) >= self.max_entries
                or not self.budget.room_for(size)):
            self.drop()
            return
        self.bytes += size
        self.budget.gop += size
        PyList_Append(self.packets, packet)


def relay(messages, GopCache gop not None, list gates not None, double now, safely,
          keep_header):
    """A publisher's audio and video messages through the GOP cache and the
    gates (see :func:`rtmpx._fanout_py.relay`)."""
    cdef Py_ssize_t total = 0
    cdef Packet packet
    for m in messages:
        payload = m.payload
        total += len(payload)
        packet = make_media(m.type_id, m.timestamp, payload)
        if packet.header:
            keep_header(packet)
        else:
            gop.add(packet)
        if gates:
            for item in deliver_c(packet, gates, now):
                safely(item.notify)
    return total


cdef class Outbox:
    """The media due to one connection (see :class:`rtmpx._fanout_py.Outbox`)."""

    cdef readonly object session
    cdef readonly list queue
    cdef readonly long long chunk_size
    cdef public Py_ssize_t merge_max
    cdef public object notify
    cdef object _transport
    cdef object _buffer_size  # the transport's get_write_buffer_size
    cdef public Py_ssize_t merged
    cdef public int state
    cdef readonly Py_ssize_t last_backlog

    def __init__(self, session, Py_ssize_t merge_max, notify):
        if merge_max < 0:
            raise ValueError("merge_max must be >= 0")
        queue = session.output
        if type(queue) is not list:
            raise TypeError("session.output must be a list")
        self.session = session
        self.queue = queue
        self.chunk_size = session.chunk_size
        self.merge_max = merge_max
        self.notify = notify
        self._transport = None
        self._buffer_size = None
        self.merged = 0
        self.state = S_IDLE
        self.last_backlog = 0

    @property
    def transport(self):
        """What tells the backlog (``get_write_buffer_size()``), or None."""
        return self._transport

    @transport.setter
    def transport(self, transport):
        self._buffer_size = None if transport is None else transport.get_write_buffer_size
        self._transport = transport

    cpdef Py_ssize_t backlog(self) except -1:
        """Bytes written to the transport that the peer has not taken yet."""
        if self._buffer_size is None:
            return 0
        return self._buffer_size()

    cpdef Py_ssize_t measure(self) except -1:
        """Read :meth:`backlog` into :attr:`last_backlog` (what the rule
        reads) and return it."""
        self.last_backlog = self.backlog()
        return self.last_backlog

    cpdef list take(self):
        """Everything queued for the peer (the session's output, which it
        leaves empty), in order; as :meth:`flushed` after."""
        cdef list chunks = self.queue[:]
        del self.queue[:]
        self.flushed()
        return chunks

    def flushed(self):
        """The queue was taken: nothing is merged any more (and the
        session's chunk size is read again)."""
        self.merged = 0
        self.state = S_IDLE
        self.chunk_size = self.session.chunk_size

    cpdef bint add(self, bytes data) except -1:
        """Append media bytes; True when :attr:`state` rose (call :attr:`notify`)."""
        PyList_Append(self.queue, data)
        self.merged += len(data)
        if self.state == S_FLUSH:
            return False
        if self.merged >= self.merge_max:
            self.state = S_FLUSH
            return True
        if self.state == S_IDLE:
            self.state = S_DUE
            return True
        return False


cdef class Gate:
    """One player of a channel (see :class:`rtmpx._fanout_py.Gate`)."""

    cdef readonly Outbox outbox
    cdef public long long stream_id
    cdef public Py_ssize_t max_queue
    cdef public object encode
    cdef public object notify
    cdef public bint audio
    cdef public bint video
    cdef public bint paused
    cdef public bint closed
    cdef public str kicked
    cdef public object error
    cdef public bint skip_to_key
    cdef public double behind_since
    cdef public long long bytes_sent
    cdef public long long messages_sent
    cdef public long long dropped

    def __init__(self, Outbox outbox not None, long long stream_id, Py_ssize_t max_queue,
                 encode, notify):
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
        self.error = None
        self.skip_to_key = True
        self.behind_since = -1.0
        self.bytes_sent = 0
        self.messages_sent = 0
        self.dropped = 0


def deliver(Packet packet not None, gates, double now):
    """Hand ``packet`` to every gate by the slow-player rule; returns the
    gates and outboxes whose ``notify()`` must be called, in order."""
    return deliver_c(packet, gates if type(gates) is list else list(gates), now)


cdef list deliver_c(Packet packet, list gate_list, double now):
    cdef list todo = []
    cdef int type_id = packet.type_id
    cdef bint header = packet.header
    cdef bint keyframe = packet.keyframe
    cdef bint plain_video = type_id == VIDEO and not header
    cdef bint plain_audio = type_id == AUDIO and not header
    cdef object shared = packet.shared
    cdef Gate gate
    cdef Outbox outbox
    cdef Py_ssize_t queued, max_queue
    cdef long long chunk_size, last_chunk_size = -1, last_stream_id = -1
    cdef bytes data = None
    cdef object found
    for item in gate_list:  # all or nothing: no gate is served if one is not a Gate
        if type(item) is not Gate:
            raise TypeError(f"not a Gate: {type(item).__name__}")
    for item in gate_list:
        gate = <Gate>item
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
                if not keyframe or queued > max_queue // 2:
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
            chunk_size = outbox.chunk_size
            if chunk_size != last_chunk_size or gate.stream_id != last_stream_id:
                shape = (chunk_size, gate.stream_id)
                if shared is None:
                    shared = packet.shared = {}
                found = shared.get(shape)
                if found is None:
                    found = gate.encode(type_id, packet.timestamp, packet.payload,
                                        gate.stream_id, chunk_size)
                    shared[shape] = found
                data = <bytes?>found
                last_chunk_size = chunk_size
                last_stream_id = gate.stream_id
            if outbox.add(data):
                todo.append(outbox)
        except Exception as exc:  # a bug: it costs this player only (its owner logs it)
            last_chunk_size = -1
            gate.closed = True
            gate.kicked = KICK_ERROR
            gate.error = exc
            todo.append(gate)
            continue
        gate.bytes_sent += len(data)
        gate.messages_sent += 1
    return todo
