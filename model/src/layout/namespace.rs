//! Layout of one pmem namespace: the pfn device, `arch_add_memory` with its vmemmap, and
//! `memmap_init_zone_device`.

use super::pfn::{check_supported_align, pfn_geometry_6_1, pfn_geometry_pre_5_3, PfnGeometry};
use super::range::Extents;
use super::vmemmap::{AltmapOrigin, VmemmapSim};
use super::{check_aligned, check_resource, multiples_in};
use super::{Altmap, LayoutError, LayoutParams, NamespaceSpec, NsMode, PageKind, PfnExtent};
use super::{RangeLayout, Role, VmemmapState};

/// Layout of one pmem namespace: `nd_pfn_init`/`__nvdimm_setup_pfn` (pfn_devs.c) ->
/// `memremap_pages`/`pagemap_range` -> `arch_add_memory`/`__add_pages` (vmemmap populate per
/// section chunk) -> `memmap_init_zone_device` (page_alloc.c). Raw and sector namespaces
/// get no struct pages (`pmem_attach_disk` uses `devm_memremap`; legacy e820 regions with
/// `ND_REGION_PAGEMAP` are not modelled).
pub fn namespace_layout(
    spec: &NamespaceSpec,
    params: &LayoutParams,
) -> Result<RangeLayout, LayoutError> {
    namespace_layout_in(spec, params, &mut VmemmapState::new())
}

/// [`namespace_layout`] on top of the vmemmap left by earlier ranges (see [`VmemmapState`]).
///
/// The steps, in the kernel's order: the pfn device (`nd_pfn_init` + `__nvdimm_setup_pfn`,
/// `pfn_geometry_6_1` / `pfn_geometry_pre_5_3`), the dax region (`__dax_pmem_probe`), the
/// checks of `__add_pages`, `dev_dax_probe`'s compound order, the vmemmap populate of
/// `__add_pages` (`VmemmapSim::add_pages`), then `memmap_init_zone_device`.
pub fn namespace_layout_in(
    spec: &NamespaceSpec,
    params: &LayoutParams,
    state: &mut VmemmapState,
) -> Result<RangeLayout, LayoutError> {
    let p = params;
    let ps = p.page_size;
    let name = spec.name.as_str();
    let res_end = check_resource(name, spec.start_phys, spec.size_bytes, p)?;
    let res_start_pfn = spec.start_phys / ps;
    let res_pages = spec.size_bytes / ps;

    if matches!(spec.mode, NsMode::Raw | NsMode::Sector) {
        return Ok(raw_layout(spec, p, res_end));
    }

    check_supported_align(spec, p)?;
    let g = if p.subsection_hotplug {
        pfn_geometry_6_1(spec, p)?
    } else {
        pfn_geometry_pre_5_3(spec, p)?
    };
    check_dax_region(spec, &g)?;
    let arch_start_pfn = g.arch_start / ps;
    let arch_pages = (g.arch_end - g.arch_start) / ps;
    let arch_end_pfn = arch_start_pfn + arch_pages;
    check_add_pages(name, arch_start_pfn, arch_pages, g.altmap, p)?;

    let compound_order = dev_dax_vmemmap_shift(spec, p);
    let cp = 1u64 << compound_order;
    let compound = (compound_order > 0).then_some((arch_start_pfn, cp));

    let mut sim = VmemmapSim::new(
        p,
        name,
        g.altmap,
        AltmapOrigin::Device(res_start_pfn),
        state,
    );
    let sections = sim.add_pages(arch_start_pfn, arch_pages, compound)?;

    // memmap_init_zone_device (mm/page_alloc.c, 6.1): with an altmap, start at
    // base_pfn + vmem_altmap_offset(altmap).
    let (init_start, init_end) = match sim.altmap {
        Some(a) => (a.base_pfn + a.offset(), arch_end_pfn),
        None => (arch_start_pfn, arch_end_pfn),
    };
    let per_compound = compound_nr_pages(compound_order, sim.altmap, p);
    let (written, pageblocks) = init_counts(init_start, init_end, cp, per_compound, p);

    let extents = namespace_extents(
        &g,
        &sim,
        (res_start_pfn, res_end / ps),
        (arch_start_pfn, arch_end_pfn),
        p,
    );
    let subsections = if p.subsection_hotplug {
        arch_pages.div_ceil(p.subsection_pages())
    } else {
        0
    };
    let mut l = RangeLayout {
        name: spec.name.clone(),
        kind: PageKind::ZoneDevice,
        node: spec.node,
        params: p.clone(),
        namespace: Some(spec.clone()),
        hotplug: None,
        res_start_pfn,
        res_pages,
        start_pad_pages: g.start_pad / ps,
        end_trunc_pages: g.end_trunc / ps,
        range_start_pfn: arch_start_pfn,
        range_pages: arch_pages,
        dataoff_bytes: g.dataoff,
        npfns: g.sb_npfns,
        pfn_align_bytes: g.pfn_align,
        altmap: sim.altmap,
        data_start_pfn: init_start,
        data_pages: init_end - init_start,
        compound_order,
        struct_pages_per_compound: per_compound,
        struct_pages_written: written,
        altmap_struct_pages: 0,
        struct_pages_initialised: written,
        memmap_bytes: sim.bytes_device + sim.bytes_ram,
        memmap_bytes_device: sim.bytes_device,
        memmap_bytes_ram: sim.bytes_ram,
        vmemmap_pagetable_bytes: sim.pagetable_bytes,
        sections,
        subsections,
        memory_blocks: 0,
        pageblocks,
        vmemmap_blocks: sim.blocks,
        extents,
        kernel_rules: p.kernel_rules(),
    };
    l.altmap_struct_pages = l.altmap_init_range().map_or(0, |(_, n)| n);
    l.struct_pages_initialised = l.struct_pages_written + l.altmap_struct_pages;
    Ok(l)
}

