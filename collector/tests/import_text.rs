//! Text importers (ftrace, dmesg, perf script) against the real captures in tests/corpus
//! (Debian 6.1 kernel in QEMU with an emulated NVDIMM; see tests/corpus/ftrace-dmesg-perf-SOURCES.md).
//! Expected values are read off the files by hand.

use memmap_collect::correlate::{Correlator, Sample};
use memmap_collect::import::{dmesg, ftrace, perf_script};
use memmap_model::trace::TraceEvent;
use std::collections::BTreeMap;

fn corpus(name: &str) -> String {
    let p = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))).into_owned()
}

fn warnings(ev: &[TraceEvent]) -> Vec<&TraceEvent> {
    ev.iter()
        .filter(|e| matches!(e, TraceEvent::ImportWarning { .. }))
        .collect()
}

/// (func, t_ns, dur_ns, pid, cpu) of every span.
fn spans(ev: &[TraceEvent]) -> Vec<(&str, u64, u64, u32, u32)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::FunctionSpan {
                t_ns,
                dur_ns,
                func,
                pid,
                cpu,
                ..
            } => Some((func.as_str(), *t_ns, *dur_ns, *pid, *cpu)),
            _ => None,
        })
        .collect()
}

fn span<'a>(ev: &'a [TraceEvent], func: &str) -> (&'a str, u64, u64, u32, u32) {
    let s: Vec<_> = spans(ev).into_iter().filter(|s| s.0 == func).collect();
    assert_eq!(s.len(), 1, "{func}: {s:?}");
    s[0]
}

fn marks(ev: &[TraceEvent]) -> Vec<(u64, &str)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::Mark { t_ns, text } => Some((*t_ns, text.as_str())),
            _ => None,
        })
        .collect()
}

/// (pmd, dur_ns, pgoff, result) of every fault.
fn faults(ev: &[TraceEvent]) -> Vec<(bool, Option<u64>, u64, String)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::DaxFault {
                pmd,
                dur_ns,
                pgoff,
                result,
                ..
            } => Some((*pmd, *dur_ns, *pgoff, result.clone())),
            _ => None,
        })
        .collect()
}

/// (func, t_ns, dur_ns, start_pfn, nr_pages, task, pid)
type Init<'a> = (&'a str, u64, Option<u64>, u64, u64, &'a str, u32);

fn inits(ev: &[TraceEvent]) -> Vec<Init<'_>> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::MemmapInit {
                t_ns,
                dur_ns,
                func,
                start_pfn,
                nr_pages,
                task,
                pid,
                ..
            } => Some((
                func.as_str(),
                *t_ns,
                *dur_ns,
                *start_pfn,
                *nr_pages,
                task.as_str(),
                *pid,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn kprobe_memmap_init_zone_device_with_its_return() {
    let ev = ftrace::import("k", &corpus("ftrace-kprobe-fsdax-create.txt"));
    assert!(warnings(&ev).is_empty(), "{:?}", warnings(&ev));
    assert_eq!(
        inits(&ev),
        vec![
            // 27.631965 - 27.065480 s
            (
                "memmap_init_zone_device",
                27_065_480_000,
                Some(566_485_000),
                0x100000,
                4190208,
                "ndctl",
                583
            ),
            // 30.143052 - 28.575552 s
            (
                "memmap_init_zone_device",
                28_575_552_000,
                Some(1_567_500_000),
                0x100000,
                4190208,
                "ndctl",
                629
            ),
        ]
    );
    let TraceEvent::MemmapInit { cpu, .. } = ev.iter().find(|e| e.kind() == "memmap-init").unwrap()
    else {
        unreachable!()
    };
    assert_eq!(*cpu, 0);
    let probes: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Kprobe { func, ret, pid, .. } => Some((func.as_str(), *ret, *pid)),
            _ => None,
        })
        .collect();
    assert_eq!(
        probes,
        vec![
            ("pmem_attach_disk", false, 583),
            ("pmem_attach_disk", true, 583),
            ("pmem_attach_disk", false, 629),
            ("pmem_attach_disk", true, 629)
        ]
    );
    assert_eq!(
        marks(&ev),
        vec![
            (25_887_520_000, "BEGIN kprobe create fsdax map=mem"),
            (27_684_930_000, "END kprobe create fsdax map=mem"),
            (28_239_725_000, "BEGIN kprobe create fsdax map=dev"),
            (30_206_980_000, "END kprobe create fsdax map=dev"),
        ]
    );
}

