//! `williams-async`: seed 003 patches 06, 12-14 (Dan Williams, 2018-07-16). The
//! namespace is usable at once; background threads initialise equal thread ranges, each
//! cut into `NR_MEMMAP_RANGE` = 128 sub-ranges with a pending bitmap and a per-thread
//! mutex held while a sub-range is initialised (`memmap_init_range`); a first touch goes
//! through `memmap_sync` (engine/fault.rs), which initialises the covering sub-ranges
//! itself or waits for the thread holding the mutex. The lanes live in the engine
//! because the fault path shares them. Patch 02 makes `__add_pages` asynchronous
//! (`async_schedule_domain(section_init_async)`) with finer vmemmap locking (mutexes on
//! the pgd/p4d/pud levels, a spinlock in `altmap_alloc_block_buf`): the replay populates
//! each namespace without the global hotplug lock, so namespaces populate in parallel
//! (the brief upper-level page-table locks are left out). Simplified: pfn -> thread by
//! arithmetic (the patch uses a radix tree).

use super::{params, InitCx, InitStrategy};
use crate::page_init::Era;
use memmap_model::run::StrategyParams;

pub struct WilliamsAsync;

impl InitStrategy for WilliamsAsync {
    fn name(&self) -> &'static str {
        "williams-async"
    }
    fn about(&self) -> &'static str {
        "seed 003 patches 06, 12-14: background threads, 128 sub-ranges each, memmap_sync on first use"
    }
    fn era(&self) -> Era {
        Era::Williams2018
    }
    fn default_params(&self, _cpus_per_node: u32) -> StrategyParams {
        params(8, 128)
    }
    fn available_at_once(&self) -> bool {
        true
    }
    fn populate_under_hotplug_lock(&self) -> bool {
        false
    }
    fn namespace_concurrency(&self) -> &'static str {
        "populate in parallel (patch 02: async __add_pages, finer vmemmap locks), init in the background"
    }
    fn init_namespace(&self, cx: &mut InitCx) {
        cx.release_hotplug_lock();
        cx.workers(cx.lanes(), false, "memmap", &|li, w| {
            for r in 0..w.lane_subranges(li) {
                w.init_subrange(li, r);
            }
            w.lane_done();
        });
    }
}
