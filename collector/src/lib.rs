//! memmap-collect: records hotplug and memmap-init events on a live host and imports
//! what users captured with standard tools, into memmap-lab trace files
//! (`memmap_model::trace`, JSON Lines).

pub mod correlate;
pub mod import;
pub mod info;
pub mod kmsg;
pub mod perf;
pub mod record;
pub mod snapshot;
pub mod tracefs;
pub mod uevent;

/// One line on stderr that never panics (`eprintln!` does when stderr is a closed
/// pipe, e.g. `record ... 2>&1 | head -1`): a recording still has kernel state to undo.
pub fn eprint_line(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}
