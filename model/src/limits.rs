//! The limits on every size and count memmap-lab reads from a file (scenario, trace, run
//! file) or a command-line flag. Each is checked before anything is sized by it, and a
//! value over a limit is refused with [`LimitError`], naming the field, the value and the
//! limit. Every limit has its source (a kernel constant, Linux 6.1 x86_64) or its reason;
//! `docs/layout.md`, `docs/scenarios.md` and `docs/trace-format.md` list them.

use std::fmt;

/// `MAX_PHYSMEM_BITS` (arch/x86/include/asm/sparsemem.h, 6.1): 52 with 5-level paging, 46
/// with 4-level. The larger one bounds every physical address the model accepts.
pub const MAX_PHYSMEM_BITS: u32 = 52;
/// No range (namespace, hot-added RAM) may end above this address (4 PiB).
pub const MAX_PHYS_END: u64 = 1 << MAX_PHYSMEM_BITS;
/// `SECTION_SIZE_BITS` on x86_64 (arch/x86/include/asm/sparsemem.h, 6.1).
pub const X86_64_SECTION_SIZE_BITS: u32 = 27;
/// `NR_MEM_SECTIONS` = `1 << (MAX_PHYSMEM_BITS - SECTION_SIZE_BITS)` (include/linux/mmzone.h,
/// 6.1): the sections of the whole physical address space, 2^25 on x86_64. A range may
/// span at most this many sections whatever `section_size` a file or flag sets.
pub const MAX_SECTIONS: u64 = 1 << (MAX_PHYSMEM_BITS - X86_64_SECTION_SIZE_BITS);
/// `NODES_SHIFT` at most 10 (arch/x86/Kconfig, 6.1: `range 1 10`), so `MAX_NUMNODES` 1024.
pub const NODES_SHIFT: u32 = 10;
/// Node numbers are below this (`MAX_NUMNODES`).
pub const MAX_NUMNODES: u32 = 1 << NODES_SHIFT;
/// `NR_CPUS_RANGE_END` 8192 on x86_64 with CPUMASK_OFFSTACK (arch/x86/Kconfig, 6.1).
pub const MAX_CPUS: u32 = 8192;
/// `MAX_BLOCK_SIZE` (arch/x86/mm/init_64.c, 6.1): 2 GiB, the largest memory block.
pub const MAX_MEMORY_BLOCK_SIZE: u64 = 2 << 30;
/// Largest `PAGE_SIZE` of any Linux architecture the parameters may describe (64 KiB:
/// arm64/powerpc `CONFIG_*_64K_PAGES`); x86_64 has 4 KiB.
pub const MAX_PAGE_SIZE: u64 = 64 << 10;
/// Smallest `PAGE_SIZE` (4 KiB, x86_64).
pub const MIN_PAGE_SIZE: u64 = 4 << 10;
/// `PUD_SIZE` (1 GiB, x86_64 4-level and 5-level): the largest vmemmap block, region or
/// compat alignment the parameters may set (the kernel uses PMD_SIZE, 16 MiB and 2 MiB).
pub const MAX_PARAM_ALIGN: u64 = 1 << 30;
/// `sizeof(struct page)` and `MAX_STRUCT_PAGE_SIZE` may not exceed this (the kernel's is 64,
/// 80 with some debug options; `MAX_STRUCT_PAGE_SIZE` 64 or 128 in 6.1).
pub const MAX_STRUCT_PAGE_SIZE: u64 = 4096;
/// Ranges (namespaces + hot-added RAM) in one scenario, trace or `layout` command. Reason:
/// the coexistence check is quadratic in ranges; 1024 is one namespace per possible node
/// (`MAX_NUMNODES`), far above what one host has (ndctl regions: a few per socket).
pub const MAX_RANGES: usize = 1024;
/// Init or fault threads per namespace, and in total per run. Reason: each is one OS
/// thread of the replay; past a few thousand, thread creation fails (stacks, RLIMIT_NPROC)
/// and the run measures the scheduler, not the memmap init. Half of `MAX_CPUS`.
pub const MAX_THREADS: u32 = 4096;
/// Sub-ranges per init thread (williams-async `NR_MEMMAP_RANGE` is 128). Reason: one lock
/// and flag each, allocated per thread.
pub const MAX_SUB_RANGES: u32 = 1 << 16;
/// Pages per chunk: at most every pfn of the physical address space (4 KiB pages).
pub const MAX_CHUNK_PAGES: u64 = MAX_PHYS_END / MIN_PAGE_SIZE;
/// Touches per fault thread. Reason: at >= 100 ns a touch, 10^9 touches are > 100 s per
/// thread and repeat; more is a typo, not an experiment.
pub const MAX_TOUCHES: u64 = 1_000_000_000;
/// Pause between two touches, microseconds (1 s). Reason: a fault thread with 2000 touches
/// then already runs > 30 min; must be finite (an infinite pause spun forever).
pub const MAX_THINK_US: f64 = 1e6;
/// Zipf exponent of the fault pattern (finite, 0..=100: s = 100 already puts every touch
/// on the first page).
pub const MAX_ZIPF_EXPONENT: f64 = 100.0;
/// Repeats of one run. Reason: each is a record in the run file (histograms, counters).
pub const MAX_REPEATS: u32 = 10_000;

