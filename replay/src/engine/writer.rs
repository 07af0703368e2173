//! Writing the struct pages of one namespace into the target: pfn runs to target
//! offsets (vmemmap segments, compound pages with tail reuse, or round a reused
//! window), the records themselves with the strategy's store kind, the legacy second
//! pass, and reading records back for verification and fault checks.

use super::plan::{NsPlan, Placement};
use super::repeat::NsState;
use crate::page_init::{self, lizhe, v4_19, v6_1, Era, PageCx, PercpuCounter};
use crate::struct_page::{self, PageClass, RECORD_BYTES};

/// A writer's slice of the reused window and where its next record goes.
pub(super) struct WindowCursor {
    pub(super) off: u64,
    pub(super) len: u64,
    pub(super) pos: u64,
}

/// Writes struct pages of one namespace into the target with the strategy's era writer.
pub(super) struct Writer<'a> {
    pub(super) base: *mut u8,
    pub(super) plan: &'a NsPlan,
    pub(super) era: Era,
    /// Write back every stored cache line (persistent target, regular stores).
    pub(super) persist: bool,
    pub(super) window: Option<WindowCursor>,
    /// This thread's per-CPU counter of `percpu_ref_get` (pre-4.20 eras).
    pub(super) percpu: PercpuCounter,
    /// Li Zhe's templates, prepared on first use.
    pub(super) templates: Option<lizhe::Templates>,
}

/// What the era writers need to know about the namespace (records of `class`).
fn page_cx<'s>(plan: &NsPlan, class: PageClass, st: &'s NsState) -> PageCx<'s> {
    PageCx {
        zone: plan.zone,
        node: plan.layout.node,
        class,
        pageblocks: &st.pageblocks,
        pgmap_ref: &st.pgmap_ref,
    }
}

/// Target offsets for the records of [pfn, pfn+n), as contiguous runs (a free function
/// so the caller can hold other fields of the writer while it runs).
fn runs(
    window: &mut Option<WindowCursor>,
    base: *mut u8,
    plan: &NsPlan,
    pfn: u64,
    n: u64,
    mut f: impl FnMut(u64, u64, *mut u8),
) {
    if let Some(w) = window {
        let (mut p, mut left) = (pfn, n);
        while left > 0 {
            let room = (w.len - w.pos) / RECORD_BYTES as u64;
            let k = left.min(room);
            f(p, k, unsafe { base.add((w.off + w.pos) as usize) });
            w.pos = (w.pos + k * RECORD_BYTES as u64) % w.len;
            p += k;
            left -= k;
        }
        return;
    }
    match &plan.placement {
        Placement::Segments(segs) => {
            let end = pfn + n;
            let mut i = segs.partition_point(|s| s.first_pfn + s.nr_pfns <= pfn);
            let mut p = pfn;
            while p < end && i < segs.len() {
                let s = segs[i];
                let k = (s.first_pfn + s.nr_pfns).min(end) - p;
                let off = s.off + (p - s.first_pfn) * RECORD_BYTES as u64;
                f(p, k, unsafe { base.add(off as usize) });
                p += k;
                i += 1;
            }
            assert_eq!(p, end, "{}: pfn {p:#x} has no vmemmap block", plan.name);
        }
        Placement::Compound { .. } => {
            unreachable!("compound placements are written by compound_dst / records")
        }
    }
}

