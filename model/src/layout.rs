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

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Architecture / kernel parameters; Default = x86_64, Linux 6.1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LayoutParams {
    /// `PAGE_SIZE` (4096).
    pub page_size: u64,
    /// `sizeof(struct page)` of the running kernel (64).
    pub struct_page_size: u64,
    /// `1 << SECTION_SIZE_BITS` (128 MiB on x86_64).
    pub section_size: u64,
    /// `1 << SUBSECTION_SHIFT` (2 MiB).
    pub subsection_size: u64,
    /// `pageblock_nr_pages` (512).
    pub pageblock_pages: u64,
    /// `memory_block_size_bytes()` (128 MiB on small x86_64 machines, up to 2 GiB).
    pub memory_block_size: u64,
    /// `PMD_SIZE`: unit of `vmemmap_populate_hugepages` (2 MiB).
    pub vmemmap_block_size: u64,
    /// `SZ_8K`: info block area at the start of a pfn namespace (`nd_info_block_reserve()`
    /// rounds it up to a page).
    pub info_block_size: u64,
    /// `memremap_compat_align()`: `SUBSECTION_SIZE` (2 MiB) on x86.
    pub compat_align: u64,
    /// `default_align()` of a pmem region (`MEMREMAP_COMPAT_ALIGN_MAX` = 16 MiB): namespace
    /// sizes are multiples of it.
    pub region_align: u64,
    /// true: Linux >= 5.3 sub-section hotplug (6.1 rules); false: section-granular (5.2 rules).
    pub subsection_hotplug: bool,
    /// `memory_hotplug.memmap_on_memory=1` (MHP_MEMMAP_ON_MEMORY) for hot-added System RAM.
    pub memmap_on_memory: bool,
    /// `MAX_STRUCT_PAGE_SIZE` (drivers/nvdimm/nd.h) used by `nd_pfn_init` to size the altmap.
    /// 64, except v6.1..v6.1.11 where commit 6e9f05dc66f9 (KMSAN) made it 128; reverted by
    /// c91d71363084 in 6.2 and 6.1.12 stable ("nvdimm: Support sizeof(struct page) >
    /// MAX_STRUCT_PAGE_SIZE"). 128 doubles the altmap (dataoff 512 MiB for 16 GiB).
    pub max_struct_page_size: u64,
    /// Pre-5.3 only: `trim_pfn_device` (v5.2) pads an unaligned namespace start / truncates an
    /// unaligned end to the section only when that section collides with System RAM or
    /// another namespace/region. true (default) assumes such a collision, so namespaces are
    /// padded to sections; false models a namespace alone in its sections: the whole
    /// sections around it are hot-added (the altmap reserve covers the head) and
    /// [`check_ranges_disjoint`] reports neighbours sharing a section ("mixed region").
    pub pre53_trim_unaligned: bool,
}

impl Default for LayoutParams {
    fn default() -> Self {
        LayoutParams {
            page_size: 4096,
            struct_page_size: 64,
            section_size: 128 * MIB,
            subsection_size: 2 * MIB,
            pageblock_pages: 512,
            memory_block_size: 128 * MIB,
            vmemmap_block_size: 2 * MIB,
            info_block_size: 8 * KIB,
            compat_align: 2 * MIB,
            region_align: 16 * MIB,
            subsection_hotplug: true,
            memmap_on_memory: false,
            max_struct_page_size: 64,
            pre53_trim_unaligned: true,
        }
    }
}

impl LayoutParams {
    /// x86_64 Linux 6.1 (same as `Default`).
    pub fn linux_6_1() -> Self {
        Self::default()
    }

    /// x86_64 Linux 5.2: section-granular hotplug, no memmap_on_memory.
    pub fn pre_5_3() -> Self {
        LayoutParams {
            subsection_hotplug: false,
            memmap_on_memory: false,
            ..Self::default()
        }
    }

    /// Pages in `bytes` (rounded down, `PHYS_PFN`).
    pub fn pages(&self, bytes: u64) -> u64 {
        bytes / self.page_size
    }

    /// `PAGES_PER_SECTION`.
    pub fn section_pages(&self) -> u64 {
        self.section_size / self.page_size
    }

    /// `PAGES_PER_SUBSECTION`.
    pub fn subsection_pages(&self) -> u64 {
        self.subsection_size / self.page_size
    }

    /// `PUD_SIZE` (1 GiB on x86_64 with 4K pages): PMD size times entries per table page.
    pub fn pud_size(&self) -> u64 {
        self.vmemmap_block_size * (self.page_size / 8)
    }

    /// `nd_info_block_reserve()`: `ALIGN(SZ_8K, PAGE_SIZE)`.
    pub fn info_block_reserve(&self) -> u64 {
        align_up(self.info_block_size, self.page_size)
    }

    /// Short description of the rules followed, e.g. "linux-6.1 x86_64 sub-section hotplug".
    pub fn kernel_rules(&self) -> String {
        let mut s = if self.subsection_hotplug {
            "linux-6.1 x86_64 sub-section hotplug".to_string()
        } else {
            "linux-5.2 x86_64 section-granular hotplug (pre-5.3)".to_string()
        };
        if self.max_struct_page_size != 64 {
            s.push_str(&format!(
                ", MAX_STRUCT_PAGE_SIZE {}",
                self.max_struct_page_size
            ));
        }
        if self.memmap_on_memory && self.subsection_hotplug {
            s.push_str(", memmap_on_memory");
        }
        s
    }

    /// Checks that the parameters describe a machine this model can compute.
    pub fn validate(&self) -> Result<(), LayoutError> {
        let pow2 = |field: &'static str, v: u64| {
            if v == 0 || !v.is_power_of_two() {
                Err(LayoutError::BadParams {
                    field,
                    reason: format!("{v} is not a power of two"),
                })
            } else {
                Ok(())
            }
        };
        pow2("page_size", self.page_size)?;
        pow2("section_size", self.section_size)?;
        pow2("subsection_size", self.subsection_size)?;
        pow2("pageblock_pages", self.pageblock_pages)?;
        pow2("memory_block_size", self.memory_block_size)?;
        pow2("vmemmap_block_size", self.vmemmap_block_size)?;
        pow2("compat_align", self.compat_align)?;
        pow2("region_align", self.region_align)?;
        let divides = |field: &'static str, small: u64, big: u64, what: &str| {
            if small == 0 || !big.is_multiple_of(small) {
                Err(LayoutError::BadParams {
                    field,
                    reason: format!("{small} must divide {what} ({big})"),
                })
            } else {
                Ok(())
            }
        };
        divides(
            "struct_page_size",
            self.struct_page_size,
            self.page_size,
            "page_size",
        )?;
        divides(
            "page_size",
            self.page_size,
            self.subsection_size,
            "subsection_size",
        )?;
        divides(
            "subsection_size",
            self.subsection_size,
            self.section_size,
            "section_size",
        )?;
        divides(
            "section_size",
            self.section_size,
            self.memory_block_size,
            "memory_block_size",
        )?;
        divides(
            "page_size",
            self.page_size,
            self.vmemmap_block_size,
            "vmemmap_block_size",
        )?;
        divides(
            "page_size",
            self.page_size,
            self.compat_align,
            "compat_align",
        )?;
        if self.max_struct_page_size == 0 {
            return Err(LayoutError::BadParams {
                field: "max_struct_page_size",
                reason: "must not be 0".into(),
            });
        }
        Ok(())
    }
}

