//! Screenshot mode of `memmap-view`: render views of the given files in a real window
//! (eframe/glow), save each as a PNG and exit. Used by the screenshot tests under Xvfb
//! (viewer/tests/screenshots.rs) and usable by hand:
//!
//! ```text
//! memmap-view --screenshot-dir DIR [--view VIEW[,VIEW...]] [--size WxH] [--timeout SECS] FILE...
//! ```
//!
//! Files are opened synchronously in the order given (so the active file is the first
//! one, and Compare takes A = the first run, B = the second). Each view is drawn for a
//! few frames and then captured with `ViewportCommand::Screenshot` into `DIR/<view>.png`
//! (the whole window, RGBA). For reproducible images this mode uses a fixed window size,
//! a scale factor of 1 (`WINIT_X11_SCALE_FACTOR=1` unless set), the dark theme, no
//! animations, a synthetic clock, no pointer or keyboard input, no persisted egui state,
//! and hides the status text (which shows load times).

use crate::app::{View, ViewerApp};
use egui::{ColorImage, Ui};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Frames drawn in a view before it is captured: egui's sizing passes, the plots'
/// auto-bounds and the timeline's fit settle within a few frames.
const SETTLE_FRAMES: u32 = 8;

pub const USAGE: &str = "memmap-view --screenshot-dir DIR [--view VIEW[,VIEW...]] [--size WxH] [--timeout SECS] FILE...\n  VIEW: overview, timeline, progress, stalls, layout, compare, live (default: all but live)\n  writes DIR/<view>.png of the whole window; exit status 0 when every view was saved";

#[derive(Clone, Debug, PartialEq)]
pub struct ScreenshotArgs {
    pub dir: PathBuf,
    pub views: Vec<View>,
    /// Window inner size in pixels.
    pub size: [u32; 2],
    /// Give up (exit status 3) after this long.
    pub timeout_s: f64,
    pub files: Vec<PathBuf>,
}

/// True when the command line asks for screenshot mode.
pub fn requested(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--screenshot-dir" || a.starts_with("--screenshot-dir="))
}

fn parse_view(s: &str) -> Result<View, String> {
    View::ALL
        .into_iter()
        .find(|v| v.name().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("unknown view {s:?}"))
}

pub fn parse_args(args: &[String]) -> Result<ScreenshotArgs, String> {
    let mut dir = None;
    let mut views = None;
    let mut size = [1024, 640];
    let mut timeout_s = 60.0;
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{key} needs a value"))
        };
        match key {
            "--screenshot-dir" => dir = Some(PathBuf::from(value()?)),
            "--view" => {
                views = Some(
                    value()?
                        .split(',')
                        .map(parse_view)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            "--size" => {
                let v = value()?;
                let (w, h) = v
                    .split_once('x')
                    .ok_or_else(|| format!("--size {v}: expected WxH"))?;
                let p = |s: &str| {
                    s.parse::<u32>()
                        .ok()
                        .filter(|&n| (64..=8192).contains(&n))
                        .ok_or_else(|| format!("--size {v}: expected WxH, 64..8192 each"))
                };
                size = [p(w)?, p(h)?];
            }
            "--timeout" => {
                let v = value()?;
                timeout_s = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| *t > 0.0)
                    .ok_or_else(|| format!("--timeout {v}: expected seconds"))?;
            }
            _ if key.starts_with("--") => return Err(format!("unknown option {key}")),
            _ => files.push(PathBuf::from(a)),
        }
    }
    let views =
        views.unwrap_or_else(|| View::ALL.into_iter().filter(|v| *v != View::Live).collect());
    if views.is_empty() {
        return Err("--view: no view given".into());
    }
    if files.is_empty() {
        return Err("no file to open".into());
    }
    Ok(ScreenshotArgs {
        dir: dir.ok_or("--screenshot-dir is required")?,
        views,
        size,
        timeout_s,
        files,
    })
}

/// Screenshot mode's `main`: returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("memmap-view: {e}\nusage: {USAGE}");
            return 2;
        }
    };
    match run(&a) {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("memmap-view: {e}");
            code
        }
    }
}

