#!/usr/bin/env bash
# ftrace importer throughput (docs: collector/src/import/ftrace.rs). Generates ~100 MB of
# trace text in /tmp by repeating the real corpus captures (fs_dax tracepoints from ext4
# and xfs, kprobes, function_graph with nesting, leaves, CPU migration, markers) with
# increasing timestamps, builds release, and runs collector/examples/bench_import.rs
# (line by line FtraceParser over a byte buffer; 5 repeats, MB/s min/median/max).
# Usage: scripts/bench-import.sh [MB] [REPEATS]     Target: >= 200 MB/s median.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-100}
REPEATS=${2:-5}
gen=${BENCH_FILE:-/tmp/memmap-bench-ftrace-${MB}M.txt}
if [ ! -s "$gen" ]; then
python3 - "$gen" "$MB" <<'PY'
import re, sys
out, mb = sys.argv[1], int(sys.argv[2])
corpus = "collector/tests/corpus/"
files = ["ftrace-fs_dax-ext4.excerpt.txt", "ftrace-fs_dax-xfs.excerpt.txt",
         "ftrace-kprobe-fsdax-create.txt", "ftrace-fgraph-devdax-dev-create.txt",
         "ftrace-fgraph-hotplug-1G-add-online.txt", "ftrace-fgraph-fsdax-mem-destroy.excerpt.txt"]
ev = re.compile(r'^(\s*(?:\d+:)?\s*\S.*?\[\d+\]\s+(?:\S+\s+)?)(\d+\.\d+)(:.*)$')
fg = re.compile(r'^(\s*)(\d+\.\d+)( \|.*)$')
tmpl = []
for f in files:
    for l in open(corpus + f):
        l = l.rstrip("\n")
        if l.startswith("#") or l.startswith("["):
            continue
        m = ev.match(l) or fg.match(l)
        if m:
            tmpl.append((m.group(1), float(m.group(2)), m.group(3)))
        else:
            tmpl.append((l, None, ""))
size, k = 0, 0
with open(out, "w") as w:
    while size < mb * 1_000_000:
        off = k * 100.0
        buf = []
        for pre, ts, suf in tmpl:
            buf.append(pre if ts is None else "%s%.6f%s" % (pre, ts + off, suf))
        s = "\n".join(buf) + "\n"
        w.write(s)
        size += len(s)
        k += 1
print(f"generated {out}: {size/1e6:.1f} MB, {k} copies of {len(tmpl)} corpus lines")
PY
fi
cargo build --release -q -p memmap-collect --example bench_import
target/release/examples/bench_import "$gen" "$REPEATS"
