#!/usr/bin/env bash
# Run harnesses one after another (never two fuzzers at once), each for
# a time budget, at the lowest priority; logs to fuzz/work/logs/<name>.log.
#   fuzz/campaign.sh 900 amf0 amf3 chunk      # 15 min each
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=$1; shift
mkdir -p fuzz/work/logs
for name in "$@"; do
    echo "$(date -u +%FT%TZ) $name ${seconds}s" >> fuzz/work/logs/campaign.txt
    nice -n 19 python3 fuzz/run.py "$name" -max_total_time="$seconds" \
        > "fuzz/work/logs/$name.log" 2>&1 || echo "$name exited $?" >> fuzz/work/logs/campaign.txt
done
