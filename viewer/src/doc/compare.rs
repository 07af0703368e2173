//! The two sides of an A/B comparison, resolved against the open files: a run, or
//! a group of runs (all open runs of one scenario and strategy, repeats pooled).

use super::load::OpenFile;
use super::progress::Progress;
use hdrhistogram::Histogram;
use memmap_model::kernel_recorded::{kernel_vs_replay, KernelVsReplay};
use memmap_model::run::Metrics;
use std::path::PathBuf;

/// Where a side of the comparison takes its repeats from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    File(PathBuf),
    /// Every open run of this scenario and strategy, repeats pooled.
    Group {
        scenario: String,
        strategy: String,
    },
}

/// A side of the comparison, resolved against the open files.
pub struct Side {
    pub title: String,
    pub scenario: String,
    pub strategy: String,
    pub metrics: Vec<Metrics>,
    pub stalls: Option<Histogram<u64>>,
    pub progress: Progress,
    pub files: Vec<String>,
    /// Of the first run: per namespace, kernel recorded | replay measured | predicted kernel.
    pub kernel: Vec<KernelVsReplay>,
}

/// Every source the open files offer: each run, and each (scenario, strategy) with several runs.
pub fn sources(files: &[OpenFile]) -> Vec<(Source, String)> {
    let mut out = Vec::new();
    let mut groups: Vec<(String, String, usize)> = Vec::new();
    for f in files {
        if let Some(r) = f.run() {
            out.push((
                Source::File(f.path.clone()),
                format!(
                    "{} ({}, {} repeats)",
                    f.name,
                    r.run.config.strategy,
                    r.run.repeats.len()
                ),
            ));
            let key = (r.run.scenario.name.clone(), r.run.config.strategy.clone());
            match groups.iter_mut().find(|g| g.0 == key.0 && g.1 == key.1) {
                Some(g) => g.2 += 1,
                None => groups.push((key.0, key.1, 1)),
            }
        }
    }
    for (scenario, strategy, n) in groups {
        if n > 1 {
            out.push((
                Source::Group {
                    scenario: scenario.clone(),
                    strategy: strategy.clone(),
                },
                format!("group {scenario} / {strategy} ({n} runs)"),
            ));
        }
    }
    out
}

/// The side `s` stands for among the open files: its runs' metrics and stall
/// histograms pooled, the progress of the first run's median repeat; None when no
/// open run matches.
pub fn resolve(files: &[OpenFile], s: &Source) -> Option<Side> {
    let runs: Vec<&OpenFile> = files
        .iter()
        .filter(|f| match (s, f.run()) {
            (Source::File(p), Some(_)) => &f.path == p,
            (Source::Group { scenario, strategy }, Some(r)) => {
                &r.run.scenario.name == scenario && &r.run.config.strategy == strategy
            }
            _ => false,
        })
        .collect();
    let first = runs.first()?.run()?;
    let mut metrics = Vec::new();
    let mut stalls: Option<Histogram<u64>> = None;
    for f in &runs {
        let r = f.run()?;
        metrics.extend(r.run.repeats.iter().map(|x| x.metrics.clone()));
        if let Some(h) = r.merged_stalls() {
            match &mut stalls {
                None => stalls = Some(h),
                Some(s) => {
                    let _ = s.add(&h);
                }
            }
        }
    }
    // Progress of the repeat with the median time to complete of the first run.
    let mut order: Vec<usize> = (0..first.run.repeats.len()).collect();
    order.sort_by_key(|&i| first.run.repeats[i].metrics.time_to_complete_ns);
    let progress = order
        .get(order.len() / 2)
        .map(|&i| first.progress(i))
        .unwrap_or_default();
    let title = match s {
        Source::File(_) => runs[0].name.clone(),
        Source::Group { scenario, strategy } => format!("{scenario} / {strategy}"),
    };
    Some(Side {
        title,
        scenario: first.run.scenario.name.clone(),
        strategy: first.run.config.strategy.clone(),
        metrics,
        stalls,
        progress,
        files: runs.iter().map(|f| f.name.clone()).collect(),
        kernel: kernel_vs_replay(&first.run),
    })
}
