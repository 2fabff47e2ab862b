//! What travels from the logging thread to a backend's worker, and back.

use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::backend::{Artifacts, HistogramRecord, ImageRecord, Record, RunStatus, Table};
use crate::definition::MetricDefinition;
use crate::Result;

/// Most rows in one batch (a hand-off is forced when this many wait).
pub(crate) const BATCH_ROWS: usize = 64;

/// Rows handed over together; every worker gets the same batch.
pub(crate) type Batch = Arc<Vec<Arc<Record>>>;

/// What travels to a worker.
pub(crate) enum Msg {
    Log(Arc<Record>),
    /// Rows handed over together by the logging thread (`staging`).
    Logs(Batch),
    Config(Arc<serde_json::Value>),
    Table(Arc<Table>),
    Image(Arc<ImageRecord>),
    Artifacts(Arc<Artifacts>),
    Histogram(Arc<HistogramRecord>),
    Define(Arc<MetricDefinition>),
    Flush(Sender<Result<()>>),
    Finish(RunStatus, Sender<Result<()>>),
}

impl Msg {
    /// What the message weighs against a queue's capacity: its rows, or one for any other
    /// data (a table, an image, …); control messages weigh nothing.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Msg::Log(_) => 1,
            Msg::Logs(batch) => batch.len(),
            Msg::Flush(_) | Msg::Finish(..) => 0,
            _ => 1,
        }
    }
}

/// What a worker hands back once it has written it (freed or reused by the logging thread).
pub(crate) enum Returned {
    Row(Arc<Record>),
    Batch(Batch),
}

/// Where workers hand rows back.
pub(crate) type Recycle = Sender<Returned>;
