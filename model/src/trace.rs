//! Trace files: what the collector records on a live host or imports from users'
//! captures. JSON Lines: a header line, then one event per line, so a collector can
//! append and flush record by record and a killed collector leaves a readable file.
//! Both the collector's live reader and its importers build these events; the replay
//! turns a trace's namespaces into a scenario (`Trace::to_scenario`).
//!
//! Format version 1. Adding event kinds is compatible: readers skip kinds they do not
//! know and say so (docs/trace-format.md).

use crate::layout::{format_size, MapLocation, NamespaceSpec, NsMode};
use crate::scenario::{FaultSpec, HostSpec, HotplugEntry, NamespaceEntry, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

pub const TRACE_FORMAT: &str = "memmap-lab-trace";
pub const TRACE_VERSION: u32 = 1;

/// Text of the collector's closing mark (a `mark` event written when a recording
/// stops): layout events after it are the closing snapshot.
pub const STOP_MARK: &str = "memmap-collect: recording stopped";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub format: String,
    pub version: u32,
    pub created_unix_s: f64,
    /// "live", "boot", or "import:<format>".
    pub source: String,
    pub kernel_release: String,
    /// The traced machine's host name (/proc/sys/kernel/hostname); empty when unknown
    /// (imports, traces of older collectors).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    pub cmdline: String,
    pub numa_nodes: u32,
    pub cpus: u32,
    /// Where the trace came from (machine, emulation, kernel package), for provenance.
    pub notes: Vec<String>,
}

/// Times are nanoseconds of the traced host's clock (CLOCK_MONOTONIC / trace clock).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TraceEvent {
    /// A pfn namespace as ndctl / sysfs describe it.
    Namespace {
        name: String,
        mode: NsMode,
        map: MapLocation,
        size_bytes: u64,
        align_bytes: u64,
        start_phys: u64,
        node: u32,
    },
    /// A kernel function's duration (function_graph).
    FunctionSpan {
        t_ns: u64,
        dur_ns: u64,
        func: String,
        task: String,
        pid: u32,
        cpu: u32,
    },
    /// memmap_init_zone_device / memmap_init_range / online_pages with their pfn range (kprobes).
    MemmapInit {
        t_ns: u64,
        dur_ns: Option<u64>,
        func: String,
        start_pfn: u64,
        nr_pages: u64,
        task: String,
        pid: u32,
        cpu: u32,
    },
    /// "<dev> initialised, N pages in M ms" from the kernel log.
    Initialised {
        t_ns: u64,
        device: String,
        pages: u64,
        ms: u64,
    },
    /// fs_dax fault with its `_done` twin (latency).
    DaxFault {
        t_ns: u64,
        dur_ns: Option<u64>,
        pmd: bool,
        pid: u32,
        cpu: u32,
        address: u64,
        pgoff: u64,
        result: String,
    },
    Uevent {
        t_ns: u64,
        action: String,
        devpath: String,
        subsystem: String,
    },
    KernelLog {
        t_ns: u64,
        level: u8,
        text: String,
    },
    /// A source the collector could not use, and why (no kprobes, not root, ...).
    Unavailable {
        source: String,
        reason: String,
    },
    /// A source the collector used, with what it set up (e.g. "perf:fs_dax/dax_pmd_fault on 2 CPUs").
    Source {
        source: String,
        detail: String,
    },
    /// Whether a kernel function can be traced on this kernel: `ftrace` (function_graph
    /// filter accepts it), `kprobe` (in kallsyms and not blacklisted), and why not.
    Traceable {
        func: String,
        ftrace: bool,
        kprobe: bool,
        reason: String,
    },
    /// Kernel config options that matter here (name without CONFIG_, value "y"/"m"/"n"/number).
    KernelConfig {
        options: BTreeMap<String, String>,
    },
    /// A NUMA node: its CPUs (kernel list syntax) and memory.
    NumaNode {
        node: u32,
        cpulist: String,
        mem_total_bytes: u64,
    },
    /// One /proc/iomem line (end inclusive, as the kernel prints it); depth = indentation level.
    Iomem {
        start: u64,
        end: u64,
        name: String,
        depth: u32,
    },
    /// A memory block device (/sys/devices/system/memory/memoryN).
    MemoryBlock {
        index: u64,
        phys_start: u64,
        size_bytes: u64,
        state: String,
        node: Option<u32>,
        #[serde(default)]
        valid_zones: String,
    },
    /// A zone of a node (/proc/zoneinfo).
    Zone {
        node: u32,
        zone: String,
        start_pfn: u64,
        spanned: u64,
        present: u64,
        managed: u64,
    },
    /// An nvdimm bus object (region, namespace, pfn/dax/btt device, dimm) with its attributes
    /// as sysfs or ndctl/daxctl print them; namespaces with a pfn layout also get `Namespace`.
    NdDevice {
        dev: String,
        devtype: String,
        attrs: BTreeMap<String, String>,
    },
    /// A trace_marker line or a collector phase mark.
    Mark {
        t_ns: u64,
        text: String,
    },
    /// Any other tracepoint sample (sched_switch, page_fault_user, workqueue_execute_start,
    /// initcall_finish, ...) with its decoded fields.
    Tracepoint {
        t_ns: u64,
        name: String,
        task: String,
        pid: u32,
        cpu: u32,
        fields: BTreeMap<String, serde_json::Value>,
    },
    /// A kprobe / kretprobe hit with its fetched arguments.
    Kprobe {
        t_ns: u64,
        probe: String,
        func: String,
        ret: bool,
        task: String,
        pid: u32,
        cpu: u32,
        args: BTreeMap<String, String>,
    },
    /// Samples or events the kernel dropped (perf ring buffer overrun, tracefs overrun).
    Lost {
        source: String,
        count: u64,
    },
    /// What an importer could not read, with file and line.
    ImportWarning {
        file: String,
        line: usize,
        reason: String,
    },
}

