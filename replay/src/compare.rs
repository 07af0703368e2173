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
use memmap_model::kernel_recorded::{fmt_opt, kernel_vs_replay, KernelVsReplay};
use memmap_model::run::RunFile;
use memmap_model::stats::{
    self, delta, fmt_p, metric_def, min_repeats_for, seed_for, spread_pct, Better, Delta, Kind,
    CI_DEFINITION, METRICS, SPREAD_DEFINITION, TEST_NAME,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

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
    /// Per namespace: kernel recorded | replay measured | predicted kernel (ms) and
    /// their ratios (`memmap_model::kernel_recorded::kernel_vs_replay`).
    pub kernel_vs_replay: Vec<KernelVsReplay>,
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
        ("sync_lock", p.sync_lock.as_str().to_string()),
        ("store", p.store.as_str().to_string()),
        ("record", p.record.as_str().to_string()),
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

/// Per (scenario, group label, metric): the finite per-repeat values, in input order.
type Values = HashMap<(String, String, &'static str), Vec<f64>>;

/// The runs pooled into scenarios and groups.
struct Pooled {
    /// Scenarios in order of first appearance.
    scenario_order: Vec<String>,
    /// Each scenario's groups, in order of first appearance.
    groups_of: HashMap<String, Vec<GroupInfo>>,
    summaries: Vec<RunSummary>,
    values: Values,
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
    let mut pooled = pool_runs(runs, &labels);
    let baselines = choose_baselines(runs, &labels, &pooled, baseline)?;

    let min_n = min_repeats_for(alpha);
    let mut notes = Vec::new();
    if pooled.scenario_order.len() > 1 {
        notes.push(format!(
            "{} scenarios: runs of different scenarios are compared only within the same scenario",
            pooled.scenario_order.len()
        ));
    }
    if runs.iter().any(|r| r.interrupted || !r.complete) {
        notes.push(
            "interrupted or incomplete runs are included (their finished repeats) and flagged"
                .to_string(),
        );
    }

    let mut scenarios = Vec::new();
    for scen in &pooled.scenario_order {
        let groups = pooled.groups_of.remove(scen).unwrap_or_default();
        let base = baselines.get(scen).cloned().flatten();
        scenarios.push(compare_scenario(
            scen,
            groups,
            base,
            baseline,
            &pooled.values,
            alpha,
        ));
    }

    Ok(Comparison {
        alpha,
        test: TEST_NAME,
        spread_definition: SPREAD_DEFINITION,
        ci_definition: CI_DEFINITION,
        min_repeats_for_significance: min_n,
        runs: pooled.summaries,
        notes,
        scenarios,
    })
}

/// Pool every run's finished repeats into its (scenario, group); flag the runs.
fn pool_runs(runs: &[RunFile], labels: &[(String, BTreeMap<String, String>)]) -> Pooled {
    let mut p = Pooled {
        scenario_order: Vec::new(),
        groups_of: HashMap::new(),
        summaries: Vec::with_capacity(runs.len()),
        values: HashMap::new(),
    };
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
                p.values
                    .entry((scen.clone(), label.clone(), m.name))
                    .or_default()
                    .push(v);
            }
        }
        if dropped > 0 {
            flags.push(format!("dropped {dropped} non-finite values"));
        }

        if !p.groups_of.contains_key(&scen) {
            p.scenario_order.push(scen.clone());
        }
        let groups = p.groups_of.entry(scen.clone()).or_default();
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

        p.summaries.push(RunSummary {
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
            kernel_vs_replay: kernel_vs_replay(r),
        });
    }
    p
}

/// Each scenario's baseline group label: `baseline` (a label, or a strategy with one
/// group in the scenario), else the group of the scenario's first run.
fn choose_baselines(
    runs: &[RunFile],
    labels: &[(String, BTreeMap<String, String>)],
    pooled: &Pooled,
    baseline: Option<&str>,
) -> anyhow::Result<HashMap<String, Option<String>>> {
    let mut baselines: HashMap<String, Option<String>> = HashMap::new();
    let mut baseline_found = false;
    for scen in &pooled.scenario_order {
        let groups = &pooled.groups_of[scen];
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
        let all: Vec<String> = pooled
            .scenario_order
            .iter()
            .flat_map(|s| pooled.groups_of[s].iter().map(|g| g.label.clone()))
            .collect();
        bail!(
            "compare: baseline {b:?} matches no group; the groups are: {}",
            all.join(", ")
        );
    }
    Ok(baselines)
}

/// One scenario: every metric of every group, each non-baseline group against `base`.
fn compare_scenario(
    scen: &str,
    mut groups: Vec<GroupInfo>,
    base: Option<String>,
    baseline: Option<&str>,
    values: &Values,
    alpha: f64,
) -> ScenarioComparison {
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
        let values_of = |g: &str| values.get(&(scen.to_string(), g.to_string(), m.name));
        let base_values = base.as_deref().and_then(values_of);
        let mut gstats = Vec::new();
        for g in &groups {
            let Some(v) = values_of(&g.label) else {
                continue;
            };
            let median = stats::median(v);
            let vs_baseline = match base_values {
                Some(b) if !g.is_baseline => Some(delta(
                    base.as_deref().unwrap_or_default(),
                    b,
                    stats::median(b),
                    v,
                    median,
                    m.better,
                    alpha,
                    seed_for(scen, m.name, &g.label),
                )),
                _ => None,
            };
            gstats.push(GroupStats {
                group: g.label.clone(),
                is_baseline: g.is_baseline,
                n: v.len(),
                median,
                min: v.iter().copied().fold(f64::INFINITY, f64::min),
                max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                spread_pct: spread_pct(v),
                values: v.clone(),
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
            "too few repeats for p <= alpha={alpha}: {}; need >= {} repeats per side",
            too_few.join(", "),
            min_repeats_for(alpha)
        ));
    }
    ScenarioComparison {
        scenario: scen.to_string(),
        baseline: base,
        groups,
        notes: snotes,
        metrics,
    }
}

