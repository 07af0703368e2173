//! Loading run files and traces into what the views draw: timelines with
//! level-of-detail rows (see [`crate::lod`]), progress curves, stall histograms and
//! layouts. Loading never panics on bad input: every failure is a [`LoadError`]
//! naming the file, the line when known, and the reason.

use crate::lod::{rows_from_spans, InstantRow, RawSpan, SpanRow};
use hdrhistogram::Histogram;
use memmap_model::layout::{hotplug_layout, namespace_layout, RangeLayout};
use memmap_model::run::{RunFile, RunFileError, SpanKind, ThreadRole};
use memmap_model::trace::{Trace, TraceEvent, TraceHeader, STOP_MARK, TRACE_FORMAT, TRACE_VERSION};
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
    /// Shown on hover of the lane name (pid and CPUs of a trace lane, role of a thread).
    pub detail: String,
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
    /// Colour of each label, computed once (hashing a name and converting its colour
    /// per pixel column was most of a frame).
    pub label_colors: Vec<egui::Color32>,
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
        self.label_colors = self
            .labels
            .iter()
            .map(|l| crate::views::timeline::label_color(l))
            .collect();
    }

    /// Colour of label `id` (grey for an unknown id).
    pub fn label_color(&self, id: u32) -> egui::Color32 {
        self.label_colors
            .get(id as usize)
            .copied()
            .unwrap_or(egui::Color32::GRAY)
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
        detail: "phases, namespace available / complete".into(),
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
            detail: format!("thread {} ({:?})", th.id, th.role),
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
    pub memmap_pages: u64,
    pub memmap_busy_ns: u64,
    /// Seconds spent in each loading phase (parse, merge, rows, rest), for benchmarks.
    pub load_phases: Vec<(&'static str, f64)>,
}

/// One pfn range that memmap-init events covered, with the functions that saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemmapRange {
    pub start_pfn: u64,
    pub nr_pages: u64,
    /// Function names, in order of first appearance.
    pub funcs: Vec<String>,
    /// "task-pid" of the first event.
    pub task: String,
    pub first_t_ns: u64,
    /// Longest duration of one event on this range.
    pub max_dur_ns: u64,
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

/// Does this first line start a trace (rather than a run file)?
fn is_trace_start(bytes: &[u8]) -> bool {
    let first_line_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let first = &bytes[..first_line_end];
    first
        .windows(TRACE_FORMAT.len() + 2)
        .any(|w| w[1..w.len() - 1] == *TRACE_FORMAT.as_bytes() && w[0] == b'"')
}

/// Open a run file or a trace, deciding by content. A trace is read by the parsing
/// threads themselves, each its own part of the file, so the whole file is never in
/// memory at once.
pub fn load_path(path: &Path) -> Result<OpenFile, LoadError> {
    let started = std::time::Instant::now();
    let p = path.display().to_string();
    let cannot = |e: std::io::Error| LoadError {
        path: p.clone(),
        line: None,
        reason: format!("cannot read: {e}"),
    };
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let file = std::fs::File::open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    let mut head = vec![0u8; (len as usize).min(64 << 10)];
    let n = read_full_at(&file, 0, &mut head).map_err(cannot)?;
    head.truncate(n);
    let doc = if is_trace_start(&head) {
        load_trace_from(&p, &Source::File(&file), len).map(|t| Doc::Trace(Box::new(t)))?
    } else {
        let bytes = std::fs::read(path).map_err(cannot)?;
        load_bytes(&p, &bytes)?
    };
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
    if is_trace_start(bytes) {
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

/// Where trace bytes come from: a file read piecewise, or bytes already in memory.
enum Source<'a> {
    File(&'a std::fs::File),
    Bytes(&'a [u8]),
}

impl Source<'_> {
    /// Fill `buf` from `offset` as far as the data goes; returns the bytes read.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::File(f) => read_full_at(f, offset, buf),
            Source::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                Ok(n)
            }
        }
    }
}

