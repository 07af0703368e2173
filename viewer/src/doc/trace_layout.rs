//! What the Layout view shows of a trace: the layouts of its namespaces and
//! hot-plugged memory as the replay would lay them out (`Trace::to_scenario`), the pfn
//! ranges its memmap-init events recorded, and, when there is nothing to lay out, a
//! note saying what the trace does have.

use super::fmt::fmt_bytes;
use memmap_model::layout::{hotplug_layout, namespace_layout, RangeLayout};
use memmap_model::trace::{Trace, TraceEvent, STOP_MARK};
use std::collections::HashMap;

/// One pfn range that memmap-init events covered, with the functions that saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemmapRange {
    pub start_pfn: u64,
    pub nr_pages: u64,
    /// Function names, in order of first appearance.
    pub funcs: Vec<String>,
    /// "task-pid" of the first event.
    pub task: String,
    /// Longest duration of one event on this range.
    pub max_dur_ns: u64,
}

/// The Layout view's data of a trace.
#[derive(Clone, Debug, Default)]
pub struct TraceLayouts {
    /// Layouts of the trace's namespaces and hot-plugged memory
    /// (`Trace::to_scenario`, then `Scenario::layouts`).
    pub layouts: Vec<RangeLayout>,
    pub errors: Vec<String>,
    /// Why there is nothing to lay out (e.g. a namespace destroyed before the
    /// recording's closing snapshot), when there is not.
    pub note: Option<String>,
}

/// The pfn ranges of memmap-init events, merged per (start, pages). An event without
/// a task name takes the one `tasks` has for its pid.
pub fn memmap_ranges(events: &[TraceEvent], tasks: &HashMap<u32, String>) -> Vec<MemmapRange> {
    let mut out: Vec<MemmapRange> = Vec::new();
    for e in events {
        if let TraceEvent::MemmapInit {
            dur_ns,
            func,
            start_pfn,
            nr_pages,
            task,
            pid,
            ..
        } = e
        {
            let dur = dur_ns.unwrap_or(0);
            match out
                .iter_mut()
                .find(|r| r.start_pfn == *start_pfn && r.nr_pages == *nr_pages)
            {
                Some(r) => {
                    if !r.funcs.contains(func) {
                        r.funcs.push(func.clone());
                    }
                    r.max_dur_ns = r.max_dur_ns.max(dur);
                }
                None => {
                    let name = tasks
                        .get(pid)
                        .cloned()
                        .filter(|_| task.is_empty())
                        .unwrap_or_else(|| task.clone());
                    out.push(MemmapRange {
                        start_pfn: *start_pfn,
                        nr_pages: *nr_pages,
                        funcs: vec![func.clone()],
                        task: format!("{name}-{pid}"),
                        max_dur_ns: dur,
                    })
                }
            }
        }
    }
    out.sort_by_key(|r| (r.start_pfn, r.nr_pages));
    out
}

