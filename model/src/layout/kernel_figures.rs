//! Real kernel figures: traces/real/layout/kernel-figures.json (Debian 6.1.192-2 =
//! linux-image-6.1.0-56-amd64, QEMU 7.2 TCG NVDIMM; see that directory's README.md).

use super::*;
use serde_json::Value;
use std::collections::HashMap;

fn num(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_size(s).ok(),
        _ => None,
    }
}

fn field(r: &Value, path: &[&str]) -> Option<u64> {
    let mut v = r;
    for k in path {
        v = v.get(*k)?;
    }
    num(v)
}

fn records() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../traces/real/layout/kernel-figures.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("kernel-figures.json")
}

/// Side-by-side namespaces ("pairNx") share one boot's vmemmap page tables until the
/// group is destroyed; every other config starts from a clean vmemmap.
fn group_of(r: &Value) -> String {
    let id = r["id"].as_str().unwrap();
    let boot = r["boot"].as_str().unwrap();
    match id.strip_prefix("pair") {
        Some(rest) => {
            let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            format!("{boot}/pair{n}")
        }
        None => format!("{boot}/{id}"),
    }
}

fn spec_of(r: &Value) -> NamespaceSpec {
    let id = r["id"].as_str().unwrap();
    let mode = match r["mode"].as_str().unwrap().trim_start_matches('s') {
        "fsdax" => NsMode::Fsdax,
        "devdax" => NsMode::Devdax,
        "raw" | "aw" => NsMode::Raw,
        m => panic!("{id}: mode {m}"),
    };
    let map = match r["map"].as_str() {
        Some("dev") => MapLocation::Dev,
        _ => MapLocation::Mem,
    };
    NamespaceSpec {
        name: id.to_string(),
        size_bytes: field(r, &["namespace_size_bytes"]).unwrap(),
        mode,
        map,
        align_bytes: field(r, &["pfn_align"])
            .or(field(r, &["align_bytes"]))
            .unwrap_or(2 * MIB),
        node: 0,
        start_phys: field(r, &["namespace_resource_start"]).unwrap(),
    }
}

/// Every value the kernel printed for every successful config.
#[test]
fn model_reproduces_every_kernel_figure() {
    let recs = records();
    assert!(recs.len() >= 90, "{} records", recs.len());
    let p = LayoutParams::default();
    let mut states: HashMap<String, VmemmapState> = HashMap::new();
    let (mut checked, mut values) = (0, 0);
    for r in &recs {
        let id = r["id"].as_str().unwrap();
        if r["result"].as_str() != Some("ok") {
            // ndctl refused before any kernel code ran ('--size=' must align ...)
            continue;
        }
        let spec = spec_of(r);
        let state = states.entry(group_of(r)).or_default();
        let res = namespace_layout_in(&spec, &p, state);
        let mut eq = |what: &str, kernel: Option<u64>, model: u64| {
            if let Some(k) = kernel {
                assert_eq!(model, k, "{id}: {what}: model {model} kernel {k}");
                values += 1;
            }
        };
        if spec.mode == NsMode::Raw {
            let l = res.unwrap();
            assert_eq!(l.data_pages, 0);
            assert!(r["kprobe_start_pfn"].is_null(), "{id}");
            checked += 1;
            continue;
        }
        if field(r, &["kprobe_memmap_init_zone_device_calls"]) == Some(0) {
            // s16/sdevdax-dev-1G-1040M: dax device of size 0, never mapped
            let e = res.unwrap_err();
            assert!(matches!(e, LayoutError::ZeroSizeDevice { .. }), "{id}: {e}");
            eq("pfn_size", field(r, &["pfn_size"]), 0);
            checked += 1;
            continue;
        }
        let l = res.unwrap_or_else(|e| panic!("{id}: {e}"));
        compare_pfn_device(r, &l, &p, &mut eq);
        compare_arch_range(r, &l, &p, &mut eq);
        // struct dev_pagemap at memmap_init_zone_device entry
        let a = l.altmap.unwrap_or(Altmap {
            base_pfn: 0,
            reserve: 0,
            free: 0,
            align: 0,
            alloc: 0,
        });
        compare_pgmap(r, &l, &a, &p, &mut eq);
        compare_compound(r, &l, id, &mut eq);
        compare_altmap_blocks(r, &l, &a, &p, &mut eq);
        compare_ram_vmemmap(r, &l, &p, id, &mut eq);
        checked += 1;
    }
    eprintln!("kernel figures: {checked} configs, {values} values");
    assert!(checked >= 80, "{checked} configs checked");
    assert!(values >= 1500, "{values} values checked");
}

