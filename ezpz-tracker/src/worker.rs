//! One background worker per backend: a named thread draining a bounded queue in batches.
//!
//! The caller only enqueues. A full queue waits a bounded time (backpressure), then drops and
//! counts; drops are warned once and reported at finish. Control messages (flush, finish) travel
//! in the same queue, so a flush covers everything logged before it.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError,
};

use crate::backend::{
    Artifacts, Backend, HistogramRecord, ImageRecord, Record, RunInfo, RunStatus, Table,
};
use crate::staging::{Batch, Recycle, Returned};
use crate::{Error, Result};

/// How often pending data is flushed while the worker is busy or idle.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Pause after emptying the queue, so records arrive in batches (see `Worker::run`).
const BATCH_PAUSE: Duration = Duration::from_millis(1);
/// Most messages handled between two checks of the flush clock.
const MAX_BATCH: usize = 4096;
/// Distinct warnings per backend before the rest are only counted.
const MAX_WARNINGS: usize = 8;

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
    Flush(Sender<Result<()>>),
    Finish(RunStatus, Sender<Result<()>>),
}

impl Msg {
    /// Rows the message carries (what the queue's capacity counts).
    fn rows(&self) -> usize {
        match self {
            Msg::Log(_) => 1,
            Msg::Logs(batch) => batch.len(),
            _ => 0,
        }
    }
}

/// Counters shared between the caller's side and the worker.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub records: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    /// Rows sent and not yet written (bounded by the queue capacity).
    queued_rows: AtomicUsize,
    drop_warned: AtomicBool,
    pub run_info: Mutex<Option<RunInfo>>,
}

/// The caller's side of a worker.
pub(crate) struct WorkerHandle {
    pub name: String,
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pub stats: Arc<Stats>,
    enqueue_timeout: Duration,
    /// Rows the queue holds before `send` waits.
    row_capacity: usize,
}

