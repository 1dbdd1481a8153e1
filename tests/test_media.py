"""rtmpx.media: FLV audio/video tag bodies, against byte vectors written by
hand from FLV 10.1 (legacy AUDIODATA/VIDEODATA) and Enhanced RTMP v1/v2
(ExVideoTagHeader, ExAudioTagHeader, ModEx, multitrack), the exact messages
of bluenviron/gortmplib (MediaMTX) and real bitstreams from FFmpeg 9."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtmpx import amf
from rtmpx.chunk import ChunkReader
from rtmpx.errors import ProtocolError
from rtmpx.flv import FLVWriter, read_tags
from rtmpx.media import (
    HEADER_METADATA,
    HEADER_MULTICHANNEL_CONFIG,
    HEADER_SEQUENCE,
    PRIMARY_TRACK,
    AACConfig,
    AudioFormat,
    AVCConfig,
    Frame,
    Track,
    TrackInfo,
    aac_config,
    audio_format,
    avc_config,
    classify,
    is_sequence_header,
    is_video_keyframe,
    parse_audio,
    parse_video,
)

H = bytes.fromhex

# AVCDecoderConfigurationRecord: version 1, profile 100 (high), compat 0,
# level 31, lengthSizeMinusOne 3, 1 SPS of 4 bytes, 1 PPS of 2 bytes.
AVCC = H("01 64 00 1f ff e1 0004 6764001f 01 0002 68ee")


def v(payload: bytes, **kw: object) -> Frame:
    return parse_video(1000, payload, **kw)  # type: ignore[arg-type]


def a(payload: bytes, **kw: object) -> Frame:
    return parse_audio(1000, payload, **kw)  # type: ignore[arg-type]


def check(f: Frame, **expected: object) -> None:
    got = {k: getattr(f, k) for k in expected}
    assert got == expected


# -- legacy video (FLV 10.1 VIDEODATA + AVCVIDEOPACKET) ----------------------------


def test_avc_sequence_header() -> None:
    p = H("17 00 000000") + AVCC
    f = v(p)
    check(f, kind="video", timestamp=1000, codec="avc", is_keyframe=False,
          is_sequence_header=True, is_end_of_sequence=False, composition_time=0,
          data_offset=5, frame_type=1, packet_type=0, fourcc=None, is_enhanced=False,
          is_multitrack=False, is_command=False, track_id=0, timestamp_offset_ns=0,
          header_kind=HEADER_SEQUENCE, is_header=True)
    assert f.data.tobytes() == AVCC
    assert avc_config(f.data) == AVCConfig(100, 0, 31, 4, (H("6764001f"),), (H("68ee"),))
    # a header, not a keyframe, though its FrameType says key
    assert is_sequence_header(9, p) and not is_video_keyframe(p)


@pytest.mark.parametrize("cts_bytes, cts", [
    ("000050", 80), ("000000", 0), ("ffffd8", -40), ("fffff6", -10),
    ("7fffff", 8388607), ("800000", -8388608), ("000001", 1), ("ffffff", -1),
])
def test_avc_nalu_composition_time(cts_bytes: str, cts: int) -> None:
    p = H("17 01" + cts_bytes + "00000002 6588")
    f = v(p)
    check(f, codec="avc", is_keyframe=True, is_sequence_header=False, composition_time=cts,
          data_offset=5, packet_type=1)
    assert f.data.tobytes() == H("00000002 6588")
    inter = v(H("27 01" + cts_bytes + "00000002 419a"))
    check(inter, is_keyframe=False, frame_type=2, composition_time=cts)


def test_avc_end_of_sequence_is_not_a_keyframe() -> None:
    # FFmpeg ends every AVC FLV with this tag, FrameType 1 (key) included
    f = v(H("17 02 000000"))
    check(f, codec="avc", is_end_of_sequence=True, is_sequence_header=False, packet_type=2,
          composition_time=0, data_offset=5, is_keyframe=False, is_header=False)
    assert not is_sequence_header(9, H("17 02 000000"))
    assert not is_video_keyframe(H("17 02 000000"))
    assert classify(9, H("17 02 000000")) == (TrackInfo("video", 0, 0, False),)


@pytest.mark.parametrize("byte0, frame_type, key", [
    (0x17, 1, True), (0x27, 2, False), (0x37, 3, False), (0x47, 4, True),
])
def test_frame_types(byte0: int, frame_type: int, key: bool) -> None:
    p = bytes([byte0]) + H("01 000000 00000001 09")
    f = v(p)
    assert (f.frame_type, f.is_keyframe, f.is_command) == (frame_type, key, False)
    assert is_video_keyframe(p) is key


@pytest.mark.parametrize("payload, codec, command", [
    ("57 00", "avc", 0), ("57 01", "avc", 1), ("52 01", "h263", 1), ("5c 00", "hevc", 0),
])
def test_legacy_command_frame(payload: str, codec: str, command: int) -> None:
    f = v(H(payload))
    check(f, codec=codec, frame_type=5, is_command=True, command=command, is_keyframe=False,
          is_sequence_header=False, data_offset=1, packet_type=-1)
    assert not is_video_keyframe(H(payload)) and not is_sequence_header(9, H(payload))


def test_hevc_legacy_codec_id_12() -> None:
    seq = v(H("1c 00 000000 01 01 60"))
    check(seq, codec="hevc", is_sequence_header=True, data_offset=5, is_enhanced=False)
    nalu = v(H("2c 01 000028 00000003 020101"))
    check(nalu, codec="hevc", composition_time=40, is_keyframe=False, packet_type=1)
    assert is_sequence_header(9, H("1c 00 000000 01"))
    assert v(H("1d 01 ffffff 00")).codec == "av1"  # codec id 13 in the forks


@pytest.mark.parametrize("byte0, codec", [
    (0x12, "h263"), (0x13, "screen"), (0x14, "vp6"), (0x15, "vp6a"), (0x16, "screen2"),
])
def test_other_legacy_video(byte0: int, codec: str) -> None:
    p = bytes([byte0, 0x00, 0x84])
    check(v(p), codec=codec, is_keyframe=True, data_offset=1, packet_type=-1,
          composition_time=0, is_sequence_header=False)
    check(v(bytes([byte0 + 0x10])), codec=codec, is_keyframe=False, frame_type=2)


# -- Enhanced RTMP video ---------------------------------------------------------------


def test_enhanced_hvc1_sequence_start() -> None:
    p = H("90") + b"hvc1" + H("01 01 60 000000")
    f = v(p)
    check(f, codec="hevc", fourcc=b"hvc1", is_enhanced=True, is_sequence_header=True,
          is_keyframe=False, frame_type=1, packet_type=0, data_offset=5, composition_time=0)
    assert f.data.tobytes() == H("01 01 60 000000")
    assert is_sequence_header(9, p)


def test_enhanced_hvc1_coded_frames_has_composition_time() -> None:
    f = v(H("91") + b"hvc1" + H("000028") + H("00000003 260101"))
    check(f, codec="hevc", packet_type=1, composition_time=40, data_offset=8, is_keyframe=True)
    f = v(H("a1") + b"hvc1" + H("fffff6") + H("00000003 020101"))
    check(f, frame_type=2, composition_time=-10, is_keyframe=False, data_offset=8)


def test_enhanced_hvc1_coded_frames_x() -> None:
    f = v(H("a3") + b"hvc1" + H("00000003 020101"))
    check(f, codec="hevc", packet_type=3, composition_time=0, data_offset=5, frame_type=2,
          is_keyframe=False)
    assert f.data.tobytes() == H("00000003 020101")


def test_enhanced_avc1() -> None:
    check(v(H("91") + b"avc1" + H("000050 00000002 6588")), codec="avc", composition_time=80,
          data_offset=8)


def test_enhanced_av1_and_vp9_have_no_composition_time() -> None:
    # bytes after the FourCC are OBUs / a VP9 frame, never an SI24
    f = v(H("91") + b"av01" + H("12 00 0a 0b"))
    check(f, codec="av1", fourcc=b"av01", composition_time=0, data_offset=5, is_keyframe=True)
    seq = v(H("90") + b"av01" + H("81 00 0c 00"))
    check(seq, codec="av1", is_sequence_header=True)
    f = v(H("a1") + b"vp09" + H("86 00 40"))
    check(f, codec="vp9", fourcc=b"vp09", composition_time=0, data_offset=5, frame_type=2)
    check(v(H("90") + b"vp09" + H("01 00 00 00")), codec="vp9", is_sequence_header=True)
    check(v(H("91") + b"vp08" + H("10 02 00")), codec="vp8", is_keyframe=True, data_offset=5)


def test_enhanced_sequence_end_and_mpeg2ts_start() -> None:
    check(v(H("92") + b"hvc1"), is_end_of_sequence=True, is_sequence_header=False,
          packet_type=2, data_offset=5, is_keyframe=False)
    assert not is_video_keyframe(H("92") + b"hvc1")
    p = H("95") + b"av01" + H("00")
    check(v(p), is_sequence_header=True, packet_type=5, is_keyframe=False,
          header_kind=HEADER_SEQUENCE)
    assert is_sequence_header(9, p) and not is_video_keyframe(p)


@pytest.mark.parametrize("byte0", [0x84, 0xd4, 0x94, 0xf4])
def test_enhanced_metadata_ignores_frame_type(byte0: int) -> None:
    # FFmpeg writes 0xd4 (FrameType 5 + Metadata): not a command frame
    p = bytes([byte0]) + b"hvc1" + H("02 0009") + b"colorInfo"
    f = v(p)
    check(f, codec="hevc", is_metadata=True, is_command=False, command=-1, is_keyframe=False,
          is_sequence_header=False, packet_type=4, data_offset=5)
    assert not is_video_keyframe(p)


def test_enhanced_command_frame_has_no_fourcc() -> None:
    f = v(H("d0 01"))
    check(f, is_command=True, command=1, frame_type=5, fourcc=None, codec="unknown",
          is_keyframe=False, is_enhanced=True, data_offset=1)
    f = v(H("d3 00"))
    check(f, is_command=True, command=0)


def test_enhanced_modex_timestamp_offset_nano() -> None:
    # ModEx: size-1 = 2 (3 bytes of nano offset), then ModExType 0 | PacketType 1
    p = H("97 02 0f4240 01") + b"hvc1" + H("000014") + H("00000001 26")
    f = v(p)
    check(f, codec="hevc", packet_type=1, composition_time=20, data_offset=13, is_keyframe=True,
          fourcc=b"hvc1", timestamp_offset_ns=0x0F4240)
    assert is_video_keyframe(p)
    # two ModEx entries, the first (an unknown ModExType 15: skipped) with the
    # 16-bit size escape (257 bytes), the second a TimestampOffsetNano
    p = H("97 ff 0100") + bytes(257) + H("f7") + H("02 0003e7 03") + b"av01" + H("12 00")
    f = v(p)
    check(f, codec="av1", packet_type=3, data_offset=1 + 3 + 257 + 1 + 4 + 1 + 4,
          composition_time=0, timestamp_offset_ns=999)
    # ModEx ending in a sequence start; a 4-byte TimestampOffsetNano uses its first 3
    p = H("97 03 000102ff 00") + b"vp09" + H("01")
    assert v(p).is_sequence_header and is_sequence_header(9, p)
    assert v(p).timestamp_offset_ns == 0x000102
    # an unknown ModExType of one byte is skipped
    check(v(H("97 00 aa 10") + b"vp09" + H("01")), is_sequence_header=True,
          timestamp_offset_ns=0)


def test_modex_payload_relayed_unchanged() -> None:
    """The offset is reported, the payload (ModEx included) is the object given."""
    p = H("97 02 000064 03") + b"avc1" + H("00000002 6588")
    f = v(p)
    assert f.payload is p and f.timestamp_offset_ns == 100 and f.timestamp == 1000
    assert f.data.tobytes() == H("00000002 6588")
    assert classify(9, p) == (TrackInfo("video", 0, 0, True),)


@pytest.mark.parametrize("payload", [
    "97", "97 02 0f42", "97 02 0f4240", "97 ff 01", "97 ff 0100 00", "97 00 aa 07",
    "97 00 aa 00", "97 01 aabb 01",  # a TimestampOffsetNano of 1 or 2 bytes
])
def test_enhanced_modex_truncated(payload: str) -> None:
    check(v(H(payload)), codec="unknown", is_keyframe=False, data_offset=0)
    with pytest.raises(ProtocolError, match="ModEx"):
        v(H(payload), strict=True)


def test_multitrack_one_track() -> None:
    # Multitrack, OneTrack + CodedFrames, FourCC, trackId 0, SI24, data
    p = H("96 01") + b"hvc1" + H("00 000028 00000001 26")
    f = v(p)
    check(f, codec="hevc", fourcc=b"hvc1", is_multitrack=True, packet_type=1, data_offset=6,
          composition_time=40, is_keyframe=True, is_sequence_header=False, track_id=0)
    assert f.data[0] == 0  # the track record: trackId
    (t,) = f.tracks()
    assert t[:7] == (0, "hevc", b"hvc1", True, 40, 10, len(p))
    assert t.data.tobytes() == H("00000001 26")


def test_multitrack_many_tracks_sequence_start() -> None:
    p = H("96 10") + b"avc1" + H("00 000003 aabbcc 01 000002 ddee")
    f = v(p)
    check(f, codec="avc", is_multitrack=True, is_sequence_header=True, data_offset=6)
    assert is_sequence_header(9, p)


def test_multitrack_many_codecs() -> None:
    mixed = H("96 21") + b"avc1" + H("00 000003 000001") + b"hvc1" + H("01 000004 00000a 00")
    f = v(mixed)
    check(f, codec="multitrack", fourcc=b"avc1", is_multitrack=True, packet_type=1,
          data_offset=2, composition_time=1, track_id=0)
    assert [t[:7] for t in f.tracks()] == [
        (0, "avc", b"avc1", True, 1, 13, 13), (1, "hevc", b"hvc1", True, 10, 24, 25)]
    same = H("96 20") + b"av01" + H("00 000001 0a") + b"av01" + H("01 000001 0a")
    check(v(same), codec="av1", is_sequence_header=True)
    audio = H("95 21") + b"Opus" + H("00 000001 ff") + b"fLaC" + H("01 000001 ff")
    check(a(audio), codec="multitrack", fourcc=b"Opus", is_multitrack=True, packet_type=1)


@pytest.mark.parametrize("payload", [
    "96", "96 01 6876", "96 30" + b"hvc1".hex(), "96 21 6176 6331 00",
    "96 06" + b"hvc1".hex(),
])
def test_multitrack_malformed(payload: str) -> None:
    check(v(H(payload)), codec="unknown", is_keyframe=False, is_multitrack=False)
    with pytest.raises(ProtocolError):
        v(H(payload), strict=True)


def test_unknown_fourcc_keeps_flags() -> None:
    f = v(H("90") + b"apv1" + H("01"))
    check(f, codec="unknown", fourcc=b"apv1", is_sequence_header=True, is_keyframe=False,
          data_offset=5, header_kind=HEADER_SEQUENCE)
    # unknown codec: no composition time is assumed; the key flag is kept
    check(v(H("91") + b"apv1" + H("000028")), composition_time=0, data_offset=5,
          is_keyframe=True)
    # ... but with FrameType 0 there is no bitstream to look at
    check(v(H("81") + b"apv1" + H("00000001 65")), is_keyframe=False, codec="unknown")
    with pytest.raises(ProtocolError, match="FourCC"):
        v(H("90") + b"apv1", strict=True)


@pytest.mark.parametrize("payload, why", [
    ("", "empty"), ("17", "5 bytes"), ("17 01 0000", "5 bytes"), ("1c 01", "5 bytes"),
    ("90", "FourCC"), ("90 6876 63", "FourCC"), ("91 68766331 0000", "composition"),
    ("17 03 000000", "AVCPacketType"), ("07 01 000000", "FrameType"),
    ("67 01 000000", "FrameType"), ("98 68766331", "VideoPacketType"),
    ("e0 68766331", "FrameType"), ("f1 68766331 000000", "FrameType"), ("18 00", "CodecID"),
    ("11", "CodecID"), ("57", "command"),
    ("d0", "command"),
])
def test_malformed_video(payload: str, why: str) -> None:
    f = v(H(payload))
    check(f, codec="unknown", is_keyframe=False, is_sequence_header=False,
          is_end_of_sequence=False, composition_time=0, data_offset=0, frame_type=0,
          packet_type=-1, fourcc=None)
    assert not is_video_keyframe(H(payload)) and not is_sequence_header(9, H(payload))
    with pytest.raises(ProtocolError, match=why):
        v(H(payload), strict=True)


def test_one_byte_video() -> None:
    check(v(H("12")), codec="h263", is_keyframe=True, data_offset=1)
    assert v(H("12")).data.tobytes() == b""
    check(v(H("17")), codec="unknown")


# -- legacy audio ----------------------------------------------------------------------


def test_aac() -> None:
    seq = a(H("af 00 1210"))
    check(seq, kind="audio", codec="aac", is_sequence_header=True, is_keyframe=False,
          packet_type=0, data_offset=2, frame_type=0, fourcc=None, track_id=0,
          header_kind=HEADER_SEQUENCE)
    assert aac_config(seq.data) == AACConfig(2, 44100, 2)
    raw = a(H("af 01 211a"))
    check(raw, codec="aac", is_sequence_header=False, is_keyframe=True, packet_type=1,
          data_offset=2)
    assert raw.data.tobytes() == H("211a")
    assert is_sequence_header(8, H("af 00 1210")) and not is_sequence_header(8, H("af 01 21"))
    assert audio_format(H("af 01")) == AudioFormat(10, "aac", 44100, 16, 2)


@pytest.mark.parametrize("byte0, codec", [
    (0x0e, "pcm"), (0x1e, "adpcm"), (0x2f, "mp3"), (0x3e, "pcm"), (0x4a, "nellymoser"),
    (0x52, "nellymoser"), (0x66, "nellymoser"), (0x72, "g711a"), (0x82, "g711u"),
    (0xb6, "speex"), (0xe2, "mp3"), (0xf0, "native"),
])
def test_legacy_audio(byte0: int, codec: str) -> None:
    f = a(bytes([byte0, 0xff, 0xfb]))
    check(f, codec=codec, is_keyframe=True, is_sequence_header=False, data_offset=1,
          packet_type=-1, is_enhanced=False)
    assert not is_sequence_header(8, bytes([byte0, 0x00, 0x00]))


def test_audio_format_flags() -> None:
    assert audio_format(H("2f")) == AudioFormat(2, "mp3", 44100, 16, 2)
    assert audio_format(H("2a")) == AudioFormat(2, "mp3", 22050, 16, 1)
    assert audio_format(H("30")) == AudioFormat(3, "pcm", 5512, 8, 1)
    assert audio_format(H("42")) == AudioFormat(4, "nellymoser", 16000, 16, 1)
    assert audio_format(H("52")) == AudioFormat(5, "nellymoser", 8000, 16, 1)
    assert audio_format(H("e3")) == AudioFormat(14, "mp3", 8000, 16, 2)
    assert audio_format(H("72")) == AudioFormat(7, "g711a", 5512, 16, 1)
    assert audio_format(b"") is None
    assert audio_format(H("91") + b"Opus") is None


@pytest.mark.parametrize("payload, why", [
    ("", "empty"), ("af", "2 bytes"), ("af 02 00", "AACPacketType"), ("c0 00", "SoundFormat"),
    ("d2", "SoundFormat"), ("90", "FourCC"), ("90 4f70 75", "FourCC"),
    ("93 4f707573", "AudioPacketType"), ("96 4f707573", "AudioPacketType"),
    ("98 4f707573", "AudioPacketType"), ("95", "multitrack"), ("97 03 00", "ModEx"),
])
def test_malformed_audio(payload: str, why: str) -> None:
    f = a(H(payload))
    check(f, codec="unknown", is_keyframe=False, is_sequence_header=False, data_offset=0,
          packet_type=-1)
    assert not is_sequence_header(8, H(payload))
    with pytest.raises(ProtocolError, match=why):
        a(H(payload), strict=True)


def test_one_byte_audio() -> None:
    check(a(H("2f")), codec="mp3", data_offset=1)
    check(a(H("af")), codec="unknown")


# -- Enhanced RTMP audio ---------------------------------------------------------------


@pytest.mark.parametrize("fourcc, codec", [
    (b"Opus", "opus"), (b"fLaC", "flac"), (b"ac-3", "ac3"), (b"ec-3", "eac3"),
    (b"mp4a", "aac"), (b".mp3", "mp3"),
])
def test_enhanced_audio(fourcc: bytes, codec: str) -> None:
    seq = a(H("90") + fourcc + H("0102"))
    check(seq, codec=codec, fourcc=fourcc, is_enhanced=True, is_sequence_header=True,
          is_keyframe=False, packet_type=0, data_offset=5, header_kind=HEADER_SEQUENCE)
    assert is_sequence_header(8, H("90") + fourcc)
    coded = a(H("91") + fourcc + H("fffb"))
    check(coded, codec=codec, is_sequence_header=False, packet_type=1, data_offset=5,
          composition_time=0, is_keyframe=True, header_kind=0)
    assert coded.data.tobytes() == H("fffb")
    end = a(H("92") + fourcc)
    check(end, is_end_of_sequence=True, packet_type=2, is_keyframe=False, header_kind=0)
    mc = a(H("94") + fourcc + H("01 02"))
    check(mc, codec=codec, is_sequence_header=False, packet_type=4, is_keyframe=False,
          is_multichannel_config=True, header_kind=HEADER_MULTICHANNEL_CONFIG, is_header=True)
    assert not is_sequence_header(8, H("94") + fourcc + H("01 02"))
    assert classify(8, H("94") + fourcc + H("01 02")) == (
        TrackInfo("audio", 0, HEADER_MULTICHANNEL_CONFIG, False),)


def test_enhanced_flac_and_mp4a_config() -> None:
    seq = a(H("90") + b"fLaC" + b"fLaC" + H("80000022"))
    assert seq.data.tobytes()[:4] == b"fLaC"
    mp4a = a(H("90") + b"mp4a" + H("1190"))
    assert aac_config(mp4a.data) == AACConfig(2, 48000, 2)


def test_enhanced_audio_modex_and_multitrack() -> None:
    p = H("97 02 000005 01") + b"Opus" + H("fc ff")
    check(a(p), codec="opus", packet_type=1, data_offset=10, is_keyframe=True,
          timestamp_offset_ns=5)
    p = H("97 02 000005 00") + b"Opus" + H("4f707573")
    assert a(p).is_sequence_header and is_sequence_header(8, p)
    p = H("95 01") + b"Opus" + H("00 fcff")
    check(a(p), codec="opus", is_multitrack=True, packet_type=1, data_offset=6)
    p = H("95 10") + b"Opus" + H("00 000001 aa 01 000001 bb")
    check(a(p), codec="opus", is_sequence_header=True, is_multitrack=True)
    assert is_sequence_header(8, p)


def test_unknown_audio_fourcc() -> None:
    check(a(H("90") + b"alac"), codec="unknown", fourcc=b"alac", is_sequence_header=True)
    with pytest.raises(ProtocolError, match="FourCC"):
        a(H("90") + b"alac", strict=True)


# -- the Frame object ------------------------------------------------------------------


def test_payload_never_copied_and_data_is_a_view() -> None:
    for payload in (H("17 01 000000 0102"), bytearray(H("17 01 000000 0102")),
                    memoryview(H("00 17 01 000000 0102"))[1:]):
        f = v(payload)  # type: ignore[arg-type]
        assert f.payload is payload
        assert f.codec == "avc" and f.data.tobytes() == H("0102")
        assert f.data.obj is memoryview(payload).obj
    mv = memoryview(H("90") + b"hvc1")
    assert v(mv).fourcc == b"hvc1" and type(v(mv).fourcc) is bytes  # type: ignore[arg-type]
    unknown = memoryview(H("90") + b"xyz1")
    assert type(v(unknown).fourcc) is bytes  # type: ignore[arg-type]


def test_frame_is_frozen_slotted_and_comparable() -> None:
    f = v(H("17 01 000050 00"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.codec = "hevc"  # type: ignore[misc]
    assert not hasattr(f, "__dict__")
    assert type(f) is Frame and dataclasses.is_dataclass(f)
    assert f == v(H("17 01 000050 00")) and hash(f) == hash(v(H("17 01 000050 00")))
    assert dataclasses.replace(f, timestamp=5).timestamp == 5
    assert Frame("audio", 0, b"").codec == "unknown"


def test_frame_parse_dispatch() -> None:
    assert Frame.parse("video", 3, H("17 00 000000")).is_sequence_header
    assert Frame.parse("audio", 3, H("af 00 1210")).is_sequence_header
    with pytest.raises(ProtocolError):
        Frame.parse("audio", 3, b"", strict=True)
    with pytest.raises(ValueError):
        Frame.parse("data", 3, b"")
    assert not is_sequence_header(18, H("af 00 1210"))


# -- codec configuration ---------------------------------------------------------------


def test_avc_config_errors() -> None:
    with pytest.raises(ProtocolError):
        avc_config(AVCC[:-1])
    with pytest.raises(ProtocolError):
        avc_config(H("02") + AVCC[1:])
    with pytest.raises(ProtocolError):
        avc_config(AVCC[:6])
    two = avc_config(H("01 4d 40 1e ff e2 0001 67 0001 27 02 0001 68 0001 28"))
    assert (two.profile, two.level, two.sps, two.pps) == (77, 30, (b"g", b"'"), (b"h", b"("))


def test_aac_config_variants() -> None:
    assert aac_config(H("1208")) == AACConfig(2, 44100, 1)
    assert aac_config(H("2b8a")) == AACConfig(5, 22050, 1)  # HE-AAC core
    # object type escape (31 -> 32 + 6 bits) and an explicit 24-bit sample rate
    bits = (((31 << 6 | 10) << 4 | 15) << 24 | 12345) << 4 | 2  # 43 bits
    assert aac_config((bits << 5).to_bytes(6, "big")) == AACConfig(42, 12345, 2)
    with pytest.raises(ProtocolError):
        aac_config(H("12"))
    with pytest.raises(ProtocolError):
        aac_config(H("17 80"))  # sampling index 15 without its 24 bits... truncated
    with pytest.raises(ProtocolError):
        aac_config(H("16 80"))  # index 13: reserved


# -- the fast helpers agree with the full parse ---------------------------------------

_PREFIXES = [H(x) for x in (
    "17 01", "27 01", "17 00", "17 02", "1c 00", "57", "d0", "90", "91", "a1", "93", "95",
    "96 01", "96 10", "96 21", "97 02 000001 01", "97 02", "d4", "af 00", "af 01", "95 01",
    "97 02 000000 00", "92", "84", "80", "81", "83", "86 01", "86 11", "86 21", "86 04",
    "95 11", "95 21", "95 04", "97 00 00 01",
)] + [H(x) + fc for x in ("90", "91", "92", "93", "94", "95", "96 01", "96 10", "97 02 000000 00",
                           "80", "81", "83", "86 01", "86 13", "96 13")
      for fc in (b"hvc1", b"avc1", b"av01", b"vp09", b"vp08", b"vvc1", b"Opus", b"mp4a")]


def _expected_classes(kind: str, f: Frame) -> tuple[TrackInfo, ...]:
    tracks = f.tracks()
    if not tracks:
        return (TrackInfo(kind, f.track_id, f.header_kind, f.is_keyframe),)
    return tuple(TrackInfo(kind, t.track_id, f.header_kind, t.is_keyframe) for t in tracks)


@given(st.one_of(st.binary(max_size=24),
                 st.tuples(st.sampled_from(_PREFIXES), st.binary(max_size=16)).map(
                     lambda t: t[0] + t[1])))
def test_helpers_agree_with_parse(payload: bytes) -> None:
    fv = parse_video(0, payload)
    fa = parse_audio(0, payload)
    assert is_video_keyframe(payload) is fv.is_keyframe
    assert is_sequence_header(9, payload) is fv.is_sequence_header
    assert is_sequence_header(8, payload) is fa.is_sequence_header
    for parse, lax in ((parse_video, fv), (parse_audio, fa)):
        try:
            strict = parse(0, payload, strict=True)
        except ProtocolError:
            assert lax.codec == "unknown"
        else:
            assert strict == lax
        assert 0 <= lax.data_offset <= len(payload)
    for type_id, kind, f in ((9, "video", fv), (8, "audio", fa)):
        assert classify(type_id, payload) == _expected_classes(kind, f)
        tracks = f.tracks()
        assert len(tracks) <= 16
        for t in tracks:
            assert 0 <= t.offset <= t.end <= len(payload)
            assert t.data.tobytes() == payload[t.offset:t.end]
        if tracks:  # the Frame describes the primary track, else the first
            primary = [t for t in tracks if t.track_id == 0] or tracks[:1]
            t = primary[0]
            assert (t.track_id, t.fourcc, t.is_keyframe, t.composition_time) == (
                f.track_id, f.fourcc, f.is_keyframe, f.composition_time)
        else:
            assert f.codec == "unknown" or f.is_command
            assert not f.is_keyframe and not f.is_header
        if f.is_header:
            assert not f.is_keyframe and not f.is_end_of_sequence
    assert classify(18, payload) == ()


# -- gortmplib (MediaMTX): its exact message bytes -------------------------------------
#
# tests/data/gortmplib_messages.json holds the audio and video messages of
# gortmplib's pkg/message test table, byte for byte (chunk header included).
# gortmplib writes every Enhanced video header with FrameType 0
# (0x80 | PacketType), sequence starts and key frames included.

GORTMPLIB = json.loads((Path(__file__).parent / "data" / "gortmplib_messages.json").read_text())
SEQ, META, MC = HEADER_SEQUENCE, HEADER_METADATA, HEADER_MULTICHANNEL_CONFIG

# name: (codec, track_id, header_kind, is_keyframe, is_end_of_sequence,
#        composition_time, frame_type, codec data (hex) or None)
GORTMPLIB_EXPECTED: dict[str, tuple[str, int, int, bool, bool, int, int, str | None]] = {
    "audio mpeg1": ("mp3", 0, 0, True, False, 0, 0, "01020304"),
    "audio mpeg4": ("aac", 0, 0, True, False, 0, 0, "5ac07740"),
    "audio mpeg4 config": ("aac", 0, SEQ, False, False, 0, 0, "1210"),
    "audio mpeg4 nil config": ("aac", 0, SEQ, False, False, 0, 0, ""),
    "audio ex sequence start opus": ("opus", 0, SEQ, False, False, 0, 0, None),
    "audio ex sequence start aac": ("aac", 0, SEQ, False, False, 0, 0, "1190"),
    "audio ex sequence start ac3": ("ac3", 0, SEQ, False, False, 0, 0, ""),
    "audio ex sequence start flac": ("flac", 0, SEQ, False, False, 0, 0, None),
    "audio ex sequence end": ("opus", 0, 0, False, True, 0, 0, ""),
    "audio ex coded frames": ("opus", 0, 0, True, False, 0, 0, "010203"),
    "audio ex multichannel config": ("opus", 0, MC, False, False, 0, 0, "0102 00000003"),
    "audio ex multitrack": ("ac3", 1, SEQ, False, False, 0, 0, "01"),  # data: the track record
    "video": ("avc", 0, 0, True, False, 10, 1, "010203"),
    "video negative composition time": ("avc", 0, 0, True, False, -34, 1, "010203"),
    "video h264 config": ("avc", 0, SEQ, False, False, 0, 1, None),
    "video h265 config": ("hevc", 0, SEQ, False, False, 0, 1, None),
    "video eos": ("avc", 0, 0, False, True, 0, 2, ""),
    "video ex sequence start av1": ("av1", 0, SEQ, False, False, 0, 0, None),
    "video ex sequence start hevc": ("hevc", 0, SEQ, False, False, 0, 0, None),
    "video ex sequence start vp9": ("vp9", 0, SEQ, False, False, 0, 0, None),
    "video ex sequence start h264": ("avc", 0, SEQ, False, False, 0, 0, None),
    "video ex sequence end": ("av1", 0, 0, False, True, 0, 0, ""),
    # FrameType 0 and "01 02 03" is no NAL unit stream: no keyframe in it
    "video ex coded frames": ("hevc", 0, 0, False, False, 30, 0, "010203"),
    "video ex coded frames h264": ("avc", 0, 0, False, False, 30, 0, "010203"),
    "video ex coded frames negative composition time": ("avc", 0, 0, False, False, -34, 0,
                                                        "010203"),
    "video ex frames x": ("hevc", 0, 0, False, False, 0, 0, "010203"),
    "video ex frames x h264": ("avc", 0, 0, False, False, 0, 0, "010203"),
    "video ex metadata": ("hevc", 0, META, False, False, 0, 0, None),
    "video ex multitrack": ("vp9", 1, SEQ, False, False, 0, 0, "01 0100000000288202020200 00"),
}


def _gortmplib(name: str) -> tuple[int, bytes]:
    """The message of a vector, through rtmpx's own chunk reader."""
    (msg,) = ChunkReader().feed(H(GORTMPLIB["vectors"][name]))
    return msg.type_id, msg.payload


