//! memmap-model: the types every part of memmap-lab shares — the kernel's memmap
//! layout of device and hot-added memory, scenario files, and run files — with
//! their readers and writers. Kept small in dependencies on purpose.

pub mod chrome;
pub mod hist;
pub mod hlog;
pub mod kernel_recorded;
pub mod layout;
pub mod limits;
pub mod output;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod trace;
pub mod trace_read;
