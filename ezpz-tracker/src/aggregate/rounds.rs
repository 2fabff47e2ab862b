//! The `ezpz-aggregate` thread: collects this rank's committed rows, meets the other ranks'
//! threads once per round, and on rank 0 hands rows to the backends, aggregates appended, in
//! the order they were logged (see the module docs of `aggregate`).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::matcher::Matcher;
use super::wire::{decode_rows, encode_row};
use super::Aggregator;
use crate::keys::KeyJoiner;
use crate::record::Record;
use crate::value::Metric;

/// Time between two rounds.
pub(crate) const ROUND: Duration = Duration::from_millis(100);
/// How long rank 0 waits for the other ranks' rows matching one of its rows before it
/// aggregates over the ranks it has (they logged different keys, or their own steps).
pub(crate) const UNMATCHED_AFTER: Duration = Duration::from_secs(10);

/// A message for the backends (rank 0), handed over in turn with the rows before it.
pub(crate) type Forward = Box<dyn FnOnce() + Send>;
/// Hands a row, aggregates appended, to the backends (rank 0).
pub(crate) type Deliver = Box<dyn Fn(Arc<Record>) + Send>;

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

/// How the aggregation ended, for [`Rounds::finish`]'s caller.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RoundsEnd {
    /// Ranks that had not finished when this rank stopped waiting (their rows are missing
    /// from the aggregates).
    pub missing: Vec<usize>,
    /// The thread panicked: rows it held (`lost`) never reached the backends.
    pub panicked: bool,
    /// The thread was still handing rows over at the deadline: `lost` of them did not reach
    /// the backends in time.
    pub unfinished: bool,
    pub lost: u64,
}

/// Shared between the caller's side and the thread.
#[derive(Default)]
struct Shared {
    /// This rank logs nothing more (also sent as a command, which a full queue may delay).
    finish: AtomicBool,
    /// The thread stopped waiting for other ranks (finish deadline, failed run).
    give_up: AtomicBool,
    /// The thread ended by a panic.
    panicked: AtomicBool,
    /// Rows sent to the thread, and rows it handed on (rank 0) or sent to rank 0.
    sent: AtomicU64,
    passed: AtomicU64,
    /// Bit `r` set when rank `r` said it was done (ranks ≥ 64 are not told apart).
    done_ranks: AtomicU64,
    world: usize,
    rank: usize,
}

