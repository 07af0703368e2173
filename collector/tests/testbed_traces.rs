//! Deterministic checks of the traces `testbed/run.sh` records in a QEMU guest (Debian
//! 6.1.0-56-amd64, TCG, 16 GiB emulated NVDIMM at 4 GiB, 1 GiB / 128 MiB pc-dimm hotplug).
//!
//! Checked: the shipped traces in traces/real/testbed/ and, when set, the output directory
//! of a fresh testbed run in $MEMMAP_TESTBED_OUT. Only facts that do not depend on guest
//! timing are asserted: which events a step produced, their pfn ranges against the layout
//! model, the task, and the order of events. Every missing piece is reported by name (what
//! the collector did not record), never skipped.

use memmap_model::layout::{
    hotplug_layout, namespace_layout, HotplugSpec, LayoutParams, MapLocation, NamespaceSpec, NsMode,
};
use memmap_model::trace::{Trace, TraceEvent};
use std::path::{Path, PathBuf};

const KERNEL_RELEASE: &str = "6.1.0-56-amd64";
/// The NVDIMM is the first device-memory range QEMU places: at 4 GiB.
const NVDIMM_START_PFN: u64 = 0x100000;
/// QEMU places the pc-dimm after the 16 GiB NVDIMM: 0x500000000 (memory block 160).
const HOTPLUG_START: u64 = 0x5_0000_0000;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// dax-touch maps and writes 64 MiB.
const TOUCH_PAGES: u64 = 64 * MIB / 4096;

const NS_STEPS: [(&str, NsMode, MapLocation); 4] = [
    ("fsdax-mem", NsMode::Fsdax, MapLocation::Mem),
    ("fsdax-dev", NsMode::Fsdax, MapLocation::Dev),
    ("devdax-mem", NsMode::Devdax, MapLocation::Mem),
    ("devdax-dev", NsMode::Devdax, MapLocation::Dev),
];

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces/real/testbed")
}

#[test]
fn shipped_testbed_traces() {
    let dir = repo_dir();
    assert!(
        dir.is_dir(),
        "{} is missing: it holds the shipped testbed traces (testbed/run.sh --out DIR, then copy DIR there)",
        dir.display()
    );
    check_dir_or_panic(&dir);
}

#[test]
fn fresh_testbed_run() {
    let Some(dir) = std::env::var_os("MEMMAP_TESTBED_OUT") else {
        eprintln!("MEMMAP_TESTBED_OUT not set: no fresh testbed run to check");
        return;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.is_dir(),
        "MEMMAP_TESTBED_OUT={} is not a directory",
        dir.display()
    );
    check_dir_or_panic(&dir);
    // The guest's init names the host; the collector records it in every header (the
    // shipped traces predate that, so this is checked on fresh runs only).
    let mut traces = 0;
    for entry in std::fs::read_dir(&dir).expect("read_dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let t = Trace::read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                t.header.hostname,
                "memmap-testbed",
                "{}: host name in the trace header",
                path.display()
            );
            traces += 1;
        }
    }
    assert!(traces >= 10, "only {traces} traces in {}", dir.display());
}

fn check_dir_or_panic(dir: &Path) {
    let problems = check_dir(dir);
    if !problems.is_empty() {
        panic!(
            "{} problem(s) with the testbed traces in {}:\n  - {}",
            problems.len(),
            dir.display(),
            problems.join("\n  - ")
        );
    }
}

/// One step: its `record` trace and (optional) the `snapshot` taken inside the step.
struct Step {
    name: &'static str,
    rec: Trace,
    snap: Option<Trace>,
}

impl Step {
    fn events(&self) -> impl Iterator<Item = &TraceEvent> {
        self.rec.events.iter()
    }
    fn all_events(&self) -> impl Iterator<Item = &TraceEvent> {
        self.rec
            .events
            .iter()
            .chain(self.snap.iter().flat_map(|s| s.events.iter()))
    }
    /// Context for a failure: the sources the collector said it could not use.
    fn unavailable(&self) -> String {
        let u: Vec<String> = self
            .events()
            .filter_map(|e| match e {
                TraceEvent::Unavailable { source, reason } => Some(format!("{source}: {reason}")),
                _ => None,
            })
            .collect();
        let lost: u64 = self
            .events()
            .filter_map(|e| match e {
                TraceEvent::Lost { count, .. } => Some(*count),
                _ => None,
            })
            .sum();
        let mut s = String::new();
        if !u.is_empty() {
            s += &format!(" [collector reported unavailable: {}]", u.join("; "));
        }
        if lost > 0 {
            s += &format!(" [collector reported {lost} lost events]");
        }
        s
    }
    fn mark(&self, prefix: &str) -> Option<u64> {
        self.events().find_map(|e| match e {
            TraceEvent::Mark { t_ns, text } if text.starts_with(prefix) => Some(*t_ns),
            _ => None,
        })
    }
    fn uevents(&self) -> Vec<(u64, &str, &str, &str)> {
        self.events()
            .filter_map(|e| match e {
                TraceEvent::Uevent {
                    t_ns,
                    action,
                    devpath,
                    subsystem,
                } => Some((*t_ns, action.as_str(), subsystem.as_str(), devpath.as_str())),
                _ => None,
            })
            .collect()
    }
}

