//! The `ezpz-aggregate` thread: collects this rank's committed rows, meets the other ranks'
//! threads once per round, and on rank 0 hands rows to the backends, aggregates appended, in
//! the order they were logged (see the module docs of `aggregate`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::matcher::Matcher;
use super::wire::{decode_rows, encode_row};
use super::Aggregator;
use crate::backend::Record;
use crate::value::Metric;
use crate::worker::{Msg, WorkerHandle};

/// Time between two rounds.
pub(crate) const ROUND: Duration = Duration::from_millis(100);
/// How long rank 0 waits for the other ranks' rows matching one of its rows before it
/// aggregates over the ranks it has (they logged different keys, or their own steps).
pub(crate) const UNMATCHED_AFTER: Duration = Duration::from_secs(10);

/// Hands a message to every backend (rank 0), in turn with the rows before it.
pub(crate) type Forward = Box<dyn FnOnce(&[WorkerHandle]) + Send>;
/// Called on rank 0 with each row as the backends receive it.
pub(crate) type OnRelease = Box<dyn Fn(&Arc<Record>) + Send>;

enum Cmd {
    /// A committed row: its numeric metrics to aggregate (may be empty) and, on rank 0, the
    /// row itself.
    Row {
        step: u64,
        pairs: Vec<(Arc<str>, f64)>,
        record: Option<Record>,
    },
    Forward(Forward),
    /// Answer once everything sent before has reached the backends.
    Drain(Sender<()>),
    /// This rank logs nothing more.
    Finish,
}

