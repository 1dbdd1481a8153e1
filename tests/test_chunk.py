"""Tests of the RTMP chunk stream codec, run against both twins.

``rtmpx._chunk`` (compiled) and ``rtmpx._chunk_py`` (pure Python) must
behave identically.  The byte vectors below are written by hand from the
specification (Adobe RTMP 1.0 section 5.3, see docs/rtmp-notes.md), not
produced by our writer.  Every reader vector is also fed whole, one byte at
a time, and split at every point.
"""

from __future__ import annotations

import importlib
import tracemalloc
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtmpx.errors import ProtocolError

TWINS = ["rtmpx._chunk", "rtmpx._chunk_py"]


@pytest.fixture(params=TWINS, scope="module")
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


C = importlib.import_module("rtmpx._chunk")
P = importlib.import_module("rtmpx._chunk_py")

Tup = tuple[int, bytes, int, int, int]


def h(*parts: str | bytes) -> bytes:
    """Hex (whitespace ignored) and raw bytes, concatenated."""
    out = b""
    for part in parts:
        out += part if isinstance(part, bytes) else bytes.fromhex("".join(part.split()))
    return out


def tup(m: Any) -> Tup:
    return (m.type_id, m.payload, m.timestamp, m.stream_id, m.csid)


def scs(n: int) -> Tup:
    return (1, n.to_bytes(4, "big"), 0, 0, 2)


def feed_whole(mod: ModuleType, data: bytes, **kw: Any) -> list[Tup]:
    r = mod.ChunkReader(**kw)
    out = [tup(m) for m in r.feed(data)]
    assert r.bytes_received == len(data)
    return out


def feed_pieces(
    mod: ModuleType, pieces: list[bytes] | list[bytearray] | list[memoryview], **kw: Any
) -> list[Tup]:
    r = mod.ChunkReader(**kw)
    out: list[Tup] = []
    for piece in pieces:
        out += [tup(m) for m in r.feed(piece)]
    assert r.bytes_received == sum(len(p) for p in pieces)
    return out


P200 = bytes(range(200))
SCS4 = "02 000000 000004 01 00000000 00000004"  # Set Chunk Size 4 on csid 2

