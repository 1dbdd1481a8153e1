"""Fuzz harnesses: one function per parser, ``harness(data: bytes) -> None``.

Each harness feeds ``data`` to a parser the way the wire would and asserts
the property of issue 8: the parser returns, or raises the
:class:`~rtmpx.errors.ProtocolError` family, and nothing else.  Any other
exception escaping a harness is a finding, and so is :class:`Disagreement`:
a compiled core and its pure-Python twin that do not give the same result
for the same bytes.  The time and memory bounds are the runner's:
``fuzz/run.py`` (libFuzzer ``-timeout``/``-rss_limit_mb``) and
``tests/test_corpus.py`` (a per-file wall-time bound).

:data:`HARNESSES` maps a name (also the folder of its seeds,
``tests/corpus/<name>/``) to its function.  Stream parsers get the input
in a few pieces, at split points derived from the input itself, so a
replay is deterministic and the fuzzer explores the splits too.
:data:`TWINS` names the harnesses whose ``*_with(data, modules)`` variant
runs one twin alone (the corpus test replays those against each twin).

Import this module after ``atheris.instrument_imports()`` to get coverage
of the pure-Python modules; the compiled ones are not instrumented (no
clang here to build them with SanitizerCoverage), but each compiled
harness runs its pure twin on the same input, whose coverage guides the
fuzzer through the same logic.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import ModuleType
from typing import Any

from rtmpx import _amf, _amf_py, _chunk, _chunk_py, _handshake, _handshake_py, media
from rtmpx._amf_types import (
    Dictionary,
    MixedArray,
    TypedObject,
    Undefined,
    Unsupported,
    Vector,
)
from rtmpx.errors import ProtocolError
from rtmpx.events import (
    Connected,
    ConnectRequest,
    PlayRequest,
    PublishRequest,
)
from rtmpx.flv import FLVReader
from rtmpx.session import ClientSession, ServerSession

__all__ = ["HARNESSES", "TWINS", "Disagreement", "splits"]

#: What a parser may raise on hostile input.
ALLOWED = ProtocolError


class Disagreement(AssertionError):
    """The compiled core and its pure-Python twin differ on one input."""


# -- helpers ----------------------------------------------------------------------------


def splits(data: bytes, parts: int = 3) -> list[bytes]:
    """``data`` cut into up to ``parts`` pieces at points derived from it."""
    n = len(data)
    if n < 2 or parts < 2:
        return [data]
    h = (n * 2654435761 + data[0] * 40503 + data[-1] * 977 + data[n // 2]) & 0xFFFFFFFF
    cuts = set()
    for _ in range(parts - 1):
        h = (h * 1103515245 + 12345) & 0xFFFFFFFF
        cuts.add(1 + (h >> 8) % (n - 1))
    bounds = [0, *sorted(cuts), n]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _flag(data: bytes, bit: int) -> bool:
    """A bit of the input that is not also its first or last byte's meaning
    alone: the harness's choice of variant, reproducible from the file."""
    return bool((len(data) * 31 + sum(data[:8])) >> bit & 1)


def _random(n: int) -> bytes:
    """The handshakes' "random" bytes: fixed, so both twins and every
    replay produce the same output."""
    return bytes((i * 73 + 41) & 0xFF for i in range(n))


def same(a: Any, b: Any, memo: set[tuple[int, int]] | None = None) -> bool:
    """Structural equality of two decoded AMF values: same types, same
    members in the same order, NaN equal to NaN, -0.0 not 0.0, safe on
    cycles and shared references (each pair of containers compared once)."""
    if memo is None:
        memo = set()
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if math.isnan(x) or math.isnan(y):
                if not (math.isnan(x) and math.isnan(y)):
                    return False
            elif x != y or math.copysign(1, x) != math.copysign(1, y):
                return False
            continue
        if isinstance(x, (str, bytes, int, bool, type(None), Undefined, Unsupported)):
            if x != y:
                return False
            continue
        if isinstance(x, datetime):
            if x != y or x.tzinfo != y.tzinfo:
                return False
            continue
        key = (id(x), id(y))
        if key in memo:
            continue
        memo.add(key)
        if isinstance(x, MixedArray):
            stack.append((x.dense, y.dense))
            stack.append((x.assoc, y.assoc))
            continue
        if isinstance(x, TypedObject) and x.class_name != y.class_name:
            return False
        if isinstance(x, Vector) and (x.kind, x.fixed, x.type_name) != (
                y.kind, y.fixed, y.type_name):
            return False
        if isinstance(x, Dictionary) and x.weak_keys != y.weak_keys:
            return False
        if isinstance(x, dict):
            if len(x) != len(y):
                return False
            for (kx, vx), (ky, vy) in zip(x.items(), y.items(), strict=True):
                stack.append((kx, ky))
                stack.append((vx, vy))
            continue
        if isinstance(x, (list, tuple)):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
            continue
        if x != y:  # any other type the decoders make (registered classes)
            return False
    return True