def test_gortmplib_vectors_are_all_covered() -> None:
    assert set(GORTMPLIB["vectors"]) == set(GORTMPLIB_EXPECTED)
    assert GORTMPLIB["commit"] == "a01ffbffd5e6ed9f53eab84f26af556ce91caad1"


@pytest.mark.parametrize("name", list(GORTMPLIB_EXPECTED))
def test_gortmplib_message(name: str) -> None:
    codec, track_id, header, key, end, ct, frame_type, data = GORTMPLIB_EXPECTED[name]
    type_id, payload = _gortmplib(name)
    kind = "video" if type_id == 9 else "audio"
    assert name.startswith(kind)
    f = Frame.parse(kind, 0, payload, strict=True)
    check(f, codec=codec, track_id=track_id, header_kind=header, is_keyframe=key,
          is_end_of_sequence=end, composition_time=ct, frame_type=frame_type,
          is_sequence_header=header == SEQ, timestamp_offset_ns=0)
    if data is not None:
        assert f.data.tobytes() == H(data)
    assert classify(type_id, payload) == (TrackInfo(kind, track_id, header, key),)
    assert is_sequence_header(type_id, payload) is (header == SEQ)
    if kind == "video":
        assert is_video_keyframe(payload) is key


def test_gortmplib_configs_parse() -> None:
    """The decoder configurations behind the FrameType 0 headers are found whole."""
    assert avc_config(v(_gortmplib("video ex sequence start h264")[1]).data).profile == 0x4D
    assert avc_config(v(_gortmplib("video h264 config")[1]).data).level == 0x1E
    assert aac_config(a(_gortmplib("audio ex sequence start aac")[1]).data) == AACConfig(
        2, 48000, 2)
    assert a(_gortmplib("audio ex sequence start opus")[1]).data.tobytes()[:8] == b"OpusHead"
    assert len(a(_gortmplib("audio ex sequence start flac")[1]).data) == 34  # STREAMINFO
    assert v(_gortmplib("video ex sequence start av1")[1]).data[0] == 0x81  # av1C marker
    assert v(_gortmplib("video ex sequence start hevc")[1]).data[0] == 1  # hvcC version
    meta = v(_gortmplib("video ex metadata")[1])
    assert amf.loads_all(meta.data.tobytes()) == ["colorInfo", {"colorConfig": {}}]
    (t,) = v(_gortmplib("video ex multitrack")[1]).tracks()
    assert (t.track_id, t.codec, t.fourcc) == (1, "vp9", b"vp09")
    assert t.data.tobytes() == H("01 00 00 00 00 28 82 02 02 02 00 00")  # vpcC
    (t,) = a(_gortmplib("audio ex multitrack")[1]).tracks()
    assert (t.track_id, t.codec, t.data.tobytes()) == (1, "ac3", b"")


