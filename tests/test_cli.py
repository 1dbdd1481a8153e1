"""The ``rtmpx`` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rtmpx.__main__ import main


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
