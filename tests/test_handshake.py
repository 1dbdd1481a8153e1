"""Tests of the RTMP handshake state machines, both twins.

Every behaviour test runs against the compiled core (``rtmpx._handshake``)
and the pure-Python twin (``rtmpx._handshake_py``).  Digests are checked
against values computed here, with :mod:`hmac` and the offset formulas of
``docs/rtmp-notes.md``, never with the helpers under test.  The
``interop`` tests run real peers (a modern FFmpeg from imageio-ffmpeg,
Debian's FFmpeg, rtmpdump, nginx-rtmp) against the machines over loopback
sockets, every step bounded in time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import itertools
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtmpx.errors import HandshakeError, ProtocolError, RtmpError

# ------------------------------------------------------------------ oracle
# Written from the notes, independently of the module under test.

KEY_TAIL = bytes(
    [
        0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0,
        0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80,
        0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
    ]
)  # fmt: skip
FP_KEY = b"Genuine Adobe Flash Player 001" + KEY_TAIL  # 62 bytes
FMS_KEY = b"Genuine Adobe Flash Media Server 001" + KEY_TAIL  # 68 bytes
SIZE = 1536


def sha_hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def offset_for(block: bytes, schema: int) -> int:
    if schema == 1:
        return sum(block[8:12]) % 728 + 12
    return sum(block[772:776]) % 728 + 776


def digest_over(block: bytes, offset: int, key: bytes) -> bytes:
    return sha_hmac(key, block[:offset] + block[offset + 32 :])


def digest_valid(block: bytes, schema: int, key: bytes) -> bool:
    off = offset_for(block, schema)
    return block[off : off + 32] == digest_over(block, off, key)


def signature_valid(block: bytes, peer_digest: bytes, full_key: bytes) -> bool:
    return block[1504:] == sha_hmac(sha_hmac(full_key, peer_digest), block[:1504])


def make_complex_block(rng: random.Random, schema: int, key: bytes, version: bytes) -> bytes:
    """A C1/S1 with a digest, built here without the module."""
    block = bytearray(b"\x00\x00\x01\x02" + version + rng.randbytes(SIZE - 8))
    off = offset_for(bytes(block), schema)
    block[off : off + 32] = digest_over(bytes(block), off, key)
    return bytes(block)


def make_signed_block(rng: random.Random, peer_digest: bytes, full_key: bytes) -> bytes:
    body = rng.randbytes(1504)
    return body + sha_hmac(sha_hmac(full_key, peer_digest), body)


def digest_of(block: bytes, schema: int) -> bytes:
    off = offset_for(block, schema)
    return block[off : off + 32]


# ---------------------------------------------------------------- fixtures

MODULES = {"cython": "rtmpx._handshake", "python": "rtmpx._handshake_py"}


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(MODULES[name])
    except ImportError as exc:  # the compiled core is not built
        pytest.skip(f"{MODULES[name]} not importable ({exc}); build it with cythonize")


@pytest.fixture(params=list(MODULES), ids=list(MODULES))
def hs(request: pytest.FixtureRequest) -> ModuleType:
    return _load(request.param)


@pytest.fixture()
def both() -> tuple[ModuleType, ModuleType]:
    return _load("cython"), _load("python")


def seeded(seed: int) -> Any:
    return random.Random(seed).randbytes


def feed_in_pieces(
    machine: Any, data: bytes, rng: random.Random | None, one_byte: bool = False
) -> tuple[bytes, bytes]:
    """Feed ``data`` in random pieces (or one byte at a time) until the
    machine is done.  Returns (everything it asked to send, the bytes that
    belong to the next layer: its leftover plus what was not fed)."""
    out = bytearray()
    i = 0
    while i < len(data) and not machine.done:
        n = 1 if one_byte else (rng.randint(1, 900) if rng else len(data))
        out += machine.feed(data[i : i + n])
        i += n
    tail = machine.leftover + data[i:] if machine.done else b""
    return bytes(out), tail


def run_pair(
    hs: ModuleType,
    *,
    complex: bool,
    schema: int,
    rng: random.Random | None,
    one_byte: bool = False,
    seed: int = 1,
    client_tail: bytes = b"",
    server_tail: bytes = b"",
) -> dict[str, Any]:
    client = hs.ClientHandshake(
        complex=complex, schema=schema, epoch_ms=1000 + seed, random=seeded(seed)
    )
    server = hs.ServerHandshake(epoch_ms=2000 + seed, random=seeded(seed + 100))
    c0c1 = client.start()
    s0s1s2, rest = feed_in_pieces(server, c0c1, rng, one_byte)
    assert rest == b"" and not server.done
    c2, tail_at_client = feed_in_pieces(client, s0s1s2 + server_tail, rng, one_byte)
    assert client.done
    assert tail_at_client == server_tail
    nothing, tail_at_server = feed_in_pieces(server, c2 + client_tail, rng, one_byte)
    assert nothing == b""
    assert server.done
    assert tail_at_server == client_tail
    return {
        "client": client,
        "server": server,
        "c0c1": c0c1,
        "s0s1s2": s0s1s2,
        "c2": c2,
    }


# ------------------------------------------------------------ unit tests


def test_constants(hs: ModuleType) -> None:
    assert hs.HANDSHAKE_SIZE == 1536
    assert hs.DIGEST_SIZE == 32
    assert hs.RTMP_VERSION == 3
    assert hs.RTMPE_VERSION == 6
    assert hs.GENUINE_FP_KEY == FP_KEY and len(FP_KEY) == 62
    assert hs.GENUINE_FMS_KEY == FMS_KEY and len(FMS_KEY) == 68
    assert hs.FP_KEY_PARTIAL == FP_KEY[:30] == b"Genuine Adobe Flash Player 001"
    assert hs.FMS_KEY_PARTIAL == FMS_KEY[:36] == b"Genuine Adobe Flash Media Server 001"
    assert hs.DEFAULT_CLIENT_VERSION == b"\x09\x00\x7c\x02"
    assert hs.DEFAULT_SERVER_VERSION == b"\x04\x05\x00\x01"


@pytest.mark.parametrize("complex_", [True, False], ids=["complex", "simple"])
@pytest.mark.parametrize("schema", [0, 1])
@pytest.mark.parametrize("seed", range(12))
def test_pair_random_splits(hs: ModuleType, complex_: bool, schema: int, seed: int) -> None:
    rng = random.Random(seed * 7 + schema)
    r = run_pair(
        hs,
        complex=complex_,
        schema=schema,
        rng=rng,
        seed=seed,
        client_tail=b"\x03connect-chunk" * (seed % 3),
        server_tail=b"\x02ack" * (seed % 2),
    )
    client, server = r["client"], r["server"]
    assert len(r["c0c1"]) == 1537 and len(r["s0s1s2"]) == 3073 and len(r["c2"]) == 1536
    assert server.complex is complex_ and client.complex is complex_
    assert client.server_digest_ok is complex_
    assert server.schema == (schema if complex_ else None)
    assert client.schema == (schema if complex_ else None)
    assert server.c2_ok is True and client.s2_ok is True


@pytest.mark.parametrize("complex_", [True, False], ids=["complex", "simple"])
@pytest.mark.parametrize("schema", [0, 1])
def test_pair_one_byte_at_a_time(hs: ModuleType, complex_: bool, schema: int) -> None:
    r = run_pair(
        hs,
        complex=complex_,
        schema=schema,
        rng=None,
        one_byte=True,
        client_tail=b"after C2",
        server_tail=b"after S2",
    )
    assert r["server"].complex is complex_ and r["server"].c2_ok
    assert r["client"].complex is complex_ and r["client"].s2_ok


@pytest.mark.parametrize("complex_", [True, False], ids=["complex", "simple"])
def test_pair_whole_buffers_with_pipelined_tail(hs: ModuleType, complex_: bool) -> None:
    client = hs.ClientHandshake(complex=complex_)
    server = hs.ServerHandshake()
    out = server.feed(client.start())
    assert len(out) == 3073
    c2 = client.feed(out + b"S-chunks")
    assert client.done and client.leftover == b"S-chunks"
    assert server.feed(c2 + b"C-chunks") == b""
    assert server.done and server.leftover == b"C-chunks"


def test_leftover_empty_when_exact(hs: ModuleType) -> None:
    client = hs.ClientHandshake()
    server = hs.ServerHandshake()
    c2 = client.feed(server.feed(client.start()))
    assert client.leftover == b""
    server.feed(c2)
    assert server.done and server.leftover == b""


@pytest.mark.parametrize("schema", [0, 1])
def test_complex_digests_independently(hs: ModuleType, schema: int) -> None:
    r = run_pair(hs, complex=True, schema=schema, rng=random.Random(3), seed=9)
    c0c1, s0s1s2, c2 = r["c0c1"], r["s0s1s2"], r["c2"]
    assert c0c1[0] == 3 and s0s1s2[0] == 3
    c1, s1, s2 = c0c1[1:], s0s1s2[1:1537], s0s1s2[1537:]
    # C1: time, Flash Player version, digest with the 30-byte FP key.
    assert c1[0:4] == (1009).to_bytes(4, "big")
    assert c1[4:8] == b"\x09\x00\x7c\x02"
    assert digest_valid(c1, schema, FP_KEY[:30])
    assert not digest_valid(c1, 1 - schema, FP_KEY[:30])
    # S1: time, FMS version, digest with the 36-byte FMS key, same schema.
    assert s1[0:4] == (2009).to_bytes(4, "big")
    assert s1[4:8] == b"\x04\x05\x00\x01"
    assert digest_valid(s1, schema, FMS_KEY[:36])
    # S2: signed with HMAC(full FMS key, C1 digest).
    assert signature_valid(s2, digest_of(c1, schema), FMS_KEY)
    # C2: signed with HMAC(full FP key, S1 digest).
    assert signature_valid(c2, digest_of(s1, schema), FP_KEY)
    assert r["server"].peer_version == 0x09007C02
    assert r["server"].peer_epoch == 1009
    assert r["client"].peer_version == 0x04050001
    assert r["client"].peer_epoch == 2009


def test_simple_handshake_bytes(hs: ModuleType) -> None:
    r = run_pair(hs, complex=False, schema=1, rng=random.Random(4), seed=5)
    c1 = r["c0c1"][1:]
    s1, s2 = r["s0s1s2"][1:1537], r["s0s1s2"][1537:]
    assert c1[0:4] == (1005).to_bytes(4, "big") and c1[4:8] == b"\x00" * 4
    assert s1[0:4] == (2005).to_bytes(4, "big") and s1[4:8] == b"\x00" * 4
    assert s2 == c1  # S2 echoes C1
    assert r["c2"] == s1  # C2 echoes S1
    assert r["server"].peer_version == 0


@pytest.mark.parametrize("schema", [0, 1])
def test_server_accepts_foreign_complex_c1(hs: ModuleType, schema: int) -> None:
    rng = random.Random(schema + 40)
    c1 = make_complex_block(rng, schema, FP_KEY[:30], b"\x80\x00\x07\x02")
    server = hs.ServerHandshake(epoch_ms=77, version=b"\x0d\x0e\x0a\x0d")
    out = server.feed(b"\x03" + c1)
    assert server.complex and server.schema == schema
    assert server.peer_version == 0x80000702
    s1, s2 = out[1:1537], out[1537:]
    assert s1[4:8] == b"\x0d\x0e\x0a\x0d"
    assert digest_valid(s1, schema, FMS_KEY[:36])
    assert signature_valid(s2, digest_of(c1, schema), FMS_KEY)
    # A C2 signed as Flash Player signs it validates.
    c2 = make_signed_block(rng, digest_of(s1, schema), FP_KEY)
    server.feed(c2)
    assert server.done and server.c2_ok


def test_server_accepts_echo_c2_after_complex_c1(hs: ModuleType) -> None:
    """FFmpeg publishing sends C2 = S1 echoed even after a complex C1."""
    c1 = make_complex_block(random.Random(5), 1, FP_KEY[:30], b"\x80\x00\x07\x02")
    server = hs.ServerHandshake()
    s1 = server.feed(b"\x03" + c1)[1:1537]
    server.feed(s1)
    assert server.done and server.complex and server.c2_ok


def test_server_bad_c2_does_not_fail(hs: ModuleType) -> None:
    for complex_ in (True, False):
        client = hs.ClientHandshake(complex=complex_)
        server = hs.ServerHandshake()
        server.feed(client.start())
        server.feed(b"\x55" * 1536 + b"next")
        assert server.done and not server.c2_ok and server.leftover == b"next"


@pytest.mark.parametrize(
    "version",
    [b"\x00\x00\x00\x00", b"\x80\x00\x07\x02"],
    ids=["zero-version", "version-without-digest"],
)
def test_server_falls_back_to_simple(hs: ModuleType, version: bytes) -> None:
    rng = random.Random(11)
    c1 = b"\x00\x00\x00\x10" + version + rng.randbytes(1528)
    assert not digest_valid(c1, 0, FP_KEY[:30]) and not digest_valid(c1, 1, FP_KEY[:30])
    server = hs.ServerHandshake(epoch_ms=5)
    out = server.feed(b"\x03" + c1)
    assert not server.complex and server.schema is None
    assert out[0] == 3
    assert out[1:5] == (5).to_bytes(4, "big") and out[5:9] == b"\x00" * 4
    assert out[1537:] == c1
    server.feed(out[1:1537])
    assert server.done and server.c2_ok


def test_server_schema0_only_digest(hs: ModuleType) -> None:
    """A C1 whose digest is valid at schema 0 only is found after schema 1 fails."""
    rng = random.Random(12)
    while True:
        c1 = make_complex_block(rng, 0, FP_KEY[:30], b"\x09\x00\x7c\x02")
        if not digest_valid(c1, 1, FP_KEY[:30]):
            break
    server = hs.ServerHandshake()
    server.feed(b"\x03" + c1)
    assert server.schema == 0


@pytest.mark.parametrize("schema", [0, 1])
def test_client_against_foreign_complex_server(hs: ModuleType, schema: int) -> None:
    rng = random.Random(20 + schema)
    client = hs.ClientHandshake(schema=schema, random=seeded(3))
    c1 = client.start()[1:]
    s1 = make_complex_block(rng, schema, FMS_KEY[:36], b"\x0d\x0e\x0a\x0d")
    s2 = make_signed_block(rng, digest_of(c1, schema), FMS_KEY)
    c2 = client.feed(b"\x03" + s1 + s2 + b"tail")
    assert client.done and client.leftover == b"tail"
    assert client.server_digest_ok and client.complex and client.schema == schema
    assert client.s2_ok
    assert signature_valid(c2, digest_of(s1, schema), FP_KEY)


def test_client_against_bad_s1_digest_echoes(hs: ModuleType) -> None:
    rng = random.Random(30)
    client = hs.ClientHandshake()
    c1 = client.start()[1:]
    s1 = bytearray(make_complex_block(rng, 1, FMS_KEY[:36], b"\x04\x05\x00\x01"))
    off = offset_for(bytes(s1), 1)
    s1[off] ^= 0xFF  # break the digest
    s2 = make_signed_block(rng, digest_of(c1, 1), FMS_KEY)
    c2 = client.feed(b"\x03" + bytes(s1) + s2)
    assert client.done and not client.server_digest_ok and not client.complex
    assert c2 == bytes(s1)  # falls back to the echo
    assert client.s2_ok  # S2's signature over our C1 digest is still right


def test_client_bad_s2_does_not_fail(hs: ModuleType) -> None:
    client = hs.ClientHandshake()
    client.start()
    s1 = make_complex_block(random.Random(31), 1, FMS_KEY[:36], b"\x04\x05\x00\x01")
    client.feed(b"\x03" + s1 + b"\x00" * 1536)
    assert client.done and client.complex and not client.s2_ok


def test_client_simple_against_ffmpeg_style_server(hs: ModuleType) -> None:
    """FFmpeg's server: S1 with zero version, S2 = C1 with bytes 4..7 zeroed."""
    client = hs.ClientHandshake()
    c1 = client.start()[1:]
    s1 = c1[:4] + b"\x00" * 4 + random.Random(32).randbytes(1528)
    s2 = c1[:4] + b"\x00" * 4 + c1[8:]
    c2 = client.feed(b"\x03" + s1 + s2)
    assert not client.server_digest_ok and not client.complex and client.s2_ok
    assert c2 == s1


