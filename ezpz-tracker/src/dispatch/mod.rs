//! The road from the logging thread to the backends: workers, batching, the hand-off thread,
//! the choice between the direct route and the cross-rank aggregation route, flush and finish
//! fan-out under one deadline, and the recycling of rows.
//!
//! Reading order: [`Tracker`](crate::Tracker) builds a row and calls [`Dispatch::commit`];
//! the direct route batches it (`staging`) and offers the batch to each backend's queue
//! (`worker`); the worker calls the [`Backend`](crate::Backend), which writes the bytes. With
//! more than one rank, rows go through the aggregation thread (`aggregate::rounds`) first.
//!
//! Nothing here waits while a lock is held, and no logging call waits for a backend longer
//! than [`MAX_CALLER_WAIT`]: a backend that is over capacity but still writing slows the
//! caller by at most that much, after the caller released its locks
//! ([`Dispatch::throttle`]); one that stopped writing loses what it cannot take (counted).

mod msg;
mod staging;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;

use crate::aggregate::rounds::{Deliver, Forward, Rounds, RoundsEnd};
use crate::aggregate::wire::aggregatable;
use crate::aggregate::Aggregator;
use crate::backend::{Backend, Record, RunInfo, RunStatus};
use crate::pending::PendingRow;
use crate::summary::BackendSummary;
use crate::{Error, Result};
pub(crate) use msg::Msg;
use msg::Returned;
use staging::{Nudger, Staging};
use worker::{Offer, WorkerHandle};

/// The longest any logging call waits for backends that are behind (and only outside locks).
pub const MAX_CALLER_WAIT: Duration = Duration::from_millis(10);

/// The aggregation thread's queue holds this many backend queues' worth of rows (65 536 by
/// default): 100 ms rounds leave it nearly empty unless a rank hangs.
const AGGREGATION_QUEUES: usize = 4;

/// Called on the aggregation thread (rank 0) with each row as the backends receive it (the
/// tracker's `last_record`).
pub(crate) type OnRelease = Box<dyn Fn(&Arc<Record>) + Send + Sync>;

/// See the module docs.
pub(crate) struct Dispatch {
    workers: Arc<Vec<WorkerHandle>>,
    /// Committed rows on their way to the workers (direct route).
    staging: Arc<Mutex<Staging>>,
    nudger: Option<Nudger>,
    rounds: Option<Rounds>,
    max_wait: Duration,
}

/// A committed row as the tracker keeps it.
pub(crate) struct Committed {
    /// The row as the backends get it (direct route, or a row the aggregation route could
    /// not take; otherwise the aggregation thread reports it through `on_release`).
    pub record: Option<Arc<Record>>,
    /// A backend is behind: call [`Dispatch::throttle`] once no lock is held.
    pub pressed: bool,
}

impl Dispatch {
    /// Starts one worker per backend (queues of `capacity` rows), and the aggregation thread
    /// when `aggregator` spans more than one rank, or else the hand-off thread.
    ///
    /// # Errors
    /// A worker thread could not start (with `lossy`, it is warned about and skipped).
    pub(crate) fn start(
        backends: Vec<Box<dyn Backend>>,
        capacity: usize,
        max_wait: Duration,
        aggregator: Option<Box<dyn Aggregator>>,
        on_release: OnRelease,
        lossy: bool,
    ) -> Result<Dispatch> {
        let (recycle, recycled) = crossbeam_channel::unbounded();
        let mut workers = Vec::new();
        for backend in backends {
            match WorkerHandle::spawn(backend, capacity, recycle.clone()) {
                Ok(w) => workers.push(w),
                Err(e) if lossy => crate::warn!("ezpz: {e}"),
                Err(e) => return Err(e),
            }
        }
        Ok(Dispatch::assemble(
            workers,
            recycled,
            aggregator,
            on_release,
            max_wait,
            capacity.saturating_mul(AGGREGATION_QUEUES),
        ))
    }

    /// A dispatch that delivers nothing (a disabled tracker).
    pub(crate) fn disabled() -> Dispatch {
        Dispatch::assemble(
            Vec::new(),
            crossbeam_channel::never(),
            None,
            Box::new(|_: &Arc<Record>| {}),
            Duration::ZERO,
            0,
        )
    }

