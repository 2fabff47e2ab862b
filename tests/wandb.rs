//! The W&B backend against the real wandb 0.31.0 client: `wandb leet inspect` reads our
//! `.wandb` logs, `wandb sync` uploads them to a loopback capture server, and online mode
//! delivers the same rows to that server, through failures.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::wandb_capture::{leet_records, leet_summary, sync, CaptureServer, DUMMY_API_KEY};
use ezpz_tracker::{
    register_backend, HistogramBins, Tracker, TrackerBuilder, Value, WandbBackend, WandbOptions,
};
use serde_json::{json, Value as Json};

/// The quickstart's ten metrics.
const METRICS: [&str; 10] = [
    "train/loss",
    "train/acc",
    "train/lr",
    "train/dt",
    "train/dtf",
    "train/dtb",
    "eval/loss",
    "eval/acc",
    "epoch",
    "throughput",
];

fn metric(step: u64, i: usize) -> Value {
    if METRICS[i] == "epoch" {
        Value::I64((step / 5) as i64)
    } else {
        Value::F64((i as f64 + 1.0) / (step as f64 + 1.0) + 0.1 * i as f64)
    }
}

fn log_steps(t: &Tracker, steps: std::ops::Range<u64>, pause: Duration) {
    for s in steps {
        let row: Vec<(&str, Value)> = (0..METRICS.len())
            .map(|i| (METRICS[i], metric(s, i)))
            .collect();
        t.log_at(s, row);
        std::thread::sleep(pause);
    }
}

/// Asserts that a history row (an object keyed by metric name) holds step `step`'s values.
fn assert_row(row: &Json, step: u64) {
    for (i, key) in METRICS.iter().enumerate() {
        let want = metric(step, i).as_f64().unwrap();
        let got = row[*key]
            .as_f64()
            .unwrap_or_else(|| panic!("step {step}: no `{key}` in {row}"));
        assert_eq!(got, want, "step {step}, `{key}`");
    }
    assert_eq!(row["_step"].as_u64(), Some(step), "{row}");
    assert!(row["_timestamp"].as_f64().unwrap() > 1.6e9, "{row}");
    assert!(row["_runtime"].as_f64().unwrap() >= 0.0, "{row}");
}

/// JSON equality with numbers compared by value (`1` == `1.0`: Go and Rust spell floats
/// differently) and object keys in any order.
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

fn user_config() -> Json {
    json!({"lr": 0.001, "model": {"depth": 6, "dim": 128}, "name": "vit"})
}

/// A tracker whose only backend is W&B with `opts`, registered under a name unique to the test.
fn tracker(name: &str, dir: &Path, opts: WandbOptions) -> Tracker {
    // Warnings and retries show up in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("ezpz_tracker=debug")
        .with_test_writer()
        .try_init();
    let backend = format!("wandb-{name}");
    register_backend(&backend, move |ctx| {
        Ok(Box::new(WandbBackend::start(ctx, opts.clone())?))
    });
    TrackerBuilder::new()
        .project("ezpz-wandb-test")
        .backends(backend)
        .outdir(dir)
        .config(user_config())
        .build()
        .expect("tracker builds")
}

struct Finished {
    id: String,
    dir: PathBuf,
    command: Option<String>,
}

fn finish(t: &Tracker) -> Finished {
    let summary = t.finish().expect("finish");
    let info = summary.backends[0]
        .run_info
        .clone()
        .expect("wandb run info");
    Finished {
        id: info.id.expect("run id"),
        dir: info.path.expect("run dir"),
        command: info.command,
    }
}

fn offline() -> WandbOptions {
    WandbOptions::new().mode("offline")
}

fn online(server_url: &str) -> WandbOptions {
    WandbOptions::new()
        .mode("online")
        .base_url(server_url)
        .api_key(DUMMY_API_KEY)
        .finish_timeout(Duration::from_secs(20))
}

