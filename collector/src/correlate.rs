//! Decoded tracepoint / kprobe samples -> typed trace events.
//!
//! Shared by the ftrace and `perf script` importers and by the live perf_event_open
//! recorder: each gives a [`Sample`] (event name, task, fields as the tracefs `format`
//! file names them) and the [`Correlator`] pairs what belongs together:
//!
//! * `fs_dax` `dax_pte_fault` / `dax_pmd_fault` with their `*_done` twin (same pid and
//!   kind) -> `DaxFault` with the fault latency and the result decoded to the kernel's
//!   `VM_FAULT_*` names (`NOPAGE`, `FALLBACK`, `NEEDDSYNC|...`);
//! * kprobe entry on a memmap function (`memmap_init_zone_device start_pfn nr_pages`,
//!   `arch_add_memory start size` in bytes, `online_pages pfn nr_pages`, ...) with its
//!   kretprobe (`<name>_ret`, `<name>__return`, or a sample carrying `__probe_func`) ->
//!   `MemmapInit` with the duration;
//! * `tracing_mark_write` / `print` -> `Mark`;
//! * any other kprobe -> `Kprobe`, anything else -> `Tracepoint`.
//!
//! Kprobe samples are recognised by the fields the kernel gives them (`__probe_ip` on
//! entries, `__probe_func` / `__probe_ret_ip` on returns), by a `_ret` / `__return`
//! suffix, or by the name of a known memmap function. Field values may be JSON numbers
//! or strings (`"0x100000"`, `"4190208"`); both are accepted.
//!
//! Memory stays bounded on endless streams: one pending fault per (pid, kind) and one
//! pending entry per (pid, function) -- a second start before the end means the end was
//! lost, and the first start is emitted at once with `dur_ns: None`.

use memmap_model::trace::TraceEvent;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A fast hasher for the small integer / short string keys of the pending maps (FxHash
/// style; the keys are not attacker-chosen in a way that matters for a trace importer).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// One decoded sample (a tracepoint or kprobe hit).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample<'a> {
    /// Nanoseconds of the traced host's trace clock.
    pub t_ns: u64,
    /// `"fs_dax:dax_pmd_fault"`, `"dax_pmd_fault"`, a kprobe event name
    /// (`"memmap_init_zone_device"`, `"kpz/memmap_init_zone_device_ret"`,
    /// `"probe:memmap_init_zone_device__return"`), ...
    pub name: &'a str,
    pub task: &'a str,
    pub pid: u32,
    pub cpu: u32,
    pub fields: BTreeMap<String, Value>,
}

/// Page size used to turn byte ranges (`arch_add_memory start size`) into pfns.
pub const PAGE_SHIFT: u32 = 12;

/// The kernel's `VM_FAULT_RESULT_TRACE` table (include/linux/mm_types.h), in print order.
pub const VM_FAULT_NAMES: &[(u64, &str)] = &[
    (0x000001, "OOM"),
    (0x000002, "SIGBUS"),
    (0x000004, "MAJOR"),
    (0x000008, "WRITE"),
    (0x000010, "HWPOISON"),
    (0x000020, "HWPOISON_LARGE"),
    (0x000040, "SIGSEGV"),
    (0x000100, "NOPAGE"),
    (0x000200, "LOCKED"),
    (0x000400, "RETRY"),
    (0x000800, "FALLBACK"),
    (0x001000, "DONE_COW"),
    (0x002000, "NEEDDSYNC"),
    (0x004000, "COMPLETED"),
];

/// The kernel's `FAULT_FLAG_TRACE` table (include/linux/mm_types.h).
pub const FAULT_FLAG_NAMES: &[(u64, &str)] = &[
    (0x001, "WRITE"),
    (0x002, "MKWRITE"),
    (0x004, "ALLOW_RETRY"),
    (0x008, "RETRY_NOWAIT"),
    (0x010, "KILLABLE"),
    (0x020, "TRIED"),
    (0x040, "USER"),
    (0x080, "REMOTE"),
    (0x100, "INSTRUCTION"),
    (0x200, "INTERRUPTIBLE"),
];

