//! The views of the viewer, one module each.

pub mod compare;
pub mod layout;
pub mod overview;
pub mod plots;
pub mod timeline;
