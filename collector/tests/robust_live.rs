//! The live recorder where things go wrong: the disk fills (a small tmpfs) while the
//! snapshot part or the events are written, SIGHUP and signals sent twice, a closed
//! stdout or stderr. Every way out must undo every kernel change (no instance, kprobe
//! group or state file of the collector's pid left) and every I/O error must name its
//! file. Needs root for the kernel parts; a test that cannot run says SKIP on stderr
//! (outside the test harness's capture) and why.

use memmap_collect::tracefs;
use memmap_model::trace::{Trace, TraceEvent};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share the kernel's tracefs: one at a time.
static KERNEL: Mutex<()> = Mutex::new(());

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memmap-collect")
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Printed past the harness's output capture: a skipped test must not look passed.
fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mc-robust-{}-{name}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

fn cstr(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// A tmpfs of a few KiB mounted for one test; unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(name: &str, bytes: u64) -> Result<SmallDisk, String> {
        let dir = tmp(name);
        let opts = std::ffi::CString::new(format!("size={bytes},mode=0755")).unwrap();
        let fstype = std::ffi::CString::new("tmpfs").unwrap();
        // SAFETY: mount(2) with valid NUL-terminated strings.
        let r = unsafe {
            libc::mount(
                fstype.as_ptr(),
                cstr(&dir).as_ptr(),
                fstype.as_ptr(),
                0,
                opts.as_ptr() as *const libc::c_void,
            )
        };
        if r != 0 {
            return Err(format!(
                "mount -t tmpfs -o size={bytes} tmpfs {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(SmallDisk { dir })
    }

    /// Fill it with a file until nothing is left.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
        let block = vec![0xa5u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // SAFETY: umount2 of the mount made above.
        unsafe { libc::umount2(cstr(&self.dir).as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a collector of pid `pid` could have left in the kernel or in the state dir.
fn leftovers(pid: u32) -> Vec<String> {
    let mut left = Vec::new();
    if let Ok(t) = tracefs::find() {
        let inst = t.join("instances").join(tracefs::instance_name(pid));
        if inst.exists() {
            let on = std::fs::read_to_string(inst.join("tracing_on")).unwrap_or_default();
            left.push(format!(
                "instance {} (tracing_on {})",
                inst.display(),
                on.trim()
            ));
        }
        let k = std::fs::read_to_string(t.join("kprobe_events")).unwrap_or_default();
        let group = format!("{}/", tracefs::kprobe_group(pid));
        left.extend(
            k.lines()
                .filter(|l| l.contains(&group))
                .map(|l| format!("kprobe {l}")),
        );
    }
    for f in [format!("{pid}.json"), format!("{pid}.json.tmp")] {
        let p = tracefs::state_dir().join(f);
        if p.exists() {
            left.push(format!("state file {}", p.display()));
        }
    }
    left
}

fn top_level_tracer() -> String {
    tracefs::find()
        .ok()
        .and_then(|t| std::fs::read_to_string(t.join("current_tracer")).ok())
        .unwrap_or_default()
}

fn output_of(mut c: Child) -> (ExitStatus, String) {
    let mut err = String::new();
    if let Some(mut e) = c.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    (c.wait().unwrap(), err)
}

/// `record` writing into `out` on a disk too small for it: exit 2, an error naming the
/// file and ENOSPC, nothing of its pid left in the kernel or the state dir.
fn record_on_a_full_disk(what: &str, out: &Path, command: &[&str]) {
    let tracer = top_level_tracer();
    let c = Command::new(bin())
        .args(["record", "-q", "--fault-period", "1", "-o"])
        .arg(out)
        .arg("--")
        .args(command)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id();
    let (st, err) = output_of(c);
    assert_eq!(st.code(), Some(2), "{what}: {st}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    let said = err
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_else(|| panic!("{what}: no error line: {err}"));
    assert!(
        said.contains(&out.display().to_string()) && said.contains("No space left on device"),
        "{what}: the error names the file and the cause: {said}"
    );
    let left = leftovers(pid);
    assert!(left.is_empty(), "{what}: left behind: {left:?}; {err}");
    assert_eq!(top_level_tracer(), tracer, "{what}: top-level tracer");
}

#[test]
fn a_full_disk_while_recording_undoes_everything_and_names_the_file() {
    const T: &str = "a_full_disk_while_recording_undoes_everything_and_names_the_file";
    if !is_root() {
        return skip(T, "needs root (tracefs, mount)");
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let disk = match SmallDisk::mount("events", 256 * 1024) {
        Ok(d) => d,
        Err(e) => return skip(T, &e),
    };
    // 20 000 marks through the instance's trace_marker (megabytes of events, whether
    // or not perf sampling works here). The command is still writing marks when the
    // collector stops on the error: its open trace_marker must not keep the instance.
    let script = "i=0; while [ $i -lt 20000 ]; do \
         echo \"mark $i: filling the small disk\" > \"$MEMMAP_COLLECT_MARKER\" || exit 9; \
         i=$((i+1)); done";
    record_on_a_full_disk("events", &disk.dir.join("r.jsonl"), &["sh", "-c", script]);
}

#[test]
fn a_disk_full_during_the_snapshot_part_undoes_everything_and_names_the_file() {
    const T: &str = "a_disk_full_during_the_snapshot_part_undoes_everything_and_names_the_file";
    if !is_root() {
        return skip(T, "needs root (tracefs, mount)");
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    // Room for half of this host's snapshot: the header fits, the snapshot's events do
    // not (they are flushed once the sources run, so the cleanup is needed).
    let full = tmp("snap").join("whole.jsonl");
    let st = Command::new(bin())
        .args(["snapshot", "-o"])
        .arg(&full)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let size = std::fs::metadata(&full).unwrap().len();
    let room = (size / 2).div_ceil(4096) * 4096;
    let disk = match SmallDisk::mount("snapshot", room.max(4096)) {
        Ok(d) => d,
        Err(e) => return skip(T, &e),
    };
    record_on_a_full_disk("snapshot part", &disk.dir.join("r.jsonl"), &["true"]);
}

#[test]
fn snapshot_into_a_full_disk_names_the_file() {
    const T: &str = "snapshot_into_a_full_disk_names_the_file";
    if !is_root() {
        return skip(T, "needs root (mount)");
    }
    let disk = match SmallDisk::mount("cmds", 64 * 1024) {
        Ok(d) => d,
        Err(e) => return skip(T, &e),
    };
    disk.fill();
    let out = disk.dir.join("s.jsonl");
    let o = Command::new(bin())
        .args(["snapshot", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&out.display().to_string()) && err.contains("No space left on device"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Starts `record` (stderr piped) and waits for its start mark in `out`.
fn start_recording(out: &Path, command: &[&str]) -> Child {
    let mut c = Command::new(bin())
        .args(["record", "-q", "-o"])
        .arg(out)
        .args(if command.is_empty() {
            vec![]
        } else {
            [&["--"][..], command].concat()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(out)
        .map(|s| s.contains("recording started"))
        .unwrap_or(false)
    {
        if let Some(st) = c.try_wait().unwrap() {
            panic!("the recording ended before it started: {st}");
        }
        // A deadline against a hung collector, not a timing assertion.
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "recording never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

#[test]
fn sighup_and_repeated_signals_stop_like_sigint() {
    const T: &str = "sighup_and_repeated_signals_stop_like_sigint";
    if !is_root() {
        return skip(T, "needs root (tracefs)");
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("signals");
    for (name, signals, with_command) in [
        ("hup", vec![libc::SIGHUP], true),
        ("hup-no-command", vec![libc::SIGHUP], false),
        ("int-int", vec![libc::SIGINT, libc::SIGINT], true),
        (
            "term-int-hup",
            vec![libc::SIGTERM, libc::SIGINT, libc::SIGHUP],
            true,
        ),
    ] {
        let out = dir.join(format!("{name}.jsonl"));
        let command: &[&str] = if with_command { &["sleep", "600"] } else { &[] };
        let c = start_recording(&out, command);
        let pid = c.id();
        for &s in &signals {
            // SAFETY: signalling our own child.
            assert_eq!(unsafe { libc::kill(pid as i32, s) }, 0);
        }
        let (st, err) = output_of(c);
        assert!(!err.contains("panicked"), "{name}: {err}");
        if with_command {
            // 128 + the signal it handled first (back-to-back signals: any order).
            assert!(
                signals.iter().any(|s| st.code() == Some(128 + s)),
                "{name}: {st}: {err}"
            );
        } else {
            assert_eq!(st.code(), Some(0), "{name}: the normal end: {err}");
        }
        let tr = Trace::read(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        let last_mark = tr.events.iter().rev().find_map(|e| match e {
            TraceEvent::Mark { text, .. } => Some(text.as_str()),
            _ => None,
        });
        assert!(
            last_mark.is_some_and(|m| m.contains("recording stopped")),
            "{name}: {last_mark:?}"
        );
        let left = leftovers(pid);
        assert!(left.is_empty(), "{name}: left behind: {left:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The write end of a pipe whose read end is already closed: every write to it fails
/// with EPIPE (no race with a reader that has not closed yet).
fn dead_pipe() -> Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two fds; we close the read end and own the write end.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::close(fds[0]);
        Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Runs `args` with stdout a pipe nobody reads.
fn with_closed_stdout(args: &[&str]) -> (ExitStatus, String) {
    let c = Command::new(bin())
        .args(args)
        .stdout(dead_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_of(c)
}

#[test]
fn printing_commands_end_quietly_on_a_closed_stdout() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tmp("closed");
    let trace = dir.join("s.jsonl");
    let st = Command::new(bin())
        .args(["snapshot", "-o"])
        .arg(&trace)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let t = trace.display().to_string();
    for args in [
        vec!["info", &t],
        vec!["info", &t, "--json"],
        vec!["boot", "--print-cmdline"],
        vec!["fault-workload", "--mib", "1"],
        vec!["--help"],
        vec!["record", "--help"],
    ] {
        let (st, err) = with_closed_stdout(&args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            st.success() || st.signal() == Some(libc::SIGPIPE),
            "{args:?}: {st}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_with_closed_stdout_and_stderr_still_finishes_and_cleans_up() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("closed-rec");
    let out = dir.join("r.jsonl");
    let o = out.display().to_string();
    // Not -q: every progress line goes to the dead stderr pipe.
    let mut c = Command::new(bin())
        .args(["record", "-o", &o, "--", "sh", "-c", "exit 5"])
        .stdout(dead_pipe())
        .stderr(dead_pipe())
        .spawn()
        .unwrap();
    let pid = c.id();
    let st = c.wait().unwrap();
    // A panic would be 101 (or an abort while unwinding through the cleanup).
    assert_eq!(st.code(), Some(5), "the command's code: {st}");
    let tr = Trace::read(&out).unwrap();
    assert!(tr
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::Mark { text, .. } if text.contains("recording stopped"))));
    let left = leftovers(pid);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_recorded_command_gets_sigpipe_at_its_default() {
    // The collector ignores SIGPIPE while recording; an ignored signal survives exec.
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("sigpipe");
    let out = dir.join("r.jsonl");
    let o = Command::new(bin())
        .args(["record", "-q", "-o"])
        .arg(&out)
        .args(["--", "grep", "^SigIgn:", "/proc/self/status"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    let mask = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16)
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored in the command: {line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
