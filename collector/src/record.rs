//! `memmap-collect record`: snapshot, then every source the kernel offers until the
//! command exits, the duration passes or a signal arrives.
//!
//! Threads: one per trace_pipe (our instance; the top level when function_graph must
//! run there), one for perf ring buffers, one for uevents + /dev/kmsg. They send event
//! batches to the main thread, which writes and flushes each record, filters the
//! high-rate system-wide tracepoints (sched_switch, workqueue) down to the tasks
//! involved, and owns the cleanup (`tracefs::State`, undone on every exit path).

use crate::correlate::{Correlator, Sample};
use crate::import::ftrace::FtraceParser;
use crate::perf::{self, Probe, Want};
use crate::tracefs::{self, State};
use crate::{kmsg, snapshot, uevent};
use anyhow::{Context, Result};
use memmap_model::trace::{TraceEvent, TraceWriter};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How the command's user page faults are sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultSource {
    /// The software event PERF_COUNT_SW_PAGE_FAULTS, user mode (`software:page-faults`).
    Software,
    /// The `exceptions:page_fault_user` tracepoint.
    Tracepoint,
}

/// The tracepoint [`FaultSource::Tracepoint`] samples.
const FAULT_TRACEPOINT: (&str, &str) = ("exceptions", "page_fault_user");

/// Tracepoints sampled system-wide through perf (user page faults are added apart).
const TRACEPOINTS: &[(&str, &str)] = &[
    ("fs_dax", "dax_pmd_fault"),
    ("fs_dax", "dax_pmd_fault_done"),
    ("fs_dax", "dax_pte_fault"),
    ("fs_dax", "dax_pte_fault_done"),
    ("fs_dax", "dax_load_hole"),
    ("fs_dax", "dax_insert_mapping"),
    ("sched", "sched_switch"),
    ("workqueue", "workqueue_execute_start"),
    ("workqueue", "workqueue_execute_end"),
    ("initcall", "initcall_start"),
    ("initcall", "initcall_finish"),
];

enum Msg {
    Events(Vec<TraceEvent>),
    /// A source's final word (lost counts, errors).
    Done(String, Vec<TraceEvent>),
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

/// Removes what was set up, however the recording ends (return, `?`, panic unwind).
struct Cleanup {
    state: Option<State>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut st) = self.state.take() {
            for e in st.undo() {
                eprintln!("memmap-collect: cleanup: {e}");
            }
        }
    }
}

pub struct Outcome {
    pub exit_code: i32,
    pub events: u64,
    pub interrupted: bool,
}

