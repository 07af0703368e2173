#!/usr/bin/env python3
"""Replayed ablation of Li Zhe's series (issue 15) next to his published steps.

Runs `memmap-replay run SCENARIO --strategy S -r 1` for the base (`duyck`, the 6.x
writer) and each step of the series in interleaved rounds (base, step 1, step 2, step 3,
base, ...), so machine noise hits every strategy alike, and reports per strategy the
median init time and engine efficiency, and per step the speed-up over the base of the
same round (median, min, max over rounds).

Usage: scripts/bench-lizhe-ablation.py [--scenario lizhe-100g-fsdax] [--rounds 7]
       [--bin target/release/memmap-replay]
Published (fsdax map=dev 100 GB, VM on Ice Lake, base v7.1-rc3, 30 rebinds each):
273.52 ms base; 245.73 ms head template (v2 3/7, 2026-05-21); 104.59 ms whole series
(v3 8/8 2026-05-26, v5 cover 2026-07-01). The tail template (v2 4/7) changes nothing on
fsdax (no compound pages); its devdax 2M figure: 313.45 -> 256.56 ms.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile

STEPS = ["duyck", "lizhe-template", "lizhe-template-tails", "lizhe-nt"]
PUBLISHED_FSDAX = {
    "duyck": 273.52,
    "lizhe-template": 245.73,
    "lizhe-template-tails": None,
    "lizhe-nt": 104.59,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="lizhe-100g-fsdax")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--bin", default="target/release/memmap-replay")
    a = ap.parse_args()
    init = {s: [] for s in STEPS}
    eff = {s: [] for s in STEPS}
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.rounds):
            for s in STEPS:
                out = subprocess.run(
                    [a.bin, "run", a.scenario, "--strategy", s, "-r", "1", "--faults", "none",
                     "--json", "-o", f"{d}/{s}.run.json"],
                    check=True, capture_output=True, text=True).stdout
                m = json.loads(out)["median"]
                init[s].append(m["init_ms"])
                eff[s].append(m["engine_efficiency"])
            print(f"round {r + 1}/{a.rounds}: " +
                  ", ".join(f"{s} {init[s][-1]:.1f} ms" for s in STEPS), file=sys.stderr)
    print(f"scenario {a.scenario}, {a.rounds} interleaved rounds, one repeat each\n")
    print("| strategy | init ms median (min-max) | engine efficiency median (min-max) "
          "| speed-up vs duyck, same round: median (min-max) | published (ms, speed-up) |")
    print("|---|---|---|---|---|")
    for s in STEPS:
        sp = [b / x for b, x in zip(init["duyck"], init[s])]
        pub = PUBLISHED_FSDAX[s]
        pub_s = "n/a on fsdax" if pub is None else f"{pub} ms, {PUBLISHED_FSDAX['duyck'] / pub:.2f}x"
        print(f"| {s} | {statistics.median(init[s]):.1f} ({min(init[s]):.1f}-{max(init[s]):.1f}) "
              f"| {statistics.median(eff[s]):.3f} ({min(eff[s]):.3f}-{max(eff[s]):.3f}) "
              f"| {statistics.median(sp):.3f} ({min(sp):.3f}-{max(sp):.3f}) | {pub_s} |")


if __name__ == "__main__":
    main()
