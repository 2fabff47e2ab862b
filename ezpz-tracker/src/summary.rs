//! What a tracker tells about its backends: while running and after finish.

use std::path::PathBuf;

use crate::backend::RunInfo;

/// A backend attached to a tracker, as seen from the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    /// The backend's name.
    pub name: String,
    /// Its run identity, once known (run id, URL, local path).
    pub run_info: Option<RunInfo>,
}

/// What happened to one backend over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendSummary {
    /// The backend's name.
    pub name: String,
    /// Records it wrote.
    pub records: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Items (rows, tables, images, …) dropped because it could not keep up (its queue was
    /// full and it had stopped writing) or its worker stopped.
    pub dropped: u64,
    /// Panics caught in the backend (after the first it is no longer called).
    pub panics: u64,
    /// Its run identity.
    pub run_info: Option<RunInfo>,
}

/// The outcome of [`Tracker::finish`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Where local files went (rank 0), if anywhere.
    pub outdir: Option<PathBuf>,
    /// One entry per backend, in attachment order.
    pub backends: Vec<BackendSummary>,
    /// Committed records (steps) logged through this tracker.
    pub steps: u64,
}

impl Summary {
    /// Messages dropped across all backends.
    pub fn dropped(&self) -> u64 {
        self.backends.iter().map(|b| b.dropped).sum()
    }
}
