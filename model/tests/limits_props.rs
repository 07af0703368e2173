//! Issue 14, bounded inputs: property tests over the sizes and counts of layout specs,
//! layout parameters, scenarios and traces. Whatever the values, nothing panics (debug
//! builds also panic on arithmetic overflow), memory stays bounded (a layout's vmemmap
//! blocks are a handful of runs whatever its size), and a refusal names the field.
//! Plus the message fixes of the issue.

use memmap_model::layout::{
    hotplug_layout, namespace_layout, HotplugSpec, LayoutParams, MapLocation, NamespaceSpec,
    NsMode, RangeLayout,
};
use memmap_model::limits;
use memmap_model::run::RunFile;
use memmap_model::scenario::Scenario;
use memmap_model::trace::Trace;
use proptest::prelude::*;

/// Extreme and ordinary u64s: 0, 1, powers of two and their neighbours, u64::MAX,
/// multiples of 2 MiB, anything.
fn wild_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(u64::MAX),
        Just(1u64 << 63),
        (0u32..64).prop_map(|k| 1u64 << k),
        (0u32..64).prop_map(|k| (1u64 << k).wrapping_sub(1)),
        (1u64..(1 << 31)).prop_map(|n| n << 21),
        (1u64..(1 << 26)).prop_map(|n| n << 27),
        any::<u64>(),
    ]
}

/// Sizes that lay out (2 MiB multiples up to 4 PiB) more often than not.
fn size_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (1u64..(1 << 31)).prop_map(|n| n << 21),
        1 => (0u32..53).prop_map(|k| 1u64 << k),
        1 => wild_u64(),
    ]
}

fn mode() -> impl Strategy<Value = NsMode> {
    prop_oneof![
        Just(NsMode::Raw),
        Just(NsMode::Sector),
        Just(NsMode::Fsdax),
        Just(NsMode::Devdax)
    ]
}

fn map() -> impl Strategy<Value = MapLocation> {
    prop_oneof![Just(MapLocation::Mem), Just(MapLocation::Dev)]
}

fn align() -> impl Strategy<Value = u64> {
    prop_oneof![Just(4096u64), Just(2 << 20), Just(1 << 30), wild_u64()]
}

/// Layout parameters: mostly the defaults, some fields pushed anywhere.
fn params() -> impl Strategy<Value = LayoutParams> {
    let pow2 = || (0u32..64).prop_map(|k| 1u64 << k);
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.2, pow2()),
        prop::option::weighted(0.2, pow2()),
        prop::option::weighted(0.2, pow2()),
        prop::option::weighted(0.2, pow2()),
        prop::option::weighted(0.2, prop_oneof![pow2(), wild_u64()]),
        prop::option::weighted(0.2, prop_oneof![pow2(), wild_u64()]),
        prop::option::weighted(0.1, wild_u64()),
    )
        .prop_map(
            |(sub, mom, page, section, subsection, pmd, sp, maxsp, pb)| {
                let mut p = if sub {
                    LayoutParams::linux_6_1()
                } else {
                    LayoutParams::pre_5_3()
                };
                p.memmap_on_memory = mom;
                if let Some(v) = page {
                    p.page_size = v;
                }
                if let Some(v) = section {
                    p.section_size = v;
                }
                if let Some(v) = subsection {
                    p.subsection_size = v;
                }
                if let Some(v) = pmd {
                    p.vmemmap_block_size = v;
                }
                if let Some(v) = sp {
                    p.struct_page_size = v;
                }
                if let Some(v) = maxsp {
                    p.max_struct_page_size = v;
                }
                if let Some(v) = pb {
                    p.pageblock_pages = v;
                }
                p
            },
        )
}

