//! Timeline: one lane per thread (or task/CPU), spans and instants drawn with the
//! painter from the level-of-detail rows: each pixel column of a row is summarised
//! from prefix sums and max pyramids, so a frame costs O(lanes × width × log n)
//! whatever the number of items.
//!
//! Mouse: drag pans (horizontally and through lanes), wheel zooms around the
//! pointer, shift+wheel pans, shift+drag (or right-drag) selects a range. Keys:
//! Home/F fit, +/- zoom, ←/→ pan, Esc clears the selection.

use crate::doc::lod::{gallop_lower_bound, InstantRow, SpanRow, NO_LABEL};
use crate::doc::{fmt_ns, Doc, Lane, LaneStats, Timeline};
use egui::{Color32, Mesh, Pos2, Rect, Sense, Stroke, Ui, Vec2};

pub const LANE_NAME_W: f32 = 170.0;
pub const ROW_H: f32 = 12.0;
pub const INSTANT_H: f32 = 10.0;
pub const AXIS_H: f32 = 20.0;

/// What the user is looking at; times are ns relative to the timeline's t_min.
#[derive(Clone, Debug, Default)]
pub struct TimelineState {
    /// The timeline shown: (file index, repeat, size); another one resets the state.
    shown: Option<(usize, usize, u64)>,
    /// Colour of each label of the timeline shown.
    colors: LabelColors,
    pub view: Option<(f64, f64)>,
    pub selection: Option<(f64, f64)>,
    pub lane_scroll: f32,
    drag_select_from: Option<f64>,
    pub hover_text: Option<String>,
    /// Cached statistics of the selection.
    sel_cache: Option<((f64, f64), Vec<LaneStats>)>,
    /// Where the last frame's time went (for `examples/bench_view.rs`).
    pub profile: FrameProfile,
}

/// Time spent in the last frame's phases of the timeline, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameProfile {
    pub span_rows: f64,
    pub instant_rows: f64,
    /// Rectangles in the mesh.
    pub rects: usize,
}

/// Label colours, computed once per timeline (hashing a name and converting its
/// colour per pixel column was most of a frame).
#[derive(Clone, Debug, Default)]
struct LabelColors {
    /// `Timeline::id` of the labels.
    id: u64,
    list: Vec<Color32>,
}

impl LabelColors {
    fn of(tl: &Timeline) -> LabelColors {
        LabelColors {
            id: tl.id,
            list: tl.labels.iter().map(|l| label_color(l)).collect(),
        }
    }

    /// Colour of label `id` (grey for an unknown id).
    fn get(&self, id: u32) -> Color32 {
        self.list.get(id as usize).copied().unwrap_or(Color32::GRAY)
    }
}

impl TimelineState {
    pub fn fit(&mut self, tl: &Timeline) {
        self.view = Some((0.0, (tl.t_max - tl.t_min) as f64));
    }

    /// Zoom by `factor` (< 1 zooms in) around the relative position `at` (0..1).
    pub fn zoom(&mut self, factor: f64, at: f64) {
        if let Some((a, b)) = self.view {
            let w = b - a;
            let c = a + w * at;
            let nw = (w * factor).max(10.0);
            self.view = Some((c - nw * at, c - nw * at + nw));
        }
    }

    pub fn pan(&mut self, fraction: f64) {
        if let Some((a, b)) = self.view {
            let d = (b - a) * fraction;
            self.view = Some((a + d, b + d));
        }
    }
}

/// Colour of a label: fixed for replay span kinds, hashed otherwise.
pub fn label_color(name: &str) -> Color32 {
    match name {
        "init" => Color32::from_rgb(70, 130, 220),
        "populate" => Color32::from_rgb(230, 150, 50),
        "pgmap-pass" => Color32::from_rgb(90, 180, 90),
        "steal" => Color32::from_rgb(160, 90, 200),
        "stall" => Color32::from_rgb(220, 60, 60),
        _ if name.starts_with("phase") => Color32::from_rgb(140, 140, 150),
        _ => {
            let mut h: u32 = 2166136261;
            for b in name.bytes() {
                h = (h ^ b as u32).wrapping_mul(16777619);
            }
            let hue = (h % 360) as f32 / 360.0;
            egui::ecolor::Hsva::new(hue, 0.55, 0.8, 1.0).into()
        }
    }
}

