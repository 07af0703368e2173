//! Targets behind a path: the dispatch on what the path is (regular file, device-dax
//! character device, refused block device or directory), and regular files on any
//! filesystem: plain page-cache files, DAX files mapped with `MAP_SYNC`, tmpfs and
//! hugetlbfs. Creating and preallocating the file, detecting the filesystem (statfs
//! magic, `/proc/self/mountinfo`, statx's DAX attribute) and mapping it.

use super::{
    base_page_size, cstring, devdax, guard, os_error, path_string, read_bracketed, round_up,
    BackingInfo, Mapping, Target, TargetError, TargetKind, TargetSpec,
};
use crate::target::flush::cpu_flush_kind;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub(super) const TMPFS_MAGIC: u64 = 0x0102_1994;
pub(super) const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
const STATX_ATTR_DAX: u64 = 0x0020_0000;

/// The mountinfo entry of a file's filesystem: (fstype, mount point, super options).
type MountEntry = (String, String, String);

pub(super) fn open_path(spec: &TargetSpec, path: &Path, len: u64) -> Result<Target, TargetError> {
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
                devdax::open_devdax(spec, path, md.rdev(), len)
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

/// What `fstat`, `fstatfs` and mountinfo say about an open regular file.
struct FileFacts {
    /// Current size of the file (0 for one this target created).
    size: u64,
    /// Filesystem type from mountinfo, else from the statfs magic.
    fs_name: String,
    mount: Option<MountEntry>,
    /// Tmpfs, Hugetlbfs or File: before the DAX check.
    kind_guess: TargetKind,
    /// Fault granule: the hugetlbfs page size, else the base page.
    page: u64,
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
    let facts = inspect_file(raw, path, &name)?;
    let page = facts.page;
    let map_len = round_up(len, page);
    let mut notes = Vec::new();

    // Data safety: read the existing contents of the range to be written first.
    if !created {
        guard::check_existing_file(spec, raw, &name, facts.size, map_len, &mut notes)?;
        if facts.size > map_len {
            notes.push(format!(
                "existing file is {} bytes; only the first {map_len} are mapped, it is not truncated",
                facts.size
            ));
        }
    }

    // Reserve the blocks now so a full filesystem fails here, not with SIGBUS later.
    preallocate(raw, &name, &facts.fs_name, 0, map_len, 0)?;

    let dax_attr = statx_dax(raw);
    if let Some((_, mp, opts)) = &facts.mount {
        if opts.split(',').any(|o| o == "dax" || o == "dax=always") {
            notes.push(format!("{mp} is mounted with {opts}"));
        }
    }
    let (mapping, map_sync) = map_file(raw, &name, &facts, map_len, &mut notes)?;
    let dax = map_sync || dax_attr == Some(true);
    let kind = file_kind(&facts, dax, map_sync, &mut notes);
    // Tmpfs notes shmem_enabled instead; THP is recorded for anonymous memory only.
    let thp = None;
    let persistent = dax && map_sync;
    let info = BackingInfo {
        kind,
        path: Some(name),
        filesystem: Some(facts.fs_name),
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

/// fstat (still a regular file?), fstatfs and mountinfo: the filesystem, the kind
/// before the DAX check, and the page size.
fn inspect_file(raw: RawFd, path: &Path, name: &str) -> Result<FileFacts, TargetError> {
    let st = fstat(raw, name)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(TargetError::Unsupported {
            path: name.to_string(),
            reason: "changed type while opening; not a regular file".into(),
        });
    }
    let sf = fstatfs(raw, name)?;
    let magic = sf.f_type as u64;
    let mount = mount_for_dev(st.st_dev, path);
    let fs_name = match (&mount, fs_name_from_magic(magic)) {
        (Some((t, _, _)), _) => t.clone(),
        (None, Some(n)) => n.to_string(),
        (None, None) => format!("unknown filesystem (magic {magic:#x})"),
    };
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
    Ok(FileFacts {
        size: st.st_size as u64,
        fs_name,
        mount,
        kind_guess,
        page,
    })
}

/// Map the file read-write. Every file except on hugetlbfs is tried with
/// `MAP_SHARED_VALIDATE|MAP_SYNC` first: success means DAX with synchronous page
/// faults; `EOPNOTSUPP` (not DAX) or `EINVAL` (kernel older than 4.15) falls back to
/// `MAP_SHARED` with a note. Returns the mapping and whether `MAP_SYNC` took.
fn map_file(
    raw: RawFd,
    name: &str,
    facts: &FileFacts,
    map_len: u64,
    notes: &mut Vec<String>,
) -> Result<(Mapping, bool), TargetError> {
    let fs_name = &facts.fs_name;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    if facts.kind_guess == TargetKind::Hugetlbfs {
        let m = Mapping::new(map_len as usize, rw, libc::MAP_SHARED, raw)
            .map_err(|e| os_error(name, "mmap", e))?;
        return Ok((m, false));
    }
    match Mapping::new(
        map_len as usize,
        rw,
        libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
        raw,
    ) {
        Ok(m) => Ok((m, true)),
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
                .map_err(|e| os_error(name, "mmap", e))?;
            Ok((m, false))
        }
        Err(e) => Err(os_error(name, "mmap (MAP_SYNC)", e)),
    }
}

/// The kind once the mapping is made (`dax-file` when DAX), with the notes that
/// explain it: MAP_SYNC or not, tmpfs's shmem_enabled, the hugetlbfs page size.
fn file_kind(facts: &FileFacts, dax: bool, map_sync: bool, notes: &mut Vec<String>) -> TargetKind {
    if map_sync {
        notes.push("MAP_SYNC mapping: DAX with synchronous page faults".into());
    } else if dax {
        notes.push(
            "statx reports DAX but MAP_SYNC failed: stores reach the media, \
             but block allocation is only durable after fsync; treated as not persistent"
                .into(),
        );
    }
    let kind = if dax {
        TargetKind::DaxFile
    } else {
        facts.kind_guess.clone()
    };
    if kind == TargetKind::Tmpfs {
        let shm = read_bracketed("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
        if let Some(s) = &shm {
            notes.push(format!("shmem_enabled={s}"));
        }
    }
    if kind == TargetKind::Hugetlbfs {
        notes.push(format!("hugetlbfs page size {} bytes", facts.page));
    }
    kind
}

pub(super) fn open_fd(path: &Path, flags: libc::c_int) -> Result<OwnedFd, TargetError> {
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

pub(super) fn fstat(fd: RawFd, name: &str) -> Result<libc::stat, TargetError> {
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
fn mount_for_dev(dev: u64, path: &Path) -> Option<MountEntry> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let canon = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut best: Option<(usize, MountEntry)> = None;
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
pub(super) fn preallocate(
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::TMPFS_MAGIC;
    use std::ffi::CString;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

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
}
