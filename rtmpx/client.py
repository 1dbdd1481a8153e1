"""The asyncio RTMP client: a thin shell over :class:`~rtmpx.ClientSession`.

::

    async with rtmpx.connect("rtmp://example.com/live/key") as client:
        async with await client.publish() as stream:
            await stream.send_metadata({"width": 1280.0, "height": 720.0})
            await stream.send_video(0, avc_sequence_header)
            ...

    async with rtmpx.connect("rtmp://example.com/live") as client:
        async for frame in client.play("key"):
            ...   # rtmpx.media.Frame, or rtmpx.events.Metadata for onMetaData

Every protocol decision is the session's (the publish and play sequences,
what each ``onStatus`` code means); this module moves bytes between an
:class:`asyncio.Protocol` and the session and turns its events into
awaitable results.  Writes go straight to the transport; the ``send_*``
coroutines wait while the transport's write buffer is above its
high-water mark (:data:`WRITE_HIGH_WATER`).  A :class:`PlayStream` holds
a bounded queue; when it is full, reading from the socket pauses until
the consumer catches up, so a slow consumer slows the server down (TCP
backpressure) instead of growing memory.

Enhanced RTMP: ``connect`` advertises what rtmpx supports
(``capabilities``; None for a legacy connect; capsEx Reconnect only when
the connection acts on reconnect requests) and
:attr:`Client.server_capabilities` is what the server answered.  When the
server asks us to reconnect (NetConnection.Connect.ReconnectRequest),
:attr:`Client.reconnect_request` is set and ``on_reconnect_request`` is
called; with ``follow_reconnect=True`` every :class:`PublishStream` follows
it by itself: it goes on to the next keyframe of the primary video track
(or the next message of an audio-only stream), then unpublishes here,
connects to the new ``tcUrl`` (or the same one: a restart; the whole path
of a ``tcUrl`` is the application), trying again for a while if it is not
there yet, publishes the same name, sends the metadata and the latest
header message of each track and kind again (:class:`HeaderReplay`:
sequence headers, video Metadata, audio MultichannelConfig), and carries on
from that keyframe (:attr:`PublishStream.client` is then the new
connection, and :attr:`PublishStream.reconnects` counts the moves).  Plays
do not follow: they end when the old server closes.

Errors: :class:`ConnectionRejectedError` (connect refused),
:class:`StatusError` (an ``onStatus`` or ``_error`` that refused a
publish, play or call), :class:`TimeoutError`, :class:`ConnectionError`
(the connection dropped), and :class:`~rtmpx.ProtocolError` (the server
broke the protocol: the connection is closed and every waiter gets it).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import logging
import ssl as _ssl
from collections.abc import Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeAlias, TypeVar, cast

from . import amf
from .constants import MessageType as MT
from .errors import ConnectionRejectedError, ProtocolError, RtmpError, StatusError
from .events import (
    AudioData,
    CallResult,
    CommandCall,
    Connected,
    ConnectRejected,
    DataMessage,
    Event,
    Metadata,
    PlayStarted,
    PlayStopped,
    PublishStarted,
    ReconnectRequested,
    Status,
    StreamCreated,
    StreamFailed,
    VideoData,
)
from .media import MAX_HEADERS, PRIMARY_TRACK, HeaderReplay, classify
from .pacing import Pacer, read_buffer
from .session import ClientSession, ConnectionState, SessionConfig
from .session.capabilities import DEFAULT_CAPABILITIES, Capabilities, CapsEx
from .url import RtmpURL, parse_tc_url, parse_url

if TYPE_CHECKING:
    from .media import Frame

__all__ = [
    "FOLLOW_RECONNECT_TIMEOUT",
    "MAX_REPLAY_BYTES",
    "MAX_REPLAY_KEYS",
    "WRITE_HIGH_WATER",
    "Client",
    "ConnectionRejectedError",
    "HeaderReplay",
    "PlayStream",
    "PublishStream",
    "StatusError",
    "connect",
]

log = logging.getLogger("rtmpx.client")

#: Bytes the transport may buffer before ``send_*`` waits for it to drain.
WRITE_HIGH_WATER = 1024 * 1024

#: Seconds a publish stream following a reconnect request keeps trying to
#: reach the new server (0.5 s, 1 s, 2 s, ... apart) before it gives up.
FOLLOW_RECONNECT_TIMEOUT = 15.0

#: What a :class:`HeaderReplay` holds at most: keys (``(kind, track id,
#: header kind)``), and bytes.
MAX_REPLAY_KEYS = MAX_HEADERS
MAX_REPLAY_BYTES = 1024 * 1024

_T = TypeVar("_T")

#: A media payload: any bytes-like object.
Buffer: TypeAlias = bytes | bytearray | memoryview

#: What :func:`connect` calls when the server asks us to reconnect (an
#: awaitable it returns is run as a task).
ReconnectCallback: TypeAlias = Callable[[ReconnectRequested], Any]

_AUDIO, _VIDEO, _DATA = int(MT.AUDIO), int(MT.VIDEO), int(MT.DATA_AMF0)

#: The default capabilities of a connection that does not act on reconnect
#: requests: all but capsEx Reconnect (a server would wait for us in vain).
_NO_RECONNECT = dataclasses.replace(
    DEFAULT_CAPABILITIES, caps_ex=(DEFAULT_CAPABILITIES.caps_ex or CapsEx(0)) & ~CapsEx.RECONNECT)
#: How metadata bodies start (``@setDataFrame("onMetaData", ...)`` or ``onMetaData``).
_METADATA_PREFIXES = (b"\x02\x00\x0d@setDataFrame", b"\x02\x00\x0aonMetaData")


def _as_bytes(payload: Buffer) -> bytes:
    return payload if type(payload) is bytes else bytes(payload)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail a pending future, marked as retrieved (it may have no awaiter
    left, e.g. after a timeout: no "never retrieved" warning)."""
    if not fut.done():
        fut.set_exception(exc)
        fut.exception()




