//! Warnings reach a person: with no `tracing` subscriber installed they are printed on stderr
//! once per cause (`ezpz: …`); with one installed, they go only through it. Each case runs
//! in a child process (this test binary again), whose stderr is what a user would read.

use std::process::Command;

const CHILD: &str = "EZPZ_STDERR_WARNINGS_CHILD";

/// Builds three trackers naming a backend that does not exist.
fn child_body() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let tracker = ezpz_tracker::setup_tracker(
            Some("p"),
            Some("csv,nosuchbackend"),
            None,
            Some(dir.path()),
            Some(0),
        );
        tracker.log([("x", 1.0)]);
        let _ = tracker.finish();
    }
}

fn run_child(test: &str, mode: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn without_a_subscriber_each_warning_reaches_stderr_once() {
    if std::env::var(CHILD).as_deref() == Ok("plain") {
        return child_body();
    }
    let stderr = run_child(
        "without_a_subscriber_each_warning_reaches_stderr_once",
        "plain",
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("nosuchbackend"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("ezpz: unknown tracker backend `nosuchbackend`"),
        "{stderr}"
    );
}

#[test]
fn with_a_subscriber_warnings_go_only_through_it() {
    if std::env::var(CHILD).as_deref() == Ok("subscriber") {
        let events = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tracing::subscriber::set_global_default(Counting(events.clone())).unwrap();
        child_body();
        // Every cause reaches the subscriber (which decides about repeats itself).
        assert!(events.load(std::sync::atomic::Ordering::SeqCst) >= 3);
        return;
    }
    let stderr = run_child(
        "with_a_subscriber_warnings_go_only_through_it",
        "subscriber",
    );
    assert!(!stderr.contains("nosuchbackend"), "{stderr}");
}

struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl tracing::Subscriber for Counting {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
