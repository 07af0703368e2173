//! This machine's measured costs, the inputs of a prediction: per strategy and namespace
//! kind (mode, map, align), the time per struct page of its era writer with one thread,
//! of the vmemmap populate per MiB of memmap and of the altmap pfns' init, from real
//! replays (`runner::run`, the engine and writers every `run` uses) of one 8 GiB namespace
//! of that kind; and this machine's DRAM write bandwidth with all its CPUs. Kept in a
//! calibration file (`--calibration FILE`) so a later prediction reuses them.

use crate::runner::{self, RunArgs};
use crate::strategy::Strategy;
use anyhow::{Context, Result};
use memmap_model::run::{RunFile, StoreKind};
use memmap_model::scenario::{NamespaceEntry, Scenario};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub const CALIBRATION_FORMAT: &str = "memmap-lab-predict-calibration";
pub const CALIBRATION_VERSION: u32 = 1;
/// Size of the namespace each cost is measured on: ~2M struct pages, init phases of
/// 5-20 ms here, long enough for a steady rate and short enough for a 60 s budget.
pub const NAMESPACE_SIZE: &str = "8G";
pub const REPEATS: u32 = 5;

/// Median, quartiles and range over the repeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut v: Vec<f64>) -> Spread {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Spread {
            median: memmap_model::stats::median(&v),
            q1: q(0.25),
            q3: q(0.75),
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// One strategy on one namespace kind, measured with one init thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub strategy: String,
    /// "fsdax-dev-2M": mode, map, align.
    pub kind: String,
    /// ns per MiB of memmap (phase "populate": vmemmap populate, `__add_pages`).
    pub populate_ns_per_mib: Spread,
    /// ns per altmap struct page (phase "altmap-init": `move_pfn_range_to_zone`).
    pub altmap_ns_per_page: Spread,
    /// ns per struct page written, one thread (phase "init").
    pub init_ns_per_page: Spread,
    /// ns per page of the pre-4.20 second pass, one thread (phase "pgmap-pass").
    pub pass2_ns_per_page: Spread,
    /// The run's engine efficiency (bare writer / init phase): how far the phase times
    /// are the writer's own.
    pub engine_efficiency: Spread,
}

/// The calibration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub format: String,
    pub version: u32,
    /// CPU model and kernel of the machine that measured.
    pub machine: String,
    pub cpus: u32,
    /// Regular-store write bandwidth with every CPU, bytes/s.
    pub dram_write_bps: Spread,
    pub costs: Vec<Cost>,
}

/// "fsdax-dev-2M" for a namespace entry.
pub fn kind_of(ns: &NamespaceEntry) -> String {
    let align = memmap_model::layout::parse_size(&ns.align)
        .map(|b| {
            memmap_model::layout::format_size(b)
                .replace(' ', "")
                .replace("iB", "")
        })
        .unwrap_or_else(|_| ns.align.clone());
    format!("{}-{}-{}", ns.mode, ns.map, align)
}

pub fn this_machine() -> (String, u32) {
    let h = runner::host_info();
    (
        format!("{} / {}", h.cpu_model, h.kernel_release),
        h.cpus_online.max(1),
    )
}

impl Calibration {
    pub fn empty() -> Calibration {
        let (machine, cpus) = this_machine();
        Calibration {
            format: CALIBRATION_FORMAT.into(),
            version: CALIBRATION_VERSION,
            machine,
            cpus,
            dram_write_bps: Spread::default(),
            costs: Vec::new(),
        }
    }