/// Steps of the latency colour scale (a table: converting an HSV colour costs more
/// than the rest of a pixel column).
const LATENCY_STEPS: usize = 128;

/// Colour of a fault latency: green (≤ 1 µs) to red (≥ 10 ms), log scale.
pub fn latency_color(ns: u64) -> Color32 {
    static TABLE: std::sync::OnceLock<Vec<Color32>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..LATENCY_STEPS)
            .map(|i| {
                let x = i as f32 / (LATENCY_STEPS - 1) as f32;
                egui::ecolor::Hsva::new(0.33 * (1.0 - x), 0.8, 0.85, 1.0).into()
            })
            .collect()
    });
    let x = ((ns.max(1) as f64).log10() - 3.0) / 4.0;
    table[(x.clamp(0.0, 1.0) * (LATENCY_STEPS - 1) as f64).round() as usize]
}

fn lane_height(l: &Lane) -> f32 {
    l.rows.len() as f32 * ROW_H
        + if l.instants.is_empty() {
            0.0
        } else {
            INSTANT_H
        }
        + 4.0
}

/// The Timeline view of file `file` (repeat `repeat` of a run): the state starts
/// afresh when the timeline shown changes. Returns the rect of the plot (for PNG
/// export), None when a run has no such repeat.
pub fn ui(
    ui: &mut Ui,
    doc: &mut Doc,
    file: usize,
    repeat: usize,
    st: &mut TimelineState,
) -> Option<Rect> {
    let (key, tl) = match doc {
        Doc::Run(r) => {
            let key = (file, repeat, r.run.repeats.len() as u64);
            (key, r.timeline(repeat))
        }
        Doc::Trace(t) => ((file, 0, t.timeline.n_spans as u64), Some(&t.timeline)),
    };
    if st.shown != Some(key) {
        *st = TimelineState::default();
        st.shown = Some(key);
    }
    Some(timeline_ui(ui, tl?, st))
}

/// Draw the timeline and handle input. Returns the rect of the plot (for PNG export).
pub fn timeline_ui(ui: &mut Ui, tl: &Timeline, st: &mut TimelineState) -> Rect {
    if st.view.is_none() {
        st.fit(tl);
    }
    if st.colors.id != tl.id || st.colors.list.len() != tl.labels.len() {
        st.colors = LabelColors::of(tl);
    }
    toolbar(ui, tl, st);
    let avail = ui.available_size();
    let stats_h = if st.selection.is_some() {
        160.0f32.min(avail.y * 0.4)
    } else {
        0.0
    };
    let size = Vec2::new(avail.x.max(200.0), (avail.y - stats_h).max(120.0));
    let (rect, resp) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let plot = Rect::from_min_max(
        Pos2::new(rect.left() + LANE_NAME_W, rect.top() + AXIS_H),
        rect.max,
    );
    handle_input(ui, &resp, plot, tl, st);
    let (v0, v1) = st.view.unwrap_or((0.0, (tl.t_max - tl.t_min) as f64));
    let g = Geometry { rect, plot, v0, v1 };

    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    painter.rect_filled(rect, 0.0, visuals.extreme_bg_color);
    draw_axis(&painter, plot, rect, v0, v1, visuals.text_color());
    let total_h: f32 = tl.lanes.iter().map(lane_height).sum();
    st.lane_scroll = st.lane_scroll.min((total_h - plot.height()).max(0.0));
    let drawn = draw_lanes(
        &painter,
        visuals,
        tl,
        &st.colors,
        g,
        plot.top() - st.lane_scroll,
        resp.hover_pos(),
    );
    st.profile = drawn.profile;
    painter.add(egui::Shape::mesh(drawn.mesh));
    // Selection overlay.
    if let Some((a, b)) = st.selection {
        let xa = g.x_of(a);
        let xb = g.x_of(b);
        let r = Rect::from_min_max(
            Pos2::new(xa.max(plot.left()), rect.top()),
            Pos2::new(xb.min(plot.right()).max(xa), rect.bottom()),
        );
        painter.rect_filled(r, 0.0, Color32::from_rgba_unmultiplied(100, 150, 255, 40));
    }
    st.hover_text = drawn.hover_text.clone();
    if let Some(t) = drawn.hover_text {
        resp.on_hover_text_at_pointer(t);
    }
    // Selection statistics.
    if let Some(sel) = st.selection {
        let stale = st.sel_cache.as_ref().is_none_or(|(k, _)| *k != sel);
        if stale {
            st.sel_cache = Some((sel, tl.selection_stats(sel)));
        }
        if let Some((_, stats)) = &st.sel_cache {
            selection_table(ui, sel, stats);
        }
    }
    rect
}