#[cfg(unix)]
fn read_full_at(f: &std::fs::File, mut offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(not(unix))]
fn read_full_at(f: &std::fs::File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = f.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
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

/// A JSON value of a flat object, as [`flat_line`] reads it.
enum Flat<'a> {
    Str(&'a str),
    Num(u64),
    Bool(bool),
    Null,
}

/// Read a flat JSON object (string values without escapes, unsigned integers,
/// booleans, null; no nesting) into a [`FastLine`], about three times faster than
/// serde. None for anything else, which then goes through serde (and its error
/// messages).
fn flat_line<'a>(line: &'a str) -> Option<FastLine<'a>> {
    let b = line.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> Option<&str> {
        // At the opening quote.
        let start = *i + 1;
        let len = b[start..].iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[start + len] != b'"' {
            return None;
        }
        *i = start + len + 1;
        line.get(start..start + len)
    };
    let mut f = FastLine {
        kind: Cow::Borrowed(""),
        t_ns: None,
        dur_ns: None,
        func: None,
        task: None,
        name: None,
        probe: None,
        pid: None,
        cpu: None,
        pmd: None,
        address: None,
        result: None,
        start_pfn: None,
        nr_pages: None,
    };
    let mut has_kind = false;
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    ws(&mut i);
    if b.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        ws(&mut i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key = string(&mut i)?;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let v = match *b.get(i)? {
            b'"' => Flat::Str(string(&mut i)?),
            c @ b'0'..=b'9' => {
                let first = i;
                let mut n = (c - b'0') as u64;
                i += 1;
                while let Some(&d) = b.get(i) {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    n = n.checked_mul(10)?.checked_add((d - b'0') as u64)?;
                    i += 1;
                }
                if matches!(b.get(i), Some(b'.' | b'e' | b'E')) || (c == b'0' && i - first > 1) {
                    return None;
                }
                Flat::Num(n)
            }
            b't' if b[i..].starts_with(b"true") => {
                i += 4;
                Flat::Bool(true)
            }
            b'f' if b[i..].starts_with(b"false") => {
                i += 5;
                Flat::Bool(false)
            }
            b'n' if b[i..].starts_with(b"null") => {
                i += 4;
                Flat::Null
            }
            _ => return None,
        };
        let num = |v: &Flat| match v {
            Flat::Num(n) => Some(Some(*n)),
            Flat::Null => Some(None),
            _ => None,
        };
        let num32 = |v: &Flat| match v {
            Flat::Num(n) => u32::try_from(*n).ok().map(Some),
            Flat::Null => Some(None),
            _ => None,
        };
        let text = |v: &Flat<'a>| -> Option<Option<Cow<'a, str>>> {
            match *v {
                Flat::Str(s) => Some(Some(Cow::Borrowed(s))),
                Flat::Null => Some(None),
                _ => None,
            }
        };
        match key {
            "kind" => match v {
                Flat::Str(s) if !has_kind => {
                    f.kind = Cow::Borrowed(s);
                    has_kind = true;
                }
                _ => return None,
            },
            "t_ns" => f.t_ns = num(&v)?,
            "dur_ns" => f.dur_ns = num(&v)?,
            "func" => f.func = text(&v)?,
            "task" => f.task = text(&v)?,
            "name" => f.name = text(&v)?,
            "probe" => f.probe = text(&v)?,
            "pid" => f.pid = num32(&v)?,
            "cpu" => f.cpu = num32(&v)?,
            "pmd" => {
                f.pmd = match v {
                    Flat::Bool(x) => Some(x),
                    Flat::Null => None,
                    _ => return None,
                }
            }
            "address" => f.address = num(&v)?,
            "result" => f.result = text(&v)?,
            "start_pfn" => f.start_pfn = num(&v)?,
            "nr_pages" => f.nr_pages = num(&v)?,
            _ => {}
        }
        ws(&mut i);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    ws(&mut i);
    (i == b.len() && has_kind).then_some(f)
}

/// The task names a sched_switch tracepoint carries.
#[derive(Deserialize)]
struct SchedSwitch<'a> {
    #[serde(borrow)]
    fields: SchedFields<'a>,
}

#[derive(Deserialize)]
struct SchedFields<'a> {
    #[serde(borrow)]
    prev_comm: Option<Cow<'a, str>>,
    prev_pid: Option<u32>,
    #[serde(borrow)]
    next_comm: Option<Cow<'a, str>>,
    next_pid: Option<u32>,
}

/// A lane of a trace: a task (pid), except pid 0, the idle task, which has one per CPU.
type LaneKey = (u32, u32);
const ANY_CPU: u32 = u32::MAX;

fn lane_key(pid: u32, cpu: u32) -> LaneKey {
    (pid, if pid == 0 { cpu } else { ANY_CPU })
}

/// One lane's items parsed by one thread (labels are the thread's own ids).
#[derive(Default)]
struct ChunkLane {
    key: LaneKey,
    /// CPUs the lane's events ran on (bit n = cpu n, for n < 64) and any others.
    cpus: u64,
    other_cpus: Vec<u32>,
    spans: Vec<RawSpan>,
    instants: InstantRow,
}

/// Counts of the high-volume kinds, which are not kept as events.
#[derive(Default, Clone, Copy)]
struct FastCounts {
    function_span: u64,
    dax_fault: u64,
    tracepoint: u64,
    kprobe: u64,
}