/// Layouts of the trace's namespaces and hot-plugged ranges, as the replay would lay
/// them out (`Trace::to_scenario`): namespaces from namespace events (a recording
/// writes them in its opening and its closing snapshot), hot-plugged memory from the
/// memory blocks that appear in the closing snapshot only. Without either, a note says
/// what the trace does have.
pub fn trace_layouts(trace: &Trace, ranges: &[MemmapRange]) -> TraceLayouts {
    let mut errors = Vec::new();
    let Some(scenario) = trace.to_scenario("trace") else {
        return TraceLayouts {
            note: Some(no_layout_note(trace, ranges)),
            ..Default::default()
        };
    };
    match scenario.layouts("trace", 1.0) {
        Ok(layouts) => {
            return TraceLayouts {
                layouts,
                ..Default::default()
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    // The ranges together do not pass the scenario checks: lay each out on its own.
    let mut layouts = Vec::new();
    let params = scenario.kernel.clone();
    if let Ok(specs) = scenario.namespace_specs("trace", 1.0) {
        for spec in specs {
            match namespace_layout(&spec, &params) {
                Ok(l) => layouts.push(l),
                Err(err) => errors.push(format!("namespace {}: {err}", spec.name)),
            }
        }
    }
    if let Ok(specs) = scenario.hotplug_specs("trace", 1.0) {
        for spec in specs {
            match hotplug_layout(&spec, &params) {
                Ok(l) => layouts.push(l),
                Err(err) => errors.push(format!("memory at {:#x}: {err}", spec.start_phys)),
            }
        }
    }
    TraceLayouts {
        layouts,
        errors,
        note: None,
    }
}

/// Why there is nothing to lay out, from what the trace recorded.
fn no_layout_note(trace: &Trace, ranges: &[MemmapRange]) -> String {
    let stopped = trace
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::Mark { text, .. } if text == STOP_MARK));
    let blocks = trace
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::MemoryBlock { .. }))
        .count();
    let mut s = String::from("No namespace event and no hot-plugged memory in this trace");
    if blocks > 0 {
        s.push_str(&format!(
            " ({blocks} memory-block events, all of memory present when the recording started)"
        ));
    }
    s.push('.');
    if ranges.is_empty() {
        s.push_str(" It has no memmap-init events either: nothing to lay out.");
        return s;
    }
    let ps = memmap_model::layout::LayoutParams::linux_6_1().page_size;
    for r in ranges {
        s.push_str(&format!(
            "\nmemmap-init ({}) by {} initialised pfn {:#x}..{:#x} ({} pages, {} at {:#x}).",
            r.funcs.join(", "),
            r.task,
            r.start_pfn,
            r.start_pfn + r.nr_pages,
            r.nr_pages,
            fmt_bytes(r.nr_pages * ps),
            r.start_pfn * ps
        ));
    }
    let destroyed: Vec<&str> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Mark { text, .. } if text.contains("destroy") => Some(text.as_str()),
            _ => None,
        })
        .collect();
    s.push_str(&if stopped {
        format!("\nNo namespace survived to the closing snapshot (taken after \"{STOP_MARK}\"), so the range's namespace, mode and map are not recorded")
    } else {
        "\nThe trace has no closing snapshot and no namespace event, so the range's namespace, mode and map are not recorded".to_string()
    });
    if destroyed.is_empty() {
        s.push('.');
    } else {
        s.push_str(&format!(
            ": the recording destroyed it (mark \"{}\").",
            destroyed.join("\", \"")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testbed(name: &str) -> Trace {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../traces/real/testbed")
            .join(name);
        Trace::read(&p).unwrap()
    }

    #[test]
    fn a_destroyed_namespace_leaves_a_note_with_the_recorded_range() {
        let t = testbed("fsdax-mem.jsonl");
        let ranges = memmap_ranges(&t.events, &HashMap::new());
        assert!(!ranges.is_empty());
        let l = trace_layouts(&t, &ranges);
        assert!(l.layouts.is_empty());
        let note = l.note.unwrap();
        assert!(note.starts_with("No namespace event"), "{note}");
        assert!(
            note.contains("initialised pfn 0x100000..0x4ff000"),
            "{note}"
        );
        assert!(note.contains("destroy namespace0.0"), "{note}");
    }

    #[test]
    fn a_recorded_namespace_is_laid_out_and_its_range_found() {
        let t = testbed("fsdax-dev.jsonl");
        let ranges = memmap_ranges(&t.events, &HashMap::new());
        let l = trace_layouts(&t, &ranges);
        assert!(l.note.is_none() && l.errors.is_empty(), "{l:?}");
        assert_eq!(l.layouts.len(), 1);
        assert!(ranges
            .iter()
            .any(|r| r.start_pfn == l.layouts[0].range_start_pfn
                && r.nr_pages == l.layouts[0].range_pages
                && r.funcs.iter().any(|f| f == "memmap_init_zone_device")));
    }

    #[test]
    fn ranges_merge_per_pfn_range_and_take_the_pid_name() {
        let ev = |func: &str, t: u64, dur: u64, task: &str| TraceEvent::MemmapInit {
            t_ns: t,
            dur_ns: Some(dur),
            func: func.into(),
            start_pfn: 0x100,
            nr_pages: 512,
            task: task.into(),
            pid: 7,
            cpu: 0,
        };
        let tasks = HashMap::from([(7, "ndctl".to_string())]);
        let r = memmap_ranges(&[ev("f", 5, 10, ""), ev("g", 9, 30, "x")], &tasks);
        assert_eq!(
            r,
            vec![MemmapRange {
                start_pfn: 0x100,
                nr_pages: 512,
                funcs: vec!["f".into(), "g".into()],
                task: "ndctl-7".into(),
                max_dur_ns: 30,
            }]
        );
    }
}
