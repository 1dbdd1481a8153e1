"""Recording live streams to FLV files, on a thread of their own.

Nothing recorded is ever overwritten or mixed: every recording is a new
file made with an exclusive create (``name-YYYYmmdd-HHMMSS.flv``, then
``-1``, ``-2``, ... on a collision); file names encode app and stream names
one-to-one (two names never share a file); ``append`` continues only the
newest recording of the very same key, and only one recorder writes to a
key's recordings at a time.

The file work (the scan before an append, the writes, the flushes) runs
on the recorder's own thread, never on the event loop.  Each batch of
tags is flushed as it is written, so a killed server leaves a file that
FFmpeg reads to its last complete tag.  A recorder whose disk cannot keep
up pauses its publisher (like a slow ingest consumer) once ``max_bytes``
are waiting, and gives up (the file ends with what was queued) if the
disk has not caught up within the server's ``hold_timeout``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import ProtocolError
from ..flv import FLVReader, FLVWriter
from .hub import PACKET_OVERHEAD, Packet, Publication, StreamKey

__all__ = ["Recorder", "Recordings", "encode_name", "recording_path"]

log = logging.getLogger("rtmpx.server")

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_NAME = 120
_BATCH = 256


def encode_name(text: str) -> str:
    """A file-name-safe form of an app or stream name, one-to-one: letters,
    digits, ``_`` and ``-`` stay, every other byte of its UTF-8 becomes
    ``%XX`` (so ``..``, ``/`` and NUL cannot escape or collide).  A long
    name keeps its start and ends in ``~`` and a hash of the whole."""
    out = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8",
                                                                           "surrogatepass"))
                  for c in text) or "%"
    if len(out) > _MAX_NAME:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        out = f"{out[:_MAX_NAME - 21]}~{digest}"
    return out


def recording_path(record_dir: Path, key: StreamKey, when: float | None = None,
                   n: int = 0) -> Path:
    """``record_dir/app/name-YYYYmmdd-HHMMSS.flv`` (``-n`` before ``.flv``
    when ``n``), with encoded names."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    suffix = f"-{n}" if n else ""
    return record_dir / encode_name(key.app) / f"{encode_name(key.name)}-{stamp}{suffix}.flv"


def _series(folder: Path, name: str) -> list[Path]:
    """The recordings of one stream in ``folder``, oldest first."""
    pattern = re.compile(re.escape(encode_name(name)) + r"-(\d{8}-\d{6})(?:-(\d+))?\.flv")
    found: list[tuple[str, int, Path]] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        match = pattern.fullmatch(path.name)
        if match:
            found.append((match[1], int(match[2] or 0), path))
    return [path for _, _, path in sorted(found)]


def _create(path: Path) -> tuple[Path, IO[bytes]]:
    """Open a new file at ``path``, or next to it (``-1``, ``-2``, ...):
    never an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path
    for n in range(1, 10_000):
        try:
            return candidate, open(candidate, "xb")
        except FileExistsError:
            candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    raise OSError(f"no free file name next to {path}")


def _resume_point(path: Path) -> int | None:
    """Scan a recording to append to: cut a torn last tag (a killed
    server) and return the last complete tag's timestamp (None: no tags)."""
    size = path.stat().st_size
    end = 13  # after the header and PreviousTagSize0
    last = None
    with FLVReader(path) as reader:
        for tag in reader:
            tag_end = tag.offset + 15 + len(tag.payload)
            if tag_end <= size:  # complete, with its PreviousTagSize
                last, end = tag.timestamp, tag_end
    if end < size:
        os.truncate(path, end)
    return last