def _outcome(call: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, the ProtocolError)``; anything else escapes."""
    try:
        return True, call()
    except ALLOWED as exc:
        return False, exc


# -- chunk stream -----------------------------------------------------------------------

_SMALL_LIMITS = {"max_message_size": 4096, "max_chunk_streams": 4, "max_buffered": 8192}


def _chunk_run(module: ModuleType, data: bytes) -> tuple[list[tuple[Any, ...]], bool, int, int]:
    """Messages read, whether it raised, and the reader's counters at the end."""
    bound = 1 + (sum(data[-4:]) % 4) if _flag(data, 5) else 0  # bounded feeds, drained
    reader = module.ChunkReader(**(_SMALL_LIMITS if _flag(data, 3) else {}),
                                max_messages=bound)
    out: list[tuple[Any, ...]] = []
    ok = True
    for piece in splits(data, 4):
        try:
            messages = reader.feed(piece)
            while reader.pending:
                messages += reader.feed(b"")
        except ALLOWED:
            ok = False
            break
        out.extend((m.type_id, bytes(m.payload), m.timestamp, m.stream_id, m.csid)
                   for m in messages)
    return out, ok, int(reader.chunk_size), int(reader.bytes_received)


def chunk_with(data: bytes, modules: Iterable[ModuleType]) -> None:
    results = [(m.__name__, _chunk_run(m, data)) for m in modules]
    first_name, first = results[0]
    for name, other in results[1:]:
        if first[1] == other[1] and first[0] == other[0] and (
                not first[1] or first[2:] == other[2:]):
            continue
        raise Disagreement(f"chunk reader: {first_name} gave {_brief(first)}, "
                           f"{name} gave {_brief(other)}")


def _brief(result: tuple[list[tuple[Any, ...]], bool, int, int]) -> str:
    messages, ok, size, received = result
    heads = [(t, len(p), ts, sid, csid) for t, p, ts, sid, csid in messages]
    return f"{'ok' if ok else 'ProtocolError'} chunk_size={size} received={received} {heads}"


def chunk(data: bytes) -> None:
    """ChunkReader (compiled and pure, same pieces): messages, or ProtocolError; twins agree."""
    chunk_with(data, (_chunk, _chunk_py))


# -- AMF ----------------------------------------------------------------------------------


def _amf_with(data: bytes, version: int, modules: Iterable[ModuleType]) -> None:
    results = [(m.__name__, _outcome(lambda m=m: m.loads_all(data, version=version)))
               for m in modules]
    first_name, (first_ok, first) = results[0]
    for name, (ok, value) in results[1:]:
        if ok != first_ok:
            raise Disagreement(
                f"AMF{version}: {first_name} {'returned' if first_ok else 'raised'} "
                f"{_short(first)}, {name} {'returned' if ok else 'raised'} {_short(value)}")
        if ok and not same(first, value):
            raise Disagreement(f"AMF{version}: {first_name} and {name} decode differently")


def _short(value: Any) -> str:
    if isinstance(value, BaseException):
        return repr(value)[:200]
    return f"{type(value).__name__} of {len(value)}" if isinstance(value, list) else "?"


def amf0_with(data: bytes, modules: Iterable[ModuleType]) -> None:
    _amf_with(data, 0, modules)


def amf3_with(data: bytes, modules: Iterable[ModuleType]) -> None:
    _amf_with(data, 3, modules)


def amf0(data: bytes) -> None:
    """loads_all(version=0), default budgets, compiled and pure: same values or both raise."""
    _amf_with(data, 0, (_amf, _amf_py))


def amf3(data: bytes) -> None:
    """loads_all(version=3), default budgets, compiled and pure: same values or both raise."""
    _amf_with(data, 3, (_amf, _amf_py))


