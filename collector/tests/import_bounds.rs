//! The importers on input that is not theirs (random bytes, another format, every line
//! bad), on truncated captures, and on large inputs under a memory bound (issue 14):
//! nothing panics, a file with no recognised line fails with a located error, skipped
//! lines are counted and the first ones located, and peak RSS stays under 64 MiB
//! whatever the input size.

use memmap_collect::import::{import_to, Format};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const FORMATS: [Format; 5] = [
    Format::Dmesg,
    Format::Ftrace,
    Format::PerfScript,
    Format::Ndctl,
    Format::Iomem,
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The corpus captures of a format.
fn corpus_files(f: Format) -> Vec<PathBuf> {
    let prefixes: &[&str] = match f {
        Format::Dmesg => &["dmesg-"],
        Format::Ftrace => &["ftrace-"],
        Format::PerfScript => &["perf-script-"],
        Format::Ndctl => &["ndctl-", "daxctl-"],
        Format::Iomem => &["iomem-"],
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            p.is_file() && prefixes.iter().any(|x| n.starts_with(x)) && !n.ends_with(".md")
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{f:?}");
    v
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(tag: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("mc-bounds-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift bytes: the same "random" input on every run.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// "file:LINE:" with a line number, somewhere in `msg`.
fn located(msg: &str, file: &Path) -> bool {
    let name = file.display().to_string();
    msg.match_indices(&name).any(|(i, _)| {
        let rest = &msg[i + name.len()..];
        rest.starts_with(':')
            && rest[1..].bytes().take_while(u8::is_ascii_digit).count() > 0
            && rest[1..]
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with(':')
    })
}

#[test]
fn random_bytes_are_refused_by_every_importer_with_a_located_error() {
    let t = Tmp::new("rand");
    for (i, f) in FORMATS.iter().enumerate() {
        for (j, n) in [1 << 20, 4096, 100].iter().enumerate() {
            let p = t.file(&format!("r{i}-{j}.bin"), &random_bytes(*n, 7 + i as u64));
            let out = t.0.join(format!("r{i}-{j}.jsonl"));
            let e = import_to(*f, &[&p], &out)
                .err()
                .unwrap_or_else(|| panic!("{f:?} accepted {n} random bytes"))
                .to_string();
            assert!(located(&e, &p), "{f:?}: {e}");
            assert!(e.contains(&format!("not {} input", f.name())), "{f:?}: {e}");
            assert!(e.contains("expected"), "{f:?}: {e}");
        }
    }
}

#[test]
fn truncated_captures_never_panic_and_fail_or_warn_located() {
    let t = Tmp::new("trunc");
    for f in FORMATS {
        for src in corpus_files(f) {
            let bytes = std::fs::read(&src).unwrap();
            for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() * 9 / 10, 7] {
                let p = t.file("cut.txt", &bytes[..cut.min(bytes.len())]);
                let out = t.0.join("cut.jsonl");
                match import_to(f, &[&p], &out) {
                    Ok(st) => {
                        for (file, line, reason) in &st.warnings {
                            assert_eq!(file, &p.display().to_string(), "{reason}");
                            assert!(*line >= 1, "{src:?} cut {cut}: {reason}");
                        }
                        assert!(st.recognised > 0, "{src:?} cut {cut}");
                    }
                    Err(e) => {
                        let e = e.to_string();
                        assert!(located(&e, &p), "{src:?} cut {cut}: {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn another_format_or_all_bad_lines_exit_nonzero_naming_file_and_line() {
    let t = Tmp::new("bad");
    let bin = env!("CARGO_BIN_EXE_memmap-collect");
    let cases: [(Format, &str); 6] = [
        (Format::Dmesg, "\u{1}\u{2}\u{3}\n\u{7f}\u{0}binary\n"),
        (Format::Ftrace, "no ftrace here\nnor here\n"),
        (Format::PerfScript, "hello world\nsecond line\n"),
        (Format::Ndctl, "not json\n{\"a\": 1}\n"),
        (Format::Iomem, "nothing : here\n12345\n"),
        // a dmesg file imported as iomem
        (
            Format::Iomem,
            "[    0.000000] Linux version 6.1.0\n[    0.1] Command line: x\n",
        ),
    ];
    for (i, (f, text)) in cases.iter().enumerate() {
        let p = t.file(&format!("bad{i}.txt"), text.as_bytes());
        let out = t.0.join(format!("bad{i}.jsonl"));
        let o = Command::new(bin)
            .args(["import", "--format", f.name()])
            .arg(&p)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{f:?} {text:?}: {err}");
        assert!(located(&err, &p), "{f:?}: {err}");
        assert!(err.contains("expected"), "{f:?}: {err}");
    }
    // an empty file is no capture either
    let p = t.file("empty.txt", b"");
    let e = import_to(Format::Dmesg, &[&p], &t.0.join("e.jsonl"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("empty") && located(&e, &p), "{e}");
}

#[test]
fn skipped_lines_are_counted_and_the_first_located() {
    let t = Tmp::new("skip");
    // (format, text, lines recognised, lines skipped, line numbers of the first skips)
    let cases: Vec<(Format, String, u64, u64, Vec<usize>)> = vec![
        (
            Format::Dmesg,
            "[    1.000000] a\n[ 1.2x] bad stamp\n\n[    2.000000] b\nplain text kept\n\u{1}\u{2}\n"
                .into(),
            2,
            2,
            vec![2, 6],
        ),
        (
            Format::Iomem,
            "$ sudo cat /proc/iomem\n00000000-00000fff : Reserved\n  junk\n100000000-4fffdffff : Persistent Memory\n5-4 : backwards\n"
                .into(),
            2,
            3,
            vec![1, 3, 5],
        ),
        (
            Format::PerfScript,
            "# header\n ndctl 583 [000] 27.065480: probe:memmap_init_zone_device: (ffffffff8d2a1230) start_pfn=0x100000 nr_pages=16\ngarbage\n    ffffffff8d2a1230 func+0x0 ([kernel.kallsyms])\nmore garbage\n"
                .into(),
            1,
            2,
            vec![3, 5],
        ),
        (
            Format::Ftrace,
            "# tracer: nop\n  ndctl-583 [000] ..... 27.065480: dax_pmd_fault: dev 259:0 ino 0xc shared WRITE|USER address 0x7f0000000000 vm_start 0x7f0000000000 vm_end 0x7f0000200000 pgoff 0x0 max_pgoff 0x1ff\nnot a line\n"
                .into(),
            2,
            1,
            vec![3],
        ),
        (
            Format::Ndctl,
            "$ ndctl list\n[\n  {\"dev\":\"namespace0.0\",\"mode\":\"raw\",\"size\":1024}\n]\ntrailing junk\n"
                .into(),
            1,
            2,
            vec![1, 5],
        ),
    ];
    for (i, (f, text, rec, skipped, first)) in cases.into_iter().enumerate() {
        let p = t.file(&format!("s{i}.txt"), text.as_bytes());
        let st = import_to(f, &[&p], &t.0.join(format!("s{i}.jsonl")))
            .unwrap_or_else(|e| panic!("{f:?}: {e}"));
        assert_eq!((st.recognised, st.skipped), (rec, skipped), "{f:?}");
        let lines: Vec<usize> = st.first_skips.iter().map(|x| x.1).collect();
        assert_eq!(lines, first, "{f:?} {:?}", st.first_skips);
        assert!(st.first_skips.iter().all(|x| !x.2.is_empty()));
        // and the command says so
        let o = Command::new(env!("CARGO_BIN_EXE_memmap-collect"))
            .args(["import", "--format", f.name()])
            .arg(&p)
            .arg("-o")
            .arg(t.0.join(format!("c{i}.jsonl")))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains(&format!("{skipped} skipped")), "{f:?}: {err}");
        assert!(
            err.contains(&format!("{}:{}:", p.display(), first[0])),
            "{f:?}: {err}"
        );
    }
}

#[test]
fn piped_input_imports_like_the_file() {
    // iomem and ndctl read their input twice: a pipe is spooled to a temporary file
    let bin = env!("CARGO_BIN_EXE_memmap-collect");
    let t = Tmp::new("pipe");
    for f in [Format::Iomem, Format::Ndctl, Format::Dmesg] {
        let src = &corpus_files(f)[0];
        let text = std::fs::read(src).unwrap();
        let a = t.0.join("a.jsonl");
        let b = t.0.join("b.jsonl");
        let st = Command::new(bin)
            .args(["import", "--format", f.name()])
            .arg(src)
            .arg("-o")
            .arg(&a)
            .output()
            .unwrap();
        assert!(st.status.success());
        let mut c = Command::new(bin)
            .args(["import", "--format", f.name(), "/dev/stdin", "-o"])
            .arg(&b)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&text).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let events = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| l.replace("/dev/stdin", &src.display().to_string()))
                .collect()
        };
        assert_eq!(events(&a), events(&b), "{f:?}");
    }
}

/// A large input of `f` in `path`: its corpus captures repeated (ndctl: one array of
/// namespace objects, as `ndctl list -N` of a very large machine prints it).
fn write_large(f: Format, path: &Path, bytes: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut n = 0usize;
    if f == Format::Ndctl {
        w.write_all(b"[\n").unwrap();
        let mut i = 0u64;
        while n < bytes {
            let (mode, map, size, key) = [
                ("fsdax", "dev", 16894656512u64, "blockdev"),
                ("devdax", "mem", 17160994816, "chardev"),
            ][(i % 2) as usize];
            let s = format!(
                "{}  {{\n    \"dev\":\"namespace{}.{}\",\n    \"mode\":\"{mode}\",\n    \"map\":\"{map}\",\n    \"size\":{size},\n    \"uuid\":\"{:08x}-6453-4749-b521-90816c08c606\",\n    \"sector_size\":512,\n    \"align\":2097152,\n    \"{key}\":\"x{i}\"\n  }}",
                if i == 0 { "" } else { ",\n" },
                i / 64,
                i % 64,
                i as u32
            );
            w.write_all(s.as_bytes()).unwrap();
            n += s.len();
            i += 1;
        }
        w.write_all(b"\n]\n").unwrap();
    } else {
        let mut text = Vec::new();
        for p in corpus_files(f) {
            let mut b = std::fs::read(p).unwrap();
            if !b.ends_with(b"\n") {
                b.push(b'\n');
            }
            text.extend_from_slice(&b);
        }
        while n < bytes {
            w.write_all(&text).unwrap();
            n += text.len();
        }
    }
    w.flush().unwrap();
}

/// Runs `import` on `input`; (exit status, peak RSS in KiB from wait4, stderr).
// reaped by wait4 (for its rusage), not by Child::wait
#[allow(clippy::zombie_processes)]
fn import_peak_rss(f: Format, input: &Path, out: &Path) -> (bool, u64, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_memmap-collect"))
        .args(["import", "--format", f.name()])
        .arg(input)
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    // stderr holds at most a few dozen lines: read it to the end, then reap the child
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the locals passed.
    let r = unsafe { libc::wait4(c.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, c.id() as i32, "wait4");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, ru.ru_maxrss as u64, err)
}

#[test]
fn peak_rss_stays_under_64_mib_on_large_inputs() {
    // The input alone is larger than the bound (the importers used to hold 8-10x their
    // input): 200 MB in release test builds, 72 MB in debug ones to keep the test short
    // (~8 s). MEMMAP_BOUND_MB overrides it.
    let mb: usize = std::env::var("MEMMAP_BOUND_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 72 } else { 200 });
    let t = Tmp::new("rss");
    for f in FORMATS {
        let input = t.0.join(format!("large-{}.txt", f.name()));
        write_large(f, &input, mb * 1_000_000);
        let (ok, kib, err) = import_peak_rss(f, &input, &t.0.join("out.jsonl"));
        assert!(ok, "{f:?}: {err}");
        eprintln!("{}: {mb} MB input, peak RSS {} MiB", f.name(), kib / 1024);
        assert!(kib < 64 * 1024, "{f:?}: peak RSS {kib} KiB on {mb} MB");
        std::fs::remove_file(&input).unwrap();
    }
}
