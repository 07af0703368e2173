//! `memmap-view [FILE...]`: open run files and traces in the desktop viewer.
//! `memmap-view --screenshot-dir DIR ...`: save views as PNG and exit (see screenshot.rs).

use memmap_viewer::ViewerApp;

fn main() -> eframe::Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        // Not println!: `memmap-view --help | head -1` must not panic on the closed pipe.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "usage: memmap-view [FILE...]\n       {}\n\nOpens memmap-lab run files (memmap-replay run -o) and traces (memmap-collect).\nSee docs/viewer.md for views and keys.", memmap_viewer::screenshot::USAGE);
        return Ok(());
    }
    if memmap_viewer::screenshot::requested(&args) {
        std::process::exit(memmap_viewer::screenshot::main(&args));
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("memmap-view")
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "memmap-view",
        options,
        Box::new(move |cc| {
            let mut app = ViewerApp::new(cc.storage);
            for a in &args {
                app.open_background(a.into(), &cc.egui_ctx);
            }
            Ok(Box::new(app))
        }),
    )
}
