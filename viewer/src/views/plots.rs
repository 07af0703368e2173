//! Progress and stall plots (egui_plot; every series is bounded in size: progress
//! curves are at most 2000 samples per thread, stall samples at most 20000).

use crate::data::{fmt_ns, Progress};
use egui::{Color32, Ui};
use egui_plot::{Bar, BarChart, GridMark, Legend, Line, Plot, PlotPoints, Points, VLine};
use hdrhistogram::Histogram;

/// Largest x of the percentile axis: 1 - p = 1e-6 (99.9999%).
const MAX_NINES: f64 = 6.0;

/// x position of percentile `p` (0..100): -log10(1 - p/100), the HdrHistogram plot axis.
pub fn percentile_x(p: f64) -> f64 {
    (-(1.0 - p / 100.0).max(10f64.powf(-MAX_NINES)).log10()).max(0.0)
}

/// Axis label of a percentile-axis position.
pub fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    if x < 0.5 {
        format!("{p:.0}%")
    } else {
        let decimals = (x.round() as i32 - 2).max(0) as usize;
        format!("{p:.decimals$}%")
    }
}

/// (x, latency µs) points of the percentile distribution.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<[f64; 2]> = h
        .iter_quantiles(5)
        .map(|v| {
            [
                percentile_x(v.percentile()),
                v.value_iterated_to() as f64 / 1e3,
            ]
        })
        .collect();
    pts.dedup_by(|a, b| a[0] == b[0]);
    pts
}

pub fn progress_plot(
    ui: &mut Ui,
    id: &str,
    curves: &[(&str, &Progress, Color32)],
    per_thread: bool,
) {
    Plot::new(id)
        .legend(Legend::default())
        .x_axis_label("time since start")
        .y_axis_label("struct pages initialised")
        .x_axis_formatter(|m: GridMark, _| fmt_ns(m.value))
        .show(ui, |p| {
            for (name, prog, colour) in curves {
                if per_thread {
                    for (tn, pts) in &prog.threads {
                        p.line(
                            Line::new(format!("{name} {tn}"), PlotPoints::from(pts.clone()))
                                .width(1.0),
                        );
                    }
                }
                p.line(
                    Line::new(
                        format!("{name} total"),
                        PlotPoints::from(prog.total.clone()),
                    )
                    .width(2.5)
                    .color(*colour),
                );
                for (label, t) in &prog.marks {
                    if label.contains("available") || label.contains("initialised") {
                        p.vline(
                            VLine::new(format!("{name} {label}"), *t)
                                .color(*colour)
                                .width(1.5),
                        );
                    }
                }
            }
        });
}

pub fn percentile_plot(ui: &mut Ui, id: &str, hists: &[(&str, &Histogram<u64>, Color32)]) {
    Plot::new(id)
        .legend(Legend::default())
        .x_axis_label("percentile")
        .y_axis_label("stall (µs)")
        .x_axis_formatter(|m: GridMark, _| percentile_label(m.value))
        .include_x(0.0)
        .include_x(3.0)
        .include_y(0.0)
        .show(ui, |p| {
            for (name, h, colour) in hists {
                p.line(
                    Line::new(name.to_string(), PlotPoints::from(percentile_points(h)))
                        .color(*colour)
                        .width(2.0),
                );
            }
        });
}

pub fn histogram_plot(ui: &mut Ui, id: &str, h: &Histogram<u64>) {
    let mut bars = Vec::new();
    if !h.is_empty() {
        for v in h.iter_log(1, 2.0) {
            let c = v.count_since_last_iteration();
            if c > 0 {
                let x = (v.value_iterated_to().max(1) as f64).log10();
                bars.push(Bar::new(x, c as f64).width(0.25));
            }
        }
    }
    Plot::new(id)
        .x_axis_label("stall (log scale)")
        .y_axis_label("faults")
        .x_axis_formatter(|m: GridMark, _| fmt_ns(10f64.powf(m.value)))
        .show(ui, |p| {
            p.bar_chart(BarChart::new("stalls", bars).color(Color32::from_rgb(220, 90, 60)));
        });
}

/// Stall against time, y on a log10 scale.
pub fn stall_time_plot(ui: &mut Ui, id: &str, pts: &[[f64; 2]]) {
    let pts: Vec<[f64; 2]> = pts
        .iter()
        .map(|p| [p[0], (p[1].max(1.0)).log10()])
        .collect();
    Plot::new(id)
        .x_axis_label("time")
        .y_axis_label("stall (log scale)")
        .x_axis_formatter(|m: GridMark, _| fmt_ns(m.value))
        .y_axis_formatter(|m: GridMark, _| fmt_ns(10f64.powf(m.value)))
        .show(ui, |p| {
            p.points(
                Points::new("faults", PlotPoints::from(pts))
                    .radius(1.5)
                    .color(Color32::from_rgb(220, 90, 60)),
            );
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        assert_eq!(percentile_x(0.0), 0.0);
        assert!((percentile_x(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_x(100.0), MAX_NINES);
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
    }
}
