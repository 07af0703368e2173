//! memmap-view: desktop viewer of memmap-lab run files (memmap-replay) and traces
//! (memmap-collect). See docs/viewer.md.

pub mod app;
pub mod data;
pub mod export;
pub mod lod;
pub mod screenshot;
pub mod stats;
pub mod views;

pub use app::{View, ViewerApp};