/// `__print_flags` rendering: known names joined by `|`, an unknown remainder as hex,
/// nothing for 0 (the kernel prints an empty string then).
pub fn flags_to_names(v: u64, table: &[(u64, &str)]) -> String {
    let mut s = String::new();
    let mut rest = v;
    for &(bit, name) in table {
        if rest & bit == bit && bit != 0 {
            if !s.is_empty() {
                s.push('|');
            }
            s.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        if !s.is_empty() {
            s.push('|');
        }
        s.push_str(&format!("{rest:#x}"));
    }
    s
}

/// Inverse of [`flags_to_names`]: `"WRITE|USER|0x800"` -> bits. `None` when a part is
/// neither a known name nor a number.
pub fn names_to_flags(s: &str, table: &[(u64, &str)]) -> Option<u64> {
    let mut v = 0u64;
    for part in s.split('|').filter(|p| !p.is_empty()) {
        if let Some(&(bit, _)) = table.iter().find(|(_, n)| *n == part) {
            v |= bit;
        } else {
            v |= parse_u64(part)?;
        }
    }
    Some(v)
}

/// `"0x1f"`, `"31"`, `"0X1F"` -> 31. No sign, no overflow (None instead).
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() {
            return None;
        }
        u64::from_str_radix(h, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// A field as an unsigned number: JSON number (non-negative integer) or a numeric string.
pub fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_i64().and_then(|i| u64::try_from(i).ok())),
        Value::String(s) => parse_u64(s),
        _ => None,
    }
}

/// A raw address as perf prints it (`ffffffff8d2a1230`, `0x...`), or nothing: no symbol.
fn is_address(s: &str) -> bool {
    let s = s.trim();
    let h = s.strip_prefix("0x").unwrap_or(s);
    h.is_empty() || h.bytes().all(|b| b.is_ascii_hexdigit())
}

fn field_u64(f: &BTreeMap<String, Value>, k: &str) -> Option<u64> {
    f.get(k).and_then(value_u64)
}

fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The event name without its system / group (`fs_dax:dax_pmd_fault` -> `dax_pmd_fault`,
/// `kpz/memmap_init_zone_device` -> `memmap_init_zone_device`).
pub fn base_name(name: &str) -> &str {
    // byte loops: `rsplit` (memrchr) cost ~6 % of a perf-script import on names this short
    fn after(n: &str, c: u8) -> &str {
        &n[n.bytes().rposition(|b| b == c).map_or(0, |i| i + 1)..]
    }
    after(after(name, b':'), b'/')
}

/// Where a memmap function's pfn range is in its kprobe arguments.
enum Range {
    /// start pfn field, page count field
    Pfns(&'static str, &'static str),
    /// start byte address field, byte size field
    Bytes(&'static str, &'static str),
}

/// Memmap / hotplug functions whose kprobe gives a pfn range (the lead's recorder and the
/// testbed reference name their arguments like this).
fn memmap_range(func: &str) -> Option<&'static [Range]> {
    use Range::*;
    Some(match func {
        "memmap_init_zone_device" | "move_pfn_range_to_zone" => {
            &[Pfns("start_pfn", "nr_pages"), Pfns("pfn", "nr_pages")]
        }
        "arch_add_memory" | "add_memory" | "__add_memory" | "add_memory_resource" => {
            &[Bytes("start", "size"), Pfns("start_pfn", "nr_pages")]
        }
        "arch_remove_memory" | "remove_memory" => &[Bytes("start", "size")],
        "online_pages"
        | "offline_pages"
        | "__add_pages"
        | "__remove_pages"
        | "sparse_add_section"
        | "sparse_remove_section"
        | "__populate_section_memmap"
        | "populate_section_memmap"
        | "mhp_init_memmap_on_memory" => &[Pfns("pfn", "nr_pages"), Pfns("start_pfn", "nr_pages")],
        "memmap_init_range" | "memmap_init_zone" => {
            &[Pfns("start_pfn", "size"), Pfns("start_pfn", "nr_pages")]
        }
        _ => return None,
    })
}

fn pfn_range(func: &str, f: &BTreeMap<String, Value>) -> Option<(u64, u64)> {
    for r in memmap_range(func)? {
        match *r {
            Range::Pfns(s, n) => {
                if let (Some(s), Some(n)) = (field_u64(f, s), field_u64(f, n)) {
                    return Some((s, n));
                }
            }
            Range::Bytes(s, n) => {
                if let (Some(s), Some(n)) = (field_u64(f, s), field_u64(f, n)) {
                    return Some((s >> PAGE_SHIFT, n >> PAGE_SHIFT));
                }
            }
        }
    }
    None
}

#[derive(Clone, Debug)]
struct PendingFault {
    t_ns: u64,
    cpu: u32,
    address: u64,
    pgoff: u64,
}

#[derive(Clone, Debug)]
struct PendingInit {
    t_ns: u64,
    start_pfn: u64,
    nr_pages: u64,
    task: String,
    cpu: u32,
}

