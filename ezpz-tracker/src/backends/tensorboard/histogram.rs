//! Histogram bucketing with TensorBoard's default bucket edges.
//!
//! The edges are TensorFlow's defaults (what `tf.summary.histogram` in TF1 and the C++
//! `Histogram` use): `±1e-12` growing by 10% per bucket up to `±1e20`, then `±f64::MAX`, and
//! `0` in the middle. A value `v` falls in the first bucket whose edge is greater than `v`.
//! Runs of empty buckets are written as one (TensorFlow's `EncodeToProto` without
//! `preserve_zero_buckets`), so a histogram costs at most two entries per value bucket.
//!
//! A histogram binned before ([`HistogramBins`]) keeps its bins: bucket `i` is bin `i`, its
//! limit the bin's right edge. TensorBoard's reader (`data_compat._migrate_histogram_value`)
//! drops the empty buckets at both ends and takes `min`/`max` (the values' own) as the outer
//! edges of the first and last non-empty bucket.

use std::sync::OnceLock;

use super::proto::HistogramProto;
use crate::histogram::HistogramBins;

/// The right edges of TensorBoard's default buckets, ascending.
pub fn default_bucket_limits() -> &'static [f64] {
    static LIMITS: OnceLock<Vec<f64>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        // The same repeated multiplication as TensorFlow, so the edges match bit for bit.
        let mut positive = Vec::new();
        let mut v = 1.0e-12;
        while v < 1.0e20 {
            positive.push(v);
            v *= 1.1;
        }
        positive.push(f64::MAX);
        let mut limits: Vec<f64> = positive.iter().rev().map(|v| -v).collect();
        limits.push(0.0);
        limits.extend_from_slice(&positive);
        limits
    })
}

/// Buckets the finite values of `values`.
///
/// # Errors
/// What is wrong when there are no finite values.
pub fn histogram(values: &[f64]) -> Result<HistogramProto, &'static str> {
    let limits = default_bucket_limits();
    let mut counts = vec![0.0f64; limits.len()];
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut num, mut sum, mut sum_squares) = (0.0, 0.0, 0.0);
    for &v in values.iter().filter(|v| v.is_finite()) {
        // First edge greater than `v`; `f64::MAX` itself stays in the last bucket.
        let b = limits
            .partition_point(|&edge| edge <= v)
            .min(limits.len() - 1);
        counts[b] += 1.0;
        min = min.min(v);
        max = max.max(v);
        num += 1.0;
        sum += v;
        sum_squares += v * v;
    }
    if num == 0.0 {
        return Err("has no finite values");
    }
    let mut bucket_limit = Vec::new();
    let mut bucket = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let (mut end, count) = (limits[i], counts[i]);
        i += 1;
        if count == 0.0 {
            while i < counts.len() && counts[i] == 0.0 {
                end = limits[i];
                i += 1;
            }
        }
        bucket_limit.push(end);
        bucket.push(count);
    }
    Ok(HistogramProto {
        min,
        max,
        num,
        sum,
        sum_squares,
        bucket_limit,
        bucket,
    })
}

/// The bins as they are.
///
/// # Errors
/// What is wrong with `bins` when no histogram can be drawn from them.
pub fn from_bins(bins: &HistogramBins) -> Result<HistogramProto, &'static str> {
    if let Some(problem) = bins.problem() {
        return Err(problem);
    }
    Ok(HistogramProto {
        min: bins.min,
        max: bins.max,
        num: bins.count() as f64,
        sum: bins.sum,
        sum_squares: bins.sum_squares,
        bucket_limit: bins.edges()[1..].to_vec(),
        bucket: bins.counts.iter().map(|&c| c as f64).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_edges_are_symmetric_exponential_with_zero_in_the_middle() {
        let limits = default_bucket_limits();
        // 774 positive edges from 1e-12 below 1e20, then f64::MAX; mirrored; plus 0.
        assert_eq!(limits.len(), 2 * 775 + 1);
        let mid = limits.len() / 2;
        assert_eq!(limits[mid], 0.0);
        assert_eq!(limits[mid + 1], 1.0e-12);
        assert_eq!(limits[mid - 1], -1.0e-12);
        assert_eq!(limits[limits.len() - 1], f64::MAX);
        assert_eq!(limits[0], -f64::MAX);
        assert!(limits[limits.len() - 2] < 1.0e20 && limits[limits.len() - 2] > 1.0e20 / 1.1);
        assert!(limits.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_value_lands_in_the_bucket_whose_range_holds_it() {
        let values = [-2.0, 0.0, 0.0, 1.0, 1.0, 1.0, 3.5, f64::NAN, f64::INFINITY];
        let h = histogram(&values).unwrap();
        assert_eq!((h.num, h.min, h.max), (7.0, -2.0, 3.5));
        assert_eq!(h.sum, 3.5 + 3.0 - 2.0);
        assert_eq!(h.sum_squares, 4.0 + 3.0 + 12.25);
        assert_eq!(h.bucket.iter().sum::<f64>(), 7.0);
        assert_eq!(h.bucket_limit.len(), h.bucket.len());
        // Bucket k holds [bucket_limit[k-1], bucket_limit[k]).
        for v in values.iter().filter(|v| v.is_finite()) {
            let k = h.bucket_limit.partition_point(|&e| e <= *v);
            let expected = values.iter().filter(|x| *x == v).count() as f64;
            assert_eq!(h.bucket[k], expected, "value {v}");
            assert!(k == 0 || h.bucket_limit[k - 1] <= *v);
        }
        // Four occupied buckets, separated and surrounded by collapsed empty runs.
        assert_eq!(h.bucket.iter().filter(|c| **c > 0.0).count(), 4);
        assert!(h.bucket.len() <= 2 * 4 + 1);
        assert_eq!(*h.bucket_limit.last().unwrap(), f64::MAX);
    }

    #[test]
    fn only_non_finite_values_make_no_histogram() {
        assert!(histogram(&[f64::NAN, f64::NEG_INFINITY]).is_err());
        assert!(histogram(&[]).is_err());
    }

    #[test]
    fn bins_are_written_as_they_are() {
        let bins = HistogramBins::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN]);
        let h = from_bins(&bins).unwrap();
        assert_eq!(
            (h.min, h.max, h.num, h.sum, h.sum_squares),
            (1.0, 5.0, 5.0, 15.0, 55.0)
        );
        assert_eq!(h.bucket_limit.len(), 64);
        assert_eq!((h.bucket_limit[0], h.bucket_limit[63]), (1.0625, 5.0));
        assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
        assert_eq!((h.bucket[0], h.bucket[16], h.bucket[63]), (1.0, 1.0, 1.0));
        let one = from_bins(&HistogramBins::from_values(&[2.0])).unwrap();
        assert_eq!((one.min, one.max, one.bucket[32]), (2.0, 2.0, 1.0));
        let empty = HistogramBins::from_values(&[f64::NAN]);
        assert_eq!(from_bins(&empty), Err("has no finite values"));
    }
}
