"""Low-Latency HLS (RFC 8216bis) from one live RTMP stream, sans-I/O.

::

    >>> from rtmpx.hls import HLSConfig, Packager
    >>> hls = Packager(HLSConfig(prefix="name/"))
    >>> hls.feed(9, 0, video_sequence_header)      # type id, timestamp (ms), payload
    >>> hls.feed(8, 0, audio_sequence_header)
    >>> hls.feed(9, 0, keyframe); ...               # every audio/video message, in order
    >>> hls.playlist()                              # the media playlist text
    >>> hls.part(0, 0), hls.segment(0), hls.init(0)  # bytes, or None
    >>> hls.end()                                   # the publisher left: EXT-X-ENDLIST

The packager is fed the messages of one stream in order and keeps a
window of CMAF segments (:mod:`rtmpx.fmp4`), each made of parts: one
``moof`` + ``mdat`` per part with the samples of every track in its time
range; a segment's bytes are its parts' bytes, concatenated.  It does no
I/O and reads no clock: time is the RTMP timestamps'.  A server serves
``playlist()`` and the lookups, and holds blocking playlist reloads
(``_HLS_msn``/``_HLS_part``) until :meth:`Packager.playlist_ready` says
so, waking on each change of :attr:`Packager.version`.

URIs are relative: ``{prefix}init.mp4`` (then ``init-1.mp4``,
``init-2.mp4``, ... after discontinuities), ``{prefix}{msn}.m4s`` for a
segment, ``{prefix}{msn}.{part}.m4s`` for a part (with ``prefix="name/"``
and a playlist at ``/app/name.m3u8``: ``/app/name/12.3.m4s``).

Tracks: at most one video track (H.264, HEVC, AV1, VP9) and one audio
track (AAC, Opus), from the sequence headers (the primary track, trackId
0, of multitrack messages; other codecs and tracks are ignored).  The
primary track is the video one if there is one, else the audio one.
Data messages (type 18) and other types are ignored.

Cutting:

* Segments start at a video keyframe once at least
  :attr:`HLSConfig.segment_target` has elapsed since the segment started;
  audio-only streams are cut by time.  Video before the first keyframe
  (and audio before it) is dropped.
* Parts are cut on sample boundaries so that no part of the primary track
  lasts more than :attr:`HLSConfig.part_target` (default 0.5 s: a 1.5 s
  PART-HOLD-BACK, 4 parts a 2 s segment; shorter parts cost more requests
  and moof overhead for little gain, Apple's 1 s doubles the latency).  A
  part is closed as soon as the next sample would not fit (its duration
  guessed from the last one), so it does not wait for a sample more than
  needed.  The other track's samples go in the part whose time range they
  start in, or the next one if they arrive late.  Parts that start with a
  keyframe are ``INDEPENDENT=YES`` (every audio-only part is).
* A sample's duration is the next sample's decode time minus its own (so
  a sample is packaged when the next one of its track arrives); at
  :meth:`Packager.end` the last ones get the previous duration.
* Long GOPs: ``EXT-X-TARGETDURATION`` is fixed for the stream, the ceiling
  of :attr:`HLSConfig.max_segment_duration` (default twice the segment
  target); a segment that could otherwise overrun it (its EXTINF rounded
  above the target duration) is closed without waiting for a keyframe, and
  the next segment does not start INDEPENDENT: players start at the next
  keyframe.

Timeline: decode times are the RTMP timestamps, from 0 at the first
message (video: 90 kHz; audio: the sample rate).  Per track the times
must increase: a timestamp going backwards (or standing still, for video)
or jumping ahead by more than :attr:`HLSConfig.max_gap_ms` is taken as a
break, and the stream's offset is moved so that the sample follows the
previous one by the last duration (the other track, if its timestamps
broke the same way, follows).  Audio is continuous: each AAC frame lasts
1024 samples, each Opus packet what its TOC byte says, and the next
frame's decode time is the previous one plus that, resynchronised to the
timestamp only when they differ by more than :attr:`HLSConfig.resync_ms`
(never backwards past the previous frame): no drift, no gap between
parts.

Codec changes: a sequence header that differs from the one in use starts
a new period at the next media message: the samples waiting are packaged
(the last ones with a guessed duration), the segment is closed, and the
next segment has ``EXT-X-DISCONTINUITY`` and a new ``EXT-X-MAP``
(``init-N.mp4``); video waits for a keyframe.  A repeated identical
header changes nothing.  A header of a kind the period does not have (audio
arriving after video started) also starts a new period, with both tracks.

Security (all bounded, hostile input is expected):

* :attr:`HLSConfig.max_segments` complete segments are kept, and at most
  :attr:`HLSConfig.max_bytes` for everything held (segments, parts, the
  samples waiting): the oldest segments are dropped first.
* A sample larger than :attr:`HLSConfig.max_part_bytes` is dropped (video
  then waits for the next keyframe); a part is closed when it reaches that
  many bytes or :attr:`HLSConfig.max_part_samples` samples; a segment is
  closed when it reaches :attr:`HLSConfig.max_segment_bytes` or
  :data:`MAX_PARTS_PER_SEGMENT` parts.  Audio running more than a part's
  limits ahead of a stalled video track is dropped, oldest first.
* A publisher that never sends a keyframe makes nothing: its video is
  dropped while waiting for one, and so is its audio (memory stays
  constant).  After a keyframe, segments are closed at the maximum
  duration without one.
* A payload that does not parse, a malformed sequence header, a coded
  frame of a codec without a header: the message is skipped (counted in
  :attr:`Packager.skipped`); :meth:`Packager.feed` raises nothing for any
  payload.  Feeding after :meth:`Packager.end` is a misuse
  (:class:`~rtmpx.errors.InvalidStateError`).

Limits: a single sample longer than the part target (video under
``1 / part_target`` frames a second) makes a part longer than
``PART-TARGET``, which cannot be helped.  Not done:
``EXT-X-PROGRAM-DATE-TIME`` (no clock here), delta updates (``_HLS_skip``),
multivariant playlists, more than one track of a kind.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from . import fmp4
from .errors import InvalidStateError, ProtocolError
from .fmp4 import AudioTrack, Sample, Track, VideoTrack
from .media import Buffer, Frame, parse_audio, parse_video

__all__ = [
    "MAX_PARTS_PER_SEGMENT",
    "MAX_SEGMENT_SECONDS",
    "PLAYLIST_VERSION",
    "Availability",
    "HLSConfig",
    "Packager",
    "PartInfo",
]

#: ``EXT-X-VERSION``: EXT-X-MAP in a playlist without I-frames needs 6; no
#: tag used here (EXT-X-PART, EXT-X-PRELOAD-HINT, ...) needs more (9 is for
#: EXT-X-SKIP, not written).
PLAYLIST_VERSION: Final = 6
#: The longest segment (or part) an :class:`HLSConfig` may ask for, seconds.
MAX_SEGMENT_SECONDS: Final = 60.0
#: A segment is closed when it has this many parts, whatever its duration.
MAX_PARTS_PER_SEGMENT: Final = 64

_AUDIO_TYPE: Final = 8
_VIDEO_TYPE: Final = 9
_VIDEO: Final = "video"
_AUDIO: Final = "audio"
_EPS: Final = 1e-6
_DEFAULT_VIDEO_MS: Final = 40  # duration of a last/lone video sample with nothing better known


class PartInfo(NamedTuple):
    """One part kept by a :class:`Packager` (:meth:`Packager.parts`): its
    segment's media sequence number, its number there, the init segment it
    needs (:meth:`Packager.init`), whether it starts with a keyframe, and
    its bytes (one ``moof`` + ``mdat``)."""

    msn: int
    part: int
    init: int
    independent: bool
    data: bytes


class Availability(enum.Enum):
    """The answer of :meth:`Packager.playlist_ready` and
    :meth:`Packager.media_ready`: serve it now (``READY``), hold the request
    until :attr:`Packager.version` changes and ask again (``WAIT``), or it
    will never come (``INVALID``: 400 for a playlist, 404 for media)."""

    READY = "ready"
    WAIT = "wait"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class HLSConfig:
    """The settings of a :class:`Packager`; the ``max_*`` ones are security
    settings (memory a hostile publisher can make it hold).

    * ``prefix``: put before every URI of the playlist (``"name/"``).
    * ``segment_target``: seconds a segment lasts at least (video: until
      the next keyframe after that).
    * ``part_target``: seconds a part lasts at most (``PART-TARGET``).
    * ``max_segment_duration``: seconds a segment may last without a
      keyframe (``None``: twice ``segment_target``);
      ``EXT-X-TARGETDURATION`` is its ceiling.  A segment is closed at the
      last part boundary that keeps its EXTINF below the target duration
      + 0.5 (what the spec allows: EXTINF rounded to the nearest integer
      <= target duration), so that a GOP of exactly this length still
      cuts at its keyframe.
    * ``max_segments``: complete segments kept (at least 2).
    * ``max_bytes``: bytes held in all: at least ``max_segment_bytes +
      4 * max_part_bytes``.
    * ``max_segment_bytes``, ``max_part_bytes``: bytes of one segment, of
      one part (and of one sample); ``max_part_samples``: samples a part.
    * ``resync_ms``: audio timeline drift from the timestamps tolerated.
    * ``max_gap_ms``: a timestamp jump larger than this is a break.
    """

    prefix: str = ""
    segment_target: float = 2.0
    part_target: float = 0.5
    max_segment_duration: float | None = None
    max_segments: int = 7
    max_bytes: int = 64 * 1024 * 1024
    max_segment_bytes: int = 16 * 1024 * 1024
    max_part_bytes: int = 4 * 1024 * 1024
    max_part_samples: int = 1024
    resync_ms: int = 100
    max_gap_ms: int = 10_000

    def __post_init__(self) -> None:
        durations = (self.segment_target, self.part_target, self.max_segment_duration or 1.0)
        if not all(math.isfinite(d) for d in durations) or \
                max(durations) > MAX_SEGMENT_SECONDS:
            raise ValueError(f"durations must be finite and at most {MAX_SEGMENT_SECONDS} s")
        if not 0 < self.part_target <= self.segment_target:
            raise ValueError("need 0 < part_target <= segment_target")
        if self.max_segment_duration is not None and \
                self.max_segment_duration < self.segment_target:
            raise ValueError("max_segment_duration must be at least segment_target")
        if self.max_segments < 2:
            raise ValueError("max_segments must be at least 2")
        if min(self.max_part_bytes, self.max_part_samples, self.resync_ms, self.max_gap_ms) < 1:
            raise ValueError("limits must be positive")
        if self.max_segment_bytes < self.max_part_bytes:
            raise ValueError("max_segment_bytes must be at least max_part_bytes")
        if self.max_bytes < self.max_segment_bytes + 4 * self.max_part_bytes:
            raise ValueError("max_bytes must be at least max_segment_bytes + 4 * max_part_bytes")
        if any(c in self.prefix for c in '"\r\n'):
            raise ValueError("prefix must not contain quotes or line breaks")

    @property
    def segment_limit(self) -> float:
        """The longest a segment may last (seconds)."""
        if self.max_segment_duration is None:
            return 2 * self.segment_target
        return self.max_segment_duration

    @property
    def target_duration(self) -> int:
        """``EXT-X-TARGETDURATION``: whole seconds, fixed for the stream."""
        return max(1, math.ceil(self.segment_limit - _EPS))


# -- internal state ---------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    data: bytes
    duration: float
    independent: bool


@dataclass(slots=True)
class _Segment:
    msn: int
    init: int
    discontinuity: bool
    parts: list[_Part] = field(default_factory=list)
    duration: float = 0.0
    size: int = 0
    complete: bool = False


@dataclass(slots=True)
class _Pending:
    """A sample whose duration is not known yet."""

    dts: int
    cto: int
    key: bool
    data: memoryview
    frame_samples: int  # audio: samples this frame lasts (0 for video)


class _TrackState:
    __slots__ = ("bytes", "last_duration", "need_key", "next_dts", "pending", "ready",
                 "started", "track")

    def __init__(self, track: Track) -> None:
        self.track = track
        self.pending: _Pending | None = None
        self.ready: list[Sample] = []  # complete samples not packaged yet
        self.bytes = 0  # of ready and pending
        self.last_duration = 0
        self.next_dts: int | None = None  # audio: where the next frame goes
        self.need_key = isinstance(track, VideoTrack)
        self.started = False  # has packaged (or is about to) a first sample


def _num(value: float) -> str:
    text = f"{value:.5f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _coded(frame: Frame) -> tuple[str, memoryview, bool, int] | None:
    """(codec, data, keyframe, composition time) of a coded frame's
    primary track, or None for anything else (headers, ends, metadata,
    commands, a payload that does not parse)."""
    if frame.is_sequence_header or frame.is_end_of_sequence:
        return None
    if frame.kind == _VIDEO:
        if frame.packet_type != 1 and frame.packet_type != 3 or frame.is_command:
            return None
    elif frame.packet_type != 1:
        return None
    if not frame.is_multitrack:
        return frame.codec, frame.data, frame.is_keyframe, frame.composition_time
    for track in frame.tracks():
        if track.track_id == 0:
            return track.codec, track.data, track.is_keyframe, track.composition_time
    return None


class Packager:
    """The LL-HLS packager of one live stream (see the module doc)."""

    def __init__(self, config: HLSConfig | None = None) -> None:
        self.config = config if config is not None else HLSConfig()
        #: Messages skipped because they did not parse or could not be used.
        self.skipped = 0
        self._version = 0
        self._ended = False
        self._headers: dict[str, Track] = {}
        self._period: tuple[Track, ...] = ()
        self._states: dict[str, _TrackState] = {}
        self._primary: _TrackState | None = None
        self._inits: dict[int, bytes] = {}
        self._init_index = -1
        self._segments: deque[_Segment] = deque()  # complete, oldest first
        self._current: _Segment | None = None
        self._next_msn = 0
        self._last_complete = -1  # msn of the last segment closed
        self._discontinuity_sequence = 0
        self._discontinuity_next = False
        self._sequence = 1  # mfhd sequence number
        self._stored = 0  # bytes of every kept part
        self._offset: int | None = None  # stream time = timestamp + offset (ms)
        self._last_ms: dict[str, int] = {}
        self._last_ms_step: dict[str, int] = {}
        self._segment_start: int | None = None  # primary ticks of the current segment

    # -- properties -------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Increases each time the playlist changes: wait on it."""
        return self._version

    @property
    def ended(self) -> bool:
        """:meth:`end` was called: the playlist has ``EXT-X-ENDLIST``."""
        return self._ended

    @property
    def tracks(self) -> tuple[Track, ...]:
        """The tracks of the current init segment (video first)."""
        return self._period

    @property
    def codecs(self) -> str:
        """The RFC 6381 ``CODECS`` of the current tracks (``"avc1.64001f,mp4a.40.2"``)."""
        return ",".join(t.codecs for t in self._period)

    @property
    def held_bytes(self) -> int:
        """Bytes held: kept parts and samples waiting to be packaged."""
        return self._stored + sum(s.bytes for s in self._states.values())

    @property
    def segment_count(self) -> int:
        """Complete segments kept."""
        return len(self._segments)

    @property
    def preload_hint(self) -> tuple[int, int] | None:
        """(msn, part) of the next part to come, or None once ended."""
        if self._ended:
            return None
        if self._current is not None:
            return self._current.msn, len(self._current.parts)
        return self._next_msn, 0

    # -- input ------------------------------------------------------------------------

    def feed(self, type_id: int, timestamp: int, payload: Buffer) -> None:
        """One RTMP message of the stream: audio (8) and video (9) are used,
        other types ignored; ``timestamp`` in ms.  A payload that cannot be
        used is skipped (:attr:`skipped`), never raised about.  The payload
        is kept by reference until its samples are packaged: pass ``bytes``
        (or a buffer that is not reused)."""
        if self._ended:
            raise InvalidStateError("feed() after end()")
        if type_id == _VIDEO_TYPE:
            frame = parse_video(timestamp, payload)
            kind = _VIDEO
        elif type_id == _AUDIO_TYPE:
            frame = parse_audio(timestamp, payload)
            kind = _AUDIO
        else:
            return
        if frame.codec == "unknown" and frame.fourcc is None:
            self.skipped += 1
            return
        if frame.is_sequence_header:
            self._header(kind, payload)
            return
        coded = _coded(frame)
        if coded is None:
            return
        codec, data, key, ct = coded
        header = self._headers.get(kind)
        if header is None and codec == "opus" and len(data):
            header = fmp4.opus_track(2 if data[0] & 0x04 else 1)
            self._headers[kind] = header
        if header is None or header.codec != codec or not len(data):
            self.skipped += 1
            return
        if self._period != self._wanted():
            self._new_period()
        state = self._states.get(kind)
        if state is None:  # pragma: no cover - the period has every header
            return
        self._add(state, kind, timestamp & 0xFFFFFFFF, data, key, ct)

    def end(self) -> None:
        """The stream ended: package what waits, close the segment, and
        write ``EXT-X-ENDLIST`` from now on."""
        if self._ended:
            return
        self._finish_period()
        self._ended = True
        self._version += 1

    # -- headers and periods --------------------------------------------------------------

    def _header(self, kind: str, payload: Buffer) -> None:
        try:
            if kind == _VIDEO:
                track: Track = fmp4.video_track(payload)
            else:
                track = fmp4.audio_track(payload)
        except ProtocolError:
            self.skipped += 1
            return
        self._headers[kind] = track

    def _wanted(self) -> tuple[Track, ...]:
        return tuple(self._headers[k] for k in (_VIDEO, _AUDIO) if k in self._headers)

    def _new_period(self) -> None:
        if self._period:
            self._finish_period()
        if self._next_msn:
            self._discontinuity_next = True
        self._period = self._wanted()
        self._init_index += 1
        self._inits[self._init_index] = fmp4.init_segment(self._period)
        self._states = {t.kind: _TrackState(t) for t in self._period}
        self._primary = self._states.get(_VIDEO) or self._states.get(_AUDIO)
        self._segment_start = None
        self._drop_unused_inits()
        self._version += 1

    def _finish_period(self) -> None:
        """Package every waiting sample and close the segment."""
        primary = self._primary
        for state in self._states.values():
            if state.pending is not None:
                p = state.pending
                duration = p.frame_samples or state.last_duration or (
                    _DEFAULT_VIDEO_MS * fmp4.VIDEO_TIMESCALE // 1000)
                sample = self._complete(state, duration)
                if state is primary:
                    self._append_primary(sample)
                else:
                    self._append_secondary(state, sample)
        self._flush_part(close=True, final=True)
        for state in self._states.values():
            state.ready.clear()
            state.bytes = 0

    # -- timeline ---------------------------------------------------------------------

    def _stream_ms(self, kind: str, state: _TrackState, timestamp: int) -> int:
        if self._offset is None:
            self._offset = -timestamp
        t = timestamp + self._offset
        last = self._last_ms.get(kind)
        if last is None:
            t = max(t, 0)
        else:
            delta = t - last
            backwards = delta <= 0 if kind == _VIDEO else delta < 0
            if backwards or delta > self.config.max_gap_ms:
                step = max(1, self._last_ms_step.get(kind, _DEFAULT_VIDEO_MS))
                fixed = last + step
                self._offset += fixed - t
                t = fixed
            else:
                self._last_ms_step[kind] = delta or self._last_ms_step.get(kind, 0)
        self._last_ms[kind] = t
        return t

    def _add(self, state: _TrackState, kind: str, timestamp: int, data: memoryview,
             key: bool, ct: int) -> None:
        cfg = self.config
        primary = self._primary
        assert primary is not None
        if len(data) > cfg.max_part_bytes:
            self.skipped += 1
            if kind == _VIDEO:
                state.need_key = True  # the frames after it need it
            return
        if kind == _VIDEO:
            if state.need_key:
                if not key:
                    return
                state.need_key = False
        elif primary is not state and not primary.started:
            return  # audio before the first video keyframe
        t = self._stream_ms(kind, state, timestamp)
        track = state.track
        if isinstance(track, AudioTrack):
            frames = track.frame_samples
            if track.codec == "opus":
                frames = fmp4.opus_frame_samples(data) or frames
            rate = track.sample_rate
            target = t * rate // 1000
            expected = state.next_dts
            if expected is None or abs(target - expected) * 1000 > cfg.resync_ms * rate:
                dts = target
                if state.pending is not None:
                    dts = max(dts, state.pending.dts + 1)
            else:
                dts = expected
            state.next_dts = dts + frames
            new = _Pending(dts, 0, True, data, frames)
        else:
            new = _Pending(t * 90, ct * 90, key, data, 0)
        state.started = True
        if state.pending is not None:
            sample = self._complete(state, new.dts - state.pending.dts)
            if state is primary:
                self._append_primary(sample)
            else:
                self._append_secondary(state, sample)
        if (state is primary and kind == _VIDEO and key and self._segment_start is not None
                and (new.dts - self._segment_start) / track.timescale
                >= cfg.segment_target - _EPS):
            self._flush_part(close=True)
        state.pending = new
        state.bytes += len(data)
        self._enforce_bytes()

    def _complete(self, state: _TrackState, duration: int) -> Sample:
        p = state.pending
        assert p is not None
        state.pending = None
        duration = min(max(duration, 1), 0xFFFFFFFF)
        state.last_duration = duration
        cto = max(-0x80000000, min(p.cto, 0x7FFFFFFF))
        return Sample(p.dts, duration, p.data, p.key, cto)

    # -- parts and segments -----------------------------------------------------------

    def _append_primary(self, sample: Sample) -> None:
        """A complete sample of the primary track (its bytes are already
        counted in the state, as the pending sample)."""
        cfg = self.config
        state = self._primary
        assert state is not None
        scale = state.track.timescale
        end = sample.decode_time + sample.duration
        ready = state.ready  # the same list after a flush (it is cleared, not replaced)
        if ready:
            start = ready[0].decode_time
            if ((end - start) / scale > cfg.part_target + _EPS
                    or state.bytes > cfg.max_part_bytes):
                self._flush_part()
        if self._segment_start is None:
            self._segment_start = sample.decode_time
        ready.append(sample)
        start = ready[0].decode_time
        if ((end + sample.duration - start) / scale > cfg.part_target + _EPS
                or state.bytes >= cfg.max_part_bytes or len(ready) >= cfg.max_part_samples):
            self._flush_part()

    def _append_secondary(self, state: _TrackState, sample: Sample) -> None:
        cfg = self.config
        state.ready.append(sample)
        # a stalled primary track: do not let this one run ahead without bound
        while len(state.ready) > cfg.max_part_samples or state.bytes > cfg.max_part_bytes:
            dropped = state.ready.pop(0)
            state.bytes -= memoryview(dropped.data).nbytes
            self.skipped += 1
            if not state.ready:
                break

    def _flush_part(self, close: bool = False, final: bool = False) -> None:
        """Package the ready samples of the primary track, and those of the
        other track that start before its end (all of them if ``final``),
        as the next part; close the segment if asked or if it is due."""
        cfg = self.config
        primary = self._primary
        if primary is None:
            return
        runs: dict[int, list[Sample]] = {}
        duration = 0.0
        independent = True
        end_num = end_den = 0
        if primary.ready:
            p_ready = list(primary.ready)
            runs[primary.track.track_id] = p_ready
            last = p_ready[-1]
            end_num = last.decode_time + last.duration
            end_den = primary.track.timescale
            duration = (end_num - p_ready[0].decode_time) / end_den
            independent = p_ready[0].keyframe
        for state in self._states.values():
            if state is primary or not state.ready:
                continue
            scale = state.track.timescale
            if final:
                take = len(state.ready)
            else:
                take = 0
                for s in state.ready:
                    if not end_den or s.decode_time * end_den >= end_num * scale:
                        break
                    take += 1
            if take:
                run = state.ready[:take]
                del state.ready[:take]
                runs[state.track.track_id] = run
                if not end_den:
                    duration = (run[-1].decode_time + run[-1].duration
                                - run[0].decode_time) / scale
        if runs:
            ordered = {t.track_id: runs[t.track_id] for t in self._period if t.track_id in runs}
            data = fmp4.fragment(self._sequence, ordered)
            self._sequence = (self._sequence + 1) & 0xFFFFFFFF or 1
            for state in self._states.values():
                taken = runs.get(state.track.track_id)
                if taken is not None:
                    state.bytes -= sum(memoryview(s.data).nbytes for s in taken)
            primary.ready.clear()
            seg = self._current
            if seg is None:
                seg = _Segment(self._next_msn, self._init_index, self._discontinuity_next)
                self._next_msn += 1
                self._discontinuity_next = False
                self._current = seg
            seg.parts.append(_Part(data, duration, independent))
            seg.duration += duration
            seg.size += len(data)
            self._stored += len(data)
            self._version += 1
            if primary.track.kind == _AUDIO and \
                    seg.duration >= cfg.segment_target - cfg.part_target / 2:
                close = True
            if (seg.duration + cfg.part_target > cfg.target_duration + 0.5 - _EPS
                    or seg.size >= cfg.max_segment_bytes
                    or len(seg.parts) >= MAX_PARTS_PER_SEGMENT):
                close = True
        if close:
            self._close_segment()
        self._evict()

    def _close_segment(self) -> None:
        seg = self._current
        self._segment_start = None
        if seg is None:
            return
        seg.complete = True
        self._last_complete = seg.msn
        self._current = None
        self._segments.append(seg)
        self._version += 1

    def _enforce_bytes(self) -> None:
        if self.held_bytes > self.config.max_bytes:
            self._evict()

    def _evict(self) -> None:
        cfg = self.config
        segments = self._segments
        changed = False
        while segments and (len(segments) > cfg.max_segments
                            or self.held_bytes > cfg.max_bytes):
            old = segments.popleft()
            self._stored -= old.size
            if old.discontinuity:
                self._discontinuity_sequence += 1
            changed = True
        if changed:
            self._drop_unused_inits()
            self._version += 1

    def _drop_unused_inits(self) -> None:
        oldest = self._init_index
        if self._segments:
            oldest = self._segments[0].init
        elif self._current is not None:
            oldest = self._current.init
        for index in [i for i in self._inits if i < oldest]:
            del self._inits[index]

    # -- output -----------------------------------------------------------------------

    def _all_segments(self) -> Iterator[_Segment]:
        yield from self._segments
        if self._current is not None:
            yield self._current

    def _find(self, msn: int) -> _Segment | None:
        if self._current is not None and self._current.msn == msn:
            return self._current
        if self._segments:
            index = msn - self._segments[0].msn
            if 0 <= index < len(self._segments):
                return self._segments[index]
        return None

    def init_uri(self, index: int) -> str:
        """``{prefix}init.mp4`` for init 0, ``{prefix}init-N.mp4`` after."""
        name = "init.mp4" if index == 0 else f"init-{index}.mp4"
        return f"{self.config.prefix}{name}"

    def segment_uri(self, msn: int) -> str:
        """``{prefix}{msn}.m4s``."""
        return f"{self.config.prefix}{msn}.m4s"

    def part_uri(self, msn: int, part: int) -> str:
        """``{prefix}{msn}.{part}.m4s``."""
        return f"{self.config.prefix}{msn}.{part}.m4s"

    def init(self, index: int) -> bytes | None:
        """Init segment ``index`` (0 is ``init.mp4``, N is ``init-N.mp4``)
        while a kept segment or the current period uses it."""
        return self._inits.get(index)

    def segment(self, msn: int) -> bytes | None:
        """A complete segment's bytes (its parts), or None."""
        seg = self._find(msn)
        if seg is None or not seg.complete:
            return None
        return b"".join(p.data for p in seg.parts)

    def part(self, msn: int, part: int) -> bytes | None:
        """A part's bytes (of a kept segment, complete or in progress), or None."""
        seg = self._find(msn)
        if seg is None or not 0 <= part < len(seg.parts):
            return None
        return seg.parts[part].data

    def parts(self) -> list[PartInfo]:
        """Every part kept (of complete segments and the one in progress),
        oldest first: what a live fMP4 stream sends in order."""
        return [PartInfo(seg.msn, n, seg.init, p.independent, p.data)
                for seg in self._all_segments() for n, p in enumerate(seg.parts)]

    def playlist_ready(self, msn: int, part: int | None = None) -> Availability:
        """Can a playlist request with ``_HLS_msn=msn`` (and ``_HLS_part=part``)
        be answered (RFC 8216bis 6.2.5.2)?  READY once the playlist has
        segment ``msn`` complete, or part ``part`` of it (or anything later),
        or the stream ended; INVALID (400) for a segment more than two
        ahead of the last complete one or a part more than the Advance Part
        Limit (3 s of parts, at least 3) ahead of the last part; else WAIT."""
        if msn < 0 or (part is not None and part < 0):
            return Availability.INVALID
        if self._ended:
            return Availability.READY
        last = self._last_complete
        if msn > last + 2:
            return Availability.INVALID
        if msn <= last:
            return Availability.READY
        if part is None:
            return Availability.WAIT
        cur = self._current
        per_segment = max(1, round(self.config.segment_target / self.config.part_target))
        if cur is not None and msn == cur.msn:
            if part < len(cur.parts):
                return Availability.READY
            ahead = part - len(cur.parts) + 1
        else:
            # the parts the current segment may still have are not counted:
            # it may end at any keyframe, and a false 400 is worse than a wait
            next_msn = cur.msn + 1 if cur is not None else self._next_msn
            ahead = part + 1 + per_segment * max(0, msn - next_msn)
        # the Advance Part Limit (RFC 8216bis 6.2.5.2): three seconds' worth
        # of parts for parts under a second, else three
        target = self.config.part_target
        limit = math.floor(3 / target + _EPS) if target < 1 else 3
        return Availability.INVALID if ahead > limit else Availability.WAIT

    def media_ready(self, msn: int, part: int | None = None) -> Availability:
        """Can ``segment(msn)`` / ``part(msn, part)`` be served?  READY if it
        is there, WAIT for the segment in progress or the hinted part
        (``EXT-X-PRELOAD-HINT``) while the stream goes on, else INVALID."""
        seg = self._find(msn)
        if part is None:
            if seg is not None and seg.complete:
                return Availability.READY
            if seg is not None and not self._ended:
                return Availability.WAIT
            return Availability.INVALID
        if seg is not None and 0 <= part < len(seg.parts):
            return Availability.READY
        if self.preload_hint == (msn, part):
            return Availability.WAIT
        return Availability.INVALID

    def playlist(self) -> str:
        """The media playlist as of now."""
        cfg = self.config
        target = cfg.target_duration
        segments = list(self._all_segments())
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{PLAYLIST_VERSION}",
            f"#EXT-X-TARGETDURATION:{target}",
            ("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
             f"PART-HOLD-BACK={_num(3 * cfg.part_target)},HOLD-BACK={_num(3 * target)}"),
            f"#EXT-X-PART-INF:PART-TARGET={_num(cfg.part_target)}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn if segments else self._next_msn}",
        ]
        if self._discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self._discontinuity_sequence}")
        init = segments[0].init if segments else self._init_index
        if init >= 0:
            lines.append(f'#EXT-X-MAP:URI="{self.init_uri(init)}"')
        # parts for the segments within 3 target durations of the end
        with_parts = len(segments)
        total = 0.0
        for i in range(len(segments) - 1, -1, -1):
            if total >= 3 * target:
                break
            with_parts = i
            total += segments[i].duration
        for i, seg in enumerate(segments):
            if seg.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if seg.init != init:
                init = seg.init
                lines.append(f'#EXT-X-MAP:URI="{self.init_uri(init)}"')
            if i >= with_parts:
                for n, p in enumerate(seg.parts):
                    lines.append(f"#EXT-X-PART:DURATION={_num(p.duration)},"
                                 f'URI="{self.part_uri(seg.msn, n)}"'
                                 + (",INDEPENDENT=YES" if p.independent else ""))
            if seg.complete:
                lines.append(f"#EXTINF:{_num(seg.duration)},")
                lines.append(self.segment_uri(seg.msn))
        hint = self.preload_hint
        if hint is not None:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{self.part_uri(*hint)}"')
        else:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"
