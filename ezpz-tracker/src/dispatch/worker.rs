//! One background worker per backend: a named thread draining its queue in batches.
//!
//! The caller's side ([`WorkerHandle::offer`]) never blocks: a message is queued at once, or
//! dropped and counted when the backend cannot take it (its queue holds twice its capacity,
//! or it is over capacity and has written nothing for [`STALLED_AFTER`]). Over capacity while
//! the backend is still writing, the message is queued and the caller is told, so that it can
//! slow down briefly *after* releasing its locks (see `dispatch::Dispatch::throttle`).
//! Control messages (flush, finish) travel in the same queue, so a flush covers everything
//! logged before it; nobody waits for their answers longer than their deadline.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};

use super::msg::{Msg, Recycle, Returned, BATCH_ROWS};
use crate::backend::{Backend, RunInfo, RunStatus};
use crate::{Error, Result};

/// How often pending data is flushed while the worker is busy or idle.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A backend over capacity that wrote nothing for this long is stalled: what it cannot take
/// is dropped at once, and nobody waits for it.
pub(crate) const STALLED_AFTER: Duration = Duration::from_millis(100);
/// Pause after emptying the queue, so records arrive in batches (see `Worker::run`).
const BATCH_PAUSE: Duration = Duration::from_millis(1);
/// Most messages handled between two checks of the flush clock.
const MAX_BATCH: usize = 4096;
/// Distinct warnings per backend before the rest are only counted.
const MAX_WARNINGS: usize = 8;

/// Counters shared between the caller's side and the worker.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub records: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    /// Panics caught in the backend (it is not called again after the first).
    pub panics: AtomicU64,
    /// Rows (and other data messages) queued and not yet handled.
    queued: AtomicUsize,
    /// Microseconds since the handle's epoch when the worker last finished a message, or got
    /// work while idle.
    progress: AtomicU64,
    drop_warned: AtomicBool,
    pub run_info: Mutex<Option<RunInfo>>,
}

/// What became of an offered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    /// Queued, but the backend is over capacity: the caller may slow down (unlocked).
    Pressed,
    Dropped,
}

/// The caller's side of a worker.
pub(crate) struct WorkerHandle {
    pub name: String,
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pub stats: Arc<Stats>,
    /// Rows the queue holds before the backend counts as behind.
    capacity: usize,
    epoch: Instant,
}

