//! The machinery every importer shares, written once: a line reader over any `Read`
//! with one reused buffer (line numbers, byte offsets, non-UTF-8 bytes replaced, never
//! refused), the [`LineFormat`] a per-format parser implements, the per-file counts of
//! recognised and skipped lines (with the first few reasons, located by line), and a
//! rewindable input for the importers that read a file twice (iomem, ndctl).
//!
//! Memory is the buffer (one chunk plus the longest line) whatever the input size.

use anyhow::Result;
use memmap_model::trace::TraceEvent;
use std::io::{Read, Seek, SeekFrom};

/// Bytes read at a time.
pub const CHUNK: usize = 4 << 20;
/// Skipped lines whose reasons are kept per file (the rest are counted).
pub const FIRST_SKIPS: usize = 5;
/// Longest line read (longer ones are skipped with a warning; no format has them).
pub const MAX_LINE: usize = 1 << 20;
/// Events handed on at a time.
pub const BATCH: usize = 4096;

/// Emptied event batches and serialized-byte buffers handed back by the serializer and
/// writer threads: reused, they spare the allocator fresh pages for every batch (it
/// returns freed memory to the kernel at once, and the page faults of new pages cost
/// ~15 % of an import).
static BATCHES: std::sync::Mutex<Vec<Vec<TraceEvent>>> = std::sync::Mutex::new(Vec::new());
static BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
/// Buffers kept for reuse (the pipeline holds at most ~12 in flight).
const POOL: usize = 12;

/// An empty batch of events (a reused one when there is one). Every batch handed back
/// is emptied here, on the parsing thread: the events' strings are freed by the thread
/// that allocated them (the allocator's fast path) rather than by a serializer thread;
/// those cross-thread frees left the parser's pages waiting to be collected, and peak
/// RSS of a 1 GB iomem import went from ~35 to 50-90 MiB once the serializers got
/// faster. All of them at once, so returned events do not wait in the pool.
pub fn new_batch() -> Vec<TraceEvent> {
    let mut back = BATCHES
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    for v in &mut back {
        v.clear();
    }
    let v = back.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
    if !back.is_empty() {
        if let Ok(mut p) = BATCHES.lock() {
            p.append(&mut back);
        }
    }
    v
}

/// Hands a batch back for reuse (emptied by [`new_batch`]).
pub fn recycle_batch(v: Vec<TraceEvent>) {
    if let Ok(mut p) = BATCHES.lock() {
        if p.len() < POOL && v.capacity() >= BATCH {
            p.push(v);
        }
    }
}

/// An empty byte buffer of at least `cap` bytes (a reused one when there is one).
pub fn new_buffer(cap: usize) -> Vec<u8> {
    let mut v = BUFFERS
        .lock()
        .ok()
        .and_then(|mut p| p.pop())
        .unwrap_or_default();
    v.reserve(cap);
    v
}

/// Hands a byte buffer back for reuse (emptied here).
pub fn recycle_buffer(mut v: Vec<u8>) {
    v.clear();
    if v.capacity() > 64 << 20 {
        return; // a batch of huge events: not kept
    }
    if let Ok(mut p) = BUFFERS.lock() {
        if p.len() < POOL {
            p.push(v);
        }
    }
}

/// What a format's parser made of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A line of the format (whether or not it gave events).
    Recognised,
    /// Kept, but no evidence of the format (dmesg's plain text lines).
    Kept,
    /// Nothing to read: blank lines, comments, separators, callchains.
    Ignored,
    /// Not readable; the parser appended an `ImportWarning` saying why.
    Skipped,
}

