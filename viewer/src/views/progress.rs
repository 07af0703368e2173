//! Progress: struct pages initialised over time, per thread (or task) and in total,
//! with each namespace's available / complete moments.

use super::compare::COLOR_A;
use super::plots;
use crate::doc::Doc;
use egui::Ui;

/// What the Progress view remembers.
#[derive(Clone, Debug)]
pub struct ProgressState {
    /// Draw a curve per thread (task) besides the total.
    pub per_thread: bool,
}

impl Default for ProgressState {
    fn default() -> Self {
        ProgressState { per_thread: true }
    }
}

/// The Progress view of a file (repeat `repeat` of a run).
pub fn ui(ui: &mut Ui, doc: &Doc, repeat: usize, st: &mut ProgressState) {
    match doc {
        Doc::Run(r) => {
            ui.checkbox(&mut st.per_thread, "per thread");
            let p = r.progress(repeat);
            plots::progress_plot(
                ui,
                "progress",
                &[(&format!("repeat {repeat}"), &p, COLOR_A)],
                st.per_thread,
            );
        }
        Doc::Trace(t) => {
            if t.progress.total.is_empty() {
                ui.label("This trace has no memmap-init events.");
            } else {
                ui.checkbox(&mut st.per_thread, "per task");
                plots::progress_plot(
                    ui,
                    "progress",
                    &[("trace", &t.progress, COLOR_A)],
                    st.per_thread,
                );
            }
        }
    }
}
