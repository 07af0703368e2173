//! `memmap-collect export`: traces to Parquet tables (polars) and Chrome trace-event
//! JSON (Perfetto UI, chrome://tracing).
//!
//! Parquet layout (normative description: `docs/parquet.md`): one directory per
//! table, Hive-partitioned by `host` and `kernel`, one file per trace:
//! `DIR/trace_<table>/host=<h>/kernel=<k>/part-<trace_id>.parquet`. The host is the
//! trace header's host name, `--host` when given (imports have none), else `unknown`.
//! The partition keys live
//! in the path only; every file carries `trace_id` and `seq` (the event's position in
//! the trace, so the file's order can be restored). Every table is written for every
//! trace, empty or not, so that a scan of the directory always finds every table.

use anyhow::{bail, Context as _};
use memmap_model::chrome::ChromeTrace;
use memmap_model::chrome_args;
use memmap_model::layout::{MapLocation, NsMode};
use memmap_model::parquet::{col as c, write_part, Fnv1a64, HashingReader};
use memmap_model::trace::{Trace, TraceEvent};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every trace table (directory names are prefixed with `trace_`), in write order.
pub const TRACE_TABLES: &[&str] = &[
    "traces",
    "function_spans",
    "memmap_init",
    "initialised",
    "dax_faults",
    "uevents",
    "kernel_log",
    "tracepoints",
    "kprobes",
    "marks",
    "namespaces",
    "memory_blocks",
    "iomem",
    "zones",
    "numa_nodes",
    "nd_devices",
    "kernel_config",
    "traceable",
    "sources",
];

/// Directory of a trace table under the export root.
pub fn table_dir(table: &str) -> String {
    format!("trace_{table}")
}

/// Text of the collector's closing mark: layout events after it are the closing snapshot.
pub const STOP_MARK: &str = "memmap-collect: recording stopped";

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub parquet: Option<PathBuf>,
    pub chrome_trace: Option<PathBuf>,
    /// Host name for the `host` partition, over the trace header's.
    pub host: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ExportSummary {
    pub rows: BTreeMap<String, u64>,
    pub parquet_files: Vec<PathBuf>,
    pub chrome_events: usize,
}

/// Read the traces and export them. Parquet alone reads one trace at a time (each
/// trace's parts are complete once written; a later malformed file stops the export
/// with an error naming it). The Chrome trace needs every trace at once.
pub fn run(files: &[PathBuf], opts: &ExportOptions) -> anyhow::Result<ExportSummary> {
    if opts.parquet.is_none() && opts.chrome_trace.is_none() {
        bail!("export: nothing to do: give --parquet DIR and/or --chrome-trace FILE");
    }
    if opts.chrome_trace.is_none() {
        let mut s = ExportSummary::default();
        for f in files {
            let one = export_traces(&[read_trace(f)?], opts)?;
            for (table, n) in one.rows {
                *s.rows.entry(table).or_default() += n;
            }
            s.parquet_files.extend(one.parquet_files);
        }
        return Ok(s);
    }
    let traces = files
        .iter()
        .map(read_trace)
        .collect::<anyhow::Result<Vec<_>>>()?;
    export_traces(&traces, opts)
}

/// (path, trace id, trace): the id is the FNV-1a of the file's bytes, hashed as the
/// file is parsed rather than after reading it whole.
fn read_trace(f: &PathBuf) -> anyhow::Result<(PathBuf, String, Trace)> {
    let file = std::fs::File::open(f).with_context(|| format!("{}: cannot read", f.display()))?;
    let mut r = std::io::BufReader::with_capacity(
        1 << 20,
        HashingReader {
            inner: file,
            hash: Fnv1a64::default(),
        },
    );
    let t = Trace::from_reader(&f.display().to_string(), &mut r)?;
    // The parser reads to the end; make sure of it, the id must cover every byte.
    std::io::copy(&mut r, &mut std::io::sink())
        .with_context(|| format!("{}: cannot read", f.display()))?;
    for w in &t.warnings {
        eprintln!("memmap-collect: warning: {w}");
    }
    let id = format!("{:016x}", r.get_ref().hash.0);
    Ok((f.clone(), id, t))
}

