//! function_graph lines: the abstime / cpu / proc / latency / duration columns, then
//! the call text; `func() {` entries are paired with their `}` per task (or per CPU)
//! by indentation into `FunctionSpan`s, leaf calls `func();` are spans at once, and
//! `/* comments */` are events printed inside the graph or trace_marker text.

use super::lex::{
    clip, func_name, is_latency_flags, parse_duration, parse_small, parse_ts, skip_sp,
    split_task_pid,
};
use super::FtraceParser;
use memmap_model::trace::TraceEvent;

/// Deepest function_graph nesting kept per task/CPU (the kernel's own limit is lower).
const MAX_DEPTH: usize = 256;

#[derive(Debug)]
pub(super) struct Frame {
    indent: u32,
    t_ns: Option<u64>,
    func: String,
    cpu: u32,
}

/// Where a function_graph line comes from.
pub(super) struct Ctx<'a> {
    pub t_ns: Option<u64>,
    pub cpu: Option<u32>,
    pub proc_: Option<(&'a str, u32)>,
}

impl FtraceParser {
    pub(super) fn graph_line(&mut self, lineno: usize, t: &str, out: &mut Vec<TraceEvent>) {
        let b = t.as_bytes();
        let mut p = 0usize;
        let mut ctx = Ctx {
            t_ns: None,
            cpu: None,
            proc_: None,
        };
        // abstime "  24.291927 |" and/or cpu " 1)"
        let num_end = |mut q: usize| {
            while q < b.len() && (b[q].is_ascii_digit() || b[q] == b'.') {
                q += 1;
            }
            q
        };
        if p < b.len() && b[p].is_ascii_digit() {
            let e = num_end(p);
            let s = skip_sp(b, e);
            if s < b.len() && b[s] == b'|' {
                ctx.t_ns = parse_ts(&t[p..e]);
                if ctx.t_ns.is_none() {
                    return self.warn(
                        lineno,
                        format!(
                            "expected a function_graph abstime 'seconds.micros |', got {:?}",
                            clip(t)
                        ),
                        out,
                    );
                }
                p = skip_sp(b, s + 1);
            }
        }
        if p < b.len() && b[p].is_ascii_digit() {
            let e = num_end(p);
            if e < b.len() && b[e] == b')' {
                ctx.cpu = parse_small(&t[p..e]);
                p = e + 1;
            }
        }
        let rest = &t[p..];
        if !rest.contains('|') && rest.contains("=>") {
            return; // context switch line " 1)  scenari-124   =>   ndctl-524"
        }
        self.graph_columns(lineno, ctx, rest, out)
    }

