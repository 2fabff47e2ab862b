//! A module's float parameters and gradients as one flat `f32` buffer, and back.
//!
//! No MPI here: the data-parallel code moves these buffers with one collective each. Both
//! directions walk the module in `Module::visit`/`map` order, which is the same on every rank
//! that built the same model. Device reads go through one [`Transaction`] (one sync for all
//! tensors, not one per parameter).

use std::hash::{DefaultHasher, Hash, Hasher};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::{DType, Transaction};

/// Where one float parameter lives in a flat buffer.
#[derive(Debug, Clone)]
struct Slot {
    len: usize,
    /// The gradient's device and dtype (the parameter's inner device when it had none).
    device: Device,
    dtype: DType,
}

/// Shape summary of a module: element count and a fingerprint of every float parameter's
/// shape in visit order (equal on ranks that built the same architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub params: usize,
    pub elements: usize,
    pub fingerprint: u64,
}

struct LayoutVisitor {
    hasher: DefaultHasher,
    params: usize,
    elements: usize,
}

impl ModuleVisitor for LayoutVisitor {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let dims = param.lazy_shape().to_vec();
        dims.hash(&mut self.hasher);
        self.params += 1;
        self.elements += dims.iter().product::<usize>();
    }
}

/// The module's [`Layout`].
pub(crate) fn layout<M: Module>(module: &M) -> Layout {
    let mut v = LayoutVisitor {
        hasher: DefaultHasher::new(),
        params: 0,
        elements: 0,
    };
    module.visit(&mut v);
    Layout {
        params: v.params,
        elements: v.elements,
        fingerprint: v.hasher.finish(),
    }
}

/// Reads `tx`'s tensors and appends them to `out` as `f32`; the reason when the device or the
/// conversion fails (then `out` may hold part of them).
fn read_into(tx: Transaction, out: &mut Vec<Vec<f32>>) -> Result<(), String> {
    let data = tx.try_execute().map_err(|e| format!("{e:?}"))?;
    for d in data {
        out.push(d.try_into_vec_as::<f32>().map_err(|e| format!("{e:?}"))?);
    }
    Ok(())
}

struct ParamReader {
    tx: Transaction,
}

impl ModuleVisitor for ParamReader {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.tx = std::mem::take(&mut self.tx).register(param.val());
    }
}

/// All float parameter values in visit order, concatenated; the reason when the device read
/// fails.
pub(crate) fn read_params<M: Module>(module: &M) -> Result<Vec<f32>, String> {
    let mut reader = ParamReader {
        tx: Transaction::default(),
    };
    module.visit(&mut reader);
    let mut parts = Vec::new();
    read_into(reader.tx, &mut parts)?;
    Ok(parts.concat())
}

struct ParamWriter<'a> {
    flat: &'a [f32],
    offset: usize,
}

impl ModuleMapper for ParamWriter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let n = param.lazy_shape().num_elements();
        let values = self.flat[self.offset..self.offset + n].to_vec();
        self.offset += n;
        param.map(|t| {
            let (device, dtype, shape) = (t.device(), t.dtype(), t.shape());
            let requires_grad = t.is_require_grad();
            Tensor::<D>::from_data(TensorData::new(values, shape), (&device, dtype))
                .set_require_grad(requires_grad)
        })
    }
}

/// `module` with its float parameters replaced, in visit order, by `flat` (whose length is
/// the module's [`Layout::elements`]); ids, devices, dtypes and gradient flags are kept.
pub(crate) fn write_params<M: Module>(module: M, flat: &[f32]) -> M {
    module.map(&mut ParamWriter { flat, offset: 0 })
}

/// Whether `param` trains: frozen parameters and buffers have no gradient on any rank and
/// stay out of the gradient buffer (the same on every rank that built the same model).
fn trainable<const D: usize>(param: &Param<Tensor<D>>) -> bool {
    param.val().is_require_grad()
}

struct GradTaker<'a> {
    grads: &'a mut GradientsParams,
    tx: Transaction,
    slots: Vec<Slot>,
    present: Vec<bool>,
}

impl ModuleVisitor for GradTaker<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !trainable(param) {
            return;
        }
        let len = param.lazy_shape().num_elements();
        match self.grads.remove::<D>(param.id) {
            Some(g) => {
                self.slots.push(Slot {
                    len,
                    device: g.device(),
                    dtype: g.dtype(),
                });
                self.present.push(true);
                self.tx = std::mem::take(&mut self.tx).register(g);
            }
            None => {
                let value = param.val();
                self.slots.push(Slot {
                    len,
                    device: value.device().without_autodiff(),
                    dtype: value.dtype(),
                });
                self.present.push(false);
            }
        }
    }
}