/// The caller's side of the aggregation thread.
pub(crate) struct Rounds {
    tx: Sender<Cmd>,
    open: AtomicBool,
    abort: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Rounds {
    /// Starts the thread. `workers` are rank 0's backends (empty elsewhere).
    pub(crate) fn start(
        aggregator: Box<dyn Aggregator>,
        workers: Arc<Vec<WorkerHandle>>,
        on_release: OnRelease,
    ) -> std::io::Result<Rounds> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let abort = Arc::new(AtomicBool::new(false));
        let aborted = abort.clone();
        let world = aggregator.world_size();
        let root = aggregator.rank() == 0;
        let thread = std::thread::Builder::new()
            .name("ezpz-aggregate".into())
            .spawn(move || {
                Thread {
                    aggregator,
                    workers,
                    on_release,
                    root,
                    matcher: Matcher::new(world, UNMATCHED_AFTER),
                    queue: VecDeque::new(),
                    next_id: 0,
                    released: 0,
                    drains: Vec::new(),
                    outbox: Vec::new(),
                    finishing: false,
                    aborted,
                }
                .run(rx)
            })?;
        Ok(Rounds {
            tx,
            open: AtomicBool::new(true),
            abort,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether rows still go through the rounds (until [`finish`](Rounds::finish)).
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Queues a committed row.
    pub(crate) fn row(&self, step: u64, pairs: Vec<(Arc<str>, f64)>, record: Option<Record>) {
        let _ = self.tx.send(Cmd::Row {
            step,
            pairs,
            record,
        });
    }

    /// Queues a message for the backends behind the rows logged before it.
    pub(crate) fn forward(&self, forward: Forward) {
        let _ = self.tx.send(Cmd::Forward(forward));
    }

    /// Waits until everything queued so far has reached the backends, at most until
    /// `deadline`. False when the time ran out (rows still wait for other ranks).
    pub(crate) fn drain(&self, deadline: Instant) -> bool {
        let (reply, done) = crossbeam_channel::bounded(1);
        if self.tx.send(Cmd::Drain(reply)).is_err() {
            return true;
        }
        done.recv_deadline(deadline).is_ok()
    }

    /// Ends this rank's part: returns once every rank has finished and rank 0 has handed
    /// every row to the backends. Later rows go straight to the backends, unaggregated.
    ///
    /// With `abort` (this run failed), it does not wait for the other ranks: after one more
    /// round, rank 0 hands its rows over with the aggregates it can compute. The other ranks'
    /// next round then waits for this rank forever: MPI launchers end the whole job when a
    /// rank exits with an error.
    pub(crate) fn finish(&self, abort: bool) {
        self.open.store(false, Ordering::Release);
        if abort {
            self.abort.store(true, Ordering::Release);
        }
        let _ = self.tx.send(Cmd::Finish);
        // Joined under the lock: a concurrent `finish` returns only once the thread is done.
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(thread) = thread.take() {
            if thread.join().is_err() {
                crate::warn!("ezpz: the aggregation thread panicked; aggregates were lost");
            }
        }
    }
}

enum Pending {
    Row {
        record: Option<Record>,
        aggregates: Option<Vec<Metric>>,
        id: u64,
    },
    Forward(Forward),
}

struct Thread {
    aggregator: Box<dyn Aggregator>,
    workers: Arc<Vec<WorkerHandle>>,
    on_release: OnRelease,
    root: bool,
    matcher: Matcher,
    /// Rank 0: what the backends get next, in the order it was logged.
    queue: VecDeque<Pending>,
    /// Ids given to queued items (rows and forwards), in order.
    next_id: u64,
    /// Items handed to the backends so far.
    released: u64,
    /// Drain requests: answered once `released` reaches the id.
    drains: Vec<(u64, Sender<()>)>,
    /// Other ranks: the rows for rank 0 in the next round.
    outbox: Vec<u8>,
    finishing: bool,
    /// This rank failed: leave after the next round.
    aborted: Arc<AtomicBool>,
}

impl Thread {
    fn run(mut self, rx: Receiver<Cmd>) {
        let mut next_round = Instant::now() + ROUND;
        loop {
            if self.finishing {
                // Done here, waiting for the other ranks: keep the rounds' pace.
                std::thread::sleep(next_round.saturating_duration_since(Instant::now()));
            }
            while !self.finishing {
                match rx.recv_deadline(next_round) {
                    Ok(cmd) => self.handle(cmd),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => self.finishing = true,
                }
            }
            // After `Finish` nothing new is sent, but commands sent before it may be queued.
            while let Ok(cmd) = rx.try_recv() {
                self.handle(cmd);
            }
            next_round = Instant::now() + ROUND;
            let exchange = self.aggregator.exchange(&self.outbox, self.finishing);
            self.outbox.clear();
            let now = Instant::now();
            for (rank, payload) in exchange.payloads.iter().enumerate().skip(1) {
                let decoded = decode_rows(payload, &mut |k| self.matcher.intern(k));
                match decoded {
                    Some(rows) => rows
                        .into_iter()
                        .for_each(|row| self.matcher.arrived(rank, row, now)),
                    None => crate::warn!(
                        "ezpz: rank {rank}'s rows for aggregation could not be decoded; skipped"
                    ),
                }
            }
            let last = exchange.all_done || self.aborted.load(Ordering::Acquire);
            if self.root && (self.matcher.has_pending() || last) {
                for (id, aggregates) in self.matcher.resolve(now, last) {
                    self.resolved(id, aggregates);
                }
                self.release();
            }
            if last {
                break;
            }
        }
        // Everything is resolved once every rank is done; answer whoever still waits.
        self.release();
        for (_, reply) in self.drains.drain(..) {
            let _ = reply.send(());
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Row {
                step,
                pairs,
                record,
            } => {
                if !self.root {
                    if !pairs.is_empty() {
                        encode_row(&mut self.outbox, step, &pairs);
                    }
                    return;
                }
                let id = self.next_id;
                self.next_id += 1;
                let aggregates = if pairs.is_empty() {
                    Some(Vec::new())
                } else {
                    self.matcher.own(id, step, pairs, Instant::now());
                    None
                };
                self.queue.push_back(Pending::Row {
                    record,
                    aggregates,
                    id,
                });
                self.release();
            }
            Cmd::Forward(forward) => {
                if !self.root {
                    return;
                }
                self.next_id += 1;
                self.queue.push_back(Pending::Forward(forward));
                self.release();
            }
            Cmd::Drain(reply) => {
                self.drains.push((self.next_id, reply));
                self.release();
            }
            Cmd::Finish => self.finishing = true,
        }
    }

    fn resolved(&mut self, id: u64, aggregates: Vec<Metric>) {
        // Every queued item has the next id, and `released` items have left from the front:
        // the item with `id` is at `id - released`.
        let slot = id
            .checked_sub(self.released)
            .and_then(|i| self.queue.get_mut(i as usize));
        if let Some(Pending::Row {
            id: found,
            aggregates: slot,
            ..
        }) = slot
        {
            debug_assert_eq!(*found, id);
            *slot = Some(aggregates);
        }
    }

    /// Hands the front of the queue to the backends while it is ready.
    fn release(&mut self) {
        while let Some(front) = self.queue.front() {
            if matches!(
                front,
                Pending::Row {
                    aggregates: None,
                    ..
                }
            ) {
                break;
            }
            match self.queue.pop_front().expect("front exists") {
                Pending::Row {
                    record, aggregates, ..
                } => {
                    if let Some(mut record) = record {
                        record.metrics.extend(aggregates.unwrap_or_default());
                        let record = Arc::new(record);
                        (self.on_release)(&record);
                        for w in self.workers.iter() {
                            w.send(Msg::Log(record.clone()));
                        }
                    }
                }
                Pending::Forward(forward) => forward(&self.workers),
            }
            self.released += 1;
        }
        let released = self.released;
        self.drains.retain(|(upto, reply)| {
            if released >= *upto {
                let _ = reply.send(());
                false
            } else {
                true
            }
        });
    }
}
