//! Tracepoints (and the user page-fault software event) through perf_event_open
//! (perf-event2): one ring buffer per CPU, every event of that CPU redirected into it
//! (PERF_EVENT_IOC_SET_OUTPUT), tracepoint samples with the raw payload decoded from the
//! tracefs `format` files.
//!
//! Records are parsed by hand rather than with perf-event-data's parser: the sample
//! layouts are fixed by the sample_types chosen here ([`SAMPLE_FLAGS`],
//! [`PAGE_FAULT_SAMPLE_FLAGS`]) and the generic parser allocates per record.

use anyhow::{anyhow, bail, Context, Result};
use perf_event2::events::{Software, Tracepoint};
use perf_event2::{Builder, Clock, SampleFlag, Sampler};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

/// One field of a tracepoint's binary layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
    pub kind: FieldKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldKind {
    Int,
    /// `char comm[16]`: NUL-terminated in place.
    CharArray,
    /// `__data_loc char[] name`: u32 with offset (low 16 bits) and length (high 16).
    DataLocString,
    /// Anything else (arrays of ints, __rel_loc, ...): hex bytes.
    Bytes,
}

/// A tracepoint's `format` file.
#[derive(Clone, Debug)]
pub struct Format {
    /// "system:event"
    pub name: String,
    pub id: u64,
    pub fields: Vec<Field>,
}

/// Parse a tracefs `events/<sys>/<event>/format` file.
pub fn parse_format(system: &str, text: &str) -> Result<Format> {
    let mut name = None;
    let mut id = None;
    let mut fields = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("ID:") {
            id = Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|e| anyhow!("line {}: ID {v:?}: {e}", i + 1))?,
            );
        } else if let Some(rest) = l.strip_prefix("field:") {
            // "unsigned long vm_start;\toffset:8;\tsize:8;\tsigned:0;"
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next().unwrap_or("");
            let mut offset = None;
            let mut size = None;
            let mut signed = false;
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("signed:") {
                    signed = v == "1";
                }
            }
            let (Some(offset), Some(size)) = (offset, size) else {
                bail!("line {}: expected offset:N; size:N; in {l:?}", i + 1);
            };
            let last = decl.split_whitespace().last().unwrap_or("");
            let fname = last.split('[').next().unwrap_or(last).to_string();
            let kind = if decl.starts_with("__data_loc") && decl.contains("char") {
                FieldKind::DataLocString
            } else if decl.contains('[') {
                if decl.starts_with("char") || decl.contains(" char ") {
                    FieldKind::CharArray
                } else {
                    FieldKind::Bytes
                }
            } else if matches!(size, 1 | 2 | 4 | 8) {
                FieldKind::Int
            } else {
                FieldKind::Bytes
            };
            fields.push(Field {
                name: fname,
                offset,
                size,
                signed,
                kind,
            });
        }
    }
    let name = name.ok_or_else(|| anyhow!("no name: line"))?;
    Ok(Format {
        name: format!("{system}:{name}"),
        id: id.ok_or_else(|| anyhow!("no ID: line"))?,
        fields,
    })
}

impl Format {
    pub fn read(tracefs: &Path, system: &str, event: &str) -> Result<Format> {
        let p = tracefs
            .join("events")
            .join(system)
            .join(event)
            .join("format");
        let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
        parse_format(system, &text).with_context(|| format!("{}", p.display()))
    }

