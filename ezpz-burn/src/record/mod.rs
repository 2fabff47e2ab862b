//! The recorder: what burn's renderer hooks see, as tracker rows on one step axis.
//!
//! burn calls its renderer on one thread (the event processor) for every metric value, every
//! batch boundary (`update_split`) and every split's end, in the order things happened, for
//! training, validation and the `Evaluator`'s test split alike. The recorder turns that into
//! rows at the global step (the optimizer step, see [`StepCounter`]).

mod queue;
pub(crate) mod resume;
mod steps;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::train::metric::{MetricAttributes, MetricDefinition, MetricId, NumericEntry};
use ezpz_tracker::{Goal, Metric, MetricDefinition as TrackerDefinition, Tracker, Value};

use crate::aggregate::EntryMean;
use crate::logger::keys::key_segment;
pub(crate) use queue::{WatchQueue, WatchRow};
use steps::StepCounter;

/// How the recorder counts steps and ends.
#[derive(Debug, Clone)]
pub(crate) struct RecorderOptions {
    /// The global step before the first optimizer step of this training, as far as known
    /// when attaching (a resume may find a later one, see [`Recorder::batch_done`]).
    pub base_step: u64,
    /// Batches burn reports per optimizer step: devices …
    pub devices: usize,
    /// … times gradient accumulation.
    pub accumulation: usize,
    /// Finish the tracker when training (or evaluation) ends.
    pub finish_at_end: bool,
    /// Where a linked watch hands its rows over.
    pub queue: Option<Arc<WatchQueue>>,
    /// burn's checkpoint directory, logged as an artifact when training ends.
    pub checkpoints: Option<PathBuf>,
}

pub(crate) struct Recorder {
    tracker: Tracker,
    keys: HashMap<MetricId, String>,
    /// Unit and goal of burn's numeric metrics, told to the tracker for every key a metric
    /// is logged under (`train/loss`, `valid/epoch/loss`, …) the first time.
    meanings: HashMap<MetricId, (Option<String>, Goal)>,
    defined: HashSet<String>,
    steps: StepCounter,
    /// Where this training's step axis starts: a linked watch counts from 1 after it.
    base: u64,
    /// Epochs before this training's first (burn's `.checkpoint(k)`), not yet placed on the
    /// axis.
    resumed_epochs: usize,
    epoch: usize,
    epochs_completed: usize,
    split: Option<SplitRun>,
    /// Numeric entries since the last batch boundary (at a split's end: its epoch values).
    pending: Vec<(MetricId, NumericEntry)>,
    /// The training step being filled, with its batches' entries per metric.
    step_row: Option<(u64, StepEntries)>,
    /// The test split's running means (burn sends no end-of-split values there).
    test: Vec<(MetricId, EntryMean)>,
    queue: Option<Arc<WatchQueue>>,
    checkpoints: Option<PathBuf>,
    finish_at_end: bool,
    started: Option<Instant>,
    ended: bool,
}

/// Each metric's entries from the batches of one optimizer step.
type StepEntries = Vec<(MetricId, Vec<NumericEntry>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Train,
    Valid,
    Test,
}

struct SplitRun {
    kind: Kind,
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

/// The accumulator of metric `id` in `list` (a new one, appended, the first time): metrics
/// keep the order burn first reported them in.
fn per_metric<T: Default>(list: &mut Vec<(MetricId, T)>, id: MetricId) -> &mut T {
    let at = match list.iter().position(|(m, _)| *m == id) {
        Some(at) => at,
        None => {
            list.push((id, T::default()));
            list.len() - 1
        }
    };
    &mut list[at].1
}

/// The key prefix of burn's `Evaluator` test named `name`: `test`, or `test/<name>` for a
/// name other than "test".
fn test_prefix(name: &str) -> String {
    let segment = key_segment(name);
    if name.trim().is_empty() || segment == "test" {
        "test".to_string()
    } else {
        format!("test/{segment}")
    }
}

impl Recorder {
    pub(crate) fn new(tracker: &Tracker, options: RecorderOptions) -> Self {
        Recorder {
            tracker: tracker.clone(),
            keys: HashMap::new(),
            meanings: HashMap::new(),
            defined: HashSet::new(),
            steps: StepCounter::new(options.base_step, options.devices, options.accumulation),
            base: options.base_step,
            resumed_epochs: 0,
            epoch: 1,
            epochs_completed: 0,
            split: None,
            pending: Vec::new(),
            step_row: None,
            test: Vec::new(),
            queue: options.queue,
            checkpoints: options.checkpoints,
            finish_at_end: options.finish_at_end,
            started: None,
            ended: false,
        }
    }

