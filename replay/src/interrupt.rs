//! SIGINT, SIGTERM and SIGHUP, handled alike by `memmap-replay run`: each sets one
//! sticky "interrupted" flag that the runner reads between repeats, so the run takes
//! its normal way out (the current repeat finishes, the run file is written with
//! `interrupted: true` and every finished repeat, guards clean up) whichever signal
//! came and however many.
//!
//! A second signal does not stop faster: exiting from the handler would skip the
//! final write (the run file would keep `interrupted: false`, `complete: false`, like a
//! run still going) and the cleanup of a target file the run created. Only SIGKILL
//! stops at once, with those consequences.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

/// The signals that interrupt a run.
pub const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The interrupt state of a run: the flag the runner polls, and the first signal.
#[derive(Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    first: Arc<AtomicI32>,
}

impl Interrupt {
    /// Handlers for [`SIGNALS`] (a signal-hook thread: no work in the signal handler
    /// itself), each setting the flag and saying so on stderr.
    pub fn install() -> std::io::Result<Interrupt> {
        let it = Interrupt {
            flag: Arc::new(AtomicBool::new(false)),
            first: Arc::new(AtomicI32::new(0)),
        };
        let mut signals = signal_hook::iterator::Signals::new(SIGNALS)?;
        let me = it.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    me.note(sig);
                }
            })?;
        Ok(it)
    }

    /// Record `sig`: the flag is set and stays set.
    fn note(&self, sig: i32) {
        let again = self.flag.swap(true, Ordering::AcqRel);
        let _ = self
            .first
            .compare_exchange(0, sig, Ordering::AcqRel, Ordering::Acquire);
        // Not eprintln!: stderr may be a closed pipe, and a panic here would lose the
        // flag's message at best.
        let msg = if again {
            format!(
                "memmap-replay: {}: already stopping after the current repeat (SIGKILL stops at once and leaves the run file looking unfinished)\n",
                signal_name(sig)
            )
        } else {
            format!(
                "memmap-replay: {}: stopping after the current repeat; finished repeats are kept\n",
                signal_name(sig)
            )
        };
        let _ = std::io::stderr().write_all(msg.as_bytes());
    }

    /// The flag the runner polls between repeats.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// The first signal received, if any.
    pub fn first_signal(&self) -> Option<i32> {
        match self.first.load(Ordering::Acquire) {
            0 => None,
            s => Some(s),
        }
    }

    /// The exit status of an interrupted run: 128 + the first signal (130 for SIGINT),
    /// as a shell reports a command killed by it; 130 when only the flag was set.
    pub fn exit_code(&self) -> u8 {
        (128 + self.first_signal().unwrap_or(libc::SIGINT)).clamp(0, 255) as u8
    }
}

/// "SIGINT", "SIGTERM", "SIGHUP", else "signal N".
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        s => format!("signal {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_sticky_and_the_first_signal_decides_the_exit_code() {
        let it = Interrupt {
            flag: Arc::new(AtomicBool::new(false)),
            first: Arc::new(AtomicI32::new(0)),
        };
        assert_eq!(it.first_signal(), None);
        it.note(libc::SIGTERM);
        it.note(libc::SIGINT);
        it.note(libc::SIGTERM);
        assert!(it.flag().load(Ordering::Acquire));
        assert_eq!(it.first_signal(), Some(libc::SIGTERM));
        assert_eq!(it.exit_code(), 143);
    }
}
