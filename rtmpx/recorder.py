"""Recording a live stream to an FLV file, flushed tag by tag.

A killed server leaves a file that FFmpeg reads to its last complete tag.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .flv import FLVReader, FLVWriter

if TYPE_CHECKING:
    from .hub import Channel
    from .server import Request, Server

__all__ = ["Recorder", "recording_path"]

log = logging.getLogger("rtmpx.server")


def recording_path(record_dir: Path, app: str, name: str, when: float | None = None) -> Path:
    """``record_dir/app/name-YYYYmmdd-HHMMSS.flv``, with safe file names."""
    from .server import safe_name

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return record_dir / safe_name(app) / f"{safe_name(name)}-{stamp}.flv"


def _newest_recording(record_dir: Path, app: str, name: str) -> Path | None:
    from .server import safe_name

    folder = record_dir / safe_name(app)
    found = sorted(folder.glob(f"{safe_name(name)}-*.flv"))
    return found[-1] if found else None


class Recorder:
    """Writes every message of a channel to an FLV file while attached."""

    def __init__(self, path: Path, channel: Channel, *, append: bool = False) -> None:
        self.path = path
        self.channel = channel
        self.offset = 0
        self._first: int | None = None
        last = None
        if append and path.exists():
            size = path.stat().st_size
            end = 13  # after the header and PreviousTagSize0
            with FLVReader(path) as reader:
                for tag in reader:
                    tag_end = tag.offset + 15 + len(tag.payload)
                    if tag_end <= size:  # complete, with its PreviousTagSize
                        last, end = tag.timestamp, tag_end
            if end < size:  # a killed recording: drop its torn last tag
                os.truncate(path, end)
        self.writer = FLVWriter(path, append=append and path.exists())
        self._resume_after = last
        self.tags = 0
        channel.listeners.append(self._on_message)
        log.info("recording %s to %s%s", channel.key, path, " (append)" if append else "")

    @classmethod
    def start(cls, server: Server, request: Request, record: Any, channel: Channel) -> Recorder:
        """A recorder for a publish: ``record`` is True (the server's
        record_dir, or ./recordings) or an explicit path."""
        if record is True:
            record_dir = server.record_dir if server.record_dir is not None else Path("recordings")
            append = request.publish_type == "append"
            path = _newest_recording(record_dir, request.app, request.name) if append else None
            if path is None:
                path = recording_path(record_dir, request.app, request.name)
                append = False
        else:
            path = Path(record)
            append = request.publish_type == "append"
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, channel, append=append)

    def _on_message(self, type_id: int, timestamp: int, payload: bytes,
                    metadata: dict[str, Any] | None) -> None:
        if self._first is None:
            self._first = timestamp
            if self._resume_after is not None:  # appending: continue after the last tag
                self.offset = self._resume_after + 1 - timestamp
        try:
            self.writer.write_tag(type_id, (timestamp + self.offset) & 0xFFFFFFFF, payload)
            self.tags += 1
        except OSError as exc:
            log.error("recording %s failed: %s", self.path, exc)
            self.close()

    def close(self) -> None:
        """Detach from the channel and close the file."""
        try:
            self.channel.listeners.remove(self._on_message)
        except ValueError:
            pass
        self.writer.close()
        log.info("recorded %d tags of %s to %s", self.tags, self.channel.key, self.path)
