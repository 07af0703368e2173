//! The Parquet tables of a trace: one function per table, listed once in
//! [`TRACE_TABLES`]. Columns and meanings: `docs/parquet.md` ("Trace tables"); every
//! table starts with `trace_id` and `seq` (the event's position in the trace, so the
//! file's order can be restored). Layout: one directory per table, prefixed `trace_`,
//! Hive-partitioned by `host` and `kernel`, one file per trace:
//! `DIR/trace_<table>/host=<h>/kernel=<k>/part-<trace_id>.parquet`. Every table is
//! written for every trace, empty or not, so a scan of a directory always finds it.

use crate::parquet::{col as c, frame};
use memmap_model::trace::{Trace, TraceEvent, STOP_MARK};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};

/// A trace table: builds its frame from one trace.
pub type TraceTable = for<'a> fn(&TraceCx<'a>) -> anyhow::Result<DataFrame>;

/// Every trace table (directories are [`table_dir`]), in write order. A new table: one
/// function below and one line here.
pub const TRACE_TABLES: &[(&str, TraceTable)] = &[
    ("traces", traces),
    ("function_spans", function_spans),
    ("memmap_init", memmap_init),
    ("initialised", initialised),
    ("dax_faults", dax_faults),
    ("uevents", uevents),
    ("kernel_log", kernel_log),
    ("tracepoints", tracepoints),
    ("kprobes", kprobes),
    ("marks", marks),
    ("namespaces", namespaces),
    ("memory_blocks", memory_blocks),
    ("iomem", iomem),
    ("zones", zones),
    ("numa_nodes", numa_nodes),
    ("nd_devices", nd_devices),
    ("kernel_config", kernel_config),
    ("traceable", traceable),
    ("sources", sources),
];

/// Directory of a trace table under the export root.
pub fn table_dir(table: &str) -> String {
    format!("trace_{table}")
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

/// One trace being exported.
pub struct TraceCx<'a> {
    pub trace: &'a Trace,
    /// Trace id: FNV-1a 64 of the file's bytes, 16 hex digits.
    pub id: &'a str,
    /// Name of the file the trace was read from.
    pub file: String,
    /// See [`host_name`].
    pub host: &'a str,
    /// Position of the collector's stop mark: layout events after it are the closing
    /// snapshot.
    pub stop: Option<usize>,
}

impl<'a> TraceCx<'a> {
    pub fn new(trace: &'a Trace, id: &'a str, file: String, host: &'a str) -> Self {
        let stop = trace
            .events
            .iter()
            .position(|e| matches!(e, TraceEvent::Mark { text, .. } if text == STOP_MARK));
        TraceCx {
            trace,
            id,
            file,
            host,
            stop,
        }
    }

    /// The trace's Hive partition: host, kernel.
    pub fn partition(&self) -> [(&'static str, &'a str); 2] {
        [
            ("host", self.host),
            ("kernel", self.trace.header.kernel_release.as_str()),
        ]
    }

    /// Events with their position (`seq`).
    fn events(&self) -> impl Iterator<Item = (usize, &'a TraceEvent)> {
        self.trace.events.iter().enumerate()
    }

    /// Whether the event at `i` is in the closing snapshot.
    fn closing(&self, i: usize) -> bool {
        self.stop.is_some_and(|s| i > s)
    }

    /// A table: `trace_id`, `seq`, then `cols`.
    fn table(&self, seq: Vec<u64>, mut cols: Vec<Column>) -> anyhow::Result<DataFrame> {
        let n = seq.len();
        let mut all = vec![c("trace_id", vec![self.id; n]), c("seq", seq)];
        all.append(&mut cols);
        frame(all)
    }
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Rows of one table being built: `seq` plus named columns of one type each.
macro_rules! cols {
    ($($name:ident : $ty:ty),* $(,)?) => {
        #[derive(Default)]
        #[allow(non_snake_case)]
        struct Cols { seq: Vec<u64>, $($name: Vec<$ty>),* }
    };
}

/// `traces`: the header, one row (seq 0).
fn traces(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    let t = cx.trace;
    let h = &t.header;
    let first_t = t.events.iter().filter_map(|e| e.t_ns()).min();
    let last_t = t.events.iter().filter_map(|e| e.t_ns()).max();
    cx.table(
        vec![0],
        vec![
            c("source_file", [cx.file.as_str()]),
            c("host_name", [cx.host]),
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
            c("recording_stopped_seq", [cx.stop.map(|s| s as u64)]),
        ],
    )
}

fn function_spans(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, dur: u64, end: u64, func: String, task: String, pid: u32, cpu: u32);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
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
    )
}

fn memmap_init(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, dur: Option<u64>, func: String, spfn: u64, n: u64, epfn: u64, task: String, pid: u32, cpu: u32);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
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
    )
}

