//! TensorBoard throughput: 1M scalar events through a `Tracker` whose only backend is
//! `tensorboard` (timed from the first `log` until `finish` returns), against the anchor, a
//! raw buffered write of the same events: the same encoder and framing in a plain loop into
//! a `BufWriter<File>`, no tracker, no thread. Both produce files of identical size (checked).
//!
//! Also printed, for scale: the same tracker loop with a backend that does nothing (what the
//! tracker's own queueing allows, whatever the backend) and writing the tracker's
//! already-encoded bytes again, record by record, through a `BufWriter` (I/O only).
//!
//! Prints `RESULT tb_events_per_s`, `RESULT tb_raw_events_per_s`, `RESULT tb_ratio` (wall
//! time, target ≥ 0.5), `RESULT tb_cpu_ratio` (process CPU time, all threads: stable on a
//! loaded machine), `RESULT tb_noop_tracker_events_per_s` and
//! `RESULT tb_preencoded_events_per_s` (medians of three rounds). `EZPZ_BENCH_EVENTS` changes
//! the count.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ezpz_tracker::backends::tensorboard::framing::{read_records, write_message, write_record};
use ezpz_tracker::backends::tensorboard::proto::{event::What, summary_value::Kind};
use ezpz_tracker::backends::tensorboard::proto::{Event, SummaryValue};
use ezpz_tracker::{Backend, Record, Result, RunStatus, TrackerBuilder};

mod common;
use common::cpu_seconds;

const ROUNDS: usize = 3;

/// Wall and process CPU time of one measured section.
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// Starts a measurement; call the returned closure to end it.
fn start_timing() -> impl FnOnce() -> Timing {
    let (t0, c0) = (Instant::now(), cpu_seconds());
    move || Timing {
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn loss(step: u64) -> f64 {
    1.0 / (1.0 + step as f64)
}

/// The only event file in `logdir`.
fn event_file(logdir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(logdir)
        .expect("logdir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().expect("one file")
}

/// Checks the file holds `n` events after the version event; returns its size.
fn check(path: &Path, n: u64) -> usize {
    let bytes = std::fs::read(path).expect("read event file");
    let (records, pending) = read_records(&bytes).expect("valid event file");
    assert_eq!(pending, 0);
    assert_eq!(records.len() as u64, n + 1);
    bytes.len()
}

/// A backend that does nothing: the tracker's own cost.
struct Noop;

impl Backend for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn log(&mut self, _record: &Record) -> Result<()> {
        Ok(())
    }
    fn log_config(&mut self, _config: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _status: RunStatus) -> Result<()> {
        Ok(())
    }
}

/// Logs `n` one-scalar records; measured from the first `log` until `finish` returns.
fn timed_tracker(builder: TrackerBuilder, n: u64) -> Timing {
    let tracker = builder
        .project("bench")
        // Never drop: the figure must cover every event.
        .enqueue_timeout(Duration::from_secs(600))
        .finish_timeout(Duration::from_secs(600))
        .build_strict()
        .expect("tracker");
    let stop = start_timing();
    for step in 0..n {
        tracker.log([("loss", loss(step))]);
    }
    let summary = tracker.finish().expect("finish");
    let timing = stop();
    assert_eq!(summary.dropped(), 0);
    assert_eq!(summary.backends[0].records, n);
    timing
}

fn through_tracker(dir: &Path, n: u64) -> (Timing, usize) {
    let builder = TrackerBuilder::new().backends("tensorboard").outdir(dir);
    let timing = timed_tracker(builder, n);
    (timing, check(&event_file(&dir.join("tensorboard")), n))
}

fn noop_tracker(dir: &Path, n: u64) -> Timing {
    let builder = TrackerBuilder::new()
        .backends("none")
        .outdir(dir)
        .add_backend(Noop);
    timed_tracker(builder, n)
}

/// The anchor: the same events encoded and framed in a plain loop into a `BufWriter`.
fn raw(path: &Path, n: u64) -> (Timing, usize) {
    let stop = start_timing();
    let mut out = BufWriter::new(File::create(path).expect("create"));
    let mut buf = Vec::with_capacity(64);
    write_message(&mut buf, &Event::file_version(now())).expect("encode");
    out.write_all(&buf).expect("write");
    let mut event = Event::summary(0.0, 0, vec![SummaryValue::scalar("loss", 0.0)]);
    for step in 0..n {
        event.wall_time = now();
        event.step = step as i64;
        if let Some(What::Summary(s)) = &mut event.what {
            s.value[0].kind = Some(Kind::SimpleValue(loss(step) as f32));
        }
        buf.clear();
        write_message(&mut buf, &event).expect("encode");
        out.write_all(&buf).expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let timing = stop();
    (timing, check(path, n))
}

/// The tracker's encoded records written again through a `BufWriter` (I/O only).
fn preencoded(source: &Path, path: &Path) -> Timing {
    let bytes = std::fs::read(source).expect("read");
    let (records, _) = read_records(&bytes).expect("valid");
    let stop = start_timing();
    let mut out = BufWriter::new(File::create(path).expect("create"));
    let mut framed = Vec::with_capacity(64);
    for r in &records {
        framed.clear();
        write_record(&mut framed, r);
        out.write_all(&framed).expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    stop()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::var("EZPZ_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut rounds: Vec<[Timing; 4]> = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tracked, tracked_len) = through_tracker(&dir.path().join("run"), n);
        let raw_path = dir.path().join("raw.tfevents");
        let (raw, raw_len) = raw(&raw_path, n);
        assert_eq!(tracked_len, raw_len, "both sides write the same bytes");
        let tracked_file = event_file(&dir.path().join("run").join("tensorboard"));
        let pre = preencoded(&tracked_file, &dir.path().join("copy.tfevents"));
        let noop = noop_tracker(&dir.path().join("noop"), n);
        println!(
            "round {round}: tracker {:.3} s ({:.3} s CPU), raw {:.3} s ({:.3} s CPU), \
             no-op tracker {:.3} s, pre-encoded {:.3} s ({tracked_len} bytes)",
            tracked.wall, tracked.cpu, raw.wall, raw.cpu, noop.wall, pre.wall
        );
        rounds.push([tracked, raw, noop, pre]);
    }
    let rate = |i: usize| median(rounds.iter().map(|r| n as f64 / r[i].wall).collect());
    let cpu_ratio = median(rounds.iter().map(|r| r[1].cpu / r[0].cpu).collect());
    let (tracked, raw) = (rate(0), rate(1));
    println!("RESULT tb_events_per_s {tracked:.0}");
    println!("RESULT tb_raw_events_per_s {raw:.0}");
    println!("RESULT tb_ratio {:.3}", tracked / raw);
    println!("RESULT tb_cpu_ratio {cpu_ratio:.3}");
    println!("RESULT tb_noop_tracker_events_per_s {:.0}", rate(2));
    println!("RESULT tb_preencoded_events_per_s {:.0}", rate(3));
}
