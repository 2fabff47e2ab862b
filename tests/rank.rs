//! Non-zero ranks without cross-rank aggregation: no files, no threads, no buffering (with
//! aggregation they run one `ezpz-aggregate` thread, see `tests/mpi.rs`). Alone in its test
//! binary so the thread check sees no other test's threads.

mod common;

use common::backends::thread_names;
use ezpz_tracker::{MemoryBackend, TrackerBuilder};

#[test]
fn rank_one_writes_nothing_and_starts_no_threads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(&out)
        .rank(1)
        .add_backend(memory.clone())
        .build()
        .unwrap();
    assert!(!tracker.is_enabled());
    let ours: Vec<String> = thread_names()
        .into_iter()
        .filter(|t| t.starts_with("ezpz-"))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
    for i in 0..100 {
        tracker.log([("loss", i as f64)]);
    }
    tracker.log_config(serde_json::json!({"a": 1}));
    tracker.log_table("t", ["a"], vec![vec![1]]);
    assert!(tracker.finish().unwrap().backends.is_empty());
    assert!(!out.exists());
    assert!(memory.snapshot().records.is_empty());
}
