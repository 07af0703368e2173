//! The memory a memmap replay writes struct pages into.
//!
//! A [`Target`] is one contiguous, writable, `mmap`'d range. What backs it
//! decides what the replay measures:
//!
//! * anonymous memory (no path): `map=mem`, the memmap lives in RAM;
//! * a file on a DAX filesystem or a device-dax character device: `map=dev`,
//!   the memmap lives in the namespace's own (persistent) media;
//! * a regular file on any other filesystem, a tmpfs or a hugetlbfs file:
//!   page-cache backed stand-ins, useful for comparisons.
//!
//! Opening a target never writes over data it was not told it may destroy:
//! existing files and devices are sampled first and refused with
//! [`TargetError::HoldsData`] unless [`TargetSpec::destroy_data`] is set.
//! See `docs/targets.md`.
//!
//! One file per kind of backing and per concern: `anonymous` memory; `file`: regular,
//! DAX, tmpfs and hugetlbfs files (and the dispatch on a path); `devdax` character
//! devices; `guard`, which samples existing contents and refuses to overwrite data;
//! `flush`, the CPU cache write-back of persistent targets. This file holds what they
//! share: the spec, the kinds, the errors, the [`Target`] itself and its operations, and
//! the sysfs/procfs readers.

mod anonymous;
mod devdax;
mod file;
mod flush;
mod guard;
#[cfg(test)]
mod test_support;

pub use flush::{cpu_flush_kind, flush_range, CACHE_LINE};
pub use guard::Scan;

/// The data check alone, on the first `len` bytes of the file at `path` (read-only):
/// what [`Target::open`] reads before it writes anything. For measuring it
/// (`examples/target_check.rs`).
pub fn scan_file(path: &Path, len: u64) -> io::Result<Scan> {
    let f = fs::File::open(path)?;
    guard::scan_fd(f.as_raw_fd(), len)
}

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

const MADV_POPULATE_WRITE: libc::c_int = 23;

/// What to map. `path: None` is anonymous memory.
#[derive(Clone, Debug, Default)]
pub struct TargetSpec {
    /// A file (created if missing) or a device-dax character device.
    pub path: Option<PathBuf>,
    /// Allow overwriting a file or device that holds data (`--destroy-data`).
    pub destroy_data: bool,
    /// Do not remove a file this target created when it is dropped.
    pub keep_file: bool,
}

/// The kind of backing behind a [`Target`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// Private anonymous memory (RAM).
    Anonymous,
    /// A regular file on a non-DAX filesystem (page cache).
    File,
    /// A file on a DAX filesystem: loads and stores go to the media.
    DaxFile,
    /// A device-dax character device (`/dev/daxX.Y`).
    DevDax,
    /// A file on tmpfs (shmem, RAM).
    Tmpfs,
    /// A file on hugetlbfs (RAM in huge pages).
    Hugetlbfs,
}

/// What a [`Target`] turned out to be; goes into run records.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BackingInfo {
    pub kind: TargetKind,
    pub path: Option<String>,
    /// Filesystem type (`ext4`, `xfs`, `tmpfs`, ...); `None` for anonymous memory and devices.
    pub filesystem: Option<String>,
    /// Loads and stores reach the media directly (no page cache).
    pub dax: bool,
    /// The mapping was made with `MAP_SYNC` (page faults make metadata durable).
    pub map_sync: bool,
    /// Fault granule: base page size, the hugetlbfs page size or the device-dax alignment.
    pub page_size_bytes: u64,
    /// Transparent hugepage mode (`always`, `madvise`, `never`) for anonymous memory.
    pub thp: Option<String>,
    /// Writes reach the persistence domain after [`Target::flush`]: DAX with `MAP_SYNC`, or device-dax.
    pub persistent: bool,
    /// How [`Target::flush`] writes back: `clwb+sfence`, `clflushopt+sfence`, `clflush` or `none`.
    pub flush: String,
    /// Mapped length (the requested length rounded up to `page_size_bytes`).
    pub length_bytes: u64,
    /// Human-readable remarks on how the backing was chosen.
    pub notes: Vec<String>,
}

