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
use memmap_model::trace::{TraceEvent, TraceHeader};
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

/// Read and parse files; a file that cannot be read at all is an error naming it.
/// Non-UTF-8 bytes are replaced (real logs contain them), not refused.
pub fn import_files(
    format: Format,
    files: &[impl AsRef<Path>],
) -> Result<(TraceHeader, Vec<TraceEvent>)> {
    let mut header = TraceHeader::new(&format!("import:{}", format.name()));
    let mut events = Vec::new();
    for f in files {
        let f = f.as_ref();
        let bytes = std::fs::read(f).with_context(|| format!("{}: cannot read", f.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let name = f.display().to_string();
        header.notes.push(format!("imported from {name}"));
        events.extend(format.parse(&name, &text));
    }
    Ok((header, events))
}
