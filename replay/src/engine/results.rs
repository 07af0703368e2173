//! The end of a repeat: what the threads handed in, their progress series and the
//! per-namespace timestamps become the run file's `Repeat` (thread records, stall
//! histograms and samples, namespace timings, metrics).

use super::repeat::{NsState, RepeatRun, ThreadResult, ThreadSlot};
use super::Engine;
use crate::struct_page::RECORD_BYTES;
use memmap_model::hist::{new_histogram, StoredHistogram};
use memmap_model::run::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The fault threads' stalls and samples, merged.
struct FaultTotals {
    merged: hdrhistogram::Histogram<u64>,
    per_thread: Vec<(u32, StoredHistogram)>,
    samples: Vec<FaultSample>,
    faults: u64,
    uninit: u64,
    dropped: u64,
}

impl RepeatRun<'_> {
    pub(super) fn finish(
        self,
        engine: &Engine,
        index: u32,
        started_unix_s: f64,
        samples: Vec<(u32, Vec<(u64, u64)>)>,
        roofline: Roofline,
        verify: Option<VerifyResult>,
    ) -> Repeat {
        let slots = self.slots.into_inner().unwrap();
        let mut results = self.results.into_inner().unwrap();
        results.sort_by_key(|r| r.id);
        let (threads, totals) = thread_records(engine, &slots, results, &samples);
        let namespaces = namespace_timings(engine, &self.ns);
        let init_start = self
            .ns
            .iter()
            .map(|s| s.init_start_ns.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        let stall = StoredHistogram::from_histogram(&totals.merged);
        let metrics = metrics(&namespaces, init_start, &totals, &stall, &roofline);
        let mut phases = self.phases.into_inner().unwrap();
        phases.sort_by_key(|p| p.start_ns);
        Repeat {
            index,
            started_unix_s,
            metrics,
            namespaces,
            phases,
            threads,
            stalls: StallData {
                merged: stall,
                per_thread: totals.per_thread,
                samples: totals.samples,
                samples_dropped: totals.dropped,
            },
            roofline,
            verify,
        }
    }
}

/// One record per thread (in id order) with its progress series, and the fault
/// threads' histograms and samples merged.
fn thread_records(
    engine: &Engine,
    slots: &[Arc<ThreadSlot>],
    results: Vec<ThreadResult>,
    samples: &[(u32, Vec<(u64, u64)>)],
) -> (Vec<ThreadRecord>, FaultTotals) {
    let mut merged = new_histogram();
    let mut per_thread = Vec::new();
    let mut fault_samples = Vec::new();
    let mut faults = 0;
    let mut uninit = 0;
    let mut threads = Vec::new();
    let mut dropped = 0;
    for r in results {
        let slot = &slots[r.id as usize];
        if let Some(h) = &r.hist {
            merged.add(h).expect("same bounds");
            per_thread.push((r.id, StoredHistogram::from_histogram(h)));
            dropped += r.seen_faults.saturating_sub(r.samples.len() as u64);
        }
        faults += r.seen_faults;
        uninit += r.uninitialised;
        fault_samples.extend(r.samples);
        let busy_ns = r
            .spans
            .iter()
            .filter(|s| s.kind != SpanKind::Stall)
            .map(|s| s.end_ns - s.start_ns)
            .sum();
        threads.push(ThreadRecord {
            id: r.id,
            name: slot.name.clone(),
            role: slot.role,
            namespace: engine.plans[slot.ns].name.clone(),
            start_ns: r.start_ns,
            end_ns: r.end_ns,
            busy_ns,
            pages_done: slot.pages.load(Ordering::Relaxed),
            progress: samples
                .iter()
                .find(|s| s.0 == r.id)
                .map(|s| s.1.clone())
                .unwrap_or_default(),
            spans: r.spans,
            counters: r.counters,
        });
    }
    fault_samples.sort_by_key(|s| s.t_ns);
    let totals = FaultTotals {
        merged,
        per_thread,
        samples: fault_samples,
        faults,
        uninit,
        dropped,
    };
    (threads, totals)
}

/// Populate, availability and completion times and records written, per namespace.
fn namespace_timings(engine: &Engine, ns: &[NsState]) -> Vec<NamespaceTiming> {
    let mut namespaces = Vec::new();
    for (i, p) in engine.plans.iter().enumerate() {
        let st = &ns[i];
        let recs = st.records_written.load(Ordering::Relaxed);
        namespaces.push(NamespaceTiming {
            name: p.name.clone(),
            populate_start_ns: st.populate_start_ns.load(Ordering::Relaxed),
            populate_end_ns: st.populate_end_ns.load(Ordering::Relaxed),
            available_ns: st.available_ns.load(Ordering::Relaxed),
            complete_ns: st.complete_ns.load(Ordering::Relaxed),
            data_pages: p.data_pages,
            struct_pages_written: recs,
            bytes_written: recs * RECORD_BYTES as u64,
        });
    }
    namespaces
}

/// The repeat's metrics: init time from the first init unit to the last namespace
/// complete, bandwidth, stalls, and the ratios to the same-run roofline.
fn metrics(
    namespaces: &[NamespaceTiming],
    init_start: u64,
    totals: &FaultTotals,
    stall: &StoredHistogram,
    roofline: &Roofline,
) -> Metrics {
    let complete = namespaces.iter().map(|n| n.complete_ns).max().unwrap_or(0);
    let init_ns = complete.saturating_sub(init_start).max(1);
    let bytes: u64 = namespaces.iter().map(|n| n.bytes_written).sum();
    let bps = bytes as f64 / (init_ns as f64 / 1e9);
    Metrics {
        time_to_available_ns: namespaces.iter().map(|n| n.available_ns).max().unwrap_or(0),
        time_to_complete_ns: complete,
        populate_ns: namespaces
            .iter()
            .map(|n| n.populate_end_ns - n.populate_start_ns)
            .sum(),
        init_ns,
        struct_pages_written: bytes / RECORD_BYTES as u64,
        memmap_bytes_written: bytes,
        memmap_bytes_per_s: bps,
        faults: totals.faults,
        stall_p50_ns: stall.p50_ns,
        stall_p99_ns: stall.p99_ns,
        stall_max_ns: stall.max_ns,
        fraction_of_nt_roofline: bps / roofline.non_temporal_bytes_per_s,
        engine_efficiency: roofline.bare_same_store_ns as f64 / init_ns as f64,
        uninitialised_reads: totals.uninit,
    }
}