pub fn record(opts: &RecordOpts) -> Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signalled = Vec::new();
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signalled.push(Arc::new(AtomicBool::new(false)));
        signal_hook::flag::register(sig, signalled.last().unwrap().clone())
            .context("install signal handler")?;
    }
    let any_signal = || signalled.iter().any(|s| s.load(Ordering::Relaxed));

    let setup_t0 = Instant::now();
    let mut setup_times: Vec<(&str, f64)> = Vec::new();
    let lap = |what: &'static str, times: &mut Vec<(&str, f64)>| {
        let prev: f64 = times.iter().map(|t| t.1).sum();
        times.push((what, setup_t0.elapsed().as_secs_f64() - prev));
    };
    let snap = snapshot::take(Path::new("/"));
    lap("snapshot", &mut setup_times);
    let mut header = snap.header.clone();
    header.source = "live".into();
    header.notes.extend(opts.notes.iter().cloned());
    let mut w = TraceWriter::create(&opts.out, &header, false)
        .with_context(|| format!("create {}", opts.out.display()))?;
    let write = |w: &mut TraceWriter, e: &TraceEvent| -> Result<()> {
        w.write(e)
            .with_context(|| format!("write {}", opts.out.display()))
    };
    let initial: Vec<TraceEvent> = snap.events;
    for e in &initial {
        write(&mut w, e)?;
    }
    let say = |m: &str| {
        if !opts.quiet {
            eprintln!("memmap-collect: {m}");
        }
    };
    let mut setup_events: Vec<TraceEvent> = Vec::new();
    let unavailable = |source: &str, reason: String| TraceEvent::Unavailable {
        source: source.into(),
        reason,
    };
    let is_root = unsafe { libc::geteuid() } == 0;

    // ---- tracefs: instance, kprobes, function_graph
    let mut cleanup = Cleanup { state: None };
    let mut pipes: Vec<(String, PathBuf)> = Vec::new();
    let mut marker: Option<PathBuf> = None;
    let mut instance_dir: Option<PathBuf> = None;
    let tracefs_path = match tracefs::find() {
        Ok(p) => Some((p, false)),
        Err(why) if is_root => match tracefs::mount() {
            Ok(p) => Some((p, true)),
            Err(e) => {
                setup_events.push(unavailable("tracefs", format!("{why}; {e}")));
                None
            }
        },
        Err(why) => {
            setup_events.push(unavailable(
                "tracefs",
                format!("{why}; mounting needs root (CAP_SYS_ADMIN)"),
            ));
            None
        }
    };
    for c in tracefs::clean_stale(tracefs_path.as_ref().map(|t| t.0.as_path())) {
        say(&c);
        setup_events.push(TraceEvent::Source {
            source: "stale-cleanup".into(),
            detail: c,
        });
    }
    if let Some((t, mounted)) = &tracefs_path {
        let st = State {
            pid: std::process::id(),
            tracefs: t.clone(),
            mounted: *mounted,
            ..Default::default()
        };
        cleanup.state = Some(st);
        let st = cleanup.state.as_mut().unwrap();
        if let Err(e) = st.save() {
            setup_events.push(unavailable(
                "tracefs",
                format!("cannot save the collector's state, so changes nothing: {e:#}"),
            ));
        }
        let trace_ab = tracefs::traceability(t);
        lap("traceability", &mut setup_times);
        for (func, ftrace, kprobe, reason) in &trace_ab.rows {
            setup_events.push(TraceEvent::Traceable {
                func: func.clone(),
                ftrace: *ftrace,
                kprobe: *kprobe,
                reason: reason.clone(),
            });
        }
        match tracefs::create_instance(st) {
            Err(e) => setup_events.push(unavailable(
                "tracefs-instance",
                format!("{e:#}{}", if is_root { "" } else { " (needs root)" }),
            )),
            Ok(dir) => {
                let _ = tracefs::write(&dir.join("trace_clock"), "mono");
                let _ = tracefs::write(&dir.join("buffer_size_kb"), &opts.buffer_kb.to_string());
                marker = Some(dir.join("trace_marker"));
                pipes.push(("instance".into(), dir.join("trace_pipe")));
                setup_events.push(TraceEvent::Source {
                    source: "tracefs-instance".into(),
                    detail: format!("{} (clock mono, {} KiB/CPU)", dir.display(), opts.buffer_kb),
                });
                instance_dir = Some(dir);
            }
        }
        let graph_funcs: Vec<&str> = trace_ab
            .rows
            .iter()
            .filter(|r| r.1 && tracefs::GRAPH_FUNCTIONS.contains(&r.0.as_str()))
            .map(|r| r.0.as_str())
            .collect();
        if opts.ftrace {
            let idx: Vec<usize> = graph_funcs
                .iter()
                .filter_map(|f| trace_ab.filter_index.get(*f).copied())
                .collect();
            match setup_function_graph(
                st,
                instance_dir.as_deref(),
                &graph_funcs,
                &idx,
                opts.buffer_kb,
            ) {
                Ok((where_, pipe)) => {
                    setup_events.push(TraceEvent::Source {
                        source: "function_graph".into(),
                        detail: format!(
                            "{where_}: {} functions: {}",
                            graph_funcs.len(),
                            graph_funcs.join(" ")
                        ),
                    });
                    if let Some(p) = pipe {
                        pipes.push(("top-level".into(), p));
                    }
                }
                Err(e) => setup_events.push(unavailable("function_graph", format!("{e:#}"))),
            }
        }
        lap("instance+function_graph", &mut setup_times);
        if opts.kprobes {
            if let Some(dir) = &instance_dir {
                for (func, args) in tracefs::KPROBES {
                    let usable = trace_ab.rows.iter().find(|r| r.0 == *func);
                    match usable {
                        Some(r) if !r.2 => {
                            setup_events.push(unavailable(&format!("kprobe:{func}"), r.3.clone()));
                            continue;
                        }
                        None => continue,
                        _ => {}
                    }
                    match tracefs::add_kprobe(st, func, args) {
                        Ok(names) => {
                            for n in &names {
                                let _ =
                                    tracefs::write(&dir.join("events").join(n).join("enable"), "1");
                            }
                            setup_events.push(TraceEvent::Source {
                                source: format!("kprobe:{func}"),
                                detail: format!("{args} (+ kretprobe)"),
                            });
                        }
                        Err(e) => setup_events
                            .push(unavailable(&format!("kprobe:{func}"), format!("{e:#}"))),
                    }
                }
            }
        }
        lap("kprobes", &mut setup_times);
        match tracefs::enable_dyndbg(st, "memmap_init_zone_device") {
            Ok(true) => setup_events.push(TraceEvent::Source {
                source: "dyndbg".into(),
                detail: "memmap_init_zone_device pr_debug (\"initialised N pages in M ms\") on".into(),
            }),
            Ok(false) => setup_events.push(unavailable(
                "dyndbg",
                "no dynamic debug site for memmap_init_zone_device (not built, not loaded, or no debugfs)".into(),
            )),
            Err(e) => setup_events.push(unavailable("dyndbg", format!("{e:#}"))),
        }
        if let Some(dir) = &instance_dir {
            let _ = tracefs::write(&dir.join("tracing_on"), "1");
        }
    }

    // ---- the command, held before exec until every source is open
    let mut child = match opts.command.is_empty() {
        true => None,
        false => Some(HeldChild::spawn(&opts.command, marker.as_deref())?),
    };
    let child_pid = child.as_ref().map(|c| c.pid);

    // ---- perf tracepoints
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut threads = Vec::new();
    if opts.perf {
        match &tracefs_path {
            None => setup_events.push(unavailable(
                "perf",
                "tracepoint formats need tracefs".into(),
            )),
            Some((t, _)) => {
                let cpus = online_cpus();
                let mut wants: Vec<Want> = TRACEPOINTS
                    .iter()
                    .map(|(s, e)| Want {
                        probe: Probe::tracepoint(s, e),
                        period: 1,
                        task: None,
                    })
                    .collect();
                // User faults of the command's process tree (system-wide without one).
                if opts.fault_period > 0 {
                    wants.push(Want {
                        probe: match opts.fault_source {
                            FaultSource::Software => Probe::UserPageFaults,
                            FaultSource::Tracepoint => {
                                Probe::tracepoint(FAULT_TRACEPOINT.0, FAULT_TRACEPOINT.1)
                            }
                        },
                        period: opts.fault_period,
                        task: child_pid,
                    });
                }
                let (sampler, status) = perf::open(t, &wants, &cpus, opts.ring_pages);
                for (src, st) in status {
                    setup_events.push(match st {
                        Ok(d) => TraceEvent::Source {
                            source: src,
                            detail: d,
                        },
                        Err(r) => unavailable(&src, r),
                    });
                }
                if let Some(mut s) = sampler {
                    s.enable().context("enable perf events")?;
                    let stop = stop.clone();
                    let tx = tx.clone();
                    threads.push(std::thread::spawn(move || perf_thread(s, stop, tx)));
                }
            }
        }
    }
    // ---- trace_pipe readers
    for (label, pipe) in pipes {
        let stop = stop.clone();
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            pipe_thread(label, pipe, stop, tx)
        }));
    }
    // ---- uevents + kmsg
    {
        let ue = if opts.uevents {
            match uevent::UeventSocket::open() {
                Ok(s) => {
                    setup_events.push(TraceEvent::Source {
                        source: "uevent".into(),
                        detail: "NETLINK_KOBJECT_UEVENT group 1 (kernel)".into(),
                    });
                    Some(s)
                }
                Err(e) => {
                    setup_events.push(unavailable("uevent", e.to_string()));
                    None
                }
            }
        } else {
            None
        };
        let km = if opts.kmsg {
            match kmsg::Kmsg::open(false) {
                Ok(k) => {
                    setup_events.push(TraceEvent::Source {
                        source: "kmsg".into(),
                        detail: "/dev/kmsg from now on".into(),
                    });
                    Some(k)
                }
                Err(e) => {
                    let why = if e.kind() == std::io::ErrorKind::PermissionDenied {
                        format!("/dev/kmsg: {e} (needs root or kernel.dmesg_restrict=0)")
                    } else {
                        format!("/dev/kmsg: {e}")
                    };
                    setup_events.push(unavailable("kmsg", why));
                    None
                }
            }
        } else {
            None
        };
        if ue.is_some() || km.is_some() {
            let stop = stop.clone();
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || log_thread(ue, km, stop, tx)));
        }
    }
    drop(tx);
    lap("perf+uevent+kmsg", &mut setup_times);
    setup_events.push(TraceEvent::Source {
        source: "collector-setup".into(),
        detail: setup_times
            .iter()
            .map(|(w, s)| format!("{w}={s:.3}s"))
            .collect::<Vec<_>>()
            .join(" "),
    });
    for e in &setup_events {
        write(&mut w, e)?;
    }
    w.flush()?;
    let unavailable_n = setup_events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Unavailable { .. }))
        .count();
    say(&format!(
        "recording to {} ({} sources, {} unavailable: see `memmap-collect info`)",
        opts.out.display(),
        setup_events
            .iter()
            .filter(|e| matches!(e, TraceEvent::Source { .. }))
            .count(),
        unavailable_n
    ));
    write(
        &mut w,
        &TraceEvent::Mark {
            t_ns: now_mono_ns(),
            text: "memmap-collect: recording started".into(),
        },
    )?;
    if let Some(c) = child.as_mut() {
        c.release(); // the command execs now
    }

    // ---- main loop
    let start = Instant::now();
    let mut filter = InvolvedFilter::new(child_pid);
    let mut exit_code = 0;
    let mut interrupted = false;
    let mut child_done_at: Option<Instant> = None;
    let mut stopping = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Msg::Events(evs)) => {
                for e in filter.admit(evs) {
                    write(&mut w, &e)?;
                }
                // One flush per batch (a source's events of one poll, <= 100 ms): a
                // killed collector leaves whole lines up to its last batch.
                w.flush()?;
            }
            Ok(Msg::Done(_source, evs)) => {
                for e in filter.admit(evs) {
                    write(&mut w, &e)?;
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
        let sig = any_signal();
        let timed_out = opts.duration.is_some_and(|d| start.elapsed() >= d);
        // A short grace after the command: trailing kretprobes, uevents and log lines.
        let child_finished =
            child_done_at.is_some_and(|t| t.elapsed() > Duration::from_millis(300));
        if sig || timed_out || child_finished {
            if sig {
                interrupted = true;
                // Ctrl-C is the normal end of a recording without a command.
                exit_code = if child.is_some() { 130 } else { 0 };
                say("signal: stopping");
            }
            if let Some(c) = child.as_mut() {
                if child_done_at.is_none() {
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(c.pid as i32, libc::SIGTERM) };
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_secs(2) {
                        if let Ok(Some(code)) = c.try_wait() {
                            if !interrupted {
                                exit_code = code;
                            }
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            stopping = true;
        }
    }
    for t in threads {
        let _ = t.join();
    }
    for e in filter.finish() {
        write(&mut w, &e)?;
    }
    // Tracefs ring buffer overruns of our instance.
    if let Some(dir) = &instance_dir {
        let overrun = instance_overrun(dir);
        if overrun > 0 {
            write(
                &mut w,
                &TraceEvent::Lost {
                    source: "tracefs-instance".into(),
                    count: overrun,
                },
            )?;
        }
    }
    write(
        &mut w,
        &TraceEvent::Mark {
            t_ns: now_mono_ns(),
            text: "memmap-collect: recording stopped".into(),
        },
    )?;
    // The collector's own cost (RUSAGE_SELF: the command's usage is not in it).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid rusage pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let cpu_s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    write(
        &mut w,
        &TraceEvent::Source {
            source: "collector-resources".into(),
            detail: format!(
                "peak_rss_kib={} user_s={:.3} sys_s={:.3}",
                ru.ru_maxrss,
                cpu_s(ru.ru_utime),
                cpu_s(ru.ru_stime)
            ),
        },
    )?;
    // The layout after the command (namespaces it created, blocks it onlined).
    let after = snapshot::take(Path::new("/"));
    for e in after
        .events
        .iter()
        .filter(|e| is_layout(e) && !initial.contains(e))
    {
        write(&mut w, e)?;
    }
    w.flush()?;
    drop(cleanup);
    Ok(Outcome {
        exit_code,
        events: w.events_written,
        interrupted,
    })
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

/// The recorded command, forked but held before exec until the collector's sources are
/// open (so its first page faults are seen). std::process::Command cannot do this: its
/// spawn waits for the exec.
struct HeldChild {
    pid: u32,
    release: Option<std::os::fd::OwnedFd>,
}

impl HeldChild {
    fn spawn(argv: &[String], marker: Option<&Path>) -> Result<HeldChild> {
        use std::ffi::CString;
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .context("command argument contains a NUL byte")?;
        let mut env: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| k != "MEMMAP_COLLECT_MARKER")
            .filter_map(|(k, v)| {
                let mut b = k.into_encoded_bytes();
                b.push(b'=');
                b.extend(v.into_encoded_bytes());
                CString::new(b).ok()
            })
            .collect();
        if let Some(m) = marker {
            env.push(CString::new(format!(
                "MEMMAP_COLLECT_MARKER={}",
                m.display()
            ))?);
        }
        let mut argp: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        argp.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("pipe");
        }
        // SAFETY: between fork and exec the child only calls async-signal-safe
        // functions (read, close, execvpe, write, _exit) on memory prepared before.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("fork");
        }
        if pid == 0 {
            unsafe {
                libc::close(fds[1]);
                let mut b = 0u8;
                libc::read(fds[0], &mut b as *mut u8 as *mut libc::c_void, 1);
                libc::close(fds[0]);
                libc::execvpe(argp[0], argp.as_ptr(), envp.as_ptr());
                let msg = b"memmap-collect: cannot exec the command\n";
                libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
                libc::_exit(127);
            }
        }
        // SAFETY: the read end is the child's; we own the write end.
        unsafe {
            libc::close(fds[0]);
            Ok(HeldChild {
                pid: pid as u32,
                release: Some(std::os::fd::FromRawFd::from_raw_fd(fds[1])),
            })
        }
    }

    /// Let the child exec (closing the pipe ends its read).
    fn release(&mut self) {
        self.release = None;
    }

    /// Exit code once it exited (128+signal when killed).
    fn try_wait(&mut self) -> Result<Option<i32>> {
        self.release();
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
        if r < 0 {
            return Err(std::io::Error::last_os_error()).context("waitpid");
        }
        if r == 0 {
            return Ok(None);
        }
        Ok(Some(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            1
        }))
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // An error before release: do not leave the held child waiting forever.
        if self.release.is_some() {
            // SAFETY: our own child.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
            let mut st = 0;
            unsafe { libc::waitpid(self.pid as i32, &mut st, 0) };
        }
    }
}