# -- handshake --------------------------------------------------------------------------

_EPOCH = 0x01020304


def _handshake_run(hs: Any, first: bytes, data: bytes) -> tuple[Any, ...]:
    out = [first]
    ok = True
    for piece in splits(data):
        if hs.done:
            break
        try:
            out.append(bytes(hs.feed(piece)))
        except ALLOWED:
            ok = False
            break
    return (ok, b"".join(out), hs.done, bytes(hs.leftover), hs.complex, hs.schema,
            hs.peer_version, hs.peer_epoch)


def _server_hs(module: ModuleType, data: bytes) -> tuple[Any, ...]:
    hs = module.ServerHandshake(epoch_ms=_EPOCH, random=_random)
    return (*_handshake_run(hs, b"", data), hs.c2_ok)


def _client_hs(module: ModuleType, data: bytes) -> tuple[Any, ...]:
    hs = module.ClientHandshake(complex=not _flag(data, 1), epoch_ms=_EPOCH, random=_random,
                                schema=int(_flag(data, 2)))
    first = bytes(hs.start())
    return (*_handshake_run(hs, first, data), hs.server_digest_ok, hs.s2_ok)


def _hs_compare(what: str, results: list[tuple[str, tuple[Any, ...]]]) -> None:
    first_name, first = results[0]
    for name, other in results[1:]:
        if other != first:
            diff = [i for i, (x, y) in enumerate(zip(first, other, strict=True)) if x != y]
            raise Disagreement(f"{what}: {first_name} and {name} differ in fields {diff}")


def handshake_server_with(data: bytes, modules: Iterable[ModuleType]) -> None:
    _hs_compare("server handshake", [(m.__name__, _server_hs(m, data)) for m in modules])


def handshake_client_with(data: bytes, modules: Iterable[ModuleType]) -> None:
    _hs_compare("client handshake", [(m.__name__, _client_hs(m, data)) for m in modules])


def handshake_server(data: bytes) -> None:
    """ServerHandshake fed C0+C1+C2 (compiled and pure): same replies and facts."""
    handshake_server_with(data, (_handshake, _handshake_py))


def handshake_client(data: bytes) -> None:
    """ClientHandshake fed S0+S1+S2 (compiled and pure): same C2 and facts."""
    handshake_client_with(data, (_handshake, _handshake_py))


# -- sessions ---------------------------------------------------------------------------

#: A simple client handshake: C0, C1 (time 0, zero version: no digest), C2.
CLIENT_HANDSHAKE = b"\x03" + bytes(8) + _random(1528) + bytes(1536)
#: A simple server handshake: S0, S1, S2 (anything: the client only notes it).
SERVER_HANDSHAKE = b"\x03" + bytes(8) + _random(1528) + bytes(1536)


def _server_session(data: bytes) -> None:
    # half the inputs as a relay reads them: media runs as MediaBatch events
    session = ServerSession(epoch_ms=_EPOCH, random=_random, batch_media=_flag(data, 6))
    reject = _flag(data, 4)
    for piece in splits(data, 4):
        try:
            events = session.receive_data(piece)
            # accept_connect() runs the commands deferred until it and may raise
            # the peer's ProtocolError itself
            _serve(session, events, reject)
        except ALLOWED:
            return
        session.data_to_send()


def _serve(session: ServerSession, events: list[Any], reject: bool) -> None:
    """What an application does: accept (or reject) what is asked."""
    pending = list(events)
    while pending:
        event = pending.pop(0)
        if isinstance(event, ConnectRequest):
            if reject:
                session.reject_connect()
            else:
                pending.extend(session.accept_connect())
        elif isinstance(event, (PublishRequest, PlayRequest)) and session.is_pending(event):
            publish = isinstance(event, PublishRequest)
            if reject:
                (session.reject_publish if publish else session.reject_play)(event.stream_id)
            elif publish:
                session.accept_publish(event.stream_id)
            else:
                session.accept_play(event.stream_id)
                session.send_audio(event.stream_id, 0, b"\xaf\x00\x12\x10")
                session.send_video(event.stream_id, 0, b"\x17\x00\x00\x00\x00")


def server_session(data: bytes) -> None:
    """ServerSession fed a client's bytes from the first (handshake included)."""
    _server_session(data)


