//! The document layer: what the viewer knows of its open files, without any GUI.
//! Loading and detection ([`load`]), run files ([`run`]), traces ([`trace`], read
//! through `memmap_model::trace_read` into lanes by [`trace_lanes`], laid out by
//! [`trace_layout`]), the timeline model ([`timeline`]) with its level-of-detail rows
//! ([`lod`]), progress curves ([`progress`]), the A/B sides ([`compare`]) and their statistics
//! ([`stats`]), and number formatting ([`fmt`]). The
//! views (`crate::views`) draw these; nothing here depends on them or on egui.

pub mod compare;
pub mod fmt;
pub mod load;
pub mod lod;
pub mod progress;
pub mod run;
pub mod stats;
pub mod timeline;
pub mod trace;
pub mod trace_lanes;
pub mod trace_layout;

pub use fmt::{fmt_bytes, fmt_ns};
pub use load::{load_bytes, load_path, Doc, LoadError, OpenFile};
pub use progress::Progress;
pub use run::RunDoc;
pub use timeline::{Lane, LaneStats, Timeline};
pub use trace::TraceDoc;
pub use trace_layout::MemmapRange;
