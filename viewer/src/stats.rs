//! The statistics of `memmap-replay compare` (replay/src/compare.rs), reimplemented
//! without polars so the viewer builds quickly: median ± spread, delta of medians,
//! two-sided Mann-Whitney U (exact for small samples, normal approximation otherwise)
//! and the seeded bootstrap 95% CI of the ratio of medians. Same seeds and the same
//! resampling order, so the numbers equal those of `memmap-replay compare --json`
//! (checked by tests/stats_match_replay.rs).

use memmap_model::run::Metrics;

pub const EXACT_MAX_N: usize = 8;
pub const EXACT_MAX_TOTAL: usize = 100;
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
pub const BOOTSTRAP_SEED: u64 = 0x6d65_6d6d_6170_6c61;
pub const ALPHA: f64 = 0.05;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

pub struct MetricDef {
    pub name: &'static str,
    pub better: Better,
    pub kind: Kind,
    pub get: fn(&Metrics) -> f64,
}

/// The metrics `compare` reports, in its order.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: "time_to_available_ns",
        better: Better::Lower,
        kind: Kind::Time,
        get: |m| m.time_to_available_ns as f64,
    },
    MetricDef {
        name: "time_to_complete_ns",
        better: Better::Lower,
        kind: Kind::Time,
        get: |m| m.time_to_complete_ns as f64,
    },
    MetricDef {
        name: "init_ns",
        better: Better::Lower,
        kind: Kind::Time,
        get: |m| m.init_ns as f64,
    },
    MetricDef {
        name: "populate_ns",
        better: Better::Lower,
        kind: Kind::Time,
        get: |m| m.populate_ns as f64,
    },
    MetricDef {
        name: "memmap_bytes_per_s",
        better: Better::Higher,
        kind: Kind::Rate,
        get: |m| m.memmap_bytes_per_s,
    },
    MetricDef {
        name: "stall_p50_ns",
        better: Better::Lower,
        kind: Kind::Time,
        get: |m| m.stall_p50_ns as f64,
    },
    MetricDef {
        name: "stall_p99_ns",
        better: Better::Lower,
        kind: Kind::Time,
        get: |m| m.stall_p99_ns as f64,
    },
    MetricDef {
        name: "stall_max_ns",
        better: Better::Lower,
        kind: Kind::Time,
        get: |m| m.stall_max_ns as f64,
    },
    MetricDef {
        name: "engine_efficiency",
        better: Better::Higher,
        kind: Kind::Ratio,
        get: |m| m.engine_efficiency,
    },
    MetricDef {
        name: "fraction_of_nt_roofline",
        better: Better::Higher,
        kind: Kind::Ratio,
        get: |m| m.fraction_of_nt_roofline,
    },
];

/// Median (mean of the two middle values for even n); NaN when empty.
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

/// Largest deviation from the median, % of the median; None when the median is 0.
pub fn spread_pct(values: &[f64]) -> Option<f64> {
    let m = median(values);
    if m == 0.0 || !m.is_finite() {
        return None;
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((hi - m).max(m - lo) / m.abs() * 100.0)
}

pub fn uses_exact(n1: usize, n2: usize) -> bool {
    n1.min(n2) <= EXACT_MAX_N && n1 + n2 <= EXACT_MAX_TOTAL
}

fn n_choose_k(n: usize, k: usize) -> f64 {
    let k = k.min(n - k.min(n));
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Smallest two-sided p the exact test can give for sizes n1, n2.
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

/// Two-sided Mann-Whitney U p-value of `x` against `y` and the method used.
pub fn mann_whitney_p(x: &[f64], y: &[f64]) -> (f64, &'static str) {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return (1.0, "none (empty sample)");
    }
    let n = n1 + n2;
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Doubled mid-ranks keep ties integral.
    let mut rank2 = vec![0u64; n];
    let mut tie_term = 0.0f64;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
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
        let (m, obs) = if n1 <= n2 {
            (n1, r1_2 as usize)
        } else {
            let all: u64 = rank2.iter().sum();
            (n2, (all - r1_2) as usize)
        };
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
        ((2.0 * lower.min(upper)).min(1.0), "mann-whitney-u exact")
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
        (p, "mann-whitney-u normal approximation")
    }
}

/// Complementary error function (Numerical Recipes `erfcc`).
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

/// Seed of one (scenario, metric, group) comparison, as `compare` derives it.
pub fn seed_for(scenario: &str, metric: &str, group: &str) -> u64 {
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

fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

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
            let (p, test) = mann_whitney_p(&av, &bv);
            let min_p = min_possible_p(av.len(), bv.len());
            let delta_pct = (am != 0.0).then(|| (bm - am) / am.abs() * 100.0);
            let significant = min_p <= ALPHA && p <= ALPHA;
            let verdict = if !significant || bm == am {
                "~"
            } else {
                match (m.better, bm > am) {
                    (Better::Lower, false) | (Better::Higher, true) => "better",
                    _ => "worse",
                }
            };
            DeltaRow {
                metric: m.name,
                kind: m.kind,
                better: m.better,
                a_median: am,
                a_spread_pct: spread_pct(&av),
                b_median: bm,
                b_spread_pct: spread_pct(&bv),
                delta_pct,
                ratio_ci95: bootstrap_ratio_ci(&av, &bv, seed_for(scenario, m.name, b_label)),
                p_value: p,
                test,
                min_possible_p: min_p,
                significant,
                verdict,
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
        Kind::Time => crate::data::fmt_ns(v),
        Kind::Rate => format!("{:.3} GB/s", v / 1e9),
        Kind::Ratio => format!("{v:.3}"),
    }
}

pub fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".into()
    } else {
        format!("p={p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_p_full_separation() {
        // n=4+4 fully separated: p = 2/70.
        let (p, m) = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]);
        assert!((p - 2.0 / 70.0).abs() < 1e-12, "{p}");
        assert_eq!(m, "mann-whitney-u exact");
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
}