/// What must hold of every layout computed: blocks cover the arch range in pfn order, and
/// they are stored in a bounded number of runs, whatever the size.
fn check_layout(l: &RangeLayout) {
    let mut next = l.range_start_pfn;
    let mut n = 0u64;
    // Walk the runs, not the (possibly 2^25) blocks.
    for r in l.vmemmap_blocks.runs() {
        assert_eq!(r.first.first_pfn, next, "{}: blocks in order", l.name);
        next = r.first.first_pfn + r.count * r.first.nr_pfns;
        n += r.count;
    }
    assert_eq!(n as usize, l.vmemmap_blocks.len());
    if !l.vmemmap_blocks.is_empty() {
        assert_eq!(
            next,
            l.range_end_pfn(),
            "{}: blocks cover the range",
            l.name
        );
    }
    // Runs: a few per range, whatever its size.
    let runs = l.vmemmap_blocks.runs().len() as u64;
    assert!(
        runs <= 64,
        "{}: {runs} runs for {} pages",
        l.name,
        l.range_pages
    );
    assert!(l.data_start_pfn >= l.range_start_pfn || l.data_pages == 0);
    assert!(l.extents.len() <= 64, "{} extents", l.extents.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any namespace (size, start, node, align, mode, map) under any parameters: a
    /// layout or an error, never a panic or an unbounded allocation.
    #[test]
    fn namespace_layout_of_any_size_is_bounded(
        size in size_u64(),
        start in prop_oneof![Just(0x1_0000_0000u64), size_u64()],
        node in any::<u32>(),
        align in align(),
        mode in mode(),
        map in map(),
        p in params(),
    ) {
        let spec = NamespaceSpec {
            name: "ns0".into(),
            size_bytes: size,
            mode,
            map,
            align_bytes: align,
            node,
            start_phys: start,
        };
        match namespace_layout(&spec, &p) {
            Ok(l) => {
                check_layout(&l);
                prop_assert!(start.checked_add(size).is_some_and(|e| e <= limits::MAX_PHYS_END));
                // Serialized as the block list it stands for, read back equal.
                if l.vmemmap_blocks.len() <= 4096 {
                    let back: RangeLayout =
                        serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
                    prop_assert_eq!(back, l);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn hotplug_layout_of_any_size_is_bounded(
        size in size_u64(),
        start in size_u64(),
        p in params(),
    ) {
        let spec = HotplugSpec { name: "dimm0".into(), start_phys: start, size_bytes: size, node: 0 };
        if let Ok(l) = hotplug_layout(&spec, &p) {
            check_layout(&l);
        }
    }

    /// Spec strings with any numbers: parsed, or refused naming the field.
    #[test]
    fn spec_strings_name_the_bad_field(size in wild_u64(), node in any::<u64>(), start in wild_u64()) {
        let s = format!("size={size},node={node},start={start:#x}");
        match s.parse::<NamespaceSpec>() {
            Ok(spec) => {
                prop_assert!(spec.node < limits::MAX_NUMNODES);
                let _ = namespace_layout(&spec, &LayoutParams::default());
            }
            Err(e) => prop_assert!(e.to_string().contains("node"), "{}", e),
        }
    }

    /// A scenario with one field set to an extreme value: it lays out, or the error
    /// names that field.
    #[test]
    fn scenario_with_an_extreme_field_names_it(
        which in 0usize..12,
        v in wild_u64(),
        f in prop_oneof![Just(f64::INFINITY), Just(f64::NAN), Just(-1.0), Just(1e300), any::<f64>()],
    ) {
        let (key, text) = scenario_with(which, v, f);
        match Scenario::parse("x.toml", &text) {
            Ok(s) => {
                if let Ok(ls) = s.layouts("x.toml", 1.0) {
                    for l in &ls {
                        check_layout(l);
                    }
                }
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(
                    e.contains(key) || e.contains("TOML parse error") || e.contains("namespace[0]"),
                    "{key}: {e}"
                );
            }
        }
    }

    /// A trace whose namespace and memory-block events carry any numbers: read, made a
    /// scenario and laid out without a panic; an error names the file.
    #[test]
    fn trace_with_extreme_numbers_is_bounded(
        size in size_u64(),
        start in size_u64(),
        node in any::<u32>(),
        align in align(),
        numa in any::<u32>(),
        cpus in any::<u32>(),
    ) {
        let text = format!(
            "{{\"format\":\"memmap-lab-trace\",\"version\":1,\"created_unix_s\":0,\"source\":\"live\",\"kernel_release\":\"6.1\",\"cmdline\":\"\",\"numa_nodes\":{numa},\"cpus\":{cpus},\"notes\":[]}}\n\
             {{\"kind\":\"namespace\",\"name\":\"ns\",\"mode\":\"fsdax\",\"map\":\"dev\",\"size_bytes\":{size},\"align_bytes\":{align},\"start_phys\":{start},\"node\":{node}}}\n"
        );
        let t = Trace::from_reader("t.jsonl", text.as_bytes()).unwrap();
        let s = t.to_scenario("t.jsonl").unwrap();
        match s.check("t.jsonl") {
            Ok(()) => {
                for l in s.layouts("t.jsonl", 1.0).unwrap() {
                    check_layout(&l);
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("t.jsonl"), "{}", e),
        }
    }
}

/// A valid scenario with field `which` set to `v` (integers) or `f` (floats); returns
/// the field's key as errors name it.
fn scenario_with(which: usize, v: u64, f: f64) -> (&'static str, String) {
    let mut nodes = "2".to_string();
    let mut cpus = "4".to_string();
    let mut size = "\"16G\"".to_string();
    let mut start = String::new();
    let mut node = "1".to_string();
    let mut align = "\"2M\"".to_string();
    let mut threads = "2".to_string();
    let mut touches = "100".to_string();
    let mut think = "0.0".to_string();
    let mut zipf = "1.1".to_string();
    let mut hp_node = "0".to_string();
    let mut hp_size = "\"128M\"".to_string();
    // TOML integers are i64; a u64 above that is a parse error naming nothing, so keep
    // them in range (the extremes of i64 still reach the checks).
    let int = (v & (i64::MAX as u64)).to_string();
    let float = if f.is_nan() {
        "nan".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{f:e}")
    };
    let key = match which {
        0 => {
            nodes = int;
            "nodes"
        }
        1 => {
            cpus = int;
            "cpus_per_node"
        }
        2 => {
            size = format!("\"{v}\"");
            "size"
        }
        3 => {
            start = format!("start = \"{v:#x}\"");
            "start"
        }
        4 => {
            node = int;
            "node"
        }
        5 => {
            align = format!("\"{v}\"");
            "align"
        }
        6 => {
            threads = int;
            "threads_per_namespace"
        }
        7 => {
            touches = int;
            "touches_per_thread"
        }
        8 => {
            think = float;
            "think_us"
        }
        9 => {
            zipf = float;
            "zipf_exponent"
        }
        10 => {
            hp_node = int;
            "node"
        }
        _ => {
            hp_size = format!("\"{v}\"");
            "size"
        }
    };
    let text = format!(
        r#"
name = "t"
source = "test"
[host]
nodes = {nodes}
cpus_per_node = {cpus}
[[namespace]]
name = "pmem0"
size = {size}
node = {node}
align = {align}
{start}
[[hotplug]]
name = "dimm0"
start = "0x800000000000"
size = {hp_size}
node = {hp_node}
[faults]
threads_per_namespace = {threads}
touches_per_thread = {touches}
think_us = {think}
zipf_exponent = {zipf}
"#
    );
    (key, text)
}

// ---- the limits of the issue's examples, and the message fixes ----

const HEADER: &str = r#"{"format":"memmap-lab-trace","version":1,"created_unix_s":0,"source":"live","kernel_release":"6.1","cmdline":"","numa_nodes":1,"cpus":4,"notes":[]}"#;

#[test]
fn the_issue_examples_are_refused_naming_field_value_and_limit() {
    // a namespace of 2^63 bytes, a node of 2^31, 100 000 fault threads, infinite think time
    let base = scenario_with(0, 2, 0.0).1;
    for (from, to, field, value, limit) in [
        (
            "size = \"16G\"",
            "size = \"0x8000000000000000\"",
            "start + size",
            "0x8000040100000000",
            "0x10000000000000",
        ),
        (
            "node = 1\nalign",
            "node = 2147483648\nalign",
            "namespace[0].node",
            "2147483648",
            "1023",
        ),
        (
            "threads_per_namespace = 2",
            "threads_per_namespace = 100000",
            "faults.threads_per_namespace",
            "100000",
            "4096",
        ),
        (
            "think_us = 0.0",
            "think_us = inf",
            "faults.think_us",
            "inf",
            "1000000",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let text = base.replace(from, to);
        let e = Scenario::parse("x.toml", &text)
            .and_then(|s| s.layouts("x.toml", 1.0).map(|_| ()))
            .unwrap_err()
            .to_string();
        for want in [field, value, limit] {
            assert!(e.contains(want), "{want} not in: {e}");
        }
    }
}

#[test]
fn a_1024_tib_namespace_lays_out_in_two_runs() {
    let spec: NamespaceSpec = "size=1024T".parse().unwrap();
    let l = namespace_layout(&spec, &LayoutParams::default()).unwrap();
    assert_eq!(l.sections, 1 << 23);
    assert_eq!(l.vmemmap_blocks.len(), 1 << 23);
    assert!(
        l.vmemmap_blocks.runs().len() <= 2,
        "{:?}",
        l.vmemmap_blocks.runs()
    );
    // 2^23 sections, one 2 MiB altmap block each: 16 TiB of memmap on the device
    assert_eq!(l.memmap_bytes_device, 1u64 << 44);
    assert_eq!(l.vmemmap_block_counts(), (1 << 23, 0, 0, 0));
    // the block of any pfn, found in the runs
    let mid = l.range_start_pfn + (1 << 37) + 5;
    let b = l.vmemmap_block_of(mid).unwrap();
    assert!(b.first_pfn <= mid && mid < b.first_pfn + b.nr_pfns);
    check_layout(&l);
}

#[test]
fn a_bad_field_value_is_not_an_unknown_kind() {
    let text = format!(
        "{HEADER}\n{{\"kind\":\"namespace\",\"name\":\"ns\",\"mode\":\"bogus\",\"map\":\"dev\",\"size_bytes\":1,\"align_bytes\":1,\"start_phys\":1,\"node\":0}}\n{{\"kind\":\"mark\",\"t_ns\":1,\"text\":\"x\"}}\n"
    );
    let e = Trace::from_reader("t.jsonl", text.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.jsonl:2:"), "{e}");
    assert!(e.contains("field `mode`"), "{e}");
    assert!(e.contains("expected one of"), "{e}");
    assert!(!e.contains("not known"), "{e}");
    // a wrong type names the field and the type
    let text = format!(
        "{HEADER}\n{{\"kind\":\"numa-node\",\"node\":\"zero\",\"cpulist\":\"0\",\"mem_total_bytes\":1}}\n"
    );
    let e = Trace::from_reader("t.jsonl", text.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("field `node`") && e.contains("expected u32"),
        "{e}"
    );
    // an unknown kind is still skipped with a warning
    let text = format!("{HEADER}\n{{\"kind\":\"from-the-future\",\"mode\":\"bogus\"}}\n");
    let t = Trace::from_reader("t.jsonl", text.as_bytes()).unwrap();
    assert!(
        t.warnings[0].contains("not known to this build"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn the_parallel_reader_names_the_field_too() {
    let dir = std::env::temp_dir().join(format!("memmap-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.jsonl");
    std::fs::write(
        &p,
        format!("{HEADER}\n{{\"kind\":\"namespace\",\"name\":\"ns\",\"mode\":\"fsdax\",\"map\":\"nowhere\",\"size_bytes\":1,\"align_bytes\":1,\"start_phys\":1,\"node\":0}}\n{{\"kind\":\"function-span\",\"t_ns\":\"soon\"}}\n"),
    )
    .unwrap();
    let e = memmap_model::trace_read::read_trace(&p)
        .unwrap_err()
        .to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        e.contains("bad.jsonl:2:") && e.contains("field `map`"),
        "{e}"
    );
    assert!(!e.contains("not known"), "{e}");
}

#[test]
fn kinds_list_matches_the_event_enum() {
    // serde lists every variant when the kind is unknown
    let e = serde_json::from_str::<memmap_model::trace::TraceEvent>(r#"{"kind":"zz"}"#)
        .unwrap_err()
        .to_string();
    let listed: Vec<&str> = e.split('`').skip(3).step_by(2).collect();
    assert_eq!(listed, memmap_model::trace_read::KINDS, "{e}");
}

#[test]
fn a_trace_given_as_a_run_file_says_so() {
    let text = format!("{HEADER}\n{{\"kind\":\"mark\",\"t_ns\":1,\"text\":\"x\"}}\n");
    let e = RunFile::from_json_str("t.jsonl", &text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a memmap-lab trace"), "{e}");
    assert!(!e.contains("trailing characters"), "{e}");
}

#[test]
fn scenario_errors_print_once() {
    let text = scenario_with(2, 0, 0.0)
        .1
        .replace("size = \"0\"", "size = \"16Q\"");
    let e = Scenario::parse("x.toml", &text).unwrap_err();
    let chain = format!("{:#}", anyhow_like(&e));
    assert_eq!(chain.matches("unknown unit").count(), 1, "{chain}");
}

/// What anyhow's "{:#}" prints: the error, then each source.
fn anyhow_like(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}