pub fn online_cpus() -> Vec<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            v.extend(a..=b);
        }
    }
    if v.is_empty() {
        v = (0..std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1))
            .collect();
    }
    v
}

/// function_graph in our instance when the kernel allows it (6.9+), else at the top
/// level when nobody uses it (state saved for restore). Returns where, and the extra
/// trace_pipe to read.
fn setup_function_graph(
    st: &mut State,
    instance: Option<&Path>,
    funcs: &[&str],
    index: &[usize],
    buffer_kb: u32,
) -> Result<(String, Option<PathBuf>)> {
    let t = st.tracefs.clone();
    let tracers = tracefs::read(&t.join("available_tracers"))
        .map_err(|e| anyhow::anyhow!("{e:#} (needs root)"))?;
    if !tracers.split_whitespace().any(|x| x == "function_graph") {
        anyhow::bail!(
            "function_graph tracer not in this kernel (CONFIG_FUNCTION_GRAPH_TRACER off); available tracers: {}",
            tracers.trim()
        );
    }
    if funcs.is_empty() {
        anyhow::bail!("none of the hotplug/memmap functions is ftrace-able on this kernel");
    }
    let opts = [
        "funcgraph-proc",
        "funcgraph-abstime",
        "funcgraph-cpu",
        "funcgraph-tail",
        "funcgraph-duration",
    ];
    if let Some(dir) = instance {
        let itr = tracefs::read(&dir.join("available_tracers")).unwrap_or_default();
        if itr.split_whitespace().any(|x| x == "function_graph") {
            set_filter(&dir.join("set_ftrace_filter"), funcs, index)?;
            tracefs::write(&dir.join("current_tracer"), "function_graph")?;
            for o in opts {
                let _ = tracefs::write(&dir.join("options").join(o), "1");
            }
            return Ok(("in the collector's instance".into(), None));
        }
    }
    let cur = tracefs::read(&t.join("current_tracer"))?;
    if cur.trim() != "nop" {
        anyhow::bail!(
            "function_graph is not allowed in instances on this kernel (before 6.9) and the top-level tracer is in use ({}): not touching it",
            cur.trim()
        );
    }
    tracefs::set_top_level(st, "tracing_on", "0")?;
    tracefs::set_top_level(st, "trace_clock", "mono")?;
    tracefs::set_top_level(st, "buffer_size_kb", &buffer_kb.to_string())?;
    tracefs::set_top_level(st, "set_ftrace_filter", "\n")?;
    set_filter(&t.join("set_ftrace_filter"), funcs, index)?;
    tracefs::set_top_level(st, "current_tracer", "function_graph")?;
    for o in opts {
        let f = format!("options/{o}");
        if t.join(&f).exists() {
            tracefs::set_top_level(st, &f, "1")?;
        }
    }
    tracefs::set_top_level(st, "tracing_on", "1")?;
    Ok((
        "top-level buffer (function_graph not allowed in instances before Linux 6.9; restored on exit)".into(),
        Some(t.join("trace_pipe")),
    ))
}

