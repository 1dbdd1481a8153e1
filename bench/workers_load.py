"""``rtmpx serve --workers N``: ingest and fan-out, side by side.

    python3 bench/workers_load.py [--workers 1,2] [--players 100] [--seconds 20]
                                  [--loops 4] [--publishers 1,2]

Ingest: FFmpeg (imageio-ffmpeg) publishes the sample FLV (``-stream_loop
LOOPS -c copy``, no ``-re``: as fast as it can) to ``live/inN``, one or
several publishers at once; reported: wall time, MB/s, server CPU seconds
per GB received.  Fan-out: one publisher at real time (``-re``), PLAYERS
players (``relay_load.py --player-worker``, one asyncio process) play it
from before the publish; reported: server CPU per GB delivered, the
slowest player's rate (media seconds per wall second: 1.0 keeps up) and
players that did not get to the end.

The server (``rtmpx.benchmark.runner.start_rtmpx`` with ``--workers N
--stats-port P``: uvloop when installed, the CLI's choice) is measured as
the supervisor's and every worker's CPU (``/proc``).  Everything runs on
127.0.0.1; every process started here is stopped at the end of its run,
also on errors and Ctrl-C, and every wait has a deadline (a run that
overran one is stopped and says so).  The machine is usually shared:
compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))         # relay_load: the player worker
sys.path.insert(0, str(HERE.parent))  # this checkout's rtmpx, run from anywhere

import relay_load as rl

from rtmpx.benchmark.runner import (
    Processes,
    Sample,
    ServerProcess,
    cpu_seconds,
    ffmpeg_exe,
    free_port,
    machine,
    make_sample,
    start_rtmpx,
    wait_all,
)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (those still there)."""
    found = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += tree(int(child))
    return found


def cpu(pids: list[int]) -> float:
    """CPU seconds of ``pids`` (0 for those gone)."""
    return sum(cpu_seconds(pid) for pid in pids)


def start_server(procs: Processes, workers: int, folder: Path) -> tuple[ServerProcess, int]:
    """``rtmpx serve --workers N`` with stats; the server and its stats port."""
    stats_port = free_port()
    run_dir = Path(tempfile.mkdtemp(prefix=f"workers-{workers}-", dir=folder))
    server = start_rtmpx(procs, run_dir, name=f"rtmpx-w{workers}",
                         extra_args=["--workers", str(workers), "--stats-port", str(stats_port)])
    return server, stats_port


def stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as answer:
        found: dict[str, Any] = json.loads(answer.read())
    return found


def ingest(procs: Processes, ffmpeg: str, sample: Sample, workers: int, publishers: int,
           loops: int, folder: Path) -> dict[str, Any]:
    server, _ = start_server(procs, workers, folder)
    try:
        pids = tree(server.pid)
        cpu0, t0 = cpu(pids), time.monotonic()
        pubs = [procs.start(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-stream_loop",
             str(loops), "-i", str(sample.path), "-c", "copy", "-f", "flv",
             f"rtmp://127.0.0.1:{server.port}/live/in{i}"])
            for i in range(publishers)]
        # as fast as it can: even at half real time it is done by then
        limit = 30 + 2 * sample.seconds * (loops + 1) * publishers
        late = wait_all(pubs, limit)
        for p in late:
            procs.stop(p)
        wall = time.monotonic() - t0
        used = cpu(pids) - cpu0
        sent = sample.bytes * (loops + 1) * publishers
        return {"workers": workers, "publishers": publishers, "wall": wall, "cpu": used,
                "gb": sent / 1e9, "mb_s": sent / 1e6 / wall, "cpu_per_gb": used / (sent / 1e9),
                "codes": [p.returncode for p in pubs],
                "note": f"{len(late)} publishers stopped after {limit:g} s" if late else ""}
    finally:
        procs.stop(server.proc)


