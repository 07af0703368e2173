//! The sources a recording reads, each on its own thread: perf ring buffers
//! (tracepoints and user page faults), trace_pipe files (function_graph, kprobes,
//! trace_marker), and uevents + /dev/kmsg. Each sends batches of events to the main
//! thread as [`Msg`]s and stops when told to, after draining what the kernel holds.

use super::{now_mono_ns, unavailable, FaultSource, RecordOpts};
use crate::correlate::{Correlator, Sample};
use crate::import::ftrace::FtraceParser;
use crate::perf::{self, Probe, Want};
use crate::{kmsg, uevent};
use anyhow::{Context, Result};
use memmap_model::trace::TraceEvent;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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

pub(super) enum Msg {
    Events(Vec<TraceEvent>),
    /// A source's final word (lost counts, errors).
    Done(Vec<TraceEvent>),
}

/// The running sources: what they send, and their threads (they end once `stop` is
/// set and they drained).
///
/// Also the guard that ends them on an error path: dropped before the tracing setup is
/// undone, it stops every thread and waits for it, so no trace_pipe of our instance is
/// still open when the instance is removed (rmdir fails with EBUSY while a reader
/// holds it: the instance, tracing on, outlived a collector that stopped on a full
/// disk) and no perf event outlives the recording.
pub(super) struct Sources {
    rx: Option<mpsc::Receiver<Msg>>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Sources {
    /// What the sources send.
    pub fn rx(&self) -> &mpsc::Receiver<Msg> {
        self.rx.as_ref().expect("receiver is only taken on drop")
    }

    /// After the stop was set and everything they sent was read: wait for the threads.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        // Nobody reads any more: with the receiver gone a thread's next send fails and
        // it returns instead of draining what the kernel still holds.
        drop(self.rx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Opens and starts every source `opts` asks for: perf (needs the tracefs formats),
/// one reader per trace_pipe in `pipes`, uevents + kmsg. The command's user faults are
/// sampled for `child_pid`'s tree. What is opened or unavailable goes to `events`.
pub(super) fn start(
    opts: &RecordOpts,
    tracefs: Option<&Path>,
    pipes: Vec<(String, PathBuf)>,
    child_pid: Option<u32>,
    stop: &Arc<AtomicBool>,
    events: &mut Vec<TraceEvent>,
) -> Result<Sources> {
    let (tx, rx) = mpsc::channel::<Msg>();
    // The guard from the first thread on: an error below stops what already runs.
    let mut sources = Sources {
        rx: Some(rx),
        threads: Vec::new(),
        stop: stop.clone(),
    };
    if opts.perf {
        match tracefs {
            None => events.push(unavailable(
                "perf",
                "tracepoint formats need tracefs".into(),
            )),
            Some(t) => {
                if let Some(th) = start_perf(opts, t, child_pid, stop, &tx, events)? {
                    sources.threads.push(th);
                }
            }
        }
    }
    for (label, pipe) in pipes {
        let stop = stop.clone();
        let tx = tx.clone();
        sources.threads.push(std::thread::spawn(move || {
            pipe_thread(label, pipe, stop, tx)
        }));
    }
    if let Some(th) = start_logs(opts, stop, &tx, events) {
        sources.threads.push(th);
    }
    drop(tx);
    Ok(sources)
}

/// perf: every tracepoint of [`TRACEPOINTS`] system-wide, and the command's user page
/// faults, in one ring buffer per CPU.
fn start_perf(
    opts: &RecordOpts,
    tracefs: &Path,
    child_pid: Option<u32>,
    stop: &Arc<AtomicBool>,
    tx: &mpsc::Sender<Msg>,
    events: &mut Vec<TraceEvent>,
) -> Result<Option<JoinHandle<()>>> {
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
    let (sampler, status) = perf::open(tracefs, &wants, &cpus, opts.ring_pages);
    for (src, st) in status {
        events.push(match st {
            Ok(d) => TraceEvent::Source {
                source: src,
                detail: d,
            },
            Err(r) => unavailable(&src, r),
        });
    }
    let Some(mut s) = sampler else {
        return Ok(None);
    };
    s.enable().context("enable perf events")?;
    let stop = stop.clone();
    let tx = tx.clone();
    Ok(Some(std::thread::spawn(move || perf_thread(s, stop, tx))))
}

/// uevents (NETLINK_KOBJECT_UEVENT) and /dev/kmsg, read by one thread; `None` when
/// neither is asked for or opens.
fn start_logs(
    opts: &RecordOpts,
    stop: &Arc<AtomicBool>,
    tx: &mpsc::Sender<Msg>,
    events: &mut Vec<TraceEvent>,
) -> Option<JoinHandle<()>> {
    let ue = if opts.uevents {
        match uevent::UeventSocket::open() {
            Ok(s) => {
                events.push(TraceEvent::Source {
                    source: "uevent".into(),
                    detail: "NETLINK_KOBJECT_UEVENT group 1 (kernel)".into(),
                });
                Some(s)
            }
            Err(e) => {
                events.push(unavailable("uevent", e.to_string()));
                None
            }
        }
    } else {
        None
    };
    let km = if opts.kmsg {
        match kmsg::Kmsg::open(false) {
            Ok(k) => {
                events.push(TraceEvent::Source {
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
                events.push(unavailable("kmsg", why));
                None
            }
        }
    } else {
        None
    };
    if ue.is_none() && km.is_none() {
        return None;
    }
    let stop = stop.clone();
    let tx = tx.clone();
    Some(std::thread::spawn(move || log_thread(ue, km, stop, tx)))
}

/// The online CPUs (/sys/devices/system/cpu/online); 0..available_parallelism when
/// that cannot be read.
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
    let _ = tx.send(Msg::Done(out));
}

fn pipe_thread(label: String, path: PathBuf, stop: Arc<AtomicBool>, tx: mpsc::Sender<Msg>) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Msg::Done(vec![TraceEvent::Unavailable {
                source: format!("trace_pipe:{label}"),
                reason: format!("{}: {e}", path.display()),
            }]));
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
    // A read error other than "nothing now" ends this source, named in the trace.
    let mut read_error: Option<String> = None;
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
                Err(e) => {
                    read_error = Some(format!("read {}: {e}", path.display()));
                    break;
                }
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
        if read_error.is_some() {
            break;
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
    if let Some(reason) = read_error {
        out.push(TraceEvent::Unavailable {
            source: format!("trace_pipe:{label}"),
            reason,
        });
    }
    let _ = tx.send(Msg::Done(out));
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
                    errors.push(format!(
                        "read the uevent socket (NETLINK_KOBJECT_UEVENT): {e}"
                    ));
                    ue = None;
                }
            }
        }
        if let Some(k) = km.as_mut() {
            if let Err(e) = k.drain(&mut out) {
                errors.push(format!("read /dev/kmsg: {e}"));
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
    let _ = tx.send(Msg::Done(out));
}
