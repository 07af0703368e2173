//! A trace's events as timeline lanes: one lane per task (pid), except the idle task
//! (pid 0), which gets one per CPU. Each parsing thread of the model's reader
//! (`memmap_model::trace_read`) fills a [`PartLanes`] with flat vectors per lane and
//! labels of its own; [`merge_parts`] puts the parts together in file order (a linear
//! merge), [`MergedParts::into_named_lanes`] names the lanes "task-pid", and
//! [`build_lanes`] builds their level-of-detail rows and fault statistics on all cores.

use super::lod::{rows_from_spans, InstantRow, RawSpan};
use super::timeline::{Labels, Lane, MAX_ROWS};
use hdrhistogram::Histogram;
use memmap_model::trace::TraceEvent;
use memmap_model::trace_read::{EventLine, EventSink, Fields, HotKind};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;

/// A lane of a trace: (pid, cpu), the cpu being [`ANY_CPU`] except for pid 0.
pub type LaneKey = (u32, u32);
pub const ANY_CPU: u32 = u32::MAX;

pub fn lane_key(pid: u32, cpu: u32) -> LaneKey {
    (pid, if pid == 0 { cpu } else { ANY_CPU })
}

/// The task names a sched_switch tracepoint carries.
#[derive(Deserialize)]
struct SchedSwitch<'a> {
    #[serde(borrow)]
    fields: SchedFields<'a>,
}

#[derive(Deserialize)]
struct SchedFields<'a> {
    #[serde(borrow)]
    prev_comm: Option<Cow<'a, str>>,
    prev_pid: Option<u32>,
    #[serde(borrow)]
    next_comm: Option<Cow<'a, str>>,
    next_pid: Option<u32>,
}

/// One lane's items as one parsing thread collected them.
#[derive(Default)]
pub struct LaneItems {
    pub key: LaneKey,
    /// CPUs the lane's events ran on (bit n = cpu n, for n < 64) and any others.
    pub cpus: u64,
    pub other_cpus: Vec<u32>,
    pub spans: Vec<RawSpan>,
    pub instants: InstantRow,
}

impl LaneItems {
    fn add_cpus(&mut self, cpus: u64, other: &[u32]) {
        self.cpus |= cpus;
        for &c in other {
            if !self.other_cpus.contains(&c) {
                self.other_cpus.push(c);
            }
        }
    }

    /// "pid 5, cpus 0, 1".
    fn detail(&self) -> String {
        let mut cpus: Vec<u32> = (0..64).filter(|c| self.cpus & (1u64 << c) != 0).collect();
        cpus.extend(&self.other_cpus);
        cpus.sort_unstable();
        let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
        format!(
            "pid {}, {} {}",
            self.key.0,
            if cpus.len() == 1 { "cpu" } else { "cpus" },
            list.join(", ")
        )
    }
}

/// Counts of the high-volume kinds, which are not kept as events.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
pub struct FastCounts {
    pub function_span: u64,
    pub dax_fault: u64,
    pub tracepoint: u64,
    pub kprobe: u64,
}

impl FastCounts {
    fn add(&mut self, o: FastCounts) {
        self.function_span += o.function_span;
        self.dax_fault += o.dax_fault;
        self.tracepoint += o.tracepoint;
        self.kprobe += o.kprobe;
    }
}

/// Task names per lane key, with the time each was seen: the name seen last wins (a
/// task keeps the name of its last exec).
pub type TaskNames = HashMap<LaneKey, (u64, String)>;

/// What one parsing thread made of its part of a trace (labels are its own ids).
#[derive(Default)]
pub struct PartLanes {
    lanes: Vec<LaneItems>,
    lane_ids: HashMap<(u32, u32), u32>,
    /// Marks, uevents, kernel log lines, "initialised" lines.
    events_lane: InstantRow,
    /// Events other than the high-volume kinds, and memmap-init events in full.
    events: Vec<TraceEvent>,
    labels: Vec<String>,
    label_ids: HashMap<String, u32>,
    tasks: TaskNames,
    counts: FastCounts,
}

