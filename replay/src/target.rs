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

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Cache-line size used by [`flush_range`].
pub const CACHE_LINE: usize = 64;
/// Device-dax alignment assumed when sysfs does not say.
const DEFAULT_DAX_ALIGN: u64 = 2 * MIB;

const TMPFS_MAGIC: u64 = 0x0102_1994;
const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
const STATX_ATTR_DAX: u64 = 0x0020_0000;
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
            None => open_anonymous(len),
            Some(path) => open_path(spec, path, len),
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
                preallocate(fd, &self.name(), &fs, start, n, libc::FALLOC_FL_KEEP_SIZE)?;
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
// Anonymous memory

fn open_anonymous(len: u64) -> Result<Target, TargetError> {
    let name = "anonymous memory";
    if len == 0 {
        return Err(TargetError::ZeroLength { path: name.into() });
    }
    let page = base_page_size();
    let map_len = round_up(len, page);
    let m = Mapping::new(
        map_len as usize,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
    )
    .map_err(|e| os_error(name, "mmap", e))?;
    let mut notes = Vec::new();
    let thp = read_bracketed("/sys/kernel/mm/transparent_hugepage/enabled");
    // SAFETY: advising our own fresh mapping.
    if unsafe { libc::madvise(m.ptr.cast(), m.len, libc::MADV_HUGEPAGE) } != 0 {
        notes.push(format!(
            "madvise(MADV_HUGEPAGE) failed: {}",
            io::Error::last_os_error()
        ));
    }
    match thp.as_deref() {
        Some("never") => notes.push("transparent hugepages disabled: 4 KiB pages only".into()),
        None => notes.push("transparent hugepage mode unknown (no sysfs entry)".into()),
        _ => {}
    }
    let info = BackingInfo {
        kind: TargetKind::Anonymous,
        path: None,
        filesystem: None,
        dax: false,
        map_sync: false,
        page_size_bytes: page,
        thp,
        persistent: false,
        flush: "none".into(),
        length_bytes: map_len,
        notes,
    };
    Ok(Target {
        ptr: m.release(),
        map_len: map_len as usize,
        fd: None,
        info,
        created: None,
        keep_file: false,
        touch_step: page as usize,
    })
}

// ---------------------------------------------------------------------------
// Paths: regular files and device-dax

fn open_path(spec: &TargetSpec, path: &Path, len: u64) -> Result<Target, TargetError> {
    let name = path_string(path);
    if len == 0 {
        return Err(TargetError::ZeroLength { path: name });
    }
    match fs::metadata(path) {
        Ok(md) => {
            let ft = md.file_type();
            if ft.is_block_device() {
                Err(TargetError::BlockDevice { path: name })
            } else if ft.is_char_device() {
                open_devdax(spec, path, md.rdev(), len)
            } else if ft.is_dir() {
                Err(TargetError::Unsupported {
                    path: name,
                    reason: "is a directory; pass a file path (it will be created) or /dev/daxX.Y"
                        .into(),
                })
            } else if ft.is_file() {
                let fd = open_fd(path, libc::O_RDWR)?;
                open_file(spec, path, fd, len, false)
            } else {
                Err(TargetError::Unsupported {
                    path: name,
                    reason: "is neither a regular file nor a device-dax device".into(),
                })
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let fd = open_fd(path, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)?;
            let r = open_file(spec, path, fd, len, true);
            if r.is_err() {
                let _ = fs::remove_file(path);
            }
            r
        }
        Err(e) => Err(os_error(&name, "stat", e)),
    }
}

fn open_fd(path: &Path, flags: libc::c_int) -> Result<OwnedFd, TargetError> {
    let c = cstring(path)?;
    // SAFETY: valid C string; the returned fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(os_error(
            &path_string(path),
            if flags & libc::O_CREAT != 0 {
                "create"
            } else {
                "open"
            },
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd was just returned by open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: RawFd, name: &str) -> Result<libc::stat, TargetError> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(os_error(name, "fstat", io::Error::last_os_error()));
    }
    Ok(st)
}

