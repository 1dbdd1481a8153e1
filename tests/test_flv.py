"""rtmpx.flv: FLV 10.1 files, byte-exact, torn, and against real FFmpeg."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rtmpx import amf
from rtmpx.errors import ProtocolError
from rtmpx.flv import FLVReader, FLVWriter, Tag, read_tags
from rtmpx.media import Frame, parse_video

H = bytes.fromhex
HEADER_AV = b"FLV\x01\x05\x00\x00\x00\x09" + b"\x00\x00\x00\x00"


def flv_bytes(*tags: tuple[int, int, bytes | bytearray | memoryview], flags: int = 5) -> bytes:
    out = io.BytesIO()
    with FLVWriter(out, audio=bool(flags & 4), video=bool(flags & 1)) as w:
        for t in tags:
            w.write_tag(*t)
    return out.getvalue()


# -- writer: byte-exact ----------------------------------------------------------------


@pytest.mark.parametrize("audio, video, flag", [
    (True, True, 5), (True, False, 4), (False, True, 1), (False, False, 0)])
def test_header_bytes(audio: bool, video: bool, flag: int) -> None:
    out = io.BytesIO()
    FLVWriter(out, audio=audio, video=video).close()
    assert out.getvalue() == b"FLV\x01" + bytes([flag]) + H("00000009 00000000")
    assert not out.closed  # a file object given is left open


def test_tag_bytes_with_extended_timestamp() -> None:
    data = flv_bytes((9, 0x12345678, b"abc"), (8, 7, b""))
    assert data == HEADER_AV + (
        H("09 000003 345678 12 000000") + b"abc" + H("0000000e")
        + H("08 000000 000007 00 000000") + H("0000000b"))


def test_writer_accepts_any_buffer_and_frames() -> None:
    body = H("17 01 000000 0102")
    a = flv_bytes((9, 0, body))
    assert flv_bytes((9, 0, bytearray(body))) == a
    assert flv_bytes((9, 0, memoryview(b"x" + body)[1:])) == a
    out = io.BytesIO()
    with FLVWriter(out) as w:
        w.write_frame(parse_video(0, body))
        assert (w.tags_written, w.bytes_written) == (1, 13 + 11 + len(body) + 4)
    assert out.getvalue() == a


def test_writer_rejects_bad_arguments() -> None:
    w = FLVWriter(io.BytesIO())
    for args in ((9, -1, b""), (9, 1 << 32, b""), (32, 0, b""), (-1, 0, b"")):
        with pytest.raises(ValueError):
            w.write_tag(*args)
    with pytest.raises(ValueError):
        w.write_tag(9, 0, bytes(1 << 24))
    w.close()
    w.close()
    with pytest.raises(ValueError):
        w.write_tag(9, 0, b"")


def test_metadata_tag() -> None:
    out = io.BytesIO()
    with FLVWriter(out) as w:
        w.write_metadata({"width": 160.0, "stereo": True})
    body = out.getvalue()[13 + 11:-4]
    assert body == (H("02 000a") + b"onMetaData" + H("08 00000002")
                    + H("0005") + b"width" + H("00 4064000000000000")
                    + H("0006") + b"stereo" + H("01 01") + H("000009"))
    (tag,) = read_tags(io.BytesIO(out.getvalue()))
    assert tag.is_script and tag.timestamp == 0
    name, meta = tag.script()
    assert name == "onMetaData" and meta == {"width": 160.0, "stereo": True}
    assert isinstance(meta, amf.ECMAArray)


def test_path_is_opened_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "a.flv"
    with FLVWriter(path) as w:
        w.write_tag(8, 10, H("af 01 00"))
        # flushed per tag: visible before close
        assert read_tags(str(path))[0].payload == H("af 01 00")
    assert w.closed
    with FLVReader(path) as r:
        assert (r.version, r.has_audio, r.has_video, r.data_offset) == (1, True, True, 9)
        (tag,) = list(r)
        assert (tag.type_id, tag.timestamp, tag.offset, tag.is_audio) == (8, 10, 13, True)
        assert tag.frame().codec == "aac"
        assert not r.truncated and r.bad_previous_sizes == 0
    assert r._file.closed


def test_killed_writer_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.flv"
    code = textwrap.dedent(f"""
        import os, signal
        from rtmpx.flv import FLVWriter
        w = FLVWriter({str(path)!r})
        for i in range(20):
            w.write_tag(9, i * 40, bytes([0x17 if i % 10 == 0 else 0x27, 1, 0, 0, 0]) + bytes(500))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=root, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == -9
    with FLVReader(path) as r:
        tags = list(r)
    assert len(tags) == 20 and not r.truncated
    assert [t.timestamp for t in tags] == [40 * i for i in range(20)]


