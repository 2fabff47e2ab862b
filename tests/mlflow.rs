//! The MLflow backend against a real MLflow 3.17.2 server: everything logged is read back
//! through the server (REST, and MLflow's own Python client) — metric histories point by
//! point, params, tags, artifact bytes, status, the run URL — plus the warnings a user sees
//! for input MLflow cannot take.
//!
//! One server serves every test of this file (a server takes 15–25 s to start).

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use common::fault_proxy::{FaultProxy, Mode};
use common::mlflow_rest::{assert_exactly_once, Rest};
use common::mlflow_server::MlflowServer;
use common::tracker_child::{child_value, TrackerChild};
use common::warnings;
use ezpz_tracker::{
    metrics, register_backend, MlflowBackend, MlflowOptions, RunStatus, Tracker, TrackerBuilder,
};
use serde_json::json;

fn server() -> Option<&'static MlflowServer> {
    static SERVER: OnceLock<Option<MlflowServer>> = OnceLock::new();
    SERVER.get_or_init(MlflowServer::start).as_ref()
}

/// A tracker with the MLflow backend configured in code (no environment), under a backend
/// name of its own so tests running side by side do not share options.
fn tracker(
    name: &str,
    outdir: &Path,
    options: MlflowOptions,
    config: Option<serde_json::Value>,
) -> Tracker {
    warnings::capture();
    let backend = format!("mlflow-{name}");
    register_backend(&backend, move |ctx| {
        Ok(Box::new(MlflowBackend::new(ctx, options.clone())?))
    });
    let mut b = TrackerBuilder::new()
        .project(format!("ezpz.tests.{name}"))
        .run_name(format!("run-{name}"))
        .backends(backend)
        .outdir(outdir)
        .finish_timeout(Duration::from_secs(120));
    if let Some(c) = config {
        b = b.config(c);
    }
    b.build().expect("tracker")
}

fn run_id_of(summary: &ezpz_tracker::Summary) -> String {
    summary.backends[0]
        .run_info
        .as_ref()
        .and_then(|i| i.id.clone())
        .expect("run id in the summary")
}

