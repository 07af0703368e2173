use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use memmap_collect::import::{self, Format};
use memmap_collect::{info, kmsg, record, snapshot, tracefs};
use memmap_model::trace::{Trace, TraceEvent, TraceWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

// Import and record allocate events on one thread and free them on another (parser ->
// serializer threads); glibc malloc spent ~20 % of `import` in cross-thread frees
// (docs/benchmarks.md: 175-185 -> 217-233 MB/s end to end).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults commit whole segments and arenas up front and purge late: the
/// recording collector's peak RSS went from 9 to 48 MiB. Commit on demand and purge at
/// once: 26 MiB (what was committed before `main` stays), no measurable cost to import.
/// Option numbers of mimalloc.h v2
/// (`mi_option_eager_commit` 3, `mi_option_arena_eager_commit` 4, `mi_option_purge_delay`
/// 15); libmimalloc-sys names only some of them.
fn tune_allocator() {
    for (option, value) in [(3, 0), (4, 0), (15, 0)] {
        // SAFETY: plain option store, called first thing in main, before other threads.
        unsafe { libmimalloc_sys::mi_option_set(option, value) };
    }
}

/// `import` frees and allocates the same few MiB of batches all the time: purged at once
/// (the [`tune_allocator`] setting), every batch faults its pages in again (perf of a
/// 1 GB perf-script import: ~20 % of its time in page faults, `clear_page_erms`, and
/// the TLB shootdowns of `madvise`; sys 2.7 s). A 100 ms delay (1 s for arenas, x10)
/// keeps them: sys 0.6 s, peak RSS still ~35 MiB. Never purging reached 62 MiB.
fn import_allocator() {
    // SAFETY: plain option store (mimalloc reads the delay at each purge).
    unsafe { libmimalloc_sys::mi_option_set(15, 100) };
}

/// Records hotplug and memmap-init events of the running kernel, and imports what was
/// captured elsewhere, into memmap-lab trace files (JSON Lines, docs/trace-format.md).
///
/// Exit codes: 0 ok, 2 error (bad input, cannot write); `record -- CMD` exits with CMD's
/// code, or 128 + the signal (SIGINT, SIGTERM, SIGHUP) that stopped the recording first.
#[derive(Parser)]
#[command(name = "memmap-collect", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The host's layout and context: kernel, config flags, NUMA, iomem, memory blocks,
    /// nvdimm bus, zones.
    Snapshot {
        #[arg(short, long, default_value = "snapshot.trace.jsonl")]
        output: PathBuf,
    },
    /// Snapshot, then record events until COMMAND exits, --duration passes or Ctrl-C.
    Record {
        #[arg(short, long, default_value = "record.trace.jsonl")]
        output: PathBuf,
        /// Stop after this long (e.g. 30s, 2m, 500ms); without COMMAND and without
        /// --duration, record until Ctrl-C.
        #[arg(short, long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Provenance note stored in the trace header (repeatable).
        #[arg(long)]
        note: Vec<String>,
        /// No function_graph.
        #[arg(long)]
        no_ftrace: bool,
        /// No kprobes.
        #[arg(long)]
        no_kprobes: bool,
        /// No perf tracepoints.
        #[arg(long)]
        no_perf: bool,
        /// No uevents.
        #[arg(long)]
        no_uevents: bool,
        /// No kernel log.
        #[arg(long)]
        no_kmsg: bool,
        /// Sample every Nth user page fault of the command; 0: none. DAX faults (fs_dax)
        /// are always recorded one by one. What each period costs a fault-bound workload
        /// is in docs/benchmarks.md (on our VM the kernel's page-fault event alone costs
        /// ~7%; 0 removes it).
        #[arg(long, default_value_t = 16)]
        fault_period: u64,
        /// How user page faults are sampled: `software` (perf's page-faults:u event:
        /// address and ip) or `tracepoint` (exceptions:page_fault_user: adds error_code,
        /// i.e. read/write/protection, but builds a record for every fault, sampled or
        /// not: 1.15 against 1.10 at the default period in docs/benchmarks.md).
        #[arg(long, value_enum, default_value_t = record::FaultSource::Software)]
        fault_source: record::FaultSource,
        /// Per-CPU tracefs buffer, KiB.
        #[arg(long, default_value_t = 8192)]
        buffer_kb: u32,
        /// Per-CPU perf ring buffer, pages (power of two).
        #[arg(long, default_value_t = 256)]
        ring_pages: usize,
        #[arg(short, long)]
        quiet: bool,
        /// Command to run and record (after --).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Harvest boot-time events (kernel log since boot, the top-level tracefs buffer)
    /// and print the kernel command line that records memmap/hotplug functions from the
    /// next boot on.
    Boot {
        #[arg(short, long, default_value = "boot.trace.jsonl")]
        output: PathBuf,
        /// Only print the kernel command line.
        #[arg(long)]
        print_cmdline: bool,
    },
    /// Convert captures made with standard tools into a trace.
    Import {
        #[arg(short, long, value_enum)]
        format: Format,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Summarize a trace: host, layout, counts by kind, namespaces, init durations.
    Info {
        trace: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Remove tracing state left by a collector that was killed (also done by every run).
    Cleanup,
    /// A page-fault-heavy workload (touch every 4 KiB page of fresh anonymous memory),
    /// for measuring recording overhead: prints the touch time in seconds.
    FaultWorkload {
        #[arg(long, default_value_t = 1024)]
        mib: usize,
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 30s, 2m, 500ms"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?}: expected a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Record { .. }) {
        // `memmap-collect info t.jsonl | head` ends quietly like other Unix tools instead
        // of panicking on EPIPE. Not while recording: its cleanup must run on any exit,
        // and it prints nothing on stdout (messages on stderr never panic).
        // SAFETY: setting a signal disposition before other threads exist.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            memmap_collect::eprint_line(&format!("memmap-collect: error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

fn write_trace(
    path: &Path,
    header: &memmap_model::trace::TraceHeader,
    events: &[TraceEvent],
) -> Result<u64> {
    let mut w = TraceWriter::create(path, header, &[])
        .with_context(|| format!("the trace to write, {}", path.display()))?;
    for e in events {
        w.write(e)
            .with_context(|| format!("write {}", path.display()))?;
    }
    w.finish()
        .with_context(|| format!("write {}", path.display()))
}

/// `snapshot`: the host's memory layout now (sysfs, /proc/iomem, ndctl).
fn snapshot_cmd(output: &Path) -> Result<u8> {
    let s = snapshot::take(Path::new("/"));
    let n = write_trace(output, &s.header, &s.events)?;
    let un: Vec<String> = s
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Unavailable { source, reason } => Some(format!("  {source}: {reason}")),
            _ => None,
        })
        .collect();
    eprintln!("wrote {n} events to {}", output.display());
    if !un.is_empty() {
        eprintln!("not available:\n{}", un.join("\n"));
    }
    Ok(0)
}

/// `boot`: harvest what boot-time tracing and the kernel log hold, with a snapshot.
fn boot_cmd(output: &Path, print_cmdline: bool) -> Result<u8> {
    let cmdline = boot_cmdline();
    if print_cmdline {
        println!("{cmdline}");
        return Ok(0);
    }
    let s = snapshot::take(Path::new("/"));
    let mut header = s.header.clone();
    header.source = "boot".into();
    let mut events = s.events;
    match kmsg::Kmsg::open(true) {
        Ok(mut k) => {
            k.drain(&mut events).context("read /dev/kmsg")?;
            if k.lost > 0 {
                events.push(TraceEvent::Lost {
                    source: "kmsg".into(),
                    count: k.lost,
                });
            }
        }
        Err(e) => events.push(TraceEvent::Unavailable {
            source: "kmsg".into(),
            reason: format!("/dev/kmsg: {e} (needs root or kernel.dmesg_restrict=0)"),
        }),
    }
    match tracefs::find() {
        Ok(t) => {
            // Non-consuming read of what boot-time tracing left in the top-level buffer.
            let p = t.join("trace");
            match std::fs::read(&p) {
                Ok(b) => events.extend(import::ftrace::import(
                    &p.display().to_string(),
                    &String::from_utf8_lossy(&b),
                )),
                Err(e) => events.push(TraceEvent::Unavailable {
                    source: "tracefs-boot-buffer".into(),
                    reason: format!("{}: {e}", p.display()),
                }),
            }
        }
        Err(e) => events.push(TraceEvent::Unavailable {
            source: "tracefs-boot-buffer".into(),
            reason: e,
        }),
    }
    let n = write_trace(output, &header, &events)?;
    eprintln!("wrote {n} events to {}", output.display());
    eprintln!("to record memmap/hotplug functions from the next boot on, add to the kernel command line:\n  {cmdline}");
    Ok(0)
}

fn run(cli: Cli) -> Result<u8> {
    match cli.cmd {
        Cmd::Snapshot { output } => snapshot_cmd(&output),
        Cmd::Record {
            output,
            duration,
            note,
            no_ftrace,
            no_kprobes,
            no_perf,
            no_uevents,
            no_kmsg,
            fault_period,
            fault_source,
            buffer_kb,
            ring_pages,
            quiet,
            command,
        } => {
            if !ring_pages.is_power_of_two() {
                bail!("--ring-pages {ring_pages}: must be a power of two");
            }
            let opts = record::RecordOpts {
                out: output.clone(),
                duration,
                command,
                notes: note,
                ftrace: !no_ftrace,
                kprobes: !no_kprobes,
                perf: !no_perf,
                uevents: !no_uevents,
                kmsg: !no_kmsg,
                fault_period,
                fault_source,
                buffer_kb,
                ring_pages,
                quiet,
            };
            let o = record::record(&opts)?;
            if !quiet {
                memmap_collect::eprint_line(&format!(
                    "memmap-collect: {} events in {}{}",
                    o.events,
                    output.display(),
                    if o.interrupted { " (interrupted)" } else { "" }
                ));
            }
            Ok(o.exit_code.clamp(0, 255) as u8)
        }
        Cmd::Boot {
            output,
            print_cmdline,
        } => boot_cmd(&output, print_cmdline),
        Cmd::Import {
            format,
            files,
            output,
        } => {
            import_allocator();
            let st = import::import_to(format, &files, &output)?;
            for (file, line, reason) in &st.warnings {
                eprintln!("{file}:{line}: {reason}");
            }
            if st.warning_count > st.warnings.len() as u64 {
                eprintln!(
                    "... {} more warnings (import-warning events in the trace)",
                    st.warning_count - st.warnings.len() as u64
                );
            }
            // the first skipped lines of every file, unless printed above
            for (f, l, r) in &st.first_skips {
                if !st.warnings.iter().any(|w| (&w.0, w.1) == (f, *l)) {
                    eprintln!("{f}:{l}: {r}");
                }
            }
            eprintln!(
                "imported {} events from {} lines ({} recognised as {}, {} skipped) into {}",
                st.events - st.warning_count,
                st.lines,
                st.recognised,
                format.name(),
                st.skipped,
                output.display()
            );
            Ok(0)
        }
        Cmd::Info { trace, json } => {
            let t = Trace::read(&trace)?;
            let i = info::summarize(&t);
            if json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                info::print_human(&i);
            }
            Ok(0)
        }
        Cmd::Cleanup => {
            let t = tracefs::find().ok();
            let done = tracefs::clean_stale(t.as_deref());
            if done.is_empty() {
                println!("nothing left behind by earlier collectors");
            }
            for d in done {
                println!("{d}");
            }
            Ok(0)
        }
        Cmd::FaultWorkload { mib, rounds } => {
            for _ in 0..rounds {
                println!("{:.6}", fault_workload(mib << 20)?);
            }
            Ok(0)
        }
    }
}

/// Kernel parameters that make the next boot trace the memmap/hotplug functions from
/// the start (Documentation/admin-guide/kernel-parameters.txt: ftrace=,
/// ftrace_graph_filter=, trace_buf_size=, trace_clock=, trace_options=, kprobe_event=,
/// trace_event=, dyndbg).
pub fn boot_cmdline() -> String {
    let funcs: Vec<&str> = tracefs::GRAPH_FUNCTIONS
        .iter()
        .copied()
        .filter(|f| !f.starts_with("__") || *f == "__add_pages")
        .collect();
    // kprobe_event=: definitions separated by ';', fields by ','; enabled at once.
    let probes: Vec<String> = tracefs::KPROBES
        .iter()
        .take(3)
        .flat_map(|(f, a)| {
            [
                format!("p:memmap_collect_boot/{f},{f},{}", a.replace(' ', ",")),
                format!("r:memmap_collect_boot/{f}_ret,{f}"),
            ]
        })
        .collect();
    format!(
        "trace_buf_size=64M trace_clock=mono ftrace=function_graph ftrace_filter={} \
trace_options=funcgraph-proc,funcgraph-abstime,funcgraph-tail \
kprobe_event={} trace_event=initcall:* dyndbg=\"func memmap_init_zone_device +p\"",
        funcs.join(","),
        probes.join(";")
    )
}

/// Touch every page of fresh anonymous memory: one minor fault per 4 KiB page.
fn fault_workload(bytes: usize) -> Result<f64> {
    // SAFETY: anonymous private mapping, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        bail!("mmap {bytes} bytes: {}", std::io::Error::last_os_error());
    }
    // No THP: a fault per 4 KiB page is the point.
    unsafe { libc::madvise(p, bytes, libc::MADV_NOHUGEPAGE) };
    let t = std::time::Instant::now();
    let base = p as *mut u8;
    for off in (0..bytes).step_by(4096) {
        // SAFETY: within the mapping.
        unsafe { base.add(off).write_volatile(1) };
    }
    let s = t.elapsed().as_secs_f64();
    unsafe { libc::munmap(p, bytes) };
    Ok(s)
}
