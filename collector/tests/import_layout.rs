//! ndctl / daxctl / iomem importers on real captures (tests/corpus/ndctl-corpus-SOURCES.md).

use memmap_collect::import::{iomem, ndctl};
use memmap_model::layout::{namespace_layout, LayoutParams, MapLocation, NamespaceSpec, NsMode};
use memmap_model::trace::TraceEvent;
use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(name),
    )
    .unwrap()
}

fn specs(ev: &[TraceEvent]) -> Vec<NamespaceSpec> {
    ev.iter().filter_map(TraceEvent::namespace_spec).collect()
}

fn warnings(ev: &[TraceEvent]) -> Vec<(usize, String)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::ImportWarning { line, reason, .. } => Some((*line, reason.clone())),
            _ => None,
        })
        .collect()
}

fn devices(ev: &[TraceEvent]) -> Vec<(String, String)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::NdDevice { dev, devtype, .. } => Some((dev.clone(), devtype.clone())),
            _ => None,
        })
        .collect()
}

fn attr(ev: &[TraceEvent], dev: &str, key: &str) -> Option<String> {
    ev.iter().find_map(|e| match e {
        TraceEvent::NdDevice { dev: d, attrs, .. } if d == dev => attrs.get(key).cloned(),
        _ => None,
    })
}

/// The pfn/dax size the layout leaves (what ndctl prints as "size").
fn usable(spec: &NamespaceSpec) -> u64 {
    let l = namespace_layout(spec, &LayoutParams::linux_6_1()).unwrap();
    spec.size_bytes - l.dataoff_bytes - l.end_trunc_pages * 4096
}

#[test]
fn ndctl_create_fsdax_dev_2m_matches_the_kernel_namespace_size() {
    // raw/b16/fsdax-dev-2M-whole.txt: namespace0.0/size 17163091968, pfn0.1/size
    // 16894656512, info block dataoff 268435456.
    let ev = ndctl::import("c.json", &read("ndctl-create-fsdax-dev-2M-qemu16G.json"));
    let s = specs(&ev);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].name, "namespace0.0");
    assert_eq!((s[0].mode, s[0].map), (NsMode::Fsdax, MapLocation::Dev));
    assert_eq!(
        (
            s[0].size_bytes,
            s[0].align_bytes,
            s[0].start_phys,
            s[0].node
        ),
        (17163091968, 2 << 20, 0x1_0000_0000, 0)
    );
    let l = namespace_layout(&s[0], &LayoutParams::linux_6_1()).unwrap();
    assert_eq!(l.dataoff_bytes, 268435456);
    assert_eq!(usable(&s[0]), 16894656512);
    // Only the assumed-start note.
    let w = warnings(&ev);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].1.contains("0x100000000"));
    assert_eq!(
        attr(&ev, "namespace0.0", "blockdev").as_deref(),
        Some("pmem0")
    );
}

#[test]
fn ndctl_create_devdax_mem_2m_and_its_dax_region() {
    let ev = ndctl::import("c.json", &read("ndctl-create-devdax-mem-2M-qemu16G.json"));
    let s = specs(&ev);
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].mode, s[0].map), (NsMode::Devdax, MapLocation::Mem));
    assert_eq!(s[0].size_bytes, 17163091968);
    assert_eq!(usable(&s[0]), 17160994816);
    let d = devices(&ev);
    assert!(d.contains(&("dax0.0".into(), "dev_dax".into())), "{d:?}");
    assert!(
        d.contains(&("dax_region0".into(), "dax_region".into())),
        "{d:?}"
    );
}

#[test]
fn ndctl_list_nru_human_units_whole_region() {
    // 4 GiB NVDIMM, label 128K: region 4 GiB - 128 KiB, the namespace 4 GiB - 16 MiB;
    // ns-devdax.json printed the exact usable size 4211081216.
    let ev = ndctl::import("l.json", &read("ndctl-list-NRu-qemu4G-devdax.json"));
    let s = specs(&ev);
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].mode, s[0].map), (NsMode::Devdax, MapLocation::Dev));
    assert_eq!(s[0].size_bytes, (4 << 30) - (16 << 20));
    assert_eq!(usable(&s[0]), 4211081216);
    assert_eq!(
        attr(&ev, "region0", "size").as_deref(),
        Some("4.00 GiB (4.29 GB)")
    );
    assert_eq!(
        attr(&ev, "namespace0.0", "chardev").as_deref(),
        Some("dax0.0")
    );
    assert_eq!(warnings(&ev).len(), 1, "{:?}", warnings(&ev));
    // The same namespace from create-namespace (exact size, no region): same answer.
    let ev2 = ndctl::import("c.json", &read("ndctl-create-devdax-qemu4G.json"));
    assert_eq!(specs(&ev2)[0].size_bytes, s[0].size_bytes);
}

