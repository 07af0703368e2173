//! The vmemmap populate simulation: `__add_pages` -> `sparse_add_section` ->
//! `__populate_section_memmap`, where each struct page's backing comes from (altmap, RAM PMD
//! block, RAM base pages, or the hot-added block itself), and the `vmem_altmap` allocator.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{align_down, align_up, LayoutError, LayoutParams};

/// `struct vmem_altmap` after vmemmap populate (include/linux/memremap.h). `align` and
/// `alloc` are what `altmap_alloc_block_buf` used; pfns below `base_pfn + reserve + free`
/// (`vmem_altmap_offset`) are not initialised as data pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Altmap {
    pub base_pfn: u64,
    pub reserve: u64,
    pub free: u64,
    pub align: u64,
    pub alloc: u64,
}

impl Altmap {
    /// `vmem_altmap_offset()`: `reserve + free`.
    pub fn offset(&self) -> u64 {
        self.reserve + self.free
    }

    /// `vmem_altmap_next_pfn()`.
    pub fn next_pfn(&self) -> u64 {
        self.base_pfn + self.reserve + self.alloc + self.align
    }

    /// `vmem_altmap_nr_free()`.
    pub fn nr_free(&self) -> u64 {
        self.free.saturating_sub(self.alloc + self.align)
    }

    /// `altmap_alloc_block_buf()` (mm/sparse-vmemmap.c, 6.1): the first allocation is aligned
    /// to its own size (`nr_align = ALIGN(pfn, nr_pfns) - pfn`, counted against `free`).
    /// Returns the first pfn of the block, or None when the altmap is exhausted.
    pub fn alloc_block(&mut self, nr_pfns: u64) -> Option<u64> {
        let pfn = self.next_pfn();
        let unit = 1u64 << nr_pfns.trailing_zeros(); // find_first_bit(&nr_pfns)
        let nr_align = align_up(pfn, unit) - pfn;
        if nr_pfns + nr_align > self.nr_free() {
            return None;
        }
        self.alloc += nr_pfns;
        self.align += nr_align;
        Some(pfn + nr_align)
    }
}

/// Where the backing of one vmemmap block comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum VmemmapBacking {
    /// A PMD block allocated from the namespace through the altmap; offset from the start of
    /// the namespace resource.
    Altmap { device_offset_bytes: u64 },
    /// A PMD block allocated from System RAM (`vmemmap_alloc_block_buf` without altmap).
    Ram,
    /// 4 KiB pages from System RAM (`vmemmap_populate_basepages`, or the compound-page
    /// path `vmemmap_populate_compound_pages`).
    RamBasePages,
    /// memmap_on_memory: a PMD block taken from the start of the hot-added memory block;
    /// offset from the start of that block.
    MemoryBlock { block_offset_bytes: u64 },
}

/// One vmemmap mapping unit: the struct pages of pfns [first_pfn, first_pfn+nr_pfns) live
/// here, contiguous, `bytes` long (2 MiB for a PMD block; for base pages the bytes actually
/// mapped; for devdax compound pages with tail reuse the unique bytes allocated, 2 pages per
/// compound page, 0 for sections whose whole vmemmap reuses an earlier tail page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmemmapBlock {
    pub first_pfn: u64,
    pub nr_pfns: u64,
    pub bytes: u64,
    pub backing: VmemmapBacking,
}

impl VmemmapBacking {
    /// The backing of the block `k` blocks of `bytes` after this one in a contiguous
    /// allocation: device / memory-block offsets advance, RAM stays RAM.
    fn advanced(self, bytes: u64) -> Self {
        match self {
            VmemmapBacking::Altmap {
                device_offset_bytes,
            } => VmemmapBacking::Altmap {
                device_offset_bytes: device_offset_bytes + bytes,
            },
            VmemmapBacking::MemoryBlock { block_offset_bytes } => VmemmapBacking::MemoryBlock {
                block_offset_bytes: block_offset_bytes + bytes,
            },
            b => b,
        }
    }
}

/// `count` vmemmap blocks in a row: block `k` maps pfns from `first.first_pfn + k *
/// first.nr_pfns`, `first.nr_pfns` of them, and has the backing of `first` moved by the
/// bytes of the blocks before it (RAM backings are all alike). Its bytes: `first.bytes`
/// for the blocks k with `k % period == 0` ("heads"), `rest_bytes` for the others.
/// `period` 1: all blocks alike; 0: only block 0 is a head (the period is not known yet);
/// p > 1: a head every p blocks, which is how devdax sections with vmemmap tail reuse
/// look when compound pages are larger than a section (1 GiB: a head section, then 7
/// sections that only map the reused tail page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmemmapRun {
    pub first: VmemmapBlock,
    pub count: u64,
    pub period: u64,
    pub rest_bytes: u64,
}

impl VmemmapRun {
    fn single(first: VmemmapBlock, count: u64) -> Self {
        VmemmapRun {
            first,
            count,
            period: 1,
            rest_bytes: first.bytes,
        }
    }

