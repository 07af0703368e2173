//! `memmap-export` as a command: runs and traces told apart by their `"format"` field,
//! mixed in one Parquet lake, and the errors that name what is wrong.

use memmap_export::run_tables::RUN_TABLES;
use memmap_export::trace_tables::TRACE_TABLES;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memmap-export-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn export(files: &[PathBuf], args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memmap-export"))
        .args(files)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// (path relative to the lake, bytes) of every file under `lake`, sorted.
fn lake_files(lake: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut v = Vec::new();
    walk(lake, lake, &mut v);
    v.sort();
    v
}

fn a_run() -> PathBuf {
    repo_root().join("traces/real/replay-dax/final/xfs-dax-duyck.run.json")
}

fn a_trace() -> PathBuf {
    repo_root().join("traces/real/testbed/hotplug-1g.jsonl")
}

/// Runs and traces in one call land in one lake, each part as a call of its own kind
/// alone writes it.
#[test]
fn runs_and_traces_mix_in_one_parquet_lake() {
    let dir = tmpdir("mixed");
    let o = export(&[a_trace(), a_run()], &["--parquet", "both"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let n = RUN_TABLES.len() + TRACE_TABLES.len();
    assert!(
        out.contains(&format!("parquet: {n} files under both")),
        "{out}"
    );
    // the runs' namespaces and the traces' are told apart in the summary
    assert!(
        out.contains("  namespaces ") && out.contains("  trace_namespaces "),
        "{out}"
    );

    let o = export(&[a_run()], &["--parquet", "apart"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("trace_"), "{out}");
    let o = export(&[a_trace()], &["--parquet", "apart"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("  traces ") && !out.contains("trace_"),
        "{out}"
    );

    let both = lake_files(&dir.join("both"));
    assert_eq!(both.len(), n);
    assert!(both == lake_files(&dir.join("apart")), "parts differ");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_chrome_trace_of_runs_and_traces_together_is_refused() {
    let dir = tmpdir("chrome-mixed");
    let o = export(&[a_run(), a_trace()], &["--chrome-trace", "x.json"], &dir);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("--chrome-trace") && e.contains("not both"),
        "{e}"
    );
    assert!(!dir.join("x.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_of_neither_kind_is_named_before_anything_is_written() {
    let dir = tmpdir("neither");
    let scenario = repo_root().join("traces/scenarios/qemu-16g.toml");
    let o = export(&[a_run(), scenario], &["--parquet", "lake"], &dir);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("qemu-16g.toml"), "{e}");
    assert!(
        e.contains("memmap-lab-run") && e.contains("memmap-lab-trace"),
        "says what was expected: {e}"
    );
    assert!(!dir.join("lake").exists(), "nothing written");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--chrome-trace` naming an input (or a device) is refused before anything is read or
/// written; the input is intact and no temporary file is left.
#[test]
fn a_chrome_trace_over_an_input_or_a_device_is_refused() {
    let dir = tmpdir("chrome-same");
    let run = dir.join("a.run.json");
    std::fs::copy(a_run(), &run).unwrap();
    let before = std::fs::read(&run).unwrap();
    for out in ["a.run.json", "./a.run.json"] {
        let o = export(std::slice::from_ref(&run), &["--chrome-trace", out], &dir);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains("same file as the input"), "{e}");
        assert_eq!(std::fs::read(&run).unwrap(), before, "input changed");
    }
    let o = export(
        std::slice::from_ref(&run),
        &["--chrome-trace", "/dev/null"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("character device"), "{}", stderr(&o));
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["a.run.json"], "nothing else written");
    // Another name works.
    let o = export(
        std::slice::from_ref(&run),
        &["--chrome-trace", "c.json"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.join("c.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hlog_needs_a_run_file() {
    let dir = tmpdir("hlog");
    let o = export(&[a_trace()], &["--hlog", "h"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--hlog: no run file"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_says_what_files_it_takes_and_the_exit_status() {
    let o = Command::new(env!("CARGO_BIN_EXE_memmap-export"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    let h = String::from_utf8_lossy(&o.stdout);
    for want in [
        "--parquet <DIR>",
        "--chrome-trace <FILE>",
        "--hlog <DIR>",
        "--host <NAME>",
        "memmap-lab-run",
        "memmap-lab-trace",
        "Exit status",
    ] {
        assert!(h.contains(want), "{want}: {h}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_memmap-export"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "no file: a usage error");
}
