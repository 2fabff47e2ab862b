//! The end-of-run report (`report.md`, `plots/*.png`, `run_info.json`) and the compact
//! console line — the original's `History`.
//!
//! At [`Tracker::finish`](crate::Tracker::finish) on rank 0, when the `jsonl` backend is
//! attached, the tracker flushes, reads `metrics.jsonl` back in one streaming pass (memory
//! bounded by the number of metrics, not steps), and writes into the run directory:
//!
//! - `report.md`: run identity (project, run name, start/end, duration, command, git commit,
//!   host, world size, device), every backend's links and commands, the configuration
//!   (`config.json`), a metric overview (last/min/max/mean, cross-rank ±std), and one
//!   section per metric group (`train/loss` → `train`) with its plots;
//! - `plots/<metric>.png`: the raw series, and the cross-rank mean with ±std and min–max
//!   bands when aggregates exist;
//! - `run_info.json`: the identity as JSON.
//!
//! Then it logs the history as the `training_history` table and the three outputs as
//! artifacts, so they reach MLflow and W&B too. Turn it off with
//! [`TrackerBuilder::report(false)`](crate::TrackerBuilder::report); rebuild it from the
//! files with `ezpz report <outdir>` or [`build_report`].
//!
//! The console line is [`format_compact`]:
//! `iter=180   loss=0.078000(±0.026) acc=0.984000(±9.9e-3) lr=0.000059`.

mod compact;
mod history;
mod hook;
mod identity;
mod markdown;
mod memory;
mod plot;
mod series;
mod table;
mod text;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use compact::{format_compact, format_std, CompactFormat};
pub use history::{History, MetricHistory, DEFAULT_MAX_POINTS};
pub(crate) use identity::{known_secrets, redact_values, redacted_args};
pub use identity::{BackendLink, RunIdentity, RUN_INFO_JSON};
pub use plot::DEFAULT_PLOT_SIZE;
pub use series::{Channel, RunningStats, SeriesPoint, ThinnedSeries};
pub use table::{history_table, HistoryTable, DEFAULT_MAX_TABLE_ROWS};

pub(crate) use hook::finish_hook;

use crate::backends::appender::{file_stem, write_atomic};
use crate::backends::jsonl::METRICS_JSONL;
use crate::{Error, Result};
use markdown::{Plotted, ReportInput};

/// The report's file name inside the run directory.
pub const REPORT_MD: &str = "report.md";
/// The plots' directory inside the run directory.
pub const PLOTS_DIR: &str = "plots";
/// Plots drawn unless told otherwise (the rest are listed, not drawn).
pub const DEFAULT_MAX_PLOTS: usize = 200;

/// Knobs of the report; the defaults suit runs of any length.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Plot buckets kept per metric (between this and twice as many).
    pub max_points: usize,
    /// Plots drawn at most (metrics past it are listed in the report).
    pub max_plots: usize,
    /// Plot width and height in pixels.
    pub plot_size: (u32, u32),
    /// Rows of the `training_history` table at most (evenly thinned beyond).
    pub max_table_rows: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_points: DEFAULT_MAX_POINTS,
            max_plots: DEFAULT_MAX_PLOTS,
            plot_size: DEFAULT_PLOT_SIZE,
            max_table_rows: DEFAULT_MAX_TABLE_ROWS,
        }
    }
}

/// What [`build_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.md`.
    pub report: PathBuf,
    /// The `plots/` directory.
    pub plots_dir: PathBuf,
    /// Every PNG written, in metric order.
    pub plots: Vec<PathBuf>,
    /// `run_info.json`.
    pub run_info: PathBuf,
    /// The history the report was made from.
    pub history: History,
}

/// Builds the report of the run in `outdir` from its `metrics.jsonl`.
///
/// `identity`: the run's identity, written to `run_info.json`; `None` reads an existing
/// `run_info.json` (as `ezpz report` does, so the report comes out as it did at the end of
/// the run), else derives what the JSONL tells and writes that. Existing `plots/*.png`
/// files are replaced.
///
/// # Errors
/// `metrics.jsonl` cannot be read, a `run_info.json` is unreadable, or a file cannot be
/// written.
pub fn build_report(
    outdir: &Path,
    identity: Option<RunIdentity>,
    options: &ReportOptions,
) -> Result<ReportFiles> {
    build_from(&outdir.join(METRICS_JSONL), outdir, identity, options)
}

/// [`build_report`] with the JSONL file given (a custom `JsonlBackend` may name its own).
pub(crate) fn build_from(
    jsonl: &Path,
    outdir: &Path,
    identity: Option<RunIdentity>,
    options: &ReportOptions,
) -> Result<ReportFiles> {
    let history = History::read(jsonl, options.max_points)?;
    let config = read_config(outdir);
    let run_info = outdir.join(RUN_INFO_JSON);
    let identity = match identity {
        Some(id) => {
            write_atomic(&run_info, &id.to_json_bytes())?;
            id
        }
        None if run_info.is_file() => RunIdentity::load(&run_info)?,
        None => {
            let id = RunIdentity::from_history(outdir, &history, config.as_ref());
            write_atomic(&run_info, &id.to_json_bytes())?;
            id
        }
    };
    let plots_dir = outdir.join(PLOTS_DIR);
    let (plotted, plots) = write_plots(&history, &plots_dir, options)?;
    let report = outdir.join(REPORT_MD);
    let text = markdown::render(&ReportInput {
        outdir,
        identity: &identity,
        history: &history,
        config: config.as_ref(),
        plots: &plotted,
        max_plots: options.max_plots,
    });
    write_atomic(&report, text.as_bytes())?;
    Ok(ReportFiles {
        report,
        plots_dir,
        plots,
        run_info,
        history,
    })
}

/// `config.json` as written by the `csv` backend, if present and readable.
pub(crate) fn read_config(outdir: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(outdir.join("config.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_plots(
    history: &History,
    dir: &Path,
    options: &ReportOptions,
) -> Result<(Vec<Plotted>, Vec<PathBuf>)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
    // The folder belongs to the report: stale plots of a previous build go.
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))? {
        let path = entry.map_err(|e| Error::io("cannot read", dir, e))?.path();
        if path.extension().is_some_and(|x| x == "png") {
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
        }
    }
    let mut used = HashSet::new();
    let mut plotted = Vec::new();
    let mut files = Vec::new();
    for m in history.metrics() {
        let state = if compact::is_counter(m.name()) && m.main_channel().is_some() {
            Plotted::Counter
        } else if m.main_channel().is_none() {
            Plotted::NoData
        } else if files.len() >= options.max_plots {
            Plotted::OverLimit
        } else {
            let mut stem = file_stem(m.name());
            let mut n = 2;
            while !used.insert(stem.clone()) {
                stem = format!("{}-{n}", file_stem(m.name()));
                n += 1;
            }
            let path = dir.join(format!("{stem}.png"));
            if plot::write_png(m, options.plot_size, &path)? {
                files.push(path);
                Plotted::File(format!("{PLOTS_DIR}/{stem}.png"))
            } else {
                Plotted::NoData
            }
        };
        plotted.push(state);
    }
    Ok((plotted, files))
}
