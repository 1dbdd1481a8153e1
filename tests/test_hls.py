"""rtmpx.hls: playlists, cuts, timelines, bounds under hostile input, and real FFmpeg."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtmpx import fmp4
from rtmpx.errors import InvalidStateError
from rtmpx.flv import read_tags
from rtmpx.hls import Availability, HLSConfig, Packager

from . import peers
from .peers import AAC_SEQ, AVC_SEQ, aac_frame, avc_frame, ffmpeg_exe
from .test_fmp4 import AVCC_160x120, HVCC_176x100, avc_seq, hevc_seq, parse_fragment

READY, WAIT, INVALID = Availability.READY, Availability.WAIT, Availability.INVALID


def video_only(frames: int, keyint: int = 25, config: HLSConfig | None = None,
               step: int = 40) -> Packager:
    p = Packager(config or HLSConfig(prefix="live/", segment_target=1.0, part_target=0.2))
    p.feed(18, 0, b"\x02\x00\x0aonMetaData")  # ignored
    p.feed(9, 0, AVC_SEQ)
    for i in range(frames):
        p.feed(9, step * i, avc_frame(i % keyint == 0, i, 100))
    return p


def av(seconds: float, keyint: int = 25, config: HLSConfig | None = None) -> Packager:
    """Video at 25 fps and AAC at 44.1 kHz (a frame every 23.2 ms), interleaved
    by timestamp as a publisher sends them."""
    p = Packager(config or HLSConfig(prefix="live/", segment_target=1.0, part_target=0.2))
    p.feed(9, 0, AVC_SEQ)
    p.feed(8, 0, AAC_SEQ)
    msgs = [(40 * i, 9, avc_frame(i % keyint == 0, i, 100)) for i in range(int(seconds * 25))]
    msgs += [(i * 1024 * 1000 // 44100, 8, aac_frame(i, 20))
             for i in range(int(seconds * 44100 / 1024))]
    for ts, kind, payload in sorted(msgs, key=lambda m: (m[0], -m[1])):
        p.feed(kind, ts, payload)
    return p


def parts_of(p: Packager) -> list[tuple[int, int, bytes]]:
    out = []
    for line in p.playlist().splitlines():
        m = re.match(r'#EXT-X-PART:.*URI="live/(\d+)\.(\d+)\.m4s"', line)
        if m:
            msn, n = int(m[1]), int(m[2])
            data = p.part(msn, n)
            assert data is not None
            out.append((msn, n, data))
    return out


# -- playlists ---------------------------------------------------------------------------

EXPECTED = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6,HOLD-BACK=6.0
#EXT-X-PART-INF:PART-TARGET=0.2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI="live/init.mp4"
#EXT-X-PART:DURATION=0.2,URI="live/0.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.2,URI="live/0.1.m4s"
#EXT-X-PART:DURATION=0.2,URI="live/0.2.m4s"
#EXT-X-PART:DURATION=0.2,URI="live/0.3.m4s"
#EXT-X-PART:DURATION=0.2,URI="live/0.4.m4s"
#EXTINF:1.0,
live/0.m4s
#EXT-X-PART:DURATION=0.2,URI="live/1.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.2,URI="live/1.1.m4s"
#EXT-X-PART:DURATION=0.2,URI="live/1.2.m4s"
#EXT-X-PART:DURATION=0.2,URI="live/1.3.m4s"
#EXT-X-PART:DURATION=0.2,URI="live/1.4.m4s"
#EXTINF:1.0,
live/1.m4s
#EXT-X-PART:DURATION=0.2,URI="live/2.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="live/2.1.m4s"
"""


def test_playlist_text_for_a_known_stream() -> None:
    """25 fps, a keyframe a second, 60 frames: frame 59 waits for its
    duration, 55-58 for the part to fill."""
    p = video_only(60)
    assert p.playlist() == EXPECTED
    assert p.codecs == "avc1.64001f" and p.segment_count == 2
    assert p.preload_hint == (2, 1)
    p.end()
    text = p.playlist()
    assert text.endswith('#EXT-X-PART:DURATION=0.2,URI="live/2.1.m4s"\n'
                         "#EXTINF:0.4,\nlive/2.m4s\n#EXT-X-ENDLIST\n")
    assert "PRELOAD-HINT" not in text and p.preload_hint is None
    with pytest.raises(InvalidStateError):
        p.feed(9, 0, AVC_SEQ)
    p.end()  # twice is fine


