//! The end-of-run report (`report.md`, `report.html`, `plots/*.png`, `run_info.json`) and
//! the compact console line — the original's `History`.
//!
//! At [`Tracker::finish`](crate::Tracker::finish) on rank 0, when the `jsonl` backend is
//! attached, the tracker flushes, reads `metrics.jsonl` back in one streaming pass (memory
//! bounded by the number of metrics, not steps), and writes into the run directory:
//!
//! - `report.md`: first `plots/overview.png`, then the run identity (project, run name,
//!   start/end, duration, command, git commit, host, world size, device), every backend's
//!   links and commands, the configuration (`config.json`), a metric overview
//!   (last/min/max/mean, cross-rank ±std; one row per large group, the full table in a
//!   collapsible section), and one section per metric group (`train/loss` → `train`) with
//!   its plots;
//! - `report.html`: the same report as one page, images inlined (opens anywhere);
//! - `plots/overview.png`: a grid of the key series (loss, accuracy, learning rate,
//!   throughput, global norms, and [`ReportOptions::overview_keys`]), validation drawn over
//!   training on the same step axis;
//! - `plots/params_norm.png`, `plots/grads_norm.png`: per-parameter norms
//!   (`params/norm/*`, `grads/norm/*`) as heatmaps, parameter × step, log colour scale
//!   (one plot per parameter only with [`ReportOptions::norm_plots`]);
//! - `plots/<metric>.png`: the raw series, and the cross-rank mean with ±std and min–max
//!   bands when aggregates exist;
//! - `run_info.json`: the identity as JSON; `report.json`: the files the report wrote and
//!   how the run ended ([`ReportManifest`]).
//!
//! Plots take any `f64`: an axis is computed without overflow (±`f64::MAX` included),
//! ticks are round numbers with as many digits as it takes to tell them apart, a positive
//! series spanning more than three decades gets a log scale, a long series keeps each
//! bucket's minimum and maximum as a band, and NaN/±inf values are marked at the top edge
//! (a series with nothing else is still drawn). A rebuild removes only the plots the
//! previous build listed in `report.json`.
//!
//! Then it logs the history as the `training_history` table and the outputs as artifacts,
//! so they reach MLflow and W&B too. Turn it off with
//! [`TrackerBuilder::report(false)`](crate::TrackerBuilder::report); rebuild it from the
//! files with `ezpz report <outdir>` or `build_report`.
//!
//! The pages and plots (`report.md`, `report.html`, `plots/`, `build_report`) need the
//! crate's `report` feature (on by default). Without it the finish hook still writes
//! `run_info.json` and `report.json` and logs the `training_history` table; reading runs
//! back (`History`, `runs`, `compare`'s tables) and the console line are always there.
//!
//! The console line is [`format_compact`]:
//! `iter=180   loss=0.078000(±0.026) acc=0.984000(±9.9e-3) lr=0.000059`.

// The pictures and pages (feature `report`: plotters, a bundled font, Markdown to HTML).
#[cfg(feature = "report")]
mod axis;
#[cfg(feature = "report")]
mod heatmap;
#[cfg(feature = "report")]
mod html;
#[cfg(feature = "report")]
mod markdown;
#[cfg(feature = "report")]
mod overview;
#[cfg(feature = "report")]
mod pages;
#[cfg(feature = "report")]
mod plot;
// Reading runs back, the console line and the run's record: always.
mod compact;
mod compare;
mod config_diff;
mod history;
mod hook;
mod identity;
mod keys;
mod memory;
mod panels;
pub mod runs;
mod series;
mod table;
mod text;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use compact::{format_compact, format_std, CompactFormat};
pub use compare::{compare, Comparison, COMPARE_MD};
#[cfg(feature = "report")]
pub use heatmap::HeatmapInfo;
pub use history::{History, MetricHistory, DEFAULT_MAX_POINTS};
#[cfg(any(feature = "mlflow", feature = "wandb"))]
pub(crate) use identity::known_secrets;
#[cfg(feature = "wandb")]
pub(crate) use identity::redact_values;
#[cfg(feature = "mlflow")]
pub(crate) use identity::redacted_args;
pub use identity::{BackendLink, RunIdentity, RUN_INFO_JSON};
pub use keys::HEATMAP_PREFIXES;
#[cfg(feature = "report")]
pub use pages::{build_report, ReportFiles};
pub use series::{Channel, NonFinitePoint, RunningStats, SeriesPoint, ThinnedSeries};
pub use table::{history_table, HistoryTable, DEFAULT_MAX_TABLE_ROWS};

pub(crate) use hook::finish_hook;
#[cfg(not(feature = "report"))]
pub(crate) use hook::warn_no_pages;

use crate::backends::appender::write_atomic;
use crate::Result;

