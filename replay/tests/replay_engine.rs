//! End-to-end tests of the replay engine on real (anonymous or file) memory.
//! Small scenarios, so they run in seconds; timing is never asserted.

use memmap_model::run::{RunFile, SpanKind, ThreadRole};
use memmap_replay::runner::{self, RunArgs};
use memmap_replay::strategy::{self, Strategy};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memmap-replay-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// fsdax map=dev with a partial last section, devdax 2M with and without altmap, and a
/// hot-added DIMM: every backing kind and page class the engine knows.
const MIXED: &str = r#"
name = "test-mixed"
source = "unit test"
[host]
nodes = 2
cpus_per_node = 2
[[namespace]]
name = "fs-dev"
size = "1040M"
mode = "fsdax"
map = "dev"
node = 0
[[namespace]]
name = "dax-mem"
size = "512M"
mode = "devdax"
map = "mem"
align = "2M"
node = 1
[[namespace]]
name = "dax-dev"
size = "512M"
mode = "devdax"
map = "dev"
align = "2M"
node = 1
[[namespace]]
name = "dax-1g"
size = "3G"
mode = "devdax"
map = "mem"
align = "1G"
node = 1
[[hotplug]]
name = "dimm0"
start = "0x8000000000"
size = "256M"
node = 0
[faults]
pattern = "uniform"
threads_per_namespace = 1
touches_per_thread = 300
"#;

fn scenario_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn args(scenario: &str, strategy: Strategy, out: PathBuf) -> RunArgs {
    RunArgs {
        scenario: scenario.into(),
        strategy,
        threads: None,
        sub_ranges: None,
        chunk_pages: None,
        sync_lock: None,
        target: None,
        destroy_data: false,
        persist_memmap: false,
        keep_target: false,
        window: None,
        faults: None,
        fault_threads: None,
        touches: None,
        fault_size: None,
        think_us: None,
        scale: 1.0,
        repeat: 1,
        verify: true,
        seed: 7,
        output: out,
        json: false,
    }
}

