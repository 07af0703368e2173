//! The guard that keeps the replay from writing over data it was not told it may
//! destroy: an existing file or a device-dax device *holds data* if any byte of the range
//! the replay will write is non-zero. Every byte of that range is read: for a file only
//! its data extents (found with `lseek(SEEK_DATA/SEEK_HOLE)`, so a sparse file costs a few
//! system calls), for a device the whole mapped range. Known on-disk signatures at the
//! start are named. Such a target is refused with [`TargetError::HoldsData`] (naming the
//! file, the offset of the first non-zero byte and `--destroy-data`) unless
//! `--destroy-data`. See `docs/targets.md`, "Data safety".

use super::{os_error, TargetError, TargetSpec, MIB};
use std::io;
use std::os::fd::RawFd;

/// Read buffer of the file check: 1 MiB (few syscalls, and still in the L2 cache when
/// the check reads what pread copied: 6.0-6.9 GB/s hot against 5.2-6.1 with 8 MiB and
/// 5.1-6.5 with 256 KiB on the 2-core VM, docs/benchmarks.md).
const READ_BUF: usize = MIB as usize;

/// What the data check of a range found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Offset of the first non-zero byte, if any.
    pub first_nonzero: Option<u64>,
    /// Bytes read (data extents inside the checked range).
    pub bytes_read: u64,
    /// Data extents seen.
    pub extents: u64,
}

/// The data check of an existing regular file of `size` bytes of which the first
/// `write_len` will be written: every byte of `[0, min(size, write_len))` that is not a
/// hole is read. Refuses the file if one is non-zero (unless `spec.destroy_data`), else
/// notes what was checked.
pub(super) fn check_existing_file(
    spec: &TargetSpec,
    raw: RawFd,
    name: &str,
    size: u64,
    write_len: u64,
    notes: &mut Vec<String>,
) -> Result<(), TargetError> {
    if size == 0 {
        notes.push("existing empty file".into());
        return Ok(());
    }
    let len = size.min(write_len);
    let scan = scan_fd(raw, len).map_err(|e| os_error(name, "read (data check)", e))?;
    let sigs = match scan.first_nonzero {
        Some(_) => {
            let mut head = vec![0u8; len.min(SIGNATURE_SPAN) as usize];
            pread_exact(raw, 0, &mut head).map_err(|e| os_error(name, "read (data check)", e))?;
            detect_signatures(&head)
        }
        None => Vec::new(),
    };
    verdict(spec, name, "existing file", len, &scan, &sigs, notes)
}

/// The data check of a device-dax device through its read-only mapping of `map_len`
/// bytes at `base` (all of which will be written): every byte is read. Refuses it if one
/// is non-zero (unless `spec.destroy_data`), else notes what was checked.
pub(super) fn check_device_mapping(
    spec: &TargetSpec,
    base: *const u8,
    map_len: u64,
    name: &str,
    notes: &mut Vec<String>,
) -> Result<(), TargetError> {
    // SAFETY: the caller's read-only mapping covers [base, base + map_len).
    let bytes = unsafe { std::slice::from_raw_parts(base, map_len as usize) };
    let scan = Scan {
        first_nonzero: first_nonzero(bytes).map(|i| i as u64),
        bytes_read: map_len,
        extents: 1,
    };
    let sigs = match scan.first_nonzero {
        Some(_) => detect_signatures(&bytes[..bytes.len().min(SIGNATURE_SPAN as usize)]),
        None => Vec::new(),
    };
    verdict(spec, name, "device", map_len, &scan, &sigs, notes)
}

/// Refusal or note from a scan of `len` bytes of `what`.
fn verdict(
    spec: &TargetSpec,
    name: &str,
    what: &str,
    len: u64,
    scan: &Scan,
    sigs: &[&str],
    notes: &mut Vec<String>,
) -> Result<(), TargetError> {
    let Some(off) = scan.first_nonzero else {
        notes.push(format!(
            "{what}: all {len} bytes to be written checked, all zero ({} bytes of data read in {} extents, the rest holes)",
            scan.bytes_read, scan.extents
        ));
        return Ok(());
    };
    let mut found = sigs.join(", ");
    if !found.is_empty() {
        found.push_str("; ");
    }
    found.push_str(&format!("non-zero bytes at offset {off}"));
    if !spec.destroy_data {
        return Err(TargetError::HoldsData {
            path: name.to_string(),
            found,
        });
    }
    notes.push(format!(
        "{what} held data ({found}); overwriting it as --destroy-data allows"
    ));
    Ok(())
}

