//! The application: open files, the error panel, view switching, live follow,
//! recent files and exports.

use crate::doc::{load_path, Doc, LoadError, OpenFile};
use crate::views::compare::CompareState;
use crate::views::progress::ProgressState;
use crate::views::timeline::TimelineState;
use crate::views::{compare, layout, live, overview, progress, stalls, timeline};
use egui::Ui;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

pub const RECENT_KEY: &str = "memmap-view-recent";
const MAX_RECENT: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Timeline,
    Progress,
    Stalls,
    Layout,
    Compare,
    Live,
}

impl View {
    pub const ALL: [View; 7] = [
        View::Overview,
        View::Timeline,
        View::Progress,
        View::Stalls,
        View::Layout,
        View::Compare,
        View::Live,
    ];
    pub fn name(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Timeline => "Timeline",
            View::Progress => "Progress",
            View::Stalls => "Stalls",
            View::Layout => "Layout",
            View::Compare => "Compare",
            View::Live => "Live",
        }
    }
}

/// A minimal pure-egui open dialog (no system libraries needed).
#[derive(Default)]
pub struct OpenDialog {
    pub open: bool,
    pub dir: PathBuf,
    pub path_text: String,
}

pub struct ViewerApp {
    pub files: Vec<OpenFile>,
    pub errors: Vec<LoadError>,
    pub recent: Vec<String>,
    pub view: View,
    pub active: usize,
    pub repeat: usize,
    pub timeline: TimelineState,
    pub compare: CompareState,
    pub follow: bool,
    pub progress: ProgressState,
    pub status: String,
    pub dialog: OpenDialog,
    pending: Vec<PathBuf>,
    tx: Sender<(PathBuf, Result<OpenFile, LoadError>)>,
    rx: Receiver<(PathBuf, Result<OpenFile, LoadError>)>,
    last_poll: f64,
    /// Rect of the last drawn plot, for PNG export.
    plot_rect: Option<egui::Rect>,
    export_status: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Default for ViewerApp {
    fn default() -> Self {
        let (tx, rx) = channel();
        ViewerApp {
            files: Vec::new(),
            errors: Vec::new(),
            recent: Vec::new(),
            view: View::Overview,
            active: 0,
            repeat: 0,
            timeline: TimelineState::default(),
            compare: CompareState::default(),
            follow: true,
            progress: ProgressState::default(),
            status: String::new(),
            dialog: OpenDialog::default(),
            pending: Vec::new(),
            tx,
            rx,
            last_poll: 0.0,
            plot_rect: None,
            export_status: Default::default(),
        }
    }
}

impl ViewerApp {
    pub fn new(storage: Option<&dyn eframe::Storage>) -> Self {
        let mut app = ViewerApp::default();
        if let Some(s) = storage {
            if let Some(r) = s.get_string(RECENT_KEY) {
                app.recent = serde_json::from_str(&r).unwrap_or_default();
            }
        }
        app
    }

    /// Open a file now, on this thread (tests, command line).
    pub fn open_sync(&mut self, path: &Path) {
        let r = load_path(path);
        self.accept(path.to_path_buf(), r);
    }

