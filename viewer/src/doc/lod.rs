//! Level-of-detail structures for the timeline: rows of non-overlapping spans and
//! rows of instants, each with a prefix sum of busy time and a max pyramid, so one
//! pixel column of any zoom level is summarised in O(log n) without touching the
//! items inside it.

/// First index in `v[from..to]` whose value is not below `t` (`v` sorted), found by
/// galloping from `from`: O(log d) for an answer d items ahead, so walking a row
/// pixel column by pixel column stays local instead of bisecting the whole row.
pub fn gallop_lower_bound(v: &[u64], from: usize, to: usize, t: u64) -> usize {
    if from >= to || v[from] >= t {
        return from;
    }
    // v[lo] < t
    let mut lo = from;
    let mut step = 1;
    loop {
        let probe = lo + step;
        if probe >= to {
            break;
        }
        if v[probe] >= t {
            return lo + 1 + v[lo + 1..probe].partition_point(|&x| x < t);
        }
        lo = probe;
        step *= 2;
    }
    lo + 1 + v[lo + 1..to].partition_point(|&x| x < t)
}

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
    /// Walks left to right over the largest aligned blocks that fit: at most
    /// 2·log2(j - i) blocks, each found in O(1) (the block size is the smaller of i's
    /// alignment and the room left).
    pub fn argmax(&self, values: &[u64], mut i: usize, j: usize) -> Option<usize> {
        if i >= j {
            return None;
        }
        let top = self.levels.len();
        let mut best = i;
        let mut best_v = values[i];
        while i < j {
            let room = (usize::BITS - 1 - (j - i).leading_zeros()) as usize;
            let align = (i.trailing_zeros() as usize).min(usize::BITS as usize - 1);
            let level = room.min(align).min(top);
            let k = if level == 0 {
                i
            } else {
                self.levels[level - 1][i >> level] as usize
            };
            let v = values[k];
            if v > best_v {
                best = k;
                best_v = v;
            }
            i += 1 << level;
        }
        Some(best)
    }

    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.capacity() * 4).sum()
    }
}

/// Time buckets of a row at zoom levels 4× apart, so that a zoomed-out frame sums a
/// few buckets per pixel column instead of searching the items: level k has buckets of
/// 2^(shift0 + 2k) ns from `origin`; each bucket holds the time spans overlap it (or the
/// number of instants in it) and the largest duration / value with its label.
#[derive(Clone, Debug, Default)]
pub struct Mip {
    pub origin: u64,
    pub shift0: u32,
    pub levels: Vec<MipLevel>,
}

#[derive(Clone, Debug, Default)]
pub struct MipLevel {
    /// Busy ns (span rows) or item count (instant rows) per bucket.
    pub sum: Vec<u64>,
    /// Largest duration / value in the bucket and its label (`NO_LABEL` if empty).
    pub max: Vec<u64>,
    pub label: Vec<u32>,
}

pub const NO_LABEL: u32 = u32::MAX;

/// What one pixel column aggregates from the buckets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bucket {
    pub sum: u64,
    pub max: u64,
    pub label: u32,
}

impl Mip {
    /// Level-0 buckets at least as wide as the mean distance between items, so there
    /// are at most as many buckets as items (all levels: 4/3 of that).
    fn new(origin: u64, end: u64, n: usize) -> (Mip, usize) {
        let range = end.saturating_sub(origin).max(1);
        let want = (range / n.max(1) as u64).max(1);
        // Round up to a power of two: at most n buckets.
        let shift0 = if want <= 1 {
            0
        } else {
            64 - (want - 1).leading_zeros()
        };
        let nb = ((range >> shift0) + 1) as usize;
        let level = MipLevel {
            sum: vec![0; nb],
            max: vec![0; nb],
            label: vec![NO_LABEL; nb],
        };
        (
            Mip {
                origin,
                shift0,
                levels: vec![level],
            },
            nb,
        )
    }

    fn take(level: &mut MipLevel, b: usize, v: u64, label: u32) {
        if level.label[b] == NO_LABEL || v > level.max[b] {
            level.max[b] = v;
            level.label[b] = label;
        }
    }

    /// Build the coarser levels from level 0.
    fn build_up(&mut self) {
        while self.levels.last().is_some_and(|l| l.sum.len() > 4) {
            let prev = self.levels.last().expect("a level");
            let n = prev.sum.len().div_ceil(4);
            let mut next = MipLevel {
                sum: Vec::with_capacity(n),
                max: Vec::with_capacity(n),
                label: Vec::with_capacity(n),
            };
            for c in 0..n {
                let (a, b) = (c * 4, (c * 4 + 4).min(prev.sum.len()));
                next.sum.push(prev.sum[a..b].iter().sum());
                let mut m = 0;
                let mut l = NO_LABEL;
                for k in a..b {
                    if prev.label[k] != NO_LABEL && (l == NO_LABEL || prev.max[k] > m) {
                        m = prev.max[k];
                        l = prev.label[k];
                    }
                }
                next.max.push(m);
                next.label.push(l);
            }
            self.levels.push(next);
        }
    }

