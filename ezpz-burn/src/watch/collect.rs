//! Gathering every norm (and optionally every value) of a module and its gradients in one
//! device-to-host transfer.

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, FloatDType, Tensor};

use crate::{Error, Result};

/// The L2 norms of one parameter and of its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamNorm {
    /// The module path, fields and `Vec` indices joined by `.` (`encoder.layers.0.weight`).
    pub path: String,
    /// The parameter's L2 norm.
    pub param: f64,
    /// The gradient's L2 norm; `None` when the parameter has no gradient (frozen, or unused
    /// in the loss).
    pub grad: Option<f64>,
}

/// The norms of a module's float parameters and their gradients at one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Norms {
    /// One entry per float parameter, in module order.
    pub params: Vec<ParamNorm>,
    /// L2 norm of all parameters together (`sqrt(Σ‖p‖²)`).
    pub param_global: f64,
    /// L2 norm of all gradients together; `None` when no parameter has a gradient.
    pub grad_global: Option<f64>,
}

impl Norms {
    /// The norms as tracker metrics: `params/norm/<path>`, `grads/norm/<path>` (parameters
    /// with a gradient only), `params/global_norm`, `grads/global_norm`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut out = Vec::with_capacity(self.params.len() * 2 + 2);
        for p in &self.params {
            out.push((format!("params/norm/{}", p.path), p.param));
            if let Some(g) = p.grad {
                out.push((format!("grads/norm/{}", p.path), g));
            }
        }
        out.push(("params/global_norm".to_string(), self.param_global));
        if let Some(g) = self.grad_global {
            out.push(("grads/global_norm".to_string(), g));
        }
        out
    }
}

/// Norms, plus every parameter and gradient value when histograms were asked for, keyed
/// `params/hist/<path>` and `grads/hist/<path>`.
pub(crate) struct Readout {
    pub norms: Norms,
    pub histograms: Vec<(String, Arc<[f64]>)>,
}

/// Per-parameter and per-gradient L2 norms of `model`, computed on the model's device and
/// read back in one transfer.
///
/// # Errors
/// The device failed to hand back the result ([`Error::Readback`]).
pub fn norms<M: Module>(model: &M, grads: &GradientsParams) -> Result<Norms> {
    collect(model, grads, false).map(|r| r.norms)
}

/// One segment list for the device: first one squared sum per parameter and per gradient,
/// then (for histograms) the flattened values. Concatenated and read back once.
struct Collector<'a> {
    grads: &'a GradientsParams,
    histograms: bool,
    path: Vec<String>,
    device: Option<Device>,
    squares: Vec<Tensor<1>>,
    values: Vec<Tensor<1>>,
    params: Vec<Entry>,
}

struct Entry {
    path: String,
    numel: usize,
    has_grad: bool,
}

impl Collector<'_> {
    /// On the first parameter's device, in f32 (half precision would overflow the squares;
    /// mixed dtypes could not be concatenated).
    fn prepare<const D: usize>(&mut self, t: Tensor<D>) -> Tensor<D> {
        let device = self.device.get_or_insert_with(|| t.device()).clone();
        t.without_autodiff()
            .to_device(&device)
            .cast(FloatDType::F32)
    }
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = self.prepare(param.val());
        let grad = self.grads.get::<D>(param.id).map(|g| self.prepare(g));
        let numel = value.shape().num_elements();
        self.squares.push(value.clone().square().sum());
        if let Some(g) = &grad {
            self.squares.push(g.clone().square().sum());
        }
        if self.histograms {
            self.values.push(value.reshape([numel]));
            if let Some(g) = grad.clone() {
                self.values.push(g.reshape([numel]));
            }
        }
        let path = if self.path.is_empty() {
            "param".to_string()
        } else {
            self.path.join(".")
        };
        self.params.push(Entry {
            path,
            numel,
            has_grad: grad.is_some(),
        });
    }
}

pub(crate) fn collect<M: Module>(
    model: &M,
    grads: &GradientsParams,
    histograms: bool,
) -> Result<Readout> {
    let mut c = Collector {
        grads,
        histograms,
        path: Vec::new(),
        device: None,
        squares: Vec::new(),
        values: Vec::new(),
        params: Vec::new(),
    };
    model.visit(&mut c);
    if c.params.is_empty() {
        return Ok(Readout {
            norms: Norms::default(),
            histograms: Vec::new(),
        });
    }
    let mut segments = std::mem::take(&mut c.squares);
    segments.append(&mut c.values);
    // The one transfer.
    let data = Tensor::cat(segments, 0)
        .try_into_data()
        .map_err(|e| Error::Readback(format!("{e:?}")))?;
    let flat: Vec<f64> = data.iter::<f64>().collect();
    Ok(unpack(&c.params, &flat, histograms))
}

fn unpack(params: &[Entry], flat: &[f64], histograms: bool) -> Readout {
    let mut squares = flat.iter().copied();
    let mut norms = Norms::default();
    let (mut param_sq, mut grad_sq, mut any_grad) = (0.0, 0.0, false);
    for e in params {
        let p = squares.next().unwrap_or(f64::NAN);
        param_sq += p;
        let grad = e.has_grad.then(|| squares.next().unwrap_or(f64::NAN));
        if let Some(g) = grad {
            grad_sq += g;
            any_grad = true;
        }
        norms.params.push(ParamNorm {
            path: e.path.clone(),
            param: p.sqrt(),
            grad: grad.map(f64::sqrt),
        });
    }
    norms.param_global = param_sq.sqrt();
    norms.grad_global = any_grad.then(|| grad_sq.sqrt());
    let mut out = Vec::new();
    if histograms {
        let mut offset = params.len() + params.iter().filter(|e| e.has_grad).count();
        let mut take = |n: usize| -> Arc<[f64]> {
            let end = (offset + n).min(flat.len());
            let slice: Arc<[f64]> = flat[offset.min(end)..end].into();
            offset = end;
            slice
        };
        for e in params {
            out.push((format!("params/hist/{}", e.path), take(e.numel)));
            if e.has_grad {
                out.push((format!("grads/hist/{}", e.path), take(e.numel)));
            }
        }
    }
    Readout {
        norms,
        histograms: out,
    }
}
