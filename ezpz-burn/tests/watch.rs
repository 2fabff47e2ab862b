//! `watch` against norms computed by hand from the tensors' values.

mod common;

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::{assert_close, host_norm, memory_tracker, Net, WIDTH};
use ezpz_burn::{norms, Watch};

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

#[test]
fn histograms_hold_the_values_and_extra_metrics_join_the_row() {
    let (tracker, memory) = memory_tracker();
    let device = ezpz_burn::cpu_device().autodiff();
    let (net, grads) = net_and_grads(&device);
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
    let hist = |key: &str| {
        let h = snap.histograms.iter().find(|h| h.key == key);
        h.unwrap_or_else(|| panic!("no histogram {key}")).clone()
    };
    let weight = hist("params/hist/encoder.layers.1.proj.weight");
    assert_eq!(weight.step, 2);
    let values: Vec<f64> = net.encoder.layers[1]
        .proj
        .weight
        .val()
        .into_data()
        .iter()
        .collect();
    assert_eq!(&*weight.values, &values[..]);
    let gate_grad = hist("grads/hist/encoder.layers.0.gate");
    let g = grads.get::<1>(net.encoder.layers[0].gate.id).unwrap();
    let values: Vec<f64> = g.into_data().iter().collect();
    assert_eq!(&*gate_grad.values, &values[..]);
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
}
