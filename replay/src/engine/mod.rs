//! The replay engine: lays the memmap of every namespace into the target, then
//! runs phase 1 (vmemmap populate) and phase 2 (struct-page init) the way the
//! chosen strategy does, with emulated application faults, and measures it.
//!
//! One file per part: `plan` lays every namespace's memmap into the target
//! (placement, populate extents, pageblocks); `writer` stores the records of pfn runs
//! and reads them back; `repeat` is the state one repeat's threads share; `probe` is
//! each namespace's probe task (phase 1 under the hotplug lock, then phase 2 the way
//! the strategy does it); `fault` the emulated application faults and `memmap_sync`;
//! `results` turns the threads' bookkeeping into the run file's repeat; `roofline` and
//! `verify` measure and check around the run.

mod fault;
mod plan;
mod probe;
mod repeat;
mod results;
mod roofline;
mod verify;
mod writer;

pub use plan::{full_memmap_bytes, NsPlan};
pub use probe::{InitCx, Worker};

use crate::strategy::Strategy;
use crate::target::Target;
use memmap_model::layout::RangeLayout;
use memmap_model::run::*;
use plan::plan_namespaces;
use repeat::{unix_now, RepeatRun};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use writer::{WindowCursor, Writer};

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub strategy: Strategy,
    pub params: StrategyParams,
    pub faults: FaultConfig,
    pub verify: bool,
    /// Write back the memmap's lines on a persistent target (`--persist-memmap`).
    pub persist_memmap: bool,
    /// Faults of a trace as 4 KiB page offsets (pattern "trace").
    pub recorded_faults: Arc<Vec<u64>>,
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

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// A PMD-mapped vmemmap block (2 MiB): the unit of RAM vmemmap slots, windows and populate.
const BLOCK: u64 = 2 << 20;

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
            era: self.opts.strategy.era(),
            persist: self.opts.persist_memmap
                && self.target.info().persistent
                && self.opts.params.store == StoreKind::Regular,
            percpu: Default::default(),
            templates: None,
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
}

fn writer_count(opts: &EngineOptions, namespaces: usize) -> u64 {
    let faults = if opts.faults.pattern == "none" {
        0
    } else {
        opts.faults.threads_per_namespace as u64
    };
    // probe (altmap init, then its own share) + init threads + fault threads per namespace
    namespaces as u64 * (2 + opts.params.threads as u64 + faults)
}
