//! The caller's cost of `Tracker::log` with 10 scalars, CSV + memory attached.
//!
//! Criterion's report first, then a direct median over batches, printed as
//! `RESULT log_10_scalars_median_ns <v>` (target ≤ 1000 on a 2-core machine), with the cost of
//! building the same 10 pairs alone as the anchor, and `RESULT log_100_scalars_csv_median_ns`:
//! one call with 100 `(&str, f64)` pairs, CSV only (the MLflow workload's width; target
//! ≤ 1000 there). Each also as `*_cpu_ns`: the calling thread's CPU time per call, which a
//! loaded machine does not inflate. Then the latency of each call with a backend that is stuck forever
//! attached beside CSV, and without it: `RESULT log_latency_{csv,csv_stuck}_{p50,p99,max}_ns`
//! (the promise: no call waits for a stuck backend; the bound is 10 ms).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ezpz_tracker::{IntoMetrics, MemoryBackend, Tracker, TrackerBuilder};

mod common;
use common::thread_cpu_seconds;

#[path = "../tests/support/stuck.rs"]
mod stuck;
use stuck::Stuck;

/// p50, p99 and max of each call's own time over `calls` calls of 10 scalars.
fn latencies(tracker: &Tracker, calls: u64) -> (f64, f64, f64) {
    let mut ns: Vec<f64> = (0..calls)
        .map(|i| {
            let t = Instant::now();
            tracker.log(black_box(row(i)));
            t.elapsed().as_nanos() as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), ns[ns.len() - 1])
}

const KEYS: [&str; 10] = [
    "train/loss",
    "train/acc",
    "train/lr",
    "train/step_sq",
    "train/m4",
    "train/m5",
    "train/m6",
    "train/m7",
    "train/m8",
    "train/m9",
];

fn row(i: u64) -> [(&'static str, f64); 10] {
    let x = i as f64;
    let mut out = [("", 0.0); 10];
    for (j, k) in KEYS.iter().enumerate() {
        out[j] = (*k, x * (j as f64 + 1.0));
    }
    out
}

fn tracker(dir: &std::path::Path) -> Tracker {
    TrackerBuilder::new()
        .backends("csv")
        .outdir(dir)
        .add_backend(MemoryBackend::new())
        .build()
        .expect("tracker")
}

/// Per-call nanoseconds of each of `batches` batches of `batch` calls: wall time, and the
/// calling thread's CPU time (its own cost, steady on a loaded machine).
fn batches_ns(mut f: impl FnMut(u64), batches: usize, batch: u64) -> Vec<(f64, f64)> {
    (0..batches)
        .map(|b| {
            let (t, c) = (Instant::now(), thread_cpu_seconds());
            for i in 0..batch {
                f(b as u64 * batch + i);
            }
            let n = batch as f64;
            (
                t.elapsed().as_nanos() as f64 / n,
                (thread_cpu_seconds() - c) * 1e9 / n,
            )
        })
        .collect()
}

/// Medians of the wall and CPU figures of [`batches_ns`].
fn medians(per_batch: Vec<(f64, f64)>) -> (f64, f64) {
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = per_batch.into_iter().unzip();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut wall), median(&mut cpu))
}

/// Median per-call nanoseconds over batches of `batch` calls (wall, CPU).
fn median_ns(f: impl FnMut(u64), batches: usize, batch: u64) -> (f64, f64) {
    medians(batches_ns(f, batches, batch))
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    {
        let t = tracker(&dir.path().join("criterion"));
        let mut i = 0u64;
        c.bench_function("tracker_log_10_scalars_csv_memory", |b| {
            b.iter(|| {
                i += 1;
                t.log(black_box(row(i)));
            })
        });
        t.finish().expect("finish");
    }
    c.final_summary();

    let t = tracker(&dir.path().join("direct"));
    let (log_ns, log_cpu) = median_ns(|i| t.log(black_box(row(i))), 400, 1000);
    t.finish().expect("finish");
    let (build_ns, build_cpu) = median_ns(
        |i| drop(black_box(black_box(row(i)).into_metrics())),
        400,
        1000,
    );
    // 100 scalars per call (the MLflow workload's width), CSV only, keys as `&str`.
    let wide_keys: Vec<String> = (0..100).map(|j| format!("train/m{j:02}")).collect();
    let wide = |i: u64| -> Vec<(&str, f64)> {
        wide_keys
            .iter()
            .enumerate()
            .map(|(j, k)| (k.as_str(), i as f64 + j as f64))
            .collect()
    };
    let rows: Vec<Vec<(&str, f64)>> = (0..1000).map(wide).collect();
    // Five fresh runs of 10 000 calls: fewer rows than the queue holds, so this is the
    // caller's own cost, not the CSV worker's pace (formatting 100 floats per row takes longer
    // than logging them); the median over all their batches.
    let mut per_batch = Vec::new();
    for run in 0..5 {
        let t = TrackerBuilder::new()
            .backends("csv")
            .outdir(dir.path().join(format!("wide-{run}")))
            .report(false)
            .build()
            .expect("tracker");
        per_batch.extend(batches_ns(
            |i| t.log(black_box(&rows[(i % 1000) as usize][..])),
            10,
            1000,
        ));
        t.finish().expect("finish");
    }
    let (log100_ns, log100_cpu) = medians(per_batch);
    // Every call timed, with and without a stuck backend beside CSV.
    for (label, stuck) in [("csv", false), ("csv_stuck", true)] {
        let mut builder = TrackerBuilder::new()
            .backends("csv")
            .outdir(dir.path().join(label))
            .report(false)
            .finish_timeout(Duration::from_secs(2));
        if stuck {
            builder = builder.add_backend(Stuck::default());
        }
        let t = builder.build().expect("tracker");
        let (p50, p99, max) = latencies(&t, 200_000);
        let _ = t.finish(); // the stuck one cannot finish
        println!("RESULT log_latency_{label}_p50_ns {p50:.0}");
        println!("RESULT log_latency_{label}_p99_ns {p99:.0}");
        println!("RESULT log_latency_{label}_max_ns {max:.0}");
    }
    println!("RESULT log_10_scalars_median_ns {log_ns:.1}");
    println!("RESULT log_10_scalars_cpu_ns {log_cpu:.1}");
    println!("RESULT log_100_scalars_csv_median_ns {log100_ns:.1}");
    println!("RESULT log_100_scalars_csv_cpu_ns {log100_cpu:.1}");
    println!("RESULT build_10_pairs_median_ns {build_ns:.1}");
    println!("RESULT build_10_pairs_cpu_ns {build_cpu:.1}");
    println!("RESULT log_over_build_ratio {:.2}", log_ns / build_ns);
    println!("RESULT log_over_build_cpu_ratio {:.2}", log_cpu / build_cpu);
}
