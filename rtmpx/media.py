"""Media payloads: the FLV audio/video tag bodies that RTMP audio (8) and
video (9) messages carry.

::

    >>> from rtmpx import media
    >>> f = media.parse_video(40, payload)          # or Frame.parse("video", 40, payload)
    >>> f.codec, f.is_keyframe, f.is_sequence_header, f.composition_time
    ('avc', True, False, 80)
    >>> f.data                                      # memoryview: codec data, no copy

One :class:`Frame` per message, built with a few index operations (no loop
over the bytes), so that a relay can afford it for every message; the
relay's GOP cache can use :func:`is_video_keyframe` and
:func:`is_sequence_header`, which build nothing.

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
  FourCC (``avc1``, ``hvc1``, ``av01``, ``vp09``, ``vp08``); CodedFrames of
  ``avc1``/``hvc1`` carry a composition time, CodedFramesX and the other
  codecs do not.  Metadata packets (PacketType 4, AMF in the body) ignore
  FrameType; command frames have no FourCC.
* Legacy audio: ``SoundFormat(4) | rate(2) | size(1) | channels(1)``; AAC
  (10) carries ``AACPacketType`` (0 AudioSpecificConfig, 1 raw).  See
  :func:`audio_format` for rate, size and channels.
* Enhanced RTMP v2 audio: SoundFormat 9 and ``AudioPacketType`` (0
  SequenceStart, 1 CodedFrames, 2 SequenceEnd, 4 MultichannelConfig,
  5 Multitrack, 7 ModEx), then a FourCC (``Opus``, ``fLaC``, ``ac-3``,
  ``ec-3``, ``mp4a``, ``.mp3``).

Not interpreted (the frame is still classified, never misread):

* ModEx entries are skipped by their sizes; their content (today only
  TimestampOffsetNano) is not reported.
* Multitrack: ``codec`` is that of the tracks when one FourCC covers them all
  (OneTrack, ManyTracks, or ManyTracksManyCodecs whose first 8 tracks share
  one), else ``"multitrack"``; ``fourcc`` is the first track's;
  ``data_offset`` points at the first track record (trackId, or the
  per-track FourCC), whose layout the caller walks; ``composition_time``
  is 0.
* Codec configuration beyond :func:`avc_config` and :func:`aac_config`;
  video Metadata and MultichannelConfig bodies.

A relay should remember, next to the sequence headers, the latest audio
MultichannelConfig (``packet_type == AUDIO_MULTICHANNEL_CONFIG``) and video
Metadata (:attr:`Frame.is_metadata`) packets: they are not sequence headers
here, but a player joining later needs them too.

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

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

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
    "INTER_FRAME",
    "KEY_FRAME",
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
    "aac_config",
    "audio_format",
    "avc_config",
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

_UNKNOWN: Final = "unknown"
_MULTITRACK: Final = "multitrack"
_MAX_TRACK_WALK: Final = 8

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
}
_AUDIO_FOURCC: Final[dict[bytes, tuple[str, bytes, bool]]] = {
    b"Opus": ("opus", b"Opus", False),
    b"fLaC": ("flac", b"fLaC", False),
    b"ac-3": ("ac3", b"ac-3", False),
    b"ec-3": ("eac3", b"ec-3", False),
    b"mp4a": ("aac", b"mp4a", False),
    b".mp3": ("mp3", b".mp3", False),
}


class _FrameSlots:
    """The storage of :class:`Frame` (see :class:`_FrameBuilder` for why it is separate)."""

    __slots__ = (
        "codec", "composition_time", "data_offset", "fourcc", "frame_type", "is_end_of_sequence",
        "is_enhanced", "is_keyframe", "is_multitrack", "is_sequence_header", "kind",
        "packet_type", "payload", "timestamp",
    )


@dataclass(frozen=True, slots=True)
class Frame(_FrameSlots):
    """One audio or video message payload (an FLV tag body), classified.

    * ``kind``: ``"audio"`` or ``"video"``; ``timestamp``: ms, as given.
    * ``payload``: the whole body, the object given (never copied).
    * ``codec``: ``"avc"``, ``"hevc"``, ``"av1"``, ``"vp9"``, ``"vp8"``,
      ``"h263"``, ``"screen"``, ``"screen2"``, ``"vp6"``, ``"vp6a"``,
      ``"aac"``, ``"mp3"``, ``"opus"``, ``"flac"``, ``"ac3"``, ``"eac3"``,
      ``"speex"``, ``"pcm"``, ``"adpcm"``, ``"nellymoser"``, ``"g711a"``,
      ``"g711u"``, ``"native"`` (device-specific audio), ``"multitrack"``
      or ``"unknown"``.
    * ``is_keyframe``: video FrameType 1 (key) or 4 (generated key), not a
      command or metadata packet; note that sequence headers and ends carry
      FrameType 1 too.  True for every well-formed audio frame.
    * ``is_sequence_header``: AVC/HEVC sequence header, AAC
      AudioSpecificConfig, Enhanced SequenceStart or MPEG2TSSequenceStart.
    * ``is_end_of_sequence``: AVC end of sequence, Enhanced SequenceEnd.
    * ``composition_time``: signed 24-bit ms (pts - dts) of legacy AVC-like
      NAL units and Enhanced ``avc1``/``hvc1`` CodedFrames; else 0.
    * ``data_offset``: where the codec data starts in ``payload``
      (:attr:`data`); for a command frame, the command byte.
    * ``frame_type``: video FrameType (0 for audio); ``packet_type``: the
      AVCPacketType, AACPacketType or Enhanced PacketType (after ModEx and
      multitrack headers), -1 when the format has none.
    * ``fourcc``: the Enhanced RTMP FourCC (bytes), else ``None``;
      ``is_enhanced``: an Enhanced RTMP header; ``is_multitrack``: an
      Enhanced multitrack packet.
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
    ``__init__``, about 1.4 us for these 14 fields.  The parsers instead
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
        is_enhanced: bool, is_multitrack: bool,
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