    fn is_head(&self, k: u64) -> bool {
        match self.period {
            0 => k == 0,
            p => k.is_multiple_of(p),
        }
    }

    /// Heads among blocks [0, k).
    fn heads_before(&self, k: u64) -> u64 {
        match self.period {
            0 => k.min(1),
            p => k.div_ceil(p),
        }
    }

    /// Bytes of blocks [0, k).
    fn bytes_before(&self, k: u64) -> u64 {
        let h = self.heads_before(k);
        h * self.first.bytes + (k - h) * self.rest_bytes
    }

    /// Bytes of all blocks of the run.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_before(self.count)
    }

    /// Block `k` of the run.
    pub fn block(&self, k: u64) -> VmemmapBlock {
        let f = self.first;
        VmemmapBlock {
            first_pfn: f.first_pfn + k * f.nr_pfns,
            nr_pfns: f.nr_pfns,
            bytes: if self.is_head(k) {
                f.bytes
            } else {
                self.rest_bytes
            },
            backing: f.backing.advanced(self.bytes_before(k)),
        }
    }

    /// Takes `b` as block `count` if it continues the run (fixing the period when `b` is
    /// the second head); false if it does not.
    fn absorb(&mut self, b: VmemmapBlock) -> bool {
        let k = self.count;
        if self.block(k) == b {
            self.count += 1;
            return true;
        }
        let f = self.first;
        let like = b.first_pfn == f.first_pfn + k * f.nr_pfns
            && b.nr_pfns == f.nr_pfns
            && b.backing == VmemmapBacking::RamBasePages
            && f.backing == VmemmapBacking::RamBasePages;
        if !like {
            return false;
        }
        if self.period == 1 && k == 1 && b.bytes != f.bytes {
            // second block differs in bytes only: a head and its first reused block
            self.period = 0;
            self.rest_bytes = b.bytes;
            self.count += 1;
            return true;
        }
        if self.period == 0 && k >= 2 && b.bytes == f.bytes {
            // the second head fixes the period
            self.period = k;
            self.count += 1;
            return true;
        }
        false
    }

    fn end_pfn(&self) -> u64 {
        self.first.first_pfn + self.count * self.first.nr_pfns
    }
}

/// The vmemmap blocks of a range, in pfn order, stored as runs of like blocks
/// ([`VmemmapRun`]), so that a range of any size takes memory in the number of its
/// irregular places (range ends, neighbours, devdax compound heads), not in blocks: a
/// 1024 TiB namespace has 8 Mi blocks but two runs. Reads as a list of blocks
/// ([`iter`](Self::iter), [`len`](Self::len), [`get`](Self::get)) and serializes as one, so
/// files are as before. Runs are canonical (each block merged into the run before it when
/// it continues it), so equal block lists compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmemmapBlocks {
    runs: Vec<VmemmapRun>,
    len: u64,
}

impl VmemmapBlocks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The runs, in pfn order.
    pub fn runs(&self) -> &[VmemmapRun] {
        &self.runs
    }

    /// Every block, in pfn order (computed from the runs).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = VmemmapBlock> + '_ {
        self.runs
            .iter()
            .flat_map(|r| (0..r.count).map(move |k| r.block(k)))
    }

    /// Block `i` (0-based), if there is one.
    pub fn get(&self, mut i: u64) -> Option<VmemmapBlock> {
        for r in &self.runs {
            if i < r.count {
                return Some(r.block(i));
            }
            i -= r.count;
        }
        None
    }

    pub fn first(&self) -> Option<VmemmapBlock> {
        self.runs.first().map(|r| r.first)
    }

    pub fn last(&self) -> Option<VmemmapBlock> {
        self.runs.last().map(|r| r.block(r.count - 1))
    }

    /// Appends `count` blocks starting with `first`, all like it (a run of period 1),
    /// as `count` calls of [`push`](Self::push) would.
    pub fn push_run(&mut self, first: VmemmapBlock, count: u64) {
        if count == 0 {
            return;
        }
        self.push(first);
        let mut rest = count - 1;
        while rest > 0 {
            let i = count - rest;
            let next = VmemmapBlock {
                first_pfn: first.first_pfn + i * first.nr_pfns,
                backing: first.backing.advanced(i * first.bytes),
                ..first
            };
            let last = self.runs.last_mut().expect("just pushed");
            if last.period == 1 && last.block(last.count) == next {
                // like blocks continue a run of like blocks all at once
                last.count += rest;
                self.len += rest;
                return;
            }
            self.push(next);
            rest -= 1;
        }
    }

    /// Appends a block, merged into the last run when it continues it (runs are
    /// canonical: the same blocks pushed give the same runs).
    pub fn push(&mut self, b: VmemmapBlock) {
        self.len += 1;
        if let Some(last) = self.runs.last_mut() {
            if last.absorb(b) {
                return;
            }
        }
        self.runs.push(VmemmapRun::single(b, 1));
    }

    /// Removes and returns the last block.
    pub fn pop(&mut self) -> Option<VmemmapBlock> {
        let last = self.runs.last_mut()?;
        let b = last.block(last.count - 1);
        last.count -= 1;
        // back to the canonical form of the shorter run
        if last.period > 1 && last.count <= last.period {
            last.period = 0;
        }
        if last.period == 0 && last.count <= 1 {
            last.period = 1;
            last.rest_bytes = last.first.bytes;
        }
        if last.count == 0 {
            self.runs.pop();
        }
        self.len -= 1;
        Some(b)
    }

    /// The block holding the struct page of `pfn`.
    pub fn block_of(&self, pfn: u64) -> Option<VmemmapBlock> {
        let i = self.runs.partition_point(|r| r.end_pfn() <= pfn);
        let r = self.runs.get(i)?;
        if pfn < r.first.first_pfn || r.first.nr_pfns == 0 {
            return None;
        }
        Some(r.block((pfn - r.first.first_pfn) / r.first.nr_pfns))
    }
}

