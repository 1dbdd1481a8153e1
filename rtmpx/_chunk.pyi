"""Type stub of :mod:`rtmpx._chunk`, the compiled RTMP chunk stream codec.

:mod:`rtmpx._chunk_py` is its pure-Python twin with the same API.
"""

__all__ = ["ChunkReader", "ChunkWriter", "Message", "default_csid"]

def default_csid(type_id: int) -> int:
    """The chunk stream id the writer uses for a message of ``type_id``."""

class Message:
    """One RTMP message.  Immutable; compares equal on all five fields."""

    @property
    def type_id(self) -> int: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def stream_id(self) -> int: ...
    @property
    def csid(self) -> int | None: ...
    def __init__(
        self,
        type_id: int,
        payload: bytes,
        timestamp: int = 0,
        stream_id: int = 0,
        csid: int | None = None,
    ) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class ChunkReader:
    """Reassembles RTMP messages from the chunk stream (any split of the input)."""

    def __init__(
        self,
        *,
        max_message_size: int = 8 * 1024 * 1024,
        max_chunk_streams: int = 64,
        max_buffered: int = 16 * 1024 * 1024,
        max_messages: int = 0,
    ) -> None: ...
    @property
    def chunk_size(self) -> int:
        """The current inbound chunk size (128 until a Set Chunk Size)."""
    @property
    def bytes_received(self) -> int:
        """Every byte ever given to :meth:`feed`."""
    @property
    def buffered(self) -> int:
        """Bytes of incomplete messages held now (bounded by ``max_buffered``),
        and :attr:`pending` input."""
    @property
    def pending(self) -> int:
        """Bytes of input a feed bounded by ``max_messages`` left unread:
        the next feed (``feed(b"")`` too) reads them first."""
    def set_limits(
        self,
        *,
        max_message_size: int | None = None,
        max_chunk_streams: int | None = None,
        max_buffered: int | None = None,
    ) -> None:
        """Change limits (those given); they apply to what comes next.

        A server keeps small limits until a peer's connect is accepted,
        then raises them."""
    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Consume ``data`` (after any :attr:`pending` input); return every
        message it completes, in order: at most ``max_messages`` (when not
        0), the rest of the input is then :attr:`pending`.

        Raises :class:`rtmpx.errors.ProtocolError` when the peer breaks the
        protocol or a limit; the reader is unusable afterwards.
        """

class ChunkWriter:
    """Splits messages into chunks with the most compact headers."""

    def __init__(self, *, chunk_size: int = 128) -> None: ...
    @property
    def chunk_size(self) -> int:
        """The current outbound chunk size."""
    def set_chunk_size(self, size: int) -> bytes:
        """Encode a Set Chunk Size message; ``size`` applies to what follows it."""
    def forget(self, csid: int) -> None:
        """Forget what was last sent on chunk stream ``csid``: its next
        message gets a full (fmt 0) header."""
    def encode(self, message: Message) -> bytes:
        """Return ``message`` as chunks."""