    /// Whether training or evaluation started (burn called the recorder at all).
    pub(crate) fn started(&self) -> bool {
        self.started.is_some()
    }

    /// A metric burn will report: its key, and its name, description, unit and direction in
    /// the configuration under `burn.metrics.<key>`.
    pub(crate) fn define(&mut self, definition: &MetricDefinition) {
        if self.keys.contains_key(&definition.metric_id) {
            return;
        }
        let key = key_segment(&definition.name);
        let mut info = serde_json::json!({ "name": definition.name.as_str() });
        if let Some(description) = &definition.description {
            info["description"] = description.as_str().into();
        }
        if let MetricAttributes::Numeric(numeric) = &definition.attributes {
            if let Some(unit) = &numeric.unit {
                info["unit"] = unit.as_str().into();
            }
            info["higher_is_better"] = numeric.higher_is_better.into();
            let goal = if numeric.higher_is_better {
                Goal::Maximize
            } else {
                Goal::Minimize
            };
            self.meanings
                .insert(definition.metric_id.clone(), (numeric.unit.clone(), goal));
        }
        self.tracker
            .log_config(serde_json::json!({ "burn": { "metrics": { key.clone(): info } } }));
        self.keys.insert(definition.metric_id.clone(), key);
    }

    pub(crate) fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        label: Option<&str>,
    ) {
        self.epoch = starting_epoch.max(1);
        self.epochs_completed = self.epoch - 1;
        self.resumed_epochs = self.epochs_completed;
        self.started = Some(Instant::now());
        let mut burn = serde_json::json!({
            "total_epochs": total_epochs,
            "starting_epoch": starting_epoch,
            "starting_step": self.steps.current() + 1,
            "started_at": now_unix(),
        });
        if let Some(label) = label {
            burn["label"] = label.into();
        }
        self.tracker.log_config(serde_json::json!({ "burn": burn }));
    }

    /// The evaluator starts (it has no `start`).
    pub(crate) fn start_evaluation(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }

    pub(crate) fn start_split(&mut self, name: &str, total_items: usize, test: bool) {
        let (kind, prefix) = match (test, name) {
            (false, "train") => (Kind::Train, "train".to_string()),
            (false, _) => (Kind::Valid, key_segment(name)),
            (true, _) => (Kind::Test, test_prefix(name)),
        };
        if kind == Kind::Train {
            self.steps.start_train_split();
        }
        self.pending.clear();
        self.test.clear();
        self.split = Some(SplitRun {
            kind,
            prefix,
            total_items,
            items: 0,
            started: Instant::now(),
        });
    }

    /// A numeric value burn reported (a batch value, or at a split's end its epoch value).
    pub(crate) fn value(&mut self, id: &MetricId, entry: Option<NumericEntry>) {
        if let Some(entry) = entry {
            self.pending.push((id.clone(), entry));
        }
    }

