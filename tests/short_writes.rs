//! A short write — the disk fills up, or a file size limit (`RLIMIT_FSIZE`) is reached — in
//! the middle of a row: every file is left readable by its real reader, with whole rows
//! only, none twice (a buffer written again whole after a partial write used to tear or
//! duplicate records).
//!
//! The training process is `ezpz-test-child` under `ulimit -f` with `SIGXFSZ` ignored (so a
//! write past the limit fails with `EFBIG` instead of killing it), logging far more than
//! the limit allows to CSV, JSONL, TensorBoard and an offline W&B run.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::wandb_capture::leet_records;

/// The file size limit, in KiB (`ulimit -f` in bash counts KiB).
const LIMIT_KIB: u64 = 48;

fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out
}

/// `steps` is `0, 1, 2, …` (a prefix of what was logged, nothing twice or missing).
fn assert_prefix(steps: &[u64], what: &str) {
    assert!(!steps.is_empty(), "{what}: no rows at all");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(*s, i as u64, "{what}: row {i} has step {s}");
    }
}

#[test]
fn a_file_size_limit_leaves_every_file_readable_by_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut child = Command::new("bash")
        .args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f {LIMIT_KIB}; exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_ezpz-test-child"),
        ])
        .arg(&out)
        .env("EZPZ_TRACKER_BACKENDS", "csv,jsonl,tensorboard,wandb")
        .env("WANDB_MODE", "offline")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("WANDB_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child under a file size limit");
    {
        let mut stdin = child.stdin.take().unwrap();
        // Flushes in between: many writes, several of them cut short by the limit.
        for chunk in 0..40u64 {
            writeln!(stdin, "log {} {}", chunk * 100, (chunk + 1) * 100).unwrap();
            writeln!(stdin, "flush").unwrap();
        }
        writeln!(stdin, "finish").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Finish may report the failed writes (exit 1); it must not die of a signal or panic.
    assert!(
        output.status.code().is_some() && !stderr.contains("panicked"),
        "{:?}\n{stderr}",
        output.status
    );
    let limit = LIMIT_KIB * 1024;

    // CSV, with the csv crate: every record whole.
    let csv_path = out.join("metrics.csv");
    assert!(std::fs::metadata(&csv_path).unwrap().len() <= limit);
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let step_col = headers.iter().position(|h| h == "step").unwrap();
    let steps: Vec<u64> = reader
        .records()
        .map(|r| {
            let r = r.expect("a whole CSV record");
            assert_eq!(r.len(), headers.len(), "a torn row: {r:?}");
            r[step_col].parse().expect("a step")
        })
        .collect();
    assert_prefix(&steps, "metrics.csv");
    assert!(steps.len() < 4000, "the limit was reached");

    // JSONL: every line is JSON.
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    let steps: Vec<u64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
            v["step"].as_u64().unwrap()
        })
        .collect();
    assert_prefix(&steps, "metrics.jsonl");

    let Some(python) = common::oracle_python("tensorboard") else {
        return;
    };
    // TensorBoard, with its own EventAccumulator: each scalar's steps once each, in order.
    let script = common::repo_root().join("tests/oracles/tb_read.py");
    let tb = Command::new(&python)
        .arg(&script)
        .arg(out.join("tensorboard"))
        .output()
        .unwrap();
    assert!(
        tb.status.success(),
        "{}",
        String::from_utf8_lossy(&tb.stderr)
    );
    let tb: serde_json::Value = serde_json::from_slice(&tb.stdout).unwrap();
    let m0: Vec<u64> = tb["scalars"]["m0"]
        .as_array()
        .expect("scalar m0")
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    assert_prefix(&m0, "tensorboard m0");
    for file in files_under(&out.join("tensorboard"), "") {
        assert!(std::fs::metadata(&file).unwrap().len() <= limit);
    }

    // W&B's `.wandb` log, with `wandb leet inspect`.
    let Some(python) = common::oracle_python("wandb") else {
        return;
    };
    let logs = files_under(&out.join("wandb"), ".wandb");
    assert_eq!(logs.len(), 1, "{logs:?}");
    let records = leet_records(&python, logs[0].parent().unwrap());
    let steps: Vec<u64> = records
        .iter()
        .filter(|r| r["type"] == "history")
        .map(|r| r["history"]["step"]["num"].as_u64().unwrap_or(0))
        .collect();
    assert_prefix(&steps, ".wandb history");
}