@pytest.mark.parametrize("c0", [0x06, 0x00, 0x08, 0xFF])
def test_server_refuses_versions(hs: ModuleType, c0: int) -> None:
    server = hs.ServerHandshake()
    with pytest.raises(HandshakeError) as info:
        server.feed(bytes([c0]))  # refused as soon as C0 arrives
    assert isinstance(info.value, ProtocolError)
    if c0 == 6:
        assert "RTMPE" in str(info.value)
    else:
        assert str(c0) in str(info.value)
    with pytest.raises(HandshakeError):
        server.feed(b"\x03" + bytes(1536))  # the machine stays failed
    assert not server.done


@pytest.mark.parametrize("s0", [0x06, 0x00])
def test_client_refuses_versions(hs: ModuleType, s0: int) -> None:
    client = hs.ClientHandshake()
    client.start()
    with pytest.raises(HandshakeError) as info:
        client.feed(bytes([s0]) + bytes(3072))
    if s0 == 6:
        assert "RTMPE" in str(info.value)
    with pytest.raises(HandshakeError):
        client.feed(b"\x03")
    assert not client.done


def test_server_refuses_rtmpe_within_c0c1(hs: ModuleType) -> None:
    c0c1 = hs.ClientHandshake().start()
    with pytest.raises(HandshakeError, match="RTMPE"):
        hs.ServerHandshake().feed(b"\x06" + c0c1[1:])


