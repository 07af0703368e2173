#!/usr/bin/env bash
# Recording overhead of `memmap-collect record` on a page-fault-bound workload, and the
# collector's own peak RSS. Ratios come from one run: the workload alone and under the
# collector alternate, REPEAT times each, so machine noise hits both alike.
#
#   REPEAT=5 MIB=1024 scripts/bench-collect.sh      (root: perf tracepoints need it)
#   SOURCES="software tracepoint" PERIODS="16 1"     (the defaults: each pair is measured)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-5}
MIB=${MIB:-1024}
cargo build --release -q -p memmap-collect
B=target/release/memmap-collect
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "machine: $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%d)"
echo "workload: touch every 4 KiB page of $MIB MiB fresh anonymous memory (MADV_NOHUGEPAGE), 3 rounds"
for source in ${SOURCES:-software tracepoint}; do
for period in ${PERIODS:-16 1}; do
  alone=(); under=(); rss=(); samples=(); lost=()
  for i in $(seq "$REPEAT"); do
    a=$($B fault-workload --mib "$MIB" --rounds 3 | sort -n | head -1)
    $B record -q --fault-source "$source" --fault-period "$period" -o "$T/r.jsonl" \
      -- $B fault-workload --mib "$MIB" --rounds 3 > "$T/u"
    u=$(sort -n "$T/u" | head -1)
    alone+=("$a"); under+=("$u")
    # The collector's own peak RSS (RUSAGE_SELF, recorded in the trace; /usr/bin/time
    # would include the workload it reaps).
    rss+=("$(grep -o 'peak_rss_kib=[0-9]*' "$T/r.jsonl" | cut -d= -f2)")
    samples+=("$(grep -cE '"name":"(exceptions:page_fault_user|software:page-faults)"' "$T/r.jsonl" || true)")
    lost+=("$(python3 -c 'import json,sys; print(sum(json.loads(l).get("count",0) for l in open(sys.argv[1]) if "\"kind\":\"lost\"" in l))' "$T/r.jsonl")")
  done
  python3 - "$source" "$period" "${alone[*]}" "${under[*]}" "${rss[*]}" "${samples[*]}" "${lost[*]}" <<'PY'
import statistics, sys
source, period = sys.argv[1], sys.argv[2]
a = [float(x) for x in sys.argv[3].split()]
u = [float(x) for x in sys.argv[4].split()]
rss = [int(x) for x in sys.argv[5].split()]
ratios = sorted(x / y for x, y in zip(u, a))
print(f"fault-source {source}, fault-period {period}: under-record / alone = {statistics.median(ratios):.3f} "
      f"[{ratios[0]:.3f}, {ratios[-1]:.3f}] over {len(ratios)} pairs "
      f"(alone median {statistics.median(a)*1e3:.1f} ms per round)")
print(f"  collector peak RSS: median {statistics.median(rss)/1024:.1f} MiB, max {max(rss)/1024:.1f} MiB")
print(f"  fault samples per run: {sys.argv[6]}; lost: {sys.argv[7]}")
PY
done
done
