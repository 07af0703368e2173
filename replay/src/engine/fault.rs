//! Emulated application faults: fault threads start when their namespace is
//! available and touch pages by pattern; a touch first makes the struct pages of its
//! page ready (`memmap_sync` for williams-async, else wait for the namespace to be
//! complete), then reads the struct page as the fault path would. The stall is the
//! time from the touch to the struct pages being ready.

use super::repeat::{ns_since, RepeatRun, ThreadCtx};
use super::writer::Writer;
use crate::faults::{FaultPicker, UnknownPattern};
use memmap_model::hist::new_histogram;
use memmap_model::run::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MAX_FAULT_SAMPLES: usize = 20_000;

impl RepeatRun<'_> {
    /// What a first touch of [pfn, pfn+n) waits for before its struct pages may be used.
    fn memmap_sync(&self, ctx: &mut ThreadCtx, w: &mut Writer, ni: usize, pfn: u64, n: u64) {
        let st = &self.ns[ni];
        if st.complete.load(Ordering::Acquire) {
            return;
        }
        if !self.engine.opts.strategy.is_async() {
            while !st.complete.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(20));
            }
            return;
        }
        if st.lanes_active.load(Ordering::Acquire) == 0 {
            return;
        }
        while !st.populated.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(20));
        }
        let end = pfn + n;
        for (li, lane) in st.lanes.iter().enumerate() {
            let (ls, le) = (lane.start, lane.start + lane.pages);
            if le <= pfn || ls >= end {
                continue;
            }
            let a = pfn.max(ls);
            let b = end.min(le);
            let first = ((a - ls) / lane.range_size) as usize;
            let last = ((b - 1 - ls) / lane.range_size) as usize;
            for r in first..=last {
                self.init_subrange(ctx, w, ni, li, r, SpanKind::Steal);
            }
        }
    }

    /// One fault thread of namespace `ni`: waits until the namespace is available, then
    /// touches `touches_per_thread` fault-sized units as the pattern picks them.
    pub(super) fn fault_thread(&self, ni: usize, f: u32, t0: Instant) {
        let e = self.engine;
        let plan = &e.plans[ni];
        let fc = &e.opts.faults;
        let st = &self.ns[ni];
        let fault_pages = (fc.fault_bytes / 4096).max(1);
        while !st.available.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(20));
        }
        let mut ctx = self.register(
            format!("fault/{}/{f}", plan.name),
            ThreadRole::Fault,
            ni,
            t0,
        );
        let mut w = self.writer(ni);
        let mut hist = new_histogram();
        let mut samples = Vec::new();
        let mut seen = 0u64;
        let mut uninit = 0u64;
        let units = plan.data_pages / fault_pages;
        let mut picker = match self.fault_picker(ni, f, units, fault_pages) {
            Ok(p) => p,
            Err(_) => return ctx.finish(self, Some(hist), samples, 0, 0),
        };
        let keep =
            MAX_FAULT_SAMPLES / e.plans.len().max(1) / fc.threads_per_namespace.max(1) as usize;
        let mut rng_state = fc.seed ^ 0x5851_f42d_4c95_7f2d ^ f as u64;
        for _ in 0..fc.touches_per_thread {
            if st.failed.load(Ordering::Acquire) {
                break;
            }
            let Some(u) = picker.next_unit() else { break };
            let pfn = plan.data_start + u * fault_pages;
            let t = ns_since(t0);
            self.memmap_sync(&mut ctx, &mut w, ni, pfn, fault_pages);
            let stall = ns_since(t0) - t;
            if stall > 2_000 {
                ctx.spans.push(Span {
                    start_ns: t,
                    end_ns: t + stall,
                    kind: SpanKind::Stall,
                    start_pfn: pfn,
                    pages: fault_pages,
                });
            }
            // Use the struct page as the fault path would (pfn_to_page, pgmap check).
            if e.window.is_none() && !self.record_ready(ni, pfn) {
                uninit += 1;
            }
            let _ = hist.record(stall.max(1));
            seen += 1;
            let sample = FaultSample {
                t_ns: t,
                thread: ctx.slot.id,
                pfn,
                stall_ns: stall,
            };
            keep_sample(&mut samples, keep, sample, seen, &mut rng_state);
            think(fc.think_ns);
        }
        ctx.finish(self, Some(hist), samples, seen, uninit);
    }

    /// The pattern's picker for fault thread `f`: the trace's recorded faults, or the
    /// configured pattern seeded per namespace.
    fn fault_picker(
        &self,
        ni: usize,
        f: u32,
        units: u64,
        fault_pages: u64,
    ) -> Result<FaultPicker, UnknownPattern> {
        let e = self.engine;
        let fc = &e.opts.faults;
        if fc.pattern == "trace" {
            Ok(FaultPicker::recorded(
                e.opts.recorded_faults.clone(),
                units,
                fault_pages,
                f,
                fc.threads_per_namespace,
            ))
        } else {
            FaultPicker::new(
                &fc.pattern,
                units,
                f,
                fc.threads_per_namespace,
                fc.seed.wrapping_add(ni as u64 * 1000),
                fc.zipf_exponent,
            )
        }
    }

    /// The struct page of `pfn` (or its compound head) holds the expected flags and pgmap.
    fn record_ready(&self, ni: usize, pfn: u64) -> bool {
        let plan = &self.engine.plans[ni];
        let w = self.engine.writer(plan, None);
        let (pfn, n) = match plan.compound {
            Some((order, _)) => (pfn >> order << order, 1),
            None => (pfn, 1),
        };
        let ready = w.records(pfn, n, false).all(|(_, got, want)| got == want);
        ready
    }
}

/// Reservoir sampling keeps a uniform subset when there are too many faults: the first
/// `keep` samples, then the `seen`-th replaces a random kept one with probability keep/seen.
fn keep_sample(
    samples: &mut Vec<FaultSample>,
    keep: usize,
    sample: FaultSample,
    seen: u64,
    rng_state: &mut u64,
) {
    if samples.len() < keep {
        samples.push(sample);
    } else {
        *rng_state ^= *rng_state << 13;
        *rng_state ^= *rng_state >> 7;
        *rng_state ^= *rng_state << 17;
        let j = (*rng_state % seen) as usize;
        if j < samples.len() {
            samples[j] = sample;
        }
    }
}

/// The application's think time between touches, spent spinning.
fn think(think_ns: u64) {
    if think_ns > 0 {
        let until = Instant::now() + Duration::from_nanos(think_ns);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}
