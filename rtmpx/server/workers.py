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
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from ..errors import RtmpError
from ..url import RtmpURL
from .connection import Connection, ConnectionContext
from .control import MAX_LINE, ControlChannel, Message
from .hooks import Hooks, Request, TaskSet
from .hub import Channel, Hub, Publication, Publisher, StreamKey, Subscriber
from .player import GateSink, PlayerSink
from .relay import Puller
from .server import Server

__all__ = ["CLAIM_TIMEOUT", "LINGER", "MAX_STATS_PLAYERS", "MAX_STATS_STREAMS", "ClusterStats",
           "Supervisor", "Worker", "aggregate_stats", "fit_stats"]

log = logging.getLogger("rtmpx.workers")

#: Seconds a pull from a sibling outlives its last local player.
LINGER = 3.0
#: Seconds the cluster's stats a worker got from its supervisor serve again.
CLUSTER_STATS_AGE = 1.0
#: Seconds a claim with replace waits for the old owner to let go.
CLAIM_TIMEOUT = 5.0
#: Seconds a worker may take to start and say it is ready.
START_TIMEOUT = 30.0
#: The query parameter of an internal connect that carries the token.
TOKEN_PARAM = "rtmpx-worker"
#: The longest wait before a dead worker is started again, seconds.
MAX_RESTART_BACKOFF = 30.0
#: The most streams, and players (over all streams), one worker's stats list
#: (the rest are left out, and the stats say ``"truncated": true``).
MAX_STATS_STREAMS = 1000
MAX_STATS_PLAYERS = 2000
#: The most bytes of one stream's metadata (as JSON) in a worker's stats:
#: longer metadata is left out (``{"truncated": true}``).
MAX_STATS_METADATA = 2048


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` that never
    listens: it keeps the port for the workers that listen on it."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                         type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def fit_stats(stats: dict[str, Any], limit: int) -> dict[str, Any]:
    """``stats`` with streams left out (the last ones first) until its JSON
    takes at most ``limit`` bytes; then ``"truncated": true``."""
    while len(json.dumps(stats)) > limit and stats.get("streams"):
        streams = stats["streams"]
        stats = {**stats, "streams": streams[:len(streams) // 2], "truncated": True}
    return stats


def _key(message: Message) -> StreamKey:
    return StreamKey(str(message["app"]), str(message["name"]))


def _refuse(request: Request) -> bool:
    return False


# -- the worker's side -------------------------------------------------------------------


class ClusterStats:
    """The stats a worker's HTTP port serves: the whole cluster's (a
    :class:`~rtmpx.server.stats.HasStats`)."""

    __slots__ = ("worker",)

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def stats(self) -> Awaitable[dict[str, Any]]:
        return self.worker.cluster_stats()


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
        self._cluster_stats: tuple[float, asyncio.Future[dict[str, Any]]] | None = None
        self._context: ConnectionContext | None = None

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

    # -- what the worker's HTTP side asks -------------------------------------------------

    async def cluster_stats(self) -> dict[str, Any]:
        """The whole cluster's stats, from the supervisor (what ``/stats``
        on a worker's HTTP port serves: every worker's, as one server's).
        Requests within :data:`CLUSTER_STATS_AGE` seconds share one answer
        (each asks every worker).  Raises RtmpError, TimeoutError or
        ConnectionError when there is none."""
        now = time.monotonic()
        cached = self._cluster_stats
        if cached is None or now - cached[0] > CLUSTER_STATS_AGE or \
                (cached[1].done() and cached[1].exception() is not None):
            cached = self._cluster_stats = (now, asyncio.ensure_future(self._ask_stats()))
        return await asyncio.shield(cached[1])

    async def _ask_stats(self) -> dict[str, Any]:
        if self.channel is None or self.channel.closed:
            raise RtmpError("the supervisor is gone")
        answer = await self.channel.request({"op": "cluster_stats"}, 10.0)
        stats = answer.get("stats")
        if not isinstance(stats, dict):
            raise RtmpError(f"no cluster stats: {str(answer.get('error'))[:100]}")
        return stats

    @property
    def cluster(self) -> ClusterStats:
        """What a worker's HTTP side serves as stats: the cluster's."""
        return ClusterStats(self)

    def elsewhere(self, key: StreamKey) -> bool:
        """Whether ``key`` is published on a sibling (the server's
        ``context.elsewhere``: an HTTP viewer of it here waits for the pull)."""
        owner = self.owners.get(key)
        return owner is not None and owner[0] != self.index

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
        if server.hub.admit != self.admit or server.record_gate != self.record_gate:
            raise ValueError("the server's admit and record_gate must be the worker's")
        server.observers.append(self)
        await server.start()
        # the server's limits and timers, its own connections, no hooks but ours, no TLS
        self.internal_port, self._context = await server.add_internal_listener(
            Hooks(server.tasks, on_connect=self._sibling, on_publish=_refuse))
        self.channel.send({"op": "ready", "port": self.internal_port})
        log.info("worker %d ready (siblings pull from 127.0.0.1:%d)", self.index,
                 self.internal_port)

    async def close(self) -> None:
        """Stop the internal endpoint and every pull (before the server closes)."""
        self.closing = True
        if self._context is not None:
            self._context.closing = True
        for key in list(self.pulls):
            self._stop_pull(key)

    def detach(self) -> None:
        """Close the control channel (after the server closed)."""
        if self.channel is not None:
            self.channel.close()

    # -- claims ---------------------------------------------------------------------------

    def _ask(self, key: StreamKey, replace: bool) -> asyncio.Future[Message]:
        """Send a claim of ``key``; the answer's future.  Whatever becomes of
        the one who asked, a granted key is ours (:attr:`owned`) when the
        answer comes, so :meth:`_settle` gives it back once unused."""
        if self.channel is None or self.channel.closed:
            raise ConnectionError("control channel closed")
        answer = self.channel.call(
            {"op": "claim", "app": key.app, "name": key.name, "replace": replace})
        self._pending[key] = self._pending.get(key, 0) + 1
        answer.add_done_callback(functools.partial(self._answered, key))
        return answer

    def _answered(self, key: StreamKey, answer: asyncio.Future[Message]) -> None:
        self._pending[key] -= 1
        if not self._pending[key]:
            del self._pending[key]
        if not answer.cancelled() and answer.exception() is None and answer.result().get("ok"):
            self.owned.add(key)

    async def claim(self, request: Request) -> bool:
        """An ``on_publish`` hook (the last): claim the key from the registry.
        Always True: when the key is live on another worker, the hub refuses
        the publish as a duplicate (the registry has not given us the key).
        A claim given up (the connection closed, or no answer in time) runs
        on: a key it gets is given back at once."""
        key = request.key
        try:
            answer = self._ask(key, self.replace)
        except ConnectionError as exc:
            raise RtmpError("The server is shutting down.") from exc
        unused = functools.partial(self._unclaimed, key)
        try:
            async with asyncio.timeout(3 * CLAIM_TIMEOUT):
                reply = await asyncio.shield(answer)
        except TimeoutError as exc:
            answer.add_done_callback(unused)
            raise RtmpError("The stream registry does not answer.") from exc
        except asyncio.CancelledError:
            answer.add_done_callback(unused)
            raise
        except ConnectionError as exc:
            raise RtmpError("The server is shutting down.") from exc
        if reply.get("ok"):
            # right after this hook the connection publishes (or gives up): then settle
            asyncio.get_running_loop().call_soon(self._settle, key)
        return True

    def _unclaimed(self, key: StreamKey, answer: asyncio.Future[Message]) -> None:
        self._settle(key)

    def admit(self, key: StreamKey, publisher: Publisher) -> bool:
        """The hub's gate (the server's ``admit``): a key the registry gave
        us; pulls are local business."""
        return key in self.owned or isinstance(publisher, Puller)

    def record_gate(self, publication: Publication) -> bool:
        """The server's ``record_gate``: only the worker that holds a key
        records it (an origin pull's key is claimed when the pull starts)."""
        return publication.key in self.owned

    def _origin_pull(self, key: StreamKey) -> Puller | None:
        relays = self.server.relays if self.server is not None else None
        return relays.pullers.get(key) if relays is not None else None

    def _claim_pull(self, key: StreamKey) -> None:
        """The server pulls ``key`` from its origin (``--pull``): claim it,
        so that one worker only records it, and the others' players may
        take it from us."""
        if key in self.owned or self._pending.get(key) or self.closing:
            return
        try:
            answer = self._ask(key, False)
        except ConnectionError:
            return
        answer.add_done_callback(functools.partial(self._pull_claimed, key))

    def _pull_claimed(self, key: StreamKey, answer: asyncio.Future[Message]) -> None:
        server = self.server
        channel = server.hub.get(key) if server is not None else None
        publication = channel.publication if channel is not None else None
        if (server is not None and key in self.owned and server.record_dir is not None
                and publication is not None and isinstance(publication.publisher, Puller)
                and not publication.internal and not server.recordings.writing(key)):
            # the pull started before the registry answered: record from now on
            server.recordings.start(publication, True, "live")
        self._settle(key)

    def _settle(self, key: StreamKey, keep_pull: bool = True) -> None:
        """Give a claimed key back unless we publish it (or claim it again,
        or, ``keep_pull``, pull it from the origin); once its recordings
        here are closed."""
        if key not in self.owned or self._pending.get(key) or self.server is None:
            return
        channel = self.server.hub.get(key)
        publication = channel.publication if channel is not None else None
        if publication is not None and not publication.internal:
            return
        if keep_pull and self._origin_pull(key) is not None and not self.closing:
            return
        writing = self.server.recordings.writing(key)
        if writing:  # the next owner may append to the file: let it be closed first
            asyncio.gather(*writing).add_done_callback(
                lambda _: self._settle(key, keep_pull))
            return
        self.owned.discard(key)
        if self.channel is not None:
            self.channel.send({"op": "release", "app": key.app, "name": key.name})

    def _revoke(self, key: StreamKey) -> None:
        """The registry gave our key to another worker (it took it over):
        our publisher of it goes."""
        self.owned.discard(key)
        channel = self.server.hub.get(key) if self.server is not None else None
        publication = channel.publication if channel is not None else None
        if publication is not None and not publication.internal:
            log.warning("%s was taken over by another worker: dropping its publisher", key)
            self.hub.unpublish(publication, "replaced")
            publication.publisher.stop("replaced")

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
            self._settle(key, keep_pull=False)  # an origin pull here gives way too

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
        key = channel.key
        self._update(key)
        if self._origin_pull(key) is not None:
            self._claim_pull(key)
        elif key in self.owned:
            self._settle(key)  # an origin pull dropped

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
                if self.owners[key][0] != self.index and key in self.owned:
                    self._revoke(key)
            self._update(key)
        elif op == "owners":  # the registry when we start (then one "owner" a key)
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
        """The server's stats without the siblings' pulls (which are not
        among its connections): each player and publisher marked with this
        worker's index, a pulled copy without a publisher (the owner
        reports it).  Bounded to fit a control message: at most
        :data:`MAX_STATS_STREAMS` streams and :data:`MAX_STATS_PLAYERS`
        players, metadata up to :data:`MAX_STATS_METADATA` bytes; what is
        left out makes ``"truncated": true``."""
        server = self.server
        if server is None:
            return {"uptime": 0.0, "connections": 0, "streams": []}
        stats = server.stats()
        truncated = False
        players_left = MAX_STATS_PLAYERS
        streams: list[dict[str, Any]] = []
        # collect() lists the hub's channels sorted, and each one's GateSinks in order
        channels = [channel for _, channel in sorted(server.hub.channels.items())]
        for stream, channel in zip(stats["streams"], channels, strict=True):
            sinks = [p for p in channel.players if isinstance(p, GateSink)]
            players = [dict(entry, worker=self.index)
                       for entry, sink in zip(stream["players"], sinks, strict=True)
                       if not self._internal(sink)]
            publication = channel.publication
            if publication is not None and publication.internal:
                stream["publisher"] = None
            elif stream["publisher"] is not None:
                stream["publisher"]["worker"] = self.index
            elif not players:
                continue  # only siblings play it here
            if len(streams) == MAX_STATS_STREAMS:
                truncated = True
                break
            if len(players) > players_left:
                players, truncated = players[:players_left], True
            players_left -= len(players)
            stream["players"] = players
            if len(json.dumps(stream["metadata"])) > MAX_STATS_METADATA:
                stream["metadata"], truncated = {"truncated": True}, True
            streams.append(stream)
        stats["streams"] = streams
        while len(json.dumps(stats)) > MAX_LINE // 2 and streams:  # long names
            del streams[len(streams) // 2:]
            truncated = True
        if truncated:
            stats["truncated"] = True
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
    truncated = False
    for stats in workers:
        connections += int(stats["connections"])
        truncated = truncated or bool(stats.get("truncated"))
        for stream in stats["streams"]:
            entry = streams.setdefault(stream["key"], {
                "key": stream["key"], "app": stream["app"], "name": stream["name"],
                "live": False, "publisher": None, "video": None, "audio": None,
                "players": [], "outputs": [], "recordings": [], "metadata": None})
            entry["players"].extend(stream["players"])
            entry["outputs"].extend(stream.get("outputs") or [])
            if stream["publisher"] is not None:  # the owner's: what it carries, what it records
                entry.update(publisher=stream["publisher"], live=True,
                             metadata=stream["metadata"], video=stream.get("video"),
                             audio=stream.get("audio"),
                             recordings=stream.get("recordings") or [])
            elif entry["metadata"] is None:
                entry["metadata"] = stream["metadata"]
                entry["video"] = entry["video"] or stream.get("video")
                entry["audio"] = entry["audio"] or stream.get("audio")
    listed = [streams[key] for key in sorted(streams)]
    players = [player for stream in listed for player in stream["players"]]
    return {**({"truncated": True} if truncated else {}),
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
        self._reserved_http: socket.socket | None = None
        self._control: asyncio.Server | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def control_path(self) -> str:
        """The Unix socket the workers join (once :meth:`listen` ran)."""
        return self._path

    async def listen(self) -> None:
        """Bind the port (kept while workers restart) and the control socket
        (the first part of :meth:`start`; on failure, nothing is left)."""
        try:
            self._dir = tempfile.mkdtemp(prefix="rtmpx-workers-")  # 0700
            self._path = os.path.join(self._dir, "control")
            # never listens: it keeps the port while workers restart
            reserved = self._reserved = _reserve(self.host, self.port)
            self.port = int(reserved.getsockname()[1])
            self.settings["port"] = self.port
            http_port = self.settings.get("http_port")
            if http_port is not None:  # the workers' HTTP port, kept the same way
                self._reserved_http = _reserve(self.host, int(http_port))
                self.settings["http_port"] = int(self._reserved_http.getsockname()[1])
            self._control = await asyncio.start_unix_server(self._accept, self._path,
                                                            limit=MAX_LINE)
            self.started_at = time.monotonic()
        except BaseException:
            await self.close()
            raise

    async def start(self) -> None:
        """Bind the port, start the workers, return once all are ready.
        On any failure (or cancellation) whatever was started is stopped,
        the port and the private directory let go, and the error raised."""
        await self.listen()
        try:
            for child in self.children:
                await self._spawn(child)
            async with asyncio.timeout(START_TIMEOUT):
                for child in self.children:
                    await child.ready.wait()
        except TimeoutError:
            await self.close()
            raise RtmpError(f"the workers did not start within {START_TIMEOUT:g} s") from None
        except BaseException:
            await self.close()
            raise
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
        for reserved in (self._reserved, self._reserved_http):
            if reserved is not None:
                reserved.close()
        self._reserved = self._reserved_http = None
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
            # the workers serve --http-port (sharing it); the supervisor --stats-port
            settings = {**self.settings, "workers": 1, "stats_port": None}
            return {"index": index, "token": self.token, "settings": settings}
        if not which:
            return {"error": "hello first"}
        child = which[0]
        if op == "ready":
            child.port = int(message["port"])
            child.ready.set()
            if child.channel is not None:  # the registry, one key a message (bounded)
                child.channel.send({"op": "owners", "owners": []})
                for key, owner in self.owners.items():
                    child.channel.send({"op": "owner", "app": key.app, "name": key.name,
                                        "worker": owner, "port": self.children[owner].port})
        elif op == "claim":
            return self._claim(child, _key(message), bool(message.get("replace")))
        elif op == "release":
            self._release(child.index, _key(message))
        elif op == "cluster_stats":
            return self._cluster_stats()
        return None

    async def _cluster_stats(self) -> Message:
        return {"stats": fit_stats(await self.stats(), MAX_LINE - 4096)}

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
                # it is told (the "owner" of the key names another), and told to drop it
                if other is not None:
                    other.send({"op": "drop", "app": key.app, "name": key.name})
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
        stats["rtmp_port"] = self.port
        return stats