/// Set the function filter by index (fast), checking the kernel took exactly those
/// functions; by name otherwise.
fn set_filter(file: &Path, funcs: &[&str], index: &[usize]) -> Result<()> {
    if index.len() == funcs.len() {
        let ix: Vec<String> = index.iter().map(|i| i.to_string()).collect();
        if tracefs::write(file, &(ix.join(" ") + "\n")).is_ok() {
            let got = tracefs::read(file).unwrap_or_default();
            let mut got: Vec<&str> = got
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            let mut want = funcs.to_vec();
            got.sort_unstable();
            want.sort_unstable();
            if got == want {
                return Ok(());
            }
        }
    }
    tracefs::write(file, &(funcs.join(" ") + "\n"))
}

fn instance_overrun(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir.join("per_cpu")) {
        for c in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(c.path().join("stats")) {
                for l in s.lines() {
                    if let Some(v) = l.strip_prefix("overrun:") {
                        total += v.trim().parse::<u64>().unwrap_or(0);
                    }
                }
            }
        }
    }
    total
}

fn poll_fds(fds: &[i32], timeout_ms: i32) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: valid pollfd array.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
}

fn perf_thread(mut s: perf::TracepointSampler, stop: Arc<AtomicBool>, tx: mpsc::Sender<Msg>) {
    let mut corr = Correlator::new();
    let fds = s.fds();
    let mut out = Vec::new();
    let mut comms: HashMap<u32, String> = HashMap::new();
    let mut drain = |s: &mut perf::TracepointSampler,
                     final_pass: bool,
                     corr: &mut Correlator,
                     out: &mut Vec<TraceEvent>| {
        s.drain(final_pass, |r| {
            let name = r.format.name.clone();
            // perf samples carry no command name: sched_switch has it, others ask /proc
            // (once per task; a task already gone stays nameless).
            let task = match r.fields.get("prev_comm").and_then(|v| v.as_str()) {
                Some(c) => c.to_string(),
                None => comms
                    .entry(r.tid)
                    .or_insert_with(|| {
                        std::fs::read_to_string(format!("/proc/{}/comm", r.tid))
                            .map(|c| c.trim().to_string())
                            .unwrap_or_default()
                    })
                    .clone(),
            };
            corr.push(
                Sample {
                    t_ns: r.t_ns,
                    name: &name,
                    task: &task,
                    pid: r.tid,
                    cpu: r.cpu,
                    fields: r.fields,
                },
                out,
            );
        });
    };
    while !stop.load(Ordering::Relaxed) {
        poll_fds(&fds, 100);
        drain(&mut s, false, &mut corr, &mut out);
        if !out.is_empty() && tx.send(Msg::Events(std::mem::take(&mut out))).is_err() {
            return;
        }
    }
    s.disable();
    drain(&mut s, true, &mut corr, &mut out);
    corr.finish(&mut out);
    if s.lost > 0 {
        out.push(TraceEvent::Lost {
            source: "perf".into(),
            count: s.lost,
        });
    }
    let _ = tx.send(Msg::Done("perf".into(), out));
}

