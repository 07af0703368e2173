//! The replay engine: lays the memmap of every namespace into the target, then
//! runs phase 1 (vmemmap populate) and phase 2 (struct-page init) the way the
//! chosen strategy does, with emulated application faults, and measures it.

use crate::counters::ThreadCounters;
use crate::faults::FaultPicker;
use crate::record::{self, PageClass, RECORD_BYTES};
use crate::strategy::{self, Strategy};
use crate::target::Target;
use memmap_model::hist::{new_histogram, StoredHistogram};
use memmap_model::layout::{PageKind, RangeLayout, VmemmapBacking};
use memmap_model::run::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many progress samples are kept per thread; the sampler halves its
/// rate (and the kept series) when it gets there.
const MAX_SAMPLES_PER_THREAD: usize = 2000;
const MAX_FAULT_SAMPLES: usize = 20_000;

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub strategy: Strategy,
    pub params: StrategyParams,
    pub faults: FaultConfig,
    pub verify: bool,
    /// Faults of a trace as 4 KiB page offsets (pattern "trace").
    pub recorded_faults: Arc<Vec<u64>>,
}

/// Where the struct pages of one namespace live inside the target.
#[derive(Clone, Debug)]
enum Placement {
    /// Contiguous pfn runs at target offsets (from the layout's vmemmap blocks).
    Segments(Vec<Segment>),
    /// Compound pages with tail vmemmap reuse: compound c's unique records at
    /// `off + c * per * 64`.
    Compound {
        off: u64,
        first_pfn: u64,
        order: u32,
        per: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    first_pfn: u64,
    nr_pfns: u64,
    off: u64,
}

/// Everything fixed about one namespace for the whole run.
pub struct NsPlan {
    pub name: String,
    pub layout: RangeLayout,
    class: PageClass,
    flags: u64,
    /// (order, struct pages written per compound page) when compound pages are used.
    compound: Option<(u32, u64)>,
    pub data_start: u64,
    pub data_pages: u64,
    placement: Placement,
    /// Target extents of this namespace's memmap (for populate / discard).
    extents: Vec<(u64, u64)>,
    pub struct_pages_written: u64,
    pageblock_base: u64,
    pageblock_words: usize,
}

/// The whole prepared run: plans plus the mapped target.
pub struct Engine {
    pub opts: EngineOptions,
    pub plans: Vec<NsPlan>,
    pub target: Target,
    pub window: Option<WindowInfo>,
    /// Number of writer slices in window mode.
    slices: u64,
    pub notes: Vec<String>,
}

/// Bytes of target needed to hold every namespace's memmap in full.
pub fn full_memmap_bytes(layouts: &[RangeLayout], strategy: Strategy) -> u64 {
    plan_namespaces(layouts, strategy, RecordFlavor::DeviceData)
        .map(|(_, total)| total)
        .unwrap_or(0)
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

const BLOCK: u64 = 2 << 20;

fn plan_namespaces(
    layouts: &[RangeLayout],
    strategy: Strategy,
    flavor: RecordFlavor,
) -> anyhow::Result<(Vec<NsPlan>, u64)> {
    let mut plans = Vec::new();
    let mut next_off = 0u64;
    for (i, l) in layouts.iter().enumerate() {
        let class = match l.kind {
            PageKind::ZoneDevice => PageClass::Device {
                pgmap: record::PGMAP_BASE + i as u64 * 0x1000,
                flavor,
            },
            PageKind::SystemRam => PageClass::SystemRam,
        };
        let zone = match l.kind {
            PageKind::ZoneDevice => record::ZONE_DEVICE,
            PageKind::SystemRam => record::ZONE_NORMAL,
        };
        let flags = record::base_flags(zone, l.node);
        let compound = if strategy.uses_compound() && l.compound_order > 0 {
            Some((l.compound_order, l.struct_pages_per_compound))
        } else {
            None
        };
        let base = next_off;
        let (placement, extents, used) = match compound {
            Some((order, per)) if per < (1u64 << order) => {
                let ncomp = l.data_pages >> order;
                let len = align_up(ncomp * per * RECORD_BYTES as u64, BLOCK);
                (
                    Placement::Compound {
                        off: base,
                        first_pfn: l.data_start_pfn,
                        order,
                        per,
                    },
                    vec![(base, len)],
                    len,
                )
            }
            _ => {
                // Device (altmap) blocks sit at their device offsets inside an area that
                // stands for the namespace's first bytes. RAM-backed struct pages (map=mem,
                // partial sections' base pages, memmap_on_memory) follow, one 2 MiB slot per
                // vmemmap PMD block holding them, at the struct page's offset in that block.
                let pmd_pfns = BLOCK / RECORD_BYTES as u64;
                let dev_len = l
                    .vmemmap_blocks
                    .iter()
                    .filter_map(|b| match b.backing {
                        VmemmapBacking::Altmap {
                            device_offset_bytes,
                        } => Some(device_offset_bytes + b.bytes),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                let dev_len = align_up(dev_len, BLOCK);
                let ram_base = base + dev_len;
                // RAM-backed 2 MiB vmemmap blocks get slots in order of appearance, so an
                // altmap namespace's few RAM blocks (partial sections) take a few slots
                // rather than the whole vmemmap span.
                let mut ram_slots: Vec<u64> = Vec::new();
                let mut segs = Vec::new();
                let mut extents: Vec<(u64, u64)> = Vec::new();
                for b in l.vmemmap_blocks.iter().filter(|b| b.nr_pfns > 0) {
                    let off = match b.backing {
                        VmemmapBacking::Altmap { .. } => {
                            let (_, o) = l.memmap_offset_of(b.first_pfn).ok_or_else(|| {
                                anyhow::anyhow!("{}: pfn {:#x} has no memmap", l.name, b.first_pfn)
                            })?;
                            base + o
                        }
                        _ => {
                            let block = b.first_pfn / pmd_pfns;
                            anyhow::ensure!(
                                (b.first_pfn + b.nr_pfns - 1) / pmd_pfns == block,
                                "{}: RAM vmemmap block at pfn {:#x} crosses a 2 MiB vmemmap block",
                                l.name,
                                b.first_pfn
                            );
                            let slot = match ram_slots.iter().position(|&x| x == block) {
                                Some(i) => i,
                                None => {
                                    ram_slots.push(block);
                                    ram_slots.len() - 1
                                }
                            } as u64;
                            ram_base + slot * BLOCK + (b.first_pfn % pmd_pfns) * RECORD_BYTES as u64
                        }
                    };
                    segs.push(Segment {
                        first_pfn: b.first_pfn,
                        nr_pfns: b.nr_pfns,
                        off,
                    });
                    // Populate whole pages (2 MiB blocks for PMD mappings).
                    let unit = if b.bytes >= BLOCK { BLOCK } else { 4096 };
                    let a = off - (off - base) % unit;
                    let e = align_up(off + b.nr_pfns * RECORD_BYTES as u64 - base, unit) + base;
                    extents.push((a, e - a));
                }
                extents.sort_unstable();
                let mut merged: Vec<(u64, u64)> = Vec::new();
                for (a, n) in extents {
                    match merged.last_mut() {
                        Some(last) if last.0 + last.1 >= a => last.1 = last.1.max(a + n - last.0),
                        _ => merged.push((a, n)),
                    }
                }
                let extents = merged;
                let used = dev_len + ram_slots.len() as u64 * BLOCK;
                (Placement::Segments(segs), extents, used)
            }
        };
        // Hot-added RAM: online_pages initialises every pfn of the range, and with
        // memmap_on_memory mhp_init_memmap_on_memory also initialises the block's own
        // vmemmap pages (as pageblocks of their own; the replay marks them movable too).
        let (data_start, data_pages) = match l.kind {
            PageKind::SystemRam => (l.range_start_pfn, l.range_pages),
            PageKind::ZoneDevice => (l.data_start_pfn, l.data_pages),
        };
        let struct_pages_written = match compound {
            Some((order, per)) => (data_pages >> order) * per,
            None => data_pages,
        };
        let pb = l.params.pageblock_pages.max(1);
        let pageblock_base = data_start / pb * pb;
        let nblocks = (data_start + data_pages - pageblock_base).div_ceil(pb);
        plans.push(NsPlan {
            name: l.name.clone(),
            layout: l.clone(),
            class,
            flags,
            compound,
            data_start,
            data_pages,
            placement,
            extents,
            struct_pages_written,
            pageblock_base,
            // 4 bits per pageblock (NR_PAGEBLOCK_BITS), 16 per word.
            pageblock_words: nblocks.div_ceil(16) as usize,
        });
        next_off = base + used;
    }
    Ok((plans, next_off))
}

impl Engine {
    /// Plan every namespace into `target`. When `window` is set the target is
    /// smaller than the memmap and each writer thread stores round its own slice.
    pub fn new(
        opts: EngineOptions,
        layouts: &[RangeLayout],
        target: Target,
        window: Option<u64>,
    ) -> anyhow::Result<Engine> {
        let (plans, total) = plan_namespaces(layouts, opts.strategy, opts.params.record)?;
        for p in &plans {
            if let Some((order, _)) = p.compound {
                anyhow::ensure!(
                    p.data_start % (1 << order) == 0 && p.data_pages % (1 << order) == 0,
                    "{}: data range is not a whole number of order-{order} compound pages",
                    p.name
                );
            }
        }
        let mut notes = Vec::new();
        let writers = writer_count(&opts, plans.len());
        let (window_info, slices) = match window {
            None => {
                anyhow::ensure!(
                    target.len() >= total,
                    "target holds {} bytes but the memmap needs {total}",
                    target.len()
                );
                (None, 0)
            }
            Some(w) => {
                let slice = (w / writers / BLOCK) * BLOCK;
                anyhow::ensure!(
                    slice >= BLOCK,
                    "window of {w} bytes is too small for {writers} writer threads (needs 2 MiB each)"
                );
                notes.push(format!(
                    "memmap of {total} bytes does not fit: every writer thread stores round its own \
                     {slice}-byte slice of a {w}-byte window; write volume and store pattern are exact, \
                     pfn placement is not, phase 1 populates the window once"
                ));
                (
                    Some(WindowInfo {
                        window_bytes: w,
                        slice_bytes: slice,
                        full_memmap_bytes: total,
                        method: "per-writer reused window".into(),
                    }),
                    writers,
                )
            }
        };
        if opts.strategy.uses_compound() && !plans.iter().any(|p| p.compound.is_some()) {
            notes.push(format!(
                "{} uses compound pages only on devdax namespaces with align > 4K; none here, so it runs as a plain single pass",
                opts.strategy.name()
            ));
        }
        Ok(Engine {
            opts,
            plans,
            target,
            window: window_info,
            slices,
            notes,
        })
    }

    /// Run one repeat: roofline, cold start, then the strategy with its fault threads;
    /// verify after when asked. Ctrl-C is handled between repeats by the caller.
    pub fn run_repeat(&self, index: u32) -> anyhow::Result<Repeat> {
        let started_unix_s = unix_now();
        // The same-run roofline goes first, so the memmap this repeat writes is what the
        // target holds afterwards (for --verify and for anyone reading a file target).
        let roofline = self.roofline()?;
        // Start cold: give the memmap pages back so phase 1 really populates them.
        if self.window.is_none() {
            self.target.discard(0, self.target.len())?;
        } else {
            // The window stays populated; clear what the roofline stored so only records
            // of this run are there for the window check.
            unsafe { std::ptr::write_bytes(self.target.as_ptr(), 0, self.target.len() as usize) };
        }
        let run = RepeatRun::new(self);
        let t0 = Instant::now();
        let hotplug_lock = Mutex::new(());
        let sampler_stop = AtomicBool::new(false);
        let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let samples = std::thread::scope(|s| {
            let sampler = s.spawn(|| run.sample_progress(t0, &sampler_stop));
            let mut handles = Vec::new();
            for (ni, _) in self.plans.iter().enumerate() {
                let run = &run;
                let lock = &hotplug_lock;
                let error = &error;
                handles.push(s.spawn(move || {
                    if let Err(e) = run.probe(ni, t0, lock) {
                        error.lock().unwrap().get_or_insert(e);
                        run.ns[ni].fail();
                    }
                }));
                for f in 0..self.opts.faults.threads_per_namespace {
                    if self.opts.faults.pattern == "none" {
                        break;
                    }
                    handles.push(s.spawn(move || run.fault_thread(ni, f, t0)));
                }
            }
            for h in handles {
                let _ = h.join();
            }
            sampler_stop.store(true, Ordering::Release);
            sampler.join().expect("sampler thread")
        });
        if let Some(e) = error.lock().unwrap().take() {
            return Err(e);
        }
        let verify = if self.opts.verify {
            Some(self.verify(&run))
        } else {
            None
        };
        Ok(run.finish(self, index, started_unix_s, samples, roofline, verify))
    }

    fn writer<'a>(&'a self, plan: &'a NsPlan, slice: Option<u64>) -> Writer<'a> {
        Writer {
            base: self.target.as_ptr(),
            plan,
            store: self.opts.params.store,
            persist: self.target.info().persistent && self.opts.params.store == StoreKind::Regular,
            window: slice.map(|i| {
                let w = self.window.as_ref().expect("slice implies window");
                WindowCursor {
                    off: i * w.slice_bytes,
                    len: w.slice_bytes,
                    pos: 0,
                }
            }),
        }
    }

    /// Same-run roofline: sequential stores over the same bytes with the same
    /// threads, regular and non-temporal.
    fn roofline(&self) -> anyhow::Result<Roofline> {
        let threads = self.opts.params.threads.max(1) as u64;
        let bytes: u64 = self
            .plans
            .iter()
            .map(|p| p.struct_pages_written * RECORD_BYTES as u64)
            .sum();
        let span = self.target.len().min(align_up(bytes.max(BLOCK), BLOCK));
        let per_thread = (bytes / threads) / 64 * 64;
        let part = (span / threads) / 64 * 64;
        let base = self.target.as_ptr() as usize;
        let persistent = self.target.info().persistent;
        let measure = |kind: StoreKind| -> anyhow::Result<u64> {
            // Same state as phase 2 meets: freshly populated memory (cold start), unless
            // the memmap goes round a window that stays populated.
            if self.window.is_none() {
                self.target.discard(0, span)?;
            }
            self.target.populate(0, span)?;
            let t = Instant::now();
            std::thread::scope(|s| {
                for i in 0..threads {
                    s.spawn(move || {
                        let dst = (base + (i * part) as usize) as *mut u8;
                        let mut left = per_thread;
                        while left > 0 {
                            let n = left.min(part.max(64)) as usize;
                            unsafe {
                                record::bare_store(dst, n, kind);
                                if persistent && kind == StoreKind::Regular {
                                    crate::target::flush_range(dst, n);
                                }
                            }
                            left -= n as u64;
                        }
                    });
                }
            });
            Ok(t.elapsed().as_nanos() as u64)
        };
        let regular_ns = measure(StoreKind::Regular)?.max(1);
        let nt_ns = measure(StoreKind::NonTemporal)?.max(1);
        let same = match self.opts.params.store {
            StoreKind::Regular => regular_ns,
            StoreKind::NonTemporal => nt_ns,
        };
        let stored = (per_thread * threads) as f64;
        Ok(Roofline {
            threads: threads as u32,
            bytes: per_thread * threads,
            regular_bytes_per_s: stored / (regular_ns as f64 / 1e9),
            non_temporal_bytes_per_s: stored / (nt_ns as f64 / 1e9),
            bare_same_store_ns: same,
        })
    }

    /// Re-read every record (per-pfn) or every written slice (window) and check it.
    fn verify(&self, run: &RepeatRun) -> VerifyResult {
        let mut v = self.verify_records();
        let mut report = |msg: String| {
            v.errors += 1;
            if v.first_errors.len() < 10 {
                v.first_errors.push(msg);
            }
        };
        for (ni, p) in self.plans.iter().enumerate() {
            // Every record the layout needs was written exactly once.
            let written = run.ns[ni].records_written.load(Ordering::Acquire);
            if written != p.struct_pages_written {
                report(format!(
                    "{}: {written} records written, layout needs {}",
                    p.name, p.struct_pages_written
                ));
            }
            // Every pageblock of the data range is MIGRATE_MOVABLE.
            let pb = p.layout.params.pageblock_pages.max(1);
            let mut pfn = align_up(p.data_start, pb);
            while pfn < p.data_start + p.data_pages {
                if run.ns[ni].pageblock(p, pfn) != MIGRATE_MOVABLE {
                    report(format!(
                        "{}: pageblock of pfn {pfn:#x} not MIGRATE_MOVABLE",
                        p.name
                    ));
                }
                pfn += pb;
            }
        }
        v
    }

    /// Re-read the memmap in the target and check every record: per pfn against a
    /// record built field by field, or (reused window) every written slot against the
    /// records its namespace may hold.
    pub fn verify_records(&self) -> VerifyResult {
        let mut errors = 0u64;
        let mut first = Vec::new();
        let mut checked = 0u64;
        let mut report = |msg: String, errors: &mut u64| {
            *errors += 1;
            if first.len() < 10 {
                first.push(msg);
            }
        };
        let Some(w) = self.window.as_ref() else {
            for p in &self.plans {
                let w = self.writer(p, None);
                for (pfn, got, want) in w.records(p.data_start, p.data_pages) {
                    checked += 1;
                    if got != want {
                        let field = (0..8).find(|&k| got[k] != want[k]).unwrap_or(0);
                        report(
                            format!(
                                "{}: pfn {pfn:#x}: word {field} is {:#x}, expected {:#x}",
                                p.name, got[field], want[field]
                            ),
                            &mut errors,
                        );
                    }
                }
            }
            return VerifyResult {
                method: "per-pfn".into(),
                records_checked: checked,
                errors,
                first_errors: first,
            };
        };
        for slice in 0..self.slices {
            let base = unsafe { self.target.as_ptr().add((slice * w.slice_bytes) as usize) };
            let n = (w.slice_bytes / RECORD_BYTES as u64) as usize;
            let recs = unsafe { std::slice::from_raw_parts(base as *const [u64; 8], n) };
            for r in recs {
                if *r == [0u64; 8] {
                    continue; // slot never written (slice larger than what this writer stored)
                }
                checked += 1;
                if !self.plans.iter().any(|p| plausible_record(p, r)) {
                    report(
                        format!("slice {slice}: record {r:x?} matches no namespace"),
                        &mut errors,
                    );
                }
            }
        }
        VerifyResult {
            method: "window-consistency".into(),
            records_checked: checked,
            errors,
            first_errors: first,
        }
    }
}

fn writer_count(opts: &EngineOptions, namespaces: usize) -> u64 {
    let faults = if opts.faults.pattern == "none" {
        0
    } else {
        opts.faults.threads_per_namespace as u64
    };
    // probe + init threads + fault threads per namespace
    namespaces as u64 * (1 + opts.params.threads as u64 + faults)
}

/// A record that could be the final content for some pfn of `p` (window-mode verify).
fn plausible_record(p: &NsPlan, r: &[u64; 8]) -> bool {
    let flags = p.flags;
    let first = p.data_start;
    let last = p.data_start + p.data_pages;
    let pfn_of = |vaddr: u64| vaddr.checked_sub(record::VMEMMAP_START).map(|d| d / 64);
    match (p.class, p.compound) {
        (PageClass::Device { pgmap, .. }, Some((order, _))) => {
            if r[0] & (1 << record::PG_HEAD) != 0 {
                return (r[0] & !(1 << record::PG_HEAD)) == flags && r[1] == pgmap;
            }
            let Some(head) = pfn_of(r[1] & !1) else {
                return false;
            };
            (first..last).contains(&head) && r[0] == flags && {
                let i = if r[3] == record::TAIL_MAPPING { 2 } else { 1 };
                *r == record::expected_compound_record(head, i, order, flags, pgmap)
            }
        }
        (PageClass::Device { .. }, None) => *r == record::expected_record(first, flags, p.class),
        (PageClass::SystemRam, _) => match pfn_of(r[1].wrapping_sub(8)) {
            Some(pfn) => {
                (first..last).contains(&pfn) && *r == record::expected_record(pfn, flags, p.class)
            }
            None => false,
        },
    }
}

const MIGRATE_MOVABLE: u64 = 1;

struct WindowCursor {
    off: u64,
    len: u64,
    pos: u64,
}

/// Writes struct pages of one namespace into the target.
struct Writer<'a> {
    base: *mut u8,
    plan: &'a NsPlan,
    store: StoreKind,
    /// Write back every stored cache line (persistent target, regular stores).
    persist: bool,
    window: Option<WindowCursor>,
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
    fn init(&mut self, pfn: u64, n: u64, flavor_pass1_only: bool) -> u64 {
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
                            let rec = record::expected_record(p, flags, class);
                            record::store_template(dst, k as usize, &rec, store)
                        }
                        PageClass::SystemRam => {
                            record::store_system_ram(dst, p, k as usize, flags, store)
                        }
                    }
                    if persist {
                        crate::target::flush_range(dst, k as usize * RECORD_BYTES);
                    }
                });
                n
            }
        };
        record::store_fence(self.store);
        written
    }

    fn write_compound(&self, dst: *mut u8, head: u64, i0: u64, count: u64, order: u32, pgmap: u64) {
        let flags = self.plan.flags;
        // Tails from index 2 on are identical: build that template once.
        let tail = record::expected_compound_record(head, 2, order, flags, pgmap);
        for j in 0..count {
            let i = i0 + j;
            let d = unsafe { dst.add((j as usize) * RECORD_BYTES) };
            if i >= 2 {
                unsafe { record::store_one(d, &tail, self.store) };
            } else {
                let r = record::expected_compound_record(head, i, order, flags, pgmap);
                unsafe { record::store_one(d, &r, self.store) };
            }
        }
        if self.persist {
            unsafe { crate::target::flush_range(dst, count as usize * RECORD_BYTES) };
        }
    }

    /// Legacy second pass (devm_memremap_pages before 4.20): list_del(&page->lru)
    /// then page->pgmap = pgmap, for every page.
    fn pgmap_pass(&mut self, pfn: u64, n: u64) {
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
                    std::ptr::write(w.add(2), record::LIST_POISON2);
                }
            }
            if persist {
                unsafe { crate::target::flush_range(dst, k as usize * RECORD_BYTES) };
            }
        });
    }

    /// (pfn, record found, record expected) for verification.
    fn records(&self, pfn: u64, n: u64) -> impl Iterator<Item = (u64, [u64; 8], [u64; 8])> + '_ {
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
                        record::expected_compound_record(head, abs - head, order, plan.flags, pgmap)
                    }
                    None => record::expected_record(p + i, plan.flags, plan.class),
                };
                (p + i, got, want)
            })
        })
    }
}

