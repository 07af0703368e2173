//! Emulated application faults: which page a fault thread touches next.

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

pub enum Pattern {
    None,
    /// Each thread walks its own contiguous share of the namespace.
    Sequential {
        next: u64,
        end: u64,
    },
    Uniform,
    /// Zipf over page ranks; ranks are scattered over the namespace by a fixed
    /// multiplicative hash so the hot set is not one contiguous block.
    Zipf(Zipf<f64>),
    /// The faults of a trace (page offsets in 4 KiB pages), in recorded order; thread t
    /// of T takes faults t, t+T, t+2T, ...
    Recorded {
        list: std::sync::Arc<Vec<u64>>,
        pos: usize,
        step: usize,
        unit_pages: u64,
    },
}

pub struct FaultPicker {
    pattern: Pattern,
    rng: rand::rngs::StdRng,
    /// Number of fault-sized units in the namespace.
    units: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("fault pattern {0:?}: expected none, sequential, uniform or zipf")]
pub struct UnknownPattern(pub String);

impl FaultPicker {
    /// `thread` of `threads` fault threads over `units` fault-sized units.
    pub fn new(
        pattern: &str,
        units: u64,
        thread: u32,
        threads: u32,
        seed: u64,
        zipf_exponent: f64,
    ) -> Result<FaultPicker, UnknownPattern> {
        let units = units.max(1);
        let pattern = match pattern {
            "none" => Pattern::None,
            "sequential" => {
                let share = units / threads.max(1) as u64;
                let start = share * thread as u64;
                Pattern::Sequential {
                    next: start,
                    end: (start + share.max(1)).min(units),
                }
            }
            "uniform" => Pattern::Uniform,
            "zipf" => Pattern::Zipf(
                Zipf::new(units as f64, zipf_exponent.max(0.01)).expect("n >= 1 and s > 0"),
            ),
            other => return Err(UnknownPattern(other.into())),
        };
        Ok(FaultPicker {
            pattern,
            rng: rand::rngs::StdRng::seed_from_u64(
                seed ^ (thread as u64).wrapping_mul(0x9e37_79b9),
            ),
            units,
        })
    }

    /// Replay recorded faults (4 KiB page offsets into the namespace) split over `threads`.
    pub fn recorded(
        list: std::sync::Arc<Vec<u64>>,
        units: u64,
        unit_pages: u64,
        thread: u32,
        threads: u32,
    ) -> FaultPicker {
        FaultPicker {
            pattern: Pattern::Recorded {
                list,
                pos: thread as usize,
                step: threads.max(1) as usize,
                unit_pages: unit_pages.max(1),
            },
            rng: rand::rngs::StdRng::seed_from_u64(0),
            units: units.max(1),
        }
    }

    /// Next unit index, or None when the pattern has nothing (more) to touch.
    pub fn next_unit(&mut self) -> Option<u64> {
        match &mut self.pattern {
            Pattern::None => None,
            Pattern::Sequential { next, end } => {
                if *next >= *end {
                    return None;
                }
                *next += 1;
                Some(*next - 1)
            }
            Pattern::Recorded {
                list,
                pos,
                step,
                unit_pages,
            } => {
                let pgoff = *list.get(*pos)?;
                *pos += *step;
                // A trace of a larger namespace folds onto this one.
                Some((pgoff / *unit_pages) % self.units)
            }
            Pattern::Uniform => Some(self.rng.random_range(0..self.units)),
            Pattern::Zipf(z) => {
                let rank = z.sample(&mut self.rng) as u64; // 1..=units
                Some(rank.wrapping_mul(0x9e37_79b9_7f4a_7c15) % self.units)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_threads_cover_disjoint_shares() {
        let mut a = FaultPicker::new("sequential", 100, 0, 2, 1, 1.0).unwrap();
        let mut b = FaultPicker::new("sequential", 100, 1, 2, 1, 1.0).unwrap();
        let va: Vec<u64> = std::iter::from_fn(|| a.next_unit()).collect();
        let vb: Vec<u64> = std::iter::from_fn(|| b.next_unit()).collect();
        assert_eq!(va, (0..50).collect::<Vec<_>>());
        assert_eq!(vb, (50..100).collect::<Vec<_>>());
    }

    #[test]
    fn zipf_concentrates_on_a_hot_set() {
        let mut z = FaultPicker::new("zipf", 1 << 20, 0, 1, 7, 1.2).unwrap();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..20_000 {
            *counts.entry(z.next_unit().unwrap()).or_insert(0u32) += 1;
        }
        let mut c: Vec<u32> = counts.values().copied().collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        let top10: u32 = c.iter().take(10).sum();
        assert!(top10 > 20_000 / 4, "top 10 pages got only {top10} of 20000");
        let mut u = FaultPicker::new("uniform", 1 << 20, 0, 1, 7, 1.2).unwrap();
        assert!(std::iter::from_fn(|| u.next_unit())
            .take(1000)
            .all(|x| x < 1 << 20));
    }

    #[test]
    fn recorded_faults_are_split_round_robin_in_order() {
        let list = std::sync::Arc::new(vec![0, 512, 1024, 1536, 2048]);
        let mut a = FaultPicker::recorded(list.clone(), 4, 512, 0, 2);
        let mut b = FaultPicker::recorded(list, 4, 512, 1, 2);
        assert_eq!(
            std::iter::from_fn(|| a.next_unit()).collect::<Vec<_>>(),
            [0, 2, 0]
        );
        assert_eq!(
            std::iter::from_fn(|| b.next_unit()).collect::<Vec<_>>(),
            [1, 3]
        );
    }

    #[test]
    fn unknown_pattern_is_an_error() {
        assert!(FaultPicker::new("random", 10, 0, 1, 0, 1.0).is_err());
    }
}
