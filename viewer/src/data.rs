//! Loading run files and traces into what the views draw: timelines with
//! level-of-detail rows (see [`crate::lod`]), progress curves, stall histograms and
//! layouts. Loading never panics on bad input: every failure is a [`LoadError`]
//! naming the file, the line when known, and the reason.

use crate::lod::{rows_from_spans, InstantRow, RawSpan, SpanRow};
use hdrhistogram::Histogram;
use memmap_model::layout::{
    hotplug_layout, namespace_layout, HotplugSpec, LayoutParams, NamespaceSpec, RangeLayout,
};
use memmap_model::run::{RunFile, RunFileError, SpanKind, ThreadRole};
use memmap_model::trace::{TraceEvent, TraceHeader, TRACE_FORMAT, TRACE_VERSION};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a file could not be opened.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadError {
    pub path: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path, l, self.reason),
            None => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

/// Maximum nesting rows per timeline lane (deeper function_graph levels are folded).
pub const MAX_ROWS: usize = 6;

/// One lane of the timeline: a thread of a replay, or a task/CPU of a trace.
#[derive(Clone, Debug, Default)]
pub struct Lane {
    pub name: String,
    pub rows: Vec<SpanRow>,
    pub instants: InstantRow,
}

/// Everything the timeline draws for one run repeat or one trace.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub lanes: Vec<Lane>,
    /// Span and instant labels (span kinds, function names, fault kinds, mark texts).
    pub labels: Vec<String>,
    pub t_min: u64,
    pub t_max: u64,
    pub n_spans: usize,
    pub n_instants: usize,
    /// What the `aux` fields of spans mean ("first pfn") and of instants ("pfn", "address").
    pub span_aux: &'static str,
    pub instant_aux: &'static str,
    /// Instant labels that are faults (their value is a latency).
    pub fault_labels: Vec<bool>,
}

impl Timeline {
    pub fn heap_bytes(&self) -> usize {
        self.lanes
            .iter()
            .map(|l| {
                l.rows.iter().map(SpanRow::heap_bytes).sum::<usize>() + l.instants.heap_bytes()
            })
            .sum::<usize>()
            + self.labels.iter().map(|s| s.capacity()).sum::<usize>()
    }

    fn finish(&mut self) {
        let mut t_min = u64::MAX;
        let mut t_max = 0;
        self.n_spans = 0;
        self.n_instants = 0;
        for l in &mut self.lanes {
            l.instants.finish();
            for r in &l.rows {
                if let (Some(&s), Some(&e)) = (r.start.first(), r.end.iter().max()) {
                    t_min = t_min.min(s);
                    t_max = t_max.max(e);
                }
                self.n_spans += r.len();
            }
            if let (Some(&s), Some(&e)) = (l.instants.t.first(), l.instants.t.last()) {
                t_min = t_min.min(s);
                t_max = t_max.max(e);
            }
            self.n_instants += l.instants.len();
        }
        if t_min == u64::MAX {
            t_min = 0;
        }
        self.t_min = t_min;
        self.t_max = t_max.max(t_min + 1);
        self.fault_labels.resize(self.labels.len(), false);
    }
}

/// Interns label strings.
#[derive(Default)]
struct Labels {
    map: HashMap<String, u32>,
    list: Vec<String>,
}

impl Labels {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.map.insert(s.to_string(), i);
        self.list.push(s.to_string());
        i
    }
}

/// Pages initialised over time (one curve per thread plus the total).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// (name, [(t_ns, pages)]).
    pub threads: Vec<(String, Vec<[f64; 2]>)>,
    pub total: Vec<[f64; 2]>,
    /// (label, t_ns): namespace available / complete moments.
    pub marks: Vec<(String, f64)>,
}

/// A loaded run file and what was derived from it.
pub struct RunDoc {
    pub run: RunFile,
    /// One timeline per repeat, built on demand.
    timelines: Vec<Option<Timeline>>,
    /// Merged stall histogram of each repeat (decoded), None when it would not decode.
    pub stall_hists: Vec<Option<Histogram<u64>>>,
    pub hist_errors: Vec<String>,
}

