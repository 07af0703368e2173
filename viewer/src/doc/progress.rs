//! Pages initialised over time: per replay thread from a run repeat's progress
//! samples, per task from a trace's memmap-init events.

use memmap_model::kernel_recorded::trace_init_total;
use memmap_model::run::RunFile;
use memmap_model::trace::TraceEvent;
use std::collections::HashMap;

/// Pages initialised over time (one curve per thread plus the total).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// (name, [(t_ns, pages)]).
    pub threads: Vec<(String, Vec<[f64; 2]>)>,
    pub total: Vec<[f64; 2]>,
    /// (label, t_ns): namespace available / complete moments.
    pub marks: Vec<(String, f64)>,
}

/// Progress of repeat `repeat` of a run: each thread's samples, and their sum on the
/// union of the sample times (thinned to at most ~4000 points).
pub fn run_progress(run: &RunFile, repeat: usize) -> Progress {
    let Some(rep) = run.repeats.get(repeat) else {
        return Progress::default();
    };
    let mut threads = Vec::new();
    let mut all_t: Vec<u64> = Vec::new();
    for th in &rep.threads {
        if th.progress.is_empty() && th.pages_done == 0 {
            continue;
        }
        let pts: Vec<[f64; 2]> = th
            .progress
            .iter()
            .map(|&(t, p)| [t as f64, p as f64])
            .collect();
        all_t.extend(th.progress.iter().map(|&(t, _)| t));
        threads.push((th.name.clone(), pts));
    }
    all_t.sort_unstable();
    all_t.dedup();
    // Thin the union of sample times to at most ~4000 points.
    let step = (all_t.len() / 4000).max(1);
    let grid: Vec<u64> = all_t
        .iter()
        .copied()
        .step_by(step)
        .chain(all_t.last().copied())
        .collect();
    let mut total = Vec::with_capacity(grid.len());
    for &t in &grid {
        let mut sum = 0.0;
        for (_, pts) in &threads {
            // Last sample at or before t (progress is a step function).
            let i = pts.partition_point(|p| p[0] <= t as f64);
            if i > 0 {
                sum += pts[i - 1][1];
            }
        }
        total.push([t as f64, sum]);
    }
    total.dedup_by(|a, b| a[0] == b[0]);
    let mut marks = Vec::new();
    for ns in &rep.namespaces {
        marks.push((format!("{} available", ns.name), ns.available_ns as f64));
        marks.push((format!("{} complete", ns.name), ns.complete_ns as f64));
    }
    Progress {
        threads,
        total,
        marks,
    }
}

/// What a trace's memmap-init events add up to, each kernel call counted once
/// ([`memmap_model::kernel_recorded`]: duplicates from two sources merged, nested calls
/// adding no time, a pfn range two functions were given counted once).
#[derive(Clone, Debug, Default)]
pub struct TraceProgress {
    /// Cumulative pages at each init call's end, per "task-pid" and in total; times
    /// relative to `t0`; "initialised" kernel log lines as marks.
    pub progress: Progress,
    /// Union of the pfn ranges of the init calls.
    pub pages: u64,
    /// Union per thread of the init calls' intervals, summed over threads.
    pub busy_ns: u64,
    /// The same for the vmemmap populate calls (arch_add_memory).
    pub populate_ns: u64,
}

/// Progress of the memmap-init events of a trace (times relative to `t0`).
pub fn trace_progress(events: &[TraceEvent], t0: u64) -> TraceProgress {
    let total = trace_init_total(events);
    let mut per_task: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for s in &total.steps {
        per_task
            .entry(s.thread.clone())
            .or_default()
            .push((s.end_ns, s.new_pages));
    }
    let mut all: Vec<(u64, u64)> = Vec::new();
    let mut threads: Vec<(String, Vec<[f64; 2]>)> = per_task
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_unstable();
            all.extend(v.iter().copied());
            let mut acc = 0;
            let mut pts = vec![[v[0].0.saturating_sub(t0) as f64, 0.0]];
            for (t, p) in v {
                acc += p;
                pts.push([t.saturating_sub(t0) as f64, acc as f64]);
            }
            (name, pts)
        })
        .collect();
    threads.sort_by(|a, b| a.0.cmp(&b.0));
    all.sort_unstable();
    let mut acc = 0;
    let mut total_pts = Vec::new();
    for (t, p) in all {
        acc += p;
        total_pts.push([t.saturating_sub(t0) as f64, acc as f64]);
    }
    let marks = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Initialised { t_ns, device, .. } => Some((
                format!("{device} initialised"),
                t_ns.saturating_sub(t0) as f64,
            )),
            _ => None,
        })
        .collect();
    TraceProgress {
        progress: Progress {
            threads,
            total: total_pts,
            marks,
        },
        pages: total.pages,
        busy_ns: total.init_ns,
        populate_ns: total.populate_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(t_ns: u64, dur: u64, pages: u64, task: &str, pid: u32) -> TraceEvent {
        TraceEvent::MemmapInit {
            t_ns,
            dur_ns: Some(dur),
            func: "memmap_init_zone_device".into(),
            start_pfn: t_ns * 100,
            nr_pages: pages,
            task: task.into(),
            pid,
            cpu: 0,
        }
    }

    #[test]
    fn memmap_init_events_add_up_per_task_and_in_total() {
        let events = vec![
            init(1_000, 100, 10, "a", 1),
            init(1_500, 50, 5, "b", 2),
            init(2_000, 10, 20, "a", 1),
            TraceEvent::Initialised {
                t_ns: 3_000,
                device: "pfn0.0".into(),
                pages: 35,
                ms: 0,
            },
        ];
        let p = trace_progress(&events, 1_000);
        assert_eq!((p.pages, p.busy_ns), (35, 160));
        assert_eq!(p.progress.threads.len(), 2);
        assert_eq!(p.progress.threads[0].0, "a-1");
        assert_eq!(
            p.progress.threads[0].1,
            vec![[100.0, 0.0], [100.0, 10.0], [1010.0, 30.0]]
        );
        assert_eq!(
            p.progress.total,
            vec![[100.0, 10.0], [550.0, 15.0], [1010.0, 35.0]]
        );
        assert_eq!(
            p.progress.marks,
            vec![("pfn0.0 initialised".into(), 2000.0)]
        );
        assert!(trace_progress(&[], 0).progress.total.is_empty());
    }
}
