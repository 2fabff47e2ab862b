//! Real burn `SupervisedTraining` runs with ezpz attached, read back from a `MemoryBackend`
//! (and burn's own files).

mod common;

use std::path::Path;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::optim::SgdConfig;
use burn::train::checkpoint::MetricCheckpointingStrategy;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::LossMetric;
use burn::train::{
    EvaluatorBuilder, ExecutionStrategy, Learner, MetricEarlyStoppingStrategy, MultiDeviceOptim,
    StoppingCondition, SupervisedTraining,
};
use common::{memory_tracker, rows, CaptureRenderer, Net, RowBatcher};
use ezpz_burn::{Attach, EvaluatorBuilderExt, SupervisedTrainingExt, Watch};
use ezpz_tracker::{Goal, MemoryBackend, RunStatus, Tracker};

const TRAIN_ROWS: usize = 40;
const VALID_ROWS: usize = 16;
const BATCH: usize = 8;
const TRAIN_BATCHES: u64 = (TRAIN_ROWS / BATCH) as u64;

/// Trains `Net` (watched by `watch`, if any) in `dir`; `configure` attaches ezpz.
fn train_in(
    dir: &Path,
    epochs: usize,
    lr: f64,
    watch: Option<Watch>,
    configure: impl FnOnce(SupervisedTraining<Net>) -> SupervisedTraining<Net>,
) -> Net {
    let device = ezpz_burn::cpu_device().autodiff();
    let mut net = Net::new(&device, 2);
    net.watch = watch;
    let train = DataLoaderBuilder::new(RowBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(rows(TRAIN_ROWS, 1)));
    let valid = DataLoaderBuilder::new(RowBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(rows(VALID_ROWS, 2)));
    let training = SupervisedTraining::new(dir, train, valid)
        .metrics((LossMetric::new(),))
        .num_epochs(epochs)
        .with_application_logger(None);
    let result = configure(training).launch(Learner::new(net, SgdConfig::new().init(), lr));
    assert!(
        result.error.is_none(),
        "training failed: {:?}",
        result.error
    );
    result.model
}

fn steps(series: &[(u64, f64)]) -> Vec<u64> {
    series.iter().map(|p| p.0).collect()
}

