//! Per-thread perf-event counters (perf_event_open through the `perf-event` crate):
//! task-clock, page-faults and context switches (software, always there when
//! perf events are allowed), cycles and instructions (hardware, "unsupported" on
//! VMs without a virtual PMU). Each counter observes only the calling thread.

use memmap_model::run::{CounterValue, Counters};
use perf_event::events::{Event, Hardware, Software};
use perf_event::{Builder, Counter};

pub struct ThreadCounters {
    slots: Vec<Result<Counter, String>>,
}

const KINDS: [(&str, Kind); 5] = [
    ("task-clock", Kind::Sw(Software::TASK_CLOCK)),
    ("page-faults", Kind::Sw(Software::PAGE_FAULTS)),
    ("context-switches", Kind::Sw(Software::CONTEXT_SWITCHES)),
    ("cycles", Kind::Hw(Hardware::CPU_CYCLES)),
    ("instructions", Kind::Hw(Hardware::INSTRUCTIONS)),
];

#[derive(Clone, Copy)]
enum Kind {
    Sw(Software),
    Hw(Hardware),
}

impl Kind {
    fn event(self) -> Event {
        match self {
            Kind::Sw(s) => s.into(),
            Kind::Hw(h) => h.into(),
        }
    }
}

impl ThreadCounters {
    /// Open and enable all counters for the calling thread. Never fails: a counter
    /// that cannot be opened is recorded with the reason.
    pub fn start() -> ThreadCounters {
        let slots = KINDS
            .iter()
            .map(|(name, kind)| {
                // A PMU that is not there stays not there: ask once per process, since a
                // failing hardware perf_event_open can take milliseconds on a VM.
                if let Kind::Hw(_) = kind {
                    if let Some(why) = HW_UNSUPPORTED.get_or_init(probe_hardware) {
                        return Err(format!("{name}: {why}"));
                    }
                }
                let mut c = Builder::new()
                    .kind(kind.event())
                    .observe_self()
                    .any_cpu()
                    .build()
                    .map_err(|e| explain(name, &e))?;
                c.enable().map_err(|e| explain(name, &e))?;
                Ok(c)
            })
            .collect();
        ThreadCounters { slots }
    }

    pub fn stop(mut self) -> Counters {
        let mut vals: Vec<CounterValue> = self
            .slots
            .iter_mut()
            .map(|s| match s {
                Ok(c) => {
                    let _ = c.disable();
                    match c.read() {
                        Ok(v) => CounterValue::Value(v),
                        Err(e) => CounterValue::Unsupported(format!("read failed: {e}")),
                    }
                }
                Err(why) => CounterValue::Unsupported(why.clone()),
            })
            .collect();
        let mut take = || vals.remove(0);
        Counters {
            task_clock_ns: take(),
            page_faults: take(),
            context_switches: take(),
            cycles: take(),
            instructions: take(),
        }
    }
}

static HW_UNSUPPORTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

fn probe_hardware() -> Option<String> {
    match Builder::new()
        .kind(Hardware::INSTRUCTIONS)
        .observe_self()
        .any_cpu()
        .build()
    {
        Ok(_) => None,
        Err(e) => Some(explain("hardware counters", &e)),
    }
}

fn explain(name: &str, e: &std::io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) => "no PMU support on this machine",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "not permitted: run as root, grant CAP_PERFMON, or lower /proc/sys/kernel/perf_event_paranoid"
        }
        _ => "perf_event_open failed",
    };
    format!("{name}: {hint} ({e})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_counters_count_this_thread_or_say_why_not() {
        let c = ThreadCounters::start();
        // Touch fresh memory so page-faults and task-clock have something to count.
        let mut v = vec![0u8; 8 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
        let r = c.stop();
        match r.task_clock_ns {
            CounterValue::Value(ns) => assert!(ns > 0),
            CounterValue::Unsupported(why) => assert!(why.contains("task-clock"), "{why}"),
        }
        if let CounterValue::Value(pf) = r.page_faults {
            assert!(pf >= 1, "8 MiB of fresh memory and no page fault counted");
        }
    }
}
