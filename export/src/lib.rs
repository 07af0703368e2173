//! memmap-export: the one home of every export of memmap-lab's run files and traces:
//! Parquet tables (polars, Hive-partitioned), Chrome trace-event JSON (Perfetto UI,
//! chrome://tracing) and HdrHistogram interval logs. Normative description:
//! `docs/parquet.md`.
//!
//! One file per exporter, the shared machinery written once:
//! - [`input`]: what a file is (run file or trace, from its `"format"` field) and reading it;
//! - [`parquet`]: partition paths, part writing, ids, the loop over a table registry;
//! - [`run_tables`], [`trace_tables`]: one function per table, one registry per kind;
//! - [`chrome_runs`], [`chrome_traces`]: the Chrome traces;
//! - [`hlog`]: the interval logs of runs.
//!
//! This crate is the only one of the workspace that builds polars: the replay and the
//! collector do not link it.

pub mod chrome_runs;
pub mod chrome_traces;
pub mod hlog;
pub mod input;
pub mod parquet;
pub mod run_tables;
pub mod trace_tables;

use anyhow::{bail, Context as _};
use input::{Kind, TraceInput};
use parquet::{write_tables, Part, Written};
use run_tables::{RunCx, RUN_TABLES};
use std::path::{Path, PathBuf};
use trace_tables::{host_name, table_dir, TraceCx, TRACE_TABLES};

/// Where to export to; at least one output must be given.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Parquet tables under this directory.
    pub parquet: Option<PathBuf>,
    /// One Chrome trace-event JSON file of every input (runs or traces, not both).
    pub chrome_trace: Option<PathBuf>,
    /// One interval log per run file under this directory.
    pub hlog: Option<PathBuf>,
    /// Host name to file every input under (`--host`).
    pub host: Option<String>,
}

/// What an export wrote.
#[derive(Clone, Debug, Default)]
pub struct ExportSummary {
    /// Run tables: rows per table over all runs, and the parts.
    pub runs: Written,
    /// Trace tables: rows per table (without the `trace_` directory prefix) over all
    /// traces, and the parts.
    pub traces: Written,
    pub chrome_events: usize,
    pub hlog_files: Vec<PathBuf>,
}

impl ExportSummary {
    /// Every Parquet part written, runs' then traces'.
    pub fn parquet_files(&self) -> impl Iterator<Item = &PathBuf> {
        self.runs.files.iter().chain(&self.traces.files)
    }

    /// The human summary on stdout: per output, what was written where; per Parquet
    /// table, its rows. When runs and traces were exported together, trace tables are
    /// named by their directory (`trace_namespaces` next to the runs' `namespaces`).
    pub fn print_human(&self, o: &Options) {
        if let Some(dir) = &o.parquet {
            println!(
                "parquet: {} files under {}",
                self.parquet_files().count(),
                dir.display()
            );
            let both = !self.runs.rows.is_empty() && !self.traces.rows.is_empty();
            let trace_rows = self.traces.rows.iter().map(|(t, n)| {
                let name = if both { table_dir(t) } else { t.clone() };
                (name, n)
            });
            for (t, n) in self
                .runs
                .rows
                .iter()
                .map(|(t, n)| (t.clone(), n))
                .chain(trace_rows)
            {
                println!("  {t:18} {n:>9} rows");
            }
        }
        if let Some(f) = &o.chrome_trace {
            println!(
                "chrome trace: {} events in {}",
                self.chrome_events,
                f.display()
            );
        }
        if let Some(dir) = &o.hlog {
            println!(
                "hlog: {} interval logs under {}",
                self.hlog_files.len(),
                dir.display()
            );
        }
    }
}