/// Per-namespace state shared by the threads of one repeat.
struct NsState {
    available: AtomicBool,
    available_ns: AtomicU64,
    populated: AtomicBool,
    populate_start_ns: AtomicU64,
    populate_end_ns: AtomicU64,
    complete: AtomicBool,
    complete_ns: AtomicU64,
    init_start_ns: AtomicU64,
    failed: AtomicBool,
    records_written: AtomicU64,
    /// williams-async lanes (one per init thread).
    lanes: Vec<Lane>,
    lanes_active: AtomicUsize,
    pageblocks: Vec<AtomicU64>,
}

impl NsState {
    fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        self.available.store(true, Ordering::Release);
        self.complete.store(true, Ordering::Release);
    }

    fn set_pageblocks(&self, plan: &NsPlan, pfn: u64, n: u64) {
        let pb = plan.layout.params.pageblock_pages.max(1);
        let mut p = align_up(pfn, pb);
        while p < pfn + n {
            let idx = ((p - plan.pageblock_base) / pb) as usize;
            self.pageblocks[idx / 16]
                .fetch_or(MIGRATE_MOVABLE << ((idx % 16) * 4), Ordering::Relaxed);
            p += pb;
        }
    }

    fn pageblock(&self, plan: &NsPlan, pfn: u64) -> u64 {
        let pb = plan.layout.params.pageblock_pages.max(1);
        let idx = ((pfn - plan.pageblock_base) / pb) as usize;
        (self.pageblocks[idx / 16].load(Ordering::Relaxed) >> ((idx % 16) * 4)) & 0xf
    }
}