# name, wire bytes, expected messages (type, payload, timestamp, stream id, csid)
VECTORS: list[tuple[str, bytes, list[Tup]]] = [
    ("fmt0", h("03 000064 000005 14 01000000 68656c6c6f"), [(20, b"hello", 100, 1, 3)]),
    (
        "fmt0 stream id is little-endian",
        h("04 000000 000001 08 78563412 aa"),
        [(8, b"\xaa", 0, 0x12345678, 4)],
    ),
    (
        "fmt1 fmt2 fmt3 deltas",
        h(
            "06 0003e8 000002 09 01000000 0102",
            "46 000021 000003 09 030405",
            "86 000021 060708",
            "c6 090a0b",
        ),
        [
            (9, b"\x01\x02", 1000, 1, 6),
            (9, b"\x03\x04\x05", 1033, 1, 6),
            (9, b"\x06\x07\x08", 1066, 1, 6),
            (9, b"\x09\x0a\x0b", 1099, 1, 6),
        ],
    ),
    (
        "fmt3 new message after fmt0: delta is the fmt0 timestamp (FFmpeg, Adobe)",
        h("05 000064 000001 12 00000000 aa", "c5 bb", "c5 cc"),
        [(18, b"\xaa", 100, 0, 5), (18, b"\xbb", 200, 0, 5), (18, b"\xcc", 300, 0, 5)],
    ),
    (
        "fmt1 with a new length and type keeps the stream id",
        h("07 000010 000001 08 05000000 aa", "47 000005 000002 09 bbcc"),
        [(8, b"\xaa", 16, 5, 7), (9, b"\xbb\xcc", 21, 5, 7)],
    ),
    (
        "default chunk size 128, fmt3 continuation",
        h("04 000000 0000c8 08 00000000", P200[:128], "c4", P200[128:]),
        [(8, P200, 0, 0, 4)],
    ),
    (
        "zero-length messages",
        h("03 000000 000000 14 00000000", "c3", "43 000007 000000 12"),
        [(20, b"", 0, 0, 3), (20, b"", 0, 0, 3), (18, b"", 7, 0, 3)],
    ),
    # Basic header forms at their boundaries, each with a fmt3 continuation.
    (
        "csid 2 (1-byte form)",
        h("02 000000 000004 01 00000000 00000002", "02 000007 000003 14 00000000 6162 c2 63"),
        [scs(2), (20, b"abc", 7, 0, 2)],
    ),
    (
        "csid 63 (1-byte form, largest)",
        h(SCS4, "3f 000007 000005 14 00000000 61626364 ff 65"),
        [scs(4), (20, b"abcde", 7, 0, 63)],
    ),
    (
        "csid 64 (2-byte form, smallest)",
        h(SCS4, "00 00 000007 000005 14 00000000 61626364 c0 00 65"),
        [scs(4), (20, b"abcde", 7, 0, 64)],
    ),
    (
        "csid 319 (2-byte form, largest)",
        h(SCS4, "00 ff 000007 000005 14 00000000 61626364 c0 ff 65"),
        [scs(4), (20, b"abcde", 7, 0, 319)],
    ),
    (
        "csid 320 (3-byte form, smallest, little-endian)",
        h(SCS4, "01 00 01 000007 000005 14 00000000 61626364 c1 00 01 65"),
        [scs(4), (20, b"abcde", 7, 0, 320)],
    ),
    (
        "csid 65599 (3-byte form, largest)",
        h(SCS4, "01 ff ff 000007 000005 14 00000000 61626364 c1 ff ff 65"),
        [scs(4), (20, b"abcde", 7, 0, 65599)],
    ),
    (
        "csid 64 in the 3-byte form is the same chunk stream as in the 2-byte form",
        h("01 00 00 000009 000001 14 00000000 aa", "c0 00 bb"),
        [(20, b"\xaa", 9, 0, 64), (20, b"\xbb", 18, 0, 64)],
    ),
    (
        "csid 321 in the 3-byte form",
        h("01 01 01 000000 000001 14 00000000 aa"),
        [(20, b"\xaa", 0, 0, 321)],
    ),
    # Extended timestamps.
    (
        "timestamp 0xFFFFFE fits the 3-byte field",
        h("03 fffffe 000001 14 00000000 aa"),
        [(20, b"\xaa", 0xFFFFFE, 0, 3)],
    ),
    (
        "timestamp 0xFFFFFF is extended",
        h("03 ffffff 000001 14 00000000 00ffffff aa"),
        [(20, b"\xaa", 0xFFFFFF, 0, 3)],
    ),
    (
        "timestamp 0x1000000 is extended",
        h("03 ffffff 000001 14 00000000 01000000 aa"),
        [(20, b"\xaa", 0x1000000, 0, 3)],
    ),
    (
        "extended deltas on fmt1 and fmt2",
        h(
            "03 000010 000001 14 00000000 aa",
            "43 ffffff 000001 14 01000000 bb",
            "83 ffffff 00ffffff cc",
        ),
        [(20, b"\xaa", 0x10, 0, 3), (20, b"\xbb", 0x1000010, 0, 3), (20, b"\xcc", 0x200000F, 0, 3)],
    ),
    (
        "fmt3 continuation repeats the extended timestamp",
        h(SCS4, "04 ffffff 000006 08 00000000 01000000 11223344", "c4 01000000 5566"),
        [scs(4), (8, h("112233445566"), 0x1000000, 0, 4)],
    ),
    (
        "fmt3 continuation omits the extended timestamp",
        h(
            SCS4,
            "04 ffffff 000006 08 00000000 01000000 11223344",
            "c4 5566",
            "02 000000 000006 04 00000000 00060000 c2 0001",
        ),
        [scs(4), (8, h("112233445566"), 0x1000000, 0, 4), (4, h("000600000001"), 0, 0, 2)],
    ),
    (
        "fmt3 new messages after an extended fmt1 delta, with and without the field",
        h(
            SCS4,
            "04 000010 000002 08 00000000 aaaa",
            "44 ffffff 000002 08 01000000 bbbb",
            "c4 01000000 cccc",
            "c4 dddd",
            "c4 01000000 eeee",
        ),
        [
            scs(4),
            (8, b"\xaa\xaa", 0x10, 0, 4),
            (8, b"\xbb\xbb", 0x1000010, 0, 4),
            (8, b"\xcc\xcc", 0x2000010, 0, 4),
            (8, b"\xdd\xdd", 0x3000010, 0, 4),
            (8, b"\xee\xee", 0x4000010, 0, 4),
        ],
    ),
    (
        "fmt3 new message after an extended fmt0",
        h("03 ffffff 000001 14 00000000 01000000 aa", "c3 01000000 bb"),
        [(20, b"\xaa", 0x1000000, 0, 3), (20, b"\xbb", 0x2000000, 0, 3)],
    ),
    (
        "timestamps wrap at 2**32",
        h("03 ffffff 000001 14 00000000 fffffff0 aa", "83 000020 bb", "c3 cc"),
        [(20, b"\xaa", 0xFFFFFFF0, 0, 3), (20, b"\xbb", 0x10, 0, 3), (20, b"\xcc", 0x30, 0, 3)],
    ),
    # Chunk size changes.
    (
        "Set Chunk Size then data in the same feed",
        h(
            "02 000000 000004 01 00000000 00000008",
            "03 000000 00000a 14 00000000 0102030405060708",
            "c3 090a",
        ),
        [scs(8), (20, h("0102030405060708090a"), 0, 0, 3)],
    ),
    (
        "Set Chunk Size between two chunks of one message",
        h(
            SCS4,
            "06 000000 00000a 09 01000000 01020304",
            "02 000000 000004 01 00000000 00000002",
            "c6 0506 c6 0708 c6 090a",
        ),
        [scs(4), scs(2), (9, h("0102030405060708090a"), 0, 1, 6)],
    ),
    (
        "largest chunk size",
        h("02 000000 000004 01 00000000 7fffffff", "03 000000 000003 14 00000000 616263"),
        [scs(0x7FFFFFFF), (20, b"abc", 0, 0, 3)],
    ),
    (
        "chunk size 1",
        h("02 000000 000004 01 00000000 00000001", "03 000000 000003 14 00000000 61 c3 62 c3 63"),
        [scs(1), (20, b"abc", 0, 0, 3)],
    ),
    # Abort, interleaving.
    (
        "Abort mid-message, then a new message on that chunk stream",
        h(
            SCS4,
            "04 000000 000008 08 00000000 11223344",
            "02 000000 000004 02 00000000 00000004",
            "04 000005 000002 08 00000000 aabb",
        ),
        [scs(4), (2, h("00000004"), 0, 0, 2), (8, b"\xaa\xbb", 5, 0, 4)],
    ),
    (
        "Abort mid-message, then fmt3 starts a new message",
        h(
            SCS4,
            "04 000000 000008 08 00000000 11223344",
            "02 000000 000004 02 00000000 00000004",
            "c4 01020304 c4 05060708",
        ),
        [scs(4), (2, h("00000004"), 0, 0, 2), (8, h("0102030405060708"), 0, 0, 4)],
    ),
    (
        "Abort of an idle or unknown chunk stream is a no-op",
        h("02 000000 000004 02 00000000 00000009", "02 000000 000004 02 00000000 00001234"),
        [(2, h("00000009"), 0, 0, 2), (2, h("00001234"), 0, 0, 2)],
    ),
    (
        "interleaved chunk streams",
        h(
            SCS4,
            "04 000000 000006 08 00000000 a1a2a3a4",
            "06 000000 000006 09 01000000 b1b2b3b4",
            "c6 b5b6",
            "c4 a5a6",
        ),
        [scs(4), (9, h("b1b2b3b4b5b6"), 0, 1, 6), (8, h("a1a2a3a4a5a6"), 0, 0, 4)],
    ),
    (
        "fmt2 header on a continuation chunk",
        h(SCS4, "04 000000 000006 08 00000000 a1a2a3a4", "84 000009 a5a6"),
        [scs(4), (8, h("a1a2a3a4a5a6"), 0, 0, 4)],
    ),
]

