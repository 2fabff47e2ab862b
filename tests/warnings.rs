//! What the user reads: one warning per cause, naming what went wrong. Alone in its test
//! binary because it installs a global `tracing` subscriber (warnings come from workers).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::backends::FailingBackend;
use ezpz_tracker::TrackerBuilder;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

#[test]
fn each_cause_is_warned_once_and_names_what_failed() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

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
    let text = captured.take();
    assert_eq!(text.matches("disk on fire").count(), 1, "{text}");
    assert_eq!(text.matches("cannot finish").count(), 1, "{text}");

    // Unknown backend names list the registered ones.
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerBuilder::new()
        .backends("csv,bogus")
        .outdir(dir.path())
        .build()
        .unwrap();
    let text = captured.take();
    assert!(
        text.contains("unknown tracker backend `bogus` (registered: csv, jsonl, memory"),
        "{text}"
    );

    // A missing image or artifact file: one warning naming it; the rest still lands.
    tracker.log_image("img", "/no/such/image.png", None);
    tracker.log_artifacts([("model", "/no/such/model.bin")]);
    tracker.log([("loss", 1.0)]);
    tracker.finish().unwrap();
    let text = captured.take();
    assert_eq!(text.matches("/no/such/image.png").count(), 1, "{text}");
    assert_eq!(text.matches("/no/such/model.bin").count(), 1, "{text}");
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv, "step,loss\n0,1.0\n");

    // Logging after finish is ignored with one warning.
    tracker.log([("late", 1)]);
    tracker.log([("late", 2)]);
    let text = captured.take();
    assert_eq!(text.matches("after finish").count(), 1, "{text}");
}