#[test]
fn kprobe_layout_captures_give_pfn_ranges_from_bytes_and_pfns() {
    let ev = ftrace::import("l", &corpus("ftrace-kprobe-layout-b16-fsdax-dev-2M-4G.txt"));
    assert!(warnings(&ev).is_empty(), "{:?}", warnings(&ev));
    let i = inits(&ev);
    // arch_add_memory start=0x100000000 size=0x100000000 bytes -> pfns
    assert!(
        i.contains(&(
            "arch_add_memory",
            122_292_125_000,
            None,
            0x100000,
            0x100000,
            "ndctl",
            2228
        )),
        "{i:?}"
    );
    assert!(i.contains(&(
        "__add_pages",
        122_292_205_000,
        None,
        0x100000,
        1048576,
        "ndctl",
        2228
    )));
    assert!(i.contains(&(
        "memmap_init_zone_device",
        122_293_224_000,
        None,
        0x100000,
        1048576,
        "ndctl",
        2228
    )));
    let ev = ftrace::import(
        "l",
        &corpus("ftrace-kprobe-layout-b3-pair4c-fsdax-dev-4K-48M.txt"),
    );
    let i = inits(&ev);
    assert!(
        i.contains(&(
            "arch_add_memory",
            111_224_311_000,
            None,
            0x102000,
            12288,
            "ndctl",
            2999
        )),
        "{i:?}"
    );
    assert!(i.contains(&(
        "memmap_init_zone_device",
        111_228_838_000,
        None,
        0x102000,
        12288,
        "ndctl",
        2999
    )));
    // a return kprobe with its fetched return value
    assert!(ev.iter().any(|e| matches!(e,
        TraceEvent::Kprobe { func, ret: true, args, .. } if func == "nd_pfn_validate" && args["ret"] == "-19")));
}

#[test]
fn fs_dax_ext4_faults_pair_with_their_done_and_results() {
    let ev = ftrace::import("e", &corpus("ftrace-fs_dax-ext4.excerpt.txt"));
    // "### ..." notes are comments; "207:" grep -n prefixes are read through
    assert!(warnings(&ev).is_empty(), "{:?}", warnings(&ev));
    let f = faults(&ev);
    let pmd_sync: Vec<_> = f.iter().filter(|x| x.0 && x.3 == "NEEDDSYNC").collect();
    assert_eq!(pmd_sync.len(), 3);
    // 31.618558 - 31.596564, 31.653151 - 31.632607, 31.671121 - 31.660371
    assert_eq!(
        pmd_sync.iter().map(|x| (x.1, x.2)).collect::<Vec<_>>(),
        vec![
            (Some(21_994_000), 0),
            (Some(20_544_000), 0x200),
            (Some(10_750_000), 0x400)
        ]
    );
    // the grep'd FALLBACK _done lines have no start in the excerpt
    let fallback: Vec<_> = f.iter().filter(|x| x.3 == "FALLBACK").collect();
    assert_eq!(fallback.len(), 3);
    assert!(fallback.iter().all(|x| x.0 && x.1.is_none()));
    let pte: Vec<_> = f.iter().filter(|x| !x.0).collect();
    assert_eq!(
        pte.iter()
            .map(|x| (x.1, x.2, x.3.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Some(963_000), 0, "NOPAGE"),
            (Some(1_276_000), 1, "NOPAGE"),
            (Some(1_988_000), 2, "NOPAGE"),
            (Some(57_000), 3, "NOPAGE")
        ]
    );
    let first = ev.iter().find(|e| e.kind() == "dax-fault").unwrap();
    assert_eq!(
        first,
        &TraceEvent::DaxFault {
            t_ns: 31_596_564_000,
            dur_ns: Some(21_994_000),
            pmd: true,
            pid: 666,
            cpu: 1,
            address: 0x7f28e9e00000,
            pgoff: 0,
            result: "NEEDDSYNC".into()
        }
    );
    // other fs_dax events keep their fields, named like the format file
    let tp: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Tracepoint { name, fields, .. } => Some((name.as_str(), fields)),
            _ => None,
        })
        .collect();
    assert_eq!(
        tp.iter()
            .filter(|t| t.0 == "dax_insert_pfn_mkwrite")
            .count(),
        3
    );
    let (_, mk) = tp[0];
    assert_eq!(mk["dev"], 259u64 << 20);
    assert_eq!(mk["ino"], 0xc);
    assert_eq!(mk["vm_flags"], 8); // shared
    assert_eq!(mk["flags"], 0x1 | 0x4 | 0x10 | 0x40 | 0x200);
    assert_eq!(mk["address"], 0x7f28e9e00000u64);
    assert_eq!(mk["result"], 0x100); // NOPAGE
    let wb = tp.iter().find(|t| t.0 == "dax_writeback_range").unwrap().1;
    assert_eq!(
        (wb["start_index"].as_u64(), wb["end_index"].as_u64()),
        (Some(0x200), Some(0x3ff))
    );
    assert_eq!(marks(&ev), vec![(31_537_909_000, "BEGIN ext4 faulttest")]);
}

