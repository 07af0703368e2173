//! Screenshot tests (cargo feature `screenshots`): `memmap-view --screenshot-dir` renders
//! every view of the real fixture runs, and Timeline, Layout and Stalls of real testbed
//! traces, in a real window (eframe/glow) on an Xvfb server with Mesa's software OpenGL
//! (llvmpipe). Each image must not be blank and must match its reference in
//! viewer/tests/snapshots/ (the screenshot downscaled 4x, RGB PNG) within a tolerance.
//!
//!   cargo test -p memmap-viewer --features screenshots --test screenshots
//!   UPDATE_SNAPSHOTS=1 cargo test -p memmap-viewer --features screenshots --test screenshots
//!
//! The second form rewrites the references. Needs the Xvfb binary and Mesa (Debian:
//! `apt-get install -y xvfb xauth xfonts-base libgl1-mesa-dri libegl1 libegl-mesa0 libgl1
//! libglx-mesa0 libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2`); without Xvfb the test fails and says so. On a
//! mismatch the screenshot and its downscaled form are written next to the test's
//! temporary files and their paths printed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Window size of every screenshot (pixels; scale factor 1).
const SIZE: [usize; 2] = [1024, 640];
/// Downscale factor of the references: 1024x640 -> 256x160.
const DOWN: usize = 4;
/// Largest mean absolute difference per channel (0..255) against the reference.
const MAX_MEAN_ABS_DIFF: f64 = 1.0;
/// Largest fraction of reference pixels whose largest channel difference exceeds
/// `PIXEL_DIFF`. One full-size pixel changes a downscaled one by at most 255/16 < 16,
/// so anti-aliasing noise of the rasteriser stays below `PIXEL_DIFF`; a changed word
/// of text or a moved curve does not (the Overview of the other fixture run, whose
/// layout is the same and values differ: 0.83%; its Layout view: 0.37%).
const MAX_DIFF_FRACTION: f64 = 0.0025;
const PIXEL_DIFF: u8 = 24;
/// Not blank: at least this many distinct colours in the window...
const MIN_COLOURS: usize = 64;
/// ...and this fraction of the central area (right of the file panel, below the top
/// bar) differing from its most common colour.
const MIN_CONTENT_FRACTION: f64 = 0.05;

const INSTALL: &str = "apt-get install -y xvfb xauth xfonts-base libgl1-mesa-dri libegl1 libegl-mesa0 libgl1 libglx-mesa0 libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2";

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One `memmap-view --screenshot-dir` invocation: files and the views to capture; the
/// references are `snapshots/<name>-<view>.png`.
struct Case {
    name: &'static str,
    files: Vec<PathBuf>,
    views: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let data = manifest().join("tests/data");
    let testbed = manifest().join("../traces/real/testbed");
    vec![
        Case {
            // A = williams-async, B = duyck (Compare takes the first two runs).
            name: "run",
            files: vec![
                data.join("qemu16g-williams-async.run.json"),
                data.join("qemu16g-duyck.run.json"),
            ],
            views: &[
                "overview", "timeline", "progress", "stalls", "layout", "compare",
            ],
        },
        // Real traces recorded by memmap-collect in the QEMU testbed (traces/real/testbed/).
        Case {
            // fsdax namespace creation: function_graph spans, tracepoints, uevents; lanes
            // named task-pid.
            name: "fsdax-mem",
            files: vec![testbed.join("fsdax-mem.jsonl")],
            views: &["timeline"],
        },
        Case {
            // 16 GiB namespace and 1 GiB pc-dimm hotplug: the namespace and the
            // hot-plugged range.
            name: "hotplug-1g",
            files: vec![testbed.join("hotplug-1g.jsonl")],
            views: &["layout"],
        },
        Case {
            // DAX faults on ext4: stall distribution from fault latencies.
            name: "ext4-dax",
            files: vec![testbed.join("ext4-dax.jsonl")],
            views: &["stalls"],
        },
    ]
}

