"""Write the hand-made seeds of ``tests/corpus/<harness>/`` (``hand-*`` files).

::

    python3 fuzz/make_seeds.py          # rewrites every hand-* seed, deterministically

Valid examples of each format, made with rtmpx's own encoders and a
client/server session pair talking in memory, plus a few known-hostile
shapes (reference bomb, deep nesting, huge declared lengths).  Real
peers' bytes come from ``fuzz/capture.py`` (``ffmpeg-*``, ``rtmpdump-*``).
"""

from __future__ import annotations

import hashlib
import io
import struct
import sys
from datetime import UTC, datetime
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
sys.path[:0] = [str(FUZZ), str(ROOT)]

from harnesses import _EPOCH, _random

from rtmpx import _amf_py as amf
from rtmpx import _chunk_py as chunk
from rtmpx import _handshake_py as hs
from rtmpx._amf_types import (
    UNDEFINED,
    UNSUPPORTED,
    XML,
    ArrayCollection,
    Dictionary,
    ECMAArray,
    MixedArray,
    TypedObject,
    Vector,
    XMLDocument,
)
from rtmpx.events import Connected, ConnectRequest, PlayRequest, PublishRequest
from rtmpx.flv import FLVWriter
from rtmpx.session import ClientSession, ServerSession

CORPUS = ROOT / "tests" / "corpus"

AVCC = bytes.fromhex("01640028ffe1001967640028acd940780227e5c05a808080a0000003002000000781e30632"
                     "58010006" "68ebe3cb22c0")
CONNECT = {"app": "live", "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
           "swfUrl": "rtmp://127.0.0.1/live", "tcUrl": "rtmp://127.0.0.1/live",
           "fpad": False, "capabilities": 239.0, "audioCodecs": 3575.0,
           "videoCodecs": 252.0, "videoFunction": 1.0, "objectEncoding": 0.0,
           "fourCcList": ["av01", "vp09", "hvc1"]}
METADATA = ECMAArray({"duration": 0.0, "width": 320.0, "height": 240.0, "videodatarate": 0.0,
                      "framerate": 25.0, "videocodecid": 7.0, "audiodatarate": 62.5,
                      "audiosamplerate": 44100.0, "audiosamplesize": 16.0, "stereo": False,
                      "audiocodecid": 10.0, "encoder": "Lavf61.7.100", "filesize": 0.0})


def write(harness: str, name: str, data: bytes) -> None:
    folder = CORPUS / harness
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"hand-{name}").write_bytes(data)


def amf_seeds() -> None:
    date = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    shared = {"k": "v"}
    common = [None, UNDEFINED, True, False, 0.0, -0.0, 1.5, float("inf"), "", "héllo",
              "x" * 70000, [1.0, "a", None], ECMAArray({"a": 1.0}), date,
              XMLDocument("<a/>"), TypedObject("com.Foo", {"x": 1.0}), [shared, shared]]
    for version in (0, 3):
        v = f"amf{version}"
        write(v, "connect", amf.dumps_all(["connect", 1.0, CONNECT], version=version))
        write(v, "result", amf.dumps_all(
            ["_result", 1.0, {"fmsVer": "FMS/3,5,7,7009", "capabilities": 31.0},
             {"level": "status", "code": "NetConnection.Connect.Success",
              "description": "Connection succeeded.", "objectEncoding": float(version)}],
            version=version))
        write(v, "metadata", amf.dumps_all(["@setDataFrame", "onMetaData", METADATA],
                                           version=version))
        write(v, "publish", amf.dumps_all(["publish", 5.0, None, "stream", "live"],
                                          version=version))
        for i, value in enumerate(common):
            data = amf.dumps(value, version=version)
            write(v, f"value{i:02}", data if len(data) < 4096 else data[:3000])
        # references: a DAG with 2**30 paths (the budget must refuse it)
        node: list[object] = ["leaf"]
        for _ in range(30):
            node = [node, node]
        write(v, "reference-bomb", amf.dumps(node, version=version))
        deep: list[object] = []
        for _ in range(60):
            deep = [deep]
        write(v, "deep60", amf.dumps(deep, version=version))
    write("amf0", "switch-amf3", amf.dumps_all([b"bytes", XML("<x/>"), Vector([1, 2], "int"),
                                                MixedArray([1], {"a": 2})], version=0))
    write("amf0", "unsupported", amf.dumps_all([UNSUPPORTED, 1.0]))
    write("amf0", "long-string-hdr", b"\x0c\xff\xff\xff\xff" + b"abc")
    write("amf0", "strict-array-hdr", b"\x0a\x7f\xff\xff\xff\x00")
    write("amf0", "object-ref", b"\x03\x00\x01a\x07\x00\x00\x00\x00\x09")
    amf3_values = [
        2**28 - 1, -(2**28), 2**28, Vector([1, -2], "int"), Vector([1, 2], "uint", True),
        Vector([1.5, 2.5], "double"), Vector(["a", {"b": 1}], "object", type_name="com.X"),
        Dictionary({"a": 1, 2: "b", True: None}, weak_keys=True), MixedArray([1, 2], {"k": 3}),
        XML("<x>1</x>"), b"\x00\x01\x02", ArrayCollection([1, 2, 3]),
        [TypedObject("com.P", {"x": 1}), TypedObject("com.P", {"x": 2})], ["s", "s", "s"],
    ]
    for i, value in enumerate(amf3_values):
        write("amf3", f"value3-{i:02}", amf.dumps(value, version=3))
    write("amf3", "u29-max", b"\x04\xff\xff\xff\xff")
    write("amf3", "array-hdr-huge", b"\x09\xff\xff\xff\xfd\x01")
    write("amf3", "object-ref", b"\x0a\x0b\x01\x03a\x0a\x00\x01")
    write("amf3", "traits-ext", b"\x0a\x07\x07com.Ext\x00")


