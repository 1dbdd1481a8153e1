"""Publish-to-browser latency of the dashboard's preview (live fMP4 over a
WebSocket into Media Source Extensions), in headless Chromium.

    python3 bench/web_latency.py [--seconds 20] [--warmup 3] [--size 640x360] [--fps 25]

Method:

1. FFmpeg encodes a test pattern (H.264 ultrafast/zerolatency, no
   B-frames, a keyframe a second, AAC) into an FLV file; its tags are read
   with :func:`rtmpx.flv.read_tags`.
2. The rtmpx client publishes those tags to an in-process server, paced in
   real time (tag ``ts`` goes out at ``start + ts``), noting the wall clock
   (``time.time()``) at which each video timestamp was sent.
3. The dashboard opens ``/?stream=live/lat`` (its preview plays
   ``/live/lat.mp4``); in the page ``video.requestVideoFrameCallback``
   records, for every frame composited, its ``mediaTime`` and the wall
   clock at which it is expected on screen
   (``performance.timeOrigin + metadata.expectedDisplayTime``).
4. Media time -> RTMP timestamp: the packager's timeline starts at 0 at the
   first message it was fed; its offset (``Packager._offset``, read from
   the in-process server: ``server.http.hls.outputs[key][0].packager``)
   gives ``rtmp_ts = round(mediaTime * 1000) - offset``.  The bench checks
   that the offset did not move (a timestamp break would move it).
5. The browser's and Python's wall clocks (same machine) are compared once
   through ``Runtime.evaluate`` (midpoint of the round trip) and the
   difference is taken out.

Latency of a frame = shown - sent.  Frames of the first ``--warmup``
seconds (start-up, the first jump to the live edge) are not counted.  The
figure includes the packager's part duration (a part goes out once
complete: ~0.5 s), the WebSocket, the page's append queue, the player's
live-edge policy (it keeps ~0.3-1.5 s buffered) and the compositor; the
publisher, server and browser share one (noisy, 2-core) machine and the
server shares its event loop with the publisher.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rtmpx
from rtmpx.flv import Tag, read_tags
from rtmpx.server import Server
from tests.server.test_dashboard import Chromium, Page, chromium_exe

KEY = ("live", "lat")

#: Installed in the page: every composited frame's media time and when it shows.
FRAME_PROBE = """(() => {
  const video = document.getElementById('video');
  window.rtmpxFrames = [];
  const seen = (now, meta) => {
    if (window.rtmpxFrames.length < 20000) {
      const b = video.buffered;
      const ahead = b.length ? b.end(b.length - 1) - meta.mediaTime : 0;
      window.rtmpxFrames.push([meta.mediaTime, performance.timeOrigin + meta.expectedDisplayTime,
                               ahead]);
    }
    video.requestVideoFrameCallback(seen);
  };
  video.requestVideoFrameCallback(seen);
  return true;
})()"""


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def encode(path: Path, seconds: float, size: str, fps: int) -> list[Tag]:
    """An H.264/AAC FLV file of ``seconds`` made by FFmpeg; its tags."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
         "-g", str(fps), "-pix_fmt", "yuv420p", "-b:v", "800k",
         "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(path)],
        check=True, timeout=120, capture_output=True)
    return read_tags(path)


async def publish(url: str, tags: list[Tag], sent: dict[int, float]) -> None:
    """Publish ``tags`` paced in real time; the wall clock of each video
    timestamp's send goes into ``sent``."""
    loop = asyncio.get_running_loop()
    async with rtmpx.connect(url, timeout=10) as client, \
            await client.publish(KEY[1]) as stream:
        start = loop.time()
        for tag in tags:
            delay = start + tag.timestamp / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if tag.type_id == 9:
                sent.setdefault(tag.timestamp, time.time())
                await stream.send_video(tag.timestamp, tag.payload)
            elif tag.type_id == 8:
                await stream.send_audio(tag.timestamp, tag.payload)


def packager_offset(server: Server) -> int | None:
    """The packager's ``media ms = rtmp ts + offset`` (None before it starts)."""
    assert server.http is not None and server.http.hls is not None
    found = server.http.hls.outputs.get(KEY)  # type: ignore[call-overload]
    packager = found[0].packager if found is not None else None
    offset = getattr(packager, "_offset", None) if packager is not None else None
    return int(offset) if offset is not None else None


