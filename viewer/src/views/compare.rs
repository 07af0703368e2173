//! Compare A/B: pick two runs (or two groups of runs of one strategy) and see the
//! overlaid progress and stall curves and the delta table of `memmap-replay compare`.

use crate::doc::compare::{resolve, sources, Side, Source};
use crate::doc::stats::{delta_table, fmt_p, fmt_value, DeltaRow, ALPHA};
use crate::doc::OpenFile;
use crate::views::plots;
use egui::{Color32, Ui};

pub const COLOR_A: Color32 = Color32::from_rgb(70, 130, 220);
pub const COLOR_B: Color32 = Color32::from_rgb(230, 120, 40);

#[derive(Clone, Debug, Default)]
pub struct CompareState {
    pub a: Option<Source>,
    pub b: Option<Source>,
}

/// The Compare view: the A and B pickers, the delta table, the HTML export and the
/// overlaid progress and stall percentile plots. Returns a status message when the
/// report was exported.
pub fn ui(ui: &mut Ui, files: &[OpenFile], st: &mut CompareState) -> Option<String> {
    let (a, b, rows) = compare_ui(ui, files, st)?;
    let mut status = None;
    ui.horizontal(|ui| {
        if ui.button("Export HTML report").clicked() {
            let html = crate::export::comparison_html(&a, &b, &rows);
            let p = std::path::PathBuf::from("memmap-compare.html");
            status = Some(match crate::export::save_text(&p, &html) {
                Ok(()) => format!("saved {}", p.display()),
                Err(e) => format!("report export failed: {e}"),
            });
        }
    });
    let h = ui.available_height();
    ui.columns(2, |c| {
        c[0].set_height(h);
        plots::progress_plot(
            &mut c[0],
            "cmp-progress",
            &[("A", &a.progress, COLOR_A), ("B", &b.progress, COLOR_B)],
            false,
        );
        let mut hs = Vec::new();
        if let Some(x) = &a.stalls {
            hs.push(("A stalls", x, COLOR_A));
        }
        if let Some(x) = &b.stalls {
            hs.push(("B stalls", x, COLOR_B));
        }
        plots::percentile_plot(&mut c[1], "cmp-stalls", &hs);
    });
    status
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
    for (side, x) in [("A", &a), ("B", &b)] {
        crate::views::overview::kernel_vs_replay_section(
            ui,
            &format!("cmp-kernel-{side}"),
            &format!(
                "{side}: kernel recorded vs replay ({}, init per namespace, median over repeats)",
                x.files.first().map(String::as_str).unwrap_or_default()
            ),
            &x.kernel,
        );
    }
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
        if r.min_possible_p > ALPHA {
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