fn load(dir: &Path, name: &'static str, p: &mut Vec<String>) -> Option<Step> {
    let rec_path = dir.join(format!("{name}.jsonl"));
    if !rec_path.is_file() {
        p.push(format!(
            "{name}: no trace {} (the step's `memmap-collect record` wrote nothing; see the run's guest-*/log/{name}.record.stderr)",
            rec_path.display()
        ));
        return None;
    }
    let rec = match Trace::read(&rec_path) {
        Ok(t) => t,
        Err(e) => {
            p.push(format!("{name}: unreadable trace: {e}"));
            return None;
        }
    };
    let snap_path = dir.join(format!("{name}.snapshot.jsonl"));
    let snap = if snap_path.is_file() {
        match Trace::read(&snap_path) {
            Ok(t) => Some(t),
            Err(e) => {
                p.push(format!("{name}: unreadable snapshot: {e}"));
                None
            }
        }
    } else {
        None
    };
    if rec.header.kernel_release != KERNEL_RELEASE {
        p.push(format!(
            "{name}: header kernel_release {:?}, expected {KERNEL_RELEASE:?}",
            rec.header.kernel_release
        ));
    }
    for w in &rec.warnings {
        p.push(format!("{name}: reader warning: {w}"));
    }
    let step = Step { name, rec, snap };
    if step.mark("BEGIN").is_none() {
        p.push(format!(
            "{name}: no `mark` event from the step's trace_marker lines (BEGIN ...): $MEMMAP_COLLECT_MARKER not recorded{}",
            step.unavailable()
        ));
    }
    Some(step)
}

fn check_dir(dir: &Path) -> Vec<String> {
    let mut p = Vec::new();
    for (name, mode, map) in NS_STEPS {
        if let Some(s) = load(dir, name, &mut p) {
            check_namespace_step(&s, mode, map, &mut p);
        }
    }
    for name in ["ext4-dax", "xfs-dax"] {
        if let Some(s) = load(dir, name, &mut p) {
            check_dax_faults(&s, &mut p);
        }
    }
    if let Some(s) = load(dir, "hotplug-1g", &mut p) {
        check_hotplug(&s, GIB, false, &mut p);
    }
    if let Some(s) = load(dir, "hotplug-mom", &mut p) {
        check_hotplug(&s, 128 * MIB, true, &mut p);
    }
    check_boot_harvest(dir, &mut p);
    p
}

