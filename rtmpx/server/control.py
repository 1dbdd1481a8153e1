"""The control channel between ``rtmpx serve --workers`` and its workers.

One JSON object a line, over a Unix stream socket in a private directory
(only the supervisor and its workers can reach it).  A message with an
``id`` is a request: the other end answers with ``{"reply_to": id, ...}``;
any other message is a notification.  Notifications are handled in the
order they came; each request runs as a task of its own (a request may
wait for other messages: a claim with replace waits for the old owner's
release), so its answer may come after later notifications.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["MAX_LINE", "ControlChannel", "Handler", "Message"]

log = logging.getLogger("rtmpx.workers")

#: The longest message, bytes (the stats of a busy worker are the largest:
#: a worker bounds them to fit).  A longer message is never sent: a request
#: whose answer would be longer is answered with an error.
MAX_LINE = 1024 * 1024

Message = dict[str, Any]
#: Handles a message: at once for a notification (its result is ignored);
#: for a request, returns (or, async, gives) the answer's fields.
Handler = Callable[[Message], "Message | None | Awaitable[Message | None]"]


class ControlChannel:
    """Line-JSON messages, requests and replies over one stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: Handler) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._requests: set[asyncio.Task[None]] = set()
        self.closed = False

    @classmethod
    async def open(cls, path: str, handler: Handler) -> ControlChannel:
        """Connect to the Unix socket at ``path``."""
        reader, writer = await asyncio.open_unix_connection(path, limit=MAX_LINE)
        return cls(reader, writer, handler)

    @staticmethod
    def encode(message: Message) -> bytes:
        """One line; :class:`ValueError` if longer than :data:`MAX_LINE`."""
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if len(line) > MAX_LINE:
            raise ValueError(f"control message of {len(line)} bytes (at most {MAX_LINE})")
        return line

    def send(self, message: Message) -> None:
        """Send a notification (dropped if the channel is closed;
        :class:`ValueError`, and nothing sent, if it is too long)."""
        if not self.closed:
            self.writer.write(self.encode(message))

    def call(self, message: Message) -> asyncio.Future[Message]:
        """Send a request now; the future of its answer, which stays
        awaited until it comes (or :class:`ConnectionError` when the channel
        closes first), whoever gives up waiting for it."""
        if self.closed:
            raise ConnectionError("control channel closed")
        ident = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.send({**message, "id": ident})
        self._waiting[ident] = future
        future.add_done_callback(lambda _: self._waiting.pop(ident, None))
        return future

    async def request(self, message: Message, timeout: float | None = 10.0) -> Message:
        """Send a request and wait for its answer (``timeout`` seconds at
        most: :class:`TimeoutError`, and a later answer is dropped;
        :class:`ConnectionError` if the channel closes first)."""
        return await asyncio.wait_for(self.call(message), timeout)

    async def run(self) -> None:
        """Read and handle messages until the other end closes."""
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if not isinstance(message, dict):
                    log.warning("control channel: not a JSON object: closing")
                    break
                self._dispatch(message)
        except (ConnectionError, ValueError, asyncio.LimitOverrunError) as exc:
            log.warning("control channel: %s", exc)
        finally:
            self.close()

    def _dispatch(self, message: Message) -> None:
        reply_to = message.get("reply_to")
        if reply_to is not None:
            future = self._waiting.get(reply_to)
            if future is not None and not future.done():
                future.set_result(message)
        elif "id" in message:
            task = asyncio.ensure_future(self._answer(message))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        else:
            try:
                self.handler(message)  # notifications: handled at once, in order
            except Exception:
                log.exception("control message %r failed", message.get("op"))

    async def _answer(self, message: Message) -> None:
        try:
            result = self.handler(message)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("control request %r failed", message.get("op"))
            result = {"error": "failed"}
        try:
            self.send({**(result or {}), "reply_to": message["id"]})
        except ValueError as exc:
            log.warning("control request %r: %s", message.get("op"), exc)
            self.send({"error": "answer too long", "reply_to": message["id"]})

    def close(self) -> None:
        """Close; requests still waiting fail with :class:`ConnectionError`."""
        if self.closed:
            return
        self.closed = True
        for future in list(self._waiting.values()):
            if not future.done():
                future.set_exception(ConnectionError("control channel closed"))
        for task in self._requests:
            task.cancel()
        self.writer.close()