_new = object.__new__


def _make(
    kind: str, timestamp: int, payload: Buffer, codec: str, is_keyframe: bool,
    is_sequence_header: bool, is_end_of_sequence: bool, composition_time: int,
    data_offset: int, frame_type: int, packet_type: int, fourcc: bytes | None,
    is_enhanced: bool, is_multitrack: bool,
) -> Frame:
    f = _FrameBuilder(kind, timestamp, payload, codec, is_keyframe, is_sequence_header,
                      is_end_of_sequence, composition_time, data_offset, frame_type,
                      packet_type, fourcc, is_enhanced, is_multitrack)
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


def _skip_modex(payload: Buffer, pos: int, n: int) -> tuple[int, int]:
    """Skip ModEx entries from ``pos`` (just after the header byte whose
    PacketType was ModEx): return (position after them, the real PacketType),
    or (-1, -1) if they run past the end."""
    while True:
        if pos >= n:
            return -1, -1
        size = payload[pos] + 1
        pos += 1
        if size == 256:
            if pos + 2 > n:
                return -1, -1
            size = ((payload[pos] << 8) | payload[pos + 1]) + 1
            pos += 2
        pos += size
        if pos >= n:
            return -1, -1
        packet_type = payload[pos] & 0x0F
        pos += 1
        if packet_type != 7:  # ModEx is 7 for audio and video alike
            return pos, packet_type


