//! `MpiAggregator`: the rounds of the tracker's aggregation thread over MPI.

use std::time::Duration;

use ::mpi::datatype::PartitionMut;
use ::mpi::request::{Request, Scope};
use ::mpi::topology::Communicator as _;
use ::mpi::traits::*;
use ::mpi::Count;

use super::Communicator;
use crate::aggregate::{Aggregator, Exchange};

/// Cross-rank `key/mean|min|max|std` over MPI, for [`TrackerBuilder::aggregator`]
/// (or [`TrackerBuilder::mpi`]).
///
/// The tracker's aggregation thread calls it once per round (every 100 ms): one
/// `MPI_Iallgather` of two words per rank (payload length, done flag), then, when any rank
/// has rows, one `MPI_Igatherv` of the rows to rank 0. Both are non-blocking and polled with
/// short sleeps, so a thread waiting for a slower rank does not spin a core. Logging itself
/// never makes an MPI call.
///
/// [`TrackerBuilder::aggregator`]: crate::TrackerBuilder::aggregator
/// [`TrackerBuilder::mpi`]: crate::TrackerBuilder::mpi
#[derive(Debug)]
pub struct MpiAggregator {
    comm: Communicator,
    rank: usize,
    size: usize,
}

impl MpiAggregator {
    /// An aggregator over `comm` (usually from [`Mpi::aggregator`](super::Mpi::aggregator)).
    pub fn new(comm: Communicator) -> Self {
        MpiAggregator {
            rank: comm.rank() as usize,
            size: comm.size() as usize,
            comm,
        }
    }

    /// The communicator the aggregator's collectives run on.
    pub fn communicator(&self) -> &Communicator {
        &self.comm
    }
}

/// Polls `request` to completion: a few quick tests, then 200 µs naps.
fn complete<'a, D: ?Sized, S: Scope<'a>>(mut request: Request<'a, D, S>) {
    for spin in 0u32.. {
        match request.test() {
            Ok(_) => return,
            Err(pending) => request = pending,
        }
        if spin < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Aggregator for MpiAggregator {
    fn world_size(&self) -> usize {
        self.size
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn exchange(&self, payload: &[u8], done: bool) -> Exchange {
        // A round's payload is 100 ms of rows; a length beyond `Count` cannot be described to
        // MPI, and every rank clamps the same header value the same way.
        let len = payload.len().min(Count::MAX as usize);
        let header = [len as u64, u64::from(done)];
        let mut headers = vec![0u64; 2 * self.size];
        ::mpi::request::scope(|scope| {
            complete(
                self.comm
                    .immediate_all_gather_into(scope, &header[..], &mut headers[..]),
            )
        });
        let all_done = headers.chunks(2).all(|h| h[1] == 1);
        let counts: Vec<Count> = headers.chunks(2).map(|h| h[0] as Count).collect();
        if counts.iter().all(|&c| c == 0) {
            return Exchange {
                all_done,
                payloads: if self.rank == 0 {
                    vec![Vec::new(); self.size]
                } else {
                    Vec::new()
                },
            };
        }
        let root = self.comm.process_at_rank(0);
        let mine = &payload[..len];
        if self.rank != 0 {
            ::mpi::request::scope(|scope| {
                complete(root.immediate_gather_varcount_into(scope, mine))
            });
            return Exchange {
                all_done,
                payloads: Vec::new(),
            };
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
            ::mpi::request::scope(|scope| {
                complete(root.immediate_gather_varcount_into_root(scope, mine, &mut partition))
            });
        }
        let mut offset = 0;
        let payloads = counts
            .iter()
            .map(|&c| {
                let p = all[offset..offset + c as usize].to_vec();
                offset += c as usize;
                p
            })
            .collect();
        Exchange { all_done, payloads }
    }
}