/// Third boot: the first boot's NVDIMM (its last namespace, devdax map=dev) comes up while
/// the modules load, traced from boot by `memmap-collect boot --print-cmdline`'s kernel
/// command line; `memmap-collect boot` harvests the top-level buffer and the kernel log.
fn check_boot_harvest(dir: &Path, p: &mut Vec<String>) {
    let n = "boot-harvest";
    let path = dir.join(format!("{n}.jsonl"));
    let t = match Trace::read(&path) {
        Ok(t) => t,
        Err(e) => {
            p.push(format!("{n}: {e}"));
            return;
        }
    };
    if t.header.source != "boot" {
        p.push(format!(
            "{n}: header source {:?}, expected \"boot\"",
            t.header.source
        ));
    }
    for opt in ["ftrace=function_graph", "kprobe_event=", "trace_clock=mono"] {
        if !t.header.cmdline.contains(opt) {
            p.push(format!(
                "{n}: kernel command line lacks {opt}: {}",
                t.header.cmdline
            ));
        }
    }
    let spec: NamespaceSpec = "size=17163091968,mode=devdax,map=dev,align=2M,start=0x100000000"
        .parse()
        .expect("spec");
    let l = namespace_layout(&spec, &LayoutParams::linux_6_1()).expect("layout");
    let inits: Vec<(u64, u64, Option<u64>, &str)> = t
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::MemmapInit {
                func,
                start_pfn,
                nr_pages,
                dur_ns,
                task,
                ..
            } if func == "memmap_init_zone_device" => {
                Some((*start_pfn, *nr_pages, *dur_ns, task.as_str()))
            }
            _ => None,
        })
        .collect();
    match inits.as_slice() {
        [(sp, np, dur, task)] => {
            if (*sp, *np) != (l.range_start_pfn, l.range_pages) {
                p.push(format!(
                    "{n}: boot-time kprobe memmap_init_zone_device pfn {sp:#x}+{np}, layout model {:#x}+{}",
                    l.range_start_pfn, l.range_pages
                ));
            }
            if dur.is_none() {
                p.push(format!(
                    "{n}: the boot-time kretprobe of memmap_init_zone_device is missing"
                ));
            }
            if *task != "insmod" && !task.starts_with("kworker") {
                p.push(format!(
                    "{n}: memmap_init_zone_device ran in {task:?}, expected insmod or a kworker"
                ));
            }
        }
        other => p.push(format!(
            "{n}: expected one boot-time memmap_init_zone_device kprobe pair, found {}",
            other.len()
        )),
    }
    let spans = t
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::FunctionSpan { func, .. } if func == "memmap_init_zone_device"))
        .count();
    if spans != 1 {
        p.push(format!(
            "{n}: {spans} boot-time function_graph spans of memmap_init_zone_device, expected 1"
        ));
    }
    let init_pages: Vec<u64> = t
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Initialised { pages, .. } => Some(*pages),
            _ => None,
        })
        .collect();
    if init_pages != [l.data_pages] {
        p.push(format!(
            "{n}: kernel log \"initialised\" pages {init_pages:?}, expected [{}] (dyndbg= on the command line)",
            l.data_pages
        ));
    }
    let logs = t
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::KernelLog { .. }))
        .count();
    if logs < 100 {
        p.push(format!("{n}: only {logs} kernel log lines since boot"));
    }
}

fn basename(devpath: &str) -> &str {
    devpath.rsplit('/').next().unwrap_or(devpath)
}

/// First uevent (in file order) matching, with its index.
fn find_uevent(
    ue: &[(u64, &str, &str, &str)],
    action: &str,
    subsystem: &str,
    base_prefix: &str,
) -> Option<(usize, u64, String)> {
    ue.iter().enumerate().find_map(|(i, (t, a, s, d))| {
        (*a == action && *s == subsystem && basename(d).starts_with(base_prefix))
            .then(|| (i, *t, d.to_string()))
    })
}