def test_gortmplib_shaped_keyframes() -> None:
    """FrameType 0 coded frames as gortmplib writes them, with real NAL units:
    the keyframe is found in the bitstream."""
    idr = NAL(H("0605 ffff")) + NAL(H("6588 8400 21"))
    p = H("81") + b"avc1" + H("00001e") + idr
    check(v(p), is_keyframe=True, composition_time=30, frame_type=0)
    assert classify(9, p) == (TrackInfo("video", 0, 0, True),) and is_video_keyframe(p)
    p = H("83") + b"avc1" + NAL(H("419a 2000"))
    check(v(p), is_keyframe=False, packet_type=3)
    p = H("83") + b"hvc1" + NAL(H("4001 0c01")) + NAL(H("2601 af00"))
    check(v(p), is_keyframe=True)
    p = H("86 03") + b"hvc1" + H("02") + NAL(H("2a01 af00"))  # OneTrack CRA, track 2
    check(v(p), is_keyframe=True, track_id=2)
    assert classify(9, p) == (TrackInfo("video", 2, 0, True),)


# -- keyframes in the bitstream: AVC, HEVC, VVC, AV1, VP9, VP8 --------------------------


def NAL(unit: bytes) -> bytes:
    """One NAL unit with its 4-byte length prefix."""
    return len(unit).to_bytes(4, "big") + unit


