//! The viewer's A/B table: rows built from the statistics of `memmap-replay compare`
//! (`memmap_model::stats`: same metrics, median, Mann-Whitney U, seeded bootstrap),
//! so the numbers equal those of `memmap-replay compare --json` (checked by
//! tests/stats_match_replay.rs).

use memmap_model::run::Metrics;
use memmap_model::stats::{delta, seed_for, spread_pct, METRICS};
pub use memmap_model::stats::{fmt_p, median, Better, Kind};

/// Significance level of the A/B view (compare's default).
pub const ALPHA: f64 = 0.05;

/// One row of the delta table: group B against baseline A for one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct DeltaRow {
    pub metric: &'static str,
    pub kind: Kind,
    pub better: Better,
    pub a_median: f64,
    pub a_spread_pct: Option<f64>,
    pub b_median: f64,
    pub b_spread_pct: Option<f64>,
    pub delta_pct: Option<f64>,
    pub ratio_ci95: Option<[f64; 2]>,
    pub p_value: f64,
    pub test: &'static str,
    pub min_possible_p: f64,
    pub significant: bool,
    /// "better", "worse" or "~".
    pub verdict: &'static str,
    pub n_a: usize,
    pub n_b: usize,
}

/// Compare per-repeat metrics of B against baseline A, as `compare` does for a
/// scenario whose baseline group is A and other group is `b_label`.
pub fn delta_table(scenario: &str, b_label: &str, a: &[Metrics], b: &[Metrics]) -> Vec<DeltaRow> {
    METRICS
        .iter()
        .map(|m| {
            let av: Vec<f64> = a.iter().map(m.get).filter(|v| v.is_finite()).collect();
            let bv: Vec<f64> = b.iter().map(m.get).filter(|v| v.is_finite()).collect();
            let (am, bm) = (median(&av), median(&bv));
            let seed = seed_for(scenario, m.name, b_label);
            let d = delta("A", &av, am, &bv, bm, m.better, ALPHA, seed);
            DeltaRow {
                metric: m.name,
                kind: m.kind,
                better: m.better,
                a_median: am,
                a_spread_pct: spread_pct(&av),
                b_median: bm,
                b_spread_pct: spread_pct(&bv),
                delta_pct: d.delta_pct,
                ratio_ci95: d.ratio_ci95,
                p_value: d.p_value,
                test: d.test,
                min_possible_p: d.min_possible_p,
                significant: d.significant,
                verdict: d.verdict,
                n_a: av.len(),
                n_b: bv.len(),
            }
        })
        .collect()
}

/// Value in the unit a human reads for this metric kind.
pub fn fmt_value(kind: Kind, v: f64) -> String {
    if !v.is_finite() {
        return "?".into();
    }
    match kind {
        Kind::Time => super::fmt::fmt_ns(v),
        Kind::Rate => format!("{:.3} GB/s", v / 1e9),
        Kind::Ratio => format!("{v:.3}"),
    }
}
