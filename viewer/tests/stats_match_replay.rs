//! The viewer's statistics equal `memmap-replay compare --json` on the fixture runs.
//!
//! Expected values produced once by:
//!   memmap-replay compare viewer/tests/data/qemu16g-williams-async.run.json \
//!       viewer/tests/data/qemu16g-duyck.run.json --json
//! (fields scenarios[0].metrics[*].groups[1].vs_baseline: delta_pct, ratio_ci95, p_value).
//! The test also recomputes medians from the raw repeat values of the run files.

use memmap_model::run::RunFile;
use memmap_viewer::doc::stats::{delta_table, median};
use std::path::PathBuf;

fn run(name: &str) -> RunFile {
    RunFile::read(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// (metric, median A, median B, delta_pct, ratio CI low, high, p)
const EXPECTED: &[(&str, f64, f64, f64, f64, f64, f64)] = &[
    (
        "time_to_available_ns",
        119438.0,
        15712290.0,
        13055.185116964449,
        1.480227713809773,
        334.9705415213707,
        0.1,
    ),
    (
        "time_to_complete_ns",
        15482615.0,
        15712290.0,
        1.4834380367915885,
        0.558759543685248,
        2.8285782532795394,
        0.7,
    ),
    (
        "init_ns",
        5635026.0,
        8066795.0,
        43.15453025416387,
        1.1884954099425737,
        1.5015740117645264,
        0.1,
    ),
    (
        "populate_ns",
        9755888.0,
        7514437.0,
        -22.975366260867283,
        0.7144844471866547,
        3.9045663793962473,
        1.0,
    ),
    (
        "memmap_bytes_per_s",
        11676635387.307886,
        8156664945.619667,
        -30.145417108033616,
        0.6659678391908782,
        0.8413999680893329,
        0.1,
    ),
    (
        "stall_p50_ns",
        31.0,
        38.0,
        22.58064516129032,
        0.4507042253521127,
        1.5,
        0.7,
    ),
    (
        "stall_p99_ns",
        12391.0,
        54.0,
        -99.56419982245178,
        0.0016532721010332951,
        0.643312101910828,
        0.1,
    ),
    (
        "stall_max_ns",
        2232319.0,
        345.0,
        -99.98454521956764,
        3.848993488202835e-05,
        0.00038092896453984214,
        0.1,
    ),
    (
        "engine_efficiency",
        0.7940652989876834,
        0.9368144900704738,
        17.977009103001308,
        1.0041705943848573,
        1.2554401876483723,
        0.1,
    ),
    (
        "fraction_of_nt_roofline",
        0.6161673433272536,
        0.5130914123627198,
        -16.728561174295958,
        0.8161134276005544,
        1.7810475713433365,
        1.0,
    ),
];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn delta_table_equals_replay_compare_json() {
    let a = run("qemu16g-williams-async.run.json");
    let b = run("qemu16g-duyck.run.json");
    let am: Vec<_> = a.repeats.iter().map(|r| r.metrics.clone()).collect();
    let bm: Vec<_> = b.repeats.iter().map(|r| r.metrics.clone()).collect();
    let rows = delta_table(&a.scenario.name, &b.config.strategy, &am, &bm);
    assert_eq!(rows.len(), EXPECTED.len());
    for (r, e) in rows.iter().zip(EXPECTED) {
        assert_eq!(r.metric, e.0);
        assert!(
            close(r.a_median, e.1),
            "{} A median {} vs {}",
            e.0,
            r.a_median,
            e.1
        );
        assert!(close(r.b_median, e.2), "{} B median", e.0);
        assert!(
            close(r.delta_pct.unwrap(), e.3),
            "{} delta {:?} vs {}",
            e.0,
            r.delta_pct,
            e.3
        );
        let ci = r.ratio_ci95.unwrap();
        assert!(
            close(ci[0], e.4) && close(ci[1], e.5),
            "{} CI {ci:?} vs [{}, {}]",
            e.0,
            e.4,
            e.5
        );
        assert!(close(r.p_value, e.6), "{} p {} vs {}", e.0, r.p_value, e.6);
        assert_eq!(r.verdict, "~", "n=3+3 can never be significant");
    }
    // Cross-check medians against the raw repeat values in the files.
    let raw = |f: &RunFile, g: fn(&memmap_model::run::Metrics) -> f64| {
        median(&f.repeats.iter().map(|r| g(&r.metrics)).collect::<Vec<_>>())
    };
    assert!(close(raw(&a, |m| m.init_ns as f64), EXPECTED[2].1));
    assert!(close(raw(&b, |m| m.init_ns as f64), EXPECTED[2].2));
    assert!(close(raw(&a, |m| m.memmap_bytes_per_s), EXPECTED[4].1));
    let mut v: Vec<f64> = b
        .repeats
        .iter()
        .map(|r| r.metrics.time_to_complete_ns as f64)
        .collect();
    v.sort_by(f64::total_cmp);
    assert!(close(v[1], EXPECTED[1].2));
}
