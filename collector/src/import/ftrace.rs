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

use crate::correlate::{self, Correlator, FastMap, Sample, FAULT_FLAG_NAMES, VM_FAULT_NAMES};
use memmap_model::trace::TraceEvent;
use serde_json::Value;
use std::collections::BTreeMap;

/// Deepest function_graph nesting kept per task/CPU (the kernel's own limit is lower).
const MAX_DEPTH: usize = 256;

#[derive(Debug)]
struct Frame {
    indent: u32,
    t_ns: Option<u64>,
    func: String,
    cpu: u32,
}

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

/// Where a function_graph line comes from.
struct Ctx<'a> {
    t_ns: Option<u64>,
    cpu: Option<u32>,
    proc_: Option<(&'a str, u32)>,
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
    /// `TraceEvent::ImportWarning{file, line, reason}` (reason says what was expected).
    pub fn line(&mut self, lineno: usize, line: &str, out: &mut Vec<TraceEvent>) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let t = line.trim_ascii_start();
        if t.is_empty() || t.starts_with('#') {
            return;
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
                return self.event_line(lineno, t, i, nd, out);
            }
            if let Some(rest) = after.strip_prefix("LOST ") {
                let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(count) = n.parse() {
                    out.push(TraceEvent::Lost {
                        source: format!("ftrace {}", t[..i].trim_ascii()),
                        count,
                    });
                    return;
                }
            }
        }
        if i < b.len() {
            return self.graph_line(lineno, t, out);
        }
        // no '[' / '|': separators, context switches, trace-cmd report headers
        if t.starts_with("---") || t.contains("=>") || is_report_header(t) {
            return;
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

    // ---- event lines ----------------------------------------------------------------

    fn event_line(
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

    // ---- function_graph -------------------------------------------------------------

    fn graph_line(&mut self, lineno: usize, t: &str, out: &mut Vec<TraceEvent>) {
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
    fn graph_rest(&mut self, lineno: usize, ctx: &Ctx, payload: &str, out: &mut Vec<TraceEvent>) {
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
            return;
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

/// Convenience over the parser: every line of `text`, then `finish`.
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    let mut p = FtraceParser::new(file);
    let mut out = Vec::new();
    for (i, l) in text.split('\n').enumerate() {
        p.line(i + 1, l, &mut out);
    }
    p.finish(&mut out);
    out
}

// ---- payload decoders (shared with perf_script) -----------------------------------

/// Decodes a tracepoint / kprobe payload as the kernel prints it into `fields`, named
/// like the tracefs format file (kprobes: `__probe_ip`, or `__probe_ret_ip` and
/// `__probe_func`, then the fetch args as strings).
pub fn decode_payload(name: &str, payload: &str, fields: &mut BTreeMap<String, Value>) {
    let payload = payload.trim_ascii();
    if let Some(rest) = decode_kprobe(payload, fields) {
        decode_kv(rest, fields, true);
        return;
    }
    let base = correlate::base_name(name);
    if base.starts_with("dax_") && payload.starts_with("dev ") {
        decode_dax(base, payload, fields);
        return;
    }
    decode_kv(payload, fields, false);
}

/// `(sym+0x0/0x80) rest` / `(caller+0x1/0x2 <- func) rest` -> fields, returns `rest`.
fn decode_kprobe<'a>(payload: &'a str, fields: &mut BTreeMap<String, Value>) -> Option<&'a str> {
    let inner_end = payload.find(')')?;
    let inner = payload.strip_prefix('(')?.get(..inner_end - 1)?;
    let looks_like_ip = |s: &str| {
        let s = s.trim_ascii();
        let sym = s.split_whitespace().next().unwrap_or("");
        sym.contains("+0x") || (!sym.is_empty() && sym.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if let Some((caller, func)) = inner.split_once(" <- ") {
        if !looks_like_ip(caller) {
            return None;
        }
        fields.insert(
            "__probe_ret_ip".into(),
            Value::String(caller.trim_ascii().into()),
        );
        fields.insert(
            "__probe_func".into(),
            Value::String(func.trim_ascii().into()),
        );
    } else {
        if !looks_like_ip(inner) {
            return None;
        }
        fields.insert(
            "__probe_ip".into(),
            Value::String(inner.trim_ascii().into()),
        );
    }
    Some(&payload[inner_end + 1..])
}

/// A printed number as a JSON value: decimal / 0x-hex unsigned, negative decimal.
fn num_value(s: &str) -> Option<Value> {
    if let Some(v) = correlate::parse_u64(s) {
        return Some(Value::from(v));
    }
    let d = s.strip_prefix('-')?;
    if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(Value::from);
    }
    None
}

/// `a=1 b=0x2 c="x y" comm=bash` -> fields; tokens that are not `key=value` put the
/// whole payload into `raw` (custom printk formats).
fn decode_kv(payload: &str, fields: &mut BTreeMap<String, Value>, strings: bool) {
    let b = payload.as_bytes();
    let mut i = 0;
    let mut odd = false;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || i == ks {
            odd = true;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            continue;
        }
        let key = &payload[ks..i];
        i += 1;
        let val = if i < b.len() && b[i] == b'"' {
            let vs = i + 1;
            i = vs;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            let v = &payload[vs..i];
            i = (i + 1).min(b.len());
            v
        } else {
            let vs = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            &payload[vs..i]
        };
        let v = if strings {
            Value::String(val.to_string())
        } else {
            num_value(val).unwrap_or_else(|| Value::String(val.to_string()))
        };
        fields.insert(key.to_string(), v);
    }
    if odd {
        fields.insert("raw".into(), Value::String(payload.to_string()));
    }
}

/// `"259:0"` -> the kernel's dev_t (`major << 20 | minor`).
fn parse_dev(s: &str) -> Option<u64> {
    let (ma, mi) = s.split_once(':')?;
    let (ma, mi) = (ma.parse::<u64>().ok()?, mi.parse::<u64>().ok()?);
    if ma >= 1 << 12 || mi >= 1 << 20 {
        return None;
    }
    Some(ma << 20 | mi)
}

/// fs_dax payloads (include/trace/events/fs_dax.h):
/// `dev 259:0 ino 0xc shared WRITE|USER address 0x.. vm_start 0x.. vm_end 0x.. pgoff 0x0
/// max_pgoff 0x4000 NOPAGE`, `dev .. ino .. pgoff 0x200-0x3ff` (writeback range), ...
fn decode_dax(base: &str, payload: &str, fields: &mut BTreeMap<String, Value>) {
    let mut toks = payload.split_ascii_whitespace().peekable();
    let mut seen_address = false;
    let mut last_key = "";
    let mut odd = false;
    while let Some(tok) = toks.next() {
        match tok {
            "dev" => {
                let v = toks.next().unwrap_or("");
                match parse_dev(v) {
                    Some(d) => fields.insert("dev".into(), Value::from(d)),
                    None => fields.insert("dev".into(), Value::String(v.into())),
                };
                last_key = "dev";
            }
            "ino" | "address" | "vm_start" | "vm_end" | "max_pgoff" | "length" | "pfn"
            | "radix_entry" | "zero_page" | "pglen" | "entry" | "pgoff" => {
                let v = toks.next().unwrap_or("");
                if tok == "address" {
                    seen_address = true;
                }
                if tok == "pgoff" && base.starts_with("dax_writeback_range") {
                    if let Some((a, b)) = v.split_once('-') {
                        let a = num_value(a).unwrap_or_else(|| Value::String(a.into()));
                        let b = num_value(b).unwrap_or_else(|| Value::String(b.into()));
                        fields.insert("start_index".into(), a);
                        fields.insert("end_index".into(), b);
                        last_key = tok;
                        continue;
                    }
                }
                let val = num_value(v).unwrap_or_else(|| Value::String(v.into()));
                fields.insert(tok.into(), val);
                last_key = tok;
            }
            "shared" | "private" => {
                // VM_SHARED is all the text tells about vm_flags
                fields.insert(
                    "vm_flags".into(),
                    Value::from(if tok == "shared" { 8u64 } else { 0 }),
                );
            }
            "write" | "read" if last_key == "ino" || last_key == "dev" => {
                fields.insert("write".into(), Value::from(u64::from(tok == "write")));
            }
            _ if !seen_address && !fields.contains_key("flags") => {
                let v = correlate::names_to_flags(tok, FAULT_FLAG_NAMES)
                    .map(Value::from)
                    .unwrap_or_else(|| Value::String(tok.into()));
                fields.insert("flags".into(), v);
            }
            _ if last_key == "pfn" && !fields.contains_key("pfn_flags") => {
                fields.insert("pfn_flags".into(), Value::String(tok.into()));
            }
            _ if !fields.contains_key("result") => {
                let v = correlate::names_to_flags(tok, VM_FAULT_NAMES)
                    .map(Value::from)
                    .unwrap_or_else(|| Value::String(tok.into()));
                fields.insert("result".into(), v);
            }
            _ => odd = true,
        }
    }
    if correlate::dax_fault_kind(base).is_some() && !fields.contains_key("result") {
        fields.insert("result".into(), Value::from(0u64));
    }
    if odd {
        fields.insert("raw".into(), Value::String(payload.into()));
    }
}

/// Allocation-free read of a dax fault payload: (address, pgoff, result text).
fn fast_dax_fault(payload: &str, pmd: bool) -> Option<(u64, u64, &str)> {
    let mut toks = payload.split_ascii_whitespace();
    if toks.next()? != "dev" {
        return None;
    }
    let (mut address, mut pgoff) = (None, None);
    let mut result = "";
    let last = if pmd { "max_pgoff" } else { "pgoff" };
    while let Some(tok) = toks.next() {
        match tok {
            "address" => address = Some(correlate::parse_u64(toks.next()?)?),
            "pgoff" | "max_pgoff" => {
                let v = correlate::parse_u64(toks.next()?)?;
                if tok == "pgoff" {
                    pgoff = Some(v);
                }
                if tok == last {
                    result = toks.next().unwrap_or("");
                    if toks.next().is_some() {
                        return None;
                    }
                    break;
                }
            }
            _ => {}
        }
    }
    Some((address?, pgoff?, result))
}

// ---- small lexers -----------------------------------------------------------------

/// `"25.887520"` -> ns (up to 9 fraction digits; more are truncated). An integer without
/// a fraction is taken as ns (trace clocks "counter" / "x86-tsc" print raw counts).
pub fn parse_ts(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut iv: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        if i >= 19 {
            return None;
        }
        iv = iv * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    if i == b.len() {
        return Some(iv);
    }
    if b[i] != b'.' || i + 1 == b.len() {
        return None;
    }
    let mut f: u64 = 0;
    let mut nf = 0;
    for &c in &b[i + 1..] {
        if !c.is_ascii_digit() {
            return None;
        }
        if nf < 9 {
            f = f * 10 + (c - b'0') as u64;
            nf += 1;
        }
    }
    while nf < 9 {
        f *= 10;
        nf += 1;
    }
    iv.checked_mul(1_000_000_000)?.checked_add(f)
}

/// function_graph duration column: `"+ 26.378 us"`, `"$ 1557216 us"`, `"0.500 us"`.
fn parse_duration(seg: &str) -> Option<u64> {
    let s = seg
        .strip_prefix(['+', '!', '#', '*', '@', '$'])
        .unwrap_or(seg)
        .trim_ascii();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1_000u64)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix("ns") {
        (n, 1)
    } else {
        return None;
    };
    let num = num.trim_ascii();
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || int.len() > 15 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = int.parse().ok()?;
    v = v.checked_mul(mult)?;
    let mut scale = mult;
    for c in frac.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        v += (c - b'0') as u64 * scale;
    }
    Some(v)
}

