//! The gradients an optimizer step hands over: burn's `GradientsParams` (`TrainStep::optimize`)
//! or one set per device (`TrainStep::optimize_multi`, burn's multi-device strategy with
//! `MultiDeviceOptim::OptimSharded`).

use burn::module::ParamId;
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::tensor::Tensor;

/// Gradients [`Watch::observe`](crate::Watch::observe) accepts: `GradientsParams` and
/// `MultiGradientsParams` (whose gradient of a parameter is the sum over its devices, as
/// the optimizer applies it).
pub trait Gradients: sealed::Sealed {}

impl Gradients for GradientsParams {}
impl Gradients for MultiGradientsParams {}

pub(crate) mod sealed {
    use super::*;

    /// The gradient of one parameter, as the optimizer will apply it.
    pub trait Sealed {
        fn grad<const D: usize>(&self, id: ParamId) -> Option<Tensor<D>>;
    }

    impl Sealed for GradientsParams {
        fn grad<const D: usize>(&self, id: ParamId) -> Option<Tensor<D>> {
            self.get::<D>(id)
        }
    }

    impl Sealed for MultiGradientsParams {
        /// burn's `MultiGradientsParams::remove` without removing: the devices' gradients
        /// summed on the first device that has one.
        fn grad<const D: usize>(&self, id: ParamId) -> Option<Tensor<D>> {
            let mut sum: Option<Tensor<D>> = None;
            for (grads, _) in &self.grads {
                if let Some(g) = grads.get::<D>(id) {
                    sum = Some(match sum {
                        Some(s) => {
                            let device = s.device();
                            s + g.to_device(&device)
                        }
                        None => g,
                    });
                }
            }
            sum
        }
    }
}
