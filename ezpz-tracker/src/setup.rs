//! `TrackerBuilder` and the original's `setup_tracker` convenience.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::aggregate::Aggregator;
use crate::backend::{Backend, BackendContext};
use crate::env::{self, var};
use crate::outdir::{self, WhenTaken};
use crate::registry::{constructor, registered_backends};
use crate::report::{self, ReportOptions};
use crate::run_lock::RunLock;
use crate::run_settings::GivenSettings;
use crate::tracker::{FinishHook, Tracker, TrackerParts};
use crate::{Error, RankInfo, Result};

/// Default rows per backend queue before the backend counts as behind.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// Default (and largest) time a logging call waits for a backend that is behind but still
/// writing (see [`TrackerBuilder::enqueue_timeout`]).
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = crate::dispatch::MAX_CALLER_WAIT;
/// Default cap on `flush`/`finish` (override with `EZPZ_FINISH_TIMEOUT`).
pub const DEFAULT_FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The finish timeout: `explicit` → `EZPZ_FINISH_TIMEOUT` → [`DEFAULT_FINISH_TIMEOUT`], at
/// most [`env::MAX_WAIT`].
fn finish_timeout(explicit: Option<Duration>) -> Duration {
    explicit
        .or_else(|| env::var_seconds(env::EZPZ_FINISH_TIMEOUT))
        .map_or(DEFAULT_FINISH_TIMEOUT, env::clamp_wait)
}

/// How errors at build time are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// Everything is a warning; whatever can be built is.
    Lossy,
    /// Unknown names warn; a backend that cannot start is an error.
    Normal,
    /// Everything is an error.
    Strict,
}

/// Builds a [`Tracker`]. What is set here wins over the tracker's environment variables;
/// unset knobs fall back to them (a backend's own variables, such as
/// `MLFLOW_EXPERIMENT_NAME` or `WANDB_NAME`, still win over the project and run name given
/// here: see [`env`](crate::env)).
///
/// ```no_run
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use ezpz_tracker::TrackerBuilder;
/// let tracker = TrackerBuilder::new()
///     .project("my-project")
///     .backends("csv,jsonl")
///     .outdir("outputs/run-001")
///     .config(&serde_json::json!({"lr": 1e-4, "model": {"depth": 6}}))
///     .build()?;
/// tracker.log([("loss", 0.42), ("lr", 1e-4)]);
/// tracker.finish()?;
/// # Ok(()) }
/// ```
pub struct TrackerBuilder {
    project: Option<String>,
    backends: Option<String>,
    config: Option<serde_json::Value>,
    outdir: Option<PathBuf>,
    resume: Option<bool>,
    rank: Option<RankInfo>,
    settings: GivenSettings,
    extra: Vec<Box<dyn Backend>>,
    aggregator: Option<Box<dyn Aggregator>>,
    queue_capacity: usize,
    enqueue_timeout: Duration,
    finish_timeout: Option<Duration>,
    finish_hooks: Vec<FinishHook>,
    report: Option<ReportOptions>,
    /// The report was asked for in code (`report(true)`, `report_options`).
    report_asked: bool,
}

impl Default for TrackerBuilder {
    fn default() -> Self {
        TrackerBuilder {
            project: None,
            backends: None,
            config: None,
            outdir: None,
            resume: None,
            rank: None,
            settings: GivenSettings::default(),
            extra: Vec::new(),
            aggregator: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            finish_timeout: None,
            finish_hooks: Vec::new(),
            report: Some(ReportOptions::default()),
            report_asked: false,
        }
    }
}

impl TrackerBuilder {
    /// A builder with every knob unset.
    pub fn new() -> Self {
        Self::default()
    }

    /// The project name (else `WB_PROJECT` → `WANDB_PROJECT` → `WB_PROJECT_NAME` →
    /// `ezpz.<exe dir>.<exe name>`).
    pub fn project(mut self, name: impl Into<String>) -> Self {
        self.project = Some(name.into());
        self
    }

    /// Comma-separated backend names (else `EZPZ_TRACKER_BACKENDS` → `EZPZ_TRACKERS` → the
    /// defaults, see [`default_backend_names`]). `none` or an empty list attaches nothing.
    pub fn backends(mut self, names: impl Into<String>) -> Self {
        self.backends = Some(names.into());
        self
    }