/// Namespace mode (`ndctl create-namespace --mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsMode {
    Raw,
    Sector,
    Fsdax,
    Devdax,
}

impl fmt::Display for NsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NsMode::Raw => "raw",
            NsMode::Sector => "sector",
            NsMode::Fsdax => "fsdax",
            NsMode::Devdax => "devdax",
        })
    }
}

impl FromStr for NsMode {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "raw" => Ok(NsMode::Raw),
            "sector" | "safe" => Ok(NsMode::Sector),
            "fsdax" | "memory" => Ok(NsMode::Fsdax),
            "devdax" | "dax" => Ok(NsMode::Devdax),
            _ => Err(bad_field("namespace", "mode", s)),
        }
    }
}

/// Where an fsdax/devdax namespace keeps its memmap (`ndctl create-namespace --map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapLocation {
    /// System RAM (`PFN_MODE_RAM`, no altmap).
    Mem,
    /// The namespace itself through the `vmem_altmap` (`PFN_MODE_PMEM`).
    Dev,
}

impl fmt::Display for MapLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MapLocation::Mem => "mem",
            MapLocation::Dev => "dev",
        })
    }
}

impl FromStr for MapLocation {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mem" => Ok(MapLocation::Mem),
            "dev" => Ok(MapLocation::Dev),
            _ => Err(bad_field("namespace", "map", s)),
        }
    }
}

/// What the user asks for (ndctl create-namespace terms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamespaceSpec {
    pub name: String,
    /// Namespace resource size (after the region/label layer; a multiple of the region align).
    pub size_bytes: u64,
    pub mode: NsMode,
    pub map: MapLocation,
    /// `nd_pfn->align` (4K, 2M or 1G on x86_64).
    pub align_bytes: u64,
    pub node: u32,
    /// Physical start of the namespace resource.
    pub start_phys: u64,
}

impl NamespaceSpec {
    /// The namespace ndctl creates over a whole region: the region size rounded down to the
    /// region align (`default_align()`, 16 MiB). A QEMU 16 GiB NVDIMM with a 128 KiB label
    /// area has a 16 GiB - 128 KiB region, hence a 16 GiB - 16 MiB namespace.
    pub fn whole_region(
        name: &str,
        region_start: u64,
        region_bytes: u64,
        mode: NsMode,
        map: MapLocation,
        align_bytes: u64,
        params: &LayoutParams,
    ) -> Self {
        NamespaceSpec {
            name: name.to_string(),
            size_bytes: align_down(region_bytes, params.region_align),
            mode,
            map,
            align_bytes,
            node: 0,
            start_phys: region_start,
        }
    }
}

/// "size=16G,mode=fsdax,map=dev,align=2M[,start=0x100000000][,node=0][,name=ns0]"; defaults:
/// mode=fsdax map=dev align=2M start=0x100000000 node=0 name=ns0; sizes accept K/M/G/T
/// suffixes (binary) and hex/decimal bytes.
impl FromStr for NamespaceSpec {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        const KIND: &str = "namespace";
        const KNOWN: &str = "size, mode, map, align, start, node, name";
        let mut spec = NamespaceSpec {
            name: "ns0".into(),
            size_bytes: 0,
            mode: NsMode::Fsdax,
            map: MapLocation::Dev,
            align_bytes: 2 * MIB,
            node: 0,
            start_phys: 0x1_0000_0000,
        };
        let mut have_size = false;
        for (key, value) in split_spec(KIND, s)? {
            match key.as_str() {
                "size" => {
                    spec.size_bytes = parse_field(KIND, "size", &value)?;
                    have_size = true;
                }
                "mode" => spec.mode = value.parse()?,
                "map" => spec.map = value.parse()?,
                "align" => spec.align_bytes = parse_field(KIND, "align", &value)?,
                "start" => spec.start_phys = parse_field(KIND, "start", &value)?,
                "node" => spec.node = parse_node(KIND, &value)?,
                "name" => spec.name = parse_name(KIND, &value)?,
                _ => {
                    return Err(LayoutError::UnknownField {
                        kind: KIND,
                        field: key,
                        known: KNOWN,
                    })
                }
            }
        }
        if !have_size {
            return Err(LayoutError::MissingField {
                kind: KIND,
                field: "size",
            });
        }
        Ok(spec)
    }
}

/// System RAM hot-add (ACPI pc-dimm, virtio-mem...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HotplugSpec {
    pub name: String,
    pub start_phys: u64,
    pub size_bytes: u64,
    pub node: u32,
}

/// "start=0x500000000,size=1G[,node=0][,name=dimm0]" (start and size required).
impl FromStr for HotplugSpec {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        const KIND: &str = "hotplug";
        const KNOWN: &str = "start, size, node, name";
        let mut spec = HotplugSpec {
            name: "dimm0".into(),
            start_phys: 0,
            size_bytes: 0,
            node: 0,
        };
        let (mut have_start, mut have_size) = (false, false);
        for (key, value) in split_spec(KIND, s)? {
            match key.as_str() {
                "start" => {
                    spec.start_phys = parse_field(KIND, "start", &value)?;
                    have_start = true;
                }
                "size" => {
                    spec.size_bytes = parse_field(KIND, "size", &value)?;
                    have_size = true;
                }
                "node" => spec.node = parse_node(KIND, &value)?,
                "name" => spec.name = parse_name(KIND, &value)?,
                _ => {
                    return Err(LayoutError::UnknownField {
                        kind: KIND,
                        field: key,
                        known: KNOWN,
                    })
                }
            }
        }
        if !have_start {
            return Err(LayoutError::MissingField {
                kind: KIND,
                field: "start",
            });
        }
        if !have_size {
            return Err(LayoutError::MissingField {
                kind: KIND,
                field: "size",
            });
        }
        Ok(spec)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    ZoneDevice,
    SystemRam,
}