class _FrameLike(Protocol):
    """What :meth:`PublishStream.send_frame` needs of a frame."""

    @property
    def kind(self) -> Any: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def payload(self) -> Buffer: ...


class _Protocol(asyncio.BufferedProtocol):
    """The asyncio edge: hands every callback to its :class:`Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance
        self._client._connection_made(cast(asyncio.Transport, transport))

    def get_buffer(self, sizehint: int) -> memoryview:
        return read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self._client._data_received(read_buffer()[:nbytes])

    def eof_received(self) -> bool | None:
        log.debug("server closed its end")
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._connection_lost(exc)

    def pause_writing(self) -> None:
        self._client._pause_writing()

    def resume_writing(self) -> None:
        self._client._resume_writing()


def _resolve_ssl(url: RtmpURL, ssl: _ssl.SSLContext | bool | None) -> _ssl.SSLContext | None:
    if isinstance(ssl, _ssl.SSLContext):
        return ssl
    if ssl is True or (ssl is None and url.tls):
        return _ssl.create_default_context()
    return None


class Client:
    """One RTMP connection, connected (``connect`` accepted).

    Made by :func:`connect`.  ``url`` is the parsed URL and ``session``
    the :class:`~rtmpx.ClientSession` underneath (for anything this class
    does not wrap: call its methods, then :meth:`flush`).  ``timeout``
    bounds every wait for a server answer (None: no bound).
    ``on_reconnect_request``, ``follow_reconnect`` and
    ``follow_reconnect_timeout``: see :func:`connect`.
    """

    def __init__(self, url: RtmpURL, session: ClientSession, *,
                 timeout: float | None = 10.0,
                 on_reconnect_request: ReconnectCallback | None = None,
                 follow_reconnect: bool = False,
                 follow_reconnect_timeout: float = FOLLOW_RECONNECT_TIMEOUT) -> None:
        self.url = url
        self.session = session
        self.timeout = timeout
        self.connected: Connected | None = None
        #: the server's latest reconnect request, None while it made none
        self.reconnect_request: ReconnectRequested | None = None
        self.on_reconnect_request = on_reconnect_request
        self.follow_reconnect = follow_reconnect
        self.follow_reconnect_timeout = follow_reconnect_timeout
        self._options: dict[str, Any] = {}   # how :func:`connect` made us (to follow a request)
        self._callbacks: set[asyncio.Future[Any]] = set()
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._closing = False
        self._closed_transport = False
        self._lost = False
        self._error: BaseException | None = None
        self._lost_fut: asyncio.Future[None] = self._loop.create_future()
        self._connect_fut: asyncio.Future[Connected] = self._loop.create_future()
        self._calls: dict[float, asyncio.Future[CallResult]] = {}
        self._requests: dict[float, PublishStream | PlayStream] = {}  # by createStream txn
        self._streams: dict[int, PublishStream | PlayStream] = {}
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._read_pausers: set[PlayStream] = set()
        self._backlogged = False
        self._pacer = Pacer(self._receive, self._paced)
        self._reading = True

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<rtmpx.Client {self.url} {state}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- public -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the connection is gone."""
        return self._closing or self._lost

    @property
    def server_capabilities(self) -> Capabilities:
        """What the server's connect ``_result`` says it supports (Enhanced
        RTMP; empty for a legacy server)."""
        return self.session.server_capabilities

    @property
    def reconnect_requested(self) -> bool:
        """Whether the server asked us to reconnect (:attr:`reconnect_request`)."""
        return self.reconnect_request is not None

    async def publish(self, name: str | None = None, type: str = "live") -> PublishStream:
        """Publish ``name`` (default: the URL's stream name).

        Sends releaseStream, FCPublish and createStream, then ``publish``
        once the stream exists, and returns when NetStream.Publish.Start
        arrives.  Raises :class:`StatusError` if the server refuses.
        """
        name = self._stream_name(name)
        self._check_open()
        stream = PublishStream(self, name, type)
        await self._start_publish(stream)
        return stream

    async def _start_publish(self, stream: PublishStream) -> None:
        """Publish ``stream`` here: the whole sequence, to Publish.Start."""
        self._check_open()
        stream._started = self._loop.create_future()
        request = stream._request = self.session.start_publish(stream.name, stream.publish_type)
        self._requests[request] = stream
        self.flush()
        try:
            await self._wait(stream._started)
        except BaseException:
            self._requests.pop(request, None)
            stream._closed = True
            self._forget(stream, delete=True)
            raise
        self._requests.pop(request, None)
        log.info("publishing %r on stream %d", stream.name, stream.stream_id)

    def play(self, name: str | None = None, *, start: float = -2, duration: float = -1,
             buffer_ms: int = 1000, until_unpublish: bool = True, max_queue: int = 1000,
             max_queue_bytes: int = 8 * 1024 * 1024) -> PlayStream:
        """Play ``name`` (default: the URL's stream name).

        Returns a :class:`PlayStream` at once; it starts (createStream,
        ``play``, wait for NetStream.Play.Start) on the first ``await``,
        ``async with`` or ``async for``.  ``start``/``duration`` are those
        of the ``play`` command (-2: live or recorded, -1: until the end);
        ``max_queue`` (messages) and ``max_queue_bytes`` bound what is held
        for a slow consumer before reading pauses.
        """
        return PlayStream(self, self._stream_name(name), start=start, duration=duration,
                          buffer_ms=buffer_ms, until_unpublish=until_unpublish,
                          max_queue=max_queue, max_queue_bytes=max_queue_bytes)

    async def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        """Call a server method; returns the values of its ``_result``
        (after the command object).  ``_error`` raises :class:`StatusError`."""
        self._check_open()
        txn = self.session.call(name, *args)
        fut: asyncio.Future[CallResult] = self._loop.create_future()
        self._calls[txn] = fut
        self.flush()
        try:
            result = await self._wait(fut)
        finally:
            self._calls.pop(txn, None)
        if result.error:
            info = result.args[0] if result.args else None
            raise StatusError.from_info(info, "NetConnection.Call.Failed")
        return result.args

    async def close(self) -> None:
        """Close every stream (FCUnpublish + deleteStream when publishing,
        deleteStream when playing), then the connection, gracefully: what
        we sent is delivered to the end (we half-close and read until the
        server closes), for at most ``timeout`` seconds (10 s when None),
        then the connection is aborted.  Safe to call more than once."""
        self._closing = True  # no new requests from here on
        for stream in list(self._streams.values()):
            await stream.close()
        if not self._closed_transport:
            self._closed_transport = True
            log.debug("closing %s", self.url.redacted)
            transport = self._transport
            if transport is not None and not self._lost:
                if transport.can_write_eof():
                    # a FIN after our last byte; closing at once instead would
                    # reset the connection if the server's data is unread,
                    # and the server would lose the end of what we sent
                    try:
                        transport.write_eof()
                    except OSError:  # the server reset the connection meanwhile
                        transport.abort()
                else:
                    transport.close()
        if self._transport is None:
            self._connection_lost(None)
        if not self._lost_fut.done():
            try:
                async with asyncio.timeout(self.timeout or 10.0):
                    await asyncio.shield(self._lost_fut)
            except TimeoutError:
                log.warning("connection to %s did not close in time: aborting", self.url.netloc)
                if self._transport is not None:
                    self._transport.abort()
                self._connection_lost(None)

    async def wait_closed(self) -> None:
        """Wait until the connection is gone (closed by either side)."""
        await asyncio.shield(self._lost_fut)

    def flush(self) -> int:
        """Write what the session has queued; returns the byte count."""
        out = self.session.data_to_send()
        if out and self._can_write():
            assert self._transport is not None
            self._transport.write(out)
            return len(out)
        return 0

    def _can_write(self) -> bool:
        return self._transport is not None and not self._lost \
            and not self._closed_transport and not self._transport.is_closing()

    # -- helpers for the streams ------------------------------------------------------

    def _stream_name(self, name: str | None) -> str:
        name = self.url.stream if name is None else name
        if not name:
            raise ValueError("no stream name: give one, or put it in the URL")
        return name

    def _closed_error(self) -> BaseException:
        if self._error is not None:
            return self._error
        return ConnectionError("the RTMP connection is closed")

    def _check_open(self) -> None:
        if self.closed:
            raise self._closed_error()

    async def _wait(self, fut: asyncio.Future[_T]) -> _T:
        """Await a server answer, bounded by ``timeout``."""
        if self.timeout is None:
            return await asyncio.shield(fut)
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise TimeoutError(f"no answer from {self.url.netloc} "
                               f"in {self.timeout} s") from None

    async def _drain(self) -> None:
        """Wait while the transport's buffer is above the high-water mark."""
        if self._lost:
            raise self._closed_error()
        if not self._write_paused:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(fut)
        try:
            if self.timeout is None:
                await fut
            else:
                try:
                    async with asyncio.timeout(self.timeout):
                        await fut
                except TimeoutError:
                    raise TimeoutError(f"{self.url.netloc} took none of our data for "
                                       f"{self.timeout} s") from None
        finally:
            if fut in self._drain_waiters:
                self._drain_waiters.remove(fut)

    def _forget(self, stream: PublishStream | PlayStream, *, delete: bool) -> None:
        """Drop a stream; with ``delete``, end it on the server too
        (FCUnpublish and deleteStream for a publish, deleteStream for a play)."""
        stream_id = stream.stream_id
        if stream_id is None:
            # not made yet: if the server makes it later, it is deleted at once
            if delete and stream._request is not None and \
                    self.session.state is ConnectionState.CONNECTED:
                self.session.cancel_request(stream._request)
            return
        if self._streams.get(stream_id) is not stream:
            return
        del self._streams[stream_id]
        if delete and self._can_write() and self.session.state is ConnectionState.CONNECTED \
                and self.session.stream_state(stream_id) is not None:
            if isinstance(stream, PublishStream):
                self.session.stop_publish(stream_id)
            else:
                self.session.stop_play(stream_id)
            self.flush()

    def _pause_reading(self, stream: PlayStream) -> None:
        self._read_pausers.add(stream)
        self._update_reading()

    def _resume_reading(self, stream: PlayStream) -> None:
        if stream in self._read_pausers:
            self._read_pausers.discard(stream)
            self._update_reading()

    def _update_reading(self) -> None:
        """Read from the server unless a play queue is full or our own writes
        are paused (a server that does not read cannot make us buffer our
        answers to it without bound)."""
        want = not self._read_pausers and not self._write_paused and not self._backlogged
        if want == self._reading or self._transport is None or self._lost:
            return
        self._reading = want
        log.debug("%s reads from %s", "resuming" if want else "pausing", self.url.netloc)
        if want:
            self._transport.resume_reading()
        else:
            self._transport.pause_reading()

    # -- the protocol callbacks -------------------------------------------------------

    def _connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.flush()  # C0 + C1

    def _data_received(self, data: Buffer) -> None:
        if not self._lost:
            self._pacer.feed(data)

    def _receive(self, data: Buffer) -> int:
        """Bytes to the session, its events to the streams (for the
        :class:`Pacer`): returns the bytes the session still holds unread,
        or -1 once the connection is gone."""
        if self._lost:
            return -1
        session = self.session
        try:
            events = session.receive_data(data, bounded=True)
            for event in events:
                self._dispatch(event)
        except ProtocolError as exc:
            log.warning("protocol error from %s: %s", self.url.netloc, str(exc)[:200])
            self._fail(exc)
            return -1
        except Exception as exc:  # a bug: fail this connection, not the event loop
            log.exception("error handling data from %s", self.url.netloc)
            self._fail(exc)
            return -1
        self.flush()
        return -1 if self._lost else session.input_pending

    def _paced(self, hold: bool) -> None:
        """The pacer keeps input for a later loop turn: stop reading meanwhile."""
        self._backlogged = hold
        self._update_reading()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, (AudioData, VideoData, Metadata)):
            stream = self._streams.get(event.stream_id)
            if isinstance(stream, PlayStream):
                stream._on_media(event)
        elif isinstance(event, (PublishStarted, PlayStarted, PlayStopped)):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream._on_event(event)
        elif isinstance(event, StreamFailed):
            stream = self._streams.get(event.stream_id) if event.stream_id else \
                self._requests.pop(event.request_id, None)
            if stream is not None:
                stream._on_event(event)
        elif isinstance(event, Status):
            log.debug("onStatus %s %s on stream %d", event.level, event.code, event.stream_id)
            stream = self._streams.get(event.stream_id)
            if isinstance(stream, PlayStream):
                stream.status = event
        elif isinstance(event, StreamCreated):
            owner = self._requests.get(event.transaction_id)
            if owner is not None:
                owner.stream_id = event.stream_id
                self._streams[event.stream_id] = owner
            call = self._calls.pop(event.transaction_id, None)
            if call is not None and not call.done():  # call("createStream")
                call.set_result(CallResult(event.transaction_id, None,
                                           (float(event.stream_id),), False, "createStream"))
        elif isinstance(event, CallResult):
            call = self._calls.pop(event.transaction_id, None)
            if call is not None and not call.done():
                call.set_result(event)
            elif event.error:
                log.debug("_error for %s", event.name or event.transaction_id)
        elif isinstance(event, ReconnectRequested):
            self._on_reconnect_request(event)
        elif isinstance(event, Connected):
            self.connected = event
            if not self._connect_fut.done():
                self._connect_fut.set_result(event)
        elif isinstance(event, ConnectRejected):
            if not self._connect_fut.done():
                _set_exception(self._connect_fut, ConnectionRejectedError(event.info))
            self._closing = True
            if self._transport is not None:
                self._transport.close()
        elif isinstance(event, (CommandCall, DataMessage)):
            log.debug("ignored from server: %s", type(event).__name__)

    def _on_reconnect_request(self, event: ReconnectRequested) -> None:
        self.reconnect_request = event
        log.info("%s asks us to reconnect to %s: %s", self.url.netloc,
                 parse_tc_url(event.tc_url).redacted, event.description[:200])
        if self.follow_reconnect:
            for stream in self._streams.values():
                if isinstance(stream, PublishStream):
                    stream._move_to = event.tc_url
        callback = self.on_reconnect_request
        if callback is None:
            return
        try:
            result = callback(event)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._callbacks.add(task)
                task.add_done_callback(self._callback_done)
        except Exception:  # the application's bug costs it the callback, not the connection
            log.exception("on_reconnect_request failed")

    def _callback_done(self, task: asyncio.Future[Any]) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("on_reconnect_request failed", exc_info=task.exception())

    def _pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def _resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        """The connection is unusable: abort it and wake everyone with ``exc``."""
        if self._error is None:
            self._error = exc
        if self._transport is not None:
            self._transport.abort()
        self._wake_all()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._pacer.finish()  # what the server sent before it went
        self._lost = True
        if exc is not None:
            log.info("connection to %s lost: %s", self.url.netloc, exc)
        else:
            log.debug("connection to %s closed", self.url.netloc)
        if self._error is None and exc is not None and not self._closing:
            err = ConnectionError(f"connection to {self.url.netloc} lost: {exc}")
            err.__cause__ = exc
            self._error = err
        self._wake_all()
        if not self._lost_fut.done():
            self._lost_fut.set_result(None)

    def _wake_all(self) -> None:
        """Fail every pending future with the reason the connection ended."""
        err = self._closed_error()
        futures: list[asyncio.Future[Any]] = [self._connect_fut, *self._calls.values(),
                                              *self._drain_waiters]
        self._calls.clear()
        self._drain_waiters.clear()
        for fut in futures:
            _set_exception(fut, err)
        streams = {*self._streams.values(), *self._requests.values()}
        self._requests.clear()
        for stream in streams:
            stream._on_connection_end(self._error)


