//! The Rust side of `scripts/bench-mlflow` (needs a running server: `MLFLOW_TRACKING_URI`).
//!
//! Workload: `BENCH_STEPS` (300) steps × `BENCH_METRICS` (100) metrics through a tracker
//! with only the `mlflow` backend. Prints `RESULT` lines:
//! - `mlflow_rust_points_per_s` — points delivered per second, first `log` to `finish`
//!   returning (everything acknowledged by the server, checked by reading one history back);
//! - `mlflow_rust_log_median_us` — the caller's median cost of one `log` of all metrics;
//! - `mlflow_rust_log10_median_us` — the same for 10 scalars (the tracker's general target);
//! - `mlflow_rust_log_down_median_us` — one `log` while the server is unreachable.
//!
//! Without `MLFLOW_TRACKING_URI` it prints nothing and exits (so `cargo bench` passes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ezpz_tracker::{Metric, MlflowBackend, MlflowOptions, TrackerBuilder, Value};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

/// Logs the workload; returns (seconds from first log to finish, per-call costs).
fn run(
    uri: &str,
    experiment: &str,
    steps: usize,
    metrics: usize,
    finish: Duration,
) -> (f64, Vec<Duration>, Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = MlflowOptions::new()
        .tracking_uri(uri)
        .experiment_name(experiment);
    let name = format!("mlflow-bench-{experiment}");
    ezpz_tracker::register_backend(&name, move |ctx| {
        Ok(Box::new(MlflowBackend::new(ctx, options.clone())?))
    });
    let tracker = TrackerBuilder::new()
        .backends(name)
        .outdir(dir.path())
        .finish_timeout(finish)
        .build()
        .expect("tracker");
    let keys: Vec<Arc<str>> = (0..metrics)
        .map(|j| Arc::from(format!("m{j:02}")))
        .collect();
    let rows: Vec<Vec<Metric>> = (0..steps)
        .map(|s| {
            keys.iter()
                .enumerate()
                .map(|(j, k)| (k.clone(), Value::F64(s as f64 * 0.5 + j as f64)))
                .collect()
        })
        .collect();
    let mut costs = Vec::with_capacity(steps);
    let t0 = Instant::now();
    for row in rows {
        let c0 = Instant::now();
        tracker.log(row);
        costs.push(c0.elapsed());
    }
    let summary = tracker.finish();
    let total = t0.elapsed().as_secs_f64();
    let run_id = summary
        .ok()
        .and_then(|s| s.backends[0].run_info.clone())
        .and_then(|i| i.id);
    (total, costs, run_id)
}

fn history_len(uri: &str, run_id: &str, key: &str) -> usize {
    let url = format!("{uri}/api/2.0/mlflow/metrics/get-history");
    reqwest::blocking::Client::new()
        .get(url)
        .query(&[
            ("run_id", run_id),
            ("metric_key", key),
            ("max_results", "25000"),
        ])
        .send()
        .and_then(|r| r.json::<serde_json::Value>())
        .map(|v| v["metrics"].as_array().map_or(0, Vec::len))
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Ok(uri) = std::env::var("MLFLOW_TRACKING_URI") else {
        eprintln!("mlflow_delivery: MLFLOW_TRACKING_URI not set; run scripts/bench-mlflow");
        return;
    };
    let steps = env_usize("BENCH_STEPS", 300);
    let metrics = env_usize("BENCH_METRICS", 100);
    let tag = std::process::id();

    let (total, costs, run_id) = run(
        &uri,
        &format!("bench-rust-{tag}"),
        steps,
        metrics,
        Duration::from_secs(600),
    );
    let run_id = run_id.expect("the run finished with everything delivered");
    let delivered = history_len(&uri, &run_id, "m00");
    assert_eq!(
        delivered, steps,
        "server holds {delivered} of {steps} points of m00"
    );
    println!(
        "RESULT mlflow_rust_points_per_s {:.0}",
        (steps * metrics) as f64 / total
    );
    println!("RESULT mlflow_rust_log_median_us {:.2}", median_us(costs));

    let (_, costs10, _) = run(
        &uri,
        &format!("bench-rust10-{tag}"),
        steps,
        10,
        Duration::from_secs(600),
    );
    println!(
        "RESULT mlflow_rust_log10_median_us {:.2}",
        median_us(costs10)
    );

    // Nothing listens on this port: every request fails, the spool takes everything.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| format!("http://127.0.0.1:{}", a.port()))
        .expect("port");
    let (_, down, _) = run(&dead, "bench-down", steps, metrics, Duration::from_secs(1));
    println!(
        "RESULT mlflow_rust_log_down_median_us {:.2}",
        median_us(down)
    );
}