def OBU(obu_type: int, payload: bytes, *, ext: bool = False, sized: bool = True) -> bytes:
    """One low-overhead AV1 OBU (leb128 size)."""
    head = bytes([obu_type << 3 | (4 if ext else 0) | (2 if sized else 0)])
    if ext:
        head += b"\x00"
    if not sized:
        return head + payload
    size, leb = len(payload), bytearray()
    while True:
        leb.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    return head + bytes(leb) + payload


AV1_SEQ = OBU(1, H("00 00 00 03 b4 ff 73 6b e4 01"))  # profile 0, not a still picture
AV1_TD = OBU(2, b"")


def _vp9_header(profile: int, show_existing: int, frame_type: int, show_frame: int,
                sync: int = 0x498342) -> bytes:
    bits = "10" + str(profile & 1) + str(profile >> 1) + ("0" if profile == 3 else "")
    bits += str(show_existing) + str(frame_type) + str(show_frame) + "0"
    bits += f"{sync:024b}" + "0" * 16
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _superframe(*frames: bytes) -> bytes:
    marker = 0xC0 | (len(frames) - 1)  # 1-byte sizes
    return b"".join(frames) + bytes([marker, *(len(f) for f in frames), marker])


VP9_KEY = _vp9_header(0, 0, 0, 1)
VP9_INTER = _vp9_header(0, 0, 1, 1)
VP9_HIDDEN = _vp9_header(0, 0, 1, 0)

