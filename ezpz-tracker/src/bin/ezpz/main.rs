//! `ezpz`: command-line tools for runs written by `ezpz-tracker`.
//!
//! ```text
//! ezpz ls [DIR]              the runs under an outputs folder
//! ezpz show RUN              one run's summary: identity, config changes, key metrics
//! ezpz compare RUN RUN…      runs overlaid, one PNG per key group, config and final values
//! ezpz tail RUN              follow a live run's metrics as compact console lines
//! ezpz report RUN            rebuild report.md, report.html and plots/
//! ezpz sync RUN              deliver what a run left in its spool (MLflow)
//! ```
//!
//! Exit status: 0 success; 1 the command failed (message on stderr); 2 usage error;
//! `tail` also 3 (the run failed) and 4 (it stopped without finishing).

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  the command failed (the reason is on stderr)
  2  usage error
  3  (tail) the run failed
  4  (tail) the run stopped without finishing (killed)";

/// Tools for runs written by ezpz-tracker.
#[derive(Debug, Parser)]
#[command(name = "ezpz", version, after_help = EXIT_STATUS, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the runs under an outputs folder: status, start, duration, steps, world size,
    /// last loss, backends, unsynced spool
    Ls {
        /// The folder to search (runs are found up to --depth levels down)
        #[arg(default_value = "outputs")]
        dir: PathBuf,
        /// How many folder levels to search
        #[arg(long, default_value_t = 4)]
        depth: usize,
        /// One JSON object per run, one per line, instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one run: identity, configuration changes since the previous run of the project,
    /// last/min/max of the key metrics
    Show {
        /// The run directory (or a run's name under ./outputs)
        run: String,
    },
    /// Compare runs: one PNG per shared key group with the runs overlaid, and tables of
    /// configuration differences and final values (compare.md)
    Compare {
        /// Two or more run directories (or names under ./outputs)
        #[arg(required = true, num_args = 2..)]
        runs: Vec<String>,
        /// Metrics to compare: names, or group prefixes ending in `/` (default: every
        /// metric all runs share)
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// Where the PNGs and compare.md go
        #[arg(long, default_value = "ezpz-compare")]
        out: PathBuf,
    },
    /// Follow a run's metrics.jsonl and print each row as the compact console line
    /// (`step=… loss=…(±…)`); exits when the run finishes (status 0), fails (3) or stops
    /// without finishing (4)
    Tail {
        /// The run directory (or a run's name under ./outputs)
        run: String,
        /// Rows already written to show first (0: only new ones)
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Seconds between checks for new rows
        #[arg(long, default_value_t = 0.5)]
        interval: f64,
    },
    /// Rebuild report.md, report.html and plots/ from the run's metrics.jsonl (identity
    /// from run_info.json when present); only plots an earlier report wrote are replaced
    Report {
        /// The run directory
        run: PathBuf,
        /// Plot buckets per metric
        #[arg(long, default_value_t = ezpz_tracker::report::DEFAULT_MAX_POINTS, value_parser = positive)]
        max_points: usize,
        /// Plots drawn at most
        #[arg(long, default_value_t = ezpz_tracker::report::DEFAULT_MAX_PLOTS, value_parser = positive)]
        max_plots: usize,
        /// Also one plot per parameter for params/norm/* and grads/norm/* (beside the
        /// heatmaps)
        #[arg(long)]
        norm_plots: bool,
        /// More metrics for the overview picture: names, or group prefixes ending in `/`
        #[arg(long, value_delimiter = ',')]
        overview_keys: Vec<String>,
    },
    /// Deliver what a run left undelivered in its spool/ (its finish timed out, or the
    /// process was killed) into the same run; status 1 when something is left
    Sync {
        /// The run directory
        run: PathBuf,
        /// The server, if it moved or its URI carries credentials (the spool keeps the URI
        /// without them)
        #[arg(long)]
        tracking_uri: Option<String>,
        /// How long to retry a server that does not answer, in seconds
        #[arg(long, default_value_t = 60.0, value_parser = seconds)]
        timeout: f64,
        /// Replay a spool whose writer runs on another host (once that job has ended)
        #[arg(long)]
        force: bool,
    },
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("needs a positive whole number".into()),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("needs a number of seconds".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { dir, depth, json } => commands::ls(&dir, depth, json),
        Command::Show { run } => commands::show(&run),
        Command::Compare { runs, keys, out } => commands::compare(&runs, &keys, &out),
        Command::Tail {
            run,
            lines,
            interval,
        } => commands::tail(&run, lines, interval),
        Command::Report {
            run,
            max_points,
            max_plots,
            norm_plots,
            overview_keys,
        } => commands::report(&run, max_points, max_plots, norm_plots, overview_keys),
        Command::Sync {
            run,
            tracking_uri,
            timeout,
            force,
        } => commands::sync(&run, tracking_uri, timeout, force),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("ezpz: {message}");
            ExitCode::from(1)
        }
    }
}
