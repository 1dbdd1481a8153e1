"""End-to-end relay load: the rtmpx server next to nginx-rtmp, one table.

    python3 bench/relay_load.py [--players 1,10,50] [--seconds 10]
                                [--servers rtmpx,nginx] [--uvloop]
                                [--profile /tmp/rtmpx-profile]

Workload, the same for every server: one publisher (``ffmpeg -re -i
sample.flv -c copy -f flv``, FFmpeg from imageio-ffmpeg) sends a
1280x720 25 fps H.264 (libx264 ultrafast, 4 Mbit/s) + AAC sample at real
time to ``rtmp://127.0.0.1:PORT/live/bench``; N players, all in one helper
process (``relay_load.py --player-worker``, rtmpx clients on asyncio),
play it from before the publish starts to its end.  The server runs in
its own process, so its CPU (``/proc/PID/stat`` utime+stime) is its own.

Servers: ``rtmpx`` (``python3 -m rtmpx serve`` on plain asyncio),
``rtmpx-uvloop`` (the same on uvloop, with ``--uvloop``, when uvloop is
importable), ``nginx`` (Debian's nginx + libnginx-mod-rtmp, one process,
``application live { live on; }``; skipped with a note when absent).

Everything runs on 127.0.0.1; every process started here is stopped at
the end, also on errors and Ctrl-C.  The machine is usually shared: read
the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # this checkout's rtmpx, run from anywhere

from rtmpx.benchmark.runner import (
    Processes,
    Sample,
    ServerProcess,
    cpu_seconds,
    ffmpeg_exe,
    find_nginx,
    machine,
    make_sample,
    rss_kb,
    scan_log,
    start_nginx,
    start_rtmpx,
)

STREAM = "live/bench"
KEEP_UP = 0.95  # players must receive at >= 95% of real time


# --- the player worker (a separate process) --------------------------------------

async def _players(url: str, count: int, deadline: float) -> dict[str, Any]:
    import rtmpx

    wire = [0]   # bytes the players' sessions read off their sockets (Client.session)
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + deadline
    started = asyncio.Event()
    ready = [0]
    results: list[dict[str, Any]] = []
    errors: collections.Counter[str] = collections.Counter()

    async def player(index: int) -> None:
        r: dict[str, Any] = {"video": 0, "audio": 0, "bytes": 0, "first_at": None,
                             "last_at": None, "first_ts": None, "last_ts": None,
                             "max_gap": 0.0, "ended": "deadline"}
        results.append(r)
        counted_ready = False
        try:
            async with rtmpx.connect(url, timeout=20) as client:
                try:
                    name = url.rpartition("/")[2]
                    stream = client.play(name, until_unpublish=True)
                    async with stream:
                        ready[0] += 1
                        counted_ready = True
                        if ready[0] == count:
                            started.set()
                        async with asyncio.timeout_at(stop_at):
                            async for frame in stream:
                                if not isinstance(frame, rtmpx.Frame):
                                    continue
                                now = loop.time()
                                if r["last_at"] is not None:
                                    r["max_gap"] = max(r["max_gap"], now - r["last_at"])
                                else:
                                    r["first_at"], r["first_ts"] = now, frame.timestamp
                                r["last_at"], r["last_ts"] = now, frame.timestamp
                                r["bytes"] += len(frame.payload)
                                if frame.is_sequence_header or frame.is_end_of_sequence:
                                    continue
                                r[frame.kind] += 1
                        r["ended"] = "unpublished"
                finally:
                    wire[0] += client.session.bytes_received
        except TimeoutError:
            r["ended"] = "deadline"
        except Exception as exc:  # noqa: BLE001 - reported, counted
            r["ended"] = f"error: {type(exc).__name__}: {exc}"
            errors[f"{type(exc).__name__}: {exc}"] += 1
        finally:
            if not counted_ready:
                ready[0] += 1
                if ready[0] == count:
                    started.set()

    tasks = []
    for i in range(count):  # connect in small batches: no accept-queue overflow
        tasks.append(asyncio.create_task(player(i)))
        if i % 10 == 9:
            await asyncio.sleep(0.05)
    try:
        async with asyncio.timeout(60):
            await started.wait()
    except TimeoutError:
        pass
    print(f"READY {sum(1 for r in results if r['ended'] == 'deadline')}", flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"players": results, "wire_bytes": wire[0], "errors": dict(errors),
            "loop": type(loop).__module__}


def player_worker(args: argparse.Namespace) -> int:
    # Always plain asyncio: the players are the same for every server.
    result = asyncio.run(_players(args.url, args.count, args.deadline))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# --- the player worker, seen from the bench ---------------------------------------

@dataclass
class PlayerWorker:
    """The running player worker and its log (its stderr)."""

    proc: subprocess.Popen[bytes]
    log: Path


def start_players(procs: Processes, url: str, count: int, deadline: float,
                  folder: Path) -> PlayerWorker:
    """The player worker for ``count`` players of ``url``, once they are
    connected (its READY line; it bounds that wait itself: 60 s)."""
    log = folder / "players.log"
    with log.open("wb") as err:
        proc = procs.start(
            [sys.executable, str(Path(__file__).resolve()), "--player-worker", "--url", url,
             "--count", str(count), "--deadline", f"{deadline:.0f}"],
            stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("READY"):
        procs.stop(proc)
        raise RuntimeError(f"player worker did not start: {line!r} "
                           f"{log.read_text('utf-8', 'replace')[-2000:]}")
    return PlayerWorker(proc, log)


@dataclass
class Players:
    """What the players of one run got (:func:`finish_players`)."""

    wire_bytes: int = 0       # read off the sockets, all players
    payload_bytes: int = 0    # audio/video/data bodies, all players
    min_frames: int = 0       # coded frames of the player that got fewest
    mean_frames: float = 0.0
    min_rate: float = 0.0     # slowest player's media seconds per wall second
    max_gap: float = 0.0      # largest wait between two frames of a player, s
    failed: int = 0           # players that did not see the unpublish
    errors: dict[str, int] = field(default_factory=dict)
    note: str = ""            # why there is no result, if there is none


def finish_players(procs: Processes, worker: PlayerWorker, timeout: float) -> Players:
    """Wait up to ``timeout`` s for the worker's RESULT (stopping it after
    that) and sum it up."""
    why = ""
    try:
        out, _ = worker.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop(worker.proc)
        out, why = b"", f"stopped after {timeout:g} s; "
    procs.stop(worker.proc)  # gone already: only forgotten
    data = None
    for row in out.decode("utf-8", "replace").splitlines():
        if row.startswith("RESULT "):
            data = json.loads(row[7:])
    if data is None:
        return Players(note="no result from the player worker: " + why
                       + worker.log.read_text("utf-8", "replace")[-500:])
    ps = data["players"]
    frames = [p["video"] + p["audio"] for p in ps]
    rates = []
    for p in ps:
        if p["first_at"] is None or p["last_at"] == p["first_at"]:
            rates.append(0.0)
            continue
        media = (p["last_ts"] - p["first_ts"]) / 1000
        rates.append(min(media / (p["last_at"] - p["first_at"]), 9.99))
    return Players(
        wire_bytes=data["wire_bytes"], payload_bytes=sum(p["bytes"] for p in ps),
        min_frames=min(frames, default=0),
        mean_frames=sum(frames) / len(frames) if frames else 0.0,
        min_rate=min(rates, default=0.0), max_gap=max((p["max_gap"] for p in ps), default=0.0),
        failed=sum(1 for p in ps if p["ended"] != "unpublished"), errors=data["errors"])


# --- one measured run ------------------------------------------------------------

@dataclass
class Result:
    server: str
    players: int
    window: float = 0.0
    cpu: float = 0.0
    rss_peak_kb: int = 0
    hwm_kb: int = 0
    wire_bytes: int = 0
    payload_bytes: int = 0
    min_frames: int = 0
    mean_frames: float = 0.0
    min_rate: float = 0.0
    max_gap: float = 0.0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    log_notes: list[str] = field(default_factory=list)
    note: str = ""


def measure(server: ServerProcess, players: int, sample: Sample, ffmpeg: str, folder: Path,
            procs: Processes, profile: Path | None, py_spy: str | None) -> Result:
    url = f"rtmp://127.0.0.1:{server.port}/{STREAM}"
    res = Result(server.name, players)
    deadline = sample.seconds + 40
    worker = start_players(procs, url, players, deadline, folder)
    pid = server.proc.pid
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    publisher = procs.start(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", str(sample.path),
         "-c", "copy", "-f", "flv", url], stderr=subprocess.PIPE)
    spy = None
    if profile is not None and py_spy is not None:
        with (folder / "py-spy.log").open("wb") as spy_log:
            spy = procs.start(
                [py_spy, "record", "--pid", str(pid), "--duration",
                 f"{max(1, int(sample.seconds) - 1)}", "--rate", "200", "--nonblocking",
                 "--format", "raw", "-o", str(profile)], stderr=spy_log)
    rss = 0
    limit = time.monotonic() + sample.seconds + 30
    while publisher.poll() is None and time.monotonic() < limit:
        rss = max(rss, rss_kb(pid))
        time.sleep(0.2)
    if publisher.poll() is None:
        res.note = "publisher overran its time limit: stopped; "
        procs.stop(publisher)
    pub_err = publisher.stderr.read().decode("utf-8", "replace") if publisher.stderr else ""
    if publisher.returncode not in (0, None):
        res.note += (f"publisher exit {publisher.returncode}: "
                     f"{pub_err.strip().splitlines()[-1] if pub_err.strip() else ''}; ")
        if time.monotonic() - t0 < sample.seconds / 2:  # it never really published
            procs.stop(worker.proc)
    # players end on unpublish; bounded by the worker's own deadline
    got = finish_players(procs, worker, deadline + 20)
    t1 = time.monotonic()
    res.cpu = cpu_seconds(pid) - cpu0
    res.window = t1 - t0
    res.rss_peak_kb = max(rss, rss_kb(pid))
    res.hwm_kb = rss_kb(pid, "VmHWM")
    if spy is not None:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            procs.stop(spy)
    if got.note:
        res.note += got.note
        return res
    res.wire_bytes, res.payload_bytes = got.wire_bytes, got.payload_bytes
    res.min_frames, res.mean_frames = got.min_frames, got.mean_frames
    res.min_rate, res.max_gap = got.min_rate, got.max_gap
    res.failed, res.errors = got.failed, got.errors
    return res


# --- the table -------------------------------------------------------------------

def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def print_table(results: list[Result], sample: Sample) -> None:
    print("| server | players | server CPU s per stream s | server CPU s per GB delivered "
          "| peak RSS MB | delivered Mbit/s | frames/player min (of "
          f"{sample.frames}) | loss | min receive rate (x real time) | max frame gap s "
          "| keeps up |")
    print("|---" * 11 + "|")
    for r in results:
        gb = r.wire_bytes / 1e9
        loss = 1 - r.min_frames / sample.frames if sample.frames else 0.0
        keeps = (r.min_rate >= KEEP_UP and r.min_frames >= KEEP_UP * sample.frames
                 and r.failed == 0)
        print(f"| {r.server} | {r.players} | {r.cpu / sample.seconds:.3f} | "
              f"{r.cpu / gb if gb else float('nan'):.2f} | {r.rss_peak_kb / 1024:.1f} | "
              f"{r.wire_bytes * 8 / r.window / 1e6 if r.window else 0:.1f} | {r.min_frames} | "
              f"{loss:.1%} | {r.min_rate:.3f} | {r.max_gap:.2f} | "
              f"{'yes' if keeps else 'NO'}{' (' + str(r.failed) + ' failed)' if r.failed else ''} |")
    by = {(r.server, r.players): r for r in results}
    ratios = []
    for r in results:
        if r.server.startswith("rtmpx") and ("nginx", r.players) in by:
            n = by[("nginx", r.players)]
            rg, ng = r.wire_bytes / 1e9, n.wire_bytes / 1e9
            ratios.append(
                f"| {r.server} / nginx | {r.players} | {fmt_ratio(r.cpu, n.cpu)} | "
                f"{fmt_ratio(r.cpu / rg if rg else 0, n.cpu / ng if ng else 0)} | "
                f"{fmt_ratio(r.rss_peak_kb, n.rss_peak_kb)} | "
                f"{fmt_ratio(r.wire_bytes / r.window, n.wire_bytes / n.window)} | "
                f"{fmt_ratio(r.min_frames, n.min_frames)} | | "
                f"{fmt_ratio(r.min_rate, n.min_rate)} | | |")
    for row in ratios:
        print(row)


def summarise_profile(raw: Path, top: int = 15) -> None:
    """Top functions of a py-spy ``--format raw`` (collapsed stacks) file."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        # skip the leading "process ..." / "thread ..." frames py-spy adds
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    if not samples:
        print(f"py-spy profile {raw}: no samples")
        return
    print(f"\nrtmpx server profile ({samples} samples, {raw}): self time")
    print("| % self | function (file:line) |\n|---|---|")
    for name, n in own.most_common(top):
        print(f"| {100 * n / samples:.1f} | {name} |")
    print("\ninclusive time (function and its callees)")
    print("| % total | function (file:line) |\n|---|---|")
    for name, n in total.most_common(top + 10):
        print(f"| {100 * n / samples:.1f} | {name} |")