impl TraceEvent {
    /// A `namespace` event as the layout model's input; `None` for other kinds.
    pub fn namespace_spec(&self) -> Option<NamespaceSpec> {
        match self {
            TraceEvent::Namespace {
                name,
                mode,
                map,
                size_bytes,
                align_bytes,
                start_phys,
                node,
            } => Some(NamespaceSpec {
                name: name.clone(),
                size_bytes: *size_bytes,
                mode: *mode,
                map: *map,
                align_bytes: *align_bytes,
                node: *node,
                start_phys: *start_phys,
            }),
            _ => None,
        }
    }

    /// The `kind` tag as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            TraceEvent::Namespace { .. } => "namespace",
            TraceEvent::FunctionSpan { .. } => "function-span",
            TraceEvent::MemmapInit { .. } => "memmap-init",
            TraceEvent::Initialised { .. } => "initialised",
            TraceEvent::DaxFault { .. } => "dax-fault",
            TraceEvent::Uevent { .. } => "uevent",
            TraceEvent::KernelLog { .. } => "kernel-log",
            TraceEvent::Unavailable { .. } => "unavailable",
            TraceEvent::Source { .. } => "source",
            TraceEvent::Traceable { .. } => "traceable",
            TraceEvent::KernelConfig { .. } => "kernel-config",
            TraceEvent::NumaNode { .. } => "numa-node",
            TraceEvent::Iomem { .. } => "iomem",
            TraceEvent::MemoryBlock { .. } => "memory-block",
            TraceEvent::Zone { .. } => "zone",
            TraceEvent::NdDevice { .. } => "nd-device",
            TraceEvent::Mark { .. } => "mark",
            TraceEvent::Tracepoint { .. } => "tracepoint",
            TraceEvent::Kprobe { .. } => "kprobe",
            TraceEvent::Lost { .. } => "lost",
            TraceEvent::ImportWarning { .. } => "import-warning",
        }
    }

    /// Time of the event, for events that have one.
    pub fn t_ns(&self) -> Option<u64> {
        match self {
            TraceEvent::FunctionSpan { t_ns, .. }
            | TraceEvent::MemmapInit { t_ns, .. }
            | TraceEvent::Initialised { t_ns, .. }
            | TraceEvent::DaxFault { t_ns, .. }
            | TraceEvent::Uevent { t_ns, .. }
            | TraceEvent::KernelLog { t_ns, .. }
            | TraceEvent::Mark { t_ns, .. }
            | TraceEvent::Tracepoint { t_ns, .. }
            | TraceEvent::Kprobe { t_ns, .. } => Some(*t_ns),
            _ => None,
        }
    }
}

impl TraceHeader {
    /// A header for a trace written now by `source`.
    pub fn new(source: &str) -> TraceHeader {
        TraceHeader {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            source: source.into(),
            kernel_release: String::new(),
            hostname: String::new(),
            cmdline: String::new(),
            numa_nodes: 0,
            cpus: 0,
            notes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub header: TraceHeader,
    pub events: Vec<TraceEvent>,
    /// Lines skipped with the reason (unknown event kinds of a newer collector).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: cannot read: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}:{line}: {msg}")]
    Line {
        path: String,
        line: usize,
        msg: String,
    },
}

impl Trace {
    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let p = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|error| TraceError::Io {
            path: p.clone(),
            error,
        })?;
        Trace::from_reader(&p, std::io::BufReader::new(f))
    }