/// Where the timeline is drawn and which time range (ns relative to `t_min`) it shows.
#[derive(Clone, Copy)]
struct Geometry {
    rect: Rect,
    /// `rect` without the lane names and the axis.
    plot: Rect,
    v0: f64,
    v1: f64,
}

impl Geometry {
    fn width(&self) -> f64 {
        self.plot.width().max(1.0) as f64
    }

    /// Time at screen x.
    fn t_at(&self, x: f32) -> f64 {
        self.v0 + (x - self.plot.left()) as f64 / self.width() * (self.v1 - self.v0)
    }

    /// Screen x of time t.
    fn x_of(&self, t: f64) -> f32 {
        self.plot.left() + ((t - self.v0) / (self.v1 - self.v0) * self.width()) as f32
    }
}

/// Counts, Fit / Zoom / Clear selection buttons and the time range in view.
fn toolbar(ui: &mut Ui, tl: &Timeline, st: &mut TimelineState) {
    ui.horizontal(|ui| {
        ui.label(format!(
            "{} lanes, {} spans, {} instants",
            tl.lanes.len(),
            tl.n_spans,
            tl.n_instants
        ));
        if ui.button("Fit").clicked() {
            st.fit(tl);
        }
        if ui.button("Zoom in").clicked() {
            st.zoom(0.5, 0.5);
        }
        if ui.button("Zoom out").clicked() {
            st.zoom(2.0, 0.5);
        }
        if st.selection.is_some() && ui.button("Clear selection").clicked() {
            st.selection = None;
        }
        if let Some((a, b)) = st.view {
            ui.label(format!(
                "view {} .. {} ({})",
                fmt_ns(a),
                fmt_ns(b),
                fmt_ns(b - a)
            ));
        }
    });
}

/// Mouse and keys (see the module comment): zoom, pan, lane scroll, range selection.
fn handle_input(ui: &Ui, resp: &egui::Response, plot: Rect, tl: &Timeline, st: &mut TimelineState) {
    let (v0, v1) = st.view.unwrap_or((0.0, (tl.t_max - tl.t_min) as f64));
    let width = plot.width().max(1.0) as f64;
    let shift = ui.input(|i| i.modifiers.shift);
    if resp.hovered() {
        let (scroll, zoom_delta, keys) = ui.input(|i| {
            (
                i.smooth_scroll_delta,
                i.zoom_delta(),
                (
                    i.key_pressed(egui::Key::Home) || i.key_pressed(egui::Key::F),
                    i.key_pressed(egui::Key::Plus) || i.key_pressed(egui::Key::Equals),
                    i.key_pressed(egui::Key::Minus),
                    i.key_pressed(egui::Key::ArrowLeft),
                    i.key_pressed(egui::Key::ArrowRight),
                    i.key_pressed(egui::Key::Escape),
                ),
            )
        });
        let at = resp
            .hover_pos()
            .map(|p| ((p.x - plot.left()) as f64 / width).clamp(0.0, 1.0))
            .unwrap_or(0.5);
        if zoom_delta != 1.0 {
            st.zoom(1.0 / zoom_delta as f64, at);
        } else if scroll.y != 0.0 && !shift {
            st.zoom((-scroll.y as f64 / 200.0).exp(), at);
        }
        if scroll.x != 0.0 {
            st.pan(-scroll.x as f64 / width);
        }
        if keys.0 {
            st.fit(tl);
        }
        if keys.1 {
            st.zoom(0.5, 0.5);
        }
        if keys.2 {
            st.zoom(2.0, 0.5);
        }
        if keys.3 {
            st.pan(-0.2);
        }
        if keys.4 {
            st.pan(0.2);
        }
        if keys.5 {
            st.selection = None;
        }
    }
    // Times of the view before this frame's zoom and pan.
    let to_t = |x: f32| v0 + (x - plot.left()) as f64 / width * (v1 - v0);
    let selecting = shift || resp.dragged_by(egui::PointerButton::Secondary);
    if resp.drag_started() && selecting {
        if let Some(p) = resp.interact_pointer_pos() {
            st.drag_select_from = Some(to_t(p.x));
        }
    }
    if resp.dragged() {
        if let (Some(from), Some(p)) = (st.drag_select_from, resp.interact_pointer_pos()) {
            let t = to_t(p.x);
            st.selection = Some((from.min(t), from.max(t)));
        } else {
            let d = resp.drag_delta();
            st.pan(-(d.x as f64) / width);
            st.lane_scroll = (st.lane_scroll - d.y).max(0.0);
        }
    }
    if resp.drag_stopped() {
        st.drag_select_from = None;
    }
}