    fn assemble(
        workers: Vec<WorkerHandle>,
        recycled: Receiver<Returned>,
        aggregator: Option<Box<dyn Aggregator>>,
        on_release: OnRelease,
        max_wait: Duration,
        aggregation_capacity: usize,
    ) -> Dispatch {
        let workers = Arc::new(workers);
        let staging = Arc::new(Mutex::new(Staging::new(recycled)));
        let mut rounds = None;
        if let Some(aggregator) = aggregator.filter(|a| a.world_size() > 1) {
            let (targets, release) = (workers.clone(), on_release);
            let deliver: Deliver = Box::new(move |record: Arc<Record>| {
                release(&record);
                // Not the training thread: a burst (rows released at finish) waits for
                // backends that are still writing rather than losing rows.
                for w in targets.iter() {
                    w.offer_patiently(Msg::Log(record.clone()));
                }
            });
            match Rounds::start(aggregator, deliver, aggregation_capacity) {
                Ok(r) => rounds = Some(r),
                Err(e) => crate::warn!(
                    "ezpz: the aggregation thread could not start ({e}); no cross-rank \
                     aggregates"
                ),
            }
        }
        let mut nudger = None;
        if !workers.is_empty() {
            let (staging, workers) = (staging.clone(), workers.clone());
            let tick = move || {
                let mut staging = lock(&staging);
                if staging.is_stale(now()) {
                    staging.hand_off(&workers);
                }
            };
            match Nudger::start(tick) {
                Ok(n) => nudger = Some(n),
                // Rows then reach the workers at the next log, flush or finish.
                Err(e) => crate::warn!("ezpz: the hand-over thread could not start ({e})"),
            }
        }
        Dispatch {
            workers,
            staging,
            nudger,
            rounds,
            max_wait: max_wait.min(MAX_CALLER_WAIT),
        }
    }

    /// Whether any backend is attached (false for a disabled tracker and on ranks ≠ 0).
    pub(crate) fn has_backends(&self) -> bool {
        !self.workers.is_empty()
    }

    /// Whether committed rows go anywhere (backends, or other ranks' aggregates).
    pub(crate) fn delivers(&self) -> bool {
        self.has_backends() || self.rounds().is_some()
    }

    /// The aggregation thread, while rows still go through it.
    fn rounds(&self) -> Option<&Rounds> {
        self.rounds.as_ref().filter(|r| r.is_open())
    }

