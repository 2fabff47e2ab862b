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

impl BackendInfo {
    /// Where a person can look at the run (the MLflow run page, the W&B run URL), once the
    /// backend knows it.
    pub fn url(&self) -> Option<&str> {
        self.run_info.as_ref()?.url.as_deref()
    }

    /// The run's id in the backend, once known.
    pub fn run_id(&self) -> Option<&str> {
        self.run_info.as_ref()?.id.as_deref()
    }
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

/// The outcome of [`Tracker::finish`](crate::Tracker::finish).
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

    /// Entries a remote server refused for good, per backend and key (see
    /// [`RunInfo::refused`]); every other entry was delivered or is in the spool.
    pub fn refused(&self) -> Vec<(&str, &str, u64)> {
        self.backends
            .iter()
            .flat_map(|b| {
                b.run_info.iter().flat_map(move |info| {
                    info.refused
                        .iter()
                        .map(move |(k, n)| (b.name.as_str(), k.as_str(), *n))
                })
            })
            .collect()
    }

    /// The run's URL in `backend` (`"mlflow"`, `"wandb"`), if it has one.
    pub fn run_url(&self, backend: &str) -> Option<&str> {
        self.backend(backend)?.run_info.as_ref()?.url.as_deref()
    }

    /// The run's id in `backend`, if it has one.
    pub fn run_id(&self, backend: &str) -> Option<&str> {
        self.backend(backend)?.run_info.as_ref()?.id.as_deref()
    }

    /// The summary of `backend`, by name.
    pub fn backend(&self, name: &str) -> Option<&BackendSummary> {
        self.backends.iter().find(|b| b.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_urls_and_ids_by_backend() {
        let info = RunInfo {
            id: Some("abc".into()),
            url: Some("http://mlflow/#/experiments/1/runs/abc".into()),
            ..RunInfo::default()
        };
        let summary = Summary {
            backends: vec![BackendSummary {
                name: "mlflow".into(),
                records: 1,
                errors: 0,
                dropped: 0,
                panics: 0,
                run_info: Some(info.clone()),
            }],
            ..Summary::default()
        };
        assert_eq!(summary.run_id("mlflow"), Some("abc"));
        assert_eq!(
            summary.run_url("mlflow"),
            Some("http://mlflow/#/experiments/1/runs/abc")
        );
        assert_eq!(summary.run_url("wandb"), None);
        let b = BackendInfo {
            name: "mlflow".into(),
            run_info: Some(info),
        };
        assert_eq!(
            (b.url(), b.run_id()),
            (summary.run_url("mlflow"), Some("abc"))
        );
    }
}
