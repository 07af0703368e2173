//! Kernel memmap layout of device memory (pmem namespaces) and hot-added System RAM.
//!
//! Given what a user asks for (`ndctl create-namespace` terms, or a DIMM hot-add), this module
//! computes what the kernel does with it: the pfn info block (`nd_pfn_sb`), the `vmem_altmap`,
//! the pfn range handed to `arch_add_memory()` and `memmap_init_zone_device()`, where every
//! 2 MiB vmemmap block (or base page) comes from, and how many struct pages the init writes.
//!
//! Followed kernel: **Linux 6.1 x86_64** (Debian 12 `linux-image-6.1.0-*`, i.e. 6.1.y stable
//! from 6.1.12 on), with [`LayoutParams::subsection_hotplug`] `= false` selecting the section-granular
//! behaviour of **Linux 5.2** (the last kernel before sub-section hotplug, seed 002). Every rule
//! below names the kernel function it comes from; `docs/layout.md` has the long form.
//!
//! Source checked (file:function, v6.1 unless noted):
//! - `drivers/nvdimm/pfn_devs.c`: `nd_pfn_init`, `__nvdimm_setup_pfn`, `init_altmap_base`,
//!   `init_altmap_reserve`, `nd_info_block_reserve` (`ALIGN(SZ_8K, PAGE_SIZE)`);
//!   v5.2: `trim_pfn_device`, `nd_pfn_init` (section padding, `PFN_SECTION_ALIGN_UP` npfns).
//! - `drivers/nvdimm/nd.h`: `MAX_STRUCT_PAGE_SIZE` (64; 128 in v6.1..v6.1.11, see
//!   [`LayoutParams::max_struct_page_size`]).
//! - `drivers/nvdimm/region_devs.c`: `default_align` (16 MiB region align).
//! - `mm/memremap.c`: `pagemap_range`, `memremap_compat_align` (`SUBSECTION_SIZE` on x86);
//!   v5.2 `kernel/memremap.c`: `devm_memremap_pages` (section-aligned `align_start/align_size`,
//!   "attempted on mixed region", "Conflicting mapping in same section").
//! - `mm/memory_hotplug.c`: `__add_pages`, `check_pfn_span`, `check_hotplug_memory_range`,
//!   `mhp_supports_memmap_on_memory`, `add_memory_resource`, `mhp_init_memmap_on_memory`.
//! - `mm/sparse.c`: `sparse_add_section`, `section_activate`, `fill_subsection_map`.
//! - `mm/sparse-vmemmap.c`: `__populate_section_memmap`, `vmemmap_alloc_block_buf`,
//!   `altmap_alloc_block_buf`, `vmem_altmap_next_pfn`, `vmem_altmap_nr_free`,
//!   `vmemmap_populate_compound_pages`, `reuse_compound_section`.
//! - `arch/x86/mm/init_64.c`: `vmemmap_populate` (base pages from RAM when
//!   `end - start < PAGES_PER_SECTION * sizeof(struct page)`), `vmemmap_populate_hugepages`.
//! - `mm/page_alloc.c`: `memmap_init_zone_device`, `__init_zone_device_page`,
//!   `compound_nr_pages`, `memmap_init_compound`.
//! - `drivers/dax/device.c`: `dev_dax_probe` (`vmemmap_shift = order_base_2(align >> PAGE_SHIFT)`);
//!   `drivers/dax/pmem.c`: `__dax_pmem_probe` (pgmap range = whole namespace, like fsdax).
//!
//! The code is split by what it models: `params` (the kernel parameters, [`LayoutParams`]),
//! `spec` (what the user asks for: [`NamespaceSpec`], [`HotplugSpec`], sizes), `pfn` (the pfn
//! device of a namespace: `nd_pfn_init`), `vmemmap` (the vmemmap populate simulation and the
//! altmap), `namespace` and `hotplug` (the two layouts), `range` (the result, [`RangeLayout`],
//! and whether several ranges can coexist) and `error` ([`LayoutError`]).

