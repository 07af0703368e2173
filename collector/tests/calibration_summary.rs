//! Consistency of the shipped calibration (traces/real/calibration/, made by
//! testbed/calibrate.sh): the summary against its raw captures. Timings are never judged;
//! only that every figure in summary.csv is what the raw files say.
//!
//! * summary.csv: the header is exactly `config,pages,kernel_us,replay_us`, at least 12
//!   configurations, each once, every name `MODE-MAP-ALIGN-SIZE`;
//! * status.txt lists the same configurations; a FAIL keeps its row (NA where nothing was
//!   measured) and names a log that exists; an OK row has every figure;
//! * pages = the struct pages `memmap_init_zone_device` writes for the recorded namespace
//!   (raw/CONFIG/snapshot.jsonl) by the layout model, the recorded namespace is the one
//!   the configuration names, and the kernel's own count (its pr_debug "initialised N
//!   pages", raw/CONFIG/dmesg.txt) equals the model's data pages in every repeat;
//! * kernel_us = the median of the measured repeats (warm-up repeat 0 excluded) of
//!   memmap_init_zone_device in the raw function_graph trace (raw/CONFIG/kernel.trace),
//!   one record per repeat, at least 3 repeats; kernel_detail.csv holds exactly the raw
//!   trace's records of both functions;
//! * replay_us = the median over the run file's repeats (raw/CONFIG/replay.run.json.gz) of
//!   the namespace's "init" phase, at least 3 repeats, one init thread.
//!
//! Also run on a fresh calibration with MEMMAP_CALIBRATION_OUT=DIR.

use flate2::read::GzDecoder;
use memmap_model::layout::{namespace_layout, LayoutParams, MapLocation, NsMode};
use memmap_model::trace::Trace;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const HEADER: &str = "config,pages,kernel_us,replay_us";
/// Region 0 (the namespaces under test) starts at 4 GiB in the testbed's QEMU machine.
const REGION0_START: u64 = 0x1_0000_0000;
const FUNCS: [&str; 2] = ["memmap_init_zone_device", "move_pfn_range_to_zone"];

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces/real/calibration")
}

#[test]
fn shipped_calibration_is_consistent() {
    let dir = shipped_dir();
    assert!(
        dir.join("summary.csv").is_file(),
        "{} has no summary.csv: run testbed/calibrate.sh",
        dir.display()
    );
    check_or_panic(&dir);
}

#[test]
fn fresh_calibration_is_consistent() {
    let Some(dir) = std::env::var_os("MEMMAP_CALIBRATION_OUT") else {
        eprintln!("MEMMAP_CALIBRATION_OUT not set: no fresh calibration to check");
        return;
    };
    check_or_panic(Path::new(&dir));
}

