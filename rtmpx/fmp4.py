"""Fragmented MP4 (CMAF): init segments and fragments from RTMP media.

::

    >>> from rtmpx import fmp4
    >>> video = fmp4.video_track(video_sequence_header_payload)   # RTMP type 9 body
    >>> audio = fmp4.audio_track(audio_sequence_header_payload)   # RTMP type 8 body
    >>> video.codecs, audio.codecs
    ('avc1.64001f', 'mp4a.40.2')
    >>> init = fmp4.init_segment([video, audio])                  # ftyp + moov
    >>> frag = fmp4.fragment(1, {video.track_id: [fmp4.Sample(0, 3600, nal_units, True)],
    ...                          audio.track_id: [fmp4.Sample(0, 1024, aac_frame)]})

What it writes (ISO/IEC 14496-12, CMAF ISO/IEC 23000-19):

* :func:`init_segment`: ``ftyp`` (major brand ``iso6``; compatible
  ``iso6``, ``cmfc``, ``mp41``) and ``moov``: ``mvhd`` (timescale 1000,
  no duration), one ``trak`` per track (``tkhd`` enabled and in movie,
  ``mdia``/``mdhd`` with the track's timescale, ``hdlr`` ``vide``/``soun``,
  ``minf`` with ``vmhd``/``smhd``, ``dinf``/``dref``, and an ``stbl`` whose
  only entry is the sample description: ``stts``, ``stsc``, ``stsz`` and
  ``stco`` are empty), then ``mvex`` with a ``trex`` per track.
* :func:`fragment`: one ``moof`` (``mfhd`` sequence number; per track with
  samples a ``traf``: ``tfhd`` default-base-is-moof, ``tfdt`` version 1
  (64-bit baseMediaDecodeTime), ``trun`` version 1 with a data offset and
  per sample duration, size, flags and, for video, a signed composition
  offset) and one ``mdat`` with the samples, track after track.  A sync
  sample's flags say "depends on no other" (``0x02000000``), the others
  "depends on others, non-sync" (``0x01010000``): what MSE and FFmpeg read
  as keyframes.

Codecs (sample entry + configuration box; :attr:`VideoTrack.codecs` /
:attr:`AudioTrack.codecs` is the RFC 6381 string for HLS ``CODECS`` and
``MediaSource.isTypeSupported``):

* H.264 (legacy CodecID 7, Enhanced ``avc1``): ``avc1`` + ``avcC``; the
  sequence header's body is the AVCDecoderConfigurationRecord.
  ``avc1.PPCCLL``.
* HEVC (legacy CodecID 12, Enhanced ``hvc1``): ``hvc1`` + ``hvcC`` (the
  HEVCDecoderConfigurationRecord).  ``hvc1.1.6.L93.B0`` style.
* AV1 (legacy CodecID 13 as in the forks, Enhanced ``av01``): ``av01`` +
  ``av1C`` (the AV1CodecConfigurationRecord).  ``av01.0.04M.08``.
* VP9 (Enhanced ``vp09``): ``vp09`` + ``vpcC`` (version 1, the
  VPCodecConfigurationRecord as FFmpeg writes it in FLV).  ``vp09.00.10.08``.
* AAC (legacy SoundFormat 10, Enhanced ``mp4a``): ``mp4a`` + ``esds``
  carrying the AudioSpecificConfig; timescale = its sample rate.
  ``mp4a.40.<object type>``.
* Opus (Enhanced ``Opus``): ``Opus`` + ``dOps`` built from the OpusHead of
  the SequenceStart (or, when a publisher sends none, a stereo default:
  :func:`opus_track`); timescale 48000.  ``opus``.

Video width and height (``tkhd`` and the sample entry) come from the SPS
(H.264, HEVC: an exp-Golomb reader over the RBSP, emulation prevention
removed, every read bounds-checked) or the AV1 sequence header OBU; if
that fails, or for VP9, from the ``width``/``height`` given (e.g. from
``onMetaData``), else 0.  A parameter set that does not parse never
raises: only a configuration record that is itself malformed does.

Sample data is written as it comes in the RTMP payload: length-prefixed
NAL units (AVCC/HVCC, with the record's length size), AV1 OBUs of a
temporal unit, a VP9 frame, a raw AAC frame, an Opus packet.

Errors: :func:`video_track` and :func:`audio_track` raise
:class:`~rtmpx.errors.ProtocolError` for a payload that is not a sequence
header of a supported codec or whose configuration record is malformed.
:func:`fragment` and :func:`init_segment` raise :class:`ValueError` for
values the caller got wrong (a negative time, a duration beyond 32 bits,
an unknown track): they are the packager's bugs, not the peer's.

Everything here is pure: no I/O, no clock; boxes are built with
:mod:`struct` and joined once, sample data is never walked in Python.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from .errors import ProtocolError
from .media import (
    Buffer,
    Frame,
    aac_config,
    avc_config,
    parse_audio,
    parse_video,
)

__all__ = [
    "AUDIO_TRACK_ID",
    "NON_SYNC_SAMPLE_FLAGS",
    "SYNC_SAMPLE_FLAGS",
    "VIDEO_TIMESCALE",
    "VIDEO_TRACK_ID",
    "AudioTrack",
    "Sample",
    "Track",
    "VideoTrack",
    "audio_track",
    "fragment",
    "init_segment",
    "opus_frame_samples",
    "opus_track",
    "video_track",
]

#: The timescale of every video track: 90 kHz (RTMP milliseconds x 90).
VIDEO_TIMESCALE: Final = 90000
#: Default track ids: video 1, audio 2.
VIDEO_TRACK_ID: Final = 1
AUDIO_TRACK_ID: Final = 2
#: ``sample_flags`` of a sync sample: sample_depends_on = 2 (no other).
SYNC_SAMPLE_FLAGS: Final = 0x02000000
#: ``sample_flags`` of other samples: sample_depends_on = 1, sample_is_non_sync_sample.
NON_SYNC_SAMPLE_FLAGS: Final = 0x01010000

_MAX_CONFIG: Final = 64 * 1024  # bytes of a codec configuration record we accept
_MAX_PARAMETER_SET: Final = 1024  # bytes of an SPS we parse for the picture size
_MAX_UINT32: Final = 0xFFFFFFFF

_U8: Final = struct.Struct(">B")
_U32: Final = struct.Struct(">I")
_HEAD: Final = struct.Struct(">I4s")
_FULL_HEAD: Final = struct.Struct(">I4sI")


# -- values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """A video track: what the init segment says of it.

    ``codec`` (``"avc"``, ``"hevc"``, ``"av1"``, ``"vp9"``), ``sample_entry``
    (``avc1``, ``hvc1``, ``av01``, ``vp09``), ``config_box`` (``avcC``,
    ``hvcC``, ``av1C``, ``vpcC``) and ``config`` (its body), ``width`` and
    ``height`` (pixels, 0 if unknown), ``codecs`` (RFC 6381), ``track_id``;
    the timescale is always :data:`VIDEO_TIMESCALE`.
    """

    codec: str
    sample_entry: bytes
    config_box: bytes
    config: bytes
    width: int
    height: int
    codecs: str
    track_id: int = VIDEO_TRACK_ID

    @property
    def kind(self) -> str:
        return "video"

    @property
    def timescale(self) -> int:
        return VIDEO_TIMESCALE


@dataclass(frozen=True, slots=True)
class AudioTrack:
    """An audio track: ``codec`` (``"aac"``, ``"opus"``), ``sample_entry``
    (``mp4a``, ``Opus``), ``config`` (the AudioSpecificConfig, or the
    ``dOps`` body), ``sample_rate`` (Hz, also the timescale), ``channels``,
    ``frame_samples`` (samples of one coded frame: 1024 for AAC, 960 (20
    ms) as the Opus default when a packet's own TOC cannot be read),
    ``codecs`` (RFC 6381), ``track_id``."""

    codec: str
    sample_entry: bytes
    config: bytes
    sample_rate: int
    channels: int
    frame_samples: int
    codecs: str
    track_id: int = AUDIO_TRACK_ID

    @property
    def kind(self) -> str:
        return "audio"

    @property
    def timescale(self) -> int:
        return self.sample_rate


Track: TypeAlias = VideoTrack | AudioTrack


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a fragment.

    ``decode_time`` (in the track's timescale; only the first sample's is
    written, as the ``tfdt``: the following ones are implied by the
    durations), ``duration`` (timescale units, 0 to 2**32 - 1), ``data``
    (the coded frame), ``keyframe`` (a sync sample; every audio frame is
    one), ``composition_offset`` (presentation minus decode time, signed
    32-bit, timescale units)."""

    decode_time: int
    duration: int
    data: Buffer
    keyframe: bool = True
    composition_offset: int = 0


# -- sequence headers -> tracks ----------------------------------------------------------


def _primary_data(frame: Frame) -> tuple[str, memoryview]:
    """(codec, codec data) of the primary track of a frame."""
    if not frame.is_multitrack:
        return frame.codec, frame.data
    for track in frame.tracks():
        if track.track_id == 0:
            return track.codec, track.data
    raise ProtocolError("multitrack sequence header without track 0")


def video_track(payload: Buffer, *, track_id: int = VIDEO_TRACK_ID, width: int = 0,
                height: int = 0) -> VideoTrack:
    """The video track described by a video sequence header (an RTMP type 9
    body: legacy AVC/HEVC/AV1 sequence header or Enhanced SequenceStart).
    ``width``/``height`` are used when the parameter sets do not give the
    picture size.  Raises :class:`~rtmpx.errors.ProtocolError` if the
    payload is not such a header or its record is malformed."""
    frame = parse_video(0, payload, strict=True)
    if not frame.is_sequence_header:
        raise ProtocolError("not a video sequence header")
    codec, data = _primary_data(frame)
    if len(data) > _MAX_CONFIG:
        raise ProtocolError(f"{codec} configuration record of {len(data)} bytes is too large")
    if codec == "avc":
        return _avc_track(data, track_id, width, height)
    if codec == "hevc":
        return _hevc_track(data, track_id, width, height)
    if codec == "av1":
        return _av1_track(data, track_id, width, height)
    if codec == "vp9":
        return _vp9_track(data, track_id, width, height)
    raise ProtocolError(f"video codec {codec!r} is not supported in fragmented MP4")


def audio_track(payload: Buffer, *, track_id: int = AUDIO_TRACK_ID) -> AudioTrack:
    """The audio track described by an audio sequence header (an RTMP type 8
    body: legacy AAC AudioSpecificConfig or Enhanced SequenceStart of
    ``mp4a`` or ``Opus``; an Opus SequenceStart without a body gives the
    default of :func:`opus_track`).  Raises
    :class:`~rtmpx.errors.ProtocolError` otherwise."""
    frame = parse_audio(0, payload, strict=True)
    if not frame.is_sequence_header:
        raise ProtocolError("not an audio sequence header")
    codec, data = _primary_data(frame)
    if len(data) > _MAX_CONFIG:
        raise ProtocolError(f"{codec} configuration of {len(data)} bytes is too large")
    if codec == "aac":
        return _aac_track(data, track_id)
    if codec == "opus":
        if not len(data):
            return opus_track(track_id=track_id)
        return _opus_track(data, track_id)
    raise ProtocolError(f"audio codec {codec!r} is not supported in fragmented MP4")


# -- H.264 ------------------------------------------------------------------------------


class _Short(Exception):
    """A bit reader ran past its data (caught inside this module)."""


class _Bits:
    """An MSB-first bit reader over an RBSP, every read bounds-checked."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start_byte: int = 0) -> None:
        self._data = data
        self._pos = 8 * start_byte
        self._end = 8 * len(data)

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        pos = self._pos
        if pos + n > self._end:
            raise _Short
        first = pos >> 3
        last = (pos + n - 1) >> 3
        chunk = int.from_bytes(self._data[first:last + 1], "big")
        shift = 8 * (last + 1) - (pos + n)
        self._pos = pos + n
        return (chunk >> shift) & ((1 << n) - 1)

    def skip(self, n: int) -> None:
        if self._pos + n > self._end:
            raise _Short
        self._pos += n

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise _Short
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) >> 1 if k & 1 else -(k >> 1)


def _rbsp(nal: bytes, header: int) -> bytes:
    """The RBSP of a NAL unit (its first ``header`` bytes dropped), at most
    :data:`_MAX_PARAMETER_SET` bytes of it, emulation prevention removed."""
    return nal[header:header + _MAX_PARAMETER_SET].replace(b"\x00\x00\x03", b"\x00\x00")


_AVC_HIGH_PROFILES: Final = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139,
                                       134, 135))
# chroma_format_idc -> (SubWidthC, SubHeightC)
_SUB_WH: Final = ((1, 1), (2, 2), (2, 1), (1, 1))


def _avc_sps_size(sps: bytes) -> tuple[int, int]:
    """Picture size from an H.264 SPS (7.3.2.1.1); raises _Short."""
    r = _Bits(_rbsp(sps, 1))
    profile = r.u(8)
    r.skip(16)  # constraint flags, level_idc
    r.ue()  # seq_parameter_set_id
    chroma = 1
    separate = 0
    if profile in _AVC_HIGH_PROFILES:
        chroma = r.ue()
        if chroma > 3:
            raise _Short
        if chroma == 3:
            separate = r.u(1)
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.u(1):
                    last = next_ = 8
                    for _ in range(16 if i < 6 else 64):
                        if next_:
                            next_ = (last + r.se() + 256) % 256
                        last = next_ or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.skip(1)
        r.se()
        r.se()
        cycle = r.ue()
        if cycle > 255:
            raise _Short
        for _ in range(cycle):
            r.se()
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if r.u(1):  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        array_type = 0 if separate else chroma
        if array_type == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_w, sub_h = _SUB_WH[array_type]
            unit_x, unit_y = sub_w, sub_h * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    return _sane(width, height)


def _sane(width: int, height: int) -> tuple[int, int]:
    if not (0 < width <= 0xFFFF and 0 < height <= 0xFFFF):
        raise _Short
    return width, height


def _avc_track(data: memoryview, track_id: int, width: int, height: int) -> VideoTrack:
    config = avc_config(data)
    if not config.sps:
        raise ProtocolError("AVCDecoderConfigurationRecord without an SPS")
    w, h = width, height
    for sps in config.sps:
        try:
            w, h = _avc_sps_size(sps)
            break
        except _Short:
            continue
    raw = data.tobytes()
    codecs = f"avc1.{raw[1]:02x}{raw[2]:02x}{raw[3]:02x}"
    return VideoTrack("avc", b"avc1", b"avcC", raw, w, h, codecs, track_id)


# -- HEVC -------------------------------------------------------------------------------


def _hevc_arrays(data: memoryview) -> dict[int, list[bytes]]:
    """The NAL unit arrays of an HEVCDecoderConfigurationRecord by NAL type
    (ISO/IEC 14496-15 8.3.3.1); raises ProtocolError if malformed."""
    n = len(data)
    if n < 23:
        raise ProtocolError(f"HEVCDecoderConfigurationRecord too short ({n} bytes)")
    if data[0] != 1:
        raise ProtocolError(f"HEVCDecoderConfigurationRecord version {data[0]}, expected 1")
    arrays: dict[int, list[bytes]] = {}
    pos = 23
    for _ in range(data[22]):
        if pos + 3 > n:
            raise ProtocolError("HEVCDecoderConfigurationRecord truncated")
        nal_type = data[pos] & 0x3F
        count = (data[pos + 1] << 8) | data[pos + 2]
        pos += 3
        units = arrays.setdefault(nal_type, [])
        for _ in range(count):
            if pos + 2 > n:
                raise ProtocolError("HEVCDecoderConfigurationRecord truncated")
            size = (data[pos] << 8) | data[pos + 1]
            pos += 2
            if pos + size > n:
                raise ProtocolError("HEVCDecoderConfigurationRecord truncated")
            units.append(data[pos:pos + size].tobytes())
            pos += size
    return arrays


def _hevc_sps_size(sps: bytes) -> tuple[int, int]:
    """Picture size from an HEVC SPS (7.3.2.2.1); raises _Short."""
    r = _Bits(_rbsp(sps, 2))
    r.skip(4)  # sps_video_parameter_set_id
    sub_layers = r.u(3)  # sps_max_sub_layers_minus1
    r.skip(1)
    r.skip(96)  # general profile_tier_level
    profile_present = []
    level_present = []
    for _ in range(sub_layers):
        profile_present.append(r.u(1))
        level_present.append(r.u(1))
    if sub_layers:
        r.skip(2 * (8 - sub_layers))
    for i in range(sub_layers):
        r.skip((88 if profile_present[i] else 0) + (8 if level_present[i] else 0))
    r.ue()  # sps_seq_parameter_set_id
    chroma = r.ue()
    if chroma > 3:
        raise _Short
    if chroma == 3 and r.u(1):  # separate_colour_plane_flag
        chroma = 0
    width = r.ue()
    height = r.ue()
    if r.u(1):  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        sub_w, sub_h = _SUB_WH[chroma]
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    return _sane(width, height)


def _reverse32(value: int) -> int:
    return int(f"{value:032b}"[::-1], 2)


def _hevc_codecs(raw: bytes) -> str:
    """``hvc1.<space><profile>.<compat>.<tier><level>[.<constraint bytes>]``
    (ISO/IEC 14496-15 annex E) from the record's general profile fields."""
    space = ("", "A", "B", "C")[raw[1] >> 6]
    tier = "H" if raw[1] & 0x20 else "L"
    profile = raw[1] & 0x1F
    compat = _reverse32(int.from_bytes(raw[2:6], "big"))
    constraints = list(raw[6:12])
    while constraints and not constraints[-1]:
        constraints.pop()
    parts = [f"hvc1.{space}{profile}", f"{compat:X}", f"{tier}{raw[12]}"]
    parts += [f"{b:X}" for b in constraints]
    return ".".join(parts)


def _hevc_track(data: memoryview, track_id: int, width: int, height: int) -> VideoTrack:
    arrays = _hevc_arrays(data)
    w, h = width, height
    for sps in arrays.get(33, ()):
        try:
            w, h = _hevc_sps_size(sps)
            break
        except _Short:
            continue
    raw = data.tobytes()
    return VideoTrack("hevc", b"hvc1", b"hvcC", raw, w, h, _hevc_codecs(raw), track_id)


# -- AV1 --------------------------------------------------------------------------------


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos >= len(data):
            raise _Short
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, pos
    raise _Short


def _av1_size(obus: bytes) -> tuple[int, int]:
    """Picture size from the sequence header OBU among ``obus`` (AV1 5.5)."""
    pos = 0
    for _ in range(16):
        if pos >= len(obus):
            break
        h = obus[pos]
        obu_type = (h >> 3) & 0x0F
        pos += 2 if h & 0x04 else 1
        if h & 0x02:
            size, pos = _leb128(obus, pos)
        else:
            size = len(obus) - pos
        if pos + size > len(obus):
            raise _Short
        if obu_type == 1:
            return _av1_sequence_size(obus[pos:pos + size])
        pos += size
    raise _Short


def _av1_sequence_size(seq: bytes) -> tuple[int, int]:
    r = _Bits(seq)
    r.skip(3)  # seq_profile
    r.skip(1)  # still_picture
    if r.u(1):  # reduced_still_picture_header
        r.skip(5)
    else:
        decoder_model = 0
        delay_length = 0
        if r.u(1):  # timing_info_present_flag
            r.skip(64)
            if r.u(1):  # equal_picture_interval: uvlc
                zeros = 0
                while not r.u(1):
                    zeros += 1
                    if zeros > 32:
                        raise _Short
                r.skip(zeros)
            decoder_model = r.u(1)
            if decoder_model:
                delay_length = r.u(5) + 1
                r.skip(32 + 5 + 5)
        display_delay = r.u(1)
        for _ in range(r.u(5) + 1):  # operating points
            r.skip(12)
            if r.u(5) > 7:
                r.skip(1)  # seq_tier
            if decoder_model and r.u(1):
                r.skip(2 * delay_length + 1)
            if display_delay and r.u(1):
                r.skip(4)
    width_bits = r.u(4) + 1
    height_bits = r.u(4) + 1
    return _sane(r.u(width_bits) + 1, r.u(height_bits) + 1)


def _av1_track(data: memoryview, track_id: int, width: int, height: int) -> VideoTrack:
    raw = data.tobytes()
    if len(raw) < 4 or raw[0] != 0x81:
        raise ProtocolError("AV1CodecConfigurationRecord needs marker 1, version 1 "
                            f"(starts with {raw[:4].hex()})")
    profile = raw[1] >> 5
    level = raw[1] & 0x1F
    tier = "H" if raw[2] & 0x80 else "M"
    depth = 12 if raw[2] & 0x20 and raw[2] & 0x40 else 10 if raw[2] & 0x40 else 8
    w, h = width, height
    try:
        w, h = _av1_size(raw[4:])
    except _Short:
        pass
    codecs = f"av01.{profile}.{level:02d}{tier}.{depth:02d}"
    return VideoTrack("av1", b"av01", b"av1C", raw, w, h, codecs, track_id)


# -- VP9 --------------------------------------------------------------------------------


def _vp9_track(data: memoryview, track_id: int, width: int, height: int) -> VideoTrack:
    """``vpcC`` is a FullBox (version 1, flags 0) around the record: FFmpeg
    writes that whole body in FLV; a bare record gets the prefix added."""
    raw = data.tobytes()
    if len(raw) >= 12 and raw[:4] == b"\x01\x00\x00\x00":
        record = raw[4:]
    else:
        record = raw
        raw = b"\x01\x00\x00\x00" + raw
    if len(record) < 8:
        raise ProtocolError(f"VPCodecConfigurationRecord too short ({len(record)} bytes)")
    codecs = f"vp09.{record[0]:02d}.{record[1]:02d}.{record[2] >> 4:02d}"
    return VideoTrack("vp9", b"vp09", b"vpcC", raw, width, height, codecs, track_id)


# -- AAC and Opus -----------------------------------------------------------------------


def _aac_track(data: memoryview, track_id: int) -> AudioTrack:
    config = aac_config(data)
    if not 0 < config.sample_rate <= 0xFFFFFFFF:
        raise ProtocolError(f"AudioSpecificConfig sample rate {config.sample_rate}")
    channels = config.channels or 2
    return AudioTrack("aac", b"mp4a", data.tobytes(), config.sample_rate, channels, 1024,
                      f"mp4a.40.{config.object_type}", track_id)


_OPUS_RATE: Final = 48000
_DOPS: Final = struct.Struct(">BBHIhB")


def opus_track(channels: int = 2, pre_skip: int = 0, input_rate: int = _OPUS_RATE, *,
               track_id: int = AUDIO_TRACK_ID) -> AudioTrack:
    """An Opus track for a publisher that sends no OpusHead (channel
    mapping family 0: 1 or 2 channels)."""
    channels = 1 if channels == 1 else 2
    dops = _DOPS.pack(0, channels, pre_skip & 0xFFFF, input_rate & _MAX_UINT32, 0, 0)
    return AudioTrack("opus", b"Opus", dops, _OPUS_RATE, channels, 960, "opus", track_id)


def _opus_track(data: memoryview, track_id: int) -> AudioTrack:
    """``dOps`` from an OpusHead (RFC 7845 5.1): the same fields, big-endian."""
    n = len(data)
    if n < 19 or data[:8].tobytes() != b"OpusHead":
        raise ProtocolError("Opus SequenceStart is not an OpusHead")
    if data[8] >> 4:
        raise ProtocolError(f"OpusHead version {data[8]} is not supported")
    channels = data[9]
    if not channels:
        raise ProtocolError("OpusHead with 0 channels")
    pre_skip = data[10] | (data[11] << 8)
    rate = int.from_bytes(data[12:16], "little")
    gain = int.from_bytes(data[16:18], "little", signed=True)
    family = data[18]
    dops = bytearray(_DOPS.pack(0, channels, pre_skip, rate, gain, family))
    if family:
        if n < 21 + channels:
            raise ProtocolError("OpusHead channel mapping table truncated")
        dops += data[19:21 + channels]  # stream count, coupled count, mapping
    elif channels > 2:
        raise ProtocolError(f"OpusHead mapping family 0 with {channels} channels")
    return AudioTrack("opus", b"Opus", bytes(dops), _OPUS_RATE, channels, 960, "opus",
                      track_id)


# samples (at 48 kHz) of one Opus frame by TOC config (RFC 6716 3.1)
_OPUS_FRAME: Final = (
    480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,  # SILK 10-60 ms
    480, 960, 480, 960,  # hybrid 10, 20 ms
    120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,  # CELT
)


def opus_frame_samples(packet: Buffer) -> int:
    """Samples (at 48 kHz) an Opus packet decodes to, from its TOC byte (and
    frame count byte for code 3); 0 if the packet cannot be read or claims
    more than 120 ms."""
    if not len(packet):
        return 0
    toc = packet[0]
    code = toc & 3
    if code == 0:
        count = 1
    elif code < 3:
        count = 2
    else:
        if len(packet) < 2:
            return 0
        count = packet[1] & 0x3F
    samples = _OPUS_FRAME[toc >> 3] * count
    return samples if 0 < samples <= 5760 else 0


# -- boxes ------------------------------------------------------------------------------


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return _HEAD.pack(8 + len(body), kind) + body


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return _FULL_HEAD.pack(12 + len(body), kind, (version << 24) | flags) + body


_MATRIX: Final = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def _ftyp() -> bytes:
    return _box(b"ftyp", b"iso6", _U32.pack(0), b"iso6", b"cmfc", b"mp41")


def _mvhd(next_track: int) -> bytes:
    return _full(b"mvhd", 0, 0,
                 struct.pack(">IIIIIH10x", 0, 0, 1000, 0, 0x00010000, 0x0100),
                 _MATRIX, bytes(24), _U32.pack(next_track))


def _tkhd(track: Track) -> bytes:
    width, height = (track.width, track.height) if isinstance(track, VideoTrack) else (0, 0)
    volume = 0x0100 if isinstance(track, AudioTrack) else 0
    return _full(b"tkhd", 0, 3,
                 struct.pack(">IIIII8xhhH2x", 0, 0, track.track_id, 0, 0, 0, 0, volume),
                 _MATRIX, struct.pack(">II", (width & 0xFFFF) << 16, (height & 0xFFFF) << 16))


def _mdia(track: Track) -> bytes:
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, 0x55C4, 0))
    if isinstance(track, VideoTrack):
        handler, name = b"vide", b"VideoHandler\x00"
        header = _full(b"vmhd", 0, 1, bytes(8))
    else:
        handler, name = b"soun", b"SoundHandler\x00"
        header = _full(b"smhd", 0, 0, bytes(4))
    hdlr = _full(b"hdlr", 0, 0, _U32.pack(0), handler, bytes(12), name)
    dinf = _box(b"dinf", _full(b"dref", 0, 0, _U32.pack(1), _full(b"url ", 0, 1)))
    empty = _U32.pack(0)
    stbl = _box(b"stbl",
                _full(b"stsd", 0, 0, _U32.pack(1), _sample_entry(track)),
                _full(b"stts", 0, 0, empty),
                _full(b"stsc", 0, 0, empty),
                _full(b"stsz", 0, 0, empty, empty),
                _full(b"stco", 0, 0, empty))
    return _box(b"mdia", mdhd, hdlr, _box(b"minf", header, dinf, stbl))


