//! `watch` against norms computed by hand from the tensors' values.

mod common;

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::{assert_close, host_norm, memory_tracker, Net, WIDTH};
use ezpz_burn::{norms, Watch};
use ezpz_tracker::{HistogramBins, HistogramData};

/// Every parameter of `net` with its expected path, value norm and gradient norm (`None`
/// when it must have no gradient), computed on the host from `into_data`.
fn reference(net: &Net, grads: &GradientsParams) -> Vec<(String, f64, Option<f64>)> {
    fn one<const D: usize>(
        out: &mut Vec<(String, f64, Option<f64>)>,
        path: String,
        p: &Param<Tensor<D>>,
        grads: &GradientsParams,
    ) {
        let grad = grads.get::<D>(p.id).map(host_norm);
        out.push((path, host_norm(p.val()), grad));
    }
    let mut out = Vec::new();
    for (i, block) in net.encoder.layers.iter().enumerate() {
        let at = format!("encoder.layers.{i}");
        one(
            &mut out,
            format!("{at}.proj.weight"),
            &block.proj.weight,
            grads,
        );
        let bias = block
            .proj
            .bias
            .as_ref()
            .expect("Linear has a bias by default");
        one(&mut out, format!("{at}.proj.bias"), bias, grads);
        one(&mut out, format!("{at}.gate"), &block.gate, grads);
    }
    one(&mut out, "head.weight".into(), &net.head.weight, grads);
    one(
        &mut out,
        "head.bias".into(),
        net.head.bias.as_ref().unwrap(),
        grads,
    );
    one(&mut out, "frozen.weight".into(), &net.frozen.weight, grads);
    one(
        &mut out,
        "frozen.bias".into(),
        net.frozen.bias.as_ref().unwrap(),
        grads,
    );
    out
}

fn net_and_grads(device: &Device) -> (Net, GradientsParams) {
    let net = Net::new(device, 3);
    let x = Tensor::<2>::from_data(
        TensorData::new(
            (0..8 * WIDTH).map(|i| (i as f32 * 0.37).sin()).collect(),
            [8, WIDTH],
        ),
        device,
    );
    let loss = net.forward(x).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    (net, grads)
}

fn check_against_reference(device: &Device) {
    let (net, grads) = net_and_grads(device);
    let expected = reference(&net, &grads);
    let got = norms(&net, &grads).expect("norms read back");
    let paths: Vec<&str> = got.params.iter().map(|p| p.path.as_str()).collect();
    let expected_paths: Vec<&str> = expected.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(paths, expected_paths);
    for (p, (path, param, grad)) in got.params.iter().zip(&expected) {
        assert_close(p.param, *param, &format!("params/norm/{path}"));
        match (p.grad, grad) {
            (Some(a), Some(b)) => assert_close(a, *b, &format!("grads/norm/{path}")),
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "gradient presence of {path}"),
        }
    }
    // The frozen layer has no gradient; every trained one has.
    for p in &got.params {
        assert_eq!(
            p.grad.is_none(),
            p.path.starts_with("frozen."),
            "{}",
            p.path
        );
    }
    let param_global = expected.iter().map(|e| e.1 * e.1).sum::<f64>().sqrt();
    let grad_global = expected
        .iter()
        .filter_map(|e| e.2)
        .map(|g| g * g)
        .sum::<f64>()
        .sqrt();
    assert_close(got.param_global, param_global, "params/global_norm");
    assert_close(got.grad_global.unwrap(), grad_global, "grads/global_norm");
}

#[test]
fn norms_match_a_host_reference_for_nested_modules_and_vecs() {
    check_against_reference(&ezpz_burn::cpu_device().autodiff());
}

#[test]
fn watch_logs_every_log_freq_steps_with_frozen_params_lacking_grads() {
    let (tracker, memory) = memory_tracker();
    let device = ezpz_burn::cpu_device().autodiff();
    let (net, grads) = net_and_grads(&device);
    let watch = Watch::new(&tracker).log_freq(2);
    for _ in 0..5 {
        watch.observe(&net, &grads);
    }
    assert_eq!(watch.step(), 5);
    assert!(watch.logs_norms_next());
    tracker.finish().unwrap();
    let snap = memory.snapshot();
    let expected = reference(&net, &grads);
    let head = &expected.iter().find(|e| e.0 == "head.weight").unwrap();
    let logged = snap.series("grads/norm/head.weight");
    assert_eq!(logged.iter().map(|p| p.0).collect::<Vec<_>>(), [2, 4]);
    assert_close(
        logged[0].1,
        head.2.unwrap(),
        "logged grads/norm/head.weight",
    );
    assert_eq!(snap.series("params/norm/encoder.layers.2.gate").len(), 2);
    assert_eq!(snap.series("grads/global_norm").len(), 2);
    assert_eq!(snap.series("params/norm/frozen.weight").len(), 2);
    assert!(snap.series("grads/norm/frozen.weight").is_empty());
    assert!(snap.series("grads/norm/frozen.bias").is_empty());
    assert!(snap.histograms.is_empty(), "histograms are off by default");
}