class Recorder:
    """Writes every packet of one publication to an FLV file (a follower
    of the publication).  ``path`` is known once the file is open."""

    def __init__(self, recordings: Recordings, publication: Publication, *,
                 path: Path | None, record_dir: Path, append: bool, max_bytes: int) -> None:
        self.key = publication.key
        self.path: Path | None = None
        self.tags = 0
        self.failed: str | None = None
        self.max_bytes = max_bytes
        self._recordings = recordings
        self._publication: Publication | None = publication
        self._explicit = path
        self._record_dir = record_dir
        self._append = append
        self._queue: queue.SimpleQueue[tuple[int, int, bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._paused = False
        self._stopped = False
        self._stop_seen = False   # the thread took the stop marker
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self._loop.create_future()
        publication.follow(self)
        self._thread = threading.Thread(target=self._run, name=f"rtmpx-record {self.key}",
                                        daemon=True)
        self._thread.start()

    @property
    def queued_bytes(self) -> int:
        """Bytes queued for the writer thread, not on disk yet."""
        return self._queued

    def __repr__(self) -> str:
        return f"<Recorder {self.key} -> {self.path}>"

    # -- the Subscriber contract (event loop) ------------------------------------------

    def publish_started(self, publication: Publication, now: float) -> None:
        pass  # made at the start of its publication

    def packet(self, packet: Packet, now: float) -> None:
        if self._stopped:
            return
        with self._lock:
            self._queued += len(packet.payload) + PACKET_OVERHEAD
            full = self._queued > self.max_bytes
        self._queue.put((packet.type_id, packet.timestamp, packet.payload))
        if full and not self._paused and self._publication is not None:
            self._paused = True
            self._publication.pause(self, now)

    def publish_ended(self, publication: Publication, reason: str) -> None:
        self.stop()

    def hold_expired(self) -> None:
        """The disk did not take what was queued for the server's hold
        timeout: the recording ends with what is queued (the live stream
        must not wait on it any longer)."""
        self._paused = False
        self.failed = "the disk did not keep up"
        log.error("recording %s to %s stopped: the disk did not keep up", self.key, self.path)
        self.stop()

    def stop(self) -> None:
        """Finish the file with what is queued, then close it (see :attr:`done`)."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._resume()
            self._publication = None

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._publication is not None:
                self._publication.resume(self)

    def _drained(self) -> None:
        with self._lock:
            low = self._queued <= self.max_bytes // 2
        if low:
            self._resume()

    def _call(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop (from the thread)."""
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _finished(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        self._recordings.finished(self)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with self._recordings.series_lock(self._series_key()):
                self._record()
        except Exception as exc:  # a bug must not kill the thread silently
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("recording %s failed", self.key)
            self._discard_rest()
        finally:
            self._call(self._finished)

    def _series_key(self) -> str:
        if self._explicit is not None:
            return str(self._explicit.resolve())
        folder = (self._record_dir / encode_name(self.key.app)).resolve()
        return f"{folder}/{encode_name(self.key.name)}"

    def _open(self) -> tuple[FLVWriter, IO[bytes], int | None]:
        """The file to write, and the timestamp to continue after (append)."""
        explicit = self._explicit
        if self._append:
            if explicit is not None:
                target = explicit if explicit.exists() else None
            else:
                found = _series(self._record_dir / encode_name(self.key.app), self.key.name)
                target = found[-1] if found else None
            if target is not None:
                try:
                    last = _resume_point(target)
                    file: IO[bytes] = open(target, "ab")  # noqa: SIM115 - closed by the recorder
                except (OSError, ProtocolError) as exc:
                    log.error("cannot append to %s (%s): recording to a new file", target, exc)
                else:
                    self.path = target
                    return FLVWriter(file, append=True), file, last
        path = explicit if explicit is not None else recording_path(self._record_dir, self.key)
        self.path, file = _create(path)
        return FLVWriter(file), file, None

    def _record(self) -> None:
        try:
            writer, file, resume_after = self._open()
        except OSError as exc:
            self.failed = str(exc)
            log.error("cannot record %s: %s", self.key, exc)
            self._discard_rest()
            return
        log.info("recording %s to %s%s", self.key, self.path,
                 " (append)" if resume_after is not None else "")
        offset: int | None = None
        try:
            while True:
                batch = self._take()
                size = 0
                for item in batch:
                    if item is None:
                        continue
                    type_id, timestamp, payload = item
                    if offset is None:  # appending: continue after the last tag
                        offset = 0 if resume_after is None else resume_after + 1 - timestamp
                    writer.write_tag(type_id, (timestamp + offset) & 0xFFFFFFFF, payload)
                    size += len(payload) + PACKET_OVERHEAD
                    self.tags += 1
                writer.flush()
                self._release(size)
                if batch[-1] is None:
                    break
        except OSError as exc:
            self.failed = str(exc)
            log.error("recording %s to %s failed: %s", self.key, self.path, exc)
            self._discard_rest()
        finally:
            writer.close()
            file.close()
        log.info("recorded %d tags of %s to %s", self.tags, self.key, self.path)

    def _take(self) -> list[tuple[int, int, bytes] | None]:
        """The next batch of queued items (waits for one); ends at the stop marker."""
        batch = [self._queue.get()]
        while batch[-1] is not None and len(batch) < _BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._stop_seen = batch[-1] is None
        return batch

    def _release(self, size: int) -> None:
        with self._lock:
            self._queued -= size
        self._call(self._drained)

    def _discard_rest(self) -> None:
        """Writing failed: drop what comes until the stop marker (never
        hold the publisher back for a recording that cannot go on)."""
        self._call(self._stop_from_thread)
        while not self._stop_seen:
            self._stop_seen = self._queue.get() is None
        with self._lock:
            self._queued = 0

    def _stop_from_thread(self) -> None:
        publication = self._publication
        self.stop()
        if publication is not None:
            publication.unfollow(self)


class Recordings:
    """The recorders of one server: one writer per key's recordings at a
    time, and a way to wait until every file is closed."""

    def __init__(self, record_dir: Path | None, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.record_dir = record_dir
        self.max_bytes = max_bytes
        self.active: set[Recorder] = set()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    def start(self, publication: Publication, record: bool | str | os.PathLike[str],
              publish_type: str) -> Recorder:
        """Record ``publication``: ``record`` is True (the record_dir, or
        ./recordings) or an explicit path; ``publish_type`` ``append``
        continues the latest recording of the key."""
        path = None if isinstance(record, bool) else Path(record)
        recorder = Recorder(self, publication, path=path,
                            record_dir=self.record_dir or Path("recordings"),
                            append=publish_type == "append", max_bytes=self.max_bytes)
        self.active.add(recorder)
        return recorder

    def finished(self, recorder: Recorder) -> None:
        self.active.discard(recorder)

    def writing(self, key: StreamKey) -> list[asyncio.Future[None]]:
        """The ``done`` futures of the recorders of ``key`` whose file is
        not closed yet (before another process may write the key's files)."""
        return [r.done for r in self.active if r.key == key and not r.done.done()]

    @contextmanager
    def series_lock(self, key: str) -> Iterator[None]:
        """Held (on a recorder's thread) while it writes a key's recordings."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    async def close(self, timeout: float = 30.0) -> None:
        """Stop every recorder and wait (bounded) until its file is closed."""
        for recorder in list(self.active):
            recorder.stop()
        pending = [r.done for r in self.active]
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            if late:
                log.error("%d recordings did not finish within %.0f s", len(late), timeout)