#[test]
fn fs_dax_xfs_all_pmd_last_one_unfinished() {
    let ev = ftrace::import("x", &corpus("ftrace-fs_dax-xfs.excerpt.txt"));
    assert!(warnings(&ev).is_empty());
    let f = faults(&ev);
    assert_eq!(f.len(), 5);
    assert!(f.iter().all(|x| x.0));
    assert_eq!(
        f.iter()
            .filter(|x| x.3 == "NEEDDSYNC" && x.1.is_some())
            .count(),
        4
    );
    // the excerpt ends after the 5th dax_pmd_fault: it comes out at the end without a duration
    assert_eq!(f[4], (true, None, 0x800, String::new()));
    // 36.507066 - 36.503608
    assert_eq!(f[0].1, Some(3_458_000));
}

#[test]
fn function_graph_devdax_create_spans_match_printed_durations() {
    let ev = ftrace::import("g", &corpus("ftrace-fgraph-devdax-dev-create.txt"));
    assert!(warnings(&ev).is_empty(), "{:?}", warnings(&ev));
    assert_eq!(spans(&ev).len(), 11);
    // "@ 561397.7 us |        memmap_init_zone_device();" at 25.502371
    assert_eq!(
        span(&ev, "memmap_init_zone_device"),
        (
            "memmap_init_zone_device",
            24_502_371_000,
            561_397_700,
            524,
            1
        )
    );
    // entered on CPU 0, returned on CPU 1 ("# 9989.148 us |        } /* arch_add_memory */")
    assert_eq!(
        span(&ev, "arch_add_memory"),
        ("arch_add_memory", 24_488_582_000, 9_989_148, 524, 0)
    );
    assert_eq!(span(&ev, "__add_pages").2, 9_572_427);
    assert_eq!(
        span(&ev, "dev_dax_probe"),
        ("dev_dax_probe", 24_473_719_000, 590_218_200, 524, 1)
    );
    // "nvdimm_setup_pfn [libnvdimm]() {" -> the function without its module
    assert_eq!(span(&ev, "nvdimm_setup_pfn").2, 254_353);
    assert_eq!(
        marks(&ev),
        vec![
            (24_291_927_000, "BEGIN create devdax map=dev"),
            (25_132_906_000, "END create devdax map=dev")
        ]
    );
    let TraceEvent::FunctionSpan { task, .. } =
        ev.iter().find(|e| e.kind() == "function-span").unwrap()
    else {
        unreachable!()
    };
    assert_eq!(task, "ndctl");
}