    /// Configuration logged to every backend at start.
    pub fn config(mut self, config: impl Serialize) -> Self {
        match serde_json::to_value(config) {
            Ok(v) => self.config = Some(crate::config::as_object(v)),
            Err(e) => crate::warn!("ezpz: configuration could not be serialized ({e}); ignored"),
        }
        self
    }

    /// Where local files go, directly. The default is a fresh directory per run,
    /// `outputs/<project>/<UTC time to the millisecond>` (`…-2`, `…-3` for runs started in the
    /// same millisecond). The run holds the directory's lock, `ezpz.lock`, until it finishes:
    /// of processes started on one outdir at once, one writes there. A directory that already
    /// holds a run (or another run's lock) is appended to only with [`resume`](Self::resume);
    /// otherwise `build` refuses it and `build_lossy`/[`setup_tracker`] write to a fresh
    /// sibling (`<dir>-2`) with a warning: no run overwrites another.
    pub fn outdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.outdir = Some(dir.into());
        self
    }

    /// Whether to continue the run already in [`outdir`](Self::outdir) (else
    /// `EZPZ_RESUME`, else no): CSV, JSONL and TensorBoard append to its files (the CSV
    /// header is kept, and widened for new keys), and its configuration is merged into. For
    /// a program restarted from a checkpoint. Automatic steps carry on after the last step the
    /// run wrote (rank 0 reads it; with several ranks, log explicit steps). Without it, an
    /// outdir holding a run is refused (see [`outdir`](Self::outdir)). Only one process
    /// resumes a run at a time (it holds `ezpz.lock`; a killed run's lock is taken over when
    /// it was held from this host): the others get [`Error::RunInUse`].
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = Some(resume);
        self
    }

    /// This process's rank (else detected from the launcher's environment).
    pub fn rank(mut self, rank: usize) -> Self {
        let base = self.rank.take().unwrap_or_else(RankInfo::from_env);
        let ws = base.world_size;
        self.rank = Some(base.with_rank(rank, ws));
        self
    }

    /// Rank, world size and topology, all given.
    pub fn rank_info(mut self, info: RankInfo) -> Self {
        self.rank = Some(info);
        self
    }

    /// The run's display name (else `EZPZ_RUN_NAME`, else `<project>-<UTC timestamp>`): the
    /// W&B display name (`WANDB_NAME` wins there), the MLflow run name, the report's. See
    /// [`RunSettings`](crate::RunSettings) for this and the other run settings.
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.settings.run_name = Some(name.into());
        self
    }

    /// The run's tags (else `EZPZ_TAGS`, comma-separated): W&B tags (`WANDB_TAGS` wins
    /// there), one MLflow tag each.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.settings.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Notes on the run (else `EZPZ_NOTES`): W&B notes (`WANDB_NOTES` wins there), the
    /// MLflow run's description (`mlflow.note.content`).
    pub fn notes(mut self, notes: impl Into<String>) -> Self {
        self.settings.notes = Some(notes.into());
        self
    }

    /// The run's group (else `EZPZ_RUN_GROUP`): the W&B run group (`WANDB_RUN_GROUP` wins
    /// there), the MLflow tag `group`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.settings.group = Some(group.into());
        self
    }

    /// The run's job type (else `EZPZ_JOB_TYPE`): the W&B job type (`WANDB_JOB_TYPE` wins
    /// there), the MLflow tag `job_type`.
    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.settings.job_type = Some(job_type.into());
        self
    }

    /// The W&B team or user the run belongs to (`WANDB_ENTITY` wins; else the API key's).
    pub fn entity(mut self, entity: impl Into<String>) -> Self {
        self.settings.entity = Some(entity.into());
        self
    }

    /// The MLflow experiment (`MLFLOW_EXPERIMENT_NAME` wins; else the project name).
    pub fn experiment(mut self, name: impl Into<String>) -> Self {
        self.settings.experiment = Some(name.into());
        self
    }

    /// Attaches a backend instance (besides the named ones), on rank 0.
    pub fn add_backend(mut self, backend: impl Backend + 'static) -> Self {
        self.extra.push(Box::new(backend));
        self
    }

    /// Attaches a boxed backend instance, on rank 0.
    pub fn add_boxed_backend(mut self, backend: Box<dyn Backend>) -> Self {
        self.extra.push(backend);
        self
    }

    /// Aggregates every logged scalar across ranks (`key/mean|min|max|std`, on rank 0).
    pub fn aggregator(mut self, aggregator: impl Aggregator + 'static) -> Self {
        self.aggregator = Some(Box::new(aggregator));
        self
    }

    /// Rows (and other items) each backend's queue holds before the backend counts as
    /// behind (default 16 384). A backend that is behind and still writing slows a logging
    /// call by at most the [`enqueue_timeout`](Self::enqueue_timeout); one that is behind
    /// and has written nothing for 100 ms (stuck, or far too slow), or that holds twice this
    /// many, loses what it cannot take: counted per backend, warned once, in the
    /// [`Summary`](crate::Summary). The other backends get every row.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The longest one logging call waits for backends that are behind but still writing
    /// (default and maximum 10 ms; zero never waits). The wait happens with no lock held.
    pub fn enqueue_timeout(mut self, timeout: Duration) -> Self {
        self.enqueue_timeout = timeout;
        self
    }

    /// Cap on `flush` and `finish` (else `EZPZ_FINISH_TIMEOUT` seconds, else 30 s; at most
    /// [`env::MAX_WAIT`], 24 h: `Duration::MAX` means 24 h).
    pub fn finish_timeout(mut self, timeout: Duration) -> Self {
        self.finish_timeout = Some(env::clamp_wait(timeout));
        self
    }

    /// Runs `hook` at finish on rank 0, before the backends end.
    pub fn on_finish(mut self, hook: impl Fn(&Tracker) + Send + Sync + 'static) -> Self {
        self.finish_hooks.push(Box::new(hook));
        self
    }

    /// Whether the end-of-run report (`report.md`, `plots/`, `run_info.json`, see
    /// [`report`](crate::report)) is written at finish on rank 0 when the `jsonl` backend is
    /// attached (default on). Without the crate's `report` feature only `run_info.json`,
    /// `report.json` and the `training_history` table are written, and asking for the
    /// report here gives one warning saying so.
    pub fn report(mut self, enabled: bool) -> Self {
        self.report = enabled.then(|| self.report.take().unwrap_or_default());
        self.report_asked = enabled;
        self
    }

    /// Turns the end-of-run report on with these options (plot size, points, limits).
    pub fn report_options(mut self, options: ReportOptions) -> Self {
        self.report = Some(options);
        self.report_asked = true;
        self
    }

    /// Builds the tracker. Unknown backend names are warned about (naming the registered
    /// ones) and skipped.
    ///
    /// # Errors
    /// The output directory cannot be created, holds a run (or another run's lock) and
    /// [`resume`](Self::resume) is off ([`Error::RunExists`]), another process is resuming
    /// the run in it ([`Error::RunInUse`]), or a named backend fails to start.
    pub fn build(self) -> Result<Tracker> {
        self.build_with(Strictness::Normal)
    }

    /// Like [`build`](Self::build), but an unknown backend name is an error too.
    ///
    /// # Errors
    /// Unknown names, an output directory that cannot be created, a backend that fails.
    pub fn build_strict(self) -> Result<Tracker> {
        self.build_with(Strictness::Strict)
    }

    /// Like [`build`](Self::build), but nothing is an error: every problem is one warning and
    /// whatever can start does (a tracker with no backends at worst). An outdir that holds a
    /// run (without [`resume`](Self::resume)), or that another process holds, is replaced by
    /// a fresh sibling, `<outdir>-2`.
    pub fn build_lossy(self) -> Tracker {
        match self.build_with(Strictness::Lossy) {
            Ok(t) => t,
            Err(e) => {
                crate::warn!("ezpz: tracking disabled: {e}");
                Tracker::disabled()
            }
        }
    }

    fn build_with(self, strictness: Strictness) -> Result<Tracker> {
        let rank = self.rank.clone().unwrap_or_else(RankInfo::from_env);
        let names = resolve_backend_names(self.backends.as_deref());
        let project = self
            .project
            .clone()
            .unwrap_or_else(env::default_project_name);
        let stamp = chrono::Utc::now();
        let settings = self
            .settings
            .clone()
            .resolve(|| format!("{}-{}", project, stamp.format("%Y%m%d-%H%M%S")));
        let start_time = stamp.timestamp_micros() as f64 / 1e6;
        let finish_timeout = finish_timeout(self.finish_timeout);
        let mut backends: Vec<Box<dyn Backend>> = Vec::new();
        let mut local_outdir = None;
        let mut run_lock = None;
        // A resumed run's automatic steps carry on after the last one it wrote.
        let mut first_step = 0;
        if rank.is_main() && !(names.is_empty() && self.extra.is_empty()) {
            let mut ctx = BackendContext {
                project: project.clone(),
                outdir: self
                    .outdir
                    .clone()
                    .unwrap_or_else(|| outdir::default_dir(&project, stamp)),
                rank: rank.clone(),
                settings: settings.clone(),
                start_time,
                config: self.config.clone(),
                finish_timeout,
                resume: false,
                last_step: None,
            };
            if !names.is_empty() {
                run_lock = self.prepare_outdir(&mut ctx, stamp, strictness)?;
            }
            first_step = ctx.last_step.map_or(0, |s| s.saturating_add(1));
            backends = construct(&names, &ctx, strictness)?;
            if !names.is_empty() && ctx.outdir.is_dir() {
                local_outdir = Some(ctx.outdir);
            }
        }
        if rank.is_main() {
            backends.extend(self.extra);
        }
        #[cfg(not(feature = "report"))]
        if self.report_asked && rank.is_main() {
            report::warn_no_pages();
        }
        let mut finish_hooks = self.finish_hooks;
        // Last, so it sees what the user's own hooks log.
        if let Some(options) = self
            .report
            .filter(|_| rank.is_main() && !backends.is_empty())
        {
            finish_hooks.push(report::finish_hook(options));
        }
        let tracker = Tracker::start(TrackerParts {
            backends,
            queue_capacity: self.queue_capacity,
            max_wait: self.enqueue_timeout,
            lossy: strictness == Strictness::Lossy,
            rank,
            project,
            settings,
            outdir: local_outdir,
            aggregator: self.aggregator,
            finish_timeout,
            finish_hooks,
            start_time,
            first_step,
            run_lock,
        })?;
        if let Some(config) = self.config {
            tracker.log_config(config);
        }
        Ok(tracker)
    }
}

