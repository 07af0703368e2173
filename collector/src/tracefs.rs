//! tracefs: finding (or mounting) it, a tracing instance of our own, kprobe events,
//! function_graph, the dynamic-debug switch for the kernel's "initialised" message —
//! and undoing every one of them.
//!
//! Every change to global kernel state is written to a state file before it is made
//! (`/run/memmap-collect/<pid>.json`), and undone from that file on exit, on Ctrl-C,
//! SIGTERM and panic (Drop). A collector killed with SIGKILL leaves the file behind;
//! the next run finds it, sees the pid is gone and undoes what it lists
//! (`clean_stale`).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Functions of the hotplug / ZONE_DEVICE memmap paths worth a duration.
/// Per-page helpers (__init_single_page, __init_zone_device_page, memmap_init_compound)
/// are deliberately absent: tracing them costs more than the init itself.
pub const GRAPH_FUNCTIONS: &[&str] = &[
    "memmap_init_zone_device",
    "pmem_attach_disk",
    "nd_pmem_probe",
    "devm_memremap_pages",
    "memremap_pages",
    "pagemap_range",
    "arch_add_memory",
    "add_pages",
    "__add_pages",
    "sparse_add_section",
    "section_activate",
    "__populate_section_memmap",
    "vmemmap_populate",
    "move_pfn_range_to_zone",
    "memmap_init_range",
    "online_pages",
    "add_memory_resource",
    "__add_memory",
    "add_memory",
    "add_memory_driver_managed",
    "online_memory_block",
    "memory_subsys_online",
    "create_memory_block_devices",
    "mhp_init_memmap_on_memory",
    "init_memory_mapping",
    "memunmap_pages",
    "arch_remove_memory",
    "__remove_pages",
    "sparse_remove_section",
    "offline_pages",
    "remove_memory",
    "nvdimm_setup_pfn",
    "nd_pfn_probe",
    "nd_pfn_validate",
    "nd_dax_probe",
    "dev_dax_probe",
    "dev_dax_kmem_probe",
    "acpi_memory_device_add",
    "deferred_init_memmap",
    "padata_do_multithreaded",
];

/// kprobes with the arguments that give pfn ranges. `$argN` needs
/// CONFIG_HAVE_FUNCTION_ARG_ACCESS_API (x86_64, arm64, ... since 4.20); each probe also
/// gets a kretprobe `<name>_ret` so the duration is known per call.
pub const KPROBES: &[(&str, &str)] = &[
    (
        "memmap_init_zone_device",
        "start_pfn=$arg2:x64 nr_pages=$arg3:u64",
    ),
    (
        "arch_add_memory",
        "nid=$arg1:s32 start=$arg2:x64 size=$arg3:x64",
    ),
    ("online_pages", "pfn=$arg1:x64 nr_pages=$arg2:u64"),
    (
        "mhp_init_memmap_on_memory",
        "pfn=$arg1:x64 nr_pages=$arg2:u64",
    ),
    (
        "move_pfn_range_to_zone",
        "start_pfn=$arg2:x64 nr_pages=$arg3:u64",
    ),
    (
        "sparse_add_section",
        "start_pfn=$arg2:x64 nr_pages=$arg3:u64",
    ),
    ("memmap_init_range", "size=$arg1:u64 start_pfn=$arg4:x64"),
];

pub const INSTANCE_PREFIX: &str = "memmap-collect-";
pub const KPROBE_GROUP_PREFIX: &str = "memmap_collect_";

pub fn instance_name(pid: u32) -> String {
    format!("{INSTANCE_PREFIX}{pid}")
}
pub fn kprobe_group(pid: u32) -> String {
    format!("{KPROBE_GROUP_PREFIX}{pid}")
}

/// Where tracefs is mounted, or why it is not usable.
pub fn find() -> Result<PathBuf, String> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(p).join("trace").exists() {
            return Ok(PathBuf::from(p));
        }
    }
    if let Ok(m) = fs::read_to_string("/proc/mounts") {
        for l in m.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 2 && f[2] == "tracefs" {
                return Ok(PathBuf::from(f[1]));
            }
        }
    }
    Err("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)".into())
}

