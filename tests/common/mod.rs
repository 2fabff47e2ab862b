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

/// The `ezpz` command-line tool, built on demand (a root test cannot name another
/// package's binary otherwise) the way `scripts/test` builds it
/// ([`examples::suite_build`]`.args(["--bin", "ezpz"])`), so usually nothing is built.
pub fn ezpz_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let out = examples::suite_build(&examples::profile_dir())
            .args(["-q", "--bin", "ezpz", "--message-format=json"])
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
