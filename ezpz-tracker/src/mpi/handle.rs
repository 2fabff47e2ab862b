//! `Mpi`: initialises MPI once, finalises it when the last user is gone; [`lock`], the one
//! lock that serialises every ezpz MPI call when the library is not fully thread-safe.

use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ::mpi::environment::{Threading, Universe};
use ::mpi::topology::{Communicator as _, SimpleCommunicator};

use crate::mpi::MpiAggregator;
use crate::{Error, RankInfo, Result, TrackerBuilder};

use crate::env::EZPZ_MPI_THREADING;

/// Whether the granted level is below `MPI_THREAD_MULTIPLE` (then [`lock`] locks).
static SERIALIZE: AtomicBool = AtomicBool::new(false);
static MPI_LOCK: Mutex<()> = Mutex::new(());

/// Holds the process-wide MPI lock (see [`lock`]) until dropped.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct MpiGuard {
    _guard: Option<MutexGuard<'static, ()>>,
}

/// Takes the process-wide MPI lock when the MPI library granted less than
/// `MPI_THREAD_MULTIPLE` (e.g. Cray MPICH's default `SERIALIZED`); with `MULTIPLE` it does
/// nothing. Every MPI call ezpz makes holds it — the tracker's aggregation rounds, every
/// [`Communicator`] creation and release, ezpz-burn's broadcast and gradient all-reduce —
/// so the program is correct at `MPI_THREAD_SERIALIZED`. Hold it around each MPI call of
/// your own too when other threads use MPI: one call at a time (a blocking collective, or
/// one `test` of a non-blocking request), never around a wait for a lock of your own.
///
/// ```no_run
/// # #[cfg(feature = "mpi")]
/// # fn example(comm: &ezpz_tracker::mpi::Communicator) {
/// use mpi::traits::*;
/// let mut sum = 0.0f64;
/// {
///     let _mpi = ezpz_tracker::mpi::lock();
///     comm.all_reduce_into(&1.0f64, &mut sum, mpi::collective::SystemOperation::sum());
/// }
/// # }
/// ```
pub fn lock() -> MpiGuard {
    MpiGuard {
        _guard: SERIALIZE
            .load(Ordering::Acquire)
            .then(|| MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner())),
    }
}

/// The level named by [`EZPZ_MPI_THREADING`], if any.
fn requested_threading() -> Result<Threading> {
    let Some(value) = crate::env::var(EZPZ_MPI_THREADING) else {
        return Ok(Threading::Multiple);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "multiple" => Ok(Threading::Multiple),
        "serialized" => Ok(Threading::Serialized),
        "funneled" => Ok(Threading::Funneled),
        "single" => Ok(Threading::Single),
        other => Err(Error::Invalid {
            what: EZPZ_MPI_THREADING,
            message: format!("`{other}`: expected multiple, serialized, funneled or single"),
        }),
    }
}

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
    /// `None` when the application initialised MPI (it finalises, too).
    _universe: Option<Universe>,
}

// SAFETY: an MPI communicator handle is an opaque reference into the MPI library, which
// synchronises concurrent calls itself under MPI_THREAD_MULTIPLE; below that, every ezpz MPI
// call holds `lock()`, which serialises them (MPI_THREAD_SERIALIZED; lower levels are
// refused by `Mpi::init`). The world handle is never freed.
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
    /// Initialises MPI, asking for `MPI_THREAD_MULTIPLE` (or the level in
    /// [`EZPZ_MPI_THREADING`]). When the library grants `SERIALIZED` (Cray MPICH's default,
    /// for one), every ezpz MPI call is serialised by [`lock`]. Works without a launcher too
    /// (a singleton: rank 0 of 1). MPI already initialised by the application (rsmpi's
    /// `mpi::initialize`, or C code) is used as it is, at the level it was granted; the
    /// application then finalises it, after dropping every handle.
    ///
    /// # Errors
    /// The library grants only `FUNNELED` or `SINGLE` (the tracker's aggregation thread makes
    /// MPI calls beside the training thread; the message names the setting that fixes it),
    /// MPI was already finalised, or [`EZPZ_MPI_THREADING`] is not a level.
    pub fn init() -> Result<Mpi> {
        let requested = requested_threading()?;
        let (universe, threading) = match ::mpi::initialize_with_threading(requested) {
            Some((universe, threading)) => (Some(universe), threading),
            None if ::mpi::environment::is_finalized() => {
                return Err(Error::Invalid {
                    what: "MPI initialisation",
                    message: "MPI was finalised already in this process; it cannot be \
                              initialised again"
                        .into(),
                })
            }
            None => (None, ::mpi::environment::threading_support()),
        };
        if threading < Threading::Serialized {
            return Err(Error::Invalid {
                what: "MPI initialisation",
                message: format!(
                    "the MPI library grants only {threading:?} threading, and ezpz needs at \
                     least Serialized (the tracker's aggregation thread calls MPI beside the \
                     training thread, one call at a time). Ask the library for more: \
                     MPICH_MAX_THREAD_SAFETY=multiple (Cray MPICH, MPICH), \
                     I_MPI_LIBRARY_KIND=release_mt (Intel MPI); with OpenMPI use a build with \
                     thread support. {EZPZ_MPI_THREADING}, if set, must not ask for less than \
                     serialized{}",
                    if universe.is_none() {
                        "; MPI was initialised by the application: request \
                         MPI_THREAD_SERIALIZED or MULTIPLE there"
                    } else {
                        ""
                    }
                ),
            });
        }
        if threading < Threading::Multiple {
            SERIALIZE.store(true, Ordering::Release);
        }
        let world = SimpleCommunicator::world();
        let (rank, size) = {
            let _mpi = lock();
            (world.rank(), world.size())
        };
        let rank = RankInfo::from_env().with_rank(rank as usize, size as usize);
        Ok(Mpi {
            inner: Arc::new(Inner {
                world,
                rank,
                threading,
                _universe: universe,
            }),
        })
    }

    /// Whether ezpz serialises its MPI calls behind [`lock`] (the library granted less than
    /// `MULTIPLE`).
    pub fn is_serialized(&self) -> bool {
        self.inner.threading < Threading::Multiple
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
        let comm = {
            let _mpi = lock();
            self.inner.world.duplicate()
        };
        Communicator {
            comm: ManuallyDrop::new(comm),
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
    // Freed (`MPI_Comm_free`, under `lock()`) in `Drop`, before the handle that may finalise
    // MPI.
    comm: ManuallyDrop<SimpleCommunicator>,
    _mpi: Mpi,
}

impl Drop for Communicator {
    fn drop(&mut self) {
        let _mpi = lock();
        // SAFETY: dropped exactly once, here; never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.comm) };
    }
}

// SAFETY: as for `Inner`: the library synchronises calls under MPI_THREAD_MULTIPLE, `lock()`
// below it; the handle is freed exactly once, in `Drop`, before finalisation.
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
        let _mpi = lock();
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