def _sample_entry(track: Track) -> bytes:
    if isinstance(track, VideoTrack):
        compressor = track.codec.upper().encode()[:31]
        fields = struct.pack(">6xH2x2x12xHHIIIH32sHh", 1, track.width & 0xFFFF,
                             track.height & 0xFFFF, 0x00480000, 0x00480000, 0, 1,
                             bytes([len(compressor)]) + compressor, 0x0018, -1)
        return _box(track.sample_entry, fields, _box(track.config_box, track.config))
    rate = track.sample_rate if track.sample_rate <= 0xFFFF else 0
    fields = struct.pack(">6xH8xHHHHI", 1, min(track.channels, 0xFFFF), 16, 0, 0, rate << 16)
    if track.codec == "opus":
        config = _box(b"dOps", track.config)
    else:
        config = _esds(track)
    return _box(track.sample_entry, fields, config)


def _descriptor(tag: int, body: bytes) -> bytes:
    """An MPEG-4 descriptor (ISO/IEC 14496-1 8.3.3): tag, size in 7-bit
    groups (always 4 bytes, as most muxers write it), body."""
    n = len(body)
    size = bytes(((n >> 21) & 0x7F | 0x80, (n >> 14) & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80,
                  n & 0x7F))
    return _U8.pack(tag) + size + body


