//! Plot axes for any finite data: round ticks, a log scale for wide positive ranges, and a
//! mapping to pixels that never overflows.
//!
//! plotters' own float axis computes `hi - lo` and steps ticks by adding to `lo`; near
//! `f64::MAX` the span is infinite and the tick loop never ends, and a span below the
//! values' precision stalls it. This axis works with half-spans (`hi / 2 - lo / 2`, finite
//! for any finite pair), counts ticks before making them, and clamps what it maps.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

use super::text::number;

/// The smallest positive `f64` (a subnormal).
const TINY: f64 = 5e-324;

/// Decades a positive series must span for its axis to become logarithmic.
pub(crate) const LOG_DECADES: f64 = 3.0;

/// One plot axis: its finite range, scale and ticks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
    digits: usize,
}

/// `lo / 2 + hi / 2` without overflow.
fn mid(lo: f64, hi: f64) -> f64 {
    lo / 2.0 + hi / 2.0
}

impl Axis {
    /// A linear axis over `lo..=hi` (finite, any order), padded by `pad` of its span on
    /// each side; a single value gets a span of its own.
    pub(crate) fn linear(lo: f64, hi: f64, pad: f64, max_ticks: usize) -> Axis {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let half = hi / 2.0 - lo / 2.0;
        let (lo, hi) = if half > 0.0 {
            let p = half * 2.0 * pad;
            ((lo - p).max(-f64::MAX), (hi + p).min(f64::MAX))
        } else {
            let p = if lo != 0.0 {
                (lo.abs() * 0.1).max(f64::MIN_POSITIVE)
            } else {
                1.0
            };
            ((lo - p).max(-f64::MAX), (hi + p).min(f64::MAX))
        };
        let ticks = linear_ticks(lo, hi, max_ticks.max(2));
        let digits = label_digits(&ticks);
        Axis {
            lo,
            hi,
            log: false,
            ticks,
            digits,
        }
    }

    /// A log10 axis over `lo..=hi` (both positive), padded by `pad` of its span in decades.
    pub(crate) fn log(lo: f64, hi: f64, pad: f64, max_ticks: usize) -> Axis {
        let (lo, hi) = (lo.min(hi).max(TINY), lo.max(hi).max(TINY));
        let (a, b) = (lo.log10(), hi.log10());
        let p = ((b - a) * pad).max(0.05);
        let lo = 10f64.powf(a - p).max(TINY);
        let hi = 10f64.powf(b + p).min(f64::MAX);
        let (a, b) = (lo.log10(), hi.log10());
        let first = a.ceil() as i32;
        let last = b.floor() as i32;
        let decades = (last - first).max(0) as usize + 1;
        let every = decades.div_ceil(max_ticks.max(2)).max(1);
        // Decades that are multiples of the stride: 1e-9, 1e-6, 1e-3, 1, 1e3, …
        let ticks: Vec<f64> = (first..=last)
            .filter(|k| k.rem_euclid(every as i32) == 0)
            .map(|k| 10f64.powi(k))
            .filter(|t| *t > 0.0 && t.is_finite() && (lo..=hi).contains(t))
            .collect();
        Axis {
            lo,
            hi,
            log: true,
            ticks,
            digits: 3,
        }
    }

    /// A log axis when every value is positive and they span more than [`LOG_DECADES`]
    /// decades, else a linear one. `lo`/`hi`: the smallest and largest finite value.
    pub(crate) fn auto(lo: f64, hi: f64, pad: f64, max_ticks: usize) -> Axis {
        if lo > 0.0 && hi > 0.0 && hi.log10() - lo.log10() > LOG_DECADES {
            Axis::log(lo, hi, pad, max_ticks)
        } else {
            Axis::linear(lo, hi, pad, max_ticks)
        }
    }

    /// Whether the scale is logarithmic.
    pub(crate) fn is_log(&self) -> bool {
        self.log
    }

    /// The ticks, in increasing order.
    pub(crate) fn ticks(&self) -> &[f64] {
        &self.ticks
    }

    /// The lower and upper end.
    pub(crate) fn bounds(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// Where `v` lies between the ends (0 at `lo`, 1 at `hi`); NaN and values off a log
    /// scale (≤ 0) go to the lower end, infinities to the nearer end.
    pub(crate) fn fraction(&self, v: f64) -> f64 {
        let t = if self.log {
            if v > 0.0 {
                let (a, b) = (self.lo.log10(), self.hi.log10());
                (v.log10() - a) / (b - a)
            } else {
                0.0
            }
        } else {
            let half = self.hi / 2.0 - self.lo / 2.0;
            (v / 2.0 - self.lo / 2.0) / half
        };
        if t.is_nan() {
            0.0
        } else {
            t.clamp(-4.0, 5.0)
        }
    }

    /// A tick label: enough significant digits to tell neighbouring ticks apart.
    pub(crate) fn label(&self, v: f64) -> String {
        if self.log {
            let exp = v.log10().round();
            let power = (v / 10f64.powf(exp) - 1.0).abs() < 1e-9;
            return if power && !(-3.0..4.0).contains(&exp) {
                format!("1e{exp}")
            } else {
                number(v, 2)
            };
        }
        number(v, self.digits)
    }
}

/// Round ticks (1, 2 or 5 × 10^k apart) inside `lo..=hi`, at most about `n`.
fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let half = hi / 2.0 - lo / 2.0;
    let raw = half / (n as f64 / 2.0);
    if !(raw > 0.0 && raw.is_finite()) {
        return vec![mid(lo, hi)];
    }
    let mag = 10f64.powi(raw.log10().floor() as i32);
    let step = if mag > 0.0 && mag.is_finite() {
        let norm = raw / mag;
        let nice = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .find(|m| *m >= norm)
            .unwrap_or(10.0);
        let s = nice * mag;
        if s.is_finite() {
            s
        } else {
            raw
        }
    } else {
        raw
    };
    let (k0, k1) = ((lo / step).ceil(), (hi / step).floor());
    let count = k1 - k0 + 1.0;
    if !(count >= 1.0 && count <= 4.0 * n as f64) {
        return vec![mid(lo, hi)];
    }
    let mut ticks: Vec<f64> = Vec::with_capacity(count as usize);
    for j in 0..count as usize {
        let t = (k0 + j as f64) * step;
        // `-0` reads badly; a value rounded past the ends is left out.
        let t = if t == 0.0 { 0.0 } else { t };
        if t.is_finite() && t >= lo && t <= hi && ticks.last() != Some(&t) {
            ticks.push(t);
        }
    }
    if ticks.is_empty() {
        ticks.push(mid(lo, hi));
    }
    ticks
}

