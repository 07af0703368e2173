//! memmap-replay: reproduces a recorded or scenario section layout and the
//! threaded struct-page init of device / hot-added memory on mmap'd memory,
//! under the strategies the kernel community proposed, and measures it.

pub mod compare;
pub mod counters;
pub mod engine;
pub mod faults;
pub mod interrupt;
pub mod layout_cmd;
pub mod page_init;
pub mod predict;
pub mod runner;
pub mod strategy;
pub mod struct_page;
pub mod target;