impl EventSink for PartLanes {
    fn event(&mut self, ev: EventLine<'_>) -> Result<(), String> {
        match ev {
            EventLine::Fields(kind, f) => match kind {
                HotKind::FunctionSpan => self.function_span(f),
                HotKind::MemmapInit => self.memmap_init(f),
                HotKind::DaxFault => self.dax_fault(f),
                HotKind::Tracepoint | HotKind::Kprobe => self.tracepoint_or_kprobe(kind, f),
            },
            EventLine::Event(ev) => {
                self.other_event(ev);
                Ok(())
            }
        }
    }
}

impl PartLanes {
    /// The lane of (pid, cpu), created on first use; notes the CPU.
    fn lane(&mut self, pid: u32, cpu: u32) -> &mut LaneItems {
        let n = self.lanes.len() as u32;
        let i = *self.lane_ids.entry((pid, cpu)).or_insert(n) as usize;
        if i == self.lanes.len() {
            self.lanes.push(LaneItems {
                key: lane_key(pid, cpu),
                ..Default::default()
            });
        }
        let l = &mut self.lanes[i];
        if cpu < 64 {
            l.cpus |= 1 << cpu;
        } else if !l.other_cpus.contains(&cpu) {
            l.other_cpus.push(cpu);
        }
        l
    }

    fn label(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.label_ids.get(s) {
            return i;
        }
        let i = self.labels.len() as u32;
        self.labels.push(s.to_string());
        self.label_ids.insert(s.to_string(), i);
        i
    }

    /// Task `pid` on `cpu` was called `name` at `t`.
    fn task(&mut self, pid: u32, cpu: u32, t: u64, name: &str) {
        if name.is_empty() {
            return;
        }
        match self.tasks.entry(lane_key(pid, cpu)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if t >= e.get().0 && e.get().1 != name {
                    *e.get_mut() = (t, name.to_string());
                } else if t >= e.get().0 {
                    e.get_mut().0 = t;
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((t, name.to_string()));
            }
        }
    }

    fn function_span(&mut self, f: &Fields) -> Result<(), String> {
        let t = f.need(f.t_ns, "t_ns")?;
        let d = f.need(f.dur_ns, "dur_ns")?;
        let pid = f.need(f.pid, "pid")?;
        let cpu = f.need(f.cpu, "cpu")?;
        let func = f
            .func
            .as_deref()
            .ok_or_else(|| "function-span without func".to_string())?;
        if let Some(task) = &f.task {
            self.task(pid, cpu, t, task);
        }
        let l = self.label(func);
        self.lane(pid, cpu)
            .spans
            .push((t, t.saturating_add(d), l, 0, 0));
        self.counts.function_span += 1;
        // Memmap functions' spans are few: keep them in full for the kernel's recorded
        // durations (memmap_model::kernel_recorded).
        if memmap_model::kernel_recorded::role_of(func).is_some() {
            self.events.push(f.to_event()?);
        }
        Ok(())
    }

    fn memmap_init(&mut self, f: &Fields) -> Result<(), String> {
        let t = f.need(f.t_ns, "t_ns")?;
        let pid = f.need(f.pid, "pid")?;
        let cpu = f.need(f.cpu, "cpu")?;
        let func = f.func.as_deref().unwrap_or("memmap-init");
        let pfn = f.need(f.start_pfn, "start_pfn")?;
        let pages = f.need(f.nr_pages, "nr_pages")?;
        if let Some(task) = &f.task {
            self.task(pid, cpu, t, task);
        }
        let l = self.label(func);
        let lane = self.lane(pid, cpu);
        match f.dur_ns {
            Some(d) => lane.spans.push((t, t.saturating_add(d), l, pfn, pages)),
            None => lane.instants.push(t, 0, l, pfn),
        }
        // Keep the full event for progress and the layout.
        self.events.push(f.to_event()?);
        Ok(())
    }