def test_misuse_raises_rtmp_error(hs: ModuleType) -> None:
    client = hs.ClientHandshake()
    with pytest.raises(RtmpError) as info:
        client.feed(b"\x03")
    assert not isinstance(info.value, ProtocolError)
    client.start()
    with pytest.raises(RtmpError):
        client.start()
    server = hs.ServerHandshake()
    client.feed(server.feed(b"".join([hs.ClientHandshake().start()])))
    server.feed(hs.ClientHandshake().start()[1:])  # any 1536 bytes as C2
    assert server.done and client.done
    for machine in (server, client):
        with pytest.raises(RtmpError) as info:
            machine.feed(b"x")
        assert not isinstance(info.value, ProtocolError)


def test_empty_feed_and_buffer_types(hs: ModuleType) -> None:
    client = hs.ClientHandshake(random=seeded(1))
    server = hs.ServerHandshake(random=seeded(2))
    c0c1 = client.start()
    assert server.feed(b"") == b""
    assert server.feed(bytearray(c0c1[:100])) == b""
    out = server.feed(memoryview(c0c1)[100:])
    assert len(out) == 3073
    assert client.feed(b"") == b""
    c2 = client.feed(bytearray(out))
    server.feed(memoryview(bytearray(c2)))
    assert server.done and server.c2_ok


