//! Files are owned: every run gets a directory of its own, a directory that holds a run is
//! appended to (resumed) or refused but never truncated, user names never take the
//! tracker's files, and durations from the environment never panic.
//!
//! Tests that need their own environment or several processes run this binary again as a
//! child (`EZPZ_FILES_CHILD=<what>`, test `child`), which acts and exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ezpz_tracker::{
    register_backend, setup_tracker, unregister_backend, Error, MemoryBackend, Tracker,
    TrackerBuilder,
};

const CHILD: &str = "EZPZ_FILES_CHILD";
const CHILD_DIR: &str = "EZPZ_FILES_CHILD_DIR";
const CHILD_START_MS: &str = "EZPZ_FILES_CHILD_START_MS";
/// `build` or `setup`: how a `claim` child makes its tracker.
const CHILD_HOW: &str = "EZPZ_FILES_CHILD_HOW";
/// A folder where each `claim` child leaves a file once it has its tracker (or its refusal);
/// the ones with a tracker log only when the parent has put `go` there.
const CHILD_SYNC: &str = "EZPZ_FILES_CHILD_SYNC";
/// How long the parent and the children of a race wait for each other at most.
const SYNC_LIMIT: Duration = Duration::from_secs(120);
/// Rows a `claim` child logs.
const CLAIM_ROWS: u64 = 20;

/// Runs this test binary as a child doing `what` in `cwd`, with `env`.
fn spawn_child(what: &str, cwd: &Path, env: &[(&str, &str)]) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, what)
        .env_remove("EZPZ_TRACKER_BACKENDS")
        .env_remove("EZPZ_TRACKERS")
        .env_remove("EZPZ_FINISH_TIMEOUT")
        .env_remove("EZPZ_RESUME")
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child")
}