class _Connect:
    """What :func:`connect` returns: awaitable, and an async context manager
    that closes the client on exit."""

    def __init__(self, url: str | RtmpURL, kwargs: dict[str, Any]) -> None:
        self._url = url
        self._kwargs = kwargs
        self._client: Client | None = None

    def __await__(self) -> Generator[Any, None, Client]:
        return _open(self._url, **self._kwargs).__await__()

    async def __aenter__(self) -> Client:
        self._client = await _open(self._url, **self._kwargs)
        return self._client

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.close()


def connect(url: str | RtmpURL, *, ssl: _ssl.SSLContext | bool | None = None,
            timeout: float | None = 10.0, chunk_size: int = 4096,
            flash_ver: str = "FMLE/3.0 (compatible; rtmpx)",
            params: dict[str, Any] | None = None, complex_handshake: bool = True,
            config: SessionConfig | None = None,
            capabilities: Capabilities | None = DEFAULT_CAPABILITIES,
            on_reconnect_request: ReconnectCallback | None = None,
            follow_reconnect: bool = False,
            follow_reconnect_timeout: float = FOLLOW_RECONNECT_TIMEOUT) -> _Connect:
    """Connect to an RTMP server; ``await`` it, or use ``async with``.

    Opens TCP (TLS for ``rtmps://`` or when ``ssl`` is given: True for the
    default context, or an :class:`ssl.SSLContext`; False forces plain
    TCP), runs the handshake and ``connect`` and returns the
    :class:`Client` once the server accepted.  ``timeout`` bounds all of
    that and, later, each wait for a server answer.  ``chunk_size`` is the
    size of the chunks we send; ``flash_ver`` and ``params`` go into the
    connect command object; ``config`` (a :class:`~rtmpx.SessionConfig`,
    overriding ``chunk_size``) sets the session's limits.

    ``capabilities`` is what ``connect`` advertises (Enhanced RTMP:
    codecs, capsEx; None: a legacy connect).  The default is what rtmpx
    supports, capsEx Reconnect included when the connection acts on a
    reconnect request: with ``follow_reconnect`` (publish streams follow it
    by themselves, see the module's documentation) or an
    ``on_reconnect_request`` callable (plain or async, given the
    :class:`~rtmpx.events.ReconnectRequested`).  Whatever was advertised,
    a request sets :attr:`Client.reconnect_request`.
    ``follow_reconnect_timeout`` is how long a stream that follows a
    request keeps trying to reach the new server, 0.5 s, 1 s, 2 s, ...
    apart, before a last attempt (a restarting server may take a while to
    listen again); meanwhile its ``send_*`` wait.

    Raises :class:`ConnectionRejectedError`, :class:`TimeoutError`,
    :class:`ConnectionError` (refused or dropped) or
    :class:`~rtmpx.ProtocolError`.
    """
    return _Connect(url, {"ssl": ssl, "timeout": timeout, "chunk_size": chunk_size,
                          "flash_ver": flash_ver, "params": params,
                          "complex_handshake": complex_handshake, "config": config,
                          "capabilities": capabilities,
                          "on_reconnect_request": on_reconnect_request,
                          "follow_reconnect": follow_reconnect,
                          "follow_reconnect_timeout": follow_reconnect_timeout})


