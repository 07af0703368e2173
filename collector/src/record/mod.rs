//! `memmap-collect record`: snapshot, then every source the kernel offers until the
//! command exits, the duration passes or a signal arrives.
//!
//! Threads: one per trace_pipe (our instance; the top level when function_graph must
//! run there), one for perf ring buffers, one for uevents + /dev/kmsg. They send event
//! batches to the main thread, which writes and flushes each record, filters the
//! high-rate system-wide tracepoints (sched_switch, workqueue) down to the tasks
//! involved, and owns the cleanup (`tracefs::State`, undone on every exit path).
//!
//! [`setup`]: tracefs instance, function_graph, kprobes, dynamic debug, and the guard
//! that undoes them; [`held`]: the command, forked and held before exec; [`sources`]:
//! the reader threads (perf, trace_pipe, uevent + kmsg) and their messages;
//! [`filter`]: which sched/workqueue samples belong to the tasks involved.

mod filter;
mod held;
mod setup;
mod sources;

use crate::snapshot;
use anyhow::{Context, Result};
use filter::InvolvedFilter;
use held::HeldChild;
use memmap_model::trace::{TraceEvent, TraceWriter, STOP_MARK};
use sources::Msg;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use sources::online_cpus;

#[derive(Clone, Debug)]
pub struct RecordOpts {
    pub out: PathBuf,
    pub duration: Option<Duration>,
    pub command: Vec<String>,
    pub notes: Vec<String>,
    pub ftrace: bool,
    pub kprobes: bool,
    pub perf: bool,
    pub uevents: bool,
    pub kmsg: bool,
    /// Sample every Nth user page fault of the command; 0: none.
    pub fault_period: u64,
    pub fault_source: FaultSource,
    /// Per-CPU tracefs buffer of our instance, KiB.
    pub buffer_kb: u32,
    /// Per-CPU perf ring buffer, pages (power of two).
    pub ring_pages: usize,
    pub quiet: bool,
}

impl RecordOpts {
    /// A progress line on stderr, unless quiet.
    fn say(&self, m: &str) {
        if !self.quiet {
            crate::eprint_line(&format!("memmap-collect: {m}"));
        }
    }
}

/// How the command's user page faults are sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultSource {
    /// The software event PERF_COUNT_SW_PAGE_FAULTS, user mode (`software:page-faults`).
    Software,
    /// The `exceptions:page_fault_user` tracepoint.
    Tracepoint,
}

pub struct Outcome {
    pub exit_code: i32,
    pub events: u64,
    pub interrupted: bool,
}

/// Records until the command exits, the duration passes or a signal arrives.
///
/// Drop order is the cleanup guarantee: on `?` (a write error such as ENOSPC) or a
/// panic the sources go first (their guard stops every reader thread and waits for it,
/// closing our trace_pipes and perf events), then the held command (killed if it never
/// exec'd), then `tracing` (its guard undoes every tracefs change and removes the state
/// file), then the writer, whose file holds every batch flushed so far.
pub fn record(opts: &RecordOpts) -> Result<Outcome> {
    let signals = Signals::install()?;
    let mut laps = Laps::new();
    let (mut out, initial) = open_output(opts, &mut laps)?;
    let mut setup_events: Vec<TraceEvent> = Vec::new();
    let mut tracing = setup::set_up_tracing(opts, &mut laps, &mut setup_events);

    // The command, held before exec until every source is open.
    let mut child = match opts.command.is_empty() {
        true => None,
        false => Some(HeldChild::spawn(&opts.command, tracing.marker.as_deref())?),
    };
    let child_pid = child.as_ref().map(|c| c.pid);

    let stop = Arc::new(AtomicBool::new(false));
    let pipes = std::mem::take(&mut tracing.pipes);
    let sources = sources::start(
        opts,
        tracing.tracefs.as_deref(),
        pipes,
        child_pid,
        &stop,
        &mut setup_events,
    )?;
    laps.lap("perf+uevent+kmsg");
    setup_events.push(laps.event());
    announce(opts, &mut out, &setup_events)?;
    if let Some(c) = child.as_mut() {
        c.release(); // the command execs now
    }

    let mut filter = InvolvedFilter::new(child_pid);
    let (exit_code, interrupted) = collect_until_stop(
        opts,
        &signals,
        &stop,
        sources.rx(),
        &mut child,
        &mut filter,
        &mut out,
    )?;
    sources.finish();
    // Samples still in the filter's look-back queue belong to tasks never involved:
    // dropped with it.
    close(&mut out, tracing.instance_dir.as_deref(), &initial)?;
    drop(tracing);
    Ok(Outcome {
        exit_code,
        events: out.w.events_written,
        interrupted,
    })
}