/// History records of a `leet inspect --json` dump, as `(step.num, item object)`.
fn leet_history(records: &[Json]) -> Vec<(u64, Json)> {
    records
        .iter()
        .filter(|r| r["type"] == "history")
        .map(|r| {
            let h = &r["history"];
            (h["step"]["num"].as_u64().unwrap_or(0), h["item"].clone())
        })
        .collect()
}

#[test]
fn offline_run_is_read_back_by_wandb_leet_inspect() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = tracker("leet", dir.path(), offline());
    log_steps(&t, 0..25, Duration::ZERO);
    // A step that goes backwards: kept, at the next `_step`, with the caller's step.
    t.log_at(3, [("late", 1.5)]);
    t.log_config(json!({"late_param": "x"}));
    let run = finish(&t);
    let name = run.dir.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("offline-run-") && name.ends_with(&run.id),
        "{name}"
    );
    assert!(run.dir.join(format!("run-{}.wandb", run.id)).is_file());
    assert_eq!(
        run.command,
        Some(format!("wandb sync {}", run.dir.display()))
    );

    let records = leet_records(&py, &run.dir);
    assert_eq!(records[0]["type"], "run", "the run record comes first");
    let history = leet_history(&records);
    assert_eq!(history.len(), 26);
    for (s, (num, item)) in history.iter().take(25).enumerate() {
        assert_eq!(*num, s as u64);
        assert_row(item, s as u64);
    }
    let (num, late) = &history[25];
    assert_eq!(
        (*num, late["_step"].as_u64(), late["step"].as_u64()),
        (25, Some(25), Some(3))
    );
    assert_eq!(late["late"], 1.5);

    let summary = leet_summary(&py, &run.dir);
    assert_eq!(summary["state"], "finished", "{summary}");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["run_id"], run.id);
    assert_eq!(summary["project"], "ezpz-wandb-test");
    assert_eq!(summary["config"]["lr"], 0.001);
    assert_eq!(summary["config"]["model"]["depth"], 6);
    assert_eq!(summary["config"]["late_param"], "x");
    assert!(
        summary["config"]["hostname"].is_string(),
        "{}",
        summary["config"]
    );
    assert_eq!(summary["config"]["world_size"], 1);
    assert_eq!(
        summary["summary"]["train/loss"].as_f64(),
        metric(24, 0).as_f64()
    );
    assert_eq!(summary["summary"]["late"], 1.5);
    assert_eq!(summary["summary"]["_step"], 25);
}

