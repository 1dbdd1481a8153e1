"""rtmpx.fmp4: boxes field by field, round trips, hostile configs, and real FFmpeg."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtmpx import fmp4
from rtmpx.errors import ProtocolError
from rtmpx.flv import read_tags
from rtmpx.media import Frame, parse_audio, parse_video

from . import peers
from .peers import AAC_SEQ, AVC_SEQ, ffmpeg_exe

H = bytes.fromhex

# AVCDecoderConfigurationRecords and an HEVCDecoderConfigurationRecord made by
# x264/x265 (FFmpeg 9), with the picture sizes FFmpeg reports for them
AVCC_160x120 = H("014d400bffe10018674d400beca1423f2e0220000003002000000641e28532c0"
                 "01000468ce0fc8")
AVCC_1280x720_HIGH = H("0164001fffe1001a6764001facd9405005bb011000000300100000030320f1"
                       "83196001000668eae3cb22c0fdf8f800")
AVCC_1920x1080_444 = H("01f40028ffe1001c67f40028919b280f0044fc4e02d900000300010000030032"
                       "0f18319601000668eae3c44844fff8f800")
HVCC_176x100 = H(
    "0101600000009000000000001ef000fcfdf8f800000f03200001001840010c01ffff01600000030090"
    "000003000003001e959809210001002942010101600000030090000003000003001ea0162069f79656"
    "6924caf0168080000003008000000c8422000100074401c172b46240")
HVCC_1920x1080 = H(
    "01016000000090000000000078f000fcfdf8f800000f03200001001840010c01ffff01600000030090"
    "0000030000030078959809210001002a420101016000000300900000030000030078a003c08010e596"
    "566924caf0168080000003008000000c8422000100074401c172b46240")
OPUS_HEAD = b"OpusHead" + bytes([1, 2]) + struct.pack("<HIhB", 312, 48000, 0, 0)


def avc_seq(record: bytes) -> bytes:
    return b"\x17\x00\x00\x00\x00" + record


def hevc_seq(record: bytes, enhanced: bool = True) -> bytes:
    if enhanced:
        return b"\x90hvc1" + record  # IsExHeader | key | SequenceStart, FourCC
    return b"\x1c\x00\x00\x00\x00" + record  # legacy CodecID 12


def opus_seq(head: bytes = OPUS_HEAD) -> bytes:
    return b"\x90Opus" + head  # SoundFormat 9 | SequenceStart, FourCC


# -- a tiny box parser ---------------------------------------------------------------------

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"mvex", b"moof",
              b"traf"}


@dataclass
class Box:
    kind: bytes
    start: int  # offset of the box in the buffer
    body: bytes  # after the 8 (or 16) byte header
    children: list[Box]

    def find(self, path: str) -> Box:
        return find(self.children, path)

    def all(self, kind: str) -> list[Box]:
        return [b for b in self.children if b.kind == kind.encode()]

    @property
    def version(self) -> int:
        return self.body[0]

    @property
    def flags(self) -> int:
        return int.from_bytes(self.body[1:4], "big")


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """Every box of data[start:end], containers walked; sizes must add up."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos < end:
        assert pos + 8 <= end, "truncated box header"
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            head = 16
        assert size >= head and pos + size <= end, (kind, size)
        body = data[pos + head:pos + size]
        children = boxes(data, pos + head, pos + size) if kind in CONTAINERS else []
        out.append(Box(kind, pos, body, children))
        pos += size
    assert pos == end
    return out


def find(items: list[Box], path: str) -> Box:
    first, _, rest = path.partition("/")
    for b in items:
        if b.kind == first.encode():
            return b.find(rest) if rest else b
    raise AssertionError(f"no {first} in {[b.kind for b in items]}")


@dataclass
class Run:
    track_id: int
    base: int
    data_offset: int
    entries: list[tuple[int, int, int, int]]  # duration, size, flags, composition offset
    tfhd_flags: int