/// A raw or sector namespace: no pfn device, so no struct pages; the whole resource is data.
fn raw_layout(spec: &NamespaceSpec, p: &LayoutParams, res_end: u64) -> RangeLayout {
    let ps = p.page_size;
    let res_start_pfn = spec.start_phys / ps;
    let res_pages = spec.size_bytes / ps;
    let mut ex = Extents::default();
    ex.push(res_start_pfn, res_end / ps, Role::Data);
    RangeLayout {
        name: spec.name.clone(),
        kind: PageKind::ZoneDevice,
        node: spec.node,
        params: p.clone(),
        namespace: Some(spec.clone()),
        hotplug: None,
        res_start_pfn,
        res_pages,
        start_pad_pages: 0,
        end_trunc_pages: 0,
        range_start_pfn: res_start_pfn,
        range_pages: res_pages,
        dataoff_bytes: 0,
        npfns: 0,
        pfn_align_bytes: 0,
        altmap: None,
        data_start_pfn: res_start_pfn,
        data_pages: 0,
        compound_order: 0,
        struct_pages_per_compound: 1,
        struct_pages_written: 0,
        altmap_struct_pages: 0,
        struct_pages_initialised: 0,
        memmap_bytes: 0,
        memmap_bytes_device: 0,
        memmap_bytes_ram: 0,
        vmemmap_pagetable_bytes: 0,
        sections: 0,
        subsections: 0,
        memory_blocks: 0,
        pageblocks: 0,
        vmemmap_blocks: Default::default(),
        extents: ex.0,
        kernel_rules: format!(
            "{}; {} namespace: no struct pages",
            p.kernel_rules(),
            spec.mode
        ),
    }
}

/// A devdax namespace needs data after `dataoff` for its dax device.
fn check_dax_region(spec: &NamespaceSpec, g: &PfnGeometry) -> Result<(), LayoutError> {
    if spec.mode == NsMode::Devdax && g.range_start + g.dataoff >= g.range_end {
        // __dax_pmem_probe: the dax region [start + dataoff, end] is empty, so the device
        // dax gets size 0 and dev_dax_probe never maps it (s16/sdevdax-dev-1G-1040M).
        return Err(LayoutError::ZeroSizeDevice {
            name: spec.name.to_string(),
            dataoff: g.dataoff,
            range_bytes: g.range_end - g.range_start,
        });
    }
    Ok(())
}