#[test]
fn everything_logged_is_read_back_from_the_server() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let config =
        json!({"lr": 0.001, "model": {"depth": 6, "name": "vit"}, "long": "x".repeat(7000)});
    let t = tracker(
        "happy",
        &out,
        MlflowOptions::new().tracking_uri(server.uri()),
        Some(config),
    );
    let steps = 250u64;
    let spiky = |s: u64| match s % 50 {
        7 => f64::NAN,
        8 => f64::INFINITY,
        9 => f64::NEG_INFINITY,
        _ => s as f64,
    };
    t.log_config(json!({"extra": 1, "notes": "y".repeat(7000)}));
    t.log_config(json!({"extra": 2}));
    for s in 0..steps {
        let loss = 1.0 / (1.0 + s as f64);
        t.log(metrics! {
            "train/loss" => loss,
            "train/acc" => s as f64 / 250.0,
            "lr" => 1e-3,
            "epoch" => s / 50,
            "bad key!" => s as f64,
            "acc@top1" => 2.0 * s as f64,
            "phase" => "train",
            "loss" => loss,
            "loss/mean" => loss,
            "loss/min" => loss - 0.5,
            "loss/max" => loss + 0.5,
            "loss/std" => 0.25,
            "spiky" => spiky(s),
        });
    }
    t.log_table("preds", ["id", "label"], vec![vec![0, 3], vec![1, 7]]);
    let img = image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 60, y as u8 * 80, 7]));
    t.log_image("sample", img.clone(), Some("a caption"));
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("ckpt/sub")).unwrap();
    std::fs::write(files.join("notes.txt"), b"hello mlflow").unwrap();
    let blob: Vec<u8> = (0..25_600u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(files.join("ckpt/weights.bin"), &blob).unwrap();
    std::fs::write(files.join("ckpt/sub/meta.json"), b"{\"v\":1}").unwrap();
    t.log_artifacts([
        ("notes", files.join("notes.txt")),
        ("ckpt", files.join("ckpt")),
    ]);
    let summary = t.finish().expect("finish delivers everything");
    let run_id = run_id_of(&summary);

    // The run and its URL.
    let run = rest.run(&run_id);
    let exp_id = run["info"]["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(rest.experiment_id("ezpz-tests-happy"), Some(exp_id.clone()));
    let info = summary.backends[0].run_info.clone().unwrap();
    assert_eq!(
        info.url.as_deref(),
        Some(format!("{}/#/experiments/{exp_id}/runs/{run_id}", server.uri()).as_str())
    );
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(run["info"]["run_name"], "run-happy");
    let start = run["info"]["start_time"].as_i64().unwrap();
    let end = run["info"]["end_time"].as_i64().unwrap();
    assert_eq!(start, (t.start_time() * 1000.0).round() as i64);
    assert!(end >= start, "end {end} before start {start}");

    // Metrics: every point of every key, once, with its value.
    let mut expected_keys = vec![
        "acc_top1",
        "bad key_",
        "epoch",
        "loss/local",
        "loss/max",
        "loss/mean",
        "loss/min",
        "loss/std",
        "lr",
        "spiky",
        "train/acc",
        "train/loss",
    ];
    expected_keys.sort();
    assert_eq!(rest.metric_keys(&run_id), expected_keys);
    let loss = |s: u64| 1.0 / (1.0 + s as f64);
    let check = |key: &str, f: &dyn Fn(u64) -> f64| {
        assert_exactly_once(&rest.history(&run_id, key), 0..steps, f, key)
    };
    check("train/loss", &loss);
    check("loss/local", &loss);
    check("loss/min", &|s| loss(s) - 0.5);
    check("train/acc", &|s| s as f64 / 250.0);
    check("epoch", &|s| (s / 50) as f64);
    check("bad key_", &|s| s as f64);
    check("acc_top1", &|s| 2.0 * s as f64);
    let spiky_points = rest.history(&run_id, "spiky");
    assert_eq!(spiky_points.len(), steps as usize);
    for p in &spiky_points {
        match p.step % 50 {
            7 => assert!(p.value.is_nan(), "NaN stored as {}", p.value),
            // The SQL store keeps ±Infinity as ±f64::MAX.
            8 => assert_eq!(p.value, f64::MAX),
            9 => assert_eq!(p.value, -f64::MAX),
            _ => assert_eq!(p.value, p.step as f64),
        }
    }
    // Timestamps are the tracker's, in ms.
    let ts = rest.history(&run_id, "lr")[0].timestamp;
    assert!(ts >= start && ts <= end, "timestamp {ts} outside the run");

    // Params: config under `config.`, later configs flat, system params under `ezpz.`.
    let params = rest.kv(&run_id, "params");
    assert_eq!(params["config.lr"], "0.001");
    assert_eq!(params["config.model.depth"], "6");
    assert_eq!(params["config.model.name"], "vit");
    assert_eq!(params["config.long"], "x".repeat(6000));
    assert_eq!(params["notes"], "y".repeat(6000));
    assert_eq!(
        params["extra"], "1",
        "a changed param keeps its first value"
    );
    assert_eq!(params["ezpz.world_size"], "1");
    assert_eq!(params["ezpz.rank"], "0");
    assert_eq!(params["ezpz.version"], env!("CARGO_PKG_VERSION"));
    assert!(params["ezpz.rustc_version"].starts_with("rustc "));
    assert!(
        params["ezpz.command"].contains("mlflow"),
        "{}",
        params["ezpz.command"]
    );
    for k in [
        "hostname",
        "machine",
        "scheduler",
        "timestamp",
        "date",
        "working_directory",
    ] {
        assert!(!params[&format!("ezpz.{k}")].is_empty(), "ezpz.{k}");
    }

    // Tags.
    let tags = rest.kv(&run_id, "tags");
    assert_eq!(tags["mlflow.runName"], "run-happy");
    assert!(!tags["mlflow.source.name"].is_empty());
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(tags.get("mlflow.source.git.commit").cloned(), head);
    if let Ok(user) = std::env::var("USER") {
        assert_eq!(tags["mlflow.user"], user);
    }

    // Artifacts, byte for byte.
    let table = rest.artifact(&run_id, &format!("tables/preds_{steps}.csv"));
    assert_eq!(String::from_utf8(table).unwrap(), "id,label\n0,3\n1,7\n");
    let png = rest.artifact(&run_id, &format!("images/sample_{steps}.png"));
    let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(decoded, img);
    assert_eq!(rest.artifact(&run_id, "notes/notes.txt"), b"hello mlflow");
    assert_eq!(rest.artifact(&run_id, "ckpt/weights.bin"), blob);
    assert_eq!(rest.artifact(&run_id, "ckpt/sub/meta.json"), b"{\"v\":1}");

    // What the user was told, once each.
    let once = |needles: &[&str]| {
        let lines = warnings::lines_with(needles);
        assert_eq!(lines.len(), 1, "{needles:?}: {lines:#?}");
    };
    once(&["`phase` has a non-numeric value", "not sent"]);
    once(&["`bad key!`", "logged as `bad key_`"]);
    once(&["`acc@top1`", "logged as `acc_top1`"]);
    once(&[
        "param `extra` was already logged as `1`",
        "`2` is not logged",
    ]);
    once(&["param `notes` is 7000 characters long", "cut"]);
    once(&["param `config.long` is 7000 characters long"]);

    // Everything was delivered: the spool is gone.
    assert!(!out.join("spool").exists());

    // MLflow's own Python client reads the same run.
    if let Some(python) = common::oracle_python("mlflow") {
        let script = common::repo_root().join("tests/oracles/mlflow_read.py");
        let o = std::process::Command::new(python)
            .arg(script)
            .arg(server.uri())
            .arg(&run_id)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["status"], "FINISHED");
        assert_eq!(v["params"]["config.model.depth"], "6");
        let hist = v["metrics"]["train/loss"].as_array().unwrap();
        assert_eq!(hist.len(), steps as usize);
        for pair in hist {
            let s = pair[0].as_u64().unwrap();
            assert_eq!(pair[1].as_f64().unwrap(), loss(s));
        }
        assert_eq!(v["metrics"]["spiky"][7][1], "nan");
    }
}

