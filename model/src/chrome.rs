//! Chrome trace-event JSON (the "JSON Object Format" of the Trace Event Format that
//! chrome://tracing, Perfetto UI and `trace_processor` import), shared by
//! `memmap-export --chrome-trace` (of runs and of traces).
//!
//! Only the event phases the lab needs: `X` (complete span with `dur`), `i` (instant,
//! with scope `s`), `C` (counter: every numeric arg is a series) and `M` (metadata:
//! `process_name`, `thread_name`, `process_sort_index`, `thread_sort_index`).
//! Timestamps are microseconds (the format's unit) as floating point, so nanosecond
//! precision survives; `displayTimeUnit` is `"ns"`.

use serde::Serialize;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChromeEvent {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cat: String,
    /// Phase: "X", "i", "C" or "M".
    pub ph: &'static str,
    /// Microseconds.
    pub ts: f64,
    /// Microseconds, "X" only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dur: Option<f64>,
    pub pid: u32,
    pub tid: u32,
    /// Instant scope: "t" (thread), "p" (process), "g" (global); "i" only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s: Option<&'static str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub args: Map<String, Value>,
}

/// Nanoseconds to the format's microseconds.
pub fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// A whole trace: events plus free-form metadata (`otherData`). Events are serialized
/// as they are added (a few dozen bytes each instead of a ~1 KB `ChromeEvent` with its
/// map: 477 -> ~100 MB peak for a 63 MB trace of the 8-socket run).
#[derive(Clone, Debug, Default)]
pub struct ChromeTrace {
    /// The `traceEvents` array's elements, comma-separated JSON.
    events_json: Vec<u8>,
    events: usize,
    pub other_data: Map<String, Value>,
}

impl ChromeTrace {
    pub fn new() -> ChromeTrace {
        ChromeTrace::default()
    }