def test_properties_before_anything(hs: ModuleType) -> None:
    server = hs.ServerHandshake()
    assert not server.done and server.leftover == b""
    assert not server.complex and server.schema is None
    assert server.peer_version is None and server.peer_epoch is None
    assert not server.c2_ok
    client = hs.ClientHandshake()
    assert not client.done and client.leftover == b""
    assert not client.complex and not client.server_digest_ok and client.schema is None
    assert client.peer_version is None and client.peer_epoch is None and not client.s2_ok


def test_epoch_wraps(hs: ModuleType) -> None:
    client = hs.ClientHandshake(epoch_ms=2**32 + 7)
    c1 = client.start()[1:]
    assert c1[0:4] == (7).to_bytes(4, "big")
    server = hs.ServerHandshake(epoch_ms=2**33 - 1)
    out = server.feed(b"\x03" + c1)
    assert out[1:5] == b"\xff\xff\xff\xff"
    assert server.peer_epoch == 7


def test_constructor_validation(hs: ModuleType) -> None:
    with pytest.raises(ValueError):
        hs.ClientHandshake(version=b"\x01\x02\x03")
    with pytest.raises(ValueError):
        hs.ClientHandshake(version=b"\x00\x00\x00\x00")
    with pytest.raises(ValueError):
        hs.ClientHandshake(schema=2)
    with pytest.raises(ValueError):
        hs.ServerHandshake(version=b"\x01\x02\x03\x04\x05")
    hs.ClientHandshake(complex=False, version=b"\x00\x00\x00\x00")  # unused when simple
    with pytest.raises(ValueError):
        hs.ClientHandshake(random=lambda n: b"x" * (n - 1)).start()
    server = hs.ServerHandshake(random=lambda n: b"")
    with pytest.raises(ValueError):
        server.feed(hs.ClientHandshake().start())
    with pytest.raises(HandshakeError):  # a machine that raised stays failed
        server.feed(b"\x00" * 1536)


