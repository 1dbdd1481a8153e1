#!/usr/bin/env bash
# Replay the seed corpus (and the fan-out's twin tests) against a debug build
# of the compiled cores:
# Cython bounds/wraparound/initialized checks forced on, and AddressSanitizer
# when this machine has it (RTMPX_DEBUG_BUILD=asan, the default; set
# RTMPX_DEBUG_BUILD=1 for the checks alone).  The build goes into a
# temporary copy of the tree (the tracked and untracked, not ignored,
# files), never over the in-tree .so files.  Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${RTMPX_DEBUG_BUILD:-asan}
# setup.py needs Cython in this environment (pip's isolated build had its own)
python3 -c "import Cython" 2>/dev/null || python3 -m pip install -q "Cython>=3.0.10,<4"

env_run=(env -u RTMPX_PUREPYTHON PYTHONDONTWRITEBYTECODE=1)
if [ "$mode" = asan ]; then
    libasan=$(gcc -print-file-name=libasan.so 2>/dev/null || true)
    if [ -z "$libasan" ] || [ ! -e "$libasan" ] || [ "$libasan" = libasan.so ]; then
        echo "debug_corpus: no libasan here; bounds checks only"
        mode=1
    else
        env_run+=(LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
                  PYTHONMALLOC=malloc RTMPX_CORPUS_TIME_LIMIT=20
                  RTMPX_CORPUS_RSS_MB=4096)
    fi
fi
[ "$mode" = 1 ] && env_run+=(RTMPX_CORPUS_TIME_LIMIT=10)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rtmpx-debug.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$tmp"

start=$(date +%s)
(cd "$tmp" && RTMPX_DEBUG_BUILD=$mode nice -n 10 python3 setup.py -q build_ext --inplace \
    > build.log 2>&1) || { cat "$tmp/build.log"; exit 1; }
echo "debug_corpus: RTMPX_DEBUG_BUILD=$mode built in $(( $(date +%s) - start )) s"

cd "$tmp"
"${env_run[@]}" python3 - "$tmp" <<'PY'
import sys
import rtmpx._amf, rtmpx._chunk, rtmpx._fanout, rtmpx._handshake
for m in (rtmpx._amf, rtmpx._chunk, rtmpx._fanout, rtmpx._handshake):
    print("debug_corpus:", m.__file__)
    if not m.__file__.startswith(sys.argv[1]):
        sys.exit(f"{m.__name__} is not the debug build: {m.__file__}")
PY
# --capture=sys: a sanitizer report (written to fd 2 before an abort) reaches the log
"${env_run[@]}" python3 -m pytest -q -p no:cacheprovider --capture=sys tests/test_corpus.py \
    tests/test_fanout.py