/// What [`draw_lanes`] made: the rectangles of all rows, where the time went, and the
/// tooltip of what the pointer is over.
struct DrawnLanes {
    mesh: Mesh,
    profile: FrameProfile,
    hover_text: Option<String>,
}

/// The visible lanes from `y` (the top of the first lane on screen): names and
/// separators painted, rows and instants into one mesh.
fn draw_lanes(
    painter: &egui::Painter,
    visuals: &egui::Visuals,
    tl: &Timeline,
    colors: &LabelColors,
    g: Geometry,
    mut y: f32,
    hover: Option<Pos2>,
) -> DrawnLanes {
    let mut out = DrawnLanes {
        mesh: Mesh::default(),
        profile: FrameProfile::default(),
        hover_text: None,
    };
    let font = egui::FontId::proportional(11.0);
    for lane in &tl.lanes {
        let h = lane_height(lane);
        if y + h < g.plot.top() {
            y += h;
            continue;
        }
        if y > g.plot.bottom() {
            break;
        }
        let (rect, plot) = (g.rect, g.plot);
        painter.line_segment(
            [
                Pos2::new(rect.left(), y + h - 1.0),
                Pos2::new(rect.right(), y + h - 1.0),
            ],
            Stroke::new(0.5, visuals.weak_text_color().gamma_multiply(0.4)),
        );
        if y >= plot.top() - 2.0 {
            painter.text(
                Pos2::new(rect.left() + 4.0, y + 1.0),
                egui::Align2::LEFT_TOP,
                &lane.name,
                font.clone(),
                visuals.text_color(),
            );
        }
        draw_lane_rows(&mut out, lane, tl, colors, g, y, hover);
        if let Some(p) = hover {
            let lane_rect =
                Rect::from_min_max(Pos2::new(rect.left(), y), Pos2::new(rect.right(), y + h));
            if out.hover_text.is_none() && lane_rect.contains(p) && p.x < plot.left() {
                out.hover_text = Some(if lane.detail.is_empty() {
                    lane.name.clone()
                } else {
                    format!("{}\n{}", lane.name, lane.detail)
                });
            }
        }
        y += h;
    }
    out.profile.rects = out.mesh.vertices.len() / 4;
    out
}