def parse_fragment(data: bytes) -> tuple[int, list[Run], Box, Box]:
    """(sequence number, runs, moof, mdat) of one moof + mdat."""
    top = boxes(data)
    assert [b.kind for b in top] == [b"moof", b"mdat"]
    moof, mdat = top
    mfhd = moof.find("mfhd")
    seq = struct.unpack(">I", mfhd.body[4:8])[0]
    runs = []
    for traf in moof.all("traf"):
        tfhd, tfdt, trun = (traf.find(k) for k in ("tfhd", "tfdt", "trun"))
        assert tfdt.version == 1 and trun.version == 1
        track_id = struct.unpack(">I", tfhd.body[4:8])[0]
        base = struct.unpack(">Q", tfdt.body[4:12])[0]
        count, offset = struct.unpack(">Ii", trun.body[4:12])
        with_cto = bool(trun.flags & 0x800)
        assert trun.flags & 0x701 == 0x701
        step = 16 if with_cto else 12
        entries = []
        for i in range(count):
            at = 12 + i * step
            if with_cto:
                entries.append(struct.unpack(">IIIi", trun.body[at:at + 16]))
            else:
                entries.append((*struct.unpack(">III", trun.body[at:at + 12]), 0))
        assert len(trun.body) == 12 + count * step
        runs.append(Run(track_id, base, offset, entries, tfhd.flags))
    return seq, runs, moof, mdat


def samples_of(data: bytes, run: Run, moof: Box) -> list[bytes]:
    pos = moof.start + run.data_offset
    out = []
    for _, size, _, _ in run.entries:
        out.append(data[pos:pos + size])
        pos += size
    return out


# -- tracks from sequence headers ------------------------------------------------------------


@pytest.mark.parametrize("record, width, height, codecs", [
    (AVCC_160x120, 160, 120, "avc1.4d400b"),
    (AVCC_1280x720_HIGH, 1280, 720, "avc1.64001f"),
    (AVCC_1920x1080_444, 1920, 1080, "avc1.f40028"),
])
def test_avc_track_from_sps(record: bytes, width: int, height: int, codecs: str) -> None:
    t = fmp4.video_track(avc_seq(record))
    assert (t.codec, t.sample_entry, t.config_box) == ("avc", b"avc1", b"avcC")
    assert (t.width, t.height, t.codecs, t.config) == (width, height, codecs, record)
    assert t.timescale == 90000 and t.kind == "video" and t.track_id == 1
    enhanced = fmp4.video_track(b"\x90avc1" + record, track_id=5)  # Enhanced SequenceStart
    assert (enhanced.width, enhanced.height, enhanced.track_id) == (width, height, 5)


@pytest.mark.parametrize("record, width, height, codecs", [
    (HVCC_176x100, 176, 100, "hvc1.1.6.L30.90"),
    (HVCC_1920x1080, 1920, 1080, "hvc1.1.6.L120.90"),
])
def test_hevc_track_from_sps(record: bytes, width: int, height: int, codecs: str) -> None:
    for payload in (hevc_seq(record), hevc_seq(record, enhanced=False)):
        t = fmp4.video_track(payload)
        assert (t.codec, t.sample_entry, t.config_box) == ("hevc", b"hvc1", b"hvcC")
        assert (t.width, t.height, t.codecs, t.config) == (width, height, codecs, record)


def test_unparsable_sps_falls_back_to_given_size() -> None:
    # tests/peers.py's AVC_SEQ has an "SPS" of 4 letters
    t = fmp4.video_track(AVC_SEQ)
    assert (t.width, t.height, t.codecs) == (0, 0, "avc1.64001f")
    t = fmp4.video_track(AVC_SEQ, width=640, height=360)
    assert (t.width, t.height) == (640, 360)


@pytest.mark.parametrize("cut", range(5, 30))
def test_truncated_sps_never_raises(cut: int) -> None:
    """An SPS cut anywhere: the record is rebuilt consistent, the size falls back."""
    sps = AVCC_1280x720_HIGH[8:8 + 0x1A][:cut]
    record = AVCC_1280x720_HIGH[:6] + len(sps).to_bytes(2, "big") + sps + b"\x00"
    t = fmp4.video_track(avc_seq(record), width=1, height=2)
    assert (t.width, t.height) in ((1, 2), (1280, 720))


