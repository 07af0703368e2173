//! `memmap-replay export`: run files to Parquet tables (polars), Chrome trace-event
//! JSON (Perfetto UI, chrome://tracing) and HdrHistogram interval logs.
//!
//! Parquet layout (normative description: `docs/parquet.md`): one directory per
//! table, Hive-partitioned by `host`, `kernel` and `strategy`, one file per run:
//! `DIR/<table>/host=<h>/kernel=<k>/strategy=<s>/part-<run_id>.parquet`. The
//! partition keys live in the path only (the Hive / Spark / DuckDB convention);
//! every file carries `run_id` and `scenario`. Exporting the same run again
//! overwrites its files (the run id is a hash of the run's identity), so a fleet
//! directory can be refreshed in place.

use anyhow::{bail, Context as _};
use memmap_model::chrome::ChromeTrace;
use memmap_model::chrome_args;
use memmap_model::hist::StoredHistogram;
use memmap_model::hlog::{self, Interval};
use memmap_model::parquet::{col as c, fnv1a64, write_part};
use memmap_model::run::{CounterValue, RecordFlavor, RunFile, SpanKind, StoreKind, ThreadRole};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every run table, in the order they are written.
pub const RUN_TABLES: &[&str] = &[
    "runs",
    "repeats",
    "namespaces",
    "phases",
    "threads",
    "counters",
    "progress",
    "spans",
    "stall_samples",
    "stall_histograms",
    "stall_percentiles",
];

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Run files (memmap-lab-run JSON).
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Write the Parquet tables under this directory (Hive-partitioned, docs/parquet.md).
    #[arg(long, value_name = "DIR")]
    pub parquet: Option<PathBuf>,
    /// Write one Chrome trace-event JSON file of all runs (Perfetto UI, chrome://tracing).
    #[arg(long, value_name = "FILE")]
    pub chrome_trace: Option<PathBuf>,
    /// Write one HdrHistogram interval log (.hlog) per run of its stall histograms.
    #[arg(long, value_name = "DIR")]
    pub hlog: Option<PathBuf>,
    /// File the runs under this host name instead of the one they recorded (runs made on
    /// a machine whose kernel reports no name, "(none)", such as the QEMU testbed guest).
    /// Changes the `host` partition, the `hostname` column and so the run id.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

/// What an export wrote.
#[derive(Clone, Debug, Default)]
pub struct ExportSummary {
    /// Rows per table, over all runs.
    pub rows: BTreeMap<String, u64>,
    pub parquet_files: Vec<PathBuf>,
    pub chrome_events: usize,
    pub hlog_files: Vec<PathBuf>,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    if args.parquet.is_none() && args.chrome_trace.is_none() && args.hlog.is_none() {
        bail!("export: nothing to do: give --parquet DIR, --chrome-trace FILE and/or --hlog DIR");
    }
    let mut runs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let mut r = RunFile::read(path)?;
        if let Some(h) = &args.host {
            r.host.hostname = h.clone();
        }
        runs.push((path.clone(), r));
    }
    let s = export_runs(
        &runs,
        args.parquet.as_deref(),
        args.chrome_trace.as_deref(),
        args.hlog.as_deref(),
    )?;
    if let Some(dir) = &args.parquet {
        println!(
            "parquet: {} files under {}",
            s.parquet_files.len(),
            dir.display()
        );
        for (t, n) in &s.rows {
            println!("  {t:18} {n:>9} rows");
        }
    }
    if let Some(f) = &args.chrome_trace {
        println!(
            "chrome trace: {} events in {}",
            s.chrome_events,
            f.display()
        );
    }
    if let Some(dir) = &args.hlog {
        println!(
            "hlog: {} interval logs under {}",
            s.hlog_files.len(),
            dir.display()
        );
    }
    Ok(())
}

