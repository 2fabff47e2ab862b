//! The core tracker end to end: fan-out, isolation, lifecycle, ranks, backpressure.
//! (The original's tests/test_tracker.py cases that apply, plus ours.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::backends::{BlockedBackend, FailingBackend, Gate, PanickingBackend, SlowBackend};
use ezpz_tracker::{
    register_backend, setup_tracker, unregister_backend, MemoryBackend, RunStatus, Tracker,
    TrackerBuilder, Value,
};

fn read_csv(path: &std::path::Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn memory_tracker(memory: &MemoryBackend) -> Tracker {
    TrackerBuilder::new()
        .backends("none")
        .add_backend(memory.clone())
        .build()
        .unwrap()
}

#[test]
fn tracker_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Tracker>();
}

#[test]
fn fans_out_every_kind_of_call_to_every_backend() {
    let (a, b) = (MemoryBackend::named("a"), MemoryBackend::named("b"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.bin");
    std::fs::write(&file, b"weights").unwrap();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(a.clone())
        .add_backend(b.clone())
        .config(serde_json::json!({"lr": 0.01}))
        .build()
        .unwrap();
    tracker.log([("loss", 0.5)]);
    tracker.log_config(serde_json::json!({"epochs": 3}));
    tracker.log_table("t", ["x", "y"], vec![vec![1, 2]]);
    tracker.log_image("img", image::RgbImage::new(4, 3), Some("cap"));
    tracker.log_artifacts([("model", &file)]);
    tracker.log_histogram("w", vec![1.0, 2.0, 3.0]);
    tracker.finish().unwrap();
    for m in [a, b] {
        let s = m.snapshot();
        assert_eq!(s.series("loss"), vec![(0, 0.5)]);
        assert_eq!(s.config, serde_json::json!({"lr": 0.01, "epochs": 3}));
        assert_eq!(s.tables[0].rows, vec![vec![Value::I64(1), Value::I64(2)]]);
        assert_eq!(s.images[0].caption.as_deref(), Some("cap"));
        assert_eq!(s.images[0].encode_png().unwrap().width, 4);
        assert_eq!(s.artifacts[0].items[0].1, file);
        assert_eq!(s.histograms[0].data.values(), Some(&[1.0, 2.0, 3.0][..]));
        assert_eq!(s.finished, Some(RunStatus::Finished));
    }
}

#[test]
fn a_failing_or_panicking_backend_placed_first_does_not_stop_the_others() {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(FailingBackend)
        .add_backend(PanickingBackend)
        .add_backend(memory.clone())
        .build()
        .unwrap();
    for step in 0..10 {
        tracker.log([("loss", step as f64)]);
    }
    tracker.log_config(serde_json::json!({"a": 1}));
    let err = tracker.finish().unwrap_err().to_string();
    assert!(err.contains("failing"), "{err}");
    assert!(err.contains("panicking"), "{err}");
    let s = memory.snapshot();
    assert_eq!(s.records.len(), 10);
    assert_eq!(s.config, serde_json::json!({"a": 1}));
    assert_eq!(s.finished, Some(RunStatus::Finished));
    // A second finish returns the same result; the summary comes with the error and counts
    // each backend's failures, and the panic.
    let again = tracker.finish().unwrap_err();
    assert_eq!(again.to_string(), err);
    let summary = again
        .summary()
        .expect("the summary is in the error")
        .clone();
    assert_eq!(summary.backends[1].panics, 1);
    let failing = &summary.backends[0];
    assert_eq!((failing.name.as_str(), failing.errors), ("failing", 12));
    assert_eq!(summary.backends[2].records, 10);
}

#[test]
fn get_backend_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(dir.path())
        .build()
        .unwrap();
    let csv = tracker.get_backend("csv").unwrap();
    assert_eq!(csv.name, "csv");
    assert_eq!(
        csv.run_info.unwrap().path.unwrap(),
        dir.path().join("metrics.csv")
    );
    assert!(tracker.get_backend("wandb").is_none());
    assert_eq!(tracker.backend_names(), ["csv", "jsonl"]);
}

#[test]
fn none_and_empty_names_give_a_disabled_tracker_that_writes_nothing() {
    for names in ["none", "", " , "] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let tracker = TrackerBuilder::new()
            .backends(names)
            .outdir(&out)
            .build()
            .unwrap();
        assert!(!tracker.is_enabled(), "{names:?}");
        tracker.log([("loss", 1.0)]);
        tracker.log_table("t", ["a"], vec![vec![1]]);
        tracker.finish().unwrap();
        assert!(!out.exists(), "{names:?} created files");
    }
    let null = Tracker::disabled();
    null.log([("x", 1)]);
    assert!(null.get_backend("csv").is_none());
    assert!(null.finish().unwrap().backends.is_empty());
}

