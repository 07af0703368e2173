use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Export run files (memmap-replay) and traces (memmap-collect): Parquet tables,
/// Chrome trace-event JSON, HdrHistogram interval logs.
#[derive(Parser)]
#[command(
    name = "memmap-export",
    version,
    about,
    long_about = None,
    after_help = "\
Each FILE is a run file (\"format\": \"memmap-lab-run\", JSON, from `memmap-replay run`) or a
trace (\"format\": \"memmap-lab-trace\", JSON Lines, from `memmap-collect`), told apart by the
\"format\" field at its start. Runs and traces may be mixed for --parquet (they are
different tables: runs/, repeats/, ... and trace_traces/, trace_memmap_init/, ...);
--chrome-trace takes one kind per call (their clocks differ); --hlog applies to run files.
Parquet layout and schema: docs/parquet.md.

Exit status: 0 ok, 2 error (a file that cannot be read or is neither kind, nothing to do,
a part that cannot be written)."
)]
struct Cli {
    /// Run files and/or traces.
    #[arg(required = true, num_args = 1.., value_name = "FILES")]
    files: Vec<PathBuf>,
    /// Write the Parquet tables under this directory (Hive-partitioned by host, kernel and,
    /// for runs, strategy; docs/parquet.md).
    #[arg(long, value_name = "DIR")]
    parquet: Option<PathBuf>,
    /// Write one Chrome trace-event JSON file of all runs, or of all traces (Perfetto UI,
    /// chrome://tracing).
    #[arg(long, value_name = "FILE")]
    chrome_trace: Option<PathBuf>,
    /// Write one HdrHistogram interval log (.hlog) per run file of its stall histograms.
    #[arg(long, value_name = "DIR")]
    hlog: Option<PathBuf>,
    /// File every input under this host name: for runs instead of the one they recorded
    /// (runs made on a machine whose kernel reports no name, "(none)", such as the QEMU
    /// testbed guest; changes the `host` partition, the `hostname` column and so the run
    /// id); for traces over the trace header's [default: the header's host name, `unknown`
    /// for imports and older traces].
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `memmap-export ... | head` ends quietly instead of panicking on EPIPE.
    // SAFETY: setting a signal disposition before other threads exist.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let opts = memmap_export::Options {
        parquet: cli.parquet,
        chrome_trace: cli.chrome_trace,
        hlog: cli.hlog,
        host: cli.host,
    };
    match memmap_export::export(&cli.files, &opts) {
        Ok(s) => {
            s.print_human(&opts);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("memmap-export: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