/// `"scenario.sh-124"` -> ("scenario.sh", 124); the pid is after the last '-'.
pub fn split_task_pid(s: &str) -> Option<(&str, u32)> {
    let s = s.trim_ascii();
    let (task, pid) = s.rsplit_once('-')?;
    Some((task.trim_ascii(), parse_small(pid)?))
}

fn parse_small(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `grep -n` output pasted as a trace: `"207:       faulttest-668"` -> `"faulttest-668"`.
fn strip_grep_prefix(head: &str) -> &str {
    let d = head.bytes().take_while(u8::is_ascii_digit).count();
    if d > 0 && head.as_bytes().get(d) == Some(&b':') {
        let rest = &head[d + 1..];
        if rest.starts_with([' ', '\t']) || rest.is_empty() {
            return rest.trim_ascii_start();
        }
    }
    head
}

fn split_ws(s: &str) -> (&str, &str) {
    let s = s.trim_ascii_start();
    match s.bytes().position(|b| b == b' ' || b == b'\t') {
        Some(i) => (&s[..i], s[i..].trim_ascii_start()),
        None => (s, ""),
    }
}

fn skip_sp(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

/// `"nvdimm_setup_pfn [libnvdimm]"` -> `"nvdimm_setup_pfn"`.
fn func_name(s: &str) -> &str {
    let s = s.trim_ascii_start();
    match s.bytes().position(|b| b == b' ' || b == b'\t') {
        Some(i) => &s[..i],
        None => s,
    }
}

fn is_latency_flags(seg: &str) -> bool {
    (3..=6).contains(&seg.len()) && seg.bytes().all(|b| b".dDXnNhHsSbzp0123456789".contains(&b))
}

fn is_report_header(t: &str) -> bool {
    t.starts_with("version = ")
        || t.starts_with("cpus=")
        || t.starts_with("trace-cmd")
        || (t.starts_with("CPU") && (t.ends_with("is empty") || t.contains("data recorded")))
}

/// A line clipped for a warning message.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= 120 {
        return s.to_string();
    }
    let mut e = 120;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    format!("{}...", &s[..e])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(parse_ts("25.887520"), Some(25_887_520_000));
        assert_eq!(parse_ts("1.000000001"), Some(1_000_000_001));
        assert_eq!(parse_ts("99999999999999999999.1"), None);
        assert_eq!(parse_duration("+ 26.378 us"), Some(26_378));
        assert_eq!(parse_duration("@ 561397.7 us"), Some(561_397_700));
        assert_eq!(parse_duration("$ 1557216 us"), Some(1_557_216_000));
        assert_eq!(parse_duration("ndctl-1"), None);
    }

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
