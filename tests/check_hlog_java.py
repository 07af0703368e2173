#!/usr/bin/env python3
"""Read every .hlog of `memmap-export RUNS --hlog DIR` with HdrHistogram's own Java
HistogramLogProcessor and check what it reports against the Parquet export of the same
runs (stall_histograms: the count and max of every histogram).

    check_hlog_java.py HLOG_DIR LAKE_DIR [--jar /usr/share/java/hdrhistogram.jar]

For each file and each tag (the merged histogram, one per fault thread) the processor
accumulates all intervals (one per repeat); its `#[Max = …, Total count = …]` footer must
equal the sum of the repeats' counts and the largest max in the Parquet table (max to
HdrHistogram's precision: the processor prints the highest equivalent value). Needs
java and the jar (Debian: default-jre-headless libhdrhistogram-java) and polars.
Exits non-zero with the file and tag on any difference.
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

import polars as pl

FOOTER = re.compile(r"#\[Max\s*=\s*([0-9.eE+]+),\s*Total count\s*=\s*(\d+)\]")


def processor(jar, hlog, tag, out):
    cmd = ["java", "-cp", jar, "org.HdrHistogram.HistogramLogProcessor", "-i", str(hlog),
           "-tag", tag, "-outputValueUnitRatio", "1", "-o", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f"{hlog}: {' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    text = pathlib.Path(f"{out}.hgrm").read_text()
    m = FOOTER.search(text)
    if not m:
        sys.exit(f"{hlog}: tag {tag}: no Max/Total count footer in the processor's output")
    return float(m.group(1)), int(m.group(2))


def tags(jar, hlog):
    cmd = ["java", "-cp", jar, "org.HdrHistogram.HistogramLogProcessor", "-i", str(hlog), "-listtags"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f"{hlog}: -listtags failed: {p.stderr.strip()}")
    lines = p.stdout.splitlines()
    if not lines or not lines[0].startswith("Tags found"):
        sys.exit(f"{hlog}: unexpected -listtags output: {p.stdout!r}")
    return [line.strip() for line in lines[1:] if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hlog_dir", type=pathlib.Path)
    ap.add_argument("lake", type=pathlib.Path)
    ap.add_argument("--jar", default="/usr/share/java/hdrhistogram.jar")
    a = ap.parse_args()
    if not pathlib.Path(a.jar).is_file():
        sys.exit(f"{a.jar} missing: install HdrHistogram's Java library (Debian: libhdrhistogram-java)")
    hist = pl.read_parquet(a.lake / "stall_histograms" / "**" / "*.parquet", hive_partitioning=True,
                           hive_schema={"host": pl.String, "kernel": pl.String, "strategy": pl.String})
    files = sorted(a.hlog_dir.glob("*.hlog"))
    if not files:
        sys.exit(f"no .hlog files in {a.hlog_dir}")
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            run_id = f.name.split(".")[-2]
            rows = hist.filter(pl.col("run_id") == run_id)
            if rows.is_empty():
                sys.exit(f"{f}: run {run_id} is not in {a.lake}/stall_histograms")
            strategy = rows["strategy"][0]
            found = tags(a.jar, f)
            want_tags = {strategy} | {f"{strategy}/{t}" for t in
                                      rows.filter(pl.col("scope") == "thread")["thread_name"].unique()}
            # the writer replaces ' ' and ',' in tags by '_'
            want_tags = {re.sub(r"[ ,\r\n]", "_", t) for t in want_tags}
            if set(found) != want_tags:
                sys.exit(f"{f}: tags {sorted(found)}, the Parquet export has {sorted(want_tags)}")
            for tag in found:
                if tag == strategy:
                    sel = rows.filter(pl.col("scope") == "merged")
                else:
                    sel = rows.filter((pl.col("scope") == "thread")
                                      & (pl.col("thread_name").str.replace_all(r"[ ,\r\n]", "_")
                                         == tag[len(strategy) + 1:]))
                want_count = int(sel["count"].sum())
                want_max = int(sel["max_ns"].max())
                got_max, got_count = processor(a.jar, f, tag, pathlib.Path(tmp) / f"{run_id}-{checked}")
                if got_count != want_count:
                    sys.exit(f"{f}: tag {tag}: HistogramLogProcessor counts {got_count}, Parquet {want_count}")
                # HdrHistogram with 3 significant digits: equivalent values within 0.1 %
                if want_count and abs(got_max - want_max) > max(1.0, want_max * 1e-3):
                    sys.exit(f"{f}: tag {tag}: HistogramLogProcessor max {got_max} ns, Parquet {want_max} ns")
                checked += 1
                print(f"{f.name}: {tag}: {got_count} stalls, max {got_max:.0f} ns = Parquet")
    print(f"HistogramLogProcessor read {len(files)} .hlog files, {checked} tags: all equal to the Parquet export")


if __name__ == "__main__":
    main()
