//! The live recorder on this machine's real kernel: exit codes, marks, and that no
//! tracing state survives a normal exit, SIGTERM, or (after `cleanup`) SIGKILL.
//! Needs root (CI runs as root); as another user the test checks the refusal messages.

use memmap_model::trace::{Trace, TraceEvent};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

fn tracefs() -> PathBuf {
    // Mount tracefs like an admin would, so the collector's own mount/unmount does not
    // hide what it leaves in the (singleton) tracefs.
    memmap_collect::tracefs::find()
        .or_else(|_| memmap_collect::tracefs::mount())
        .expect("tracefs")
}

fn our_instances(t: &Path) -> Vec<String> {
    std::fs::read_dir(t.join("instances"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("memmap-collect-"))
                .collect()
        })
        .unwrap_or_default()
}

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mc-live-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn marks(t: &Trace) -> Vec<String> {
    t.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Mark { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn command_exit_code_marks_and_clean_exit() {
    if !is_root() {
        eprintln!("not root: covered by unprivileged_run_says_what_is_missing");
        return;
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tracefs();
    let f = out("cmd.jsonl");
    let st = Command::new(bin())
        .args(["record", "-q", "-o"])
        .arg(&f)
        .args([
            "--",
            "sh",
            "-c",
            "echo step-one > \"$MEMMAP_COLLECT_MARKER\"; /bin/true; exit 7",
        ])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7), "record exits with the command's code");
    let tr = Trace::read(&f).unwrap();
    let m = marks(&tr);
    assert!(m.iter().any(|x| x == "step-one"), "{m:?}");
    assert!(m.first().unwrap().contains("recording started"), "{m:?}");
    assert!(m.last().unwrap().contains("recording stopped"), "{m:?}");
    // The snapshot part is there and the kernel release is this one.
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(tr.header.kernel_release, rel.trim());
    assert!(tr
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::Traceable { .. })));
    // The command's tasks were scheduled: sched_switch samples of them were kept.
    let switches = tr
        .events
        .iter()
        .filter(
            |e| matches!(e, TraceEvent::Tracepoint { name, .. } if name == "sched:sched_switch"),
        )
        .count();
    assert!(switches > 0, "no sched_switch of the command's tasks");
    assert!(our_instances(&t).is_empty(), "{:?}", our_instances(&t));
}

#[test]
fn page_faults_of_the_command_are_sampled_by_either_source_or_not_at_all() {
    if !is_root() {
        return;
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    tracefs();
    for (source, period, name) in [
        ("software", "1", Some("software:page-faults")),
        ("tracepoint", "1", Some("exceptions:page_fault_user")),
        ("software", "0", None),
    ] {
        let f = out(&format!("faults-{source}-{period}.jsonl"));
        let st = Command::new(bin())
            .args([
                "record",
                "-q",
                "--fault-source",
                source,
                "--fault-period",
                period,
            ])
            .arg("-o")
            .arg(&f)
            .args(["--", bin(), "fault-workload", "--mib", "16"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let tr = Trace::read(&f).unwrap();
        let faults: Vec<_> = tr
            .events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Tracepoint { name, fields, .. }
                    if name == "software:page-faults" || name == "exceptions:page_fault_user" =>
                {
                    Some((name.as_str(), fields))
                }
                _ => None,
            })
            .collect();
        let lost: u64 = tr
            .events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Lost { count, .. } => Some(*count),
                _ => None,
            })
            .sum();
        let Some(name) = name else {
            assert!(
                faults.is_empty(),
                "--fault-period 0 sampled {}",
                faults.len()
            );
            continue;
        };
        // 16 MiB of 4 KiB pages = 4096 faults, plus the binary's own start-up faults;
        // anything the ring buffer dropped must be reported as lost.
        assert!(
            faults.len() as u64 + lost >= 4096,
            "{source}: {} fault samples + {lost} lost < 4096",
            faults.len()
        );
        assert!(faults.iter().all(|(n, _)| *n == name), "{source}: {name}");
        // Both sources give the address and the faulting instruction.
        assert!(
            faults.iter().all(|(_, f)| f["address"].as_u64().is_some()
                && f["ip"].as_u64().is_some_and(|ip| ip > 0)),
            "{source}: {:?}",
            faults.first()
        );
    }
}

