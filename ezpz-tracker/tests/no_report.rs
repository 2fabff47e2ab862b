//! Built without the `report` feature: a run still records how it ended (`run_info.json`,
//! `report.json`, which `ezpz ls` reads) and its `training_history` table; asking for the
//! report gives one warning saying what is not written. The tracker runs in a child process
//! (this test binary again), whose stderr is what a user would read.
#![cfg(not(feature = "report"))]

use std::path::Path;
use std::process::Command;

use ezpz_tracker::TrackerBuilder;

const CHILD: &str = "EZPZ_NO_REPORT_CHILD";

/// Two runs into `dir/a` and `dir/b` asking for the report, one into `dir/c` that does not.
fn child_body(dir: &Path) {
    for (name, ask) in [("a", true), ("b", true), ("c", false)] {
        let mut builder = TrackerBuilder::new()
            .project("no-report")
            .backends("jsonl,csv")
            .outdir(dir.join(name));
        if ask {
            builder = builder.report(true);
        }
        let tracker = builder.build().unwrap();
        for step in 0..5u64 {
            tracker.log_at(step, [("train/loss", 1.0 / (step as f64 + 1.0))]);
        }
        tracker.finish().unwrap();
    }
}

#[test]
fn without_the_report_feature_a_run_keeps_its_record_and_one_warning_says_why() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child_body(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_the_report_feature_a_run_keeps_its_record_and_one_warning_says_why",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("`report` feature"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("report.md"), "{}", warnings[0]);

    for name in ["a", "c"] {
        let run = dir.path().join(name);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
        assert_eq!(manifest["status"], "finished", "{manifest}");
        assert_eq!(manifest["files"], serde_json::json!([]));
        assert!(run.join("run_info.json").is_file());
        assert!(run.join("training_history.csv").is_file());
        assert!(!run.join("report.md").exists());
        assert!(!run.join("report.html").exists());
        assert!(!run.join("plots").exists());
    }
}