#[test]
fn function_graph_fsdax_create_and_hotplug() {
    let ev = ftrace::import("g", &corpus("ftrace-fgraph-fsdax-dev-create.txt"));
    assert!(warnings(&ev).is_empty());
    // "$ 1557216 us"
    assert_eq!(span(&ev, "memmap_init_zone_device").2, 1_557_216_000);
    assert_eq!(span(&ev, "move_pfn_range_to_zone").2, 27_454_560);
    let probes: Vec<_> = spans(&ev)
        .into_iter()
        .filter(|s| s.0 == "nd_pmem_probe")
        .collect();
    assert_eq!(
        probes,
        vec![
            ("nd_pmem_probe", 17_070_179_000, 1_640_253_000, 288, 1),
            ("nd_pmem_probe", 18_711_128_000, 34_404, 99, 1)
        ]
    );

    // two captures concatenated (a second "# tracer" header in the middle)
    let ev = ftrace::import("h", &corpus("ftrace-fgraph-hotplug-1G-add-online.txt"));
    assert!(warnings(&ev).is_empty());
    let online: Vec<u64> = spans(&ev)
        .iter()
        .filter(|s| s.0 == "online_pages")
        .map(|s| s.2)
        .collect();
    assert_eq!(
        online,
        vec![
            7_651_154, 4_129_165, 4_217_385, 4_178_391, 4_414_012, 4_699_381, 2_366_873, 2_680_278
        ]
    );
    assert_eq!(
        span(&ev, "acpi_memory_device_add"),
        ("acpi_memory_device_add", 43_020_775_000, 88_024_940, 99, 1)
    );
    assert_eq!(span(&ev, "arch_add_memory").2, 64_920_710);
    // memory_subsys_online entered on CPU 0 at 46.563079, its return printed on CPU 1
    let mso: Vec<_> = spans(&ev)
        .into_iter()
        .filter(|s| s.0 == "memory_subsys_online")
        .collect();
    assert_eq!(mso.len(), 8);
    assert_eq!(
        mso[0],
        ("memory_subsys_online", 46_563_079_000, 25_363_480, 124, 0)
    );
}

#[test]
fn function_graph_destroy_excerpt_warns_on_the_editorial_line_only() {
    let ev = ftrace::import(
        "d.txt",
        &corpus("ftrace-fgraph-fsdax-mem-destroy.excerpt.txt"),
    );
    let w = warnings(&ev);
    assert_eq!(w.len(), 1, "{w:?}");
    let TraceEvent::ImportWarning { file, line, reason } = w[0] else {
        unreachable!()
    };
    assert_eq!((file.as_str(), *line), ("d.txt", 31));
    assert!(
        reason.contains("expected a function_graph line"),
        "{reason}"
    );
    assert_eq!(
        spans(&ev)
            .iter()
            .filter(|s| s.0 == "sparse_remove_section")
            .count(),
        27
    );
    assert_eq!(span(&ev, "devm_memremap_pages_release").2, 75_406_540);
    assert_eq!(
        span(&ev, "__remove_pages"),
        ("__remove_pages", 16_652_534_000, 16_307_460, 253, 1)
    );
}

#[test]
fn streaming_in_pieces_equals_whole_import() {
    let text = corpus("ftrace-fgraph-hotplug-1G-add-online.txt")
        + &corpus("ftrace-fs_dax-ext4.excerpt.txt");
    let whole = ftrace::import("s", &text);
    let mut p = ftrace::FtraceParser::new("s");
    let mut out = Vec::new();
    for (i, l) in text.split('\n').enumerate() {
        p.line(i + 1, l, &mut out);
    }
    p.finish(&mut out);
    assert_eq!(whole, out);
}

#[test]
fn other_ftrace_layouts() {
    // no abstime, no proc (per-CPU stacks), interleaved CPUs; tgid column; no irq-flags
    // column; trace-cmd report with its header and funcgraph events; events printed
    // inside a graph as comments; lost events
    let text = "\
version = 6
cpus=2
CPU 1 is empty
 0)               |  outer() {
 1)               |  other() {
 0)   2.000 us    |    inner();
 1) + 11.500 us   |  }
 0) ! 100.250 us  |  }
           ndctl-583   (    583) [000] d..1.    27.065480: memmap_init_zone_device: (memmap_init_zone_device+0x0/0x270) start_pfn=0x100000 nr_pages=4190208
           ndctl-583   [000]    27.631965: memmap_init_zone_device_ret: (memremap_pages+0x386/0x630 <- memmap_init_zone_device)
   kworker/0:1-35    [001]     5.000000: funcgraph_entry:                   |  add_memory() {
   kworker/0:1-35    [001]     5.000100: funcgraph_entry:      + 26.378 us   |    init_memory_mapping();
   kworker/0:1-35    [001]     5.100000: funcgraph_exit:       # 100000.0 us |  }
   10.000000 |   1)  faultte-9   |               |  /* dax_pte_fault: dev 259:0 ino 0xd shared WRITE|USER address 0x7000 pgoff 0x7  */
   10.000500 |   1)  faultte-9   |               |  /* dax_pte_fault_done: dev 259:0 ino 0xd shared WRITE|USER address 0x7000 pgoff 0x7 NOPAGE */
