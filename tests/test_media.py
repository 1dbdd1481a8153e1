"""rtmpx.media: FLV audio/video tag bodies, against byte vectors written by
hand from FLV 10.1 (legacy AUDIODATA/VIDEODATA) and Enhanced RTMP v1/v2
(ExVideoTagHeader, ExAudioTagHeader, ModEx, multitrack)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtmpx.errors import ProtocolError
from rtmpx.media import (
    AACConfig,
    AudioFormat,
    AVCConfig,
    Frame,
    aac_config,
    audio_format,
    avc_config,
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
    check(f, kind="video", timestamp=1000, codec="avc", is_keyframe=True,
          is_sequence_header=True, is_end_of_sequence=False, composition_time=0,
          data_offset=5, frame_type=1, packet_type=0, fourcc=None, is_enhanced=False,
          is_multitrack=False, is_command=False)
    assert f.data.tobytes() == AVCC
    assert avc_config(f.data) == AVCConfig(100, 0, 31, 4, (H("6764001f"),), (H("68ee"),))
    assert is_sequence_header(9, p) and is_video_keyframe(p)


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


def test_avc_end_of_sequence() -> None:
    f = v(H("17 02 000000"))
    check(f, codec="avc", is_end_of_sequence=True, is_sequence_header=False, packet_type=2,
          composition_time=0, data_offset=5)
    assert not is_sequence_header(9, H("17 02 000000"))


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
          is_keyframe=True, frame_type=1, packet_type=0, data_offset=5, composition_time=0)
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
          packet_type=2, data_offset=5)
    p = H("95") + b"av01" + H("00")
    check(v(p), is_sequence_header=True, packet_type=5)
    assert is_sequence_header(9, p)


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
          fourcc=b"hvc1")
    assert is_video_keyframe(p)
    # two ModEx entries, the first with the 16-bit size escape (257 bytes)
    p = H("97 ff 0100") + bytes(257) + H("07") + H("02 000001 03") + b"av01" + H("12 00")
    f = v(p)
    check(f, codec="av1", packet_type=3, data_offset=1 + 3 + 257 + 1 + 4 + 1 + 4,
          composition_time=0)
    # ModEx ending in a sequence start
    p = H("97 00 aa 00") + b"vp09" + H("01")
    assert v(p).is_sequence_header and is_sequence_header(9, p)


@pytest.mark.parametrize("payload", [
    "97", "97 02 0f42", "97 02 0f4240", "97 ff 01", "97 ff 0100 00", "97 00 aa 07",
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
          composition_time=0, is_keyframe=True, is_sequence_header=False)
    assert f.data[0] == 0  # the track record: trackId


def test_multitrack_many_tracks_sequence_start() -> None:
    p = H("96 10") + b"avc1" + H("00 000003 aabbcc 01 000002 ddee")
    f = v(p)
    check(f, codec="avc", is_multitrack=True, is_sequence_header=True, data_offset=6)
    assert is_sequence_header(9, p)


def test_multitrack_many_codecs() -> None:
    mixed = H("96 21") + b"avc1" + H("00 000003 000001") + b"hvc1" + H("01 000002 0000")
    f = v(mixed)
    check(f, codec="multitrack", fourcc=b"avc1", is_multitrack=True, packet_type=1,
          data_offset=2)
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
    f = v(H("90") + b"vvc1" + H("01"))
    check(f, codec="unknown", fourcc=b"vvc1", is_sequence_header=True, is_keyframe=True,
          data_offset=5)
    # unknown codec: no composition time is assumed
    check(v(H("91") + b"vvc1" + H("000028")), composition_time=0, data_offset=5)
    with pytest.raises(ProtocolError, match="FourCC"):
        v(H("90") + b"vvc1", strict=True)


@pytest.mark.parametrize("payload, why", [
    ("", "empty"), ("17", "5 bytes"), ("17 01 0000", "5 bytes"), ("1c 01", "5 bytes"),
    ("90", "FourCC"), ("90 6876 63", "FourCC"), ("91 68766331 0000", "composition"),
    ("17 03 000000", "AVCPacketType"), ("07 01 000000", "FrameType"),
    ("67 01 000000", "FrameType"), ("98 68766331", "VideoPacketType"),
    ("80 68766331", "FrameType"), ("f1 68766331 000000", "FrameType"), ("18 00", "CodecID"), ("11", "CodecID"), ("57", "command"),
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
    check(seq, kind="audio", codec="aac", is_sequence_header=True, is_keyframe=True,
          packet_type=0, data_offset=2, frame_type=0, fourcc=None)
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
          is_keyframe=True, packet_type=0, data_offset=5)
    assert is_sequence_header(8, H("90") + fourcc)
    coded = a(H("91") + fourcc + H("fffb"))
    check(coded, codec=codec, is_sequence_header=False, packet_type=1, data_offset=5,
          composition_time=0)
    assert coded.data.tobytes() == H("fffb")
    end = a(H("92") + fourcc)
    check(end, is_end_of_sequence=True, packet_type=2)
    mc = a(H("94") + fourcc + H("01 02"))
    check(mc, codec=codec, is_sequence_header=False, packet_type=4)
    assert not is_sequence_header(8, H("94") + fourcc + H("01 02"))


def test_enhanced_flac_and_mp4a_config() -> None:
    seq = a(H("90") + b"fLaC" + b"fLaC" + H("80000022"))
    assert seq.data.tobytes()[:4] == b"fLaC"
    mp4a = a(H("90") + b"mp4a" + H("1190"))
    assert aac_config(mp4a.data) == AACConfig(2, 48000, 2)


def test_enhanced_audio_modex_and_multitrack() -> None:
    p = H("97 00 05 01") + b"Opus" + H("fc ff")
    check(a(p), codec="opus", packet_type=1, data_offset=8, is_keyframe=True)
    p = H("97 00 05 00") + b"Opus" + H("4f707573")
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
    "17 01", "27 01", "17 00", "1c 00", "57", "d0", "90", "91", "a1", "93", "95", "96 01",
    "96 10", "96 21", "97 00 00 01", "97 02", "d4", "af 00", "af 01", "95 01", "97 00 00 00",
    "92", "84",
)] + [H(x) + fc for x in ("90", "91", "92", "93", "94", "95", "96 01", "96 10", "97 00 00 00")
      for fc in (b"hvc1", b"avc1", b"av01", b"Opus", b"mp4a")]


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