def test_av1_and_vp9_tracks() -> None:
    av1c = H("810c0c000a0b0000002d4c2ffd9fb2200c")  # a 176x100 style record, see below
    t = fmp4.video_track(b"\x90av01" + av1c)
    assert (t.codec, t.sample_entry, t.config_box, t.config) == ("av1", b"av01", b"av1C", av1c)
    assert t.codecs == "av01.0.12M.08"
    vpcc = H("01000000" "00" "0a" "82" "020202" "0000")
    t = fmp4.video_track(b"\x90vp09" + vpcc, width=320, height=240)
    assert (t.codec, t.config, t.codecs, t.width) == ("vp9", vpcc, "vp09.00.10.08", 320)
    bare = fmp4.video_track(b"\x90vp09" + vpcc[4:])  # a bare record gets version 1 added
    assert bare.config == vpcc


def test_aac_and_opus_tracks() -> None:
    t = fmp4.audio_track(AAC_SEQ)
    assert (t.codec, t.sample_entry, t.config, t.codecs) == ("aac", b"mp4a", H("1210"),
                                                             "mp4a.40.2")
    assert (t.sample_rate, t.timescale, t.channels, t.frame_samples) == (44100, 44100, 2, 1024)
    he = fmp4.audio_track(b"\x90mp4a" + H("2b10"))  # Enhanced mp4a, HE-AAC 24 kHz
    assert (he.codecs, he.sample_rate) == ("mp4a.40.5", 24000)
    o = fmp4.audio_track(opus_seq())
    assert (o.codec, o.sample_entry, o.sample_rate, o.channels, o.codecs) == (
        "opus", b"Opus", 48000, 2, "opus")
    assert o.config == bytes([0, 2]) + struct.pack(">HIhB", 312, 48000, 0, 0)
    assert fmp4.audio_track(opus_seq(b"")) == fmp4.opus_track()
    surround = OPUS_HEAD[:9] + b"\x06" + OPUS_HEAD[10:18] + b"\x01" + bytes([4, 2, 0, 4, 1, 2,
                                                                                3, 5])
    assert fmp4.audio_track(opus_seq(surround)).config[-8:] == bytes([4, 2, 0, 4, 1, 2, 3, 5])


@pytest.mark.parametrize("payload", [
    b"",
    b"\x17",
    b"\x17\x01\x00\x00\x00" + AVCC_160x120,  # coded frames, not a header
    avc_seq(b""),
    avc_seq(b"\x02" + AVCC_160x120[1:]),  # version 2
    avc_seq(AVCC_160x120[:12]),  # truncated SPS
    avc_seq(AVCC_160x120[:5] + b"\xe0\x00"),  # no SPS
    hevc_seq(HVCC_176x100[:22]),
    hevc_seq(HVCC_176x100[:40]),
    hevc_seq(b"\x00" + HVCC_176x100[1:]),
    b"\x90av01" + H("0100"),
    b"\x90vp09" + H("0102"),
    b"\x90vp08" + H("00" * 8),  # a known codec fMP4 here does not do
    b"\x14\x00\x00\x00\x00",  # VP6
    b"\x90avc1",  # Enhanced header without a record
])
def test_bad_video_headers_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        fmp4.video_track(payload)


@pytest.mark.parametrize("payload", [
    b"", b"\xaf", b"\xaf\x00", b"\xaf\x00\x12", b"\xaf\x01\x12\x10", b"\xaf\x00\x17\xf8",
    b"\x2f\x00", opus_seq(b"OpusHeaX" + OPUS_HEAD[8:]), opus_seq(OPUS_HEAD[:12]),
    opus_seq(OPUS_HEAD[:9] + b"\x00" + OPUS_HEAD[10:]),
    opus_seq(OPUS_HEAD[:9] + b"\x06" + OPUS_HEAD[10:]),  # 6 channels, family 0
    opus_seq(OPUS_HEAD[:9] + b"\x06" + OPUS_HEAD[10:18] + b"\x01\x04"),  # table cut
    b"\x90fLaC" + b"\x00" * 8,
])
def test_bad_audio_headers_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        fmp4.audio_track(payload)


