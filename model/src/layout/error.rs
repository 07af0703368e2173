//! [`LayoutError`]: every refusal names the kernel rule (function) behind it.

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
    /// A size or count over its limit (`crate::limits`); boxed to keep the error small.
    #[error("{0}")]
    Limit(Box<crate::limits::LimitError>),
    #[error("{a} and {b} share sub-section {subsection_pfn:#x} (fill_subsection_map: -EEXIST)")]
    SubsectionConflict {
        a: String,
        b: String,
        subsection_pfn: u64,
    },
}

impl From<crate::limits::LimitError> for LayoutError {
    fn from(e: crate::limits::LimitError) -> Self {
        LayoutError::Limit(Box::new(e))
    }
}

pub(super) fn bad_field(kind: &'static str, field: &str, value: &str) -> LayoutError {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// ScenarioError embeds LayoutError; keep it small (clippy::result_large_err).
    #[test]
    fn error_stays_small() {
        assert!(
            std::mem::size_of::<LayoutError>() <= 72,
            "{}",
            std::mem::size_of::<LayoutError>()
        );
    }
}
