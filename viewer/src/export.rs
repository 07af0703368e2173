//! Exports: the current view as PNG (from an egui screenshot, cropped to the plot),
//! and a comparison as one self-contained HTML file with inline SVG plots.

use crate::doc::compare::Side;
use crate::doc::fmt_ns;
use crate::doc::stats::{fmt_p, fmt_value, DeltaRow};
use crate::views::plots::{percentile_label, percentile_points};
use std::fmt::Write as _;
use std::path::Path;

/// Crop `img` to `rect` (in points, scaled by `ppp`) and write it as PNG.
pub fn save_png(
    img: &egui::ColorImage,
    rect: Option<egui::Rect>,
    ppp: f32,
    path: &Path,
) -> Result<(), String> {
    let [w, h] = img.size;
    let (x0, y0, x1, y1) = match rect {
        Some(r) => (
            ((r.left() * ppp).max(0.0) as usize).min(w),
            ((r.top() * ppp).max(0.0) as usize).min(h),
            ((r.right() * ppp).max(0.0) as usize).min(w),
            ((r.bottom() * ppp).max(0.0) as usize).min(h),
        ),
        None => (0, 0, w, h),
    };
    if x1 <= x0 || y1 <= y0 {
        return Err("nothing to export (empty region)".into());
    }
    let mut data = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
    for y in y0..y1 {
        for x in x0..x1 {
            data.extend_from_slice(&img.pixels[y * w + x].to_array());
        }
    }
    // memmap_model::output: written to an exclusive temporary name and renamed, so a
    // failed export leaves nothing and a device or directory in the way is refused.
    let mut out = memmap_model::output::Output::create(path, &[]).map_err(|e| e.to_string())?;
    {
        let mut enc = png::Encoder::new(out.writer(), (x1 - x0) as u32, (y1 - y0) as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| e.to_string())?;
        wr.write_image_data(&data).map_err(|e| e.to_string())?;
        wr.finish().map_err(|e| e.to_string())?;
    }
    out.commit().map_err(|e| e.to_string())
}

/// Write the comparison report (or any text) to `path` through `memmap_model::output`.
pub fn save_text(path: &Path, text: &str) -> Result<(), String> {
    memmap_model::output::write_atomic(path, &[], |w| std::io::Write::write_all(w, text.as_bytes()))
        .map_err(|e| e.to_string())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart as SVG: series of (x, y) with colours; axis labels from closures.
pub fn svg_lines(
    title: &str,
    series: &[(&str, &[[f64; 2]], &str)],
    x_fmt: &dyn Fn(f64) -> String,
    y_fmt: &dyn Fn(f64) -> String,
) -> String {
    let (w, h, ml, mr, mt, mb) = (640.0, 320.0, 70.0, 20.0, 30.0, 40.0);
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, 0.0f64, f64::NEG_INFINITY);
    for p in pts {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    if !x0.is_finite() || !x1.is_finite() || x1 <= x0 {
        x0 = 0.0;
        x1 = 1.0;
    }
    if !y1.is_finite() || y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let sx = |x: f64| ml + (x - x0) / (x1 - x0) * (w - ml - mr);
    let sy = |y: f64| h - mb - (y - y0) / (y1 - y0) * (h - mt - mb);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r#"<rect width="{w}" height="{h}" fill="white"/><text x="{ml}" y="18" font-size="13" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for k in 0..=4 {
        let fx = x0 + (x1 - x0) * k as f64 / 4.0;
        let fy = y0 + (y1 - y0) * k as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{:.1}" y1="{}" x2="{:.1}" y2="{}" stroke="#ddd"/><text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
            sx(fx),
            mt,
            sx(fx),
            h - mb,
            sx(fx),
            h - mb + 14.0,
            esc(&x_fmt(fx))
        );
        let _ = write!(
            s,
            r##"<line x1="{}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            ml,
            sy(fy),
            w - mr,
            sy(fy),
            ml - 4.0,
            sy(fy) + 4.0,
            esc(&y_fmt(fy))
        );
    }
    for (i, (name, pts, colour)) in series.iter().enumerate() {
        let step = (pts.len() / 1500).max(1);
        let d: Vec<String> = pts
            .iter()
            .step_by(step)
            .map(|p| format!("{:.1},{:.1}", sx(p[0]), sy(p[1])))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            d.join(" ")
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
            w - mr - 220.0,
            mt + 14.0 * (i as f64 + 1.0),
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole comparison as one HTML file: delta table, progress and stall plots.
pub fn comparison_html(a: &Side, b: &Side, rows: &[DeltaRow]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>memmap-lab: {} vs {}</title>",
        esc(&a.title),
        esc(&b.title)
    );
    s.push_str("<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}.better{color:#282}.worse{color:#c22}</style></head><body>");
    let _ = write!(
        s,
        "<h1>{} vs {}</h1><p>scenario {}; A = {} ({} repeats: {}), B = {} ({} repeats: {})</p>",
        esc(&a.title),
        esc(&b.title),
        esc(&a.scenario),
        esc(&a.strategy),
        a.metrics.len(),
        esc(&a.files.join(", ")),
        esc(&b.strategy),
        b.metrics.len(),
        esc(&b.files.join(", "))
    );
    s.push_str("<table><tr><th>metric</th><th>A median</th><th>B median</th><th>delta</th><th>ratio 95% CI</th><th>p</th><th>verdict</th></tr>");
    for r in rows {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            r.metric, esc(&fmt_value(r.kind, r.a_median)), esc(&fmt_value(r.kind, r.b_median)),
            r.delta_pct.map(|d| format!("{d:+.2}%")).unwrap_or_else(|| "–".into()),
            r.ratio_ci95.map(|c| format!("[{:.3}, {:.3}]", c[0], c[1])).unwrap_or_else(|| "–".into()),
            fmt_p(r.p_value), r.verdict, r.verdict);
    }
    s.push_str("</table><p>Mann-Whitney U, two-sided, alpha 0.05; ratio CI: seeded bootstrap (10000 resamples) of median(B)/median(A), as <code>memmap-replay compare</code>.</p>");
    s.push_str(&svg_lines(
        "Struct pages initialised (median repeat)",
        &[
            (&format!("A {}", a.title), &a.progress.total, "#4682dc"),
            (&format!("B {}", b.title), &b.progress.total, "#e67828"),
        ],
        &|x| fmt_ns(x),
        &|y| format!("{y:.0}"),
    ));
    let pa = a.stalls.as_ref().map(percentile_points).unwrap_or_default();
    let pb = b.stalls.as_ref().map(percentile_points).unwrap_or_default();
    s.push_str(&svg_lines(
        "Fault stall by percentile (µs)",
        &[
            (&format!("A {}", a.title), &pa, "#4682dc"),
            (&format!("B {}", b.title), &pb, "#e67828"),
        ],
        &|x| percentile_label(x),
        &|y| format!("{y:.1}"),
    ));
    s.push_str("</body></html>\n");
    s
}