/// One williams-async init thread's range: NR_MEMMAP_RANGE sub-ranges, a pending
/// bitmap, and the mutex held while a sub-range is initialised (seed 003 patch 06: one
/// mutex per thread; `--sync-lock sub-range` gives each sub-range its own).
struct Lane {
    start: u64,
    pages: u64,
    range_size: u64,
    pending: Vec<AtomicBool>,
    /// parking_lot's mutex so a release can hand the lock to a waiter (`unlock_fair`),
    /// as the kernel mutex does with MUTEX_FLAG_HANDOFF; std's would let the init thread
    /// re-take it for its next sub-range and starve a faulting thread for the whole range.
    locks: Vec<parking_lot::Mutex<()>>,
}

struct ThreadSlot {
    id: u32,
    name: String,
    role: ThreadRole,
    ns: usize,
    pages: AtomicU64,
}

struct ThreadResult {
    id: u32,
    start_ns: u64,
    end_ns: u64,
    spans: Vec<Span>,
    counters: Counters,
    hist: Option<hdrhistogram::Histogram<u64>>,
    samples: Vec<FaultSample>,
    seen_faults: u64,
    uninitialised: u64,
}

struct RepeatRun<'e> {
    engine: &'e Engine,
    ns: Vec<NsState>,
    slots: Mutex<Vec<Arc<ThreadSlot>>>,
    results: Mutex<Vec<ThreadResult>>,
    phases: Mutex<Vec<Phase>>,
    next_slice: AtomicU64,
}

