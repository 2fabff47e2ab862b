//! # Distributed Vision Transformer — the main job
//!
//! Trains a ViT with burn's `SupervisedTraining`, tracked by ezpz (CSV, JSONL, TensorBoard,
//! MLflow, W&B), on synthetic images (default), MNIST or CIFAR-10:
//!
//! ```text
//! cargo run --release --example vit
//! cargo build --release --example vit --features mpi
//! mpirun -np 4 target/release/examples/vit --max-iters 200
//! ```
//!
//! Under `mpirun` every rank trains on its own shard, gradients are averaged across ranks each
//! step, rank 0 writes, and every metric also gets its cross-rank `/mean|min|max|std`. At the
//! end every rank logs `dist/param_checksum`; the run fails unless it is identical everywhere.
//! See `docs/vit.md`.

mod checksum;
mod cli;
mod data;
mod device;
mod dist;
#[path = "../shared/features.rs"]
mod features;
mod metrics;
mod model;
mod overhead;
mod plan;
mod progress;
mod schedule;
mod summary;
mod timing;
mod train;

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::optim::AdamWConfig;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use ezpz_burn::{Attach, SupervisedTrainingExt, Watch};
use ezpz_tracker::{Tracker, TrackerBuilder};

use crate::cli::{Args, RunConfig};
use crate::data::{ImageBatcher, Splits, SyntheticSpec};
use crate::dist::Dist;
use crate::metrics::{StepFigure, StepMetric};
use crate::plan::Plan;
use crate::progress::{Mode, Progress, SharedResults};
use crate::schedule::WarmupCosine;
use crate::train::{Classifier, StepHooks};

