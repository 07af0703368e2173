//! `duyck`: 4.20 .. 6.x (Alexander Duyck's 4.20 `memmap_init_zone_device`, as Debian's
//! 6.1.192 has it): one pass by the probe task outside the hotplug lock, after
//! `move_pfn_range_to_zone` initialised the altmap's own pfns under it; namespaces probed
//! asynchronously (5.1 driver-core async probe), so their inits run in parallel. Per page
//! `page_init::v6_1`. The base Li Zhe's series is measured against.

use super::{InitCx, InitStrategy};
use crate::page_init::Era;

pub struct Duyck;

impl InitStrategy for Duyck {
    fn name(&self) -> &'static str {
        "duyck"
    }
    fn about(&self) -> &'static str {
        "4.20-6.x: memmap_init_zone_device, one pass outside the hotplug lock (Debian 6.1.192 writer)"
    }
    fn era(&self) -> Era {
        Era::V6_1
    }
    fn init_namespace(&self, cx: &mut InitCx) {
        single_pass(cx)
    }
}

/// `memmap_init_zone_device` by the probe task after `mem_hotplug_done()`, in
/// section-sized units (the replay's progress granularity).
pub(super) fn single_pass(cx: &mut InitCx) {
    cx.release_hotplug_lock();
    let (start, pages) = cx.data();
    let chunk = cx.chunk();
    cx.probe_worker().init_chunks(start, pages, chunk);
}
