//! egui_kittest tests on real files (no GPU: accessibility queries only).
//!
//! Fixtures (viewer/tests/data/), produced by:
//!   memmap-replay run qemu-16g --strategy williams-async --repeat 3 --scale 0.25 -o qemu16g-williams-async.run.json
//!   memmap-replay run qemu-16g --strategy duyck --repeat 3 --scale 0.25 -o qemu16g-duyck.run.json
//!   memmap-collect import --format ftrace collector/tests/corpus/ftrace-fgraph-hotplug-1G-add-online.txt -o ftrace-fgraph-hotplug-1G-add-online.trace.jsonl
//!   memmap-collect import --format ftrace collector/tests/corpus/ftrace-fs_dax-ext4.excerpt.txt -o ftrace-fs_dax-ext4.excerpt.trace.jsonl
//!
//! and real recordings of the QEMU testbed (traces/real/testbed/, `memmap-collect record`).

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use memmap_viewer::{View, ViewerApp};
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

const RUN_A: &str = "qemu16g-williams-async.run.json";
const RUN_B: &str = "qemu16g-duyck.run.json";
const TRACE_HOTPLUG: &str = "ftrace-fgraph-hotplug-1G-add-online.trace.jsonl";
const TRACE_FAULTS: &str = "ftrace-fs_dax-ext4.excerpt.trace.jsonl";

fn testbed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../traces/real/testbed")
        .join(name)
}

fn harness(app: ViewerApp) -> Harness<'static, ViewerApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui_state(|ui, app: &mut ViewerApp| app.ui(ui), app)
}

fn has_label(h: &Harness<'_, ViewerApp>, s: &str) -> bool {
    h.query_all_by_label_contains(s).next().is_some()
}

#[test]
fn every_view_of_a_real_run_and_trace() {
    let mut app = ViewerApp::default();
    app.follow = false;
    for f in [RUN_A, RUN_B, TRACE_HOTPLUG, TRACE_FAULTS] {
        app.open_sync(&data(f));
    }
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert_eq!(app.files.len(), 4);
    app.active = 0;
    let mut h = harness(app);
    h.run_steps(2);
    // Overview of the williams-async run.
    assert!(has_label(&h, "qemu-16g / williams-async"));
    assert!(has_label(&h, "time to available"));
    assert!(has_label(&h, "fraction of NT roofline"));
    // Switch every view by clicking its tab.
    for v in View::ALL {
        h.get_by_label(v.name()).click();
        h.run_steps(2);
        assert_eq!(h.state().view, v);
        match v {
            View::Timeline => {
                assert!(has_label(&h, "lanes,"), "timeline header");
                assert!(has_label(&h, "Fit"));
            }
            View::Progress => assert!(has_label(&h, "per thread")),
            View::Stalls => assert!(has_label(&h, "faults, p50")),
            View::Layout => assert!(has_label(&h, "sub-sections")),
            View::Compare => assert!(has_label(&h, "A (baseline)")),
            View::Live => assert!(has_label(&h, "Follow")),
            View::Overview => {}
        }
    }
    // The hotplug trace: timeline lanes per task/CPU with function spans.
    h.query_all_by_label(TRACE_HOTPLUG).next().unwrap().click();
    h.run_steps(2);
    h.get_by_label("Overview").click();
    h.run_steps(2);
    assert!(has_label(&h, "trace (import:ftrace)"));
    assert!(has_label(&h, "events: function-span"));
    h.get_by_label("Timeline").click();
    h.run_steps(2);
    assert!(has_label(&h, "lanes, 32 spans"), "32 function spans");
    // The fs_dax trace: stalls from dax faults.
    h.query_all_by_label(TRACE_FAULTS).next().unwrap().click();
    h.run_steps(1);
    h.get_by_label("Stalls").click();
    h.run_steps(2);
    assert!(has_label(&h, "dax faults:"));
}

#[test]
fn compare_a_and_b_shows_the_replay_statistics() {
    let mut app = ViewerApp::default();
    app.follow = false;
    app.open_sync(&data(RUN_A));
    app.open_sync(&data(RUN_B));
    app.compare = Default::default();
    app.view = View::Compare;
    let mut h = harness(app);
    h.run_steps(2);
    h.get_by_label_contains(&format!("A: {RUN_A}")).click();
    h.run_steps(1);
    h.get_by_label_contains(&format!("B: {RUN_B}")).click();
    h.run_steps(2);
    // Delta table: values equal `memmap-replay compare --json` (see stats_match_replay.rs).
    for s in [
        "init_ns",
        "+43.15%",
        "[1.188, 1.502]",
        "-30.15%",
        "[0.666, 0.841]",
        "p=0.100",
        "smallest possible p is 0.100",
    ] {
        assert!(has_label(&h, s), "delta table shows {s}");
    }
    assert!(has_label(&h, "Export HTML report"));
}

