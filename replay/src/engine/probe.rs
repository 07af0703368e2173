//! The probe task of one namespace and the init threads it starts: the hotplug lock,
//! phase 1 (vmemmap populate), then phase 2 (struct-page init) the way each strategy
//! does it, unit by unit.

use super::align_up;
use super::repeat::{ns_since, RepeatRun, ThreadCtx};
use super::writer::{chunks, Writer};
use crate::strategy::{self, Strategy};
use memmap_model::run::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

impl RepeatRun<'_> {
    /// Initialise [pfn, pfn+n) as one unit: records, pageblocks, progress.
    fn init_unit(
        &self,
        ctx: &mut ThreadCtx,
        w: &mut Writer,
        ni: usize,
        pfn: u64,
        n: u64,
        kind: SpanKind,
    ) {
        let plan = &self.engine.plans[ni];
        let st = &self.ns[ni];
        st.init_start_ns
            .fetch_min(ns_since(ctx.t0), Ordering::Relaxed);
        let legacy = self.engine.opts.strategy.double_pass();
        let written = ctx.span(kind, pfn, n, || w.init(pfn, n, legacy));
        st.set_pageblocks(plan, pfn, n);
        st.records_written.fetch_add(written, Ordering::Relaxed);
        ctx.slot.pages.fetch_add(n, Ordering::Relaxed);
    }

    /// Probe task of one namespace: hotplug lock, populate, then init as the strategy says.
    pub(super) fn probe(&self, ni: usize, t0: Instant, hotplug: &Mutex<()>) -> anyhow::Result<()> {
        let e = self.engine;
        let plan = &e.plans[ni];
        let st = &self.ns[ni];
        let strat = e.opts.strategy;
        let mut ctx = self.register(format!("probe/{}", plan.name), ThreadRole::Probe, ni, t0);
        if strat.is_async() {
            // The disk is registered at once; memmap_sync covers first use.
            st.available_ns.store(ns_since(t0), Ordering::Release);
            st.available.store(true, Ordering::Release);
        }
        let wait0 = ns_since(t0);
        let guard = hotplug.lock().unwrap();
        let got = ns_since(t0);
        if got - wait0 > 10_000 {
            self.phase("hotplug-lock-wait", ni, wait0, got);
        }
        st.populate_start_ns.store(got, Ordering::Release);
        if e.window.is_none() || !st.populated.load(Ordering::Acquire) {
            for &(off, len) in &plan.extents {
                if e.window.is_some() && off + len > e.target.len() {
                    continue;
                }
                ctx.span(SpanKind::Populate, plan.data_start, 0, || {
                    e.target.populate(off, len)
                })?;
            }
        }
        let pend = ns_since(t0);
        st.populate_end_ns.store(pend, Ordering::Release);
        st.populated.store(true, Ordering::Release);
        self.phase("populate", ni, got, pend);
        let guard = if strat.init_under_hotplug_lock() {
            Some(guard)
        } else {
            drop(guard);
            None
        };
        let init0 = ns_since(t0);
        self.init_namespace(ni, &mut ctx, t0);
        let init1 = ns_since(t0);
        self.phase("init", ni, init0, init1);
        drop(guard);
        st.complete_ns.store(init1, Ordering::Release);
        st.complete.store(true, Ordering::Release);
        if !strat.is_async() {
            st.available_ns.store(init1, Ordering::Release);
            st.available.store(true, Ordering::Release);
        }
        ctx.finish(self, None, Vec::new(), 0, 0);
        Ok(())
    }

    /// Phase 2 of one namespace, as its strategy does it (the probe task's `ctx`).
    fn init_namespace(&self, ni: usize, ctx: &mut ThreadCtx, t0: Instant) {
        let e = self.engine;
        let plan = &e.plans[ni];
        let p = &e.opts.params;
        let align = plan.compound.map(|(o, _)| 1u64 << o).unwrap_or(1);
        let chunk = align_up(p.chunk_pages.max(1), align);
        match e.opts.strategy {
            Strategy::LegacyDoublePass => self.init_legacy_double_pass(ni, ctx, t0, chunk),
            Strategy::WilliamsMt => self.init_williams_mt(ni, t0, chunk, align),
            Strategy::WilliamsAsync => self.init_williams_async(ni, t0),
            Strategy::JordanPadata => self.init_padata(ni, ctx, t0, chunk),
            Strategy::Duyck | Strategy::MartinsCompound | Strategy::LizheNt => {
                let mut w = self.writer(ni);
                for (s, n) in chunks(plan.data_start, plan.data_pages, chunk) {
                    self.init_unit(ctx, &mut w, ni, s, n, SpanKind::Init);
                }
            }
        }
    }

    /// legacy-double-pass: pass 1 in chunks, then the pgmap pass over the same records.
    fn init_legacy_double_pass(&self, ni: usize, ctx: &mut ThreadCtx, t0: Instant, chunk: u64) {
        let plan = &self.engine.plans[ni];
        let mut w = self.writer(ni);
        let pass1_pos = w.window.as_ref().map(|c| c.pos);
        for (s, n) in chunks(plan.data_start, plan.data_pages, chunk) {
            self.init_unit(ctx, &mut w, ni, s, n, SpanKind::Init);
        }
        // Pass 2 revisits the very records pass 1 wrote (same window slots too).
        if let (Some(c), Some(pos)) = (w.window.as_mut(), pass1_pos) {
            c.pos = pos;
        }
        let t = ns_since(t0);
        for (s, n) in chunks(plan.data_start, plan.data_pages, chunk) {
            ctx.span(SpanKind::PgmapPass, s, n, || w.pgmap_pass(s, n));
        }
        self.phase("pgmap-pass", ni, t, ns_since(t0));
    }

    /// williams-mt: NR_MEMMAP_THREADS equal ranges, one init thread each; the caller waits.
    fn init_williams_mt(&self, ni: usize, t0: Instant, chunk: u64, align: u64) {
        let plan = &self.engine.plans[ni];
        let p = &self.engine.opts.params;
        let parts =
            strategy::equal_split(plan.data_start, plan.data_pages, p.threads as u64, align);
        std::thread::scope(|s| {
            for (ti, (start, pages)) in parts.into_iter().enumerate() {
                s.spawn(move || {
                    let mut c = self.register(
                        format!("memmap/{}/{ti}", plan.name),
                        ThreadRole::Init,
                        ni,
                        t0,
                    );
                    let mut w = self.writer(ni);
                    for (a, n) in chunks(start, pages, chunk) {
                        self.init_unit(&mut c, &mut w, ni, a, n, SpanKind::Init);
                    }
                    c.finish(self, None, Vec::new(), 0, 0);
                });
            }
        });
    }

    /// williams-async: one init thread per lane, each through its sub-ranges in order
    /// (faulting threads take the ones they need first through memmap_sync).
    fn init_williams_async(&self, ni: usize, t0: Instant) {
        let plan = &self.engine.plans[ni];
        let st = &self.ns[ni];
        std::thread::scope(|s| {
            for li in 0..st.lanes.len() {
                s.spawn(move || {
                    let mut c = self.register(
                        format!("memmap/{}/{li}", plan.name),
                        ThreadRole::Init,
                        ni,
                        t0,
                    );
                    let mut w = self.writer(ni);
                    let lane = &st.lanes[li];
                    let nr = lane.pending.len();
                    for r in 0..nr {
                        self.init_subrange(&mut c, &mut w, ni, li, r, SpanKind::Init);
                    }
                    st.lanes_active.fetch_sub(1, Ordering::AcqRel);
                    c.finish(self, None, Vec::new(), 0, 0);
                });
            }
        });
    }

    /// jordan-padata: padata_do_multithreaded's jobs taken in order by nworks - 1 helper
    /// threads and the calling (probe) task.
    fn init_padata(&self, ni: usize, ctx: &mut ThreadCtx, t0: Instant, chunk: u64) {
        let plan = &self.engine.plans[ni];
        let p = &self.engine.opts.params;
        let (nworks, jobs) =
            strategy::padata_chunks(plan.data_start, plan.data_pages, p.threads as u64, chunk);
        let next = AtomicUsize::new(0);
        let work = |c: &mut ThreadCtx| {
            let mut w = self.writer(ni);
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(a, n)) = jobs.get(j) else { break };
                self.init_unit(c, &mut w, ni, a, n, SpanKind::Init);
            }
        };
        std::thread::scope(|s| {
            // nworks - 1 helpers; the calling task runs one share itself.
            for ti in 1..nworks {
                let work = &work;
                s.spawn(move || {
                    let mut c = self.register(
                        format!("padata/{}/{ti}", plan.name),
                        ThreadRole::Init,
                        ni,
                        t0,
                    );
                    work(&mut c);
                    c.finish(self, None, Vec::new(), 0, 0);
                });
            }
            work(ctx);
        });
    }

    /// memmap_init_range(args, range_id): under the lane's mutex, init the sub-range if
    /// still pending. Returns whether this caller did the work.
    pub(super) fn init_subrange(
        &self,
        ctx: &mut ThreadCtx,
        w: &mut Writer,
        ni: usize,
        li: usize,
        r: usize,
        kind: SpanKind,
    ) -> bool {
        let lane = &self.ns[ni].lanes[li];
        let guard = lane.locks[r.min(lane.locks.len() - 1)].lock();
        if !lane.pending[r].load(Ordering::Acquire) {
            return false;
        }
        let start = lane.start + r as u64 * lane.range_size;
        let n = lane.range_size.min(lane.start + lane.pages - start);
        self.init_unit(ctx, w, ni, start, n, kind);
        lane.pending[r].store(false, Ordering::Release);
        parking_lot::MutexGuard::unlock_fair(guard);
        true
    }
}
