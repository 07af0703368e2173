//! A loaded trace: read on all cores by the model's reader
//! (`memmap_model::trace_read::read_parallel`) into per-part lanes
//! ([`super::trace_lanes`]), then merged, its lanes' rows built in parallel, and its
//! layouts, progress and fault statistics derived.

use super::lod::InstantRow;
use super::progress::{trace_progress, Progress};
use super::timeline::Lane;
use super::timeline::Timeline;
use super::trace_lanes::{build_lanes, merge_parts, BuiltLane, PartLanes};
use super::trace_layout::{memmap_ranges, trace_layouts, MemmapRange};
use hdrhistogram::Histogram;
use memmap_model::kernel_recorded::{attribute, KernelRecorded};
use memmap_model::layout::RangeLayout;
use memmap_model::trace::{Trace, TraceHeader};
use memmap_model::trace_read::{read_parallel, PartsRead, ReadError, Source};
use std::time::Instant;

/// A loaded trace.
pub struct TraceDoc {
    pub header: TraceHeader,
    pub timeline: Timeline,
    /// Count of events per kind.
    pub kind_counts: Vec<(String, u64)>,
    pub warnings: Vec<String>,
    /// Fault latencies (dax-fault dur_ns).
    pub fault_hist: Option<Histogram<u64>>,
    /// (t_ns, latency) of faults, thinned to at most 20000 by keeping per-bucket maxima.
    pub fault_over_time: Vec<[f64; 2]>,
    /// Layouts of the trace's namespaces and hot-plugged memory
    /// (`Trace::to_scenario`, then `Scenario::layouts`).
    pub layouts: Vec<RangeLayout>,
    pub layout_errors: Vec<String>,
    /// The pfn ranges memmap-init events (kprobes / function_graph with arguments)
    /// recorded, merged per range.
    pub memmap_ranges: Vec<MemmapRange>,
    /// Why the Layout view shows what it shows when the trace has no namespace or
    /// hot-plugged range to lay out (e.g. a namespace destroyed before the recording's
    /// closing snapshot).
    pub layout_note: Option<String>,
    /// memmap-init pages over time (cumulative), per task and total.
    pub progress: Progress,
    /// Union of the pfn ranges of the memmap init calls (each range once).
    pub memmap_pages: u64,
    /// Union per thread of the init calls' intervals (nested calls and duplicates of
    /// one call from two sources add nothing), summed over threads.
    pub memmap_busy_ns: u64,
    /// The same for vmemmap populate (arch_add_memory).
    pub memmap_populate_ns: u64,
    /// Per layout range: the kernel's recorded durations.
    pub kernel_recorded: Vec<KernelRecorded>,
    /// Seconds spent in each loading phase (parse, merge, rows, rest), for benchmarks.
    pub load_phases: Vec<(&'static str, f64)>,
}

/// Parsing and row-building threads at most.
const MAX_THREADS: usize = 8;

/// Read and build a trace; `path` names it in errors and warnings.
pub fn load_trace(path: &str, src: Source<'_>) -> Result<TraceDoc, ReadError> {
    let started = Instant::now();
    let read: PartsRead<PartLanes> = read_parallel(path, src)?;
    let parsed = started.elapsed().as_secs_f64();
    let mut doc = build_trace(read);
    doc.load_phases.insert(0, ("parse", parsed));
    Ok(doc)
}

/// The document of a trace read into per-part lanes: merge the parts, build the
/// lanes' rows (in parallel), then what the views derive from the events.
fn build_trace(read: PartsRead<PartLanes>) -> TraceDoc {
    let merge_started = Instant::now();
    let mut merged = merge_parts(read.parts);
    let kind_counts = merged.kind_counts();
    let named = merged.into_named_lanes();
    let rows_at = Instant::now();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS);
    let built = build_lanes(named, &merged.fault_labels, threads);
    let rows_done = Instant::now();
    let mut events_lane = std::mem::take(&mut merged.event_instants);
    let faults = FaultStats::of(&built);
    let mut lanes = Vec::with_capacity(built.len() + 1);
    if !events_lane.is_empty() {
        events_lane.finish();
        lanes.push(events_lane_of(events_lane));
    }
    lanes.extend(built.into_iter().map(|b| b.lane));
    let task_names = merged.task_names();
    let mut timeline = Timeline {
        lanes,
        labels: std::mem::take(&mut merged.labels.list),
        span_aux: "start pfn",
        instant_aux: "address",
        fault_labels: std::mem::take(&mut merged.fault_labels),
        ..Default::default()
    };
    timeline.finish();
    // Layouts of the recorded namespaces and hot-plugged memory.
    let trace = Trace {
        header: read.header,
        events: std::mem::take(&mut merged.events),
        warnings: Vec::new(),
    };
    let memmap_ranges = memmap_ranges(&trace.events, &task_names);
    let layouts = trace_layouts(&trace, &memmap_ranges);
    let progress = trace_progress(&trace.events, timeline.t_min);
    let kernel_recorded = attribute(&trace.events, &layouts.layouts);
    let load_phases = vec![
        ("merge", (rows_at - merge_started).as_secs_f64()),
        ("rows", (rows_done - rows_at).as_secs_f64()),
        ("rest", rows_done.elapsed().as_secs_f64()),
    ];
    TraceDoc {
        header: trace.header,
        timeline,
        kind_counts,
        warnings: read.warnings,
        fault_hist: faults.hist,
        fault_over_time: faults.over_time,
        layouts: layouts.layouts,
        layout_errors: layouts.errors,
        memmap_ranges,
        layout_note: layouts.note,
        progress: progress.progress,
        memmap_pages: progress.pages,
        memmap_busy_ns: progress.busy_ns,
        memmap_populate_ns: progress.populate_ns,
        kernel_recorded,
        load_phases,
    }
}