#[test]
fn every_strategy_writes_every_record_the_layout_needs() {
    let dir = tmpdir("all");
    let scen = scenario_file(&dir, "mixed.toml", MIXED);
    for s in strategy::ALL {
        let mut a = args(&scen, s, dir.join("x.run.json"));
        a.threads = Some(3); // odd count: exercises the remainder range
        let prep = runner::prepare(&a).unwrap();
        let rep = prep.engine.run_repeat(0).unwrap();
        let v = rep.verify.as_ref().expect("verify requested");
        assert_eq!(v.method, "per-pfn");
        assert_eq!(v.errors, 0, "{}: {:?}", s.name(), v.first_errors);
        let need: u64 = prep
            .engine
            .plans
            .iter()
            .map(|p| p.struct_pages_written)
            .sum();
        assert_eq!(rep.metrics.struct_pages_written, need, "{}", s.name());
        assert_eq!(rep.metrics.uninitialised_reads, 0, "{}", s.name());
        // The altmap's own pfns (map=dev) are initialised under the hotplug lock and
        // checked too: every record of data and altmap was read back.
        let altmap: u64 = prep
            .engine
            .plans
            .iter()
            .filter_map(|p| p.altmap_init.map(|(_, n)| n))
            .sum();
        assert!(altmap > 0, "the mixed scenario has a map=dev namespace");
        assert_eq!(v.records_checked, need + altmap, "{}", s.name());
        assert!(rep.phases.iter().any(|p| p.name == "altmap-init"));
        // Compound pages cut the records only for the strategies that have them.
        let dax_mem = prep
            .engine
            .plans
            .iter()
            .find(|p| p.name == "dax-mem")
            .unwrap();
        if s.uses_compound() {
            assert_eq!(dax_mem.struct_pages_written, dax_mem.data_pages / 512 * 128);
        } else {
            assert_eq!(dax_mem.struct_pages_written, dax_mem.data_pages);
        }
        // Pages done over all threads add up to the data pages, progress never goes back.
        let data: u64 = prep.engine.plans.iter().map(|p| p.data_pages).sum();
        let done: u64 = rep.threads.iter().map(|t| t.pages_done).sum();
        assert_eq!(done, data, "{}", s.name());
        for t in &rep.threads {
            assert!(t
                .progress
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        }
        for n in &rep.namespaces {
            assert!(n.populate_start_ns <= n.populate_end_ns);
            assert!(n.available_ns <= n.complete_ns, "{}: {n:?}", s.name());
        }
        if s == Strategy::LEGACY_DOUBLE_PASS {
            assert!(rep.phases.iter().any(|p| p.name == "pgmap-pass"));
        }
    }
}

#[test]
fn williams_async_is_available_before_complete_and_faults_see_initialised_pages() {
    let dir = tmpdir("async");
    let scen = scenario_file(&dir, "mixed.toml", MIXED);
    let mut a = args(&scen, Strategy::WILLIAMS_ASYNC, dir.join("a.run.json"));
    a.threads = Some(1);
    a.sub_ranges = Some(64);
    a.touches = Some(2000);
    let prep = runner::prepare(&a).unwrap();
    let rep = prep.engine.run_repeat(0).unwrap();
    assert_eq!(rep.verify.as_ref().unwrap().errors, 0);
    assert_eq!(rep.metrics.uninitialised_reads, 0);
    assert!(rep.metrics.faults > 0);
    for n in &rep.namespaces {
        assert!(n.available_ns <= n.populate_end_ns, "{n:?}");
        assert!(n.available_ns < n.complete_ns, "{n:?}");
    }
    // Work done by fault threads is recorded as steal spans, never as init spans.
    for t in rep.threads.iter().filter(|t| t.role == ThreadRole::Fault) {
        assert!(t
            .spans
            .iter()
            .all(|s| s.kind == SpanKind::Steal || s.kind == SpanKind::Stall));
    }
}

#[test]
fn verify_catches_a_single_wrong_or_missing_record() {
    let dir = tmpdir("corrupt");
    let scen = scenario_file(&dir, "mixed.toml", MIXED);
    let mut a = args(&scen, Strategy::DUYCK, dir.join("c.run.json"));
    a.verify = false;
    a.faults = Some("none".into());
    let prep = runner::prepare(&a).unwrap();
    prep.engine.run_repeat(0).unwrap();
    assert_eq!(prep.engine.verify_records().errors, 0);
    let base = prep.engine.target.as_ptr() as *mut [u64; 8];
    let n = (prep.engine.target.len() / 64) as usize;
    let recs = unsafe { std::slice::from_raw_parts_mut(base, n) };
    let i = recs
        .iter()
        .position(|r| r[0] != 0)
        .expect("some record written");
    let j = recs.iter().rposition(|r| r[0] != 0).unwrap();
    recs[i][6] ^= 1 << 40; // refcount 1 -> 257
    let v = prep.engine.verify_records();
    assert_eq!(v.errors, 1, "{:?}", v.first_errors);
    assert!(v.first_errors[0].contains("word 6"), "{:?}", v.first_errors);
    recs[j] = [0; 8]; // a record never written
    assert_eq!(prep.engine.verify_records().errors, 2);
}

#[test]
fn window_mode_keeps_the_write_volume_and_says_so() {
    let dir = tmpdir("window");
    let scen = scenario_file(
        &dir,
        "big.toml",
        r#"
name = "big"
source = "unit test"
[host]
nodes = 1
cpus_per_node = 2
[[namespace]]
name = "pmem0"
size = "4G"
mode = "fsdax"
map = "dev"
[faults]
pattern = "none"
"#,
    );
    for s in [
        Strategy::DUYCK,
        Strategy::LEGACY_DOUBLE_PASS,
        Strategy::WILLIAMS_ASYNC,
    ] {
        let mut a = args(&scen, s, dir.join("w.run.json"));
        a.window = Some("40M".into());
        a.threads = Some(2);
        let prep = runner::prepare(&a).unwrap();
        let w = prep.config.window.as_ref().expect("window in the config");
        assert!(w.full_memmap_bytes > w.window_bytes);
        assert!(prep.config.notes.iter().any(|n| n.contains("window")));
        let rep = prep.engine.run_repeat(0).unwrap();
        let v = rep.verify.unwrap();
        assert_eq!(v.method, "window-consistency");
        assert_eq!(v.errors, 0, "{}: {:?}", s.name(), v.first_errors);
        assert_eq!(rep.metrics.struct_pages_written, 4u64 * 262144 - 16896);
    }
    // A window too small for the writer threads is refused rather than measured wrongly.
    let mut a = args(&scen, Strategy::WILLIAMS_MT, dir.join("w.run.json"));
    a.window = Some("4M".into());
    let e = runner::prepare(&a).err().expect("too small").to_string();
    assert!(e.contains("too small"), "{e}");
}

#[test]
fn a_target_holding_data_is_refused_unless_destroy_data() {
    let dir = tmpdir("data");
    let scen = scenario_file(&dir, "mixed.toml", MIXED);
    let file = dir.join("precious.bin");
    std::fs::write(&file, vec![0xabu8; 1 << 20]).unwrap();
    let mut a = args(&scen, Strategy::DUYCK, dir.join("d.run.json"));
    a.target = Some(file.clone());
    let e = format!("{:#}", runner::prepare(&a).err().expect("refused"));
    assert!(e.contains("--destroy-data"), "{e}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        vec![0xabu8; 1 << 20],
        "data was touched"
    );
    a.destroy_data = true;
    a.faults = Some("none".into());
    let prep = runner::prepare(&a).unwrap();
    assert_eq!(prep.config.target.kind, "file");
    let rep = prep.engine.run_repeat(0).unwrap();
    assert_eq!(rep.verify.unwrap().errors, 0);
}

#[test]
fn bad_scenarios_name_file_and_line_or_field() {
    let dir = tmpdir("bad");
    let bad = scenario_file(&dir, "bad.toml", &MIXED.replace("nodes = 2", "nodes = two"));
    let e = format!(
        "{:#}",
        runner::prepare(&args(&bad, Strategy::DUYCK, dir.join("b")))
            .err()
            .unwrap()
    );
    assert!(e.contains("bad.toml") && e.contains("line 5"), "{e}");
    let bad = scenario_file(
        &dir,
        "bad2.toml",
        &MIXED.replace(
            "name = \"fs-dev\"",
            "name = \"fs-dev\"\nstart = \"0x100100000\"",
        ),
    );
    let e = format!(
        "{:#}",
        runner::prepare(&args(&bad, Strategy::DUYCK, dir.join("b")))
            .err()
            .unwrap()
    );
    assert!(e.contains("bad2.toml") && e.contains("namespace[0]"), "{e}");
    let e = format!(
        "{:#}",
        runner::prepare(&args("no-such", Strategy::DUYCK, dir.join("b")))
            .err()
            .unwrap()
    );
    assert!(e.contains("not a shipped scenario"), "{e}");
}

#[test]
fn run_files_are_complete_or_marked_interrupted() {
    let dir = tmpdir("runfile");
    let scen = scenario_file(&dir, "mixed.toml", MIXED);
    let out = dir.join("r.run.json");
    let mut a = args(&scen, Strategy::JORDAN_PADATA, out.clone());
    a.repeat = 2;
    let rf = runner::run(&a, Arc::new(AtomicBool::new(false))).unwrap();
    let back = RunFile::read(&out).unwrap();
    assert_eq!(back, rf);
    assert!(back.complete && !back.interrupted);
    assert_eq!(back.repeats.len(), 2);
    assert!(!back.repeats[0].stalls.merged.decode().unwrap().is_empty());
    // Interrupted before the first repeat: a readable file, marked, nothing invented.
    let out2 = dir.join("i.run.json");
    let a = args(&scen, Strategy::DUYCK, out2.clone());
    let rf = runner::run(&a, Arc::new(AtomicBool::new(true))).unwrap();
    assert!(rf.interrupted && !rf.complete && rf.repeats.is_empty());
    assert_eq!(RunFile::read(&out2).unwrap(), rf);
}

#[test]
fn cli_layout_json_matches_the_kernel_and_errors_exit_2() {
    let exe = env!("CARGO_BIN_EXE_memmap-replay");
    let out = std::process::Command::new(exe)
        .args([
            "layout",
            "--namespace",
            "size=16368M,mode=fsdax,map=dev,align=2M",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Debian 6.1 in the testbed: "initialised 4124672 pages", altmap free 65534.
    assert_eq!(v[0]["data_pages"], 4124672);
    assert_eq!(v[0]["altmap_free_pages"], 65534);
    let out = std::process::Command::new(exe)
        .args(["run", "qemu-16g", "--strategy", "nope", "-o", "/tmp/x.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(exe)
        .args([
            "run",
            "/no/such.toml",
            "--strategy",
            "duyck",
            "-o",
            "/tmp/x.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.toml"));
}

#[test]
fn a_trace_replays_its_recorded_layout_and_faults() {
    let dir = tmpdir("trace");
    let header = serde_json::json!({
        "format": "memmap-lab-trace", "version": 1, "created_unix_s": 0.0, "source": "test",
        "kernel_release": "6.1.0-56-amd64", "cmdline": "", "numa_nodes": 1, "cpus": 2, "notes": []
    });
    let ns = serde_json::json!({
        "kind": "namespace", "name": "namespace0.0", "mode": "fsdax", "map": "dev",
        "size_bytes": 1040u64 << 20, "align_bytes": 2u64 << 20, "start_phys": 1u64 << 32, "node": 0
    });
    let mut text = format!("{header}\n{ns}\n");
    for i in 0..50u64 {
        let f = serde_json::json!({
            "kind": "dax-fault", "t_ns": i * 1000, "dur_ns": null, "pmd": false, "pid": 1, "cpu": 0,
            "address": 0x7f00_0000_0000u64 + i * 4096, "pgoff": i * 977, "result": "NOPAGE"
        });
        text.push_str(&format!("{f}\n"));
    }
    let path = dir.join("t.jsonl");
    std::fs::write(&path, text).unwrap();
    let a = args(
        &path.display().to_string(),
        Strategy::WILLIAMS_ASYNC,
        dir.join("t.run.json"),
    );
    let prep = runner::prepare(&a).unwrap();
    assert_eq!(prep.config.faults.pattern, "trace");
    assert_eq!(prep.layouts[0].data_pages, 261632); // the kernel's figure for 1040M map=dev
    let rep = prep.engine.run_repeat(0).unwrap();
    assert_eq!(rep.metrics.faults, 50);
    assert_eq!(rep.metrics.uninitialised_reads, 0);
    assert_eq!(rep.verify.unwrap().errors, 0);
    // A scenario without recorded faults cannot replay them.
    let scen = scenario_file(&dir, "mixed.toml", MIXED);
    let mut a = args(&scen, Strategy::DUYCK, dir.join("x.run.json"));
    a.faults = Some("trace".into());
    let e = format!("{:#}", runner::prepare(&a).err().unwrap());
    assert!(e.contains("no recorded DAX faults"), "{e}");
}

/// `InitStrategy::init_under_hotplug_lock` and `populate_under_hotplug_lock`, which
/// `memmap-replay predict` composes phases with, say what the engine does: with the lock,
/// one namespace's phase never overlaps the other's populate.
#[test]
fn lock_scope_flags_match_the_engine() {
    let dir = tmpdir("lockscope");
    let scen = scenario_file(
        &dir,
        "two.toml",
        r#"
name = "two"
source = "unit test"
[host]
nodes = 1
cpus_per_node = 2
[[namespace]]
name = "a"
size = "1G"
[[namespace]]
name = "b"
size = "1G"
[faults]
pattern = "none"
"#,
    );
    for s in strategy::ALL {
        let mut a = args(&scen, s, dir.join(format!("{}.run.json", s.name())));
        a.verify = false;
        let rf = runner::run(&a, Arc::new(AtomicBool::new(false))).unwrap();
        let r = &rf.repeats[0];
        let phase = |name: &str, ns: &str| {
            r.phases
                .iter()
                .find(|p| p.name == name && p.namespace == ns)
                .map(|p| (p.start_ns, p.end_ns))
                .unwrap_or_else(|| panic!("{}: no {name} phase of {ns}", s.name()))
        };
        let disjoint = |x: (u64, u64), y: (u64, u64)| x.1 <= y.0 || y.1 <= x.0;
        let (pa, pb) = (phase("populate", "a"), phase("populate", "b"));
        if s.populate_under_hotplug_lock() {
            assert!(disjoint(pa, pb), "{}: populates overlap", s.name());
        }
        if s.init_under_hotplug_lock() {
            // the engine's "init" phase spans the strategy's whole call; a pre-4.20
            // second pass after mem_hotplug_done() is its own phase inside it
            let held = |ns: &str| {
                let (s0, e0) = phase("init", ns);
                let end = r
                    .phases
                    .iter()
                    .find(|p| p.name == "pgmap-pass" && p.namespace == ns)
                    .map_or(e0, |p| p.start_ns);
                (s0, end)
            };
            let (ia, ib) = (held("a"), held("b"));
            assert!(
                disjoint(ia, pb) && disjoint(ib, pa) && disjoint(ia, ib),
                "{}: init under the lock overlaps the other namespace",
                s.name()
            );
        }
    }
}

/// `memmap-replay run TRACE` carries the kernel's recorded durations of the real
/// fsdax-dev trace into the run: per namespace, counted once.
#[test]
fn a_recorded_trace_brings_the_kernels_durations() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces/real/testbed/fsdax-dev.jsonl");
    let l = runner::load_scenario(p.to_str().unwrap()).unwrap();
    assert_eq!(l.kernel_recorded.len(), 1);
    let k = &l.kernel_recorded[0];
    assert_eq!(k.name, "namespace0.0");
    assert_eq!(k.init_ms, Some(1586.291));
    assert_eq!(k.populate_ms, Some(4.197));
    let srcs: Vec<(&str, u64)> = k
        .sources
        .iter()
        .map(|s| (s.source.as_str(), s.calls))
        .collect();
    assert_eq!(
        srcs,
        [
            ("arch_add_memory", 1),
            ("move_pfn_range_to_zone", 1),
            ("memmap_init_zone_device", 1),
            ("dmesg", 1)
        ]
    );
    // A scenario records no kernel time.
    let dir = tmpdir("kernel-recorded");
    let scen = scenario_file(&dir, "mixed.toml", MIXED);
    assert!(runner::load_scenario(&scen)
        .unwrap()
        .kernel_recorded
        .is_empty());
}
