//! Importers of users' captures: dmesg, ftrace text, perf script, ndctl/daxctl JSON, /proc/iomem.
//!
//! Every importer tolerates what real pasted text contains and reports, with file and
//! line, what it could not read (as `TraceEvent::ImportWarning`, also printed).
//!
//! Every importer streams: [`lines`] is the machinery they share (a line reader with one
//! reused buffer, line numbers, byte offsets, lossy UTF-8, the counts of recognised and
//! skipped lines); each format is a small parser on top of it, one file per format
//! (ndctl JSON reads documents from a bounded window instead of lines). A file in which
//! no line was recognised as the format is an error naming the file, the line and what
//! was expected.

pub mod dmesg;
pub mod ftrace;
pub mod iomem;
mod json_node;
pub mod lines;
pub mod ndctl;
pub mod perf_script;

use anyhow::{Context, Result};
use memmap_model::trace::{TraceEvent, TraceHeader, TraceWriter};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// dmesg / journalctl -k / syslog text, with or without timestamps
    Dmesg,
    /// trace or trace_pipe text (function_graph, kprobes, tracepoints), trace-cmd report
    Ftrace,
    /// `perf script` text of tracepoints and probes
    PerfScript,
    /// `ndctl list` / `daxctl list` JSON
    Ndctl,
    /// /proc/iomem
    Iomem,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Dmesg => "dmesg",
            Format::Ftrace => "ftrace",
            Format::PerfScript => "perf-script",
            Format::Ndctl => "ndctl",
            Format::Iomem => "iomem",
        }
    }

    /// Parse one file's text.
    pub fn parse(self, file: &str, text: &str) -> Vec<TraceEvent> {
        match self {
            Format::Dmesg => dmesg::import(file, text),
            Format::Ftrace => ftrace::import(file, text),
            Format::PerfScript => perf_script::import(file, text),
            Format::Ndctl => ndctl::import(file, text),
            Format::Iomem => iomem::import(file, text),
        }
    }

    /// What a line of the format looks like (for the error on input of another format).
    pub fn expected(self) -> &'static str {
        match self {
            Format::Dmesg => {
                "kernel log lines ('[seconds.micros] text', '<level>[..] text', \
                 'Mon dd hh:mm:ss host kernel: text', '6,123,4567,-;text')"
            }
            Format::Ftrace => {
                "ftrace lines ('task-pid [cpu] flags seconds.micros: event: payload' or \
                 function_graph 'cpu) task-pid | duration | func() {')"
            }
            Format::PerfScript => {
                "perf script samples ('comm tid [cpu] seconds.micros: sys:event: payload')"
            }
            Format::Ndctl => "ndctl/daxctl list JSON (objects with \"dev\" or \"chardev\")",
            Format::Iomem => "/proc/iomem lines ('start-end : name', hex addresses)",
        }
    }
}

use lines::{LineStats, CHUNK};

/// What an import wrote.
pub struct ImportStats {
    pub events: u64,
    /// The first import warnings (file, line, reason) and how many there were.
    pub warnings: Vec<(String, usize, String)>,
    pub warning_count: u64,
    /// Lines read, recognised as the format, and skipped (unreadable), over all files.
    pub lines: u64,
    pub recognised: u64,
    pub skipped: u64,
    /// The first skipped lines of each file: (file, line, reason).
    pub first_skips: Vec<(String, usize, String)>,
}

/// Import `files` into the trace `out`. Every format is streamed: read piece by piece,
/// parsed on this thread and serialized on writer threads (parse and JSON writing
/// cost about the same, and the events of a 1 GB capture need not sit in memory).
/// A file that cannot be read at all is an error naming it; non-UTF-8 bytes are
/// replaced (real logs contain them), not refused. A file in which no line was
/// recognised as `format` is an error (file, line, what was expected), after the
/// events read so far were written.
pub fn import_to(format: Format, files: &[impl AsRef<Path>], out: &Path) -> Result<ImportStats> {
    import_chunked(format, files, out, CHUNK)
}

/// Batches sent and not yet written, at most.
const IN_FLIGHT: usize = 8;

/// A numbered batch of events; the writer restores the order of the numbers.
type Batch = (u64, Vec<TraceEvent>);
/// A serialized batch: (number, JSON lines, line count, its import warnings).
type Serialized = (u64, Vec<u8>, u64, Vec<TraceEvent>);

