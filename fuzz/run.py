#!/usr/bin/env python3
"""Run one fuzz harness under atheris (libFuzzer).

::

    nice -n 19 python3 fuzz/run.py amf0 -max_total_time=600
    python3 fuzz/run.py --list
    python3 fuzz/run.py amf0 path/to/crash-file      # replay one input
    python3 fuzz/run.py --compiled amf0 -max_total_time=600

``--compiled`` (chunk, amf0, amf3, handshake_*): the compiled core alone,
not instrumented (atheris cannot see Cython code), mutating the corpus
that the instrumented runs built; fast, and meant for a debug/ASan build
of the tree (run ``fuzz/run.py`` of that tree's copy, see README.md).

New inputs go to ``fuzz/work/<name>/corpus`` (not committed), crashes and
timeouts to ``fuzz/work/<name>/`` (``crash-*``, ``timeout-*``, ``oom-*``);
the committed seeds ``tests/corpus/<name>/`` are read too.  Bounds, as
libFuzzer options (override them on the command line): ``-timeout=2``
(seconds per input: a hang), ``-rss_limit_mb=2048``.  Any other argument
goes to libFuzzer as it is (``-runs=N``, ``-max_total_time=S``,
``-max_len=N``, ``-jobs=...``: but run one fuzzer at a time here).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
DEFAULTS = {"-timeout": "2", "-rss_limit_mb": "2048", "-print_final_stats": "1"}


def main(argv: list[str]) -> None:
    import atheris

    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    sys.path[:0] = [str(FUZZ), str(ROOT)]  # this tree's rtmpx, whatever is installed
    if argv[0] == "--list":
        import harnesses

        for name, func in harnesses.HARNESSES.items():
            print(f"{name:24} {(func.__doc__ or '').splitlines()[0]}")
        return
    compiled = argv[0] == "--compiled"
    if compiled:
        argv = argv[1:]
    if argv[0].startswith("-") and "RTMPX_FUZZ_HARNESS" in os.environ:
        # libFuzzer running this script again (-merge, -fork): argv[0] and the flags only
        argv = [os.environ["RTMPX_FUZZ_HARNESS"], *argv]
        compiled = os.environ.get("RTMPX_FUZZ_COMPILED") == "1"
    os.environ["RTMPX_FUZZ_HARNESS"] = argv[0]
    os.environ["RTMPX_FUZZ_COMPILED"] = "1" if compiled else "0"
    name, rest = argv[0], argv[1:]
    if "rtmpx" in sys.modules:
        raise SystemExit("rtmpx was imported before instrumentation")
    with atheris.instrument_imports(include=["harnesses"] if compiled else ["rtmpx", "harnesses"]):
        import harnesses
    harness = harnesses.HARNESSES[name]
    if compiled:
        runner, modules = harnesses.TWINS[name]

        def harness(data: bytes) -> None:
            runner(data, modules[:1])

    options = [a for a in rest if a.startswith("-")]
    inputs = [a for a in rest if not a.startswith("-")]
    given = {a.split("=", 1)[0] for a in options}
    # uninstrumented, the inputs add no coverage: keep them all as the corpus to mutate
    defaults = {**DEFAULTS, "-keep_seed": "1"} if compiled else DEFAULTS
    options += [f"{k}={v}" for k, v in defaults.items() if k not in given]
    if not inputs:  # fuzzing (not replaying files): a work corpus, then the seeds
        work = FUZZ / "work" / name
        out = FUZZ / "work" / (name + "-compiled" if compiled else name)
        for folder in (work / "corpus", out / "corpus"):
            folder.mkdir(parents=True, exist_ok=True)
        if "-artifact_prefix" not in given:
            options.append(f"-artifact_prefix={out}{os.sep}")
        inputs = [str(out / "corpus")] + ([str(work / "corpus")] if compiled else [])
        seeds = ROOT / "tests" / "corpus" / name
        if seeds.is_dir():
            inputs.append(str(seeds))

    def one_input(data: bytes) -> None:
        harness(data)

    atheris.Setup([sys.argv[0], *options, *inputs], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