/// Open the files, draw and capture every view; Err carries an exit status.
pub fn run(a: &ScreenshotArgs) -> Result<(), (i32, String)> {
    std::fs::create_dir_all(&a.dir).map_err(|e| (2, format!("{}: {e}", a.dir.display())))?;
    let mut app = ViewerApp::default();
    app.follow = false;
    for f in &a.files {
        app.open_sync(f);
    }
    if !app.errors.is_empty() {
        let msgs: Vec<String> = app
            .errors
            .iter()
            .map(|e| match e.line {
                Some(l) => format!("{}:{l}: {}", e.path, e.reason),
                None => format!("{}: {}", e.path, e.reason),
            })
            .collect();
        return Err((2, format!("could not open:\n  {}", msgs.join("\n  "))));
    }
    app.active = 0;
    app.repeat = 0;
    if std::env::var_os("WINIT_X11_SCALE_FACTOR").is_none() {
        // Still single-threaded here: nothing reads the environment concurrently.
        std::env::set_var("WINIT_X11_SCALE_FACTOR", "1");
    }
    let timeout = a.timeout_s;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs_f64(timeout));
        eprintln!("memmap-view: screenshot mode timed out after {timeout} s");
        std::process::exit(3);
    });

    // Fresh, throw-away eframe storage: no remembered window geometry or egui memory.
    let state =
        std::env::temp_dir().join(format!("memmap-view-screenshot-{}.ron", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let [w, h] = a.size;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("memmap-view (screenshot)")
            .with_inner_size([w as f32, h as f32])
            .with_min_inner_size([w as f32, h as f32])
            .with_max_inner_size([w as f32, h as f32])
            .with_position([0.0, 0.0])
            .with_resizable(false),
        persist_window: false,
        persistence_path: Some(state.clone()),
        ..Default::default()
    };
    let saved: Arc<Mutex<Vec<Result<String, String>>>> = Default::default();
    let shooter = Shooter {
        app,
        views: a.views.clone(),
        dir: a.dir.clone(),
        idx: 0,
        frames: 0,
        clock: 0,
        pending: None,
        saved: saved.clone(),
    };
    let r = eframe::run_native(
        "memmap-view-screenshot",
        options,
        Box::new(move |cc| {
            cc.egui_ctx.set_theme(egui::Theme::Dark);
            cc.egui_ctx.all_styles_mut(|s| s.animation_time = 0.0);
            Ok(Box::new(shooter))
        }),
    );
    let _ = std::fs::remove_file(&state);
    if let Err(e) = r {
        return Err((
            2,
            format!("could not open a window ({e}); needs an X display (DISPLAY) with OpenGL, e.g. under xvfb-run with Mesa"),
        ));
    }
    let saved = saved.lock().map(|s| s.clone()).unwrap_or_default();
    let mut errors = Vec::new();
    for s in &saved {
        match s {
            // The files are saved: a closed stdout is no reason to panic.
            Ok(msg) => {
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), "{msg}");
            }
            Err(e) => errors.push(e.clone()),
        }
    }
    if saved.len() < a.views.len() {
        errors.push(format!(
            "the window closed after {} of {} views",
            saved.len(),
            a.views.len()
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err((1, errors.join("\n")))
    }
}

type Slot = Arc<Mutex<Option<Arc<ColorImage>>>>;

struct Shooter {
    app: ViewerApp,
    views: Vec<View>,
    dir: PathBuf,
    /// Index of the view being drawn.
    idx: usize,
    /// Frames drawn in this view.
    frames: u32,
    /// Frames drawn in total: the synthetic clock.
    clock: u64,
    /// The screenshot requested for this view, filled by eframe after painting.
    pending: Option<Slot>,
    saved: Arc<Mutex<Vec<Result<String, String>>>>,
}

impl Shooter {
    fn save_png(&self, img: &ColorImage) -> Result<String, String> {
        let view = self.views[self.idx];
        let path = self.dir.join(format!("{}.png", view.name().to_lowercase()));
        crate::export::save_png(img, None, 1.0, &path)?;
        Ok(format!(
            "{}: {} ({}x{})",
            view.name(),
            path.display(),
            img.size[0],
            img.size[1]
        ))
    }
}

impl eframe::App for Shooter {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if let Some(img) = self
            .pending
            .as_ref()
            .and_then(|s| s.lock().ok().and_then(|mut s| s.take()))
        {
            let r = self.save_png(&img);
            if let Ok(mut s) = self.saved.lock() {
                s.push(r);
            }
            self.pending = None;
            self.idx += 1;
            self.frames = 0;
        }
        if self.idx >= self.views.len() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        self.app.view = self.views[self.idx];
        // The status line shows load times: not reproducible.
        self.app.status.clear();
        self.app.ui(ui);
        self.frames += 1;
        if self.pending.is_none() && self.frames >= SETTLE_FRAMES {
            let slot: Slot = Default::default();
            let s = slot.clone();
            let c = ctx.clone();
            ctx.request_screenshot(move |img| {
                if let Ok(mut s) = s.lock() {
                    *s = Some(img);
                }
                c.request_repaint();
            });
            self.pending = Some(slot);
        }
        ctx.request_repaint();
    }

    /// No pointer, keyboard or file input, and a clock that advances 1/60 s per frame.
    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw: &mut egui::RawInput) {
        raw.events.clear();
        raw.hovered_files.clear();
        raw.dropped_files.clear();
        raw.time = Some(self.clock as f64 / 60.0);
        raw.predicted_dt = 1.0 / 60.0;
        self.clock += 1;
    }

    fn persist_egui_memory(&self) -> bool {
        false
    }
}