    /// Number of events added.
    pub fn len(&self) -> usize {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    fn push(&mut self, e: ChromeEvent) {
        if self.events > 0 {
            self.events_json.push(b',');
        }
        // Serializing plain strings, numbers and a map into a Vec cannot fail.
        serde_json::to_writer(&mut self.events_json, &e).expect("chrome event to JSON");
        self.events += 1;
    }

    /// A complete span ("X") from `start_ns` lasting `dur_ns`.
    #[allow(clippy::too_many_arguments)]
    pub fn complete(
        &mut self,
        pid: u32,
        tid: u32,
        cat: &str,
        name: &str,
        start_ns: u64,
        dur_ns: u64,
        args: Map<String, Value>,
    ) {
        self.push(ChromeEvent {
            name: name.into(),
            cat: cat.into(),
            ph: "X",
            ts: us(start_ns),
            dur: Some(us(dur_ns)),
            pid,
            tid,
            s: None,
            args,
        });
    }

    /// A thread-scoped instant ("i", s = "t").
    pub fn instant(
        &mut self,
        pid: u32,
        tid: u32,
        cat: &str,
        name: &str,
        t_ns: u64,
        args: Map<String, Value>,
    ) {
        self.push_instant(pid, tid, "t", cat, name, t_ns, args);
    }

    /// A process-scoped instant ("i", s = "p"): a vertical line over the process.
    pub fn process_instant(
        &mut self,
        pid: u32,
        cat: &str,
        name: &str,
        t_ns: u64,
        args: Map<String, Value>,
    ) {
        self.push_instant(pid, 0, "p", cat, name, t_ns, args);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_instant(
        &mut self,
        pid: u32,
        tid: u32,
        scope: &'static str,
        cat: &str,
        name: &str,
        t_ns: u64,
        args: Map<String, Value>,
    ) {
        self.push(ChromeEvent {
            name: name.into(),
            cat: cat.into(),
            ph: "i",
            ts: us(t_ns),
            dur: None,
            pid,
            tid,
            s: Some(scope),
            args,
        });
    }

    /// A counter sample ("C"): track `name` of process `pid`, one series per arg.
    pub fn counter(&mut self, pid: u32, name: &str, t_ns: u64, series: &[(&str, f64)]) {
        let args = series
            .iter()
            .map(|(k, v)| ((*k).to_string(), json_f64(*v)))
            .collect();
        self.push(ChromeEvent {
            name: name.into(),
            cat: "counter".into(),
            ph: "C",
            ts: us(t_ns),
            dur: None,
            pid,
            tid: 0,
            s: None,
            args,
        });
    }

    fn metadata(&mut self, pid: u32, tid: u32, name: &str, key: &str, value: Value) {
        let mut args = Map::new();
        args.insert(key.into(), value);
        self.push(ChromeEvent {
            name: name.into(),
            cat: String::new(),
            ph: "M",
            ts: 0.0,
            dur: None,
            pid,
            tid,
            s: None,
            args,
        });
    }

    pub fn process_name(&mut self, pid: u32, name: &str) {
        self.metadata(pid, 0, "process_name", "name", Value::from(name));
    }

    pub fn process_sort_index(&mut self, pid: u32, index: i64) {
        self.metadata(
            pid,
            0,
            "process_sort_index",
            "sort_index",
            Value::from(index),
        );
    }

    pub fn thread_name(&mut self, pid: u32, tid: u32, name: &str) {
        self.metadata(pid, tid, "thread_name", "name", Value::from(name));
    }

    pub fn thread_sort_index(&mut self, pid: u32, tid: u32, index: i64) {
        self.metadata(
            pid,
            tid,
            "thread_sort_index",
            "sort_index",
            Value::from(index),
        );
    }

    /// Write `{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}`,
    /// atomically through [`crate::output`].
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        self.write_avoiding(path, &[])
    }

    /// [`ChromeTrace::write`], refusing a destination that is one of `avoid` (the
    /// command's inputs) or is not a regular file.
    pub fn write_avoiding(
        &self,
        path: &Path,
        avoid: &[crate::output::Avoid],
    ) -> std::io::Result<()> {
        crate::output::write_atomic(path, avoid, |w| {
            w.write_all(b"{\"traceEvents\":[")?;
            w.write_all(&self.events_json)?;
            w.write_all(b"],\"displayTimeUnit\":\"ns\",\"otherData\":")?;
            serde_json::to_writer(&mut *w, &self.other_data)?;
            w.write_all(b"}\n")
        })
    }
}

/// A JSON number for a float (non-finite values become 0: JSON has no NaN).
fn json_f64(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::from(0))
}

/// Build an args map: `args![("pfn", 5u64), ("kind", "init")]`.
#[macro_export]
macro_rules! chrome_args {
    ($(($k:expr, $v:expr)),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = serde_json::Map::new();
        $( m.insert(String::from($k), serde_json::Value::from($v)); )*
        m
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_the_format_field_names() {
        let mut t = ChromeTrace::new();
        t.process_name(1, "p");
        t.thread_name(1, 2, "memmap/pmem0/0");
        t.complete(
            1,
            2,
            "memmap",
            "init",
            1500,
            2500,
            chrome_args![("pages", 64u64)],
        );
        t.instant(1, 2, "fault", "fault", 3000, Map::new());
        t.counter(1, "pages_done", 4000, &[("pages", 64.0)]);
        let dir = std::env::temp_dir().join(format!("chrome-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.json");
        t.write(&p).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let ev = v["traceEvents"].as_array().unwrap();
        assert_eq!(ev.len(), 5);
        assert_eq!(ev[2]["ph"], "X");
        assert_eq!(ev[2]["ts"], 1.5);
        assert_eq!(ev[2]["dur"], 2.5);
        assert_eq!(ev[2]["args"]["pages"], 64);
        assert_eq!(ev[3]["s"], "t");
        assert!(ev[3].get("dur").is_none());
        assert_eq!(ev[1]["args"]["name"], "memmap/pmem0/0");
        assert_eq!(v["displayTimeUnit"], "ns");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
