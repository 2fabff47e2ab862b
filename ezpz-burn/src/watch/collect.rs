//! Gathering every norm (and optionally every histogram) of a module and its gradients in one
//! device-to-host transfer.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::module::{Module, ModuleVisitor, Param};

use super::grads::Gradients;
use burn::tensor::{Device, FloatDType, IndexingUpdateOp, Int, Tensor, Transaction};
use ezpz_tracker::{HistogramBins, HISTOGRAM_BINS};

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

/// Norms, plus every parameter's and gradient's histogram when asked for, keyed
/// `params/hist/<path>` and `grads/hist/<path>`.
pub(crate) struct Readout {
    pub norms: Norms,
    pub histograms: Vec<(String, HistogramBins)>,
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
    /// The bytes they brought back.
    pub(crate) static READBACK_BYTES_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

static READBACK_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes that [`Watch`](crate::Watch) and [`norms`] have read back from devices in this
/// process: on a histogram step a fixed amount per parameter and gradient (its squared sum,
/// min, max, sum, sum of squares and 65 counts), however many values it holds.
pub fn readback_bytes() -> u64 {
    READBACK_BYTES.load(Ordering::Relaxed)
}

/// Most elements stacked into one temporary tensor (64 MiB of f32): bounds the extra device
/// memory the grouping below needs.
const MAX_STACK_ELEMENTS: usize = 1 << 24;

/// Counts per vector read back: the histogram's bins, then its non-finite values.
const COUNTS: usize = HISTOGRAM_BINS + 1;
/// Floats per vector read back for a histogram: min, max, sum, sum of squares.
const STATS: usize = 4;

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
        self.vectors.push(value);
        let has_grad = grad.is_some();
        self.vectors.extend(grad);
        let path = if self.path.is_empty() {
            "param".to_string()
        } else {
            self.path.join(".")
        };
        self.params.push(Entry { path, has_grad });
    }
}

/// The vectors in groups of equal length (the same layer repeated, a weight and its
/// gradient), each group at most `max_stack` elements (or one vector): each group is reduced
/// by one set of kernels, so their number grows with the distinct parameter sizes only.
fn groups(vectors: &[Tensor<1>], max_stack: usize) -> Vec<Vec<usize>> {
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, v) in vectors.iter().enumerate() {
        by_len.entry(v.shape().num_elements()).or_default().push(i);
    }
    let mut out = Vec::new();
    for (len, members) in by_len {
        let per_stack = (max_stack / len.max(1)).max(1);
        out.extend(members.chunks(per_stack).map(<[usize]>::to_vec));
    }
    out
}

/// The group's vectors as the rows of one `[k, len]` tensor.
fn stacked(vectors: &[Tensor<1>], group: &[usize]) -> Tensor<2> {
    match group {
        [one] => vectors[*one].clone().unsqueeze(),
        _ => Tensor::stack(group.iter().map(|&i| vectors[i].clone()).collect(), 0),
    }
}

/// Per row of `x` (`[k, len]`): its sum of squares (`[k]`).
fn squared_sums(x: Tensor<2>) -> Tensor<1> {
    let k = x.dims()[0];
    x.square().sum_dim(1).reshape([k])
}

/// Per row of `x` (`[k, len]`), on its device: min, max, sum and sum of squares of the finite
/// values (`[k * STATS]`), and the [`HISTOGRAM_BINS`] bin counts followed by the number of
/// non-finite values (`[k * COUNTS]`). A value's bin is
/// [`HistogramBins::bin_index`]'s, computed in f32: `⌊(v − min) / (max − min) · 64⌋`, at most
/// 63, the middle bin when `min == max`.
fn histogram_stats(x: Tensor<2>) -> (Tensor<1>, Tensor<1, Int>) {
    let [k, len] = x.dims();
    let device = x.device();
    let bad = x.clone().is_finite().bool_not();
    let min = x.clone().mask_fill(bad.clone(), f32::INFINITY).min_dim(1);
    let max = x
        .clone()
        .mask_fill(bad.clone(), f32::NEG_INFINITY)
        .max_dim(1);
    let finite = x.mask_fill(bad.clone(), 0.0);
    let sum = finite.clone().sum_dim(1);
    let sum_squares = finite.clone().square().sum_dim(1);
    let range = max.clone() - min.clone();
    let flat = range.clone().equal_elem(0.0);
    // A flat row's finite values all equal its min: they land in bin 0, moved to the middle.
    let range = range.mask_fill(flat.clone(), 1.0);
    let at = ((finite - min.clone()) / range).mul_scalar(HISTOGRAM_BINS as f64);
    // No NaN may reach the cast (NdArray's panics): a row without finite values, or one
    // whose range overflows f32, computes `inf / inf`.
    let nan = at.clone().is_nan();
    let bin = at
        .mask_fill(nan, 0.0)
        .floor()
        .clamp(0.0, (HISTOGRAM_BINS - 1) as f64)
        .int()
        + flat.int().mul_scalar(HISTOGRAM_BINS as i64 / 2);
    // Non-finite values go to the extra last bin.
    let bin = bin.mask_fill(bad, HISTOGRAM_BINS as i64);
    let counts = Tensor::<2, Int>::zeros([k, COUNTS], &device).scatter(
        1,
        bin,
        Tensor::ones([k, len], &device),
        IndexingUpdateOp::Add,
    );
    let stats = Tensor::cat(vec![min, max, sum, sum_squares], 1).reshape([k * STATS]);
    (stats, counts.reshape([k * COUNTS]))
}

