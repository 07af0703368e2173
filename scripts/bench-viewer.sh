#!/usr/bin/env bash
# Viewer benchmark: generate a trace of 1M spans + 1M faults, then open it and render
# the Timeline headless while panning/zooming, REPEATS times (default 3).
# Usage: scripts/bench-viewer.sh [REPEATS] [FRAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
frames=${2:-300}
trace=${BENCH_TRACE:-/tmp/memmap-view-bench.trace.jsonl}
cargo build --release -q -p memmap-viewer --examples
bin=${CARGO_TARGET_DIR:-target}/release/examples
[ -s "$trace" ] || "$bin/gen_big_trace" "$trace" 1000000 1000000
ls -l "$trace"
for i in $(seq "$repeats"); do
  echo -n "repeat $i: "
  "$bin/bench_view" "$trace" "$frames"
done
