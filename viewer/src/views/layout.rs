//! Layout: a map of each namespace / hot-added range by pfn: extents coloured by
//! role, and the section, sub-section, memory-block and vmemmap-block grids.

use crate::data::fmt_bytes;
use egui::{Color32, Pos2, Rect, Sense, Stroke, Ui, Vec2};
use memmap_model::layout::{RangeLayout, Role, VmemmapBacking};

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

pub fn layout_ui(ui: &mut Ui, layouts: &[RangeLayout]) {
    if layouts.is_empty() {
        ui.label("No namespace or hot-added range in this file (a trace needs namespace or memory-block events).");
        return;
    }
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
                    range_ui(ui, l);
                }
            }
        });
}

fn range_ui(ui: &mut Ui, l: &RangeLayout) {
    let ps = l.params.page_size;
    ui.label(format!(
        "{}: pfn {:#x}..{:#x} ({}), data {} pages, memmap {} ({} on device, {} in RAM), {} sections, {} sub-sections, {} memory blocks, {} vmemmap blocks",
        l.name, l.res_start_pfn, l.res_end_pfn(), fmt_bytes(l.res_pages * ps), l.data_pages, fmt_bytes(l.memmap_bytes),
        fmt_bytes(l.memmap_bytes_device), fmt_bytes(l.memmap_bytes_ram), l.sections, l.subsections, l.memory_blocks, l.vmemmap_blocks.len()
    ));
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
    // Grids of sections, sub-sections and memory blocks (aligned, absolute).
    let grids = [
        (1, l.params.section_pages()),
        (2, l.params.subsection_pages()),
        (3, l.params.memory_block_size / ps),
    ];
    for (row, unit) in grids {
        if unit == 0 {
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
