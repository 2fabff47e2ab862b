//! The report as a finish hook: on by default, run on rank 0 when `jsonl` is attached.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::identity::RunIdentity;
use super::{build_from, history_table, read_config, ReportOptions};
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
    let files = build_from(&jsonl, &outdir, Some(identity), options, Some(status))?;
    let table = history_table(&jsonl, &files.history, options.max_table_rows)?;
    tracker.log_table("training_history", table.columns, table.rows);
    tracker.log_artifacts([
        ("report", files.report.clone()),
        ("report_html", files.html),
        ("plots", files.plots_dir),
        ("run_info", files.run_info),
    ]);
    tracing::info!("ezpz: report written to {}", files.report.display());
    Ok(())
}
