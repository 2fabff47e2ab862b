//! `MpiAggregator`: one all-gather per `log` call (see `protocol` for the buffer layout).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ::mpi::datatype::PartitionMut;
use ::mpi::topology::Communicator as _;
use ::mpi::traits::*;
use ::mpi::Count;

use super::protocol::{self, NameCache, Plan};
use super::Communicator;
use crate::aggregate::Aggregator;
use crate::value::Metric;

/// Cross-rank `key/mean|min|max|std` over MPI, for [`TrackerBuilder::aggregator`]
/// (or [`TrackerBuilder::mpi`]).
///
/// Each `log` call costs **one** `MPI_Allgather` of a small fixed-size buffer carrying the
/// values and a hash of the key list; statistics use the two-pass [`Stats::of`] in `f64`, so
/// large values with a small spread keep full precision. Ranks that log different keys do
/// not hang: the same all-gather reveals the difference, one extra gather collects every
/// rank's `(key, value)` pairs, each key of the union is aggregated over the ranks that logged
/// it, and rank 0 warns once. Every rank must still make the same number of `log` calls.
///
/// Keys that already name an aggregate (`…/mean|min|max|std`) are not aggregated again, and a
/// key logged together with its own `key/mean` keeps the caller's figures (e.g.
/// `grads/global_norm` beside precomputed `grads/global_norm/mean|min|max|std`).
///
/// [`TrackerBuilder::aggregator`]: crate::TrackerBuilder::aggregator
/// [`TrackerBuilder::mpi`]: crate::TrackerBuilder::mpi
/// [`Stats::of`]: crate::Stats::of
#[derive(Debug)]
pub struct MpiAggregator {
    comm: Communicator,
    rank: usize,
    size: usize,
    state: Mutex<State>,
    warned: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// Values per rank a round carries; identical on every rank (only changed from gathered
    /// data every rank sees).
    capacity: usize,
    /// Rank 0's aggregate names for the last key list.
    names: NameCache,
}

impl MpiAggregator {
    /// An aggregator over `comm` (usually from [`Mpi::aggregator`](super::Mpi::aggregator)).
    pub fn new(comm: Communicator) -> Self {
        MpiAggregator {
            rank: comm.rank() as usize,
            size: comm.size() as usize,
            comm,
            state: Mutex::new(State {
                capacity: protocol::INITIAL_CAPACITY,
                names: NameCache::default(),
            }),
            warned: AtomicBool::new(false),
        }
    }

    /// The communicator the aggregator's collectives run on.
    pub fn communicator(&self) -> &Communicator {
        &self.comm
    }

    /// Gathers every rank's encoded pairs on rank 0 and aggregates the key union there.
    fn aggregate_union(&self, metrics: &[(Arc<str>, f64)], byte_counts: &[usize]) -> Vec<Metric> {
        // Lengths beyond `Count` cannot be described to MPI; every rank clamps the same
        // header values identically, and a clamped buffer fails to decode below.
        let counts: Vec<Count> = byte_counts
            .iter()
            .map(|&c| Count::try_from(c).unwrap_or(Count::MAX))
            .collect();
        let mut mine = protocol::encode(metrics);
        mine.truncate(counts[self.rank] as usize);
        let root = self.comm.process_at_rank(0);
        if self.rank != 0 {
            root.gather_varcount_into(&mine[..]);
            return Vec::new();
        }
        let displs: Vec<Count> = counts
            .iter()
            .scan(0 as Count, |acc, &c| {
                let d = *acc;
                *acc = acc.saturating_add(c);
                Some(d)
            })
            .collect();
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(&mine[..], &mut partition);
        }
        let mut per_rank = Vec::with_capacity(self.size);
        let mut offset = 0;
        for &c in &counts {
            let bytes = &all[offset..offset + c as usize];
            offset += c as usize;
            match protocol::decode(bytes) {
                Some(pairs) => per_rank.push(pairs),
                None => {
                    tracing::warn!("ezpz: a rank's metric names could not be decoded; this step's aggregates are skipped");
                    return Vec::new();
                }
            }
        }
        let (aggregates, description) = protocol::union_stats(&per_rank);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "ezpz: ranks logged different metric keys ({description}); aggregating each \
                 key over the ranks that logged it (warned once)"
            );
        }
        aggregates
    }
}

impl Aggregator for MpiAggregator {
    fn world_size(&self) -> usize {
        self.size
    }

    fn aggregate(&self, metrics: &[(Arc<str>, f64)]) -> Vec<Metric> {
        let metrics = &*protocol::aggregatable(metrics);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        loop {
            let send = protocol::pack(metrics, state.capacity);
            let mut gathered = vec![0u64; send.len() * self.size];
            self.comm.all_gather_into(&send[..], &mut gathered[..]);
            match protocol::plan(&gathered, self.size, state.capacity) {
                Plan::Uniform if self.rank != 0 => return Vec::new(),
                Plan::Uniform => {
                    return protocol::uniform_stats(
                        metrics,
                        &gathered,
                        self.size,
                        state.capacity,
                        &mut state.names,
                    )
                }
                Plan::Grow { capacity } => state.capacity = capacity,
                Plan::Mismatch {
                    byte_counts,
                    capacity,
                } => {
                    state.capacity = capacity;
                    return self.aggregate_union(metrics, &byte_counts);
                }
            }
        }
    }
}
