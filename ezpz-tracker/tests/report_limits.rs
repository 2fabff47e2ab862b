//! The report at the limits of `f64`: every value a user can log goes through `finish` with
//! the report on, and `finish` returns with a readable picture; the report deletes only
//! files it wrote.
#![cfg(feature = "report")]

use ezpz_tracker::TrackerBuilder;

#[path = "support/png.rs"]
mod png;

use png::assert_drawn;

#[test]
fn values_at_the_limits_of_f64_go_through_finish_with_the_report_on() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("run");
    let tracker = TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(&outdir)
        .build()
        .unwrap();
    for step in 0..200u64 {
        let alt = if step % 2 == 0 { f64::MAX } else { -f64::MAX };
        tracker.log_at(
            step,
            [
                ("max", f64::MAX),
                ("neg_max", -f64::MAX),
                ("alternating", alt),
                ("big", 1e308),
                ("subnormal", f64::MIN_POSITIVE / 1e10 * (1.0 + step as f64)),
                ("nan_only", f64::NAN),
                ("near_one", 1.0 + step as f64 * f64::EPSILON),
                ("wide", 10f64.powi((step % 40) as i32 - 20)),
            ],
        );
        if step == 100 {
            tracker.log_at(step, [("one_point", 3.5)]);
        }
    }
    tracker.finish().unwrap();
    let report = std::fs::read_to_string(outdir.join("report.md")).unwrap();
    for name in [
        "max",
        "neg_max",
        "alternating",
        "big",
        "subnormal",
        "near_one",
        "wide",
        "one_point",
    ] {
        let png = outdir.join("plots").join(format!("{name}.png"));
        assert!(png.is_file(), "no plot for {name}:\n{report}");
        assert_drawn(&png);
    }
    // A series with no finite value is still shown, its points marked as non-finite.
    let nan = outdir.join("plots/nan_only.png");
    assert!(nan.is_file(), "{report}");
    let img = image::open(&nan).unwrap().to_rgb8();
    let marks = img.pixels().filter(|p| p.0 == [214, 39, 40]).count();
    assert!(marks > 50, "no non-finite markers ({marks} px)");
}

#[test]
fn the_report_deletes_only_files_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("run");
    std::fs::create_dir_all(outdir.join("plots")).unwrap();
    // A picture the user keeps beside the run's plots.
    std::fs::write(outdir.join("plots/mine.png"), b"not ours").unwrap();
    let tracker = TrackerBuilder::new()
        .backends("jsonl")
        .outdir(&outdir)
        .build()
        .unwrap();
    for step in 0..10u64 {
        tracker.log_at(step, [("loss", 1.0 / (1.0 + step as f64)), ("gone", 1.0)]);
    }
    tracker.finish().unwrap();
    assert!(outdir.join("plots/loss.png").is_file());
    assert!(outdir.join("plots/gone.png").is_file());
    assert_eq!(
        std::fs::read(outdir.join("plots/mine.png")).unwrap(),
        b"not ours"
    );

    // Rebuilt from a JSONL that lost `gone`: the report's own stale plot goes, the user's
    // file stays.
    let jsonl = std::fs::read_to_string(outdir.join("metrics.jsonl")).unwrap();
    let kept: String = jsonl
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["metrics"].as_object_mut().unwrap().remove("gone");
            format!("{v}\n")
        })
        .collect();
    std::fs::write(outdir.join("metrics.jsonl"), kept).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ezpz"))
        .arg("report")
        .arg(&outdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(outdir.join("plots/loss.png").is_file());
    assert!(!outdir.join("plots/gone.png").exists(), "stale plot kept");
    assert_eq!(
        std::fs::read(outdir.join("plots/mine.png")).unwrap(),
        b"not ours"
    );
}
