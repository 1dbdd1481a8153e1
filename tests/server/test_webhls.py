"""LL-HLS and live fMP4 from the server (rtmpx.server.webhls): FFmpeg reads
the playlist, blocking reloads and preload-hinted parts wait for their
part, a WebSocket client gets init + fragments from a keyframe."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rtmpx.hls import HLSConfig, Packager, PartInfo
from rtmpx.server import HubLimits, Server, webhls

from ..peers import (
    debian_tool,
    ffmpeg_exe,
    lavfi_publish_args,
    publish_frames,
    start,
    stop,
    wait_for,
)

pytestmark = pytest.mark.asyncio


def _packager(server: Server, key: tuple[str, str]) -> Packager | None:
    assert server.http is not None and server.http.hls is not None
    found = server.http.hls.outputs.get(key)  # type: ignore[call-overload]
    return found[0].packager if found is not None else None


def _boxes(data: bytes) -> list[bytes]:
    """The top-level box types of an MP4 byte string."""
    kinds, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kinds.append(data[pos + 4:pos + 8])
        assert size >= 8
        pos += size
    assert pos == len(data)
    return kinds


async def test_ffmpeg_reads_ll_hls_as_a_late_joiner_from_a_keyframe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhls, "REPUBLISH_GRACE", 0.5)  # ENDLIST soon after the end
    ffmpeg = ffmpeg_exe()
    async with Server(port=0, http_port=0) as server:
        publisher = start([ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
                           *lavfi_publish_args(9.0, gop=25), "-f", "flv",
                           f"rtmp://127.0.0.1:{server.port}/live/cam"])
        try:
            await wait_for(lambda: (c := server.hub.get(("live", "cam"))) is not None
                           and c.live and c.gop_bytes > 0, timeout=15)
            await asyncio.sleep(2.6)  # join late, mid-GOP
            out = tmp_path / "got.mkv"
            url = f"http://127.0.0.1:{server.http_port}/live/cam.m3u8"
            reader = start([ffmpeg, "-hide_banner", "-v", "error", "-i", url, "-c", "copy",
                            "-y", str(out)])
            code, err = await asyncio.to_thread(stop, reader, 40)
        finally:
            await asyncio.to_thread(stop, publisher, 30)
    assert code == 0 and err.strip() == "", err
    decoded = await asyncio.to_thread(
        subprocess.run, [ffmpeg, "-v", "error", "-i", str(out), "-map", "0:v", "-f", "framecrc",
                         "-"], capture_output=True, text=True, timeout=60, check=True)
    assert decoded.stderr == ""  # every frame decodes
    video = [line for line in decoded.stdout.splitlines() if line and line[0] != "#"]
    assert len(video) >= 75  # 3 s or more at 25 fps: the rest of the stream after joining
    probe = await asyncio.to_thread(
        subprocess.run, [debian_tool("ffprobe"), "-v", "error", "-select_streams", "v",
                         "-show_entries", "frame=key_frame,pict_type", "-of", "csv=p=0", str(out)],
        capture_output=True, text=True, timeout=60, check=True)
    frames = probe.stdout.split()
    assert frames[0].startswith("1,I")  # the first picture is a keyframe
    assert sum(1 for f in frames if f.startswith("1,")) >= 3  # a keyframe a second


async def test_ffmpeg_reads_hevc_and_opus_over_ll_hls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg 9 publishes HEVC + Opus over Enhanced RTMP; the fMP4 segments
    carry hvc1 + Opus, and FFmpeg decodes every frame of both."""
    monkeypatch.setattr(webhls, "REPUBLISH_GRACE", 0.5)
    ffmpeg = ffmpeg_exe()
    async with Server(port=0, http_port=0) as server:
        publisher = start([
            ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6",
            "-c:v", "libx265", "-preset", "ultrafast",
            "-x265-params", "keyint=25:min-keyint=25:log-level=error", "-pix_fmt", "yuv420p",
            "-c:a", "libopus", "-b:a", "48k", "-f", "flv",
            f"rtmp://127.0.0.1:{server.port}/live/hevc"])
        try:
            await wait_for(lambda: (c := server.hub.get(("live", "hevc"))) is not None
                           and c.live and c.gop_bytes > 0, timeout=20)
            out = tmp_path / "got.mkv"
            reader = start([ffmpeg, "-hide_banner", "-v", "error", "-i",
                            f"http://127.0.0.1:{server.http_port}/live/hevc.m3u8",
                            "-c", "copy", "-y", str(out)])
            code, err = await asyncio.to_thread(stop, reader, 40)
            packager = _packager(server, ("live", "hevc"))
            assert packager is not None
            assert packager.codecs.startswith("hvc1.") and packager.codecs.endswith(",opus")
        finally:
            await asyncio.to_thread(stop, publisher, 30)
    assert code == 0 and err.strip() == "", err
    probe = await asyncio.to_thread(
        subprocess.run, [debian_tool("ffprobe"), "-v", "error", "-show_entries",
                         "stream=codec_name", "-of", "csv=p=0", str(out)],
        capture_output=True, text=True, timeout=30, check=True)
    assert sorted(probe.stdout.split()) == ["hevc", "opus"]
    decoded = await asyncio.to_thread(
        subprocess.run, [ffmpeg, "-v", "error", "-i", str(out), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=True)
    assert decoded.stderr == ""


async def test_a_blocking_reload_returns_only_once_its_part_exists() -> None:
    async with Server(port=0, http_port=0) as server, aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/b", 400, keyint=25, interval=0.04))
        await wait_for(lambda: (c := server.hub.get(("live", "b"))) is not None and c.live)
        base = f"http://127.0.0.1:{server.http_port}/live/b"
        async with http.get(base + ".m3u8") as first:
            assert first.status == 200
            assert first.headers["Content-Type"] == "application/vnd.apple.mpegurl"
            text = await first.text()
        assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES" in text
        hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="b/(\d+)\.(\d+)\.m4s"', text)
        assert hint is not None
        msn, part = int(hint.group(1)), int(hint.group(2)) + 1  # one beyond the hint
        packager = _packager(server, ("live", "b"))
        assert packager is not None and packager.part(msn, part) is None
        hinted = asyncio.create_task(http.get(f"{base}/{msn}.{part - 1}.m4s"))
        async with http.get(f"{base}.m3u8?_HLS_msn={msn}&_HLS_part={part}") as blocked:
            assert blocked.status == 200
            reloaded = await blocked.text()
            # answered once the part is in the playlist (or its segment is complete)
            assert f'URI="b/{msn}.{part}.m4s"' in reloaded or f"\nb/{msn}.m4s\n" in reloaded
        response = await hinted
        assert response.status == 200
        body = await response.read()
        assert _boxes(body)[:2] == [b"moof", b"mdat"]
        assert body == packager.part(msn, part - 1)
        for query in ("_HLS_msn=99", "_HLS_msn=x", "_HLS_part=1", f"_HLS_msn={msn}&_HLS_part=99"):
            async with http.get(f"{base}.m3u8?{query}") as bad:
                assert bad.status == 400, query
        async with http.get(f"{base}/init.mp4") as init:
            assert init.status == 200
            assert _boxes(await init.read()) == [b"ftyp", b"moov"]
        async with http.get(f"{base}/0.m4s") as segment:
            assert segment.status == 200
            assert await segment.read() == packager.segment(0)
        for missing in ("/live/none.m3u8", "/live/none/init.mp4", "/live/b/nope.txt",
                        "/live/b/999.9.m4s"):
            async with http.get(f"http://127.0.0.1:{server.http_port}{missing}") as gone:
                assert gone.status == 404, missing
        # in the budget: the server's memory check counts what the packager holds
        channel = server.hub.get(("live", "b"))
        assert channel is not None and sum(o.queued_bytes for o in channel.others) > 0
        (output,) = server.stats()["streams"][0]["outputs"]
        assert output["kind"] == "ll-hls" and output["segments"] >= 1
        assert output["bytes"] > 0 and output["codecs"] == packager.codecs
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_a_websocket_client_gets_live_fmp4_from_a_keyframe(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhls, "REPUBLISH_GRACE", 0.2)
    async with Server(port=0, http_port=0) as server, aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/p", 150, keyint=25, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "p"))) is not None and c.live)
        messages: list[str | bytes] = []
        async with http.ws_connect(f"http://127.0.0.1:{server.http_port}/live/p.mp4") as ws:
            async for msg in ws:
                messages.append(msg.data)
        await publisher
        packager = _packager(server, ("live", "p"))
        assert packager is not None and packager.ended
    head = json.loads(messages[0])
    assert head["codecs"] == packager.codecs and head["codecs"].startswith("avc1.")
    assert head["mime"] == f'video/mp4; codecs="{packager.codecs}"'
    assert _boxes(messages[1]) == [b"ftyp", b"moov"]  # type: ignore[arg-type]
    fragments = messages[2:]
    assert fragments and all(_boxes(f)[:1] == [b"moof"] for f in fragments)  # type: ignore
    kept = {p.data: p for p in packager.parts()}
    first = kept.get(fragments[0])  # type: ignore[call-overload]
    assert first is not None and first.independent  # it starts at a keyframe
    order = [(kept[f].msn, kept[f].part) for f in fragments if f in kept]  # type: ignore
    assert order == sorted(order) and len(set(order)) == len(order)


async def test_an_idle_packager_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhls, "IDLE_SECONDS", 0.6)
    hls = HLSConfig(segment_target=1.0, part_target=0.25)
    async with Server(port=0, http_port=0, hls=hls) as server, \
            aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/i", 400, keyint=25, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "i"))) is not None and c.live)
        async with http.get(f"http://127.0.0.1:{server.http_port}/live/i.m3u8") as response:
            assert response.status == 200
            text = await response.text()
        assert "#EXT-X-PART-INF:PART-TARGET=0.25\n" in text  # Server(hls=...)
        assert "#EXT-X-TARGETDURATION:2\n" in text
        channel = server.hub.get(("live", "i"))
        assert channel is not None and len(channel.players) == 1
        await wait_for(lambda: not channel.players, timeout=5)
        assert server.http is not None and server.http.hls is not None
        assert not server.http.hls.outputs
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_a_publisher_that_comes_back_goes_on_in_the_same_playlist(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An encoder that reconnects within REPUBLISH_GRACE: the playlist goes
    on (no ENDLIST, media sequence numbers keep growing); one that does not
    come back ends it."""
    monkeypatch.setattr(webhls, "REPUBLISH_GRACE", 1.5)
    async with Server(port=0, http_port=0) as server, aiohttp.ClientSession() as http:
        url = f"rtmp://127.0.0.1:{server.port}/live/r"
        playlist = f"http://127.0.0.1:{server.http_port}/live/r.m3u8"
        first = asyncio.create_task(publish_frames(url, 100, keyint=25, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "r"))) is not None and c.live)
        async with http.get(playlist) as response:
            assert response.status == 200
        await first
        packager = _packager(server, ("live", "r"))
        assert packager is not None
        segments = packager.segment_count
        await asyncio.sleep(0.3)
        assert not packager.ended  # within the grace
        await publish_frames(url, 100, keyint=25, interval=0.02)  # back: timestamps from 0
        assert _packager(server, ("live", "r")) is packager and not packager.ended
        async with http.get(playlist) as response:
            text = await response.text()
        assert "#EXT-X-ENDLIST" not in text and "#EXT-X-MEDIA-SEQUENCE:0" in text
        assert packager.segment_count > segments
        durations = [float(line[8:-1]) for line in text.splitlines()
                     if line.startswith("#EXTINF:")]
        assert durations and max(durations) <= 4  # no jump: the timeline follows on
        await wait_for(lambda: packager.ended, timeout=5)  # gone for good: it ends
        async with http.get(playlist) as response:
            assert (await response.text()).rstrip().endswith("#EXT-X-ENDLIST")


async def test_an_edge_answers_404_for_streams_its_origin_lacks_and_keeps_nothing() -> None:
    """Regression: on an edge (pull=), a .mp4 request for a stream the
    origin lacks streamed headers and waited forever (a connection slot and
    a pull held after the client left); .m3u8 requests for made-up names
    each left a packager and a pull for 30 s."""
    async with Server(port=0) as origin, \
            Server(port=0, http_port=0, pull=f"rtmp://127.0.0.1:{origin.port}/live") as edge, \
            aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{edge.http_port}/live"
        answers = await asyncio.gather(*(http.get(f"{base}/none{i}.m3u8") for i in range(3)),
                                       http.get(f"{base}/none.mp4"))
        assert [a.status for a in answers] == [404, 404, 404, 404]
        for answer in answers:
            answer.release()
        assert edge.http is not None and edge.http.hls is not None
        assert not edge.http.hls.outputs and not edge.context.viewers
        await wait_for(lambda: edge.relays is not None and not edge.relays.pullers)


async def test_media_are_asked_for_with_the_playlist_s_query_and_on_play_decides() -> None:
    """Regression: init, segments and parts were served to anyone once a
    viewer allowed by on_play had started the stream's packager."""
    asked: list[str] = []

    def on_play(request: Any) -> bool:
        asked.append(request.query)
        return request.params.get("token") == "good"

    async with Server(port=0, http_port=0, on_play=on_play) as server, \
            aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/k", 300, keyint=25, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "k"))) is not None and c.live)
        base = f"http://127.0.0.1:{server.http_port}/live/k"
        async with http.get(f"{base}.m3u8?token=good") as response:
            assert response.status == 200
            text = await response.text()
        assert 'URI="k/init.mp4?token=good"' in text and "\nk/0.m4s?token=good\n" in text
        for path in ("/init.mp4", "/0.m4s", "/0.0.m4s"):
            async with http.get(base + path) as response:
                assert response.status == 403, path
            async with http.get(base + path + "?token=bad") as response:
                assert response.status == 403, path
            async with http.get(base + path + "?token=good") as response:
                assert response.status == 200, path
        async with http.get(f"{base}.m3u8?token=good&_HLS_msn=0") as response:
            assert response.status == 200  # a blocking reload: the hook is not asked again
        assert asked.count("token=good") == 1
        reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
        writer.write(b'GET /live/k.m3u8?token=good&a="b HTTP/1.1\r\nHost: x\r\n'
                     b"Connection: close\r\n\r\n")
        head = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert head.split()[1] == b"400"  # nothing unsafe goes into a playlist
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_requests_waiting_for_on_play_count_against_the_limits() -> None:
    """Regression: with an async on_play, every concurrent HLS request
    passed the connection limit before any was counted."""
    async def on_play(request: Any) -> bool:
        await asyncio.sleep(0.3)
        return True

    async with Server(port=0, http_port=0, on_play=on_play, max_connections=4) as server, \
            aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/w", 300, keyint=25, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "w"))) is not None and c.live)
        url = f"http://127.0.0.1:{server.http_port}/live/w.m3u8"
        answers = await asyncio.gather(*(http.get(url) for _ in range(12)))
        statuses = sorted(a.status for a in answers)
        for answer in answers:
            answer.release()
        # the publisher is one connection: three requests at a time at most
        assert statuses.count(503) >= 9 and statuses.count(200) >= 1
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


def _part(msn: int, part: int, independent: bool = False) -> PartInfo:
    return PartInfo(msn, part, 0, independent, b"")


async def test_a_live_fmp4_viewer_never_gets_a_part_twice() -> None:
    """Regression: one more than MAX_PARTS_BEHIND behind restarted at the
    newest keyframe even when that was before what it had (a long GOP)."""
    parts = [_part(0, i, i == 0) for i in range(20)]
    assert webhls._next_parts(parts, None) == parts  # from the keyframe
    assert webhls._next_parts(parts, (0, 2)) == parts[3:]  # far behind, no later keyframe
    parts[15] = _part(0, 15, True)
    assert webhls._next_parts(parts, (0, 2)) == parts[15:]  # skips to the later keyframe
    assert webhls._next_parts(parts, (0, 14)) == parts[15:]
    assert webhls._next_parts(parts[10:], (0, 3)) == parts[15:]  # its next part is gone
    assert webhls._next_parts(parts[16:], (0, 3)) == parts[16:]  # gone, no keyframe: go on
    assert webhls._next_parts(parts, (0, 19)) == []
    assert webhls._next_parts([_part(0, i) for i in range(3)], None) == []  # wait for one


async def test_server_close_is_bounded_with_viewers_that_do_not_read() -> None:
    """Regression: Server.close() took about 13 s with one HTTP-FLV viewer
    that did not read, whatever its timeout."""
    limits = HubLimits(max_queue=4 * 1024 * 1024)
    server = Server(port=0, http_port=0, limits=limits)
    await server.start()
    publisher = asyncio.create_task(publish_frames(
        f"rtmp://127.0.0.1:{server.port}/live/c", 3000, keyint=25, interval=0.002,
        size=20_000))
    await wait_for(lambda: (c := server.hub.get(("live", "c"))) is not None and c.live)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.http_port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /live/c.flv HTTP/1.1\r\nHost: x\r\n\r\n")
    waiting = asyncio.create_task(asyncio.open_connection("127.0.0.1", server.http_port))
    await wait_for(lambda: any(getattr(v, "_busy", None) is not None
                               for v in server.context.viewers))  # its writes wait
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(server.close(timeout=1.0), 30)
    assert loop.time() - began < 4.0
    assert not server.context.viewers
    writer.close()
    (await waiting)[1].close()
    publisher.cancel()
    await asyncio.gather(publisher, return_exceptions=True)


async def test_on_play_is_asked_again_per_address_and_after_a_while(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a yes of on_play was remembered by query string alone
    (another address was served without asking) and renewed by every
    request (a revoked token played on as long as its player polled)."""
    monkeypatch.setattr(webhls, "ALLOWED_SECONDS", 3.0)
    banned = {"127.0.0.2"}
    revoked: set[str] = set()
    asked: list[str] = []

    def on_play(request: Any) -> bool:
        asked.append(request.peer.rpartition(":")[0])
        return request.peer.rpartition(":")[0] not in banned and \
            request.params.get("token") not in revoked

    async with Server(port=0, http_port=0, on_play=on_play) as server, \
            aiohttp.ClientSession() as first, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                local_addr=("127.0.0.2", 0))) as second:
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{server.port}/live/a", 400, keyint=25, interval=0.02))
        await wait_for(lambda: (c := server.hub.get(("live", "a"))) is not None and c.live)
        url = f"http://127.0.0.1:{server.http_port}/live/a.m3u8?token=t"
        async with first.get(url) as response:
            assert response.status == 200
        async with second.get(url) as response:
            assert response.status == 403  # same query, another address: asked, refused
        async with second.get(f"http://127.0.0.1:{server.http_port}/live/a/0.0.m4s?token=t") \
                as response:
            assert response.status == 403
        assert asked == ["127.0.0.1", "127.0.0.2", "127.0.0.2"]
        revoked.add("t")
        statuses = []
        loop = asyncio.get_running_loop()
        until = loop.time() + 4.5
        while loop.time() < until:  # a player that keeps polling
            async with first.get(url) as response:
                statuses.append(response.status)
            await asyncio.sleep(0.1)
        assert statuses[0] == 200 and statuses[-1] == 403  # asked again, and refused
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_requests_waiting_for_a_pulled_stream_share_its_packager() -> None:
    """Regression: the first request to give up on a stream expected from
    the origin dropped the packager a later request still waited on (which
    then answered 404 though the stream had come)."""
    async with Server(port=0) as origin, \
            Server(port=0, http_port=0, pull=f"rtmp://127.0.0.1:{origin.port}/live") as edge, \
            aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{edge.http_port}/live/late.m3u8"
        first = asyncio.ensure_future(http.get(url))
        await asyncio.sleep(2.5)
        second = asyncio.ensure_future(http.get(url))
        await asyncio.sleep(3.0)  # the first has given up
        publisher = asyncio.create_task(publish_frames(
            f"rtmp://127.0.0.1:{origin.port}/live/late", 200, keyint=25, interval=0.02))
        answers = [await first, await second]
        assert [a.status for a in answers] == [404, 200]
        for answer in answers:
            answer.release()
        await publisher


async def test_hls_durations_are_finite_and_bounded() -> None:
    for bad in ({"segment_target": math.inf, "part_target": math.inf},
                {"segment_target": math.nan}, {"segment_target": 600.0},
                {"max_segment_duration": math.inf}):
        with pytest.raises(ValueError, match="finite"):
            HLSConfig(**bad)  # type: ignore[arg-type]