fn pipe_thread(label: String, path: PathBuf, stop: Arc<AtomicBool>, tx: mpsc::Sender<Msg>) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Msg::Done(
                label.clone(),
                vec![TraceEvent::Unavailable {
                    source: format!("trace_pipe:{label}"),
                    reason: format!("{}: {e}", path.display()),
                }],
            ));
            return;
        }
    };
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let mut parser = FtraceParser::new(&format!("{}", path.display()));
    let mut buf = vec![0u8; 256 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut lineno = 0usize;
    let mut out = Vec::new();
    let mut stopping_reads = 0;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            poll_fds(&[fd], 100);
        }
        let mut got = 0;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    pending.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => break,
            }
        }
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
            lineno += 1;
            let line = String::from_utf8_lossy(&pending[start..start + nl]);
            parser.line(lineno, &line, &mut out);
            start += nl + 1;
        }
        pending.drain(..start);
        if !out.is_empty() && tx.send(Msg::Events(std::mem::take(&mut out))).is_err() {
            return;
        }
        if stopping {
            // Drain what the kernel still holds: stop after two empty reads.
            if got == 0 {
                stopping_reads += 1;
                if stopping_reads >= 2 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(30));
            }
        }
    }
    parser.finish(&mut out);
    let _ = tx.send(Msg::Done(label, out));
}