impl RunDoc {
    pub fn new(run: RunFile) -> RunDoc {
        let mut hist_errors = Vec::new();
        let stall_hists = run
            .repeats
            .iter()
            .map(|r| match r.stalls.merged.decode() {
                Ok(h) => Some(h),
                Err(e) => {
                    hist_errors.push(format!("repeat {}: {e}", r.index));
                    None
                }
            })
            .collect();
        let n = run.repeats.len();
        RunDoc {
            run,
            timelines: (0..n).map(|_| None).collect(),
            stall_hists,
            hist_errors,
        }
    }

    pub fn timeline(&mut self, repeat: usize) -> Option<&Timeline> {
        if repeat >= self.run.repeats.len() {
            return None;
        }
        if self.timelines[repeat].is_none() {
            self.timelines[repeat] = Some(run_timeline(&self.run, repeat));
        }
        self.timelines[repeat].as_ref()
    }

    pub fn progress(&self, repeat: usize) -> Progress {
        run_progress(&self.run, repeat)
    }

    /// Stall histogram of all repeats together.
    pub fn merged_stalls(&self) -> Option<Histogram<u64>> {
        let mut out: Option<Histogram<u64>> = None;
        for h in self.stall_hists.iter().flatten() {
            match &mut out {
                None => out = Some(h.clone()),
                Some(o) => {
                    let _ = o.add(h);
                }
            }
        }
        out
    }
}

fn span_kind_name(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Populate => "populate",
        SpanKind::Init => "init",
        SpanKind::PgmapPass => "pgmap-pass",
        SpanKind::Steal => "steal",
        SpanKind::Stall => "stall",
    }
}

fn run_timeline(run: &RunFile, repeat: usize) -> Timeline {
    let rep = &run.repeats[repeat];
    let mut labels = Labels::default();
    let mut lanes = Vec::new();
    // Phases lane.
    let phase_spans: Vec<_> = rep
        .phases
        .iter()
        .map(|p| {
            let l = labels.id(&format!("phase {} {}", p.name, p.namespace));
            (p.start_ns, p.end_ns, l, 0, 0)
        })
        .collect();
    let mut events = InstantRow::default();
    for ns in &rep.namespaces {
        events.push(
            ns.available_ns,
            0,
            labels.id(&format!("{} available", ns.name)),
            0,
        );
        events.push(
            ns.complete_ns,
            0,
            labels.id(&format!("{} complete", ns.name)),
            0,
        );
    }
    lanes.push(Lane {
        name: "phases".into(),
        rows: rows_from_spans(phase_spans, MAX_ROWS),
        instants: events,
    });
    let fault_label = labels.id("fault");
    let mut by_thread: HashMap<u32, usize> = HashMap::new();
    for th in &rep.threads {
        let spans: Vec<_> = th
            .spans
            .iter()
            .map(|s| {
                (
                    s.start_ns,
                    s.end_ns,
                    labels.id(span_kind_name(s.kind)),
                    s.start_pfn,
                    s.pages,
                )
            })
            .collect();
        by_thread.insert(th.id, lanes.len());
        lanes.push(Lane {
            name: th.name.clone(),
            rows: rows_from_spans(spans, MAX_ROWS),
            instants: InstantRow::default(),
        });
    }
    for s in &rep.stalls.samples {
        if let Some(&li) = by_thread.get(&s.thread) {
            lanes[li]
                .instants
                .push(s.t_ns, s.stall_ns, fault_label, s.pfn);
        }
    }
    let mut tl = Timeline {
        lanes,
        labels: labels.list,
        span_aux: "first pfn",
        instant_aux: "pfn",
        ..Default::default()
    };
    tl.fault_labels = vec![false; tl.labels.len()];
    tl.fault_labels[fault_label as usize] = true;
    tl.finish();
    // Replay times start at 0 at the start of the repeat.
    tl.t_min = 0;
    tl
}