/// The checks `__add_pages` (mm/memory_hotplug.c) makes before it adds the arch range.
fn check_add_pages(
    name: &str,
    arch_start_pfn: u64,
    arch_pages: u64,
    altmap: Option<Altmap>,
    p: &LayoutParams,
) -> Result<(), LayoutError> {
    // check_pfn_span (6.1: sub-section granular; pre-5.3 ranges are whole sections).
    let span_align = if p.subsection_hotplug {
        p.subsection_pages()
    } else {
        p.section_pages()
    };
    check_aligned(
        name,
        "arch_add_memory start pfn",
        arch_start_pfn,
        span_align,
        "__add_pages: check_pfn_span",
    )?;
    check_aligned(
        name,
        "arch_add_memory nr_pages",
        arch_pages,
        span_align,
        "__add_pages: check_pfn_span",
    )?;
    // __add_pages: "Validate altmap is within bounds of the total request".
    if let Some(a) = altmap {
        if a.base_pfn != arch_start_pfn || a.offset() > arch_pages {
            return Err(LayoutError::InvalidAltmap {
                name: name.to_string(),
                base_pfn: a.base_pfn,
                start_pfn: arch_start_pfn,
                offset: a.offset(),
                nr_pages: arch_pages,
            });
        }
    }
    Ok(())
}

/// The pgmap's compound order (0 = no compound pages).
fn dev_dax_vmemmap_shift(spec: &NamespaceSpec, p: &LayoutParams) -> u32 {
    let ps = p.page_size;
    // dev_dax_probe (drivers/dax/device.c, 5.17+): vmemmap_shift = order_base_2(align >> PAGE_SHIFT).
    if p.subsection_hotplug && spec.mode == NsMode::Devdax && spec.align_bytes > ps {
        (spec.align_bytes / ps).next_power_of_two().trailing_zeros()
    } else {
        0
    }
}

/// Struct pages `memmap_init_zone_device` writes per compound page (1 without compound pages).
fn compound_nr_pages(compound_order: u32, altmap: Option<Altmap>, p: &LayoutParams) -> u64 {
    let cp = 1u64 << compound_order;
    // compound_nr_pages(): 2 * (PAGE_SIZE / sizeof(struct page)) without altmap when
    // sizeof(struct page) is a power of 2, else the whole compound.
    if compound_order == 0 {
        1
    } else if altmap.is_none() && p.struct_page_size.is_power_of_two() {
        (2 * p.page_size / p.struct_page_size).min(cp)
    } else {
        cp
    }
}

/// Roles of the namespace's pfns, for the viewer: the arch range around the resource, info
/// block, altmap reserve, memmap blocks and padding, data. `res` and `arch` are pfn ranges
/// [start, end).
fn namespace_extents(
    g: &PfnGeometry,
    sim: &VmemmapSim<'_>,
    (res_start_pfn, res_end_pfn): (u64, u64),
    (arch_start_pfn, arch_end_pfn): (u64, u64),
    p: &LayoutParams,
) -> Vec<PfnExtent> {
    let ps = p.page_size;
    let mut ex = Extents::default();
    let range_start_pfn = g.range_start / ps;
    let range_end_pfn = g.range_end / ps;
    let head_role = if g.altmap.is_some() {
        Role::AltmapReserve
    } else {
        Role::AlignPadding
    };
    ex.push(
        arch_start_pfn,
        res_start_pfn.min(range_start_pfn),
        head_role,
    );
    ex.push(res_start_pfn, range_start_pfn, Role::AlignPadding);
    let info_end = range_start_pfn + p.info_block_reserve() / ps;
    ex.push(range_start_pfn, info_end, Role::InfoBlock);
    let data_start = range_start_pfn + g.dataoff / ps;
    if let Some(a) = sim.altmap {
        let mut cur = a.base_pfn + a.reserve;
        ex.push(info_end, cur, Role::AltmapReserve);
        // Runs of contiguous allocations: one extent each.
        let mut blocks = sim.altmap_blocks.clone();
        blocks.sort_unstable();
        for (bpfn, n, count) in blocks {
            ex.push(cur, bpfn, Role::AlignPadding);
            ex.push(bpfn, bpfn + n * count, Role::Memmap);
            cur = bpfn + n * count;
        }
        ex.push(cur, a.base_pfn + a.offset(), Role::AlignPadding);
    } else {
        ex.push(info_end, data_start, Role::AlignPadding);
    }
    ex.push(data_start, range_end_pfn, Role::Data);
    ex.push(range_end_pfn, res_end_pfn, Role::AlignPadding);
    ex.push(
        res_end_pfn.max(range_end_pfn),
        arch_end_pfn,
        Role::AlignPadding,
    );
    ex.0
}