/// Read every data extent of `[0, len)` of the file `fd` (holes skipped with
/// `lseek(SEEK_DATA/SEEK_HOLE)`; a filesystem without them reports the whole file as
/// data) and stop at the first non-zero byte.
pub fn scan_fd(fd: RawFd, len: u64) -> io::Result<Scan> {
    let mut scan = Scan::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut off = 0u64;
    while off < len {
        let Some(data) = seek(fd, off, libc::SEEK_DATA)? else {
            break; // no data at or after off
        };
        if data >= len {
            break;
        }
        let hole = seek(fd, data, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        scan.extents += 1;
        let mut pos = data;
        while pos < hole {
            if buf.is_empty() {
                buf = vec![0u8; READ_BUF];
            }
            let n = (hole - pos).min(READ_BUF as u64) as usize;
            let got = pread_some(fd, pos, &mut buf[..n])?;
            if got == 0 {
                // Shrunk under us: nothing more to read.
                return Ok(scan);
            }
            scan.bytes_read += got as u64;
            if let Some(i) = first_nonzero(&buf[..got]) {
                scan.first_nonzero = Some(pos + i as u64);
                return Ok(scan);
            }
            pos += got as u64;
        }
        off = hole.max(data + 1);
    }
    Ok(scan)
}

/// `lseek(fd, off, whence)`; None for ENXIO (no data / past the end). A filesystem or
/// kernel without SEEK_DATA/SEEK_HOLE (EINVAL) counts as all data: SEEK_DATA returns
/// `off`, SEEK_HOLE the end (None).
fn seek(fd: RawFd, off: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: plain syscall. The check reads with pread; the file offset is unused.
    let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
            Ok((whence == libc::SEEK_DATA).then_some(off))
        }
        _ => Err(e),
    }
}

