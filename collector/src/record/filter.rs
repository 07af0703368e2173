//! Which system-wide scheduler and workqueue samples a recording keeps: those of the
//! tasks involved (see [`InvolvedFilter`]).

use memmap_model::trace::TraceEvent;
use std::collections::{HashMap, HashSet, VecDeque};

/// Keeps system-wide scheduler and workqueue samples only for the tasks involved: the
/// command's process tree, and every task seen in a memmap, function, kprobe or DAX
/// event. Samples of a task not yet known wait in a bounded look-back queue, so the
/// switches of a kworker that turns out to run the hotplug are kept.
pub(super) struct InvolvedFilter {
    root: Option<u32>,
    involved: HashSet<u32>,
    descendant: HashMap<u32, bool>,
    lookback: VecDeque<TraceEvent>,
}

const LOOKBACK: usize = 50_000;

impl InvolvedFilter {
    pub fn new(root: Option<u32>) -> Self {
        InvolvedFilter {
            root,
            involved: root.into_iter().collect(),
            descendant: HashMap::new(),
            lookback: VecDeque::new(),
        }
    }

    fn is_descendant(&mut self, pid: u32) -> bool {
        let Some(root) = self.root else { return false };
        if let Some(&d) = self.descendant.get(&pid) {
            return d;
        }
        let mut p = pid;
        let mut d = false;
        for _ in 0..64 {
            if p == root {
                d = true;
                break;
            }
            if p <= 1 {
                break;
            }
            match ppid(p) {
                Some(pp) => p = pp,
                None => break,
            }
        }
        self.descendant.insert(pid, d);
        d
    }

    fn filtered_pids(e: &TraceEvent) -> Option<Vec<u32>> {
        let TraceEvent::Tracepoint {
            name, pid, fields, ..
        } = e
        else {
            return None;
        };
        if name.ends_with("sched_switch") {
            let g = |k: &str| fields.get(k).and_then(|v| v.as_u64()).map(|x| x as u32);
            Some(
                [g("prev_pid"), g("next_pid")]
                    .into_iter()
                    .flatten()
                    .filter(|&p| p != 0)
                    .collect(),
            )
        } else if name.starts_with("workqueue:") {
            Some(vec![*pid])
        } else {
            None
        }
    }

    pub fn admit(&mut self, evs: Vec<TraceEvent>) -> Vec<TraceEvent> {
        let mut out = Vec::with_capacity(evs.len());
        for e in evs {
            let new_pid = match &e {
                TraceEvent::FunctionSpan { pid, .. }
                | TraceEvent::MemmapInit { pid, .. }
                | TraceEvent::Kprobe { pid, .. }
                | TraceEvent::DaxFault { pid, .. } => Some(*pid),
                _ => None,
            };
            if let Some(p) = new_pid.filter(|&p| p != 0) {
                if self.involved.insert(p) {
                    // Release what this task left in the look-back queue.
                    let (keep, wait): (Vec<_>, Vec<_>) = self
                        .lookback
                        .drain(..)
                        .partition(|q| Self::filtered_pids(q).is_some_and(|ps| ps.contains(&p)));
                    out.extend(keep);
                    self.lookback = wait.into();
                }
            }
            match Self::filtered_pids(&e) {
                None => out.push(e),
                Some(ps) => {
                    let hit = ps
                        .iter()
                        .any(|&p| self.involved.contains(&p) || self.is_descendant(p));
                    if hit {
                        for &p in &ps {
                            if self.is_descendant(p) {
                                self.involved.insert(p);
                            }
                        }
                        out.push(e);
                    } else {
                        if self.lookback.len() >= LOOKBACK {
                            self.lookback.pop_front();
                        }
                        self.lookback.push_back(e);
                    }
                }
            }
        }
        out
    }
}

/// The parent of `pid`, from /proc/PID/stat.
fn ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm with spaces) S ppid ..."
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeMap;

    fn switch(prev: u32, next: u32) -> TraceEvent {
        let mut fields = BTreeMap::new();
        fields.insert("prev_pid".into(), Value::from(prev));
        fields.insert("next_pid".into(), Value::from(next));
        TraceEvent::Tracepoint {
            t_ns: 1,
            name: "sched:sched_switch".into(),
            task: String::new(),
            pid: prev,
            cpu: 0,
            fields,
        }
    }

    #[test]
    fn switches_of_uninvolved_tasks_wait_and_are_released_when_the_task_shows_up() {
        let mut f = InvolvedFilter::new(None);
        assert!(f.admit(vec![switch(4_000_001, 4_000_002)]).is_empty());
        let span = TraceEvent::MemmapInit {
            t_ns: 2,
            dur_ns: Some(1),
            func: "online_pages".into(),
            start_pfn: 0,
            nr_pages: 1,
            task: "kworker/0:1".into(),
            pid: 4_000_002,
            cpu: 0,
        };
        let out = f.admit(vec![
            span,
            switch(4_000_003, 4_000_004),
            switch(4_000_002, 0),
        ]);
        assert_eq!(out.len(), 3, "{out:?}"); // span, released switch, new switch
        assert_eq!(f.lookback.len(), 1);
    }

    #[test]
    fn the_command_tree_is_involved() {
        let me = std::process::id();
        let mut f = InvolvedFilter::new(Some(ppid(me).unwrap()));
        assert_eq!(f.admit(vec![switch(me, 0)]).len(), 1);
    }
}
