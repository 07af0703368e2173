//! `memmap-collect info`: what a trace holds — host, layout, counts by event kind,
//! namespaces with their data pages (by the layout model), init durations found.

use memmap_model::kernel_recorded::{self, fmt_opt, KernelRecorded};
use memmap_model::layout::{format_size, namespace_layout, LayoutParams, NamespaceSpec};
use memmap_model::trace::{Trace, TraceEvent};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct Info {
    pub source: String,
    pub kernel_release: String,
    /// Empty when the trace does not say (imports, older collectors).
    pub hostname: String,
    pub cmdline: String,
    pub cpus: u32,
    pub numa_nodes: u32,
    pub notes: Vec<String>,
    pub events: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub namespaces: Vec<NamespaceInfo>,
    pub memory_blocks: BTreeMap<String, usize>,
    /// Per function: calls and duration statistics (ms), from function spans and kprobe pairs.
    pub durations: Vec<DurationInfo>,
    pub initialised: Vec<String>,
    /// The trace's memmap init, each kernel call counted once
    /// (`memmap_model::kernel_recorded`).
    pub memmap_init: MemmapInitInfo,
    /// Per namespace / hot-plugged range: the kernel's recorded durations.
    pub kernel_recorded: Vec<KernelRecorded>,
    pub dax_faults: Option<FaultInfo>,
    pub lost: BTreeMap<String, u64>,
    pub unavailable: Vec<String>,
    pub import_warnings: usize,
    pub reader_warnings: Vec<String>,
    /// Seconds between the first and last timed event.
    pub span_s: f64,
}

