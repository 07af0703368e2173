//! Fuzzing the text importers: real corpus lines mutated (byte flips, truncation, splices,
//! injected fields, absurd numbers) and random bytes. No importer may panic, and every
//! warning must name the file and a line that exists.

use memmap_collect::import::{dmesg, ftrace, perf_script};
use memmap_model::trace::TraceEvent;
use proptest::prelude::*;
use std::sync::OnceLock;

fn corpus_lines() -> &'static Vec<String> {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| {
        let dir = format!("{}/tests/corpus", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with("ftrace") || n.starts_with("dmesg") || n.starts_with("perf-script")
            })
            .collect();
        names.sort();
        let mut lines = Vec::new();
        for n in names {
            let b = std::fs::read(format!("{dir}/{n}")).unwrap();
            lines.extend(String::from_utf8_lossy(&b).lines().map(String::from));
        }
        assert!(lines.len() > 300);
        lines
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Keep,
    FlipByte(usize, u8),
    Truncate(usize),
    Splice(usize, usize),
    InsertField(usize, String),
    HugeNumber(usize),
    Duplicate,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Keep),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, c)| Mutation::Splice(a, c)),
        2 => (any::<usize>(), "[a-z_]{1,8}=(0x[0-9a-f]{1,20}|-?[0-9]{1,25}|\"[^\"]{0,6}\"?|)").prop_map(|(i, f)| Mutation::InsertField(i, f)),
        2 => any::<usize>().prop_map(Mutation::HugeNumber),
        1 => Just(Mutation::Duplicate),
    ]
}

fn apply(line: &str, m: &Mutation, other: &str) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    match m {
        Mutation::Keep => {}
        Mutation::FlipByte(i, x) => {
            if !b.is_empty() {
                let i = i % b.len();
                b[i] = *x;
            }
        }
        Mutation::Truncate(i) => b.truncate(i % (b.len() + 1)),
        Mutation::Splice(a, c) => {
            let o = other.as_bytes();
            let a = a % (b.len() + 1);
            let c = c % (o.len() + 1);
            b.truncate(a);
            b.extend_from_slice(&o[c..]);
        }
        Mutation::InsertField(i, f) => {
            let i = i % (b.len() + 1);
            let mut ins = b" ".to_vec();
            ins.extend_from_slice(f.as_bytes());
            ins.push(b' ');
            b.splice(i..i, ins);
        }
        Mutation::HugeNumber(i) => {
            // make the digit run at (or after) i absurdly long
            if let Some(p) = (0..b.len())
                .map(|k| (k + i) % b.len())
                .find(|&k| b[k].is_ascii_digit())
            {
                b.splice(p..p, b"98765432109876543210987654321".iter().copied());
            }
        }
        Mutation::Duplicate => {
            let c = b.clone();
            b.push(b'\n');
            b.extend_from_slice(&c);
        }
    }
    b
}

fn check(file: &str, text: &str, ev: &[TraceEvent]) -> Result<(), TestCaseError> {
    let n = text.split('\n').count();
    for e in ev {
        if let TraceEvent::ImportWarning {
            file: f,
            line,
            reason,
        } = e
        {
            prop_assert_eq!(f.as_str(), file);
            prop_assert!(
                *line >= 1 && *line <= n,
                "line {} of {}: {}",
                line,
                n,
                reason
            );
            prop_assert!(reason.contains("expected"), "{}", reason);
        }
    }
    Ok(())
}

fn all_importers(text: &str) -> Result<(), TestCaseError> {
    check("f.txt", text, &ftrace::import("f.txt", text))?;
    check("d.txt", text, &dmesg::import("d.txt", text))?;
    check("p.txt", text, &perf_script::import("p.txt", text))?;
    // streaming with the caller's own line numbers
    let mut p = ftrace::FtraceParser::new("s.txt");
    let mut out = Vec::new();
    for (i, l) in text.split('\n').enumerate() {
        p.line(i + 1, l, &mut out);
    }
    p.finish(&mut out);
    check("s.txt", text, &out)
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N for a longer run
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn mutated_corpus_lines(picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), mutation()), 1..40)) {
        let lines = corpus_lines();
        let mut bytes = Vec::new();
        for (a, b, m) in &picks {
            let line = &lines[a.index(lines.len())];
            let other = &lines[b.index(lines.len())];
            bytes.extend(apply(line, m, other));
            bytes.push(b'\n');
        }
        let text = String::from_utf8_lossy(&bytes);
        all_importers(&text)?;
    }

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        all_importers(&text)?;
    }

    #[test]
    fn random_structured_lines(lines in prop::collection::vec(
        "[ ]{0,12}([a-z<>./:-]{0,12}-[0-9]{0,12})? *(\\[[0-9]{0,5}\\])? *[.dNh0-9]{0,5} *[0-9]{0,22}(\\.[0-9]{0,12})?:? *[a-z_:]{0,20}:? *(\\([a-z_+0-9x/ <-]{0,30}\\))? *([a-z_]{1,6}=[0-9a-fx-]{0,22} ?){0,4}\\|? *[}{();/* a-z_]{0,16}",
        1..30)) {
        let text = lines.join("\n");
        all_importers(&text)?;
    }

    #[test]
    fn random_graph_lines(lines in prop::collection::vec(
        "([0-9]{1,21}\\.[0-9]{0,9} \\| )?( [0-9]{1,3}\\))? *([a-z]{1,7}-[0-9]{1,11} *\\|)? *([+!#*@$] )?([0-9]{1,20}(\\.[0-9]{1,9})? us)? *\\| {0,40}([a-z_]{1,12}(\\(\\) \\{|\\(\\);)|\\}( /\\* [a-z_]{1,12} \\*/)?|/\\* [a-z_]{1,12}: [a-z0-9 ]{0,20} \\*/)",
        1..60)) {
        let text = lines.join("\n");
        all_importers(&text)?;
    }
}

#[test]
fn deep_nesting_and_long_lines_stay_bounded() {
    // 100k nested entries on one CPU, never closed: the stack is capped, no quadratic work
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&format!(
            " 0)               | {}f{}() {{\n",
            " ".repeat(i % 300),
            i
        ));
    }
    text.push_str(&"x".repeat(1 << 20));
    let t = std::time::Instant::now();
    let ev = ftrace::import("deep", &text);
    assert!(t.elapsed().as_secs() < 20);
    assert!(
        ev.iter()
            .all(|e| matches!(e, TraceEvent::ImportWarning { line: 100_001, .. })),
        "{:?}",
        &ev[..ev.len().min(3)]
    );
}
