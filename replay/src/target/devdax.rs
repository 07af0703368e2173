//! Device-dax character devices (`/dev/daxX.Y`): `map=dev` on the namespace's own
//! media. Nothing is opened until sysfs confirms the `dax` subsystem; size and alignment
//! come from sysfs; the device is mapped read-only for the data check and made writable
//! only afterwards. Page faults on device-dax are always synchronous, so no `MAP_SYNC`.

use super::file::{fstat, open_fd};
use super::flush::cpu_flush_kind;
use super::{
    guard, os_error, path_string, read_u64, round_up, BackingInfo, Mapping, Target, TargetError,
    TargetKind, TargetSpec, MIB,
};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// Device-dax alignment assumed when sysfs does not say.
const DEFAULT_DAX_ALIGN: u64 = 2 * MIB;

pub(super) fn open_devdax(
    spec: &TargetSpec,
    path: &Path,
    rdev: u64,
    len: u64,
) -> Result<Target, TargetError> {
    let name = path_string(path);
    let (sysdir, busdir) = dax_sysfs_dirs(path, rdev, &name)?;
    let mut notes = Vec::new();
    let (size, align) = dax_size_and_align(&sysdir, &busdir, &name, &mut notes)?;
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
    let m = map_read_only(raw, &name, map_len, align)?;
    guard::check_device_mapping(spec, m.ptr, map_len, &name, &mut notes)?;
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

/// The device's sysfs directories (`/sys/dev/char/MAJ:MIN`, `/sys/bus/dax/devices/daxX.Y`),
/// once `subsystem` says `dax`. Decided from sysfs before opening: opening arbitrary
/// character devices (a watchdog, a tty) can have side effects.
fn dax_sysfs_dirs(path: &Path, rdev: u64, name: &str) -> Result<(PathBuf, PathBuf), TargetError> {
    let (maj, min) = (libc::major(rdev), libc::minor(rdev));
    let sysdir = PathBuf::from(format!("/sys/dev/char/{maj}:{min}"));
    let subsystem = fs::read_link(sysdir.join("subsystem"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if subsystem.as_deref() != Some("dax") {
        return Err(TargetError::NotDax {
            path: name.to_string(),
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
    Ok((sysdir, busdir))
}

/// Size and alignment from either sysfs directory; the alignment defaults to 2 MiB
/// (with a note) when neither has it.
fn dax_size_and_align(
    sysdir: &Path,
    busdir: &Path,
    name: &str,
    notes: &mut Vec<String>,
) -> Result<(u64, u64), TargetError> {
    let size = read_u64(sysdir.join("size"))
        .or_else(|| read_u64(busdir.join("size")))
        .ok_or_else(|| TargetError::NotDax {
            path: name.to_string(),
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
    Ok((size, align))
}

/// The read-only mapping the data check reads; a length the device rejects (`EINVAL`)
/// is reported as misaligned.
fn map_read_only(raw: RawFd, name: &str, map_len: u64, align: u64) -> Result<Mapping, TargetError> {
    Mapping::new(map_len as usize, libc::PROT_READ, libc::MAP_SHARED, raw).map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            TargetError::Misaligned {
                path: name.to_string(),
                what: "mapping length",
                value: map_len,
                align,
            }
        } else {
            os_error(name, "mmap", e)
        }
    })
}
