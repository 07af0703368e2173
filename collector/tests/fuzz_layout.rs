//! The ndctl and iomem importers never panic and name only lines that exist: mutated
//! real captures (tests/corpus) and random input.

use memmap_collect::import::{iomem, ndctl};
use memmap_model::trace::TraceEvent;
use proptest::prelude::*;
use std::path::Path;

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with("ndctl") || n.starts_with("daxctl") || n.starts_with("iomem"))
                && e.path().is_file()
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    v.sort();
    assert!(v.len() >= 8);
    v
}

fn check(text: &str) {
    let lines = text.split('\n').count();
    for (what, ev) in [
        ("ndctl", ndctl::import("f", text)),
        ("iomem", iomem::import("f", text)),
    ] {
        for e in &ev {
            if let TraceEvent::ImportWarning { line, reason, file } = e {
                assert_eq!(file, "f");
                assert!(
                    *line >= 1 && *line <= lines,
                    "{what}: line {line} of {lines}: {reason}\n--- input ---\n{text}"
                );
                assert!(!reason.is_empty());
            }
        }
        // Every event serializes (no NaN, no invalid strings).
        for e in &ev {
            serde_json::to_string(e).unwrap();
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, String),
    SwapLines(usize, usize),
    Crlf,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (
            any::<usize>(),
            prop_oneof![
                Just("{".to_string()),
                Just("}".to_string()),
                Just("]".to_string()),
                Just("\"".to_string()),
                Just(",".to_string()),
                Just("\n$ ".to_string()),
                Just("\"size\":\"99999.99 TiB (1.0 GB)\",".to_string()),
                Just("\"size\":18446744073709551615,".to_string()),
                Just("\"align\":0,".to_string()),
                Just("\"mode\":\"fsdax\",\"map\":\"dev\",".to_string()),
                Just("ffffffffffffffff-0 : x\n".to_string()),
                Just("\t\t".to_string()),
                "[ -~\n]{0,12}",
                "\\PC{0,4}",
            ]
        )
            .prop_map(|(a, s)| Mutation::Insert(a, s)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        Just(Mutation::Crlf),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let floor = |s: &str, mut i: usize| {
        i = i.min(s.len());
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let len = text.len().max(1);
    match m {
        Mutation::Truncate(a) => text[..floor(text, a % len)].to_string(),
        Mutation::Delete(a, n) => {
            let s = floor(text, a % len);
            let e = floor(text, s + n);
            format!("{}{}", &text[..s], &text[e..])
        }
        Mutation::Insert(a, ins) => {
            let s = floor(text, a % len);
            format!("{}{ins}{}", &text[..s], &text[s..])
        }
        Mutation::SwapLines(a, b) => {
            let mut l: Vec<&str> = text.split('\n').collect();
            let n = l.len();
            l.swap(a % n, b % n);
            l.join("\n")
        }
        Mutation::Crlf => text.replace('\n', "\r\n"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus(idx in any::<usize>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let c = corpus();
        let mut text = c[idx % c.len()].clone();
        for m in &muts {
            text = apply(&text, m);
        }
        check(&text);
    }

    #[test]
    fn random_text(text in "\\PC{0,300}") {
        check(&text);
    }

    #[test]
    fn random_json_ish(text in "[\\[\\]{}\":, 0-9a-fx.\n-]{0,300}|(\"(dev|mode|map|size|align|resource|numa_node|namespaces|regions|devices|chardev|available_size)\":[\\[{\"0-9a-zA-Z. ()]{0,20},?\n?){0,30}") {
        check(&text);
        check(&format!("{{{text}}}"));
        check(&format!("{{\"dev\":\"region0\",\"available_size\":0,\"namespaces\":[{{\"dev\":\"namespace0.0\",{text}}}]}}"));
    }
}

#[test]
fn whole_corpus_unmutated() {
    for t in corpus() {
        check(&t);
    }
}
