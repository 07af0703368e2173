//! Writing the struct pages of one namespace into the target: pfn runs to target
//! offsets (vmemmap segments, compound pages with tail reuse, or round a reused
//! window), the records themselves with the strategy's store kind, the legacy second
//! pass, and reading records back for verification and fault checks.

use super::plan::{NsPlan, Placement};
use crate::struct_page::{self, PageClass, RECORD_BYTES};
use memmap_model::run::StoreKind;

/// A writer's slice of the reused window and where its next record goes.
pub(super) struct WindowCursor {
    pub(super) off: u64,
    pub(super) len: u64,
    pub(super) pos: u64,
}

/// Writes struct pages of one namespace into the target.
pub(super) struct Writer<'a> {
    pub(super) base: *mut u8,
    pub(super) plan: &'a NsPlan,
    pub(super) store: StoreKind,
    /// Write back every stored cache line (persistent target, regular stores).
    pub(super) persist: bool,
    pub(super) window: Option<WindowCursor>,
}

impl Writer<'_> {
    /// Target offsets for the records of [pfn, pfn+n), as contiguous runs.
    fn runs(&mut self, pfn: u64, n: u64, mut f: impl FnMut(u64, u64, *mut u8)) {
        if let Some(w) = &mut self.window {
            let (mut p, mut left) = (pfn, n);
            while left > 0 {
                let room = (w.len - w.pos) / RECORD_BYTES as u64;
                let k = left.min(room);
                f(p, k, unsafe { self.base.add((w.off + w.pos) as usize) });
                w.pos = (w.pos + k * RECORD_BYTES as u64) % w.len;
                p += k;
                left -= k;
            }
            return;
        }
        match &self.plan.placement {
            Placement::Segments(segs) => {
                let end = pfn + n;
                let mut i = segs.partition_point(|s| s.first_pfn + s.nr_pfns <= pfn);
                let mut p = pfn;
                while p < end && i < segs.len() {
                    let s = segs[i];
                    let k = (s.first_pfn + s.nr_pfns).min(end) - p;
                    let off = s.off + (p - s.first_pfn) * RECORD_BYTES as u64;
                    f(p, k, unsafe { self.base.add(off as usize) });
                    p += k;
                    i += 1;
                }
                assert_eq!(
                    p, end,
                    "{}: pfn {p:#x} has no vmemmap block",
                    self.plan.name
                );
            }
            Placement::Compound { .. } => {
                unreachable!("compound placements are written by compound_dst / records")
            }
        }
    }

    fn compound_dst(&mut self, head: u64, count: u64) -> *mut u8 {
        if self.window.is_some() {
            let mut dst: *mut u8 = std::ptr::null_mut();
            // A compound's unique records are contiguous in the window too.
            self.runs(head, count, |_, _, d| {
                if dst.is_null() {
                    dst = d
                }
            });
            return dst;
        }
        match self.plan.placement {
            Placement::Compound {
                off,
                first_pfn,
                order,
                per,
            } => {
                let c = (head - first_pfn) >> order;
                unsafe {
                    self.base
                        .add((off + c * per * RECORD_BYTES as u64) as usize)
                }
            }
            Placement::Segments(_) => {
                let mut dst: *mut u8 = std::ptr::null_mut();
                self.runs(head, 1, |_, _, d| dst = d);
                dst
            }
        }
    }

    /// Initialise the struct pages of [pfn, pfn+n) (one unit of work); returns records written.
    pub(super) fn init(&mut self, pfn: u64, n: u64, flavor_pass1_only: bool) -> u64 {
        let plan = self.plan;
        let written = match plan.compound {
            Some((order, per)) => {
                let size = 1u64 << order;
                let pgmap = match plan.class {
                    PageClass::Device { pgmap, .. } => pgmap,
                    PageClass::SystemRam => 0,
                };
                let mut head = pfn;
                while head < pfn + n {
                    if per < size || self.window.is_some() {
                        let dst = self.compound_dst(head, per);
                        self.write_compound(dst, head, 0, per, order, pgmap);
                    } else {
                        // All struct pages written (altmap): may cross vmemmap blocks.
                        let mut i0 = 0;
                        let mut runs = Vec::new();
                        self.runs(head, size, |_, k, d| runs.push((k, d)));
                        for (k, d) in runs {
                            self.write_compound(d, head, i0, k, order, pgmap);
                            i0 += k;
                        }
                    }
                    head += size;
                }
                (n >> order) * per
            }
            None => {
                let class = if flavor_pass1_only {
                    // Legacy pass 1: __init_single_page leaves lru self pointers.
                    PageClass::SystemRam
                } else {
                    plan.class
                };
                let flags = plan.flags;
                let (store, persist) = (self.store, self.persist);
                self.runs(pfn, n, |p, k, dst| unsafe {
                    match class {
                        PageClass::Device { .. } => {
                            let rec = struct_page::expected_record(p, flags, class);
                            struct_page::store_template(dst, k as usize, &rec, store)
                        }
                        PageClass::SystemRam => {
                            struct_page::store_system_ram(dst, p, k as usize, flags, store)
                        }
                    }
                    if persist {
                        crate::target::flush_range(dst, k as usize * RECORD_BYTES);
                    }
                });
                n
            }
        };
        struct_page::store_fence(self.store);
        written
    }

    fn write_compound(&self, dst: *mut u8, head: u64, i0: u64, count: u64, order: u32, pgmap: u64) {
        let flags = self.plan.flags;
        // Tails from index 2 on are identical: build that template once.
        let tail = struct_page::expected_compound_record(head, 2, order, flags, pgmap);
        for j in 0..count {
            let i = i0 + j;
            let d = unsafe { dst.add((j as usize) * RECORD_BYTES) };
            if i >= 2 {
                unsafe { struct_page::store_one(d, &tail, self.store) };
            } else {
                let r = struct_page::expected_compound_record(head, i, order, flags, pgmap);
                unsafe { struct_page::store_one(d, &r, self.store) };
            }
        }
        if self.persist {
            unsafe { crate::target::flush_range(dst, count as usize * RECORD_BYTES) };
        }
    }

    /// Legacy second pass (devm_memremap_pages before 4.20): list_del(&page->lru)
    /// then page->pgmap = pgmap, for every page.
    pub(super) fn pgmap_pass(&mut self, pfn: u64, n: u64) {
        let PageClass::Device { pgmap, .. } = self.plan.class else {
            return;
        };
        let persist = self.persist;
        self.runs(pfn, n, |_, k, dst| {
            let words = dst as *mut u64;
            for i in 0..k as usize {
                unsafe {
                    let w = words.add(i * 8);
                    // list_del reads both links, then poisons them; pgmap overlays next.
                    let next = std::ptr::read_volatile(w.add(1));
                    let prev = std::ptr::read_volatile(w.add(2));
                    std::hint::black_box((next, prev));
                    std::ptr::write(w.add(1), pgmap);
                    std::ptr::write(w.add(2), struct_page::LIST_POISON2);
                }
            }
            if persist {
                unsafe { crate::target::flush_range(dst, k as usize * RECORD_BYTES) };
            }
        });
    }

    /// (pfn, record found, record expected) for verification.
    pub(super) fn records(
        &self,
        pfn: u64,
        n: u64,
    ) -> impl Iterator<Item = (u64, [u64; 8], [u64; 8])> + '_ {
        let plan = self.plan;
        let base = self.base;
        let mut out = Vec::new();
        let mut chunk = |p: u64, k: u64, dst: *mut u8| out.push((p, k, dst as usize));
        match (&plan.placement, plan.compound) {
            (
                Placement::Compound {
                    off,
                    first_pfn,
                    order,
                    per,
                },
                Some(_),
            ) => {
                let size = 1u64 << order;
                let mut head = pfn;
                while head < pfn + n {
                    let c = (head - first_pfn) >> order;
                    chunk(head, *per, unsafe {
                        base.add((off + c * per * 64) as usize)
                    });
                    head += size;
                }
            }
            _ => {
                let mut me = Writer {
                    base,
                    plan,
                    store: self.store,
                    persist: false,
                    window: None,
                };
                me.runs(pfn, n, &mut chunk);
            }
        }
        out.into_iter().flat_map(move |(p, k, dst)| {
            (0..k).map(move |i| {
                let got =
                    unsafe { std::ptr::read_volatile((dst as *const [u64; 8]).add(i as usize)) };
                let want = match plan.compound {
                    Some((order, _)) => {
                        let size = 1u64 << order;
                        let abs = p + i;
                        let head = abs / size * size;
                        let PageClass::Device { pgmap, .. } = plan.class else {
                            unreachable!()
                        };
                        struct_page::expected_compound_record(
                            head,
                            abs - head,
                            order,
                            plan.flags,
                            pgmap,
                        )
                    }
                    None => struct_page::expected_record(p + i, plan.flags, plan.class),
                };
                (p + i, got, want)
            })
        })
    }
}

/// [start, start+pages) cut into pieces of `chunk` pages.
pub(super) fn chunks(start: u64, pages: u64, chunk: u64) -> impl Iterator<Item = (u64, u64)> {
    let chunk = chunk.max(1);
    (0..pages.div_ceil(chunk)).map(move |i| {
        let s = start + i * chunk;
        (s, chunk.min(start + pages - s))
    })
}
