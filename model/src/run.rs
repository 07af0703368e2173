//! Run files: what one `memmap-replay run` measured, self-describing and versioned.
//! The format is documented in `docs/run-format.md`; bump [`RUN_VERSION`] on any
//! incompatible change.

use crate::hist::StoredHistogram;
use crate::kernel_recorded::KernelRecorded;
use crate::layout::RangeLayout;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const RUN_FORMAT: &str = "memmap-lab-run";
pub const RUN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    /// Always [`RUN_FORMAT`].
    pub format: String,
    /// Always [`RUN_VERSION`] for files this crate writes.
    pub version: u32,
    /// False while the replay is still writing or when it was interrupted.
    pub complete: bool,
    /// Set when Ctrl-C stopped the run: the finished repeats are kept.
    pub interrupted: bool,
    pub tool: String,
    pub created_unix_s: f64,
    pub scenario: ScenarioRef,
    pub config: RunConfig,
    pub host: HostInfo,
    /// Layout of every namespace / hot-added range the run replayed.
    pub layout: Vec<RangeLayout>,
    /// Per layout range: what the traced kernel recorded (`memmap-replay run TRACE`)
    /// and the kernel time predicted for it. Empty for a scenario run and in files
    /// written before it existed.
    #[serde(default)]
    pub kernel_recorded: Vec<KernelRecorded>,
    pub repeats: Vec<Repeat>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRef {
    pub name: String,
    pub path: Option<String>,
    pub description: String,
    /// The public figure the scenario models.
    pub source: String,
    /// Scale factor applied to the scenario's sizes (1.0 = as written).
    pub scale: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub strategy: String,
    pub params: StrategyParams,
    pub faults: FaultConfig,
    pub repeats_requested: u32,
    pub verify: bool,
    pub target: TargetInfo,
    /// Set when the memmap did not fit and writes went round a reused window.
    pub window: Option<WindowInfo>,
    /// How namespaces of the host ran: "serialized on the hotplug lock" or "parallel per namespace".
    pub namespace_concurrency: String,
    /// Everything about method that affects how the figures may be read.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyParams {
    /// Init threads per namespace.
    pub threads: u32,
    /// Sub-ranges per thread (williams-async: NR_MEMMAP_RANGE = 128).
    pub sub_ranges: u32,
    /// Chunk size in pages (jordan-padata minimum chunk, span granularity for the others).
    pub chunk_pages: u64,
    /// "regular" or "non-temporal".
    pub store: StoreKind,
    /// Record flavour the strategy's kernel writes (see docs/strategies.md).
    pub record: RecordFlavor,
    /// williams-async: what memmap_sync locks (the patch: one mutex per thread).
    #[serde(default)]
    pub sync_lock: SyncLock,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncLock {
    /// Seed 003 patch 06: one mutex per init thread, held for a whole sub-range.
    #[default]
    Thread,
    /// Lab variant: one mutex per sub-range.
    SubRange,
}

impl SyncLock {
    /// The run file's name of the lock scope (`thread`, `sub-range`).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncLock::Thread => "thread",
            SyncLock::SubRange => "sub-range",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    Regular,
    NonTemporal,
}

impl StoreKind {
    /// The run file's name of the store kind (`regular`, `non-temporal`).
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Regular => "regular",
            StoreKind::NonTemporal => "non-temporal",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordFlavor {
    /// Pre-4.20 / seed 003: lru.prev = LIST_POISON2, pgmap over lru.next.
    Poison,
    /// 4.20+ (Duyck): pgmap, zone_device_data = NULL.
    DeviceData,
}

impl RecordFlavor {
    /// The run file's name of the record flavor (`poison`, `device-data`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordFlavor::Poison => "poison",
            RecordFlavor::DeviceData => "device-data",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    /// "none", "sequential", "uniform", "zipf", "trace".
    pub pattern: String,
    pub threads_per_namespace: u32,
    pub touches_per_thread: u64,
    /// 4096 for PTE faults, 2 MiB for PMD faults.
    pub fault_bytes: u64,
    pub zipf_exponent: f64,
    /// Pause between two touches of one fault thread.
    pub think_ns: u64,
    pub seed: u64,
    pub trace: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// anonymous, file, dax-file, devdax, tmpfs, hugetlbfs.
    pub kind: String,
    pub path: Option<String>,
    pub filesystem: Option<String>,
    pub dax: bool,
    pub map_sync: bool,
    pub page_size_bytes: u64,
    pub persistent: bool,
    pub flush: String,
    pub length_bytes: u64,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowInfo {
    pub window_bytes: u64,
    pub slice_bytes: u64,
    pub full_memmap_bytes: u64,
    pub method: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel_release: String,
    pub cpu_model: String,
    pub cpus_online: u32,
    pub mem_total_bytes: u64,
    pub numa_nodes: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repeat {
    pub index: u32,
    pub started_unix_s: f64,
    pub metrics: Metrics,
    pub namespaces: Vec<NamespaceTiming>,
    pub phases: Vec<Phase>,
    pub threads: Vec<ThreadRecord>,
    pub stalls: StallData,
    pub roofline: Roofline,
    pub verify: Option<VerifyResult>,
}

/// Headline figures of one repeat. Times are from the start of the repeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Latest moment a namespace became usable.
    pub time_to_available_ns: u64,
    /// Latest moment a namespace's memmap was fully initialised.
    pub time_to_complete_ns: u64,
    /// Sum over namespaces of phase-1 (vmemmap populate) wall time.
    pub populate_ns: u64,
    /// Wall time from the first init store to the last (phase 2).
    pub init_ns: u64,
    pub struct_pages_written: u64,
    pub memmap_bytes_written: u64,
    /// memmap_bytes_written / init_ns.
    pub memmap_bytes_per_s: f64,
    pub faults: u64,
    pub stall_p50_ns: u64,
    pub stall_p99_ns: u64,
    pub stall_max_ns: u64,
    /// memmap_bytes_per_s / same-run non-temporal roofline.
    pub fraction_of_nt_roofline: f64,
    /// bare writer loop time (the era's per-page writer over the same bytes, same threads,
    /// nothing of the engine around it) / init_ns.
    pub engine_efficiency: f64,
    /// Faults that read a struct page that was not initialised: must be 0.
    pub uninitialised_reads: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamespaceTiming {
    pub name: String,
    pub populate_start_ns: u64,
    pub populate_end_ns: u64,
    pub available_ns: u64,
    pub complete_ns: u64,
    pub data_pages: u64,
    pub struct_pages_written: u64,
    pub bytes_written: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// "populate", "init", "pgmap-pass", "hotplug-lock-wait".
    pub name: String,
    pub namespace: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreadRole {
    /// The probe task (ndctl / kworker) that adds the memory and may init it.
    Probe,
    Init,
    Fault,
}

impl ThreadRole {
    /// The run file's name of the role (`probe`, `init`, `fault`).
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadRole::Probe => "probe",
            ThreadRole::Init => "init",
            ThreadRole::Fault => "fault",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub id: u32,
    pub name: String,
    pub role: ThreadRole,
    pub namespace: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Sum of span durations.
    pub busy_ns: u64,
    /// Struct pages this thread initialised (steals included for fault threads).
    pub pages_done: u64,
    /// (t_ns, pages done so far), bounded rate.
    pub progress: Vec<(u64, u64)>,
    pub spans: Vec<Span>,
    pub counters: Counters,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpanKind {
    Populate,
    Init,
    PgmapPass,
    /// A fault thread initialising a sub-range itself (memmap_sync).
    Steal,
    /// A fault thread waiting for struct pages.
    Stall,
}

impl SpanKind {
    /// The run file's name of the span kind (`populate`, `init`, `pgmap-pass`, `steal`,
    /// `stall`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Populate => "populate",
            SpanKind::Init => "init",
            SpanKind::PgmapPass => "pgmap-pass",
            SpanKind::Steal => "steal",
            SpanKind::Stall => "stall",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start_ns: u64,
    pub end_ns: u64,
    pub kind: SpanKind,
    pub start_pfn: u64,
    pub pages: u64,
}

/// One perf-event counter: a value, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CounterValue {
    Value(u64),
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub task_clock_ns: CounterValue,
    pub page_faults: CounterValue,
    pub context_switches: CounterValue,
    pub cycles: CounterValue,
    pub instructions: CounterValue,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StallData {
    pub merged: StoredHistogram,
    /// (thread id, histogram) per fault thread.
    pub per_thread: Vec<(u32, StoredHistogram)>,
    /// Individual faults, bounded (reservoir-sampled when there are more).
    pub samples: Vec<FaultSample>,
    pub samples_dropped: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSample {
    pub t_ns: u64,
    pub thread: u32,
    pub pfn: u64,
    pub stall_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    pub threads: u32,
    pub bytes: u64,
    pub regular_bytes_per_s: f64,
    pub non_temporal_bytes_per_s: f64,
    /// The strategy's era writer run bare (contiguous records, no units or progress) with its
    /// thread layout, over its exact bytes.
    pub bare_same_store_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// "per-pfn" or "window-consistency".
    pub method: String,
    pub records_checked: u64,
    pub errors: u64,
    /// First few problems, with pfn and field.
    pub first_errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("{path}: cannot read: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}:{line}:{column}: not a valid run file: {msg}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("{path}: format is {found:?}, expected {RUN_FORMAT:?} (is this a trace? use memmap-collect info)")]
    WrongFormat { path: String, found: String },
    #[error("{path}: this is a memmap-lab trace (JSON Lines from memmap-collect), not a run file: compare reads the run files `memmap-replay run` writes (replay the trace first: memmap-replay run {path} --strategy ... -o RUN.json)")]
    IsTrace { path: String },
    #[error("{path}: run file version {found} is not supported (this build reads version {RUN_VERSION})")]
    Version { path: String, found: u32 },
}

impl RunFile {
    pub fn from_json_str(path: &str, text: &str) -> Result<RunFile, RunFileError> {
        // Check format and version first so the error says what the file is.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
        }
        if crate::trace_read::looks_like_trace(text.as_bytes()) {
            // A trace (JSON Lines) parsed as one JSON document gave "trailing characters".
            return Err(RunFileError::IsTrace { path: path.into() });
        }
        let head: Head = serde_json::from_str(text).map_err(|e| parse_error(path, &e))?;
        let found = head.format.unwrap_or_default();
        if found != RUN_FORMAT {
            return Err(RunFileError::WrongFormat {
                path: path.into(),
                found,
            });
        }
        match head.version {
            Some(RUN_VERSION) => {}
            other => {
                return Err(RunFileError::Version {
                    path: path.into(),
                    found: other.unwrap_or(0),
                })
            }
        }
        serde_json::from_str(text).map_err(|e| parse_error(path, &e))
    }

    pub fn read(path: &Path) -> Result<RunFile, RunFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| RunFileError::Io {
            path: p.clone(),
            error,
        })?;
        RunFile::from_json_str(&p, &text)
    }

    /// Write atomically through [`crate::output`] (exclusive temporary file in the same
    /// directory, fsync, rename) so a reader never sees half a file.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        self.write_avoiding(path, &[])
    }

    /// [`RunFile::write`], refusing a destination that is one of `avoid` (the run's
    /// scenario or trace, its target) or is not a regular file.
    pub fn write_avoiding(
        &self,
        path: &Path,
        avoid: &[crate::output::Avoid],
    ) -> std::io::Result<()> {
        crate::output::write_atomic(path, avoid, |w| {
            serde_json::to_writer(&mut *w, self)?;
            Ok(())
        })
    }
}

fn parse_error(path: &str, e: &serde_json::Error) -> RunFileError {
    RunFileError::Parse {
        path: path.into(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name(v: impl Serialize) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn enum_names_are_the_run_files_names() {
        for s in [StoreKind::Regular, StoreKind::NonTemporal] {
            assert_eq!(s.as_str(), serde_name(s));
        }
        for r in [RecordFlavor::Poison, RecordFlavor::DeviceData] {
            assert_eq!(r.as_str(), serde_name(r));
        }
        for r in [ThreadRole::Probe, ThreadRole::Init, ThreadRole::Fault] {
            assert_eq!(r.as_str(), serde_name(r));
        }
        for k in [
            SpanKind::Populate,
            SpanKind::Init,
            SpanKind::PgmapPass,
            SpanKind::Steal,
            SpanKind::Stall,
        ] {
            assert_eq!(k.as_str(), serde_name(k));
        }
    }
}
