//! The per-page work of each kernel era, written field by field from that era's source:
//! what one struct page costs, with the kernel's plain, `WRITE_ONCE` and atomic stores
//! and its pageblock updates. `struct_page` holds the record layout and, independently of
//! these writers, the records `--verify` expects.
//!
//! - [`v4_19`]: `memmap_init_zone` (MEMMAP_HOTPLUG) of 4.19 and the second pass of
//!   `devm_memremap_pages`; the one-pass variant of seed 003 patch 03 (Dan Williams).
//! - [`v6_1`]: `__init_zone_device_page`, `memmap_init_compound` and `memmap_init_range`
//!   as Debian's 6.1.192 (the testbed's kernel) has them.
//! - [`lizhe`]: the template steps of Li Zhe's 2026 series on top of the 6.x writer.
//!
//! A writer is called for a run of consecutive pfns whose records are contiguous in the
//! target. Safety of every `unsafe fn` here: `dst` (or `p`) must be valid for writes of
//! `n` (or one) 64-byte records and 8-byte aligned; the engine's placement guarantees it. What the replay leaves out of every era: `cond_resched()` (a flag test per
//! pageblock or section), the `VM_BUG_ON`s (Debian builds without CONFIG_DEBUG_VM) and
//! KASAN/KMSAN instrumentation. Which flag bits the record carries is 6.1's for every
//! era (the bit positions do not change what a store costs).

pub mod lizhe;
pub mod v4_19;
pub mod v6_1;

use crate::struct_page::{PageClass, RECORD_BYTES};
use std::sync::atomic::{compiler_fence, AtomicI64, AtomicU64, Ordering};

/// Which era's per-page writer a strategy runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// Before 4.20: `memmap_init_zone` (pass 1) then the `devm_memremap_pages` loop (pass 2).
    V4_19,
    /// Seed 003 patch 03: the ZONE_DEVICE part moved into `memmap_init_zone`, one pass.
    Williams2018,
    /// 4.20 .. 6.x, as Debian 6.1.192 has it.
    V6_1,
    /// Li Zhe's series (2026), step by step.
    Lizhe(lizhe::Step),
}

impl Era {
    /// The kernel source the writer follows (run file notes, `strategies`).
    pub fn source(self) -> &'static str {
        match self {
            Era::V4_19 => {
                "4.19 mm/page_alloc.c memmap_init_zone + __init_single_page, SetPageReserved \
                 (atomic); kernel/memremap.c devm_memremap_pages second pass"
            }
            Era::Williams2018 => {
                "seed 003 patch 03 (2018-07-16) memmap_init_zone with the ZONE_DEVICE part: \
                 4.18 __init_single_page, SetPageReserved (atomic), lru.prev = LIST_POISON2, \
                 pgmap, percpu_ref_get"
            }
            Era::V6_1 => {
                "Debian 6.1.192 mm/mm_init.c memmap_init_zone_device, __init_zone_device_page, \
                 memmap_init_compound; mm/page_alloc.c __init_single_page, prep_compound_tail"
            }
            Era::Lizhe(s) => s.source(),
        }
    }
}

/// The pageblock bitmap of one namespace: 4 bits per pageblock (`NR_PAGEBLOCK_BITS`),
/// 16 pageblocks per word, as `mem_section_usage->pageblock_flags` holds them.
pub struct Pageblocks {
    base_pfn: u64,
    pageblock_pages: u64,
    words: Vec<AtomicU64>,
}

/// `MIGRATE_MOVABLE` (include/linux/mmzone.h).
pub const MIGRATE_MOVABLE: u64 = 1;
const MIGRATETYPE_MASK: u64 = 0x7;