mod error;
mod hotplug;
#[cfg(test)]
mod kernel_figures;
mod namespace;
mod params;
mod pfn;
mod range;
mod spec;
mod vmemmap;

use crate::limits;

pub use error::LayoutError;
pub use hotplug::{hotplug_layout, hotplug_layout_in, mhp_supports_memmap_on_memory};
pub use namespace::{namespace_layout, namespace_layout_in};
pub use params::LayoutParams;
pub use range::{check_ranges_disjoint, PageKind, PfnExtent, RangeLayout, Role};
pub use spec::{format_size, parse_size, HotplugSpec, MapLocation, NamespaceSpec, NsMode};
pub use vmemmap::{Altmap, VmemmapBacking, VmemmapBlock, VmemmapBlocks, VmemmapRun, VmemmapState};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

// Arithmetic and checks shared by the submodules.

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

fn align_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// Number of multiples of `a` in [lo, hi).
fn multiples_in(lo: u64, hi: u64, a: u64) -> u64 {
    if hi <= lo {
        0
    } else {
        hi.div_ceil(a) - lo.div_ceil(a)
    }
}

fn check_aligned(
    name: &str,
    what: &'static str,
    addr: u64,
    align: u64,
    rule: &'static str,
) -> Result<(), LayoutError> {
    if !addr.is_multiple_of(align) {
        return Err(LayoutError::Misaligned {
            name: name.to_string(),
            what,
            addr,
            align,
            rule,
        });
    }
    Ok(())
}

/// Checks every range (namespace or hot-added RAM) must pass: valid parameters, a non-empty,
/// page-granular resource whose struct pages are addressable. Returns the resource end.
fn check_resource(name: &str, start: u64, size: u64, p: &LayoutParams) -> Result<u64, LayoutError> {
    p.validate()?;
    if size == 0 {
        return Err(LayoutError::ZeroSize {
            name: name.to_string(),
        });
    }
    check_aligned(
        name,
        "start",
        start,
        p.page_size,
        "resources are page granular",
    )?;
    check_aligned(
        name,
        "size",
        size,
        p.page_size,
        "resources are page granular",
    )?;
    let end = start.checked_add(size).ok_or(LayoutError::Overflow {
        name: name.to_string(),
        what: "range",
        start,
        size,
    })?;
    // Every pfn, struct page offset and vmemmap address below is computed from a range
    // that ends below 2^MAX_PHYSMEM_BITS (4 PiB): pfn * sizeof(struct page) <= 2^52 / 4 KiB
    // * 4 KiB stays far below 2^64, so the arithmetic of the submodules cannot wrap.
    limits::at_most(
        &format!("{name}: start + size"),
        Hex(end),
        Hex(limits::MAX_PHYS_END),
        limits::WHY_PHYS,
    )?;
    limits::at_most(
        &format!("{name}: sections spanned"),
        end.div_ceil(p.section_size) - start / p.section_size,
        limits::MAX_SECTIONS,
        "NR_MEM_SECTIONS = 1 << (MAX_PHYSMEM_BITS - SECTION_SIZE_BITS), 2^25 on x86_64 (include/linux/mmzone.h, 6.1)",
    )?;
    Ok(end)
}

/// A u64 shown as 0x-hex in limit errors.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
struct Hex(u64);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Namespaces and parameters shared by the unit tests of the submodules.
#[cfg(test)]
mod test_fixtures {
    use super::{LayoutParams, MapLocation, NamespaceSpec, NsMode, GIB, MIB};

    pub(super) const NS_START: u64 = 0x1_0000_0000;
    /// QEMU 16 GiB NVDIMM, 128 KiB label area, region align 16 MiB.
    pub(super) const QEMU_16G_NS: u64 = 16 * GIB - 16 * MIB;

    pub(super) fn ns(size: u64, mode: NsMode, map: MapLocation, align: u64) -> NamespaceSpec {
        NamespaceSpec {
            name: "ns0".into(),
            size_bytes: size,
            mode,
            map,
            align_bytes: align,
            node: 0,
            start_phys: NS_START,
        }
    }

    pub(super) fn p61() -> LayoutParams {
        LayoutParams::default()
    }
}
