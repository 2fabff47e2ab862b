//! Shared harness for the cross-crate tests: the oracle venv, skipping rules, free ports.
#![allow(dead_code)]

pub mod backends;
pub mod examples;

use std::path::PathBuf;

pub mod wandb_capture;

/// The Python of the pinned oracle venv (`EZPZ_TEST_PYTHON`, else `~/.cache/ezpz/venv`), when
/// it has `module` importable.
///
/// Outside CI a missing oracle skips the test with a one-line reason (returns `None`); with
/// `CI` set it fails loudly, because `scripts/test` is supposed to have installed it.
pub fn oracle_python(module: &str) -> Option<PathBuf> {
    let python = std::env::var_os("EZPZ_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ezpz/venv/bin/python"))
        })
        .filter(|p| p.exists());
    let ok = python.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", &format!("import {module}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if ok {
        return python;
    }
    skip(&format!(
        "Python module `{module}` not found in the oracle venv (run scripts/test to install it)"
    ));
    None
}

/// Skips a test outside CI (prints the reason); panics in CI, where every oracle must exist.
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("oracle missing in CI: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// The repository root (where `Cargo.toml` of the `ezpz` package is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A compiled example of the root package (`cargo test` builds examples beside the tests:
/// `target/<profile>/examples/<name>`).
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "example `{name}` not built at {} (run through `cargo test`)",
        bin.display()
    );
    bin
}

/// The quickstart example's ten documented scalars at `step` (`examples/quickstart.rs`).
pub fn quickstart_scalars(step: u64) -> [(&'static str, f64); 10] {
    let s = step as f64;
    let loss = 1.0 / (1.0 + s);
    [
        ("train/loss", loss),
        ("train/acc", 1.0 - loss),
        ("train/lr", 0.001),
        ("train/step_sq", s * s),
        ("train/m4", (s * 0.01).sin()),
        ("train/m5", (s * 0.01).cos()),
        ("train/m6", (1.0 + s).ln()),
        ("train/m7", (1.0 + s).sqrt()),
        ("train/m8", 1.0 / (1.0 + s * s)),
        ("train/m9", (-s * 1e-3).exp()),
    ]
}

pub mod fault_proxy;
pub mod mlflow_rest;
pub mod mlflow_server;
pub mod warnings;

/// The `ezpz` command-line tool, built on demand (`cargo build -p ezpz-tracker --bin ezpz`:
/// a root test cannot name another package's binary otherwise).
pub fn ezpz_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "ezpz-tracker",
                "--bin",
                "ezpz",
                "--message-format=json",
            ])
            .current_dir(repo_root())
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "building `ezpz` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"]["name"] == "ezpz")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the `ezpz` executable")
    })
    .clone()
}

/// Runs `ezpz sync <outdir>`; returns (success, stdout + stderr).
pub fn ezpz_sync(outdir: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(ezpz_binary())
        .arg("sync")
        .arg(outdir)
        .args(extra)
        .output()
        .expect("run ezpz sync");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
pub mod tracker_child;