BITSTREAM_CASES: dict[str, list[tuple[str, bytes, bool]]] = {
    "avc1": [
        ("AUD SPS PPS SEI IDR", NAL(H("09f0")) + NAL(H("6764 001f ac")) + NAL(H("68ee 3c80"))
         + NAL(H("0605 ffff")) + NAL(H("6588 8400")), True),
        ("IDR alone", NAL(H("6588")), True),
        ("two IDR slices", NAL(H("6588 80")) + NAL(H("6500 1f")), True),
        ("non-IDR slice", NAL(H("09f0")) + NAL(H("419a 2000")), False),
        ("non-IDR slice, then an IDR type", NAL(H("0198")) + NAL(H("6588")), False),
        ("data partition A", NAL(H("2288")), False),
        ("SEI only", NAL(H("0605 ffff")), False),
        ("IDR with the forbidden bit", NAL(H("e588")), False),
        ("IDR past the end", H("00000010 6588"), False),
        ("zero-length unit", H("00000000") + NAL(H("6588")), False),
        ("3 bytes", H("010203"), False),
        ("empty", b"", False),
        ("IDR after 64 SEIs (the walk stops)", NAL(H("06")) * 64 + NAL(H("6588")), False),
        ("IDR after 63 SEIs", NAL(H("06")) * 63 + NAL(H("6588")), True),
    ],
    "hvc1": [
        ("VPS SPS PPS SEI IDR_W_RADL", NAL(H("4001 0c")) + NAL(H("4201 01")) + NAL(H("4401 c0"))
         + NAL(H("4e01 05")) + NAL(H("2601 af")), True),
        ("AUD IDR_N_LP", NAL(H("4601 50")) + NAL(H("2801 af")), True),
        ("CRA", NAL(H("2a01 af")), True),
        ("BLA_W_LP", NAL(H("2001 af")), True),
        ("BLA_N_LP", NAL(H("2401 af")), True),
        ("reserved IRAP 23", NAL(H("2e01 af")), True),
        ("TRAIL_R", NAL(H("0201 d0")), False),
        ("TRAIL_N", NAL(H("0001 d0")), False),
        ("RASL_N (leading picture of a CRA)", NAL(H("1001 d0")), False),
        ("RADL_R", NAL(H("0e01 d0")), False),
        ("reserved non-IRAP 24", NAL(H("3001 d0")), False),
        ("parameter sets only", NAL(H("4001 0c")) + NAL(H("4201 01")), False),
        ("IDR with the forbidden bit", NAL(H("a601 af")), False),
    ],
    "vvc1": [
        ("AUD SPS PPS IDR_W_RADL", NAL(H("00a1 10")) + NAL(H("0079 00")) + NAL(H("0081 00"))
         + NAL(H("0039 00")), True),
        ("IDR_N_LP", NAL(H("0041 00")), True),
        ("CRA", NAL(H("0049 00")), True),
        ("reserved IRAP 11", NAL(H("0059 00")), True),
        ("GDR (gradual refresh: not clean)", NAL(H("0051 00")), False),
        ("TRAIL", NAL(H("0001 00")), False),
        ("RASL", NAL(H("0019 00")), False),
        ("a one-byte unit", NAL(H("00")), False),
    ],
    "av01": [
        ("TD, sequence header, shown key frame", AV1_TD + AV1_SEQ + OBU(6, H("10 00 00")), True),
        ("shown key frame alone", OBU(6, H("10 00")), True),
        ("key frame header OBU", AV1_TD + OBU(3, H("10 00")) + OBU(4, H("00 00")), True),
        ("with an OBU extension", OBU(6, H("10 00"), ext=True), True),
        ("last OBU without a size field", AV1_TD + OBU(6, H("10 00 00"), sized=False), True),
        ("a 2-byte leb128 size", AV1_TD + OBU(6, H("10") + bytes(200)), True),
        ("hidden inter, then shown key", OBU(6, H("20 00")) + OBU(6, H("10 00")), True),
        ("shown inter", AV1_TD + OBU(6, H("30 00")), False),
        ("intra-only", OBU(6, H("50 00")), False),
        ("switch frame", OBU(6, H("70 00")), False),
        ("hidden key frame, then shown inter", OBU(6, H("00 00")) + OBU(6, H("30 00")), False),
        ("hidden alt-ref, then show_existing_frame", AV1_TD + OBU(6, H("28 00"))
         + OBU(3, H("d8")), False),
        ("reduced still picture header", OBU(1, H("18 00")) + OBU(6, H("00")), True),
        ("sequence header only", AV1_TD + AV1_SEQ, False),
        ("forbidden bit", H("b2 02 10 00"), False),
        ("size past the end", H("32 05 10 00"), False),
        ("a leb128 of 9 bytes", H("32 80 80 80 80 80 80 80 80 01 10"), False),
        ("key frame after 64 padding OBUs", OBU(15, b"") * 64 + OBU(6, H("10")), False),
        ("key frame after 63 padding OBUs", OBU(15, b"") * 63 + OBU(6, H("10")), True),
    ],
    "vp09": [
        ("profile 0 key frame", VP9_KEY, True),
        ("profile 1 key frame", _vp9_header(1, 0, 0, 1), True),
        ("profile 2 key frame", _vp9_header(2, 0, 0, 1), True),
        ("profile 3 key frame", _vp9_header(3, 0, 0, 1), True),
        ("inter frame", VP9_INTER, False),
        ("profile 3 inter frame", _vp9_header(3, 0, 1, 1), False),
        ("show_existing_frame", _vp9_header(0, 1, 0, 1), False),
        ("key frame without its sync code", _vp9_header(0, 0, 0, 1, sync=0x498343), False),
        ("profile 3 key frame without its sync code", _vp9_header(3, 0, 0, 1, sync=0x123456),
         False),
        ("bad frame marker", bytes([VP9_KEY[0] & 0x7F]) + VP9_KEY[1:], False),
        ("superframe: hidden inter + shown inter", _superframe(VP9_HIDDEN, VP9_INTER), False),
        ("superframe: key + hidden inter", _superframe(VP9_KEY, VP9_HIDDEN), True),
        ("superframe: hidden inter + key", _superframe(VP9_HIDDEN, VP9_KEY), True),
        ("superframe whose sizes overrun", VP9_INTER + bytes([0xC1, 200, 200, 0xC1]), False),
        ("too short", H("82 49 83"), False),
    ],
    "vp08": [
        ("key frame", H("304a00 9d012a a0007800") + bytes(8), True),
        ("inter frame", H("314a00 9d012a a0007800") + bytes(8), False),
        ("key frame without its start code", H("304a00 9d012b a0007800"), False),
        ("too short", H("304a00 9d01"), False),
    ],
}


@pytest.mark.parametrize("fourcc, name, data, key", [
    pytest.param(fc, name, data, key, id=f"{fc}-{name}")
    for fc, cases in BITSTREAM_CASES.items() for name, data, key in cases])
def test_bitstream_keyframe(fourcc: str, name: str, data: bytes, key: bool) -> None:
    """FrameType 0: the keyframe comes from the bitstream, in every container
    shape: CodedFramesX, CodedFrames (with its composition time where the
    codec has one), ModEx, OneTrack and ManyTracks multitrack."""
    fc = fourcc.encode()
    ct = H("000014") if fc in (b"avc1", b"hvc1", b"vvc1") else b""
    shapes = [
        H("83") + fc + data,
        H("81") + fc + ct + data,
        H("87 02 0003e8 03") + fc + data,
        H("86 03") + fc + H("05") + data,
        H("86 13") + fc + H("01") + len(data).to_bytes(3, "big") + data
        + H("00 000002 0000"),  # track 1 (this one), then track 0 (not a keyframe)
    ]
    for p in shapes:
        f = v(p, strict=True)
        assert f.packet_type in (1, 3) and f.frame_type == 0
        assert is_video_keyframe(p) is f.is_keyframe
        classes = classify(9, p)
        assert classes[0] == TrackInfo("video", classes[0].track_id, 0, key), (p.hex(), classes)
    assert v(shapes[-1]).track_id == 0 and not v(shapes[-1]).is_keyframe  # the primary track
    # a key flag in the header is trusted, a FrameType 2 too: no bitstream scan
    assert v(H("93") + fc + data).is_keyframe
    assert not v(H("a3") + fc + data).is_keyframe


def test_bitstream_scan_is_bounded() -> None:
    """Hostile bitstreams: the walk stops after 64 units, whatever the size."""
    many_units = H("83") + b"avc1" + NAL(H("06")) * 200_000  # 1 MB of 5-byte SEIs
    many_obus = H("83") + b"av01" + OBU(15, b"") * 500_000
    huge_sizes = H("83") + b"hvc1" + H("7fffffff 2601") + bytes(1 << 20)
    superframe = H("81") + b"vp09" + bytes(1 << 20) + H("df") + H("ffffffff") * 8 + H("df")
    multitrack = H("86 13") + b"avc1" + (H("00 000005") + NAL(H("06"))) * 100_000
    for p in (many_units, many_obus, huge_sizes, superframe, multitrack):
        start = time.perf_counter()
        for _ in range(20):
            assert not v(p).is_keyframe
            classify(9, p)
        assert time.perf_counter() - start < 0.5
    assert len(v(multitrack).tracks()) == 16 and len(classify(9, multitrack)) == 16


# -- every codec x packet type x frame type ---------------------------------------------

KEY_DATA = {fc.encode(): next(d for _n, d, k in cases if k) for fc, cases in
            BITSTREAM_CASES.items()}
INTER_DATA = {fc.encode(): next(d for _n, d, k in cases if not k) for fc, cases in
              BITSTREAM_CASES.items()}
VIDEO_CODECS = {b"avc1": "avc", b"hvc1": "hevc", b"vvc1": "vvc", b"av01": "av1",
                b"vp09": "vp9", b"vp08": "vp8", b"apv1": "unknown"}
KEY_DATA[b"apv1"] = INTER_DATA[b"apv1"] = H("00000002 6588")


@pytest.mark.parametrize("fourcc", list(VIDEO_CODECS))
@pytest.mark.parametrize("wrap", ["plain", "modex", "one_track", "many_tracks"])
def test_video_classification_matrix(fourcc: bytes, wrap: str) -> None:
    """The rules, stated once: SequenceStart and MPEG2TSSequenceStart are
    sequence headers, Metadata a header (FrameType ignored), SequenceEnd
    neither header nor keyframe; CodedFrames(X) are keyframes by FrameType
    1/4, or by the bitstream under FrameType 0; FrameType 5 is a command
    (outside Metadata: as in the spec's pseudocode, the command test comes
    before the multitrack header is read, so FrameType 5 + Multitrack is a
    command whatever the inner type), 6 and 7 are reserved."""
    for packet_type in range(6):
        for frame_type in range(8):
            _check_video_case(fourcc, wrap, packet_type, frame_type)