fn run_progress(run: &RunFile, repeat: usize) -> Progress {
    let Some(rep) = run.repeats.get(repeat) else {
        return Progress::default();
    };
    let mut threads = Vec::new();
    let mut all_t: Vec<u64> = Vec::new();
    for th in &rep.threads {
        if th.progress.is_empty() && th.pages_done == 0 {
            continue;
        }
        let pts: Vec<[f64; 2]> = th
            .progress
            .iter()
            .map(|&(t, p)| [t as f64, p as f64])
            .collect();
        all_t.extend(th.progress.iter().map(|&(t, _)| t));
        threads.push((th.name.clone(), pts));
    }
    all_t.sort_unstable();
    all_t.dedup();
    // Thin the union of sample times to at most ~4000 points.
    let step = (all_t.len() / 4000).max(1);
    let grid: Vec<u64> = all_t
        .iter()
        .copied()
        .step_by(step)
        .chain(all_t.last().copied())
        .collect();
    let mut total = Vec::with_capacity(grid.len());
    for &t in &grid {
        let mut sum = 0.0;
        for (_, pts) in &threads {
            // Last sample at or before t (progress is a step function).
            let i = pts.partition_point(|p| p[0] <= t as f64);
            if i > 0 {
                sum += pts[i - 1][1];
            }
        }
        total.push([t as f64, sum]);
    }
    total.dedup_by(|a, b| a[0] == b[0]);
    let mut marks = Vec::new();
    for ns in &rep.namespaces {
        marks.push((format!("{} available", ns.name), ns.available_ns as f64));
        marks.push((format!("{} complete", ns.name), ns.complete_ns as f64));
    }
    Progress {
        threads,
        total,
        marks,
    }
}

/// A loaded trace.
pub struct TraceDoc {
    pub header: TraceHeader,
    pub timeline: Timeline,
    /// Events other than the high-volume kinds (spans, faults, tracepoints, kprobes).
    pub events: Vec<TraceEvent>,
    /// Count of events per kind.
    pub kind_counts: Vec<(String, u64)>,
    pub warnings: Vec<String>,
    /// Fault latencies (dax-fault dur_ns).
    pub fault_hist: Option<Histogram<u64>>,
    /// (t_ns, latency) of faults, thinned to at most 20000 by keeping per-bucket maxima.
    pub fault_over_time: Vec<[f64; 2]>,
    /// Layouts of the trace's namespace and memory-block events.
    pub layouts: Vec<RangeLayout>,
    pub layout_errors: Vec<String>,
    /// memmap-init pages over time (cumulative), per task and total.
    pub progress: Progress,
    pub memmap_pages: u64,
    pub memmap_busy_ns: u64,
}

/// A loaded file.
pub enum Doc {
    Run(Box<RunDoc>),
    Trace(Box<TraceDoc>),
}

/// One open file.
pub struct OpenFile {
    pub path: PathBuf,
    pub name: String,
    pub doc: Doc,
    pub mtime: Option<std::time::SystemTime>,
    pub load_ms: f64,
}

impl OpenFile {
    pub fn run(&self) -> Option<&RunDoc> {
        match &self.doc {
            Doc::Run(r) => Some(r),
            Doc::Trace(_) => None,
        }
    }
}

/// Open a run file or a trace, deciding by content.
pub fn load_path(path: &Path) -> Result<OpenFile, LoadError> {
    let started = std::time::Instant::now();
    let p = path.display().to_string();
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let bytes = std::fs::read(path).map_err(|e| LoadError {
        path: p.clone(),
        line: None,
        reason: format!("cannot read: {e}"),
    })?;
    let doc = load_bytes(&p, &bytes)?;
    drop(bytes);
    Ok(OpenFile {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.clone()),
        path: path.to_path_buf(),
        doc,
        mtime,
        load_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Decide what the bytes are and parse them.
pub fn load_bytes(path: &str, bytes: &[u8]) -> Result<Doc, LoadError> {
    let err = |line: Option<usize>, reason: String| LoadError {
        path: path.to_string(),
        line,
        reason,
    };
    let first_line_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let first = &bytes[..first_line_end];
    let is_trace = first
        .windows(TRACE_FORMAT.len() + 2)
        .any(|w| w[1..w.len() - 1] == *TRACE_FORMAT.as_bytes() && w[0] == b'"');
    if is_trace {
        return load_trace(path, bytes).map(|t| Doc::Trace(Box::new(t)));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        err(Some(line), format!("not UTF-8 text: {e}"))
    })?;
    if text.trim().is_empty() {
        return Err(err(
            None,
            "empty file (expected a memmap-lab run file or trace)".into(),
        ));
    }
    match RunFile::from_json_str(path, text) {
        Ok(run) => Ok(Doc::Run(Box::new(RunDoc::new(run)))),
        Err(RunFileError::Parse {
            line, column, msg, ..
        }) => Err(err(Some(line), format!("column {column}: {msg}"))),
        Err(RunFileError::WrongFormat { found, .. }) => Err(err(
            None,
            format!("format is {found:?}: neither a memmap-lab run file nor a memmap-lab trace"),
        )),
        Err(e) => Err(err(None, e.to_string())),
    }
}

/// The fields of the high-volume event kinds, borrowed from the line.
#[derive(Deserialize)]
struct FastLine<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    t_ns: Option<u64>,
    dur_ns: Option<u64>,
    #[serde(borrow)]
    func: Option<Cow<'a, str>>,
    #[serde(borrow)]
    task: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    probe: Option<Cow<'a, str>>,
    pid: Option<u32>,
    cpu: Option<u32>,
    pmd: Option<bool>,
    address: Option<u64>,
    #[serde(borrow)]
    result: Option<Cow<'a, str>>,
    start_pfn: Option<u64>,
    nr_pages: Option<u64>,
}

