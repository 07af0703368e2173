//! HdrHistogram interval logs of run files: one `DIR/<scenario>.<strategy>.<run_id>.hlog`
//! per run, written with `memmap_model::hlog`. Format: `docs/parquet.md` ("HdrHistogram
//! interval logs").

use crate::run_tables::run_id;
use memmap_model::hlog::{self, Interval};
use memmap_model::run::RunFile;
use std::path::{Path, PathBuf};

/// The interval log file of run `r` under `dir`.
pub fn hlog_path(dir: &Path, r: &RunFile) -> PathBuf {
    dir.join(format!(
        "{}.{}.{}.hlog",
        path_safe(&r.scenario.name),
        path_safe(&r.config.strategy),
        run_id(r)
    ))
}

fn path_safe(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The run's stall histograms as an interval log: per repeat, the merged histogram
/// tagged `<strategy>` and each fault thread's tagged `<strategy>/<thread name>`;
/// StartTime = BaseTime = the first repeat's start; each interval spans its repeat.
/// Written to a temporary name and renamed.
pub fn write_hlog(r: &RunFile, source: &Path, out: &Path) -> anyhow::Result<()> {
    let base = r
        .repeats
        .first()
        .map(|x| x.started_unix_s)
        .unwrap_or(r.created_unix_s);
    let mut intervals = Vec::new();
    for rep in &r.repeats {
        let end_ns = rep
            .threads
            .iter()
            .map(|t| t.end_ns)
            .chain([rep.metrics.time_to_complete_ns])
            .max()
            .unwrap_or(0);
        let start_s = rep.started_unix_s - base;
        let length_s = end_ns as f64 / 1e9;
        intervals.push(Interval {
            tag: r.config.strategy.clone(),
            start_s,
            length_s,
            histogram: &rep.stalls.merged,
        });
        for (tid, h) in &rep.stalls.per_thread {
            let name = rep
                .threads
                .iter()
                .find(|t| t.id == *tid)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| format!("thread-{tid}"));
            intervals.push(Interval {
                tag: format!("{}/{}", r.config.strategy, name),
                start_s,
                length_s,
                histogram: h,
            });
        }
    }
    let comments = vec![
        format!(
            "memmap-lab fault-stall histograms (ns) of {} (run {})",
            source.display(),
            run_id(r)
        ),
        format!(
            "scenario={} strategy={} host={} kernel={}",
            r.scenario.name, r.config.strategy, r.host.hostname, r.host.kernel_release
        ),
        "one interval per repeat: Tag=<strategy> merged, Tag=<strategy>/<thread> per fault thread"
            .to_string(),
    ];
    memmap_model::output::write_atomic(out, &[memmap_model::output::Avoid::input(source)], |w| {
        hlog::write_interval_log(w, &comments, base, &intervals)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })?;
    Ok(())
}