/// Mount tracefs at /sys/kernel/tracing (root only). Returns the mount point.
pub fn mount() -> Result<PathBuf, String> {
    let target = "/sys/kernel/tracing";
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src, tgt, fstype) = (c("nodev"), c(target), c("tracefs"));
    // SAFETY: plain mount(2) with valid NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(PathBuf::from(target))
    } else {
        let e = std::io::Error::last_os_error();
        Err(format!(
            "tracefs is not mounted and mounting it at {target} failed: {e}{}",
            if e.raw_os_error() == Some(libc::EPERM) {
                " (needs root / CAP_SYS_ADMIN)"
            } else {
                ""
            }
        ))
    }
}

pub fn read(p: &Path) -> Result<String> {
    fs::read_to_string(p).with_context(|| format!("read {}", p.display()))
}

/// Write to a tracefs control file (truncating write: how these files are driven).
pub fn write(p: &Path, v: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p)
        .with_context(|| format!("open {}", p.display()))?;
    f.write_all(v.as_bytes())
        .with_context(|| format!("write {v:?} to {}", p.display()))
}

/// Append to kprobe_events / dynamic debug control: an O_TRUNC open of kprobe_events
/// would delete every probe on the system, including other users'.
pub fn append(p: &Path, v: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(p)
        .with_context(|| format!("open {}", p.display()))?;
    f.write_all(v.as_bytes())
        .with_context(|| format!("write {v:?} to {}", p.display()))
}

/// Everything the collector changed, so it can be undone (also by a later run).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    pub tracefs: PathBuf,
    /// We mounted tracefs: unmount it at the end.
    pub mounted: bool,
    pub instance: Option<String>,
    /// kprobe events we created, "group/event".
    pub kprobes: Vec<String>,
    /// The top-level tracer settings we changed, with their previous values
    /// (function_graph is not allowed in instances before Linux 6.9).
    pub top_level: Vec<(String, String)>,
    /// dynamic debug lines we enabled (to disable again).
    pub dyndbg: Vec<String>,
}

/// Where state files live: /run/memmap-collect for root, a per-user directory otherwise
/// (an unprivileged collector changes no kernel state, but still checks for leftovers).
pub fn state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let dirs = if uid == 0 {
        vec![
            PathBuf::from("/run/memmap-collect"),
            PathBuf::from("/tmp/memmap-collect"),
        ]
    } else {
        vec![std::env::temp_dir().join(format!("memmap-collect-{uid}"))]
    };
    for d in dirs {
        if fs::create_dir_all(&d).is_ok() && writable(&d) {
            return d;
        }
    }
    std::env::temp_dir()
}

