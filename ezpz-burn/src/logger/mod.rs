//! `EzpzMetricLogger`: burn's [`MetricLogger`] feeding an [`ezpz_tracker::Tracker`].

mod history;
pub(crate) mod keys;

use std::collections::HashMap;
use std::sync::Arc;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use ezpz_tracker::{Metric, Tracker, Value};

use crate::attach::RunEnd;
use history::History;
use keys::{key_segment, split_prefix};

/// Sends every numeric burn metric to a [`Tracker`], and answers burn's `read_numeric` from
/// its own memory.
///
/// # Keys and steps
/// - Per batch: `<split>/<metric>` (`train/loss`, `valid/accuracy`), spelled by
///   [`key_segment`](crate::key_segment), at a step counted per split: the first batch of
///   training is step 1, and the count goes on across epochs (batch `b` of epoch `e` with `n`
///   batches per epoch is step `(e - 1) * n + b`). Validation batches have their own count.
/// - Per epoch: `<split>/epoch/<metric>` at step = the epoch number, from burn's end-of-split
///   value (the epoch mean for averaged metrics). That end-of-split call is not a batch and
///   adds no step.
/// - A metric with no value for a batch (burn's `None`, e.g. a metric computed only at the end
///   of the epoch) is left out of that batch's row. Text metrics are not forwarded: burn gives
///   them only as display strings.
///
/// # Reading back
/// burn asks its loggers for past values (`read_numeric`) for early stopping, metric-based
/// checkpointing and the learner summary, and panics when every logger refuses. This logger
/// keeps every numeric entry in memory (a few numbers per batch) and answers like burn's
/// `FileMetricLogger` would, so it may be the only logger.
pub struct EzpzMetricLogger {
    tracker: Tracker,
    definitions: HashMap<MetricId, Definition>,
    steps: HashMap<String, u64>,
    history: History,
    // Keeps the run open until this logger has seen its last event (see `Attach`).
    _run_end: Option<Arc<RunEnd>>,
}

struct Definition {
    name: String,
    key: String,
}

impl EzpzMetricLogger {
    /// A logger writing to `tracker`.
    pub fn new(tracker: &Tracker) -> Self {
        EzpzMetricLogger {
            tracker: tracker.clone(),
            definitions: HashMap::new(),
            steps: HashMap::new(),
            history: History::default(),
            _run_end: None,
        }
    }

    pub(crate) fn with_run_end(mut self, run_end: Arc<RunEnd>) -> Self {
        self._run_end = Some(run_end);
        self
    }

    /// The last step logged for a split prefix (`train`, `valid`, …), 0 before the first batch.
    pub fn last_step(&self, split: &Split) -> u64 {
        self.steps.get(&split_prefix(split)).copied().unwrap_or(0)
    }
}

