//! Layout: a map of each namespace / hot-added range by pfn: extents coloured by
//! role, and the section, sub-section, memory-block and vmemmap-block grids.

use crate::doc::{fmt_bytes, fmt_ns, Doc, MemmapRange, TraceDoc};
use egui::{Color32, Pos2, Rect, Sense, Stroke, Ui, Vec2};
use memmap_model::layout::{PageKind, RangeLayout, Role, VmemmapBacking};

/// The Layout view of a file: a run's layouts, or what a trace recorded.
pub fn ui(ui: &mut Ui, doc: &Doc) {
    match doc {
        Doc::Run(r) => layout_ui(ui, &r.run.layout),
        Doc::Trace(t) => trace_layout_ui(ui, t),
    }
}

pub fn role_color(r: Role) -> Color32 {
    match r {
        Role::InfoBlock => Color32::from_rgb(200, 60, 60),
        Role::AltmapReserve => Color32::from_rgb(230, 140, 60),
        Role::Memmap => Color32::from_rgb(70, 130, 220),
        Role::AlignPadding => Color32::from_rgb(150, 150, 150),
        Role::Data => Color32::from_rgb(90, 180, 90),
        Role::Offline => Color32::from_rgb(90, 90, 90),
        Role::Vmemmap => Color32::from_rgb(160, 90, 200),
    }
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::InfoBlock => "info block",
        Role::AltmapReserve => "altmap reserve",
        Role::Memmap => "memmap",
        Role::AlignPadding => "padding",
        Role::Data => "data",
        Role::Offline => "offline",
        Role::Vmemmap => "vmemmap (memmap_on_memory)",
    }
}

const ROWS: [&str; 5] = [
    "roles",
    "sections",
    "sub-sections",
    "memory blocks",
    "vmemmap blocks",
];

/// What the summary and the memory-blocks row say about memory block devices: RAM
/// gets one per memory block; ZONE_DEVICE memory (`pagemap_range` calls
/// `arch_add_memory` directly) gets none.
pub fn memory_blocks_text(l: &RangeLayout) -> String {
    match l.kind {
        PageKind::ZoneDevice => "no memory block devices (ZONE_DEVICE)".into(),
        PageKind::SystemRam => format!(
            "{} memory block{} of {}",
            l.memory_blocks,
            if l.memory_blocks == 1 { "" } else { "s" },
            fmt_bytes(l.params.memory_block_size)
        ),
    }
}

/// The Layout view of a trace: its layouts, the memmap-init ranges it recorded, and
/// when there is nothing to lay out, why.
fn trace_layout_ui(ui: &mut Ui, doc: &TraceDoc) {
    if let Some(note) = &doc.layout_note {
        for (i, line) in note.lines().enumerate() {
            if i == 0 {
                ui.strong(line);
            } else {
                ui.label(line);
            }
        }
    }
    for e in &doc.layout_errors {
        ui.colored_label(Color32::YELLOW, e);
    }
    if doc.layouts.is_empty() {
        return;
    }
    layout_ui_with(ui, &doc.layouts, &doc.memmap_ranges);
}

fn layout_ui(ui: &mut Ui, layouts: &[RangeLayout]) {
    if layouts.is_empty() {
        ui.label("No namespace or hot-added range in this file.");
        return;
    }
    layout_ui_with(ui, layouts, &[]);
}