    /// Decode a raw payload into named values (common_* fields left out).
    pub fn decode(&self, raw: &[u8]) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        for f in &self.fields {
            if f.name.starts_with("common_") {
                continue;
            }
            let Some(b) = raw.get(f.offset..f.offset + f.size) else {
                continue;
            };
            let v = match f.kind {
                FieldKind::Int => {
                    let mut x = [0u8; 8];
                    x[..f.size].copy_from_slice(b);
                    let u = u64::from_le_bytes(x);
                    if f.signed {
                        let shift = 64 - 8 * f.size as u32;
                        Value::from(((u << shift) as i64) >> shift)
                    } else {
                        Value::from(u)
                    }
                }
                FieldKind::CharArray => Value::from(cstr(b)),
                FieldKind::DataLocString => {
                    let loc = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
                    let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
                    Value::from(raw.get(off..off + len).map(cstr).unwrap_or_default())
                }
                FieldKind::Bytes => {
                    Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                }
            };
            m.insert(f.name.clone(), v);
        }
        m
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A decoded sample.
pub struct RawSample {
    pub format: Arc<Format>,
    pub pid: u32,
    pub tid: u32,
    pub t_ns: u64,
    pub cpu: u32,
    pub fields: BTreeMap<String, Value>,
}

/// What one perf event counts.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    Tracepoint {
        system: String,
        event: String,
    },
    /// PERF_COUNT_SW_PAGE_FAULTS of user mode only (perf's `page-faults:u`): counted in
    /// the x86 fault handler where `exceptions:page_fault_user` fires, but without
    /// building a tracepoint record per fault: cheaper when sampling every Nth (1.10
    /// against 1.15 of the workload alone at N = 16, docs/benchmarks.md).
    /// Samples carry the fault `address` and the faulting `ip`; no `error_code`.
    UserPageFaults,
}

/// The trace name of [`Probe::UserPageFaults`] samples: the perf PMU (`software`, as in
/// /sys/bus/event_source/devices) and perf's event name, like a tracepoint's system:event.
pub const USER_PAGE_FAULTS: &str = "software:page-faults";

impl Probe {
    pub fn tracepoint(system: &str, event: &str) -> Probe {
        Probe::Tracepoint {
            system: system.into(),
            event: event.into(),
        }
    }

    /// "system:event", as in the trace.
    pub fn name(&self) -> String {
        match self {
            Probe::Tracepoint { system, event } => format!("{system}:{event}"),
            Probe::UserPageFaults => USER_PAGE_FAULTS.into(),
        }
    }
}

/// How one event is sampled.
pub struct Want {
    pub probe: Probe,
    /// Sample every Nth hit (1 = every hit).
    pub period: u64,
    /// Follow only this process tree (inherit) instead of the whole system.
    pub task: Option<u32>,
}

struct CpuBuffer {
    sampler: Sampler,
    /// Counters redirected into `sampler`'s ring buffer; kept open.
    _others: Vec<perf_event2::Counter>,
}

pub struct TracepointSampler {
    buffers: Vec<CpuBuffer>,
    by_id: HashMap<u64, Decoder>,
    pub lost: u64,
    scratch: Vec<u8>,
    /// Samples read but not yet delivered, and where the previous pass began: see
    /// [`TracepointSampler::drain`].
    held: Vec<RawSample>,
    prev_pass_start_ns: u64,
}

pub const SAMPLE_FLAGS: u64 = (1 << 16) | (1 << 1) | (1 << 2) | (1 << 7) | (1 << 10); // IDENTIFIER TID TIME CPU RAW
pub const PAGE_FAULT_SAMPLE_FLAGS: u64 =
    (1 << 16) | (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 7); // IDENTIFIER IP TID TIME ADDR CPU

/// Per source: Ok(what was set up) or Err(why not).
pub type SourceStatus = (String, Result<String, String>);

