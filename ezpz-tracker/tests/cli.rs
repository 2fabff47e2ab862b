//! `ezpz ls`, `show`, `compare`, `tail` on runs these tests create — finished, failed (a
//! panic), killed (`kill -9`) and live — plus exit codes and `--help` snapshots.
//!
//! The training processes are this test binary itself, started with `EZPZ_CLI_CHILD` set:
//! [`child_process`] then builds a tracker and obeys commands on stdin.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use ezpz_tracker::TrackerBuilder;

const CHILD: &str = "EZPZ_CLI_CHILD";

/// The training process of the other tests (does nothing unless `EZPZ_CLI_CHILD` names its
/// outdir). Commands: `log A B` (steps A..B), `flush`, `finish`, `panic`; each answered `ok`.
#[test]
fn child_process() {
    let Some(outdir) = std::env::var_os(CHILD) else {
        return;
    };
    let lr: f64 = std::env::var("EZPZ_CLI_LR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.1);
    let tracker = TrackerBuilder::new()
        .project("cli-test")
        .backends("csv,jsonl")
        .outdir(PathBuf::from(outdir))
        .config(serde_json::json!({"lr": lr, "model": {"depth": 2}}))
        .build()
        .unwrap();
    // Tagged: the test harness prints `test child_process ... ` on the same line.
    let say = |s: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "@@{s}");
        let _ = out.flush();
    };
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["log", a, b] => {
                for step in a.parse::<u64>().unwrap()..b.parse::<u64>().unwrap() {
                    let loss = 2.0 / (1.0 + step as f64);
                    tracker.log_at(
                        step,
                        [
                            ("train/loss", loss),
                            ("train/lr", lr),
                            ("train/acc", 1.0 - loss / 2.0),
                        ],
                    );
                }
            }
            ["flush"] => tracker.flush().unwrap(),
            ["finish"] => {
                tracker.finish().unwrap();
                say("ok");
                return;
            }
            ["panic"] => panic!("training diverged"),
            _ => panic!("unknown command `{line}`"),
        }
        say("ok");
    }
}

struct Trainer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Trainer {
    fn start(outdir: &Path, lr: f64) -> Trainer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, outdir)
            .env("EZPZ_CLI_LR", lr.to_string())
            .env_remove("EZPZ_TRACKER_BACKENDS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut t = Trainer {
            child,
            stdin,
            stdout,
        };
        t.wait_for("ready");
        t
    }

    /// Reads the child's stdout up to its answer `want` (the test harness prints its own).
    fn wait_for(&mut self, want: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the child ended before `{want}`"
            );
            if line.trim_end().ends_with(&format!("@@{want}")) {
                return;
            }
        }
    }

    fn cmd(&mut self, c: &str) {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
        self.wait_for("ok");
    }

    fn finish(mut self) {
        self.cmd("finish");
        assert!(self.child.wait().unwrap().success());
    }

    fn panic(mut self) {
        writeln!(self.stdin, "panic").unwrap();
        self.stdin.flush().unwrap();
        assert!(!self.child.wait().unwrap().success());
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn ezpz(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ezpz"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `ezpz ls --json`: run directory name → status.
fn statuses(root: &Path) -> Vec<(String, String)> {
    let o = ezpz(&["ls", root.to_str().unwrap(), "--json"], root);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let dir = PathBuf::from(v["dir"].as_str().unwrap());
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            (name, v["status"].as_str().unwrap().to_string())
        })
        .collect()
}

fn spawn_tail(run: &Path, lines: &str) -> (Child, BufReader<ChildStdout>) {
    let mut tail = Command::new(env!("CARGO_BIN_EXE_ezpz"))
        .args([
            "tail",
            run.to_str().unwrap(),
            "-n",
            lines,
            "--interval",
            "0.05",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(tail.stdout.take().unwrap());
    (tail, out)
}

/// Reads `tail`'s lines until one starts with `prefix`; returns them all.
fn read_until(out: &mut BufReader<ChildStdout>, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "tail ended before `{prefix}`: {seen:?}"
        );
        seen.push(line.trim_end().to_string());
        if line.starts_with(prefix) {
            return seen;
        }
    }
}