def chunk_seeds() -> None:
    w = chunk.ChunkWriter()
    msgs = [chunk.Message(20, amf.dumps_all(["connect", 1.0, CONNECT]), 0, 0)]
    out = [w.encode(msgs[0]), w.set_chunk_size(4096)]
    for i in range(4):
        out.append(w.encode(chunk.Message(8, b"\xaf\x01" + bytes(30), 23 * i, 1)))
    out.append(w.encode(chunk.Message(9, b"\x17\x01\x00\x00\x00" + bytes(9000), 40, 1)))
    out.append(w.encode(chunk.Message(9, b"\x27\x01\x00\x00\x00" + bytes(100), 0x1000000, 1)))
    out.append(w.encode(chunk.Message(9, b"\x27\x01\x00\x00\x00" + bytes(100), 0x1000028, 1)))
    out.append(w.encode(chunk.Message(18, b"\x02\x00\x01x", 0, 1, csid=64)))
    out.append(w.encode(chunk.Message(18, b"\x02\x00\x01y", 0, 1, csid=320)))
    out.append(w.encode(chunk.Message(2, struct.pack(">I", 4), 0, 0)))  # Abort
    write("chunk", "stream", b"".join(out))
    small = chunk.ChunkWriter()
    write("chunk", "chunk128", b"".join(
        small.encode(chunk.Message(9, bytes(range(256)) * 2, ts, 1)) for ts in (0, 33, 66)))
    one = chunk.ChunkWriter()
    write("chunk", "chunk-size-1", one.set_chunk_size(1) + one.encode(chunk.Message(8, b"abc")))
    write("chunk", "chunk-size-max", chunk.ChunkWriter().set_chunk_size(0x7FFFFFFF))
    write("chunk", "declared-16m", b"\x04\x00\x00\x00\xff\xff\xff\x09\x01\x00\x00\x00" + bytes(64))
    write("chunk", "csid-3byte", b"\x01\xff\xff\x00\x00\x00\x00\x00\x04\x08\x00\x00\x00\x00abcd")
    write("chunk", "fmt3-first", b"\xc4" + bytes(10))
    write("chunk", "ext-ts", b"\x04\xff\xff\xff\x00\x00\x02\x08\x01\x00\x00\x00"
                             b"\x01\x00\x00\x00\xaf\x01")


