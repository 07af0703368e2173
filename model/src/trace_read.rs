//! The fast trace reader: the body of a trace parsed on all cores (up to 8), each
//! thread reading its own part of the file (4 MB at a time, `pread`), so the file is
//! never in memory as a whole. What a thread makes of its lines is up to the caller: a
//! [`EventSink`] per part receives the events in file order. Lines of the high-volume
//! kinds ([`HotKind`]) arrive as [`Fields`] borrowed from the line (a small
//! parser of flat JSON objects, about three times faster than serde; anything else —
//! escapes, nesting, floats — goes through serde, which also gives the error messages),
//! every other kind as a parsed [`TraceEvent`]. The file rules are those of
//! [`Trace::from_reader`]: the header line checked by [`parse_header`], blank lines
//! skipped, a cut-off last record dropped with a warning, unknown event kinds skipped
//! with a warning, any other bad line an error naming the file and the line.
//!
//! [`read_trace`] reads a whole [`Trace`] this way (the events of [`Trace::read`]).

use crate::trace::{Trace, TraceEvent, TraceHeader, TRACE_FORMAT, TRACE_VERSION};
use serde::Deserialize;
use std::borrow::Cow;
use std::path::Path;

/// The event kinds that make up nearly all of a large trace; [`read_parallel`] hands
/// them to a sink as borrowed [`Fields`], not as allocated [`TraceEvent`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotKind {
    FunctionSpan,
    MemmapInit,
    DaxFault,
    Tracepoint,
    Kprobe,
}

impl HotKind {
    /// The high-volume kind of a `kind` tag, if it is one.
    #[inline]
    pub fn of(kind: &str) -> Option<HotKind> {
        Some(match kind {
            "function-span" => HotKind::FunctionSpan,
            "memmap-init" => HotKind::MemmapInit,
            "dax-fault" => HotKind::DaxFault,
            "tracepoint" => HotKind::Tracepoint,
            "kprobe" => HotKind::Kprobe,
            _ => return None,
        })
    }
}

/// Bytes each parsing thread reads at a time.
const READ_BLOCK: usize = 4 << 20;
/// The smallest part of a file given to a thread of its own.
const MIN_PART: u64 = 4 << 20;
/// Parsing threads at most.
const MAX_THREADS: usize = 8;

/// Does a file starting with `head` (its first bytes) hold a trace rather than a run
/// file or anything else? True when its first line has a quote, `memmap-lab-trace`
/// (the header's format) and one more byte; [`parse_header`] then decides.
pub fn looks_like_trace(head: &[u8]) -> bool {
    let first_line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    head[..first_line_end]
        .windows(TRACE_FORMAT.len() + 2)
        .any(|w| w[0] == b'"' && w[1..w.len() - 1] == *TRACE_FORMAT.as_bytes())
}

/// Parse and check a trace's header line (format and version); the error is the
/// reason, without file and line (line 1).
pub fn parse_header(line: &str) -> Result<TraceHeader, String> {
    let header: TraceHeader =
        serde_json::from_str(line).map_err(|e| format!("expected a {TRACE_FORMAT} header: {e}"))?;
    if header.format != TRACE_FORMAT {
        return Err(format!(
            "format is {:?}, expected {TRACE_FORMAT:?}",
            header.format
        ));
    }
    if header.version != TRACE_VERSION {
        return Err(format!(
            "trace version {} is not supported (this build reads {TRACE_VERSION})",
            header.version
        ));
    }
    Ok(header)
}

/// Every `kind` tag of [`TraceEvent`] this build reads (a test checks the list against
/// serde's).
pub const KINDS: &[&str] = &[
    "namespace",
    "function-span",
    "memmap-init",
    "initialised",
    "dax-fault",
    "uevent",
    "kernel-log",
    "unavailable",
    "source",
    "traceable",
    "kernel-config",
    "numa-node",
    "iomem",
    "memory-block",
    "zone",
    "nd-device",
    "mark",
    "tracepoint",
    "kprobe",
    "lost",
    "import-warning",
];

