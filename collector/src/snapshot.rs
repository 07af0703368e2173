//! The host's memory layout and context, read from procfs and sysfs under a root
//! directory ("/" on a live host; tests pass a fake tree with `proc/`, `sys/`, `boot/`).
//!
//! Never fails as a whole: every part that cannot be read becomes
//! `TraceEvent::Unavailable { source, reason }` saying why.

use crate::import::iomem;
use memmap_model::layout::{MapLocation, NsMode};
use memmap_model::trace::{TraceEvent, TraceHeader};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Kernel config options that matter for memmap init, DAX and tracing.
pub const CONFIG_OPTIONS: &[&str] = &[
    "SPARSEMEM_VMEMMAP",
    "ZONE_DEVICE",
    "DEFERRED_STRUCT_PAGE_INIT",
    "MEMORY_HOTPLUG",
    "MEMORY_HOTREMOVE",
    "MHP_MEMMAP_ON_MEMORY",
    "MEMORY_HOTPLUG_DEFAULT_ONLINE",
    "FS_DAX",
    "FS_DAX_PMD",
    "DEV_DAX",
    "DEV_DAX_PMEM",
    "DEV_DAX_KMEM",
    "LIBNVDIMM",
    "BLK_DEV_PMEM",
    "NVDIMM_PFN",
    "NVDIMM_DAX",
    "ACPI_NFIT",
    "VIRTIO_MEM",
    "FUNCTION_GRAPH_TRACER",
    "KPROBES",
    "KPROBE_EVENTS",
    "KPROBE_EVENTS_ON_NOTRACE",
    "FTRACE",
    "PERF_EVENTS",
    "ARCH_WANT_OPTIMIZE_DAX_VMEMMAP",
    "ARCH_WANT_OPTIMIZE_VMEMMAP",
    "TRANSPARENT_HUGEPAGE",
    "NUMA",
    "NODES_SHIFT",
];

/// Biggest sysfs attribute read (sysfs attributes are at most a page).
const MAX_ATTR: u64 = 4096;

#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// kernel_release, cmdline, numa_nodes, cpus filled; source "live".
    pub header: TraceHeader,
    pub events: Vec<TraceEvent>,
}

/// Read the host under `root` ("/" normally).
pub fn take(root: &Path) -> Snapshot {
    let mut s = Reader {
        root: root.to_path_buf(),
        header: TraceHeader::new("live"),
        events: Vec::new(),
    };
    s.kernel();
    s.kernel_config();
    s.cpus_and_nodes();
    s.iomem();
    s.memory_blocks();
    s.zones();
    s.nd_bus();
    Snapshot {
        header: s.header,
        events: s.events,
    }
}

struct Reader {
    root: PathBuf,
    header: TraceHeader,
    events: Vec<TraceEvent>,
}

/// "/proc/x" shown for a path under the root.
fn shown(rel: &str) -> String {
    format!("/{}", rel.trim_start_matches('/'))
}

fn why(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "missing".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (not root?)".into(),
        _ => e.to_string(),
    }
}

impl Reader {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> std::io::Result<String> {
        read_small(&self.path(rel), 1 << 24)
    }

    fn unavailable(&mut self, source: &str, reason: String) {
        self.events.push(TraceEvent::Unavailable {
            source: source.to_string(),
            reason,
        });
    }

    fn kernel(&mut self) {
        match self.read("proc/sys/kernel/osrelease") {
            Ok(s) => self.header.kernel_release = s.trim().to_string(),
            Err(e) => self.unavailable(
                "/proc/sys/kernel/osrelease",
                format!("/proc/sys/kernel/osrelease {}", why(&e)),
            ),
        }
        match self.read("proc/sys/kernel/hostname") {
            Ok(s) => self.header.hostname = s.trim().to_string(),
            Err(e) => self.unavailable(
                "/proc/sys/kernel/hostname",
                format!("/proc/sys/kernel/hostname {}", why(&e)),
            ),
        }
        match self.read("proc/cmdline") {
            Ok(s) => self.header.cmdline = s.trim().to_string(),
            Err(e) => self.unavailable("/proc/cmdline", format!("/proc/cmdline {}", why(&e))),
        }
    }

