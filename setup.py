"""Build script for rtmpx's compiled cores.

Every ``rtmpx/*.pyx`` becomes an extension module; the generated C is made
at build time (never committed).  Switches, read from the environment:

* ``RTMPX_DEBUG=1``    bounds checks and wraparound back on everywhere,
  ``-O0 -g``, line tracing for coverage and profilers.
* ``RTMPX_ANNOTATE=1`` writes Cython's HTML annotation next to each .pyx.
* ``RTMPX_DEBUG_BUILD=1`` the CI debug build (``fuzz/debug_corpus.sh``):
  ``boundscheck``, ``wraparound`` and ``initializedcheck`` forced on
  everywhere, over the per-function decorators too; ``-O1 -g``.
  ``RTMPX_DEBUG_BUILD=asan`` adds AddressSanitizer (``-fsanitize=address``):
  import those modules only with ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``.
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
DEBUG_BUILD = os.environ.get("RTMPX_DEBUG_BUILD", "")
if DEBUG_BUILD not in ("", "0", "1", "asan"):
    sys.exit(f"RTMPX_DEBUG_BUILD must be 1 or asan, not {DEBUG_BUILD!r}")
DEBUG_BUILD = "" if DEBUG_BUILD == "0" else DEBUG_BUILD

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
extra_link_args: list[str] = []
if DEBUG_BUILD:
    forced = {"boundscheck": True, "wraparound": True, "initializedcheck": True}
    directives.update(forced)
    extra_compile_args = ["-O1", "-g"]
    if DEBUG_BUILD == "asan":
        extra_compile_args += ["-fsanitize=address", "-fno-omit-frame-pointer"]
        extra_link_args += ["-fsanitize=address"]

    # A decorator such as @cython.boundscheck(False) outranks compiler_directives:
    # override it where Cython applies a function's or class's directives.
    from Cython.Compiler import ParseTreeTransforms

    _visit = ParseTreeTransforms.InterpretCompilerDirectives.visit_with_directives

    def _forced_visit(self, node, directives, contents_directives):  # type: ignore[no-untyped-def]
        def force(found):  # type: ignore[no-untyped-def]
            return found and {**found, **{k: v for k, v in forced.items() if k in found}}

        return _visit(self, node, force(directives), force(contents_directives))

    ParseTreeTransforms.InterpretCompilerDirectives.visit_with_directives = _forced_visit

extensions = [
    Extension(
        "rtmpx." + os.path.splitext(os.path.basename(path))[0],
        [path],
        define_macros=macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )
    for path in sorted(glob.glob(os.path.join("rtmpx", "*.pyx")))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        force=DEBUG or bool(DEBUG_BUILD),
    ),
)