/// The span rows and the instant row of one lane whose top is at `y`, and their
/// tooltip when the pointer is over them.
fn draw_lane_rows(
    out: &mut DrawnLanes,
    lane: &Lane,
    tl: &Timeline,
    colors: &LabelColors,
    g: Geometry,
    y: f32,
    hover: Option<Pos2>,
) {
    let (v0, v1, plot) = (g.v0, g.v1, g.plot);
    let mut ry = y + 1.0;
    for row in &lane.rows {
        let r = Rect::from_min_max(
            Pos2::new(plot.left(), ry),
            Pos2::new(plot.right(), ry + ROW_H - 1.0),
        );
        let t0 = std::time::Instant::now();
        draw_span_row(&mut out.mesh, row, colors, r, v0, v1, tl.t_min);
        out.profile.span_rows += t0.elapsed().as_secs_f64();
        if let Some(p) = hover {
            if r.contains(p) && out.hover_text.is_none() {
                out.hover_text = span_hover(row, tl, g.t_at(p.x), (v1 - v0) / g.width());
            }
        }
        ry += ROW_H;
    }
    if !lane.instants.is_empty() {
        let r = Rect::from_min_max(
            Pos2::new(plot.left(), ry),
            Pos2::new(plot.right(), ry + INSTANT_H - 1.0),
        );
        let t0 = std::time::Instant::now();
        draw_instant_row(&mut out.mesh, &lane.instants, tl, r, v0, v1, tl.t_min);
        out.profile.instant_rows += t0.elapsed().as_secs_f64();
        if let Some(p) = hover {
            if r.contains(p) && out.hover_text.is_none() {
                out.hover_text =
                    instant_hover(&lane.instants, tl, g.t_at(p.x), (v1 - v0) / g.width() * 3.0);
            }
        }
    }
}

fn draw_axis(painter: &egui::Painter, plot: Rect, rect: Rect, v0: f64, v1: f64, color: Color32) {
    let w = v1 - v0;
    let target = w / (plot.width() as f64 / 110.0).max(1.0);
    let mag = 10f64.powf(target.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= target)
        .unwrap_or(10.0 * mag);
    let mut t = (v0 / step).ceil() * step;
    let font = egui::FontId::proportional(10.0);
    let mut n = 0;
    while t <= v1 && n < 200 {
        let x = plot.left() + ((t - v0) / w * plot.width() as f64) as f32;
        painter.line_segment(
            [
                Pos2::new(x, rect.top() + AXIS_H - 4.0),
                Pos2::new(x, rect.bottom()),
            ],
            Stroke::new(0.5, color.gamma_multiply(0.15)),
        );
        painter.text(
            Pos2::new(x + 2.0, rect.top() + 2.0),
            egui::Align2::LEFT_TOP,
            fmt_ns(t),
            font.clone(),
            color,
        );
        t += step;
        n += 1;
    }
}

fn push_rect(mesh: &mut Mesh, r: Rect, c: Color32) {
    if r.width() > 0.0 && r.height() > 0.0 {
        mesh.add_colored_rect(r, c);
    }
}

/// One row of disjoint spans. Where a pixel column holds at most one span, spans are
/// drawn as they are; otherwise per column: busy fraction (alpha) and the colour of
/// the longest span, with busy time beyond the column carried into the next ones.
fn draw_span_row(
    mesh: &mut Mesh,
    row: &SpanRow,
    colors: &LabelColors,
    r: Rect,
    v0: f64,
    v1: f64,
    t_min: u64,
) {
    if row.is_empty() {
        return;
    }
    let width = r.width() as f64;
    let npp = (v1 - v0) / width; // ns per pixel
    let abs = |t: f64| (t.max(0.0) as u64).saturating_add(t_min);
    let a0 = abs(v0);
    let a1 = abs(v1);
    let i0 = row.first_ending_after(a0);
    let i1 = row.first_starting_at(a1.saturating_add(1));
    if i0 >= i1 {
        return;
    }
    let x_of = |t: u64| r.left() + ((t as f64 - t_min as f64 - v0) / npp) as f32;
    if (i1 - i0) as f64 <= width * 0.5 {
        for i in i0..i1 {
            let xa = x_of(row.start[i]).max(r.left());
            let xb = x_of(row.end[i]).min(r.right()).max(xa + 1.0);
            let c = colors.get(row.label[i]);
            push_rect(
                mesh,
                Rect::from_min_max(Pos2::new(xa, r.top()), Pos2::new(xb, r.bottom())),
                c,
            );
        }
        return;
    }
    let mut carry = 0.0f64;
    let mut i = i0;
    let mut run: Option<(f32, Color32)> = None; // start x and colour of merged columns
    let cols = width.ceil() as usize;
    // Zoomed out: sum the row's time buckets (a few per column) instead of searching.
    let level = row.mip.level_for(npp);
    for col in 0..=cols {
        let (c, x) = if let (Some((lvl, shift)), true) = (level, col < cols) {
            let b = row.mip.range(
                lvl,
                shift,
                abs(v0 + col as f64 * npp),
                abs(v0 + (col + 1) as f64 * npp),
            );
            let frac = (b.sum as f64 / npp).min(1.0) as f32;
            let c = (b.label != NO_LABEL && b.sum > 0).then(|| {
                let a = (0.25 + 0.75 * frac).min(1.0);
                colors.get(b.label).gamma_multiply(a)
            });
            (c, r.left() + col as f32)
        } else if col < cols {
            let ce = abs(v0 + (col + 1) as f64 * npp);
            let j = gallop_lower_bound(&row.start, i, i1, ce);
            let mut busy = carry;
            let mut colour = None;
            if j > i {
                busy += row.busy(i, j) as f64;
                if let Some(k) = row.longest(i, j) {
                    colour = Some(colors.get(row.label[k]));
                }
            }
            let used = busy.min(npp);
            carry = busy - used;
            if colour.is_none() && used > 0.0 {
                colour = run.map(|(_, c)| c);
            }
            i = j;
            let frac = (used / npp) as f32;
            let c = colour.map(|c| {
                let a = (0.25 + 0.75 * frac).min(1.0);
                c.gamma_multiply(a)
            });
            (c, r.left() + col as f32)
        } else {
            (None, r.left() + col as f32)
        };
        // Merge runs of equal colour into one rect.
        match (run, c) {
            (Some((_, rc)), Some(cc)) if rc == cc => {}
            (prev, next) => {
                if let Some((sx, rc)) = prev {
                    push_rect(
                        mesh,
                        Rect::from_min_max(
                            Pos2::new(sx, r.top()),
                            Pos2::new(x.min(r.right()), r.bottom()),
                        ),
                        rc,
                    );
                }
                run = next.map(|cc| (x, cc));
            }
        }
    }
}

