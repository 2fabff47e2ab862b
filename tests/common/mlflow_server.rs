//! A real MLflow tracking server (the pinned venv's `mlflow server`) on a free loopback port,
//! with a sqlite store and the artifact proxy, for the MLflow tests.
//!
//! The server runs in its own process group under a small shell watchdog: stopping it (or
//! dropping the handle) signals the whole group, and if the test process dies first the
//! watchdog takes the server down with it, so no server outlives its test binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer `/health` (15–25 s is usual on 2 busy cores).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// See the module docs.
pub struct MlflowServer {
    python: PathBuf,
    /// The data directory (sqlite database, artifacts, log).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The port it listens on.
    pub port: u16,
    child: Option<Child>,
}

impl MlflowServer {
    /// Starts a server on a free port and waits until it answers; `None` (skipped) when the
    /// oracle venv is missing outside CI.
    pub fn start() -> Option<MlflowServer> {
        let python = super::oracle_python("mlflow")?;
        let tmp = tempfile::tempdir().expect("tempdir for the MLflow server");
        let mut server = MlflowServer {
            python,
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
            port: super::free_port(),
            child: None,
        };
        server.launch(&[]);
        server.wait_healthy();
        Some(server)
    }

    /// A handle for a server that is not running yet (port reserved by number only): call
    /// [`launch`](Self::launch) later, as in "the server appears after training started".
    pub fn not_started() -> Option<MlflowServer> {
        let python = super::oracle_python("mlflow")?;
        let tmp = tempfile::tempdir().expect("tempdir for the MLflow server");
        Some(MlflowServer {
            python,
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
            port: super::free_port(),
            child: None,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server process (same port and database as before) with extra flags; does
    /// not wait.
    pub fn launch(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "server already running");
        let db = format!("sqlite:///{}", self.dir.join("db.sqlite").display());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        let mut args: Vec<String> = vec![
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            &db,
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        // The watchdog: run the server, and end the whole group when either the server or
        // the test process (the owner) is gone.
        // (dash's `kill` takes no `--`; a negative pid is the group.)
        let script = r#"owner="$1"; shift; "$@" & srv=$!
while kill -0 "$owner" 2>/dev/null && kill -0 "$srv" 2>/dev/null; do sleep 1; done
kill -TERM "$srv" 2>/dev/null; sleep 3; kill -KILL -$$ 2>/dev/null"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("mlflow-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.python)
            .args(&args)
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            // Uploaded artifacts land in `./mlartifacts` of the server's directory.
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start mlflow server");
        self.child = Some(child);
    }

    /// Waits until `/health` answers 200.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.is_healthy() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        panic!(
            "MLflow server on port {} did not become healthy within {:?}; log:\n{log}",
            self.port, START_TIMEOUT
        );
    }

    /// Whether `/health` answers 200 now.
    pub fn is_healthy(&self) -> bool {
        health(self.port)
    }

    /// Restarts on the same port and database with `extra` flags, and waits for it.
    pub fn restart(&mut self, extra: &[&str]) {
        self.stop();
        self.launch(extra);
        self.wait_healthy();
    }

    /// Stops the server gracefully (SIGTERM to its group), then forcefully if needed.
    pub fn stop(&mut self) {
        self.signal("TERM");
    }

    /// Kills the server at once (SIGKILL to its group), as a crash would.
    pub fn kill(&mut self) {
        self.signal("KILL");
    }

    fn signal(&mut self, sig: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), "--", &group])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) && !port_open(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.wait();
        while port_open(self.port) && Instant::now() < deadline + Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// `GET /health` answered `200` (a bare HTTP/1.0 request, no client library needed).
fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200")
}
