//! `Tracker`: validates and stamps on the caller's thread, fans out to backend workers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::aggregate::rounds::Rounds;
use crate::aggregate::wire::aggregatable;
use crate::aggregate::Aggregator;
use crate::backend::{
    Artifacts, HistogramRecord, ImageRecord, ImageSource, Record, RunStatus, Table,
};
use crate::pending::PendingRow;
use crate::staging::{Nudger, Returned, Staging};
pub use crate::summary::{BackendInfo, BackendSummary, Summary};
use crate::value::{IntoMetrics, Metric, Value};
use crate::worker::{Msg, WorkerHandle};
use crate::{Error, RankInfo, Result};
use crossbeam_channel::Receiver;

/// Runs at finish on rank 0, before the backends end, with the tracker still open (it may log
/// tables and artifacts). The end-of-run report is one.
pub type FinishHook = Box<dyn Fn(&Tracker) + Send + Sync>;

pub(crate) struct TrackerParts {
    pub workers: Arc<Vec<WorkerHandle>>,
    pub rank: RankInfo,
    pub project: String,
    pub run_name: String,
    pub outdir: Option<PathBuf>,
    pub aggregator: Option<Box<dyn Aggregator>>,
    /// The aggregation thread, started from `aggregator` (more than one rank).
    pub rounds: Option<Rounds>,
    /// Rows the workers have written, to be freed on the logging thread (`staging`).
    pub recycled: Receiver<Returned>,
    /// Hands over rows a logging loop left waiting (started with the tracker).
    pub nudger: Option<Nudger>,
    pub finish_timeout: Duration,
    pub finish_hooks: Vec<FinishHook>,
    pub start_time: f64,
}

/// Fans tracked data out to backends.
///
/// Cheap to clone (`Arc`), `Send + Sync`. Logging calls return `()`: they validate, convert
/// and enqueue, and never block on I/O or panic. Only [`flush`](Tracker::flush) and
/// [`finish`](Tracker::finish) can fail. Dropping the last clone finishes the run.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

struct Inner {
    parts: TrackerParts,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    next_step: u64,
    steps: u64,
    pending: PendingRow,
    pending_step: Option<u64>,
    /// The previous committed row (its keys are reused by the next one).
    last: Option<Arc<Record>>,
    warned: HashSet<&'static str>,
    finished: Option<Summary>,
    /// Committed rows on their way to the workers.
    staging: Staging,
    /// Metrics were staged while nothing is delivered (the next commit counts a step).
    staged_undelivered: bool,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("project", &self.inner.parts.project)
            .field("backends", &self.backend_names())
            .field("rank", &self.inner.parts.rank.rank)
            .finish()
    }
}

impl Tracker {
    pub(crate) fn from_parts(mut parts: TrackerParts) -> Tracker {
        let state = Arc::new(Mutex::new(State {
            staging: Staging::new(parts.recycled.clone()),
            ..State::default()
        }));
        if let Some(aggregator) = parts.aggregator.take() {
            if aggregator.world_size() > 1 && parts.rounds.is_none() {
                let last = state.clone();
                let on_release = Box::new(move |record: &Arc<Record>| {
                    last.lock().unwrap_or_else(|e| e.into_inner()).last = Some(record.clone());
                });
                match Rounds::start(aggregator, parts.workers.clone(), on_release) {
                    Ok(rounds) => parts.rounds = Some(rounds),
                    Err(e) => crate::warn!(
                        "ezpz: the aggregation thread could not start ({e}); no cross-rank \
                         aggregates"
                    ),
                }
            }
        }
        if parts.nudger.is_none() && parts.rounds.is_none() && !parts.workers.is_empty() {
            let (state, workers) = (state.clone(), parts.workers.clone());
            let tick = move || {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                if state.staging.is_stale(now()) {
                    state.staging.hand_off(&workers);
                }
            };
            match Nudger::start(tick) {
                Ok(nudger) => parts.nudger = Some(nudger),
                // Rows then reach the workers at the next log, flush or finish.
                Err(e) => crate::warn!("ezpz: the hand-over thread could not start ({e})"),
            }
        }
        Tracker {
            inner: Arc::new(Inner { parts, state }),
        }
    }