fn initialised(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, dev: String, pages: u64, ms: u64);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
        x.seq,
        vec![
            c("t_ns", x.t),
            c("device", x.dev),
            c("pages", x.pages),
            c("ms", x.ms),
        ],
    )
}

fn dax_faults(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, dur: Option<u64>, pmd: bool, pid: u32, cpu: u32, addr: u64, pgoff: u64, result: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
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
    )
}

fn uevents(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, action: String, devpath: String, subsystem: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
        x.seq,
        vec![
            c("t_ns", x.t),
            c("action", x.action),
            c("devpath", x.devpath),
            c("subsystem", x.subsystem),
        ],
    )
}

fn kernel_log(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, level: u32, text: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
        if let TraceEvent::KernelLog { t_ns, level, text } = e {
            x.seq.push(i as u64);
            x.t.push(*t_ns);
            x.level.push(u32::from(*level));
            x.text.push(text.clone());
        }
    }
    cx.table(
        x.seq,
        vec![c("t_ns", x.t), c("level", x.level), c("text", x.text)],
    )
}

fn tracepoints(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, name: String, task: String, pid: u32, cpu: u32, fields: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
        x.seq,
        vec![
            c("t_ns", x.t),
            c("name", x.name),
            c("task", x.task),
            c("pid", x.pid),
            c("cpu", x.cpu),
            c("fields_json", x.fields),
        ],
    )
}

fn kprobes(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, probe: String, func: String, ret: bool, task: String, pid: u32, cpu: u32, args: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
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
    )
}

fn marks(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(t: u64, text: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
        if let TraceEvent::Mark { t_ns, text } = e {
            x.seq.push(i as u64);
            x.t.push(*t_ns);
            x.text.push(text.clone());
        }
    }
    cx.table(x.seq, vec![c("t_ns", x.t), c("text", x.text)])
}

fn namespaces(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(name: String, mode: String, map: String, size: u64, align: u64, phys: u64, node: u32, closing: bool);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
            // Display is the trace's (serde) name: fsdax / devdax, mem / dev.
            x.mode.push(mode.to_string());
            x.map.push(map.to_string());
            x.size.push(*size_bytes);
            x.align.push(*align_bytes);
            x.phys.push(*start_phys);
            x.node.push(*node);
            x.closing.push(cx.closing(i));
        }
    }
    cx.table(
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
    )
}

fn memory_blocks(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(index: u64, phys: u64, size: u64, state: String, node: Option<u32>, zones: String, closing: bool);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
            x.closing.push(cx.closing(i));
        }
    }
    cx.table(
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
    )
}

fn iomem(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(start: u64, end: u64, name: String, depth: u32, closing: bool);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
            x.closing.push(cx.closing(i));
        }
    }
    cx.table(
        x.seq,
        vec![
            c("start", x.start),
            c("end", x.end),
            c("name", x.name),
            c("depth", x.depth),
            c("closing_snapshot", x.closing),
        ],
    )
}

fn zones(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(node: u32, zone: String, spfn: u64, spanned: u64, present: u64, managed: u64, closing: bool);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
            x.closing.push(cx.closing(i));
        }
    }
    cx.table(
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
    )
}

fn numa_nodes(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(node: u32, cpulist: String, mem: u64);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
        x.seq,
        vec![
            c("node", x.node),
            c("cpulist", x.cpulist),
            c("mem_total_bytes", x.mem),
        ],
    )
}

fn nd_devices(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(dev: String, devtype: String, attrs: String, closing: bool);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
            x.closing.push(cx.closing(i));
        }
    }
    cx.table(
        x.seq,
        vec![
            c("dev", x.dev),
            c("devtype", x.devtype),
            c("attrs_json", x.attrs),
            c("closing_snapshot", x.closing),
        ],
    )
}

/// `kernel_config`: one row per option.
fn kernel_config(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(option: String, value: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
        if let TraceEvent::KernelConfig { options } = e {
            for (k, v) in options {
                x.seq.push(i as u64);
                x.option.push(k.clone());
                x.value.push(v.clone());
            }
        }
    }
    cx.table(x.seq, vec![c("option", x.option), c("value", x.value)])
}

fn traceable(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(func: String, ftrace: bool, kprobe: bool, reason: String);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
        x.seq,
        vec![
            c("func", x.func),
            c("ftrace", x.ftrace),
            c("kprobe", x.kprobe),
            c("reason", x.reason),
        ],
    )
}

/// `sources`: what the collector used, could not use, lost, and import warnings.
fn sources(cx: &TraceCx) -> anyhow::Result<DataFrame> {
    cols!(kind: &'static str, source: String, detail: String, count: Option<u64>);
    let mut x = Cols::default();
    for (i, e) in cx.events() {
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
    cx.table(
        x.seq,
        vec![
            c("kind", x.kind),
            c("source", x.source),
            c("detail", x.detail),
            c("count", x.count),
        ],
    )
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