/// A per-format line parser: one call per line (without its `\n`; a `\r` is left for the
/// parser), then `finish` at the end of the file.
pub trait LineFormat {
    fn line(&mut self, lineno: usize, line: &str, out: &mut Vec<TraceEvent>) -> Line;
    fn finish(&mut self, _out: &mut Vec<TraceEvent>) {}
    /// A line longer than [`MAX_LINE`] (not kept): by default a warning.
    fn overlong(
        &mut self,
        file: &str,
        lineno: usize,
        offset: u64,
        out: &mut Vec<TraceEvent>,
    ) -> Line {
        out.push(TraceEvent::ImportWarning {
            file: file.to_string(),
            line: lineno,
            reason: format!(
                "line (at byte {offset}) longer than {} MiB, skipped",
                MAX_LINE >> 20
            ),
        });
        Line::Skipped
    }
}

/// The lines of one file: how many, how many recognised, how many skipped and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Bytes up to the end of the last line read (0: an empty file).
    pub bytes: u64,
    pub lines: u64,
    pub recognised: u64,
    pub skipped: u64,
    /// (line, reason) of the first [`FIRST_SKIPS`] skipped lines.
    pub first_skips: Vec<(usize, String)>,
}

impl LineStats {
    /// Count `what` for line `lineno`; a skipped line's reason is the last warning in `out`.
    pub fn count(&mut self, lineno: usize, what: Line, out: &[TraceEvent]) {
        self.lines = lineno as u64;
        match what {
            Line::Recognised => self.recognised += 1,
            Line::Skipped => self.skip(lineno, || {
                out.iter()
                    .rev()
                    .find_map(|e| match e {
                        TraceEvent::ImportWarning { line, reason, .. } if *line == lineno => {
                            Some(reason.clone())
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| "unreadable".into())
            }),
            Line::Kept | Line::Ignored => {}
        }
    }

    /// Count a skipped line with its reason (computed only for the first few).
    pub fn skip(&mut self, lineno: usize, reason: impl FnOnce() -> String) {
        self.skipped += 1;
        if self.first_skips.len() < FIRST_SKIPS {
            self.first_skips.push((lineno, reason()));
        }
    }
}

/// Reads lines from `r` through one reused buffer of `chunk` bytes (plus the longest
/// line). Invalid UTF-8 is replaced per line (U+FFFD), as `String::from_utf8_lossy` of
/// the whole file would.
pub struct LineReader<R> {
    r: R,
    buf: Vec<u8>,
    chunk: usize,
    lineno: usize,
    offset: u64,
}

impl<R: Read> LineReader<R> {
    pub fn new(r: R, chunk: usize) -> Self {
        LineReader {
            r,
            buf: Vec::with_capacity(chunk.max(1) + 4096),
            chunk: chunk.max(1),
            lineno: 0,
            offset: 0,
        }
    }

    /// Reads the next piece: Ok(None) at the end of the input, else the bytes up to and
    /// including the last newline read (all of them at the end of the input). `name`
    /// names the input in errors.
    fn fill(&mut self, name: &str, keep: &mut usize) -> Result<bool> {
        self.buf.drain(..*keep);
        *keep = 0;
        let have = self.buf.len();
        self.buf.resize(have + self.chunk, 0);
        let n = loop {
            match self.r.read(&mut self.buf[have..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(have);
                    anyhow::bail!(
                        "{name}:{}: cannot read (byte {}): {e}",
                        self.lineno + 1,
                        self.offset
                    )
                }
            }
        };
        self.buf.truncate(have + n);
        Ok(n == 0)
    }

    /// Calls `f(line number, byte offset of the line, line)` for every line (1-based;
    /// the text after the last newline is a line too, an empty one when the input ends
    /// with a newline). A line longer than [`MAX_LINE`] is not kept: `f` gets None for
    /// it. `f` returns false to stop: then Ok(false).
    pub fn for_each(
        &mut self,
        name: &str,
        mut f: impl FnMut(usize, u64, Option<&str>) -> bool,
    ) -> Result<bool> {
        let mut done = 0usize; // bytes of `buf` already handed out
        let mut overlong: Option<u64> = None; // bytes of an overlong line dropped so far
        loop {
            let eof = self.fill(name, &mut done)?;
            if let Some(dropped) = overlong {
                match self.buf.iter().position(|&b| b == b'\n') {
                    None if !eof => {
                        overlong = Some(dropped + self.buf.len() as u64);
                        done = self.buf.len();
                        continue;
                    }
                    found => {
                        self.lineno += 1;
                        if !f(self.lineno, self.offset, None) {
                            return Ok(false);
                        }
                        let Some(i) = found else { return Ok(true) };
                        self.offset += dropped + i as u64 + 1;
                        overlong = None;
                        done = i + 1;
                        continue;
                    }
                }
            }
            let cut = if eof {
                self.buf.len()
            } else {
                match self.buf.iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => {
                        // a line longer than the buffer: read more, or drop it
                        if self.buf.len() > MAX_LINE {
                            overlong = Some(self.buf.len() as u64);
                            done = self.buf.len();
                        }
                        continue;
                    }
                }
            };
            let piece = &self.buf[..cut];
            // One UTF-8 check per piece (~4x faster than from_utf8_lossy's iterator);
            // a piece with invalid bytes is converted line by line, so offsets stay
            // those of the file.
            let valid = std::str::from_utf8(piece).ok();
            let body = if eof {
                piece
            } else {
                &piece[..piece.len() - 1]
            };
            if eof && body.is_empty() && self.lineno > 0 {
                // the input ended with a newline: its empty last line
                self.lineno += 1;
                return Ok(f(self.lineno, self.offset, Some("")));
            }
            let mut pos = 0usize;
            // memchr: the byte-by-byte `split` was ~8 % of a perf-script import
            loop {
                let end = memchr::memchr(b'\n', &body[pos..]).map_or(body.len(), |i| pos + i);
                let raw = &body[pos..end];
                self.lineno += 1;
                let line = match valid {
                    _ if raw.len() > MAX_LINE => None,
                    Some(s) => Some(std::borrow::Cow::Borrowed(&s[pos..pos + raw.len()])),
                    None => Some(String::from_utf8_lossy(raw)),
                };
                if !f(self.lineno, self.offset, line.as_deref()) {
                    return Ok(false);
                }
                self.offset += raw.len() as u64 + 1;
                if end == body.len() {
                    break;
                }
                pos = end + 1;
            }
            if eof {
                return Ok(true);
            }
            done = cut;
        }
    }
}

/// Feeds every line of `r` to `p` (then `p.finish`), handing batches of events to
/// `send`; counts into `st`. Ok(false) when `send` refused a batch (the pipeline
/// stopped).
pub fn parse_lines(
    r: impl Read,
    name: &str,
    chunk: usize,
    p: &mut impl LineFormat,
    st: &mut LineStats,
    send: &mut impl FnMut(Vec<TraceEvent>) -> bool,
) -> Result<bool> {
    let mut batch = new_batch();
    let mut stopped = false;
    let read = LineReader::new(r, chunk).for_each(name, |lineno, offset, line| {
        st.bytes = offset + line.map_or(1, |l| l.len() as u64);
        let n0 = batch.len();
        let what = match line {
            Some(line) => p.line(lineno, line, &mut batch),
            None => p.overlong(name, lineno, offset, &mut batch),
        };
        st.count(lineno, what, &batch[n0..]);
        if batch.len() >= BATCH && !send(std::mem::replace(&mut batch, new_batch())) {
            stopped = true;
            return false;
        }
        true
    })?;
    if !read || stopped {
        return Ok(false);
    }
    p.finish(&mut batch);
    Ok(send(batch))
}

/// The events of a whole text, for the in-memory entry points (`import(file, text)`).
pub fn parse_text(text: &str, p: &mut impl LineFormat) -> Vec<TraceEvent> {
    let mut out = Vec::new();
    for (i, l) in text.split('\n').enumerate() {
        p.line(i + 1, l, &mut out);
    }
    p.finish(&mut out);
    out
}

/// What a two-pass importer (iomem, ndctl) reads and where its events go: a
/// [`rewindable`] input, its name, the bytes read at a time, the counts of its lines,
/// and the batch sink (false: the pipeline stopped).
pub struct TwoPass<'a, R> {
    pub r: &'a mut R,
    pub name: &'a str,
    pub chunk: usize,
    pub st: &'a mut LineStats,
    pub send: &'a mut dyn FnMut(Vec<TraceEvent>) -> bool,
}