/// One parsed line of a chunk.
enum Rec {
    /// lane key index, start, end, label, aux, aux2 (chunk-local ids)
    Span(u32, u64, u64, u32, u64, u64),
    /// lane key index (u32::MAX: global events lane), t, value, label, aux
    Instant(u32, u64, u64, u32, u64),
    Event(TraceEvent),
    Warning(String),
}

/// Lane keys: (pid, cpu); task names remembered per pid.
struct ChunkOut {
    recs: Vec<Rec>,
    lanes: Vec<(u32, u32)>,
    labels: Vec<String>,
    tasks: HashMap<u32, String>,
    error: Option<LoadError>,
}

const EVENTS_LANE: u32 = u32::MAX;

fn parse_chunk(path: &str, text: &[u8], first_line: usize, is_last_chunk: bool) -> ChunkOut {
    let mut out = ChunkOut {
        recs: Vec::new(),
        lanes: Vec::new(),
        labels: Vec::new(),
        tasks: HashMap::new(),
        error: None,
    };
    let mut lane_ids: HashMap<(u32, u32), u32> = HashMap::new();
    let mut label_ids: HashMap<String, u32> = HashMap::new();
    let mut lane = |pid: u32, cpu: u32, lanes: &mut Vec<(u32, u32)>| -> u32 {
        *lane_ids.entry((pid, cpu)).or_insert_with(|| {
            lanes.push((pid, cpu));
            (lanes.len() - 1) as u32
        })
    };
    let mut label = |s: &str, labels: &mut Vec<String>| -> u32 {
        if let Some(&i) = label_ids.get(s) {
            return i;
        }
        labels.push(s.to_string());
        let i = (labels.len() - 1) as u32;
        label_ids.insert(s.to_string(), i);
        i
    };
    let n_lines = text.split(|&b| b == b'\n').count();
    for (k, raw) in text.split(|&b| b == b'\n').enumerate() {
        let n = first_line + k;
        let is_last_line =
            is_last_chunk && (k + 1 == n_lines || (k + 2 == n_lines && text.ends_with(b"\n")));
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let fail = |reason: String| LoadError {
            path: path.to_string(),
            line: Some(n),
            reason,
        };
        let line = match std::str::from_utf8(raw) {
            Ok(l) => l,
            Err(e) => {
                out.error = Some(fail(format!("not UTF-8: {e}")));
                return out;
            }
        };
        let fast: FastLine = match serde_json::from_str(line) {
            Ok(f) => f,
            Err(e) if e.is_eof() && is_last_line => {
                out.recs.push(Rec::Warning(format!(
                    "{path}:{n}: truncated last record dropped"
                )));
                continue;
            }
            Err(e) => {
                out.error = Some(fail(format!("expected a trace event: {e}")));
                return out;
            }
        };
        let need = |v: Option<u64>, f: &str| -> Result<u64, LoadError> {
            v.ok_or_else(|| fail(format!("{} event without {f}", fast.kind)))
        };
        let res: Result<(), LoadError> = (|| {
            match fast.kind.as_ref() {
                "function-span" => {
                    let t = need(fast.t_ns, "t_ns")?;
                    let d = need(fast.dur_ns, "dur_ns")?;
                    let pid = need(fast.pid.map(u64::from), "pid")? as u32;
                    let cpu = need(fast.cpu.map(u64::from), "cpu")? as u32;
                    let func = fast
                        .func
                        .as_deref()
                        .ok_or_else(|| fail("function-span without func".into()))?;
                    if let Some(task) = &fast.task {
                        out.tasks.entry(pid).or_insert_with(|| task.to_string());
                    }
                    let li = lane(pid, cpu, &mut out.lanes);
                    let l = label(func, &mut out.labels);
                    out.recs
                        .push(Rec::Span(li, t, t.saturating_add(d), l, 0, 0));
                }
                "memmap-init" => {
                    let t = need(fast.t_ns, "t_ns")?;
                    let pid = need(fast.pid.map(u64::from), "pid")? as u32;
                    let cpu = need(fast.cpu.map(u64::from), "cpu")? as u32;
                    let func = fast.func.as_deref().unwrap_or("memmap-init");
                    let pfn = need(fast.start_pfn, "start_pfn")?;
                    let pages = need(fast.nr_pages, "nr_pages")?;
                    if let Some(task) = &fast.task {
                        out.tasks.entry(pid).or_insert_with(|| task.to_string());
                    }
                    let li = lane(pid, cpu, &mut out.lanes);
                    let l = label(func, &mut out.labels);
                    match fast.dur_ns {
                        Some(d) => {
                            out.recs
                                .push(Rec::Span(li, t, t.saturating_add(d), l, pfn, pages))
                        }
                        None => out.recs.push(Rec::Instant(li, t, 0, l, pfn)),
                    }
                    // Keep the full event for progress.
                    let ev: TraceEvent = serde_json::from_str(line)
                        .map_err(|e| fail(format!("expected a trace event: {e}")))?;
                    out.recs.push(Rec::Event(ev));
                }
                "dax-fault" => {
                    let t = need(fast.t_ns, "t_ns")?;
                    let pid = need(fast.pid.map(u64::from), "pid")? as u32;
                    let cpu = need(fast.cpu.map(u64::from), "cpu")? as u32;
                    let li = lane(pid, cpu, &mut out.lanes);
                    let name = format!(
                        "dax fault {} {}",
                        if fast.pmd.unwrap_or(false) {
                            "pmd"
                        } else {
                            "pte"
                        },
                        fast.result.as_deref().unwrap_or("")
                    );
                    let l = label(&name, &mut out.labels);
                    out.recs.push(Rec::Instant(
                        li,
                        t,
                        fast.dur_ns.unwrap_or(0),
                        l,
                        fast.address.unwrap_or(0),
                    ));
                }
                "tracepoint" | "kprobe" => {
                    let t = need(fast.t_ns, "t_ns")?;
                    let pid = need(fast.pid.map(u64::from), "pid")? as u32;
                    let cpu = need(fast.cpu.map(u64::from), "cpu")? as u32;
                    if let Some(task) = &fast.task {
                        out.tasks.entry(pid).or_insert_with(|| task.to_string());
                    }
                    let li = lane(pid, cpu, &mut out.lanes);
                    let nm = fast
                        .name
                        .as_deref()
                        .or(fast.probe.as_deref())
                        .or(fast.func.as_deref())
                        .unwrap_or("?");
                    let l = label(nm, &mut out.labels);
                    out.recs.push(Rec::Instant(li, t, 0, l, 0));
                }
                _ => match serde_json::from_str::<TraceEvent>(line) {
                    Ok(ev) => {
                        let text = match &ev {
                            TraceEvent::Uevent {
                                action, devpath, ..
                            } => Some(format!("uevent {action} {devpath}")),
                            TraceEvent::Mark { text, .. } => Some(format!("mark: {text}")),
                            TraceEvent::KernelLog { text, .. } => Some(format!("kernel: {text}")),
                            TraceEvent::Initialised {
                                device, pages, ms, ..
                            } => Some(format!("{device} initialised, {pages} pages in {ms} ms")),
                            _ => None,
                        };
                        if let (Some(text), Some(t)) = (text, ev.t_ns()) {
                            let l = label(&text, &mut out.labels);
                            out.recs.push(Rec::Instant(EVENTS_LANE, t, 0, l, 0));
                        }
                        out.recs.push(Rec::Event(ev));
                    }
                    Err(e) if e.to_string().contains("unknown variant") => {
                        out.recs.push(Rec::Warning(format!(
                            "{path}:{n}: event kind {:?} not known to this build, skipped",
                            fast.kind
                        )));
                    }
                    Err(e) => return Err(fail(format!("expected a trace event: {e}"))),
                },
            }
            Ok(())
        })();
        if let Err(e) = res {
            out.error = Some(e);
            return out;
        }
    }
    out
}