/// What is wrong with an event line serde refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadEvent {
    /// A `kind` this build does not know (a newer collector's): skipped with a warning.
    UnknownKind(String),
    /// Anything else: the reason, naming the kind and the field when they are known.
    Invalid(String),
}

/// Tells an unknown event kind (skipped) from a bad value of a known kind (an error that
/// names the field and the expected type), for a `line` serde refused with `e`. Before,
/// any "unknown variant" (e.g. `"mode":"bogus"`) was taken for an unknown kind.
pub fn classify_event_error(line: &str, e: &serde_json::Error) -> BadEvent {
    let kind = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from));
    match kind {
        Some(k) if !KINDS.contains(&k.as_str()) => BadEvent::UnknownKind(k),
        Some(k) => {
            // serde names no field, and for an internally tagged enum gives no position
            // either: find the member holding the value the message quotes.
            let field = key_with_value(line, &e.to_string()).or_else(|| {
                (e.line() == 1 && e.column() > 0)
                    .then(|| key_before(line, e.column()))
                    .flatten()
            });
            BadEvent::Invalid(match field {
                Some(f) if f != "kind" => format!("bad `{k}` event: field `{f}`: {e}"),
                _ => format!("bad `{k}` event: {e}"),
            })
        }
        None => BadEvent::Invalid(format!("expected a trace event: {e}")),
    }
}

/// The key of the (first) top-level member whose value is the one serde's message `msg`
/// quotes: "unknown variant `X`", "invalid type: string \"X\"", "invalid type: integer
/// `N`", "invalid value: integer `N`", "floating point `F`", "boolean `B`", "null".
fn key_with_value(line: &str, msg: &str) -> Option<String> {
    use serde_json::Value;
    let obj = serde_json::from_str::<serde_json::Map<String, Value>>(line).ok()?;
    let between = |open: &str, close: char| {
        let i = msg.find(open)? + open.len();
        let j = msg[i..].find(close)? + i;
        Some(msg[i..j].to_string())
    };
    let wanted = |v: &Value| -> bool {
        if let Some(x) = between("unknown variant `", '`') {
            return v.as_str() == Some(x.as_str());
        }
        if let Some(x) = between("string \"", '"') {
            return v.as_str() == Some(x.as_str());
        }
        for open in ["integer `", "floating point `"] {
            if let Some(x) = between(open, '`') {
                return v.is_number() && x.parse::<f64>().ok() == v.as_f64();
            }
        }
        if let Some(x) = between("boolean `", '`') {
            return v.as_bool().map(|b| b.to_string()) == Some(x);
        }
        if msg.contains("invalid type: null") {
            return v.is_null();
        }
        if msg.contains("invalid type: map") {
            return v.is_object();
        }
        if msg.contains("invalid type: sequence") {
            return v.is_array();
        }
        false
    };
    obj.iter()
        .find(|(key, v)| key.as_str() != "kind" && wanted(v))
        .map(|(key, _)| key.clone())
}

/// The key of the top-level member of a JSON object line whose value ends at byte
/// `column` (1-based, serde's error position), if there is one.
fn key_before(line: &str, column: usize) -> Option<String> {
    let b = line.as_bytes();
    let end = column.min(b.len());
    let (mut depth, mut i, mut last_key, mut pending) = (0usize, 0usize, None, None);
    while i < end {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 {
                    pending = line.get(start..i.min(b.len()));
                }
            }
            b':' if depth == 1 => last_key = pending.take(),
            b',' if depth == 1 => pending = None,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    last_key.map(String::from)
}

/// Why a trace could not be read: file, line when known, reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub path: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path, l, self.reason),
            None => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

impl std::error::Error for ReadError {}

/// The fields of an event line that readers of the high-volume kinds need, borrowed
/// from the line. Every field but `kind` is optional here: what a kind requires is
/// the reader's to check ([`Fields::need`]).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Fields<'a> {
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    pub t_ns: Option<u64>,
    pub dur_ns: Option<u64>,
    #[serde(borrow)]
    pub func: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub task: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub probe: Option<Cow<'a, str>>,
    pub pid: Option<u32>,
    pub cpu: Option<u32>,
    pub pmd: Option<bool>,
    pub address: Option<u64>,
    #[serde(borrow)]
    pub result: Option<Cow<'a, str>>,
    pub start_pfn: Option<u64>,
    pub nr_pages: Option<u64>,
    /// The whole line (a JSON object), for what the fields above leave out.
    #[serde(skip)]
    pub line: &'a str,
}

