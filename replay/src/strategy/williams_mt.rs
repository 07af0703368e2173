//! `williams-mt`: seed 003 patch 04 (Dan Williams, 2018-07-16). `memmap_init_zone` cut
//! into `NR_MEMMAP_THREADS` = 8 equal ranges (`step = size / 8`, the remainder to the
//! last) run by `async_schedule_domain`; the caller waits
//! (`async_synchronize_full_domain`) while holding the hotplug lock. Per page: patch 03's
//! one-pass writer (`page_init::v4_19::williams_run`).

use super::{equal_split, params, InitCx, InitStrategy};
use crate::page_init::Era;
use memmap_model::run::StrategyParams;

pub struct WilliamsMt;

impl InitStrategy for WilliamsMt {
    fn name(&self) -> &'static str {
        "williams-mt"
    }
    fn about(&self) -> &'static str {
        "seed 003 patch 04: 8 threads on equal ranges, caller waits, under the hotplug lock"
    }
    fn era(&self) -> Era {
        Era::Williams2018
    }
    fn default_params(&self, _cpus_per_node: u32) -> StrategyParams {
        params(8, 1)
    }
    fn namespace_concurrency(&self) -> &'static str {
        "serialized on the hotplug lock (populate and init)"
    }
    fn init_under_hotplug_lock(&self) -> bool {
        true
    }
    fn init_namespace(&self, cx: &mut InitCx) {
        let (start, pages) = cx.data();
        let parts = equal_split(start, pages, cx.params().threads as u64, cx.align());
        let chunk = cx.chunk();
        cx.workers(parts.len(), false, "memmap", &|i, w| {
            let (a, n) = parts[i];
            w.init_chunks(a, n, chunk);
        });
    }
}
