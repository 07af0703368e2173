//! Li Zhe's series "mm: optimize zone-device memmap initialization" (2026, v1 .. v5),
//! as three strategies so its ablation can be replayed against `duyck` (the 6.x base):
//! `lizhe-template` (head-page template), `lizhe-template-tails` (+ compound-tail
//! template), `lizhe-nt` (the whole series: + `memcpy_nt` streaming copies). Threads,
//! lock scope and availability as `duyck`; compound pages as `martins-compound` (the
//! series' base kernel has them). Per page: `page_init::lizhe`.

use super::{duyck::single_pass, InitCx, InitStrategy};
use crate::page_init::{lizhe::Step, Era};

pub struct Lizhe {
    name: &'static str,
    about: &'static str,
    step: Step,
}

pub const LIZHE_TEMPLATE: Lizhe = Lizhe {
    name: "lizhe-template",
    about: "Li Zhe v5 patch 4: one head-page template copied per pfn (tails slow path)",
    step: Step::HeadTemplate,
};
pub const LIZHE_TEMPLATE_TAILS: Lizhe = Lizhe {
    name: "lizhe-template-tails",
    about: "Li Zhe v5 patches 4-5: head and compound-tail templates, regular copies",
    step: Step::TailTemplate,
};
pub const LIZHE_NT: Lizhe = Lizhe {
    name: "lizhe-nt",
    about: "Li Zhe v5 (whole series): templates copied with non-temporal stores",
    step: Step::Streaming,
};

impl InitStrategy for Lizhe {
    fn name(&self) -> &'static str {
        self.name
    }
    fn about(&self) -> &'static str {
        self.about
    }
    fn era(&self) -> Era {
        Era::Lizhe(self.step)
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