impl<'a> Fields<'a> {
    /// Read the fields of one line: the flat-object fast path, else serde.
    #[inline]
    pub fn parse(line: &'a str) -> Result<Fields<'a>, serde_json::Error> {
        let mut f = match flat_line(line) {
            Some(f) => f,
            None => serde_json::from_str::<Fields>(line)?,
        };
        f.line = line;
        Ok(f)
    }

    /// A required field: `v`, or the error "<kind> event without <field>".
    pub fn need<T>(&self, v: Option<T>, field: &str) -> Result<T, String> {
        v.ok_or_else(|| format!("{} event without {field}", self.kind))
    }

    /// The whole event, parsed from the line.
    pub fn to_event(&self) -> Result<TraceEvent, String> {
        serde_json::from_str(self.line).map_err(|e| format!("expected a trace event: {e}"))
    }
}

/// An event line as [`read_parallel`] hands it to a sink.
#[derive(Debug)]
pub enum EventLine<'a> {
    /// One of the high-volume kinds, its fields borrowed from the line.
    Fields(HotKind, &'a Fields<'a>),
    /// Any other kind, parsed in full.
    Event(TraceEvent),
}

/// What one parsing thread does with the events of its part of the file, in order. An
/// error stops the reading; [`read_parallel`] reports it with the file and the line.
pub trait EventSink: Send {
    fn event(&mut self, ev: EventLine<'_>) -> Result<(), String>;
}

/// Where trace bytes come from: a file read piecewise, or bytes already in memory.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    File(&'a std::fs::File),
    Bytes(&'a [u8]),
}

impl Source<'_> {
    fn len(&self) -> std::io::Result<u64> {
        match self {
            Source::File(f) => Ok(f.metadata()?.len()),
            Source::Bytes(b) => Ok(b.len() as u64),
        }
    }

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

/// Fill `buf` from `offset` of the file as far as it goes; returns the bytes read.
#[cfg(unix)]
pub fn read_full_at(f: &std::fs::File, mut offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
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

/// Fill `buf` from `offset` of the file as far as it goes; returns the bytes read.
#[cfg(not(unix))]
pub fn read_full_at(f: &std::fs::File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
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

/// A trace read by [`read_parallel`].
pub struct PartsRead<S> {
    pub header: TraceHeader,
    /// One sink per part of the file, in file order.
    pub parts: Vec<S>,
    /// Skipped lines, "path:line: reason", in file order.
    pub warnings: Vec<String>,
}

/// Read a trace on all cores (up to 8): the header here, then one part of the body per
/// thread, each with its own sink (`S::default()`). `path` names the file in errors
/// and warnings.
pub fn read_parallel<S: EventSink + Default>(
    path: &str,
    src: Source<'_>,
) -> Result<PartsRead<S>, ReadError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS);
    read_parts(path, src, threads as u64, MIN_PART)
}

/// [`read_parallel`] with at most `max_parts` parts of at least `min_part` bytes.
fn read_parts<S: EventSink + Default>(
    path: &str,
    src: Source<'_>,
    max_parts: u64,
    min_part: u64,
) -> Result<PartsRead<S>, ReadError> {
    let err = |line: Option<usize>, reason: String| ReadError {
        path: path.to_string(),
        line,
        reason,
    };
    let len = src
        .len()
        .map_err(|e| err(Some(1), format!("cannot read: {e}")))?;
    let (head, head_end) = read_first_line(&src).map_err(|e| err(Some(1), e))?;
    let head_text =
        std::str::from_utf8(&head).map_err(|e| err(Some(1), format!("not UTF-8: {e}")))?;
    let header = parse_header(head_text).map_err(|e| err(Some(1), e))?;
    let body_start = (head_end + 1).min(len);
    let bounds = split_body(body_start, len, max_parts, min_part);
    let parts: Vec<Part<S>> = std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .iter()
            .map(|&(a, b)| s.spawn(move || Part::read(&src, body_start, a, b, len)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Part {
                    error: Some((0, "internal error while parsing".into())),
                    ..Part::default()
                })
            })
            .collect()
    });
    // Line numbers: the header is line 1, each part follows the previous ones.
    let mut first_line = 2;
    let mut warnings = Vec::new();
    let mut sinks = Vec::with_capacity(parts.len());
    for p in parts {
        if let Some((n, reason)) = p.error {
            return Err(err((n > 0).then_some(first_line + n - 1), reason));
        }
        for (n, w) in p.warnings {
            warnings.push(format!("{path}:{}: {w}", first_line + n - 1));
        }
        first_line += p.lines;
        sinks.push(p.sink);
    }
    Ok(PartsRead {
        header,
        parts: sinks,
        warnings,
    })
}