/// The caller's side of the aggregation thread.
pub(crate) struct Rounds {
    tx: Sender<Cmd>,
    open: AtomicBool,
    shared: Arc<Shared>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Rounds {
    /// Starts the thread. `deliver` hands rows to rank 0's backends (unused elsewhere);
    /// `capacity` commands (rows, forwards) may wait for the thread before its route counts as
    /// full.
    pub(crate) fn start(
        aggregator: Box<dyn Aggregator>,
        deliver: Deliver,
        capacity: usize,
    ) -> std::io::Result<Rounds> {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let world = aggregator.world_size();
        let shared = Arc::new(Shared {
            world,
            rank: aggregator.rank(),
            ..Shared::default()
        });
        let root = aggregator.rank() == 0;
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ezpz-aggregate".into())
            .spawn(move || {
                let thread = Thread {
                    aggregator,
                    deliver,
                    root,
                    matcher: Matcher::new(world, UNMATCHED_AFTER),
                    queue: VecDeque::new(),
                    next_id: 0,
                    released: 0,
                    joiner: KeyJoiner::default(),
                    drains: Vec::new(),
                    outbox: Vec::new(),
                    finishing: false,
                    shared: state.clone(),
                };
                if catch_unwind(AssertUnwindSafe(|| thread.run(rx))).is_err() {
                    state.panicked.store(true, Ordering::Release);
                    crate::warn!(
                        "ezpz: the cross-rank aggregation thread panicked; later rows go to the \
                         backends without aggregates, and flush/finish report the rows it held"
                    );
                }
            })?;
        Ok(Rounds {
            tx,
            open: AtomicBool::new(true),
            shared,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Whether rows still go through the rounds (until [`finish`](Rounds::finish), or until
    /// the thread died).
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) && !self.shared.panicked.load(Ordering::Acquire)
    }

    /// Queues a committed row without waiting; gives the record back when the route cannot
    /// take it (full: the thread waits for a rank that hangs; or the thread is gone).
    pub(crate) fn row(
        &self,
        step: u64,
        pairs: Vec<(Arc<str>, f64)>,
        record: Option<Record>,
    ) -> Result<(), Option<Record>> {
        let cmd = Cmd::Row {
            step,
            pairs,
            record,
        };
        match self.tx.try_send(cmd) {
            Ok(()) => {
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(Cmd::Row { record, .. }))
            | Err(TrySendError::Disconnected(Cmd::Row { record, .. })) => Err(record),
            Err(_) => Err(None),
        }
    }

    /// Queues a message for the backends behind the rows logged before it; gives it back
    /// when the route cannot take it.
    pub(crate) fn forward(&self, forward: Forward) -> Result<(), Forward> {
        match self.tx.try_send(Cmd::Forward(forward)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Cmd::Forward(f)))
            | Err(TrySendError::Disconnected(Cmd::Forward(f))) => Err(f),
            Err(_) => unreachable!("a forward comes back as it went"),
        }
    }

    /// Waits until everything queued so far has reached the backends, at most until
    /// `deadline`. False when the time ran out (rows still wait for other ranks).
    pub(crate) fn drain(&self, deadline: Instant) -> bool {
        let (reply, done) = crossbeam_channel::bounded(1);
        if self.tx.send_deadline(Cmd::Drain(reply), deadline).is_err() {
            return !self.shared.panicked.load(Ordering::Acquire);
        }
        done.recv_deadline(deadline).is_ok()
    }

    /// Ends this rank's part and waits until every rank has finished and rank 0 has handed
    /// every row to the backends, or until `deadline`: then (or at once with `abort`, a
    /// failed run) the thread stops waiting for the other ranks, rank 0 hands its rows over
    /// with the aggregates it can compute, and the ranks still missing are reported. Later
    /// rows go straight to the backends, unaggregated. Returns by `deadline` at the latest.
    pub(crate) fn finish(&self, abort: bool, deadline: Instant) -> RoundsEnd {
        self.open.store(false, Ordering::Release);
        if abort {
            self.shared.give_up.store(true, Ordering::Release);
        }
        self.shared.finish.store(true, Ordering::Release);
        // Wakes the thread; a full queue wakes it anyway.
        let _ = self.tx.try_send(Cmd::Finish);
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        let mut end = RoundsEnd::default();
        let Some(handle) = thread.take() else {
            return end;
        };
        // Half of what is left for the other ranks; then the thread gives up and needs one
        // more pass to hand rank 0's rows over.
        let now = Instant::now();
        let wait_ranks = now + deadline.saturating_duration_since(now) / 2;
        while !handle.is_finished() && Instant::now() < wait_ranks {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !handle.is_finished() {
            self.shared.give_up.store(true, Ordering::Release);
            let done = self.shared.done_ranks.load(Ordering::Acquire);
            end.missing = (0..self.shared.world.min(64))
                .filter(|&r| r != self.shared.rank && done & (1 << r) == 0)
                .collect();
        }
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            // Left to end on its own; a new one is never started.
            *thread = None;
            end.unfinished = true;
            end.lost = self.lost();
        }
        if self.shared.panicked.load(Ordering::Acquire) {
            end.panicked = true;
            end.lost = self.lost();
        }
        end
    }

    /// Whether the thread died of a panic.
    pub(crate) fn panicked(&self) -> bool {
        self.shared.panicked.load(Ordering::Acquire)
    }

    /// Rows sent to the thread that it never passed on.
    pub(crate) fn lost(&self) -> u64 {
        let sent = self.shared.sent.load(Ordering::Relaxed);
        sent.saturating_sub(self.shared.passed.load(Ordering::Relaxed))
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
    deliver: Deliver,
    root: bool,
    matcher: Matcher,
    /// Rank 0: what the backends get next, in the order it was logged.
    queue: VecDeque<Pending>,
    /// Ids given to queued items (rows and forwards), in order.
    next_id: u64,
    /// Items handed to the backends so far.
    released: u64,
    /// Key lists of rows with their aggregates appended.
    joiner: KeyJoiner,
    /// Drain requests: answered once `released` reaches the id.
    drains: Vec<(u64, Sender<()>)>,
    /// Other ranks: the rows for rank 0 in the next round.
    outbox: Vec<u8>,
    finishing: bool,
    shared: Arc<Shared>,
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
                if self.shared.finish.load(Ordering::Acquire) {
                    self.finishing = true;
                    break;
                }
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
            let exchange =
                self.aggregator
                    .exchange(&self.outbox, self.finishing, &self.shared.give_up);
            self.outbox.clear();
            let now = Instant::now();
            // Given up (a failed run, or the finish deadline): a last pass with what is here.
            let exchange = exchange.unwrap_or(super::Exchange {
                all_done: true,
                ..super::Exchange::default()
            });
            let done = exchange
                .done
                .iter()
                .take(64)
                .enumerate()
                .fold(0u64, |bits, (r, &d)| bits | (u64::from(d) << r));
            if !exchange.done.is_empty() {
                self.shared.done_ranks.store(done, Ordering::Release);
            }
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
            let last = exchange.all_done || self.shared.give_up.load(Ordering::Acquire);
            if last {
                // Rows queued while this round waited (a rank that hangs) go out too.
                while let Ok(cmd) = rx.try_recv() {
                    self.handle(cmd);
                }
            }
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
                    self.shared.passed.fetch_add(1, Ordering::Relaxed);
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
                        record.extend(aggregates.unwrap_or_default(), &mut self.joiner);
                        (self.deliver)(Arc::new(record));
                    }
                    self.shared.passed.fetch_add(1, Ordering::Relaxed);
                }
                Pending::Forward(forward) => forward(),
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
