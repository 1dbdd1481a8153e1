"""Summarise fuzz/work/logs/<name>.log files (libFuzzer output) as a Markdown table.

::

    python3 fuzz/stats.py [name ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

WORK = Path(__file__).resolve().parent / "work"


def summary(name: str) -> str:
    log = (WORK / "logs" / f"{name}.log").read_text(errors="replace")
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", log, re.MULTILINE))
    cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", log)
    done = re.findall(r"Done (\d+) runs in (\d+) second", log)
    progress = re.findall(r"^#(\d+)\s", log, re.MULTILINE)  # a run cut short has no "Done"
    runs = int(stats.get("number_of_executed_units",
                         done[-1][0] if done else progress[-1] if progress else 0))
    secs = int(done[-1][1]) if done else 0
    artifacts = [p.name for p in (WORK / name).glob("*-*") if p.is_file()]
    crashes = sum(a.startswith("crash-") for a in artifacts)
    hangs = sum(a.startswith(("timeout-", "slow-unit-")) for a in artifacts)
    ooms = sum(a.startswith("oom-") for a in artifacts)
    c, f, corp = cov[-1] if cov else ("?", "?", "?")
    rate = runs // secs if secs else stats.get("average_exec_per_sec", "?")
    return (f"| {name} | {runs:,} | {secs} | {rate} | {c} | {f} | {corp} | "
            f"{crashes} | {hangs} | {ooms} | {stats.get('peak_rss_mb', '?')} |")


def main() -> None:
    names = sys.argv[1:] or sorted(p.stem for p in (WORK / "logs").glob("*.log"))
    print("| harness | executions | seconds | exec/s | cov | ft | corpus | crashes | hangs "
          "| ooms | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        print(summary(name))


if __name__ == "__main__":
    main()