/// Significant digits that keep the ticks' labels distinct (4 at least, 17 at most).
fn label_digits(ticks: &[f64]) -> usize {
    for digits in 4..=17 {
        let labels: Vec<String> = ticks.iter().map(|t| number(*t, digits)).collect();
        if labels.windows(2).all(|w| w[0] != w[1]) {
            return digits;
        }
    }
    17
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = self.fraction(*value);
        let len = f64::from(limit.1) - f64::from(limit.0);
        (f64::from(limit.0) + t * len).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let max = hint.max_num_points();
        if max == 0 {
            return Vec::new();
        }
        if self.ticks.len() <= max {
            return self.ticks.clone();
        }
        let every = self.ticks.len().div_ceil(max);
        self.ticks.iter().step_by(every).copied().collect()
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(axis: &Axis) {
        let (lo, hi) = axis.bounds();
        assert!(lo.is_finite() && hi.is_finite() && lo < hi, "{axis:?}");
        assert!(
            !axis.ticks().is_empty() && axis.ticks().len() <= 40,
            "{axis:?}"
        );
        assert!(axis.ticks().windows(2).all(|w| w[0] < w[1]), "{axis:?}");
        let labels: Vec<String> = axis.ticks().iter().map(|t| axis.label(*t)).collect();
        assert!(labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
        assert!(labels.iter().all(|l| l.len() <= 24), "{labels:?}");
        for t in axis.ticks() {
            let p = axis.map(t, (0, 400));
            assert!((0..=400).contains(&p), "{t} → {p}");
        }
    }

    #[test]
    fn any_finite_range_gets_a_finite_axis_with_distinct_ticks() {
        let cases = [
            (f64::MAX, f64::MAX),
            (-f64::MAX, f64::MAX),
            (-f64::MAX, -f64::MAX),
            (1e308, 1e308),
            (TINY, TINY),
            (TINY, 100.0 * TINY),
            (0.0, 0.0),
            (1.0, 1.0 + 4.0 * f64::EPSILON),
            (1e10, 1e10 + 1e-5),
            (-1e-9, 1e-9),
            (3.5, 3.5),
            (0.0, 1e9),
        ];
        for (lo, hi) in cases {
            for axis in [Axis::linear(lo, hi, 0.06, 8), Axis::auto(lo, hi, 0.06, 8)] {
                check(&axis);
            }
        }
    }

    #[test]
    fn log_scale_for_more_than_three_positive_decades() {
        let a = Axis::auto(1e-9, 1e9, 0.06, 8);
        assert!(a.is_log());
        check(&a);
        let labels: Vec<String> = a.ticks().iter().map(|t| a.label(*t)).collect();
        assert!(labels.contains(&"1e-9".to_string()), "{labels:?}");
        assert!(labels.contains(&"1000".to_string()) || labels.contains(&"1e3".to_string()));
        assert!(!Axis::auto(1.0, 999.0, 0.06, 8).is_log());
        assert!(!Axis::auto(-1.0, 1e9, 0.06, 8).is_log());
        let wide = Axis::auto(TINY, f64::MAX, 0.06, 8);
        assert!(wide.is_log());
        check(&wide);
    }

    #[test]
    fn tick_labels_are_readable_from_1e_9_to_1e9() {
        for k in -9..=9 {
            let v = 10f64.powi(k);
            let a = Axis::linear(v, 3.0 * v, 0.0, 8);
            check(&a);
            for t in a.ticks() {
                let l = a.label(*t);
                assert!(l.len() <= 8, "{v}: `{l}`");
            }
        }
    }

    #[test]
    fn mapping_clamps_what_lies_outside() {
        let a = Axis::linear(0.0, 10.0, 0.0, 8);
        assert_eq!(a.map(&0.0, (0, 100)), 0);
        assert_eq!(a.map(&10.0, (0, 100)), 100);
        assert!(a.map(&f64::INFINITY, (0, 100)) <= 500);
        assert_eq!(a.map(&f64::NAN, (0, 100)), 0);
        let l = Axis::log(1.0, 1e6, 0.0, 8);
        assert_eq!(l.map(&-1.0, (0, 100)), 0);
    }
}
