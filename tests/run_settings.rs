//! Run settings — run name, tags, notes, group, job type, entity, experiment — from the
//! builder and the environment, read back by the real readers: `wandb leet inspect` (the
//! offline run's `run` record), `wandb sync` into the capture server (what W&B's own client
//! makes of our log) and an online run into the same server (what we send), plus
//! `run_info.json`, `report.md` and `ezpz show`. And which source wins: W&B's options over
//! its variables over the builder over the `EZPZ_*` variables.
//!
//! One test function, alone in its binary: it changes the process environment. (MLflow's
//! side is in `tests/mlflow.rs`, against the real server.)

mod common;
#[path = "../ezpz-tracker/tests/support/env_vars.rs"]
mod env_vars;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::wandb_capture::{leet_records, sync, CaptureServer, DUMMY_API_KEY};
use ezpz_tracker::{register_backend, TrackerBuilder, WandbBackend, WandbOptions};
use serde_json::{json, Value as Json};

/// Every variable that sets a run setting; cleared between the cases.
const VARS: &[&str] = &[
    "EZPZ_RUN_NAME",
    "EZPZ_TAGS",
    "EZPZ_NOTES",
    "EZPZ_RUN_GROUP",
    "EZPZ_JOB_TYPE",
    "WANDB_NAME",
    "WANDB_TAGS",
    "WANDB_NOTES",
    "WANDB_RUN_GROUP",
    "WANDB_JOB_TYPE",
    "WANDB_ENTITY",
    "WANDB_MODE",
    "WANDB_RUN_ID",
    "WANDB_DISABLED",
    "EZPZ_TRACKER_BACKENDS",
    "EZPZ_TRACKERS",
];

/// The settings as one JSON object, in the shape of each reader's answer below.
fn settings(name: &str, tags: &[&str], notes: &str, group: &str, job: &str, entity: &str) -> Json {
    json!({"name": name, "tags": tags, "notes": notes, "group": group, "job_type": job,
           "entity": entity})
}

/// What one run wrote: `run_info.json` and the W&B run directory.
struct Written {
    outdir: PathBuf,
    run_info: Json,
    wandb_dir: PathBuf,
    wandb_id: String,
}

/// Runs a tracker with `jsonl` and the W&B backend `backend` (registered by the caller),
/// built by `build` from a builder with the project and outdir set.
fn run(
    dir: &Path,
    name: &str,
    backend: &str,
    build: impl FnOnce(TrackerBuilder) -> TrackerBuilder,
) -> Written {
    let outdir = dir.join(name);
    let t = build(
        TrackerBuilder::new()
            .project("ezpz-settings")
            .backends(format!("jsonl,{backend}"))
            .outdir(&outdir),
    )
    .build()
    .expect("tracker builds");
    t.log([("loss", 1.0)]);
    let summary = t.finish().expect("finish");
    let info = summary
        .backends
        .iter()
        .find(|b| b.name == "wandb")
        .and_then(|b| b.run_info.clone())
        .expect("wandb run info");
    let text = std::fs::read_to_string(outdir.join("run_info.json")).expect("run_info.json");
    Written {
        run_info: serde_json::from_str(&text).expect("run_info.json is JSON"),
        outdir,
        wandb_dir: info.path.expect("wandb run dir"),
        wandb_id: info.id.expect("wandb run id"),
    }
}

/// The settings in `wandb leet inspect`'s `run` record.
fn leet_settings(py: &Path, run_dir: &Path) -> Json {
    let records = leet_records(py, run_dir);
    let run = &records[0]["run"];
    assert_eq!(records[0]["type"], "run", "{}", records[0]);
    json!({"name": run["display_name"], "tags": run["tags"], "notes": run["notes"],
           "group": run["run_group"], "job_type": run["job_type"], "entity": run["entity"]})
}

/// The settings in `run_info.json`.
fn run_info_settings(info: &Json) -> Json {
    json!({"name": info["run_name"], "tags": info["tags"], "notes": info["notes"],
           "group": info["group"], "job_type": info["job_type"], "entity": info["entity"]})
}

/// The settings the capture server saw for run `id`.
fn server_settings(server: &CaptureServer, id: &str) -> Json {
    let run = server.run(id);
    json!({"name": run["display_name"], "tags": run["tags"], "notes": run["notes"],
           "group": run["group"], "job_type": run["job_type"], "entity": run["entity"]})
}

