//! Live: follow running replays. The app reloads files whose mtime changed (every
//! 0.5 s while following); this view shows the switch, each file's repeats done and
//! age, and the latest repeat's progress of the active run.

use super::compare::COLOR_A;
use super::plots;
use crate::doc::{fmt_ns, Doc, OpenFile};
use egui::Ui;

/// The Live view; `follow` is the app's follow switch.
pub fn ui(ui: &mut Ui, files: &[OpenFile], active: usize, follow: &mut bool) {
    ui.checkbox(
        follow,
        "Follow: reload files when they change on disk (checked every 0.5 s)",
    );
    egui::Grid::new("live-grid").striped(true).show(ui, |ui| {
        for h in [
            "file",
            "repeats",
            "complete",
            "modified",
            "latest time to complete",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        for f in files {
            file_row(ui, f);
            ui.end_row();
        }
    });
    if let Some(Doc::Run(r)) = files.get(active).map(|f| &f.doc) {
        let n = r.run.repeats.len();
        if n > 0 {
            let p = r.progress(n - 1);
            plots::progress_plot(
                ui,
                "live-progress",
                &[(&format!("latest repeat {}", n - 1), &p, COLOR_A)],
                false,
            );
        }
    }
}

/// One file's row of the grid.
fn file_row(ui: &mut Ui, f: &OpenFile) {
    let age = f
        .mtime
        .and_then(|m| m.elapsed().ok())
        .map(|d| format!("{:.0} s ago", d.as_secs_f64()))
        .unwrap_or_default();
    ui.label(&f.name);
    match &f.doc {
        Doc::Run(r) => {
            ui.label(format!(
                "{} / {}",
                r.run.repeats.len(),
                r.run.config.repeats_requested
            ));
            ui.label(if r.run.complete {
                "yes"
            } else if r.run.interrupted {
                "interrupted"
            } else {
                "running"
            });
            ui.label(age);
            ui.label(
                r.run
                    .repeats
                    .last()
                    .map(|x| fmt_ns(x.metrics.time_to_complete_ns as f64))
                    .unwrap_or_default(),
            );
        }
        Doc::Trace(t) => {
            ui.label("trace");
            ui.label("");
            ui.label(age);
            ui.label(format!("{} spans", t.timeline.n_spans));
        }
    }
}