/// Open the tracepoints on every online CPU. Returns the sampler and, per wanted
/// tracepoint, Ok(description) or Err(reason) for the trace's source list.
pub fn open(
    tracefs: &Path,
    wants: &[Want],
    cpus: &[usize],
    ring_pages: usize,
) -> (Option<TracepointSampler>, Vec<SourceStatus>) {
    let mut status = Vec::new();
    let mut formats = Vec::new();
    for w in wants {
        let label = format!("perf:{}", w.probe.name());
        let read = match &w.probe {
            Probe::Tracepoint { system, event } => Format::read(tracefs, system, event),
            // No payload: the sample's ADDR and IP are its fields.
            Probe::UserPageFaults => Ok(Format {
                name: USER_PAGE_FAULTS.into(),
                id: 0,
                fields: Vec::new(),
            }),
        };
        match read {
            Ok(f) => formats.push((Arc::new(f), w)),
            Err(e) => {
                let mut why = format!("{e:#}");
                if why.contains("Permission denied") {
                    why.push_str(
                        " (tracefs event formats are root-only: run as root, or mount tracefs with gid=<tracing group> and give CAP_PERFMON)",
                    );
                }
                status.push((label, Err(why)))
            }
        }
    }
    if formats.is_empty() {
        return (None, status);
    }
    let mut buffers: Vec<CpuBuffer> = Vec::new();
    let mut by_id = HashMap::new();
    let mut opened: HashMap<String, usize> = HashMap::new();
    let mut failed: HashMap<String, String> = HashMap::new();
    for &cpu in cpus {
        let mut leader: Option<Sampler> = None;
        let mut others = Vec::new();
        for (f, w) in &formats {
            let mut b = match w.probe {
                Probe::Tracepoint { .. } => {
                    let mut b = Builder::new(Tracepoint::with_id(f.id));
                    // Tracepoints fire in kernel context: perf-event2 excludes the kernel
                    // by default, which would drop every sample but syscall ones.
                    b.sample(SampleFlag::from_bits_retain(SAMPLE_FLAGS))
                        .exclude_kernel(false)
                        .exclude_hv(false);
                    b
                }
                Probe::UserPageFaults => {
                    let mut b = Builder::new(Software::PAGE_FAULTS);
                    // exclude_kernel drops faults taken in kernel mode (copy_to_user...):
                    // user faults only, as exceptions:page_fault_user.
                    b.sample(SampleFlag::from_bits_retain(PAGE_FAULT_SAMPLE_FLAGS))
                        .exclude_kernel(true);
                    b
                }
            };
            b.one_cpu(cpu)
                .sample_period(w.period.max(1))
                .clockid(Clock::MONOTONIC)
                .wakeup_watermark(ring_pages * 4096 / 4)
                .enabled(false);
            match w.task {
                Some(pid) => b.observe_pid(pid as i32).inherit(true),
                None => b.any_pid(),
            };
            let c = match b.build() {
                Ok(c) => c,
                Err(e) => {
                    failed.entry(f.name.clone()).or_insert_with(|| explain(&e));
                    continue;
                }
            };
            let decoder = match w.probe {
                Probe::Tracepoint { .. } => Decoder::Tracepoint(f.clone()),
                Probe::UserPageFaults => Decoder::UserPageFault(f.clone()),
            };
            by_id.insert(c.id(), decoder);
            match &leader {
                None => match c.sampled(ring_pages * 4096) {
                    Ok(s) => leader = Some(s),
                    Err(e) => {
                        failed
                            .entry(f.name.clone())
                            .or_insert_with(|| format!("mmap ring buffer: {}", explain(&e)));
                        continue;
                    }
                },
                Some(l) => {
                    // SAFETY: PERF_EVENT_IOC_SET_OUTPUT(0x2405) with two valid perf fds.
                    let r = unsafe { libc::ioctl(c.as_raw_fd(), 0x2405, l.as_raw_fd()) };
                    if r != 0 {
                        failed.entry(f.name.clone()).or_insert_with(|| {
                            format!("SET_OUTPUT: {}", std::io::Error::last_os_error())
                        });
                        continue;
                    }
                    others.push(c);
                }
            }
            *opened.entry(f.name.clone()).or_default() += 1;
        }
        if let Some(sampler) = leader {
            buffers.push(CpuBuffer {
                sampler,
                _others: others,
            });
        }
    }
    for (f, w) in &formats {
        let label = format!("perf:{}", f.name);
        match (opened.get(&f.name), failed.get(&f.name)) {
            (Some(n), None) => status.push((
                label,
                Ok(format!(
                    "{n} CPUs, every {} hit(s), {}",
                    w.period.max(1),
                    match w.task {
                        Some(p) => format!("process tree of pid {p}"),
                        None => "system-wide".into(),
                    }
                )),
            )),
            (Some(n), Some(e)) => {
                status.push((label, Ok(format!("{n} of {} CPUs ({e})", cpus.len()))))
            }
            (None, Some(e)) => status.push((label, Err(e.clone()))),
            (None, None) => status.push((label, Err("not opened".into()))),
        }
    }
    if buffers.is_empty() {
        return (None, status);
    }
    (
        Some(TracepointSampler {
            buffers,
            by_id,
            lost: 0,
            scratch: Vec::new(),
            held: Vec::new(),
            prev_pass_start_ns: 0,
        }),
        status,
    )
}

