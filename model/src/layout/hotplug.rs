//! Layout of hot-added System RAM (`add_memory_resource`), with or without memmap_on_memory.

use super::range::Extents;
use super::vmemmap::{AltmapOrigin, VmemmapSim};
use super::VmemmapState;
use super::{check_resource, multiples_in};
use super::{Altmap, HotplugSpec, LayoutError, LayoutParams, PageKind, RangeLayout, Role};

/// `mhp_supports_memmap_on_memory` (mm/memory_hotplug.c, 6.1): the feature is on, the range
/// is exactly one memory block, its memmap is PMD aligned and the rest is pageblock aligned.
/// False for parameters that do not validate (nothing below can then divide by 0 or wrap).
pub fn mhp_supports_memmap_on_memory(size: u64, p: &LayoutParams) -> bool {
    if p.validate().is_err() || size != p.memory_block_size {
        return false;
    }
    let vmemmap_size = size / p.page_size * p.struct_page_size;
    let remaining = size - vmemmap_size.min(size);
    p.memmap_on_memory
        && p.subsection_hotplug
        && vmemmap_size.is_multiple_of(p.vmemmap_block_size)
        && remaining.is_multiple_of(p.pageblock_pages * p.page_size)
}

/// Layout of hot-added System RAM: `add_memory_resource` -> `arch_add_memory`/`__add_pages`
/// (whole sections, PMD vmemmap blocks from RAM, or with memmap_on_memory from the start of
/// the block via an altmap with `base_pfn = start`, `free = size`), then per block
/// `mhp_init_memmap_on_memory` + `online_pages` (memmap_init_range).
pub fn hotplug_layout(
    spec: &HotplugSpec,
    params: &LayoutParams,
) -> Result<RangeLayout, LayoutError> {
    hotplug_layout_in(spec, params, &mut VmemmapState::new())
}

/// [`hotplug_layout`] on top of the vmemmap left by earlier ranges (see [`VmemmapState`]).
pub fn hotplug_layout_in(
    spec: &HotplugSpec,
    params: &LayoutParams,
    state: &mut VmemmapState,
) -> Result<RangeLayout, LayoutError> {
    let p = params;
    let ps = p.page_size;
    let name = spec.name.as_str();
    check_resource(name, spec.start_phys, spec.size_bytes, p)?;
    let block = p.memory_block_size;
    if !spec.start_phys.is_multiple_of(block) || !spec.size_bytes.is_multiple_of(block) {
        return Err(LayoutError::HotplugMisaligned {
            name: name.to_string(),
            block,
            start: spec.start_phys,
            size: spec.size_bytes,
        });
    }
    let start_pfn = spec.start_phys / ps;
    let pages = spec.size_bytes / ps;
    let mom = mhp_supports_memmap_on_memory(spec.size_bytes, p);
    let altmap = mom.then_some(Altmap {
        base_pfn: start_pfn,
        reserve: 0,
        free: pages,
        align: 0,
        alloc: 0,
    });
    let mut sim = VmemmapSim::new(p, name, altmap, AltmapOrigin::MemoryBlock(start_pfn), state);
    let sections = sim.add_pages(start_pfn, pages, None)?;
    // create_memory_block_devices(start, size, mhp_altmap.alloc, group): the vmemmap pages
    // of the block are not onlined.
    let vmemmap_pages = sim.altmap.map(|a| a.alloc).unwrap_or(0);
    let data_start = start_pfn + vmemmap_pages;
    let mut ex = Extents::default();
    ex.push(start_pfn, data_start, Role::Vmemmap);
    ex.push(data_start, start_pfn + pages, Role::Data);
    let mut rules = p.kernel_rules();
    if p.memmap_on_memory && !mom {
        rules.push_str("; memmap_on_memory not used (mhp_supports_memmap_on_memory: not exactly one memory block, or pre-5.12)");
    }
    Ok(RangeLayout {
        name: spec.name.clone(),
        kind: PageKind::SystemRam,
        node: spec.node,
        params: p.clone(),
        namespace: None,
        hotplug: Some(spec.clone()),
        res_start_pfn: start_pfn,
        res_pages: pages,
        start_pad_pages: 0,
        end_trunc_pages: 0,
        range_start_pfn: start_pfn,
        range_pages: pages,
        dataoff_bytes: 0,
        npfns: 0,
        pfn_align_bytes: 0,
        altmap: sim.altmap,
        data_start_pfn: data_start,
        data_pages: pages - vmemmap_pages,
        compound_order: 0,
        struct_pages_per_compound: 1,
        struct_pages_written: pages,
        altmap_struct_pages: 0,
        struct_pages_initialised: pages,
        memmap_bytes: sim.bytes_device + sim.bytes_ram,
        memmap_bytes_device: sim.bytes_device,
        memmap_bytes_ram: sim.bytes_ram,
        vmemmap_pagetable_bytes: sim.pagetable_bytes,
        sections,
        subsections: if p.subsection_hotplug {
            pages / p.subsection_pages()
        } else {
            0
        },
        memory_blocks: spec.size_bytes / block,
        pageblocks: multiples_in(start_pfn, start_pfn + pages, p.pageblock_pages),
        vmemmap_blocks: sim.blocks,
        extents: ex.0,
        kernel_rules: rules,
    })
}

#[cfg(test)]
mod tests {
    use crate::layout::test_fixtures::*;
    use crate::layout::*;

    #[test]
    fn memmap_on_memory_one_block() {
        let p = LayoutParams {
            memmap_on_memory: true,
            ..p61()
        };
        let h = hotplug_layout(&"start=0x500000000,size=128M".parse().unwrap(), &p).unwrap();
        let a = h.altmap.unwrap();
        assert_eq!(
            (a.base_pfn, a.free, a.alloc, a.align),
            (0x500000, 32768, 512, 0)
        );
        assert_eq!(h.data_start_pfn, 0x500000 + 512);
        assert_eq!(h.data_pages, 32768 - 512);
        assert_eq!(h.struct_pages_written, 32768);
        assert_eq!(h.memmap_bytes_device, 2 * MIB);
        assert_eq!(h.extents[0].role, Role::Vmemmap);
        assert_eq!(h.extents[0].pages, 512);
        // 1 GiB = 8 blocks: 6.1 does not use memmap_on_memory (testbed tcg-mom)
        let big = hotplug_layout(&"start=0x500000000,size=1G".parse().unwrap(), &p).unwrap();
        assert_eq!(big.altmap, None);
        assert_eq!(big.data_pages, 262144);
        assert!(big.kernel_rules.contains("not used"));
        let e = hotplug_layout(&"start=0x504000000,size=128M".parse().unwrap(), &p).unwrap_err();
        assert!(e.to_string().contains("check_hotplug_memory_range"), "{e}");
    }
}