/// Struct pages written and pageblock migratetypes set by the `memmap_init_zone_device` loop
/// (`for (pfn = start_pfn; pfn < end_pfn; pfn += pfns_per_compound)`: head via
/// `__init_zone_device_page`, tails via `memmap_init_compound(..., compound_nr_pages())`).
/// Counts are clamped at `end_pfn`.
/// Counts are clamped at `end_pfn`. Computed in closed form (the loop runs once per
/// compound page: 2^29 times for 1024 TiB with 2 MiB pages), see [`init_counts_loop`].
fn init_counts(start: u64, end: u64, cp: u64, per_compound: u64, p: &LayoutParams) -> (u64, u64) {
    let pb = p.pageblock_pages;
    if cp == 1 || end <= start {
        return (end.saturating_sub(start), multiples_in(start, end, pb));
    }
    // Compound pages at start + i*cp, i < n; all but the last are whole
    // (end - pfn_{n-2} > cp >= per_compound).
    let n = (end - start).div_ceil(cp);
    let last = start + (n - 1) * cp;
    let w_last = per_compound.min(end - last);
    let written = (n - 1) * per_compound + w_last;
    // Pageblock-aligned pfns x in [start, end) with (x - start) mod cp < per_compound: cp
    // and pageblock_pages are powers of two, so one divides the other.
    let pageblocks = if cp.is_multiple_of(pb) {
        // Every compound page starts at the same offset within a pageblock.
        (n - 1) * multiples_in(start, start + per_compound, pb)
            + multiples_in(last, last + w_last, pb)
    } else {
        // pageblock_pages multiple of cp: every pageblock start sits at the same offset
        // within its compound page.
        let c0 = (cp - start % cp) % cp;
        if c0 < per_compound {
            multiples_in(start, end, pb)
        } else {
            0
        }
    };
    (written, pageblocks)
}

/// The `memmap_init_zone_device` loop as the kernel runs it, one compound page at a time:
/// the reference [`init_counts`] is tested against.
#[cfg(test)]
fn init_counts_loop(
    start: u64,
    end: u64,
    cp: u64,
    per_compound: u64,
    p: &LayoutParams,
) -> (u64, u64) {
    if cp == 1 {
        return (end - start, multiples_in(start, end, p.pageblock_pages));
    }
    let (mut written, mut pageblocks) = (0, 0);
    let mut pfn = start;
    while pfn < end {
        let w = per_compound.min(end - pfn);
        written += w;
        pageblocks += multiples_in(pfn, pfn + w, p.pageblock_pages);
        pfn += cp;
    }
    (written, pageblocks)
}

#[cfg(test)]
mod tests {
    use super::{init_counts, init_counts_loop};
    use crate::layout::test_fixtures::*;
    use crate::layout::*;

    proptest::proptest! {
        /// The closed form gives what the kernel's loop over compound pages counts.
        #[test]
        fn init_counts_closed_form_is_the_loop(
            start in 0u64..(1 << 30),
            len in 0u64..(1 << 20),
            k in 0u32..19,
            pc in 1u64..(1 << 18),
            pbk in 0u32..14,
        ) {
            let cp = 1u64 << k;
            let per_compound = 1 + (pc - 1) % cp;
            let p = LayoutParams { pageblock_pages: 1 << pbk, ..p61() };
            proptest::prop_assert_eq!(
                init_counts(start, start + len, cp, per_compound, &p),
                init_counts_loop(start, start + len, cp, per_compound, &p)
            );
        }
    }

    /// Kernel figure (testbed-reference, excerpts/kprobe-fsdax-create.txt, Debian 6.1):
    /// fsdax map=mem, memmap_init_zone_device start_pfn=0x100000 nr_pages=4190208.
    #[test]
    fn kernel_figure_fsdax_map_mem_16g() {
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(l.range_start_pfn, 0x100000);
        assert_eq!(l.range_pages, 4190208);
        assert_eq!(l.data_start_pfn, 0x100000);
        assert_eq!(l.data_pages, 4190208);
        assert_eq!(l.dataoff_bytes, 2 * MIB);
        assert_eq!(l.altmap, None);
        assert_eq!(l.struct_pages_written, 4190208);
        assert_eq!(l.memmap_bytes_device, 0);
        assert_eq!(l.memmap_bytes_ram, 127 * 2 * MIB + 1792 * KIB);
    }