    fn kernel_config(&mut self) {
        let release = self.header.kernel_release.clone();
        let boot = format!("boot/config-{release}");
        let gz = self.path("proc/config.gz");
        let (text, from) = match std::fs::File::open(&gz) {
            Ok(f) => {
                let mut s = String::new();
                match flate2::read::GzDecoder::new(f)
                    .take(1 << 26)
                    .read_to_string(&mut s)
                {
                    Ok(_) => (Some(s), "/proc/config.gz".to_string()),
                    Err(e) => {
                        self.unavailable(
                            "kernel-config",
                            format!("/proc/config.gz unreadable: {e}"),
                        );
                        (None, String::new())
                    }
                }
            }
            Err(gz_err) => match self.read(&boot) {
                Ok(s) => (Some(s), shown(&boot)),
                Err(e) => {
                    let reason = if gz_err.kind() == std::io::ErrorKind::NotFound
                        && e.kind() == std::io::ErrorKind::NotFound
                    {
                        format!(
                            "/proc/config.gz and /{boot} missing: CONFIG_IKCONFIG_PROC off (modprobe configs?) and no config installed in /boot"
                        )
                    } else {
                        format!("/proc/config.gz {}, /{boot} {}", why(&gz_err), why(&e))
                    };
                    self.unavailable("kernel-config", reason);
                    (None, String::new())
                }
            },
        };
        if let Some(text) = text {
            let options = parse_config(&text);
            if options.is_empty() {
                self.unavailable(
                    "kernel-config",
                    format!("{from} has none of the options looked for (not a kernel config?)"),
                );
            } else {
                self.events.push(TraceEvent::Source {
                    source: "kernel-config".into(),
                    detail: from,
                });
                self.events.push(TraceEvent::KernelConfig { options });
            }
        }
    }

    fn cpus_and_nodes(&mut self) {
        match self.read("sys/devices/system/cpu/online") {
            Ok(s) => match cpulist_count(s.trim()) {
                Some(n) => self.header.cpus = n,
                None => self.unavailable(
                    "/sys/devices/system/cpu/online",
                    format!("cannot read CPU list {:?}", s.trim()),
                ),
            },
            Err(e) => self.unavailable(
                "/sys/devices/system/cpu/online",
                format!("/sys/devices/system/cpu/online {}", why(&e)),
            ),
        }
        let dir = self.path("sys/devices/system/node");
        let nodes = match numbered_entries(&dir, "node") {
            Ok(n) => n,
            Err(e) => {
                self.unavailable(
                    "/sys/devices/system/node",
                    format!(
                        "/sys/devices/system/node {} (CONFIG_NUMA off?): NUMA nodes unknown",
                        why(&e)
                    ),
                );
                return;
            }
        };
        self.header.numa_nodes = nodes.len() as u32;
        for (node, p) in nodes {
            let cpulist = read_small(&p.join("cpulist"), MAX_ATTR)
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            let mem_total_bytes = read_small(&p.join("meminfo"), 1 << 16)
                .ok()
                .and_then(|m| {
                    m.lines().find_map(|l| {
                        let (_, rest) = l.split_once("MemTotal:")?;
                        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
                        Some(kb * 1024)
                    })
                })
                .unwrap_or(0);
            self.events.push(TraceEvent::NumaNode {
                node: node as u32,
                cpulist,
                mem_total_bytes,
            });
        }
    }

    fn iomem(&mut self) {
        let text = match self.read("proc/iomem") {
            Ok(t) => t,
            Err(e) => {
                self.unavailable("/proc/iomem", format!("/proc/iomem {}", why(&e)));
                return;
            }
        };
        let ev = iomem::parse("/proc/iomem", &text);
        let n = ev
            .iter()
            .filter(|e| matches!(e, TraceEvent::Iomem { .. }))
            .count();
        let zero = n > 1
            && ev.iter().all(|e| match e {
                TraceEvent::Iomem { start, end, .. } => *start == 0 && *end == 0,
                _ => true,
            });
        if zero {
            self.unavailable(
                "/proc/iomem",
                "/proc/iomem shows zero addresses: not root (need CAP_SYS_ADMIN)".into(),
            );
        } else {
            self.events.extend(ev);
        }
    }