fn check_or_panic(dir: &Path) {
    let problems = check(dir);
    assert!(
        problems.is_empty(),
        "{}: {} problem(s):\n  {}",
        dir.display(),
        problems.len(),
        problems.join("\n  ")
    );
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// "fsdax-dev-2M-4G" -> (mode, map, align bytes, size bytes)
fn parse_config(name: &str) -> Option<(NsMode, MapLocation, u64, u64)> {
    let p: Vec<&str> = name.split('-').collect();
    if p.len() != 4 {
        return None;
    }
    let mode = match p[0] {
        "fsdax" => NsMode::Fsdax,
        "devdax" => NsMode::Devdax,
        _ => return None,
    };
    let map = match p[1] {
        "mem" => MapLocation::Mem,
        "dev" => MapLocation::Dev,
        _ => return None,
    };
    Some((mode, map, size(p[2])?, size(p[3])?))
}

fn size(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let m = match unit {
        "K" => 1u64 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(m)
}

/// function_graph records of a kernel.trace: (repeat, function, microseconds). A record
/// is a leaf `func();` or a closing `} /* func */` with its duration, between the
/// trace_marker lines `calibrate CONFIG repeat=N BEGIN` / `... END`.
fn parse_trace(text: &str, config: &str, problems: &mut Vec<String>) -> Vec<(u32, String, f64)> {
    let mut out = Vec::new();
    let mut rep: Option<u32> = None;
    for line in text.lines() {
        if let Some(i) = line.find("/* calibrate ") {
            let mut w = line[i + 13..].split_whitespace();
            let (c, r, be) = (w.next(), w.next(), w.next());
            if c != Some(config) {
                problems.push(format!(
                    "{config}: kernel.trace marker of another configuration: {line}"
                ));
            }
            let r = r.and_then(|r| r.strip_prefix("repeat=")?.parse().ok());
            rep = if be == Some("BEGIN") { r } else { None };
            continue;
        }
        let cols: Vec<&str> = line.split('|').collect();
        if line.starts_with('#') || cols.len() < 4 {
            continue;
        }
        let dur = cols[2]
            .trim()
            .trim_start_matches(['+', '!', '#', '*', '@', '$'])
            .trim();
        let Some(us) = dur
            .strip_suffix("us")
            .and_then(|d| d.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let call = cols[3].trim();
        let func = call.strip_suffix("();").or_else(|| {
            call.strip_prefix('}').map(|c| {
                c.trim()
                    .trim_start_matches("/*")
                    .trim_end_matches("*/")
                    .trim()
            })
        });
        let Some(func) = func else { continue };
        match rep {
            Some(r) => out.push((r, func.to_string(), us)),
            None => problems.push(format!(
                "{config}: kernel.trace record outside a repeat's markers: {line}"
            )),
        }
    }
    out
}

/// The kernel's "memmap_init_zone_device initialised N pages" per repeat of dmesg.txt.
fn parse_dmesg(text: &str) -> BTreeMap<u32, Vec<u64>> {
    let mut out: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut rep = None;
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("=== repeat ") {
            rep = r.split_whitespace().next().and_then(|r| r.parse().ok());
            if let Some(r) = rep {
                out.entry(r).or_default();
            }
        } else if let (Some(r), Some(i)) = (rep, line.find("memmap_init_zone_device initialised "))
        {
            if let Some(n) = line[i + 36..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
            {
                out.entry(r).or_default().push(n);
            }
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.0015
}

fn check(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let read = |p: &str| std::fs::read_to_string(dir.join(p));
    let summary = match read("summary.csv") {
        Ok(s) => s,
        Err(e) => return vec![format!("summary.csv: {e}")],
    };
    let mut lines = summary.lines();
    if lines.next() != Some(HEADER) {
        problems.push(format!("summary.csv: header is not exactly {HEADER}"));
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    if rows.len() < 12 {
        problems.push(format!(
            "summary.csv: {} configurations, at least 12 expected",
            rows.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for r in &rows {
        if r.len() != 4 {
            problems.push(format!("summary.csv: row {r:?} has {} fields", r.len()));
        } else if !seen.insert(r[0]) {
            problems.push(format!("summary.csv: {} appears twice", r[0]));
        }
    }

    // status.txt: the same configurations, each once
    let status_text = read("status.txt").unwrap_or_default();
    let mut status: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for l in status_text.lines() {
        let mut p = l.splitn(3, ' ');
        let (n, s, why) = (
            p.next().unwrap_or(""),
            p.next().unwrap_or(""),
            p.next().unwrap_or(""),
        );
        if status.insert(n, (s, why)).is_some() {
            problems.push(format!("status.txt: {n} appears twice"));
        }
    }
    let st_names: BTreeSet<&str> = status.keys().copied().collect();
    if st_names != seen {
        problems.push(format!(
            "status.txt and summary.csv list different configurations: only in status {:?}, only in summary {:?}",
            st_names.difference(&seen).collect::<Vec<_>>(),
            seen.difference(&st_names).collect::<Vec<_>>()
        ));
    }

    // kernel_detail.csv, grouped by configuration
    let mut detail: BTreeMap<String, Vec<(u32, String, f64)>> = BTreeMap::new();
    match read("kernel_detail.csv") {
        Ok(t) => {
            let mut it = t.lines();
            if it.next() != Some("config,repeat,warmup,function,duration_us,kernel_pages,task,cpu")
            {
                problems.push("kernel_detail.csv: unexpected header".into());
            }
            for l in it {
                let f: Vec<&str> = l.split(',').collect();
                match (
                    f.first(),
                    f.get(1).and_then(|r| r.parse().ok()),
                    f.get(3),
                    f.get(4).and_then(|d| d.parse().ok()),
                ) {
                    (Some(c), Some(r), Some(func), Some(us)) => detail
                        .entry(c.to_string())
                        .or_default()
                        .push((r, func.to_string(), us)),
                    _ => problems.push(format!("kernel_detail.csv: bad row {l}")),
                }
            }
        }
        Err(e) => problems.push(format!("kernel_detail.csv: {e}")),
    }

    let params = LayoutParams::linux_6_1();
    let mut ok_rows = 0;
    for r in rows.iter().filter(|r| r.len() == 4) {
        let (name, pages, kernel_us, replay_us) = (r[0], r[1], r[2], r[3]);
        let Some((mode, map, align, size)) = parse_config(name) else {
            problems.push(format!(
                "{name}: not a MODE-MAP-ALIGN-SIZE name (e.g. fsdax-dev-2M-4G)"
            ));
            continue;
        };
        let raw = format!("raw/{name}");
        let (st, why) = status.get(name).copied().unwrap_or(("", ""));
        if st == "FAIL" {
            // kept, with the reason and a log that exists
            if why.is_empty() {
                problems.push(format!("{name}: FAIL without a reason in status.txt"));
            }
            if let Some(i) = why.find("(log: ") {
                let log = why[i + 6..].split([',', ')']).next().unwrap_or("").trim();
                if !dir.join(log).exists() {
                    problems.push(format!(
                        "{name}: status.txt names the log {log}, which is not there"
                    ));
                }
            } else if !why.starts_with("not run") {
                problems.push(format!("{name}: FAIL names no log: {why}"));
            }
        } else if st != "OK" {
            problems.push(format!("{name}: status '{st}' (OK or FAIL expected)"));
            continue;
        }
        let num = |s: &str| s.parse::<f64>().ok();
        if st == "OK" {
            if [pages, kernel_us, replay_us]
                .iter()
                .any(|v| num(v).is_none())
            {
                problems.push(format!("{name}: OK but summary row is {r:?}"));
                continue;
            }
            ok_rows += 1;
        }

        // pages: the recorded namespace is the configuration's, and the model's count
        if let (Ok(t), Some(p)) = (
            Trace::read(&dir.join(&raw).join("snapshot.jsonl")),
            pages.parse::<u64>().ok(),
        ) {
            let ns: Vec<_> = t
                .events
                .iter()
                .filter_map(|e| e.namespace_spec())
                .filter(|s| {
                    s.start_phys >= REGION0_START && s.start_phys < REGION0_START + (12u64 << 30)
                })
                .collect();
            if ns.len() != 1 {
                problems.push(format!(
                    "{name}: snapshot has {} namespaces on region 0, 1 expected",
                    ns.len()
                ));
            } else {
                let s = &ns[0];
                if (s.mode, s.map, s.align_bytes, s.size_bytes) != (mode, map, align, size) {
                    problems.push(format!(
                        "{name}: the recorded namespace is {:?} {:?} align {} size {}",
                        s.mode, s.map, s.align_bytes, s.size_bytes
                    ));
                }
                match namespace_layout(s, &params) {
                    Ok(l) => {
                        if l.struct_pages_written != p {
                            problems.push(format!(
                                "{name}: pages {p}, layout model {}",
                                l.struct_pages_written
                            ));
                        }
                        let dm =
                            parse_dmesg(&read(&format!("{raw}/dmesg.txt")).unwrap_or_default());
                        for (rep, n) in &dm {
                            if n.len() != 1 || n[0] != l.data_pages {
                                problems.push(format!("{name} repeat {rep}: kernel initialised {n:?} pages, model data_pages {}", l.data_pages));
                            }
                        }
                        if dm.is_empty() {
                            problems.push(format!(
                                "{name}: no 'initialised N pages' line in {raw}/dmesg.txt"
                            ));
                        }
                    }
                    Err(e) => problems.push(format!("{name}: layout model: {e}")),
                }
            }
        } else if st == "OK" {
            problems.push(format!("{name}: {raw}/snapshot.jsonl unreadable"));
        }

        // kernel_us: median of the raw trace
        if let Ok(text) = read(&format!("{raw}/kernel.trace")) {
            let recs = parse_trace(&text, name, &mut problems);
            let mut want: Vec<(u32, String, f64)> = recs
                .iter()
                .filter(|r| FUNCS.contains(&r.1.as_str()))
                .cloned()
                .collect();
            let mut got = detail.remove(name).unwrap_or_default();
            let key = |a: &(u32, String, f64), b: &(u32, String, f64)| {
                (a.0, &a.1).cmp(&(b.0, &b.1)).then(a.2.total_cmp(&b.2))
            };
            want.sort_by(key);
            got.sort_by(key);
            if want.len() != got.len()
                || want
                    .iter()
                    .zip(&got)
                    .any(|(a, b)| a.0 != b.0 || a.1 != b.1 || !close(a.2, b.2))
            {
                problems.push(format!(
                    "{name}: kernel_detail.csv does not hold exactly the raw trace's records"
                ));
            }
            let mut by_rep: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
            for (rep, f, us) in &recs {
                if *rep > 0 && f == FUNCS[0] {
                    by_rep.entry(*rep).or_default().push(*us);
                }
            }
            if st == "OK" {
                if by_rep.len() < 3 || by_rep.values().any(|v| v.len() != 1) {
                    problems.push(format!("{name}: measured repeats with memmap_init_zone_device records: {by_rep:?} (>= 3 repeats, one record each)"));
                }
                let mut v: Vec<f64> = by_rep
                    .values()
                    .filter(|v| v.len() == 1)
                    .map(|v| v[0])
                    .collect();
                match (median(&mut v), num(kernel_us)) {
                    (Some(m), Some(k)) if close(m, k) => {}
                    (m, k) => problems.push(format!(
                        "{name}: kernel_us {k:?}, median of the raw trace {m:?}"
                    )),
                }
            }
        } else if st == "OK" {
            problems.push(format!("{name}: {raw}/kernel.trace unreadable"));
        }

        // replay_us: median of the run file's init phases
        let run = dir.join(&raw).join("replay.run.json.gz");
        if st == "OK" {
            let v: Option<serde_json::Value> = std::fs::File::open(&run)
                .ok()
                .and_then(|f| serde_json::from_reader(GzDecoder::new(f)).ok());
            let Some(v) = v else {
                problems.push(format!("{name}: {} unreadable", run.display()));
                continue;
            };
            if v["config"]["params"]["threads"].as_u64() != Some(1) {
                problems.push(format!(
                    "{name}: replay ran with {} init threads, 1 expected",
                    v["config"]["params"]["threads"]
                ));
            }
            let ns = v["layout"][0]["name"].as_str().unwrap_or("").to_string();
            if v["layout"][0]["struct_pages_written"].as_u64() != pages.parse().ok() {
                problems.push(format!(
                    "{name}: run file layout struct_pages_written {} != pages {pages}",
                    v["layout"][0]["struct_pages_written"]
                ));
            }
            let reps = v["repeats"].as_array().cloned().unwrap_or_default();
            let mut inits: Vec<f64> = Vec::new();
            for rp in &reps {
                let ph: Vec<f64> = rp["phases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["name"] == "init" && p["namespace"] == ns.as_str())
                    .filter_map(|p| {
                        Some((p["end_ns"].as_u64()? - p["start_ns"].as_u64()?) as f64 / 1000.0)
                    })
                    .collect();
                if ph.len() == 1 {
                    inits.push(ph[0]);
                } else {
                    problems.push(format!(
                        "{name}: replay repeat {} has {} init phases for {ns}",
                        rp["index"],
                        ph.len()
                    ));
                }
            }
            if inits.len() < 3 {
                problems.push(format!(
                    "{name}: {} replay repeats, at least 3 expected",
                    inits.len()
                ));
            }
            match (median(&mut inits), num(replay_us)) {
                (Some(m), Some(k)) if close(m, k) => {}
                (m, k) => problems.push(format!(
                    "{name}: replay_us {k:?}, median of the run file {m:?}"
                )),
            }
        }
    }
    if ok_rows < 12 {
        problems.push(format!(
            "only {ok_rows} configurations measured (OK); at least 12 expected"
        ));
    }
    for c in detail.keys() {
        problems.push(format!("kernel_detail.csv: {c} is not in summary.csv"));
    }
    problems
}
