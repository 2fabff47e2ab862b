//! Cross-rank aggregation through real trackers, with ranks as threads of this process
//! ([`LocalGroup`]): rows matched whatever order and thread they were logged from, rank 0's
//! backends fed in rank 0's order, `flush` waiting for the other ranks' rows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ezpz_tracker::{Backend, HistogramRecord, Record, RunStatus};
use ezpz_tracker::{LocalAggregator, LocalGroup, RankInfo, Result, Tracker, TrackerBuilder};

/// One thing rank 0's backend received: `row <step>` with the row, or `hist <key>`.
type Event = (String, Option<Record>);

/// What rank 0's backend received, in order.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    fn rows(&self) -> Vec<Record> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, r)| r.clone())
            .collect()
    }
    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Backend for Events {
    fn name(&self) -> &str {
        "events"
    }
    fn log(&mut self, record: &Record) -> Result<()> {
        let name = format!("row {}", record.step);
        self.0.lock().unwrap().push((name, Some(record.clone())));
        Ok(())
    }
    fn log_config(&mut self, _config: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn log_histogram(&mut self, histogram: &HistogramRecord) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .push((format!("hist {}", histogram.key), None));
        Ok(())
    }
    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        Ok(())
    }
}

fn tracker(aggregator: LocalAggregator, rank: usize, world: usize, events: &Events) -> Tracker {
    let mut b = TrackerBuilder::new()
        .backends("none")
        .rank_info(RankInfo::single().with_rank(rank, world))
        .aggregator(aggregator);
    if rank == 0 {
        b = b.add_backend(events.clone());
    }
    b.build().unwrap()
}

/// Runs `body(rank, tracker)` on `world` in-process ranks, then finishes them all.
fn ranks(world: usize, events: &Events, body: impl Fn(usize, &Tracker) + Send + Sync) {
    std::thread::scope(|scope| {
        for (rank, aggregator) in LocalGroup::new(world).into_iter().enumerate() {
            let body = &body;
            let events = events.clone();
            scope.spawn(move || {
                let t = tracker(aggregator, rank, world, &events);
                body(rank, &t);
                t.finish().unwrap();
            });
        }
    });
}

fn value(r: &Record, key: &str) -> f64 {
    r.get(key)
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("no `{key}` in {r:?}"))
}

#[test]
fn rows_from_two_threads_per_rank_are_matched_and_kept_in_rank_0s_order() {
    let events = Events::default();
    let logged = Mutex::new(Vec::new()); // rank 0's own order of calls
    ranks(3, &events, |rank, t| {
        std::thread::scope(|scope| {
            for key in ["a", "b"] {
                let logged = &logged;
                scope.spawn(move || {
                    for step in 0..30u64 {
                        // Neighbouring ranks hold back a different thread.
                        if (key == "a") == (rank % 2 == 1) && step % 3 == 0 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        let value = step as f64 * if key == "a" { 1.0 } else { 10.0 };
                        if rank == 0 {
                            let mut l = logged.lock().unwrap();
                            l.push(format!("{key}{step}"));
                            t.log_at(step, [(key, value)]);
                        } else {
                            t.log_at(step, [(key, value + rank as f64)]);
                        }
                    }
                });
            }
        });
    });
    let rows = events.rows();
    let order: Vec<String> = rows
        .iter()
        .map(|r| {
            let key = if r.get("a").is_some() { "a" } else { "b" };
            format!("{key}{}", r.step)
        })
        .collect();
    assert_eq!(order, *logged.lock().unwrap(), "rank 0's order");
    for r in &rows {
        let key = if r.get("a").is_some() { "a" } else { "b" };
        let base = value(r, key);
        assert_eq!(value(r, &format!("{key}/mean")), base + 1.0);
        assert_eq!(value(r, &format!("{key}/max")), base + 2.0);
        assert_eq!(value(r, &format!("{key}/min")), base);
    }
}

#[test]
fn a_histogram_stays_behind_the_rows_logged_before_it() {
    let events = Events::default();
    ranks(2, &events, |rank, t| {
        if rank == 1 {
            // Rank 0's first row waits for this one: a few rounds.
            std::thread::sleep(Duration::from_millis(350));
        }
        t.log_at(1, [("loss", 1.0)]);
        t.log_histogram_at(1, "weights", vec![0.5, 1.5]);
        t.log_at(2, [("loss", 2.0)]);
    });
    assert_eq!(events.names(), ["row 1", "hist weights", "row 2"]);
    assert!(events.rows()[0].get("loss/mean").is_some());
}

#[test]
fn flush_returns_once_the_other_ranks_rows_are_aggregated() {
    let events = Events::default();
    let seen_after_flush = Mutex::new(None);
    ranks(2, &events, |rank, t| {
        if rank == 1 {
            std::thread::sleep(Duration::from_millis(250));
            t.log_at(0, [("loss", 3.0)]);
            return;
        }
        t.log_at(0, [("loss", 1.0)]);
        t.flush().unwrap();
        *seen_after_flush.lock().unwrap() = events.rows().first().map(|r| value(r, "loss/mean"));
    });
    assert_eq!(*seen_after_flush.lock().unwrap(), Some(2.0));
}

#[test]
fn a_rank_that_logs_nothing_lets_the_others_finish() {
    let events = Events::default();
    ranks(3, &events, |rank, t| {
        if rank != 2 {
            t.log_at(0, [("loss", rank as f64)]);
        }
    });
    let rows = events.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(value(&rows[0], "loss/mean"), 0.5, "over ranks 0 and 1");
}

#[test]
fn a_failed_rank_0_does_not_wait_for_the_others_and_keeps_its_rows() {
    let events = Events::default();
    let mut group = LocalGroup::new(2).into_iter();
    let (a0, a1) = (group.next().unwrap(), group.next().unwrap());
    let rank1 = tracker(a1, 1, 2, &events);
    // Rank 1 stays alive (its aggregation thread keeps meeting the rounds) and never ends.
    std::thread::spawn(move || {
        let _alive = rank1;
        std::thread::park();
    });
    let rank0 = tracker(a0, 0, 2, &events);
    rank0.log_at(0, [("loss", 1.0)]);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(rank0.finish_with(RunStatus::Failed).is_ok()));
    // Only a hang reaches this limit.
    let ok = finished.recv_timeout(Duration::from_secs(60));
    assert_eq!(
        ok,
        Ok(true),
        "finish of a failed run waited for the other rank"
    );
    let rows = events.rows();
    assert_eq!(rows.len(), 1, "the row is delivered");
    assert_eq!(value(&rows[0], "loss"), 1.0);
    assert_eq!(value(&rows[0], "loss/mean"), 1.0, "over rank 0 alone");
}
