//! `martins-compound`: compound devmaps (Joao Martins, 5.17) with vmemmap tail reuse
//! (5.19). A devdax namespace with align 2M/1G gets `vmemmap_shift`;
//! `memmap_init_zone_device` initialises each compound page through
//! `memmap_init_compound`, and without an altmap only the unique struct pages
//! (`compound_nr_pages`: 2 vmemmap pages = 128 struct pages) are written. Otherwise as
//! `duyck` (Debian 6.1.192 writer).

use super::{duyck::single_pass, InitCx, InitStrategy};
use crate::page_init::Era;

pub struct MartinsCompound;

impl InitStrategy for MartinsCompound {
    fn name(&self) -> &'static str {
        "martins-compound"
    }
    fn about(&self) -> &'static str {
        "5.17/5.19: devdax compound pages, only unique struct pages written (Debian 6.1.192 writer)"
    }
    fn era(&self) -> Era {
        Era::V6_1
    }
    fn uses_compound(&self) -> bool {
        true
    }
    fn needs_subsection_hotplug(&self) -> bool {
        true
    }
    fn init_namespace(&self, cx: &mut InitCx) {
        single_pass(cx)
    }
}
