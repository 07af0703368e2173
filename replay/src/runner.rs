//! `memmap-replay run`: scenario -> layouts -> target -> repeats -> run file.

use crate::engine::{self, Engine, EngineOptions};
use crate::strategy::Strategy;
use crate::target::{self, Target, TargetSpec};
use anyhow::Context;
use memmap_model::kernel_recorded::{self, KernelRecorded};
use memmap_model::layout::{self, RangeLayout};
use memmap_model::limits;
use memmap_model::output::{self, Avoid};
use memmap_model::run::*;
use memmap_model::scenario::{FaultSpec, Scenario};
use memmap_model::trace::Trace;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Scenarios shipped in traces/scenarios, usable by name from any directory.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "qemu-16g",
        include_str!("../../traces/scenarios/qemu-16g.toml"),
    ),
    (
        "williams-128g",
        include_str!("../../traces/scenarios/williams-128g.toml"),
    ),
    (
        "williams-8socket",
        include_str!("../../traces/scenarios/williams-8socket.toml"),
    ),
    (
        "duyck-3t-optane",
        include_str!("../../traces/scenarios/duyck-3t-optane.toml"),
    ),
    (
        "lizhe-100g-fsdax",
        include_str!("../../traces/scenarios/lizhe-100g-fsdax.toml"),
    ),
    (
        "martins-1t-devdax-2m",
        include_str!("../../traces/scenarios/martins-1t-devdax-2m.toml"),
    ),
    (
        "qemu-hotplug-1g",
        include_str!("../../traces/scenarios/qemu-hotplug-1g.toml"),
    ),
    (
        "qemu-hotplug-128m-mom",
        include_str!("../../traces/scenarios/qemu-hotplug-128m-mom.toml"),
    ),
    (
        "martins-1t-devdax-1g",
        include_str!("../../traces/scenarios/martins-1t-devdax-1g.toml"),
    ),
];

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Scenario file (TOML), trace file (memmap-lab-trace: replays its recorded namespaces), or the name of a shipped scenario (see `memmap-replay scenarios`).
    pub scenario: String,
    /// Init strategy to replay (`memmap-replay strategies` lists them).
    #[arg(long)]
    pub strategy: Strategy,
    /// Init threads per namespace (default: the strategy's own; at most 4096).
    #[arg(long, value_parser = threads_arg)]
    pub threads: Option<u32>,
    /// Sub-ranges per thread (williams-async NR_MEMMAP_RANGE, default 128; at most 65536).
    #[arg(long, value_parser = sub_ranges_arg)]
    pub sub_ranges: Option<u32>,
    /// Chunk in pages: padata minimum chunk, span granularity otherwise (default 32768 = one section).
    #[arg(long, value_parser = chunk_pages_arg)]
    pub chunk_pages: Option<u64>,
    /// williams-async: lock per init thread as the patch does (thread), or per sub-range.
    #[arg(long, value_parser = ["thread", "sub-range"])]
    pub sync_lock: Option<String>,
    /// Where the memmap is written: a file (any fs, DAX fs), /dev/daxX.Y, tmpfs, hugetlbfs. Default: anonymous memory.
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Allow writing over a target that holds data.
    #[arg(long)]
    pub destroy_data: bool,
    /// On a persistent target, write every stored cache line back (clwb) so the memmap
    /// is durable. The kernel does not (its memmap is rebuilt at every probe), so the
    /// default leaves it out.
    #[arg(long)]
    pub persist_memmap: bool,
    /// Keep a target file the replay created.
    #[arg(long)]
    pub keep_target: bool,
    /// Store round a reused window of this size (e.g. 4G) when the memmap does not fit.
    #[arg(long)]
    pub window: Option<String>,
    /// Fault pattern: none, sequential, uniform, zipf, or trace (the DAX faults recorded in the trace given as SCENARIO) (default: the scenario's).
    #[arg(long)]
    pub faults: Option<String>,
    /// Fault threads per namespace (default: the scenario's; at most 4096).
    #[arg(long, value_parser = fault_threads_arg)]
    pub fault_threads: Option<u32>,
    /// Touches per fault thread (default: the scenario's; at most 10^9).
    #[arg(long, value_parser = touches_arg)]
    pub touches: Option<u64>,
    /// Fault size: 4K (PTE) or 2M (PMD) (default: the scenario's).
    #[arg(long)]
    pub fault_size: Option<String>,
    /// Pause between two touches of a fault thread, in microseconds (default: the scenario's; finite, at most 1e6).
    #[arg(long, value_parser = think_us_arg)]
    pub think_us: Option<f64>,
    /// Multiply the scenario's sizes (e.g. 0.125 for a scaled equivalent).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Repeats (at most 10000).
    #[arg(long, short = 'r', default_value_t = 5, value_parser = repeat_arg)]
    pub repeat: u32,
    /// Re-read the whole memmap after each repeat and check every record.
    #[arg(long)]
    pub verify: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run file to write.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