/// Long on purpose: one block per kernel event of a namespace step (init call, its range,
/// the vmemmap populate, uevents, the log), each a checklist entry against the layout model.
fn check_namespace_step(s: &Step, mode: NsMode, map: MapLocation, p: &mut Vec<String>) {
    let n = s.name;
    let ctx = s.unavailable();
    // the namespace the step created, as the collector saw it (record or in-step snapshot)
    let ns = s
        .all_events()
        .filter_map(TraceEvent::namespace_spec)
        .find(|ns| ns.mode == mode && ns.map == map);
    let Some(ns) = ns else {
        p.push(format!(
            "{n}: no `namespace` event with mode={mode} map={map} in {n}.jsonl or {n}.snapshot.jsonl{ctx}"
        ));
        return;
    };
    let layout = match namespace_layout(&ns, &LayoutParams::linux_6_1()) {
        Ok(l) => l,
        Err(e) => {
            p.push(format!(
                "{n}: the layout model rejects the recorded namespace {ns:?}: {e}"
            ));
            return;
        }
    };

    // memmap_init_zone_device: exactly one call, the model's range, run by ndctl
    let inits: Vec<_> = s
        .events()
        .filter_map(|e| match e {
            TraceEvent::MemmapInit {
                t_ns,
                func,
                start_pfn,
                nr_pages,
                task,
                ..
            } if func == "memmap_init_zone_device" => {
                Some((*t_ns, *start_pfn, *nr_pages, task.clone()))
            }
            _ => None,
        })
        .collect();
    let init_t = match inits.as_slice() {
        [] => {
            p.push(format!(
                "{n}: no `memmap-init` event for memmap_init_zone_device (kprobe start_pfn/nr_pages not recorded){ctx}"
            ));
            None
        }
        [(t, start, nr, task)] => {
            if *start != NVDIMM_START_PFN || *start != layout.range_start_pfn {
                p.push(format!(
                    "{n}: memmap_init_zone_device start_pfn {start:#x}, expected {NVDIMM_START_PFN:#x} (model: {:#x})",
                    layout.range_start_pfn
                ));
            }
            if *nr != layout.range_pages {
                p.push(format!(
                    "{n}: memmap_init_zone_device nr_pages {nr}, the layout model gives {} for {ns:?}",
                    layout.range_pages
                ));
            }
            if task != "ndctl" {
                p.push(format!(
                    "{n}: memmap_init_zone_device ran in task {task:?}, expected \"ndctl\""
                ));
            }
            Some(*t)
        }
        more => {
            p.push(format!(
                "{n}: {} memmap_init_zone_device calls, expected one: {more:?}",
                more.len()
            ));
            None
        }
    };

    // "memmap_init_zone_device initialised N pages in M ms" (pr_debug, enabled by the testbed)
    let inited: Vec<_> = s
        .events()
        .filter_map(|e| match e {
            TraceEvent::Initialised { t_ns, pages, .. } => Some((*t_ns, *pages)),
            _ => None,
        })
        .collect();
    let inited_t = match inited.as_slice() {
        [] => {
            p.push(format!(
                "{n}: no `initialised` event (the kernel log line \"memmap_init_zone_device initialised N pages\" was not recorded){ctx}"
            ));
            None
        }
        [(t, pages)] => {
            if *pages != layout.data_pages {
                p.push(format!(
                    "{n}: initialised {pages} pages, the layout model gives {} (data pages after the altmap)",
                    layout.data_pages
                ));
            }
            Some(*t)
        }
        more => {
            p.push(format!(
                "{n}: {} `initialised` events, expected one: {more:?}",
                more.len()
            ));
            None
        }
    };

    // order: create mark -> memmap init -> initialised log line -> end mark
    let begin = s.mark("BEGIN create");
    let end = s.mark("END create");
    if let (Some(b), Some(i)) = (begin, init_t) {
        if b > i {
            p.push(format!(
                "{n}: memmap-init (t={i}) before the BEGIN create mark (t={b})"
            ));
        }
    }
    if let (Some(i), Some(l)) = (init_t, inited_t) {
        if i > l {
            p.push(format!(
                "{n}: initialised log line (t={l}) before memmap-init (t={i})"
            ));
        }
    }
    if let (Some(l), Some(e)) = (inited_t, end) {
        if l > e {
            p.push(format!(
                "{n}: initialised log line (t={l}) after the END create mark (t={e})"
            ));
        }
    }
    if begin.is_none() || end.is_none() {
        p.push(format!("{n}: BEGIN/END create marks missing"));
    }

    // uevents of the new device, in kernel order (file order = order of arrival)
    let ue = s.uevents();
    if ue.is_empty() {
        p.push(format!("{n}: no `uevent` events{ctx}"));
        return;
    }
    let need = |p: &mut Vec<String>, action: &str, sub: &str, pre: &str| {
        let f = find_uevent(&ue, action, sub, pre);
        if f.is_none() {
            p.push(format!("{n}: no uevent {action} {sub}/{pre}*"));
        }
        f
    };
    match mode {
        NsMode::Fsdax => {
            // nd_pmem probe of the pfn device: memmap init, add_disk, then the driver bind
            let disk = need(p, "add", "block", "pmem");
            let bind = need(p, "bind", "nd", "pfn");
            if let (Some(d), Some(b)) = (&disk, &bind) {
                if d.0 > b.0 {
                    p.push(format!("{n}: bind of {} came before add of {}", b.2, d.2));
                }
                if !d.2.contains(basename(&b.2)) {
                    p.push(format!(
                        "{n}: disk {} is not under the bound pfn device {}",
                        d.2, b.2
                    ));
                }
            }
            if let (Some(i), Some(d)) = (init_t, &disk) {
                if i > d.1 {
                    p.push(format!(
                        "{n}: add of {} (t={}) before memmap-init (t={i})",
                        d.2, d.1
                    ));
                }
            }
            if n == "fsdax-mem" {
                // then destroy-namespace: the disk goes away and the pfn device is unbound
                let destroy = s.mark("BEGIN destroy");
                let rm = need(p, "remove", "block", "pmem");
                let unbind = need(p, "unbind", "nd", "pfn");
                if let (Some(b), Some(r), Some(u)) = (&bind, &rm, &unbind) {
                    if !(b.0 < r.0 && r.0 < u.0) {
                        p.push(format!(
                            "{n}: expected bind {} < remove {} < unbind {}",
                            b.2, r.2, u.2
                        ));
                    }
                }
                match (destroy, &rm) {
                    (Some(d), Some(r)) if r.1 < d => p.push(format!(
                        "{n}: remove of {} before the BEGIN destroy mark",
                        r.2
                    )),
                    (None, _) => p.push(format!("{n}: no BEGIN destroy mark")),
                    _ => {}
                }
            }
        }
        NsMode::Devdax => {
            // dax_pmem binds the nd dax device, which adds the dax device; device_dax's probe
            // of it runs memmap init, then the binds complete inside out
            let add = need(p, "add", "dax", "dax");
            let dbind = need(p, "bind", "dax", "dax");
            let nbind = need(p, "bind", "nd", "dax");
            if let (Some(a), Some(d), Some(b)) = (&add, &dbind, &nbind) {
                if !(a.0 < d.0 && d.0 < b.0) {
                    p.push(format!(
                        "{n}: expected add {} < bind {} (dax) < bind {} (nd)",
                        a.2, d.2, b.2
                    ));
                }
            }
            if let (Some(i), Some(d)) = (init_t, &dbind) {
                if i > d.1 {
                    p.push(format!(
                        "{n}: bind of {} (t={}) before memmap-init (t={i})",
                        d.2, d.1
                    ));
                }
            }
        }
        _ => unreachable!(),
    }
}

