//! `memmap-collect info` as a command-line tool.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// `memmap-collect info T | head -1`: the reader goes away, the collector must end
/// quietly (killed by SIGPIPE like other Unix tools), not panic on EPIPE.
#[test]
fn info_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let trace = repo_root().join("traces/real/testbed/hotplug-1g.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_memmap-collect"))
        .arg("info")
        .arg(&trace)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

fn info(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memmap-collect"))
        .arg("info")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out);
    String::from_utf8(out.stdout).unwrap()
}

/// The real fsdax map=dev trace: three memmap functions were given the same 4190208-pfn
/// range, each seen by a kprobe pair and function_graph; info counts the range once and
/// shows the kernel's durations per namespace, in text and in --json.
#[test]
fn info_shows_the_recorded_durations_per_namespace_counted_once() {
    let trace = repo_root().join("traces/real/testbed/fsdax-dev.jsonl");
    let t = trace.to_str().unwrap();
    let text = info(&[t]);
    assert!(
        text.contains(
            "memmap init (each call once, nested calls not added): 4190208 pages in 1586.291 ms"
        ),
        "{text}"
    );
    assert!(!text.contains("12570624"), "{text}");
    assert!(text.contains("namespace0.0   init   1586.291"), "{text}");
    let j: serde_json::Value = serde_json::from_str(&info(&[t, "--json"])).unwrap();
    assert_eq!(j["memmap_init"]["pages"], 4190208);
    let k = &j["kernel_recorded"][0];
    assert_eq!(k["name"], "namespace0.0");
    assert_eq!(k["init_ms"], 1586.291);
    assert_eq!(k["predicted_kernel_ms"], serde_json::Value::Null);
    let dmesg = k["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "dmesg")
        .unwrap();
    assert_eq!(
        (dmesg["pages"].as_u64(), dmesg["total_us"].as_f64()),
        (Some(4124672), Some(1548000.0))
    );
}