fn writable(d: &Path) -> bool {
    let c = std::ffi::CString::new(d.as_os_str().to_string_lossy().as_bytes()).expect("no NUL");
    // SAFETY: access(2) on a valid path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

impl State {
    fn path(&self) -> PathBuf {
        state_dir().join(format!("{}.json", self.pid))
    }

    /// Persist before each change, so a SIGKILL at any point leaves a complete list.
    pub fn save(&self) -> Result<()> {
        let p = self.path();
        let body = serde_json::to_vec_pretty(self)?;
        memmap_model::output::write_atomic(&p, &[], |w| {
            use std::io::Write;
            w.write_all(&body)
        })
        .with_context(|| format!("write {}", p.display()))?;
        Ok(())
    }

    /// Undo everything, in reverse order of setup; collects errors rather than stopping.
    /// What could not be undone stays in the state (saved again), so `cleanup` or the
    /// next run retries exactly that; with nothing left the state file is removed.
    pub fn undo(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        let t = self.tracefs.clone();
        let mut dyndbg_left = Vec::new();
        for line in self.dyndbg.drain(..).rev() {
            let p = Path::new("/sys/kernel/debug/dynamic_debug/control");
            if let Err(e) = append(p, &line) {
                errs.push(format!("{e:#}"));
                dyndbg_left.insert(0, line);
            }
        }
        self.dyndbg = dyndbg_left;
        let mut top_left = Vec::new();
        for (file, old) in self.top_level.drain(..).rev() {
            if let Err(e) = write(&t.join(&file), &old) {
                errs.push(format!("restore {file}: {e:#}"));
                top_left.insert(0, (file, old));
            }
        }
        self.top_level = top_left;
        if let Some(inst) = self.instance.take() {
            let dir = t.join("instances").join(&inst);
            if dir.exists() {
                // Disable our kprobe events in the instance, or they stay busy.
                let _ = write(&dir.join("tracing_on"), "0");
                for k in &self.kprobes {
                    let _ = write(&dir.join("events").join(k).join("enable"), "0");
                }
                let _ = write(&dir.join("current_tracer"), "nop");
                if let Err(e) = remove_instance_dir(&dir) {
                    errs.push(e);
                    self.instance = Some(inst);
                }
            }
        }
        let mut kprobes_left = Vec::new();
        for k in self.kprobes.drain(..).rev() {
            if let Err(e) = append(&t.join("kprobe_events"), &format!("-:{k}\n")) {
                errs.push(format!("remove kprobe {k}: {e:#}"));
                kprobes_left.insert(0, k);
            }
        }
        self.kprobes = kprobes_left;
        if self.mounted {
            let c =
                std::ffi::CString::new(t.as_os_str().to_string_lossy().as_bytes()).expect("no NUL");
            // SAFETY: umount2 with a valid path; MNT_DETACH so a reader still open
            // does not keep it busy.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                errs.push(format!(
                    "umount {}: {}",
                    t.display(),
                    std::io::Error::last_os_error()
                ));
            } else {
                self.mounted = false;
            }
        }
        if errs.is_empty() {
            let p = self.path();
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    errs.push(format!("remove {}: {e}", p.display()));
                }
            }
        } else if let Err(e) = self.save() {
            errs.push(format!("{e:#}"));
        }
        errs
    }
}

/// rmdir of an instance. The kernel refuses it (EBUSY) while any process has one of
/// its files open: our own readers are stopped before this, but the recorded command may
/// be writing to its trace_marker (it can outlive an error of the collector), so EBUSY
/// is retried for up to 2 s.
fn remove_instance_dir(dir: &Path) -> Result<(), String> {
    let mut tries = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(format!(
                    "rmdir {}: {e} (a process still has one of its files open, e.g. the \
                     recorded command its trace_marker; `memmap-collect cleanup` removes it \
                     once that process is gone)",
                    dir.display()
                ))
            }
            Err(e) => return Err(format!("rmdir {}: {e}", dir.display())),
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks existence.
    pid == std::process::id()
        || unsafe { libc::kill(pid as i32, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Undo what collectors that died without cleaning up left behind: their state files,
/// and instances / kprobe groups named after a pid that no longer exists. Returns one
/// line per thing cleaned.
pub fn clean_stale(tracefs: Option<&Path>) -> Vec<String> {
    let mut done = Vec::new();
    if let Ok(rd) = fs::read_dir(state_dir()) {
        for e in rd.flatten() {
            let p = e.path();
            let pid: Option<u32> = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok());
            let Some(pid) = pid else { continue };
            if pid_alive(pid) {
                continue;
            }
            match fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            {
                Some(mut st) => {
                    let what = format!(
                        "state of dead collector {pid}: instance {:?}, {} kprobes, {} top-level settings, {} dyndbg",
                        st.instance,
                        st.kprobes.len(),
                        st.top_level.len(),
                        st.dyndbg.len()
                    );
                    let errs = st.undo();
                    let _ = fs::remove_file(&p);
                    done.push(if errs.is_empty() {
                        format!("cleaned {what}")
                    } else {
                        format!("cleaned {what} with errors: {}", errs.join("; "))
                    });
                }
                None => {
                    let _ = fs::remove_file(&p);
                    done.push(format!("removed unreadable state file {}", p.display()));
                }
            }
        }
    }
    let Some(t) = tracefs else { return done };
    // Instances and kprobe groups whose state file was lost too.
    if let Ok(rd) = fs::read_dir(t.join("instances")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(INSTANCE_PREFIX)
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if !pid_alive(pid) {
                let _ = write(&e.path().join("tracing_on"), "0");
                let _ = write(&e.path().join("current_tracer"), "nop");
                disable_all_events(&e.path().join("events"));
                match fs::remove_dir(e.path()) {
                    Ok(()) => done.push(format!("removed stale instance {name}")),
                    Err(err) => done.push(format!("stale instance {name}: rmdir failed: {err}")),
                }
            }
        }
    }
    if let Ok(k) = fs::read_to_string(t.join("kprobe_events")) {
        for l in k.lines() {
            // "p:memmap_collect_123/online_pages online_pages pfn=..."
            let Some(ev) = l.split_whitespace().next().and_then(|s| s.split_once(':')) else {
                continue;
            };
            let Some(pid) =
                ev.1.strip_prefix(KPROBE_GROUP_PREFIX)
                    .and_then(|s| s.split('/').next())
                    .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if !pid_alive(pid) {
                let _ = write(&t.join("events").join(ev.1).join("enable"), "0");
                match append(&t.join("kprobe_events"), &format!("-:{}\n", ev.1)) {
                    Ok(()) => done.push(format!("removed stale kprobe {}", ev.1)),
                    Err(e) => done.push(format!("stale kprobe {}: {e:#}", ev.1)),
                }
            }
        }
    }
    done
}