#[test]
fn offline_run_uploads_every_history_line_with_wandb_sync() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = tracker("sync", dir.path(), offline());
    let artifact = dir.path().join("model.bin");
    std::fs::write(&artifact, b"weights").unwrap();
    log_steps(&t, 0..10, Duration::ZERO);
    // Media logged before step 10 belongs to row 10.
    t.log_table(
        "preds",
        ["id", "label"],
        vec![
            vec![Value::I64(0), "cat".into()],
            vec![Value::I64(1), "dog".into()],
        ],
    );
    t.log_image(
        "samples",
        image::RgbImage::from_pixel(5, 4, image::Rgb([200, 10, 10])),
        Some("red"),
    );
    t.log_histogram("weights", vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    // Bins made elsewhere (a GPU): W&B gets exactly them.
    let device_counts: Vec<u64> = (0..64).map(|i| i % 5).collect();
    t.log_histogram_bins(
        "device_weights",
        HistogramBins {
            min: -1.0,
            max: 3.0,
            counts: device_counts.clone(),
            sum: 0.0,
            sum_squares: 0.0,
            nonfinite: 3,
        },
    );
    t.log_artifacts([("model", &artifact)]);
    log_steps(&t, 10..25, Duration::ZERO);
    let run = finish(&t);

    let server = CaptureServer::start(&py, &[]);
    sync(&py, &server, &run.dir, &[]);
    let got = server.run(&run.id);
    let lines = got["history"].as_array().unwrap();
    assert_eq!(lines.len(), 25, "{lines:?}");
    for (s, line) in lines.iter().enumerate() {
        assert_row(line, s as u64);
    }
    let row10 = &lines[10];
    assert_eq!(row10["preds"]["_type"], "table-file");
    assert_eq!(row10["preds"]["nrows"], 2);
    assert_eq!(row10["samples"]["_type"], "image-file");
    assert_eq!(
        (
            row10["samples"]["width"].as_u64(),
            row10["samples"]["height"].as_u64()
        ),
        (Some(5), Some(4))
    );
    assert_eq!(row10["samples"]["caption"], "red");
    assert_eq!(row10["weights"]["_type"], "histogram");
    assert_eq!(row10["weights"]["values"].as_array().unwrap().len(), 64);
    let device = &row10["device_weights"];
    assert_eq!(device["_type"], "histogram", "{row10}");
    assert_eq!(device["values"], json!(device_counts));
    let edges: Vec<f64> = (0..=64).map(|i| -1.0 + 0.0625 * i as f64).collect();
    let got_edges: Vec<f64> = serde_json::from_value(device["bins"].clone()).unwrap();
    assert_eq!(got_edges, edges);
    // The media files themselves were uploaded, byte for byte.
    let files = &got["files"];
    for obj in [&row10["preds"], &row10["samples"]] {
        let path = obj["path"].as_str().unwrap();
        assert_eq!(files[path]["sha256"], obj["sha256"], "{path} in {files}");
    }
    assert_eq!(files["artifacts/model/model.bin"]["size"], 7, "{files}");

    assert_eq!(got["complete"], true);
    assert_eq!(got["exitcode"], 0);
    assert_eq!(got["project"], "ezpz-wandb-test");
    assert_eq!(got["config"]["lr"]["value"], 0.001);
    assert_eq!(got["config"]["model"]["value"]["dim"], 128);
    assert!(got["config"]["ezpz_version"]["value"].is_string());
    let summary = &got["summary"];
    for (i, key) in METRICS.iter().enumerate() {
        assert_eq!(
            summary[*key].as_f64(),
            metric(24, i).as_f64(),
            "summary `{key}`: {summary}"
        );
    }
    assert_eq!(summary["_step"], 24);
}

#[test]
fn records_crossing_32k_blocks_read_and_sync_intact() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = tracker("blocks", dir.path(), offline());
    let big: Vec<String> = (0..3).map(|i| format!("{i}").repeat(40_000)).collect();
    for (s, text) in big.iter().enumerate() {
        t.log_at(
            s as u64,
            [
                ("loss", Value::F64(s as f64)),
                ("blob", Value::from(text.as_str())),
            ],
        );
    }
    // Non-finite values travel as W&B's own JSON spells them.
    t.log_at(
        3,
        [("loss", 3.0), ("nan", f64::NAN), ("inf", f64::NEG_INFINITY)],
    );
    let run = finish(&t);
    let log = run.dir.join(format!("run-{}.wandb", run.id));
    assert!(std::fs::metadata(&log).unwrap().len() > 3 * 32 * 1024);

    let history = leet_history(&leet_records(&py, &run.dir));
    assert_eq!(history.len(), 4);
    for (s, text) in big.iter().enumerate() {
        assert_eq!(
            history[s].1["blob"].as_str(),
            Some(text.as_str()),
            "row {s}"
        );
    }
    let server = CaptureServer::start(&py, &[]);
    sync(&py, &server, &run.dir, &[]);
    let lines = server.run(&run.id)["history"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 4);
    for (s, text) in big.iter().enumerate() {
        assert_eq!(lines[s]["blob"].as_str(), Some(text.as_str()), "line {s}");
        assert_eq!(lines[s]["loss"].as_f64(), Some(s as f64));
    }
    assert_eq!(lines[3]["loss"], 3.0);
    assert_eq!(
        (lines[3]["nan"].as_str(), lines[3]["inf"].as_str()),
        (Some("NaN"), Some("-Infinity")),
        "{}",
        lines[3]
    );
}