fn explain(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "{e}: needs root or CAP_PERFMON (kernel.perf_event_paranoid = {})",
            std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into())
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) => {
            format!("{e}: tracepoint or perf events not available")
        }
        Some(libc::EMFILE) => format!("{e}: too many open files (ulimit -n)"),
        _ => e.to_string(),
    }
}

impl TracepointSampler {
    pub fn enable(&mut self) -> Result<()> {
        for b in &mut self.buffers {
            // The leader's enable covers only itself; redirected counters are separate.
            b.sampler.enable()?;
            for c in &mut b._others {
                c.enable()?;
            }
        }
        Ok(())
    }

    pub fn disable(&mut self) {
        for b in &mut self.buffers {
            let _ = b.sampler.disable();
            for c in &mut b._others {
                let _ = c.disable();
            }
        }
    }

    pub fn fds(&self) -> Vec<i32> {
        self.buffers.iter().map(|b| b.sampler.as_raw_fd()).collect()
    }

    /// Drain every ring buffer and deliver the samples in time order; returns the number
    /// delivered. `final_pass` (after `disable`) delivers everything still held.
    ///
    /// Each CPU has its own ring, read one after the other, so a task that migrates
    /// between a `dax_pmd_fault` and its `_done` can have the `_done` read first, or even
    /// one pass earlier (its CPU was read before the fault's CPU had it). Like perf's
    /// ordered events with FINISHED_ROUND: a sample stamped before the previous pass began
    /// was in its ring by then, so it has been read by the end of this pass; only those are
    /// delivered, sorted; later ones wait for the next pass (about one poll interval).
    pub fn drain(&mut self, final_pass: bool, mut sink: impl FnMut(RawSample)) -> usize {
        let pass_start_ns = mono_ns();
        for b in &mut self.buffers {
            while let Some(rec) = b.sampler.next_record() {
                let ty = rec.ty();
                self.scratch.clear();
                for part in rec.data() {
                    self.scratch.extend_from_slice(part);
                }
                drop(rec);
                match ty {
                    // PERF_RECORD_LOST: u64 id, u64 lost
                    2 if self.scratch.len() >= 16 => {
                        self.lost += u64::from_le_bytes(self.scratch[8..16].try_into().unwrap())
                    }
                    // PERF_RECORD_SAMPLE
                    9 => {
                        if let Some(s) = parse_sample(&self.scratch, &self.by_id) {
                            self.held.push(s);
                        }
                    }
                    _ => {}
                }
            }
        }
        let watermark = if final_pass {
            u64::MAX
        } else {
            self.prev_pass_start_ns
        };
        self.prev_pass_start_ns = pass_start_ns;
        release_before(&mut self.held, watermark, |s| s.t_ns, &mut sink)
    }
}