/// Pairs starts with their ends; see the module documentation.
#[derive(Debug, Default)]
pub struct Correlator {
    faults: FastMap<(u32, bool), PendingFault>,
    inits: FastMap<(u32, String), PendingInit>,
    /// Order of pending keys, so `finish` emits in arrival order.
    seq: u64,
    fault_seq: FastMap<(u32, bool), u64>,
    init_seq: FastMap<(u32, String), u64>,
}

/// What kind of fs_dax fault event a name is: `Some((pmd, done))`.
pub fn dax_fault_kind(base: &str) -> Option<(bool, bool)> {
    match base {
        "dax_pte_fault" => Some((false, false)),
        "dax_pte_fault_done" => Some((false, true)),
        "dax_pmd_fault" => Some((true, false)),
        "dax_pmd_fault_done" => Some((true, true)),
        _ => None,
    }
}

impl Correlator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Typed fast path for fs_dax fault samples (the ftrace importer calls it without
    /// building a field map). `result` is the kernel's rendering (`"NOPAGE"`, empty for 0).
    #[allow(clippy::too_many_arguments)]
    pub fn push_dax_fault(
        &mut self,
        t_ns: u64,
        pmd: bool,
        done: bool,
        pid: u32,
        cpu: u32,
        address: u64,
        pgoff: u64,
        result: &str,
        out: &mut Vec<TraceEvent>,
    ) {
        let key = (pid, pmd);
        if !done {
            let p = PendingFault {
                t_ns,
                cpu,
                address,
                pgoff,
            };
            if let Some(old) = self.faults.insert(key, p) {
                // the `_done` of the previous fault was lost
                out.push(TraceEvent::DaxFault {
                    t_ns: old.t_ns,
                    dur_ns: None,
                    pmd,
                    pid,
                    cpu: old.cpu,
                    address: old.address,
                    pgoff: old.pgoff,
                    result: String::new(),
                });
            }
            self.seq += 1;
            self.fault_seq.insert(key, self.seq);
            return;
        }
        match self.faults.remove(&key) {
            Some(p) => {
                self.fault_seq.remove(&key);
                out.push(TraceEvent::DaxFault {
                    t_ns: p.t_ns,
                    dur_ns: Some(t_ns.saturating_sub(p.t_ns)),
                    pmd,
                    pid,
                    cpu: p.cpu,
                    address: p.address,
                    pgoff: p.pgoff,
                    result: result.to_string(),
                })
            }
            None => out.push(TraceEvent::DaxFault {
                t_ns,
                dur_ns: None,
                pmd,
                pid,
                cpu,
                address,
                pgoff,
                result: result.to_string(),
            }),
        }
    }

    /// Emits the typed events for one sample.
    pub fn push(&mut self, s: Sample, out: &mut Vec<TraceEvent>) {
        let base = base_name(s.name);
        if let Some((pmd, done)) = dax_fault_kind(base) {
            let result = match s.fields.get("result") {
                None => String::new(),
                Some(v) => match value_u64(v) {
                    Some(code) => flags_to_names(code, VM_FAULT_NAMES),
                    None => match v {
                        Value::String(t) => t.clone(),
                        // a negative int: print its bits like the kernel's %x of an int
                        Value::Number(n) => n
                            .as_i64()
                            .map(|i| flags_to_names(i as u32 as u64, VM_FAULT_NAMES))
                            .unwrap_or_default(),
                        _ => String::new(),
                    },
                },
            };
            let address = field_u64(&s.fields, "address").unwrap_or(0);
            let pgoff = field_u64(&s.fields, "pgoff").unwrap_or(0);
            self.push_dax_fault(
                s.t_ns, pmd, done, s.pid, s.cpu, address, pgoff, &result, out,
            );
            return;
        }
        if base == "tracing_mark_write" || base == "print" || base == "bputs" || base == "bprint" {
            let text = ["buf", "text", "str", "fmt"]
                .iter()
                .find_map(|k| s.fields.get(*k))
                .map(value_string)
                .unwrap_or_default();
            out.push(TraceEvent::Mark {
                t_ns: s.t_ns,
                text: text.trim_end_matches('\n').to_string(),
            });
            return;
        }

        // kprobes
        let ret_func = s.fields.get("__probe_func").and_then(|v| match v {
            Value::String(f) if !is_address(f) => {
                Some(f.split('+').next().unwrap_or(f).to_string())
            }
            _ => None,
        });
        let stripped = base
            .strip_suffix("__return")
            .or_else(|| base.strip_suffix("_ret"));
        let is_ret = ret_func.is_some()
            || s.fields.contains_key("__probe_ret_ip")
            || (stripped.is_some() && !s.fields.contains_key("__probe_ip"));
        let is_entry =
            !is_ret && (s.fields.contains_key("__probe_ip") || memmap_range(base).is_some());
        if is_ret {
            let func = ret_func.unwrap_or_else(|| stripped.unwrap_or(base).to_string());
            let key = (s.pid, func);
            if let Some(p) = self.inits.remove(&key) {
                self.init_seq.remove(&key);
                out.push(TraceEvent::MemmapInit {
                    t_ns: p.t_ns,
                    dur_ns: Some(s.t_ns.saturating_sub(p.t_ns)),
                    func: key.1,
                    start_pfn: p.start_pfn,
                    nr_pages: p.nr_pages,
                    task: p.task,
                    pid: s.pid,
                    cpu: p.cpu,
                });
            } else {
                out.push(kprobe_event(&s, key.1, true));
            }
            return;
        }
        if is_entry {
            // the probed function: from a symbolic __probe_ip ("func+0x0/0x270"), else the name
            let func = match s.fields.get("__probe_ip") {
                Some(Value::String(ip)) if !is_address(ip) => {
                    ip.split('+').next().unwrap_or(ip).to_string()
                }
                _ => base.to_string(),
            };
            let func = if memmap_range(&func).is_some() || memmap_range(base).is_none() {
                func
            } else {
                base.to_string()
            };
            if let Some((start_pfn, nr_pages)) = pfn_range(&func, &s.fields) {
                let key = (s.pid, func);
                let p = PendingInit {
                    t_ns: s.t_ns,
                    start_pfn,
                    nr_pages,
                    task: s.task.to_string(),
                    cpu: s.cpu,
                };
                if let Some(old) = self.inits.insert(key.clone(), p) {
                    // the return of the previous call was not traced (no kretprobe, or lost)
                    out.push(TraceEvent::MemmapInit {
                        t_ns: old.t_ns,
                        dur_ns: None,
                        func: key.1.clone(),
                        start_pfn: old.start_pfn,
                        nr_pages: old.nr_pages,
                        task: old.task,
                        pid: s.pid,
                        cpu: old.cpu,
                    });
                }
                self.seq += 1;
                self.init_seq.insert(key, self.seq);
            } else {
                out.push(kprobe_event(&s, func, false));
            }
            return;
        }
        out.push(TraceEvent::Tracepoint {
            t_ns: s.t_ns,
            name: s.name.to_string(),
            task: s.task.to_string(),
            pid: s.pid,
            cpu: s.cpu,
            fields: s.fields,
        });
    }

    /// End of input: unmatched starts become events with `dur_ns: None`, in arrival order.
    pub fn finish(&mut self, out: &mut Vec<TraceEvent>) {
        let mut pending: Vec<(u64, TraceEvent)> = Vec::new();
        for (key, p) in self.faults.drain() {
            let seq = self.fault_seq.get(&key).copied().unwrap_or(0);
            pending.push((
                seq,
                TraceEvent::DaxFault {
                    t_ns: p.t_ns,
                    dur_ns: None,
                    pmd: key.1,
                    pid: key.0,
                    cpu: p.cpu,
                    address: p.address,
                    pgoff: p.pgoff,
                    result: String::new(),
                },
            ));
        }
        for (key, p) in self.inits.drain() {
            let seq = self.init_seq.get(&key).copied().unwrap_or(0);
            pending.push((
                seq,
                TraceEvent::MemmapInit {
                    t_ns: p.t_ns,
                    dur_ns: None,
                    func: key.1,
                    start_pfn: p.start_pfn,
                    nr_pages: p.nr_pages,
                    task: p.task,
                    pid: key.0,
                    cpu: p.cpu,
                },
            ));
        }
        self.fault_seq.clear();
        self.init_seq.clear();
        pending.sort_by_key(|(seq, _)| *seq);
        out.extend(pending.into_iter().map(|(_, e)| e));
    }
}

