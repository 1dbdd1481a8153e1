"""Shared fixtures: the compiled/pure twin pairs every codec test runs against."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(params=["rtmpx._amf", "rtmpx._amf_py"], ids=["cython", "python"])
def amf(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The AMF codec module: the compiled core, then its pure-Python twin."""
    return importlib.import_module(request.param)


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A 2 s H.264/AAC FLV file made by real FFmpeg, and its tags."""
    from .peers import ffmpeg_exe, make_sample

    return make_sample(ffmpeg_exe(), tmp_path_factory.mktemp("sample") / "in.flv")


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a running nginx-rtmp (Debian's), application "live"."""
    from .peers import nginx_rtmp

    with nginx_rtmp(tmp_path_factory.mktemp("nginx")) as port:
        yield port


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (valid one day) and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, timeout=60, capture_output=True)
    return cert, key
