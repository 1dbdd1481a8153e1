"""Several worker processes on one port: ``rtmpx serve --workers N``.

A :class:`Supervisor` starts N worker processes (``rtmpx serve`` with the
same settings, each a :class:`~rtmpx.server.Server` bound with
``SO_REUSEPORT`` to the same address: the kernel spreads the connections
among them), restarts one that dies, serves the stats of them all, and
stops them gracefully.  It keeps the registry of which worker publishes
which stream key.

Each worker runs a :class:`Worker` next to its server:

* before a publish is accepted, it claims the key from the registry
  (:meth:`Worker.claim`, the last ``on_publish`` hook); the hub admits only
  keys this worker holds, so a publish of a key live on another worker is
  refused like a duplicate on one server (NetStream.Publish.BadName), or,
  with ``duplicate_publish="replace"``, the other worker's publisher is
  dropped first.  The claim is released when the publication ends.
* a player of a key published on a sibling makes the worker pull it from
  that sibling, once for all its players (an internal
  :class:`~rtmpx.server.relay.Puller`: its publication here is
  *internal*, never recorded, pushed or handed to ``publishes()``, and
  runs no hook); the pull ends when the origin's publication does, or a
  few seconds (:data:`LINGER`) after the last local player left.  A
  player that comes before any publish waits, as on one server, and sees
  the stream when it starts on any worker.
* siblings pull from an internal endpoint on 127.0.0.1 (an ephemeral
  port, no hooks) that admits only connects carrying the cluster's random
  token (compared in constant time) and refuses every publish.

Hooks run on the worker that has the client's connection; only the worker
that owns a publication records it; the supervisor's stats list each
stream once, with its players on every worker.  The supervisor and its
workers talk over a :class:`~rtmpx.server.control.ControlChannel` on a
Unix socket in a private (0700) directory.  SO_REUSEPORT is Linux's (and
some BSDs'): elsewhere use one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hmac
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import RtmpError
from ..url import RtmpURL
from .connection import Connection, ConnectionContext
from .control import MAX_LINE, ControlChannel, Message
from .hooks import Hooks, Request, TaskSet
from .hub import Channel, Hub, Publication, Publisher, StreamKey, Subscriber
from .player import PlayerSink
from .relay import Puller
from .server import Server

__all__ = ["CLAIM_TIMEOUT", "LINGER", "Supervisor", "Worker", "aggregate_stats"]

log = logging.getLogger("rtmpx.workers")

#: Seconds a pull from a sibling outlives its last local player.
LINGER = 3.0
#: Seconds a claim with replace waits for the old owner to let go.
CLAIM_TIMEOUT = 5.0
#: Seconds a worker may take to start and say it is ready.
START_TIMEOUT = 30.0
#: The query parameter of an internal connect that carries the token.
TOKEN_PARAM = "rtmpx-worker"
#: The longest wait before a dead worker is started again, seconds.
MAX_RESTART_BACKOFF = 30.0


def _key(message: Message) -> StreamKey:
    return StreamKey(str(message["app"]), str(message["name"]))


def _refuse(request: Request) -> bool:
    return False


# -- the worker's side -------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Pull:
    """A pull of a sibling's stream, for the local players of its key."""

    puller: Puller
    source: tuple[int, int]                  # (worker index, internal port)
    linger: asyncio.TimerHandle | None = None


