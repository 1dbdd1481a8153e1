"""Media payloads: the FLV audio/video tag bodies that RTMP audio (8) and
video (9) messages carry.

::

    >>> from rtmpx import media
    >>> f = media.parse_video(40, payload)          # or Frame.parse("video", 40, payload)
    >>> f.codec, f.is_keyframe, f.is_sequence_header, f.composition_time
    ('avc', True, False, 80)
    >>> f.data                                      # memoryview: codec data, no copy

One :class:`Frame` per message, built with a few index operations (no loop
over the bytes), so that a relay can afford it for every message.  A relay
calls :func:`classify` instead, which builds nothing for the usual messages
and says, per track, what its GOP cache needs: ``(kind, track_id, header,
keyframe)``; :func:`is_video_keyframe` and :func:`is_sequence_header` are
the older single-answer forms.

What a relay keeps for a player that joins late (:func:`classify`'s
``header``, :attr:`Frame.header_kind`): per kind and per track, the latest
sequence start (:data:`HEADER_SEQUENCE`: AVC/HEVC decoder configuration,
AAC AudioSpecificConfig, Enhanced SequenceStart or MPEG2TSSequenceStart),
the latest video Metadata (:data:`HEADER_METADATA`: colorInfo, HDR) and the
latest audio MultichannelConfig (:data:`HEADER_MULTICHANNEL_CONFIG`), sent
in the order they arrived and before any media; then the media since the
latest keyframe of the primary video track (:data:`PRIMARY_TRACK`, trackId
0: the default track of the Enhanced RTMP v2 spec, the one FFmpeg and OBS
send without a multitrack header).  A SequenceEnd is neither a header nor
a keyframe.

Formats understood:

* Legacy video (FLV 10.1): ``FrameType(4) | CodecID(4)``; CodecID 2 Sorenson
  H.263 (``"h263"``), 3 ``"screen"``, 4 ``"vp6"``, 5 ``"vp6a"``,
  6 ``"screen2"``, 7 ``"avc"``; and, as in the forks (Chinese CDNs, OBS
  builds) that use them, 12 ``"hevc"`` and 13 ``"av1"``.  AVC and these
  two carry ``AVCPacketType`` (0 sequence header, 1 NAL units, 2 end of
  sequence) and a signed 24-bit composition time.  FrameType 5 is a command
  frame: one UI8 (0 start, 1 end of client-side seeking) and no video.
* Enhanced RTMP (v1, v2) video: ``IsExHeader(1) | FrameType(3) |
  PacketType(4)``, ModEx prelude entries, an optional multitrack header, a
  FourCC (``avc1``, ``hvc1``, ``vvc1``, ``av01``, ``vp09``, ``vp08``);
  CodedFrames of ``avc1``/``hvc1``/``vvc1`` carry a composition time,
  CodedFramesX and the other codecs do not.  Metadata packets (PacketType
  4, AMF in the body) ignore FrameType; command frames (FrameType 5, tested
  before the multitrack header as in the spec) have no FourCC.  FrameType 0
  (reserved by the spec, but what bluenviron/gortmplib, and so MediaMTX,
  writes in every header) is accepted: the packet is classified by its
  PacketType and a coded frame's keyframe is looked for in the bitstream
  (:attr:`Frame.is_keyframe`).
* Legacy audio: ``SoundFormat(4) | rate(2) | size(1) | channels(1)``; AAC
  (10) carries ``AACPacketType`` (0 AudioSpecificConfig, 1 raw).  See
  :func:`audio_format` for rate, size and channels.
* Enhanced RTMP v2 audio: SoundFormat 9 and ``AudioPacketType`` (0
  SequenceStart, 1 CodedFrames, 2 SequenceEnd, 4 MultichannelConfig,
  5 Multitrack, 7 ModEx), then a FourCC (``Opus``, ``fLaC``, ``ac-3``,
  ``ec-3``, ``mp4a``, ``.mp3``).

ModEx: TimestampOffsetNano (ModExType 0, at least 3 bytes, the first 3
read as UI24) is :attr:`Frame.timestamp_offset_ns`; other ModExTypes are
skipped by their sizes.  The payload is never changed: a relay forwards the
offset as it came.

Multitrack: every track record is walked (at most 16 a message; trackId,
UI24 size except in OneTrack, FourCC in ManyTracksManyCodecs, a record
running past the end is malformed) and reported by :meth:`Frame.tracks` and
:func:`classify`.  The Frame's own ``track_id``, ``fourcc``,
``composition_time`` and ``is_keyframe`` are those of the primary track
(trackId 0) if the message carries it, else of its first track; ``codec``
is that of the tracks when one FourCC covers them all (OneTrack,
ManyTracks, or ManyTracksManyCodecs whose walked tracks share one and that
has none past the walk), else ``"multitrack"``; ``data_offset`` points at
the first track record.  The packet type (so ``header_kind``) and the
FrameType are shared by all the tracks of a message.

Not interpreted: codec configuration beyond :func:`avc_config` and
:func:`aac_config`; video Metadata and MultichannelConfig bodies (AMF and
channel maps, for the caller).

Malformed input: an empty, truncated or reserved-valued payload is not an
error on the hot path (a publisher's garbage is relayed as it is): it gives
a frame with ``codec="unknown"``, every flag false, ``data_offset=0``.
An unknown FourCC in a well-formed header keeps its flags (so that a relay
still caches the sequence start of a codec it does not know) with
``codec="unknown"``.  With ``strict=True`` all of these raise
:class:`~rtmpx.errors.ProtocolError` instead.  An empty audio message is,
per Enhanced RTMP v2, a "silence" signal: it too gives an unknown frame
(strict: an error).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, Literal, NamedTuple, TypeAlias, TypeVar

from .errors import ProtocolError

__all__ = [
    "AUDIO_CODED_FRAMES",
    "AUDIO_MODEX",
    "AUDIO_MULTICHANNEL_CONFIG",
    "AUDIO_MULTITRACK",
    "AUDIO_SEQUENCE_END",
    "AUDIO_SEQUENCE_START",
    "COMMAND_FRAME",
    "DISPOSABLE_INTER_FRAME",
    "GENERATED_KEY_FRAME",
    "HEADER_METADATA",
    "HEADER_MULTICHANNEL_CONFIG",
    "HEADER_SEQUENCE",
    "INTER_FRAME",
    "KEY_FRAME",
    "MAX_HEADERS",
    "PRIMARY_TRACK",
    "VIDEO_CODED_FRAMES",
    "VIDEO_CODED_FRAMES_X",
    "VIDEO_METADATA",
    "VIDEO_MODEX",
    "VIDEO_MPEG2TS_SEQUENCE_START",
    "VIDEO_MULTITRACK",
    "VIDEO_SEQUENCE_END",
    "VIDEO_SEQUENCE_START",
    "AACConfig",
    "AVCConfig",
    "AudioFormat",
    "Frame",
    "HeaderReplay",
    "Track",
    "TrackInfo",
    "aac_config",
    "audio_format",
    "avc_config",
    "classify",
    "is_sequence_header",
    "is_video_keyframe",
    "parse_audio",
    "parse_video",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

AUDIO: Final = "audio"
VIDEO: Final = "video"

# Video FrameType
KEY_FRAME: Final = 1
INTER_FRAME: Final = 2
DISPOSABLE_INTER_FRAME: Final = 3
GENERATED_KEY_FRAME: Final = 4
COMMAND_FRAME: Final = 5

# Enhanced video PacketType
VIDEO_SEQUENCE_START: Final = 0
VIDEO_CODED_FRAMES: Final = 1
VIDEO_SEQUENCE_END: Final = 2
VIDEO_CODED_FRAMES_X: Final = 3
VIDEO_METADATA: Final = 4
VIDEO_MPEG2TS_SEQUENCE_START: Final = 5
VIDEO_MULTITRACK: Final = 6
VIDEO_MODEX: Final = 7

# Enhanced audio AudioPacketType
AUDIO_SEQUENCE_START: Final = 0
AUDIO_CODED_FRAMES: Final = 1
AUDIO_SEQUENCE_END: Final = 2
AUDIO_MULTICHANNEL_CONFIG: Final = 4
AUDIO_MULTITRACK: Final = 5
AUDIO_MODEX: Final = 7

# AvMultitrackType
ONE_TRACK: Final = 0
MANY_TRACKS: Final = 1
MANY_TRACKS_MANY_CODECS: Final = 2

# What a late joiner needs (Frame.header_kind, TrackInfo.header); 0 = nothing to keep
HEADER_SEQUENCE: Final = 1  # decoder configuration: a sequence header / SequenceStart
HEADER_METADATA: Final = 2  # Enhanced video Metadata (colorInfo, HDR)
HEADER_MULTICHANNEL_CONFIG: Final = 3  # Enhanced audio MultichannelConfig

#: The track a relay anchors its GOP on: trackId 0, the default track of the
#: Enhanced RTMP v2 spec, which FFmpeg and OBS send without a multitrack header.
PRIMARY_TRACK: Final = 0

_UNKNOWN: Final = "unknown"
_MULTITRACK: Final = "multitrack"
_MAX_TRACKS: Final = 16  # track records walked in one multitrack message
_MAX_UNITS: Final = 64  # NAL units / OBUs walked looking for a keyframe

# Legacy CodecID -> codec; the AVC-like ones (7, 12, 13) carry AVCPacketType + SI24.
_LEGACY_VIDEO: Final = (
    _UNKNOWN, _UNKNOWN, "h263", "screen", "vp6", "vp6a", "screen2", "avc",
    _UNKNOWN, _UNKNOWN, _UNKNOWN, _UNKNOWN, "hevc", "av1", _UNKNOWN, _UNKNOWN,
)

# Legacy SoundFormat -> codec (9 is the Enhanced RTMP ExHeader, 10 AAC).
_LEGACY_AUDIO: Final = (
    "pcm", "adpcm", "mp3", "pcm", "nellymoser", "nellymoser", "nellymoser",
    "g711a", "g711u", _UNKNOWN, "aac", "speex", _UNKNOWN, _UNKNOWN, "mp3", "native",
)

# FourCC -> (codec, canonical FourCC bytes, CodedFrames carry an SI24 composition time)
_VIDEO_FOURCC: Final[dict[bytes, tuple[str, bytes, bool]]] = {
    b"avc1": ("avc", b"avc1", True),
    b"hvc1": ("hevc", b"hvc1", True),
    b"av01": ("av1", b"av01", False),
    b"vp09": ("vp9", b"vp09", False),
    b"vp08": ("vp8", b"vp08", False),
    b"vvc1": ("vvc", b"vvc1", True),
}
_AUDIO_FOURCC: Final[dict[bytes, tuple[str, bytes, bool]]] = {
    b"Opus": ("opus", b"Opus", False),
    b"fLaC": ("flac", b"fLaC", False),
    b"ac-3": ("ac3", b"ac-3", False),
    b"ec-3": ("eac3", b"ec-3", False),
    b"mp4a": ("aac", b"mp4a", False),
    b".mp3": ("mp3", b".mp3", False),
}


#: Header keys a :class:`HeaderReplay` holds at most (real streams have a
#: few: 2 kinds x tracks x 3 header kinds).
MAX_HEADERS: Final = 64

_T = TypeVar("_T")


class _Held(Generic[_T]):
    __slots__ = ("item", "refs", "size")

    def __init__(self, item: _T, size: int) -> None:
        self.item = item
        self.size = size
        self.refs = 0


class HeaderReplay(Generic[_T]):
    """The headers a decoder needs before the first frame: the latest
    header message of each ``(kind, track id, header kind)`` (the keys
    :func:`classify` gives: sequence headers, video Metadata, audio
    MultichannelConfig, per track).  What a relay's channel keeps for late
    joiners, an ingest stream across a cut, and a moving publisher sends
    to its new server.

    Iterating gives the distinct messages in the order they came (a newer
    one for a key moves last; one that carries several tracks is kept
    under each of their keys and comes once).  Bounded: at most
    ``max_keys`` keys and ``max_bytes`` bytes; a message beyond them is not
    kept (the one it replaces is dropped all the same: a new server is
    better off without a configuration than with a stale one).
    """

    def __init__(self, max_keys: int = MAX_HEADERS,
                 max_bytes: int = 1024 * 1024) -> None:
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.bytes = 0
        self._keys: dict[Hashable, _Held[_T]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[_T]:
        seen: set[int] = set()
        for held in self._keys.values():
            if id(held) not in seen:
                seen.add(id(held))
                yield held.item

    def put(self, keys: Iterable[Hashable], item: _T, size: int,
            max_bytes: int | None = None) -> bool:
        """Keep ``item`` (``size`` bytes) as the latest of each of ``keys``;
        whether it was kept (under at least one of them).  ``max_bytes``
        lowers the byte bound for this call (a memory budget's room)."""
        keys = tuple(dict.fromkeys(keys))  # each key once
        for key in keys:
            old = self._keys.pop(key, None)
            if old is not None:
                old.refs -= 1
                if not old.refs:
                    self.bytes -= old.size
        if self.bytes + size > min(self.max_bytes, max_bytes or self.max_bytes):
            return False
        held = _Held(item, size)
        for key in keys:
            if len(self._keys) >= self.max_keys:
                break
            self._keys[key] = held
            held.refs += 1
        if not held.refs:
            return False
        self.bytes += size
        return True


class Track(NamedTuple):
    """One track of a message (:meth:`Frame.tracks`).

    ``track_id`` (0 for legacy and single-track messages), ``codec`` and
    ``fourcc`` (as :attr:`Frame.codec`/:attr:`Frame.fourcc`, of this track),
    ``is_keyframe`` and ``composition_time`` (of this track), ``offset`` and
    ``end``: where this track's codec data lies in the payload (after its
    trackId, size and composition time), ``data``: that slice, a memoryview.
    The packet type, and so :attr:`Frame.header_kind`, is shared by every
    track of a message.
    """

    track_id: int
    codec: str
    fourcc: bytes | None
    is_keyframe: bool
    composition_time: int
    offset: int
    end: int
    data: memoryview


class TrackInfo(NamedTuple):
    """What a relay needs to know of one track of a message (:func:`classify`).

    ``kind`` (``"audio"``/``"video"``), ``track_id``, ``header``: 0 or what
    a late joiner needs (:data:`HEADER_SEQUENCE`, :data:`HEADER_METADATA`,
    :data:`HEADER_MULTICHANNEL_CONFIG`: keep the latest of each per kind and
    track), ``keyframe``: as :attr:`Frame.is_keyframe`, for this track.
    """

    kind: str
    track_id: int
    header: int
    keyframe: bool


class _FrameSlots:
    """The storage of :class:`Frame` (see :class:`_FrameBuilder` for why it is separate)."""

    __slots__ = (
        "codec", "composition_time", "data_offset", "fourcc", "frame_type", "is_end_of_sequence",
        "is_enhanced", "is_keyframe", "is_multitrack", "is_sequence_header", "kind",
        "packet_type", "payload", "timestamp", "timestamp_offset_ns", "track_id",
    )


@dataclass(frozen=True, slots=True)
class Frame(_FrameSlots):
    """One audio or video message payload (an FLV tag body), classified.

    * ``kind``: ``"audio"`` or ``"video"``; ``timestamp``: ms, as given.
    * ``payload``: the whole body, the object given (never copied).
    * ``codec``: ``"avc"``, ``"hevc"``, ``"vvc"``, ``"av1"``, ``"vp9"``, ``"vp8"``,
      ``"h263"``, ``"screen"``, ``"screen2"``, ``"vp6"``, ``"vp6a"``,
      ``"aac"``, ``"mp3"``, ``"opus"``, ``"flac"``, ``"ac3"``, ``"eac3"``,
      ``"speex"``, ``"pcm"``, ``"adpcm"``, ``"nellymoser"``, ``"g711a"``,
      ``"g711u"``, ``"native"`` (device-specific audio), ``"multitrack"``
      or ``"unknown"``.
    * ``is_keyframe``: coded media a decoder can start at.  Video: coded
      frames (legacy AVC-like NAL units, Enhanced CodedFrames or
      CodedFramesX, any frame of the other legacy codecs) with FrameType 1
      (key) or 4 (generated key); with Enhanced FrameType 0 (no flag, as
      MediaMTX/gortmplib write), a keyframe found in the bitstream (AVC IDR,
      HEVC IRAP, VVC IRAP, AV1 shown key frame, VP9/VP8 key frame).  Never
      a sequence header, end of sequence, Metadata or command, whatever
      their FrameType.  Audio: every coded audio frame (not a sequence
      header, end or MultichannelConfig).
    * ``is_sequence_header``: AVC/HEVC sequence header, AAC
      AudioSpecificConfig, Enhanced SequenceStart or MPEG2TSSequenceStart.
    * ``is_end_of_sequence``: AVC end of sequence, Enhanced SequenceEnd.
    * ``composition_time``: signed 24-bit ms (pts - dts) of legacy AVC-like
      NAL units and Enhanced ``avc1``/``hvc1``/``vvc1`` CodedFrames; else 0.
    * ``data_offset``: where the codec data starts in ``payload``
      (:attr:`data`); for a command frame, the command byte; for a
      multitrack message, the first track record (see :meth:`tracks`).
    * ``frame_type``: video FrameType (0 for audio); ``packet_type``: the
      AVCPacketType, AACPacketType or Enhanced PacketType (after ModEx and
      multitrack headers), -1 when the format has none.
    * ``fourcc``: the Enhanced RTMP FourCC (bytes), else ``None``;
      ``is_enhanced``: an Enhanced RTMP header; ``is_multitrack``: an
      Enhanced multitrack packet.
    * ``track_id``: the track this frame describes: 0 for legacy and
      single-track messages; for a multitrack message, the primary track
      (:data:`PRIMARY_TRACK`, 0) if the message carries it, else its first
      track.  ``codec`` (but see the module doc), ``fourcc``,
      ``composition_time`` and ``is_keyframe`` are that track's;
      :meth:`tracks` has them all.
    * ``timestamp_offset_ns``: the ModEx TimestampOffsetNano, nanoseconds
      to add to the millisecond ``timestamp`` (0 when absent); the payload
      is relayed as it is, offset included.
    """

    kind: Literal["audio", "video"]
    timestamp: int
    payload: Buffer
    codec: str = _UNKNOWN
    is_keyframe: bool = False
    is_sequence_header: bool = False
    is_end_of_sequence: bool = False
    composition_time: int = 0
    data_offset: int = 0
    frame_type: int = 0
    packet_type: int = -1
    fourcc: bytes | None = None
    is_enhanced: bool = False
    is_multitrack: bool = False
    track_id: int = 0
    timestamp_offset_ns: int = 0

    @property
    def data(self) -> memoryview:
        """The codec data: ``memoryview(payload)[data_offset:]`` (no copy)."""
        return memoryview(self.payload)[self.data_offset:]

    @property
    def is_command(self) -> bool:
        """A video command frame (FrameType 5, no video data)."""
        return self.frame_type == COMMAND_FRAME and not (
            self.is_enhanced and self.packet_type == VIDEO_METADATA)

    @property
    def command(self) -> int:
        """The command of a command frame (0 start, 1 end of client-side
        seeking), -1 for other frames."""
        if self.is_command:
            return int(self.payload[self.data_offset])
        return -1

    @property
    def is_metadata(self) -> bool:
        """An Enhanced RTMP video Metadata packet (AMF, e.g. HDR colour info)."""
        return self.is_enhanced and self.kind == VIDEO and self.packet_type == VIDEO_METADATA

    @property
    def is_multichannel_config(self) -> bool:
        """An Enhanced RTMP audio MultichannelConfig packet (channel order and count)."""
        return (self.is_enhanced and self.kind == AUDIO
                and self.packet_type == AUDIO_MULTICHANNEL_CONFIG)

    @property
    def header_kind(self) -> int:
        """What a late joiner needs this for: :data:`HEADER_SEQUENCE`
        (:attr:`is_sequence_header`), :data:`HEADER_METADATA`
        (:attr:`is_metadata`), :data:`HEADER_MULTICHANNEL_CONFIG`
        (:attr:`is_multichannel_config`), else 0.  A relay keeps the latest
        of each kind per track and sends them to a joining player before
        any media: the decoder configuration, and the state (colour info,
        channel layout) that applies to what follows."""
        if self.is_sequence_header:
            return HEADER_SEQUENCE
        if self.is_enhanced and self.packet_type == 4:  # Metadata / MultichannelConfig
            return HEADER_METADATA if self.kind == VIDEO else HEADER_MULTICHANNEL_CONFIG
        return 0

    @property
    def is_header(self) -> bool:
        """``header_kind != 0``: a packet a relay keeps for late joiners."""
        return self.header_kind != 0

    def tracks(self) -> tuple[Track, ...]:
        """Every track this message carries, in message order: one
        :class:`Track` (track 0) for a legacy or single-track message, one
        per track record (at most 16 walked) for a multitrack message, none
        for a command frame or a malformed payload."""
        payload = self.payload
        if self.codec == _UNKNOWN and self.fourcc is None or self.is_command:
            return ()
        n = len(payload)
        if not self.is_multitrack:
            return (Track(0, self.codec, self.fourcc, self.is_keyframe, self.composition_time,
                          self.data_offset, n, memoryview(payload)[self.data_offset:]),)
        records = _records_of(payload, n, self.kind == VIDEO)
        if isinstance(records, str):  # cannot happen for a parsed frame
            return ()
        tracks = []
        table = _VIDEO_FOURCC if self.kind == VIDEO else _AUDIO_FOURCC
        view = memoryview(payload)
        for track_id, fourcc, start, ct, end in records:
            info = table.get(fourcc)
            codec = _UNKNOWN if info is None else info[0]
            key = _record_key(self.kind, self.frame_type, self.packet_type, codec,
                              payload, start, end)
            tracks.append(Track(track_id, codec, fourcc, key, ct, start, end, view[start:end]))
        return tuple(tracks)

    @staticmethod
    def parse(kind: str, timestamp: int, payload: Buffer, *, strict: bool = False) -> Frame:
        """Classify one message body; ``kind`` is ``"audio"`` or ``"video"``."""
        if kind == VIDEO:
            return parse_video(timestamp, payload, strict=strict)
        if kind == AUDIO:
            return parse_audio(timestamp, payload, strict=strict)
        raise ValueError(f"kind must be 'audio' or 'video', not {kind!r}")


class _FrameBuilder(_FrameSlots):
    """Mutable twin of :class:`Frame`, same layout.

    A frozen dataclass sets each field through ``object.__setattr__`` in its
    ``__init__``, about 1.6 us for these 16 fields.  The parsers instead
    take a bare ``_FrameBuilder`` (``object.__new__``), fill its slots with
    plain stores, and turn it into a :class:`Frame` by ``__class__``
    assignment (allowed: both classes add no slots to ``_FrameSlots``),
    about 0.2 us.  The result is an ordinary, frozen :class:`Frame`.
    """

    __slots__ = ()

    def __init__(
        self, kind: str, timestamp: int, payload: Buffer, codec: str, is_keyframe: bool,
        is_sequence_header: bool, is_end_of_sequence: bool, composition_time: int,
        data_offset: int, frame_type: int, packet_type: int, fourcc: bytes | None,
        is_enhanced: bool, is_multitrack: bool, track_id: int = 0, timestamp_offset_ns: int = 0,
    ) -> None:
        self.kind = kind
        self.timestamp = timestamp
        self.payload = payload
        self.codec = codec
        self.is_keyframe = is_keyframe
        self.is_sequence_header = is_sequence_header
        self.is_end_of_sequence = is_end_of_sequence
        self.composition_time = composition_time
        self.data_offset = data_offset
        self.frame_type = frame_type
        self.packet_type = packet_type
        self.fourcc = fourcc
        self.is_enhanced = is_enhanced
        self.is_multitrack = is_multitrack
        self.track_id = track_id
        self.timestamp_offset_ns = timestamp_offset_ns


_new = object.__new__


def _make(
    kind: str, timestamp: int, payload: Buffer, codec: str, is_keyframe: bool,
    is_sequence_header: bool, is_end_of_sequence: bool, composition_time: int,
    data_offset: int, frame_type: int, packet_type: int, fourcc: bytes | None,
    is_enhanced: bool, is_multitrack: bool, track_id: int = 0, timestamp_offset_ns: int = 0,
) -> Frame:
    f = _FrameBuilder(kind, timestamp, payload, codec, is_keyframe, is_sequence_header,
                      is_end_of_sequence, composition_time, data_offset, frame_type,
                      packet_type, fourcc, is_enhanced, is_multitrack, track_id,
                      timestamp_offset_ns)
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


def _bad(kind: str, timestamp: int, payload: Buffer, strict: bool, why: str) -> Frame:
    if strict:
        raise ProtocolError(f"malformed {kind} payload ({len(payload)} bytes): {why}")
    return _make(kind, timestamp, payload, _UNKNOWN, False, False, False, 0, 0, 0, -1,
                 None, False, False)


def _fourcc(payload: Buffer, pos: int) -> bytes:
    fc = payload[pos:pos + 4]
    return fc if type(fc) is bytes else bytes(fc)


_MODEX_PAST_END: Final = -1
_MODEX_SHORT_NANO: Final = -2
_MODEX_TOO_MANY: Final = -3
#: ModEx entries read in one message: the spec defines one ModExType
#: (TimestampOffsetNano); a chain of 3-byte entries as long as the message
#: would cost a Python loop turn each.
MAX_MODEX_ENTRIES: Final = 8


def _skip_modex(payload: Buffer, pos: int, n: int) -> tuple[int, int, int]:
    """Read ModEx entries from ``pos`` (just after the header byte whose
    PacketType was ModEx): return (position after them, the real PacketType,
    the TimestampOffsetNano or 0).  The position is ``_MODEX_PAST_END`` if
    they run past the end, ``_MODEX_SHORT_NANO`` for a TimestampOffsetNano
    of fewer than the 3 bytes the spec requires, ``_MODEX_TOO_MANY`` past
    :data:`MAX_MODEX_ENTRIES` entries.  Each entry is
    ``size - 1`` (UI8, or 0xFF + UI16), its data, then
    ``ModExType(4) | PacketType(4)``; other ModExTypes are skipped."""
    nano = 0
    for _ in range(MAX_MODEX_ENTRIES):
        if pos >= n:
            return _MODEX_PAST_END, -1, 0
        size = payload[pos] + 1
        pos += 1
        if size == 256:
            if pos + 2 > n:
                return _MODEX_PAST_END, -1, 0
            size = ((payload[pos] << 8) | payload[pos + 1]) + 1
            pos += 2
        data = pos
        pos += size
        if pos >= n:
            return _MODEX_PAST_END, -1, 0
        b = payload[pos]
        pos += 1
        if b >> 4 == 0:  # TimestampOffsetNano: UI24 from the first 3 bytes
            if size < 3:
                return _MODEX_SHORT_NANO, -1, 0
            nano = (payload[data] << 16) | (payload[data + 1] << 8) | payload[data + 2]
        packet_type = b & 0x0F
        if packet_type != 7:  # ModEx is 7 for audio and video alike
            return pos, packet_type, nano
    return _MODEX_TOO_MANY, -1, 0


def _modex_error(pos: int) -> str:
    if pos == _MODEX_SHORT_NANO:
        return "ModEx TimestampOffsetNano needs 3 bytes"
    if pos == _MODEX_TOO_MANY:
        return f"more than {MAX_MODEX_ENTRIES} ModEx entries"
    return "ModEx entries run past the end"


# One track record of a multitrack message: (trackId, FourCC, codec data
# start, composition time, codec data end).
_Record: TypeAlias = tuple[int, bytes, int, int, int]


def _walk(
    payload: Buffer, pos: int, n: int, video: bool,
) -> tuple[int, int, list[_Record]] | str:
    """Read a multitrack header at ``pos`` (the byte
    ``AvMultitrackType(4) | PacketType(4)``, then the shared FourCC unless
    ManyTracksManyCodecs) and walk its track records (at most
    ``_MAX_TRACKS``; the rest is not looked at).  Return (multitrack type,
    packet type, records), or what is wrong.  A record is [FourCC
    (ManyTracksManyCodecs)], trackId (UI8), [size (UI24, not for OneTrack,
    whose record runs to the end)], [composition time (SI24, video
    CodedFrames of a codec that has one)], codec data."""
    if pos >= n:
        return "no multitrack header"
    b = payload[pos]
    mt = b >> 4
    packet_type = b & 0x0F
    pos += 1
    if mt > MANY_TRACKS_MANY_CODECS:
        return f"reserved AvMultitrackType {mt} in a multitrack header"
    if (packet_type > VIDEO_MPEG2TS_SEQUENCE_START if video
            else packet_type > AUDIO_MULTICHANNEL_CONFIG or packet_type == 3):
        return f"reserved PacketType {packet_type} in a multitrack header"
    table = _VIDEO_FOURCC if video else _AUDIO_FOURCC
    shared: bytes | None = None
    if mt != MANY_TRACKS_MANY_CODECS:
        if pos + 4 > n:
            return "no room for the multitrack FourCC"
        shared = _fourcc(payload, pos)
        info = table.get(shared)
        if info is not None:
            shared = info[1]
        pos += 4
    ct_possible = video and packet_type == VIDEO_CODED_FRAMES
    records: list[_Record] = []
    while pos < n and len(records) < _MAX_TRACKS:
        if shared is None:
            if pos + 4 > n:
                return "multitrack record truncated in its FourCC"
            fc = _fourcc(payload, pos)
            info = table.get(fc)
            if info is not None:
                fc = info[1]
            pos += 4
        else:
            fc = shared
        if pos >= n:
            return "multitrack record without its trackId"
        track_id = payload[pos]
        pos += 1
        if mt == ONE_TRACK:
            end = n
        else:
            if pos + 3 > n:
                return "multitrack record truncated in its size"
            end = pos + 3 + ((payload[pos] << 16) | (payload[pos + 1] << 8) | payload[pos + 2])
            pos += 3
            if end > n:
                return "multitrack record runs past the end"
        ct = 0
        if ct_possible:
            info = _VIDEO_FOURCC.get(fc)
            if info is not None and info[2]:
                if pos + 3 > end:
                    return "multitrack record without its composition time"
                ct = (payload[pos] << 16) | (payload[pos + 1] << 8) | payload[pos + 2]
                if ct & 0x800000:
                    ct -= 0x1000000
                pos += 3
        records.append((track_id, fc, pos, ct, end))
        pos = end
    if not records:
        return "multitrack message without a track"
    return mt, packet_type, records


def _records_of(payload: Buffer, n: int, video: bool) -> list[_Record] | str:
    """The track records of a multitrack message (ModEx entries skipped)."""
    pos = 1
    if n and payload[0] & 0x0F == 7:
        pos, _, _ = _skip_modex(payload, 1, n)
        if pos < 0:
            return _modex_error(pos)
    walked = _walk(payload, pos, n, video)
    return walked if isinstance(walked, str) else walked[2]


def _primary(records: list[_Record]) -> _Record:
    """The record a Frame describes: the primary track's, else the first."""
    for record in records:
        if record[0] == PRIMARY_TRACK:
            return record
    return records[0]


def parse_video(timestamp: int, payload: Buffer, *, strict: bool = False) -> Frame:
    """Classify a video message body (FLV VIDEODATA); see the module doc."""
    n = len(payload)
    if n == 0:
        return _bad(VIDEO, timestamp, payload, strict, "empty")
    b0 = payload[0]
    if b0 & 0x80:
        return _parse_ex_video(timestamp, payload, b0, n, strict)
    frame_type = b0 >> 4
    codec_id = b0 & 0x0F
    codec = _LEGACY_VIDEO[codec_id]
    ct = 0
    packet_type = -1
    offset = 1
    if frame_type == COMMAND_FRAME:
        if n < 2:
            return _bad(VIDEO, timestamp, payload, strict, "command frame without its command")
    elif frame_type == 0 or frame_type > COMMAND_FRAME:
        return _bad(VIDEO, timestamp, payload, strict, f"reserved FrameType {frame_type}")
    elif codec_id == 7 or codec_id == 12 or codec_id == 13:  # AVC-like
        if n < 5:
            return _bad(VIDEO, timestamp, payload, strict, f"{codec} header needs 5 bytes")
        packet_type = payload[1]
        offset = 5
        if packet_type == 1:
            ct = (payload[2] << 16) | (payload[3] << 8) | payload[4]
            if ct & 0x800000:
                ct -= 0x1000000
        elif packet_type > 2:
            return _bad(VIDEO, timestamp, payload, strict,
                        f"reserved AVCPacketType {packet_type}")
    elif codec is _UNKNOWN:
        return _bad(VIDEO, timestamp, payload, strict, f"reserved CodecID {codec_id}")
    f = _new(_FrameBuilder)
    f.kind = VIDEO
    f.timestamp = timestamp
    f.payload = payload
    f.codec = codec
    # coded video only: not an AVC sequence header or end of sequence
    f.is_keyframe = (frame_type == 1 or frame_type == 4) and (packet_type == 1 or packet_type < 0)
    f.is_sequence_header = packet_type == 0
    f.is_end_of_sequence = packet_type == 2
    f.composition_time = ct
    f.data_offset = offset
    f.frame_type = frame_type
    f.packet_type = packet_type
    f.fourcc = None
    f.is_enhanced = False
    f.is_multitrack = False
    f.track_id = 0
    f.timestamp_offset_ns = 0
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


def _parse_ex_video(timestamp: int, payload: Buffer, b0: int, n: int, strict: bool) -> Frame:
    frame_type = (b0 >> 4) & 7
    packet_type = b0 & 0x0F
    pos = 1
    nano = 0
    if packet_type == VIDEO_MODEX:
        pos, packet_type, nano = _skip_modex(payload, 1, n)
        if pos < 0:
            return _bad(VIDEO, timestamp, payload, strict, _modex_error(pos))
    if frame_type == COMMAND_FRAME and packet_type != VIDEO_METADATA:
        if pos >= n:
            return _bad(VIDEO, timestamp, payload, strict, "command frame without its command")
        return _make(VIDEO, timestamp, payload, _UNKNOWN, False, False, False, 0, pos, 5,
                     packet_type, None, True, False, 0, nano)
    ct = 0
    track_id = 0
    end = n
    multitrack = packet_type == VIDEO_MULTITRACK
    if multitrack:
        walked = _walk(payload, pos, n, True)
        if isinstance(walked, str):
            return _bad(VIDEO, timestamp, payload, strict, walked)
        mt, packet_type, records = walked
        track_id, fourcc, start, ct, end = _primary(records)
        info = _VIDEO_FOURCC.get(fourcc)
        codec = _UNKNOWN if info is None else info[0]
        known = info is not None
        track_codec = codec
        if mt == MANY_TRACKS_MANY_CODECS:
            pos += 1  # the first record: its FourCC
            first = records[0][1]
            for record in records:
                if record[1] != first:
                    codec = _MULTITRACK
                if record[1] not in _VIDEO_FOURCC:
                    known = False
            if records[-1][4] < n:  # tracks past the walk: their codecs are not known here
                codec = _MULTITRACK
        else:
            pos += 5  # the first record: its trackId
    else:
        if frame_type > COMMAND_FRAME and packet_type != VIDEO_METADATA:
            return _bad(VIDEO, timestamp, payload, strict, f"reserved FrameType {frame_type}")
        if pos + 4 > n:
            return _bad(VIDEO, timestamp, payload, strict, "no room for the FourCC")
        fc = _fourcc(payload, pos)  # bytes: a bytearray slice is not hashable
        info = _VIDEO_FOURCC.get(fc)
        pos += 4
        if info is None:
            fourcc = fc
            codec = _UNKNOWN
            known = False
        else:
            codec, fourcc, has_ct = info
            known = True
            if packet_type == VIDEO_CODED_FRAMES and has_ct:
                if pos + 3 > n:
                    return _bad(VIDEO, timestamp, payload, strict,
                                "no room for the composition time")
                ct = (payload[pos] << 16) | (payload[pos + 1] << 8) | payload[pos + 2]
                if ct & 0x800000:
                    ct -= 0x1000000
                pos += 3
        if packet_type > VIDEO_MPEG2TS_SEQUENCE_START:
            return _bad(VIDEO, timestamp, payload, strict,
                        f"reserved VideoPacketType {packet_type}")
        start = pos
        track_codec = codec
    if frame_type > COMMAND_FRAME and packet_type != VIDEO_METADATA:
        return _bad(VIDEO, timestamp, payload, strict, f"reserved FrameType {frame_type}")
    if strict and not known:
        raise ProtocolError(f"unknown video FourCC {fourcc!r}")
    if packet_type == VIDEO_CODED_FRAMES or packet_type == VIDEO_CODED_FRAMES_X:
        if frame_type == 0:  # no key flag (MediaMTX, gortmplib): look at the bitstream
            scan = _KEY_SCANNERS.get(track_codec)
            key = scan is not None and scan(payload, start, end)
        else:
            key = frame_type == 1 or frame_type == 4
    else:
        key = False
    f = _new(_FrameBuilder)
    f.kind = VIDEO
    f.timestamp = timestamp
    f.payload = payload
    f.codec = codec
    f.is_keyframe = key
    f.is_sequence_header = packet_type == 0 or packet_type == VIDEO_MPEG2TS_SEQUENCE_START
    f.is_end_of_sequence = packet_type == VIDEO_SEQUENCE_END
    f.composition_time = ct
    f.data_offset = pos
    f.frame_type = frame_type
    f.packet_type = packet_type
    f.fourcc = fourcc
    f.is_enhanced = True
    f.is_multitrack = multitrack
    f.track_id = track_id
    f.timestamp_offset_ns = nano
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


def parse_audio(timestamp: int, payload: Buffer, *, strict: bool = False) -> Frame:
    """Classify an audio message body (FLV AUDIODATA); see the module doc."""
    n = len(payload)
    if n == 0:
        return _bad(AUDIO, timestamp, payload, strict, "empty (an E-RTMP silence message)")
    b0 = payload[0]
    sound_format = b0 >> 4
    if sound_format == 10:
        if n < 2:
            return _bad(AUDIO, timestamp, payload, strict, "AAC header needs 2 bytes")
        packet_type = payload[1]
        if packet_type > 1:
            return _bad(AUDIO, timestamp, payload, strict,
                        f"reserved AACPacketType {packet_type}")
        codec = "aac"
        offset = 2
    elif sound_format == 9:
        return _parse_ex_audio(timestamp, payload, b0, n, strict)
    else:
        codec = _LEGACY_AUDIO[sound_format]
        if codec is _UNKNOWN:
            return _bad(AUDIO, timestamp, payload, strict,
                        f"reserved SoundFormat {sound_format}")
        packet_type = -1
        offset = 1
    f = _new(_FrameBuilder)
    f.kind = AUDIO
    f.timestamp = timestamp
    f.payload = payload
    f.codec = codec
    f.is_keyframe = packet_type != 0  # every coded audio frame, not the AAC config
    f.is_sequence_header = packet_type == 0
    f.is_end_of_sequence = False
    f.composition_time = 0
    f.data_offset = offset
    f.frame_type = 0
    f.packet_type = packet_type
    f.fourcc = None
    f.is_enhanced = False
    f.is_multitrack = False
    f.track_id = 0
    f.timestamp_offset_ns = 0
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


def _parse_ex_audio(timestamp: int, payload: Buffer, b0: int, n: int, strict: bool) -> Frame:
    packet_type = b0 & 0x0F
    pos = 1
    nano = 0
    if packet_type == AUDIO_MODEX:
        pos, packet_type, nano = _skip_modex(payload, 1, n)
        if pos < 0:
            return _bad(AUDIO, timestamp, payload, strict, _modex_error(pos))
    track_id = 0
    multitrack = packet_type == AUDIO_MULTITRACK
    if multitrack:
        walked = _walk(payload, pos, n, False)
        if isinstance(walked, str):
            return _bad(AUDIO, timestamp, payload, strict, walked)
        mt, packet_type, records = walked
        track_id, fourcc, _start, _ct, _end = _primary(records)
        info = _AUDIO_FOURCC.get(fourcc)
        codec = _UNKNOWN if info is None else info[0]
        known = info is not None
        if mt == MANY_TRACKS_MANY_CODECS:
            pos += 1
            first = records[0][1]
            for record in records:
                if record[1] != first:
                    codec = _MULTITRACK
                if record[1] not in _AUDIO_FOURCC:
                    known = False
            if records[-1][4] < n:
                codec = _MULTITRACK
        else:
            pos += 5
    else:
        if pos + 4 > n:
            return _bad(AUDIO, timestamp, payload, strict, "no room for the FourCC")
        fc = _fourcc(payload, pos)  # bytes: a bytearray slice is not hashable
        info = _AUDIO_FOURCC.get(fc)
        pos += 4
        if info is None:
            fourcc = fc
            codec = _UNKNOWN
            known = False
        else:
            codec, fourcc, _ = info
            known = True
    if packet_type > AUDIO_MULTICHANNEL_CONFIG or packet_type == 3:
        return _bad(AUDIO, timestamp, payload, strict,
                    f"reserved AudioPacketType {packet_type}")
    if strict and not known:
        raise ProtocolError(f"unknown audio FourCC {fourcc!r}")
    f = _new(_FrameBuilder)
    f.kind = AUDIO
    f.timestamp = timestamp
    f.payload = payload
    f.codec = codec
    f.is_keyframe = packet_type == AUDIO_CODED_FRAMES
    f.is_sequence_header = packet_type == AUDIO_SEQUENCE_START
    f.is_end_of_sequence = packet_type == AUDIO_SEQUENCE_END
    f.composition_time = 0
    f.data_offset = pos
    f.frame_type = 0
    f.packet_type = packet_type
    f.fourcc = fourcc
    f.is_enhanced = True
    f.is_multitrack = multitrack
    f.track_id = track_id
    f.timestamp_offset_ns = nano
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


# -- helpers for a relay's GOP cache: no Frame built ---------------------------------


def is_video_keyframe(payload: Buffer) -> bool:
    """Same as ``parse_video(0, payload).is_keyframe``, without building a
    Frame (for a multitrack message: the keyframe flag of the track the Frame
    describes; a relay anchoring on the primary track uses :func:`classify`)."""
    n = len(payload)
    if n == 0:
        return False
    b0 = payload[0]
    if b0 & 0x80:
        packet_type = b0 & 0x0F
        if packet_type == VIDEO_CODED_FRAMES or packet_type == VIDEO_CODED_FRAMES_X:
            frame_type = (b0 >> 4) & 7
            if frame_type != 1 and frame_type != 4:
                if frame_type != 0:
                    return False
            elif packet_type == VIDEO_CODED_FRAMES_X:
                return n >= 5
            return parse_video(0, payload).is_keyframe
        if packet_type < VIDEO_MULTITRACK:  # headers, ends, metadata: never keyframes
            return False
        return parse_video(0, payload).is_keyframe
    frame_type = b0 >> 4
    if frame_type != 1 and frame_type != 4:
        return False
    codec_id = b0 & 0x0F
    if codec_id == 7 or codec_id == 12 or codec_id == 13:  # AVC-like: NAL units only
        return n >= 5 and payload[1] == 1
    return _LEGACY_VIDEO[codec_id] is not _UNKNOWN


def is_sequence_header(type_id: int, payload: Buffer) -> bool:
    """Is this message (type 8 audio or 9 video) a sequence header (AVC/HEVC
    decoder configuration, AAC AudioSpecificConfig, Enhanced SequenceStart
    or MPEG2TSSequenceStart, with any FrameType but a command or a reserved
    one: FrameType 0, as gortmplib writes it, included)?

    Same as ``Frame.parse(...).is_sequence_header`` without building a Frame;
    :func:`classify` also says which track, and finds the other headers.
    """
    n = len(payload)
    if n < 2:
        return False
    b0 = payload[0]
    if type_id == 9:
        if b0 & 0x80:
            packet_type = b0 & 0x0F
            if packet_type == VIDEO_SEQUENCE_START or packet_type == VIDEO_MPEG2TS_SEQUENCE_START:
                return n >= 5 and (b0 >> 4) & 7 < 5  # FrameType 0 (no flag) included
            if packet_type < VIDEO_MULTITRACK:
                return False
            return parse_video(0, payload).is_sequence_header
        codec_id = b0 & 0x0F
        return ((codec_id == 7 or codec_id == 12 or codec_id == 13) and n >= 5
                and payload[1] == 0 and 0 < b0 >> 4 < 5)
    if type_id == 8:
        sound_format = b0 >> 4
        if sound_format == 10:
            return payload[1] == 0
        if sound_format == 9:
            packet_type = b0 & 0x0F
            if packet_type == AUDIO_SEQUENCE_START:
                return n >= 5
            if packet_type < AUDIO_MULTITRACK:
                return False
            return parse_audio(0, payload).is_sequence_header
    return False


_V0: Final = (TrackInfo(VIDEO, 0, 0, False),)
_V0_KEY: Final = (TrackInfo(VIDEO, 0, 0, True),)
_V0_SEQUENCE: Final = (TrackInfo(VIDEO, 0, HEADER_SEQUENCE, False),)
_V0_METADATA: Final = (TrackInfo(VIDEO, 0, HEADER_METADATA, False),)
_A0: Final = (TrackInfo(AUDIO, 0, 0, False),)
_A0_CODED: Final = (TrackInfo(AUDIO, 0, 0, True),)
_A0_SEQUENCE: Final = (TrackInfo(AUDIO, 0, HEADER_SEQUENCE, False),)
_A0_MULTICHANNEL: Final = (TrackInfo(AUDIO, 0, HEADER_MULTICHANNEL_CONFIG, False),)


def classify(type_id: int, payload: Buffer) -> tuple[TrackInfo, ...]:
    """What a relay needs of one audio (8) or video (9) message, per track:
    ``(kind, track_id, header, keyframe)`` tuples (:class:`TrackInfo`).

    One entry for a legacy or single-track message (track 0), one per track
    record (at most 16) for a multitrack message, in message order; a
    malformed message or a command frame gives one entry that is neither a
    header nor a keyframe; another ``type_id`` gives ``()``.  ``header`` is
    :attr:`Frame.header_kind` and ``keyframe`` :attr:`Frame.is_keyframe`
    (for that track): the same as ``Frame.parse(...).tracks()``, without
    building a Frame for the usual messages (the common cases return shared
    constant tuples).

    A relay's GOP cache restarts at a video entry with ``keyframe`` and
    ``track_id == PRIMARY_TRACK``, and keeps the latest message of each
    ``(kind, track_id, header)`` with a non-zero ``header`` for late joiners
    (a message that carries several tracks under each of their keys, sent
    once).  A track's keyframe need not come with the primary track's: a
    relay that starts a player at a primary keyframe may hold the other
    tracks back until their own keyframe (``keyframe`` of their entry).
    """
    n = len(payload)
    if type_id == 9:
        if n == 0:
            return _V0
        b0 = payload[0]
        frame_type = b0 >> 4
        if not b0 & 0x80:
            codec_id = b0 & 0x0F
            if codec_id == 7 or codec_id == 12 or codec_id == 13:  # AVC-like
                if n < 5 or frame_type == 0 or frame_type > 4:
                    return _V0
                packet_type = payload[1]
                if packet_type == 1:
                    return _V0_KEY if frame_type == 1 or frame_type == 4 else _V0
                return _V0_SEQUENCE if packet_type == 0 else _V0
            if (frame_type == 1 or frame_type == 4) and _LEGACY_VIDEO[codec_id] is not _UNKNOWN:
                return _V0_KEY
            return _V0
        packet_type = b0 & 0x0F
        frame_type &= 7
        if packet_type < VIDEO_MULTITRACK:
            if n < 5 or (frame_type > 4 and packet_type != VIDEO_METADATA):
                return _V0  # too short, a command frame, a reserved FrameType
            if packet_type == VIDEO_SEQUENCE_START or packet_type == VIDEO_MPEG2TS_SEQUENCE_START:
                return _V0_SEQUENCE
            if packet_type == VIDEO_METADATA:
                return _V0_METADATA
            if packet_type == VIDEO_SEQUENCE_END or frame_type == 2 or frame_type == 3:
                return _V0
            if packet_type == VIDEO_CODED_FRAMES_X and frame_type != 0:
                return _V0_KEY
        return _classify_ex_video(payload, n, b0)
    if type_id == 8:
        if n == 0:
            return _A0
        b0 = payload[0]
        sound_format = b0 >> 4
        if sound_format == 10:
            if n < 2:
                return _A0
            packet_type = payload[1]
            return _A0_CODED if packet_type == 1 else _A0_SEQUENCE if packet_type == 0 else _A0
        if sound_format != 9:
            return _A0 if _LEGACY_AUDIO[sound_format] is _UNKNOWN else _A0_CODED
        packet_type = b0 & 0x0F
        if packet_type < AUDIO_MULTITRACK:
            if n < 5:
                return _A0
            if packet_type == AUDIO_CODED_FRAMES:
                return _A0_CODED
            if packet_type == AUDIO_SEQUENCE_START:
                return _A0_SEQUENCE
            if packet_type == AUDIO_MULTICHANNEL_CONFIG:
                return _A0_MULTICHANNEL
            return _A0  # SequenceEnd, reserved 3
        return _classify_ex_audio(payload, n, b0)
    return ()


# header kind by Enhanced PacketType (0..5 video, 0..4 audio)
_VIDEO_HEADERS: Final = (HEADER_SEQUENCE, 0, 0, 0, HEADER_METADATA, HEADER_SEQUENCE)
_AUDIO_HEADERS: Final = (HEADER_SEQUENCE, 0, 0, 0, HEADER_MULTICHANNEL_CONFIG)


def _classify_ex_video(payload: Buffer, n: int, b0: int) -> tuple[TrackInfo, ...]:
    """:func:`classify` of the Enhanced video messages its fast path leaves:
    ModEx, multitrack, coded frames with FrameType 0 (the bitstream
    decides) or with a key flag and a composition time.  Same rules as
    :func:`_parse_ex_video`, without building a Frame."""
    frame_type = (b0 >> 4) & 7
    packet_type = b0 & 0x0F
    pos = 1
    if packet_type == VIDEO_MODEX:
        pos, packet_type, _ = _skip_modex(payload, 1, n)
        if pos < 0:
            return _V0
    if frame_type == COMMAND_FRAME and packet_type != VIDEO_METADATA:
        return _V0
    if packet_type == VIDEO_MULTITRACK:
        walked = _walk(payload, pos, n, True)
        if isinstance(walked, str):
            return _V0
        _mt, packet_type, records = walked
        if frame_type > COMMAND_FRAME and packet_type != VIDEO_METADATA:
            return _V0
        header = _VIDEO_HEADERS[packet_type]
        out = []
        for track_id, fourcc, start, _ct, end in records:
            info = _VIDEO_FOURCC.get(fourcc)
            codec = _UNKNOWN if info is None else info[0]
            out.append(TrackInfo(VIDEO, track_id, header, _record_key(
                VIDEO, frame_type, packet_type, codec, payload, start, end)))
        return tuple(out)
    if ((frame_type > COMMAND_FRAME and packet_type != VIDEO_METADATA) or pos + 4 > n
            or packet_type > VIDEO_MPEG2TS_SEQUENCE_START):
        return _V0
    if packet_type == VIDEO_CODED_FRAMES or packet_type == VIDEO_CODED_FRAMES_X:
        info = _VIDEO_FOURCC.get(_fourcc(payload, pos))
        pos += 4
        if packet_type == VIDEO_CODED_FRAMES and info is not None and info[2]:
            if pos + 3 > n:
                return _V0
            pos += 3
        if frame_type == 0:
            scan = None if info is None else _KEY_SCANNERS.get(info[0])
            return _V0_KEY if scan is not None and scan(payload, pos, n) else _V0
        return _V0_KEY if frame_type == 1 or frame_type == 4 else _V0
    header = _VIDEO_HEADERS[packet_type]
    return _V0_SEQUENCE if header == HEADER_SEQUENCE else _V0_METADATA if header else _V0


def _classify_ex_audio(payload: Buffer, n: int, b0: int) -> tuple[TrackInfo, ...]:
    """:func:`classify` of Enhanced audio with ModEx or multitrack headers."""
    packet_type = b0 & 0x0F
    pos = 1
    if packet_type == AUDIO_MODEX:
        pos, packet_type, _ = _skip_modex(payload, 1, n)
        if pos < 0:
            return _A0
    if packet_type == AUDIO_MULTITRACK:
        walked = _walk(payload, pos, n, False)
        if isinstance(walked, str):
            return _A0
        _mt, packet_type, records = walked
        header = _AUDIO_HEADERS[packet_type]
        key = packet_type == AUDIO_CODED_FRAMES
        return tuple(TrackInfo(AUDIO, record[0], header, key) for record in records)
    if pos + 4 > n or packet_type > AUDIO_MULTICHANNEL_CONFIG or packet_type == 3:
        return _A0
    if packet_type == AUDIO_CODED_FRAMES:
        return _A0_CODED
    if packet_type == AUDIO_SEQUENCE_START:
        return _A0_SEQUENCE
    return _A0_MULTICHANNEL if packet_type == AUDIO_MULTICHANNEL_CONFIG else _A0


# -- keyframes in the bitstream (Enhanced FrameType 0) ------------------------------------
#
# Each scanner looks at the codec data payload[pos:end] of one track and
# decides from the first picture header it reaches, hopping from unit to
# unit by their sizes (at most _MAX_UNITS of them): no loop over the bytes,
# no slice.  Inconsistent sizes (a unit running past the end) give False.


def _record_key(kind: str, frame_type: int, packet_type: int, codec: str, payload: Buffer,
                start: int, end: int) -> bool:
    """The keyframe flag of one track (see :attr:`Frame.is_keyframe`)."""
    if kind == AUDIO:
        return packet_type == AUDIO_CODED_FRAMES
    if packet_type != VIDEO_CODED_FRAMES and packet_type != VIDEO_CODED_FRAMES_X:
        return False
    if frame_type == 0:
        scan = _KEY_SCANNERS.get(codec)
        return scan is not None and scan(payload, start, end)
    return frame_type == 1 or frame_type == 4


def _nal_key(p: Buffer, pos: int, end: int, codec: int) -> bool:
    """4-byte length-prefixed NAL units (AVCC/HVCC/VVCC, as FFmpeg, OBS and
    gortmplib write them): is the first VCL NAL unit a random access point?
    ``codec``: 0 AVC (IDR, type 5, of the VCL types 1..5), 1 HEVC (IRAP,
    types 16..23 of 0..31), 2 VVC (IRAP, types 7..9 and 11 of 0..11)."""
    for _ in range(_MAX_UNITS):
        if pos + 5 > end:
            return False
        size = (p[pos] << 24) | (p[pos + 1] << 16) | (p[pos + 2] << 8) | p[pos + 3]
        pos += 4
        if size == 0 or pos + size > end:
            return False
        h = p[pos]
        if h & 0x80:  # forbidden_zero_bit
            return False
        if codec == 0:
            t = h & 0x1F
            if 1 <= t <= 5:
                return t == 5
        elif codec == 1:
            t = h >> 1
            if t < 32:
                return t >= 16 and t <= 23
        else:
            if size < 2:
                return False
            t = p[pos + 1] >> 3
            if t < 12:
                return 7 <= t <= 9 or t == 11
        pos += size
    return False


def _avc_key(p: Buffer, pos: int, end: int) -> bool:
    return _nal_key(p, pos, end, 0)


def _hevc_key(p: Buffer, pos: int, end: int) -> bool:
    return _nal_key(p, pos, end, 1)


def _vvc_key(p: Buffer, pos: int, end: int) -> bool:
    return _nal_key(p, pos, end, 2)


def _av1_key(p: Buffer, pos: int, end: int) -> bool:
    """A temporal unit of low-overhead OBUs (obu_header, leb128 obu_size,
    payload): is its first shown frame a key frame?  A frame (6) or frame
    header (3) OBU starts with show_existing_frame(1), frame_type(2) (0 =
    KEY_FRAME), show_frame(1), unless the sequence header of the unit says
    reduced_still_picture_header (then it is a key frame).  Hidden frames
    are passed over; a shown existing frame is not taken as a key frame."""
    reduced = False
    for _ in range(_MAX_UNITS):
        if pos >= end:
            return False
        h = p[pos]
        if h & 0x80:  # obu_forbidden_bit
            return False
        obu_type = (h >> 3) & 0x0F
        pos += 2 if h & 0x04 else 1  # obu_extension_flag: one more byte
        if pos > end:
            return False
        if h & 0x02:  # obu_has_size_field
            size = 0
            shift = 0
            while True:
                if pos >= end or shift > 49:
                    return False
                b = p[pos]
                pos += 1
                size |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
        else:
            size = end - pos
        if pos + size > end:
            return False
        if size:
            if obu_type == 1:  # sequence header: seq_profile(3) still_picture(1) reduced(1)
                reduced = bool(p[pos] & 0x08)
            elif obu_type == 3 or obu_type == 6:
                if reduced:
                    return True
                b = p[pos]
                if b & 0x80:  # show_existing_frame
                    return False
                if b & 0x10:  # show_frame
                    return b & 0x60 == 0  # frame_type KEY_FRAME
        pos += size
    return False


def _vp9_frame_key(p: Buffer, pos: int, end: int) -> bool:
    """One VP9 frame: frame_marker(2) = 2, profile_low(1), profile_high(1),
    [reserved_zero(1) in profile 3], show_existing_frame(1), frame_type(1)
    (0 = KEY_FRAME), show_frame(1), error_resilient_mode(1), then for a key
    frame the sync code 0x49 0x83 0x42."""
    if pos + 5 > end:
        return False
    b = p[pos]
    if b >> 6 != 2:
        return False
    if b & 0x30 == 0x30:  # profile 3: one more bit before show_existing_frame
        if b & 0x06:  # show_existing_frame or frame_type 1
            return False
        head = (b << 32) | (p[pos + 1] << 24) | (p[pos + 2] << 16) | (p[pos + 3] << 8) | p[pos + 4]
        return (head >> 7) & 0xFFFFFF == 0x498342
    if b & 0x0C:
        return False
    return p[pos + 1] == 0x49 and p[pos + 2] == 0x83 and p[pos + 3] == 0x42


def _vp9_key(p: Buffer, pos: int, end: int) -> bool:
    """A VP9 frame, or a superframe (frames, then an index whose first and
    last byte are 0b110 mm fff: frame sizes of mm + 1 bytes each, fff + 1
    frames): does it hold a key frame?"""
    if pos >= end:
        return False
    last = p[end - 1]
    if last & 0xE0 == 0xC0:
        frames = (last & 7) + 1
        mag = ((last >> 3) & 3) + 1
        index = end - (2 + mag * frames)
        if index >= pos and p[index] == last:
            q = index + 1
            start = pos
            for _ in range(frames):
                size = 0
                for i in range(mag):
                    size |= p[q + i] << (8 * i)
                q += mag
                if start + size > index:
                    return False
                if _vp9_frame_key(p, start, start + size):
                    return True
                start += size
            return False
    return _vp9_frame_key(p, pos, end)


def _vp8_key(p: Buffer, pos: int, end: int) -> bool:
    """A VP8 frame tag with key_frame (bit 0 clear) and the start code 9d 01 2a."""
    return (pos + 6 <= end and not p[pos] & 1 and p[pos + 3] == 0x9D and p[pos + 4] == 0x01
            and p[pos + 5] == 0x2A)


_KEY_SCANNERS: Final[dict[str, Callable[[Buffer, int, int], bool]]] = {
    "avc": _avc_key, "hevc": _hevc_key, "vvc": _vvc_key, "av1": _av1_key, "vp9": _vp9_key,
    "vp8": _vp8_key,
}


# -- legacy audio flags ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """The legacy AUDIODATA flags: ``sound_format`` (0-15), ``codec``,
    ``sample_rate`` (Hz), ``sample_size`` (bits), ``channels``.

    AAC streams always say 44100 Hz stereo here; the real values are in the
    AudioSpecificConfig (:func:`aac_config`).  Nellymoser 16/8 kHz and MP3
    8 kHz imply their rate, reported as such.
    """

    sound_format: int
    codec: str
    sample_rate: int
    sample_size: int
    channels: int


_RATES: Final = (5512, 11025, 22050, 44100)


def audio_format(payload: Buffer) -> AudioFormat | None:
    """The legacy audio flags of a payload; ``None`` for an empty or an
    Enhanced RTMP (SoundFormat 9) payload, which has no such flags."""
    if len(payload) == 0:
        return None
    b0 = payload[0]
    sound_format = b0 >> 4
    if sound_format == 9:
        return None
    rate = _RATES[(b0 >> 2) & 3]
    channels = 2 if b0 & 1 else 1
    if sound_format == 4:
        rate, channels = 16000, 1
    elif sound_format == 5 or sound_format == 14:
        rate = 8000
        if sound_format == 5:
            channels = 1
    return AudioFormat(sound_format, _LEGACY_AUDIO[sound_format], rate,
                       16 if b0 & 2 else 8, channels)


# -- codec configuration records -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AVCConfig:
    """The facts of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15).

    ``profile`` (profile_idc: 66 baseline, 77 main, 100 high, ...),
    ``compatibility`` (constraint flags), ``level`` (level_idc: 31 = 3.1),
    ``nal_length_size`` (bytes of each NAL unit's length prefix), and the
    parameter sets as bytes.
    """

    profile: int
    compatibility: int
    level: int
    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


def avc_config(data: Buffer) -> AVCConfig:
    """Parse an AVCDecoderConfigurationRecord (the data of an AVC sequence
    header: ``frame.data``).  Raises :class:`~rtmpx.errors.ProtocolError`
    if it is truncated or not version 1."""
    view = memoryview(data)
    n = len(view)
    if n < 7:
        raise ProtocolError(f"AVCDecoderConfigurationRecord too short ({n} bytes)")
    if view[0] != 1:
        raise ProtocolError(f"AVCDecoderConfigurationRecord version {view[0]}, expected 1")
    pos = 5
    sets: list[tuple[bytes, ...]] = []
    for mask in (0x1F, 0xFF):
        if pos >= n:
            raise ProtocolError("AVCDecoderConfigurationRecord truncated")
        count = view[pos] & mask
        pos += 1
        items = []
        for _ in range(count):
            if pos + 2 > n:
                raise ProtocolError("AVCDecoderConfigurationRecord truncated")
            size = (view[pos] << 8) | view[pos + 1]
            pos += 2
            if pos + size > n:
                raise ProtocolError("AVCDecoderConfigurationRecord truncated")
            items.append(view[pos:pos + size].tobytes())
            pos += size
        sets.append(tuple(items))
    return AVCConfig(view[1], view[2], view[3], (view[4] & 3) + 1, sets[0], sets[1])


@dataclass(frozen=True, slots=True)
class AACConfig:
    """The facts of an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).

    ``object_type`` (2 AAC-LC, 5 SBR/HE-AAC, 29 PS, ...), ``sample_rate``
    (Hz; of the core, explicit SBR/PS extension signalling is not followed),
    ``channels`` (from channelConfiguration: 1-6, 7 -> 8, 0 = defined in a
    program config element, reported as 0).
    """

    object_type: int
    sample_rate: int
    channels: int


_AAC_RATES: Final = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
                     11025, 8000, 7350)
_AAC_CHANNELS: Final = (0, 1, 2, 3, 4, 5, 6, 8)


def aac_config(data: Buffer) -> AACConfig:
    """Parse an AudioSpecificConfig (the data of an AAC sequence header).
    Raises :class:`~rtmpx.errors.ProtocolError` if truncated or invalid."""
    view = memoryview(data)
    n = len(view)
    if n < 2:
        raise ProtocolError(f"AudioSpecificConfig too short ({n} bytes)")
    head = int.from_bytes(view[:min(n, 6)], "big")
    avail = 8 * min(n, 6)
    used = 0

    def bits(count: int) -> int:
        nonlocal used
        if used + count > avail:
            raise ProtocolError("AudioSpecificConfig truncated")
        used += count
        return (head >> (avail - used)) & ((1 << count) - 1)

    object_type = bits(5)
    if object_type == 31:
        object_type = 32 + bits(6)
    index = bits(4)
    if index == 15:
        rate = bits(24)
    elif index < len(_AAC_RATES):
        rate = _AAC_RATES[index]
    else:
        raise ProtocolError(f"AudioSpecificConfig reserved sampling index {index}")
    config = bits(4)
    if config > 7:
        raise ProtocolError(f"AudioSpecificConfig reserved channel configuration {config}")
    return AACConfig(object_type, rate, _AAC_CHANNELS[config])
