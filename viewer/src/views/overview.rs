//! Overview: host, kernel, layout summary, strategy and headline figures.

use crate::doc::stats::median;
use crate::doc::{fmt_bytes, fmt_ns, Doc, RunDoc, TraceDoc};
use egui::Ui;
use memmap_model::kernel_recorded::{fmt_opt, kernel_vs_replay, KernelVsReplay};

/// The Overview view of a file.
pub fn ui(ui: &mut Ui, doc: &Doc) {
    match doc {
        Doc::Run(r) => run_overview(ui, r),
        Doc::Trace(t) => trace_overview(ui, t),
    }
}

fn row(ui: &mut Ui, k: &str, v: impl Into<String>) {
    ui.label(k);
    ui.label(v.into());
    ui.end_row();
}

fn run_overview(ui: &mut Ui, doc: &RunDoc) {
    let r = &doc.run;
    ui.heading(format!("{} / {}", r.scenario.name, r.config.strategy));
    ui.label(&r.scenario.description);
    egui::Grid::new("ov-run").num_columns(2).striped(true).show(ui, |ui| {
        row(ui, "host", format!("{} ({} CPUs, {} NUMA nodes, {})", r.host.hostname, r.host.cpus_online, r.host.numa_nodes, fmt_bytes(r.host.mem_total_bytes)));
        row(ui, "kernel", r.host.kernel_release.clone());
        row(ui, "cpu", r.host.cpu_model.clone());
        row(ui, "tool", r.tool.clone());
        row(ui, "strategy", format!("{} (threads {}, sub-ranges {}, chunk {} pages, store {:?})", r.config.strategy, r.config.params.threads, r.config.params.sub_ranges, r.config.params.chunk_pages, r.config.params.store));
        row(ui, "faults", format!("{} × {} threads/namespace, {} touches, {} B", r.config.faults.pattern, r.config.faults.threads_per_namespace, r.config.faults.touches_per_thread, r.config.faults.fault_bytes));
        row(ui, "target", format!("{} (DAX {}, MAP_SYNC {})", r.config.target.kind, r.config.target.dax, r.config.target.map_sync));
        row(ui, "scale", format!("{}", r.scenario.scale));
        row(ui, "repeats", format!("{} of {} requested{}{}", r.repeats.len(), r.config.repeats_requested, if r.complete { "" } else { ", incomplete" }, if r.interrupted { ", interrupted" } else { "" }));
        for l in &r.layout {
            row(ui, &format!("layout {}", l.name), format!(
                "node {}, {} data pages ({}), {} sections, {} sub-sections, {}, {} vmemmap blocks, memmap {}",
                l.node, l.data_pages, fmt_bytes(l.data_pages * l.params.page_size), l.sections, l.subsections, crate::views::layout::memory_blocks_text(l), l.vmemmap_blocks.len(), fmt_bytes(l.memmap_bytes)
            ));
        }
    });
    ui.separator();
    ui.strong("Headline figures (median over repeats)");
    let ms: Vec<_> = r.repeats.iter().map(|x| &x.metrics).collect();
    let med = |f: &dyn Fn(&memmap_model::run::Metrics) -> f64| {
        median(&ms.iter().map(|m| f(m)).collect::<Vec<_>>())
    };
    egui::Grid::new("ov-figures")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            row(
                ui,
                "time to available",
                fmt_ns(med(&|m| m.time_to_available_ns as f64)),
            );
            row(
                ui,
                "time to complete",
                fmt_ns(med(&|m| m.time_to_complete_ns as f64)),
            );
            row(ui, "stall p50", fmt_ns(med(&|m| m.stall_p50_ns as f64)));
            row(ui, "stall p99", fmt_ns(med(&|m| m.stall_p99_ns as f64)));
            row(ui, "stall max", fmt_ns(med(&|m| m.stall_max_ns as f64)));
            row(
                ui,
                "memmap bandwidth",
                format!("{:.2} GB/s", med(&|m| m.memmap_bytes_per_s) / 1e9),
            );
            row(
                ui,
                "fraction of NT roofline",
                format!("{:.3}", med(&|m| m.fraction_of_nt_roofline)),
            );
            row(
                ui,
                "engine efficiency",
                format!("{:.3}", med(&|m| m.engine_efficiency)),
            );
            row(
                ui,
                "uninitialised reads",
                format!("{}", ms.iter().map(|m| m.uninitialised_reads).sum::<u64>()),
            );
        });
    ui.separator();
    kernel_vs_replay_section(
        ui,
        "ov-kernel",
        "Kernel recorded vs replay (init per namespace, median over repeats)",
        &kernel_vs_replay(r),
    );
    if !r.config.notes.is_empty() {
        ui.separator();
        ui.strong("Notes");
        for n in &r.config.notes {
            ui.label(format!("• {n}"));
        }
    }
    for e in &doc.hist_errors {
        ui.colored_label(egui::Color32::RED, e);
    }
}