def handshake_seeds() -> None:
    # server side: what clients send (simple, complex schema 0/1, RTMPE, truncated)
    for name, complex_, schema in (("simple", False, 1), ("complex1", True, 1),
                                   ("complex0", True, 0)):
        client = hs.ClientHandshake(complex=complex_, schema=schema, epoch_ms=5,
                                    random=_random)
        server = hs.ServerHandshake(epoch_ms=_EPOCH, random=_random)
        c01 = client.start()
        s012 = server.feed(c01)
        c2 = client.feed(s012)
        write("handshake_server", name, c01 + c2 + b"\x02\x00\x00\x00\x00\x00\x04\x01\x00"
              b"\x00\x00\x00\x00\x00\x10\x00")
        write("handshake_client", name, s012 + b"\x02\x00\x00\x00\x00\x00\x04\x05\x00\x00"
              b"\x00\x00\x00\x26\x25\xa0")
        if complex_:
            # the harness's own client (complex, this schema) gets a signed S2
            mine = hs.ClientHandshake(complex=True, schema=schema, epoch_ms=_EPOCH,
                                      random=_random)
            answer = hs.ServerHandshake(epoch_ms=_EPOCH, random=_random).feed(mine.start())
            write("handshake_client", f"{name}-own", answer)
    write("handshake_server", "rtmpe", b"\x06" + bytes(1536))
    write("handshake_server", "c0-only", b"\x03")
    write("handshake_client", "s0-bad", b"\x08" + bytes(100))


def session_seeds() -> None:
    """A publish and a play, each between a ClientSession and a ServerSession in memory."""
    for mode in ("publish", "play"):
        client = ClientSession("live", "rtmp://127.0.0.1/live", epoch_ms=_EPOCH, random=_random)
        server = ServerSession(epoch_ms=_EPOCH, random=_random)
        client.connect()
        up: list[bytes] = []
        down: list[bytes] = []
        stream_id = 0
        for _ in range(12):
            data = client.data_to_send()
            up.append(data)
            for ev in server.receive_data(data) if data else []:
                if isinstance(ev, ConnectRequest):
                    server.accept_connect()
                elif isinstance(ev, PublishRequest):
                    server.accept_publish(ev.stream_id)
                elif isinstance(ev, PlayRequest):
                    server.accept_play(ev.stream_id)
                    server.send_metadata(ev.stream_id, dict(METADATA))
                    server.send_video(ev.stream_id, 0, b"\x17\x00\x00\x00\x00" + AVCC)
                    server.send_audio(ev.stream_id, 0, b"\xaf\x00\x12\x10")
                    server.send_video(ev.stream_id, 40, b"\x17\x01\x00\x00\x50" + bytes(600))
            data = server.data_to_send()
            down.append(data)
            for ev in client.receive_data(data) if data else []:
                if isinstance(ev, Connected):
                    (client.start_publish if mode == "publish" else client.start_play)("cam")
                elif type(ev).__name__ == "PublishStarted":
                    stream_id = ev.stream_id
                    client.send_metadata(stream_id, dict(METADATA))
                    client.send_video(stream_id, 0, b"\x17\x00\x00\x00\x00" + AVCC)
                    client.send_audio(stream_id, 0, b"\xaf\x00\x12\x10")
                    for i in range(5):
                        client.send_video(stream_id, 40 * i, b"\x27\x01\x00\x00\x50"
                                          + bytes(300 + 500 * i))
                        client.send_audio(stream_id, 23 * i, b"\xaf\x01" + bytes(40))
                    client.stop_publish(stream_id)
        c2s, s2c = b"".join(up), b"".join(down)
        write("server_session", f"session-{mode}", c2s)
        write("client_session", f"session-{mode}", s2c)
        write("server_session_post_hs", f"session-{mode}", c2s[3073:])
        write("client_session_post_hs", f"session-{mode}", s2c[3073:])
        write("chunk", f"session-{mode}-c2s", c2s[3073:])
        write("chunk", f"session-{mode}-s2c", s2c[3073:])


