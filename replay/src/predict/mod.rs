//! `memmap-replay predict`: the kernel's time on a described host, per strategy.
//!
//! predicted kernel time = (this machine's measured per-page costs of the strategy's era
//! writer, populate and altmap init [`costs`], scaled to the host's CPU, bounded below by
//! the bytes over the write bandwidth of the memory holding the memmap [`host`], composed
//! with the strategy's threads, lock scope and phases) x the kernel/replay ratio of the
//! testbed calibration (`traces/real/calibration/summary.csv`: the real 6.1 kernel's
//! `memmap_init_zone_device` against the replay's writer in the same guest).
//! The band: first-quartile costs, high bandwidth and the calibration's 10th-percentile
//! ratio; third-quartile costs, low bandwidth and its 90th. The model and what it leaves out: docs/predict.md.

pub mod costs;
pub mod host;

use crate::runner;
use crate::strategy::{Strategy, ALL};
use anyhow::{bail, Context, Result};
use costs::{kind_of, Calibration, Cost, Spread};
use host::{Host, HostFlags, Param};
use memmap_model::layout::{PageKind, RangeLayout};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct PredictArgs {
    /// Scenario file (TOML), trace file, or the name of a shipped scenario.
    pub scenario: String,
    /// Strategies to predict (repeatable; default: all that apply to the layout).
    #[arg(long)]
    pub strategy: Vec<Strategy>,
    /// Host NUMA nodes (default: the scenario's).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Host CPUs per node (default: the scenario's).
    #[arg(long)]
    pub cpus_per_node: Option<u32>,
    /// What holds the pmem: dram (emulated) or optane-100[:WAYS] (default: the scenario's).
    #[arg(long)]
    pub device: Option<String>,
    /// Device write bandwidth per node in GB/s (default: from the device table).
    #[arg(long)]
    pub device_gbs: Option<f64>,
    /// Host time per struct page relative to this machine (default: the scenario's, else 1).
    #[arg(long)]
    pub cpu_scale: Option<f64>,
    /// Host DRAM write bandwidth per node in GB/s (default: this machine's, measured).
    #[arg(long)]
    pub dram_gbs: Option<f64>,
    /// Calibration file: read if it exists, completed with what it lacks and written back.
    /// Without it the costs are measured on every call.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Multiply the scenario's sizes.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The calibration's kernel/replay ratios (the CSV committed with the raw captures).
const CALIBRATION_SUMMARY: &str = include_str!("../../../traces/real/calibration/summary.csv");

/// (10th percentile, median, 90th percentile) of kernel_us / replay_us over the testbed
/// calibration grid (Linux 6.1.192 in QEMU TCG, function_graph; 2026-12-05).
pub fn kernel_over_replay() -> (f64, f64, f64) {
    let mut r: Vec<f64> = CALIBRATION_SUMMARY
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let k: f64 = f.get(2)?.parse().ok()?;
            let p: f64 = f.get(3)?.parse().ok()?;
            (p > 0.0).then_some(k / p)
        })
        .collect();
    r.sort_by(f64::total_cmp);
    let q = |p: f64| r[((r.len() - 1) as f64 * p).round() as usize];
    (q(0.1), memmap_model::stats::median(&r), q(0.9))
}