    /// The columns after abstime and cpu: optional proc, latency, duration, then the call.
    fn graph_columns<'a>(
        &mut self,
        lineno: usize,
        mut ctx: Ctx<'a>,
        rest: &'a str,
        out: &mut Vec<TraceEvent>,
    ) {
        let mut rest = rest;
        let mut dur: Option<u64> = None;
        let mut have_dur_col = false;
        // up to 3 '|' separated columns before the call text
        for _ in 0..3 {
            let Some(bar) = rest.find('|') else { break };
            let seg = rest[..bar].trim_ascii();
            if seg.is_empty() {
                if have_dur_col {
                    break;
                }
                have_dur_col = true;
                rest = &rest[bar + 1..];
                break;
            }
            if let Some(d) = parse_duration(seg) {
                dur = Some(d);
                have_dur_col = true;
                rest = &rest[bar + 1..];
                break;
            }
            if ctx.proc_.is_none() && !have_dur_col {
                if let Some(tp) = split_task_pid(seg) {
                    ctx.proc_ = Some(tp);
                    rest = &rest[bar + 1..];
                    continue;
                }
            }
            if is_latency_flags(seg) {
                rest = &rest[bar + 1..];
                continue;
            }
            break;
        }
        if !have_dur_col && ctx.proc_.is_none() && ctx.cpu.is_none() && ctx.t_ns.is_none() {
            return self.warn(
                lineno,
                format!(
                    "expected a function_graph line '[ts |] cpu) [task-pid |] [duration] | call', got {:?}",
                    clip(rest)
                ),
                out,
            );
        }
        self.graph_call(lineno, &ctx, dur, rest, out)
    }

    /// trace-cmd `funcgraph_entry` / `funcgraph_exit` payload: `[dur] |  call`.
    pub(super) fn graph_rest(
        &mut self,
        lineno: usize,
        ctx: &Ctx,
        payload: &str,
        out: &mut Vec<TraceEvent>,
    ) {
        let (dur, call) = match payload.find('|') {
            Some(bar) => (
                parse_duration(payload[..bar].trim_ascii()),
                &payload[bar + 1..],
            ),
            None => (None, payload),
        };
        self.graph_call(lineno, ctx, dur, call, out)
    }

    fn stack_key(ctx: &Ctx) -> u64 {
        match (ctx.proc_, ctx.cpu) {
            (Some((_, pid)), _) => 1 << 32 | pid as u64,
            (None, Some(cpu)) => cpu as u64,
            (None, None) => 0,
        }
    }

    /// The call text after the columns: `}`, `/* comment */`, `func() {`, `func();`.
    fn graph_call(
        &mut self,
        lineno: usize,
        ctx: &Ctx,
        dur: Option<u64>,
        call: &str,
        out: &mut Vec<TraceEvent>,
    ) {
        let indent = call.bytes().take_while(|&c| c == b' ').count() as u32;
        let text = call.trim_ascii();
        let (task, pid) = ctx.proc_.unwrap_or(("", 0));
        let cpu = ctx.cpu.unwrap_or(0);
        if text.is_empty() {
            return;
        }
        if let Some(after) = text.strip_prefix('}') {
            return self.graph_close(lineno, ctx, dur, indent, after, out);
        }
        if let Some(c) = text.strip_prefix("/*") {
            let c = c.strip_suffix("*/").unwrap_or(c).trim_ascii();
            return self.graph_comment(lineno, ctx, c, out);
        }
        if let Some(head) = text.strip_suffix('{') {
            let head = head.trim_ascii_end();
            let Some(head) = head.strip_suffix("()") else {
                return self.bad_call(lineno, text, out);
            };
            let func = func_name(head);
            if func.is_empty() {
                return self.bad_call(lineno, text, out);
            }
            let key = Self::stack_key(ctx);
            let stack = self.stacks.entry(key).or_default();
            while stack.last().is_some_and(|f| f.indent >= indent) {
                stack.pop();
            }
            if stack.len() >= MAX_DEPTH {
                stack.remove(0);
            }
            stack.push(Frame {
                indent,
                t_ns: ctx.t_ns,
                func: func.to_string(),
                cpu,
            });
            return;
        }
        let leaf = if text.ends_with("();") {
            Some(text.len() - 3)
        } else {
            text.find("();")
        };
        if let Some(pos) = leaf {
            let func = func_name(&text[..pos]);
            if func.is_empty() {
                return self.bad_call(lineno, text, out);
            }
            out.push(TraceEvent::FunctionSpan {
                t_ns: ctx.t_ns.unwrap_or(0),
                dur_ns: dur.unwrap_or(0),
                func: func.to_string(),
                task: task.to_string(),
                pid,
                cpu,
            });
            return;
        }
        if text.starts_with("==========>") || text.starts_with("<==========") {
            return; // irq entry / exit markers
        }
        self.bad_call(lineno, text, out)
    }

    /// `}` (with its `/* func */` tail under funcgraph-tail): pops the frame of the
    /// same indentation on this task's (or CPU's) stack, dropping deeper ones whose
    /// return was lost, and emits the span. A `}` without its entry and without a tail
    /// is counted, warned about once at the end.
    fn graph_close(
        &mut self,
        lineno: usize,
        ctx: &Ctx,
        dur: Option<u64>,
        indent: u32,
        after: &str,
        out: &mut Vec<TraceEvent>,
    ) {
        let (task, pid) = ctx.proc_.unwrap_or(("", 0));
        let cpu = ctx.cpu.unwrap_or(0);
        let tail = after
            .trim_ascii()
            .strip_prefix("/*")
            .and_then(|c| c.strip_suffix("*/"))
            .map(|c| func_name(c.trim_ascii()))
            .filter(|f| !f.is_empty());
        let key = Self::stack_key(ctx);
        let stack = self.stacks.entry(key).or_default();
        while stack.last().is_some_and(|f| f.indent > indent) {
            stack.pop();
        }
        let frame = if stack.last().is_some_and(|f| f.indent == indent) {
            stack.pop()
        } else {
            None
        };
        let (t0, func, fcpu) = match frame {
            Some(f) => {
                let func = match tail {
                    Some(tn) if tn != f.func => tn.to_string(),
                    _ => f.func,
                };
                (f.t_ns, func, f.cpu)
            }
            None => match tail {
                Some(tn) => (None, tn.to_string(), cpu),
                None => {
                    if self.unmatched_close == 0 {
                        self.first_unmatched_line = lineno;
                    }
                    self.unmatched_close += 1;
                    return;
                }
            },
        };
        let dur_ns = match (dur, t0, ctx.t_ns) {
            (Some(d), _, _) => d,
            (None, Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        let t_ns = match (t0, ctx.t_ns) {
            (Some(a), _) => a,
            (None, Some(b)) => b.saturating_sub(dur_ns),
            _ => 0,
        };
        out.push(TraceEvent::FunctionSpan {
            t_ns,
            dur_ns,
            func,
            task: task.to_string(),
            pid,
            cpu: fcpu,
        });
    }

    fn bad_call(&self, lineno: usize, text: &str, out: &mut Vec<TraceEvent>) {
        self.warn(
            lineno,
            format!(
                "expected a function_graph call 'func() {{', 'func();', '}}' or '/* comment */', got {:?}",
                clip(text)
            ),
            out,
        );
    }

    /// `/* text */` inside a graph: an event printed by the graph tracer
    /// (`name: payload`) or trace_marker text.
    fn graph_comment(&mut self, lineno: usize, ctx: &Ctx, c: &str, out: &mut Vec<TraceEvent>) {
        let t_ns = ctx.t_ns.unwrap_or(0);
        if let Some(colon) = c.find(": ") {
            let name = &c[..colon];
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
                && name.bytes().any(|b| b == b'_')
            {
                let (task, pid) = ctx.proc_.unwrap_or(("", 0));
                let cpu = ctx.cpu.unwrap_or(0);
                return self.event(lineno, t_ns, name, task, pid, cpu, &c[colon + 2..], out);
            }
        }
        out.push(TraceEvent::Mark {
            t_ns,
            text: c.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::import;
    use memmap_model::trace::TraceEvent;

    #[test]
    fn graph_variants() {
        let text = "\
 0)               |  foo() {
 0)   1.500 us    |    bar();
 0) + 12.000 us   |  }
 1)  bash-7   |               |  baz() {
 1)  bash-7   | ! 200.000 us  |  } /* baz */
   10.000000 |   0)   ndctl-9    |   3.000 us    |  leaf [mod]();
";
        let ev = import("t", text);
        let spans: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                TraceEvent::FunctionSpan {
                    func,
                    dur_ns,
                    pid,
                    t_ns,
                    ..
                } => Some((func.as_str(), *dur_ns, *pid, *t_ns)),
                _ => None,
            })
            .collect();
        assert_eq!(
            spans,
            vec![
                ("bar", 1500, 0, 0),
                ("foo", 12000, 0, 0),
                ("baz", 200000, 7, 0),
                ("leaf", 3000, 9, 10_000_000_000)
            ],
            "{ev:?}"
        );
    }
}
