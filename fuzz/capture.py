"""Capture real RTMP sessions into the seed corpus (a tool run by hand).

::

    python3 fuzz/capture.py            # about 20 s; rewrites tests/corpus/*/ffmpeg*-, rtmpdump-*

Starts ``python3 -m rtmpx serve`` (this tree's rtmpx) on a free loopback
port, and a recording TCP proxy in front of it; then, through the proxy:

1. FFmpeg 9 (``imageio_ffmpeg``) and ``rtmpdump`` start playing
   ``live/cap`` (they wait for it), then FFmpeg 9 publishes a 2 s
   ``testsrc`` + ``sine`` H.264/AAC stream to it;
2. Debian's FFmpeg 5.1 (``/usr/bin/ffmpeg``) plays ``live/cap51`` while it
   also publishes it (when installed).

Each connection's client->server and server->client byte streams (the
first 64 KiB) go to the corpora of the session, chunk and handshake
harnesses; the AMF bodies of its command/data messages to amf0/amf3; the
first audio/video bodies to media; FFmpeg 9's recording of what it played
to flv.  Names are ``<peer>-<role>-<direction>``; the bytes differ from run
to run (random handshakes, timing), the set of files does not.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
sys.path[:0] = [str(FUZZ), str(ROOT)]

from rtmpx import _chunk_py
from rtmpx.errors import ProtocolError

CORPUS = ROOT / "tests" / "corpus"
CAP = 64 * 1024  # bytes kept per direction for the raw session seeds
CAP_CHUNK = 32 * 1024  # bytes kept of the chunk stream for chunk / *_post_hs seeds
HANDSHAKE = 1 + 1536 + 1536


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    """A TCP proxy that keeps the first bytes of each direction, per connection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.pending: list[str] = []  # labels of the connections to come, in order
        self.records: dict[str, dict[str, bytearray]] = {}
        self.accepted = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        label = self.pending.pop(0) if self.pending else f"extra{len(self.records)}"
        record = self.records.setdefault(label, {"c2s": bytearray(), "s2c": bytearray()})
        self.accepted.set()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        await asyncio.gather(self.pump(reader, up_writer, record["c2s"]),
                             self.pump(up_reader, writer, record["s2c"]))

    @staticmethod
    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bytearray) -> None:
        try:
            while data := await src.read(65536):
                if len(keep) < CAP:
                    keep += data[:CAP - len(keep)]
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                dst.close()
            except (ConnectionError, OSError):
                pass

    async def expect(self, label: str, proc: asyncio.subprocess.Process) -> None:
        """Start waiting for ``proc``'s connection, and wait until it is accepted."""
        self.accepted.clear()
        self.pending.append(label)
        try:
            await asyncio.wait_for(self.accepted.wait(), 15)
        except TimeoutError:
            err = proc.stderr and (await proc.stderr.read()).decode(errors="replace")
            raise SystemExit(f"{label} did not connect: {err}") from None


