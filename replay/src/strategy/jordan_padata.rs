//! `jordan-padata`: a counterfactual. Daniel Jordan's `padata_do_multithreaded` (5.8)
//! parallelised the boot-time deferred init of System RAM; it was never used for
//! ZONE_DEVICE. The replay applies it to `memmap_init_zone_device`: `nworks = min(size /
//! max(min_chunk, align), max_threads)`, `chunk = size / (nworks * 4)` (load-balance
//! factor 4), at least `min_chunk`, rounded up to `align` = one section; nworks - 1
//! helper threads plus the calling task take the jobs in order (5.8 kernel/padata.c).
//! Per page `page_init::v6_1`.

use super::{padata_chunks, params, InitCx, InitStrategy};
use crate::page_init::Era;
use memmap_model::run::StrategyParams;

pub struct JordanPadata;

impl InitStrategy for JordanPadata {
    fn name(&self) -> &'static str {
        "jordan-padata"
    }
    fn about(&self) -> &'static str {
        "counterfactual: 5.8 padata_do_multithreaded (boot memory only in the kernel) on ZONE_DEVICE"
    }
    fn era(&self) -> Era {
        Era::V6_1
    }
    fn default_params(&self, cpus_per_node: u32) -> StrategyParams {
        params(cpus_per_node.max(1), 4)
    }
    fn init_namespace(&self, cx: &mut InitCx) {
        cx.release_hotplug_lock();
        let (start, pages) = cx.data();
        let (nworks, jobs) = padata_chunks(start, pages, cx.params().threads as u64, cx.chunk());
        let next = std::sync::atomic::AtomicUsize::new(0);
        // nworks - 1 helpers; the calling task runs one share itself.
        cx.workers(nworks as usize, true, "padata", &|_, w| loop {
            let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&(a, n)) = jobs.get(j) else { break };
            w.init(a, n);
        });
    }
}
