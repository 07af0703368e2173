#!/usr/bin/env bash
# Importer throughput and peak RSS, end to end (issue 14; docs: collector/src/import/,
# the formats in import/ftrace/, dmesg.rs, perf_script.rs, ndctl.rs, iomem.rs on the shared
# machinery of import/lines.rs). For each format, generates an input of MB megabytes in
# /tmp from the corpus captures (scripts/gen-import-input.py: ftrace tracepoints, kprobes
# and function_graph; dmesg boot logs; perf script samples and callchains; /proc/iomem
# tables; one ndctl JSON array of namespaces), builds release, and runs
#   memmap-collect import --format F INPUT -o /tmp/...jsonl
# under /usr/bin/time -v, REPEATS times: MB/s (input bytes / wall time) and peak RSS
# (Maximum resident set size), min / median / max; and MB/s of CPU time (input bytes /
# (user + sys)), less sensitive to other work on a shared machine, median. The load
# average before each format is printed on stderr.
# Usage: scripts/bench-import.sh [MB] [REPEATS] [FORMATS...]   (default 1000 3, all five)
# Targets: >= 150 MB/s, peak RSS <= 64 MiB on 1 GB. The parse-only ftrace bench is
# collector/examples/bench_import.rs (target/release/examples/bench_import FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-1000}
REPEATS=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
FORMATS=${*:-ftrace dmesg perf-script ndctl iomem}
cargo build --release -q -p memmap-collect
bin=${CARGO_TARGET_DIR:-target}/release/memmap-collect
out=/tmp/memmap-bench-import-out.jsonl
printf '%-12s %8s  %-26s %-22s %s\n' format "MB" "MB/s min/median/max" "peak RSS MiB min/med/max" "CPU MB/s"
for f in $FORMATS; do
    gen=/tmp/memmap-bench-${f}-${MB}M.txt
    [ -s "$gen" ] || python3 scripts/gen-import-input.py "$f" "$MB" "$gen" >&2
    bytes=$(stat -c %s "$gen")
    rates=() rss=() cpu=()
    echo "$f: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    for _ in $(seq "$REPEATS"); do
        /usr/bin/time -v "$bin" import --format "$f" "$gen" -o "$out" 2>/tmp/memmap-bench-time.txt >/dev/null
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' /tmp/memmap-bench-time.txt)
        kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' /tmp/memmap-bench-time.txt)
        rates+=("$(awk -v b="$bytes" -v s="$wall" 'BEGIN {printf "%.0f", b/1e6/s}')")
        rss+=("$(awk -v k="$kb" 'BEGIN {printf "%.1f", k/1024}')")
        cs=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' /tmp/memmap-bench-time.txt)
        cpu+=("$(awk -v b="$bytes" -v s="$cs" 'BEGIN {printf "%.0f", b/1e6/s}')")
    done
    r=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%s / %s / %s", a[1], a[int((NR+1)/2)], a[NR]}')
    m=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%s / %s / %s", a[1], a[int((NR+1)/2)], a[NR]}')
    c=$(printf '%s\n' "${cpu[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%-12s %8.0f  %-26s %-22s %s\n' "$f" "$(awk -v b="$bytes" 'BEGIN {print b/1e6}')" "$r" "$m" "$c"
done
rm -f "$out"
