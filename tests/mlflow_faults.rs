//! The MLflow backend when things go wrong, against a real MLflow 3.17.2 server: the server
//! absent at start, killed mid-run and restarted, refusing access (403), failing with 500s
//! (before and after applying a request), the training process killed with `kill -9`, and
//! the answers of real front ends: an absurd `Retry-After`, HTML pages with 200 and 404, no
//! answer at all, a reset after the server applied the request, a refused key, names and
//! steps MLflow cannot store, an upload that always fails. In every case each point must
//! arrive exactly once (the refused ones: never, and counted).
//!
//! The phases share one server (and its database) and run in one test, in order: a server
//! takes 15–25 s to start, and several phases restart it anyway.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Mode};
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
    answers_of_real_front_ends(&server, &rest, dir.path());
    a_refused_key_costs_only_its_own_points(&server, &rest, dir.path());
    names_and_steps_mlflow_refuses_never_cost_a_batch(&server, &rest, dir.path());
    an_upload_that_always_fails_holds_up_nothing(&server, &rest, dir.path());
    a_spool_owned_on_another_host_is_refused(dir.path());
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

/// For their first requests the server's front end answers 503 with an absurd `Retry-After`
/// (`1e20`, `-1`, `NaN`, a far-future date), 200 with an HTML login page, 404 with an HTML
/// page, 502, never answers, or resets after the server applied the request — on every kind
/// of request. Nothing panics, nothing is dropped, every point arrives once.
fn answers_of_real_front_ends(server: &MlflowServer, rest: &Rest, dir: &Path) {
    let proxy = FaultProxy::start(server.port, Mode::Pass);
    for (pattern, fault, times) in [
        ("experiments/get-by-name", Fault::Html404, 1),
        ("experiments/", Fault::RetryAfter("1e20".into()), 1),
        ("runs/create", Fault::HtmlOk, 1),
        ("runs/create", Fault::ResetAfter, 1),
        ("runs/log-batch", Fault::RetryAfter("1e20".into()), 3),
        ("runs/log-batch", Fault::HtmlOk, 2),
        ("runs/log-batch", Fault::Html404, 2),
        ("runs/log-batch", Fault::RetryAfter("-1".into()), 1),
        ("runs/log-batch", Fault::RetryAfter("NaN".into()), 1),
        (
            "runs/log-batch",
            Fault::RetryAfter("Fri, 31 Dec 9999 23:59:59 GMT".into()),
            1,
        ),
        ("runs/log-batch", Fault::BadGateway, 1),
        ("runs/log-batch", Fault::Hang, 1),
        ("runs/log-batch", Fault::ResetAfter, 2),
        ("runs/update", Fault::HtmlOk, 1),
        ("runs/update", Fault::Html404, 1),
    ] {
        proxy.inject(pattern, fault, times);
    }
    // The request that is never answered costs one request timeout.
    std::env::set_var("MLFLOW_HTTP_REQUEST_TIMEOUT", "4");
    let t = tracker(
        "frontends",
        &dir.join("frontends"),
        &proxy.uri(),
        Duration::from_secs(300),
    );
    std::env::remove_var("MLFLOW_HTTP_REQUEST_TIMEOUT");
    for chunk in 0..10u64 {
        log_steps(&t, chunk * 10..(chunk + 1) * 10);
        t.flush().unwrap();
    }
    t.finish().expect("finish through the front end's faults");
    assert_eq!(proxy.faults_left(), 0, "every fault was met");
    let run_id = assert_all_once(rest, "frontends", 0..100);
    assert_eq!(rest.run(&run_id)["info"]["status"], "FINISHED");
    assert!(!dir.join("frontends/spool").exists());
}