/// The first line (without its newline) and the offset of its end.
fn read_first_line(src: &Source) -> Result<(Vec<u8>, u64), String> {
    let mut head = Vec::new();
    let mut off = 0u64;
    loop {
        let mut block = vec![0u8; 64 << 10];
        let n = src
            .read_at(off, &mut block)
            .map_err(|e| format!("cannot read: {e}"))?;
        block.truncate(n);
        if let Some(p) = block.iter().position(|&b| b == b'\n') {
            head.extend_from_slice(&block[..p]);
            return Ok((head, off + p as u64));
        }
        head.extend_from_slice(&block);
        off += n as u64;
        if n == 0 {
            return Ok((head, off));
        }
    }
}

/// Split the body `[body_start, len)` into at most `max_parts` parts of at least
/// `min_part` bytes (at least one part).
fn split_body(body_start: u64, len: u64, max_parts: u64, min_part: u64) -> Vec<(u64, u64)> {
    let body = len - body_start;
    let parts = body.div_ceil(min_part.max(1)).clamp(1, max_parts.max(1));
    let per = body.div_ceil(parts).max(1);
    (0..parts)
        .map(|i| {
            (
                body_start + (i * per).min(body),
                body_start + ((i + 1) * per).min(body),
            )
        })
        .collect()
}

/// What one parsing thread made of its part of the file. Line numbers are counted
/// from the start of the part until the parts are put together.
struct Part<S> {
    sink: S,
    /// Lines in the part.
    lines: usize,
    /// (line in the part, message without the path).
    warnings: Vec<(usize, String)>,
    /// (line in the part, reason); line 0: not known.
    error: Option<(usize, String)>,
}

impl<S: Default> Default for Part<S> {
    fn default() -> Self {
        Part {
            sink: S::default(),
            lines: 0,
            warnings: Vec::new(),
            error: None,
        }
    }
}

