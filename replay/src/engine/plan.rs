//! Planning: where every namespace's struct pages live inside the target (vmemmap
//! segments at their device or RAM offsets, or compound pages with tail vmemmap reuse),
//! which target extents phase 1 populates, which pfns are initialised and how many
//! records that is, and the pageblock bitmap's extent.

use super::{align_up, BLOCK};
use crate::strategy::Strategy;
use crate::struct_page::{self, PageClass, RECORD_BYTES};
use memmap_model::layout::{NsMode, PageKind, RangeLayout, VmemmapBacking};
use memmap_model::run::RecordFlavor;

/// Where the struct pages of one namespace live inside the target.
#[derive(Clone, Debug)]
pub(super) enum Placement {
    /// Contiguous pfn runs at target offsets (from the layout's vmemmap blocks).
    Segments(Vec<Segment>),
    /// Compound pages with tail vmemmap reuse: compound c's unique records at
    /// `off + c * per * 64`.
    Compound {
        off: u64,
        first_pfn: u64,
        order: u32,
        per: u64,
    },
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Segment {
    pub(super) first_pfn: u64,
    pub(super) nr_pfns: u64,
    pub(super) off: u64,
}

/// Everything fixed about one namespace for the whole run.
pub struct NsPlan {
    pub name: String,
    pub layout: RangeLayout,
    pub(super) class: PageClass,
    /// ZONE_DEVICE or ZONE_NORMAL (the zone in the flags).
    pub(super) zone: u64,
    pub(super) flags: u64,
    /// The pgmap's `percpu_ref` is in atomic mode while the memmap is initialised
    /// (fsdax: the block queue's usage counter, see `page_init::PgmapRef`).
    pub(super) pgmap_ref_atomic: bool,
    /// (order, struct pages written per compound page) when compound pages are used.
    pub(super) compound: Option<(u32, u64)>,
    pub data_start: u64,
    pub data_pages: u64,
    pub(super) placement: Placement,
    /// Target extents of this namespace's memmap (for populate / discard).
    pub(super) extents: Vec<(u64, u64)>,
    pub struct_pages_written: u64,
    /// The altmap's own pfns `move_pfn_range_to_zone` initialises under the hotplug lock
    /// (first pfn, pages); None without an altmap.
    pub altmap_init: Option<(u64, u64)>,
}

/// One namespace's memmap placed in the target: where its records go, the extents to
/// populate, and the target bytes it takes.
struct Placed {
    placement: Placement,
    extents: Vec<(u64, u64)>,
    used: u64,
}

/// Bytes of target needed to hold every namespace's memmap in full.
pub fn full_memmap_bytes(layouts: &[RangeLayout], strategy: Strategy) -> u64 {
    plan_namespaces(layouts, strategy, RecordFlavor::DeviceData)
        .map(|(_, total)| total)
        .unwrap_or(0)
}

/// Plan every namespace, one after the other in the target; returns the plans and the
/// target bytes they need.
pub(super) fn plan_namespaces(
    layouts: &[RangeLayout],
    strategy: Strategy,
    flavor: RecordFlavor,
) -> anyhow::Result<(Vec<NsPlan>, u64)> {
    let mut plans = Vec::new();
    let mut next_off = 0u64;
    for (i, l) in layouts.iter().enumerate() {
        let (class, flags) = page_class_and_flags(l, i, flavor);
        let compound = if strategy.uses_compound() && l.compound_order > 0 {
            Some((l.compound_order, l.struct_pages_per_compound))
        } else {
            None
        };
        let base = next_off;
        let placed = match compound {
            Some((order, per)) if per < (1u64 << order) => compound_placement(l, base, order, per),
            _ => segment_placement(l, base)?,
        };
        next_off = base + placed.used;
        plans.push(NsPlan::new(l, class, flags, compound, placed));
    }
    Ok((plans, next_off))
}

/// The page class (ZONE_DEVICE with namespace i's fake pgmap, or System RAM) and the
/// flags word every record of the namespace starts from.
fn page_class_and_flags(l: &RangeLayout, i: usize, flavor: RecordFlavor) -> (PageClass, u64) {
    let class = match l.kind {
        PageKind::ZoneDevice => PageClass::Device {
            pgmap: struct_page::PGMAP_BASE + i as u64 * 0x1000,
            flavor,
        },
        PageKind::SystemRam => PageClass::SystemRam,
    };
    let zone = match l.kind {
        PageKind::ZoneDevice => struct_page::ZONE_DEVICE,
        PageKind::SystemRam => struct_page::ZONE_NORMAL,
    };
    (class, struct_page::base_flags(zone, l.node))
}

/// Compound pages with tail vmemmap reuse: only `per` records per compound page are
/// unique, packed one compound after the other from `base`.
fn compound_placement(l: &RangeLayout, base: u64, order: u32, per: u64) -> Placed {
    let ncomp = l.data_pages >> order;
    let len = align_up(ncomp * per * RECORD_BYTES as u64, BLOCK);
    Placed {
        placement: Placement::Compound {
            off: base,
            first_pfn: l.data_start_pfn,
            order,
            per,
        },
        extents: vec![(base, len)],
        used: len,
    }
}

/// Every vmemmap block of the layout as a segment of pfns at its target offset.
fn segment_placement(l: &RangeLayout, base: u64) -> anyhow::Result<Placed> {
    // Device (altmap) blocks sit at their device offsets inside an area that
    // stands for the namespace's first bytes. RAM-backed struct pages (map=mem,
    // partial sections' base pages, memmap_on_memory) follow, one 2 MiB slot per
    // vmemmap PMD block holding them, at the struct page's offset in that block.
    let pmd_pfns = BLOCK / RECORD_BYTES as u64;
    let dev_len = altmap_area_len(l);
    let ram_base = base + dev_len;
    // RAM-backed 2 MiB vmemmap blocks get slots in order of appearance, so an
    // altmap namespace's few RAM blocks (partial sections) take a few slots
    // rather than the whole vmemmap span.
    let mut ram_slots: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut segs = Vec::new();
    let mut extents: Vec<(u64, u64)> = Vec::new();
    for b in l.vmemmap_blocks.iter().filter(|b| b.nr_pfns > 0) {
        let off = match b.backing {
            VmemmapBacking::Altmap { .. } => {
                let (_, o) = l.memmap_offset_of(b.first_pfn).ok_or_else(|| {
                    anyhow::anyhow!("{}: pfn {:#x} has no memmap", l.name, b.first_pfn)
                })?;
                base + o
            }
            _ => {
                let block = b.first_pfn / pmd_pfns;
                anyhow::ensure!(
                    (b.first_pfn + b.nr_pfns - 1) / pmd_pfns == block,
                    "{}: RAM vmemmap block at pfn {:#x} crosses a 2 MiB vmemmap block",
                    l.name,
                    b.first_pfn
                );
                // A map, not a search of the list: 512 Ki blocks (64 TiB map=mem) made
                // the linear search quadratic (minutes in prepare).
                let next = ram_slots.len() as u64;
                let slot = *ram_slots.entry(block).or_insert(next);
                ram_base + slot * BLOCK + (b.first_pfn % pmd_pfns) * RECORD_BYTES as u64
            }
        };
        segs.push(Segment {
            first_pfn: b.first_pfn,
            nr_pfns: b.nr_pfns,
            off,
        });
        // Populate whole pages (2 MiB blocks for PMD mappings).
        let unit = if b.bytes >= BLOCK { BLOCK } else { 4096 };
        let a = off - (off - base) % unit;
        let e = align_up(off + b.nr_pfns * RECORD_BYTES as u64 - base, unit) + base;
        extents.push((a, e - a));
    }
    Ok(Placed {
        placement: Placement::Segments(segs),
        extents: merge_extents(extents),
        used: dev_len + ram_slots.len() as u64 * BLOCK,
    })
}

/// Length of the area standing for the device's own bytes: up to the end of the last
/// altmap block, whole 2 MiB blocks (0 without an altmap).
fn altmap_area_len(l: &RangeLayout) -> u64 {
    let dev_len = l
        .vmemmap_blocks
        .iter()
        .filter_map(|b| match b.backing {
            VmemmapBacking::Altmap {
                device_offset_bytes,
            } => Some(device_offset_bytes + b.bytes),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    align_up(dev_len, BLOCK)
}

/// Sorted extents with overlapping or touching ones merged.
fn merge_extents(mut extents: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    extents.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, n) in extents {
        match merged.last_mut() {
            Some(last) if last.0 + last.1 >= a => last.1 = last.1.max(a + n - last.0),
            _ => merged.push((a, n)),
        }
    }
    merged
}

impl NsPlan {
    fn new(
        l: &RangeLayout,
        class: PageClass,
        flags: u64,
        compound: Option<(u32, u64)>,
        placed: Placed,
    ) -> NsPlan {
        // Hot-added RAM: online_pages initialises every pfn of the range, and with
        // memmap_on_memory mhp_init_memmap_on_memory also initialises the block's own
        // vmemmap pages (as pageblocks of their own; the replay marks them movable too).
        let (data_start, data_pages) = match l.kind {
            PageKind::SystemRam => (l.range_start_pfn, l.range_pages),
            PageKind::ZoneDevice => (l.data_start_pfn, l.data_pages),
        };
        let struct_pages_written = match compound {
            Some((order, per)) => (data_pages >> order) * per,
            None => data_pages,
        };
        NsPlan {
            name: l.name.clone(),
            layout: l.clone(),
            class,
            zone: match l.kind {
                PageKind::ZoneDevice => struct_page::ZONE_DEVICE,
                PageKind::SystemRam => struct_page::ZONE_NORMAL,
            },
            flags,
            pgmap_ref_atomic: l
                .namespace
                .as_ref()
                .is_some_and(|ns| ns.mode == NsMode::Fsdax),
            compound,
            data_start,
            data_pages,
            placement: placed.placement,
            extents: placed.extents,
            struct_pages_written,
            altmap_init: match l.kind {
                PageKind::ZoneDevice => l.altmap_init_range(),
                PageKind::SystemRam => None,
            },
        }
    }
}