/// The pfn device: its info block and resource.
fn compare_pfn_device(
    r: &Value,
    l: &RangeLayout,
    p: &LayoutParams,
    eq: &mut impl FnMut(&str, Option<u64>, u64),
) {
    let ps = p.page_size;
    // info block written by nd_pfn_init (ndctl read-infoblock)
    eq(
        "infoblock.dataoff",
        field(r, &["infoblock", "dataoff"]),
        l.dataoff_bytes,
    );
    eq(
        "infoblock.npfns",
        field(r, &["infoblock", "npfns"]),
        l.npfns,
    );
    eq(
        "infoblock.start_pad",
        field(r, &["infoblock", "start_pad"]),
        l.start_pad_pages * ps,
    );
    eq(
        "infoblock.end_trunc",
        field(r, &["infoblock", "end_trunc"]),
        l.end_trunc_pages * ps,
    );
    eq(
        "pfn_size",
        field(r, &["pfn_size"]),
        (l.range_pages * ps).saturating_sub(l.dataoff_bytes),
    );
    eq(
        "pfn_resource_start",
        field(r, &["pfn_resource_start"]),
        l.range_start_pfn * ps + l.dataoff_bytes,
    );
}

/// The range handed to `arch_add_memory`, and the pages `memmap_init_zone_device` initialised.
fn compare_arch_range(
    r: &Value,
    l: &RangeLayout,
    p: &LayoutParams,
    eq: &mut impl FnMut(&str, Option<u64>, u64),
) {
    let ps = p.page_size;
    // arch_add_memory / __add_pages / memmap_init_zone_device kprobes
    eq(
        "arch_add_memory.start",
        field(r, &["kprobe_arch_add_memory", "start"]),
        l.range_start_pfn * ps,
    );
    eq(
        "arch_add_memory.size",
        field(r, &["kprobe_arch_add_memory", "size"]),
        l.range_pages * ps,
    );
    eq(
        "__add_pages.pfn",
        field(r, &["kprobe___add_pages", "pfn"]),
        l.range_start_pfn,
    );
    eq(
        "__add_pages.nr_pages",
        field(r, &["kprobe___add_pages", "nr_pages"]),
        l.range_pages,
    );
    eq(
        "kprobe start_pfn",
        field(r, &["kprobe_start_pfn"]),
        l.range_start_pfn,
    );
    eq(
        "kprobe nr_pages",
        field(r, &["kprobe_nr_pages"]),
        l.range_pages,
    );
    eq(
        "dmesg initialised N",
        field(r, &["dmesg_initialised_pages"]),
        l.data_pages,
    );
}

/// The `struct dev_pagemap` (altmap, compound order, range); `a` is the model's altmap, zero without one.
fn compare_pgmap(
    r: &Value,
    l: &RangeLayout,
    a: &Altmap,
    p: &LayoutParams,
    eq: &mut impl FnMut(&str, Option<u64>, u64),
) {
    let ps = p.page_size;
    let pg = "kprobe_pgmap_at_memmap_init_zone_device";
    eq("altmap.base_pfn", field(r, &[pg, "base_pfn"]), a.base_pfn);
    eq("altmap.reserve", field(r, &[pg, "reserve"]), a.reserve);
    eq("altmap.free", field(r, &[pg, "free"]), a.free);
    eq("altmap.align", field(r, &[pg, "align"]), a.align);
    eq("altmap.alloc", field(r, &[pg, "alloc"]), a.alloc);
    eq(
        "vmemmap_shift",
        field(r, &[pg, "vmemmap_shift"]),
        l.compound_order as u64,
    );
    eq(
        "pgmap range_start",
        field(r, &[pg, "range_start"]),
        l.range_start_pfn * ps,
    );
    eq(
        "pgmap range_end",
        field(r, &[pg, "range_end"]),
        l.range_end_pfn() * ps - 1,
    );
}