/// Export `runs` (file path, run) to whichever outputs are given.
pub fn export_runs(
    runs: &[(PathBuf, RunFile)],
    parquet: Option<&Path>,
    chrome: Option<&Path>,
    hlog_dir: Option<&Path>,
) -> anyhow::Result<ExportSummary> {
    let mut summary = ExportSummary::default();
    if let Some(dir) = parquet {
        for (path, r) in runs {
            let id = run_id(r);
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tables = run_tables(r, &id, &file)
                .with_context(|| format!("{}: building the tables", path.display()))?;
            let part = [
                ("host", r.host.hostname.as_str()),
                ("kernel", r.host.kernel_release.as_str()),
                ("strategy", r.config.strategy.as_str()),
            ];
            for (name, mut df) in tables {
                *summary.rows.entry(name.to_string()).or_default() += df.height() as u64;
                let f = write_part(dir, name, &part, &id, &mut df)
                    .with_context(|| format!("{}: writing table {name}", path.display()))?;
                summary.parquet_files.push(f);
            }
        }
    }
    if let Some(f) = chrome {
        let t = chrome_trace(runs);
        summary.chrome_events = t.len();
        t.write(f)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some(dir) = hlog_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (path, r) in runs {
            let f = dir.join(format!(
                "{}.{}.{}.hlog",
                path_safe(&r.scenario.name),
                path_safe(&r.config.strategy),
                run_id(r)
            ));
            write_hlog(r, path, &f).with_context(|| format!("writing {}", f.display()))?;
            summary.hlog_files.push(f);
        }
    }
    Ok(summary)
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

fn path_safe(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn store_name(s: StoreKind) -> &'static str {
    match s {
        StoreKind::Regular => "regular",
        StoreKind::NonTemporal => "non-temporal",
    }
}

fn record_name(r: RecordFlavor) -> &'static str {
    match r {
        RecordFlavor::Poison => "poison",
        RecordFlavor::DeviceData => "device-data",
    }
}

pub fn role_name(r: ThreadRole) -> &'static str {
    match r {
        ThreadRole::Probe => "probe",
        ThreadRole::Init => "init",
        ThreadRole::Fault => "fault",
    }
}

pub fn span_kind_name(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Populate => "populate",
        SpanKind::Init => "init",
        SpanKind::PgmapPass => "pgmap-pass",
        SpanKind::Steal => "steal",
        SpanKind::Stall => "stall",
    }
}

fn frame(cols: Vec<Column>) -> anyhow::Result<DataFrame> {
    DataFrame::new_infer_height(cols).map_err(|e| anyhow::anyhow!("building a table: {e}"))
}

fn str_list(name: &str, rows: &[&[String]]) -> Column {
    let series: Vec<Series> = rows
        .iter()
        .map(|r| Series::new("".into(), r.to_vec()))
        .collect();
    c(name, series)
}