#[test]
fn a_bad_file_shows_its_line_and_the_rest_stays_open() {
    let dir = std::env::temp_dir().join(format!("memmap-view-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("truncated.run.json");
    let text = std::fs::read_to_string(data(RUN_A)).unwrap();
    std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
    let mut app = ViewerApp::default();
    app.follow = false;
    app.open_sync(&data(RUN_A));
    app.open_sync(&bad);
    assert_eq!(app.files.len(), 1);
    assert_eq!(app.errors.len(), 1);
    let mut h = harness(app);
    h.run_steps(2);
    assert!(has_label(&h, "1 file(s) could not be opened"));
    assert!(has_label(&h, "truncated.run.json"));
    assert!(has_label(&h, "line 1"));
    assert!(
        has_label(&h, "qemu-16g / williams-async"),
        "the good file stays open"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Lane names of the active trace's timeline (the timeline paints them, so they are
/// not in the accessibility tree).
fn lane_names(h: &Harness<'_, ViewerApp>) -> Vec<String> {
    let app = h.state();
    match &app.files[app.active].doc {
        memmap_viewer::doc::Doc::Trace(t) => {
            t.timeline.lanes.iter().map(|l| l.name.clone()).collect()
        }
        memmap_viewer::doc::Doc::Run(_) => Vec::new(),
    }
}

#[test]
fn a_real_testbed_recording_fsdax_dev() {
    // `memmap-collect record` around `ndctl create-namespace -m fsdax -M dev` in the
    // QEMU testbed: the namespace is in the closing snapshot only.
    let mut app = ViewerApp::default();
    app.follow = false;
    app.open_sync(&testbed("fsdax-dev.jsonl"));
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    let mut h = harness(app);
    h.run_steps(2);
    assert!(has_label(&h, "trace (live)"));
    assert!(has_label(&h, "6.1.0-56-amd64"), "kernel release");
    assert!(has_label(&h, "layout namespace0.0"));
    assert!(has_label(&h, "fsdax namespace, map=dev"));
    h.get_by_label("Timeline").click();
    h.run_steps(2);
    assert!(has_label(&h, "lanes,"));
    let lanes = lane_names(&h);
    assert!(
        lanes.iter().any(|l| l.starts_with("ndctl-")),
        "a lane named after ndctl: {lanes:?}"
    );
    assert!(
        lanes.iter().all(|l| !l.starts_with('-')),
        "every lane has a task name: {lanes:?}"
    );
    h.get_by_label("Layout").click();
    h.run_steps(2);
    assert!(has_label(&h, "namespace0.0: pfn 0x100000..0x4ff000"));
    assert!(has_label(&h, "no memory block devices (ZONE_DEVICE)"));
    // The kprobe range of memmap_init_zone_device is the computed one.
    assert!(has_label(&h, "memmap_init_zone_device"));
    assert!(has_label(&h, "the computed range"));
}

#[test]
fn a_recording_whose_namespace_was_destroyed_says_so() {
    // fsdax-mem.jsonl: create, then destroy the namespace within the recording.
    let mut app = ViewerApp::default();
    app.follow = false;
    app.open_sync(&testbed("fsdax-mem.jsonl"));
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    app.view = View::Layout;
    let mut h = harness(app);
    h.run_steps(2);
    assert!(has_label(&h, "No namespace event"));
    assert!(has_label(
        &h,
        "by ndctl-165 initialised pfn 0x100000..0x4ff000"
    ));
    assert!(has_label(&h, "destroy namespace0.0"));
}

#[test]
fn hot_plugged_memory_of_a_recording_is_laid_out() {
    // hotplug-1g.jsonl: a 16 GiB namespace and 1 GiB of pc-dimm memory hot-plugged
    // during the recording (memory blocks new in the closing snapshot).
    let mut app = ViewerApp::default();
    app.follow = false;
    app.open_sync(&testbed("hotplug-1g.jsonl"));
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    app.view = View::Layout;
    let mut h = harness(app);
    h.run_steps(2);
    assert!(has_label(&h, "namespace0.0: pfn"));
    assert!(has_label(&h, "hotplug0: pfn"));
    assert!(has_label(&h, "8 memory blocks of 128 MiB"));
}

#[test]
fn timeline_tooltips_name_the_lane_and_the_span() {
    // Hover down the lane-name column, then the plot, of a real recording: the
    // tooltips give a lane's pid and CPUs and a span's label, start and duration
    // (the 400 tooltips were the same before the document layer was split out).
    let mut app = ViewerApp::default();
    app.follow = false;
    app.open_sync(&testbed("fsdax-dev.jsonl"));
    app.view = View::Timeline;
    let mut h = harness(app);
    h.run_steps(2);
    let mut lane_tips = Vec::new();
    let mut span_tips = Vec::new();
    for x in [330.0, 900.0] {
        for y in (80..880).step_by(4) {
            h.input_mut()
                .events
                .push(egui::Event::PointerMoved(egui::pos2(x, y as f32)));
            h.run_steps(1);
            if let Some(t) = h.state().timeline.hover_text.clone() {
                if x < 400.0 {
                    lane_tips.push(t);
                } else {
                    span_tips.push(t);
                }
            }
        }
    }
    assert!(
        lane_tips
            .iter()
            .any(|t| t.starts_with("ndctl-") && t.contains("\npid ") && t.contains("cpu")),
        "{lane_tips:?}"
    );
    assert!(
        span_tips
            .iter()
            .any(|t| t.starts_with("nd_pmem_probe\nstart ") && t.contains("\nduration ")),
        "{span_tips:?}"
    );
}
