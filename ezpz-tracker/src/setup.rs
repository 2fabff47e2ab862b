//! `TrackerBuilder` and the original's `setup_tracker` convenience.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::aggregate::Aggregator;
use crate::backend::{Backend, BackendContext};
use crate::env::{self, var};
use crate::registry::{constructor, registered_backends};
use crate::report::{self, ReportOptions};
use crate::tracker::{FinishHook, Tracker, TrackerParts};
use crate::worker::WorkerHandle;
use crate::{Error, RankInfo, Result};

/// Default messages per backend queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// Default wait on a full queue before a message is dropped.
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on `flush`/`finish` (override with `EZPZ_FINISH_TIMEOUT`).
pub const DEFAULT_FINISH_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Builds a [`Tracker`]. Code overrides the environment; unset knobs fall back to it.
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
    rank: Option<RankInfo>,
    run_name: Option<String>,
    extra: Vec<Box<dyn Backend>>,
    aggregator: Option<Box<dyn Aggregator>>,
    queue_capacity: usize,
    enqueue_timeout: Duration,
    finish_timeout: Option<Duration>,
    finish_hooks: Vec<FinishHook>,
    report: Option<ReportOptions>,
}

impl Default for TrackerBuilder {
    fn default() -> Self {
        TrackerBuilder {
            project: None,
            backends: None,
            config: None,
            outdir: None,
            rank: None,
            run_name: None,
            extra: Vec::new(),
            aggregator: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            finish_timeout: None,
            finish_hooks: Vec::new(),
            report: Some(ReportOptions::default()),
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

    /// Where local files go, directly (default `outputs/<project>/<UTC timestamp>`).
    pub fn outdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.outdir = Some(dir.into());
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

    /// The run's display name (default `<project>-<UTC timestamp>`).
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
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

    /// Rows (and other items) each backend's queue holds before `log` waits (default
    /// 16 384).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// How long `log` waits on a full queue before dropping (default 5 s).
    pub fn enqueue_timeout(mut self, timeout: Duration) -> Self {
        self.enqueue_timeout = timeout;
        self
    }

    /// Cap on `flush` and `finish` (else `EZPZ_FINISH_TIMEOUT` seconds, else 30 s).
    pub fn finish_timeout(mut self, timeout: Duration) -> Self {
        self.finish_timeout = Some(timeout);
        self
    }

    /// Runs `hook` at finish on rank 0, before the backends end.
    pub fn on_finish(mut self, hook: impl Fn(&Tracker) + Send + Sync + 'static) -> Self {
        self.finish_hooks.push(Box::new(hook));
        self
    }

    /// Whether the end-of-run report (`report.md`, `plots/`, `run_info.json`, see
    /// [`report`](crate::report)) is written at finish on rank 0 when the `jsonl` backend is
    /// attached (default on).
    pub fn report(mut self, enabled: bool) -> Self {
        self.report = enabled.then(|| self.report.take().unwrap_or_default());
        self
    }

    /// Turns the end-of-run report on with these options (plot size, points, limits).
    pub fn report_options(mut self, options: ReportOptions) -> Self {
        self.report = Some(options);
        self
    }

    /// Builds the tracker. Unknown backend names are warned about (naming the registered
    /// ones) and skipped.
    ///
    /// # Errors
    /// The output directory cannot be created, or a named backend fails to start.
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
    /// whatever can start does (a tracker with no backends at worst).
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
        let run_name = self
            .run_name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", project, stamp.format("%Y%m%d-%H%M%S")));
        let outdir = self.outdir.clone().unwrap_or_else(|| {
            Path::new("outputs")
                .join(&project)
                .join(stamp.format("%Y-%m-%d-%H%M%S").to_string())
        });
        let start_time = stamp.timestamp_micros() as f64 / 1e6;
        let finish_timeout = self.finish_timeout.unwrap_or_else(|| {
            var(env::EZPZ_FINISH_TIMEOUT)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .unwrap_or(DEFAULT_FINISH_TIMEOUT)
        });
        let mut backends: Vec<Box<dyn Backend>> = Vec::new();
        let mut local_outdir = None;
        if rank.is_main() && !(names.is_empty() && self.extra.is_empty()) {
            let ctx = BackendContext {
                project: project.clone(),
                outdir: outdir.clone(),
                rank: rank.clone(),
                run_name: run_name.clone(),
                start_time,
                config: self.config.clone(),
                finish_timeout,
            };
            backends = construct(&names, &ctx, strictness)?;
            if !names.is_empty() && outdir.is_dir() {
                local_outdir = Some(outdir);
            }
        }
        let mut workers = Vec::new();
        if rank.is_main() {
            backends.extend(self.extra);
        }
        let (recycle, recycled) = crossbeam_channel::unbounded();
        for backend in backends {
            let spawned = WorkerHandle::spawn(
                backend,
                self.queue_capacity,
                self.enqueue_timeout,
                recycle.clone(),
            );
            match spawned {
                Ok(w) => workers.push(w),
                Err(e) if strictness == Strictness::Lossy => crate::warn!("ezpz: {e}"),
                Err(e) => return Err(e),
            }
        }
        let mut finish_hooks = self.finish_hooks;
        // Last, so it sees what the user's own hooks log.
        if let Some(options) = self
            .report
            .filter(|_| rank.is_main() && !workers.is_empty())
        {
            finish_hooks.push(report::finish_hook(options));
        }
        let tracker = Tracker::from_parts(TrackerParts {
            workers: Arc::new(workers),
            rank,
            project,
            run_name,
            outdir: local_outdir,
            aggregator: self.aggregator,
            rounds: None,
            recycled,
            nudger: None,
            finish_timeout,
            finish_hooks,
            start_time,
        });
        if let Some(config) = self.config {
            tracker.log_config(config);
        }
        Ok(tracker)
    }
}

fn construct(
    names: &[String],
    ctx: &BackendContext,
    strictness: Strictness,
) -> Result<Vec<Box<dyn Backend>>> {
    let mut out = Vec::new();
    if !names.is_empty() {
        if let Err(e) = std::fs::create_dir_all(&ctx.outdir) {
            let err = Error::io("cannot create output directory", &ctx.outdir, e);
            if strictness == Strictness::Lossy {
                crate::warn!("ezpz: {err}; backends that write files are skipped");
            } else {
                return Err(err);
            }
        }
    }
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
/// with whatever could start is returned (a disabled one at worst).
///
/// `backends`: comma-separated names or `None` for the environment/defaults; `rank`: `None`
/// detects it from the launcher's environment.
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
