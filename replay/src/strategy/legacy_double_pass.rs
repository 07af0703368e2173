//! `legacy-double-pass`: kernels before 4.20 (4.19 shown). `devm_memremap_pages` takes
//! `mem_hotplug_begin()`, `arch_add_memory` populates the vmemmap and
//! `move_pfn_range_to_zone` -> `memmap_init_zone` initialises every pfn (pass 1); after
//! `mem_hotplug_done()` it loops again over every device pfn (pass 2: `list_del`,
//! `pgmap`, `percpu_ref_get`). 4.19 kernel/memremap.c, mm/page_alloc.c. Seed 003 patch
//! 03 and Duyck's 966cf44f637e removed the second loop.

use super::{InitCx, InitStrategy};
use crate::page_init::Era;

pub struct LegacyDoublePass;

impl InitStrategy for LegacyDoublePass {
    fn name(&self) -> &'static str {
        "legacy-double-pass"
    }
    fn about(&self) -> &'static str {
        "< 4.20: pass 1 under the hotplug lock, pass 2 (pgmap, percpu_ref_get) after mem_hotplug_done"
    }
    fn era(&self) -> Era {
        Era::V4_19
    }
    fn init_under_hotplug_lock(&self) -> bool {
        true
    }
    fn namespace_concurrency(&self) -> &'static str {
        "populate and pass 1 serialized on the hotplug lock, pass 2 in parallel per namespace"
    }
    fn init_namespace(&self, cx: &mut InitCx) {
        let (start, pages) = cx.data();
        let chunk = cx.chunk();
        let mut w = cx.probe_worker();
        let mark = w.window_mark();
        w.init_chunks(start, pages, chunk);
        w.release_hotplug_lock();
        let t2 = w.now();
        // Pass 2 revisits the very records pass 1 wrote (the same window slots too).
        w.rewind(mark);
        w.pgmap_pass_chunks(start, pages, chunk);
        drop(w);
        cx.phase("pgmap-pass", t2);
    }
}