VIDEO_BODIES = {
    "avc-seq": "1700000000" + AVCC.hex(), "avc-nalu": "2701000050" + "00000005" + "6588840021",
    "avc-eos": "1702000000", "hevc12-seq": "1c00000000" + "01", "av1-13": "1d01000000aa",
    "h263": "22" + "0000840000", "vp6": "14" + "0000", "command": "5500", "screen": "13abcd",
    "ex-hvc1-seq": "90" + b"hvc1".hex() + "01", "ex-hvc1-coded": "91" + b"hvc1".hex() + "00000a01",
    "ex-hvc1-x": "a3" + b"hvc1".hex() + "01", "ex-av01-seq": "90" + b"av01".hex() + "81",
    "ex-vp09": "a1" + b"vp09".hex() + "00", "ex-avc1-coded": "91" + b"avc1".hex() + "00002801",
    "ex-metadata": "f4" + b"hvc1".hex() + "020009636f6c6f72496e666f",
    "ex-modex": "97" + "02" + "000102" + "01" + b"hvc1".hex() + "000000aa",
    "ex-modex-big": "97" + "ff" + "0100" + "00" * 257 + "01" + b"hvc1".hex() + "000000",
    "ex-command": "d1" + "01", "ex-mpeg2ts": "95" + b"avc1".hex() + "01",
    "mt-one": "96" + "01" + b"hvc1".hex() + "00" + "00000001",
    "mt-many": "96" + "10" + b"av01".hex() + "00" + "000003" + "aabbcc" + "01" + "000001" + "dd",
    "mt-codecs": "96" + "21" + b"avc1".hex() + "00" + "000001" + "aa" + b"hvc1".hex() + "01"
                 + "000001" + "bb",
    "ex-unknown": "90" + b"vvc1".hex() + "01",
}
AUDIO_BODIES = {
    "aac-seq": "af001210", "aac-raw": "af01" + "21" * 20, "mp3": "2fffe3", "pcm": "0e0001",
    "nelly": "6200", "speex": "b6aa", "g711a": "72aa", "ex-opus-seq": "90" + b"Opus".hex() + "0102",
    "ex-opus-coded": "91" + b"Opus".hex() + "fffb", "ex-flac": "90" + b"fLaC".hex() + "00",
    "ex-mp4a": "90" + b"mp4a".hex() + "1210", "ex-ac3-end": "92" + b"ac-3".hex(),
    "ex-mc": "94" + b"ec-3".hex() + "0102", "ex-mt": "95" + "00" + b"Opus".hex() + "00" + "fc",
    "ex-mt-codecs": "95" + "21" + b"Opus".hex() + "00" + "000001" + "aa" + b".mp3".hex() + "01"
                    + "000001" + "bb",
    "ex-modex": "97" + "02" + "000102" + "01" + b"Opus".hex() + "aa", "empty": "",
    "aac-config-5": "af00" + "2b920800", "aac-explicit-rate": "af00" + "f8" + "0bb800" + "10",
}


def media_seeds() -> None:
    for name, hexa in {**{f"v-{k}": v for k, v in VIDEO_BODIES.items()},
                       **{f"a-{k}": v for k, v in AUDIO_BODIES.items()}}.items():
        write("media", name, bytes.fromhex(hexa))
    write("media", "avcc", AVCC)


def flv_seeds() -> None:
    buf = io.BytesIO()
    with FLVWriter(buf, flush_each_tag=False) as w:
        w.write_metadata(dict(METADATA))
        w.write_tag(9, 0, bytes.fromhex(VIDEO_BODIES["avc-seq"]))
        w.write_tag(8, 0, bytes.fromhex(AUDIO_BODIES["aac-seq"]))
        for i in range(3):
            w.write_tag(9, 40 * i, bytes.fromhex("2701000050") + bytes(50))
            w.write_tag(8, 23 * i, bytes.fromhex("af01") + bytes(20))
        w.write_tag(9, 0x1000000, bytes.fromhex(VIDEO_BODIES["ex-hvc1-coded"]))
        w.write_tag(18, 300, amf.dumps_all(["onCuePoint", {"name": "c"}]))
    body = b"encrypted"  # Filter bit set: the writer refuses it, so by hand
    data = buf.getvalue() + struct.pack(">BI", 0x28, len(body) << 8 | 0)[:4] \
        + b"\x00\x00\xc8\x00\x00\x00\x00" + body + struct.pack(">I", 11 + len(body))
    write("flv", "av", data)
    write("flv", "torn", data[:-30])
    write("flv", "offset-12", b"FLV\x01\x05\x00\x00\x00\x0c\x00\x00\x00" + data[9:])
    write("flv", "bad-prev", data[:13] + b"\x09\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x17\x00"
          + b"\x00\x00\x00\x99")
    write("flv", "huge-tag", data[:13] + b"\x09\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00")


def main() -> None:
    for seeds in (amf_seeds, chunk_seeds, handshake_seeds, session_seeds, media_seeds,
                  flv_seeds):
        seeds()
    total = sum(p.stat().st_size for p in CORPUS.rglob("hand-*"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(CORPUS.rglob("hand-*"))))
    print(f"{len(list(CORPUS.rglob('hand-*')))} hand-made seeds, {total} bytes, "
          f"sha256 {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
