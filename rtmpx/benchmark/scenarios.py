"""The scenarios of ``rtmpx bench`` and the A B A B runs.

Each case runs ``rounds`` times on each server, alternating (rtmpx,
nginx, rtmpx, nginx, ...); every run starts a fresh server on a free
port and drives it from another process (the lean load generator, FFmpeg
or the ingest consumers).  Server CPU is utime + stime of the server's
process over the measured window, divided by the GB moved in it.

Scenarios (``--scenarios``):

* ``ingest``: publishers only, as fast as the server takes them: FFmpeg
  (``-stream_loop -1 -i sample.flv -c copy``, no ``-re``, 720p 8 Mbit/s)
  and lean publishers, 1/10/100 at once.  GB = bytes published.
* ``fanout``: one paced lean publisher (600 kbit/s and 2.5 Mbit/s) to
  10/100/500 counting players.  GB = bytes the players read.
* ``delay``: publish-to-play delay, p50 and p99, of stamped video read by
  parsing players (one 2.5 Mbit/s publisher).
* ``memory``: RSS growth per idle connection (connected, nothing else)
  and per player.
* ``saturation``: players join in steps (600 kbit/s) until the server
  uses one core (SRS's method); the count there, interpolated between
  steps or, when the machine runs out first, extrapolated (noted).
* ``python``: ingest into Python: rtmpx ``Server.publishes()`` iterating
  every frame vs PyAV demuxing FFmpeg's listener, 1 and 4 FFmpeg
  publishers; MB/s and frames lost.
"""

from __future__ import annotations

import itertools
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .load import LoadSpec
from .report import Report, Run
from .runner import (
    Peer,
    Processes,
    Sample,
    ServerProcess,
    child_env,
    cpu_seconds,
    find_nginx,
    free_port,
    make_sample,
    scan_log,
    start_nginx,
    start_rtmpx,
    wait_all,
)

__all__ = ["SCENARIOS", "SERVERS", "Bench", "Progress", "RunError", "Settings", "Step",
           "environment", "peer_summary", "saturation_point"]

