"""The servers under test and the processes around them.

rtmpx runs as ``rtmpx serve --host 127.0.0.1 --port P`` (as a user would
start it: uvloop when installed; its soft descriptor limit raised to the
hard one, as nginx raises its own); nginx-rtmp as Debian's
``/usr/sbin/nginx`` with ``ngx_rtmp_module.so`` and a configuration
generated in a temporary folder (one process, ``daemon off``,
``master_process off``, ``chunk_size 4096``, ``application live { live
on; }``).  Each run gets a fresh server on a free port.

Measurements come from ``/proc``: CPU seconds are utime + stime of
``/proc/PID/stat``, memory is VmRSS of ``/proc/PID/status``.
:class:`Processes` owns every process a run starts and stops them all,
also on errors and Ctrl-C.
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

__all__ = [
    "LAUNCHERS",
    "NGINX",
    "NGINX_INSTALL",
    "NGINX_MODULE",
    "Peer",
    "Processes",
    "Sample",
    "ServerProcess",
    "child_env",
    "cpu_seconds",
    "ffmpeg_exe",
    "find_nginx",
    "free_port",
    "machine",
    "make_sample",
    "nginx_config",
    "raise_nofile",
    "rss_kb",
    "sample_cache",
    "scan_log",
    "start_nginx",
    "start_rtmpx",
    "stop_process",
    "wait_all",
    "wait_listening",
]

#: Where Debian's ``nginx`` and ``libnginx-mod-rtmp`` put them; the
#: environment variables ``RTMPX_BENCH_NGINX`` and
#: ``RTMPX_BENCH_NGINX_MODULE`` (or ``--nginx``) point elsewhere.
NGINX = Path("/usr/sbin/nginx")
NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX_INSTALL = "apt-get install nginx libnginx-mod-rtmp"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The rtmpx server's connection limit in the bench (the saturation ramp
#: goes past the default 1000).
MAX_CONNECTIONS = 20000


# --- processes -----------------------------------------------------------------

def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(proc: subprocess.Popen[Any], port: int, timeout: float = 20.0) -> None:
    """Return once ``127.0.0.1:port`` accepts; RuntimeError if ``proc``
    exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not listen on {port} within {timeout:g} s") from None
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0.0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    """A ``/proc/PID/status`` size in KiB (VmRSS by default; 0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_all(procs: list[subprocess.Popen[bytes]],
             limit: float) -> list[subprocess.Popen[bytes]]:
    """Wait up to ``limit`` seconds for ``procs`` to exit; those still
    running then (for the caller to stop and note)."""
    deadline = time.monotonic() + limit
    while True:
        running = [p for p in procs if p.poll() is None]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; only the given process."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def child_env() -> dict[str, str]:
    """The environment of the bench's Python children: this rtmpx first on
    ``PYTHONPATH``, whatever their working directory."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    return env


class Processes:
    """The processes of a bench: each one started through :meth:`start`
    is stopped by :meth:`stop_all` (and on leaving the ``with`` block),
    newest first."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: Sequence[str], *, stdin: int | IO[Any] | None = subprocess.DEVNULL,
              stdout: int | IO[Any] | None = subprocess.DEVNULL,
              stderr: int | IO[Any] | None = subprocess.DEVNULL,
              cwd: str | Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``args`` and keep it for :meth:`stop_all`."""
        proc = subprocess.Popen(list(args), stdin=stdin, stdout=stdout, stderr=stderr,
                                cwd=cwd, env=env if env is not None else child_env())
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one of ours and forget it."""
        stop_process(proc)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every process still running, newest first."""
        while self._procs:
            stop_process(self._procs.pop())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()


# --- the servers ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Peer:
    """A server the bench may run: whether it is there, and if not, why
    and how to install it."""

    name: str
    available: bool
    detail: str


def find_nginx(nginx: str | None = None, module: str | None = None) -> tuple[Peer, Path, Path]:
    """nginx-rtmp: the binary and the module, from the arguments, the
    environment (``RTMPX_BENCH_NGINX``, ``RTMPX_BENCH_NGINX_MODULE``) or
    Debian's places."""
    binary = Path(nginx or os.environ.get("RTMPX_BENCH_NGINX") or NGINX)
    mod = Path(module or os.environ.get("RTMPX_BENCH_NGINX_MODULE") or NGINX_MODULE)
    missing = [str(p) for p in (binary, mod) if not p.exists()]
    if missing:
        return (Peer("nginx", False, f"nginx-rtmp not installed ({' and '.join(missing)} "
                                     f"missing): {NGINX_INSTALL}"), binary, mod)
    return Peer("nginx", True, f"{binary} with {mod}"), binary, mod


@dataclass(slots=True)
class ServerProcess:
    """One running server under test."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    command: str

    @property
    def pid(self) -> int:
        """The process id whose CPU and memory are measured."""
        return self.proc.pid

    def cpu(self) -> float:
        """CPU seconds (utime + stime) so far."""
        return cpu_seconds(self.proc.pid)

    def rss_kb(self) -> int:
        """Resident memory now, KiB."""
        return rss_kb(self.proc.pid)


def _started(name: str, procs: Processes, args: list[str], port: int, log: Path,
             cwd: Path | None = None) -> ServerProcess:
    with log.open("wb") as out:
        proc = procs.start(args, stdout=out, stderr=out, cwd=cwd)
    server = ServerProcess(name, proc, port, log, shlex.join(args))
    try:
        wait_listening(proc, port)
    except BaseException:
        procs.stop(proc)
        raise
    return server


def raise_nofile() -> tuple[int, int]:
    """Raise this process's soft descriptor limit to its hard limit (as
    nginx's ``worker_rlimit_nofile`` does for nginx); the limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


