//! `memmap-replay compare`: benchstat-style comparison of run files.
//!
//! Repeats are grouped by (scenario, strategy label); every metric of
//! [`Metrics`](memmap_model::run::Metrics) is summarised per group (n, median,
//! min, max, spread) and each non-baseline group is tested against the
//! scenario's baseline group with a two-sided Mann-Whitney U test, plus a
//! seeded bootstrap 95% CI of the ratio of medians. See `docs/compare.md`.
//!
//! [`compare_runs`] is the pure core (what `--json` prints); [`run`] reads the
//! files and prints either the JSON or the human table.

use anyhow::{bail, Context as _};
use memmap_model::run::{RecordFlavor, RunFile, StoreKind};
use polars::prelude::{col, len, Column, DataFrame, DataType, IntoLazy};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The exact distribution of U is used when the smaller side has at most this many values...
pub const EXACT_MAX_N: usize = 8;
/// ...and both sides together at most this many (bounds the cost of the count).
pub const EXACT_MAX_TOTAL: usize = 100;

/// Whether [`mann_whitney_u`] uses the exact distribution for sizes n1, n2.
pub fn uses_exact(n1: usize, n2: usize) -> bool {
    n1.min(n2) <= EXACT_MAX_N && n1 + n2 <= EXACT_MAX_TOTAL
}
/// Bootstrap resamples for the CI of the ratio of medians.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// Base seed of the bootstrap (mixed with scenario, metric and group names).
pub const BOOTSTRAP_SEED: u64 = 0x6d65_6d6d_6170_6c61; // "memmapla"

const SPREAD_DEFINITION: &str =
    "spread_pct = max(max - median, median - min) / median * 100 (largest deviation from the median, benchstat-style ±)";
const CI_DEFINITION: &str = "ratio_ci95 = 2.5th and 97.5th percentiles of median(group*)/median(baseline*) over 10000 seeded bootstrap resamples of each side";
const TEST_NAME: &str = "Mann-Whitney U, two-sided";

#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Run files to compare (memmap-lab-run JSON); the first file's group is the default baseline.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Print the comparison as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Baseline group: a full label (e.g. `williams-mt[threads=4]`) or a strategy name.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Significance level of the Mann-Whitney U test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
}

/// Which direction of a metric is an improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Time,
    Rate,
    Ratio,
}

struct MetricDef {
    name: &'static str,
    unit: &'static str,
    better: Better,
    kind: Kind,
    description: &'static str,
    get: fn(&memmap_model::run::Metrics) -> f64,
}

const METRICS: &[MetricDef] = &[
    MetricDef {
        name: "time_to_available_ns",
        unit: "ns",
        better: Better::Lower,
        kind: Kind::Time,
        description: "latest moment a namespace became usable",
        get: |m| m.time_to_available_ns as f64,
    },
    MetricDef {
        name: "time_to_complete_ns",
        unit: "ns",
        better: Better::Lower,
        kind: Kind::Time,
        description: "latest moment a namespace's memmap was fully initialised",
        get: |m| m.time_to_complete_ns as f64,
    },
    MetricDef {
        name: "init_ns",
        unit: "ns",
        better: Better::Lower,
        kind: Kind::Time,
        description: "wall time from the first init store to the last (phase 2)",
        get: |m| m.init_ns as f64,
    },
    MetricDef {
        name: "populate_ns",
        unit: "ns",
        better: Better::Lower,
        kind: Kind::Time,
        description: "sum over namespaces of vmemmap populate wall time (phase 1)",
        get: |m| m.populate_ns as f64,
    },
    MetricDef {
        name: "memmap_bytes_per_s",
        unit: "B/s",
        better: Better::Higher,
        kind: Kind::Rate,
        description: "memmap bytes written / init_ns",
        get: |m| m.memmap_bytes_per_s,
    },
    MetricDef {
        name: "stall_p50_ns",
        unit: "ns",
        better: Better::Lower,
        kind: Kind::Time,
        description: "median fault stall",
        get: |m| m.stall_p50_ns as f64,
    },
    MetricDef {
        name: "stall_p99_ns",
        unit: "ns",
        better: Better::Lower,
        kind: Kind::Time,
        description: "99th percentile fault stall",
        get: |m| m.stall_p99_ns as f64,
    },
    MetricDef {
        name: "stall_max_ns",
        unit: "ns",
        better: Better::Lower,
        kind: Kind::Time,
        description: "longest fault stall",
        get: |m| m.stall_max_ns as f64,
    },
    MetricDef {
        name: "engine_efficiency",
        unit: "ratio",
        better: Better::Higher,
        kind: Kind::Ratio,
        description: "bare store loop time / init_ns",
        get: |m| m.engine_efficiency,
    },
    MetricDef {
        name: "fraction_of_nt_roofline",
        unit: "ratio",
        better: Better::Higher,
        kind: Kind::Ratio,
        description: "memmap_bytes_per_s / same-run non-temporal store roofline",
        get: |m| m.fraction_of_nt_roofline,
    },
];