#[test]
fn failed_status_then_attaching_to_the_same_run() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let opts = MlflowOptions::new()
        .tracking_uri(server.uri())
        .experiment_name("attach");
    let t = tracker("failed", &dir.path().join("a"), opts.clone(), None);
    for s in 0..10u64 {
        t.log_at(s, [("x", s as f64)]);
    }
    let summary = t.finish_with(RunStatus::Failed).expect("finish");
    let run_id = run_id_of(&summary);
    let run = rest.run(&run_id);
    assert_eq!(run["info"]["status"], "FAILED");
    assert!(run["info"]["end_time"].as_i64().unwrap() > 0);

    // A second process attaches to the run (MLFLOW_RUN_ID in code) and continues it.
    let t = tracker(
        "attached",
        &dir.path().join("b"),
        opts.run_id(&run_id),
        None,
    );
    for s in 10..20u64 {
        t.log_at(s, [("x", s as f64)]);
    }
    let summary = t.finish().expect("finish");
    assert_eq!(run_id_of(&summary), run_id);
    assert_exactly_once(&rest.history(&run_id, "x"), 0..20, |s| s as f64, "x");
    assert_eq!(rest.run(&run_id)["info"]["status"], "FINISHED");
    assert_eq!(rest.runs("attach").len(), 1);
    // The first process's system params stay; the attached one does not fight over them.
    assert!(rest.kv(&run_id, "params").contains_key("ezpz.timestamp"));
    assert!(warnings::lines_with(&["ezpz.timestamp", "not logged"]).is_empty());
}

#[test]
fn two_runs_creating_one_experiment_at_once() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let (barrier, uri) = (barrier.clone(), server.uri());
            let out = dir.path().join(format!("r{i}"));
            std::thread::spawn(move || {
                barrier.wait();
                let opts = MlflowOptions::new()
                    .tracking_uri(uri)
                    .experiment_name("race.to.create");
                let t = tracker(&format!("race{i}"), &out, opts, None);
                t.log_at(0, [("v", i as f64)]);
                t.finish().map(|s| run_id_of(&s))
            })
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("both runs finish"))
        .collect();
    assert_ne!(ids[0], ids[1]);
    let runs = rest.runs("race-to-create");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(rest.history(id, "v")[0].value, i as f64);
    }
}