// Value parsers of the flags with a limit (memmap_model::limits): clap's error names the
// flag, the value and the limit.
fn threads_arg(s: &str) -> Result<u32, String> {
    limits::parse_count(s, limits::MAX_THREADS, limits::WHY_THREADS)
}
fn fault_threads_arg(s: &str) -> Result<u32, String> {
    if s.trim() == "0" {
        return Ok(0); // no fault threads
    }
    limits::parse_count(s, limits::MAX_THREADS, limits::WHY_THREADS)
}
fn sub_ranges_arg(s: &str) -> Result<u32, String> {
    limits::parse_count(s, limits::MAX_SUB_RANGES, limits::WHY_SUB_RANGES)
}
fn chunk_pages_arg(s: &str) -> Result<u64, String> {
    limits::parse_count(s, limits::MAX_CHUNK_PAGES, limits::WHY_CHUNK)
}
fn touches_arg(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    limits::parse_count(s, limits::MAX_TOUCHES, limits::WHY_TOUCHES)
}
fn think_us_arg(s: &str) -> Result<f64, String> {
    limits::parse_finite(s, limits::MAX_THINK_US, limits::WHY_THINK)
}
fn repeat_arg(s: &str) -> Result<u32, String> {
    limits::parse_count(s, limits::MAX_REPEATS, limits::WHY_REPEATS)
}

pub struct Loaded {
    pub scenario: Scenario,
    pub path: Option<String>,
    pub label: String,
    /// Faults recorded in a trace, as 4 KiB page offsets, in order.
    pub recorded_faults: Vec<u64>,
    /// What the traced kernel recorded per range (empty for a scenario).
    pub kernel_recorded: Vec<KernelRecorded>,
}

pub fn load_scenario(name_or_path: &str) -> anyhow::Result<Loaded> {
    let p = Path::new(name_or_path);
    if p.exists() {
        let label = p.display().to_string();
        if is_empty_file(p) {
            anyhow::bail!(
                "{label}: empty file (expected a scenario (TOML) or a trace (memmap-lab-trace JSON Lines))"
            );
        }
        if is_trace(p) {
            let t = Trace::read(p)?;
            let s = t.to_scenario(&label).ok_or_else(|| {
                anyhow::anyhow!("{label}: the trace records no namespace to replay")
            })?;
            // The recorded namespaces, nodes and CPUs pass the limits of a scenario file.
            s.check(&label)?;
            let recorded_faults = t
                .events
                .iter()
                .filter_map(|e| match e {
                    memmap_model::trace::TraceEvent::DaxFault { pgoff, .. } => Some(*pgoff),
                    _ => None,
                })
                .collect();
            // The kernel's own durations per namespace / hot-plugged range, attributed to
            // the unscaled layout the trace records.
            let kernel_recorded = s
                .layouts(&label, 1.0)
                .map(|l| kernel_recorded::attribute(&t.events, &l))
                .unwrap_or_default();
            return Ok(Loaded {
                scenario: s,
                path: Some(label.clone()),
                label,
                recorded_faults,
                kernel_recorded,
            });
        }
        return Ok(Loaded {
            scenario: Scenario::read(p)?,
            path: Some(label.clone()),
            label,
            recorded_faults: Vec::new(),
            kernel_recorded: Vec::new(),
        });
    }
    if let Some((n, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
        let label = format!("shipped:{n}");
        return Ok(Loaded {
            scenario: Scenario::parse(&label, text)?,
            path: None,
            label,
            recorded_faults: Vec::new(),
            kernel_recorded: Vec::new(),
        });
    }
    anyhow::bail!(
        "{name_or_path}: no such file, and not a shipped scenario (shipped: {})",
        SHIPPED.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
    )
}

/// Nothing but whitespace in the file (an empty `.jsonl` was read as TOML and gave a TOML
/// parse error).
fn is_empty_file(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let mut head = Vec::new();
    if f.take(4096).read_to_end(&mut head).is_err() {
        return false;
    }
    head.len() < 4096 && head.iter().all(|b| b.is_ascii_whitespace())
}

/// A trace file starts with a `memmap-lab-trace` header line.
fn is_trace(p: &Path) -> bool {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let mut first = String::new();
    let _ = std::io::BufReader::new(f).take(4096).read_line(&mut first);
    first.contains(memmap_model::trace::TRACE_FORMAT)
}

pub fn host_info() -> HostInfo {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mem_total_bytes = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    let numa_nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.starts_with("node") && n[4..].parse::<u32>().is_ok()
                })
                .count() as u32
        })
        .unwrap_or(1)
        .max(1);
    HostInfo {
        hostname: read("/proc/sys/kernel/hostname"),
        kernel_release: read("/proc/sys/kernel/osrelease"),
        cpu_model,
        cpus_online: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        mem_total_bytes,
        numa_nodes,
    }
}

