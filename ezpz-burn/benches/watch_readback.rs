//! Bytes `watch` reads back from the device on a histogram step of a ViT-B/16 (86.6 M
//! parameters, ImageNet head): measured with `ezpz_burn::readback_bytes()`, against what
//! reading every value back costs (the design before device binning: every parameter and
//! gradient value as f32, plus the squared sums).
//!
//! `cargo bench -p ezpz-burn --bench watch_readback [--features wgpu]`; the device is
//! `EZPZ_BENCH_DEVICE` (default: `ezpz_burn::cpu_device()`), the number of encoder blocks
//! `EZPZ_BENCH_DEPTH` (12). Prints `RESULT <name> <value>` lines. Not timed.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use ezpz_burn::Watch;
use ezpz_tracker::{MemoryBackend, TrackerBuilder};

/// Every parameter tensor of a model, flattened (`watch` flattens them anyway).
#[derive(Module, Debug)]
struct Flat {
    tensors: Vec<Param<Tensor<1>>>,
}

/// Element counts of ViT-B/16's parameters (224², 16² patches, 768 wide, 12 heads, MLP 3072,
/// 1000 classes) as burn's `TransformerEncoder` holds them.
fn vit_b_sizes(depth: usize) -> Vec<usize> {
    let (d, ff, tokens, classes) = (768, 3072, 197, 1000);
    let mut sizes = vec![d * 3 * 16 * 16, d, d, tokens * d];
    for _ in 0..depth {
        sizes.extend([d, d]); // norm 1
        for _ in 0..4 {
            sizes.extend([d * d, d]); // query, key, value, output
        }
        sizes.extend([d, d]); // norm 2
        sizes.extend([d * ff, ff, ff * d, d]); // MLP
    }
    sizes.extend([d, d, d * classes, classes]); // final norm, head
    sizes
}

fn main() {
    let device = match std::env::var("EZPZ_BENCH_DEVICE").ok().as_deref() {
        Some(n) => ezpz_burn::device_by_name(n).unwrap_or_else(|e| panic!("{e}")),
        None => ezpz_burn::cpu_device(),
    };
    let depth: usize = std::env::var("EZPZ_BENCH_DEPTH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let sizes = vit_b_sizes(depth);
    let random = |n: usize| Tensor::<1>::random([n], burn::tensor::Distribution::Default, &device);
    let model = Flat {
        tensors: sizes
            .iter()
            .map(|&n| Param::from_tensor(random(n)))
            .collect(),
    };
    let mut grads = GradientsParams::new();
    for p in &model.tensors {
        grads.register(p.id, random(p.val().dims()[0]));
    }
    let values: usize = 2 * sizes.iter().sum::<usize>();
    let vectors = 2 * sizes.len();
    println!(
        "device {device:?}: {} parameters in {} tensors, with gradients {values} values",
        values / 2,
        sizes.len()
    );

    let tracker = TrackerBuilder::new()
        .backends("none")
        .add_backend(MemoryBackend::new())
        .build()
        .expect("a memory-only tracker");
    let watch = Watch::new(&tracker).log_freq(1).hist_freq(1);
    let before = ezpz_burn::readback_bytes();
    watch.observe(&model, &grads);
    let after = ezpz_burn::readback_bytes() - before;
    let _ = tracker.finish();
    // Reading every value: one f32 squared sum per vector, then every value as f32.
    let raw = 4 * (vectors + values);
    println!("RESULT watch_hist_readback_bytes_raw_values {raw}");
    println!("RESULT watch_hist_readback_bytes_device_bins {after}");
    println!(
        "RESULT watch_hist_readback_ratio {:.0}",
        raw as f64 / after as f64
    );
}
