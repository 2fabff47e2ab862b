//! Data parallelism across MPI ranks (feature `mpi`): identical initial parameters, one
//! packed gradient all-reduce per step, per-rank dataset shards, and cross-rank gradient-norm
//! statistics.
//!
//! burn 0.22's own distributed training is single-process multi-GPU (NCCL); across processes
//! (and on the CPU backends) the gradients have to be exchanged by hand. [`DataParallel`] does
//! it at the [`GradientsParams`](burn::optim::GradientsParams) level, so it works with any
//! device and with burn's `SupervisedTraining` through `TrainStep::optimize`:
//!
//! ```ignore
//! use ezpz_burn::ddp::DataParallel;
//! use ezpz_tracker::mpi::Mpi;
//!
//! #[derive(Module, Debug)]
//! struct MyModel {
//!     // ... layers ...
//!     #[module(skip)]
//!     ddp: Option<DataParallel>,                      // None: single process
//! }
//!
//! impl TrainStep for MyModel {
//!     // ... type Input, type Output, fn step(..) as usual ...
//!     fn optimize(self, optim: &mut ModuleOptimizer, lr: ModuleLearningRate,
//!                 grads: GradientsParams) -> Self {
//!         let grads = match &self.ddp {
//!             Some(ddp) => ddp.all_reduce_grads(&self, grads),   // mean over ranks
//!             None => grads,
//!         };
//!         optim.step(lr, self, grads)
//!     }
//! }
//!
//! let mpi = Mpi::init()?;                             // once; share it with the tracker
//! let ddp = DataParallel::new(&mpi);                  // collective
//! let model = ddp.broadcast_module(config.init(&device, Some(ddp.clone())))?; // rank 0's values
//! let train = ddp.shard(train_dataset);               // this rank's share of the data
//! ```
//!
//! Every rank must run the same number of steps (shards of equal length give that) and build
//! the same architecture ([`DataParallel::broadcast_module`] checks it once, on every rank).
//! Gradients travel as `f32` (exact for `f32`, `f16` and `bf16` models; an `f64` model's
//! gradients are rounded to `f32` for the exchange).

mod flat;
mod shard;

pub use shard::RankShard;

#[cfg(feature = "mpi")]
mod parallel;
#[cfg(feature = "mpi")]
pub use parallel::DataParallel;