    /// A batch ended: `items` of the split are done.
    pub(crate) fn batch_done(&mut self, items: usize) {
        let Some(split) = &mut self.split else {
            self.pending.clear();
            return;
        };
        split.items = items;
        match split.kind {
            Kind::Train => {
                if self.resumed_epochs > 0 {
                    let (total, batch) = (split.total_items, items);
                    self.place_resumed_epochs(total, batch);
                }
                let (step, complete) = self.steps.train_batch();
                if self.step_row.as_ref().is_some_and(|(s, _)| *s != step) {
                    self.flush_step();
                }
                let (_, values) = self.step_row.get_or_insert_with(|| (step, Vec::new()));
                for (id, entry) in self.pending.drain(..) {
                    per_metric::<Vec<_>>(values, id).push(entry);
                }
                if complete {
                    self.flush_step();
                }
            }
            // Validation runs one fixed model: its epoch value is the information, per-batch
            // values would all share the step (burn's running mean is still in its files).
            Kind::Valid => self.pending.clear(),
            Kind::Test => {
                for (id, entry) in self.pending.drain(..) {
                    per_metric::<EntryMean>(&mut self.test, id).push(&entry);
                }
            }
        }
    }

    /// A training resumed after `resumed_epochs` epochs: those epochs' optimizer steps come
    /// before this training's, at least (the tracker's files may show later steps, which
    /// win). An epoch has `total_items / batch` batches, rounded up; the first batch tells
    /// the batch size. Called at the first training batch, before it takes a step.
    fn place_resumed_epochs(&mut self, total_items: usize, batch_items: usize) {
        let epochs = std::mem::take(&mut self.resumed_epochs) as u64;
        if batch_items == 0 {
            return;
        }
        let batches = total_items.div_ceil(batch_items) as u64;
        let before = epochs * self.steps.steps_per_epoch(batches);
        if before > self.base {
            self.steps.continue_from(before);
            self.base = before;
        }
    }

    /// The current split ended; what burn sent since the last batch are its epoch values.
    pub(crate) fn end_split(&mut self) {
        let Some(split) = self.split.take() else {
            return;
        };
        self.flush_step();
        let duration = split.started.elapsed().as_secs_f64();
        let mut row: Vec<Metric> = Vec::new();
        let epoch_prefix = match split.kind {
            Kind::Test => split.prefix.clone(),
            _ => format!("{}/epoch", split.prefix),
        };
        let values: Vec<(MetricId, f64)> = match split.kind {
            Kind::Test => self
                .test
                .drain(..)
                .filter_map(|(id, mean)| Some((id, mean.value()?)))
                .collect(),
            _ => self
                .pending
                .drain(..)
                .map(|(id, entry)| (id, entry.current()))
                .collect(),
        };
        for (id, value) in values {
            if let Some(key) = self.key_of(&id, &epoch_prefix) {
                row.push((key.into(), value.into()));
            }
        }
        row.push((format!("{epoch_prefix}/duration_s").into(), duration.into()));
        if duration > 0.0 && split.items > 0 {
            let rate = split.items as f64 / duration;
            row.push((format!("{epoch_prefix}/items_per_sec").into(), rate.into()));
        }
        self.emit(self.steps.current(), row);
    }

    pub(crate) fn update_epoch(&mut self, epoch: usize) {
        self.epochs_completed = epoch;
        self.epoch = epoch + 1;
    }

    /// Training (`training`) or evaluation ended: the watch rows still queued, the
    /// training's end in the configuration, and the tracker finished when asked.
    pub(crate) fn end(&mut self, training: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.flush_step();
        if let Some(queue) = &self.queue {
            for mut row in queue.close() {
                row.step += self.base;
                self.log_watch_row(row);
            }
        }
        if training {
            let duration = self.started.map(|s| s.elapsed().as_secs_f64());
            self.tracker.log_config(serde_json::json!({ "burn": {
                "epochs_completed": self.epochs_completed,
                "last_step": self.steps.current(),
                "duration_s": duration,
                "ended_at": now_unix(),
            }}));
            self.log_checkpoints();
        }
        if self.finish_at_end {
            if let Err(e) = self.tracker.finish() {
                ezpz_tracker::warn!("ezpz: finishing the run at the end of training: {e}");
            }
        }
    }

    /// The checkpoints burn kept, as one artifact. burn has written them by now: its
    /// checkpointer threads are joined when the training loop returns, before training's
    /// end reaches the renderer (burn-train `src/checkpoint/async_checkpoint.rs`, `Drop`).
    fn log_checkpoints(&self) {
        let Some(dir) = &self.checkpoints else {
            return;
        };
        if dir.is_dir() {
            self.tracker
                .log_artifacts([("burn_checkpoints", dir.clone())]);
        }
    }

