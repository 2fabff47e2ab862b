//! [`Stats`]: the arithmetic of one key's values across ranks.

use std::sync::Arc;

use crate::value::{Metric, Value};

/// Mean, extremes and population standard deviation of one key's values across ranks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Population standard deviation (divides by N), computed about the mean in two passes so
    /// large values with a small spread keep full precision.
    pub std: f64,
}

impl Stats {
    /// Statistics of `values` (NaN when empty or when any value is NaN).
    pub fn of(values: &[f64]) -> Stats {
        if values.is_empty() {
            return Stats {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                std: f64::NAN,
            };
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let any_nan = values.iter().any(|v| v.is_nan());
        if min == max && !any_nan {
            // Equal values (a learning rate, a step counter): exactly that value and 0, not
            // the rounding residue of summing and dividing.
            return Stats {
                mean: min,
                min,
                max,
                std: 0.0,
            };
        }
        Stats {
            mean,
            min: if any_nan { f64::NAN } else { min },
            max: if any_nan { f64::NAN } else { max },
            std: var.sqrt(),
        }
    }

    /// The four aggregate metrics for `key`, in the order mean, min, max, std.
    pub fn metrics(&self, key: &str) -> [Metric; 4] {
        [
            (Arc::from(format!("{key}/mean")), Value::F64(self.mean)),
            (Arc::from(format!("{key}/min")), Value::F64(self.min)),
            (Arc::from(format!("{key}/max")), Value::F64(self.max)),
            (Arc::from(format!("{key}/std")), Value::F64(self.std)),
        ]
    }
}

/// Whether `key` names an aggregate (`…/mean`, `/min`, `/max`, `/std`).
pub fn is_aggregate_key(key: &str) -> bool {
    ["/mean", "/min", "/max", "/std"]
        .iter()
        .any(|s| key.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_std_is_exact_for_large_values_with_small_spread() {
        let values = [
            123_880.0, 123_880.1, 123_880.2, 123_880.3, 123_880.4, 123_880.5,
        ];
        let s = Stats::of(&values);
        let mean = 123_880.25;
        let exact = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 6.0).sqrt();
        assert!(
            (s.std - exact).abs() / exact < 1e-9,
            "{} vs {}",
            s.std,
            exact
        );
        assert!((s.std - 0.170_782_512_765_993_3).abs() < 1e-6);
        assert_eq!(s.min, 123_880.0);
        assert_eq!(s.max, 123_880.5);
    }

    #[test]
    fn equal_values_give_that_value_and_zero_std() {
        let s = Stats::of(&[0.1, 0.1, 0.1]);
        assert_eq!((s.mean, s.std), (0.1, 0.0));
        assert!(Stats::of(&[1.0, f64::NAN]).mean.is_nan());
        assert!(Stats::of(&[1.0, f64::NAN]).std.is_nan());
    }

    #[test]
    fn aggregate_key_names() {
        assert!(is_aggregate_key("train/loss/std"));
        assert!(!is_aggregate_key("train/loss"));
        let m = Stats::of(&[1.0, 2.0]).metrics("loss");
        assert_eq!(&*m[0].0, "loss/mean");
        assert_eq!(m[0].1, Value::F64(1.5));
        assert_eq!(m[3].1, Value::F64(0.5));
    }
}
