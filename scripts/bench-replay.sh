#!/usr/bin/env bash
# Replay benchmarks recorded in docs/benchmarks.md. Ratios are measured inside each run
# (engine vs the era's per-page writer run bare, strategy vs same-run roofline), so they survive a noisy
# machine; repeats give the spread. Usage: scripts/bench-replay.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/bench}
mkdir -p "$out"
cargo build --release -q -p memmap-replay
bin=target/release/memmap-replay
R=${REPEAT:-7}

summ() { python3 - "$@" <<'PY'
import json, sys, statistics as st
for path in sys.argv[1:]:
    d = json.load(open(path))
    eff = [r["metrics"]["engine_efficiency"] for r in d["repeats"]]
    nt = [r["metrics"]["fraction_of_nt_roofline"] for r in d["repeats"]]
    gbs = [r["metrics"]["memmap_bytes_per_s"] / 1e9 for r in d["repeats"]]
    ms = [r["metrics"]["time_to_complete_ns"] / 1e6 for r in d["repeats"]]
    f = lambda v: f"{st.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]"
    print(f"| {d['config']['strategy']} | {d['config']['params']['threads']} | {d['config']['params']['store']} | {f(eff)} | {f(nt)} | {st.median(gbs):.2f} | {st.median(ms):.1f} |")
PY
}

echo "## engine efficiency and roofline, qemu-16g, anonymous memory, $R repeats"
echo "| strategy | threads | store | engine efficiency median [min, max] | fraction of NT roofline median [min, max] | memmap GB/s | time to complete ms |"
echo "|---|---|---|---|---|---|---|"
for s in $($bin strategies | awk '/^[a-z]/ {print $1}'); do
  $bin run qemu-16g --strategy $s --faults none --repeat $R --verify -o "$out/eff-$s.run.json" >/dev/null
  summ "$out/eff-$s.run.json"
done

echo
echo "## williams-async fault stalls, williams-128g (128 GiB fsdax map=dev), $R repeats"
for cfg in "1 1" "8 2"; do
  set -- $cfg
  f="$out/stall-t$1-f$2.run.json"
  $bin run williams-128g --strategy williams-async --threads $1 --fault-threads $2 \
    --think-us 50 --touches 10000 --repeat $R -o "$f" --json > "$f.summary.json"
  python3 - "$f.summary.json" "$1" "$2" <<'PY'
import json, sys, statistics as st
d = json.load(open(sys.argv[1])); ph = d["stall_phases"]
u = [p["init_unit_median_ns"] / 1e6 for p in ph]
p99 = [p["stall_p99_during_init_ns"] / 1e6 for p in ph]
p50 = [p["stall_p50_during_init_ns"] / 1e6 for p in ph]
n = [p["faults_during_init"] for p in ph]
ratio = [a / b for a, b in zip(p99, u) if b > 0]
print(f"threads={sys.argv[2]} fault-threads={sys.argv[3]}: sub-range init median {st.median(u):.2f} ms; "
      f"faults during init {st.median(n)}; stall p50 {st.median(p50):.2f} ms, p99 {st.median(p99):.2f} ms "
      f"[{min(p99):.2f}, {max(p99):.2f}]; p99 / sub-range {st.median(ratio):.2f} [{min(ratio):.2f}, {max(ratio):.2f}]")
PY
done
