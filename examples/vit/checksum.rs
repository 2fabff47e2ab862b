//! The replicas' identity check: the sum of every parameter, in f64, on the host.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

/// Sum of all float parameters of `model`, accumulated in f64 in visiting order (the same on
/// every rank), so equal parameters give bit-equal sums.
pub fn param_checksum<M: Module>(model: &M) -> f64 {
    let mut v = Sum(0.0);
    model.visit(&mut v);
    v.0
}

struct Sum(f64);

impl ModuleVisitor for Sum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // A tensor that cannot be read makes the sum NaN: the check then fails loudly.
        match param.val().into_data().try_to_vec::<f32>() {
            Ok(values) => self.0 += values.iter().map(|&x| x as f64).sum::<f64>(),
            Err(_) => self.0 = f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    #[test]
    fn sums_every_parameter() {
        let device = Device::flex();
        let lin = LinearConfig::new(3, 2).init(&device);
        let weight: Vec<f32> = lin.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let bias: Vec<f32> = lin
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let expected: f64 = weight.iter().chain(&bias).map(|&x| x as f64).sum();
        assert_eq!(param_checksum(&lin), expected);
    }
}
