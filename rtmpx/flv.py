"""FLV files (FLV 10.1, with Enhanced RTMP tag bodies): :class:`FLVWriter`
and :class:`FLVReader`.

::

    >>> from rtmpx.flv import FLVWriter, FLVReader, read_tags
    >>> with FLVWriter("out.flv") as w:
    ...     w.write_metadata({"width": 1280.0, "height": 720.0})
    ...     w.write_tag(9, 0, video_sequence_header)
    ...     w.write_tag(9, 0, video_keyframe)
    >>> with FLVReader("out.flv") as r:
    ...     for tag in r:
    ...         print(tag.type_id, tag.timestamp, tag.frame().codec if tag.is_video else "")

Layout: a 9-byte header (``"FLV"``, version 1, flags 4 = audio | 1 = video,
UI32 DataOffset = 9), UI32 PreviousTagSize0 = 0, then tags: UI8 type
(8 audio, 9 video, 18 script data; bit 0x20 = Filter, an encrypted body),
UI24 DataSize, UI24 Timestamp, UI8 TimestampExtended (bits 24-31), UI24
StreamID (0), the body, UI32 PreviousTagSize = 11 + DataSize.

The writer flushes after each tag by default, so that a process killed
while recording leaves a file that players and FFmpeg read up to its last
complete tag; the reader stops cleanly at such a torn last tag
(``reader.truncated``).  No ``os.fsync``: a crash of the machine, not of
the process, may still lose what the OS had not written.

Security: ``max_tag_size`` bounds the memory one tag may take (a DataSize
above it raises :class:`~rtmpx.errors.ProtocolError`); script data is
decoded only on request (:meth:`Tag.script`), with the AMF decoder's limits.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Final, Self, Union

from . import amf
from .errors import ProtocolError
from .media import AUDIO, Buffer, Frame, parse_audio, parse_video

__all__ = [
    "AUDIO_TAG",
    "DEFAULT_MAX_TAG_SIZE",
    "SCRIPT_TAG",
    "VIDEO_TAG",
    "FLVReader",
    "FLVWriter",
    "Tag",
    "encode_header",
    "encode_tag",
    "read_tags",
]

AUDIO_TAG: Final = 8
VIDEO_TAG: Final = 9
SCRIPT_TAG: Final = 18
DEFAULT_MAX_TAG_SIZE: Final = 16 * 1024 * 1024

_FILTER: Final = 0x20
_HEADER: Final = struct.Struct(">3sBBI")  # signature, version, flags, data offset
_TAG: Final = struct.Struct(">II3x")  # type << 24 | size, ts24 << 8 | ts_ext, stream id
_U32: Final = struct.Struct(">I")
_MAX_DATA_SIZE: Final = 0xFFFFFF

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]


def encode_header(*, audio: bool = True, video: bool = True) -> bytes:
    """The 13 bytes an FLV stream starts with: the header (with the audio
    and video flags given) and PreviousTagSize0."""
    return _HEADER.pack(b"FLV", 1, (4 if audio else 0) | (1 if video else 0), 9) + bytes(4)


def encode_tag(type_id: int, timestamp: int, payload: Buffer) -> bytes:
    """One tag and its PreviousTagSize: ``type_id`` 8 (audio), 9 (video) or
    18 (script data), ``timestamp`` in ms (0 to 2**32 - 1; the high byte
    goes in TimestampExtended), ``payload`` any buffer of at most 16 MiB - 1.
    Raises ValueError for values out of those ranges."""
    if not 0 <= type_id < 32:
        raise ValueError(f"FLV tag type must be 0-31, not {type_id}")
    if not 0 <= timestamp <= 0xFFFFFFFF:
        raise ValueError(f"FLV timestamp must be 0 to 2**32 - 1 ms, not {timestamp}")
    size = memoryview(payload).nbytes
    if size > _MAX_DATA_SIZE:
        raise ValueError(f"FLV tag body of {size} bytes exceeds 16 MiB - 1")
    return b"".join((_TAG.pack((type_id << 24) | size,
                               ((timestamp & 0xFFFFFF) << 8) | (timestamp >> 24)),
                     payload, _U32.pack(11 + size)))


def _open(target: PathOrFile, mode: str) -> tuple[IO[bytes], bool]:
    if isinstance(target, (str, os.PathLike)):
        return open(target, mode), True  # closed by close()
    return target, False


class FLVWriter:
    """Write an FLV file tag by tag.

    ``file`` is a path (opened, and closed by :meth:`close`) or a binary file
    object (written to, flushed, left open).  The header is written at
    once, with the audio/video flags given.  With ``flush_each_tag`` (the
    default) every tag is flushed as soon as it is written.  With
    ``append`` the tags go after those of an existing file (a path is opened
    for appending; a file object must be positioned after its last complete
    tag) and no header is written.
    """

    def __init__(self, file: PathOrFile, *, audio: bool = True, video: bool = True,
                 flush_each_tag: bool = True, append: bool = False) -> None:
        self._file, self._owned = _open(file, "ab" if append else "wb")
        self._flush = flush_each_tag
        self._closed = False
        self.tags_written = 0
        self.bytes_written = 0
        if not append:
            self._file.write(encode_header(audio=audio, video=video))
            self.bytes_written = 13
        if flush_each_tag:
            self._file.flush()

    def write_tag(self, type_id: int, timestamp: int, payload: Buffer) -> None:
        """Write one tag: ``type_id`` 8 (audio), 9 (video) or 18 (script
        data), ``timestamp`` in ms (0 to 2**32 - 1; the high byte goes in
        TimestampExtended), ``payload`` any buffer of at most 16 MiB - 1."""
        if self._closed:
            raise ValueError("write to a closed FLVWriter")
        tag = encode_tag(type_id, timestamp, payload)
        self._file.write(tag)
        self.bytes_written += len(tag)
        self.tags_written += 1
        if self._flush:
            self._file.flush()

    def write_frame(self, frame: Frame) -> None:
        """Write a :class:`~rtmpx.media.Frame` as an audio or video tag."""
        self.write_tag(AUDIO_TAG if frame.kind == AUDIO else VIDEO_TAG, frame.timestamp,
                       frame.payload)

    def write_metadata(self, metadata: Mapping[str, Any], *, timestamp: int = 0,
                       name: str = "onMetaData") -> None:
        """Write a script data tag ``name`` + ECMA array (AMF0)."""
        body = amf.dumps_all([name, amf.ECMAArray(metadata)])
        self.write_tag(SCRIPT_TAG, timestamp, body)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.flush()
        finally:
            if self._owned:
                self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Tag:
    """One FLV tag: ``type_id`` (8 audio, 9 video, 18 script data; the Filter
    bit removed), ``timestamp`` (ms, with TimestampExtended), ``payload``
    (the body), ``offset`` (of the tag header in the file), ``encrypted``
    (the Filter bit: the body is encrypted and not parsed), ``stream_id``
    (always 0 in a valid file)."""

    type_id: int
    timestamp: int
    payload: bytes
    offset: int
    encrypted: bool = False
    stream_id: int = 0

    @property
    def is_audio(self) -> bool:
        return self.type_id == AUDIO_TAG

    @property
    def is_video(self) -> bool:
        return self.type_id == VIDEO_TAG

    @property
    def is_script(self) -> bool:
        return self.type_id == SCRIPT_TAG

    def frame(self, *, strict: bool = False) -> Frame:
        """The audio or video body as a :class:`~rtmpx.media.Frame`."""
        if self.encrypted:
            raise ProtocolError(f"FLV tag at offset {self.offset} is encrypted (Filter bit)")
        if self.type_id == VIDEO_TAG:
            return parse_video(self.timestamp, self.payload, strict=strict)
        if self.type_id == AUDIO_TAG:
            return parse_audio(self.timestamp, self.payload, strict=strict)
        raise ValueError(f"FLV tag of type {self.type_id} is not audio or video")

    def script(self, **amf_options: Any) -> list[Any]:
        """The AMF0 values of a script data tag, e.g. ``["onMetaData",
        ECMAArray(...)]``; ``amf_options`` go to :func:`rtmpx.amf.loads_all`.
        Raises :class:`~rtmpx.errors.AMFDecodeError` for bad AMF."""
        if self.type_id != SCRIPT_TAG:
            raise ValueError(f"FLV tag of type {self.type_id} is not script data")
        if self.encrypted:
            raise ProtocolError(f"FLV tag at offset {self.offset} is encrypted (Filter bit)")
        return amf.loads_all(self.payload, **amf_options)


class FLVReader:
    """Read an FLV file: the header at once, then tags by iteration.

    ``file`` is a path (opened, and closed by :meth:`close`) or a binary
    file object read from its current position.  Attributes: ``version``,
    ``has_audio``, ``has_video``, ``data_offset`` (header bytes beyond 9 are
    skipped); after iteration, ``truncated`` (the file ended inside a tag or
    its PreviousTagSize: a killed writer) and ``bad_previous_sizes`` (count
    of PreviousTagSize fields that do not match, which are otherwise
    ignored).

    A tag whose body is complete is returned even when its PreviousTagSize
    is cut off.  Raises :class:`~rtmpx.errors.ProtocolError` for a bad
    signature, a DataOffset below 9, or a DataSize above ``max_tag_size``
    (a security setting: the memory one tag may take).
    """

    def __init__(self, file: PathOrFile, *, max_tag_size: int = DEFAULT_MAX_TAG_SIZE) -> None:
        self._file, self._owned = _open(file, "rb")
        self.max_tag_size = max_tag_size
        self.truncated = False
        self.bad_previous_sizes = 0
        self._done = False
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    def _read_header(self) -> None:
        head = self._file.read(9)
        if len(head) < 9 or head[:3] != b"FLV":
            raise ProtocolError(f"not an FLV file (starts with {bytes(head[:9])!r})")
        _sig, self.version, self.flags, self.data_offset = _HEADER.unpack(head)
        if self.data_offset < 9:
            raise ProtocolError(f"FLV DataOffset {self.data_offset} is below 9")
        self.has_audio = bool(self.flags & 4)
        self.has_video = bool(self.flags & 1)
        extra = self.data_offset - 9
        if extra and len(self._file.read(extra)) < extra:
            self.truncated = True
            self._done = True
            return
        self._pos = self.data_offset
        first = self._file.read(4)
        if len(first) < 4:
            self.truncated = len(first) > 0
            self._done = True
            return
        if first != b"\x00\x00\x00\x00":
            self.bad_previous_sizes += 1
        self._pos += 4

    def read_tag(self) -> Tag | None:
        """The next tag, or ``None`` at the end of the file (clean or torn)."""
        if self._done:
            return None
        read = self._file.read
        head = read(11)
        if len(head) < 11:
            self._done = True
            self.truncated = len(head) > 0
            return None
        word, ts_word = _TAG.unpack(head)
        size = word & 0xFFFFFF
        if size > self.max_tag_size:
            self._done = True
            raise ProtocolError(
                f"FLV tag at offset {self._pos} has {size} bytes, above max_tag_size "
                f"{self.max_tag_size}")
        body = read(size)
        if len(body) < size:
            self._done = True
            self.truncated = True
            return None
        kind = word >> 24
        tag = Tag(kind & 0x1F, (ts_word >> 8) | ((ts_word & 0xFF) << 24), body, self._pos,
                  bool(kind & _FILTER), int.from_bytes(head[8:11], "big"))
        trailer = read(4)
        if len(trailer) < 4:
            self._done = True
            self.truncated = True
        elif _U32.unpack(trailer)[0] != 11 + size:
            self.bad_previous_sizes += 1
        self._pos += 15 + size
        return tag

    def __iter__(self) -> Iterator[Tag]:
        while True:
            tag = self.read_tag()
            if tag is None:
                return
            yield tag

    def close(self) -> None:
        """Close the file if this reader opened it."""
        if self._owned:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_tags(file: PathOrFile, *, max_tag_size: int = DEFAULT_MAX_TAG_SIZE) -> list[Tag]:
    """Every complete tag of an FLV file (see :class:`FLVReader`)."""
    with FLVReader(file, max_tag_size=max_tag_size) as reader:
        return list(reader)

