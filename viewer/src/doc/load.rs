//! Opening files: whether a file is a run file or a trace is decided by its content
//! (`memmap_model::trace_read::looks_like_trace`). Loading never panics on bad input:
//! every failure is a [`LoadError`] naming the file, the line when known, and the
//! reason.

use super::run::RunDoc;
use super::trace::{load_trace, TraceDoc};
use memmap_model::run::{RunFile, RunFileError};
use memmap_model::trace_read::{looks_like_trace, read_full_at, ReadError, Source};
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

impl From<ReadError> for LoadError {
    fn from(e: ReadError) -> LoadError {
        LoadError {
            path: e.path,
            line: e.line,
            reason: e.reason,
        }
    }
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
    let doc = if looks_like_trace(&head) {
        Doc::Trace(Box::new(load_trace(&p, Source::File(&file))?))
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
    if looks_like_trace(bytes) {
        return Ok(Doc::Trace(Box::new(load_trace(
            path,
            Source::Bytes(bytes),
        )?)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_run_or_trace() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let run = load_path(&dir.join("qemu16g-duyck.run.json")).unwrap();
        assert!(matches!(run.doc, Doc::Run(_)));
        assert_eq!(run.name, "qemu16g-duyck.run.json");
        let trace = load_path(&dir.join("ftrace-fs_dax-ext4.excerpt.trace.jsonl")).unwrap();
        assert!(matches!(trace.doc, Doc::Trace(_)));
        let e = load_path(&dir.join("no such file")).err().unwrap();
        assert!(e.reason.starts_with("cannot read"), "{e}");
        assert_eq!(e.line, None);
    }

    #[test]
    fn a_trace_error_names_the_line() {
        let text = "{\"format\":\"memmap-lab-trace\",\"version\":1,\"created_unix_s\":0,\"source\":\"x\",\"kernel_release\":\"\",\"cmdline\":\"\",\"numa_nodes\":0,\"cpus\":0,\"notes\":[]}\n\n{\"kind\":\"dax-fault\",\"t_ns\":1}\n";
        let Err(e) = load_bytes("t.jsonl", text.as_bytes()) else {
            panic!("accepted")
        };
        assert_eq!(e.to_string(), "t.jsonl:3: dax-fault event without pid");
    }
}