impl<'a> IntoIterator for &'a VmemmapBlocks {
    type Item = VmemmapBlock;
    type IntoIter = Box<dyn DoubleEndedIterator<Item = VmemmapBlock> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl FromIterator<VmemmapBlock> for VmemmapBlocks {
    fn from_iter<I: IntoIterator<Item = VmemmapBlock>>(it: I) -> Self {
        let mut v = VmemmapBlocks::new();
        for b in it {
            v.push(b);
        }
        v
    }
}

impl Serialize for VmemmapBlocks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for VmemmapBlocks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = VmemmapBlocks;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of vmemmap blocks")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<VmemmapBlocks, A::Error> {
                // Merged one by one: memory in runs, whatever the file's block count.
                let mut v = VmemmapBlocks::new();
                while let Some(b) = seq.next_element::<VmemmapBlock>()? {
                    v.push(b);
                }
                Ok(v)
            }
        }
        d.deserialize_seq(V)
    }
}

/// A set of u64 (PMD slots, vmemmap pages) as disjoint intervals [start, end).
#[derive(Clone, Debug, Default)]
struct IntervalSet(BTreeMap<u64, u64>);

impl IntervalSet {
    /// Adds [a, b); returns how many of its values were already in the set.
    fn insert(&mut self, a: u64, b: u64) -> u64 {
        if a >= b {
            return 0;
        }
        // Merge with every interval that overlaps or touches [a, b).
        let first = self
            .0
            .range(..=a)
            .next_back()
            .filter(|(_, &e)| e >= a)
            .map(|(&s, _)| s)
            .unwrap_or(a);
        let touching: Vec<(u64, u64)> = self.0.range(first..=b).map(|(&s, &e)| (s, e)).collect();
        let (mut lo, mut hi, mut present) = (a, b, 0);
        for (s, e) in touching {
            present += e.min(b).saturating_sub(s.max(a));
            self.0.remove(&s);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        self.0.insert(lo, hi);
        present
    }

    fn contains(&self, x: u64) -> bool {
        self.0.range(..=x).next_back().is_some_and(|(_, &e)| x < e)
    }

    /// The first value >= x in the set, if any.
    fn next_at_or_after(&self, x: u64) -> Option<u64> {
        if self.contains(x) {
            return Some(x);
        }
        self.0.range(x..).next().map(|(&s, _)| s)
    }
}

/// The kernel's vmemmap page tables as left by earlier hot-adds: lets layouts added one
/// after the other share a PTE table, a base page or a PMD block of the vmemmap (e.g. two
/// namespaces meeting inside a section, as `ndctl create-namespace` twice in one region).
/// [`namespace_layout`](super::namespace_layout) and [`hotplug_layout`](super::hotplug_layout)
/// start from an empty state. Kept as intervals, so its size grows with the ranges
/// added, not with their size.
#[derive(Clone, Debug, Default)]
pub struct VmemmapState {
    /// PMD slots of the vmemmap holding a PTE table.
    pte_slots: IntervalSet,
    /// vmemmap pages (index = vmemmap offset / page size) mapped by base pages.
    base_pages: IntervalSet,
    /// PMD slots mapped by a huge PMD: start slot -> (end slot, backing of the start
    /// slot); the backing of slot s is that of the start slot advanced by
    /// `(s - start) * PMD_SIZE` (one contiguous allocation).
    pmd_slots: BTreeMap<u64, (u64, VmemmapBacking)>,
}

impl VmemmapState {
    pub fn new() -> Self {
        Self::default()
    }

    fn pmd_backing(&self, slot: u64, pmd: u64) -> Option<VmemmapBacking> {
        let (&s, &(e, b)) = self.pmd_slots.range(..=slot).next_back()?;
        (slot < e).then(|| b.advanced((slot - s) * pmd))
    }

