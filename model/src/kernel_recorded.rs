//! What the traced kernel itself recorded about memmap init: the spans of its memmap
//! functions (kprobe pairs -> `memmap-init` events, function_graph -> `function-span`
//! events) and the `initialised N pages in M ms` kernel log line, counted once.
//!
//! One rule for every reader (the viewer's Overview, `memmap-collect info`, the run
//! file's `kernel_recorded`):
//!
//! * the same call seen by two sources (a kprobe pair and function_graph: same
//!   function, same pid, overlapping times) is one call;
//! * time is the union of a thread's call intervals, so a call inside another call of
//!   the same thread (move_pfn_range_to_zone inside online_pages) adds no time;
//! * pages are the union of the pfn ranges the init calls were given, so a range that
//!   two functions were called on (move_pfn_range_to_zone, then
//!   memmap_init_zone_device, both over the whole pgmap range) counts once.
//!
//! Kernel rules (Linux 6.1):
//! * mm/memremap.c `pagemap_range()` runs, on the probing thread, `arch_add_memory()`
//!   (adds the sections and populates their vmemmap: no struct page is written), then
//!   `move_pfn_range_to_zone()` (mm/memory_hotplug.c), whose `memmap_init_range()`
//!   (mm/page_alloc.c) initialises, for ZONE_DEVICE, only the altmap's own pfns
//!   (`base_pfn + reserve .. base_pfn + vmem_altmap_offset()`, nothing without an
//!   altmap), then, after dropping the hotplug lock, `memmap_init_zone_device()`
//!   (mm/page_alloc.c), which initialises the pfns after the altmap and prints
//!   `pr_debug("%s initialised %lu pages in %ums\n", __func__, ...)`. Both init calls
//!   are given the whole range as arguments, and neither is nested in the other.
//! * mm/memory_hotplug.c `online_pages()` calls `move_pfn_range_to_zone()` for the block;
//!   `mhp_init_memmap_on_memory()` calls it for the vmemmap pages of memmap_on_memory.

use crate::layout::RangeLayout;
use crate::run::RunFile;
use crate::trace::TraceEvent;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a memmap function does for the struct pages of its range (Linux 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallRole {
    /// Maps the vmemmap (arch_add_memory): no struct page written.
    Populate,
    /// Writes struct pages.
    Init,
}

/// The memmap functions whose spans are the kernel's time for a range, with their role.
pub const MEMMAP_FUNCTIONS: &[(&str, CallRole)] = &[
    ("arch_add_memory", CallRole::Populate),
    ("move_pfn_range_to_zone", CallRole::Init),
    ("memmap_init_range", CallRole::Init),
    ("memmap_init_zone_device", CallRole::Init),
    ("online_pages", CallRole::Init),
    ("mhp_init_memmap_on_memory", CallRole::Init),
];

/// The role of a memmap function, `None` for any other function.
pub fn role_of(func: &str) -> Option<CallRole> {
    MEMMAP_FUNCTIONS
        .iter()
        .find(|(f, _)| *f == func)
        .map(|&(_, r)| r)
}

/// One kernel call of a memmap function, its sources merged.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCall {
    pub func: String,
    pub role: CallRole,
    pub pid: u32,
    pub task: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// (start pfn, pages) from the kprobe arguments; `None` from function_graph alone.
    pub range: Option<(u64, u64)>,
    pub kprobe: bool,
    pub function_graph: bool,
    /// Inside a call of another memmap function of the same thread.
    pub nested: bool,
}

impl KernelCall {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        start <= self.end_ns && self.start_ns <= end
    }
    fn contains(&self, o: &KernelCall) -> bool {
        self.start_ns <= o.start_ns && o.end_ns <= self.end_ns
    }
}