#: Every scenario, in the order they run.
SCENARIOS = ("ingest", "fanout", "delay", "memory", "saturation", "python")
SERVERS = ("rtmpx", "nginx")
#: Seconds players get before a window: the samples have a keyframe every
#: second, and nginx-rtmp (no GOP cache) starts a player's video there.
PLAYER_WARMUP = 1.1
_LOAD = [sys.executable, "-m", "rtmpx.benchmark.load"]
_SINK = [sys.executable, "-m", "rtmpx.benchmark.sink"]


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``rtmpx bench`` was asked for."""

    scenarios: tuple[str, ...] = SCENARIOS
    servers: tuple[str, ...] = SERVERS
    rounds: int = 2
    seconds: float = 5.0
    warmup: float = 1.0
    quick: bool = False
    nginx: str | None = None
    nginx_module: str | None = None
    #: extra ``rtmpx serve`` options for the server under test
    rtmpx_args: tuple[str, ...] = ()


# --- progress -------------------------------------------------------------------

class Progress:
    """The status of the bench on stderr: one line rewritten in a terminal,
    a line per run otherwise."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._width = 0

    def show(self, text: str, detail: bool = False) -> None:
        """Show what runs now (a ``detail`` only in a terminal)."""
        if detail and not self.tty:
            return
        elapsed = int(time.monotonic() - self.started)
        line = f"[{self.done + 1:3d}/{self.total}] {elapsed // 60:d}:{elapsed % 60:02d} {text}"
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self) -> None:
        """One run is over."""
        self.done += 1

    def note(self, text: str) -> None:
        """A line that stays (a missing peer, a failed run)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the status line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


# --- child processes that talk JSON lines -----------------------------------------

class _Lines:
    """The JSON lines a child prints, read by a thread into a queue."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict):
                self._queue.put(item)
        self._queue.put(None)

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next object, or None at the end (or after ``timeout`` s)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, line: str) -> None:
        """A line to the child's stdin (ignored once it is gone)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass


@dataclass(slots=True)
class _Snap:
    """A server measured at a mark of the load generator."""

    item: dict[str, Any]
    cpu: float
    rss_kb: int
    t: float


class RunError(RuntimeError):
    """A run that could not be measured (its note says why)."""


# --- the bench ------------------------------------------------------------------

class Bench:
    """Runs the scenarios of :class:`Settings` into a :class:`Report`."""

    def __init__(self, settings: Settings, procs: Processes, folder: Path, ffmpeg: str | None,
                 report: Report, env: dict[str, str],
                 progress_stream: IO[str] | None = None) -> None:
        self.settings = settings
        self.env = env
        self.procs = procs
        self.folder = folder
        self.ffmpeg = ffmpeg
        self.report = report
        self.progress_stream = progress_stream
        self.peers: dict[str, Peer] = {"rtmpx": Peer("rtmpx", True, "python3 -m rtmpx serve")}
        nginx_peer, self.nginx, self.nginx_module = find_nginx(settings.nginx,
                                                               settings.nginx_module)
        self.peers["nginx"] = nginx_peer
        self._samples: dict[tuple[str, str], Sample] = {}
        self._count = 0
        self._label = ""   # the run shown in the progress line
        self.progress = Progress(0, progress_stream)

    # -- helpers ------------------------------------------------------------------

    @property
    def servers(self) -> list[str]:
        """The servers asked for that are there."""
        return [s for s in self.settings.servers if self.peers[s].available]

    def sample(self, size: str, bitrate: str) -> Sample:
        """A cached FFmpeg sample (``bitrate`` counts video + 128k audio)."""
        key = (size, bitrate)
        if key not in self._samples:
            if self.ffmpeg is None:
                raise RunError("FFmpeg not installed: pip install imageio-ffmpeg")
            total = float(bitrate.rstrip("kM")) * (1e6 if bitrate.endswith("M") else 1e3)
            video = f"{int((total - 128e3) / 1e3)}k"
            self._samples[key] = make_sample(self.ffmpeg, size=size, bitrate=video)
        return self._samples[key]

    def run_dir(self, label: str) -> Path:
        """A fresh folder for one run's configuration and logs."""
        self._count += 1
        path = self.folder / f"{self._count:03d}-{label.replace(' ', '_').replace('/', '_')}"
        path.mkdir()
        return path

    @contextmanager
    def server(self, name: str, folder: Path) -> Iterator[ServerProcess]:
        """A fresh server under test, stopped at the end."""
        try:
            if name == "nginx":
                srv = start_nginx(self.procs, folder, self.nginx, self.nginx_module)
            else:
                srv = start_rtmpx(self.procs, folder, extra_args=self.settings.rtmpx_args)
        except RuntimeError as exc:
            log = folder / f"{name}.log"
            tail = log.read_text("utf-8", "replace")[-600:] if log.exists() else ""
            raise RunError(f"{exc}: {tail.strip()}") from None
        try:
            yield srv
        finally:
            self.procs.stop(srv.proc)

    def load(self, server: ServerProcess, spec: LoadSpec, folder: Path,
             on_mark: Callable[[_Snap], bool] | None = None) -> dict[str, _Snap]:
        """Run the load generator against ``server``; the server measured at
        each mark (``on_mark`` returning True sends ``stop``)."""
        err = (folder / "load.log").open("wb")
        try:
            proc = self.procs.start([*_LOAD, spec.to_json()], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err)
        finally:
            err.close()
        lines = _Lines(proc)
        marks: dict[str, _Snap] = {}
        patience = spec.timeout + spec.warmup + spec.seconds + 30
        try:
            while True:
                item = lines.next(patience)
                if item is None:
                    tail = (folder / "load.log").read_text("utf-8", "replace")[-800:]
                    raise RunError(f"load generator ended without a result: {tail.strip()}")
                if "error" in item:
                    raise RunError(f"load generator: {item['error']}")
                if "result" in item:
                    return marks
                if server.proc.poll() is not None:
                    raise RunError(f"{server.name} exited with code {server.proc.returncode} "
                                   f"during the run")
                snap = _Snap(item, server.cpu(), server.rss_kb(), time.monotonic())
                marks[str(item["mark"])] = snap
                self.progress.show(self._label + f" · {item['mark']}", detail=True)
                if on_mark is not None and on_mark(snap):
                    lines.send("stop")
        finally:
            lines.send("stop")
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            self.procs.stop(proc)

    # -- the runs -------------------------------------------------------------------

    def alternate(self, scenario: str, case: str, servers: list[str],
                  measure: Callable[[str, Path], Run]) -> None:
        """``rounds`` runs of one case on each server, alternating."""
        for rnd in range(1, self.settings.rounds + 1):
            for name in servers:
                self._label = f"{scenario} {case} · {name} · round {rnd}/{self.settings.rounds}"
                self.progress.show(self._label)
                folder = self.run_dir(f"{scenario}-{case}-{name}-{rnd}")
                try:
                    run = measure(name, folder)
                except RunError as exc:
                    run = Run(scenario, case, name, rnd, notes=[str(exc)])
                    self.progress.note(f"{scenario} {case} {name}: {exc}")
                run.scenario, run.case, run.server, run.round = scenario, case, name, rnd
                for log in folder.glob("*.log"):
                    if log.name.startswith(("rtmpx", "nginx")):
                        found = scan_log(log, 5)
                        if found:
                            run.notes.append(f"{log.name}: {found}")
                self.report.runs.append(run)
                self.progress.step()

    def plan(self) -> list[tuple[str, str, list[str], Callable[[str, Path], Run]]]:
        """Every case to run: (scenario, case, servers, measure)."""
        quick = self.settings.quick
        servers = self.servers
        cases: list[tuple[str, str, list[str], Callable[[str, Path], Run]]] = []
        wanted = self.settings.scenarios
        if "ingest" in wanted:
            for n in (1,) if quick else (1, 10, 100):
                cases.append(("ingest", f"FFmpeg x{n}", servers, self._ffmpeg_ingest(n)))
            for n in (2,) if quick else (1, 10, 100):
                cases.append(("ingest", f"lean x{n}", servers, self._lean_ingest(n)))
        if "fanout" in wanted:
            for bitrate, size in (("600k", "640x360"), ("2.5M", "1280x720")):
                for n in (3,) if quick else (10, 100, 500):
                    cases.append(("fanout", f"{bitrate} to {n}", servers,
                                  self._fanout(size, bitrate, n)))
        if "delay" in wanted:
            n = 2 if quick else 10
            cases.append(("delay", f"2.5M to {n}", servers, self._delay(n)))
        if "memory" in wanted:
            idle, players = (10, 5) if quick else (500, 200)
            cases.append(("memory", f"{idle} idle, {players} players", servers,
                          self._memory(idle, players)))
        if "saturation" in wanted:
            step, top = (3, 6) if quick else (200, 2000)
            cases.append(("saturation", f"600k, +{step} players a step", servers,
                          self._saturation(step, top)))
        if "python" in wanted:
            consumers = ["rtmpx", "pyav"]
            if self.env.get("pyav") != "installed":
                consumers = ["rtmpx"]
                self.report.notes.append("ingest into Python: PyAV not installed "
                                         "(pip install av to measure it)")
            for n in (1, 4):
                cases.append(("python", f"FFmpeg x{n}", consumers, self._python(n)))
        return cases

    def run(self) -> Report:
        """Every case of the plan, alternating servers; the report."""
        for name in self.settings.servers:
            peer = self.peers.get(name)
            if peer is not None and not peer.available:
                self.report.notes.append(peer.detail)
        cases = self.plan()
        self.progress = Progress(sum(len(c[2]) for c in cases) * self.settings.rounds,
                                 self.progress_stream)
        for note in self.report.notes:
            self.progress.note(f"note: {note}")
        try:
            for scenario, case, servers, measure in cases:
                self.alternate(scenario, case, servers, measure)
        finally:
            self.progress.finish()
        return self.report

    # -- scenarios ----------------------------------------------------------------

    def _spec(self, server: ServerProcess, **kwargs: Any) -> LoadSpec:
        s = self.settings
        warmup = s.warmup
        if kwargs.get("players") or kwargs.get("delay_players") or kwargs.get("ramp_step"):
            warmup = max(warmup, PLAYER_WARMUP)  # every player past its first keyframe
        kwargs.setdefault("seconds", s.seconds)
        return LoadSpec(port=server.port, warmup=warmup, **kwargs)

    def _lean_ingest(self, n: int) -> Callable[[str, Path], Run]:
        def measure(name: str, folder: Path) -> Run:
            sample = self.sample("1280x720", "8M")
            with self.server(name, folder) as srv:
                spec = self._spec(srv, sample=str(sample.path), publishers=n, paced=False)
                marks = self.load(srv, spec, folder)
            return _window_run(marks, "tx_bytes")
        return measure

    def _fanout(self, size: str, bitrate: str, n: int) -> Callable[[str, Path], Run]:
        def measure(name: str, folder: Path) -> Run:
            sample = self.sample(size, bitrate)
            with self.server(name, folder) as srv:
                spec = self._spec(srv, sample=str(sample.path), publishers=1, players=n)
                marks = self.load(srv, spec, folder)
            run = _window_run(marks, "rx_bytes")
            stop = marks["stop"].item
            expected = n * sample.bytes / sample.seconds * stop["seconds"]
            run.metrics["delivered_pct"] = 100 * stop["rx_bytes"] / expected
            if stop["lost"]:
                run.notes.append(f"{stop['lost']} players disconnected")
            return run
        return measure

    def _delay(self, n: int) -> Callable[[str, Path], Run]:
        def measure(name: str, folder: Path) -> Run:
            sample = self.sample("1280x720", "2.5M")
            with self.server(name, folder) as srv:
                spec = self._spec(srv, sample=str(sample.path), publishers=1,
                                  delay_players=n, stamp=True)
                marks = self.load(srv, spec, folder)
            stop = marks["stop"].item
            if not stop["delay_count"]:
                raise RunError("no stamped frame reached a player")
            run = _window_run(marks, "rx_bytes")
            run.metrics = {"delay_p50_ms": stop["delay_p50_ms"],
                           "delay_p99_ms": stop["delay_p99_ms"]}
            return run
        return measure

    def _memory(self, idle: int, players: int) -> Callable[[str, Path], Run]:
        def measure(name: str, folder: Path) -> Run:
            sample = self.sample("640x360", "600k")
            with self.server(name, folder) as srv:
                spec = self._spec(srv, sample=str(sample.path), publishers=1, idle=idle,
                                  players=players)
                marks = self.load(srv, spec, folder)
            run = _window_run(marks, "rx_bytes")
            run.metrics = {
                "kb_per_idle": (marks["idle"].rss_kb - marks["published"].rss_kb) / idle,
                "kb_per_player": (marks["stop"].rss_kb - marks["idle"].rss_kb) / players,
            }
            return run
        return measure

    def _saturation(self, step: int, top: int) -> Callable[[str, Path], Run]:
        def measure(name: str, folder: Path) -> Run:
            sample = self.sample("640x360", "600k")
            rate = sample.bytes / sample.seconds
            points: list[Step] = []
            begin: list[_Snap] = []
            ended: list[str] = []   # why the ramp stopped before its top, if it did

            def on_mark(snap: _Snap) -> bool:
                if snap.item["mark"] == "ramp_failed":
                    item = snap.item
                    ended.append(f"ramp stopped at {item['players']} players: {item['failed']} "
                                 f"of the next step could not join ({item['reason']})")
                    return True
                if snap.item["mark"] == "step_start":
                    begin[:] = [snap]
                    return False
                if snap.item["mark"] != "step_end" or not begin:
                    return False
                item = snap.item
                seconds = snap.t - begin[0].t
                point = Step(int(item["players"]), (snap.cpu - begin[0].cpu) / seconds,
                             item["load_cpu"] / item["seconds"],
                             item["rx_bytes"] / (item["players"] * rate * item["seconds"]))
                points.append(point)
                return point.server >= 1.0 or point.load >= 0.95 or point.delivered < 0.9

            with self.server(name, folder) as srv:
                spec = self._spec(srv, sample=str(sample.path), publishers=1,
                                  ramp_step=step, ramp_max=top,
                                  seconds=min(self.settings.seconds, 2.0))
                try:
                    self.load(srv, spec, folder, on_mark)
                except RunError as exc:  # the steps already measured stand
                    if not points:
                        raise
                    ended.append(f"ramp stopped after {points[-1].players} players: {exc}")
            if not points:
                raise RunError("no step measured" + (f" ({ended[0]})" if ended else ""))
            players, note = saturation_point(points, top)
            run = Run("", "", "", 0, {"players_per_core": players,
                                      "server_cpu_pct": 100 * points[-1].server},
                      load_cpu_pct=100 * points[-1].load)
            run.notes += ended
            run.notes.append(note + "; steps (players, server cores, load cores, delivered): "
                             + ", ".join(f"({p.players}, {p.server:.2f}, {p.load:.2f}, "
                                         f"{p.delivered:.0%})" for p in points))
            return run
        return measure

    def _ffmpeg(self, sample: Sample, url: str, loops: int, folder: Path,
                tag: str) -> subprocess.Popen[bytes]:
        if self.ffmpeg is None:
            raise RunError("FFmpeg not installed: pip install imageio-ffmpeg")
        out = (folder / f"ffmpeg-{tag}.progress").open("wb")
        err = (folder / f"ffmpeg-{tag}.err").open("wb")
        try:
            return self.procs.start(
                [self.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-nostats",
                 "-progress", "pipe:1", "-stream_loop", str(loops), "-i", str(sample.path),
                 "-c", "copy", "-f", "flv", url], stdout=out, stderr=err)
        finally:
            out.close()
            err.close()

    def _ffmpeg_ingest(self, n: int) -> Callable[[str, Path], Run]:
        def measure(name: str, folder: Path) -> Run:
            sample = self.sample("1280x720", "8M")
            with self.server(name, folder) as srv:
                cpu0, t0 = srv.cpu(), time.monotonic()
                pubs = []
                for i in range(n):  # staggered: a burst of connects trips servers' limits
                    pubs.append(self._ffmpeg(sample, f"rtmp://127.0.0.1:{srv.port}/live/ff{i}",
                                             -1, folder, str(i)))
                    if i % 4 == 3:
                        time.sleep(0.1)
                time.sleep(self.settings.warmup + self.settings.seconds)
                pub_cpu = sum(cpu_seconds(p.pid) for p in pubs)
                for p in pubs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                for p in pubs:
                    try:
                        p.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        self.procs.stop(p)
                _settle(srv)
                cpu, seconds = srv.cpu() - cpu0, time.monotonic() - t0
            total = sum(_progress_bytes(folder / f"ffmpeg-{i}.progress") for i in range(n))
            failed = [i for i, p in enumerate(pubs) if p.returncode not in (0, 255, -2)]
            if total == 0:
                raise RunError(f"FFmpeg sent nothing ({len(failed)} failed): "
                               + (folder / "ffmpeg-0.err").read_text()[-400:])
            run = Run("", "", "", 0, {"cpu_per_gb": cpu / (total / 1e9),
                                      "mb_per_s": total / seconds / 1e6,
                                      "server_cpu_pct": 100 * cpu / seconds},
                      load_cpu_pct=100 * pub_cpu / seconds)
            if failed:
                why = (folder / f"ffmpeg-{failed[0]}.err").read_text("utf-8", "replace")
                run.notes.append(f"{len(failed)} of {n} FFmpeg publishers failed (exit "
                                 f"{pubs[failed[0]].returncode}: {why.strip()[-300:]})")
            return run
        return measure

    def _python(self, n: int) -> Callable[[str, Path], Run]:
        loops = 0 if self.settings.quick else 2

        def measure(impl: str, folder: Path) -> Run:
            sample = self.sample("1280x720", "8M")
            ports = [free_port()] if impl == "rtmpx" else [free_port() for _ in range(n)]
            err = (folder / "sink.log").open("wb")
            try:
                proc = self.procs.start(
                    [*_SINK, impl, ",".join(map(str, ports)), str(n)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            finally:
                err.close()
            stopped = ""   # the note when the publishers overran their deadline
            try:
                lines = _Lines(proc)
                first = lines.next(30)
                if first is None or "error" in first:
                    raise RunError((first or {}).get("error", "consumer did not start: "
                                   + (folder / "sink.log").read_text()[-400:]))
                urls = [f"rtmp://127.0.0.1:{ports[0 if impl == 'rtmpx' else i]}/live/in{i}"
                        for i in range(n)]
                pubs = [self._ffmpeg(sample, url, loops, folder, str(i))
                        for i, url in enumerate(urls)]
                # As fast as they can: even at a third of real time they are done by then.
                limit = 30 + 3 * sample.seconds * (loops + 1)
                late = wait_all(pubs, limit)
                for p in late:
                    self.procs.stop(p)
                if late:
                    stopped = (f"{len(late)} of {n} FFmpeg publishers still running "
                               f"after {limit:g} s: stopped")
                result = lines.next(60)
            finally:
                self.procs.stop(proc)
            if result is None or "result" not in result:
                raise RunError((stopped + "; " if stopped else "") + "consumer gave no result: "
                               + (folder / "sink.log").read_text()[-400:])
            streams = result["result"]["streams"]
            got = sum(s["frames"] for s in streams)
            size = sum(s["bytes"] for s in streams)
            firsts = [s["first"] for s in streams if s["first"] is not None]
            lasts = [s["last"] for s in streams if s["last"] is not None]
            seconds = max(lasts) - min(firsts) if firsts and lasts else 0.0
            run = Run("", "", "", 0, {
                "mb_per_s": size / seconds / 1e6 if seconds else 0.0,
                "frames_lost": float(n * sample.frames * (loops + 1) - got)},
                load_cpu_pct=100 * result["result"]["cpu"] / seconds if seconds else None)
            run.notes += [s["error"] for s in streams if s["error"]]
            if stopped:
                run.notes.append(stopped)
            if len(streams) < n:
                run.notes.append(f"only {len(streams)} of {n} publishers arrived")
            return run
        return measure


# --- measurements ---------------------------------------------------------------

def _window_run(marks: dict[str, _Snap], moved: str) -> Run:
    """Server CPU per GB over the start..stop window of the generator."""
    if "start" not in marks or "stop" not in marks:
        raise RunError("the load generator did not reach its window")
    start, stop = marks["start"], marks["stop"]
    item = stop.item
    cpu = stop.cpu - start.cpu
    seconds = stop.t - start.t
    gb = item[moved] / 1e9
    metrics = {"server_cpu_pct": 100 * cpu / seconds if seconds else 0.0,
               "mb_per_s": item[moved] / seconds / 1e6 if seconds else 0.0}
    if gb:
        metrics["cpu_per_gb"] = cpu / gb
    return Run("", "", "", 0, metrics, load_cpu_pct=100 * item["load_cpu"] / item["seconds"])


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the saturation ramp: players, then the server's and the
    load generator's CPU (in cores) and the share of the stream rate the
    players got."""

    players: int
    server: float
    load: float
    delivered: float


def saturation_point(points: list[Step], top: int) -> tuple[float, str]:
    """Players at one core of server CPU: interpolated between the steps
    around it, else extrapolated along the line through the steps that
    still delivered the stream (>= 90%), the machine having run out first."""
    for p0, p1 in itertools.pairwise(points):
        if p0.server < 1.0 <= p1.server and p1.delivered >= 0.9:
            return (p0.players + (1.0 - p0.server) * (p1.players - p0.players)
                    / (p1.server - p0.server)), "measured (interpolated between steps)"
    if points[0].server >= 1.0:
        return float(points[0].players), "saturated at the first step"
    good = [p for p in points if p.delivered >= 0.9] or points[:1]
    last = points[-1]
    if last.delivered < 0.9:
        why = f"players got {last.delivered:.0%} of the stream at {last.players}"
    elif last.load >= 0.95:
        why = f"the load generator used a core at {last.players} players"
    elif last.players >= top:
        why = f"the ramp's top ({top} players)"
    else:
        why = f"the ramp ended at {last.players} players"
    if len(good) < 2:
        p = good[0]
        value = p.players / p.server if p.server > 0 else float("nan")
        return value, f"extrapolated from one step, through zero ({why})"
    xs = [float(p.players) for p in good]
    ys = [p.server for p in good]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) \
        / sum((x - mx) ** 2 for x in xs)
    if slope <= 0:
        return float("nan"), f"no CPU growth with players: not measurable here ({why})"
    return (1.0 - (my - slope * mx)) / slope, f"extrapolated from {len(good)} steps ({why})"


def _settle(server: ServerProcess, limit: float = 3.0) -> None:
    """Wait until the server's CPU stops growing (what it still had queued)."""
    deadline = time.monotonic() + limit
    last = server.cpu()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = server.cpu()
        if now == last:
            return
        last = now


def _progress_bytes(path: Path) -> int:
    """The last ``total_size`` of an FFmpeg ``-progress`` file."""
    size = 0
    try:
        for line in path.read_text("utf-8", "replace").splitlines():
            if line.startswith("total_size="):
                value = line.split("=", 1)[1].strip()
                if value.isdigit():
                    size = int(value)
    except OSError:
        pass
    return size


def peer_summary(peers: dict[str, Peer]) -> dict[str, dict[str, Any]]:
    """The peers for the JSON: available, and what or why not."""
    return {name: {"available": p.available, "detail": p.detail} for name, p in peers.items()}


def environment() -> dict[str, str]:
    """The event loop and PyAV, as the servers and consumers will find them."""
    probe = subprocess.run(
        [sys.executable, "-c",
         ("import importlib.util as u; print(bool(u.find_spec('uvloop')), "
          "bool(u.find_spec('av')))")],
        capture_output=True, text=True, env=child_env(), check=False)
    found = probe.stdout.split()
    uvloop = len(found) == 2 and found[0] == "True"
    av = len(found) == 2 and found[1] == "True"
    return {"rtmpx_loop": "uvloop" if uvloop else "asyncio",
            "pyav": "installed" if av else "PyAV not installed (pip install av)"}