def test_segments_start_at_keyframes_and_parts_at_samples() -> None:
    p = av(5.0, keyint=15)  # a keyframe every 0.6 s: segments of 1.2 s
    p.end()
    text = p.playlist()
    assert re.findall(r"#EXTINF:([\d.]+),", text)[:3] == ["1.2", "1.2", "1.2"]
    init = p.init(0)
    assert init is not None
    frame_numbers = []
    audio_numbers = []
    audio_end = None
    for msn, n, data in parts_of(p):
        _seq, runs, moof, _ = parse_fragment(data)
        video = [r for r in runs if r.track_id == 1]
        independent = f'URI="live/{msn}.{n}.m4s",INDEPENDENT=YES' in text
        if video:
            first_flags = video[0].entries[0][2]
            assert independent is (first_flags == fmp4.SYNC_SAMPLE_FLAGS)
            if n == 0:
                assert first_flags == fmp4.SYNC_SAMPLE_FLAGS  # a segment starts at a keyframe
            pos = moof.start + video[0].data_offset
            for dur, size, _, _ in video[0].entries:
                assert dur == 3600
                frame_numbers.append(int.from_bytes(data[pos:pos + 4], "big"))
                pos += size
            assert sum(e[0] for e in video[0].entries) <= 0.2 * 90000
        for r in runs:
            if r.track_id == 2:
                if audio_end is not None:
                    assert r.base == audio_end  # no gap, no overlap between parts
                audio_end = r.base + sum(e[0] for e in r.entries)
                assert {e[0] for e in r.entries} == {1024}
                pos = moof.start + r.data_offset
                for _, size, _, _ in r.entries:
                    audio_numbers.append(int.from_bytes(data[pos:pos + 4], "big"))
                    pos += size
    assert frame_numbers == list(range(125))  # each frame once, in order
    assert audio_numbers == list(range(audio_numbers[0], audio_numbers[0] + len(audio_numbers)))
    assert len(audio_numbers) >= 210
    for seg in range(4):
        whole = p.segment(seg)
        assert whole == b"".join(p.part(seg, n) or b"" for n in range(20))