def _multitrack(
    payload: Buffer, pos: int, n: int, table: dict[bytes, tuple[str, bytes, bool]],
) -> tuple[int, int, int, str, bytes | None, bool]:
    """Read a multitrack header at ``pos`` (the byte
    ``AvMultitrackType(4) | PacketType(4)``).  Return (data offset = first
    track record, multitrack type, packet type, codec, FourCC, known), or a
    data offset of -1 if malformed."""
    if pos >= n:
        return -1, 0, 0, _UNKNOWN, None, False
    b = payload[pos]
    mt = b >> 4
    packet_type = b & 0x0F
    pos += 1
    if mt > MANY_TRACKS_MANY_CODECS:
        return -1, mt, packet_type, _UNKNOWN, None, False
    if mt != MANY_TRACKS_MANY_CODECS:
        if pos + 4 > n:
            return -1, mt, packet_type, _UNKNOWN, None, False
        fc = _fourcc(payload, pos)
        info = table.get(fc)
        if info is None:
            return pos + 4, mt, packet_type, _UNKNOWN, fc, False
        return pos + 4, mt, packet_type, info[0], info[1], True
    # ManyTracksManyCodecs: records are FourCC, trackId, UI24 size, body.
    first: bytes | None = None
    p = pos
    walked = 0
    same = True
    while p < n and walked < _MAX_TRACK_WALK:
        if p + 8 > n:
            return -1, mt, packet_type, _UNKNOWN, None, False
        track_fc: bytes = payload[p:p + 4]  # type: ignore[assignment]
        if first is None:
            first = track_fc if type(track_fc) is bytes else bytes(track_fc)
        elif track_fc != first:
            same = False
            break
        p += 8 + ((payload[p + 5] << 16) | (payload[p + 6] << 8) | payload[p + 7])
        walked += 1
    if first is None:
        return -1, mt, packet_type, _UNKNOWN, None, False
    info = table.get(first)
    if info is None:
        return pos, mt, packet_type, _UNKNOWN, first, False
    if not same or (p < n and walked >= _MAX_TRACK_WALK):
        return pos, mt, packet_type, _MULTITRACK, info[1], True
    return pos, mt, packet_type, info[0], info[1], True


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
    f.is_keyframe = frame_type == 1 or frame_type == 4
    f.is_sequence_header = packet_type == 0
    f.is_end_of_sequence = packet_type == 2
    f.composition_time = ct
    f.data_offset = offset
    f.frame_type = frame_type
    f.packet_type = packet_type
    f.fourcc = None
    f.is_enhanced = False
    f.is_multitrack = False
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


def _parse_ex_video(timestamp: int, payload: Buffer, b0: int, n: int, strict: bool) -> Frame:
    frame_type = (b0 >> 4) & 7
    packet_type = b0 & 0x0F
    pos = 1
    if packet_type == VIDEO_MODEX:
        pos, packet_type = _skip_modex(payload, 1, n)
        if pos < 0:
            return _bad(VIDEO, timestamp, payload, strict, "ModEx entries run past the end")
    if frame_type == COMMAND_FRAME and packet_type != VIDEO_METADATA:
        if pos >= n:
            return _bad(VIDEO, timestamp, payload, strict, "command frame without its command")
        return _make(VIDEO, timestamp, payload, _UNKNOWN, False, False, False, 0, pos, 5,
                     packet_type, None, True, False)
    if (frame_type == 0 or frame_type > COMMAND_FRAME) and packet_type != VIDEO_METADATA:
        return _bad(VIDEO, timestamp, payload, strict, f"reserved FrameType {frame_type}")
    ct = 0
    multitrack = packet_type == VIDEO_MULTITRACK
    if multitrack:
        pos, _mt, packet_type, codec, fourcc, known = _multitrack(
            payload, pos, n, _VIDEO_FOURCC)
        if pos < 0 or packet_type > VIDEO_MPEG2TS_SEQUENCE_START:
            return _bad(VIDEO, timestamp, payload, strict, "malformed multitrack header")
    else:
        if pos + 4 > n:
            return _bad(VIDEO, timestamp, payload, strict, "no room for the FourCC")
        fc: bytes = payload[pos:pos + 4]  # type: ignore[assignment]
        info = _VIDEO_FOURCC.get(fc)
        pos += 4
        if info is None:
            fourcc = fc if type(fc) is bytes else bytes(fc)
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
    if strict and not known:
        raise ProtocolError(f"unknown video FourCC {fourcc!r}")
    f = _new(_FrameBuilder)
    f.kind = VIDEO
    f.timestamp = timestamp
    f.payload = payload
    f.codec = codec
    f.is_keyframe = (frame_type == 1 or frame_type == 4) and packet_type != VIDEO_METADATA
    f.is_sequence_header = packet_type == 0 or packet_type == VIDEO_MPEG2TS_SEQUENCE_START
    f.is_end_of_sequence = packet_type == VIDEO_SEQUENCE_END
    f.composition_time = ct
    f.data_offset = pos
    f.frame_type = frame_type
    f.packet_type = packet_type
    f.fourcc = fourcc
    f.is_enhanced = True
    f.is_multitrack = multitrack
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
    f.is_keyframe = True
    f.is_sequence_header = packet_type == 0
    f.is_end_of_sequence = False
    f.composition_time = 0
    f.data_offset = offset
    f.frame_type = 0
    f.packet_type = packet_type
    f.fourcc = None
    f.is_enhanced = False
    f.is_multitrack = False
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


