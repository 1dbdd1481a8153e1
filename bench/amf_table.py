"""Print the README's AMF table: ops/s of each codec and rtmpx's ratios.

    python3 bench/amf_table.py [--seconds 0.3]

Every figure comes from this one process, the best of 5 repeats, and the
codecs' repeats of a case are interleaved (rtmpx, pure, Py3AMF, rtmpx, ...):
a burst of load from elsewhere on a shared, noisy machine lands on all of
them alike rather than on one codec's turn, so the ratios hold.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from amf_cases import CASES, codecs, inputs


def ops_per_second(fns: dict[str, Any], seconds: float, repeat: int = 5) -> dict[str, float]:
    """Each callable's best rate over ``repeat`` rounds, the callables timed in
    turn within each round, about ``seconds`` per callable per round."""
    timers = {name: timeit.Timer(fn) for name, fn in fns.items()}
    numbers = {}
    for name, timer in timers.items():
        number, _ = timer.autorange()
        numbers[name] = max(1, int(number * seconds / 0.2))
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(repeat):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]))
    return {name: numbers[name] / best[name] for name in timers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args()
    found = codecs()
    names = [n for n in ("rtmpx", "rtmpx-pure", "py3amf-cython") if n in found]
    print("| case | AMF | op | " + " | ".join(f"{n} ops/s" for n in names)
          + " | rtmpx / pure | rtmpx / py3amf-cython |")
    print("|---" * (3 + len(names) + 2) + "|")
    for case in CASES:
        for version in (0, 3):
            for op in ("encode", "decode"):
                fns = {}
                for name in names:
                    encode, decode = found[name]
                    values, data = inputs(name, case, version)
                    if op == "encode":
                        fns[name] = lambda f=encode, v=values, ver=version: f(v, ver)
                    else:
                        fns[name] = lambda f=decode, d=data, ver=version: f(d, ver)
                rates = ops_per_second(fns, args.seconds)
                peer = rates.get("py3amf-cython")
                print(f"| {case} | {version} | {op} | "
                      + " | ".join(f"{rates[n]:,.0f}" for n in names)
                      + f" | {rates['rtmpx'] / rates['rtmpx-pure']:.1f}x | "
                      + (f"{rates['rtmpx'] / peer:.1f}x |" if peer else "n/a |"))


if __name__ == "__main__":
    main()
