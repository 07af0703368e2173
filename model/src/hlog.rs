//! HdrHistogram interval logs (`.hlog`), the text format of the Java reference
//! implementation's `HistogramLogWriter` / `HistogramLogReader` /
//! `HistogramLogProcessor`, written with `hdrhistogram::serialization::interval_log`.
//!
//! Layout of what [`write_interval_log`] writes:
//!
//! ```text
//! #<comment lines>
//! #[Histogram log format version 1.3]
//! #[StartTime: 1795308567.641 (seconds since epoch)]
//! #[BaseTime: 1795308567.641 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! #[MaxValueDivisor: 1000000.000]
//! Tag=<tag>,<start s since BaseTime>,<length s>,<max / 1e6>,<V2 deflate histogram, base64>
//! ```
//!
//! Values are nanoseconds; the max column is in milliseconds (divisor 1e6, the Java
//! writer's default), for humans only: the histogram payload carries the exact values.

use crate::hist::{HistError, StoredHistogram};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use std::io::Write;
use std::time::Duration;

/// One interval of the log.
pub struct Interval<'a> {
    /// Tag (characters the format forbids, `,` ` ` `\r` `\n`, are replaced by `_`).
    pub tag: String,
    /// Seconds since the log's BaseTime.
    pub start_s: f64,
    pub length_s: f64,
    pub histogram: &'a StoredHistogram,
}

#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    #[error("{0}")]
    Hist(#[from] HistError),
    #[error("writing the interval log: {0}")]
    Io(#[from] std::io::Error),
    #[error("serializing a histogram into the interval log: {0}")]
    Write(String),
}

/// A tag the interval-log format accepts.
pub fn sanitize_tag(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| match c {
            ',' | ' ' | '\r' | '\n' | '\t' => '_',
            c => c,
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

/// Write an interval log: `comments`, the Java writer's headers with StartTime =
/// BaseTime = `base_unix_s`, then every interval in the given order.
pub fn write_interval_log<W: Write>(
    w: &mut W,
    comments: &[String],
    base_unix_s: f64,
    intervals: &[Interval<'_>],
) -> Result<(), HlogError> {
    for c in comments {
        for l in c.split('\n') {
            writeln!(w, "#{l}")?;
        }
    }
    writeln!(w, "#[Histogram log format version 1.3]")?;
    writeln!(w, "#[StartTime: {base_unix_s:.3} (seconds since epoch)]")?;
    writeln!(w, "#[BaseTime: {base_unix_s:.3} (seconds since epoch)]")?;
    writeln!(
        w,
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    )?;
    // The builder adds a `#[MaxValueDivisor: 1000000.000]` line (a comment to every reader).
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(1_000_000.0)
        .begin_log_with(w, &mut serializer)?;
    for i in intervals {
        let h = i.histogram.decode()?;
        let tag = sanitize_tag(&i.tag);
        log.write_histogram(
            &h,
            Duration::from_secs_f64(i.start_s.max(0.0)),
            Duration::from_secs_f64(i.length_s.max(0.0)),
            Tag::new(&tag),
        )
        .map_err(|e| HlogError::Write(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::new_histogram;
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn log_reads_back_with_hdrhistograms_own_reader() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1000u64 {
            a.record(v * 1000).unwrap();
            b.record(v * 7).unwrap();
        }
        let (sa, sb) = (
            StoredHistogram::from_histogram(&a),
            StoredHistogram::from_histogram(&b),
        );
        let mut out = Vec::new();
        write_interval_log(
            &mut out,
            &["memmap-lab test".to_string()],
            1_700_000_000.25,
            &[
                Interval {
                    tag: "williams-async".into(),
                    start_s: 0.0,
                    length_s: 1.5,
                    histogram: &sa,
                },
                Interval {
                    tag: "williams-async/fault pmem0,0".into(),
                    start_s: 2.0,
                    length_s: 0.5,
                    histogram: &sb,
                },
            ],
        )
        .unwrap();
        let mut got = Vec::new();
        let mut base = None;
        for e in IntervalLogIterator::new(&out) {
            match e.unwrap() {
                LogEntry::BaseTime(t) => base = Some(t),
                LogEntry::StartTime(_) => {}
                LogEntry::Interval(i) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(i.encoded_histogram())
                        .unwrap();
                    let h: hdrhistogram::Histogram<u64> = Deserializer::new()
                        .deserialize(&mut bytes.as_slice())
                        .unwrap();
                    got.push((
                        i.tag().map(|t| t.as_str().to_string()),
                        i.start_timestamp(),
                        h,
                    ));
                }
            }
        }
        assert_eq!(base, Some(Duration::from_millis(1_700_000_000_250)));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.as_deref(), Some("williams-async"));
        assert_eq!(got[1].0.as_deref(), Some("williams-async/fault_pmem0_0"));
        assert_eq!(got[1].1, Duration::from_secs(2));
        assert_eq!(got[0].2.len(), 1000);
        assert_eq!(got[0].2.value_at_quantile(0.99), a.value_at_quantile(0.99));
        assert_eq!(got[1].2.max(), b.max());
    }
}