@given(st.binary(max_size=64), st.sampled_from([b"", b"\x17\x00\x00\x00\x00", b"\x90hvc1",
                                                b"\x1c\x00\x00\x00\x00", b"\x90av01",
                                                b"\x90vp09"]))
def test_random_video_headers_raise_only_protocol_error(data: bytes, prefix: bytes) -> None:
    try:
        t = fmp4.video_track(prefix + data)
    except ProtocolError:
        return
    assert 0 <= t.width <= 0xFFFF and 0 <= t.height <= 0xFFFF
    fmp4.init_segment([t])


@given(st.binary(max_size=64), st.sampled_from([b"", b"\xaf\x00", b"\x90Opus", b"\x90mp4a"]))
def test_random_audio_headers_raise_only_protocol_error(data: bytes, prefix: bytes) -> None:
    try:
        t = fmp4.audio_track(prefix + data)
    except ProtocolError:
        return
    assert t.sample_rate > 0
    fmp4.init_segment([t])


@given(st.binary(min_size=1, max_size=64))
def test_random_sps_never_raises(sps: bytes) -> None:
    record = AVCC_160x120[:6] + len(sps).to_bytes(2, "big") + sps + b"\x00"
    fmp4.video_track(avc_seq(record))
    arrays = H("0101600000009000000000001ef000fcfdf8f800000f01") + bytes([0x21, 0, 1]) \
        + len(sps).to_bytes(2, "big") + sps
    fmp4.video_track(hevc_seq(arrays))


def test_opus_frame_samples() -> None:
    assert fmp4.opus_frame_samples(b"") == 0
    assert fmp4.opus_frame_samples(bytes([0xFC])) == 960  # CELT FB 20 ms, 1 frame
    assert fmp4.opus_frame_samples(bytes([0xF8 | 1])) == 1920  # 2 frames of 20 ms
    assert fmp4.opus_frame_samples(bytes([0x08 | 3, 3])) == 3 * 960  # SILK 20 ms x 3
    assert fmp4.opus_frame_samples(bytes([0x18 | 3, 3])) == 0  # 3 x 60 ms > 120 ms
    assert fmp4.opus_frame_samples(bytes([0x03])) == 0  # code 3 without its count
    assert fmp4.opus_frame_samples(bytes([0x80])) == 120  # CELT 2.5 ms


# -- init segment -----------------------------------------------------------------------------


