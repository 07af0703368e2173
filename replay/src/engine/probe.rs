//! The probe task of one namespace: the hotplug lock, phase 1 (vmemmap populate), then
//! phase 2 (struct-page init) run by the strategy (`crate::strategy`) through
//! [`InitCx`]: the units of work it hands to its threads ([`Worker`]) and when it drops
//! the hotplug lock.

use super::repeat::{ns_since, RepeatRun, ThreadCtx};
use super::writer::{chunks, Writer};
use memmap_model::run::*;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// What a strategy may do while it initialises one namespace.
pub struct InitCx<'r, 'e> {
    run: &'r RepeatRun<'e>,
    ni: usize,
    t0: Instant,
    probe: &'r mut ThreadCtx,
    hotplug: RefCell<Option<MutexGuard<'r, ()>>>,
}

/// The thread context a worker reports to: the probe task's, or its own.
enum Ctx<'a> {
    Probe(&'a mut ThreadCtx),
    Own(ThreadCtx),
}

/// One thread of a strategy with its writer: initialises units of the namespace.
pub struct Worker<'a, 'e> {
    run: &'a RepeatRun<'e>,
    ni: usize,
    ctx: Ctx<'a>,
    w: Writer<'a>,
    /// The hotplug lock the probe task holds (None for threads of their own).
    hotplug: Option<&'a dyn HotplugLock>,
}

/// The probe task's hold on the hotplug lock, released through a shared reference.
trait HotplugLock {
    fn release(&self);
}

impl HotplugLock for RefCell<Option<MutexGuard<'_, ()>>> {
    fn release(&self) {
        self.borrow_mut().take();
    }
}

impl<'r, 'e> InitCx<'r, 'e> {
    /// The namespace's data range: (first pfn, pages).
    pub fn data(&self) -> (u64, u64) {
        let p = &self.run.engine.plans[self.ni];
        (p.data_start, p.data_pages)
    }

    /// Pages per compound page (1 without): units never split one.
    pub fn align(&self) -> u64 {
        self.run.engine.plans[self.ni]
            .compound
            .map_or(1, |(o, _)| 1u64 << o)
    }

    /// The strategy's unit (`--chunk-pages`, a section by default), whole compound pages.
    pub fn chunk(&self) -> u64 {
        let a = self.align();
        self.params().chunk_pages.max(1).div_ceil(a) * a
    }

    pub fn params(&self) -> &StrategyParams {
        &self.run.engine.opts.params
    }

    /// Nanoseconds since the repeat started.
    pub fn now(&self) -> u64 {
        ns_since(self.t0)
    }

    /// Record a phase of this namespace from `start_ns` to now.
    pub fn phase(&self, name: &str, start_ns: u64) {
        self.run.phase(name, self.ni, start_ns, self.now());
    }

    /// `mem_hotplug_done()`: other namespaces may populate from here on.
    pub fn release_hotplug_lock(&mut self) {
        self.hotplug.borrow_mut().take();
    }

    /// williams-async: the namespace's lanes (one per init thread).
    pub fn lanes(&self) -> usize {
        self.run.ns[self.ni].lanes.len()
    }

    /// The probe task itself as a worker.
    pub fn probe_worker(&mut self) -> Worker<'_, 'e> {
        Worker {
            run: self.run,
            ni: self.ni,
            ctx: Ctx::Probe(self.probe),
            w: self.run.writer(self.ni),
            hotplug: Some(&self.hotplug),
        }
    }

    /// Run `f(i, worker)` for i in 0..count on threads of their own, the caller waiting;
    /// with `caller_too` the probe task itself is worker 0 (padata's calling task).
    pub fn workers(
        &mut self,
        count: usize,
        caller_too: bool,
        prefix: &str,
        f: &(dyn Fn(usize, &mut Worker) + Sync),
    ) {
        let (run, ni, t0) = (self.run, self.ni, self.t0);
        let name = &run.engine.plans[ni].name;
        let first = usize::from(caller_too);
        std::thread::scope(|s| {
            for i in first..count {
                s.spawn(move || {
                    let ctx =
                        run.register(format!("{prefix}/{name}/{i}"), ThreadRole::Init, ni, t0);
                    let mut w = Worker {
                        run,
                        ni,
                        ctx: Ctx::Own(ctx),
                        w: run.writer(ni),
                        hotplug: None,
                    };
                    f(i, &mut w);
                    if let Ctx::Own(ctx) = w.ctx {
                        ctx.finish(run, None, Vec::new(), 0, 0);
                    }
                });
            }
            if caller_too && count > 0 {
                f(0, &mut self.probe_worker());
            }
        });
    }
}