IDS = [v[0] for v in VECTORS]


@pytest.mark.parametrize("name,data,expected", VECTORS, ids=IDS)
def test_vector_whole(mod: ModuleType, name: str, data: bytes, expected: list[Tup]) -> None:
    assert feed_whole(mod, data) == expected


@pytest.mark.parametrize("name,data,expected", VECTORS, ids=IDS)
def test_vector_byte_at_a_time(
    mod: ModuleType, name: str, data: bytes, expected: list[Tup]
) -> None:
    assert feed_pieces(mod, [data[i : i + 1] for i in range(len(data))]) == expected


@pytest.mark.parametrize("name,data,expected", VECTORS, ids=IDS)
def test_vector_every_split(mod: ModuleType, name: str, data: bytes, expected: list[Tup]) -> None:
    for cut in range(len(data) + 1):
        assert feed_pieces(mod, [data[:cut], data[cut:]]) == expected, cut
    for cut in range(1, len(data)):  # three pieces, the middle one a single byte
        assert feed_pieces(mod, [data[:cut], data[cut : cut + 1], data[cut + 1 :]]) == expected


@pytest.mark.parametrize("name,data,expected", VECTORS, ids=IDS)
def test_vector_buffer_types(mod: ModuleType, name: str, data: bytes, expected: list[Tup]) -> None:
    assert feed_pieces(mod, [bytearray(data)]) == expected
    assert feed_pieces(mod, [memoryview(data)]) == expected
    assert feed_pieces(mod, [memoryview(b"xx" + data + b"yy")[2:-2]]) == expected


def test_reader_state(mod: ModuleType) -> None:
    r = mod.ChunkReader()
    assert r.chunk_size == 128
    assert r.bytes_received == 0
    msgs = r.feed(h("02 000000 000004 01 00000000 00001000", "03 000000"))
    assert r.chunk_size == 4096
    assert r.bytes_received == 20
    assert [tup(m) for m in msgs] == [scs(4096)]
    assert msgs[0].csid == 2
    assert r.feed(b"") == []
    assert r.bytes_received == 20


# ------------------------------------------------------------------ writer


def encode_all(mod: ModuleType, msgs: list[Any], **kw: Any) -> list[bytes]:
    w = mod.ChunkWriter(**kw)
    return [w.encode(mod.Message(*m)) for m in msgs]


def test_writer_header_compression(mod: ModuleType) -> None:
    out = encode_all(
        mod,
        [
            (20, b"hello", 100, 1),
            (20, b"hi", 133, 1),  # new length: fmt 1
            (20, b"yo", 170, 1),  # same length and type, new delta: fmt 2
            (20, b"ok", 207, 1),  # same delta: fmt 3
            (20, b"ok", 244, 1),
            (20, b"ok", 100, 1),  # backwards: fmt 0
            (20, b"ok", 100, 2),  # other stream id: fmt 0
        ],
    )
    assert out == [
        h("03 000064 000005 14 01000000 68656c6c6f"),
        h("43 000021 000002 14 6869"),
        h("83 000025 796f"),
        h("c3 6f6b"),
        h("c3 6f6b"),
        h("03 000064 000002 14 01000000 6f6b"),
        h("03 000064 000002 14 02000000 6f6b"),
    ]


def test_writer_after_fmt0(mod: ModuleType) -> None:
    # After a fmt 0 the FFmpeg reader's delta is its timestamp, nginx-rtmp's is
    # 0; the writer only uses fmt 3 where both agree (timestamp 0).
    out = encode_all(
        mod,
        [(18, b"a", 0), (18, b"b", 0), (18, b"c", 100), (18, b"d", 200), (18, b"e", 300)],
    )
    assert out == [
        h("05 000000 000001 12 00000000 61"),
        h("c5 62"),
        h("85 000064 63"),
        h("c5 64"),
        h("c5 65"),
    ]
    out = encode_all(mod, [(18, b"a", 100), (18, b"b", 200)])
    assert out == [h("05 000064 000001 12 00000000 61"), h("85 000064 62")]


def test_writer_forget(mod: ModuleType) -> None:
    # After forget(csid) the next message there has a full header; other
    # chunk streams keep their state.
    w = mod.ChunkWriter()
    Message = mod.Message
    w.encode(Message(18, b"a", 0, 1))
    w.encode(Message(20, b"x", 0, 1))
    assert w.encode(Message(18, b"a", 0, 1)) == h("c5 61")
    w.forget(5)
    assert w.encode(Message(18, b"a", 0, 1)) == h("05 000000 000001 12 01000000 61")
    assert w.encode(Message(20, b"x", 0, 1)) == h("c3 78")
    w.forget(5)
    w.forget(5)   # nothing left to forget: harmless
    w.forget(64)  # a chunk stream never used
    assert w.encode(Message(18, b"b", 7, 1)) == h("05 000007 000001 12 01000000 62")
    for bad in (0, 1, 65600):
        with pytest.raises(ValueError):
            w.forget(bad)


