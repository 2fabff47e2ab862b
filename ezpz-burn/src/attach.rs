//! One call attaching ezpz to burn's `SupervisedTraining` (and its `Evaluator`).

use std::path::PathBuf;
use std::sync::Arc;

use burn::train::renderer::{default_renderer, MetricsRenderer};
use burn::train::{
    EvaluatorBuilder, EvaluatorComponentTypes, Interrupter, LearnerModel, SupervisedTraining,
};
use ezpz_tracker::Tracker;

use crate::record::{resume, Recorder, RecorderOptions, WatchQueue};
use crate::{EzpzRenderer, HistoryLogger, Watch};

/// Where burn's `with_default_checkpointers` writes, inside its directory.
const CHECKPOINT_DIR: &str = "checkpoint";

/// What [`with_ezpz`](SupervisedTrainingExt::with_ezpz) attaches, and how; `&Tracker`
/// converts into the defaults:
/// `.with_ezpz(Attach::new(&tracker).grads_accumulation(4).watch(&watch))`.
pub struct Attach {
    tracker: Tracker,
    finish_at_end: bool,
    burn_files: bool,
    devices: usize,
    accumulation: usize,
    watch: Option<Watch>,
    renderer: Option<Box<dyn MetricsRenderer>>,
    artifact_dir: Option<PathBuf>,
    log_checkpoints: bool,
}

impl std::fmt::Debug for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attach")
            .field("finish_at_end", &self.finish_at_end)
            .field("burn_files", &self.burn_files)
            .field("devices", &self.devices)
            .field("accumulation", &self.accumulation)
            .field("watch", &self.watch.is_some())
            .field("renderer", &self.renderer.is_some())
            .field("artifact_dir", &self.artifact_dir)
            .field("log_checkpoints", &self.log_checkpoints)
            .finish_non_exhaustive()
    }
}

impl Attach {
    /// The defaults: burn's own metric files kept, one batch per optimizer step, the
    /// [installed](Watch::install) watch linked when it writes to this tracker, burn's
    /// default renderer wrapped, the tracker finished when training ends.
    pub fn new(tracker: &Tracker) -> Self {
        Attach {
            tracker: tracker.clone(),
            finish_at_end: true,
            burn_files: true,
            devices: 1,
            accumulation: 1,
            watch: None,
            renderer: None,
            artifact_dir: None,
            log_checkpoints: true,
        }
    }

    /// Whether to finish the tracker once training (or, attached to an `Evaluator`,
    /// evaluation) has ended (default `true`). Say `false` to log more (a test evaluation,
    /// artifacts) afterwards, then call [`Tracker::finish`] yourself.
    pub fn finish_at_end(mut self, yes: bool) -> Self {
        self.finish_at_end = yes;
        self
    }

    /// Whether burn keeps its own `FileMetricLogger` (default `true`): `train/epoch-N/*.log`
    /// in the training directory, which `.summary()` reads and which answers burn's metric
    /// history across a resume. `false` registers a [`HistoryLogger`] instead (no files; it
    /// answers from memory and, after a resume, from the tracker's `metrics.jsonl`).
    pub fn burn_files(mut self, yes: bool) -> Self {
        self.burn_files = yes;
        self
    }

    /// The `n` given to burn's `.grads_accumulation(n)`: `n` batches make one optimizer step.
    pub fn grads_accumulation(mut self, n: usize) -> Self {
        self.accumulation = n.max(1);
        self
    }

    /// The number of devices of burn's multi-device or DDP strategy: each optimizer step
    /// takes one batch per device.
    pub fn devices(mut self, n: usize) -> Self {
        self.devices = n.max(1);
        self
    }

    /// Links `watch`: its rows join the batch rows of the same step, and its steps continue
    /// the run's step axis (by default the installed watch is linked when it writes to this
    /// tracker).
    pub fn watch(mut self, watch: &Watch) -> Self {
        self.watch = Some(watch.clone());
        self
    }

