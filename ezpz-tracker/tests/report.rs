//! The end-of-run report through a real tracker run, and `ezpz report` rebuilding it.
#![cfg(feature = "report")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ezpz_tracker::report::RunIdentity;
use ezpz_tracker::{LocalGroup, MemoryBackend, RankInfo, Tracker, TrackerBuilder, Value};

#[path = "support/png.rs"]
mod png;

const STEPS: u64 = 30;

/// One rank's training-like loop: its values are rank 0's plus 0.1 per rank (`train/lr`
/// and `train/iter` equal on every rank).
fn train_loop(tracker: &Tracker, rank: usize) {
    let shift = 0.1 * rank as f64;
    for step in 0..STEPS {
        let loss = 2.0 / (1.0 + step as f64);
        tracker.log(ezpz_tracker::metrics! {
            "train/iter" => step,
            "train/loss" => loss + shift,
            "train/acc" => 1.0 - loss / 4.0 + shift,
            "train/lr" => 1e-3,
        });
        if step % 10 == 9 {
            tracker.log_at(step, [("eval/loss", loss * 1.1 + shift)]);
        }
    }
    tracker.finish().unwrap();
}

/// Runs the loop into `<dir>/run` and returns the run dir and what the memory backend
/// received; with `ranks`, as that many in-process ranks (rank 0 writes).
fn run(dir: &Path, ranks: Option<usize>) -> (PathBuf, MemoryBackend) {
    let outdir = dir.join("run");
    let memory = MemoryBackend::new();
    let mut b = TrackerBuilder::new()
        .project("report-test")
        .run_name("report-run")
        .backends("csv,jsonl")
        .outdir(&outdir)
        .config(serde_json::json!({"lr": 1e-3, "device": "cpu", "model": {"depth": 2}}))
        .add_backend(memory.clone());
    let Some(n) = ranks else {
        train_loop(&b.build().unwrap(), 0);
        return (outdir, memory);
    };
    let mut group = LocalGroup::new(n).into_iter();
    b = b
        .rank_info(RankInfo::single().with_rank(0, n))
        .aggregator(group.next().unwrap());
    let others: Vec<_> = group
        .enumerate()
        .map(|(i, aggregator)| {
            let rank = i + 1;
            std::thread::spawn(move || {
                let tracker = TrackerBuilder::new()
                    .backends("csv")
                    .rank_info(RankInfo::single().with_rank(rank, n))
                    .aggregator(aggregator)
                    .build()
                    .unwrap();
                train_loop(&tracker, rank);
            })
        })
        .collect();
    train_loop(&b.build().unwrap(), 0);
    others.into_iter().for_each(|t| t.join().unwrap());
    (outdir, memory)
}

/// Every Markdown link or image target in `text` (not `<https://…>` autolinks).
fn link_targets(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            rest.find(')').map(|end| rest[..end].replace("%20", " "))
        })
        .collect()
}