def test_writer_default_csids(mod: ModuleType) -> None:
    expected = {
        1: 2,
        2: 2,
        3: 2,
        4: 2,
        5: 2,
        6: 2,
        20: 3,
        17: 3,
        8: 4,
        18: 5,
        15: 5,
        9: 6,
        22: 3,
        0: 3,
        7: 3,
        19: 3,
        255: 3,
    }
    for type_id, csid in expected.items():
        assert mod.default_csid(type_id) == csid
        data = mod.ChunkWriter().encode(mod.Message(type_id, b""))
        assert data == bytes([csid]) + h("000000 000000") + bytes([type_id]) + h("00000000")


@pytest.mark.parametrize(
    "csid,basic0,basic3",
    [
        (2, "02", "c2"),
        (63, "3f", "ff"),
        (64, "00 00", "c0 00"),
        (319, "00 ff", "c0 ff"),
        (320, "01 00 01", "c1 00 01"),
        (65599, "01 ff ff", "c1 ff ff"),
    ],
)
def test_writer_basic_header_sizes(mod: ModuleType, csid: int, basic0: str, basic3: str) -> None:
    w = mod.ChunkWriter(chunk_size=2)
    assert w.encode(mod.Message(9, b"abc", 7, 1, csid)) == h(
        basic0, "000007 000003 09 01000000 6162", basic3, "63"
    )


@pytest.mark.parametrize(
    "ts,wire",
    [
        (0xFFFFFE, "06 fffffe 000006 09 00000000 01020304 c6 0506"),
        (0xFFFFFF, "06 ffffff 000006 09 00000000 00ffffff 01020304 c6 00ffffff 0506"),
        (0x1000000, "06 ffffff 000006 09 00000000 01000000 01020304 c6 01000000 0506"),
        (0xFFFFFFFF, "06 ffffff 000006 09 00000000 ffffffff 01020304 c6 ffffffff 0506"),
    ],
)
def test_writer_extended_timestamp(mod: ModuleType, ts: int, wire: str) -> None:
    w = mod.ChunkWriter(chunk_size=4)
    assert w.encode(mod.Message(9, h("010203040506"), ts)) == h(wire)


def test_writer_extended_delta_and_fmt3(mod: ModuleType) -> None:
    w = mod.ChunkWriter(chunk_size=4)
    msgs = [
        (8, b"\xaa\xaa", 0x10),
        (8, b"\xbb\xbb", 0x1000010),
        (8, b"\xcc\xcc", 0x2000010),
        (8, h("0102030405"), 0x3000010),
        (8, h("0607080910"), 0x4000010),
    ]
    out = [w.encode(mod.Message(*m)) for m in msgs]
    assert out == [
        h("04 000010 000002 08 00000000 aaaa"),
        h("84 ffffff 01000000 bbbb"),
        h("c4 01000000 cccc"),
        h("44 ffffff 000005 08 01000000 01020304 c4 01000000 05"),
        h("c4 01000000 06070809 c4 01000000 10"),
    ]
    # and the reader takes them back
    r = mod.ChunkReader()
    r.feed(h("02 000000 000004 01 00000000 00000004"))
    assert [tup(m) for m in r.feed(b"".join(out))] == [(*m, 0, 4) for m in msgs]


def test_writer_timestamp_wrap(mod: ModuleType) -> None:
    out = encode_all(mod, [(9, b"a", 0xFFFFFFF0), (9, b"b", 0x10), (9, b"c", 0x30)])
    assert out == [
        h("06 ffffff 000001 09 00000000 fffffff0 61"),
        h("86 000020 62"),
        h("c6 63"),
    ]


def test_writer_set_chunk_size(mod: ModuleType) -> None:
    w = mod.ChunkWriter()
    assert w.chunk_size == 128
    assert w.set_chunk_size(4096) == h("02 000000 000004 01 00000000 00001000")
    assert w.chunk_size == 4096
    # Same length, type and (zero) delta as the last message on csid 2: fmt 3.
    assert w.set_chunk_size(1) == h("c2 00000001")
    # The new size applies after the Set Chunk Size message, not to it.
    assert w.set_chunk_size(2) == h("c2 00 c2 00 c2 00 c2 02")
    assert w.encode(mod.Message(20, b"abc", csid=3)) == h("03 000000 000003 14 00000000 6162 c3 63")
    for bad in (0, -1, 0x80000000):
        with pytest.raises(ValueError):
            w.set_chunk_size(bad)
    with pytest.raises(TypeError):
        w.set_chunk_size(1.5)
    assert w.chunk_size == 2


def test_writer_chunk_size_bounds(mod: ModuleType) -> None:
    for bad in (0, 0x80000000):
        with pytest.raises(ValueError):
            mod.ChunkWriter(chunk_size=bad)
    w = mod.ChunkWriter(chunk_size=0x7FFFFFFF)
    assert w.encode(mod.Message(9, b"x" * 1000)) == h("06 000000 0003e8 09 00000000") + b"x" * 1000


def test_writer_rejects_oversize(mod: ModuleType) -> None:
    w = mod.ChunkWriter()
    with pytest.raises(ValueError):
        w.encode(mod.Message(9, bytes(0x1000000)))
    big = w.encode(mod.Message(9, bytes(0xFFFFFF)))
    assert big[:12] == h("06 000000 ffffff 09 00000000")
    assert len(big) == 12 + 0xFFFFFF + (0xFFFFFF - 1) // 128


# ------------------------------------------------------------------ Message


