//! The pfn device of an fsdax/devdax namespace (drivers/nvdimm/pfn_devs.c): info block, data
//! offset, altmap and the range handed to `arch_add_memory`, by the 6.1 and the 5.2 rules.

use super::{align_down, align_up, check_aligned, Altmap, LayoutError, LayoutParams};
use super::{format_size, MapLocation, NamespaceSpec};

/// Result of `nd_pfn_init` + `__nvdimm_setup_pfn` (+ pre-5.3 `devm_memremap_pages` rounding).
pub(super) struct PfnGeometry {
    pub(super) start_pad: u64,
    pub(super) end_trunc: u64,
    pub(super) dataoff: u64,
    pub(super) sb_npfns: u64,
    pub(super) pfn_align: u64,
    /// pgmap range, bytes [start, end).
    pub(super) range_start: u64,
    pub(super) range_end: u64,
    /// what arch_add_memory / memmap_init_zone_device get, bytes [start, end).
    pub(super) arch_start: u64,
    pub(super) arch_end: u64,
    pub(super) altmap: Option<Altmap>,
}

fn nd_pfn_supported_alignments(p: &LayoutParams) -> [u64; 3] {
    [p.page_size, p.vmemmap_block_size, p.pud_size()]
}

/// `nd_pfn->align` must be one of `nd_pfn_supported_alignments` (`align_store`).
pub(super) fn check_supported_align(
    spec: &NamespaceSpec,
    p: &LayoutParams,
) -> Result<(), LayoutError> {
    let supported = nd_pfn_supported_alignments(p);
    if !supported.contains(&spec.align_bytes) {
        return Err(LayoutError::UnsupportedAlign {
            name: spec.name.to_string(),
            align: spec.align_bytes,
            supported: supported
                .iter()
                .map(|a| format_size(*a))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}

/// `nd_pfn_init` + `__nvdimm_setup_pfn`, drivers/nvdimm/pfn_devs.c, Linux 6.1.
pub(super) fn pfn_geometry_6_1(
    spec: &NamespaceSpec,
    p: &LayoutParams,
) -> Result<PfnGeometry, LayoutError> {
    let (ps, name) = (p.page_size, spec.name.as_str());
    let (start, size) = (spec.start_phys, spec.size_bytes);
    let end = start + size;
    // "When @start is misaligned fail namespace creation" (start_pad is deprecated).
    check_aligned(
        name,
        "namespace start",
        start,
        p.compat_align,
        "nd_pfn_init: start misaligned to memremap_compat_align()",
    )?;
    let unable = |offset: u64, end_trunc: u64| LayoutError::UnableToSatisfyAlignment {
        name: name.to_string(),
        offset,
        size,
        start_pad: 0,
        end_trunc,
    };
    let sz8k = p.info_block_size;
    if size <= sz8k {
        return Err(unable(sz8k, 0));
    }
    let npfns = (size - sz8k) / ps; // PHYS_PFN(size - SZ_8K)
    let align = spec.align_bytes.max(p.compat_align);
    let end_trunc = end - align_down(end, align);
    let offset = match spec.map {
        MapLocation::Dev => {
            if p.struct_page_size > p.max_struct_page_size {
                return Err(LayoutError::StructPageTooLarge {
                    name: name.to_string(),
                    struct_page_size: p.struct_page_size,
                    max: p.max_struct_page_size,
                });
            }
            let page_map_size = p.max_struct_page_size * npfns;
            align_up(start + sz8k + page_map_size, align) - start
        }
        MapLocation::Mem => align_up(start + sz8k, align) - start,
    };
    // 6.1 checks `offset >= size`; `offset >= size - end_trunc` ("This results in zero size
    // devices") came with "nvdimm/pfn_dev: Prevent the creation of zero-sized namespaces"
    // (6.5). On 6.1 an offset in [size - end_trunc, size) yields a 0-page device (kernel
    // figure s16/sfsdax-dev-1G-1040M).
    if offset >= size {
        return Err(unable(offset, end_trunc));
    }
    let sb_npfns = size.saturating_sub(offset + end_trunc) / ps;
    let start_pad = 0;
    let base = start + start_pad;
    let reserve_bytes = p.info_block_reserve();
    let altmap = match spec.map {
        MapLocation::Dev => {
            let base_pfn_raw = base / ps;
            let base_pfn = align_down(base_pfn_raw, p.subsection_pages()); // init_altmap_base
            Some(Altmap {
                base_pfn,
                reserve: reserve_bytes / ps + (base_pfn_raw - base_pfn), // init_altmap_reserve
                free: (offset - reserve_bytes) / ps,
                align: 0,
                alloc: 0,
            })
        }
        MapLocation::Mem => None,
    };
    let range_start = start + start_pad;
    let range_end = end - end_trunc;
    Ok(PfnGeometry {
        start_pad,
        end_trunc,
        dataoff: offset,
        sb_npfns,
        pfn_align: align,
        range_start,
        range_end,
        arch_start: range_start,
        arch_end: range_end,
        altmap,
    })
}

/// `trim_pfn_device` + `nd_pfn_init` + `__nvdimm_setup_pfn` of Linux 5.2, and the section
/// rounding of v5.2 `devm_memremap_pages` (`align_start`/`align_size`).
pub(super) fn pfn_geometry_pre_5_3(
    spec: &NamespaceSpec,
    p: &LayoutParams,
) -> Result<PfnGeometry, LayoutError> {
    let (ps, sec, name) = (p.page_size, p.section_size, spec.name.as_str());
    let (start, size) = (spec.start_phys, spec.size_bytes);
    let end = start + size;
    let align = spec.align_bytes;
    let phys_pmem_align_down = |phys: u64| align_down(phys, sec).min(align_down(phys, align));
    let start_pad = if p.pre53_trim_unaligned {
        align_up(start, sec) - start
    } else {
        0
    };
    let end_unaligned =
        !end.is_multiple_of(align) || (p.pre53_trim_unaligned && !end.is_multiple_of(sec));
    let end_trunc = if end_unaligned {
        end - phys_pmem_align_down(end)
    } else {
        0
    };
    let reserve = p.info_block_reserve();
    let unable = |offset: u64| LayoutError::UnableToSatisfyAlignment {
        name: name.to_string(),
        offset,
        size,
        start_pad,
        end_trunc,
    };
    if start_pad + end_trunc + reserve >= size {
        return Err(unable(reserve));
    }
    let s2 = start + start_pad;
    let npfns = align_up(
        (size - start_pad - end_trunc - reserve) / ps,
        p.section_pages(),
    );
    let pfn_align;
    let offset = match spec.map {
        MapLocation::Dev => {
            pfn_align = align.max(p.vmemmap_block_size);
            align_up(s2 + reserve + p.max_struct_page_size * npfns, pfn_align) - s2
        }
        MapLocation::Mem => {
            pfn_align = align;
            align_up(s2 + reserve, align) - s2
        }
    };
    if offset + start_pad + end_trunc >= size {
        return Err(unable(offset));
    }
    let sb_npfns = (size - offset - start_pad - end_trunc) / ps;
    let range_start = s2;
    let range_end = end - end_trunc;
    let altmap = match spec.map {
        MapLocation::Dev => {
            let base_pfn_raw = s2 / ps;
            let base_pfn = align_down(base_pfn_raw, p.section_pages());
            Some(Altmap {
                base_pfn,
                reserve: reserve / ps + (base_pfn_raw - base_pfn),
                free: (offset - reserve) / ps,
                align: 0,
                alloc: 0,
            })
        }
        MapLocation::Mem => None,
    };
    Ok(PfnGeometry {
        start_pad,
        end_trunc,
        dataoff: offset,
        sb_npfns,
        pfn_align,
        range_start,
        range_end,
        arch_start: align_down(range_start, sec),
        arch_end: align_up(range_end, sec),
        altmap,
    })
}

#[cfg(test)]
mod tests {
    use crate::layout::test_fixtures::*;
    use crate::layout::*;

    #[test]
    fn misaligned_start_is_refused() {
        let s = NamespaceSpec {
            start_phys: NS_START + MIB,
            ..ns(GIB, NsMode::Fsdax, MapLocation::Dev, 2 * MIB)
        };
        let e = namespace_layout(&s, &p61()).unwrap_err();
        assert!(
            matches!(e, LayoutError::Misaligned { align, .. } if align == 2 * MIB),
            "{e}"
        );
        assert!(e.to_string().contains("memremap_compat_align"));
    }

    #[test]
    fn unable_to_satisfy_alignment() {
        let e =
            namespace_layout(&ns(GIB, NsMode::Devdax, MapLocation::Dev, GIB), &p61()).unwrap_err();
        assert!(e
            .to_string()
            .contains("unable to satisfy requested alignment"));
        let e = namespace_layout(
            &ns(2 * MIB, NsMode::Fsdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap_err();
        assert!(matches!(e, LayoutError::UnableToSatisfyAlignment { .. }));
        let e = namespace_layout(&ns(GIB, NsMode::Fsdax, MapLocation::Dev, 64 * KIB), &p61())
            .unwrap_err();
        assert!(matches!(e, LayoutError::UnsupportedAlign { .. }), "{e}");
    }

    /// v6.1..v6.1.11 had MAX_STRUCT_PAGE_SIZE 128 (KMSAN, commit 6e9f05dc66f9).
    #[test]
    fn max_struct_page_size_128_doubles_dataoff() {
        let p = LayoutParams {
            max_struct_page_size: 128,
            ..p61()
        };
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p,
        )
        .unwrap();
        assert_eq!(l.dataoff_bytes, 512 * MIB);
        assert_eq!(l.altmap.unwrap().alloc, 127 * 512);
    }

    #[test]
    fn align_1g_truncates_end() {
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Devdax, MapLocation::Dev, GIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(l.end_trunc_pages, (GIB - 16 * MIB) / 4096);
        assert_eq!(l.range_pages, 15 * GIB / 4096);
        assert_eq!(l.dataoff_bytes, GIB);
        assert_eq!(l.data_pages, 14 * GIB / 4096);
        assert_eq!(l.compound_order, 18);
        assert_eq!(l.struct_pages_written, l.data_pages);
    }

    #[test]
    fn pre_5_3_pads_to_sections() {
        let p = LayoutParams::pre_5_3();
        let s = NamespaceSpec {
            start_phys: NS_START + 64 * MIB,
            ..ns(GIB, NsMode::Fsdax, MapLocation::Dev, 2 * MIB)
        };
        let l = namespace_layout(&s, &p).unwrap();
        assert_eq!(l.start_pad_pages, 64 * MIB / 4096);
        assert_eq!(l.end_trunc_pages, 64 * MIB / 4096);
        assert_eq!(l.range_start_pfn, (NS_START + 128 * MIB) / 4096);
        assert_eq!(l.range_pages, 7 * 32768);
        assert_eq!(l.sections, 7);
        assert_eq!(l.subsections, 0);
        assert!(l.kernel_rules.contains("pre-5.3"));
        // 6.1 takes the same namespace as is
        let l61 = namespace_layout(&s, &p61()).unwrap();
        assert_eq!((l61.start_pad_pages, l61.end_trunc_pages), (0, 0));
        assert_eq!(l61.sections, 9);
        // 16 GiB - 16 MiB: the last partial section is truncated away
        let q = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p,
        )
        .unwrap();
        assert_eq!(q.range_pages, 127 * 32768);
        assert_eq!(q.dataoff_bytes, 256 * MIB);
        assert_eq!(q.altmap.unwrap().free, 65534);
        assert_eq!(q.vmemmap_block_counts(), (127, 0, 0, 0));
    }
}
