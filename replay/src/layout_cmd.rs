//! `memmap-replay layout`: print the kernel's memmap layout of namespaces and hot-added
//! memory (see `memmap_model::layout` and docs/layout.md).

use anyhow::Context;
use memmap_model::layout::{
    self, format_size, HotplugSpec, LayoutParams, NamespaceSpec, RangeLayout,
};
use serde::Serialize;
use std::fmt::Write as _;

fn size_arg(s: &str) -> Result<u64, String> {
    layout::parse_size(s).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct LayoutArgs {
    /// Namespace, e.g. "size=16G,mode=fsdax,map=dev,align=2M[,start=0x100000000][,node=0][,name=ns0]"
    /// (repeatable; defaults mode=fsdax map=dev align=2M start=0x100000000).
    #[arg(long = "namespace", value_name = "SPEC")]
    pub namespaces: Vec<String>,
    /// Hot-added System RAM, e.g. "start=0x500000000,size=1G[,node=0][,name=dimm0]" (repeatable).
    #[arg(long = "hotplug", value_name = "start=..,size=..,node=..")]
    pub hotplug: Vec<String>,
    /// Print a JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Section-granular rules of Linux 5.2 (before sub-section hotplug).
    #[arg(long = "pre-5.3", alias = "pre-5-3")]
    pub pre_5_3: bool,
    /// Pre-5.3: do not pad/truncate unaligned namespaces to sections (no collision seen).
    #[arg(long)]
    pub no_trim: bool,
    /// memory_hotplug.memmap_on_memory=1 for hot-added RAM.
    #[arg(long)]
    pub memmap_on_memory: bool,
    /// Section size (default 128M).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub section_size: Option<u64>,
    /// Sub-section size (default 2M).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub subsection_size: Option<u64>,
    /// Page size (default 4K).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub page_size: Option<u64>,
    /// Memory block size (default 128M).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub memory_block_size: Option<u64>,
    /// sizeof(struct page) (default 64).
    #[arg(long, value_name = "BYTES")]
    pub struct_page_size: Option<u64>,
    /// MAX_STRUCT_PAGE_SIZE used to size the altmap (64; 128 for v6.1..v6.1.11).
    #[arg(long, value_name = "BYTES")]
    pub max_struct_page_size: Option<u64>,
}

impl LayoutArgs {
    /// Kernel parameters selected by the flags.
    pub fn params(&self) -> LayoutParams {
        let mut p = if self.pre_5_3 {
            LayoutParams::pre_5_3()
        } else {
            LayoutParams::linux_6_1()
        };
        p.memmap_on_memory = self.memmap_on_memory && !self.pre_5_3;
        p.pre53_trim_unaligned = !self.no_trim;
        if let Some(v) = self.section_size {
            p.section_size = v;
        }
        if let Some(v) = self.subsection_size {
            p.subsection_size = v;
        }
        if let Some(v) = self.page_size {
            p.page_size = v;
        }
        if let Some(v) = self.memory_block_size {
            p.memory_block_size = v;
        }
        if let Some(v) = self.struct_page_size {
            p.struct_page_size = v;
        }
        if let Some(v) = self.max_struct_page_size {
            p.max_struct_page_size = v;
        }
        p
    }
}

/// One element of the `--json` array.
#[derive(Serialize)]
pub struct LayoutJson<'a> {
    pub name: &'a str,
    pub data_pages: u64,
    pub memmap_bytes: u64,
    pub altmap_reserve_pages: u64,
    pub altmap_free_pages: u64,
    pub altmap_used_pages: u64,
    /// Struct pages of the altmap's own pfns (move_pfn_range_to_zone, under the lock).
    pub altmap_struct_pages: u64,
    /// Every struct page initialised: data plus the altmap's own.
    pub struct_pages_initialised: u64,
    pub sections: u64,
    pub subsections: u64,
    pub layout: &'a RangeLayout,
}

impl<'a> From<&'a RangeLayout> for LayoutJson<'a> {
    fn from(l: &'a RangeLayout) -> Self {
        LayoutJson {
            name: &l.name,
            data_pages: l.data_pages,
            memmap_bytes: l.memmap_bytes,
            altmap_reserve_pages: l.altmap.map(|a| a.reserve).unwrap_or(0),
            altmap_free_pages: l.altmap.map(|a| a.free).unwrap_or(0),
            altmap_used_pages: l.altmap_used_pages(),
            altmap_struct_pages: l.altmap_struct_pages,
            struct_pages_initialised: l.struct_pages_initialised,
            sections: l.sections,
            subsections: l.subsections,
            layout: l,
        }
    }
}