/// The `memmap_init_compound` calls.
fn compare_compound(
    r: &Value,
    l: &RangeLayout,
    id: &str,
    eq: &mut impl FnMut(&str, Option<u64>, u64),
) {
    // memmap_init_compound calls (hist trigger keys=nr_pages)
    let cp = 1u64 << l.compound_order;
    let calls = if l.compound_order > 0 {
        l.data_pages.div_ceil(cp)
    } else {
        0
    };
    eq("compound calls", field(r, &["compound_calls"]), calls);
    if let Some(m) = r["compound_nr_pages"].as_object() {
        assert_eq!(m.len(), 1, "{id}");
        let (k, n) = m.iter().next().unwrap();
        eq(
            "compound nr_pages",
            k.parse().ok(),
            l.struct_pages_per_compound,
        );
        eq("compound nr_pages count", num(n), calls);
    }
    eq(
        "compound first head",
        field(r, &["compound_first_head_pfn"]),
        l.data_start_pfn,
    );
    if calls > 0 {
        eq(
            "compound last head",
            field(r, &["compound_last_head_pfn"]),
            l.data_start_pfn + (calls - 1) * cp,
        );
    }
}

/// The vmemmap blocks allocated from the altmap.
fn compare_altmap_blocks(
    r: &Value,
    l: &RangeLayout,
    a: &Altmap,
    p: &LayoutParams,
    eq: &mut impl FnMut(&str, Option<u64>, u64),
) {
    let ps = p.page_size;
    // altmap_alloc_block_buf pr_debug lines
    let alt: Vec<VmemmapBlock> = l
        .vmemmap_blocks
        .iter()
        .filter(|b| matches!(b.backing, VmemmapBacking::Altmap { .. }) && b.bytes > 0)
        .collect();
    eq(
        "altmap_alloc_block_buf calls",
        field(r, &["dmesg_altmap_alloc_block_buf_calls"]),
        alt.len() as u64,
    );
    let pfn_of = |b: &VmemmapBlock| match b.backing {
        VmemmapBacking::Altmap {
            device_offset_bytes,
        } => l.res_start_pfn + device_offset_bytes / ps,
        _ => unreachable!(),
    };
    if let (Some(first), Some(last)) = (alt.first(), alt.last()) {
        let nr = p.vmemmap_block_size / ps;
        eq(
            "first block pfn",
            field(r, &["dmesg_altmap_first", "pfn"]),
            pfn_of(first),
        );
        eq(
            "first block alloc",
            field(r, &["dmesg_altmap_first", "alloc"]),
            nr,
        );
        eq(
            "first block nr",
            field(r, &["dmesg_altmap_first", "nr"]),
            nr,
        );
        eq(
            "first block align",
            field(r, &["dmesg_altmap_first", "align"]),
            a.align,
        );
        eq(
            "last block pfn",
            field(r, &["dmesg_altmap_last", "pfn"]),
            pfn_of(last),
        );
        eq(
            "last block alloc",
            field(r, &["dmesg_altmap_last", "alloc"]),
            a.alloc,
        );
        eq(
            "last block align",
            field(r, &["dmesg_altmap_last", "align"]),
            a.align,
        );
    }
}

/// The vmemmap allocated from System RAM.
fn compare_ram_vmemmap(
    r: &Value,
    l: &RangeLayout,
    p: &LayoutParams,
    id: &str,
    eq: &mut impl FnMut(&str, Option<u64>, u64),
) {
    let ps = p.page_size;
    // RAM vmemmap allocations (mm_page_alloc hist, gfp & __GFP_RETRY_MAYFAIL)
    if let Some(m) = r["vmemmap_ram_allocs"].as_object() {
        let (mut o9, mut pte, mut pmd) = (0, 0, 0);
        for (k, n) in m {
            let n = num(n).unwrap();
            if k.starts_with("order9") {
                o9 += n;
            } else if k.contains("vmemmap_pte_populate") {
                pte += n;
            } else if k.contains("vmemmap_pmd_populate") {
                pmd += n;
            } else {
                panic!("{id}: unexpected RAM vmemmap allocation {k}");
            }
        }
        let ram_pmd = l.vmemmap_block_counts().1 as u64;
        let base = (l.memmap_bytes_ram - ram_pmd * p.vmemmap_block_size) / ps;
        eq("RAM order-9 vmemmap blocks", Some(o9), ram_pmd);
        eq("RAM order-0 vmemmap pages", Some(pte), base);
        eq(
            "RAM PTE-table pages",
            Some(pmd),
            l.vmemmap_pagetable_bytes / ps,
        );
    }
}
