"""The dashboard in a real browser: Debian's Chromium, headless, driven over
the DevTools protocol (aiohttp's WebSocket client) while FFmpeg publishes.

The page (``rtmpx/server/static``) polls ``/stats`` and plays a stream's
live fMP4 (``/{app}/{name}.mp4`` over a WebSocket) through Media Source
Extensions.  Skipped without ``chromium`` (``apt-get install chromium``).

:class:`Chromium` and :class:`Page` are also what
``bench/dashboard_screenshot.py`` and ``bench/web_latency.py`` drive.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import pytest

from rtmpx.server import Server

from ..peers import ffmpeg_exe, publish_frames, start, stop, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

#: Where Debian (and others) put the browser.
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def chromium_exe() -> str | None:
    """Chromium's launcher, or None."""
    for candidate in CHROMIUM:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def chromium_or_skip() -> str:
    exe = chromium_exe()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


class Page:
    """One page target over its DevTools WebSocket: commands, and the
    page's errors (exceptions, console errors, error log entries)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.errors: list[str] = []
        self.console: list[str] = []
        #: callbacks for events by method (e.g. ``Fetch.requestPaused``)
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                else:
                    self._event(data.get("method", ""), data.get("params", {}))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("DevTools connection closed"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        handler = self.handlers.get(method)
        if handler is not None:  # it may send commands: not in the reader's loop
            task = asyncio.ensure_future(handler(params))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.errors.append(f"exception: {exception.get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in
                            params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
            if params.get("type") in ("error", "assert"):
                self.errors.append(f"console.{params.get('type')}: {text}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())

    async def call(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        """Send a command; its result (AssertionError on a protocol error)."""
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        await self.ws.send_str(json.dumps({"id": self._next, "method": method,
                                           "params": params}))
        try:
            answer = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(self._next, None)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str, timeout: float = 10.0) -> Any:
        """A JavaScript expression's value (JSON-able; promises awaited)."""
        result = await self.call("Runtime.evaluate", timeout, expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def until(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll ``expression`` every 100 ms until it is truthy; its value
        (AssertionError with the player's state after ``timeout``).  A poll
        that fails or hangs (a document going away, a starved browser) is
        tried again until then."""
        deadline = time.monotonic() + timeout
        problem: BaseException | None = None
        while True:
            try:
                # a command sent while a document goes away may get no answer: ask again
                left = deadline - time.monotonic()
                value = await self.evaluate(expression, min(2.0, max(0.5, left)))
                if value:
                    return value
            except (AssertionError, TimeoutError) as exc:
                problem = exc
            if time.monotonic() > deadline:
                try:
                    info = await self.evaluate(PLAYER, 5)
                except (AssertionError, TimeoutError) as exc:
                    info = exc
                raise AssertionError(f"not true within {timeout} s: {expression}; "
                                     f"player: {info}; last problem: {problem!r}; "
                                     f"errors: {self.errors}")
            await asyncio.sleep(0.1)

    async def navigate(self, url: str) -> None:
        """Open ``url``; returns once the new document is there."""
        await self.call("Page.navigate", url=url)
        await self.until(f"location.href === {json.dumps(url)} "
                         "&& document.readyState !== 'loading'", timeout=10)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class Chromium:
    """Headless Chromium on a free DevTools port, with one page
    (:attr:`page`, at ``width`` x ``height``); stopped (killed if it must
    be) on exit."""

    def __init__(self, exe: str, *, width: int = 1280, height: int = 800,
                 timeout: float = 20.0) -> None:
        self.exe = exe
        self.width = width
        self.height = height
        self.timeout = timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.http: aiohttp.ClientSession | None = None
        self._page: Page | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def page(self) -> Page:
        assert self._page is not None, "Chromium is not started"
        return self._page

    async def __aenter__(self) -> Self:
        self._dir = tempfile.TemporaryDirectory(prefix="rtmpx-chromium-", ignore_cleanup_errors=True)
        folder = Path(self._dir.name)
        try:
            with (folder / "stderr.log").open("wb") as log:
                # its own process group: the launcher script and every helper stop together
                self.proc = await asyncio.create_subprocess_exec(
                    self.exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                     "--remote-debugging-port=0", f"--user-data-dir={folder / 'profile'}",
                     "--autoplay-policy=no-user-gesture-required", "--no-first-run",
                     "--mute-audio", f"--window-size={self.width},{self.height}",
                     "about:blank",
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            port = await self._devtools_port(folder)
            self.http = aiohttp.ClientSession()
            ws_url = await self._page_url(port)
            ws = await asyncio.wait_for(
                self.http.ws_connect(ws_url, max_msg_size=64 * 2**20), self.timeout)
            self._page = Page(ws)
            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                await self.page.call(domain)
            await self.page.call("Emulation.setDeviceMetricsOverride", width=self.width,
                                 height=self.height, deviceScaleFactor=1, mobile=False)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def stderr(self) -> str:
        """What the browser printed (for failure messages)."""
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "stderr.log"
        return path.read_text("utf-8", "replace")[-4000:] if path.exists() else ""

    async def _devtools_port(self, folder: Path) -> int:
        """The port Chromium wrote to ``DevToolsActivePort`` (first line)."""
        assert self.proc is not None
        path = folder / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while True:
            if path.exists():
                lines = path.read_text().split()
                if lines and lines[0].isdigit():
                    return int(lines[0])
            if self.proc.returncode is not None:
                raise AssertionError(f"chromium exited ({self.proc.returncode}): {self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"chromium gave no DevTools port: {self.stderr()}")
            await asyncio.sleep(0.05)

    async def _page_url(self, port: int) -> str:
        """The DevTools WebSocket of the first page target."""
        assert self.http is not None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                async with self.http.get(f"http://127.0.0.1:{port}/json/list",
                                         timeout=aiohttp.ClientTimeout(total=5)) as response:
                    targets = await response.json(content_type=None)
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"chromium has no page target: {self.stderr()}")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """Stop the browser (SIGTERM to its group, SIGKILL after 5 s)."""
        if self._page is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._page.close(), 5)
            self._page = None
        if self.http is not None:
            await self.http.close()
            self.http = None
        proc, self.proc = self.proc, None
        if proc is not None:
            await _stop_group(proc)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


async def _stop_group(proc: asyncio.subprocess.Process) -> None:
    """Terminate a process and its group; kill them after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), wait)
            break
        except TimeoutError:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # helpers left behind by the launcher


#: FFmpeg's video encoders and options by codec: small, a keyframe a second (25 fps).
ENCODERS = {
    "h264": ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25"],
    # FFmpeg 9 sends HEVC as Enhanced RTMP
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast",
             "-x265-params", "keyint=25:min-keyint=25:log-level=error"],
}


