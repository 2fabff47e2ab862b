//! The logging thread's side of the hand-over to the backend workers.
//!
//! Committed rows are handed over in batches: at once when the previous hand-over is older
//! than [`HANDOFF_PAUSE`] (a program logging now and then never waits), otherwise when
//! [`HANDOFF_ROWS`] rows are waiting, before any other message (config, table, flush, …), or
//! by the [`Nudger`] thread within [`NUDGE`]. A tight logging loop then pays one channel
//! operation per batch instead of one per row.
//!
//! Workers hand rows back once written ([`Returned`]): the logging thread frees them, where
//! their keys were cloned, so keys' reference counts stay on one core, and it reuses a row
//! or batch whose last copy came back, allocation included.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::msg::{Batch, Msg, Returned, BATCH_ROWS};
use super::worker::{Offer, WorkerHandle};
use crate::backend::Record;

/// Rows waiting before a hand-over is forced.
pub(crate) const HANDOFF_ROWS: usize = BATCH_ROWS;
/// Seconds after a hand-over before the next row goes over at once.
pub(crate) const HANDOFF_PAUSE: f64 = 0.001;
/// How often the nudger hands over rows left waiting.
pub(crate) const NUDGE: Duration = Duration::from_millis(20);
/// Rows and batches kept for reuse: enough for the rows in flight while a worker pauses
/// between batches (a tight loop commits about a thousand per millisecond), bounded by their
/// entries too (about 10 MB).
const MAX_SPARE_ROWS: usize = 4096;
const MAX_SPARE_ENTRIES: usize = 1 << 18;
const MAX_SPARE_BATCHES: usize = 64;

/// See the module docs.
pub(crate) struct Staging {
    recycled: Receiver<Returned>,
    staged: Vec<Arc<Record>>,
    /// Timestamp (seconds since the epoch) of the last hand-over.
    last_handoff: f64,
    spare_rows: Vec<Arc<Record>>,
    /// Entries the spare rows hold.
    spare_entries: usize,
    spare_batches: Vec<Batch>,
}

impl Default for Staging {
    fn default() -> Staging {
        Staging::new(crossbeam_channel::never())
    }
}

impl Staging {
    pub(crate) fn new(recycled: Receiver<Returned>) -> Staging {
        Staging {
            recycled,
            staged: Vec::new(),
            last_handoff: f64::NEG_INFINITY,
            spare_rows: Vec::new(),
            spare_entries: 0,
            spare_batches: Vec::new(),
        }
    }

    /// A row to fill, owned only by the caller: a returned one when there is one. Call it
    /// once no other reference to earlier rows is held, so that they come back unique.
    pub(crate) fn row(&mut self) -> Arc<Record> {
        self.take_back();
        if let Some(row) = self.spare_rows.pop() {
            self.spare_entries -= row.len();
            return row;
        }
        Arc::new(Record::default())
    }

    /// Queues a committed row, handing the queue over when due. True when a backend is
    /// behind (the caller may slow down once it holds no lock).
    pub(crate) fn push(&mut self, record: Arc<Record>, workers: &[WorkerHandle]) -> bool {
        let at = record.timestamp;
        self.staged.push(record);
        if self.staged.len() >= HANDOFF_ROWS || at - self.last_handoff >= HANDOFF_PAUSE {
            self.last_handoff = at;
            return self.hand_off(workers);
        }
        false
    }

    /// Whether rows have waited since a hand-over older than the pause (for the nudger).
    pub(crate) fn is_stale(&self, now: f64) -> bool {
        !self.staged.is_empty() && now - self.last_handoff >= HANDOFF_PAUSE
    }

    /// Hands every waiting row over, in order, one batch for all workers; never waits. True
    /// when a backend is behind.
    pub(crate) fn hand_off(&mut self, workers: &[WorkerHandle]) -> bool {
        if self.staged.is_empty() {
            return false;
        }
        let mut batch = self.spare_batches.pop().unwrap_or_default();
        match Arc::get_mut(&mut batch) {
            Some(rows) => rows.append(&mut self.staged),
            None => batch = Arc::new(std::mem::take(&mut self.staged)),
        }
        let mut pressed = false;
        for w in workers {
            pressed |= w.offer(Msg::Logs(batch.clone())) == Offer::Pressed;
        }
        pressed
    }

    /// Frees what the workers handed back; keeps unique rows and batches for reuse.
    pub(crate) fn take_back(&mut self) {
        while let Ok(returned) = self.recycled.try_recv() {
            match returned {
                Returned::Row(row) => self.keep_row(row),
                Returned::Batch(mut batch) => {
                    let Some(rows) = Arc::get_mut(&mut batch) else {
                        continue; // other workers still hold it
                    };
                    for row in rows.drain(..) {
                        self.keep_row(row);
                    }
                    if self.spare_batches.len() < MAX_SPARE_BATCHES {
                        self.spare_batches.push(batch);
                    }
                }
            }
        }
    }

    fn keep_row(&mut self, mut row: Arc<Record>) {
        let entries = row.len();
        if self.spare_rows.len() < MAX_SPARE_ROWS
            && self.spare_entries + entries <= MAX_SPARE_ENTRIES
            && Arc::get_mut(&mut row).is_some()
        {
            self.spare_entries += entries;
            self.spare_rows.push(row);
        }
    }
}

/// A thread that runs `tick` every [`NUDGE`] until stopped (hands over rows a loop that
/// stopped logging left waiting).
pub(crate) struct Nudger {
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Nudger {
    pub(crate) fn start(tick: impl Fn() + Send + 'static) -> std::io::Result<Nudger> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("ezpz-handoff".into())
            .spawn(move || loop {
                match stopped.recv_timeout(NUDGE) {
                    Err(RecvTimeoutError::Timeout) => tick(),
                    _ => return,
                }
            })?;
        Ok(Nudger {
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread and waits for it (idempotent).
    pub(crate) fn stop(&self) {
        drop(self.stop.lock().unwrap_or_else(|e| e.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
