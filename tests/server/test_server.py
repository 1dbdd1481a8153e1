"""The asyncio server against real FFmpeg: relay, late joiners, extended
timestamps, hooks, duplicate publish, slow players, RTMPS, ingest, stats."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import rtmpx
from rtmpx.server import HubLimits, Request, Server, StatsServer
from rtmpx.session import ConnectionState

from ..peers import (
    RawPeer,
    channel,
    ffmpeg_exe,
    lavfi_publish_args,
    live,
    messages_in,
    packet_count,
    publish_frames,
    run,
    shrink_send_buffers,
    sinks,
    wait_for,
)


def publish_args(ffmpeg: str, url: str, seconds: float = 2.0, realtime: bool = True,
                 extra: tuple[str, ...] = ()) -> list[str]:
    return [ffmpeg, "-hide_banner", "-loglevel", "error", *(["-re"] if realtime else []),
            *lavfi_publish_args(seconds), *extra, "-f", "flv", url]


HEAVY = ("-s", "640x360", "-b:v", "3M", "-minrate", "3M", "-maxrate", "3M",
         "-bufsize", "1M")  # 3 Mbit/s of video: enough to fill a stalled player's buffers


def play_args(ffmpeg: str, url: str, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-rw_timeout", "20000000",
            "-i", url, *extra, "-c", "copy", "-f", "flv", str(out)]


def probe(ffmpeg: str, path: Path) -> list[tuple[int, int]]:
    """(stream index, pts) of every packet of a file, as FFmpeg reads it."""
    out = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-c", "copy", "-f",
                          "framecrc", "-"], capture_output=True, text=True, timeout=60,
                         check=True)
    rows = []
    for line in out.stdout.splitlines():
        if line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            rows.append((int(fields[0]), int(fields[2])))
    return rows


def decode_errors(ffmpeg: str, path: Path) -> str:
    """What FFmpeg complains about when it decodes a file from its first frame."""
    out = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60, check=False)
    return out.stderr


@pytest.mark.interop
async def test_relay_ffmpeg_to_ffmpeg_and_late_joiner(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/key"
        early, late = tmp_path / "early.flv", tmp_path / "late.flv"
        early_player = asyncio.create_task(run(*play_args(ffmpeg, url, early)))
        await wait_for(lambda: sinks(server, "live/key") == 1)
        publisher = asyncio.create_task(run(*publish_args(ffmpeg, url, seconds=4.0)))
        await wait_for(lambda: live(server, "live/key"))
        await asyncio.sleep(1.7)  # join in the middle of a GOP
        late_player = asyncio.create_task(run(*play_args(ffmpeg, url, late)))
        code, err = await publisher
        assert code == 0, err
        for player in (early_player, late_player):
            code, err = await asyncio.wait_for(player, 30)
            assert code == 0, err
    # the early player got every frame of the source: 4 s at 25 fps
    assert packet_count(ffmpeg, early, "v:0") == 100
    assert packet_count(ffmpeg, early, "a:0") > 150
    late_frames = packet_count(ffmpeg, late, "v:0")
    assert 20 < late_frames < 100
    assert decode_errors(ffmpeg, late) == ""  # starts at a keyframe: no grey frames
    _, codecs = await run(ffmpeg, "-hide_banner", "-i", str(late), timeout=30)
    assert "h264" in codecs and "aac" in codecs


@pytest.mark.interop
async def test_extended_timestamps_are_preserved(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    out = tmp_path / "out.framecrc"
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/ext"
        # the player keeps the timestamps it receives (-copyts) and lists
        # every packet with its pts (framecrc)
        player = asyncio.create_task(run(
            ffmpeg, "-hide_banner", "-loglevel", "error", "-rw_timeout", "20000000", "-copyts",
            "-i", url, "-c", "copy", "-f", "framecrc", str(out)))
        await wait_for(lambda: channel(server, "live/ext") is not None)
        code, err = await run(*publish_args(ffmpeg, url, seconds=2.0,
                                            extra=("-output_ts_offset", "16800")))
        assert code == 0, err
        code, err = await asyncio.wait_for(player, 30)
        assert code == 0, err
    video = [int(line.split(",")[2]) for line in out.read_text().splitlines()
             if line.startswith("0,")]
    assert len(video) == 50
    assert min(video) == 16_800_000  # every timestamp above 0xFFFFFF (24 bits)
    assert video == [16_800_000 + 40 * i for i in range(50)]  # none lost or bent


@pytest.mark.interop
async def test_hooks_reject_bad_token_and_duplicate_publish_gets_badname() -> None:
    ffmpeg = ffmpeg_exe()
    seen: list[Request] = []

    async def on_publish(request: Request) -> bool:
        seen.append(request)
        return request.params.get("token") == "s3cret"

    async with Server(port=0, on_publish=on_publish) as server:
        base = f"rtmp://127.0.0.1:{server.port}/live/cam"
        code, _ = await run(*publish_args(ffmpeg, base + "?token=wrong", seconds=1),
                            timeout=30)
        assert code != 0
        assert seen[-1].name == "cam" and seen[-1].query == "token=wrong"
        assert not live(server, "live/cam")
        first = asyncio.create_task(run(*publish_args(ffmpeg, base + "?token=s3cret",
                                                      seconds=6)))
        await wait_for(lambda: live(server, "live/cam"))
        code, _ = await run(*publish_args(ffmpeg, base + "?token=s3cret", seconds=1),
                            timeout=30)
        assert code != 0  # NetStream.Publish.BadName
        assert live(server, "live/cam")  # the first one goes on
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)


@pytest.mark.interop
async def test_ingest_api_gets_every_frame() -> None:
    ffmpeg = ffmpeg_exe()
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/ingest"
        frames: list[Any] = []
        metadata: list[dict[str, Any]] = []

        async def consume() -> None:
            async for stream in server.publishes():
                assert str(stream.key) == "live/ingest"
                async for frame in stream:
                    if isinstance(frame, rtmpx.events.Metadata):
                        metadata.append(frame.metadata)
                    else:
                        frames.append(frame)
                return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        code, err = await run(*publish_args(ffmpeg, url, seconds=2.0, realtime=False))
        assert code == 0, err
        await asyncio.wait_for(consumer, 20)
    video = [f for f in frames if f.kind == "video"]
    assert metadata and metadata[0]["width"] == 160.0
    assert video[0].is_sequence_header and video[0].codec == "avc"
    coded = [f for f in video if not f.is_sequence_header and not f.is_end_of_sequence]
    assert len(coded) == 50
    assert sum(f.is_keyframe for f in coded) == 5  # -g 10
    assert {f.codec for f in frames if f.kind == "audio"} == {"aac"}


@pytest.mark.interop
async def test_slow_player_does_not_slow_anyone(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    limits = HubLimits(max_queue=64 * 1024, max_lag=2.0)
    out = tmp_path / "normal.flv"
    async with Server(port=0, limits=limits) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/slow"
        # a player that plays and then never reads again
        session = rtmpx.ClientSession("live", f"rtmp://127.0.0.1:{server.port}/live")
        session.connect()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stream_id = None
        writer.write(session.data_to_send())
        while stream_id is None:
            for event in session.receive_data(await reader.read(65536)):
                if isinstance(event, rtmpx.events.Connected):
                    session.create_stream()
                elif isinstance(event, rtmpx.events.StreamCreated):
                    stream_id = event.stream_id
                    session.play(stream_id, "slow")
            writer.write(session.data_to_send())
        await wait_for(lambda: sinks(server, "live/slow") == 1)
        shrink_send_buffers(server)
        normal = asyncio.create_task(run(*play_args(ffmpeg, url, out)))
        await wait_for(lambda: sinks(server, "live/slow") == 2)
        slow_sink = channel(server, "live/slow").players[0]
        started = time.monotonic()
        code, err = await run(*publish_args(ffmpeg, url, seconds=6.0, extra=HEAVY))
        elapsed = time.monotonic() - started
        assert code == 0, err
        code, err = await asyncio.wait_for(normal, 30)
        assert code == 0, err
        writer.close()
    assert elapsed < 6.0 + 4.0  # the publisher ran at its own pace
    assert packet_count(ffmpeg, out, "v:0") == 150  # the normal player lost nothing
    assert slow_sink.stats.dropped > 0  # the slow one did


async def test_slow_player_is_dropped_then_disconnected_for_lag() -> None:
    limits = HubLimits(max_queue=32 * 1024, max_lag=1.0)
    async with Server(port=0, limits=limits) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/stall"
        peer = await RawPeer(server.port, rcvbuf=4096).open()
        peer.session.start_play("stall")
        peer.flush()
        await peer.until(lambda: peer.of(rtmpx.events.PlayStarted))
        await wait_for(lambda: sinks(server, "live/stall") == 1)
        shrink_send_buffers(server)
        sink = channel(server, "live/stall").players[0]
        # 3 MB/s of video, then the player stops reading
        publisher = asyncio.create_task(publish_frames(url, 600, size=30_000, interval=0.01))
        await wait_for(lambda: sink.stats.dropped > 0, 15)
        first_drop = time.monotonic()
        peak = sink.queued_bytes
        await wait_for(lambda: sink.closed, 15)
        # what the policy promises: video dropped first, then disconnected for
        # lag once behind for max_lag (checked once a second), queue bounded
        assert sink.stats.disconnected_for_lag
        assert time.monotonic() - first_drop < limits.max_lag + 2.5
        assert peak <= 2 * limits.max_queue + 256 * 1024
        await asyncio.wait_for(publisher, 30)  # the publisher was never slowed
        await peer.close()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key),
         "-out", str(cert)], capture_output=True, timeout=60, check=False)
    if openssl.returncode != 0:
        pytest.skip("openssl could not make a test certificate")
    return cert, key


@pytest.mark.interop
async def test_rtmps_publish_over_tls(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with Server(port=0, ssl=context) as server:
        frames = 0

        async def consume() -> None:
            nonlocal frames
            async for stream in server.publishes():
                async for frame in stream:
                    if getattr(frame, "kind", "") == "video":
                        frames += 1
                return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        url = f"rtmps://127.0.0.1:{server.port}/live/tls"
        code, err = await run(*publish_args(ffmpeg, url, seconds=1.0, realtime=False,
                                            extra=("-tls_verify", "0")))
        assert code == 0, err
        await asyncio.wait_for(consumer, 20)
    assert frames >= 25


async def test_stats_endpoint_json_and_prometheus() -> None:
    async with Server(port=0) as server:
        stats = StatsServer(server, port=0)
        await stats.start()
        try:
            url = f"rtmp://127.0.0.1:{server.port}/live/st"
            publisher = asyncio.create_task(publish_frames(url, 100, interval=0.02))
            await wait_for(lambda: messages_in(server, "live/st") > 10)

            async def get(path: str) -> tuple[str, str]:
                reader, writer = await asyncio.open_connection("127.0.0.1", stats.port)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                             .encode())
                data = await asyncio.wait_for(reader.read(), 10)
                writer.close()
                head, _, body = data.decode().partition("\r\n\r\n")
                return head, body

            head, body = await get("/stats")
            assert "200 OK" in head
            doc = json.loads(body)
            assert doc["publishers"] == 1 and doc["streams"][0]["key"] == "live/st"
            assert doc["bytes_in"] > 0
            head, body = await get("/metrics")
            assert "rtmpx_publishers 1" in body
            assert 'rtmpx_bytes_in_total{stream="live/st"}' in body
            head, _ = await get("/nope")
            assert "404" in head
            await asyncio.wait_for(publisher, 20)
        finally:
            await stats.close()


async def test_limits_handshake_deadline_and_max_connections() -> None:
    async with Server(port=0, handshake_timeout=1.0, max_connections=2) as server:
        silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        for r, w in silent:  # dropped at the handshake deadline
            assert await asyncio.wait_for(r.read(), 5) == b""
            w.close()
        url = f"rtmp://127.0.0.1:{server.port}/live"
        async with rtmpx.connect(url) as one, rtmpx.connect(url) as two:
            one.play("a")
            two.play("b")
            with pytest.raises(rtmpx.ConnectionRejectedError, match="Server full"):
                await rtmpx.connect(url, timeout=5)  # an _error, not a reset
        await wait_for(lambda: not server.connections, 5)


async def test_garbage_disconnects_only_that_peer() -> None:
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/ok"
        publisher = asyncio.create_task(publish_frames(url, 100, interval=0.01))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x03" + bytes(1536) + bytes(1536) + b"\xff" * 5000)
        try:
            await asyncio.wait_for(reader.read(), 10)  # the server hangs up on us
        except ConnectionResetError:
            pass
        writer.close()
        await wait_for(lambda: len(server.connections) <= 1, 10)
        assert await asyncio.wait_for(publisher, 20) == 100


@pytest.mark.interop
async def test_graceful_shutdown_tells_players(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_exe()
    out = tmp_path / "p.flv"
    server = Server(port=0, record_dir=tmp_path / "rec")
    await server.start()
    url = f"rtmp://127.0.0.1:{server.port}/live/down"
    player = asyncio.create_task(run(*play_args(ffmpeg, url, out)))
    publisher = asyncio.create_task(run(*publish_args(ffmpeg, url, seconds=20.0)))
    await wait_for(lambda: messages_in(server, "live/down") > 30)
    await server.close()
    code, err = await asyncio.wait_for(player, 20)
    assert code == 0, err  # the player ended cleanly with what it had
    publisher.cancel()
    await asyncio.gather(publisher, return_exceptions=True)
    assert packet_count(ffmpeg, out, "v:0") > 0
    recordings = list((tmp_path / "rec" / "live").glob("down-*.flv"))
    assert len(recordings) == 1 and packet_count(ffmpeg, recordings[0], "v:0") > 0


@pytest.mark.interop
async def test_players_stay_for_a_republish() -> None:
    ffmpeg = ffmpeg_exe()
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/again"
        frames = 0
        async with rtmpx.connect(url) as client:
            stream = client.play(until_unpublish=False)

            async def watch() -> None:
                nonlocal frames
                async for item in stream:
                    if getattr(item, "kind", "") == "video" and item.is_keyframe \
                            and not item.is_sequence_header:
                        frames += 1

            watcher = asyncio.create_task(watch())
            await wait_for(lambda: sinks(server, "live/again") == 1)
            for _ in range(2):
                code, err = await run(*publish_args(ffmpeg, url, seconds=1.0))
                assert code == 0, err
                await asyncio.sleep(0.3)
            assert sinks(server, "live/again") == 1  # still connected, still waiting
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        assert frames >= 2 * 3  # keyframes of both publishes (-g 10, 25 fps, 1 s)


async def test_connect_and_play_hooks_reject() -> None:
    def on_connect(request: Request) -> bool:
        return request.params.get("pass") == "yes"

    async def on_play(request: Request) -> None:
        if request.name == "secret":
            raise PermissionError("not for you")

    async with Server(port=0, on_connect=on_connect, on_play=on_play) as server:
        base = f"rtmp://127.0.0.1:{server.port}/live"
        with pytest.raises(rtmpx.ConnectionRejectedError):
            await rtmpx.connect(f"{base}?pass=no", timeout=5)
        async with rtmpx.connect(f"{base}?pass=yes", timeout=5) as client:
            with pytest.raises(rtmpx.StatusError) as info:
                async for _ in client.play("secret"):
                    pass
            assert "not for you" in info.value.description


async def test_idle_connections_are_dropped_but_pinged_peers_stay() -> None:
    async with Server(port=0, idle_timeout=3.0) as server:
        session = rtmpx.ClientSession("live", f"rtmp://127.0.0.1:{server.port}/live")
        session.connect()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(session.data_to_send())
        while session.state is not ConnectionState.CONNECTED:
            session.receive_data(await reader.read(65536))
            writer.write(session.data_to_send())
        async with rtmpx.connect(f"rtmp://127.0.0.1:{server.port}/live") as alive:
            await alive.play("waiting")  # a player waiting for a publisher is not idle
            # the raw one never answers again (not even the pings): dropped
            started = time.monotonic()
            async with asyncio.timeout(10):
                while await reader.read(65536):
                    pass
            assert time.monotonic() - started > 2.0
            # the rtmpx client answers the pings: it stays
            await asyncio.sleep(2.0)
            assert not alive.closed and len(server.connections) == 1
        writer.close()


@pytest.mark.interop
async def test_legacy_debian_ffmpeg_publishes_and_plays(tmp_path: Path) -> None:
    """FFmpeg 5.1 (Debian's), an older peer, through the relay both ways."""
    from ..peers import debian_tool

    ffmpeg = debian_tool("ffmpeg")
    out = tmp_path / "legacy.flv"
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/legacy"
        player = asyncio.create_task(run(*play_args(ffmpeg, url, out)))
        await wait_for(lambda: sinks(server, "live/legacy") == 1)
        code, err = await run(*publish_args(ffmpeg, url, seconds=2.0))
        assert code == 0, err
        code, err = await asyncio.wait_for(player, 30)
        assert code == 0, err
    assert packet_count(ffmpeg_exe(), out, "v:0") == 50


async def test_close_finishes_what_it_owes(tmp_path: Path) -> None:
    """Regression: close() spawned the on_unpublish hooks and cancelled the
    background tasks in the same pass, so those hooks never ran; background
    tasks were never awaited."""
    seen: list[tuple[str, str]] = []

    async def on_unpublish(request: Request) -> None:
        await asyncio.sleep(0.2)
        seen.append(("unpublish", request.name))

    async def on_disconnect(request: Request) -> None:
        await asyncio.sleep(0.1)
        seen.append(("disconnect", request.app))

    server = Server(port=0, record_dir=tmp_path, on_unpublish=on_unpublish,
                    on_disconnect=on_disconnect)
    await server.start()
    url = f"rtmp://127.0.0.1:{server.port}/live/down"
    publisher = asyncio.create_task(publish_frames(url, 100_000, interval=0.005))
    player = await RawPeer(server.port).open()
    player.session.start_play("down")
    player.flush()
    await player.until(lambda: player.of(rtmpx.events.PlayStarted))
    await wait_for(lambda: messages_in(server, "live/down") > 60)
    await server.close()
    assert sorted(seen) == [("disconnect", "live"), ("disconnect", "live"),
                            ("unpublish", "down")]
    assert len(server.tasks) == 0 and not server.connections
    # the player heard the end of the stream before the connection closed
    assert await player.closed_by_server(5)
    assert any(getattr(e, "code", "") == "NetStream.Play.UnpublishNotify"
               for e in player.events), [type(e).__name__ for e in player.events][-8:]
    await player.close()
    # the recording is complete: closed, every tag whole
    (path,) = (tmp_path / "live").glob("down-*.flv")
    from rtmpx.flv import FLVReader

    with FLVReader(path) as reader:
        tags = list(reader)
        assert not reader.truncated
    assert sum(t.is_video for t in tags) > 30
    await asyncio.gather(publisher, return_exceptions=True)


async def test_nothing_starts_after_close(tmp_path: Path) -> None:
    """Review finding: a TLS connection that finished its handshake after
    close() was served by a server that had shut down."""
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    server = Server(port=0, ssl=context)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # TLS not yet
    await asyncio.sleep(0.2)
    await server.close()
    try:
        await asyncio.wait_for(writer.start_tls(client_context), 5)
        writer.write(b"\x03" + bytes(1536))
        assert await asyncio.wait_for(reader.read(), 5) == b""   # refused
    except (ConnectionError, ssl.SSLError):
        pass                                                      # or cut during TLS
    assert not server.connections and not server.hub.channels
    writer.close()


# --- Enhanced RTMP negotiation and reconnect requests -------------------------------------

def local_peer(client: rtmpx.Client) -> str:
    """How the server names a client's connection (``ip:port``)."""
    assert client._transport is not None
    host, port = client._transport.get_extra_info("sockname")[:2]
    return f"{host}:{port}"


async def test_capabilities_are_exchanged() -> None:
    from rtmpx.session.capabilities import DEFAULT_CAPABILITIES, LEGACY

    requests: list[Request] = []
    async with Server(port=0, on_connect=requests.append, on_publish=requests.append) as server:
        base = f"rtmp://127.0.0.1:{server.port}/live"
        async with rtmpx.connect(base, follow_reconnect=True) as capable, \
                rtmpx.connect(base) as plain, rtmpx.connect(base, capabilities=None) as legacy:
            async with await capable.publish("caps"):
                pass
            # the server's answer: what rtmpx supports; a legacy client gets the legacy one
            assert capable.server_capabilities == DEFAULT_CAPABILITIES
            assert plain.server_capabilities == DEFAULT_CAPABILITIES
            assert legacy.server_capabilities == LEGACY
            assert "capsEx" not in (legacy.connected.properties if legacy.connected else {"x": 1})
    connects = [r for r in requests if r.action == "connect"]
    assert len(connects) == 3
    by_reconnect = sorted((r.capabilities.reconnect, r.capabilities.enhanced) for r in connects)
    # follow_reconnect advertises Reconnect; a plain client all but Reconnect (it would
    # not act on a request); a legacy one nothing
    assert by_reconnect == [(False, False), (False, True), (True, True)]
    publish = next(r for r in requests if r.action == "publish")
    assert publish.capabilities == DEFAULT_CAPABILITIES
    assert all(r.capabilities.supports("hvc1") for r in connects if r.capabilities.enhanced)


async def test_request_reconnect_reaches_capable_clients_only() -> None:
    got: dict[str, list[rtmpx.events.ReconnectRequested]] = {"a": [], "b": []}
    async with Server(port=0) as server:
        base = f"rtmp://127.0.0.1:{server.port}/live"
        async with rtmpx.connect(base, on_reconnect_request=got["a"].append) as a, \
                rtmpx.connect(base, on_reconnect_request=got["b"].append) as b, \
                rtmpx.connect(base) as plain, \
                rtmpx.connect(base, capabilities=None) as legacy:
            stream_a = await a.publish("ra")
            stream_plain = await plain.publish("rplain")
            # by stream key: only its publisher
            assert server.request_reconnect(("live", "ra"), tc_url="rtmp://other:1936/live",
                                            description="Moving you.") == [local_peer(a)]
            # the publisher of a key that cannot be asked, an unknown key: nobody
            assert server.request_reconnect(("live", "rplain")) == []
            assert server.request_reconnect(("live", "nothing")) == []
            # by peer
            assert server.request_reconnect(peer=local_peer(b), tc_url="/otherapp") \
                == [local_peer(b)]
            assert server.request_reconnect(peer=local_peer(legacy)) == []
            # everyone: the capable ones
            assert sorted(server.request_reconnect()) == sorted([local_peer(a), local_peer(b)])
            await wait_for(lambda: len(got["a"]) == 2 and len(got["b"]) == 2, 5)
            first = got["a"][0]
            assert (first.tc_url, first.description) == ("rtmp://other:1936/live", "Moving you.")
            assert a.reconnect_requested and a.reconnect_request == got["a"][-1]
            assert got["a"][-1].tc_url == f"rtmp://127.0.0.1:{server.port}/live"  # the same
            assert got["b"][0].tc_url == f"rtmp://127.0.0.1:{server.port}/otherapp"
            await asyncio.sleep(0.2)
            assert not plain.reconnect_requested and not legacy.reconnect_requested
            # asked clients keep being served
            await stream_a.send_video(0, b"\x17\x00\x00\x00\x00")
            assert live(server, "live/ra") and live(server, "live/rplain")
            await stream_a.close()
            await stream_plain.close()


async def test_close_asks_capable_clients_and_never_legacy_ones() -> None:
    asked: list[rtmpx.events.ReconnectRequested] = []
    server = Server(port=0, reconnect_grace=5.0)
    await server.start()
    base = f"rtmp://127.0.0.1:{server.port}/live"
    capable = await rtmpx.connect(base, on_reconnect_request=asked.append)
    legacy = await rtmpx.connect(base, capabilities=None)
    raw = await RawPeer(server.port).open()   # a ClientSession: advertises Reconnect
    player = capable.play("nobody", until_unpublish=False)
    player_task = asyncio.create_task(player.start())
    await wait_for(lambda: sinks(server, "live/nobody") == 1, 5)
    async def read_then_close() -> bool:   # a peer that reads, and closes at the end
        ended = await raw.closed_by_server(10)
        await raw.close()
        return ended

    raw_closed = asyncio.create_task(read_then_close())
    started = time.monotonic()
    await server.close(reconnect_tc_url="rtmp://127.0.0.1:1/live")
    # players do not hold the shutdown: only asked publishers are waited for
    assert time.monotonic() - started < 3.0
    await capable.wait_closed()
    await legacy.wait_closed()
    assert [r.tc_url for r in asked] == ["rtmp://127.0.0.1:1/live"]
    assert asked[0].description == "The server is shutting down."
    assert capable.reconnect_requested and not legacy.reconnect_requested
    assert await raw_closed
    assert raw.of(rtmpx.events.ReconnectRequested)
    await capable.close()
    await legacy.close()
    await asyncio.gather(player_task, return_exceptions=True)


async def test_close_serves_an_asked_publisher_until_it_leaves_or_the_grace_ends() -> None:
    server = Server(port=0, reconnect_grace=1.0)
    await server.start()
    url = f"rtmp://127.0.0.1:{server.port}/live/stays"
    requested = asyncio.Event()
    client = await rtmpx.connect(url, on_reconnect_request=lambda _: requested.set())
    stream = await client.publish()
    got: list[int] = []

    class Follower:   # sees what the publication still receives
        queued_bytes = 0

        def publish_started(self, *_: Any) -> None: ...
        def publish_ended(self, *_: Any) -> None: ...

        def packet(self, packet: Any, now: float) -> None:
            got.append(packet.timestamp)

    publication = channel(server, "live/stays").publication
    publication.follow(Follower())
    started = time.monotonic()
    closing = asyncio.create_task(server.close())
    await asyncio.wait_for(requested.wait(), 5)
    for ts in range(0, 200, 40):   # a client that ignores the request goes on publishing
        await stream.send_audio(ts, b"\xaf\x01abc")
        await asyncio.sleep(0.05)
    await closing
    assert 1.0 <= time.monotonic() - started < 4.0   # the grace, then the usual shutdown
    assert got == list(range(0, 200, 40))             # served meanwhile
    await client.close()


@pytest.mark.interop
@pytest.mark.parametrize("which", ["debian", "pypi"])
async def test_ffmpeg_is_never_asked_to_reconnect(which: str, tmp_path: Path) -> None:
    """FFmpeg (5.1 and 9) advertises no capsEx: it is never sent a reconnect
    request, not even at shutdown, and publishes and plays as ever."""
    from ..peers import debian_tool

    ffmpeg = debian_tool("ffmpeg") if which == "debian" else ffmpeg_exe()
    requests: list[Request] = []
    async with Server(port=0, on_connect=requests.append) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/ff"
        out = tmp_path / "out.flv"
        player = asyncio.create_task(run(*play_args(ffmpeg, url, out)))
        await wait_for(lambda: sinks(server, "live/ff") == 1)
        publisher = asyncio.create_task(run(*publish_args(ffmpeg, url, seconds=2.0)))
        await wait_for(lambda: live(server, "live/ff"))
        assert server.request_reconnect() == []
        code, err = await publisher
        assert code == 0, err
        code, err = await asyncio.wait_for(player, 30)
        assert code == 0, err
    assert all(not r.capabilities.reconnect for r in requests)
    assert packet_count(ffmpeg, out, "v:0") >= 45


def has_encoder(ffmpeg: str, name: str) -> bool:
    out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True,
                         timeout=60, check=False).stdout
    return f" {name} " in out


