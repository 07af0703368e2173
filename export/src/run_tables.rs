//! The Parquet tables of a run file: one function per table, listed once in
//! [`RUN_TABLES`]. Columns and meanings: `docs/parquet.md` ("Run tables"); every table
//! starts with `run_id` and `scenario`. Layout: one directory per table, Hive-partitioned
//! by `host`, `kernel` and `strategy`, one file per run:
//! `DIR/<table>/host=<h>/kernel=<k>/strategy=<s>/part-<run_id>.parquet`. Exporting the
//! same run again overwrites its files (the run id is a hash of the run's identity).

use crate::input::file_name;
use crate::parquet::{col as c, fnv1a64, frame, str_list};
use memmap_model::hist::StoredHistogram;
use memmap_model::run::{CounterValue, Repeat, RunFile};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use std::collections::BTreeMap;
use std::path::Path;

/// A run table: builds its frame from one run.
pub type RunTable = for<'a> fn(&RunCx<'a>) -> anyhow::Result<DataFrame>;

/// Every run table, in write order. A new table: one function below and one line here.
pub const RUN_TABLES: &[(&str, RunTable)] = &[
    ("runs", runs),
    ("repeats", repeats),
    ("namespaces", namespaces),
    ("kernel_vs_replay", kernel_vs_replay),
    ("phases", phases),
    ("threads", threads),
    ("counters", counters),
    ("progress", progress),
    ("spans", spans),
    ("stall_samples", stall_samples),
    ("stall_histograms", stall_histograms),
    ("stall_percentiles", stall_percentiles),
];

/// One run being exported.
pub struct RunCx<'a> {
    pub run: &'a RunFile,
    /// [`run_id`] of the run.
    pub id: String,
    /// Name of the file the run was read from.
    pub file: String,
}

impl<'a> RunCx<'a> {
    pub fn new(path: &Path, run: &'a RunFile) -> Self {
        RunCx {
            run,
            id: run_id(run),
            file: file_name(path),
        }
    }

    /// The run's Hive partition: host, kernel, strategy.
    pub fn partition(&self) -> [(&'static str, &'a str); 3] {
        let r = self.run;
        [
            ("host", r.host.hostname.as_str()),
            ("kernel", r.host.kernel_release.as_str()),
            ("strategy", r.config.strategy.as_str()),
        ]
    }

    /// A table of `n` rows: `run_id`, `scenario`, then `cols`.
    fn table(&self, n: usize, cols: Vec<Column>) -> anyhow::Result<DataFrame> {
        let mut all = vec![
            c("run_id", vec![self.id.as_str(); n]),
            c("scenario", vec![self.run.scenario.name.as_str(); n]),
        ];
        all.extend(cols);
        frame(all)
    }
}

/// Stable id of a run: FNV-1a 64 of what identifies it (host, kernel, strategy,
/// scenario, scale, creation time, tool), 16 hex digits.
pub fn run_id(r: &RunFile) -> String {
    let key = format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        r.host.hostname,
        r.host.kernel_release,
        r.config.strategy,
        r.scenario.name,
        r.scenario.scale.to_bits(),
        r.created_unix_s.to_bits(),
        r.tool
    );
    format!("{:016x}", fnv1a64(key.as_bytes()))
}