def test_feed_rejects_non_buffers(hs: ModuleType) -> None:
    for bad in ("\x03abc", None, 3):
        with pytest.raises(TypeError):
            hs.ServerHandshake().feed(bad)
        client = hs.ClientHandshake()
        client.start()
        with pytest.raises(TypeError):
            client.feed(bad)


def test_random_call_pattern(hs: ModuleType) -> None:
    calls: list[tuple[str, int]] = []

    def recorder(who: str) -> Any:
        def rnd(n: int) -> bytes:
            calls.append((who, n))
            return os.urandom(n)

        return rnd

    for complex_ in (True, False):
        calls.clear()
        client = hs.ClientHandshake(complex=complex_, random=recorder("c"))
        server = hs.ServerHandshake(random=recorder("s"))
        server.feed(client.feed(server.feed(client.start())))
        if complex_:
            assert calls == [("c", 1528), ("s", 1528), ("s", 1504), ("c", 1504)]
        else:
            assert calls == [("c", 1528), ("s", 1528)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    complex_=st.booleans(),
    schema=st.integers(0, 1),
    cuts=st.lists(st.integers(1, 3100), max_size=12),
    tail=st.binary(max_size=40),
)
def test_any_split_gives_same_bytes(
    both: tuple[ModuleType, ModuleType], complex_: bool, schema: int, cuts: list[int], tail: bytes
) -> None:
    """Whatever the pieces, both twins send the bytes they send for whole buffers."""
    for hs in both:
        whole = run_pair(hs, complex=complex_, schema=schema, rng=None, client_tail=tail)
        client = hs.ClientHandshake(
            complex=complex_, schema=schema, epoch_ms=1001, random=seeded(1)
        )
        server = hs.ServerHandshake(epoch_ms=2001, random=seeded(101))
        assert client.start() == whole["c0c1"]

        def pieces(data: bytes) -> list[bytes]:
            points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
            return [data[a:b] for a, b in itertools.pairwise(points)]

        sent = b"".join(server.feed(p) for p in pieces(whole["c0c1"]))
        assert sent == whole["s0s1s2"]
        assert b"".join(client.feed(p) for p in pieces(sent)) == whole["c2"]
        rest = b""
        for p in pieces(whole["c2"] + tail):
            if server.done:
                rest += p
            else:
                server.feed(p)
        assert server.done and server.leftover + rest == tail
        assert (server.complex, server.c2_ok, client.s2_ok) == (complex_, True, True)


# ------------------------------------------------------------------ helpers


def test_helpers_against_formulas(hs: ModuleType) -> None:
    rng = random.Random(50)
    for _ in range(50):
        block = rng.randbytes(SIZE)
        for schema in (0, 1):
            off = hs.digest_offset(block, schema)
            assert off == offset_for(block, schema)
            assert (12 <= off <= 12 + 727) if schema == 1 else (776 <= off <= 776 + 727)
            assert hs.make_digest(block, off, FP_KEY[:30]) == digest_over(block, off, FP_KEY[:30])
            imprinted = hs.imprint_digest(bytearray(block), schema, FMS_KEY[:36])
            assert digest_valid(imprinted, schema, FMS_KEY[:36])
            assert imprinted[:off] == block[:off] and imprinted[off + 32 :] == block[off + 32 :]
            found = hs.find_digest(imprinted, FMS_KEY[:36])
            assert found == 1 if digest_valid(imprinted, 1, FMS_KEY[:36]) else found == schema
        assert hs.find_digest(block, FP_KEY[:30]) is None
        peer, body = rng.randbytes(32), rng.randbytes(1504)
        assert hs.response_signature(peer, FMS_KEY, body) == sha_hmac(sha_hmac(FMS_KEY, peer), body)


