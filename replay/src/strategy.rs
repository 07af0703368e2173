//! The init strategies the kernel community proposed, as the replay runs them.
//! Sources and parameters: docs/strategies.md.

use memmap_model::run::{RecordFlavor, StoreKind, StrategyParams, SyncLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// < 4.20: init under the hotplug lock, then a second pass setting pgmap.
    LegacyDoublePass,
    /// Seed 003 patch 04: 8 threads on equal ranges, caller waits, under the lock.
    WilliamsMt,
    /// Seed 003 patches 06, 12-14: background threads, 128 sub-ranges each, memmap_sync.
    WilliamsAsync,
    /// 4.20..5.1 (Duyck): one pass per namespace outside the hotplug lock, namespaces in parallel.
    Duyck,
    /// 5.8 (Jordan): padata_do_multithreaded, section-aligned chunks, ~4 per thread.
    JordanPadata,
    /// 5.18/5.19 (Martins): devdax compound pages, only unique struct pages written.
    MartinsCompound,
    /// 2026 (Li Zhe): one template struct page copied with non-temporal stores.
    LizheNt,
}

pub const ALL: [Strategy; 7] = [
    Strategy::LegacyDoublePass,
    Strategy::WilliamsMt,
    Strategy::WilliamsAsync,
    Strategy::Duyck,
    Strategy::JordanPadata,
    Strategy::MartinsCompound,
    Strategy::LizheNt,
];

/// Pages per section (128 MiB / 4 KiB): span granularity of single-thread passes and
/// padata's alignment and minimum chunk.
pub const SECTION_PAGES: u64 = 32768;

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::LegacyDoublePass => "legacy-double-pass",
            Strategy::WilliamsMt => "williams-mt",
            Strategy::WilliamsAsync => "williams-async",
            Strategy::Duyck => "duyck",
            Strategy::JordanPadata => "jordan-padata",
            Strategy::MartinsCompound => "martins-compound",
            Strategy::LizheNt => "lizhe-nt",
        }
    }

    pub fn from_name(s: &str) -> Option<Strategy> {
        ALL.iter().copied().find(|x| x.name() == s)
    }

    /// Defaults as the kernel (or patch) has them; `cpus_per_node` feeds padata.
    pub fn default_params(self, cpus_per_node: u32) -> StrategyParams {
        let (threads, sub_ranges, store, record) = match self {
            Strategy::LegacyDoublePass => (1, 1, StoreKind::Regular, RecordFlavor::Poison),
            Strategy::WilliamsMt => (8, 1, StoreKind::Regular, RecordFlavor::Poison),
            Strategy::WilliamsAsync => (8, 128, StoreKind::Regular, RecordFlavor::Poison),
            Strategy::Duyck => (1, 1, StoreKind::Regular, RecordFlavor::DeviceData),
            Strategy::JordanPadata => (
                cpus_per_node.max(1),
                4,
                StoreKind::Regular,
                RecordFlavor::DeviceData,
            ),
            Strategy::MartinsCompound => (1, 1, StoreKind::Regular, RecordFlavor::DeviceData),
            Strategy::LizheNt => (1, 1, StoreKind::NonTemporal, RecordFlavor::DeviceData),
        };
        StrategyParams {
            threads,
            sub_ranges,
            chunk_pages: SECTION_PAGES,
            store,
            record,
            sync_lock: SyncLock::Thread,
        }
    }

    /// Struct-page init runs while holding the global hotplug lock, so namespaces serialize.
    pub fn init_under_hotplug_lock(self) -> bool {
        matches!(self, Strategy::LegacyDoublePass | Strategy::WilliamsMt)
    }

    /// The namespace is usable before its memmap is initialised (memmap_sync on faults).
    pub fn is_async(self) -> bool {
        self == Strategy::WilliamsAsync
    }

    /// Uses devdax compound pages where the layout has them (kernels >= 5.17).
    pub fn uses_compound(self) -> bool {
        matches!(self, Strategy::MartinsCompound | Strategy::LizheNt)
    }

    pub fn double_pass(self) -> bool {
        self == Strategy::LegacyDoublePass
    }

    pub fn namespace_concurrency(self) -> &'static str {
        if self.init_under_hotplug_lock() {
            "serialized on the hotplug lock (populate and init)"
        } else {
            "populate serialized on the hotplug lock, init in parallel per namespace"
        }
    }
}

/// Split `pages` pages starting at `start` into `parts` near-equal ranges, the last one
/// taking the remainder (seed 003 patch 04: step = size / N, rem to the last thread).
/// Boundaries are rounded to `align` pages so compound pages are never split.
pub fn equal_split(start: u64, pages: u64, parts: u64, align: u64) -> Vec<(u64, u64)> {
    let parts = parts.max(1);
    let align = align.max(1);
    let step = (pages / parts) / align * align;
    let mut out = Vec::with_capacity(parts as usize);
    let mut s = start;
    for i in 0..parts {
        let n = if i == parts - 1 {
            start + pages - s
        } else {
            step
        };
        out.push((s, n));
        s += n;
    }
    out.retain(|&(_, n)| n > 0);
    out
}

/// padata_do_multithreaded (5.8) chunking: nworks = min(size / max(min_chunk, align),
/// max_threads); chunk = size / (nworks * load_balance_factor), at least min_chunk,
/// rounded up to align.
pub fn padata_chunks(
    start: u64,
    pages: u64,
    max_threads: u64,
    min_chunk: u64,
) -> (u64, Vec<(u64, u64)>) {
    let align = min_chunk.max(1);
    let nworks = (pages / align).clamp(1, max_threads.max(1));
    let load_balance_factor = 4;
    let chunk = (pages / (nworks * load_balance_factor)).max(min_chunk);
    let chunk = chunk.div_ceil(align) * align;
    let mut out = Vec::new();
    let mut s = start;
    while s < start + pages {
        let n = chunk.min(start + pages - s);
        out.push((s, n));
        s += n;
    }
    (nworks, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
        }
    }

    #[test]
    fn equal_split_gives_remainder_to_last() {
        let r = equal_split(100, 1003, 8, 1);
        assert_eq!(r.len(), 8);
        assert_eq!(r[0], (100, 125));
        assert_eq!(r[7], (100 + 7 * 125, 128));
        assert_eq!(r.iter().map(|x| x.1).sum::<u64>(), 1003);
    }

    #[test]
    fn padata_chunks_are_section_aligned_about_four_per_thread() {
        // 768 GiB node, 28 threads: 768G/4K = 201326592 pages.
        let pages = 201_326_592;
        let (nworks, chunks) = padata_chunks(0, pages, 28, SECTION_PAGES);
        assert_eq!(nworks, 28);
        assert!(chunks.iter().all(|c| c.0 % SECTION_PAGES == 0));
        let per_thread = chunks.len() as f64 / 28.0;
        assert!((3.5..=4.5).contains(&per_thread), "{per_thread}");
        assert_eq!(chunks.iter().map(|c| c.1).sum::<u64>(), pages);
    }
}
