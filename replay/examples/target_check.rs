//! Time the `--target` data check (docs/benchmarks.md, "issue 14: target check"):
//! `cargo run --release -p memmap-replay --example target_check -- FILE [LEN]` reads
//! what `Target::open` reads of an existing FILE before writing (every data extent of the
//! first LEN bytes, default the file's size) and prints the time and rate.

use std::time::Instant;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: target_check FILE [LEN]");
        std::process::exit(2);
    };
    let path = std::path::Path::new(path);
    let len = match args.get(2) {
        Some(l) => l.parse().expect("LEN in bytes"),
        None => std::fs::metadata(path)?.len(),
    };
    let t = Instant::now();
    let s = memmap_replay::target::scan_file(path, len)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}: {len} bytes checked in {secs:.6} s ({:.2} GB/s of range, {:.2} GB/s of data read); \
         {} bytes read in {} extents; first non-zero byte: {}",
        path.display(),
        len as f64 / secs / 1e9,
        s.bytes_read as f64 / secs / 1e9,
        s.bytes_read,
        s.extents,
        s.first_nonzero
            .map(|o| o.to_string())
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}
