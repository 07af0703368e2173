//! Chrome trace-event JSON of run files (Perfetto UI, chrome://tracing): one process
//! per (run, repeat), one track per replay thread (spans as "X", sampled faults as
//! "i"), one track of phases per namespace, "C" counters of pages done per thread and in
//! total. Every repeat's clock starts at 0, so repeats line up under each other.
//! Format: `docs/parquet.md` ("Chrome trace-event JSON").

use crate::input::file_name;
use memmap_model::chrome::ChromeTrace;
use memmap_model::chrome_args;
use memmap_model::run::{Repeat, RunFile, ThreadRole};
use std::path::PathBuf;

/// Points of the `pages_done total` counter per repeat, at most (plus the last).
pub const TOTAL_COUNTER_POINTS: u64 = 2000;

/// Track (tid) of the phases of namespace `i` in a repeat's process.
pub const PHASE_TID_BASE: u32 = 100_000;

/// Track of replay thread `id`.
fn tid_of(id: u32) -> u32 {
    id + 1
}

/// The Chrome trace of `runs` (file path, run).
pub fn chrome_trace(runs: &[(PathBuf, RunFile)]) -> ChromeTrace {
    let mut t = ChromeTrace::new();
    t.other_data
        .insert("tool".into(), env!("CARGO_PKG_VERSION").into());
    t.other_data.insert(
        "source".into(),
        "memmap-export --chrome-trace: one process per (run, repeat); times from the repeat's start"
            .into(),
    );
    let mut pid = 0u32;
    for (path, r) in runs {
        for rep in &r.repeats {
            pid += 1;
            t.process_name(
                pid,
                &format!(
                    "{} · {} · repeat {} ({}, {})",
                    r.config.strategy,
                    r.scenario.name,
                    rep.index,
                    r.host.hostname,
                    file_name(path)
                ),
            );
            t.process_sort_index(pid, i64::from(pid));
            threads(&mut t, pid, rep);
            total_pages_done(&mut t, pid, rep);
            phases(&mut t, pid, rep);
            for s in &rep.stalls.samples {
                t.instant(
                    pid,
                    tid_of(s.thread),
                    "fault",
                    "fault",
                    s.t_ns,
                    chrome_args![("pfn", s.pfn), ("stall_ns", s.stall_ns)],
                );
            }
        }
    }
    t
}

/// One track per replay thread (probe, then init, then fault threads) with its spans,
/// and its `pages_done <thread>` counter.
fn threads(t: &mut ChromeTrace, pid: u32, rep: &Repeat) {
    for th in &rep.threads {
        let tid = tid_of(th.id);
        t.thread_name(pid, tid, &th.name);
        let order = match th.role {
            ThreadRole::Probe => 0,
            ThreadRole::Init => 1,
            ThreadRole::Fault => 2,
        };
        t.thread_sort_index(pid, tid, order * 10_000 + i64::from(th.id));
        for sp in &th.spans {
            t.complete(
                pid,
                tid,
                "span",
                sp.kind.as_str(),
                sp.start_ns,
                sp.end_ns.saturating_sub(sp.start_ns),
                chrome_args![("start_pfn", sp.start_pfn), ("pages", sp.pages)],
            );
        }
        for &(tn, pages) in &th.progress {
            t.counter(
                pid,
                &format!("pages_done {}", th.name),
                tn,
                &[("pages", pages as f64)],
            );
        }
    }
}

/// Total pages done: running sum of every thread's latest progress sample, at most
/// [`TOTAL_COUNTER_POINTS`] points (and always the last one).
fn total_pages_done(t: &mut ChromeTrace, pid: u32, rep: &Repeat) {
    let mut samples: Vec<(u64, usize, u64)> = rep
        .threads
        .iter()
        .enumerate()
        .flat_map(|(i, th)| th.progress.iter().map(move |&(tn, p)| (tn, i, p)))
        .collect();
    samples.sort_unstable();
    let span = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0,
    };
    let step = span / TOTAL_COUNTER_POINTS;
    let mut last = vec![0u64; rep.threads.len()];
    let mut total = 0u64;
    let mut emitted: Option<u64> = None;
    for (k, &(tn, i, p)) in samples.iter().enumerate() {
        total = total - last[i] + p; // total >= last[i]: it is the sum of the lasts
        last[i] = p;
        let is_last = k + 1 == samples.len();
        let next_same_t = !is_last && samples[k + 1].0 == tn;
        let due = emitted.is_none_or(|e| tn >= e + step.max(1));
        if is_last || (!next_same_t && due) {
            t.counter(pid, "pages_done total", tn, &[("pages", total as f64)]);
            emitted = Some(tn);
        }
    }
}

/// One track `phases NS` per namespace, in order of first appearance, above the threads.
fn phases(t: &mut ChromeTrace, pid: u32, rep: &Repeat) {
    let mut ns_index: Vec<&str> = Vec::new();
    for ph in &rep.phases {
        let i = match ns_index.iter().position(|n| *n == ph.namespace) {
            Some(i) => i,
            None => {
                ns_index.push(&ph.namespace);
                let i = ns_index.len() - 1;
                let tid = PHASE_TID_BASE + i as u32;
                t.thread_name(pid, tid, &format!("phases {}", ph.namespace));
                t.thread_sort_index(pid, tid, -1);
                i
            }
        };
        t.complete(
            pid,
            PHASE_TID_BASE + i as u32,
            "phase",
            &ph.name,
            ph.start_ns,
            ph.end_ns.saturating_sub(ph.start_ns),
            chrome_args![("namespace", ph.namespace.as_str())],
        );
    }
}
