//! A tiny model with nested modules, a `Vec` of layers and a frozen layer, its data, and a
//! tracker with a `MemoryBackend`, shared by the integration tests.
#![allow(dead_code)]

use burn::data::dataloader::batcher::Batcher;
use burn::module::Param;
use burn::nn::loss::{MseLoss, Reduction};
use burn::nn::{Linear, LinearConfig};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::prelude::*;
use burn::train::{InferenceStep, RegressionOutput, TrainOutput, TrainStep};
use ezpz_burn::Watch;
use ezpz_tracker::{MemoryBackend, Tracker, TrackerBuilder};

pub const WIDTH: usize = 4;

#[derive(Module, Debug)]
pub struct Block {
    pub proj: Linear,
    pub gate: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub layers: Vec<Block>,
}

#[derive(Module, Debug)]
pub struct Net {
    pub encoder: Encoder,
    pub head: Linear,
    /// Used in the forward pass but frozen: it must get no gradient.
    pub frozen: Linear,
    /// Per-model watch (instead of the global one), so tests in one binary stay apart.
    #[module(skip)]
    pub watch: Option<Watch>,
}

impl Net {
    pub fn new(device: &Device, layers: usize) -> Self {
        Net {
            encoder: Encoder {
                layers: (0..layers)
                    .map(|i| Block {
                        proj: LinearConfig::new(WIDTH, WIDTH).init(device),
                        gate: Param::from_tensor(Tensor::<1>::full(
                            [WIDTH],
                            1.0 + i as f32,
                            device,
                        )),
                    })
                    .collect(),
            },
            head: LinearConfig::new(WIDTH, 1).init(device),
            frozen: LinearConfig::new(WIDTH, 1).init(device).no_grad(),
            watch: None,
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut h = x.clone();
        for block in &self.encoder.layers {
            let gate = block.gate.val().unsqueeze::<2>();
            h = burn::tensor::activation::tanh(block.proj.forward(h)) * gate;
        }
        self.head.forward(h) + self.frozen.forward(x)
    }

    pub fn regression(&self, batch: Batch) -> RegressionOutput {
        let out = self.forward(batch.x);
        let loss = MseLoss::new().forward(out.clone(), batch.y.clone(), Reduction::Mean);
        RegressionOutput::new(loss, out, batch.y)
    }
}

impl TrainStep for Net {
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
        if let Some(watch) = &self.watch {
            watch.observe(&self, &grads);
        }
        optim.step(lr, self, grads)
    }

    /// burn's multi-device strategy with `MultiDeviceOptim::OptimSharded` calls this.
    fn optimize_multi(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: MultiGradientsParams,
    ) -> Self {
        if let Some(watch) = &self.watch {
            watch.observe(&self, &grads);
        }
        optim.step_multi(lr, self, grads)
    }
}

impl InferenceStep for Net {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> RegressionOutput {
        self.regression(batch)
    }
}

#[derive(Clone, Debug)]
pub struct Batch {
    pub x: Tensor<2>,
    pub y: Tensor<2>,
}

#[derive(Clone)]
pub struct RowBatcher;

impl Batcher<[f32; WIDTH + 1], Batch> for RowBatcher {
    fn batch(&self, items: Vec<[f32; WIDTH + 1]>, device: &Device) -> Batch {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|r| r[..WIDTH].to_vec()).collect();
        let y: Vec<f32> = items.iter().map(|r| r[WIDTH]).collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, WIDTH]), device),
            y: Tensor::from_data(TensorData::new(y, [n, 1]), device),
        }
    }
}

/// `n` deterministic rows: inputs in [-1, 1), target a fixed linear function of them.
pub fn rows(n: usize, seed: u64) -> Vec<[f32; WIDTH + 1]> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    (0..n)
        .map(|_| {
            let mut row = [0.0; WIDTH + 1];
            for v in row.iter_mut().take(WIDTH) {
                *v = next();
            }
            row[WIDTH] = 0.7 * row[0] - 0.3 * row[1] + 0.2 * row[3] + 0.1;
            row
        })
        .collect()
}

pub fn memory_tracker() -> (Tracker, MemoryBackend) {
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(memory.clone())
        .build()
        .expect("a memory-only tracker");
    (tracker, memory)
}

/// L2 norm of a tensor computed on the host from its values.
pub fn host_norm<const D: usize>(t: Tensor<D>) -> f64 {
    t.into_data()
        .iter::<f64>()
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt()
}

pub fn assert_close(actual: f64, expected: f64, what: &str) {
    let tol = 1e-5 * expected.abs().max(1e-3);
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: {actual} vs {expected}"
    );
}

/// What a [`CaptureRenderer`] saw.
#[derive(Debug, Default)]
pub struct Captured {
    pub batches: usize,
    pub summary: Option<String>,
    pub ended: bool,
}

/// A renderer that records what burn (through ezpz's wrapper) calls it with.
#[derive(Clone, Default)]
pub struct CaptureRenderer(pub std::sync::Arc<std::sync::Mutex<Captured>>);

mod capture {
    use super::CaptureRenderer;
    use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
    use burn::train::metric::MetricDefinition;
    use burn::train::renderer::{
        EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
        MetricsRendererTraining,
    };
    use burn::train::LearnerSummary;

    impl CaptureRenderer {
        fn with(&self, f: impl FnOnce(&mut super::Captured)) {
            f(&mut self.0.lock().unwrap());
        }
    }

    impl MetricsRendererTraining for CaptureRenderer {
        fn update_train(&mut self, _state: MetricState) {}
        fn update_valid(&mut self, _state: MetricState) {}
        fn on_train_end(
            &mut self,
            summary: Option<LearnerSummary>,
        ) -> Result<(), Box<dyn core::error::Error>> {
            self.with(|c| c.summary = summary.map(|s| s.to_string()));
            Ok(())
        }
    }

    impl MetricsRendererEvaluation for CaptureRenderer {
        fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    }

    impl TrainingProgressLogger for CaptureRenderer {
        fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {}
        fn update_epoch(&mut self, _epoch: usize) {}
        fn start_split(&mut self, _split: &str, _total_items: usize) {}
        fn update_split(&mut self, _items_processed: usize) {
            self.with(|c| c.batches += 1);
        }
        fn end_split(&mut self) {}
        fn end(&mut self) {
            self.with(|c| c.ended = true);
        }
        fn log_event_training(&mut self, _event: String) {}
    }

    impl EvaluationProgressLogger for CaptureRenderer {
        fn start_global_progress(&mut self, _total_tests: usize) {}
        fn start_test(&mut self, _name: &str, _total_items: usize) {}
        fn update_test_progress(&mut self, _items_processed: usize) {}
        fn end_test(&mut self) {}
        fn end_global_progress(&mut self) {}
        fn log_event_evaluation(&mut self, _event: String) {}
    }

    impl MetricsRenderer for CaptureRenderer {
        fn manual_close(&mut self) {}
        fn register_metric(&mut self, _definition: MetricDefinition) {}
    }
}