/// `runs`: one row.
fn runs(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let r = cx.run;
    let cfg = &r.config;
    let w = cfg.window.as_ref();
    cx.table(
        1,
        vec![
            c("source_file", [cx.file.as_str()]),
            c("hostname", [r.host.hostname.as_str()]),
            c("kernel_release", [r.host.kernel_release.as_str()]),
            c("strategy_name", [cfg.strategy.as_str()]),
            c("scenario_path", [r.scenario.path.as_deref()]),
            c("scenario_scale", [r.scenario.scale]),
            c("scenario_source", [r.scenario.source.as_str()]),
            c("tool", [r.tool.as_str()]),
            c("format_version", [r.version]),
            c("created_unix_s", [r.created_unix_s]),
            c("complete", [r.complete]),
            c("interrupted", [r.interrupted]),
            c("repeats", [r.repeats.len() as u32]),
            c("repeats_requested", [cfg.repeats_requested]),
            c("threads", [cfg.params.threads]),
            c("sub_ranges", [cfg.params.sub_ranges]),
            c("chunk_pages", [cfg.params.chunk_pages]),
            c("store", [cfg.params.store.as_str()]),
            c("record", [cfg.params.record.as_str()]),
            c("sync_lock", [cfg.params.sync_lock.as_str()]),
            c("fault_pattern", [cfg.faults.pattern.as_str()]),
            c(
                "fault_threads_per_namespace",
                [cfg.faults.threads_per_namespace],
            ),
            c("fault_touches_per_thread", [cfg.faults.touches_per_thread]),
            c("fault_bytes", [cfg.faults.fault_bytes]),
            c("fault_zipf_exponent", [cfg.faults.zipf_exponent]),
            c("fault_think_ns", [cfg.faults.think_ns]),
            c("fault_seed", [cfg.faults.seed]),
            c("fault_trace", [cfg.faults.trace.as_deref()]),
            c("verify", [cfg.verify]),
            c("target_kind", [cfg.target.kind.as_str()]),
            c("target_path", [cfg.target.path.as_deref()]),
            c("target_filesystem", [cfg.target.filesystem.as_deref()]),
            c("target_dax", [cfg.target.dax]),
            c("target_map_sync", [cfg.target.map_sync]),
            c("target_page_size_bytes", [cfg.target.page_size_bytes]),
            c("target_persistent", [cfg.target.persistent]),
            c("target_flush", [cfg.target.flush.as_str()]),
            c("target_length_bytes", [cfg.target.length_bytes]),
            str_list("target_notes", &[&cfg.target.notes]),
            c("window_bytes", [w.map(|w| w.window_bytes)]),
            c("window_slice_bytes", [w.map(|w| w.slice_bytes)]),
            c("window_full_memmap_bytes", [w.map(|w| w.full_memmap_bytes)]),
            c("window_method", [w.map(|w| w.method.as_str())]),
            c(
                "namespace_concurrency",
                [cfg.namespace_concurrency.as_str()],
            ),
            c("cpu_model", [r.host.cpu_model.as_str()]),
            c("cpus_online", [r.host.cpus_online]),
            c("mem_total_bytes", [r.host.mem_total_bytes]),
            c("numa_nodes", [r.host.numa_nodes]),
            c("namespaces", [r.layout.len() as u32]),
            str_list("notes", &[&cfg.notes]),
        ],
    )
}

/// A column of one value per repeat.
fn per_repeat<'a, T>(reps: &'a [Repeat], name: &str, f: impl Fn(&'a Repeat) -> T) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    c(name, reps.iter().map(f).collect::<Vec<T>>())
}

/// `repeats`: one row per repeat (metrics, roofline, verification).
fn repeats(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let reps = &cx.run.repeats;
    let col = |name, f: fn(&Repeat) -> u64| per_repeat(reps, name, f);
    let col_f64 = |name, f: fn(&Repeat) -> f64| per_repeat(reps, name, f);
    cx.table(
        reps.len(),
        vec![
            per_repeat(reps, "repeat", |x| x.index),
            col_f64("started_unix_s", |x| x.started_unix_s),
            col("time_to_available_ns", |x| x.metrics.time_to_available_ns),
            col("time_to_complete_ns", |x| x.metrics.time_to_complete_ns),
            col("populate_ns", |x| x.metrics.populate_ns),
            col("init_ns", |x| x.metrics.init_ns),
            col("struct_pages_written", |x| x.metrics.struct_pages_written),
            col("memmap_bytes_written", |x| x.metrics.memmap_bytes_written),
            col_f64("memmap_bytes_per_s", |x| x.metrics.memmap_bytes_per_s),
            col("faults", |x| x.metrics.faults),
            col("stall_p50_ns", |x| x.metrics.stall_p50_ns),
            col("stall_p99_ns", |x| x.metrics.stall_p99_ns),
            col("stall_max_ns", |x| x.metrics.stall_max_ns),
            col_f64("fraction_of_nt_roofline", |x| {
                x.metrics.fraction_of_nt_roofline
            }),
            col_f64("engine_efficiency", |x| x.metrics.engine_efficiency),
            col("uninitialised_reads", |x| x.metrics.uninitialised_reads),
            per_repeat(reps, "roofline_threads", |x| x.roofline.threads),
            col("roofline_bytes", |x| x.roofline.bytes),
            col_f64("roofline_regular_bytes_per_s", |x| {
                x.roofline.regular_bytes_per_s
            }),
            col_f64("roofline_non_temporal_bytes_per_s", |x| {
                x.roofline.non_temporal_bytes_per_s
            }),
            col("roofline_bare_same_store_ns", |x| {
                x.roofline.bare_same_store_ns
            }),
            per_repeat(reps, "verify_method", |x| {
                x.verify.as_ref().map(|v| v.method.as_str())
            }),
            per_repeat(reps, "verify_records_checked", |x| {
                x.verify.as_ref().map(|v| v.records_checked)
            }),
            per_repeat(reps, "verify_errors", |x| {
                x.verify.as_ref().map(|v| v.errors)
            }),
            col("stall_samples", |x| x.stalls.samples.len() as u64),
            col("stall_samples_dropped", |x| x.stalls.samples_dropped),
        ],
    )
}