    /// The renderer to wrap instead of burn's default (there is one renderer slot: pass your
    /// own here rather than calling `.renderer(..)`, which would replace ezpz's).
    pub fn renderer(mut self, renderer: Box<dyn MetricsRenderer>) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// burn's directory: the one given to `SupervisedTraining::new` (burn does not show it
    /// to its hooks). With it, the checkpoint files burn kept there (`checkpoint/`, written
    /// by `with_default_checkpointers`) are logged as the artifact `burn_checkpoints` when
    /// training ends, unless [`log_checkpoints`](Self::log_checkpoints) says no.
    pub fn artifact_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.artifact_dir = Some(dir.into());
        self
    }

    /// Whether the checkpoints in [`artifact_dir`](Self::artifact_dir) are logged as an
    /// artifact when training ends (default `true`).
    pub fn log_checkpoints(mut self, yes: bool) -> Self {
        self.log_checkpoints = yes;
        self
    }

    /// The step the run is at: the tracker's last step, or after a resume the last step in
    /// the output directory's `metrics.jsonl`, whichever is later.
    fn base_step(&self) -> u64 {
        let tracker = self.tracker.next_step().saturating_sub(1);
        let earlier = self
            .tracker
            .outdir()
            .and_then(resume::last_logged_step)
            .unwrap_or(0);
        tracker.max(earlier)
    }

    fn linked_watch(&self) -> Option<Watch> {
        self.watch
            .clone()
            .or_else(|| Watch::installed().filter(|w| w.writes_to(&self.tracker)))
    }

    /// The renderer that feeds the tracker, wrapping this attach's renderer or `fallback`.
    pub(crate) fn into_renderer(
        mut self,
        fallback: impl FnOnce() -> Box<dyn MetricsRenderer>,
    ) -> EzpzRenderer {
        let base_step = self.base_step();
        let queue = self.linked_watch().map(|watch| {
            let queue = Arc::new(WatchQueue::default());
            watch.link(queue.clone(), base_step);
            queue
        });
        let recorder = Recorder::new(
            &self.tracker,
            RecorderOptions {
                base_step,
                devices: self.devices,
                accumulation: self.accumulation,
                finish_at_end: self.finish_at_end,
                queue,
                checkpoints: self
                    .artifact_dir
                    .as_ref()
                    .filter(|_| self.log_checkpoints)
                    .map(|dir| dir.join(CHECKPOINT_DIR)),
            },
        );
        let inner = self.renderer.take().unwrap_or_else(fallback);
        EzpzRenderer::new(inner, recorder)
    }

    fn history(&self) -> Option<HistoryLogger> {
        if self.burn_files {
            return None;
        }
        let logger = HistoryLogger::new();
        Some(match self.tracker.outdir() {
            Some(dir) => logger.with_earlier_run(dir),
            None => logger,
        })
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
    /// Sends burn's metrics and progress to the tracker, on one step axis: installs an
    /// [`EzpzRenderer`] wrapping burn's default renderer (or [`Attach::renderer`]'s), keeps
    /// burn's `FileMetricLogger` (unless [`Attach::burn_files`] says no) and leaves the
    /// progress-logger slot to you. Call it last among the renderer settings.
    fn with_ezpz(self, attach: impl Into<Attach>) -> Self;
}

impl<M: LearnerModel> SupervisedTrainingExt for SupervisedTraining<M> {
    fn with_ezpz(self, attach: impl Into<Attach>) -> Self {
        let attach = attach.into();
        let interrupter = self.interrupter();
        let training = match attach.history() {
            Some(history) => self.with_metric_logger(history),
            None => self,
        };
        let renderer = attach.into_renderer(|| default_renderer(interrupter, None));
        training.renderer(Box::new(renderer))
    }
}

/// Adds [`with_ezpz`](EvaluatorBuilderExt::with_ezpz) to burn's `EvaluatorBuilder`: the
/// test split's metrics go to the tracker as `test/<metric>` (`test/<name>/<metric>` for an
/// evaluation named other than "test"), at the run's current step.
pub trait EvaluatorBuilderExt: Sized {
    /// Installs an [`EzpzRenderer`] wrapping burn's default renderer (or
    /// [`Attach::renderer`]'s).
    fn with_ezpz(self, attach: impl Into<Attach>) -> Self;
}

impl<EC: EvaluatorComponentTypes> EvaluatorBuilderExt for EvaluatorBuilder<EC> {
    fn with_ezpz(self, attach: impl Into<Attach>) -> Self {
        let renderer = attach
            .into()
            .into_renderer(|| default_renderer(Interrupter::new(), None));
        self.renderer(Box::new(renderer))
    }
}