#[test]
fn run_settings_reach_wandb_and_the_run_record_in_the_right_order() {
    let Some(py) = common::oracle_python("wandb") else {
        return;
    };
    env_vars::clear(VARS);
    let dir = tempfile::tempdir().unwrap();
    register_backend("wandb-offline", |ctx| {
        Ok(Box::new(WandbBackend::start(
            ctx,
            WandbOptions::new().mode("offline"),
        )?))
    });

    // 1. All from the builder: every reader sees every setting.
    let builder = |b: TrackerBuilder| {
        b.run_name("settings-run")
            .tags(["baseline", "ablation 2", "baseline"])
            .notes("first try: lr 1e-3")
            .group("sweep-7")
            .job_type("train")
            .entity("my-team")
            .experiment("ezpz.settings.exp")
    };
    let want = settings(
        "settings-run",
        &["baseline", "ablation 2"],
        "first try: lr 1e-3",
        "sweep-7",
        "train",
        "my-team",
    );
    let w = run(dir.path(), "builder", "wandb-offline", builder);
    assert_eq!(leet_settings(&py, &w.wandb_dir), want);
    assert_eq!(run_info_settings(&w.run_info), want);
    assert_eq!(w.run_info["experiment"], "ezpz.settings.exp");
    // W&B's own client reads them from our log and sends them on.
    let server = CaptureServer::start(&py, &[]);
    sync(&py, &server, &w.wandb_dir, &[]);
    assert_eq!(server_settings(&server, &w.wandb_id), want);
    // The report's header and `ezpz show` name them.
    let report = std::fs::read_to_string(w.outdir.join("report.md")).unwrap();
    for row in [
        "| Tags | baseline, ablation 2 |",
        "| Notes | first try: lr 1e-3 |",
        "| Group | sweep-7 |",
        "| Job type | train |",
        "| Entity | my-team |",
        "| Experiment | ezpz.settings.exp |",
    ] {
        assert!(report.contains(row), "`{row}` missing from report.md");
    }
    let show = std::process::Command::new(common::ezpz_binary())
        .arg("show")
        .arg(&w.outdir)
        .output()
        .expect("ezpz show");
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{shown}");
    for line in ["tags       baseline, ablation 2", "job type   train"] {
        assert!(shown.contains(line), "`{line}` missing from:\n{shown}");
    }

    // 2. Online: what we send to the server ourselves.
    let url = server.url.clone();
    register_backend("wandb-online", move |ctx| {
        let opts = WandbOptions::new()
            .mode("online")
            .base_url(&url)
            .api_key(DUMMY_API_KEY)
            .finish_timeout(Duration::from_secs(20));
        Ok(Box::new(WandbBackend::start(ctx, opts)?))
    });
    let w = run(dir.path(), "online", "wandb-online", builder);
    assert_eq!(server_settings(&server, &w.wandb_id), want);

    // 3. Only the tracker's variables (as `setup_tracker` users set them).
    for (k, v) in [
        ("EZPZ_RUN_NAME", "env-run"),
        ("EZPZ_TAGS", " a, b ,,a"),
        ("EZPZ_NOTES", "env notes"),
        ("EZPZ_RUN_GROUP", "env-group"),
        ("EZPZ_JOB_TYPE", "eval"),
    ] {
        std::env::set_var(k, v);
    }
    let from_env = json!({"name": "env-run", "tags": ["a", "b"], "notes": "env notes",
                          "group": "env-group", "job_type": "eval", "entity": null});
    let w = run(dir.path(), "ezpz-env", "wandb-offline", |b| b);
    assert_eq!(run_info_settings(&w.run_info), from_env);
    assert_eq!(leet_settings(&py, &w.wandb_dir), from_env);

    // 4. The builder wins over the tracker's variables (they are still set).
    let w = run(dir.path(), "builder-over-env", "wandb-offline", builder);
    assert_eq!(leet_settings(&py, &w.wandb_dir), want);
    assert_eq!(run_info_settings(&w.run_info), want);

    // 5. W&B's own variables win over the builder, for W&B only.
    for (k, v) in [
        ("WANDB_NAME", "wandb-name"),
        ("WANDB_TAGS", "w1,w2"),
        ("WANDB_NOTES", "wandb notes"),
        ("WANDB_RUN_GROUP", "wandb-group"),
        ("WANDB_JOB_TYPE", "wandb-job"),
        ("WANDB_ENTITY", "wandb-entity"),
    ] {
        std::env::set_var(k, v);
    }
    let wandb_env = settings(
        "wandb-name",
        &["w1", "w2"],
        "wandb notes",
        "wandb-group",
        "wandb-job",
        "wandb-entity",
    );
    let w = run(dir.path(), "wandb-env", "wandb-offline", builder);
    assert_eq!(leet_settings(&py, &w.wandb_dir), wandb_env);
    assert_eq!(
        run_info_settings(&w.run_info),
        want,
        "the tracker's are kept"
    );

    // 6. W&B's options win over everything.
    register_backend("wandb-options", |ctx| {
        let opts = WandbOptions::new()
            .mode("offline")
            .display_name("opt-name")
            .tags(["o"])
            .notes("opt notes")
            .group("opt-group")
            .job_type("opt-job")
            .entity("opt-entity");
        Ok(Box::new(WandbBackend::start(ctx, opts)?))
    });
    let w = run(dir.path(), "options", "wandb-options", builder);
    assert_eq!(
        leet_settings(&py, &w.wandb_dir),
        settings(
            "opt-name",
            &["o"],
            "opt notes",
            "opt-group",
            "opt-job",
            "opt-entity"
        )
    );
    env_vars::clear(VARS);
}