impl TrackerBuilder {
    /// Settles the outdir the named backends write to (see [`outdir`](crate::outdir)):
    /// claims a fresh one, or resumes, refuses or sidesteps one that holds a run or that
    /// another process holds. Returns the run's lock on it (none when lossy and refused).
    fn prepare_outdir(
        &self,
        ctx: &mut BackendContext,
        stamp: chrono::DateTime<chrono::Utc>,
        strictness: Strictness,
    ) -> Result<Option<RunLock>> {
        let resume = self
            .resume
            .unwrap_or_else(|| env::var_flag(env::EZPZ_RESUME));
        let taken = match strictness {
            Strictness::Lossy => WhenTaken::UseSibling,
            Strictness::Normal | Strictness::Strict => WhenTaken::Refuse,
        };
        match outdir::prepare(self.outdir.as_deref(), &ctx.project, stamp, resume, taken) {
            Ok(dir) => {
                ctx.outdir = dir.path;
                ctx.resume = dir.resume;
                ctx.last_step = dir.last_step;
                Ok(Some(dir.lock))
            }
            Err(err) if strictness == Strictness::Lossy => {
                crate::warn!("ezpz: {err}; backends that write files are skipped");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}

fn construct(
    names: &[String],
    ctx: &BackendContext,
    strictness: Strictness,
) -> Result<Vec<Box<dyn Backend>>> {
    let mut out = Vec::new();
    for name in names {
        let Some(ctor) = constructor(name) else {
            let err = Error::UnknownBackend {
                name: name.clone(),
                registered: registered_backends().join(", "),
            };
            if strictness == Strictness::Strict {
                return Err(err);
            }
            crate::warn!("ezpz: {err}; skipped");
            continue;
        };
        match ctor(ctx) {
            Ok(b) => out.push(b),
            Err(e) if strictness == Strictness::Lossy => {
                crate::warn!("ezpz: backend `{name}` not started: {e}")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The backend names to use: `explicit` (comma-separated) → `EZPZ_TRACKER_BACKENDS` →
/// `EZPZ_TRACKERS` → [`default_backend_names`]. Names are trimmed, empty ones dropped,
/// duplicates kept once; a lone `none` (or nothing) means no tracking.
pub fn resolve_backend_names(explicit: Option<&str>) -> Vec<String> {
    let raw = explicit
        .map(str::to_string)
        .or_else(|| std::env::var(env::EZPZ_TRACKER_BACKENDS).ok())
        .or_else(|| std::env::var(env::EZPZ_TRACKERS).ok());
    let Some(raw) = raw else {
        return default_backend_names();
    };
    let mut names: Vec<String> = Vec::new();
    for n in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    if names == ["none"] {
        names.clear();
    }
    names
}

/// Whether `wandb login` (or `WANDB_API_KEY`) left a key for the W&B server.
#[cfg(feature = "wandb")]
fn wandb_logged_in() -> bool {
    crate::backends::wandb::logged_in()
}

#[cfg(not(feature = "wandb"))]
fn wandb_logged_in() -> bool {
    var(env::WANDB_API_KEY).is_some()
}

/// The backends used when nothing names them: `csv`, `jsonl`, `tensorboard` (those compiled
/// in), plus `mlflow` when `MLFLOW_TRACKING_URI` is set, plus `wandb` when the user is
/// logged in (`WANDB_API_KEY`, or the `~/.netrc` entry `wandb login` writes for the
/// server's host) or `WANDB_MODE` is `offline`/`dryrun` (and `WANDB_DISABLED` is not).
pub fn default_backend_names() -> Vec<String> {
    let registered = registered_backends();
    let mut names: Vec<String> = ["csv", "jsonl", "tensorboard"]
        .iter()
        .filter(|n| registered.iter().any(|r| r == *n))
        .map(|n| n.to_string())
        .collect();
    if var(env::MLFLOW_TRACKING_URI).is_some() && registered.iter().any(|r| r == "mlflow") {
        names.push("mlflow".into());
    }
    let wandb_mode = var(env::WANDB_MODE).map(|m| m.to_lowercase());
    let wandb_wanted =
        wandb_logged_in() || matches!(wandb_mode.as_deref(), Some("offline" | "dryrun"));
    if wandb_wanted && var(env::WANDB_DISABLED).is_none() && registered.iter().any(|r| r == "wandb")
    {
        names.push("wandb".into());
    }
    names
}

/// The original's one-call setup: never fails, every problem is one warning, and a tracker
/// with whatever could start is returned (a disabled one at worst). An `outdir` that already
/// holds a run, or that another process holds (its `ezpz.lock`), is not touched: the run
/// writes to a fresh sibling (`<outdir>-2`), with a warning, unless `EZPZ_RESUME=1` asks to
/// append to it (and no other process is appending).
///
/// `backends`: comma-separated names or `None` for the environment/defaults; `rank`: `None`
/// detects it from the launcher's environment. The run's name and labels come from the
/// environment (`EZPZ_RUN_NAME`, `EZPZ_TAGS`, …: see [`RunSettings`](crate::RunSettings));
/// from code, `TrackerBuilder::…build_lossy()` is the same call with every knob.
pub fn setup_tracker(
    project_name: Option<&str>,
    backends: Option<&str>,
    config: Option<&serde_json::Value>,
    outdir: Option<&Path>,
    rank: Option<usize>,
) -> Tracker {
    let mut b = TrackerBuilder::new();
    if let Some(p) = project_name {
        b = b.project(p);
    }
    if let Some(n) = backends {
        b = b.backends(n);
    }
    if let Some(c) = config {
        b = b.config(c);
    }
    if let Some(o) = outdir {
        b = b.outdir(o);
    }
    if let Some(r) = rank {
        b = b.rank(r);
    }
    b.build_lossy()
}