    fn dax_fault(&mut self, f: &Fields) -> Result<(), String> {
        let t = f.need(f.t_ns, "t_ns")?;
        let pid = f.need(f.pid, "pid")?;
        let cpu = f.need(f.cpu, "cpu")?;
        let pmd = f.pmd.unwrap_or(false);
        let result = f.result.as_deref().unwrap_or("");
        let l = match (pmd, result) {
            (false, "NOPAGE") => self.label("dax fault pte NOPAGE"),
            _ => self.label(&format!(
                "dax fault {} {result}",
                if pmd { "pmd" } else { "pte" }
            )),
        };
        self.lane(pid, cpu)
            .instants
            .push(t, f.dur_ns.unwrap_or(0), l, f.address.unwrap_or(0));
        self.counts.dax_fault += 1;
        Ok(())
    }

    fn tracepoint_or_kprobe(&mut self, kind: HotKind, f: &Fields) -> Result<(), String> {
        let t = f.need(f.t_ns, "t_ns")?;
        let pid = f.need(f.pid, "pid")?;
        let cpu = f.need(f.cpu, "cpu")?;
        if let Some(task) = &f.task {
            self.task(pid, cpu, t, task);
        }
        let nm = f
            .name
            .as_deref()
            .or(f.probe.as_deref())
            .or(f.func.as_deref())
            .unwrap_or("?");
        if nm == "sched:sched_switch" {
            // Task names of both sides (perf samples of other tracepoints may have no
            // comm).
            if let Ok(s) = serde_json::from_str::<SchedSwitch>(f.line) {
                let sf = s.fields;
                if let (Some(c), Some(p)) = (&sf.prev_comm, sf.prev_pid) {
                    self.task(p, cpu, t, c);
                }
                if let (Some(c), Some(p)) = (&sf.next_comm, sf.next_pid) {
                    self.task(p, cpu, t, c);
                }
            }
        }
        let l = self.label(nm);
        self.lane(pid, cpu).instants.push(t, 0, l, 0);
        if kind == HotKind::Kprobe {
            self.counts.kprobe += 1;
        } else {
            self.counts.tracepoint += 1;
        }
        Ok(())
    }

    /// Any other kind: kept as an event; marks, uevents, kernel log lines and
    /// "initialised" lines also go on the events lane.
    fn other_event(&mut self, ev: TraceEvent) {
        let text = match &ev {
            TraceEvent::Uevent {
                action, devpath, ..
            } => Some(format!("uevent {action} {devpath}")),
            TraceEvent::Mark { text, .. } => Some(format!("mark: {text}")),
            TraceEvent::KernelLog { text, .. } => Some(format!("kernel: {text}")),
            TraceEvent::Initialised {
                device, pages, ms, ..
            } => Some(format!("{device} initialised, {pages} pages in {ms} ms")),
            _ => None,
        };
        if let (Some(text), Some(t)) = (text, ev.t_ns()) {
            let l = self.label(&text);
            self.events_lane.push(t, 0, l, 0);
        }
        self.events.push(ev);
    }
}

/// All parts of a trace put together, labels and lanes renumbered.
#[derive(Default)]
pub struct MergedParts {
    pub labels: Labels,
    /// Labels that are dax faults (their instants' values are latencies).
    pub fault_labels: Vec<bool>,
    pub lanes: Vec<LaneItems>,
    pub tasks: TaskNames,
    pub event_instants: InstantRow,
    pub events: Vec<TraceEvent>,
    pub counts: FastCounts,
}

/// Put the parts together in file order: labels renumbered, each lane's items
/// appended part after part (so they stay in file order), task names by time.
pub fn merge_parts(parts: Vec<PartLanes>) -> MergedParts {
    let mut m = MergedParts::default();
    let mut lane_of: HashMap<LaneKey, usize> = HashMap::new();
    for part in parts {
        let lmap = m.add_labels(&part.labels);
        for cl in part.lanes {
            let gi = *lane_of.entry(cl.key).or_insert_with(|| {
                m.lanes.push(LaneItems {
                    key: cl.key,
                    ..Default::default()
                });
                m.lanes.len() - 1
            });
            let ml = &mut m.lanes[gi];
            ml.add_cpus(cl.cpus, &cl.other_cpus);
            let mut spans = cl.spans;
            for s in &mut spans {
                s.2 = lmap[s.2 as usize];
            }
            if ml.spans.is_empty() {
                ml.spans = spans;
            } else {
                ml.spans.extend_from_slice(&spans);
            }
            ml.instants.append(relabel(cl.instants, &lmap));
        }
        m.event_instants.append(relabel(part.events_lane, &lmap));
        for (k, (t, name)) in part.tasks {
            match m.tasks.get(&k) {
                Some((t0, _)) if *t0 > t => {}
                _ => {
                    m.tasks.insert(k, (t, name));
                }
            }
        }
        m.events.extend(part.events);
        m.counts.add(part.counts);
    }
    m
}