def test_message(mod: ModuleType) -> None:
    m = mod.Message(9, b"abc", 5, 1, 6)
    assert tup(m) == (9, b"abc", 5, 1, 6)
    assert mod.Message(9, b"abc").csid is None
    assert mod.Message(9, b"abc") == mod.Message(9, b"abc", 0, 0, None)
    assert m == mod.Message(9, b"abc", 5, 1, 6)
    for other in [
        (8, b"abc", 5, 1, 6),
        (9, b"abd", 5, 1, 6),
        (9, b"abc", 6, 1, 6),
        (9, b"abc", 5, 2, 6),
        (9, b"abc", 5, 1, 7),
        (9, b"abc", 5, 1, None),
    ]:
        assert m != mod.Message(*other)
    assert m != (9, b"abc", 5, 1, 6)
    assert hash(m) == hash(mod.Message(9, b"abc", 5, 1, 6))
    assert "Message(type_id=9" in repr(m) and "csid=6" in repr(m)
    with pytest.raises(AttributeError):
        m.timestamp = 7
    for bad in [
        (256, b""),
        (-1, b""),
        (9, b"", -1),
        (9, b"", 2**32),
        (9, b"", 0, 2**32),
        (9, b"", 0, 0, 1),
        (9, b"", 0, 0, 65600),
    ]:
        with pytest.raises(ValueError):
            mod.Message(*bad)
    bad_types: list[tuple[object, ...]] = [
        (9, bytearray(b"")),
        (9, "x"),
        ("9", b""),
        (9, b"", 1.0),
        (9, b"", 0, None),
    ]
    for bad_args in bad_types:
        with pytest.raises(TypeError):
            mod.Message(*bad_args)


def test_message_pickles(mod: ModuleType) -> None:
    import pickle

    m = mod.Message(9, b"abc", 5, 1, 6)
    assert pickle.loads(pickle.dumps(m)) == m
    assert pickle.loads(pickle.dumps(mod.Message(9, b""))).csid is None


def test_feed_rejects_non_contiguous(mod: ModuleType) -> None:
    with pytest.raises(BufferError):
        mod.ChunkReader().feed(memoryview(b"abcdef")[::2])
    with pytest.raises(TypeError):
        mod.ChunkReader().feed("text")


def test_message_from_reader_is_exact_bytes(mod: ModuleType) -> None:
    (m,) = mod.ChunkReader().feed(h("04 000000 0000c8 08 00000000", P200[:128], "c4", P200[128:]))
    assert type(m.payload) is bytes and m.payload == P200 and isinstance(m, mod.Message)


# ------------------------------------------------------------------ limits


def feed_until_error(mod: ModuleType, data: bytes, pieces: int, **kw: Any) -> list[Tup]:
    """Feed ``data`` in pieces of size ``pieces``; expect a ProtocolError."""
    r = mod.ChunkReader(**kw)
    out: list[Tup] = []
    with pytest.raises(ProtocolError):
        for i in range(0, len(data), pieces):
            out += [tup(m) for m in r.feed(data[i : i + pieces])]
    with pytest.raises(ProtocolError):
        r.feed(b"\x03")  # unusable afterwards, but no crash
    return out


ERRORS: list[tuple[str, bytes, dict[str, int]]] = [
    ("Set Chunk Size 0", h("02 000000 000004 01 00000000 00000000"), {}),
    ("Set Chunk Size top bit", h("02 000000 000004 01 00000000 80000000"), {}),
    ("Set Chunk Size top bit (all ones)", h("02 000000 000004 01 00000000 ffffffff"), {}),
    ("Set Chunk Size short", h("02 000000 000002 01 00000000 0001"), {}),
    ("Abort short", h("02 000000 000003 02 00000000 000004"), {}),
    ("fmt1 before fmt0", h("43 000000 000001 14 aa"), {}),
    ("fmt2 before fmt0", h("83 000000 aa"), {}),
    ("fmt3 before fmt0", h("c3 aa"), {}),
    ("fmt3 before fmt0 (3-byte csid)", h("03 000000 000000 14 00000000 c1 00 01"), {}),
    (
        "fmt1 changes the length mid-message",
        h(SCS4, "04 000000 000008 08 00000000 11223344", "44 000000 000009 08 55667788"),
        {},
    ),
    (
        "fmt1 changes the type mid-message",
        h(SCS4, "04 000000 000008 08 00000000 11223344", "44 000000 000008 09 55667788"),
        {},
    ),
    (
        "fmt0 changes the stream id mid-message",
        h(SCS4, "04 000000 000008 08 00000000 11223344", "04 000000 000008 08 01000000 55667788"),
        {},
    ),
    ("message too long", h("03 000000 000005 14 00000000 0102030405"), {"max_message_size": 4}),
    (
        "message too long on fmt1",
        h("03 000000 000001 14 00000000 01", "43 000000 000005 14 0102030405"),
        {"max_message_size": 4},
    ),
    (
        "too many chunk streams",
        h(
            "03 000000 000000 14 00000000",
            "04 000000 000000 14 00000000",
            "05 000000 000000 14 00000000",
        ),
        {"max_chunk_streams": 2},
    ),
    (
        "too many bytes buffered",
        h(
            SCS4,
            "03 000000 000008 14 00000000 01020304",
            "04 000000 000008 08 00000000 01020304",
            "05 000000 000008 09 00000000 01020304",
        ),
        {"max_buffered": 10},
    ),
]