    /// Open a file in the background; the result arrives in a later frame.
    pub fn open_background(&mut self, path: PathBuf, ctx: &egui::Context) {
        if self.pending.contains(&path) {
            return;
        }
        self.pending.push(path.clone());
        let tx = self.tx.clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| load_path(&path)).unwrap_or_else(|_| {
                Err(LoadError {
                    path: path.display().to_string(),
                    line: None,
                    reason: "internal error while loading".into(),
                })
            });
            let _ = tx.send((path, r));
            ctx.request_repaint();
        });
    }

    /// True while background loads are running.
    pub fn loading(&self) -> bool {
        !self.pending.is_empty()
    }

    fn accept(&mut self, path: PathBuf, r: Result<OpenFile, LoadError>) {
        self.pending.retain(|p| p != &path);
        match r {
            Ok(f) => {
                self.status = format!("opened {} in {:.0} ms", f.name, f.load_ms);
                self.errors.retain(|e| Path::new(&e.path) != path);
                let key = path.display().to_string();
                self.recent.retain(|p| p != &key);
                self.recent.insert(0, key);
                self.recent.truncate(MAX_RECENT);
                if let Some(i) = self.files.iter().position(|x| x.path == path) {
                    self.files[i] = f;
                } else {
                    self.files.push(f);
                    self.active = self.files.len() - 1;
                    self.repeat = 0;
                    self.timeline = TimelineState::default();
                }
                self.auto_pick_compare();
            }
            Err(e) => {
                self.status = format!("could not open {}", e.path);
                self.errors.retain(|x| x.path != e.path);
                self.errors.push(e);
            }
        }
    }

    fn auto_pick_compare(&mut self) {
        let srcs = crate::doc::compare::sources(&self.files);
        if self.compare.a.is_none() {
            self.compare.a = srcs.first().map(|s| s.0.clone());
        }
        if self.compare.b.is_none() && srcs.len() > 1 {
            self.compare.b = srcs.get(1).map(|s| s.0.clone());
        }
    }

    fn poll_loads(&mut self) {
        while let Ok((p, r)) = self.rx.try_recv() {
            self.accept(p, r);
        }
    }

    /// Live mode: reload run files whose mtime changed (the replay renames a new
    /// file into place after each repeat, so a reader never sees half a file).
    pub fn poll_live(&mut self, now: f64, ctx: &egui::Context) {
        if !self.follow || now - self.last_poll < 0.5 {
            return;
        }
        self.last_poll = now;
        let changed: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|f| {
                let m = std::fs::metadata(&f.path).and_then(|m| m.modified()).ok();
                m.is_some() && m != f.mtime
            })
            .map(|f| f.path.clone())
            .collect();
        for p in changed {
            self.open_background(p, ctx);
        }
    }

    pub fn save_recent(&self, storage: &mut dyn eframe::Storage) {
        if let Ok(s) = serde_json::to_string(&self.recent) {
            storage.set_string(RECENT_KEY, s);
        }
    }

    /// Draw one frame.
    pub fn ui(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        self.poll_loads();
        let now = ctx.input(|i| i.time);
        self.poll_live(now, &ctx);
        if self.follow && !self.files.is_empty() {
            ctx.request_repaint_after(std::time::Duration::from_millis(500));
        }
        // Drag and drop.
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        for p in dropped {
            self.open_background(p, &ctx);
        }
        if let Some(msg) = self.export_status.lock().ok().and_then(|mut m| m.take()) {
            self.status = msg;
        }

        egui::Panel::top("menu").show(ui, |ui| self.top_bar(ui));
        if !self.errors.is_empty() {
            egui::Panel::bottom("errors").show(ui, |ui| self.error_panel(ui));
        }
        egui::Panel::left("files")
            .default_size(230.0)
            .show(ui, |ui| self.file_list(ui));
        egui::CentralPanel::default().show(ui, |ui| self.central(ui));
        if self.dialog.open {
            self.open_dialog(&ctx);
        }
    }

    fn top_bar(&mut self, ui: &mut Ui) {
        ui.horizontal_wrapped(|ui| {
            if ui.button("Open…").clicked() {
                self.dialog.open = true;
                if self.dialog.dir.as_os_str().is_empty() {
                    self.dialog.dir = std::env::current_dir().unwrap_or_default();
                }
            }
            ui.menu_button("Recent", |ui| {
                if self.recent.is_empty() {
                    ui.label("(none)");
                }
                for r in self.recent.clone() {
                    if ui.button(&r).clicked() {
                        let ctx = ui.ctx().clone();
                        self.open_background(PathBuf::from(r), &ctx);
                        ui.close();
                    }
                }
            });
            ui.separator();
            for v in View::ALL {
                ui.selectable_value(&mut self.view, v, v.name());
            }
            ui.separator();
            if ui.button("Export PNG").clicked() {
                let path = PathBuf::from(format!(
                    "memmap-view-{}.png",
                    self.view.name().to_lowercase()
                ));
                let rect = self.plot_rect;
                let ppp = ui.ctx().pixels_per_point();
                let status = self.export_status.clone();
                let ctx = ui.ctx().clone();
                let cb = egui::ScreenshotCallback::new(move |img| {
                    let msg = match crate::export::save_png(&img, rect, ppp, &path) {
                        Ok(()) => format!("saved {}", path.display()),
                        Err(e) => format!("PNG export failed: {e}"),
                    };
                    if let Ok(mut s) = status.lock() {
                        *s = Some(msg);
                    }
                    ctx.request_repaint();
                });
                ui.ctx()
                    .send_viewport_cmd(egui::ViewportCommand::Screenshot(cb));
            }
            if self.loading() {
                ui.spinner();
                ui.label("loading…");
            }
            ui.label(&self.status);
        });
    }

    fn error_panel(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.colored_label(
                egui::Color32::RED,
                format!("{} file(s) could not be opened", self.errors.len()),
            );
            if ui.button("Dismiss").clicked() {
                self.errors.clear();
            }
        });
        egui::Grid::new("errors-grid").striped(true).show(ui, |ui| {
            for e in &self.errors {
                ui.label(&e.path);
                ui.label(e.line.map(|l| format!("line {l}")).unwrap_or_default());
                ui.label(&e.reason);
                ui.end_row();
            }
        });
    }

    fn file_list(&mut self, ui: &mut Ui) {
        ui.strong("Open files");
        let mut close = None;
        for (i, f) in self.files.iter().enumerate() {
            ui.horizontal(|ui| {
                let kind = match &f.doc {
                    Doc::Run(r) => format!("run, {} repeats", r.run.repeats.len()),
                    Doc::Trace(t) => format!("trace, {} spans", t.timeline.n_spans),
                };
                if ui
                    .selectable_label(self.active == i, &f.name)
                    .on_hover_text(format!("{}\n{kind}", f.path.display()))
                    .clicked()
                {
                    self.active = i;
                    self.repeat = 0;
                    self.timeline = TimelineState::default();
                }
                if ui.small_button("×").on_hover_text("close").clicked() {
                    close = Some(i);
                }
            });
        }
        if let Some(i) = close {
            self.files.remove(i);
            self.active = self.active.min(self.files.len().saturating_sub(1));
            self.timeline = TimelineState::default();
        }
        if self.files.is_empty() {
            ui.label("Drop run files (.run.json) or traces (.jsonl) here, or use Open…");
        }
        if let Some(Doc::Run(r)) = self.files.get(self.active).map(|f| &f.doc) {
            let n = r.run.repeats.len();
            if n > 1 {
                ui.separator();
                let before = self.repeat;
                ui.add(egui::Slider::new(&mut self.repeat, 0..=n - 1).text("repeat"));
                if before != self.repeat {
                    self.timeline = TimelineState::default();
                }
            }
        }
    }

    /// The active view (each view module draws itself).
    fn central(&mut self, ui: &mut Ui) {
        self.plot_rect = Some(ui.max_rect());
        match self.view {
            View::Compare => {
                if let Some(msg) = compare::ui(ui, &self.files, &mut self.compare) {
                    self.status = msg;
                }
                return;
            }
            View::Live => return live::ui(ui, &self.files, self.active, &mut self.follow),
            _ => {}
        }
        let Some(f) = self.files.get_mut(self.active) else {
            ui.heading("memmap-view");
            ui.label("Open a run file from memmap-replay or a trace from memmap-collect.");
            return;
        };
        let repeat = self.repeat;
        match self.view {
            View::Overview => overview::ui(ui, &f.doc),
            View::Timeline => {
                let rect = timeline::ui(ui, &mut f.doc, self.active, repeat, &mut self.timeline);
                if rect.is_some() {
                    self.plot_rect = rect;
                }
            }
            View::Progress => progress::ui(ui, &f.doc, repeat, &mut self.progress),
            View::Stalls => stalls::ui(ui, &f.doc, repeat),
            View::Layout => layout::ui(ui, &f.doc),
            View::Compare | View::Live => {}
        }
    }

    fn open_dialog(&mut self, ctx: &egui::Context) {
        let mut open = self.dialog.open;
        let mut chosen: Option<PathBuf> = None;
        egui::Window::new("Open file")
            .open(&mut open)
            .default_size([520.0, 420.0])
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.label("path");
                    ui.text_edit_singleline(&mut self.dialog.path_text);
                    if ui.button("Open").clicked() && !self.dialog.path_text.is_empty() {
                        chosen = Some(PathBuf::from(self.dialog.path_text.clone()));
                    }
                });
                ui.horizontal(|ui| {
                    if ui.button("⬆ Up").clicked() {
                        if let Some(p) = self.dialog.dir.parent() {
                            self.dialog.dir = p.to_path_buf();
                        }
                    }
                    ui.label(self.dialog.dir.display().to_string());
                });
                ui.separator();
                let mut entries: Vec<(bool, PathBuf)> = std::fs::read_dir(&self.dialog.dir)
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .map(|e| (e.path().is_dir(), e.path()))
                            .collect()
                    })
                    .unwrap_or_default();
                entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for (is_dir, p) in entries {
                        let name = p
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if name.starts_with('.') {
                            continue;
                        }
                        let text = if is_dir {
                            format!("📁 {name}")
                        } else {
                            name.clone()
                        };
                        if ui.selectable_label(false, text).clicked() {
                            if is_dir {
                                self.dialog.dir = p;
                            } else {
                                chosen = Some(p);
                            }
                        }
                    }
                });
            });
        self.dialog.open = open;
        if let Some(p) = chosen {
            self.dialog.open = false;
            self.open_background(p, ctx);
        }
    }
}

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        ViewerApp::ui(self, ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.save_recent(storage);
    }
}
