//! TensorBoard throughput: 1M scalar events through a `Tracker` whose only backend is
//! `tensorboard` (timed from the first `log` until `finish` returns), against the anchor, a
//! raw buffered write of the same events: the same encoder and framing in a plain loop into
//! a `BufWriter<File>`, no tracker, no thread. Both produce files of identical size (checked).
//!
//! Also printed, for scale: the same tracker loop with a backend that does nothing (what the
//! tracker's own queueing allows, whatever the backend) and writing the tracker's
//! already-encoded bytes again, record by record, through a `BufWriter` (I/O only).
//!
//! Prints `RESULT tb_events_per_s`, `RESULT tb_raw_events_per_s`, `RESULT tb_ratio` (target
//! ≥ 0.5), `RESULT tb_noop_tracker_events_per_s` and `RESULT tb_preencoded_events_per_s`
//! (medians of three rounds). `EZPZ_BENCH_EVENTS` changes the count.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ezpz_tracker::backends::tensorboard::framing::{read_records, write_message};
use ezpz_tracker::backends::tensorboard::proto::{summary_value::Kind, Event, SummaryValue};
use ezpz_tracker::{Backend, Record, Result, RunStatus, TrackerBuilder};

const ROUNDS: usize = 3;

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

/// Logs `n` one-scalar records; the time from the first `log` until `finish` returns.
fn timed_tracker(builder: TrackerBuilder, n: u64) -> Duration {
    let tracker = builder
        .project("bench")
        // Never drop: the figure must cover every event.
        .enqueue_timeout(Duration::from_secs(600))
        .finish_timeout(Duration::from_secs(600))
        .build_strict()
        .expect("tracker");
    let start = Instant::now();
    for step in 0..n {
        tracker.log([("loss", loss(step))]);
    }
    let summary = tracker.finish().expect("finish");
    let elapsed = start.elapsed();
    assert_eq!(summary.dropped(), 0);
    assert_eq!(summary.backends[0].records, n);
    elapsed
}

fn through_tracker(dir: &Path, n: u64) -> (Duration, usize) {
    let builder = TrackerBuilder::new().backends("tensorboard").outdir(dir);
    let elapsed = timed_tracker(builder, n);
    (elapsed, check(&event_file(&dir.join("tensorboard")), n))
}

fn noop_tracker(dir: &Path, n: u64) -> Duration {
    let builder = TrackerBuilder::new()
        .backends("none")
        .outdir(dir)
        .add_backend(Noop);
    timed_tracker(builder, n)
}

fn raw(path: &Path, n: u64) -> (Duration, usize) {
    let start = Instant::now();
    let mut out = BufWriter::new(File::create(path).expect("create"));
    let mut buf = Vec::with_capacity(64);
    write_message(&mut buf, &Event::file_version(now())).expect("encode");
    out.write_all(&buf).expect("write");
    let mut event = Event::summary(0.0, 0, vec![SummaryValue::scalar("loss", 0.0)]);
    for step in 0..n {
        event.wall_time = now();
        event.step = step as i64;
        if let Some(ezpz_tracker::backends::tensorboard::proto::event::What::Summary(s)) =
            &mut event.what
        {
            s.value[0].kind = Some(Kind::SimpleValue(loss(step) as f32));
        }
        buf.clear();
        write_message(&mut buf, &event).expect("encode");
        out.write_all(&buf).expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let elapsed = start.elapsed();
    (elapsed, check(path, n))
}

fn preencoded(source: &Path, path: &Path) -> Duration {
    let bytes = std::fs::read(source).expect("read");
    let (records, _) = read_records(&bytes).expect("valid");
    let start = Instant::now();
    let mut out = BufWriter::new(File::create(path).expect("create"));
    let mut framed = Vec::with_capacity(64);
    for r in &records {
        framed.clear();
        ezpz_tracker::backends::tensorboard::framing::write_record(&mut framed, r);
        out.write_all(&framed).expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    start.elapsed()
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
    let (mut tracked, mut raws, mut noops, mut pre) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let (t, tracked_len) = through_tracker(&dir.path().join("run"), n);
        let raw_path = dir.path().join("raw.tfevents");
        let (r, raw_len) = raw(&raw_path, n);
        assert_eq!(tracked_len, raw_len, "both sides write the same bytes");
        let tracked_file = event_file(&dir.path().join("run").join("tensorboard"));
        let p = preencoded(&tracked_file, &dir.path().join("copy.tfevents"));
        let z = noop_tracker(&dir.path().join("noop"), n);
        println!(
            "round {round}: tracker {:.3} s, raw {:.3} s, no-op tracker {:.3} s, \
             pre-encoded {:.3} s ({} bytes)",
            t.as_secs_f64(),
            r.as_secs_f64(),
            z.as_secs_f64(),
            p.as_secs_f64(),
            tracked_len
        );
        noops.push(n as f64 / z.as_secs_f64());
        tracked.push(n as f64 / t.as_secs_f64());
        raws.push(n as f64 / r.as_secs_f64());
        pre.push(n as f64 / p.as_secs_f64());
    }
    let (t, r, p) = (median(tracked), median(raws), median(pre));
    println!("RESULT tb_events_per_s {t:.0}");
    println!("RESULT tb_raw_events_per_s {r:.0}");
    println!("RESULT tb_ratio {:.3}", t / r);
    println!("RESULT tb_noop_tracker_events_per_s {:.0}", median(noops));
    println!("RESULT tb_preencoded_events_per_s {p:.0}");
}