/// Decodes a PNG and checks its size and that it is not blank.
fn check_png(path: &Path) {
    let img = png::open_luma(path);
    assert_eq!(img.dimensions(), (900, 500), "{}", path.display());
    let n = img.pixels().len() as f64;
    let mean = img.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / n;
    let var = img
        .pixels()
        .map(|p| (f64::from(p.0[0]) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(
        var > 100.0,
        "{} is (nearly) blank: variance {var}",
        path.display()
    );
}

fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in report:\n{text}"));
    let rest = &text[start + heading.len()..];
    let end = rest.find("\n## ").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

fn overview_row<'a>(report: &'a str, metric: &str) -> Vec<&'a str> {
    let needle = format!("| `{metric}`");
    let line = report
        .lines()
        .find(|l| l.starts_with(&needle))
        .unwrap_or_else(|| panic!("no overview row for {metric}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn report_without_aggregates_has_every_section_working_links_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let (outdir, memory) = run(dir.path(), None);
    let report = std::fs::read_to_string(outdir.join("report.md")).unwrap();

    assert!(report.starts_with("# Run report: report-run\n"), "{report}");
    for heading in [
        "## Backends",
        "## Configuration",
        "## Metric overview",
        "## train",
        "## eval",
    ] {
        assert!(
            report.contains(&format!("\n{heading}\n")),
            "missing {heading}:\n{report}"
        );
    }
    for row in [
        "| Project | report-test |",
        "| World size | 1 |",
        "| Device | cpu |",
        "| Records | 33 records, steps 0–29 |",
    ] {
        assert!(report.contains(row), "missing `{row}`:\n{report}");
    }
    for label in [
        "| Started | ",
        "| Ended | ",
        "| Duration | ",
        "| Command | ",
        "| Host | ",
    ] {
        assert!(report.contains(label), "missing `{label}`:\n{report}");
    }
    let backends = section(&report, "## Backends");
    assert!(
        backends.contains("- **csv**: [metrics.csv](metrics.csv)"),
        "{backends}"
    );
    assert!(
        backends.contains("- **jsonl**: [metrics.jsonl](metrics.jsonl)"),
        "{backends}"
    );
    assert!(backends.contains("- **memory**: attached"), "{backends}");
    let config = section(&report, "## Configuration");
    assert!(config.contains("\"depth\": 2"), "{config}");

    // The overview: last/min/max/mean of the values logged, no ±std without aggregates.
    let loss = overview_row(&report, "train/loss");
    assert_eq!(
        loss[1..],
        ["0.0666667", "0.0666667", "2", loss[4], "", "30"]
    );
    let mean: f64 = loss[4].parse().unwrap();
    let exact = (0..STEPS).map(|s| 2.0 / (1.0 + s as f64)).sum::<f64>() / STEPS as f64;
    assert!((mean - exact).abs() < 1e-5, "{mean} vs {exact}");
    assert_eq!(overview_row(&report, "train/iter")[1..4], ["29", "0", "29"]);
    assert_eq!(overview_row(&report, "eval/loss")[6], "3");

    // Links point at files that exist, plots included; the counter is not plotted.
    let targets = link_targets(&report);
    assert!(targets.len() >= 7, "{targets:?}");
    for t in &targets {
        assert!(outdir.join(t).is_file(), "broken link `{t}` in report");
    }
    let mut plots: Vec<String> = std::fs::read_dir(outdir.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    plots.sort();
    assert_eq!(
        plots,
        [
            "eval_loss.png",
            "overview.png",
            "train_acc.png",
            "train_loss.png",
            "train_lr.png"
        ]
    );
    // The overview comes first, right under the title.
    assert!(
        report.starts_with("# Run report: report-run\n\n![overview](plots/overview.png)\n"),
        "{report}"
    );
    for p in plots.iter().filter(|p| *p != "overview.png") {
        check_png(&outdir.join("plots").join(p));
        assert!(
            targets.contains(&format!("plots/{p}")),
            "{p} not in the report"
        );
    }
    assert!(section(&report, "## train").contains("Counters (not plotted): `train/iter`"));

    // run_info.json: the identity, every backend listed.
    let info = RunIdentity::load(&outdir.join("run_info.json")).unwrap();
    assert_eq!(info.project.as_deref(), Some("report-test"));
    assert_eq!(info.run_name.as_deref(), Some("report-run"));
    assert_eq!(info.world_size, Some(1));
    assert_eq!(info.device.as_deref(), Some("cpu"));
    let names: Vec<_> = info.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["csv", "jsonl", "memory"]);
    assert!(info.duration_s.unwrap() >= 0.0);

    // The history reached the backends as a table, the files as artifacts.
    let snap = memory.snapshot();
    let table = snap
        .tables
        .iter()
        .find(|t| t.key == "training_history")
        .unwrap();
    assert_eq!(
        table.columns,
        [
            "step",
            "train/iter",
            "train/loss",
            "train/acc",
            "train/lr",
            "eval/loss"
        ]
    );
    assert_eq!(table.rows.len(), 33);
    assert_eq!(table.rows[1][2], Value::F64(1.0));
    let labels: Vec<_> = snap.artifacts[0]
        .items
        .iter()
        .map(|(l, p)| (l.as_str(), p.exists()))
        .collect();
    assert_eq!(
        labels,
        [
            ("report", true),
            ("report_html", true),
            ("plots", true),
            ("run_info", true)
        ]
    );
    let csv_table = std::fs::read_to_string(outdir.join("training_history.csv")).unwrap();
    assert_eq!(csv_table.lines().count(), 34);
    // The report already lives in the run directory: the CSV backend does not copy it again.
    assert!(!outdir.join("artifacts/report").exists());
}

#[test]
fn report_with_aggregates_shows_cross_rank_spread() {
    let dir = tempfile::tempdir().unwrap();
    let (outdir, _) = run(dir.path(), Some(4));
    let report = std::fs::read_to_string(outdir.join("report.md")).unwrap();
    assert!(report.contains("| World size | 4 |"), "{report}");
    // Values r·0.1 apart over 4 ranks: population std √0.0125.
    let loss = overview_row(&report, "train/loss");
    assert_eq!(loss[5], "0.112");
    assert_eq!(loss[1], "0.0666667");
    // Aggregates fold into their metric: no plot or row of their own.
    assert!(!report.contains("| `train/loss/std`"));
    let plots = std::fs::read_dir(outdir.join("plots")).unwrap().count();
    assert_eq!(plots, 5, "four metrics and the overview");
    for t in link_targets(&report) {
        assert!(outdir.join(&t).is_file(), "broken link `{t}`");
    }
    let img = image::open(outdir.join("plots/train_loss.png"))
        .unwrap()
        .to_rgb8();
    check_png(&outdir.join("plots/train_loss.png"));
    let orange = img.pixels().filter(|p| p.0 == [230, 110, 0]).count();
    assert!(
        orange > 200,
        "the cross-rank mean line is missing ({orange} px)"
    );
}

fn ezpz(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ezpz"))
        .args(args)
        .output()
        .expect("run the ezpz binary")
}

#[test]
fn ezpz_report_reproduces_the_report_from_the_run_dir_and_from_the_jsonl_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (outdir, _) = run(dir.path(), Some(2));
    let original = std::fs::read_to_string(outdir.join("report.md")).unwrap();
    let plot = std::fs::read(outdir.join("plots/train_loss.png")).unwrap();

    // Same directory: report.md and plots/ gone, run_info.json kept → byte-identical.
    std::fs::remove_file(outdir.join("report.md")).unwrap();
    std::fs::remove_dir_all(outdir.join("plots")).unwrap();
    let out = ezpz(&["report".as_ref(), outdir.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 plots, 33 records"));
    assert_eq!(
        std::fs::read_to_string(outdir.join("report.md")).unwrap(),
        original
    );
    assert_eq!(
        std::fs::read(outdir.join("plots/train_loss.png")).unwrap(),
        plot
    );

    // The JSONL alone, in a fresh directory: every section, the same metrics and plots.
    let alone = dir.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(outdir.join("metrics.jsonl"), alone.join("metrics.jsonl")).unwrap();
    let out = ezpz(&["report".as_ref(), alone.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt = std::fs::read_to_string(alone.join("report.md")).unwrap();
    assert!(rebuilt.starts_with("# Run report: alone\n"));
    for heading in [
        "## Backends",
        "## Configuration",
        "## Metric overview",
        "## train",
        "## eval",
    ] {
        assert!(
            rebuilt.contains(&format!("\n{heading}\n")),
            "missing {heading}"
        );
    }
    assert_eq!(
        section(&rebuilt, "## Metric overview"),
        section(&original, "## Metric overview")
    );
    assert_eq!(
        section(&rebuilt, "## train"),
        section(&original, "## train")
    );
    assert_eq!(
        std::fs::read(alone.join("plots/train_loss.png")).unwrap(),
        plot
    );
    for t in link_targets(&rebuilt) {
        assert!(alone.join(&t).is_file(), "broken link `{t}`");
    }
    // The rank count shows in aggregates only, so a JSONL alone cannot tell it.
    let info = RunIdentity::load(&alone.join("run_info.json")).unwrap();
    assert!(info.started.is_some() && info.ended.is_some());
    assert_eq!(info.world_size, None);
}

#[test]
fn the_report_is_skipped_when_switched_off_or_without_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    for (name, backends, report) in [("off", "csv,jsonl", false), ("nojsonl", "csv", true)] {
        let outdir = dir.path().join(name);
        let tracker = TrackerBuilder::new()
            .backends(backends)
            .outdir(&outdir)
            .report(report)
            .build()
            .unwrap();
        tracker.log([("loss", 1.0)]);
        tracker.finish().unwrap();
        assert!(outdir.join("metrics.csv").is_file());
        assert!(!outdir.join("report.md").exists(), "{name}: report written");
        assert!(!outdir.join("plots").exists(), "{name}: plots written");
        assert!(
            !outdir.join("training_history.csv").exists(),
            "{name}: table logged"
        );
    }
}

#[test]
fn ezpz_cli_help_and_errors() {
    let help = ezpz(&["--help".as_ref()]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("report"), "{text}");

    let unknown = ezpz(&["frobnicate".as_ref()]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unrecognized subcommand 'frobnicate'")
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = ezpz(&["report".as_ref(), dir.path().as_os_str()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("metrics.jsonl"));

    let no_dir = ezpz(&["report".as_ref()]);
    assert_eq!(no_dir.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_dir.stderr).contains("<RUN>"));
}

/// Metric definitions reach the report: each defined metric's row names its unit and goal and
/// shows its best value in bold, and `run_info.json` keeps them, so `ezpz report` rebuilds
/// the same rows.
#[test]
fn defined_metrics_show_their_unit_goal_and_best_value() {
    use ezpz_tracker::{Goal, MetricDefinition};
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("run");
    let tracker = TrackerBuilder::new()
        .project("report-test")
        .backends("jsonl")
        .outdir(&outdir)
        .build()
        .unwrap();
    tracker.define_metric(MetricDefinition::new("valid/loss").unit("nats"));
    tracker.define_metric(
        MetricDefinition::new("valid/loss")
            .unit("nats")
            .goal(Goal::Minimize),
    );
    tracker.define_metric(
        MetricDefinition::new("valid/acc")
            .unit("%")
            .goal(Goal::Maximize),
    );
    for (loss, acc) in [(3.0, 10.0), (1.0, 50.0), (2.0, 40.0)] {
        tracker.log([("valid/loss", loss), ("valid/acc", acc), ("lr", 0.1)]);
    }
    // Dropping the last clone finishes the run, definitions included.
    drop(tracker);
    let check = |report: &str| {
        let loss = overview_row(report, "valid/loss");
        assert_eq!(loss[0], "`valid/loss` (nats, lower is better)", "{report}");
        assert_eq!(loss[1..4], ["2", "**1**", "3"], "{report}");
        let acc = overview_row(report, "valid/acc");
        assert_eq!(acc[0], "`valid/acc` (%, higher is better)", "{report}");
        assert_eq!(acc[1..4], ["40", "10", "**50**"], "{report}");
        assert_eq!(
            overview_row(report, "lr")[0..4],
            ["`lr`", "0.1", "0.1", "0.1"]
        );
    };
    check(&std::fs::read_to_string(outdir.join("report.md")).unwrap());
    let identity = RunIdentity::load(&outdir.join("run_info.json")).unwrap();
    assert_eq!(
        identity.definitions.len(),
        2,
        "the later definition replaced the first"
    );
    assert_eq!(identity.definitions[0].goal, Some(Goal::Minimize));
    std::fs::remove_file(outdir.join("report.md")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_ezpz"))
        .arg("report")
        .arg(&outdir)
        .status()
        .unwrap();
    assert!(status.success());
    check(&std::fs::read_to_string(outdir.join("report.md")).unwrap());
}
