//! The ranks data parallelism runs on, and every MPI call it makes.
//!
//! All of `ddp`'s collectives are the methods below, one MPI call each, so that serialising
//! them with the process-wide MPI lock (for `MPI_THREAD_SERIALIZED`) is one guard per method.
//! Without MPI (or in a world of one) they are no-ops that return what one rank would get.

#[cfg(feature = "mpi")]
use ezpz_tracker::mpi::{Communicator, Mpi};
#[cfg(feature = "mpi")]
use mpi::collective::SystemOperation;
#[cfg(feature = "mpi")]
use mpi::topology::Communicator as _;
#[cfg(feature = "mpi")]
use mpi::traits::*;

/// One process (no MPI), or the ranks of an MPI communicator.
#[derive(Debug)]
pub(crate) enum World {
    Local,
    #[cfg(feature = "mpi")]
    Mpi {
        comm: Communicator,
        rank: usize,
        size: usize,
    },
}

impl World {
    /// A duplicate of `mpi`'s world communicator (a collective).
    #[cfg(feature = "mpi")]
    pub(crate) fn mpi(mpi: &Mpi) -> World {
        let comm = mpi.communicator();
        let (rank, size) = {
            let _mpi = ezpz_tracker::mpi::lock();
            (comm.rank() as usize, comm.size() as usize)
        };
        World::Mpi { rank, size, comm }
    }

    pub(crate) fn rank(&self) -> usize {
        match self {
            World::Local => 0,
            #[cfg(feature = "mpi")]
            World::Mpi { rank, .. } => *rank,
        }
    }

    pub(crate) fn size(&self) -> usize {
        match self {
            World::Local => 1,
            #[cfg(feature = "mpi")]
            World::Mpi { size, .. } => *size,
        }
    }

    /// Every rank's `mine`, concatenated in rank order.
    pub(crate) fn all_gather_u64(&self, mine: &[u64]) -> Vec<u64> {
        match self {
            World::Local => mine.to_vec(),
            #[cfg(feature = "mpi")]
            World::Mpi { comm, size, .. } => {
                let mut all = vec![0u64; mine.len() * size];
                let _mpi = ezpz_tracker::mpi::lock();
                comm.all_gather_into(mine, &mut all[..]);
                all
            }
        }
    }

    /// Every rank's `mine`, in rank order.
    pub(crate) fn all_gather_f64(&self, mine: f64) -> Vec<f64> {
        match self {
            World::Local => vec![mine],
            #[cfg(feature = "mpi")]
            World::Mpi { comm, size, .. } => {
                let mut all = vec![0f64; *size];
                let _mpi = ezpz_tracker::mpi::lock();
                comm.all_gather_into(&mine, &mut all[..]);
                all
            }
        }
    }

    /// Rank 0's `buffer` on every rank.
    pub(crate) fn broadcast_f32(&self, buffer: &mut [f32]) {
        match self {
            // Rank 0's buffer is this one.
            World::Local => {
                let _ = buffer;
            }
            #[cfg(feature = "mpi")]
            World::Mpi { comm, .. } => {
                let _mpi = ezpz_tracker::mpi::lock();
                comm.process_at_rank(0).broadcast_into(buffer);
            }
        }
    }

    /// The element-wise sum of every rank's `mine`.
    pub(crate) fn all_reduce_sum_f32(&self, mine: &[f32]) -> Vec<f32> {
        match self {
            World::Local => mine.to_vec(),
            #[cfg(feature = "mpi")]
            World::Mpi { comm, .. } => {
                let mut sum = vec![0f32; mine.len()];
                let _mpi = ezpz_tracker::mpi::lock();
                comm.all_reduce_into(mine, &mut sum[..], SystemOperation::sum());
                sum
            }
        }
    }

    /// Whether any rank says `yes`.
    pub(crate) fn any(&self, yes: bool) -> bool {
        match self {
            World::Local => yes,
            #[cfg(feature = "mpi")]
            World::Mpi { comm, .. } => {
                let mine = i32::from(yes);
                let mut max = 0i32;
                let _mpi = ezpz_tracker::mpi::lock();
                comm.all_reduce_into(&mine, &mut max, SystemOperation::max());
                max > 0
            }
        }
    }
}