fn layout_ui_with(ui: &mut Ui, layouts: &[RangeLayout], recorded: &[MemmapRange]) {
    ui.horizontal_wrapped(|ui| {
        for r in [
            Role::InfoBlock,
            Role::AltmapReserve,
            Role::Memmap,
            Role::AlignPadding,
            Role::Data,
            Role::Vmemmap,
        ] {
            let (rect, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
            ui.painter().rect_filled(rect, 2.0, role_color(r));
            ui.label(role_name(r));
        }
    });
    let mut nodes: Vec<u32> = layouts.iter().map(|l| l.node).collect();
    nodes.sort_unstable();
    nodes.dedup();
    egui::ScrollArea::vertical()
        .id_salt("layout-scroll")
        .show(ui, |ui| {
            for node in nodes {
                ui.strong(format!("node {node}"));
                for l in layouts.iter().filter(|l| l.node == node) {
                    range_ui(ui, l, recorded);
                }
            }
        });
}

fn range_ui(ui: &mut Ui, l: &RangeLayout, recorded: &[MemmapRange]) {
    let ps = l.params.page_size;
    ui.label(format!(
        "{}: pfn {:#x}..{:#x} ({}), data {} pages, memmap {} ({} on device, {} in RAM), {} sections, {} sub-sections, {}, {} vmemmap blocks",
        l.name, l.res_start_pfn, l.res_end_pfn(), fmt_bytes(l.res_pages * ps), l.data_pages, fmt_bytes(l.memmap_bytes),
        fmt_bytes(l.memmap_bytes_device), fmt_bytes(l.memmap_bytes_ram), l.sections, l.subsections, memory_blocks_text(l), l.vmemmap_blocks.len()
    ));
    // What the trace's memmap-init events saw on this range.
    for r in recorded
        .iter()
        .filter(|r| r.start_pfn < l.res_end_pfn() && r.start_pfn + r.nr_pages > l.res_start_pfn)
    {
        let same = r.start_pfn == l.range_start_pfn && r.nr_pages == l.range_pages;
        ui.label(format!(
            "recorded: {} by {} on pfn {:#x}..{:#x} ({} pages, longest {}){}",
            r.funcs.join(", "),
            r.task,
            r.start_pfn,
            r.start_pfn + r.nr_pages,
            r.nr_pages,
            fmt_ns(r.max_dur_ns as f64),
            if same { ", the computed range" } else { "" }
        ));
    }
    let row_h = 16.0;
    let name_w = 110.0;
    let w = ui.available_width().max(300.0);
    let (rect, resp) = ui.allocate_exact_size(
        Vec2::new(w, row_h * ROWS.len() as f32 + 4.0),
        Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let x0 = rect.left() + name_w;
    let pw = (rect.right() - x0).max(1.0) as f64;
    let start = l.res_start_pfn;
    let end = l.res_end_pfn().max(start + 1);
    let n = (end - start) as f64;
    let x_of = |pfn: u64| x0 + ((pfn.clamp(start, end) - start) as f64 / n * pw) as f32;
    let text = ui.visuals().text_color();
    for (i, name) in ROWS.iter().enumerate() {
        painter.text(
            Pos2::new(rect.left(), rect.top() + i as f32 * row_h + 2.0),
            egui::Align2::LEFT_TOP,
            *name,
            egui::FontId::proportional(11.0),
            text,
        );
    }
    let row_rect = |i: usize, a: u64, b: u64| {
        let y = rect.top() + i as f32 * row_h;
        Rect::from_min_max(
            Pos2::new(x_of(a), y + 1.0),
            Pos2::new(x_of(b).max(x_of(a) + 1.0), y + row_h - 1.0),
        )
    };
    for e in &l.extents {
        painter.rect_filled(
            row_rect(0, e.start_pfn, e.start_pfn + e.pages),
            0.0,
            role_color(e.role),
        );
    }
    // Grids of sections, sub-sections and memory blocks (aligned, absolute). ZONE_DEVICE
    // memory has no memory block devices: the row says so instead of drawing a grid.
    let grids = [
        (1, l.params.section_pages()),
        (2, l.params.subsection_pages()),
        (3, l.params.memory_block_size / ps),
    ];
    for (row, unit) in grids {
        if unit == 0 {
            continue;
        }
        if row == 3 && l.kind == PageKind::ZoneDevice {
            let r = row_rect(row, start, end);
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(1.0, Color32::from_gray(90)),
                egui::StrokeKind::Inside,
            );
            painter.text(
                r.center(),
                egui::Align2::CENTER_CENTER,
                "none: ZONE_DEVICE memory gets no memory block devices",
                egui::FontId::proportional(10.0),
                Color32::from_gray(170),
            );
            continue;
        }
        let first = start / unit;
        let last = end.div_ceil(unit);
        let count = last - first;
        if count as f64 > pw / 3.0 {
            let r = row_rect(row, start, end);
            painter.rect_filled(r, 0.0, Color32::from_gray(110));
            painter.text(
                r.center(),
                egui::Align2::CENTER_CENTER,
                format!("{count} × {}", fmt_bytes(unit * ps)),
                egui::FontId::proportional(10.0),
                Color32::WHITE,
            );
        } else {
            for k in first..last {
                let c = if k % 2 == 0 {
                    Color32::from_gray(120)
                } else {
                    Color32::from_gray(160)
                };
                painter.rect_filled(row_rect(row, k * unit, (k + 1) * unit), 0.0, c);
            }
        }
    }
    for b in &l.vmemmap_blocks {
        let c = match b.backing {
            VmemmapBacking::Altmap { .. } => role_color(Role::Memmap),
            VmemmapBacking::Ram => Color32::from_rgb(200, 170, 60),
            VmemmapBacking::RamBasePages => Color32::from_rgb(230, 210, 120),
            VmemmapBacking::MemoryBlock { .. } => role_color(Role::Vmemmap),
        };
        let r = row_rect(4, b.first_pfn, b.first_pfn + b.nr_pfns);
        painter.rect_filled(r, 0.0, c);
        painter.rect_stroke(
            r,
            0.0,
            Stroke::new(0.5, Color32::BLACK),
            egui::StrokeKind::Inside,
        );
    }
    if let Some(p) = resp.hover_pos() {
        if p.x >= x0 {
            let pfn = start + (((p.x - x0) as f64 / pw) * n) as u64;
            let row = (((p.y - rect.top()) / row_h) as usize).min(ROWS.len() - 1);
            let s = hover_text(l, pfn, row);
            resp.on_hover_text_at_pointer(s);
        }
    }
    ui.add_space(6.0);
}

fn hover_text(l: &RangeLayout, pfn: u64, row: usize) -> String {
    let ps = l.params.page_size;
    let span = |a: u64, b: u64| {
        format!(
            "pfn {a:#x}..{b:#x} ({} pages, {})",
            b - a,
            fmt_bytes((b - a) * ps)
        )
    };
    match row {
        0 => l
            .extents
            .iter()
            .find(|e| pfn >= e.start_pfn && pfn < e.start_pfn + e.pages)
            .map(|e| {
                format!(
                    "{}\n{}",
                    role_name(e.role),
                    span(e.start_pfn, e.start_pfn + e.pages)
                )
            })
            .unwrap_or_else(|| format!("pfn {pfn:#x}")),
        1..=3 => {
            if row == 3 && l.kind == PageKind::ZoneDevice {
                return format!(
                    "no memory block devices: ZONE_DEVICE memory is added by pagemap_range \
                     with arch_add_memory, not create_memory_block_devices\npfn {pfn:#x}"
                );
            }
            let (name, unit) = match row {
                1 => ("section", l.params.section_pages()),
                2 => ("sub-section", l.params.subsection_pages()),
                _ => ("memory block", l.params.memory_block_size / ps),
            };
            let k = pfn / unit.max(1);
            format!("{name} {k}\n{}", span(k * unit, (k + 1) * unit))
        }
        _ => l
            .vmemmap_blocks
            .iter()
            .find(|b| pfn >= b.first_pfn && pfn < b.first_pfn + b.nr_pfns)
            .map(|b| {
                format!(
                    "vmemmap block, {} of struct pages, backing {:?}\n{}",
                    fmt_bytes(b.bytes),
                    b.backing,
                    span(b.first_pfn, b.first_pfn + b.nr_pfns)
                )
            })
            .unwrap_or_else(|| format!("pfn {pfn:#x}: no vmemmap block")),
    }
}
