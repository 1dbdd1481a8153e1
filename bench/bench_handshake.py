"""Handshake throughput: compiled core vs pure-Python twin (pytest-benchmark).

Run (kept out of the default test run)::

    python3 -m pytest bench/bench_handshake.py --benchmark-only \
        --benchmark-columns=mean,stddev,ops,rounds

``ops`` is handshakes per second.  Cases:

* ``server_complex``: one full server-side complex handshake, C0+C1 in ->
  S0+S1+S2 out -> C2 in, with a Flash-style signed C2 so every check runs
  (C1 digest found at schema 1, S1 digest, S2 signature, C2 signature
  checked after the echo test fails: 6 HMAC-SHA256 over ~1.5 KB).
  ``random`` is a table lookup so the figure is the handshake, not the
  kernel's RNG; ``server_complex_urandom`` is the same with ``os.urandom``.
* ``server_simple``: a simple C1 (both schemas tried, 2 HMACs, then echoes).
* ``client_complex``: ``start()`` + ``feed(S0+S1+S2)`` against a complex S1.
* ``hmac_floor``: the six ``hmac.digest`` calls alone, the cost no
  implementation can go under with OpenSSL's SHA-256.
"""

from __future__ import annotations

import hmac
import importlib
import os
from types import ModuleType
from typing import Any

import pytest

MODULES = {"cython": "rtmpx._handshake", "python": "rtmpx._handshake_py"}


@pytest.fixture(params=list(MODULES), ids=list(MODULES))
def hs(request: pytest.FixtureRequest) -> ModuleType:
    try:
        return importlib.import_module(MODULES[request.param])
    except ImportError as exc:
        pytest.skip(f"{MODULES[request.param]} not importable ({exc})")


def fixed_random(seed: int) -> Any:
    """Deterministic and nearly free: one precomputed slice per size."""
    import random

    rng = random.Random(seed)
    table = {1528: rng.randbytes(1528), 1504: rng.randbytes(1504)}
    return table.__getitem__


def complex_inputs(hs: ModuleType) -> tuple[bytes, bytes]:
    """C0+C1 of a complex client and the signed C2 it would send back to a
    server using ``fixed_random(2)``."""
    client = hs.ClientHandshake(epoch_ms=1, random=fixed_random(1))
    server = hs.ServerHandshake(epoch_ms=2, random=fixed_random(2))
    c0c1 = client.start()
    c2 = client.feed(server.feed(c0c1))
    server.feed(c2)
    assert server.done and server.complex and server.c2_ok and client.complex
    assert c2 != server_s1(hs, c0c1)  # a signed C2, not an echo
    return c0c1, c2


def server_s1(hs: ModuleType, c0c1: bytes) -> bytes:
    return bytes(hs.ServerHandshake(epoch_ms=2, random=fixed_random(2)).feed(c0c1)[1:1537])


def test_server_complex(benchmark: Any, hs: ModuleType) -> None:
    c0c1, c2 = complex_inputs(hs)
    rnd = fixed_random(2)
    server_cls = hs.ServerHandshake

    def handshake() -> Any:
        server = server_cls(epoch_ms=2, random=rnd)
        server.feed(c0c1)
        server.feed(c2)
        return server

    server = benchmark(handshake)
    assert server.done and server.complex and server.c2_ok


def test_server_complex_urandom(benchmark: Any, hs: ModuleType) -> None:
    c0c1 = hs.ClientHandshake().start()
    c2 = os.urandom(1536)  # cannot be signed over a random S1: checked, fails
    server_cls = hs.ServerHandshake

    def handshake() -> Any:
        server = server_cls(epoch_ms=2)
        server.feed(c0c1)
        server.feed(c2)
        return server

    server = benchmark(handshake)
    assert server.done and server.complex and not server.c2_ok


def test_server_simple(benchmark: Any, hs: ModuleType) -> None:
    c0c1 = hs.ClientHandshake(complex=False, random=fixed_random(1)).start()
    rnd = fixed_random(2)
    c2 = hs.ServerHandshake(epoch_ms=2, random=rnd).feed(c0c1)[1:1537]  # echo of S1
    server_cls = hs.ServerHandshake

    def handshake() -> Any:
        server = server_cls(epoch_ms=2, random=rnd)
        server.feed(c0c1)
        server.feed(c2)
        return server

    server = benchmark(handshake)
    assert server.done and not server.complex and server.c2_ok


def test_client_complex(benchmark: Any, hs: ModuleType) -> None:
    rnd = fixed_random(1)
    c0c1 = hs.ClientHandshake(epoch_ms=1, random=rnd).start()
    s0s1s2 = hs.ServerHandshake(epoch_ms=2, random=fixed_random(2)).feed(c0c1)
    client_cls = hs.ClientHandshake

    def handshake() -> Any:
        client = client_cls(epoch_ms=1, random=rnd)
        client.start()
        client.feed(s0s1s2)
        return client

    client = benchmark(handshake)
    assert client.done and client.complex and client.s2_ok


def test_hmac_floor(benchmark: Any) -> None:
    key, body, digest = b"k" * 36, os.urandom(1504), os.urandom(32)
    hd = hmac.digest

    def six_hmacs() -> bytes:
        hd(key, body, "sha256")  # C1 digest check
        hd(key, body, "sha256")  # S1 digest
        hd(hd(key, digest, "sha256"), body, "sha256")  # S2 signature
        return hd(hd(key, digest, "sha256"), body, "sha256")  # C2 check

    benchmark(six_hmacs)