/// `struct vmem_altmap` after vmemmap populate (include/linux/memremap.h). `align` and
/// `alloc` are what `altmap_alloc_block_buf` used; pfns below `base_pfn + reserve + free`
/// (`vmem_altmap_offset`) are not initialised as data pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Altmap {
    pub base_pfn: u64,
    pub reserve: u64,
    pub free: u64,
    pub align: u64,
    pub alloc: u64,
}

impl Altmap {
    /// `vmem_altmap_offset()`: `reserve + free`.
    pub fn offset(&self) -> u64 {
        self.reserve + self.free
    }

    /// `vmem_altmap_next_pfn()`.
    pub fn next_pfn(&self) -> u64 {
        self.base_pfn + self.reserve + self.alloc + self.align
    }

    /// `vmem_altmap_nr_free()`.
    pub fn nr_free(&self) -> u64 {
        self.free.saturating_sub(self.alloc + self.align)
    }

    /// `altmap_alloc_block_buf()` (mm/sparse-vmemmap.c, 6.1): the first allocation is aligned
    /// to its own size (`nr_align = ALIGN(pfn, nr_pfns) - pfn`, counted against `free`).
    /// Returns the first pfn of the block, or None when the altmap is exhausted.
    pub fn alloc_block(&mut self, nr_pfns: u64) -> Option<u64> {
        let pfn = self.next_pfn();
        let unit = 1u64 << nr_pfns.trailing_zeros(); // find_first_bit(&nr_pfns)
        let nr_align = align_up(pfn, unit) - pfn;
        if nr_pfns + nr_align > self.nr_free() {
            return None;
        }
        self.alloc += nr_pfns;
        self.align += nr_align;
        Some(pfn + nr_align)
    }
}

/// Where the backing of one vmemmap block comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum VmemmapBacking {
    /// A PMD block allocated from the namespace through the altmap; offset from the start of
    /// the namespace resource.
    Altmap { device_offset_bytes: u64 },
    /// A PMD block allocated from System RAM (`vmemmap_alloc_block_buf` without altmap).
    Ram,
    /// 4 KiB pages from System RAM (`vmemmap_populate_basepages`, or the compound-page
    /// path `vmemmap_populate_compound_pages`).
    RamBasePages,
    /// memmap_on_memory: a PMD block taken from the start of the hot-added memory block;
    /// offset from the start of that block.
    MemoryBlock { block_offset_bytes: u64 },
}

/// One vmemmap mapping unit: the struct pages of pfns [first_pfn, first_pfn+nr_pfns) live
/// here, contiguous, `bytes` long (2 MiB for a PMD block; for base pages the bytes actually
/// mapped; for devdax compound pages with tail reuse the unique bytes allocated, 2 pages per
/// compound page, 0 for sections whose whole vmemmap reuses an earlier tail page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmemmapBlock {
    pub first_pfn: u64,
    pub nr_pfns: u64,
    pub bytes: u64,
    pub backing: VmemmapBacking,
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
    pub vmemmap_blocks: Vec<VmemmapBlock>,
    /// Roles over [res_start, res_end) (plus any pre-5.3 section padding outside it), in pfn
    /// order, for the viewer.
    pub extents: Vec<PfnExtent>,
    /// E.g. "linux-6.1 x86_64 sub-section hotplug".
    pub kernel_rules: String,
}

impl RangeLayout {
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
    pub fn vmemmap_block_of(&self, pfn: u64) -> Option<&VmemmapBlock> {
        let i = self
            .vmemmap_blocks
            .partition_point(|b| b.first_pfn + b.nr_pfns <= pfn);
        self.vmemmap_blocks
            .get(i)
            .filter(|b| b.first_pfn <= pfn && pfn < b.first_pfn + b.nr_pfns)
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
        for b in &self.vmemmap_blocks {
            match b.backing {
                VmemmapBacking::Altmap { .. } => c.0 += 1,
                VmemmapBacking::Ram => c.1 += 1,
                VmemmapBacking::RamBasePages => c.2 += 1,
                VmemmapBacking::MemoryBlock { .. } => c.3 += 1,
            }
        }
        c
    }
}

/// Errors name the kernel rule (function) that refuses the layout.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum LayoutError {
    #[error("invalid size {input:?}: {reason} (expected bytes as decimal or 0x-hex, optionally with a binary K/M/G/T suffix, e.g. 16G)")]
    BadSize { input: String, reason: String },
    #[error(
        "bad {kind} spec field `{field}`={value:?}: expected {}",
        expected_for(field)
    )]
    BadSpecField {
        kind: &'static str,
        field: String,
        value: String,
    },
    #[error("{kind} spec is missing `{field}=`")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },
    #[error("unknown {kind} spec field `{field}` (known: {known})")]
    UnknownField {
        kind: &'static str,
        field: String,
        known: &'static str,
    },
    #[error("bad layout parameter {field}: {reason}")]
    BadParams { field: &'static str, reason: String },
    #[error("{name}: size must not be 0")]
    ZeroSize { name: String },
    #[error("{name}: {what} {addr:#x} is not aligned to {align:#x} ({rule})")]
    Misaligned {
        name: String,
        what: &'static str,
        addr: u64,
        align: u64,
        rule: &'static str,
    },
    #[error("{name}: align {align:#x} is not a supported pfn alignment ({supported}) (nd_pfn align_store: nd_pfn_supported_alignments)")]
    UnsupportedAlign {
        name: String,
        align: u64,
        supported: String,
    },
    #[error("{name}: unable to satisfy requested alignment: dataoff {offset:#x} leaves no data in size {size:#x} (start_pad {start_pad:#x}, end_trunc {end_trunc:#x}) (nd_pfn_init)")]
    UnableToSatisfyAlignment {
        name: String,
        offset: u64,
        size: u64,
        start_pad: u64,
        end_trunc: u64,
    },
    #[error("{name}: dax device of size 0: dataoff {dataoff:#x} covers the whole {range_bytes:#x}-byte range, dev_dax_probe never maps it (__dax_pmem_probe)")]
    ZeroSizeDevice {
        name: String,
        dataoff: u64,
        range_bytes: u64,
    },
    #[error("{name}: Memory debug options prevent using pmem for the page map: sizeof(struct page) {struct_page_size} > MAX_STRUCT_PAGE_SIZE {max} (nd_pfn_init)")]
    StructPageTooLarge {
        name: String,
        struct_page_size: u64,
        max: u64,
    },
    #[error("{name}: memory add fail, invalid altmap: base_pfn {base_pfn:#x} vs range start {start_pfn:#x}, offset {offset} vs {nr_pages} pages (__add_pages)")]
    InvalidAltmap {
        name: String,
        base_pfn: u64,
        start_pfn: u64,
        offset: u64,
        nr_pages: u64,
    },
    #[error("{name}: vmemmap_populate: altmap exhausted at pfn {pfn:#x}: needs {needed} pfns, {free} left of free {total_free} (altmap_alloc_block_buf -> -ENOMEM, no fallback)")]
    AltmapExhausted {
        name: String,
        pfn: u64,
        needed: u64,
        free: u64,
        total_free: u64,
    },
    #[error("{name}: Block size [{block:#x}] unaligned hotplug range: start {start:#x}, size {size:#x} (check_hotplug_memory_range)")]
    HotplugMisaligned {
        name: String,
        block: u64,
        start: u64,
        size: u64,
    },
    #[error("{name}: {what} {start:#x}+{size:#x} overflows the physical address space")]
    Overflow {
        name: String,
        what: &'static str,
        start: u64,
        size: u64,
    },
    #[error("{name}: size {size:#x} is larger than the region's {available:#x} bytes available at {start:#x} (namespace_devs.c: __size_store / nd_pmem_available_dpa)")]
    LargerThanRegion {
        name: String,
        start: u64,
        size: u64,
        available: u64,
    },
    #[error("{a} and {b} overlap in pfns [{start_pfn:#x}, {end_pfn:#x}) (pagemap_range: Conflicting mapping / region_intersects)")]
    Overlap {
        a: String,
        b: String,
        start_pfn: u64,
        end_pfn: u64,
    },
    #[error("{a} and {b} share section {section_pfn:#x}: mixed region, section-granular hotplug cannot map both (pre-5.3 devm_memremap_pages: \"attempted on mixed region\" / \"Conflicting mapping in same section\")")]
    MixedSection {
        a: String,
        b: String,
        section_pfn: u64,
    },
    #[error("{a} and {b} share sub-section {subsection_pfn:#x} (fill_subsection_map: -EEXIST)")]
    SubsectionConflict {
        a: String,
        b: String,
        subsection_pfn: u64,
    },
}