    /// Parse JSON Lines; a truncated last line (a collector killed mid-write) is
    /// dropped with a warning, any other bad line is an error naming it.
    pub fn from_reader(path: &str, r: impl BufRead) -> Result<Trace, TraceError> {
        let err = |line: usize, msg: String| TraceError::Line {
            path: path.into(),
            line,
            msg,
        };
        let mut lines = r.lines().enumerate().peekable();
        let header: TraceHeader = match lines.next() {
            None => return Err(err(1, "empty file, expected a trace header line".into())),
            Some((_, l)) => {
                let l = l.map_err(|e| err(1, e.to_string()))?;
                crate::trace_read::parse_header(&l).map_err(|msg| err(1, msg))?
            }
        };
        let mut events = Vec::new();
        let mut warnings = Vec::new();
        while let Some((i, l)) = lines.next() {
            let n = i + 1;
            let l = l.map_err(|e| err(n, e.to_string()))?;
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<TraceEvent>(&l) {
                Ok(e) => events.push(e),
                Err(e) if lines.peek().is_none() && e.is_eof() => {
                    warnings.push(format!("{path}:{n}: truncated last record dropped"))
                }
                Err(e) => match crate::trace_read::classify_event_error(&l, &e) {
                    crate::trace_read::BadEvent::UnknownKind(k) => warnings.push(format!(
                        "{path}:{n}: event kind {k:?} not known to this build, skipped"
                    )),
                    crate::trace_read::BadEvent::Invalid(reason) => return Err(err(n, reason)),
                },
            }
        }
        Ok(Trace {
            header,
            events,
            warnings,
        })
    }

