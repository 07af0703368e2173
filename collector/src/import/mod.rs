//! Importers of users' captures: dmesg, ftrace text, perf script, ndctl/daxctl JSON, /proc/iomem.
//!
//! Every importer tolerates what real pasted text contains and reports, with file and
//! line, what it could not read (as `TraceEvent::ImportWarning`, also printed).

pub mod dmesg;
pub mod ftrace;
pub mod iomem;
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
}

const CHUNK: usize = 4 << 20;

/// What an import wrote.
pub struct ImportStats {
    pub events: u64,
    /// The first unreadable lines (file, line, reason) and how many there were.
    pub warnings: Vec<(String, usize, String)>,
    pub warning_count: u64,
}

/// Import `files` into the trace `out`. ftrace text is streamed: read line by line,
/// parsed on this thread and serialized on a writer thread (parse and JSON writing
/// cost about the same, and the events of a 100 MB trace need not sit in memory).
/// A file that cannot be read at all is an error naming it; non-UTF-8 bytes are
/// replaced (real logs contain them), not refused.
pub fn import_to(format: Format, files: &[impl AsRef<Path>], out: &Path) -> Result<ImportStats> {
    import_chunked(format, files, out, CHUNK)
}

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
    let w = TraceWriter::create(out, &header, &memmap_model::output::inputs(files))
        .context("the import's output")?;
    // parse (this thread) -> serializer threads -> writer thread, batches numbered so
    // the writer restores their order.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<Serialized>(8);
    let workers = spawn_serializers(rx, done_tx);
    let writer = spawn_writer(w, done_rx, out.display().to_string());
    let mut seq = 0u64;
    let mut send = |batch: Vec<TraceEvent>| -> bool {
        seq += 1;
        tx.send((seq - 1, batch)).is_ok()
    };
    let mut failed = None;
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
        let sent = if format == Format::Ftrace {
            stream_ftrace(fh, &name, chunk, &mut send)
        } else {
            let mut bytes = Vec::new();
            match std::io::Read::read_to_end(&mut { fh }, &mut bytes) {
                Ok(_) => Ok(send(format.parse(&name, &String::from_utf8_lossy(&bytes)))),
                Err(e) => Err(anyhow::anyhow!("{name}: cannot read: {e}")),
            }
        };
        match sent {
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
    for wk in workers {
        let _ = wk.join();
    }
    let (st, w) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
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
                let mut bytes = Vec::with_capacity(batch.len() * 140);
                memmap_model::trace::serialize_events(&batch, &mut bytes);
                let warnings: Vec<TraceEvent> = batch
                    .into_iter()
                    .filter(|e| matches!(e, TraceEvent::ImportWarning { .. }))
                    .collect();
                let n = (bytes.iter().filter(|&&b| b == b'\n').count()) as u64;
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
    out_name: String,
) -> std::thread::JoinHandle<Result<(ImportStats, TraceWriter)>> {
    std::thread::spawn(move || -> Result<(ImportStats, TraceWriter)> {
        let mut st = ImportStats {
            events: 0,
            warnings: Vec::new(),
            warning_count: 0,
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
                next += 1;
            }
        }
        w.flush().with_context(|| format!("write {out_name}"))?;
        st.events = w.events_written;
        Ok((st, w))
    })
}

/// Parse one ftrace text file in `chunk`-byte pieces cut at the last newline (one
/// UTF-8 check per chunk, lines split in place), handing batches to `send`.
/// Ok(false) when `send` refused a batch (the pipeline stopped).
fn stream_ftrace(
    mut r: std::fs::File,
    name: &str,
    chunk: usize,
    send: &mut impl FnMut(Vec<TraceEvent>) -> bool,
) -> Result<bool> {
    let mut p = ftrace::FtraceParser::new(name);
    let mut buf: Vec<u8> = Vec::with_capacity(chunk + 4096);
    let mut batch = Vec::with_capacity(8192);
    let mut lineno = 0;
    let mut eof = false;
    while !eof {
        let have = buf.len();
        buf.resize(have + chunk, 0);
        let n = match std::io::Read::read(&mut r, &mut buf[have..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => anyhow::bail!("{name}:{}: cannot read: {e}", lineno + 1),
        };
        buf.truncate(have + n);
        eof = n == 0;
        let cut = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue, // a line longer than the chunk: read more
            }
        };
        {
            // from_utf8 validates ~4x faster than from_utf8_lossy's chunk
            // iterator; the lossy copy is only for chunks with invalid bytes.
            let text = match std::str::from_utf8(&buf[..cut]) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(&buf[..cut]),
            };
            let body = text.strip_suffix('\n').unwrap_or(&text);
            if !body.is_empty() || cut > 0 {
                for line in body.split('\n') {
                    lineno += 1;
                    p.line(lineno, line.strip_suffix('\r').unwrap_or(line), &mut batch);
                    if batch.len() >= 8192
                        && !send(std::mem::replace(&mut batch, Vec::with_capacity(8192)))
                    {
                        return Ok(false);
                    }
                }
            }
        }
        buf.drain(..cut);
    }
    p.finish(&mut batch);
    Ok(send(batch))
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
            assert!(e.contains("missing.txt"), "{e}");
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
