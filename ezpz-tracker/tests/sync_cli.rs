//! `ezpz sync`: help, usage errors, and spools it cannot finish.
//! (Replays into a real server are tested in the workspace's `tests/mlflow_faults.rs`.)
#![cfg(feature = "mlflow")]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ezpz_tracker::{register_backend, MlflowBackend, MlflowOptions, TrackerBuilder};

fn ezpz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ezpz"))
        .args(args)
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .expect("run ezpz")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn sync_help_and_usage_errors() {
    let o = ezpz(&["--help"]);
    assert!(o.status.success());
    assert!(text(&o).contains("sync"), "{}", text(&o));
    let o = ezpz(&["sync", "--help"]);
    assert!(o.status.success());
    assert!(text(&o).contains("--tracking-uri"), "{}", text(&o));
    for (args, says) in [
        (&["sync"][..], "<RUN>"),
        (&["sync", "a", "b"][..], "unexpected argument 'b'"),
        (
            &["sync", "a", "--timeout", "soon"][..],
            "needs a number of seconds",
        ),
        (
            &["sync", "a", "--bogus"][..],
            "unexpected argument '--bogus'",
        ),
    ] {
        let o = ezpz(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains("Usage: ezpz sync") || text(&o).contains("try '--help'"),
            "{args:?} shows the usage or points at it"
        );
    }
}

#[test]
fn sync_without_a_spool_has_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let o = ezpz(&["sync", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing to deliver"));
}

/// A run whose server never answered: `finish` leaves the spool and names the command.
fn leave_a_spool(outdir: &Path) -> String {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = MlflowOptions::new()
        .tracking_uri(format!("http://127.0.0.1:{dead}"))
        .experiment_name("cli");
    register_backend("mlflow-cli", move |ctx| {
        Ok(Box::new(MlflowBackend::new(ctx, options.clone())?))
    });
    let t = TrackerBuilder::new()
        .backends("mlflow-cli")
        .outdir(outdir)
        .finish_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    t.log([("loss", 1.0)]);
    let err = t.finish().expect_err("nothing can be delivered");
    let info = t
        .get_backend("mlflow")
        .and_then(|b| b.run_info)
        .unwrap_or_else(|| panic!("no run info after finish ({err})"));
    assert_eq!(
        info.command.as_deref(),
        Some(format!("ezpz sync {}", outdir.display()).as_str())
    );
    err.to_string()
}

#[test]
fn sync_keeps_what_it_cannot_deliver_and_respects_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let err = leave_a_spool(&out);
    assert!(
        err.contains(&format!("ezpz sync {}", out.display())),
        "{err}"
    );
    let spool = out.join("spool/mlflow");
    assert!(spool.join("entries.log").is_file());
    assert!(
        !spool.join("owner.pid").exists(),
        "finish hands the spool over"
    );

    let o = ezpz(&["sync", out.to_str().unwrap(), "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("left in"), "{}", text(&o));
    assert!(text(&o).contains("not reachable"), "{}", text(&o));
    assert!(spool.join("entries.log").is_file(), "the spool is kept");

    // This test process is alive: a spool it owns must not be replayed under it.
    std::fs::write(spool.join("owner.pid"), std::process::id().to_string()).unwrap();
    let o = ezpz(&["sync", out.to_str().unwrap(), "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!("process {} is still writing", std::process::id())),
        "{}",
        text(&o)
    );
}
