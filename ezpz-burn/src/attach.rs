//! One call attaching ezpz to a burn `SupervisedTraining`: metric logger, progress logger,
//! and finishing the tracker when training is over.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burn::train::logger::FileMetricLogger;
use burn::train::{LearnerModel, SupervisedTraining};
use ezpz_tracker::Tracker;

use crate::{EzpzMetricLogger, EzpzProgressLogger};

/// What [`with_ezpz`](SupervisedTrainingExt::with_ezpz) attaches; `&Tracker` converts into the
/// defaults: `.with_ezpz(Attach::new(&tracker).finish_at_end(false).keep_burn_files(dir))`.
#[derive(Debug, Clone)]
pub struct Attach {
    tracker: Tracker,
    finish_at_end: bool,
    burn_files: Option<PathBuf>,
}

impl Attach {
    /// The defaults: finish the tracker when training ends, no burn metric files.
    pub fn new(tracker: &Tracker) -> Self {
        Attach {
            tracker: tracker.clone(),
            finish_at_end: true,
            burn_files: None,
        }
    }

    /// Whether to finish the tracker once training has ended and burn has delivered its last
    /// metric (default `true`). Say `false` to log more (a test evaluation, artifacts) after
    /// `launch` returns, then call [`Tracker::finish`] yourself.
    pub fn finish_at_end(mut self, yes: bool) -> Self {
        self.finish_at_end = yes;
        self
    }

    /// Also register burn's `FileMetricLogger` writing into `dir` (pass the training's
    /// artifact directory). Registering any logger removes burn's default one, so without this
    /// burn writes no `train/epoch-N/*.log` files and `.summary()` finds nothing to summarize.
    pub fn keep_burn_files(mut self, dir: impl AsRef<Path>) -> Self {
        self.burn_files = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The two loggers, sharing the end-of-run bookkeeping, for callers that register them
    /// themselves.
    pub fn loggers(&self) -> (EzpzMetricLogger, EzpzProgressLogger) {
        let mut logger = EzpzMetricLogger::new(&self.tracker);
        let mut progress = EzpzProgressLogger::new(&self.tracker);
        if self.finish_at_end {
            let run_end = Arc::new(RunEnd {
                tracker: self.tracker.clone(),
                ended: AtomicBool::new(false),
            });
            logger = logger.with_run_end(run_end.clone());
            progress = progress.with_run_end(run_end);
        }
        (logger, progress)
    }
}

impl From<&Tracker> for Attach {
    fn from(tracker: &Tracker) -> Self {
        Attach::new(tracker)
    }
}

impl From<Tracker> for Attach {
    fn from(tracker: Tracker) -> Self {
        Attach::new(&tracker)
    }
}

/// Adds [`with_ezpz`](SupervisedTrainingExt::with_ezpz) to burn's `SupervisedTraining`.
pub trait SupervisedTrainingExt: Sized {
    /// Sends burn's metrics and progress to the tracker: registers an [`EzpzMetricLogger`]
    /// (after burn's `FileMetricLogger` when [`Attach::keep_burn_files`] is set) and an
    /// [`EzpzProgressLogger`], and by default finishes the tracker once training has ended.
    fn with_ezpz(self, attach: impl Into<Attach>) -> Self;
}

impl<M: LearnerModel> SupervisedTrainingExt for SupervisedTraining<M> {
    fn with_ezpz(self, attach: impl Into<Attach>) -> Self {
        let attach = attach.into();
        let (logger, progress) = attach.loggers();
        let training = match &attach.burn_files {
            Some(dir) => self.with_metric_logger(FileMetricLogger::new(dir)),
            None => self,
        };
        training
            .with_metric_logger(logger)
            .with_progress_logger(progress)
    }
}

/// Finishes the tracker when the last of the attached loggers goes away after training ended.
///
/// burn calls the progress logger's `end` on its event thread while its metric-store thread
/// may still be delivering the last epoch's metrics; burn drops both loggers only once
/// everything is delivered, so finishing on the last drop loses nothing.
pub(crate) struct RunEnd {
    tracker: Tracker,
    ended: AtomicBool,
}

impl RunEnd {
    pub(crate) fn training_ended(&self) {
        self.ended.store(true, Ordering::Release);
    }
}

impl Drop for RunEnd {
    fn drop(&mut self) {
        if !self.ended.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.tracker.finish() {
            ezpz_tracker::warn!("ezpz: finishing the run at the end of training: {e}");
        }
    }
}