    fn memory_blocks(&mut self) {
        let base = "sys/devices/system/memory";
        let block_size = match self.read(&format!("{base}/block_size_bytes")) {
            Ok(s) => match u64::from_str_radix(s.trim().trim_start_matches("0x"), 16) {
                Ok(b) => Some(b),
                Err(_) => {
                    self.unavailable(
                        "/sys/devices/system/memory",
                        format!("block_size_bytes {:?} is not hex", s.trim()),
                    );
                    None
                }
            },
            Err(e) => {
                self.unavailable(
                    "/sys/devices/system/memory",
                    format!(
                        "/{base}/block_size_bytes {}: no memory block devices (CONFIG_MEMORY_HOTPLUG off?)",
                        why(&e)
                    ),
                );
                None
            }
        };
        let mut detail = Vec::new();
        if let Some(b) = block_size {
            detail.push(format!("block_size_bytes={b:#x}"));
        }
        if let Ok(s) = self.read(&format!("{base}/auto_online_blocks")) {
            detail.push(format!("auto_online_blocks={}", s.trim()));
        }
        let params = self.path("sys/module/memory_hotplug/parameters");
        if let Ok(rd) = std::fs::read_dir(&params) {
            let mut names: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            names.sort();
            for p in names {
                if let (Some(n), Ok(v)) = (p.file_name(), read_small(&p, MAX_ATTR)) {
                    detail.push(format!("{}={}", n.to_string_lossy(), v.trim()));
                }
            }
        }
        if detail.is_empty() {
            self.unavailable(
                "memory-hotplug",
                "no block_size_bytes, auto_online_blocks or /sys/module/memory_hotplug/parameters"
                    .into(),
            );
        } else {
            self.events.push(TraceEvent::Source {
                source: "memory-hotplug".into(),
                detail: detail.join(" "),
            });
        }
        let Some(block_size) = block_size else {
            return;
        };
        let blocks = match numbered_entries(&self.path(base), "memory") {
            Ok(b) => b,
            Err(e) => {
                self.unavailable("/sys/devices/system/memory", format!("/{base} {}", why(&e)));
                return;
            }
        };
        let mut bad = 0usize;
        for (index, p) in blocks {
            let phys = read_small(&p.join("phys_index"), MAX_ATTR)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
            let Some(phys_index) = phys else {
                bad += 1;
                continue;
            };
            let state = read_small(&p.join("state"), MAX_ATTR)
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            let valid_zones = read_small(&p.join("valid_zones"), MAX_ATTR)
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            let node = numbered_entries(&p, "node")
                .ok()
                .and_then(|v| v.first().map(|(n, _)| *n as u32));
            self.events.push(TraceEvent::MemoryBlock {
                index,
                phys_start: phys_index.saturating_mul(block_size),
                size_bytes: block_size,
                state,
                node,
                valid_zones,
            });
        }
        if bad > 0 {
            self.unavailable(
                "/sys/devices/system/memory",
                format!("{bad} memory block(s) without a readable phys_index skipped"),
            );
        }
    }

    fn zones(&mut self) {
        match self.read("proc/zoneinfo") {
            Ok(t) => {
                let z = parse_zoneinfo(&t);
                if z.is_empty() {
                    self.unavailable("/proc/zoneinfo", "/proc/zoneinfo lists no zones".into());
                }
                self.events.extend(z);
            }
            Err(e) => self.unavailable("/proc/zoneinfo", format!("/proc/zoneinfo {}", why(&e))),
        }
    }

    fn nd_bus(&mut self) {
        let bus = self.path("sys/bus/nd");
        if !bus.exists() {
            self.unavailable(
                "/sys/bus/nd",
                "no /sys/bus/nd: libnvdimm not loaded or no NVDIMM".into(),
            );
        } else {
            let devs = list_dir(&bus.join("devices"));
            if devs.is_empty() {
                self.unavailable(
                    "/sys/bus/nd",
                    "/sys/bus/nd/devices is empty: libnvdimm loaded but no NVDIMM bus (no NFIT, no memmap=nn!ss, no virtio-pmem)".into(),
                );
            }
            let mut devices = Vec::new();
            for (name, p) in devs {
                let attrs = read_attrs(&p, "");
                let devtype = attrs
                    .get("uevent")
                    .and_then(|u| {
                        u.lines()
                            .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_string))
                    })
                    .unwrap_or_else(|| devtype_from_name(&name).to_string());
                devices.push((name, devtype, attrs));
            }
            let by_name: BTreeMap<&str, &BTreeMap<String, String>> =
                devices.iter().map(|(n, _, a)| (n.as_str(), a)).collect();
            let mut namespaces = Vec::new();
            for (name, devtype, attrs) in &devices {
                if devtype.starts_with("nd_namespace") {
                    match namespace_event(name, attrs, &by_name) {
                        Ok(Some(ns)) => namespaces.push(ns),
                        Ok(None) => {}
                        Err(reason) => namespaces.push(TraceEvent::Unavailable {
                            source: format!("/sys/bus/nd/devices/{name}"),
                            reason,
                        }),
                    }
                }
            }
            for (dev, devtype, mut attrs) in devices {
                attrs.remove("uevent");
                self.events.push(TraceEvent::NdDevice {
                    dev,
                    devtype,
                    attrs,
                });
            }
            self.events.extend(namespaces);
        }
        // device-dax instances (devdax namespaces, hmem, kmem) live on the dax bus.
        for (name, p) in list_dir(&self.path("sys/bus/dax/devices")) {
            let mut attrs = read_attrs(&p, "");
            for (m, mp) in list_dir(&p) {
                if m.starts_with("mapping") {
                    attrs.extend(read_attrs(&mp, &format!("{m}/")));
                }
            }
            attrs.remove("uevent");
            self.events.push(TraceEvent::NdDevice {
                dev: name,
                devtype: "dev_dax".into(),
                attrs,
            });
        }
    }
}

