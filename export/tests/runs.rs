//! `memmap-export` of run files: every Parquet table read back against the run files,
//! the Chrome trace checked by an independent Python checker (tests/check_chrome_trace.py,
//! json module only), the interval logs read back with hdrhistogram's own reader. The
//! runs are made in-process with the replay's library (`runner::run`, what
//! `memmap-replay run` calls).

use base64::Engine as _;
use clap::Parser as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use memmap_export::parquet::hive_escape;
use memmap_export::run_tables::{run_id, RUN_TABLES};
use memmap_model::run::{CounterValue, RunFile};
use memmap_replay::runner::{self, RunArgs};
use polars::prelude::DataFrame;
use polars_io::prelude::{ParquetReader, SerReader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memmap-export-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_memmap-export")
}

/// `memmap-replay run`'s arguments.
#[derive(clap::Parser)]
struct RunCli {
    #[command(flatten)]
    args: RunArgs,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// Two small real runs of the shipped testbed scenario, two strategies, with faults.
fn make_runs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for s in ["williams-async", "williams-mt"] {
        let f = dir.join(format!("{s}.run.json"));
        let cli = RunCli::try_parse_from(
            ["run", "qemu-16g", "--strategy", s, "--scale", "0.03125"]
                .into_iter()
                .chain(["--repeat", "2", "--touches", "300", "-o"])
                .chain([f.to_str().unwrap()]),
        )
        .unwrap();
        let rf = runner::run(&cli.args, Arc::new(AtomicBool::new(false))).unwrap();
        // what `memmap-replay run` exits non-zero for
        assert!(rf.complete && !rf.interrupted);
        assert!(rf.repeats.iter().all(|r| r.metrics.uninitialised_reads == 0
            && r.verify.as_ref().is_none_or(|v| v.errors == 0)));
        out.push(f);
    }
    out
}