def test_helpers_reject_bad_input(hs: ModuleType) -> None:
    with pytest.raises(ValueError):
        hs.digest_offset(b"\x00" * 1535, 1)
    with pytest.raises(ValueError):
        hs.digest_offset(b"\x00" * 1536, 2)
    with pytest.raises(ValueError):
        hs.make_digest(b"\x00" * 1536, 1505, b"k")
    with pytest.raises(ValueError):
        hs.make_digest(b"\x00" * 1536, -1, b"k")
    with pytest.raises(ValueError):
        hs.find_digest(b"\x00" * 10, b"k")
    with pytest.raises(ValueError):
        hs.imprint_digest(b"\x00" * 1537, 0, b"k")
    with pytest.raises(ValueError):
        hs.response_signature(b"\x00" * 31, b"k", b"\x00" * 1504)
    with pytest.raises(ValueError):
        hs.response_signature(b"\x00" * 32, b"k", b"\x00" * 1503)


# -------------------------------------------------------- twins identical


def _transcript(mod: ModuleType, complex_: bool, schema: int, seed: int, epoch: int) -> Any:
    client = mod.ClientHandshake(
        complex=complex_, schema=schema, epoch_ms=epoch, random=seeded(seed)
    )
    server = mod.ServerHandshake(epoch_ms=epoch * 3, random=seeded(seed ^ 0x5A5A))
    c0c1 = client.start()
    s0s1s2 = server.feed(c0c1 + b"")
    c2 = client.feed(s0s1s2 + b"x" * (seed % 4))
    server.feed(c2 + b"y" * (seed % 5))
    state = [
        (m.done, m.leftover, m.complex, m.schema, m.peer_version, m.peer_epoch)
        for m in (client, server)
    ]
    return c0c1, s0s1s2, c2, state, server.c2_ok, client.s2_ok, client.server_digest_ok


@pytest.mark.parametrize("complex_", [True, False], ids=["complex", "simple"])
@pytest.mark.parametrize("schema", [0, 1])
def test_twins_identical(both: tuple[ModuleType, ModuleType], complex_: bool, schema: int) -> None:
    compiled, pure = both
    for seed in range(25):
        epoch = seed * 123_457
        assert _transcript(compiled, complex_, schema, seed, epoch) == _transcript(
            pure, complex_, schema, seed, epoch
        )


def test_twins_identical_on_foreign_input(both: tuple[ModuleType, ModuleType]) -> None:
    compiled, pure = both
    rng = random.Random(60)
    for i in range(30):
        kind = i % 3
        if kind == 0:
            c1 = make_complex_block(rng, i % 2, FP_KEY[:30], b"\x80\x00\x07\x02")
        elif kind == 1:
            c1 = rng.randbytes(SIZE)
        else:
            c1 = b"\x00" * 8 + rng.randbytes(1528)
        c2 = rng.randbytes(SIZE)
        results = []
        for mod in (compiled, pure):
            server = mod.ServerHandshake(epoch_ms=i, random=seeded(i))
            out = server.feed(b"\x03" + c1)
            server.feed(c2)
            results.append((out, server.complex, server.schema, server.c2_ok, server.peer_version))
        assert results[0] == results[1]
        block = rng.randbytes(SIZE)
        for schema in (0, 1):
            assert compiled.digest_offset(block, schema) == pure.digest_offset(block, schema)
            assert compiled.imprint_digest(block, schema, FP_KEY) == pure.imprint_digest(
                block, schema, FP_KEY
            )


# ------------------------------------------------------------------ interop

DEADLINE = 30.0  # seconds per interop test, every wait below is bounded by it


def _modern_ffmpeg() -> str:
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]
    except ImportError as exc:
        pytest.skip(f"imageio-ffmpeg not installed ({exc}): no modern FFmpeg to test against")
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        pytest.skip(f"imageio-ffmpeg has no ffmpeg binary here: {exc}")


def _debian_ffmpeg() -> str:
    if not os.path.exists("/usr/bin/ffmpeg"):
        pytest.skip("/usr/bin/ffmpeg missing (Debian package ffmpeg not installed)")
    return "/usr/bin/ffmpeg"


@pytest.fixture(params=["modern", "debian"])
def ffmpeg(request: pytest.FixtureRequest) -> str:
    return _modern_ffmpeg() if request.param == "modern" else _debian_ffmpeg()