def _check_video_case(fourcc: bytes, wrap: str, packet_type: int, frame_type: int) -> None:
    has_ct = fourcc in (b"avc1", b"hvc1", b"vvc1") and packet_type == 1
    for data, bitstream_key in ((KEY_DATA[fourcc], fourcc != b"apv1"),
                                (INTER_DATA[fourcc], False)):
        body = (H("00000a") if has_ct else b"") + data
        if wrap == "plain":
            p = bytes([0x80 | frame_type << 4 | packet_type]) + fourcc + body
        elif wrap == "modex":
            p = bytes([0x80 | frame_type << 4 | 7]) + H("02 000007") + bytes([packet_type]) \
                + fourcc + body
        elif wrap == "one_track":
            p = bytes([0x80 | frame_type << 4 | 6, packet_type]) + fourcc + H("04") + body
        else:
            p = (bytes([0x80 | frame_type << 4 | 6, 0x10 | packet_type]) + fourcc
                 + H("04") + len(body).to_bytes(3, "big") + body)
        f = v(p)
        classes = classify(9, p)
        if frame_type == 5 and (packet_type != 4 or wrap in ("one_track", "many_tracks")):
            check(f, is_command=True, is_keyframe=False, header_kind=0)
            assert classes == (TrackInfo("video", 0, 0, False),)
            continue
        if frame_type > 5 and packet_type != 4:
            check(f, codec="unknown", is_keyframe=False, header_kind=0)
            assert classes == (TrackInfo("video", 0, 0, False),)
            continue
        header = {0: SEQ, 5: SEQ, 4: META}.get(packet_type, 0)
        if packet_type in (1, 3):
            key = frame_type in (1, 4) or (frame_type == 0 and bitstream_key)
        else:
            key = False
        track = 4 if wrap in ("one_track", "many_tracks") else 0
        check(f, codec=VIDEO_CODECS[fourcc], fourcc=fourcc, packet_type=packet_type,
              frame_type=frame_type, header_kind=header, is_keyframe=key, track_id=track,
              is_end_of_sequence=packet_type == 2, is_sequence_header=header == SEQ,
              composition_time=10 if has_ct else 0,
              timestamp_offset_ns=7 if wrap == "modex" else 0, is_command=False)
        assert classes == (TrackInfo("video", track, header, key),)
        assert is_video_keyframe(p) is key and is_sequence_header(9, p) is (header == SEQ)
        (t,) = f.tracks()
        assert t.data.tobytes() == data


def test_legacy_video_classification_matrix() -> None:
    for codec_id in range(16):
        for frame_type in range(8):  # 8..15: the Enhanced header, the matrix above
            for avc_packet_type in range(4):
                _check_legacy_case(codec_id, frame_type, avc_packet_type)


def _check_legacy_case(codec_id: int, frame_type: int, avc_packet_type: int) -> None:
    p = bytes([frame_type << 4 | codec_id, avc_packet_type]) + H("000000 00000002 6588")
    f = v(p)
    known = codec_id in (2, 3, 4, 5, 6, 7, 12, 13)
    avc_like = codec_id in (7, 12, 13)
    if not known or frame_type in (0, 6, 7) or (avc_like and avc_packet_type == 3
                                                 and frame_type != 5):
        assert f.codec == "unknown" and classify(9, p) == (TrackInfo("video", 0, 0, False),)
        return
    if frame_type == 5:
        check(f, is_command=True, is_keyframe=False, header_kind=0)
        return
    header = SEQ if avc_like and avc_packet_type == 0 else 0
    key = frame_type in (1, 4) and (not avc_like or avc_packet_type == 1)
    check(f, header_kind=header, is_keyframe=key, track_id=0,
          is_end_of_sequence=avc_like and avc_packet_type == 2)
    assert classify(9, p) == (TrackInfo("video", 0, header, key),)
    assert is_video_keyframe(p) is key


@pytest.mark.parametrize("packet_type", range(16))
@pytest.mark.parametrize("wrap", ["plain", "modex", "one_track", "many_tracks"])
def test_enhanced_audio_classification_matrix(packet_type: int, wrap: str) -> None:
    if wrap == "plain":
        p = bytes([0x90 | packet_type]) + b"Opus" + H("fcff")
    elif wrap == "modex":
        p = H("97 02 000009") + bytes([packet_type]) + b"Opus" + H("fcff")
    elif wrap == "one_track":
        p = bytes([0x95, packet_type]) + b"Opus" + H("02 fcff")
    else:
        p = bytes([0x95, 0x10 | packet_type]) + b"Opus" + H("02 000002 fcff")
    f = a(p)
    if packet_type not in (0, 1, 2, 4) or (wrap == "plain" and packet_type in (5, 7)):
        # reserved, or a Multitrack / ModEx header with nothing valid after it
        if not (wrap == "plain" and packet_type in (5, 7)):
            assert f.codec == "unknown"
        assert classify(8, p) == _expected_classes("audio", f)
        return
    header = {0: SEQ, 4: MC}.get(packet_type, 0)
    track = 2 if wrap in ("one_track", "many_tracks") else 0
    check(f, codec="opus", header_kind=header, is_keyframe=packet_type == 1, track_id=track,
          is_end_of_sequence=packet_type == 2, timestamp_offset_ns=9 if wrap == "modex" else 0)
    assert classify(8, p) == (TrackInfo("audio", track, header, packet_type == 1),)


# -- multitrack: the primary track, every track, bounds ---------------------------------


def test_primary_track_is_track_0_wherever_it_is() -> None:
    # ManyTracks, CodedFramesX, FrameType 0: tracks 2 (key), 0 (inter), 1 (key)
    idr, inter = NAL(H("6588")), NAL(H("419a"))
    p = H("86 13") + b"avc1" + b"".join(
        bytes([t]) + len(d).to_bytes(3, "big") + d for t, d in ((2, idr), (0, inter), (1, idr)))
    f = v(p)
    check(f, track_id=0, is_keyframe=False, codec="avc", data_offset=6)
    assert [(t.track_id, t.is_keyframe) for t in f.tracks()] == [(2, True), (0, False), (1, True)]
    assert classify(9, p) == (TrackInfo("video", 2, 0, True), TrackInfo("video", 0, 0, False),
                              TrackInfo("video", 1, 0, True))
    assert not is_video_keyframe(p)  # the primary track's
    # without track 0 the Frame describes the first track
    p = H("86 03") + b"avc1" + H("01") + idr
    check(v(p), track_id=1, is_keyframe=True)
    assert classify(9, p) == (TrackInfo("video", 1, 0, True),)


def test_obs_and_ffmpeg_multitrack_layouts() -> None:
    """What OBS (flv-mux.c) and FFmpeg (flvenc.c) send for a track > 0:
    OneTrack with its trackId; track 0 has no multitrack header at all."""
    # OBS: video Metadata of track 1, FrameType 0 (FRAME_HEADER_EX | PACKETTYPE_MULTITRACK)
    colour = H("02 0009") + b"colorInfo" + H("03 000b") + b"colorConfig" + H("03 000009 000009")
    p = H("86 04") + b"hvc1" + H("01") + colour
    f = v(p, strict=True)
    check(f, is_metadata=True, header_kind=META, track_id=1, is_keyframe=False)
    assert classify(9, p) == (TrackInfo("video", 1, META, False),)
    (t,) = f.tracks()
    assert amf.loads_all(t.data.tobytes()) == ["colorInfo", {"colorConfig": {}}]
    # OBS / FFmpeg: a key frame of track 2, a sequence start of track 1
    p = H("96 01") + b"hvc1" + H("02 000000") + NAL(H("2601"))
    assert classify(9, p) == (TrackInfo("video", 2, 0, True),)
    p = H("96 00") + b"avc1" + H("01") + AVCC
    assert classify(9, p) == (TrackInfo("video", 1, SEQ, False),)
    assert avc_config(v(p).tracks()[0].data) == avc_config(AVCC)
    # FFmpeg: audio MultichannelConfig and sequence start of track 1
    p = H("95 04") + b"Opus" + H("01 01 01 00000004")
    check(a(p), is_multichannel_config=True, header_kind=MC, track_id=1)
    assert classify(8, p) == (TrackInfo("audio", 1, MC, False),)
    p = H("95 00") + b"Opus" + H("01") + b"OpusHead" + H("0101 3801 80bb0000 0000 00")
    assert classify(8, p) == (TrackInfo("audio", 1, SEQ, False),)


def test_many_tracks_sequence_start_and_metadata() -> None:
    p = H("86 10") + b"avc1" + H("00") + len(AVCC).to_bytes(3, "big") + AVCC \
        + H("03") + len(AVCC).to_bytes(3, "big") + AVCC
    assert classify(9, p) == (TrackInfo("video", 0, SEQ, False), TrackInfo("video", 3, SEQ, False))
    assert [avc_config(t.data) for t in v(p).tracks()] == [avc_config(AVCC)] * 2
    mixed = H("86 24") + b"hvc1" + H("00 000001 05") + b"av01" + H("01 000001 05")
    assert classify(9, mixed) == (TrackInfo("video", 0, META, False),
                                  TrackInfo("video", 1, META, False))
    audio = H("95 24") + b"Opus" + H("00 000002 0001") + b"fLaC" + H("01 000002 0002")
    assert classify(8, audio) == (TrackInfo("audio", 0, MC, False),
                                  TrackInfo("audio", 1, MC, False))
    assert [t.codec for t in a(audio).tracks()] == ["opus", "flac"]


@pytest.mark.parametrize("payload, why", [
    ("96 01" + b"hvc1".hex(), "without a track"),              # OneTrack without its trackId
    ("96 11" + b"hvc1".hex() + "00 0000", "size"),             # record size truncated
    ("96 11" + b"hvc1".hex() + "00 000009 000000", "past the end"),
    ("96 11" + b"hvc1".hex() + "00 000002 0000", "composition time"),
    ("96 21" + b"hvc1".hex(), "trackId"),
    ("96 10" + b"hvc1".hex(), "without a track"),
    ("96 31" + b"hvc1".hex() + "00 000000", "AvMultitrackType"),
    ("96 07" + b"hvc1".hex() + "00", "PacketType"),
])
def test_multitrack_records_checked(payload: str, why: str) -> None:
    check(v(H(payload)), codec="unknown", is_keyframe=False, is_multitrack=False)
    assert classify(9, H(payload)) == (TrackInfo("video", 0, 0, False),)
    assert v(H(payload)).tracks() == ()
    with pytest.raises(ProtocolError, match=why):
        v(H(payload), strict=True)