/// SIGINT, SIGTERM and SIGHUP, handled alike: the first one is kept (sticky, a later
/// one changes nothing) and the main loop stops the recording through its normal way
/// out, so every guard runs. A signal-hook thread takes them (nothing runs in the
/// signal handler itself).
struct Signals(Arc<AtomicI32>);

impl Signals {
    fn install() -> Result<Signals> {
        let first = Arc::new(AtomicI32::new(0));
        let mut it = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])
        .context("install signal handlers")?;
        let f = first.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in it.forever() {
                    let _ = f.compare_exchange(0, sig, Ordering::AcqRel, Ordering::Acquire);
                }
            })
            .context("start the signal thread")?;
        Ok(Signals(first))
    }

    /// The first signal received, if any.
    fn first(&self) -> Option<i32> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            s => Some(s),
        }
    }
}

/// Time of each setup step, written as the `collector-setup` source.
struct Laps {
    t0: Instant,
    times: Vec<(&'static str, f64)>,
}

impl Laps {
    fn new() -> Laps {
        Laps {
            t0: Instant::now(),
            times: Vec::new(),
        }
    }

    /// The time since the previous lap, as step `what`.
    fn lap(&mut self, what: &'static str) {
        let prev: f64 = self.times.iter().map(|t| t.1).sum();
        self.times
            .push((what, self.t0.elapsed().as_secs_f64() - prev));
    }