    /// Writes the training step being filled: each metric's mean over the step's batches
    /// (the batch's own value when the step has one batch).
    fn flush_step(&mut self) {
        let Some((step, values)) = self.step_row.take() else {
            return;
        };
        let mut row: Vec<Metric> = Vec::with_capacity(values.len() + 2);
        for (id, entries) in values {
            let Some(key) = self.key_of(&id, "train") else {
                continue;
            };
            let value = match entries.as_slice() {
                [one] => one.current(),
                many => {
                    let mut mean = EntryMean::default();
                    many.iter().for_each(|e| mean.push(e));
                    match mean.value() {
                        Some(v) => v,
                        None => continue,
                    }
                }
            };
            row.push((key.into(), value.into()));
        }
        if let Some(split) = &self.split {
            let elapsed = split.started.elapsed().as_secs_f64();
            if elapsed > 0.0 {
                let rate = split.items as f64 / elapsed;
                row.push(("train/items_per_sec".into(), rate.into()));
            }
        }
        self.emit(step, row);
    }

    /// The key of burn's metric `id` under `prefix` (`valid/epoch` → `valid/epoch/loss`),
    /// defined to the tracker (unit, goal) the first time it is logged.
    fn key_of(&mut self, id: &MetricId, prefix: &str) -> Option<String> {
        let key = format!("{prefix}/{}", self.keys.get(id)?);
        if let Some((unit, goal)) = self.meanings.get(id) {
            if !self.defined.contains(&key) {
                self.defined.insert(key.clone());
                let mut definition = TrackerDefinition::new(key.as_str()).goal(*goal);
                if let Some(unit) = unit {
                    definition = definition.unit(unit.as_str());
                }
                self.tracker.define_metric(definition);
            }
        }
        Some(key)
    }

    /// Logs `row` at `step` with the epoch, after the watch rows of earlier steps and
    /// together with the watch row of the same step.
    fn emit(&mut self, step: u64, mut row: Vec<Metric>) {
        let mut histograms = Vec::new();
        if let Some(queue) = self.queue.clone() {
            // The watch counts this training's steps from 1.
            for mut watch in queue.take_through(step.saturating_sub(self.base)) {
                watch.step += self.base;
                if watch.step == step {
                    row.extend(watch.metrics);
                    histograms.extend(watch.histograms);
                } else {
                    self.log_watch_row(watch);
                }
            }
        }
        if row.is_empty() {
            return;
        }
        row.push(("epoch".into(), Value::I64(self.epoch as i64)));
        self.tracker.log_at(step, row);
        for (key, bins) in histograms {
            self.tracker.log_histogram_bins_at(step, &key, bins);
        }
    }

