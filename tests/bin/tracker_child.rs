//! A training-process stand-in for the cross-crate tests (not a user tool): builds a tracker
//! from the environment exactly as a program calling `TrackerBuilder::new()` would, then
//! obeys commands on stdin so a test can log, flush, finish — or `kill -9` it in between.
//!
//! Usage: `ezpz-test-child <outdir>`; commands, one per line, each answered `ok` on stdout:
//! - `log A B` — logs steps `A..B`, metrics `m0..m9` = `step * 0.5 + j`
//! - `flush` — `Tracker::flush` (everything logged is in the spool when `ok` comes)
//! - `finish` — `Tracker::finish`, then exits (status 0, or 1 when finish reported errors)

use std::io::{BufRead, Write};

use ezpz_tracker::TrackerBuilder;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let outdir = std::env::args()
        .nth(1)
        .expect("usage: ezpz-test-child <outdir>");
    let tracker = TrackerBuilder::new()
        .outdir(&outdir)
        .config(serde_json::json!({"child": {"pid": std::process::id()}}))
        .build()
        .expect("tracker");
    let stdout = std::io::stdout();
    let say = |s: &str| {
        let mut out = stdout.lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["log", a, b] => {
                let (a, b): (u64, u64) = (a.parse().expect("A"), b.parse().expect("B"));
                for step in a..b {
                    let row: Vec<(String, f64)> = (0..10)
                        .map(|j| (format!("m{j}"), step as f64 * 0.5 + j as f64))
                        .collect();
                    tracker.log_at(step, row);
                }
            }
            ["flush"] => {
                let _ = tracker.flush();
            }
            ["finish"] => {
                let code = i32::from(tracker.finish().is_err());
                say("ok");
                std::process::exit(code);
            }
            _ => panic!("unknown command `{line}`"),
        }
        say("ok");
    }
}