def test_multitrack_walk_is_bounded() -> None:
    records = b"".join(bytes([i]) + H("000000") for i in range(40))
    p = H("86 10") + b"avc1" + records
    assert [c.track_id for c in classify(9, p)] == list(range(16))
    f = v(p)
    assert f.codec == "avc" and f.track_id == 0  # ManyTracks: one FourCC for all
    # ManyTracksManyCodecs past the walk: their codecs are not vouched for
    records = b"".join(b"avc1" + bytes([i]) + H("000000") for i in range(20))
    assert v(H("86 20") + records).codec == "multitrack"
    assert v(H("86 20") + b"avc1" + H("00 000000")).codec == "avc"
    # duplicates are reported as sent
    p = H("86 10") + b"avc1" + H("05 000000 05 000000")
    assert [c.track_id for c in classify(9, p)] == [5, 5] and v(p).track_id == 5


def test_every_frame_carries_a_track_id() -> None:
    for f in (v(H("17 01 000000 00000001 65")), v(H("12 0084")), a(H("af 01 21")),
              a(H("2f ff")), v(H("93") + b"hvc1"), a(H("91") + b"Opus" + H("fc")),
              v(H("d0 01")), v(b""), a(b"")):
        assert f.track_id == 0 and f.timestamp_offset_ns == 0
    (t,) = v(H("17 01 000028 00000001 65")).tracks()
    assert t == Track(0, "avc", None, True, 40, 5, 10, t.data)
    assert t.data.tobytes() == H("00000001 65")
    assert v(H("d0 01")).tracks() == () and v(H("57 01")).tracks() == ()
    assert a(H("c0")).tracks() == ()


# -- real bitstreams from FFmpeg 9, rewritten the way gortmplib writes them -------------
#
# FFmpeg flags its key packets (FLV FrameType 1, or no "F=0x0" in framecrc);
# the same tags rewritten with FrameType 0 must give exactly those keyframes
# from the bitstream alone.

FFMPEG_TIMEOUT = 60
SRC = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"]
FLV_CASES: dict[str, tuple[str, str, list[str]]] = {
    # name: (encoder, codec, output options); 2 s at 25 fps, a keyframe every 10 frames
    "avc": ("libx264", "avc", ["-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
                               "-g", "10", "-sc_threshold", "0"]),
    # x265's default open GOP: an IDR, then CRA keyframes with RASL pictures
    "hevc": ("libx265", "hevc", ["-c:v", "libx265", "-x265-params", "log-level=error:keyint=10"]),
    "av1": ("libaom-av1", "av1", ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8",
                                  "-g", "10"]),
    # SVT-AV1: hidden alt-refs and show_existing_frame temporal units
    "av1_svt": ("libsvtav1", "av1", ["-c:v", "libsvtav1", "-g", "10"]),
    "vp9": ("libvpx-vp9", "vp9", ["-c:v", "libvpx-vp9", "-deadline", "realtime",
                                  "-cpu-used", "8", "-g", "10"]),
}
# Codecs FFmpeg's FLV muxer does not take: raw streams, flags from framecrc
RAW_CASES: dict[str, tuple[str, str, list[str]]] = {
    "vp8": ("libvpx", "ivf", ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
                              "-g", "10"]),
    "vvc": ("libvvenc", "vvc", ["-c:v", "libvvenc", "-preset", "faster", "-vvenc-params",
                                "IntraPeriod=8:DecodingRefreshType=cra"]),
}
# FFmpeg's multitrack FLV: video tracks 0 (H.264), 1 (HEVC), 2 (H.264, smaller),
# audio tracks 0 (AAC), 1 (Opus)
MULTITRACK = [
    "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi",
    "-i", "testsrc=size=96x72:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
    "-map", "0:v", "-map", "1:v", "-map", "0:v", "-map", "2:a", "-map", "2:a",
    "-c:v:0", "libx264", "-c:v:1", "libx265", "-x265-params", "log-level=error:keyint=10",
    "-c:v:2", "libx264", "-s:v:2", "96x72", "-bf", "0", "-g", "10", "-sc_threshold", "0",
    "-c:a:0", "aac", "-c:a:1", "libopus",
]


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.skip("imageio-ffmpeg is not installed (pip install imageio-ffmpeg)")
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | None]:
    """Every stream encoded once per module, in parallel; None where this
    FFmpeg lacks the encoder."""
    ffmpeg = _ffmpeg()
    encoders = _run([ffmpeg, "-hide_banner", "-encoders"]).stdout.decode()
    have = set(re.findall(r"^ \S+ (\S+)", encoders, re.MULTILINE))
    out = tmp_path_factory.mktemp("media")
    base = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    jobs: dict[str, list[str]] = {}
    files: dict[str, Path | None] = {}
    for name, (encoder, _codec, opts) in FLV_CASES.items():
        files[name] = out / f"{name}.flv" if encoder in have else None
        jobs[name] = [*base, *SRC, "-t", "2", *opts, "-pix_fmt", "yuv420p", str(files[name])]
    for name, (encoder, fmt, opts) in RAW_CASES.items():
        files[name] = out / f"{name}.{fmt}" if encoder in have else None
        jobs[name] = [*base, *SRC, "-t", "2" if name == "vp8" else "1", *opts,
                      "-pix_fmt", "yuv420p", "-f", "tee", "-map", "0:v",
                      f"[f={fmt}]{files[name]}|[f=framecrc]{out / name}.crc"]
    files["multitrack"] = out / "multitrack.flv" if {"libx264", "libx265", "libopus"} <= have \
        else None
    jobs["multitrack"] = [*base, *MULTITRACK, "-t", "2", "-pix_fmt", "yuv420p",
                          str(files["multitrack"])]
    jobs = {name: args for name, args in jobs.items() if files[name] is not None}
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(jobs, pool.map(_run, jobs.values())))
    for name, proc in results.items():
        assert proc.returncode == 0, (name, proc.stderr.decode()[-2000:])
    return files


def _need(media: dict[str, Path | None], name: str) -> Path:
    path = media[name]
    if path is None:
        encoder = {**FLV_CASES, **RAW_CASES}.get(name, ("libx264, libx265, libopus",))[0]
        pytest.skip(f"this FFmpeg has no {encoder} encoder")
    return path


def gortmplib_form(payload: bytes) -> bytes:
    """The same video message as gortmplib writes it: an Enhanced header with
    FrameType 0 (0x80 | PacketType), CodedFramesX for a composition time of 0."""
    f = parse_video(0, payload, strict=True)
    if f.is_enhanced:
        return bytes([0x80 | payload[0] & 0x0F]) + payload[1:]
    assert f.codec == "avc"
    if f.packet_type == 1:
        if f.composition_time:
            return H("81") + b"avc1" + payload[2:]
        return H("83") + b"avc1" + payload[5:]
    return bytes([0x80 | f.packet_type]) + b"avc1" + payload[5:]


def _video(path: Path) -> list[tuple[int, bytes]]:
    return [(t.timestamp, bytes(t.payload)) for t in read_tags(path) if t.is_video]


@pytest.mark.interop
@pytest.mark.parametrize("name", list(FLV_CASES))
def test_ffmpeg_keyframes_found_in_the_bitstream(media: dict[str, Path | None],
                                                 name: str) -> None:
    codec = FLV_CASES[name][1]
    tags = _video(_need(media, name))
    flagged = [parse_video(ts, p, strict=True) for ts, p in tags]
    assert {f.codec for f in flagged} == {codec}
    coded = [i for i, f in enumerate(flagged) if f.packet_type in (1, 3)]
    keys = [i for i in coded if flagged[i].is_keyframe]
    assert len(coded) == 50 and len(keys) >= 4 and keys[0] == coded[0]
    # headers FFmpeg flags as key are not keyframes: sequence starts, AVC end of sequence
    for f in flagged:
        if f.frame_type == 1 and f.packet_type not in (1, 3):
            assert not f.is_keyframe and (f.is_header or f.is_end_of_sequence)
    rewritten = [gortmplib_form(p) for _ts, p in tags]
    assert all(p[0] >> 4 == 8 for p in rewritten)  # FrameType 0 everywhere
    found = [parse_video(0, p, strict=True) for p in rewritten]
    assert [i for i, f in enumerate(found) if f.is_keyframe] == keys
    assert [f.header_kind for f in found] == [f.header_kind for f in flagged]
    assert [f.composition_time for f in found] == [f.composition_time for f in flagged]
    assert [i for i, p in enumerate(rewritten) if is_video_keyframe(p)] == keys
    assert [i for i, p in enumerate(rewritten) if classify(9, p)[0].keyframe] == keys
    # the same frames in multitrack messages (OneTrack, track 1) and behind ModEx
    one_track = [bytes([0x86, p[0] & 0x0F]) + p[1:5] + H("01") + p[5:] for p in rewritten]
    assert [i for i, p in enumerate(one_track) if classify(9, p)[0].keyframe] == keys
    modex = [H("87 02 000001") + bytes([p[0] & 0x0F]) + p[1:] for p in rewritten]
    assert [i for i, p in enumerate(modex) if is_video_keyframe(p)] == keys


def _framecrc_keys(path: Path) -> tuple[list[bool], list[int]]:
    """FFmpeg's key flags and sizes of the packets of a framecrc file."""
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return ["F=0x0" not in ln for ln in lines], [int(ln.split(",")[4]) for ln in lines]


def _annexb_to_nals(au: bytes) -> bytes:
    units = [u.rstrip(b"\x00") for u in re.split(b"\x00\x00\x01", au) if u.strip(b"\x00")]
    return b"".join(NAL(u) for u in units)


@pytest.mark.interop
@pytest.mark.parametrize("name", list(RAW_CASES))
def test_ffmpeg_raw_keyframes_found_in_the_bitstream(media: dict[str, Path | None],
                                                     name: str) -> None:
    path = _need(media, name)
    keys, sizes = _framecrc_keys(path.with_suffix(".crc"))
    data = path.read_bytes()
    frames = []
    if name == "vp8":  # IVF: 32-byte header, then 12-byte frame headers
        pos = 32
        while pos < len(data):
            size = int.from_bytes(data[pos:pos + 4], "little")
            frames.append(H("81") + b"vp08" + data[pos + 12:pos + 12 + size])
            pos += 12 + size
    else:  # raw Annex B access units, cut by framecrc's packet sizes
        pos = 0
        for size in sizes:
            frames.append(H("83") + b"vvc1" + _annexb_to_nals(data[pos:pos + size]))
            pos += size
        assert pos == len(data)
    assert len(frames) == len(keys) and sum(keys) >= 2 and not all(keys)
    assert [v(p, strict=True).is_keyframe for p in frames] == keys
    assert [classify(9, p)[0].keyframe for p in frames] == keys