/// The report's file name inside the run directory.
pub const REPORT_MD: &str = "report.md";
/// The report as one self-contained HTML page, inside the run directory.
pub const REPORT_HTML: &str = "report.html";
/// Plot size unless told otherwise, in pixels.
pub const DEFAULT_PLOT_SIZE: (u32, u32) = (900, 500);
/// The plots' directory inside the run directory.
pub const PLOTS_DIR: &str = "plots";
/// The overview picture inside [`PLOTS_DIR`].
pub const OVERVIEW_PNG: &str = "overview.png";
/// What the report wrote and how the run ended (`report.json`); see [`ReportManifest`].
pub const REPORT_JSON: &str = "report.json";
/// Plots drawn unless told otherwise (the rest are listed, not drawn).
pub const DEFAULT_MAX_PLOTS: usize = 200;
/// Groups with more metrics than this get one row in the overview table (and the full
/// table goes into a collapsible section).
pub const DEFAULT_GROUP_ROWS: usize = 12;

/// Knobs of the report; the defaults suit runs of any length.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Plot buckets kept per metric (between this and twice as many).
    pub max_points: usize,
    /// Plots drawn at most (metrics past it are listed in the report).
    pub max_plots: usize,
    /// Plot width and height in pixels (an overview cell is half of each, at least
    /// 400 × 250).
    pub plot_size: (u32, u32),
    /// Rows of the `training_history` table at most (evenly thinned beyond).
    pub max_table_rows: usize,
    /// Metrics the overview shows beside the key series it finds (loss, accuracy,
    /// learning rate, throughput, global norms): exact names, or group prefixes ending in
    /// `/` (`"eval/"`).
    pub overview_keys: Vec<String>,
    /// One plot per parameter for `params/norm/*` and `grads/norm/*` as well as their
    /// heatmaps (off: the heatmaps alone).
    pub norm_plots: bool,
    /// Groups with more metrics than this get one row in the overview table.
    pub group_rows: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_points: DEFAULT_MAX_POINTS,
            max_plots: DEFAULT_MAX_PLOTS,
            plot_size: DEFAULT_PLOT_SIZE,
            max_table_rows: DEFAULT_MAX_TABLE_ROWS,
            overview_keys: Vec::new(),
            norm_plots: false,
            group_rows: DEFAULT_GROUP_ROWS,
        }
    }
}

/// `report.json`: the files the report wrote (relative to the run directory), so that a
/// rebuild removes exactly its own stale plots and never a file it did not write, and how
/// the run ended (`finished`, `failed`), which `ezpz ls` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportManifest {
    /// How the run ended, as far as the report knows: `finished`, `failed` or `killed`.
    pub status: Option<String>,
    /// Files written, relative to the run directory.
    pub files: Vec<String>,
    /// The `ezpz-tracker` version that wrote them.
    pub ezpz_tracker_version: Option<String>,
}

impl ReportManifest {
    /// Reads `<outdir>/report.json`; `None` when absent or unreadable.
    pub fn load(outdir: &Path) -> Option<ReportManifest> {
        let bytes = std::fs::read(outdir.join(REPORT_JSON)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// What the end of a run wrote: the history read back, `run_info.json` and, with the
/// `report` feature, the report's pages.
pub(crate) struct Recorded {
    pub history: History,
    pub run_info: PathBuf,
    #[cfg(feature = "report")]
    pub pages: pages::Pages,
}

/// Reads the run in `outdir` back from `jsonl` and writes its record: `run_info.json`
/// (`identity`, else the existing file, else what the JSONL tells), the report's pages
/// (feature `report`), and `report.json` (what was written, and the run's end `status`;
/// `None` keeps what `report.json` says).
pub(crate) fn record_run(
    jsonl: &Path,
    outdir: &Path,
    identity: Option<RunIdentity>,
    options: &ReportOptions,
    status: Option<&str>,
) -> Result<Recorded> {
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
    let previous = ReportManifest::load(outdir);
    #[cfg(feature = "report")]
    let pages = pages::write(
        outdir,
        &identity,
        &history,
        config.as_ref(),
        options,
        previous.as_ref(),
    )?;
    #[cfg(feature = "report")]
    let files = pages.files.clone();
    #[cfg(not(feature = "report"))]
    let files = {
        let _ = identity;
        Vec::new()
    };
    let manifest = ReportManifest {
        status: status
            .map(str::to_string)
            .or_else(|| previous.and_then(|p| p.status)),
        files,
        ezpz_tracker_version: Some(env!("CARGO_PKG_VERSION").to_string()),
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    write_atomic(&outdir.join(REPORT_JSON), &json)?;
    Ok(Recorded {
        history,
        run_info,
        #[cfg(feature = "report")]
        pages,
    })
}

/// `config.json` as written by the `csv` backend, if present and readable.
pub(crate) fn read_config(outdir: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(outdir.join("config.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}