# -- reader ----------------------------------------------------------------------------


def test_reader_round_trip_and_timestamps() -> None:
    tss = [0, 1, 0xFFFFFF, 0x1000000, 0x7FFFFFFF, 0xFFFFFFFF]
    data = flv_bytes(*[(9 if i % 2 else 8, ts, bytes([i]) * i) for i, ts in enumerate(tss)])
    tags = read_tags(io.BytesIO(data))
    assert [(t.type_id, t.timestamp, t.payload) for t in tags] == [
        (9 if i % 2 else 8, ts, bytes([i]) * i) for i, ts in enumerate(tss)]
    offsets = [13]
    for i in range(len(tss) - 1):
        offsets.append(offsets[-1] + 15 + i)
    assert [t.offset for t in tags] == offsets
    assert all(type(t.payload) is bytes for t in tags)


def test_reader_skips_extra_header_bytes() -> None:
    data = flv_bytes((9, 5, H("17 00 000000")))
    longer = b"FLV\x01\x01" + H("0000000c") + b"xyz" + data[9:]
    with FLVReader(io.BytesIO(longer)) as r:
        assert (r.data_offset, r.has_audio, r.has_video) == (12, False, True)
        (tag,) = list(r)
    assert tag.offset == 16 and tag.frame().is_sequence_header


@pytest.mark.parametrize("data, match", [
    (b"", "not an FLV"), (b"FLV\x01\x05\x00\x00\x00", "not an FLV"),
    (b"FLX\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00", "not an FLV"),
    (b"FLV\x01\x05\x00\x00\x00\x08\x00\x00\x00\x00", "DataOffset"),
])
def test_reader_rejects_bad_headers(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        FLVReader(io.BytesIO(data))


def test_reader_max_tag_size() -> None:
    data = flv_bytes((9, 0, bytes(1000)), (9, 40, bytes(1001)))
    with FLVReader(io.BytesIO(data), max_tag_size=1000) as r:
        assert len(r.read_tag().payload) == 1000  # type: ignore[union-attr]
        with pytest.raises(ProtocolError, match="max_tag_size"):
            r.read_tag()
    assert len(read_tags(io.BytesIO(data), max_tag_size=1001)) == 2


def test_reader_counts_bad_previous_sizes() -> None:
    data = bytearray(flv_bytes((8, 0, b"ab"), (9, 0, b"cde"), (9, 0, b"f")))
    data[9:13] = H("00000005")      # PreviousTagSize0
    data[13 + 11 + 2:13 + 11 + 2 + 4] = H("00000000")
    tags = list(r := FLVReader(io.BytesIO(bytes(data))))
    assert [t.payload for t in tags] == [b"ab", b"cde", b"f"]
    assert r.bad_previous_sizes == 2 and not r.truncated


def test_reader_reports_encrypted_tags() -> None:
    data = bytearray(flv_bytes((9, 0, H("17 01 000000")), (18, 0, b"")))
    data[13] = 0x29  # Filter bit
    data[13 + 15 + 5] = 0x32
    tags = read_tags(io.BytesIO(bytes(data)))
    assert [(t.type_id, t.encrypted) for t in tags] == [(9, True), (18, True)]
    with pytest.raises(ProtocolError, match="encrypted"):
        tags[0].frame()
    with pytest.raises(ProtocolError, match="encrypted"):
        tags[1].script()


def test_tag_helpers() -> None:
    t = Tag(18, 0, amf.dumps_all(["onCuePoint", {"a": 1.0}]), 13)
    assert t.is_script and not t.is_audio and not t.is_video
    assert t.script() == ["onCuePoint", {"a": 1.0}]
    with pytest.raises(ValueError):
        t.frame()
    with pytest.raises(ValueError):
        Tag(9, 0, b"", 13).script()
    assert isinstance(Tag(9, 0, b"", 13).frame(), Frame)


def test_truncated_at_every_offset() -> None:
    tags = [(9, 0, H("17 00 000000") + bytes(20)), (8, 0, H("af 00 1210")),
            (9, 0, H("17 01 000000") + bytes(50)), (8, 23, H("af 01") + bytes(30))]
    data = flv_bytes(*tags)
    ends = []  # file length after each complete tag body, and after its trailer
    pos = 13
    for _, _, body in tags:
        ends.append((pos + 11 + len(body), pos + 15 + len(body)))
        pos += 15 + len(body)
    assert pos == len(data)
    for cut in range(9, len(data) + 1):
        r = FLVReader(io.BytesIO(data[:cut]))
        got = list(r)
        complete = sum(1 for body_end, _ in ends if body_end <= cut)
        assert [t.payload for t in got] == [b for _, _, b in tags[:complete]], cut
        clean = cut == 9 or cut == 13 or any(cut == end for _, end in ends)
        assert r.truncated is (not clean), cut


def test_read_tag_after_end_stays_none() -> None:
    r = FLVReader(io.BytesIO(flv_bytes((8, 0, b"a"))))
    assert r.read_tag() is not None
    assert r.read_tag() is None and r.read_tag() is None


# -- real FFmpeg -----------------------------------------------------------------------

TIMEOUT = 60


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.skip("imageio-ffmpeg is not installed (pip install imageio-ffmpeg)")
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT, check=False)


