"""The bench's results: medians over the rounds, ratios, the table, the JSON.

A :class:`Run` is one measured run of one case on one server; a row of
the table is one metric of one case: the median of each server's runs
and their ratio (the first server over the second: rtmpx / nginx-rtmp,
rtmpx / PyAV).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "Metric", "Report", "Run"]


@dataclass(frozen=True, slots=True)
class Metric:
    """How one measured value is named and shown."""

    key: str
    label: str
    unit: str
    digits: int = 2
    ratio: bool = True      # whether A / B means something (not for counts of losses)


#: Every metric a scenario may report, in table order.
METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("cpu_per_gb", "server CPU per GB", "s/GB"),
    Metric("mb_per_s", "throughput", "MB/s", 1),
    Metric("delivered_pct", "delivered of the stream rate", "%", 1),
    Metric("delay_p50_ms", "publish-to-play delay p50", "ms", 1),
    Metric("delay_p99_ms", "publish-to-play delay p99", "ms", 1),
    Metric("kb_per_idle", "memory per idle connection", "KiB", 1),
    Metric("kb_per_player", "memory per player", "KiB", 1),
    Metric("players_per_core", "players when one core saturates", "players", 0),
    Metric("frames_lost", "frames lost", "frames", 0, ratio=False),
    Metric("server_cpu_pct", "server CPU", "% of a core", 1),
)}


@dataclass(slots=True)
class Run:
    """One run of a case on one server (or Python consumer)."""

    scenario: str
    case: str
    server: str
    round: int
    metrics: dict[str, float] = field(default_factory=dict)
    load_cpu_pct: float | None = None     # the load generator's (or publishers') CPU
    notes: list[str] = field(default_factory=list)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


@dataclass(slots=True)
class Report:
    """Everything a bench found, as a table and as JSON."""

    info: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cases(self) -> list[tuple[str, str]]:
        """(scenario, case) in the order they ran."""
        seen: dict[tuple[str, str], None] = {}
        for run in self.runs:
            seen.setdefault((run.scenario, run.case), None)
        return list(seen)

    def rows(self) -> list[dict[str, Any]]:
        """One row per (scenario, case, metric): medians, runs and ratio."""
        rows: list[dict[str, Any]] = []
        for scenario, case in self.cases():
            runs = [r for r in self.runs if (r.scenario, r.case) == (scenario, case)]
            servers = list(dict.fromkeys(r.server for r in runs))
            load = {s: _median([r.load_cpu_pct for r in runs
                                if r.server == s and r.load_cpu_pct is not None])
                    for s in servers}
            keys = [k for k in METRICS if any(k in r.metrics for r in runs)]
            for key in keys:
                values = {s: [r.metrics[key] for r in runs if r.server == s and key in r.metrics]
                          for s in servers}
                medians = {s: _median(v) for s, v in values.items()}
                ratio = None
                if len(servers) >= 2 and METRICS[key].ratio:
                    a, b = medians[servers[0]], medians[servers[1]]
                    if a is not None and b:
                        ratio = a / b
                rows.append({"scenario": scenario, "case": case, "metric": key,
                             "label": METRICS[key].label, "unit": METRICS[key].unit,
                             "median": medians, "runs": values, "ratio": ratio,
                             "load_cpu_pct": load})
        return rows

    def table(self) -> str:
        """The Markdown table: medians of each server and their ratio."""
        lines = [("| scenario | case | metric | A | median A | B | median B | A / B "
                  "| load CPU % (A / B) |"),
                 "|---|---|---|---|---|---|---|---|---|"]
        for row in self.rows():
            servers = list(row["median"])
            digits = METRICS[row["metric"]].digits
            a = servers[0]
            b = servers[1] if len(servers) > 1 else None
            load = " / ".join(_fmt(row["load_cpu_pct"][s], 0) for s in servers)
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            lines.append(
                f"| {row['scenario']} | {row['case']} | {row['label']} ({row['unit']}) "
                f"| {a} | {_fmt(row['median'][a], digits)} | {b or '-'} "
                f"| {_fmt(row['median'][b], digits) if b else '-'} | {ratio} | {load} |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The JSON document: ``info``, ``notes``, ``rows``, ``runs``."""
        return {"info": self.info, "notes": self.notes, "rows": self.rows(),
                "runs": [asdict(r) for r in self.runs]}

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")
