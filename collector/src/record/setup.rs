//! Kernel tracing state for a recording: tracefs (found or mounted), the collector's
//! own instance, function_graph, kprobes and the dynamic debug site, each recorded in
//! `tracefs::State` before it changes; and [`Cleanup`], the guard that undoes them
//! however the recording ends.

use super::{unavailable, Laps, RecordOpts};
use crate::tracefs::{self, State, Traceability};
use anyhow::Result;
use memmap_model::trace::TraceEvent;
use std::path::{Path, PathBuf};

/// Removes what was set up, however the recording ends (return, `?`, panic unwind).
pub(super) struct Cleanup {
    state: Option<State>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut st) = self.state.take() {
            for e in st.undo() {
                crate::eprint_line(&format!("memmap-collect: cleanup: {e}"));
            }
        }
    }
}

/// What the tracing setup leaves to the recording: the guard that undoes it, and the
/// files the sources read.
pub(super) struct Tracing {
    /// Undoes every change when this is dropped.
    cleanup: Cleanup,
    /// The tracefs mount (perf reads the tracepoint formats there).
    pub tracefs: Option<PathBuf>,
    /// trace_pipe files to read: our instance, and the top level when function_graph
    /// had to run there.
    pub pipes: Vec<(String, PathBuf)>,
    /// Our instance's trace_marker, for the command.
    pub marker: Option<PathBuf>,
    pub instance_dir: Option<PathBuf>,
}

/// tracefs: the instance, function_graph, kprobes and dynamic debug, as far as the
/// kernel and our privileges allow; every source that cannot be used is an
/// `unavailable` event in `events`.
pub(super) fn set_up_tracing(
    opts: &RecordOpts,
    laps: &mut Laps,
    events: &mut Vec<TraceEvent>,
) -> Tracing {
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut tr = Tracing {
        cleanup: Cleanup { state: None },
        tracefs: None,
        pipes: Vec::new(),
        marker: None,
        instance_dir: None,
    };
    let tracefs_path = find_or_mount(is_root, events);
    for c in tracefs::clean_stale(tracefs_path.as_ref().map(|t| t.0.as_path())) {
        opts.say(&c);
        events.push(TraceEvent::Source {
            source: "stale-cleanup".into(),
            detail: c,
        });
    }
    let Some((t, mounted)) = tracefs_path else {
        return tr;
    };
    tr.tracefs = Some(t.clone());
    let st = tr.cleanup.state.insert(State {
        pid: std::process::id(),
        tracefs: t.clone(),
        mounted,
        ..Default::default()
    });
    if let Err(e) = st.save() {
        events.push(unavailable(
            "tracefs",
            format!("cannot save the collector's state, so changes nothing: {e:#}"),
        ));
    }
    let trace_ab = tracefs::traceability(&t);
    laps.lap("traceability");
    for (func, ftrace, kprobe, reason) in &trace_ab.rows {
        events.push(TraceEvent::Traceable {
            func: func.clone(),
            ftrace: *ftrace,
            kprobe: *kprobe,
            reason: reason.clone(),
        });
    }
    if let Some(dir) = create_instance(st, opts, is_root, events) {
        tr.marker = Some(dir.join("trace_marker"));
        tr.pipes.push(("instance".into(), dir.join("trace_pipe")));
        tr.instance_dir = Some(dir);
    }
    if opts.ftrace {
        if let Some(p) = function_graph(st, opts, tr.instance_dir.as_deref(), &trace_ab, events) {
            tr.pipes.push(("top-level".into(), p));
        }
    }
    laps.lap("instance+function_graph");
    if opts.kprobes {
        if let Some(dir) = &tr.instance_dir {
            kprobes(st, dir, &trace_ab, events);
        }
    }
    laps.lap("kprobes");
    dyndbg(st, events);
    if let Some(dir) = &tr.instance_dir {
        let _ = tracefs::write(&dir.join("tracing_on"), "1");
    }
    tr
}

/// The tracefs mount and whether we mounted it (root only).
fn find_or_mount(is_root: bool, events: &mut Vec<TraceEvent>) -> Option<(PathBuf, bool)> {
    match tracefs::find() {
        Ok(p) => Some((p, false)),
        Err(why) if is_root => match tracefs::mount() {
            Ok(p) => Some((p, true)),
            Err(e) => {
                events.push(unavailable("tracefs", format!("{why}; {e}")));
                None
            }
        },
        Err(why) => {
            events.push(unavailable(
                "tracefs",
                format!("{why}; mounting needs root (CAP_SYS_ADMIN)"),
            ));
            None
        }
    }
}

