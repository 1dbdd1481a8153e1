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

The server's CPU is the supervisor's and every worker's (``/proc``), with
uvloop when installed (the CLI's choice).  Everything runs on 127.0.0.1
and is stopped at the end.  The machine is usually shared: compare rows of
one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import relay_load as rl  # the sample, the player worker, /proc helpers


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += tree(int(child))
    return found


def cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += rl.cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            pass
    return total


def start_server(workers: int, folder: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    port, stats_port = rl.free_port(), rl.free_port()
    log = (folder / f"serve-{workers}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtmpx", "--log-level", "warning", "serve", "--host",
         "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--stats-port", str(stats_port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, cwd=rl.ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "serving" not in line:
        rl.stop_process(proc)
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, port, stats_port


def stats(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as answer:
        found: dict[str, Any] = json.loads(answer.read())
    return found


def ingest(ffmpeg: str, sample: rl.Sample, workers: int, publishers: int, loops: int,
           folder: Path) -> dict[str, Any]:
    proc, port, stats_port = start_server(workers, folder)
    try:
        pids = tree(proc.pid)
        cpu0, t0 = cpu(pids), time.monotonic()
        pubs = [subprocess.Popen(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-stream_loop", str(loops),
             "-i", str(sample.path), "-c", "copy", "-f", "flv",
             f"rtmp://127.0.0.1:{port}/live/in{i}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for i in range(publishers)]
        seen = 0
        while any(p.poll() is None for p in pubs):
            try:
                now = stats(stats_port)
                seen = max(seen, now["bytes_in"])
            except OSError:
                pass
            time.sleep(0.5)
        wall = time.monotonic() - t0
        used = cpu(pids) - cpu0
        codes = [p.returncode for p in pubs]
        sent = sample.bytes * (loops + 1) * publishers
        return {"workers": workers, "publishers": publishers, "wall": wall, "cpu": used,
                "gb": sent / 1e9, "mb_s": sent / 1e6 / wall, "cpu_per_gb": used / (sent / 1e9),
                "codes": codes}
    finally:
        rl.stop_process(proc, timeout=60)


def fanout(ffmpeg: str, sample: rl.Sample, workers: int, players: int,
           folder: Path) -> dict[str, Any]:
    proc, port, stats_port = start_server(workers, folder)
    url = f"rtmp://127.0.0.1:{port}/{rl.STREAM}"
    try:
        pids = tree(proc.pid)
        deadline = sample.seconds + 40
        worker = subprocess.Popen(
            [sys.executable, str(HERE / "relay_load.py"), "--player-worker", "--url", url,
             "--count", str(players), "--deadline", f"{deadline:.0f}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=rl.ROOT)
        assert worker.stdout is not None
        if not worker.stdout.readline().decode().startswith("READY"):
            raise RuntimeError("player worker did not start")
        spread = [w["connections"] for w in stats(stats_port).get("workers", [])]
        cpu0, t0 = cpu(pids), time.monotonic()
        pub = subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", str(sample.path),
             "-c", "copy", "-f", "flv", url],
            check=False, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=sample.seconds + 60)
        out, _ = worker.communicate(timeout=deadline + 20)
        wall = time.monotonic() - t0
        used = cpu(pids) - cpu0
        data = None
        for row in out.decode().splitlines():
            if row.startswith("RESULT "):
                data = json.loads(row[7:])
        assert data is not None, "no result from the players"
        ps = data["players"]
        rates = []
        for p in ps:
            if p["first_at"] is None or p["last_at"] == p["first_at"]:
                rates.append(0.0)
            else:
                rates.append((p["last_ts"] - p["first_ts"]) / 1000 / (p["last_at"] - p["first_at"]))
        delivered = data["wire_bytes"]
        frames = [p["video"] + p["audio"] for p in ps]
        return {"workers": workers, "players": players, "spread": spread, "wall": wall,
                "cpu": used, "gb_out": delivered / 1e9, "cpu_per_gb": used / (delivered / 1e9),
                "min_rate": min(rates), "min_frames": min(frames), "frames": sample.frames,
                "failed": sum(1 for p in ps if p["ended"] != "unpublished"),
                "publisher": pub.returncode}
    finally:
        rl.stop_process(proc, timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--players", type=int, default=100)
    parser.add_argument("--publishers", default="1,2")
    parser.add_argument("--seconds", type=float, default=20.0, help="sample length")
    parser.add_argument("--loops", type=int, default=4, help="ingest: -stream_loop")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--bitrate", default="4M")
    args = parser.parse_args()
    ffmpeg = rl.ffmpeg_exe()
    sample = rl.make_sample(ffmpeg, args.seconds, args.size, args.bitrate)
    counts = [int(n) for n in args.workers.split(",")]
    print(f"# {rl.machine()}; {os.cpu_count()} CPUs; sample {sample.bytes / 1e6:.1f} MB, "
          f"{sample.seconds:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("ingest (ffmpeg -c copy, as fast as it can)")
        print(f"{'workers':>7} {'pubs':>4} {'GB':>6} {'wall s':>7} {'MB/s':>7} "
              f"{'CPU s':>7} {'CPU s/GB':>9}")
        for publishers in (int(n) for n in args.publishers.split(",")):
            for workers in counts:
                r = ingest(ffmpeg, sample, workers, publishers, args.loops, folder)
                print(f"{r['workers']:>7} {r['publishers']:>4} {r['gb']:>6.2f} {r['wall']:>7.1f} "
                      f"{r['mb_s']:>7.1f} {r['cpu']:>7.1f} {r['cpu_per_gb']:>9.1f}"
                      f"  exit {r['codes']}", flush=True)
        print(f"fan-out (1 publisher at real time, {args.players} players)")
        print(f"{'workers':>7} {'spread':>9} {'GB out':>7} {'CPU s':>7} {'CPU s/GB':>9} "
              f"{'min rate':>8} {'min frames':>10} {'failed':>6}")
        for workers in counts:
            r = fanout(ffmpeg, sample, workers, args.players, folder)
            print(f"{r['workers']:>7} {'/'.join(map(str, r['spread'])) or '-':>9} "
                  f"{r['gb_out']:>7.3f} {r['cpu']:>7.1f} {r['cpu_per_gb']:>9.1f} "
                  f"{r['min_rate']:>8.2f} {r['min_frames']:>5}/{r['frames']:<4} "
                  f"{r['failed']:>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
