//! Progress and stall plots (egui_plot; every series is bounded in size: progress
//! curves are at most 2000 samples per thread, stall samples at most 20000).

use crate::doc::Progress;
use egui::{Color32, Rangef, Ui};
use egui_plot::{
    AxisHints, Bar, BarChart, GridInput, GridMark, HoverPosition, Legend, Line, Plot, PlotPoints,
    Points, VLine,
};
use hdrhistogram::Histogram;
use std::ops::RangeInclusive;

/// Largest x of the percentile axis: 1 - p = 1e-6 (99.9999%).
const MAX_NINES: f64 = 6.0;

/// x position of percentile `p` (0..100): log10(1 / (1 - p/100)), HdrHistogram's
/// percentile axis (1/(1-p) on a log scale): 90% at 1, 99% at 2, 99.9% at 3, ...
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
    // n samples resolve percentiles up to 1 - 1/n: the last point (100%) goes there
    // rather than to the end of the axis (as HdrHistogram's plots end at the maximum).
    let resolved = (h.len().max(1) as f64).log10().clamp(1.0, MAX_NINES);
    let mut pts: Vec<[f64; 2]> = h
        .iter_quantiles(5)
        .map(|v| {
            [
                percentile_x(v.percentile()).min(resolved),
                v.value_iterated_to() as f64 / 1e3,
            ]
        })
        .collect();
    // One point per x, the largest latency (a vertical run of points at the clamped end
    // would draw as a spike).
    let mut out: Vec<[f64; 2]> = Vec::with_capacity(pts.len());
    for p in pts.drain(..) {
        match out.last_mut() {
            Some(l) if l[0] == p[0] => l[1] = l[1].max(p[1]),
            _ => out.push(p),
        }
    }
    out
}

/// Smallest distance between two labelled ticks of an x axis, in points. egui_plot's
/// own spacers pick powers of ten and then hide every label closer than 60 points to
/// its neighbour (or narrower than its text), which on a half-width plot left only "0".
const X_LABEL_PX: f64 = 72.0;
/// egui_plot's smallest grid line spacing (`Plot::grid_spacing`), set explicitly so
/// the spacers can convert `GridInput::base_step_size` back to points per unit.
const GRID_MIN_PX: f32 = 8.0;

/// Points per unit of the axis, from what egui_plot gives a grid spacer.
fn px_per_unit(input: &GridInput) -> f64 {
    GRID_MIN_PX as f64 / input.base_step_size.max(f64::MIN_POSITIVE)
}

/// Multiples of `step` within `bounds`, as grid marks of that step size.
fn marks_every(step: f64, (lo, hi): (f64, f64), out: &mut Vec<GridMark>) {
    if step.is_nan()
        || step <= 0.0
        || !lo.is_finite()
        || !hi.is_finite()
        || (hi - lo) / step > 10_000.0
    {
        return;
    }
    let mut k = (lo / step).ceil();
    while k * step <= hi {
        out.push(GridMark {
            value: k * step,
            step_size: step,
        });
        k += 1.0;
    }
}

/// Sort marks and keep the coarsest one where two coincide.
fn merge_marks(mut marks: Vec<GridMark>) -> Vec<GridMark> {
    marks.sort_by(|a, b| a.value.total_cmp(&b.value));
    let mut out: Vec<GridMark> = Vec::with_capacity(marks.len());
    for m in marks {
        match out.last_mut() {
            Some(l) if (l.value - m.value).abs() < 1e-9 * m.step_size.max(l.step_size) => {
                if m.step_size > l.step_size {
                    *l = m;
                }
            }
            _ => out.push(m),
        }
    }
    out
}