// ------------------------------------------------------------------------------------------
// sizes

/// Parses "16G", "2M", "8K", "1T", "16GiB", "0x100000000", "4096" (binary suffixes,
/// case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, LayoutError> {
    let err = |reason: &str| LayoutError::BadSize {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let hex = hex.replace('_', "");
        return u64::from_str_radix(&hex, 16).map_err(|_| err("not a hex number"));
    }
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], KIB),
        Some('m') => (&body[..body.len() - 1], MIB),
        Some('g') => (&body[..body.len() - 1], GIB),
        Some('t') => (&body[..body.len() - 1], TIB),
        Some(c) if c.is_ascii_digit() => (body, 1),
        _ => return Err(err("unknown unit")),
    };
    let digits = digits.trim().replace('_', "");
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(err("not a number"));
    }
    let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
    n.checked_mul(mult).ok_or_else(|| err("too large"))
}

/// "16 GiB", "2 MiB", "8 KiB", "1792 KiB", "100 B": the largest binary unit that divides the
/// value exactly.
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {}", bytes / unit, name);
        }
    }
    format!("{bytes} B")
}

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

fn bad_field(kind: &'static str, field: &str, value: &str) -> LayoutError {
    LayoutError::BadSpecField {
        kind,
        field: field.to_string(),
        value: value.to_string(),
    }
}

/// The expected form of a spec field, for [`LayoutError::BadSpecField`].
fn expected_for(field: &str) -> &'static str {
    match field {
        "size" | "start" | "align" => {
            "bytes as decimal or 0x-hex, optionally with a binary K/M/G/T suffix (e.g. 16G, 0x100000000)"
        }
        "mode" => "raw, sector, fsdax or devdax",
        "map" => "mem or dev",
        "node" => "a NUMA node number",
        "name" => "a non-empty name",
        _ => "key=value",
    }
}

fn split_spec(kind: &'static str, s: &str) -> Result<Vec<(String, String)>, LayoutError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(bad_field(kind, part, ""));
        };
        out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(out)
}

fn parse_field(kind: &'static str, field: &str, value: &str) -> Result<u64, LayoutError> {
    parse_size(value).map_err(|_| bad_field(kind, field, value))
}

fn parse_node(kind: &'static str, value: &str) -> Result<u32, LayoutError> {
    value.parse().map_err(|_| bad_field(kind, "node", value))
}

