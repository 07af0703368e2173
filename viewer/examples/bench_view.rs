//! Viewer benchmark: open a trace, then render the Timeline headless while panning
//! and zooming. `cargo run --release -p memmap-viewer --example bench_view -- TRACE [FRAMES]`
//! Prints open time, per-frame time (egui pass + tessellation; no GPU) median/p99/max,
//! and peak RSS (VmHWM). With BENCH_PHASES=1 also the loading phases and, for the five
//! slowest frames, the egui pass (of which the timeline's span rows and instant rows),
//! the tessellation, the visible fraction of the trace and the rectangles drawn.

use memmap_viewer::{View, ViewerApp};
use std::time::Instant;

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .cloned()
        .unwrap_or_else(|| "/tmp/big.trace.jsonl".into());
    let frames: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut app = ViewerApp::default();
    app.follow = false;
    let t = Instant::now();
    app.open_sync(std::path::Path::new(&path));
    let open_s = t.elapsed().as_secs_f64();
    if let Some(e) = app.errors.first() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    if let memmap_viewer::doc::Doc::Trace(t) = &app.files[0].doc {
        if std::env::var_os("BENCH_PHASES").is_some() {
            let p: Vec<String> = t
                .load_phases
                .iter()
                .map(|(k, s)| format!("{k} {:.3} s", s))
                .collect();
            eprintln!("open phases: {}", p.join(", "));
        }
    }
    let (spans, instants, heap) = match &app.files[0].doc {
        memmap_viewer::doc::Doc::Trace(t) => (
            t.timeline.n_spans,
            t.timeline.n_instants,
            t.timeline.heap_bytes(),
        ),
        memmap_viewer::doc::Doc::Run(_) => (0, 0, 0),
    };
    app.view = View::Timeline;
    let ctx = egui::Context::default();
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1920.0, 1080.0),
        )),
        ..Default::default()
    };
    // Warm-up (fonts, first layout).
    for _ in 0..3 {
        let out = ctx.run_ui(input(), |ui| app.ui(ui));
        let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
    }
    let mut times = Vec::with_capacity(frames);
    // Per frame: (total, egui pass, timeline span rows, instant rows, tessellation,
    // visible fraction of the trace, rectangles).
    let mut phases: Vec<(f64, f64, f64, f64, f64, f64, usize)> = Vec::with_capacity(frames);
    let total_ns = match &app.files[0].doc {
        memmap_viewer::doc::Doc::Trace(t) => (t.timeline.t_max - t.timeline.t_min) as f64,
        memmap_viewer::doc::Doc::Run(_) => 1.0,
    };
    for f in 0..frames {
        // Zoom in for 60 frames, pan for 60, zoom out for 60, then fit, repeating.
        match (f / 60) % 4 {
            0 => app.timeline.zoom(0.9, 0.4),
            1 => app.timeline.pan(0.02),
            2 => app.timeline.zoom(1.0 / 0.9, 0.6),
            _ => app.timeline.pan(-0.02),
        }
        let t = Instant::now();
        let out = ctx.run_ui(input(), |ui| app.ui(ui));
        let pass = t.elapsed().as_secs_f64() * 1e3;
        let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
        let total = t.elapsed().as_secs_f64() * 1e3;
        times.push(total);
        let p = app.timeline.profile;
        let visible = app
            .timeline
            .view
            .map(|(a, b)| (b - a) / total_ns)
            .unwrap_or(1.0);
        phases.push((
            total,
            pass,
            p.span_rows * 1e3,
            p.instant_rows * 1e3,
            total - pass,
            visible,
            p.rects,
        ));
        std::hint::black_box(prims);
    }
    if std::env::var_os("BENCH_PHASES").is_some() {
        // The slowest frames and where their time went.
        phases.sort_by(|a, b| b.0.total_cmp(&a.0));
        for p in phases.iter().take(5) {
            eprintln!(
                "frame {:.2} ms: egui pass {:.2} ms (span rows {:.2}, instant rows {:.2}), tessellation {:.2} ms; {:.3} of the trace in view, {} rects",
                p.0, p.1, p.2, p.3, p.4, p.5, p.6
            );
        }
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "open {:.3} s ({} spans, {} instants, LOD data {:.0} MB); frames {}: median {:.2} ms, p99 {:.2} ms, max {:.2} ms; peak RSS {:.0} MB",
        open_s,
        spans,
        instants,
        heap as f64 / 1e6,
        times.len(),
        q(0.5),
        q(0.99),
        times[times.len() - 1],
        vm_hwm_mb()
    );
}