#[test]
fn ls_show_tail_and_compare_on_finished_failed_killed_and_live_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("outputs");
    let project = root.join("cli-test");
    let run = |name: &str| project.join(name);

    // a: finished; c: killed (the failed run is the next test's).
    let mut a = Trainer::start(&run("a"), 0.1);
    a.cmd("log 0 20");
    a.finish();
    let mut c = Trainer::start(&run("c"), 0.1);
    c.cmd("log 0 5");
    c.cmd("flush");

    // c is live: listed as running, and `tail` follows it until it is killed.
    let st = statuses(&root);
    assert!(st.contains(&("c".into(), "running".into())), "{st:?}");
    // `tail` starts with the last two rows; the run goes on only once they are shown.
    let (mut tail, mut tail_out) = spawn_tail(&run("c"), "2");
    let first = read_until(&mut tail_out, "step=4");
    assert_eq!(first.len(), 2, "the last two rows first: {first:?}");
    assert!(first[0].starts_with("step=3") && first[0].contains("loss=0.500000"));
    c.cmd("log 5 8");
    c.cmd("flush");
    read_until(&mut tail_out, "step=7");
    c.kill();
    assert_eq!(tail.wait().unwrap().code(), Some(4), "tail: killed run");

    // d: live, followed by tail until it finishes (status 0), with a changed config.
    let mut d = Trainer::start(&run("d"), 0.2);
    d.cmd("log 0 3");
    d.cmd("flush");
    let (mut tail, mut tail_out) = spawn_tail(&run("d"), "1");
    // The last row first: then tail follows, and new rows come as they are written.
    assert_eq!(read_until(&mut tail_out, "step=2").len(), 1);
    d.cmd("log 3 6");
    d.cmd("flush");
    let rows = read_until(&mut tail_out, "step=5");
    assert_eq!(rows.len(), 3, "each new row once: {rows:?}");
    d.finish();
    assert_eq!(tail.wait().unwrap().code(), Some(0), "tail: finished run");

    let mut st = statuses(&root);
    st.sort();
    let want: Vec<(String, String)> = [("a", "finished"), ("c", "killed"), ("d", "finished")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(st, want);

    // The table: one row per run, with its last loss and backends.
    let o = ezpz(&["ls"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("RUN") && lines[0].contains("LAST LOSS"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    let row_c = lines.iter().find(|l| l.starts_with("cli-test/c")).unwrap();
    assert!(
        row_c.contains("killed") && row_c.contains("loss=0.2500"),
        "{row_c}"
    );
    assert!(row_c.contains("csv,jsonl"), "{row_c}");

    // Tail of an ended run: exits at once with the run's outcome.
    let o = ezpz(&["tail", run("a").to_str().unwrap(), "-n", "2"], dir.path());
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));

    // show: identity, the config change since the previous run, key metrics.
    let o = ezpz(&["show", "d"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("(finished)"), "{text}");
    assert!(text.contains("project    cli-test"), "{text}");
    assert!(
        text.contains("config changes since the previous run (c)"),
        "{text}"
    );
    assert!(text.contains("  lr: 0.1 → 0.2"), "{text}");
    let loss = text.lines().find(|l| l.starts_with("train/loss")).unwrap();
    assert!(loss.contains("0.333333") && loss.contains("2"), "{loss}");

    // compare: plots per key group, config differences, final values.
    let out = dir.path().join("cmp");
    let o = ezpz(
        &["compare", "a", "d", "--out", out.to_str().unwrap()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("| `lr` | 0.1 | 0.2 |"), "{text}");
    assert!(text.contains("| `train/loss` | 0.1 | 0.333333 |"), "{text}");
    #[cfg(feature = "report")]
    {
        let png = image::open(out.join("train.png")).unwrap().to_rgb8();
        let blue = png.pixels().filter(|p| p.0 == [31, 119, 180]).count();
        let orange = png.pixels().filter(|p| p.0 == [230, 110, 0]).count();
        assert!(
            blue > 100 && orange > 100,
            "both runs drawn: {blue} {orange}"
        );
    }
    assert!(out.join("compare.md").is_file());
    let o = ezpz(
        &[
            "compare",
            "a",
            "d",
            "--keys",
            "nothing",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
}

/// A run whose program panics (the tracker finishes while the panic unwinds) is `failed`
/// in `ezpz ls`, and `ezpz tail` on it exits with status 3.
///
/// Needs the tracker to tell its finish hooks the status `finish_with` got
/// (`report::set_finish_status`, called on the hooks' thread before they run).
#[test]
fn a_panicking_run_is_listed_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("outputs");
    let run = root.join("cli-test/b");
    let mut b = Trainer::start(&run, 0.1);
    b.cmd("log 0 10");
    b.panic();
    assert_eq!(statuses(&root), [("b".to_string(), "failed".to_string())]);
    let o = ezpz(&["tail", run.to_str().unwrap(), "-n", "1"], dir.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("step=9"), "{}", stdout(&o));
}

#[test]
fn exit_codes_scripts_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    assert_eq!(ezpz(&[], here).status.code(), Some(2));
    assert_eq!(ezpz(&["frobnicate"], here).status.code(), Some(2));
    assert_eq!(ezpz(&["compare", "one"], here).status.code(), Some(2));
    let o = ezpz(&["show", "nosuchrun"], here);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no run `nosuchrun`"), "{}", stderr(&o));
    let o = ezpz(&["ls", "missing-dir"], here);
    assert_eq!(o.status.code(), Some(1));
    let o = ezpz(&["ls", here.to_str().unwrap()], here);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("no runs under"));
    assert!(ezpz(&["--version"], here).status.success());
}

/// `ezpz --help` and each verb's help, against `tests/snapshots/help-*.txt`
/// (`EZPZ_UPDATE_SNAPSHOTS=1` rewrites them).
#[test]
fn help_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("EZPZ_UPDATE_SNAPSHOTS").is_some();
    for verb in ["", "ls", "show", "compare", "tail", "report", "sync"] {
        let mut args: Vec<&str> = Vec::new();
        if !verb.is_empty() {
            args.push(verb);
        }
        args.push("--help");
        let o = ezpz(&args, Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(o.status.success(), "{verb}: {}", stderr(&o));
        let name = if verb.is_empty() { "ezpz" } else { verb };
        let file = dir.join(format!("help-{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, stdout(&o)).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (EZPZ_UPDATE_SNAPSHOTS=1 writes it)",
                file.display()
            )
        });
        assert_eq!(stdout(&o), want, "`ezpz {verb} --help` changed");
    }
}
