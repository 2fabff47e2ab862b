//! `MpiAggregator`: the rounds of the tracker's aggregation thread over MPI.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::mpi::datatype::PartitionMut;
use ::mpi::request::{Request, Scope};
use ::mpi::topology::Communicator as _;
use ::mpi::traits::*;
use ::mpi::Count;

use super::{lock, Communicator};
use crate::aggregate::{Aggregator, Exchange};

/// Cross-rank `key/mean|min|max|std` over MPI, for [`TrackerBuilder::aggregator`]
/// (or [`TrackerBuilder::mpi`]).
///
/// The tracker's aggregation thread calls it once per round (every 100 ms): one
/// `MPI_Iallgather` of two words per rank (payload length, done flag), then, when any rank
/// has rows, one `MPI_Igatherv` of the rows to rank 0. Both are non-blocking and polled with
/// short sleeps, so a thread waiting for a slower rank does not spin a core. Logging itself
/// never makes an MPI call. Each MPI call (starting a request, each `test`) holds
/// [`lock`](super::lock), so rounds are correct beside the training thread's collectives
/// when the library grants only `MPI_THREAD_SERIALIZED`; the lock is released between
/// polls, so a blocking collective elsewhere is never held up for a whole round.
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
        let (rank, size) = {
            let _mpi = lock();
            (comm.rank() as usize, comm.size() as usize)
        };
        MpiAggregator { rank, size, comm }
    }

    /// The communicator the aggregator's collectives run on.
    pub fn communicator(&self) -> &Communicator {
        &self.comm
    }
}

/// A round pending this long with `give_up` set has a rank that is not taking part (a live
/// rank's aggregation thread completes a round within milliseconds).
const ABANDON_AFTER: Duration = Duration::from_millis(250);

/// Polls `request` to completion: a few quick tests, then 200 µs naps. False when `give_up`
/// is set and the request has been pending for [`ABANDON_AFTER`]: it is then abandoned (a
/// rank that died or hangs never completes it; abandoning a round the others are completing
/// would leave them mismatched), and the caller must leak the request's buffers, which MPI
/// may still write.
fn complete<'a, D: ?Sized, S: Scope<'a>>(
    mut request: Request<'a, D, S>,
    give_up: &AtomicBool,
) -> bool {
    let start = std::time::Instant::now();
    for spin in 0u32.. {
        let tested = {
            let _mpi = lock();
            request.test()
        };
        match tested {
            Ok(_) => return true,
            Err(pending) => request = pending,
        }
        if give_up.load(Ordering::Acquire) && start.elapsed() >= ABANDON_AFTER {
            // SAFETY: the request is never used again and its buffers are leaked by the
            // caller, so MPI may complete it later (or never) without touching freed memory.
            let _ = unsafe { request.into_raw() };
            return false;
        }
        if spin < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    true
}

/// A copy of `bytes` whose address is never `MPI_IN_PLACE`. Open MPI spells that
/// `(void *) 1`, which is the address Rust gives every empty `u8` slice: a rank with nothing
/// to send in a round would otherwise pass it, and on a rank other than the root that is an
/// `MPI_ERR_ARG` that aborts the whole job.
fn send_buffer(bytes: &[u8]) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(bytes.len().max(1));
    buffer.extend_from_slice(bytes);
    buffer
}

impl Aggregator for MpiAggregator {
    fn world_size(&self) -> usize {
        self.size
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn exchange(&self, payload: &[u8], done: bool, give_up: &AtomicBool) -> Option<Exchange> {
        // A round's payload is 100 ms of rows; a length beyond `Count` cannot be described to
        // MPI, and every rank clamps the same header value the same way.
        let len = payload.len().min(Count::MAX as usize);
        let header = vec![len as u64, u64::from(done)];
        let mut headers = vec![0u64; 2 * self.size];
        let completed = ::mpi::request::scope(|scope| {
            let request = {
                let _mpi = lock();
                self.comm
                    .immediate_all_gather_into(scope, &header[..], &mut headers[..])
            };
            complete(request, give_up)
        });
        if !completed {
            std::mem::forget((header, headers));
            return None;
        }
        let all_done = headers.chunks(2).all(|h| h[1] == 1);
        let done: Vec<bool> = headers.chunks(2).map(|h| h[1] == 1).collect();
        let counts: Vec<Count> = headers.chunks(2).map(|h| h[0] as Count).collect();
        if counts.iter().all(|&c| c == 0) {
            return Some(Exchange {
                all_done,
                done,
                payloads: if self.rank == 0 {
                    vec![Vec::new(); self.size]
                } else {
                    Vec::new()
                },
            });
        }
        let root = {
            // `process_at_rank` checks the rank against `MPI_Comm_size`.
            let _mpi = lock();
            self.comm.process_at_rank(0)
        };
        // Leaked with the request when abandoned, so it is a copy of the caller's buffer.
        let mine = send_buffer(&payload[..len]);
        if self.rank != 0 {
            let completed = ::mpi::request::scope(|scope| {
                let request = {
                    let _mpi = lock();
                    root.immediate_gather_varcount_into(scope, &mine[..])
                };
                complete(request, give_up)
            });
            if !completed {
                std::mem::forget(mine);
                return None;
            }
            return Some(Exchange {
                all_done,
                done,
                payloads: Vec::new(),
            });
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
        let completed = {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            ::mpi::request::scope(|scope| {
                let request = {
                    let _mpi = lock();
                    root.immediate_gather_varcount_into_root(scope, &mine[..], &mut partition)
                };
                complete(request, give_up)
            })
        };
        if !completed {
            std::mem::forget((mine, all, counts, displs));
            return None;
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
        Some(Exchange {
            all_done,
            done,
            payloads,
        })
    }
}
