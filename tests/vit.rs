//! The ViT example end to end: under `mpirun -np 2` (identical replicas, cross-rank
//! aggregates, one output directory) and on MNIST files the test writes.
//!
//! The example binary is the one `scripts/test` builds beside this test, rebuilt first when
//! stale (see `common::examples::example_binary`).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::examples::{example_binary, mpirun, mpirun_command, output_within, VIT_TINY};
use common::skip;

/// Generous: a debug build trains the tiny preset in seconds.
const LIMIT: Duration = Duration::from_secs(300);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

type Row = serde_json::Map<String, serde_json::Value>;

/// The `metrics` object of every line of `metrics.jsonl`.
fn jsonl_rows(dir: &Path) -> Vec<Row> {
    let body = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics.jsonl");
    body.lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(serde_json::Value::Object(mut line)) => match line.remove("metrics") {
                Some(serde_json::Value::Object(m)) => m,
                other => panic!("no metrics object in {l} ({other:?})"),
            },
            other => panic!("not a JSON object: {l} ({other:?})"),
        })
        .collect()
}

/// The last value logged for `key`.
fn last_value(rows: &[Row], key: &str) -> Option<f64> {
    rows.iter()
        .rev()
        .find_map(|r| r.get(key).and_then(|v| v.as_f64()))
}

/// Every key logged, sorted.
fn all_keys(rows: &[Row]) -> Vec<String> {
    let mut keys: Vec<String> = rows.iter().flat_map(|r| r.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn mpirun_two_ranks_train_identical_replicas_and_write_once() {
    if !cfg!(feature = "mpi") {
        skip(
            "the `mpi` feature is off: the ViT example runs one process (test with --features mpi)",
        );
        return;
    }
    let Some(mpirun) = mpirun() else {
        skip("`mpirun` not found (install openmpi-bin)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut cmd = mpirun_command(&mpirun, 2);
    cmd.arg(example_binary("vit"))
        .args(VIT_TINY)
        .current_dir(work.path())
        .env_remove("EZPZ_TRACKER_BACKENDS")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("WANDB_MODE");
    let out = output_within(cmd, LIMIT);
    assert_success(&out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);

    // Rank 0 alone writes: exactly one run directory, nothing else in the working directory.
    let project = work.path().join("outputs").join("ezpz.examples.vit");
    let runs: Vec<_> = std::fs::read_dir(&project)
        .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}\n{stderr}", project.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "one output directory: {runs:?}");
    let top: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(top, ["outputs"], "files outside the run directory");
    assert_eq!(
        stdout.matches("ViT training done").count(),
        1,
        "one summary (rank 0):\n{stdout}"
    );
    assert!(
        !stderr.contains("different metric keys"),
        "ranks logged out of step:\n{stderr}"
    );

    let rows = jsonl_rows(&runs[0]);
    let keys = all_keys(&rows);
    for stat in ["mean", "min", "max", "std"] {
        let key = format!("train/loss/{stat}");
        assert!(keys.contains(&key), "no `{key}` among {keys:?}");
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with("valid/") && k.ends_with("/std")),
        "{keys:?}"
    );
    let std = last_value(&rows, "dist/param_checksum/std").expect("dist/param_checksum/std");
    let min = last_value(&rows, "dist/param_checksum/min").expect("dist/param_checksum/min");
    let max = last_value(&rows, "dist/param_checksum/max").expect("dist/param_checksum/max");
    let local = last_value(&rows, "dist/param_checksum").expect("dist/param_checksum");
    assert_eq!(std, 0.0, "replicas diverged");
    assert_eq!(min, max, "replicas diverged");
    assert_eq!(local, min);
    // The watch: each rank's own gradient norm across ranks, and parameters equal at every
    // watched step (their norm's std is 0 on every row that has it).
    assert!(
        keys.contains(&"grads/global_norm/std".to_string()),
        "{keys:?}"
    );
    let param_stds: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.get("params/global_norm/std").and_then(|v| v.as_f64()))
        .collect();
    assert!(
        !param_stds.is_empty(),
        "no params/global_norm/std among {keys:?}"
    );
    assert!(
        param_stds.iter().all(|&s| s == 0.0),
        "replicas differed during training: {param_stds:?}"
    );
    // The losses differ across ranks (different shards), so the aggregate is not a copy.
    let loss_std = last_value(&rows, "train/loss/std").unwrap();
    assert!(
        loss_std > 0.0,
        "both ranks trained on the same data? train/loss/std = {loss_std}"
    );
}

/// An IDX file of unsigned bytes (`magic` 0x0803 images, 0x0801 labels), gzipped.
fn write_idx_gz(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all(&magic.to_be_bytes()).unwrap();
    for d in dims {
        gz.write_all(&d.to_be_bytes()).unwrap();
    }
    gz.write_all(data).unwrap();
    gz.finish().unwrap();
}

/// `n` 28×28 digits: a bright horizontal bar whose row encodes the label.
fn write_mnist_split(dir: &Path, prefix: &str, n: usize) {
    let mut images = vec![0u8; n * 28 * 28];
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (i, &label) in labels.iter().enumerate() {
        let row = 2 + 2 * label as usize;
        for x in 4..24 {
            images[i * 784 + row * 28 + x] = 255;
        }
    }
    write_idx_gz(
        &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
        0x0803,
        &[n as u32, 28, 28],
        &images,
    );
    write_idx_gz(
        &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
        0x0801,
        &[n as u32],
        &labels,
    );
}

#[test]
fn mnist_idx_files_train_in_one_process() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    write_mnist_split(&data, "train", 40);
    write_mnist_split(&data, "t10k", 12);
    let outdir = work.path().join("run");
    let mut cmd = Command::new(example_binary("vit"));
    cmd.args(["--dataset", "mnist", "--data-dir"])
        .arg(&data)
        .args([
            "--model",
            "debug",
            "--epochs",
            "2",
            "--backends",
            "csv,jsonl",
            "--outdir",
        ])
        .arg(&outdir)
        .current_dir(work.path());
    let out = output_within(cmd, LIMIT);
    assert_success(&out);

    // 40 images / batch 4 = 10 steps per epoch, 2 epochs; validation once per epoch.
    let rows = jsonl_rows(&outdir);
    let train_rows = rows.iter().filter(|r| r.contains_key("train/loss")).count();
    let valid_rows = rows
        .iter()
        .filter(|r| r.contains_key("valid/epoch/loss"))
        .count();
    assert_eq!((train_rows, valid_rows), (20, 2), "rows per split");
    let keys = all_keys(&rows);
    for key in [
        "train/accuracy",
        "train/learning_rate",
        "train/images_per_second",
        "train/tflops",
        "dist/param_checksum",
    ] {
        assert!(keys.contains(&key.to_string()), "no `{key}` among {keys:?}");
    }
    assert!(
        keys.iter().any(|k| k.starts_with("grads/norm/")),
        "watch norms missing: {keys:?}"
    );
    let csv = std::fs::read_to_string(outdir.join("metrics.csv")).unwrap();
    assert!(csv.lines().next().unwrap_or("").contains("train/loss"));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&outdir.display().to_string()),
        "summary names the outdir:\n{stdout}"
    );
}

#[test]
fn missing_mnist_files_fail_naming_what_was_expected_where() {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(example_binary("vit"));
    cmd.args(["--dataset", "mnist", "--data-dir", "nowhere"])
        .current_dir(work.path());
    let out = output_within(cmd, LIMIT);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("train-images-idx3-ubyte, train-images-idx3-ubyte.gz"),
        "{stderr}"
    );
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(
        !work.path().join("outputs").exists(),
        "a failed start wrote files"
    );
}