/// Export already-read traces: (path, trace id, trace).
pub fn export_traces(
    traces: &[(PathBuf, String, Trace)],
    opts: &ExportOptions,
) -> anyhow::Result<ExportSummary> {
    let mut s = ExportSummary::default();
    if let Some(dir) = &opts.parquet {
        for (path, id, t) in traces {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let host = host_name(t, opts.host.as_deref());
            let tables = trace_tables(t, id, &file, host)
                .with_context(|| format!("{}: building the tables", path.display()))?;
            let part = [("host", host), ("kernel", t.header.kernel_release.as_str())];
            for (name, mut df) in tables {
                *s.rows.entry(name.to_string()).or_default() += df.height() as u64;
                let f = write_part(dir, &table_dir(name), &part, id, &mut df)
                    .with_context(|| format!("{}: writing table {name}", path.display()))?;
                s.parquet_files.push(f);
            }
        }
    }
    if let Some(f) = &opts.chrome_trace {
        let t = chrome_trace(traces);
        s.chrome_events = t.len();
        t.write(f)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(s)
}

fn frame(id: &str, seq: Vec<u64>, mut cols: Vec<Column>) -> anyhow::Result<DataFrame> {
    let n = seq.len();
    let mut all = vec![c("trace_id", vec![id; n]), c("seq", seq)];
    all.append(&mut cols);
    DataFrame::new_infer_height(all).map_err(|e| anyhow::anyhow!("building a table: {e}"))
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn mode_name(m: NsMode) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{m:?}").to_lowercase())
}

fn map_name(m: MapLocation) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{m:?}").to_lowercase())
}

/// Rows of one table being built: `seq` plus named columns of one type each.
macro_rules! cols {
    ($($name:ident : $ty:ty),* $(,)?) => {
        #[derive(Default)]
        #[allow(non_snake_case)]
        struct Cols { seq: Vec<u64>, $($name: Vec<$ty>),* }
    };
}

/// The host a trace is filed under: `--host`, else the header's host name, else
/// `unknown` (imports; "(none)" is what a kernel reports when nobody set a name).
pub fn host_name<'a>(t: &'a Trace, host: Option<&'a str>) -> &'a str {
    match (host, t.header.hostname.as_str()) {
        (Some(h), _) => h,
        (None, "" | "(none)") => "unknown",
        (None, h) => h,
    }
}