    /// Memory hot-plugged while the trace was recorded: memory blocks that appear after
    /// the collector's "recording stopped" mark (its closing snapshot) and were not in the
    /// opening snapshot, merged into contiguous ranges. (start, size, node)
    pub fn hotplugged_ranges(&self) -> Vec<(u64, u64, u32)> {
        let stop = self
            .events
            .iter()
            .position(|e| matches!(e, TraceEvent::Mark { text, .. } if text == STOP_MARK));
        let Some(stop) = stop else { return Vec::new() };
        let before: std::collections::HashSet<u64> = self.events[..stop]
            .iter()
            .filter_map(|e| match e {
                TraceEvent::MemoryBlock { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        let mut added: Vec<(u64, u64, u32)> = self.events[stop..]
            .iter()
            .filter_map(|e| match e {
                TraceEvent::MemoryBlock {
                    index,
                    phys_start,
                    size_bytes,
                    node,
                    ..
                } if !before.contains(index) => Some((*phys_start, *size_bytes, node.unwrap_or(0))),
                _ => None,
            })
            .collect();
        added.sort_unstable();
        added.dedup();
        let mut ranges: Vec<(u64, u64, u32)> = Vec::new();
        for (start, size, node) in added {
            match ranges.last_mut() {
                Some(r) if r.0.checked_add(r.1) == Some(start) && r.2 == node => {
                    r.1 = r.1.saturating_add(size)
                }
                _ => ranges.push((start, size, node)),
            }
        }
        ranges
    }

    /// Whether the recorded kernel used memmap_on_memory for hot-added memory.
    fn memmap_on_memory(&self) -> bool {
        self.header
            .cmdline
            .contains("memory_hotplug.memmap_on_memory=1")
            || self
                .header
                .cmdline
                .contains("memory_hotplug.memmap_on_memory=y")
            || self.events.iter().any(|e| match e {
                TraceEvent::MemmapInit { func, .. } => func == "mhp_init_memmap_on_memory",
                TraceEvent::Source { source, detail } => {
                    source == "memory-hotplug" && detail.contains("memmap_on_memory=Y")
                }
                _ => false,
            })
    }

    /// A scenario with the trace's namespaces and hot-plugged memory, so
    /// `memmap-replay run` replays the recorded layout. Namespaces are taken once each
    /// (a recording writes a namespace again only when it changed).
    pub fn to_scenario(&self, name: &str) -> Option<Scenario> {
        let mut seen = std::collections::HashSet::new();
        let namespaces: Vec<NamespaceEntry> = self
            .events
            .iter()
            .filter_map(TraceEvent::namespace_spec)
            .map(|s| NamespaceEntry {
                name: s.name,
                size: format!("{}", s.size_bytes),
                mode: s.mode,
                map: s.map,
                align: format!("{}", s.align_bytes),
                node: s.node,
                start: Some(format!("{:#x}", s.start_phys)),
            })
            .filter(|n| seen.insert((n.name.clone(), n.start.clone())))
            .collect();
        let hotplugs: Vec<HotplugEntry> = self
            .hotplugged_ranges()
            .into_iter()
            .enumerate()
            .map(|(i, (start, size, node))| HotplugEntry {
                name: format!("hotplug{i}"),
                start: format!("{start:#x}"),
                size: format!("{size}"),
                node,
            })
            .collect();
        if namespaces.is_empty() && hotplugs.is_empty() {
            return None;
        }
        let nodes = namespaces
            .iter()
            .map(|n| n.node.saturating_add(1))
            .chain(hotplugs.iter().map(|h| h.node.saturating_add(1)))
            .max()
            .unwrap_or(1)
            .max(self.header.numa_nodes.max(1));
        let total: u64 = self
            .events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Namespace { size_bytes, .. } => Some(*size_bytes),
                _ => None,
            })
            .chain(self.hotplugged_ranges().iter().map(|r| r.1))
            .fold(0u64, u64::saturating_add);
        let kernel = crate::layout::LayoutParams {
            memmap_on_memory: self.memmap_on_memory(),
            ..Default::default()
        };
        Some(Scenario {
            name: name.into(),
            description: format!(
                "recorded layout: {} namespace(s), {} hot-plugged range(s), {}",
                namespaces.len(),
                hotplugs.len(),
                format_size(total)
            ),
            source: format!(
                "trace ({}) from kernel {}; {}",
                self.header.source,
                self.header.kernel_release,
                self.header.notes.join("; ")
            ),
            host: HostSpec {
                nodes,
                cpus_per_node: (self.header.cpus / nodes).max(1),
                region_start: "0x100000000".into(),
                // the testbed's notes say "emulated ... NVDIMM": pmem backed by host memory
                device: self
                    .header
                    .notes
                    .iter()
                    .any(|n| n.contains("emulated") && n.contains("NVDIMM"))
                    .then(|| "dram".to_string()),
                cpu_scale: None,
                dram_write_gbs: None,
            },
            namespaces,
            hotplugs,
            faults: FaultSpec::default(),
            kernel,
        })
    }
}

/// Writes a trace: the header line, then one event per line.
///
/// [`TraceWriter::create`] writes through [`crate::output::Output`]: the trace appears
/// under its name only at [`TraceWriter::finish`]; dropped unfinished (an error) it leaves
/// nothing. [`TraceWriter::create_streaming`] (the live collector) writes under the final
/// name with every record flushed as it is written, so a collector killed at any moment
/// leaves every record before the kill. Both refuse a destination that is not a regular
/// file or is one of `avoid` (the command's inputs).
pub struct TraceWriter {
    out: Sink,
    flush_each: bool,
    pub events_written: u64,
}

enum Sink {
    Atomic(crate::output::Output),
    Direct(crate::output::DirectOutput),
    Stream(std::io::BufWriter<std::fs::File>),
}

impl Sink {
    fn w(&mut self) -> &mut dyn std::io::Write {
        match self {
            Sink::Atomic(o) => o.writer(),
            Sink::Direct(o) => o,
            Sink::Stream(w) => w,
        }
    }
}

impl TraceWriter {
    /// A trace written whole or not at all (importers, snapshot, boot).
    pub fn create(
        path: &Path,
        header: &TraceHeader,
        avoid: &[crate::output::Avoid],
    ) -> std::io::Result<TraceWriter> {
        create_parent(path)?;
        let o = crate::output::Output::create(path, avoid)?;
        TraceWriter::start(Sink::Atomic(o), header, false)
    }

    /// [`TraceWriter::create`] for a large trace (an import of a 1 GB capture): written
    /// past the page cache ([`crate::output::DirectOutput`]), whole or not at all.
    pub fn create_direct(
        path: &Path,
        header: &TraceHeader,
        avoid: &[crate::output::Avoid],
    ) -> std::io::Result<TraceWriter> {
        create_parent(path)?;
        let o = crate::output::Output::create(path, avoid)?;
        TraceWriter::start(
            Sink::Direct(crate::output::DirectOutput::new(o)),
            header,
            false,
        )
    }