impl<S: EventSink + Default> Part<S> {
    /// Parse the lines that start in `[from, to)` of the body (`[body_start, len)` of
    /// the source). A line belongs to the part its first byte is in.
    fn read(src: &Source, body_start: u64, from: u64, to: u64, len: u64) -> Part<S> {
        let mut out = Part::default();
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
            if out.lines_of_block(&buf, &mut start, pos, to, len, eof) {
                return out;
            }
            buf.drain(..start);
            pos += start as u64;
        }
    }

    /// Parse the complete lines of `buf` from `*start` (the source offset of `buf[0]`
    /// is `pos`) up to the part's end `to`; true when the part is done (its end, the
    /// end of the data, or an error), false when `buf[*start..]` is an unfinished line
    /// to complete with the next block.
    fn lines_of_block(
        &mut self,
        buf: &[u8],
        start: &mut usize,
        pos: u64,
        to: u64,
        len: u64,
        eof: bool,
    ) -> bool {
        loop {
            if pos + *start as u64 >= to {
                return true;
            }
            let rest = &buf[*start..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    let end = pos + (*start + p) as u64;
                    self.line(&rest[..p], end + 1 >= len);
                    *start += p + 1;
                }
                None if eof => {
                    if !rest.is_empty() {
                        self.line(rest, true);
                    }
                    return true;
                }
                None => return self.error.is_some(),
            }
            if self.error.is_some() {
                return true;
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
        let fields = match Fields::parse(line) {
            Ok(f) => f,
            Err(e) if e.is_eof() && last_line => {
                self.warnings
                    .push((n, "truncated last record dropped".into()));
                return;
            }
            Err(e) => {
                let reason = match classify_event_error(line, &e) {
                    BadEvent::Invalid(r) => r,
                    // Fields only fails on a kind's value types; an unknown kind with
                    // odd fields is still skipped below through serde.
                    BadEvent::UnknownKind(k) => {
                        self.warnings.push((
                            n,
                            format!("event kind {k:?} not known to this build, skipped"),
                        ));
                        return;
                    }
                };
                self.error = Some((n, reason));
                return;
            }
        };
        let ev = if let Some(hot) = HotKind::of(&fields.kind) {
            EventLine::Fields(hot, &fields)
        } else {
            match serde_json::from_str::<TraceEvent>(line) {
                Ok(ev) => EventLine::Event(ev),
                Err(e) => match classify_event_error(line, &e) {
                    BadEvent::UnknownKind(k) => {
                        self.warnings.push((
                            n,
                            format!("event kind {k:?} not known to this build, skipped"),
                        ));
                        return;
                    }
                    BadEvent::Invalid(reason) => {
                        self.error = Some((n, reason));
                        return;
                    }
                },
            }
        };
        if let Err(reason) = self.sink.event(ev) {
            self.error = Some((n, reason));
        }
    }
}

/// A sink keeping every event, in full.
#[derive(Default)]
struct AllEvents(Vec<TraceEvent>);

impl EventSink for AllEvents {
    fn event(&mut self, ev: EventLine<'_>) -> Result<(), String> {
        self.0.push(match ev {
            EventLine::Fields(_, f) => f.to_event()?,
            EventLine::Event(e) => e,
        });
        Ok(())
    }
}

/// Read a whole trace with [`read_parallel`]: the header, events and warnings
/// [`Trace::read`] gives for a well-formed file, parsed on all cores.
pub fn read_trace(path: &Path) -> Result<Trace, ReadError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| ReadError {
        path: p.clone(),
        line: None,
        reason: format!("cannot read: {e}"),
    })?;
    let read: PartsRead<AllEvents> = read_parallel(&p, Source::File(&file))?;
    Ok(Trace {
        header: read.header,
        events: read.parts.into_iter().flat_map(|s| s.0).collect(),
        warnings: read.warnings,
    })
}

/// A JSON value of a flat object, as [`flat_line`] reads it.
enum Flat<'a> {
    Str(&'a str),
    Num(u64),
    Bool(bool),
    Null,
}

/// Read a flat JSON object (string values without escapes, unsigned integers,
/// booleans, null; no nesting) into [`Fields`], about three times faster than serde.
/// None for anything else, which then goes through serde (and its error messages).
#[inline]
fn flat_line<'a>(line: &'a str) -> Option<Fields<'a>> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut f = Fields::default();
    let mut has_kind = false;
    skip_ws(b, &mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    skip_ws(b, &mut i);
    if b.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        skip_ws(b, &mut i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key = flat_string(line, &mut i)?;
        skip_ws(b, &mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        skip_ws(b, &mut i);
        let v = flat_value(line, &mut i)?;
        set_field(&mut f, &mut has_kind, key, v)?;
        skip_ws(b, &mut i);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    skip_ws(b, &mut i);
    (i == b.len() && has_kind).then_some(f)
}

#[inline(always)]
fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\r' | b'\n') {
        *i += 1;
    }
}

/// A string without escapes, `*i` at its opening quote; moves `*i` past the closing one.
#[inline(always)]
fn flat_string<'a>(line: &'a str, i: &mut usize) -> Option<&'a str> {
    let b = line.as_bytes();
    let start = *i + 1;
    let len = b[start..].iter().position(|&c| c == b'"' || c == b'\\')?;
    if b[start + len] != b'"' {
        return None;
    }
    *i = start + len + 1;
    line.get(start..start + len)
}

