//! The state one repeat's threads share: per-namespace progress flags and timestamps,
//! williams-async lanes, the pageblock bitmap, the registered threads and what they
//! hand in, and the progress sampler.

use super::plan::NsPlan;
use super::writer::Writer;
use super::{align_up, Engine};
use crate::counters::ThreadCounters;
use crate::page_init::{Pageblocks, PgmapRef};
use crate::strategy;
use memmap_model::run::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many progress samples are kept per thread; the sampler halves its
/// rate (and the kept series) when it gets there.
const MAX_SAMPLES_PER_THREAD: usize = 2000;

/// Per-namespace state shared by the threads of one repeat.
pub(super) struct NsState {
    pub(super) available: AtomicBool,
    pub(super) available_ns: AtomicU64,
    pub(super) populated: AtomicBool,
    pub(super) populate_start_ns: AtomicU64,
    pub(super) populate_end_ns: AtomicU64,
    pub(super) complete: AtomicBool,
    pub(super) complete_ns: AtomicU64,
    pub(super) init_start_ns: AtomicU64,
    pub(super) failed: AtomicBool,
    pub(super) records_written: AtomicU64,
    /// Records of the altmap's own pfns (not in `records_written`).
    pub(super) altmap_records_written: AtomicU64,
    /// williams-async lanes (one per init thread).
    pub(super) lanes: Vec<Lane>,
    pub(super) lanes_active: AtomicUsize,
    pub(super) pageblocks: Pageblocks,
    /// The namespace's `dev_pagemap->ref` (pre-4.20 eras take it per page).
    pub(super) pgmap_ref: PgmapRef,
}

impl NsState {
    pub(super) fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        self.available.store(true, Ordering::Release);
        self.complete.store(true, Ordering::Release);
    }
}

/// One williams-async init thread's range: NR_MEMMAP_RANGE sub-ranges, a pending
/// bitmap, and the mutex held while a sub-range is initialised (seed 003 patch 06: one
/// mutex per thread; `--sync-lock sub-range` gives each sub-range its own).
pub(super) struct Lane {
    pub(super) start: u64,
    pub(super) pages: u64,
    pub(super) range_size: u64,
    pub(super) pending: Vec<AtomicBool>,
    /// parking_lot's mutex so a release can hand the lock to a waiter (`unlock_fair`),
    /// as the kernel mutex does with MUTEX_FLAG_HANDOFF; std's would let the init thread
    /// re-take it for its next sub-range and starve a faulting thread for the whole range.
    pub(super) locks: Vec<parking_lot::Mutex<()>>,
}

/// A thread of the repeat as the progress sampler sees it: who it is, pages done.
pub(super) struct ThreadSlot {
    pub(super) id: u32,
    pub(super) name: String,
    pub(super) role: ThreadRole,
    pub(super) ns: usize,
    pub(super) pages: AtomicU64,
}

/// What a thread hands in when it ends.
pub(super) struct ThreadResult {
    pub(super) id: u32,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) spans: Vec<Span>,
    pub(super) counters: Counters,
    pub(super) hist: Option<hdrhistogram::Histogram<u64>>,
    pub(super) samples: Vec<FaultSample>,
    pub(super) seen_faults: u64,
    pub(super) uninitialised: u64,
}

/// One repeat while it runs: per-namespace state, the threads, their results, the phases.
pub(super) struct RepeatRun<'e> {
    pub(super) engine: &'e Engine,
    pub(super) ns: Vec<NsState>,
    pub(super) slots: Mutex<Vec<Arc<ThreadSlot>>>,
    pub(super) results: Mutex<Vec<ThreadResult>>,
    pub(super) phases: Mutex<Vec<Phase>>,
    pub(super) next_slice: AtomicU64,
}