#[test]
fn mixed_state_dump_finds_both_documents_and_warns_per_junk_line() {
    let text = read("ndctl-state-devdax-mixed.txt");
    let ev = ndctl::import("state.txt", &text);
    let s = specs(&ev);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].size_bytes, (4 << 30) - (16 << 20));
    let d = devices(&ev);
    assert!(d.contains(&("region0".into(), "nd_region".into())));
    assert!(d.contains(&("dax_region0".into(), "dax_region".into())));
    assert!(d.contains(&("dax0.0".into(), "dev_dax".into())));
    let lines = text.lines().count();
    let w = warnings(&ev);
    // Every non-JSON, non-blank line is named, and nothing else.
    let junk: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim();
            !t.is_empty()
                && (t.starts_with("###")
                    || t.starts_with("ls:")
                    || t.starts_with("crw")
                    || t.starts_with("df")
                    || t.starts_with("Filesystem"))
        })
        .map(|(i, _)| i + 1)
        .collect();
    for j in &junk {
        assert!(w.iter().any(|(l, _)| l == j), "line {j} not warned: {w:?}");
    }
    assert!(w.iter().all(|(l, _)| *l >= 1 && *l <= lines));
}

#[test]
fn optane_truncated_paste_keeps_what_was_read() {
    // pmem/ndctl#211: 2 x 1008 GiB regions, fsdax map=dev 2M; the paste breaks in the
    // second namespace.
    let text = read("ndctl-list-Rv-optane-truncated-issue211.txt");
    let ev = ndctl::import("issue211.txt", &text);
    let s = specs(&ev);
    assert_eq!(s.len(), 1, "{ev:?}");
    assert_eq!(s[0].name, "namespace1.0");
    assert_eq!(s[0].size_bytes, 1082331758592); // the whole region
    assert_eq!(usable(&s[0]), 1065418227712);
    assert_eq!(s[0].node, 0);
    let d = devices(&ev);
    assert_eq!(
        d,
        vec![
            ("region1".to_string(), "nd_region".to_string()),
            ("namespace1.0".into(), "nd_namespace_pmem".into())
        ]
    );
    let w = warnings(&ev);
    assert!(
        w.iter()
            .any(|(l, r)| *l == 1 && r.contains("ndctl list -Rv")),
        "{w:?}"
    );
    let n = text.lines().count();
    let brk = w
        .iter()
        .find(|(_, r)| r.contains("truncated"))
        .expect("truncation warning");
    assert!(brk.0 >= n - 1 && brk.0 <= n + 1, "{brk:?} of {n} lines");
    assert!(brk.1.contains("started at line 2"), "{brk:?}");
}

#[test]
fn old_ndctl_memory_mode_without_map_is_a_warning_not_a_guess() {
    let ev = ndctl::import("issue6.txt", &read("ndctl-list-old-memory-mode-issue6.txt"));
    assert!(specs(&ev).is_empty());
    assert_eq!(devices(&ev).len(), 4);
    let w = warnings(&ev);
    assert_eq!(w.len(), 3, "{w:?}"); // the prompt, and map missing for 2 "memory" namespaces
    assert!(w[0].1.contains("$ ndctl list"));
    assert!(w.iter().filter(|(_, r)| r.contains("map is None")).count() == 2);
}

#[test]
fn e820_bus_with_shell_junk_after() {
    let text = read("ndctl-list-BiRND-e820-issue19.txt");
    let ev = ndctl::import("issue19.txt", &text);
    let d = devices(&ev);
    assert_eq!(d[0], ("ndbus0".to_string(), "nd_bus".to_string()));
    assert_eq!(d.len(), 7);
    assert_eq!(attr(&ev, "ndbus0", "provider").as_deref(), Some("e820"));
    assert_eq!(
        attr(&ev, "namespace1.0", "badblock_count").as_deref(),
        Some("21968")
    );
    let w: Vec<usize> = warnings(&ev).iter().map(|w| w.0).collect();
    let n = text.lines().count();
    // Prompt on line 1; the 4 shell lines after the JSON; 3 namespaces without "map".
    for l in [1, n - 3, n - 2, n - 1, n] {
        assert!(w.contains(&l), "line {l} not warned: {w:?}");
    }
    assert_eq!(w.len(), 8, "{:?}", warnings(&ev));
}

