//! Malformed, truncated and garbage inputs are errors with file/line, never panics.

use memmap_viewer::doc::{load_bytes, Doc};
use std::path::PathBuf;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn every_truncation_of_a_run_file_is_an_error_not_a_panic() {
    let bytes = data("qemu16g-duyck.run.json");
    for cut in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        match load_bytes("t.run.json", &bytes[..cut]) {
            Err(e) => assert!(e.path == "t.run.json" && !e.reason.is_empty()),
            Ok(_) => panic!("truncated run file at {cut} accepted"),
        }
    }
    assert!(matches!(load_bytes("t.run.json", &bytes), Ok(Doc::Run(_))));
}

#[test]
fn truncated_traces_keep_their_complete_lines() {
    let bytes = data("ftrace-fgraph-hotplug-1G-add-online.trace.jsonl");
    for cut in 0..bytes.len() {
        match load_bytes("t.jsonl", &bytes[..cut]) {
            Ok(Doc::Trace(t)) => assert!(t.timeline.n_spans <= 32),
            Ok(Doc::Run(_)) => panic!("a trace became a run"),
            Err(e) => assert!(e.line.is_some() || !e.reason.is_empty()),
        }
    }
    let Ok(Doc::Trace(t)) = load_bytes("t.jsonl", &bytes[..bytes.len() - 20]) else {
        panic!("a trace cut in its last line loads");
    };
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("truncated last record")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn garbage_and_wrong_documents_name_the_problem() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty"),
        (b"\x00\xff\xfe garbage", "UTF-8"),
        (b"{\"format\":\"something-else\",\"version\":1}", "neither"),
        (b"{\"format\":\"memmap-lab-run\",\"version\":99}", "version 99"),
        (b"{\"format\":\"memmap-lab-trace\",\"version\":1,\"created_unix_s\":0,\"source\":\"x\",\"kernel_release\":\"\",\"cmdline\":\"\",\"numa_nodes\":0,\"cpus\":0,\"notes\":[]}\n{\"kind\":\"function-span\",\"t_ns\":1}\nnot json\n", "without dur_ns"),
        (b"[1,2,3]", "line"),
    ];
    for (bytes, want) in cases {
        let e = match load_bytes("g", bytes) {
            Err(e) => e,
            Ok(_) => panic!("{want}: accepted"),
        };
        let s = e.to_string();
        assert!(
            s.contains(want) || (e.line.is_some() && *want == "line"),
            "{s} should mention {want}"
        );
    }
    // Random bytes with newlines and braces.
    let mut x: u64 = 42;
    for _ in 0..200 {
        let mut v = Vec::new();
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let alphabet = b"{}[]\":,\n0123abc-memmap-lab-trace";
            v.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let _ = load_bytes("r", &v);
    }
}