fn wait(child: std::process::Child) -> Output {
    let out = child.wait_with_output().expect("wait child");
    assert!(
        out.status.success(),
        "child failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sleeps until `done` holds, failing the test after [`SYNC_LIMIT`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < SYNC_LIMIT, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sleeps until `var` (unix ms), when it is set.
fn wait_for(var: &str) {
    if let Ok(at) = std::env::var(var) {
        let at: u128 = at.parse().unwrap();
        while unix_ms() < at {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// The child side: does what `EZPZ_FILES_CHILD` says; a no-op in the normal test run.
#[test]
fn child() {
    let Ok(what) = std::env::var(CHILD) else {
        return;
    };
    // Start together with the other children (the parent picks a moment just after a
    // second begins, so all of them build within the same second).
    wait_for(CHILD_START_MS);
    let dir = std::env::var(CHILD_DIR).ok().map(PathBuf::from);
    match what.as_str() {
        "default-outdir" => {
            let t = setup_tracker(Some("race"), Some("csv,jsonl"), None, None, Some(0));
            for step in 0..5u64 {
                t.log_at(step, [("pid", f64::from(std::process::id()))]);
            }
            t.finish().unwrap();
        }
        "setup" => {
            let t = setup_tracker(Some("env"), None, None, dir.as_deref(), Some(0));
            for step in 0..3u64 {
                t.log_at(step, [("loss", 1.0)]);
            }
            t.flush().unwrap();
            t.finish().unwrap();
        }
        "build" => {
            let t = csv_jsonl_rank0(&dir.unwrap());
            t.log_at(10, [("loss", 2.0)]);
            t.finish().unwrap();
        }
        "claim" => claim_child(&dir.unwrap()),
        "hold" => {
            let t = csv_jsonl_rank0(&dir.unwrap());
            t.log_at(0, [("loss", 1.0)]);
            t.flush().unwrap();
            println!("HELD");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown child `{other}`"),
    }
}

/// A rank-0 builder of CSV and JSONL into `dir`.
fn csv_jsonl_builder(dir: &Path) -> TrackerBuilder {
    TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(dir)
        .rank(0)
}

/// [`csv_jsonl_builder`], built (a child panics with the error).
fn csv_jsonl_rank0(dir: &Path) -> Tracker {
    csv_jsonl_builder(dir)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A `claim` child: gets a tracker on `dir` the way `EZPZ_FILES_CHILD_HOW` says (`build`,
/// or `setup` = `setup_tracker`), waits until every child has built, logs [`CLAIM_ROWS`]
/// rows of its pid and says where they went (`WROTE <dir>`), or says `REFUSED <error>`.
fn claim_child(dir: &Path) {
    let sync = PathBuf::from(std::env::var(CHILD_SYNC).unwrap());
    let say_built = || std::fs::write(sync.join(std::process::id().to_string()), b"").unwrap();
    let tracker = if std::env::var(CHILD_HOW).as_deref() == Ok("setup") {
        setup_tracker(Some("claim"), Some("csv,jsonl"), None, Some(dir), Some(0))
    } else {
        match csv_jsonl_builder(dir).report(false).build() {
            Ok(t) => t,
            Err(e) => {
                say_built();
                println!("REFUSED {e}");
                return;
            }
        }
    };
    say_built();
    wait_until("the parent's go", || sync.join("go").exists());
    let pid = f64::from(std::process::id());
    for step in 0..CLAIM_ROWS {
        tracker.log_at(step, [("pid", pid)]);
    }
    let outdir = tracker.finish().unwrap().outdir.unwrap();
    println!("WROTE {}", outdir.display());
}

/// What `claim` children said: (`WROTE` dirs, `REFUSED` errors, each sibling writer's
/// stderr).
struct Claims {
    wrote: Vec<PathBuf>,
    refused: Vec<String>,
    sibling_stderr: Vec<String>,
}

/// Starts `claim` children on `dir` at one moment, `how` for each (`build`/`setup`), with
/// `env`; the ones that got a tracker start logging once all have built.
fn race_for(dir: &Path, how: &[&str], env: &[(&str, &str)]) -> Claims {
    let root = dir.parent().unwrap();
    let sync = root.join("sync");
    std::fs::create_dir(&sync).unwrap();
    let start = (unix_ms() + 1500).to_string();
    let children: Vec<_> = how
        .iter()
        .map(|how| {
            let mut vars = vec![
                (CHILD_DIR, dir.to_str().unwrap()),
                (CHILD_START_MS, start.as_str()),
                (CHILD_SYNC, sync.to_str().unwrap()),
                (CHILD_HOW, *how),
            ];
            vars.extend_from_slice(env);
            spawn_child("claim", root, &vars)
        })
        .collect();
    wait_until("every child to build", || {
        std::fs::read_dir(&sync).unwrap().count() == how.len()
    });
    std::fs::write(sync.join("go"), b"").unwrap();
    let mut claims = Claims {
        wrote: Vec::new(),
        refused: Vec::new(),
        sibling_stderr: Vec::new(),
    };
    for child in children {
        let out = wait(child);
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            // libtest may have begun the line (`test child ... `).
            if let Some((_, path)) = line.split_once("WROTE ") {
                let path = PathBuf::from(path);
                if path != dir {
                    claims
                        .sibling_stderr
                        .push(String::from_utf8_lossy(&out.stderr).into_owned());
                }
                claims.wrote.push(path);
            } else if let Some((_, err)) = line.split_once("REFUSED ") {
                claims.refused.push(err.to_string());
            }
        }
    }
    claims
}

/// The pids of the `claim` rows in `dir` after `before` rows of an earlier run; checks that
/// `metrics.csv` has one header at the top and that `metrics.jsonl` holds the same rows.
fn claim_rows(dir: &Path, before: usize) -> Vec<String> {
    let rows = read_csv(&dir.join("metrics.csv"));
    assert_eq!(rows[0], ["step", "pid"], "{}", dir.display());
    let steps = jsonl_steps(&dir.join("metrics.jsonl"));
    assert_eq!(steps.len(), rows.len() - 1, "{}: {rows:?}", dir.display());
    rows[1 + before..].iter().map(|r| r[1].clone()).collect()
}

/// Asserts that `pids` are [`CLAIM_ROWS`] rows of one process.
fn assert_one_writer(dir: &Path, pids: &[String]) {
    assert_eq!(pids.len() as u64, CLAIM_ROWS, "{}: {pids:?}", dir.display());
    assert!(
        pids.iter().all(|p| *p == pids[0]),
        "{}: {pids:?}",
        dir.display()
    );
}

/// Processes started together on one explicit outdir that holds no run yet (an array job
/// given the same outdir, ranks that all think they are rank 0): exactly one writes there;
/// the others are refused by `build` or moved by `setup_tracker` to a sibling of their own,
/// with one warning; every writer's rows are whole, in its own files.
#[test]
fn processes_started_together_on_one_outdir_claim_it_once() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let how = ["build", "setup", "build", "setup", "build", "setup"];
    let claims = race_for(&dir, &how, &[]);
    let winners = claims.wrote.iter().filter(|d| **d == dir).count();
    assert_eq!(winners, 1, "{:?} {:?}", claims.wrote, claims.refused);
    // Every `setup` child writes somewhere; `build` children other than a winner are refused.
    assert_eq!(claims.wrote.len() + claims.refused.len(), how.len());
    assert!(claims.wrote.len() >= 3, "{:?}", claims.wrote);
    assert!(
        claims
            .refused
            .iter()
            .all(|e| e.contains("already holds a run")),
        "{:?}",
        claims.refused
    );
    let mut unique = claims.wrote.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), claims.wrote.len(), "{:?}", claims.wrote);
    for stderr in &claims.sibling_stderr {
        assert_eq!(stderr.matches("this run writes to").count(), 1, "{stderr}");
    }
    for written in &claims.wrote {
        assert_one_writer(written, &claim_rows(written, 0));
    }
}

/// Processes resuming one run at once: exactly one appends; `build` refuses the others
/// (the run is being written), `setup_tracker` moves them to siblings.
#[test]
fn processes_resuming_one_run_at_once_append_once() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let t = TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(&dir)
        .rank(0)
        .report(false)
        .build()
        .unwrap();
    t.log_at(0, [("pid", 0.0)]);
    t.finish().unwrap();
    drop(t);
    let how = ["build", "build", "setup", "build", "setup"];
    let claims = race_for(&dir, &how, &[("EZPZ_RESUME", "1")]);
    let winners = claims.wrote.iter().filter(|d| **d == dir).count();
    assert_eq!(winners, 1, "{:?} {:?}", claims.wrote, claims.refused);
    assert_eq!(claims.wrote.len() + claims.refused.len(), how.len());
    assert!(
        claims
            .refused
            .iter()
            .all(|e| e.contains("is being written")),
        "{:?}",
        claims.refused
    );
    assert_one_writer(&dir, &claim_rows(&dir, 1));
    for written in claims.wrote.iter().filter(|d| **d != dir) {
        assert_one_writer(written, &claim_rows(written, 0));
    }
}

/// A run killed mid-way (`kill -9`) leaves its outdir claimed: a fresh run is refused there,
/// a resumed one appends.
#[test]
fn a_killed_run_is_resumable_and_its_outdir_stays_taken() {
    use std::io::BufRead;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let mut held = spawn_child("hold", root.path(), &[(CHILD_DIR, dir.to_str().unwrap())]);
    let mut said = std::io::BufReader::new(held.stdout.take().unwrap());
    let mut line = String::new();
    // libtest's own lines come first.
    while !line.contains("HELD") {
        line.clear();
        assert!(said.read_line(&mut line).unwrap() > 0, "the child ended");
    }
    held.kill().unwrap();
    held.wait().unwrap();
    let fresh = TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(&dir)
        .rank(0)
        .build();
    assert!(
        matches!(fresh, Err(Error::RunExists { .. })),
        "{:?}",
        fresh.err()
    );
    let t = TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(&dir)
        .rank(0)
        .resume(true)
        .build()
        .unwrap();
    t.log_at(1, [("loss", 2.0)]);
    t.finish().unwrap();
    assert_eq!(jsonl_steps(&dir.join("metrics.jsonl")), [0, 1]);
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn jsonl_steps(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// Processes of one program started in the same second with no outdir (an array job, a
/// sweep) each write a directory of their own.
#[test]
fn processes_started_together_with_the_default_outdir_get_their_own() {
    let cwd = tempfile::tempdir().unwrap();
    // 300 ms into the next second.
    let start = (unix_ms() / 1000 + 1) * 1000 + 300;
    let start = start.to_string();
    let children: Vec<_> = (0..4)
        .map(|_| spawn_child("default-outdir", cwd.path(), &[(CHILD_START_MS, &start)]))
        .collect();
    for c in children {
        wait(c);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cwd.path().join("outputs/race"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    for dir in &dirs {
        let rows = read_csv(&dir.join("metrics.csv"));
        assert_eq!(rows.len(), 6, "{}: {rows:?}", dir.display());
        assert_eq!(rows[0], ["step", "pid"]);
        assert!(rows[1..].iter().all(|r| r[1] == rows[1][1]), "{rows:?}");
        assert_eq!(jsonl_steps(&dir.join("metrics.jsonl")), [0, 1, 2, 3, 4]);
    }
}

/// `EZPZ_FINISH_TIMEOUT` beyond what `Duration` holds, infinite, negative or NaN: the
/// tracker starts, logs and finishes (a huge value is capped, a meaningless one ignored with
/// a warning), also with an offline W&B run, which waits a share of it.
#[test]
fn finish_timeout_from_the_environment_never_panics() {
    let root = tempfile::tempdir().unwrap();
    for (i, value) in ["1e20", "inf", "-1", "NaN", "soon"].into_iter().enumerate() {
        let dir = root.path().join(format!("run{i}"));
        let out = wait(spawn_child(
            "setup",
            root.path(),
            &[
                ("EZPZ_FINISH_TIMEOUT", value),
                ("EZPZ_TRACKER_BACKENDS", "csv,wandb"),
                ("WANDB_MODE", "offline"),
                (CHILD_DIR, dir.to_str().unwrap()),
            ],
        ));
        assert_eq!(read_csv(&dir.join("metrics.csv")).len(), 4, "{value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let warned = stderr.contains(&format!("ezpz: ignoring `EZPZ_FINISH_TIMEOUT={value}`"));
        assert_eq!(
            warned,
            ["-1", "NaN", "soon"].contains(&value),
            "{value}: {stderr}"
        );
    }
}

#[test]
fn duration_max_options_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let t = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir.path())
        .rank(0)
        .finish_timeout(Duration::MAX)
        .enqueue_timeout(Duration::MAX)
        .build()
        .unwrap();
    t.log([("loss", 1.0)]);
    t.flush().unwrap();
    t.finish().unwrap();
    assert_eq!(read_csv(&dir.path().join("metrics.csv")).len(), 2);
}

/// A run writes `steps` of `loss` (and `acc` from step 3 on) into `dir` with `builder`.
fn run(builder: TrackerBuilder, dir: &Path, steps: std::ops::Range<u64>) -> PathBuf {
    let t = builder
        .backends("csv,jsonl,tensorboard,files-last-step")
        .outdir(dir)
        .rank(0)
        .report(false)
        .build()
        .unwrap();
    for step in steps {
        if step >= 3 {
            t.log_at(step, [("loss", step as f64), ("acc", 0.5)]);
        } else {
            t.log_at(step, [("loss", step as f64)]);
        }
    }
    let summary = t.finish().unwrap();
    summary.outdir.unwrap()
}

/// An outdir that holds a run: `build` refuses it (saying how to resume), `setup_tracker`
/// writes to a fresh sibling, and a resumed run appends below the same header.
#[test]
fn a_run_in_the_outdir_is_resumed_or_refused_never_truncated() {
    let seen = MemoryBackend::named("files-last-step");
    let last_steps = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = last_steps.clone();
    let handle = seen.clone();
    register_backend("files-last-step", move |ctx| {
        log.lock().unwrap().push(ctx.last_step);
        Ok(Box::new(handle.clone()))
    });
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    assert_eq!(run(TrackerBuilder::new(), &dir, 0..3), dir);
    let before = std::fs::read(dir.join("metrics.csv")).unwrap();

    let err = TrackerBuilder::new()
        .backends("csv,jsonl")
        .outdir(&dir)
        .rank(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::RunExists { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("resume(true)") && text.contains("EZPZ_RESUME=1"),
        "{text}"
    );
    assert_eq!(std::fs::read(dir.join("metrics.csv")).unwrap(), before);

    let t = setup_tracker(Some("p"), Some("csv,jsonl"), None, Some(&dir), Some(0));
    t.log([("loss", 9.0)]);
    let sibling = t.finish().unwrap().outdir.unwrap();
    assert_eq!(sibling, root.path().join("run-2"));
    assert_eq!(read_csv(&sibling.join("metrics.csv")).len(), 2);
    assert_eq!(std::fs::read(dir.join("metrics.csv")).unwrap(), before);

    assert_eq!(run(TrackerBuilder::new().resume(true), &dir, 3..6), dir);
    let rows = read_csv(&dir.join("metrics.csv"));
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(rows[0], ["step", "loss", "acc"]);
    assert_eq!(rows[1], ["0", "0.0", ""]);
    assert_eq!(rows[6], ["5", "5.0", "0.5"]);
    assert_eq!(jsonl_steps(&dir.join("metrics.jsonl")), [0, 1, 2, 3, 4, 5]);
    let event_files = std::fs::read_dir(dir.join("tensorboard")).unwrap().count();
    assert_eq!(event_files, 2);
    assert_eq!(*last_steps.lock().unwrap(), [None, Some(2)]);
    unregister_backend("files-last-step");

    // Automatic steps of a resumed run carry on after the last step it wrote.
    let t = TrackerBuilder::new()
        .backends("jsonl")
        .outdir(&dir)
        .rank(0)
        .report(false)
        .resume(true)
        .build()
        .unwrap();
    t.log([("loss", 6.0)]);
    t.finish().unwrap();
    assert_eq!(
        jsonl_steps(&dir.join("metrics.jsonl")),
        [0, 1, 2, 3, 4, 5, 6]
    );
}

/// `EZPZ_RESUME=1` resumes as `resume(true)` does; without it the same program fails to
/// build.
#[test]
fn ezpz_resume_from_the_environment() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let env = [(CHILD_DIR, dir.to_str().unwrap())];
    wait(spawn_child("build", root.path(), &env));
    let again = spawn_child("build", root.path(), &env)
        .wait_with_output()
        .unwrap();
    assert!(!again.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(said.contains("already holds a run"), "{said}");
    let env = [(CHILD_DIR, dir.to_str().unwrap()), ("EZPZ_RESUME", "1")];
    wait(spawn_child("build", root.path(), &env));
    assert_eq!(jsonl_steps(&dir.join("metrics.jsonl")), [10, 10]);
    assert_eq!(read_csv(&dir.join("metrics.csv")).len(), 3);
}

/// `log_table("metrics", …)` in the middle of a run: every row still reaches `metrics.csv`.
#[test]
fn a_table_named_metrics_keeps_every_row_in_metrics_csv() {
    let dir = tempfile::tempdir().unwrap();
    let t = TrackerBuilder::new()
        .backends("csv")
        .outdir(dir.path())
        .rank(0)
        .build()
        .unwrap();
    for step in 0..10u64 {
        t.log_at(step, [("loss", 1.0)]);
    }
    t.log_table("metrics", ["a", "b"], vec![vec![1, 2]]);
    for step in 10..20u64 {
        t.log_at(step, [("loss", 1.0)]);
    }
    t.finish().unwrap();
    assert_eq!(read_csv(&dir.path().join("metrics.csv")).len(), 21);
    assert_eq!(
        read_csv(&dir.path().join("_metrics.csv")),
        [["a", "b"], ["1", "2"]]
    );
}

/// `log_artifacts` on the folder that holds the outdir, with a link loop in it: the copy
/// ends, holds the sources, and not the run itself.
#[cfg(unix)]
#[test]
fn artifacts_that_hold_the_outdir_or_a_link_loop_copy_once() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("src")).unwrap();
    std::fs::write(project.path().join("src/lib.rs"), b"//").unwrap();
    std::os::unix::fs::symlink("..", project.path().join("src/loop")).unwrap();
    let out = project.path().join("outputs/run");
    let t = TrackerBuilder::new()
        .backends("csv")
        .outdir(&out)
        .rank(0)
        .build()
        .unwrap();
    t.log([("loss", 1.0)]);
    t.log_artifacts([("code", project.path())]);
    t.finish().unwrap();
    let name = project.path().file_name().unwrap();
    let copy = out.join("artifacts/code").join(name);
    assert!(copy.join("src/lib.rs").is_file());
    assert!(std::fs::symlink_metadata(copy.join("src/loop"))
        .unwrap()
        .is_symlink());
    assert!(copy.join("outputs").is_dir());
    assert!(!copy.join("outputs/run").exists());
}