#[test]
fn unknown_names_are_skipped_and_the_rest_work_but_strict_build_fails() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("csv, nonexistent_xyz")
        .outdir(dir.path())
        .build()
        .unwrap();
    assert_eq!(tracker.backend_names(), ["csv"]);
    tracker.log([("loss", 1.0)]);
    tracker.finish().unwrap();
    assert_eq!(read_csv(&dir.path().join("metrics.csv")).len(), 2);

    let err = TrackerBuilder::new()
        .backends("csv,nonexistent_xyz")
        .outdir(dir.path().join("strict"))
        .build_strict()
        .unwrap_err()
        .to_string();
    assert!(err.contains("nonexistent_xyz"), "{err}");
    assert!(err.contains("csv") && err.contains("jsonl"), "{err}");
}

#[test]
fn custom_backend_registered_by_name() {
    let memory = MemoryBackend::named("my");
    let handle = memory.clone();
    register_backend("my", move |_ctx| Ok(Box::new(handle.clone())));
    let dir = tempfile::tempdir().unwrap();
    let tracker = setup_tracker(Some("test"), Some("my"), None, Some(dir.path()), Some(0));
    tracker.log([("x", 1)]);
    tracker.finish().unwrap();
    assert!(unregister_backend("my"));
    assert_eq!(memory.snapshot().series("x"), vec![(0, 1.0)]);
}

#[test]
fn full_lifecycle_with_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/run");
    let tracker = setup_tracker(
        Some("test"),
        Some("csv"),
        Some(&serde_json::json!({"lr": 0.01})),
        Some(&out),
        Some(0),
    );
    for step in 0..5u64 {
        tracker.log_at(step, [("loss", 1.0 / (1 + step) as f64)]);
    }
    tracker.log_table(
        "predictions",
        ["x", "y"],
        vec![vec![1, 0], vec![2, 1], vec![3, 1]],
    );
    let summary = tracker.finish().unwrap();
    assert_eq!(summary.outdir.as_deref(), Some(out.as_path()));
    assert_eq!(summary.steps, 5);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["lr"], 0.01);
    let rows = read_csv(&out.join("metrics.csv"));
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[1], ["0", "1.0"]);
    assert_eq!(rows[5], ["4", "0.2"]);
    let table = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    assert_eq!(table.lines().count(), 4);
}

#[test]
fn steps_explicit_then_key_then_auto_increment() {
    let memory = MemoryBackend::new();
    let tracker = memory_tracker(&memory);
    tracker.log([("a", 1)]); // 0
    tracker.log_at(42, [("a", 2)]); // 42
    tracker.log([("a", 3)]); // 43
    tracker.log(ezpz_tracker::metrics! {"step" => 100, "a" => 4}); // 100, key removed
    tracker.log_with([("a", 5)], Some(7), true); // explicit wins
    tracker.log([("a", 6)]); // 8
    tracker.finish().unwrap();
    let s = memory.snapshot();
    let steps: Vec<u64> = s.records.iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, 42, 43, 100, 7, 8]);
    assert!(s.records[3].get("step").is_none());
}

#[test]
fn staged_metrics_are_committed_as_one_row() {
    let memory = MemoryBackend::new();
    let tracker = memory_tracker(&memory);
    tracker.stage([("loss", 0.5)]);
    tracker.stage([("acc", 0.9)]);
    tracker.log([("lr", 1e-4)]);
    tracker.stage([("late", 1)]);
    tracker.finish().unwrap(); // finish commits a staged row
    let s = memory.snapshot();
    assert_eq!(s.records.len(), 2);
    let keys: Vec<&str> = s.records[0].keys().iter().map(|k| &**k).collect();
    assert_eq!(keys, ["loss", "acc", "lr"]);
    assert_eq!(s.records[1].step, 1);
}

#[test]
fn empty_metric_sets_are_no_ops() {
    let memory = MemoryBackend::new();
    let tracker = memory_tracker(&memory);
    tracker.log(Vec::<(&str, f64)>::new());
    tracker.commit();
    tracker.log([("x", 1)]);
    tracker.finish().unwrap();
    assert_eq!(memory.snapshot().series("x"), vec![(0, 1.0)]);
}

#[test]
fn slow_backend_applies_backpressure_without_dropping() {
    let received = Arc::new(AtomicUsize::new(0));
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(SlowBackend {
            delay: Duration::from_millis(2),
            received: received.clone(),
        })
        .add_backend(memory.clone())
        .queue_capacity(4)
        .build()
        .unwrap();
    for i in 0..60 {
        tracker.log([("i", i)]);
    }
    let summary = tracker.finish().unwrap();
    assert_eq!(received.load(Ordering::SeqCst), 60);
    assert_eq!(summary.dropped(), 0);
    assert_eq!(memory.snapshot().records.len(), 60);
}