fn log_thread(
    mut ue: Option<uevent::UeventSocket>,
    mut km: Option<kmsg::Kmsg>,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Msg>,
) {
    let fds: Vec<i32> = ue
        .iter()
        .map(|u| u.fd())
        .chain(km.iter().map(|k| k.fd()))
        .collect();
    let mut out = Vec::new();
    let mut lost_uevents = 0;
    let mut errors = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            poll_fds(&fds, 100);
        }
        if let Some(u) = ue.as_mut() {
            match u.drain(now_mono_ns(), &mut out) {
                Ok(l) => lost_uevents += l,
                Err(e) => {
                    errors.push(format!("uevent: {e}"));
                    ue = None;
                }
            }
        }
        if let Some(k) = km.as_mut() {
            if let Err(e) = k.drain(&mut out) {
                errors.push(format!("kmsg: {e}"));
                km = None;
            }
        }
        if !out.is_empty() && tx.send(Msg::Events(std::mem::take(&mut out))).is_err() {
            return;
        }
        if stopping {
            break;
        }
    }
    if lost_uevents > 0 {
        out.push(TraceEvent::Lost {
            source: "uevent".into(),
            count: lost_uevents,
        });
    }
    if let Some(k) = &km {
        if k.lost > 0 {
            out.push(TraceEvent::Lost {
                source: "kmsg".into(),
                count: k.lost,
            });
        }
    }
    for e in errors {
        out.push(TraceEvent::Unavailable {
            source: "log-thread".into(),
            reason: e,
        });
    }
    let _ = tx.send(Msg::Done("log".into(), out));
}