def test_init_segment_fields() -> None:
    video = fmp4.video_track(avc_seq(AVCC_1280x720_HIGH))
    audio = fmp4.audio_track(AAC_SEQ)
    data = fmp4.init_segment([video, audio])
    top = boxes(data)
    assert [b.kind for b in top] == [b"ftyp", b"moov"]
    assert top[0].body == b"iso6" + bytes(4) + b"iso6cmfcmp41"
    moov = top[1]
    assert [b.kind for b in moov.children] == [b"mvhd", b"trak", b"trak", b"mvex"]
    mvhd = moov.find("mvhd")
    assert mvhd.version == 0 and len(mvhd.body) == 100
    assert struct.unpack(">I", mvhd.body[12:16])[0] == 1000  # timescale
    assert struct.unpack(">I", mvhd.body[96:100])[0] == 3  # next_track_ID
    vtrak, atrak = moov.all("trak")
    for trak, tid, scale, handler in ((vtrak, 1, 90000, b"vide"), (atrak, 2, 44100, b"soun")):
        tkhd = trak.find("tkhd")
        assert tkhd.flags == 3 and struct.unpack(">I", tkhd.body[12:16])[0] == tid
        mdhd = trak.find("mdia/mdhd")
        assert struct.unpack(">I", mdhd.body[12:16])[0] == scale
        assert mdhd.body[20:22] == b"\x55\xc4"  # und
        assert trak.find("mdia/hdlr").body[8:12] == handler
        stbl = trak.find("mdia/minf/stbl")
        assert [b.kind for b in stbl.children] == [b"stsd", b"stts", b"stsc", b"stsz", b"stco"]
        for kind in ("stts", "stsc", "stco"):
            assert stbl.find(kind).body == bytes(8)
        assert stbl.find("stsz").body == bytes(12)
    tkhd = vtrak.find("tkhd")
    assert struct.unpack(">II", tkhd.body[76:84]) == (1280 << 16, 720 << 16)
    assert struct.unpack(">h", tkhd.body[36:38])[0] == 0  # video: volume 0
    assert struct.unpack(">h", atrak.find("tkhd").body[36:38])[0] == 0x100
    stsd = vtrak.find("mdia/minf/stbl/stsd")
    assert struct.unpack(">I", stsd.body[4:8])[0] == 1
    avc1 = boxes(stsd.body, 8)[0]
    assert avc1.kind == b"avc1"
    assert struct.unpack(">HH", avc1.body[24:28]) == (1280, 720)
    assert boxes(avc1.body, 78) == [Box(b"avcC", 78, AVCC_1280x720_HIGH, [])]
    mp4a = boxes(atrak.find("mdia/minf/stbl/stsd").body, 8)[0]
    assert mp4a.kind == b"mp4a"
    assert struct.unpack(">HHHHI", mp4a.body[16:28]) == (2, 16, 0, 0, 44100 << 16)
    esds = boxes(mp4a.body, 28)[0]
    assert esds.kind == b"esds" and esds.body.endswith(b"\x05\x80\x80\x80\x02\x12\x10"
                                                       b"\x06\x80\x80\x80\x01\x02")
    assert esds.body[4] == 0x03 and b"\x04\x80\x80\x80\x14\x40\x15" in esds.body
    trex = moov.find("mvex").all("trex")
    assert [struct.unpack(">IIIII", b.body[4:24]) for b in trex] == [(1, 1, 0, 0, 0),
                                                                    (2, 1, 0, 0, 0)]


def test_init_segment_opus_hevc() -> None:
    video = fmp4.video_track(hevc_seq(HVCC_176x100))
    audio = fmp4.audio_track(opus_seq())
    moov = boxes(fmp4.init_segment([video, audio]))[1]
    vtrak, atrak = moov.all("trak")
    hvc1 = boxes(vtrak.find("mdia/minf/stbl/stsd").body, 8)[0]
    assert hvc1.kind == b"hvc1" and boxes(hvc1.body, 78)[0].body == HVCC_176x100
    opus = boxes(atrak.find("mdia/minf/stbl/stsd").body, 8)[0]
    assert opus.kind == b"Opus" and struct.unpack(">I", opus.body[24:28])[0] == 48000 << 16
    assert boxes(opus.body, 28)[0] == Box(b"dOps", 28, audio.config, [])


def test_init_segment_misuse() -> None:
    audio = fmp4.audio_track(AAC_SEQ)
    with pytest.raises(ValueError):
        fmp4.init_segment([])
    with pytest.raises(ValueError):
        fmp4.init_segment([audio, audio])


# -- fragments --------------------------------------------------------------------------------


def test_fragment_fields() -> None:
    v = [fmp4.Sample(900_000, 3600, b"K" * 100, True, 7200),
         fmp4.Sample(903_600, 3600, b"p" * 50, False, -3600),
         fmp4.Sample(907_200, 3000, memoryview(b"xxBxx")[2:3], False, 0)]
    a = [fmp4.Sample(441_000, 1024, b"a" * 7), fmp4.Sample(442_024, 1024, bytearray(b"b" * 9))]
    data = fmp4.fragment(42, {1: v, 2: a, 3: []})
    seq, runs, moof, mdat = parse_fragment(data)
    assert seq == 42 and len(runs) == 2  # no traf for a track without samples
    rv, ra = runs
    assert (rv.track_id, rv.base, rv.tfhd_flags) == (1, 900_000, 0x020000)
    assert (ra.track_id, ra.base, ra.tfhd_flags) == (2, 441_000, 0x020000)
    assert rv.entries == [(3600, 100, 0x02000000, 7200), (3600, 50, 0x01010000, -3600),
                          (3000, 1, 0x01010000, 0)]
    assert ra.entries == [(1024, 7, 0x02000000, 0), (1024, 9, 0x02000000, 0)]
    assert rv.data_offset == len(moof.body) + 8 + 8  # just after the mdat header
    assert samples_of(data, rv, moof) == [b"K" * 100, b"p" * 50, b"B"]
    assert samples_of(data, ra, moof) == [b"a" * 7, b"b" * 9]
    assert len(mdat.body) == 100 + 50 + 1 + 7 + 9
    assert mdat.start + 8 == moof.start + rv.data_offset


