//! Architecture and kernel-version parameters of the model ([`LayoutParams`]): x86_64
//! Linux 6.1 by default, Linux 5.2 (section-granular hotplug) with `subsection_hotplug = false`.

use serde::{Deserialize, Serialize};

use super::{align_up, LayoutError, KIB, MIB};

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
    /// [`check_ranges_disjoint`](super::check_ranges_disjoint) reports neighbours sharing a
    /// section ("mixed region").
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
        // Upper bounds, so that no product of parameters and pfns can wrap
        // (crate::limits; docs/layout.md lists them).
        use crate::limits::{
            MAX_MEMORY_BLOCK_SIZE, MAX_PAGE_SIZE, MAX_PARAM_ALIGN, MAX_STRUCT_PAGE_SIZE,
            MIN_PAGE_SIZE,
        };
        let within = |field: &'static str, v: u64, lo: u64, hi: u64, why: &str| {
            if v < lo || v > hi {
                Err(LayoutError::BadParams {
                    field,
                    reason: format!("{v} is outside the limits {lo}..={hi} ({why})"),
                })
            } else {
                Ok(())
            }
        };
        within(
            "page_size",
            self.page_size,
            MIN_PAGE_SIZE,
            MAX_PAGE_SIZE,
            "4 KiB on x86_64, 64 KiB the largest PAGE_SIZE of arm64/powerpc",
        )?;
        within(
            "memory_block_size",
            self.memory_block_size,
            1,
            MAX_MEMORY_BLOCK_SIZE,
            "MAX_BLOCK_SIZE 2 GiB, arch/x86/mm/init_64.c, 6.1",
        )?;
        for (field, v) in [
            ("vmemmap_block_size", self.vmemmap_block_size),
            ("compat_align", self.compat_align),
            ("region_align", self.region_align),
            ("info_block_size", self.info_block_size),
        ] {
            within(field, v, 0, MAX_PARAM_ALIGN, "PUD_SIZE 1 GiB on x86_64")?;
        }
        within(
            "max_struct_page_size",
            self.max_struct_page_size,
            1,
            MAX_STRUCT_PAGE_SIZE,
            "MAX_STRUCT_PAGE_SIZE is 64 or 128 in 6.1 (drivers/nvdimm/nd.h)",
        )?;
        within(
            "pageblock_pages",
            self.pageblock_pages,
            1,
            self.section_pages(),
            "pageblock_order <= PFN_SECTION_SHIFT: SECTION_BLOCKFLAGS_BITS, include/linux/mmzone.h, 6.1",
        )?;
        within(
            "vmemmap_block_size",
            self.vmemmap_block_size,
            self.page_size,
            MAX_PARAM_ALIGN,
            "a PMD maps at least one page",
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
