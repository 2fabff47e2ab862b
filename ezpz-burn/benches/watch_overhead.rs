//! Cost of `watch` on a training step: a small MLP's forward, backward and SGD step, without
//! watch (the anchor), with `watch` logging norms every step, with histograms every step, and
//! with a naive watch reading one norm per parameter (one device sync each).
//!
//! `cargo bench -p ezpz-burn --bench watch_overhead [--features wgpu]`; the device is
//! `EZPZ_BENCH_DEVICE` (`flex`, `ndarray`, `wgpu`, …; default: `ezpz_burn::cpu_device()`),
//! steps per round `EZPZ_BENCH_STEPS` (200), rounds `EZPZ_BENCH_ROUNDS` (5, best kept).
//! Prints `RESULT <name> <value>` lines; ratios are against the anchor of the same run.

use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use ezpz_burn::Watch;
use ezpz_tracker::{MemoryBackend, Tracker, TrackerBuilder};

#[derive(Module, Debug)]
struct Mlp {
    layers: Vec<Linear>,
    head: Linear,
}

impl Mlp {
    fn new(width: usize, depth: usize, device: &Device) -> Self {
        Mlp {
            layers: (0..depth)
                .map(|_| LinearConfig::new(width, width).init(device))
                .collect(),
            head: LinearConfig::new(width, 1).init(device),
        }
    }

    fn loss(&self, x: Tensor<2>) -> Tensor<1> {
        let h = self
            .layers
            .iter()
            .fold(x, |h, l| burn::tensor::activation::relu(l.forward(h)));
        self.head.forward(h).powi_scalar(2).mean()
    }
}

/// The design `watch` replaces: one read (one sync) per parameter.
struct NaiveNorms<'a> {
    grads: &'a GradientsParams,
    out: Vec<f64>,
}

impl ModuleVisitor for NaiveNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let p = param.val().inner().square().sum().into_scalar::<f64>();
        self.out.push(p.sqrt());
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.out.push(g.square().sum().into_scalar::<f64>().sqrt());
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Watch,
    Histograms,
    Naive,
}

fn run(mode: Mode, steps: usize, device: &Device, tracker: &Tracker) -> f64 {
    let mut model = Mlp::new(128, 4, device);
    let mut optim: ModuleOptimizer = SgdConfig::new().init();
    let watch = match mode {
        Mode::Histograms => Watch::new(tracker).log_freq(1).hist_freq(1),
        _ => Watch::new(tracker).log_freq(1),
    };
    let x = Tensor::<2>::random([64, 128], burn::tensor::Distribution::Default, device);
    let mut elapsed = 0.0;
    for i in 0..steps + 3 {
        let start = Instant::now();
        let loss = model.loss(x.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        match mode {
            Mode::Plain => {}
            Mode::Watch | Mode::Histograms => watch.observe(&model, &grads),
            Mode::Naive => {
                let mut naive = NaiveNorms {
                    grads: &grads,
                    out: Vec::new(),
                };
                model.visit(&mut naive);
                tracker.log(
                    naive
                        .out
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("n{i}"), *v))
                        .collect::<Vec<_>>(),
                );
            }
        }
        model = optim.step(1e-3, model, grads);
        // Wait for the step's work so every mode is timed to completion.
        let _ = model.head.weight.val().sum().into_scalar::<f64>();
        if i >= 3 {
            elapsed += start.elapsed().as_secs_f64();
        }
    }
    elapsed / steps as f64
}

fn main() {
    let name = std::env::var("EZPZ_BENCH_DEVICE").ok();
    let device = match name.as_deref() {
        Some(n) => ezpz_burn::device_by_name(n).unwrap_or_else(|e| panic!("{e}")),
        None => ezpz_burn::cpu_device(),
    }
    .autodiff();
    let steps: usize = std::env::var("EZPZ_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let memory = MemoryBackend::new();
    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(memory)
        .build()
        .expect("a memory-only tracker");
    let params = Mlp::new(128, 4, &device).num_params();
    println!("device {device:?}, {params} parameters, {steps} steps per mode");
    let rounds: usize = std::env::var("EZPZ_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // Warm every mode up once (allocator pools, kernel caches), then interleave rounds so
    // drift in machine load hits every mode alike; keep each mode's best round.
    let modes = [Mode::Plain, Mode::Watch, Mode::Histograms, Mode::Naive];
    for mode in modes {
        run(mode, steps / 5 + 1, &device, &tracker);
    }
    let mut best = [f64::INFINITY; 4];
    for _ in 0..rounds {
        for (i, mode) in modes.iter().enumerate() {
            best[i] = best[i].min(run(*mode, steps, &device, &tracker));
        }
    }
    let [plain, watch, hist, naive] = best;
    println!("RESULT step_ms_plain {:.4}", plain * 1e3);
    println!("RESULT step_ms_watch {:.4}", watch * 1e3);
    println!("RESULT step_ms_watch_hist {:.4}", hist * 1e3);
    println!("RESULT step_ms_naive_per_param_reads {:.4}", naive * 1e3);
    println!("RESULT watch_overhead_ratio {:.4}", watch / plain);
    println!("RESULT watch_hist_overhead_ratio {:.4}", hist / plain);
    println!("RESULT naive_overhead_ratio {:.4}", naive / plain);
    let _ = tracker.finish();
}