def _encoders(ffmpeg: str) -> str:
    return _run([ffmpeg, "-hide_banner", "-encoders"]).stdout.decode()


LAVFI_V = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"]
LAVFI_A = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
GOP = 10
SECONDS = "2"

CASES = {
    # name: (encoder needed, args, expected video codec, expected audio codec)
    "h264_aac": ("libx264", [*LAVFI_V, *LAVFI_A, "-c:v", "libx264", "-preset", "medium",
                             "-bf", "2", "-g", str(GOP), "-sc_threshold", "0",
                             "-c:a", "aac"], "avc", "aac"),
    "hevc_opus": ("libx265", [*LAVFI_V, *LAVFI_A, "-c:v", "libx265", "-x265-params",
                              f"log-level=error:keyint={GOP}:min-keyint={GOP}:scenecut=0",
                              "-c:a", "libopus"], "hevc", "opus"),
    "av1": ("libaom-av1", [*LAVFI_V, "-c:v", "libaom-av1", "-cpu-used", "8", "-g", str(GOP),
                           "-row-mt", "1"], "av1", None),
    "vp9_flac": ("libvpx-vp9", [*LAVFI_V, *LAVFI_A, "-c:v", "libvpx-vp9", "-deadline",
                                "realtime", "-cpu-used", "8", "-g", str(GOP),
                                "-c:a", "flac"], "vp9", "flac"),
}