@contextlib.contextmanager
def peer_process(args: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], Any]]:
    """Run a peer with its output in a temporary file; always kill it."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield proc, log
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def read_log(log: Any) -> str:
    log.flush()
    log.seek(0)
    return bytes(log.read()).decode("utf-8", "replace")


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock
    finally:
        sock.close()


def recv_some(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("interop peer too slow")
    sock.settimeout(remaining)
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("peer closed the connection")
    return data


def serve_handshake(
    hs: ModuleType, lsock: socket.socket, deadline: float, proc: subprocess.Popen[bytes], log: Any
) -> tuple[Any, bytes]:
    """Accept one peer, run ServerHandshake, return it and >= 22 bytes after C2."""
    lsock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        conn, _ = lsock.accept()
    except TimeoutError:
        pytest.fail(f"peer never connected; its output:\n{read_log(log)[-3000:]}")
    with conn:
        server = hs.ServerHandshake(epoch_ms=12345)
        try:
            while not server.done:
                out = server.feed(recv_some(conn, deadline))
                if out:
                    conn.sendall(out)
            after = bytearray(server.leftover)
            while len(after) < 22:
                after += recv_some(conn, deadline)
        except (TimeoutError, ConnectionError) as exc:
            pytest.fail(f"{exc}; peer output:\n{read_log(log)[-3000:]}")
    return server, bytes(after)


def assert_connect_chunk(after: bytes) -> None:
    """The first chunk after C2: fmt 0, csid 3, an AMF0 command 'connect'."""
    assert after[0] >> 6 == 0, "fmt 0"
    assert after[0] & 0x3F == 3, "csid 3"
    length = int.from_bytes(after[4:7], "big")
    assert 0 < length < 1 << 24
    assert after[7] == 20, "message type 20 (AMF0 command)"
    assert int.from_bytes(after[8:12], "little") == 0, "message stream id 0"
    assert after[12:22] == b"\x02\x00\x07connect"


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_interop_ffmpeg_publishes_to_our_server(hs: ModuleType, ffmpeg: str) -> None:
    deadline = time.monotonic() + DEADLINE
    with listener() as lsock:
        port = lsock.getsockname()[1]
        args = [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "verbose",
            "-re", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10", "-t", "5",
            "-c:v", "libx264", "-f", "flv", f"rtmp://127.0.0.1:{port}/app/key",
        ]  # fmt: skip
        with peer_process(args) as (proc, log):
            server, after = serve_handshake(hs, lsock, deadline, proc, log)
    assert server.done
    # FFmpeg's C1 is complex: version 0x80000702 and a schema 1 digest.
    assert server.complex and server.schema == 1
    assert server.peer_version != 0
    assert server.c2_ok  # a publishing FFmpeg echoes S1
    assert_connect_chunk(after)


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_interop_ffmpeg_plays_from_our_server(hs: ModuleType, ffmpeg: str) -> None:
    """A playing FFmpeg checks S1's digest and S2's signature (it drops the
    connection before C2 if either is wrong) and signs its C2."""
    deadline = time.monotonic() + DEADLINE
    with listener() as lsock:
        port = lsock.getsockname()[1]
        args = [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "debug", "-rw_timeout", "10000000",
            "-i", f"rtmp://127.0.0.1:{port}/app/key", "-t", "1", "-f", "null", "-",
        ]  # fmt: skip
        with peer_process(args) as (proc, log):
            server, after = serve_handshake(hs, lsock, deadline, proc, log)
            output = read_log(log)
    assert server.done and server.complex and server.schema == 1
    assert server.c2_ok  # its C2 carries the signature over our S1 digest
    assert "validating failed" not in output and "Signature mismatch" not in output
    assert_connect_chunk(after)


def _connect_chunk(tc_url: str) -> bytes:
    def amf_string(text: str) -> bytes:
        raw = text.encode()
        return b"\x02" + len(raw).to_bytes(2, "big") + raw

    def key(text: str) -> bytes:
        raw = text.encode()
        return len(raw).to_bytes(2, "big") + raw

    body = (
        amf_string("connect")
        + b"\x00" + struct.pack(">d", 1.0)
        + b"\x03" + key("app") + amf_string("app")
        + key("tcUrl") + amf_string(tc_url)
        + b"\x00\x00\x09"
    )  # fmt: skip
    assert len(body) <= 128  # one chunk at the default chunk size
    header = b"\x03" + b"\x00\x00\x00" + len(body).to_bytes(3, "big") + b"\x14" + b"\x00" * 4
    return header + body


def connect_with_retry(port: int, deadline: float, proc: subprocess.Popen[bytes]) -> socket.socket:
    while True:
        if proc.poll() is not None:
            pytest.fail(f"peer exited early with {proc.returncode}")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def free_port() -> int:
    with listener() as sock:
        return int(sock.getsockname()[1])


def client_handshake_against(
    hs: ModuleType, port: int, deadline: float, proc: subprocess.Popen[bytes], log: Any
) -> tuple[Any, bytes]:
    """Run ClientHandshake, send a connect command, return the client and
    the first bytes the server answered after the handshake."""
    with connect_with_retry(port, deadline, proc) as conn:
        client = hs.ClientHandshake(epoch_ms=1)
        conn.sendall(client.start())
        try:
            while not client.done:
                out = client.feed(recv_some(conn, deadline))
                if out:
                    conn.sendall(out)
            conn.sendall(_connect_chunk(f"rtmp://127.0.0.1:{port}/app"))
            reply = bytearray(client.leftover)
            while len(reply) < 12:
                reply += recv_some(conn, deadline)
        except (TimeoutError, ConnectionError) as exc:
            pytest.fail(f"{exc}; peer output:\n{read_log(log)[-3000:]}")
    return client, bytes(reply)


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_interop_our_client_against_ffmpeg_server(hs: ModuleType, ffmpeg: str) -> None:
    deadline = time.monotonic() + DEADLINE
    port = free_port()
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "debug", "-listen", "1",
        "-timeout", "20", "-i", f"rtmp://127.0.0.1:{port}/app/key", "-f", "null", "-",
    ]  # fmt: skip
    with peer_process(args) as (proc, log):
        client, reply = client_handshake_against(hs, port, deadline, proc, log)
        output = read_log(log)
    assert client.done
    # FFmpeg's server does the simple handshake: S1 has a zero version and
    # no digest, S2 echoes our C1 (bytes 4..7 zeroed); so our C2 echoes S1.
    assert not client.server_digest_ok and not client.complex and client.schema is None
    assert client.peer_version == 0
    assert client.s2_ok
    assert "Erroneous C2" not in output and "C2 Error" not in output
    # FFmpeg took our C2 and answered connect: protocol control on csid 2.
    assert reply[0] & 0x3F == 2 and reply[7] in (1, 5, 6), reply[:12].hex()


@pytest.mark.interop
@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["simple", "complex"])
def test_interop_rtmpdump_against_our_server(hs: ModuleType, mode: str) -> None:
    """librtmp sends an FP9 (complex) C1 only when SWF verification or RTMPE
    is asked for; ``--swfhash``/``--swfsize`` ask for it without fetching a
    SWF.  A plain URL gets the simple handshake."""
    rtmpdump = "/usr/bin/rtmpdump"
    if not os.path.exists(rtmpdump):
        pytest.skip("/usr/bin/rtmpdump missing (Debian package rtmpdump not installed)")
    deadline = time.monotonic() + DEADLINE
    with listener() as lsock:
        port = lsock.getsockname()[1]
        args = [
            rtmpdump, "-V", "-r", f"rtmp://127.0.0.1:{port}/app/key",
            "-o", "/dev/null", "--timeout", "5",
        ]  # fmt: skip
        if mode == "complex":
            args += ["--swfhash", "00" * 32, "--swfsize", "1"]
        with peer_process(args) as (proc, log):
            server, after = serve_handshake(hs, lsock, deadline, proc, log)
            # our side is closed now; rtmpdump ends by itself, bounded anyway
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            output = read_log(log)
    assert server.done
    assert "Handshaking finished" in output, output[-3000:]
    assert "handshake failed" not in output
    if mode == "complex":
        assert server.complex, "an FP9 C1 carries a valid digest"
        assert server.schema == 1 and server.peer_version != 0
        assert server.c2_ok, "librtmp signs its C2 with the FP key over our S1 digest"
        # librtmp checked our S1 digest and our S2 signature.
        assert "FMS Version   : 4.5.0.1" in output
        assert "Genuine Adobe Flash Media Server" in output, output[-3000:]
        assert "not genuine" not in output
        assert "Couldn't verify the server digest" not in output
        assert "Trying different position" not in output
    else:
        assert not server.complex and server.peer_version == 0
        assert server.c2_ok  # librtmp echoes S1
        # librtmp compares S2 with its C1 byte for byte.
        assert "client signature does not match" not in output
    assert_connect_chunk(after)


NGINX_CONF = """
load_module {module};
daemon off;
master_process off;
worker_processes 1;
error_log {prefix}/error.log debug;
pid {prefix}/nginx.pid;
events {{ worker_connections 16; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application app {{ live on; }}
    }}
}}
"""


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_interop_our_client_against_nginx_rtmp(hs: ModuleType) -> None:
    """nginx-rtmp answers a complex C1 with a complex S1 (version 0d0e0a0d)
    and a signed S2: our client must validate both."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    module = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
    if not os.path.exists(nginx) or not os.path.exists(module):
        pytest.skip("nginx with the RTMP module missing (Debian libnginx-mod-rtmp)")
    deadline = time.monotonic() + DEADLINE
    port = free_port()
    with tempfile.TemporaryDirectory() as prefix:
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(module=module, prefix=prefix, port=port))
        args = [nginx, "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")]
        with peer_process(args) as (proc, log):
            client, reply = client_handshake_against(hs, port, deadline, proc, log)
    assert client.done
    assert client.server_digest_ok and client.complex and client.schema == 1
    assert client.peer_version == 0x0D0E0A0D
    assert client.s2_ok
    assert reply[0] & 0x3F == 2 and reply[7] in (1, 5, 6), reply[:12].hex()