async def run(tmp: Path) -> dict[str, dict[str, bytearray]]:
    import imageio_ffmpeg

    ffmpeg9 = imageio_ffmpeg.get_ffmpeg_exe()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtmpx", "serve", "--host", "127.0.0.1", "--port", str(port),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            await asyncio.sleep(0.1)
    rec = Recorder(port)
    proxy = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    url = f"rtmp://127.0.0.1:{proxy.sockets[0].getsockname()[1]}/live"
    source = ["-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi",
              "-i", "sine=frequency=440:sample_rate=44100", "-t", "2", "-c:v", "libx264",
              "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
              "-b:a", "64k", "-f", "flv"]
    quiet = ["-hide_banner", "-loglevel", "error", "-y"]
    procs = []

    async def start(label: str, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        procs.append(proc)
        await rec.expect(label, proc)

    try:
        await start("ffmpeg9-play", ffmpeg9, *quiet, "-i", f"{url}/cap", "-t", "3", "-c",
                    "copy", "-f", "flv", str(tmp / "played.flv"))
        if shutil.which("rtmpdump"):
            await start("rtmpdump-play", "rtmpdump", "-q", "-v", "-r", f"{url}/cap", "-B", "3",
                        "-o", str(tmp / "rtmpdump.flv"))
        await start("ffmpeg9-publish", ffmpeg9, *quiet, *source, f"{url}/cap")
        await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=30)
        if Path("/usr/bin/ffmpeg").exists():
            await start("ffmpeg51-play", "/usr/bin/ffmpeg", *quiet, "-i", f"{url}/cap51",
                        "-t", "3", "-c", "copy", "-f", "flv", "-")
            await start("ffmpeg51-publish", "/usr/bin/ffmpeg", *quiet, *source, f"{url}/cap51")
            await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=30)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        proxy.close()
        server.terminate()
        await server.wait()
    played = tmp / "played.flv"
    if played.exists():
        rec.records["ffmpeg9-play"]["flv"] = bytearray(played.read_bytes()[:CAP_CHUNK])
    return rec.records


def write(harness: str, name: str, data: bytes) -> None:
    folder = CORPUS / harness
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def messages(stream: bytes) -> list[_chunk_py.Message]:
    """Messages of a chunk stream that may be cut anywhere."""
    reader = _chunk_py.ChunkReader()
    try:
        return reader.feed(stream)
    except ProtocolError:  # a cut stream; what came before is enough
        return []


def save(records: dict[str, dict[str, bytearray]]) -> None:
    for folder in CORPUS.iterdir():  # the previous capture's files
        for old in folder.glob("ffmpeg*"):
            old.unlink()
        for old in folder.glob("rtmpdump*"):
            old.unlink()
    for label, rec in sorted(records.items()):
        c2s, s2c = bytes(rec["c2s"]), bytes(rec["s2c"])
        write("server_session", f"{label}-c2s", c2s)
        write("client_session", f"{label}-s2c", s2c)
        write("server_session_post_hs", f"{label}-c2s", c2s[HANDSHAKE:HANDSHAKE + CAP_CHUNK])
        write("client_session_post_hs", f"{label}-s2c", s2c[HANDSHAKE:HANDSHAKE + CAP_CHUNK])
        write("chunk", f"{label}-c2s", c2s[HANDSHAKE:HANDSHAKE + CAP_CHUNK])
        write("chunk", f"{label}-s2c", s2c[HANDSHAKE:HANDSHAKE + CAP_CHUNK])
        write("handshake_server", f"{label}-c2s", c2s[:HANDSHAKE + 64])
        write("handshake_client", f"{label}-s2c", s2c[:HANDSHAKE + 64])
        if "flv" in rec:
            write("flv", label, bytes(rec["flv"]))
        media_count = 0
        for direction, stream in (("c2s", c2s), ("s2c", s2c)):
            amf_seen: set[bytes] = set()
            for i, m in enumerate(messages(stream[HANDSHAKE:])):
                if m.type_id in (18, 20) and m.payload not in amf_seen and len(amf_seen) < 8:
                    amf_seen.add(m.payload)
                    write("amf0", f"{label}-{direction}-{i:03}", m.payload)
                elif m.type_id in (15, 17) and m.payload[1:] not in amf_seen:
                    amf_seen.add(m.payload[1:])  # AMF3 commands: a 0 byte, then AMF0
                    write("amf0", f"{label}-{direction}-{i:03}", m.payload[1:])
                elif m.type_id in (8, 9) and media_count < 6:
                    media_count += 1
                    write("media", f"{label}-{direction}-{i:03}", m.payload[:256])


def main() -> None:
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        records = asyncio.run(run(Path(tmp)))
    save(records)
    for label, rec in sorted(records.items()):
        print(f"{label:18} c2s {len(rec['c2s']):6} s2c {len(rec['s2c']):6}")
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"corpus: {total} bytes; {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
