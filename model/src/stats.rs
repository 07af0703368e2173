//! The statistics every comparison of runs uses, written once: the metrics table,
//! median and spread, the two-sided Mann-Whitney U test (exact for small samples,
//! normal approximation otherwise), the seeded bootstrap 95% CI of the ratio of
//! medians, and the delta of one group against a baseline. `memmap-replay compare`
//! and the viewer's A/B view both call these (see `docs/compare.md`).

use crate::run::Metrics;
use serde::Serialize;

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

pub const SPREAD_DEFINITION: &str =
    "spread_pct = max(max - median, median - min) / median * 100 (largest deviation from the median, benchstat-style ±)";
pub const CI_DEFINITION: &str = "ratio_ci95 = 2.5th and 97.5th percentiles of median(group*)/median(baseline*) over 10000 seeded bootstrap resamples of each side";
pub const TEST_NAME: &str = "Mann-Whitney U, two-sided";

/// Which direction of a metric is an improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Time,
    Rate,
    Ratio,
}

/// One metric of [`Metrics`] as comparisons report it.
pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub kind: Kind,
    pub description: &'static str,
    pub get: fn(&Metrics) -> f64,
}

/// The metrics a comparison reports, in its order.
pub const METRICS: &[MetricDef] = &[
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

/// The metric of this name.
pub fn metric_def(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
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

#[allow(clippy::too_many_arguments)]
/// One group's values `x` against the baseline's `base`: delta and ratio of the
/// medians, Mann-Whitney U p, bootstrap CI and the verdict at `alpha`.
pub fn delta(
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

/// Median: the type-7 (linear interpolation) quantile at 0.5, for even n
/// `lo + (hi - lo) * 0.5`. This is what polars' `median()` computes, which
/// `compare` used before it dropped polars: the same bits, so its JSON did not change.
/// NaN for an empty slice.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, 0.5)
}

/// Largest deviation from the median, % of the median (benchstat's ±); None when
/// the median is 0 or the slice is empty.
pub fn spread_pct(values: &[f64]) -> Option<f64> {
    let m = median(values);
    if m == 0.0 || !m.is_finite() {
        return None;
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((hi - m).max(m - lo) / m.abs() * 100.0)
}

/// The bootstrap's median of a sorted resample: the mean of the two middle values
/// for even n. Not [`median`]: the published CIs were computed this way and must
/// reproduce bit for bit.
fn bootstrap_median_sorted(v: &[f64]) -> f64 {
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
pub fn seed_for(scenario: &str, metric: &str, group: &str) -> u64 {
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
        let d = bootstrap_median_sorted(&bs);
        if d == 0.0 {
            return None;
        }
        ratios.push(bootstrap_median_sorted(&xs) / d);
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

/// A p-value as the tables print it.
pub fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_string()
    } else {
        format!("p={p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
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
    fn exact_p_full_separation() {
        // n=4+4 fully separated: p = 2/70.
        let r = mann_whitney_u(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]);
        assert!((r.p_value - 2.0 / 70.0).abs() < 1e-12, "{}", r.p_value);
        assert_eq!(r.method, "mann-whitney-u exact");
        assert!((min_possible_p(3, 3) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn medians_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(spread_pct(&[90.0, 100.0, 120.0]), Some(20.0));
    }

    #[test]
    fn bootstrap_is_deterministic() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [2.0, 4.0, 6.0, 8.0, 10.0];
        let x = bootstrap_ratio_ci(&a, &b, 7).unwrap();
        assert_eq!(Some(x), bootstrap_ratio_ci(&a, &b, 7));
        assert!(x[0] <= 2.0 && x[1] >= 2.0, "{x:?}");
    }

    #[test]
    fn median_is_polars_linear_interpolation() {
        // what polars' median() gives: lo + (hi - lo) * 0.5, not (lo + hi) / 2, which
        // differ in the last bit here
        let (lo, hi) = (0.1f64, 0.7f64);
        assert_ne!(lo + (hi - lo) * 0.5, (lo + hi) / 2.0);
        assert_eq!(median(&[hi, lo]), lo + (hi - lo) * 0.5);
        assert!(median(&[]).is_nan());
        assert_eq!(spread_pct(&[]), None);
        assert_eq!(spread_pct(&[0.0, 0.0]), None);
    }
}
