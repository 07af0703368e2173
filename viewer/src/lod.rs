//! Level-of-detail structures for the timeline: rows of non-overlapping spans and
//! rows of instants, each with a prefix sum of busy time and a max pyramid, so one
//! pixel column of any zoom level is summarised in O(log n) without touching the
//! items inside it.

/// Arg-max pyramid over a value array: level k holds, for each block of 2^k
/// consecutive items, the index of the largest value. `max_in(i, j)` combines at
/// most 2·log2(n) blocks.
#[derive(Clone, Debug, Default)]
pub struct MaxPyramid {
    /// levels[0] covers blocks of 2 items, levels[1] blocks of 4, ...
    levels: Vec<Vec<u32>>,
}

impl MaxPyramid {
    pub fn build(values: &[u64]) -> MaxPyramid {
        let mut levels: Vec<Vec<u32>> = Vec::new();
        let n = values.len();
        if n < 2 {
            return MaxPyramid { levels };
        }
        let mut prev: Vec<u32> = (0..n as u32).collect();
        while prev.len() >= 2 {
            let next: Vec<u32> = prev
                .chunks(2)
                .map(|c| {
                    if c.len() == 2 && values[c[1] as usize] > values[c[0] as usize] {
                        c[1]
                    } else {
                        c[0]
                    }
                })
                .collect();
            levels.push(next.clone());
            prev = next;
        }
        MaxPyramid { levels }
    }

    /// Index of the largest value in `values[i..j]` (first one on ties), None if empty.
    pub fn argmax(&self, values: &[u64], mut i: usize, j: usize) -> Option<usize> {
        if i >= j {
            return None;
        }
        let mut best: Option<usize> = None;
        let take = |k: usize, best: &mut Option<usize>| match *best {
            Some(b) if values[b] >= values[k] => {}
            _ => *best = Some(k),
        };
        while i < j {
            // Largest aligned block starting at i that fits in [i, j).
            let mut level = 0usize; // block size 2^level
            while level < self.levels.len() + 1 {
                let size = 1usize << (level + 1);
                if i.is_multiple_of(size) && i + size <= j && level < self.levels.len() {
                    level += 1;
                } else {
                    break;
                }
            }
            if level == 0 {
                take(i, &mut best);
                i += 1;
            } else {
                let idx = self.levels[level - 1][i >> level] as usize;
                take(idx, &mut best);
                i += 1 << level;
            }
        }
        best
    }

    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.capacity() * 4).sum()
    }
}

/// Spans that do not overlap each other, sorted by start.
#[derive(Clone, Debug, Default)]
pub struct SpanRow {
    pub start: Vec<u64>,
    pub end: Vec<u64>,
    /// Index into the timeline's label table.
    pub label: Vec<u32>,
    /// Extra per-span detail (first pfn for replay spans, 0 otherwise).
    pub aux: Vec<u64>,
    /// Extra per-span detail (pages for replay spans, 0 otherwise).
    pub aux2: Vec<u64>,
    /// busy_prefix[i] = sum of durations of spans 0..i.
    pub busy_prefix: Vec<u64>,
    dur: Vec<u64>,
    pyramid: MaxPyramid,
}

impl SpanRow {
    pub fn push(&mut self, start: u64, end: u64, label: u32, aux: u64, aux2: u64) {
        self.start.push(start);
        self.end.push(end.max(start));
        self.label.push(label);
        self.aux.push(aux);
        self.aux2.push(aux2);
    }

    pub fn len(&self) -> usize {
        self.start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }

    /// Compute the prefix sums and the pyramid; call once after the last push.
    pub fn finish(&mut self) {
        self.dur = self
            .start
            .iter()
            .zip(&self.end)
            .map(|(s, e)| e - s)
            .collect();
        self.busy_prefix = Vec::with_capacity(self.dur.len() + 1);
        let mut acc = 0u64;
        self.busy_prefix.push(0);
        for d in &self.dur {
            acc += d;
            self.busy_prefix.push(acc);
        }
        self.pyramid = MaxPyramid::build(&self.dur);
    }

    pub fn dur(&self, i: usize) -> u64 {
        self.end[i] - self.start[i]
    }

    /// Index of the first span that ends after `t` (spans are disjoint, so ends are sorted).
    pub fn first_ending_after(&self, t: u64) -> usize {
        self.end.partition_point(|&e| e <= t)
    }

    /// Index of the first span starting at or after `t`.
    pub fn first_starting_at(&self, t: u64) -> usize {
        self.start.partition_point(|&s| s < t)
    }

    /// Longest span among `i..j`.
    pub fn longest(&self, i: usize, j: usize) -> Option<usize> {
        self.pyramid.argmax(&self.dur, i, j)
    }

    /// Busy time of spans `i..j` (whole spans).
    pub fn busy(&self, i: usize, j: usize) -> u64 {
        self.busy_prefix[j] - self.busy_prefix[i]
    }

