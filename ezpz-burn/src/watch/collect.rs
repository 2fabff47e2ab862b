//! Gathering every norm (and optionally every value) of a module and its gradients in one
//! device-to-host transfer.

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};

use super::grads::Gradients;
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
pub fn norms<M: Module, G: Gradients>(model: &M, grads: &G) -> Result<Norms> {
    collect(model, grads, false).map(|r| r.norms)
}

#[cfg(test)]
thread_local! {
    /// Device-to-host reads made by [`collect`] on this thread (tests count them).
    pub(crate) static READBACKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Most elements stacked into one temporary tensor (64 MiB of f32): bounds the extra device
/// memory the grouping below needs.
const MAX_STACK_ELEMENTS: usize = 1 << 24;

/// Walks the module, flattening every parameter and gradient to one `f32` vector on the first
/// parameter's device. Vectors are numbered in order: parameter, then its gradient if any.
struct Collector<'a, G> {
    grads: &'a G,
    path: Vec<String>,
    device: Option<Device>,
    vectors: Vec<Tensor<1>>,
    params: Vec<Entry>,
}

struct Entry {
    path: String,
    numel: usize,
    has_grad: bool,
}

impl<G> Collector<'_, G> {
    /// Flat, on the first parameter's device, in f32 (half precision would overflow the
    /// squares; mixed dtypes could not be concatenated).
    fn flat<const D: usize>(&mut self, t: Tensor<D>) -> Tensor<1> {
        let device = self.device.get_or_insert_with(|| t.device()).clone();
        let numel = t.shape().num_elements();
        t.without_autodiff()
            .to_device(&device)
            .cast(FloatDType::F32)
            .reshape([numel])
    }
}

impl<G: Gradients> ModuleVisitor for Collector<'_, G> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = self.flat(param.val());
        let grad = self.grads.grad::<D>(param.id).map(|g| self.flat(g));
        let numel = value.shape().num_elements();
        self.vectors.push(value);
        let has_grad = grad.is_some();
        self.vectors.extend(grad);
        let path = if self.path.is_empty() {
            "param".to_string()
        } else {
            self.path.join(".")
        };
        self.params.push(Entry {
            path,
            numel,
            has_grad,
        });
    }
}

/// The sum of squares of every vector, as few kernels as possible: vectors of equal length
/// (the same layer repeated, a weight and its gradient) are stacked and reduced together.
/// Returns the sums and, for each, the index of the vector it belongs to.
fn squared_sums(vectors: &[Tensor<1>], max_stack: usize) -> (Vec<Tensor<1>>, Vec<usize>) {
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, v) in vectors.iter().enumerate() {
        by_len.entry(v.shape().num_elements()).or_default().push(i);
    }
    let (mut sums, mut order) = (Vec::new(), Vec::with_capacity(vectors.len()));
    for (len, members) in by_len {
        let per_stack = (max_stack / len.max(1)).max(1);
        for chunk in members.chunks(per_stack) {
            let sum = match chunk {
                [one] => vectors[*one].clone().square().sum(),
                _ => {
                    let rows = chunk.iter().map(|&i| vectors[i].clone()).collect();
                    Tensor::stack::<2>(rows, 0)
                        .square()
                        .sum_dim(1)
                        .reshape([chunk.len()])
                }
            };
            sums.push(sum);
            order.extend_from_slice(chunk);
        }
    }
    (sums, order)
}

pub(crate) fn collect<M: Module, G: Gradients>(
    model: &M,
    grads: &G,
    histograms: bool,
) -> Result<Readout> {
    let mut c = Collector {
        grads,
        path: Vec::new(),
        device: None,
        vectors: Vec::new(),
        params: Vec::new(),
    };
    model.visit(&mut c);
    if c.params.is_empty() {
        return Ok(Readout {
            norms: Norms::default(),
            histograms: Vec::new(),
        });
    }
    let (mut segments, order) = squared_sums(&c.vectors, MAX_STACK_ELEMENTS);
    if histograms {
        segments.append(&mut c.vectors);
    }
    // The one transfer.
    #[cfg(test)]
    READBACKS.with(|n| n.set(n.get() + 1));
    let data = Tensor::cat(segments, 0)
        .try_into_data()
        .map_err(|e| Error::Readback(format!("{e:?}")))?;
    let flat: Vec<f64> = data.iter::<f64>().collect();
    let mut squares = vec![f64::NAN; order.len()];
    for (value, &i) in flat.iter().zip(&order) {
        squares[i] = *value;
    }
    let values = if histograms {
        flat.get(order.len()..).unwrap_or_default()
    } else {
        &[]
    };
    Ok(unpack(&c.params, &squares, values))
}

/// Splits the read-back numbers: `squares` per vector (parameter, then its gradient), and
/// `values` (empty unless histograms were asked for) all vectors' elements in the same order.
fn unpack(params: &[Entry], squares: &[f64], values: &[f64]) -> Readout {
    let mut squares = squares.iter().copied();
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
    let mut histograms = Vec::new();
    if !values.is_empty() {
        let mut offset = 0;
        let mut take = |n: usize| -> Arc<[f64]> {
            let end = (offset + n).min(values.len());
            let slice: Arc<[f64]> = values[offset.min(end)..end].into();
            offset = end;
            slice
        };
        for e in params {
            histograms.push((format!("params/hist/{}", e.path), take(e.numel)));
            if e.has_grad {
                histograms.push((format!("grads/hist/{}", e.path), take(e.numel)));
            }
        }
    }
    Readout { norms, histograms }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_sums_match_each_vector_whatever_the_stack_limit() {
        let device = crate::cpu_device();
        let lens = [3, 5, 3, 1, 3, 5, 3];
        let vectors: Vec<Tensor<1>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let v: Vec<f32> = (0..n).map(|j| (i * 10 + j) as f32 * 0.5).collect();
                Tensor::from_data(burn::tensor::TensorData::new(v, [n]), &device)
            })
            .collect();
        let expected: Vec<f64> = vectors
            .iter()
            .map(|v| v.clone().into_data().iter::<f64>().map(|x| x * x).sum())
            .collect();
        // 1: no stacking; 6: stacks of two 3-vectors; large: one stack per length.
        for max_stack in [1, 6, 1 << 20] {
            let (sums, order) = squared_sums(&vectors, max_stack);
            let flat: Vec<f64> = Tensor::cat(sums, 0).into_data().iter::<f64>().collect();
            assert_eq!(flat.len(), vectors.len());
            let mut got = vec![f64::NAN; vectors.len()];
            for (v, &i) in flat.iter().zip(&order) {
                got[i] = *v;
            }
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (g - e).abs() <= 1e-6 * e.max(1.0),
                    "limit {max_stack}: {got:?} vs {expected:?}"
                );
            }
        }
    }
}