/// Keeps system-wide scheduler and workqueue samples only for the tasks involved: the
/// command's process tree, and every task seen in a memmap, function, kprobe or DAX
/// event. Samples of a task not yet known wait in a bounded look-back queue, so the
/// switches of a kworker that turns out to run the hotplug are kept.
struct InvolvedFilter {
    root: Option<u32>,
    involved: HashSet<u32>,
    descendant: HashMap<u32, bool>,
    lookback: VecDeque<TraceEvent>,
}

const LOOKBACK: usize = 50_000;

impl InvolvedFilter {
    fn new(root: Option<u32>) -> Self {
        InvolvedFilter {
            root,
            involved: root.into_iter().collect(),
            descendant: HashMap::new(),
            lookback: VecDeque::new(),
        }
    }

    fn is_descendant(&mut self, pid: u32) -> bool {
        let Some(root) = self.root else { return false };
        if let Some(&d) = self.descendant.get(&pid) {
            return d;
        }
        let mut p = pid;
        let mut d = false;
        for _ in 0..64 {
            if p == root {
                d = true;
                break;
            }
            if p <= 1 {
                break;
            }
            match ppid(p) {
                Some(pp) => p = pp,
                None => break,
            }
        }
        self.descendant.insert(pid, d);
        d
    }

    fn filtered_pids(e: &TraceEvent) -> Option<Vec<u32>> {
        let TraceEvent::Tracepoint {
            name, pid, fields, ..
        } = e
        else {
            return None;
        };
        if name.ends_with("sched_switch") {
            let g = |k: &str| fields.get(k).and_then(|v| v.as_u64()).map(|x| x as u32);
            Some(
                [g("prev_pid"), g("next_pid")]
                    .into_iter()
                    .flatten()
                    .filter(|&p| p != 0)
                    .collect(),
            )
        } else if name.starts_with("workqueue:") {
            Some(vec![*pid])
        } else {
            None
        }
    }

