//! 4.20 .. 6.x: `memmap_init_zone_device` outside the hotplug lock, field by field as
//! Debian 6.1.192 (the testbed's kernel) has it.
//!
//! - `__init_single_page` (mm/page_alloc.c): `mm_zero_struct_page` (eight word stores,
//!   include/linux/mm.h), `set_page_links` (read-modify-write of flags), `init_page_count`
//!   and `page_mapcount_reset` (`atomic_set` = `WRITE_ONCE`), `page_cpupid_reset_last`
//!   (flags |=), `INIT_LIST_HEAD(&page->lru)` (`WRITE_ONCE` of next, plain prev).
//! - `__init_zone_device_page` (mm/mm_init.c): the above, `__SetPageReserved` (x86
//!   `__set_bit`: a non-locked `bts` in `asm volatile` with a memory clobber, so a
//!   compiler barrier), `page->pgmap`, `page->zone_device_data = NULL`. fsdax and devdax
//!   pages keep refcount 1 (only DEVICE_PRIVATE/COHERENT get 0).
//! - `memmap_init_compound`: `__SetPageHead(head)`, then per tail
//!   `__init_zone_device_page`, `prep_compound_tail` (mapping = TAIL_MAPPING,
//!   `set_compound_head` = `WRITE_ONCE(compound_head, head + 1)`, private = 0),
//!   `set_page_count(tail, 0)`, and after the second tail `prep_compound_head` (first
//!   tail: dtor, order, `compound_nr`, compound mapcount -1, pincount 0).
//! - The pageblock migratetype: Debian's 6.1.192 sets it once over the range after the
//!   page loop (`pageblock_migratetype_init_range`); 4.20 .. 5.x set it inside the loop
//!   at every pageblock-aligned pfn. Same stores, other order; the replay does it after
//!   each unit's loop (a section for single passes).
//! - `memmap_init_range` (MEMINIT_HOTPLUG): `__init_single_page`, `__SetPageReserved`
//!   and the pageblock inside the loop: the altmap's own pfns of a ZONE_DEVICE range
//!   (from `move_pfn_range_to_zone`, under the hotplug lock) and hot-added System RAM
//!   (`online_pages`).

use super::{words, PageCx};
use crate::struct_page::{
    page_vaddr, COMPOUND_PAGE_DTOR, LAST_CPUPID_PGOFF, LAST_CPUPID_WIDTH, NODES_PGOFF, PG_HEAD,
    PG_RESERVED, TAIL_MAPPING, ZONES_PGOFF,
};
use std::sync::atomic::{compiler_fence, Ordering};

/// ZONES_WIDTH (3 with ZONE_DEVICE) and NODES_WIDTH (NODES_SHIFT = 10, Debian).
const ZONES_MASK: u64 = 0x7;
const NODES_MASK: u64 = 0x3ff;

/// `_mapcount` (bytes 48..52) and `_refcount` (52..56) as 32-bit halves.
#[inline(always)]
unsafe fn mapcount(p: *mut u64) -> *mut u32 {
    (p as *mut u32).add(12)
}
#[inline(always)]
unsafe fn refcount(p: *mut u64) -> *mut u32 {
    (p as *mut u32).add(13)
}

/// `mm_zero_struct_page` for a 64-byte struct page: `_pp[7] = 0` down to `_pp[0] = 0`.
#[inline(always)]
pub(super) unsafe fn mm_zero_struct_page(p: *mut u64) {
    for i in (0..8).rev() {
        p.add(i).write(0);
    }
}

/// `set_page_links`: `set_page_zone` and `set_page_node` (no section bits with
/// SPARSEMEM_VMEMMAP), plain read-modify-writes of `page->flags`.
#[inline(always)]
pub(super) unsafe fn set_page_links(p: *mut u64, zone: u64, nid: u32) {
    p.write((p.read() & !(ZONES_MASK << ZONES_PGOFF)) | ((zone & ZONES_MASK) << ZONES_PGOFF));
    p.write((p.read() & !(NODES_MASK << NODES_PGOFF)) | ((nid as u64 & NODES_MASK) << NODES_PGOFF));
}

/// `__init_single_page` after the zeroing (shared by 4.19 and 6.1: only the zeroing
/// differs, a `memset` of 64 bytes in 4.19).
#[inline(always)]
pub(super) unsafe fn init_single_page_fields(p: *mut u64, pfn: u64, zone: u64, nid: u32) {
    set_page_links(p, zone, nid);
    refcount(p).write_volatile(1);
    mapcount(p).write_volatile(u32::MAX);
    p.write(p.read() | (((1u64 << LAST_CPUPID_WIDTH) - 1) << LAST_CPUPID_PGOFF));
    // page_kasan_tag_reset: nothing without CONFIG_KASAN_SW_TAGS.
    let lru = page_vaddr(pfn) + 8;
    p.add(1).write_volatile(lru);
    p.add(2).write(lru);
}