/// The tables of one trace, in [`TRACE_TABLES`] order.
pub fn trace_tables(
    t: &Trace,
    id: &str,
    file: &str,
    host: &str,
) -> anyhow::Result<Vec<(&'static str, DataFrame)>> {
    let stop = t
        .events
        .iter()
        .position(|e| matches!(e, TraceEvent::Mark { text, .. } if text == STOP_MARK));
    let closing = |i: usize| stop.is_some_and(|s| i > s);
    let h = &t.header;
    let mut out = Vec::new();

    let first_t = t.events.iter().filter_map(|e| e.t_ns()).min();
    let last_t = t.events.iter().filter_map(|e| e.t_ns()).max();
    out.push((
        "traces",
        frame(
            id,
            vec![0],
            vec![
                c("source_file", [file]),
                c("host_name", [host]),
                c("kernel_release", [h.kernel_release.as_str()]),
                c("source", [h.source.as_str()]),
                c("format_version", [h.version]),
                c("created_unix_s", [h.created_unix_s]),
                c("cmdline", [h.cmdline.as_str()]),
                c("numa_nodes", [h.numa_nodes]),
                c("cpus", [h.cpus]),
                c("notes", vec![Series::new("".into(), h.notes.clone())]),
                c("events", [t.events.len() as u64]),
                c("warnings", [t.warnings.len() as u64]),
                c("first_t_ns", [first_t]),
                c("last_t_ns", [last_t]),
                c("recording_stopped_seq", [stop.map(|s| s as u64)]),
            ],
        )?,
    ));

    // function_spans
    {
        cols!(t: u64, dur: u64, end: u64, func: String, task: String, pid: u32, cpu: u32);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::FunctionSpan {
                t_ns,
                dur_ns,
                func,
                task,
                pid,
                cpu,
            } = e
            {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.dur.push(*dur_ns);
                x.end.push(t_ns + dur_ns);
                x.func.push(func.clone());
                x.task.push(task.clone());
                x.pid.push(*pid);
                x.cpu.push(*cpu);
            }
        }
        out.push((
            "function_spans",
            frame(
                id,
                x.seq,
                vec![
                    c("t_ns", x.t),
                    c("dur_ns", x.dur),
                    c("end_ns", x.end),
                    c("func", x.func),
                    c("task", x.task),
                    c("pid", x.pid),
                    c("cpu", x.cpu),
                ],
            )?,
        ));
    }

    // memmap_init
    {
        cols!(t: u64, dur: Option<u64>, func: String, spfn: u64, n: u64, epfn: u64, task: String, pid: u32, cpu: u32);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::MemmapInit {
                t_ns,
                dur_ns,
                func,
                start_pfn,
                nr_pages,
                task,
                pid,
                cpu,
            } = e
            {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.dur.push(*dur_ns);
                x.func.push(func.clone());
                x.spfn.push(*start_pfn);
                x.n.push(*nr_pages);
                x.epfn.push(start_pfn + nr_pages);
                x.task.push(task.clone());
                x.pid.push(*pid);
                x.cpu.push(*cpu);
            }
        }
        out.push((
            "memmap_init",
            frame(
                id,
                x.seq,
                vec![
                    c("t_ns", x.t),
                    c("dur_ns", x.dur),
                    c("func", x.func),
                    c("start_pfn", x.spfn),
                    c("nr_pages", x.n),
                    c("end_pfn", x.epfn),
                    c("task", x.task),
                    c("pid", x.pid),
                    c("cpu", x.cpu),
                ],
            )?,
        ));
    }

    // initialised
    {
        cols!(t: u64, dev: String, pages: u64, ms: u64);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Initialised {
                t_ns,
                device,
                pages,
                ms,
            } = e
            {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.dev.push(device.clone());
                x.pages.push(*pages);
                x.ms.push(*ms);
            }
        }
        out.push((
            "initialised",
            frame(
                id,
                x.seq,
                vec![
                    c("t_ns", x.t),
                    c("device", x.dev),
                    c("pages", x.pages),
                    c("ms", x.ms),
                ],
            )?,
        ));
    }

    // dax_faults
    {
        cols!(t: u64, dur: Option<u64>, pmd: bool, pid: u32, cpu: u32, addr: u64, pgoff: u64, result: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::DaxFault {
                t_ns,
                dur_ns,
                pmd,
                pid,
                cpu,
                address,
                pgoff,
                result,
            } = e
            {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.dur.push(*dur_ns);
                x.pmd.push(*pmd);
                x.pid.push(*pid);
                x.cpu.push(*cpu);
                x.addr.push(*address);
                x.pgoff.push(*pgoff);
                x.result.push(result.clone());
            }
        }
        out.push((
            "dax_faults",
            frame(
                id,
                x.seq,
                vec![
                    c("t_ns", x.t),
                    c("dur_ns", x.dur),
                    c("pmd", x.pmd),
                    c("pid", x.pid),
                    c("cpu", x.cpu),
                    c("address", x.addr),
                    c("pgoff", x.pgoff),
                    c("result", x.result),
                ],
            )?,
        ));
    }

    // uevents
    {
        cols!(t: u64, action: String, devpath: String, subsystem: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Uevent {
                t_ns,
                action,
                devpath,
                subsystem,
            } = e
            {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.action.push(action.clone());
                x.devpath.push(devpath.clone());
                x.subsystem.push(subsystem.clone());
            }
        }
        out.push((
            "uevents",
            frame(
                id,
                x.seq,
                vec![
                    c("t_ns", x.t),
                    c("action", x.action),
                    c("devpath", x.devpath),
                    c("subsystem", x.subsystem),
                ],
            )?,
        ));
    }

    // kernel_log
    {
        cols!(t: u64, level: u32, text: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::KernelLog { t_ns, level, text } = e {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.level.push(u32::from(*level));
                x.text.push(text.clone());
            }
        }
        out.push((
            "kernel_log",
            frame(
                id,
                x.seq,
                vec![c("t_ns", x.t), c("level", x.level), c("text", x.text)],
            )?,
        ));
    }

    // tracepoints
    {
        cols!(t: u64, name: String, task: String, pid: u32, cpu: u32, fields: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Tracepoint {
                t_ns,
                name,
                task,
                pid,
                cpu,
                fields,
            } = e
            {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.name.push(name.clone());
                x.task.push(task.clone());
                x.pid.push(*pid);
                x.cpu.push(*cpu);
                x.fields.push(json(fields));
            }
        }
        out.push((
            "tracepoints",
            frame(
                id,
                x.seq,
                vec![
                    c("t_ns", x.t),
                    c("name", x.name),
                    c("task", x.task),
                    c("pid", x.pid),
                    c("cpu", x.cpu),
                    c("fields_json", x.fields),
                ],
            )?,
        ));
    }

    // kprobes
    {
        cols!(t: u64, probe: String, func: String, ret: bool, task: String, pid: u32, cpu: u32, args: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Kprobe {
                t_ns,
                probe,
                func,
                ret,
                task,
                pid,
                cpu,
                args,
            } = e
            {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.probe.push(probe.clone());
                x.func.push(func.clone());
                x.ret.push(*ret);
                x.task.push(task.clone());
                x.pid.push(*pid);
                x.cpu.push(*cpu);
                x.args.push(json(args));
            }
        }
        out.push((
            "kprobes",
            frame(
                id,
                x.seq,
                vec![
                    c("t_ns", x.t),
                    c("probe", x.probe),
                    c("func", x.func),
                    c("ret", x.ret),
                    c("task", x.task),
                    c("pid", x.pid),
                    c("cpu", x.cpu),
                    c("args_json", x.args),
                ],
            )?,
        ));
    }

    // marks
    {
        cols!(t: u64, text: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Mark { t_ns, text } = e {
                x.seq.push(i as u64);
                x.t.push(*t_ns);
                x.text.push(text.clone());
            }
        }
        out.push((
            "marks",
            frame(id, x.seq, vec![c("t_ns", x.t), c("text", x.text)])?,
        ));
    }

    // namespaces
    {
        cols!(name: String, mode: String, map: String, size: u64, align: u64, phys: u64, node: u32, closing: bool);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Namespace {
                name,
                mode,
                map,
                size_bytes,
                align_bytes,
                start_phys,
                node,
            } = e
            {
                x.seq.push(i as u64);
                x.name.push(name.clone());
                x.mode.push(mode_name(*mode));
                x.map.push(map_name(*map));
                x.size.push(*size_bytes);
                x.align.push(*align_bytes);
                x.phys.push(*start_phys);
                x.node.push(*node);
                x.closing.push(closing(i));
            }
        }
        out.push((
            "namespaces",
            frame(
                id,
                x.seq,
                vec![
                    c("name", x.name),
                    c("mode", x.mode),
                    c("map", x.map),
                    c("size_bytes", x.size),
                    c("align_bytes", x.align),
                    c("start_phys", x.phys),
                    c("node", x.node),
                    c("closing_snapshot", x.closing),
                ],
            )?,
        ));
    }

    // memory_blocks
    {
        cols!(index: u64, phys: u64, size: u64, state: String, node: Option<u32>, zones: String, closing: bool);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::MemoryBlock {
                index,
                phys_start,
                size_bytes,
                state,
                node,
                valid_zones,
            } = e
            {
                x.seq.push(i as u64);
                x.index.push(*index);
                x.phys.push(*phys_start);
                x.size.push(*size_bytes);
                x.state.push(state.clone());
                x.node.push(*node);
                x.zones.push(valid_zones.clone());
                x.closing.push(closing(i));
            }
        }
        out.push((
            "memory_blocks",
            frame(
                id,
                x.seq,
                vec![
                    c("block", x.index),
                    c("phys_start", x.phys),
                    c("size_bytes", x.size),
                    c("state", x.state),
                    c("node", x.node),
                    c("valid_zones", x.zones),
                    c("closing_snapshot", x.closing),
                ],
            )?,
        ));
    }

    // iomem
    {
        cols!(start: u64, end: u64, name: String, depth: u32, closing: bool);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Iomem {
                start,
                end,
                name,
                depth,
            } = e
            {
                x.seq.push(i as u64);
                x.start.push(*start);
                x.end.push(*end);
                x.name.push(name.clone());
                x.depth.push(*depth);
                x.closing.push(closing(i));
            }
        }
        out.push((
            "iomem",
            frame(
                id,
                x.seq,
                vec![
                    c("start", x.start),
                    c("end", x.end),
                    c("name", x.name),
                    c("depth", x.depth),
                    c("closing_snapshot", x.closing),
                ],
            )?,
        ));
    }

    // zones
    {
        cols!(node: u32, zone: String, spfn: u64, spanned: u64, present: u64, managed: u64, closing: bool);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Zone {
                node,
                zone,
                start_pfn,
                spanned,
                present,
                managed,
            } = e
            {
                x.seq.push(i as u64);
                x.node.push(*node);
                x.zone.push(zone.clone());
                x.spfn.push(*start_pfn);
                x.spanned.push(*spanned);
                x.present.push(*present);
                x.managed.push(*managed);
                x.closing.push(closing(i));
            }
        }
        out.push((
            "zones",
            frame(
                id,
                x.seq,
                vec![
                    c("node", x.node),
                    c("zone", x.zone),
                    c("start_pfn", x.spfn),
                    c("spanned", x.spanned),
                    c("present", x.present),
                    c("managed", x.managed),
                    c("closing_snapshot", x.closing),
                ],
            )?,
        ));
    }

    // numa_nodes
    {
        cols!(node: u32, cpulist: String, mem: u64);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::NumaNode {
                node,
                cpulist,
                mem_total_bytes,
            } = e
            {
                x.seq.push(i as u64);
                x.node.push(*node);
                x.cpulist.push(cpulist.clone());
                x.mem.push(*mem_total_bytes);
            }
        }
        out.push((
            "numa_nodes",
            frame(
                id,
                x.seq,
                vec![
                    c("node", x.node),
                    c("cpulist", x.cpulist),
                    c("mem_total_bytes", x.mem),
                ],
            )?,
        ));
    }

    // nd_devices
    {
        cols!(dev: String, devtype: String, attrs: String, closing: bool);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::NdDevice {
                dev,
                devtype,
                attrs,
            } = e
            {
                x.seq.push(i as u64);
                x.dev.push(dev.clone());
                x.devtype.push(devtype.clone());
                x.attrs.push(json(attrs));
                x.closing.push(closing(i));
            }
        }
        out.push((
            "nd_devices",
            frame(
                id,
                x.seq,
                vec![
                    c("dev", x.dev),
                    c("devtype", x.devtype),
                    c("attrs_json", x.attrs),
                    c("closing_snapshot", x.closing),
                ],
            )?,
        ));
    }

    // kernel_config: one row per option.
    {
        cols!(option: String, value: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::KernelConfig { options } = e {
                for (k, v) in options {
                    x.seq.push(i as u64);
                    x.option.push(k.clone());
                    x.value.push(v.clone());
                }
            }
        }
        out.push((
            "kernel_config",
            frame(id, x.seq, vec![c("option", x.option), c("value", x.value)])?,
        ));
    }

    // traceable
    {
        cols!(func: String, ftrace: bool, kprobe: bool, reason: String);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            if let TraceEvent::Traceable {
                func,
                ftrace,
                kprobe,
                reason,
            } = e
            {
                x.seq.push(i as u64);
                x.func.push(func.clone());
                x.ftrace.push(*ftrace);
                x.kprobe.push(*kprobe);
                x.reason.push(reason.clone());
            }
        }
        out.push((
            "traceable",
            frame(
                id,
                x.seq,
                vec![
                    c("func", x.func),
                    c("ftrace", x.ftrace),
                    c("kprobe", x.kprobe),
                    c("reason", x.reason),
                ],
            )?,
        ));
    }

    // sources: what the collector used, could not use, lost, and import warnings.
    {
        cols!(kind: &'static str, source: String, detail: String, count: Option<u64>);
        let mut x = Cols::default();
        for (i, e) in t.events.iter().enumerate() {
            let row = match e {
                TraceEvent::Source { source, detail } => {
                    Some(("source", source.clone(), detail.clone(), None))
                }
                TraceEvent::Unavailable { source, reason } => {
                    Some(("unavailable", source.clone(), reason.clone(), None))
                }
                TraceEvent::Lost { source, count } => {
                    Some(("lost", source.clone(), String::new(), Some(*count)))
                }
                TraceEvent::ImportWarning { file, line, reason } => Some((
                    "import-warning",
                    format!("{file}:{line}"),
                    reason.clone(),
                    None,
                )),
                _ => None,
            };
            if let Some((k, s, d, n)) = row {
                x.seq.push(i as u64);
                x.kind.push(k);
                x.source.push(s);
                x.detail.push(d);
                x.count.push(n);
            }
        }
        out.push((
            "sources",
            frame(
                id,
                x.seq,
                vec![
                    c("kind", x.kind),
                    c("source", x.source),
                    c("detail", x.detail),
                    c("count", x.count),
                ],
            )?,
        ));
    }

    debug_assert_eq!(
        out.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        TRACE_TABLES.to_vec()
    );
    Ok(out)
}

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