    fn admit(&mut self, evs: Vec<TraceEvent>) -> Vec<TraceEvent> {
        let mut out = Vec::with_capacity(evs.len());
        for e in evs {
            let new_pid = match &e {
                TraceEvent::FunctionSpan { pid, .. }
                | TraceEvent::MemmapInit { pid, .. }
                | TraceEvent::Kprobe { pid, .. }
                | TraceEvent::DaxFault { pid, .. } => Some(*pid),
                _ => None,
            };
            if let Some(p) = new_pid.filter(|&p| p != 0) {
                if self.involved.insert(p) {
                    // Release what this task left in the look-back queue.
                    let (keep, wait): (Vec<_>, Vec<_>) = self
                        .lookback
                        .drain(..)
                        .partition(|q| Self::filtered_pids(q).is_some_and(|ps| ps.contains(&p)));
                    out.extend(keep);
                    self.lookback = wait.into();
                }
            }
            match Self::filtered_pids(&e) {
                None => out.push(e),
                Some(ps) => {
                    let hit = ps
                        .iter()
                        .any(|&p| self.involved.contains(&p) || self.is_descendant(p));
                    if hit {
                        for &p in &ps {
                            if self.is_descendant(p) {
                                self.involved.insert(p);
                            }
                        }
                        out.push(e);
                    } else {
                        if self.lookback.len() >= LOOKBACK {
                            self.lookback.pop_front();
                        }
                        self.lookback.push_back(e);
                    }
                }
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<TraceEvent> {
        self.lookback.clear();
        Vec::new()
    }
}

fn ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm with spaces) S ppid ..."
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeMap;

    fn switch(prev: u32, next: u32) -> TraceEvent {
        let mut fields = BTreeMap::new();
        fields.insert("prev_pid".into(), Value::from(prev));
        fields.insert("next_pid".into(), Value::from(next));
        TraceEvent::Tracepoint {
            t_ns: 1,
            name: "sched:sched_switch".into(),
            task: String::new(),
            pid: prev,
            cpu: 0,
            fields,
        }
    }

    #[test]
    fn switches_of_uninvolved_tasks_wait_and_are_released_when_the_task_shows_up() {
        let mut f = InvolvedFilter::new(None);
        assert!(f.admit(vec![switch(4_000_001, 4_000_002)]).is_empty());
        let span = TraceEvent::MemmapInit {
            t_ns: 2,
            dur_ns: Some(1),
            func: "online_pages".into(),
            start_pfn: 0,
            nr_pages: 1,
            task: "kworker/0:1".into(),
            pid: 4_000_002,
            cpu: 0,
        };
        let out = f.admit(vec![
            span,
            switch(4_000_003, 4_000_004),
            switch(4_000_002, 0),
        ]);
        assert_eq!(out.len(), 3, "{out:?}"); // span, released switch, new switch
        assert_eq!(f.lookback.len(), 1);
    }

    #[test]
    fn a_panic_while_recording_still_undoes_the_setup() {
        // A fake tracefs with our instance and a changed top-level tracer, owned by the
        // guard the recorder holds; a panic unwinds through it.
        let tmp = std::env::temp_dir().join(format!("mc-panic-{}", std::process::id()));
        let t = tmp.join("tracing");
        let inst = t
            .join("instances")
            .join(tracefs::instance_name(std::process::id()));
        std::fs::create_dir_all(&inst).unwrap();
        std::fs::write(t.join("current_tracer"), "function_graph\n").unwrap();
        let st = State {
            pid: std::process::id(),
            tracefs: t.clone(),
            instance: Some(tracefs::instance_name(std::process::id())),
            top_level: vec![("current_tracer".into(), "nop".into())],
            ..Default::default()
        };
        st.save().unwrap();
        let r = std::panic::catch_unwind(move || {
            let _cleanup = Cleanup { state: Some(st) };
            panic!("something broke mid-recording");
        });
        assert!(r.is_err());
        assert_eq!(
            std::fs::read_to_string(t.join("current_tracer")).unwrap(),
            "nop"
        );
        assert!(!inst.exists());
        assert!(!tracefs::state_dir()
            .join(format!("{}.json", std::process::id()))
            .exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn the_command_tree_is_involved() {
        let me = std::process::id();
        let mut f = InvolvedFilter::new(Some(ppid(me).unwrap()));
        assert_eq!(f.admit(vec![switch(me, 0)]).len(), 1);
    }
}
