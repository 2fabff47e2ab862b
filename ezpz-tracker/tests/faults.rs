//! Fault injection for the tracker's core promise: a stuck, slow or panicking backend never
//! stalls logging or loses another backend's rows; `flush`/`finish` return within one
//! deadline whatever a backend or another rank does; input at the limits never panics.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ezpz_tracker::{
    Aggregator, Backend, Error, Exchange, LocalGroup, MemoryBackend, RankInfo, Record, Result,
    RunInfo, RunStatus, Tracker, TrackerBuilder, MAX_STEP,
};

#[path = "support/stuck.rs"]
mod stuck;
use stuck::Stuck;

/// A backend whose `run_info` panics (after `log` succeeded, when the worker refreshes it).
struct PanickingRunInfo;

impl Backend for PanickingRunInfo {
    fn name(&self) -> &str {
        "panicky"
    }
    fn log(&mut self, _record: &Record) -> Result<()> {
        Ok(())
    }
    fn log_config(&mut self, _config: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn run_info(&self) -> Option<RunInfo> {
        panic!("run_info exploded");
    }
    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        Ok(())
    }
}

fn csv_rows(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics.csv");
    text.lines().skip(1).map(str::to_string).collect()
}

#[test]
fn a_backend_stuck_forever_costs_the_other_backends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let entered = Arc::new(AtomicUsize::new(0));
    let tracker = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir.path())
        .report(false)
        .queue_capacity(1000)
        .finish_timeout(Duration::from_secs(2))
        .add_backend(Stuck {
            entered: entered.clone(),
        })
        .build()
        .unwrap();
    const ROWS: u64 = 50_000;
    for i in 0..ROWS {
        let x = i as f64;
        tracker.log([
            ("a", x),
            ("b", x),
            ("c", x),
            ("d", x),
            ("e", x),
            ("f", x),
            ("g", x),
            ("h", x),
            ("i", x),
            ("j", x),
        ]);
    }
    // The loop ended (it hung for minutes before); finish returns within its deadline and
    // says which backend did not finish, with the run's summary.
    let err = tracker
        .finish()
        .expect_err("the stuck backend cannot finish");
    assert!(err.to_string().contains("stuck"), "{err}");
    let summary = err.summary().expect("the summary comes with the error");
    let stuck = summary.backends.iter().find(|b| b.name == "stuck").unwrap();
    assert!(stuck.dropped > 0, "{stuck:?}");
    let csv = summary.backends.iter().find(|b| b.name == "csv").unwrap();
    assert_eq!((csv.records, csv.dropped), (ROWS, 0), "{csv:?}");
    let rows = csv_rows(dir.path());
    assert_eq!(rows.len() as u64, ROWS, "every CSV row is there");
    assert!(rows.last().unwrap().starts_with(&format!("{}", ROWS - 1)));
    assert_eq!(entered.load(Ordering::SeqCst), 1);
    // A second finish returns the same result.
    let again = tracker.finish().expect_err("same result");
    assert_eq!(again.to_string(), err.to_string());
    assert_eq!(again.summary(), err.summary());
}

/// A backend that takes a millisecond per row: slow, but writing.
struct Slow;

impl Backend for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn log(&mut self, _record: &Record) -> Result<()> {
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    }
    fn log_config(&mut self, _config: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_burst_after_a_quiet_spell_is_not_taken_for_a_stuck_backend() {
    // 200 rows stay under the hard limit (2 × 100 + a batch), so only a backend taken for
    // stalled could lose any, however slowly its worker is scheduled on a loaded machine.
    let tracker = TrackerBuilder::new()
        .backends("none")
        .queue_capacity(100)
        .finish_timeout(Duration::from_secs(30))
        .add_backend(Slow)
        .build()
        .unwrap();
    // Idle for longer than a stalled backend's silence.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..200 {
        tracker.log([("x", i as f64)]);
    }
    let summary = tracker.finish().unwrap();
    assert_eq!((summary.backends[0].records, summary.dropped()), (200, 0));
}