fn relabel(mut row: InstantRow, lmap: &[u32]) -> InstantRow {
    for l in &mut row.label {
        *l = lmap[*l as usize];
    }
    row
}

/// A lane whose rows are still to build: its place in name order, name, detail, items.
pub struct NamedLane {
    pub index: usize,
    pub name: String,
    pub detail: String,
    pub items: LaneItems,
}

impl MergedParts {
    /// Intern a part's labels; returns the part's id → merged id map.
    fn add_labels(&mut self, labels: &[String]) -> Vec<u32> {
        let lmap: Vec<u32> = labels.iter().map(|s| self.labels.id(s)).collect();
        for (s, &g) in labels.iter().zip(&lmap) {
            let g = g as usize;
            if self.fault_labels.len() <= g {
                self.fault_labels.resize(g + 1, false);
            }
            if s.starts_with("dax fault") {
                self.fault_labels[g] = true;
            }
        }
        lmap
    }

    /// Events per kind, sorted by kind.
    pub fn kind_counts(&self) -> Vec<(String, u64)> {
        let mut counts: HashMap<&'static str, u64> = HashMap::new();
        for (k, n) in [
            ("function-span", self.counts.function_span),
            ("dax-fault", self.counts.dax_fault),
            ("tracepoint", self.counts.tracepoint),
            ("kprobe", self.counts.kprobe),
        ] {
            if n > 0 {
                counts.insert(k, n);
            }
        }
        for e in &self.events {
            *counts.entry(e.kind()).or_default() += 1;
        }
        let mut out: Vec<(String, u64)> = counts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        out.sort();
        out
    }

    /// Task name of each pid (lanes of one task, not the per-CPU idle lanes).
    pub fn task_names(&self) -> HashMap<u32, String> {
        self.tasks
            .iter()
            .filter(|(k, _)| k.1 == ANY_CPU)
            .map(|(k, (_, n))| (k.0, n.clone()))
            .collect()
    }

    /// The lanes, named "task-pid" ("task-0 cpuN" for the idle task; "<...>-pid" for
    /// a pid never named, as ftrace does) and sorted by name.
    pub fn into_named_lanes(&mut self) -> Vec<NamedLane> {
        let tasks = &self.tasks;
        let lane_name = |k: LaneKey| {
            let task = tasks.get(&k).map(|(_, n)| n.as_str()).unwrap_or("<...>");
            if k.1 == ANY_CPU {
                format!("{task}-{}", k.0)
            } else {
                format!("{task}-{} cpu{}", k.0, k.1)
            }
        };
        let mut named: Vec<NamedLane> = std::mem::take(&mut self.lanes)
            .into_iter()
            .map(|items| NamedLane {
                index: 0,
                name: lane_name(items.key),
                detail: items.detail(),
                items,
            })
            .collect();
        named.sort_by(|a, b| a.name.cmp(&b.name).then(a.items.key.cmp(&b.items.key)));
        for (i, n) in named.iter_mut().enumerate() {
            n.index = i;
        }
        named
    }
}

/// A lane with its rows built, its fault latency histogram and (t, latency) points.
pub struct BuiltLane {
    pub index: usize,
    pub lane: Lane,
    pub fault_hist: Histogram<u64>,
    pub fault_points: Vec<(u64, u64)>,
}