    /// Kernel figure (excerpts/kprobe-fsdax-create.txt): fsdax map=dev, the kprobe on entry
    /// sees the same range start_pfn=0x100000 nr_pages=4190208; the altmap skip happens
    /// inside memmap_init_zone_device.
    #[test]
    fn kernel_figure_fsdax_map_dev_16g_range() {
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(l.range_start_pfn, 0x100000);
        assert_eq!(l.range_pages, 4190208);
        // "initialised N pages": N = end_pfn - (base_pfn + reserve + free)
        assert_eq!(l.data_start_pfn, 0x110000);
        assert_eq!(l.data_pages, 4190208 - 65536);
        // move_pfn_range_to_zone -> memmap_init_range: [base + reserve, base + offset),
        // reserve = the 8 KiB info block.
        assert_eq!(l.altmap_init_range(), Some((0x100002, 65534)));
        assert_eq!(l.struct_pages_initialised, 4190208 - 2);
    }

    /// fsdax map=dev align 1G on 4 GiB: 786432 data pages plus 262142 altmap pages
    /// (issue 15's example: the altmap pfns are a quarter of the namespace).
    #[test]
    fn altmap_pfns_initialised_under_the_hotplug_lock() {
        let l =
            namespace_layout(&ns(4 * GIB, NsMode::Fsdax, MapLocation::Dev, GIB), &p61()).unwrap();
        assert_eq!(l.data_pages, 786432);
        assert_eq!(l.altmap_struct_pages, 262142);
        assert_eq!(l.struct_pages_initialised, 786432 + 262142);
        // map=mem has no altmap: nothing more than the data's struct pages.
        let m = namespace_layout(
            &ns(4 * GIB, NsMode::Fsdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!((m.altmap_init_range(), m.altmap_struct_pages), (None, 0));
        assert_eq!(m.struct_pages_initialised, m.struct_pages_written);
    }

    #[test]
    fn section_subsection_block_counts() {
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap();
        // 128 sparse_remove_section calls on destroy (excerpts/fgraph-fsdax-map=mem-destroy)
        assert_eq!(l.sections, 128);
        assert_eq!(l.subsections, 8184);
        assert_eq!(l.memory_blocks, 0);
        assert_eq!(l.pageblocks, 8184);
        let d = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(d.pageblocks, 8184 - 128);

        let h = hotplug_layout(&"start=0x500000000,size=1G".parse().unwrap(), &p61()).unwrap();
        assert_eq!(
            (h.sections, h.subsections, h.memory_blocks, h.pageblocks),
            (8, 512, 8, 512)
        );
        assert_eq!(h.vmemmap_block_counts(), (0, 8, 0, 0));
        assert_eq!(h.memmap_bytes_ram, 16 * MIB);
        assert_eq!(h.data_pages, 262144);
    }

    #[test]
    fn devdax_compound_written_counts() {
        // map=mem: tail vmemmap reuse, 128 struct pages written per 2 MiB compound page
        let m = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Devdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(m.compound_order, 9);
        assert_eq!(m.struct_pages_per_compound, 128);
        assert_eq!(m.data_pages, 4190208);
        assert_eq!(m.struct_pages_written, 8184 * 128);
        assert_eq!(m.memmap_bytes_ram, 8184 * 2 * 4096);
        // map=dev: every struct page written
        let d = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Devdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(d.compound_order, 9);
        assert_eq!(d.struct_pages_per_compound, 512);
        assert_eq!(d.struct_pages_written, d.data_pages);
        assert_eq!(d.memmap_bytes_device, 254 * MIB);
        // fsdax: no compound pages in 6.1
        let f = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!((f.compound_order, f.struct_pages_per_compound), (0, 1));
    }

    #[test]
    fn raw_namespace_has_no_memmap() {
        let l =
            namespace_layout(&ns(4 * GIB, NsMode::Raw, MapLocation::Mem, 2 * MIB), &p61()).unwrap();
        assert_eq!((l.data_pages, l.memmap_bytes, l.sections), (0, 0, 0));
    }
}
