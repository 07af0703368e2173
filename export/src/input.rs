//! What is exported: run files (`memmap-lab-run` JSON, `memmap_model::run`) and traces
//! (`memmap-lab-trace` JSON Lines, `memmap_model::trace`), told apart by the `"format"`
//! field at the start of the file; reading them, with a trace's id hashed as it is
//! parsed.

use crate::parquet::{Fnv1a64, HashingReader};
use anyhow::{bail, Context as _};
use memmap_model::run::{RunFile, RUN_FORMAT};
use memmap_model::trace::{Trace, TRACE_FORMAT};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Bytes read from the start of a file to find its `"format"` field. Both formats write
/// it first (a run file is one JSON object, a trace's first line is its header).
const HEAD_BYTES: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Run,
    Trace,
}

/// The file name of `path` (what the `source_file` columns and Chrome process names show).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A run file or a trace, from the `"format"` field at the start of `path`; an error
/// naming the file and what was expected for anything else.
pub fn kind_of(path: &Path) -> anyhow::Result<Kind> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(HEAD_BYTES).read_to_end(&mut head))
        .with_context(|| format!("{}: cannot read", path.display()))?;
    match format_field(&head) {
        Some(f) if f == RUN_FORMAT => Ok(Kind::Run),
        Some(f) if f == TRACE_FORMAT => Ok(Kind::Trace),
        found => bail!(
            "{}: {}, expected a run file (\"format\": \"{RUN_FORMAT}\", JSON, from memmap-replay run) \
             or a trace (\"format\": \"{TRACE_FORMAT}\", JSON Lines, from memmap-collect)",
            path.display(),
            match found {
                Some(f) => format!("format is {f:?}"),
                None => "no \"format\" field at the start of the file".into(),
            }
        ),
    }
}

/// The string value of the first `"format"` key in `head`, if it is a plain string
/// (no escapes: both formats' names are plain ASCII).
fn format_field(head: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"format\"";
    let at = head.windows(KEY.len()).position(|w| w == KEY)?;
    let rest = &head[at + KEY.len()..];
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    (rest[end] == b'"')
        .then(|| String::from_utf8(rest[..end].to_vec()).ok())
        .flatten()
}

/// Read a run file; `host` files it under another host name (the `hostname` column, the
/// `host` partition and so the run id follow).
pub fn read_run(path: &Path, host: Option<&str>) -> anyhow::Result<RunFile> {
    let mut r = RunFile::read(path)?;
    if let Some(h) = host {
        r.host.hostname = h.to_string();
    }
    Ok(r)
}

/// A trace read for export.
pub struct TraceInput {
    pub path: PathBuf,
    /// FNV-1a 64 of the file's bytes, 16 hex digits.
    pub id: String,
    pub trace: Trace,
}

/// Read a trace; its id is the FNV-1a of the file's bytes, hashed as the file is parsed
/// rather than after reading it whole. The trace's warnings go to stderr.
pub fn read_trace(path: &Path) -> anyhow::Result<TraceInput> {
    let cannot = || format!("{}: cannot read", path.display());
    let file = std::fs::File::open(path).with_context(cannot)?;
    let mut r = std::io::BufReader::with_capacity(
        1 << 20,
        HashingReader {
            inner: file,
            hash: Fnv1a64::default(),
        },
    );
    let trace = Trace::from_reader(&path.display().to_string(), &mut r)?;
    // The parser reads to the end; make sure of it, the id must cover every byte.
    std::io::copy(&mut r, &mut std::io::sink()).with_context(cannot)?;
    for w in &trace.warnings {
        eprintln!("memmap-export: warning: {w}");
    }
    Ok(TraceInput {
        path: path.to_path_buf(),
        id: format!("{:016x}", r.get_ref().hash.0),
        trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_field_is_found_compact_or_pretty() {
        let f = |s: &str| format_field(s.as_bytes());
        assert_eq!(
            f(r#"{"format":"memmap-lab-run","version":1"#).unwrap(),
            "memmap-lab-run"
        );
        assert_eq!(
            f("{\n  \"format\" :\t\"memmap-lab-trace\",\n").unwrap(),
            "memmap-lab-trace"
        );
        assert_eq!(f(r#"{"version":1}"#), None);
        assert_eq!(f(r#"{"format":1}"#), None);
        assert_eq!(f(r#"{"format":"memmap-lab-ru"#), None, "cut off");
        assert_eq!(f(r#"{"format":"a\"b"}"#), None, "escapes are not ours");
    }

    #[test]
    fn files_of_neither_kind_are_named_with_what_was_expected() {
        let dir = std::env::temp_dir().join(format!("memmap-export-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = dir.join("a.run.json");
        std::fs::write(&run, r#"{"format":"memmap-lab-run","version":1}"#).unwrap();
        assert_eq!(kind_of(&run).unwrap(), Kind::Run);
        let trace = dir.join("t.jsonl");
        std::fs::write(&trace, "{\"format\":\"memmap-lab-trace\"}\n{}\n").unwrap();
        assert_eq!(kind_of(&trace).unwrap(), Kind::Trace);
        let other = dir.join("scenario.toml");
        std::fs::write(&other, "format = 'x'\n").unwrap();
        let e = format!("{:#}", kind_of(&other).unwrap_err());
        assert!(e.contains("scenario.toml"), "{e}");
        assert!(e.contains("no \"format\" field"), "{e}");
        assert!(e.contains(RUN_FORMAT) && e.contains(TRACE_FORMAT), "{e}");
        let wrong = dir.join("w.json");
        std::fs::write(&wrong, r#"{"format":"memmap-lab-scenario"}"#).unwrap();
        let e = format!("{:#}", kind_of(&wrong).unwrap_err());
        assert!(e.contains("format is \"memmap-lab-scenario\""), "{e}");
        let e = format!("{:#}", kind_of(&dir.join("missing.json")).unwrap_err());
        assert!(
            e.contains("missing.json") && e.contains("cannot read"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