/// The collector's instance (`memmap-collect-<pid>`), clock mono, its buffer size.
fn create_instance(
    st: &mut State,
    opts: &RecordOpts,
    is_root: bool,
    events: &mut Vec<TraceEvent>,
) -> Option<PathBuf> {
    match tracefs::create_instance(st) {
        Err(e) => {
            events.push(unavailable(
                "tracefs-instance",
                format!("{e:#}{}", if is_root { "" } else { " (needs root)" }),
            ));
            None
        }
        Ok(dir) => {
            let _ = tracefs::write(&dir.join("trace_clock"), "mono");
            let _ = tracefs::write(&dir.join("buffer_size_kb"), &opts.buffer_kb.to_string());
            events.push(TraceEvent::Source {
                source: "tracefs-instance".into(),
                detail: format!("{} (clock mono, {} KiB/CPU)", dir.display(), opts.buffer_kb),
            });
            Some(dir)
        }
    }
}

/// function_graph on the ftrace-able functions of `tracefs::GRAPH_FUNCTIONS`; returns
/// the top-level trace_pipe when it had to run there.
fn function_graph(
    st: &mut State,
    opts: &RecordOpts,
    instance_dir: Option<&Path>,
    trace_ab: &Traceability,
    events: &mut Vec<TraceEvent>,
) -> Option<PathBuf> {
    let graph_funcs: Vec<&str> = trace_ab
        .rows
        .iter()
        .filter(|r| r.1 && tracefs::GRAPH_FUNCTIONS.contains(&r.0.as_str()))
        .map(|r| r.0.as_str())
        .collect();
    let idx: Vec<usize> = graph_funcs
        .iter()
        .filter_map(|f| trace_ab.filter_index.get(*f).copied())
        .collect();
    match setup_function_graph(st, instance_dir, &graph_funcs, &idx, opts.buffer_kb) {
        Ok((where_, pipe)) => {
            events.push(TraceEvent::Source {
                source: "function_graph".into(),
                detail: format!(
                    "{where_}: {} functions: {}",
                    graph_funcs.len(),
                    graph_funcs.join(" ")
                ),
            });
            pipe
        }
        Err(e) => {
            events.push(unavailable("function_graph", format!("{e:#}")));
            None
        }
    }
}

/// kprobe + kretprobe on each of `tracefs::KPROBES` the kernel lets us probe, enabled
/// in our instance; a refused one is `unavailable` with the kernel's reason.
fn kprobes(st: &mut State, dir: &Path, trace_ab: &Traceability, events: &mut Vec<TraceEvent>) {
    for (func, args) in tracefs::KPROBES {
        let usable = trace_ab.rows.iter().find(|r| r.0 == *func);
        match usable {
            Some(r) if !r.2 => {
                events.push(unavailable(&format!("kprobe:{func}"), r.3.clone()));
                continue;
            }
            None => continue,
            _ => {}
        }
        match tracefs::add_kprobe(st, func, args) {
            Ok(names) => {
                for n in &names {
                    let _ = tracefs::write(&dir.join("events").join(n).join("enable"), "1");
                }
                events.push(TraceEvent::Source {
                    source: format!("kprobe:{func}"),
                    detail: format!("{args} (+ kretprobe)"),
                });
            }
            Err(e) => events.push(unavailable(&format!("kprobe:{func}"), format!("{e:#}"))),
        }
    }
}

/// The pr_debug of memmap_init_zone_device, through dynamic debug.
fn dyndbg(st: &mut State, events: &mut Vec<TraceEvent>) {
    match tracefs::enable_dyndbg(st, "memmap_init_zone_device") {
        Ok(true) => events.push(TraceEvent::Source {
            source: "dyndbg".into(),
            detail: "memmap_init_zone_device pr_debug (\"initialised N pages in M ms\") on".into(),
        }),
        Ok(false) => events.push(unavailable(
            "dyndbg",
            "no dynamic debug site for memmap_init_zone_device (not built, not loaded, or no debugfs)".into(),
        )),
        Err(e) => events.push(unavailable("dyndbg", format!("{e:#}"))),
    }
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

/// Events our instance's ring buffers overwrote (the `overrun:` of every CPU's stats).
pub(super) fn instance_overrun(dir: &Path) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