/// `namespaces`: one row per repeat × namespace.
fn namespaces(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let mut repeat = Vec::new();
    let mut ns = Vec::new();
    let mut cols: [Vec<u64>; 7] = Default::default();
    for rep in &cx.run.repeats {
        for n in &rep.namespaces {
            repeat.push(rep.index);
            ns.push(n.name.as_str());
            for (v, x) in cols.iter_mut().zip([
                n.populate_start_ns,
                n.populate_end_ns,
                n.available_ns,
                n.complete_ns,
                n.data_pages,
                n.struct_pages_written,
                n.bytes_written,
            ]) {
                v.push(x);
            }
        }
    }
    let [a, b, cc, d, e, f, g] = cols;
    cx.table(
        ns.len(),
        vec![
            c("repeat", repeat),
            c("namespace", ns),
            c("populate_start_ns", a),
            c("populate_end_ns", b),
            c("available_ns", cc),
            c("complete_ns", d),
            c("data_pages", e),
            c("struct_pages_written", f),
            c("bytes_written", g),
        ],
    )
}

/// `kernel_vs_replay`: one row per namespace / hot-added range: what the traced kernel
/// recorded (`kernel_recorded` of the run file), the replay's median init time, the
/// predicted kernel time, their ratios (null where absent).
fn kernel_vs_replay(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let rows = memmap_model::kernel_recorded::kernel_vs_replay(cx.run);
    let rec = |name: &str| cx.run.kernel_recorded.iter().find(|k| k.name == name);
    let f = |g: &dyn Fn(&memmap_model::kernel_recorded::KernelVsReplay) -> Option<f64>| {
        rows.iter().map(g).collect::<Vec<Option<f64>>>()
    };
    let dmesg = |name: &str| rec(name).and_then(|k| k.sources.iter().find(|s| s.source == "dmesg"));
    cx.table(
        rows.len(),
        vec![
            c(
                "namespace",
                rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ),
            c("kernel_ms", f(&|r| r.kernel_ms)),
            c("replay_ms", f(&|r| r.replay_ms)),
            c("predicted_kernel_ms", f(&|r| r.predicted_kernel_ms)),
            c("predicted_kernel_low_ms", f(&|r| r.predicted_kernel_low_ms)),
            c(
                "predicted_kernel_high_ms",
                f(&|r| r.predicted_kernel_high_ms),
            ),
            c("replay_over_kernel", f(&|r| r.replay_over_kernel)),
            c("predicted_over_kernel", f(&|r| r.predicted_over_kernel)),
            c("replay_over_predicted", f(&|r| r.replay_over_predicted)),
            c(
                "kernel_init_ms",
                f(&|r| rec(&r.name).and_then(|k| k.init_ms)),
            ),
            c(
                "kernel_populate_ms",
                f(&|r| rec(&r.name).and_then(|k| k.populate_ms)),
            ),
            c(
                "kernel_init_range_pages",
                rows.iter()
                    .map(|r| rec(&r.name).and_then(|k| k.init_range_pages))
                    .collect::<Vec<Option<u64>>>(),
            ),
            c("dmesg_ms", f(&|r| dmesg(&r.name).map(|s| s.total_us / 1e3))),
            c(
                "dmesg_pages",
                rows.iter()
                    .map(|r| dmesg(&r.name).and_then(|s| s.pages))
                    .collect::<Vec<Option<u64>>>(),
            ),
        ],
    )
}

