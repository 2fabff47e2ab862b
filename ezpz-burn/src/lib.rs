//! # ezpz-burn
//!
//! burn 0.22 integration for [`ezpz_tracker`]: burn's metrics and training progress go to a
//! [`Tracker`](ezpz_tracker::Tracker) (CSV, JSONL, TensorBoard, MLflow, W&B, …) with one line
//! on a `SupervisedTraining`, and [`watch`](Watch) logs parameter and gradient norms of any
//! model on any device with three.
//!
//! ## Quick start
//!
//! The code of `examples/learner.rs` (a two-layer MLP on a synthetic regression task) without
//! its argument parsing; the lines marked `ezpz` are all it takes:
//!
//! ```no_run
//! use burn::data::dataloader::{batcher::Batcher, DataLoaderBuilder};
//! use burn::data::dataset::InMemDataset;
//! use burn::nn::loss::{MseLoss, Reduction};
//! use burn::nn::{Linear, LinearConfig, Relu};
//! use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
//! use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
//! use burn::prelude::*;
//! use burn::train::metric::LossMetric;
//! use burn::train::{InferenceStep, Learner, RegressionOutput, SupervisedTraining};
//! use burn::train::{TrainOutput, TrainStep};
//! use ezpz_burn::{SupervisedTrainingExt, Watch};
//! use ezpz_tracker::TrackerBuilder;
//!
//! #[derive(Module, Debug)]
//! struct Mlp {
//!     hidden: Linear,
//!     out: Linear,
//!     act: Relu,
//! }
//!
//! #[derive(Clone, Debug)]
//! struct Batch {
//!     x: Tensor<2>,
//!     y: Tensor<2>,
//! }
//!
//! #[derive(Clone)]
//! struct PointBatcher;
//!
//! impl Batcher<[f32; 3], Batch> for PointBatcher {
//!     fn batch(&self, items: Vec<[f32; 3]>, device: &Device) -> Batch {
//!         let n = items.len();
//!         let x: Vec<f32> = items.iter().flat_map(|p| [p[0], p[1]]).collect();
//!         let y: Vec<f32> = items.iter().map(|p| p[2]).collect();
//!         Batch {
//!             x: Tensor::from_data(TensorData::new(x, [n, 2]), device),
//!             y: Tensor::from_data(TensorData::new(y, [n, 1]), device),
//!         }
//!     }
//! }
//!
//! impl Mlp {
//!     fn regression(&self, batch: Batch) -> RegressionOutput {
//!         let out = self.out.forward(self.act.forward(self.hidden.forward(batch.x)));
//!         let loss = MseLoss::new().forward(out.clone(), batch.y.clone(), Reduction::Mean);
//!         RegressionOutput::new(loss, out, batch.y)
//!     }
//! }
//!
//! impl TrainStep for Mlp {
//!     type Input = Batch;
//!     type Output = RegressionOutput;
//!     fn step(&self, batch: Batch) -> TrainOutput<RegressionOutput> {
//!         let item = self.regression(batch);
//!         TrainOutput::new(self, item.loss.backward(), item)
//!     }
//!     fn optimize(self, optim: &mut ModuleOptimizer, lr: ModuleLearningRate, grads: GradientsParams) -> Self {
//!         ezpz_burn::observe(&self, &grads);                       // ezpz: watch, line 2 of 3
//!         optim.step(lr, self, grads)                              // ezpz: watch, line 3 of 3
//!     }
//! }
//!
//! impl InferenceStep for Mlp {
//!     type Input = Batch;
//!     type Output = RegressionOutput;
//!     fn step(&self, batch: Batch) -> RegressionOutput {
//!         self.regression(batch)
//!     }
//! }
//!
//! fn points(n: usize, seed: u64) -> Vec<[f32; 3]> {
//!     // A deterministic cloud around y = 2·x0 − x1 + 0.5.
//!     let mut state = seed;
//!     let mut next = move || {
//!         state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
//!         (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
//!     };
//!     (0..n)
//!         .map(|_| {
//!             let (a, b, noise) = (next(), next(), next());
//!             [a, b, 2.0 * a - b + 0.5 + 0.05 * noise]
//!         })
//!         .collect()
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let outdir = std::path::Path::new("outputs/learner");
//!     let device = Device::flex().autodiff();
//!     let tracker = TrackerBuilder::new().project("ezpz-burn-learner").outdir(outdir).build()?;
//!     Watch::new(&tracker).log_freq(5).install();                 // ezpz: watch, line 1 of 3
//!
//!     let train = DataLoaderBuilder::new(PointBatcher).batch_size(16).shuffle(7)
//!         .build(InMemDataset::new(points(256, 1)));
//!     let valid = DataLoaderBuilder::new(PointBatcher).batch_size(16)
//!         .build(InMemDataset::new(points(64, 2)));
//!     let model = Mlp {
//!         hidden: LinearConfig::new(2, 16).init(&device),
//!         out: LinearConfig::new(16, 1).init(&device),
//!         act: Relu::new(),
//!     };
//!     let result = SupervisedTraining::new(outdir.join("burn"), train, valid)
//!         .metrics((LossMetric::new(),))
//!         .num_epochs(2)
//!         .with_ezpz(&tracker)                                     // ezpz: the one line
//!         .launch(Learner::new(model, SgdConfig::new().init(), 0.05));
//!     println!("{}", result.model);
//!     Ok(())
//! }
//! ```
//!
//! `examples/learner.rs` adds `--outdir DIR --epochs N --device NAME --backends LIST` around
//! the same code: `cargo run --example learner -- --outdir /tmp/run --epochs 2`. Initialise the
//! model on an autodiff device (`device.autodiff()`), as here.
//!
//! ## What `with_ezpz` does
//!
//! [`with_ezpz`](SupervisedTrainingExt::with_ezpz) installs an [`EzpzRenderer`] in burn's
//! renderer slot, wrapping burn's default renderer (or yours, [`Attach::renderer`]): burn calls
//! its renderer on one thread, in order, with every metric value, every batch boundary and
//! every split's end (burn-train `src/metric/processor/full.rs`). It registers no metric
//! logger, so burn keeps its own `FileMetricLogger` (`.summary()`, and the metric history
//! that early stopping and `MetricCheckpointingStrategy` read, also across a resume);
//! [`Attach::burn_files(false)`](Attach::burn_files) turns those files off and registers a
//! [`HistoryLogger`] instead. The progress-logger slot stays yours. By default the tracker is
//! finished when training ends ([`Attach::finish_at_end`]).
//!
//! **One step axis.** Every row is logged at the global step: the optimizer step, counted
//! once per optimizer update (a batch with the default single-device strategy; say
//! [`Attach::grads_accumulation`] and [`Attach::devices`] when burn steps less often), and
//! every row carries `epoch`:
//!
//! | key | step | from |
//! |---|---|---|
//! | `train/<metric>`, `train/items_per_sec` | the optimizer step of the batch (mean over its batches with accumulation or several devices) | every burn training metric |
//! | `train/epoch/<metric>`, `train/epoch/duration_s`, `train/epoch/items_per_sec` | the last step of the epoch | burn's end-of-epoch value |
//! | `valid/epoch/<metric>`, `valid/epoch/duration_s`, `valid/epoch/items_per_sec` | the same step (validation runs after it) | burn's end-of-epoch value |
//! | `test/<metric>` ([`EvaluatorBuilderExt::with_ezpz`]) | the run's current step | the mean over the test split, as burn computes it |
//! | `params/…`, `grads/…` ([`Watch`]) | the optimizer step it observed | `TrainStep::optimize` |
//! | config `burn.metrics.<metric>` (name, unit, `higher_is_better`), `burn.total_epochs`, `burn.starting_step`, `burn.epochs_completed`, `burn.last_step`, … | — | burn's metric definitions and progress |
//!
//! The end of a split is burn's `end_split` call, whatever entries the metrics report (a
//! split with only AUROC is fine). Validation values are logged once per epoch: burn's
//! per-batch validation values are running values of one fixed model, and all would share
//! the step. `<metric>` is burn's metric name in lower case, other characters than letters,
//! digits, `-` and `.` replaced by `_` ([`key_segment`]): `Loss` → `loss`, `Learning Rate` →
//! `learning_rate`.
//!
//! **Resume.** A training resumed with burn's `.checkpoint(k)` continues the step axis: after
//! the last step of a resumed tracker (`TrackerBuilder::resume(true)`), and at least after the
//! optimizer steps of the epochs before `k` (counted from the batches per epoch); burn's
//! files (or the [`HistoryLogger`], from `metrics.jsonl`) answer for the epochs before the
//! resume, so `MetricCheckpointingStrategy` keeps the best checkpoint.
//!
//! ## Watch
//!
//! ```no_run
//! # fn example(tracker: &ezpz_tracker::Tracker) {
//! ezpz_burn::Watch::new(tracker).log_freq(100).hist_freq(1000).install();
//! # }
//! ```
//! then, in `impl TrainStep for Model`, the two-line `optimize` of the Quick start:
//! [`observe`] before `optim.step(..)`. burn calls `optimize` with the final gradients (after
//! accumulation), so the steps are optimizer steps; its sharded multi-device optimizer calls
//! `optimize_multi` instead, where `observe` takes the `MultiGradientsParams` the same way.
//! Each logged step reads all norms back from the device in one transfer; histograms are
//! binned on the device (64 bins) and only the bins join that transfer. Keys:
//! `params/norm/<path>`, `grads/norm/<path>`,
//! `params/global_norm`, `grads/global_norm`, histograms `params/hist/<path>` and
//! `grads/hist/<path>`, where `<path>` is the module path (`encoder.layers.0.mha.query.weight`).
//! A parameter without gradient (frozen) has no `grads/…` entry. Without a learner, call
//! [`Watch::observe`] after `backward`, or get the numbers with [`norms`].
//!
//! ## Distributed (MPI)
//!
//! With the `mpi` feature, [`ddp::DataParallel`] trains one model replica per MPI rank:
//! rank 0's initial parameters are broadcast to every rank (`broadcast_module`), each step's
//! gradients are averaged across ranks with one packed all-reduce (`all_reduce_grads`, called
//! from `TrainStep::optimize`), each rank reads its own shard of the data (`shard`, a
//! [`ddp::RankShard`] over any burn `Dataset`), and `grad_norm_stats` turns every rank's local
//! gradient norm into `grads/global_norm/mean|min|max|std` for [`Watch::observe_with`]. It
//! shares the program's one `ezpz_tracker::mpi::Mpi` handle with the tracker:
//!
//! ```no_run
//! # #[cfg(feature = "mpi")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use burn::data::dataset::InMemDataset;
//! # use burn::nn::LinearConfig;
//! # use burn::prelude::*;
//! use ezpz_burn::ddp::DataParallel;
//! use ezpz_tracker::{mpi::Mpi, TrackerBuilder};
//!
//! let device = Device::flex().autodiff();
//! let mpi = Mpi::init()?;
//! let tracker = TrackerBuilder::new().mpi(&mpi).build()?;     // aggregates across ranks
//! let ddp = DataParallel::new(&mpi);
//! let model = ddp.broadcast_module(LinearConfig::new(4, 1).init(&device))?;
//! let train = ddp.shard(InMemDataset::new(vec![[0f32; 5]; 64]));
//! // in TrainStep::optimize: let grads = ddp.all_reduce_grads(&self, grads);
//! # let _ = (tracker, model, train);
//! # Ok(()) }
//! # #[cfg(not(feature = "mpi"))]
//! # fn main() {}
//! ```
//!
//! Build with `--features mpi` (needs an MPI library, e.g. OpenMPI) and start with
//! `mpirun -np 4 target/release/my-trainer`; `docs/mpi.md` lists the OpenMPI settings for
//! root and oversubscribed runs.
//!
//! ## Cargo features
//!
//! | feature | adds |
//! |---|---|
//! | `ndarray` | burn's NdArray CPU backend (deprecated by burn 0.22; the test suite runs on it). [`cpu_device`] picks it when on, flex otherwise. |
//! | `wgpu` | burn's wgpu backend (Vulkan, Metal, DX12); runs on Mesa's lavapipe without a GPU. |
//! | `cuda` | burn's CUDA backend. Its build downloads LLVM, so it cannot be built offline. |
//! | `mpi` | cross-rank aggregation and data parallelism over MPI. |
//! | `tensorboard`, `wandb`, `mlflow`, `report` (default on) | the tracker's backends and its end-of-run report's pages and plots, forwarded to `ezpz-tracker`. |
//!
//! burn's pure-Rust `flex` CPU backend is always built.
#![warn(missing_docs)]

mod aggregate;
mod attach;
mod cost;
#[cfg(any(feature = "mpi", test))]
pub mod ddp;
mod device;
mod error;
mod logger;
mod record;
mod renderer;
#[cfg(test)]
mod test_support;
mod watch;

/// The tracker crate, re-exported: depend on `ezpz-burn` alone and name
/// `ezpz_burn::tracker::TrackerBuilder`.
pub use ezpz_tracker as tracker;

pub use attach::{Attach, EvaluatorBuilderExt, SupervisedTrainingExt};
pub use cost::hook_cpu_time;
pub use device::{
    cpu_device, cpu_device_name, device_by_name, device_for_local_rank, device_names, gpu_index,
};
pub use error::{Error, Result};
pub use logger::keys::{key_segment, split_prefix};
pub use logger::HistoryLogger;
pub use renderer::EzpzRenderer;
pub use watch::{
    norms, observe, readback_bytes, Gradients, Norms, ParamNorm, Watch, WatchLog, DEFAULT_LOG_FREQ,
};
