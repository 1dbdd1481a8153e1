"""The HTTP side (aiohttp): stats, metrics, bounds on slow clients, and
its lifecycle with the RTMP server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from rtmpx.server import HttpServer, Server, StatsServer
from rtmpx.server.http import REQUEST_TIMEOUT

from ..peers import publish_frames, wait_for


async def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


async def test_server_http_port_serves_stats_and_metrics_and_stops_with_it() -> None:
    async with Server(port=0, http_port=0) as server:
        assert server.http is not None and server.http_port == server.http.port != 0
        port = server.http.port
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/h", 100, interval=0.02))
        await wait_for(lambda: any(c.live for c in server.hub.channels.values()), 10)
        status, headers, body = await _get(port, "/stats")
        assert status == 200 and headers["content-type"].startswith("application/json")
        stats = json.loads(body)
        assert stats["publishers"] == 1 and stats["streams"][0]["key"] == "live/h"
        status, headers, body = await _get(port, "/")  # the dashboard
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert body.lstrip().lower().startswith(b"<!doctype html>")
        for path in ("/static/nope.js", "/static/..%2fhttp.py", "/static/.hidden.js",
                     "/static/index.py"):
            assert (await _get(port, path))[0] == 404, path
        status, headers, body = await _get(port, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        assert b'rtmpx_bytes_in_total{stream="live/h"}' in body
        status, headers, body = await _get(port, "/metrics", "HEAD")
        assert status == 200 and body == b""
        assert (await _get(port, "/nothing"))[0] == 404
        assert (await _get(port, "/stats", "POST"))[0] == 405
        await publisher
    with pytest.raises(OSError):   # closed with the server
        await asyncio.open_connection("127.0.0.1", port)


class Source:
    """A supervisor's shape: stats() is async."""

    async def stats(self) -> dict[str, object]:
        return {"uptime": 1.0, "connections": 0, "streams": [], "publishers": 0, "players": 0,
                "bytes_in": 0, "bytes_out": 0, "dropped": 0}


@pytest.mark.parametrize("send", [b"", b"GET /stats HTTP/1.1\r\nHost: x\r\n",
                                  b"GET /stats HTTP/1.1\r\nHost: "])
async def test_a_client_that_does_not_finish_its_request_is_cut(send: bytes) -> None:
    """Silent, a head that never ends, one that trickles in: each is
    closed after ``request_timeout``, not held (a slowloris)."""
    assert StatsServer is HttpServer
    async with HttpServer(Source(), port=0, request_timeout=0.5) as http:
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        started = time.monotonic()
        writer.write(send)
        if send.endswith(b"Host: "):
            for _ in range(20):   # one byte every 0.1 s: never a whole request
                await asyncio.sleep(0.1)
                if reader.at_eof():
                    break
                writer.write(b"x")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert time.monotonic() - started < 5
        writer.close()
        status, _, body = await _get(http.port, "/stats")   # others are still served
        assert status == 200 and json.loads(body)["connections"] == 0


def test_a_bad_request_timeout_is_refused() -> None:
    with pytest.raises(ValueError):
        HttpServer(Source(), request_timeout=0)
    assert REQUEST_TIMEOUT > 0


async def test_an_http_port_in_use_fails_the_start_and_leaves_nothing() -> None:
    async with HttpServer(Source(), port=0) as taken:
        server = Server(port=0, http_port=taken.port)
        with pytest.raises(OSError):
            await server.start()
        assert server.http is None and not server.connections


async def test_stats_list_a_stream_s_recordings(tmp_path: Path) -> None:
    async with Server(port=0, http_port=0, record_dir=tmp_path) as server:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/rec", 100, interval=0.02))
        await wait_for(lambda: bool((streams := server.stats()["streams"])
                                    and streams[0]["recordings"]))
        status, _, body = await _get(server.http_port, "/stats")
        recordings = json.loads(body)["streams"][0]["recordings"]
        assert status == 200 and len(recordings) == 1
        assert Path(recordings[0]["path"]).parent == tmp_path / "live"
        assert recordings[0]["path"].endswith(".flv")
        await publisher


async def test_stats_that_cannot_be_had_are_a_503() -> None:
    """Regression: a worker whose supervisor did not answer (or answered
    an error) made /stats and /metrics a 500 with a traceback."""

    class Silent:
        async def stats(self) -> dict[str, object]:
            raise TimeoutError

    async with HttpServer(Silent(), port=0) as http:
        for path in ("/stats", "/metrics"):
            assert (await _get(http.port, path))[0] == 503
