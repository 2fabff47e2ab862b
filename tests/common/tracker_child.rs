//! Drives `ezpz-test-child` (tests/bin/tracker_child.rs), a separate training process.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Variables that would leak the test environment's tracking setup into the child.
const CLEARED: &[&str] = &[
    "EZPZ_TRACKER_BACKENDS",
    "EZPZ_TRACKERS",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "AMSC_API_KEY",
    "AM_SC_API_KEY",
    "WB_PROJECT",
    "WANDB_PROJECT",
    "WB_PROJECT_NAME",
    "WANDB_API_KEY",
    "WANDB_MODE",
    "EZPZ_RUN_NAME",
    "EZPZ_TAGS",
    "EZPZ_NOTES",
    "EZPZ_RUN_GROUP",
    "EZPZ_JOB_TYPE",
];

/// A running child.
pub struct TrackerChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl TrackerChild {
    /// Starts the child on `outdir` with exactly these tracking variables.
    pub fn spawn(outdir: &Path, env: &[(&str, &str)]) -> TrackerChild {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ezpz-test-child"));
        for name in CLEARED {
            cmd.env_remove(name);
        }
        cmd.envs(env.iter().copied())
            .arg(outdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ezpz-test-child");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut c = TrackerChild {
            child,
            stdin,
            stdout,
        };
        c.expect_line("ready");
        c
    }

    fn expect_line(&mut self, want: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read child");
        assert_eq!(line.trim(), want, "child said `{line}`");
    }

    /// Sends one command and waits for its `ok`.
    pub fn cmd(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write child");
        self.stdin.flush().expect("flush child");
        self.expect_line("ok");
    }

    /// Sends `finish` and waits for the exit; returns (exit success, stderr).
    pub fn finish(mut self) -> (bool, String) {
        self.cmd("finish");
        let out = self.child.wait_with_output().expect("wait child");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// `kill -9`: the process gets no chance to do anything.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL child");
        let _ = self.child.wait();
    }
}

/// The value the child logs for metric `m<j>` at `step`.
pub fn child_value(step: u64, j: usize) -> f64 {
    step as f64 * 0.5 + j as f64
}