    /// The first slot >= `slot` holding a huge PMD or a PTE table.
    fn next_populated(&self, slot: u64) -> Option<u64> {
        let pmd = match self.pmd_slots.range(..=slot).next_back() {
            Some((_, &(e, _))) if slot < e => Some(slot),
            _ => self.pmd_slots.range(slot..).next().map(|(&s, _)| s),
        };
        let pte = self.pte_slots.next_at_or_after(slot);
        match (pmd, pte) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Where altmap offsets are measured from.
#[derive(Clone, Copy)]
pub(super) enum AltmapOrigin {
    Device(u64),
    MemoryBlock(u64),
}

/// The vmemmap populate of one range on top of a [`VmemmapState`]: the blocks that map its
/// struct pages, what their backing cost (device, RAM, page tables) and the altmap.
/// Whole sections in the middle of a range and runs of fresh PMD slots are simulated in
/// one step each (what the kernel does per section or per PMD repeats exactly), so the
/// cost is in irregular places, not in sections.
pub(super) struct VmemmapSim<'a> {
    p: &'a LayoutParams,
    name: &'a str,
    pub(super) blocks: VmemmapBlocks,
    /// The last PMD slot this range populated and the index of its block: the only slot
    /// of this range a later chunk can come back to (chunks go up in pfn order).
    last_pmd: Option<(u64, u64)>,
    state: &'a mut VmemmapState,
    pub(super) altmap: Option<Altmap>,
    origin: AltmapOrigin,
    pub(super) bytes_device: u64,
    pub(super) bytes_ram: u64,
    pub(super) pagetable_bytes: u64,
    /// (first pfn, pfns, count) of the altmap PMD allocations, runs of `count`
    /// contiguous allocations, in allocation order.
    pub(super) altmap_blocks: Vec<(u64, u64, u64)>,
}

impl<'a> VmemmapSim<'a> {
    pub(super) fn new(
        p: &'a LayoutParams,
        name: &'a str,
        altmap: Option<Altmap>,
        origin: AltmapOrigin,
        state: &'a mut VmemmapState,
    ) -> Self {
        VmemmapSim {
            p,
            name,
            blocks: VmemmapBlocks::new(),
            last_pmd: None,
            state,
            altmap,
            origin,
            bytes_device: 0,
            bytes_ram: 0,
            pagetable_bytes: 0,
            altmap_blocks: Vec::new(),
        }
    }

    fn pte_tables_for(&mut self, va_start: u64, va_end: u64) {
        let pmd = self.p.vmemmap_block_size;
        let (a, b) = (va_start / pmd, va_end.div_ceil(pmd));
        let present = self.state.pte_slots.insert(a, b);
        self.pagetable_bytes += (b - a - present) * self.p.page_size;
    }

    /// `__add_pages` (mm/memory_hotplug.c): one `sparse_add_section` per section-bounded chunk.
    /// Returns the number of chunks. Runs of whole sections are populated at once
    /// ([`Self::populate_full_sections`]).
    pub(super) fn add_pages(
        &mut self,
        start_pfn: u64,
        nr_pages: u64,
        compound: Option<(u64, u64)>,
    ) -> Result<u64, LayoutError> {
        let spp = self.p.section_pages();
        let end = start_pfn + nr_pages;
        let mut pfn = start_pfn;
        let mut chunks = 0;
        while pfn < end {
            if pfn.is_multiple_of(spp) && end - pfn >= 2 * spp {
                let n = (end - pfn) / spp;
                self.populate_full_sections(pfn, n, compound)?;
                chunks += n;
                pfn += n * spp;
                continue;
            }
            let cur = (end - pfn).min(align_down(pfn + spp, spp) - pfn);
            self.populate_section_memmap(pfn, cur, compound)?;
            chunks += 1;
            pfn += cur;
        }
        Ok(chunks)
    }