fn kprobe_event(s: &Sample, func: String, ret: bool) -> TraceEvent {
    let args = s
        .fields
        .iter()
        .filter(|(k, _)| k.as_str() != "__probe_ip" && k.as_str() != "__probe_func")
        .map(|(k, v)| (k.clone(), value_string(v)))
        .collect();
    TraceEvent::Kprobe {
        t_ns: s.t_ns,
        probe: s.name.to_string(),
        func,
        ret,
        task: s.task.to_string(),
        pid: s.pid,
        cpu: s.cpu,
        args,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample<'a>(t: u64, name: &'a str, pid: u32, f: Value) -> Sample<'a> {
        Sample {
            t_ns: t,
            name,
            task: "ndctl",
            pid,
            cpu: 1,
            fields: f
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn pairs_faults_and_decodes_results() {
        let mut c = Correlator::new();
        let mut out = Vec::new();
        c.push(
            sample(
                100,
                "fs_dax:dax_pmd_fault",
                7,
                json!({"address": "0x7f0000200000", "pgoff": 512, "result": 0}),
            ),
            &mut out,
        );
        assert!(out.is_empty());
        c.push(
            sample(
                350,
                "fs_dax:dax_pmd_fault_done",
                7,
                json!({"address": 1, "pgoff": 512, "result": 0x800}),
            ),
            &mut out,
        );
        c.push(
            sample(400, "dax_pte_fault", 7, json!({"pgoff": 3})),
            &mut out,
        );
        c.push(
            sample(450, "dax_pte_fault_done", 7, json!({"result": "0x2100"})),
            &mut out,
        );
        c.push(
            sample(500, "dax_pte_fault", 8, json!({"pgoff": 4})),
            &mut out,
        );
        c.finish(&mut out);
        assert_eq!(
            out[0],
            TraceEvent::DaxFault {
                t_ns: 100,
                dur_ns: Some(250),
                pmd: true,
                pid: 7,
                cpu: 1,
                address: 0x7f0000200000,
                pgoff: 512,
                result: "FALLBACK".into()
            }
        );
        let TraceEvent::DaxFault { result, .. } = &out[1] else {
            panic!()
        };
        assert_eq!(result, "NOPAGE|NEEDDSYNC");
        assert!(matches!(
            out[2],
            TraceEvent::DaxFault {
                dur_ns: None,
                pgoff: 4,
                ..
            }
        ));
    }

    #[test]
    fn memmap_kprobes_pair_and_convert_bytes() {
        let mut c = Correlator::new();
        let mut out = Vec::new();
        c.push(
            sample(1_000, "memmap_init_zone_device", 5, json!({"__probe_ip": "memmap_init_zone_device+0x0/0x270", "start_pfn": "0x100000", "nr_pages": 4190208})),
            &mut out,
        );
        c.push(
            sample(
                3_000,
                "kpz/arch_add_memory",
                5,
                json!({"nid": 0, "start": "0x100000000", "size": "0x100000000"}),
            ),
            &mut out,
        );
        c.push(
            sample(9_000, "memmap_init_zone_device_ret", 5, json!({"__probe_func": "memmap_init_zone_device", "__probe_ret_ip": "memremap_pages+0x386/0x630"})),
            &mut out,
        );
        c.push(
            sample(9_500, "pmem_attach_disk_ret", 5, json!({"ret": "0"})),
            &mut out,
        );
        c.push(
            sample(9_600, "tracing_mark_write", 1, json!({"buf": "END x\n"})),
            &mut out,
        );
        c.finish(&mut out);
        assert_eq!(
            out[0],
            TraceEvent::MemmapInit {
                t_ns: 1_000,
                dur_ns: Some(8_000),
                func: "memmap_init_zone_device".into(),
                start_pfn: 0x100000,
                nr_pages: 4190208,
                task: "ndctl".into(),
                pid: 5,
                cpu: 1
            }
        );
        assert!(
            matches!(&out[1], TraceEvent::Kprobe { func, ret: true, .. } if func == "pmem_attach_disk")
        );
        assert!(matches!(&out[2], TraceEvent::Mark { text, .. } if text == "END x"));
        assert!(matches!(
            &out[3],
            TraceEvent::MemmapInit {
                start_pfn: 0x100000,
                nr_pages: 0x100000,
                dur_ns: None,
                ..
            }
        ));
    }

    #[test]
    fn flag_tables_round_trip() {
        let v = names_to_flags(
            "WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE|0x800",
            FAULT_FLAG_NAMES,
        )
        .unwrap();
        assert_eq!(v, 0x1 | 0x4 | 0x10 | 0x40 | 0x200 | 0x800);
        assert_eq!(
            flags_to_names(v, FAULT_FLAG_NAMES),
            "WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE|0x800"
        );
        assert_eq!(flags_to_names(0, VM_FAULT_NAMES), "");
        assert_eq!(names_to_flags("BOGUS", VM_FAULT_NAMES), None);
    }
}