fn export(files: &[PathBuf], extra: &[&str], dir: &Path) -> std::process::Output {
    Command::new(exe())
        .args(files)
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

fn read_parquet(p: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(p).unwrap())
        .finish()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn u64s(df: &DataFrame, col: &str) -> Vec<u64> {
    let c = df.column(col).unwrap().u64().unwrap();
    (0..c.len()).map(|i| c.get(i).unwrap()).collect()
}

fn u32s(df: &DataFrame, col: &str) -> Vec<u32> {
    let c = df.column(col).unwrap().u32().unwrap();
    (0..c.len()).map(|i| c.get(i).unwrap()).collect()
}

fn strs(df: &DataFrame, col: &str) -> Vec<String> {
    let c = df.column(col).unwrap().str().unwrap();
    (0..c.len())
        .map(|i| c.get(i).unwrap().to_string())
        .collect()
}

/// Long on purpose (one block per table, in `RUN_TABLES` order): the two runs are made
/// once and every table of both is read back against them.
#[test]
fn parquet_tables_round_trip_every_row_and_key_value() {
    let dir = tmpdir("parquet");
    let runs = make_runs(&dir);
    let pq = dir.join("pq");
    let o = export(&runs, &["--parquet", pq.to_str().unwrap()], &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut all = Vec::new();
    files_under(&pq, &mut all);
    assert!(
        all.iter().all(|p| p.extension().unwrap() == "parquet"),
        "{all:?}"
    );
    assert_eq!(all.len(), RUN_TABLES.len() * runs.len());

    for f in &runs {
        let r = RunFile::read(f).unwrap();
        let id = run_id(&r);
        assert_eq!(r.repeats.len(), 2);
        let part = |table: &str| -> DataFrame {
            let p = pq
                .join(table)
                .join(format!("host={}", hive_escape(&r.host.hostname)))
                .join(format!("kernel={}", hive_escape(&r.host.kernel_release)))
                .join(format!("strategy={}", r.config.strategy))
                .join(format!("part-{id}.parquet"));
            let df = read_parquet(&p);
            // run_id and scenario in every table, partition keys only in the path
            if df.height() > 0 {
                assert!(strs(&df, "run_id").iter().all(|v| *v == id), "{table}");
                assert!(
                    strs(&df, "scenario").iter().all(|v| *v == "qemu-16g"),
                    "{table}"
                );
            }
            for k in ["host", "kernel", "strategy"] {
                assert!(df.column(k).is_err(), "{table} has partition column {k}");
            }
            df
        };

        let runs_t = part("runs");
        assert_eq!(runs_t.height(), 1);
        assert_eq!(
            strs(&runs_t, "strategy_name")[..],
            [r.config.strategy.as_str()]
        );
        assert_eq!(u32s(&runs_t, "repeats"), [2]);
        assert_eq!(u32s(&runs_t, "threads"), [r.config.params.threads]);
        assert_eq!(
            runs_t
                .column("scenario_scale")
                .unwrap()
                .f64()
                .unwrap()
                .get(0),
            Some(0.03125)
        );

        let reps = part("repeats");
        assert_eq!(reps.height(), r.repeats.len());
        assert_eq!(
            u64s(&reps, "time_to_available_ns"),
            r.repeats
                .iter()
                .map(|x| x.metrics.time_to_available_ns)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            u64s(&reps, "stall_p99_ns"),
            r.repeats
                .iter()
                .map(|x| x.metrics.stall_p99_ns)
                .collect::<Vec<_>>()
        );
        let bca = reps.column("memmap_bytes_per_s").unwrap().f64().unwrap();
        let bps: Vec<f64> = (0..bca.len()).map(|i| bca.get(i).unwrap()).collect();
        assert_eq!(
            bps,
            r.repeats
                .iter()
                .map(|x| x.metrics.memmap_bytes_per_s)
                .collect::<Vec<_>>()
        );

        let ns = part("namespaces");
        assert_eq!(
            ns.height(),
            r.repeats.iter().map(|x| x.namespaces.len()).sum::<usize>()
        );
        assert_eq!(
            u64s(&ns, "complete_ns"),
            r.repeats
                .iter()
                .flat_map(|x| x.namespaces.iter().map(|n| n.complete_ns))
                .collect::<Vec<_>>()
        );

        // A scenario run: every range has the replay's init and no kernel figure.
        let kv = part("kernel_vs_replay");
        assert_eq!(kv.height(), r.layout.len());
        let want = memmap_model::kernel_recorded::kernel_vs_replay(&r);
        let col_f64 = |name: &str| -> Vec<Option<f64>> {
            let c = kv.column(name).unwrap().f64().unwrap();
            (0..c.len()).map(|i| c.get(i)).collect()
        };
        assert_eq!(
            col_f64("replay_ms"),
            want.iter().map(|k| k.replay_ms).collect::<Vec<_>>()
        );
        assert!(col_f64("replay_ms")
            .iter()
            .all(|v| v.is_some_and(|v| v > 0.0)));
        assert!(col_f64("kernel_ms").iter().all(Option::is_none));
        assert!(col_f64("predicted_kernel_ms").iter().all(Option::is_none));

        let ph = part("phases");
        let want: Vec<(String, u64)> = r
            .repeats
            .iter()
            .flat_map(|x| {
                x.phases
                    .iter()
                    .map(|p| (p.name.clone(), p.end_ns - p.start_ns))
            })
            .collect();
        let got: Vec<(String, u64)> = strs(&ph, "phase")
            .into_iter()
            .zip(u64s(&ph, "dur_ns"))
            .collect();
        assert_eq!(got, want);

        let th = part("threads");
        let threads: Vec<_> = r.repeats.iter().flat_map(|x| &x.threads).collect();
        assert_eq!(th.height(), threads.len());
        assert_eq!(
            strs(&th, "thread_name"),
            threads.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
        );
        assert_eq!(
            u64s(&th, "pages_done"),
            threads.iter().map(|t| t.pages_done).collect::<Vec<_>>()
        );

        let co = part("counters");
        assert_eq!(co.height(), threads.len() * 5);
        let values = co.column("value").unwrap().u64().unwrap();
        let why = co.column("unsupported").unwrap().str().unwrap();
        let mut i = 0;
        for t in &threads {
            for cv in [
                &t.counters.task_clock_ns,
                &t.counters.page_faults,
                &t.counters.context_switches,
                &t.counters.cycles,
                &t.counters.instructions,
            ] {
                match cv {
                    CounterValue::Value(v) => {
                        assert_eq!(values.get(i), Some(*v));
                        assert_eq!(why.get(i), None);
                    }
                    CounterValue::Unsupported(s) => {
                        assert_eq!(values.get(i), None);
                        assert_eq!(why.get(i), Some(s.as_str()));
                    }
                }
                i += 1;
            }
        }

        let pr = part("progress");
        let want: Vec<(u32, u64, u64)> = threads
            .iter()
            .flat_map(|t| t.progress.iter().map(|&(tn, p)| (t.id, tn, p)))
            .collect();
        assert!(!want.is_empty());
        let got: Vec<(u32, u64, u64)> = u32s(&pr, "thread_id")
            .into_iter()
            .zip(u64s(&pr, "t_ns"))
            .zip(u64s(&pr, "pages_done"))
            .map(|((a, b), c)| (a, b, c))
            .collect();
        assert_eq!(got, want);

        let sp = part("spans");
        let spans: Vec<_> = threads.iter().flat_map(|t| &t.spans).collect();
        assert_eq!(sp.height(), spans.len());
        assert_eq!(
            u64s(&sp, "start_pfn"),
            spans.iter().map(|s| s.start_pfn).collect::<Vec<_>>()
        );
        assert_eq!(
            u64s(&sp, "pages").iter().sum::<u64>(),
            spans.iter().map(|s| s.pages).sum::<u64>()
        );

        let ss = part("stall_samples");
        let samples: Vec<_> = r.repeats.iter().flat_map(|x| &x.stalls.samples).collect();
        assert_eq!(ss.height(), samples.len());
        assert_eq!(
            u64s(&ss, "stall_ns"),
            samples.iter().map(|s| s.stall_ns).collect::<Vec<_>>()
        );

        let sh = part("stall_histograms");
        let hists: Vec<_> = r
            .repeats
            .iter()
            .flat_map(|x| {
                std::iter::once(&x.stalls.merged).chain(x.stalls.per_thread.iter().map(|p| &p.1))
            })
            .collect();
        assert_eq!(sh.height(), hists.len());
        assert_eq!(
            u64s(&sh, "count"),
            hists.iter().map(|h| h.count).collect::<Vec<_>>()
        );
        assert_eq!(
            strs(&sh, "hdr_v2_deflate_base64"),
            hists
                .iter()
                .map(|h| h.hdr_v2_deflate_base64.clone())
                .collect::<Vec<_>>()
        );
        let scopes = strs(&sh, "scope");
        assert_eq!(
            scopes.iter().filter(|s| *s == "merged").count(),
            r.repeats.len()
        );

        let sp = part("stall_percentiles");
        assert_eq!(
            sp.height(),
            hists.iter().map(|h| h.percentiles.len()).sum::<usize>()
        );
        assert_eq!(
            u64s(&sp, "value_ns"),
            hists
                .iter()
                .flat_map(|h| h.percentiles.iter().map(|p| p.1))
                .collect::<Vec<_>>()
        );
    }

    // Exporting again overwrites (same run ids): no duplicates, no temporary files left.
    let o = export(&runs, &["--parquet", pq.to_str().unwrap()], &dir);
    assert!(o.status.success());
    let mut again = Vec::new();
    files_under(&pq, &mut again);
    assert_eq!(again.len(), RUN_TABLES.len() * runs.len(), "{again:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn checker() -> PathBuf {
    repo_root().join("tests/check_chrome_trace.py")
}

fn python_check(file: &Path, args: &[&str]) -> std::process::Output {
    // python3 is part of CI's machine; without it this test fails (it must not skip).
    Command::new("python3")
        .arg(checker())
        .arg(file)
        .args(args)
        .output()
        .expect("python3 must be installed: the Chrome trace is checked by an independent Python checker")
}

#[test]
fn chrome_trace_passes_the_independent_checker() {
    let dir = tmpdir("chrome");
    let runs = make_runs(&dir);
    let ct = dir.join("runs.chrome.json");
    let o = export(&runs, &["--chrome-trace", ct.to_str().unwrap()], &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let rfs: Vec<RunFile> = runs.iter().map(|f| RunFile::read(f).unwrap()).collect();
    let init_thread = rfs[0].repeats[0]
        .threads
        .iter()
        .find(|t| t.name.starts_with("memmap/"))
        .unwrap()
        .name
        .clone();
    let fault_thread = rfs[0].repeats[0]
        .threads
        .iter()
        .find(|t| t.name.starts_with("fault/"))
        .unwrap()
        .name
        .clone();
    let o = python_check(
        &ct,
        &[
            "--expect-ph",
            "X,i,C,M",
            "--expect-thread-name",
            &init_thread,
            "--expect-thread-name",
            &fault_thread,
            "--expect-counter",
            "pages_done total",
            "--expect-span",
            "init",
            "--expect-span",
            "populate",
            "--all-tracks-named",
            "--json",
        ],
    );
    assert!(
        o.status.success(),
        "checker: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Every (run, repeat) is a process; every span, sampled fault and phase is there.
    let repeats: usize = rfs.iter().map(|r| r.repeats.len()).sum();
    assert_eq!(summary["processes"], repeats);
    let spans: usize = rfs
        .iter()
        .flat_map(|r| &r.repeats)
        .flat_map(|x| &x.threads)
        .map(|t| t.spans.len())
        .sum();
    let phases: usize = rfs
        .iter()
        .flat_map(|r| &r.repeats)
        .map(|x| x.phases.len())
        .sum();
    assert_eq!(summary["by_ph"]["X"], spans + phases);
    let faults: usize = rfs
        .iter()
        .flat_map(|r| &r.repeats)
        .map(|x| x.stalls.samples.len())
        .sum();
    assert!(faults > 0);
    assert_eq!(summary["instants"]["fault"], faults);

    // The checker is not a rubber stamp: a broken trace fails it.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"traceEvents":[{"name":"init","ph":"X","ts":1,"pid":1,"tid":1},
            {"name":"f","ph":"i","ts":"2","pid":1,"tid":1,"s":"x"},
            {"name":"c","ph":"C","ts":3,"pid":1,"args":{"pages":"many"}},
            {"name":"thread_name","ph":"M","pid":1,"tid":1,"args":{}}]}"#,
    )
    .unwrap();
    let o = python_check(&bad, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "dur must be",
        "ts must be",
        "scope s",
        "series 'pages'",
        "needs args.name",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hlog_reads_back_with_hdrhistograms_interval_log_reader() {
    let dir = tmpdir("hlog");
    let runs = make_runs(&dir);
    let hl = dir.join("hlog");
    let o = export(&runs, &["--hlog", hl.to_str().unwrap()], &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in &runs {
        let r = RunFile::read(f).unwrap();
        let path = hl.join(format!(
            "qemu-16g.{}.{}.hlog",
            r.config.strategy,
            run_id(&r)
        ));
        let text = std::fs::read(&path).unwrap();
        let mut base = None;
        let mut start = None;
        let mut got: Vec<(String, f64, u64, u64)> = Vec::new();
        for e in IntervalLogIterator::new(&text) {
            match e.unwrap_or_else(|e| panic!("{}: {e:?}", path.display())) {
                LogEntry::BaseTime(t) => base = Some(t.as_secs_f64()),
                LogEntry::StartTime(t) => start = Some(t.as_secs_f64()),
                LogEntry::Interval(i) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(i.encoded_histogram())
                        .unwrap();
                    let h: hdrhistogram::Histogram<u64> = Deserializer::new()
                        .deserialize(&mut bytes.as_slice())
                        .unwrap();
                    got.push((
                        i.tag().unwrap().as_str().to_string(),
                        i.start_timestamp().as_secs_f64(),
                        h.len(),
                        h.value_at_quantile(0.99),
                    ));
                }
            }
        }
        let t0 = r.repeats[0].started_unix_s;
        assert!((base.unwrap() - t0).abs() < 0.001);
        assert!((start.unwrap() - t0).abs() < 0.001);
        let mut want = Vec::new();
        for x in &r.repeats {
            let names: BTreeMap<u32, &str> =
                x.threads.iter().map(|t| (t.id, t.name.as_str())).collect();
            let s = x.started_unix_s - t0;
            want.push((
                r.config.strategy.clone(),
                s,
                x.stalls.merged.count,
                x.metrics.stall_p99_ns,
            ));
            for (tid, h) in &x.stalls.per_thread {
                want.push((
                    format!("{}/{}", r.config.strategy, names[tid]),
                    s,
                    h.count,
                    h.p99_ns,
                ));
            }
        }
        assert_eq!(got.len(), want.len());
        assert!(want.iter().any(|w| w.2 > 0), "no fault was recorded");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0);
            assert!((g.1 - w.1).abs() < 0.0015, "{g:?} {w:?}");
            assert_eq!((g.2, g.3), (w.2, w.3), "{}", g.0);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn export_errors_name_the_problem() {
    let dir = tmpdir("errors");
    let o = export(&[dir.join("missing.run.json")], &["--parquet", "x"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.run.json"));
    let f = dir.join("a.run.json");
    std::fs::write(&f, "{}").unwrap();
    let o = export(std::slice::from_ref(&f), &[], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to do"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run recorded in the testbed guest (its kernel reports the host name "(none)"),
/// filed under another host: partition path, `hostname` column and run id follow.
#[test]
fn host_override_files_a_guest_run_under_the_given_name() {
    let dir = tmpdir("host");
    let guest = repo_root().join("traces/real/replay-dax/final/xfs-dax-duyck.run.json");
    let parts = |lake: &Path| {
        let mut files = Vec::new();
        files_under(&lake.join("runs"), &mut files);
        assert_eq!(files.len(), 1, "{files:?}");
        let f = files.remove(0);
        let rel = f.strip_prefix(lake.join("runs")).unwrap().to_path_buf();
        (rel, read_parquet(&f))
    };

    let o = export(std::slice::from_ref(&guest), &["--parquet", "plain"], &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rel, df) = parts(&dir.join("plain"));
    assert!(
        rel.starts_with("host=%28none%29/kernel=6.1.0-56-amd64/strategy=duyck"),
        "{}",
        rel.display()
    );
    assert_eq!(strs(&df, "hostname"), ["(none)"]);
    let plain_id = strs(&df, "run_id");

    let o = export(
        std::slice::from_ref(&guest),
        &["--parquet", "named", "--host", "qemu-testbed"],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rel, df) = parts(&dir.join("named"));
    assert!(
        rel.starts_with("host=qemu-testbed/kernel=6.1.0-56-amd64/strategy=duyck"),
        "{}",
        rel.display()
    );
    assert_eq!(strs(&df, "hostname"), ["qemu-testbed"]);
    assert_ne!(strs(&df, "run_id"), plain_id);
    std::fs::remove_dir_all(&dir).unwrap();
}