/// `phases`: one row per repeat × phase.
fn phases(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut ns, mut name, mut start, mut end, mut dur) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for rep in &cx.run.repeats {
        for p in &rep.phases {
            repeat.push(rep.index);
            ns.push(p.namespace.as_str());
            name.push(p.name.as_str());
            start.push(p.start_ns);
            end.push(p.end_ns);
            dur.push(p.end_ns.saturating_sub(p.start_ns));
        }
    }
    cx.table(
        ns.len(),
        vec![
            c("repeat", repeat),
            c("namespace", ns),
            c("phase", name),
            c("start_ns", start),
            c("end_ns", end),
            c("dur_ns", dur),
        ],
    )
}

/// `threads`: one row per repeat × replay thread.
fn threads(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut id, mut name, mut role, mut ns) = (vec![], vec![], vec![], vec![], vec![]);
    let mut cols: [Vec<u64>; 6] = Default::default();
    for rep in &cx.run.repeats {
        for th in &rep.threads {
            repeat.push(rep.index);
            id.push(th.id);
            name.push(th.name.clone());
            role.push(th.role.as_str());
            ns.push(th.namespace.clone());
            for (v, x) in cols.iter_mut().zip([
                th.start_ns,
                th.end_ns,
                th.busy_ns,
                th.pages_done,
                th.spans.len() as u64,
                th.progress.len() as u64,
            ]) {
                v.push(x);
            }
        }
    }
    let [start, end, busy, pages, spans, progress] = cols;
    cx.table(
        id.len(),
        vec![
            c("repeat", repeat),
            c("thread_id", id),
            c("thread_name", name),
            c("role", role),
            c("namespace", ns),
            c("start_ns", start),
            c("end_ns", end),
            c("busy_ns", busy),
            c("pages_done", pages),
            c("spans", spans),
            c("progress_samples", progress),
        ],
    )
}

/// `counters`: one row per repeat × thread × perf counter.
fn counters(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut id, mut name, mut counter, mut value, mut unsupported) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for rep in &cx.run.repeats {
        for th in &rep.threads {
            let cs = &th.counters;
            for (cname, v) in [
                ("task_clock_ns", &cs.task_clock_ns),
                ("page_faults", &cs.page_faults),
                ("context_switches", &cs.context_switches),
                ("cycles", &cs.cycles),
                ("instructions", &cs.instructions),
            ] {
                repeat.push(rep.index);
                id.push(th.id);
                name.push(th.name.clone());
                counter.push(cname);
                let (v, why) = match v {
                    CounterValue::Value(x) => (Some(*x), None),
                    CounterValue::Unsupported(why) => (None, Some(why.clone())),
                };
                value.push(v);
                unsupported.push(why);
            }
        }
    }
    cx.table(
        id.len(),
        vec![
            c("repeat", repeat),
            c("thread_id", id),
            c("thread_name", name),
            c("counter", counter),
            c("value", value),
            c("unsupported", unsupported),
        ],
    )
}

/// `progress`: one row per progress sample.
fn progress(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut id, mut t, mut pages) = (vec![], vec![], vec![], vec![]);
    for rep in &cx.run.repeats {
        for th in &rep.threads {
            for &(tn, p) in &th.progress {
                repeat.push(rep.index);
                id.push(th.id);
                t.push(tn);
                pages.push(p);
            }
        }
    }
    cx.table(
        repeat.len(),
        vec![
            c("repeat", repeat),
            c("thread_id", id),
            c("t_ns", t),
            c("pages_done", pages),
        ],
    )
}

