"""A screenshot of the dashboard with content: a server, two FFmpeg
publishers (one recorded), one HTTP-FLV reader, and headless Chromium
(1280x800) showing the page with ``live/cam``'s preview playing and
``live/studio``'s players opened.

    python3 bench/dashboard_screenshot.py [docs/dashboard.png] [--wait 4] [--dark]

Needs Debian's ``chromium`` (``apt-get install chromium``) and FFmpeg from
imageio-ffmpeg (``pip install -e '.[test]'``).  Every process is stopped
on the way out, every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtmpx.server import Server
from tests.server.test_dashboard import Chromium, chromium_exe

#: (stream name, FFmpeg input and encoding arguments after -re)
PUBLISHERS: list[tuple[str, list[str]]] = [
    ("cam", ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
             "-g", "30", "-b:v", "900k", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "96k"]),
    ("studio", ["-f", "lavfi", "-i", "smptehdbars=size=1280x720:rate=25",
                "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                "-g", "50", "-b:v", "1500k", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-ac", "2", "-b:a", "128k"]),
]


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@contextlib.asynccontextmanager
async def publishers(ffmpeg: str, port: int, seconds: float) -> AsyncIterator[None]:
    """FFmpeg publishing every stream of :data:`PUBLISHERS` in real time."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        for name, args in PUBLISHERS:
            procs.append(await asyncio.create_subprocess_exec(
                ffmpeg, "-hide_banner", "-loglevel", "error", "-re", *args, "-t", str(seconds),
                "-f", "flv", f"rtmp://127.0.0.1:{port}/live/{name}",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        yield
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def read_flv(url: str) -> None:
    """An HTTP-FLV viewer that reads and drops everything."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        async for _ in response.content.iter_chunked(65536):
            pass


async def wait_live(server: Server, names: Sequence[str], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not all((c := server.hub.get(("live", n))) is not None and c.live for n in names):
        if loop.time() > until:
            raise SystemExit(f"the publishers did not go live within {timeout} s")
        await asyncio.sleep(0.1)


async def shoot(out: Path, wait: float, dark: bool) -> None:
    exe = chromium_exe()
    if exe is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    ffmpeg = ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix="rtmpx-shot-") as records:
        async with Server(port=0, http_port=0, record_dir=records) as server, \
                publishers(ffmpeg, server.port, 60 + wait):
            await wait_live(server, [n for n, _ in PUBLISHERS], 20)
            base = f"http://127.0.0.1:{server.http_port}"
            reader = asyncio.ensure_future(read_flv(f"{base}/live/studio.flv"))
            try:
                async with Chromium(exe, width=1280, height=800) as browser:
                    page = browser.page
                    if dark:
                        await page.call("Emulation.setEmulatedMedia", features=[
                            {"name": "prefers-color-scheme", "value": "dark"}])
                    await page.navigate(f"{base}/?stream=live/cam")
                    await page.until("window.rtmpxPlayer && window.rtmpxPlayer.state === "
                                     "'playing'", timeout=20)
                    # open live/studio's players (the HTTP-FLV reader)
                    await page.until("document.querySelectorAll('#streams .expander').length",
                                     timeout=10)
                    await page.evaluate(
                        "[...document.querySelectorAll('#streams tr')].find((r) =>"
                        " r.textContent.includes('live/studio'))"
                        "?.querySelector('.expander')?.click()")
                    await asyncio.sleep(wait)
                    shot = await page.call("Page.captureScreenshot", 20, format="png")
                    if page.errors:
                        print("page errors:", *page.errors, sep="\n  ", file=sys.stderr)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="docs/dashboard.png", type=Path,
                        help="where the PNG goes (default: docs/dashboard.png)")
    parser.add_argument("--wait", type=float, default=4.0,
                        help="seconds of playback before the shot (default: 4)")
    parser.add_argument("--dark", action="store_true", help="the dark colour scheme")
    args = parser.parse_args(argv)
    asyncio.run(asyncio.wait_for(shoot(args.out, args.wait, args.dark), 120))


if __name__ == "__main__":
    main()
