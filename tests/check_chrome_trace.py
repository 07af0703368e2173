#!/usr/bin/env python3
"""Independent check of a Chrome trace-event JSON file (the "JSON Object Format" of
the Trace Event Format that chrome://tracing and Perfetto UI import).

Written against the format's specification, not against memmap-lab's writer: it uses
only Python's json module and checks every event's fields and types.

usage: check_chrome_trace.py FILE [--expect-ph X,i,C,M] [--min-events N]
                                  [--expect-thread-name NAME]... [--expect-counter NAME]...
                                  [--expect-span NAME]... [--json]

Exit 0 when the file is valid and has what was asked for; 1 with one line per problem
otherwise; a summary (event counts by phase, processes, threads) on stdout.
"""
import argparse
import json
import math
import sys
from collections import Counter, defaultdict

KNOWN_PH = set("BEXiIPCbnesftNODMRc(")  # phases of the Trace Event Format
INSTANT_SCOPES = {"g", "p", "t"}
METADATA_NAMES = {
    "process_name": "name",
    "process_labels": "labels",
    "process_sort_index": "sort_index",
    "thread_name": "name",
    "thread_sort_index": "sort_index",
}


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check(doc):
    """Returns (problems, summary)."""
    problems = []
    if isinstance(doc, list):
        events = doc  # the JSON Array Format is valid too
    elif isinstance(doc, dict):
        if "traceEvents" not in doc:
            return ["top-level object has no traceEvents"], {}
        events = doc["traceEvents"]
        if not isinstance(events, list):
            return ["traceEvents is not an array"], {}
        dtu = doc.get("displayTimeUnit")
        if dtu is not None and dtu not in ("ms", "ns"):
            problems.append(f"displayTimeUnit {dtu!r} is neither 'ms' nor 'ns'")
    else:
        return ["top level is neither an object nor an array"], {}

    by_ph = Counter()
    thread_names = {}
    process_names = {}
    counters = defaultdict(int)
    spans = Counter()
    instants = Counter()
    tracks_with_events = set()
    for i, e in enumerate(events):
        where = f"event {i}"
        if not isinstance(e, dict):
            problems.append(f"{where}: not an object")
            continue
        ph = e.get("ph")
        if not isinstance(ph, str) or ph not in KNOWN_PH:
            problems.append(f"{where}: ph {ph!r} is not a trace-event phase")
            continue
        by_ph[ph] += 1
        name = e.get("name")
        if not isinstance(name, str) or name == "":
            problems.append(f"{where} ({ph}): name must be a non-empty string, got {name!r}")
        for k in ("pid", "tid"):
            if k in e and not is_int(e[k]):
                problems.append(f"{where} ({ph}): {k} must be an integer, got {e[k]!r}")
        if "pid" not in e:
            problems.append(f"{where} ({ph}): no pid")
        if ph != "M" and "tid" not in e and ph not in ("C",):
            problems.append(f"{where} ({ph}): no tid")
        if "args" in e and not isinstance(e["args"], dict):
            problems.append(f"{where} ({ph}): args must be an object")
        if "cat" in e and not isinstance(e["cat"], str):
            problems.append(f"{where} ({ph}): cat must be a string")
        ts = e.get("ts")
        if ph != "M":
            if not is_num(ts):
                problems.append(f"{where} ({ph}): ts must be a finite number, got {ts!r}")
            elif ts < 0:
                problems.append(f"{where} ({ph}): negative ts {ts}")
        if ph == "X":
            dur = e.get("dur")
            if not is_num(dur):
                problems.append(f"{where} (X): dur must be a finite number, got {dur!r}")
            elif dur < 0:
                problems.append(f"{where} (X): negative dur {dur}")
            spans[name] += 1
            tracks_with_events.add((e.get("pid"), e.get("tid")))
        elif ph in ("i", "I"):
            s = e.get("s", "t")
            if s not in INSTANT_SCOPES:
                problems.append(f"{where} (i): scope s must be one of g/p/t, got {s!r}")
            if "dur" in e:
                problems.append(f"{where} (i): an instant has no dur")
            instants[name] += 1
            if s == "t":
                tracks_with_events.add((e.get("pid"), e.get("tid")))
        elif ph == "C":
            args = e.get("args")
            if not isinstance(args, dict) or not args:
                problems.append(f"{where} (C): a counter needs args with at least one series")
            else:
                for k, v in args.items():
                    if not is_num(v):
                        problems.append(f"{where} (C): series {k!r} value must be a number, got {v!r}")
            counters[name] += 1
        elif ph == "M":
            want = METADATA_NAMES.get(name)
            args = e.get("args")
            if want is None:
                problems.append(f"{where} (M): unknown metadata event {name!r}")
            elif not isinstance(args, dict) or want not in args:
                problems.append(f"{where} (M): {name} needs args.{want}")
            else:
                v = args[want]
                if want == "name" and not isinstance(v, str):
                    problems.append(f"{where} (M): {name} args.name must be a string")
                if want == "sort_index" and not is_int(v):
                    problems.append(f"{where} (M): {name} args.sort_index must be an integer")
                if name == "thread_name" and isinstance(v, str):
                    if not is_int(e.get("tid")):
                        problems.append(f"{where} (M): thread_name without an integer tid")
                    thread_names[(e.get("pid"), e.get("tid"))] = v
                if name == "process_name" and isinstance(v, str):
                    process_names[e.get("pid")] = v
    unnamed = sorted(t for t in tracks_with_events if t not in thread_names)
    summary = {
        "events": len(events),
        "by_ph": dict(by_ph),
        "processes": len(process_names),
        "threads": len(thread_names),
        "thread_names": sorted(set(thread_names.values())),
        "counters": dict(counters),
        "spans": dict(spans),
        "instants": dict(instants),
        "tracks_without_thread_name": [list(t) for t in unnamed],
    }
    return problems, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--expect-ph", default="", help="comma-separated phases that must occur")
    ap.add_argument("--min-events", type=int, default=1)
    ap.add_argument("--expect-thread-name", action="append", default=[])
    ap.add_argument("--expect-counter", action="append", default=[])
    ap.add_argument("--expect-span", action="append", default=[])
    ap.add_argument("--all-tracks-named", action="store_true",
                    help="every track with X or thread-scoped i events has a thread_name")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    a = ap.parse_args()
    try:
        with open(a.file, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{a.file}: not readable as JSON: {e}")
        return 1
    problems, summary = check(doc)
    if summary:
        for ph in filter(None, a.expect_ph.split(",")):
            if summary["by_ph"].get(ph, 0) == 0:
                problems.append(f"no event with ph {ph!r}")
        if summary["events"] < a.min_events:
            problems.append(f"{summary['events']} events, expected at least {a.min_events}")
        for n in a.expect_thread_name:
            if n not in summary["thread_names"]:
                problems.append(f"no thread named {n!r}")
        for n in a.expect_counter:
            if n not in summary["counters"]:
                problems.append(f"no counter named {n!r}")
        for n in a.expect_span:
            if n not in summary["spans"]:
                problems.append(f"no X span named {n!r}")
        if a.all_tracks_named and summary["tracks_without_thread_name"]:
            problems.append(f"tracks without thread_name: {summary['tracks_without_thread_name'][:5]}")
    if a.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(f"{a.file}: {summary.get('events', 0)} events {summary.get('by_ph', {})}, "
              f"{summary.get('processes', 0)} processes, {summary.get('threads', 0)} named threads")
    for p in problems[:50]:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if len(problems) > 50:
        print(f"PROBLEM: ... {len(problems) - 50} more", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