CPU:1 [LOST 42 EVENTS]
 0)  this is not ftrace
";
    let ev = ftrace::import("o", text);
    let s = spans(&ev);
    assert!(s.contains(&("inner", 0, 2_000, 0, 0)), "{s:?}");
    assert!(s.contains(&("other", 0, 11_500, 0, 1)));
    assert!(s.contains(&("outer", 0, 100_250, 0, 0)));
    assert!(s.contains(&("init_memory_mapping", 5_000_100_000, 26_378, 35, 1)));
    assert!(s.contains(&("add_memory", 5_000_000_000, 100_000_000, 35, 1)));
    assert_eq!(
        inits(&ev),
        vec![(
            "memmap_init_zone_device",
            27_065_480_000,
            Some(566_485_000),
            0x100000,
            4190208,
            "ndctl",
            583
        )]
    );
    assert_eq!(
        faults(&ev),
        vec![(false, Some(500_000), 7, "NOPAGE".to_string())]
    );
    assert!(ev.contains(&TraceEvent::Lost {
        source: "ftrace CPU:1".into(),
        count: 42
    }));
    let w = warnings(&ev);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        matches!(w[0], TraceEvent::ImportWarning { line: 17, .. }),
        "{w:?}"
    );
}

#[test]
fn dmesg_initialised_lines_from_real_captures() {
    for (f, t, pages, ms) in [
        (
            "dmesg-layout-b16-fsdax-dev-2M-4G.txt",
            122_302_930_000,
            1031680,
            56,
        ),
        (
            "dmesg-layout-b3-pair4c-fsdax-dev-4K-48M.txt",
            111_183_741_000,
            11776,
            0,
        ),
        (
            "dmesg-layout-b16-devdax-dev-1G-4G.txt",
            146_042_834_000,
            786432,
            88,
        ),
    ] {
        let ev = dmesg::import(f, &corpus(f));
        assert!(warnings(&ev).is_empty(), "{f}");
        let init: Vec<_> = ev.iter().filter(|e| e.kind() == "initialised").collect();
        assert_eq!(
            init,
            vec![&TraceEvent::Initialised {
                t_ns: t,
                device: "memmap_init_zone_device".into(),
                pages,
                ms
            }],
            "{f}"
        );
    }
    let ev = dmesg::import("t", &corpus("dmesg-replay-dax-tail.txt"));
    assert_eq!(ev.len(), 150); // one KernelLog per line
    assert_eq!(
        ev[0],
        TraceEvent::KernelLog {
            t_ns: 1_510_347_000,
            level: 6,
            text: "pci 0000:00:02.0: [1234:1111] type 00 class 0x030000".into()
        }
    );
    let ev = dmesg::import("o", &corpus("dmesg-teardown-oops.txt"));
    assert!(ev.iter().any(|e| matches!(e,
        TraceEvent::KernelLog { t_ns: 90_998_958_000, text, .. } if text.starts_with("BUG: unable to handle page fault"))));
}