/// The calls of memmap functions in `events`, each once, sorted by start.
pub fn kernel_calls(events: &[TraceEvent]) -> Vec<KernelCall> {
    let mut raw: Vec<KernelCall> = events
        .iter()
        .filter_map(|e| {
            let (func, t_ns, dur, pid, task, range, kprobe) = match e {
                TraceEvent::MemmapInit {
                    t_ns,
                    dur_ns,
                    func,
                    start_pfn,
                    nr_pages,
                    task,
                    pid,
                    ..
                } => (
                    func,
                    *t_ns,
                    dur_ns.unwrap_or(0),
                    *pid,
                    task,
                    Some((*start_pfn, *nr_pages)),
                    true,
                ),
                TraceEvent::FunctionSpan {
                    t_ns,
                    dur_ns,
                    func,
                    task,
                    pid,
                    ..
                } => (func, *t_ns, *dur_ns, *pid, task, None, false),
                _ => return None,
            };
            Some(KernelCall {
                func: func.clone(),
                role: role_of(func)?,
                pid,
                task: task.clone(),
                start_ns: t_ns,
                end_ns: t_ns.saturating_add(dur),
                range,
                kprobe,
                function_graph: !kprobe,
                nested: false,
            })
        })
        .collect();
    raw.sort_by_key(|c| (c.pid, c.start_ns));
    // The same call from the other source: same thread and function, overlapping times.
    let mut calls: Vec<KernelCall> = Vec::with_capacity(raw.len());
    let mut last: HashMap<(u32, String), usize> = HashMap::new();
    for c in raw {
        let key = (c.pid, c.func.clone());
        if let Some(&i) = last.get(&key) {
            let p = &mut calls[i];
            let other_source = (c.kprobe && !p.kprobe) || (c.function_graph && !p.function_graph);
            if other_source && p.overlaps(c.start_ns, c.end_ns) {
                p.start_ns = p.start_ns.min(c.start_ns);
                p.end_ns = p.end_ns.max(c.end_ns);
                p.range = p.range.or(c.range);
                p.kprobe |= c.kprobe;
                p.function_graph |= c.function_graph;
                if p.task.len() < c.task.len() {
                    p.task = c.task; // "kworker/u4:1" (kprobe) over "kworker" (function_graph)
                }
                continue;
            }
        }
        last.insert(key, calls.len());
        calls.push(c);
    }
    // Nesting: a call inside a call of another memmap function of the same thread.
    for i in 0..calls.len() {
        calls[i].nested = calls.iter().enumerate().any(|(j, o)| {
            j != i
                && o.pid == calls[i].pid
                && o.func != calls[i].func
                && o.contains(&calls[i])
                && !(calls[i].contains(o) && j > i)
        });
    }
    calls.sort_by_key(|c| (c.start_ns, c.pid));
    calls
}

/// Sum over threads of the union of each thread's intervals: nested calls and
/// duplicates add nothing.
pub fn busy_ns<'a>(calls: impl IntoIterator<Item = &'a KernelCall>) -> u64 {
    let mut by_pid: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    for c in calls {
        by_pid
            .entry(c.pid)
            .or_default()
            .push((c.start_ns, c.end_ns));
    }
    by_pid
        .into_values()
        .map(|mut v| {
            v.sort_unstable();
            let mut total = 0u64;
            let mut cur: Option<(u64, u64)> = None;
            for (s, e) in v {
                match &mut cur {
                    Some((_, ce)) if s <= *ce => *ce = (*ce).max(e),
                    _ => {
                        if let Some((cs, ce)) = cur {
                            total = total.saturating_add(ce - cs);
                        }
                        cur = Some((s, e));
                    }
                }
            }
            total.saturating_add(cur.map_or(0, |(s, e)| e - s))
        })
        .fold(0, u64::saturating_add)
}

