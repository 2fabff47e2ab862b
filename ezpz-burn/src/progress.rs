//! `EzpzProgressLogger`: burn's [`TrainingProgressLogger`] feeding an [`ezpz_tracker::Tracker`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use burn::train::logger::TrainingProgressLogger;
use ezpz_tracker::{Metric, Tracker, Value};

use crate::attach::RunEnd;
use crate::logger::keys::key_segment;

/// Logs training progress: the epoch, how far each split is, and its throughput; records when
/// training started and ended.
///
/// # What it logs
/// - At start, configuration `burn.total_epochs`, `burn.starting_epoch`, `burn.label` (when
///   burn has one) and `burn.started_at` (Unix seconds).
/// - Per batch, at the same per-split step as [`EzpzMetricLogger`](crate::EzpzMetricLogger)
///   (first batch = 1): `<split>/progress` (fraction of the split's items done, 0–1) and
///   `<split>/items_per_sec` (items since the split started over the time since then); the
///   training rows also carry `epoch`.
/// - At the end of each split, at step = epoch: `<split>/epoch/items_per_sec` and
///   `<split>/epoch/duration_s`.
/// - At the end (also when training is interrupted or stops early), configuration
///   `burn.epochs_completed`, `burn.duration_s` and `burn.ended_at`.
///
/// burn runs this logger on its event-processing thread, which trails the training loop by a
/// little, so throughput is measured as burn's events arrive there.
///
/// Used on its own (not through [`with_ezpz`](crate::SupervisedTrainingExt::with_ezpz)) it
/// never finishes the tracker.
pub struct EzpzProgressLogger {
    tracker: Tracker,
    epoch: usize,
    epochs_completed: usize,
    started: Option<Instant>,
    split: Option<SplitProgress>,
    steps: HashMap<String, u64>,
    run_end: Option<Arc<RunEnd>>,
}

struct SplitProgress {
    prefix: String,
    total_items: usize,
    items: usize,
    started: Instant,
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EzpzProgressLogger {
    /// A progress logger writing to `tracker`.
    pub fn new(tracker: &Tracker) -> Self {
        EzpzProgressLogger {
            tracker: tracker.clone(),
            epoch: 1,
            epochs_completed: 0,
            started: None,
            split: None,
            steps: HashMap::new(),
            run_end: None,
        }
    }

    pub(crate) fn with_run_end(mut self, run_end: Arc<RunEnd>) -> Self {
        self.run_end = Some(run_end);
        self
    }
}

impl TrainingProgressLogger for EzpzProgressLogger {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        label: Option<&str>,
    ) {
        self.epoch = starting_epoch;
        self.epochs_completed = starting_epoch.saturating_sub(1);
        self.started = Some(Instant::now());
        let mut burn = serde_json::json!({
            "total_epochs": total_epochs,
            "starting_epoch": starting_epoch,
            "started_at": now_unix(),
        });
        if let Some(label) = label {
            burn["label"] = label.into();
        }
        self.tracker.log_config(serde_json::json!({ "burn": burn }));
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epochs_completed = epoch;
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = Some(SplitProgress {
            prefix: key_segment(split),
            total_items,
            items: 0,
            started: Instant::now(),
        });
    }

    fn update_split(&mut self, items_processed: usize) {
        let Some(split) = &mut self.split else {
            return;
        };
        split.items = items_processed;
        let step = self.steps.entry(split.prefix.clone()).or_insert(0);
        *step += 1;
        let elapsed = split.started.elapsed().as_secs_f64();
        let mut row: Vec<Metric> = Vec::with_capacity(3);
        if split.total_items > 0 {
            let fraction = items_processed as f64 / split.total_items as f64;
            row.push((format!("{}/progress", split.prefix).into(), fraction.into()));
        }
        if elapsed > 0.0 {
            let rate = items_processed as f64 / elapsed;
            row.push((
                format!("{}/items_per_sec", split.prefix).into(),
                rate.into(),
            ));
        }
        if split.prefix == "train" {
            row.push(("epoch".into(), Value::I64(self.epoch as i64)));
        }
        self.tracker.log_at(*step, row);
    }

    fn end_split(&mut self) {
        let Some(split) = self.split.take() else {
            return;
        };
        let duration = split.started.elapsed().as_secs_f64();
        let mut row: Vec<Metric> = vec![(
            format!("{}/epoch/duration_s", split.prefix).into(),
            duration.into(),
        )];
        if duration > 0.0 {
            let rate = split.items as f64 / duration;
            row.push((
                format!("{}/epoch/items_per_sec", split.prefix).into(),
                rate.into(),
            ));
        }
        self.tracker.log_at(self.epoch as u64, row);
    }

    fn end(&mut self) {
        let duration = self.started.map(|s| s.elapsed().as_secs_f64());
        self.tracker.log_config(serde_json::json!({ "burn": {
            "epochs_completed": self.epochs_completed,
            "duration_s": duration,
            "ended_at": now_unix(),
        }}));
        if let Some(run_end) = &self.run_end {
            run_end.training_ended();
        }
    }

    fn log_event_training(&mut self, _event: String) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_progress_per_batch_and_marks_start_and_end() {
        let (tracker, memory) = crate::test_support::memory_tracker();
        let mut progress = EzpzProgressLogger::new(&tracker);
        progress.start(2, 1, None, Some("probe"));
        for epoch in 1..=2 {
            progress.start_split("train", 8);
            progress.update_split(4);
            progress.update_split(8);
            progress.end_split();
            progress.start_split("valid", 2);
            progress.update_split(2);
            progress.end_split();
            progress.update_epoch(epoch);
        }
        progress.end();
        // Used on its own, it leaves finishing to the caller.
        assert!(!tracker.is_finished());
        tracker.finish().unwrap();
        let snap = memory.snapshot();
        let steps = |key: &str| -> Vec<u64> { snap.series(key).iter().map(|p| p.0).collect() };
        assert_eq!(
            snap.series("train/progress"),
            vec![(1, 0.5), (2, 1.0), (3, 0.5), (4, 1.0)]
        );
        assert_eq!(
            snap.series("epoch"),
            vec![(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)]
        );
        assert_eq!(snap.series("valid/progress"), vec![(1, 1.0), (2, 1.0)]);
        assert_eq!(steps("train/epoch/duration_s"), [1, 2]);
        assert_eq!(steps("valid/epoch/duration_s"), [1, 2]);
        assert!(snap.series("train/items_per_sec").iter().all(|p| p.1 > 0.0));
        let burn = &snap.config["burn"];
        assert_eq!(burn["total_epochs"], 2);
        assert_eq!(burn["label"], "probe");
        assert_eq!(burn["epochs_completed"], 2);
        assert!(burn["duration_s"].as_f64().is_some_and(|d| d >= 0.0));
    }
}