fn disable_all_events(events: &Path) {
    if let Ok(rd) = fs::read_dir(events) {
        for g in rd.flatten() {
            if g.path().is_dir() {
                let _ = write(&g.path().join("enable"), "0");
            }
        }
    }
}

/// What the kernel lets us trace of `GRAPH_FUNCTIONS` and `KPROBES`.
pub struct Traceability {
    /// (function, ftrace-able, kprobe-able, why not)
    pub rows: Vec<(String, bool, bool, String)>,
    /// 1-based line of each ftrace-able function in available_filter_functions: the
    /// filter accepts these indexes, which saves the kernel a symbol lookup per
    /// function record per name (seconds under emulation).
    pub filter_index: std::collections::HashMap<String, usize>,
}

pub fn traceability(tracefs: &Path) -> Traceability {
    use std::collections::HashSet;
    let wanted: HashSet<&str> = GRAPH_FUNCTIONS
        .iter()
        .copied()
        .chain(KPROBES.iter().map(|k| k.0))
        .collect();
    // available_filter_functions lines: "name" or "name [module]".
    let aff_res = fs::read_to_string(tracefs.join("available_filter_functions"));
    let aff_err = aff_res.as_ref().err().map(|e| e.to_string());
    let aff = aff_res.ok();
    let mut filter_index = std::collections::HashMap::new();
    for (i, l) in aff.as_deref().unwrap_or("").lines().enumerate() {
        if let Some(n) = l.split_whitespace().next().filter(|n| wanted.contains(n)) {
            filter_index.entry(n.to_string()).or_insert(i + 1);
        }
    }
    let ftraceable: HashSet<String> = filter_index.keys().cloned().collect();
    let kallsyms: HashSet<String> = fs::read_to_string("/proc/kallsyms")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|n| wanted.contains(n))
        .map(String::from)
        .collect();
    let blacklist: HashSet<String> = fs::read_to_string("/sys/kernel/debug/kprobes/blacklist")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(String::from)
        .collect();
    let kprobes_on = tracefs.join("kprobe_events").exists();
    let mut names: Vec<&str> = wanted.into_iter().collect();
    names.sort_unstable();
    let rows = names
        .into_iter()
        .map(|f| {
            let ft = ftraceable.contains(f);
            let in_ks = kallsyms.contains(f);
            let kp = kprobes_on && in_ks && !blacklist.contains(f);
            let reason = if !in_ks && !ft {
                "not in kallsyms: inlined or not built into this kernel".to_string()
            } else if ft && kp {
                String::new()
            } else {
                let mut r = Vec::new();
                if !ft {
                    r.push(match &aff_err {
                        Some(e) if e.contains("No such file") => {
                            "no available_filter_functions (CONFIG_FUNCTION_TRACER off)".to_string()
                        }
                        Some(e) => {
                            format!("available_filter_functions unreadable: {e} (kernel lockdown?)")
                        }
                        None => {
                            "not in available_filter_functions (__meminit/notrace or init-only)"
                                .to_string()
                        }
                    });
                }
                if !kp {
                    r.push(
                        if !kprobes_on {
                            "no kprobe_events (CONFIG_KPROBE_EVENTS off)"
                        } else if blacklist.contains(f) {
                            "on the kprobe blacklist"
                        } else {
                            "not in kallsyms"
                        }
                        .to_string(),
                    );
                }
                r.join("; ")
            };
            (f.to_string(), ft, kp, reason)
        })
        .collect();
    Traceability { rows, filter_index }
}

