//! The report as a finish hook: on by default, run on rank 0 when `jsonl` is attached.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::identity::RunIdentity;
use super::{build_from, history_table, read_config, ReportOptions};
use crate::tracker::FinishHook;
use crate::{Result, RunStatus, Tracker};

thread_local! {
    /// The status `finish_with` got, for the hooks it runs on this thread.
    static FINISH_STATUS: std::cell::Cell<Option<RunStatus>> = const { std::cell::Cell::new(None) };
}

/// Tells the finish hooks about to run on this thread how the run ends (`report.json`
/// records it, `ezpz ls` shows it). Called by the tracker before it runs the hooks.
#[allow(dead_code)]
pub(crate) fn set_finish_status(status: RunStatus) {
    FINISH_STATUS.with(|s| s.set(Some(status)));
}

/// How the run ends: what the tracker said, else a finish while a panic unwinds through
/// this thread is a failure.
fn finish_status() -> &'static str {
    match FINISH_STATUS.with(std::cell::Cell::get) {
        Some(RunStatus::Finished) => "finished",
        Some(RunStatus::Failed) => "failed",
        Some(RunStatus::Killed) => "killed",
        None if std::thread::panicking() => "failed",
        None => "finished",
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
    let status = finish_status();
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
