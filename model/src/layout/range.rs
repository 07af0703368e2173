//! The computed layout of one range (a namespace or hot-added RAM): [`RangeLayout`], the roles
//! of its pfns for the viewer, and the check that several ranges can coexist.

use serde::{Deserialize, Serialize};

use super::{
    align_down, align_up, Altmap, HotplugSpec, LayoutError, LayoutParams, NamespaceSpec,
    VmemmapBacking, VmemmapBlock, VmemmapBlocks,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    ZoneDevice,
    SystemRam,
}

/// Role of a pfn extent, for the viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The first `nd_info_block_reserve()` bytes of a pfn namespace (info block at 4 KiB).
    InfoBlock,
    /// Altmap reserve pfns other than the info block (padding below the namespace start).
    AltmapReserve,
    /// Altmap pfns holding vmemmap PMD blocks.
    Memmap,
    /// Alignment padding: altmap alignment gaps and unused altmap pfns, map=mem pfns between
    /// the info block and dataoff, start_pad / end_trunc, pre-5.3 section padding.
    AlignPadding,
    /// Data pages (what the user gets).
    Data,
    /// Present but not onlined (not produced by the current model, reserved for the viewer).
    Offline,
    /// memmap_on_memory pages: the memmap of a hot-added block, inside it, never onlined.
    Vmemmap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PfnExtent {
    pub start_pfn: u64,
    pub pages: u64,
    pub role: Role,
}

/// The computed layout of one range (namespace or hot-added RAM). Pfns absolute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RangeLayout {
    pub name: String,
    pub kind: PageKind,
    pub node: u32,
    pub params: LayoutParams,
    pub namespace: Option<NamespaceSpec>,
    pub hotplug: Option<HotplugSpec>,
    /// Namespace / DIMM resource.
    pub res_start_pfn: u64,
    pub res_pages: u64,
    pub start_pad_pages: u64,
    pub end_trunc_pages: u64,
    /// What arch_add_memory & memmap_init_zone_device (kprobe start_pfn/nr_pages) receive.
    /// Pre-5.3 this is the section-aligned range of `devm_memremap_pages`.
    pub range_start_pfn: u64,
    pub range_pages: u64,
    /// pfn info-block (nd_pfn_sb) fields; 0 for raw / RAM.
    pub dataoff_bytes: u64,
    pub npfns: u64,
    /// `max(nd_pfn->align, memremap_compat_align())` (6.1) or the pre-5.3 offset alignment; 0
    /// for raw / RAM.
    pub pfn_align_bytes: u64,
    pub altmap: Option<Altmap>,
    /// Pfns whose struct page memmap_init_* initializes; data_pages = the N of "initialised N
    /// pages" (for RAM: the pages `online_pages` initialises).
    pub data_start_pfn: u64,
    pub data_pages: u64,
    /// pgmap vmemmap_shift (devdax align>4K); 0 = none.
    pub compound_order: u32,
    /// compound_nr_pages(): 128 with map=mem (tail vmemmap reuse), 1<<order with altmap; 1
    /// without compound pages.
    pub struct_pages_per_compound: u64,
    /// Struct pages the init actually writes (RAM: including the memmap_on_memory pages).
    pub struct_pages_written: u64,
    /// Struct pages of the altmap's own pfns (the pfns holding the memmap on the device):
    /// `move_pfn_range_to_zone` -> `memmap_init_range` initialises
    /// [base_pfn + reserve, base_pfn + vmem_altmap_offset) under the hotplug lock before
    /// `memmap_init_zone_device` (6.1 mm/memory_hotplug.c, mm/mm_init.c;
    /// 4.19 `memmap_init_zone` does them in the same loop). 0 without an altmap.
    #[serde(default)]
    pub altmap_struct_pages: u64,
    /// Every struct page the kernel initialises for this range: the data's
    /// (`struct_pages_written`) plus the altmap's own.
    #[serde(default)]
    pub struct_pages_initialised: u64,
    /// Backing allocated for the vmemmap (device + RAM; page-table pages not included).
    pub memmap_bytes: u64,
    pub memmap_bytes_device: u64,
    pub memmap_bytes_ram: u64,
    /// PTE-table pages (from RAM) allocated to map vmemmap with base pages.
    pub vmemmap_pagetable_bytes: u64,
    /// Sections touched (`sparse_add_section` calls of `__add_pages`).
    pub sections: u64,
    /// Sub-sections activated (`fill_subsection_map`); 0 pre-5.3 (no sub-section map).
    pub subsections: u64,
    /// Memory block devices created (0 for ZONE_DEVICE: `pagemap_range` calls
    /// `arch_add_memory` directly, never `create_memory_block_devices`).
    pub memory_blocks: u64,
    /// Pageblocks whose migratetype the init sets (pageblock-aligned initialised pfns).
    pub pageblocks: u64,
    /// In pfn order, covering every pfn in range.
    pub vmemmap_blocks: VmemmapBlocks,
    /// Roles over [res_start, res_end) (plus any pre-5.3 section padding outside it), in pfn
    /// order, for the viewer.
    pub extents: Vec<PfnExtent>,
    /// E.g. "linux-6.1 x86_64 sub-section hotplug".
    pub kernel_rules: String,
}

