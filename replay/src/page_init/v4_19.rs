//! Before 4.20: the ZONE_DEVICE memmap in two passes (4.19), or in one pass as seed 003
//! patch 03 (Dan Williams, 2018) proposed.
//!
//! Pass 1, 4.19 mm/page_alloc.c `memmap_init_zone` (context MEMMAP_HOTPLUG, from
//! `move_pfn_range_to_zone` under `mem_hotplug_begin()`), per pfn:
//! `__init_single_page` (`mm_zero_struct_page` is a `memset(page, 0, 64)` here; the
//! eight-store version came with 4.20), `SetPageReserved` (the atomic `set_bit`: a
//! `lock or`; Duyck's 4.20 commit d483da5bc78 "mm: create non-atomic version of
//! SetPageReserved for init use" replaced it), and at every pageblock-aligned pfn
//! `set_pageblock_migratetype` (a `cmpxchg` loop).
//!
//! Pass 2, 4.19 kernel/memremap.c `devm_memremap_pages`, after `mem_hotplug_done()`:
//! `for_each_device_pfn`: `list_del(&page->lru)` (reads both links, `next->prev = prev`,
//! `WRITE_ONCE(prev->next, next)`, then LIST_POISON1/2), `page->pgmap = pgmap`,
//! `percpu_ref_get(pgmap->ref)` (see [`super::PgmapRef`]).
//!
//! Seed 003 patch 03 moved pass 2 into `memmap_init_zone`: after the pageblock,
//! `is_zone_device_page(page)` (reads the flags), the altmap check, then
//! `page->lru.prev = LIST_POISON2; page->pgmap = pgmap; percpu_ref_get(pgmap->ref)`.
//! The altmap's own pfns, which this loop also initialises in 4.19, are not replayed:
//! the replay's unit is the data range for every era.

use super::v6_1::init_single_page_fields;
use super::{words, PageCx, PercpuCounter};
use crate::struct_page::{LIST_POISON1, LIST_POISON2, PG_RESERVED};
use std::sync::atomic::{AtomicU64, Ordering};

/// `memset(page, 0, sizeof(struct page))`: a constant 64-byte memset, which the
/// compiler expands to stores.
#[inline(always)]
unsafe fn memset_page(p: *mut u64) {
    std::ptr::write_bytes(p as *mut u8, 0, 64);
}

/// x86 `set_bit` with a constant bit: `lock orb` (asm volatile, memory clobber).
#[inline(always)]
unsafe fn set_bit_atomic(p: *mut u64, bit: u32) {
    AtomicU64::from_ptr(p).fetch_or(1u64 << bit, Ordering::SeqCst);
}

/// Pass 1 for one page: `__init_single_page` + `SetPageReserved` + the pageblock.
#[inline(always)]
unsafe fn memmap_init_zone_page(p: *mut u64, pfn: u64, cx: &PageCx) {
    memset_page(p);
    init_single_page_fields(p, pfn, cx.zone, cx.node);
    set_bit_atomic(p, PG_RESERVED);
    let pb = cx.pageblocks.pageblock_pages();
    if pfn.is_multiple_of(pb) {
        cx.pageblocks.set_movable(pfn);
    }
}

/// Pass 1 over `n` pages from `pfn` (records at `dst`); System RAM ranges get only this.
pub(crate) unsafe fn pass1_run(dst: *mut u8, pfn: u64, n: usize, cx: &PageCx) {
    for i in 0..n {
        memmap_init_zone_page(words(dst, i), pfn + i as u64, cx);
    }
}

/// Pass 2 over `n` pages: `list_del(&page->lru)`, `page->pgmap`, `percpu_ref_get`.
pub(crate) unsafe fn pass2_run(dst: *mut u8, n: usize, cx: &PageCx, percpu: &mut PercpuCounter) {
    let pgmap = cx.pgmap();
    for i in 0..n {
        let p = words(dst, i);
        // __list_del(entry->prev, entry->next): the links point at the entry itself
        // (INIT_LIST_HEAD of pass 1), so both writes land in this record.
        let next = p.add(1).read();
        let prev = p.add(2).read();
        std::hint::black_box((next, prev));
        p.add(2).write(prev);
        p.add(1).write_volatile(next);
        p.add(1).write(LIST_POISON1);
        p.add(2).write(LIST_POISON2);
        p.add(1).write(pgmap);
        cx.pgmap_ref.get(percpu);
    }
}

/// Seed 003 patch 03's one pass over `n` pages: pass 1 plus the ZONE_DEVICE part.
pub(crate) unsafe fn williams_run(
    dst: *mut u8,
    pfn: u64,
    n: usize,
    cx: &PageCx,
    percpu: &mut PercpuCounter,
) {
    let pgmap = cx.pgmap();
    for i in 0..n {
        let p = words(dst, i);
        memmap_init_zone_page(p, pfn + i as u64, cx);
        // is_zone_device_page(page): page_zonenum reads the flags.
        let flags = std::ptr::read_volatile(p);
        if (flags >> crate::struct_page::ZONES_PGOFF) & 7 != crate::struct_page::ZONE_DEVICE {
            continue;
        }
        p.add(2).write(LIST_POISON2);
        p.add(1).write(pgmap);
        cx.pgmap_ref.get(percpu);
    }
}