/// An Xvfb server on a display it picks itself (-displayfd), killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let exe = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("Xvfb"))
                    .find(|f| f.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "Xvfb not found on PATH: the screenshot tests render in a real window on an \
                     Xvfb server with Mesa. Install it (Debian/Ubuntu): {INSTALL}"
                )
            });
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots-xvfb.log");
        let mut child = Command::new(&exe)
            .args(["-displayfd", "1", "-screen", "0", "1280x800x24"])
            .args(["-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("Xvfb log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", exe.display()));
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let n = line.trim();
        if n.is_empty() || n.parse::<u32>().is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Xvfb did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decode a PNG to 8-bit RGB (alpha dropped: the window is opaque).
fn read_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut dec = png::Decoder::new(BufReader::new(f));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut r = dec
        .read_info()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0; r.output_buffer_size().unwrap_or(0)];
    let info = r
        .next_frame(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(format!("{}: palette not expanded", path.display())),
    };
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let row = &buf[y * info.line_size..y * info.line_size + w * channels];
        for px in row.chunks_exact(channels) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0]; 3]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
    }
    Ok((w, h, rgb))
}

fn write_rgb(path: &Path, w: usize, h: usize, rgb: &[u8]) {
    let f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(rgb).unwrap();
}

/// Box-filter downscale by `DOWN`.
fn downscale(w: usize, h: usize, rgb: &[u8]) -> (usize, usize, Vec<u8>) {
    let (dw, dh) = (w / DOWN, h / DOWN);
    let mut out = Vec::with_capacity(dw * dh * 3);
    for y in 0..dh {
        for x in 0..dw {
            for c in 0..3 {
                let mut sum = 0u32;
                for yy in 0..DOWN {
                    for xx in 0..DOWN {
                        sum += rgb[((y * DOWN + yy) * w + x * DOWN + xx) * 3 + c] as u32;
                    }
                }
                let n = (DOWN * DOWN) as u32;
                out.push(((sum + n / 2) / n) as u8);
            }
        }
    }
    (dw, dh, out)
}

/// (distinct colours in the window, fraction of the central area that is not its
/// background colour).
fn content(w: usize, h: usize, rgb: &[u8]) -> (usize, f64) {
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    let mut all = std::collections::HashSet::new();
    for y in 0..h {
        for x in 0..w {
            all.insert(px(x, y));
        }
    }
    // Right of the file panel (230 points) and below the top bar.
    let (x0, y0, x1, y1) = (260, 40, w - 8, h - 8);
    let mut counts = std::collections::HashMap::new();
    for y in y0..y1 {
        for x in x0..x1 {
            *counts.entry(px(x, y)).or_insert(0usize) += 1;
        }
    }
    let total = ((x1 - x0) * (y1 - y0)) as f64;
    let background = counts.values().copied().max().unwrap_or(0) as f64;
    (all.len(), 1.0 - background / total)
}

/// (mean absolute difference per channel, fraction of pixels differing by more than
/// `PIXEL_DIFF` in some channel).
fn difference(a: &[u8], b: &[u8]) -> (f64, f64) {
    let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    let differing = a
        .chunks_exact(3)
        .zip(b.chunks_exact(3))
        .filter(|(p, q)| p.iter().zip(*q).any(|(x, y)| x.abs_diff(*y) > PIXEL_DIFF))
        .count();
    (
        sum as f64 / a.len() as f64,
        differing as f64 / (a.len() / 3) as f64,
    )
}

