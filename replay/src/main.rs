use anyhow::Context;
use clap::{Parser, Subcommand};
use memmap_replay::interrupt::Interrupt;
use memmap_replay::{compare, layout_cmd, predict, runner, strategy};
use std::io::Write;
use std::process::ExitCode;

/// Replay the kernel's memmap (struct page) initialisation of pmem namespaces and
/// hot-added memory on real mmap'd memory, under the strategies proposed upstream.
#[derive(Parser)]
#[command(name = "memmap-replay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay a scenario under one strategy and write a run file.
    Run(runner::RunArgs),
    /// Compute the kernel's layout of namespaces / hot-added memory.
    Layout(layout_cmd::LayoutArgs),
    /// Compare run files: medians, spread, deltas with significance.
    Compare(compare::CompareArgs),
    /// Predict the kernel's time per strategy on a described host (docs/predict.md).
    Predict(predict::PredictArgs),
    /// List the strategies.
    Strategies,
    /// List the shipped scenarios.
    Scenarios,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Run(_)) {
        // `memmap-replay layout ... --json | head` ends quietly instead of panicking on
        // EPIPE. Not for `run`, which keeps finished repeats on every way out.
        // SAFETY: setting a signal disposition before other threads exist.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let res = match cli.cmd {
        Cmd::Run(a) => run(&a),
        Cmd::Layout(a) => layout_cmd::run(&a).map(|_| ExitCode::SUCCESS),
        Cmd::Compare(a) => compare::run(&a).map(|_| ExitCode::SUCCESS),
        Cmd::Predict(a) => predict::run(&a).map(|_| ExitCode::SUCCESS),
        Cmd::Strategies => {
            for s in strategy::ALL {
                let p = s.default_params(1);
                println!(
                    "{:22} threads={:<9} sub-ranges={:<4} store={:<12} {}\n{:22} {}",
                    s.name(),
                    if s == strategy::Strategy::JORDAN_PADATA {
                        "cpus/node".to_string()
                    } else {
                        p.threads.to_string()
                    },
                    p.sub_ranges,
                    p.store.as_str(),
                    s.namespace_concurrency(),
                    "",
                    s.about()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Scenarios => {
            for (name, text) in runner::SHIPPED {
                let first = text
                    .lines()
                    .find(|l| l.starts_with("description"))
                    .unwrap_or("");
                println!(
                    "{name:24} {}",
                    first.trim_start_matches("description = ").trim_matches('"')
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    match res {
        Ok(c) => c,
        Err(e) => {
            // Not eprintln!: a closed stderr pipe must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "memmap-replay: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(a: &runner::RunArgs) -> anyhow::Result<ExitCode> {
    // SIGINT, SIGTERM, SIGHUP: stop after the current repeat, through the normal way
    // out (see interrupt.rs). Installed before anything is prepared or created.
    let signals = Interrupt::install().context("installing the signal handlers")?;
    let rf = runner::run(a, signals.flag())?;
    // The run file is written: a summary nobody reads (stdout closed) is no failure.
    let summary = if a.json {
        serde_json::to_string_pretty(&runner::summary_json(&rf, &a.output))? + "\n"
    } else {
        runner::render_human(&rf, &a.output)
    };
    write_stdout(&summary).with_context(|| {
        format!(
            "printing the summary (the run file {} is written)",
            a.output.display()
        )
    })?;
    let bad_verify = rf
        .repeats
        .iter()
        .filter_map(|r| r.verify.as_ref())
        .any(|v| v.errors > 0);
    let bad_reads = rf.repeats.iter().any(|r| r.metrics.uninitialised_reads > 0);
    if bad_verify || bad_reads {
        let _ = writeln!(
            std::io::stderr(),
            "memmap-replay: verification FAILED (see run file: verify.first_errors / uninitialised_reads)"
        );
        return Ok(ExitCode::from(1));
    }
    if rf.interrupted {
        return Ok(ExitCode::from(signals.exit_code()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `text` to stdout. A closed pipe (`run ... | head -1`, `| true`) is not an
/// error: `run` keeps SIGPIPE ignored so it can save its repeats, and must end quietly.
fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}
