"""Build script for rtmpx's compiled cores.

Every ``rtmpx/*.pyx`` becomes an extension module; the generated C is made
at build time (never committed).  Switches, read from the environment:

* ``RTMPX_DEBUG=1``    bounds checks and wraparound back on everywhere,
  ``-O0 -g``, line tracing for coverage and profilers.
* ``RTMPX_ANNOTATE=1`` writes Cython's HTML annotation next to each .pyx.
"""

import glob
import os
import sys

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - build-system.requires pins Cython
    sys.exit("rtmpx needs Cython 3 to build: pip install 'Cython>=3'")

DEBUG = os.environ.get("RTMPX_DEBUG") == "1"
ANNOTATE = os.environ.get("RTMPX_ANNOTATE") == "1"

directives = {
    "language_level": 3,
    "embedsignature": True,
    "cdivision": True,
    "infer_types": True,
}
macros = []
extra_compile_args = ["-O3"] if not DEBUG else ["-O0", "-g3"]
if DEBUG:
    directives.update(boundscheck=True, wraparound=True, linetrace=True)
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

extensions = [
    Extension(
        "rtmpx." + os.path.splitext(os.path.basename(path))[0],
        [path],
        define_macros=macros,
        extra_compile_args=extra_compile_args,
    )
    for path in sorted(glob.glob(os.path.join("rtmpx", "*.pyx")))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        force=DEBUG,
    ),
)
