//! The MLflow backend when things go wrong, against a real MLflow 3.17.2 server: the server
//! absent at start, killed mid-run and restarted, refusing access (403), failing with 500s
//! (before and after applying a request), and the training process killed with `kill -9`.
//! In every case each point must arrive exactly once.
//!
//! The phases share one server (and its database) and run in one test, in order: a server
//! takes 15–25 s to start, and several phases restart it anyway.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Mode};
use common::mlflow_rest::{assert_exactly_once, Rest};
use common::mlflow_server::MlflowServer;
use common::tracker_child::{child_value, TrackerChild};
use common::warnings;
use ezpz_tracker::{register_backend, MlflowBackend, MlflowOptions, Tracker, TrackerBuilder};

const KEYS: usize = 5;

fn value(step: u64, j: usize) -> f64 {
    step as f64 * 0.25 - j as f64
}

fn tracker(name: &str, outdir: &Path, uri: &str, finish_timeout: Duration) -> Tracker {
    warnings::capture();
    let backend = format!("mlflow-{name}");
    let options = MlflowOptions::new().tracking_uri(uri).experiment_name(name);
    register_backend(&backend, move |ctx| {
        Ok(Box::new(MlflowBackend::new(ctx, options.clone())?))
    });
    TrackerBuilder::new()
        .backends(backend)
        .outdir(outdir)
        .finish_timeout(finish_timeout)
        .build()
        .expect("tracker")
}

fn log_steps(t: &Tracker, steps: std::ops::Range<u64>) {
    for s in steps {
        let row: Vec<(String, f64)> = (0..KEYS).map(|j| (format!("k{j}"), value(s, j))).collect();
        t.log_at(s, row);
    }
}

/// Every key of the only run of `experiment` holds `steps` exactly once; returns the run id.
fn assert_all_once(rest: &Rest, experiment: &str, steps: std::ops::Range<u64>) -> String {
    let run_id = rest.only_run(experiment);
    for j in 0..KEYS {
        let key = format!("k{j}");
        let what = format!("{experiment}/{key}");
        assert_exactly_once(
            &rest.history(&run_id, &key),
            steps.clone(),
            |s| value(s, j),
            &what,
        );
    }
    run_id
}

