//! The quickstart example as a user runs it: files, exact values, ranks.

mod common;

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(common::examples::example_binary("quickstart"));
    cmd.args(args).env_remove("EZPZ_TRACKER_BACKENDS");
    for var in ezpz_tracker::env::RANK_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run quickstart");
    assert!(
        out.status.success(),
        "quickstart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn quickstart_writes_every_step_exactly_and_the_extras() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let n = 2000u64;
    let out = run(
        &[
            "--steps",
            &n.to_string(),
            "--outdir",
            out_dir.to_str().unwrap(),
            "--backends",
            "csv,jsonl",
        ],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        out_dir.display().to_string()
    );

    let mut reader = csv::Reader::from_path(out_dir.join("metrics.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.len(), 11);
    assert_eq!(&header[..3], ["step", "train/loss", "train/acc"]);
    let mut count = 0u64;
    for (i, row) in reader.records().enumerate() {
        let row = row.unwrap();
        let step: u64 = row[0].parse().unwrap();
        assert_eq!(step, i as u64);
        let loss: f64 = row[1].parse().unwrap();
        assert_eq!(loss, 1.0 / (1.0 + step as f64), "exact loss at step {step}");
        let step_sq: f64 = row[4].parse().unwrap();
        assert_eq!(step_sq, (step * step) as f64);
        count += 1;
    }
    assert_eq!(count, n);

    let jsonl = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count() as u64, n);
    let last: serde_json::Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"], n - 1);
    assert_eq!(last["metrics"]["train/lr"], 0.001);

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["optimizer"]["name"], "adamw");
    let predictions = std::fs::read_to_string(out_dir.join("predictions.csv")).unwrap();
    assert_eq!(predictions.lines().count(), 4);
    let png = out_dir.join(format!("media/samples_{n}.png"));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (32, 24));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("artifacts/notes/notes.txt")).unwrap(),
        "quickstart artifact\n"
    );
}

#[test]
fn quickstart_on_rank_one_creates_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = run(
        &["--steps", "50", "--outdir", out_dir.to_str().unwrap()],
        &[("RANK", "1"), ("WORLD_SIZE", "2")],
    );
    assert!(!out_dir.exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no local output"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
