//! MPI (feature `mpi`): one explicit initialisation handle for the whole program, and the
//! cross-rank aggregator built on it.
//!
//! ```no_run
//! # fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use ezpz_tracker::{mpi::Mpi, TrackerBuilder};
//!
//! let mpi = Mpi::init()?;                       // once per process, before any other MPI use
//! let tracker = TrackerBuilder::new()
//!     .backends("csv")
//!     .outdir("outputs/mpi-run")
//!     .mpi(&mpi)                                // rank/world size + `key/mean|min|max|std`
//!     .build()?;
//! tracker.log([("loss", 1.0 + mpi.rank() as f64)]);   // no MPI call: aggregated on rank 0
//! tracker.finish()?;
//! # Ok(()) }                                    // MPI is finalised when the last user drops
//! ```
//!
//! MPI calls go through private duplicates of the world communicator
//! ([`Mpi::communicator`]), one per user (the aggregator, the data-parallel code), so the
//! tracker's aggregation thread and gradient all-reduces on the training thread never
//! interleave their collectives. The handle asks MPI for `MPI_THREAD_MULTIPLE`
//! ([`Mpi::threading`] says what the library granted); when the library grants only
//! `MPI_THREAD_SERIALIZED` (Cray MPICH's default), every ezpz MPI call takes one
//! process-wide lock ([`lock`]), so the program stays correct; `FUNNELED` and `SINGLE` are
//! refused by [`Mpi::init`] with the setting that fixes it.

#[cfg(feature = "mpi")]
mod aggregator;
#[cfg(feature = "mpi")]
mod handle;

#[cfg(feature = "mpi")]
pub use ::mpi::environment::Threading;
#[cfg(feature = "mpi")]
pub use aggregator::MpiAggregator;
#[cfg(feature = "mpi")]
pub use handle::{lock, Communicator, Mpi, MpiGuard};