async def _open(url: str | RtmpURL, *, ssl: _ssl.SSLContext | bool | None,
                timeout: float | None, chunk_size: int, flash_ver: str,
                params: dict[str, Any] | None, complex_handshake: bool,
                config: SessionConfig | None,
                capabilities: Capabilities | None = DEFAULT_CAPABILITIES,
                on_reconnect_request: ReconnectCallback | None = None,
                follow_reconnect: bool = False,
                follow_reconnect_timeout: float = FOLLOW_RECONNECT_TIMEOUT) -> Client:
    u = parse_url(url) if isinstance(url, str) else url
    context = _resolve_ssl(u, ssl)
    advertised = capabilities
    if capabilities is DEFAULT_CAPABILITIES and not follow_reconnect \
            and on_reconnect_request is None:
        advertised = _NO_RECONNECT  # nobody would act on a request
    session = ClientSession(u.app, u.tc_url,
                           config=config if config is not None
                           else SessionConfig(chunk_size=chunk_size),
                           flash_ver=flash_ver, params=params,
                           complex_handshake=complex_handshake, capabilities=advertised)
    session.connect()  # sent as soon as the handshake is done
    client = Client(u, session, timeout=timeout, on_reconnect_request=on_reconnect_request,
                    follow_reconnect=follow_reconnect,
                    follow_reconnect_timeout=follow_reconnect_timeout)
    client._options = {  # to follow a reconnect request the way we came (TLS by the scheme)
        "ssl": ssl if isinstance(ssl, _ssl.SSLContext) else None, "timeout": timeout,
        "chunk_size": chunk_size, "flash_ver": flash_ver, "params": params,
        "complex_handshake": complex_handshake, "config": config,
        "capabilities": capabilities, "on_reconnect_request": on_reconnect_request,
        "follow_reconnect": follow_reconnect,
        "follow_reconnect_timeout": follow_reconnect_timeout}
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            try:
                await loop.create_connection(
                    lambda: _Protocol(client), u.host, u.port, ssl=context,
                    server_hostname=u.host if context is not None else None)
            except (ConnectionError, TimeoutError, _ssl.SSLError):
                raise
            except OSError as exc:
                raise ConnectionError(f"cannot connect to {u.netloc}: {exc}") from exc
            await client._connect_fut
    except TimeoutError:
        client._fail(TimeoutError(f"connecting to {u.netloc} timed out"))
        raise TimeoutError(f"connecting to {u.redacted} timed out after {timeout} s") from None
    except BaseException as exc:
        client._fail(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
        raise
    log.info("connected to %s", u.redacted)
    return client


class PublishStream:
    """A stream we publish; made by :meth:`Client.publish`.

    ``send_*`` write at once and wait only while the transport's buffer is
    above the high-water mark.  Timestamps are milliseconds.  An async
    context manager that closes the stream (FCUnpublish + deleteStream)
    on exit; the connection stays open.

    On a client made with ``follow_reconnect=True``, the stream follows the
    server's reconnect requests (see :mod:`rtmpx.client`): ``client`` is
    then the connection it moved to (closed with the stream) and
    ``reconnects`` counts the moves.  A move that cannot reach the new
    server at once tries again, 0.5 s, 1 s, 2 s, ... apart, for
    ``follow_reconnect_timeout`` seconds (see :func:`connect`); meanwhile
    every ``send_*`` waits (the frame that started the move is sent
    first, once there).  If it never gets there, the stream is closed and
    every ``send_*`` raises the last error.
    """

    def __init__(self, client: Client, name: str, publish_type: str) -> None:
        self.client = client
        self.stream_id: int | None = None   # known once the server made the stream
        self.name = name
        self.publish_type = publish_type
        self.bytes_sent = 0
        self.reconnects = 0
        self.follow_reconnect = client.follow_reconnect
        self._closed = False
        self._stopped = False                # close() was called
        self._error: BaseException | None = None  # why a move failed
        self._request: float | None = None
        self._started: asyncio.Future[PublishStarted] = client._loop.create_future()
        self._move_to: str | None = None     # a reconnect request to follow
        self._moving: asyncio.Future[None] | None = None  # done when a move is over
        # what a new server needs first: the metadata, the header messages
        self._metadata: tuple[int, bytes] | None = None
        self._headers: HeaderReplay[tuple[int, int, bytes]] = HeaderReplay()
        self._video_sent = False
        self._own_client: Client | None = None  # the connection a move opened

    def __repr__(self) -> str:
        return f"<rtmpx.PublishStream {self.name!r} id={self.stream_id}>"

    @property
    def closed(self) -> bool:
        """True after :meth:`close`, a server error status, or a lost connection."""
        return self._closed or self.client.closed

    async def send_audio(self, timestamp: int, payload: Buffer) -> None:
        """Send an audio message (an FLV audio tag body)."""
        data = _as_bytes(payload)
        if self.follow_reconnect and await self._follow(_AUDIO, timestamp, data):
            return
        self.client.session.send_audio(self._check(), timestamp, data)
        await self._sent()

    async def send_video(self, timestamp: int, payload: Buffer) -> None:
        """Send a video message (an FLV video tag body)."""
        data = _as_bytes(payload)
        if self.follow_reconnect and await self._follow(_VIDEO, timestamp, data):
            return
        self.client.session.send_video(self._check(), timestamp, data)
        await self._sent()

    async def send_metadata(self, metadata: dict[str, Any], timestamp: int = 0) -> None:
        """Send ``@setDataFrame("onMetaData", metadata)``."""
        if self.follow_reconnect:  # the same body, kept to be sent again after a move
            await self.send_data(timestamp, amf.dumps_all(
                ["@setDataFrame", "onMetaData", amf.ECMAArray(metadata)]))
            return
        self.client.session.send_metadata(self._check(), metadata, timestamp)
        await self._sent()

    async def send_data(self, timestamp: int, payload: Buffer) -> None:
        """Send an AMF0 data message body as is."""
        data = _as_bytes(payload)
        if self.follow_reconnect and await self._follow(_DATA, timestamp, data):
            return
        self.client.session.send_data(self._check(), timestamp, data)
        await self._sent()

    async def _follow(self, type_id: int, timestamp: int, data: bytes) -> bool:
        """Keep what a new server needs first (metadata, header messages);
        follow a pending reconnect request at a switch point: a keyframe of
        the primary video track, any message of a stream that sent no
        video, or anything once the old connection is gone.  Waits while
        another task moves the stream.  True when ``data`` was sent by the
        move (a header message it replayed) instead of to be sent now."""
        while self._moving is not None:
            await asyncio.shield(self._moving)
        switch = kept = False
        if type_id == _DATA:
            if data.startswith(_METADATA_PREFIXES):
                self._metadata = (timestamp, data)
                kept = True
        else:
            tracks = classify(type_id, data)
            keys = [(t.kind, t.track_id, t.header) for t in tracks if t.header]
            if keys:
                kept = self._headers.put(keys, (type_id, timestamp, data), len(data))
            elif type_id == _VIDEO:
                switch = any(t.keyframe and t.track_id == PRIMARY_TRACK for t in tracks)
                self._video_sent = True
            else:
                switch = not self._video_sent
        if self._move_to is not None and (switch or self.client.closed):
            await self._move()
            return kept  # a kept message went with the replay
        return False

    async def _move(self) -> None:
        """Follow the reconnect request: unpublish here, publish the same
        name at the new URL (trying again for a while), send the metadata
        and header messages again.  On failure the stream is closed with
        the error, which is raised."""
        url, self._move_to = self._move_to, None
        assert url is not None
        moving = self._moving = self.client._loop.create_future()
        try:
            target = parse_tc_url(url)
            old = self.client
            log.info("publishing %r: moving to %s as the server asked", self.name,
                     target.redacted)
            old._forget(self, delete=True)  # FCUnpublish, deleteStream: the key is free again
            self.stream_id = None
            if not old._streams and not old._requests:
                await old.close()  # before we come back: it may be the same server
            await self._reach(target, old._options)
            self.reconnects += 1
            sid = self._check()
            session = self.client.session
            if self._metadata is not None:
                session.send_data(sid, *self._metadata)
            for type_id, timestamp, data in self._headers:
                if type_id == _VIDEO:
                    session.send_video(sid, timestamp, data)
                else:
                    session.send_audio(sid, timestamp, data)
            # written with the message that made us move, before any other
            # sender (they wake up after this task's next wait)
        except BaseException as exc:
            self._move_failed(exc)
            raise
        finally:
            self._moving = None
            moving.set_result(None)

    async def _reach(self, url: RtmpURL, options: dict[str, Any]) -> None:
        """Connect to ``url`` and publish there, trying again with a backoff
        (a restarting server is not listening yet) until
        ``follow_reconnect_timeout`` has passed, then a last time; the last
        error is raised.  Each attempt is bounded by the client's
        ``timeout``."""
        loop = self.client._loop
        deadline = loop.time() + options.get("follow_reconnect_timeout",
                                             FOLLOW_RECONNECT_TIMEOUT)
        delay = 0.5
        while True:
            new: Client | None = None
            try:
                new = await _open(url, **options)
                self._own_client = self.client = new
                if self._stopped:
                    raise RtmpError(f"publish stream {self.name!r} was closed")
                self._closed = False  # a failed attempt closed it
                await new._start_publish(self)
                return
            except (OSError, RtmpError, TimeoutError) as exc:
                if new is not None:
                    await new.close()
                left = deadline - loop.time()
                if self._stopped or left <= 0:
                    raise
                log.info("publishing %r: %s failed (%s): trying again in %.1f s", self.name,
                         url.redacted, exc, min(delay, left))
            await asyncio.sleep(min(delay, left))
            delay *= 2

    def _move_failed(self, exc: BaseException) -> None:
        """A move failed: the stream is closed, every send raises ``exc``
        (a ConnectionError if the move was cancelled)."""
        error = exc if isinstance(exc, Exception) else ConnectionError(
            f"publish stream {self.name!r}: following the reconnect request was cancelled")
        if self._error is None and not self._stopped:
            self._error = error
            log.warning("publishing %r: could not follow the reconnect request: %s",
                        self.name, error)
        self._closed = True
        _set_exception(self._started, error)
        self.client._forget(self, delete=True)
        own, self._own_client = self._own_client, None
        if own is not None and not own.closed and not own._streams and not own._requests:
            own._fail(ConnectionError("the publish stream that opened it failed to move"))

    async def send_frame(self, frame: Frame | _FrameLike) -> None:
        """Send a :class:`rtmpx.media.Frame` (or anything with ``kind``,
        ``timestamp`` and ``payload``; ``kind`` "audio", "video", or
        "data"/"metadata" for an AMF0 data body)."""
        kind = str(getattr(frame.kind, "value", frame.kind)).lower()
        if kind == "video":
            await self.send_video(frame.timestamp, frame.payload)
        elif kind == "audio":
            await self.send_audio(frame.timestamp, frame.payload)
        elif kind in ("data", "metadata", "script"):
            await self.send_data(frame.timestamp, frame.payload)
        else:
            raise ValueError(f"cannot send a frame of kind {frame.kind!r}")

    async def close(self) -> None:
        """Stop publishing: FCUnpublish and deleteStream (if still connected)."""
        self._stopped = True
        if self._closed and self._own_client is None:
            return
        self._closed = True
        _set_exception(self._started, self._closed_error())
        self.client._forget(self, delete=True)
        log.debug("stopped publishing %r", self.name)
        own, self._own_client = self._own_client, None
        if own is not None and not own._closing:
            await own.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def _check(self) -> int:
        """The stream id, if the stream is open for sending."""
        if self._error is not None:
            raise self._error
        self.client._check_open()
        if self._closed or self.stream_id is None:
            raise self._closed_error()
        return self.stream_id

    def _closed_error(self) -> BaseException:
        if self._error is not None:
            return self._error
        if self.client.closed:
            return self.client._closed_error()
        return RtmpError(f"publish stream {self.name!r} is closed")

    async def _sent(self) -> None:
        self.bytes_sent += self.client.flush()
        await self.client._drain()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PublishStarted):
            if not self._started.done():
                self._started.set_result(event)
        elif isinstance(event, StreamFailed):
            if self._started.done():
                log.warning("publishing %r ended: %s %s", self.name, event.code,
                            event.description)
            _set_exception(self._started,
                           StatusError(event.code, event.description, event.info))
            self._closed = True

    def _on_connection_end(self, error: BaseException | None) -> None:
        if self._move_to is not None and self._started.done() \
                and not isinstance(error, ProtocolError):
            return  # the old server went first: the next message moves the stream
        self._closed = True
        _set_exception(self._started, self.client._closed_error())


