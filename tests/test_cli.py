"""The ``rtmpx`` command line."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtmpx.__main__ import main

from .peers import Sample, ffmpeg_exe, free_port, live, packet_count, wait_for


def test_amf_encode_decode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["amf", "encode", '"connect"', "1", '{"app": "live"}']) == 0
    hexdump = capsys.readouterr().out.strip()
    assert hexdump.startswith("02 00 07 63 6f 6e 6e 65 63 74 00 3f f0")
    assert main(["amf", "decode", *hexdump.split()]) == 0
    assert capsys.readouterr().out.splitlines() == ["'connect'", "1.0", "{'app': 'live'}"]


def test_amf3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["amf", "decode", "0a0b01036104010101", "--amf-version", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == ["{'a': 1}", "None"]


def test_bad_input_is_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["amf", "decode", "0aff"]) == 2
    assert "truncated" in capsys.readouterr().err


def test_python_dash_m() -> None:
    out = subprocess.run([sys.executable, "-m", "rtmpx", "--version"], capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.startswith("rtmpx ")


# --- serve / publish / play, as a user runs them ---------------------------------------

def _rtmpx(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtmpx", "--log-level", "warning", *args]


@pytest.mark.interop
def test_serve_publish_play_and_stats(sample: Sample, tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    port, stats_port, http_port = free_port(), free_port(), free_port()
    server = subprocess.Popen(_rtmpx("serve", "--host", "127.0.0.1", "--port", str(port),
                                     "--http-port", str(http_port),
                                     "--stats-port", str(stats_port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline().decode()
        assert f"rtmp://127.0.0.1:{port}/" in banner
        assert f"http://127.0.0.1:{http_port}/stats" in banner
        assert f"http://127.0.0.1:{stats_port}/stats" in banner
        url = f"rtmp://127.0.0.1:{port}/live/cli"
        out = tmp_path / "out.flv"
        player = subprocess.Popen(_rtmpx("play", url, "-o", str(out), "--duration", "30"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while b'"players": 1' not in _get(stats_port, "/stats"):
            assert time.monotonic() < deadline, "the player never showed in /stats"
            time.sleep(0.1)
        publish = subprocess.run(_rtmpx("publish", str(sample.path), url, "--no-realtime"),
                                 capture_output=True, text=True, timeout=60, check=False)
        assert publish.returncode == 0, publish.stderr
        assert "published" in publish.stderr  # the progress line
        assert player.wait(30) == 0
        assert packet_count(ffmpeg, out, "v:0") == sample.video_frames
        metrics = _get(http_port, "/metrics").decode()   # --http-port: the same server
        assert "rtmpx_connections" in metrics
        assert b'"connections"' in _get(http_port, "/stats")
        # the web players' routes (an unknown stream: their own 404) and the dashboard
        assert _get(http_port, "/live/none.flv") == b"no such stream\n"
        assert _get(http_port, "/live/none.m3u8") == b"no such stream\n"
        assert _get(http_port, "/").lower().startswith(b"<!doctype html>")
        server.send_signal(signal.SIGTERM)
        assert server.wait(15) == 0  # graceful shutdown
    finally:
        for proc in (server,):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).partition(b"\r\n\r\n")[2]


def test_publish_to_nowhere_is_a_clean_error(tmp_path: Path, sample: Sample) -> None:
    proc = subprocess.run(_rtmpx("publish", str(sample.path),
                                 f"rtmp://127.0.0.1:{free_port()}/live/x"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "rtmpx: error:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_limit_has_a_serve_option_and_a_readme_row() -> None:
    """The README's limits table, `rtmpx serve` and the API agree."""
    import dataclasses
    import inspect
    from pathlib import Path

    from rtmpx.__main__ import _limit_settings, build_parser
    from rtmpx.server import HubLimits, Server
    from rtmpx.server.limits import LIMITS
    from rtmpx.session import SessionConfig

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    owners = {"server": set(inspect.signature(Server).parameters),
              "hub": {f.name for f in dataclasses.fields(HubLimits)},
              "session": {f.name for f in dataclasses.fields(SessionConfig)}}
    argv = ["serve"]
    for limit in LIMITS:
        assert limit.keyword in owners[limit.where]
        assert f"({limit.keyword}=)` | `{limit.option}` |" in readme
        argv += [limit.option, "7"]
    kwargs = _limit_settings(build_parser().parse_args(argv))
    assert kwargs.pop("limits") == HubLimits(max_queue=7, max_lag=7.0, max_gop_bytes=7,
                                             max_gop_entries=7, max_header_bytes=7)
    config = kwargs.pop("session_config")
    assert all(getattr(config, lim.keyword) == 7 for lim in LIMITS if lim.where == "session")
    assert kwargs == {lim.keyword: lim.type(7) for lim in LIMITS if lim.where == "server"}
    assert _limit_settings(build_parser().parse_args(["serve"])) == {}


def test_serve_limit_options_reach_the_server() -> None:
    import asyncio

    import rtmpx

    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live"

    async def attempts() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the 1 s handshake deadline
        writer.close()
        async with rtmpx.connect(url, timeout=10) as client:
            client.play("x")
            with pytest.raises(rtmpx.ConnectionRejectedError, match="max_connections=1"):
                await rtmpx.connect(url, timeout=10)

    server = subprocess.Popen(_rtmpx("serve", "--host", "127.0.0.1", "--port", str(port),
                                     "--max-connections", "1", "--handshake-timeout", "1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert f":{port}/" in server.stdout.readline().decode()
        asyncio.run(attempts())
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert b"limit max_connections=1" in err and b"limit handshake_timeout=1" in err


@pytest.mark.parametrize("stay", [False, True])
async def test_publish_follows_a_reconnect_request(sample: Sample, stay: bool) -> None:
    """``rtmpx publish`` offers to follow reconnect requests (Enhanced RTMP)
    and moves to the server one names; with ``--no-follow`` it does not
    offer, and is never asked."""
    from rtmpx import Server

    async with Server(port=0) as first, Server(port=0) as second:
        url = f"rtmp://127.0.0.1:{first.port}/live/cli-move"
        args = _rtmpx("publish", str(sample.path), url, "--loop", *(["--no-follow"] * stay))
        proc = await asyncio.create_subprocess_exec(*args, stderr=subprocess.PIPE)
        try:
            await wait_for(lambda: live(first, "live/cli-move"))
            asked = first.request_reconnect(("live", "cli-move"),
                                            tc_url=f"rtmp://127.0.0.1:{second.port}/live")
            assert len(asked) == (0 if stay else 1)  # asked only if it advertised it
            if stay:  # never asked, so it stays: nothing to wait for
                assert live(first, "live/cli-move") and not live(second, "live/cli-move")
            else:
                await wait_for(lambda: live(second, "live/cli-move"))
            assert proc.returncode is None  # still publishing
        finally:
            proc.terminate()
            await proc.communicate()


def test_bad_hls_durations_are_a_clean_error() -> None:
    proc = subprocess.run(_rtmpx("serve", "--port", "0", "--hls-segment", "1", "--hls-part", "2"),
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0
    assert "--hls-segment/--hls-part: need 0 < part_target <= segment_target" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_infinite_hls_durations_are_a_clean_error() -> None:
    proc = subprocess.run(_rtmpx("serve", "--port", "0", "--hls-segment", "inf",
                                 "--hls-part", "inf"),
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0 and "finite" in proc.stderr and "Traceback" not in proc.stderr
