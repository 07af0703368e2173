//! The real `memmap-replay` binary stopped by SIGINT, SIGTERM, SIGHUP and a double
//! SIGINT in the middle of a long run, and printing to a closed stdout: it exits
//! through its normal way out, with a run file that parses, says `interrupted: true`
//! and keeps every repeat finished before the signal; nothing panics.
//! No timing: the tests wait for the run file to hold a repeat, never for a duration.

use memmap_model::run::RunFile;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memmap-replay")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memmap-replay-sig-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// SIGKILLs the child if the test fails before it exited (no stray replays).
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A shipped scenario with far more repeats than the test will wait for.
fn start_long_run(out: &Path) -> Reaper {
    let c = Command::new(bin())
        .args([
            "run",
            "qemu-hotplug-128m-mom",
            "--strategy",
            "duyck",
            "--repeat",
            "10000", // the limit of --repeat (model::limits::MAX_REPEATS)
            "-o",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Reaper(Some(c))
}

/// Waits until the run file holds at least one finished repeat; returns how many.
/// (The file is replaced atomically after every repeat, so every read parses.)
fn wait_for_repeats(out: &Path, child: &mut Child) -> usize {
    let t0 = Instant::now();
    loop {
        if let Ok(rf) = RunFile::read(out) {
            if !rf.repeats.is_empty() {
                return rf.repeats.len();
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run ended before its first repeat: {st}");
        }
        // A deadline against a hung run, not a timing assertion.
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no repeat after 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(mut r: Reaper) -> (ExitStatus, String) {
    let mut c = r.0.take().unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (c.wait().unwrap(), err)
}

/// Sends `signals` (back to back) once a repeat is done; checks exit, run file, stderr.
fn interrupted_run_keeps_its_repeats(name: &str, signals: &[i32]) {
    let dir = tmpdir(name);
    let out = dir.join("run.json");
    let mut r = start_long_run(&out);
    let before = wait_for_repeats(&out, r.0.as_mut().unwrap());
    let pid = r.0.as_ref().unwrap().id() as i32;
    for &s in signals {
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, s) }, 0);
    }
    let (st, err) = finish(r);
    assert!(!err.contains("panicked"), "{name}: {err}");
    // 128 + the signal it handled first; signals sent back to back may be delivered
    // in any order (pending standard signals go lowest number first).
    assert!(
        signals.iter().any(|s| st.code() == Some(128 + s)),
        "{name}: exits 128 + a signal sent, not killed by it ({st}); stderr: {err}"
    );
    let rf = RunFile::read(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        rf.interrupted,
        "{name}: interrupted=false after {signals:?}"
    );
    assert!(!rf.complete, "{name}: an interrupted run is not complete");
    assert!(
        rf.repeats.len() >= before,
        "{name}: {} repeats kept, {before} were finished before the signal",
        rf.repeats.len()
    );
    for (i, rep) in rf.repeats.iter().enumerate() {
        assert_eq!(rep.index as usize, i, "{name}: repeats kept in order");
        assert!(rep.metrics.struct_pages_written > 0, "{name}: repeat {i}");
    }
    // Only the run file: no temporary file of the atomic rewrite left in the directory.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["run.json".to_string()], "{name}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_keeps_finished_repeats_and_says_interrupted() {
    interrupted_run_keeps_its_repeats("term", &[libc::SIGTERM]);
}

#[test]
fn sighup_keeps_finished_repeats_and_says_interrupted() {
    interrupted_run_keeps_its_repeats("hup", &[libc::SIGHUP]);
}

#[test]
fn sigint_keeps_finished_repeats_and_says_interrupted() {
    interrupted_run_keeps_its_repeats("int", &[libc::SIGINT]);
}

#[test]
fn a_second_signal_never_clears_interrupted() {
    // Was: the second Ctrl-C exited at once and left `interrupted: false`.
    interrupted_run_keeps_its_repeats("int-int", &[libc::SIGINT, libc::SIGINT]);
    interrupted_run_keeps_its_repeats("term-int-hup", &[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
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

/// Runs `args` with stdout a pipe whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> (ExitStatus, String) {
    let mut c = Command::new(bin())
        .args(args)
        .stdout(dead_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (c.wait().unwrap(), err)
}

#[test]
fn run_into_a_closed_stdout_saves_its_run_file_and_exits_0() {
    let dir = tmpdir("closed-stdout");
    for (i, json) in [false, true].into_iter().enumerate() {
        let out = dir.join(format!("run{i}.json"));
        let o = out.display().to_string();
        let mut args = vec![
            "run",
            "qemu-hotplug-128m-mom",
            "--strategy",
            "duyck",
            "--repeat",
            "2",
            "-o",
            &o,
        ];
        if json {
            args.push("--json");
        }
        let (st, err) = with_closed_stdout(&args);
        assert!(!err.contains("panicked"), "json={json}: {err}");
        assert!(err.trim().is_empty(), "json={json}: ends quietly: {err}");
        assert_eq!(st.code(), Some(0), "json={json}: {st}");
        let rf = RunFile::read(&out).unwrap();
        assert!(rf.complete && !rf.interrupted && rf.repeats.len() == 2);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupted_run_with_closed_stdout_and_stderr_still_saves_its_repeats() {
    // Every message (progress bar, signal notice, summary) goes to a dead pipe; a panic
    // would exit 101 and could leave the last write undone.
    let dir = tmpdir("closed-both");
    let out = dir.join("run.json");
    let mut c = Command::new(bin())
        .args([
            "run",
            "qemu-hotplug-128m-mom",
            "--strategy",
            "duyck",
            "--repeat",
            "10000", // the limit of --repeat (model::limits::MAX_REPEATS)
            "-o",
        ])
        .arg(&out)
        .stdout(dead_pipe())
        .stderr(dead_pipe())
        .spawn()
        .unwrap();
    let before = wait_for_repeats(&out, &mut c);
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGTERM) }, 0);
    let st = c.wait().unwrap();
    assert_eq!(st.code(), Some(128 + libc::SIGTERM), "{st}");
    let rf = RunFile::read(&out).unwrap();
    assert!(rf.interrupted && !rf.complete && rf.repeats.len() >= before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_printing_command_ends_quietly_on_a_closed_stdout() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tmpdir("closed-stdout-cmds");
    let run = dir.join("a.json");
    let (st, _) = with_closed_stdout(&[
        "run",
        "qemu-hotplug-128m-mom",
        "--strategy",
        "duyck",
        "--repeat",
        "2",
        "-o",
        &run.display().to_string(),
    ]);
    assert!(st.success());
    let r = run.display().to_string();
    for args in [
        vec!["strategies"],
        vec!["scenarios"],
        vec!["layout", "--namespace", "size=16G"],
        vec!["layout", "--namespace", "size=16G", "--json"],
        vec!["compare", &r, &r],
        vec!["--help"],
        vec!["run", "--help"],
    ] {
        let (st, err) = with_closed_stdout(&args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // Ended by SIGPIPE like any Unix filter, or done before noticing.
        assert!(
            st.success() || st.signal() == Some(libc::SIGPIPE),
            "{args:?}: {st}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
