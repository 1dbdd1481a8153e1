"""Real peers for interop tests: FFmpeg from PyPI, Debian's tools if present.

Every helper is bounded in time; a missing peer makes the test skip and
say why.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def ffmpeg_exe() -> str:
    """The modern FFmpeg (9.x) from the imageio-ffmpeg package."""
    try:
        import imageio_ffmpeg
    except ImportError:
        pytest.skip("imageio-ffmpeg is not installed (pip install -e '.[test]')")
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def debian_tool(name: str) -> str:
    """A Debian-packaged tool (ffmpeg 5.1, ffprobe, rtmpdump, nginx) or skip."""
    for candidate in (f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install it; .ci/run does)")
    return found


def listener() -> socket.socket:
    """A TCP socket listening on 127.0.0.1 on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def lavfi_publish_args(seconds: float = 2.0, rate: int = 25, gop: int = 10) -> list[str]:
    """FFmpeg input + encoding arguments for a small H.264/AAC test stream."""
    return [
        "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={rate}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", str(gop), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k",
    ]


def start(args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start a peer process with its output captured."""
    return subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> tuple[int, str]:
    """Wait for a peer to end (killing it after ``timeout``); its code and stderr."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return proc.returncode, err.decode("utf-8", "replace")


def packet_count(ffmpeg: str, path: Path, stream: str = "v:0") -> int:
    """Packets of one stream of a media file, as FFmpeg reads them."""
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy",
         "-f", "framecrc", "-"],
        capture_output=True, text=True, timeout=60, check=True)
    return sum(1 for line in out.stdout.splitlines() if line and not line.startswith("#"))
