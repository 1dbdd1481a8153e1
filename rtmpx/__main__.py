"""The ``rtmpx`` command line (also ``python -m rtmpx``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import RtmpError
from .pacing import FLUSH_INTERVAL

if TYPE_CHECKING:
    from .hls import HLSConfig
    from .server.connection import ConnectionContext
    from .server.http import HttpServer
    from .server.hub import StreamKey
    from .server.stats import HasStats


def _amf_encode(args: argparse.Namespace) -> int:
    from . import amf

    values = [json.loads(text) for text in args.json]
    data = amf.dumps_all(values, version=args.amf_version)
    print(data.hex(" "))
    return 0


def _amf_decode(args: argparse.Namespace) -> int:
    from . import amf

    data = bytes.fromhex("".join(args.hex))
    for value in amf.loads_all(data, version=args.amf_version):
        print(repr(value))
    return 0


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """Run the command's coroutine, on uvloop when it is installed."""
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return asyncio.run(coro)
    return int(uvloop.run(coro))


async def _until_signal(signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
            pass
    await stop.wait()


def _access(apps: list[str], values: list[str], files: list[str],
            env: str) -> Callable[..., Any] | None:
    """The hook of one action's auth options: its applications and the tokens
    of the options, the files and ``$env`` (None: nothing asked, open)."""
    from .server.auth import AllowApps, TokenAuth, all_of, load_tokens

    tokens = list(values)
    for path in files:
        tokens += load_tokens(path)
    if env in os.environ:  # set but empty must not open the server to everyone
        found = [token.strip() for token in os.environ[env].split(",") if token.strip()]
        if not found:
            raise ValueError(f"${env} is set but holds no token")
        tokens += found
    checks: list[Callable[..., Any]] = [AllowApps(apps)] if apps else []
    if values or files or env in os.environ:
        checks.append(TokenAuth(tokens))
    return all_of(*checks) if checks else None


def _limit_defaults() -> dict[str, Any]:
    """The default of every limit in :data:`rtmpx.server.limits.LIMITS`."""
    import dataclasses
    import inspect

    from .server import HubLimits, Server
    from .session import SessionConfig

    found: dict[str, Any] = {
        name: p.default for name, p in inspect.signature(Server).parameters.items()}
    for cls in (HubLimits, SessionConfig):
        found.update((f.name, f.default) for f in dataclasses.fields(cls))
    return found


def _limit_options(parser: argparse.ArgumentParser) -> None:
    from .server.limits import LIMITS

    group = parser.add_argument_group(
        "limits", "security settings; the README's Security section lists them")
    defaults = _limit_defaults()
    for limit in LIMITS:
        default = defaults[limit.keyword]
        group.add_argument(limit.option, dest=limit.keyword, type=limit.type, metavar="N",
                           help=f"{limit.help} ({'off' if default is None else default})")


def _limit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Server`` keywords of the limit options given."""
    import dataclasses

    from .server import HubLimits
    from .server.limits import LIMITS
    from .session import SessionConfig

    given = {limit: getattr(args, limit.keyword) for limit in LIMITS}
    chosen = {limit.keyword: value for limit, value in given.items() if value is not None}
    kwargs = {k: v for k, v in chosen.items()
              if any(lim.keyword == k and lim.where == "server" for lim in LIMITS)}
    hub = {f.name: chosen[f.name] for f in dataclasses.fields(HubLimits) if f.name in chosen}
    session = {f.name: chosen[f.name] for f in dataclasses.fields(SessionConfig)
               if f.name in chosen}
    if hub:
        kwargs["limits"] = HubLimits(**hub)
    if session:
        kwargs["session_config"] = SessionConfig(**session)
    return kwargs


def _make_server(args: argparse.Namespace, **extra: Any) -> Any:
    """The :class:`~rtmpx.Server` of the ``serve`` options (``extra``:
    more keywords; ``claim``: a last ``on_publish`` hook)."""
    from .server import Server
    from .server.auth import all_of

    on_publish = _access(args.publish_app, args.publish_token, args.publish_token_file,
                         "RTMPX_PUBLISH_TOKEN")
    on_play = _access(args.play_app, args.play_token, args.play_token_file, "RTMPX_PLAY_TOKEN")
    claim = extra.pop("claim", None)
    if claim is not None:
        on_publish = all_of(on_publish, claim)

    tls = None
    if args.tls_cert:
        import ssl

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    return Server(args.host, args.port, ssl=tls, record_dir=args.record,
                  push=args.push, pull=args.pull,
                  duplicate_publish="replace" if args.replace else "reject",
                  flush_interval=args.flush_interval / 1000,
                  on_publish=on_publish, on_play=on_play, **_limit_settings(args), **extra)


def _hls(args: argparse.Namespace) -> HLSConfig:
    """The LL-HLS settings of ``--hls-segment`` and ``--hls-part``."""
    from .hls import HLSConfig

    return HLSConfig(segment_target=args.hls_segment, part_target=args.hls_part)


def _banner(args: argparse.Namespace, port: int, http: list[HttpServer],
            web: Sequence[tuple[str, int]] = ()) -> None:
    """The line that says where the server serves (``web``: HTTP ports
    of web players served by the workers)."""
    scheme = "rtmps" if args.tls_cert else "rtmp"
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    workers = f" with {args.workers} workers" if args.workers > 1 else ""
    served = [(h.host, h.port, h.context is not None) for h in http]
    served += [(host, port, True) for host, port in web]
    urls = "".join(f", {'web players and ' if players else ''}stats on "
                   f"http://{_shown(host)}:{port}/stats" for host, port, players in served)
    print(f"rtmpx {__version__} serving {scheme}://{shown}:{port}/APP/STREAM{workers}{urls}",
          flush=True)


def _shown(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


async def _start_http(source: HasStats, args: argparse.Namespace,
                      context: ConnectionContext | None = None) -> list[HttpServer]:
    """The HTTP servers asked for: ``--http-port`` (on ``--host``) and
    ``--stats-port`` (on ``--stats-host``), started; with a server's
    connection ``context``, they serve its live streams too."""
    from .server import HttpServer

    wanted = [(args.host, args.http_port), (args.stats_host, args.stats_port)]
    started: list[HttpServer] = []
    try:
        for host, port in wanted:
            if port is not None:
                http = HttpServer(source, host, port, context=context, hls=_hls(args))
                await http.start()
                started.append(http)
    except BaseException:
        for http in started:
            await http.close()
        raise
    return started


def _serve(args: argparse.Namespace) -> int:
    if args.worker_control is not None:
        return _run(_serve_worker(args))
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    try:
        _hls(args)
    except ValueError as exc:
        raise ValueError(f"--hls-segment/--hls-part: {exc}") from None
    if args.workers > 1:
        return _run(_supervise(args))
    server = _make_server(args)  # hooks and TLS are checked before the loop starts

    async def main() -> int:
        await server.start()
        http: list[HttpServer] = []
        try:
            http = await _start_http(server, args, server.context)
            _banner(args, server.port, http)
            await _until_signal()
        finally:
            for each in http:
                await each.close()
            await server.close()
        return 0

    return _run(main())


async def _supervise(args: argparse.Namespace) -> int:
    """``serve --workers N``: the supervisor (see :mod:`rtmpx.server.workers`)."""
    from .server.workers import Supervisor

    _make_server(args)  # fail here, once, on a bad token file or certificate
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    command = [sys.executable, "-m", "rtmpx", "--log-level", args.log_level, "serve"]
    supervisor = Supervisor(args.workers, settings, host=args.host, port=args.port,
                            command=command)
    http: list[HttpServer] = []
    try:
        await supervisor.start()  # cleans up after itself on failure; close() again is harmless
        # the workers share --http-port (web players, and the cluster's stats);
        # the supervisor serves --stats-port
        http = await _start_http(supervisor, argparse.Namespace(**{**vars(args),
                                                                   "http_port": None}))
        web = supervisor.settings.get("http_port")
        _banner(args, supervisor.port, http,
                [(args.host, int(web))] if web is not None else [])
        await _until_signal()
    finally:
        for each in http:
            await each.close()
        await supervisor.close()
    return 0


async def _serve_worker(args: argparse.Namespace) -> int:
    """One worker of ``serve --workers N``: the supervisor's settings, the
    shared port; stops on SIGTERM or when the supervisor is gone."""
    from .server.workers import Worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us
    worker = await Worker.connect(args.worker_control, args.worker_index)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s worker {worker.index} %(name)s: %(message)s"))
    server = _make_server(argparse.Namespace(**worker.settings), reuse_port=True,
                          claim=worker.claim, admit=worker.admit,
                          record_gate=worker.record_gate)
    await worker.start(server)
    assert worker.lost is not None
    http: HttpServer | None = None
    web_port = worker.settings.get("http_port")
    stop = asyncio.ensure_future(_until_signal((signal.SIGTERM,)))
    try:
        if web_port is not None:  # shared by every worker, as the RTMP port is
            from .server import HttpServer

            edge = server.context.elsewhere  # --pull: anything may be at the origin

            def elsewhere(key: StreamKey) -> bool:
                return worker.elsewhere(key) or (edge is not None and edge(key))

            server.context.elsewhere = elsewhere
            http = HttpServer(worker.cluster, server.host, int(web_port), context=server.context,
                              reuse_port=True, hls=_hls(argparse.Namespace(**worker.settings)))
            await http.start()
        await asyncio.wait([stop, worker.lost], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        await worker.close()
        await server.close()
        if http is not None:
            await http.close()
        worker.detach()
    return 0


class _Progress:
    """One status line on stderr, rewritten at most twice a second."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.started = self.shown = asyncio.get_running_loop().time()
        self.tags = 0
        self.bytes = 0
        self.media_ms = 0

    def add(self, timestamp: int, size: int) -> None:
        self.tags += 1
        self.bytes += size
        self.media_ms = timestamp
        now = asyncio.get_running_loop().time()
        if now - self.shown >= 0.5:
            self.shown = now
            self.show(now)

    def show(self, now: float | None = None, end: str = "") -> None:
        now = asyncio.get_running_loop().time() if now is None else now
        elapsed = max(now - self.started, 1e-6)
        print(f"\r{self.verb} {self.media_ms / 1000:8.1f} s media  {self.tags:7d} tags  "
              f"{self.bytes / 1e6:8.2f} MB  {self.bytes * 8 / elapsed / 1e6:6.2f} Mbit/s",
              end=end, file=sys.stderr, flush=True)


def _publish(args: argparse.Namespace) -> int:
    from .client import connect
    from .flv import FLVReader

    async def main() -> int:
        loop = asyncio.get_running_loop()
        async with connect(args.url, follow_reconnect=not args.no_follow) as client, \
                await client.publish() as stream:
            progress = _Progress("published")
            offset = 0
            while True:
                first: int | None = None
                clock = loop.time()
                last = 0
                with FLVReader(args.file) as reader:
                    for tag in reader:
                        timestamp = (tag.timestamp + offset) & 0xFFFFFFFF
                        if first is None:
                            first = tag.timestamp
                        if not args.no_realtime:
                            due = clock + (tag.timestamp - first) / 1000
                            delay = due - loop.time()
                            if delay > 0:
                                await asyncio.sleep(delay)
                        if tag.is_script:
                            values = tag.script()
                            if len(values) >= 2 and values[0] == "onMetaData" \
                                    and isinstance(values[1], dict):
                                await stream.send_metadata(values[1], timestamp)
                            continue
                        if tag.is_video:
                            await stream.send_video(timestamp, tag.payload)
                        elif tag.is_audio:
                            await stream.send_audio(timestamp, tag.payload)
                        last = tag.timestamp
                        progress.add(timestamp, len(tag.payload))
                if not args.loop or first is None:
                    break
                offset += last - first + 40  # the next pass starts one frame later
            progress.show(end="\n")
        return 0

    return _run(main())


def _play(args: argparse.Namespace) -> int:
    from .client import connect
    from .events import Metadata
    from .flv import FLVWriter

    async def main() -> int:
        loop = asyncio.get_running_loop()
        deadline = None if args.duration is None else loop.time() + args.duration
        async with connect(args.url) as client:
            with FLVWriter(args.output) as writer:
                progress = _Progress("recorded")
                stream = client.play()
                try:
                    async with asyncio.timeout_at(deadline):
                        async for item in stream:
                            if isinstance(item, Metadata):
                                writer.write_tag(18, item.timestamp, item.payload)
                                continue
                            writer.write_frame(item)
                            progress.add(item.timestamp, len(item.payload))
                except TimeoutError:
                    pass  # --duration reached
                progress.show(end="\n")
        return 0

    return _run(main())


def _bench(args: argparse.Namespace) -> int:
    from .benchmark.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rtmpx`` command."""
    parser = argparse.ArgumentParser(
        prog="rtmpx", description="Fast, typed RTMP for Python.")
    parser.add_argument("--version", action="version", version=f"rtmpx {__version__}")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"], help="log level (info)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run an RTMP server (live relay, recording)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    serve.add_argument("--port", type=int, default=1935, help="port to listen on (1935)")
    serve.add_argument("--record", metavar="DIR", help="record every stream to DIR/app/name-TIME.flv")
    serve.add_argument("--http-port", type=int, metavar="N",
                       help="HTTP on the same host as RTMP, port N: the dashboard (/), "
                            "web players (/APP/STREAM.flv: HTTP-FLV and WebSocket-FLV, "
                            ".m3u8: LL-HLS, .mp4: live fMP4), JSON stats (/stats), "
                            "Prometheus text (/metrics)")
    serve.add_argument("--stats-port", type=int, metavar="N",
                       help="the same HTTP server on --stats-host, port N (its first "
                            "name; with --workers, the supervisor's: stats only)")
    serve.add_argument("--stats-host", default="127.0.0.1",
                       help="address of --stats-port (127.0.0.1)")
    serve.add_argument("--hls-segment", type=float, default=2.0, metavar="SECONDS",
                       help="LL-HLS segments last at least this long, to the next keyframe "
                            "(2)")
    serve.add_argument("--hls-part", type=float, default=0.5, metavar="SECONDS",
                       help="LL-HLS parts (and the preview's fragments) last at most this "
                            "long (0.5)")
    serve.add_argument("--push", action="append", default=[], metavar="URL",
                       help="republish every live stream to URL (rtmp://host/app), repeatable")
    serve.add_argument("--pull", metavar="URL",
                       help="fetch streams that have no local publisher from URL (rtmp://origin/app)")
    serve.add_argument("--replace", action="store_true",
                       help="a second publisher of a live key replaces the first (default: reject)")
    serve.add_argument("--flush-interval", type=float, default=FLUSH_INTERVAL * 1000,
                       metavar="MS",
                       help="merge players' media writes over MS milliseconds "
                            f"({FLUSH_INTERVAL * 1000:g}; 0: write every message at once)")
    serve.add_argument("--tls-cert", metavar="PEM", help="serve RTMPS with this certificate")
    serve.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    serve.add_argument("--publish-token", action="append", default=[], metavar="TOKEN",
                       help="publishers need ?token=TOKEN in the stream key (or the server "
                            "URL), repeatable; shows in ps: prefer --publish-token-file or "
                            "$RTMPX_PUBLISH_TOKEN (tokens separated by commas)")
    serve.add_argument("--publish-token-file", action="append", default=[], metavar="PATH",
                       help="publish tokens from PATH, one a line (# comments), repeatable")
    serve.add_argument("--publish-app", action="append", default=[], metavar="APP",
                       help="allow publishing only to application APP (exact name), "
                            "repeatable (default: any)")
    serve.add_argument("--play-token", action="append", default=[], metavar="TOKEN",
                       help="players need ?token=TOKEN (default: anyone may play), "
                            "repeatable; prefer --play-token-file or $RTMPX_PLAY_TOKEN")
    serve.add_argument("--play-token-file", action="append", default=[], metavar="PATH",
                       help="play tokens from PATH, one a line (# comments), repeatable")
    serve.add_argument("--play-app", action="append", default=[], metavar="APP",
                       help="allow playing only from application APP (exact name), "
                            "repeatable (default: any)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="run N worker processes on the port (Linux SO_REUSEPORT); "
                            "players see streams published to any worker (1)")
    serve.add_argument("--worker-control", help=argparse.SUPPRESS)   # a worker's supervisor
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    _limit_options(serve)
    serve.set_defaults(func=_serve)

    pub = commands.add_parser("publish", help="publish an FLV file to an RTMP server")
    pub.add_argument("file", help="the FLV file")
    pub.add_argument("url", help="rtmp://host[:port]/app/stream (rtmps:// for TLS)")
    pub.add_argument("--loop", action="store_true", help="start over at the end, forever")
    pub.add_argument("--no-follow", action="store_true",
                     help="do not offer to follow reconnect requests (Enhanced RTMP): by "
                          "default a server may ask the publish to move to another server")
    pub.add_argument("--no-realtime", action="store_true",
                     help="send as fast as possible instead of at the file's pace")
    pub.set_defaults(func=_publish)

    play = commands.add_parser("play", help="record a stream from an RTMP server to FLV")
    play.add_argument("url", help="rtmp://host[:port]/app/stream")
    play.add_argument("-o", "--output", required=True, help="the FLV file to write")
    play.add_argument("--duration", type=float, metavar="S",
                      help="stop after S seconds (default: until the stream ends)")
    play.set_defaults(func=_play)

    from .benchmark.cli import add_arguments as bench_arguments

    bench = commands.add_parser(
        "bench", help="rtmpx next to nginx-rtmp under the same load: a table of ratios")
    bench_arguments(bench)
    bench.set_defaults(func=_bench)

    amf_parser = commands.add_parser("amf", help="encode or decode AMF0/AMF3 values")
    amf_commands = amf_parser.add_subparsers(dest="amf_command", required=True, metavar="ACTION")
    enc = amf_commands.add_parser("encode", help="JSON values -> AMF bytes (hex)")
    enc.add_argument("json", nargs="+", help="one JSON value per argument")
    enc.set_defaults(func=_amf_encode)
    dec = amf_commands.add_parser("decode", help="AMF bytes (hex) -> Python values")
    dec.add_argument("hex", nargs="+", help="hex digits, spaces allowed")
    dec.set_defaults(func=_amf_decode)
    for sub in (enc, dec):
        sub.add_argument("--amf-version", type=int, choices=(0, 3), default=0,
                         help="AMF0 (default) or AMF3")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtmpx`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (RtmpError, ValueError, OSError) as exc:
        print(f"rtmpx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
