//! Anonymous memory (no path): `map=mem`, the memmap lives in RAM. A private
//! `MAP_NORESERVE` mapping with `MADV_HUGEPAGE`; the transparent-hugepage mode is recorded.

use super::{
    base_page_size, os_error, read_bracketed, round_up, BackingInfo, Mapping, Target, TargetError,
    TargetKind,
};
use std::io;

pub(super) fn open_anonymous(len: u64) -> Result<Target, TargetError> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use std::path::Path;

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
}