/// Pages of pfn ranges not yet in `covered` (sorted, disjoint), adding them.
fn add_new_pages(covered: &mut Vec<(u64, u64)>, (start, pages): (u64, u64)) -> u64 {
    let end = start.saturating_add(pages);
    let mut new = 0;
    let mut at = start;
    for &(s, e) in covered.iter() {
        if e <= at || s >= end {
            continue;
        }
        new += s.saturating_sub(at);
        at = at.max(e);
    }
    new += end.saturating_sub(at);
    covered.push((start, end));
    covered.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(covered.len());
    for &(s, e) in covered.iter() {
        match merged.last_mut() {
            Some(m) if s <= m.1 => m.1 = m.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *covered = merged;
    new
}

/// A call's share of the recorded pages: the pages of its range no earlier init call
/// (by end time) covered.
#[derive(Clone, Debug, PartialEq)]
pub struct InitStep {
    pub end_ns: u64,
    /// "task-pid".
    pub thread: String,
    pub new_pages: u64,
}

/// The memmap init of a trace, counted once (see the module comment).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitTotal {
    /// Union of the pfn ranges of the init calls.
    pub pages: u64,
    /// Union per thread of the init calls' intervals, summed over threads.
    pub init_ns: u64,
    /// The same for the populate calls (arch_add_memory).
    pub populate_ns: u64,
    /// Init calls, each once (nested ones included).
    pub init_calls: usize,
    /// Init calls with a pfn range, by end time, with the pages each added.
    pub steps: Vec<InitStep>,
}

pub fn init_total(calls: &[KernelCall]) -> InitTotal {
    let init: Vec<&KernelCall> = calls.iter().filter(|c| c.role == CallRole::Init).collect();
    let mut ranged: Vec<&KernelCall> = init.iter().copied().filter(|c| c.range.is_some()).collect();
    ranged.sort_by_key(|c| c.end_ns);
    let mut covered = Vec::new();
    let steps: Vec<InitStep> = ranged
        .iter()
        .map(|c| InitStep {
            end_ns: c.end_ns,
            thread: format!("{}-{}", c.task, c.pid),
            new_pages: c.range.map_or(0, |r| add_new_pages(&mut covered, r)),
        })
        .collect();
    InitTotal {
        pages: steps.iter().map(|s| s.new_pages).sum(),
        init_ns: busy_ns(init.iter().copied()),
        populate_ns: busy_ns(calls.iter().filter(|c| c.role == CallRole::Populate)),
        init_calls: init.len(),
        steps,
    }
}

/// The memmap init of a trace's events (kernel calls counted once).
pub fn trace_init_total(events: &[TraceEvent]) -> InitTotal {
    init_total(&kernel_calls(events))
}

/// What the kernel recorded for one namespace / hot-added range, and the kernel time
/// predicted for it. In the run file as `kernel_recorded[]` (docs/run-format.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelRecorded {
    /// The layout range's name (`namespace0.0`, `hotplug0`).
    pub name: String,
    /// Struct-page init time: union per thread of the init calls of the range (see
    /// [`busy_ns`]), ms; `None` when the trace has no init call for the range.
    #[serde(default)]
    pub init_ms: Option<f64>,
    /// The same for the populate calls (arch_add_memory), ms.
    #[serde(default)]
    pub populate_ms: Option<f64>,
    /// Union of the pfn ranges the init calls were given.
    #[serde(default)]
    pub init_range_pages: Option<u64>,
    /// Per function (and `dmesg`): what was recorded.
    #[serde(default)]
    pub sources: Vec<RecordedSource>,
    /// The kernel time predicted for this range (filled by the predictor), ms, with
    /// its interval.
    #[serde(default)]
    pub predicted_kernel_ms: Option<f64>,
    #[serde(default)]
    pub predicted_kernel_low_ms: Option<f64>,
    #[serde(default)]
    pub predicted_kernel_high_ms: Option<f64>,
}

/// One source's record for a range: a memmap function's calls, or the kernel log line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedSource {
    /// Function name, or `dmesg` for the `initialised N pages in M ms` line.
    pub source: String,
    /// `init`, `populate`; `init` for dmesg.
    pub role: Option<CallRole>,
    /// Calls, each once (a kprobe pair and function_graph of one call are one);
    /// kernel log lines for dmesg.
    pub calls: u64,
    /// Of them, inside a call of another memmap function of the same thread.
    #[serde(default)]
    pub nested_calls: u64,
    /// Summed durations, µs (for dmesg: the printed ms × 1000).
    pub total_us: f64,
    /// Pages: the sum of the `nr_pages` arguments of calls with one (the range given,
    /// not the struct pages written), the printed count for dmesg; `None` when unknown.
    pub pages: Option<u64>,
    /// kprobe, function_graph, kernel-log.
    #[serde(default)]
    pub from: Vec<String>,
}

impl KernelRecorded {
    /// The recorded kernel time to compare with: the init spans, else the kernel log.
    pub fn kernel_ms(&self) -> Option<f64> {
        self.init_ms.or_else(|| {
            let d: Vec<&RecordedSource> = self
                .sources
                .iter()
                .filter(|s| s.source == "dmesg")
                .collect();
            (!d.is_empty()).then(|| d.iter().map(|s| s.total_us).sum::<f64>() / 1e3)
        })
    }
}

