//! Cross-rank aggregation of logged scalars into `key/mean`, `key/min`, `key/max`, `key/std`.
//!
//! With an [`Aggregator`] of more than one rank, the tracker runs one `ezpz-aggregate` thread
//! per rank. `log` never waits for other ranks: it hands the row's numeric metrics to that
//! thread and returns. The threads meet in *rounds* (one [`Aggregator::exchange`] every
//! 100 ms, in lockstep), where every rank sends its new rows to rank 0. Rank 0 matches rows
//! of the same step and key set across ranks, whatever order or thread they were logged
//! from, computes [`Stats`], and hands its rows, aggregates appended, to the backends in
//! the order it logged them. [`Tracker::finish`](crate::Tracker::finish) returns once every
//! rank has finished.
//!
//! The MPI implementation is `mpi::MpiAggregator` (feature `mpi`); [`LocalGroup`] runs ranks
//! as threads of one process.

mod local;
pub(crate) mod matcher;
mod names;
pub(crate) mod rounds;
mod stats;
pub(crate) mod wire;

use std::sync::atomic::AtomicBool;

pub use local::{LocalAggregator, LocalGroup};
pub use stats::{is_aggregate_key, Stats};

/// One collective exchange between the ranks' aggregation threads.
///
/// Every rank's tracker calls [`exchange`](Aggregator::exchange) from its own aggregation
/// thread, once per round, until a round in which every rank says it is done; the calls of
/// different ranks pair up by count.
pub trait Aggregator: Send + Sync {
    /// Number of ranks taking part.
    fn world_size(&self) -> usize;
    /// This process's rank (0 aggregates and writes).
    fn rank(&self) -> usize;
    /// Sends `payload` to rank 0 and says whether this rank is `done` (it will send nothing
    /// more). Returns whether every rank is done, and on rank 0 every rank's payload in
    /// rank order (empty on other ranks).
    ///
    /// Returns `None` once `give_up` is set before the round completed (a rank that died or
    /// hangs must not hold the others past their finish deadline): implementations wait in
    /// short naps and check it between them. After `None` the aggregator is not used again.
    fn exchange(&self, payload: &[u8], done: bool, give_up: &AtomicBool) -> Option<Exchange>;
}

/// What one round of [`Aggregator::exchange`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Every rank said it was done: this was the last round.
    pub all_done: bool,
    /// Each rank's `done` flag in this round, in rank order (on every rank).
    pub done: Vec<bool>,
    /// On rank 0: each rank's payload, in rank order; empty elsewhere.
    pub payloads: Vec<Vec<u8>>,
}