/// Chrome trace of traces: one process per trace; one track per kernel task (pid)
/// with function_graph spans and memmap-init pfn ranges as "X" (or "i" without a
/// duration), DAX faults as "X"/"i", tracepoints and kprobes as "i"; tracks for marks,
/// uevents and the kernel log; a "C" counter of pages initialised per function.
/// Times are the traced host's CLOCK_MONOTONIC.
pub fn chrome_trace(traces: &[(PathBuf, String, Trace)]) -> ChromeTrace {
    let mut ct = ChromeTrace::new();
    ct.other_data
        .insert("tool".into(), env!("CARGO_PKG_VERSION").into());
    ct.other_data.insert(
        "source".into(),
        "memmap-collect export --chrome-trace: one process per trace; times are the traced host's CLOCK_MONOTONIC"
            .into(),
    );
    for (n, (path, _id, t)) in traces.iter().enumerate() {
        let pid = n as u32 + 1;
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        ct.process_name(
            pid,
            &format!("{file} ({}, {})", t.header.kernel_release, t.header.source),
        );
        ct.process_sort_index(pid, i64::from(pid));
        // Task names per pid from every event that has one (DAX faults have none).
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
        let mut tasks_used: std::collections::BTreeSet<u32> = Default::default();
        let mut name_task = |_: &mut ChromeTrace, tid: u32, _: &str| {
            tasks_used.insert(tid);
        };
        let synthetic = |ct: &mut ChromeTrace, tid: u32, name: &str, used: &mut bool| {
            if !*used {
                ct.thread_name(pid, tid, name);
                ct.thread_sort_index(pid, tid, -1);
                *used = true;
            }
        };
        let (mut m_used, mut u_used, mut k_used) = (false, false, false);
        let mut init_events: Vec<(u64, String, u64)> = Vec::new();
        for e in &t.events {
            match e {
                TraceEvent::FunctionSpan {
                    t_ns,
                    dur_ns,
                    func,
                    task,
                    pid: tp,
                    cpu,
                } => {
                    name_task(&mut ct, *tp, task);
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
                    task,
                    pid: tp,
                    cpu,
                } => {
                    name_task(&mut ct, *tp, task);
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
                        init_events.push((t_ns + dur_ns.unwrap_or(0), func.clone(), *nr_pages));
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
                    name_task(&mut ct, *tp, "");
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
                    task,
                    pid: tp,
                    cpu,
                    fields,
                } => {
                    name_task(&mut ct, *tp, task);
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
                    task,
                    pid: tp,
                    cpu,
                    args,
                } => {
                    name_task(&mut ct, *tp, task);
                    let mut a: serde_json::Map<String, serde_json::Value> = args
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().into()))
                        .collect();
                    a.insert("func".into(), func.as_str().into());
                    a.insert("ret".into(), (*ret).into());
                    a.insert("cpu".into(), (*cpu).into());
                    ct.instant(pid, *tp, "kprobe", probe, *t_ns, a);
                }
                TraceEvent::Mark { t_ns, text } => {
                    synthetic(&mut ct, TID_MARKS, "marks", &mut m_used);
                    ct.instant(pid, TID_MARKS, "mark", text, *t_ns, serde_json::Map::new());
                    ct.process_instant(pid, "mark", text, *t_ns, serde_json::Map::new());
                }
                TraceEvent::Uevent {
                    t_ns,
                    action,
                    devpath,
                    subsystem,
                } => {
                    synthetic(&mut ct, TID_UEVENTS, "uevents", &mut u_used);
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
                    synthetic(&mut ct, TID_KERNEL_LOG, "kernel log", &mut k_used);
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
                    synthetic(&mut ct, TID_KERNEL_LOG, "kernel log", &mut k_used);
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
        for tid in tasks_used {
            let label = match task_of.get(&tid) {
                Some(task) => format!("{task} ({tid})"),
                None => format!("pid {tid}"),
            };
            ct.thread_name(pid, tid, &label);
        }
        // Cumulative pages initialised, one series per function (they overlap: a
        // ZONE_DEVICE range goes through move_pfn_range_to_zone and
        // memmap_init_zone_device, so the series are not summed).
        init_events.sort();
        let mut acc: BTreeMap<String, u64> = BTreeMap::new();
        if let Some((t0, _, _)) = init_events.first() {
            let funcs: Vec<String> = init_events.iter().map(|e| e.1.clone()).collect();
            for f in funcs {
                acc.insert(f, 0);
            }
            let zero: Vec<(&str, f64)> = acc.keys().map(|k| (k.as_str(), 0.0)).collect();
            ct.counter(pid, "pages initialised", t0.saturating_sub(1), &zero);
        }
        for (tn, func, pages) in &init_events {
            *acc.entry(func.clone()).or_default() += pages;
            let series: Vec<(&str, f64)> =
                acc.iter().map(|(k, v)| (k.as_str(), *v as f64)).collect();
            ct.counter(pid, "pages initialised", *tn, &series);
        }
    }
    ct
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap_model::trace::TraceHeader;

    fn trace_on(hostname: &str) -> Trace {
        let mut header = TraceHeader::new("live");
        header.hostname = hostname.into();
        Trace {
            header,
            events: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn host_is_the_flag_then_the_header_then_unknown() {
        assert_eq!(host_name(&trace_on("pmem-box"), None), "pmem-box");
        assert_eq!(host_name(&trace_on("pmem-box"), Some("lab-1")), "lab-1");
        assert_eq!(host_name(&trace_on(""), None), "unknown");
        assert_eq!(host_name(&trace_on("(none)"), None), "unknown");
        assert_eq!(host_name(&trace_on("(none)"), Some("guest")), "guest");
    }
}
