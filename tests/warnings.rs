//! What the user reads: one warning per cause, naming what went wrong. Alone in its test
//! binary because it installs a global `tracing` subscriber (warnings come from workers).

mod common;

use common::backends::FailingBackend;
use common::warnings;
use ezpz_tracker::TrackerBuilder;

/// How many captured lines mention `needle`.
fn count(needle: &str) -> usize {
    warnings::lines_with(&[needle]).len()
}

#[test]
fn each_cause_is_warned_once_and_names_what_failed() {
    warnings::capture();

    // A backend failing on every call: one warning per distinct cause, not one per call.
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(FailingBackend)
        .build()
        .unwrap();
    for i in 0..500 {
        tracker.log([("i", i)]);
    }
    let _ = tracker.finish();
    assert_eq!(count("disk on fire"), 1, "{}", warnings::all());
    assert_eq!(count("cannot finish"), 1, "{}", warnings::all());

    // Unknown backend names list the registered ones.
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("csv,bogus")
        .outdir(dir.path())
        .build()
        .unwrap();
    assert_eq!(
        count("unknown tracker backend `bogus` (registered: csv, jsonl, memory"),
        1,
        "{}",
        warnings::all()
    );

    // A missing image or artifact file: one warning naming it; the rest still lands.
    tracker.log_image("img", "/no/such/image.png", None);
    tracker.log_artifacts([("model", "/no/such/model.bin")]);
    tracker.log([("loss", 1.0)]);
    tracker.finish().unwrap();
    assert_eq!(count("/no/such/image.png"), 1, "{}", warnings::all());
    assert_eq!(count("/no/such/model.bin"), 1, "{}", warnings::all());
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv, "step,loss\n0,1.0\n");

    // Logging after finish is ignored with one warning.
    tracker.log([("late", 1)]);
    tracker.log([("late", 2)]);
    assert_eq!(count("after finish"), 1, "{}", warnings::all());
}
