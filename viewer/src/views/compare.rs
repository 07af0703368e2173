//! Compare A/B: pick two runs (or two groups of runs of one strategy) and see the
//! overlaid progress and stall curves and the delta table of `memmap-replay compare`.

use crate::data::{OpenFile, Progress};
use crate::stats::{delta_table, fmt_p, fmt_value, DeltaRow};
use egui::{Color32, Ui};
use hdrhistogram::Histogram;
use memmap_model::run::Metrics;
use std::path::PathBuf;

pub const COLOR_A: Color32 = Color32::from_rgb(70, 130, 220);
pub const COLOR_B: Color32 = Color32::from_rgb(230, 120, 40);

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

#[derive(Clone, Debug, Default)]
pub struct CompareState {
    pub a: Option<Source>,
    pub b: Option<Source>,
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
    })
}

/// Pick A and B; returns the resolved sides and the delta table when both are set.
pub fn compare_ui(
    ui: &mut Ui,
    files: &[OpenFile],
    st: &mut CompareState,
) -> Option<(Side, Side, Vec<DeltaRow>)> {
    let srcs = sources(files);
    if srcs.len() < 2 {
        ui.label("Open at least two run files to compare them.");
    }
    ui.columns(2, |cols| {
        cols[0].strong("A (baseline)");
        for (s, label) in &srcs {
            let on = st.a.as_ref() == Some(s);
            if cols[0]
                .selectable_label(on, format!("A: {label}"))
                .clicked()
            {
                st.a = Some(s.clone());
            }
        }
        cols[1].strong("B");
        for (s, label) in &srcs {
            let on = st.b.as_ref() == Some(s);
            if cols[1]
                .selectable_label(on, format!("B: {label}"))
                .clicked()
            {
                st.b = Some(s.clone());
            }
        }
    });
    let a = resolve(files, st.a.as_ref()?)?;
    let b = resolve(files, st.b.as_ref()?)?;
    if a.scenario != b.scenario {
        ui.colored_label(
            Color32::YELLOW,
            format!(
                "A and B replay different scenarios ({} vs {}): compare scales with care",
                a.scenario, b.scenario
            ),
        );
    }
    let rows = delta_table(&a.scenario, &b.strategy, &a.metrics, &b.metrics);
    ui.separator();
    delta_grid(ui, &a, &b, &rows);
    Some((a, b, rows))
}

pub fn delta_grid(ui: &mut Ui, a: &Side, b: &Side, rows: &[DeltaRow]) {
    egui::Grid::new("delta-table").striped(true).show(ui, |ui| {
        for h in [
            "metric",
            "A median ± spread",
            "B median ± spread",
            "delta",
            "ratio 95% CI",
            "p",
            "verdict",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        for r in rows {
            ui.label(r.metric);
            let spread = |s: Option<f64>| s.map(|s| format!(" ± {s:.0}%")).unwrap_or_default();
            ui.label(format!(
                "{}{}",
                fmt_value(r.kind, r.a_median),
                spread(r.a_spread_pct)
            ));
            ui.label(format!(
                "{}{}",
                fmt_value(r.kind, r.b_median),
                spread(r.b_spread_pct)
            ));
            ui.label(
                r.delta_pct
                    .map(|d| format!("{d:+.2}%"))
                    .unwrap_or_else(|| "–".into()),
            );
            ui.label(
                r.ratio_ci95
                    .map(|c| format!("[{:.3}, {:.3}]", c[0], c[1]))
                    .unwrap_or_else(|| "–".into()),
            );
            ui.label(fmt_p(r.p_value));
            let colour = match r.verdict {
                "better" => Color32::from_rgb(80, 180, 80),
                "worse" => Color32::from_rgb(220, 70, 70),
                _ => ui.visuals().text_color(),
            };
            ui.colored_label(colour, r.verdict);
            ui.end_row();
        }
    });
    ui.label(format!(
        "A = {} ({} repeats), B = {} ({} repeats). Mann-Whitney U two-sided at alpha 0.05; ratio CI: seeded bootstrap of median(B)/median(A); \"~\": no significant difference.",
        a.title, a.metrics.len(), b.title, b.metrics.len()
    ));
    if let Some(r) = rows.first() {
        if r.min_possible_p > crate::stats::ALPHA {
            ui.colored_label(
                Color32::YELLOW,
                format!(
                    "n={}+{}: the smallest possible p is {:.3} > 0.05; need >= 4 repeats per side",
                    r.n_a, r.n_b, r.min_possible_p
                ),
            );
        }
    }
}