/// The premise of exactly-once delivery: the server stores a metric point once per (key,
/// step, timestamp, value), so a batch applied but not acknowledged can be sent again.
#[test]
fn the_server_stores_a_resent_batch_once() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let (_, exp) = rest.post("experiments/create", &json!({"name": "resend"}));
    let exp_id = exp["experiment_id"].as_str().unwrap();
    let (_, run) = rest.post(
        "runs/create",
        &json!({"experiment_id": exp_id, "start_time": 1}),
    );
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
    let batch = json!({"run_id": run_id, "metrics": [
        {"key": "m", "value": 0.5, "timestamp": 10, "step": 0},
        {"key": "m", "value": "NaN", "timestamp": 10, "step": 1},
    ]});
    for _ in 0..3 {
        assert_eq!(rest.post("runs/log-batch", &batch).0, 200);
    }
    assert_eq!(rest.history(run_id, "m").len(), 2);
    // A different timestamp is a different point: the rule is not "one per step".
    let later = json!({"run_id": run_id, "metrics": [
        {"key": "m", "value": 0.5, "timestamp": 11, "step": 0},
    ]});
    assert_eq!(rest.post("runs/log-batch", &later).0, 200);
    assert_eq!(rest.history(run_id, "m").len(), 3);
}

/// A program configured only by the environment, as users run it: `MLFLOW_TRACKING_URI`
/// adds `mlflow` to the default backends, the project name comes from `WB_PROJECT` (dots
/// become hyphens) unless `MLFLOW_EXPERIMENT_NAME` overrides it, and the banner names the
/// run's URL.
#[test]
fn environment_only_setup_in_a_separate_process() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let uri = server.uri();
    let out = dir.path().join("env-run");
    let mut child = TrackerChild::spawn(
        &out,
        &[
            ("MLFLOW_TRACKING_URI", &uri),
            ("WB_PROJECT", "ezpz.env.project"),
        ],
    );
    child.cmd("log 0 100");
    let (ok, stderr) = child.finish();
    assert!(ok, "{stderr}");
    let run_id = rest.only_run("ezpz-env-project");
    for j in 0..10 {
        let key = format!("m{j}");
        assert_exactly_once(
            &rest.history(&run_id, &key),
            0..100,
            |s| child_value(s, j),
            &key,
        );
    }
    let exp_id = rest.experiment_id("ezpz-env-project").unwrap();
    for line in [
        "mlflow\u{1b}[0m: Tracking run with mlflow".to_string(),
        "Experiment: ezpz-env-project".to_string(),
        format!("Tracking URI: {uri}"),
        format!("View run at {uri}/#/experiments/{exp_id}/runs/{run_id}"),
    ] {
        assert!(stderr.contains(&line), "banner lacks `{line}`:\n{stderr}");
    }
    // The default local backends ran beside it.
    assert!(out.join("metrics.csv").is_file());
    let pid = &rest.kv(&run_id, "params")["config.child.pid"];
    assert!(pid.parse::<u32>().is_ok(), "config.child.pid = {pid}");

    let mut child = TrackerChild::spawn(
        &dir.path().join("env-run-2"),
        &[
            ("MLFLOW_TRACKING_URI", &uri),
            ("WB_PROJECT", "ezpz.env.project"),
            ("MLFLOW_EXPERIMENT_NAME", "explicit.experiment"),
            ("EZPZ_RUN_NAME", "env-run"),
            ("EZPZ_TAGS", "nightly, cpu"),
            ("EZPZ_NOTES", "from the environment"),
            ("EZPZ_RUN_GROUP", "env-group"),
            ("EZPZ_JOB_TYPE", "eval"),
        ],
    );
    child.cmd("log 0 3");
    assert!(child.finish().0);
    let run_id = rest.only_run("explicit-experiment");
    assert_eq!(rest.history(&run_id, "m0").len(), 3);
    // The tracker's variables name and label the run.
    let tags = rest.kv(&run_id, "tags");
    for (key, value) in [
        ("mlflow.runName", "env-run"),
        ("nightly", ""),
        ("cpu", ""),
        ("mlflow.note.content", "from the environment"),
        ("group", "env-group"),
        ("job_type", "eval"),
    ] {
        assert_eq!(
            tags.get(key).map(String::as_str),
            Some(value),
            "{key}: {tags:?}"
        );
    }
}