    /// A trace written under its final name as it goes, for a writer that must leave a
    /// readable file when killed; with `flush_each` every record reaches the file at
    /// once. An existing file is replaced, not written into
    /// ([`crate::output::create_streaming`]).
    pub fn create_streaming(
        path: &Path,
        header: &TraceHeader,
        avoid: &[crate::output::Avoid],
        flush_each: bool,
    ) -> std::io::Result<TraceWriter> {
        create_parent(path)?;
        let (f, _) = crate::output::create_streaming(path, avoid)?;
        TraceWriter::start(
            Sink::Stream(std::io::BufWriter::with_capacity(1 << 16, f)),
            header,
            flush_each,
        )
    }

    fn start(out: Sink, header: &TraceHeader, flush_each: bool) -> std::io::Result<TraceWriter> {
        let mut w = TraceWriter {
            out,
            flush_each,
            events_written: 0,
        };
        w.line(header)?;
        w.flush()?;
        Ok(w)
    }

    fn line<T: Serialize>(&mut self, v: &T) -> std::io::Result<()> {
        let out = self.out.w();
        serde_json::to_writer(&mut *out, v)?;
        out.write_all(b"\n")
    }

    pub fn write(&mut self, e: &TraceEvent) -> std::io::Result<()> {
        self.line(e)?;
        self.events_written += 1;
        if self.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    /// Push buffered records to the file (to the temporary file for [`TraceWriter::create`]).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.w().flush()
    }

    /// Append `n_events` events serialized elsewhere (one JSON object per line, each
    /// line ending in '\n'), e.g. by parallel serializer threads.
    pub fn write_serialized(&mut self, lines: &[u8], n_events: u64) -> std::io::Result<()> {
        self.out.w().write_all(lines)?;
        self.events_written += n_events;
        if self.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    /// Finish the trace: the atomic kind is fsynced and renamed over its destination,
    /// the streaming kind flushed and fsynced. Returns the number of events written.
    pub fn finish(self) -> std::io::Result<u64> {
        let n = self.events_written;
        match self.out {
            Sink::Atomic(o) => o.commit()?,
            Sink::Direct(o) => o.commit()?,
            Sink::Stream(w) => {
                let f = w
                    .into_inner()
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                f.sync_all()?;
            }
        }
        Ok(n)
    }
}

fn create_parent(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: cannot create: {e}", dir.display()))
        })?;
    }
    Ok(())
}

/// Serialize events as trace lines (what [`TraceWriter::write`] writes).
pub fn serialize_events(events: &[TraceEvent], buf: &mut Vec<u8>) {
    for e in events {
        if !write_plain(e, buf) {
            serde_json::to_writer(&mut *buf, e).expect("trace events serialize");
        }
        buf.push(b'\n');
    }
}

