//! Histograms already binned: equal-width bins over the finite values' range, as `wandb`
//! (`np.histogram(values, bins=64)`) makes them. One rule bins raw values here and is the rule
//! a producer that bins elsewhere (on a GPU) follows, so both give the same counts.

use std::sync::Arc;

/// Bins of a histogram made from raw values (W&B's default; what `ezpz_burn::Watch` bins on the
/// device).
pub const HISTOGRAM_BINS: usize = 64;

/// A histogram binned before it reaches the tracker: `counts.len()` equal-width bins spanning
/// [`range`](HistogramBins::range), plus summary statistics of the finite values.
///
/// Build it with [`from_values`](HistogramBins::from_values), or bin elsewhere with
/// [`bin_index`](HistogramBins::bin_index) (same counts) and fill the fields; log it with
/// [`Tracker::log_histogram_bins`](crate::Tracker::log_histogram_bins). NaN and ±inf are not in
/// any bin, nor in `min`, `max`, `sum` or `sum_squares`: they are counted in `nonfinite`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramBins {
    /// The smallest finite value (any value when there is none).
    pub min: f64,
    /// The largest finite value (any value when there is none).
    pub max: f64,
    /// Finite values per bin (`HISTOGRAM_BINS` for [`from_values`](HistogramBins::from_values)).
    pub counts: Vec<u64>,
    /// The sum of the finite values.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_squares: f64,
    /// Values left out: NaN, +inf, -inf.
    pub nonfinite: u64,
}

impl HistogramBins {
    /// Bins `values` into [`HISTOGRAM_BINS`] bins (NaN and ±inf counted apart).
    ///
    /// ```
    /// use ezpz_tracker::HistogramBins;
    /// let h = HistogramBins::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN]);
    /// assert_eq!((h.min, h.max, h.count(), h.nonfinite), (1.0, 5.0, 5, 1));
    /// assert_eq!(h.edges()[..2], [1.0, 1.0625]);
    /// assert_eq!((h.counts[0], h.counts[16], h.counts[63]), (1, 1, 1));
    /// ```
    pub fn from_values(values: &[f64]) -> Self {
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let (min, max) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let mut h = HistogramBins {
            min,
            max,
            counts: vec![0; HISTOGRAM_BINS],
            sum: 0.0,
            sum_squares: 0.0,
            nonfinite: 0,
        };
        for v in finite() {
            h.counts[Self::bin_index(v, min, max, HISTOGRAM_BINS)] += 1;
            h.sum += v;
            h.sum_squares += v * v;
        }
        h.nonfinite = values.len() as u64 - h.count();
        h
    }

    /// The bin of a finite value `v` among `bins` equal-width bins over the finite values'
    /// `min..=max`: `⌊(v − min) / (max − min) · bins⌋`, the largest value in the last bin, and
    /// every value in the middle bin when `min == max` (numpy's rule: one value `v` spans
    /// `v ± 0.5`).
    pub fn bin_index(v: f64, min: f64, max: f64, bins: usize) -> usize {
        if min == max {
            return bins / 2;
        }
        let at = (v - min) / (max - min) * bins as f64;
        (at as usize).min(bins.saturating_sub(1))
    }

    /// The finite values binned.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The span of the bins: `(min, max)`, or `(v − 0.5, v + 0.5)` when every finite value is
    /// `v` (numpy's and W&B's rule).
    pub fn range(&self) -> (f64, f64) {
        if self.min == self.max {
            (self.min - 0.5, self.max + 0.5)
        } else {
            (self.min, self.max)
        }
    }

    /// The `counts.len() + 1` bin edges, ascending: bin `i` holds `[edges[i], edges[i + 1])`
    /// (the last one its right edge too).
    pub fn edges(&self) -> Vec<f64> {
        let (lo, hi) = self.range();
        let n = self.counts.len();
        let width = (hi - lo) / n as f64;
        (0..=n)
            .map(|i| if i == n { hi } else { lo + width * i as f64 })
            .collect()
    }

    /// Why a backend cannot draw it, if it cannot: no finite value, no bins, or a range that
    /// is not finite and ascending.
    #[cfg_attr(not(any(feature = "tensorboard", feature = "wandb")), allow(dead_code))]
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.counts.is_empty() {
            Some("has no bins")
        } else if self.count() == 0 {
            Some("has no finite values")
        } else if !(self.min.is_finite() && self.max.is_finite() && self.min <= self.max) {
            Some("has a range that is not finite and ascending")
        } else {
            None
        }
    }
}

/// What a [`HistogramRecord`](crate::HistogramRecord) holds.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramData {
    /// Raw values ([`Tracker::log_histogram`](crate::Tracker::log_histogram)); each backend
    /// buckets them its own way. Non-finite ones are kept; backends leave them out.
    Values(Arc<[f64]>),
    /// Already binned ([`Tracker::log_histogram_bins`](crate::Tracker::log_histogram_bins)).
    Bins(Arc<HistogramBins>),
}

impl HistogramData {
    /// The raw values, if that is what was logged.
    pub fn values(&self) -> Option<&[f64]> {
        match self {
            HistogramData::Values(v) => Some(v),
            HistogramData::Bins(_) => None,
        }
    }

    /// The bins: as logged, or the raw values binned by
    /// [`HistogramBins::from_values`].
    pub fn bins(&self) -> std::borrow::Cow<'_, HistogramBins> {
        match self {
            HistogramData::Values(v) => std::borrow::Cow::Owned(HistogramBins::from_values(v)),
            HistogramData::Bins(b) => std::borrow::Cow::Borrowed(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_numpys_bins_and_non_finite_ones_are_counted_apart() {
        let values = [
            1.0,
            2.0,
            3.0,
            4.0,
            5.0,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
        ];
        let h = HistogramBins::from_values(&values);
        assert_eq!((h.min, h.max, h.nonfinite, h.count()), (1.0, 5.0, 3, 5));
        assert_eq!((h.sum, h.sum_squares), (15.0, 55.0));
        let ones: Vec<usize> = (0..64).filter(|i| h.counts[*i] == 1).collect();
        assert_eq!(ones, [0, 16, 32, 48, 63]);
        let edges = h.edges();
        assert_eq!(
            (edges.len(), edges[0], edges[1], edges[64]),
            (65, 1.0, 1.0625, 5.0)
        );
        assert_eq!(h.problem(), None);
    }

    #[test]
    fn equal_values_fill_the_middle_bin_of_a_unit_range() {
        let h = HistogramBins::from_values(&[2.0, 2.0, 2.0]);
        assert_eq!(h.range(), (1.5, 2.5));
        assert_eq!(h.counts[32], 3);
        assert_eq!(h.count(), 3);
        let one = HistogramBins::from_values(&[-7.0]);
        assert_eq!(
            (one.counts[32], one.edges()[0], one.edges()[64]),
            (1, -7.5, -6.5)
        );
    }

    #[test]
    fn nothing_finite_is_a_problem_backends_name() {
        let h = HistogramBins::from_values(&[f64::NAN, f64::NEG_INFINITY]);
        assert_eq!((h.count(), h.nonfinite), (0, 2));
        assert_eq!(h.problem(), Some("has no finite values"));
        assert_eq!(
            HistogramBins::from_values(&[]).problem(),
            Some("has no finite values")
        );
        let bad = HistogramBins {
            min: 3.0,
            max: 1.0,
            ..HistogramBins::from_values(&[1.0])
        };
        assert!(bad.problem().is_some());
    }
}