#[test]
fn flush_with_a_stuck_backend_returns_within_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("jsonl")
        .outdir(dir.path())
        .report(false)
        .finish_timeout(Duration::from_millis(300))
        .add_backend(Stuck::default())
        .build()
        .unwrap();
    tracker.log([("loss", 1.0)]);
    let err = tracker.flush().expect_err("the stuck backend cannot flush");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 1, "jsonl flushed its row");
}

#[test]
fn a_panicking_run_info_is_caught_counted_and_reported() {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(PanickingRunInfo)
        .add_backend(memory.clone())
        .build()
        .unwrap();
    for i in 0..100 {
        tracker.log([("x", i as f64)]);
    }
    let err = tracker.finish().expect_err("the panic is reported");
    assert!(err.to_string().contains("panicked"), "{err}");
    let summary = err.summary().unwrap();
    let panicky = summary
        .backends
        .iter()
        .find(|b| b.name == "panicky")
        .unwrap();
    assert_eq!(panicky.panics, 1, "{panicky:?}");
    assert_eq!(
        memory.snapshot().records.len(),
        100,
        "the other backend got every row"
    );
}

#[test]
fn durations_at_their_limits_never_panic() {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .finish_timeout(Duration::MAX)
        .enqueue_timeout(Duration::MAX)
        .add_backend(memory.clone())
        .build()
        .unwrap();
    tracker.log([("x", 1.0)]);
    tracker.flush().unwrap();
    tracker.finish().unwrap();
    assert_eq!(memory.snapshot().records.len(), 1);
}

#[test]
fn steps_beyond_what_backends_store_are_clamped_never_wrapped() {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(memory.clone())
        .build()
        .unwrap();
    tracker.log_at(u64::MAX, [("x", 1.0)]);
    tracker.log([("x", 2.0)]);
    tracker.log([("step", 1e20), ("x", 3.0)]);
    tracker.finish().unwrap();
    let steps: Vec<u64> = memory.snapshot().records.iter().map(|r| r.step).collect();
    assert_eq!(steps, [MAX_STEP, MAX_STEP, MAX_STEP]);
}

/// An aggregator of two ranks whose second rank never shows up (it died or hangs).
struct AloneOfTwo;