@pytest.mark.interop
async def test_ffmpeg9_publishes_hevc_with_enhanced_codecs(tmp_path: Path) -> None:
    """FFmpeg 9 sends fourCcList when asked to (-rtmp_enhanced_codecs): it gets
    the enhanced answer and publishes HEVC; without it, the legacy answer."""
    ffmpeg = ffmpeg_exe()
    if not has_encoder(ffmpeg, "libx265"):
        pytest.skip("this ffmpeg has no libx265")
    requests: list[Request] = []
    async with Server(port=0, on_connect=requests.append) as server:
        for key, extra in (("enhanced", ["-rtmp_enhanced_codecs", "hvc1,av01,Opus"]),
                           ("plain", [])):
            url = f"rtmp://127.0.0.1:{server.port}/live/{key}"
            frames: list[Any] = []

            async def play(url: str = url, frames: list[Any] = frames) -> None:
                async with rtmpx.connect(url) as client:
                    async for item in client.play():
                        frames.append(item)

            player = asyncio.create_task(play())
            await wait_for(lambda key=key: sinks(server, f"live/{key}") == 1)
            code, err = await run(
                ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
                "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "2",
                "-c:v", "libx265", "-x265-params", "log-level=error:keyint=10",
                *extra, "-f", "flv", url)
            assert code == 0, err
            await asyncio.wait_for(player, 30)
            video = [f for f in frames if isinstance(f, rtmpx.Frame) and f.kind == "video"]
            assert video[0].is_sequence_header and video[0].codec == "hevc"
            assert video[0].is_enhanced
            assert sum(1 for f in video if not f.is_sequence_header) >= 45
    enhanced, plain = [r for r in requests if "Lavf" in str(r.connect_params.get("flashVer"))]
    assert enhanced.capabilities.fourcc_list == ("hvc1", "av01", "Opus")
    assert not plain.capabilities.enhanced