#[test]
fn online_run_delivers_what_wandb_sync_of_its_own_log_delivers() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let live = CaptureServer::start(&py, &[]);
    let t = tracker("online", dir.path(), online(&live.url));
    log_steps(&t, 0..12, Duration::from_millis(150));
    t.log_table("preds", ["id"], vec![vec![Value::I64(7)]]);
    log_steps(&t, 12..25, Duration::ZERO);
    let run = finish(&t);
    assert_eq!(run.command, None, "a completed online run needs no sync");
    let name = run.dir.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("run-") && name.ends_with(&run.id),
        "{name}"
    );

    let got = live.run(&run.id);
    assert_eq!(got["complete"], true);
    assert_eq!(got["exitcode"], 0);
    let lines = got["history"].as_array().unwrap();
    assert_eq!(lines.len(), 25);
    for (s, line) in lines.iter().enumerate() {
        assert_row(line, s as u64);
    }
    let table = lines[12]["preds"]["path"].as_str().unwrap();
    assert!(
        got["files"][table]["size"].as_u64().unwrap() > 0,
        "{}",
        got["files"]
    );
    assert!(got["uploaded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == table));
    let requests = live.state()["requests"].clone();
    assert!(
        requests.as_array().unwrap().iter().all(|r| r["auth"]
            == "Basic YXBpOmFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="
            || r["kind"] == "upload"),
        "every API request carries Basic api:<key>"
    );

    // The same run's local log, synced by the real client, gives the same rows and summary.
    let replay = CaptureServer::start(&py, &[]);
    sync(&py, &replay, &run.dir, &["--include-online"]);
    let synced = replay.run(&run.id);
    let (a, b) = (synced["history"].as_array().unwrap(), lines);
    assert_eq!(a.len(), b.len());
    for (s, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(same(x, y), "line {s}: sync gave {x}, online gave {y}");
    }
    for key in METRICS.iter().chain(["_step", "preds", "_wandb"].iter()) {
        let (x, y) = (&synced["summary"][*key], &got["summary"][*key]);
        assert!(
            !x.is_null() && same(x, y),
            "summary `{key}`: sync {x}, online {y}"
        );
    }
    assert_eq!(synced["config"]["lr"], got["config"]["lr"]);
}

#[test]
fn a_server_failing_for_a_while_loses_nothing() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fails = [
        "graphql:503:2",
        "file_stream:drop:2",
        "file_stream:500:1",
        "file_stream:429:1",
        "upload:502:1",
    ];
    let server = CaptureServer::start(&py, &fails);
    let t = tracker(
        "flaky",
        dir.path(),
        online(&server.url).finish_timeout(Duration::from_secs(25)),
    );
    log_steps(&t, 0..20, Duration::from_millis(100));
    t.log_image(
        "samples",
        image::RgbImage::from_pixel(2, 2, image::Rgb([0, 0, 255])),
        None,
    );
    log_steps(&t, 20..40, Duration::from_millis(50));
    let run = finish(&t);
    let state = server.state();
    let injected = state["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["injected"].is_null())
        .count();
    assert_eq!(injected, 7, "every injected failure was hit");
    let got = server.run(&run.id);
    let lines = got["history"].as_array().unwrap();
    assert_eq!(lines.len(), 40);
    for (s, line) in lines.iter().enumerate() {
        assert_row(line, s as u64);
    }
    let image = lines[20]["samples"]["path"].as_str().unwrap();
    assert!(
        got["files"][image].is_object(),
        "image uploaded after its failure"
    );
    assert_eq!(got["complete"], true);
    assert_eq!(run.command, None);
}

#[test]
fn a_lost_server_leaves_a_log_that_wandb_sync_completes() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let t = tracker(
        "lost",
        dir.path(),
        online(&dead).finish_timeout(Duration::from_secs(2)),
    );
    log_steps(&t, 0..15, Duration::ZERO);
    let run = finish(&t);
    let command = run.command.expect("the sync command is offered");
    assert!(
        command.starts_with("wandb sync") && command.ends_with(&run.dir.display().to_string()),
        "{command}"
    );

    let server = CaptureServer::start(&py, &[]);
    sync(&py, &server, &run.dir, &["--include-online"]);
    let got = server.run(&run.id);
    let lines = got["history"].as_array().unwrap();
    assert_eq!(lines.len(), 15);
    for (s, line) in lines.iter().enumerate() {
        assert_row(line, s as u64);
    }
    assert_eq!(got["complete"], true);
}