def ffmpeg_publisher(ffmpeg: str, url: str, seconds: float, *, size: str = "160x120",
                     codec: str = "h264") -> subprocess.Popen[bytes]:
    """FFmpeg publishing a test pattern (``codec``, ``size``, 25 fps) and
    AAC in real time for ``seconds``."""
    return start([ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
                  "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                  "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                  "-t", str(seconds), *ENCODERS[codec], "-pix_fmt", "yuv420p",
                  "-c:a", "aac", "-b:a", "64k", "-f", "flv", url])


def end(proc: subprocess.Popen[bytes]) -> None:
    """Stop a publisher early (terminate, kill after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
    stop(proc, 10)


async def end_publishers(server: Server, *procs: subprocess.Popen[bytes] | None) -> None:
    """Stop publishers, and give the server 5 s to see them go (so that
    its shutdown does not race their disconnection)."""
    for proc in procs:
        if proc is not None:
            await asyncio.to_thread(end, proc)
    with contextlib.suppress(AssertionError):
        await wait_for(lambda: not server.connections, timeout=5)


#: The player's state, as the page's API shows it.
PLAYER = "window.rtmpxPlayer && window.rtmpxPlayer.info()"
VIDEO = "document.getElementById('video')"


async def assert_plays(page: Page) -> dict[str, Any]:
    """The preview plays: its time advances, frames are decoded."""
    await page.until(f"window.rtmpxPlayer && window.rtmpxPlayer.state === 'playing' "
                     f"&& {VIDEO}.currentTime > 0", timeout=15)
    first = await page.evaluate(f"{VIDEO}.currentTime")
    await asyncio.sleep(1.0)
    second = await page.evaluate(f"{VIDEO}.currentTime")
    assert second - first > 0.5, (first, second)
    frames = await page.evaluate(f"{VIDEO}.getVideoPlaybackQuality().totalVideoFrames")
    assert frames > 0
    info: dict[str, Any] = await page.evaluate(PLAYER)
    assert info["bufferAhead"] < 1.6, info  # at the live edge
    return info


async def stream_keys(page: Page) -> list[str]:
    """The stream names the table lists."""
    keys: list[str] = await page.evaluate(
        "[...document.querySelectorAll('#streams td.key .link')].map((b) => b.textContent)")
    return keys


#: A stream name a hostile publisher might pick: shown as text, never parsed.
HOSTILE = "<img src=x onerror=window.pwned=1>"


async def test_the_dashboard_lists_and_plays_a_live_h264_stream() -> None:
    exe = chromium_or_skip()
    ffmpeg = ffmpeg_exe()
    async with Chromium(exe) as browser:
        page = browser.page
        async with Server(port=0, http_port=0) as server:
            publisher = ffmpeg_publisher(ffmpeg, f"rtmp://127.0.0.1:{server.port}/live/cam", 12)
            hostile = asyncio.ensure_future(publish_frames(
                f"rtmp://127.0.0.1:{server.port}/live", 400, name=HOSTILE, interval=0.04))
            try:
                await wait_for(lambda: (c := server.hub.get(("live", "cam"))) is not None
                               and c.live, timeout=15)
                await page.navigate(f"http://127.0.0.1:{server.http_port}/?stream=live/cam")
                info = await assert_plays(page)
                assert info["codecs"].startswith("avc1.") and info["parts"] > 0
                await page.until("document.querySelectorAll('#streams td.key .link').length"
                                 " === 2", timeout=5)
                assert sorted(await stream_keys(page)) == sorted(["live/cam", f"live/{HOSTILE}"])
                assert await page.evaluate("document.querySelector('#streams img') === null "
                                           "&& window.pwned === undefined")
                assert await page.evaluate("document.title") == "rtmpx"
                assert await page.evaluate("document.getElementById('preview').hidden") is False
                urls = await page.evaluate("document.getElementById('urls').textContent")
                assert f"ws://127.0.0.1:{server.http_port}/live/cam.flv" in urls
                assert f"http://127.0.0.1:{server.http_port}/live/cam.m3u8" in urls
                totals = await page.evaluate("document.getElementById('t-publishers').textContent")
                assert totals == "2"
                # closed, then opened again from the table
                await page.evaluate("document.getElementById('preview-close').click()")
                assert await page.evaluate("document.getElementById('preview').hidden "
                                           "&& location.search === '' && !window.rtmpxPlayer")
                await page.evaluate("[...document.querySelectorAll('#streams td.key .link')]"
                                    ".find((b) => b.textContent === 'live/cam').click()")
                assert await page.evaluate("location.search") == "?stream=live/cam"
                await assert_plays(page)
                assert page.errors == [], page.errors
            finally:
                hostile.cancel()
                await asyncio.gather(hostile, return_exceptions=True)
                await end_publishers(server, publisher)
        # the server is gone: the page says so and keeps polling
        await page.until("document.getElementById('status').textContent"
                         ".startsWith('server unreachable')", timeout=8)


async def test_the_preview_says_plainly_when_it_cannot_decode_hevc() -> None:
    exe = chromium_or_skip()
    ffmpeg = ffmpeg_exe()
    async with Server(port=0, http_port=0) as server:
        publisher = ffmpeg_publisher(ffmpeg, f"rtmp://127.0.0.1:{server.port}/live/hevc", 12,
                                     codec="hevc")
        try:
            async with Chromium(exe) as browser:
                await wait_for(lambda: (c := server.hub.get(("live", "hevc"))) is not None
                               and c.live, timeout=15)
                page = browser.page
                await page.navigate(f"http://127.0.0.1:{server.http_port}/?stream=live/hevc")
                codecs = await page.until(f"({PLAYER} || {{}}).codecs", timeout=15)
                video = codecs.split(",")[0]
                assert video.startswith(("hvc1.", "hev1.")), codecs
                supported = await page.evaluate(
                    f"MediaSource.isTypeSupported('video/mp4; codecs=\"{video}\"')")
                if supported:
                    await assert_plays(page)
                else:
                    await page.until("window.rtmpxPlayer.state === 'unsupported'", timeout=5)
                    shown = await page.evaluate(
                        "(() => { const m = document.getElementById('player-message');"
                        " return m.hidden ? '' : m.textContent; })()")
                    assert shown == (f"This browser cannot decode {video} (HEVC) "
                                     "through Media Source Extensions."), shown
                    state = await page.evaluate(
                        "document.getElementById('player-state').textContent")
                    assert state == "unsupported"
                assert "live/hevc" in await stream_keys(page)
                assert page.errors == [], page.errors
        finally:
            await end_publishers(server, publisher)


#: Makes the 12th append fail as a full browser buffer would.
QUOTA_ONCE = """(() => {
  const append = SourceBuffer.prototype.appendBuffer;
  let calls = 0;
  SourceBuffer.prototype.appendBuffer = function (data) {
    calls += 1;
    if (calls === 12) throw new DOMException('full', 'QuotaExceededError');
    return append.call(this, data);
  };
})()"""


async def test_a_full_browser_buffer_makes_room_and_plays_on() -> None:
    exe = chromium_or_skip()
    ffmpeg = ffmpeg_exe()
    async with Server(port=0, http_port=0) as server, Chromium(exe) as browser:
        publisher = ffmpeg_publisher(ffmpeg, f"rtmp://127.0.0.1:{server.port}/live/full", 14)
        try:
            page = browser.page
            await page.call("Page.addScriptToEvaluateOnNewDocument", source=QUOTA_ONCE)
            await wait_for(lambda: (c := server.hub.get(("live", "full"))) is not None
                           and c.live, timeout=15)
            await page.navigate(f"http://127.0.0.1:{server.http_port}/?stream=live/full")
            await page.until("window.rtmpxPlayer && window.rtmpxPlayer.parts >= 13", timeout=15)
            info = await assert_plays(page)
            assert info["evictions"] == 1 and info["history"][-1] == "playing", info
            assert page.errors == [], page.errors
        finally:
            await end_publishers(server, publisher)


#: A /stats answer with wrong types and markup everywhere: the page shows
#: what it can as text and skips the rest.
MALFORMED = {
    "uptime": "long", "connections": None, "publishers": {}, "bytes_in": -1,
    "streams": [None, 5, "live/text", {
        "key": "<b>k</b>/x", "live": True,
        "publisher": {"peer": "<script>window.pwned=1</script>", "bytes": "many",
                      "seconds": [], "paused": "yes"},
        "video": {"codec": "<i>v</i>", "width": "1", "height": None, "fps": {}},
        "audio": "aac",
        "players": [None, 7, {"peer": "<img src=x onerror=window.pwned=1>", "protocol": 5,
                              "behind_seconds": "9", "queued_bytes": None, "dropped": "x"}],
        "recordings": [{"path": "<svg onload=window.pwned=1>"}, None, {"path": 3}],
        "metadata": {"width": "<b>", "framerate": None},
    }, {"app": "a", "name": "b", "players": "many", "recordings": {},
        "audio": {"codec": "constructor", "sample_rate": "x"}}],
}


async def test_the_dashboard_shows_a_malformed_stats_answer_as_text() -> None:
    exe = chromium_or_skip()
    async with Server(port=0, http_port=0) as server, Chromium(exe) as browser:
        page = browser.page
        body = base64.b64encode(json.dumps(MALFORMED).encode()).decode()

        async def answer(params: dict[str, Any]) -> None:
            await page.call("Fetch.fulfillRequest", requestId=params["requestId"],
                            responseCode=200, body=body, responseHeaders=[
                                {"name": "Content-Type", "value": "application/json"}])

        page.handlers["Fetch.requestPaused"] = answer
        await page.call("Fetch.enable", patterns=[{"urlPattern": "*/stats"}])
        await page.navigate(f"http://127.0.0.1:{server.http_port}/")
        await page.until("document.querySelectorAll('#streams .expander').length === 1",
                         timeout=5)
        await page.evaluate("document.querySelector('#streams .expander').click()")
        await page.until("document.querySelector('#streams table.players') !== null", timeout=5)
        await asyncio.sleep(1.2)  # one more poll, with the players open
        assert await stream_keys(page) == ["<b>k</b>/x", "a/b"]
        text = await page.evaluate("document.getElementById('streams').textContent")
        for shown in ("<script>window.pwned=1</script>", "<img src=x onerror=window.pwned=1>",
                      "<svg onload=window.pwned=1>", "<i>v</i>"):
            assert shown in text
        assert "constructor" in text and "function" not in text
        assert await page.evaluate(
            "document.querySelector('#streams img, #streams script, #streams svg, "
            "#streams b, #streams i') === null && window.pwned === undefined")
        assert await page.evaluate("document.getElementById('status').textContent") \
            == "live · polling every second"
        assert page.errors == [], page.errors


@pytest.mark.parametrize("change_type", [True, False], ids=["changeType", "recreate"])
async def test_the_preview_follows_a_new_publisher_with_another_codec(change_type: bool) -> None:
    exe = chromium_or_skip()
    ffmpeg = ffmpeg_exe()
    async with Server(port=0, http_port=0) as server, Chromium(exe) as browser:
        url = f"rtmp://127.0.0.1:{server.port}/live/again"
        first = second = None
        try:
            page = browser.page
            if not change_type:  # a browser without SourceBuffer.changeType
                await page.call("Page.addScriptToEvaluateOnNewDocument",
                                source="delete SourceBuffer.prototype.changeType")
            # opened before anything publishes: the preview waits
            await page.navigate(f"http://127.0.0.1:{server.http_port}/?stream=live/again")
            assert await page.evaluate("'changeType' in SourceBuffer.prototype") is change_type
            await page.until("window.rtmpxPlayer && window.rtmpxPlayer.state === 'waiting'")
            first = ffmpeg_publisher(ffmpeg, url, 5.0)
            before = await assert_plays(page)
            # the stream ends: the server closes the socket, the player waits
            await asyncio.to_thread(stop, first, 15)
            await page.until("window.rtmpxPlayer.state === 'ended'", timeout=10)
            # a new publisher, another picture size (so other codec parameters)
            second = ffmpeg_publisher(ffmpeg, url, 8.0, size="320x240")
            await page.until("window.rtmpxPlayer.info().reconnects > 0", timeout=15)
            await page.until(f"{VIDEO}.videoWidth === 320", timeout=15)
            after = await assert_plays(page)
            assert after["history"][-1] == "playing" and "ended" in after["history"]
            assert after["codecs"] != before["codecs"], (before, after)
            assert page.errors == [], page.errors
        finally:
            await end_publishers(server, first, second)