impl WorkerHandle {
    /// Starts `backend` on a thread named `ezpz-<name>`, its queue holding `capacity` rows.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn(backend: Box<dyn Backend>, capacity: usize, recycle: Recycle) -> Result<Self> {
        let name = backend.name().to_string();
        let (tx, rx) = unbounded();
        let stats = Arc::new(Stats::default());
        let epoch = Instant::now();
        let mut worker = Worker {
            backend,
            rx,
            recycle,
            stats: stats.clone(),
            warned: HashSet::new(),
            suppressed: 0,
            dirty: false,
            dead: None,
            epoch,
        };
        worker.publish_run_info();
        let thread = std::thread::Builder::new()
            .name(format!("ezpz-{name}"))
            .spawn(move || worker.run())
            .map_err(|e| Error::backend(&name, format!("cannot start worker thread: {e}")))?;
        Ok(WorkerHandle {
            name,
            tx,
            thread: Mutex::new(Some(thread)),
            stats,
            capacity: capacity.max(1),
            epoch,
        })
    }

    /// Queues a data message without ever waiting (see the module docs).
    pub fn offer(&self, msg: Msg) -> Offer {
        let weight = msg.weight();
        let queued = self.stats.queued.load(Ordering::Relaxed);
        let over = queued > 0 && queued + weight > self.capacity;
        if over && (queued + weight > self.hard_limit() || self.is_stalled()) {
            self.dropped(
                &msg,
                "it cannot keep up: its queue is full and it is not writing",
            );
            return Offer::Dropped;
        }
        // Counted before the worker can see it, so its decrement never comes first.
        if self.stats.queued.fetch_add(weight, Ordering::Relaxed) == 0 {
            // An idle worker is not a stalled one: its stall clock starts with this work.
            self.stats
                .progress
                .store(self.now_micros(), Ordering::Relaxed);
        }
        if let Err(e) = self.tx.send(msg) {
            self.stats.queued.fetch_sub(weight, Ordering::Relaxed);
            self.dropped(&e.0, "its worker has stopped");
            return Offer::Dropped;
        }
        if over {
            Offer::Pressed
        } else {
            Offer::Queued
        }
    }

    /// Queues a data message from a thread that may wait (the aggregation thread): while the
    /// backend is over its hard limit but still writing, waits for room; a stalled backend
    /// loses it as with [`offer`](Self::offer).
    pub fn offer_patiently(&self, msg: Msg) -> Offer {
        let weight = msg.weight();
        loop {
            let queued = self.stats.queued.load(Ordering::Relaxed);
            if queued == 0 || queued + weight <= self.hard_limit() || self.is_stalled() {
                return self.offer(msg);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// What the queue may hold while the backend is still writing: twice its capacity, and
    /// room for one more full batch.
    fn hard_limit(&self) -> usize {
        2 * self.capacity + BATCH_ROWS
    }

    /// Whether the backend is over capacity and has written nothing for [`STALLED_AFTER`].
    fn is_stalled(&self) -> bool {
        let last = self.stats.progress.load(Ordering::Relaxed);
        self.now_micros().saturating_sub(last) > STALLED_AFTER.as_micros() as u64
    }

    fn now_micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Whether a caller slowing down for this backend should keep waiting: it is over
    /// capacity and still writing.
    pub fn is_behind(&self) -> bool {
        self.stats.queued.load(Ordering::Relaxed) > self.capacity && !self.is_stalled()
    }

    /// Counts what `msg` carried (each row of a batch) as dropped; warns once.
    fn dropped(&self, msg: &Msg, why: &str) {
        self.stats
            .dropped
            .fetch_add(msg.weight().max(1) as u64, Ordering::Relaxed);
        if !self.stats.drop_warned.swap(true, Ordering::Relaxed) {
            crate::warn!(
                "ezpz: dropping data for backend `{}`: {why}; the other backends get every row, \
                 and the count is in the run's summary",
                self.name
            );
        }
    }

    /// Sends a control message (flush, finish); the answer arrives on the returned channel.
    ///
    /// # Errors
    /// The worker has stopped.
    pub fn request(
        &self,
        make: impl FnOnce(Sender<Result<()>>) -> Msg,
    ) -> Result<Receiver<Result<()>>> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(make(reply_tx))
            .map_err(|_| Error::backend(&self.name, "its worker has stopped"))?;
        Ok(reply_rx)
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
        match reply.recv_deadline(deadline) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(Error::Timeout {
                backend: self.name.clone(),
                operation,
                seconds: cap.as_secs_f64(),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(Error::backend(
                &self.name,
                "its worker stopped before answering",
            )),
        }
    }

    /// Waits for the worker thread to end (after a finish) until `deadline`; a thread still
    /// busy then is left to end on its own.
    pub fn join(&self, deadline: Instant) {
        let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
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
    /// Set after the backend panicked (what it said): it is not called again.
    dead: Option<String>,
    epoch: Instant,
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
        let weight = msg.weight();
        let result = match msg {
            Msg::Log(r) => {
                let res = self.call("log", |b| b.log(&r));
                if res.is_ok() {
                    self.stats.records.fetch_add(1, Ordering::Relaxed);
                }
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
                let _ = self.recycle.send(Returned::Batch(batch));
                result
            }
            Msg::Config(c) => self.call("log_config", |b| b.log_config(&c)),
            Msg::Table(t) => self.call("log_table", |b| b.log_table(&t)),
            Msg::Image(i) => self.call("log_image", |b| b.log_image(&i)),
            Msg::Artifacts(a) => self.call("log_artifacts", |b| b.log_artifacts(&a)),
            Msg::Histogram(h) => self.call("log_histogram", |b| b.log_histogram(&h)),
            Msg::Define(d) => self.call("define_metric", |b| b.define_metric(&d)),
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
        self.stats.queued.fetch_sub(weight, Ordering::Relaxed);
        self.stats
            .progress
            .store(self.epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
        // Run identity changes rarely (a remote run gets created); refreshing it on the first
        // success and at every flush keeps `run_info()` off the per-record path.
        if !self.dirty && result.is_ok() {
            self.publish_run_info();
        }
        self.dirty = true;
        false
    }

    fn publish_run_info(&mut self) {
        if self.dead.is_some() {
            return;
        }
        let Ok(info) = self.call("run_info", |b| Ok(b.run_info())) else {
            return;
        };
        let mut slot = self
            .stats
            .run_info
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *slot != info {
            *slot = info;
        }
    }

    /// Calls the backend, turning errors and panics into one warning per distinct cause; a
    /// panic disables the backend (counted in its summary).
    fn call<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut dyn Backend) -> Result<T>,
    ) -> Result<T> {
        if let Some(panic) = &self.dead {
            return Err(Error::backend(
                self.backend.name(),
                format!("disabled since it {panic}"),
            ));
        }
        let backend = &mut *self.backend;
        let result = match catch_unwind(AssertUnwindSafe(|| f(backend))) {
            Ok(r) => r,
            Err(panic) => {
                let what = format!("panicked in {op}: {}", crate::error::panic_message(&*panic));
                self.stats.panics.fetch_add(1, Ordering::Relaxed);
                let err = Error::backend(self.backend.name(), format!("{what}; backend disabled"));
                self.dead = Some(what);
                Err(err)
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