class Worker:
    """One worker's part in a cluster: claims, pulls from siblings, stats.

    Made by :meth:`connect` (the supervisor's answer gives :attr:`index`
    and :attr:`settings`, the ``rtmpx serve`` options), then
    :meth:`start`\\ ed with the worker's server, whose last ``on_publish``
    hook must be :meth:`claim`.  A :class:`~rtmpx.server.hub.HubObserver`
    of the server, and the :class:`~rtmpx.server.relay.PullOwner` of its
    internal pulls."""

    def __init__(self) -> None:
        self.index = -1
        self.settings: dict[str, Any] = {}
        self.token = ""
        self.channel: ControlChannel | None = None
        self.lost: asyncio.Task[None] | None = None   # the control channel's reader
        self.server: Server | None = None
        self.replace = False
        self.internal_port = 0
        #: keys the registry says we publish
        self.owned: set[StreamKey] = set()
        #: who publishes what, as the supervisor last said: key -> (worker, internal port)
        self.owners: dict[StreamKey, tuple[int, int]] = {}
        self.pulls: dict[StreamKey, _Pull] = {}
        self.closing = False
        self._pending: dict[StreamKey, int] = {}    # claims under way
        self._context: ConnectionContext | None = None
        self._listener: asyncio.Server | None = None

    @classmethod
    async def connect(cls, path: str, index: int) -> Worker:
        """Join the supervisor listening on the Unix socket ``path``."""
        worker = cls()
        channel = worker.channel = await ControlChannel.open(path, worker._handle)
        worker.lost = asyncio.ensure_future(channel.run())
        welcome = await channel.request({"op": "hello", "index": index, "pid": os.getpid()})
        worker.index = int(welcome["index"])
        worker.token = str(welcome["token"])
        worker.settings = dict(welcome["settings"])
        return worker

    # -- PullOwner ---------------------------------------------------------------------

    @property
    def hub(self) -> Hub:
        """The worker's hub (where pulled copies are published)."""
        assert self.server is not None
        return self.server.hub

    @property
    def tasks(self) -> TaskSet:
        """The worker's server's tasks."""
        assert self.server is not None
        return self.server.tasks

    def pull_done(self, puller: Puller) -> None:
        pull = self.pulls.get(puller.key)
        if pull is not None and pull.puller is puller:
            self._forget(puller.key)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, server: Server) -> None:
        """Open the internal endpoint, start ``server`` and tell the
        supervisor that this worker is ready."""
        assert self.channel is not None
        self.server = server
        self.replace = server.duplicate_publish == "replace"
        server.hub.admit = self._admit
        server.observers.append(self)
        # the server's connections, limits and timers, without its hooks and TLS
        context = self._context = dataclasses.replace(
            server.context, ssl=None,
            hooks=Hooks(server.tasks, on_connect=self._sibling, on_publish=_refuse))
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(lambda: Connection(context), "127.0.0.1", 0)
        self.internal_port = int(self._listener.sockets[0].getsockname()[1])
        await server.start()
        self.channel.send({"op": "ready", "port": self.internal_port})
        log.info("worker %d ready (siblings pull from 127.0.0.1:%d)", self.index,
                 self.internal_port)

    async def close(self) -> None:
        """Stop the internal endpoint and every pull (before the server closes)."""
        self.closing = True
        if self._listener is not None:
            self._listener.close()
        if self._context is not None:
            self._context.closing = True
        for key in list(self.pulls):
            self._stop_pull(key)

    def detach(self) -> None:
        """Close the control channel (after the server closed)."""
        if self.channel is not None:
            self.channel.close()

    # -- claims ---------------------------------------------------------------------------

    async def claim(self, request: Request) -> bool:
        """An ``on_publish`` hook (the last): claim the key from the registry.
        Always True: when the key is live on another worker, the hub refuses
        the publish as a duplicate (the registry has not given us the key)."""
        key = request.key
        if self.channel is None or self.channel.closed:
            raise RtmpError("The server is shutting down.")
        self._pending[key] = self._pending.get(key, 0) + 1
        try:
            answer = await self.channel.request(
                {"op": "claim", "app": key.app, "name": key.name, "replace": self.replace},
                3 * CLAIM_TIMEOUT)
        except (ConnectionError, TimeoutError) as exc:
            raise RtmpError("The server is shutting down.") from exc
        finally:
            self._pending[key] -= 1
            if not self._pending[key]:
                del self._pending[key]
        if answer.get("ok"):
            self.owned.add(key)
            # right after this hook the connection publishes (or gives up): then settle
            asyncio.get_running_loop().call_soon(self._settle, key)
        return True

    def _admit(self, key: StreamKey, publisher: Publisher) -> bool:
        """The hub's gate: a key the registry gave us; pulls are local business."""
        return key in self.owned or isinstance(publisher, Puller)

    def _settle(self, key: StreamKey) -> None:
        """Give a claimed key back unless we publish it (or claim it again)."""
        if key not in self.owned or self._pending.get(key) or self.server is None:
            return
        channel = self.server.hub.get(key)
        publication = channel.publication if channel is not None else None
        if publication is not None and not publication.internal:
            return
        self.owned.discard(key)
        if self.channel is not None:
            self.channel.send({"op": "release", "app": key.app, "name": key.name})

    def _drop(self, key: StreamKey) -> None:
        """Another worker's publisher replaces ours (``replace``)."""
        channel = self.server.hub.get(key) if self.server is not None else None
        publication = channel.publication if channel is not None else None
        if publication is not None and not publication.internal:
            log.info("a publisher on another worker replaces %s", key)
            self.hub.unpublish(publication, "replaced")
            publication.publisher.stop("replaced")
        if key not in self.owned:  # not ours (any more): say so, the registry waits
            if self.channel is not None:
                self.channel.send({"op": "release", "app": key.app, "name": key.name})
        else:
            self._settle(key)

    # -- HubObserver -----------------------------------------------------------------------

    def publication_started(self, publication: Publication) -> None:
        pass

    def publication_ended(self, publication: Publication, reason: str) -> None:
        # later: a publisher that replaces this one is not in the channel yet
        loop = asyncio.get_running_loop()
        if not publication.internal:
            loop.call_soon(self._settle, publication.key)
        loop.call_soon(self._update, publication.key)

    def demand_changed(self, channel: Channel) -> None:
        self._update(channel.key)

    # -- pulls from siblings -------------------------------------------------------------

    def _sibling(self, request: Request) -> bool:
        """The internal endpoint's ``on_connect``: only with the cluster's token."""
        given = request.params.get(TOKEN_PARAM, "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _internal(self, player: Subscriber) -> bool:
        """Whether ``player`` is a sibling's pull (on our internal endpoint)."""
        return (isinstance(player, PlayerSink) and isinstance(player.output, Connection)
                and player.output.context is self._context)

    def _players(self, channel: Channel | None) -> int:
        if channel is None:
            return 0
        return sum(1 for player in channel.players if not self._internal(player))

    def _update(self, key: StreamKey) -> None:
        """Start, keep or stop the pull of ``key`` for the local players."""
        if self.server is None or self.closing:
            return
        channel = self.server.hub.get(key)
        owner = self.owners.get(key)
        source = owner if owner is not None and owner[0] != self.index else None
        pull = self.pulls.get(key)
        if pull is not None and pull.source != source:
            self._stop_pull(key)  # the origin's publication ended, or moved
            pull = None
        players = self._players(channel)
        if pull is None:
            publication = channel.publication if channel is not None else None
            if source is not None and players and (publication is None or publication.internal):
                self._start_pull(key, source)
        elif players:
            if pull.linger is not None:
                pull.linger.cancel()
                pull.linger = None
        elif pull.linger is None:
            pull.linger = asyncio.get_running_loop().call_later(LINGER, self._lingered, key)

    def _start_pull(self, key: StreamKey, source: tuple[int, int]) -> None:
        url = RtmpURL("rtmp", "127.0.0.1", source[1], f"{key.app}?{TOKEN_PARAM}={self.token}")
        self.pulls[key] = _Pull(Puller(self, key, url, internal=True), source)
        log.info("pulling %s from worker %d", key, source[0])

    def _lingered(self, key: StreamKey) -> None:
        pull = self.pulls.get(key)
        if pull is None:
            return
        pull.linger = None
        if self._players(self.server.hub.get(key) if self.server is not None else None) == 0:
            log.info("last player of %s left: dropping the pull from worker %d", key,
                     pull.source[0])
            self._stop_pull(key)

    def _forget(self, key: StreamKey) -> _Pull | None:
        pull = self.pulls.pop(key, None)
        if pull is not None and pull.linger is not None:
            pull.linger.cancel()
        return pull

    def _stop_pull(self, key: StreamKey) -> None:
        pull = self._forget(key)
        if pull is not None:
            pull.puller.close()

    # -- control messages ----------------------------------------------------------------

    def _handle(self, message: Message) -> Message | None:
        op = message.get("op")
        if op == "owner":
            key = _key(message)
            if message.get("worker") is None:
                self.owners.pop(key, None)
            else:
                self.owners[key] = (int(message["worker"]), int(message["port"]))
            self._update(key)
        elif op == "owners":
            self.owners = {StreamKey(app, name): (int(w), int(p))
                           for app, name, w, p in message["owners"]}
            if self.server is not None:
                for key in set(self.owners) | set(self.server.hub.channels):
                    self._update(key)
        elif op == "drop":
            self._drop(_key(message))
        elif op == "stats":
            return {"stats": self.stats()}
        return None

    def stats(self) -> dict[str, Any]:
        """The server's stats without the siblings' pulls: each player and
        publisher marked with this worker's index, a pulled copy without a
        publisher (the owner reports it)."""
        server = self.server
        if server is None:
            return {"uptime": 0.0, "connections": 0, "streams": []}
        stats = server.stats()
        internal = [conn for conn in server.connections if conn.context is self._context]
        peers = {conn.peer for conn in internal}
        stats["connections"] -= len(internal)
        for stream in stats["streams"]:
            stream["players"] = [dict(player, worker=self.index) for player in stream["players"]
                                 if player["peer"] not in peers]
            channel = server.hub.get((stream["app"], stream["name"]))
            publication = channel.publication if channel is not None else None
            if publication is not None and publication.internal:
                stream["publisher"] = None
            elif stream["publisher"] is not None:
                stream["publisher"]["worker"] = self.index
        return stats


# -- the supervisor's side ----------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Child:
    """One worker process, as the supervisor sees it."""

    index: int
    process: asyncio.subprocess.Process | None = None
    channel: ControlChannel | None = None
    port: int | None = None          # its internal endpoint, once ready
    started: float = 0.0
    backoff: float = 1.0
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


def aggregate_stats(workers: Iterable[dict[str, Any]], uptime: float) -> dict[str, Any]:
    """One server's stats (:func:`rtmpx.server.stats.collect`'s shape) from
    its workers' (:meth:`Worker.stats`): each stream once, with its
    publisher (on the worker that owns it) and the players of every worker."""
    streams: dict[str, dict[str, Any]] = {}
    connections = 0
    for stats in workers:
        connections += int(stats["connections"])
        for stream in stats["streams"]:
            entry = streams.setdefault(stream["key"], {
                "key": stream["key"], "app": stream["app"], "name": stream["name"],
                "live": False, "publisher": None, "players": [], "metadata": None})
            entry["players"].extend(stream["players"])
            if stream["publisher"] is not None:
                entry["publisher"] = stream["publisher"]
                entry["live"] = True
                entry["metadata"] = stream["metadata"]
            elif entry["metadata"] is None:
                entry["metadata"] = stream["metadata"]
    listed = [streams[key] for key in sorted(streams)]
    players = [player for stream in listed for player in stream["players"]]
    return {
        "uptime": uptime,
        "connections": connections,
        "streams": listed,
        "publishers": sum(1 for s in listed if s["live"]),
        "players": len(players),
        "bytes_in": sum(s["publisher"]["bytes"] for s in listed if s["publisher"] is not None),
        "bytes_out": sum(player["bytes"] for player in players),
        "dropped": sum(player["dropped"] for player in players),
    }


class Supervisor:
    """Runs ``workers`` worker processes of one ``rtmpx serve`` on
    ``host:port`` (see the module's documentation).

    ``settings`` are the ``rtmpx serve`` options each worker runs with
    (JSON values); ``command`` starts one worker (``rtmpx serve
    --worker-control PATH --worker-index I`` is appended).
    :meth:`stats` aggregates the workers' (serve it with a
    :class:`~rtmpx.server.StatsServer`); :meth:`close` stops them
    gracefully (SIGTERM: each closes its server, recordings included)."""

    def __init__(self, workers: int, settings: dict[str, Any], *, host: str, port: int,
                 command: Sequence[str] = (sys.executable, "-m", "rtmpx", "serve")) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.settings = dict(settings)
        self.host = host
        self.port = port
        self.command = list(command)
        self.children = [_Child(i) for i in range(workers)]
        self.owners: dict[StreamKey, int] = {}
        self.token = secrets.token_urlsafe(32)
        self.started_at = 0.0
        self.stopping = False
        self._changed = asyncio.Condition()
        self._dir: str | None = None
        self._path = ""
        self._reserved: socket.socket | None = None
        self._control: asyncio.Server | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the port, start the workers, return once all are ready."""
        self._dir = tempfile.mkdtemp(prefix="rtmpx-workers-")  # 0700
        self._path = os.path.join(self._dir, "control")
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM)[0]
        reserved = self._reserved = socket.socket(family, kind, proto)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind(address)  # never listens: it keeps the port while workers restart
        self.port = int(reserved.getsockname()[1])
        self.settings["port"] = self.port
        self._control = await asyncio.start_unix_server(self._accept, self._path, limit=MAX_LINE)
        self.started_at = time.monotonic()
        for child in self.children:
            await self._spawn(child)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                for child in self.children:
                    await child.ready.wait()
        except TimeoutError:
            await self.close()
            raise RtmpError(f"the workers did not start within {START_TIMEOUT:g} s") from None
        log.info("%d workers serving port %d", len(self.children), self.port)

    async def close(self, timeout: float = 60.0) -> None:
        """Stop every worker gracefully (SIGTERM; killed after ``timeout``)."""
        self.stopping = True
        for task in self._watchers:
            task.cancel()
        processes = [child.process for child in self.children
                     if child.process is not None and child.process.returncode is None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if processes:
            waits = [asyncio.ensure_future(process.wait()) for process in processes]
            _, late = await asyncio.wait(waits, timeout=timeout)
            for process in processes:
                if process.returncode is None:
                    log.warning("worker pid %d did not stop in time: killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if late:
                await asyncio.wait(late, timeout=5.0)
        for child in self.children:
            if child.channel is not None:
                child.channel.close()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def _spawn(self, child: _Child) -> None:
        child.ready.clear()
        child.started = time.monotonic()
        child.process = await asyncio.create_subprocess_exec(
            *self.command, "--worker-control", self._path, "--worker-index", str(child.index),
            stdin=asyncio.subprocess.DEVNULL)
        task = asyncio.ensure_future(self._watch(child, child.process))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, child: _Child, process: asyncio.subprocess.Process) -> None:
        """Start a worker again when it dies (not when we stop it)."""
        code = await process.wait()
        if self.stopping:
            return
        self._lost(child, child.channel)
        if time.monotonic() - child.started > 60:
            child.backoff = 1.0
        log.warning("worker %d (pid %d) exited with %s: restarting in %.0f s", child.index,
                    process.pid, code, child.backoff)
        await asyncio.sleep(child.backoff)
        child.backoff = min(child.backoff * 2, MAX_RESTART_BACKOFF)
        if not self.stopping:
            await self._spawn(child)

    # -- the control channels ---------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        which: list[_Child] = []   # the worker on this channel, once it said hello

        def handle(message: Message) -> Any:
            return self._handle(which, channel, message)

        channel = ControlChannel(reader, writer, handle)
        await channel.run()
        if which:
            self._lost(which[0], channel)

    def _handle(self, which: list[_Child], channel: ControlChannel, message: Message) -> Any:
        op = message.get("op")
        if op == "hello":
            index = int(message["index"])
            if not 0 <= index < len(self.children):
                return {"error": "unknown worker"}
            child = self.children[index]
            which[:] = [child]
            child.channel = channel
            settings = {**self.settings, "workers": 1, "stats_port": None}
            return {"index": index, "token": self.token, "settings": settings}
        if not which:
            return {"error": "hello first"}
        child = which[0]
        if op == "ready":
            child.port = int(message["port"])
            child.ready.set()
            if child.channel is not None:
                child.channel.send({"op": "owners", "owners": [
                    [key.app, key.name, owner, self.children[owner].port]
                    for key, owner in self.owners.items()]})
        elif op == "claim":
            return self._claim(child, _key(message), bool(message.get("replace")))
        elif op == "release":
            self._release(child.index, _key(message))
        return None

    def _lost(self, child: _Child, channel: ControlChannel | None) -> None:
        """A worker's channel closed (it died or stopped): its keys are free."""
        if channel is None or child.channel is not channel:
            return
        child.channel = None
        child.port = None
        child.ready.clear()
        for key, owner in list(self.owners.items()):
            if owner == child.index:
                self._release(owner, key)

    def _broadcast(self, message: Message) -> None:
        for child in self.children:
            if child.channel is not None and child.ready.is_set():
                child.channel.send(message)

    def _own(self, key: StreamKey, index: int) -> None:
        self.owners[key] = index
        self._broadcast({"op": "owner", "app": key.app, "name": key.name, "worker": index,
                         "port": self.children[index].port})
        self._notify()

    def _release(self, index: int, key: StreamKey) -> None:
        if self.owners.get(key) != index:
            return
        del self.owners[key]
        self._broadcast({"op": "owner", "app": key.app, "name": key.name, "worker": None,
                         "port": None})
        self._notify()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()
        task = asyncio.ensure_future(wake())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def _moved(self, key: StreamKey, owner: int) -> bool:
        return self.owners.get(key) != owner

    async def _claim(self, child: _Child, key: StreamKey, replace: bool) -> Message:
        """Give ``key`` to ``child`` unless another worker publishes it; with
        ``replace``, that worker drops its publisher first."""
        for _ in range(3):
            owner = self.owners.get(key)
            if owner is None or owner == child.index:
                self._own(key, child.index)
                return {"ok": True}
            if not replace:
                return {"ok": False}
            other = self.children[owner].channel
            if other is not None:
                other.send({"op": "drop", "app": key.app, "name": key.name})
            try:
                async with asyncio.timeout(CLAIM_TIMEOUT), self._changed:
                    await self._changed.wait_for(functools.partial(self._moved, key, owner))
            except TimeoutError:
                log.warning("worker %d did not let go of %s: taken over", owner, key)
                self._release(owner, key)
        return {"ok": False}

    # -- stats ------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """The stats of every worker, as one server's (:func:`aggregate_stats`),
        with ``workers``: each one's index, pid and connections."""
        ready = [child for child in self.children
                 if child.channel is not None and child.ready.is_set()]
        answers = await asyncio.gather(
            *(child.channel.request({"op": "stats"}, 5.0) for child in ready
              if child.channel is not None),
            return_exceptions=True)
        found: list[dict[str, Any]] = []
        workers = []
        for child, answer in zip(ready, answers, strict=True):
            if isinstance(answer, dict) and isinstance(answer.get("stats"), dict):
                found.append(answer["stats"])
                workers.append({"index": child.index,
                                "pid": child.process.pid if child.process else None,
                                "connections": answer["stats"]["connections"]})
        stats = aggregate_stats(found, time.monotonic() - self.started_at)
        stats["workers"] = workers
        return stats
