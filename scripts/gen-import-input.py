#!/usr/bin/env python3
"""Generates a large importer input from the real captures in collector/tests/corpus.

Usage: scripts/gen-import-input.py FORMAT MB OUT
FORMAT: ftrace, dmesg, perf-script, iomem, ndctl. The corpus captures of the format are
repeated with increasing timestamps until OUT holds MB megabytes (10^6 bytes):
  ftrace       fs_dax tracepoints (ext4, xfs), kprobes, function_graph with nesting,
               leaves, CPU migration, markers (as scripts/bench-import.sh always did)
  dmesg        the testbed boot logs and the layout/replay captures ([seconds.micros])
  perf-script  the real 6.18 captures (page faults, -F pid/tid, callchains) and the
               converted fsdax create capture
  iomem        the root, non-root and QEMU /proc/iomem captures, one after the other
  ndctl        one JSON array of namespace objects (`ndctl list -N` of a very large
               system: fsdax and devdax, map dev and mem, several aligns), pretty-printed
               as ndctl prints it
Used by scripts/bench-import.sh and the memory-bound test (collector/tests/import_bounds.rs
writes its inputs itself, same shapes).
"""
import os
import re
import sys

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "collector", "tests", "corpus")

FILES = {
    "ftrace": ["ftrace-fs_dax-ext4.excerpt.txt", "ftrace-fs_dax-xfs.excerpt.txt",
               "ftrace-kprobe-fsdax-create.txt", "ftrace-fgraph-devdax-dev-create.txt",
               "ftrace-fgraph-hotplug-1G-add-online.txt",
               "ftrace-fgraph-fsdax-mem-destroy.excerpt.txt"],
    "dmesg": ["dmesg-testbed-boot1-tail.txt", "dmesg-testbed-boot3-devdax-at-boot.txt",
              "dmesg-layout-b16-devdax-dev-1G-4G.txt", "dmesg-layout-b16-fsdax-dev-2M-4G.txt",
              "dmesg-replay-dax-tail.txt", "dmesg-teardown-oops.txt"],
    "perf-script": ["perf-script-real-6.18-page-faults.excerpt.txt",
                    "perf-script-real-6.18-F-pid-tid.excerpt.txt",
                    "perf-script-real-6.18-callchain.excerpt.txt",
                    "perf-script-fsdax-create-faults.converted.txt"],
    "iomem": ["iomem-root-6.18-ec2.txt", "iomem-qemu-nvdimm-devdax.txt"],
}

# The timestamp of a line: ftrace "... 123.456789:" / function_graph "123.456789 |",
# dmesg "[  123.456789]", perf script " 123.456789:".
TS = {
    "ftrace": [re.compile(r'^(\s*(?:\d+:)?\s*\S.*?\[\d+\]\s+(?:\S+\s+)?)(\d+\.\d+)(:.*)$'),
               re.compile(r'^(\s*)(\d+\.\d+)( \|.*)$')],
    "dmesg": [re.compile(r'^(\[\s*)(\d+\.\d+)(\].*)$')],
    "perf-script": [re.compile(r'^(.*?\s)(\d+\.\d+)(: \S+:\S+:.*)$')],
    "iomem": [],
}


def templates(fmt):
    tmpl = []
    for f in FILES[fmt]:
        for line in open(os.path.join(CORPUS, f), encoding="utf-8", errors="replace"):
            line = line.rstrip("\n")
            if fmt == "ftrace" and (line.startswith("#") or line.startswith("[")):
                continue
            m = None
            for r in TS[fmt]:
                m = r.match(line)
                if m:
                    break
            if m:
                # keep the printed precision
                prec = len(m.group(2).split(".")[1])
                tmpl.append((m.group(1), float(m.group(2)), m.group(3), prec))
            else:
                tmpl.append((line, None, "", 0))
    return tmpl


def gen_lines(fmt, out, mb):
    tmpl = templates(fmt)
    size, k = 0, 0
    with open(out, "w") as w:
        while size < mb * 1_000_000:
            off = k * 1000.0
            buf = []
            for pre, ts, suf, prec in tmpl:
                buf.append(pre if ts is None else "%s%.*f%s" % (pre, prec, ts + off, suf))
            s = "\n".join(buf) + "\n"
            w.write(s)
            size += len(s)
            k += 1
    return size, k, len(tmpl)


NS = """  {
    "dev":"namespace%(r)d.%(n)d",
    "mode":"%(mode)s",
    "map":"%(map)s",
    "size":%(size)d,
    "uuid":"%(uuid)s",
    "raw_uuid":"%(uuid)s",
    "sector_size":512,
    "align":%(align)d,
    "%(devkey)s":"%(devname)s",
    "numa_node":%(node)d,
    "target_node":%(tnode)d
  }"""

KINDS = [  # mode, map, align, usable size (16 GiB namespaces, as the corpus's), device key
    ("fsdax", "dev", 2 << 20, 16894656512, "blockdev"),
    ("fsdax", "mem", 2 << 20, 17177772032, "blockdev"),
    ("devdax", "dev", 2 << 20, 16894656512, "chardev"),
    ("devdax", "mem", 2 << 20, 17160994816, "chardev"),
]


def gen_ndctl(out, mb):
    size, n = 0, 0
    with open(out, "w") as w:
        w.write("[\n")
        size += 2
        while size < mb * 1_000_000:
            buf = []
            for _ in range(4096):
                mode, map_, align, usable, devkey = KINDS[n % len(KINDS)]
                r, i = divmod(n, 64)
                buf.append(NS % {
                    "r": r, "n": i, "mode": mode, "map": map_, "size": usable,
                    "uuid": "%08x-6453-4749-b521-%012x" % (n & 0xffffffff, n),
                    "align": align, "devkey": devkey,
                    "devname": ("pmem%d.%d" if devkey == "blockdev" else "dax%d.%d") % (r, i),
                    "node": r % 2, "tnode": 2 + r % 2,
                })
                n += 1
            s = ",\n".join(buf)
            w.write(s if n == 4096 else ",\n" + s)
            size += len(s) + 2
        w.write("\n]\n")
    return size, n, 1


def main():
    fmt, mb, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if fmt == "ndctl":
        size, k, t = gen_ndctl(out, mb)
        print(f"generated {out}: {size/1e6:.1f} MB, {k} namespace objects")
    else:
        size, k, t = gen_lines(fmt, out, mb)
        print(f"generated {out}: {size/1e6:.1f} MB, {k} copies of {t} corpus lines")


if __name__ == "__main__":
    main()
