//! [`RunSettings`]: what a run is called and how it is labelled — run name, tags, notes,
//! group, job type, entity, experiment — in one place, handed to every backend in its
//! [`BackendContext`](crate::BackendContext).
//!
//! Where each comes from, first found wins:
//!
//! 1. a backend's own options ([`WandbOptions`](crate::WandbOptions),
//!    [`MlflowOptions`](crate::MlflowOptions)), for that backend;
//! 2. a backend's own variable, for that backend (`WANDB_NAME`, `WANDB_TAGS`, `WANDB_NOTES`,
//!    `WANDB_RUN_GROUP`, `WANDB_JOB_TYPE`, `WANDB_ENTITY`, `MLFLOW_EXPERIMENT_NAME`), as with
//!    the W&B and MLflow clients;
//! 3. the [`TrackerBuilder`](crate::TrackerBuilder) (`run_name`, `tags`, `notes`, `group`,
//!    `job_type`, `entity`, `experiment`);
//! 4. the tracker's variables: [`EZPZ_RUN_NAME`], [`EZPZ_TAGS`], [`EZPZ_NOTES`],
//!    [`EZPZ_RUN_GROUP`], [`EZPZ_JOB_TYPE`] (what [`setup_tracker`](crate::setup_tracker)
//!    reads, having no argument for them);
//! 5. the default: run name `<project>-<UTC time>`, the MLflow experiment is the project,
//!    the rest unset.
//!
//! What each backend does with them:
//!
//! | setting | W&B (online and offline) | MLflow | `run_info.json`, `report.md`, `ezpz show` |
//! |---|---|---|---|
//! | run name | display name | run name | yes |
//! | tags | tags | one tag each, with an empty value | yes |
//! | notes | notes | `mlflow.note.content` (the run's description) | yes |
//! | group | run group | tag `group` | yes |
//! | job type | job type | tag `job_type` | yes |
//! | entity | entity (team or user) | — | yes |
//! | experiment | — | experiment name (dots become hyphens) | yes |
//!
//! CSV, JSONL and TensorBoard have none of these concepts; the report records them.

use serde::{Deserialize, Serialize};

use crate::env::var;

/// Run name, else `<project>-<UTC timestamp>`.
pub const EZPZ_RUN_NAME: &str = "EZPZ_RUN_NAME";
/// Tags, comma-separated.
pub const EZPZ_TAGS: &str = "EZPZ_TAGS";
/// Notes (a description of the run).
pub const EZPZ_NOTES: &str = "EZPZ_NOTES";
/// Run group (runs of one experiment, e.g. the ranks or seeds of a sweep).
pub const EZPZ_RUN_GROUP: &str = "EZPZ_RUN_GROUP";
/// Job type (`train`, `eval`, …).
pub const EZPZ_JOB_TYPE: &str = "EZPZ_JOB_TYPE";

/// How a run is named and labelled, resolved from the builder and the tracker's variables
/// (see the [module docs](self) for each backend's own overrides).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// The run's display name.
    pub run_name: String,
    /// Labels, in order, without duplicates.
    pub tags: Vec<String>,
    /// A description of the run.
    pub notes: Option<String>,
    /// The group the run belongs to.
    pub group: Option<String>,
    /// The kind of job (`train`, `eval`, …).
    pub job_type: Option<String>,
    /// The team or user the run belongs to (W&B).
    pub entity: Option<String>,
    /// The experiment the run belongs to (MLflow; else the project).
    pub experiment: Option<String>,
}

/// What the builder was given; anything unset falls back to the variables.
#[derive(Debug, Clone, Default)]
pub(crate) struct GivenSettings {
    pub run_name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub notes: Option<String>,
    pub group: Option<String>,
    pub job_type: Option<String>,
    pub entity: Option<String>,
    pub experiment: Option<String>,
}

impl GivenSettings {
    /// The settings: what was given, else the tracker's variables, else the defaults
    /// (`default_name` is the run name's).
    pub fn resolve(self, default_name: impl FnOnce() -> String) -> RunSettings {
        RunSettings {
            run_name: self
                .run_name
                .or_else(|| var(EZPZ_RUN_NAME))
                .unwrap_or_else(default_name),
            tags: dedup(
                self.tags
                    .or_else(|| var(EZPZ_TAGS).map(|t| split_tags(&t)))
                    .unwrap_or_default(),
            ),
            notes: self.notes.or_else(|| var(EZPZ_NOTES)),
            group: self.group.or_else(|| var(EZPZ_RUN_GROUP)),
            job_type: self.job_type.or_else(|| var(EZPZ_JOB_TYPE)),
            entity: self.entity,
            experiment: self.experiment,
        }
    }
}

/// Tags from a comma-separated list (`EZPZ_TAGS`, `WANDB_TAGS`): trimmed, empty ones dropped.
pub fn split_tags(list: &str) -> Vec<String> {
    dedup(
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// `tags` in order, each once.
fn dedup(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_trimmed_and_once() {
        assert_eq!(split_tags(" a, b,,a ,c "), ["a", "b", "c"]);
        assert!(split_tags(" , ").is_empty());
    }
}
