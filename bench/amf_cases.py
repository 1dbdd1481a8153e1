"""The AMF benchmark cases and the codecs they compare.

Shared by ``bench_amf.py`` (pytest-benchmark) and ``amf_table.py`` (the
README table).  Codecs: rtmpx's compiled core, its pure-Python twin, and
Py3AMF with its Cython extension (``cpyamf``) when installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rtmpx import _amf, _amf_py
from rtmpx.amf import ECMAArray

# (a) connect, as a Flash Player / OBS-style client sends it
CONNECT = [
    "connect",
    1.0,
    {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
        "swfUrl": "rtmp://127.0.0.1:1935/live",
        "tcUrl": "rtmp://127.0.0.1:1935/live",
        "fpad": False,
        "capabilities": 239.0,
        "audioCodecs": 3575.0,
        "videoCodecs": 252.0,
        "videoFunction": 1.0,
        "pageUrl": "http://example.com/player.html",
        "objectEncoding": 0.0,
    },
]

# (b) @setDataFrame onMetaData with 16 keys, as FFmpeg/OBS publish it
METADATA = [
    "@setDataFrame",
    "onMetaData",
    ECMAArray(
        duration=0.0, fileSize=0.0, width=1920.0, height=1080.0,
        videocodecid=7.0, videodatarate=6000.0, framerate=60.0,
        audiocodecid=10.0, audiodatarate=160.0, audiosamplerate=48000.0,
        audiosamplesize=16.0, audiochannels=2.0, stereo=True,
        encoder="obs-output module (libobs version 30.2.0)",
        title="benchmark", creationdate="Fri Nov 20 12:00:00 2026",
    ),
]

# (c) a 1000-element array of mixed values
MIXED = [
    [
        float(i) if i % 5 == 0 else
        f"item-{i}" if i % 5 == 1 else
        (i % 3 == 0) if i % 5 == 2 else
        None if i % 5 == 3 else
        {"id": float(i), "name": f"n{i}"}
        for i in range(1000)
    ]
]

CASES: dict[str, list[Any]] = {"connect": CONNECT, "metadata": METADATA, "mixed1000": MIXED}


def _py3amf_values(values: list[Any]) -> list[Any]:
    import pyamf

    return [pyamf.MixedArray(v) if isinstance(v, ECMAArray) else v for v in values]


def codecs() -> dict[str, tuple[Callable[..., bytes], Callable[..., list[Any]]]]:
    """name -> (encode(values, version) -> bytes, decode(bytes, version) -> list)."""
    found: dict[str, tuple[Callable[..., bytes], Callable[..., list[Any]]]] = {
        "rtmpx": (lambda v, ver: _amf.dumps_all(v, version=ver),
                  lambda b, ver: _amf.loads_all(b, version=ver)),
        "rtmpx-pure": (lambda v, ver: _amf_py.dumps_all(v, version=ver),
                       lambda b, ver: _amf_py.loads_all(b, version=ver)),
    }
    try:
        importlib.import_module("cpyamf.amf0")
        import pyamf
    except ImportError:
        return found

    def enc(values: list[Any], ver: int) -> bytes:
        return pyamf.encode(*values, encoding=ver, use_ext=True).getvalue()  # type: ignore[no-any-return]

    def dec(data: bytes, ver: int) -> list[Any]:
        return list(pyamf.decode(data, encoding=ver, use_ext=True))

    found["py3amf-cython"] = (enc, dec)
    return found


def inputs(codec: str, case: str, version: int) -> tuple[list[Any], bytes]:
    """The values to encode and the bytes to decode for one benchmark."""
    values = CASES[case]
    if codec == "py3amf-cython":
        values = _py3amf_values(values)
    encode, _ = codecs()[codec]
    return values, encode(values, version)
