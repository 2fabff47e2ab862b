//! The report's pages: `report.md`, `report.html` and `plots/*.png` (feature `report`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::compact;
use super::heatmap::{self, HeatmapInfo};
use super::history::History;
use super::identity::RunIdentity;
use super::keys::is_heatmap_metric;
use super::markdown::{self, Plotted, ReportInput};
use super::{html, overview, plot, record_run};
use super::{ReportManifest, ReportOptions, OVERVIEW_PNG, PLOTS_DIR, REPORT_HTML, REPORT_MD};
use crate::backends::appender::write_atomic;
use crate::backends::jsonl::METRICS_JSONL;
use crate::user_paths::file_stem;
use crate::{Error, Result};

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
    let recorded = record_run(&outdir.join(METRICS_JSONL), outdir, identity, options, None)?;
    let p = recorded.pages;
    Ok(ReportFiles {
        report: p.report,
        html: p.html,
        plots_dir: p.plots_dir,
        overview: p.overview,
        overview_panels: p.overview_panels,
        heatmaps: p.heatmaps,
        plots: p.plots,
        run_info: recorded.run_info,
        history: recorded.history,
    })
}

/// What [`write`] wrote.
pub(crate) struct Pages {
    pub report: PathBuf,
    pub html: PathBuf,
    pub plots_dir: PathBuf,
    pub overview: Option<PathBuf>,
    pub overview_panels: Vec<String>,
    pub heatmaps: Vec<HeatmapInfo>,
    pub plots: Vec<PathBuf>,
    /// Every file written, relative to the run directory (for `report.json`).
    pub files: Vec<String>,
}

/// Writes the pages of the run in `outdir`, and removes the plots the `previous` build
/// listed that this one did not write.
pub(crate) fn write(
    outdir: &Path,
    identity: &RunIdentity,
    history: &History,
    config: Option<&serde_json::Value>,
    options: &ReportOptions,
    previous: Option<&ReportManifest>,
) -> Result<Pages> {
    let plots_dir = outdir.join(PLOTS_DIR);
    std::fs::create_dir_all(&plots_dir)
        .map_err(|e| Error::io("cannot create directory", &plots_dir, e))?;
    let mut plots = Vec::new();

    let cell = (
        (options.plot_size.0 / 2).max(400),
        (options.plot_size.1 / 2).max(250),
    );
    let overview_path = plots_dir.join(OVERVIEW_PNG);
    let overview_panels = overview::write(history, &options.overview_keys, cell, &overview_path)?;
    let overview = (!overview_panels.is_empty()).then(|| {
        plots.push(overview_path.clone());
        overview_path
    });
    let heatmaps = heatmap::write(
        history,
        options.plot_size.0.max(600) + 200,
        &plots_dir,
        PLOTS_DIR,
    )?;
    plots.extend(heatmaps.iter().map(|h| outdir.join(&h.file)));
    let (plotted, metric_plots) = write_plots(history, &plots_dir, options)?;
    plots.extend(metric_plots);

    let report = outdir.join(REPORT_MD);
    let text = markdown::render(&ReportInput {
        outdir,
        identity,
        history,
        config,
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
    if let Some(old) = previous {
        remove_stale(outdir, &old.files, &files);
    }
    Ok(Pages {
        report,
        html,
        plots_dir,
        overview,
        overview_panels,
        heatmaps,
        plots,
        files,
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
        } else if !options.norm_plots && is_heatmap_metric(m.name()) {
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