#[test]
fn pasted_variants_crlf_concatenated_prompts_hex_strings() {
    let a = read("ndctl-create-fsdax-dev-2M-qemu16G.json");
    let b = read("ndctl-create-devdax-qemu4G.json");
    let hex = r#"{"dev":"namespace1.0","mode":"fsdax","map":"mem","size":"0x3fee00000","align":"0x200000","resource":"0x500000000","numa_node":1}"#;
    let text = format!(
        "user@host:~$ sudo ndctl create-namespace -m fsdax\r\n{}\r\n{}{hex} user@host:~$\r\n",
        a.trim(),
        b.replace('\n', "\r\n")
    );
    let ev = ndctl::import("paste.txt", &text);
    let s = specs(&ev);
    assert_eq!(s.len(), 3, "{:?}", warnings(&ev));
    assert_eq!(s[0].size_bytes, 17163091968);
    assert_eq!(s[1].size_bytes, (4 << 30) - (16 << 20));
    // map=mem 2M: namespace = usable + 2 MiB (info block rounded up to the align).
    assert_eq!(s[2].size_bytes, 0x3fee00000 + (2 << 20));
    assert_eq!((s[2].start_phys, s[2].node), (0x5_0000_0000, 1));
    assert_eq!(usable(&s[2]), 0x3fee00000);
    let w = warnings(&ev);
    assert!(
        w.iter().any(|(l, r)| *l == 1 && r.contains("sudo ndctl")),
        "{w:?}"
    );
    let last = text.lines().count();
    assert!(
        w.iter()
            .any(|(l, r)| *l == last && r.contains("after the JSON")),
        "{w:?}"
    );
}

#[test]
fn iomem_real_captures() {
    let root = read("iomem-root-6.18-ec2.txt");
    let ev = iomem::import("iomem", &root);
    assert!(warnings(&ev).is_empty(), "{:?}", warnings(&ev));
    assert_eq!(ev.len(), root.lines().count());
    assert!(ev.iter().any(|e| matches!(e,
        TraceEvent::Iomem { name, depth: 1, .. } if name == "Kernel code")));
    assert!(
        matches!(&ev[0], TraceEvent::Iomem { start: 0, end: 0xfff, depth: 0, name } if name == "Reserved")
    );

    let zero = read("iomem-nonroot-zeros-6.18.txt");
    let ev = iomem::import("iomem", &zero);
    let w = warnings(&ev);
    assert_eq!(w.len(), 1);
    assert!(w[0].1.contains("read it as root"), "{w:?}");
    assert_eq!(ev.len(), zero.lines().count() + 1);

    let ev = iomem::import("iomem", &read("iomem-qemu-nvdimm-devdax.txt"));
    assert_eq!(
        ev,
        vec![
            TraceEvent::Iomem {
                start: 0x1_0000_0000,
                end: 0x4_fffd_ffff,
                name: "Persistent Memory".into(),
                depth: 0
            },
            TraceEvent::Iomem {
                start: 0x1_0000_0000,
                end: 0x1_3fff_ffff,
                name: "namespace0.0".into(),
                depth: 1
            },
            TraceEvent::Iomem {
                start: 0x1_4000_0000,
                end: 0x1_7fff_ffff,
                name: "dax0.0".into(),
                depth: 1
            },
        ]
    );
}

#[test]
fn iomem_pasted_quoted_block_with_prompt_and_junk() {
    let body = read("iomem-qemu-nvdimm-devdax.txt");
    let quoted: String = body.lines().map(|l| format!("    {l}\r\n")).collect();
    let text = format!("$ sudo cat /proc/iomem\r\n{quoted}$ exit\r\n");
    let ev = iomem::import("q.txt", &text);
    let w: Vec<usize> = warnings(&ev).iter().map(|w| w.0).collect();
    assert_eq!(w, vec![1, 5]);
    assert!(ev
        .iter()
        .any(|e| matches!(e, TraceEvent::Iomem { depth: 1, name, .. } if name == "dax0.0")));
    assert!(ev.iter().any(
        |e| matches!(e, TraceEvent::Iomem { depth: 0, name, .. } if name == "Persistent Memory")
    ));
}
