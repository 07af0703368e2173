//! `--verify`: re-read every record of every data pfn at its vmemmap position and
//! compare it with a record built field by field (or, round a reused window, check
//! every written slot holds a valid record of its namespace), check the record counts
//! and that every pageblock is `MIGRATE_MOVABLE`.

use super::repeat::RepeatRun;
use super::{align_up, Engine, NsPlan};
use crate::page_init::MIGRATE_MOVABLE;
use crate::struct_page::{self, PageClass, RECORD_BYTES};
use memmap_model::run::VerifyResult;
use std::sync::atomic::Ordering;

impl Engine {
    /// Re-read every record (per-pfn) or every written slice (window) and check it.
    pub(super) fn verify(&self, run: &RepeatRun) -> VerifyResult {
        let mut v = self.verify_records();
        let mut report = |msg: String| {
            v.errors += 1;
            if v.first_errors.len() < 10 {
                v.first_errors.push(msg);
            }
        };
        for (ni, p) in self.plans.iter().enumerate() {
            // Every record the layout needs was written exactly once.
            let written = run.ns[ni].records_written.load(Ordering::Acquire);
            if written != p.struct_pages_written {
                report(format!(
                    "{}: {written} records written, layout needs {}",
                    p.name, p.struct_pages_written
                ));
            }
            let altmap = run.ns[ni].altmap_records_written.load(Ordering::Acquire);
            let need = p.altmap_init.map_or(0, |(_, n)| n);
            if altmap != need {
                report(format!(
                    "{}: {altmap} altmap records written, layout needs {need}",
                    p.name
                ));
            }
            // Every pageblock of the data range is MIGRATE_MOVABLE.
            let pb = p.layout.params.pageblock_pages.max(1);
            let mut pfn = align_up(p.data_start, pb);
            while pfn < p.data_start + p.data_pages {
                if run.ns[ni].pageblocks.get(pfn) != MIGRATE_MOVABLE {
                    report(format!(
                        "{}: pageblock of pfn {pfn:#x} not MIGRATE_MOVABLE",
                        p.name
                    ));
                }
                pfn += pb;
            }
        }
        v
    }

    /// Re-read the memmap in the target and check every record: per pfn against a
    /// record built field by field, or (reused window) every written slot against the
    /// records its namespace may hold.
    pub fn verify_records(&self) -> VerifyResult {
        let mut errors = 0u64;
        let mut first = Vec::new();
        let mut checked = 0u64;
        let mut report = |msg: String, errors: &mut u64| {
            *errors += 1;
            if first.len() < 10 {
                first.push(msg);
            }
        };
        let Some(w) = self.window.as_ref() else {
            for p in &self.plans {
                let w = self.writer(p, None);
                let altmap = p.altmap_init.map(|(a, n)| (a, n, true));
                let data = Some((p.data_start, p.data_pages, false));
                for (first, pages, is_altmap) in altmap.into_iter().chain(data) {
                    for (pfn, got, want) in w.records(first, pages, is_altmap) {
                        checked += 1;
                        if got != want {
                            let field = (0..8).find(|&k| got[k] != want[k]).unwrap_or(0);
                            report(
                                format!(
                                    "{}: pfn {pfn:#x}{}: word {field} is {:#x}, expected {:#x}",
                                    p.name,
                                    if is_altmap { " (altmap)" } else { "" },
                                    got[field],
                                    want[field]
                                ),
                                &mut errors,
                            );
                        }
                    }
                }
            }
            return VerifyResult {
                method: "per-pfn".into(),
                records_checked: checked,
                errors,
                first_errors: first,
            };
        };
        for slice in 0..self.slices {
            let base = unsafe { self.target.as_ptr().add((slice * w.slice_bytes) as usize) };
            let n = (w.slice_bytes / RECORD_BYTES as u64) as usize;
            let recs = unsafe { std::slice::from_raw_parts(base as *const [u64; 8], n) };
            for r in recs {
                if *r == [0u64; 8] {
                    continue; // slot never written (slice larger than what this writer stored)
                }
                checked += 1;
                if !self.plans.iter().any(|p| plausible_record(p, r)) {
                    report(
                        format!("slice {slice}: record {r:x?} matches no namespace"),
                        &mut errors,
                    );
                }
            }
        }
        VerifyResult {
            method: "window-consistency".into(),
            records_checked: checked,
            errors,
            first_errors: first,
        }
    }
}

/// A record that could be the final content for some pfn of `p` (window-mode verify).
fn plausible_record(p: &NsPlan, r: &[u64; 8]) -> bool {
    let flags = p.flags;
    let first = p.data_start;
    let last = p.data_start + p.data_pages;
    let pfn_of = |vaddr: u64| {
        vaddr
            .checked_sub(struct_page::VMEMMAP_START)
            .map(|d| d / 64)
    };
    match (p.class, p.compound) {
        (PageClass::Device { .. }, Some(_)) if altmap_record(p, r) => true,
        (PageClass::Device { pgmap, .. }, Some((order, _))) => {
            if r[0] & (1 << struct_page::PG_HEAD) != 0 {
                return (r[0] & !(1 << struct_page::PG_HEAD)) == flags && r[1] == pgmap;
            }
            let Some(head) = pfn_of(r[1] & !1) else {
                return false;
            };
            (first..last).contains(&head) && r[0] == flags && {
                let i = if r[3] == struct_page::TAIL_MAPPING {
                    2
                } else {
                    1
                };
                *r == struct_page::expected_compound_record(head, i, order, flags, pgmap)
            }
        }
        (PageClass::Device { .. }, None) => {
            *r == struct_page::expected_record(first, flags, p.class) || altmap_record(p, r)
        }
        (PageClass::SystemRam, _) => match pfn_of(r[1].wrapping_sub(8)) {
            Some(pfn) => {
                (first..last).contains(&pfn)
                    && *r == struct_page::expected_record(pfn, flags, p.class)
            }
            None => false,
        },
    }
}

/// A record of one of the altmap's own pfns of `p` (window-mode verify).
fn altmap_record(p: &NsPlan, r: &[u64; 8]) -> bool {
    let Some((a, n)) = p.altmap_init else {
        return false;
    };
    let Some(pfn) = r[1]
        .wrapping_sub(8)
        .checked_sub(struct_page::VMEMMAP_START)
        .map(|d| d / 64)
    else {
        return false;
    };
    (a..a + n).contains(&pfn)
        && *r == struct_page::expected_record(pfn, p.flags, PageClass::SystemRam)
}
