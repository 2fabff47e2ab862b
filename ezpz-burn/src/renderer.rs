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

    /// A metric value of any split: to the recorder, then on to the wrapped renderer.
    fn update(
        &mut self,
        state: MetricState,
        pass: impl FnOnce(&mut dyn MetricsRenderer, MetricState),
    ) {
        if let MetricState::Numeric(entry, value) = &state {
            timed(|| self.recorder.value(&entry.metric_id, value.clone()));
        }
        pass(self.inner.as_mut(), state);
    }

    /// A progress call of any split: `record` it (timed), then `pass` it on.
    fn relay(
        &mut self,
        record: impl FnOnce(&mut Recorder),
        pass: impl FnOnce(&mut dyn MetricsRenderer),
    ) {
        timed(|| record(&mut self.recorder));
        pass(self.inner.as_mut());
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
        self.update(state, |r, s| r.update_train(s));
    }

    fn update_valid(&mut self, state: MetricState) {
        self.update(state, |r, s| r.update_valid(s));
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
        self.update(state, |r, s| r.update_test(name, s));
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
        self.relay(
            |r| r.start(total_epochs, starting_epoch, label),
            |i| i.start(total_epochs, starting_epoch, total_items, label),
        );
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.relay(|r| r.update_epoch(epoch), |i| i.update_epoch(epoch));
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.relay(
            |r| r.start_split(split, total_items, false),
            |i| i.start_split(split, total_items),
        );
    }

    fn update_split(&mut self, items_processed: usize) {
        self.relay(
            |r| r.batch_done(items_processed),
            |i| i.update_split(items_processed),
        );
    }

    fn end_split(&mut self) {
        self.relay(Recorder::end_split, |i| i.end_split());
    }

    fn end(&mut self) {
        self.relay(|r| r.end(true), |i| i.end());
    }

    fn log_event_training(&mut self, event: String) {
        self.inner.log_event_training(event);
    }
}

impl EvaluationProgressLogger for EzpzRenderer {
    fn start_global_progress(&mut self, total_tests: usize) {
        self.relay(Recorder::start_evaluation, |i| {
            i.start_global_progress(total_tests)
        });
    }

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.relay(
            |r| r.start_split(name, total_items, true),
            |i| i.start_test(name, total_items),
        );
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.relay(
            |r| r.batch_done(items_processed),
            |i| i.update_test_progress(items_processed),
        );
    }

    fn end_test(&mut self) {
        self.relay(Recorder::end_split, |i| i.end_test());
    }

    fn end_global_progress(&mut self) {
        self.relay(|r| r.end(false), |i| i.end_global_progress());
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