@pytest.mark.parametrize("name,data,kw", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(mod: ModuleType, name: str, data: bytes, kw: dict[str, int]) -> None:
    whole = feed_until_error(mod, data, len(data), **kw)
    assert whole == []
    one = feed_until_error(mod, data, 1, **kw)
    # messages completed before the offending byte still come out
    assert all(m[0] in (1, 2, 20) for m in one)


def test_limits_are_inclusive(mod: ModuleType) -> None:
    ok = h("03 000000 000004 14 00000000 01020304")
    assert len(feed_whole(mod, ok, max_message_size=4)) == 1
    ok = h("03 000000 000000 14 00000000", "04 000000 000000 14 00000000", "c3 c4 c3")
    assert len(feed_whole(mod, ok, max_chunk_streams=2)) == 5
    ok = h(SCS4, "03 000000 000008 14 00000000 01020304", "04 000000 000008 08 00000000 0102")
    assert len(feed_whole(mod, ok, max_buffered=6)) == 1
    # completed messages free their share of max_buffered
    ok = h(
        SCS4,
        "03 000000 000008 14 00000000 01020304 c3 05060708",
        "c3 01020304 c3 05060708",
        "04 000000 000004 08 00000000 01020304",
    )
    assert len(feed_whole(mod, ok, max_buffered=8)) == 4
    # and aborted ones too
    ok = h(
        SCS4,
        "03 000000 000008 14 00000000 01020304",
        "02 000000 000004 02 00000000 00000003",
        "04 000000 000008 08 00000000 01020304",
        "05 000000 000008 09 00000000 01020304",
    )
    assert len(feed_whole(mod, ok, max_buffered=8)) == 2


def test_limit_arguments(mod: ModuleType) -> None:
    with pytest.raises(TypeError):
        mod.ChunkReader(65536)  # keyword-only
    with pytest.raises(ValueError):
        mod.ChunkReader(max_chunk_streams=0)
    with pytest.raises(ValueError):
        mod.ChunkReader(max_buffered=-1)


def test_limits_can_be_raised_and_lowered(mod: ModuleType) -> None:
    """A server holds small limits until connect, then raises them."""
    big = h("03 000000 000008 14 00000000 0102030405060708")
    r = mod.ChunkReader(max_message_size=4, max_chunk_streams=1)
    r.set_limits(max_message_size=8, max_chunk_streams=2)
    assert len(r.feed(big)) == 1
    assert len(r.feed(h("04 000000 000001 14 00000000 01"))) == 1
    assert r.buffered == 0
    r.set_limits(max_message_size=7)
    with pytest.raises(ProtocolError, match="max_message_size=7"):
        r.feed(big)
    with pytest.raises(ValueError):
        r.set_limits(max_buffered=-1)
    with pytest.raises(TypeError):
        r.set_limits(8)  # keyword-only
    r = mod.ChunkReader()
    r.feed(h("03 000000 000008 14 00000000 010203"))
    assert r.buffered == 3


def test_declared_length_reserves_nothing(mod: ModuleType) -> None:
    """A header declaring 16 MiB followed by a trickle allocates a trickle."""
    r = mod.ChunkReader(max_message_size=0xFFFFFF, max_buffered=0xFFFFFF)
    r.feed(h("02 000000 000004 01 00000000 7fffffff"))
    tracemalloc.start()
    try:
        r.feed(h("06 000000 ffffff 09 00000000"))
        for _ in range(100):
            r.feed(b"\x00" * 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_many_messages_one_feed(mod: ModuleType) -> None:
    w = P.ChunkWriter()
    msgs = [P.Message(8, bytes([i % 256]) * 200, i * 23, 1) for i in range(500)]
    data = b"".join(w.encode(m) for m in msgs)
    assert feed_whole(mod, data) == [tup(m)[:4] + (4,) for m in msgs]


# ------------------------------------------------------------------ properties

TYPES = [3, 4, 5, 6, 8, 9, 15, 17, 18, 20, 22]
uint32 = st.integers(0, 2**32 - 1)
deltas = st.one_of(
    st.integers(0, 100),
    st.sampled_from([0, 0xFFFFFE, 0xFFFFFF, 0x1000000, 2**31 - 1, 2**31, 2**32 - 1]),
    uint32,
)
csids = st.one_of(
    st.none(), st.sampled_from([2, 3, 63, 64, 319, 320, 65599]), st.integers(2, 65599)
)
chunk_sizes = st.one_of(st.sampled_from([1, 2, 3, 128, 4096, 0x7FFFFFFF]), st.integers(1, 300))
actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("msg"),
            st.sampled_from(TYPES),
            st.binary(max_size=700),
            deltas,
            st.one_of(st.sampled_from([0, 1, 2**32 - 1]), uint32),
            csids,
        ),
        st.tuples(st.just("scs"), chunk_sizes),
    ),
    max_size=25,
)


def build(mod: ModuleType, start: int, acts: list[Any]) -> tuple[bytes, list[Tup]]:
    w = mod.ChunkWriter()
    parts: list[bytes] = []
    expected: list[Tup] = []
    ts = start
    for act in acts:
        if act[0] == "scs":
            parts.append(w.set_chunk_size(act[1]))
            expected.append(scs(act[1]))
        else:
            _, type_id, payload, delta, sid, csid = act
            ts = (ts + delta) % 2**32
            parts.append(w.encode(mod.Message(type_id, payload, ts, sid, csid)))
            expected.append((type_id, payload, ts, sid, csid or mod.default_csid(type_id)))
    return b"".join(parts), expected


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)] if sizes else len(data)
        pieces.append(data[pos : pos + step])
        pos += step
        i += 1
    return pieces


@settings(max_examples=300, deadline=None)
@given(start=uint32, acts=actions, sizes=st.lists(st.integers(1, 300), max_size=8))
def test_roundtrip_and_twins_agree(start: int, acts: list[Any], sizes: list[int]) -> None:
    data_c, expected = build(C, start, acts)
    data_p, expected_p = build(P, start, acts)
    assert data_c == data_p
    assert expected == expected_p
    pieces = split(data_c, sizes)
    assert feed_pieces(C, pieces) == expected
    assert feed_pieces(P, pieces) == expected


def outcome(mod: ModuleType, pieces: list[bytes], **kw: Any) -> tuple[list[Tup], bool]:
    r = mod.ChunkReader(**kw)
    out: list[Tup] = []
    try:
        for piece in pieces:
            out += [tup(m) for m in r.feed(piece)]
    except ProtocolError:
        return out, True
    return out, False


LIMITS = st.fixed_dictionaries(
    {
        "max_message_size": st.sampled_from([0, 10, 1000, 8 * 1024 * 1024]),
        "max_chunk_streams": st.sampled_from([1, 3, 64]),
        "max_buffered": st.sampled_from([0, 100, 10000, 16 * 1024 * 1024]),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), sizes=st.lists(st.integers(1, 50), max_size=5), kw=LIMITS)
