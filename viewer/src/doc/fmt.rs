//! Human-readable durations and sizes, as every view prints them.

/// Human-readable duration from nanoseconds.
pub fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if !ns.is_finite() {
        "?".into()
    } else if a >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Human-readable size (binary units).
pub fn fmt_bytes(b: u64) -> String {
    memmap_model::layout::format_size(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(fmt_ns(999.0), "999 ns");
        assert_eq!(fmt_ns(1_500.0), "1.500 µs");
        assert_eq!(fmt_ns(2_000_000.0), "2.000 ms");
        assert_eq!(fmt_ns(-3e9), "-3.000 s");
        assert_eq!(fmt_ns(f64::NAN), "?");
    }
}