    /// Disjoint spans, sorted by start.
    pub fn of_spans(start: &[u64], end: &[u64], label: &[u32]) -> Mip {
        let (Some(&origin), Some(&last)) = (start.first(), end.iter().max()) else {
            return Mip::default();
        };
        let (mut mip, nb) = Mip::new(origin, last, start.len());
        let shift = mip.shift0;
        let l0 = &mut mip.levels[0];
        for i in 0..start.len() {
            let (s, e) = (start[i] - origin, end[i] - origin);
            let dur = e - s;
            let b0 = (s >> shift) as usize;
            let b1 = ((e.max(s + 1) - 1) >> shift) as usize;
            for b in b0..=b1.min(nb - 1) {
                let bs = (b as u64) << shift;
                let be = bs + (1u64 << shift);
                l0.sum[b] += e.min(be).saturating_sub(s.max(bs));
                Mip::take(l0, b, dur, label[i]);
            }
        }
        mip.build_up();
        mip
    }

    /// Instants sorted by time, with their values.
    pub fn of_instants(t: &[u64], value: &[u64], label: &[u32]) -> Mip {
        let (Some(&origin), Some(&last)) = (t.first(), t.last()) else {
            return Mip::default();
        };
        let (mut mip, nb) = Mip::new(origin, last, t.len());
        let shift = mip.shift0;
        let l0 = &mut mip.levels[0];
        for i in 0..t.len() {
            let b = (((t[i] - origin) >> shift) as usize).min(nb - 1);
            l0.sum[b] += 1;
            Mip::take(l0, b, value[i], label[i]);
        }
        mip.build_up();
        mip
    }

    /// The coarsest level whose buckets are at most `ns_per_px` wide, with its bucket
    /// width as a shift; None when even level 0 is coarser (zoomed in: use the items).
    pub fn level_for(&self, ns_per_px: f64) -> Option<(&MipLevel, u32)> {
        let mut found = None;
        for (k, l) in self.levels.iter().enumerate() {
            let shift = self.shift0 + 2 * k as u32;
            if shift >= 63 || (1u64 << shift) as f64 > ns_per_px {
                break;
            }
            found = Some((l, shift));
        }
        found
    }

    /// Sum and largest item of the buckets starting in [t0, t1) of a level.
    pub fn range(&self, level: &MipLevel, shift: u32, t0: u64, t1: u64) -> Bucket {
        let n = level.sum.len();
        let b0 = ((t0.saturating_sub(self.origin) >> shift) as usize).min(n);
        let b1 = ((t1.saturating_sub(self.origin) >> shift) as usize).min(n);
        let mut out = Bucket {
            sum: 0,
            max: 0,
            label: NO_LABEL,
        };
        for b in b0..b1 {
            out.sum += level.sum[b];
            if level.label[b] != NO_LABEL && (out.label == NO_LABEL || level.max[b] > out.max) {
                out.max = level.max[b];
                out.label = level.label[b];
            }
        }
        out
    }

    pub fn heap_bytes(&self) -> usize {
        self.levels
            .iter()
            .map(|l| l.sum.capacity() * 8 + l.max.capacity() * 8 + l.label.capacity() * 4)
            .sum()
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
    pub mip: Mip,
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
        self.mip = Mip::of_spans(&self.start, &self.end, &self.label);
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
            + self.mip.heap_bytes()
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
    pub mip: Mip,
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

    /// Move the items of `other` to the end (call `finish` afterwards).
    pub fn append(&mut self, mut other: InstantRow) {
        if self.t.is_empty() {
            self.t = other.t;
            self.value = other.value;
            self.label = other.label;
            self.aux = other.aux;
            return;
        }
        self.t.append(&mut other.t);
        self.value.append(&mut other.value);
        self.label.append(&mut other.label);
        self.aux.append(&mut other.aux);
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
        self.mip = Mip::of_instants(&self.t, &self.value, &self.label);
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
            + self.mip.heap_bytes()
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
    fn mip_buckets_sum_busy_time_and_keep_the_longest() {
        let rows = rows_from_spans(
            vec![
                (0, 100, 0, 0, 0),
                (150, 160, 1, 0, 0),
                (1000, 1400, 2, 0, 0),
            ],
            1,
        );
        let r = &rows[0];
        let m = &r.mip;
        // Every level holds all the busy time.
        for l in &m.levels {
            assert_eq!(l.sum.iter().sum::<u64>(), 100 + 10 + 400);
        }
        let (l, shift) = m.level_for(1e9).unwrap();
        let all = m.range(l, shift, 0, u64::MAX);
        assert_eq!((all.sum, all.max, all.label), (510, 400, 2));
        assert!(
            m.level_for(0.5).is_none(),
            "finer than level 0: use the items"
        );
        let inst = {
            let mut i = InstantRow::default();
            for (t, v) in [(5, 1), (6, 9), (700, 3)] {
                i.push(t, v, v as u32, 0);
            }
            i.finish();
            i
        };
        let (l, shift) = inst.mip.level_for(1e9).unwrap();
        let b = inst.mip.range(l, shift, 0, u64::MAX);
        assert_eq!((b.sum, b.max, b.label), (3, 9, 9));
    }

    #[test]
    fn gallop_matches_partition_point() {
        let v: Vec<u64> = (0..500u64).map(|i| i * 3 + (i % 7)).collect();
        for from in [0, 1, 17, 250, 499, 500] {
            for t in [0, 1, 5, 100, 700, 1400, 2000] {
                let want = from + v[from..].partition_point(|&x| x < t);
                assert_eq!(gallop_lower_bound(&v, from, v.len(), t), want, "{from} {t}");
            }
        }
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
