"""Print the README's AMF table: ops/s of each codec and rtmpx's ratios.

    python3 bench/amf_table.py [--seconds 0.3]

Every figure comes from this one process, each case timed for every codec
in turn (best of 5 repeats), so the ratios hold on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(__file__))

from amf_cases import CASES, codecs, inputs


def ops_per_second(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))
    return number / min(timer.repeat(repeat=5, number=number))


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
                rates = {}
                for name in names:
                    encode, decode = found[name]
                    values, data = inputs(name, case, version)
                    if op == "encode":
                        rates[name] = ops_per_second(
                            lambda f=encode, v=values, ver=version: f(v, ver), args.seconds)
                    else:
                        rates[name] = ops_per_second(
                            lambda f=decode, d=data, ver=version: f(d, ver), args.seconds)
                peer = rates.get("py3amf-cython")
                print(f"| {case} | {version} | {op} | "
                      + " | ".join(f"{rates[n]:,.0f}" for n in names)
                      + f" | {rates['rtmpx'] / rates['rtmpx-pure']:.1f}x | "
                      + (f"{rates['rtmpx'] / peer:.1f}x |" if peer else "n/a |"))


if __name__ == "__main__":
    main()