@pytest.fixture(scope="module")
def ffmpeg_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Encode the FLV files once per module, two at a time."""
    ffmpeg = _ffmpeg()
    encoders = _encoders(ffmpeg)
    out = tmp_path_factory.mktemp("ffmpeg")
    jobs = {}
    for name, (encoder, args, _v, _a) in CASES.items():
        if name == "av1" and " libaom-av1 " not in encoders and " libsvtav1 " in encoders:
            args = [*LAVFI_V, "-c:v", "libsvtav1", "-g", str(GOP)]
        elif f" {encoder} " not in encoders:
            continue
        jobs[name] = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args,
                      "-t", SECONDS, str(out / f"{name}.flv")]
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(jobs, pool.map(_run, jobs.values())))
    files = {}
    for name, proc in results.items():
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        files[name] = out / f"{name}.flv"
    return files


def _framecrc(ffmpeg: str, path: Path | str) -> list[list[str]]:
    proc = _run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0",
                 "-c", "copy", "-f", "framecrc", "-"])
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return [[x.strip() for x in line.split(",")]
            for line in proc.stdout.decode().splitlines() if not line.startswith("#")]


def _framecrc_text(ffmpeg: str, path: Path) -> str:
    proc = _run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0",
                 "-c", "copy", "-f", "framecrc", "-"])
    return proc.stdout.decode()


def _key(line: list[str]) -> tuple[str, ...]:
    return (line[0], line[4], line[5])


def _makes_packet(f: Frame) -> bool:
    """Does FFmpeg turn this tag into a packet (not extradata, side data, or
    an empty packet, which it drops)?"""
    return not (f.is_sequence_header or f.is_end_of_sequence
                or (f.is_enhanced and f.packet_type == 4) or f.data_offset == len(f.payload))


def _case(ffmpeg_files: dict[str, Path], name: str) -> Path:
    if name not in ffmpeg_files:
        pytest.skip(f"this ffmpeg has no {CASES[name][0]} encoder")
    return ffmpeg_files[name]


@pytest.mark.interop
@pytest.mark.parametrize("name", list(CASES))
def test_ffmpeg_files(ffmpeg_files: dict[str, Path], name: str) -> None:
    ffmpeg = _ffmpeg()
    path = _case(ffmpeg_files, name)
    _enc, _args, vcodec, acodec = CASES[name]
    with FLVReader(path) as r:
        tags = list(r)
    assert not r.truncated and r.bad_previous_sizes == 0
    assert r.has_video and r.has_audio is (acodec is not None)
    assert tags[0].is_script and tags[0].script()[0] == "onMetaData"
    frames = [t.frame(strict=True) for t in tags if not t.is_script]
    video = [f for f in frames if f.kind == "video"]
    audio = [f for f in frames if f.kind == "audio"]
    assert {f.codec for f in video} == {vcodec}
    assert {f.codec for f in audio} == ({acodec} if acodec else set())
    assert video[0].is_sequence_header
    if acodec:
        assert audio[0].is_sequence_header
    assert (vcodec == "avc") is (not video[0].is_enhanced)
    vpackets = [f for f in video if _makes_packet(f)]
    apackets = [f for f in audio if _makes_packet(f)]
    assert len(vpackets) == 25 * int(SECONDS)
    keys = [i for i, f in enumerate(vpackets) if f.is_keyframe]
    # one keyframe per GOP (x265 moves them a little in decode order)
    assert len(keys) == len(vpackets) // GOP and keys[0] == 0
    if vcodec != "hevc":
        assert keys == list(range(0, len(vpackets), GOP))

    lines = _framecrc(ffmpeg, path)
    vlines = [ln for ln in lines if ln[0] == "0"]
    alines = [ln for ln in lines if ln[0] == "1"]
    assert len(vlines) == len(vpackets) and len(alines) == len(apackets)
    assert [int(ln[4]) for ln in vlines] == [len(f.payload) - f.data_offset for f in vpackets]
    assert [i for i, ln in enumerate(vlines) if "F=0x0" not in ln] == keys
    # composition time = pts - dts, packet by packet
    assert [int(ln[2]) - int(ln[1]) for ln in vlines] == [f.composition_time for f in vpackets]
    if vcodec == "avc":
        assert any(f.composition_time > 0 for f in vpackets)  # B-frames
    if vcodec == "hevc":
        assert {f.packet_type for f in vpackets} <= {1, 3}


@pytest.mark.interop
@pytest.mark.parametrize("name", list(CASES))
def test_ffmpeg_rewrite_is_identical(ffmpeg_files: dict[str, Path], name: str,
                                     tmp_path: Path) -> None:
    ffmpeg = _ffmpeg()
    src = _case(ffmpeg_files, name)
    dst = tmp_path / "copy.flv"
    with FLVReader(src) as r, FLVWriter(dst, audio=r.has_audio, video=r.has_video) as w:
        for tag in r:
            w.write_tag(tag.type_id, tag.timestamp, tag.payload)
    assert _framecrc_text(ffmpeg, dst) == _framecrc_text(ffmpeg, src)
    assert dst.read_bytes() == src.read_bytes()


@pytest.mark.interop
def test_ffmpeg_reads_torn_files_like_the_reader(ffmpeg_files: dict[str, Path],
                                                 tmp_path: Path) -> None:
    """Cut a file written by FLVWriter at every byte of its last 3 tags and a
    few earlier places: the reader stops cleanly, with the complete tags, and
    FFmpeg reads the same complete packets (plus, where the last body is torn,
    one partial packet, which it also reports)."""
    ffmpeg = _ffmpeg()
    src = _case(ffmpeg_files, "h264_aac")
    tags = read_tags(src)
    media = [t for t in tags if not t.is_script]
    # keep it short: sequence headers, the first 12 media tags, and a big
    # video tag last so that a torn body differs from a whole one
    last_video = next(t for t in media[12:] if t.is_video and len(t.payload) > 200)
    keep = [*tags[:1], *media[:12], last_video]
    path = tmp_path / "w.flv"
    with FLVWriter(path) as w:
        for t in keep:
            w.write_tag(t.type_id, t.timestamp, t.payload)
    data = path.read_bytes()
    full = _framecrc(ffmpeg, path)
    full_keys = {_key(ln) for ln in full}
    starts = [t.offset for t in read_tags(path)]
    assert len(starts) == len(keep)

    def expected(cut: int) -> tuple[list[Tag], bool]:
        r = FLVReader(io.BytesIO(data[:cut]))
        return list(r), r.truncated

    def packets(tags_: list[Tag]) -> Counter[str]:
        return Counter("0" if t.is_video else "1" for t in tags_
                       if not t.is_script and _makes_packet(t.frame()))

    for cut in range(starts[-3], len(data) + 1):  # the reader, every byte
        got, truncated = expected(cut)
        assert [t.offset for t in got] == [
            s for i, s in enumerate(starts) if s + 11 + len(keep[i].payload) <= cut], cut
        assert truncated is not (cut in starts or cut == len(data)), cut

    # FFmpeg at the edges of each of the last 3 tags, and a few earlier places
    cuts = {starts[6] + 20, starts[8] + 11, starts[10] + 3}
    for i in (-3, -2, -1):
        s, size = starts[i], len(keep[i].payload)
        cuts |= {s, s + 1, s + 10, s + 11, s + 12, s + 11 + size // 2, s + 11 + size - 1,
                 s + 11 + size, s + 11 + size + 2, s + 15 + size}

    def check(cut: int) -> int:
        cut_path = tmp_path / f"cut{cut}.flv"
        cut_path.write_bytes(data[:cut])
        # FFmpeg 9 turns some torn tag headers into a 1-byte packet of a new
        # data stream (2): not media, left out
        lines = [ln for ln in _framecrc(ffmpeg, cut_path) if ln[0] in ("0", "1")]
        got, _ = expected(cut)
        # packets by (stream, size, crc): the times FFmpeg prints shift with
        # where the file ends (its start-time offset and last duration guess)
        complete = [ln for ln in lines if _key(ln) in full_keys]
        assert Counter(ln[0] for ln in complete) == packets(got), (cut, lines)
        partial = [ln for ln in lines if _key(ln) not in full_keys]
        assert len(partial) <= 1, (cut, lines)
        for ln in partial:  # the torn last packet: fewer bytes than the whole one
            stream = [f for f in full if f[0] == ln[0]]
            index = sum(1 for c in complete if c[0] == ln[0])
            assert index < len(stream), (cut, partial)
            whole = stream[index]
            assert int(ln[4]) < int(whole[4]), (cut, lines)
        return len(partial)

    with ThreadPoolExecutor(2) as pool:
        torn = sum(pool.map(check, sorted(cuts)))
    assert torn >= 3  # torn bodies were seen as partial packets, and checked


@pytest.mark.interop
def test_debian_ffprobe_cross_check(ffmpeg_files: dict[str, Path], tmp_path: Path) -> None:
    """Optional: the system's older ffprobe (Debian, FFmpeg 5.1) reads a file
    rewritten by FLVWriter, packet for packet."""
    ffprobe = shutil.which("ffprobe") or ("/usr/bin/ffprobe" if os.path.exists(
        "/usr/bin/ffprobe") else None)
    if ffprobe is None:
        pytest.skip("no system ffprobe")
    src = _case(ffmpeg_files, "h264_aac")
    dst = tmp_path / "copy.flv"
    tags = read_tags(src)
    with FLVWriter(dst) as w:
        for t in tags:
            w.write_tag(t.type_id, t.timestamp, t.payload)
    proc = _run([ffprobe, "-v", "error", "-show_entries", "packet=stream_index,size,flags",
                 "-of", "csv=p=0", str(dst)])
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = [ln.split(",") for ln in proc.stdout.decode().split()]
    frames = [t.frame() for t in tags if not t.is_script]
    want = [(0 if f.kind == "video" else 1, len(f.payload) - f.data_offset, f.is_keyframe)
            for f in frames if _makes_packet(f)]
    got = [(int(r[0]), int(r[1]), r[2].startswith("K")) for r in rows]
    assert sorted(got) == sorted(want)

