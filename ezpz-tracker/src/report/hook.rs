//! The report as a finish hook: on by default, run on rank 0 when `jsonl` is attached.
//! Without the `report` feature it still writes `run_info.json` and `report.json` (how the
//! run ended, which `ezpz ls` shows) and logs the `training_history` table.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::identity::RunIdentity;
use super::{history_table, read_config, record_run, ReportOptions};
use crate::tracker::FinishHook;
use crate::{Result, RunStatus, Tracker};

/// How the run ends, as `finish_with` says (`report.json` records it, `ezpz ls` shows it).
fn finish_status(tracker: &Tracker) -> &'static str {
    match tracker.finishing_status() {
        Some(RunStatus::Failed) => "failed",
        Some(RunStatus::Killed) => "killed",
        Some(RunStatus::Finished) | None => "finished",
    }
}

/// Asked for the report in a build without its pages: one warning says what is written.
#[cfg(not(feature = "report"))]
pub(crate) fn warn_no_pages() {
    crate::warn!(
        "ezpz: this build has no end-of-run report (ezpz-tracker's `report` feature is off): \
         report.md, report.html and plots/ are not written; run_info.json, report.json and the \
         training_history table are. Turn the feature on (it is a default feature) to get them"
    );
}

/// The hook [`TrackerBuilder`](crate::TrackerBuilder) adds unless `report(false)`.
pub(crate) fn finish_hook(options: ReportOptions) -> FinishHook {
    Box::new(move |tracker: &Tracker| {
        // A report bug must never take a training program's finish down with it.
        match catch_unwind(AssertUnwindSafe(|| run(tracker, &options))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => crate::warn!("ezpz: the end-of-run report was not written: {e}"),
            Err(_) => crate::warn!("ezpz: the end-of-run report failed unexpectedly; skipped"),
        }
    })
}

fn jsonl_path(tracker: &Tracker) -> Option<PathBuf> {
    tracker.get_backend("jsonl")?.run_info?.path
}

fn run(tracker: &Tracker, options: &ReportOptions) -> Result<()> {
    let Some(jsonl) = jsonl_path(tracker) else {
        return Ok(());
    };
    let outdir = jsonl
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    // Everything logged so far must be in the file before it is read back.
    if let Err(e) = tracker.flush() {
        crate::warn!("ezpz: flushing before the report: {e}; the report may miss the last steps");
    }
    let config = read_config(&outdir);
    let identity = RunIdentity::from_tracker(tracker, &outdir, config.as_ref());
    let status = finish_status(tracker);
    let recorded = record_run(&jsonl, &outdir, Some(identity), options, Some(status))?;
    let table = history_table(&jsonl, &recorded.history, options.max_table_rows)?;
    tracker.log_table("training_history", table.columns, table.rows);
    #[cfg(feature = "report")]
    {
        let pages = recorded.pages;
        tracker.log_artifacts([
            ("report", pages.report.clone()),
            ("report_html", pages.html),
            ("plots", pages.plots_dir),
            ("run_info", recorded.run_info),
        ]);
        tracing::info!("ezpz: report written to {}", pages.report.display());
    }
    #[cfg(not(feature = "report"))]
    tracker.log_artifacts([("run_info", recorded.run_info)]);
    Ok(())
}