fn events_lane_of(instants: InstantRow) -> Lane {
    Lane {
        name: "events".into(),
        detail: "marks, uevents, kernel log lines".into(),
        rows: Vec::new(),
        instants,
    }
}

/// The fault latencies of all lanes.
struct FaultStats {
    hist: Option<Histogram<u64>>,
    /// (t, latency), thinned to at most 20000 points.
    over_time: Vec<[f64; 2]>,
}

impl FaultStats {
    fn of(built: &[BuiltLane]) -> FaultStats {
        let mut hist = memmap_model::hist::new_histogram();
        let mut pts: Vec<(u64, u64)> = Vec::new();
        for b in built {
            let _ = hist.add(&b.fault_hist);
            pts.extend_from_slice(&b.fault_points);
        }
        pts.sort_unstable();
        FaultStats {
            hist: (!hist.is_empty()).then_some(hist),
            over_time: thin_max(&pts, 20_000),
        }
    }
}

/// Keep at most ~`max` points: the largest value of each of `max` time buckets.
pub fn thin_max(pts: &[(u64, u64)], max: usize) -> Vec<[f64; 2]> {
    if pts.len() <= max {
        return pts.iter().map(|&(t, v)| [t as f64, v as f64]).collect();
    }
    let per = pts.len().div_ceil(max);
    pts.chunks(per)
        .filter_map(|c| c.iter().max_by_key(|p| p.1))
        .map(|&(t, v)| [t as f64, v as f64])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"format":"memmap-lab-trace","version":1,"created_unix_s":0,"source":"x","kernel_release":"","cmdline":"","numa_nodes":0,"cpus":0,"notes":[]}"#;

    #[test]
    fn a_small_trace_becomes_its_document() {
        let text = format!(
            "{HEADER}\n{}\n{}\n{}\n{}\n",
            r#"{"kind":"mark","t_ns":1000,"text":"start"}"#,
            r#"{"kind":"function-span","t_ns":1100,"dur_ns":50,"func":"f","task":"ndctl","pid":9,"cpu":0}"#,
            r#"{"kind":"dax-fault","t_ns":1200,"dur_ns":3000,"pmd":true,"pid":9,"cpu":0,"address":0,"pgoff":0,"result":"NOPAGE"}"#,
            r#"{"kind":"memmap-init","t_ns":1300,"dur_ns":100,"func":"memmap_init_zone_device","start_pfn":4096,"nr_pages":64,"task":"","pid":9,"cpu":1}"#,
        );
        let doc = load_trace("t.jsonl", Source::Bytes(text.as_bytes())).unwrap();
        let names: Vec<&str> = doc.timeline.lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["events", "ndctl-9"]);
        assert_eq!((doc.timeline.n_spans, doc.timeline.n_instants), (2, 2));
        assert_eq!((doc.timeline.t_min, doc.timeline.t_max), (1000, 1400));
        assert_eq!(doc.fault_over_time, vec![[1200.0, 3000.0]]);
        assert_eq!(doc.fault_hist.as_ref().map(|h| h.len()), Some(1));
        assert_eq!(doc.memmap_ranges.len(), 1);
        assert_eq!(
            doc.memmap_ranges[0].task, "ndctl-9",
            "named by its pid's lane"
        );
        assert_eq!((doc.memmap_pages, doc.memmap_busy_ns), (64, 100));
        assert_eq!(
            doc.kind_counts,
            [
                ("dax-fault".to_string(), 1),
                ("function-span".to_string(), 1),
                ("mark".to_string(), 1),
                ("memmap-init".to_string(), 1)
            ]
        );
        assert!(doc.layout_note.is_some());
        let phases: Vec<&str> = doc.load_phases.iter().map(|p| p.0).collect();
        assert_eq!(phases, ["parse", "merge", "rows", "rest"]);
    }

    /// The real fsdax map=dev trace: arch_add_memory, move_pfn_range_to_zone and
    /// memmap_init_zone_device were each given the namespace's 4190208-pfn range and each
    /// seen by a kprobe pair and function_graph. The Overview said "12570624 pages in
    /// 1.590 s" (every memmap-init event added); each range and call counts once now.
    #[test]
    fn a_real_trace_counts_each_range_and_call_once() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../traces/real/testbed/fsdax-dev.jsonl"
        );
        let bytes = std::fs::read(p).unwrap();
        let doc = load_trace(p, Source::Bytes(&bytes)).unwrap();
        assert_eq!(doc.memmap_pages, 4_190_208);
        assert_eq!(doc.memmap_busy_ns, 35_999_000 + 1_550_292_000);
        assert_eq!(doc.memmap_populate_ns, 4_197_000);
        assert_eq!(doc.progress.total.last().map(|p| p[1]), Some(4_190_208.0));
        assert_eq!(doc.kernel_recorded.len(), 1);
        let k = &doc.kernel_recorded[0];
        assert_eq!(
            (k.name.as_str(), k.init_ms),
            ("namespace0.0", Some(1586.291))
        );
        let from: Vec<&Vec<String>> = k.sources.iter().map(|s| &s.from).collect();
        assert!(
            from[..3].iter().all(|f| f.len() == 2),
            "function_graph spans are kept: {from:?}"
        );
    }

    #[test]
    fn thinning_keeps_the_largest_of_each_bucket() {
        let pts: Vec<(u64, u64)> = (0..10).map(|i| (i, i % 3)).collect();
        assert_eq!(thin_max(&pts, 20).len(), 10);
        assert_eq!(
            thin_max(&pts, 5),
            vec![[1.0, 1.0], [2.0, 2.0], [5.0, 2.0], [7.0, 1.0], [8.0, 2.0]]
        );
    }
}