#[derive(Debug, Serialize)]
pub struct NamespaceInfo {
    pub name: String,
    pub mode: String,
    pub map: String,
    pub size_bytes: u64,
    pub align_bytes: u64,
    pub start_phys: u64,
    /// From the layout model: pages the kernel initialises and data pages.
    pub range_start_pfn: Option<u64>,
    pub range_pages: Option<u64>,
    pub data_pages: Option<u64>,
    pub model_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DurationInfo {
    pub func: String,
    pub source: String,
    pub calls: usize,
    pub total_ms: f64,
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
    pub tasks: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct MemmapInitInfo {
    /// Union of the pfn ranges the init calls were given.
    pub pages: u64,
    /// Union per thread of the init calls' intervals, summed over threads.
    pub init_ms: f64,
    /// The same for arch_add_memory (vmemmap populate).
    pub populate_ms: f64,
    pub init_calls: usize,
}

#[derive(Debug, Serialize)]
pub struct FaultInfo {
    pub count: usize,
    pub pmd: usize,
    pub by_result: BTreeMap<String, usize>,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A recorded namespace with the layout the 6.1 model gives it (or why it gives none).
fn namespace_info(s: NamespaceSpec) -> NamespaceInfo {
    let (rs, rp, dp, err) = match namespace_layout(&s, &LayoutParams::linux_6_1()) {
        Ok(l) => (
            Some(l.range_start_pfn),
            Some(l.range_pages),
            Some(l.data_pages),
            None,
        ),
        Err(e) => (None, None, None, Some(e.to_string())),
    };
    NamespaceInfo {
        mode: s.mode.to_string(),
        map: s.map.to_string(),
        size_bytes: s.size_bytes,
        align_bytes: s.align_bytes,
        start_phys: s.start_phys,
        name: s.name,
        range_start_pfn: rs,
        range_pages: rp,
        data_pages: dp,
        model_error: err,
    }
}

pub fn summarize(t: &Trace) -> Info {
    let mut by_kind = BTreeMap::new();
    let mut durs: BTreeMap<(String, String), (Vec<f64>, std::collections::BTreeSet<String>)> =
        BTreeMap::new();
    let mut namespaces = Vec::new();
    let mut blocks = BTreeMap::new();
    let mut initialised = Vec::new();
    let mut faults = Vec::new();
    let mut fault_pmd = 0;
    let mut fault_res = BTreeMap::new();
    let mut lost = BTreeMap::new();
    let mut unavailable = Vec::new();
    let mut import_warnings = 0;
    let (mut t0, mut t1) = (u64::MAX, 0u64);
    let mut seen_ns = std::collections::BTreeSet::new();
    for e in &t.events {
        *by_kind.entry(e.kind().to_string()).or_insert(0) += 1;
        if let Some(ts) = e.t_ns() {
            t0 = t0.min(ts);
            t1 = t1.max(ts);
        }
        match e {
            TraceEvent::FunctionSpan {
                func, dur_ns, task, ..
            } => {
                let d = durs
                    .entry((func.clone(), "function_graph".into()))
                    .or_default();
                d.0.push(*dur_ns as f64 / 1e6);
                d.1.insert(task.clone());
            }
            TraceEvent::MemmapInit {
                func,
                dur_ns: Some(dn),
                task,
                ..
            } => {
                let d = durs.entry((func.clone(), "kprobe".into())).or_default();
                d.0.push(*dn as f64 / 1e6);
                d.1.insert(task.clone());
            }
            TraceEvent::Initialised {
                device, pages, ms, ..
            } => initialised.push(format!("{device}: {pages} pages in {ms} ms")),
            TraceEvent::DaxFault {
                dur_ns,
                pmd,
                result,
                ..
            } => {
                if let Some(d) = dur_ns {
                    faults.push(*d as f64 / 1e3);
                }
                if *pmd {
                    fault_pmd += 1;
                }
                *fault_res.entry(result.clone()).or_insert(0) += 1;
            }
            TraceEvent::MemoryBlock { state, .. } => {
                *blocks.entry(state.clone()).or_insert(0) += 1;
            }
            TraceEvent::Lost { source, count } => *lost.entry(source.clone()).or_insert(0) += count,
            TraceEvent::Unavailable { source, reason } => {
                unavailable.push(format!("{source}: {reason}"))
            }
            TraceEvent::ImportWarning { .. } => import_warnings += 1,
            TraceEvent::Namespace { .. } => {
                let Some(s) = e.namespace_spec() else {
                    continue;
                };
                // A recording writes the namespace again if it changed; show each once.
                if !seen_ns.insert((
                    s.name.clone(),
                    s.size_bytes,
                    s.start_phys,
                    s.mode as u8,
                    s.map as u8,
                )) {
                    continue;
                }
                namespaces.push(namespace_info(s));
            }
            _ => {}
        }
    }
    faults.sort_by(f64::total_cmp);
    let dax_faults = (!fault_res.is_empty()).then(|| FaultInfo {
        count: fault_res.values().sum(),
        pmd: fault_pmd,
        by_result: fault_res,
        p50_us: pct(&faults, 0.5),
        p99_us: pct(&faults, 0.99),
        max_us: faults.last().copied().unwrap_or(0.0),
    });
    let durations = durs
        .into_iter()
        .map(|((func, source), (mut v, tasks))| {
            v.sort_by(f64::total_cmp);
            DurationInfo {
                func,
                source,
                calls: v.len(),
                total_ms: v.iter().sum(),
                min_ms: v[0],
                median_ms: pct(&v, 0.5),
                max_ms: v[v.len() - 1],
                tasks: tasks.into_iter().collect(),
            }
        })
        .collect();
    let total = kernel_recorded::trace_init_total(&t.events);
    let kernel_recorded = t
        .to_scenario("info")
        .and_then(|s| s.layouts("info", 1.0).ok())
        .map(|l| kernel_recorded::attribute(&t.events, &l))
        .unwrap_or_default();
    Info {
        source: t.header.source.clone(),
        kernel_release: t.header.kernel_release.clone(),
        hostname: t.header.hostname.clone(),
        cmdline: t.header.cmdline.clone(),
        cpus: t.header.cpus,
        numa_nodes: t.header.numa_nodes,
        notes: t.header.notes.clone(),
        events: t.events.len(),
        by_kind,
        namespaces,
        memory_blocks: blocks,
        durations,
        initialised,
        memmap_init: MemmapInitInfo {
            pages: total.pages,
            init_ms: total.init_ns as f64 / 1e6,
            populate_ms: total.populate_ns as f64 / 1e6,
            init_calls: total.init_calls,
        },
        kernel_recorded,
        dax_faults,
        lost,
        unavailable,
        import_warnings,
        reader_warnings: t.warnings.clone(),
        span_s: if t1 >= t0 && t0 != u64::MAX {
            (t1 - t0) as f64 / 1e9
        } else {
            0.0
        },
    }
}

pub fn print_human(i: &Info) {
    println!(
        "trace: {}{} · kernel {} · {} CPUs · {} NUMA node(s) · {} events over {:.3} s",
        i.source,
        if i.hostname.is_empty() {
            String::new()
        } else {
            format!(" on {}", i.hostname)
        },
        i.kernel_release,
        i.cpus,
        i.numa_nodes,
        i.events,
        i.span_s
    );
    for n in &i.notes {
        println!("  note: {n}");
    }
    println!("events by kind:");
    for (k, n) in &i.by_kind {
        println!("  {k:<16} {n}");
    }
    if !i.namespaces.is_empty() {
        println!("namespaces (pages from the layout model, Linux 6.1 rules):");
        for n in &i.namespaces {
            print!(
                "  {:<14} {:<6} map={:<3} {:>10} align {:<6} at {:#x}",
                n.name,
                n.mode,
                n.map,
                format_size(n.size_bytes),
                format_size(n.align_bytes),
                n.start_phys
            );
            match (
                &n.model_error,
                n.range_start_pfn,
                n.range_pages,
                n.data_pages,
            ) {
                (None, Some(s), Some(r), Some(d)) => {
                    println!("  memmap_init pfn {s:#x} +{r}, data pages {d}")
                }
                (Some(e), ..) => println!("  (layout model: {e})"),
                _ => println!(),
            }
        }
    }
    if !i.memory_blocks.is_empty() {
        let b: Vec<String> = i
            .memory_blocks
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        println!("memory blocks: {}", b.join(", "));
    }
    if !i.durations.is_empty() {
        println!("durations (ms):");
        println!(
            "  {:<28} {:<14} {:>5} {:>10} {:>9} {:>9} {:>9}  tasks",
            "function", "source", "calls", "total", "min", "median", "max"
        );
        for d in &i.durations {
            println!(
                "  {:<28} {:<14} {:>5} {:>10.3} {:>9.3} {:>9.3} {:>9.3}  {}",
                d.func,
                d.source,
                d.calls,
                d.total_ms,
                d.min_ms,
                d.median_ms,
                d.max_ms,
                d.tasks.join(",")
            );
        }
    }
    for l in &i.initialised {
        println!("kernel log: {l}");
    }
    if i.memmap_init.init_calls > 0 {
        println!(
            "memmap init (each call once, nested calls not added): {} pages in {:.3} ms over {} call(s); vmemmap populate {:.3} ms",
            i.memmap_init.pages, i.memmap_init.init_ms, i.memmap_init.init_calls, i.memmap_init.populate_ms
        );
    }
    print_kernel_recorded(&i.kernel_recorded);
    if let Some(f) = &i.dax_faults {
        let r: Vec<String> = f
            .by_result
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!(
            "dax faults: {} ({} pmd) · p50 {:.1} µs · p99 {:.1} µs · max {:.1} µs · results {}",
            f.count,
            f.pmd,
            f.p50_us,
            f.p99_us,
            f.max_us,
            r.join(" ")
        );
    }
    for (s, n) in &i.lost {
        println!("LOST: {n} from {s}");
    }
    for u in &i.unavailable {
        println!("unavailable: {u}");
    }
    if i.import_warnings > 0 {
        println!(
            "{} import warnings (lines that could not be read; see the import-warning events)",
            i.import_warnings
        );
    }
    for w in &i.reader_warnings {
        println!("warning: {w}");
    }
}

/// The recorded durations per namespace / hot-plugged range.
fn print_kernel_recorded(k: &[KernelRecorded]) {
    if k.iter().all(|k| k.sources.is_empty()) {
        return;
    }
    println!("kernel recorded per range (ms; init = union of the init calls per thread):");
    for r in k {
        println!(
            "  {:<14} init {:>10}  populate {:>9}  range pages {}",
            r.name,
            fmt_opt(r.init_ms, 3),
            fmt_opt(r.populate_ms, 3),
            r.init_range_pages
                .map_or("—".to_string(), |p| p.to_string())
        );
        for s in &r.sources {
            println!(
                "    {:<26} {:>5} call(s){:<12} {:>12.3} ms  pages {:>10}  ({})",
                s.source,
                s.calls,
                if s.nested_calls > 0 {
                    format!(", {} nested", s.nested_calls)
                } else {
                    String::new()
                },
                s.total_us / 1e3,
                s.pages.map_or("—".to_string(), |p| p.to_string()),
                s.from.join("+")
            );
        }
    }
}