def server_session_post_hs(data: bytes) -> None:
    """ServerSession after a valid simple handshake: ``data`` is chunk-stream bytes."""
    _server_session(CLIENT_HANDSHAKE + data)


def _client_session(data: bytes) -> None:
    session = ClientSession("live", "rtmp://127.0.0.1/live", epoch_ms=_EPOCH, random=_random,
                            complex_handshake=not _flag(data, 1))
    session.connect()
    play = _flag(data, 2)
    for piece in splits(data, 4):
        try:
            events = session.receive_data(piece)
        except ALLOWED:
            return
        for event in events:
            if isinstance(event, Connected):
                if play:
                    session.start_play("stream")
                else:
                    session.start_publish("stream")
        session.data_to_send()


def client_session(data: bytes) -> None:
    """ClientSession (connect, then publish or play) fed a server's bytes from the first."""
    _client_session(data)


def client_session_post_hs(data: bytes) -> None:
    """ClientSession after a valid simple handshake: ``data`` is chunk-stream bytes."""
    _client_session(SERVER_HANDSHAKE + data)


# -- FLV and media ----------------------------------------------------------------------


def flv(data: bytes) -> None:
    """FLVReader over a file object: every tag, its frame (lenient and strict) or script."""
    try:
        reader = FLVReader(io.BytesIO(data), max_tag_size=1 << 20)
    except ALLOWED:
        return
    try:
        for tag in reader:
            if tag.encrypted:
                continue
            if tag.is_audio or tag.is_video:
                tag.frame()
                _outcome(lambda tag=tag: tag.frame(strict=True))
            elif tag.is_script:
                _outcome(tag.script)
    except ALLOWED:
        return


def _check_frame(frame: media.Frame) -> None:
    _ = (frame.data.tobytes(), frame.command, frame.is_metadata)


def media_parsers(data: bytes) -> None:
    """Every public parse/classify function of rtmpx.media on one body, and
    the documented identities between the fast checks and the parsers."""
    for view in (data, memoryview(data)):
        video = media.parse_video(7, view)
        audio = media.parse_audio(7, view)
        _check_frame(video)
        _check_frame(audio)
        for kind in (media.VIDEO, media.AUDIO):
            ok, frame = _outcome(
                lambda kind=kind, view=view: media.Frame.parse(kind, 7, view, strict=True))
            if ok:
                _check_frame(frame)
        if media.is_video_keyframe(view) != video.is_keyframe:
            raise AssertionError(
                f"is_video_keyframe {media.is_video_keyframe(view)} != parse_video "
                f"{video.is_keyframe}")
        if media.is_sequence_header(9, view) != video.is_sequence_header:
            raise AssertionError("is_sequence_header(9) != parse_video().is_sequence_header")
        if media.is_sequence_header(8, view) != audio.is_sequence_header:
            raise AssertionError("is_sequence_header(8) != parse_audio().is_sequence_header")
        media.audio_format(view)
        for body in (view, video.data, audio.data):
            _outcome(lambda body=body: media.avc_config(body))
            _outcome(lambda body=body: media.aac_config(body))


# -- the registry -------------------------------------------------------------------------

HARNESSES: dict[str, Callable[[bytes], None]] = {
    "chunk": chunk,
    "amf0": amf0,
    "amf3": amf3,
    "handshake_server": handshake_server,
    "handshake_client": handshake_client,
    "server_session": server_session,
    "server_session_post_hs": server_session_post_hs,
    "client_session": client_session,
    "client_session_post_hs": client_session_post_hs,
    "flv": flv,
    "media": media_parsers,
}

#: Harness name -> (one-twin runner, the twin modules), for replays per twin.
TWINS: dict[str, tuple[Callable[[bytes, Iterable[ModuleType]], None], tuple[ModuleType, ...]]] = {
    "chunk": (chunk_with, (_chunk, _chunk_py)),
    "amf0": (amf0_with, (_amf, _amf_py)),
    "amf3": (amf3_with, (_amf, _amf_py)),
    "handshake_server": (handshake_server_with, (_handshake, _handshake_py)),
    "handshake_client": (handshake_client_with, (_handshake, _handshake_py)),
}


def iter_corpus(root: Any) -> Iterator[tuple[str, Any]]:
    """``(harness name, path)`` for every seed file under ``root`` (a Path)."""
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and folder.name in HARNESSES:
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    yield folder.name, path

