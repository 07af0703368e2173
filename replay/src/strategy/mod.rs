//! The init strategies the kernel community proposed, one file each: its threads and
//! work units, its lock scope, its per-page writer (`page_init`) and when the namespace
//! becomes usable. The engine runs them through [`InitStrategy`]; adding one is a file
//! here plus a line in [`ALL`]. Sources and parameters: docs/strategies.md.

mod duyck;
mod jordan_padata;
mod legacy_double_pass;
mod lizhe;
mod martins_compound;
mod williams_async;
mod williams_mt;

pub use crate::engine::{InitCx, Worker};
use crate::page_init::Era;
use memmap_model::run::{RecordFlavor, StoreKind, StrategyParams, SyncLock};

/// One init strategy as the engine runs it.
pub trait InitStrategy: Sync {
    /// The name on the command line and in run files.
    fn name(&self) -> &'static str;
    /// One line: the kernel or patch it reproduces.
    fn about(&self) -> &'static str;
    /// The per-page writer (the kernel era whose struct page init it does).
    fn era(&self) -> Era;
    /// Init threads per namespace, sub-ranges, chunk: as the kernel or patch has them.
    fn default_params(&self, cpus_per_node: u32) -> StrategyParams {
        let _ = cpus_per_node;
        params(1, 1)
    }
    /// The namespace is usable before its memmap is initialised (`memmap_sync` on faults).
    fn available_at_once(&self) -> bool {
        false
    }
    /// Uses devdax compound pages where the layout has them (kernels >= 5.17).
    fn uses_compound(&self) -> bool {
        false
    }
    /// The kernel of this strategy has sub-section hotplug (5.3+): it cannot run on a
    /// scenario laid out with the section-granular rules of older kernels.
    fn needs_subsection_hotplug(&self) -> bool {
        false
    }
    /// Phase 1 (`__add_pages`, vmemmap populate) runs under the global hotplug lock, as in
    /// every merged kernel; seed 003 patch 02 moves it out.
    fn populate_under_hotplug_lock(&self) -> bool {
        true
    }
    /// Phase 2 (the first pass of the per-page init) runs before `mem_hotplug_done()`, so
    /// the namespaces' inits are serialized (`memmap-replay predict` composes phases with
    /// this; a test checks it against the engine).
    fn init_under_hotplug_lock(&self) -> bool {
        false
    }
    /// How the namespaces of one host share the hotplug lock (run files, `strategies`).
    fn namespace_concurrency(&self) -> &'static str {
        "populate serialized on the hotplug lock, init in parallel per namespace"
    }
    /// Phase 2 of one namespace. Called by the probe task holding the hotplug lock
    /// (`cx.release_hotplug_lock()` is `mem_hotplug_done()`; the engine releases it after
    /// return if the strategy did not).
    fn init_namespace(&self, cx: &mut InitCx);
}

/// Default parameters with `threads` init threads and `sub_ranges` sub-ranges per thread.
fn params(threads: u32, sub_ranges: u32) -> StrategyParams {
    StrategyParams {
        threads,
        sub_ranges,
        chunk_pages: SECTION_PAGES,
        store: StoreKind::Regular,
        record: RecordFlavor::DeviceData,
        sync_lock: SyncLock::Thread,
    }
}