/// Pfns a range covers: its resource and its pgmap range.
fn span_of(l: &RangeLayout) -> (u64, u64) {
    (
        l.res_start_pfn.min(l.range_start_pfn),
        l.res_end_pfn().max(l.range_end_pfn()),
    )
}

/// Attribute the trace's memmap calls and `initialised` lines to the layout ranges
/// (one entry per range, in layout order). A call with a pfn range goes to the range
/// it overlaps; one without (function_graph alone) to the range of a call with a pfn
/// range that contains it on the same thread, else to the only range. A kernel-log
/// line goes to the range of the memmap_init_zone_device call it was printed during
/// (6.1 prints it at that function's end), else to the range its device names, else
/// to the only range.
pub fn attribute(events: &[TraceEvent], layouts: &[RangeLayout]) -> Vec<KernelRecorded> {
    let calls = kernel_calls(events);
    let by_range = |r: (u64, u64)| {
        layouts.iter().position(|l| {
            let (s, e) = span_of(l);
            r.0 < e && s < r.0.saturating_add(r.1.max(1))
        })
    };
    let only = (layouts.len() == 1).then_some(0);
    let owner: Vec<Option<usize>> = calls
        .iter()
        .map(|c| match c.range {
            Some(r) => by_range(r),
            None => calls
                .iter()
                .find(|o| o.pid == c.pid && o.range.is_some() && o.contains(c))
                .and_then(|o| o.range.and_then(by_range))
                .or(only),
        })
        .collect();
    let mut out = Vec::with_capacity(layouts.len());
    for (li, l) in layouts.iter().enumerate() {
        let mine: Vec<&KernelCall> = calls
            .iter()
            .zip(&owner)
            .filter(|(_, o)| **o == Some(li))
            .map(|(c, _)| c)
            .collect();
        let init: Vec<&KernelCall> = mine
            .iter()
            .copied()
            .filter(|c| c.role == CallRole::Init)
            .collect();
        let populate: Vec<&KernelCall> = mine
            .iter()
            .copied()
            .filter(|c| c.role == CallRole::Populate)
            .collect();
        let mut sources: Vec<RecordedSource> = Vec::new();
        for (func, role) in MEMMAP_FUNCTIONS {
            let fc: Vec<&&KernelCall> = mine.iter().filter(|c| c.func == *func).collect();
            if fc.is_empty() {
                continue;
            }
            let known: Vec<u64> = fc.iter().filter_map(|c| c.range.map(|r| r.1)).collect();
            let mut from = Vec::new();
            if fc.iter().any(|c| c.kprobe) {
                from.push("kprobe".to_string());
            }
            if fc.iter().any(|c| c.function_graph) {
                from.push("function_graph".to_string());
            }
            sources.push(RecordedSource {
                source: func.to_string(),
                role: Some(*role),
                calls: fc.len() as u64,
                nested_calls: fc.iter().filter(|c| c.nested).count() as u64,
                total_us: fc
                    .iter()
                    .map(|c| (c.end_ns - c.start_ns) as f64 / 1e3)
                    .sum(),
                pages: (!known.is_empty()).then(|| known.iter().sum()),
                from,
            });
        }
        let mut covered = Vec::new();
        let range_pages: u64 = init
            .iter()
            .filter_map(|c| c.range)
            .map(|r| add_new_pages(&mut covered, r))
            .sum();
        out.push(KernelRecorded {
            name: l.name.clone(),
            init_ms: (!init.is_empty()).then(|| busy_ns(init.iter().copied()) as f64 / 1e6),
            populate_ms: (!populate.is_empty())
                .then(|| busy_ns(populate.iter().copied()) as f64 / 1e6),
            init_range_pages: (range_pages > 0).then_some(range_pages),
            sources,
            ..Default::default()
        });
    }
    // The kernel log lines.
    let mut dmesg: Vec<(u64, u64, u64)> = vec![(0, 0, 0); layouts.len()]; // lines, pages, ms
    for e in events {
        let TraceEvent::Initialised {
            t_ns,
            device,
            pages,
            ms,
        } = e
        else {
            continue;
        };
        let during = calls
            .iter()
            .zip(&owner)
            .find(|(c, o)| {
                c.func == "memmap_init_zone_device" && o.is_some() && c.overlaps(*t_ns, *t_ns)
            })
            .and_then(|(_, o)| *o);
        let li = during
            .or_else(|| layouts.iter().position(|l| &l.name == device))
            .or(only);
        if let Some(li) = li {
            let d = &mut dmesg[li];
            d.0 += 1;
            d.1 = d.1.saturating_add(*pages);
            d.2 = d.2.saturating_add(*ms);
        }
    }
    for (k, (lines, pages, ms)) in out.iter_mut().zip(dmesg) {
        if lines > 0 {
            k.sources.push(RecordedSource {
                source: "dmesg".into(),
                role: Some(CallRole::Init),
                calls: lines,
                nested_calls: 0,
                total_us: ms as f64 * 1e3,
                pages: Some(pages),
                from: vec!["kernel-log".into()],
            });
        }
    }
    out
}