pub(super) fn ns_since(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Per-thread bookkeeping while it runs.
pub(super) struct ThreadCtx {
    pub(super) slot: Arc<ThreadSlot>,
    pub(super) start_ns: u64,
    pub(super) spans: Vec<Span>,
    pub(super) counters: ThreadCounters,
    pub(super) t0: Instant,
}

impl ThreadCtx {
    pub(super) fn span<T>(
        &mut self,
        kind: SpanKind,
        pfn: u64,
        pages: u64,
        f: impl FnOnce() -> T,
    ) -> T {
        let s = ns_since(self.t0);
        let r = f();
        self.spans.push(Span {
            start_ns: s,
            end_ns: ns_since(self.t0),
            kind,
            start_pfn: pfn,
            pages,
        });
        r
    }

    pub(super) fn finish(
        self,
        run: &RepeatRun,
        hist: Option<hdrhistogram::Histogram<u64>>,
        samples: Vec<FaultSample>,
        seen: u64,
        uninit: u64,
    ) {
        let res = ThreadResult {
            id: self.slot.id,
            start_ns: self.start_ns,
            end_ns: ns_since(self.t0),
            spans: self.spans,
            counters: self.counters.stop(),
            hist,
            samples,
            seen_faults: seen,
            uninitialised: uninit,
        };
        run.results.lock().unwrap().push(res);
    }
}

impl<'e> RepeatRun<'e> {
    pub(super) fn new(engine: &'e Engine) -> RepeatRun<'e> {
        let ns = engine
            .plans
            .iter()
            .map(|plan| NsState::new(plan, Lane::split(engine, plan)))
            .collect();
        RepeatRun {
            engine,
            ns,
            slots: Mutex::new(Vec::new()),
            results: Mutex::new(Vec::new()),
            phases: Mutex::new(Vec::new()),
            next_slice: AtomicU64::new(0),
        }
    }

    pub(super) fn register(
        &self,
        name: String,
        role: ThreadRole,
        ns: usize,
        t0: Instant,
    ) -> ThreadCtx {
        let mut slots = self.slots.lock().unwrap();
        let slot = Arc::new(ThreadSlot {
            id: slots.len() as u32,
            name,
            role,
            ns,
            pages: AtomicU64::new(0),
        });
        slots.push(slot.clone());
        drop(slots);
        ThreadCtx {
            slot,
            start_ns: ns_since(t0),
            spans: Vec::new(),
            counters: ThreadCounters::start(),
            t0,
        }
    }

    pub(super) fn writer(&self, ni: usize) -> Writer<'_> {
        let slice = self
            .engine
            .window
            .as_ref()
            .map(|_| self.next_slice.fetch_add(1, Ordering::Relaxed) % self.engine.slices);
        self.engine.writer(&self.engine.plans[ni], slice)
    }

    pub(super) fn phase(&self, name: &str, ni: usize, start_ns: u64, end_ns: u64) {
        self.phases.lock().unwrap().push(Phase {
            name: name.into(),
            namespace: self.engine.plans[ni].name.clone(),
            start_ns,
            end_ns,
        });
    }

    pub(super) fn sample_progress(
        &self,
        t0: Instant,
        stop: &AtomicBool,
    ) -> Vec<(u32, Vec<(u64, u64)>)> {
        let mut series: Vec<(u32, Vec<(u64, u64)>)> = Vec::new();
        let mut interval = Duration::from_micros(500);
        loop {
            let done = stop.load(Ordering::Acquire);
            let now = ns_since(t0);
            let slots: Vec<Arc<ThreadSlot>> = self.slots.lock().unwrap().clone();
            for s in slots {
                if series.len() <= s.id as usize {
                    series.resize_with(s.id as usize + 1, || (0, Vec::new()));
                }
                let e = &mut series[s.id as usize];
                e.0 = s.id;
                e.1.push((now, s.pages.load(Ordering::Relaxed)));
            }
            if series.iter().any(|s| s.1.len() >= MAX_SAMPLES_PER_THREAD) {
                for s in &mut series {
                    let kept: Vec<_> = s.1.iter().copied().step_by(2).collect();
                    s.1 = kept;
                }
                interval *= 2;
            }
            if done {
                return series;
            }
            std::thread::sleep(interval);
        }
    }
}

impl NsState {
    fn new(plan: &NsPlan, lanes: Vec<Lane>) -> NsState {
        NsState {
            available: AtomicBool::new(false),
            available_ns: AtomicU64::new(0),
            populated: AtomicBool::new(false),
            populate_start_ns: AtomicU64::new(0),
            populate_end_ns: AtomicU64::new(0),
            complete: AtomicBool::new(false),
            complete_ns: AtomicU64::new(0),
            init_start_ns: AtomicU64::new(u64::MAX),
            failed: AtomicBool::new(false),
            records_written: AtomicU64::new(0),
            altmap_records_written: AtomicU64::new(0),
            lanes_active: AtomicUsize::new(lanes.len()),
            lanes,
            pageblocks: {
                // From the altmap's pfns (initialised first) to the end of the data.
                let first = plan
                    .altmap_init
                    .map_or(plan.data_start, |(a, _)| a.min(plan.data_start));
                Pageblocks::new(
                    first,
                    plan.data_start + plan.data_pages - first,
                    plan.layout.params.pageblock_pages,
                )
            },
            pgmap_ref: PgmapRef::new(plan.pgmap_ref_atomic),
        }
    }
}

impl Lane {
    /// williams-async: the namespace in equal thread ranges, each cut into
    /// `sub_ranges` sub-ranges with their pending flags and locks; none for the
    /// other strategies.
    fn split(engine: &Engine, plan: &NsPlan) -> Vec<Lane> {
        let p = &engine.opts.params;
        let align = plan.compound.map(|(o, _)| 1u64 << o).unwrap_or(1);
        if !engine.opts.strategy.is_async() {
            return Vec::new();
        }
        strategy::equal_split(plan.data_start, plan.data_pages, p.threads as u64, align)
            .into_iter()
            .map(|(start, pages)| {
                let nr = p.sub_ranges.max(1) as u64;
                let range_size = align_up(pages.div_ceil(nr), align);
                let nr_ranges = pages.div_ceil(range_size) as usize;
                let nr_locks = match p.sync_lock {
                    SyncLock::Thread => 1,
                    SyncLock::SubRange => nr_ranges,
                };
                Lane {
                    start,
                    pages,
                    range_size,
                    pending: (0..nr_ranges).map(|_| AtomicBool::new(true)).collect(),
                    locks: (0..nr_locks).map(|_| parking_lot::Mutex::new(())).collect(),
                }
            })
            .collect()
    }
}