def fanout(procs: Processes, ffmpeg: str, sample: Sample, workers: int, players: int,
           folder: Path) -> dict[str, Any]:
    server, stats_port = start_server(procs, workers, folder)
    url = f"rtmp://127.0.0.1:{server.port}/{rl.STREAM}"
    try:
        pids = tree(server.pid)
        deadline = sample.seconds + 40
        worker = rl.start_players(procs, url, players, deadline, server.log.parent)
        try:
            spread = [w["connections"] for w in stats(stats_port).get("workers", [])]
        except OSError:
            spread = []
        cpu0, t0 = cpu(pids), time.monotonic()
        note = ""
        pub = procs.start([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                           "-i", str(sample.path), "-c", "copy", "-f", "flv", url])
        limit = sample.seconds + 30
        if wait_all([pub], limit):
            procs.stop(pub)
            note = f"publisher stopped after {limit:g} s; "
        got = rl.finish_players(procs, worker, deadline + 20)
        wall = time.monotonic() - t0
        used = cpu(pids) - cpu0
        gb = got.wire_bytes / 1e9
        return {"workers": workers, "players": players, "spread": spread, "wall": wall,
                "cpu": used, "gb_out": gb, "cpu_per_gb": used / gb if gb else float("nan"),
                "min_rate": got.min_rate, "min_frames": got.min_frames, "frames": sample.frames,
                "failed": got.failed if not got.note else players,
                "note": note + got.note + (f"publisher exit {pub.returncode}"
                                           if pub.returncode not in (0, None) else "")}
    finally:
        procs.stop(server.proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--players", type=int, default=100)
    parser.add_argument("--publishers", default="1,2", help="comma-separated, for ingest")
    parser.add_argument("--seconds", type=float, default=20.0, help="sample length")
    parser.add_argument("--loops", type=int, default=4, help="ingest: -stream_loop")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--bitrate", default="4M")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    pub_counts = [int(n) for n in args.publishers.split(",") if n.strip()]
    if not counts or min(counts) < 1 or not pub_counts or min(pub_counts) < 1:
        parser.error("--workers and --publishers: positive counts")
    ffmpeg = ffmpeg_exe()
    if ffmpeg is None:
        parser.error("FFmpeg not found: pip install imageio-ffmpeg")
    sample = make_sample(ffmpeg, size=args.size, bitrate=args.bitrate, seconds=args.seconds)
    print(f"# {machine()}; sample {sample.bytes / 1e6:.1f} MB, {sample.seconds:.1f} s",
          flush=True)

    def on_term(signum: int, frame: Any) -> None:  # as Ctrl-C: the processes are stopped
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with tempfile.TemporaryDirectory(prefix="rtmpx-workers-load-") as tmp, \
            Processes() as procs:
        folder = Path(tmp)
        print("ingest (ffmpeg -c copy, as fast as it can)")
        print(f"{'workers':>7} {'pubs':>4} {'GB':>6} {'wall s':>7} {'MB/s':>7} "
              f"{'CPU s':>7} {'CPU s/GB':>9}")
        for publishers in pub_counts:
            for workers in counts:
                r = ingest(procs, ffmpeg, sample, workers, publishers, args.loops, folder)
                print(f"{r['workers']:>7} {r['publishers']:>4} {r['gb']:>6.2f} {r['wall']:>7.1f} "
                      f"{r['mb_s']:>7.1f} {r['cpu']:>7.1f} {r['cpu_per_gb']:>9.1f}"
                      f"  exit {r['codes']} {r['note']}", flush=True)
        print(f"fan-out (1 publisher at real time, {args.players} players)")
        print(f"{'workers':>7} {'spread':>9} {'GB out':>7} {'CPU s':>7} {'CPU s/GB':>9} "
              f"{'min rate':>8} {'min frames':>10} {'failed':>6}")
        for workers in counts:
            r = fanout(procs, ffmpeg, sample, workers, args.players, folder)
            print(f"{r['workers']:>7} {'/'.join(map(str, r['spread'])) or '-':>9} "
                  f"{r['gb_out']:>7.3f} {r['cpu']:>7.1f} {r['cpu_per_gb']:>9.1f} "
                  f"{r['min_rate']:>8.2f} {r['min_frames']:>5}/{r['frames']:<4} "
                  f"{r['failed']:>6} {r['note']}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; all started processes were stopped", file=sys.stderr)
        sys.exit(130)