fn fstatfs(fd: RawFd, name: &str) -> Result<libc::statfs, TargetError> {
    // SAFETY: zeroed statfs is a valid out-buffer.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall.
    if unsafe { libc::fstatfs(fd, &mut sf) } != 0 {
        return Err(os_error(name, "fstatfs", io::Error::last_os_error()));
    }
    Ok(sf)
}

/// Name of a filesystem from its statfs magic.
fn fs_name_from_magic(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        TMPFS_MAGIC => "tmpfs",
        HUGETLBFS_MAGIC => "hugetlbfs",
        0x8584_58f6 => "ramfs",
        0xF2F5_2010 => "f2fs",
        0x2FC1_2FC1 => "zfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x5346_544E => "ntfs",
        0x4d44 => "vfat",
        _ => return None,
    })
}

/// The mountinfo entry of the filesystem holding `dev`: (fstype, mount point, super options).
fn mount_for_dev(dev: u64, path: &Path) -> Option<(String, String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let canon = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut best: Option<(usize, (String, String, String))> = None;
    for line in text.lines() {
        let mut parts = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (parts.next(), parts.next()) else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.is_empty() || l[2] != want {
            continue;
        }
        let mp = l[4].replace("\\040", " ");
        let score = if canon.starts_with(&mp) {
            mp.len() + 1
        } else {
            0
        };
        let entry = (
            r[0].to_string(),
            mp,
            r.get(2).copied().unwrap_or("").to_string(),
        );
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, entry));
        }
    }
    best.map(|(_, e)| e)
}

/// statx's DAX attribute: Some(true/false) when the kernel reports it.
fn statx_dax(fd: RawFd) -> Option<bool> {
    // SAFETY: zeroed statx is a valid out-buffer; empty path with AT_EMPTY_PATH targets fd.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if rc != 0 || stx.stx_attributes_mask & STATX_ATTR_DAX == 0 {
        return None;
    }
    Some(stx.stx_attributes & STATX_ATTR_DAX != 0)
}

/// Reserve `[off, off+len)` of the file: fallocate(2), falling back to posix_fallocate.
fn preallocate(
    fd: RawFd,
    name: &str,
    fs_name: &str,
    off: u64,
    len: u64,
    mode: libc::c_int,
) -> Result<(), TargetError> {
    // SAFETY: plain syscall.
    let rc = unsafe { libc::fallocate(fd, mode, off as libc::off_t, len as libc::off_t) };
    let errno = if rc == 0 {
        return Ok(());
    } else {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    };
    let errno = if errno == libc::EOPNOTSUPP || errno == libc::ENOSYS {
        // posix_fallocate always extends the size; it emulates by writing
        // zeroes where the filesystem cannot allocate (only into holes).
        // SAFETY: plain call.
        unsafe { libc::posix_fallocate(fd, off as libc::off_t, len as libc::off_t) }
    } else {
        errno
    };
    match errno {
        0 => Ok(()),
        libc::ENOSPC | libc::EDQUOT => {
            let mut detail = String::new();
            // SAFETY: zeroed statfs is a valid out-buffer.
            let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstatfs(fd, &mut sf) } == 0 {
                let avail = sf.f_bavail as u64 * sf.f_bsize as u64;
                detail = format!("; {avail} bytes available");
                if sf.f_type as u64 == HUGETLBFS_MAGIC {
                    detail.push_str(&format!(
                        " ({} free huge pages of {} bytes; see /proc/sys/vm/nr_hugepages)",
                        sf.f_bavail, sf.f_bsize
                    ));
                }
            }
            if errno == libc::EDQUOT {
                detail.push_str(" (disk quota exceeded)");
            }
            Err(TargetError::NoSpace {
                path: name.to_string(),
                fs: fs_name.to_string(),
                bytes: len,
                detail,
            })
        }
        e => Err(os_error(
            name,
            "preallocate (fallocate)",
            io::Error::from_raw_os_error(e),
        )),
    }
}