@pytest.mark.interop
def test_ffmpeg_writes_multitrack_flv(media: dict[str, Path | None]) -> None:
    """FFmpeg 9's FLV muxer writes several video and audio streams as
    multitrack: track 0 as a plain (legacy or Enhanced) message, every other
    track as a OneTrack message with its trackId, as OBS does."""
    tags = [t for t in read_tags(_need(media, "multitrack")) if not t.is_script]
    per_track: dict[tuple[str, int], list[TrackInfo]] = {}
    shapes: set[tuple[str, int, str]] = set()
    for t in tags:
        p = bytes(t.payload)
        (info,) = classify(t.type_id, p)
        per_track.setdefault((info.kind, info.track_id), []).append(info)
        f = Frame.parse(info.kind, 0, p, strict=True)
        shapes.add((info.kind, info.track_id, "multitrack" if f.is_multitrack else
                    "enhanced" if f.is_enhanced else "legacy"))
    shapes.discard(("video", 0, "enhanced"))  # FFmpeg 9's colorInfo of the HEVC track 1
    assert shapes == {("video", 0, "legacy"), ("video", 1, "multitrack"),
                      ("video", 2, "multitrack"), ("audio", 0, "legacy"),
                      ("audio", 1, "multitrack")}
    for key in (("video", 0), ("video", 1), ("video", 2), ("audio", 0), ("audio", 1)):
        infos = per_track[key]
        assert infos[0].header == SEQ and sum(i.header == SEQ for i in infos) == 1
        if key[0] == "video":
            assert sum(i.keyframe for i in infos) == 5  # -g 10, 2 s
    assert [i.header for i in per_track[("audio", 1)][:2]] == [SEQ, MC]
    # FFmpeg 9 writes the colorInfo of the HEVC track 1 without a multitrack
    # header (flv_write_metadata_packet ignores the track): by the spec, that
    # is video Metadata of track 0, with the FourCC of track 1
    meta = [t.frame() for t in tags if t.is_video and t.frame().is_metadata]
    assert [(f.track_id, f.fourcc) for f in meta] in ([(0, b"hvc1")], [(1, b"hvc1")])


def _many_tracks(tags: list[tuple[int, bytes]], tracks: tuple[int, int],
                 many_codecs: bool) -> list[tuple[int, bytes, dict[int, bool]]]:
    """Rebuild FFmpeg's video tags: the coded frames of ``tracks`` at one
    timestamp become one ManyTracks (ManyTracksManyCodecs) CodedFrames
    message with FrameType 0; the rest is kept.  Returns (timestamp, body,
    {track: FFmpeg's key flag}) tuples."""
    out: list[tuple[int, bytes, dict[int, bool]]] = []
    pending: dict[int, tuple[bytes, int, bytes, bool]] = {}
    for ts, p in tags:
        f = parse_video(ts, p, strict=True)
        (t,) = f.tracks() if f.tracks() else (None,)
        if t is None or t.track_id not in tracks or f.packet_type not in (1, 3):
            out.append((ts, p, {}))
            continue
        fourcc = t.fourcc or b"avc1"
        pending[t.track_id] = (fourcc, t.composition_time, t.data.tobytes(), t.is_keyframe)
        if len(pending) < 2:
            continue
        records = b""
        for track in tracks:
            fourcc, ct, data, _key = pending[track]
            body = (ct & 0xFFFFFF).to_bytes(3, "big") + data
            records += (fourcc if many_codecs else b"") + bytes([track]) \
                + len(body).to_bytes(3, "big") + body
        head = H("86 21") if many_codecs else H("86 11") + b"avc1"
        out.append((ts, head + records, {track: pending[track][3] for track in tracks}))
        pending.clear()
    assert not pending
    return out


@pytest.mark.interop
@pytest.mark.parametrize("many_codecs", [False, True], ids=["ManyTracks", "ManyTracksManyCodecs"])
def test_many_tracks_messages_from_ffmpeg_tracks(media: dict[str, Path | None],
                                                 many_codecs: bool, tmp_path: Path) -> None:
    """Real tracks in ManyTracks / ManyTracksManyCodecs messages: every track
    classified on its own, keyframes from the bitstream; FFmpeg 9 demuxes
    the file to the same decoded pictures as its own OneTrack file."""
    src = _need(media, "multitrack")
    tracks = (0, 1) if many_codecs else (0, 2)
    rebuilt = _many_tracks(_video(src), tracks, many_codecs)
    grouped = [(p, flags) for _ts, p, flags in rebuilt if flags]
    assert len(grouped) == 50
    for p, flags in grouped:
        assert {c.track_id: c.keyframe for c in classify(9, p)} == flags
        f = v(p, strict=True)
        assert f.track_id == 0 and f.is_keyframe is flags[0]
        assert f.codec == ("multitrack" if many_codecs else "avc")
    assert sum(flags[tracks[1]] for _p, flags in grouped) == 5
    ffmpeg = _ffmpeg()
    out = tmp_path / "many.flv"
    with FLVWriter(out) as w:
        audio = iter(t for t in read_tags(src) if not t.is_video)
        for t in audio:  # script tag, then audio, in any order: FFmpeg sorts by dts
            w.write_tag(t.type_id, t.timestamp, t.payload)
        for ts, p, _flags in rebuilt:
            w.write_tag(9, ts, p)

    def decoded(path: Path) -> list[str]:
        proc = _run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path),
                     "-map", "0:v", "-f", "framemd5", "-"])
        assert proc.returncode == 0 and not proc.stderr, proc.stderr.decode()[-2000:]
        lines = [ln.split(",") for ln in proc.stdout.decode().splitlines() if ln[:1] != "#"]
        return sorted(f"{ln[0].strip()} {ln[-1].strip()}" for ln in lines)

    assert decoded(out) == decoded(src)


# -- what a relay keeps: a late joiner's start, from classify() alone --------------------


class _LateJoinerCache:
    """The rules a relay follows with :func:`classify` (a sketch of the hub's):
    keep the latest header per (kind, track, header kind), restart the GOP at
    a keyframe of the primary video track."""

    def __init__(self) -> None:
        self.headers: dict[tuple[str, int, int], tuple[int, bytes]] = {}
        self.gop: list[tuple[int, bytes]] = []

    def add(self, type_id: int, payload: bytes) -> None:
        infos = classify(type_id, payload)
        if any(i.header for i in infos):
            for i in infos:
                self.headers[(i.kind, i.track_id, i.header)] = (type_id, payload)
            return
        if any(i.kind == "video" and i.track_id == PRIMARY_TRACK and i.keyframe for i in infos):
            self.gop.clear()
            self.gop.append((type_id, payload))
        elif self.gop:
            self.gop.append((type_id, payload))


@pytest.mark.interop
def test_late_joiner_gets_every_track_configuration(media: dict[str, Path | None]) -> None:
    cache = _LateJoinerCache()
    tags = [t for t in read_tags(_need(media, "multitrack")) if not t.is_script]
    for t in tags[: len(tags) * 3 // 4]:
        cache.add(t.type_id, bytes(t.payload))
    assert set(cache.headers) == {
        ("video", 0, SEQ), ("video", 1, SEQ), ("video", 2, SEQ), ("audio", 0, SEQ),
        ("audio", 1, SEQ), ("audio", 1, MC), ("video", 0, META)}
    first_type, first = cache.gop[0]
    assert first_type == 9 and classify(9, first) == (TrackInfo("video", 0, 0, True),)
    # the GOP restarted at the primary track only: the other tracks' keyframes
    # at the same instant follow it
    keys = [classify(tid, p)[0] for tid, p in cache.gop if classify(tid, p)[0].keyframe
            and tid == 9]
    assert [k.track_id for k in keys] == [0, 1, 2]


@given(st.sampled_from([b"avc1", b"hvc1", b"vvc1", b"av01", b"vp09", b"vp08"]),
       st.sampled_from([H("83"), H("81"), H("86 03"), H("86 13")]),
       st.lists(st.sampled_from([
           H("00000001"), H("00000002"), H("0000"), H("65"), H("26 01"), H("00 39"), H("12 00"),
           H("0a 01"), H("32 01 10"), H("0c"), H("0e"), H("36"), H("80"), H("ff"), H("82 49 83 42"),
           H("c1"), H("c9"), H("9d 01 2a"), H("10"), H("00")]), max_size=12))
def test_bitstream_scanners_never_fail(fourcc: bytes, head: bytes, units: list[bytes]) -> None:
    """Any bytes behind a FrameType 0 header: a classification, never an exception."""
    data = b"".join(units)
    p = head + fourcc + (bytes([len(data) >> 16, len(data) >> 8 & 255, len(data) & 255])
                         if head == H("86 13") else H("00") if head == H("86 03") else b"") + data
    f = v(p)
    assert is_video_keyframe(p) is f.is_keyframe
    assert classify(9, p) == _expected_classes("video", f)


def test_modex_entries_are_bounded() -> None:
    """A message of 3-byte ModEx entries as long as the message cost a
    Python loop turn each (0.6 s for 8 MiB, on every published message)."""
    from rtmpx.media import MAX_MODEX_ENTRIES

    entry = H("00 aa f7")                     # one byte of an unknown ModExType, then ModEx again
    tail = H("02 000064 01") + b"hvc1" + H("000000 00000002 2601")
    ok = H("97") + entry * (MAX_MODEX_ENTRIES - 1) + tail
    check(v(ok), codec="hevc", timestamp_offset_ns=100, is_keyframe=True)
    over = H("97") + entry * MAX_MODEX_ENTRIES + tail
    check(v(over), codec="unknown", is_keyframe=False)
    with pytest.raises(ProtocolError, match="ModEx entries"):
        v(over, strict=True)
    assert classify(9, over) == (TrackInfo("video", 0, 0, False),)
    huge = H("97") + entry * (8 * 1024 * 1024 // 3)
    assert classify(9, huge) == (TrackInfo("video", 0, 0, False),)  # at once
    assert classify(8, H("97") + entry * 1000)[0].header == 0