/// The server refuses every batch that carries one key: the other keys' points all arrive,
/// the refused ones are counted per key in the summary, with one warning naming the key.
fn a_refused_key_costs_only_its_own_points(server: &MlflowServer, rest: &Rest, dir: &Path) {
    let proxy = FaultProxy::start(server.port, Mode::Pass);
    proxy.refuse_key("k_bad");
    let t = tracker(
        "refusedkey",
        &dir.join("refusedkey"),
        &proxy.uri(),
        Duration::from_secs(300),
    );
    for s in 0..300u64 {
        let mut row: Vec<(String, f64)> =
            (0..KEYS).map(|j| (format!("k{j}"), value(s, j))).collect();
        row.push(("k_bad".into(), s as f64));
        t.log_at(s, row);
    }
    let summary = t.finish().expect("finish: a refused key is not a failure");
    assert_all_once(rest, "refusedkey", 0..300);
    let refused: Vec<(String, u64)> = summary
        .refused()
        .into_iter()
        .map(|(_, k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(refused, vec![("k_bad".to_string(), 300)]);
    let said = warnings::lines_with(&["refused", "k_bad"]);
    assert_eq!(said.len(), 1, "one warning for the key: {said:?}");
}

/// Names MLflow refuses (`..x`, a combining mark Rust calls alphabetic) are mapped before
/// sending, with MLflow's own rules: they never cost the other points of their batch (which
/// was the whole batch of up to 1000 points before).
fn names_and_steps_mlflow_refuses_never_cost_a_batch(
    server: &MlflowServer,
    rest: &Rest,
    dir: &Path,
) {
    let t = tracker(
        "oddnames",
        &dir.join("oddnames"),
        &server.uri(),
        Duration::from_secs(300),
    );
    for s in 0..100u64 {
        let mut row: Vec<(String, f64)> =
            (0..KEYS).map(|j| (format!("k{j}"), value(s, j))).collect();
        row.push(("..x".into(), 1.0));
        row.push(("\u{915}\u{93f}".into(), 2.0));
        t.log_at(s, row);
    }
    let summary = t.finish().expect("finish");
    let run_id = assert_all_once(rest, "oddnames", 0..100);
    assert_eq!(rest.history(&run_id, "_.x").len(), 100);
    assert_eq!(rest.history(&run_id, "\u{915}_").len(), 100);
    assert!(summary.refused().is_empty(), "{:?}", summary.refused());
}

/// An artifact upload that always fails (a gateway in front of the artifact store) is set
/// aside: the metrics logged after it arrive meanwhile; `finish` leaves the upload in the
/// spool, and `ezpz sync` delivers it once the gateway works.
fn an_upload_that_always_fails_holds_up_nothing(server: &MlflowServer, rest: &Rest, dir: &Path) {
    let proxy = FaultProxy::start(server.port, Mode::Pass);
    proxy.inject("mlflow-artifacts", Fault::BadGateway, 1_000_000);
    let out = dir.join("aside");
    let file = dir.join("notes.txt");
    std::fs::write(&file, "kept for later").unwrap();
    let t = tracker("aside", &out, &proxy.uri(), Duration::from_secs(6));
    log_steps(&t, 0..10);
    t.log_artifacts([("notes", &file)]);
    t.flush().unwrap();
    log_steps(&t, 10..60);
    t.flush().unwrap();
    // Delivered while the upload keeps failing.
    rest.wait_for_points("aside", "k0", 60, Duration::from_secs(90));
    let err = t.finish().expect_err("the upload is not delivered");
    assert!(err.to_string().contains("ezpz sync"), "{err}");
    let run_id = assert_all_once(rest, "aside", 0..60);
    assert!(warnings::lines_with(&["set aside", "notes"]).len() == 1);
    drop(proxy);
    let (ok, said) = common::ezpz_sync(&out, &["--tracking-uri", &server.uri()]);
    assert!(ok, "ezpz sync failed: {said}");
    assert_eq!(rest.artifact(&run_id, "notes/notes.txt"), b"kept for later");
    assert_eq!(rest.run(&run_id)["info"]["status"], "FINISHED");
}

/// A spool whose writer runs on another host (a job still running on a compute node) is
/// not taken over by `ezpz sync` on a login node unless forced.
fn a_spool_owned_on_another_host_is_refused(dir: &Path) {
    let out = dir.join("elsewhere");
    let spool = out.join("spool/mlflow");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("entries.log"), "1 metrics {\"metrics\":[]}\n").unwrap();
    std::fs::write(spool.join("owner.pid"), "4000000\ncompute-node-17\n123\n").unwrap();
    let before = std::fs::read(spool.join("entries.log")).unwrap();
    let (ok, said) = common::ezpz_sync(&out, &[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("compute-node-17") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(std::fs::read(spool.join("entries.log")).unwrap(), before);
}
