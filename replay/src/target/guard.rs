//! The guard that keeps the replay from writing over data it was not told it may
//! destroy: an existing file or a device-dax device *holds data* if a sample of it (the
//! first and last MiB, 64 evenly spaced 4 KiB blocks) is not all zero; known on-disk
//! signatures at the start are named. Such a target is refused with
//! [`TargetError::HoldsData`] unless `--destroy-data`. See `docs/targets.md`, "Data safety".

use super::{os_error, TargetError, TargetSpec, KIB, MIB};
use std::io;
use std::os::fd::RawFd;

/// The data check of an existing regular file of `size` bytes, read with pread:
/// refuses it if it holds data (unless `spec.destroy_data`), else notes what was found.
pub(super) fn check_existing_file(
    spec: &TargetSpec,
    raw: RawFd,
    name: &str,
    size: u64,
    notes: &mut Vec<String>,
) -> Result<(), TargetError> {
    if size == 0 {
        notes.push("existing empty file".into());
        return Ok(());
    }
    let found = find_data(size, |off, buf| pread_exact(raw, off, buf))
        .map_err(|e| os_error(name, "read (data check)", e))?;
    match found {
        Some(found) if !spec.destroy_data => {
            return Err(TargetError::HoldsData {
                path: name.to_string(),
                found,
            });
        }
        Some(found) => notes.push(format!(
            "existing file held data ({found}); overwriting it as --destroy-data allows"
        )),
        None => notes.push(format!("existing file of {size} bytes sampled all-zero")),
    }
    Ok(())
}