/// Computes every requested layout and checks that they can coexist.
pub fn compute(args: &LayoutArgs) -> anyhow::Result<Vec<RangeLayout>> {
    let p = args.params();
    p.validate()?;
    if args.namespaces.is_empty() && args.hotplug.is_empty() {
        anyhow::bail!("nothing to lay out: give --namespace SPEC and/or --hotplug SPEC");
    }
    memmap_model::limits::at_most(
        "--namespace + --hotplug ranges",
        args.namespaces.len() + args.hotplug.len(),
        memmap_model::limits::MAX_RANGES,
        memmap_model::limits::WHY_RANGES,
    )
    .map_err(anyhow::Error::msg)?;
    // One vmemmap for all ranges, added in command-line order (namespaces first), so that
    // neighbours inside one section share page tables as in the kernel.
    let mut state = layout::VmemmapState::new();
    let mut out = Vec::new();
    for (i, s) in args.namespaces.iter().enumerate() {
        let mut spec: NamespaceSpec = s.parse().with_context(|| format!("--namespace {s:?}"))?;
        if !s.contains("name=") && i > 0 {
            spec.name = format!("ns{i}");
        }
        out.push(
            layout::namespace_layout_in(&spec, &p, &mut state)
                .with_context(|| format!("--namespace {s:?}"))?,
        );
    }
    for (i, s) in args.hotplug.iter().enumerate() {
        let mut spec: HotplugSpec = s.parse().with_context(|| format!("--hotplug {s:?}"))?;
        if !s.contains("name=") && i > 0 {
            spec.name = format!("dimm{i}");
        }
        out.push(
            layout::hotplug_layout_in(&spec, &p, &mut state)
                .with_context(|| format!("--hotplug {s:?}"))?,
        );
    }
    layout::check_ranges_disjoint(&out, &p)?;
    Ok(out)
}

pub fn run(args: &LayoutArgs) -> anyhow::Result<()> {
    let layouts = compute(args)?;
    if args.json {
        // Streamed: the blocks of a large layout are written as they are expanded from
        // their runs, never held as one string.
        let v: Vec<LayoutJson> = layouts.iter().map(LayoutJson::from).collect();
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, &v)?;
        use std::io::Write;
        writeln!(out)?;
        out.flush()?;
    } else {
        print!("{}", render_table(&layouts));
    }
    Ok(())
}

fn pfn_span(start: u64, pages: u64, page_size: u64) -> String {
    format!(
        "pfn {:#x}..{:#x} ({} pages, {}, phys {:#x}..{:#x})",
        start,
        start + pages,
        pages,
        format_size(pages * page_size),
        start * page_size,
        (start + pages) * page_size
    )
}

