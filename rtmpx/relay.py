"""Relaying between servers: push (republish upstream) and pull (edge).

* Push: every live stream (or those of one app) is republished to each
  upstream URL (``rtmp://host/app``), under the same stream name.  A push
  reconnects with backoff and resumes at a keyframe: after a reconnect, or
  when it falls behind, it sends the metadata, the sequence headers and
  the GOP cache again, then live media.
* Pull: when a player asks for a key that has no local publisher, the
  stream is played from the origin (``rtmp://origin/app``) and fed to the
  local channel as if published here; it is dropped when the last player
  leaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from .constants import MessageType as MT
from .errors import RtmpError
from .events import Metadata
from .url import parse_url

if TYPE_CHECKING:
    from .hub import Channel
    from .server import Request, Server, _Publication

__all__ = ["Puller", "Pusher", "Relays"]

log = logging.getLogger("rtmpx.relay")

_AUDIO, _VIDEO, _DATA = int(MT.AUDIO), int(MT.VIDEO), int(MT.DATA_AMF0)
MAX_BACKOFF = 30.0


def _push_targets(push: list[Any]) -> list[tuple[str | None, str]]:
    """Push entries as (local app or None for every app, upstream URL)."""
    targets: list[tuple[str | None, str]] = []
    for entry in push:
        if isinstance(entry, str):
            targets.append((None, entry))
        else:
            app, url = entry
            targets.append((app, url))
        parse_url(targets[-1][1])  # fail early on a bad URL
    return targets


class Pusher:
    """Republishes one local channel to one upstream server, for as long as
    the channel is live."""

    def __init__(self, server: Server, channel: Channel, name: str, url: str,
                 max_queue: int = 2000) -> None:
        self.server = server
        self.channel = channel
        self.name = name
        self.url = url
        self.max_queue = max_queue
        self.queue: deque[tuple[int, int, bytes, dict[str, Any] | None]] = deque()
        self.resync = True            # (re)start from the GOP cache
        self.wakeup = asyncio.Event()
        self.connected = False
        self.messages_sent = 0
        self.reconnects = 0
        channel.listeners.append(self._on_message)
        self.task = asyncio.ensure_future(self._run())

    def _on_message(self, type_id: int, timestamp: int, payload: bytes,
                    metadata: dict[str, Any] | None) -> None:
        if self.resync:
            return  # the GOP cache will bring us up to date
        if len(self.queue) >= self.max_queue:
            log.warning("push %s -> %s behind: restarting at a keyframe", self.channel.key,
                        self.url)
            self.queue.clear()
            self.resync = True
        else:
            self.queue.append((type_id, timestamp, payload, metadata))
        self.wakeup.set()

    async def _run(self) -> None:
        from .client import connect

        backoff = 1.0
        while True:
            try:
                async with connect(self.url) as client:
                    stream = await client.publish(self.name)
                    self.connected = True
                    backoff = 1.0
                    log.info("pushing %s to %s/%s", self.channel.key, self.url, self.name)
                    await self._forward(stream)
            except asyncio.CancelledError:
                raise
            except (OSError, RtmpError, TimeoutError) as exc:
                log.warning("push %s -> %s failed: %s; retry in %.0f s", self.channel.key,
                            self.url, exc, backoff)
            self.connected = False
            self.resync = True
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _forward(self, stream: Any) -> None:
        while True:
            if self.resync:
                self.queue.clear()
                self.resync = False
                channel = self.channel
                if channel.metadata is not None:
                    await stream.send_metadata(channel.metadata)
                for type_id, timestamp, payload in channel.startup():
                    if type_id != _DATA:
                        await self._send(stream, type_id, timestamp, payload)
            while self.queue:
                type_id, timestamp, payload, metadata = self.queue.popleft()
                if type_id == _DATA:
                    if metadata is not None:
                        await stream.send_metadata(metadata)
                else:
                    await self._send(stream, type_id, timestamp, payload)
                if self.resync:
                    break
            if not self.queue and not self.resync:
                self.wakeup.clear()
                await self.wakeup.wait()

    async def _send(self, stream: Any, type_id: int, timestamp: int, payload: bytes) -> None:
        if type_id == _VIDEO:
            await stream.send_video(timestamp, payload)
        else:
            await stream.send_audio(timestamp, payload)
        self.messages_sent += 1

    async def stop(self) -> None:
        try:
            self.channel.listeners.remove(self._on_message)
        except ValueError:
            pass
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class Puller:
    """Plays a stream from an origin and feeds it to a local channel: a
    publisher that lives in this process."""

    def __init__(self, server: Server, channel: Channel, request: Request, url: str) -> None:
        self.server = server
        self.channel = channel
        self.request = request
        self.url = url
        self.peer = f"pull:{url}"
        self.closed = False
        self.publication: _Publication | None = None
        self.task = asyncio.ensure_future(self._run())

    # what the server expects of a publishing connection
    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.task.cancel()

    def _end_publish(self, stream_id: int, why: str) -> None:
        pub, self.publication = self.publication, None
        if pub is not None:
            self.server._stop_publish(self, pub, why)  # type: ignore[arg-type]

    async def _run(self) -> None:
        from .client import connect
        from .server import _Publication

        loop = asyncio.get_running_loop()
        try:
            async with connect(self.url) as client:
                async for item in client.play(self.request.name):
                    channel = self.channel
                    if self.publication is None:
                        if channel.live:
                            log.info("pull %s: a local publisher came first", channel.key)
                            return
                        self.publication = _Publication(0, channel, self.request)
                        self.server._start_publish(self, self.publication)  # type: ignore[arg-type]
                    now = loop.time()
                    if isinstance(item, Metadata):
                        channel.set_metadata(dict(item.metadata), item.payload, item.timestamp,
                                             now)
                    elif item.kind == "video":
                        channel.media(_VIDEO, item.timestamp, bytes(item.payload), now)
                    elif item.kind == "audio":
                        channel.media(_AUDIO, item.timestamp, bytes(item.payload), now)
        except asyncio.CancelledError:
            pass
        except (OSError, RtmpError, TimeoutError) as exc:
            log.warning("pull %s from %s failed: %s", self.channel.key, self.url, exc)
        finally:
            self.closed = True
            self._end_publish(0, "pull ended")
            self.server._relays_pull_done(self)


class Relays:
    """The push and pull relays of one server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.targets = _push_targets(server.push)
        self.pull_url = server.pull
        if self.pull_url is not None:
            parse_url(self.pull_url)
        self.pushers: dict[str, list[Pusher]] = {}
        self.pullers: dict[str, Puller] = {}

    def published(self, channel: Channel, request: Request) -> None:
        if isinstance(channel.publisher[0], Puller):
            return  # never push back what we pull
        pushers = [Pusher(self.server, channel, request.name, url)
                   for app, url in self.targets if app is None or app == request.app]
        if pushers:
            self.pushers[channel.key] = pushers

    def unpublished(self, channel: Channel) -> None:
        for pusher in self.pushers.pop(channel.key, []):
            self.server._spawn(pusher.stop())

    def player_joined(self, channel: Channel) -> None:
        if self.pull_url is None or channel.live or channel.key in self.pullers:
            return
        from .server import Request

        app, _, name = channel.key.partition("/")
        origin = parse_url(self.pull_url)
        url = str(origin) if origin.app else f"{self.pull_url.rstrip('/')}/{app}"
        request = Request("publish", app, name, "", f"pull:{url}", publish_type="live")
        self.pullers[channel.key] = Puller(self.server, channel, request, url)
        log.info("pulling %s from %s", channel.key, url)

    def player_left(self, channel: Channel) -> None:
        puller = self.pullers.get(channel.key)
        if puller is not None and not channel.sinks:
            log.info("last player of %s left: dropping the pull", channel.key)
            puller.close()

    def pull_done(self, puller: Puller) -> None:
        if self.pullers.get(puller.channel.key) is puller:
            del self.pullers[puller.channel.key]

    async def close(self) -> None:
        tasks: list[Any] = [p.stop() for ps in self.pushers.values() for p in ps]
        for puller in self.pullers.values():
            puller.close()
            tasks.append(asyncio.gather(puller.task, return_exceptions=True))
        self.pushers.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