    pub fn read(path: &Path) -> Result<Calibration> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the calibration {}", path.display()))?;
        let c: Calibration = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a {CALIBRATION_FORMAT} file (written by `memmap-replay predict --calibration`)",
                path.display()
            )
        })?;
        anyhow::ensure!(
            c.format == CALIBRATION_FORMAT && c.version == CALIBRATION_VERSION,
            "{}: format {:?} version {}, expected {CALIBRATION_FORMAT:?} version {CALIBRATION_VERSION}",
            path.display(),
            c.format,
            c.version
        );
        Ok(c)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_string_pretty(self)? + "\n";
        memmap_model::output::write_atomic(path, &[], |w| {
            std::io::Write::write_all(w, body.as_bytes())
        })
        .with_context(|| format!("writing the calibration {}", path.display()))
    }

    pub fn get(&self, strategy: Strategy, kind: &str) -> Option<&Cost> {
        self.costs
            .iter()
            .find(|c| c.strategy == strategy.name() && c.kind == kind)
    }

    /// Measures what is missing: the DRAM bandwidth, and each (strategy, kind) pair not
    /// in the file. Returns how many pairs were measured.
    pub fn fill(
        &mut self,
        scenario: &Scenario,
        kinds: &[NamespaceEntry],
        strategies: &[Strategy],
    ) -> Result<usize> {
        if self.dram_write_bps.median <= 0.0 {
            self.dram_write_bps = dram_bandwidth(self.cpus)?;
        }
        let dir = std::env::temp_dir().join(format!("memmap-predict-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut measured = 0;
        let res = (|| -> Result<()> {
            for ns in kinds {
                let kind = kind_of(ns);
                for &s in strategies {
                    if self.get(s, &kind).is_some()
                        || s.check_layout_rules(scenario.kernel.subsection_hotplug)
                            .is_err()
                    {
                        continue;
                    }
                    self.costs.push(measure(scenario, ns, s, &dir)?);
                    measured += 1;
                }
            }
            Ok(())
        })();
        let _ = std::fs::remove_dir_all(&dir);
        res.map(|()| measured)
    }
}

/// One replay of an 8 GiB namespace of `ns`'s kind, one init thread, no faults.
fn measure(scenario: &Scenario, ns: &NamespaceEntry, s: Strategy, dir: &Path) -> Result<Cost> {
    let kind = kind_of(ns);
    let mut sc = scenario.clone();
    sc.name = format!("calibration-{kind}");
    sc.namespaces = vec![NamespaceEntry {
        name: "cal0".into(),
        size: NAMESPACE_SIZE.into(),
        node: 0,
        start: None,
        ..ns.clone()
    }];
    sc.hotplugs.clear();
    sc.host.nodes = 1;
    let path = dir.join(format!("{kind}.toml"));
    std::fs::write(&path, sc.to_toml().map_err(anyhow::Error::msg)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let out = dir.join(format!("{kind}-{}.run.json", s.name()));
    let args = RunArgs {
        scenario: path.display().to_string(),
        strategy: s,
        threads: Some(1),
        sub_ranges: None,
        chunk_pages: None,
        sync_lock: None,
        target: None,
        destroy_data: false,
        persist_memmap: false,
        keep_target: false,
        window: None,
        faults: Some("none".into()),
        fault_threads: None,
        touches: None,
        fault_size: None,
        think_us: None,
        scale: 1.0,
        repeat: REPEATS,
        verify: false,
        seed: 1,
        output: out,
        json: false,
    };
    let rf = runner::run(&args, Arc::new(AtomicBool::new(false)))
        .with_context(|| format!("calibration replay of {} on {kind}", s.name()))?;
    Ok(cost_of(&rf, s, &kind))
}

/// The per-page costs of a one-namespace, one-thread run file.
pub fn cost_of(rf: &RunFile, s: Strategy, kind: &str) -> Cost {
    let l = &rf.layout[0];
    let phase = |name: &str| -> Vec<f64> {
        rf.repeats
            .iter()
            .map(|r| {
                r.phases
                    .iter()
                    .filter(|p| p.name == name)
                    .map(|p| p.end_ns.saturating_sub(p.start_ns) as f64)
                    .sum::<f64>()
            })
            .collect()
    };
    let per = |v: Vec<f64>, n: u64| {
        if n == 0 {
            Spread::default()
        } else {
            Spread::of(v.into_iter().map(|x| x / n as f64).collect())
        }
    };
    let mib = (l.memmap_bytes as f64 / (1 << 20) as f64).max(1e-9);
    Cost {
        strategy: s.name().into(),
        kind: kind.into(),
        populate_ns_per_mib: Spread::of(phase("populate").into_iter().map(|x| x / mib).collect()),
        altmap_ns_per_page: per(phase("altmap-init"), l.altmap_struct_pages),
        // the engine's "init" phase spans the strategy's call, pgmap-pass included
        init_ns_per_page: per(
            phase("init")
                .iter()
                .zip(phase("pgmap-pass"))
                .map(|(i, p)| i - p)
                .collect(),
            l.struct_pages_written,
        ),
        pass2_ns_per_page: per(phase("pgmap-pass"), l.data_pages),
        engine_efficiency: Spread::of(
            rf.repeats
                .iter()
                .map(|r| r.metrics.engine_efficiency)
                .collect(),
        ),
    }
}

/// Regular stores over 256 MiB of fresh anonymous memory with `cpus` threads, 5 times.
fn dram_bandwidth(cpus: u32) -> Result<Spread> {
    const BYTES: usize = 256 << 20;
    let threads = cpus.clamp(1, 64) as usize;
    let part = BYTES / threads / 64 * 64;
    let mut buf = vec![0u8; BYTES + 64];
    let base = buf.as_mut_ptr() as usize;
    let base = base.next_multiple_of(64);
    let mut rates = Vec::new();
    for i in 0..6 {
        let t = std::time::Instant::now();
        std::thread::scope(|s| {
            for k in 0..threads {
                s.spawn(move || {
                    // SAFETY: each thread writes its own 64-byte aligned part of `buf`.
                    unsafe {
                        crate::struct_page::bare_store(
                            (base + k * part) as *mut u8,
                            part,
                            StoreKind::Regular,
                        )
                    }
                });
            }
        });
        // the first pass faults the pages in: not a bandwidth
        if i > 0 {
            rates.push((part * threads) as f64 / t.elapsed().as_secs_f64());
        }
    }
    drop(buf);
    Ok(Spread::of(rates))
}
