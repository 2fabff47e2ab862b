//! `ezpz`: command-line tools for runs written by `ezpz-tracker`.
//!
//! ```text
//! ezpz report <outdir>    rebuild report.md and plots/ from <outdir>/metrics.jsonl
//! ezpz sync <outdir>      deliver what a run left in its spool (MLflow) into the same run
//! ezpz --help             list the commands
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ezpz_tracker::report::{build_report, ReportOptions, REPORT_MD};
use ezpz_tracker::sync::{sync, SyncOptions};

const HELP: &str = "\
ezpz: tools for runs written by ezpz-tracker

Usage: ezpz <command> [args]

Commands:
  report <outdir>   Rebuild report.md, plots/*.png (and run_info.json when missing)
                    from <outdir>/metrics.jsonl
  sync <outdir>     Deliver what a run left undelivered in <outdir>/spool/ (its finish
                    timed out, or the process was killed) into the same run
  help              Show this help

Options:
  -h, --help        Show this help (or a command's help: ezpz report --help)
  -V, --version     Show the version
";

const REPORT_HELP: &str = "\
Usage: ezpz report <outdir> [--max-points N] [--max-plots N]

Rebuilds <outdir>/report.md and <outdir>/plots/*.png from <outdir>/metrics.jsonl alone.
The run's identity comes from <outdir>/run_info.json when present (written at the end of
the run), else from the JSONL's first and last records (and run_info.json is written).

Options:
  --max-points N    plot buckets per metric (default 1000)
  --max-plots N     plots drawn at most (default 200)
  -h, --help        show this help
";

const SYNC_HELP: &str = "\
Usage: ezpz sync <outdir> [--tracking-uri URI] [--timeout SECONDS] [--force]

Delivers every spool under <outdir>/spool/ into the run it belongs to (creating the run if
the server never saw it), then deletes it. A spool without a final status belongs to a
process that died (kill -9): its data is delivered and the run is marked KILLED.
Exit status 1 when something is left (run it again later).

Options:
  --tracking-uri URI  the server, if it moved or its URI carries credentials (the spool
                      keeps the URI without them)
  --timeout SECONDS   how long to retry a server that does not answer (default 60)
  --force             replay a spool whose writer runs on another host (after its job ended)
  -h, --help          show this help
";

/// A usage error: the message and the help text to show with it.
struct Usage(String, &'static str);

fn parse_count(flag: &str, value: Option<String>) -> Result<usize, Usage> {
    value
        .as_deref()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| Usage(format!("{flag} needs a positive whole number"), REPORT_HELP))
}

fn report(args: impl Iterator<Item = String>) -> Result<ExitCode, Usage> {
    let mut args = args;
    let mut outdir: Option<PathBuf> = None;
    let mut options = ReportOptions::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{REPORT_HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            "--max-points" => options.max_points = parse_count(&arg, args.next())?,
            "--max-plots" => options.max_plots = parse_count(&arg, args.next())?,
            flag if flag.starts_with('-') => {
                return Err(Usage(format!("unknown option `{flag}`"), REPORT_HELP))
            }
            _ if outdir.is_some() => {
                return Err(Usage(format!("unexpected argument `{arg}`"), REPORT_HELP))
            }
            _ => outdir = Some(PathBuf::from(arg)),
        }
    }
    let outdir = outdir.ok_or_else(|| Usage("missing <outdir>".into(), REPORT_HELP))?;
    match build_report(&outdir, None, &options) {
        Ok(files) => {
            println!(
                "wrote {} ({} plots, {} records)",
                outdir.join(REPORT_MD).display(),
                files.plots.len(),
                files.history.records
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("ezpz report: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn sync_command(args: impl Iterator<Item = String>) -> Result<ExitCode, Usage> {
    let mut args = args;
    let mut outdir: Option<PathBuf> = None;
    let mut options = SyncOptions::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{SYNC_HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            "--tracking-uri" => {
                let uri = args
                    .next()
                    .ok_or_else(|| Usage("--tracking-uri needs a value".into(), SYNC_HELP))?;
                options.tracking_uri = Some(uri);
            }
            "--timeout" => {
                options.timeout = args
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    // `try_`: `1e20` seconds is a usage error, not a panic.
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| {
                        Usage("--timeout needs a number of seconds".into(), SYNC_HELP)
                    })?;
            }
            "--force" => options.force = true,
            flag if flag.starts_with('-') => {
                return Err(Usage(format!("unknown option `{flag}`"), SYNC_HELP))
            }
            _ if outdir.is_some() => {
                return Err(Usage(format!("unexpected argument `{arg}`"), SYNC_HELP))
            }
            _ => outdir = Some(PathBuf::from(arg)),
        }
    }
    let outdir = outdir.ok_or_else(|| Usage("missing <outdir>".into(), SYNC_HELP))?;
    let reports = match sync(&outdir, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ezpz sync: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if reports.is_empty() {
        println!("ezpz sync: nothing to deliver in {}", outdir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut complete = true;
    for r in &reports {
        let run = r.run_url.as_deref().unwrap_or("(run not created yet)");
        if r.is_complete() {
            println!(
                "ezpz sync: {}: delivered {} request(s) to {run}",
                r.backend, r.delivered
            );
        } else {
            complete = false;
            println!(
                "ezpz sync: {}: delivered {}, {} left in {} ({}); run it again later",
                r.backend,
                r.delivered,
                r.remaining,
                r.spool.display(),
                r.last_failure.as_deref().unwrap_or("no answer")
            );
        }
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run() -> Result<ExitCode, Usage> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None => Err(Usage("missing command".into(), HELP)),
        Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some("-V" | "--version") => {
            println!("ezpz {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Some("report") => report(args),
        Some("sync") => sync_command(args),
        Some(other) => Err(Usage(format!("unknown command `{other}`"), HELP)),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(Usage(message, help)) => {
            eprintln!("error: {message}\n\n{help}");
            ExitCode::from(2)
        }
    }
}
