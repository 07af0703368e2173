//! The kernel log from /dev/kmsg: one record per read, "prio,seq,usec,flags;text".
//! `<dev> initialised N pages in M ms` lines also become structured events
//! (`import::dmesg::structured`, shared with the dmesg importer).

use crate::import::dmesg;
use memmap_model::trace::TraceEvent;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

pub struct Kmsg {
    f: std::fs::File,
    buf: Vec<u8>,
    /// Records overwritten before we read them (EPIPE).
    pub lost: u64,
}

impl Kmsg {
    /// Open /dev/kmsg; `from_start` reads the whole ring (boot harvest), otherwise only
    /// records logged from now on.
    pub fn open(from_start: bool) -> io::Result<Kmsg> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        if !from_start {
            f.seek(SeekFrom::End(0))?;
        }
        Ok(Kmsg {
            f,
            buf: vec![0; 16 * 1024],
            lost: 0,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.f.as_raw_fd()
    }

    /// Read every available record (non-blocking).
    pub fn drain(&mut self, out: &mut Vec<TraceEvent>) -> io::Result<()> {
        loop {
            match self.f.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => parse_record(&self.buf[..n], out),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    Some(libc::EINTR) => continue,
                    // The ring wrapped past our position: the next read continues.
                    Some(libc::EPIPE) => self.lost += 1,
                    _ => return Err(e),
                },
            }
        }
    }
}

/// One /dev/kmsg record; continuation lines (" KEY=value") are dropped.
pub fn parse_record(rec: &[u8], out: &mut Vec<TraceEvent>) {
    let s = String::from_utf8_lossy(rec);
    let Some((head, rest)) = s.split_once(';') else {
        return;
    };
    let mut h = head.split(',');
    let prio: u32 = h.next().and_then(|x| x.parse().ok()).unwrap_or(6);
    let _seq = h.next();
    let usec: u64 = h.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let text = rest.split('\n').next().unwrap_or("").to_string();
    let t_ns = usec.saturating_mul(1000);
    if let Some(ev) = dmesg::structured(t_ns, &text) {
        out.push(ev);
    }
    out.push(TraceEvent::KernelLog {
        t_ns,
        level: (prio & 7) as u8,
        text,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_their_structured_twin() {
        let mut out = Vec::new();
        parse_record(
            b"7,1234,27632000,-;memmap_init_zone_device initialised 4190208 pages in 566ms\n SUBSYSTEM=nd\n",
            &mut out,
        );
        assert!(
            out.iter().any(|e| matches!(
                e,
                TraceEvent::KernelLog {
                    level: 7,
                    t_ns: 27_632_000_000,
                    ..
                }
            )),
            "{out:?}"
        );
        assert!(
            out.iter().any(|e| matches!(
                e,
                TraceEvent::Initialised {
                    pages: 4190208,
                    ms: 566,
                    ..
                }
            )),
            "{out:?}"
        );
        parse_record(b"garbage without separator", &mut out);
        parse_record(b"x,y,z;text", &mut out);
        assert!(matches!(
            out.last(),
            Some(TraceEvent::KernelLog {
                t_ns: 0,
                level: 6,
                ..
            })
        ));
    }
}
