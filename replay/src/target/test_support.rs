//! Helpers shared by the target tests: temporary directories, tmpfs/hugetlbfs
//! mounts, specs and files with chosen contents.

use super::{Target, TargetSpec};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under temp_dir(), removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);
impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "memmap-target-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub(super) fn join(&self, n: &str) -> PathBuf {
        self.0.join(n)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs or hugetlbfs mounted on a temp dir, unmounted on drop.
pub(super) struct Mount(pub(super) TempDir);
impl Mount {
    pub(super) fn try_new(fstype: &str, opts: &str) -> Option<Mount> {
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

pub(super) fn spec(path: &Path) -> TargetSpec {
    TargetSpec {
        path: Some(path.to_path_buf()),
        ..Default::default()
    }
}

pub(super) fn write_file(path: &Path, size: usize, patches: &[(usize, &[u8])]) {
    let mut v = vec![0u8; size];
    for (off, b) in patches {
        v[*off..*off + b.len()].copy_from_slice(b);
    }
    fs::File::create(path).unwrap().write_all(&v).unwrap();
}

pub(super) fn read_byte(t: &Target, off: u64) -> u8 {
    assert!(off < t.len());
    unsafe { t.as_ptr().add(off as usize).read_volatile() }
}
