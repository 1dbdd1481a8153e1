"""Ingest into Python: ``python3 -m rtmpx.benchmark.sink rtmpx|pyav PORT[,PORT...] STREAMS``.

A process of its own that takes ``STREAMS`` publishes and hands every
frame to Python code, until each publisher ends:

* ``rtmpx``: an :class:`rtmpx.Server` on the one ``PORT``, every stream of
  :meth:`~rtmpx.Server.publishes` iterated (uvloop when importable);
* ``pyav``: PyAV's ``av.open("rtmp://127.0.0.1:PORT/live/x",
  options={"listen": "1"})``, one listening port and one thread per
  publisher (FFmpeg's RTMP listener takes one client), demuxing packets.

It prints ``{"ready": true}`` once listening, then ``{"result": ...}``:
per stream, the coded frames (sequence headers excluded), the payload
bytes and the times of the first and last frame, plus its own CPU.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time
from typing import Any

from .load import run_loop

__all__ = ["main"]


def _emit(values: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(values) + "\n")
    sys.stdout.flush()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stream_result() -> dict[str, Any]:
    return {"frames": 0, "bytes": 0, "first": None, "last": None, "error": None}


async def _rtmpx(port: int, streams: int) -> list[dict[str, Any]]:
    from .. import Frame, Server

    results: list[dict[str, Any]] = []

    async def consume(stream: Any) -> None:
        r = _stream_result()
        results.append(r)
        frames = size = 0
        async for item in stream:
            if not isinstance(item, Frame):
                continue
            size += len(item.payload)
            if r["first"] is None:
                r["first"] = time.monotonic()
            if not (item.is_sequence_header or item.is_end_of_sequence):
                frames += 1
        r["last"] = time.monotonic()
        r["frames"], r["bytes"] = frames, size

    async with Server("127.0.0.1", port, idle_timeout=120.0) as server:
        _emit({"ready": True})
        tasks: list[asyncio.Task[None]] = []
        async for stream in server.publishes():
            tasks.append(asyncio.create_task(consume(stream)))
            if len(tasks) == streams:
                break
        await asyncio.gather(*tasks)
    return results


def _pyav(ports: list[int]) -> list[dict[str, Any]]:
    import av  # type: ignore[import-not-found, unused-ignore]

    results = [_stream_result() for _ in ports]

    def consume(port: int, r: dict[str, Any]) -> None:
        frames = size = 0
        try:
            with av.open(f"rtmp://127.0.0.1:{port}/live/x", options={"listen": "1"}) as box:
                for packet in box.demux():
                    if packet.size == 0:
                        continue  # the flush packet at the end
                    size += packet.size
                    if r["first"] is None:
                        r["first"] = time.monotonic()
                    frames += 1
        except Exception as exc:  # noqa: BLE001 - reported
            # FFmpeg's listener ends a publish that closes with an I/O error
            # (EPIPE, EIO): only one before any frame is a failure
            r["end"] = f"{type(exc).__name__}: {exc}"
            if not frames:
                r["error"] = r["end"]
        r["last"] = time.monotonic()
        r["frames"], r["bytes"] = frames, size

    threads = [threading.Thread(target=consume, args=(port, r), daemon=True)
               for port, r in zip(ports, results, strict=True)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # each thread is in av.open's listen by then
    _emit({"ready": True})
    for thread in threads:
        thread.join()
    return results


def main(argv: list[str] | None = None) -> int:
    """``rtmpx|pyav PORTS STREAMS``; see the module docstring."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in ("rtmpx", "pyav"):
        print("usage: python3 -m rtmpx.benchmark.sink rtmpx|pyav PORT[,PORT...] STREAMS",
              file=sys.stderr)
        return 2
    ports = [int(p) for p in args[1].split(",")]
    streams = int(args[2])
    cpu0 = _cpu()
    if args[0] == "rtmpx":
        found: list[dict[str, Any]] = []

        async def take() -> int:
            found.extend(await _rtmpx(ports[0], streams))
            return 0

        run_loop(take())
        results = found
    else:
        try:
            import av  # noqa: F401  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            _emit({"error": "PyAV not installed (pip install av)"})
            return 1
        results = _pyav(ports)
    _emit({"result": {"streams": results, "cpu": _cpu() - cpu0}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