/// Create our instance; returns its directory.
pub fn create_instance(st: &mut State) -> Result<PathBuf> {
    let name = instance_name(st.pid);
    let dir = st.tracefs.join("instances").join(&name);
    st.instance = Some(name);
    st.save()?;
    fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    Ok(dir)
}

/// Add a kprobe and its kretprobe in our group; returns the event names made, or why not.
pub fn add_kprobe(st: &mut State, func: &str, args: &str) -> Result<Vec<String>> {
    let g = kprobe_group(st.pid);
    let ke = st.tracefs.join("kprobe_events");
    let mut made = Vec::new();
    for (kind, ev, a) in [
        ("p", func.to_string(), args),
        ("r", format!("{func}_ret"), ""),
    ] {
        let name = format!("{g}/{ev}");
        st.kprobes.push(name.clone());
        st.save()?;
        let def = format!("{kind}:{name} {func} {a}\n");
        if let Err(e) = append(&ke, &def) {
            st.kprobes.pop();
            st.save()?;
            let log = fs::read_to_string(st.tracefs.join("error_log")).unwrap_or_default();
            // error_log: "[ts] trace_kprobe: error: <why>", the command, a caret line.
            let why = log
                .lines()
                .rev()
                .find(|l| l.contains("error:"))
                .and_then(|l| l.split("error:").nth(1))
                .map(|w| w.trim().to_string())
                .unwrap_or_else(|| e.root_cause().to_string());
            bail!("kernel refused {:?}: {why}", def.trim());
        }
        made.push(name);
    }
    Ok(made)
}

/// Change a top-level tracing file, remembering its old value first.
pub fn set_top_level(st: &mut State, file: &str, value: &str) -> Result<()> {
    let p = st.tracefs.join(file);
    let old = current_value(file, &read(&p)?);
    st.top_level.push((file.to_string(), old));
    st.save()?;
    write(&p, value)
}

/// A control file's content as it must be written back to restore it.
fn current_value(file: &str, content: &str) -> String {
    match file {
        // "[local] global counter mono ..." -> "local"
        "trace_clock" => content
            .split_whitespace()
            .find(|w| w.starts_with('['))
            .map(|w| w.trim_matches(['[', ']']).to_string())
            .unwrap_or_else(|| "local".into()),
        // An unfiltered filter reads "#### all functions enabled ####".
        "set_ftrace_filter" | "set_graph_function" => {
            let names: Vec<&str> = content
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            names.join(" ") + "\n"
        }
        _ => content.trim().to_string(),
    }
}