    fn log_watch_row(&self, row: WatchRow) {
        if !row.metrics.is_empty() {
            self.tracker.log_at(row.step, row.metrics);
        }
        for (key, bins) in row.histograms {
            self.tracker.log_histogram_bins_at(row.step, &key, bins);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::train::metric::NumericAttributes;

    fn definition(name: &str, unit: Option<&str>) -> MetricDefinition {
        MetricDefinition {
            metric_id: MetricId::new(Arc::new(name.to_string())),
            name: Arc::new(name.to_string()),
            description: None,
            attributes: match unit {
                Some(unit) => MetricAttributes::Numeric(NumericAttributes {
                    unit: Some(unit.to_string()),
                    higher_is_better: true,
                }),
                None => MetricAttributes::None,
            },
        }
    }

    fn recorder(tracker: &Tracker, queue: Option<Arc<WatchQueue>>) -> Recorder {
        Recorder::new(
            tracker,
            RecorderOptions {
                base_step: 0,
                devices: 1,
                accumulation: 1,
                finish_at_end: true,
                queue,
                checkpoints: None,
            },
        )
    }

    #[test]
    fn a_metric_reporting_only_at_the_split_end_gets_no_phantom_step() {
        let (tracker, memory) = crate::test_support::memory_tracker();
        let mut r = recorder(&tracker, None);
        let loss = definition("Loss", None);
        // Like burn's AurocMetric: no value per batch, a `Value` (not `Final`) at the end.
        let auroc = definition("AUROC", Some("%"));
        r.define(&loss);
        r.define(&auroc);
        r.start(1, 1, None);
        r.start_split("train", 24, false);
        for b in 1..=3 {
            r.value(&loss.metric_id, Some(NumericEntry::Value(b as f64)));
            r.value(&auroc.metric_id, None);
            r.batch_done(b * 8);
        }
        r.value(&loss.metric_id, Some(NumericEntry::Final(2.0)));
        r.value(&auroc.metric_id, Some(NumericEntry::Value(0.75)));
        r.end_split();
        r.start_split("valid", 2, false);
        for b in 1..=2 {
            r.value(&auroc.metric_id, None);
            r.batch_done(b);
        }
        r.value(&auroc.metric_id, Some(NumericEntry::Value(0.8)));
        r.end_split();
        r.update_epoch(1);
        r.end(true);
        let snap = memory.snapshot();
        assert_eq!(snap.series("train/loss"), [(1, 1.0), (2, 2.0), (3, 3.0)]);
        assert_eq!(snap.series("train/epoch/loss"), [(3, 2.0)]);
        assert_eq!(snap.series("train/epoch/auroc"), [(3, 0.75)]);
        assert_eq!(snap.series("valid/epoch/auroc"), [(3, 0.8)]);
        assert!(snap.series("train/auroc").is_empty());
        assert!(snap.series("valid/auroc").is_empty());
        let metrics = &snap.config["burn"]["metrics"];
        assert_eq!(metrics["auroc"]["name"], "AUROC");
        assert_eq!(metrics["auroc"]["unit"], "%");
        assert_eq!(metrics["auroc"]["higher_is_better"], true);
        // Each key a metric is logged under is defined once, with burn's unit and direction.
        let defined: Vec<(&str, Option<&str>, Option<Goal>)> = snap
            .definitions
            .iter()
            .map(|d| (d.key.as_str(), d.unit.as_deref(), d.goal))
            .collect();
        assert_eq!(
            defined,
            [
                ("train/epoch/auroc", Some("%"), Some(Goal::Maximize)),
                ("valid/epoch/auroc", Some("%"), Some(Goal::Maximize)),
            ]
        );
        assert_eq!(snap.config["burn"]["epochs_completed"], 1);
        assert_eq!(snap.finished, Some(ezpz_tracker::RunStatus::Finished));
    }

    #[test]
    fn watch_rows_join_their_step_and_leftovers_are_written_at_the_end() {
        let (tracker, memory) = crate::test_support::memory_tracker();
        let queue = Arc::new(WatchQueue::default());
        let mut r = recorder(&tracker, Some(queue.clone()));
        let loss = definition("Loss", None);
        r.define(&loss);
        let watch_row = |step: u64| WatchRow {
            step,
            metrics: vec![("grads/global_norm".into(), Value::F64(step as f64))],
            histograms: Vec::new(),
        };
        // The training thread runs ahead: steps 1, 2 and 9 are queued before any batch row.
        for step in [1, 2, 9] {
            queue.push(watch_row(step)).unwrap();
        }
        r.start(1, 1, None);
        r.start_split("train", 24, false);
        for b in 1..=2 {
            r.value(&loss.metric_id, Some(NumericEntry::Value(0.5)));
            r.batch_done(b);
        }
        r.end(true);
        assert!(queue.push(watch_row(10)).is_err(), "closed at the end");
        let snap = memory.snapshot();
        let rows: Vec<(u64, bool, bool)> = snap
            .records
            .iter()
            .map(|r| {
                let has = |k: &str| r.get(k).is_some();
                (r.step, has("train/loss"), has("grads/global_norm"))
            })
            .collect();
        assert_eq!(rows, [(1, true, true), (2, true, true), (9, false, true)]);
    }
}