/// What one parsing thread made of its part of the file. Line numbers are counted
/// from the start of the part until the parts are put together.
#[derive(Default)]
struct ChunkOut {
    lanes: Vec<ChunkLane>,
    lane_ids: HashMap<(u32, u32), u32>,
    events_lane: InstantRow,
    events: Vec<TraceEvent>,
    /// (line in the part, message without the path).
    warnings: Vec<(usize, String)>,
    labels: Vec<String>,
    label_ids: HashMap<String, u32>,
    /// Task name per lane key, with the time it was seen (the last one wins: a task
    /// keeps the name of its last exec).
    tasks: HashMap<LaneKey, (u64, String)>,
    counts: FastCounts,
    /// Lines in the part.
    lines: usize,
    /// (line in the part, reason).
    error: Option<(usize, String)>,
}

impl ChunkOut {
    fn lane(&mut self, pid: u32, cpu: u32) -> &mut ChunkLane {
        let n = self.lanes.len() as u32;
        let i = *self.lane_ids.entry((pid, cpu)).or_insert(n) as usize;
        if i == self.lanes.len() {
            self.lanes.push(ChunkLane {
                key: lane_key(pid, cpu),
                ..Default::default()
            });
        }
        let l = &mut self.lanes[i];
        if cpu < 64 {
            l.cpus |= 1 << cpu;
        } else if !l.other_cpus.contains(&cpu) {
            l.other_cpus.push(cpu);
        }
        l
    }

    fn label(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.label_ids.get(s) {
            return i;
        }
        let i = self.labels.len() as u32;
        self.labels.push(s.to_string());
        self.label_ids.insert(s.to_string(), i);
        i
    }

    fn task(&mut self, pid: u32, cpu: u32, t: u64, name: &str) {
        if name.is_empty() {
            return;
        }
        match self.tasks.entry(lane_key(pid, cpu)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if t >= e.get().0 && e.get().1 != name {
                    *e.get_mut() = (t, name.to_string());
                } else if t >= e.get().0 {
                    e.get_mut().0 = t;
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((t, name.to_string()));
            }
        }
    }

    /// Parse one line (without its newline). `last_line`: nothing but whitespace
    /// follows it in the file, so a cut-off record there is dropped with a warning.
    fn line(&mut self, raw: &[u8], last_line: bool) {
        self.lines += 1;
        let n = self.lines;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        let line = match std::str::from_utf8(raw) {
            Ok(l) => l,
            Err(e) => {
                self.error = Some((n, format!("not UTF-8: {e}")));
                return;
            }
        };
        let parsed = match flat_line(line) {
            Some(f) => Ok(f),
            None => serde_json::from_str::<FastLine>(line),
        };
        let fast: FastLine = match parsed {
            Ok(f) => f,
            Err(e) if e.is_eof() && last_line => {
                self.warnings
                    .push((n, "truncated last record dropped".into()));
                return;
            }
            Err(e) => {
                self.error = Some((n, format!("expected a trace event: {e}")));
                return;
            }
        };
        if let Err(reason) = self.event(&fast, line) {
            self.error = Some((n, reason));
        }
    }