def test_garbage(data: bytes, sizes: list[int], kw: dict[str, int]) -> None:
    pieces = split(data, sizes)
    assert outcome(C, pieces, **kw) == outcome(P, pieces, **kw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=uint32,
    acts=actions,
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    sizes=st.lists(st.integers(1, 100), max_size=5),
    kw=LIMITS,
)
def test_mutated_streams(
    start: int, acts: list[Any], edits: list[tuple[int, int]], sizes: list[int], kw: dict[str, int]
) -> None:
    data, _ = build(P, start, acts)
    if not data:
        return
    buf = bytearray(data)
    for where, value in edits:
        buf[where % len(buf)] = value
    pieces = split(bytes(buf), sizes)
    assert outcome(C, pieces, **kw) == outcome(P, pieces, **kw)


def basic_header(fmt: int, csid: int) -> bytes:
    """Basic header, written out here independently of the codec."""
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1]) + (csid - 64).to_bytes(2, "little")


def omitting_encoder(msgs: list[Tup], chunk_size: int) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A peer that sends fmt 0 headers with extended timestamps and leaves the
    4-byte field out of its fmt 3 continuation chunks (some servers do).

    Also returns where each continuation chunk's payload starts, with the
    extended value a reader will compare the next 4 bytes against.
    """
    out = bytearray()
    peeks = []
    for type_id, payload, ts, sid, csid in msgs:
        ext = ts.to_bytes(4, "big")
        out += basic_header(0, csid) + b"\xff\xff\xff" + len(payload).to_bytes(3, "big")
        out += bytes([type_id]) + sid.to_bytes(4, "little") + ext
        out += payload[:chunk_size]
        for start in range(chunk_size, len(payload), chunk_size):
            out += basic_header(3, csid)
            peeks.append((len(out), ext))
            out += payload[start : start + chunk_size]
    return bytes(out), peeks


@settings(max_examples=200, deadline=None)
@given(
    msgs=st.lists(
        st.tuples(
            st.sampled_from(TYPES),
            st.binary(max_size=300),
            st.integers(0xFFFFFF, 2**32 - 1),
            uint32,
            st.sampled_from([3, 4, 64, 320]),
        ),
        max_size=10,
    ),
    chunk_size=st.sampled_from([4, 5, 64, 128]),
    sizes=st.lists(st.integers(1, 60), max_size=5),
)
def test_peer_omitting_extended_field(msgs: list[Tup], chunk_size: int, sizes: list[int]) -> None:
    wire, peeks = omitting_encoder(msgs, chunk_size)
    head = h("02 000000 000004 01 00000000") + chunk_size.to_bytes(4, "big")
    tail = h("02 000000 000001 14 00000000 ee")  # lets the reader's last peek finish
    data = head + wire + tail
    if any(data[len(head) + at : len(head) + at + 4] == ext for at, ext in peeks):
        return  # a continuation that starts with the extended value: ambiguous by nature
    pieces = split(data, sizes)
    expected = [scs(chunk_size), *msgs, (20, b"\xee", 0, 0, 2)]
    assert feed_pieces(C, pieces) == expected
    assert feed_pieces(P, pieces) == expected


def ffmpeg_style_writer(msgs: list[Tup], chunk_size: int) -> bytes | None:
    """The header choice of FFmpeg's writer (libavformat/rtmppkt.c,
    ff_rtmp_packet_write), restated here: a delta whenever the stream id
    matches and time does not go back; fmt 3 whenever the 3-byte field equals
    the previous one on the channel, including right after a fmt 0 header
    (whose field is then the absolute timestamp); the extended value repeated
    on continuation chunks.

    Returns None for the one case the reader cannot follow: a fmt 3 new
    message whose extended delta differs from the stored extended value.
    """
    prev: dict[int, dict[str, int]] = {}
    ext_value: dict[int, int] = {}
    out = bytearray()
    for type_id, payload, ts, sid, csid in msgs:
        p = prev.get(csid)
        use_delta = p is not None and p["sid"] == sid and ts >= p["ts"]
        value = ts - p["ts"] if p is not None and use_delta else ts
        field = min(value, 0xFFFFFF)
        if p is None or not use_delta:
            fmt = 0
        elif type_id == p["type"] and len(payload) == p["size"]:
            fmt = 3 if field == p["field"] else 2
        else:
            fmt = 1
        if fmt == 3 and field == 0xFFFFFF and value != ext_value.get(csid):
            return None
        if fmt != 3 and field == 0xFFFFFF:
            ext_value[csid] = value
        out += basic_header(fmt, csid)
        if fmt != 3:
            out += field.to_bytes(3, "big")
        if fmt <= 1:
            out += len(payload).to_bytes(3, "big") + bytes([type_id])
        if fmt == 0:
            out += sid.to_bytes(4, "little")
        ext = value.to_bytes(4, "big") if field == 0xFFFFFF else b""
        out += ext + payload[:chunk_size]
        for start in range(chunk_size, len(payload), chunk_size):
            out += basic_header(3, csid) + ext + payload[start : start + chunk_size]
        prev[csid] = {"ts": ts, "field": field, "type": type_id, "size": len(payload), "sid": sid}
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 2**30),
    steps=st.lists(
        st.tuples(
            st.sampled_from([8, 9, 20]),
            st.sampled_from([b"", b"ab", bytes(range(7)), bytes(300)]),
            st.one_of(
                st.sampled_from([0, 23, 33, 0xFFFFFE, 0xFFFFFF, 0x1000000]), st.integers(0, 2**24)
            ),
            st.sampled_from([0, 1]),
            st.sampled_from([3, 4, 6, 63]),
            st.booleans(),  # jump back to an earlier timestamp
        ),
        max_size=25,
    ),
    chunk_size=st.sampled_from([1, 4, 128, 4096]),
    sizes=st.lists(st.integers(1, 60), max_size=5),
)
def test_ffmpeg_style_writer(
    start: int, steps: list[Any], chunk_size: int, sizes: list[int]
) -> None:
    msgs: list[Tup] = []
    ts = start
    for type_id, payload, delta, sid, csid, back in steps:
        ts = max(0, ts - delta) if back else min(ts + delta, 2**31 - 1)
        msgs.append((type_id, payload, ts, sid, csid))
    wire = ffmpeg_style_writer(msgs, chunk_size)
    if wire is None:
        return
    head = h("02 000000 000004 01 00000000") + chunk_size.to_bytes(4, "big")
    pieces = split(head + wire, sizes)
    expected = [scs(chunk_size), *msgs]
    assert feed_pieces(C, pieces) == expected
    assert feed_pieces(P, pieces) == expected


def test_ffmpeg_style_fmt3_after_fmt0(mod: ModuleType) -> None:
    msgs: list[Tup] = [(8, b"ab", 100, 1, 4), (8, b"cd", 200, 1, 4), (8, b"ef", 300, 1, 4)]
    wire = ffmpeg_style_writer(msgs, 128)
    assert wire == h("04 000064 000002 08 01000000 6162 c4 6364 c4 6566")
    assert feed_whole(mod, wire) == msgs
    msgs = [(8, b"ab", 0x1000000, 1, 4), (8, b"cd", 0x2000000, 1, 4)]
    wire = ffmpeg_style_writer(msgs, 128)
    assert wire == h("04 ffffff 000002 08 01000000 01000000 6162 c4 01000000 6364")
    assert feed_whole(mod, wire) == msgs


# -- feeds bounded by max_messages (issue 10: large reads, bounded work per call) ----


def feed_bounded(mod: ModuleType, pieces: list[bytes], cap: int) -> list[Tup]:
    """Feed ``pieces`` to a reader bounded at ``cap`` messages per feed,
    draining what each feed leaves pending with empty feeds."""
    r = mod.ChunkReader(max_messages=cap)
    out: list[Tup] = []
    for piece in pieces:
        got = r.feed(piece)
        assert len(got) <= cap
        out += [tup(m) for m in got]
        while r.pending:
            before = r.pending
            got = r.feed(b"")
            assert len(got) <= cap
            assert r.pending < before  # progress (a partial message may complete nothing)
            out += [tup(m) for m in got]
    assert r.bytes_received == sum(len(p) for p in pieces)
    assert r.buffered == 0 or out  # nothing held but incomplete messages
    return out


@pytest.mark.parametrize("name,data,expected", VECTORS, ids=IDS)
def test_vector_bounded(mod: ModuleType, name: str, data: bytes, expected: list[Tup]) -> None:
    for cap in (1, 2, 3):
        assert feed_bounded(mod, [data], cap) == expected
        assert feed_bounded(mod, [data[i : i + 1] for i in range(len(data))], cap) == expected


def test_a_bounded_feed_leaves_the_rest_pending(mod: ModuleType) -> None:
    w = mod.ChunkWriter(chunk_size=128)
    wire = b"".join(w.encode(mod.Message(8, bytes([i % 256]), i, 1)) for i in range(1000))
    r = mod.ChunkReader(max_messages=64)
    got = r.feed(wire[:500])
    assert len(got) == 64 and r.pending > 0
    assert r.buffered >= r.pending
    rest = r.pending
    got += r.feed(wire[500:])  # new input is read after the pending input
    assert len(got) == 128 and r.pending > rest
    while r.pending:
        got += r.feed(b"")
    assert [m.payload[0] for m in got] == [i % 256 for i in range(1000)]
    assert [m.timestamp for m in got] == list(range(1000))
    assert r.bytes_received == len(wire)
    with pytest.raises(ValueError):
        mod.ChunkReader(max_messages=-1)


@settings(max_examples=300, deadline=None)
@given(start=uint32, acts=actions, sizes=st.lists(st.integers(1, 300), max_size=8),
       cap=st.integers(1, 5))
def test_bounded_feeds_read_what_unbounded_ones_do(start: int, acts: list[Any],
                                                   sizes: list[int], cap: int) -> None:
    data, expected = build(C, start, acts)
    pieces = split(data, sizes)
    assert feed_bounded(C, pieces, cap) == expected
    assert feed_bounded(P, pieces, cap) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), sizes=st.lists(st.integers(1, 50), max_size=5),
       cap=st.integers(1, 4))
def test_bounded_twins_agree_on_garbage(data: bytes, sizes: list[int], cap: int) -> None:
    def run(mod: ModuleType) -> tuple[list[Tup], bool]:
        r = mod.ChunkReader(max_messages=cap)
        out: list[Tup] = []
        try:
            for piece in split(data, sizes):
                out += [tup(m) for m in r.feed(piece)]
                while r.pending:
                    out += [tup(m) for m in r.feed(b"")]
        except ProtocolError:
            return out, True
        return out, False

    assert run(C) == run(P)


def test_an_aggregate_counts_as_the_messages_it_may_carry(mod: ModuleType) -> None:
    """A 64 KiB aggregate may hold 4,369 messages: a feed bounded at 256
    returns it alone, not with the next ones (the session splits it)."""
    w = mod.ChunkWriter()
    agg = mod.Message(22, bytes(15 * 300), 0, 1)
    wire = b"".join(w.encode(m) for m in (agg, agg, mod.Message(8, b"x", 0, 1)))
    r = mod.ChunkReader(max_messages=256)
    assert [m.type_id for m in r.feed(wire)] == [22]
    assert [m.type_id for m in r.feed(b"")] == [22]
    assert [m.type_id for m in r.feed(b"")] == [8] and not r.pending
    small = mod.Message(22, bytes(15 * 10), 0, 1)  # weighs 11
    w = mod.ChunkWriter()
    r = mod.ChunkReader(max_messages=256)
    assert len(r.feed(b"".join(w.encode(small) for _ in range(30)))) == 24
