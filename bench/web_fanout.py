"""Server CPU for N HTTP-FLV viewers against N RTMP players of one stream.

    python3 bench/web_fanout.py [--players 200] [--rounds 2] [--sample FILE.flv]

Starts ``rtmpx serve --http-port`` in a subprocess for each run; the
publisher (and, for RTMP, the players) come from the benchmark load
generator (``python -m rtmpx.benchmark.load``); HTTP-FLV viewers are plain
asyncio connections that count the bytes they get.  Each run measures the
server's CPU over 10 s; the modes alternate (this machine is shared and
noisy) and the ratio is printed.  Without ``--sample`` an H.264/AAC sample
of 640x360 at about 600 kbit/s is made with FFmpeg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOW = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


class _Viewer(asyncio.Protocol):
    received = 0

    def __init__(self, path: str) -> None:
        self.path = path

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        _Viewer.received += len(data)


async def _run(mode: str, players: int, sample: str) -> tuple[float, int]:
    """One run: (server CPU seconds over the window, bytes the viewers got)."""
    port, http = _free_port(), _free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtmpx", "--log-level", "warning", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--http-port", str(http), "--max-connections", "20000",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1.5)
        rtmp = mode == "rtmp"
        spec = {"port": port, "sample": sample, "publishers": 1,
                "players": players if rtmp else 0, "warmup": 2.0,
                "seconds": WINDOW if rtmp else WINDOW + 6}
        load = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtmpx.benchmark.load", json.dumps(spec),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert load.stdout is not None
        try:
            while b'"start"' not in (line := await load.stdout.readline()):
                if not line:
                    raise RuntimeError("the load generator ended early")
            if rtmp:
                before = _cpu(server.pid)
                while b'"stop"' not in (line := await load.stdout.readline()):
                    if not line:
                        raise RuntimeError("the load generator ended early")
                item = json.loads(line)
                return _cpu(server.pid) - before, int(item.get("rx_bytes", 0))
            loop = asyncio.get_running_loop()
            _Viewer.received = 0
            for _ in range(players):
                await loop.create_connection(lambda: _Viewer("/live/bench0.flv"),
                                             "127.0.0.1", http)
            await asyncio.sleep(2.0)  # every viewer past its first keyframe
            before, got = _cpu(server.pid), _Viewer.received
            await asyncio.sleep(WINDOW)
            return _cpu(server.pid) - before, _Viewer.received - got
        finally:
            if load.returncode is None:
                load.kill()
            await load.wait()
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)


def _sample(folder: Path) -> str:
    import imageio_ffmpeg

    path = folder / "sample.flv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "10",
                    "-c:v", "libx264", "-preset", "veryfast", "-b:v", "500k", "-g", "50",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(path)],
                   check=True, timeout=120)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sample", help="an FLV file to publish in a loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sample = args.sample or _sample(Path(tmp))
        cpu: dict[str, list[float]] = {"rtmp": [], "http-flv": []}
        for _ in range(args.rounds):
            for mode, found in cpu.items():
                began = time.monotonic()
                seconds, received = asyncio.run(_run(mode, args.players, sample))
                found.append(seconds)
                print(f"{mode:8} {args.players} players: server CPU {seconds:.2f} s over "
                      f"{WINDOW:g} s, players got {received / 1e6:.1f} MB "
                      f"({time.monotonic() - began:.0f} s run)", flush=True)
    ratio = statistics.median(cpu["http-flv"]) / statistics.median(cpu["rtmp"])
    print(f"HTTP-FLV / RTMP server CPU: {ratio:.2f}x (medians)")


if __name__ == "__main__":
    main()