/// Export `files` (run files and/or traces, told apart by their `"format"` field) to
/// whichever outputs `o` gives. Every file's kind is checked before anything is
/// written.
pub fn export(files: &[PathBuf], o: &Options) -> anyhow::Result<ExportSummary> {
    if o.parquet.is_none() && o.chrome_trace.is_none() && o.hlog.is_none() {
        bail!("nothing to do: give --parquet DIR, --chrome-trace FILE and/or --hlog DIR");
    }
    // The Chrome trace must not be one of the inputs: refused before anything is read.
    if let Some(f) = &o.chrome_trace {
        memmap_model::output::check_destination(f, &memmap_model::output::inputs(files))
            .context("--chrome-trace")?;
    }
    let (mut runs, mut traces) = (Vec::new(), Vec::new());
    for f in files {
        match input::kind_of(f)? {
            Kind::Run => runs.push(f.as_path()),
            Kind::Trace => traces.push(f.as_path()),
        }
    }
    if o.chrome_trace.is_some() && !runs.is_empty() && !traces.is_empty() {
        // A run's clock starts at 0 each repeat, a trace's is the traced host's
        // CLOCK_MONOTONIC: one timeline of both would line up nothing.
        bail!(
            "--chrome-trace: give run files or traces, not both ({} runs, {} traces): their \
             clocks differ (a run's repeats start at 0, a trace has the traced host's \
             CLOCK_MONOTONIC); export them in two calls, to two files",
            runs.len(),
            traces.len()
        );
    }
    if o.hlog.is_some() && runs.is_empty() {
        bail!("--hlog: no run file given (interval logs are made of run files' stall histograms; traces have none)");
    }
    let mut s = ExportSummary::default();
    if !runs.is_empty() {
        export_runs(&runs, o, &mut s)?;
    }
    if !traces.is_empty() {
        export_traces(&traces, o, &mut s)?;
    }
    Ok(s)
}

/// Run files: read them all (they are small), then Parquet, Chrome trace, interval logs.
fn export_runs(files: &[&Path], o: &Options, s: &mut ExportSummary) -> anyhow::Result<()> {
    let runs = files
        .iter()
        .map(|f| Ok((f.to_path_buf(), input::read_run(f, o.host.as_deref())?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(dir) = &o.parquet {
        for (path, r) in &runs {
            let cx = RunCx::new(path, r);
            let part = Part {
                dir,
                partition: &cx.partition(),
                id: &cx.id,
                dir_of: str::to_string,
            };
            write_tables(RUN_TABLES, &cx, &part, &mut s.runs)
                .with_context(|| path.display().to_string())?;
        }
    }
    if let Some(f) = &o.chrome_trace {
        let t = chrome_runs::chrome_trace(&runs);
        s.chrome_events = t.len();
        t.write_avoiding(f, &memmap_model::output::inputs(files))
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some(dir) = &o.hlog {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (path, r) in &runs {
            let f = hlog::hlog_path(dir, r);
            hlog::write_hlog(r, path, &f).with_context(|| format!("writing {}", f.display()))?;
            s.hlog_files.push(f);
        }
    }
    Ok(())
}

/// Traces. Parquet alone reads, exports and drops one trace at a time (each trace's
/// parts are complete once written; a later malformed file stops the export with an
/// error naming it). The Chrome trace needs every trace at once.
fn export_traces(files: &[&Path], o: &Options, s: &mut ExportSummary) -> anyhow::Result<()> {
    let Some(chrome) = &o.chrome_trace else {
        for f in files {
            trace_parquet(&input::read_trace(f)?, o, s)?;
        }
        return Ok(());
    };
    let traces = files
        .iter()
        .map(|f| input::read_trace(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for t in &traces {
        trace_parquet(t, o, s)?;
    }
    let ct = chrome_traces::chrome_trace(&traces);
    s.chrome_events = ct.len();
    ct.write_avoiding(chrome, &memmap_model::output::inputs(files))
        .with_context(|| format!("writing {}", chrome.display()))
}

/// The Parquet tables of one trace, if `--parquet` was given.
fn trace_parquet(t: &TraceInput, o: &Options, s: &mut ExportSummary) -> anyhow::Result<()> {
    let Some(dir) = &o.parquet else {
        return Ok(());
    };
    let host = host_name(&t.trace, o.host.as_deref());
    let cx = TraceCx::new(&t.trace, &t.id, input::file_name(&t.path), host);
    let part = Part {
        dir,
        partition: &cx.partition(),
        id: &t.id,
        dir_of: table_dir,
    };
    write_tables(TRACE_TABLES, &cx, &part, &mut s.traces)
        .with_context(|| t.path.display().to_string())
}
