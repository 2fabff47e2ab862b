//! The smallest complete burn `SupervisedTraining` with ezpz attached: burn's metrics and
//! progress through one `.with_ezpz(&tracker)` line, and `watch` (parameter and gradient
//! norms) through three, on a synthetic regression task (a two-layer MLP learning
//! y = 2·x0 − x1 + 0.5).
//!
//! ```text
//! cargo run --example learner -- --outdir /tmp/learner --epochs 2 [--device flex] [--backends csv,jsonl]
//! ```
//!
//! `DIR/metrics.csv` then has `train/loss`, `valid/loss`, `train/epoch/loss`, progress columns
//! and the watch columns (`grads/global_norm`, `grads/norm/hidden.weight`, …); burn's own
//! artifacts go to `DIR/burn`. The crate docs of `ezpz-burn` show the same code.

use std::path::{Path, PathBuf};

use burn::data::dataloader::{batcher::Batcher, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::nn::loss::{MseLoss, Reduction};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::train::metric::LossMetric;
use burn::train::{InferenceStep, Learner, RegressionOutput, SupervisedTraining};
use burn::train::{TrainOutput, TrainStep};
use clap::Parser;
use ezpz_burn::{SupervisedTrainingExt, Watch};
use ezpz_tracker::TrackerBuilder;

#[derive(Module, Debug)]
struct Mlp {
    hidden: Linear,
    out: Linear,
    act: Relu,
}

#[derive(Clone, Debug)]
struct Batch {
    x: Tensor<2>,
    y: Tensor<2>,
}

#[derive(Clone)]
struct PointBatcher;

impl Batcher<[f32; 3], Batch> for PointBatcher {
    fn batch(&self, items: Vec<[f32; 3]>, device: &Device) -> Batch {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|p| [p[0], p[1]]).collect();
        let y: Vec<f32> = items.iter().map(|p| p[2]).collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, 2]), device),
            y: Tensor::from_data(TensorData::new(y, [n, 1]), device),
        }
    }
}

impl Mlp {
    fn regression(&self, batch: Batch) -> RegressionOutput {
        let out = self
            .out
            .forward(self.act.forward(self.hidden.forward(batch.x)));
        let loss = MseLoss::new().forward(out.clone(), batch.y.clone(), Reduction::Mean);
        RegressionOutput::new(loss, out, batch.y)
    }
}

impl TrainStep for Mlp {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> TrainOutput<RegressionOutput> {
        let item = self.regression(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        ezpz_burn::observe(&self, &grads); // ezpz: watch, line 2 of 3
        optim.step(lr, self, grads) // ezpz: watch, line 3 of 3
    }
}

impl InferenceStep for Mlp {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> RegressionOutput {
        self.regression(batch)
    }
}

/// `n` deterministic points around y = 2·x0 − x1 + 0.5.
fn points(n: usize, seed: u64) -> Vec<[f32; 3]> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    (0..n)
        .map(|_| {
            let (a, b, noise) = (next(), next(), next());
            [a, b, 2.0 * a - b + 0.5 + 0.05 * noise]
        })
        .collect()
}

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "A burn SupervisedTraining with ezpz tracking attached")]
pub struct Args {
    /// Where the tracker writes (metrics.csv, metrics.jsonl, …); burn's artifacts go to DIR/burn.
    #[arg(long, default_value = "outputs/learner")]
    pub outdir: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// burn device: flex (default), or ndarray / wgpu / cuda when built with that feature.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Tracker backends (default: EZPZ_TRACKER_BACKENDS, else csv, jsonl and the others
    /// configured by the environment).
    #[arg(long)]
    pub backends: Option<String>,
}

/// Trains and tracks; returns the tracker's output directory.
pub fn run(args: &Args) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let device = ezpz_burn::device_by_name(&args.device)?.autodiff();
    let mut builder = TrackerBuilder::new()
        .project("ezpz-burn-learner")
        .outdir(&args.outdir)
        .config(serde_json::json!({"epochs": args.epochs, "device": args.device, "lr": 0.05}));
    if let Some(backends) = &args.backends {
        builder = builder.backends(backends.as_str());
    }
    let tracker = builder.build()?;
    Watch::new(&tracker).log_freq(5).install(); // ezpz: watch, line 1 of 3

    let train = DataLoaderBuilder::new(PointBatcher)
        .batch_size(16)
        .shuffle(7)
        .build(InMemDataset::new(points(256, 1)));
    let valid = DataLoaderBuilder::new(PointBatcher)
        .batch_size(16)
        .build(InMemDataset::new(points(64, 2)));
    let model = Mlp {
        hidden: LinearConfig::new(2, 16).init(&device),
        out: LinearConfig::new(16, 1).init(&device),
        act: Relu::new(),
    };
    let burn_dir: &Path = &args.outdir.join("burn");
    let result = SupervisedTraining::new(burn_dir, train, valid)
        .metrics((LossMetric::new(),))
        .num_epochs(args.epochs)
        .with_ezpz(&tracker) // ezpz: the one line
        .launch(Learner::new(model, SgdConfig::new().init(), 0.05));
    if let Some(error) = result.error {
        return Err(format!("training failed: {error:?}").into());
    }
    // `with_ezpz` finished the tracker when training ended: this returns that summary.
    let summary = tracker.finish()?;
    Ok(summary.outdir.unwrap_or_else(|| args.outdir.clone()))
}

#[allow(dead_code)] // the root tests include this file as a module and call `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let outdir = run(&Args::parse())?;
    println!("wrote {}", outdir.display());
    Ok(())
}