/// Instants: one tick per item when sparse, otherwise per pixel column a tick
/// coloured by the largest value (latency) in the column.
fn draw_instant_row(
    mesh: &mut Mesh,
    row: &InstantRow,
    tl: &Timeline,
    r: Rect,
    v0: f64,
    v1: f64,
    t_min: u64,
) {
    let width = r.width() as f64;
    let npp = (v1 - v0) / width;
    let abs = |t: f64| (t.max(0.0) as u64).saturating_add(t_min);
    let i0 = row.first_at(abs(v0));
    let i1 = row.first_at(abs(v1).saturating_add(1));
    if i0 >= i1 {
        return;
    }
    let colour_of = |label: u32, value: u64| {
        if tl.is_fault(label) {
            latency_color(value)
        } else {
            Color32::from_rgb(230, 200, 60)
        }
    };
    if (i1 - i0) as f64 <= width * 0.5 {
        for k in i0..i1 {
            let x = r.left() + ((row.t[k] as f64 - t_min as f64 - v0) / npp) as f32;
            let xe = if row.value[k] > 0 && tl.is_fault(row.label[k]) {
                (x + (row.value[k] as f64 / npp) as f32).max(x + 2.0)
            } else {
                x + 2.0
            };
            push_rect(
                mesh,
                Rect::from_min_max(
                    Pos2::new(x, r.top()),
                    Pos2::new(xe.min(r.right()), r.bottom()),
                ),
                colour_of(row.label[k], row.value[k]),
            );
        }
        return;
    }
    let cols = width.ceil() as usize;
    // Zoomed out: per column the count and largest value of the row's time buckets.
    if let Some((lvl, shift)) = row.mip.level_for(npp) {
        for col in 0..cols {
            let b = row.mip.range(
                lvl,
                shift,
                abs(v0 + col as f64 * npp),
                abs(v0 + (col + 1) as f64 * npp),
            );
            if b.sum > 0 && b.label != NO_LABEL {
                let x = r.left() + col as f32;
                let density = (b.sum as f32).log2().max(0.0) / 10.0;
                let c = colour_of(b.label, b.max).gamma_multiply((0.5 + density).min(1.0));
                push_rect(
                    mesh,
                    Rect::from_min_max(Pos2::new(x, r.top()), Pos2::new(x + 1.0, r.bottom())),
                    c,
                );
            }
        }
        return;
    }
    let mut i = i0;
    for col in 0..cols {
        let ce = abs(v0 + (col + 1) as f64 * npp);
        let j = gallop_lower_bound(&row.t, i, i1, ce);
        if j > i {
            if let Some(k) = row.largest(i, j) {
                let x = r.left() + col as f32;
                let density = ((j - i) as f32).log2().max(0.0) / 10.0;
                let c =
                    colour_of(row.label[k], row.value[k]).gamma_multiply((0.5 + density).min(1.0));
                push_rect(
                    mesh,
                    Rect::from_min_max(Pos2::new(x, r.top()), Pos2::new(x + 1.0, r.bottom())),
                    c,
                );
            }
        }
        i = j;
        if i >= i1 {
            break;
        }
    }
}