/// burn's own per-batch entries of one epoch (`v,count` lines), as (value, count).
fn burn_batches(dir: &Path, split: &str, epoch: usize) -> Vec<(f64, f64)> {
    let path = dir.join(format!("{split}/epoch-{epoch}/Loss.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter(|l| !l.ends_with(",final"))
        .map(|l| {
            let (v, n) = l.split_once(',').unwrap();
            (v.parse().unwrap(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn every_key_is_on_the_optimizer_step_with_accumulation_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker();
    let watch = Watch::new(&tracker).log_freq(1);
    let attach = Attach::new(&tracker).grads_accumulation(2).watch(&watch);
    train_in(dir.path(), 2, 0.05, Some(watch), |t| {
        t.grads_accumulation(2).with_ezpz(attach)
    });
    let snap = memory.snapshot();

    // 5 batches, 2 accumulated: optimizer steps of 2, 2 and 1 batches per epoch.
    let per_epoch = TRAIN_BATCHES.div_ceil(2);
    let all: Vec<u64> = (1..=2 * per_epoch).collect();
    let train_loss = snap.series("train/loss");
    assert_eq!(steps(&train_loss), all);
    // A step's value is the mean over its batches, as burn weighs them.
    let batches = burn_batches(dir.path(), "train", 1);
    let (v1, n1) = batches[0];
    let (v2, n2) = batches[1];
    let mean = (v1 * n1 + v2 * n2) / (n1 + n2);
    assert!(
        (train_loss[0].1 - mean).abs() <= 1e-12 * mean,
        "{train_loss:?} vs {mean}"
    );
    assert_eq!(
        train_loss[2].1, batches[4].0,
        "a one-batch step keeps its value"
    );

    // Epoch values at the epoch's last step, validation's included; no per-batch validation.
    let ends = [per_epoch, 2 * per_epoch];
    assert_eq!(steps(&snap.series("train/epoch/loss")), ends);
    assert_eq!(steps(&snap.series("valid/epoch/loss")), ends);
    assert_eq!(steps(&snap.series("valid/epoch/duration_s")), ends);
    assert!(snap.series("valid/loss").is_empty());

    // Watch: once per optimizer step, in the same row as that step's loss.
    assert_eq!(steps(&snap.series("grads/global_norm")), all);
    for record in &snap.records {
        if record.get("grads/global_norm").is_some() {
            assert!(record.get("train/loss").is_some(), "{record:?}");
        }
    }

    // Every row carries its epoch, and steps never go back.
    for record in &snap.records {
        let epoch = record.get("epoch").and_then(|v| v.as_f64());
        let expected = if record.step <= per_epoch { 1.0 } else { 2.0 };
        assert_eq!(epoch, Some(expected), "{record:?}");
    }
    let order: Vec<u64> = snap.records.iter().map(|r| r.step).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    assert_eq!(snap.config["burn"]["last_step"], 2 * per_epoch);
    assert_eq!(snap.finished, Some(RunStatus::Finished));

    // burn's `LossMetric` is lower-is-better: each of its keys is defined so, once.
    let defined: Vec<(&str, Option<Goal>)> = snap
        .definitions
        .iter()
        .map(|d| (d.key.as_str(), d.goal))
        .collect();
    let minimize = Some(Goal::Minimize);
    assert_eq!(
        defined,
        [
            ("train/loss", minimize),
            ("train/epoch/loss", minimize),
            ("valid/epoch/loss", minimize)
        ]
    );
}

#[test]
fn burn_keeps_its_files_and_summary_and_a_given_renderer_still_renders() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker();
    let capture = CaptureRenderer::default();
    let attach = Attach::new(&tracker).renderer(Box::new(capture.clone()));
    train_in(dir.path(), 2, 0.05, None, |t| t.summary().with_ezpz(attach));

    // burn's FileMetricLogger is still registered: its files, and `.summary()` from them.
    assert_eq!(
        burn_batches(dir.path(), "train", 2).len(),
        TRAIN_BATCHES as usize
    );
    let captured = capture.0.lock().unwrap();
    let summary = captured.summary.as_deref().expect("burn's learner summary");
    assert!(summary.contains("Loss"), "{summary}");
    // The wrapped renderer saw every batch (5 train + 2 valid per epoch) and the end.
    assert_eq!(captured.batches, 2 * (5 + 2));
    assert!(captured.ended);
    // And the tracker got the run.
    let snap = memory.snapshot();
    assert_eq!(snap.series("train/loss").len() as u64, 2 * TRAIN_BATCHES);
    assert!(tracker.is_finished());
}

#[test]
fn early_stopping_reads_history_without_burn_files() {
    // lr = 0: the validation loss never improves, so stopping "no improvement since 1 epoch"
    // ends training after epoch 2 of 5, which needs burn to read the losses back from the
    // HistoryLogger (burn's files are off).
    let stopper = MetricEarlyStoppingStrategy::new(
        &LossMetric::new(),
        Aggregate::Mean,
        Direction::Lowest,
        Split::Valid,
        StoppingCondition::NoImprovementSince { n_epochs: 1 },
    );
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker();
    train_in(dir.path(), 5, 0.0, None, |t| {
        t.early_stopping(stopper)
            .with_ezpz(Attach::new(&tracker).burn_files(false))
    });
    let snap = memory.snapshot();
    assert_eq!(
        steps(&snap.series("valid/epoch/loss")),
        [TRAIN_BATCHES, 2 * TRAIN_BATCHES]
    );
    assert_eq!(snap.config["burn"]["epochs_completed"], 2);
    assert!(
        !dir.path().join("train").exists(),
        "no burn metric files with burn_files(false)"
    );
    assert_eq!(snap.finished, Some(RunStatus::Finished));
}

#[test]
fn finish_at_end_false_leaves_the_tracker_open() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker();
    train_in(dir.path(), 1, 0.05, None, |t| {
        t.with_ezpz(Attach::new(&tracker).finish_at_end(false))
    });
    assert!(!tracker.is_finished());
    tracker.flush().unwrap();
    assert_eq!(
        memory.snapshot().series("train/loss").len() as u64,
        TRAIN_BATCHES
    );
    tracker.log_at(99, [("extra", 0.5)]);
    tracker.finish().unwrap();
    let snap = memory.snapshot();
    assert_eq!(snap.series("extra"), [(99, 0.5)]);
    assert_eq!(snap.finished, Some(RunStatus::Finished));
}

/// A tracker writing `metrics.jsonl` into `outdir`, continuing the run there if there is one
/// (plus a memory backend to read back).
fn jsonl_tracker(outdir: &Path) -> (Tracker, MemoryBackend) {
    let memory = MemoryBackend::new();
    let tracker = ezpz_tracker::TrackerBuilder::new()
        .backends("jsonl")
        .outdir(outdir)
        .resume(true)
        .add_backend(memory.clone())
        .build()
        .unwrap();
    (tracker, memory)
}

/// The epochs of burn's model checkpoints in `dir`.
fn checkpoints(dir: &Path) -> Vec<usize> {
    let mut epochs: Vec<usize> = std::fs::read_dir(dir.join("checkpoint"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("model-")?.split('.').next()?.parse().ok()
        })
        .collect();
    epochs.sort_unstable();
    epochs
}

#[test]
fn a_resumed_training_continues_the_steps_and_keeps_the_best_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (burn_dir, outdir) = (dir.path().join("burn"), dir.path().join("run"));
    let keep_best = || {
        MetricCheckpointingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            Split::Valid,
        )
    };

    // Two epochs that improve: epoch 2 is the best, its checkpoint the only one kept.
    let (tracker, _) = jsonl_tracker(&outdir);
    train_in(&burn_dir, 2, 0.05, None, |t| {
        t.with_default_checkpointers()
            .with_checkpointing_strategy(keep_best())
            .with_ezpz(&tracker)
    });
    assert_eq!(checkpoints(&burn_dir), [2]);

    // A new process resumes from it for two more epochs of gradient *ascent*: both are worse,
    // so the best checkpoint must survive, and no other be kept. burn scans the validation
    // loss from epoch 1, which only the first process saw.
    let (tracker, memory) = jsonl_tracker(&outdir);
    train_in(&burn_dir, 4, -0.05, None, |t| {
        t.checkpoint(2)
            .with_default_checkpointers()
            .with_checkpointing_strategy(keep_best())
            .with_ezpz(&tracker)
    });
    assert_eq!(checkpoints(&burn_dir), [2], "keep-best became keep-last");

    // The step axis goes on from the first process's last step.
    let snap = memory.snapshot();
    let second: Vec<u64> = (2 * TRAIN_BATCHES + 1..=4 * TRAIN_BATCHES).collect();
    assert_eq!(steps(&snap.series("train/loss")), second);
    assert_eq!(snap.config["burn"]["starting_epoch"], 3);
    // One file, both processes: steps in order, every epoch once at its last step.
    let text = std::fs::read_to_string(outdir.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let order: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    let valid_epochs: Vec<(u64, u64)> = rows
        .iter()
        .filter(|r| r["metrics"].get("valid/epoch/loss").is_some())
        .map(|r| {
            (
                r["step"].as_u64().unwrap(),
                r["metrics"]["epoch"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(u64, u64)> = (1..=4).map(|e| (e * TRAIN_BATCHES, e)).collect();
    assert_eq!(valid_epochs, expected);
}

/// A tracker writing plain files into `outdir` (artifacts under `artifacts/<label>/`).
fn csv_tracker(outdir: &Path) -> Tracker {
    ezpz_tracker::TrackerBuilder::new()
        .backends("csv")
        .outdir(outdir)
        .report(false)
        .build()
        .unwrap()
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_checkpoints_burn_kept_are_logged_as_an_artifact_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let (burn_dir, outdir) = (dir.path().join("burn"), dir.path().join("run"));
    let tracker = csv_tracker(&outdir);
    train_in(&burn_dir, 3, 0.05, None, |t| {
        t.with_default_checkpointers()
            .with_ezpz(Attach::new(&tracker).artifact_dir(&burn_dir))
    });
    // burn's default strategy keeps the last two epochs' model, optimizer and scheduler
    // (and the best one, here the last); the artifact holds exactly what burn kept.
    let kept = files_under(&burn_dir.join("checkpoint"));
    assert!(kept.contains(&"model-3.bpk".to_string()), "{kept:?}");
    assert!(!kept.contains(&"model-1.bpk".to_string()), "{kept:?}");
    let logged = files_under(&outdir.join("artifacts/burn_checkpoints"));
    let logged: Vec<String> = logged
        .iter()
        .map(|f| f.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(logged, kept);
    let copied = outdir.join("artifacts/burn_checkpoints");
    let model = files_under(&copied)
        .into_iter()
        .find(|f| f.ends_with("model-3.bpk"))
        .unwrap();
    assert_eq!(
        std::fs::read(copied.join(model)).unwrap(),
        std::fs::read(burn_dir.join("checkpoint/model-3.bpk")).unwrap(),
        "the artifact is the complete file"
    );

    // Opted out: nothing logged.
    let dir = tempfile::tempdir().unwrap();
    let (burn_dir, outdir) = (dir.path().join("burn"), dir.path().join("run"));
    let tracker = csv_tracker(&outdir);
    train_in(&burn_dir, 1, 0.05, None, |t| {
        t.with_default_checkpointers().with_ezpz(
            Attach::new(&tracker)
                .artifact_dir(&burn_dir)
                .log_checkpoints(false),
        )
    });
    assert!(!files_under(&burn_dir.join("checkpoint")).is_empty());
    assert!(!outdir.join("artifacts").exists());
}

#[test]
fn the_evaluators_test_split_is_logged_at_the_runs_step() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker();
    let model = train_in(dir.path(), 1, 0.05, None, |t| {
        t.with_ezpz(Attach::new(&tracker).finish_at_end(false))
    });
    let test = DataLoaderBuilder::new(RowBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(rows(20, 3)));
    let eval_dir = dir.path().join("eval");
    EvaluatorBuilder::new(&eval_dir)
        .metrics((LossMetric::new(),))
        .with_application_logger(None)
        .with_ezpz(&tracker)
        .build(model)
        .eval("test", test);

    // The mean over the test batches, weighted as burn weighs them (its own file).
    let text = std::fs::read_to_string(eval_dir.join("test/test/Loss.log")).unwrap();
    let (sum, n) = text.lines().fold((0.0, 0.0), |(s, n), l| {
        let (v, c) = l.split_once(',').unwrap();
        let (v, c): (f64, f64) = (v.parse().unwrap(), c.parse().unwrap());
        (s + v * c, n + c)
    });
    let snap = memory.snapshot();
    let test_loss = snap.series("test/loss");
    assert_eq!(steps(&test_loss), [TRAIN_BATCHES]);
    assert!(
        (test_loss[0].1 - sum / n).abs() <= 1e-12,
        "{test_loss:?} vs {}",
        sum / n
    );
    assert_eq!(steps(&snap.series("test/duration_s")), [TRAIN_BATCHES]);
    assert_eq!(snap.finished, Some(RunStatus::Finished));
}

/// burn's multi-device strategy: `optimize` (`OptimMainDevice`) or `optimize_multi`
/// (`OptimSharded`) once per step of two batches (one per device).
fn two_devices_step_and_watch_once_per_optimizer_step(optim: MultiDeviceOptim) {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker();
    let watch = Watch::new(&tracker).log_freq(1);
    let device = ezpz_burn::cpu_device();
    let strategy = ExecutionStrategy::MultiDevice(vec![device.clone(), device], optim);
    let attach = Attach::new(&tracker).devices(2).watch(&watch);
    train_in(dir.path(), 1, 0.05, Some(watch.clone()), |t| {
        t.with_training_strategy(strategy.into()).with_ezpz(attach)
    });
    let snap = memory.snapshot();
    // 5 batches over 2 devices: 3 optimizer steps.
    let optimizer_steps = watch.step();
    assert_eq!(optimizer_steps, TRAIN_BATCHES.div_ceil(2), "{optim:?}");
    let all: Vec<u64> = (1..=optimizer_steps).collect();
    assert_eq!(steps(&snap.series("grads/global_norm")), all);
    assert_eq!(steps(&snap.series("train/loss")), all);
    assert_eq!(steps(&snap.series("valid/epoch/loss")), [optimizer_steps]);
}

#[test]
fn two_devices_optimizing_on_the_main_device_step_and_watch_once_per_step() {
    two_devices_step_and_watch_once_per_optimizer_step(MultiDeviceOptim::OptimMainDevice);
}

#[test]
fn two_devices_optimizing_sharded_step_and_watch_once_per_step() {
    two_devices_step_and_watch_once_per_optimizer_step(MultiDeviceOptim::OptimSharded);
}
