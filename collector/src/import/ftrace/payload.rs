//! Payload decoders (shared with perf_script): kprobe / kretprobe payloads, fs_dax
//! tracepoints as the kernel prints them, `key=value` payloads of other tracepoints.

use crate::correlate::{self, FAULT_FLAG_NAMES, VM_FAULT_NAMES};
use serde_json::Value;
use std::collections::BTreeMap;

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
pub(super) fn fast_dax_fault(payload: &str, pmd: bool) -> Option<(u64, u64, &str)> {
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