/// A value at `*i`: a string without escapes, an unsigned integer (no leading zero,
/// fraction or exponent), a boolean or null.
#[inline(always)]
fn flat_value<'a>(line: &'a str, i: &mut usize) -> Option<Flat<'a>> {
    let b = line.as_bytes();
    Some(match *b.get(*i)? {
        b'"' => Flat::Str(flat_string(line, i)?),
        c @ b'0'..=b'9' => {
            let first = *i;
            let mut n = (c - b'0') as u64;
            *i += 1;
            while let Some(&d) = b.get(*i) {
                if !d.is_ascii_digit() {
                    break;
                }
                n = n.checked_mul(10)?.checked_add((d - b'0') as u64)?;
                *i += 1;
            }
            if matches!(b.get(*i), Some(b'.' | b'e' | b'E')) || (c == b'0' && *i - first > 1) {
                return None;
            }
            Flat::Num(n)
        }
        b't' if b[*i..].starts_with(b"true") => {
            *i += 4;
            Flat::Bool(true)
        }
        b'f' if b[*i..].starts_with(b"false") => {
            *i += 5;
            Flat::Bool(false)
        }
        b'n' if b[*i..].starts_with(b"null") => {
            *i += 4;
            Flat::Null
        }
        _ => return None,
    })
}