impl Writer<'_> {
    fn runs(&mut self, pfn: u64, n: u64, f: impl FnMut(u64, u64, *mut u8)) {
        runs(&mut self.window, self.base, self.plan, pfn, n, f)
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

    /// Initialise the struct pages of [pfn, pfn+n) (one unit of work) the way the era's
    /// kernel does; returns records written.
    pub(super) fn init(&mut self, pfn: u64, n: u64, st: &NsState) -> u64 {
        let plan = self.plan;
        let cx = page_cx(plan, plan.class, st);
        if let (Era::Lizhe(_), None) = (self.era, &self.templates) {
            self.templates = Some(lizhe::Templates::new(&cx));
        }
        match plan.compound {
            Some((order, per)) => {
                let size = 1u64 << order;
                let mut head = pfn;
                while head < pfn + n {
                    if per < size || self.window.is_some() {
                        let dst = self.compound_dst(head, per);
                        let first_tail = unsafe { page_init::words(dst, 1) };
                        self.write_compound(dst, head, 0, per, order, first_tail, &cx);
                    } else {
                        // All struct pages written (altmap): may cross vmemmap blocks.
                        let mut pieces = Vec::new();
                        self.runs(head, size, |_, k, d| pieces.push((k, d)));
                        let first_tail = match pieces[0] {
                            (k, d) if k >= 2 => unsafe { page_init::words(d, 1) },
                            _ => pieces[1].1 as *mut u64,
                        };
                        let mut i0 = 0;
                        for (k, d) in pieces {
                            self.write_compound(d, head, i0, k, order, first_tail, &cx);
                            i0 += k;
                        }
                    }
                    head += size;
                }
                match self.era {
                    Era::V6_1 => st.pageblocks.set_range_movable(pfn, n),
                    Era::Lizhe(step) => {
                        lizhe::drain(step);
                        // The pageblocks of reused tails (1G compound pages) are set over
                        // the range as Debian's 6.1.192 does.
                        st.pageblocks.set_range_movable(pfn, n);
                    }
                    _ => {}
                }
                (n >> order) * per
            }
            None => {
                let Writer {
                    window,
                    base,
                    era,
                    persist,
                    percpu,
                    templates,
                    ..
                } = self;
                let device = matches!(plan.class, PageClass::Device { .. });
                runs(window, *base, plan, pfn, n, |p, k, dst| unsafe {
                    let k = k as usize;
                    match (*era, device) {
                        (Era::V4_19, _) | (Era::Williams2018, false) => {
                            v4_19::pass1_run(dst, p, k, &cx)
                        }
                        (Era::Williams2018, true) => v4_19::williams_run(dst, p, k, &cx, percpu),
                        (Era::V6_1, true) => v6_1::init_device_run(dst, p, k, &cx),
                        (Era::Lizhe(step), true) => {
                            let t = templates.as_ref().expect("templates prepared above");
                            lizhe::init_device_run(dst, p, k, &cx, step, t)
                        }
                        (Era::V6_1 | Era::Lizhe(_), false) => v6_1::init_range_run(dst, p, k, &cx),
                    }
                    if *persist {
                        crate::target::flush_range(dst, k * RECORD_BYTES);
                    }
                });
                n
            }
        }
    }

    /// `move_pfn_range_to_zone` -> `memmap_init_range` over the altmap's own pfns
    /// [pfn, pfn+n): ZONE_DEVICE flags, reserved, list self-pointers, no pgmap (6.1;
    /// before 4.20 the same loop as the data with the atomic SetPageReserved).
    pub(super) fn init_altmap(&mut self, pfn: u64, n: u64, st: &NsState) {
        let plan = self.plan;
        let cx = page_cx(plan, PageClass::SystemRam, st);
        let Writer {
            window,
            base,
            era,
            persist,
            ..
        } = self;
        runs(window, *base, plan, pfn, n, |p, k, dst| unsafe {
            match era {
                Era::V4_19 | Era::Williams2018 => v4_19::pass1_run(dst, p, k as usize, &cx),
                Era::V6_1 | Era::Lizhe(_) => v6_1::init_range_run(dst, p, k as usize, &cx),
            }
            if *persist {
                crate::target::flush_range(dst, k as usize * RECORD_BYTES);
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn write_compound(
        &mut self,
        dst: *mut u8,
        head: u64,
        i0: u64,
        count: u64,
        order: u32,
        first_tail: *mut u64,
        cx: &PageCx,
    ) {
        unsafe {
            match self.era {
                Era::Lizhe(step) => {
                    let t = self.templates.as_mut().expect("templates prepared in init");
                    lizhe::init_compound_run(dst, head, i0, count, order, first_tail, cx, step, t)
                }
                // Compound pages exist from 5.17 on: every other era writes them as 6.1 does.
                _ => v6_1::init_compound_run(dst, head, i0, count, order, first_tail, cx),
            }
            if self.persist {
                crate::target::flush_range(dst, count as usize * RECORD_BYTES);
            }
        }
    }

    /// Legacy second pass (4.19 `devm_memremap_pages`, after `mem_hotplug_done()`):
    /// `list_del(&page->lru)`, `page->pgmap = pgmap`, `percpu_ref_get` for every page.
    pub(super) fn pgmap_pass(&mut self, pfn: u64, n: u64, st: &NsState) {
        let plan = self.plan;
        if !matches!(plan.class, PageClass::Device { .. }) {
            return;
        }
        let cx = page_cx(plan, plan.class, st);
        let Writer {
            window,
            base,
            persist,
            percpu,
            ..
        } = self;
        runs(window, *base, plan, pfn, n, |_, k, dst| unsafe {
            v4_19::pass2_run(dst, k as usize, &cx, percpu);
            if *persist {
                crate::target::flush_range(dst, k as usize * RECORD_BYTES);
            }
        });
    }

    /// (pfn, record found, record expected) for verification.
    /// `altmap`: [pfn, pfn+n) are the altmap's own pfns (list self-pointers expected).
    pub(super) fn records(
        &self,
        pfn: u64,
        n: u64,
        altmap: bool,
    ) -> impl Iterator<Item = (u64, [u64; 8], [u64; 8])> + '_ {
        let plan = self.plan;
        let base = self.base;
        let mut out = Vec::new();
        let mut chunk = |p: u64, k: u64, dst: *mut u8| out.push((p, k, dst as usize));
        let compound = plan.compound.filter(|_| !altmap);
        match (&plan.placement, compound) {
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
            _ => runs(&mut None, base, plan, pfn, n, &mut chunk),
        }
        out.into_iter().flat_map(move |(p, k, dst)| {
            (0..k).map(move |i| {
                let got =
                    unsafe { std::ptr::read_volatile((dst as *const [u64; 8]).add(i as usize)) };
                let want = match compound {
                    _ if altmap => {
                        struct_page::expected_record(p + i, plan.flags, PageClass::SystemRam)
                    }
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