impl Worker<'_, '_> {
    /// Nanoseconds since the repeat started.
    pub fn now(&self) -> u64 {
        match &self.ctx {
            Ctx::Probe(c) => ns_since(c.t0),
            Ctx::Own(c) => ns_since(c.t0),
        }
    }

    /// `mem_hotplug_done()` from the probe task while it keeps its writer (and its
    /// place in a reused window).
    pub fn release_hotplug_lock(&mut self) {
        if let Some(h) = self.hotplug {
            h.release();
        }
    }

    /// Initialise [pfn, pfn+n) as one unit: the era's records, progress.
    pub fn init(&mut self, pfn: u64, n: u64) {
        let (run, ni) = (self.run, self.ni);
        let Worker { ctx, w, .. } = self;
        let ctx = match ctx {
            Ctx::Probe(c) => &mut **c,
            Ctx::Own(c) => c,
        };
        run.init_unit(ctx, w, ni, pfn, n, SpanKind::Init);
    }

    /// [start, start+pages) in units of `chunk` pages.
    pub fn init_chunks(&mut self, start: u64, pages: u64, chunk: u64) {
        for (s, n) in chunks(start, pages, chunk) {
            self.init(s, n);
        }
    }

    /// The pre-4.20 second pass over [start, start+pages), in units of `chunk`.
    pub fn pgmap_pass_chunks(&mut self, start: u64, pages: u64, chunk: u64) {
        let st = &self.run.ns[self.ni];
        for (s, n) in chunks(start, pages, chunk) {
            let Worker { ctx, w, .. } = self;
            let ctx = match ctx {
                Ctx::Probe(c) => &mut **c,
                Ctx::Own(c) => c,
            };
            ctx.span(SpanKind::PgmapPass, s, n, || w.pgmap_pass(s, n, st));
        }
    }

    /// Where the next record goes in a reused window (None without one).
    pub fn window_mark(&self) -> Option<u64> {
        self.w.window.as_ref().map(|c| c.pos)
    }

    /// Go back to a [`Worker::window_mark`] (a second pass over the same slots).
    pub fn rewind(&mut self, mark: Option<u64>) {
        if let (Some(c), Some(pos)) = (self.w.window.as_mut(), mark) {
            c.pos = pos;
        }
    }

    /// williams-async: sub-ranges of lane `li`.
    pub fn lane_subranges(&self, li: usize) -> usize {
        self.run.ns[self.ni].lanes[li].pending.len()
    }

    /// williams-async: initialise sub-range `r` of lane `li` unless a fault took it.
    pub fn init_subrange(&mut self, li: usize, r: usize) {
        let (run, ni) = (self.run, self.ni);
        let Worker { ctx, w, .. } = self;
        let ctx = match ctx {
            Ctx::Probe(c) => &mut **c,
            Ctx::Own(c) => c,
        };
        run.init_subrange(ctx, w, ni, li, r, SpanKind::Init);
    }

    /// williams-async: this lane's thread is done.
    pub fn lane_done(&mut self) {
        self.run.ns[self.ni]
            .lanes_active
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl RepeatRun<'_> {
    /// Initialise [pfn, pfn+n) as one unit: records, progress.
    fn init_unit(
        &self,
        ctx: &mut ThreadCtx,
        w: &mut Writer,
        ni: usize,
        pfn: u64,
        n: u64,
        kind: SpanKind,
    ) {
        let st = &self.ns[ni];
        st.init_start_ns
            .fetch_min(ns_since(ctx.t0), Ordering::Relaxed);
        let written = ctx.span(kind, pfn, n, || w.init(pfn, n, st));
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
        let guard = strat
            .populate_under_hotplug_lock()
            .then(|| hotplug.lock().unwrap());
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
        if let Some((a, n)) = plan.altmap_init {
            // move_pfn_range_to_zone: the altmap's own pfns, still under the hotplug lock.
            let t = ns_since(t0);
            let mut w = self.writer(ni);
            ctx.span(SpanKind::Init, a, n, || w.init_altmap(a, n, st));
            st.altmap_records_written.fetch_add(n, Ordering::Relaxed);
            self.phase("altmap-init", ni, t, ns_since(t0));
        }
        let init0 = ns_since(t0);
        let mut cx = InitCx {
            run: self,
            ni,
            t0,
            probe: &mut ctx,
            hotplug: RefCell::new(guard),
        };
        strat.init_namespace(&mut cx);
        drop(cx);
        let init1 = ns_since(t0);
        self.phase("init", ni, init0, init1);
        st.complete_ns.store(init1, Ordering::Release);
        st.complete.store(true, Ordering::Release);
        if !strat.is_async() {
            st.available_ns.store(init1, Ordering::Release);
            st.available.store(true, Ordering::Release);
        }
        ctx.finish(self, None, Vec::new(), 0, 0);
        Ok(())
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