    /// `n` whole sections from `pfn`, as `n` calls of `__populate_section_memmap` would
    /// leave them: a whole section never takes `vmemmap_populate`'s base-page rule, and
    /// `vmemmap_populate_hugepages` over consecutive sections gives the blocks of one call
    /// over their span (a PMD shared by two sections is extended, not split).
    fn populate_full_sections(
        &mut self,
        pfn: u64,
        n: u64,
        compound: Option<(u64, u64)>,
    ) -> Result<(), LayoutError> {
        let spp = self.p.section_pages();
        if let Some((range_start, cp)) = compound {
            if self.altmap.is_none() && self.p.struct_page_size.is_power_of_two() {
                // `populate_compound` per section, with the PTE tables of the whole span
                // taken at once (the same slots). A section's unique vmemmap pages depend
                // on where the compound heads fall; runs of like sections merge in
                // `blocks` (one run, or two per compound page larger than a section).
                let (ps, sps) = (self.p.page_size, self.p.struct_page_size);
                self.pte_tables_for(pfn * sps, (pfn + n * spp) * sps);
                let span = spp * sps;
                let head_pages = 2 * span.div_ceil(span.min(cp * sps));
                let reuse = cp > self.p.subsection_pages();
                if !reuse {
                    // every section alike
                    self.bytes_ram += n * head_pages * ps;
                    self.blocks.push_run(
                        VmemmapBlock {
                            first_pfn: pfn,
                            nr_pfns: spp,
                            bytes: head_pages * ps,
                            backing: VmemmapBacking::RamBasePages,
                        },
                        n,
                    );
                    return Ok(());
                }
                for i in 0..n {
                    let first = pfn + i * spp;
                    let new_pages = if reuse && !(first - range_start).is_multiple_of(cp) {
                        0
                    } else {
                        head_pages
                    };
                    self.bytes_ram += new_pages * ps;
                    self.blocks.push(VmemmapBlock {
                        first_pfn: first,
                        nr_pfns: spp,
                        bytes: new_pages * ps,
                        backing: VmemmapBacking::RamBasePages,
                    });
                }
                return Ok(());
            }
        }
        self.populate_hugepages(pfn, n * spp)
    }

    /// `__populate_section_memmap` (mm/sparse-vmemmap.c, 6.1): compound devmaps without an
    /// altmap take `vmemmap_populate_compound_pages`, everything else `vmemmap_populate`.
    fn populate_section_memmap(
        &mut self,
        pfn: u64,
        nr: u64,
        compound: Option<(u64, u64)>,
    ) -> Result<(), LayoutError> {
        if let Some((range_start, cp)) = compound {
            if self.altmap.is_none() && self.p.struct_page_size.is_power_of_two() {
                self.populate_compound(pfn, nr, range_start, cp);
                return Ok(());
            }
        }
        self.vmemmap_populate(pfn, nr)
    }

    /// `vmemmap_populate` (arch/x86/mm/init_64.c, 6.1): a chunk whose memmap is smaller than a
    /// section's gets base pages from RAM (never the altmap); else PMD blocks. v5.2 had no
    /// base-page rule (chunks were whole sections).
    fn vmemmap_populate(&mut self, pfn: u64, nr: u64) -> Result<(), LayoutError> {
        let sps = self.p.struct_page_size;
        if self.p.subsection_hotplug && nr * sps < self.p.section_pages() * sps {
            self.populate_basepages(pfn, nr);
            Ok(())
        } else {
            self.populate_hugepages(pfn, nr)
        }
    }

    /// `vmemmap_populate_basepages(start, end, node, NULL)`: 4 KiB pages from RAM; pages
    /// already mapped are reused.
    fn populate_basepages(&mut self, pfn: u64, nr: u64) {
        let (ps, sps) = (self.p.page_size, self.p.struct_page_size);
        let (va_s, va_e) = (pfn * sps, (pfn + nr) * sps);
        let (first, last) = (va_s / ps, va_e.div_ceil(ps));
        let present = self.state.base_pages.insert(first, last);
        self.bytes_ram += (last - first - present) * ps;
        self.pte_tables_for(va_s, va_e);
        self.blocks.push(VmemmapBlock {
            first_pfn: pfn,
            nr_pfns: nr,
            bytes: (last - first) * ps,
            backing: VmemmapBacking::RamBasePages,
        });
    }

    /// `vmemmap_populate_hugepages` (x86, 6.1): per PMD: reuse a populated huge PMD, else
    /// `vmemmap_alloc_block_buf(PMD_SIZE, node, altmap)`: altmap -> `altmap_alloc_block_buf`
    /// (no fallback: -ENOMEM), no altmap -> RAM. Runs of whole fresh PMDs are allocated
    /// in one step ([`Self::alloc_fresh_pmds`]).
    fn populate_hugepages(&mut self, pfn: u64, nr: u64) -> Result<(), LayoutError> {
        let (sps, pmd) = (self.p.struct_page_size, self.p.vmemmap_block_size);
        let va_e = (pfn + nr) * sps;
        let mut addr = pfn * sps;
        while addr < va_e {
            let slot = addr / pmd;
            let next = ((slot + 1) * pmd).min(va_e);
            let (bpfn, bnr) = (addr / sps, (next - addr) / sps);
            if let Some((_, i)) = self.last_pmd.filter(|&(s, _)| s == slot) {
                let is_last = i + 1 == self.blocks.len() as u64;
                let b = self.blocks.get(i).expect("block of the last PMD");
                if b.first_pfn + b.nr_pfns == bpfn && is_last {
                    self.blocks.pop();
                    self.blocks.push(VmemmapBlock {
                        nr_pfns: b.nr_pfns + bnr,
                        ..b
                    });
                } else {
                    self.blocks.push(VmemmapBlock {
                        first_pfn: bpfn,
                        nr_pfns: bnr,
                        bytes: 0,
                        backing: b.backing,
                    });
                }
            } else if let Some(backing) = self.state.pmd_backing(slot, pmd) {
                // populated by an earlier range: vmemmap_verify + vmemmap_use_sub_pmd
                self.blocks.push(VmemmapBlock {
                    first_pfn: bpfn,
                    nr_pfns: bnr,
                    bytes: 0,
                    backing,
                });
            } else if self.state.pte_slots.contains(slot) {
                // PMD already holds a PTE table: x86 falls back to base pages.
                self.populate_basepages(bpfn, bnr);
            } else {
                // Fresh PMDs from `slot`: this one, and when it is whole, the whole fresh
                // ones after it.
                let whole_end = if addr.is_multiple_of(pmd) {
                    let stop = self.state.next_populated(slot).unwrap_or(u64::MAX);
                    (va_e / pmd).min(stop)
                } else {
                    slot
                };
                let n = whole_end.saturating_sub(slot).max(1);
                let end = if n > 1 { whole_end * pmd } else { next };
                self.alloc_fresh_pmds(slot, n, addr, end)?;
                addr = end;
                continue;
            }
            addr = next;
        }
        Ok(())
    }

