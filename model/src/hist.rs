//! Fault-stall histograms as stored in run files.
//!
//! The full HdrHistogram is kept in its standard V2 deflate encoding, base64'd
//! (the same bytes HdrHistogram's own tools read from interval logs), next to a
//! precomputed percentile table so a consumer without an HdrHistogram library
//! can still plot the distribution.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest and highest trackable stall (ns) and precision of every histogram in a run.
pub const HIST_LOW_NS: u64 = 1;
pub const HIST_HIGH_NS: u64 = 3_600_000_000_000;
pub const HIST_SIGFIG: u8 = 3;

/// A new empty histogram with the lab's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_NS, HIST_HIGH_NS, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredHistogram {
    /// Number of recorded values.
    pub count: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    /// (percentile 0..100, value_ns) at HdrHistogram's percentile ticks (5 per half).
    pub percentiles: Vec<(f64, u64)>,
    /// HdrHistogram V2 deflate encoding, standard base64.
    pub hdr_v2_deflate_base64: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HistError {
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not a valid HdrHistogram V2 encoding: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
}

impl StoredHistogram {
    pub fn from_histogram(h: &Histogram<u64>) -> StoredHistogram {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .expect("serializing into a Vec cannot fail");
        let percentiles = if h.is_empty() {
            Vec::new()
        } else {
            h.iter_quantiles(5)
                .map(|v| (v.percentile(), v.value_iterated_to()))
                .collect()
        };
        StoredHistogram {
            count: h.len(),
            min_ns: if h.is_empty() { 0 } else { h.min() },
            max_ns: h.max(),
            mean_ns: if h.is_empty() { 0.0 } else { h.mean() },
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            percentiles,
            hdr_v2_deflate_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// Decode the full histogram.
    pub fn decode(&self) -> Result<Histogram<u64>, HistError> {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(&self.hdr_v2_deflate_base64)?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(HistError::Decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_counts_and_percentiles() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let s = StoredHistogram::from_histogram(&h);
        assert_eq!(s.count, 10_000);
        let back = s.decode().unwrap();
        assert_eq!(back.len(), 10_000);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        // p50 of 100..=1_000_000 is about 500_000 within 3 significant digits.
        assert!((s.p50_ns as i64 - 500_000).abs() < 1_000, "{}", s.p50_ns);
        assert!(s.percentiles.last().unwrap().0 >= 99.9);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let s = StoredHistogram {
            count: 0,
            min_ns: 0,
            max_ns: 0,
            mean_ns: 0.0,
            p50_ns: 0,
            p90_ns: 0,
            p99_ns: 0,
            p999_ns: 0,
            percentiles: vec![],
            hdr_v2_deflate_base64: "SElTVEZBQUFB".into(),
        };
        assert!(s.decode().is_err());
    }
}