fn open_file(
    spec: &TargetSpec,
    path: &Path,
    fd: OwnedFd,
    len: u64,
    created: bool,
) -> Result<Target, TargetError> {
    let name = path_string(path);
    let raw = fd.as_raw_fd();
    let st = fstat(raw, &name)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(TargetError::Unsupported {
            path: name,
            reason: "changed type while opening; not a regular file".into(),
        });
    }
    let sf = fstatfs(raw, &name)?;
    let magic = sf.f_type as u64;
    let mount = mount_for_dev(st.st_dev, path);
    let fs_name = match (&mount, fs_name_from_magic(magic)) {
        (Some((t, _, _)), _) => t.clone(),
        (None, Some(n)) => n.to_string(),
        (None, None) => format!("unknown filesystem (magic {magic:#x})"),
    };
    let mut notes = Vec::new();
    let kind_guess = match magic {
        TMPFS_MAGIC => TargetKind::Tmpfs,
        HUGETLBFS_MAGIC => TargetKind::Hugetlbfs,
        _ => TargetKind::File,
    };
    let base = base_page_size();
    let page = if kind_guess == TargetKind::Hugetlbfs {
        (sf.f_bsize as u64).max(base)
    } else {
        base
    };
    let map_len = round_up(len, page);

    // Data safety: sample the existing contents before anything is written.
    let size = st.st_size as u64;
    if !created {
        if size == 0 {
            notes.push("existing empty file".into());
        } else {
            let found = find_data(size, |off, buf| pread_exact(raw, off, buf))
                .map_err(|e| os_error(&name, "read (data check)", e))?;
            match found {
                Some(found) if !spec.destroy_data => {
                    return Err(TargetError::HoldsData { path: name, found });
                }
                Some(found) => notes.push(format!(
                    "existing file held data ({found}); overwriting it as --destroy-data allows"
                )),
                None => notes.push(format!("existing file of {size} bytes sampled all-zero")),
            }
        }
        if size > map_len {
            notes.push(format!(
                "existing file is {size} bytes; only the first {map_len} are mapped, it is not truncated"
            ));
        }
    }

    // Reserve the blocks now so a full filesystem fails here, not with SIGBUS later.
    preallocate(raw, &name, &fs_name, 0, map_len, 0)?;

    let dax_attr = statx_dax(raw);
    if let Some((_, mp, opts)) = &mount {
        if opts.split(',').any(|o| o == "dax" || o == "dax=always") {
            notes.push(format!("{mp} is mounted with {opts}"));
        }
    }

    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let (mapping, map_sync) = if kind_guess == TargetKind::Hugetlbfs {
        let m = Mapping::new(map_len as usize, rw, libc::MAP_SHARED, raw)
            .map_err(|e| os_error(&name, "mmap", e))?;
        (m, false)
    } else {
        match Mapping::new(
            map_len as usize,
            rw,
            libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
            raw,
        ) {
            Ok(m) => (m, true),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                ) =>
            {
                let why = if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                    "EOPNOTSUPP"
                } else {
                    "EINVAL"
                };
                notes.push(format!(
                    "MAP_SYNC refused ({why}): {fs_name} mapping is not DAX; using MAP_SHARED"
                ));
                let m = Mapping::new(map_len as usize, rw, libc::MAP_SHARED, raw)
                    .map_err(|e| os_error(&name, "mmap", e))?;
                (m, false)
            }
            Err(e) => return Err(os_error(&name, "mmap (MAP_SYNC)", e)),
        }
    };
    let dax = map_sync || dax_attr == Some(true);
    if map_sync {
        notes.push("MAP_SYNC mapping: DAX with synchronous page faults".into());
    } else if dax {
        notes.push(
            "statx reports DAX but MAP_SYNC failed: stores reach the media, \
             but block allocation is only durable after fsync; treated as not persistent"
                .into(),
        );
    }
    let kind = if dax { TargetKind::DaxFile } else { kind_guess };
    let thp = match kind {
        TargetKind::Tmpfs => {
            let shm = read_bracketed("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
            if let Some(s) = &shm {
                notes.push(format!("shmem_enabled={s}"));
            }
            None
        }
        _ => None,
    };
    if kind == TargetKind::Hugetlbfs {
        notes.push(format!("hugetlbfs page size {page} bytes"));
    }
    let persistent = dax && map_sync;
    let info = BackingInfo {
        kind,
        path: Some(name),
        filesystem: Some(fs_name),
        dax,
        map_sync,
        page_size_bytes: page,
        thp,
        persistent,
        flush: if persistent { cpu_flush_kind() } else { "none" }.into(),
        length_bytes: map_len,
        notes,
    };
    Ok(Target {
        ptr: mapping.release(),
        map_len: map_len as usize,
        fd: Some(fd),
        info,
        created: created.then(|| path.to_path_buf()),
        keep_file: spec.keep_file,
        touch_step: page as usize,
    })
}

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