fn span_hover(row: &SpanRow, tl: &Timeline, t: f64, npp: f64) -> Option<String> {
    let at = (t.max(0.0) as u64).saturating_add(tl.t_min);
    let tol = (npp * 2.0) as u64;
    let i = row.first_ending_after(at.saturating_sub(tol));
    if i >= row.len() || row.start[i] > at + tol {
        return None;
    }
    let j = row.first_starting_at(at + tol + 1);
    if j > i + 1 {
        let busy = row.busy(i, j);
        return Some(format!(
            "{} spans here, busy {}",
            j - i,
            fmt_ns(busy as f64)
        ));
    }
    let mut s = format!(
        "{}\nstart {}\nduration {}",
        tl.labels[row.label[i] as usize],
        fmt_ns((row.start[i] - tl.t_min) as f64),
        fmt_ns(row.dur(i) as f64)
    );
    if row.aux2[i] > 0 {
        s.push_str(&format!(
            "\n{} {:#x}, {} pages",
            tl.span_aux, row.aux[i], row.aux2[i]
        ));
    }
    Some(s)
}

fn instant_hover(row: &InstantRow, tl: &Timeline, t: f64, tol_ns: f64) -> Option<String> {
    let at = (t.max(0.0) as u64).saturating_add(tl.t_min);
    let tol = tol_ns as u64;
    let i = row.first_at(at.saturating_sub(tol));
    let j = row.first_at(at + tol + 1);
    if i >= j {
        return None;
    }
    if j > i + 1 {
        let k = row.largest(i, j)?;
        return Some(format!(
            "{} events here, largest value {}",
            j - i,
            fmt_ns(row.value[k] as f64)
        ));
    }
    let mut s = format!(
        "{}\nat {}",
        tl.labels[row.label[i] as usize],
        fmt_ns((row.t[i] - tl.t_min) as f64)
    );
    if row.value[i] > 0 {
        s.push_str(&format!("\nlatency {}", fmt_ns(row.value[i] as f64)));
    }
    if row.aux[i] > 0 {
        s.push_str(&format!("\n{} {:#x}", tl.instant_aux, row.aux[i]));
    }
    Some(s)
}

fn selection_table(ui: &mut Ui, (a, b): (f64, f64), stats: &[LaneStats]) {
    let w = b - a;
    ui.label(format!(
        "Selection {} .. {} ({})",
        fmt_ns(a),
        fmt_ns(b),
        fmt_ns(w)
    ));
    egui::ScrollArea::vertical()
        .id_salt("sel-stats")
        .show(ui, |ui| {
            egui::Grid::new("sel-grid").striped(true).show(ui, |ui| {
                for h in [
                    "lane",
                    "spans",
                    "busy",
                    "utilisation",
                    "faults",
                    "fault p50",
                    "fault p99",
                    "fault max",
                ] {
                    ui.strong(h);
                }
                ui.end_row();
                for s in stats {
                    ui.label(&s.lane);
                    ui.label(s.spans.to_string());
                    ui.label(fmt_ns(s.busy_ns as f64));
                    ui.label(format!("{:.1}%", s.busy_ns as f64 / w.max(1.0) * 100.0));
                    ui.label(s.faults.to_string());
                    ui.label(fmt_ns(s.fault_p50 as f64));
                    ui.label(fmt_ns(s.fault_p99 as f64));
                    ui.label(fmt_ns(s.fault_max as f64));
                    ui.end_row();
                }
            });
        });
}