/// The `Namespace` of a namespace claimed by a pfn (fsdax) or dax (devdax) device;
/// Ok(None) for raw / sector namespaces, Err(why) when an attribute it needs is unreadable.
fn namespace_event(
    name: &str,
    ns: &BTreeMap<String, String>,
    devs: &BTreeMap<&str, &BTreeMap<String, String>>,
) -> Result<Option<TraceEvent>, String> {
    let Some(holder) = ns.get("holder").map(|h| h.trim()).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let Some(claim) = devs.get(holder) else {
        return Err(format!(
            "{name} is held by {holder}, which is not on the nd bus"
        ));
    };
    if claim.get("namespace").map(|s| s.trim()) != Some(name) {
        return Ok(None);
    }
    let mode = if holder.starts_with("pfn") {
        NsMode::Fsdax
    } else if holder.starts_with("dax") {
        NsMode::Devdax
    } else {
        return Ok(None); // btt: sector mode, no memmap
    };
    // pfn_devs.c mode_show: "ram" (PFN_MODE_RAM, memmap in RAM), "pmem" (PFN_MODE_PMEM,
    // memmap in the namespace through the altmap), "none" (not set up).
    let map = match claim.get("mode").map(|s| s.trim()) {
        Some("ram") => MapLocation::Mem,
        Some("pmem") => MapLocation::Dev,
        other => {
            return Err(format!(
                "{holder}/mode is {other:?}, expected \"ram\" or \"pmem\": no namespace layout"
            ))
        }
    };
    let size_bytes = attr(name, ns, "size", num)?;
    let start_phys = attr(name, ns, "resource", num)?;
    let align_bytes = attr(holder, claim, "align", align_value)?;
    let node = ns
        .get("numa_node")
        .and_then(|n| n.trim().parse::<i64>().ok())
        .map_or(0, |n| n.max(0) as u32);
    Ok(Some(TraceEvent::Namespace {
        name: name.to_string(),
        mode,
        map,
        size_bytes,
        align_bytes,
        start_phys,
        node,
    }))
}

/// Attribute `k` of `dev` parsed by `parse`, or why not.
fn attr(
    dev: &str,
    a: &BTreeMap<String, String>,
    k: &str,
    parse: fn(&str) -> Option<u64>,
) -> Result<u64, String> {
    match a.get(k) {
        Some(v) => parse(v).ok_or_else(|| format!("{dev}/{k} is {v:?}, not a number")),
        None => Err(format!(
            "{dev}/{k} unreadable (resource is root-only since Linux 5.10: need CAP_SYS_ADMIN)"
        )),
    }
}