/// A registered strategy (a copyable handle; compares by name).
#[derive(Clone, Copy)]
pub struct Strategy(&'static dyn InitStrategy);

/// Every strategy, in era order.
pub const ALL: [Strategy; 9] = [
    Strategy(&legacy_double_pass::LegacyDoublePass),
    Strategy(&williams_mt::WilliamsMt),
    Strategy(&williams_async::WilliamsAsync),
    Strategy(&duyck::Duyck),
    Strategy(&jordan_padata::JordanPadata),
    Strategy(&martins_compound::MartinsCompound),
    Strategy(&lizhe::LIZHE_TEMPLATE),
    Strategy(&lizhe::LIZHE_TEMPLATE_TAILS),
    Strategy(&lizhe::LIZHE_NT),
];

impl Strategy {
    pub const LEGACY_DOUBLE_PASS: Strategy = ALL[0];
    pub const WILLIAMS_MT: Strategy = ALL[1];
    pub const WILLIAMS_ASYNC: Strategy = ALL[2];
    pub const DUYCK: Strategy = ALL[3];
    pub const JORDAN_PADATA: Strategy = ALL[4];
    pub const MARTINS_COMPOUND: Strategy = ALL[5];
    pub const LIZHE_NT: Strategy = ALL[8];

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn from_name(s: &str) -> Option<Strategy> {
        ALL.iter().copied().find(|x| x.name() == s)
    }

    /// The run file's record flavor: what the era's writer leaves in a record.
    pub fn record_flavor(self) -> RecordFlavor {
        match self.0.era() {
            Era::V4_19 | Era::Williams2018 => RecordFlavor::Poison,
            Era::V6_1 | Era::Lizhe(_) => RecordFlavor::DeviceData,
        }
    }

    /// Defaults as the kernel (or patch) has them; `cpus_per_node` feeds padata.
    pub fn default_params(self, cpus_per_node: u32) -> StrategyParams {
        let mut p = self.0.default_params(cpus_per_node);
        p.record = self.record_flavor();
        if self.0.era() == Era::Lizhe(crate::page_init::lizhe::Step::Streaming) {
            p.store = StoreKind::NonTemporal;
        }
        p
    }

    pub fn era(self) -> Era {
        self.0.era()
    }

    pub fn about(self) -> &'static str {
        self.0.about()
    }

    pub fn is_async(self) -> bool {
        self.0.available_at_once()
    }

    pub fn uses_compound(self) -> bool {
        self.0.uses_compound()
    }

    /// Refuse a strategy whose kernel is newer than the scenario's layout rules, naming
    /// the strategies that fit them.
    pub fn check_layout_rules(self, subsection_hotplug: bool) -> Result<(), String> {
        if subsection_hotplug || !self.0.needs_subsection_hotplug() {
            return Ok(());
        }
        let fit: Vec<&str> = ALL
            .iter()
            .filter(|s| !s.0.needs_subsection_hotplug())
            .map(|s| s.name())
            .collect();
        Err(format!(
            "strategy {} needs a 5.3+ kernel (sub-section hotplug, compound devmaps) but the \
             scenario is laid out with pre-5.3 section rules; strategies of that era: {}",
            self.name(),
            fit.join(", ")
        ))
    }

    pub fn populate_under_hotplug_lock(self) -> bool {
        self.0.populate_under_hotplug_lock()
    }

    pub fn init_under_hotplug_lock(self) -> bool {
        self.0.init_under_hotplug_lock()
    }

    pub fn namespace_concurrency(self) -> &'static str {
        self.0.namespace_concurrency()
    }

    pub fn init_namespace(self, cx: &mut InitCx) {
        self.0.init_namespace(cx)
    }
}

impl PartialEq for Strategy {
    fn eq(&self, other: &Strategy) -> bool {
        self.name() == other.name()
    }
}
impl Eq for Strategy {}

impl std::fmt::Debug for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    /// An unknown name is refused with the list of valid ones.
    fn from_str(s: &str) -> Result<Strategy, String> {
        Strategy::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|x| x.name()).collect();
            format!("unknown strategy '{s}'; valid: {}", names.join(", "))
        })
    }
}

/// Pages per section (128 MiB / 4 KiB): span granularity of single-thread passes and
/// padata's alignment and minimum chunk.
pub const SECTION_PAGES: u64 = 32768;

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
    fn names_round_trip_and_unknown_lists_valid() {
        for s in ALL {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
            assert_eq!(s.name().parse::<Strategy>(), Ok(s));
        }
        let e = "duyk".parse::<Strategy>().unwrap_err();
        assert!(e.contains("duyck") && e.contains("lizhe-nt"), "{e}");
        let mut names: Vec<_> = ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "names are unique");
    }

    #[test]
    fn newer_strategies_refused_on_pre_5_3_layouts_with_the_valid_ones() {
        for s in ALL {
            assert!(s.check_layout_rules(true).is_ok());
        }
        let e = Strategy::MARTINS_COMPOUND
            .check_layout_rules(false)
            .unwrap_err();
        assert!(
            e.contains("duyck") && e.contains("williams-mt") && !e.contains("lizhe"),
            "{e}"
        );
        assert!(Strategy::DUYCK.check_layout_rules(false).is_ok());
        assert!(Strategy::LIZHE_NT.check_layout_rules(false).is_err());
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
