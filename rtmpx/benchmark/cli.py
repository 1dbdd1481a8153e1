"""``rtmpx bench``: its options and its main (imports nothing heavy until run)."""

from __future__ import annotations

import argparse
import datetime
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

__all__ = ["add_arguments", "run"]

_SCENARIO_HELP = "ingest, fanout, delay, memory, saturation, python"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rtmpx bench``."""
    parser.add_argument("--scenarios", default="all", metavar="LIST",
                        help=f"comma-separated, of: {_SCENARIO_HELP} (default: all)")
    parser.add_argument("--servers", default="rtmpx,nginx", metavar="LIST",
                        help="comma-separated: rtmpx, nginx (default: both; a missing "
                             "nginx-rtmp is reported and skipped)")
    parser.add_argument("--rounds", type=int, default=None, metavar="N",
                        help="runs of each case on each server, alternating A B A B "
                             "(2; --quick: 1)")
    parser.add_argument("--seconds", type=float, default=5.0, metavar="S",
                        help="measured seconds of each run (5; --quick: 0.5)")
    parser.add_argument("--warmup", type=float, default=None, metavar="S",
                        help="seconds before each measurement (1, at least 1.1 with players: "
                             "past a keyframe; --quick: 0.3)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write every run, median and ratio as JSON (- for stdout)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny version of every scenario (well under a minute)")
    parser.add_argument("--rtmpx-args", default="", metavar="ARGS",
                        help="extra options for the rtmpx server under test, as one string "
                             "(e.g. '--flush-interval 100')")
    parser.add_argument("--nginx", metavar="PATH",
                        help="the nginx binary (default $RTMPX_BENCH_NGINX or /usr/sbin/nginx)")
    parser.add_argument("--nginx-module", metavar="PATH",
                        help="ngx_rtmp_module.so (default $RTMPX_BENCH_NGINX_MODULE or "
                             "/usr/lib/nginx/modules/ngx_rtmp_module.so)")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Run the bench of ``args``; print the table (and the JSON)."""
    from .. import __version__
    from .report import Report
    from .runner import Processes, ffmpeg_exe, machine
    from .scenarios import SCENARIOS, SERVERS, Bench, Settings, environment, peer_summary

    scenarios = SCENARIOS if args.scenarios == "all" else tuple(
        s.strip() for s in args.scenarios.split(",") if s.strip())
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    unknown = [s for s in scenarios if s not in SCENARIOS] + \
        [s for s in servers if s not in SERVERS]
    if unknown or not scenarios or not servers:
        raise ValueError(f"unknown scenario or server: {', '.join(unknown) or '(none)'}")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    if rounds < 1 or args.seconds <= 0:
        raise ValueError("--rounds must be >= 1 and --seconds > 0")
    quick = bool(args.quick)
    seconds = args.seconds if not quick or args.seconds != 5.0 else 0.5
    warmup = args.warmup if args.warmup is not None else (0.3 if quick else 1.0)
    settings = Settings(scenarios=scenarios, servers=servers, rounds=rounds,
                        seconds=seconds, warmup=warmup, quick=quick, nginx=args.nginx,
                        nginx_module=args.nginx_module,
                        rtmpx_args=tuple(shlex.split(args.rtmpx_args)))
    env = environment()
    info = {"rtmpx": __version__, "date": datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"), "machine": machine(),
        "command": shlex.join(["rtmpx", *sys.argv[1:]]) if sys.argv else "rtmpx bench",
        "settings": {"scenarios": list(scenarios), "servers": list(servers),
                     "rounds": rounds, "seconds": seconds, "warmup": warmup,
                     "quick": quick, "rtmpx_args": list(settings.rtmpx_args)},
        "environment": env}
    report = Report(info)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    try:
        with tempfile.TemporaryDirectory(prefix="rtmpx-bench-") as tmp, Processes() as procs:
            bench = Bench(settings, procs, Path(tmp), ffmpeg_exe(), report, env)
            info["peers"] = peer_summary(bench.peers)
            try:
                bench.run()
            except KeyboardInterrupt:
                interrupted = True
                report.notes.append("interrupted: partial results")
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"rtmpx bench {__version__}: {info['machine']}")
    print(f"server CPU = utime+stime of the server process; ratios A / B of medians over "
          f"{rounds} alternating rounds of {seconds:g} s; rtmpx on {env['rtmpx_loop']}")
    print()
    print(report.table())
    print()
    for note in report.notes:
        print(f"note: {note}")
    for r in report.runs:
        for note in r.notes:
            print(f"note: {r.scenario} {r.case} {r.server} round {r.round}: {note}")
    if args.json == "-":
        import json

        print(json.dumps(report.to_json(), indent=2))
    elif args.json:
        report.write_json(args.json)
        print(f"JSON: {args.json}")
    return 130 if interrupted else 0
