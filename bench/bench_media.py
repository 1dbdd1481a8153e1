"""Benchmarks of rtmpx.media (per-message classification) and rtmpx.flv.

Run with ``python3 -m pytest bench/bench_media.py --benchmark-only`` (not
collected by the default test run).  Each round classifies ``COUNT``
payloads of one kind; the figure is nanoseconds per payload, next to the
baselines measured in the same run:

* ``loop``: the same loop calling a function that only returns its
  argument (the floor of any per-message Python call);
* ``frozen_init``: building a 14-field frozen slotted dataclass through its
  generated ``__init__`` (what :class:`~rtmpx.media.Frame` would cost
  without its builder).

A summary (ns per payload, median round) is printed to stderr at the end.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rtmpx.flv import FLVReader, FLVWriter
from rtmpx.media import (
    Frame,
    is_sequence_header,
    is_video_keyframe,
    parse_audio,
    parse_video,
)

COUNT = 10000
RESULTS: dict[str, float] = {}  # name -> seconds per round (median)

H = bytes.fromhex
PAYLOADS: dict[str, bytes] = {
    "avc_inter": H("27 01 000050 00000f00 419a") + bytes(3000),
    "avc_key": H("17 01 000000 00000f00 6588") + bytes(30000),
    "avc_seq": H("17 00 000000 0164001fffe1000467 64001f 01000268ee"),
    "aac_raw": H("af 01 211a") + bytes(200),
    "mp3": H("2f fffb9064") + bytes(400),
    "hvc1_coded": H("a1") + b"hvc1" + H("000028 00000f00 0201") + bytes(3000),
    "hvc1_x": H("a3") + b"hvc1" + H("00000f00 0201") + bytes(3000),
    "av01": H("a1") + b"av01" + H("12 00 32") + bytes(3000),
    "opus": H("91") + b"Opus" + H("fc ff fe") + bytes(150),
    "modex_hvc1": H("a7 02 0f4240 01") + b"hvc1" + H("000028") + bytes(3000),
    "multitrack": H("a6 11") + b"hvc1" + H("00 000010") + bytes(16) + H("01 000010") + bytes(16),
}


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = stats.stats.median


@pytest.fixture(scope="module", autouse=True)
def _summary(pytestconfig: pytest.Config) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    lines = ["", f"rtmpx.media: ns per payload (median round of {COUNT}):"]
    for name, secs in sorted(RESULTS.items()):
        if name.startswith("flv_"):
            lines.append(f"  {name:28s} {secs / FLV_TAGS * 1e9:8.0f} ns/tag")
        else:
            lines.append(f"  {name:28s} {secs / COUNT * 1e9:8.0f} ns")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        sys.stderr.write("\n".join(lines) + "\n")


def _each(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    def run() -> Any:
        out = None
        for _ in range(COUNT):
            out = fn(*args)
        return out
    return run


# ------------------------------------------------------------------ baselines


def _identity(timestamp: int, payload: bytes) -> bytes:
    return payload


@dataclass(frozen=True, slots=True)
class _Frozen14:
    kind: str
    timestamp: int
    payload: bytes
    codec: str
    is_keyframe: bool
    is_sequence_header: bool
    is_end_of_sequence: bool
    composition_time: int
    data_offset: int
    frame_type: int
    packet_type: int
    fourcc: bytes | None
    is_enhanced: bool
    is_multitrack: bool


@pytest.mark.benchmark(group="media")
def test_loop_baseline(benchmark: Any) -> None:
    benchmark(_each(_identity, 40, PAYLOADS["avc_inter"]))
    _record(benchmark, "base_loop")


@pytest.mark.benchmark(group="media")
def test_frozen_init_baseline(benchmark: Any) -> None:
    p = PAYLOADS["avc_inter"]
    benchmark(_each(_Frozen14, "video", 40, p, "avc", False, False, False, 80, 5, 2, 1, None,
                    False, False))
    _record(benchmark, "base_frozen_init")


# ------------------------------------------------------------------ parse


@pytest.mark.benchmark(group="media")
@pytest.mark.parametrize("name", [k for k in PAYLOADS if k not in ("aac_raw", "mp3", "opus")])
def test_parse_video(benchmark: Any, name: str) -> None:
    f = benchmark(_each(parse_video, 40, PAYLOADS[name]))
    assert isinstance(f, Frame) and f.codec != "unknown"
    _record(benchmark, f"parse_video[{name}]")


@pytest.mark.benchmark(group="media")
@pytest.mark.parametrize("name", ["aac_raw", "mp3", "opus"])
def test_parse_audio(benchmark: Any, name: str) -> None:
    f = benchmark(_each(parse_audio, 40, PAYLOADS[name]))
    assert f.codec != "unknown"
    _record(benchmark, f"parse_audio[{name}]")


@pytest.mark.benchmark(group="media")
def test_frame_parse(benchmark: Any) -> None:
    f = benchmark(_each(Frame.parse, "video", 40, PAYLOADS["avc_inter"]))
    assert f.codec == "avc"
    _record(benchmark, "Frame.parse[avc_inter]")


@pytest.mark.benchmark(group="media")
@pytest.mark.parametrize("name", ["avc_inter", "avc_key", "hvc1_coded", "hvc1_x"])
def test_is_video_keyframe(benchmark: Any, name: str) -> None:
    benchmark(_each(is_video_keyframe, PAYLOADS[name]))
    _record(benchmark, f"is_video_keyframe[{name}]")


@pytest.mark.benchmark(group="media")
@pytest.mark.parametrize("type_id, name", [(9, "avc_inter"), (9, "hvc1_coded"), (8, "aac_raw")])
def test_is_sequence_header(benchmark: Any, type_id: int, name: str) -> None:
    assert benchmark(_each(is_sequence_header, type_id, PAYLOADS[name])) is False
    _record(benchmark, f"is_sequence_header[{name}]")


# ------------------------------------------------------------------ flv

FLV_TAGS = 2000


def _flv_file() -> bytes:
    out = io.BytesIO()
    with FLVWriter(out, flush_each_tag=False) as w:
        for i in range(FLV_TAGS):
            if i % 3:
                w.write_tag(8, i * 23, PAYLOADS["aac_raw"])
            else:
                w.write_tag(9, i * 40, PAYLOADS["avc_inter"])
    return out.getvalue()


FLV_DATA = _flv_file()


@pytest.mark.benchmark(group="flv")
def test_flv_read(benchmark: Any) -> None:
    def run() -> int:
        return sum(1 for _ in FLVReader(io.BytesIO(FLV_DATA)))
    assert benchmark(run) == FLV_TAGS
    _record(benchmark, "flv_read")


@pytest.mark.benchmark(group="flv")
def test_flv_write(benchmark: Any) -> None:
    tags = [(8 if i % 3 else 9, i, PAYLOADS["aac_raw"] if i % 3 else PAYLOADS["avc_inter"])
            for i in range(FLV_TAGS)]

    def run() -> int:
        out = io.BytesIO()
        with FLVWriter(out) as w:
            for t in tags:
                w.write_tag(*t)
        return len(out.getvalue())
    benchmark(run)
    _record(benchmark, "flv_write_flush_each")
