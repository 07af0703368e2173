//! The 64-byte `struct page` record the kernel leaves per pfn, built word by word for
//! `--verify` independently of the era writers (`page_init`), and the store primitives
//! (regular or non-temporal) the template writers and the bare loop use.
//!
//! Layout follows x86_64 Linux 6.1 with SPARSEMEM_VMEMMAP, NODES_SHIFT=10,
//! NR_CPUS=8192 (Debian config): see docs/strategies.md, "What one record holds".
//!
//! | offset | field (6.1)                                  |
//! |--------|----------------------------------------------|
//! | 0      | flags: zone, node, last_cpupid, PG_reserved, PG_head |
//! | 8      | lru.next / pgmap / compound_head             |
//! | 16     | lru.prev / zone_device_data / LIST_POISON2 / compound dtor+order+mapcount |
//! | 24     | mapping (TAIL_MAPPING on tails) / compound pincount+nr |
//! | 32     | index                                        |
//! | 40     | private                                      |
//! | 48     | _mapcount (-1), 52: _refcount (1)            |
//! | 56     | memcg_data                                   |

use memmap_model::run::{RecordFlavor, StoreKind};

pub const RECORD_BYTES: usize = 64;
pub const VMEMMAP_START: u64 = 0xffff_ea00_0000_0000;
/// Fake kernel addresses of the dev_pagemap of namespace i: `PGMAP_BASE + i * 0x1000`.
pub const PGMAP_BASE: u64 = 0xffff_8880_4000_0000;
pub const LIST_POISON1: u64 = 0xdead_0000_0000_0100;
pub const LIST_POISON2: u64 = 0xdead_0000_0000_0122;
pub const TAIL_MAPPING: u64 = 0xdead_0000_0000_0400;

pub const PG_RESERVED: u32 = 12;
pub const PG_HEAD: u32 = 16;
pub const ZONES_PGOFF: u32 = 51;
pub const NODES_PGOFF: u32 = 54;
pub const LAST_CPUPID_PGOFF: u32 = 30;
pub const LAST_CPUPID_WIDTH: u32 = 21;
pub const ZONE_NORMAL: u64 = 2;
pub const ZONE_DEVICE: u64 = 4;
/// `_mapcount = -1` (low half) and `_refcount = 1` (high half), little endian.
pub const COUNTS_WORD: u64 = (1u64 << 32) | 0xffff_ffff;
/// Compound tails: `_mapcount = -1`, `_refcount = 0` (6.1 `memmap_init_compound`:
/// `set_page_count(page, 0)` after `prep_compound_tail`).
pub const TAIL_COUNTS_WORD: u64 = 0xffff_ffff;
pub const COMPOUND_PAGE_DTOR: u64 = 1;

pub fn page_vaddr(pfn: u64) -> u64 {
    VMEMMAP_START + pfn * RECORD_BYTES as u64
}

/// flags after set_page_links + page_cpupid_reset_last + __SetPageReserved.
pub fn base_flags(zone: u64, node: u32) -> u64 {
    let cpupid = ((1u64 << LAST_CPUPID_WIDTH) - 1) << LAST_CPUPID_PGOFF;
    (zone << ZONES_PGOFF) | ((node as u64) << NODES_PGOFF) | cpupid | (1 << PG_RESERVED)
}

/// What kind of page a range holds, and so which words a record gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageClass {
    /// ZONE_DEVICE page with a pgmap back pointer.
    Device { pgmap: u64, flavor: RecordFlavor },
    /// Hot-added System RAM onlined by memmap_init_range: lru self pointers.
    SystemRam,
}

/// The record the kernel leaves for a non-compound page (`__init_single_page`
/// plus the ZONE_DEVICE part), written out field by field. The verifier uses
/// this; the writers use the faster template paths below and must agree.
pub fn expected_record(pfn: u64, flags: u64, class: PageClass) -> [u64; 8] {
    let mut r = [0u64; 8];
    r[0] = flags;
    r[6] = COUNTS_WORD;
    match class {
        PageClass::Device { pgmap, flavor } => {
            r[1] = pgmap;
            r[2] = match flavor {
                RecordFlavor::Poison => LIST_POISON2,
                RecordFlavor::DeviceData => 0,
            };
        }
        PageClass::SystemRam => {
            let lru = page_vaddr(pfn) + 8;
            r[1] = lru;
            r[2] = lru;
        }
    }
    r
}

