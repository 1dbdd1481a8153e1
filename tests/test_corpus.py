"""Replay the fuzzing seed corpus (``tests/corpus/<harness>/``) through its harness.

Each file must pass its harness (``fuzz/harnesses.py``): the parser returns
or raises the ProtocolError family, the compiled core and its pure twin
agree, within a wall-time bound per file (``RTMPX_CORPUS_TIME_LIMIT``
seconds, 2 by default; the debug/ASan build of ``fuzz/debug_corpus.sh``
raises it) and a bound on the process's peak RSS (``RTMPX_CORPUS_RSS_MB``,
1024 by default).  The files of the twin harnesses (chunk, AMF, handshake) are
also replayed through each twin alone, so that a failure names the twin.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
sys.path.insert(0, str(ROOT / "fuzz"))

import harnesses

TIME_LIMIT = float(os.environ.get("RTMPX_CORPUS_TIME_LIMIT", "2"))
RSS_LIMIT_MB = int(os.environ.get("RTMPX_CORPUS_RSS_MB", "1024"))
FILES = list(harnesses.iter_corpus(CORPUS))


def _cases() -> list[object]:
    cases: list[object] = []
    for name, path in FILES:
        ident = f"{name}/{path.name}"
        cases.append(pytest.param(harnesses.HARNESSES[name], path, id=ident))
        if name in harnesses.TWINS:
            runner, modules = harnesses.TWINS[name]
            for module in modules:
                def alone(data: bytes, runner=runner, module=module) -> None:  # type: ignore[no-untyped-def]
                    runner(data, (module,))
                cases.append(pytest.param(alone, path, id=f"{ident}[{module.__name__}]"))
    return cases


@pytest.mark.parametrize(("harness", "path"), _cases())
def test_replay(harness: Callable[[bytes], None], path: Path) -> None:
    data = path.read_bytes()
    peak_before = _peak_rss_mb()
    start = time.perf_counter()
    harness(data)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT, f"{path.name}: {elapsed:.2f} s, above {TIME_LIMIT} s"
    peak = _peak_rss_mb()  # the process's peak: fail only if this file raised it past the bound
    assert peak <= max(peak_before, RSS_LIMIT_MB), f"{path.name}: peak RSS {peak} MB"


def _peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def test_every_harness_has_seeds() -> None:
    seeded = {name for name, _ in FILES}
    assert seeded == set(harnesses.HARNESSES), set(harnesses.HARNESSES) - seeded


def test_corpus_is_small() -> None:
    total = sum(path.stat().st_size for _, path in FILES)
    assert total < 2 * 1024 * 1024, f"corpus is {total} bytes"
    assert all(path.stat().st_size <= 96 * 1024 for _, path in FILES)


def test_harnesses_reject_other_exceptions() -> None:
    """The harnesses let through what is not a ProtocolError (sanity check)."""
    with pytest.raises(harnesses.Disagreement):
        harnesses._amf_with(b"\x00" + bytes(8), 0,
                            (harnesses._amf_py, _FakeAMF()))  # type: ignore[arg-type]


class _FakeAMF:
    __name__ = "fake"

    @staticmethod
    def loads_all(data: bytes, *, version: int) -> list[object]:
        return [1.0]