class PlayStream:
    """A stream we play; made by :meth:`Client.play`.

    ``async for`` yields :class:`rtmpx.media.Frame` objects for audio and
    video and the :class:`~rtmpx.events.Metadata` event for onMetaData
    (``metadata`` keeps the last one's dict).  The iteration ends when the
    server says the stream ended (NetStream.Play.UnpublishNotify,
    Play.Stop, Play.Complete or StreamEOF, with ``until_unpublish``), or
    when the connection closes; a protocol error is raised.  Awaiting
    the stream, or ``async with``, starts it and waits for
    NetStream.Play.Start (:class:`StatusError` if the server refuses).
    With ``until_unpublish=False`` the iteration goes on across an
    unpublish, for as long as the server keeps the stream.
    """

    def __init__(self, client: Client, name: str, *, start: float, duration: float,
                 buffer_ms: int, until_unpublish: bool, max_queue: int,
                 max_queue_bytes: int) -> None:
        if max_queue < 1 or max_queue_bytes < 1:
            raise ValueError("max_queue and max_queue_bytes must be positive")
        self.client = client
        self.name = name
        self.stream_id: int | None = None
        self.metadata: dict[str, Any] | None = None
        self.status: Status | None = None
        self.until_unpublish = until_unpublish
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self._args = (start, duration, buffer_ms)
        self._queue: collections.deque[AudioData | VideoData | Metadata] = collections.deque()
        self._queued_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._started: asyncio.Future[PlayStarted] = client._loop.create_future()
        self._request: float | None = None
        self._start_lock = asyncio.Lock()
        self._running = False
        self._start_error: Exception | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<rtmpx.PlayStream {self.name!r} id={self.stream_id}>"

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or once the connection is gone."""
        return self._closed or self.client.closed

    async def start(self) -> PlayStream:
        """createStream, ``play``, and wait for NetStream.Play.Start (once)."""
        async with self._start_lock:
            if self._start_error is not None:
                raise self._start_error
            if self._running:
                return self
            if self._closed:
                raise RtmpError(f"play stream {self.name!r} is closed")
            try:
                await self._start()
            except Exception as exc:
                self._start_error = exc
                self._end(None)
                self.client._forget(self, delete=True)
                raise
            self._running = True
            return self

    async def _start(self) -> None:
        client = self.client
        client._check_open()
        start, duration, buffer_ms = self._args
        request = self._request = client.session.start_play(self.name, start, duration, True,
                                                             buffer_ms)
        client._requests[request] = self
        client.flush()
        try:
            started = await client._wait(self._started)
        finally:
            client._requests.pop(request, None)
        log.info("playing %r on stream %d (%s)", self.name, started.stream_id, started.code)

    def __await__(self) -> Generator[Any, None, PlayStream]:
        return self.start().__await__()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def __aiter__(self) -> PlayStream:
        return self

    async def __anext__(self) -> Frame | Metadata:
        if not self._running:
            await self.start()
        while True:
            if self._queue:
                item = self._queue.popleft()
                self._queued_bytes -= len(item.payload)
                if len(self._queue) <= self.max_queue // 2 \
                        and self._queued_bytes <= self.max_queue_bytes // 2:
                    self.client._resume_reading(self)
                return self._convert(item)
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = self.client._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def close(self) -> None:
        """Stop playing (deleteStream, if still connected); ends the iteration."""
        if self._closed:
            return
        self._closed = True
        _set_exception(self._started, self.client._closed_error() if self.client.closed
                       else RtmpError(f"play stream {self.name!r} was closed"))
        self._end(None)
        self._queue.clear()
        self._queued_bytes = 0
        self.client._resume_reading(self)
        self.client._forget(self, delete=True)

    @staticmethod
    def _convert(item: AudioData | VideoData | Metadata) -> Frame | Metadata:
        if isinstance(item, Metadata):
            return item
        from . import media  # the parser lives in its own module

        if isinstance(item, VideoData):
            return media.parse_video(item.timestamp, item.payload)
        return media.parse_audio(item.timestamp, item.payload)

    # -- from the client ----------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            if error is not None:
                self._error = error
        self._wake()

    def _on_media(self, event: AudioData | VideoData | Metadata) -> None:
        if self._ended:
            return
        if isinstance(event, Metadata):
            self.metadata = event.metadata
        self._queue.append(event)
        self._queued_bytes += len(event.payload)
        if len(self._queue) >= self.max_queue or self._queued_bytes >= self.max_queue_bytes:
            self.client._pause_reading(self)
        self._wake()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PlayStarted):
            if not self._started.done():
                self._started.set_result(event)
        elif isinstance(event, PlayStopped):
            if self.until_unpublish:  # policy: the session only says the stream ended
                log.debug("play %r ended: %s", self.name, event.code or "StreamEOF")
                self._end(None)
        elif isinstance(event, StreamFailed):
            error = StatusError(event.code, event.description, event.info)
            if self._started.done():
                self._end(error)
            else:
                _set_exception(self._started, error)

    def _on_connection_end(self, error: BaseException | None) -> None:
        _set_exception(self._started, self.client._closed_error())
        self._end(error if isinstance(error, ProtocolError) else None)
