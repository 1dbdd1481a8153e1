"""``rtmpx bench``: the lean generator's wire format, the statistics, and
the whole command in its ``--quick`` form (as a subprocess: it starts and
stops servers, FFmpeg and the load generator)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rtmpx import ChunkReader
from rtmpx.benchmark.load import MAGIC, STAMP_AT, Generator, LoadSpec, percentile, prechunk
from rtmpx.benchmark.report import Report, Run
from rtmpx.benchmark.runner import (
    NGINX,
    NGINX_MODULE,
    Processes,
    find_nginx,
    sample_cache,
    start_rtmpx,
    wait_all,
)
from rtmpx.benchmark.scenarios import Step, saturation_point
from rtmpx.flv import FLVWriter

NGINX_THERE = NGINX.exists() and NGINX_MODULE.exists()


def _flv(path: Path) -> None:
    """A tiny FLV: metadata, AVC and AAC sequence headers, then media."""
    with FLVWriter(path) as writer:
        writer.write_metadata({"width": 16.0})
        writer.write_tag(9, 0, b"\x17\x00\x00\x00\x00" + b"\x01\x64\x00\x1f\xff")
        writer.write_tag(8, 0, b"\xaf\x00\x12\x10")
        for i in range(10):
            writer.write_tag(9, i * 40, (b"\x17" if i == 0 else b"\x27") + b"\x01\x00\x00\x00"
                             + bytes(range(256)) * 20)
            writer.write_tag(8, i * 40 + 5, b"\xaf\x01" + b"\x55" * 200)


def test_prechunked_tags_decode_with_patched_timestamp_and_stamp(tmp_path: Path) -> None:
    path = tmp_path / "s.flv"
    _flv(path)
    headers, media, length = prechunk(str(path), 1, 4096)
    assert len(headers) == 3 and len(media) == 20
    assert length > 9 * 40
    video = next(c for c in media if c.stampable)
    head = bytearray(video.head)
    head[1:4] = (123456).to_bytes(3, "big")
    struct.pack_into(">8sQ", head, 12 + STAMP_AT, MAGIC, 987654321)
    reader = ChunkReader()
    reader.feed(b"\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x00\x00\x10\x00")
    (message,) = reader.feed(bytes(head) + video.rest)
    assert (message.type_id, message.timestamp, message.stream_id) == (9, 123456, 1)
    assert message.payload[STAMP_AT:STAMP_AT + 8] == MAGIC
    assert int.from_bytes(message.payload[STAMP_AT + 8:STAMP_AT + 16], "big") == 987654321
    assert len(message.payload) == 5 + 256 * 20
    # one byte at a time decodes the same
    reader = ChunkReader()
    reader.feed(b"\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x00\x00\x10\x00")
    data = bytes(head) + video.rest
    found = [m for i in range(len(data)) for m in reader.feed(data[i:i + 1])]
    assert found == [message]


def test_spec_round_trip() -> None:
    spec = LoadSpec(port=1935, sample="x.flv", players=3, stamp=True)
    assert LoadSpec.from_json(spec.to_json()) == spec


def test_percentile() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(101)], 0.99) == 99.0


def test_saturation_point() -> None:
    players, note = saturation_point(
        [Step(100, 0.5, 0.2, 1.0), Step(200, 0.9, 0.3, 1.0), Step(300, 1.1, 0.4, 0.99)], 1000)
    assert players == pytest.approx(250.0) and "interpolated" in note
    players, note = saturation_point([Step(100, 0.2, 0.5, 1.0), Step(200, 0.4, 0.99, 1.0)],
                                      1000)
    assert players == pytest.approx(500.0) and "load generator" in note
    players, note = saturation_point(
        [Step(100, 0.2, 0.5, 1.0), Step(200, 0.4, 0.6, 1.0), Step(300, 0.45, 0.6, 0.5)], 1000)
    assert players == pytest.approx(500.0) and "50% of the stream" in note
    players, note = saturation_point([Step(100, 0.3, 0.1, 1.0), Step(200, 0.3, 0.1, 1.0)],
                                      200)
    assert math.isnan(players)


def test_report_medians_and_ratio() -> None:
    report = Report({})
    for server, values in (("rtmpx", (2.0, 4.0, 9.0)), ("nginx", (1.0, 2.0, 3.0))):
        for i, value in enumerate(values):
            report.runs.append(Run("fanout", "600k to 10", server, i + 1,
                                   {"cpu_per_gb": value}, load_cpu_pct=10.0))
    (row,) = report.rows()
    assert row["median"] == {"rtmpx": 4.0, "nginx": 2.0}
    assert row["ratio"] == 2.0
    assert "| fanout | 600k to 10 | server CPU per GB (s/GB) | rtmpx | 4.00 | nginx | 2.00 " \
        "| 2.00x | 10 / 10 |" in report.table()


def test_missing_nginx_is_named_with_its_install_command(tmp_path: Path) -> None:
    peer, _, _ = find_nginx(str(tmp_path / "no-nginx"), None)
    assert not peer.available
    assert "apt-get install nginx libnginx-mod-rtmp" in peer.detail


def test_sample_cache_is_private_to_the_user(tmp_path: Path) -> None:
    path = sample_cache(tmp_path)
    assert path.name == f"rtmpx-bench-{os.getuid()}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    path.chmod(0o777)  # opened up: closed again
    assert stat.S_IMODE(sample_cache(tmp_path).stat().st_mode) == 0o700
    other = tmp_path / "other"
    other.mkdir()
    path.rmdir()
    path.symlink_to(other)  # planted: refused
    with pytest.raises(RuntimeError, match="refusing"):
        sample_cache(tmp_path)


def test_rtmpx_under_test_gets_the_hard_descriptor_limit_and_extra_args(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    try:
        with Processes() as procs:
            server = start_rtmpx(procs, tmp_path, extra_args=["--flush-interval", "0"])
            limits = Path(f"/proc/{server.pid}/limits").read_text()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    (line,) = [row for row in limits.splitlines() if row.startswith("Max open files")]
    assert line.split()[3:5] == [str(hard), str(hard)] or hard == resource.RLIM_INFINITY
    assert server.command.endswith("--flush-interval 0")


def test_a_failed_ramp_step_keeps_the_measured_steps() -> None:
    marks: list[dict[str, Any]] = []
    gen = Generator(LoadSpec(port=1, ramp_step=2, ramp_max=10, warmup=0, seconds=0),
                    marks.append)
    opened = [0]

    async def open_(conn: object) -> int:
        opened[0] += 1
        if opened[0] > 5:
            raise OSError(24, "Too many open files")
        return 1

    gen.open = open_  # type: ignore[assignment, method-assign]
    asyncio.run(gen._ramp(0))
    assert [(m["mark"], m["players"]) for m in marks] == [
        ("step_start", 2), ("step_end", 2), ("step_start", 4), ("step_end", 4),
        ("ramp_failed", 5)]
    assert marks[-1]["failed"] == 1 and "Too many open files" in marks[-1]["reason"]


def test_wait_all_has_a_deadline() -> None:
    with Processes() as procs:
        quick = procs.start([sys.executable, "-c", "pass"])
        stuck = procs.start([sys.executable, "-c", "import time; time.sleep(60)"])
        assert wait_all([quick, stuck], 0.3) == [stuck]
    assert stuck.returncode is not None  # stopped with the others


def _bench(tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "rtmpx", "bench", "--quick", "--rounds", "1",
                           "--json", str(out), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def _medians(doc: dict[str, Any], scenario: str, metric: str) -> list[dict[str, float]]:
    return [row["median"] for row in doc["rows"]
            if row["scenario"] == scenario and row["metric"] == metric]


@pytest.mark.interop
def test_quick_bench_fanout_and_ingest(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg", reason="FFmpeg comes from imageio-ffmpeg")
    text, doc = _bench(tmp_path, "--scenarios", "ingest,fanout")
    assert set(doc) == {"info", "notes", "rows", "runs"}
    assert doc["info"]["settings"]["scenarios"] == ["ingest", "fanout"]
    assert doc["info"]["peers"]["rtmpx"]["available"]
    servers = ["rtmpx", "nginx"] if NGINX_THERE else ["rtmpx"]
    assert doc["info"]["peers"]["nginx"]["available"] is NGINX_THERE
    cases = {(r["scenario"], r["case"]) for r in doc["rows"]}
    assert {("ingest", "FFmpeg x1"), ("ingest", "lean x2"), ("fanout", "600k to 3"),
            ("fanout", "2.5M to 3")} <= cases
    for run in doc["runs"]:
        assert run["server"] in servers
        assert run["metrics"], run  # every run measured something
    for medians in _medians(doc, "ingest", "mb_per_s") + _medians(doc, "fanout", "mb_per_s"):
        assert sorted(medians) == sorted(servers)
        assert all(value > 0 for value in medians.values())
    for medians in _medians(doc, "ingest", "cpu_per_gb"):
        assert all(0 < value < 1000 for value in medians.values())
    for medians in _medians(doc, "fanout", "delivered_pct"):
        assert all(value > 20 for value in medians.values())  # players got the stream
    load = [run["load_cpu_pct"] for run in doc["runs"]]
    assert all(value is not None and value >= 0 for value in load)
    assert "| ingest | lean x2 | server CPU per GB (s/GB) | rtmpx |" in text
    if NGINX_THERE:
        assert all(row["ratio"] is not None for row in doc["rows"]
                   if row["metric"] == "mb_per_s")
        assert "| nginx |" in text


@pytest.mark.interop
def test_quick_bench_reports_a_missing_peer(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg", reason="FFmpeg comes from imageio-ffmpeg")
    text, doc = _bench(tmp_path, "--scenarios", "delay", "--nginx", str(tmp_path / "nope"))
    assert "nginx-rtmp not installed" in text
    assert "apt-get install nginx libnginx-mod-rtmp" in text
    assert doc["info"]["peers"]["nginx"]["available"] is False
    assert any("apt-get install nginx libnginx-mod-rtmp" in note for note in doc["notes"])
    assert {run["server"] for run in doc["runs"]} == {"rtmpx"}
    (p50,) = _medians(doc, "delay", "delay_p50_ms")
    (p99,) = _medians(doc, "delay", "delay_p99_ms")
    assert 0 < p50["rtmpx"] <= p99["rtmpx"]