fn import_chunked(
    format: Format,
    files: &[impl AsRef<Path>],
    out: &Path,
    chunk: usize,
) -> Result<ImportStats> {
    let mut header = TraceHeader::new(&format!("import:{}", format.name()));
    for f in files {
        header
            .notes
            .push(format!("imported from {}", f.as_ref().display()));
    }
    // Checked before any input is opened: an output naming an input is refused; the
    // trace is written to a temporary name and appears only if the whole import worked.
    let w = TraceWriter::create_direct(out, &header, &memmap_model::output::inputs(files))
        .context("the import's output")?;
    // parse (this thread) -> serializer threads -> writer thread, batches numbered so
    // the writer restores their order.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<Serialized>(4);
    // One token per batch between the parser and the file: the writer keeps the batches
    // that arrive before an earlier one (a serializer descheduled on a busy machine) and
    // those were not bounded by the channels; peak RSS reached 70-100 MiB.
    let (token_tx, token_rx) = std::sync::mpsc::sync_channel::<()>(IN_FLIGHT);
    let workers = spawn_serializers(rx, done_tx);
    let writer = spawn_writer(w, done_rx, token_rx, out.display().to_string());
    let mut seq = 0u64;
    let mut send = |batch: Vec<TraceEvent>| -> bool {
        seq += 1;
        token_tx.send(()).is_ok() && tx.send((seq - 1, batch)).is_ok()
    };
    let mut failed = None;
    let mut all = LineStats::default();
    let mut first_skips = Vec::new();
    for f in files {
        let f = f.as_ref();
        let name = f.display().to_string();
        let fh = match std::fs::File::open(f) {
            Ok(h) => h,
            Err(e) => {
                failed = Some(anyhow::anyhow!("{name}: cannot read: {e}"));
                break;
            }
        };
        let mut st = LineStats::default();
        let sent = import_file(format, fh, &name, chunk, &mut st, &mut send);
        all.lines += st.lines;
        all.recognised += st.recognised;
        all.skipped += st.skipped;
        first_skips.extend(
            st.first_skips
                .iter()
                .map(|(l, r)| (name.clone(), *l, r.clone())),
        );
        match sent {
            Ok(true) if st.recognised == 0 || mostly_skipped(format, &st) => {
                failed = Some(not_this_format(format, &name, &st));
                break;
            }
            Ok(true) => {}
            // the serializers or the writer stopped: the writer's error says why
            Ok(false) => break,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(tx);
    drop(token_tx);
    for wk in workers {
        let _ = wk.join();
    }
    let (mut st, w) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    st.lines = all.lines;
    st.recognised = all.recognised;
    st.skipped = all.skipped;
    st.first_skips = first_skips;
    match failed {
        // Dropping the unfinished writer removes its temporary file: no partial output.
        Some(e) => Err(e),
        None => {
            w.finish()
                .with_context(|| format!("write {}", out.display()))?;
            Ok(st)
        }
    }
}

/// One file through its format's parser.
fn import_file(
    format: Format,
    fh: std::fs::File,
    name: &str,
    chunk: usize,
    st: &mut LineStats,
    send: &mut impl FnMut(Vec<TraceEvent>) -> bool,
) -> Result<bool> {
    match format {
        Format::Ftrace => lines::parse_lines(
            fh,
            name,
            chunk,
            &mut ftrace::FtraceParser::new(name),
            st,
            send,
        ),
        Format::Dmesg => lines::parse_lines(
            fh,
            name,
            chunk,
            &mut dmesg::DmesgParser::new(name),
            st,
            send,
        ),
        Format::PerfScript => lines::parse_lines(
            fh,
            name,
            chunk,
            &mut perf_script::PerfScriptParser::new(name),
            st,
            send,
        ),
        Format::Iomem => {
            let mut fh = lines::rewindable(fh, name)?;
            iomem::stream(lines::TwoPass {
                r: &mut fh,
                name,
                chunk,
                st,
                send,
            })
        }
        Format::Ndctl => {
            let mut fh = lines::rewindable(fh, name)?;
            ndctl::stream(lines::TwoPass {
                r: &mut fh,
                name,
                chunk,
                st,
                send,
            })
        }
    }
}

/// Fewer than 1 line in 50 recognised as a line format: another format (a dmesg with a
/// stray ftrace-looking line, random bytes with a few `<6>` in them). ndctl's recognised
/// count is of device objects, which span many lines: not compared.
fn mostly_skipped(format: Format, st: &LineStats) -> bool {
    format != Format::Ndctl && st.recognised.saturating_mul(50) < st.skipped
}

/// The error for a file in which no line, or almost none, was recognised as `format`.
fn not_this_format(format: Format, name: &str, st: &LineStats) -> anyhow::Error {
    let expected = format.expected();
    let fmt = format.name();
    match st.first_skips.first() {
        _ if st.bytes == 0 => {
            anyhow::anyhow!("{name}:1: no {fmt} input (the file is empty); expected {expected}")
        }
        Some((line, reason)) if st.recognised > 0 => anyhow::anyhow!(
            "{name}:{line}: not {fmt} input: only {} of its {} lines were recognised, {} were \
             skipped (line {line}: {reason}); expected {expected}",
            st.recognised,
            st.lines,
            st.skipped
        ),
        Some((line, reason)) => anyhow::anyhow!(
            "{name}:{line}: not {fmt} input: none of its {} lines was recognised ({} skipped; \
             line {line}: {reason}); expected {expected}",
            st.lines,
            st.skipped
        ),
        None => anyhow::anyhow!(
            "{name}:1: not {fmt} input: none of its {} lines was recognised; expected {expected}",
            st.lines
        ),
    }
}

/// Serializer threads: events to JSON lines, in parallel, batch by batch.
fn spawn_serializers(
    rx: std::sync::mpsc::Receiver<Batch>,
    done_tx: std::sync::mpsc::SyncSender<Serialized>,
) -> Vec<std::thread::JoinHandle<()>> {
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    (0..std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4))
        .map(|_| {
            let rx = rx.clone();
            let done_tx = done_tx.clone();
            std::thread::spawn(move || loop {
                let next = rx.lock().map(|r| r.recv());
                let Ok(Ok((seq, batch))) = next else { return };
                let mut bytes = lines::new_buffer(batch.len() * 140);
                memmap_model::trace::serialize_events(&batch, &mut bytes);
                let warnings: Vec<TraceEvent> = batch
                    .iter()
                    .filter(|e| matches!(e, TraceEvent::ImportWarning { .. }))
                    .cloned()
                    .collect();
                lines::recycle_batch(batch);
                let n = memchr::memchr_iter(b'\n', &bytes).count() as u64;
                if done_tx.send((seq, bytes, n, warnings)).is_err() {
                    return;
                }
            })
        })
        .collect()
}

/// The writer thread: serialized batches written in their number order; counts the
/// events and keeps the first 20 import warnings.
fn spawn_writer(
    mut w: TraceWriter,
    done_rx: std::sync::mpsc::Receiver<Serialized>,
    tokens: std::sync::mpsc::Receiver<()>,
    out_name: String,
) -> std::thread::JoinHandle<Result<(ImportStats, TraceWriter)>> {
    std::thread::spawn(move || -> Result<(ImportStats, TraceWriter)> {
        let mut st = ImportStats {
            events: 0,
            warnings: Vec::new(),
            warning_count: 0,
            lines: 0,
            recognised: 0,
            skipped: 0,
            first_skips: Vec::new(),
        };
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0u64;
        for item in done_rx {
            pending.insert(item.0, item);
            while let Some((_, bytes, n, warnings)) = pending.remove(&next) {
                for e in warnings {
                    if let TraceEvent::ImportWarning { file, line, reason } = e {
                        st.warning_count += 1;
                        if st.warnings.len() < 20 {
                            st.warnings.push((file, line, reason));
                        }
                    }
                }
                w.write_serialized(&bytes, n)
                    .with_context(|| format!("write {out_name}"))?;
                lines::recycle_buffer(bytes);
                let _ = tokens.recv();
                next += 1;
            }
        }
        w.flush().with_context(|| format!("write {out_name}"))?;
        st.events = w.events_written;
        Ok((st, w))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap_model::trace::Trace;

    /// The in-memory import the streamed one must equal: every file read and parsed whole.
    fn import_files(
        format: Format,
        files: &[impl AsRef<Path>],
    ) -> Result<(TraceHeader, Vec<TraceEvent>)> {
        let mut header = TraceHeader::new(&format!("import:{}", format.name()));
        let mut events = Vec::new();
        for f in files {
            let f = f.as_ref();
            let bytes =
                std::fs::read(f).with_context(|| format!("{}: cannot read", f.display()))?;
            let text = String::from_utf8_lossy(&bytes);
            let name = f.display().to_string();
            header.notes.push(format!("imported from {name}"));
            events.extend(format.parse(&name, &text));
        }
        Ok((header, events))
    }

    #[test]
    fn streamed_import_equals_in_memory_import_at_any_chunk_size() {
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/");
        let files: Vec<String> = std::fs::read_dir(corpus)
            .unwrap()
            .flatten()
            .map(|e| e.path().display().to_string())
            .filter(|p| p.contains("/ftrace-") && p.ends_with(".txt"))
            .collect();
        assert!(files.len() >= 3, "{files:?}");
        let (_, want) = import_files(Format::Ftrace, &files).unwrap();
        let dir = std::env::temp_dir().join(format!("mc-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Tiny chunks cut lines everywhere, including inside multi-byte characters.
        for chunk in [7, 100, 4096, CHUNK] {
            let out = dir.join(format!("c{chunk}.jsonl"));
            let st = import_chunked(Format::Ftrace, &files, &out, chunk).unwrap();
            let got = Trace::read(&out).unwrap();
            assert_eq!(got.events, want, "chunk {chunk}");
            assert_eq!(st.events, want.len() as u64);
        }
        let e = import_to(
            Format::Dmesg,
            &[dir.join("missing.txt")],
            &dir.join("m.jsonl"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("missing.txt") && e.contains("cannot read"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `import ... -o` naming an input (by any name) is refused before the input is
    /// opened, and a failed import leaves no output and no temporary file.
    #[test]
    fn import_output_is_never_an_input_and_never_partial() {
        let dir = std::env::temp_dir().join(format!("mc-import-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("dmesg.txt");
        let text = "[    1.000000] memmap_init_zone_device initialised 32768 pages in 3ms\n";
        std::fs::write(&input, text).unwrap();
        let hard = dir.join("hard.txt");
        std::fs::hard_link(&input, &hard).unwrap();
        for out in [input.clone(), hard.clone(), dir.join(".").join("dmesg.txt")] {
            for format in [Format::Dmesg, Format::Ftrace] {
                let e = import_to(format, std::slice::from_ref(&input), &out)
                    .err()
                    .expect("refused");
                let e = format!("{e:#}");
                assert!(e.contains("same file as the input"), "{e}");
                assert!(e.contains(&out.display().to_string()), "{e}");
            }
        }
        assert_eq!(
            std::fs::read_to_string(&input).unwrap(),
            text,
            "input intact"
        );
        // Not a regular file.
        let e = import_to(
            Format::Dmesg,
            std::slice::from_ref(&input),
            Path::new("/dev/null"),
        )
        .err()
        .expect("refused");
        let e = format!("{e:#}");
        assert!(
            e.contains("/dev/null") && e.contains("character device"),
            "{e}"
        );
        // The second input is missing: the first was imported, but nothing is left.
        let out = dir.join("out.trace.jsonl");
        std::fs::write(&out, "previous").unwrap();
        for format in [Format::Dmesg, Format::Ftrace] {
            let e = import_to(format, &[input.clone(), dir.join("missing.txt")], &out)
                .err()
                .expect("fails");
            let e = format!("{e:#}");
            // As ftrace the dmesg file itself is refused (not its format) before the
            // missing one is reached; either way the old output stays.
            let why = match format {
                Format::Ftrace => "not ftrace input",
                _ => "missing.txt",
            };
            assert!(e.contains(why), "{e}");
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
        }
        let fresh = dir.join("fresh.trace.jsonl");
        assert!(import_to(Format::Dmesg, &[dir.join("missing.txt")], &fresh).is_err());
        assert!(!fresh.exists(), "partial output left");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["dmesg.txt", "hard.txt", "out.trace.jsonl"],
            "temp left"
        );
        // A good import replaces the old output.
        import_to(Format::Dmesg, std::slice::from_ref(&input), &out).unwrap();
        assert!(Trace::read(&out).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
