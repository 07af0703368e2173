//! ftrace text: `trace` / `trace_pipe` files and `trace-cmd report` output.
//!
//! Reads, line by line and streaming (the live recorder feeds it from an instance's
//! `trace_pipe`):
//!
//! * event lines `task-pid [cpu] flags ts: event: payload`, with or without the
//!   irq-flags column, with the `(tgid)` column, with a `grep -n` style `123:` prefix;
//!   `trace-cmd report` lines (`task-pid [cpu] ts: event: payload`) and its header lines;
//! * function_graph output with any combination of the funcgraph-abstime, -cpu, -proc,
//!   -duration and -tail options: `func() {` / `}` pairs (nested), leaf calls `func();`,
//!   duration markers `+ ! # * @ $`, lines of several CPUs interleaved, `=>` context
//!   switch lines and `----` separators, `/* comments */` (trace_marker text, and events
//!   printed inside the graph as `/* event: payload */`), trace-cmd's
//!   `funcgraph_entry` / `funcgraph_exit` events;
//! * payloads: kprobes `(func+0x0/0x80) a=1 b=0x2`, kretprobes `(caller+0x.. <- func)`,
//!   fs_dax tracepoints as the kernel prints them (decoded into the field names of the
//!   tracefs format files: dev, ino, vm_flags, flags, address, vm_start, vm_end, pgoff,
//!   max_pgoff, result, ...), `key=value` payloads of other tracepoints;
//! * `CPU:N [LOST M EVENTS]` -> `Lost`.
//!
//! Samples go through the [`Correlator`] (fault pairs, memmap kprobe pairs, marks).
//!
//! function_graph spans are matched per task when the proc column is there (a task can
//! migrate between CPUs inside a call: the devdax capture enters arch_add_memory on CPU 0
//! and returns on CPU 1), else per CPU. Frames are matched by indentation, so a lost
//! return or a trace starting inside a call never shifts later spans. A span's `t_ns` is
//! the entry line's time (funcgraph-abstime); for a `}` whose entry was not seen, the exit
//! time minus the duration; 0 when the output has no absolute times. Dev numbers are the
//! kernel's `dev_t` encoding (`major << 20 | minor`), like the raw tracepoint field.
//!
//! Files: [`events`] event lines (`task-pid [cpu] ts: event: payload`), [`graph`]
//! function_graph lines and the pairing of entries with returns, [`payload`] payload
//! decoders (shared with perf_script), [`lex`] timestamps, durations and columns.

mod events;
mod graph;
mod lex;
mod payload;

use crate::correlate::{Correlator, FastMap};
use crate::import::lines::{Line, LineFormat};
use graph::Frame;
use lex::is_report_header;
use memmap_model::trace::TraceEvent;

pub(crate) use lex::clip;
pub use lex::{parse_ts, split_task_pid};
pub use payload::decode_payload;

/// Streaming ftrace text parser; see the module documentation.
#[derive(Debug)]
pub struct FtraceParser {
    file: String,
    corr: Correlator,
    /// function_graph frames per task (`1 << 32 | pid`) or per CPU.
    stacks: FastMap<u64, Vec<Frame>>,
    unmatched_close: usize,
    first_unmatched_line: usize,
}

impl FtraceParser {
    pub fn new(file: &str) -> Self {
        FtraceParser {
            file: file.to_string(),
            corr: Correlator::new(),
            stacks: FastMap::default(),
            unmatched_close: 0,
            first_unmatched_line: 0,
        }
    }

    fn warn(&self, lineno: usize, reason: String, out: &mut Vec<TraceEvent>) {
        out.push(TraceEvent::ImportWarning {
            file: self.file.clone(),
            line: lineno,
            reason,
        });
    }

    /// Feed one line (no newline). Appends 0+ events; lines it cannot read become
    /// `TraceEvent::ImportWarning{file, line, reason}` (reason says what was expected)
    /// and give [`Line::Skipped`].
    pub fn line(&mut self, lineno: usize, line: &str, out: &mut Vec<TraceEvent>) -> Line {
        let n0 = out.len();
        let what = self.line_inner(lineno, line, out);
        if what == Line::Recognised
            && out[n0..]
                .iter()
                .any(|e| matches!(e, TraceEvent::ImportWarning { line, .. } if *line == lineno))
        {
            return Line::Skipped;
        }
        what
    }

    fn line_inner(&mut self, lineno: usize, line: &str, out: &mut Vec<TraceEvent>) -> Line {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let t = line.trim_ascii_start();
        if t.is_empty() {
            return Line::Ignored;
        }
        if t.starts_with('#') {
            // "# tracer: function_graph": the header of a tracefs trace file
            return if t.starts_with("# tracer: ") {
                Line::Recognised
            } else {
                Line::Ignored
            };
        }
        let b = t.as_bytes();
        // first '[' or '|' decides: event line (cpu bracket before any '|') or graph line
        let mut i = 0;
        while i < b.len() && b[i] != b'[' && b[i] != b'|' {
            i += 1;
        }
        if i < b.len() && b[i] == b'[' {
            let after = &t[i + 1..];
            let nd = after.bytes().take_while(u8::is_ascii_digit).count();
            if nd > 0 && after.as_bytes().get(nd) == Some(&b']') {
                self.event_line(lineno, t, i, nd, out);
                return Line::Recognised;
            }
            if let Some(rest) = after.strip_prefix("LOST ") {
                let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(count) = n.parse() {
                    out.push(TraceEvent::Lost {
                        source: format!("ftrace {}", t[..i].trim_ascii()),
                        count,
                    });
                    return Line::Recognised;
                }
            }
        }
        if i < b.len() {
            self.graph_line(lineno, t, out);
            return Line::Recognised;
        }
        // no '[' / '|': separators, context switches, trace-cmd report headers
        if is_report_header(t) {
            return Line::Recognised;
        }
        if t.starts_with("---") || t.contains("=>") {
            return Line::Ignored;
        }
        self.warn(
            lineno,
            format!(
                "expected an ftrace line ('task-pid [cpu] ts: event: payload' or a function_graph \
                 line 'cpu) task-pid | duration | func() {{'), got {:?}",
                clip(t)
            ),
            out,
        );
        Line::Skipped
    }

    /// End of input: unmatched fault / kprobe starts, unmatched closing braces.
    pub fn finish(&mut self, out: &mut Vec<TraceEvent>) {
        self.corr.finish(out);
        if self.unmatched_close > 0 {
            let (n, l) = (self.unmatched_close, self.first_unmatched_line);
            self.warn(
                l,
                format!(
                    "{n} function_graph closing brace(s) without their entry and without a \
                     function name (expected 'func() {{' before '}}', or enable funcgraph-tail)"
                ),
                out,
            );
            self.unmatched_close = 0;
        }
        self.stacks.clear();
    }
}

impl LineFormat for FtraceParser {
    fn line(&mut self, lineno: usize, line: &str, out: &mut Vec<TraceEvent>) -> Line {
        FtraceParser::line(self, lineno, line, out)
    }
    fn finish(&mut self, out: &mut Vec<TraceEvent>) {
        FtraceParser::finish(self, out)
    }
}

/// Convenience over the parser: every line of `text`, then `finish`.
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    crate::import::lines::parse_text(text, &mut FtraceParser::new(file))
}
