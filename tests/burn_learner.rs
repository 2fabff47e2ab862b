//! `examples/learner.rs` end to end: burn's `SupervisedTraining` with ezpz attached writes
//! loss and watch columns into `metrics.csv`, read back with the `csv` crate.

#[path = "../examples/learner.rs"]
mod learner;

use std::collections::HashMap;

/// Every non-empty cell of `metrics.csv`, by column, as `(step, value)`.
fn read_columns(path: &std::path::Path) -> HashMap<String, Vec<(u64, f64)>> {
    let mut reader = csv::Reader::from_path(path).expect("metrics.csv exists");
    let headers = reader.headers().unwrap().clone();
    let mut columns: HashMap<String, Vec<(u64, f64)>> = HashMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        let step: u64 = row[0].parse().unwrap();
        for (name, cell) in headers.iter().zip(row.iter()).skip(1) {
            if let Ok(v) = cell.parse::<f64>() {
                columns.entry(name.to_string()).or_default().push((step, v));
            }
        }
    }
    columns
}

#[test]
fn the_learner_example_writes_loss_and_watch_columns() {
    let dir = tempfile::tempdir().unwrap();
    let args = learner::Args {
        outdir: dir.path().join("run"),
        epochs: 2,
        device: ezpz_burn::cpu_device_name().to_string(),
        backends: Some("csv,jsonl".into()),
    };
    let outdir = learner::run(&args).expect("the example trains");
    let columns = read_columns(&outdir.join("metrics.csv"));
    let steps = |key: &str| -> Vec<u64> {
        let series = columns
            .get(key)
            .unwrap_or_else(|| panic!("no column {key}"));
        series.iter().map(|p| p.0).collect()
    };
    // 256 training points in batches of 16: 16 optimizer steps per epoch, one axis for all
    // keys; validation (64 points) is logged once per epoch, at the epoch's last step.
    assert_eq!(steps("train/loss"), (1..=32).collect::<Vec<_>>());
    assert!(!columns.contains_key("valid/loss"));
    assert_eq!(steps("train/epoch/loss"), [16, 32]);
    assert_eq!(steps("valid/epoch/loss"), [16, 32]);
    let epochs: Vec<f64> = columns["epoch"].iter().map(|p| p.1).collect();
    assert!(epochs.iter().all(|&e| e == 1.0 || e == 2.0), "{epochs:?}");
    // Watch every 5 optimizer steps.
    let every_5: Vec<u64> = (1..=6).map(|k| 5 * k).collect();
    for key in [
        "grads/global_norm",
        "params/global_norm",
        "grads/norm/hidden.weight",
        "grads/norm/out.bias",
        "params/norm/hidden.bias",
    ] {
        assert_eq!(steps(key), every_5, "{key}");
    }
    assert!(columns["grads/global_norm"].iter().all(|p| p.1 > 0.0));
    // The model learns: the last epoch's validation loss is below the first's.
    let valid = &columns["valid/epoch/loss"];
    assert!(valid[1].1 < valid[0].1, "{valid:?}");
    assert!(outdir.join("metrics.jsonl").exists());
}
