//! The W&B side of the harness: the loopback capture server (`tests/oracles/
//! wandb_capture_server.py`) and the real `wandb` CLI of the oracle venv.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A dummy API key of the length W&B expects (the capture server accepts anything).
pub const DUMMY_API_KEY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A running capture server; killed on drop.
pub struct CaptureServer {
    child: Child,
    state: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl CaptureServer {
    /// Starts the server with `python`; `fails` are `KIND:ACTION:COUNT` injections.
    pub fn start(python: &Path, fails: &[&str]) -> CaptureServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port_file = dir.path().join("port");
        let state = dir.path().join("state.json");
        let script = super::repo_root().join("tests/oracles/wandb_capture_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--state")
            .arg(&state)
            .stdout(Stdio::null());
        for f in fails {
            cmd.arg("--fail").arg(f);
        }
        let child = cmd.spawn().expect("start the capture server");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().to_string();
            }
            assert!(Instant::now() < deadline, "capture server did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        CaptureServer {
            child,
            state,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// Everything the server saw and rebuilt so far.
    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(&self.state).expect("read capture state");
        serde_json::from_str(&text).expect("capture state is JSON")
    }

    /// The rebuilt run `id` (history lines parsed; `null` for a line never received).
    pub fn run(&self, id: &str) -> Value {
        let mut run = self.state()["runs"][id].clone();
        assert!(!run.is_null(), "the server never saw run `{id}`");
        if let Some(lines) = run["history"].as_array_mut() {
            for l in lines.iter_mut() {
                if let Some(s) = l.as_str() {
                    *l = parse_json(s);
                }
            }
        }
        if let Some(s) = run["summary"].as_str() {
            run["summary"] = parse_json(s);
        }
        run
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses JSON that may hold the bare `NaN`/`Infinity` W&B writes (as strings `"NaN"`...).
pub fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| {
        let fixed = s
            .replace("-Infinity", "\"-Infinity\"")
            .replace(":Infinity", ":\"Infinity\"")
            .replace("NaN", "\"NaN\"");
        serde_json::from_str(&fixed).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    })
}

/// The `wandb` command of the venv whose Python is `python`.
pub fn wandb_cli(python: &Path) -> PathBuf {
    python.with_file_name("wandb")
}

fn run_cli(python: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(wandb_cli(python));
    // The CLI writes its debug logs under `./wandb`: keep them out of the repository.
    cmd.args(args)
        .current_dir(home.path())
        .env("WANDB_DIR", home.path())
        .env("WANDB_CONFIG_DIR", home.path())
        .env("WANDB_CACHE_DIR", home.path())
        .env_remove("WANDB_MODE")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run the wandb CLI")
}

/// `wandb sync --yes <extra> <path>` against `server`; panics with the CLI's output on failure.
pub fn sync(python: &Path, server: &CaptureServer, path: &Path, extra: &[&str]) -> String {
    let mut args = vec!["sync", "--yes"];
    args.extend_from_slice(extra);
    let p = path.to_string_lossy().to_string();
    args.push(&p);
    let out = run_cli(
        python,
        &args,
        &[
            ("WANDB_BASE_URL", &server.url),
            ("WANDB_API_KEY", DUMMY_API_KEY),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "wandb sync failed:\n{text}");
    text
}

/// `wandb leet inspect --json <path>`: one JSON value per record.
pub fn leet_records(python: &Path, path: &Path) -> Vec<Value> {
    let out = run_cli(
        python,
        &["leet", "inspect", "--json", &path.to_string_lossy()],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "leet inspect failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_json)
        .collect()
}

/// `wandb leet inspect --summary --json <path>`: state, summary, config, exit code.
pub fn leet_summary(python: &Path, path: &Path) -> Value {
    let out = run_cli(
        python,
        &[
            "leet",
            "inspect",
            "--summary",
            "--json",
            &path.to_string_lossy(),
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "leet inspect --summary failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_json(&text)
}
