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
