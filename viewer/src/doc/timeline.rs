//! The timeline model: lanes of level-of-detail rows ([`super::lod`]) and the
//! labels their items point to, for one run repeat or one trace; and the
//! statistics of a selected time range. How it is drawn (colours included) is
//! `views::timeline`'s business.

use super::lod::{InstantRow, SpanRow};
use std::collections::HashMap;

/// Maximum nesting rows per timeline lane (deeper function_graph levels are folded).
pub const MAX_ROWS: usize = 6;

/// One lane of the timeline: a thread of a replay, or a task/CPU of a trace.
#[derive(Clone, Debug, Default)]
pub struct Lane {
    pub name: String,
    /// Shown on hover of the lane name (pid and CPUs of a trace lane, role of a thread).
    pub detail: String,
    pub rows: Vec<SpanRow>,
    pub instants: InstantRow,
}

/// Everything the timeline draws for one run repeat or one trace.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Unique per built timeline (views key caches on it, e.g. label colours).
    pub id: u64,
    pub lanes: Vec<Lane>,
    /// Span and instant labels (span kinds, function names, fault kinds, mark texts).
    pub labels: Vec<String>,
    pub t_min: u64,
    pub t_max: u64,
    pub n_spans: usize,
    pub n_instants: usize,
    /// What the `aux` fields of spans mean ("first pfn") and of instants ("pfn", "address").
    pub span_aux: &'static str,
    pub instant_aux: &'static str,
    /// Instant labels that are faults (their value is a latency).
    pub fault_labels: Vec<bool>,
}

impl Timeline {
    pub fn heap_bytes(&self) -> usize {
        self.lanes
            .iter()
            .map(|l| {
                l.rows.iter().map(SpanRow::heap_bytes).sum::<usize>() + l.instants.heap_bytes()
            })
            .sum::<usize>()
            + self.labels.iter().map(|s| s.capacity()).sum::<usize>()
    }

    /// Is instant label `id` a fault (its value a latency)?
    pub fn is_fault(&self, id: u32) -> bool {
        self.fault_labels.get(id as usize).copied().unwrap_or(false)
    }

    /// Finish the instant rows, count items, find the time range, give the timeline
    /// its id.
    pub(crate) fn finish(&mut self) {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut t_min = u64::MAX;
        let mut t_max = 0;
        self.n_spans = 0;
        self.n_instants = 0;
        for l in &mut self.lanes {
            l.instants.finish();
            for r in &l.rows {
                if let (Some(&s), Some(&e)) = (r.start.first(), r.end.iter().max()) {
                    t_min = t_min.min(s);
                    t_max = t_max.max(e);
                }
                self.n_spans += r.len();
            }
            if let (Some(&s), Some(&e)) = (l.instants.t.first(), l.instants.t.last()) {
                t_min = t_min.min(s);
                t_max = t_max.max(e);
            }
            self.n_instants += l.instants.len();
        }
        if t_min == u64::MAX {
            t_min = 0;
        }
        self.t_min = t_min;
        self.t_max = t_max.max(t_min + 1);
        self.fault_labels.resize(self.labels.len(), false);
        self.id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Per-lane statistics of the time range `(a, b)` (ns relative to `t_min`): lanes
    /// with no item in it are left out.
    pub fn selection_stats(&self, (a, b): (f64, f64)) -> Vec<LaneStats> {
        let t0 = (a.max(0.0) as u64).saturating_add(self.t_min);
        let t1 = (b.max(0.0) as u64).saturating_add(self.t_min);
        let mut out = Vec::new();
        for lane in &self.lanes {
            let mut spans = 0;
            let mut busy = 0;
            for row in &lane.rows {
                let (n, bz) = row.busy_in(t0, t1);
                spans += n;
                busy += bz;
            }
            let i = lane.instants.first_at(t0);
            let j = lane.instants.first_at(t1);
            let mut lat: Vec<u64> = (i..j)
                .filter(|&k| self.is_fault(lane.instants.label[k]))
                .map(|k| lane.instants.value[k])
                .collect();
            lat.sort_unstable();
            let q = |p: f64| -> u64 {
                if lat.is_empty() {
                    0
                } else {
                    lat[((lat.len() - 1) as f64 * p).round() as usize]
                }
            };
            if spans > 0 || j > i {
                out.push(LaneStats {
                    lane: lane.name.clone(),
                    spans,
                    busy_ns: busy,
                    instants: j - i,
                    faults: lat.len(),
                    fault_p50: q(0.5),
                    fault_p99: q(0.99),
                    fault_max: lat.last().copied().unwrap_or(0),
                });
            }
        }
        out
    }
}

/// What a lane holds in a selected time range.
#[derive(Clone, Debug, PartialEq)]
pub struct LaneStats {
    pub lane: String,
    pub spans: usize,
    pub busy_ns: u64,
    pub instants: usize,
    pub faults: usize,
    pub fault_p50: u64,
    pub fault_p99: u64,
    pub fault_max: u64,
}

/// Interns label strings.
#[derive(Default)]
pub struct Labels {
    map: HashMap<String, u32>,
    pub list: Vec<String>,
}

impl Labels {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.map.insert(s.to_string(), i);
        self.list.push(s.to_string());
        i
    }
}

#[cfg(test)]
mod tests {
    use super::super::lod::rows_from_spans;
    use super::*;

    #[test]
    fn a_selection_counts_busy_time_and_fault_latencies_per_lane() {
        let mut faults = InstantRow::default();
        for (t, lat) in [(100, 5), (200, 50), (300, 500), (900, 7)] {
            faults.push(t, lat, 1, 0);
        }
        faults.push(250, 0, 2, 0); // a mark, not a fault
        let mut tl = Timeline {
            lanes: vec![
                Lane {
                    name: "a".into(),
                    rows: rows_from_spans(vec![(0, 100, 0, 0, 0), (150, 400, 0, 0, 0)], MAX_ROWS),
                    ..Default::default()
                },
                Lane {
                    name: "b".into(),
                    instants: faults,
                    ..Default::default()
                },
                Lane {
                    name: "empty in range".into(),
                    rows: rows_from_spans(vec![(2000, 3000, 0, 0, 0)], MAX_ROWS),
                    ..Default::default()
                },
            ],
            labels: vec!["span".into(), "fault".into(), "mark".into()],
            fault_labels: vec![false, true, false],
            ..Default::default()
        };
        tl.finish();
        assert_eq!(
            (tl.t_min, tl.t_max, tl.n_spans, tl.n_instants),
            (0, 3000, 3, 5)
        );
        let s = tl.selection_stats((50.0, 350.0));
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(
            (s[0].lane.as_str(), s[0].spans, s[0].busy_ns),
            ("a", 2, 250)
        );
        assert_eq!(
            (s[1].instants, s[1].faults, s[1].fault_p50, s[1].fault_max),
            (4, 3, 50, 500)
        );
        let other = Timeline::default();
        let mut other = other;
        other.finish();
        assert_ne!(other.id, tl.id, "each timeline its own id");
    }
}