impl RangeLayout {
    /// The altmap pfns `memmap_init_range` initialises: (first pfn, pages), None without
    /// an altmap (see `altmap_struct_pages`).
    pub fn altmap_init_range(&self) -> Option<(u64, u64)> {
        let a = self.altmap?;
        // memmap_init_range: "if (start_pfn == altmap->base_pfn) start_pfn += altmap->reserve;
        // end_pfn = altmap->base_pfn + vmem_altmap_offset(altmap);"
        let start = if self.range_start_pfn == a.base_pfn {
            a.base_pfn + a.reserve
        } else {
            self.range_start_pfn
        };
        let end = a.base_pfn + a.offset();
        (end > start).then_some((start, end - start))
    }

    /// End pfn (exclusive) of the arch range.
    pub fn range_end_pfn(&self) -> u64 {
        self.range_start_pfn + self.range_pages
    }

    /// End pfn (exclusive) of the resource.
    pub fn res_end_pfn(&self) -> u64 {
        self.res_start_pfn + self.res_pages
    }

    /// Altmap pages used by the vmemmap (alloc + align), 0 without altmap.
    pub fn altmap_used_pages(&self) -> u64 {
        self.altmap.map(|a| a.alloc + a.align).unwrap_or(0)
    }

    /// The vmemmap block holding the struct page of `pfn`.
    pub fn vmemmap_block_of(&self, pfn: u64) -> Option<VmemmapBlock> {
        self.vmemmap_blocks.block_of(pfn)
    }

    /// Where the struct page of `pfn` lives: the backing, and the byte offset within that
    /// backing area (Altmap: from the namespace start; MemoryBlock: from the block start;
    /// Ram: within the 2 MiB block; RamBasePages: within the block's mapped bytes, or for
    /// devdax compound pages with tail reuse within the unique bytes of the section holding
    /// the compound head, reused tails folded onto the unique tail page).
    pub fn memmap_offset_of(&self, pfn: u64) -> Option<(VmemmapBacking, u64)> {
        let sps = self.params.struct_page_size;
        let ps = self.params.page_size;
        let b = self.vmemmap_block_of(pfn)?;
        let order = self.compound_order;
        let cp = 1u64 << order;
        let reused = order > 0 && self.struct_pages_per_compound < cp;
        if reused && b.backing == VmemmapBacking::RamBasePages {
            let head = self.range_start_pfn + (pfn - self.range_start_pfn) / cp * cp;
            let hb = self.vmemmap_block_of(head)?;
            let k = (head - hb.first_pfn) / cp;
            let i = pfn - head;
            let within = if i * sps < 2 * ps {
                i * sps
            } else {
                ps + (i * sps) % ps
            };
            return Some((hb.backing, k * 2 * ps + within));
        }
        let rel = (pfn - b.first_pfn) * sps;
        let off = match b.backing {
            VmemmapBacking::Altmap {
                device_offset_bytes,
            } => device_offset_bytes + rel,
            VmemmapBacking::MemoryBlock { block_offset_bytes } => block_offset_bytes + rel,
            VmemmapBacking::Ram => (b.first_pfn * sps) % self.params.vmemmap_block_size + rel,
            VmemmapBacking::RamBasePages => (b.first_pfn * sps) % ps + rel,
        };
        Some((b.backing, off))
    }

    /// Vmemmap blocks per backing kind: (altmap, ram PMD, ram base-page units, memory block).
    pub fn vmemmap_block_counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for r in self.vmemmap_blocks.runs() {
            let n = r.count as usize;
            match r.first.backing {
                VmemmapBacking::Altmap { .. } => c.0 += n,
                VmemmapBacking::Ram => c.1 += n,
                VmemmapBacking::RamBasePages => c.2 += n,
                VmemmapBacking::MemoryBlock { .. } => c.3 += n,
            }
        }
        c
    }

    /// Bytes of the vmemmap blocks per backing kind: (altmap, ram PMD, ram base-page
    /// units, memory block), summed over the runs.
    pub fn vmemmap_block_bytes(&self) -> (u64, u64, u64, u64) {
        let mut c = (0, 0, 0, 0);
        for r in self.vmemmap_blocks.runs() {
            let n = r.total_bytes();
            match r.first.backing {
                VmemmapBacking::Altmap { .. } => c.0 += n,
                VmemmapBacking::Ram => c.1 += n,
                VmemmapBacking::RamBasePages => c.2 += n,
                VmemmapBacking::MemoryBlock { .. } => c.3 += n,
            }
        }
        c
    }
}