#: What the rtmpx server under test runs first: its soft descriptor limit
#: raised to the hard one (an inherited soft limit of 1024 would end the
#: saturation ramp with EMFILE near 1000 players); its workers inherit it.
_PRELUDE = ("import sys; from rtmpx.benchmark.runner import raise_nofile; raise_nofile(); ")
_MAIN = "from rtmpx.__main__ import main; sys.exit(main())"
#: How to start the rtmpx CLI on a given event loop: the CLI picks uvloop
#: whenever it is importable, so "asyncio" hides it.
LAUNCHERS = {
    None: ["-c", _PRELUDE + _MAIN],
    "asyncio": ["-c", _PRELUDE + "sys.modules['uvloop'] = None; " + _MAIN],
    "uvloop": ["-c", _PRELUDE + "import uvloop; " + _MAIN],
}


def start_rtmpx(procs: Processes, folder: Path, *, loop: str | None = None,
                name: str = "rtmpx", extra_args: Sequence[str] = ()) -> ServerProcess:
    """``python3 -m rtmpx serve`` on a free port of 127.0.0.1 (``loop``:
    None as the CLI picks it, or ``"asyncio"`` / ``"uvloop"``), with its
    soft descriptor limit at the hard one; ``extra_args`` go after the
    bench's own ``serve`` options (e.g. ``["--workers", "2"]``)."""
    port = free_port()
    args = [sys.executable, *LAUNCHERS[loop], "serve", "--host", "127.0.0.1",
            "--port", str(port), "--max-connections", str(MAX_CONNECTIONS), *extra_args]
    return _started(name, procs, args, port, folder / f"{name}.log", cwd=folder)


def nginx_config(folder: Path, port: int, module: Path) -> str:
    """The nginx-rtmp configuration of a run: one process, a live application."""
    return f"""daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {MAX_CONNECTIONS * 2};
error_log stderr warn;
pid {folder}/nginx.pid;
load_module {module};
events {{ worker_connections {MAX_CONNECTIONS}; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
        }}
    }}
}}
"""


def start_nginx(procs: Processes, folder: Path, nginx: Path, module: Path) -> ServerProcess:
    """nginx-rtmp with a generated configuration on a free port of 127.0.0.1."""
    port = free_port()
    (folder / "logs").mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(nginx_config(folder, port, module))
    args = [str(nginx), "-c", str(conf), "-p", str(folder)]
    return _started("nginx", procs, args, port, folder / "nginx.log")


def scan_log(path: Path, limit: int = 20) -> list[str]:
    """Warnings, errors and tracebacks in a server's log (the first ``limit``)."""
    notes: list[str] = []
    try:
        lines = path.read_text("utf-8", "replace").splitlines()
    except OSError:
        return notes
    for line in lines:
        low = line.lower()
        if any(k in low for k in ("traceback", "error", "warn", "exception", "alert", "crit")):
            notes.append(line.strip())
            if len(notes) >= limit:
                break
    return notes


# --- FFmpeg and its samples ------------------------------------------------------

def ffmpeg_exe() -> str | None:
    """The FFmpeg of imageio-ffmpeg, or None when it is not installed."""
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True, slots=True)
class Sample:
    """An H.264 + AAC FLV file made once by FFmpeg and cached in the temp dir."""

    path: Path
    seconds: float          # media duration (last - first timestamp)
    frames: int             # coded audio + video frames, sequence headers excluded
    bytes: int              # audio/video tag bodies

    @property
    def bitrate(self) -> float:
        """Bits per second of tag bodies."""
        return self.bytes * 8 / self.seconds if self.seconds else 0.0


def sample_cache(base: str | Path | None = None) -> Path:
    """The folder of the cached samples, ``$TMPDIR/rtmpx-bench-UID/``: made
    0700 for this user; RuntimeError when it is a symlink or another
    user's (a shared temp dir is anyone's to fill)."""
    uid = os.getuid()
    path = Path(base if base is not None else tempfile.gettempdir()) / f"rtmpx-bench-{uid}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        raise RuntimeError(f"{path} is not a folder of user {uid}: refusing to use it as the "
                           f"sample cache (remove it, or set TMPDIR elsewhere)")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def make_sample(ffmpeg: str, *, size: str, bitrate: str, seconds: float = 10.0,
                fps: int = 25) -> Sample:
    """The sample of lavfi ``testsrc2`` at ``size``/``fps``, libx264
    ultrafast at ``bitrate`` (a keyframe every second: nginx-rtmp, which
    keeps no GOP, starts a player's video at the next one) + AAC 128k, ``seconds`` long; made
    once and cached in :func:`sample_cache`."""
    from ..flv import read_tags

    cache = sample_cache()
    path = cache / f"sample-{size}-{fps}-{bitrate}-{seconds:g}s.flv"
    if not path.exists():
        tmp = path.with_name(path.stem + f".{os.getpid()}.part.flv")
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
             "-t", f"{seconds:g}",
             "-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate,
             "-maxrate", bitrate, "-bufsize", bitrate, "-g", str(fps),
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(tmp)],
            check=True, timeout=600, capture_output=True)
        tmp.rename(path)
    frames = size_bytes = 0
    first: int | None = None
    last = 0
    for tag in read_tags(path):
        if tag.is_script:
            continue
        size_bytes += len(tag.payload)
        first = tag.timestamp if first is None else first
        last = tag.timestamp
        frame = tag.frame()
        if not (frame.is_sequence_header or frame.is_end_of_sequence):
            frames += 1
    return Sample(path, (last - (first or 0)) / 1000, frames, size_bytes)


def machine() -> str:
    """CPU count and model, kernel and Python: the table's caption."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))}), {model}; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}")