/// The tables of one run, in [`RUN_TABLES`] order.
pub fn run_tables(
    r: &RunFile,
    id: &str,
    file: &str,
) -> anyhow::Result<Vec<(&'static str, DataFrame)>> {
    let scen = r.scenario.name.as_str();
    let cfg = &r.config;
    let mut out = Vec::new();

    // runs: one row.
    let w = cfg.window.as_ref();
    out.push((
        "runs",
        frame(vec![
            c("run_id", [id]),
            c("scenario", [scen]),
            c("source_file", [file]),
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
            c("store", [store_name(cfg.params.store)]),
            c("record", [record_name(cfg.params.record)]),
            c(
                "sync_lock",
                [format!("{:?}", cfg.params.sync_lock).to_lowercase()],
            ),
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
        ])?,
    ));

    // repeats (metrics, roofline, verification).
    {
        let reps = &r.repeats;
        let m = |f: fn(&memmap_model::run::Metrics) -> u64| -> Vec<u64> {
            reps.iter().map(|x| f(&x.metrics)).collect()
        };
        let mf = |f: fn(&memmap_model::run::Metrics) -> f64| -> Vec<f64> {
            reps.iter().map(|x| f(&x.metrics)).collect()
        };
        out.push((
            "repeats",
            frame(vec![
                c("run_id", vec![id; reps.len()]),
                c("scenario", vec![scen; reps.len()]),
                c("repeat", reps.iter().map(|x| x.index).collect::<Vec<_>>()),
                c(
                    "started_unix_s",
                    reps.iter().map(|x| x.started_unix_s).collect::<Vec<_>>(),
                ),
                c("time_to_available_ns", m(|m| m.time_to_available_ns)),
                c("time_to_complete_ns", m(|m| m.time_to_complete_ns)),
                c("populate_ns", m(|m| m.populate_ns)),
                c("init_ns", m(|m| m.init_ns)),
                c("struct_pages_written", m(|m| m.struct_pages_written)),
                c("memmap_bytes_written", m(|m| m.memmap_bytes_written)),
                c("memmap_bytes_per_s", mf(|m| m.memmap_bytes_per_s)),
                c("faults", m(|m| m.faults)),
                c("stall_p50_ns", m(|m| m.stall_p50_ns)),
                c("stall_p99_ns", m(|m| m.stall_p99_ns)),
                c("stall_max_ns", m(|m| m.stall_max_ns)),
                c("fraction_of_nt_roofline", mf(|m| m.fraction_of_nt_roofline)),
                c("engine_efficiency", mf(|m| m.engine_efficiency)),
                c("uninitialised_reads", m(|m| m.uninitialised_reads)),
                c(
                    "roofline_threads",
                    reps.iter().map(|x| x.roofline.threads).collect::<Vec<_>>(),
                ),
                c(
                    "roofline_bytes",
                    reps.iter().map(|x| x.roofline.bytes).collect::<Vec<_>>(),
                ),
                c(
                    "roofline_regular_bytes_per_s",
                    reps.iter()
                        .map(|x| x.roofline.regular_bytes_per_s)
                        .collect::<Vec<_>>(),
                ),
                c(
                    "roofline_non_temporal_bytes_per_s",
                    reps.iter()
                        .map(|x| x.roofline.non_temporal_bytes_per_s)
                        .collect::<Vec<_>>(),
                ),
                c(
                    "roofline_bare_same_store_ns",
                    reps.iter()
                        .map(|x| x.roofline.bare_same_store_ns)
                        .collect::<Vec<_>>(),
                ),
                c(
                    "verify_method",
                    reps.iter()
                        .map(|x| x.verify.as_ref().map(|v| v.method.as_str()))
                        .collect::<Vec<_>>(),
                ),
                c(
                    "verify_records_checked",
                    reps.iter()
                        .map(|x| x.verify.as_ref().map(|v| v.records_checked))
                        .collect::<Vec<_>>(),
                ),
                c(
                    "verify_errors",
                    reps.iter()
                        .map(|x| x.verify.as_ref().map(|v| v.errors))
                        .collect::<Vec<_>>(),
                ),
                c(
                    "stall_samples",
                    reps.iter()
                        .map(|x| x.stalls.samples.len() as u64)
                        .collect::<Vec<_>>(),
                ),
                c(
                    "stall_samples_dropped",
                    reps.iter()
                        .map(|x| x.stalls.samples_dropped)
                        .collect::<Vec<_>>(),
                ),
            ])?,
        ));
    }

    // namespaces and phases.
    {
        let mut repeat = Vec::new();
        let mut ns = Vec::new();
        let mut cols: [Vec<u64>; 7] = Default::default();
        for rep in &r.repeats {
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
        out.push((
            "namespaces",
            frame(vec![
                c("run_id", vec![id; ns.len()]),
                c("scenario", vec![scen; ns.len()]),
                c("repeat", repeat),
                c("namespace", ns),
                c("populate_start_ns", a),
                c("populate_end_ns", b),
                c("available_ns", cc),
                c("complete_ns", d),
                c("data_pages", e),
                c("struct_pages_written", f),
                c("bytes_written", g),
            ])?,
        ));

        let (mut repeat, mut ns, mut name, mut start, mut end, mut dur) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for rep in &r.repeats {
            for p in &rep.phases {
                repeat.push(rep.index);
                ns.push(p.namespace.as_str());
                name.push(p.name.as_str());
                start.push(p.start_ns);
                end.push(p.end_ns);
                dur.push(p.end_ns.saturating_sub(p.start_ns));
            }
        }
        out.push((
            "phases",
            frame(vec![
                c("run_id", vec![id; ns.len()]),
                c("scenario", vec![scen; ns.len()]),
                c("repeat", repeat),
                c("namespace", ns),
                c("phase", name),
                c("start_ns", start),
                c("end_ns", end),
                c("dur_ns", dur),
            ])?,
        ));
    }

    // threads, counters, progress, spans.
    {
        let mut t = ThreadCols::default();
        let mut k = CounterCols::default();
        let mut p = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut s = SpanCols::default();
        for rep in &r.repeats {
            for th in &rep.threads {
                t.repeat.push(rep.index);
                t.id.push(th.id);
                t.name.push(th.name.clone());
                t.role.push(role_name(th.role));
                t.ns.push(th.namespace.clone());
                t.start.push(th.start_ns);
                t.end.push(th.end_ns);
                t.busy.push(th.busy_ns);
                t.pages.push(th.pages_done);
                t.spans.push(th.spans.len() as u64);
                t.progress.push(th.progress.len() as u64);
                let cs = &th.counters;
                for (cname, v) in [
                    ("task_clock_ns", &cs.task_clock_ns),
                    ("page_faults", &cs.page_faults),
                    ("context_switches", &cs.context_switches),
                    ("cycles", &cs.cycles),
                    ("instructions", &cs.instructions),
                ] {
                    k.repeat.push(rep.index);
                    k.id.push(th.id);
                    k.name.push(th.name.clone());
                    k.counter.push(cname);
                    match v {
                        CounterValue::Value(x) => {
                            k.value.push(Some(*x));
                            k.unsupported.push(None);
                        }
                        CounterValue::Unsupported(why) => {
                            k.value.push(None);
                            k.unsupported.push(Some(why.clone()));
                        }
                    }
                }
                for &(tn, pages) in &th.progress {
                    p.0.push(rep.index);
                    p.1.push(th.id);
                    p.2.push(tn);
                    p.3.push(pages);
                }
                for sp in &th.spans {
                    s.repeat.push(rep.index);
                    s.id.push(th.id);
                    s.kind.push(span_kind_name(sp.kind));
                    s.start.push(sp.start_ns);
                    s.end.push(sp.end_ns);
                    s.dur.push(sp.end_ns.saturating_sub(sp.start_ns));
                    s.pfn.push(sp.start_pfn);
                    s.pages.push(sp.pages);
                }
            }
        }
        let n = t.id.len();
        out.push((
            "threads",
            frame(vec![
                c("run_id", vec![id; n]),
                c("scenario", vec![scen; n]),
                c("repeat", t.repeat),
                c("thread_id", t.id),
                c("thread_name", t.name),
                c("role", t.role),
                c("namespace", t.ns),
                c("start_ns", t.start),
                c("end_ns", t.end),
                c("busy_ns", t.busy),
                c("pages_done", t.pages),
                c("spans", t.spans),
                c("progress_samples", t.progress),
            ])?,
        ));
        let n = k.id.len();
        out.push((
            "counters",
            frame(vec![
                c("run_id", vec![id; n]),
                c("scenario", vec![scen; n]),
                c("repeat", k.repeat),
                c("thread_id", k.id),
                c("thread_name", k.name),
                c("counter", k.counter),
                c("value", k.value),
                c("unsupported", k.unsupported),
            ])?,
        ));
        let n = p.0.len();
        out.push((
            "progress",
            frame(vec![
                c("run_id", vec![id; n]),
                c("scenario", vec![scen; n]),
                c("repeat", p.0),
                c("thread_id", p.1),
                c("t_ns", p.2),
                c("pages_done", p.3),
            ])?,
        ));
        let n = s.id.len();
        out.push((
            "spans",
            frame(vec![
                c("run_id", vec![id; n]),
                c("scenario", vec![scen; n]),
                c("repeat", s.repeat),
                c("thread_id", s.id),
                c("kind", s.kind),
                c("start_ns", s.start),
                c("end_ns", s.end),
                c("dur_ns", s.dur),
                c("start_pfn", s.pfn),
                c("pages", s.pages),
            ])?,
        ));
    }

    // stall samples, histograms and percentiles.
    {
        let (mut repeat, mut thread, mut t, mut pfn, mut stall) =
            (vec![], vec![], vec![], vec![], vec![]);
        for rep in &r.repeats {
            for x in &rep.stalls.samples {
                repeat.push(rep.index);
                thread.push(x.thread);
                t.push(x.t_ns);
                pfn.push(x.pfn);
                stall.push(x.stall_ns);
            }
        }
        let n = repeat.len();
        out.push((
            "stall_samples",
            frame(vec![
                c("run_id", vec![id; n]),
                c("scenario", vec![scen; n]),
                c("repeat", repeat),
                c("thread_id", thread),
                c("t_ns", t),
                c("pfn", pfn),
                c("stall_ns", stall),
            ])?,
        ));

        let mut h = HistCols::default();
        let (mut prep, mut pscope, mut ptid, mut pct, mut pval) =
            (vec![], vec![], vec![], vec![], vec![]);
        for rep in &r.repeats {
            let names: BTreeMap<u32, &str> = rep
                .threads
                .iter()
                .map(|t| (t.id, t.name.as_str()))
                .collect();
            let all = std::iter::once((None, &rep.stalls.merged)).chain(
                rep.stalls
                    .per_thread
                    .iter()
                    .map(|(tid, hist)| (Some(*tid), hist)),
            );
            for (tid, hist) in all {
                let scope = if tid.is_some() { "thread" } else { "merged" };
                h.push(
                    rep.index,
                    scope,
                    tid,
                    tid.and_then(|t| names.get(&t).copied()),
                    hist,
                );
                for &(q, v) in &hist.percentiles {
                    prep.push(rep.index);
                    pscope.push(scope);
                    ptid.push(tid);
                    pct.push(q);
                    pval.push(v);
                }
            }
        }
        let n = h.repeat.len();
        out.push((
            "stall_histograms",
            frame(vec![
                c("run_id", vec![id; n]),
                c("scenario", vec![scen; n]),
                c("repeat", h.repeat),
                c("scope", h.scope),
                c("thread_id", h.tid),
                c("thread_name", h.tname),
                c("count", h.count),
                c("min_ns", h.min),
                c("max_ns", h.max),
                c("mean_ns", h.mean),
                c("p50_ns", h.p50),
                c("p90_ns", h.p90),
                c("p99_ns", h.p99),
                c("p999_ns", h.p999),
                c("hdr_v2_deflate_base64", h.hdr),
            ])?,
        ));
        let n = prep.len();
        out.push((
            "stall_percentiles",
            frame(vec![
                c("run_id", vec![id; n]),
                c("scenario", vec![scen; n]),
                c("repeat", prep),
                c("scope", pscope),
                c("thread_id", ptid),
                c("percentile", pct),
                c("value_ns", pval),
            ])?,
        ));
    }
    debug_assert_eq!(
        out.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        RUN_TABLES.to_vec()
    );
    Ok(out)
}

#[derive(Default)]
struct ThreadCols {
    repeat: Vec<u32>,
    id: Vec<u32>,
    name: Vec<String>,
    role: Vec<&'static str>,
    ns: Vec<String>,
    start: Vec<u64>,
    end: Vec<u64>,
    busy: Vec<u64>,
    pages: Vec<u64>,
    spans: Vec<u64>,
    progress: Vec<u64>,
}

#[derive(Default)]
struct CounterCols {
    repeat: Vec<u32>,
    id: Vec<u32>,
    name: Vec<String>,
    counter: Vec<&'static str>,
    value: Vec<Option<u64>>,
    unsupported: Vec<Option<String>>,
}

#[derive(Default)]
struct SpanCols {
    repeat: Vec<u32>,
    id: Vec<u32>,
    kind: Vec<&'static str>,
    start: Vec<u64>,
    end: Vec<u64>,
    dur: Vec<u64>,
    pfn: Vec<u64>,
    pages: Vec<u64>,
}

#[derive(Default)]
struct HistCols {
    repeat: Vec<u32>,
    scope: Vec<&'static str>,
    tid: Vec<Option<u32>>,
    tname: Vec<Option<String>>,
    count: Vec<u64>,
    min: Vec<u64>,
    max: Vec<u64>,
    mean: Vec<f64>,
    p50: Vec<u64>,
    p90: Vec<u64>,
    p99: Vec<u64>,
    p999: Vec<u64>,
    hdr: Vec<String>,
}

impl HistCols {
    fn push(
        &mut self,
        repeat: u32,
        scope: &'static str,
        tid: Option<u32>,
        tname: Option<&str>,
        h: &StoredHistogram,
    ) {
        self.repeat.push(repeat);
        self.scope.push(scope);
        self.tid.push(tid);
        self.tname.push(tname.map(String::from));
        self.count.push(h.count);
        self.min.push(h.min_ns);
        self.max.push(h.max_ns);
        self.mean.push(h.mean_ns);
        self.p50.push(h.p50_ns);
        self.p90.push(h.p90_ns);
        self.p99.push(h.p99_ns);
        self.p999.push(h.p999_ns);
        self.hdr.push(h.hdr_v2_deflate_base64.clone());
    }
}

/// Points of the `pages_done total` counter per repeat, at most (plus the last).
pub const TOTAL_COUNTER_POINTS: u64 = 2000;

/// Track (tid) of the phases of namespace `i` in a repeat's process.
pub const PHASE_TID_BASE: u32 = 100_000;

/// Chrome trace of runs: one process per (run, repeat), one track per replay
/// thread (spans as "X", sampled faults as "i"), one track of phases per namespace,
/// "C" counters of pages done per thread and in total.
pub fn chrome_trace(runs: &[(PathBuf, RunFile)]) -> ChromeTrace {
    let mut t = ChromeTrace::new();
    t.other_data
        .insert("tool".into(), env!("CARGO_PKG_VERSION").into());
    t.other_data.insert(
        "source".into(),
        "memmap-replay export --chrome-trace: one process per (run, repeat); times from the repeat's start"
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
                    path.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
            );
            t.process_sort_index(pid, i64::from(pid));
            let tid_of = |id: u32| id + 1;
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
                        span_kind_name(sp.kind),
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
            // Total pages done: running sum of every thread's latest progress sample,
            // at most TOTAL_COUNTER_POINTS points (and always the last one).
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

/// The run's stall histograms as an interval log: per repeat, the merged histogram
/// tagged `<strategy>` and each fault thread's tagged `<strategy>/<thread name>`;
/// StartTime = BaseTime = the first repeat's start; each interval spans its repeat.
pub fn write_hlog(r: &RunFile, source: &Path, out: &Path) -> anyhow::Result<()> {
    let base = r
        .repeats
        .first()
        .map(|x| x.started_unix_s)
        .unwrap_or(r.created_unix_s);
    let mut intervals = Vec::new();
    for rep in &r.repeats {
        let end_ns = rep
            .threads
            .iter()
            .map(|t| t.end_ns)
            .chain([rep.metrics.time_to_complete_ns])
            .max()
            .unwrap_or(0);
        let start_s = rep.started_unix_s - base;
        let length_s = end_ns as f64 / 1e9;
        intervals.push(Interval {
            tag: r.config.strategy.clone(),
            start_s,
            length_s,
            histogram: &rep.stalls.merged,
        });
        for (tid, h) in &rep.stalls.per_thread {
            let name = rep
                .threads
                .iter()
                .find(|t| t.id == *tid)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| format!("thread-{tid}"));
            intervals.push(Interval {
                tag: format!("{}/{}", r.config.strategy, name),
                start_s,
                length_s,
                histogram: h,
            });
        }
    }
    let comments = vec![
        format!(
            "memmap-lab fault-stall histograms (ns) of {} (run {})",
            source.display(),
            run_id(r)
        ),
        format!(
            "scenario={} strategy={} host={} kernel={}",
            r.scenario.name, r.config.strategy, r.host.hostname, r.host.kernel_release
        ),
        "one interval per repeat: Tag=<strategy> merged, Tag=<strategy>/<thread> per fault thread"
            .to_string(),
    ];
    let tmp = out.with_extension("hlog.tmp");
    {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        hlog::write_interval_log(&mut w, &comments, base, &intervals)?;
        use std::io::Write as _;
        w.flush()?;
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}