    /// `n` fresh PMD slots from `slot` (all whole when n > 1), mapping the struct pages of
    /// vmemmap addresses [addr, end): one `vmemmap_alloc_block_buf` each, from the altmap
    /// (`altmap_alloc_block_buf`: after the first, allocations are contiguous and need no
    /// alignment) or RAM.
    fn alloc_fresh_pmds(
        &mut self,
        slot: u64,
        n: u64,
        addr: u64,
        end: u64,
    ) -> Result<(), LayoutError> {
        let (ps, sps, pmd) = (
            self.p.page_size,
            self.p.struct_page_size,
            self.p.vmemmap_block_size,
        );
        let first_nr = ((slot + 1) * pmd).min(end) / sps - addr / sps;
        let bpfn = addr / sps;
        let backing = if let Some(altmap) = self.altmap.as_mut() {
            let want = pmd / ps;
            let Some(apfn) = altmap.alloc_block(want) else {
                return Err(LayoutError::AltmapExhausted {
                    name: self.name.to_string(),
                    pfn: bpfn,
                    needed: want,
                    free: altmap.nr_free(),
                    total_free: altmap.free,
                });
            };
            // The rest: contiguous, no alignment, as many as the altmap holds.
            let more = (n - 1).min(altmap.nr_free() / want);
            altmap.alloc += more * want;
            if more < n - 1 {
                return Err(LayoutError::AltmapExhausted {
                    name: self.name.to_string(),
                    pfn: bpfn + first_nr + more * (pmd / sps),
                    needed: want,
                    free: altmap.nr_free(),
                    total_free: altmap.free,
                });
            }
            self.bytes_device += n * pmd;
            self.altmap_blocks.push((apfn, want, n));
            match self.origin {
                AltmapOrigin::Device(o) => VmemmapBacking::Altmap {
                    device_offset_bytes: (apfn - o) * ps,
                },
                AltmapOrigin::MemoryBlock(o) => VmemmapBacking::MemoryBlock {
                    block_offset_bytes: (apfn - o) * ps,
                },
            }
        } else {
            self.bytes_ram += n * pmd;
            VmemmapBacking::Ram
        };
        self.state.pmd_slots.insert(slot, (slot + n, backing));
        self.blocks.push(VmemmapBlock {
            first_pfn: bpfn,
            nr_pfns: first_nr,
            bytes: pmd,
            backing,
        });
        if n > 1 {
            self.blocks.push_run(
                VmemmapBlock {
                    first_pfn: bpfn + first_nr,
                    nr_pfns: pmd / sps,
                    bytes: pmd,
                    backing: backing.advanced(pmd),
                },
                n - 1,
            );
        }
        self.last_pmd = Some((slot + n - 1, self.blocks.len() as u64 - 1));
        Ok(())
    }