/// The smallest 1-2-5 × 10^k step of at least `min`.
fn nice_step(min: f64) -> f64 {
    if min.is_nan() || min <= 0.0 || !min.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(min.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= min * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Linear axis: labelled ticks at a 1-2-5 step at least `X_LABEL_PX` apart, finer
/// unlabelled grid lines between them.
fn linear_spacer(input: GridInput) -> Vec<GridMark> {
    let major = nice_step(X_LABEL_PX / px_per_unit(&input));
    let first_digit = (major / 10f64.powf(major.log10().floor())).round();
    let minor = major / if first_digit == 2.0 { 4.0 } else { 5.0 };
    let mut marks = Vec::new();
    marks_every(minor, input.bounds, &mut marks);
    marks_every(major, input.bounds, &mut marks);
    merge_marks(marks)
}

/// Axis of log10(value): labelled ticks at whole decades (every 1, 2, 5, ... decades,
/// at least `X_LABEL_PX` apart), unlabelled lines at 2..9 × 10^k when a decade is
/// wide enough.
fn decade_spacer(input: GridInput) -> Vec<GridMark> {
    let ppu = px_per_unit(&input);
    let major = nice_step(X_LABEL_PX / ppu).max(1.0);
    let mut marks = Vec::new();
    marks_every(1.0, input.bounds, &mut marks);
    marks_every(major, input.bounds, &mut marks);
    if ppu >= 40.0 {
        let (lo, hi) = input.bounds;
        if lo.is_finite() && hi.is_finite() && hi - lo < 100.0 {
            let mut d = lo.floor();
            while d <= hi {
                for m in 2..10 {
                    let v = d + (m as f64).log10();
                    // 2× and 5× get labels once a decade is wide (less than a decade
                    // in view would otherwise show one label or none).
                    let step = if ppu >= 250.0 && (m == 2 || m == 5) {
                        0.3
                    } else {
                        0.1
                    };
                    if v >= lo && v <= hi {
                        marks.push(GridMark {
                            value: v,
                            step_size: step,
                        });
                    }
                }
                d += 1.0;
            }
        }
    }
    merge_marks(marks)
}

/// Percentile axis (x = log10(1/(1-p))): labelled ticks at 0%, 90%, 99%, 99.9%, ...
/// (every nine, or every second one when they would be closer than their labels), and
/// unlabelled lines at 50% and 75%.
fn percentile_spacer(input: GridInput) -> Vec<GridMark> {
    let ppu = px_per_unit(&input);
    let major = if ppu >= X_LABEL_PX * 0.8 { 1.0 } else { 2.0 };
    let mut marks = Vec::new();
    marks_every(major, input.bounds, &mut marks);
    if major > 1.0 {
        marks_every(1.0, input.bounds, &mut marks);
        marks.retain(|m| m.step_size == major || m.value % major != 0.0);
        for m in &mut marks {
            if m.value % major != 0.0 {
                m.step_size = 0.5;
            }
        }
    }
    for p in [50.0, 75.0] {
        let v = percentile_x(p);
        if v >= input.bounds.0 && v <= input.bounds.1 {
            marks.push(GridMark {
                value: v,
                step_size: 0.1,
            });
        }
    }
    merge_marks(marks)
}

/// An x axis whose labels egui_plot shows at full strength once the ticks are
/// `X_LABEL_PX` apart; the unlabelled finer lines stay below the 40-point minimum.
fn x_axis<'a>(
    label: &str,
    fmt: impl Fn(GridMark, &RangeInclusive<f64>) -> String + 'a,
) -> Vec<AxisHints<'a>> {
    vec![AxisHints::new_x()
        .label(label)
        .formatter(fmt)
        .label_spacing(40.0..=60.0)]
}

/// Tick label of a time or latency axis: the unit follows the larger end of the
/// visible range, the decimals the tick step ("0", "20 ms", "40 ms" or "1.5 s").
pub fn fmt_ns_tick(value: f64, step: f64, range: &RangeInclusive<f64>) -> String {
    let big = range.start().abs().max(range.end().abs()).max(value.abs());
    let (unit, name) = if big >= 1e9 {
        (1e9, "s")
    } else if big >= 1e6 {
        (1e6, "ms")
    } else if big >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    if value == 0.0 {
        return "0".into();
    }
    let rel = (step / unit).abs();
    let decimals = if rel >= 1.0 || rel <= 0.0 {
        0
    } else {
        ((-rel.log10()).ceil() as usize).min(6)
    };
    format!("{:.*} {name}", decimals, value / unit)
}

/// Tick label of a log10(ns) axis: whole decades and their 2× and 5× ("1 ns", "20 µs",
/// "5 ms"); nothing for other positions.
pub fn fmt_decade_tick(x: f64) -> String {
    let d = x.floor();
    let m = 10f64.powf(x - d);
    let mult = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|k| (m - k).abs() < 1e-6 * k);
    let Some(mult) = mult else {
        return String::new();
    };
    let ns = (mult * 10f64.powi(d as i32)).round();
    let (unit, name) = if ns >= 1e9 {
        (1e9, "s")
    } else if ns >= 1e6 {
        (1e6, "ms")
    } else if ns >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    let v = ns / unit;
    if v >= 1.0 {
        format!("{v:.0} {name}")
    } else {
        format!("{v} {name}")
    }
}