/// Record of page `i` (0 = head) of a compound page of `order` whose head is `head_pfn`
/// (memmap_init_compound + prep_compound_head/tail, Debian 6.1.192 mm/mm_init.c and
/// mm/page_alloc.c): built here word by word, independently of `page_init`'s writers.
pub fn expected_compound_record(
    head_pfn: u64,
    i: u64,
    order: u32,
    flags: u64,
    pgmap: u64,
) -> [u64; 8] {
    if i == 0 {
        let mut r = expected_record(head_pfn, flags, device_data(pgmap));
        r[0] |= 1 << PG_HEAD;
        return r;
    }
    let mut r = [0u64; 8];
    r[0] = flags;
    r[1] = page_vaddr(head_pfn) | 1;
    r[3] = TAIL_MAPPING;
    r[6] = TAIL_COUNTS_WORD;
    if i == 1 {
        // compound_dtor (byte 16), compound_order (17), compound_mapcount = -1 (20..24)
        r[2] = COMPOUND_PAGE_DTOR | ((order as u64) << 8) | (0xffff_ffffu64 << 32);
        // compound_pincount = 0 (24..28), compound_nr (28..32) over mapping
        r[3] = (1u64 << order) << 32;
    }
    r
}

fn device_data(pgmap: u64) -> PageClass {
    PageClass::Device {
        pgmap,
        flavor: RecordFlavor::DeviceData,
    }
}

/// Writes `n` identical records at `dst`.
///
/// # Safety
/// `dst` must be valid for `n * 64` bytes of writes and 16-byte aligned.
#[inline]
pub unsafe fn store_template(dst: *mut u8, n: usize, rec: &[u64; 8], kind: StoreKind) {
    match kind {
        StoreKind::Regular => {
            let d = dst as *mut [u64; 8];
            for i in 0..n {
                std::ptr::write(d.add(i), *rec);
            }
        }
        StoreKind::NonTemporal => nt::store_template(dst, n, rec),
    }
}

/// Writes one record (regular or streaming stores).
///
/// # Safety
/// `dst` must be valid for 64 bytes of writes and 16-byte aligned.
#[inline(always)]
pub unsafe fn store_one(dst: *mut u8, rec: &[u64; 8], kind: StoreKind) {
    match kind {
        StoreKind::Regular => std::ptr::write(dst as *mut [u64; 8], *rec),
        StoreKind::NonTemporal => nt::store_one(dst, rec),
    }
}

/// Orders streaming stores before anything that follows (sfence); no-op for regular stores.
#[inline]
pub fn store_fence(kind: StoreKind) {
    if kind == StoreKind::NonTemporal {
        nt::fence();
    }
}

#[cfg(target_arch = "x86_64")]
mod nt {
    use std::arch::x86_64::*;

    #[inline(always)]
    pub unsafe fn store_one(dst: *mut u8, rec: &[u64; 8]) {
        let s = rec.as_ptr() as *const __m128i;
        let d = dst as *mut __m128i;
        _mm_stream_si128(d, _mm_loadu_si128(s));
        _mm_stream_si128(d.add(1), _mm_loadu_si128(s.add(1)));
        _mm_stream_si128(d.add(2), _mm_loadu_si128(s.add(2)));
        _mm_stream_si128(d.add(3), _mm_loadu_si128(s.add(3)));
    }

