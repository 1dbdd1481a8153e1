"""Shared fixtures: the compiled/pure twin pairs every codec test runs against."""

from __future__ import annotations

import importlib
import os

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