fn fault_ok(result: &str) -> bool {
    let r = result.to_ascii_uppercase();
    r.contains("NOPAGE") || r == "0X100" || r == "256"
}

fn check_dax_faults(s: &Step, p: &mut Vec<String>) {
    let n = s.name;
    let ctx = s.unavailable();
    let (Some(b), Some(e)) = (s.mark("BEGIN dax-touch"), s.mark("END dax-touch")) else {
        p.push(format!("{n}: BEGIN/END dax-touch marks missing"));
        return;
    };
    let faults: Vec<_> = s
        .events()
        .filter_map(|ev| match ev {
            TraceEvent::DaxFault {
                t_ns, pmd, result, ..
            } if *t_ns >= b && *t_ns <= e => Some((*pmd, result.as_str())),
            _ => None,
        })
        .collect();
    if faults.is_empty() {
        p.push(format!(
            "{n}: no `dax-fault` events between the dax-touch marks (fs_dax tracepoints not recorded){ctx}"
        ));
        return;
    }
    if let Some((_, r)) = faults.iter().find(|(_, r)| r.is_empty()) {
        p.push(format!(
            "{n}: a dax-fault without a result ({r:?}): the _done twin was not paired{ctx}"
        ));
    }
    // dax-touch writes 64 MiB of fallocated, 2 MiB-aligned file through a 2 MiB-aligned
    // mapping: the successful faults must map all of it
    let pmd_ok = faults.iter().filter(|(pmd, r)| *pmd && fault_ok(r)).count() as u64;
    let pte_ok = faults
        .iter()
        .filter(|(pmd, r)| !*pmd && fault_ok(r))
        .count() as u64;
    if pmd_ok == 0 {
        p.push(format!(
            "{n}: no PMD dax fault with result NOPAGE (faults: {faults:?})"
        ));
    }
    if pmd_ok * 512 + pte_ok < TOUCH_PAGES {
        p.push(format!(
            "{n}: successful dax faults map {} pages ({pmd_ok} PMD, {pte_ok} PTE), dax-touch wrote {TOUCH_PAGES}",
            pmd_ok * 512 + pte_ok
        ));
    }
}