# --- main ------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", default="1,10,50",
                        help="comma-separated player counts (default 1,10,50)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of the published sample (default 10)")
    parser.add_argument("--servers", default="rtmpx,nginx",
                        help="comma-separated: rtmpx, nginx (default both)")
    parser.add_argument("--uvloop", action="store_true",
                        help="also run rtmpx on uvloop (needs uvloop importable)")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--bitrate", default="4M")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the rtmpx server at the largest N; raw stacks to this file")
    parser.add_argument("--py-spy", default=None, help="py-spy executable (default: on PATH)")
    # internal: the player process
    parser.add_argument("--player-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=60, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.player_worker:
        return player_worker(args)

    counts = [int(n) for n in args.players.split(",") if n.strip()]
    if not counts or min(counts) < 1 or max(counts) > 1000:
        parser.error("--players: 1..1000 each")
    if not 2 <= args.seconds <= 600:
        parser.error("--seconds: 2..600")
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    notes: list[str] = []
    variants: list[str] = []
    if "rtmpx" in wanted:
        variants.append("rtmpx")
        if args.uvloop:
            probe = subprocess.run([sys.executable, "-c", "import uvloop"], capture_output=True,
                                   check=False)
            if probe.returncode == 0:
                variants.append("rtmpx-uvloop")
            else:
                notes.append("rtmpx-uvloop skipped: uvloop is not importable "
                             "(pip install uvloop, or PYTHONPATH to it)")
    peer, nginx, nginx_module = find_nginx()
    if "nginx" in wanted:
        if peer.available:
            variants.append("nginx")
        else:
            notes.append(f"nginx skipped: {peer.detail}")
    py_spy = args.py_spy or shutil.which("py-spy")
    if args.profile is not None and py_spy is None:
        notes.append("profile skipped: py-spy not found (pip install py-spy)")

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine()}")
    ffmpeg = ffmpeg_exe()
    if ffmpeg is None:
        parser.error("FFmpeg not found: pip install imageio-ffmpeg")
    sample = make_sample(ffmpeg, size=args.size, bitrate=args.bitrate, seconds=args.seconds)
    print(f"sample: {sample.path} ({args.size} 25 fps H.264 {args.bitrate} + AAC, "
          f"{sample.seconds:.2f} s, {sample.frames} audio + video frames, "
          f"{sample.bytes * 8 / sample.seconds / 1e6:.2f} Mbit/s of tag bodies)")
    print(f"publisher: {shlex.join([ffmpeg, '-re', '-i', str(sample.path), '-c', 'copy', '-f', 'flv', 'rtmp://127.0.0.1:PORT/' + STREAM])}")
    print(f"players: rtmpx.connect + play in one helper process per run "
          f"({shlex.join([sys.executable, 'bench/relay_load.py', '--player-worker', '...'])})")

    # Stop on SIGTERM as on Ctrl-C, so that the finally below runs.
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results: list[Result] = []
    commands: dict[str, str] = {}
    log_notes: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="rtmpx-relay-load-") as tmp, Processes() as procs:
        folder = Path(tmp)
        for n in counts:
            for variant in variants:
                run_dir = folder / f"{variant}-{n}"
                run_dir.mkdir()
                if variant == "nginx":
                    server = start_nginx(procs, run_dir, nginx, nginx_module)
                else:
                    server = start_rtmpx(
                        procs, run_dir, name=variant,
                        loop="uvloop" if variant == "rtmpx-uvloop" else "asyncio")
                commands[variant] = server.command.replace(str(run_dir), "TMP")
                profile = (args.profile if variant == "rtmpx" and n == max(counts)
                           and py_spy is not None else None)
                try:
                    res = measure(server, n, sample, ffmpeg, run_dir, procs, profile, py_spy)
                finally:
                    procs.stop(server.proc)
                res.log_notes = scan_log(server.log)
                if server.proc.returncode not in (0, None, -signal.SIGTERM):
                    res.note += f"server exit code {server.proc.returncode}; "
                if res.log_notes:
                    log_notes[f"{variant} N={n}"] = res.log_notes
                results.append(res)
                print(f"  done: {variant:13s} N={n:4d}  window {res.window:5.1f} s  "
                      f"cpu {res.cpu:6.2f} s  {res.note}", file=sys.stderr, flush=True)

    print()
    for variant, command in commands.items():
        print(f"server {variant}: {command}")
    print()
    print_table(results, sample)
    print()
    print("CPU is utime+stime of the server process from the publisher's start until every "
          "player has seen the end; 'delivered' counts the bytes all players read off their "
          "sockets over that window; 'receive rate' is media time / wall time between a "
          f"player's first and last frame; 'keeps up': every player >= {KEEP_UP:.0%} of real "
          f"time and >= {KEEP_UP:.0%} of the frames, none failed.")
    for note in notes:
        print(f"note: {note}")
    for r in results:
        if r.note or r.errors:
            print(f"note: {r.server} N={r.players}: {r.note} {r.errors or ''}")
    for key, lines in log_notes.items():
        print(f"log {key}: {len(lines)} warning/error lines, first: {lines[:3]}")
    if args.profile is not None and args.profile.exists():
        summarise_profile(args.profile)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; all started processes were stopped", file=sys.stderr)
        sys.exit(130)