/// The events of a whole text through a two-pass importer's `stream` (the in-memory
/// entry points, `import(file, text)`).
pub fn two_pass_text<'t>(
    file: &str,
    text: &'t str,
    stream: impl FnOnce(TwoPass<'_, std::io::Cursor<&'t [u8]>>) -> Result<bool>,
) -> Vec<TraceEvent> {
    let mut events = Vec::new();
    let mut keep = |b: Vec<TraceEvent>| {
        events.extend(b);
        true
    };
    let mut r = std::io::Cursor::new(text.as_bytes());
    // reading from memory cannot fail
    let _ = stream(TwoPass {
        r: &mut r,
        name: file,
        chunk: CHUNK,
        st: &mut LineStats::default(),
        send: &mut keep,
    });
    events
}

/// An input that can be read twice: a regular file as it is, anything else (a pipe,
/// /dev/stdin) copied to an unnamed temporary file first.
pub fn rewindable(mut f: std::fs::File, name: &str) -> Result<std::fs::File> {
    if f.metadata().is_ok_and(|m| m.is_file()) && f.stream_position().is_ok() {
        return Ok(f);
    }
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        ".memmap-import-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut tmp = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{name}: cannot spool to {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    std::io::copy(&mut f, &mut tmp)
        .map_err(|e| anyhow::anyhow!("{name}: cannot spool to {}: {e}", dir.display()))?;
    tmp.seek(SeekFrom::Start(0))?;
    Ok(tmp)
}

