//! The same-run roofline: the bare store loop over the same bytes with the same
//! threads, regular and non-temporal (`fraction_of_nt_roofline`), and the era's
//! per-page writer run bare over the same bytes with the same threads, that the
//! engine's init time is measured against (`engine_efficiency`).

use super::{align_up, Engine, BLOCK};
use crate::page_init;
use crate::struct_page::{self, RECORD_BYTES};
use memmap_model::run::{Roofline, StoreKind};
use std::time::Instant;

impl Engine {
    /// Same-run roofline: sequential stores over the same bytes with the same
    /// threads, regular and non-temporal.
    pub(super) fn roofline(&self) -> anyhow::Result<Roofline> {
        let threads = self.opts.params.threads.max(1) as u64;
        let bytes: u64 = self
            .plans
            .iter()
            .map(|p| p.struct_pages_written * RECORD_BYTES as u64)
            .sum();
        let span = self.target.len().min(align_up(bytes.max(BLOCK), BLOCK));
        let per_thread = (bytes / threads) / 64 * 64;
        let part = (span / threads) / 64 * 64;
        let base = self.target.as_ptr() as usize;
        let persistent = self.opts.persist_memmap && self.target.info().persistent;
        let plan = &self.plans[0];
        let spec = page_init::BareSpec {
            era: self.opts.strategy.era(),
            class: plan.class,
            zone: plan.zone,
            compound: plan.compound,
        };
        let pgmap_ref = page_init::PgmapRef::new(plan.pgmap_ref_atomic);
        let store = self.opts.params.store;
        // Kind None: the era's writer; Some: the bare store loop of that kind.
        let measure = |kind: Option<StoreKind>| -> anyhow::Result<u64> {
            // Same state as phase 2 meets: freshly populated memory (cold start), unless
            // the memmap goes round a window that stays populated.
            if self.window.is_none() {
                self.target.discard(0, span)?;
            }
            self.target.populate(0, span)?;
            let (spec, pgmap_ref) = (&spec, &pgmap_ref);
            let t = Instant::now();
            std::thread::scope(|s| {
                for i in 0..threads {
                    s.spawn(move || {
                        let dst = (base + (i * part) as usize) as *mut u8;
                        let mut left = per_thread;
                        while left > 0 {
                            let n = left.min(part.max(64)) as usize;
                            unsafe {
                                match kind {
                                    Some(kind) => struct_page::bare_store(dst, n, kind),
                                    None => {
                                        page_init::bare_loop(spec, dst, n / RECORD_BYTES, pgmap_ref)
                                    }
                                }
                                if persistent && kind.unwrap_or(store) == StoreKind::Regular {
                                    crate::target::flush_range(dst, n);
                                }
                            }
                            left -= n as u64;
                        }
                    });
                }
            });
            Ok(t.elapsed().as_nanos() as u64)
        };
        let regular_ns = measure(Some(StoreKind::Regular))?.max(1);
        let nt_ns = measure(Some(StoreKind::NonTemporal))?.max(1);
        let same = measure(None)?.max(1);
        let stored = (per_thread * threads) as f64;
        Ok(Roofline {
            threads: threads as u32,
            bytes: per_thread * threads,
            regular_bytes_per_s: stored / (regular_ns as f64 / 1e9),
            non_temporal_bytes_per_s: stored / (nt_ns as f64 / 1e9),
            bare_same_store_ns: same,
        })
    }
}