fn main() -> ExitCode {
    // Warnings (ezpz's included) on stderr; `RUST_LOG` refines.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Args::parse_with_features().resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vit: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: RunConfig) -> Result<ExitCode, Box<dyn Error>> {
    let dist = Dist::init()?;
    let rank = dist.rank().clone();
    let world = rank.world_size;
    let device = config.device.device(rank.local_rank)?;

    let splits = load_data(&config, world)?;
    let plan = Plan::new(
        splits.train.len(),
        splits.valid.len(),
        world,
        config.batch_size,
        config.epochs,
        config.max_iters,
        config.warmup,
    )?;
    let tracker = build_tracker(&config, &dist, plan)?;

    // Same seed everywhere, and rank 0's parameters broadcast anyway: identical replicas.
    device.seed(config.seed);
    let vit = dist.broadcast(config.model.init(&device.clone().autodiff()))?;
    let num_params = burn::module::Module::num_params(&vit);
    let watch = Watch::new(&tracker).log_freq(config.watch_freq as u64);
    let hooks = StepHooks {
        clock: Default::default(),
        dist: dist.clone(),
        watch: watch.clone(),
    };
    let model = Classifier::new(vit, hooks);
    if rank.is_main() {
        let m = &config.model;
        println!(
            "ViT: {num_params} params, {} tokens × {} wide, depth {}; {}; {} step(s) × {} epoch(s), batch {} × {world} rank(s) on {:?}",
            m.num_tokens(),
            m.embed_dim(),
            m.depth,
            splits.source,
            plan.steps_per_epoch,
            plan.epochs,
            config.batch_size,
            config.device,
        );
    }

    let batcher = ImageBatcher {
        channels: splits.channels,
        size: splits.image_size,
    };
    let train_loader = DataLoaderBuilder::new(batcher)
        .batch_size(config.batch_size)
        .shuffle(config.seed.wrapping_add(rank.rank as u64))
        .build(dist.shard(splits.train, Some(plan.train_per_rank)));
    let valid_loader = DataLoaderBuilder::new(batcher)
        .batch_size(config.batch_size)
        .build(dist.shard(splits.valid, None));

    let optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let schedule = WarmupCosine::new(
        config.lr,
        config.min_lr_ratio,
        plan.warmup_steps,
        plan.total_steps,
    );
    let forward_flops = config.model.forward_flops();
    let mode = Mode::detect(rank.is_main(), config.log_freq, plan.total_steps);
    let results = SharedResults::default();
    // burn writes nothing there: its metric files are off (ezpz's HistoryLogger answers
    // burn's reads), checkpoints are off and its application log is not installed (main
    // owns `tracing`).
    let burn_dir = tracker
        .outdir()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    let training = SupervisedTraining::new(&burn_dir, train_loader, valid_loader)
        .metrics((LossMetric::new(), AccuracyMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(StepMetric::new(StepFigure::StepTime))
        .metric_train_numeric(StepMetric::new(StepFigure::Throughput))
        .metric_train_numeric(StepMetric::new(StepFigure::Tflops { forward_flops }))
        .with_application_logger(None)
        .num_epochs(plan.epochs)
        .with_ezpz(
            Attach::new(&tracker)
                .finish_at_end(false)
                .burn_files(false)
                .watch(&watch)
                .renderer(Box::new(Progress::new(
                    mode,
                    config.batch_size,
                    results.clone(),
                ))),
        );

    let started = Instant::now();
    let result = training.launch(Learner::new(model, optim, schedule));
    let train_secs = started.elapsed().as_secs_f64();
    if let Some(e) = &result.error {
        return Err(format!("training failed: {e}").into());
    }

    // Every rank logs its checksum (the tracker adds the cross-rank /mean|min|max|std) and
    // checks all of them: equal parameters everywhere, or a failed run on every rank.
    // Before the tracker finishes, while its threads are still there to be measured.
    let overhead = overhead::Overhead::measure();
    let checksum = checksum::param_checksum(&result.model);
    tracker.log_at(plan.total_steps as u64, [("dist/param_checksum", checksum)]);
    let (identical, stats) = dist::replicas_identical(&dist.gather(checksum));
    let tracking = tracker.finish()?;
    if rank.is_main() {
        let results = results.lock().unwrap_or_else(|e| e.into_inner());
        summary::print(
            &summary::Outcome {
                steps: plan.total_steps,
                images: plan.total_steps * config.batch_size * world,
                train_secs,
                train_only_secs: results.train_secs,
                world_size: world,
                valid_accuracy: results.valid.get("Accuracy").copied(),
                valid_loss: results.valid.get("Loss").copied(),
                checksum,
            },
            &tracking,
        );
    }
    if let (true, Some(o)) = (rank.is_main(), overhead) {
        println!(
            "tracking cpu: {:.2}% of {:.2} s process CPU (ezpz threads {:.3} s, ezpz hooks on burn's threads {:.3} s)",
            o.percent(),
            o.process,
            o.ezpz_threads,
            o.hooks
        );
    }
    if !identical {
        eprintln!(
            "vit: rank {}: the replicas diverged: dist/param_checksum min {:e} max {:e} std {:e}",
            rank.rank, stats.min, stats.max, stats.std
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The dataset, with synthetic images enough for one epoch of the planned steps on every rank.
fn load_data(config: &RunConfig, world: usize) -> Result<Splits, Box<dyn Error>> {
    let steps = config.max_iters.unwrap_or(1).div_ceil(config.epochs);
    let spec = SyntheticSpec {
        image_size: config.model.image_size,
        num_classes: config.model.num_classes,
        train_len: steps * config.batch_size * world,
        valid_len: config.valid_size,
        noise: config.noise,
        seed: config.seed,
    };
    let splits = data::load(config.dataset, &config.data_dir, spec)?;
    if splits.num_classes > config.model.num_classes {
        return Err(format!(
            "the data has {} classes but --num-classes is {}",
            splits.num_classes, config.model.num_classes
        )
        .into());
    }
    Ok(splits)
}

/// The tracker: backends and outdir from the flags (else the environment and defaults), the
/// run's configuration, and cross-rank aggregation under MPI.
fn build_tracker(config: &RunConfig, dist: &Dist, plan: Plan) -> Result<Tracker, Box<dyn Error>> {
    let rank = dist.rank();
    let mut builder = TrackerBuilder::new()
        .project(&config.project)
        .config(serde_json::json!({
            "args": config,
            "plan": plan,
            "world_size": rank.world_size,
            "hostname": rank.hostname,
        }));
    if let Some(names) = &config.backends {
        builder = builder.backends(names);
    }
    if let Some(dir) = &config.outdir {
        builder = builder.outdir(dir);
    }
    Ok(dist.tracker(builder).build()?)
}