/// Store `key: v` in `f` with the types serde would accept; None where serde would
/// not (or might say more), so the line goes through serde.
#[inline(always)]
fn set_field<'a>(f: &mut Fields<'a>, has_kind: &mut bool, key: &str, v: Flat<'a>) -> Option<()> {
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
            Flat::Str(s) if !*has_kind => {
                f.kind = Cow::Borrowed(s);
                *has_kind = true;
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
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(line: &str) {
        let a = flat_line(line);
        let b = serde_json::from_str::<Fields>(line).ok();
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

    const HEADER: &str = r#"{"format":"memmap-lab-trace","version":1,"created_unix_s":0,"source":"x","kernel_release":"","cmdline":"","numa_nodes":0,"cpus":0,"notes":[]}"#;

    /// Collects what a sink is given, as text.
    #[derive(Default)]
    struct Seen(Vec<String>);

    impl EventSink for Seen {
        fn event(&mut self, ev: EventLine<'_>) -> Result<(), String> {
            self.0.push(match ev {
                EventLine::Fields(_, f) => {
                    let t = f.need(f.t_ns, "t_ns")?;
                    format!("fields {} {t}", f.kind)
                }
                EventLine::Event(e) => format!("event {}", e.kind()),
            });
            Ok(())
        }
    }

    /// A trace of `n` function spans (one line each), a mark and a future kind.
    fn text(n: usize) -> String {
        let mut s = format!("{HEADER}\n");
        for i in 0..n {
            s.push_str(&format!(
                "{{\"kind\":\"function-span\",\"t_ns\":{i},\"dur_ns\":1,\"func\":\"f\",\"task\":\"t\",\"pid\":1,\"cpu\":0}}\n"
            ));
            if i == n / 2 {
                s.push_str("{\"kind\":\"mark\",\"t_ns\":7,\"text\":\"m\"}\n\n");
                s.push_str("{\"kind\":\"from-the-future\"}\n");
            }
        }
        s
    }

    #[test]
    fn parts_together_are_the_file_in_order_with_its_line_numbers() {
        let t = text(200);
        let one: PartsRead<Seen> =
            read_parts("t.jsonl", Source::Bytes(t.as_bytes()), 1, 1).unwrap();
        assert_eq!(one.parts.len(), 1);
        for parts in [2, 3, 8] {
            let many: PartsRead<Seen> =
                read_parts("t.jsonl", Source::Bytes(t.as_bytes()), parts, 1).unwrap();
            assert_eq!(many.parts.len() as u64, parts);
            let all: Vec<String> = many.parts.into_iter().flat_map(|s| s.0).collect();
            assert_eq!(all, one.parts[0].0);
            assert_eq!(many.warnings, one.warnings);
        }
        assert_eq!(one.parts[0].0.len(), 201);
        assert_eq!(one.parts[0].0[0], "fields function-span 0");
        assert_eq!(one.parts[0].0[101], "event mark");
        // Header line 1, spans 0..=100 lines 2..=102, mark 103, blank 104, future 105.
        assert_eq!(
            one.warnings,
            vec!["t.jsonl:105: event kind \"from-the-future\" not known to this build, skipped"]
        );
    }

    #[test]
    fn errors_name_the_line_in_any_part() {
        let mut t = text(300);
        let good = t.lines().nth(250).unwrap().to_string();
        let line = t.lines().position(|l| l == good).unwrap() + 1;
        t = t.replacen(&good, "{\"kind\":\"function-span\",\"dur_ns\":1}", 1);
        for parts in [1, 2, 5, 8] {
            let e = read_parts::<Seen>("t.jsonl", Source::Bytes(t.as_bytes()), parts, 1)
                .err()
                .unwrap();
            assert_eq!(e.line, Some(line), "{parts} parts: {e}");
            assert_eq!(
                e.to_string(),
                format!("t.jsonl:{line}: function-span event without t_ns")
            );
        }
        let e = read_parts::<Seen>("t.jsonl", Source::Bytes(b"{\"format\":\"x\"}\n"), 1, 1)
            .err()
            .unwrap();
        assert_eq!(e.line, Some(1));
        assert!(
            e.reason.starts_with("expected a memmap-lab-trace header"),
            "{e}"
        );
    }

    #[test]
    fn a_cut_off_last_record_is_a_warning() {
        let t = text(20);
        let cut = &t[..t.len() - 10];
        for parts in [1, 4] {
            let r: PartsRead<Seen> =
                read_parts("t.jsonl", Source::Bytes(cut.as_bytes()), parts, 1).unwrap();
            // 19 spans and the mark; the 20th span (line 24) is cut.
            assert_eq!(r.parts.iter().map(|s| s.0.len()).sum::<usize>(), 20);
            assert_eq!(
                r.warnings.last().unwrap(),
                "t.jsonl:24: truncated last record dropped"
            );
        }
    }

    #[test]
    fn the_header_check_and_the_sniff() {
        assert!(looks_like_trace(HEADER.as_bytes()));
        assert!(looks_like_trace(format!("{HEADER}\n{{}}").as_bytes()));
        assert!(!looks_like_trace(
            b"{\"format\":\"memmap-lab-run\"}\n\"memmap-lab-trace\""
        ));
        assert!(!looks_like_trace(b"memmap-lab-trace"));
        assert!(parse_header(HEADER).is_ok());
        let v2 = HEADER.replace("\"version\":1", "\"version\":2");
        assert_eq!(
            parse_header(&v2).unwrap_err(),
            "trace version 2 is not supported (this build reads 1)"
        );
        let other = HEADER.replace("memmap-lab-trace", "memmap-lab-run");
        assert_eq!(
            parse_header(&other).unwrap_err(),
            "format is \"memmap-lab-run\", expected \"memmap-lab-trace\""
        );
    }

    #[test]
    fn read_trace_gives_what_trace_read_gives_on_the_real_traces() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut n = 0;
        for dir in ["traces/real/testbed", "viewer/tests/data"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "jsonl") {
                    let fast = read_trace(&p).unwrap();
                    let slow = Trace::read(&p).unwrap();
                    assert_eq!(fast, slow, "{}", p.display());
                    // And in many parts.
                    let bytes = std::fs::read(&p).unwrap();
                    let name = p.display().to_string();
                    let r: PartsRead<AllEvents> =
                        read_parts(&name, Source::Bytes(&bytes), 8, 1).unwrap();
                    let events: Vec<TraceEvent> = r.parts.into_iter().flat_map(|s| s.0).collect();
                    assert_eq!(events, slow.events, "{}", p.display());
                    n += 1;
                }
            }
        }
        assert!(n >= 5, "{n} traces");
    }
}