#[test]
fn sigterm_stops_cleanly_and_sigkill_leaves_a_readable_file_cleaned_next_time() {
    if !is_root() {
        return;
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tracefs();
    for (sig, name) in [
        (libc::SIGTERM, "term"),
        (libc::SIGINT, "int"),
        (libc::SIGKILL, "kill"),
    ] {
        let f = out(&format!("{name}.jsonl"));
        let mut c = Command::new(bin())
            .args(["record", "-q", "--duration", "60s", "-o"])
            .arg(&f)
            .spawn()
            .unwrap();
        // Wait until the recording runs (its start mark is on disk).
        let t0 = Instant::now();
        while !std::fs::read_to_string(&f)
            .map(|s| s.contains("recording started"))
            .unwrap_or(false)
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "recording never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe { libc::kill(c.id() as i32, sig) };
        let t1 = Instant::now();
        let st = c.wait().unwrap();
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "{name}: slow to stop"
        );
        let tr =
            Trace::read(&f).unwrap_or_else(|e| panic!("{name}: unreadable after the signal: {e}"));
        if sig == libc::SIGKILL {
            assert!(st.code().is_none());
            let left = our_instances(&t);
            assert_eq!(
                left.len(),
                1,
                "a killed collector leaves its instance: {left:?}"
            );
            let c = Command::new(bin()).arg("cleanup").output().unwrap();
            let said = String::from_utf8_lossy(&c.stdout);
            assert!(said.contains("cleaned state of dead collector"), "{said}");
        } else {
            assert_eq!(st.code(), Some(0), "{name}");
            let m = marks(&tr);
            assert!(
                m.last().unwrap().contains("recording stopped"),
                "{name}: {m:?}"
            );
        }
        assert!(
            our_instances(&t).is_empty(),
            "{name}: {:?}",
            our_instances(&t)
        );
    }
}

#[test]
fn unprivileged_run_says_what_is_missing() {
    use std::os::unix::process::CommandExt;
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if is_root() {
        tracefs();
    }
    let dir = std::env::temp_dir().join(format!("mc-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    unsafe {
        libc::chmod(
            std::ffi::CString::new(dir.to_str().unwrap())
                .unwrap()
                .as_ptr(),
            0o777,
        )
    };
    let f = dir.join("nobody.jsonl");
    let mut cmd = Command::new(bin());
    cmd.args(["record", "-q", "--duration", "1s", "-o"]).arg(&f);
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    let st = cmd.status().unwrap();
    assert_eq!(st.code(), Some(0));
    let tr = Trace::read(&f).unwrap();
    let why: Vec<String> = tr
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Unavailable { source, reason } => Some(format!("{source}: {reason}")),
            _ => None,
        })
        .collect();
    let all = why.join("\n");
    assert!(
        all.contains("root") || all.contains("CAP_PERFMON") || all.contains("CAP_SYS_ADMIN"),
        "{all}"
    );
    // What can be read without privilege is still there.
    assert!(tr
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::MemoryBlock { .. })));
    assert!(!tr.header.kernel_release.is_empty());
}

#[test]
fn a_recording_without_sources_waits_for_its_command() {
    use std::os::unix::process::CommandExt;
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("mc-nosrc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    unsafe {
        libc::chmod(
            std::ffi::CString::new(dir.to_str().unwrap())
                .unwrap()
                .as_ptr(),
            0o777,
        )
    };
    let mut cmd = Command::new(bin());
    cmd.args([
        "record",
        "-q",
        "--no-perf",
        "--no-uevents",
        "--no-kmsg",
        "-o",
    ])
    .arg(dir.join("n.jsonl"))
    .args(["--", "sh", "-c", "sleep 0.5; exit 3"]);
    if is_root() {
        // Unprivileged: no tracefs instance either, so no source thread at all.
        cmd.uid(65534).gid(65534);
    }
    let t = Instant::now();
    let st = cmd.status().unwrap();
    assert_eq!(st.code(), Some(3));
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}