#[test]
fn a_resumed_run_continues_after_the_servers_history() {
    let Some(py) = common::oracle_python("json") else {
        return;
    };
    let server = CaptureServer::start(&py, &[]);
    let first = tempfile::tempdir().unwrap();
    let t = tracker(
        "resume-a",
        first.path(),
        online(&server.url).run_id("resume01"),
    );
    log_steps(&t, 0..5, Duration::ZERO);
    finish(&t);
    let second = tempfile::tempdir().unwrap();
    let t = tracker(
        "resume-b",
        second.path(),
        online(&server.url).run_id("resume01"),
    );
    log_steps(&t, 0..3, Duration::ZERO);
    finish(&t);
    let lines = server.run("resume01")["history"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(lines.len(), 8, "{lines:?}");
    for (i, line) in lines.iter().enumerate().skip(5) {
        assert_eq!(line["_step"].as_u64(), Some(i as u64));
        assert_eq!(
            line["step"].as_u64(),
            Some(i as u64 - 5),
            "the caller's step is kept"
        );
        assert_eq!(
            line["train/loss"].as_f64(),
            metric(i as u64 - 5, 0).as_f64()
        );
    }
}

#[test]
fn an_invalid_mode_is_one_error_and_other_backends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    register_backend("wandb-bogus", |ctx| {
        Ok(Box::new(WandbBackend::start(
            ctx,
            WandbOptions::new().mode("onlin"),
        )?))
    });
    let err = TrackerBuilder::new()
        .backends("jsonl,wandb-bogus")
        .outdir(dir.path())
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`onlin`") && err.contains("expected `online`, `offline`"),
        "{err}"
    );
    let t = TrackerBuilder::new()
        .backends("jsonl,wandb-bogus")
        .outdir(dir.path())
        .build_lossy();
    assert_eq!(t.backend_names(), ["jsonl"]);
    t.log([("loss", 1.0)]);
    t.finish().unwrap();
    assert!(std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .unwrap()
        .contains("\"loss\""));
    assert!(!dir.path().join("wandb").exists());
}

#[test]
fn disabled_mode_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = tracker("disabled", dir.path(), WandbOptions::new().mode("disabled"));
    t.log([("loss", 1.0)]);
    let summary = t.finish().unwrap();
    assert_eq!(summary.backends[0].run_info, None);
    assert!(!dir.path().join("wandb").exists());
}

