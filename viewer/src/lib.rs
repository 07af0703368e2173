//! memmap-view: desktop viewer of memmap-lab run files (memmap-replay) and traces
//! (memmap-collect). See docs/viewer.md.
//!
//! [`doc`] is the document layer (loading, timelines, level of detail, progress,
//! layouts, A/B statistics), free of any GUI; [`views`] draw it, one module per view;
//! [`app`] holds the open files and dispatches to the active view.

pub mod app;
pub mod doc;
pub mod export;
pub mod screenshot;
pub mod views;

pub use app::{View, ViewerApp};
