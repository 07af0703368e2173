//! Stalls: the fault latency distribution (HdrHistogram percentiles, log-bucketed
//! histogram) and latency against time; a run's stall histogram of the selected
//! repeat, or a trace's dax-fault latencies.

use super::compare::COLOR_A;
use super::plots;
use crate::doc::{fmt_ns, Doc};
use egui::Ui;
use hdrhistogram::Histogram;

/// The Stalls view of a file (repeat `repeat` of a run).
pub fn ui(ui: &mut Ui, doc: &Doc, repeat: usize) {
    match doc {
        Doc::Run(r) => {
            let hist = r.stall_hists.get(repeat).cloned().flatten();
            let samples = r.stall_samples(repeat);
            stalls_ui(ui, hist.as_ref(), &samples, &format!("repeat {repeat}"));
        }
        Doc::Trace(t) => stalls_ui(ui, t.fault_hist.as_ref(), &t.fault_over_time, "dax faults"),
    }
}

fn stalls_ui(ui: &mut Ui, hist: Option<&Histogram<u64>>, over_time: &[[f64; 2]], name: &str) {
    let Some(h) = hist else {
        ui.label("No stall data (no faults recorded, or the histogram could not be decoded).");
        return;
    };
    ui.label(format!(
        "{name}: {} faults, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
        h.len(),
        fmt_ns(h.value_at_quantile(0.5) as f64),
        fmt_ns(h.value_at_quantile(0.9) as f64),
        fmt_ns(h.value_at_quantile(0.99) as f64),
        fmt_ns(h.value_at_quantile(0.999) as f64),
        fmt_ns(h.max() as f64)
    ));
    let h_avail = ui.available_height();
    ui.columns(2, |c| {
        c[0].set_height(h_avail);
        plots::percentile_plot(&mut c[0], "stall-pct", &[(name, h, COLOR_A)]);
        let half = h_avail / 2.0;
        egui::Frame::NONE.show(&mut c[1], |ui| {
            ui.set_height(half - 10.0);
            plots::histogram_plot(ui, "stall-hist", h);
        });
        plots::stall_time_plot(&mut c[1], "stall-time", over_time);
    });
}