fn open_devdax(spec: &TargetSpec, path: &Path, rdev: u64, len: u64) -> Result<Target, TargetError> {
    let name = path_string(path);
    let (maj, min) = (libc::major(rdev), libc::minor(rdev));
    let sysdir = PathBuf::from(format!("/sys/dev/char/{maj}:{min}"));
    // Decide from sysfs before opening: opening arbitrary character devices
    // (a watchdog, a tty) can have side effects.
    let subsystem = fs::read_link(sysdir.join("subsystem"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if subsystem.as_deref() != Some("dax") {
        return Err(TargetError::NotDax {
            path: name,
            reason: format!(
                "character device {maj}:{min} belongs to subsystem {}, not dax",
                subsystem.as_deref().unwrap_or("unknown")
            ),
        });
    }
    let dev_name = fs::canonicalize(&sysdir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let busdir = PathBuf::from(format!("/sys/bus/dax/devices/{dev_name}"));
    let mut notes = Vec::new();
    let size = read_u64(sysdir.join("size"))
        .or_else(|| read_u64(busdir.join("size")))
        .ok_or_else(|| TargetError::NotDax {
            path: name.clone(),
            reason: format!("cannot read its size from {}/size", sysdir.display()),
        })?;
    let align = match read_u64(sysdir.join("align"))
        .or_else(|| read_u64(busdir.join("align")))
        .filter(|a| *a > 0)
    {
        Some(a) => a,
        None => {
            notes.push(format!(
                "device alignment not in sysfs; assuming {DEFAULT_DAX_ALIGN} bytes"
            ));
            DEFAULT_DAX_ALIGN
        }
    };
    let map_len = round_up(len, align);
    if map_len > size {
        return Err(TargetError::TooSmall {
            path: name,
            size,
            needed: map_len,
        });
    }
    if map_len != len {
        notes.push(format!(
            "length rounded up from {len} to {map_len} bytes (device alignment {align})"
        ));
    }
    let fd = open_fd(path, libc::O_RDWR)?;
    let raw = fd.as_raw_fd();
    let st = fstat(raw, &name)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != rdev {
        return Err(TargetError::Unsupported {
            path: name,
            reason: "changed while opening".into(),
        });
    }
    // Map read-only first and sample it before anything is written.
    let m =
        Mapping::new(map_len as usize, libc::PROT_READ, libc::MAP_SHARED, raw).map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) {
                TargetError::Misaligned {
                    path: name.clone(),
                    what: "mapping length",
                    value: map_len,
                    align,
                }
            } else {
                os_error(&name, "mmap", e)
            }
        })?;
    let base = m.ptr;
    let found = find_data(map_len, |off, buf| {
        // SAFETY: find_data only reads inside [0, map_len).
        unsafe {
            std::ptr::copy_nonoverlapping(base.add(off as usize), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    })
    .map_err(|e| os_error(&name, "read (data check)", e))?;
    match found {
        Some(found) if !spec.destroy_data => {
            return Err(TargetError::HoldsData { path: name, found });
        }
        Some(found) => notes.push(format!(
            "device held data ({found}); overwriting it as --destroy-data allows"
        )),
        None => notes.push("device sampled all-zero".into()),
    }
    // SAFETY: our mapping; the fd is open read-write.
    if unsafe { libc::mprotect(m.ptr.cast(), m.len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
        return Err(os_error(&name, "mprotect", io::Error::last_os_error()));
    }
    notes.push("device-dax: page faults are always synchronous; MAP_SYNC not needed".into());
    let info = BackingInfo {
        kind: TargetKind::DevDax,
        path: Some(name),
        filesystem: None,
        dax: true,
        map_sync: false,
        page_size_bytes: align,
        thp: None,
        persistent: true,
        flush: cpu_flush_kind().into(),
        length_bytes: map_len,
        notes,
    };
    Ok(Target {
        ptr: m.release(),
        map_len: map_len as usize,
        fd: Some(fd),
        info,
        created: None,
        keep_file: true,
        touch_step: align as usize,
    })
}

// ---------------------------------------------------------------------------
// Data detection

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

// ---------------------------------------------------------------------------
// Cache flushing

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
    use super::*;
    use std::io::Write;
    use std::process::Command;
    use std::sync::atomic::AtomicUsize;

    /// A fresh directory under temp_dir(), removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "memmap-target-{}-{}-{tag}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn join(&self, n: &str) -> PathBuf {
            self.0.join(n)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A tmpfs or hugetlbfs mounted on a temp dir, unmounted on drop.
    struct Mount(TempDir);
    impl Mount {
        fn try_new(fstype: &str, opts: &str) -> Option<Mount> {
            let d = TempDir::new(fstype);
            let ok = Command::new("mount")
                .args(["-t", fstype, "-o", opts, fstype])
                .arg(&d.0)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            ok.then_some(Mount(d))
        }
    }
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0 .0).status();
        }
    }

    fn spec(path: &Path) -> TargetSpec {
        TargetSpec {
            path: Some(path.to_path_buf()),
            ..Default::default()
        }
    }

    fn write_file(path: &Path, size: usize, patches: &[(usize, &[u8])]) {
        let mut v = vec![0u8; size];
        for (off, b) in patches {
            v[*off..*off + b.len()].copy_from_slice(b);
        }
        fs::File::create(path).unwrap().write_all(&v).unwrap();
    }

    fn read_byte(t: &Target, off: u64) -> u8 {
        assert!(off < t.len());
        unsafe { t.as_ptr().add(off as usize).read_volatile() }
    }

    #[test]
    fn target_anonymous_open_populate_write_read() {
        let t = Target::open(&TargetSpec::default(), 3 * MIB + 5).unwrap();
        let page = base_page_size();
        assert_eq!(t.len(), round_up(3 * MIB + 5, page));
        let i = t.info();
        assert_eq!(i.kind, TargetKind::Anonymous);
        assert!(!i.persistent && !i.dax && !i.map_sync);
        assert_eq!(i.flush, "none");
        assert_eq!(i.length_bytes, t.len());
        if Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            assert!(matches!(
                i.thp.as_deref(),
                Some("always") | Some("madvise") | Some("never")
            ));
        }
        t.populate(0, t.len()).unwrap();
        let p = t.as_ptr();
        for off in (0..t.len()).step_by(4096) {
            unsafe { p.add(off as usize).write((off / 4096) as u8) };
        }
        for off in (0..t.len()).step_by(4096) {
            assert_eq!(read_byte(&t, off), (off / 4096) as u8);
        }
        assert!(matches!(
            t.populate(t.len() - 1, 2),
            Err(TargetError::OutOfRange { .. })
        ));
        // Zero length is refused plainly.
        let e = Target::open(&TargetSpec::default(), 0).unwrap_err();
        assert!(e.to_string().contains("0 bytes"), "{e}");
    }

    #[test]
    fn target_file_created_preallocated_and_removed() {
        let d = TempDir::new("create");
        let p = d.join("memmap.bin");
        let len = 4 * MIB;
        {
            let t = Target::open(&spec(&p), len).unwrap();
            let md = fs::metadata(&p).unwrap();
            assert_eq!(md.len(), len);
            assert!(
                md.blocks() * 512 >= len,
                "st_blocks {} does not cover {len} bytes",
                md.blocks()
            );
            assert!(t.info().filesystem.is_some());
            assert!(!t.info().persistent || t.info().dax);
            t.populate(0, len).unwrap();
            unsafe { std::ptr::write_bytes(t.as_ptr(), 0xAB, len as usize) };
            assert_eq!(read_byte(&t, len - 1), 0xAB);
        }
        assert!(!p.exists(), "created file must be removed on drop");
        // keep_file keeps it.
        {
            let s = TargetSpec {
                keep_file: true,
                ..spec(&p)
            };
            let _t = Target::open(&s, MIB).unwrap();
        }
        assert!(p.exists(), "keep_file must keep the file");
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
    fn target_all_zero_existing_file_accepted_not_truncated() {
        let d = TempDir::new("zero");
        let p = d.join("zero.bin");
        write_file(&p, 3 * MIB as usize, &[]);
        {
            let t = Target::open(&spec(&p), MIB).unwrap();
            assert_eq!(t.len(), MIB);
            assert!(t.info().notes.iter().any(|n| n.contains("not truncated")));
            unsafe { t.as_ptr().write(1) };
        }
        assert_eq!(fs::metadata(&p).unwrap().len(), 3 * MIB, "never truncated");
        assert!(p.exists());
        // A shorter existing all-zero file is grown.
        let q = d.join("short.bin");
        write_file(&q, 4096, &[]);
        let t = Target::open(&spec(&q), 2 * MIB).unwrap();
        assert_eq!(fs::metadata(&q).unwrap().len(), 2 * MIB);
        drop(t);
        // An existing empty file is fine too.
        let r = d.join("empty.bin");
        write_file(&r, 0, &[]);
        Target::open(&spec(&r), MIB).unwrap();
    }

    #[test]
    fn target_tmpfs_detected() {
        let shm = Path::new("/dev/shm");
        let is_tmpfs = {
            let c = CString::new("/dev/shm").unwrap();
            let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
            unsafe { libc::statfs(c.as_ptr(), &mut sf) == 0 && sf.f_type as u64 == TMPFS_MAGIC }
        };
        if !is_tmpfs {
            eprintln!("SKIP target_tmpfs_detected: /dev/shm is not a tmpfs");
            return;
        }
        let p = shm.join(format!("memmap-target-test-{}", std::process::id()));
        let t = Target::open(&spec(&p), 2 * MIB).unwrap();
        let i = t.info();
        assert_eq!(i.kind, TargetKind::Tmpfs);
        assert_eq!(i.filesystem.as_deref(), Some("tmpfs"));
        assert!(!i.dax && !i.persistent);
        t.populate(0, t.len()).unwrap();
        unsafe { t.as_ptr().write(7) };
        assert!(t.discard(0, t.len()).unwrap());
        assert_eq!(read_byte(&t, 0), 0);
        drop(t);
        assert!(!p.exists());
    }

    #[test]
    fn target_enospc_is_plain_error() {
        let Some(m) = Mount::try_new("tmpfs", "size=1m") else {
            eprintln!("SKIP target_enospc_is_plain_error: cannot mount a tmpfs here");
            return;
        };
        let p = m.0.join("big.bin");
        let e = Target::open(&spec(&p), 8 * MIB).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TargetError::NoSpace { .. }), "{msg}");
        assert!(
            msg.contains(&format!("no space left on tmpfs for {} bytes", 8 * MIB)),
            "{msg}"
        );
        assert!(!p.exists(), "a file we created is removed after a failure");
    }

    #[test]
    fn target_hugetlbfs_detected() {
        let Some(m) = Mount::try_new("hugetlbfs", "mode=0700") else {
            eprintln!("SKIP target_hugetlbfs_detected: cannot mount hugetlbfs here");
            return;
        };
        let p = m.0.join("huge.bin");
        match Target::open(&spec(&p), 1) {
            Ok(t) => {
                assert_eq!(t.info().kind, TargetKind::Hugetlbfs);
                assert!(t.info().page_size_bytes >= 2 * MIB);
                assert_eq!(t.len(), t.info().page_size_bytes);
                t.populate(0, 1).unwrap();
                unsafe { t.as_ptr().write(1) };
            }
            // No huge pages reserved on this machine: the error names hugetlbfs.
            Err(e) => {
                eprintln!("hugetlbfs: {e}");
                assert!(matches!(e, TargetError::NoSpace { .. }), "{e}");
                assert!(e.to_string().contains("no space left on hugetlbfs"), "{e}");
            }
        }
    }

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

    #[test]
    fn target_map_sync_on_non_dax_file_reports_not_dax() {
        let d = TempDir::new("mapsync");
        let t = Target::open(&spec(&d.join("f.bin")), MIB).unwrap();
        let i = t.info();
        if i.dax {
            eprintln!("temp dir is on a DAX filesystem: {:?}", i.notes);
            assert!(i.map_sync && i.persistent);
            return;
        }
        assert!(!i.map_sync && !i.persistent);
        assert_eq!(i.flush, "none");
        assert!(
            i.notes
                .iter()
                .any(|n| n.contains("MAP_SYNC") && n.contains("not DAX")),
            "{:?}",
            i.notes
        );
        let j = serde_json::to_value(i).unwrap();
        assert!(matches!(j["kind"].as_str(), Some("file") | Some("tmpfs")));
    }

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

    #[test]
    fn target_block_and_char_devices_refused() {
        let blk = [
            "/dev/vda",
            "/dev/sda",
            "/dev/nvme0n1",
            "/dev/loop0",
            "/dev/pmem0",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device()));
        match blk {
            Some(b) => {
                let e = Target::open(&spec(b), MIB).unwrap_err();
                assert!(matches!(e, TargetError::BlockDevice { .. }), "{e}");
                assert!(e.to_string().contains("devdax"), "{e}");
            }
            None => eprintln!("no block device to test the refusal with"),
        }
        let e = Target::open(&spec(Path::new("/dev/null")), MIB).unwrap_err();
        assert!(matches!(e, TargetError::NotDax { .. }), "{e}");
        assert!(e.to_string().contains("not a DAX device"), "{e}");
        let d = TempDir::new("dir");
        let e = Target::open(&spec(&d.0), MIB).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn target_permission_denied_is_plain() {
        let d = TempDir::new("perm");
        let e = Target::open(&spec(&d.join("no/such/dir/f.bin")), MIB).unwrap_err();
        assert!(e.to_string().contains("No such file"), "{e}");
        let is_root = unsafe { libc::geteuid() } == 0;
        if is_root {
            eprintln!("running as root: permission check only covers the message format");
            let e = os_error("/x", "open", io::Error::from_raw_os_error(libc::EACCES));
            assert_eq!(
                e.to_string(),
                "/x: permission denied (open: Permission denied (os error 13))"
            );
            return;
        }
        let ro = d.join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
        let e = Target::open(&spec(&ro.join("f.bin")), MIB).unwrap_err();
        assert!(matches!(e, TargetError::PermissionDenied { .. }), "{e}");
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