impl Pageblocks {
    /// Bitmap for the pageblocks of [first_pfn, first_pfn + pages).
    pub fn new(first_pfn: u64, pages: u64, pageblock_pages: u64) -> Pageblocks {
        let pb = pageblock_pages.max(1);
        let base_pfn = first_pfn / pb * pb;
        let n = (first_pfn + pages - base_pfn).div_ceil(pb);
        Pageblocks {
            base_pfn,
            pageblock_pages: pb,
            words: (0..n.div_ceil(16)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn pageblock_pages(&self) -> u64 {
        self.pageblock_pages
    }

    fn slot(&self, pfn: u64) -> Option<(&AtomicU64, u32)> {
        let idx = pfn.checked_sub(self.base_pfn)? / self.pageblock_pages;
        let w = self.words.get((idx / 16) as usize)?;
        Some((w, ((idx % 16) * 4) as u32))
    }

    /// `set_pageblock_migratetype(page, MIGRATE_MOVABLE)` ->
    /// `set_pfnblock_flags_mask`: a compare-and-exchange loop on the word holding the
    /// pageblock (6.1 mm/page_alloc.c: `try_cmpxchg`; 4.19: a `cmpxchg` loop). Pfns outside
    /// the bitmap are ignored (the kernel would hit a VM_BUG_ON).
    #[inline]
    pub fn set_movable(&self, pfn: u64) {
        let Some((word, shift)) = self.slot(pfn) else {
            return;
        };
        let mask = MIGRATETYPE_MASK << shift;
        let flags = MIGRATE_MOVABLE << shift;
        let mut old = word.load(Ordering::Relaxed);
        while let Err(now) = word.compare_exchange_weak(
            old,
            (old & !mask) | flags,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            old = now;
        }
    }

    /// The migratetype of the pageblock holding `pfn` (0 outside the bitmap).
    pub fn get(&self, pfn: u64) -> u64 {
        self.slot(pfn)
            .map_or(0, |(w, s)| (w.load(Ordering::Relaxed) >> s) & 0xf)
    }

    /// `pageblock_migratetype_init_range` (Debian 6.1.192 mm/mm_init.c): every pageblock
    /// whose first pfn lies in [pfn, pfn + n), after the page loop.
    pub fn set_range_movable(&self, pfn: u64, n: u64) {
        let pb = self.pageblock_pages;
        let mut p = pfn.div_ceil(pb) * pb;
        while p < pfn + n {
            self.set_movable(p);
            p += pb;
        }
    }
}

/// The namespace's `dev_pagemap->ref` as `percpu_ref_get` sees it (4.19
/// include/linux/percpu-refcount.h `percpu_ref_get_many`).
///
/// fsdax: `pmem_attach_disk` sets `pgmap.ref = &q->q_usage_counter`, which
/// `blk_alloc_queue_node` initialised with `PERCPU_REF_INIT_ATOMIC`; the switch to percpu
/// mode happens in `blk_register_queue`, after `devm_memremap_pages` returned. So every
/// page's get is an `atomic_long_add` on one shared counter (4.19 block/blk-core.c,
/// drivers/nvdimm/pmem.c). devdax: `dax_pmem_probe` initialises its own ref with flags 0,
/// percpu mode: a get is a `this_cpu_add` on the CPU's own counter (4.19
/// drivers/dax/pmem.c).
#[repr(align(64))]
pub struct PgmapRef {
    /// `ref->percpu_count_ptr`: read by every get (`__ref_is_percpu`).
    percpu_count_ptr: AtomicU64,
    /// `ref->count` (atomic mode).
    count: AtomicI64,
    pub atomic_mode: bool,
}

/// `__PERCPU_REF_ATOMIC` (include/linux/percpu-refcount.h).
const PERCPU_REF_ATOMIC: u64 = 1;

impl PgmapRef {
    pub fn new(atomic_mode: bool) -> PgmapRef {
        PgmapRef {
            percpu_count_ptr: AtomicU64::new(0x1000 | (u64::from(atomic_mode) * PERCPU_REF_ATOMIC)),
            count: AtomicI64::new(1),
            atomic_mode,
        }
    }

    /// Gets taken so far in atomic mode (the per-thread counters hold the rest).
    pub fn atomic_count(&self) -> i64 {
        self.count.load(Ordering::Relaxed) - 1
    }

    /// `percpu_ref_get`: `rcu_read_lock_sched()` (a compiler barrier without
    /// CONFIG_PREEMPT_COUNT), the mode test, then the shared `lock add` or the CPU's own
    /// counter (`percpu` is the calling thread's, on its own cache line).
    #[inline(always)]
    pub fn get(&self, percpu: &mut PercpuCounter) {
        compiler_fence(Ordering::SeqCst);
        if self.percpu_count_ptr.load(Ordering::Relaxed) & PERCPU_REF_ATOMIC != 0 {
            self.count.fetch_add(1, Ordering::Relaxed);
        } else {
            // this_cpu_add: one non-locked add on per-CPU memory (asm volatile).
            unsafe {
                let c = &mut percpu.0 as *mut u64;
                c.write_volatile(c.read_volatile() + 1);
            }
        }
        compiler_fence(Ordering::SeqCst);
    }
}

/// A thread's own per-CPU counter (one cache line).
#[repr(align(64))]
#[derive(Default)]
pub struct PercpuCounter(pub u64);

/// Everything a writer needs about the namespace it writes.
pub struct PageCx<'a> {
    pub zone: u64,
    pub node: u32,
    pub class: PageClass,
    pub pageblocks: &'a Pageblocks,
    pub pgmap_ref: &'a PgmapRef,
}

impl PageCx<'_> {
    pub fn pgmap(&self) -> u64 {
        match self.class {
            PageClass::Device { pgmap, .. } => pgmap,
            PageClass::SystemRam => 0,
        }
    }
}

/// The record of `dst + i` as words.
#[inline(always)]
pub(crate) unsafe fn words(dst: *mut u8, i: usize) -> *mut u64 {
    dst.add(i * RECORD_BYTES) as *mut u64
}

/// The namespace as the bare loop sees it (see [`bare_loop`]).
pub struct BareSpec {
    pub era: Era,
    pub class: PageClass,
    pub zone: u64,
    /// (order, records per compound page) when compound pages are used.
    pub compound: Option<(u32, u64)>,
}

/// The era's writer over `n` contiguous records at `dst`, with nothing of the engine
/// around it (no placement, units, spans or progress): what `engine_efficiency` measures
/// the engine against. Its own pageblock bitmap and per-CPU counter; `pgmap_ref` shared
/// by the threads as the namespace's is.
///
/// # Safety
/// `dst` valid for `n * 64` bytes of writes, 8-byte aligned.
pub unsafe fn bare_loop(spec: &BareSpec, dst: *mut u8, n: usize, pgmap_ref: &PgmapRef) {
    let (order, per) = spec.compound.unwrap_or((0, 1));
    let per = per.max(1);
    let pages = (n as u64 / per) << order;
    let pageblocks = Pageblocks::new(0, pages.max(1), 512);
    let cx = PageCx {
        zone: spec.zone,
        node: 0,
        class: spec.class,
        pageblocks: &pageblocks,
        pgmap_ref,
    };
    let mut percpu = PercpuCounter::default();
    let device = matches!(spec.class, PageClass::Device { .. });
    let mut templates = lizhe::Templates::new(&cx);
    if let (Some((order, per)), true) = (spec.compound, device) {
        for c in 0..n as u64 / per {
            let d = dst.add((c * per) as usize * RECORD_BYTES);
            let head = c << order;
            let first_tail = words(d, 1);
            match spec.era {
                Era::Lizhe(step) => lizhe::init_compound_run(
                    d,
                    head,
                    0,
                    per,
                    order,
                    first_tail,
                    &cx,
                    step,
                    &mut templates,
                ),
                _ => v6_1::init_compound_run(d, head, 0, per, order, first_tail, &cx),
            }
        }
        if let Era::Lizhe(step) = spec.era {
            lizhe::drain(step);
        }
        pageblocks.set_range_movable(0, pages);
        return;
    }
    match (spec.era, device) {
        (Era::V4_19, true) => {
            v4_19::pass1_run(dst, 0, n, &cx);
            v4_19::pass2_run(dst, n, &cx, &mut percpu);
        }
        (Era::V4_19, false) | (Era::Williams2018, false) => v4_19::pass1_run(dst, 0, n, &cx),
        (Era::Williams2018, true) => v4_19::williams_run(dst, 0, n, &cx, &mut percpu),
        (Era::V6_1, true) => v6_1::init_device_run(dst, 0, n, &cx),
        (Era::Lizhe(step), true) => lizhe::init_device_run(dst, 0, n, &cx, step, &templates),
        (Era::V6_1 | Era::Lizhe(_), false) => v6_1::init_range_run(dst, 0, n, &cx),
    }
}

#[cfg(test)]
mod tests;