pub fn progress_plot(
    ui: &mut Ui,
    id: &str,
    curves: &[(&str, &Progress, Color32)],
    per_thread: bool,
) {
    Plot::new(id)
        .legend(Legend::default())
        .grid_spacing(Rangef::new(GRID_MIN_PX, 300.0))
        .custom_x_axes(x_axis("time since start", |m: GridMark, r| {
            fmt_ns_tick(m.value, m.step_size, r)
        }))
        .x_grid_spacer(linear_spacer)
        .y_axis_label("struct pages initialised")
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

/// Latency against percentile, x = log10(1/(1-p)) with ticks at 0%, 90%, 99%, 99.9%, ...
pub fn percentile_plot(ui: &mut Ui, id: &str, hists: &[(&str, &Histogram<u64>, Color32)]) {
    Plot::new(id)
        .legend(Legend::default())
        .grid_spacing(Rangef::new(GRID_MIN_PX, 300.0))
        .custom_x_axes(x_axis("percentile", |m: GridMark, _| {
            percentile_label(m.value)
        }))
        .x_grid_spacer(percentile_spacer)
        .y_axis_label("stall (µs)")
        .label_formatter(|pos| match pos {
            HoverPosition::NearDataPoint {
                plot_name,
                position,
                ..
            } => Some(format!(
                "{plot_name}\np{} {:.3} µs",
                percentile_text(position.x),
                position.y
            )),
            HoverPosition::Elsewhere { position } => Some(format!(
                "p{} {:.3} µs",
                percentile_text(position.x),
                position.y
            )),
        })
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

/// A percentile-axis position as a percentile with enough digits ("99.95").
fn percentile_text(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x.max(0.0)));
    let decimals = (x.max(0.0).ceil() as usize).saturating_sub(1).min(8);
    format!("{p:.decimals$}")
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
        .grid_spacing(Rangef::new(GRID_MIN_PX, 300.0))
        .custom_x_axes(x_axis("stall (log scale)", |m: GridMark, _| {
            fmt_decade_tick(m.value)
        }))
        .x_grid_spacer(decade_spacer)
        .y_axis_label("faults")
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
        .grid_spacing(Rangef::new(GRID_MIN_PX, 300.0))
        .custom_x_axes(x_axis("time", |m: GridMark, r| {
            fmt_ns_tick(m.value, m.step_size, r)
        }))
        .x_grid_spacer(linear_spacer)
        .y_axis_label("stall (log scale)")
        .y_axis_formatter(|m: GridMark, _| fmt_decade_tick(m.value))
        .y_grid_spacer(decade_spacer)
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
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(4.0), "99.99%");
        assert_eq!(percentile_text(3.3), "99.950");
    }

    fn input(lo: f64, hi: f64, px: f64) -> GridInput {
        GridInput {
            bounds: (lo, hi),
            base_step_size: (hi - lo) / px * GRID_MIN_PX as f64,
        }
    }

    fn labelled(marks: &[GridMark], ppu: f64) -> Vec<f64> {
        marks
            .iter()
            .filter(|m| m.step_size * ppu >= X_LABEL_PX)
            .map(|m| m.value)
            .collect()
    }

    #[test]
    fn percentile_ticks_on_a_narrow_plot() {
        // A 300-point-wide plot of 0..6.3 nines (the Stalls view): labelled 0%, 90%, ...
        let ppu = 300.0 / 6.3;
        let m = percentile_spacer(input(-0.2, 6.1, 300.0));
        assert_eq!(labelled(&m, ppu), vec![0.0, 2.0, 4.0, 6.0]);
        // Wider: every nine.
        let m = percentile_spacer(input(-0.2, 6.1, 600.0));
        assert_eq!(
            labelled(&m, 600.0 / 6.3),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        let labels: Vec<String> = [1.0, 2.0, 3.0, 4.0].map(percentile_label).to_vec();
        assert_eq!(labels, ["90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn time_and_decade_ticks() {
        // 0..47 ms over 280 points: ticks every 20 ms (1-2-5 step >= 72 points).
        let m = linear_spacer(input(-1e6, 47e6, 280.0));
        let ppu = 280.0 / 48e6;
        assert_eq!(labelled(&m, ppu), vec![0.0, 20e6, 40e6]);
        let r = -1e6..=47e6;
        assert_eq!(fmt_ns_tick(20e6, 20e6, &r), "20 ms");
        assert_eq!(fmt_ns_tick(2.5e6, 5e5, &r), "2.5 ms");
        assert_eq!(fmt_ns_tick(0.0, 20e6, &r), "0");
        // log10(ns) 1..7 over 300 points: a label every decade, "10 ns" .. "10 ms".
        let m = decade_spacer(input(0.8, 7.2, 300.0));
        let ppu = 300.0 / 6.4;
        assert!(labelled(&m, ppu).len() >= 3, "{:?}", labelled(&m, ppu));
        assert_eq!(fmt_decade_tick(1.0), "10 ns");
        assert_eq!(fmt_decade_tick(4.0), "10 µs");
        assert_eq!(fmt_decade_tick(6.0), "1 ms");
        assert_eq!(fmt_decade_tick(6.5), "");
        assert_eq!(fmt_decade_tick(2f64.log10() + 7.0), "20 ms");
        assert_eq!(fmt_decade_tick(5f64.log10() + 2.0), "500 ns");
    }
}