    fn event(&self) -> TraceEvent {
        TraceEvent::Source {
            source: "collector-setup".into(),
            detail: self
                .times
                .iter()
                .map(|(w, s)| format!("{w}={s:.3}s"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// The trace being written; write errors name its file.
struct Output<'a> {
    w: TraceWriter,
    path: &'a Path,
}

impl Output<'_> {
    fn write(&mut self, e: &TraceEvent) -> Result<()> {
        self.w
            .write(e)
            .with_context(|| format!("write {}", self.path.display()))
    }

    fn flush(&mut self) -> Result<()> {
        self.w
            .flush()
            .with_context(|| format!("write {}", self.path.display()))
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        s => format!("signal {s}"),
    }
}

fn unavailable(source: &str, reason: String) -> TraceEvent {
    TraceEvent::Unavailable {
        source: source.into(),
        reason,
    }
}

fn now_mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The snapshot, before anything changes, as the trace's header and first events.
/// Returns the open trace and those events (the layout to compare with at the end).
fn open_output<'a>(opts: &'a RecordOpts, laps: &mut Laps) -> Result<(Output<'a>, Vec<TraceEvent>)> {
    let snap = snapshot::take(Path::new("/"));
    laps.lap("snapshot");
    let mut header = snap.header.clone();
    header.source = "live".into();
    header.notes.extend(opts.notes.iter().cloned());
    // Streamed under the final name (a killed collector leaves a readable trace); the
    // destination is checked and an existing file replaced, not written into
    // (memmap_model::output::create_streaming, docs/collector.md).
    let w = TraceWriter::create_streaming(&opts.out, &header, &[], false)
        .context("the trace to record")?;
    let mut out = Output { w, path: &opts.out };
    let initial: Vec<TraceEvent> = snap.events;
    for e in &initial {
        out.write(e)?;
    }
    Ok((out, initial))
}

/// Writes the setup's events (sources, unavailable ones, setup times), says where the
/// recording goes, and marks its start.
fn announce(opts: &RecordOpts, out: &mut Output, setup_events: &[TraceEvent]) -> Result<()> {
    for e in setup_events {
        out.write(e)?;
    }
    out.flush()?;
    let unavailable_n = setup_events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Unavailable { .. }))
        .count();
    opts.say(&format!(
        "recording to {} ({} sources, {} unavailable: see `memmap-collect info`)",
        opts.out.display(),
        setup_events
            .iter()
            .filter(|e| matches!(e, TraceEvent::Source { .. }))
            .count(),
        unavailable_n
    ));
    out.write(&TraceEvent::Mark {
        t_ns: now_mono_ns(),
        text: "memmap-collect: recording started".into(),
    })
}

/// Writes what the sources send, through `filter`, until the command exited (plus a
/// short grace), the duration passed or a signal arrived; then stops the sources and
/// writes what they still deliver until every one is done. Returns the exit code and
/// whether a signal ended the recording.
fn collect_until_stop(
    opts: &RecordOpts,
    signals: &Signals,
    stop: &AtomicBool,
    rx: &mpsc::Receiver<Msg>,
    child: &mut Option<HeldChild>,
    filter: &mut InvolvedFilter,
    out: &mut Output,
) -> Result<(i32, bool)> {
    let start = Instant::now();
    let mut exit_code = 0;
    let mut interrupted = false;
    let mut child_done_at: Option<Instant> = None;
    let mut stopping = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Msg::Events(evs)) => {
                for e in filter.admit(evs) {
                    out.write(&e)?;
                }
                // One flush per batch (a source's events of one poll, <= 100 ms): a
                // killed collector leaves whole lines up to its last batch.
                out.flush()?;
            }
            Ok(Msg::Done(evs)) => {
                for e in filter.admit(evs) {
                    out.write(&e)?;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every source finished (after the stop), or none was running at all.
            Err(mpsc::RecvTimeoutError::Disconnected) if stopping => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50))
            }
        }
        if stopping {
            continue;
        }
        if let Some(c) = child.as_mut() {
            if child_done_at.is_none() {
                if let Some(code) = c.try_wait()? {
                    exit_code = code;
                    child_done_at = Some(Instant::now());
                }
            }
        }
        let sig = signals.first();
        let timed_out = opts.duration.is_some_and(|d| start.elapsed() >= d);
        // A short grace after the command: trailing kretprobes, uevents and log lines.
        let child_finished =
            child_done_at.is_some_and(|t| t.elapsed() > Duration::from_millis(300));
        if sig.is_some() || timed_out || child_finished {
            if let Some(sig) = sig {
                interrupted = true;
                // A signal is the normal end of a recording without a command; with
                // one, 128 + the signal, as a shell reports a command it killed.
                exit_code = if child.is_some() { 128 + sig } else { 0 };
                opts.say(&format!("{}: stopping", signal_name(sig)));
            }
            if let Some(c) = child.as_mut() {
                if child_done_at.is_none() {
                    if let Some(code) = c.terminate(Duration::from_secs(2)) {
                        if !interrupted {
                            exit_code = code;
                        }
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            stopping = true;
        }
    }
    Ok((exit_code, interrupted))
}

/// After the sources stopped: ring buffer overruns of our instance, the stop mark, the
/// collector's own cost, and the layout the command left; flushed.
fn close(out: &mut Output, instance_dir: Option<&Path>, initial: &[TraceEvent]) -> Result<()> {
    // Tracefs ring buffer overruns of our instance.
    if let Some(dir) = instance_dir {
        let overrun = setup::instance_overrun(dir);
        if overrun > 0 {
            out.write(&TraceEvent::Lost {
                source: "tracefs-instance".into(),
                count: overrun,
            })?;
        }
    }
    out.write(&TraceEvent::Mark {
        t_ns: now_mono_ns(),
        text: STOP_MARK.into(),
    })?;
    out.write(&collector_resources())?;
    // The layout after the command (namespaces it created, blocks it onlined).
    let after = snapshot::take(Path::new("/"));
    for e in after
        .events
        .iter()
        .filter(|e| is_layout(e) && !initial.contains(e))
    {
        out.write(e)?;
    }
    out.flush()?;
    Ok(())
}

/// The collector's own cost (RUSAGE_SELF: the command's usage is not in it).
fn collector_resources() -> TraceEvent {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid rusage pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let cpu_s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    TraceEvent::Source {
        source: "collector-resources".into(),
        detail: format!(
            "peak_rss_kib={} user_s={:.3} sys_s={:.3}",
            ru.ru_maxrss,
            cpu_s(ru.ru_utime),
            cpu_s(ru.ru_stime)
        ),
    }
}

fn is_layout(e: &TraceEvent) -> bool {
    matches!(
        e,
        TraceEvent::Namespace { .. }
            | TraceEvent::NdDevice { .. }
            | TraceEvent::MemoryBlock { .. }
            | TraceEvent::Iomem { .. }
            | TraceEvent::Zone { .. }
    )
}
