//! Chrome trace-event JSON of traces (Perfetto UI, chrome://tracing): one process per
//! trace; one track per kernel task (pid) with function_graph spans and memmap-init pfn
//! ranges as "X" (or "i" without a duration), DAX faults as "X"/"i", tracepoints and
//! kprobes as "i"; tracks for marks, uevents and the kernel log; a "C" counter of pages
//! initialised per function. Times are the traced host's CLOCK_MONOTONIC.
//! Format: `docs/parquet.md` ("Chrome trace-event JSON").

use crate::input::file_name;
use crate::input::TraceInput;
use memmap_model::chrome::ChromeTrace;
use memmap_model::chrome_args;
use memmap_model::trace::{Trace, TraceEvent};
use std::collections::{BTreeMap, BTreeSet};

/// Synthetic tracks of a trace's process.
pub const TID_MARKS: u32 = 0x7fff_ff00;
pub const TID_UEVENTS: u32 = 0x7fff_ff01;
pub const TID_KERNEL_LOG: u32 = 0x7fff_ff02;

/// Functions whose memmap-init events count towards the "pages initialised" counters.
const INIT_COUNTER_FUNCS: &[&str] = &[
    "memmap_init_zone_device",
    "memmap_init_range",
    "move_pfn_range_to_zone",
    "mhp_init_memmap_on_memory",
    "online_pages",
];

/// The Chrome trace of `traces`.
pub fn chrome_trace(traces: &[TraceInput]) -> ChromeTrace {
    let mut ct = ChromeTrace::new();
    ct.other_data
        .insert("tool".into(), env!("CARGO_PKG_VERSION").into());
    ct.other_data.insert(
        "source".into(),
        "memmap-export --chrome-trace: one process per trace; times are the traced host's CLOCK_MONOTONIC"
            .into(),
    );
    for (n, t) in traces.iter().enumerate() {
        process(&mut ct, n as u32 + 1, t);
    }
    ct
}

/// The tracks of one trace's process, as they are first used.
struct Process {
    pid: u32,
    /// Kernel tasks (pids) with an event; named after all events.
    tasks: BTreeSet<u32>,
    marks: bool,
    uevents: bool,
    kernel_log: bool,
    /// (time, function, pages) of the memmap-init calls that feed the counters.
    init: Vec<(u64, String, u64)>,
}

impl Process {
    /// Name a synthetic track at its first event.
    fn synthetic(ct: &mut ChromeTrace, pid: u32, tid: u32, name: &str, used: &mut bool) {
        if !*used {
            ct.thread_name(pid, tid, name);
            ct.thread_sort_index(pid, tid, -1);
            *used = true;
        }
    }
}

fn process(ct: &mut ChromeTrace, pid: u32, input: &TraceInput) {
    let t = &input.trace;
    ct.process_name(
        pid,
        &format!(
            "{} ({}, {})",
            file_name(&input.path),
            t.header.kernel_release,
            t.header.source
        ),
    );
    ct.process_sort_index(pid, i64::from(pid));
    let mut p = Process {
        pid,
        tasks: BTreeSet::new(),
        marks: false,
        uevents: false,
        kernel_log: false,
        init: Vec::new(),
    };
    for e in &t.events {
        if !task_event(ct, &mut p, e) {
            synthetic_event(ct, &mut p, e);
        }
    }
    let task_of = task_names(t);
    for &tid in &p.tasks {
        let label = match task_of.get(&tid) {
            Some(task) => format!("{task} ({tid})"),
            None => format!("pid {tid}"),
        };
        ct.thread_name(pid, tid, &label);
    }
    init_counter(ct, pid, &mut p.init);
}

/// Task names per pid from every event that has one (DAX faults have none).
fn task_names(t: &Trace) -> BTreeMap<u32, String> {
    let mut task_of: BTreeMap<u32, String> = BTreeMap::new();
    for e in &t.events {
        if let TraceEvent::FunctionSpan { task, pid, .. }
        | TraceEvent::MemmapInit { task, pid, .. }
        | TraceEvent::Tracepoint { task, pid, .. }
        | TraceEvent::Kprobe { task, pid, .. } = e
        {
            if !task.is_empty() {
                task_of.entry(*pid).or_insert_with(|| task.clone());
            }
        }
    }
    task_of
}

