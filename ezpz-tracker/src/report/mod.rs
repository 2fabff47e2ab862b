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
//! files with `ezpz report <outdir>` or [`build_report`].
//!
//! The console line is [`format_compact`]:
//! `iter=180   loss=0.078000(±0.026) acc=0.984000(±9.9e-3) lr=0.000059`.

mod axis;
mod compact;
mod compare;
mod config_diff;
mod heatmap;
mod history;
mod hook;
mod html;
mod identity;
mod keys;
mod markdown;
mod memory;
mod overview;
mod plot;
pub mod runs;
mod series;
mod table;
mod text;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use compact::{format_compact, format_std, CompactFormat};
pub use compare::{compare, Comparison, COMPARE_MD};
pub use heatmap::{HeatmapInfo, HEATMAP_PREFIXES};
pub use history::{History, MetricHistory, DEFAULT_MAX_POINTS};
pub use html::REPORT_HTML;
#[cfg(any(feature = "mlflow", feature = "wandb"))]
pub(crate) use identity::{known_secrets, redact_values, redacted_args};
pub use identity::{BackendLink, RunIdentity, RUN_INFO_JSON};
pub use plot::DEFAULT_PLOT_SIZE;
pub use series::{Channel, NonFinitePoint, RunningStats, SeriesPoint, ThinnedSeries};
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

/// What [`build_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.md`.
    pub report: PathBuf,
    /// `report.html`: the same report as one self-contained page.
    pub html: PathBuf,
    /// The `plots/` directory.
    pub plots_dir: PathBuf,
    /// `plots/overview.png`, when the run has series to show in it.
    pub overview: Option<PathBuf>,
    /// The overview's panels, by title (`loss`, `accuracy`, …).
    pub overview_panels: Vec<String>,
    /// The norm heatmaps.
    pub heatmaps: Vec<HeatmapInfo>,
    /// Every PNG written: the overview, the heatmaps, then one per metric in metric order.
    pub plots: Vec<PathBuf>,
    /// `run_info.json`.
    pub run_info: PathBuf,
    /// The history the report was made from.
    pub history: History,
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

/// Builds the report of the run in `outdir` from its `metrics.jsonl`.
///
/// `identity`: the run's identity, written to `run_info.json`; `None` reads an existing
/// `run_info.json` (as `ezpz report` does, so the report comes out as it did at the end of
/// the run), else derives what the JSONL tells and writes that. Plots a previous build
/// wrote (listed in `report.json`) and not written again are removed; other files in
/// `plots/` are left alone.
///
/// # Errors
/// `metrics.jsonl` cannot be read, a `run_info.json` is unreadable, or a file cannot be
/// written.
pub fn build_report(
    outdir: &Path,
    identity: Option<RunIdentity>,
    options: &ReportOptions,
) -> Result<ReportFiles> {
    build_from(&outdir.join(METRICS_JSONL), outdir, identity, options, None)
}

/// [`build_report`] with the JSONL file given (a custom `JsonlBackend` may name its own)
/// and the run's end status (`None`: keep what `report.json` says).
pub(crate) fn build_from(
    jsonl: &Path,
    outdir: &Path,
    identity: Option<RunIdentity>,
    options: &ReportOptions,
    status: Option<&str>,
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
    let previous = ReportManifest::load(outdir);
    let plots_dir = outdir.join(PLOTS_DIR);
    std::fs::create_dir_all(&plots_dir)
        .map_err(|e| Error::io("cannot create directory", &plots_dir, e))?;
    let mut plots = Vec::new();

    let cell = (
        (options.plot_size.0 / 2).max(400),
        (options.plot_size.1 / 2).max(250),
    );
    let overview_path = plots_dir.join(OVERVIEW_PNG);
    let overview_panels = overview::write(&history, &options.overview_keys, cell, &overview_path)?;
    let overview = (!overview_panels.is_empty()).then(|| {
        plots.push(overview_path.clone());
        overview_path
    });
    let heatmaps = heatmap::write(
        &history,
        options.plot_size.0.max(600) + 200,
        &plots_dir,
        PLOTS_DIR,
    )?;
    plots.extend(heatmaps.iter().map(|h| outdir.join(&h.file)));
    let (plotted, metric_plots) = write_plots(&history, &plots_dir, options)?;
    plots.extend(metric_plots);

    let report = outdir.join(REPORT_MD);
    let text = markdown::render(&ReportInput {
        outdir,
        identity: &identity,
        history: &history,
        config: config.as_ref(),
        plots: &plotted,
        max_plots: options.max_plots,
        overview: overview.as_ref().map(|_| {
            (
                format!("{PLOTS_DIR}/{OVERVIEW_PNG}"),
                overview_panels.clone(),
            )
        }),
        heatmaps: &heatmaps,
        group_rows: options.group_rows,
    });
    write_atomic(&report, text.as_bytes())?;
    let html = outdir.join(REPORT_HTML);
    write_atomic(&html, html::render(&text, outdir).as_bytes())?;

    let mut files: Vec<String> = vec![REPORT_MD.into(), REPORT_HTML.into()];
    files.extend(
        plots
            .iter()
            .filter_map(|p| p.strip_prefix(outdir).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/")),
    );
    if let Some(old) = &previous {
        remove_stale(outdir, &old.files, &files);
    }
    let manifest = ReportManifest {
        status: status
            .map(str::to_string)
            .or_else(|| previous.and_then(|p| p.status)),
        files,
        ezpz_tracker_version: Some(env!("CARGO_PKG_VERSION").to_string()),
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    write_atomic(&outdir.join(REPORT_JSON), &json)?;
    Ok(ReportFiles {
        report,
        html,
        plots_dir,
        overview,
        overview_panels,
        heatmaps,
        plots,
        run_info,
        history,
    })
}

/// Removes the plots an earlier build wrote (`old`) that this one did not (`new`): only
/// `plots/<name>.png` entries, nothing a user put there.
fn remove_stale(outdir: &Path, old: &[String], new: &[String]) {
    for rel in old.iter().filter(|f| !new.contains(f)) {
        let Some(name) = rel.strip_prefix(&format!("{PLOTS_DIR}/")) else {
            continue;
        };
        let plain = Path::new(name).components().count() == 1
            && !name.starts_with('.')
            && name.ends_with(".png");
        if plain {
            let _ = std::fs::remove_file(outdir.join(PLOTS_DIR).join(name));
        }
    }
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
    // Names the overview and the heatmaps use.
    let mut used: HashSet<String> = ["overview", "params_norm", "grads_norm"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut plotted = Vec::new();
    let mut files = Vec::new();
    for m in history.metrics() {
        let state = if compact::is_counter(m.name()) && m.main_channel().is_some() {
            Plotted::Counter
        } else if m.main_channel().is_none() {
            Plotted::NoData
        } else if !options.norm_plots && heatmap::is_heatmap_metric(m.name()) {
            Plotted::InHeatmap
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