fn ns_since(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Per-thread bookkeeping while it runs.
struct ThreadCtx {
    slot: Arc<ThreadSlot>,
    start_ns: u64,
    spans: Vec<Span>,
    counters: ThreadCounters,
    t0: Instant,
}

impl ThreadCtx {
    fn span<T>(&mut self, kind: SpanKind, pfn: u64, pages: u64, f: impl FnOnce() -> T) -> T {
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

    fn finish(
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
    fn new(engine: &'e Engine) -> RepeatRun<'e> {
        let p = &engine.opts.params;
        let ns = engine
            .plans
            .iter()
            .map(|plan| {
                let align = plan.compound.map(|(o, _)| 1u64 << o).unwrap_or(1);
                let lanes = if engine.opts.strategy.is_async() {
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
                } else {
                    Vec::new()
                };
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
                    lanes_active: AtomicUsize::new(lanes.len()),
                    lanes,
                    pageblocks: (0..plan.pageblock_words)
                        .map(|_| AtomicU64::new(0))
                        .collect(),
                }
            })
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

    fn register(&self, name: String, role: ThreadRole, ns: usize, t0: Instant) -> ThreadCtx {
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

    fn writer(&self, ni: usize) -> Writer<'_> {
        let slice = self
            .engine
            .window
            .as_ref()
            .map(|_| self.next_slice.fetch_add(1, Ordering::Relaxed) % self.engine.slices);
        self.engine.writer(&self.engine.plans[ni], slice)
    }

    fn phase(&self, name: &str, ni: usize, start_ns: u64, end_ns: u64) {
        self.phases.lock().unwrap().push(Phase {
            name: name.into(),
            namespace: self.engine.plans[ni].name.clone(),
            start_ns,
            end_ns,
        });
    }

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
    fn probe(&self, ni: usize, t0: Instant, hotplug: &Mutex<()>) -> anyhow::Result<()> {
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

    fn init_namespace(&self, ni: usize, ctx: &mut ThreadCtx, t0: Instant) {
        let e = self.engine;
        let plan = &e.plans[ni];
        let p = &e.opts.params;
        let align = plan.compound.map(|(o, _)| 1u64 << o).unwrap_or(1);
        let chunk = align_up(p.chunk_pages.max(1), align);
        match e.opts.strategy {
            Strategy::LegacyDoublePass => {
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
            Strategy::WilliamsMt => {
                let parts = strategy::equal_split(
                    plan.data_start,
                    plan.data_pages,
                    p.threads as u64,
                    align,
                );
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
            Strategy::WilliamsAsync => {
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
            Strategy::JordanPadata => {
                let (nworks, jobs) = strategy::padata_chunks(
                    plan.data_start,
                    plan.data_pages,
                    p.threads as u64,
                    chunk,
                );
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
            Strategy::Duyck | Strategy::MartinsCompound | Strategy::LizheNt => {
                let mut w = self.writer(ni);
                for (s, n) in chunks(plan.data_start, plan.data_pages, chunk) {
                    self.init_unit(ctx, &mut w, ni, s, n, SpanKind::Init);
                }
            }
        }
    }

    /// memmap_init_range(args, range_id): under the lane's mutex, init the sub-range if
    /// still pending. Returns whether this caller did the work.
    fn init_subrange(
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

    fn fault_thread(&self, ni: usize, f: u32, t0: Instant) {
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
        let picker = if fc.pattern == "trace" {
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
        };
        let mut picker = match picker {
            Ok(p) => p,
            Err(_) => return ctx.finish(self, Some(hist), samples, 0, 0),
        };
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
            // Reservoir sampling keeps a uniform subset when there are too many faults.
            if samples.len()
                < MAX_FAULT_SAMPLES
                    / e.plans.len().max(1)
                    / fc.threads_per_namespace.max(1) as usize
            {
                samples.push(sample);
            } else {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                let j = (rng_state % seen) as usize;
                if j < samples.len() {
                    samples[j] = sample;
                }
            }
            if fc.think_ns > 0 {
                let until = Instant::now() + Duration::from_nanos(fc.think_ns);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        }
        ctx.finish(self, Some(hist), samples, seen, uninit);
    }

    /// The struct page of `pfn` (or its compound head) holds the expected flags and pgmap.
    fn record_ready(&self, ni: usize, pfn: u64) -> bool {
        let plan = &self.engine.plans[ni];
        let w = self.engine.writer(plan, None);
        let (pfn, n) = match plan.compound {
            Some((order, _)) => (pfn >> order << order, 1),
            None => (pfn, 1),
        };
        let ready = w.records(pfn, n).all(|(_, got, want)| got == want);
        ready
    }

    fn sample_progress(&self, t0: Instant, stop: &AtomicBool) -> Vec<(u32, Vec<(u64, u64)>)> {
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

    fn finish(
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
        let mut namespaces = Vec::new();
        for (i, p) in engine.plans.iter().enumerate() {
            let st = &self.ns[i];
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
        let init_start = self
            .ns
            .iter()
            .map(|s| s.init_start_ns.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        let complete = namespaces.iter().map(|n| n.complete_ns).max().unwrap_or(0);
        let init_ns = complete.saturating_sub(init_start).max(1);
        let bytes: u64 = namespaces.iter().map(|n| n.bytes_written).sum();
        let bps = bytes as f64 / (init_ns as f64 / 1e9);
        let stall = StoredHistogram::from_histogram(&merged);
        let mut phases = self.phases.into_inner().unwrap();
        phases.sort_by_key(|p| p.start_ns);
        Repeat {
            index,
            started_unix_s,
            metrics: Metrics {
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
                faults,
                stall_p50_ns: stall.p50_ns,
                stall_p99_ns: stall.p99_ns,
                stall_max_ns: stall.max_ns,
                fraction_of_nt_roofline: bps / roofline.non_temporal_bytes_per_s,
                engine_efficiency: roofline.bare_same_store_ns as f64 / init_ns as f64,
                uninitialised_reads: uninit,
            },
            namespaces,
            phases,
            threads,
            stalls: StallData {
                merged: stall,
                per_thread,
                samples: fault_samples,
                samples_dropped: dropped,
            },
            roofline,
            verify,
        }
    }
}

/// [start, start+pages) cut into pieces of `chunk` pages.
fn chunks(start: u64, pages: u64, chunk: u64) -> impl Iterator<Item = (u64, u64)> {
    let chunk = chunk.max(1);
    (0..pages.div_ceil(chunk)).map(move |i| {
        let s = start + i * chunk;
        (s, chunk.min(start + pages - s))
    })
}