/// An event on a kernel task's track; false if `e` is not one.
fn task_event(ct: &mut ChromeTrace, p: &mut Process, e: &TraceEvent) -> bool {
    let pid = p.pid;
    match e {
        TraceEvent::FunctionSpan {
            t_ns,
            dur_ns,
            func,
            pid: tp,
            cpu,
            ..
        } => {
            p.tasks.insert(*tp);
            ct.complete(
                pid,
                *tp,
                "function_graph",
                func,
                *t_ns,
                *dur_ns,
                chrome_args![("cpu", *cpu)],
            );
        }
        TraceEvent::MemmapInit {
            t_ns,
            dur_ns,
            func,
            start_pfn,
            nr_pages,
            pid: tp,
            cpu,
            ..
        } => {
            p.tasks.insert(*tp);
            let args = chrome_args![
                ("start_pfn", *start_pfn),
                ("nr_pages", *nr_pages),
                ("end_pfn", start_pfn + nr_pages),
                ("cpu", *cpu)
            ];
            let name = format!("{func} pfn {start_pfn:#x}+{nr_pages}");
            match dur_ns {
                Some(d) => ct.complete(pid, *tp, "memmap-init", &name, *t_ns, *d, args),
                None => ct.instant(pid, *tp, "memmap-init", &name, *t_ns, args),
            }
            if INIT_COUNTER_FUNCS.contains(&func.as_str()) {
                p.init
                    .push((t_ns + dur_ns.unwrap_or(0), func.clone(), *nr_pages));
            }
        }
        TraceEvent::DaxFault {
            t_ns,
            dur_ns,
            pmd,
            pid: tp,
            cpu,
            address,
            pgoff,
            result,
        } => {
            p.tasks.insert(*tp);
            let name = if *pmd {
                "dax_pmd_fault"
            } else {
                "dax_pte_fault"
            };
            let args = chrome_args![
                ("address", format!("{address:#x}")),
                ("pgoff", *pgoff),
                ("result", result.as_str()),
                ("cpu", *cpu)
            ];
            match dur_ns {
                Some(d) => ct.complete(pid, *tp, "dax-fault", name, *t_ns, *d, args),
                None => ct.instant(pid, *tp, "dax-fault", name, *t_ns, args),
            }
        }
        TraceEvent::Tracepoint {
            t_ns,
            name,
            pid: tp,
            cpu,
            fields,
            ..
        } => {
            p.tasks.insert(*tp);
            let mut args: serde_json::Map<String, serde_json::Value> =
                fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            args.insert("cpu".into(), (*cpu).into());
            ct.instant(pid, *tp, "tracepoint", name, *t_ns, args);
        }
        TraceEvent::Kprobe {
            t_ns,
            probe,
            func,
            ret,
            pid: tp,
            cpu,
            args,
            ..
        } => {
            p.tasks.insert(*tp);
            let mut a: serde_json::Map<String, serde_json::Value> = args
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().into()))
                .collect();
            a.insert("func".into(), func.as_str().into());
            a.insert("ret".into(), (*ret).into());
            a.insert("cpu".into(), (*cpu).into());
            ct.instant(pid, *tp, "kprobe", probe, *t_ns, a);
        }
        _ => return false,
    }
    true
}

/// An event on the marks, uevents or kernel log track; other events are not drawn.
fn synthetic_event(ct: &mut ChromeTrace, p: &mut Process, e: &TraceEvent) {
    let pid = p.pid;
    match e {
        TraceEvent::Mark { t_ns, text } => {
            Process::synthetic(ct, pid, TID_MARKS, "marks", &mut p.marks);
            ct.instant(pid, TID_MARKS, "mark", text, *t_ns, serde_json::Map::new());
            ct.process_instant(pid, "mark", text, *t_ns, serde_json::Map::new());
        }
        TraceEvent::Uevent {
            t_ns,
            action,
            devpath,
            subsystem,
        } => {
            Process::synthetic(ct, pid, TID_UEVENTS, "uevents", &mut p.uevents);
            ct.instant(
                pid,
                TID_UEVENTS,
                "uevent",
                &format!("{action} {subsystem}"),
                *t_ns,
                chrome_args![("devpath", devpath.as_str())],
            );
        }
        TraceEvent::KernelLog { t_ns, level, text } => {
            Process::synthetic(ct, pid, TID_KERNEL_LOG, "kernel log", &mut p.kernel_log);
            let short: String = text.chars().take(80).collect();
            ct.instant(
                pid,
                TID_KERNEL_LOG,
                "kernel-log",
                &short,
                *t_ns,
                chrome_args![("level", u32::from(*level)), ("text", text.as_str())],
            );
        }
        TraceEvent::Initialised {
            t_ns,
            device,
            pages,
            ms,
        } => {
            Process::synthetic(ct, pid, TID_KERNEL_LOG, "kernel log", &mut p.kernel_log);
            ct.instant(
                pid,
                TID_KERNEL_LOG,
                "kernel-log",
                &format!("{device} initialised {pages} pages in {ms} ms"),
                *t_ns,
                chrome_args![("device", device.as_str()), ("pages", *pages), ("ms", *ms)],
            );
        }
        _ => {}
    }
}

/// Cumulative pages initialised, one series per function (they overlap: a ZONE_DEVICE
/// range goes through move_pfn_range_to_zone and memmap_init_zone_device, so the series
/// are not summed).
fn init_counter(ct: &mut ChromeTrace, pid: u32, init_events: &mut [(u64, String, u64)]) {
    init_events.sort();
    let mut acc: BTreeMap<String, u64> = BTreeMap::new();
    if let Some((t0, _, _)) = init_events.first() {
        for e in init_events.iter() {
            acc.insert(e.1.clone(), 0);
        }
        let zero: Vec<(&str, f64)> = acc.keys().map(|k| (k.as_str(), 0.0)).collect();
        ct.counter(pid, "pages initialised", t0.saturating_sub(1), &zero);
    }
    for (tn, func, pages) in init_events.iter() {
        *acc.entry(func.clone()).or_default() += pages;
        let series: Vec<(&str, f64)> = acc.iter().map(|(k, v)| (k.as_str(), *v as f64)).collect();
        ct.counter(pid, "pages initialised", *tn, &series);
    }
}
