//! `Mpi`: initialises MPI once, finalises it when the last user is gone.

use std::ops::Deref;
use std::sync::Arc;

use ::mpi::environment::{Threading, Universe};
use ::mpi::topology::{Communicator as _, SimpleCommunicator};

use crate::mpi::MpiAggregator;
use crate::{Error, RankInfo, Result, TrackerBuilder};

/// The program's MPI session: initialises MPI, finalises it (`MPI_Finalize`) when this handle
/// and everything made from it ([`Communicator`]s, [`MpiAggregator`]s, trackers holding one)
/// have been dropped. Cheap to clone; share it between the tracker and the training code.
#[derive(Clone)]
pub struct Mpi {
    inner: Arc<Inner>,
}

// Field order is drop order: the world handle before the universe that finalises.
struct Inner {
    world: SimpleCommunicator,
    rank: RankInfo,
    threading: Threading,
    _universe: Universe,
}

// SAFETY: an MPI communicator handle is an opaque reference into the MPI library, which
// synchronises concurrent calls itself under MPI_THREAD_MULTIPLE (what `Mpi::init` requests;
// a lower granted level is warned about). The world handle is never freed.
unsafe impl Send for Inner {}
// SAFETY: see `Send`.
unsafe impl Sync for Inner {}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank())
            .field("world_size", &self.world_size())
            .field("threading", &self.threading())
            .finish()
    }
}

impl Mpi {
    /// Initialises MPI, asking for `MPI_THREAD_MULTIPLE` (warns once when the library grants
    /// less: then call the tracker and the training code's MPI functions from one thread).
    /// Works without a launcher too (a singleton: rank 0 of 1).
    ///
    /// # Errors
    /// MPI was already initialised (or finalised) in this process: initialise once and clone
    /// the handle.
    pub fn init() -> Result<Mpi> {
        let Some((universe, threading)) = ::mpi::initialize_with_threading(Threading::Multiple)
        else {
            return Err(Error::Invalid {
                what: "MPI initialisation",
                message: "MPI is already initialised (or finalised) in this process; call \
                          `Mpi::init` once and clone the handle"
                    .into(),
            });
        };
        if threading < Threading::Multiple {
            crate::warn!(
                "ezpz: the MPI library grants only {threading:?} threading (asked for \
                 Multiple); make every MPI call (tracker logging included) from one thread"
            );
        }
        let world = universe.world();
        let rank = RankInfo::from_env().with_rank(world.rank() as usize, world.size() as usize);
        Ok(Mpi {
            inner: Arc::new(Inner {
                world,
                rank,
                threading,
                _universe: universe,
            }),
        })
    }

    /// This process's rank in the world communicator.
    pub fn rank(&self) -> usize {
        self.inner.rank.rank
    }

    /// Number of ranks in the world communicator.
    pub fn world_size(&self) -> usize {
        self.inner.rank.world_size
    }

    /// Whether this is rank 0.
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// Rank and world size from MPI; local rank, host and scheduler from the environment.
    pub fn rank_info(&self) -> RankInfo {
        self.inner.rank.clone()
    }

    /// The threading level the MPI library granted.
    pub fn threading(&self) -> Threading {
        self.inner.threading
    }

    /// The world communicator, for the program's own collectives.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.inner.world
    }

    /// A private duplicate of the world communicator (`MPI_Comm_dup`), whose collectives
    /// never match another user's. A collective: every rank calls it, in the same order
    /// relative to its other collectives.
    pub fn communicator(&self) -> Communicator {
        Communicator {
            comm: self.inner.world.duplicate(),
            _mpi: self.clone(),
        }
    }

    /// An aggregator for [`TrackerBuilder::aggregator`] on its own communicator (collective,
    /// like [`communicator`](Self::communicator)).
    pub fn aggregator(&self) -> MpiAggregator {
        MpiAggregator::new(self.communicator())
    }
}

/// A duplicate of the world communicator that keeps MPI initialised while it lives and may
/// be moved to or shared with other threads. Dereferences to rsmpi's
/// [`SimpleCommunicator`], so every rsmpi collective is available on it.
pub struct Communicator {
    // Freed (`MPI_Comm_free`) before the handle that may finalise MPI.
    comm: SimpleCommunicator,
    _mpi: Mpi,
}

// SAFETY: as for `Inner`: the library synchronises calls under MPI_THREAD_MULTIPLE; the
// handle is freed exactly once, by `SimpleCommunicator`'s own drop, before finalisation.
unsafe impl Send for Communicator {}
// SAFETY: see `Send`.
unsafe impl Sync for Communicator {}

impl Deref for Communicator {
    type Target = SimpleCommunicator;
    fn deref(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

impl std::fmt::Debug for Communicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Communicator")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .finish()
    }
}

impl TrackerBuilder {
    /// Takes rank and world size from `mpi` and aggregates every logged scalar across ranks
    /// (`key/mean|min|max|std`, on rank 0) with an [`MpiAggregator`]. A collective (it
    /// duplicates the world communicator): every rank builds its tracker.
    pub fn mpi(self, mpi: &Mpi) -> Self {
        self.rank_info(mpi.rank_info()).aggregator(mpi.aggregator())
    }
}