#[test]
fn dmesg_styles_give_the_same_record() {
    let want = TraceEvent::Initialised {
        t_ns: 122_302_930_000,
        device: "memmap_init_zone_device".into(),
        pages: 1031680,
        ms: 56,
    };
    let msg = "memmap_init_zone_device initialised 1031680 pages in 56ms";
    for line in [
        format!("[  122.302930] {msg}"),
        format!("<7>[  122.302930] {msg}"),
        format!("kern  :debug : [  122.302930] {msg}"),
        format!("Nov 21 10:00:01 guest kernel: [  122.302930] {msg}"),
        format!("[  122.302930] guest kernel: {msg}"),
        format!("7,1234,122302930,-;{msg}"),
    ] {
        let ev = dmesg::import("s", &line);
        assert_eq!(ev.get(1), Some(&want), "{line}: {ev:?}");
    }
    // journalctl -k default: no monotonic time
    let ev = dmesg::import("j", &format!("Nov 21 10:00:01 guest kernel: {msg}"));
    assert!(matches!(
        &ev[1],
        TraceEvent::Initialised {
            t_ns: 0,
            pages: 1031680,
            ..
        }
    ));
    let ev = dmesg::import("k", &format!("<7>[  122.302930] {msg}"));
    assert!(matches!(ev[0], TraceEvent::KernelLog { level: 7, .. }));
}

#[test]
fn perf_script_matches_the_ftrace_import_of_the_same_samples() {
    let ev = perf_script::import(
        "p",
        &corpus("perf-script-fsdax-create-faults.converted.txt"),
    );
    assert!(warnings(&ev).is_empty(), "{:?}", warnings(&ev));
    let ft_k = ftrace::import("k", &corpus("ftrace-kprobe-fsdax-create.txt"));
    assert_eq!(inits(&ev), inits(&ft_k));
    let ft_e = ftrace::import("e", &corpus("ftrace-fs_dax-ext4.excerpt.txt"));
    let mut a = faults(&ev);
    let mut b = faults(&ft_e);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // -F comm,pid,tid,time,...: no cpu column, "583/583" pid/tid
    let ev2 = perf_script::import(
        "p2",
        &corpus("perf-script-F-comm-pid-tid-time.converted.txt"),
    );
    assert!(warnings(&ev2).is_empty());
    assert_eq!(inits(&ev2), inits(&ft_k));
    assert_eq!(faults(&ev2).len(), faults(&ft_e).len());
}

#[test]
fn correlator_api_for_the_live_recorder() {
    // the live recorder hands decoded raw fields: numbers, kernel field names
    let mut c = Correlator::new();
    let mut out = Vec::new();
    let f = |pairs: &[(&str, serde_json::Value)]| -> BTreeMap<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    c.push(
        Sample {
            t_ns: 10,
            name: "kpm/online_pages",
            task: "bash",
            pid: 3,
            cpu: 0,
            fields: f(&[
                ("__probe_ip", 0xffffffff81000000u64.into()),
                ("pfn", "0x500000".into()),
                ("nr_pages", 32768.into()),
            ]),
        },
        &mut out,
    );
    c.push(
        Sample {
            t_ns: 60,
            name: "kpm/online_pages_ret",
            task: "bash",
            pid: 3,
            cpu: 1,
            fields: f(&[
                ("__probe_func", 0xffffffff81000000u64.into()),
                ("__probe_ret_ip", 0xffffffff81000100u64.into()),
            ]),
        },
        &mut out,
    );
    c.push(
        Sample {
            t_ns: 70,
            name: "fs_dax:dax_pmd_fault_done",
            task: "t",
            pid: 4,
            cpu: 0,
            fields: f(&[
                ("address", 0x200000.into()),
                ("pgoff", 0.into()),
                ("result", 0x800.into()),
            ]),
        },
        &mut out,
    );
    c.push(
        Sample {
            t_ns: 80,
            name: "sched:sched_switch",
            task: "t",
            pid: 4,
            cpu: 0,
            fields: f(&[("prev_pid", 4.into())]),
        },
        &mut out,
    );
    c.finish(&mut out);
    assert_eq!(
        out[0],
        TraceEvent::MemmapInit {
            t_ns: 10,
            dur_ns: Some(50),
            func: "online_pages".into(),
            start_pfn: 0x500000,
            nr_pages: 32768,
            task: "bash".into(),
            pid: 3,
            cpu: 0
        }
    );
    assert!(
        matches!(&out[1], TraceEvent::DaxFault { dur_ns: None, result, .. } if result == "FALLBACK")
    );
    assert!(matches!(&out[2], TraceEvent::Tracepoint { name, .. } if name == "sched:sched_switch"));
    assert_eq!(out.len(), 3);
}