/// `__init_single_page` (Debian 6.1.192 mm/page_alloc.c). Out of line like the kernel's:
/// the testbed kernel exports it (`T __init_single_page` in /proc/kallsyms, captured in
/// traces/real/calibration/log/guest-info.txt), so every page costs a call and a return.
#[inline(never)]
pub(crate) unsafe fn init_single_page(p: *mut u64, pfn: u64, zone: u64, nid: u32) {
    mm_zero_struct_page(p);
    init_single_page_fields(p, pfn, zone, nid);
}

/// x86 `__set_bit`: `asm volatile("bts ...": : : "memory")`, non-atomic.
#[inline(always)]
pub(super) unsafe fn set_bit_nonatomic(p: *mut u64, bit: u32) {
    compiler_fence(Ordering::SeqCst);
    p.write_volatile(p.read_volatile() | (1u64 << bit));
    compiler_fence(Ordering::SeqCst);
}

/// `__init_zone_device_page` (Debian 6.1.192 mm/mm_init.c). Out of line like the
/// kernel's (`t __init_zone_device_page` in the testbed's /proc/kallsyms: two callers,
/// `memmap_init_zone_device` and `memmap_init_compound`, and gcc kept one copy).
#[inline(never)]
pub(crate) unsafe fn init_zone_device_page(p: *mut u64, pfn: u64, cx: &PageCx) {
    init_single_page(p, pfn, cx.zone, cx.node);
    set_bit_nonatomic(p, PG_RESERVED);
    p.add(1).write(cx.pgmap());
    p.add(2).write(0);
}

/// `memmap_init_zone_device`'s loop over `n` single (order-0) pages from `pfn`, records at
/// `dst`; then the range's pageblocks.
pub(crate) unsafe fn init_device_run(dst: *mut u8, pfn: u64, n: usize, cx: &PageCx) {
    for i in 0..n {
        init_zone_device_page(words(dst, i), pfn + i as u64, cx);
    }
    cx.pageblocks.set_range_movable(pfn, n as u64);
}

/// `memmap_init_range` (MEMINIT_HOTPLUG) over `n` pages from `pfn`: altmap pfns of a
/// ZONE_DEVICE range, or hot-added System RAM.
pub(crate) unsafe fn init_range_run(dst: *mut u8, pfn: u64, n: usize, cx: &PageCx) {
    let pb = cx.pageblocks.pageblock_pages();
    for i in 0..n {
        let p = words(dst, i);
        let f = pfn + i as u64;
        init_single_page(p, f, cx.zone, cx.node);
        set_bit_nonatomic(p, PG_RESERVED);
        if f.is_multiple_of(pb) {
            cx.pageblocks.set_movable(f);
        }
    }
}

/// `prep_compound_tail(head, i)` and `set_page_count(tail, 0)`. `prep_compound_tail` is a
/// global function of mm/page_alloc.c called from mm/mm_init.c, so a real call per tail.
#[inline(never)]
pub(super) unsafe fn prep_compound_tail(p: *mut u64, head_pfn: u64) {
    p.add(3).write(TAIL_MAPPING);
    p.add(1).write_volatile(page_vaddr(head_pfn) + 1);
    p.add(5).write(0);
    refcount(p).write_volatile(0);
}

/// `prep_compound_head(head, order)` on the first tail's record `t1` (6.1 layout:
/// dtor byte 16, order byte 17, compound_mapcount 20..24, compound_pincount 24..28,
/// compound_nr 28..32). A real call, like `prep_compound_tail`.
#[inline(never)]
pub(super) unsafe fn prep_compound_head(t1: *mut u64, order: u32) {
    let b = t1 as *mut u8;
    b.add(16).write(COMPOUND_PAGE_DTOR as u8);
    b.add(17).write(order as u8);
    (b.add(28) as *mut u32).write(1u32 << order);
    (b.add(20) as *mut u32).write_volatile(u32::MAX);
    (b.add(24) as *mut u32).write_volatile(0);
}

/// One compound page's records `i0 .. i0 + count` (0 = head) at `dst`, as
/// `memmap_init_zone_device` + `memmap_init_compound` write them. `first_tail` is the
/// first tail's record (for `prep_compound_head`, which may lie in an earlier run).
/// The pageblocks are set by the caller over the compound.
pub(crate) unsafe fn init_compound_run(
    dst: *mut u8,
    head_pfn: u64,
    i0: u64,
    count: u64,
    order: u32,
    first_tail: *mut u64,
    cx: &PageCx,
) {
    for j in 0..count {
        let i = i0 + j;
        let p = words(dst, j as usize);
        init_zone_device_page(p, head_pfn + i, cx);
        if i == 0 {
            set_bit_nonatomic(p, PG_HEAD);
            continue;
        }
        prep_compound_tail(p, head_pfn);
        if i == 2 {
            prep_compound_head(first_tail, order);
        }
    }
}