fn trace_overview(ui: &mut Ui, doc: &TraceDoc) {
    let h = &doc.header;
    ui.heading(format!("trace ({})", h.source));
    egui::Grid::new("ov-trace")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            row(
                ui,
                "kernel",
                if h.kernel_release.is_empty() {
                    "(not recorded)".into()
                } else {
                    h.kernel_release.clone()
                },
            );
            row(ui, "cmdline", h.cmdline.clone());
            row(
                ui,
                "host",
                format!("{} CPUs, {} NUMA nodes", h.cpus, h.numa_nodes),
            );
            row(
                ui,
                "duration",
                fmt_ns((doc.timeline.t_max - doc.timeline.t_min) as f64),
            );
            row(ui, "lanes", format!("{}", doc.timeline.lanes.len()));
            for (k, n) in &doc.kind_counts {
                row(ui, &format!("events: {k}"), n.to_string());
            }
            for l in &doc.layouts {
                row(
                    ui,
                    &format!("layout {}", l.name),
                    format!(
                        "{}, node {}, pfn {:#x}..{:#x} ({}), {} data pages, {} sections, {}, memmap {}",
                        describe_range(l),
                        l.node,
                        l.res_start_pfn,
                        l.res_end_pfn(),
                        fmt_bytes(l.res_pages * l.params.page_size),
                        l.data_pages,
                        l.sections,
                        crate::views::layout::memory_blocks_text(l),
                        fmt_bytes(l.memmap_bytes)
                    ),
                );
            }
            if doc.layouts.is_empty() {
                if let Some(note) = &doc.layout_note {
                    row(ui, "layout", note.lines().next().unwrap_or_default());
                }
            }
            if doc.memmap_pages > 0 {
                row(
                    ui,
                    "memmap init",
                    format!(
                        "{} pages in {} ({:.2} GB/s of struct pages; each pfn range and call once, nested calls not added)",
                        doc.memmap_pages,
                        fmt_ns(doc.memmap_busy_ns as f64),
                        doc.memmap_pages as f64 * 64.0 / doc.memmap_busy_ns.max(1) as f64
                    ),
                );
            }
            if doc.memmap_populate_ns > 0 {
                row(ui, "vmemmap populate", fmt_ns(doc.memmap_populate_ns as f64));
            }
            for k in doc.kernel_recorded.iter().filter(|k| !k.sources.is_empty()) {
                let parts: Vec<String> = k
                    .sources
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {}×{} {:.3} ms{}",
                            s.source,
                            s.calls,
                            if s.nested_calls > 0 {
                                format!(" ({} nested)", s.nested_calls)
                            } else {
                                String::new()
                            },
                            s.total_us / 1e3,
                            s.pages.map(|p| format!(", {p} pages")).unwrap_or_default()
                        )
                    })
                    .collect();
                row(
                    ui,
                    &format!("kernel recorded {}", k.name),
                    format!(
                        "init {} ms, populate {} ms · {}",
                        fmt_opt(k.init_ms, 3),
                        fmt_opt(k.populate_ms, 3),
                        parts.join(" · ")
                    ),
                );
            }
            if let Some(hist) = &doc.fault_hist {
                row(
                    ui,
                    "fault latency",
                    format!(
                        "n={} p50 {} p99 {} max {}",
                        hist.len(),
                        fmt_ns(hist.value_at_quantile(0.5) as f64),
                        fmt_ns(hist.value_at_quantile(0.99) as f64),
                        fmt_ns(hist.max() as f64)
                    ),
                );
            }
        });
    for n in &h.notes {
        ui.label(format!("• {n}"));
    }
    for w in doc.warnings.iter().chain(&doc.layout_errors) {
        ui.colored_label(egui::Color32::YELLOW, w);
    }
}

/// "fsdax namespace, map=dev" / "hot-plugged RAM".
fn describe_range(l: &memmap_model::layout::RangeLayout) -> String {
    match (&l.namespace, &l.hotplug) {
        (Some(ns), _) => format!("{:?} namespace, map={:?}", ns.mode, ns.map).to_lowercase(),
        (None, Some(_)) => "hot-plugged RAM".into(),
        _ => "range".into(),
    }
}

/// [`kernel_vs_replay_grid`] under a collapsing header, open when the run has kernel
/// figures (a replayed trace), closed for a scenario run where the columns would be "—".
pub fn kernel_vs_replay_section(ui: &mut Ui, id: &str, title: &str, rows: &[KernelVsReplay]) {
    let has_kernel = rows
        .iter()
        .any(|r| r.kernel_ms.is_some() || r.predicted_kernel_ms.is_some());
    egui::CollapsingHeader::new(title)
        .id_salt(id)
        .default_open(has_kernel)
        .show(ui, |ui| kernel_vs_replay_grid(ui, id, rows));
}

/// Per namespace: kernel recorded | replay measured | predicted kernel (ms) and their
/// ratios; "—" where a figure is absent.
pub fn kernel_vs_replay_grid(ui: &mut Ui, id: &str, rows: &[KernelVsReplay]) {
    egui::Grid::new(id)
        .num_columns(7)
        .striped(true)
        .show(ui, |ui| {
            for h in [
                "namespace",
                "kernel recorded ms",
                "replay measured ms",
                "predicted kernel ms",
                "replay / kernel",
                "predicted / kernel",
                "replay / predicted",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for r in rows {
                ui.label(&r.name);
                ui.label(fmt_opt(r.kernel_ms, 3));
                ui.label(fmt_opt(r.replay_ms, 3));
                ui.label(
                    match (r.predicted_kernel_low_ms, r.predicted_kernel_high_ms) {
                        (Some(lo), Some(hi)) if r.predicted_kernel_ms.is_some() => {
                            format!("{} [{lo:.3}, {hi:.3}]", fmt_opt(r.predicted_kernel_ms, 3))
                        }
                        _ => fmt_opt(r.predicted_kernel_ms, 3),
                    },
                );
                ui.label(fmt_opt(r.replay_over_kernel, 3));
                ui.label(fmt_opt(r.predicted_over_kernel, 3));
                ui.label(fmt_opt(r.replay_over_predicted, 3));
                ui.end_row();
            }
        });
}