#[test]
fn testbed_boot_dmesg_gives_the_namespace_init_at_boot() {
    // Third testbed boot: the devdax map=dev namespace of the first boot comes up while
    // the modules load; its pr_debug was switched on by `dyndbg=` on the command line.
    let ev = dmesg::import(
        "dmesg-testbed-boot3-devdax-at-boot.txt",
        &corpus("dmesg-testbed-boot3-devdax-at-boot.txt"),
    );
    let inits: Vec<(u64, u64)> = ev
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Initialised { pages, ms, .. } => Some((*pages, *ms)),
            _ => None,
        })
        .collect();
    assert_eq!(inits.len(), 1, "{inits:?}");
    assert_eq!(inits[0].0, 4124672);
    assert!(warnings(&ev).is_empty(), "{:?}", warnings(&ev));
}

/// Real `perf script` output of this project's VM (tests/corpus/ftrace-dmesg-perf-SOURCES.md):
/// every sample header line becomes one tracepoint with its comm, pid, cpu and time, the
/// payload fields decoded; callchain lines (kernel and user frames) are skipped silently.
#[test]
fn perf_script_real_captures_import_every_sample() {
    for name in [
        "perf-script-real-6.18-page-faults.excerpt.txt",
        "perf-script-real-6.18-F-pid-tid.excerpt.txt",
        "perf-script-real-6.18-callchain.excerpt.txt",
    ] {
        let text = corpus(name);
        // Independent reading of the header lines: "comm pid[/tid] [cpu] secs: sys:event: ..."
        let headers: Vec<(String, u32, u32, u64, String, String)> = text
            .lines()
            .filter(|l| !l.starts_with('\t') && !l.trim().is_empty())
            .map(|l| {
                let (head, rest) = l.split_once(": ").expect("header has ': '");
                let (event, payload) = rest.trim_start().split_once(": ").expect("event");
                let mut h = head.split_whitespace().rev();
                let secs = h.next().unwrap();
                let cpu = h.next().unwrap().trim_matches(['[', ']']).parse().unwrap();
                let pid = h
                    .next()
                    .unwrap()
                    .split('/')
                    .next_back()
                    .unwrap()
                    .parse()
                    .unwrap();
                let comm = h.next().unwrap().to_string();
                let (s, us) = secs.split_once('.').unwrap();
                let t_ns =
                    s.parse::<u64>().unwrap() * 1_000_000_000 + us.parse::<u64>().unwrap() * 1000;
                (comm, pid, cpu, t_ns, event.to_string(), payload.to_string())
            })
            .collect();
        assert!(headers.len() > 100, "{name}: {} samples", headers.len());
        assert!(
            headers.iter().any(|h| h.4 == "sched:sched_switch"),
            "{name}"
        );
        let ev = perf_script::import(name, &text);
        assert!(
            warnings(&ev).is_empty(),
            "{name}: {:?}",
            &warnings(&ev)[..3.min(warnings(&ev).len())]
        );
        let tps: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Tracepoint {
                    t_ns,
                    name,
                    task,
                    pid,
                    cpu,
                    fields,
                } => Some((task, *pid, *cpu, *t_ns, name, fields)),
                _ => None,
            })
            .collect();
        assert_eq!(tps.len(), headers.len(), "{name}");
        for (tp, h) in tps.iter().zip(&headers) {
            assert_eq!(
                (tp.0, tp.1, tp.2, tp.3),
                (&h.0, h.1, h.2, h.3),
                "{name}: {h:?}"
            );
            assert_eq!(tp.4, h.4.trim_end_matches(':'), "{name}");
            if h.4 == "exceptions:page_fault_user" {
                let addr = h.5.split_whitespace().next().unwrap();
                let addr = u64::from_str_radix(addr.trim_start_matches("address=0x"), 16).unwrap();
                assert_eq!(
                    tp.5.get("address").and_then(|v| v.as_u64()),
                    Some(addr),
                    "{name}: {tp:?}"
                );
            }
        }
    }
}