#[test]
fn every_view_renders_and_matches_its_reference() {
    let started = Instant::now();
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v != "0" && !v.is_empty());
    let snapshots = manifest().join("tests/snapshots");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    if update {
        std::fs::create_dir_all(&snapshots).unwrap();
    }
    let xvfb = Xvfb::start();
    println!("Xvfb on {}", xvfb.display);
    let mut failures = Vec::new();
    for case in cases() {
        let dir = out.join(case.name);
        let t = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_memmap-view"));
        cmd.arg("--screenshot-dir")
            .arg(&dir)
            .arg("--view")
            .arg(case.views.join(","))
            .arg("--size")
            .arg(format!("{}x{}", SIZE[0], SIZE[1]))
            .arg("--timeout")
            .arg("60")
            .args(&case.files)
            .env("DISPLAY", &xvfb.display)
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("GALLIUM_DRIVER", "llvmpipe")
            .env("WINIT_X11_SCALE_FACTOR", "1")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null());
        let o = cmd.output().expect("run memmap-view");
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        print!("{stdout}");
        assert!(
            o.status.success(),
            "memmap-view --screenshot-dir ({}) failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            case.name,
            o.status
        );
        println!(
            "{}: {} view(s) in {:.1} s",
            case.name,
            case.views.len(),
            t.elapsed().as_secs_f64()
        );
        for view in case.views {
            let name = format!("{}-{view}", case.name);
            let shot = dir.join(format!("{view}.png"));
            let (w, h, rgb) = read_rgb(&shot).unwrap_or_else(|e| panic!("{name}: {e}"));
            if [w, h] != SIZE {
                failures.push(format!(
                    "{name}: screenshot is {w}x{h}, expected {}x{} (scale factor not 1?)",
                    SIZE[0], SIZE[1]
                ));
                continue;
            }
            let (colours, frac) = content(w, h, &rgb);
            let not_blank = colours >= MIN_COLOURS && frac >= MIN_CONTENT_FRACTION;
            println!(
                "{name}: {colours} colours, {:.1}% of the central area drawn{}",
                frac * 100.0,
                if not_blank { "" } else { "  <- BLANK" }
            );
            if !not_blank {
                failures.push(format!(
                    "{name}: looks blank ({colours} colours, need {MIN_COLOURS}; {:.2}% drawn, need {:.0}%): {}",
                    frac * 100.0,
                    MIN_CONTENT_FRACTION * 100.0,
                    shot.display()
                ));
            }
            let (dw, dh, small) = downscale(w, h, &rgb);
            let reference = snapshots.join(format!("{name}.png"));
            if update {
                write_rgb(&reference, dw, dh, &small);
                let bytes = std::fs::metadata(&reference).map(|m| m.len()).unwrap_or(0);
                println!("{name}: wrote {} ({bytes} bytes)", reference.display());
                continue;
            }
            let actual = out.join(format!("{name}.actual.png"));
            match read_rgb(&reference) {
                Err(e) => {
                    write_rgb(&actual, dw, dh, &small);
                    failures.push(format!(
                        "{name}: no reference ({e}); run with UPDATE_SNAPSHOTS=1 to create it (this run's: {})",
                        actual.display()
                    ));
                }
                Ok((rw, rh, _)) if (rw, rh) != (dw, dh) => {
                    write_rgb(&actual, dw, dh, &small);
                    failures.push(format!(
                        "{name}: reference is {rw}x{rh}, this run {dw}x{dh}: {}",
                        actual.display()
                    ));
                }
                Ok((_, _, r)) => {
                    let (mad, frac) = difference(&small, &r);
                    let ok = mad <= MAX_MEAN_ABS_DIFF && frac <= MAX_DIFF_FRACTION;
                    println!(
                        "{name}: mean abs diff {mad:.3} (max {MAX_MEAN_ABS_DIFF}), {:.2}% pixels differ by > {PIXEL_DIFF} (max {:.2}%){}",
                        frac * 100.0,
                        MAX_DIFF_FRACTION * 100.0,
                        if ok { "" } else { "  <- MISMATCH" }
                    );
                    if !ok {
                        write_rgb(&actual, dw, dh, &small);
                        failures.push(format!(
                            "{name}: differs from {} (mean abs diff {mad:.3}, {:.2}% pixels): this run's {} (full size {}); UPDATE_SNAPSHOTS=1 rewrites the reference if the change is intended",
                            reference.display(),
                            frac * 100.0,
                            actual.display(),
                            shot.display()
                        ));
                    }
                }
            }
        }
    }
    drop(xvfb);
    println!(
        "screenshot test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn screenshot_mode_rejects_a_bad_command_line_without_a_display() {
    let o = Command::new(env!("CARGO_BIN_EXE_memmap-view"))
        .args([
            "--screenshot-dir",
            "/nonexistent-dir/x",
            "--view",
            "nosuchview",
            "a.run.json",
        ])
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown view"));
}