def test_fragment_misuse() -> None:
    s = fmp4.Sample(0, 1, b"x")
    for bad in ({1: [fmp4.Sample(-1, 1, b"x")]}, {1: [fmp4.Sample(0, 2**32, b"x")]},
                {0: [s]}, {1: [fmp4.Sample(0, 1, b"x", False, 2**31)]}):
        with pytest.raises(ValueError):
            fmp4.fragment(1, bad)
    with pytest.raises(ValueError):
        fmp4.fragment(-1, {1: [s]})
    assert boxes(fmp4.fragment(1, {}))[1].body == b""


sample_st = st.builds(fmp4.Sample, st.just(0), st.integers(0, 2**32 - 1),
                      st.binary(max_size=40), st.booleans(), st.integers(-2**31, 2**31 - 1))


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
       st.lists(sample_st, min_size=1, max_size=20), st.lists(sample_st, max_size=20))
def test_fragment_round_trip(seq: int, base: int, video: list[fmp4.Sample],
                             audio: list[fmp4.Sample]) -> None:
    video[0] = fmp4.Sample(base, video[0].duration, video[0].data, video[0].keyframe,
                           video[0].composition_offset)
    data = fmp4.fragment(seq, {7: video, 3: audio})
    got_seq, runs, moof, mdat = parse_fragment(data)
    assert got_seq == seq
    assert [r.track_id for r in runs] == [7, 3][:1 + bool(audio)]
    for run, samples in zip(runs, (video, audio), strict=False):
        assert run.base == samples[0].decode_time
        with_cto = any(s.composition_offset for s in samples)
        assert run.entries == [
            (s.duration, len(s.data),
             0x02000000 if s.keyframe else 0x01010000,
             s.composition_offset if with_cto else 0) for s in samples]
        assert samples_of(data, run, moof) == [bytes(s.data) for s in samples]
    assert len(mdat.body) == sum(len(s.data) for s in video + audio)


# -- real FFmpeg --------------------------------------------------------------------------

TIMEOUT = 60
LAVFI_V = ["-f", "lavfi", "-i", "testsrc2=size=176x100:rate=25"]
LAVFI_A = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
CASES = {
    "h264_aac": [*LAVFI_V, *LAVFI_A, "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
                 "-g", "10", "-c:a", "aac"],
    "hevc_opus": [*LAVFI_V, *LAVFI_A, "-c:v", "libx265", "-x265-params",
                  "log-level=error:keyint=10:min-keyint=10:scenecut=0", "-c:a", "libopus"],
    "hevc_aac": [*LAVFI_V, *LAVFI_A, "-c:v", "libx265", "-x265-params",
                 "log-level=error:keyint=10:min-keyint=10:scenecut=0", "-c:a", "aac"],
    "av1": [*LAVFI_V, "-c:v", "libsvtav1", "-g", "10", "-svtav1-params", "lp=1"],
    "vp9": [*LAVFI_V, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
            "-g", "10"],
}


def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return peers.run_sync(args, TIMEOUT)


@pytest.fixture(scope="module")
def flv_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return peers.encode_flv_files(tmp_path_factory.mktemp("fmp4"), CASES, 1, 3)


def coded(frame: Frame) -> bool:
    """A coded frame (what FFmpeg turns into a packet)."""
    if frame.is_sequence_header or frame.is_end_of_sequence or not len(frame.data):
        return False
    if frame.kind == "video":
        return frame.packet_type in (1, 3)
    return frame.packet_type == 1