/// Delivers, in time order, the items stamped before `watermark` and keeps the rest.
/// Stable: equal stamps keep their read order (one ring's order for one CPU).
fn release_before<T>(
    held: &mut Vec<T>,
    watermark: u64,
    t_ns: impl Fn(&T) -> u64,
    sink: &mut impl FnMut(T),
) -> usize {
    held.sort_by_key(&t_ns);
    let n = held.partition_point(|s| t_ns(s) < watermark);
    for s in held.drain(..n) {
        sink(s);
    }
    n
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How the samples of one event id are laid out and named.
enum Decoder {
    /// [`SAMPLE_FLAGS`]: id, pid, tid, time, cpu, res, raw size, raw.
    Tracepoint(Arc<Format>),
    /// [`PAGE_FAULT_SAMPLE_FLAGS`]: id, ip, pid, tid, time, addr, cpu, res.
    UserPageFault(Arc<Format>),
}

fn parse_sample(b: &[u8], by_id: &HashMap<u64, Decoder>) -> Option<RawSample> {
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
    };
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
    };
    let id = u64_at(0)?;
    let (format, pid, tid, t_ns, cpu, fields) = match by_id.get(&id)? {
        Decoder::Tracepoint(format) => {
            let size = u32_at(32)? as usize;
            let raw = b.get(36..36 + size)?;
            let fields = format.decode(raw);
            (
                format,
                u32_at(8)?,
                u32_at(12)?,
                u64_at(16)?,
                u32_at(24)?,
                fields,
            )
        }
        Decoder::UserPageFault(format) => {
            let ip = u64_at(8)?;
            let address = u64_at(32)?;
            let fields = BTreeMap::from([
                ("address".to_string(), Value::from(address)),
                ("ip".to_string(), Value::from(ip)),
            ]);
            (
                format,
                u32_at(16)?,
                u32_at(20)?,
                u64_at(24)?,
                u32_at(40)?,
                fields,
            )
        }
    };
    let format = format.clone();
    Some(RawSample {
        format,
        pid,
        tid,
        t_ns,
        cpu,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAX_PMD_FAULT: &str = "name: dax_pmd_fault
ID: 1490
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long ino;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned long vm_start;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long vm_end;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long vm_flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long address;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long pgoff;\toffset:48;\tsize:8;\tsigned:0;
\tfield:unsigned long max_pgoff;\toffset:56;\tsize:8;\tsigned:0;
\tfield:dev_t dev;\toffset:64;\tsize:4;\tsigned:0;
\tfield:unsigned int flags;\toffset:68;\tsize:4;\tsigned:0;
\tfield:int result;\toffset:72;\tsize:4;\tsigned:1;

print fmt: \"dev %d:%d ino %#lx %s %s address %#lx vm_start %#lx vm_end %#lx pgoff %#lx max_pgoff %#lx %s\", ...
";

    #[test]
    fn decodes_a_payload_by_the_format_file() {
        let f = parse_format("fs_dax", DAX_PMD_FAULT).unwrap();
        assert_eq!(
            (f.name.as_str(), f.id, f.fields.len()),
            ("fs_dax:dax_pmd_fault", 1490, 14)
        );
        let mut raw = vec![0u8; 76];
        raw[40..48].copy_from_slice(&0x7f00_0020_0000u64.to_le_bytes());
        raw[64..68].copy_from_slice(&((259u32 << 20) | 1).to_le_bytes());
        raw[72..76].copy_from_slice(&(-2i32).to_le_bytes());
        let m = f.decode(&raw);
        assert_eq!(m["address"], Value::from(0x7f00_0020_0000u64));
        assert_eq!(m["dev"], Value::from((259u64 << 20) | 1));
        assert_eq!(m["result"], Value::from(-2i64));
        assert!(!m.contains_key("common_pid"));
        // A short payload drops the fields it does not cover instead of panicking.
        assert_eq!(f.decode(&raw[..30]).len(), 2);
    }

    #[test]
    fn strings_in_place_and_data_loc() {
        let text = "name: sched_switch\nID: 7\nformat:\n\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:__data_loc char[] name;\toffset:24;\tsize:4;\tsigned:0;\n";
        let f = parse_format("sched", text).unwrap();
        let mut raw = vec![0u8; 40];
        raw[8..13].copy_from_slice(b"ndctl");
        raw[24..28].copy_from_slice(&((4u32 << 16) | 28).to_le_bytes());
        raw[28..32].copy_from_slice(b"pmem");
        let m = f.decode(&raw);
        assert_eq!(m["prev_comm"], Value::from("ndctl"));
        assert_eq!(m["name"], Value::from("pmem"));
        // Out-of-range data_loc gives an empty string.
        raw[24..28].copy_from_slice(&((400u32 << 16) | 28).to_le_bytes());
        assert_eq!(f.decode(&raw)["name"], Value::from(""));
    }

    #[test]
    fn bad_format_files_are_errors_not_panics() {
        assert!(parse_format("x", "").is_err());
        assert!(parse_format("x", "name: a\nID: zz\n").is_err());
        assert!(parse_format("x", "name: a\nID: 1\n\tfield:int a;\toffset:x;\n").is_err());
    }

    #[test]
    fn samples_a_real_tracepoint_on_this_kernel() {
        // Real perf_event_open on this host's kernel, when it allows it (root or
        // perf_event_paranoid <= -1 for system-wide tracepoints); otherwise the reason
        // must name the privilege.
        // Mount tracefs at its standard place if nobody did (as the collector does).
        let t = crate::tracefs::find()
            .or_else(|_| crate::tracefs::mount())
            .expect("tracefs mounted or mountable");
        let wants = [Want {
            probe: Probe::tracepoint("syscalls", "sys_enter_getppid"),
            period: 1,
            task: None,
        }];
        let (s, status) = open(&t, &wants, &[0], 8);
        let Some(mut s) = s else {
            let why = &status[0].1;
            assert!(
                why.as_ref().is_err_and(|e| e.contains("CAP_PERFMON")
                    || e.contains("No such file")
                    || e.contains("not available")),
                "{status:?}"
            );
            return;
        };
        s.enable().unwrap();
        // Pin ourselves to CPU 0 so the samples land in the buffer we opened.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        }
        for _ in 0..10 {
            unsafe { libc::getppid() };
        }
        s.disable();
        let me = std::process::id();
        let mut mine = 0;
        s.drain(true, |r| {
            if r.pid == me {
                mine += 1;
                assert_eq!(r.format.name, "syscalls:sys_enter_getppid");
                assert_eq!(r.cpu, 0);
            }
        });
        assert!(mine >= 10, "saw {mine} of 10 getppid samples");
    }

    #[test]
    fn samples_are_released_in_time_order_once_every_ring_was_read_past_them() {
        // Two rings read one after the other: pass 1 reads CPU 0 (empty) then CPU 1 (the
        // `_done` at 20); the fault at 10 on CPU 0 is only read in pass 2.
        let mut held = vec![20u64];
        let mut got = Vec::new();
        // pass 1 began at 15; nothing was released before it (watermark 0)
        assert_eq!(
            release_before(&mut held, 0, |t| *t, &mut |t| got.push(t)),
            0
        );
        held.push(10);
        held.push(30);
        // pass 2: the watermark is pass 1's start (25): 10 and 20, in order; 30 waits
        assert_eq!(
            release_before(&mut held, 25, |t| *t, &mut |t| got.push(t)),
            2
        );
        assert_eq!(got, [10, 20]);
        assert_eq!(held, [30]);
        assert_eq!(
            release_before(&mut held, u64::MAX, |t| *t, &mut |t| got.push(t)),
            1
        );
        assert_eq!(got, [10, 20, 30]);
    }

    #[test]
    fn a_task_hopping_between_cpus_is_delivered_in_time_order() {
        // Real rings: this thread issues getppid alternately on CPU 0 and CPU 1, so the
        // per-CPU rings hold interleaved halves. Delivery must be one time-ordered stream.
        let cpus = online_cpus_for_test();
        if cpus.len() < 2 {
            eprintln!("one CPU online: nothing can migrate");
            return;
        }
        let t = crate::tracefs::find()
            .or_else(|_| crate::tracefs::mount())
            .expect("tracefs mounted or mountable");
        let wants = [Want {
            probe: Probe::tracepoint("syscalls", "sys_enter_getppid"),
            period: 1,
            task: None,
        }];
        let (s, status) = open(&t, &wants, &cpus[..2], 8);
        let Some(mut s) = s else {
            let why = &status[0].1;
            assert!(why.is_err(), "{status:?}");
            return;
        };
        s.enable().unwrap();
        let me = unsafe { libc::gettid() } as u32;
        let mut seen: Vec<(u64, u32)> = Vec::new();
        let pin = |cpu: usize| unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        };
        for i in 0..40 {
            pin(cpus[i % 2]);
            unsafe { libc::getppid() };
            if i % 8 == 7 {
                s.drain(false, |r| {
                    if r.tid == me {
                        seen.push((r.t_ns, r.cpu))
                    }
                });
            }
        }
        s.disable();
        s.drain(true, |r| {
            if r.tid == me {
                seen.push((r.t_ns, r.cpu))
            }
        });
        assert_eq!(seen.len(), 40, "one sample per getppid: {seen:?}");
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "delivered out of time order: {seen:?}"
        );
        let hops = seen.windows(2).filter(|w| w[0].1 != w[1].1).count();
        assert!(hops >= 30, "the samples alternate CPUs: {seen:?}");
    }

    #[test]
    fn user_page_faults_are_sampled_with_their_address_and_kernel_mode_ones_are_not() {
        // Real software event on this thread: 32 pages written from user mode, 8 more
        // filled by read(/dev/zero), which faults them in kernel mode (clear_user).
        let me = unsafe { libc::gettid() } as u32;
        let wants = [Want {
            probe: Probe::UserPageFaults,
            period: 1,
            task: Some(me),
        }];
        let (s, status) = open(
            Path::new("/nonexistent"),
            &wants,
            &online_cpus_for_test(),
            8,
        );
        let Some(mut s) = s else {
            let why = &status[0].1;
            assert!(
                why.as_ref().is_err_and(|e| e.contains("CAP_PERFMON")),
                "{status:?}"
            );
            return;
        };
        assert_eq!(status[0].0, "perf:software:page-faults");
        const PAGE: usize = 4096;
        let (user, kernel) = (32, 8);
        let len = (user + kernel) * PAGE;
        // SAFETY: fresh private anonymous mapping, unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        unsafe { libc::madvise(base, len, libc::MADV_NOHUGEPAGE) };
        let zero = std::fs::File::open("/dev/zero").unwrap();
        s.enable().unwrap();
        for i in 0..user {
            // SAFETY: inside the mapping.
            unsafe { std::ptr::write_volatile((base as *mut u8).add(i * PAGE), 1) };
        }
        let r = unsafe {
            libc::read(
                zero.as_raw_fd(),
                (base as *mut u8).add(user * PAGE).cast(),
                kernel * PAGE,
            )
        };
        s.disable();
        assert_eq!(r, (kernel * PAGE) as isize);
        let (lo, hi) = (base as u64, base as u64 + len as u64);
        let mut got = Vec::new();
        s.drain(true, |r| {
            assert_eq!(r.format.name, USER_PAGE_FAULTS);
            let a = r.fields["address"].as_u64().unwrap();
            assert!(
                r.fields["ip"].as_u64().is_some_and(|ip| ip > 0),
                "{:?}",
                r.fields
            );
            if r.tid == me && (lo..hi).contains(&a) {
                got.push(a);
            }
        });
        unsafe { libc::munmap(base, len) };
        let want: Vec<u64> = (0..user as u64).map(|i| lo + i * PAGE as u64).collect();
        got.sort();
        assert_eq!(
            got, want,
            "one sample per user-mode fault, none for kernel-mode ones"
        );
    }

    fn online_cpus_for_test() -> Vec<usize> {
        crate::record::online_cpus()
    }
}
