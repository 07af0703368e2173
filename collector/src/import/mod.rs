//! Importers of users' captures: dmesg, ftrace text, perf script, ndctl/daxctl JSON, /proc/iomem.
//!
//! Every importer tolerates what real pasted text contains and reports, with file and
//! line, what it could not read (as `TraceEvent::ImportWarning`, also printed).

pub mod dmesg;
pub mod ftrace;
pub mod iomem;
pub mod ndctl;
pub mod perf_script;
