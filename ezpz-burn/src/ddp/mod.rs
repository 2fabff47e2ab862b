//! Data parallelism across MPI ranks (feature `mpi`) or in a world of one (always):
//! identical initial parameters, one packed gradient all-reduce per step, per-rank dataset
//! shards, an agreed stop, and cross-rank gradient-norm statistics.
//!
//! burn 0.22's own distributed training is single-process multi-GPU (NCCL); across processes
//! (and on the CPU backends) the gradients have to be exchanged by hand. [`DataParallel`] does
//! it at the [`GradientsParams`](burn::optim::GradientsParams) level, so it works with any
//! device and with burn's `SupervisedTraining` through `TrainStep::optimize`:
//!
//! ```no_run
//! # #[cfg(feature = "mpi")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use burn::data::dataset::InMemDataset;
//! use burn::nn::loss::{MseLoss, Reduction};
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
//! use burn::optim::{GradientsParams, ModuleOptimizer};
//! use burn::prelude::*;
//! use burn::train::{RegressionOutput, TrainOutput, TrainStep};
//! use ezpz_burn::ddp::DataParallel;
//! use ezpz_tracker::mpi::Mpi;
//!
//! #[derive(Module, Debug)]
//! struct MyModel {
//!     linear: Linear,
//!     #[module(skip)]
//!     ddp: DataParallel,                              // DataParallel::local(): one process
//! }
//!
//! impl TrainStep for MyModel {
//!     type Input = (Tensor<2>, Tensor<2>);
//!     type Output = RegressionOutput;
//!     fn step(&self, (x, y): (Tensor<2>, Tensor<2>)) -> TrainOutput<RegressionOutput> {
//!         let out = self.linear.forward(x);
//!         let loss = MseLoss::new().forward(out.clone(), y.clone(), Reduction::Mean);
//!         TrainOutput::new(self, loss.backward(), RegressionOutput::new(loss, out, y))
//!     }
//!     fn optimize(self, optim: &mut ModuleOptimizer, lr: ModuleLearningRate,
//!                 grads: GradientsParams) -> Self {
//!         let grads = self.ddp.clone().all_reduce_grads(&self, grads); // mean over ranks
//!         optim.step(lr, self, grads)
//!     }
//! }
//!
//! let mpi = Mpi::init()?;                             // once; share it with the tracker
//! let ddp = DataParallel::new(&mpi);                  // collective
//! let device = Device::flex().autodiff();
//! let linear = LinearConfig::new(4, 1).init(&device);
//! let model = ddp.broadcast_module(MyModel { linear, ddp: ddp.clone() })?; // rank 0's values
//! let train = ddp.shard(InMemDataset::new(vec![[0f32; 5]; 64])); // this rank's share of the data
//! # let _ = (model, train);
//! # Ok(()) }
//! # #[cfg(not(feature = "mpi"))]
//! # fn main() {}
//! ```
//!
//! The same code runs without MPI: `DataParallel::local()` is a world of one whose collectives
//! change nothing (build it when the program is not under `mpirun`, or without the `mpi`
//! feature). Every rank must run the same number of steps (shards of equal length give that;
//! [`DataParallel::agree_stop`] makes an early stop a common decision) and build the same
//! architecture ([`DataParallel::broadcast_module`] checks it once, on every rank). Only
//! trainable parameters' gradients travel; a parameter unused on some ranks is averaged as
//! PyTorch's `DistributedDataParallel` does (a zero there, divided by the world size).
//! Gradients travel as `f32` (exact for `f32`, `f16` and `bf16` models; an `f64` model's
//! gradients are rounded to `f32` for the exchange).

mod flat;
mod parallel;
mod shard;
mod world;

pub use parallel::DataParallel;
pub use shard::RankShard;
