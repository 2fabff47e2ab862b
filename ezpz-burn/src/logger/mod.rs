//! `HistoryLogger`: burn's [`MetricLogger`] that remembers epoch values so burn can read them
//! back, without writing files.

pub(crate) mod keys;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use crate::aggregate::EntryMean;
use crate::record::resume;
use keys::{key_segment, split_prefix};

/// Answers burn's `read_numeric` (early stopping, `MetricCheckpointingStrategy`, the learner
/// summary) with what burn's `FileMetricLogger` would answer, from memory.
///
/// burn asks its metric loggers for a split's entries of one epoch and reduces them to one
/// value (the last `Final` entry, else the count-weighted mean; burn-train
/// `src/metric/store/aggregate.rs`). This logger keeps that reduction per (split, metric,
/// epoch) instead of every entry, so it holds a few numbers per epoch however long the
/// epochs are, and gives burn the identical value. For epochs before a resume (burn's
/// `.checkpoint(k)` in a new process) it answers from the epoch values that ezpz wrote to
/// the tracker's `metrics.jsonl` ([`HistoryLogger::with_earlier_run`]).
///
/// [`with_ezpz`](crate::SupervisedTrainingExt::with_ezpz) registers it only when burn's own
/// files are turned off ([`Attach::burn_files`](crate::Attach::burn_files)); registering any
/// metric logger keeps burn from registering its `FileMetricLogger`.
#[derive(Debug, Default)]
pub struct HistoryLogger {
    names: HashMap<MetricId, String>,
    epochs: HashMap<(Split, String), BTreeMap<usize, EntryMean>>,
    earlier: HashMap<(String, String, usize), f64>,
}

impl HistoryLogger {
    /// An empty history.
    pub fn new() -> Self {
        HistoryLogger::default()
    }

    /// Also answers for the epochs an earlier run wrote to `<outdir>/metrics.jsonl` (the
    /// `<split>/epoch/<metric>` values; epochs this logger sees itself take precedence).
    pub fn with_earlier_run(mut self, outdir: &Path) -> Self {
        self.earlier = resume::epoch_values(outdir);
        self
    }
}

impl MetricLogger for HistoryLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        for numeric in &update.entries_numeric {
            let Some(name) = self.names.get(&numeric.entry.metric_id) else {
                continue;
            };
            let serialized = &numeric.entry.serialized_entry;
            // What burn's file logger writes, so that the reduction matches it.
            if serialized.is_not_available() {
                continue;
            }
            let Ok(entry) = NumericEntry::deserialize(&serialized.serialized) else {
                continue;
            };
            self.epochs
                .entry((split.clone(), name.clone()))
                .or_default()
                .entry(epoch)
                .or_default()
                .push(&entry);
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        let own = self
            .epochs
            .get(&(split.clone(), name.to_string()))
            .and_then(|epochs| epochs.get(&epoch));
        if let Some(mean) = own {
            return Ok(mean.entries());
        }
        let earlier = (split_prefix(split), key_segment(name), epoch);
        Ok(self
            .earlier
            .get(&earlier)
            .map(|v| vec![NumericEntry::Final(*v)])
            .unwrap_or_default())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, _summary: EpochSummary) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::train::metric::store::NumericMetricUpdate;
    use burn::train::metric::{MetricAttributes, MetricEntry, SerializedEntry};
    use std::sync::Arc;

    fn definition(name: &str) -> MetricDefinition {
        MetricDefinition {
            metric_id: MetricId::new(Arc::new(name.to_string())),
            name: Arc::new(name.to_string()),
            description: None,
            attributes: MetricAttributes::None,
        }
    }

    fn update(name: &str, entry: Option<NumericEntry>) -> MetricsUpdate {
        let serialized = match &entry {
            Some(e) => SerializedEntry::new(String::new(), e.serialize()),
            None => SerializedEntry::not_available(None),
        };
        let id = MetricId::new(Arc::new(name.to_string()));
        MetricsUpdate::new(
            vec![],
            vec![NumericMetricUpdate::new(
                MetricEntry::new(id, serialized),
                entry,
                None,
            )],
        )
    }

    fn agg(v: f64, count: usize) -> Option<NumericEntry> {
        Some(NumericEntry::Aggregated {
            aggregated_value: v,
            count,
        })
    }

    #[test]
    fn answers_one_entry_per_epoch_with_burns_value() {
        let mut logger = HistoryLogger::new();
        logger.log_metric_definition(definition("Loss"));
        logger.log(update("Loss", agg(1.0, 2)), 1, &Split::Valid);
        logger.log(update("Loss", agg(4.0, 1)), 1, &Split::Valid);
        logger.log(update("Loss", None), 1, &Split::Valid);
        logger.log(update("Loss", agg(3.0, 1)), 2, &Split::Valid);
        logger.log(
            update("Loss", Some(NumericEntry::Final(2.5))),
            2,
            &Split::Valid,
        );
        let read = |l: &mut HistoryLogger, epoch, split: &Split| {
            let entries = l.read_numeric("Loss", epoch, split).unwrap();
            entries
                .iter()
                .map(NumericEntry::serialize)
                .collect::<Vec<_>>()
        };
        assert_eq!(read(&mut logger, 1, &Split::Valid), ["2"]);
        assert_eq!(read(&mut logger, 2, &Split::Valid), ["2.5,final"]);
        assert!(read(&mut logger, 3, &Split::Valid).is_empty());
        assert!(read(&mut logger, 1, &Split::Train).is_empty());
        assert!(logger
            .read_numeric("Other", 1, &Split::Valid)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn earlier_epochs_come_from_the_runs_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let row =
            r#"{"timestamp":1.0,"step":5,"rank":0,"metrics":{"valid/epoch/loss":0.25,"epoch":1}}"#;
        std::fs::write(dir.path().join("metrics.jsonl"), format!("{row}\n")).unwrap();
        let mut logger = HistoryLogger::new().with_earlier_run(dir.path());
        logger.log_metric_definition(definition("Loss"));
        let read = |l: &mut HistoryLogger| {
            let entries = l.read_numeric("Loss", 1, &Split::Valid).unwrap();
            entries
                .iter()
                .map(NumericEntry::serialize)
                .collect::<Vec<_>>()
        };
        assert_eq!(read(&mut logger), ["0.25,final"]);
        logger.log(update("Loss", agg(0.5, 1)), 1, &Split::Valid);
        assert_eq!(read(&mut logger), ["0.5"], "its own epochs win");
    }
}