    fn event(&mut self, fast: &FastLine, line: &str) -> Result<(), String> {
        let need = |v: Option<u64>, f: &str| -> Result<u64, String> {
            v.ok_or_else(|| format!("{} event without {f}", fast.kind))
        };
        let need32 = |v: Option<u32>, f: &str| -> Result<u32, String> {
            v.ok_or_else(|| format!("{} event without {f}", fast.kind))
        };
        match fast.kind.as_ref() {
            "function-span" => {
                let t = need(fast.t_ns, "t_ns")?;
                let d = need(fast.dur_ns, "dur_ns")?;
                let pid = need32(fast.pid, "pid")?;
                let cpu = need32(fast.cpu, "cpu")?;
                let func = fast
                    .func
                    .as_deref()
                    .ok_or_else(|| "function-span without func".to_string())?;
                if let Some(task) = &fast.task {
                    self.task(pid, cpu, t, task);
                }
                let l = self.label(func);
                self.lane(pid, cpu)
                    .spans
                    .push((t, t.saturating_add(d), l, 0, 0));
                self.counts.function_span += 1;
            }
            "memmap-init" => {
                let t = need(fast.t_ns, "t_ns")?;
                let pid = need32(fast.pid, "pid")?;
                let cpu = need32(fast.cpu, "cpu")?;
                let func = fast.func.as_deref().unwrap_or("memmap-init");
                let pfn = need(fast.start_pfn, "start_pfn")?;
                let pages = need(fast.nr_pages, "nr_pages")?;
                if let Some(task) = &fast.task {
                    self.task(pid, cpu, t, task);
                }
                let l = self.label(func);
                let lane = self.lane(pid, cpu);
                match fast.dur_ns {
                    Some(d) => lane.spans.push((t, t.saturating_add(d), l, pfn, pages)),
                    None => lane.instants.push(t, 0, l, pfn),
                }
                // Keep the full event for progress and the layout.
                let ev: TraceEvent = serde_json::from_str(line)
                    .map_err(|e| format!("expected a trace event: {e}"))?;
                self.events.push(ev);
            }
            "dax-fault" => {
                let t = need(fast.t_ns, "t_ns")?;
                let pid = need32(fast.pid, "pid")?;
                let cpu = need32(fast.cpu, "cpu")?;
                let pmd = fast.pmd.unwrap_or(false);
                let result = fast.result.as_deref().unwrap_or("");
                let l = match (pmd, result) {
                    (false, "NOPAGE") => self.label("dax fault pte NOPAGE"),
                    _ => self.label(&format!(
                        "dax fault {} {result}",
                        if pmd { "pmd" } else { "pte" }
                    )),
                };
                self.lane(pid, cpu).instants.push(
                    t,
                    fast.dur_ns.unwrap_or(0),
                    l,
                    fast.address.unwrap_or(0),
                );
                self.counts.dax_fault += 1;
            }
            "tracepoint" | "kprobe" => {
                let t = need(fast.t_ns, "t_ns")?;
                let pid = need32(fast.pid, "pid")?;
                let cpu = need32(fast.cpu, "cpu")?;
                if let Some(task) = &fast.task {
                    self.task(pid, cpu, t, task);
                }
                let nm = fast
                    .name
                    .as_deref()
                    .or(fast.probe.as_deref())
                    .or(fast.func.as_deref())
                    .unwrap_or("?");
                if nm == "sched:sched_switch" {
                    // Task names of both sides (perf samples of other tracepoints may
                    // have no comm).
                    if let Ok(s) = serde_json::from_str::<SchedSwitch>(line) {
                        let f = s.fields;
                        if let (Some(c), Some(p)) = (&f.prev_comm, f.prev_pid) {
                            self.task(p, cpu, t, c);
                        }
                        if let (Some(c), Some(p)) = (&f.next_comm, f.next_pid) {
                            self.task(p, cpu, t, c);
                        }
                    }
                }
                let l = self.label(nm);
                self.lane(pid, cpu).instants.push(t, 0, l, 0);
                if fast.kind == "kprobe" {
                    self.counts.kprobe += 1;
                } else {
                    self.counts.tracepoint += 1;
                }
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
                        let l = self.label(&text);
                        self.events_lane.push(t, 0, l, 0);
                    }
                    self.events.push(ev);
                }
                Err(e) if e.to_string().contains("unknown variant") => {
                    self.warnings.push((
                        self.lines,
                        format!(
                            "event kind {:?} not known to this build, skipped",
                            fast.kind
                        ),
                    ));
                }
                Err(e) => return Err(format!("expected a trace event: {e}")),
            },
        }
        Ok(())
    }
}

/// Bytes each parsing thread reads at a time.
const READ_BLOCK: usize = 4 << 20;

/// Parse the lines that start in `[from, to)` of the body (`[body_start, len)` of the
/// source). A line belongs to the part its first byte is in.
fn parse_part(src: &Source, body_start: u64, from: u64, to: u64, len: u64) -> ChunkOut {
    let mut out = ChunkOut::default();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BLOCK + 4096);
    // Position in the source of buf[0].
    let mut pos = from;
    // Skip the rest of a line that started in the previous part.
    let mut skip_partial = from > body_start;
    if skip_partial {
        pos = from - 1;
    }
    let mut eof = false;
    loop {
        // Refill: keep the unfinished line at the front.
        let have = buf.len();
        if !eof {
            buf.resize(have + READ_BLOCK, 0);
            let n = match src.read_at(pos + have as u64, &mut buf[have..]) {
                Ok(n) => n,
                Err(e) => {
                    out.error = Some((out.lines + 1, format!("cannot read: {e}")));
                    return out;
                }
            };
            buf.truncate(have + n);
            eof = n == 0 || pos + buf.len() as u64 >= len;
        }
        let mut start = 0usize;
        if skip_partial {
            match buf.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    start = p + 1;
                    skip_partial = false;
                }
                None if eof => return out,
                None => {
                    pos += buf.len() as u64;
                    buf.clear();
                    continue;
                }
            }
        }
        loop {
            if pos + start as u64 >= to {
                return out;
            }
            let rest = &buf[start..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    let end = pos + (start + p) as u64;
                    out.line(&rest[..p], end + 1 >= len);
                    start += p + 1;
                }
                None if eof => {
                    if !rest.is_empty() {
                        out.line(rest, true);
                    }
                    return out;
                }
                None => break,
            }
            if out.error.is_some() {
                return out;
            }
        }
        if out.error.is_some() {
            return out;
        }
        buf.drain(..start);
        pos += start as u64;
    }
}

