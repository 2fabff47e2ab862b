//! `Tracker`: validates and stamps on the caller's thread, fans out to backend workers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aggregate::Aggregator;
use crate::backend::{
    Artifacts, Backend, HistogramRecord, ImageRecord, ImageSource, Record, RunStatus, Table,
};
use crate::definition::MetricDefinition;
use crate::dispatch::{deadline_after, now, Dispatch, Msg, OnRelease};
use crate::histogram::{HistogramBins, HistogramData};
use crate::pending::PendingRow;
use crate::run_lock::RunLock;
use crate::run_settings::RunSettings;
pub use crate::summary::{BackendInfo, BackendSummary, Summary};
use crate::value::{IntoMetrics, Metric, MetricSink, Value};
use crate::{Error, RankInfo, Result};

/// Runs at finish on rank 0, before the backends end, with the tracker still open (it may log
/// tables and artifacts). The end-of-run report is one.
pub type FinishHook = Box<dyn Fn(&Tracker) + Send + Sync>;

/// The largest step any backend can store (MLflow, TensorBoard and W&B keep signed 64-bit
/// steps); a larger one is clamped to it, with one warning.
pub const MAX_STEP: u64 = i64::MAX as u64;

/// What `setup` hands the tracker.
pub(crate) struct TrackerParts {
    pub backends: Vec<Box<dyn Backend>>,
    /// Rows each backend's queue holds before it counts as behind.
    pub queue_capacity: usize,
    /// The longest a logging call waits for a backend that is behind (≤ 10 ms).
    pub max_wait: Duration,
    /// With lossy building, a worker that cannot start is a warning, not an error.
    pub lossy: bool,
    pub rank: RankInfo,
    pub project: String,
    pub settings: RunSettings,
    pub outdir: Option<PathBuf>,
    pub aggregator: Option<Box<dyn Aggregator>>,
    pub finish_timeout: Duration,
    pub finish_hooks: Vec<FinishHook>,
    pub start_time: f64,
    /// The first automatic step (after a resumed run's last one).
    pub first_step: u64,
    /// The run's lock on its outdir, released once the backends have finished.
    pub run_lock: Option<RunLock>,
}

/// Fans tracked data out to backends.
///
/// Cheap to clone (`Arc`), `Send + Sync`. Logging calls return `()`: they validate, convert
/// and hand over, never panic, and never wait for a backend more than 10 ms (nor while any
/// lock is held). Only [`flush`](Tracker::flush) and [`finish`](Tracker::finish) can fail.
/// Dropping the last clone finishes the run.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

/// A handle on a [`Tracker`] that does not keep its run open ([`Tracker::downgrade`]): for
/// registries and hooks that must not stop "dropping the last clone finishes the run".
#[derive(Clone, Default)]
pub struct WeakTracker {
    inner: Weak<Inner>,
}

impl WeakTracker {
    /// The tracker, while some [`Tracker`] clone still holds it.
    pub fn upgrade(&self) -> Option<Tracker> {
        self.inner.upgrade().map(|inner| Tracker { inner })
    }
}

impl std::fmt::Debug for WeakTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakTracker")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

struct Inner {
    dispatch: Dispatch,
    rank: RankInfo,
    project: String,
    settings: RunSettings,
    outdir: Option<PathBuf>,
    finish_timeout: Duration,
    start_time: f64,
    /// Taken by the first finish.
    hooks: Mutex<Vec<FinishHook>>,
    state: Arc<Mutex<State>>,
    /// Held for the whole of a finish (a concurrent one waits), then the outcome.
    outcome: Mutex<Option<Result<Summary>>>,
    /// While finishing: the one deadline that flushes (from the report) respect too, and
    /// the status the run ends with (for the finish hooks).
    finish_deadline: Mutex<Option<Instant>>,
    finishing: Mutex<Option<RunStatus>>,
    /// Every key's latest definition (for the report).
    definitions: Mutex<Vec<MetricDefinition>>,
    /// Dropped (the outdir's lock released) when the backends have finished.
    run_lock: Mutex<Option<RunLock>>,
}