/// Back to the start of a [`rewindable`] input for the second pass.
pub fn rewind(f: &mut impl Seek, name: &str) -> Result<()> {
    f.seek(SeekFrom::Start(0))
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{name}: cannot read again: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8], chunk: usize) -> Vec<(usize, u64, String)> {
        let mut v = Vec::new();
        LineReader::new(bytes, chunk)
            .for_each("t", |n, o, l| {
                v.push((n, o, l.unwrap_or("<long>").to_string()));
                true
            })
            .unwrap();
        v
    }

    #[test]
    fn lines_offsets_and_lossy_bytes_at_any_chunk_size() {
        let input = b"ab\n\xffc\r\n\nd\xc3\xa9\xc3\nlast";
        let want: Vec<(usize, u64, String)> = String::from_utf8_lossy(input)
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, 0, l.to_string()))
            .collect();
        for chunk in [1, 2, 3, 7, 4096] {
            let got = lines(input, chunk);
            let texts: Vec<_> = got.iter().map(|(n, _, l)| (*n, 0, l.clone())).collect();
            assert_eq!(texts, want, "chunk {chunk}");
            let offs: Vec<u64> = got.iter().map(|x| x.1).collect();
            assert_eq!(offs, vec![0, 3, 7, 8, 13], "chunk {chunk}");
        }
        // a trailing newline gives an empty last line, as split('\n') does
        assert_eq!(
            lines(b"a\n", 1),
            vec![(1, 0, "a".into()), (2, 2, "".into())]
        );
        assert_eq!(lines(b"", 4), vec![(1, 0, "".into())]);
        // an overlong line is dropped whatever the chunk size; the next one is read
        let mut long = vec![b'x'; MAX_LINE + 10];
        long.extend_from_slice(b"\nok\n");
        for chunk in [1000, MAX_LINE / 3, 4 << 20] {
            let got = lines(&long, chunk);
            assert_eq!(
                got,
                vec![
                    (1, 0, "<long>".into()),
                    (2, MAX_LINE as u64 + 11, "ok".into()),
                    (3, MAX_LINE as u64 + 14, "".into())
                ],
                "chunk {chunk}"
            );
        }
    }
}