/// One pread (retried on EINTR, continued on short reads); 0 only at end of file.
fn pread_some(fd: RawFd, off: u64, buf: &mut [u8]) -> io::Result<usize> {
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
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

fn pread_exact(fd: RawFd, off: u64, buf: &mut [u8]) -> io::Result<()> {
    let n = pread_some(fd, off, buf)?;
    // Shrunk under us: the rest reads as nothing.
    buf[n..].fill(0);
    Ok(())
}

/// How far into the target the signatures reach.
const SIGNATURE_SPAN: u64 = 0x10040 + 8;
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

/// Index of the first non-zero byte: whole 4 KiB blocks OR-reduced (vectorised), the
/// byte searched only in the block that has one.
fn first_nonzero(b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 4096;
    for (bi, blk) in b.chunks(BLOCK).enumerate() {
        let (words, rest) = blk.as_chunks::<8>();
        let acc = words.iter().fold(0u64, |a, w| a | u64::from_ne_bytes(*w))
            | rest.iter().fold(0u64, |a, &x| a | x as u64);
        if acc != 0 {
            return blk.iter().position(|&x| x != 0).map(|i| bi * BLOCK + i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;
    use std::fs;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;

    /// A sparse file of `size` bytes with `patches` written at their offsets.
    fn sparse_file(path: &Path, size: u64, patches: &[(u64, &[u8])]) {
        let f = fs::File::create(path).unwrap();
        f.set_len(size).unwrap();
        for (off, b) in patches {
            f.write_all_at(b, *off).unwrap();
        }
    }

    /// Does the filesystem of `path` report holes (SEEK_HOLE of a fresh sparse file)?
    fn reports_holes(path: &Path) -> bool {
        let f = fs::File::open(path).unwrap();
        matches!(seek(f.as_raw_fd(), 0, libc::SEEK_HOLE), Ok(Some(0)))
    }

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

        // Data in the last MiB.
        let r = d.join("tail.bin");
        write_file(&r, 3 * MIB as usize, &[(3 * MIB as usize - 1, b"z")]);
        let e = Target::open(&spec(&r), 3 * MIB).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("non-zero bytes at offset {}", 3 * MIB - 1)),
            "{e}"
        );
    }

    /// The class the old sampling check missed: a few bytes anywhere in the range that
    /// will be written, away from the first/last MiB and the sampled blocks.
    #[test]
    fn target_data_anywhere_in_a_sparse_file_is_found() {
        let d = TempDir::new("sparse-data");
        let size = 64 * MIB;
        // 2.5 MiB (the example), a point between two old 1 MiB samples, and
        // the last byte before the last MiB.
        for off in [5 * MIB / 2, 37 * MIB + 12_345, size - MIB - 1] {
            let p = d.join(&format!("at-{off}.bin"));
            sparse_file(&p, size, &[(off, b"abc")]);
            let e = Target::open(&spec(&p), size).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, TargetError::HoldsData { .. }), "{msg}");
            assert!(
                msg.contains(&format!("non-zero bytes at offset {off}")),
                "{msg}"
            );
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(msg.contains("--destroy-data"), "{msg}");
            let mut b = [0u8; 3];
            fs::File::open(&p)
                .unwrap()
                .read_exact_at(&mut b, off)
                .unwrap();
            assert_eq!(&b, b"abc", "file untouched");
            assert_eq!(fs::metadata(&p).unwrap().len(), size);
        }
        // Data beyond what will be written is not in the way (and is kept).
        let p = d.join("beyond.bin");
        sparse_file(&p, size, &[(40 * MIB, b"q")]);
        let t = Target::open(&spec(&p), 32 * MIB).unwrap();
        drop(t);
        let mut b = [0u8; 1];
        fs::File::open(&p)
            .unwrap()
            .read_exact_at(&mut b, 40 * MIB)
            .unwrap();
        assert_eq!(&b, b"q");
    }

    #[test]
    fn target_scan_reads_only_data_extents() {
        let d = TempDir::new("scan");
        let p = d.join("sparse.bin");
        // 16 GiB, no data at all.
        sparse_file(&p, 16 << 30, &[]);
        if !reports_holes(&p) {
            eprintln!("SKIP target_scan_reads_only_data_extents: no SEEK_HOLE here");
            return;
        }
        let f = fs::File::open(&p).unwrap();
        let s = scan_fd(f.as_raw_fd(), 16 << 30).unwrap();
        assert_eq!(s, Scan::default(), "a fully sparse file reads nothing");
        drop(f);
        let t = Target::open(&spec(&p), 2 * MIB).unwrap();
        assert!(
            t.info().notes.iter().any(|n| n.contains("all zero")),
            "{:?}",
            t.info().notes
        );
        drop(t);
        assert!(p.exists(), "an existing file is never removed");

        // One written 4 KiB block of zeros in a hole: read, counted, passes.
        let q = d.join("one-block.bin");
        sparse_file(&q, 1 << 30, &[(512 * MIB, &[0u8; 4096])]);
        let f = fs::File::open(&q).unwrap();
        let s = scan_fd(f.as_raw_fd(), 1 << 30).unwrap();
        assert_eq!(s.first_nonzero, None);
        assert!(s.bytes_read >= 4096 && s.bytes_read < 64 * MIB, "{s:?}");
        assert!(s.extents >= 1, "{s:?}");
        // The same block with a byte set at its end is found.
        fs::OpenOptions::new()
            .write(true)
            .open(&q)
            .unwrap()
            .write_all_at(b"\x01", 512 * MIB + 4095)
            .unwrap();
        let s = scan_fd(f.as_raw_fd(), 1 << 30).unwrap();
        assert_eq!(s.first_nonzero, Some(512 * MIB + 4095));
        // A range ending before the data does not see it.
        let s = scan_fd(f.as_raw_fd(), 512 * MIB).unwrap();
        assert_eq!(s.first_nonzero, None);
    }

    #[test]
    fn target_dense_zero_file_is_read_whole() {
        let d = TempDir::new("dense");
        let p = d.join("dense.bin");
        write_file(&p, 20 * MIB as usize, &[]);
        let f = fs::File::open(&p).unwrap();
        let s = scan_fd(f.as_raw_fd(), 20 * MIB).unwrap();
        assert_eq!(s.first_nonzero, None);
        assert_eq!(s.bytes_read, 20 * MIB, "every written byte is read");
        // A byte in the middle of the last read buffer.
        drop(f);
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all_at(b"\xff", 17 * MIB + 3)
            .unwrap();
        let e = Target::open(&spec(&p), 20 * MIB).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("non-zero bytes at offset {}", 17 * MIB + 3)),
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
        assert!(e.to_string().contains("offset 1080"), "{e}");
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
            let mut head = vec![0u8; SIGNATURE_SPAN as usize];
            head[off..off + sig.len()].copy_from_slice(sig);
            let found = detect_signatures(&head);
            assert!(found.iter().any(|f| f.contains(want)), "{want}: {found:?}");
        }
        assert!(detect_signatures(&vec![0u8; MIB as usize]).is_empty());
        assert!(detect_signatures(&[0u8; 16]).is_empty());
    }

    #[test]
    fn target_first_nonzero_and_meminfo() {
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
        let mut big = vec![0u8; 3 * 4096 + 5];
        assert_eq!(first_nonzero(&big), None);
        for i in [0, 4095, 4096, 8191, 3 * 4096 + 4] {
            big[i] = 7;
            assert_eq!(first_nonzero(&big), Some(i));
            big[i] = 0;
        }
    }
}