def mux_flv(path: Path, out: Path,
            per_fragment: int = 5) -> tuple[int, int, list[bool], list[int]]:
    """Mux an FLV file's tags with fmp4 the simple way: durations from the
    next timestamp, audio frame after frame; (video frames, audio frames,
    keyframe flags, sizes)."""
    video_track = audio_track = None
    video: list[Frame] = []
    audio: list[Frame] = []
    for tag in read_tags(path):
        if tag.is_video:
            f = parse_video(tag.timestamp, tag.payload)
            if f.is_sequence_header:
                video_track = fmp4.video_track(tag.payload)
            elif coded(f):
                video.append(f)
        elif tag.is_audio:
            f = parse_audio(tag.timestamp, tag.payload)
            if f.is_sequence_header:
                audio_track = fmp4.audio_track(tag.payload)
            elif coded(f):
                audio.append(f)
    tracks = [t for t in (video_track, audio_track) if t is not None]
    vs = []
    for i, f in enumerate(video):
        nxt = video[i + 1].timestamp if i + 1 < len(video) else f.timestamp + 40
        vs.append(fmp4.Sample(f.timestamp * 90, (nxt - f.timestamp) * 90, f.data,
                              f.is_keyframe, f.composition_time * 90))
    as_ = []
    t = 0
    for f in audio:
        assert audio_track is not None
        n = fmp4.opus_frame_samples(f.data) if audio_track.codec == "opus" else 1024
        as_.append(fmp4.Sample(t, n, f.data))
        t += n
    parts = [fmp4.init_segment(tracks)]
    chunks = max(1, -(-len(vs) // per_fragment))
    for k in range(chunks):
        runs = {}
        if video_track is not None:
            runs[video_track.track_id] = vs[k * per_fragment:(k + 1) * per_fragment]
        if audio_track is not None:
            lo, hi = k * len(as_) // chunks, (k + 1) * len(as_) // chunks
            runs[audio_track.track_id] = as_[lo:hi]
        parts.append(fmp4.fragment(k + 1, runs))
    out.write_bytes(b"".join(parts))
    return len(vs), len(as_), [s.keyframe for s in vs], [len(s.data) for s in vs]


@pytest.mark.interop
@pytest.mark.parametrize("name", list(CASES))
def test_ffmpeg_decodes_our_fragments(flv_files: dict[str, Path], name: str,
                                      tmp_path: Path) -> None:
    if name not in flv_files:
        pytest.skip(f"this FFmpeg could not make {name}")
    ffmpeg = ffmpeg_exe()
    out = tmp_path / "out.mp4"
    nv, na, keys, sizes = mux_flv(flv_files[name], out)
    assert nv >= 24 and (na > 0) is ("_" in name)
    proc = run([ffmpeg, "-hide_banner", "-v", "error", "-i", str(out), "-f", "framecrc", "-"])
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()[-2000:]
    lines = [ln.split(",") for ln in proc.stdout.decode().splitlines()
             if not ln.startswith("#")]
    assert sum(1 for ln in lines if ln[0].strip() == "0") == nv  # every frame decoded
    assert sum(1 for ln in lines if ln[0].strip() == "1") == na
    # packets as FFmpeg reads them: sizes and keyframe flags as fed
    probe = run([ffmpeg, "-hide_banner", "-v", "error", "-i", str(out), "-map", "0:v",
                 "-c", "copy", "-f", "framecrc", "-"])
    vlines = [ln.split(",") for ln in probe.stdout.decode().splitlines()
              if not ln.startswith("#")]
    assert [int(ln[4]) for ln in vlines] == sizes
    assert ["F=0x0" not in ",".join(ln) for ln in vlines] == keys


@pytest.mark.interop
def test_ffprobe_reads_size_and_codecs(flv_files: dict[str, Path], tmp_path: Path) -> None:
    ffprobe = Path("/usr/bin/ffprobe")
    if not ffprobe.exists() or "hevc_aac" not in flv_files:
        pytest.skip("no system ffprobe")
    out = tmp_path / "out.mp4"
    mux_flv(flv_files["hevc_aac"], out)
    proc = run([str(ffprobe), "-v", "error", "-show_entries",
                "stream=codec_name,width,height,sample_rate", "-of", "csv=p=0", str(out)])
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["hevc,176,100", "aac,48000"]
