//! snapshot::take on fake /proc + /sys trees built from the QEMU NVDIMM guest captures
//! (tests/corpus/sysfs-*/README.md), on an empty tree, and on this machine.

use memmap_collect::snapshot::{self, Snapshot};
use memmap_model::layout::{namespace_layout, LayoutParams, MapLocation, NamespaceSpec, NsMode};
use memmap_model::trace::TraceEvent;
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "memmap-snapshot-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn unavailable<'a>(s: &'a Snapshot, source: &str) -> Option<&'a str> {
    s.events.iter().find_map(|e| match e {
        TraceEvent::Unavailable { source: so, reason } if so == source => Some(reason.as_str()),
        _ => None,
    })
}

fn namespaces(s: &Snapshot) -> Vec<NamespaceSpec> {
    s.events
        .iter()
        .filter_map(TraceEvent::namespace_spec)
        .collect()
}

#[test]
fn fsdax_dev_1g_tree_gives_the_namespace_the_kernel_laid_out() {
    let s = snapshot::take(&corpus("sysfs-qemu-6.1-fsdax-dev-1G"));
    assert_eq!(s.header.source, "live");
    assert_eq!(s.header.kernel_release, "6.1.0-56-amd64");
    assert_eq!(s.header.hostname, "(none)");
    assert!(s.header.cmdline.starts_with("console=ttyS0 panic=-1"));
    assert_eq!((s.header.cpus, s.header.numa_nodes), (2, 1));
    // Only the libnvdimm-unrelated dax bus is absent: nothing is Unavailable.
    let un: Vec<_> = s
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Unavailable { .. }))
        .collect();
    assert!(un.is_empty(), "{un:?}");

    let ns = namespaces(&s);
    assert_eq!(ns.len(), 1, "{:?}", s.events);
    let spec = &ns[0];
    assert_eq!(spec.name, "namespace0.0");
    assert_eq!((spec.mode, spec.map), (NsMode::Fsdax, MapLocation::Dev));
    assert_eq!(spec.size_bytes, 17163091968);
    assert_eq!(spec.start_phys, 0x1_0000_0000);
    assert_eq!(spec.align_bytes, 1 << 30);
    assert_eq!(spec.node, 0);

    // raw/s16/sfsdax-dev-1G-whole.txt: memmap_init_zone_device start_pfn=0x100000
    // nr_pages=3932160; info block dataoff 1073741824, npfns 3670016, end_trunc 1056964608;
    // "initialised 3670016 pages"; pfn0.1/size 15032385536, pfn0.1/resource 0x140000000.
    let l = namespace_layout(spec, &LayoutParams::linux_6_1()).unwrap();
    assert_eq!((l.range_start_pfn, l.range_pages), (0x100000, 3932160));
    assert_eq!(l.dataoff_bytes, 1073741824);
    assert_eq!(l.npfns, 3670016);
    assert_eq!(l.end_trunc_pages * 4096, 1056964608);
    assert_eq!(l.data_pages, 3670016);
    assert_eq!(
        spec.size_bytes - l.dataoff_bytes - l.end_trunc_pages * 4096,
        15032385536
    );
    assert_eq!(spec.start_phys + l.dataoff_bytes, 0x1_4000_0000);

    // The pfn device, its attributes verbatim; the unclaimed seed pfn0.0 gives no namespace.
    let pfn = s
        .events
        .iter()
        .find_map(|e| match e {
            TraceEvent::NdDevice {
                dev,
                devtype,
                attrs,
            } if dev == "pfn0.1" => Some((devtype.clone(), attrs.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(pfn.0, "nd_pfn");
    assert_eq!(pfn.1["mode"], "pmem");
    assert_eq!(pfn.1["supported_alignments"], "4096 2097152 1073741824");
    assert!(!pfn.1.contains_key("uevent"));
    let devs = s
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::NdDevice { .. }))
        .count();
    assert_eq!(devs, 6); // ndbus0 nmem0 region0 namespace0.0 pfn0.0 pfn0.1

    let TraceEvent::KernelConfig { options } = s
        .events
        .iter()
        .find(|e| matches!(e, TraceEvent::KernelConfig { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(options["ZONE_DEVICE"], "y");
    assert_eq!(options["DEV_DAX_PMEM"], "m");
    assert_eq!(options["MEMORY_HOTPLUG_DEFAULT_ONLINE"], "n");
    assert_eq!(options["NODES_SHIFT"], "6");
    assert!(!options.contains_key("ARCH_WANT_OPTIMIZE_DAX_VMEMMAP"));
    assert!(s.events.contains(&TraceEvent::Source {
        source: "kernel-config".into(),
        detail: "/boot/config-6.1.0-56-amd64".into()
    }));

    let blocks: Vec<_> = s
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::MemoryBlock {
                index,
                phys_start,
                size_bytes,
                node,
                state,
                ..
            } => Some((*index, *phys_start, *size_bytes, *node, state.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(blocks.len(), 24);
    assert_eq!(blocks[0], (0, 0, 128 << 20, Some(0), "online".into()));
    assert_eq!(blocks[23].1, 23 * (128 << 20));
    let hp = s
        .events
        .iter()
        .find_map(|e| match e {
            TraceEvent::Source { source, detail } if source == "memory-hotplug" => {
                Some(detail.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(hp.contains("block_size_bytes=0x8000000"), "{hp}");
    assert!(hp.contains("auto_online_blocks=offline"), "{hp}");
    assert!(hp.contains("memmap_on_memory=N"), "{hp}");

    assert!(s.events.contains(&TraceEvent::Zone {
        node: 0,
        zone: "DMA32".into(),
        start_pfn: 4096,
        spanned: 782304,
        present: 782304,
        managed: 749496
    }));
    assert!(s.events.contains(&TraceEvent::NumaNode {
        node: 0,
        cpulist: "0-1".into(),
        mem_total_bytes: 3013344 * 1024
    }));
    assert!(s.events.contains(&TraceEvent::Iomem {
        start: 0x1_0000_0000,
        end: 0x4_feff_ffff,
        name: "namespace0.0".into(),
        depth: 1
    }));
}

#[test]
fn devdax_mem_1g_tree_gives_the_namespace_the_kernel_laid_out() {
    let s = snapshot::take(&corpus("sysfs-qemu-6.1-devdax-mem-1G"));
    let ns = namespaces(&s);
    assert_eq!(ns.len(), 1);
    let spec = &ns[0];
    assert_eq!((spec.mode, spec.map), (NsMode::Devdax, MapLocation::Mem));
    assert_eq!(
        (spec.size_bytes, spec.align_bytes, spec.start_phys),
        (2164260864, 1 << 30, 0x1_0000_0000)
    );
    // raw/s16/sdevdax-mem-1G-2064M.txt: memmap_init_zone_device start_pfn=0x100000
    // nr_pages=524288 vmemmap_shift=18; dataoff 1 GiB, end_trunc 16 MiB, npfns 262144;
    // dax0.0 1 GiB at 0x140000000.
    let l = namespace_layout(spec, &LayoutParams::linux_6_1()).unwrap();
    assert_eq!((l.range_start_pfn, l.range_pages), (0x100000, 524288));
    assert_eq!(l.dataoff_bytes, 1 << 30);
    assert_eq!(l.end_trunc_pages * 4096, 16 << 20);
    assert_eq!(l.npfns, 262144);
    assert_eq!(l.compound_order, 18);
    // The device-dax instance from the dax bus, with its mapping.
    let dax = s
        .events
        .iter()
        .find_map(|e| match e {
            TraceEvent::NdDevice {
                dev,
                devtype,
                attrs,
            } if devtype == "dev_dax" => Some((dev.clone(), attrs.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(dax.0, "dax0.0");
    assert_eq!(dax.1["mapping0/start"], "0x140000000");
    assert_eq!(dax.1["size"], "1073741824");
}

#[test]
fn proc_config_gz_is_preferred_and_a_pfn_mode_none_namespace_is_reported() {
    use std::io::Write;
    let d = tmpdir("gz");
    copy_tree(&corpus("sysfs-qemu-6.1-fsdax-dev-1G"), &d);
    let text = std::fs::read(d.join("boot/config-6.1.0-56-amd64")).unwrap();
    std::fs::remove_dir_all(d.join("boot")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    gz.write_all(b"CONFIG_ARCH_WANT_OPTIMIZE_DAX_VMEMMAP=y\n")
        .unwrap();
    std::fs::write(d.join("proc/config.gz"), gz.finish().unwrap()).unwrap();
    // The pfn device lost its personality: no layout, and the snapshot says why.
    std::fs::write(d.join("sys/bus/nd/devices/pfn0.1/mode"), "none\n").unwrap();
    let s = snapshot::take(&d);
    assert!(s.events.contains(&TraceEvent::Source {
        source: "kernel-config".into(),
        detail: "/proc/config.gz".into()
    }));
    assert!(s.events.iter().any(|e| matches!(e,
        TraceEvent::KernelConfig { options } if options["ARCH_WANT_OPTIMIZE_DAX_VMEMMAP"] == "y")));
    assert!(namespaces(&s).is_empty());
    let r = unavailable(&s, "/sys/bus/nd/devices/namespace0.0").unwrap();
    assert!(r.contains("pfn0.1/mode is Some(\"none\")"), "{r}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_empty_root_is_all_unavailable_with_reasons() {
    let d = tmpdir("empty");
    let s = snapshot::take(&d);
    assert_eq!(s.header.kernel_release, "");
    let cfg = unavailable(&s, "kernel-config").unwrap();
    assert!(
        cfg.contains("/proc/config.gz and /boot/config- missing: CONFIG_IKCONFIG_PROC off"),
        "{cfg}"
    );
    assert_eq!(
        unavailable(&s, "/sys/bus/nd"),
        Some("no /sys/bus/nd: libnvdimm not loaded or no NVDIMM")
    );
    for src in [
        "/proc/iomem",
        "/proc/zoneinfo",
        "/sys/devices/system/memory",
        "/sys/devices/system/node",
        "/sys/devices/system/cpu/online",
        "/proc/cmdline",
    ] {
        assert!(unavailable(&s, src).is_some(), "{src}: {:?}", s.events);
    }
    // Addresses hidden from non-root readers: Unavailable, no zero Iomem events.
    std::fs::create_dir_all(d.join("proc")).unwrap();
    std::fs::copy(corpus("iomem-nonroot-zeros-6.18.txt"), d.join("proc/iomem")).unwrap();
    let s = snapshot::take(&d);
    assert_eq!(
        unavailable(&s, "/proc/iomem"),
        Some("/proc/iomem shows zero addresses: not root (need CAP_SYS_ADMIN)")
    );
    assert!(!s
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::Iomem { .. })));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn this_machine() {
    let s = snapshot::take(Path::new("/"));
    let uname = std::process::Command::new("uname")
        .arg("-r")
        .output()
        .unwrap();
    let release = String::from_utf8(uname.stdout).unwrap();
    assert_eq!(s.header.kernel_release, release.trim());
    assert!(s.header.cpus >= 1);
    if Path::new("/sys/devices/system/memory").exists() {
        assert!(s
            .events
            .iter()
            .any(|e| matches!(e, TraceEvent::MemoryBlock { .. })));
    }
    // No NVDIMM here: either no nd bus or an empty one, reported, and no namespace.
    if !Path::new("/sys/bus/nd/devices/region0").exists() {
        let r = unavailable(&s, "/sys/bus/nd").expect("nd bus reported unavailable");
        assert!(r.contains("NVDIMM"), "{r}");
        assert!(namespaces(&s).is_empty());
    }
    // The snapshot serializes into a trace line by line.
    for e in &s.events {
        serde_json::to_string(e).unwrap();
    }
}
