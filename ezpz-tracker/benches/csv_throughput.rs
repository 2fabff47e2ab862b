//! CSV throughput: 1M rows × 10 columns through the tracker (until `finish` returns) vs a raw
//! `BufWriter` writing the same bytes, and 100k vs 1M rows (linearity).
//!
//! Prints `RESULT csv_tracker_rows_per_s`, `RESULT csv_raw_rows_per_s`, `RESULT csv_ratio`
//! (wall time, target ≥ 0.5), `RESULT csv_cpu_ratio` (process CPU time, all threads: stable
//! on a loaded machine) and `RESULT csv_1m_over_100k_time` (target ≤ 11).

use std::io::Write;
use std::time::Instant;

use ezpz_tracker::{TrackerBuilder, Value};

mod common;
use common::cpu_seconds;

const COLS: usize = 10;

fn value(i: u64, j: usize) -> f64 {
    1.0 / (1.0 + i as f64) + j as f64
}

/// (wall seconds, CPU seconds) of `f`.
fn timed(f: impl FnOnce()) -> (f64, f64) {
    let (t0, c0) = (Instant::now(), cpu_seconds());
    f();
    (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
}

fn through_tracker(dir: &std::path::Path, rows: u64) -> (f64, f64) {
    timed(|| tracker_run(dir, rows))
}

fn tracker_run(dir: &std::path::Path, rows: u64) {
    let keys: Vec<String> = (0..COLS).map(|j| format!("train/m{j}")).collect();
    let tracker = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir)
        .build()
        .expect("tracker");
    for i in 0..rows {
        let row: [(&str, f64); COLS] = std::array::from_fn(|j| (keys[j].as_str(), value(i, j)));
        tracker.log_at(i, row);
    }
    tracker.finish().expect("finish");
}

fn raw(dir: &std::path::Path, rows: u64) -> (f64, f64) {
    std::fs::create_dir_all(dir).expect("dir");
    timed(|| raw_run(dir, rows))
}

fn raw_run(dir: &std::path::Path, rows: u64) {
    let file = std::fs::File::create(dir.join("raw.csv")).expect("file");
    let mut w = std::io::BufWriter::new(file);
    let header: Vec<String> = (0..COLS).map(|j| format!("train/m{j}")).collect();
    writeln!(w, "step,{}", header.join(",")).expect("write");
    let mut line = String::new();
    for i in 0..rows {
        line.clear();
        line.push_str(&i.to_string());
        for j in 0..COLS {
            line.push(',');
            Value::F64(value(i, j)).write_text(&mut line);
        }
        line.push('\n');
        w.write_all(line.as_bytes()).expect("write");
    }
    w.flush().expect("flush");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let big = 1_000_000u64;
    let small = 100_000u64;
    let (raw_s, raw_cpu) = raw(&dir.path().join("raw"), big);
    let (tracker_s, tracker_cpu) = through_tracker(&dir.path().join("tracker-1m"), big);
    // The short run is noisier: the median of five.
    let mut smalls: Vec<f64> = (0..5)
        .map(|i| through_tracker(&dir.path().join(format!("tracker-100k-{i}")), small).0)
        .collect();
    smalls.sort_by(f64::total_cmp);
    let small_s = smalls[2];
    let same = std::fs::read(dir.path().join("raw/raw.csv")).expect("raw")
        == std::fs::read(dir.path().join("tracker-1m/metrics.csv")).expect("tracker");
    assert!(same, "the tracker's metrics.csv differs from the raw bytes");
    println!(
        "RESULT csv_tracker_rows_per_s {:.0}",
        big as f64 / tracker_s
    );
    println!("RESULT csv_raw_rows_per_s {:.0}", big as f64 / raw_s);
    println!("RESULT csv_ratio {:.3}", raw_s / tracker_s);
    println!("RESULT csv_cpu_ratio {:.3}", raw_cpu / tracker_cpu);
    println!("RESULT csv_1m_over_100k_time {:.2}", tracker_s / small_s);
}
