//! A real burn `SupervisedTraining` run with ezpz attached, read back from a `MemoryBackend`.

mod common;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::optim::SgdConfig;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::LossMetric;
use burn::train::{Learner, MetricEarlyStoppingStrategy, StoppingCondition, SupervisedTraining};
use common::{memory_tracker, rows, Net, RowBatcher};
use ezpz_burn::{Attach, SupervisedTrainingExt, Watch};
use ezpz_tracker::{MemoryBackend, RunStatus};

const TRAIN_ROWS: usize = 40;
const VALID_ROWS: usize = 16;
const BATCH: usize = 8;
const TRAIN_BATCHES: u64 = (TRAIN_ROWS / BATCH) as u64;
const VALID_BATCHES: u64 = (VALID_ROWS / BATCH) as u64;

/// Trains `Net` with ezpz attached through `attach`; returns what the tracker received.
fn train(
    epochs: usize,
    lr: f64,
    configure: impl FnOnce(
        SupervisedTraining<Net>,
        &ezpz_tracker::Tracker,
        &std::path::Path,
    ) -> SupervisedTraining<Net>,
) -> (MemoryBackend, ezpz_tracker::Tracker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker();
    let device = ezpz_burn::cpu_device().autodiff();
    let mut net = Net::new(&device, 2);
    net.watch = Some(Watch::new(&tracker).log_freq(1));
    let train = DataLoaderBuilder::new(RowBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(rows(TRAIN_ROWS, 1)));
    let valid = DataLoaderBuilder::new(RowBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(rows(VALID_ROWS, 2)));
    let training = SupervisedTraining::new(dir.path(), train, valid)
        .metrics((LossMetric::new(),))
        .num_epochs(epochs)
        .with_application_logger(None);
    let training = configure(training, &tracker, dir.path());
    let result = training.launch(Learner::new(net, SgdConfig::new().init(), lr));
    assert!(
        result.error.is_none(),
        "training failed: {:?}",
        result.error
    );
    (memory, tracker, dir)
}

fn steps(series: &[(u64, f64)]) -> Vec<u64> {
    series.iter().map(|p| p.0).collect()
}

#[test]
fn every_batch_arrives_once_with_epoch_summaries_progress_and_watch() {
    let (memory, tracker, dir) = train(2, 0.05, |t, tracker, dir| {
        t.with_ezpz(Attach::new(tracker).keep_burn_files(dir))
    });
    let snap = memory.snapshot();

    // One step per batch, 1..=N across both epochs: no phantom step for burn's end-of-epoch call.
    let train_loss = snap.series("train/loss");
    assert_eq!(
        steps(&train_loss),
        (1..=2 * TRAIN_BATCHES).collect::<Vec<_>>()
    );
    assert!(train_loss.iter().all(|p| p.1.is_finite() && p.1 > 0.0));
    let valid_loss = snap.series("valid/loss");
    assert_eq!(
        steps(&valid_loss),
        (1..=2 * VALID_BATCHES).collect::<Vec<_>>()
    );

    // Epoch values at step = epoch; with equal batches, the epoch loss is the batch mean.
    let epoch_loss = snap.series("train/epoch/loss");
    assert_eq!(steps(&epoch_loss), [1, 2]);
    for (epoch, value) in &epoch_loss {
        let from = ((epoch - 1) * TRAIN_BATCHES) as usize;
        let batches = &train_loss[from..from + TRAIN_BATCHES as usize];
        let mean = batches.iter().map(|p| p.1).sum::<f64>() / TRAIN_BATCHES as f64;
        assert!(
            (value - mean).abs() < 1e-6 * mean,
            "epoch {epoch}: {value} vs {mean}"
        );
    }
    assert_eq!(steps(&snap.series("valid/epoch/loss")), [1, 2]);

    // Progress: per batch at the same steps, plus the run's start and end in the config.
    let progress = snap.series("train/progress");
    assert_eq!(steps(&progress), steps(&train_loss));
    assert_eq!(progress[TRAIN_BATCHES as usize - 1].1, 1.0);
    assert_eq!(snap.series("epoch").last().map(|p| p.1), Some(2.0));
    assert_eq!(steps(&snap.series("valid/epoch/items_per_sec")), [1, 2]);
    assert_eq!(snap.config["burn"]["total_epochs"], 2);
    assert_eq!(snap.config["burn"]["epochs_completed"], 2);

    // Watch: every optimizer step, the frozen layer without gradient norm.
    let global = snap.series("grads/global_norm");
    assert_eq!(steps(&global), steps(&train_loss));
    assert!(global.iter().all(|p| p.1 > 0.0));
    assert_eq!(
        snap.series("grads/norm/encoder.layers.1.proj.weight").len(),
        10
    );
    assert_eq!(snap.series("params/norm/frozen.weight").len(), 10);
    assert!(snap.series("grads/norm/frozen.weight").is_empty());

    // The tracker was finished once burn delivered everything.
    assert_eq!(snap.finished, Some(RunStatus::Finished));
    assert!(tracker.is_finished());

    // burn's own files were kept beside ours, with the same per-batch values.
    let file = std::fs::read_to_string(dir.path().join("train/epoch-2/Loss.log")).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), TRAIN_BATCHES as usize + 1, "{file}");
    assert!(lines.last().unwrap().ends_with(",final"));
    let first: f64 = lines[0].split(',').next().unwrap().parse().unwrap();
    assert_eq!(first, train_loss[TRAIN_BATCHES as usize].1);
}

#[test]
fn early_stopping_reads_history_from_our_logger_alone() {
    // lr = 0: the validation loss never improves, so stopping "no improvement since 1 epoch"
    // ends training after epoch 2 of 5, which needs burn to read the losses back from us
    // (ours is the only logger: no burn files).
    let stopper = MetricEarlyStoppingStrategy::new(
        &LossMetric::new(),
        Aggregate::Mean,
        Direction::Lowest,
        Split::Valid,
        StoppingCondition::NoImprovementSince { n_epochs: 1 },
    );
    let (memory, _tracker, dir) = train(5, 0.0, |t, tracker, _| {
        t.early_stopping(stopper).with_ezpz(tracker)
    });
    let snap = memory.snapshot();
    assert_eq!(steps(&snap.series("valid/epoch/loss")), [1, 2]);
    assert_eq!(snap.series("train/loss").len() as u64, 2 * TRAIN_BATCHES);
    assert_eq!(snap.config["burn"]["epochs_completed"], 2);
    assert!(
        !dir.path().join("train").exists(),
        "no burn metric files without keep_burn_files"
    );
    assert_eq!(snap.finished, Some(RunStatus::Finished));
}

#[test]
fn finish_at_end_false_leaves_the_tracker_open() {
    let (memory, tracker, _dir) = train(1, 0.05, |t, tracker, _| {
        t.with_ezpz(Attach::new(tracker).finish_at_end(false))
    });
    assert!(!tracker.is_finished());
    tracker.flush().unwrap();
    assert_eq!(
        memory.snapshot().series("train/loss").len() as u64,
        TRAIN_BATCHES
    );
    // Still open: an evaluation after training lands in the same run.
    tracker.log_at(99, [("test/loss", 0.5)]);
    tracker.finish().unwrap();
    let snap = memory.snapshot();
    assert_eq!(snap.series("test/loss"), [(99, 0.5)]);
    assert_eq!(snap.finished, Some(RunStatus::Finished));
}