def _esds(track: AudioTrack) -> bytes:
    specific = _descriptor(0x05, track.config)
    decoder = _descriptor(0x04, struct.pack(">BBBHII", 0x40, 0x15, 0, 0, 0, 0) + specific)
    sl = _descriptor(0x06, b"\x02")
    es = _descriptor(0x03, struct.pack(">HB", track.track_id & 0xFFFF, 0) + decoder + sl)
    return _full(b"esds", 0, 0, es)


def init_segment(tracks: Iterable[Track]) -> bytes:
    """An init segment (``ftyp`` + ``moov``) for ``tracks``, in that order.
    Raises :class:`ValueError` for no track or two with one ``track_id``."""
    tracks = tuple(tracks)
    if not tracks:
        raise ValueError("an init segment needs at least one track")
    ids = [t.track_id for t in tracks]
    if len(set(ids)) != len(ids) or not all(0 < i <= _MAX_UINT32 - 1 for i in ids):
        raise ValueError(f"track ids must be distinct and positive, not {ids}")
    traks = [_box(b"trak", _tkhd(t), _mdia(t)) for t in tracks]
    trex = [_full(b"trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, 0, 0, 0)) for t in tracks]
    moov = _box(b"moov", _mvhd(max(ids) + 1), *traks, _box(b"mvex", *trex))
    return _ftyp() + moov


# -- fragments --------------------------------------------------------------------------

_TRUN_VIDEO: Final = 0x000F01  # data offset, duration, size, flags, composition offset
_TRUN_AUDIO: Final = 0x000701  # data offset, duration, size, flags
_TFHD_DEFAULT_BASE_IS_MOOF: Final = 0x020000


def _traf_size(count: int, with_offsets: bool) -> int:
    # traf header 8 + tfhd 16 + tfdt 20 + trun 20 + entries
    return 8 + 16 + 20 + 20 + count * (16 if with_offsets else 12)


def fragment(sequence_number: int, samples: Mapping[int, Sequence[Sample]]) -> bytes:
    """One ``moof`` + ``mdat``: ``samples`` maps a track id to its samples
    (consecutive in decode time, in decode order), in the order the tracks
    go in the fragment; a track without samples is left out.  Composition
    offsets are written (trun version 1, signed) when any sample of a track
    has one.  Raises :class:`ValueError` for out-of-range values."""
    if not 0 <= sequence_number <= _MAX_UINT32:
        raise ValueError(f"sequence number {sequence_number} out of range")
    runs = [(tid, list(s)) for tid, s in samples.items() if s]
    layout = []
    moof_size = 8 + 16  # moof header + mfhd
    for tid, run in runs:
        if not 0 < tid <= _MAX_UINT32:
            raise ValueError(f"track id {tid} out of range")
        offsets = any(s.composition_offset for s in run)
        layout.append(offsets)
        moof_size += _traf_size(len(run), offsets)
    data_offset = moof_size + 8
    total_data = sum(memoryview(s.data).nbytes for _, run in runs for s in run)
    large = data_offset + total_data > _MAX_UINT32
    if large:
        data_offset += 8  # mdat with a 64-bit largesize
    parts = [_HEAD.pack(moof_size, b"moof"), _full(b"mfhd", 0, 0, _U32.pack(sequence_number))]
    payload: list[Buffer] = []
    for (tid, run), offsets in zip(runs, layout, strict=True):
        first = run[0].decode_time
        if not 0 <= first <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"decode time {first} out of range")
        if data_offset > 0x7FFFFFFF:
            raise ValueError("fragment too large for a 32-bit trun data offset")
        flat: list[int] = []
        size = 0
        for s in run:
            n = memoryview(s.data).nbytes
            flags = SYNC_SAMPLE_FLAGS if s.keyframe else NON_SYNC_SAMPLE_FLAGS
            if not 0 <= s.duration <= _MAX_UINT32:
                raise ValueError(f"sample duration {s.duration} out of range")
            if offsets:
                if not -0x80000000 <= s.composition_offset <= 0x7FFFFFFF:
                    raise ValueError(f"composition offset {s.composition_offset} out of range")
                flat += (s.duration, n, flags, s.composition_offset)
            else:
                flat += (s.duration, n, flags)
            size += n
            payload.append(s.data)
        count = len(run)
        entries = struct.pack((">" + ("IIIi" if offsets else "III") * count), *flat)
        trun = _full(b"trun", 1, _TRUN_VIDEO if offsets else _TRUN_AUDIO,
                     struct.pack(">Ii", count, data_offset), entries)
        parts.append(_box(b"traf",
                          _full(b"tfhd", 0, _TFHD_DEFAULT_BASE_IS_MOOF, _U32.pack(tid)),
                          _full(b"tfdt", 1, 0, struct.pack(">Q", first)),
                          trun))
        data_offset += size
    if large:
        parts.append(struct.pack(">I4sQ", 1, b"mdat", 16 + total_data))
    else:
        parts.append(_HEAD.pack(8 + total_data, b"mdat"))
    return b"".join([*parts, *payload])