/// Build the rows of each lane on up to `threads` threads (largest lanes first, each
/// to the least loaded thread), with the fault statistics on the side; returned in
/// name order.
pub fn build_lanes(named: Vec<NamedLane>, fault_labels: &[bool], threads: usize) -> Vec<BuiltLane> {
    let threads = threads.max(1);
    let mut named = named;
    named.sort_by_key(|n| std::cmp::Reverse(n.items.spans.len() + n.items.instants.len()));
    let mut groups: Vec<Vec<NamedLane>> = (0..threads).map(|_| Vec::new()).collect();
    let mut load = vec![0usize; threads];
    for n in named {
        let g = (0..threads).min_by_key(|&g| load[g]).unwrap_or(0);
        load[g] += n.items.spans.len() + n.items.instants.len();
        groups[g].push(n);
    }
    let mut built: Vec<BuiltLane> = std::thread::scope(|s| {
        let hs: Vec<_> = groups
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    g.into_iter()
                        .map(|n| build_lane(n, fault_labels))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    built.sort_by_key(|b| b.index);
    built
}

fn build_lane(n: NamedLane, fault_labels: &[bool]) -> BuiltLane {
    let mut inst = n.items.instants;
    inst.finish();
    let mut hist = memmap_model::hist::new_histogram();
    let mut pts = Vec::new();
    for k in 0..inst.len() {
        if fault_labels[inst.label[k] as usize] {
            let v = inst.value[k].clamp(
                memmap_model::hist::HIST_LOW_NS,
                memmap_model::hist::HIST_HIGH_NS,
            );
            let _ = hist.record(v);
            pts.push((inst.t[k], inst.value[k]));
        }
    }
    BuiltLane {
        index: n.index,
        lane: Lane {
            name: n.name,
            detail: n.detail,
            rows: rows_from_spans(n.items.spans, MAX_ROWS),
            instants: inst,
        },
        fault_hist: hist,
        fault_points: pts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap_model::trace_read::Fields;

    fn feed(p: &mut PartLanes, lines: &[&str]) {
        for l in lines {
            let f = Fields::parse(l).unwrap();
            let ev = if let Some(hot) = HotKind::of(&f.kind) {
                EventLine::Fields(hot, &f)
            } else {
                EventLine::Event(serde_json::from_str(l).unwrap())
            };
            p.event(ev).unwrap();
        }
    }

    const LINES: [&str; 8] = [
        r#"{"kind":"function-span","t_ns":100,"dur_ns":50,"func":"outer","task":"ndctl","pid":165,"cpu":1}"#,
        r#"{"kind":"function-span","t_ns":110,"dur_ns":10,"func":"inner","task":"ndctl","pid":165,"cpu":0}"#,
        r#"{"kind":"dax-fault","t_ns":120,"dur_ns":7000,"pmd":false,"pid":200,"cpu":0,"address":4096,"pgoff":0,"result":"NOPAGE"}"#,
        r#"{"kind":"tracepoint","t_ns":130,"name":"sched:sched_switch","task":"","pid":0,"cpu":2,"fields":{"prev_comm":"swapper/2","prev_pid":0,"next_comm":"kworker/2:1","next_pid":200}}"#,
        r#"{"kind":"memmap-init","t_ns":140,"dur_ns":5,"func":"memmap_init_zone_device","start_pfn":1048576,"nr_pages":512,"task":"ndctl","pid":165,"cpu":1}"#,
        r#"{"kind":"mark","t_ns":150,"text":"create"}"#,
        r#"{"kind":"kprobe","t_ns":160,"probe":"p1","func":"f","ret":false,"task":"sh","pid":1,"cpu":0,"args":{}}"#,
        r#"{"kind":"function-span","t_ns":170,"dur_ns":1,"func":"outer","task":"ndctl-renamed","pid":165,"cpu":1}"#,
    ];

    fn lanes_of(parts: Vec<PartLanes>) -> (MergedParts, Vec<BuiltLane>) {
        let mut m = merge_parts(parts);
        let named = m.into_named_lanes();
        let built = build_lanes(named, &m.fault_labels, 3);
        (m, built)
    }

    #[test]
    fn known_events_make_known_lanes() {
        let mut p = PartLanes::default();
        feed(&mut p, &LINES);
        let (m, built) = lanes_of(vec![p]);
        let names: Vec<&str> = built.iter().map(|b| b.lane.name.as_str()).collect();
        // The last name of pid 165 wins; pid 200 named by sched_switch; the idle
        // task has a lane per CPU; names sorted.
        assert_eq!(
            names,
            [
                "kworker/2:1-200",
                "ndctl-renamed-165",
                "sh-1",
                "swapper/2-0 cpu2"
            ]
        );
        let ndctl = &built[1].lane;
        assert_eq!(ndctl.detail, "pid 165, cpus 0, 1");
        // outer contains inner and the memmap-init span: row 1; the outers: row 0.
        assert_eq!(ndctl.rows.len(), 2);
        assert_eq!(ndctl.rows[0].start, [100, 170]);
        assert_eq!(ndctl.rows[1].start, [110, 140]);
        assert_eq!(
            ndctl.rows[1].aux,
            [0, 1048576],
            "first pfn of the memmap-init span"
        );
        assert_eq!(built[0].lane.instants.len(), 1);
        assert_eq!(built[0].fault_points, vec![(120, 7000)]);
        assert_eq!(built[0].fault_hist.len(), 1);
        assert_eq!(built[3].lane.instants.len(), 1, "the sched_switch sample");
        assert_eq!(m.event_instants.len(), 1, "the mark");
        assert_eq!(
            m.kind_counts(),
            vec![
                ("dax-fault".to_string(), 1),
                ("function-span".to_string(), 3),
                ("kprobe".to_string(), 1),
                ("mark".to_string(), 1),
                ("memmap-init".to_string(), 1),
                ("tracepoint".to_string(), 1),
            ]
        );
        assert_eq!(
            m.task_names().get(&165).map(String::as_str),
            Some("ndctl-renamed")
        );
        let fault = m
            .labels
            .list
            .iter()
            .position(|l| l == "dax fault pte NOPAGE")
            .unwrap();
        assert!(m.fault_labels[fault]);
        assert_eq!(m.fault_labels.iter().filter(|&&f| f).count(), 1);
    }

    #[test]
    fn parts_merged_make_the_lanes_of_one_part() {
        let mut one = PartLanes::default();
        feed(&mut one, &LINES);
        let (m1, b1) = lanes_of(vec![one]);
        for cut in 1..LINES.len() {
            let mut a = PartLanes::default();
            let mut b = PartLanes::default();
            feed(&mut a, &LINES[..cut]);
            feed(&mut b, &LINES[cut..]);
            let (m2, b2) = lanes_of(vec![a, b]);
            assert_eq!(m2.kind_counts(), m1.kind_counts());
            assert_eq!(b2.len(), b1.len());
            for (x, y) in b1.iter().zip(&b2) {
                assert_eq!(x.lane.name, y.lane.name, "cut {cut}");
                assert_eq!(x.lane.detail, y.lane.detail);
                let label_names = |m: &MergedParts, l: &Lane| -> Vec<Vec<String>> {
                    l.rows
                        .iter()
                        .map(|r| {
                            r.label
                                .iter()
                                .map(|&i| m.labels.list[i as usize].clone())
                                .collect()
                        })
                        .collect()
                };
                assert_eq!(label_names(&m1, &x.lane), label_names(&m2, &y.lane));
                assert_eq!(x.lane.instants.t, y.lane.instants.t);
                assert_eq!(x.fault_points, y.fault_points);
            }
        }
    }

    #[test]
    fn a_missing_field_is_an_error_naming_it() {
        let mut p = PartLanes::default();
        let f = Fields::parse(r#"{"kind":"dax-fault","t_ns":1,"pid":2}"#).unwrap();
        assert_eq!(
            p.event(EventLine::Fields(HotKind::of(&f.kind).unwrap(), &f))
                .unwrap_err(),
            "dax-fault event without cpu"
        );
        let f = Fields::parse(r#"{"kind":"function-span","t_ns":1,"dur_ns":1,"pid":2,"cpu":0}"#)
            .unwrap();
        assert_eq!(
            p.event(EventLine::Fields(HotKind::of(&f.kind).unwrap(), &f))
                .unwrap_err(),
            "function-span without func"
        );
    }
}
