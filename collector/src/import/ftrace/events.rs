//! Event lines: `task-pid [cpu] flags ts: event: payload` (with or without the
//! irq-flags column, the `(tgid)` column, a `grep -n` prefix) and `trace-cmd report`
//! lines, decoded into samples for the correlator; trace_marker text and trace-cmd's
//! `funcgraph_entry` / `funcgraph_exit` events go to their own handling.

use super::graph::Ctx;
use super::lex::{clip, parse_small, parse_ts, split_task_pid, split_ws, strip_grep_prefix};
use super::payload::{decode_payload, fast_dax_fault};
use super::FtraceParser;
use crate::correlate::{self, Sample};
use memmap_model::trace::TraceEvent;
use std::collections::BTreeMap;

impl FtraceParser {
    pub(super) fn event_line(
        &mut self,
        lineno: usize,
        t: &str,
        lb: usize,
        nd: usize,
        out: &mut Vec<TraceEvent>,
    ) {
        let expected = "expected 'task-pid [cpu] flags timestamp: event: payload'";
        // head: "task-pid" or "task-pid (tgid)", maybe after a grep -n "123:" prefix
        let mut head = t[..lb].trim_ascii_end();
        if head.ends_with(')') {
            if let Some(o) = head.rfind('(') {
                head = head[..o].trim_ascii_end();
            }
        }
        head = strip_grep_prefix(head);
        let Some((task, pid)) = split_task_pid(head) else {
            return self.warn(
                lineno,
                format!("{expected}: no task-pid before the cpu, got {:?}", clip(t)),
                out,
            );
        };
        let cpu = parse_small(&t[lb + 1..lb + 1 + nd]).unwrap_or(u32::MAX);
        let mut rest = t[lb + 2 + nd..].trim_ascii_start();
        // flags column (optional), then "ts:"
        let (tok, after) = split_ws(rest);
        let ts_tok = if tok.ends_with(':') && parse_ts(&tok[..tok.len() - 1]).is_some() {
            rest = after;
            tok
        } else {
            let (tok2, after2) = split_ws(after);
            rest = after2;
            tok2
        };
        let Some(t_ns) = ts_tok.strip_suffix(':').and_then(parse_ts) else {
            return self.warn(
                lineno,
                format!(
                    "{expected}: no 'seconds.micros:' timestamp, got {:?}",
                    clip(t)
                ),
                out,
            );
        };
        let Some(colon) = rest.find(':') else {
            return self.warn(
                lineno,
                format!(
                    "{expected}: no 'event:' after the timestamp, got {:?}",
                    clip(t)
                ),
                out,
            );
        };
        let name = &rest[..colon];
        if name.is_empty() || name.contains(char::is_whitespace) {
            return self.warn(
                lineno,
                format!(
                    "{expected}: no 'event:' after the timestamp, got {:?}",
                    clip(t)
                ),
                out,
            );
        }
        let payload = rest[colon + 1..].trim_ascii_start();
        self.event(lineno, t_ns, name, task, pid, cpu, payload, out);
    }

    /// One decoded event line (also used by the `perf script` importer).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        &mut self,
        lineno: usize,
        t_ns: u64,
        name: &str,
        task: &str,
        pid: u32,
        cpu: u32,
        payload: &str,
        out: &mut Vec<TraceEvent>,
    ) {
        let base = correlate::base_name(name);
        if let Some((pmd, done)) = correlate::dax_fault_kind(base) {
            if let Some((address, pgoff, result)) = fast_dax_fault(payload, pmd) {
                self.corr
                    .push_dax_fault(t_ns, pmd, done, pid, cpu, address, pgoff, result, out);
                return;
            }
        }
        match base {
            "tracing_mark_write" | "print" => {
                let text = payload
                    .strip_prefix("tracing_mark_write: ")
                    .unwrap_or(payload)
                    .trim_ascii_end();
                out.push(TraceEvent::Mark {
                    t_ns,
                    text: text.to_string(),
                });
                return;
            }
            "funcgraph_entry" | "funcgraph_exit" => {
                let ctx = Ctx {
                    t_ns: Some(t_ns),
                    cpu: Some(cpu),
                    proc_: Some((task, pid)),
                };
                return self.graph_rest(lineno, &ctx, payload, out);
            }
            _ => {}
        }
        let mut fields = BTreeMap::new();
        decode_payload(name, payload, &mut fields);
        self.corr.push(
            Sample {
                t_ns,
                name,
                task,
                pid,
                cpu,
                fields,
            },
            out,
        );
    }
}
