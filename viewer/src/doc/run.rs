//! A loaded run file: its timelines (one per repeat, built on first use), progress
//! and decoded stall histograms.

use super::lod::{rows_from_spans, InstantRow};
use super::progress::{run_progress, Progress};
use super::timeline::{Labels, Lane, Timeline, MAX_ROWS};
use hdrhistogram::Histogram;
use memmap_model::run::RunFile;
use std::collections::HashMap;

/// A loaded run file and what was derived from it.
pub struct RunDoc {
    pub run: RunFile,
    /// One timeline per repeat, built on demand.
    timelines: Vec<Option<Timeline>>,
    /// Merged stall histogram of each repeat (decoded), None when it would not decode.
    pub stall_hists: Vec<Option<Histogram<u64>>>,
    pub hist_errors: Vec<String>,
}

impl RunDoc {
    pub fn new(run: RunFile) -> RunDoc {
        let mut hist_errors = Vec::new();
        let stall_hists = run
            .repeats
            .iter()
            .map(|r| match r.stalls.merged.decode() {
                Ok(h) => Some(h),
                Err(e) => {
                    hist_errors.push(format!("repeat {}: {e}", r.index));
                    None
                }
            })
            .collect();
        let n = run.repeats.len();
        RunDoc {
            run,
            timelines: (0..n).map(|_| None).collect(),
            stall_hists,
            hist_errors,
        }
    }

    pub fn timeline(&mut self, repeat: usize) -> Option<&Timeline> {
        if repeat >= self.run.repeats.len() {
            return None;
        }
        if self.timelines[repeat].is_none() {
            self.timelines[repeat] = Some(run_timeline(&self.run, repeat));
        }
        self.timelines[repeat].as_ref()
    }

    pub fn progress(&self, repeat: usize) -> Progress {
        run_progress(&self.run, repeat)
    }

    /// (t_ns, stall_ns) of the fault samples of a repeat.
    pub fn stall_samples(&self, repeat: usize) -> Vec<[f64; 2]> {
        self.run
            .repeats
            .get(repeat)
            .map(|x| {
                x.stalls
                    .samples
                    .iter()
                    .map(|s| [s.t_ns as f64, s.stall_ns as f64])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stall histogram of all repeats together.
    pub fn merged_stalls(&self) -> Option<Histogram<u64>> {
        let mut out: Option<Histogram<u64>> = None;
        for h in self.stall_hists.iter().flatten() {
            match &mut out {
                None => out = Some(h.clone()),
                Some(o) => {
                    let _ = o.add(h);
                }
            }
        }
        out
    }
}

/// The timeline of one repeat: a phases lane (phase spans, namespace available /
/// complete marks), then a lane per thread with its spans and its fault samples.
fn run_timeline(run: &RunFile, repeat: usize) -> Timeline {
    let rep = &run.repeats[repeat];
    let mut labels = Labels::default();
    let mut lanes = Vec::new();
    // Phases lane.
    let phase_spans: Vec<_> = rep
        .phases
        .iter()
        .map(|p| {
            let l = labels.id(&format!("phase {} {}", p.name, p.namespace));
            (p.start_ns, p.end_ns, l, 0, 0)
        })
        .collect();
    let mut events = InstantRow::default();
    for ns in &rep.namespaces {
        events.push(
            ns.available_ns,
            0,
            labels.id(&format!("{} available", ns.name)),
            0,
        );
        events.push(
            ns.complete_ns,
            0,
            labels.id(&format!("{} complete", ns.name)),
            0,
        );
    }
    lanes.push(Lane {
        name: "phases".into(),
        detail: "phases, namespace available / complete".into(),
        rows: rows_from_spans(phase_spans, MAX_ROWS),
        instants: events,
    });
    let fault_label = labels.id("fault");
    let mut by_thread: HashMap<u32, usize> = HashMap::new();
    for th in &rep.threads {
        let spans: Vec<_> = th
            .spans
            .iter()
            .map(|s| {
                (
                    s.start_ns,
                    s.end_ns,
                    labels.id(s.kind.as_str()),
                    s.start_pfn,
                    s.pages,
                )
            })
            .collect();
        by_thread.insert(th.id, lanes.len());
        lanes.push(Lane {
            name: th.name.clone(),
            detail: format!("thread {} ({:?})", th.id, th.role),
            rows: rows_from_spans(spans, MAX_ROWS),
            instants: InstantRow::default(),
        });
    }
    for s in &rep.stalls.samples {
        if let Some(&li) = by_thread.get(&s.thread) {
            lanes[li]
                .instants
                .push(s.t_ns, s.stall_ns, fault_label, s.pfn);
        }
    }
    let mut tl = Timeline {
        lanes,
        labels: labels.list,
        span_aux: "first pfn",
        instant_aux: "pfn",
        ..Default::default()
    };
    tl.fault_labels = vec![false; tl.labels.len()];
    tl.fault_labels[fault_label as usize] = true;
    tl.finish();
    // Replay times start at 0 at the start of the repeat.
    tl.t_min = 0;
    tl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> RunFile {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        RunFile::from_json_str(&p.display().to_string(), &text).unwrap()
    }

    #[test]
    fn a_repeat_has_a_phases_lane_and_a_lane_per_thread_with_its_faults() {
        let mut doc = RunDoc::new(fixture("qemu16g-williams-async.run.json"));
        let run = doc.run.clone();
        let rep = &run.repeats[1];
        let tl = doc.timeline(1).unwrap();
        assert_eq!(tl.lanes.len(), 1 + rep.threads.len());
        assert_eq!(tl.lanes[0].name, "phases");
        assert_eq!(tl.t_min, 0, "replay times start at the repeat");
        let spans: usize = rep.threads.iter().map(|t| t.spans.len()).sum();
        let phases = rep.phases.len();
        assert_eq!(tl.n_spans, spans + phases);
        assert_eq!(
            tl.n_instants,
            rep.stalls.samples.len() + 2 * rep.namespaces.len()
        );
        let fault = tl.labels.iter().position(|l| l == "fault").unwrap();
        assert!(tl.is_fault(fault as u32));
        assert_eq!(
            tl.lanes.iter().map(|l| l.instants.len()).sum::<usize>(),
            tl.n_instants
        );
        assert!(doc.timeline(99).is_none());
        let p = doc.progress(1);
        assert!(!p.total.is_empty());
        assert_eq!(p.marks.len(), 2 * rep.namespaces.len());
        assert_eq!(doc.stall_samples(1).len(), rep.stalls.samples.len());
    }
}
