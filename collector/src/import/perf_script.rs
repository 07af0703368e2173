//! `perf script` text for tracepoints and kprobes:
//! `comm  tid [cpu] seconds.micros: sys:event: payload`, with `pid/tid` instead of `tid`,
//! and the `perf script -F` variants where comm, tid, cpu or time are missing (a missing
//! time reads as 0, a missing tid as pid 0, a missing cpu as CPU 0).
//!
//! Payloads are the kernel's print format, decoded by the ftrace importer's decoders; kprobe
//! hits show raw addresses (`(ffffffff8d2a1230) start_pfn=0x100000`, returns
//! `(ffffffff.. <- ffffffff..)`), so the probed function comes from the event name
//! (`probe:memmap_init_zone_device`, `probe:memmap_init_zone_device__return`). Samples go
//! through the same [`crate::correlate::Correlator`] as ftrace text. Callchain lines
//! (`ffffffff81234567 func+0x12 ([kernel.kallsyms])`, user frames such as
//! `1ab70 _start+0x0 (/usr/lib/…/ld-linux-x86-64.so.2)`) and `#` header lines are skipped.

use crate::import::ftrace::{clip, parse_ts, FtraceParser};
use crate::import::lines::{Line, LineFormat};
use memmap_model::trace::TraceEvent;

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// `sys:event:` token.
fn is_event_token(tok: &str) -> bool {
    let Some(t) = tok.strip_suffix(':') else {
        return false;
    };
    match t.split_once(':') {
        Some((sys, ev)) => is_ident(sys) && is_ident(ev),
        None => false,
    }
}

/// Whitespace separated tokens of `s` as byte ranges, into `v` (reused: a fresh `Vec`
/// per line was ~5 % of an import of callchain-heavy `perf script -g` output).
fn tokens(s: &str, v: &mut Vec<(usize, usize)>) {
    let b = s.as_bytes();
    v.clear();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let st = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i > st {
            v.push((st, i));
        }
    }
}

fn parse_pid(tok: &str) -> Option<u32> {
    let tid = match tok.split_once('/') {
        Some((_, tid)) => tid,
        None => tok,
    };
    if tid.is_empty() || tid.len() > 10 || !tid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tid.parse().ok()
}

/// Streaming `perf script` parser; see the module documentation.
pub struct PerfScriptParser {
    file: String,
    p: FtraceParser,
    /// The tokens of the current line (reused).
    toks: Vec<(usize, usize)>,
}

impl PerfScriptParser {
    pub fn new(file: &str) -> Self {
        PerfScriptParser {
            file: file.to_string(),
            p: FtraceParser::new(file),
            toks: Vec::new(),
        }
    }
}

impl LineFormat for PerfScriptParser {
    fn line(&mut self, lineno: usize, raw: &str, out: &mut Vec<TraceEvent>) -> Line {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let t = line.trim_ascii();
        if t.is_empty() || t.starts_with('#') {
            return Line::Ignored;
        }
        tokens(line, &mut self.toks);
        let tok = |(a, b): (usize, usize)| &line[a..b];
        let toks = &self.toks;
        let Some(ev_idx) = toks.iter().position(|&r| is_event_token(tok(r))) else {
            // callchain lines (`perf record -g`): an address, a symbol and the object in
            // parentheses: "ffffffff8d2a1230 memmap_init_zone_device+0x0 ([kernel.kallsyms])",
            // user frames with short addresses: "1ab70 _start+0x0 (/usr/lib/.../ld-linux-x86-64.so.2)",
            // "7ffcc1e35b92 [unknown] ([unknown])".
            let first = toks.first().map(|&r| tok(r)).unwrap_or("");
            let hex_addr = !first.is_empty() && first.bytes().all(|b| b.is_ascii_hexdigit());
            if hex_addr && (first.len() >= 6 || (t.ends_with(')') && toks.len() >= 3)) {
                return Line::Ignored;
            }
            out.push(TraceEvent::ImportWarning {
                file: self.file.clone(),
                line: lineno,
                reason: format!(
                    "expected a perf script sample 'comm tid [cpu] seconds.micros: sys:event: payload', got {:?}",
                    clip(t)
                ),
            });
            return Line::Skipped;
        };
        let (ev_off, ev_end) = toks[ev_idx];
        let name = &line[ev_off..ev_end - 1];
        let payload = line[ev_end..].trim_ascii();
        let mut head = &toks[..ev_idx];
        // time: the last "secs.frac:" token; anything after it (period) is dropped
        let mut t_ns = 0;
        if let Some(ti) = head.iter().rposition(|&r| {
            tok(r)
                .strip_suffix(':')
                .is_some_and(|x| x.contains('.') && parse_ts(x).is_some())
        }) {
            let ts = tok(head[ti]);
            t_ns = parse_ts(&ts[..ts.len() - 1]).unwrap_or(0);
            head = &head[..ti];
        }
        let mut cpu = 0;
        if let Some(&last) = head.last() {
            if let Some(c) = tok(last)
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
            {
                cpu = c.parse().unwrap_or(0);
                head = &head[..head.len() - 1];
            }
        }
        let mut pid = 0;
        if let Some(&last) = head.last() {
            if let Some(p) = parse_pid(tok(last)) {
                pid = p;
                head = &head[..head.len() - 1];
            }
        }
        let task = match (head.first(), head.last()) {
            (Some(&(s, _)), Some(&(_, e))) => &line[s..e],
            _ => "",
        };
        let n0 = out.len();
        self.p
            .event(lineno, t_ns, name, task, pid, cpu, payload, out);
        let warned = out[n0..]
            .iter()
            .any(|e| matches!(e, TraceEvent::ImportWarning { line, .. } if *line == lineno));
        if warned {
            Line::Skipped
        } else {
            Line::Recognised
        }
    }

    fn finish(&mut self, out: &mut Vec<TraceEvent>) {
        self.p.finish(out);
    }
}

/// Imports `perf script` output; see the module documentation.
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    crate::import::lines::parse_text(text, &mut PerfScriptParser::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_f_variants() {
        let text = "\
# ========
           ndctl   583 [000]    27.065480: probe:memmap_init_zone_device: (ffffffff8d2a1230) start_pfn=0x100000 nr_pages=4190208
           ndctl   583 [000]    27.631965: probe:memmap_init_zone_device__return: (ffffffff8d2a1230 <- ffffffff8d123456)
  Web Content 11/12 [001] 31.596564: fs_dax:dax_pte_fault: dev 259:0 ino 0xc shared WRITE|USER address 0x7f0000001000 pgoff 0x1 
31.600000: fs_dax:dax_pte_fault_done: dev 259:0 ino 0xc shared WRITE|USER address 0x7f0000001000 pgoff 0x1 NOPAGE
garbage here
";
        let ev = import("p", text);
        assert_eq!(
            ev[0],
            TraceEvent::MemmapInit {
                t_ns: 27_065_480_000,
                dur_ns: Some(566_485_000),
                func: "memmap_init_zone_device".into(),
                start_pfn: 0x100000,
                nr_pages: 4190208,
                task: "ndctl".into(),
                pid: 583,
                cpu: 0
            },
            "{ev:?}"
        );
        assert!(
            matches!(ev[2], TraceEvent::ImportWarning { line: 6, .. }),
            "{ev:?}"
        );
        // the _done without tid does not pair with the fault of tid 12
        assert!(ev.iter().any(|e| matches!(
            e,
            TraceEvent::DaxFault {
                pid: 12,
                dur_ns: None,
                pgoff: 1,
                ..
            }
        )));
    }
}