/// A decimal or 0x-hex sysfs number.
fn num(s: &str) -> Option<u64> {
    let t = s.trim();
    match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The pfn/dax `align` attribute: decimal since Linux 5.x ("%ld"), bare hex before ("%lx",
/// e.g. "200000"); the power of two wins.
fn align_value(s: &str) -> Option<u64> {
    let t = s.trim();
    let dec = t.parse::<u64>().ok().filter(|v| v.is_power_of_two());
    let hex = u64::from_str_radix(t.trim_start_matches("0x"), 16)
        .ok()
        .filter(|v| v.is_power_of_two() && *v >= 4096);
    dec.filter(|v| *v >= 4096).or(hex).or(dec)
}

fn devtype_from_name(name: &str) -> &'static str {
    for (prefix, t) in [
        ("ndbus", "nd_bus"),
        ("region", "nd_region"),
        ("namespace", "nd_namespace_pmem"),
        ("pfn", "nd_pfn"),
        ("dax", "nd_dax"),
        ("btt", "nd_btt"),
        ("nmem", "nvdimm"),
    ] {
        if name.starts_with(prefix) {
            return t;
        }
    }
    "unknown"
}

/// Every readable regular file of at most a page in `dir` (not recursing), trimmed,
/// keyed `prefix` + file name.
fn read_attrs(dir: &Path, prefix: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    for (name, p) in list_dir(dir) {
        let Ok(md) = std::fs::metadata(&p) else {
            continue;
        };
        if !md.is_file() || md.len() > MAX_ATTR {
            continue;
        }
        if let Ok(v) = read_small(&p, MAX_ATTR) {
            attrs.insert(format!("{prefix}{name}"), v.trim().to_string());
        }
    }
    attrs
}

fn read_small(p: &Path, max: u64) -> std::io::Result<String> {
    let f = std::fs::File::open(p)?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Entries of `dir`, sorted by name (following symlinks lazily).
fn list_dir(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `<prefix><N>` entries of `dir`, sorted by N.
fn numbered_entries(dir: &Path, prefix: &str) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix(prefix)
            .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|r| r.parse().ok())
        {
            v.push((n, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// Options of [`CONFIG_OPTIONS`] in a kernel .config: "y"/"m"/value, "n" for "is not set".
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let l = l.trim();
        let (name, value) = if let Some(rest) = l.strip_prefix("# CONFIG_") {
            match rest.strip_suffix(" is not set") {
                Some(n) => (n, "n".to_string()),
                None => continue,
            }
        } else if let Some(rest) = l.strip_prefix("CONFIG_") {
            match rest.split_once('=') {
                Some((n, v)) => (n, v.trim().trim_matches('"').to_string()),
                None => continue,
            }
        } else {
            continue;
        };
        if CONFIG_OPTIONS.contains(&name) {
            out.insert(name.to_string(), value);
        }
    }
    out
}

/// Number of CPUs in a kernel cpu list ("0-3,8,10-11").
pub fn cpulist_count(s: &str) -> Option<u32> {
    if s.is_empty() {
        return Some(0);
    }
    let mut n = 0u32;
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                n = n.checked_add(b.checked_sub(a)? + 1)?;
            }
            None => {
                part.parse::<u32>().ok()?;
                n = n.checked_add(1)?;
            }
        }
    }
    Some(n)
}

/// `Zone` per "Node N, zone NAME" block of /proc/zoneinfo.
pub fn parse_zoneinfo(text: &str) -> Vec<TraceEvent> {
    let mut out = Vec::new();
    let mut cur: Option<(u32, String, [u64; 4])> = None; // start_pfn, spanned, present, managed
    let flush = |cur: &mut Option<(u32, String, [u64; 4])>, out: &mut Vec<TraceEvent>| {
        if let Some((node, zone, v)) = cur.take() {
            out.push(TraceEvent::Zone {
                node,
                zone,
                start_pfn: v[0],
                spanned: v[1],
                present: v[2],
                managed: v[3],
            });
        }
    };
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("Node ") {
            flush(&mut cur, &mut out);
            if let Some((n, z)) = rest.split_once(',') {
                let zone = z.trim().strip_prefix("zone").unwrap_or(z).trim();
                if let Ok(node) = n.trim().parse() {
                    cur = Some((node, zone.to_string(), [0; 4]));
                }
            }
            continue;
        }
        let Some((_, _, v)) = cur.as_mut() else {
            continue;
        };
        let mut it = l.split_whitespace();
        let (Some(k), Some(val)) = (it.next(), it.next()) else {
            continue;
        };
        let idx = match k {
            "start_pfn:" => 0,
            "spanned" => 1,
            "present" => 2,
            "managed" => 3,
            _ => continue,
        };
        if let Ok(x) = val.parse() {
            v[idx] = x;
        }
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(cpulist_count("0-3,8,10-11"), Some(7));
        assert_eq!(cpulist_count("0"), Some(1));
        assert_eq!(align_value("1073741824"), Some(1 << 30));
        assert_eq!(align_value("200000"), Some(2 << 20));
        assert_eq!(align_value("4096"), Some(4096));
        let c = parse_config("CONFIG_ZONE_DEVICE=y\n# CONFIG_KPROBE_EVENTS_ON_NOTRACE is not set\nCONFIG_NODES_SHIFT=10\nCONFIG_OTHER=y\n");
        assert_eq!(c.len(), 3);
        assert_eq!(c["KPROBE_EVENTS_ON_NOTRACE"], "n");
    }
}