/// Parse a trace (JSON Lines) held in memory.
pub fn load_trace(path: &str, bytes: &[u8]) -> Result<TraceDoc, LoadError> {
    load_trace_from(path, &Source::Bytes(bytes), bytes.len() as u64)
}

/// Parse a trace on all cores (up to 8): one part of the file per thread.
fn load_trace_from(path: &str, src: &Source, len: u64) -> Result<TraceDoc, LoadError> {
    let err = |line: usize, reason: String| LoadError {
        path: path.to_string(),
        line: Some(line),
        reason,
    };
    // The header line.
    let mut head = Vec::new();
    let mut off = 0u64;
    let head_end = loop {
        let mut block = vec![0u8; 64 << 10];
        let n = src
            .read_at(off, &mut block)
            .map_err(|e| err(1, format!("cannot read: {e}")))?;
        block.truncate(n);
        if let Some(p) = block.iter().position(|&b| b == b'\n') {
            head.extend_from_slice(&block[..p]);
            break off + p as u64;
        }
        head.extend_from_slice(&block);
        off += n as u64;
        if n == 0 {
            break off;
        }
    };
    let head_text = std::str::from_utf8(&head).map_err(|e| err(1, format!("not UTF-8: {e}")))?;
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
    let body_start = (head_end + 1).min(len);
    let body = len - body_start;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8) as u64;
    let parts = body.div_ceil(4 << 20).clamp(1, threads);
    let per = body.div_ceil(parts).max(1);
    let bounds: Vec<(u64, u64)> = (0..parts)
        .map(|i| {
            (
                body_start + (i * per).min(body),
                body_start + ((i + 1) * per).min(body),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let outs: Vec<ChunkOut> = std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .iter()
            .map(|&(a, b)| s.spawn(move || parse_part(src, body_start, a, b, len)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| ChunkOut {
                    error: Some((0, "internal error while parsing".into())),
                    ..Default::default()
                })
            })
            .collect()
    });
    // Line numbers: the header is line 1, each part follows the previous ones.
    let mut first_line = 2;
    let mut outs = outs;
    let mut warnings = Vec::new();
    for o in &mut outs {
        if let Some((n, reason)) = o.error.take() {
            return Err(LoadError {
                path: path.to_string(),
                line: (n > 0).then_some(first_line + n - 1),
                reason,
            });
        }
        for (n, w) in o.warnings.drain(..) {
            warnings.push(format!("{path}:{}: {w}", first_line + n - 1));
        }
        first_line += o.lines;
    }
    let parsed = started.elapsed().as_secs_f64();
    let mut doc = build_trace(header, outs, warnings)?;
    doc.load_phases.insert(0, ("parse", parsed));
    Ok(doc)
}

/// A lane to build: (index in name order, name, detail, spans, instants).
type LaneJob = (usize, String, String, Vec<RawSpan>, InstantRow);
/// A built lane with its fault histogram and (t, latency) points.
type BuiltLane = (usize, Lane, Histogram<u64>, Vec<(u64, u64)>);

