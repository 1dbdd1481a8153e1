"""The server's limits module: the memory budget, rate-limited limit logs."""

from __future__ import annotations

import logging

import pytest

from rtmpx.server import limits
from rtmpx.server.limits import LOG_BURST, MemoryBudget, limit_hit


def test_limit_lines_are_rate_limited(caplog: pytest.LogCaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An attack cannot flood the log: LOG_BURST lines per limit and window,
    then one line counting the rest."""
    clock = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(limits, "_windows", {})
    caplog.set_level(logging.WARNING, logger="rtmpx.server")
    for i in range(1000):
        limit_hit("max_half_open=128", f"10.0.0.{i % 250}:{i}", "dropped")
    limit_hit("handshake_timeout=5", "10.9.9.9:1")  # another limit has its own window
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == LOG_BURST + 1
    assert lines[0] == "10.0.0.0:0: limit max_half_open=128: dropped"
    assert lines[-1] == "10.9.9.9:1: limit handshake_timeout=5"
    caplog.clear()
    clock[0] += limits.LOG_WINDOW
    limit_hit("max_half_open=128", "10.0.0.1:1")
    assert [r.getMessage() for r in caplog.records] == [
        f"limit max_half_open: {1000 - LOG_BURST} more peers in 10 s (not logged)",
        "10.0.0.1:1: limit max_half_open=128"]


def test_memory_budget() -> None:
    budget = MemoryBudget(100)
    assert budget.room_for(100) and not budget.room_for(101)
    budget.queues = 50
    budget.gop = 40
    budget.headers = 10
    assert budget.used == 100 and not budget.over
    budget.queues = 61
    assert budget.over
    with pytest.raises(ValueError):
        MemoryBudget(0)
