//! Importer throughput bench (run by scripts/bench-import.sh), and a dump helper.
//!
//! `bench_import FILE [REPEATS]`: reads FILE once, then REPEATS times (default 5) feeds it
//! line by line to `FtraceParser` (lines split from the byte buffer with `memchr`-style
//! search, events counted and dropped in batches) and prints MB/s min / median / max,
//! on wall time and on the thread's CPU time (the latter stays meaningful on a loaded box).
//!
//! `bench_import --dump ftrace|dmesg|perf FILE`: prints the imported events as JSON Lines.

use memmap_collect::import::{dmesg, ftrace, perf_script};
use memmap_model::trace::TraceEvent;
use std::time::Instant;

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--dump") {
        let (fmt, path) = (&args[2], &args[3]);
        let bytes = std::fs::read(path).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        let ev = match fmt.as_str() {
            "ftrace" => ftrace::import(path, &text),
            "dmesg" => dmesg::import(path, &text),
            "perf" => perf_script::import(path, &text),
            other => panic!("unknown format {other}"),
        };
        for e in ev {
            println!("{}", serde_json::to_string(&e).unwrap());
        }
        return;
    }
    let path = args.get(1).expect("usage: bench_import FILE [REPEATS]");
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let bytes = std::fs::read(path).expect("read");
    let text = String::from_utf8_lossy(&bytes);
    let mb = text.len() as f64 / 1e6;
    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    let mut counts = std::collections::BTreeMap::<&'static str, u64>::new();
    for r in 0..repeats {
        let start = Instant::now();
        let cpu0 = thread_cpu_s();
        let mut p = ftrace::FtraceParser::new(path);
        let mut out: Vec<TraceEvent> = Vec::with_capacity(4096);
        let mut n_events = 0u64;
        let mut lineno = 0usize;
        let tally =
            |out: &mut Vec<TraceEvent>,
             counts: &mut std::collections::BTreeMap<&'static str, u64>| {
                if r == 0 {
                    for e in out.iter() {
                        *counts.entry(e.kind()).or_default() += 1;
                    }
                }
                let n = out.len() as u64;
                out.clear();
                n
            };
        for line in text.split('\n') {
            lineno += 1;
            p.line(lineno, line, &mut out);
            if out.len() >= 4096 {
                n_events += tally(&mut out, &mut counts);
            }
        }
        p.finish(&mut out);
        n_events += tally(&mut out, &mut counts);
        let secs = start.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - cpu0;
        rates.push(mb / secs);
        cpu_rates.push(mb / cpu);
        eprintln!(
            "repeat {r}: {lineno} lines, {n_events} events, {secs:.3} s wall ({:.1} MB/s), {cpu:.3} s cpu ({:.1} MB/s)",
            mb / secs,
            mb / cpu
        );
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "ftrace import {:.1} MB: min {:.1} MB/s, median {:.1} MB/s, max {:.1} MB/s over {} repeats",
        mb,
        rates[0],
        rates[rates.len() / 2],
        rates[rates.len() - 1],
        rates.len()
    );
    cpu_rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "  per thread CPU time (robust to other load): min {:.1} MB/s, median {:.1} MB/s, max {:.1} MB/s",
        cpu_rates[0],
        cpu_rates[cpu_rates.len() / 2],
        cpu_rates[cpu_rates.len() - 1]
    );
    println!("events by kind (first repeat): {counts:?}");
}