    /// `vmemmap_populate_compound_pages` (mm/sparse-vmemmap.c, 6.1): per compound page, the
    /// head vmemmap page and one tail page are allocated, the other tail vmemmap pages map
    /// that tail page; a section in the middle of a compound page larger than a sub-section
    /// (`reuse_compound_section`) maps only the reused tail page.
    fn populate_compound(&mut self, pfn: u64, nr: u64, range_start: u64, cp: u64) {
        let (ps, sps) = (self.p.page_size, self.p.struct_page_size);
        let (va_s, va_e) = (pfn * sps, (pfn + nr) * sps);
        self.pte_tables_for(va_s, va_e);
        let offset = pfn - range_start;
        let new_pages = if !offset.is_multiple_of(cp) && cp > self.p.subsection_pages() {
            0
        } else {
            let size = (va_e - va_s).min(cp * sps);
            2 * (va_e - va_s).div_ceil(size)
        };
        self.bytes_ram += new_pages * ps;
        self.blocks.push(VmemmapBlock {
            first_pfn: pfn,
            nr_pfns: nr,
            bytes: new_pages * ps,
            backing: VmemmapBacking::RamBasePages,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::layout::test_fixtures::*;
    use crate::layout::*;
    use proptest::prelude::*;

    /// Contiguous blocks of a few sizes, byte counts and backings (some continuing the
    /// altmap offsets of the one before), the shapes the simulation produces.
    fn block_seq() -> impl Strategy<Value = Vec<VmemmapBlock>> {
        prop::collection::vec((0usize..3, 0usize..3, 0usize..4, any::<bool>()), 0..80).prop_map(
            |v| {
                let mut pfn = 1 << 20;
                let mut out: Vec<VmemmapBlock> = Vec::new();
                for (n, b, k, cont) in v {
                    let nr = [512u64, 32768, 7][n];
                    let bytes = [0u64, 8192, 2 << 20][b];
                    let backing = match (k, out.last()) {
                        (0, Some(l)) if cont => match l.backing {
                            VmemmapBacking::Altmap {
                                device_offset_bytes,
                            } => VmemmapBacking::Altmap {
                                device_offset_bytes: device_offset_bytes + l.bytes,
                            },
                            _ => VmemmapBacking::RamBasePages,
                        },
                        (0, _) => VmemmapBacking::Altmap {
                            device_offset_bytes: 4096,
                        },
                        (1, _) => VmemmapBacking::Ram,
                        _ => VmemmapBacking::RamBasePages,
                    };
                    out.push(VmemmapBlock {
                        first_pfn: pfn,
                        nr_pfns: nr,
                        bytes,
                        backing,
                    });
                    pfn += nr;
                }
                out
            },
        )
    }

    #[test]
    fn a_head_every_p_blocks_is_one_run() {
        let blk = |i: u64, bytes| VmemmapBlock {
            first_pfn: i * 32768,
            nr_pfns: 32768,
            bytes,
            backing: VmemmapBacking::RamBasePages,
        };
        let v: Vec<VmemmapBlock> = (0..8 * 1000 + 3)
            .map(|i| blk(i, if i % 8 == 0 { 8192 } else { 0 }))
            .collect();
        let b: VmemmapBlocks = v.iter().copied().collect();
        assert_eq!(b.runs().len(), 1, "{:?}", b.runs());
        assert_eq!(b.runs()[0].period, 8);
        assert_eq!(b.runs()[0].total_bytes(), 1001 * 8192);
        assert_eq!(b.iter().collect::<Vec<_>>(), v);
    }

    proptest! {
        /// Runs stand for exactly the blocks pushed; canonical (pushed one by one, in a
        /// run, read back from JSON, or popped: equal block lists, equal runs).
        #[test]
        fn runs_are_the_blocks(v in block_seq(), pops in 0usize..10, rep in 1u64..40) {
            let blocks: VmemmapBlocks = v.iter().copied().collect();
            prop_assert_eq!(blocks.len(), v.len());
            prop_assert_eq!(blocks.iter().collect::<Vec<_>>(), v.clone());
            for (i, b) in v.iter().enumerate() {
                prop_assert_eq!(blocks.get(i as u64), Some(*b));
                prop_assert_eq!(blocks.block_of(b.first_pfn + b.nr_pfns / 2), Some(*b));
            }
            let json = serde_json::to_string(&blocks).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&v).unwrap());
            let back: VmemmapBlocks = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &blocks);
            let mut popped = blocks.clone();
            let keep = v.len().saturating_sub(pops);
            for _ in keep..v.len() {
                popped.pop();
            }
            let shorter: VmemmapBlocks = v[..keep].iter().copied().collect();
            prop_assert_eq!(&popped, &shorter);
            // push_run = that many pushes
            if let Some(&b) = v.last() {
                let mut a = blocks.clone();
                let mut c = blocks.clone();
                let next = VmemmapBlock { first_pfn: b.first_pfn + b.nr_pfns, ..b };
                a.push_run(next, rep);
                for i in 0..rep {
                    c.push(VmemmapBlock {
                        first_pfn: next.first_pfn + i * next.nr_pfns,
                        backing: match next.backing {
                            VmemmapBacking::Altmap { device_offset_bytes } => VmemmapBacking::Altmap {
                                device_offset_bytes: device_offset_bytes + i * next.bytes,
                            },
                            x => x,
                        },
                        ..next
                    });
                }
                prop_assert_eq!(a.iter().collect::<Vec<_>>(), c.iter().collect::<Vec<_>>());
                prop_assert_eq!(a, c);
            }
        }
    }

