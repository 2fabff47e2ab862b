//! `WandbOptions`: what a W&B run can be told in code instead of the environment.

use std::time::Duration;

/// Settings for a W&B run; each one unset comes from W&B's variable (`WANDB_*`), else the
/// tracker's [`RunSettings`](crate::RunSettings) (run name, tags, notes, group, job type,
/// entity) and project.
///
/// ```no_run
/// use ezpz_tracker::backends::wandb::{WandbBackend, WandbOptions};
/// ezpz_tracker::register_backend("wandb", |ctx| {
///     let opts = WandbOptions::new().mode("offline").tags(["baseline"]);
///     Ok(Box::new(WandbBackend::start(ctx, opts)?))
/// });
/// ```
#[derive(Clone, Default)]
pub struct WandbOptions {
    pub(super) mode: Option<String>,
    pub(super) run_id: Option<String>,
    pub(super) entity: Option<String>,
    pub(super) project: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) tags: Option<Vec<String>>,
    pub(super) notes: Option<String>,
    pub(super) group: Option<String>,
    pub(super) job_type: Option<String>,
    pub(super) base_url: Option<String>,
    pub(super) api_key: Option<String>,
    pub(super) finish_timeout: Option<Duration>,
    pub(super) outage_limit: Option<Duration>,
}

impl std::fmt::Debug for WandbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WandbOptions")
            .field("mode", &self.mode)
            .field("run_id", &self.run_id)
            .field("entity", &self.entity)
            .field("project", &self.project)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident),*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.$name = Some(value.into());
            self
        }
    )*};
}

impl WandbOptions {
    /// Nothing set: everything from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        /// `online`, `offline`, `disabled`, `shared` or `dryrun` (beats `WANDB_MODE`;
        /// `WANDB_DISABLED` still wins).
        mode,
        /// The run id (else `WANDB_RUN_ID`, else 8 random base-36 characters). An existing id
        /// resumes that run online: history continues after the server's lines.
        run_id,
        /// Team or user (else `WANDB_ENTITY`, else the tracker's
        /// [`entity`](crate::TrackerBuilder::entity), else the API key's default).
        entity,
        /// Project (else the tracker's: `WB_PROJECT` → `WANDB_PROJECT` → `WB_PROJECT_NAME` →
        /// `ezpz.<dir>.<exe>`).
        project,
        /// Display name (else `WANDB_NAME`, else the tracker's run name).
        display_name,
        /// Notes (else `WANDB_NOTES`, else the tracker's [`notes`](crate::TrackerBuilder::notes)).
        notes,
        /// Run group (else `WANDB_RUN_GROUP`, else the tracker's
        /// [`group`](crate::TrackerBuilder::group)).
        group,
        /// Job type (else `WANDB_JOB_TYPE`, else the tracker's
        /// [`job_type`](crate::TrackerBuilder::job_type)).
        job_type,
        /// Server (else `WANDB_BASE_URL`, else the public one).
        base_url,
        /// API key (else `WANDB_API_KEY`, else `~/.netrc`). Never printed.
        api_key
    }

    /// Tags (else `WANDB_TAGS`, comma-separated, else the tracker's
    /// [`tags`](crate::TrackerBuilder::tags)).
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// How long finishing may wait for the server (else 80 % of `EZPZ_FINISH_TIMEOUT`, else
    /// 24 s), so the tracker's own finish cap is not hit.
    pub fn finish_timeout(mut self, timeout: Duration) -> Self {
        self.finish_timeout = Some(timeout);
        self
    }

    /// How long the server may keep failing during the run before streaming stops (default
    /// [`DEFAULT_OUTAGE_LIMIT`](super::DEFAULT_OUTAGE_LIMIT)); the local log still holds everything.
    pub fn outage_limit(mut self, limit: Duration) -> Self {
        self.outage_limit = Some(limit);
        self
    }
}
