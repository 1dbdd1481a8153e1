# cython: language_level=3
"""Compiled fan-out: one media message to many RTMP players.

The compiled twin of :mod:`rtmpx._fanout_py` (same API, same decisions;
that module's docstring states the rule).  :func:`deliver` runs the loop
over a channel's players in C: per player it reads a few C fields, asks
the transport for its backlog (one C-level method call) and appends the
shared bytes to the session's output list; Python runs only for what it
returns (a connection to flush, a player to disconnect).
"""

from cpython.list cimport PyList_Append

__all__ = ["DUE", "FLUSH", "IDLE", "KICK_QUEUE", "Gate", "Outbox", "deliver"]

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
        self.skip_to_key = True
        self.behind_since = -1.0
        self.bytes_sent = 0
        self.messages_sent = 0
        self.dropped = 0


def deliver(packet, gates, double now):
    """Hand ``packet`` to every gate by the slow-player rule; returns the
    gates and outboxes whose ``notify()`` must be called, in order."""
    cdef list todo = []
    cdef list gate_list = gates if type(gates) is list else list(gates)
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
    for item in gate_list:
        gate = <Gate?>item
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
        gate.bytes_sent += len(data)
        gate.messages_sent += 1
    return todo