/// The histogram `watch` logged under `key`: bins made on the device.
fn logged_bins(snap: &ezpz_tracker::MemorySnapshot, key: &str) -> (u64, HistogramBins) {
    let h = snap.histograms.iter().find(|h| h.key == key);
    let h = h.unwrap_or_else(|| panic!("no histogram {key}"));
    match &h.data {
        HistogramData::Bins(bins) => (h.step, (**bins).clone()),
        HistogramData::Values(_) => panic!("{key}: raw values were read back"),
    }
}

/// The host's binning of the values `into_data` reads.
fn host_bins<const D: usize>(t: Tensor<D>) -> HistogramBins {
    let values: Vec<f64> = t.into_data().iter().collect();
    HistogramBins::from_values(&values)
}

/// Bins from the device equal the host's binning of the same values: the same counts, min
/// and max exactly, sums up to f32 rounding.
fn assert_same_bins(got: &HistogramBins, want: &HistogramBins, what: &str) {
    assert_eq!(got.counts, want.counts, "{what}");
    assert_eq!(
        (got.min, got.max, got.nonfinite),
        (want.min, want.max, 0),
        "{what}"
    );
    assert_eq!(got.count(), want.count(), "{what}");
    for (g, w) in [(got.sum, want.sum), (got.sum_squares, want.sum_squares)] {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{what}: {g} vs {w}"
        );
    }
}

fn check_histograms(device: &Device) {
    let (tracker, memory) = memory_tracker();
    let (net, grads) = net_and_grads(device);
    let watch = Watch::new(&tracker).log_freq(1).hist_freq(2);
    watch.observe(&net, &grads);
    watch.observe_with(&net, &grads, |n| {
        vec![(
            "grads/global_norm/twice".into(),
            2.0 * n.grad_global.unwrap(),
        )]
    });
    tracker.finish().unwrap();
    let snap = memory.snapshot();
    let (step, weight) = logged_bins(&snap, "params/hist/encoder.layers.1.proj.weight");
    assert_eq!(step, 2);
    let want = host_bins(net.encoder.layers[1].proj.weight.val());
    assert_eq!(weight.count(), (WIDTH * WIDTH) as u64);
    assert_same_bins(&weight, &want, "encoder.layers.1.proj.weight");
    let (_, gate_grad) = logged_bins(&snap, "grads/hist/encoder.layers.0.gate");
    let g = grads.get::<1>(net.encoder.layers[0].gate.id).unwrap();
    assert_same_bins(&gate_grad, &host_bins(g), "grads of encoder.layers.0.gate");
    let (_, head_grad) = logged_bins(&snap, "grads/hist/head.weight");
    let g = grads.get::<2>(net.head.weight.id).unwrap();
    assert_same_bins(&head_grad, &host_bins(g), "grads of head.weight");
    assert!(snap
        .histograms
        .iter()
        .all(|h| h.key != "grads/hist/frozen.weight"));
    // 13 parameters (3 blocks × 3, head 2, frozen 2), 11 of them with gradients.
    assert_eq!(snap.histograms.len(), 13 + 11);
    let global = snap.series("grads/global_norm");
    let twice = snap.series("grads/global_norm/twice");
    assert_eq!(twice.len(), 1);
    assert_eq!((twice[0].0, twice[0].1), (2, 2.0 * global[1].1));
}

#[test]
fn histograms_are_binned_on_the_device_and_extra_metrics_join_the_row() {
    check_histograms(&ezpz_burn::cpu_device().autodiff());
}

/// The same reference check on a GPU backend (Mesa's lavapipe where there is no GPU).
#[cfg(feature = "wgpu")]
#[test]
fn norms_match_the_reference_on_wgpu() {
    let device = ezpz_burn::device_by_name("wgpu").unwrap().autodiff();
    check_against_reference(&device);
    // And through a watch, so the logged row comes from the device path too.
    let (tracker, memory) = memory_tracker();
    let (net, grads) = net_and_grads(&device);
    Watch::new(&tracker).log_freq(1).observe(&net, &grads);
    tracker.finish().unwrap();
    let expected = reference(&net, &grads);
    let logged = memory
        .snapshot()
        .series("grads/norm/encoder.layers.2.proj.weight");
    let e = expected
        .iter()
        .find(|e| e.0 == "encoder.layers.2.proj.weight")
        .unwrap();
    assert_close(logged[0].1, e.2.unwrap(), "wgpu grads/norm");
    // Histograms binned by the GPU's kernels.
    check_histograms(&device);
}
