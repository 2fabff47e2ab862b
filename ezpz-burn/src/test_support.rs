//! Helpers shared by the crate's unit tests.

use ezpz_tracker::{MemoryBackend, Tracker, TrackerBuilder};

/// A tracker whose only backend is a memory backend, and that backend.
pub(crate) fn memory_tracker() -> (Tracker, MemoryBackend) {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(memory.clone())
        .build()
        .unwrap();
    (tracker, memory)
}
