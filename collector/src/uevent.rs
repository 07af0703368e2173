//! Kernel uevents from the NETLINK_KOBJECT_UEVENT socket (what `udevadm monitor
//! --kernel` shows): memory block add/online/offline, nd and dax devices, pmem disks.
//! Written with libc: the socket is four calls and no crate wraps it better.

use memmap_model::trace::TraceEvent;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct UeventSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl UeventSocket {
    /// Bind to the kernel's uevent multicast group.
    pub fn open() -> io::Result<UeventSocket> {
        // SAFETY: plain socket/bind calls; the fd is owned right away.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_KOBJECT_UEVENT,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            // A large receive buffer: a namespace creation emits dozens of uevents at once.
            let size: libc::c_int = 4 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of_val(&size) as u32,
            );
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            addr.nl_groups = 1; // kernel events (udev's re-broadcasts are group 2)
            if libc::bind(
                fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&addr) as u32,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(UeventSocket {
                fd,
                buf: vec![0; 64 * 1024],
            })
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read every queued uevent (non-blocking). `Err` only for a real socket error;
    /// ENOBUFS (the kernel dropped messages) is returned as a count of lost batches.
    pub fn drain(&mut self, t_ns: u64, out: &mut Vec<TraceEvent>) -> io::Result<u64> {
        let mut lost = 0;
        loop {
            // SAFETY: recv into our own buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(lost),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        lost += 1;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            if let Some(ev) = parse(t_ns, &self.buf[..n as usize]) {
                out.push(ev);
            }
        }
    }
}

/// "ACTION@DEVPATH\0ACTION=add\0DEVPATH=...\0SUBSYSTEM=memory\0..." -> Uevent.
pub fn parse(t_ns: u64, msg: &[u8]) -> Option<TraceEvent> {
    let mut parts = msg.split(|&b| b == 0).filter(|p| !p.is_empty());
    let head = String::from_utf8_lossy(parts.next()?);
    let (mut action, mut devpath) = head
        .split_once('@')
        .map(|(a, d)| (a.to_string(), d.to_string()))?;
    let mut subsystem = String::new();
    for p in parts {
        let s = String::from_utf8_lossy(p);
        if let Some((k, v)) = s.split_once('=') {
            match k {
                "ACTION" => action = v.to_string(),
                "DEVPATH" => devpath = v.to_string(),
                "SUBSYSTEM" => subsystem = v.to_string(),
                _ => {}
            }
        }
    }
    Some(TraceEvent::Uevent {
        t_ns,
        action,
        devpath,
        subsystem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_kernel_uevent() {
        let m = b"online@/devices/system/memory/memory40\0ACTION=online\0DEVPATH=/devices/system/memory/memory40\0SUBSYSTEM=memory\0SEQNUM=2211\0";
        let Some(TraceEvent::Uevent {
            action,
            devpath,
            subsystem,
            t_ns,
        }) = parse(5, m)
        else {
            panic!()
        };
        assert_eq!(
            (action.as_str(), devpath.as_str(), subsystem.as_str(), t_ns),
            ("online", "/devices/system/memory/memory40", "memory", 5)
        );
        // udev's own "libudev" messages have no '@' header: ignored.
        assert!(parse(0, b"libudev\0\xfe\xed").is_none());
        assert!(parse(0, b"").is_none());
    }

    #[test]
    fn the_socket_opens_on_this_kernel() {
        let mut s = UeventSocket::open().expect("NETLINK_KOBJECT_UEVENT socket");
        let mut out = Vec::new();
        s.drain(0, &mut out).unwrap();
    }
}