def test_audio_only_is_cut_by_time() -> None:
    p = Packager(HLSConfig(prefix="live/", segment_target=1.0, part_target=0.25))
    p.feed(8, 0, AAC_SEQ)
    for i in range(200):
        p.feed(8, i * 1024 * 1000 // 44100, aac_frame(i))
    text = p.playlist()
    assert p.segment_count >= 3
    parts = re.findall(r"#EXT-X-PART:DURATION=([\d.]+),URI=\"[^\"]+\"(,INDEPENDENT=YES)?", text)
    assert all(ind for _, ind in parts)
    assert all(0.2 < float(d) <= 0.25 for d, _ in parts)
    for d in re.findall(r"#EXTINF:([\d.]+),", text):
        assert 0.75 <= float(d) <= 1.25
    assert p.codecs == "mp4a.40.2"


def test_codec_change_starts_a_discontinuity() -> None:
    p = video_only(30)
    p.feed(9, 1200, AVC_SEQ)  # the same header again: nothing changes
    version = p.version
    p.feed(9, 1200, avc_frame(False, 30, 100))
    assert "DISCONTINUITY" not in p.playlist()
    assert p.version >= version
    p.feed(9, 1240, avc_seq(AVCC_160x120))
    p.feed(9, 1240, avc_frame(False, 31, 100))  # waits for a keyframe
    p.feed(9, 1280, avc_frame(True, 32, 100))
    for i in range(33, 60):
        p.feed(9, 40 * i, avc_frame(i % 25 == 0, i, 100))
    text = p.playlist()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    head, _, tail = text.partition("#EXT-X-DISCONTINUITY\n")
    assert '#EXT-X-MAP:URI="live/init.mp4"' in head
    assert tail.startswith('#EXT-X-MAP:URI="live/init-1.mp4"\n#EXT-X-PART:')
    assert p.init(1) is not None and p.init(0) is not None and p.init(2) is None
    video = p.tracks[0]
    assert isinstance(video, fmp4.VideoTrack) and video.width == 160
    assert p.codecs == "avc1.4d400b"
    # the old period's segments age out: its init goes, the sequence counts it
    for i in range(60, 400):
        p.feed(9, 40 * i, avc_frame(i % 25 == 0, i, 100))
    text = p.playlist()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in text and "#EXT-X-DISCONTINUITY\n" not in text
    assert p.init(0) is None and '#EXT-X-MAP:URI="live/init-1.mp4"' in text


def test_hevc_header_after_avc_and_late_audio_header() -> None:
    p = video_only(30)
    p.feed(8, 1200, AAC_SEQ)  # audio joins: a new period with both tracks
    p.feed(9, 1200, avc_frame(True, 30, 100))
    p.feed(8, 1210, aac_frame(0))
    assert p.codecs == "avc1.64001f,mp4a.40.2"
    p.feed(9, 1240, hevc_seq(HVCC_176x100))
    p.feed(9, 1240, b"\x91hvc1\x00\x00\x00" + bytes([0, 0, 0, 3, 0x26, 1, 0]))
    assert p.codecs == "hvc1.1.6.L30.90,mp4a.40.2"
    # one for the segment of the video + audio period; the HEVC one has none yet
    assert p.playlist().count("#EXT-X-DISCONTINUITY\n") == 1


def test_long_gop_is_cut_at_the_target_duration() -> None:
    p = video_only(300, keyint=250)  # a keyframe every 10 s, target duration 2
    text = p.playlist()
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)]
    assert durations and all(round(d) <= 2 for d in durations)
    # closed at the last part that keeps the EXTINF from rounding above 2
    assert durations == [2.4] * 4 and p.preload_hint == (4, 11)
    first = []
    for msn in range(5):
        data = p.part(msn, 0)
        assert data is not None
        first.append(parse_fragment(data)[1][0].entries[0][2] == fmp4.SYNC_SAMPLE_FLAGS)
    assert first == [True, False, False, False, False]  # the keyframe of frame 0 only
    # segment 0's parts are too old to list; frame 250 (10 s) starts part 4.2, mid-segment
    assert text.count(",INDEPENDENT=YES") == 1
    assert 'URI="live/4.2.m4s",INDEPENDENT=YES' in text


