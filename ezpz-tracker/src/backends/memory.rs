//! `MemoryBackend`: keeps everything in memory; the test double other crates use.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::{
    Artifacts, Backend, BackendContext, HistogramRecord, ImageRecord, Record, RunStatus, Table,
};
use crate::config::merge_json;
use crate::definition::MetricDefinition;
use crate::Result;

/// Everything a [`MemoryBackend`] received, as returned by [`MemoryBackend::snapshot`].
#[derive(Debug, Clone, Default)]
pub struct MemorySnapshot {
    /// Committed records, in order.
    pub records: Vec<Record>,
    /// The merged configuration (`Null` until something is logged).
    pub config: serde_json::Value,
    /// Tables, in order.
    pub tables: Vec<Table>,
    /// Images, in order.
    pub images: Vec<ImageRecord>,
    /// Artifact sets, in order.
    pub artifacts: Vec<Artifacts>,
    /// Histograms, in order.
    pub histograms: Vec<HistogramRecord>,
    /// Metric definitions, in order.
    pub definitions: Vec<MetricDefinition>,
    /// Number of explicit and periodic flushes.
    pub flushes: usize,
    /// The status `finish` was called with, once it was.
    pub finished: Option<RunStatus>,
}

impl MemorySnapshot {
    /// The series of one numeric metric as `(step, value)` pairs.
    pub fn series(&self, key: &str) -> Vec<(u64, f64)> {
        self.records
            .iter()
            .filter_map(|r| Some((r.step, r.get(key)?.as_f64()?)))
            .collect()
    }
}

/// A backend that stores what it receives, for tests and in-process inspection.
///
/// Clones share the same storage: keep one clone, give the other to the tracker, then call
/// [`snapshot`](MemoryBackend::snapshot).
///
/// ```
/// use ezpz_tracker::{MemoryBackend, TrackerBuilder};
/// let memory = MemoryBackend::new();
/// let tracker = TrackerBuilder::new().backends("none").add_backend(memory.clone()).build().unwrap();
/// tracker.log([("loss", 0.5)]);
/// tracker.finish().unwrap();
/// assert_eq!(memory.snapshot().series("loss"), vec![(0, 0.5)]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    name: String,
    state: Arc<Mutex<MemorySnapshot>>,
}

impl MemoryBackend {
    /// An empty backend named `memory`.
    pub fn new() -> Self {
        Self::named("memory")
    }

    /// An empty backend with another name (to attach several).
    pub fn named(name: &str) -> Self {
        MemoryBackend {
            name: name.to_string(),
            state: Arc::default(),
        }
    }

    /// The registry constructor.
    ///
    /// # Errors
    /// Never.
    pub fn from_context(_ctx: &BackendContext) -> Result<Box<dyn Backend>> {
        Ok(Box::new(MemoryBackend::new()))
    }

    /// A copy of everything received so far.
    pub fn snapshot(&self) -> MemorySnapshot {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, MemorySnapshot> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &str {
        &self.name
    }
    fn log(&mut self, record: &Record) -> Result<()> {
        self.lock().records.push(record.clone());
        Ok(())
    }
    fn log_config(&mut self, config: &serde_json::Value) -> Result<()> {
        merge_json(&mut self.lock().config, config);
        Ok(())
    }
    fn log_table(&mut self, table: &Table) -> Result<()> {
        self.lock().tables.push(table.clone());
        Ok(())
    }
    fn log_image(&mut self, image: &ImageRecord) -> Result<()> {
        self.lock().images.push(image.clone());
        Ok(())
    }
    fn log_artifacts(&mut self, artifacts: &Artifacts) -> Result<()> {
        self.lock().artifacts.push(artifacts.clone());
        Ok(())
    }
    fn log_histogram(&mut self, histogram: &HistogramRecord) -> Result<()> {
        self.lock().histograms.push(histogram.clone());
        Ok(())
    }
    fn define_metric(&mut self, definition: &MetricDefinition) -> Result<()> {
        self.lock().definitions.push(definition.clone());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.lock().flushes += 1;
        Ok(())
    }
    fn finish(&mut self, status: RunStatus) -> Result<()> {
        self.lock().finished = Some(status);
        Ok(())
    }
}