/// Everything `compare` computed; `--json` prints this.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub alpha: f64,
    /// Name of the significance test.
    pub test: &'static str,
    pub spread_definition: &'static str,
    pub ci_definition: &'static str,
    /// Smallest equal number of repeats per side for which the exact test can reach p <= alpha.
    pub min_repeats_for_significance: usize,
    /// One entry per input run, in input order.
    pub runs: Vec<RunSummary>,
    /// General remarks (e.g. that scenarios are compared separately).
    pub notes: Vec<String>,
    pub scenarios: Vec<ScenarioComparison>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Position in the input (0-based).
    pub index: usize,
    /// File the run was read from, when known.
    pub file: Option<String>,
    pub scenario: String,
    pub strategy: String,
    /// Group label the run's repeats were pooled into.
    pub group: String,
    pub repeats: usize,
    pub repeats_requested: u32,
    pub complete: bool,
    pub interrupted: bool,
    /// "interrupted", "incomplete", "no repeats", "dropped N non-finite values".
    pub flags: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioComparison {
    pub scenario: String,
    /// Label of the baseline group, if the scenario has one.
    pub baseline: Option<String>,
    pub groups: Vec<GroupInfo>,
    pub notes: Vec<String>,
    pub metrics: Vec<MetricComparison>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupInfo {
    pub label: String,
    pub strategy: String,
    /// The parameters that tell this group apart from other groups of the same strategy.
    pub distinguishing_params: BTreeMap<String, String>,
    /// Indices into `runs`.
    pub runs: Vec<usize>,
    pub repeats: usize,
    pub is_baseline: bool,
    /// Union of the flags of its runs ("interrupted", "incomplete", ...).
    pub flags: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MetricComparison {
    pub metric: &'static str,
    pub description: &'static str,
    /// Unit of every value of this metric in the JSON (ns, B/s, ratio).
    pub unit: &'static str,
    pub better: Better,
    pub groups: Vec<GroupStats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupStats {
    pub group: String,
    pub is_baseline: bool,
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// See `spread_definition`; None when the median is 0.
    pub spread_pct: Option<f64>,
    /// The per-repeat values, in input order.
    pub values: Vec<f64>,
    /// Comparison with the baseline group (absent for the baseline itself).
    pub vs_baseline: Option<Delta>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Delta {
    pub baseline: String,
    /// (median - baseline median) / baseline median * 100; None when the baseline median is 0.
    pub delta_pct: Option<f64>,
    /// median / baseline median; None when the baseline median is 0.
    pub ratio_of_medians: Option<f64>,
    /// Bootstrap 95% CI of `ratio_of_medians`; None when a resampled baseline median is 0.
    pub ratio_ci95: Option<[f64; 2]>,
    pub p_value: f64,
    /// "mann-whitney-u exact" or "mann-whitney-u normal approximation".
    pub test: &'static str,
    pub n_baseline: usize,
    pub n: usize,
    /// Smallest p the test could give with these sample sizes (no ties).
    pub min_possible_p: f64,
    /// p_value <= alpha (never true when min_possible_p > alpha).
    pub significant: bool,
    /// "better", "worse" or "~" (no significant difference).
    pub verdict: &'static str,
    pub note: Option<String>,
}

/// Read the files, compare, print the table (or JSON) on stdout.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    if args.files.is_empty() {
        bail!("compare: no run files given");
    }
    let mut runs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        runs.push(RunFile::read(path)?);
    }
    let mut cmp = compare_runs(&runs, args.baseline.as_deref(), args.alpha)?;
    for (summary, path) in cmp.runs.iter_mut().zip(&args.files) {
        summary.file = Some(path.display().to_string());
    }
    let text = if args.json {
        let mut t = serde_json::to_string_pretty(&cmp).context("serialising the comparison")?;
        t.push('\n');
        t
    } else {
        render_table(&cmp)
    };
    // Not println!: a closed pipe (`| head`) must end quietly, not panic.
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the comparison to stdout")
        }
        _ => Ok(()),
    }
}

/// The identifying dimensions of a run besides its strategy name.
fn run_dims(r: &RunFile) -> Vec<(&'static str, String)> {
    let p = &r.config.params;
    vec![
        ("threads", p.threads.to_string()),
        ("sub_ranges", p.sub_ranges.to_string()),
        ("chunk_pages", p.chunk_pages.to_string()),
        ("sync_lock", format!("{:?}", p.sync_lock).to_lowercase()),
        (
            "store",
            match p.store {
                StoreKind::Regular => "regular",
                StoreKind::NonTemporal => "non-temporal",
            }
            .to_string(),
        ),
        (
            "record",
            match p.record {
                RecordFlavor::Poison => "poison",
                RecordFlavor::DeviceData => "device-data",
            }
            .to_string(),
        ),
        ("target", r.config.target.kind.clone()),
        ("faults", r.config.faults.pattern.clone()),
        (
            "fault_threads",
            r.config.faults.threads_per_namespace.to_string(),
        ),
        ("scale", format!("{}", r.scenario.scale)),
    ]
}

/// Label of every run: the strategy, suffixed with the dimensions in which runs of
/// the same strategy (over all the input) differ.
fn group_labels(runs: &[RunFile]) -> Vec<(String, BTreeMap<String, String>)> {
    let dims: Vec<_> = runs.iter().map(run_dims).collect();
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            let same: Vec<usize> = (0..runs.len())
                .filter(|&j| runs[j].config.strategy == r.config.strategy)
                .collect();
            let mut differing = BTreeMap::new();
            let mut parts = Vec::new();
            for (k, (name, value)) in dims[i].iter().enumerate() {
                if same.iter().any(|&j| dims[j][k].1 != *value) {
                    parts.push(format!("{name}={value}"));
                    differing.insert(name.to_string(), value.clone());
                }
            }
            let label = if parts.is_empty() {
                r.config.strategy.clone()
            } else {
                format!("{}[{}]", r.config.strategy, parts.join(","))
            };
            (label, differing)
        })
        .collect()
}

fn n_choose_k(n: usize, k: usize) -> f64 {
    let k = k.min(n - k.min(n));
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Smallest two-sided p-value the exact test can give for sizes n1, n2 (no ties).
pub fn min_possible_p(n1: usize, n2: usize) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    if uses_exact(n1, n2) {
        (2.0 / n_choose_k(n1 + n2, n1)).min(1.0)
    } else {
        0.0
    }
}

/// Smallest n such that n repeats on each side can be significant at `alpha`.
pub fn min_repeats_for(alpha: f64) -> usize {
    (1..=EXACT_MAX_N)
        .find(|&n| min_possible_p(n, n) <= alpha)
        .unwrap_or(EXACT_MAX_N + 1)
}

