"""The server's hooks: who may connect, publish and play, and what it is told.

Decision hooks (``on_connect``, ``on_publish``, ``on_play``) and
notification hooks (``on_unpublish``, ``on_disconnect``) are plain or async
callables given a :class:`Request`.  A decision hook that raises, or
returns ``False``, rejects (with its message as the reason).  Notification
hooks run in the background; :meth:`Hooks.drain` waits for them (with a
deadline) when the server closes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ..session.capabilities import LEGACY, Capabilities
from .hub import Publication, StreamKey

__all__ = ["Hook", "Hooks", "Request", "TaskSet", "request_of"]

log = logging.getLogger("rtmpx.server")

Hook = Callable[["Request"], Any]


@dataclass(slots=True)
class Request:
    """What a hook is told about a connect, publish, play, unpublish or disconnect.

    ``query`` is the raw query string (``token=abc``), ``params`` the same
    parsed (first value of each key).  For publish, set ``record`` to True
    (or a path) in ``on_publish`` to record that stream.  ``capabilities``
    is what the client's connect said it supports (Enhanced RTMP: codecs,
    ``capabilities.reconnect``, ...; empty for a legacy client).
    """

    action: str                       # "connect", "publish", "play", "unpublish", "disconnect"
    app: str
    name: str
    query: str
    peer: str
    tc_url: str = ""
    publish_type: str = ""
    connect_params: dict[str, Any] = field(default_factory=dict)
    record: bool | str | Path | None = None
    capabilities: Capabilities = LEGACY

    @property
    def params(self) -> dict[str, str]:
        """The query, parsed: the first value of each key."""
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    @property
    def key(self) -> StreamKey:
        """The stream key: ``(app, name)``; ``str(key)`` is ``app/name``."""
        return StreamKey(self.app, self.name)


def request_of(publication: Publication) -> Request:
    """The :class:`Request` a publication of this server was started with."""
    info = publication.info
    if not isinstance(info, Request):
        raise TypeError(f"{publication!r} was not started by an rtmpx server")
    return info


class TaskSet:
    """Background tasks that are tracked, and awaited (with a deadline) at the end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def wait(self, timeout: float) -> None:
        """Wait for every task (and those they start) for at most
        ``timeout`` seconds; cancel what is left and wait for it to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=left)
        await self.cancel()

    async def cancel(self) -> None:
        """Cancel every task and wait until they ended."""
        while self._tasks:
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks -= tasks


class Hooks:
    """The hooks of one server."""

    def __init__(self, tasks: TaskSet, *, on_connect: Hook | None = None,
                 on_publish: Hook | None = None, on_play: Hook | None = None,
                 on_unpublish: Hook | None = None, on_disconnect: Hook | None = None) -> None:
        self.tasks = tasks
        self._hooks: dict[str, Hook | None] = {
            "on_connect": on_connect, "on_publish": on_publish, "on_play": on_play,
            "on_unpublish": on_unpublish, "on_disconnect": on_disconnect,
        }

    def has(self, name: str) -> bool:
        """Whether hook ``name`` is set (``ask`` then says yes to everything)."""
        return self._hooks[name] is not None

    async def ask(self, name: str, request: Request) -> tuple[bool, str]:
        """Run a decision hook: (allowed, reason)."""
        hook = self._hooks[name]
        if hook is None:
            return True, ""
        try:
            result = hook(request)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # noqa: BLE001 - a hook that raises rejects, with its reason
            return False, str(exc) or type(exc).__name__  # the connection logs it
        if result is False:
            return False, ""
        return True, ""

    def notify(self, name: str, request: Request) -> None:
        """Run a notification hook in the background; errors are logged."""
        hook = self._hooks[name]
        if hook is None:
            return

        async def run() -> None:
            try:
                result = hook(request)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%s hook failed", name)

        self.tasks.spawn(run())
