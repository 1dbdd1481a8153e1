"""The whole session stack on the pure-Python twins (RTMPX_PUREPYTHON=1).

The codec tests run both twins side by side in one process; the session
layer imports the chosen twin once, so it is run again in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["tests/session", "tests/server/test_hub.py"])
def test_session_suite_on_pure_python_twins(module: str) -> None:
    env = dict(os.environ, RTMPX_PUREPYTHON="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not interop",
         module],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