    /// Attached backends' names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|w| w.name.as_str())
    }

    /// The run identity of the last attached backend called `name`.
    pub(crate) fn run_info(&self, name: &str) -> Option<Option<RunInfo>> {
        self.workers
            .iter()
            .rev()
            .find(|w| w.name == name)
            .map(WorkerHandle::run_info)
    }

    /// Commits the pending row at `step`. Call it under the tracker's lock, so that every
    /// backend sees rows in commit order; it never waits.
    pub(crate) fn commit(&self, step: u64, rank: usize, pending: &mut PendingRow) -> Committed {
        let timestamp = now();
        if let Some(rounds) = self.rounds() {
            return self.commit_aggregated(rounds, step, timestamp, rank, pending);
        }
        let mut staging = lock(&self.staging);
        let mut record = staging.row();
        if Arc::get_mut(&mut record).is_none() {
            record = Arc::new(Record::default());
        }
        let row = Arc::get_mut(&mut record).expect("a fresh or returned row is unique");
        row.step = step;
        row.timestamp = timestamp;
        row.rank = rank;
        // The recycled row's value buffer becomes the next row's (see `pending`).
        let (keys, values) = row.parts_mut();
        pending.swap_into(keys, values);
        let pressed = staging.push(record.clone(), &self.workers);
        Committed {
            record: Some(record),
            pressed,
        }
    }

    /// The aggregation route: the row's numbers go to the aggregation thread, and on rank 0
    /// the row too, which the thread hands to the backends once aggregated.
    fn commit_aggregated(
        &self,
        rounds: &Rounds,
        step: u64,
        timestamp: f64,
        rank: usize,
        pending: &mut PendingRow,
    ) -> Committed {
        let (keys, values) = pending.take();
        let record = Record::from_parts(step, timestamp, rank, keys, values);
        let numeric: Vec<(Arc<str>, f64)> = record.numbers().map(|(k, v)| (k.clone(), v)).collect();
        let pairs = aggregatable(numeric);
        let record = self.has_backends().then_some(record);
        let mut committed = Committed {
            record: None,
            pressed: false,
        };
        if pairs.is_empty() && record.is_none() {
            return committed;
        }
        let Err(back) = rounds.row(step, pairs, record) else {
            return committed;
        };
        // Full (the thread waits for a rank that hangs) or gone: never wait, never lose
        // rank 0's row.
        crate::warn!(
            "ezpz: the aggregation thread cannot take more rows (a rank hangs?); rows go \
             without cross-rank aggregates until it catches up"
        );
        if let Some(record) = back {
            let record = Arc::new(record);
            committed.pressed = self.offer_all(|| Msg::Log(record.clone()));
            // The caller keeps it as its last row (`on_release` would take its lock).
            committed.record = Some(record);
        }
        committed
    }

    /// Sends a data message (config, table, image, …) to every backend, behind the rows
    /// committed before it; never waits. True when a backend is behind.
    pub(crate) fn send(&self, make: impl Fn() -> Msg + Send + 'static) -> bool {
        if self.workers.is_empty() {
            return false;
        }
        let pressed = lock(&self.staging).hand_off(&self.workers);
        if let Some(rounds) = self.rounds() {
            let workers = self.workers.clone();
            let forward: Forward = Box::new(move || {
                for w in workers.iter() {
                    w.offer(make());
                }
            });
            // Behind the rows still waiting for other ranks; when the route is full, never
            // waiting is the rule: it goes now.
            if let Err(forward) = rounds.forward(forward) {
                forward();
            }
            return pressed;
        }
        pressed | self.offer_all(make)
    }

    fn offer_all(&self, make: impl Fn() -> Msg) -> bool {
        let mut pressed = false;
        for w in self.workers.iter() {
            pressed |= w.offer(make()) == Offer::Pressed;
        }
        pressed
    }

    /// Slows the caller down while a backend is over capacity and still writing, for at most
    /// the caller wait (≤ [`MAX_CALLER_WAIT`]). Call it holding no lock.
    pub(crate) fn throttle(&self) {
        let until = Instant::now() + self.max_wait;
        while self.workers.iter().any(WorkerHandle::is_behind) && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Hands every staged row to the workers.
    fn hand_off(&self) {
        lock(&self.staging).hand_off(&self.workers);
    }

    /// Makes everything sent so far durable in every backend, by `deadline` (at most half of
    /// the time waits for the aggregation, so that the backends always get their share).
    ///
    /// # Errors
    /// Each backend that failed or did not answer in time; rows lost by a dead aggregation
    /// thread.
    pub(crate) fn flush(&self, deadline: Instant, cap: Duration) -> Result<()> {
        self.hand_off();
        let mut errors = Vec::new();
        if let Some(rounds) = &self.rounds {
            if rounds.panicked() {
                errors.push(aggregation_panic(rounds.lost()));
            } else if rounds.is_open() && !rounds.drain(halfway(deadline)) {
                crate::warn!(
                    "ezpz: flush: some rows still wait for other ranks' rows to be aggregated; \
                     they are written when those arrive"
                );
            }
        }
        errors.extend(self.control("flush", Msg::Flush, deadline, cap));
        Error::collect(errors)
    }

    /// Asks every worker for `op` and collects the answers until `deadline`.
    fn control(
        &self,
        op: &'static str,
        make: impl Fn(crossbeam_channel::Sender<Result<()>>) -> Msg,
        deadline: Instant,
        cap: Duration,
    ) -> Vec<Error> {
        let pending: Vec<_> = self.workers.iter().map(|w| w.request(&make)).collect();
        self.workers
            .iter()
            .zip(pending)
            .filter_map(|(w, p)| p.and_then(|rx| w.await_reply(&rx, op, deadline, cap)).err())
            .collect()
    }

    /// Ends the aggregation rounds (waiting for the other ranks until at most `deadline`).
    pub(crate) fn finish_rounds(&self, abort: bool, deadline: Instant) -> Vec<Error> {
        let Some(rounds) = &self.rounds else {
            return Vec::new();
        };
        let RoundsEnd {
            missing,
            panicked,
            unfinished,
            lost,
        } = rounds.finish(abort, deadline);
        let mut errors = Vec::new();
        if !missing.is_empty() && !abort {
            let ranks: Vec<String> = missing.iter().map(usize::to_string).collect();
            crate::warn!(
                "ezpz: rank(s) {} had not finished by the finish deadline; finishing without \
                 them (their last rows are missing from the aggregates)",
                ranks.join(", ")
            );
        }
        if panicked {
            errors.push(aggregation_panic(lost));
        } else if unfinished {
            errors.push(Error::backend(
                "aggregation",
                format!(
                    "the cross-rank aggregation was still handing rows over at the finish \
                     deadline; about {lost} row(s) may not have reached the backends (raise \
                     EZPZ_FINISH_TIMEOUT)"
                ),
            ));
        }
        errors
    }

    /// Ends every backend's run with `status` by `deadline`, and says what each one did.
    pub(crate) fn finish(
        &self,
        status: RunStatus,
        deadline: Instant,
        cap: Duration,
    ) -> (Vec<Error>, Vec<BackendSummary>) {
        if let Some(nudger) = &self.nudger {
            nudger.stop();
        }
        self.hand_off();
        let errors = self.control("finish", |reply| Msg::Finish(status, reply), deadline, cap);
        let summaries = self
            .workers
            .iter()
            .map(|w| {
                w.join(deadline);
                let dropped = w.stats.dropped.load(Ordering::Relaxed);
                if dropped > 0 {
                    crate::warn!(
                        "ezpz: backend `{}` dropped {dropped} item(s) (rows, tables, images, …) \
                         during the run",
                        w.name
                    );
                }
                BackendSummary {
                    name: w.name.clone(),
                    records: w.stats.records.load(Ordering::Relaxed),
                    errors: w.stats.errors.load(Ordering::Relaxed),
                    dropped,
                    panics: w.stats.panics.load(Ordering::Relaxed),
                    run_info: w.run_info(),
                }
            })
            .collect();
        (errors, summaries)
    }
}

/// Halfway from now to `deadline`.
fn halfway(deadline: Instant) -> Instant {
    let now = Instant::now();
    now + deadline.saturating_duration_since(now) / 2
}

fn aggregation_panic(lost: u64) -> Error {
    Error::backend(
        "aggregation",
        format!(
            "the cross-rank aggregation thread panicked; {lost} row(s) it held were lost, \
             later rows went to the backends without aggregates"
        ),
    )
}

/// Seconds since the Unix epoch (a row's timestamp).
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