/// Builds [`RangeLayout::extents`]: pfn ranges in order, adjacent ones of one role merged.
#[derive(Default)]
pub(super) struct Extents(pub(super) Vec<PfnExtent>);

impl Extents {
    pub(super) fn push(&mut self, start_pfn: u64, end_pfn: u64, role: Role) {
        if end_pfn <= start_pfn {
            return;
        }
        if let Some(last) = self.0.last_mut() {
            if last.role == role && last.start_pfn + last.pages == start_pfn {
                last.pages += end_pfn - start_pfn;
                return;
            }
        }
        self.0.push(PfnExtent {
            start_pfn,
            pages: end_pfn - start_pfn,
            role,
        });
    }
}

/// Checks that ranges can coexist: resources and arch ranges never overlap; pre-5.3
/// (section-granular) two ranges may not share a section ("mixed region"); 6.1 two ranges
/// may not share a sub-section (`fill_subsection_map` -EEXIST).
pub fn check_ranges_disjoint(
    layouts: &[RangeLayout],
    params: &LayoutParams,
) -> Result<(), LayoutError> {
    let spp = params.section_pages();
    let sub = params.subsection_pages();
    for (i, a) in layouts.iter().enumerate() {
        for b in &layouts[i + 1..] {
            let (lo, hi) = (
                a.res_start_pfn.max(b.res_start_pfn),
                a.res_end_pfn().min(b.res_end_pfn()),
            );
            if lo < hi {
                return Err(LayoutError::Overlap {
                    a: a.name.clone(),
                    b: b.name.clone(),
                    start_pfn: lo,
                    end_pfn: hi,
                });
            }
            if params.subsection_hotplug {
                let (lo, hi) = (
                    a.range_start_pfn.max(b.range_start_pfn),
                    a.range_end_pfn().min(b.range_end_pfn()),
                );
                if lo < hi {
                    return Err(LayoutError::Overlap {
                        a: a.name.clone(),
                        b: b.name.clone(),
                        start_pfn: lo,
                        end_pfn: hi,
                    });
                }
            }
            if a.range_pages == 0 || b.range_pages == 0 {
                continue;
            }
            let unit = if params.subsection_hotplug { sub } else { spp };
            let (a_lo, a_hi) = (
                align_down(a.range_start_pfn, unit),
                align_up(a.range_end_pfn(), unit),
            );
            let (b_lo, b_hi) = (
                align_down(b.range_start_pfn, unit),
                align_up(b.range_end_pfn(), unit),
            );
            let (lo, hi) = (a_lo.max(b_lo), a_hi.min(b_hi));
            if lo < hi {
                return Err(if params.subsection_hotplug {
                    LayoutError::SubsectionConflict {
                        a: a.name.clone(),
                        b: b.name.clone(),
                        subsection_pfn: lo,
                    }
                } else {
                    LayoutError::MixedSection {
                        a: a.name.clone(),
                        b: b.name.clone(),
                        section_pfn: lo,
                    }
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::layout::test_fixtures::*;
    use crate::layout::*;

    #[test]
    fn json_roundtrip() {
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Devdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        let j = serde_json::to_string(&l).unwrap();
        assert!(j.contains("\"kind\":\"altmap\""));
        let back: RangeLayout = serde_json::from_str(&j).unwrap();
        assert_eq!(back, l);
        let p: LayoutParams = serde_json::from_str("{\"subsection_hotplug\":false}").unwrap();
        assert_eq!(p, LayoutParams::pre_5_3());
    }

    #[test]
    fn memmap_offset_of_every_backing() {
        let dev = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(
            dev.memmap_offset_of(0x100000 + 10),
            Some((
                VmemmapBacking::Altmap {
                    device_offset_bytes: 2 * MIB
                },
                2 * MIB + 640
            ))
        );
        assert_eq!(
            dev.memmap_offset_of(0x100000 + 32768 + 1).map(|x| x.1),
            Some(4 * MIB + 64)
        );
        let last_first = 0x100000 + 127 * 32768;
        assert_eq!(
            dev.memmap_offset_of(last_first + 64),
            Some((VmemmapBacking::RamBasePages, 4096))
        );
        assert_eq!(dev.memmap_offset_of(0x100000 + 4190208), None);
        assert_eq!(dev.memmap_offset_of(0xfffff), None);

        let mem = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(
            mem.memmap_offset_of(0x100000 + 32768 + 3),
            Some((VmemmapBacking::Ram, 192))
        );

        let p = LayoutParams {
            memmap_on_memory: true,
            ..p61()
        };
        let h = hotplug_layout(&"start=0x500000000,size=128M".parse().unwrap(), &p).unwrap();
        assert_eq!(
            h.memmap_offset_of(0x500000 + 100),
            Some((
                VmemmapBacking::MemoryBlock {
                    block_offset_bytes: 0
                },
                6400
            ))
        );

        let dd = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Devdax, MapLocation::Mem, 2 * MIB),
            &p61(),
        )
        .unwrap();
        // second compound page of the first section: unique pages 2..4 of that section
        assert_eq!(
            dd.memmap_offset_of(0x100000 + 512 + 1),
            Some((VmemmapBacking::RamBasePages, 8192 + 64))
        );
        // a far tail folds onto the compound's unique tail page
        assert_eq!(
            dd.memmap_offset_of(0x100000 + 512 + 300),
            Some((
                VmemmapBacking::RamBasePages,
                8192 + 4096 + (300 * 64) % 4096
            ))
        );
    }

    #[test]
    fn pre_5_3_mixed_region_is_refused() {
        let p = LayoutParams {
            pre53_trim_unaligned: false,
            ..LayoutParams::pre_5_3()
        };
        let a = NamespaceSpec {
            name: "ns0".into(),
            ..ns(GIB + 64 * MIB, NsMode::Fsdax, MapLocation::Mem, 2 * MIB)
        };
        let b = NamespaceSpec {
            name: "ns1".into(),
            start_phys: NS_START + GIB + 64 * MIB,
            ..ns(GIB, NsMode::Fsdax, MapLocation::Mem, 2 * MIB)
        };
        let la = namespace_layout(&a, &p).unwrap();
        let lb = namespace_layout(&b, &p).unwrap();
        let e = check_ranges_disjoint(&[la, lb], &p).unwrap_err();
        assert!(
            matches!(e, LayoutError::MixedSection { section_pfn, .. } if section_pfn == (NS_START + GIB) / 4096),
            "{e}"
        );
        assert!(e.to_string().contains("mixed region"));
        // 6.1: same namespaces share the section at sub-section granularity
        let la = namespace_layout(&a, &p61()).unwrap();
        let lb = namespace_layout(&b, &p61()).unwrap();
        check_ranges_disjoint(&[la.clone(), lb], &p61()).unwrap();
        // but never overlap
        let e = check_ranges_disjoint(&[la.clone(), la], &p61()).unwrap_err();
        assert!(matches!(e, LayoutError::Overlap { .. }));
    }

    /// Hot-added RAM is memory-block aligned, so it can only share a section with a
    /// namespace by overlapping it (the seed 002 "mixed region" is boot RAM, modelled by
    /// the namespace-vs-namespace test above).
    #[test]
    fn pre_5_3_ram_next_to_namespace() {
        let p = LayoutParams {
            pre53_trim_unaligned: false,
            ..LayoutParams::pre_5_3()
        };
        let ram = hotplug_layout(
            &"start=0x100000000,size=128M,name=dimm1".parse().unwrap(),
            &p,
        )
        .unwrap();
        let s = NamespaceSpec {
            start_phys: NS_START + 128 * MIB,
            ..ns(GIB + 64 * MIB, NsMode::Fsdax, MapLocation::Mem, 2 * MIB)
        };
        let l = namespace_layout(&s, &p).unwrap();
        assert_eq!(l.range_pages, 9 * 32768);
        assert_eq!(l.extents.last().unwrap().role, Role::AlignPadding);
        check_ranges_disjoint(&[ram.clone(), l], &p).unwrap();
        let s2 = NamespaceSpec {
            start_phys: NS_START + 64 * MIB,
            ..s
        };
        let l2 = namespace_layout(&s2, &p).unwrap();
        assert_eq!(l2.range_start_pfn, NS_START / 4096);
        assert_eq!(l2.extents[0].role, Role::AlignPadding);
        assert_eq!(l2.extents[0].pages, 64 * MIB / 4096);
        let e = check_ranges_disjoint(&[ram, l2], &p).unwrap_err();
        assert!(matches!(e, LayoutError::Overlap { .. }), "{e}");
    }
}