fn parse_name(kind: &'static str, value: &str) -> Result<String, LayoutError> {
    if value.is_empty() {
        Err(bad_field(kind, "name", value))
    } else {
        Ok(value.to_string())
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

// ------------------------------------------------------------------------------------------
// vmemmap populate simulation

/// The kernel's vmemmap page tables as left by earlier hot-adds: lets layouts added one
/// after the other share a PTE table, a base page or a PMD block of the vmemmap (e.g. two
/// namespaces meeting inside a section, as `ndctl create-namespace` twice in one region).
/// [`namespace_layout`] and [`hotplug_layout`] start from an empty state.
#[derive(Clone, Debug, Default)]
pub struct VmemmapState {
    /// PMD slots of the vmemmap holding a PTE table.
    pte_slots: HashSet<u64>,
    /// vmemmap pages (index = vmemmap offset / page size) mapped by base pages.
    base_pages: HashSet<u64>,
    /// PMD slots mapped by a huge PMD, and its backing.
    pmd_slots: HashMap<u64, VmemmapBacking>,
}

impl VmemmapState {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Where altmap offsets are measured from.
#[derive(Clone, Copy)]
enum AltmapOrigin {
    Device(u64),
    MemoryBlock(u64),
}

struct VmemmapSim<'a> {
    p: &'a LayoutParams,
    name: &'a str,
    blocks: Vec<VmemmapBlock>,
    pmd_blocks: HashMap<u64, usize>,
    state: &'a mut VmemmapState,
    altmap: Option<Altmap>,
    origin: AltmapOrigin,
    bytes_device: u64,
    bytes_ram: u64,
    pagetable_bytes: u64,
    /// (first pfn, pfns) of every altmap PMD allocation, in allocation order.
    altmap_blocks: Vec<(u64, u64)>,
}

impl<'a> VmemmapSim<'a> {
    fn new(
        p: &'a LayoutParams,
        name: &'a str,
        altmap: Option<Altmap>,
        origin: AltmapOrigin,
        state: &'a mut VmemmapState,
    ) -> Self {
        VmemmapSim {
            p,
            name,
            blocks: Vec::new(),
            pmd_blocks: HashMap::new(),
            state,
            altmap,
            origin,
            bytes_device: 0,
            bytes_ram: 0,
            pagetable_bytes: 0,
            altmap_blocks: Vec::new(),
        }
    }

    fn pte_tables_for(&mut self, va_start: u64, va_end: u64) {
        let pmd = self.p.vmemmap_block_size;
        for slot in va_start / pmd..va_end.div_ceil(pmd) {
            if self.state.pte_slots.insert(slot) {
                self.pagetable_bytes += self.p.page_size;
            }
        }
    }

    /// `__add_pages` (mm/memory_hotplug.c): one `sparse_add_section` per section-bounded chunk.
    /// Returns the number of chunks.
    fn add_pages(
        &mut self,
        start_pfn: u64,
        nr_pages: u64,
        compound: Option<(u64, u64)>,
    ) -> Result<u64, LayoutError> {
        let spp = self.p.section_pages();
        let end = start_pfn + nr_pages;
        let mut pfn = start_pfn;
        let mut chunks = 0;
        while pfn < end {
            let cur = (end - pfn).min(align_down(pfn + spp, spp) - pfn);
            self.populate_section_memmap(pfn, cur, compound)?;
            chunks += 1;
            pfn += cur;
        }
        Ok(chunks)
    }

    /// `__populate_section_memmap` (mm/sparse-vmemmap.c, 6.1): compound devmaps without an
    /// altmap take `vmemmap_populate_compound_pages`, everything else `vmemmap_populate`.
    fn populate_section_memmap(
        &mut self,
        pfn: u64,
        nr: u64,
        compound: Option<(u64, u64)>,
    ) -> Result<(), LayoutError> {
        if let Some((range_start, cp)) = compound {
            if self.altmap.is_none() && self.p.struct_page_size.is_power_of_two() {
                self.populate_compound(pfn, nr, range_start, cp);
                return Ok(());
            }
        }
        self.vmemmap_populate(pfn, nr)
    }

    /// `vmemmap_populate` (arch/x86/mm/init_64.c, 6.1): a chunk whose memmap is smaller than a
    /// section's gets base pages from RAM (never the altmap); else PMD blocks. v5.2 had no
    /// base-page rule (chunks were whole sections).
    fn vmemmap_populate(&mut self, pfn: u64, nr: u64) -> Result<(), LayoutError> {
        let sps = self.p.struct_page_size;
        if self.p.subsection_hotplug && nr * sps < self.p.section_pages() * sps {
            self.populate_basepages(pfn, nr);
            Ok(())
        } else {
            self.populate_hugepages(pfn, nr)
        }
    }

    /// `vmemmap_populate_basepages(start, end, node, NULL)`: 4 KiB pages from RAM; pages
    /// already mapped are reused.
    fn populate_basepages(&mut self, pfn: u64, nr: u64) {
        let (ps, sps) = (self.p.page_size, self.p.struct_page_size);
        let (va_s, va_e) = (pfn * sps, (pfn + nr) * sps);
        let (first, last) = (va_s / ps, va_e.div_ceil(ps));
        for pg in first..last {
            if self.state.base_pages.insert(pg) {
                self.bytes_ram += ps;
            }
        }
        self.pte_tables_for(va_s, va_e);
        self.blocks.push(VmemmapBlock {
            first_pfn: pfn,
            nr_pfns: nr,
            bytes: (last - first) * ps,
            backing: VmemmapBacking::RamBasePages,
        });
    }

    /// `vmemmap_populate_hugepages` (x86, 6.1): per PMD: reuse a populated huge PMD, else
    /// `vmemmap_alloc_block_buf(PMD_SIZE, node, altmap)`: altmap -> `altmap_alloc_block_buf`
    /// (no fallback: -ENOMEM), no altmap -> RAM.
    fn populate_hugepages(&mut self, pfn: u64, nr: u64) -> Result<(), LayoutError> {
        let (ps, sps, pmd) = (
            self.p.page_size,
            self.p.struct_page_size,
            self.p.vmemmap_block_size,
        );
        let va_e = (pfn + nr) * sps;
        let mut addr = pfn * sps;
        while addr < va_e {
            let slot = addr / pmd;
            let next = ((slot + 1) * pmd).min(va_e);
            let (bpfn, bnr) = (addr / sps, (next - addr) / sps);
            if let Some(&i) = self.pmd_blocks.get(&slot) {
                let is_last = i + 1 == self.blocks.len();
                let b = &mut self.blocks[i];
                if b.first_pfn + b.nr_pfns == bpfn && is_last {
                    b.nr_pfns += bnr;
                } else {
                    let backing = b.backing;
                    self.blocks.push(VmemmapBlock {
                        first_pfn: bpfn,
                        nr_pfns: bnr,
                        bytes: 0,
                        backing,
                    });
                }
            } else if let Some(&backing) = self.state.pmd_slots.get(&slot) {
                // populated by an earlier range: vmemmap_verify + vmemmap_use_sub_pmd
                self.blocks.push(VmemmapBlock {
                    first_pfn: bpfn,
                    nr_pfns: bnr,
                    bytes: 0,
                    backing,
                });
            } else if self.state.pte_slots.contains(&slot) {
                // PMD already holds a PTE table: x86 falls back to base pages.
                self.populate_basepages(bpfn, bnr);
            } else {
                let backing = if let Some(altmap) = self.altmap.as_mut() {
                    let want = pmd / ps;
                    match altmap.alloc_block(want) {
                        Some(apfn) => {
                            self.bytes_device += pmd;
                            self.altmap_blocks.push((apfn, want));
                            match self.origin {
                                AltmapOrigin::Device(o) => VmemmapBacking::Altmap {
                                    device_offset_bytes: (apfn - o) * ps,
                                },
                                AltmapOrigin::MemoryBlock(o) => VmemmapBacking::MemoryBlock {
                                    block_offset_bytes: (apfn - o) * ps,
                                },
                            }
                        }
                        None => {
                            return Err(LayoutError::AltmapExhausted {
                                name: self.name.to_string(),
                                pfn: bpfn,
                                needed: want,
                                free: altmap.nr_free(),
                                total_free: altmap.free,
                            })
                        }
                    }
                } else {
                    self.bytes_ram += pmd;
                    VmemmapBacking::Ram
                };
                self.pmd_blocks.insert(slot, self.blocks.len());
                self.state.pmd_slots.insert(slot, backing);
                self.blocks.push(VmemmapBlock {
                    first_pfn: bpfn,
                    nr_pfns: bnr,
                    bytes: pmd,
                    backing,
                });
            }
            addr = next;
        }
        Ok(())
    }

    /// `vmemmap_populate_compound_pages` (mm/sparse-vmemmap.c, 6.1): per compound page, the
    /// head vmemmap page and one tail page are allocated, the other tail vmemmap pages map
    /// that tail page; a section in the middle of a compound page larger than a sub-section
    /// (`reuse_compound_section`) maps only the reused tail page.
    fn populate_compound(&mut self, pfn: u64, nr: u64, range_start: u64, cp: u64) {
        let (ps, sps) = (self.p.page_size, self.p.struct_page_size);
        let (va_s, va_e) = (pfn * sps, (pfn + nr) * sps);
        self.pte_tables_for(va_s, va_e);
        let offset = pfn - range_start;
        let new_pages = if !offset.is_multiple_of(cp) && cp > self.p.subsection_pages() {
            0
        } else {
            let size = (va_e - va_s).min(cp * sps);
            2 * (va_e - va_s).div_ceil(size)
        };
        self.bytes_ram += new_pages * ps;
        self.blocks.push(VmemmapBlock {
            first_pfn: pfn,
            nr_pfns: nr,
            bytes: new_pages * ps,
            backing: VmemmapBacking::RamBasePages,
        });
    }
}

// ------------------------------------------------------------------------------------------
// extents

#[derive(Default)]
struct Extents(Vec<PfnExtent>);

impl Extents {
    fn push(&mut self, start_pfn: u64, end_pfn: u64, role: Role) {
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

// ------------------------------------------------------------------------------------------
// namespaces

/// Result of `nd_pfn_init` + `__nvdimm_setup_pfn` (+ pre-5.3 `devm_memremap_pages` rounding).
struct PfnGeometry {
    start_pad: u64,
    end_trunc: u64,
    dataoff: u64,
    sb_npfns: u64,
    pfn_align: u64,
    /// pgmap range, bytes [start, end).
    range_start: u64,
    range_end: u64,
    /// what arch_add_memory / memmap_init_zone_device get, bytes [start, end).
    arch_start: u64,
    arch_end: u64,
    altmap: Option<Altmap>,
}

fn nd_pfn_supported_alignments(p: &LayoutParams) -> [u64; 3] {
    [p.page_size, p.vmemmap_block_size, p.pud_size()]
}

/// `nd_pfn_init` + `__nvdimm_setup_pfn`, drivers/nvdimm/pfn_devs.c, Linux 6.1.
fn pfn_geometry_6_1(spec: &NamespaceSpec, p: &LayoutParams) -> Result<PfnGeometry, LayoutError> {
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
fn pfn_geometry_pre_5_3(
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
    start
        .checked_add(size)
        .filter(|e| e.checked_mul(p.struct_page_size).is_some())
        .ok_or(LayoutError::Overflow {
            name: name.to_string(),
            what: "range",
            start,
            size,
        })
}

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
        let mut ex = Extents::default();
        ex.push(res_start_pfn, res_end / ps, Role::Data);
        return Ok(RangeLayout {
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
            memmap_bytes: 0,
            memmap_bytes_device: 0,
            memmap_bytes_ram: 0,
            vmemmap_pagetable_bytes: 0,
            sections: 0,
            subsections: 0,
            memory_blocks: 0,
            pageblocks: 0,
            vmemmap_blocks: Vec::new(),
            extents: ex.0,
            kernel_rules: format!(
                "{}; {} namespace: no struct pages",
                p.kernel_rules(),
                spec.mode
            ),
        });
    }

    let supported = nd_pfn_supported_alignments(p);
    if !supported.contains(&spec.align_bytes) {
        return Err(LayoutError::UnsupportedAlign {
            name: name.to_string(),
            align: spec.align_bytes,
            supported: supported
                .iter()
                .map(|a| format_size(*a))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    let g = if p.subsection_hotplug {
        pfn_geometry_6_1(spec, p)?
    } else {
        pfn_geometry_pre_5_3(spec, p)?
    };
    if spec.mode == NsMode::Devdax && g.range_start + g.dataoff >= g.range_end {
        // __dax_pmem_probe: the dax region [start + dataoff, end] is empty, so the device
        // dax gets size 0 and dev_dax_probe never maps it (s16/sdevdax-dev-1G-1040M).
        return Err(LayoutError::ZeroSizeDevice {
            name: name.to_string(),
            dataoff: g.dataoff,
            range_bytes: g.range_end - g.range_start,
        });
    }
    let arch_start_pfn = g.arch_start / ps;
    let arch_pages = (g.arch_end - g.arch_start) / ps;
    let arch_end_pfn = arch_start_pfn + arch_pages;

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
    if let Some(a) = g.altmap {
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

    // dev_dax_probe (drivers/dax/device.c, 5.17+): vmemmap_shift = order_base_2(align >> PAGE_SHIFT).
    let compound_order =
        if p.subsection_hotplug && spec.mode == NsMode::Devdax && spec.align_bytes > ps {
            (spec.align_bytes / ps).next_power_of_two().trailing_zeros()
        } else {
            0
        };
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
    // compound_nr_pages(): 2 * (PAGE_SIZE / sizeof(struct page)) without altmap when
    // sizeof(struct page) is a power of 2, else the whole compound.
    let per_compound = if compound_order == 0 {
        1
    } else if sim.altmap.is_none() && p.struct_page_size.is_power_of_two() {
        (2 * ps / p.struct_page_size).min(cp)
    } else {
        cp
    };
    let (written, pageblocks) = init_counts(init_start, init_end, cp, per_compound, p);

    // extents
    let mut ex = Extents::default();
    let res_start_pfn_ = res_start_pfn;
    let res_end_pfn = res_end / ps;
    let range_start_pfn = g.range_start / ps;
    let range_end_pfn = g.range_end / ps;
    let head_role = if g.altmap.is_some() {
        Role::AltmapReserve
    } else {
        Role::AlignPadding
    };
    ex.push(
        arch_start_pfn,
        res_start_pfn_.min(range_start_pfn),
        head_role,
    );
    ex.push(res_start_pfn_, range_start_pfn, Role::AlignPadding);
    let info_end = range_start_pfn + p.info_block_reserve() / ps;
    ex.push(range_start_pfn, info_end, Role::InfoBlock);
    let data_start = range_start_pfn + g.dataoff / ps;
    if let Some(a) = sim.altmap {
        let mut cur = a.base_pfn + a.reserve;
        ex.push(info_end, cur, Role::AltmapReserve);
        let mut blocks = sim.altmap_blocks.clone();
        blocks.sort_unstable();
        for (bpfn, n) in blocks {
            ex.push(cur, bpfn, Role::AlignPadding);
            ex.push(bpfn, bpfn + n, Role::Memmap);
            cur = bpfn + n;
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

    let subsections = if p.subsection_hotplug {
        arch_pages.div_ceil(p.subsection_pages())
    } else {
        0
    };
    Ok(RangeLayout {
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
        memmap_bytes: sim.bytes_device + sim.bytes_ram,
        memmap_bytes_device: sim.bytes_device,
        memmap_bytes_ram: sim.bytes_ram,
        vmemmap_pagetable_bytes: sim.pagetable_bytes,
        sections,
        subsections,
        memory_blocks: 0,
        pageblocks,
        vmemmap_blocks: sim.blocks,
        extents: ex.0,
        kernel_rules: p.kernel_rules(),
    })
}

/// Struct pages written and pageblock migratetypes set by the `memmap_init_zone_device` loop
/// (`for (pfn = start_pfn; pfn < end_pfn; pfn += pfns_per_compound)`: head via
/// `__init_zone_device_page`, tails via `memmap_init_compound(..., compound_nr_pages())`).
/// Counts are clamped at `end_pfn`.
fn init_counts(start: u64, end: u64, cp: u64, per_compound: u64, p: &LayoutParams) -> (u64, u64) {
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

// ------------------------------------------------------------------------------------------
// System RAM hotplug

/// `mhp_supports_memmap_on_memory` (mm/memory_hotplug.c, 6.1): the feature is on, the range
/// is exactly one memory block, its memmap is PMD aligned and the rest is pageblock aligned.
pub fn mhp_supports_memmap_on_memory(size: u64, p: &LayoutParams) -> bool {
    let vmemmap_size = size / p.page_size * p.struct_page_size;
    let remaining = size - vmemmap_size.min(size);
    p.memmap_on_memory
        && p.subsection_hotplug
        && size == p.memory_block_size
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

// ------------------------------------------------------------------------------------------
// several ranges

/// Checks a namespace against the region it is carved from (start inside, size fits, size a
/// multiple of the region align: namespace_devs.c `__size_store`).
pub fn check_namespace_in_region(
    spec: &NamespaceSpec,
    region_start: u64,
    region_bytes: u64,
    params: &LayoutParams,
) -> Result<(), LayoutError> {
    check_aligned(
        &spec.name,
        "namespace size",
        spec.size_bytes,
        params.region_align,
        "namespace_devs.c: __size_store, region align (default_align)",
    )?;
    let region_end = region_start.saturating_add(region_bytes);
    let available = region_end.saturating_sub(spec.start_phys);
    if spec.start_phys < region_start || spec.size_bytes > available {
        return Err(LayoutError::LargerThanRegion {
            name: spec.name.clone(),
            start: spec.start_phys,
            size: spec.size_bytes,
            available: if spec.start_phys < region_start {
                0
            } else {
                available
            },
        });
    }
    Ok(())
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

// ------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const NS_START: u64 = 0x1_0000_0000;
    /// QEMU 16 GiB NVDIMM, 128 KiB label area, region align 16 MiB.
    const QEMU_16G_NS: u64 = 16 * GIB - 16 * MIB;

    fn ns(size: u64, mode: NsMode, map: MapLocation, align: u64) -> NamespaceSpec {
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

    fn p61() -> LayoutParams {
        LayoutParams::default()
    }

    #[test]
    fn qemu_16g_namespace_size_from_region() {
        let s = NamespaceSpec::whole_region(
            "ns0",
            NS_START,
            16 * GIB - 128 * KIB,
            NsMode::Fsdax,
            MapLocation::Mem,
            2 * MIB,
            &p61(),
        );
        assert_eq!(s.size_bytes, QEMU_16G_NS);
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
    }

    #[test]
    fn altmap_arithmetic_16g_map_dev() {
        let l = namespace_layout(
            &ns(QEMU_16G_NS, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(l.dataoff_bytes, 256 * MIB);
        assert_eq!(l.npfns, (QEMU_16G_NS - 256 * MIB) / 4096);
        assert_eq!(
            l.altmap,
            Some(Altmap {
                base_pfn: 0x100000,
                reserve: 2,
                free: 65534,
                align: 510,
                alloc: 127 * 512,
            })
        );
        let a = l.altmap.unwrap();
        assert_eq!(a.alloc + a.align, a.free, "altmap exactly exhausted");
        let (alt, ram, base, mb) = l.vmemmap_block_counts();
        assert_eq!((alt, ram, base, mb), (127, 0, 1, 0));
        assert_eq!(
            l.vmemmap_blocks[0].backing,
            VmemmapBacking::Altmap {
                device_offset_bytes: 2 * MIB
            }
        );
        assert_eq!(
            l.vmemmap_blocks[126].backing,
            VmemmapBacking::Altmap {
                device_offset_bytes: 254 * MIB
            }
        );
        // last partial section (112 MiB): memmap 1.75 MiB < 2 MiB -> base pages from RAM
        let last = l.vmemmap_blocks[127];
        assert_eq!(last.backing, VmemmapBacking::RamBasePages);
        assert_eq!(last.first_pfn, 0x100000 + 127 * 32768);
        assert_eq!(last.nr_pfns, 112 * MIB / 4096);
        assert_eq!(last.bytes, 1792 * KIB);
        assert_eq!(l.memmap_bytes_device, 254 * MIB);
        assert_eq!(l.memmap_bytes_ram, 1792 * KIB);
        assert_eq!(l.vmemmap_pagetable_bytes, 4096);
        // blocks cover every pfn of the range, in order
        let mut next = l.range_start_pfn;
        for b in &l.vmemmap_blocks {
            assert_eq!(b.first_pfn, next);
            next += b.nr_pfns;
        }
        assert_eq!(next, l.range_end_pfn());
        // extents: info block, 510 alignment pfns, 127 blocks, data
        let roles: Vec<(Role, u64)> = l.extents.iter().map(|e| (e.role, e.pages)).collect();
        assert_eq!(
            roles,
            vec![
                (Role::InfoBlock, 2),
                (Role::AlignPadding, 510),
                (Role::Memmap, 127 * 512),
                (Role::Data, 4190208 - 65536)
            ]
        );
    }

    #[test]
    fn exactly_16g_needs_258m_and_128_blocks() {
        let l = namespace_layout(
            &ns(16 * GIB, NsMode::Fsdax, MapLocation::Dev, 2 * MIB),
            &p61(),
        )
        .unwrap();
        assert_eq!(l.dataoff_bytes, 258 * MIB);
        let a = l.altmap.unwrap();
        assert_eq!((a.free, a.align, a.alloc), (66046, 510, 128 * 512));
        assert_eq!(l.vmemmap_block_counts(), (128, 0, 0, 0));
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

    /// Pre-5.3 without trimming, a section-unaligned map=dev namespace hot-adds 9 sections
    /// but nd_pfn_init sized the altmap for PFN_SECTION_ALIGN_UP(npfns) = 8 sections.
    #[test]
    fn altmap_exhausted_is_enomem() {
        let p = LayoutParams {
            pre53_trim_unaligned: false,
            ..LayoutParams::pre_5_3()
        };
        let s = NamespaceSpec {
            start_phys: NS_START + 64 * MIB,
            ..ns(GIB, NsMode::Fsdax, MapLocation::Dev, 2 * MIB)
        };
        let e = namespace_layout(&s, &p).unwrap_err();
        assert!(matches!(e, LayoutError::AltmapExhausted { .. }), "{e}");
        assert!(e.to_string().contains("altmap_alloc_block_buf"));
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

    /// Martins' cover letter: memmap per TiB 16 GiB -> 4 GiB (2M), ~40 MiB (1G, with the
    /// PTE tables that map it).
    #[test]
    fn devdax_compound_memmap_per_tib() {
        let start = 64 * GIB;
        let mk = |align| NamespaceSpec {
            start_phys: start,
            ..ns(TIB + 2 * GIB, NsMode::Devdax, MapLocation::Mem, align)
        };
        let per_tib = |bytes: u64, l: &RangeLayout| {
            (bytes as u128 * TIB as u128 / (l.range_pages as u128 * 4096)) as u64
        };
        let two_m = namespace_layout(&mk(2 * MIB), &p61()).unwrap();
        assert_eq!(per_tib(two_m.memmap_bytes_ram, &two_m), 4 * GIB);
        let one_g = namespace_layout(&mk(GIB), &p61()).unwrap();
        assert_eq!(one_g.range_pages * 4096, TIB + 2 * GIB);
        assert_eq!(per_tib(one_g.memmap_bytes_ram, &one_g), 8 * MIB);
        assert_eq!(
            per_tib(
                one_g.memmap_bytes_ram + one_g.vmemmap_pagetable_bytes,
                &one_g
            ),
            40 * MIB
        );
        assert_eq!(one_g.struct_pages_written, (TIB + 2 * GIB) / GIB * 128);
        let dev = namespace_layout(&mk(4 * KIB), &p61()).unwrap();
        assert_eq!(dev.memmap_bytes_ram, (TIB + 2 * GIB) / 64);
    }

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
    fn parse_spec_defaults_and_errors_name_the_field() {
        let s: NamespaceSpec = "size=16G".parse().unwrap();
        assert_eq!(
            s,
            NamespaceSpec {
                name: "ns0".into(),
                size_bytes: 16 * GIB,
                mode: NsMode::Fsdax,
                map: MapLocation::Dev,
                align_bytes: 2 * MIB,
                node: 0,
                start_phys: 0x1_0000_0000,
            }
        );
        let s: NamespaceSpec =
            "size=0x3ff000000, mode=devdax,map=mem,align=1G,start=0x200000000,node=1,name=nsX"
                .parse()
                .unwrap();
        assert_eq!(
            (
                s.size_bytes,
                s.mode,
                s.map,
                s.align_bytes,
                s.start_phys,
                s.node,
                s.name.as_str()
            ),
            (
                0x3ff000000,
                NsMode::Devdax,
                MapLocation::Mem,
                GIB,
                0x200000000,
                1,
                "nsX"
            )
        );
        for (input, field) in [
            ("size=16Q", "size"),
            ("size=16G,mode=fast", "mode"),
            ("size=16G,map=disk", "map"),
            ("size=16G,align=big", "align"),
            ("size=16G,start=zz", "start"),
            ("size=16G,node=-1", "node"),
            ("mode=fsdax", "size"),
            ("size=16G,colour=red", "colour"),
            ("size=16G,oops", "oops"),
        ] {
            let e = input.parse::<NamespaceSpec>().unwrap_err().to_string();
            assert!(e.contains(field), "{input}: {e}");
        }
        let e = "size=1G".parse::<HotplugSpec>().unwrap_err().to_string();
        assert!(e.contains("start"), "{e}");
    }

    /// ScenarioError embeds LayoutError; keep it small (clippy::result_large_err).
    #[test]
    fn error_stays_small() {
        assert!(
            std::mem::size_of::<LayoutError>() <= 72,
            "{}",
            std::mem::size_of::<LayoutError>()
        );
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("16G").unwrap(), 16 * GIB);
        assert_eq!(parse_size("16GiB").unwrap(), 16 * GIB);
        assert_eq!(parse_size("2m").unwrap(), 2 * MIB);
        assert_eq!(parse_size("1T").unwrap(), TIB);
        assert_eq!(parse_size("0x100000000").unwrap(), NS_START);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(format_size(16 * GIB), "16 GiB");
        assert_eq!(format_size(2 * MIB), "2 MiB");
        assert_eq!(format_size(8 * KIB), "8 KiB");
        assert_eq!(format_size(QEMU_16G_NS), "16368 MiB");
        assert_eq!(format_size(100), "100 B");
        assert_eq!(format_size(0), "0 B");
    }

    #[test]
    fn raw_namespace_has_no_memmap() {
        let l =
            namespace_layout(&ns(4 * GIB, NsMode::Raw, MapLocation::Mem, 2 * MIB), &p61()).unwrap();
        assert_eq!((l.data_pages, l.memmap_bytes, l.sections), (0, 0, 0));
    }

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

    // --------------------------------------------------------------------------------------
    // Real kernel figures: traces/real/layout/kernel-figures.json (Debian 6.1.192-2 =
    // linux-image-6.1.0-56-amd64, QEMU 7.2 TCG NVDIMM; see that directory's README.md).

    mod kernel_figures {
        use super::super::*;
        use serde_json::Value;

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
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
                // struct dev_pagemap at memmap_init_zone_device entry
                let a = l.altmap.unwrap_or(Altmap {
                    base_pfn: 0,
                    reserve: 0,
                    free: 0,
                    align: 0,
                    alloc: 0,
                });
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
                // altmap_alloc_block_buf pr_debug lines
                let alt: Vec<&VmemmapBlock> = l
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
                checked += 1;
            }
            eprintln!("kernel figures: {checked} configs, {values} values");
            assert!(checked >= 80, "{checked} configs checked");
            assert!(values >= 1500, "{values} values checked");
        }
    }
}
