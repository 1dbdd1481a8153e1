"""Benchmarks of the RTMP chunk stream codec: compiled core vs pure twin.

Run with ``python3 -m pytest bench/bench_chunk.py --benchmark-only`` (not
collected by the default test run).  Every figure is measured in the same
run as its baseline:

* large: 1 MiB video messages at chunk size 4096, decode and encode, next to
  a plain copy of the same bytes (``ctypes.memmove`` into a ready buffer, and
  ``bytearray(data)``, which allocates as the decoder must);
* small: 200-byte audio messages at chunk size 128, many in one buffer,
  in messages per second.

A throughput summary (MiB/s, messages/s and the ratios, from the median
round) is printed to stderr at the end of the module.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

TWINS = ["rtmpx._chunk", "rtmpx._chunk_py"]
LARGE_SIZE = 1024 * 1024
LARGE_COUNT = 8  # 8 MiB per round
SMALL_SIZE = 200
SMALL_COUNT = 20000

RESULTS: dict[str, float] = {}  # name -> seconds per round (median)


@pytest.fixture(params=TWINS, ids=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


def _large_messages(mod: ModuleType) -> list[Any]:
    frame = bytes(range(256)) * (LARGE_SIZE // 256)
    return [mod.Message(9, frame, 40 * i, 1) for i in range(LARGE_COUNT)]


def _small_messages(mod: ModuleType) -> list[Any]:
    frame = bytes(range(SMALL_SIZE))
    return [mod.Message(8, frame, 23 * i, 1) for i in range(SMALL_COUNT)]


def _large_wire() -> bytes:
    from rtmpx import _chunk_py

    w = _chunk_py.ChunkWriter()
    return w.set_chunk_size(4096) + b"".join(w.encode(m) for m in _large_messages(_chunk_py))


def _small_wire() -> bytes:
    from rtmpx import _chunk_py

    w = _chunk_py.ChunkWriter()
    return b"".join(w.encode(m) for m in _small_messages(_chunk_py))


LARGE_WIRE = _large_wire()
SMALL_WIRE = _small_wire()


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = stats.stats.median


@pytest.fixture(scope="module", autouse=True)
def _summary(pytestconfig: pytest.Config) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    mib = LARGE_SIZE * LARGE_COUNT / 2**20
    lines = ["", "chunk codec throughput (median of rounds):"]
    for name, secs in sorted(RESULTS.items()):
        if name.startswith("small"):
            lines.append(f"  {name:28s} {SMALL_COUNT / secs / 1e6:8.3f} M msg/s")
        else:
            lines.append(f"  {name:28s} {mib / secs:10.1f} MiB/s")

    def ratio(a: str, b: str) -> None:
        if a in RESULTS and b in RESULTS:
            lines.append(f"  {a} / {b}: {RESULTS[b] / RESULTS[a]:.2f}x")

    ratio("large_decode[compiled]", "memcpy")
    ratio("large_decode[compiled]", "alloc_copy")
    ratio("large_encode[compiled]", "memcpy")
    ratio("large_encode[compiled]", "alloc_copy")
    ratio("large_decode[compiled]", "large_decode[pure]")
    ratio("large_encode[compiled]", "large_encode[pure]")
    ratio("small_decode[compiled]", "small_decode[pure]")
    ratio("small_encode[compiled]", "small_encode[pure]")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        sys.stderr.write("\n".join(lines) + "\n")


def _twin(mod: ModuleType) -> str:
    return "compiled" if mod.__name__ == "rtmpx._chunk" else "pure"


# ------------------------------------------------------------------ baselines


@pytest.mark.benchmark(group="large 1 MiB x8, chunk 4096")
def test_memcpy_baseline(benchmark: Any) -> None:
    src = LARGE_WIRE
    dst = ctypes.create_string_buffer(len(src))
    benchmark(ctypes.memmove, dst, src, len(src))
    assert dst.raw == src
    _record(benchmark, "memcpy")


@pytest.mark.benchmark(group="large 1 MiB x8, chunk 4096")
def test_alloc_copy_baseline(benchmark: Any) -> None:
    src = LARGE_WIRE
    assert benchmark(bytearray, src) == src
    _record(benchmark, "alloc_copy")


# ------------------------------------------------------------------ large


@pytest.mark.benchmark(group="large 1 MiB x8, chunk 4096")
def test_large_decode(benchmark: Any, mod: ModuleType) -> None:
    data = LARGE_WIRE

    def run() -> list[Any]:
        return mod.ChunkReader().feed(data)  # type: ignore[no-any-return]

    out = benchmark(run)
    assert len(out) == LARGE_COUNT + 1 and len(out[-1].payload) == LARGE_SIZE
    _record(benchmark, f"large_decode[{_twin(mod)}]")


@pytest.mark.benchmark(group="large 1 MiB x8, chunk 4096")
def test_large_encode(benchmark: Any, mod: ModuleType) -> None:
    msgs = _large_messages(mod)

    def run() -> list[bytes]:
        encode = mod.ChunkWriter(chunk_size=4096).encode
        return [encode(m) for m in msgs]

    out = benchmark(run)
    assert sum(map(len, out)) == len(LARGE_WIRE) - 16  # minus the Set Chunk Size message
    _record(benchmark, f"large_encode[{_twin(mod)}]")


# ------------------------------------------------------------------ small


@pytest.mark.benchmark(group="small 200 B audio x20000, chunk 128")
def test_small_decode(benchmark: Any, mod: ModuleType) -> None:
    data = SMALL_WIRE

    def run() -> list[Any]:
        return mod.ChunkReader().feed(data)  # type: ignore[no-any-return]

    out = benchmark(run)
    assert len(out) == SMALL_COUNT
    _record(benchmark, f"small_decode[{_twin(mod)}]")


@pytest.mark.benchmark(group="small 200 B audio x20000, chunk 128")
def test_small_encode(benchmark: Any, mod: ModuleType) -> None:
    msgs = _small_messages(mod)

    def run() -> list[bytes]:
        encode = mod.ChunkWriter().encode
        return [encode(m) for m in msgs]

    out = benchmark(run)
    assert b"".join(out) == SMALL_WIRE
    _record(benchmark, f"small_encode[{_twin(mod)}]")
