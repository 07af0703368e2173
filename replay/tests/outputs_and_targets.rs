//! Issue 14, items 1 and 2: the run file (-o) is never an input or the target, a
//! target file the replay created is removed unless --keep-target, a file it did not
//! create is never removed. No timing is asserted.

use memmap_replay::runner::{self, RunArgs};
use memmap_replay::strategy::Strategy;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const SMALL: &str = r#"
name = "test-small"
source = "unit test"
[host]
nodes = 1
cpus_per_node = 2
[[namespace]]
name = "fs-dev"
size = "256M"
mode = "fsdax"
map = "dev"
node = 0
"#;

struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("memmap-replay-out-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn join(&self, n: &str) -> PathBuf {
        self.0.join(n)
    }
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn args(scenario: &Path, out: PathBuf, target: Option<PathBuf>) -> RunArgs {
    RunArgs {
        scenario: scenario.display().to_string(),
        strategy: Strategy::DUYCK,
        threads: None,
        sub_ranges: None,
        chunk_pages: None,
        sync_lock: None,
        target,
        destroy_data: false,
        persist_memmap: false,
        keep_target: false,
        window: None,
        faults: Some("none".into()),
        fault_threads: None,
        touches: None,
        fault_size: None,
        think_us: None,
        scale: 1.0,
        repeat: 1,
        verify: false,
        seed: 7,
        output: out,
        json: false,
    }
}

fn run(a: &RunArgs) -> anyhow::Result<memmap_model::run::RunFile> {
    runner::run(a, Arc::new(AtomicBool::new(false)))
}

#[test]
fn run_output_is_never_the_scenario_the_target_or_a_device() {
    let d = Dir::new("same");
    let scen = d.join("s.toml");
    std::fs::write(&scen, SMALL).unwrap();
    let target = d.join("memmap.bin");

    // -o the scenario (by its name and by a hard link): refused, scenario intact.
    let hard = d.join("hard.toml");
    std::fs::hard_link(&scen, &hard).unwrap();
    for out in [scen.clone(), hard.clone()] {
        let e = format!("{:#}", run(&args(&scen, out.clone(), None)).unwrap_err());
        assert!(e.contains("same file as the scenario/trace"), "{e}");
        assert!(e.contains(&out.display().to_string()), "{e}");
        assert_eq!(std::fs::read_to_string(&scen).unwrap(), SMALL);
    }
    // -o the target that does not exist yet: refused before the target is created.
    let e = format!(
        "{:#}",
        run(&args(&scen, target.clone(), Some(target.clone()))).unwrap_err()
    );
    assert!(e.contains("same file as the target"), "{e}");
    assert!(
        !target.exists(),
        "target created although the run was refused"
    );
    // -o an existing target (all zero, so the target check would accept it).
    std::fs::write(&target, vec![0u8; 4096]).unwrap();
    let e = format!(
        "{:#}",
        run(&args(&scen, target.clone(), Some(target.clone()))).unwrap_err()
    );
    assert!(e.contains("same file as the target"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), vec![0u8; 4096]);
    std::fs::remove_file(&target).unwrap();
    // -o a device node or a directory.
    for (out, want) in [
        (PathBuf::from("/dev/null"), "character device"),
        (d.0.clone(), "directory"),
    ] {
        let e = format!("{:#}", run(&args(&scen, out, None)).unwrap_err());
        assert!(e.contains(want) && e.contains("not a regular file"), "{e}");
    }
    assert!(std::fs::metadata("/dev/null")
        .map(|m| !m.is_file())
        .unwrap());
    assert_eq!(d.names(), ["hard.toml", "s.toml"], "nothing else written");
}

#[test]
fn created_target_removed_unless_keep_target_existing_never_removed() {
    let d = Dir::new("target");
    let scen = d.join("s.toml");
    std::fs::write(&scen, SMALL).unwrap();
    let target = d.join("memmap.bin");
    let out = d.join("r.run.json");

    // Success: the run file is written, the target it created is gone.
    let rf = run(&args(&scen, out.clone(), Some(target.clone()))).unwrap();
    assert_eq!(rf.repeats.len(), 1);
    assert!(rf.complete);
    assert!(out.exists());
    assert!(!target.exists(), "created target left behind");

    // Error after the target was created (a window too small for the writer threads):
    // removed too.
    let mut a = args(&scen, d.join("w.run.json"), Some(target.clone()));
    a.strategy = Strategy::WILLIAMS_MT;
    a.threads = Some(4);
    a.window = Some("4M".into());
    let e = format!("{:#}", run(&a).unwrap_err());
    assert!(e.contains("too small"), "{e}");
    assert!(
        !target.exists(),
        "created target left behind after an error"
    );

    // --keep-target keeps it.
    let mut a = args(&scen, out.clone(), Some(target.clone()));
    a.keep_target = true;
    run(&a).unwrap();
    assert!(target.exists(), "--keep-target did not keep the target");

    // A target that existed before (the kept one holds the memmap now: --destroy-data)
    // is never removed, on success or on error.
    let mut a = args(&scen, out.clone(), Some(target.clone()));
    a.destroy_data = true;
    run(&a).unwrap();
    assert!(target.exists(), "an existing target was removed");
    a.strategy = Strategy::WILLIAMS_MT;
    a.threads = Some(4);
    a.window = Some("4M".into());
    let e = format!("{:#}", run(&a).unwrap_err());
    assert!(e.contains("too small"), "{e}");
    assert!(
        target.exists(),
        "an existing target was removed after an error"
    );
    // Refused for its data: still there.
    let e = format!(
        "{:#}",
        run(&args(&scen, out.clone(), Some(target.clone()))).unwrap_err()
    );
    assert!(
        e.contains("--destroy-data") && e.contains("non-zero bytes at offset"),
        "{e}"
    );
    assert!(target.exists());
    assert_eq!(
        d.names(),
        ["memmap.bin", "r.run.json", "s.toml"],
        "temp left"
    );
}