    #[inline]
    pub unsafe fn store_template(dst: *mut u8, n: usize, rec: &[u64; 8]) {
        let s = rec.as_ptr() as *const __m128i;
        let (a, b, c, e) = (
            _mm_loadu_si128(s),
            _mm_loadu_si128(s.add(1)),
            _mm_loadu_si128(s.add(2)),
            _mm_loadu_si128(s.add(3)),
        );
        let mut d = dst as *mut __m128i;
        for _ in 0..n {
            _mm_stream_si128(d, a);
            _mm_stream_si128(d.add(1), b);
            _mm_stream_si128(d.add(2), c);
            _mm_stream_si128(d.add(3), e);
            d = d.add(4);
        }
    }

    #[inline]
    pub fn fence() {
        unsafe { _mm_sfence() }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod nt {
    // No streaming stores known here: fall back to regular stores (recorded by the caller).
    pub unsafe fn store_one(dst: *mut u8, rec: &[u64; 8]) {
        std::ptr::write(dst as *mut [u64; 8], *rec)
    }
    pub unsafe fn store_template(dst: *mut u8, n: usize, rec: &[u64; 8]) {
        let d = dst as *mut [u64; 8];
        for i in 0..n {
            std::ptr::write(d.add(i), *rec);
        }
    }
    pub fn fence() {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The bare loop the engine is measured against: store `bytes` of a constant
/// 64-byte pattern at `dst` with the given store kind.
///
/// # Safety
/// `dst` valid for `bytes` writes, 16-byte aligned, `bytes` a multiple of 64.
pub unsafe fn bare_store(dst: *mut u8, bytes: usize, kind: StoreKind) {
    // Distinct words like a real record: a byte-splat pattern would let the compiler turn
    // the loop into memset (rep stosb), which skips read-for-ownership and is not the
    // store kind being compared.
    let rec = [
        base_flags(ZONE_DEVICE, 0),
        PGMAP_BASE,
        0,
        0,
        0,
        0,
        COUNTS_WORD,
        0,
    ];
    store_template(dst, bytes / RECORD_BYTES, &rec, kind);
    store_fence(kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(n: usize) -> Vec<[u64; 8]> {
        vec![[0u64; 8]; n]
    }

    #[test]
    fn flags_carry_zone_node_and_reserved() {
        let f = base_flags(ZONE_DEVICE, 3);
        assert_eq!(f >> ZONES_PGOFF & 7, ZONE_DEVICE);
        assert_eq!(f >> NODES_PGOFF & 0x3ff, 3);
        assert_ne!(f & (1 << PG_RESERVED), 0);
        assert_eq!(f & (1 << PG_HEAD), 0);
    }

    #[test]
    fn template_and_nt_stores_write_the_expected_records() {
        let flags = base_flags(ZONE_DEVICE, 1);
        let class = PageClass::Device {
            pgmap: PGMAP_BASE,
            flavor: RecordFlavor::DeviceData,
        };
        let rec = expected_record(7, flags, class);
        for kind in [StoreKind::Regular, StoreKind::NonTemporal] {
            let mut b = buf(33);
            unsafe { store_template(b.as_mut_ptr() as *mut u8, 32, &rec, kind) };
            store_fence(kind);
            assert!(b[..32].iter().all(|r| *r == rec));
            assert_eq!(b[32], [0; 8], "wrote past the end");
        }
    }

    #[test]
    fn compound_tail_points_to_head() {
        let flags = base_flags(ZONE_DEVICE, 0);
        let head = expected_compound_record(512, 0, 9, flags, PGMAP_BASE);
        assert_ne!(head[0] & (1 << PG_HEAD), 0);
        let t1 = expected_compound_record(512, 1, 9, flags, PGMAP_BASE);
        assert_eq!(t1[1], page_vaddr(512) | 1);
        assert_eq!((t1[2] >> 8) & 0xff, 9);
        assert_eq!(t1[3] >> 32, 512);
        let t5 = expected_compound_record(512, 5, 9, flags, PGMAP_BASE);
        assert_eq!(t5[3], TAIL_MAPPING);
        // Tails: refcount 0 (high half of word 6), mapcount -1; the head keeps 1.
        assert_eq!(t5[6] >> 32, 0);
        assert_eq!(t1[6] >> 32, 0);
        assert_eq!(head[6] >> 32, 1);
    }
}