fn target_info(t: &Target) -> TargetInfo {
    let i = t.info();
    TargetInfo {
        kind: serde_json::to_value(&i.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        path: i.path.clone(),
        filesystem: i.filesystem.clone(),
        dax: i.dax,
        map_sync: i.map_sync,
        page_size_bytes: i.page_size_bytes,
        persistent: i.persistent,
        flush: i.flush.clone(),
        length_bytes: i.length_bytes,
        notes: i.notes.clone(),
    }
}

pub struct Prepared {
    pub scenario: Scenario,
    pub scenario_ref: ScenarioRef,
    pub layouts: Vec<RangeLayout>,
    pub kernel_recorded: Vec<KernelRecorded>,
    pub engine: Engine,
    pub config: RunConfig,
}

pub fn prepare(args: &RunArgs) -> anyhow::Result<Prepared> {
    let Loaded {
        scenario,
        path,
        label,
        recorded_faults,
        mut kernel_recorded,
    } = load_scenario(&args.scenario)?;
    anyhow::ensure!(
        args.scale > 0.0 && args.scale <= 1.0,
        "--scale {}: expected a factor in (0, 1]",
        args.scale
    );
    let layouts = scenario.layouts(&label, args.scale)?;
    check_has_memmap(&layouts, &label)?;
    let strat = args.strategy;
    strat
        .check_layout_rules(scenario.kernel.subsection_hotplug)
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let params = strategy_params(args, strat, scenario.host.cpus_per_node)?;
    let faults = fault_config(args, &scenario.faults, &recorded_faults, &label)?;
    // Threads over all ranges, before any is started (the engine starts them per range).
    let ranges = layouts.len() as u64;
    for (field, per_range) in [
        (
            "init threads (--threads or the strategy's) * ranges",
            params.threads,
        ),
        (
            "fault threads (--fault-threads or faults.threads_per_namespace) * ranges",
            faults.threads_per_namespace,
        ),
    ] {
        limits::at_most(
            field,
            u64::from(per_range) * ranges,
            u64::from(limits::MAX_THREADS),
            limits::WHY_THREADS,
        )
        .map_err(anyhow::Error::msg)?;
    }
    let full = engine::full_memmap_bytes(&layouts, strat);
    let mut notes = Vec::new();
    let window = choose_window(args, full, &mut notes)?;
    let tgt = open_target(args, window.unwrap_or(full), window)?;
    let tinfo = target_info(&tgt);
    let engine = Engine::new(
        EngineOptions {
            strategy: strat,
            params: params.clone(),
            faults: faults.clone(),
            verify: args.verify,
            persist_memmap: args.persist_memmap,
            recorded_faults: std::sync::Arc::new(recorded_faults),
        },
        &layouts,
        tgt,
        window,
    )?;
    notes.extend(engine.notes.iter().cloned());
    let host_cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let scen_cpus = scenario.host.nodes * scenario.host.cpus_per_node;
    if host_cpus < scen_cpus {
        notes.push(format!(
            "scenario host has {scen_cpus} CPUs, this machine {host_cpus}: threads time-share the CPUs here"
        ));
    }
    if args.scale != 1.0 {
        notes.push(format!("sizes scaled by {} from the scenario", args.scale));
        if !kernel_recorded.is_empty() {
            kernel_recorded.clear();
            notes.push(
                "kernel_recorded omitted: the trace's durations are of the unscaled sizes".into(),
            );
        }
    }
    if tinfo.persistent && !args.persist_memmap {
        notes.push(
            "persistent target: stored lines are not written back (the kernel does not flush \
             its memmap); --persist-memmap adds the write-back"
                .into(),
        );
    }
    let config = RunConfig {
        strategy: strat.name().into(),
        params,
        faults,
        repeats_requested: args.repeat,
        verify: args.verify,
        target: tinfo,
        window: engine.window.clone(),
        namespace_concurrency: strat.namespace_concurrency().into(),
        notes,
    };
    let scenario_ref = ScenarioRef {
        name: scenario.name.clone(),
        path,
        description: scenario.description.clone(),
        source: scenario.source.clone(),
        scale: args.scale,
    };
    Ok(Prepared {
        scenario,
        scenario_ref,
        layouts,
        kernel_recorded,
        engine,
        config,
    })
}

/// Raw and sector namespaces have no memmap (no pfn device: `pmem_attach_disk` maps them
/// with `devm_memremap`, no struct pages); a scenario with nothing else has nothing to
/// replay (the target then said "cannot map 0 bytes").
fn check_has_memmap(layouts: &[RangeLayout], label: &str) -> anyhow::Result<()> {
    if layouts.iter().any(|l| l.struct_pages_written > 0) {
        return Ok(());
    }
    let what: Vec<String> = layouts
        .iter()
        .map(|l| match &l.namespace {
            Some(n) => format!("{} (mode={})", l.name, n.mode),
            None => l.name.clone(),
        })
        .collect();
    anyhow::bail!(
        "{label}: no struct pages to initialise: {} (raw and sector mode namespaces have no memmap: no pfn device, so no struct pages; use mode=fsdax or mode=devdax)",
        what.join(", ")
    )
}

/// The strategy's parameters: its defaults for the scenario's CPUs per node, with
/// the command line's overrides.
fn strategy_params(
    args: &RunArgs,
    strat: Strategy,
    cpus_per_node: u32,
) -> anyhow::Result<StrategyParams> {
    let mut params = strat.default_params(cpus_per_node);
    if let Some(t) = args.threads {
        anyhow::ensure!(t >= 1, "--threads must be at least 1");
        params.threads = t;
    }
    if let Some(r) = args.sub_ranges {
        anyhow::ensure!(r >= 1, "--sub-ranges must be at least 1");
        params.sub_ranges = r;
    }
    if let Some(c) = args.chunk_pages {
        anyhow::ensure!(c >= 1, "--chunk-pages must be at least 1");
        params.chunk_pages = c;
    }
    if args.sync_lock.as_deref() == Some("sub-range") {
        params.sync_lock = SyncLock::SubRange;
    }
    Ok(params)
}

/// The emulated application faults: the scenario's, a trace's recorded DAX faults
/// (replayed unless told otherwise), or the command line's.
fn fault_config(
    args: &RunArgs,
    fs: &FaultSpec,
    recorded_faults: &[u64],
    label: &str,
) -> anyhow::Result<FaultConfig> {
    let fault_size = args.fault_size.clone().unwrap_or(fs.size.clone());
    let fault_bytes = layout::parse_size(&fault_size).context("--fault-size")?;
    anyhow::ensure!(
        fault_bytes == 4096 || fault_bytes == 2 << 20,
        "--fault-size {fault_size}: expected 4K (PTE) or 2M (PMD)"
    );
    // A trace with recorded faults replays them unless told otherwise.
    let pattern = args
        .faults
        .clone()
        .unwrap_or(if recorded_faults.is_empty() {
            fs.pattern.clone()
        } else {
            "trace".into()
        });
    let recorded = pattern == "trace";
    let faults = FaultConfig {
        threads_per_namespace: args.fault_threads.unwrap_or(fs.threads_per_namespace),
        touches_per_thread: args.touches.unwrap_or(if recorded {
            recorded_faults.len() as u64
        } else {
            fs.touches_per_thread
        }),
        fault_bytes,
        zipf_exponent: fs.zipf_exponent,
        think_ns: (args.think_us.unwrap_or(fs.think_us).max(0.0) * 1000.0) as u64,
        seed: args.seed,
        trace: recorded.then(|| label.to_string()),
        pattern,
    };
    if faults.pattern == "trace" {
        anyhow::ensure!(
            !recorded_faults.is_empty(),
            "--faults trace: {label} holds no recorded DAX faults (give a trace recorded by memmap-collect)"
        );
    } else {
        crate::faults::FaultPicker::new(&faults.pattern, 1, 0, 1, 0, 1.0)?;
    }
    Ok(faults)
}

/// The reused window (`--window`, or chosen when the memmap would not fit in the
/// available memory); None to store the whole memmap.
fn choose_window(
    args: &RunArgs,
    full: u64,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<u64>> {
    let window = match &args.window {
        Some(w) => Some(
            limits::at_most(
                "--window",
                layout::parse_size(w).context("--window")?,
                limits::MAX_PHYS_END,
                limits::WHY_PHYS,
            )
            .map_err(anyhow::Error::msg)?,
        ),
        None if args.target.is_none() => {
            let avail = target::mem_available_bytes().unwrap_or(u64::MAX);
            if full > avail / 10 * 6 {
                let w = (avail / 4).min(8 << 30) / (2 << 20) * (2 << 20);
                notes.push(format!(
                    "memmap needs {} but only {} of memory is available: reused window of {} chosen automatically",
                    layout::format_size(full),
                    layout::format_size(avail),
                    layout::format_size(w)
                ));
                Some(w)
            } else {
                None
            }
        }
        None => None,
    };
    if let Some(w) = window {
        anyhow::ensure!(
            w < full,
            "--window {} is not smaller than the memmap ({}): drop --window",
            layout::format_size(w),
            layout::format_size(full)
        );
    }
    Ok(window)
}

/// Open the target for `len` bytes of memmap.
fn open_target(args: &RunArgs, len: u64, window: Option<u64>) -> anyhow::Result<Target> {
    let spec = TargetSpec {
        path: args.target.clone(),
        destroy_data: args.destroy_data,
        keep_file: args.keep_target,
    };
    let tgt = Target::open(&spec, len).map_err(|e| {
        // Only a target too small for the memmap is helped by a reused window.
        let hint = match (&e, window) {
            (target::TargetError::NoSpace { .. } | target::TargetError::TooSmall { .. }, None) => {
                " (use --window SIZE to store round a smaller reused window)"
            }
            _ => "",
        };
        anyhow::Error::new(e).context(format!(
            "opening the target for {} of memmap{hint}",
            layout::format_size(len)
        ))
    })?;
    Ok(tgt)
}

/// Run all repeats, rewriting the run file after each so partial runs survive.
/// Returns the run file and whether every repeat passed its checks.
pub fn run(args: &RunArgs, interrupted: Arc<AtomicBool>) -> anyhow::Result<RunFile> {
    // The run file must not be the scenario or trace it replays, nor the target: checked
    // before anything is read, created or written (and again at every write).
    let scenario_path = Path::new(&args.scenario);
    let mut avoid = Vec::new();
    if scenario_path.exists() {
        avoid.push(Avoid {
            role: "scenario/trace",
            path: scenario_path,
        });
    }
    if let Some(t) = &args.target {
        avoid.push(Avoid::target(t));
    }
    output::check_destination(&args.output, &avoid).context("the run file (-o)")?;
    let prep = prepare(args)?;
    let mut rf = RunFile {
        format: RUN_FORMAT.into(),
        version: RUN_VERSION,
        complete: false,
        interrupted: false,
        tool: format!("memmap-replay {}", env!("CARGO_PKG_VERSION")),
        created_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        scenario: prep.scenario_ref.clone(),
        config: prep.config.clone(),
        host: host_info(),
        layout: prep.layouts.clone(),
        kernel_recorded: prep.kernel_recorded.clone(),
        repeats: Vec::new(),
    };
    if let Some(dir) = args.output.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    rf.write_avoiding(&args.output, &avoid)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let bar = indicatif::ProgressBar::new(args.repeat as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} repeats {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", prep.scenario.name, args.strategy.name()));
    for i in 0..args.repeat {
        if interrupted.load(Ordering::Acquire) {
            rf.interrupted = true;
            break;
        }
        let rep = prep.engine.run_repeat(i)?;
        bar.set_message(format!(
            "complete {:.1} ms, {:.2} GB/s, p99 stall {:.1} us",
            rep.metrics.time_to_complete_ns as f64 / 1e6,
            rep.metrics.memmap_bytes_per_s / 1e9,
            rep.metrics.stall_p99_ns as f64 / 1e3
        ));
        rf.repeats.push(rep);
        rf.write_avoiding(&args.output, &avoid)
            .with_context(|| format!("writing {}", args.output.display()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    // A signal during the last repeat stopped nothing: every requested repeat is there,
    // the run is complete (not "interrupted, 5 of 5 repeats").
    // Only the flag ends the loop early (errors return), so incomplete = interrupted.
    rf.complete = rf.repeats.len() == args.repeat as usize;
    rf.interrupted = !rf.complete;
    rf.write_avoiding(&args.output, &avoid)
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(rf)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Fault stalls split by what the namespace was doing when the fault came, from the
/// recorded fault samples, and the median duration of one init unit (a sub-range for
/// williams-async): the yardstick for memmap_sync stalls.
pub fn stall_phases(rep: &Repeat) -> serde_json::Value {
    let populate_end = rep
        .namespaces
        .iter()
        .map(|n| n.populate_end_ns)
        .max()
        .unwrap_or(0);
    let complete = rep.metrics.time_to_complete_ns;
    let mut during_populate = Vec::new();
    let mut during_init = Vec::new();
    let mut after = 0u64;
    for s in &rep.stalls.samples {
        if s.t_ns < populate_end {
            during_populate.push(s.stall_ns);
        } else if s.t_ns < complete {
            during_init.push(s.stall_ns);
        } else {
            after += 1;
        }
    }
    let pct = |v: &mut Vec<u64>, q: f64| -> u64 {
        if v.is_empty() {
            return 0;
        }
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let mut units: Vec<u64> = rep
        .threads
        .iter()
        .filter(|t| t.role != ThreadRole::Fault)
        .flat_map(|t| t.spans.iter())
        .filter(|s| s.kind == SpanKind::Init)
        .map(|s| s.end_ns - s.start_ns)
        .collect();
    serde_json::json!({
        "faults_during_populate": during_populate.len(),
        "stall_max_during_populate_ns": pct(&mut during_populate, 1.0),
        "faults_during_init": during_init.len(),
        "stall_p50_during_init_ns": pct(&mut during_init, 0.5),
        "stall_p99_during_init_ns": pct(&mut during_init, 0.99),
        "stall_max_during_init_ns": pct(&mut during_init, 1.0),
        "faults_after_complete": after,
        "init_unit_median_ns": pct(&mut units, 0.5),
        "init_unit_p99_ns": pct(&mut units, 0.99),
    })
}

/// Medians over repeats of the headline metrics.
pub fn summary_json(rf: &RunFile, path: &Path) -> serde_json::Value {
    let m =
        |f: &dyn Fn(&Metrics) -> f64| median(rf.repeats.iter().map(|r| f(&r.metrics)).collect());
    let verify_errors: u64 = rf
        .repeats
        .iter()
        .filter_map(|r| r.verify.as_ref())
        .map(|v| v.errors)
        .sum();
    serde_json::json!({
        "run_file": path.display().to_string(),
        "scenario": rf.scenario.name,
        "strategy": rf.config.strategy,
        "repeats": rf.repeats.len(),
        "complete": rf.complete,
        "interrupted": rf.interrupted,
        "target": rf.config.target.kind,
        "window": rf.config.window,
        "median": {
            "time_to_available_ms": m(&|x| x.time_to_available_ns as f64) / 1e6,
            "time_to_complete_ms": m(&|x| x.time_to_complete_ns as f64) / 1e6,
            "populate_ms": m(&|x| x.populate_ns as f64) / 1e6,
            "init_ms": m(&|x| x.init_ns as f64) / 1e6,
            "memmap_gb_per_s": m(&|x| x.memmap_bytes_per_s) / 1e9,
            "stall_p50_us": m(&|x| x.stall_p50_ns as f64) / 1e3,
            "stall_p99_us": m(&|x| x.stall_p99_ns as f64) / 1e3,
            "stall_max_us": m(&|x| x.stall_max_ns as f64) / 1e3,
            "engine_efficiency": m(&|x| x.engine_efficiency),
            "fraction_of_nt_roofline": m(&|x| x.fraction_of_nt_roofline),
        },
        "stall_phases": rf.repeats.iter().map(stall_phases).collect::<Vec<_>>(),
        "struct_pages_written": rf.repeats.first().map(|r| r.metrics.struct_pages_written),
        "uninitialised_reads": rf.repeats.iter().map(|r| r.metrics.uninitialised_reads).sum::<u64>(),
        "verify_errors": verify_errors,
        "kernel_vs_replay": kernel_recorded::kernel_vs_replay(rf),
        "notes": rf.config.notes,
    })
}

/// The human summary of a run (what `run` prints on stdout).
pub fn render_human(rf: &RunFile, path: &Path) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    // Writing to a String cannot fail.
    macro_rules! w {
        ($($t:tt)*) => {
            let _ = writeln!(o, $($t)*);
        };
    }
    let s = summary_json(rf, path);
    let med = &s["median"];
    let f = |k: &str| med[k].as_f64().unwrap_or(0.0);
    w!(
        "{} / {}: {} repeats{}",
        rf.scenario.name,
        rf.config.strategy,
        rf.repeats.len(),
        if rf.interrupted { " (interrupted)" } else { "" }
    );
    let t = &rf.config.target;
    w!(
        "  target {} ({}{}), DAX {}, MAP_SYNC {}, page {} KiB, persistent {}",
        t.kind,
        t.path.as_deref().unwrap_or("anonymous memory"),
        t.filesystem
            .as_deref()
            .map(|f| format!(" on {f}"))
            .unwrap_or_default(),
        t.dax,
        t.map_sync,
        t.page_size_bytes / 1024,
        t.persistent
    );
    w!(
        "  threads {}, store {:?}, {}",
        rf.config.params.threads,
        rf.config.params.store,
        rf.config.namespace_concurrency
    );
    if let Some(w) = &rf.config.window {
        w!(
            "  REUSED WINDOW: {} of {} memmap ({})",
            layout::format_size(w.window_bytes),
            layout::format_size(w.full_memmap_bytes),
            w.method
        );
    }
    w!(
        "  median time to available  {:>10.2} ms",
        f("time_to_available_ms")
    );
    w!(
        "  median time to complete   {:>10.2} ms",
        f("time_to_complete_ms")
    );
    w!("  median populate (phase 1) {:>10.2} ms", f("populate_ms"));
    w!("  median init (phase 2)     {:>10.2} ms", f("init_ms"));
    w!(
        "  median memmap bandwidth   {:>10.2} GB/s",
        f("memmap_gb_per_s")
    );
    w!(
        "  median fault stall p50/p99/max {:.1} / {:.1} / {:.1} us",
        f("stall_p50_us"),
        f("stall_p99_us"),
        f("stall_max_us")
    );
    w!(
        "  engine efficiency         {:>10.3} (bare store loop time / init time)",
        f("engine_efficiency")
    );
    w!(
        "  fraction of NT roofline   {:>10.3}",
        f("fraction_of_nt_roofline")
    );
    for k in kernel_recorded::kernel_vs_replay(rf)
        .iter()
        .filter(|k| k.kernel_ms.is_some() || k.predicted_kernel_ms.is_some())
    {
        w!(
            "  {}: kernel recorded {} ms | replay init {} ms | predicted kernel {} ms (replay/kernel {})",
            k.name,
            kernel_recorded::fmt_opt(k.kernel_ms, 3),
            kernel_recorded::fmt_opt(k.replay_ms, 3),
            kernel_recorded::fmt_opt(k.predicted_kernel_ms, 3),
            kernel_recorded::fmt_opt(k.replay_over_kernel, 3)
        );
    }
    if rf.config.verify {
        w!("  verify errors             {:>10}", s["verify_errors"]);
    }
    for n in &rf.config.notes {
        w!("  note: {n}");
    }
    w!("  run file: {}", path.display());
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RunArgs,
    }

    fn parse(extra: &[&str]) -> Result<RunArgs, String> {
        let base = [
            "run",
            "qemu-16g",
            "--strategy",
            "williams-mt",
            "-o",
            "x.json",
        ];
        Cli::try_parse_from(base.iter().copied().chain(extra.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    const COUNT_FLAGS: &[(&str, u64)] = &[
        ("--threads", limits::MAX_THREADS as u64),
        ("--fault-threads", limits::MAX_THREADS as u64),
        ("--sub-ranges", limits::MAX_SUB_RANGES as u64),
        ("--chunk-pages", limits::MAX_CHUNK_PAGES),
        ("--touches", limits::MAX_TOUCHES),
        ("--repeat", limits::MAX_REPEATS as u64),
    ];

    proptest! {
        /// Any number for a count flag: taken when within its limit, else refused naming
        /// the flag and the limit.
        #[test]
        fn count_flags_are_bounded(i in 0..COUNT_FLAGS.len(), v in prop_oneof![
            0u64..10, 4090u64..4100, any::<u64>(), Just(u64::MAX)
        ]) {
            let (flag, max) = COUNT_FLAGS[i];
            let value = v.to_string();
            match parse(&[flag, &value]) {
                Ok(a) => {
                    let got = match flag {
                        "--threads" => a.threads.map(u64::from),
                        "--fault-threads" => a.fault_threads.map(u64::from),
                        "--sub-ranges" => a.sub_ranges.map(u64::from),
                        "--chunk-pages" => a.chunk_pages,
                        "--touches" => a.touches,
                        _ => Some(u64::from(a.repeat)),
                    };
                    prop_assert_eq!(got, Some(v));
                    prop_assert!(v <= max);
                }
                Err(e) => {
                    prop_assert!(e.contains(flag), "{}", e);
                    prop_assert!(v > max || v == 0 || e.contains("whole number"), "{}", e);
                }
            }
        }

        #[test]
        fn think_time_is_finite_and_bounded(v in prop_oneof![
            Just(f64::INFINITY), Just(f64::NAN), Just(-1.0), Just(1e300), 0.0f64..2e6
        ]) {
            match parse(&[&format!("--think-us={v}")]) {
                Ok(a) => prop_assert!(a.think_us.is_some_and(|t| t.is_finite() && t <= limits::MAX_THINK_US)),
                Err(e) => {
                    prop_assert!(e.contains("--think-us"), "{}", e);
                    prop_assert!(!(0.0..=limits::MAX_THINK_US).contains(&v), "{}", e);
                }
            }
        }
    }

    #[test]
    fn threads_over_all_ranges_are_bounded() {
        // williams-8socket: 8 namespaces; 4096 threads each is 32768 in all
        let a = parse(&["--threads", "4096"]).unwrap();
        let a = RunArgs {
            scenario: "williams-8socket".into(),
            ..a
        };
        let e = format!("{:#}", prepare(&a).err().unwrap());
        assert!(
            e.contains("init threads") && e.contains("32768") && e.contains("4096"),
            "{e}"
        );
    }

    fn tmp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("memmap-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn an_empty_file_says_empty_file() {
        for (name, text) in [("empty.jsonl", ""), ("blank.toml", "\n  \n")] {
            let p = tmp(name, text);
            let e = format!("{:#}", load_scenario(p.to_str().unwrap()).err().unwrap());
            assert!(e.contains("empty file"), "{e}");
            assert!(!e.contains("TOML parse error"), "{e}");
        }
    }

    #[test]
    fn a_sector_namespace_has_no_memmap_to_replay() {
        let text = SHIPPED[0]
            .1
            .replace("mode = \"fsdax\"", "mode = \"sector\"");
        assert!(text.contains("sector"));
        let p = tmp("sector.toml", &text);
        let a = RunArgs {
            scenario: p.display().to_string(),
            ..parse(&[]).unwrap()
        };
        let e = format!("{:#}", prepare(&a).err().unwrap());
        assert!(e.contains("mode=sector") && e.contains("no memmap"), "{e}");
        assert!(!e.contains("cannot map 0 bytes"), "{e}");
    }

    #[test]
    fn a_trace_with_a_huge_node_is_refused_before_anything_is_sized() {
        let header = r#"{"format":"memmap-lab-trace","version":1,"created_unix_s":0,"source":"live","kernel_release":"6.1","cmdline":"","numa_nodes":1,"cpus":4,"notes":[]}"#;
        let ns = r#"{"kind":"namespace","name":"ns","mode":"fsdax","map":"dev","size_bytes":1073741824,"align_bytes":2097152,"start_phys":4294967296,"node":2147483648}"#;
        let p = tmp("node.jsonl", &format!("{header}\n{ns}\n"));
        let e = format!("{:#}", load_scenario(p.to_str().unwrap()).err().unwrap());
        assert!(e.contains("host.nodes") || e.contains(".node"), "{e}");
        assert!(e.contains("2147483648") || e.contains("2147483649"), "{e}");
        assert!(e.contains("1024") || e.contains("1023"), "{e}");
    }
}