    /// Busy time clipped to [t0, t1).
    pub fn busy_in(&self, t0: u64, t1: u64) -> (usize, u64) {
        let i = self.first_ending_after(t0);
        let j = self.first_starting_at(t1);
        if i >= j {
            return (0, 0);
        }
        let mut busy = self.busy(i, j);
        // Clip the first and last span to the range.
        if self.start[i] < t0 {
            busy -= t0 - self.start[i];
        }
        if self.end[j - 1] > t1 {
            busy -= self.end[j - 1] - t1;
        }
        (j - i, busy)
    }

    pub fn heap_bytes(&self) -> usize {
        self.start.capacity() * 8
            + self.end.capacity() * 8
            + self.label.capacity() * 4
            + self.aux.capacity() * 8
            + self.aux2.capacity() * 8
            + self.busy_prefix.capacity() * 8
            + self.dur.capacity() * 8
            + self.pyramid.heap_bytes()
    }
}

/// Point events (faults, uevents, marks) sorted by time, each with a value (latency
/// in ns for faults, 0 otherwise).
#[derive(Clone, Debug, Default)]
pub struct InstantRow {
    pub t: Vec<u64>,
    pub value: Vec<u64>,
    pub label: Vec<u32>,
    pub aux: Vec<u64>,
    pyramid: MaxPyramid,
}

impl InstantRow {
    pub fn push(&mut self, t: u64, value: u64, label: u32, aux: u64) {
        self.t.push(t);
        self.value.push(value);
        self.label.push(label);
        self.aux.push(aux);
    }

    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    pub fn finish(&mut self) {
        if !self.t.windows(2).all(|w| w[0] <= w[1]) {
            let mut idx: Vec<usize> = (0..self.t.len()).collect();
            idx.sort_by_key(|&i| self.t[i]);
            self.t = idx.iter().map(|&i| self.t[i]).collect();
            self.value = idx.iter().map(|&i| self.value[i]).collect();
            self.label = idx.iter().map(|&i| self.label[i]).collect();
            self.aux = idx.iter().map(|&i| self.aux[i]).collect();
        }
        self.pyramid = MaxPyramid::build(&self.value);
    }

    pub fn first_at(&self, t: u64) -> usize {
        self.t.partition_point(|&x| x < t)
    }

    pub fn largest(&self, i: usize, j: usize) -> Option<usize> {
        self.pyramid.argmax(&self.value, i, j)
    }

    pub fn heap_bytes(&self) -> usize {
        self.t.capacity() * 8
            + self.value.capacity() * 8
            + self.label.capacity() * 4
            + self.aux.capacity() * 8
            + self.pyramid.heap_bytes()
    }
}

/// A span before it is put in a row: (start, end, label, aux, aux2).
pub type RawSpan = (u64, u64, u32, u64, u64);

/// Split possibly nested or overlapping spans (function_graph durations nest) into
/// rows of disjoint spans: a span goes to the first row whose last span has ended.
/// Input: (start, end, label, aux, aux2) in any order. At most `max_rows` rows; spans
/// that would need more rows are put in the last one, clipped to start after its
/// previous span so the row stays disjoint.
pub fn rows_from_spans(mut spans: Vec<RawSpan>, max_rows: usize) -> Vec<SpanRow> {
    // Sort by start, longer first, so parents come before their children.
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut rows: Vec<SpanRow> = Vec::new();
    for (s, e, l, a, a2) in spans {
        let e = e.max(s);
        let slot = rows
            .iter()
            .position(|r| r.end.last().is_none_or(|&last| last <= s));
        match slot {
            Some(k) => rows[k].push(s, e, l, a, a2),
            None if rows.len() < max_rows.max(1) => {
                let mut r = SpanRow::default();
                r.push(s, e, l, a, a2);
                rows.push(r);
            }
            None => {
                let r = rows.last_mut().expect("max_rows >= 1");
                let last = *r.end.last().expect("row is not empty");
                if e > last {
                    r.push(last, e, l, a, a2);
                }
            }
        }
    }
    for r in &mut rows {
        r.finish();
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_argmax_matches_brute_force() {
        let values: Vec<u64> = (0..1000u64).map(|i| (i * 7919) % 613).collect();
        let p = MaxPyramid::build(&values);
        for (i, j) in [
            (0, 1000),
            (3, 4),
            (5, 900),
            (511, 513),
            (0, 1),
            (999, 1000),
            (17, 300),
        ] {
            let got = p.argmax(&values, i, j).unwrap();
            let want = (i..j)
                .max_by_key(|&k| (values[k], std::cmp::Reverse(k)))
                .unwrap();
            assert_eq!(values[got], values[want], "{i}..{j}");
        }
        assert_eq!(p.argmax(&values, 5, 5), None);
    }

    #[test]
    fn nested_spans_go_to_rows_and_busy_clips() {
        let rows = rows_from_spans(
            vec![
                (0, 100, 0, 0, 0),
                (10, 20, 1, 0, 0),
                (30, 40, 1, 0, 0),
                (200, 300, 0, 0, 0),
            ],
            8,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].len(), 2);
        assert_eq!(rows[1].len(), 2);
        assert_eq!(rows[0].busy_in(50, 250), (2, 50 + 50));
        assert_eq!(rows[1].busy_in(0, 1000), (2, 20));
    }
}
