#!/usr/bin/env python3
"""Summary of a calibration run (testbed/calibrate.sh): reads OUT/status.txt and
OUT/raw/CONFIG/{kernel.trace,dmesg.txt,replay.run.json.gz} and writes

  OUT/summary.csv        config,pages,kernel_us,replay_us (medians over the measured repeats)
  OUT/kernel_detail.csv  every function_graph record of every repeat (warm-up included, flagged)
  OUT/replay_detail.csv  every replay repeat
  OUT/ratios.md          the table with kernel_us/replay_us per configuration

A configuration that failed keeps its row in summary.csv with NA where nothing was
measured; status.txt says why and which log to read. The same rules are checked by
collector/tests/calibration_summary.rs.

Usage: calibrate-summary.py OUT
"""
import csv
import gzip
import json
import os
import re
import statistics
import sys

FUNCS = ("memmap_init_zone_device", "move_pfn_range_to_zone")
MARK = re.compile(r"/\* calibrate (\S+) repeat=(\d+) (BEGIN|END)")
# function_graph with funcgraph-abstime/cpu/proc/duration: a leaf "func();" or a
# closing "} /* func */" carries the duration in microseconds
DUR = re.compile(
    r"^\s*(?P<ts>\d+\.\d+)\s*\|\s*(?P<cpu>\d+)\)\s*(?P<task>\S+)\s*\|\s*[+!#*@$]?\s*(?P<us>\d+\.\d+) us\s*\|\s*"
    r"(?:(?P<leaf>[A-Za-z_][A-Za-z0-9_.]*)\(\);|\}\s*/\*\s*(?P<close>[A-Za-z_][A-Za-z0-9_.]*)\s*\*/)"
)
INIT = re.compile(r"memmap_init_zone_device initialised (\d+) pages in (\d+)ms")


def median(xs):
    return statistics.median(xs) if xs else None


def parse_trace(path):
    """[(repeat, function, us, task, cpu)] in file order."""
    out = []
    rep = None
    with open(path, errors="replace") as f:
        for line in f:
            m = MARK.search(line)
            if m:
                rep = int(m.group(2)) if m.group(3) == "BEGIN" else None
                continue
            d = DUR.match(line)
            if d and rep is not None:
                fn = d.group("leaf") or d.group("close")
                if fn in FUNCS:
                    out.append((rep, fn, float(d.group("us")), d.group("task"), int(d.group("cpu"))))
    return out


def parse_dmesg(path):
    """{repeat: [pages initialised per memmap_init_zone_device]}"""
    out = {}
    rep = None
    if not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("=== repeat "):
                rep = int(line.split()[2])
                out.setdefault(rep, [])
                continue
            m = INIT.search(line)
            if m and rep is not None:
                out[rep].append(int(m.group(1)))
    return out


def fmt(x, nd=3):
    return "NA" if x is None else f"{x:.{nd}f}"


def main():
    out = sys.argv[1]
    status = []
    with open(os.path.join(out, "status.txt")) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) >= 2:
                status.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    rows, krows, rrows, problems = [], [], [], []
    for name, st, why in status:
        d = os.path.join(out, "raw", name)
        kernel_us = replay_us = pages = None
        if os.path.exists(os.path.join(d, "kernel.trace")):
            recs = parse_trace(os.path.join(d, "kernel.trace"))
            dm = parse_dmesg(os.path.join(d, "dmesg.txt"))
            for rep, fn, us, task, cpu in recs:
                nr = ""
                if fn == FUNCS[0] and len(dm.get(rep, [])) == 1:
                    nr = str(dm[rep][0])
                krows.append([name, rep, 1 if rep == 0 else 0, fn, f"{us:.3f}", nr, task, cpu])
            reps = sorted({r for r, *_ in recs if r > 0})
            per_rep = {}
            for rep, fn, us, *_ in recs:
                if rep > 0 and fn == FUNCS[0]:
                    per_rep.setdefault(rep, []).append(us)
            bad = [r for r in reps if len(per_rep.get(r, [])) != 1]
            if bad and st == "OK":
                problems.append(f"{name}: repeats {bad} do not have exactly one memmap_init_zone_device record")
            if per_rep and not bad:
                kernel_us = median([v[0] for v in per_rep.values()])
        run = os.path.join(d, "replay.run.json.gz")
        if os.path.exists(run):
            with gzip.open(run, "rt") as f:
                rf = json.load(f)
            lay = rf["layout"][0]
            pages = lay["struct_pages_written"]
            inits = []
            for r in rf["repeats"]:
                ph = [p for p in r["phases"] if p["name"] == "init" and p["namespace"] == lay["name"]]
                us = (ph[0]["end_ns"] - ph[0]["start_ns"]) / 1000.0 if len(ph) == 1 else None
                rrows.append([name, r["index"], fmt(us), r["metrics"]["init_ns"], r["metrics"]["struct_pages_written"], lay["data_pages"], lay["struct_pages_written"]])
                if us is not None:
                    inits.append(us)
            replay_us = median(inits) if len(inits) == len(rf["repeats"]) else None
            # the kernel's own page count (pr_debug) against the layout model's data pages
            for rep, fn, us, nr in [(k[1], k[3], k[4], k[5]) for k in krows if k[0] == name]:
                if fn == FUNCS[0] and nr and int(nr) != lay["data_pages"]:
                    problems.append(f"{name} repeat {rep}: kernel initialised {nr} pages, layout model data_pages {lay['data_pages']}")
        if st == "OK" and None in (kernel_us, replay_us, pages):
            problems.append(f"{name}: status OK but kernel_us={kernel_us} replay_us={replay_us} pages={pages}")
        rows.append([name, "NA" if pages is None else str(pages), fmt(kernel_us), fmt(replay_us)])

    with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["config", "pages", "kernel_us", "replay_us"])
        w.writerows(rows)
    with open(os.path.join(out, "kernel_detail.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["config", "repeat", "warmup", "function", "duration_us", "kernel_pages", "task", "cpu"])
        w.writerows(krows)
    with open(os.path.join(out, "replay_detail.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["config", "repeat", "init_us", "metrics_init_ns", "struct_pages_written", "layout_data_pages", "layout_struct_pages_written"])
        w.writerows(rrows)

    print(f"{'config':24} {'pages':>9} {'kernel_us':>11} {'replay_us':>11} {'ratio':>6}  status")
    st_of = {n: (s, w) for n, s, w in status}
    for name, pages, k, r in rows:
        ratio = f"{float(k) / float(r):.2f}" if k != "NA" and r != "NA" and float(r) > 0 else "NA"
        s, why = st_of[name]
        print(f"{name:24} {pages:>9} {k:>11} {r:>11} {ratio:>6}  {s} {why}")
    # the table of ratios, machine-made (README.md quotes the run it was written for)
    ratios = []
    with open(os.path.join(out, "ratios.md"), "w") as f:
        f.write("| config | pages | kernel_us | replay_us | kernel/replay |\n| --- | ---: | ---: | ---: | ---: |\n")
        for name, pages, k, r in rows:
            ok = k != "NA" and r != "NA" and float(r) > 0
            if ok:
                ratios.append(float(k) / float(r))
            s, why = st_of[name]
            f.write(f"| {name} | {pages} | {k} | {r} | {f'{float(k) / float(r):.2f}' if ok else 'NA (' + s + ')'} |\n")
        if ratios:
            f.write(f"\nMedian kernel/replay ratio over {len(ratios)} configurations: {statistics.median(ratios):.2f} "
                    f"(min {min(ratios):.2f}, max {max(ratios):.2f}).\n")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