/// Enable the kernel's pr_debug "initialised N pages in M ms" of memmap_init_zone_device
/// (it is a dynamic debug site on distribution kernels). Returns false when there is
/// no dynamic debug control.
pub fn enable_dyndbg(st: &mut State, func: &str) -> Result<bool> {
    let p = Path::new("/sys/kernel/debug/dynamic_debug/control");
    if !p.exists() {
        return Ok(false);
    }
    let ctl = read(p)?;
    // Lines: "mm/memremap.c:... [func]memmap_init_zone_device =_ "..."" ; "=p" when on.
    let site = ctl
        .lines()
        .find(|l| l.contains(&format!("]{func} ")) || l.contains(&format!(" {func} ")));
    match site {
        None => Ok(false),
        Some(l) if l.contains(" =p") => Ok(true),
        Some(_) => {
            st.dyndbg.push(format!("func {func} -p\n"));
            st.save()?;
            append(p, &format!("func {func} +p\n"))?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_values_are_what_the_files_accept() {
        assert_eq!(
            current_value("trace_clock", "local global counter [mono] uptime\n"),
            "mono"
        );
        assert_eq!(
            current_value("set_ftrace_filter", "#### all functions enabled ####\n"),
            "\n"
        );
        assert_eq!(
            current_value("set_ftrace_filter", "online_pages\nadd_pages [foo]\n"),
            "online_pages add_pages\n"
        );
        assert_eq!(current_value("current_tracer", "nop\n"), "nop");
    }

    #[test]
    fn what_cannot_be_undone_stays_in_the_saved_state() {
        // pid 1 is always alive, so no concurrent `cleanup` takes this state file for a
        // dead collector's; a fake tracefs where the instance cannot be removed (not
        // empty) and kprobe_events does not exist, but the top-level file can be written.
        let tmp = std::env::temp_dir().join(format!("mc-undo-left-{}", std::process::id()));
        let t = tmp.join("tracing");
        let inst = t.join("instances").join(instance_name(1));
        fs::create_dir_all(&inst).unwrap();
        fs::write(inst.join("busy"), "").unwrap();
        fs::write(t.join("current_tracer"), "function_graph\n").unwrap();
        let mut st = State {
            pid: 1,
            tracefs: t.clone(),
            instance: Some(instance_name(1)),
            kprobes: vec![format!("{}/online_pages", kprobe_group(1))],
            top_level: vec![("current_tracer".into(), "nop".into())],
            ..Default::default()
        };
        st.save().unwrap();
        // Nobody would ever clean a state file of pid 1: removed even if an assert fails.
        struct Remove(PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = fs::remove_file(&self.0);
            }
        }
        let _remove = Remove(st.path());
        let errs = st.undo();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains(&inst.display().to_string()), "{errs:?}");
        assert_eq!(fs::read_to_string(t.join("current_tracer")).unwrap(), "nop");
        let saved: State = serde_json::from_slice(&fs::read(st.path()).unwrap()).unwrap();
        assert_eq!(saved.instance, Some(instance_name(1)));
        assert_eq!(saved.kprobes, st.kprobes);
        assert_eq!(saved.kprobes.len(), 1);
        assert!(saved.top_level.is_empty(), "restored: not kept");
        // Once possible, the retry undoes the rest and removes the file.
        fs::remove_file(inst.join("busy")).unwrap();
        fs::write(t.join("kprobe_events"), "").unwrap();
        assert_eq!(st.undo(), Vec::<String>::new());
        assert!(!inst.exists());
        assert!(!st.path().exists());
        assert!(!st.path().with_extension("json.tmp").exists());
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn stale_state_of_a_dead_pid_is_undone_and_removed() {
        // A state file naming a pid that cannot exist and a fake tracefs with its instance.
        let tmp = std::env::temp_dir().join(format!("mc-stale-{}", std::process::id()));
        let t = tmp.join("tracing");
        let dead = 4_000_000 + (std::process::id() % 100_000);
        let inst = t.join("instances").join(instance_name(dead));
        fs::create_dir_all(&inst).unwrap();
        fs::write(t.join("current_tracer"), "function_graph\n").unwrap();
        let st = State {
            pid: dead,
            tracefs: t.clone(),
            instance: Some(instance_name(dead)),
            top_level: vec![("current_tracer".into(), "nop".into())],
            ..Default::default()
        };
        st.save().unwrap();
        let done = clean_stale(Some(&t));
        assert!(
            done.iter()
                .any(|d| d.contains(&format!("collector {dead}"))),
            "{done:?}"
        );
        assert_eq!(fs::read_to_string(t.join("current_tracer")).unwrap(), "nop");
        assert!(!inst.exists());
        assert!(!st.path().exists());
        fs::remove_dir_all(&tmp).unwrap();
    }
}