/// The human table: one block per range.
pub fn render_table(layouts: &[RangeLayout]) -> String {
    let mut s = String::new();
    for l in layouts {
        let ps = l.params.page_size;
        let what = match (&l.namespace, &l.hotplug) {
            (Some(n), _) => format!(
                "namespace {} mode={} map={} align={} node={}",
                l.name,
                n.mode,
                n.map,
                format_size(n.align_bytes),
                l.node
            ),
            (_, Some(_)) => format!("hot-added System RAM {} node={}", l.name, l.node),
            _ => l.name.clone(),
        };
        let _ = writeln!(s, "{what}   [{}]", l.kernel_rules);
        let _ = writeln!(
            s,
            "  resource        {}",
            pfn_span(l.res_start_pfn, l.res_pages, ps)
        );
        if l.start_pad_pages + l.end_trunc_pages > 0 {
            let _ = writeln!(
                s,
                "  start_pad       {}   end_trunc {}",
                format_size(l.start_pad_pages * ps),
                format_size(l.end_trunc_pages * ps)
            );
        }
        let _ = writeln!(
            s,
            "  range           {}   (arch_add_memory, {})",
            pfn_span(l.range_start_pfn, l.range_pages, ps),
            if l.hotplug.is_some() {
                "online_pages"
            } else {
                "memmap_init_zone_device"
            }
        );
        if l.namespace.is_some() && l.dataoff_bytes > 0 {
            let _ = writeln!(
                s,
                "  info block      dataoff {} ({:#x}), npfns {}, pfn align {}",
                format_size(l.dataoff_bytes),
                l.dataoff_bytes,
                l.npfns,
                format_size(l.pfn_align_bytes)
            );
        }
        match l.altmap {
            Some(a) => {
                let _ = writeln!(
                    s,
                    "  altmap          base_pfn {:#x} reserve {} free {} used {} (alloc {} + align {}), unused {}",
                    a.base_pfn,
                    a.reserve,
                    a.free,
                    a.alloc + a.align,
                    a.alloc,
                    a.align,
                    a.free.saturating_sub(a.alloc + a.align)
                );
            }
            None => {
                let _ = writeln!(s, "  altmap          none (memmap in System RAM)");
            }
        }
        let _ = writeln!(
            s,
            "  data            {} (initialised {} pages)",
            pfn_span(l.data_start_pfn, l.data_pages, ps),
            l.data_pages
        );
        let _ = writeln!(
            s,
            "  memmap          {} total: device {}, RAM {} (+ {} PTE tables); {} struct pages written",
            format_size(l.memmap_bytes),
            format_size(l.memmap_bytes_device),
            format_size(l.memmap_bytes_ram),
            format_size(l.vmemmap_pagetable_bytes),
            l.struct_pages_written
        );
        if let Some((a, n)) = l.altmap_init_range() {
            let _ = writeln!(
                s,
                "  altmap init     {} ({n} struct pages, move_pfn_range_to_zone under the hotplug lock); {} struct pages initialised in all",
                pfn_span(a, n, ps),
                l.struct_pages_initialised
            );
        }
        let _ = writeln!(
            s,
            "  counts          sections {}, subsections {}, memory blocks {}, pageblocks {}",
            l.sections, l.subsections, l.memory_blocks, l.pageblocks
        );
        let (alt, ram, base, mb) = l.vmemmap_block_counts();
        let (alt_b, ram_b, base_b, mb_b) = l.vmemmap_block_bytes();
        let mut kinds = Vec::new();
        for (n, label, bytes) in [
            (alt, "altmap PMD", alt_b),
            (ram, "RAM PMD", ram_b),
            (base, "RAM base-page", base_b),
            (mb, "memory-block PMD", mb_b),
        ] {
            if n > 0 {
                kinds.push(format!("{n} {label} ({})", format_size(bytes)));
            }
        }
        let _ = writeln!(
            s,
            "  vmemmap blocks  {}",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            }
        );
        if l.compound_order > 0 {
            let _ = writeln!(
                s,
                "  compound pages  order {} ({} pfns, {}), {} struct pages written per compound page",
                l.compound_order,
                1u64 << l.compound_order,
                format_size((1u64 << l.compound_order) * ps),
                l.struct_pages_per_compound
            );
        }
        let roles: Vec<String> = l
            .extents
            .iter()
            .map(|e| format!("{:?} {}", e.role, format_size(e.pages * ps)))
            .collect();
        let _ = writeln!(s, "  extents         {}", roles.join(" | "));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::strategy::Strategy;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LayoutArgs,
    }

    fn parse(argv: &[&str]) -> LayoutArgs {
        Cli::try_parse_from(std::iter::once("layout").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn table_shows_the_altmap_and_blocks() {
        let a = parse(&["--namespace", "size=16368M,mode=fsdax,map=dev,align=2M"]);
        let l = compute(&a).unwrap();
        let t = render_table(&l);
        assert!(t.contains("dataoff 256 MiB"), "{t}");
        assert!(t.contains("reserve 2 free 65534 used 65534"), "{t}");
        assert!(
            t.contains("127 altmap PMD (254 MiB), 1 RAM base-page (1792 KiB)"),
            "{t}"
        );
        assert!(t.contains("initialised 4124672 pages"), "{t}");
    }

    #[test]
    fn json_has_the_summary_fields_and_the_layout() {
        let a = parse(&[
            "--namespace",
            "size=4G,mode=devdax,map=mem",
            "--namespace",
            "size=4G,start=0x200000000",
            "--hotplug",
            "start=0x500000000,size=128M",
            "--memmap-on-memory",
        ]);
        let l = compute(&a).unwrap();
        assert_eq!(l[1].name, "ns1");
        let v: Vec<LayoutJson> = l.iter().map(LayoutJson::from).collect();
        let j: serde_json::Value = serde_json::to_value(&v).unwrap();
        for k in [
            "data_pages",
            "memmap_bytes",
            "altmap_reserve_pages",
            "altmap_free_pages",
            "sections",
            "subsections",
            "layout",
        ] {
            assert!(j[0].get(k).is_some(), "{k}");
        }
        assert_eq!(j[2]["layout"]["kind"], "system-ram");
        assert_eq!(j[2]["layout"]["data_pages"], 32768 - 512);
        assert_eq!(j[1]["altmap_reserve_pages"], 2);
        // ns1 is fsdax map=dev: its altmap pfns count in the struct pages initialised.
        let alt = j[1]["altmap_struct_pages"].as_u64().unwrap();
        assert_eq!(alt, j[1]["altmap_free_pages"].as_u64().unwrap());
        assert_eq!(
            j[1]["struct_pages_initialised"].as_u64().unwrap(),
            j[1]["layout"]["struct_pages_written"].as_u64().unwrap() + alt
        );
        assert_eq!(j[0]["altmap_struct_pages"], 0);
        assert!(render_table(&l).contains("memory-block PMD"));
    }

    #[test]
    fn pre_5_3_and_overrides() {
        let a = parse(&[
            "--pre-5.3",
            "--namespace",
            "size=1G,start=0x104000000",
            "--section-size",
            "128M",
        ]);
        let p = a.params();
        assert!(!p.subsection_hotplug);
        let l = compute(&a).unwrap();
        assert_eq!(l[0].start_pad_pages, 16384);
        let bad = parse(&["--namespace", "size=16G,mode=bogus"]);
        let e = format!("{:#}", compute(&bad).unwrap_err());
        assert!(e.contains("mode"), "{e}");
        assert!(compute(&parse(&[])).is_err());
        let overlap = parse(&["--namespace", "size=4G", "--namespace", "size=4G"]);
        assert!(format!("{:#}", compute(&overlap).unwrap_err()).contains("overlap"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]
        /// Any sizes in the layout flags and specs: a table or an error, never a panic,
        /// and a table of any size is rendered from runs (bounded work).
        #[test]
        fn layout_flags_of_any_size(
            size in proptest::prop_oneof![
                (1u64..(1 << 31)).prop_map(|n| n << 21),
                (0u32..64).prop_map(|k| 1u64 << k),
                proptest::prelude::any::<u64>()
            ],
            section in proptest::option::of((0u32..64).prop_map(|k| 1u64 << k)),
            page in proptest::option::of((0u32..64).prop_map(|k| 1u64 << k)),
            sp in proptest::option::of(proptest::prelude::any::<u64>()),
            mode in proptest::sample::select(vec!["fsdax", "devdax", "raw", "sector"]),
            map in proptest::sample::select(vec!["mem", "dev"]),
            pre in proptest::prelude::any::<bool>(),
        ) {
            let mut argv = vec!["--namespace".to_string(), format!("size={size:#x},mode={mode},map={map}")];
            if let Some(v) = section { argv.extend(["--section-size".into(), v.to_string()]); }
            if let Some(v) = page { argv.extend(["--page-size".into(), v.to_string()]); }
            if let Some(v) = sp { argv.extend(["--struct-page-size".into(), v.to_string()]); }
            if pre { argv.push("--pre-5.3".into()); }
            let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
            match compute(&parse(&refs)) {
                Ok(l) => { proptest::prop_assert!(!render_table(&l).is_empty()); }
                Err(e) => { let msg = format!("{:#}", e); proptest::prop_assert!(!msg.is_empty()); }
            }
        }
    }

    #[test]
    fn more_ranges_than_the_limit_are_refused() {
        let specs: Vec<String> = (0..1025u64)
            .map(|i| format!("size=16M,start={:#x}", (1u64 << 32) + i * (1 << 27)))
            .collect();
        let mut argv = Vec::new();
        for s in &specs {
            argv.extend(["--namespace", s.as_str()]);
        }
        let e = format!("{:#}", compute(&parse(&argv)).unwrap_err());
        assert!(e.contains("1025") && e.contains("1024"), "{e}");
    }
}
