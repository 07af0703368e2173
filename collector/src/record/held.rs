//! The recorded command: forked, held before `exec` until every source is open, then
//! released; its exit code, and SIGTERM when the recording stops first.

use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The recorded command, forked but held before exec until the collector's sources are
/// open (so its first page faults are seen). std::process::Command cannot do this: its
/// spawn waits for the exec.
pub(super) struct HeldChild {
    pub pid: u32,
    release: Option<std::os::fd::OwnedFd>,
}

impl HeldChild {
    pub fn spawn(argv: &[String], marker: Option<&Path>) -> Result<HeldChild> {
        use std::ffi::CString;
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .context("command argument contains a NUL byte")?;
        let mut env: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| k != "MEMMAP_COLLECT_MARKER")
            .filter_map(|(k, v)| {
                let mut b = k.into_encoded_bytes();
                b.push(b'=');
                b.extend(v.into_encoded_bytes());
                CString::new(b).ok()
            })
            .collect();
        if let Some(m) = marker {
            env.push(CString::new(format!(
                "MEMMAP_COLLECT_MARKER={}",
                m.display()
            ))?);
        }
        let mut argp: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        argp.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("pipe");
        }
        // SAFETY: between fork and exec the child only calls async-signal-safe
        // functions (signal, read, close, execvpe, write, _exit) on memory prepared before.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("fork");
        }
        if pid == 0 {
            unsafe {
                // The collector ignores SIGPIPE while recording (it must clean up on
                // every way out); an ignored disposition survives exec, the command
                // gets the default back (`yes | head` must end).
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::close(fds[1]);
                let mut b = 0u8;
                libc::read(fds[0], &mut b as *mut u8 as *mut libc::c_void, 1);
                libc::close(fds[0]);
                libc::execvpe(argp[0], argp.as_ptr(), envp.as_ptr());
                let msg = b"memmap-collect: cannot exec the command\n";
                libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
                libc::_exit(127);
            }
        }
        // SAFETY: the read end is the child's; we own the write end.
        unsafe {
            libc::close(fds[0]);
            Ok(HeldChild {
                pid: pid as u32,
                release: Some(std::os::fd::FromRawFd::from_raw_fd(fds[1])),
            })
        }
    }

    /// Let the child exec (closing the pipe ends its read).
    pub fn release(&mut self) {
        self.release = None;
    }

    /// Exit code once it exited (128+signal when killed).
    pub fn try_wait(&mut self) -> Result<Option<i32>> {
        self.release();
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
        if r < 0 {
            return Err(std::io::Error::last_os_error()).context("waitpid");
        }
        if r == 0 {
            return Ok(None);
        }
        Ok(Some(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            1
        }))
    }

    /// SIGTERM, then its exit code if it exits within `grace` (checked every 20 ms).
    pub fn terminate(&mut self, grace: Duration) -> Option<i32> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < grace {
            if let Ok(Some(code)) = self.try_wait() {
                return Some(code);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // An error before release: do not leave the held child waiting forever.
        if self.release.is_some() {
            // SAFETY: our own child.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
            let mut st = 0;
            unsafe { libc::waitpid(self.pid as i32, &mut st, 0) };
        }
    }
}