#[derive(Default)]
struct State {
    next_step: u64,
    steps: u64,
    pending: PendingRow,
    pending_step: Option<u64>,
    /// The previous committed row ([`Tracker::last_record`]).
    last: Option<Arc<Record>>,
    warned: HashSet<&'static str>,
    finished: bool,
    /// Metrics were staged while nothing is delivered (the next commit counts a step).
    staged_undelivered: bool,
}

/// Takes a `log` call's pairs into the pending row (on the caller's thread, under the lock).
struct RowSink<'a> {
    state: &'a mut State,
    /// Whether rows go anywhere (else only the step count is kept).
    deliver: bool,
    /// A metric was left out because nothing is delivered.
    undelivered: bool,
}

impl RowSink<'_> {
    #[inline(always)]
    fn take(&mut self, key: &str, value: Value) {
        let state = &mut *self.state;
        if key.is_empty() {
            Tracker::warn_once(state, "empty-key", || {
                "a metric with an empty name was ignored".into()
            });
            return;
        }
        if key == "step" {
            match value.as_f64() {
                // `as` saturates: 1e20 becomes u64::MAX, then clamped below.
                Some(s) if s >= 0.0 && s.fract() == 0.0 && s.is_finite() => {
                    state.pending_step = Some(s as u64)
                }
                _ => Tracker::warn_once(state, "bad-step", || {
                    format!("`step` must be a non-negative integer, got `{value}`; ignored")
                }),
            }
            return;
        }
        if !self.deliver {
            self.undelivered = true;
            return;
        }
        state.pending.set(key, value);
    }
}

impl MetricSink for RowSink<'_> {
    #[inline]
    fn value(&mut self, key: &str, value: Value) {
        self.take(key, value);
    }
    #[inline]
    fn number(&mut self, key: &str, value: f64) {
        self.take(key, Value::F64(value));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("project", &self.inner.project)
            .field("backends", &self.backend_names())
            .field("rank", &self.inner.rank.rank)
            .finish()
    }
}

impl Tracker {
    /// Starts the dispatch (workers, hand-off or aggregation thread) for `parts`.
    ///
    /// # Errors
    /// A worker thread could not start (not with `parts.lossy`).
    pub(crate) fn start(parts: TrackerParts) -> Result<Tracker> {
        let state = Arc::new(Mutex::new(State {
            next_step: parts.first_step.min(MAX_STEP),
            ..State::default()
        }));
        let last = state.clone();
        let on_release: OnRelease = Box::new(move |record: &Arc<Record>| {
            lock(&last).last = Some(record.clone());
        });
        let dispatch = Dispatch::start(
            parts.backends,
            parts.queue_capacity,
            parts.max_wait,
            parts.aggregator,
            on_release,
            parts.lossy,
        )?;
        Ok(Tracker {
            inner: Arc::new(Inner {
                dispatch,
                rank: parts.rank,
                project: parts.project,
                settings: parts.settings,
                outdir: parts.outdir,
                finish_timeout: parts.finish_timeout,
                start_time: parts.start_time,
                hooks: Mutex::new(parts.finish_hooks),
                state,
                outcome: Mutex::new(None),
                finish_deadline: Mutex::new(None),
                finishing: Mutex::new(None),
                definitions: Mutex::default(),
                run_lock: Mutex::new(parts.run_lock),
            }),
        })
    }