/// The tracker's run settings on the MLflow run, read back from the server: the run name,
/// the experiment (over the project), each tag (its name made acceptable, an empty value),
/// the notes as the run's description, the group and job type as tags.
#[test]
fn run_settings_name_the_run_its_experiment_and_tags() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let options = MlflowOptions::new().tracking_uri(server.uri());
    register_backend("mlflow-settings", move |ctx| {
        Ok(Box::new(MlflowBackend::new(ctx, options.clone())?))
    });
    let t = TrackerBuilder::new()
        .project("ezpz.tests.settings-project")
        .experiment("ezpz.tests.settings")
        .run_name("settings-run")
        .tags(["baseline", "ablation 2", "a+b"])
        .notes("first try: lr 1e-3")
        .group("sweep-7")
        .job_type("train")
        .backends("mlflow-settings")
        .outdir(dir.path().join("run"))
        .finish_timeout(Duration::from_secs(120))
        .build()
        .expect("tracker");
    t.log([("loss", 1.0)]);
    t.finish().expect("finish");
    assert!(rest.runs("ezpz-tests-settings-project").is_empty());
    let run_id = rest.only_run("ezpz-tests-settings");
    assert_eq!(rest.run(&run_id)["info"]["run_name"], "settings-run");
    let tags = rest.kv(&run_id, "tags");
    for (key, value) in [
        ("mlflow.runName", "settings-run"),
        ("mlflow.note.content", "first try: lr 1e-3"),
        ("group", "sweep-7"),
        ("job_type", "train"),
        ("baseline", ""),
        ("ablation 2", ""),
        ("a_b", ""),
    ] {
        assert_eq!(
            tags.get(key).map(String::as_str),
            Some(value),
            "{key}: {tags:?}"
        );
    }
}

/// `ezpz sync` says what the server refused for good while replaying (a key its proxy
/// refuses), per key, and delivers the rest.
#[test]
fn ezpz_sync_reports_what_the_server_refused() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let proxy = FaultProxy::start(server.port, Mode::FailAll);
    let options = MlflowOptions::new()
        .tracking_uri(proxy.uri())
        .experiment_name("syncrefused");
    register_backend("mlflow-syncrefused", move |ctx| {
        Ok(Box::new(MlflowBackend::new(ctx, options.clone())?))
    });
    let t = TrackerBuilder::new()
        .backends("mlflow-syncrefused")
        .outdir(&out)
        .finish_timeout(Duration::from_secs(3))
        .build()
        .expect("tracker");
    for s in 0..20u64 {
        t.log_at(s, [("k0", s as f64), ("k_bad", 1.0)]);
    }
    t.finish()
        .expect_err("nothing reaches the server: the spool is left");
    assert!(out.join("spool/mlflow/entries.log").is_file());
    proxy.set_mode(Mode::Pass);
    proxy.refuse_key("k_bad");
    let (ok, said) = common::ezpz_sync(&out, &[]);
    assert!(ok, "ezpz sync failed: {said}");
    assert!(
        said.contains("mlflow: the server refused 20 entries for good")
            && said.contains("k_bad (20)"),
        "{said}"
    );
    let run_id = rest.only_run("syncrefused");
    assert_eq!(rest.history(&run_id, "k0").len(), 20);
    assert!(rest.history(&run_id, "k_bad").is_empty());
}

