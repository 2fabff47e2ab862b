//! `EzpzRenderer`: burn's renderer slot, feeding the recorder and passing everything on to
//! the renderer it wraps.

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::LearnerSummary;

use crate::cost::timed;
use crate::record::Recorder;

/// Wraps a burn renderer (burn's default, or one given to
/// [`Attach::renderer`](crate::Attach::renderer)): every call goes to it unchanged, and the
/// metric values, batch boundaries and split ends also go to the tracker.
///
/// burn calls its renderer on one thread, in order, for training, validation and the
/// `Evaluator`'s test split (burn-train `src/metric/processor/full.rs`), which is what puts
/// every row on one step axis. Built by
/// [`with_ezpz`](crate::SupervisedTrainingExt::with_ezpz); there is one renderer slot, so a
/// later `.renderer(..)` call replaces it (a warning says so).
pub struct EzpzRenderer {
    inner: Box<dyn MetricsRenderer>,
    recorder: Recorder,
}

impl EzpzRenderer {
    pub(crate) fn new(inner: Box<dyn MetricsRenderer>, recorder: Recorder) -> Self {
        EzpzRenderer { inner, recorder }
    }

    fn numeric(&mut self, state: &MetricState) {
        if let MetricState::Numeric(entry, value) = state {
            timed(|| self.recorder.value(&entry.metric_id, value.clone()));
        }
    }
}

impl Drop for EzpzRenderer {
    fn drop(&mut self) {
        if !self.recorder.started() {
            ezpz_tracker::warn!(
                "ezpz: the renderer that `with_ezpz` installed was dropped before training \
                 started, so nothing is tracked (did a `.renderer(..)` call come after \
                 `.with_ezpz(..)`? pass that renderer to `Attach::renderer` instead)"
            );
        }
    }
}

impl MetricsRendererTraining for EzpzRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.numeric(&state);
        self.inner.update_train(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.numeric(&state);
        self.inner.update_valid(state);
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        self.inner.on_train_end(summary)
    }
}

impl MetricsRendererEvaluation for EzpzRenderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        self.numeric(&state);
        self.inner.update_test(name, state);
    }

    fn on_test_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        self.inner.on_test_end(summary)
    }
}

impl TrainingProgressLogger for EzpzRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        total_items: Option<usize>,
        label: Option<&str>,
    ) {
        timed(|| self.recorder.start(total_epochs, starting_epoch, label));
        self.inner
            .start(total_epochs, starting_epoch, total_items, label);
    }

    fn update_epoch(&mut self, epoch: usize) {
        timed(|| self.recorder.update_epoch(epoch));
        self.inner.update_epoch(epoch);
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        timed(|| self.recorder.start_split(split, total_items, false));
        self.inner.start_split(split, total_items);
    }

    fn update_split(&mut self, items_processed: usize) {
        timed(|| self.recorder.batch_done(items_processed));
        self.inner.update_split(items_processed);
    }

    fn end_split(&mut self) {
        timed(|| self.recorder.end_split());
        self.inner.end_split();
    }

    fn end(&mut self) {
        timed(|| self.recorder.end(true));
        self.inner.end();
    }

    fn log_event_training(&mut self, event: String) {
        self.inner.log_event_training(event);
    }
}

impl EvaluationProgressLogger for EzpzRenderer {
    fn start_global_progress(&mut self, total_tests: usize) {
        timed(|| self.recorder.start_evaluation());
        self.inner.start_global_progress(total_tests);
    }

    fn start_test(&mut self, name: &str, total_items: usize) {
        timed(|| self.recorder.start_split(name, total_items, true));
        self.inner.start_test(name, total_items);
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        timed(|| self.recorder.batch_done(items_processed));
        self.inner.update_test_progress(items_processed);
    }

    fn end_test(&mut self) {
        timed(|| self.recorder.end_split());
        self.inner.end_test();
    }

    fn end_global_progress(&mut self) {
        timed(|| self.recorder.end(false));
        self.inner.end_global_progress();
    }

    fn log_event_evaluation(&mut self, event: String) {
        self.inner.log_event_evaluation(event);
    }
}

impl MetricsRenderer for EzpzRenderer {
    fn manual_close(&mut self) {
        self.inner.manual_close();
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        timed(|| self.recorder.define(&definition));
        self.inner.register_metric(definition);
    }
}