/// Parse a trace (JSON Lines) in parallel chunks.
pub fn load_trace(path: &str, bytes: &[u8]) -> Result<TraceDoc, LoadError> {
    let err = |line: usize, reason: String| LoadError {
        path: path.to_string(),
        line: Some(line),
        reason,
    };
    let head_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let head_text =
        std::str::from_utf8(&bytes[..head_end]).map_err(|e| err(1, format!("not UTF-8: {e}")))?;
    let header: TraceHeader = serde_json::from_str(head_text)
        .map_err(|e| err(1, format!("expected a {TRACE_FORMAT} header: {e}")))?;
    if header.format != TRACE_FORMAT {
        return Err(err(
            1,
            format!("format is {:?}, expected {TRACE_FORMAT:?}", header.format),
        ));
    }
    if header.version != TRACE_VERSION {
        return Err(err(
            1,
            format!(
                "trace version {} is not supported (this build reads {TRACE_VERSION})",
                header.version
            ),
        ));
    }
    let body = if head_end < bytes.len() {
        &bytes[head_end + 1..]
    } else {
        &[][..]
    };
    // Split at newlines into one chunk per core (at least 4 MB each).
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let want = threads.max(1);
    let target = (body.len() / want).max(4 << 20);
    let mut chunks: Vec<(&[u8], usize)> = Vec::new();
    let mut start = 0;
    let mut line = 2;
    while start < body.len() {
        let mut end = (start + target).min(body.len());
        if end < body.len() {
            end = match body[end..].iter().position(|&b| b == b'\n') {
                Some(p) => end + p + 1,
                None => body.len(),
            };
        }
        let chunk = &body[start..end];
        chunks.push((chunk, line));
        line += chunk.iter().filter(|&&b| b == b'\n').count();
        start = end;
    }
    let n_chunks = chunks.len();
    let outs: Vec<ChunkOut> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(i, &(c, l))| s.spawn(move || parse_chunk(path, c, l, i + 1 == n_chunks)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| ChunkOut {
                    recs: Vec::new(),
                    lanes: Vec::new(),
                    labels: Vec::new(),
                    tasks: HashMap::new(),
                    error: Some(LoadError {
                        path: path.to_string(),
                        line: None,
                        reason: "internal error while parsing".into(),
                    }),
                })
            })
            .collect()
    });
    if let Some(e) = outs.iter().find_map(|o| o.error.clone()) {
        return Err(e);
    }
    build_trace(header, outs)
}