/// Why a target could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{path}: permission denied ({op}: {err})")]
    PermissionDenied {
        path: String,
        op: &'static str,
        err: io::Error,
    },
    #[error("{path}: {op} failed: {err}")]
    Io {
        path: String,
        op: &'static str,
        err: io::Error,
    },
    #[error("{path}: no space left on {fs} for {bytes} bytes{detail}")]
    NoSpace {
        path: String,
        fs: String,
        bytes: u64,
        /// Extra context such as the space available, starting with "; " or empty.
        detail: String,
    },
    #[error("{path}: not a DAX device: {reason}")]
    NotDax { path: String, reason: String },
    #[error(
        "{path}: is a block device; memmap-replay does not write to block devices. \
         Put a DAX filesystem on it (mkfs.ext4 or mkfs.xfs, mount -o dax) and pass a file on it, \
         or reconfigure the namespace as device-dax (ndctl create-namespace -m devdax) and pass /dev/daxX.Y"
    )]
    BlockDevice { path: String },
    #[error("{path}: size too small: it has {size} bytes, {needed} bytes are needed")]
    TooSmall {
        path: String,
        size: u64,
        needed: u64,
    },
    #[error(
        "{path}: holds data ({found}); refusing to overwrite it (pass --destroy-data to allow this)"
    )]
    HoldsData { path: String, found: String },
    #[error("{path}: {what} {value} is not a multiple of the device alignment of {align} bytes")]
    Misaligned {
        path: String,
        what: &'static str,
        value: u64,
        align: u64,
    },
    #[error("{path}: {reason}")]
    Unsupported { path: String, reason: String },
    #[error("{path}: range [{off}, {end}) is outside the {len}-byte mapping")]
    OutOfRange {
        path: String,
        off: u64,
        end: u64,
        len: u64,
    },
    #[error("{path}: cannot map 0 bytes")]
    ZeroLength { path: String },
}

fn os_error(path: &str, op: &'static str, err: io::Error) -> TargetError {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => TargetError::PermissionDenied {
            path: path.to_string(),
            op,
            err,
        },
        _ => TargetError::Io {
            path: path.to_string(),
            op,
            err,
        },
    }
}

/// A writable mapping the replay writes struct pages into.
pub struct Target {
    ptr: *mut u8,
    map_len: usize,
    fd: Option<OwnedFd>,
    info: BackingInfo,
    /// A file this target created and removes on drop (unless `keep_file`).
    created: Option<PathBuf>,
    keep_file: bool,
    /// Granule used to first-touch pages when `MADV_POPULATE_WRITE` is unavailable.
    touch_step: usize,
}

// SAFETY: the mapping is owned by the Target and lives until drop; all methods
// take &self and only issue syscalls or cache-line operations on the range.
// Coordinating writes to the memory is the caller's business.
unsafe impl Send for Target {}
unsafe impl Sync for Target {}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("ptr", &self.ptr)
            .field("len", &self.map_len)
            .field("fd", &self.fd.as_ref().map(|fd| fd.as_raw_fd()))
            .field("info", &self.info)
            .finish()
    }
}