#[test]
fn a_stuck_backend_drops_what_it_cannot_take_and_never_blocks_finish() {
    let gate = Gate::default();
    let received = Arc::new(AtomicUsize::new(0));
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(BlockedBackend {
            gate: gate.clone(),
            received: received.clone(),
        })
        .add_backend(memory.clone())
        .queue_capacity(2)
        .finish_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for i in 0..20 {
        tracker.log([("i", i)]);
        // Rows further apart than the hand-over pause go to the workers one at a time (a
        // tight loop's rows would travel as one batch).
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = tracker.finish().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("blocked") && text.contains("did not complete"),
        "{text}"
    );
    // The failed finish still says what the run did; a second finish says the same.
    let summary = err.summary().expect("summary in the error").clone();
    gate.open();
    assert_eq!(tracker.finish().unwrap_err().to_string(), text);
    let blocked = &summary.backends[0];
    assert!(blocked.dropped > 0, "{blocked:?}");
    assert!(blocked.dropped <= 20);
    // The healthy backend got every row.
    assert_eq!(memory.snapshot().records.len(), 20);
    assert_eq!(summary.backends[1].dropped, 0);
}

#[test]
fn flush_and_finish_are_idempotent_and_log_after_finish_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir.path())
        .build()
        .unwrap();
    tracker.log([("loss", 0.5)]);
    tracker.flush().unwrap();
    // After flush the row is on disk, before finish.
    assert_eq!(read_csv(&dir.path().join("metrics.csv")).len(), 2);
    tracker.flush().unwrap();
    let first = tracker.finish().unwrap();
    let second = tracker.finish().unwrap();
    assert_eq!(first, second);
    tracker.log([("loss", 0.1)]);
    tracker.flush().unwrap();
    assert_eq!(read_csv(&dir.path().join("metrics.csv")).len(), 2);
}

#[test]
fn a_bursts_rows_reach_the_file_within_about_a_second_without_flush_or_another_log() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir.path())
        .build()
        .unwrap();
    // A burst: the first row goes to the worker at once, the rest wait to travel as one
    // batch, which the hand-over thread sends when no further `log` comes.
    for step in 0..50 {
        tracker.log([("loss", 0.5 + step as f64)]);
    }
    let path = dir.path().join("metrics.csv");
    // Poll (no timing assertion): the periodic flush must make the rows visible.
    let mut rows = 0;
    for _ in 0..100 {
        rows = read_csv(&path).len();
        if rows == 51 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rows, 51);
    drop(tracker);
}

#[test]
fn dropping_the_last_clone_finishes_the_run() {
    let memory = MemoryBackend::new();
    {
        let tracker = memory_tracker(&memory);
        let clone = tracker.clone();
        std::thread::spawn(move || clone.log([("from_thread", 1)]))
            .join()
            .unwrap();
        tracker.stage([("staged", 2)]);
    }
    let s = memory.snapshot();
    assert_eq!(s.finished, Some(RunStatus::Finished));
    assert_eq!(s.records.len(), 2);
    assert_eq!(s.series("staged"), vec![(1, 2.0)]);
}

#[test]
fn unwritable_outdir_fails_build_naming_the_path_but_setup_tracker_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("run");
    let err = TrackerBuilder::new()
        .backends("csv")
        .outdir(&bad)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&bad.display().to_string()), "{err}");

    let memory = MemoryBackend::named("keep");
    let handle = memory.clone();
    register_backend("keep", move |_ctx| Ok(Box::new(handle.clone())));
    let tracker = setup_tracker(None, Some("csv,keep"), None, Some(&bad), Some(0));
    assert_eq!(tracker.backend_names(), ["keep"]);
    tracker.log([("x", 1)]);
    tracker.finish().unwrap();
    unregister_backend("keep");
    assert_eq!(memory.snapshot().records.len(), 1);
}

#[test]
fn non_finite_and_string_values_reach_csv_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir.path())
        .build()
        .unwrap();
    tracker.log(ezpz_tracker::metrics! {
        "nan" => f64::NAN, "inf" => f64::INFINITY, "phase" => "warm,up", "ok" => true
    });
    tracker.finish().unwrap();
    let rows = read_csv(&dir.path().join("metrics.csv"));
    assert_eq!(rows[0], ["step", "nan", "inf", "phase", "ok"]);
    assert_eq!(rows[1], ["0", "nan", "inf", "warm,up", "true"]);
}

#[test]
fn last_record_is_what_the_backends_received() {
    let memory = MemoryBackend::new();
    let tracker = memory_tracker(&memory);
    assert!(tracker.last_record().is_none());
    tracker.log([("loss", 0.5), ("acc", 0.9)]);
    tracker.log_at(9, [("loss", 0.25), ("acc", 0.95)]);
    let last = tracker.last_record().unwrap();
    assert_eq!(last.step, 9);
    assert_eq!(last.get("acc"), Some(Value::F64(0.95)));
    tracker.finish().unwrap();
    assert_eq!(memory.snapshot().records[1], *last);
}