    /// A tracker with no backends: every call is a no-op (the original's `NullTracker`).
    pub fn disabled() -> Tracker {
        Tracker {
            inner: Arc::new(Inner {
                dispatch: Dispatch::disabled(),
                rank: RankInfo::single(),
                project: "ezpz".into(),
                settings: RunSettings::default(),
                outdir: None,
                finish_timeout: Duration::from_secs(1),
                start_time: now(),
                hooks: Mutex::default(),
                state: Arc::default(),
                outcome: Mutex::new(None),
                finish_deadline: Mutex::new(None),
                finishing: Mutex::new(None),
                definitions: Mutex::default(),
                run_lock: Mutex::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// A handle that does not keep the run open: dropping the last `Tracker` still finishes
    /// it, after which [`WeakTracker::upgrade`] returns `None`.
    pub fn downgrade(&self) -> WeakTracker {
        WeakTracker {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Whether `self` and `other` are clones of the same tracker.
    pub fn ptr_eq(&self, other: &Tracker) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether any backend is attached (false for a disabled tracker and on ranks ≠ 0).
    pub fn is_enabled(&self) -> bool {
        self.inner.dispatch.has_backends()
    }

    /// Names of the attached backends, in order.
    pub fn backend_names(&self) -> Vec<String> {
        self.inner.dispatch.names().map(str::to_string).collect()
    }

    /// The attached backend called `name`, with its run identity (the last one attached wins).
    pub fn get_backend(&self, name: &str) -> Option<BackendInfo> {
        self.inner
            .dispatch
            .run_info(name)
            .map(|run_info| BackendInfo {
                name: name.to_string(),
                run_info,
            })
    }

    /// This process's rank and topology.
    pub fn rank(&self) -> &RankInfo {
        &self.inner.rank
    }

    /// The project name.
    pub fn project(&self) -> &str {
        &self.inner.project
    }

    /// The run name.
    pub fn run_name(&self) -> &str {
        &self.inner.settings.run_name
    }

    /// The run's name, tags, notes, group, job type, entity and experiment, as the builder
    /// and the `EZPZ_*` variables set them (each backend's own variables and options may
    /// override them for that backend: see [`RunSettings`]).
    pub fn settings(&self) -> &RunSettings {
        &self.inner.settings
    }

    /// The run's output directory on rank 0 (none on other ranks or for a disabled tracker).
    pub fn outdir(&self) -> Option<&Path> {
        self.inner.outdir.as_deref()
    }

    /// When the tracker was built, in seconds since the Unix epoch.
    pub fn start_time(&self) -> f64 {
        self.inner.start_time
    }

    /// The last committed row as the backends received it, aggregates included (rank 0),
    /// e.g. for a console line: `report::format_compact(&*tracker.last_record()?)`.
    pub fn last_record(&self) -> Option<Arc<Record>> {
        self.state().last.clone()
    }

    /// The step the next auto-stepped record gets.
    pub fn next_step(&self) -> u64 {
        self.state().next_step
    }

    fn warn_once(state: &mut State, cause: &'static str, message: impl FnOnce() -> String) {
        if state.warned.insert(cause) {
            crate::warn!("ezpz: {}", message());
        }
    }

    /// Logs one row of metrics at the next step.
    ///
    /// A `"step"` key sets the step (and is not logged as a metric); otherwise the step is one
    /// more than the previous row's. An empty set is a no-op.
    ///
    /// ```
    /// # let tracker = ezpz_tracker::Tracker::disabled();
    /// tracker.log([("loss", 0.42), ("lr", 1e-4)]);
    /// tracker.log(ezpz_tracker::metrics! { "epoch" => 1, "phase" => "train" });
    /// ```
    pub fn log(&self, metrics: impl IntoMetrics) {
        self.log_with(metrics, None, true);
    }

    /// Logs one row at an explicit step (later auto steps continue from it).
    pub fn log_at(&self, step: u64, metrics: impl IntoMetrics) {
        self.log_with(metrics, Some(step), true);
    }

    /// Adds metrics to the current row without committing it (the original's
    /// `commit=False`); the next [`log`](Tracker::log) or [`commit`](Tracker::commit) writes
    /// the whole row once.
    pub fn stage(&self, metrics: impl IntoMetrics) {
        self.log_with(metrics, None, false);
    }

    /// Commits the staged row, if any.
    pub fn commit(&self) {
        self.log_with(Vec::<Metric>::new(), None, true);
    }

    /// The general form: `step` (explicit wins over a `"step"` key and the counter) and
    /// `commit` (false stages the metrics into the current row).
    pub fn log_with(&self, metrics: impl IntoMetrics, step: Option<u64>, commit: bool) {
        let pressed = self.log_locked(metrics, step, commit);
        if pressed {
            // A backend is behind but still writing: a short pause, with no lock held.
            self.inner.dispatch.throttle();
        }
    }

    /// [`log_with`](Self::log_with) under the tracker's lock; true when a backend is behind.
    fn log_locked(&self, metrics: impl IntoMetrics, step: Option<u64>, commit: bool) -> bool {
        let mut guard = self.state();
        let state = &mut *guard;
        if state.finished {
            Self::warn_once(state, "log-after-finish", || {
                "log called after finish; ignored".into()
            });
            return false;
        }
        // Nothing is delivered anywhere (a disabled tracker, or a rank other than 0 without
        // cross-rank aggregation): only the step count is kept, nothing is allocated.
        let deliver = self.inner.dispatch.delivers();
        let mut sink = RowSink {
            state,
            deliver,
            undelivered: false,
        };
        metrics.for_each_metric(&mut sink);
        let undelivered = sink.undelivered;
        if let Some(s) = step {
            state.pending_step = Some(s);
        }
        if !deliver {
            state.staged_undelivered |= undelivered;
            if commit && std::mem::take(&mut state.staged_undelivered) {
                let step = Self::take_step(state);
                state.next_step = step.saturating_add(1).min(MAX_STEP);
                state.steps += 1;
            }
            return false;
        }
        if !commit || state.pending.is_empty() {
            return false;
        }
        let step = Self::take_step(state);
        state.next_step = step.saturating_add(1).min(MAX_STEP);
        state.steps += 1;
        // This thread's reference to the previous row goes first, so that it comes back
        // unique to be reused.
        state.last = None;
        let committed = self
            .inner
            .dispatch
            .commit(step, self.inner.rank.rank, &mut state.pending);
        if committed.record.is_some() {
            state.last = committed.record;
        }
        committed.pressed
    }

    /// The committed row's step: explicit, else the counter; clamped to [`MAX_STEP`].
    fn take_step(state: &mut State) -> u64 {
        let step = state.pending_step.take().unwrap_or(state.next_step);
        if step > MAX_STEP {
            Self::warn_once(state, "step-too-large", || {
                format!(
                    "step {step} is beyond what backends can store; clamped to {MAX_STEP} \
                     (later steps too)"
                )
            });
        }
        step.min(MAX_STEP)
    }

    fn fan_out(&self, make: impl Fn() -> Msg + Send + 'static) {
        if !self.is_enabled() {
            return;
        }
        let pressed = {
            let mut state = self.state();
            if state.finished {
                Self::warn_once(&mut state, "call-after-finish", || {
                    "a logging call after finish was ignored".into()
                });
                return;
            }
            // Under the lock, so that it stays behind the rows committed before it.
            self.inner.dispatch.send(make)
        };
        if pressed {
            self.inner.dispatch.throttle();
        }
    }

    /// Merges configuration (anything `Serialize`; a non-object value is stored under
    /// `config`). Later calls add or replace keys.
    pub fn log_config(&self, config: impl Serialize) {
        if !self.is_enabled() {
            return;
        }
        match serde_json::to_value(config) {
            Ok(v) => {
                let v = Arc::new(crate::config::as_object(v));
                self.fan_out(move || Msg::Config(v.clone()));
            }
            Err(e) => {
                let mut state = self.state();
                Self::warn_once(&mut state, "bad-config", || {
                    format!("configuration could not be serialized ({e}); ignored")
                });
            }
        }
    }

    /// Logs a table (`columns`, then rows of values).
    pub fn log_table<C, R, V>(&self, key: &str, columns: C, rows: R)
    where
        C: IntoIterator,
        C::Item: Into<String>,
        R: IntoIterator,
        R::Item: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        if !self.is_enabled() {
            return;
        }
        let table = Arc::new(Table {
            key: key.to_string(),
            columns: columns.into_iter().map(Into::into).collect(),
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().map(Into::into).collect())
                .collect(),
            step: self.next_step(),
        });
        self.fan_out(move || Msg::Table(table.clone()));
    }

    /// Logs an image from a file path or an in-memory image (`image::DynamicImage`,
    /// `RgbImage`, …). A file is read by each backend's worker, not here.
    pub fn log_image(&self, key: &str, source: impl Into<ImageSource>, caption: Option<&str>) {
        if !self.is_enabled() {
            return;
        }
        let image = Arc::new(ImageRecord {
            key: key.to_string(),
            source: source.into(),
            caption: caption.map(str::to_string),
            step: self.next_step(),
        });
        self.fan_out(move || Msg::Image(image.clone()));
    }

    /// Stores files or directories with the run, by label (`label → path`).
    pub fn log_artifacts<L, P>(&self, items: impl IntoIterator<Item = (L, P)>)
    where
        L: Into<String>,
        P: Into<PathBuf>,
    {
        if !self.is_enabled() {
            return;
        }
        let artifacts = Arc::new(Artifacts {
            items: items
                .into_iter()
                .map(|(l, p)| (l.into(), p.into()))
                .collect(),
        });
        self.fan_out(move || Msg::Artifacts(artifacts.clone()));
    }

    /// Says what the metric [`definition.key`](MetricDefinition::key) means: its unit and
    /// which way it improves. Every backend gets it (W&B summarises the metric by its best
    /// value too, MLflow tags the run with it; see [`MetricDefinition`]). An empty key is
    /// ignored.
    ///
    /// ```
    /// use ezpz_tracker::{Goal, MemoryBackend, MetricDefinition, TrackerBuilder};
    /// let memory = MemoryBackend::new();
    /// let tracker = TrackerBuilder::new().backends("none").add_backend(memory.clone()).build().unwrap();
    /// tracker.define_metric(MetricDefinition::new("valid/loss").goal(Goal::Minimize));
    /// tracker.finish().unwrap();
    /// assert_eq!(memory.snapshot().definitions[0].goal, Some(Goal::Minimize));
    /// ```
    pub fn define_metric(&self, definition: MetricDefinition) {
        if !self.is_enabled() || definition.key.is_empty() {
            return;
        }
        {
            let mut known = lock(&self.inner.definitions);
            known.retain(|d| d.key != definition.key);
            known.push(definition.clone());
        }
        let definition = Arc::new(definition);
        self.fan_out(move || Msg::Define(definition.clone()));
    }

    /// Every key's latest [`define_metric`](Self::define_metric), in the order first given.
    pub fn metric_definitions(&self) -> Vec<MetricDefinition> {
        lock(&self.inner.definitions).clone()
    }

    /// Logs a histogram of `values` at the next step.
    pub fn log_histogram(&self, key: &str, values: impl Into<Arc<[f64]>>) {
        self.log_histogram_at(self.next_step(), key, values);
    }

    /// Logs a histogram of `values` at an explicit step (for callers that keep their own
    /// step, such as a training hook running beside other threads that log).
    ///
    /// ```
    /// use ezpz_tracker::{MemoryBackend, TrackerBuilder};
    /// let memory = MemoryBackend::new();
    /// let tracker = TrackerBuilder::new().backends("none").add_backend(memory.clone()).build().unwrap();
    /// tracker.log_histogram_at(7, "weights", vec![0.5, 1.5]);
    /// tracker.finish().unwrap();
    /// let histograms = memory.snapshot().histograms;
    /// assert_eq!((histograms[0].step, histograms[0].data.values()), (7, Some(&[0.5, 1.5][..])));
    /// ```
    pub fn log_histogram_at(&self, step: u64, key: &str, values: impl Into<Arc<[f64]>>) {
        if self.is_enabled() {
            self.send_histogram(step, key, HistogramData::Values(values.into()));
        }
    }

    /// Logs a histogram already binned (a few numbers instead of every value: bins made on a
    /// GPU, say) at the next step. TensorBoard draws its bins as they are; W&B gets them as
    /// its `histogram` object.
    pub fn log_histogram_bins(&self, key: &str, bins: HistogramBins) {
        self.log_histogram_bins_at(self.next_step(), key, bins);
    }

    /// Logs a histogram already binned at an explicit step.
    ///
    /// ```
    /// use ezpz_tracker::{HistogramBins, MemoryBackend, TrackerBuilder};
    /// let memory = MemoryBackend::new();
    /// let tracker = TrackerBuilder::new().backends("none").add_backend(memory.clone()).build().unwrap();
    /// tracker.log_histogram_bins_at(7, "weights", HistogramBins::from_values(&[0.5, 1.5]));
    /// tracker.finish().unwrap();
    /// let histograms = memory.snapshot().histograms;
    /// assert_eq!(histograms[0].data.bins().count(), 2);
    /// ```
    pub fn log_histogram_bins_at(&self, step: u64, key: &str, bins: HistogramBins) {
        if self.is_enabled() {
            self.send_histogram(step, key, HistogramData::Bins(Arc::new(bins)));
        }
    }

    fn send_histogram(&self, step: u64, key: &str, data: HistogramData) {
        let histogram = Arc::new(HistogramRecord {
            key: key.to_string(),
            data,
            step,
        });
        self.fan_out(move || Msg::Histogram(histogram.clone()));
    }

    /// Makes everything logged so far durable in every backend, waiting at most the finish
    /// timeout (`EZPZ_FINISH_TIMEOUT`; during [`finish`](Tracker::finish), what is left of
    /// its deadline). Idempotent; a staged row stays staged.
    ///
    /// # Errors
    /// Each backend that failed or did not answer in time.
    pub fn flush(&self) -> Result<()> {
        if self.state().finished {
            return Ok(());
        }
        let cap = self.inner.finish_timeout;
        let mut deadline = deadline_after(cap);
        if let Some(finishing) = *lock(&self.inner.finish_deadline) {
            deadline = deadline.min(finishing);
        }
        self.inner.dispatch.flush(deadline, cap)
    }

    /// Ends the run normally. See [`finish_with`](Tracker::finish_with).
    ///
    /// # Errors
    /// See [`finish_with`](Tracker::finish_with).
    pub fn finish(&self) -> Result<Summary> {
        self.finish_with(RunStatus::Finished)
    }

    /// Commits a staged row, waits for the other ranks' rows, runs the finish hooks (the
    /// report), ends every backend's run with `status`, and reports dropped data — all within
    /// one deadline, `EZPZ_FINISH_TIMEOUT` (default 30 s) from the call: at most a third of
    /// it waits for other ranks (then rank 0 writes what it has and warns which ranks were
    /// missing), the hooks get at most half of what is left, the backends the rest.
    ///
    /// Idempotent: later calls (concurrent ones wait for the first) return the first call's
    /// result.
    ///
    /// # Errors
    /// [`Error::Finish`]: the [`Summary`] and what did not complete (a backend that failed or
    /// did not answer in time, a panic on an ezpz thread).
    pub fn finish_with(&self, status: RunStatus) -> Result<Summary> {
        let mut outcome = lock(&self.inner.outcome);
        if let Some(result) = &*outcome {
            return result.clone();
        }
        let cap = self.inner.finish_timeout;
        let deadline = deadline_after(cap);
        *lock(&self.inner.finish_deadline) = Some(deadline);
        *lock(&self.inner.finishing) = Some(status);
        self.commit();
        // `num / den` of the time left before the deadline, from now.
        let share = |num: u32, den: u32| {
            let now = Instant::now();
            now + deadline.saturating_duration_since(now) * num / den
        };
        let failed = status != RunStatus::Finished;
        // The rounds wait half of their share for other ranks, then give up.
        let mut errors = self.inner.dispatch.finish_rounds(failed, share(2, 3));
        if self.is_enabled() {
            self.run_hooks(share(1, 2));
        }
        let steps = {
            let mut state = self.state();
            state.finished = true;
            state.steps
        };
        let (backend_errors, backends) = self.inner.dispatch.finish(status, deadline, cap);
        lock(&self.inner.run_lock).take();
        errors.extend(backend_errors);
        let summary = Summary {
            outdir: self.inner.outdir.clone(),
            backends,
            steps,
        };
        let result = match Error::collect(errors) {
            Ok(()) => Ok(summary),
            Err(error) => Err(Error::Finish {
                summary: Box::new(summary),
                error: Box::new(error),
            }),
        };
        *outcome = Some(result.clone());
        result
    }

    /// Runs the finish hooks on their own thread, waiting for them until `deadline` (a hook
    /// still running then goes on alone; what it logs after the finish is ignored).
    fn run_hooks(&self, deadline: Instant) {
        let hooks = std::mem::take(&mut *lock(&self.inner.hooks));
        if hooks.is_empty() {
            return;
        }
        let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
        let tracker = self.clone();
        let run = move || {
            for hook in &hooks {
                let caught =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&tracker)));
                if caught.is_err() {
                    crate::warn!("ezpz: a finish hook panicked; skipped");
                }
            }
            let _ = done_tx.send(());
        };
        let spawned = std::thread::Builder::new()
            .name("ezpz-finish".into())
            .spawn(run);
        if let Err(e) = spawned {
            crate::warn!("ezpz: the finish hooks could not start ({e}); the report is skipped");
            return;
        }
        if done.recv_deadline(deadline).is_err() {
            crate::warn!(
                "ezpz: the finish hooks (the report) did not end within their share of the \
                 finish deadline; the run is finished without waiting for them"
            );
        }
    }

    /// The status the run is ending with, once [`finish_with`](Tracker::finish_with) has
    /// started (a finish hook, such as the report, reads it).
    pub fn finishing_status(&self) -> Option<RunStatus> {
        *lock(&self.inner.finishing)
    }

    /// The URL of `backend`'s run (an MLflow or W&B run page), once the backend knows it.
    pub fn run_url(&self, backend: &str) -> Option<String> {
        self.get_backend(backend)?.url().map(str::to_string)
    }

    /// Whether [`finish`](Tracker::finish) has run.
    pub fn is_finished(&self) -> bool {
        self.state().finished
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let finished = lock(&self.outcome).is_some() || lock(&self.state).finished;
        if finished || !self.dispatch.delivers() {
            return;
        }
        let status = if std::thread::panicking() {
            RunStatus::Failed
        } else {
            RunStatus::Finished
        };
        // Moved into a temporary tracker to reuse finish (hooks included, so a program that
        // forgot `finish` still gets its report).
        let tracker = Tracker {
            inner: Arc::new(Inner {
                dispatch: std::mem::replace(&mut self.dispatch, Dispatch::disabled()),
                rank: self.rank.clone(),
                project: std::mem::take(&mut self.project),
                settings: std::mem::take(&mut self.settings),
                outdir: self.outdir.take(),
                finish_timeout: self.finish_timeout,
                start_time: self.start_time,
                hooks: Mutex::new(std::mem::take(&mut *lock(&self.hooks))),
                state: self.state.clone(),
                outcome: Mutex::new(None),
                finish_deadline: Mutex::new(None),
                finishing: Mutex::new(None),
                definitions: Mutex::new(std::mem::take(&mut *lock(&self.definitions))),
                run_lock: Mutex::new(lock(&self.run_lock).take()),
            }),
        };
        if let Err(e) = tracker.finish_with(status) {
            crate::warn!("ezpz: finishing the run on drop: {e}");
        }
    }
}