/// An mmap that is unmapped on drop unless released into a Target.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(
        len: usize,
        prot: libc::c_int,
        flags: libc::c_int,
        fd: RawFd,
    ) -> Result<Mapping, io::Error> {
        // SAFETY: a fresh mapping at a kernel-chosen address.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    fn release(self) -> *mut u8 {
        let p = self.ptr;
        std::mem::forget(self);
        p
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own this mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn base_page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

fn path_string(p: &Path) -> String {
    p.display().to_string()
}

fn cstring(path: &Path) -> Result<CString, TargetError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| TargetError::Unsupported {
        path: path_string(path),
        reason: "path contains a NUL byte".into(),
    })
}
impl Target {
    /// Map `len` bytes. Refuses targets that hold data unless `spec.destroy_data`.
    ///
    /// The mapping is `len` rounded up to the backing's page size (see
    /// [`BackingInfo::length_bytes`]). A file that does not exist is created
    /// and removed again on drop unless `spec.keep_file`; an existing file is
    /// never truncated, only grown to `len` if shorter.
    pub fn open(spec: &TargetSpec, len: u64) -> Result<Target, TargetError> {
        match &spec.path {
            None => anonymous::open_anonymous(len),
            Some(path) => file::open_path(spec, path, len),
        }
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Mapped length in bytes (at least the length passed to [`Target::open`]).
    pub fn len(&self) -> u64 {
        self.map_len as u64
    }

    /// Always false: a target maps at least one page.
    pub fn is_empty(&self) -> bool {
        self.map_len == 0
    }

    pub fn info(&self) -> &BackingInfo {
        &self.info
    }

    fn name(&self) -> String {
        self.info
            .path
            .clone()
            .unwrap_or_else(|| "anonymous memory".into())
    }

    fn check_range(&self, off: u64, len: u64) -> Result<(u64, u64), TargetError> {
        let end = off.saturating_add(len);
        if end > self.len() {
            return Err(TargetError::OutOfRange {
                path: self.name(),
                off,
                end,
                len: self.len(),
            });
        }
        Ok((off, end))
    }

    /// Phase-1 "vmemmap populate": map and first-touch `[off, off+len)` so later
    /// stores do not fault. Uses `MADV_POPULATE_WRITE` (Linux 5.14+) and falls
    /// back to writing one byte per page (an atomic compare-exchange of the
    /// byte with itself, so contents are preserved). The range is widened to
    /// whole pages of `page_size_bytes`.
    pub fn populate(&self, off: u64, len: u64) -> Result<(), TargetError> {
        let (off, end) = self.check_range(off, len)?;
        let gran = self.info.page_size_bytes.max(1);
        let start = off / gran * gran;
        let end = round_up(end, gran).min(self.len());
        if start >= end {
            return Ok(());
        }
        // SAFETY: [start, end) lies inside our mapping.
        let rc = unsafe {
            libc::madvise(
                self.ptr.add(start as usize).cast(),
                (end - start) as usize,
                MADV_POPULATE_WRITE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // Kernel older than 5.14, or a mapping type it does not support.
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                let step = self.touch_step;
                let mut o = start as usize;
                while o < end as usize {
                    // SAFETY: inside the mapping; atomic so concurrent writers
                    // to the same byte are not lost.
                    let a = unsafe { AtomicU8::from_ptr(self.ptr.add(o)) };
                    let v = a.load(Ordering::Relaxed);
                    let _ = a.compare_exchange(v, v, Ordering::Relaxed, Ordering::Relaxed);
                    o += step;
                }
                Ok(())
            }
            Some(libc::ENOSPC) | Some(libc::ENOMEM) if self.fd.is_some() => {
                Err(TargetError::NoSpace {
                    path: self.name(),
                    fs: self
                        .info
                        .filesystem
                        .clone()
                        .unwrap_or_else(|| "device".into()),
                    bytes: end - start,
                    detail: format!("; populating [{start}, {end}): {err}"),
                })
            }
            _ => Err(os_error(
                &self.name(),
                "populate (MADV_POPULATE_WRITE)",
                err,
            )),
        }
    }

    /// Make `[off, off+len)` persistent where the backing is persistent:
    /// write back every 64-byte cache line (CLWB, else CLFLUSHOPT, else
    /// CLFLUSH) then SFENCE. A no-op when `info().persistent` is false.
    /// Callable from many threads on disjoint ranges. The range is clamped
    /// to the mapping.
    pub fn flush(&self, off: u64, len: u64) {
        if !self.info.persistent || len == 0 {
            return;
        }
        let end = off.saturating_add(len).min(self.len());
        if off >= end {
            return;
        }
        // SAFETY: the range lies inside our live mapping.
        unsafe { flush_range(self.ptr.add(off as usize), (end - off) as usize) }
    }

    /// Free the pages of `[off, off+len)` again where possible so a repeat
    /// starts cold; returns whether it did. The range is shrunk to whole
    /// pages (a range reaching the requested end covers the mapping's tail).
    ///
    /// * anonymous: `MADV_DONTNEED` (the range reads as zero afterwards);
    /// * files (any filesystem, tmpfs, hugetlbfs): `fallocate(PUNCH_HOLE)`,
    ///   then the range is preallocated again (`FALLOC_FL_KEEP_SIZE`) so a
    ///   later fault cannot hit ENOSPC/SIGBUS; the range reads as zero;
    /// * device-dax: nothing can be freed, returns `Ok(false)`.
    pub fn discard(&self, off: u64, len: u64) -> Result<bool, TargetError> {
        let (off, end) = self.check_range(off, len)?;
        let gran = self.info.page_size_bytes.max(1);
        let start = round_up(off, gran);
        let end = if end == self.len() {
            end
        } else {
            end / gran * gran
        };
        if start >= end {
            return Ok(false);
        }
        let n = end - start;
        match self.info.kind {
            TargetKind::DevDax => Ok(false),
            TargetKind::Anonymous => {
                // SAFETY: inside our private anonymous mapping.
                let rc = unsafe {
                    libc::madvise(
                        self.ptr.add(start as usize).cast(),
                        n as usize,
                        libc::MADV_DONTNEED,
                    )
                };
                if rc != 0 {
                    return Err(os_error(
                        &self.name(),
                        "discard (MADV_DONTNEED)",
                        io::Error::last_os_error(),
                    ));
                }
                Ok(true)
            }
            TargetKind::File | TargetKind::DaxFile | TargetKind::Tmpfs | TargetKind::Hugetlbfs => {
                let Some(fd) = self.fd.as_ref().map(|f| f.as_raw_fd()) else {
                    return Ok(false);
                };
                // SAFETY: plain syscall on our fd.
                let rc = unsafe {
                    libc::fallocate(
                        fd,
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        start as libc::off_t,
                        n as libc::off_t,
                    )
                };
                if rc != 0 {
                    let err = io::Error::last_os_error();
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
                    ) {
                        return Ok(false);
                    }
                    return Err(os_error(
                        &self.name(),
                        "discard (fallocate PUNCH_HOLE)",
                        err,
                    ));
                }
                let fs = self.info.filesystem.clone().unwrap_or_default();
                file::preallocate(fd, &self.name(), &fs, start, n, libc::FALLOC_FL_KEEP_SIZE)?;
                Ok(true)
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // SAFETY: we own the mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.map_len) };
        self.fd.take();
        if let Some(p) = self.created.take() {
            if !self.keep_file {
                let _ = fs::remove_file(p);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reading sysfs and procfs

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    let s = read_trimmed(path)?;
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The `[selected]` word of a sysfs mode file such as THP `enabled`.
fn read_bracketed(path: &str) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let a = s.find('[')?;
    let b = s[a..].find(']')? + a;
    Some(s[a + 1..b].to_string())
}

/// Available memory (`MemAvailable` from /proc/meminfo) in bytes.
pub fn mem_available_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("MemAvailable:")?;
        let mut it = rest.split_whitespace();
        let n: u64 = it.next()?.parse().ok()?;
        Some(match it.next() {
            Some("kB") | Some("KB") => n * 1024,
            _ => n,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn target_discard_frees_and_zeroes() {
        let a = Target::open(&TargetSpec::default(), 4 * MIB).unwrap();
        a.populate(0, a.len()).unwrap();
        unsafe { std::ptr::write_bytes(a.as_ptr(), 9, a.len() as usize) };
        assert!(a.discard(0, a.len()).unwrap());
        assert_eq!(read_byte(&a, 0), 0);
        assert_eq!(read_byte(&a, a.len() - 1), 0);
        // A sub-page range frees nothing.
        assert!(!a.discard(1, 10).unwrap());

        let d = TempDir::new("discard");
        let p = d.join("f.bin");
        let t = Target::open(&spec(&p), 4 * MIB).unwrap();
        unsafe { std::ptr::write_bytes(t.as_ptr(), 9, t.len() as usize) };
        assert!(t.discard(MIB, MIB).unwrap());
        assert_eq!(read_byte(&t, MIB), 0);
        assert_eq!(read_byte(&t, 2 * MIB - 1), 0);
        assert_eq!(read_byte(&t, 2 * MIB), 9);
        assert_eq!(read_byte(&t, MIB - 1), 9);
        // Still fully reserved after the discard.
        let md = fs::metadata(&p).unwrap();
        assert_eq!(md.len(), 4 * MIB);
        assert!(md.blocks() * 512 >= 4 * MIB, "blocks {}", md.blocks());
    }
}