fn build_trace(
    header: TraceHeader,
    outs: Vec<ChunkOut>,
    warnings: Vec<String>,
) -> Result<TraceDoc, LoadError> {
    let merge_started = std::time::Instant::now();
    let mut labels = Labels::default();
    let mut lane_of: HashMap<LaneKey, usize> = HashMap::new();
    struct Merged {
        key: LaneKey,
        cpus: u64,
        other_cpus: Vec<u32>,
        spans: Vec<RawSpan>,
        instants: InstantRow,
    }
    let mut merged: Vec<Merged> = Vec::new();
    let mut tasks: HashMap<LaneKey, (u64, String)> = HashMap::new();
    let mut event_instants = InstantRow::default();
    let mut events = Vec::new();
    let mut counts = FastCounts::default();
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
        for cl in out.lanes {
            let gi = *lane_of.entry(cl.key).or_insert_with(|| {
                merged.push(Merged {
                    key: cl.key,
                    cpus: 0,
                    other_cpus: Vec::new(),
                    spans: Vec::new(),
                    instants: InstantRow::default(),
                });
                merged.len() - 1
            });
            let m = &mut merged[gi];
            m.cpus |= cl.cpus;
            for c in cl.other_cpus {
                if !m.other_cpus.contains(&c) {
                    m.other_cpus.push(c);
                }
            }
            let mut spans = cl.spans;
            for s in &mut spans {
                s.2 = lmap[s.2 as usize];
            }
            if m.spans.is_empty() {
                m.spans = spans;
            } else {
                m.spans.extend_from_slice(&spans);
            }
            let mut inst = cl.instants;
            for l in &mut inst.label {
                *l = lmap[*l as usize];
            }
            m.instants.append(inst);
        }
        let mut ev_inst = out.events_lane;
        for l in &mut ev_inst.label {
            *l = lmap[*l as usize];
        }
        event_instants.append(ev_inst);
        for (k, (t, name)) in out.tasks {
            match tasks.get(&k) {
                Some((t0, _)) if *t0 > t => {}
                _ => {
                    tasks.insert(k, (t, name));
                }
            }
        }
        events.extend(out.events);
        counts.function_span += out.counts.function_span;
        counts.dax_fault += out.counts.dax_fault;
        counts.tracepoint += out.counts.tracepoint;
        counts.kprobe += out.counts.kprobe;
    }
    let mut kind_counts: HashMap<&'static str, u64> = HashMap::new();
    for (k, n) in [
        ("function-span", counts.function_span),
        ("dax-fault", counts.dax_fault),
        ("tracepoint", counts.tracepoint),
        ("kprobe", counts.kprobe),
    ] {
        if n > 0 {
            kind_counts.insert(k, n);
        }
    }
    for e in &events {
        *kind_counts.entry(e.kind()).or_default() += 1;
    }
    // Lane names "task-pid" (the idle task, pid 0, has a lane per CPU).
    let lane_name = |k: LaneKey| {
        let task = tasks.get(&k).map(|(_, n)| n.as_str()).unwrap_or("<...>");
        if k.1 == ANY_CPU {
            format!("{task}-{}", k.0)
        } else {
            format!("{task}-{} cpu{}", k.0, k.1)
        }
    };
    let lane_detail = |m: &Merged| {
        let mut cpus: Vec<u32> = (0..64).filter(|c| m.cpus & (1u64 << c) != 0).collect();
        cpus.extend(&m.other_cpus);
        cpus.sort_unstable();
        let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
        format!(
            "pid {}, {} {}",
            m.key.0,
            if cpus.len() == 1 { "cpu" } else { "cpus" },
            list.join(", ")
        )
    };
    let mut named: Vec<(String, String, Merged)> = merged
        .into_iter()
        .map(|m| (lane_name(m.key), lane_detail(&m), m))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.key.cmp(&b.2.key)));
    let mut lanes = Vec::new();
    if !event_instants.is_empty() {
        event_instants.finish();
        lanes.push(Lane {
            name: "events".into(),
            detail: "marks, uevents, kernel log lines".into(),
            rows: Vec::new(),
            instants: event_instants,
        });
    }
    // Build the rows of each lane in parallel, largest lanes first, and the fault
    // statistics on the side.
    let n_threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut order: Vec<usize> = (0..named.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(named[i].2.spans.len() + named[i].2.instants.len()));
    let mut groups: Vec<Vec<LaneJob>> = (0..n_threads).map(|_| Vec::new()).collect();
    let mut load = vec![0usize; n_threads];
    let mut slots: Vec<Option<(String, String, Merged)>> = named.into_iter().map(Some).collect();
    for i in order {
        let (name, detail, m) = slots[i].take().expect("each lane once");
        let g = (0..n_threads).min_by_key(|&g| load[g]).unwrap_or(0);
        load[g] += m.spans.len() + m.instants.len();
        groups[g].push((i, name, detail, m.spans, m.instants));
    }
    let fl = &fault_labels;
    let rows_at = std::time::Instant::now();
    let built: Vec<BuiltLane> = std::thread::scope(|s| {
        let hs: Vec<_> = groups
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    g.into_iter()
                        .map(|(i, name, detail, sp, mut inst)| {
                            inst.finish();
                            let mut hist = memmap_model::hist::new_histogram();
                            let mut pts = Vec::new();
                            for k in 0..inst.len() {
                                if fl[inst.label[k] as usize] {
                                    let v = inst.value[k].clamp(
                                        memmap_model::hist::HIST_LOW_NS,
                                        memmap_model::hist::HIST_HIGH_NS,
                                    );
                                    let _ = hist.record(v);
                                    pts.push((inst.t[k], inst.value[k]));
                                }
                            }
                            let lane = Lane {
                                name,
                                detail,
                                rows: rows_from_spans(sp, MAX_ROWS),
                                instants: inst,
                            };
                            (i, lane, hist, pts)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let rows_done = std::time::Instant::now();
    let mut built = built;
    built.sort_by_key(|b| b.0);
    let mut fault_hist = memmap_model::hist::new_histogram();
    let mut fault_pts: Vec<(u64, u64)> = Vec::new();
    for (_, lane, h, pts) in built {
        let _ = fault_hist.add(&h);
        // Each lane's points are in time order: merge them.
        if fault_pts.is_empty() {
            fault_pts = pts;
        } else if !pts.is_empty() {
            fault_pts.extend(pts);
        }
        lanes.push(lane);
    }
    fault_pts.sort_unstable();
    let fault_over_time = thin_max(&fault_pts, 20_000);
    drop(fault_pts);
    let fault_hist = if fault_hist.is_empty() {
        None
    } else {
        Some(fault_hist)
    };
    let mut timeline = Timeline {
        lanes,
        labels: labels.list,
        span_aux: "start pfn",
        instant_aux: "address",
        fault_labels,
        ..Default::default()
    };
    timeline.finish();
    // Layouts of the recorded namespaces and hot-plugged memory.
    let mut trace = Trace {
        header,
        events,
        warnings: Vec::new(),
    };
    let task_names: HashMap<u32, String> = tasks
        .iter()
        .filter(|(k, _)| k.1 == ANY_CPU)
        .map(|(k, (_, n))| (k.0, n.clone()))
        .collect();
    let memmap_ranges = memmap_ranges(&trace.events, &task_names);
    let (layouts, layout_errors, layout_note) = trace_layouts(&trace, &memmap_ranges);
    let (progress, memmap_pages, memmap_busy_ns) = trace_progress(&trace.events, timeline.t_min);
    let mut kind_counts: Vec<(String, u64)> = kind_counts
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    kind_counts.sort();
    let events = std::mem::take(&mut trace.events);
    let load_phases = vec![
        ("merge", (rows_at - merge_started).as_secs_f64()),
        ("rows", (rows_done - rows_at).as_secs_f64()),
        ("rest", rows_done.elapsed().as_secs_f64()),
    ];
    Ok(TraceDoc {
        header: trace.header,
        timeline,
        events,
        kind_counts,
        warnings,
        fault_hist,
        fault_over_time,
        layouts,
        layout_errors,
        memmap_ranges,
        layout_note,
        progress,
        memmap_pages,
        memmap_busy_ns,
        load_phases,
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

/// The pfn ranges of memmap-init events, merged per (start, pages).
fn memmap_ranges(events: &[TraceEvent], tasks: &HashMap<u32, String>) -> Vec<MemmapRange> {
    let mut out: Vec<MemmapRange> = Vec::new();
    for e in events {
        if let TraceEvent::MemmapInit {
            t_ns,
            dur_ns,
            func,
            start_pfn,
            nr_pages,
            task,
            pid,
            ..
        } = e
        {
            let dur = dur_ns.unwrap_or(0);
            match out
                .iter_mut()
                .find(|r| r.start_pfn == *start_pfn && r.nr_pages == *nr_pages)
            {
                Some(r) => {
                    if !r.funcs.contains(func) {
                        r.funcs.push(func.clone());
                    }
                    r.max_dur_ns = r.max_dur_ns.max(dur);
                }
                None => {
                    let name = tasks
                        .get(pid)
                        .cloned()
                        .filter(|_| task.is_empty())
                        .unwrap_or_else(|| task.clone());
                    out.push(MemmapRange {
                        start_pfn: *start_pfn,
                        nr_pages: *nr_pages,
                        funcs: vec![func.clone()],
                        task: format!("{name}-{pid}"),
                        first_t_ns: *t_ns,
                        max_dur_ns: dur,
                    })
                }
            }
        }
    }
    out.sort_by_key(|r| (r.start_pfn, r.nr_pages));
    out
}

/// Layouts of the trace's namespaces and hot-plugged ranges, as the replay would lay
/// them out (`Trace::to_scenario`): namespaces from namespace events (a recording
/// writes them in its opening and its closing snapshot), hot-plugged memory from the
/// memory blocks that appear in the closing snapshot only. Without either, a note says
/// what the trace does have.
fn trace_layouts(
    trace: &Trace,
    ranges: &[MemmapRange],
) -> (Vec<RangeLayout>, Vec<String>, Option<String>) {
    let mut errors = Vec::new();
    let Some(scenario) = trace.to_scenario("trace") else {
        return (Vec::new(), errors, Some(no_layout_note(trace, ranges)));
    };
    match scenario.layouts("trace", 1.0) {
        Ok(l) => return (l, errors, None),
        Err(e) => errors.push(e.to_string()),
    }
    // The ranges together do not pass the scenario checks: lay each out on its own.
    let mut layouts = Vec::new();
    let params = scenario.kernel.clone();
    if let Ok(specs) = scenario.namespace_specs("trace", 1.0) {
        for spec in specs {
            match namespace_layout(&spec, &params) {
                Ok(l) => layouts.push(l),
                Err(err) => errors.push(format!("namespace {}: {err}", spec.name)),
            }
        }
    }
    if let Ok(specs) = scenario.hotplug_specs("trace", 1.0) {
        for spec in specs {
            match hotplug_layout(&spec, &params) {
                Ok(l) => layouts.push(l),
                Err(err) => errors.push(format!("memory at {:#x}: {err}", spec.start_phys)),
            }
        }
    }
    (layouts, errors, None)
}

/// Why there is nothing to lay out, from what the trace recorded.
fn no_layout_note(trace: &Trace, ranges: &[MemmapRange]) -> String {
    let stopped = trace
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::Mark { text, .. } if text == STOP_MARK));
    let blocks = trace
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::MemoryBlock { .. }))
        .count();
    let mut s = String::from("No namespace event and no hot-plugged memory in this trace");
    if blocks > 0 {
        s.push_str(&format!(
            " ({blocks} memory-block events, all of memory present when the recording started)"
        ));
    }
    s.push('.');
    if ranges.is_empty() {
        s.push_str(" It has no memmap-init events either: nothing to lay out.");
        return s;
    }
    let ps = memmap_model::layout::LayoutParams::linux_6_1().page_size;
    for r in ranges {
        s.push_str(&format!(
            "\nmemmap-init ({}) by {} initialised pfn {:#x}..{:#x} ({} pages, {} at {:#x}).",
            r.funcs.join(", "),
            r.task,
            r.start_pfn,
            r.start_pfn + r.nr_pages,
            r.nr_pages,
            fmt_bytes(r.nr_pages * ps),
            r.start_pfn * ps
        ));
    }
    let destroyed: Vec<&str> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Mark { text, .. } if text.contains("destroy") => Some(text.as_str()),
            _ => None,
        })
        .collect();
    s.push_str(&if stopped {
        format!("\nNo namespace survived to the closing snapshot (taken after \"{STOP_MARK}\"), so the range's namespace, mode and map are not recorded")
    } else {
        "\nThe trace has no closing snapshot and no namespace event, so the range's namespace, mode and map are not recorded".to_string()
    });
    if destroyed.is_empty() {
        s.push('.');
    } else {
        s.push_str(&format!(
            ": the recording destroyed it (mark \"{}\").",
            destroyed.join("\", \"")
        ));
    }
    s
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

#[cfg(test)]
mod tests {
    use super::*;

    fn same(line: &str) {
        let a = flat_line(line);
        let b = serde_json::from_str::<FastLine>(line).ok();
        match (a, b) {
            (Some(a), Some(b)) => {
                assert_eq!(a.kind, b.kind, "{line}");
                assert_eq!(
                    (a.t_ns, a.dur_ns, a.pid, a.cpu),
                    (b.t_ns, b.dur_ns, b.pid, b.cpu)
                );
                assert_eq!(
                    (a.func, a.task, a.name, a.probe),
                    (b.func, b.task, b.name, b.probe)
                );
                assert_eq!((a.pmd, a.address, a.result), (b.pmd, b.address, b.result));
                assert_eq!((a.start_pfn, a.nr_pages), (b.start_pfn, b.nr_pages));
            }
            (Some(_), None) => panic!("the fast path accepts what serde rejects: {line}"),
            (None, _) => {}
        }
    }

    #[test]
    fn flat_lines_read_like_serde() {
        for line in [
            r#"{"kind":"function-span","t_ns":1000000000,"dur_ns":24989,"func":"memmap_init_zone_device","task":"kworker/u32:0","pid":100,"cpu":0}"#,
            r#"{"kind":"dax-fault","t_ns":5,"dur_ns":null,"pmd":true,"pid":1,"cpu":2,"address":140,"pgoff":3,"result":"NOPAGE"}"#,
            r#" { "kind" : "memmap-init" , "t_ns" : 0 , "start_pfn": 18446744073709551615 } "#,
            r#"{"kind":"tracepoint","t_ns":1,"name":"sched:sched_switch","task":"sh","pid":1,"cpu":0,"fields":{"prev_comm":"sh"}}"#,
            r#"{"kind":"function-span","t_ns":1.5}"#,
            r#"{"kind":"function-span","t_ns":"1"}"#,
            r#"{"kind":"function-span","task":"a\"b"}"#,
            r#"{"kind":"function-span","task":"a\u00e9"}"#,
            r#"{"kind":"function-span","pid":4294967296}"#,
            r#"{"kind":"function-span","t_ns":-1}"#,
            r#"{"kind":"function-span","t_ns":01}"#,
            r#"{"kind":"function-span"} x"#,
            r#"{"t_ns":1}"#,
            r#"{"kind":"x","kind":"y"}"#,
            r#"{"kind":"x",}"#,
            r#"{"kind":"x""#,
            r#"{"kind":"x","t_ns":18446744073709551616}"#,
            r#"{}"#,
        ] {
            same(line);
        }
        assert!(flat_line(
            r#"{"kind":"function-span","t_ns":1,"dur_ns":2,"func":"f","task":"t","pid":1,"cpu":0}"#
        )
        .is_some());
        assert!(flat_line(r#"{"kind":"tracepoint","fields":{}}"#).is_none());
    }
}