/// The definition of done: the quickstart with `--backends csv,mlflow` and
/// `MLFLOW_TRACKING_URI` set lands every point of every metric in the server, plus its
/// table, image and artifact.
#[test]
fn quickstart_with_mlflow_lands_every_point() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q");
    let steps = 500u64;
    let mut cmd = std::process::Command::new(common::examples::example_binary("quickstart"));
    for var in ezpz_tracker::env::RANK_VARS {
        cmd.env_remove(var);
    }
    let o = cmd
        .args(["--steps", &steps.to_string(), "--backends", "csv,mlflow"])
        .args(["--project", "ezpz.quickstart"])
        .arg("--outdir")
        .arg(&out)
        .env("MLFLOW_TRACKING_URI", server.uri())
        .env_remove("MLFLOW_EXPERIMENT_NAME")
        .output()
        .expect("run quickstart");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_id = rest.only_run("ezpz-quickstart");
    let names: Vec<&str> = common::quickstart_scalars(0)
        .iter()
        .map(|(k, _)| *k)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(rest.metric_keys(&run_id), sorted);
    for (i, key) in names.iter().enumerate() {
        let history = rest.history(&run_id, key);
        assert_exactly_once(
            &history,
            0..steps,
            |s| common::quickstart_scalars(s)[i].1,
            key,
        );
    }
    let run = rest.run(&run_id);
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(rest.kv(&run_id, "params")["config.optimizer.name"], "adamw");
    let table =
        String::from_utf8(rest.artifact(&run_id, &format!("tables/predictions_{steps}.csv")))
            .unwrap();
    assert!(table.starts_with("id,label,score\n0,cat,0.91\n"), "{table}");
    let png = rest.artifact(&run_id, &format!("images/samples_{steps}.png"));
    assert_eq!(
        image::load_from_memory(&png)
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (32, 24)
    );
    assert_eq!(
        rest.artifact(&run_id, "notes/notes.txt"),
        b"quickstart artifact\n"
    );
    assert!(!out.join("spool").exists());
}

/// Only rank 0 talks to the server: another rank creates no run, no spool, no thread.
#[test]
fn rank_one_creates_no_run() {
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let options = MlflowOptions::new()
        .tracking_uri(server.uri())
        .experiment_name("rank-one");
    register_backend("mlflow-rank-one", move |ctx| {
        Ok(Box::new(MlflowBackend::new(ctx, options.clone())?))
    });
    let t = TrackerBuilder::new()
        .backends("mlflow-rank-one")
        .outdir(dir.path().join("r1"))
        .rank(1)
        .build()
        .unwrap();
    assert!(!t.is_enabled());
    t.log([("x", 1.0)]);
    t.finish().unwrap();
    assert!(rest.runs("rank-one").is_empty());
    assert!(!dir.path().join("r1").exists());
}

#[test]
fn metric_definitions_tag_the_run_with_unit_and_goal() {
    use ezpz_tracker::{Goal, MetricDefinition};
    let Some(server) = server() else { return };
    let rest = Rest::new(&server.uri());
    let dir = tempfile::tempdir().unwrap();
    let opts = MlflowOptions::new()
        .tracking_uri(server.uri())
        .experiment_name("definitions");
    let t = tracker("definitions", dir.path(), opts, None);
    t.define_metric(
        MetricDefinition::new("valid/loss")
            .unit("nats")
            .goal(Goal::Minimize),
    );
    t.define_metric(MetricDefinition::new("valid/accuracy").goal(Goal::Maximize));
    t.log_at(1, [("valid/loss", 0.5), ("valid/accuracy", 0.9)]);
    // A later definition changes the tag (tags, unlike params, may change).
    t.define_metric(
        MetricDefinition::new("valid/accuracy")
            .unit("%")
            .goal(Goal::Maximize),
    );
    let run_id = run_id_of(&t.finish().expect("finish"));
    let tags = rest.kv(&run_id, "tags");
    let of = |k: &str| tags.get(k).map(String::as_str);
    assert_eq!(of("ezpz.metric.valid/loss.unit"), Some("nats"), "{tags:?}");
    assert_eq!(of("ezpz.metric.valid/loss.goal"), Some("minimize"));
    assert_eq!(of("ezpz.metric.valid/accuracy.goal"), Some("maximize"));
    assert_eq!(of("ezpz.metric.valid/accuracy.unit"), Some("%"));
    assert_eq!(rest.history(&run_id, "valid/loss").len(), 1);
}