fn build_trace(header: TraceHeader, outs: Vec<ChunkOut>) -> Result<TraceDoc, LoadError> {
    let mut labels = Labels::default();
    let mut lane_of: HashMap<(u32, u32), usize> = HashMap::new();
    let mut lane_keys: Vec<(u32, u32)> = Vec::new();
    let mut tasks: HashMap<u32, String> = HashMap::new();
    let mut spans: Vec<Vec<RawSpan>> = Vec::new();
    let mut instants: Vec<InstantRow> = Vec::new();
    let mut event_instants = InstantRow::default();
    let mut events = Vec::new();
    let mut warnings = Vec::new();
    let mut kind_counts: HashMap<&'static str, u64> = HashMap::new();
    let mut fault_labels: Vec<bool> = Vec::new();
    for out in outs {
        let lmap: Vec<u32> = out.labels.iter().map(|s| labels.id(s)).collect();
        for (i, s) in out.labels.iter().enumerate() {
            let g = lmap[i] as usize;
            if fault_labels.len() <= g {
                fault_labels.resize(g + 1, false);
            }
            if s.starts_with("dax fault") {
                fault_labels[g] = true;
            }
        }
        let kmap: Vec<usize> = out
            .lanes
            .iter()
            .map(|k| {
                *lane_of.entry(*k).or_insert_with(|| {
                    lane_keys.push(*k);
                    spans.push(Vec::new());
                    instants.push(InstantRow::default());
                    lane_keys.len() - 1
                })
            })
            .collect();
        for (pid, t) in out.tasks {
            tasks.entry(pid).or_insert(t);
        }
        for r in out.recs {
            match r {
                Rec::Span(li, s, e, l, a, a2) => {
                    *kind_counts.entry("function-span").or_default() += 1;
                    spans[kmap[li as usize]].push((s, e, lmap[l as usize], a, a2));
                }
                Rec::Instant(li, t, v, l, a) => {
                    let l = lmap[l as usize];
                    if li == EVENTS_LANE {
                        event_instants.push(t, v, l, a);
                    } else {
                        *kind_counts
                            .entry(if fault_labels[l as usize] {
                                "dax-fault"
                            } else {
                                "tracepoint/kprobe"
                            })
                            .or_default() += 1;
                        instants[kmap[li as usize]].push(t, v, l, a);
                    }
                }
                Rec::Event(ev) => {
                    *kind_counts.entry(ev.kind()).or_default() += 1;
                    events.push(ev);
                }
                Rec::Warning(w) => warnings.push(w),
            }
        }
    }
    // memmap-init with durations were counted as spans; fix the count.
    let mi = kind_counts.get("memmap-init").copied().unwrap_or(0);
    if let Some(fs) = kind_counts.get_mut("function-span") {
        let mi_spans = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    TraceEvent::MemmapInit {
                        dur_ns: Some(_),
                        ..
                    }
                )
            })
            .count() as u64;
        *fs = fs.saturating_sub(mi_spans.min(mi));
        if *fs == 0 {
            kind_counts.remove("function-span");
        }
    }
    // Fault statistics.
    let mut fault_hist = memmap_model::hist::new_histogram();
    let mut fault_pts: Vec<(u64, u64)> = Vec::new();
    for row in &instants {
        for i in 0..row.len() {
            if fault_labels[row.label[i] as usize] {
                let v = row.value[i].clamp(
                    memmap_model::hist::HIST_LOW_NS,
                    memmap_model::hist::HIST_HIGH_NS,
                );
                let _ = fault_hist.record(v);
                fault_pts.push((row.t[i], row.value[i]));
            }
        }
    }
    fault_pts.sort_unstable();
    let fault_over_time = thin_max(&fault_pts, 20_000);
    let fault_hist = if fault_hist.is_empty() {
        None
    } else {
        Some(fault_hist)
    };
    // Lanes, ordered by task name then pid then cpu.
    let mut order: Vec<usize> = (0..lane_keys.len()).collect();
    let lane_name = |k: (u32, u32)| {
        format!(
            "{}-{} cpu{}",
            tasks.get(&k.0).map(String::as_str).unwrap_or("pid"),
            k.0,
            k.1
        )
    };
    order.sort_by_key(|&i| (lane_name(lane_keys[i]), lane_keys[i]));
    let mut spans: Vec<Option<Vec<_>>> = spans.into_iter().map(Some).collect();
    let mut instants: Vec<Option<InstantRow>> = instants.into_iter().map(Some).collect();
    let mut lanes = Vec::new();
    if !event_instants.is_empty() {
        lanes.push(Lane {
            name: "events".into(),
            rows: Vec::new(),
            instants: event_instants,
        });
    }
    // Build the rows of each lane in parallel.
    let built: Vec<Lane> = {
        let jobs: Vec<(String, Vec<_>, InstantRow)> = order
            .iter()
            .map(|&i| {
                (
                    lane_name(lane_keys[i]),
                    spans[i].take().unwrap_or_default(),
                    instants[i].take().unwrap_or_default(),
                )
            })
            .collect();
        let n_threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let per = jobs.len().div_ceil(n_threads).max(1);
        let mut jobs = jobs;
        let mut groups: Vec<Vec<(String, Vec<_>, InstantRow)>> = Vec::new();
        while !jobs.is_empty() {
            let rest = jobs.split_off(per.min(jobs.len()));
            groups.push(jobs);
            jobs = rest;
        }
        std::thread::scope(|s| {
            let hs: Vec<_> = groups
                .into_iter()
                .map(|g| {
                    s.spawn(move || {
                        g.into_iter()
                            .map(|(name, sp, mut inst)| {
                                inst.finish();
                                Lane {
                                    name,
                                    rows: rows_from_spans(sp, MAX_ROWS),
                                    instants: inst,
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    lanes.extend(built);
    let mut timeline = Timeline {
        lanes,
        labels: labels.list,
        span_aux: "start pfn",
        instant_aux: "address",
        fault_labels,
        ..Default::default()
    };
    timeline.finish();
    // Layouts of recorded namespaces and hot-added memory blocks.
    let (layouts, layout_errors) = trace_layouts(&events);
    let (progress, memmap_pages, memmap_busy_ns) = trace_progress(&events, timeline.t_min);
    let mut kind_counts: Vec<(String, u64)> = kind_counts
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    kind_counts.sort();
    Ok(TraceDoc {
        header,
        timeline,
        events,
        kind_counts,
        warnings,
        fault_hist,
        fault_over_time,
        layouts,
        layout_errors,
        progress,
        memmap_pages,
        memmap_busy_ns,
    })
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

fn trace_layouts(events: &[TraceEvent]) -> (Vec<RangeLayout>, Vec<String>) {
    let params = LayoutParams::linux_6_1();
    let mut layouts = Vec::new();
    let mut errors = Vec::new();
    for e in events {
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
            let spec = NamespaceSpec {
                name: name.clone(),
                size_bytes: *size_bytes,
                mode: *mode,
                map: *map,
                align_bytes: *align_bytes,
                node: *node,
                start_phys: *start_phys,
            };
            match namespace_layout(&spec, &params) {
                Ok(l) => layouts.push(l),
                Err(err) => errors.push(format!("namespace {name}: {err}")),
            }
        }
    }
    // Hot-added memory: contiguous runs of memory blocks above the namespaces, only when
    // the trace has no namespaces (a hotplug recording).
    if layouts.is_empty() {
        let mut blocks: Vec<(u64, u64, u32)> = events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::MemoryBlock {
                    phys_start,
                    size_bytes,
                    node,
                    ..
                } => Some((*phys_start, *size_bytes, node.unwrap_or(0))),
                _ => None,
            })
            .collect();
        blocks.sort_unstable();
        // The first contiguous run is boot memory; later runs (after a hole) were hot-added.
        let mut runs: Vec<(u64, u64, u32)> = Vec::new();
        for (s, sz, n) in blocks {
            match runs.last_mut() {
                Some(r) if r.0 + r.1 == s && r.2 == n => r.1 += sz,
                _ => runs.push((s, sz, n)),
            }
        }
        if runs.len() > 1 {
            for (i, (s, sz, n)) in runs.into_iter().enumerate().skip(1) {
                let spec = HotplugSpec {
                    name: format!("hotplug{i}"),
                    start_phys: s,
                    size_bytes: sz,
                    node: n,
                };
                match hotplug_layout(&spec, &params) {
                    Ok(l) => layouts.push(l),
                    Err(err) => errors.push(format!("memory blocks at {s:#x}: {err}")),
                }
            }
        }
    }
    (layouts, errors)
}

fn trace_progress(events: &[TraceEvent], t0: u64) -> (Progress, u64, u64) {
    let mut per_task: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    let mut total_pages = 0;
    let mut busy = 0;
    for e in events {
        if let TraceEvent::MemmapInit {
            t_ns,
            dur_ns,
            nr_pages,
            task,
            pid,
            ..
        } = e
        {
            let end = t_ns + dur_ns.unwrap_or(0);
            per_task
                .entry(format!("{task}-{pid}"))
                .or_default()
                .push((end, *nr_pages));
            total_pages += nr_pages;
            busy += dur_ns.unwrap_or(0);
        }
    }
    let mut all: Vec<(u64, u64)> = Vec::new();
    let mut threads: Vec<(String, Vec<[f64; 2]>)> = per_task
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_unstable();
            all.extend(v.iter().copied());
            let mut acc = 0;
            let mut pts = vec![[v[0].0.saturating_sub(t0) as f64, 0.0]];
            for (t, p) in v {
                acc += p;
                pts.push([t.saturating_sub(t0) as f64, acc as f64]);
            }
            (name, pts)
        })
        .collect();
    threads.sort_by(|a, b| a.0.cmp(&b.0));
    all.sort_unstable();
    let mut acc = 0;
    let mut total = Vec::new();
    for (t, p) in all {
        acc += p;
        total.push([t.saturating_sub(t0) as f64, acc as f64]);
    }
    let marks = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Initialised { t_ns, device, .. } => Some((
                format!("{device} initialised"),
                t_ns.saturating_sub(t0) as f64,
            )),
            _ => None,
        })
        .collect();
    (
        Progress {
            threads,
            total,
            marks,
        },
        total_pages,
        busy,
    )
}

/// Human-readable duration from nanoseconds.
pub fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if !ns.is_finite() {
        "?".into()
    } else if a >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Human-readable size (binary units).
pub fn fmt_bytes(b: u64) -> String {
    memmap_model::layout::format_size(b)
}

/// Is this lane a fault thread of a replay?
pub fn is_fault_role(r: ThreadRole) -> bool {
    r == ThreadRole::Fault
}