@pytest.mark.interop
async def test_rtmpdump_plays_what_a_reconnect_capable_client_publishes(tmp_path: Path) -> None:
    """librtmp's connect is a legacy one: the legacy answer, no request."""
    from ..peers import debian_tool

    rtmpdump = debian_tool("rtmpdump")
    requests: list[Request] = []
    async with Server(port=0, on_connect=requests.append) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/dump"
        out = tmp_path / "dump.flv"
        player = asyncio.create_task(run(rtmpdump, "-v", "-r", url, "-o", str(out),
                                         timeout=30))
        await wait_for(lambda: sinks(server, "live/dump") == 1)
        assert server.request_reconnect() == []
        publisher = asyncio.create_task(publish_frames(url, 100, keyint=10, interval=0.01))
        await wait_for(lambda: live(server, "live/dump"))
        await publisher
        _, err = await asyncio.wait_for(player, 30)
    # its FCSubscribe used to get an _error ("ERROR: rtmp server sent error")
    assert "ERROR" not in err, err
    librtmp = [r for r in requests if "rtmpx" not in str(r.connect_params.get("flashVer"))]
    assert librtmp and not librtmp[0].capabilities.enhanced
    from rtmpx.flv import read_tags

    video = [t for t in read_tags(out) if t.is_video]
    assert video[0].frame().is_sequence_header and len(video) >= 90