/// `spans`: one row per thread span.
fn spans(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut id, mut kind) = (vec![], vec![], vec![]);
    let mut cols: [Vec<u64>; 5] = Default::default();
    for rep in &cx.run.repeats {
        for th in &rep.threads {
            for sp in &th.spans {
                repeat.push(rep.index);
                id.push(th.id);
                kind.push(sp.kind.as_str());
                for (v, x) in cols.iter_mut().zip([
                    sp.start_ns,
                    sp.end_ns,
                    sp.end_ns.saturating_sub(sp.start_ns),
                    sp.start_pfn,
                    sp.pages,
                ]) {
                    v.push(x);
                }
            }
        }
    }
    let [start, end, dur, pfn, pages] = cols;
    cx.table(
        id.len(),
        vec![
            c("repeat", repeat),
            c("thread_id", id),
            c("kind", kind),
            c("start_ns", start),
            c("end_ns", end),
            c("dur_ns", dur),
            c("start_pfn", pfn),
            c("pages", pages),
        ],
    )
}

/// `stall_samples`: one row per sampled fault.
fn stall_samples(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut thread, mut t, mut pfn, mut stall) =
        (vec![], vec![], vec![], vec![], vec![]);
    for rep in &cx.run.repeats {
        for x in &rep.stalls.samples {
            repeat.push(rep.index);
            thread.push(x.thread);
            t.push(x.t_ns);
            pfn.push(x.pfn);
            stall.push(x.stall_ns);
        }
    }
    cx.table(
        repeat.len(),
        vec![
            c("repeat", repeat),
            c("thread_id", thread),
            c("t_ns", t),
            c("pfn", pfn),
            c("stall_ns", stall),
        ],
    )
}

/// Every stall histogram of the run, in table order: per repeat the merged one
/// (`scope` `merged`, no thread), then each fault thread's.
fn histograms(
    r: &RunFile,
) -> impl Iterator<
    Item = (
        u32,
        &'static str,
        Option<u32>,
        Option<&str>,
        &StoredHistogram,
    ),
> {
    r.repeats.iter().flat_map(|rep| {
        let names: BTreeMap<u32, &str> = rep
            .threads
            .iter()
            .map(|t| (t.id, t.name.as_str()))
            .collect();
        std::iter::once((rep.index, "merged", None, None, &rep.stalls.merged)).chain(
            rep.stalls.per_thread.iter().map(move |(tid, hist)| {
                let name = names.get(tid).copied();
                (rep.index, "thread", Some(*tid), name, hist)
            }),
        )
    })
}

/// `stall_histograms`: one row per repeat × histogram.
fn stall_histograms(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut scope, mut tid, mut tname, mut mean, mut hdr) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut cols: [Vec<u64>; 7] = Default::default();
    for (rep, s, t, name, h) in histograms(cx.run) {
        repeat.push(rep);
        scope.push(s);
        tid.push(t);
        tname.push(name.map(String::from));
        mean.push(h.mean_ns);
        hdr.push(h.hdr_v2_deflate_base64.clone());
        for (v, x) in cols.iter_mut().zip([
            h.count, h.min_ns, h.max_ns, h.p50_ns, h.p90_ns, h.p99_ns, h.p999_ns,
        ]) {
            v.push(x);
        }
    }
    let [count, min, max, p50, p90, p99, p999] = cols;
    cx.table(
        repeat.len(),
        vec![
            c("repeat", repeat),
            c("scope", scope),
            c("thread_id", tid),
            c("thread_name", tname),
            c("count", count),
            c("min_ns", min),
            c("max_ns", max),
            c("mean_ns", mean),
            c("p50_ns", p50),
            c("p90_ns", p90),
            c("p99_ns", p99),
            c("p999_ns", p999),
            c("hdr_v2_deflate_base64", hdr),
        ],
    )
}

/// `stall_percentiles`: one row per histogram × percentile tick.
fn stall_percentiles(cx: &RunCx) -> anyhow::Result<DataFrame> {
    let (mut repeat, mut scope, mut tid, mut pct, mut val) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (rep, s, t, _, h) in histograms(cx.run) {
        for &(q, v) in &h.percentiles {
            repeat.push(rep);
            scope.push(s);
            tid.push(t);
            pct.push(q);
            val.push(v);
        }
    }
    cx.table(
        repeat.len(),
        vec![
            c("repeat", repeat),
            c("scope", scope),
            c("thread_id", tid),
            c("percentile", pct),
            c("value_ns", val),
        ],
    )
}