async def clock_difference(page: Page) -> float:
    """Browser wall clock minus ours, in seconds (midpoint of a round trip;
    the smallest of a few tries)."""
    best: tuple[float, float] | None = None
    for _ in range(5):
        before = time.time()
        theirs = await page.evaluate("performance.timeOrigin + performance.now()") / 1000
        after = time.time()
        if best is None or after - before < best[0]:
            best = (after - before, theirs - (before + after) / 2)
    assert best is not None
    return best[1]


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(seconds: float, warmup: float, size: str, fps: int) -> dict[str, Any]:
    exe = chromium_exe()
    if exe is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="rtmpx-latency-") as folder:
        tags = await asyncio.to_thread(encode, Path(folder) / "in.flv",
                                       seconds + warmup + 1, size, fps)
    sent: dict[int, float] = {}
    async with Server(port=0, http_port=0) as server, Chromium(exe) as browser:
        publisher = asyncio.ensure_future(
            publish(f"rtmp://127.0.0.1:{server.port}/{KEY[0]}", tags, sent))
        try:
            loop = asyncio.get_running_loop()
            until = loop.time() + 15
            while not ((c := server.hub.get(KEY)) is not None and c.live):
                if loop.time() > until or publisher.done():
                    raise SystemExit("the publisher did not go live")
                await asyncio.sleep(0.05)
            page = browser.page
            await page.navigate(f"http://127.0.0.1:{server.http_port}/?stream=live/lat")
            await page.until("document.getElementById('video') !== null", timeout=10)
            await page.evaluate(FRAME_PROBE)
            skew = await clock_difference(page)
            await page.until("window.rtmpxPlayer && window.rtmpxPlayer.state === 'playing'",
                             timeout=20)
            offset = packager_offset(server)
            await asyncio.wait_for(asyncio.shield(publisher), seconds + warmup + 30)
            frames: list[list[float]] = await page.evaluate("window.rtmpxFrames", timeout=30)
            info = await page.evaluate("window.rtmpxPlayer.info()")
            offset_after = packager_offset(server)
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
    if offset is None or offset != offset_after:
        raise SystemExit(f"the packager's offset moved ({offset} -> {offset_after}): "
                         "timestamps broke, no mapping")
    first_sent = min(sent.values())
    latencies, aheads = [], []
    for media_time, shown_ms, ahead in frames:
        ts = round(media_time * 1000) - offset
        when = sent.get(ts)
        if when is None or when - first_sent < warmup:
            continue
        latencies.append(shown_ms / 1000 - skew - when)
        aheads.append(ahead)
    if not latencies:
        raise SystemExit("no frame could be matched to its send time")
    return {"frames": len(latencies), "median": statistics.median(latencies),
            "p90": percentile(latencies, 0.9), "min": min(latencies), "max": max(latencies),
            "skew": skew, "offset": offset, "player": info,
            "ahead": statistics.median(aheads), "ahead_min": min(aheads)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds (20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not counted (3)")
    parser.add_argument("--size", default="640x360", help="picture size (640x360)")
    parser.add_argument("--fps", type=int, default=25, help="frame rate (25)")
    args = parser.parse_args(argv)
    result = asyncio.run(asyncio.wait_for(
        measure(args.seconds, args.warmup, args.size, args.fps), args.seconds + 180))
    player = result["player"]
    print(f"publish-to-browser latency, live fMP4 over WebSocket + MSE "
          f"({args.size} H.264 {args.fps} fps + AAC, Chromium headless):")
    print(f"  frames {result['frames']}  median {result['median'] * 1000:.0f} ms  "
          f"p90 {result['p90'] * 1000:.0f} ms  min {result['min'] * 1000:.0f} ms  "
          f"max {result['max'] * 1000:.0f} ms")
    print(f"  browser clock - ours {result['skew'] * 1000:+.1f} ms; packager offset "
          f"{result['offset']} ms; buffered ahead of the shown frame: median "
          f"{result['ahead'] * 1000:.0f} ms, min {result['ahead_min'] * 1000:.0f} ms")
    print(f"  player: {player['parts']} parts, "
          f"{player['liveJumps']} live-edge jumps, {player['droppedFrames']} frames dropped, "
          f"{player['evictions']} evictions, {player['buffered']:.1f} s buffered at the end")


if __name__ == "__main__":
    main()