@pytest.mark.interop
async def test_gstreamer_publishes_and_plays(sample: Any, tmp_path: Path) -> None:
    """GStreamer's rtmp2sink publishes an FLV (flvdemux ! flvmux, no
    re-encoding) while its rtmp2src plays it from before the publish."""
    from ..peers import debian_tool

    gst = debian_tool("gst-launch-1.0")
    played = tmp_path / "gst-played.flv"
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/gst"
        player = asyncio.create_task(run(gst, "-q", "rtmp2src", f"location={url}", "!",
                                         "filesink", f"location={played}", timeout=60))
        await wait_for(lambda: sinks(server, "live/gst") == 1, 20)
        code, err = await run(
            gst, "-q", "filesrc", f"location={sample.path}", "!", "flvdemux", "name=d",
            "d.video", "!", "queue", "!", "h264parse", "!", "flvmux", "name=m",
            "streamable=true", "!", "rtmp2sink", f"location={url}",
            "d.audio", "!", "queue", "!", "aacparse", "!", "m.", timeout=60)
        assert code == 0, err
        code, err = await asyncio.wait_for(player, 60)
        assert code == 0, err
    ffmpeg = ffmpeg_exe()
    coded = [f for f in (t.frame() for t in sample.tags if t.is_video)
             if not f.is_sequence_header and not f.is_end_of_sequence]
    assert packet_count(ffmpeg, played, "v:0") == len(coded) == 50


async def test_a_too_long_reconnect_url_is_refused_before_anything() -> None:
    """Review of issue 9: close(reconnect_tc_url=<5000 chars>) raised after
    the listener was closed and left publications live and connections
    open; a second close() then returned at once."""
    async with Server(port=0) as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/k"
        async with rtmpx.connect(url, follow_reconnect=True) as client, \
                await client.publish():
            long_url = "rtmp://h/" + "a" * 5000
            with pytest.raises(ValueError, match="tc_url"):
                server.request_reconnect(tc_url=long_url)
            with pytest.raises(ValueError, match="tc_url"):
                await server.close(reconnect_tc_url=long_url)
            assert live(server, "live/k") and server.connections  # nothing half done
        await server.close()
        assert not server.connections and server.hub.closed