/// One namespace under one strategy, ms: phases and when it is usable / complete.
#[derive(Clone, Debug, Serialize)]
pub struct NsPrediction {
    pub name: String,
    pub kind: String,
    pub struct_pages: u64,
    pub memmap_on: &'static str,
    pub populate_ms: f64,
    pub altmap_init_ms: f64,
    pub init_ms: f64,
    pub pgmap_pass_ms: f64,
    /// What bounds the init: "cpu" or the memory's write bandwidth.
    pub init_bound: &'static str,
    pub available_ms: f64,
    pub complete_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StrategyPrediction {
    pub strategy: String,
    /// Predicted kernel time to complete (every namespace's memmap initialised).
    pub predicted_kernel_ms: Option<f64>,
    pub low_ms: Option<f64>,
    pub high_ms: Option<f64>,
    /// Predicted kernel time until every namespace is usable.
    pub available_ms: Option<f64>,
    pub init_threads: u32,
    pub namespaces: Vec<NsPrediction>,
    /// Why there is no number, or what bounds it.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub scenario: String,
    pub parameters: Vec<Param>,
    pub calibration_machine: String,
    pub pairs_measured_now: usize,
    pub kernel_over_replay: [f64; 3],
    pub strategies: Vec<StrategyPrediction>,
    /// Ranges left out (outside the validated range), with why.
    pub not_predicted: Vec<String>,
}

/// Which costs and bandwidths a composition takes.
#[derive(Clone, Copy)]
enum Case {
    Low,
    Mid,
    High,
}

fn pick(s: &Spread, c: Case) -> f64 {
    match c {
        Case::Low => s.q1,
        Case::Mid => s.median,
        Case::High => s.q3,
    }
}

/// (time to available, time to complete, per-namespace) of the replay-time model, ns.
fn compose(
    s: Strategy,
    host: &Host,
    ranges: &[(&RangeLayout, String, &Cost)],
    case: Case,
) -> (f64, f64, Vec<NsPrediction>) {
    let cs = host.cpu_scale;
    let threads = s.default_params(host.cpus_per_node).threads.max(1);
    let par = f64::from(threads.min(host.cpus_per_node));
    // low time = high bandwidth
    let bw = |b: (f64, f64)| match case {
        Case::Low => b.1,
        Case::Mid => (b.0 + b.1) / 2.0,
        Case::High => b.0,
    };
    let (dram_bw, dev_bw) = (bw(host.dram_write_bps), bw(host.device_write_bps));
    let mut lock_free_at = 0.0f64;
    let (mut available, mut complete) = (0.0f64, 0.0f64);
    let mut cpu_work = 0.0;
    let mut bytes_per_node: std::collections::BTreeMap<(u32, bool), f64> = Default::default();
    let mut out = Vec::new();
    for (l, kind, c) in ranges {
        let mib = l.memmap_bytes as f64 / f64::from(1 << 20);
        let populate = mib * pick(&c.populate_ns_per_mib, case) * cs;
        let altmap = l.altmap_struct_pages as f64 * pick(&c.altmap_ns_per_page, case) * cs;
        let on_device = l.memmap_bytes_device > 0;
        let bytes = (l.struct_pages_written * 64) as f64;
        let init_cpu = l.struct_pages_written as f64 * pick(&c.init_ns_per_page, case) * cs;
        let init_bw = bytes / if on_device { dev_bw } else { dram_bw } * 1e9;
        let init = (init_cpu / par).max(init_bw);
        let pass2 = l.data_pages as f64 * pick(&c.pass2_ns_per_page, case) * cs / par;
        cpu_work += populate + altmap + init_cpu + pass2 * par;
        *bytes_per_node.entry((l.node, on_device)).or_default() += bytes;
        // Lock scope: 6.1 pagemap_range: mem_hotplug_begin(); arch_add_memory (populate);
        // move_pfn_range_to_zone (altmap pfns); mem_hotplug_done(); then
        // memmap_init_zone_device. 4.19 devm_memremap_pages: the first pass inside the
        // lock, the second after mem_hotplug_done().
        let mut t = if s.populate_under_hotplug_lock() {
            lock_free_at + populate
        } else {
            populate // seed 003 patch 02: __add_pages in parallel
        };
        t = t.max(lock_free_at) + altmap;
        let free = if s.init_under_hotplug_lock() {
            t += init;
            pass2
        } else {
            init + pass2
        };
        lock_free_at = t;
        let ns_available = if s.is_async() { t } else { t + free };
        let ns_complete = t + free;
        available = available.max(ns_available);
        complete = complete.max(ns_complete);
        out.push(NsPrediction {
            name: l.name.clone(),
            kind: kind.clone(),
            struct_pages: l.struct_pages_written,
            memmap_on: if on_device { "device" } else { "dram" },
            populate_ms: populate / 1e6,
            altmap_init_ms: altmap / 1e6,
            init_ms: init / 1e6,
            pgmap_pass_ms: pass2 / 1e6,
            init_bound: if init_bw > init_cpu / par {
                if on_device {
                    "device write bandwidth"
                } else {
                    "dram write bandwidth"
                }
            } else {
                "cpu"
            },
            available_ms: ns_available / 1e6,
            complete_ms: ns_complete / 1e6,
        });
    }
    // Whole-host bounds: all CPUs busy, each node's memory at its bandwidth.
    let cpus = f64::from(host.nodes * host.cpus_per_node);
    complete = complete.max(cpu_work / cpus);
    for ((_, dev), b) in bytes_per_node {
        complete = complete.max(b / if dev { dev_bw } else { dram_bw } * 1e9);
    }
    (available.min(complete), complete, out)
}

pub fn predict(a: &PredictArgs) -> Result<Prediction> {
    let loaded = runner::load_scenario(&a.scenario)?;
    anyhow::ensure!(
        a.scale > 0.0 && a.scale <= 1.0,
        "--scale {}: expected a factor in (0, 1]",
        a.scale
    );
    let sc = &loaded.scenario;
    let layouts = sc.layouts(&loaded.label, a.scale)?;
    let mut not_predicted = Vec::new();
    let mut ranges = Vec::new();
    for l in &layouts {
        if l.kind == PageKind::SystemRam {
            not_predicted.push(format!(
                "{}: hot-added System RAM (online_pages) is outside the validated range: the \
                 calibration covers ZONE_DEVICE (memmap_init_zone_device) only",
                l.name
            ));
            continue;
        }
        let Some(ns) = sc.namespaces.iter().find(|n| n.name == l.name) else {
            bail!("{}: layout {} has no namespace entry", loaded.label, l.name);
        };
        if l.struct_pages_written == 0 {
            not_predicted.push(format!("{}: no memmap (raw/sector mode)", l.name));
            continue;
        }
        ranges.push((l, ns.clone()));
    }
    if ranges.is_empty() {
        bail!(
            "{}: nothing to predict ({})",
            loaded.label,
            not_predicted.join("; ")
        );
    }
    let strategies: Vec<Strategy> = if a.strategy.is_empty() {
        ALL.to_vec()
    } else {
        a.strategy.clone()
    };
    let flags = HostFlags {
        nodes: a.nodes,
        cpus_per_node: a.cpus_per_node,
        device: a.device.clone(),
        device_write_gbs: a.device_gbs,
        cpu_scale: a.cpu_scale,
        dram_write_gbs: a.dram_gbs,
    };
    let device_needed = ranges.iter().any(|(l, _)| l.memmap_bytes_device > 0);
    // the host's errors before seconds of measuring
    Host::describe(&sc.host, &loaded.label, &flags, (1.0, 1.0), device_needed)?;
    let mut cal = match &a.calibration {
        Some(p) if p.exists() => Calibration::read(p)?,
        _ => Calibration::empty(),
    };
    let (here, _) = costs::this_machine();
    if cal.machine != here {
        not_predicted.push(format!(
            "calibration measured on {}, this is {here}: costs are that machine's",
            cal.machine
        ));
    }
    let mut kinds: Vec<_> = Vec::new();
    for (_, ns) in &ranges {
        if !kinds.iter().any(|k| kind_of(k) == kind_of(ns)) {
            kinds.push(ns.clone());
        }
    }
    let measured = cal
        .fill(sc, &kinds, &strategies)
        .context("measuring this machine's costs")?;
    if let (Some(p), true) = (&a.calibration, measured > 0) {
        cal.write(p)?;
    }
    let dram = (cal.dram_write_bps.q1, cal.dram_write_bps.q3);
    let host = Host::describe(&sc.host, &loaded.label, &flags, dram, device_needed)?;
    let (r_lo, r_mid, r_hi) = kernel_over_replay();
    let mut out = Vec::new();
    for &s in &strategies {
        let threads = s.default_params(host.cpus_per_node).threads;
        let mut p = StrategyPrediction {
            strategy: s.name().into(),
            predicted_kernel_ms: None,
            low_ms: None,
            high_ms: None,
            available_ms: None,
            init_threads: threads,
            namespaces: Vec::new(),
            notes: Vec::new(),
        };
        if let Err(e) = s.check_layout_rules(sc.kernel.subsection_hotplug) {
            p.notes.push(format!("not predicted: {e}"));
            out.push(p);
            continue;
        }
        let with_costs: Vec<(&RangeLayout, String, &Cost)> = ranges
            .iter()
            .filter_map(|(l, ns)| {
                let k = kind_of(ns);
                cal.get(s, &k).map(|c| (*l, k, c))
            })
            .collect();
        if with_costs.len() < ranges.len() {
            p.notes
                .push("not predicted: no measured cost for a namespace kind".into());
            out.push(p);
            continue;
        }
        let (avail, mid, per_ns) = compose(s, &host, &with_costs, Case::Mid);
        let (_, low, _) = compose(s, &host, &with_costs, Case::Low);
        let (_, high, _) = compose(s, &host, &with_costs, Case::High);
        p.predicted_kernel_ms = Some(mid * r_mid / 1e6);
        p.low_ms = Some(low * r_lo / 1e6);
        p.high_ms = Some(high * r_hi / 1e6);
        p.available_ms = Some(avail * r_mid / 1e6);
        if threads > host.cpus_per_node {
            p.notes.push(format!(
                "{threads} init threads on {} CPUs per node: counted as {} in parallel",
                host.cpus_per_node, host.cpus_per_node
            ));
        }
        // the namespaces' phases as kernel time too
        p.namespaces = per_ns
            .into_iter()
            .map(|n| NsPrediction {
                populate_ms: n.populate_ms * r_mid,
                altmap_init_ms: n.altmap_init_ms * r_mid,
                init_ms: n.init_ms * r_mid,
                pgmap_pass_ms: n.pgmap_pass_ms * r_mid,
                available_ms: n.available_ms * r_mid,
                complete_ms: n.complete_ms * r_mid,
                ..n
            })
            .collect();
        out.push(p);
    }
    let label = sc.name.clone();
    Ok(Prediction {
        scenario: label,
        parameters: host.params,
        calibration_machine: cal.machine,
        pairs_measured_now: measured,
        kernel_over_replay: [r_lo, r_mid, r_hi],
        strategies: out,
        not_predicted,
    })
}

pub fn render_human(p: &Prediction) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "prediction for {} (kernel time, ms)", p.scenario);
    let _ = writeln!(
        s,
        "{:22} {:>7} {:>12} {:>12} {:>24}  limited by",
        "strategy", "threads", "available", "complete", "band (low - high)"
    );
    for st in &p.strategies {
        match (
            st.predicted_kernel_ms,
            st.low_ms,
            st.high_ms,
            st.available_ms,
        ) {
            (Some(m), Some(lo), Some(hi), Some(av)) => {
                let bound = st
                    .namespaces
                    .iter()
                    .map(|n| n.init_bound)
                    .next()
                    .unwrap_or("");
                let _ = writeln!(
                    s,
                    "{:22} {:>7} {:>12.1} {:>12.1} {:>11.1} - {:<11.1}  {bound}",
                    st.strategy, st.init_threads, av, m, lo, hi
                );
            }
            _ => {
                let _ = writeln!(s, "{:22} {}", st.strategy, st.notes.join("; "));
            }
        }
    }
    let _ = writeln!(s, "\nparameters:");
    for q in &p.parameters {
        let _ = writeln!(s, "  {:18} {:>14}   {}", q.name, q.value, q.source);
    }
    let [lo, mid, hi] = p.kernel_over_replay;
    let _ = writeln!(
        s,
        "  {:18} {:>14}   testbed calibration, traces/real/calibration/summary.csv (p10 {lo:.2}, p90 {hi:.2})",
        "kernel/replay",
        format!("{mid:.2}")
    );
    let _ = writeln!(
        s,
        "  {:18} {:>14}   {} (measured now: {} strategy x kind pairs)",
        "per-page costs", "measured", p.calibration_machine, p.pairs_measured_now
    );
    for n in &p.not_predicted {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

pub fn run(a: &PredictArgs) -> Result<()> {
    let p = predict(a)?;
    let text = if a.json {
        serde_json::to_string_pretty(&p)? + "\n"
    } else {
        render_human(&p)
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
        .context("printing the prediction")
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap_model::scenario::Scenario;

    #[test]
    fn calibration_ratio_is_read_from_the_committed_summary() {
        let (lo, mid, hi) = kernel_over_replay();
        assert!(lo <= mid && mid <= hi, "{lo} {mid} {hi}");
        // docs/fidelity.md: median 0.96 over the 36-configuration grid
        assert!((0.8..=1.25).contains(&mid), "{mid}");
    }

    const TWO: &str = r#"
name = "two"
source = "unit test"
[host]
nodes = 1
cpus_per_node = 4
[[namespace]]
name = "a"
size = "64G"
[[namespace]]
name = "b"
size = "32G"
[[hotplug]]
name = "dimm0"
start = "0x8000000000"
size = "1G"
[faults]
pattern = "none"
"#;

    fn flat(x: f64) -> Spread {
        Spread {
            median: x,
            q1: x,
            q3: x,
            min: x,
            max: x,
        }
    }

    /// A calibration file with round costs for every strategy on fsdax-dev-2M.
    fn fake_calibration(dir: &std::path::Path) -> PathBuf {
        let mut c = Calibration::empty();
        c.dram_write_bps = flat(1e12);
        for s in ALL {
            c.costs.push(Cost {
                strategy: s.name().into(),
                kind: "fsdax-dev-2M".into(),
                populate_ns_per_mib: flat(1e5),
                altmap_ns_per_page: flat(10.0),
                init_ns_per_page: flat(10.0),
                // only the pre-4.20 kernel has a second pass (a measured 0 elsewhere)
                pass2_ns_per_page: flat(if s == Strategy::LEGACY_DOUBLE_PASS {
                    5.0
                } else {
                    0.0
                }),
                engine_efficiency: flat(1.0),
            });
        }
        let p = dir.join("cal.json");
        c.write(&p).unwrap();
        p
    }

    fn args(scenario: &std::path::Path, cal: &std::path::Path) -> PredictArgs {
        PredictArgs {
            scenario: scenario.display().to_string(),
            strategy: vec![],
            nodes: None,
            cpus_per_node: None,
            device: Some("dram".into()),
            device_gbs: None,
            cpu_scale: None,
            dram_gbs: None,
            calibration: Some(cal.to_path_buf()),
            scale: 1.0,
            json: false,
        }
    }

    #[test]
    fn phases_compose_by_lock_scope_and_bandwidth_bounds_the_init() {
        let dir = std::env::temp_dir().join(format!("memmap-predict-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scen = dir.join("two.toml");
        std::fs::write(&scen, TWO).unwrap();
        let cal = fake_calibration(&dir);
        let sc = Scenario::parse("two.toml", TWO).unwrap();
        let l = sc.layouts("two.toml", 1.0).unwrap();
        // per namespace, ns: populate, altmap, init with one thread
        let pop = |i: usize| l[i].memmap_bytes as f64 / f64::from(1 << 20) * 1e5;
        let alt = |i: usize| l[i].altmap_struct_pages as f64 * 10.0;
        let init = |i: usize| l[i].struct_pages_written as f64 * 10.0;
        let (_, r, _) = kernel_over_replay();
        let p = predict(&args(&scen, &cal)).unwrap();
        assert_eq!(p.pairs_measured_now, 0, "everything came from the file");
        let get = |name: &str| {
            p.strategies
                .iter()
                .find(|s| s.strategy == name)
                .unwrap()
                .clone()
        };
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        // duyck: populate + altmap init serialized on the lock, inits after it in parallel
        let d = get("duyck");
        let want = (pop(0) + alt(0) + pop(1) + alt(1) + init(1)).max(pop(0) + alt(0) + init(0));
        assert!(
            close(d.predicted_kernel_ms.unwrap(), want * r / 1e6),
            "{d:?} {want}"
        );
        // williams-mt: 8 threads on 4 CPUs, everything under the lock
        let w = get("williams-mt");
        let want = pop(0) + alt(0) + init(0) / 4.0 + pop(1) + alt(1) + init(1) / 4.0;
        assert!(
            close(w.predicted_kernel_ms.unwrap(), want * r / 1e6),
            "{w:?}"
        );
        // williams-async: usable before complete
        let a = get("williams-async");
        assert!(a.available_ms.unwrap() < a.predicted_kernel_ms.unwrap());
        for s in &p.strategies {
            let (lo, m, hi) = (
                s.low_ms.unwrap(),
                s.predicted_kernel_ms.unwrap(),
                s.high_ms.unwrap(),
            );
            assert!(lo <= m && m <= hi, "{s:?}");
        }
        assert!(p
            .not_predicted
            .iter()
            .any(|n| n.contains("dimm0") && n.contains("System RAM")));
        // a slow device bounds the init by bytes / bandwidth
        let mut slow = args(&scen, &cal);
        slow.device_gbs = Some(0.5);
        slow.strategy = vec![Strategy::DUYCK];
        let p = predict(&slow).unwrap();
        let ns = &p.strategies[0].namespaces[0];
        assert_eq!(ns.init_bound, "device write bandwidth");
        let want = (l[0].struct_pages_written * 64) as f64 / 0.5e9 * 1e3 * r;
        assert!(close(ns.init_ms, want), "{ns:?} {want}");
        // a missing device is an error naming the field
        let mut none = args(&scen, &cal);
        none.device = None;
        let e = predict(&none).unwrap_err().to_string();
        assert!(e.contains("host.device"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
