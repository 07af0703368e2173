//! Cache write-back for persistent targets: which instruction this CPU offers
//! (CPUID leaf 7 EBX: CLWB, CLFLUSHOPT, else CLFLUSH) and the loop that writes back
//! every cache line of a range, then fences.

use std::sync::OnceLock;

/// Cache-line size used by [`flush_range`].
pub const CACHE_LINE: usize = 64;

/// The cache write-back this CPU offers: `"clwb+sfence"`, `"clflushopt+sfence"`,
/// `"clflush"`, or `"none"` on other architectures.
pub fn cpu_flush_kind() -> &'static str {
    static KIND: OnceLock<&'static str> = OnceLock::new();
    KIND.get_or_init(detect_flush_kind)
}

#[cfg(target_arch = "x86_64")]
fn detect_flush_kind() -> &'static str {
    use std::arch::x86_64::__cpuid_count;
    let max_leaf = __cpuid_count(0, 0).eax;
    if max_leaf >= 7 {
        let ebx = __cpuid_count(7, 0).ebx;
        if ebx & (1 << 24) != 0 {
            return "clwb+sfence";
        }
        if ebx & (1 << 23) != 0 {
            return "clflushopt+sfence";
        }
    }
    "clflush"
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_flush_kind() -> &'static str {
    "none"
}

/// Write back every cache line of `[ptr, ptr+len)` with the instruction
/// [`cpu_flush_kind`] names, then fence. Usable on any memory; it only makes
/// data persistent where the memory is in a persistence domain.
///
/// # Safety
/// `[ptr, ptr+len)` must be mapped (readable) memory for the whole call.
pub unsafe fn flush_range(ptr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::asm;
        let start = (ptr as usize) & !(CACHE_LINE - 1);
        let end = ptr as usize + len;
        let mut p = start;
        match cpu_flush_kind() {
            "clwb+sfence" => {
                while p < end {
                    // SAFETY: caller guarantees the line is mapped.
                    unsafe { asm!("clwb [{0}]", in(reg) p, options(nostack, preserves_flags)) };
                    p += CACHE_LINE;
                }
            }
            "clflushopt+sfence" => {
                while p < end {
                    // SAFETY: as above.
                    unsafe {
                        asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags))
                    };
                    p += CACHE_LINE;
                }
            }
            _ => {
                while p < end {
                    // SAFETY: as above.
                    unsafe { asm!("clflush [{0}]", in(reg) p, options(nostack, preserves_flags)) };
                    p += CACHE_LINE;
                }
            }
        }
        // SAFETY: sfence has no preconditions.
        unsafe { asm!("sfence", options(nostack, preserves_flags)) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ptr;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    #[test]
    fn target_flush_anon_noop_and_file_ok() {
        let a = Target::open(&TargetSpec::default(), MIB).unwrap();
        a.flush(0, MIB);
        a.flush(MIB - 1, 100); // clamped, no-op anyway
        let d = TempDir::new("flush");
        let t = Target::open(&spec(&d.join("f.bin")), MIB).unwrap();
        unsafe { std::ptr::write_bytes(t.as_ptr(), 0x5A, MIB as usize) };
        t.flush(0, MIB);
        t.flush(100, 1);
        // The instructions themselves run on this CPU, from several threads.
        let mut v = vec![1u8; 1 << 20];
        std::thread::scope(|s| {
            for chunk in v.chunks_mut(1 << 18) {
                s.spawn(move || {
                    chunk.fill(2);
                    unsafe { flush_range(chunk.as_ptr(), chunk.len()) };
                });
            }
        });
        unsafe { flush_range(v.as_ptr().add(3), 1) };
        assert!(v.iter().all(|&b| b == 2));
        assert!(matches!(
            cpu_flush_kind(),
            "clwb+sfence" | "clflushopt+sfence" | "clflush" | "none"
        ));
    }
}
