//! memmap-collect: records hotplug and memmap-init events on a live host and imports
//! what users captured with standard tools, into memmap-lab trace files
//! (`memmap_model::trace`, JSON Lines).

pub mod correlate;
pub mod import;
pub mod snapshot;
