//! Li Zhe's series "mm: optimize zone-device memmap initialization" (v1 2026-05-15 ..
//! v5 2026-07-01), one step at a time on top of the 6.x writer ([`super::v6_1`]), so its
//! ablation can be replayed:
//!
//! - [`Step::HeadTemplate`] (v5 patch 4, v2 3/7 "add a template-based fast path for
//!   zone-device page init"): one head-page template prepared through the slow path,
//!   copied (`memcpy`, regular stores) into every page of `memmap_init_zone_device`'s
//!   loop; compound tails still take the slow path. On x86_64 with SPARSEMEM_VMEMMAP no
//!   field depends on the pfn (no section bits, no `page->virtual`), so nothing is fixed
//!   up after the copy.
//! - [`Step::TailTemplate`] (v5 patch 5, v4 5/8 "extend the template fast path to
//!   zone-device compound tails"): a second template for compound tails (refcount 0,
//!   `prep_compound_tail` done), its `compound_head` refreshed before each copy.
//! - [`Step::Streaming`] (v5 patches 6-8, v3 8/8 "use memcpy_streaming() in zone-device
//!   template copies"): `memcpy_nt` (non-temporal stores) for every pfn that is not
//!   pageblock-aligned; pageblock-aligned pfns keep `memcpy` "so pageblock initialization
//!   can immediately read back page metadata"; `memcpy_nt_drain` (sfence) before
//!   `memmap_init_compound`, before `prep_compound_head` and before returning.
//!
//! The series' base (v7.1) sets the pageblock inside the loop
//! (`zone_device_page_init_pageblock`), which reads the page's flags first; these
//! writers do the same. The replay's non-temporal copy is four 16-byte `movntdq`; the
//! kernel's `memcpy_flushcache` for 64 bytes uses 8-byte `movnti`: the same lines, other
//! instructions.

use super::v6_1::{
    init_zone_device_page, prep_compound_head, prep_compound_tail, set_bit_nonatomic,
};
use super::{words, PageCx};
use crate::struct_page::{self, page_vaddr, PG_HEAD};
use memmap_model::run::StoreKind;

/// One step of the series, each including the ones before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    HeadTemplate,
    TailTemplate,
    Streaming,
}

impl Step {
    pub fn source(self) -> &'static str {
        match self {
            Step::HeadTemplate => {
                "Li Zhe v5 patch 4 (v2 3/7, 2026-05-21): head-page template copied with memcpy; \
                 tails on the 6.x slow path"
            }
            Step::TailTemplate => {
                "Li Zhe v5 patches 4-5 (v4 5/8, 2026-06-03): head and compound-tail templates, memcpy"
            }
            Step::Streaming => {
                "Li Zhe v5 patches 1-8 (2026-07-01): templates copied with memcpy_nt except at \
                 pageblock-aligned pfns, memcpy_nt_drain before compound set-up and on return"
            }
        }
    }

    fn tails(self) -> bool {
        self != Step::HeadTemplate
    }

    fn streaming(self) -> bool {
        self == Step::Streaming
    }
}

/// The templates, prepared once per writer through the slow path.
pub struct Templates {
    head: [u64; 8],
    tail: [u64; 8],
}

impl Templates {
    pub fn new(cx: &PageCx) -> Templates {
        let mut head = [0u64; 8];
        let mut tail = [0u64; 8];
        unsafe {
            init_zone_device_page(head.as_mut_ptr(), 0, cx);
            init_zone_device_page(tail.as_mut_ptr(), 0, cx);
            prep_compound_tail(tail.as_mut_ptr(), 0);
        }
        Templates { head, tail }
    }
}

#[inline(always)]
unsafe fn copy(p: *mut u64, t: &[u64; 8], streaming: bool, pfn: u64, pb: u64) {
    if streaming && !pfn.is_multiple_of(pb) {
        struct_page::store_one(p as *mut u8, t, StoreKind::NonTemporal);
    } else {
        std::ptr::write(p as *mut [u64; 8], *t);
    }
}

/// `zone_device_page_init_pageblock`: reads the page's flags, then sets the migratetype.
#[inline(always)]
unsafe fn pageblock(p: *mut u64, pfn: u64, cx: &PageCx) {
    std::hint::black_box(std::ptr::read_volatile(p));
    cx.pageblocks.set_movable(pfn);
}

/// `memmap_init_zone_device`'s loop over `n` order-0 pages from `pfn` (records at `dst`).
pub(crate) unsafe fn init_device_run(
    dst: *mut u8,
    pfn: u64,
    n: usize,
    cx: &PageCx,
    step: Step,
    t: &Templates,
) {
    let pb = cx.pageblocks.pageblock_pages();
    let streaming = step.streaming();
    for i in 0..n {
        let p = words(dst, i);
        let f = pfn + i as u64;
        copy(p, &t.head, streaming, f, pb);
        if f.is_multiple_of(pb) {
            pageblock(p, f, cx);
        }
    }
    if streaming {
        struct_page::store_fence(StoreKind::NonTemporal);
    }
}

/// Records `i0 .. i0 + count` of one compound page (see [`super::v6_1::init_compound_run`]).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn init_compound_run(
    dst: *mut u8,
    head_pfn: u64,
    i0: u64,
    count: u64,
    order: u32,
    first_tail: *mut u64,
    cx: &PageCx,
    step: Step,
    t: &mut Templates,
) {
    let pb = cx.pageblocks.pageblock_pages();
    let streaming = step.streaming();
    for j in 0..count {
        let i = i0 + j;
        let p = words(dst, j as usize);
        let f = head_pfn + i;
        if i == 0 {
            copy(p, &t.head, streaming, f, pb);
            if f.is_multiple_of(pb) {
                pageblock(p, f, cx);
            }
            if streaming {
                struct_page::store_fence(StoreKind::NonTemporal);
            }
            set_bit_nonatomic(p, PG_HEAD);
            continue;
        }
        if step.tails() {
            t.tail[1] = page_vaddr(head_pfn) + 1;
            copy(p, &t.tail, streaming, f, pb);
        } else {
            init_zone_device_page(p, f, cx);
            prep_compound_tail(p, head_pfn);
        }
        if f.is_multiple_of(pb) {
            pageblock(p, f, cx);
        }
        if i == 2 {
            if streaming {
                struct_page::store_fence(StoreKind::NonTemporal);
            }
            prep_compound_head(first_tail, order);
        }
    }
}

/// `memcpy_nt_drain()` before `memmap_init_zone_device` returns (the replay: at the end
/// of each unit of compound pages).
pub(crate) fn drain(step: Step) {
    if step.streaming() {
        struct_page::store_fence(StoreKind::NonTemporal);
    }
}