fn wait_for_warning(needles: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = warnings::lines_with(needles).into_iter().next() {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no warning with {needles:?}; got:\n{}",
            warnings::all()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_point_arrives_exactly_once_through_faults() {
    let Some(mut server) = MlflowServer::not_started() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rest = Rest::new(&server.uri());

    absent_at_start_then_started(&mut server, &rest, dir.path());
    killed_mid_run_and_restarted(&mut server, &rest, dir.path());
    refused_with_403_then_replayed_by_ezpz_sync(&mut server, &rest, dir.path());
    injected_500s_before_and_after_applying(&server, &rest, dir.path());
    kill_9_then_ezpz_sync(&server, &rest, dir.path());
}

/// Training starts with no server; the run is created when it appears.
fn absent_at_start_then_started(server: &mut MlflowServer, rest: &Rest, dir: &Path) {
    let t = tracker(
        "absent",
        &dir.join("absent"),
        &server.uri(),
        Duration::from_secs(300),
    );
    log_steps(&t, 0..50);
    t.flush().expect("flush spools without a server");
    let warning = wait_for_warning(
        &["could not create the run", "not reachable"],
        Duration::from_secs(30),
    );
    assert!(warning.contains("training continues"), "{warning}");
    server.launch(&[]);
    // Training goes on while the server starts.
    let mut s = 50;
    while !server.is_healthy() {
        log_steps(&t, s..s + 1);
        s += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    log_steps(&t, s..s + 50);
    let total = s + 50;
    t.finish().expect("finish once the server is up");
    assert_all_once(rest, "absent", 0..total);
}

/// The server is killed (SIGKILL) while batches are in flight, then restarted.
fn killed_mid_run_and_restarted(server: &mut MlflowServer, rest: &Rest, dir: &Path) {
    let t = tracker(
        "killed",
        &dir.join("killed"),
        &server.uri(),
        Duration::from_secs(300),
    );
    log_steps(&t, 0..100);
    t.flush().unwrap();
    rest.wait_for_points("killed", "k0", 100, Duration::from_secs(60));
    // Many batches queued, the server dies under them.
    log_steps(&t, 100..3000);
    t.flush().unwrap();
    server.kill();
    log_steps(&t, 3000..3100);
    t.flush().unwrap();
    server.restart(&[]);
    log_steps(&t, 3100..3200);
    t.finish().expect("finish after the restart");
    assert_all_once(rest, "killed", 0..3200);
}

/// The server refuses the host (403, `--allowed-hosts`): one clear warning, training goes
/// on, `finish` gives up in time and leaves the spool; `ezpz sync` delivers it later.
fn refused_with_403_then_replayed_by_ezpz_sync(server: &mut MlflowServer, rest: &Rest, dir: &Path) {
    server.restart(&["--allowed-hosts", "tracking.example.invalid"]);
    let out = dir.join("forbidden");
    let t = tracker("forbidden", &out, &server.uri(), Duration::from_secs(4));
    log_steps(&t, 0..50);
    t.flush().unwrap();
    let warning = wait_for_warning(&["403", "forbidden"], Duration::from_secs(60));
    for needle in [
        "not an ezpz bug",
        "MLFLOW_TRACKING_TOKEN",
        "AMSC_API_KEY",
        "--allowed-hosts",
        "Invalid Host header",
    ] {
        assert!(
            warning.contains(needle),
            "`{needle}` missing from: {warning}"
        );
    }
    log_steps(&t, 50..80);
    let err = t.finish().expect_err("nothing could be delivered");
    // The backend's own message (not the tracker's timeout): it gave up inside the cap.
    let text = err.to_string();
    assert!(
        text.contains(&format!("ezpz sync {}", out.display())),
        "{text}"
    );
    assert_eq!(
        warnings::lines_with(&["403", "forbidden", "not an ezpz bug"]).len(),
        1,
        "the 403 is said once"
    );
    assert!(out.join("spool/mlflow/entries.log").is_file());
    assert!(rest.runs("forbidden").is_empty());

    server.restart(&[]);
    let (ok, said) = common::ezpz_sync(&out, &[]);
    assert!(ok, "ezpz sync failed: {said}");
    assert!(said.contains("delivered"), "{said}");
    let run_id = assert_all_once(rest, "forbidden", 0..80);
    assert_eq!(rest.run(&run_id)["info"]["status"], "FINISHED");
    assert!(
        !out.join("spool").exists(),
        "the spool is removed once delivered"
    );
    let (ok, said) = common::ezpz_sync(&out, &[]);
    assert!(ok && said.contains("nothing to deliver"), "{said}");
}

/// A proxy fails requests with 500: some before they reach the server, some after the server
/// applied them (the answer is lost). Nothing may be missing or doubled — not even the run.
fn injected_500s_before_and_after_applying(server: &MlflowServer, rest: &Rest, dir: &Path) {
    let proxy = FaultProxy::start(server.port, Mode::Flaky(20));
    let t = tracker(
        "flaky",
        &dir.join("flaky"),
        &proxy.uri(),
        Duration::from_secs(300),
    );
    for chunk in 0..40u64 {
        log_steps(&t, chunk * 5..(chunk + 1) * 5);
        // Each flush seals a batch: many requests, many failures.
        t.flush().unwrap();
    }
    t.finish().expect("finish through the flaky proxy");
    let counts = proxy.counts();
    assert!(
        counts.failed_before >= 3 && counts.failed_after >= 3,
        "{counts:?}"
    );
    let run_id = assert_all_once(rest, "flaky", 0..200);
    assert_eq!(rest.run(&run_id)["info"]["status"], "FINISHED");
    assert!(!warnings::lines_with(&["HTTP 500", "injected by the test proxy"]).is_empty());
}

/// The training process is killed with `kill -9` while the server is failing; `ezpz sync`
/// delivers every point it had flushed, and marks the run KILLED.
fn kill_9_then_ezpz_sync(server: &MlflowServer, rest: &Rest, dir: &Path) {
    let proxy = FaultProxy::start(server.port, Mode::Pass);
    let out = dir.join("kill9");
    let uri = proxy.uri();
    let mut child = TrackerChild::spawn(
        &out,
        &[
            ("MLFLOW_TRACKING_URI", &uri),
            ("MLFLOW_EXPERIMENT_NAME", "kill9"),
            ("EZPZ_TRACKER_BACKENDS", "mlflow"),
        ],
    );
    child.cmd("log 0 50");
    child.cmd("flush");
    rest.wait_for_points("kill9", "m0", 50, Duration::from_secs(60));
    proxy.set_mode(Mode::FailAll);
    child.cmd("log 50 120");
    child.cmd("flush");
    child.kill9();
    assert!(out.join("spool/mlflow/entries.log").is_file());
    proxy.set_mode(Mode::Pass);
    let (ok, said) = common::ezpz_sync(&out, &[]);
    assert!(ok, "ezpz sync failed: {said}");
    let run_id = rest.only_run("kill9");
    for j in 0..10 {
        let key = format!("m{j}");
        assert_exactly_once(
            &rest.history(&run_id, &key),
            0..120,
            |s| child_value(s, j),
            &key,
        );
    }
    let run = rest.run(&run_id);
    assert_eq!(run["info"]["status"], "KILLED");
    assert!(run["info"]["end_time"].as_i64().unwrap() > 0);
}