/// One step's gradients taken out of a [`GradientsParams`] into a flat buffer.
#[derive(Debug)]
pub(crate) struct PackedGrads {
    /// Every trainable float parameter's gradient in visit order (zeros where there is none),
    /// then one presence count per parameter (1 or 0). After a sum all-reduce the counts say
    /// how many ranks contributed each gradient.
    pub buffer: Vec<f32>,
    slots: Vec<Slot>,
    /// Why the device read failed, if it did (then this rank contributes nothing).
    pub read_error: Option<String>,
}

impl PackedGrads {
    /// The L2 norm of this rank's gradients (before any reduction).
    pub fn local_norm(&self) -> f64 {
        let elements: usize = self.slots.iter().map(|s| s.len).sum();
        self.buffer[..elements]
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
    }
}

/// Moves every gradient of `module`'s float parameters out of `grads` into one buffer (one
/// device read for all of them).
pub(crate) fn take_grads<M: Module>(module: &M, grads: &mut GradientsParams) -> PackedGrads {
    let mut taker = GradTaker {
        grads,
        tx: Transaction::default(),
        slots: Vec::new(),
        present: Vec::new(),
    };
    module.visit(&mut taker);
    let GradTaker {
        tx, slots, present, ..
    } = taker;
    let elements: usize = slots.iter().map(|s| s.len).sum();
    let mut buffer = Vec::with_capacity(elements + slots.len());
    let mut parts = Vec::new();
    let read_error = read_into(tx, &mut parts).err();
    let read_ok = read_error.is_none();
    let mut parts = parts.into_iter();
    for (slot, &here) in slots.iter().zip(&present) {
        match (here && read_ok).then(|| parts.next()).flatten() {
            Some(values) if values.len() == slot.len => buffer.extend(values),
            _ => buffer.resize(buffer.len() + slot.len, 0.0),
        }
    }
    buffer.extend(
        present
            .iter()
            .map(|&p| if p && read_ok { 1.0 } else { 0.0 }),
    );
    PackedGrads {
        buffer,
        slots,
        read_error,
    }
}

struct GradPutter<'a> {
    grads: &'a mut GradientsParams,
    slots: &'a [Slot],
    values: &'a [f32],
    counts: &'a [f32],
    world_size: f32,
    index: usize,
    offset: usize,
}

impl ModuleVisitor for GradPutter<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !trainable(param) {
            return;
        }
        let slot = &self.slots[self.index];
        let count = self.counts[self.index];
        let range = self.offset..self.offset + slot.len;
        self.index += 1;
        self.offset += slot.len;
        if count <= 0.0 {
            return;
        }
        let mean: Vec<f32> = self.values[range]
            .iter()
            .map(|v| v / self.world_size)
            .collect();
        let data = TensorData::new(mean, param.lazy_shape());
        let tensor = Tensor::<D>::from_data(data, (&slot.device, slot.dtype));
        self.grads.register::<D>(param.id, tensor);
    }
}