    /// The aggregation thread, while rows still go through it.
    fn rounds(&self) -> Option<&Rounds> {
        self.inner.parts.rounds.as_ref().filter(|r| r.is_open())
    }

    /// A tracker with no backends: every call is a no-op (the original's `NullTracker`).
    pub fn disabled() -> Tracker {
        Tracker::from_parts(TrackerParts {
            workers: Arc::default(),
            rank: RankInfo::single(),
            project: "ezpz".into(),
            run_name: String::new(),
            outdir: None,
            aggregator: None,
            rounds: None,
            recycled: crossbeam_channel::never(),
            nudger: None,
            finish_timeout: Duration::from_secs(1),
            finish_hooks: Vec::new(),
            start_time: now(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any backend is attached (false for a disabled tracker and on ranks ≠ 0).
    pub fn is_enabled(&self) -> bool {
        !self.inner.parts.workers.is_empty()
    }

    /// Names of the attached backends, in order.
    pub fn backend_names(&self) -> Vec<String> {
        self.inner
            .parts
            .workers
            .iter()
            .map(|w| w.name.clone())
            .collect()
    }

    /// The attached backend called `name`, with its run identity (the last one attached wins).
    pub fn get_backend(&self, name: &str) -> Option<BackendInfo> {
        self.inner
            .parts
            .workers
            .iter()
            .rev()
            .find(|w| w.name == name)
            .map(|w| BackendInfo {
                name: w.name.clone(),
                run_info: w.run_info(),
            })
    }

    /// This process's rank and topology.
    pub fn rank(&self) -> &RankInfo {
        &self.inner.parts.rank
    }

    /// The project name.
    pub fn project(&self) -> &str {
        &self.inner.parts.project
    }

    /// The run name.
    pub fn run_name(&self) -> &str {
        &self.inner.parts.run_name
    }

    /// The run's output directory on rank 0 (none on other ranks or for a disabled tracker).
    pub fn outdir(&self) -> Option<&Path> {
        self.inner.parts.outdir.as_deref()
    }

    /// When the tracker was built, in seconds since the Unix epoch.
    pub fn start_time(&self) -> f64 {
        self.inner.parts.start_time
    }

    /// The last committed row as the backends received it, aggregates included (rank 0),
    /// e.g. for a console line: `report::format_compact(tracker.last_record()?.metrics.clone())`.
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
        let mut guard = self.state();
        let state = &mut *guard;
        if state.finished.is_some() {
            Self::warn_once(state, "log-after-finish", || {
                "log called after finish; ignored".into()
            });
            return;
        }
        // Nothing is delivered anywhere (a disabled tracker, or a rank other than 0 without
        // cross-rank aggregation): only the step count is kept, nothing is allocated.
        let deliver = !self.inner.parts.workers.is_empty() || self.rounds().is_some();
        let mut undelivered = false;
        // Fast path: the same keys as the previous row, in the same order, reuse its key
        // allocations and cannot contain duplicates (the previous row had none).
        let mut positional = state.pending.is_empty();
        let last = state.last.take();
        metrics.for_each_metric(&mut |key, value| {
            if key.is_empty() {
                Self::warn_once(state, "empty-key", || {
                    "a metric with an empty name was ignored".into()
                });
                return;
            }
            if key == "step" {
                match value.as_f64() {
                    Some(s) if s >= 0.0 && s.fract() == 0.0 && s.is_finite() => {
                        state.pending_step = Some(s as u64)
                    }
                    _ => Self::warn_once(state, "bad-step", || {
                        format!("`step` must be a non-negative integer, got `{value}`; ignored")
                    }),
                }
                return;
            }
            if !deliver {
                undelivered = true;
                return;
            }
            let hint = last.as_ref().map(|r| &r.metrics[..]);
            positional = state.pending.set(key, value, positional, hint);
        });
        state.last = last;
        if let Some(s) = step {
            state.pending_step = Some(s);
        }
        if !deliver {
            state.staged_undelivered |= undelivered;
            if commit && std::mem::take(&mut state.staged_undelivered) {
                let step = state.pending_step.take().unwrap_or(state.next_step);
                state.next_step = step + 1;
                state.steps += 1;
            }
            return;
        }
        if !commit || state.pending.is_empty() {
            return;
        }
        let step = state.pending_step.take().unwrap_or(state.next_step);
        state.next_step = step + 1;
        state.steps += 1;
        if let Some(rounds) = self.rounds() {
            // What the workers handed back (the aggregation thread hands rows over).
            state.staging.take_back();
            let metrics = state.pending.take();
            let record = Record {
                step,
                timestamp: now(),
                rank: self.inner.parts.rank.rank,
                metrics,
            };
            // Aggregated across ranks on the aggregation thread, which hands the row to the
            // backends (rank 0) in this order; sent under the lock like the rows below.
            let numeric: Vec<(Arc<str>, f64)> = record
                .metrics
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect();
            let pairs = aggregatable(numeric);
            let record = (!self.inner.parts.workers.is_empty()).then_some(record);
            if !pairs.is_empty() || record.is_some() {
                rounds.row(step, pairs, record);
            }
            return;
        }
        let record = self.commit_row(state, step);
        state.last = Some(record.clone());
        // Handed over under the lock so every backend sees rows in the same order.
        state.staging.push(record, &self.inner.parts.workers);
    }

    /// The pending row as a shared record, in a row the workers handed back when possible.
    fn commit_row(&self, state: &mut State, step: u64) -> Arc<Record> {
        // This thread's reference to the previous row goes first, so that it comes back unique.
        state.last = None;
        let mut record = state.staging.row();
        let row = Arc::get_mut(&mut record).expect("staging hands out unique rows");
        row.step = step;
        row.timestamp = now();
        row.rank = self.inner.parts.rank.rank;
        // The recycled row's entries become the next row's (see `pending`).
        state.pending.swap_into(&mut row.metrics);
        record
    }

    fn fan_out(&self, make: impl Fn() -> Msg + Send + 'static) {
        if self.inner.parts.workers.is_empty() {
            return;
        }
        let mut state = self.state();
        if state.finished.is_some() {
            Self::warn_once(&mut state, "call-after-finish", || {
                "a logging call after finish was ignored".into()
            });
            return;
        }
        state.staging.hand_off(&self.inner.parts.workers);
        if let Some(rounds) = self.rounds() {
            // Behind the rows still waiting for other ranks.
            rounds.forward(Box::new(move |workers| {
                for w in workers {
                    w.send(make());
                }
            }));
            return;
        }
        for w in self.inner.parts.workers.iter() {
            w.send(make());
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
    /// assert_eq!((histograms[0].step, &*histograms[0].values), (7, &[0.5, 1.5][..]));
    /// ```
    pub fn log_histogram_at(&self, step: u64, key: &str, values: impl Into<Arc<[f64]>>) {
        if !self.is_enabled() {
            return;
        }
        let histogram = Arc::new(HistogramRecord {
            key: key.to_string(),
            values: values.into(),
            step,
        });
        self.fan_out(move || Msg::Histogram(histogram.clone()));
    }

    /// Makes everything logged so far durable in every backend, waiting at most the finish
    /// timeout (`EZPZ_FINISH_TIMEOUT`). Idempotent; a staged row stays staged.
    ///
    /// # Errors
    /// Each backend that failed or did not answer in time.
    pub fn flush(&self) -> Result<()> {
        {
            let mut state = self.state();
            if state.finished.is_some() {
                return Ok(());
            }
            state.staging.hand_off(&self.inner.parts.workers);
        }
        let deadline = Instant::now() + self.inner.parts.finish_timeout;
        if let Some(rounds) = self.rounds() {
            if !rounds.drain(deadline) {
                Self::warn_once(&mut self.state(), "flush-waiting-ranks", || {
                    "flush: some rows still wait for other ranks' rows to be aggregated; they \
                     are written when those arrive"
                        .into()
                });
            }
        }
        self.control("flush", Msg::Flush)
    }

    fn control(
        &self,
        op: &'static str,
        make: impl Fn(crossbeam_channel::Sender<Result<()>>) -> Msg,
    ) -> Result<()> {
        let cap = self.inner.parts.finish_timeout;
        let deadline = Instant::now() + cap;
        let workers = &self.inner.parts.workers;
        let pending: Vec<_> = workers
            .iter()
            .map(|w| w.request(op, &make, deadline, cap))
            .collect();
        let errors = workers
            .iter()
            .zip(pending)
            .filter_map(|(w, p)| p.and_then(|rx| w.await_reply(&rx, op, deadline, cap)).err())
            .collect();
        Error::collect(errors)
    }

    /// Ends the run normally. See [`finish_with`](Tracker::finish_with).
    ///
    /// # Errors
    /// See [`finish_with`](Tracker::finish_with).
    pub fn finish(&self) -> Result<Summary> {
        self.finish_with(RunStatus::Finished)
    }

    /// Commits a staged row, runs the finish hooks (the report), ends every backend's run with
    /// `status`, waiting at most `EZPZ_FINISH_TIMEOUT` (default 30 s) in all, and reports
    /// dropped data. Idempotent: later calls return the first call's summary.
    ///
    /// # Errors
    /// Each backend that failed to finish or did not answer in time; the summary is still
    /// kept for later calls.
    pub fn finish_with(&self, status: RunStatus) -> Result<Summary> {
        if let Some(summary) = &self.state().finished {
            return Ok(summary.clone());
        }
        self.commit();
        if let Some(rounds) = &self.inner.parts.rounds {
            // Returns once every rank has finished and every row reached the backends (a
            // failed run does not wait for the other ranks).
            rounds.finish(status != RunStatus::Finished);
        }
        if self.is_enabled() {
            for hook in &self.inner.parts.finish_hooks {
                hook(self);
            }
        }
        let mut state = self.state();
        if let Some(summary) = &state.finished {
            return Ok(summary.clone());
        }
        if let Some(nudger) = &self.inner.parts.nudger {
            nudger.stop();
        }
        state.staging.hand_off(&self.inner.parts.workers);
        let result = self.control("finish", |reply| Msg::Finish(status, reply));
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut backends = Vec::new();
        for w in self.inner.parts.workers.iter() {
            w.join(deadline);
            let dropped = w.stats.dropped.load(Ordering::Relaxed);
            if dropped > 0 {
                crate::warn!(
                    "ezpz: backend `{}` dropped {dropped} item(s) (rows, tables, images, …) \
                     during the run",
                    w.name
                );
            }
            backends.push(BackendSummary {
                name: w.name.clone(),
                records: w.stats.records.load(Ordering::Relaxed),
                errors: w.stats.errors.load(Ordering::Relaxed),
                dropped,
                run_info: w.run_info(),
            });
        }
        let summary = Summary {
            outdir: self.inner.parts.outdir.clone(),
            backends,
            steps: state.steps,
        };
        state.finished = Some(summary.clone());
        result.map(|()| summary)
    }

    /// Whether [`finish`](Tracker::finish) has run.
    pub fn is_finished(&self) -> bool {
        self.state().finished.is_some()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let finished = self
            .state
            .lock()
            .map(|s| s.finished.is_some())
            .unwrap_or(true);
        if finished || (self.parts.workers.is_empty() && self.parts.rounds.is_none()) {
            return;
        }
        let status = if std::thread::panicking() {
            RunStatus::Failed
        } else {
            RunStatus::Finished
        };
        // Re-wrap the parts in a temporary tracker to reuse finish (hooks included, so a
        // program that forgot `finish` still gets its report).
        let parts = TrackerParts {
            workers: std::mem::take(&mut self.parts.workers),
            rank: self.parts.rank.clone(),
            project: std::mem::take(&mut self.parts.project),
            run_name: std::mem::take(&mut self.parts.run_name),
            outdir: self.parts.outdir.take(),
            aggregator: self.parts.aggregator.take(),
            rounds: self.parts.rounds.take(),
            recycled: self.parts.recycled.clone(),
            nudger: self.parts.nudger.take(),
            finish_timeout: self.parts.finish_timeout,
            finish_hooks: std::mem::take(&mut self.parts.finish_hooks),
            start_time: self.parts.start_time,
        };
        let pending = self
            .state
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let tracker = Tracker::from_parts(parts);
        *tracker.state() = pending;
        if let Err(e) = tracker.finish_with(status) {
            crate::warn!("ezpz: finishing the run on drop: {e}");
        }
    }
}