/// One row of "kernel recorded | replay measured | predicted kernel" for a range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelVsReplay {
    pub name: String,
    /// [`KernelRecorded::kernel_ms`].
    pub kernel_ms: Option<f64>,
    /// Median over repeats of the replay's init time of the range
    /// (`complete_ns - populate_end_ns`: altmap init + init, as the kernel's
    /// move_pfn_range_to_zone + memmap_init_zone_device).
    pub replay_ms: Option<f64>,
    pub predicted_kernel_ms: Option<f64>,
    pub predicted_kernel_low_ms: Option<f64>,
    pub predicted_kernel_high_ms: Option<f64>,
    /// replay / kernel.
    pub replay_over_kernel: Option<f64>,
    /// predicted / kernel.
    pub predicted_over_kernel: Option<f64>,
    /// replay / predicted.
    pub replay_over_predicted: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// Median over the run's repeats of a namespace's init time, ms.
pub fn replay_init_ms(run: &RunFile, name: &str) -> Option<f64> {
    let mut v: Vec<f64> = run
        .repeats
        .iter()
        .flat_map(|r| r.namespaces.iter().filter(|n| n.name == name))
        .map(|n| n.complete_ns.saturating_sub(n.populate_end_ns) as f64 / 1e6)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Per range of the run (layout order, then any `kernel_recorded` name not in the
/// layout): kernel recorded, replay measured, predicted kernel, and their ratios.
pub fn kernel_vs_replay(run: &RunFile) -> Vec<KernelVsReplay> {
    let mut names: Vec<&str> = run.layout.iter().map(|l| l.name.as_str()).collect();
    for k in &run.kernel_recorded {
        if !names.contains(&k.name.as_str()) {
            names.push(&k.name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let k = run.kernel_recorded.iter().find(|k| k.name == name);
            let kernel_ms = k.and_then(KernelRecorded::kernel_ms);
            let replay_ms = replay_init_ms(run, name);
            let predicted = k.and_then(|k| k.predicted_kernel_ms);
            KernelVsReplay {
                name: name.to_string(),
                kernel_ms,
                replay_ms,
                predicted_kernel_ms: predicted,
                predicted_kernel_low_ms: k.and_then(|k| k.predicted_kernel_low_ms),
                predicted_kernel_high_ms: k.and_then(|k| k.predicted_kernel_high_ms),
                replay_over_kernel: ratio(replay_ms, kernel_ms),
                predicted_over_kernel: ratio(predicted, kernel_ms),
                replay_over_predicted: ratio(replay_ms, predicted),
            }
        })
        .collect()
}

/// "1548.000" or "—" (absent).
pub fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Trace;
    use std::path::Path;

    fn real(name: &str) -> Trace {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../traces/real/testbed")
            .join(name);
        Trace::read(&p).unwrap()
    }

    fn layouts(t: &Trace) -> Vec<RangeLayout> {
        t.to_scenario("t").unwrap().layouts("t", 1.0).unwrap()
    }

    #[test]
    fn fsdax_dev_counts_the_range_once_not_three_times() {
        // 6.1 on the testbed: arch_add_memory, move_pfn_range_to_zone and
        // memmap_init_zone_device were each given pfn 0x100000 +4190208 and each seen
        // by a kprobe pair and function_graph. The old sum said 12570624 pages in 1.590 s.
        let t = real("fsdax-dev.jsonl");
        let calls = kernel_calls(&t.events);
        assert_eq!(calls.len(), 3, "{calls:#?}");
        assert!(calls
            .iter()
            .all(|c| c.kprobe && c.function_graph && !c.nested));
        let tot = init_total(&calls);
        assert_eq!(tot.pages, 4_190_208);
        assert_eq!(tot.init_calls, 2);
        // kprobe intervals (they contain the function_graph ones):
        // move_pfn_range_to_zone 35.999 ms + memmap_init_zone_device 1550.292 ms.
        assert_eq!(tot.init_ns, 35_999_000 + 1_550_292_000);
        assert_eq!(tot.populate_ns, 4_197_000);
    }

    #[test]
    fn fsdax_dev_attributes_spans_and_dmesg_to_the_namespace() {
        let t = real("fsdax-dev.jsonl");
        let k = attribute(&t.events, &layouts(&t));
        assert_eq!(k.len(), 1);
        let k = &k[0];
        assert_eq!(k.name, "namespace0.0");
        assert_eq!(k.init_ms, Some(1586.291));
        assert_eq!(k.populate_ms, Some(4.197));
        assert_eq!(k.init_range_pages, Some(4_190_208));
        let src = |s: &str| k.sources.iter().find(|x| x.source == s).unwrap();
        let mizd = src("memmap_init_zone_device");
        assert_eq!((mizd.calls, mizd.pages), (1, Some(4_190_208)));
        assert_eq!(mizd.from, vec!["kprobe", "function_graph"]);
        let d = src("dmesg");
        assert_eq!(
            (d.calls, d.pages, d.total_us),
            (1, Some(4_124_672), 1_548_000.0)
        );
        assert_eq!(k.kernel_ms(), Some(1586.291));
        assert_eq!(k.predicted_kernel_ms, None);
    }

    #[test]
    fn nested_move_pfn_range_to_zone_adds_no_time_in_hotplug() {
        // 8 blocks of 32768 pages onlined: online_pages contains move_pfn_range_to_zone.
        let t = real("hotplug-1g.jsonl");
        let l = layouts(&t);
        let k = attribute(&t.events, &l);
        let hp = k.iter().find(|k| k.name == "hotplug0").unwrap();
        let src = |s: &str| hp.sources.iter().find(|x| x.source == s).unwrap();
        let online = src("online_pages");
        let mv = src("move_pfn_range_to_zone");
        assert_eq!((online.calls, online.nested_calls), (8, 0));
        assert_eq!((mv.calls, mv.nested_calls), (8, 8));
        assert_eq!(online.pages, Some(8 * 32768));
        // The union is the online_pages time alone (kprobe ∪ function_graph intervals).
        let init_ms = hp.init_ms.unwrap();
        assert!(
            init_ms <= online.total_us / 1e3 + 0.5 && init_ms >= online.total_us / 1e3 - 0.5,
            "{init_ms} vs {}",
            online.total_us / 1e3
        );
        assert_eq!(hp.init_range_pages, Some(8 * 32768));
        // The namespace of the trace had no memmap call during the recording.
        let ns = k.iter().find(|k| k.name == "namespace0.0").unwrap();
        assert_eq!((ns.init_ms, ns.sources.len()), (None, 0));
    }

    #[test]
    fn busy_time_is_the_union_per_thread() {
        let c = |pid, s, e| KernelCall {
            func: "online_pages".into(),
            role: CallRole::Init,
            pid,
            task: "t".into(),
            start_ns: s,
            end_ns: e,
            range: None,
            kprobe: true,
            function_graph: false,
            nested: false,
        };
        let v = [
            c(1, 0, 100),
            c(1, 10, 50),
            c(1, 90, 150),
            c(2, 0, 100),
            c(1, 200, 210),
        ];
        assert_eq!(busy_ns(&v), 150 + 100 + 10);
        let mut cov = Vec::new();
        assert_eq!(add_new_pages(&mut cov, (10, 10)), 10);
        assert_eq!(add_new_pages(&mut cov, (5, 10)), 5);
        assert_eq!(add_new_pages(&mut cov, (0, 40)), 25);
        assert_eq!(cov, vec![(0, 40)]);
    }
}