/// Puts the summed buffer of [`take_grads`] back as gradients: each parameter's sum divided by
/// the world size (a rank without a gradient contributed zeros, as in PyTorch's DDP);
/// parameters no rank had a gradient for stay without one.
pub(crate) fn put_grads<M: Module>(
    module: &M,
    packed: &PackedGrads,
    summed: &[f32],
    world_size: usize,
    grads: &mut GradientsParams,
) {
    let elements: usize = packed.slots.iter().map(|s| s.len).sum();
    let (values, counts) = summed.split_at(elements);
    module.visit(&mut GradPutter {
        grads,
        slots: &packed.slots,
        values,
        counts,
        world_size: world_size.max(1) as f32,
        index: 0,
        offset: 0,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    #[derive(Module, Debug)]
    struct Net {
        layers: Vec<Linear>,
        head: Linear,
    }

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn net(device: &Device) -> Net {
        Net {
            layers: vec![
                LinearConfig::new(3, 4).init(device),
                LinearConfig::new(4, 4).init(device),
            ],
            head: LinearConfig::new(4, 1).init(device),
        }
    }

    fn grads_of(model: &Net, device: &Device) -> GradientsParams {
        let x = Tensor::<2>::from_data([[1.0f32, -2.0, 0.5], [0.25, 1.0, -1.0]], device);
        let y = model.layers.iter().fold(x, |x, l| l.forward(x).tanh());
        let loss = model.head.forward(y).powi_scalar(2).mean();
        GradientsParams::from_grads(loss.backward(), model)
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn layout_counts_every_float_parameter() {
        let d = device();
        let l = layout(&net(&d));
        assert_eq!(l.params, 6);
        assert_eq!(l.elements, 3 * 4 + 4 + 4 * 4 + 4 + 4 + 1);
        assert_eq!(l.fingerprint, layout(&net(&d)).fingerprint);
        let other = Net {
            layers: vec![LinearConfig::new(3, 5).init(&d)],
            head: LinearConfig::new(5, 1).init(&d),
        };
        assert_ne!(layout(&other).fingerprint, l.fingerprint);
    }

    #[test]
    fn params_round_trip_through_a_flat_buffer() {
        let d = device();
        let source = net(&d);
        let flat = read_params(&source).unwrap();
        assert_eq!(flat.len(), layout(&source).elements);
        assert_eq!(&flat[..12], &values(source.layers[0].weight.val())[..]);
        let target = write_params(net(&d), &flat);
        assert_eq!(read_params(&target).unwrap(), flat);
        // Still trainable: the copied parameters take gradients under their own ids.
        let grads = grads_of(&target, &d);
        assert_eq!(grads.len(), 6);
        assert!(grads.get::<2>(target.head.weight.id).is_some());
    }

    #[test]
    fn grads_pack_in_visit_order_with_presence_counts() {
        let d = device();
        let model = net(&d);
        let mut grads = grads_of(&model, &d);
        let first = values(grads.get::<2>(model.layers[0].weight.id).unwrap());
        let head_bias = values(
            grads
                .get::<1>(model.head.bias.as_ref().unwrap().id)
                .unwrap(),
        );
        let packed = take_grads(&model, &mut grads);
        assert_eq!(packed.read_error, None);
        assert_eq!(grads.len(), 0, "every gradient was moved into the buffer");
        let elements = layout(&model).elements;
        assert_eq!(packed.buffer.len(), elements + 6);
        assert_eq!(&packed.buffer[..12], &first[..]);
        assert_eq!(packed.buffer[elements - 1], head_bias[0]);
        assert_eq!(&packed.buffer[elements..], &[1.0; 6]);
        let norm = packed.buffer[..elements]
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        assert_eq!(packed.local_norm(), norm);
    }

    #[test]
    fn summed_buffer_unpacks_to_the_mean_over_the_world() {
        let d = device();
        let model = net(&d);
        let mut grads = grads_of(&model, &d);
        let before = values(grads.get::<2>(model.layers[1].weight.id).unwrap());
        let packed = take_grads(&model, &mut grads);
        // What a sum all-reduce over two ranks with identical gradients returns.
        let summed: Vec<f32> = packed.buffer.iter().map(|v| v + v).collect();
        put_grads(&model, &packed, &summed, 2, &mut grads);
        assert_eq!(grads.len(), 6);
        let after = values(grads.get::<2>(model.layers[1].weight.id).unwrap());
        assert_eq!(after, before, "(g + g) / 2 == g exactly");
    }

    #[test]
    fn a_parameter_unused_on_one_rank_is_divided_by_the_world_size() {
        let d = device();
        let model = net(&d);
        let mut grads = grads_of(&model, &d);
        let head = values(grads.get::<2>(model.head.weight.id).unwrap());
        let packed = take_grads(&model, &mut grads);
        // Two ranks; the other one had no gradient for anything (zeros, count 0): the sum is
        // this rank's buffer, counts 1.
        put_grads(&model, &packed, &packed.buffer, 2, &mut grads);
        let half: Vec<f32> = head.iter().map(|v| v / 2.0).collect();
        assert_eq!(values(grads.get::<2>(model.head.weight.id).unwrap()), half);
    }

    #[test]
    fn frozen_parameters_never_travel_and_stay_without_gradient() {
        let d = device();
        let mut model = net(&d);
        model.head.weight = model.head.weight.set_require_grad(false);
        let mut grads = grads_of(&model, &d);
        assert_eq!(grads.len(), 5);
        let packed = take_grads(&model, &mut grads);
        // The frozen 4 × 1 weight is not in the buffer: 5 gradients and 5 counts.
        let trainable = layout(&model).elements - 4;
        assert_eq!(packed.buffer.len(), trainable + 5);
        assert_eq!(&packed.buffer[trainable..], &[1.0; 5]);
        put_grads(&model, &packed, &packed.buffer, 1, &mut grads);
        assert_eq!(grads.len(), 5);
        assert!(grads.get::<2>(model.head.weight.id).is_none());
    }
}