/// The data check of a device-dax device through its read-only mapping of `map_len`
/// bytes at `base`: refuses it if it holds data (unless `spec.destroy_data`), else notes
/// what was found.
pub(super) fn check_device_mapping(
    spec: &TargetSpec,
    base: *const u8,
    map_len: u64,
    name: &str,
    notes: &mut Vec<String>,
) -> Result<(), TargetError> {
    let found = find_data(map_len, |off, buf| {
        // SAFETY: find_data only reads inside [0, map_len).
        unsafe {
            std::ptr::copy_nonoverlapping(base.add(off as usize), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    })
    .map_err(|e| os_error(name, "read (data check)", e))?;
    match found {
        Some(found) if !spec.destroy_data => {
            return Err(TargetError::HoldsData {
                path: name.to_string(),
                found,
            });
        }
        Some(found) => notes.push(format!(
            "device held data ({found}); overwriting it as --destroy-data allows"
        )),
        None => notes.push("device sampled all-zero".into()),
    }
    Ok(())
}

fn pread_exact(fd: RawFd, off: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writing into the unfilled tail of buf.
        let n = unsafe {
            libc::pread(
                fd,
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                (off + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            // Shrunk under us: the rest reads as nothing.
            buf[done..].fill(0);
            return Ok(());
        }
        done += n as usize;
    }
    Ok(())
}

/// Known on-disk signatures: (name, offset, bytes).
const SIGNATURES: &[(&str, usize, &[u8])] = &[
    (
        "GPT partition table (\"EFI PART\" at 512)",
        512,
        b"EFI PART",
    ),
    ("LUKS header (\"LUKS\\xba\\xbe\" at 0)", 0, b"LUKS\xba\xbe"),
    ("XFS superblock (\"XFSB\" at 0)", 0, b"XFSB"),
    (
        "btrfs superblock (\"_BHRfS_M\" at 0x10040)",
        0x10040,
        b"_BHRfS_M",
    ),
    (
        "ext2/ext3/ext4 superblock (magic 0xEF53 at 1024+56)",
        1024 + 56,
        &[0x53, 0xEF],
    ),
    (
        "swap signature (\"SWAPSPACE2\" at 4086)",
        4086,
        b"SWAPSPACE2",
    ),
    (
        "nvdimm pfn info block (\"NVDIMM_PFN_INFO\" at 4096)",
        4096,
        b"NVDIMM_PFN_INFO\0",
    ),
    (
        "nvdimm dax info block (\"NVDIMM_DAX_INFO\" at 4096)",
        4096,
        b"NVDIMM_DAX_INFO\0",
    ),
    (
        "nvdimm BTT arena (\"BTT_ARENA_INFO\" at 4096)",
        4096,
        b"BTT_ARENA_INFO\0",
    ),
    ("MBR boot signature (0x55AA at 510)", 510, &[0x55, 0xAA]),
];

/// Names of the known signatures present in `head` (the start of the target).
fn detect_signatures(head: &[u8]) -> Vec<&'static str> {
    SIGNATURES
        .iter()
        .filter(|(_, off, sig)| head.get(*off..*off + sig.len()) == Some(*sig))
        .map(|(name, _, _)| *name)
        .collect()
}

/// Sorted, merged sample ranges of an object of `size` bytes: the first and
/// last MiB and 64 evenly spaced 4 KiB blocks.
fn sample_ranges(size: u64) -> Vec<(u64, u64)> {
    let mut r = vec![(0, size.min(MIB)), (size.saturating_sub(MIB), size)];
    for i in 0..64u64 {
        let s = (size / 64 * i) / (4 * KIB) * (4 * KIB);
        r.push((s, (s + 4 * KIB).min(size)));
    }
    r.retain(|(s, e)| s < e);
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Does an object of `size` bytes, read through `read_at`, hold data?
/// Returns a description of what was found.
fn find_data(
    size: u64,
    mut read_at: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<Option<String>> {
    let mut buf = vec![0u8; MIB as usize];
    let head_len = size.min(MIB) as usize;
    read_at(0, &mut buf[..head_len])?;
    let sigs = detect_signatures(&buf[..head_len]);
    if !sigs.is_empty() {
        return Ok(Some(sigs.join(", ")));
    }
    for (s, e) in sample_ranges(size) {
        let mut off = s;
        while off < e {
            let n = (e - off).min(MIB) as usize;
            read_at(off, &mut buf[..n])?;
            if let Some(i) = first_nonzero(&buf[..n]) {
                return Ok(Some(format!("non-zero bytes at offset {}", off + i as u64)));
            }
            off += n as u64;
        }
    }
    Ok(None)
}

fn first_nonzero(b: &[u8]) -> Option<usize> {
    let (chunks, rest) = b.as_chunks::<8>();
    for (ci, c) in chunks.iter().enumerate() {
        if u64::from_ne_bytes(*c) != 0 {
            return c.iter().position(|&x| x != 0).map(|i| ci * 8 + i);
        }
    }
    rest.iter()
        .position(|&x| x != 0)
        .map(|i| chunks.len() * 8 + i)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;
    use std::fs;

    #[test]
    fn target_existing_file_with_data_refused_names_offset() {
        let d = TempDir::new("data");
        let p = d.join("data.bin");
        write_file(&p, 2 * MIB as usize, &[(12_295, b"x")]);
        let e = Target::open(&spec(&p), 2 * MIB).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TargetError::HoldsData { .. }), "{msg}");
        assert!(msg.contains("non-zero bytes at offset 12295"), "{msg}");
        assert!(msg.contains("--destroy-data"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert_eq!(fs::read(&p).unwrap()[12_295], b'x', "file untouched");

        // Data in a sampled middle block of a larger file.
        let q = d.join("middle.bin");
        let size = 64 * MIB as usize;
        let off = size / 64 * 20 + 100;
        fs::File::create(&q).unwrap().set_len(size as u64).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&q).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"y", off as u64).unwrap();
        let e = Target::open(&spec(&q), MIB).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("non-zero bytes at offset {off}")),
            "{e}"
        );
        // Data in the last MiB.
        let r = d.join("tail.bin");
        write_file(&r, 3 * MIB as usize, &[(3 * MIB as usize - 1, b"z")]);
        let e = Target::open(&spec(&r), MIB).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("non-zero bytes at offset {}", 3 * MIB - 1)),
            "{e}"
        );
    }

    #[test]
    fn target_signature_detected_and_destroy_data_allows() {
        let d = TempDir::new("sig");
        let p = d.join("ext4.img");
        write_file(&p, MIB as usize, &[(1024 + 56, &[0x53, 0xEF])]);
        let e = Target::open(&spec(&p), MIB).unwrap_err();
        assert!(e.to_string().contains("ext4"), "{e}");
        assert!(e.to_string().contains("--destroy-data"), "{e}");

        let s = TargetSpec {
            destroy_data: true,
            ..spec(&p)
        };
        let t = Target::open(&s, 2 * MIB).unwrap();
        assert!(
            t.info().notes.iter().any(|n| n.contains("ext4")),
            "{:?}",
            t.info().notes
        );
        unsafe { std::ptr::write_bytes(t.as_ptr(), 0, t.len() as usize) };
        drop(t);
        assert!(p.exists(), "an existing file is never removed");
    }

    #[test]
    fn target_signature_table() {
        let mut cases: Vec<(usize, &[u8], &str)> = vec![
            (0, b"XFSB", "XFS"),
            (0x10040, b"_BHRfS_M", "btrfs"),
            (4086, b"SWAPSPACE2", "swap"),
            (0, b"LUKS\xba\xbe", "LUKS"),
            (4096, b"NVDIMM_PFN_INFO\0", "pfn"),
            (4096, b"NVDIMM_DAX_INFO\0", "dax info"),
            (512, b"EFI PART", "GPT"),
            (510, &[0x55, 0xAA], "MBR"),
        ];
        cases.push((1080, &[0x53, 0xEF], "ext4"));
        for (off, sig, want) in cases {
            let mut head = vec![0u8; MIB as usize];
            head[off..off + sig.len()].copy_from_slice(sig);
            let found = detect_signatures(&head);
            assert!(found.iter().any(|f| f.contains(want)), "{want}: {found:?}");
        }
        assert!(detect_signatures(&vec![0u8; MIB as usize]).is_empty());
        assert!(detect_signatures(&[0u8; 16]).is_empty());
    }

    #[test]
    fn target_sample_ranges_and_meminfo() {
        let r = sample_ranges(4096);
        assert_eq!(r, vec![(0, 4096)]);
        let r = sample_ranges(1 << 30);
        assert_eq!(r.first(), Some(&(0, MIB)));
        assert_eq!(r.last(), Some(&((1 << 30) - MIB, 1 << 30)));
        assert!(r.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(r.len() > 60);
        assert_eq!(
            parse_mem_available("MemTotal: 10 kB\nMemAvailable:    2048 kB\n"),
            Some(2048 * 1024)
        );
        assert!(mem_available_bytes().is_some_and(|m| m > 0));
        assert_eq!(first_nonzero(&[0; 19]), None);
        let mut b = [0u8; 19];
        b[17] = 1;
        assert_eq!(first_nonzero(&b), Some(17));
        b[9] = 1;
        assert_eq!(first_nonzero(&b), Some(9));
    }
}
