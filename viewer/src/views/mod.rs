//! The views of the viewer, one module each, each with its `ui()` and, where it
//! remembers something between frames, its state. They draw the document layer
//! (`crate::doc`); `plots` holds the plot helpers several views share.

pub mod compare;
pub mod layout;
pub mod live;
pub mod overview;
pub mod plots;
pub mod progress;
pub mod stalls;
pub mod timeline;