/// Runs the quickstart example with `envs` (backends: W&B only unless `envs` says otherwise),
/// returning its stderr.
fn run_quickstart(outdir: &Path, steps: u64, envs: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(common::examples::example_binary("quickstart"));
    cmd.args(["--steps", &steps.to_string(), "--outdir"])
        .arg(outdir)
        .env("EZPZ_TRACKER_BACKENDS", "wandb");
    for var in ezpz_tracker::env::RANK_VARS.iter().chain(&[
        "WANDB_API_KEY",
        "WANDB_DISABLED",
        "WANDB_RUN_ID",
        "WANDB_BASE_URL",
        "WANDB_MODE",
    ]) {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// The quickstart's rows `0..steps` carry its ten scalars exactly; the last row holds its
/// table, image and histogram.
fn assert_quickstart_rows(rows: &[Json], steps: u64) {
    assert_eq!(
        rows.len() as u64,
        steps + 1,
        "every step, then the media row"
    );
    for (step, row) in rows.iter().take(steps as usize).enumerate() {
        for (key, want) in common::quickstart_scalars(step as u64) {
            assert_eq!(
                row[key].as_f64(),
                Some(want),
                "`{key}` at step {step}: {row}"
            );
        }
        assert_eq!(row["_step"].as_u64(), Some(step as u64));
    }
    let media = &rows[steps as usize];
    assert_eq!(media["predictions"]["_type"], "table-file", "{media}");
    assert_eq!(media["samples"]["_type"], "image-file");
    assert_eq!(media["weights"]["_type"], "histogram");
}

/// The definition of done: the quickstart with `WANDB_MODE=offline` writes a run
/// that `wandb leet inspect` and `wandb sync` accept with all N steps of all ten metrics, and
/// online mode delivers the same to the capture server.
#[test]
fn quickstart_offline_and_online_deliver_every_step_of_its_ten_metrics() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let n = 300;
    let dir = tempfile::tempdir().unwrap();
    let stderr = run_quickstart(&dir.path().join("off"), n, &[("WANDB_MODE", "offline")]);
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("off/wandb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run_dir = &runs[0];
    assert!(
        stderr.contains(&format!("wandb sync {}", run_dir.display())),
        "the sync command is printed: {stderr}"
    );
    let records = leet_records(&py, run_dir);
    let rows: Vec<Json> = leet_history(&records)
        .into_iter()
        .map(|(_, item)| item)
        .collect();
    assert_quickstart_rows(&rows, n);
    let summary = leet_summary(&py, run_dir);
    assert_eq!(
        (summary["state"].as_str(), summary["exit_code"].as_i64()),
        (Some("finished"), Some(0))
    );
    assert_eq!(summary["config"]["optimizer"]["name"], "adamw");
    let id = summary["run_id"].as_str().unwrap().to_string();

    let server = CaptureServer::start(&py, &[]);
    sync(&py, &server, run_dir, &[]);
    let synced = server.run(&id);
    assert_quickstart_rows(synced["history"].as_array().unwrap(), n);
    assert_eq!(synced["complete"], true);

    let live = CaptureServer::start(&py, &[]);
    run_quickstart(
        &dir.path().join("on"),
        n,
        &[
            ("WANDB_MODE", "online"),
            ("WANDB_BASE_URL", &live.url),
            ("WANDB_API_KEY", DUMMY_API_KEY),
        ],
    );
    let runs = live.state()["runs"].as_object().unwrap().clone();
    assert_eq!(runs.len(), 1);
    let online_id = runs.keys().next().unwrap().clone();
    let online = live.run(&online_id);
    assert_quickstart_rows(online["history"].as_array().unwrap(), n);
    assert_eq!(
        (online["complete"].as_bool(), online["exitcode"].as_i64()),
        (Some(true), Some(0))
    );
    for (key, want) in common::quickstart_scalars(n - 1) {
        assert_eq!(
            online["summary"][key].as_f64(),
            Some(want),
            "summary `{key}`"
        );
        assert_eq!(
            synced["summary"][key].as_f64(),
            Some(want),
            "synced summary `{key}`"
        );
    }
    assert!(
        online["files"]["artifacts/notes/notes.txt"].is_object(),
        "{}",
        online["files"]
    );
}

#[test]
fn online_without_an_api_key_warns_once_and_the_other_backends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let outdir = dir.path().join("q");
    let home = home.to_string_lossy().to_string();
    let stderr = run_quickstart(
        &outdir,
        5,
        &[("EZPZ_TRACKER_BACKENDS", "csv,wandb"), ("HOME", &home)],
    );
    assert_eq!(
        stderr.matches("W&B is not logged in").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("WANDB_API_KEY") && stderr.contains("WANDB_MODE=offline"),
        "the warning says how to log in or go offline: {stderr}"
    );
    let csv = std::fs::read_to_string(outdir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "csv got every step");
    assert!(!outdir.join("wandb").exists());
}

/// The run directory under `dir/wandb/` (online runs are `run-<stamp>-<id>`).
fn only_run_dir(dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("wandb"))
        .expect("wandb/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// A W&B server that accepts every connection and never answers: the local `.wandb` log
/// still gets every row while training goes on and at `finish` (which returns in time), and
/// `wandb sync` of that log uploads every row once a server answers.
#[test]
fn a_hung_server_never_holds_up_the_local_log() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hung = CaptureServer::start(&py, &["any:hang:1000000"]);
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    register_backend("wandb-hung", {
        let opts = online(&hung.url).finish_timeout(Duration::from_secs(2));
        move |ctx| Ok(Box::new(WandbBackend::start(ctx, opts.clone())?))
    });
    let t = TrackerBuilder::new()
        .project("ezpz-wandb-test")
        .backends("wandb-hung")
        .outdir(dir.path())
        .finish_timeout(Duration::from_secs(5))
        .build()
        .expect("tracker builds");
    log_steps(&t, 0..300, Duration::ZERO);
    t.flush()
        .expect("flush: the log does not wait for the server");
    let run_dir = only_run_dir(dir.path());
    let summary = t.finish().expect("finish in time");
    let info = summary.backends[0].run_info.clone().expect("run info");
    let command = info.command.expect("the sync command is offered");
    assert!(command.starts_with("wandb sync"), "{command}");

    let records = leet_records(&py, &run_dir);
    let history = leet_history(&records);
    assert_eq!(history.len(), 300, "every row is in the log");
    for (s, (num, item)) in history.iter().enumerate() {
        assert_eq!(*num, s as u64);
        assert_row(item, s as u64);
    }
    let good = CaptureServer::start(&py, &[]);
    sync(&py, &good, &run_dir, &["--include-online"]);
    let id = info.id.expect("run id");
    let lines = good.run(&id)["history"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 300);
    for (s, line) in lines.iter().enumerate() {
        assert_row(line, s as u64);
    }
}

/// 503 with `Retry-After: 1e20`: no panic (which used to switch off the whole backend, its
/// log included); the run is delivered and the log complete.
#[test]
fn an_absurd_retry_after_is_capped_not_fatal() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = CaptureServer::start(&py, &["any:absurd:3"]);
    let t = tracker(
        "absurd",
        dir.path(),
        online(&server.url).finish_timeout(Duration::from_secs(20)),
    );
    log_steps(&t, 0..20, Duration::ZERO);
    let run = finish(&t);
    let history = leet_history(&leet_records(&py, &run.dir));
    assert_eq!(history.len(), 20);
    let state = server.state();
    let injected = state["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["injected"] == "absurd")
        .count();
    assert_eq!(injected, 3);
    let got = server.run(&run.id);
    assert_eq!(got["history"].as_array().unwrap().len(), 20);
    assert_eq!(got["complete"], true);
}

/// Logs `valid/loss` (lower is better) and `valid/acc` (higher is better), defined first.
fn log_defined_metrics(t: &Tracker, pause: Duration) {
    use ezpz_tracker::{Goal, MetricDefinition};
    t.define_metric(
        MetricDefinition::new("valid/loss")
            .unit("nats")
            .goal(Goal::Minimize),
    );
    t.define_metric(MetricDefinition::new("valid/acc").goal(Goal::Maximize));
    // Units alone mean nothing to W&B.
    t.define_metric(MetricDefinition::new("train/dt").unit("s"));
    for (s, (loss, acc)) in [(3.0, 0.25), (1.0, 0.75), (2.0, 0.5)]
        .into_iter()
        .enumerate()
    {
        t.log_at(
            s as u64,
            [("valid/loss", loss), ("valid/acc", acc), ("train/dt", 0.1)],
        );
        std::thread::sleep(pause);
    }
}

/// The summary W&B keeps of the two defined metrics: last and best.
fn assert_best_summaries(summary: &Json, what: &str) {
    assert!(
        same(&summary["valid/loss"], &json!({"last": 2.0, "min": 1.0})),
        "{what}: {summary}"
    );
    assert!(
        same(&summary["valid/acc"], &json!({"last": 0.5, "max": 0.75})),
        "{what}: {summary}"
    );
    assert!(same(&summary["train/dt"], &json!(0.1)), "{what}: {summary}");
}

/// `_wandb.m` of a configuration as the capture server stored it, by metric name (the real
/// client lists them in no fixed order).
fn defined_in_config(config: &Json) -> Vec<Json> {
    let mut m = config["_wandb"]["value"]["m"]
        .as_array()
        .unwrap_or_else(|| panic!("no _wandb.m in {config}"))
        .clone();
    m.sort_by_key(|d| d["1"].as_str().unwrap_or_default().to_string());
    m
}

#[test]
fn metric_definitions_become_best_value_summaries_offline_synced_and_online() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    // Offline: the real reader sees the definitions and the summaries.
    let dir = tempfile::tempdir().unwrap();
    let t = tracker("define-offline", dir.path(), offline());
    log_defined_metrics(&t, Duration::ZERO);
    let run = finish(&t);
    let records = leet_records(&py, &run.dir);
    let metrics: Vec<&Json> = records
        .iter()
        .filter(|r| r["type"] == "metric")
        .map(|r| &r["metric"])
        .collect();
    assert_eq!(metrics.len(), 2, "{records:?}");
    assert_eq!(metrics[0]["name"], "valid/loss");
    assert_eq!(metrics[0]["summary"]["min"], true, "{}", metrics[0]);
    assert_eq!(metrics[0]["summary"]["last"], true, "{}", metrics[0]);
    assert_eq!(metrics[1]["summary"]["max"], true, "{}", metrics[1]);
    let summary = leet_summary(&py, &run.dir);
    assert_eq!(summary["state"], "finished", "{summary}");
    assert_best_summaries(&summary["summary"], "leet inspect");

    // `wandb sync` of that log: what W&B's own client uploads for it.
    let replay = CaptureServer::start(&py, &[]);
    sync(&py, &replay, &run.dir, &[]);
    let synced = replay.run(&run.id);
    assert_best_summaries(&synced["summary"], "synced");
    let synced_m = defined_in_config(&synced["config"]);
    // Keyed by `MetricRecord` field numbers: 1 name, 6 options (3: defined), 7 summary
    // (1 min, 2 max, 5 last), 8 goal (1 minimize, 2 maximize).
    let expected = [
        json!({"1": "valid/acc", "6": [3], "7": [2, 5], "8": 2}),
        json!({"1": "valid/loss", "6": [3], "7": [1, 5], "8": 1}),
    ];
    assert_eq!(synced_m, expected);

    // Online: the same summaries and definitions in the stream.
    let dir = tempfile::tempdir().unwrap();
    let live = CaptureServer::start(&py, &[]);
    let t = tracker("define-online", dir.path(), online(&live.url));
    log_defined_metrics(&t, Duration::from_millis(50));
    let run = finish(&t);
    let got = live.run(&run.id);
    assert_eq!(got["complete"], true);
    assert_best_summaries(&got["summary"], "online");
    assert_eq!(defined_in_config(&got["config"]), synced_m);
    assert_eq!(
        got["config"]["lr"]["value"], 0.001,
        "the user's config stays"
    );
}