def test_sample_durations_and_opus_timeline() -> None:
    p = Packager(HLSConfig(prefix="live/", segment_target=1.0, part_target=0.5))
    p.feed(8, 0, b"\x90Opus")  # no OpusHead: the default
    for i in range(120):  # 20 ms packets (TOC 0xFC), one 40 ms (code 1) each 10
        toc = 0xFD if i % 10 == 9 else 0xFC
        p.feed(8, 20 * i + (i // 10) * 20, b"\x91Opus" + bytes([toc]) + b"o" * 30)
    p.end()
    expected_base = 0
    for _, _, data in parts_of(p):
        _, runs, _, _ = parse_fragment(data)
        assert runs[0].base == expected_base
        expected_base += sum(e[0] for e in runs[0].entries)
        assert {e[0] for e in runs[0].entries} <= {960, 1920}
    assert expected_base == 120 * 960 + 12 * 960


def test_audio_timeline_ignores_jitter_and_resyncs_on_gaps() -> None:
    p = Packager(HLSConfig(prefix="live/", segment_target=1.0, part_target=0.25))
    p.feed(8, 0, AAC_SEQ)
    jitter = [0, 30, -20, 10, -30, 25]
    stamps = [max(0, i * 1024 * 1000 // 44100 + jitter[i % 6]) for i in range(100)]
    stamps += [5000 + i * 1024 * 1000 // 44100 for i in range(50)]  # a 2.7 s gap
    for i, ts in enumerate(sorted(stamps)):
        p.feed(8, ts, aac_frame(i))
    p.end()
    runs = [parse_fragment(data)[1][0] for _, _, data in parts_of(p)]
    dts = [r.base + sum(e[0] for e in r.entries[:k]) for r in runs
           for k in range(len(r.entries))]
    assert dts[:100] == [1024 * i for i in range(100)]  # jitter ignored: no drift
    assert dts[100] == 5000 * 44100 // 1000  # the gap: back on the timestamps
    assert dts[100:] == [dts[100] + 1024 * i for i in range(50)]
    # the sample before the gap lasts until it (no hole in the track)
    assert runs[0].base == 0 and sum(sum(e[0] for e in r.entries) for r in runs) == \
        dts[-1] + 1024


def test_timestamps_backwards_and_jumping_keep_each_track_monotonic() -> None:
    p = Packager(HLSConfig(prefix="live/", segment_target=1.0, part_target=0.2))
    p.feed(9, 0, AVC_SEQ)
    p.feed(8, 0, AAC_SEQ)
    stamps = [40 * i for i in range(40)] + [5, 45, 85] + [2**32 - 80 + 40 * i for i in range(5)]
    stamps += [40 * i for i in range(10)] + [10**9 + 40 * i for i in range(30)]
    for n, ts in enumerate(stamps):
        p.feed(9, ts, avc_frame(n % 25 == 0, n, 50))
        p.feed(8, ts + 3, aac_frame(n))
    p.end()
    ends: dict[int, int] = {}
    for _, _, data in parts_of(p):
        _, runs, _, _ = parse_fragment(data)
        for r in runs:
            if r.track_id in ends:
                assert r.base >= ends[r.track_id]
                if r.track_id == 1:
                    assert r.base == ends[1]
            ends[r.track_id] = r.base + sum(e[0] for e in r.entries)
            assert all(e[0] > 0 for e in r.entries)
            assert all(e[0] <= 10_000 * 90 for e in r.entries)  # no 12-day sample


# -- availability -----------------------------------------------------------------------


def test_blocking_reload_predicate() -> None:
    p = video_only(60)  # segments 0, 1 complete; 2 has part 0; hint 2.1
    assert p.playlist_ready(0) is READY and p.playlist_ready(1) is READY
    assert p.playlist_ready(1, 7) is READY  # a complete segment: all its parts are known
    assert p.playlist_ready(2) is WAIT
    assert p.playlist_ready(2, 0) is READY
    assert p.playlist_ready(2, 1) is WAIT  # the hinted part
    # the Advance Part Limit: 3 s of 0.2 s parts, 15 past the last one (2.0)
    assert p.playlist_ready(2, 15) is WAIT
    assert p.playlist_ready(2, 16) is INVALID
    assert p.playlist_ready(3) is WAIT and p.playlist_ready(3, 0) is WAIT
    assert p.playlist_ready(3, 14) is WAIT and p.playlist_ready(3, 15) is INVALID
    assert p.playlist_ready(4) is INVALID  # more than 2 past the last segment
    assert p.playlist_ready(-1) is INVALID and p.playlist_ready(0, -1) is INVALID
    assert p.media_ready(1) is READY and p.media_ready(2) is WAIT
    assert p.media_ready(2, 0) is READY and p.media_ready(2, 1) is WAIT
    assert p.media_ready(2, 2) is INVALID and p.media_ready(3, 0) is INVALID
    assert p.media_ready(9) is INVALID
    version = p.version
    for i in range(60, 66):
        p.feed(9, 40 * i, avc_frame(i % 25 == 0, i, 100))
    assert p.version > version
    assert p.playlist_ready(2, 1) is READY and p.part(2, 1) is not None
    p.end()
    assert p.playlist_ready(3, 1) is READY  # ended: answer at once
    assert p.media_ready(2) is READY and p.media_ready(3) is INVALID
    assert p.media_ready(2, 9) is INVALID


def test_nothing_before_the_first_segment() -> None:
    p = Packager()
    assert p.playlist_ready(0) is WAIT and p.playlist_ready(0, 0) is WAIT
    assert p.playlist_ready(2) is INVALID
    assert p.media_ready(0, 0) is WAIT and p.media_ready(0) is INVALID
    assert p.playlist() == (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,HOLD-BACK=12.0\n"
        "#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:0\n"
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="0.0.m4s"\n')
    assert p.init(0) is None and p.segment(0) is None and p.part(0, 0) is None


def test_config_is_checked() -> None:
    for bad in ({"part_target": 0}, {"part_target": 3.0}, {"max_segments": 1},
                {"max_segment_duration": 1.0}, {"max_bytes": 1000},
                {"prefix": 'a"b'}, {"max_part_samples": 0},
                {"max_segment_bytes": 10, "max_part_bytes": 100}):
        with pytest.raises(ValueError):
            HLSConfig(**bad)
    assert HLSConfig(segment_target=2.0).target_duration == 4
    assert HLSConfig(segment_target=6.0, max_segment_duration=6.5).target_duration == 7


# -- bounds ---------------------------------------------------------------------------------

SMALL = HLSConfig(prefix="live/", segment_target=0.5, part_target=0.1, max_segments=3,
                  max_bytes=60_000, max_segment_bytes=20_000, max_part_bytes=5_000,
                  max_part_samples=50)


def test_count_and_byte_bounds_hold() -> None:
    p = Packager(SMALL)
    p.feed(9, 0, AVC_SEQ)
    p.feed(8, 0, AAC_SEQ)
    for i in range(2000):
        size = 4000 if i % 7 == 0 else 300
        p.feed(9, 20 * i, avc_frame(i % 10 == 0, i, size))
        p.feed(8, 20 * i + 5, aac_frame(i, 200))
        assert p.segment_count <= 3 and p.held_bytes <= 60_000
    assert p.segment_count >= 1  # the bytes bound keeps fewer than 3 of these
    for i in range(2000, 2500):  # small frames: the count bound
        p.feed(9, 20 * i, avc_frame(i % 10 == 0, i, 20))
        assert p.segment_count <= 3 and p.held_bytes <= 60_000
    assert p.segment_count == 3
    for m in re.findall(r"live/(\d+)\.m4s", p.playlist()):
        assert p.segment(int(m)) is not None


def test_huge_frames_are_dropped_and_video_waits_for_a_keyframe() -> None:
    p = Packager(SMALL)
    p.feed(9, 0, AVC_SEQ)
    p.feed(9, 0, avc_frame(True, 0, 100))
    p.feed(9, 40, avc_frame(False, 1, 10_000))  # above max_part_bytes
    p.feed(9, 80, avc_frame(False, 2, 100))  # needs frame 1: dropped too
    p.feed(9, 120, avc_frame(True, 3, 100))
    p.feed(9, 160, avc_frame(False, 4, 100))
    p.end()
    numbers = []
    for _, _, data in parts_of(p):
        _, runs, moof, _ = parse_fragment(data)
        pos = moof.start + runs[0].data_offset
        for _, size, _, _ in runs[0].entries:
            numbers.append(int.from_bytes(data[pos:pos + 4], "big"))
            pos += size
    assert numbers == [0, 3, 4]
    assert p.skipped == 1


def test_no_keyframe_ever_holds_nothing() -> None:
    p = Packager(SMALL)
    p.feed(9, 0, AVC_SEQ)
    p.feed(8, 0, AAC_SEQ)
    for i in range(3000):
        p.feed(9, 40 * i, avc_frame(False, i, 1000))
        p.feed(8, 40 * i, aac_frame(i, 300))
    assert p.held_bytes == 0 and p.segment_count == 0
    assert "#EXTINF" not in p.playlist()


def test_stalled_video_bounds_audio() -> None:
    p = Packager(SMALL)
    p.feed(9, 0, AVC_SEQ)
    p.feed(8, 0, AAC_SEQ)
    p.feed(9, 0, avc_frame(True, 0, 100))
    for i in range(5000):  # video stops; audio goes on
        p.feed(8, 20 * i, aac_frame(i, 300))
        assert p.held_bytes <= 60_000
    assert p.held_bytes <= 2 * 5_000 + 1000


def numbers_in(p: Packager, msns: range) -> tuple[list[int], list[int]]:
    """The frame numbers (avc_frame/aac_frame) of tracks 1 and 2, in order,
    over the parts of the segments ``msns``."""
    found: dict[int, list[int]] = {1: [], 2: []}
    for msn in msns:
        n = 0
        while (data := p.part(msn, n)) is not None:
            _, runs, moof, _ = parse_fragment(data)
            for r in runs:
                pos = moof.start + r.data_offset
                for _, size, _, _ in r.entries:
                    found[r.track_id].append(int.from_bytes(data[pos:pos + 4], "big"))
                    pos += size
            n += 1
    return found[1], found[2]


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(1, 150), st.booleans(), st.integers(0, 3000),
                          st.lists(st.integers(0, 60), max_size=3)), min_size=1, max_size=150),
       st.sampled_from([0.1, 0.2, 0.5]))
def test_every_sample_is_packaged_once(frames: list[tuple[int, bool, int, list[int]]],
                                       part_target: float) -> None:
    """Valid streams with irregular frame durations, random keyframes and
    sizes, audio in between: every frame after the first keyframe comes
    out once, in order, and every audio frame after it too."""
    p = Packager(HLSConfig(segment_target=1.0, part_target=part_target, max_segments=1000))
    p.feed(9, 0, AVC_SEQ)
    p.feed(8, 0, AAC_SEQ)
    ts = 0
    audio = 0
    first_key = None
    audio_after_key = []
    for i, (step, key, size, audio_steps) in enumerate(frames):
        key = key or i == 3
        if key and first_key is None:
            first_key = i
        p.feed(9, ts, avc_frame(key, i, size))
        for a in audio_steps:
            p.feed(8, ts + a, aac_frame(audio))
            if first_key is not None:
                audio_after_key.append(audio)
            audio += 1
        ts += step
    p.end()
    video, audio_found = numbers_in(p, range(p.segment_count))  # none dropped
    expected = list(range(first_key, len(frames))) if first_key is not None else []
    assert video == expected
    assert audio_found == audio_after_key


def payload_st() -> st.SearchStrategy[tuple[int, bytes]]:
    video = st.builds(lambda key, n, size: (9, avc_frame(key, n, size)),
                      st.booleans(), st.integers(0, 2**32 - 1), st.integers(0, 9000))
    audio = st.builds(lambda n, size: (8, aac_frame(n, size)),
                      st.integers(0, 2**32 - 1), st.integers(0, 3000))
    headers = st.sampled_from([(9, AVC_SEQ), (8, AAC_SEQ), (9, avc_seq(AVCC_160x120)),
                               (9, hevc_seq(HVCC_176x100)), (8, b"\x90Opus"),
                               (8, b"\xaf\x00\x12\x08"), (9, b"\x17\x00\x00\x00\x00\x01")])
    opus = st.builds(lambda b: (8, b"\x91Opus" + b), st.binary(max_size=40))
    junk = st.tuples(st.sampled_from([8, 9, 18, 20, 1]), st.binary(max_size=40))
    return st.one_of(video, audio, headers, opus, junk)


@settings(max_examples=60)
@given(st.lists(st.tuples(payload_st(), st.integers(-50, 3000), st.booleans()),
                max_size=150))
def test_hostile_input_keeps_bounds(packets: list[tuple[tuple[int, bytes], int, bool]]) -> None:
    p = Packager(SMALL)
    ts = 0
    for (type_id, payload), delta, jump in packets:
        ts = (ts + (delta * 1000 if jump else delta)) & 0xFFFFFFFF
        p.feed(type_id, ts, payload)
        assert p.segment_count <= SMALL.max_segments
        assert p.held_bytes <= SMALL.max_bytes
    p.end()
    text = p.playlist()
    assert text.endswith("#EXT-X-ENDLIST\n")
    for m in re.finditer(r'URI="live/(\d+)\.(\d+)\.m4s"', text):
        data = p.part(int(m[1]), int(m[2]))
        assert data is not None
        parse_fragment(data)
    for m in re.finditer(r"^live/(\d+)\.m4s$", text, re.MULTILINE):
        assert p.media_ready(int(m[1])) is READY
    assert p.held_bytes <= SMALL.max_bytes


# -- real FFmpeg ------------------------------------------------------------------------------

TIMEOUT = 60
LAVFI = ["-f", "lavfi", "-i", "testsrc2=size=176x100:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
CASES = {
    "h264_aac": [*LAVFI, "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "10",
                 "-sc_threshold", "0", "-c:a", "aac"],
    "hevc_aac": [*LAVFI, "-c:v", "libx265", "-x265-params",
                 "log-level=error:keyint=10:min-keyint=10:scenecut=0", "-c:a", "aac"],
}


def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return peers.run_sync(args, TIMEOUT)


@pytest.fixture(scope="module")
def flv_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return peers.encode_flv_files(tmp_path_factory.mktemp("hls"), CASES, 2, 2)


def package(flv: Path, folder: Path, max_segments: int) -> tuple[Packager, int, int]:
    """Feed an FLV file's tags, end, and write the playlist and its files."""
    p = Packager(HLSConfig(prefix="s/", segment_target=0.5, part_target=0.2,
                           max_segments=max_segments))
    videos = audios = 0
    for tag in read_tags(flv):
        p.feed(tag.type_id, tag.timestamp, tag.payload)
        if tag.type_id in (8, 9):
            f = tag.frame()
            if not f.is_sequence_header and f.packet_type in (1, 3):
                videos += tag.is_video
                audios += tag.is_audio
    p.end()
    (folder / "s").mkdir(parents=True)
    text = p.playlist()
    (folder / "live.m3u8").write_text(text)
    for uri in re.findall(r'URI="(s/init[^"]*)"', text):
        data = p.init(0 if uri == "s/init.mp4" else int(uri[7:-4]))
        assert data is not None
        (folder / uri).write_bytes(data)
    for msn in re.findall(r"^s/(\d+)\.m4s$", text, re.MULTILINE):
        data = p.segment(int(msn))
        assert data is not None
        (folder / f"s/{msn}.m4s").write_bytes(data)
    return p, videos, audios


def decoded(ffmpeg: str, playlist: Path) -> tuple[int, int]:
    proc = run([ffmpeg, "-hide_banner", "-v", "error", "-i", str(playlist),
                "-f", "framecrc", "-"])
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()[-2000:]
    lines = [ln.split(",")[0].strip() for ln in proc.stdout.decode().splitlines()
             if not ln.startswith("#")]
    return lines.count("0"), lines.count("1")


def first_picture(ffprobe_or_ffmpeg: str, playlist: Path) -> str:
    proc = run([ffprobe_or_ffmpeg, "-hide_banner", "-v", "info", "-i", str(playlist),
                "-map", "0:v", "-vf", "showinfo", "-frames:v", "1", "-f", "null", "-"])
    found = re.search(r"iskey:(\d).*?type:(\w)", proc.stderr.decode())
    assert found, proc.stderr.decode()[-2000:]
    return found[1] + found[2]


@pytest.mark.interop
@pytest.mark.parametrize("name", list(CASES))
def test_ffmpeg_plays_the_playlist(flv_files: dict[str, Path], name: str,
                                   tmp_path: Path) -> None:
    if name not in flv_files:
        pytest.skip(f"this FFmpeg could not make {name}")
    ffmpeg = ffmpeg_exe()
    p, videos, audios = package(flv_files[name], tmp_path / "all", max_segments=100)
    assert p.skipped == 0 and p.segment_count >= 3 and videos == 50
    assert decoded(ffmpeg, tmp_path / "all" / "live.m3u8") == (videos, audios)
    assert first_picture(ffmpeg, tmp_path / "all" / "live.m3u8") == "1I"
    # a late joiner: old segments dropped, the playlist starts mid-stream
    late, _, _ = package(flv_files[name], tmp_path / "late", max_segments=2)
    text = late.playlist()
    assert "#EXT-X-MEDIA-SEQUENCE:0" not in text and late.segment_count == 2
    v, a = decoded(ffmpeg, tmp_path / "late" / "live.m3u8")
    assert 10 <= v < videos and 0 < a < audios
    assert first_picture(ffmpeg, tmp_path / "late" / "live.m3u8") == "1I"