/// Compare the repeats of `runs`. `baseline` is a group label or a strategy name;
/// without it each scenario's baseline is the group of its first run.
pub fn compare_runs(
    runs: &[RunFile],
    baseline: Option<&str>,
    alpha: f64,
) -> anyhow::Result<Comparison> {
    if runs.is_empty() {
        bail!("compare: no run files given");
    }
    if !(alpha > 0.0 && alpha < 1.0) {
        bail!("compare: --alpha must be between 0 and 1 (exclusive), got {alpha}");
    }
    let total_repeats: usize = runs.iter().map(|r| r.repeats.len()).sum();
    if total_repeats == 0 {
        bail!(
            "compare: none of the {} run file(s) has a finished repeat: nothing to compare",
            runs.len()
        );
    }

    let labels = group_labels(runs);

    // Scenarios and their groups, in order of first appearance.
    let mut scenario_order: Vec<String> = Vec::new();
    let mut groups_of: HashMap<String, Vec<GroupInfo>> = HashMap::new();
    let mut summaries = Vec::with_capacity(runs.len());

    // Long table: one row per repeat x metric.
    let mut col_scenario: Vec<String> = Vec::new();
    let mut col_group: Vec<String> = Vec::new();
    let mut col_metric: Vec<&'static str> = Vec::new();
    let mut col_value: Vec<f64> = Vec::new();

    for (i, r) in runs.iter().enumerate() {
        let scen = r.scenario.name.clone();
        let (label, differing) = &labels[i];
        let mut flags = Vec::new();
        if r.interrupted {
            flags.push("interrupted".to_string());
        }
        if !r.complete {
            flags.push("incomplete".to_string());
        }
        if r.repeats.is_empty() {
            flags.push("no repeats".to_string());
        }
        let mut dropped = 0usize;
        for rep in &r.repeats {
            for m in METRICS {
                let v = (m.get)(&rep.metrics);
                if !v.is_finite() {
                    dropped += 1;
                    continue;
                }
                col_scenario.push(scen.clone());
                col_group.push(label.clone());
                col_metric.push(m.name);
                col_value.push(v);
            }
        }
        if dropped > 0 {
            flags.push(format!("dropped {dropped} non-finite values"));
        }

        if !groups_of.contains_key(&scen) {
            scenario_order.push(scen.clone());
        }
        let groups = groups_of.entry(scen.clone()).or_default();
        let g = match groups.iter_mut().position(|g| g.label == *label) {
            Some(pos) => &mut groups[pos],
            None => {
                groups.push(GroupInfo {
                    label: label.clone(),
                    strategy: r.config.strategy.clone(),
                    distinguishing_params: differing.clone(),
                    runs: Vec::new(),
                    repeats: 0,
                    is_baseline: false,
                    flags: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        g.runs.push(i);
        g.repeats += r.repeats.len();
        for f in &flags {
            if !g.flags.contains(f) {
                g.flags.push(f.clone());
            }
        }

        summaries.push(RunSummary {
            index: i,
            file: None,
            scenario: scen,
            strategy: r.config.strategy.clone(),
            group: label.clone(),
            repeats: r.repeats.len(),
            repeats_requested: r.config.repeats_requested,
            complete: r.complete,
            interrupted: r.interrupted,
            flags,
        });
    }

    // Baselines.
    let mut baselines: HashMap<String, Option<String>> = HashMap::new();
    let mut baseline_found = false;
    for scen in &scenario_order {
        let groups = &groups_of[scen];
        let chosen = match baseline {
            None => {
                let first_run = runs
                    .iter()
                    .position(|r| r.scenario.name == *scen)
                    .expect("scenario came from a run");
                Some(labels[first_run].0.clone())
            }
            Some(b) => {
                if let Some(g) = groups.iter().find(|g| g.label == b) {
                    Some(g.label.clone())
                } else {
                    let by_strategy: Vec<_> = groups.iter().filter(|g| g.strategy == b).collect();
                    match by_strategy.len() {
                        0 => None,
                        1 => Some(by_strategy[0].label.clone()),
                        _ => bail!(
                            "compare: baseline {b:?} is ambiguous in scenario {scen:?}: use one of {}",
                            by_strategy
                                .iter()
                                .map(|g| g.label.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                }
            }
        };
        baseline_found |= chosen.is_some();
        baselines.insert(scen.clone(), chosen);
    }
    if let (Some(b), false) = (baseline, baseline_found) {
        let all: Vec<String> = scenario_order
            .iter()
            .flat_map(|s| groups_of[s].iter().map(|g| g.label.clone()))
            .collect();
        bail!(
            "compare: baseline {b:?} matches no group; the groups are: {}",
            all.join(", ")
        );
    }

    // Aggregate with polars: per (scenario, group, metric) n, median, min, max, values.
    let df = DataFrame::new_infer_height(vec![
        Column::new("scenario".into(), col_scenario),
        Column::new("group".into(), col_group),
        Column::new("metric".into(), col_metric),
        Column::new("value".into(), col_value),
    ])
    .map_err(|e| anyhow::anyhow!("building the repeat table: {e}"))?;
    let agg = df
        .lazy()
        .group_by_stable([col("scenario"), col("group"), col("metric")])
        .agg([
            len().cast(DataType::UInt64).alias("n"),
            col("value").median().alias("median"),
            col("value").min().alias("min"),
            col("value").max().alias("max"),
            col("value").alias("values"),
        ])
        .collect()
        .context("aggregating the repeat table")?;

    struct Agg {
        n: usize,
        median: f64,
        min: f64,
        max: f64,
        values: Vec<f64>,
    }
    let mut aggs: HashMap<(String, String, String), Agg> = HashMap::new();
    {
        let scen = agg.column("scenario")?.str()?;
        let group = agg.column("group")?.str()?;
        let metric = agg.column("metric")?.str()?;
        let n = agg.column("n")?.u64()?;
        let median = agg.column("median")?.f64()?;
        let min = agg.column("min")?.f64()?;
        let max = agg.column("max")?.f64()?;
        let values = agg.column("values")?.list()?;
        for i in 0..agg.height() {
            let key = (
                scen.get(i).unwrap_or_default().to_string(),
                group.get(i).unwrap_or_default().to_string(),
                metric.get(i).unwrap_or_default().to_string(),
            );
            let vals: Vec<f64> = match values.get_as_series(i) {
                Some(s) => {
                    let ca = s.f64()?;
                    (0..ca.len()).filter_map(|j| ca.get(j)).collect()
                }
                None => Vec::new(),
            };
            aggs.insert(
                key,
                Agg {
                    n: n.get(i).unwrap_or(0) as usize,
                    median: median.get(i).unwrap_or(f64::NAN),
                    min: min.get(i).unwrap_or(f64::NAN),
                    max: max.get(i).unwrap_or(f64::NAN),
                    values: vals,
                },
            );
        }
    }

    let min_n = min_repeats_for(alpha);
    let mut notes = Vec::new();
    if scenario_order.len() > 1 {
        notes.push(format!(
            "{} scenarios: runs of different scenarios are compared only within the same scenario",
            scenario_order.len()
        ));
    }
    if runs.iter().any(|r| r.interrupted || !r.complete) {
        notes.push(
            "interrupted or incomplete runs are included (their finished repeats) and flagged"
                .to_string(),
        );
    }

    let mut scenarios = Vec::new();
    for scen in &scenario_order {
        let mut groups = groups_of.remove(scen).unwrap_or_default();
        let base = baselines.get(scen).cloned().flatten();
        let mut snotes = Vec::new();
        for g in &mut groups {
            g.is_baseline = base.as_deref() == Some(g.label.as_str());
        }
        match &base {
            None => snotes.push(format!(
                "no group matches baseline {:?} in this scenario: no deltas",
                baseline.unwrap_or("")
            )),
            Some(b) => {
                if groups.len() == 1 {
                    snotes.push("only one group: nothing to compare".to_string());
                }
                if groups.iter().any(|g| g.label == *b && g.repeats == 0) {
                    snotes.push(format!("baseline {b} has no finished repeat: no deltas"));
                }
            }
        }

        let mut metrics = Vec::new();
        for m in METRICS {
            let key = |g: &str| (scen.clone(), g.to_string(), m.name.to_string());
            let base_agg = base.as_ref().and_then(|b| aggs.get(&key(b)));
            let mut gstats = Vec::new();
            for g in &groups {
                let Some(a) = aggs.get(&key(&g.label)) else {
                    continue;
                };
                let spread_pct = if a.median != 0.0 {
                    Some((a.max - a.median).max(a.median - a.min) / a.median.abs() * 100.0)
                } else {
                    None
                };
                let vs_baseline = match base_agg {
                    Some(b) if !g.is_baseline => Some(delta(
                        base.as_deref().unwrap_or_default(),
                        &b.values,
                        b.median,
                        &a.values,
                        a.median,
                        m.better,
                        alpha,
                        seed_for(scen, m.name, &g.label),
                    )),
                    _ => None,
                };
                gstats.push(GroupStats {
                    group: g.label.clone(),
                    is_baseline: g.is_baseline,
                    n: a.n,
                    median: a.median,
                    min: a.min,
                    max: a.max,
                    spread_pct,
                    values: a.values.clone(),
                    vs_baseline,
                });
            }
            if !gstats.is_empty() {
                metrics.push(MetricComparison {
                    metric: m.name,
                    description: m.description,
                    unit: m.unit,
                    better: m.better,
                    groups: gstats,
                });
            }
        }
        let mut too_few: Vec<String> = Vec::new();
        for g in metrics.iter().flat_map(|m| &m.groups) {
            if let Some(d) = &g.vs_baseline {
                let s = format!("{} ({}+{})", g.group, d.n_baseline, d.n);
                if d.min_possible_p > alpha && !too_few.contains(&s) {
                    too_few.push(s);
                }
            }
        }
        if !too_few.is_empty() {
            snotes.push(format!(
                "too few repeats for p <= alpha={alpha}: {}; need >= {min_n} repeats per side",
                too_few.join(", ")
            ));
        }
        scenarios.push(ScenarioComparison {
            scenario: scen.clone(),
            baseline: base,
            groups,
            notes: snotes,
            metrics,
        });
    }

    Ok(Comparison {
        alpha,
        test: TEST_NAME,
        spread_definition: SPREAD_DEFINITION,
        ci_definition: CI_DEFINITION,
        min_repeats_for_significance: min_n,
        runs: summaries,
        notes,
        scenarios,
    })
}

#[allow(clippy::too_many_arguments)]
fn delta(
    base_label: &str,
    base: &[f64],
    base_median: f64,
    x: &[f64],
    x_median: f64,
    better: Better,
    alpha: f64,
    seed: u64,
) -> Delta {
    let mw = mann_whitney_u(base, x);
    let min_p = min_possible_p(base.len(), x.len());
    let (delta_pct, ratio) = if base_median != 0.0 {
        (
            Some((x_median - base_median) / base_median.abs() * 100.0),
            Some(x_median / base_median),
        )
    } else {
        (None, None)
    };
    let significant = min_p <= alpha && mw.p_value <= alpha;
    let verdict = if !significant {
        "~"
    } else {
        let up = x_median > base_median;
        match (better, up) {
            _ if x_median == base_median => "~",
            (Better::Lower, false) | (Better::Higher, true) => "better",
            _ => "worse",
        }
    };
    let note = if min_p > alpha {
        Some(format!(
            "n={}+{}: the smallest possible p is {:.3} > alpha={alpha}; need >= {} repeats per side",
            base.len(),
            x.len(),
            min_p,
            min_repeats_for(alpha)
        ))
    } else if base_median == 0.0 {
        Some("baseline median is 0: no relative delta".to_string())
    } else {
        None
    };
    Delta {
        baseline: base_label.to_string(),
        delta_pct,
        ratio_of_medians: ratio,
        ratio_ci95: bootstrap_ratio_ci(base, x, seed),
        p_value: mw.p_value,
        test: mw.method,
        n_baseline: base.len(),
        n: x.len(),
        min_possible_p: min_p,
        significant,
        verdict,
        note,
    }
}

/// Median (mean of the two middle values for even n); NaN for an empty slice.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    median_sorted(&v)
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Result of [`mann_whitney_u`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U statistic of the first sample.
    pub u1: f64,
    pub p_value: f64,
    pub method: &'static str,
}

/// Two-sided Mann-Whitney U test of `x` against `y`.
///
/// Smaller side <= [`EXACT_MAX_N`] (and n1 + n2 <= [`EXACT_MAX_TOTAL`]): exact
/// permutation distribution of the rank sum (over the actual mid-ranks, so ties are
/// handled exactly), p = min(1, 2 * smaller tail). Otherwise: normal approximation with tie correction and continuity
/// correction (what scipy.stats.mannwhitneyu(method="asymptotic") computes).
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> MannWhitney {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return MannWhitney {
            u1: f64::NAN,
            p_value: 1.0,
            method: "none (empty sample)",
        };
    }
    let n = n1 + n2;
    // Pooled values with sample tag, sorted; mid-ranks doubled to stay integral.
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank2 = vec![0u64; n]; // 2 * mid-rank
    let mut tie_term = 0.0f64; // sum t^3 - t
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        // ranks i+1 ..= j+1, mid-rank (i+j+2)/2, doubled = i+j+2
        for r in rank2.iter_mut().take(j + 1).skip(i) {
            *r = (i + j + 2) as u64;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1_2: u64 = (0..n).filter(|&k| pooled[k].1).map(|k| rank2[k]).sum();
    let u1 = r1_2 as f64 / 2.0 - (n1 * (n1 + 1)) as f64 / 2.0;

    if uses_exact(n1, n2) {
        // Distribution of the doubled rank sum of the smaller side over all ways to
        // choose it from the pooled mid-ranks; two-sided p is the same for either side.
        let (m, obs) = if n1 <= n2 {
            (n1, r1_2 as usize)
        } else {
            let all: u64 = rank2.iter().sum();
            (n2, (all - r1_2) as usize)
        };
        // ways[k][s]: number of k-subsets of the pooled ranks with doubled rank sum s.
        let max_sum: usize = rank2.iter().map(|&r| r as usize).sum();
        let mut ways = vec![vec![0f64; max_sum + 1]; m + 1];
        ways[0][0] = 1.0;
        for &r in &rank2 {
            let r = r as usize;
            for k in (1..=m).rev() {
                for s in (r..=max_sum).rev() {
                    let add = ways[k - 1][s - r];
                    if add != 0.0 {
                        ways[k][s] += add;
                    }
                }
            }
        }
        let total: f64 = ways[m].iter().sum();
        let lower: f64 = ways[m][..=obs].iter().sum::<f64>() / total;
        let upper: f64 = ways[m][obs..].iter().sum::<f64>() / total;
        MannWhitney {
            u1,
            p_value: (2.0 * lower.min(upper)).min(1.0),
            method: "mann-whitney-u exact",
        }
    } else {
        let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
        let mu = n1f * n2f / 2.0;
        let var = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
        let p = if var <= 0.0 {
            1.0
        } else {
            let z = ((u1 - mu).abs() - 0.5) / var.sqrt();
            erfc(z / std::f64::consts::SQRT_2).min(1.0)
        };
        MannWhitney {
            u1,
            p_value: p,
            method: "mann-whitney-u normal approximation",
        }
    }
}

/// Complementary error function (Numerical Recipes `erfcc`, |relative error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let ans = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        ans
    } else {
        2.0 - ans
    }
}

/// SplitMix64: tiny, seedable, stable across crate versions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Seed of one (scenario, metric, group) comparison: independent of the other inputs.
fn seed_for(scenario: &str, metric: &str, group: &str) -> u64 {
    // FNV-1a over the names, mixed into the base seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scenario
        .bytes()
        .chain([0])
        .chain(metric.bytes())
        .chain([0])
        .chain(group.bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ BOOTSTRAP_SEED
}

/// Percentile bootstrap 95% CI of median(x) / median(base).
pub fn bootstrap_ratio_ci(base: &[f64], x: &[f64], seed: u64) -> Option<[f64; 2]> {
    if base.is_empty() || x.is_empty() {
        return None;
    }
    let mut rng = SplitMix64(seed);
    let mut ratios = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut bs = vec![0.0; base.len()];
    let mut xs = vec![0.0; x.len()];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for v in bs.iter_mut() {
            *v = base[rng.below(base.len())];
        }
        for v in xs.iter_mut() {
            *v = x[rng.below(x.len())];
        }
        bs.sort_by(f64::total_cmp);
        xs.sort_by(f64::total_cmp);
        let d = median_sorted(&bs);
        if d == 0.0 {
            return None;
        }
        ratios.push(median_sorted(&xs) / d);
    }
    ratios.sort_by(f64::total_cmp);
    Some([
        quantile_sorted(&ratios, 0.025),
        quantile_sorted(&ratios, 0.975),
    ])
}

/// Linear-interpolation quantile (type 7) of sorted values.
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

// ---------------------------------------------------------------- human output

fn metric_def(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

/// (unit label, divisor) for a block of values whose largest magnitude is `max`.
fn display_unit(kind: Kind, max: f64) -> (&'static str, f64) {
    let max = max.abs();
    match kind {
        Kind::Time => {
            if max >= 1e9 {
                ("s", 1e9)
            } else if max >= 1e6 {
                ("ms", 1e6)
            } else if max >= 1e3 {
                ("µs", 1e3)
            } else {
                ("ns", 1.0)
            }
        }
        Kind::Rate => {
            if max >= 1e9 {
                ("GB/s", 1e9)
            } else if max >= 1e6 {
                ("MB/s", 1e6)
            } else if max >= 1e3 {
                ("kB/s", 1e3)
            } else {
                ("B/s", 1.0)
            }
        }
        Kind::Ratio => ("", 1.0),
    }
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "?".to_string()
    } else if a == 0.0 {
        "0".to_string()
    } else if a < 10.0 {
        format!("{v:.3}")
    } else if a < 100.0 {
        format!("{v:.2}")
    } else if a < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_string()
    } else {
        format!("p={p:.3}")
    }
}

/// The benchstat-like text table of a comparison.
pub fn render_table(cmp: &Comparison) -> String {
    let mut out = String::new();
    let mut footnotes: Vec<String> = Vec::new();
    for note in &cmp.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for r in &cmp.runs {
        if !r.flags.is_empty() {
            let name = r
                .file
                .clone()
                .unwrap_or_else(|| format!("run #{}", r.index));
            let _ = writeln!(
                out,
                "! {name} ({}): {} ({} of {} repeats)",
                r.group,
                r.flags.join(", "),
                r.repeats,
                r.repeats_requested
            );
        }
    }
    if !cmp.notes.is_empty() || cmp.runs.iter().any(|r| !r.flags.is_empty()) {
        out.push('\n');
    }

    for sc in &cmp.scenarios {
        let _ = writeln!(
            out,
            "scenario: {}  ({} group{}, baseline: {})",
            sc.scenario,
            sc.groups.len(),
            if sc.groups.len() == 1 { "" } else { "s" },
            sc.baseline.as_deref().unwrap_or("none")
        );
        for n in &sc.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let label_of = |g: &str| -> String {
            let flagged = sc
                .groups
                .iter()
                .any(|gi| gi.label == g && !gi.flags.is_empty());
            if flagged {
                format!("{g} !")
            } else {
                g.to_string()
            }
        };
        let label_w = sc
            .groups
            .iter()
            .map(|g| label_of(&g.label).chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        for m in &sc.metrics {
            let Some(def) = metric_def(m.metric) else {
                continue;
            };
            let max = m.groups.iter().map(|g| g.median.abs()).fold(0.0, f64::max);
            let (ulabel, div) = display_unit(def.kind, max);
            let title = m.metric.strip_suffix("_ns").unwrap_or(m.metric);
            let unit_txt = if ulabel.is_empty() { "ratio" } else { ulabel };
            let _ = writeln!(
                out,
                "\n{title} ({unit_txt}, {} is better)",
                match m.better {
                    Better::Lower => "lower",
                    Better::Higher => "higher",
                }
            );
            let _ = writeln!(
                out,
                "{:<label_w$}  {:>18}  {:>8}  {:>17}  {:>8}  {:>6}",
                "group", "median ± spread", "delta", "ratio 95% CI", "p", "n"
            );
            for g in &m.groups {
                let med = format!(
                    "{}{}{}",
                    fmt_num(g.median / div),
                    ulabel,
                    g.spread_pct
                        .map(|s| format!(" ± {s:.0}%"))
                        .unwrap_or_default()
                );
                let (dcol, cicol, pcol, ncol) = match &g.vs_baseline {
                    None if g.is_baseline => (
                        "base".to_string(),
                        String::new(),
                        String::new(),
                        format!("{}", g.n),
                    ),
                    None => (
                        String::new(),
                        String::new(),
                        String::new(),
                        format!("{}", g.n),
                    ),
                    Some(d) => {
                        let dcol = if d.significant {
                            d.delta_pct
                                .map(|x| format!("{x:+.1}%"))
                                .unwrap_or_else(|| "changed".into())
                        } else {
                            "~".to_string()
                        };
                        if let Some(note) = &d.note {
                            if !footnotes.contains(note) {
                                footnotes.push(note.clone());
                            }
                        }
                        let ci = d
                            .ratio_ci95
                            .map(|[lo, hi]| format!("[{lo:.3}, {hi:.3}]"))
                            .unwrap_or_default();
                        (
                            dcol,
                            ci,
                            fmt_p(d.p_value),
                            format!("{}+{}", d.n_baseline, d.n),
                        )
                    }
                };
                let _ = writeln!(
                    out,
                    "{:<label_w$}  {:>18}  {:>8}  {:>17}  {:>8}  {:>6}",
                    label_of(&g.group),
                    med,
                    dcol,
                    cicol,
                    pcol,
                    ncol
                );
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{}; \"~\": no significant difference at alpha={}; delta = change of the median vs the baseline; ratio 95% CI = bootstrap CI of median/baseline median; ± = largest deviation from the median, % of the median; ! = flagged run (interrupted/incomplete).",
        cmp.test, cmp.alpha
    );
    for f in footnotes {
        let _ = writeln!(out, "note: {f}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hist() -> serde_json::Value {
        json!({
            "count": 0, "min_ns": 0, "max_ns": 0, "mean_ns": 0.0,
            "p50_ns": 0, "p90_ns": 0, "p99_ns": 0, "p999_ns": 0,
            "percentiles": [], "hdr_v2_deflate_base64": ""
        })
    }

    /// A run of `strategy` on `scenario` with `threads` init threads; repeat i has
    /// time_to_available_ns = tta[i] and the other metrics derived from it.
    fn run_file(scenario: &str, strategy: &str, threads: u32, tta: &[f64]) -> RunFile {
        let repeats: Vec<_> = tta
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                json!({
                    "index": i,
                    "started_unix_s": 1.0,
                    "metrics": {
                        "time_to_available_ns": t as u64,
                        "time_to_complete_ns": (t * 2.0) as u64,
                        "populate_ns": 1000,
                        "init_ns": t as u64,
                        "struct_pages_written": 1000,
                        "memmap_bytes_written": 64000,
                        "memmap_bytes_per_s": 64000.0 / t * 1e9,
                        "faults": 0,
                        "stall_p50_ns": 0,
                        "stall_p99_ns": 0,
                        "stall_max_ns": 0,
                        "fraction_of_nt_roofline": 0.5,
                        "engine_efficiency": 1e6 / t,
                        "uninitialised_reads": 0
                    },
                    "namespaces": [], "phases": [], "threads": [],
                    "stalls": { "merged": hist(), "per_thread": [], "samples": [], "samples_dropped": 0 },
                    "roofline": { "threads": 1, "bytes": 1, "regular_bytes_per_s": 1.0,
                                  "non_temporal_bytes_per_s": 1.0, "bare_same_store_ns": 1 },
                    "verify": null
                })
            })
            .collect();
        let v = json!({
            "format": "memmap-lab-run", "version": 1, "complete": true, "interrupted": false,
            "tool": "test", "created_unix_s": 0.0,
            "scenario": { "name": scenario, "path": null, "description": "", "source": "", "scale": 1.0 },
            "config": {
                "strategy": strategy,
                "params": { "threads": threads, "sub_ranges": 1, "chunk_pages": 512,
                            "store": "regular", "record": "device-data" },
                "faults": { "pattern": "none", "threads_per_namespace": 0, "touches_per_thread": 0,
                            "fault_bytes": 4096, "zipf_exponent": 1.0, "think_ns": 0, "seed": 1, "trace": null },
                "repeats_requested": tta.len(),
                "verify": false,
                "target": { "kind": "anonymous", "path": null, "filesystem": null, "dax": false,
                            "map_sync": false, "page_size_bytes": 4096, "persistent": false,
                            "flush": "none", "length_bytes": 0, "notes": [] },
                "window": null,
                "namespace_concurrency": "parallel per namespace",
                "notes": []
            },
            "host": { "hostname": "h", "kernel_release": "k", "cpu_model": "c", "cpus_online": 2,
                      "mem_total_bytes": 1, "numa_nodes": 1 },
            "layout": [],
            "repeats": repeats
        });
        RunFile::from_json_str("test.json", &v.to_string()).expect("test run file parses")
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn metric<'a>(sc: &'a ScenarioComparison, name: &str) -> &'a MetricComparison {
        sc.metrics.iter().find(|m| m.metric == name).unwrap()
    }

    #[test]
    fn exact_p_textbook_full_separation() {
        let r = mann_whitney_u(&[1., 2., 3., 4., 5.], &[6., 7., 8., 9., 10.]);
        assert_eq!(r.method, "mann-whitney-u exact");
        assert_eq!(r.u1, 0.0);
        assert!(close(r.p_value, 2.0 / 252.0, 1e-12), "{}", r.p_value);
        // symmetric in the arguments
        let s = mann_whitney_u(&[6., 7., 8., 9., 10.], &[1., 2., 3., 4., 5.]);
        assert_eq!(s.u1, 25.0);
        assert!(close(s.p_value, r.p_value, 1e-15));
    }

    #[test]
    fn exact_p_matches_scipy() {
        // scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="exact"), scipy 1.17.1
        let r = mann_whitney_u(&[1.1, 2.3, 3.0, 4.7, 9.9], &[3.5, 5.1, 6.2, 7.7, 8.0, 10.5]);
        assert_eq!(r.u1, 6.0);
        assert!(
            close(r.p_value, 0.12554112554112554, 1e-12),
            "{}",
            r.p_value
        );
        let r = mann_whitney_u(&[10., 12., 14.], &[11., 13., 15., 16.]);
        assert_eq!(r.u1, 3.0);
        assert!(close(r.p_value, 0.4, 1e-12), "{}", r.p_value);
        let r = mann_whitney_u(
            &[1., 2., 3., 4., 5., 6., 7., 8.],
            &[9., 10., 11., 12., 13., 14., 15., 16.],
        );
        assert!(
            close(r.p_value, 0.0001554001554001554, 1e-15),
            "{}",
            r.p_value
        );
    }

    #[test]
    fn exact_unequal_sizes_matches_scipy() {
        // 3 vs 10: exact because the smaller side has <= 8 values (scipy 1.17.1, method="exact")
        let y: Vec<f64> = (1..=10).map(|i| i as f64).collect();
        let x = [5.5, 9.5, 12.5];
        let r = mann_whitney_u(&x, &y);
        assert_eq!(r.method, "mann-whitney-u exact");
        assert_eq!(r.u1, 24.0);
        assert!(
            close(r.p_value, 0.16083916083916086, 1e-12),
            "{}",
            r.p_value
        );
        // larger side first: same p, U of the first sample
        let r = mann_whitney_u(&y, &x);
        assert_eq!(r.u1, 6.0);
        assert!(
            close(r.p_value, 0.16083916083916086, 1e-12),
            "{}",
            r.p_value
        );
        let r = mann_whitney_u(&[0.5, 1.5, 2.5], &y);
        assert!(
            close(r.p_value, 0.04895104895104895, 1e-12),
            "{}",
            r.p_value
        );
        assert!(close(min_possible_p(3, 10), 2.0 / 286.0, 1e-15));
    }

    #[test]
    fn exact_with_ties_is_the_permutation_test() {
        // Brute force over all C(7,3) = 35 splits of the pooled mid-ranks (python itertools):
        // x=[1,2,2], y=[2,3,3,4] -> two-sided p = 2*min(P(R1<=obs), P(R1>=obs)) = 0.17142857142857143
        let r = mann_whitney_u(&[1., 2., 2.], &[2., 3., 3., 4.]);
        assert_eq!(r.u1, 1.0);
        assert!(
            close(r.p_value, 0.17142857142857143, 1e-12),
            "{}",
            r.p_value
        );
    }

    #[test]
    fn normal_approximation_matches_scipy() {
        // scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic",
        // use_continuity=True), scipy 1.17.1
        let x: Vec<f64> = (0..10).map(|i| 10.0 + i as f64).collect();
        let y: Vec<f64> = (0..10).map(|i| 14.5 + i as f64).collect();
        let r = mann_whitney_u(&x, &y);
        assert_eq!(r.method, "mann-whitney-u normal approximation");
        assert_eq!(r.u1, 15.0);
        assert!(
            close(r.p_value, 0.009108496398030965, 1e-6),
            "{}",
            r.p_value
        );
        // with ties (tie correction matters)
        let x = [1., 2., 2., 3., 3., 3., 4., 5., 5., 6.];
        let y = [3., 4., 4., 5., 5., 6., 6., 7., 7., 8., 9.];
        let r = mann_whitney_u(&x, &y);
        assert_eq!(r.u1, 17.5);
        assert!(
            close(r.p_value, 0.008507986774119168, 1e-6),
            "{}",
            r.p_value
        );
    }

    #[test]
    fn identical_samples_give_p_one() {
        let a = [5., 6., 7., 8., 9.];
        assert!(close(mann_whitney_u(&a, &a).p_value, 1.0, 1e-12));
        let b: Vec<f64> = (0..20).map(|i| i as f64).collect();
        assert!(close(mann_whitney_u(&b, &b).p_value, 1.0, 1e-12));
        let c = [3.0; 12];
        assert_eq!(mann_whitney_u(&c, &c).p_value, 1.0);
    }

    #[test]
    fn min_possible_p_and_needed_repeats() {
        assert!(close(min_possible_p(3, 3), 0.1, 1e-12));
        assert!(close(min_possible_p(4, 4), 2.0 / 70.0, 1e-12));
        assert!(close(min_possible_p(2, 2), 1.0 / 3.0, 1e-12));
        assert_eq!(min_repeats_for(0.05), 4);
        assert_eq!(min_repeats_for(0.2), 3);
        assert_eq!(min_repeats_for(0.01), 5);
    }

    #[test]
    fn erfc_accuracy() {
        assert!(close(erfc(0.0), 1.0, 1e-7));
        assert!(close(erfc(1.0), 0.157_299_207_050_285_1, 1e-7));
        assert!(close(erfc(-1.0), 1.842_700_792_949_715, 1e-7));
        assert!(close(erfc(2.5), 0.000_406_952_017_444_959, 1e-9));
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[3., 1., 2.]), 2.0);
        assert_eq!(median(&[4., 1., 3., 2.]), 2.5);
        let a = run_file("s", "williams-mt", 4, &[100e6, 90e6, 110e6, 104e6, 120e6]);
        let cmp = compare_runs(&[a], None, 0.05).unwrap();
        let m = metric(&cmp.scenarios[0], "time_to_available_ns");
        let g = &m.groups[0];
        assert_eq!(g.n, 5);
        assert_eq!(g.median, 104e6);
        assert_eq!(g.min, 90e6);
        assert_eq!(g.max, 120e6);
        // max(120-104, 104-90) / 104 = 16/104
        assert!(close(g.spread_pct.unwrap(), 16.0 / 104.0 * 100.0, 1e-9));
        assert!(g.is_baseline && g.vs_baseline.is_none());
        // even n: polars median agrees with ours
        let b = run_file("s", "x", 1, &[1e6, 4e6, 2e6, 3e6]);
        let cmp = compare_runs(&[b], None, 0.05).unwrap();
        assert_eq!(
            metric(&cmp.scenarios[0], "time_to_available_ns").groups[0].median,
            2.5e6
        );
    }

    #[test]
    fn labels_suffix_only_differing_params() {
        let runs = [
            run_file("s", "williams-mt", 4, &[1e6; 3]),
            run_file("s", "williams-mt", 8, &[1e6; 3]),
            run_file("s", "jordan-padata", 4, &[1e6; 3]),
            run_file("s", "williams-mt", 4, &[1e6; 2]),
        ];
        let cmp = compare_runs(&runs, None, 0.05).unwrap();
        let labels: Vec<_> = cmp.runs.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(
            labels,
            [
                "williams-mt[threads=4]",
                "williams-mt[threads=8]",
                "jordan-padata",
                "williams-mt[threads=4]"
            ]
        );
        let sc = &cmp.scenarios[0];
        assert_eq!(sc.groups.len(), 3);
        // runs 0 and 3 pooled
        assert_eq!(sc.groups[0].runs, vec![0, 3]);
        assert_eq!(sc.groups[0].repeats, 5);
        assert_eq!(metric(sc, "init_ns").groups[0].n, 5);
        assert_eq!(
            sc.groups[1]
                .distinguishing_params
                .get("threads")
                .map(String::as_str),
            Some("8")
        );
    }

    #[test]
    fn baseline_default_and_explicit_and_delta_sign() {
        let slow = [100e6, 101e6, 102e6, 103e6, 104e6, 105e6];
        let fast = [50e6, 51e6, 52e6, 53e6, 54e6, 55e6];
        let runs = [
            run_file("s", "slow", 1, &slow),
            run_file("s", "fast", 1, &fast),
        ];

        // default: first file's group
        let cmp = compare_runs(&runs, None, 0.05).unwrap();
        let sc = &cmp.scenarios[0];
        assert_eq!(sc.baseline.as_deref(), Some("slow"));
        let tta = metric(sc, "time_to_available_ns");
        let d = tta.groups[1].vs_baseline.as_ref().unwrap();
        assert!(d.delta_pct.unwrap() < 0.0);
        assert!(close(
            d.delta_pct.unwrap(),
            (52.5 - 102.5) / 102.5 * 100.0,
            1e-9
        ));
        assert!(close(d.p_value, 2.0 / 924.0, 1e-12), "{}", d.p_value);
        assert!(d.significant);
        assert_eq!(d.verdict, "better"); // lower time is better
        let [lo, hi] = d.ratio_ci95.unwrap();
        assert!(lo <= d.ratio_of_medians.unwrap() && d.ratio_of_medians.unwrap() <= hi);
        assert!(lo > 0.45 && hi < 0.56, "{lo} {hi}");
        // throughput went up: positive delta, also better
        let bw = metric(sc, "memmap_bytes_per_s");
        let d = bw.groups[1].vs_baseline.as_ref().unwrap();
        assert!(d.delta_pct.unwrap() > 0.0);
        assert_eq!(d.verdict, "better");

        // explicit baseline flips the sign
        let cmp = compare_runs(&runs, Some("fast"), 0.05).unwrap();
        let sc = &cmp.scenarios[0];
        assert_eq!(sc.baseline.as_deref(), Some("fast"));
        let tta = metric(sc, "time_to_available_ns");
        assert!(tta.groups[1].is_baseline);
        let d = tta.groups[0].vs_baseline.as_ref().unwrap();
        assert!(d.delta_pct.unwrap() > 0.0);
        assert_eq!(d.verdict, "worse");

        // unknown baseline is an error naming the groups
        let e = compare_runs(&runs, Some("nope"), 0.05)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nope") && e.contains("slow") && e.contains("fast"),
            "{e}"
        );
    }

    #[test]
    fn ambiguous_strategy_baseline_is_an_error() {
        let runs = [
            run_file("s", "williams-mt", 4, &[1e6; 3]),
            run_file("s", "williams-mt", 8, &[1e6; 3]),
        ];
        let e = compare_runs(&runs, Some("williams-mt"), 0.05)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ambiguous") && e.contains("williams-mt[threads=8]"),
            "{e}"
        );
        let ok = compare_runs(&runs, Some("williams-mt[threads=8]"), 0.05).unwrap();
        assert_eq!(
            ok.scenarios[0].baseline.as_deref(),
            Some("williams-mt[threads=8]")
        );
    }

    #[test]
    fn too_few_repeats_are_never_significant() {
        let runs = [
            run_file("s", "a", 1, &[100e6, 101e6, 102e6]),
            run_file("s", "b", 1, &[10e6, 11e6, 12e6]),
        ];
        let cmp = compare_runs(&runs, None, 0.05).unwrap();
        let d = metric(&cmp.scenarios[0], "init_ns").groups[1]
            .vs_baseline
            .clone()
            .unwrap();
        assert!(close(d.p_value, 0.1, 1e-12));
        assert!(!d.significant);
        assert_eq!(d.verdict, "~");
        assert!(d.note.unwrap().contains("need >= 4"));
        assert!(render_table(&cmp).contains("need >= 4 repeats"));
    }

    #[test]
    fn identical_groups_are_not_significant() {
        let v = [5e6, 6e6, 7e6, 8e6, 9e6, 10e6];
        let runs = [run_file("s", "a", 1, &v), run_file("s", "b", 1, &v)];
        let cmp = compare_runs(&runs, None, 0.05).unwrap();
        let d = metric(&cmp.scenarios[0], "time_to_complete_ns").groups[1]
            .vs_baseline
            .clone()
            .unwrap();
        assert!(close(d.p_value, 1.0, 1e-12));
        assert_eq!(d.delta_pct, Some(0.0));
        assert_eq!(d.verdict, "~");
        // stall metrics are all 0: no relative delta, no CI, no panic
        let s = metric(&cmp.scenarios[0], "stall_p99_ns").groups[1]
            .vs_baseline
            .clone()
            .unwrap();
        assert_eq!(s.delta_pct, None);
        assert_eq!(s.ratio_ci95, None);
        assert_eq!(s.p_value, 1.0);
    }

    #[test]
    fn scenarios_are_compared_separately() {
        let runs = [
            run_file("s1", "a", 1, &[1e6, 2e6, 3e6, 4e6]),
            run_file("s2", "b", 1, &[1e6, 2e6, 3e6, 4e6]),
            run_file("s2", "a", 1, &[5e6, 6e6, 7e6, 8e6]),
        ];
        let cmp = compare_runs(&runs, None, 0.05).unwrap();
        assert_eq!(cmp.scenarios.len(), 2);
        assert!(cmp
            .notes
            .iter()
            .any(|n| n.contains("only within the same scenario")));
        assert_eq!(cmp.scenarios[0].baseline.as_deref(), Some("a"));
        // s2's baseline is its own first run's group
        assert_eq!(cmp.scenarios[1].baseline.as_deref(), Some("b"));
        let d = metric(&cmp.scenarios[1], "init_ns").groups[1]
            .vs_baseline
            .clone()
            .unwrap();
        assert_eq!(d.n_baseline, 4);
        assert!(close(d.p_value, 2.0 / 70.0, 1e-12));
        assert!(d.significant);
        // --baseline a: s1 and s2 both have it
        let cmp = compare_runs(&runs, Some("a"), 0.05).unwrap();
        assert_eq!(cmp.scenarios[1].baseline.as_deref(), Some("a"));
    }

    #[test]
    fn bootstrap_is_deterministic_and_sane() {
        let base = [10., 11., 12., 13., 14.];
        let x = [20., 22., 24., 26., 28.];
        let a = bootstrap_ratio_ci(&base, &x, 42).unwrap();
        let b = bootstrap_ratio_ci(&base, &x, 42).unwrap();
        assert_eq!(a, b);
        // ratio of medians is 2; all resampled ratios lie within [20/14, 28/10]
        assert!(a[0] <= 2.0 && 2.0 <= a[1], "{a:?}");
        assert!(a[0] >= 20.0 / 14.0 && a[1] <= 28.0 / 10.0, "{a:?}");
        let same = bootstrap_ratio_ci(&[3.0; 4], &[6.0; 4], 1).unwrap();
        assert_eq!(same, [2.0, 2.0]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let e = compare_runs(&[], None, 0.05).unwrap_err().to_string();
        assert!(e.contains("no run files"), "{e}");
        let empty = [run_file("s", "a", 1, &[]), run_file("s", "b", 1, &[])];
        let e = compare_runs(&empty, None, 0.05).unwrap_err().to_string();
        assert!(
            e.contains("none of the 2 run file(s) has a finished repeat"),
            "{e}"
        );
        let e = compare_runs(&[run_file("s", "a", 1, &[1.0])], None, 1.5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("alpha"), "{e}");
        // an empty baseline next to a non-empty run: no deltas, flagged, no panic
        let mixed = [
            run_file("s", "a", 1, &[]),
            run_file("s", "b", 1, &[1e6, 2e6]),
        ];
        let cmp = compare_runs(&mixed, None, 0.05).unwrap();
        assert!(cmp.runs[0].flags.contains(&"no repeats".to_string()));
        assert!(cmp.scenarios[0]
            .notes
            .iter()
            .any(|n| n.contains("no finished repeat")));
        let _ = render_table(&cmp);
        // missing file: the error names it
        let args = CompareArgs {
            files: vec![PathBuf::from("/nonexistent/run-42.json")],
            json: true,
            baseline: None,
            alpha: 0.05,
        };
        let e = run(&args).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/run-42.json"), "{e}");
    }

    #[test]
    fn interrupted_runs_are_flagged_and_included() {
        let mut a = run_file("s", "a", 1, &[1e6, 2e6, 3e6, 4e6]);
        a.interrupted = true;
        a.complete = false;
        a.config.repeats_requested = 10;
        let b = run_file("s", "b", 1, &[1e6, 2e6, 3e6, 4e6]);
        let cmp = compare_runs(&[a, b], None, 0.05).unwrap();
        assert_eq!(cmp.runs[0].flags, vec!["interrupted", "incomplete"]);
        assert_eq!(cmp.scenarios[0].groups[0].repeats, 4);
        let t = render_table(&cmp);
        assert!(t.contains("a !"), "{t}");
        assert!(
            t.contains("interrupted, incomplete (4 of 10 repeats)"),
            "{t}"
        );
        let js = serde_json::to_value(&cmp).unwrap();
        assert_eq!(
            js["scenarios"][0]["metrics"][0]["metric"],
            "time_to_available_ns"
        );
        assert_eq!(js["scenarios"][0]["metrics"][0]["better"], "lower");
    }
}