pub(crate) fn collect<M: Module, G: Gradients>(
    model: &M,
    grads: &G,
    histograms: bool,
) -> Result<Readout> {
    collect_stacking(model, grads, histograms, MAX_STACK_ELEMENTS)
}

fn collect_stacking<M: Module, G: Gradients>(
    model: &M,
    grads: &G,
    histograms: bool,
    max_stack: usize,
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
    let (mut squares, mut stats, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    let mut order = Vec::with_capacity(c.vectors.len());
    for group in groups(&c.vectors, max_stack) {
        let x = stacked(&c.vectors, &group);
        if histograms {
            let (s, n) = histogram_stats(x.clone());
            stats.push(s);
            counts.push(n);
        }
        squares.push(squared_sums(x));
        order.extend(group);
    }
    drop(c.vectors);
    let floats = Tensor::cat([squares, stats].concat(), 0);
    // The one transfer (a transaction reads the floats and the counts together).
    #[cfg(test)]
    READBACKS.with(|n| n.set(n.get() + 1));
    let mut transaction = Transaction::default().register(floats);
    if histograms {
        transaction = transaction.register(Tensor::cat(counts, 0));
    }
    let data = transaction
        .try_execute()
        .map_err(|e| Error::Readback(format!("{e:?}")))?;
    let bytes: usize = data.iter().map(|d| d.as_bytes().len()).sum();
    READBACK_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    #[cfg(test)]
    READBACK_BYTES_HERE.with(|n| n.set(n.get() + bytes as u64));
    let mut data = data.into_iter();
    let floats: Vec<f64> = data
        .next()
        .map(|d| d.iter::<f64>().collect())
        .unwrap_or_default();
    let counts: Vec<u64> = data
        .next()
        .map(|d| d.iter::<u64>().collect())
        .unwrap_or_default();
    // Back into vector order.
    let n = order.len();
    let mut per_vector = vec![Readback::default(); n];
    for (slot, &i) in order.iter().enumerate() {
        let r = &mut per_vector[i];
        r.square = floats.get(slot).copied().unwrap_or(f64::NAN);
        if histograms {
            let s = n + slot * STATS;
            r.stats = floats.get(s..s + STATS).map(<[f64]>::to_vec);
            r.counts = counts
                .get(slot * COUNTS..(slot + 1) * COUNTS)
                .map(<[u64]>::to_vec);
        }
    }
    Ok(unpack(&c.params, per_vector))
}

/// What came back for one vector.
#[derive(Clone)]
struct Readback {
    square: f64,
    /// min, max, sum, sum of squares (histogram steps).
    stats: Option<Vec<f64>>,
    /// Bin counts, then non-finite values (histogram steps).
    counts: Option<Vec<u64>>,
}

impl Default for Readback {
    fn default() -> Self {
        Readback {
            square: f64::NAN,
            stats: None,
            counts: None,
        }
    }
}

impl Readback {
    fn bins(&self) -> Option<HistogramBins> {
        let (stats, counts) = (self.stats.as_ref()?, self.counts.as_ref()?);
        Some(HistogramBins {
            min: stats[0],
            max: stats[1],
            counts: counts[..HISTOGRAM_BINS].to_vec(),
            sum: stats[2],
            sum_squares: stats[3],
            nonfinite: counts[HISTOGRAM_BINS],
        })
    }
}

/// Splits the read-back numbers, one [`Readback`] per vector (parameter, then its gradient).
fn unpack(params: &[Entry], per_vector: Vec<Readback>) -> Readout {
    let mut vectors = per_vector.into_iter();
    let mut norms = Norms::default();
    let mut histograms = Vec::new();
    let (mut param_sq, mut grad_sq, mut any_grad) = (0.0, 0.0, false);
    for e in params {
        let p = vectors.next().unwrap_or_default();
        param_sq += p.square;
        histograms.extend(p.bins().map(|b| (format!("params/hist/{}", e.path), b)));
        let grad = e.has_grad.then(|| vectors.next().unwrap_or_default());
        if let Some(g) = &grad {
            grad_sq += g.square;
            any_grad = true;
            histograms.extend(g.bins().map(|b| (format!("grads/hist/{}", e.path), b)));
        }
        norms.params.push(ParamNorm {
            path: e.path.clone(),
            param: p.square.sqrt(),
            grad: grad.map(|g| g.square.sqrt()),
        });
    }
    norms.param_global = param_sq.sqrt();
    norms.grad_global = any_grad.then(|| grad_sq.sqrt());
    Readout { norms, histograms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::GradientsParams;
    use burn::tensor::TensorData;

    fn vector(values: &[f32], device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }

    #[test]
    fn grouped_sums_match_each_vector_whatever_the_stack_limit() {
        let device = crate::cpu_device();
        let lens = [3, 5, 3, 1, 3, 5, 3];
        let vectors: Vec<Tensor<1>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let v: Vec<f32> = (0..n).map(|j| (i * 10 + j) as f32 * 0.5).collect();
                vector(&v, &device)
            })
            .collect();
        let expected: Vec<f64> = vectors
            .iter()
            .map(|v| v.clone().into_data().iter::<f64>().map(|x| x * x).sum())
            .collect();
        // 1: no stacking; 6: stacks of two 3-vectors; large: one stack per length.
        for max_stack in [1, 6, 1 << 20] {
            let (mut sums, mut order) = (Vec::new(), Vec::new());
            for group in groups(&vectors, max_stack) {
                sums.push(squared_sums(stacked(&vectors, &group)));
                order.extend(group);
            }
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

    #[derive(Module, Debug)]
    struct Vectors {
        v: Vec<Param<Tensor<1>>>,
    }

    /// Values on which the device's f32 arithmetic and the host's f64 agree on every bin
    /// (integers, whose bin positions are exact or far from an edge), then arbitrary floats,
    /// then the edge cases.
    fn cases() -> Vec<Vec<f32>> {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let integers = |k: usize| -> Vec<f32> {
            (0..1000)
                .map(|i| ((i * 7919 + k) % 613) as f32 - 300.0)
                .collect()
        };
        let floats: Vec<f32> = (0..5000)
            .map(|_| (uniform() - 0.5) * 0.02 + uniform() * uniform() * 0.01)
            .collect();
        vec![
            integers(0),
            integers(5),
            floats,
            vec![2.5; 17],
            vec![-3.0],
            vec![
                1.0,
                f32::NAN,
                4.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                2.0,
                9.0,
            ],
            vec![f32::NAN, f32::INFINITY],
            vec![0.0, 0.0, f32::NAN],
        ]
    }

    #[test]
    fn device_bins_equal_host_bins_of_the_same_values() {
        let device = crate::cpu_device();
        let cases = cases();
        let model = Vectors {
            v: cases
                .iter()
                .map(|c| Param::from_tensor(vector(c, &device)))
                .collect(),
        };
        let grads = GradientsParams::new();
        for max_stack in [1, 1 << 20] {
            let readout = collect_stacking(&model, &grads, true, max_stack).unwrap();
            assert_eq!(readout.histograms.len(), cases.len());
            for (i, (case, (key, got))) in cases.iter().zip(&readout.histograms).enumerate() {
                assert_eq!(key, &format!("params/hist/v.{i}"));
                let values: Vec<f64> = case.iter().map(|&v| f64::from(v)).collect();
                let want = HistogramBins::from_values(&values);
                let what = format!("case {i}, stack limit {max_stack}");
                assert_eq!(got.counts, want.counts, "{what}");
                assert_eq!(got.nonfinite, want.nonfinite, "{what}");
                assert_eq!((got.min, got.max), (want.min, want.max), "{what}");
                for (g, w) in [(got.sum, want.sum), (got.sum_squares, want.sum_squares)] {
                    assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{what}: {g} vs {w}"
                    );
                }
            }
        }
        let readout = collect(&model, &grads, true).unwrap();
        let count = |i: usize| readout.histograms[i].1.count();
        assert_eq!(
            readout.histograms[3].1.counts[32], 17,
            "equal values: middle bin"
        );
        assert_eq!((count(4), readout.histograms[4].1.counts[32]), (1, 1));
        assert_eq!((count(5), readout.histograms[5].1.nonfinite), (4, 3));
        assert_eq!((count(6), readout.histograms[6].1.nonfinite), (0, 2));
    }

    #[test]
    fn a_range_beyond_f32_is_binned_without_failing() {
        // `max - min` overflows to inf: the bins are then meaningless, but the step is logged
        // and every value counted (the cast of a NaN bin would panic on NdArray).
        let device = crate::cpu_device();
        let model = Vectors {
            v: vec![Param::from_tensor(vector(&[3e38, -3e38, 1.0], &device))],
        };
        let readout = collect(&model, &GradientsParams::new(), true).unwrap();
        let bins = &readout.histograms[0].1;
        assert_eq!(
            (bins.count(), bins.min, bins.max),
            (3, -3e38f32 as f64, 3e38f32 as f64)
        );
    }
}