impl MetricLogger for EzpzMetricLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        // burn's end-of-split call carries the epoch values as `Final` entries.
        let is_final = update
            .entries_numeric
            .iter()
            .any(|u| matches!(u.numeric_entry, Some(NumericEntry::Final(_))));
        let prefix = split_prefix(split);
        let mut row: Vec<Metric> = Vec::with_capacity(update.entries_numeric.len());
        for numeric in &update.entries_numeric {
            let Some(definition) = self.definitions.get(&numeric.entry.metric_id) else {
                continue;
            };
            let serialized = &numeric.entry.serialized_entry;
            // Keep what burn's file logger would have written, so aggregation matches it.
            let stored = if serialized.is_not_available() {
                None
            } else {
                NumericEntry::deserialize(&serialized.serialized)
                    .ok()
                    .or_else(|| numeric.numeric_entry.clone())
            };
            if let Some(entry) = stored {
                self.history.push(split, &definition.name, epoch, entry);
            }
            if let Some(value) = &numeric.numeric_entry {
                let key = if is_final {
                    format!("{prefix}/epoch/{}", definition.key)
                } else {
                    format!("{prefix}/{}", definition.key)
                };
                row.push((Arc::from(key), Value::F64(value.current())));
            }
        }
        let step = if is_final {
            epoch as u64
        } else {
            let step = self.steps.entry(prefix).or_insert(0);
            *step += 1;
            *step
        };
        if !row.is_empty() {
            self.tracker.log_at(step, row);
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Ok(self.history.read(split, name, epoch))
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        let name = definition.name.to_string();
        let key = key_segment(&name);
        self.definitions
            .insert(definition.metric_id, Definition { name, key });
    }

    fn log_epoch_summary(&mut self, _summary: EpochSummary) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::train::metric::store::NumericMetricUpdate;
    use burn::train::metric::{MetricAttributes, MetricEntry, SerializedEntry};
    use ezpz_tracker::MemoryBackend;

    fn tracker() -> (Tracker, MemoryBackend) {
        crate::test_support::memory_tracker()
    }

    fn definition(name: &str) -> MetricDefinition {
        MetricDefinition {
            metric_id: MetricId::new(Arc::new(name.to_string())),
            name: Arc::new(name.to_string()),
            description: None,
            attributes: MetricAttributes::None,
        }
    }

    fn numeric(name: &str, entry: Option<NumericEntry>) -> NumericMetricUpdate {
        let serialized = match &entry {
            Some(e) => SerializedEntry::new(String::new(), e.serialize()),
            None => SerializedEntry::not_available(None),
        };
        NumericMetricUpdate::new(
            MetricEntry::new(MetricId::new(Arc::new(name.to_string())), serialized),
            entry,
            None,
        )
    }

    fn batch(loss: f64, count: usize) -> MetricsUpdate {
        let entry = NumericEntry::Aggregated {
            aggregated_value: loss,
            count,
        };
        MetricsUpdate::new(
            vec![],
            vec![numeric("Loss", Some(entry)), numeric("AUC", None)],
        )
    }

    fn end_of_split(loss: f64) -> MetricsUpdate {
        MetricsUpdate::new(
            vec![],
            vec![numeric("Loss", Some(NumericEntry::Final(loss)))],
        )
    }

    #[test]
    fn batches_count_steps_and_the_final_call_is_an_epoch_value() {
        let (tracker, memory) = tracker();
        let mut logger = EzpzMetricLogger::new(&tracker);
        logger.log_metric_definition(definition("Loss"));
        logger.log_metric_definition(definition("AUC"));
        for epoch in 1..=2 {
            logger.log(batch(1.0, 2), epoch, &Split::Train);
            logger.log(batch(3.0, 2), epoch, &Split::Train);
            logger.log(end_of_split(2.0 * epoch as f64), epoch, &Split::Train);
            logger.log(batch(5.0, 1), epoch, &Split::Valid);
            logger.log(end_of_split(5.0), epoch, &Split::Valid);
        }
        assert_eq!(logger.last_step(&Split::Train), 4);
        tracker.finish().unwrap();
        let snap = memory.snapshot();
        let train = snap.series("train/loss");
        assert_eq!(train, vec![(1, 1.0), (2, 3.0), (3, 1.0), (4, 3.0)]);
        assert_eq!(snap.series("valid/loss"), vec![(1, 5.0), (2, 5.0)]);
        assert_eq!(snap.series("train/epoch/loss"), vec![(1, 2.0), (2, 4.0)]);
        assert_eq!(snap.series("valid/epoch/loss"), vec![(1, 5.0), (2, 5.0)]);
        // A metric without a value adds no column.
        assert!(snap.records.iter().all(|r| r.get("train/auc").is_none()));
        assert_eq!(snap.records.len(), 4 + 2 + 2 + 2);
    }

    #[test]
    fn read_numeric_answers_like_the_file_logger() {
        let (tracker, _memory) = tracker();
        let mut logger = EzpzMetricLogger::new(&tracker);
        logger.log_metric_definition(definition("Loss"));
        logger.log(batch(1.0, 2), 1, &Split::Valid);
        logger.log(batch(4.0, 1), 1, &Split::Valid);
        logger.log(end_of_split(2.0), 1, &Split::Valid);
        let entries = logger.read_numeric("Loss", 1, &Split::Valid).unwrap();
        let text: Vec<String> = entries.iter().map(NumericEntry::serialize).collect();
        assert_eq!(text, ["1,2", "4,1", "2,final"]);
        assert!(logger
            .read_numeric("Loss", 2, &Split::Valid)
            .unwrap()
            .is_empty());
        assert!(logger
            .read_numeric("Loss", 1, &Split::Train)
            .unwrap()
            .is_empty());
        assert!(logger
            .read_numeric("Other", 1, &Split::Valid)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn entries_of_unknown_metrics_are_skipped() {
        let (tracker, memory) = tracker();
        let mut logger = EzpzMetricLogger::new(&tracker);
        logger.log(batch(1.0, 1), 1, &Split::Train);
        assert_eq!(logger.last_step(&Split::Train), 1);
        tracker.finish().unwrap();
        assert!(memory.snapshot().records.is_empty());
    }
}
