"""`pip install .` builds a wheel that holds the whole package.

The wheel is built from a copy of the source tree (without in-tree build
products), installed into a directory of its own and imported from there
by an interpreter that sees nothing else (``-S``: no site-packages, so no
editable install of this checkout either).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PRODUCTS = shutil.ignore_patterns("*.so", "*.c", "build", "__pycache__", ".git", "*.egg-info",
                                   "corpus", ".pytest_cache", ".benchmarks")


def BUILD_PRODUCTS(folder: str, names: list[str]) -> set[str]:
    """What a build leaves in the source tree (Cython's annotated .html
    pages too, but not the dashboard's)."""
    ignored = set(_PRODUCTS(folder, names))
    if Path(folder).name != "static":
        ignored |= {name for name in names if name.endswith(".html")}
    return ignored


def test_the_wheel_holds_every_module_and_imports_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "rtmpx", src / "rtmpx", ignore=BUILD_PRODUCTS)
    out = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, timeout=600)
    [wheel] = out.glob("rtmpx-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {p.relative_to(src).as_posix() for p in (src / "rtmpx").rglob("*")
                if p.suffix in (".py", ".pyi", ".pyx") or p.name == "py.typed"
                or p.parent.name == "static"}  # the dashboard's files
    assert "rtmpx/server/static/index.html" in expected
    assert expected - names == set()
    for core in ("_amf", "_chunk", "_handshake", "_fanout"):
        assert any(n.startswith(f"rtmpx/{core}.") and n.endswith(".so") for n in names), core

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "import rtmpx, rtmpx.server, rtmpx.session, rtmpx.__main__, rtmpx._chunk; "
             "assert rtmpx.__file__.startswith(sys.argv[1]), rtmpx.__file__; "
             "assert rtmpx._chunk.__file__.endswith('.so'); print(rtmpx.Server.__name__)")
    done = subprocess.run([sys.executable, "-S", "-c", probe, str(target)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Server"