impl Aggregator for AloneOfTwo {
    fn world_size(&self) -> usize {
        2
    }
    fn rank(&self) -> usize {
        0
    }
    fn exchange(&self, _payload: &[u8], _done: bool, give_up: &AtomicBool) -> Option<Exchange> {
        while !give_up.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

#[test]
fn rank_0_finishes_within_the_deadline_when_another_rank_never_comes() {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .rank_info(RankInfo::single().with_rank(0, 2))
        .aggregator(AloneOfTwo)
        .finish_timeout(Duration::from_secs(1))
        .add_backend(memory.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        tracker.log([("loss", i as f64)]);
    }
    tracker.finish().expect("rank 0's own backends finished");
    let records = memory.snapshot().records;
    assert_eq!(records.len(), 10, "rank 0 wrote every row it had");
    // Aggregated over the ranks that were there: rank 0 alone.
    let first = &records[0];
    assert_eq!(first.get("loss/mean").and_then(|v| v.as_f64()), Some(0.0));
}

#[test]
fn when_the_aggregation_queue_is_full_rows_go_straight_to_the_backends() {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .rank_info(RankInfo::single().with_rank(0, 2))
        .aggregator(AloneOfTwo)
        .queue_capacity(1000)
        .finish_timeout(Duration::from_secs(9))
        .add_backend(memory.clone())
        .build()
        .unwrap();
    // The aggregation thread waits in its first round for a rank that never comes, so its
    // queue (4 × 1000 rows) fills; logging goes on without waiting, rows go straight to the
    // backends from then on.
    let mut rows = 0u64;
    while tracker.last_record().is_none() {
        assert!(rows < 2_000_000, "the aggregation queue never filled");
        tracker.log_at(rows, [("x", rows as f64)]);
        rows += 1;
    }
    for _ in 0..100 {
        tracker.log_at(rows, [("x", rows as f64)]);
        rows += 1;
    }
    tracker.finish().unwrap();
    let mut steps: Vec<u64> = memory.snapshot().records.iter().map(|r| r.step).collect();
    steps.sort_unstable();
    let missing = (0..rows).find(|s| steps.binary_search(s).is_err());
    assert_eq!(
        (steps.len() as u64, missing),
        (rows, None),
        "every row arrived once"
    );
}

#[test]
fn the_other_ranks_finish_when_rank_0_hangs() {
    let mut group = LocalGroup::new(3);
    let rank_2 = group.pop().unwrap();
    let rank_1 = group.pop().unwrap();
    // Rank 0 exists but never logs nor finishes (a hung process): its aggregator is kept
    // alive and never called.
    let _rank_0 = group.pop().unwrap();
    let workers: Vec<_> = [(1, rank_1), (2, rank_2)]
        .into_iter()
        .map(|(rank, aggregator)| {
            std::thread::spawn(move || {
                let tracker = TrackerBuilder::new()
                    .backends("none")
                    .rank_info(RankInfo::single().with_rank(rank, 3))
                    .aggregator(aggregator)
                    .finish_timeout(Duration::from_millis(600))
                    .build()
                    .unwrap();
                tracker.log([("loss", 1.0)]);
                tracker.finish().map(|s| s.steps)
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap().unwrap(), 1);
    }
}

/// An aggregator whose thread panics in its second round (and says so first).
struct PanicsInRound2(Mutex<u32>, Arc<AtomicBool>);

impl Aggregator for PanicsInRound2 {
    fn world_size(&self) -> usize {
        2
    }
    fn rank(&self) -> usize {
        0
    }
    fn exchange(&self, payload: &[u8], done: bool, _give_up: &AtomicBool) -> Option<Exchange> {
        let mut round = self.0.lock().unwrap();
        *round += 1;
        if *round == 2 {
            self.1.store(true, Ordering::SeqCst);
            panic!("injected panic in round 2");
        }
        let _ = (payload, done);
        Some(Exchange {
            all_done: false,
            done: vec![false, false],
            payloads: vec![Vec::new(), Vec::new()],
        })
    }
}

#[test]
fn a_panic_on_the_aggregation_thread_is_reported_and_later_rows_still_arrive() {
    let memory = MemoryBackend::new();
    let panicking = Arc::new(AtomicBool::new(false));
    let tracker = TrackerBuilder::new()
        .backends("none")
        .rank_info(RankInfo::single().with_rank(0, 2))
        .aggregator(PanicsInRound2(Mutex::new(0), panicking.clone()))
        .finish_timeout(Duration::from_secs(2))
        .add_backend(memory.clone())
        .build()
        .unwrap();
    // Rounds run every 100 ms; unwinding may take a while (a backtrace being printed).
    while !panicking.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let reported = (0..100)
        .find_map(|_| match tracker.flush() {
            Err(e) if e.to_string().contains("panicked") => Some(e),
            _ => {
                std::thread::sleep(Duration::from_millis(20));
                None
            }
        })
        .expect("flush reports the panic once the thread has unwound");
    assert!(
        reported.to_string().contains("aggregation thread panicked"),
        "{reported}"
    );
    tracker.log([("late", 1.0)]);
    let flushed = tracker.flush();
    assert!(
        flushed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("panicked")),
        "flush keeps reporting it: {flushed:?}"
    );
    let err = tracker.finish().expect_err("finish reports it too");
    assert!(err.to_string().contains("panicked"), "{err}");
    let rows = memory.snapshot().records;
    assert_eq!(rows.len(), 1, "the row logged after the panic arrived");
    assert_eq!(rows[0].get("late").and_then(|v| v.as_f64()), Some(1.0));
}

#[test]
fn dropping_the_last_clone_finishes_even_with_a_stuck_backend() {
    let dir = tempfile::tempdir().unwrap();
    let tracker: Tracker = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir.path())
        .report(false)
        .finish_timeout(Duration::from_millis(500))
        .add_backend(Stuck::default())
        .build()
        .unwrap();
    tracker.log([("x", 1.0)]);
    drop(tracker);
    assert_eq!(csv_rows(dir.path()).len(), 1);
}