/// Writes the events an import makes by the ten million (a 1 GB /proc/iomem: 27 M
/// `Iomem`) the way serde_json writes them, byte for byte, when no string needs
/// escaping; false (nothing written) otherwise. Hand-written because serde_json's derived
/// internally tagged serialization (every key escape-scanned, every piece a separate
/// `Vec` write) was ~50 % of the CPU time of an iomem import; the test
/// `plain_serialization_is_serde_json` holds it to serde_json's output.
fn write_plain(e: &TraceEvent, buf: &mut Vec<u8>) -> bool {
    /// No byte serde_json escapes (`"`, `\\`, control characters).
    fn plain(s: &str) -> bool {
        s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
    }
    match e {
        TraceEvent::Iomem {
            start,
            end,
            name,
            depth,
        } if plain(name) => {
            let mut n = itoa::Buffer::new();
            buf.extend_from_slice(b"{\"kind\":\"iomem\",\"start\":");
            buf.extend_from_slice(n.format(*start).as_bytes());
            buf.extend_from_slice(b",\"end\":");
            buf.extend_from_slice(n.format(*end).as_bytes());
            buf.extend_from_slice(b",\"name\":\"");
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b"\",\"depth\":");
            buf.extend_from_slice(n.format(*depth).as_bytes());
            buf.push(b'}');
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> String {
        serde_json::to_string(&TraceHeader {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            created_unix_s: 0.0,
            source: "live".into(),
            kernel_release: "6.1.0-56-amd64".into(),
            hostname: "memmap-testbed".into(),
            cmdline: String::new(),
            numa_nodes: 1,
            cpus: 2,
            notes: vec!["QEMU TCG NVDIMM".into()],
        })
        .unwrap()
    }

    #[test]
    fn plain_serialization_is_serde_json() {
        let names = [
            "System RAM",
            "",
            "Persistent Memory (legacy)",
            "dax0.0 é ü 漢字 🦀",
            "quote \" here",
            "back\\slash",
            "tab\there",
            "nl\n",
            "\u{1}\u{1f}\u{7f}",
            "/",
        ];
        for name in names {
            for (start, end, depth) in [(0, 0, 0), (4096, u64::MAX, u32::MAX), (1, 2, 3)] {
                let e = TraceEvent::Iomem {
                    start,
                    end,
                    name: name.into(),
                    depth,
                };
                let mut fast = Vec::new();
                serialize_events(std::slice::from_ref(&e), &mut fast);
                let want = serde_json::to_string(&e).unwrap() + "\n";
                assert_eq!(String::from_utf8(fast).unwrap(), want, "{name:?}");
            }
        }
    }

    const NS: &str = r#"{"kind":"namespace","name":"namespace0.0","mode":"fsdax","map":"dev","size_bytes":17163091968,"align_bytes":2097152,"start_phys":4294967296,"node":0}"#;
    const INIT: &str = r#"{"kind":"memmap-init","t_ns":27065480000,"dur_ns":566485000,"func":"memmap_init_zone_device","start_pfn":1048576,"nr_pages":4190208,"task":"ndctl","pid":583,"cpu":0}"#;

    #[test]
    fn reads_events_and_makes_a_scenario_that_lays_out_like_the_kernel() {
        let text = format!("{}\n{NS}\n{INIT}\n", header());
        let t = Trace::from_reader("t.jsonl", text.as_bytes()).unwrap();
        assert_eq!(t.events.len(), 2);
        let s = t.to_scenario("recorded").unwrap();
        let l = s.layouts("recorded", 1.0).unwrap();
        // The kprobe saw the pgmap range; the layout must agree with it.
        let TraceEvent::MemmapInit {
            start_pfn,
            nr_pages,
            ..
        } = &t.events[1]
        else {
            panic!()
        };
        assert_eq!(
            (l[0].range_start_pfn, l[0].range_pages),
            (*start_pfn, *nr_pages)
        );
    }

    #[test]
    fn a_recorded_hotplug_becomes_a_scenario_that_lays_out_like_the_kernel() {
        // Real trace: testbed hotplug of one 128 MiB block with memmap_on_memory=1.
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces/real/testbed/hotplug-mom.jsonl");
        let t = Trace::read(&p).unwrap();
        assert_eq!(t.hotplugged_ranges(), vec![(0x5_0000_0000, 128 << 20, 0)]);
        let s = t.to_scenario("recorded").unwrap();
        assert!(s.kernel.memmap_on_memory);
        let l = s.layouts("recorded", 1.0).unwrap();
        assert_eq!(l.len(), 1);
        // What the kernel's kprobes saw: online_pages over the block minus its memmap.
        let online: Vec<(u64, u64)> = t
            .events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::MemmapInit {
                    func,
                    start_pfn,
                    nr_pages,
                    ..
                } if func == "online_pages" => Some((*start_pfn, *nr_pages)),
                _ => None,
            })
            .collect();
        assert_eq!(online, vec![(l[0].data_start_pfn, l[0].data_pages)]);
    }

    #[test]
    fn truncated_last_line_is_a_warning_bad_line_an_error_with_its_number() {
        let text = format!("{}\n{NS}\n{}", header(), &INIT[..40]);
        let t = Trace::from_reader("t.jsonl", text.as_bytes()).unwrap();
        assert_eq!(t.events.len(), 1);
        assert!(t.warnings[0].contains("t.jsonl:3"), "{:?}", t.warnings);
        let text = format!(
            "{}\n{{\"kind\":\"namespace\",\"name\":1}}\n{INIT}\n",
            header()
        );
        let e = Trace::from_reader("t.jsonl", text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.jsonl:2:"), "{e}");
        let text = format!("{}\n{{\"kind\":\"from-the-future\"}}\n{INIT}\n", header());
        let t = Trace::from_reader("t.jsonl", text.as_bytes()).unwrap();
        assert_eq!(t.events.len(), 1);
        assert!(t.warnings[0].contains("from-the-future"));
        let e =
            Trace::from_reader("r.json", "{\"format\":\"memmap-lab-run\"}".as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("r.json:1:"), "{e}");
    }
}