def _parse_ex_audio(timestamp: int, payload: Buffer, b0: int, n: int, strict: bool) -> Frame:
    packet_type = b0 & 0x0F
    pos = 1
    if packet_type == AUDIO_MODEX:
        pos, packet_type = _skip_modex(payload, 1, n)
        if pos < 0:
            return _bad(AUDIO, timestamp, payload, strict, "ModEx entries run past the end")
    multitrack = packet_type == AUDIO_MULTITRACK
    if multitrack:
        pos, _mt, packet_type, codec, fourcc, known = _multitrack(
            payload, pos, n, _AUDIO_FOURCC)
        if pos < 0:
            return _bad(AUDIO, timestamp, payload, strict, "malformed multitrack header")
    else:
        if pos + 4 > n:
            return _bad(AUDIO, timestamp, payload, strict, "no room for the FourCC")
        fc: bytes = payload[pos:pos + 4]  # type: ignore[assignment]
        info = _AUDIO_FOURCC.get(fc)
        pos += 4
        if info is None:
            fourcc = fc if type(fc) is bytes else bytes(fc)
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
    f.is_keyframe = True
    f.is_sequence_header = packet_type == AUDIO_SEQUENCE_START
    f.is_end_of_sequence = packet_type == AUDIO_SEQUENCE_END
    f.composition_time = 0
    f.data_offset = pos
    f.frame_type = 0
    f.packet_type = packet_type
    f.fourcc = fourcc
    f.is_enhanced = True
    f.is_multitrack = multitrack
    f.__class__ = Frame  # type: ignore[assignment]
    return f  # type: ignore[return-value]


# -- helpers for a relay's GOP cache: no Frame built ---------------------------------


def is_video_keyframe(payload: Buffer) -> bool:
    """Same as ``parse_video(0, payload).is_keyframe``, without building a Frame."""
    n = len(payload)
    if n == 0:
        return False
    b0 = payload[0]
    if b0 & 0x80:
        packet_type = b0 & 0x0F
        if n >= 5 and packet_type < VIDEO_METADATA:
            frame_type = (b0 >> 4) & 7
            if frame_type != 1 and frame_type != 4:
                return False
            if packet_type != VIDEO_CODED_FRAMES:
                return True
        return parse_video(0, payload).is_keyframe
    frame_type = b0 >> 4
    if frame_type != 1 and frame_type != 4:
        return False
    codec_id = b0 & 0x0F
    if codec_id == 7 or codec_id == 12 or codec_id == 13:  # AVC-like
        return n >= 5 and payload[1] <= 2
    return _LEGACY_VIDEO[codec_id] is not _UNKNOWN


def is_sequence_header(type_id: int, payload: Buffer) -> bool:
    """Is this message (type 8 audio or 9 video) a sequence header (AVC/HEVC
    decoder configuration, AAC AudioSpecificConfig, Enhanced SequenceStart)?

    Same as ``Frame.parse(...).is_sequence_header`` without building a Frame.
    """
    n = len(payload)
    if n < 2:
        return False
    b0 = payload[0]
    if type_id == 9:
        if b0 & 0x80:
            packet_type = b0 & 0x0F
            if packet_type == VIDEO_SEQUENCE_START or packet_type == VIDEO_MPEG2TS_SEQUENCE_START:
                return n >= 5 and (b0 >> 4) & 7 not in (0, 5, 6, 7)
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