// ---------------------------------------------------------------- human output

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
    render_kernel_vs_replay(cmp, &mut out);
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

/// Per run and namespace: kernel recorded | replay measured | predicted kernel, ms, and
/// their ratios; "—" where absent (a scenario run records no kernel time).
fn render_kernel_vs_replay(cmp: &Comparison, out: &mut String) {
    if cmp.runs.iter().all(|r| r.kernel_vs_replay.is_empty()) {
        return;
    }
    let _ = writeln!(
        out,
        "kernel recorded vs replay (init per namespace, ms; replay = median over repeats)"
    );
    let _ = writeln!(
        out,
        "{:<24}  {:<14}  {:>10}  {:>10}  {:>10}  {:>9}  {:>9}  {:>9}",
        "run", "namespace", "kernel", "replay", "predicted", "rep/kern", "pred/kern", "rep/pred"
    );
    for r in &cmp.runs {
        let name = r
            .file
            .as_deref()
            .and_then(|f| std::path::Path::new(f).file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("run #{}", r.index));
        for k in &r.kernel_vs_replay {
            let _ = writeln!(
                out,
                "{:<24}  {:<14}  {:>10}  {:>10}  {:>10}  {:>9}  {:>9}  {:>9}",
                name,
                k.name,
                fmt_opt(k.kernel_ms, 3),
                fmt_opt(k.replay_ms, 3),
                fmt_opt(k.predicted_kernel_ms, 3),
                fmt_opt(k.replay_over_kernel, 3),
                fmt_opt(k.predicted_over_kernel, 3),
                fmt_opt(k.replay_over_predicted, 3)
            );
        }
    }
    out.push('\n');
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
    fn median_and_spread() {
        assert_eq!(stats::median(&[3., 1., 2.]), 2.0);
        assert_eq!(stats::median(&[4., 1., 3., 2.]), 2.5);
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
        // even n: the mean of the two middle values
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

    /// A run of the recorded fsdax-dev trace: the kernel's 1586.291 ms, the replay's
    /// init (complete - populate end, median of 3 repeats), no prediction yet ("—").
    /// Run files without `kernel_recorded` (run_file above) still load.
    #[test]
    fn kernel_recorded_vs_replay_per_namespace() {
        use memmap_model::kernel_recorded::KernelRecorded;
        use memmap_model::run::NamespaceTiming;
        let mut r = run_file("fsdax-dev", "duyck", 1, &[1e6, 2e6, 3e6]);
        assert!(r.kernel_recorded.is_empty());
        r.kernel_recorded = vec![KernelRecorded {
            name: "namespace0.0".into(),
            init_ms: Some(1586.291),
            ..Default::default()
        }];
        for (rep, init_ms) in r.repeats.iter_mut().zip([700u64, 800, 750]) {
            rep.namespaces.push(NamespaceTiming {
                name: "namespace0.0".into(),
                populate_start_ns: 0,
                populate_end_ns: 10_000_000,
                available_ns: 10_000_000 + init_ms * 1_000_000,
                complete_ns: 10_000_000 + init_ms * 1_000_000,
                data_pages: 4124672,
                struct_pages_written: 4124672,
                bytes_written: 0,
            });
        }
        let cmp = compare_runs(&[r.clone()], None, 0.05).unwrap();
        let k = &cmp.runs[0].kernel_vs_replay;
        assert_eq!(k.len(), 1);
        assert_eq!(
            (k[0].kernel_ms, k[0].replay_ms),
            (Some(1586.291), Some(750.0))
        );
        assert!(close(
            k[0].replay_over_kernel.unwrap(),
            750.0 / 1586.291,
            1e-12
        ));
        assert_eq!(
            (k[0].predicted_kernel_ms, k[0].predicted_over_kernel),
            (None, None)
        );
        let table = render_table(&cmp);
        assert!(table.contains("kernel recorded vs replay"), "{table}");
        let line = table
            .lines()
            .find(|l| l.contains("namespace0.0"))
            .expect("a row for the namespace");
        assert!(
            line.contains("1586.291") && line.contains("750.000") && line.contains("0.473"),
            "{line}"
        );
        assert_eq!(line.matches('—').count(), 3, "{line}");
        let j = serde_json::to_value(&cmp).unwrap();
        assert_eq!(j["runs"][0]["kernel_vs_replay"][0]["kernel_ms"], 1586.291);
        assert!(j["runs"][0]["kernel_vs_replay"][0]["predicted_kernel_ms"].is_null());
        // A predicted figure fills its column and ratios.
        r.kernel_recorded[0].predicted_kernel_ms = Some(1500.0);
        let cmp = compare_runs(&[r], None, 0.05).unwrap();
        let k = &cmp.runs[0].kernel_vs_replay[0];
        assert!(close(
            k.predicted_over_kernel.unwrap(),
            1500.0 / 1586.291,
            1e-12
        ));
        assert!(close(k.replay_over_predicted.unwrap(), 0.5, 1e-12));
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