    #[test]
    fn altmap_arithmetic_16g_map_dev() {
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(l.dataoff_bytes, 256 * MIB);
        assert_eq!(l.npfns, (QEMU_16G_NS - 256 * MIB) / 4096);
        assert_eq!(
            l.altmap,
            Some(Altmap {
                base_pfn: 0x100000,
                reserve: 2,
                free: 65534,
                align: 510,
                alloc: 127 * 512,
            })
        );
        let a = l.altmap.unwrap();
        assert_eq!(a.alloc + a.align, a.free, "altmap exactly exhausted");
        let (alt, ram, base, mb) = l.vmemmap_block_counts();
        assert_eq!((alt, ram, base, mb), (127, 0, 1, 0));
        assert_eq!(
            l.vmemmap_blocks.get(0).unwrap().backing,
            VmemmapBacking::Altmap {
                device_offset_bytes: 2 * MIB
            }
        );
        assert_eq!(
            l.vmemmap_blocks.get(126).unwrap().backing,
            VmemmapBacking::Altmap {
                device_offset_bytes: 254 * MIB
            }
        );
        // last partial section (112 MiB): memmap 1.75 MiB < 2 MiB -> base pages from RAM
        let last = l.vmemmap_blocks.get(127).unwrap();
        assert_eq!(last.backing, VmemmapBacking::RamBasePages);
        assert_eq!(last.first_pfn, 0x100000 + 127 * 32768);
        assert_eq!(last.nr_pfns, 112 * MIB / 4096);
        assert_eq!(last.bytes, 1792 * KIB);
        assert_eq!(l.memmap_bytes_device, 254 * MIB);
        assert_eq!(l.memmap_bytes_ram, 1792 * KIB);
        assert_eq!(l.vmemmap_pagetable_bytes, 4096);
        // blocks cover every pfn of the range, in order
        let mut next = l.range_start_pfn;
        for b in &l.vmemmap_blocks {
            assert_eq!(b.first_pfn, next);
            next += b.nr_pfns;
        }
        assert_eq!(next, l.range_end_pfn());
        // extents: info block, 510 alignment pfns, 127 blocks, data
        let roles: Vec<(Role, u64)> = l.extents.iter().map(|e| (e.role, e.pages)).collect();
        assert_eq!(
            roles,
            vec![
                (Role::InfoBlock, 2),
                (Role::AlignPadding, 510),
                (Role::Memmap, 127 * 512),
                (Role::Data, 4190208 - 65536)
            ]
        );
    }

    #[test]
    fn exactly_16g_needs_258m_and_128_blocks() {
        let l = namespace_layout(
            &ns(16 * GIB, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(l.dataoff_bytes, 258 * MIB);
        let a = l.altmap.unwrap();
        assert_eq!((a.free, a.align, a.alloc), (66046, 510, 128 * 512));
        assert_eq!(l.vmemmap_block_counts(), (128, 0, 0, 0));
    }

    /// Pre-5.3 without trimming, a section-unaligned map=dev namespace hot-adds 9 sections
    /// but nd_pfn_init sized the altmap for PFN_SECTION_ALIGN_UP(npfns) = 8 sections.
    #[test]
    fn altmap_exhausted_is_enomem() {
        let p = LayoutParams {
            pre53_trim_unaligned: false,
            ..LayoutParams::pre_5_3()
        };
        let s = NamespaceSpec {
            start_phys: NS_START + 64 * MIB,
            ..ns(GIB, NsMode::Fsdax, MapLocation::Dev, 2 * MIB)
        };
        let e = namespace_layout(&s, &p).unwrap_err();
        assert!(matches!(e, LayoutError::AltmapExhausted { .. }), "{e}");
        assert!(e.to_string().contains("altmap_alloc_block_buf"));
    }

    /// Martins' cover letter: memmap per TiB 16 GiB -> 4 GiB (2M), ~40 MiB (1G, with the
    /// PTE tables that map it).
    #[test]
    fn devdax_compound_memmap_per_tib() {
        let start = 64 * GIB;
        let mk = |align| NamespaceSpec {
            start_phys: start,
            ..ns(TIB + 2 * GIB, NsMode::Devdax, MapLocation::Mem, align)
        };
        let per_tib = |bytes: u64, l: &RangeLayout| {
            (bytes as u128 * TIB as u128 / (l.range_pages as u128 * 4096)) as u64
        };
        let two_m = namespace_layout(&mk(2 * MIB), &p61()).unwrap();
        assert_eq!(per_tib(two_m.memmap_bytes_ram, &two_m), 4 * GIB);
        let one_g = namespace_layout(&mk(GIB), &p61()).unwrap();
        assert_eq!(one_g.range_pages * 4096, TIB + 2 * GIB);
        assert_eq!(per_tib(one_g.memmap_bytes_ram, &one_g), 8 * MIB);
        assert_eq!(
            per_tib(
                one_g.memmap_bytes_ram + one_g.vmemmap_pagetable_bytes,
                &one_g
            ),
            40 * MIB
        );
        assert_eq!(one_g.struct_pages_written, (TIB + 2 * GIB) / GIB * 128);
        let dev = namespace_layout(&mk(4 * KIB), &p61()).unwrap();
        assert_eq!(dev.memmap_bytes_ram, (TIB + 2 * GIB) / 64);
    }
}