impl WorkerHandle {
    /// Starts `backend` on a thread named `ezpz-<name>` with a queue of `capacity` messages.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn(
        backend: Box<dyn Backend>,
        capacity: usize,
        enqueue_timeout: Duration,
        recycle: Recycle,
    ) -> Result<Self> {
        let name = backend.name().to_string();
        let (tx, rx) = bounded(capacity.max(1));
        let stats = Arc::new(Stats::default());
        *stats.run_info.lock().unwrap_or_else(|e| e.into_inner()) = backend.run_info();
        let worker = Worker {
            backend,
            rx,
            recycle,
            stats: stats.clone(),
            warned: HashSet::new(),
            suppressed: 0,
            dirty: false,
            dead: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("ezpz-{name}"))
            .spawn(move || worker.run())
            .map_err(|e| Error::backend(&name, format!("cannot start worker thread: {e}")))?;
        Ok(WorkerHandle {
            name,
            tx,
            thread: Mutex::new(Some(thread)),
            stats,
            enqueue_timeout,
            row_capacity: capacity.max(1),
        })
    }

    /// Enqueues a data message; waits at most the enqueue timeout when the queue is full, then
    /// drops it (counted, warned once).
    pub fn send(&self, msg: Msg) {
        let rows = msg.rows();
        if rows > 0 {
            if !self.wait_for_room(rows) {
                return self.dropped(&msg, &self.full_for());
            }
            // Counted before the worker can see it, so its decrement never comes first.
            self.stats.queued_rows.fetch_add(rows, Ordering::Relaxed);
        }
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(msg)) => msg,
            Err(TrySendError::Disconnected(msg)) => {
                self.unqueue(&msg);
                return self.dropped(&msg, "its worker has stopped");
            }
        };
        match self.tx.send_timeout(msg, self.enqueue_timeout) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(msg)) => {
                self.unqueue(&msg);
                self.dropped(&msg, &self.full_for());
            }
            Err(SendTimeoutError::Disconnected(msg)) => {
                self.unqueue(&msg);
                self.dropped(&msg, "its worker has stopped");
            }
        }
    }

    /// Takes the rows of a message that never reached the worker off the queued count.
    fn unqueue(&self, msg: &Msg) {
        self.stats
            .queued_rows
            .fetch_sub(msg.rows(), Ordering::Relaxed);
    }

    /// Whether `rows` more rows fit the queue, waiting at most the enqueue timeout (a batch
    /// larger than the whole capacity goes when the queue is empty).
    fn wait_for_room(&self, rows: usize) -> bool {
        let fits = || {
            let queued = self.stats.queued_rows.load(Ordering::Relaxed);
            queued == 0 || queued + rows <= self.row_capacity
        };
        if fits() {
            return true;
        }
        let deadline = Instant::now() + self.enqueue_timeout;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(50));
            if fits() {
                return true;
            }
        }
        false
    }

    fn full_for(&self) -> String {
        format!(
            "its queue stayed full for {:.1} s (the backend is slower than logging)",
            self.enqueue_timeout.as_secs_f64()
        )
    }

    /// Counts what `msg` carried (each row of a batch) as dropped, after a failed send
    /// (counted as queued) or a wait for room (not counted); warns once.
    fn dropped(&self, msg: &Msg, why: &str) {
        self.stats
            .dropped
            .fetch_add(msg.rows().max(1) as u64, Ordering::Relaxed);
        if !self.stats.drop_warned.swap(true, Ordering::Relaxed) {
            crate::warn!(
                "ezpz: dropping data for backend `{}`: {why}; the count is reported at finish",
                self.name
            );
        }
    }

    /// Sends a control message (flush, finish); the answer arrives on the returned channel.
    ///
    /// # Errors
    /// The queue stayed full until `deadline`, or the worker has stopped.
    pub fn request(
        &self,
        operation: &'static str,
        make: impl FnOnce(Sender<Result<()>>) -> Msg,
        deadline: Instant,
        cap: Duration,
    ) -> Result<Receiver<Result<()>>> {
        let (reply_tx, reply_rx) = bounded(1);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match self.tx.send_timeout(make(reply_tx), remaining) {
            Ok(()) => Ok(reply_rx),
            Err(SendTimeoutError::Timeout(_)) => Err(self.timeout(operation, cap)),
            Err(SendTimeoutError::Disconnected(_)) => {
                Err(Error::backend(&self.name, "its worker has stopped"))
            }
        }
    }

    /// Waits for the answer to [`request`](Self::request) until `deadline`.
    ///
    /// # Errors
    /// The backend's own error, a timeout, or a worker that stopped.
    pub fn await_reply(
        &self,
        reply: &Receiver<Result<()>>,
        operation: &'static str,
        deadline: Instant,
        cap: Duration,
    ) -> Result<()> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match reply.recv_timeout(remaining) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(self.timeout(operation, cap)),
            Err(RecvTimeoutError::Disconnected) => Err(Error::backend(
                &self.name,
                "its worker stopped before answering",
            )),
        }
    }

    fn timeout(&self, operation: &'static str, cap: Duration) -> Error {
        Error::Timeout {
            backend: self.name.clone(),
            operation,
            seconds: cap.as_secs_f64(),
        }
    }

    /// Waits for the worker thread to end (after a finish) until `deadline`; a thread still
    /// busy then is left to end on its own.
    pub fn join(&self, deadline: Instant) {
        let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }

    /// The backend's latest run identity.
    pub fn run_info(&self) -> Option<RunInfo> {
        self.stats
            .run_info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct Worker {
    backend: Box<dyn Backend>,
    rx: Receiver<Msg>,
    recycle: Recycle,
    stats: Arc<Stats>,
    warned: HashSet<String>,
    suppressed: u64,
    dirty: bool,
    /// Set after the backend panicked: it is not called again.
    dead: bool,
}

impl Worker {
    fn run(mut self) {
        let mut last_flush = Instant::now();
        loop {
            let wait = if self.dirty {
                FLUSH_INTERVAL.saturating_sub(last_flush.elapsed())
            } else {
                FLUSH_INTERVAL
            };
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    if self.handle(msg) {
                        return;
                    }
                    // Drain what is already queued before looking at the clock again.
                    let mut drained = true;
                    for _ in 0..MAX_BATCH {
                        match self.rx.try_recv() {
                            Ok(msg) => {
                                if self.handle(msg) {
                                    return;
                                }
                            }
                            Err(_) => {
                                drained = false;
                                break;
                            }
                        }
                    }
                    if !drained {
                        // Let the next batch gather while not blocked in `recv`: senders then
                        // enqueue without waking this thread (one wake-up per batch instead
                        // of one per record, which dominates the caller's cost otherwise).
                        std::thread::sleep(BATCH_PAUSE);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone without a finish (the tracker finishes on drop, so
                    // this is a process in teardown): end the run as well as we can.
                    let _ = self.call("finish", |b| b.finish(RunStatus::Finished));
                    return;
                }
            }
            if self.dirty && last_flush.elapsed() >= FLUSH_INTERVAL {
                let _ = self.call("flush", |b| b.flush());
                self.publish_run_info();
                self.dirty = false;
                last_flush = Instant::now();
            }
        }
    }

    /// Handles one message; returns true when the worker must stop.
    fn handle(&mut self, msg: Msg) -> bool {
        let result = match msg {
            Msg::Log(r) => {
                let res = self.call("log", |b| b.log(&r));
                if res.is_ok() {
                    self.stats.records.fetch_add(1, Ordering::Relaxed);
                }
                self.stats.queued_rows.fetch_sub(1, Ordering::Relaxed);
                // Freed by the logging thread (see `staging`); dropped here once it is gone.
                let _ = self.recycle.send(Returned::Row(r));
                res
            }
            Msg::Logs(batch) => {
                let mut result = Ok(());
                let mut written = 0;
                for r in batch.iter() {
                    match self.call("log", |b| b.log(r)) {
                        Ok(()) => written += 1,
                        Err(e) => result = Err(e),
                    }
                }
                self.stats.records.fetch_add(written, Ordering::Relaxed);
                self.stats
                    .queued_rows
                    .fetch_sub(batch.len(), Ordering::Relaxed);
                let _ = self.recycle.send(Returned::Batch(batch));
                result
            }
            Msg::Config(c) => self.call("log_config", |b| b.log_config(&c)),
            Msg::Table(t) => self.call("log_table", |b| b.log_table(&t)),
            Msg::Image(i) => self.call("log_image", |b| b.log_image(&i)),
            Msg::Artifacts(a) => self.call("log_artifacts", |b| b.log_artifacts(&a)),
            Msg::Histogram(h) => self.call("log_histogram", |b| b.log_histogram(&h)),
            Msg::Flush(reply) => {
                let res = self.call("flush", |b| b.flush());
                self.publish_run_info();
                self.dirty = false;
                let _ = reply.send(res);
                return false;
            }
            Msg::Finish(status, reply) => {
                let res = self.call("finish", |b| b.finish(status));
                self.publish_run_info();
                if self.suppressed > 0 {
                    crate::warn!(
                        "ezpz: backend `{}` had {} more error(s) not shown",
                        self.backend.name(),
                        self.suppressed
                    );
                }
                let _ = reply.send(res);
                return true;
            }
        };
        // Run identity changes rarely (a remote run gets created); refreshing it on the first
        // success and at every flush keeps `run_info()` off the per-record path.
        if !self.dirty && result.is_ok() {
            self.publish_run_info();
        }
        self.dirty = true;
        false
    }

    fn publish_run_info(&self) {
        if self.dead {
            return;
        }
        let info = self.backend.run_info();
        let mut slot = self
            .stats
            .run_info
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *slot != info {
            *slot = info;
        }
    }

    /// Calls the backend, turning errors and panics into one warning per distinct cause.
    fn call(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut dyn Backend) -> Result<()>,
    ) -> Result<()> {
        if self.dead {
            return Err(Error::backend(
                self.backend.name(),
                "disabled after an earlier panic",
            ));
        }
        let backend = &mut *self.backend;
        let result = match catch_unwind(AssertUnwindSafe(|| f(backend))) {
            Ok(r) => r,
            Err(panic) => {
                self.dead = true;
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(Error::backend(
                    self.backend.name(),
                    format!("panicked in {op}: {what}; backend disabled"),
                ))
            }
        };
        if let Err(e) = &result {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            let text = e.to_string();
            if self.warned.contains(&text) {
                // Already said.
            } else if self.warned.len() >= MAX_WARNINGS {
                self.suppressed += 1;
            } else {
                crate::warn!(
                    "ezpz: backend `{}` {op} failed: {text}",
                    self.backend.name()
                );
                self.warned.insert(text);
            }
        }
        result
    }
}