fn check_hotplug(s: &Step, size: u64, mom: bool, p: &mut Vec<String>) {
    let n = s.name;
    let ctx = s.unavailable();
    let params = LayoutParams {
        memmap_on_memory: mom,
        ..LayoutParams::linux_6_1()
    };
    if mom
        && !s
            .rec
            .header
            .cmdline
            .contains("memory_hotplug.memmap_on_memory=1")
    {
        p.push(format!(
            "{n}: header cmdline {:?} lacks memory_hotplug.memmap_on_memory=1",
            s.rec.header.cmdline
        ));
    }
    let block = params.memory_block_size;
    let first = HOTPLUG_START / block;
    let nblocks = size / block;
    let ue = s.uevents();
    for idx in first..first + nblocks {
        let dev = format!("memory{idx}");
        let f = |action: &str| {
            ue.iter()
                .position(|(_, a, sub, d)| *a == action && *sub == "memory" && basename(d) == dev)
        };
        match (f("add"), f("online")) {
            (Some(a), Some(o)) if a < o => {}
            (Some(_), Some(_)) => p.push(format!("{n}: online uevent of {dev} before its add")),
            (a, o) => p.push(format!(
                "{n}: memory block {dev}: add uevent {}, online uevent {}{ctx}",
                if a.is_some() { "present" } else { "MISSING" },
                if o.is_some() { "present" } else { "MISSING" }
            )),
        }
    }
    let other: Vec<_> = ue
        .iter()
        .filter(|(_, a, sub, d)| {
            *sub == "memory"
                && (*a == "add" || *a == "online")
                && basename(d)
                    .strip_prefix("memory")
                    .and_then(|i| i.parse::<u64>().ok())
                    .is_some_and(|i| i < first || i >= first + nblocks)
        })
        .collect();
    if !other.is_empty() {
        p.push(format!(
            "{n}: memory uevents outside the hot-added blocks: {other:?}"
        ));
    }
    // the snapshot inside the step sees the blocks online
    if let Some(snap) = &s.snap {
        for idx in first..first + nblocks {
            let st = snap.events.iter().find_map(|e| match e {
                TraceEvent::MemoryBlock {
                    index,
                    phys_start,
                    state,
                    ..
                } if *index == idx => Some((*phys_start, state.clone())),
                _ => None,
            });
            match st {
                Some((ph, st)) if ph == idx * block && st == "online" => {}
                Some(x) => p.push(format!(
                    "{n}: snapshot memory{idx}: {x:?}, expected ({:#x}, online)",
                    idx * block
                )),
                None => p.push(format!(
                    "{n}: snapshot has no memory-block event for memory{idx}"
                )),
            }
        }
    } else {
        p.push(format!("{n}: no {n}.snapshot.jsonl (in-step snapshot)"));
    }
    // memmap init of the onlined pages: per block, memory_block_online() calls
    // online_pages() over the block minus its memmap_on_memory vmemmap pages (model), and
    // with memmap_on_memory first mhp_init_memmap_on_memory() over those vmemmap pages
    let inits: Vec<_> = s
        .events()
        .filter_map(|e| match e {
            TraceEvent::MemmapInit {
                func,
                start_pfn,
                nr_pages,
                ..
            } if func != "memmap_init_zone_device" => Some((func.as_str(), *start_pfn, *nr_pages)),
            _ => None,
        })
        .collect();
    if inits.is_empty() {
        p.push(format!(
            "{n}: no `memmap-init` event for the hot-added memory (online_pages kprobe){ctx}"
        ));
        return;
    }
    let has = |func: &str, start: u64, pages: u64| {
        inits
            .iter()
            .any(|(f, st, nr)| *f == func && (*st, *nr) == (start, pages))
    };
    for idx in first..first + nblocks {
        let spec = HotplugSpec {
            name: format!("memory{idx}"),
            start_phys: idx * block,
            size_bytes: block,
            node: 0,
        };
        // with memmap_on_memory each block carries its own vmemmap (the whole DIMM must be
        // one block for that)
        let l = match hotplug_layout(&spec, &params) {
            Ok(l) => l,
            Err(e) => {
                p.push(format!("{n}: layout model rejects {spec:?}: {e}"));
                continue;
            }
        };
        let vmemmap_pages = l.data_start_pfn - l.range_start_pfn;
        if mom != (vmemmap_pages > 0) {
            p.push(format!(
                "{n}: the model gives {vmemmap_pages} memmap_on_memory vmemmap pages for {spec:?} (memmap_on_memory={mom})"
            ));
        }
        if !has("online_pages", l.data_start_pfn, l.data_pages) {
            p.push(format!(
                "{n}: no memmap-init online_pages start_pfn={:#x} nr_pages={} for memory{idx} (recorded: {inits:?})",
                l.data_start_pfn, l.data_pages
            ));
        }
        if mom
            && !has(
                "mhp_init_memmap_on_memory",
                l.range_start_pfn,
                vmemmap_pages,
            )
        {
            p.push(format!(
                "{n}: no memmap-init mhp_init_memmap_on_memory start_pfn={:#x} nr_pages={vmemmap_pages} for memory{idx} (recorded: {inits:?})",
                l.range_start_pfn
            ));
        }
    }
}