/// A value over its limit: the field (file field or flag), the value and the limit.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct LimitError {
    pub field: String,
    pub value: String,
    pub limit: String,
    pub reason: &'static str,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}: over the limit {} ({})",
            self.field, self.value, self.limit, self.reason
        )
    }
}

impl LimitError {
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        limit: impl fmt::Display,
        reason: &'static str,
    ) -> Self {
        LimitError {
            field: field.into(),
            value: value.to_string(),
            limit: limit.to_string(),
            reason,
        }
    }
}

/// `value <= max`, else a [`LimitError`] naming `field`.
pub fn at_most<T: PartialOrd + fmt::Display>(
    field: &str,
    value: T,
    max: T,
    reason: &'static str,
) -> Result<T, LimitError> {
    if value <= max {
        Ok(value)
    } else {
        Err(LimitError::new(field, value, format!("<= {max}"), reason))
    }
}

/// A finite float in `[0, max]`, else a [`LimitError`] naming `field`.
pub fn finite_in(
    field: &str,
    value: f64,
    max: f64,
    reason: &'static str,
) -> Result<f64, LimitError> {
    if value.is_finite() && (0.0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(LimitError::new(
            field,
            value,
            format!("a finite number in 0..={max}"),
            reason,
        ))
    }
}

pub const WHY_THREADS: &str =
    "MAX_THREADS: one OS thread each; more fail to start or measure the scheduler";
pub const WHY_NODES: &str = "MAX_NUMNODES = 1 << NODES_SHIFT (10 at most, arch/x86/Kconfig, 6.1)";
pub const WHY_CPUS: &str = "NR_CPUS at most 8192 (arch/x86/Kconfig NR_CPUS_RANGE_END, 6.1)";
pub const WHY_PHYS: &str =
    "MAX_PHYSMEM_BITS 52 (x86_64 5-level paging, arch/x86/include/asm/sparsemem.h, 6.1)";
pub const WHY_RANGES: &str = "MAX_RANGES: one range per possible NUMA node";
pub const WHY_TOUCHES: &str = "MAX_TOUCHES: > 100 s per thread and repeat";
pub const WHY_THINK: &str = "MAX_THINK_US: 1 s between touches, finite";
pub const WHY_ZIPF: &str = "MAX_ZIPF_EXPONENT: finite; 100 already touches one page only";
pub const WHY_REPEATS: &str = "MAX_REPEATS: one record each in the run file";
pub const WHY_SUB_RANGES: &str = "MAX_SUB_RANGES: one lock and flag each per init thread";
pub const WHY_CHUNK: &str = "every 4 KiB pfn below MAX_PHYSMEM_BITS 52";

/// Clap-style value parsers for flags: an integer in `1..=max`, named by the flag.
pub fn parse_count<T>(s: &str, max: T, reason: &'static str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + From<u8>,
{
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if v < T::from(1) {
        return Err(format!("{v}: must be at least 1"));
    }
    if v > max {
        return Err(format!("{v}: over the limit {max} ({reason})"));
    }
    Ok(v)
}

/// Clap-style value parser: a finite number in `0..=max`.
pub fn parse_finite(s: &str, max: f64, reason: &'static str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() || !(0.0..=max).contains(&v) {
        return Err(format!(
            "{v}: over the limit, expected a finite number in 0..={max} ({reason})"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_kernel_constants() {
        assert_eq!(MAX_PHYS_END, 4 << 50);
        assert_eq!(MAX_SECTIONS, 1 << 25);
        assert_eq!(MAX_NUMNODES, 1024);
        assert_eq!(MAX_CHUNK_PAGES, 1 << 40);
    }

    #[test]
    fn errors_name_field_value_and_limit() {
        let e = at_most(
            "faults.threads_per_namespace",
            100_000,
            MAX_THREADS,
            WHY_THREADS,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("faults.threads_per_namespace"), "{e}");
        assert!(e.contains("100000") && e.contains("4096"), "{e}");
        let e = finite_in("faults.think_us", f64::INFINITY, MAX_THINK_US, WHY_THINK)
            .unwrap_err()
            .to_string();
        assert!(e.contains("think_us") && e.contains("inf"), "{e}");
        assert!(finite_in("x", f64::NAN, 1.0, WHY_THINK).is_err());
        assert!(finite_in("x", -1.0, 1.0, WHY_THINK).is_err());
        assert_eq!(finite_in("x", 1.0, 1.0, WHY_THINK), Ok(1.0));
        assert_eq!(
            parse_count::<u32>("4096", MAX_THREADS, WHY_THREADS),
            Ok(4096)
        );
        assert!(parse_count::<u32>("4097", MAX_THREADS, WHY_THREADS)
            .unwrap_err()
            .contains("4096"));
        assert!(parse_count::<u32>("0", MAX_THREADS, WHY_THREADS).is_err());
        assert!(parse_count::<u32>("99999999999", MAX_THREADS, WHY_THREADS).is_err());
        assert!(parse_finite("inf", MAX_THINK_US, WHY_THINK).is_err());
        assert!(parse_finite("NaN", MAX_THINK_US, WHY_THINK).is_err());
        assert_eq!(parse_finite("2.5", MAX_THINK_US, WHY_THINK), Ok(2.5));
    }
}
