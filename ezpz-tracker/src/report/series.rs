//! Bounded-memory summaries of a metric: exact running statistics over every point, and an
//! evenly thinned series for plotting.
//!
//! The thinned series keeps at most `2 × cap` buckets of consecutive rows. When it fills,
//! neighbouring buckets merge pairwise and the rows-per-bucket stride doubles, so a run of
//! any length ends with between `cap` and `2 × cap` buckets covering it evenly. Each
//! bucket keeps the sum, count, minimum and maximum of every channel, so a plot of a
//! million steps still shows the spikes (as the bucket's min–max envelope).

/// One of the values logged for a metric: the raw (rank-0) value and its cross-rank
/// aggregates `key/mean`, `key/min`, `key/max`, `key/std`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// The value as logged (`train/loss`).
    Raw,
    /// The cross-rank mean (`train/loss/mean`).
    Mean,
    /// The cross-rank minimum (`train/loss/min`).
    Min,
    /// The cross-rank maximum (`train/loss/max`).
    Max,
    /// The cross-rank population standard deviation (`train/loss/std`).
    Std,
}

impl Channel {
    /// Every channel, in storage order.
    pub const ALL: [Channel; 5] = [
        Channel::Raw,
        Channel::Mean,
        Channel::Min,
        Channel::Max,
        Channel::Std,
    ];

    /// The key suffix of an aggregate channel (`/mean`, …); empty for [`Channel::Raw`].
    pub fn suffix(self) -> &'static str {
        match self {
            Channel::Raw => "",
            Channel::Mean => "/mean",
            Channel::Min => "/min",
            Channel::Max => "/max",
            Channel::Std => "/std",
        }
    }

    /// Splits `train/loss/std` into (`train/loss`, [`Channel::Std`]); a key without an
    /// aggregate suffix is its own base with [`Channel::Raw`].
    pub fn split(key: &str) -> (&str, Channel) {
        for ch in &Channel::ALL[1..] {
            if let Some(base) = key.strip_suffix(ch.suffix()) {
                if !base.is_empty() {
                    return (base, *ch);
                }
            }
        }
        (key, Channel::Raw)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Exact statistics of one channel over the whole run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunningStats {
    /// Finite values seen.
    pub count: u64,
    /// NaN and infinite values seen (left out of mean, min and max).
    pub non_finite: u64,
    /// Mean of the finite values (NaN when there are none).
    pub mean: f64,
    /// Smallest finite value (NaN when there are none).
    pub min: f64,
    /// Largest finite value (NaN when there are none).
    pub max: f64,
    /// The last value logged, finite or not.
    pub last: f64,
    /// The step of the last value.
    pub last_step: u64,
}

impl Default for RunningStats {
    fn default() -> Self {
        RunningStats {
            count: 0,
            non_finite: 0,
            mean: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            last: f64::NAN,
            last_step: 0,
        }
    }
}

impl RunningStats {
    /// Adds one value.
    pub fn push(&mut self, step: u64, v: f64) {
        self.last = v;
        self.last_step = step;
        if !v.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.count += 1;
        if self.count == 1 {
            self.mean = v;
            self.min = v;
            self.max = v;
        } else {
            self.mean = running_mean(self.mean, v, self.count);
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    /// Values seen, finite or not.
    pub fn total(&self) -> u64 {
        self.count + self.non_finite
    }
}

/// The mean of `n` values from the mean of the first `n - 1` and the `n`-th value `v`.
///
/// Incremental, with no running sum and no `v - mean` (both overflow near `f64::MAX`): each
/// term is at most `f64::MAX` in size, and the result stays within the values' range.
fn running_mean(mean: f64, v: f64, n: u64) -> f64 {
    let n = n as f64;
    let m = (mean - mean / n) + v / n;
    m.clamp(mean.min(v), mean.max(v))
}

/// Mean, count and extremes of the finite values of one channel in one bucket, and how
/// many values were not finite.
#[derive(Debug, Clone, Copy)]
struct Acc {
    mean: f64,
    n: u32,
    non_finite: u32,
    min: f64,
    max: f64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        mean: 0.0,
        n: 0,
        non_finite: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn add(&mut self, v: f64) {
        if !v.is_finite() {
            self.non_finite = self.non_finite.saturating_add(1);
            return;
        }
        self.n += 1;
        self.mean = if self.n == 1 {
            v
        } else {
            running_mean(self.mean, v, u64::from(self.n))
        };
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Acc) {
        if other.n > 0 {
            let total = f64::from(self.n) + f64::from(other.n);
            // Weights below 1: no product overflows.
            let mean =
                self.mean * (f64::from(self.n) / total) + other.mean * (f64::from(other.n) / total);
            self.mean = mean.clamp(self.mean.min(other.mean), self.mean.max(other.mean));
            self.n += other.n;
        }
        self.non_finite = self.non_finite.saturating_add(other.non_finite);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// One plotted point: a bucket of rows summarised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesPoint {
    /// The bucket's middle step.
    pub step: f64,
    /// Mean of the bucket's finite values (the value itself when the bucket holds one row).
    pub mean: f64,
    /// Smallest finite value in the bucket.
    pub min: f64,
    /// Largest finite value in the bucket.
    pub max: f64,
}

/// A bucket with values that were not finite (NaN or ±infinity), which a plot marks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinitePoint {
    /// The bucket's middle step.
    pub step: f64,
    /// NaN and infinite values in the bucket.
    pub count: u32,
}

/// A bounded, evenly thinned series of rows with up to five [`Channel`]s: at most `2 × cap`
/// buckets of consecutive rows, each keeping every channel's sum, count, minimum and maximum,
/// so a plot of a million steps still shows the spikes.
#[derive(Debug, Clone)]
pub struct ThinnedSeries {
    cap: usize,
    stride: u64,
    rows_in_last: u64,
    rows: u64,
    /// First and last step of each bucket.
    steps: Vec<(u64, u64)>,
    /// Per channel (allocated on first use), one accumulator per bucket.
    channels: [Option<Vec<Acc>>; 5],
}

impl ThinnedSeries {
    /// An empty series that keeps between `cap` and `2 × cap` buckets once long enough
    /// (`cap` is at least 1).
    pub fn new(cap: usize) -> Self {
        ThinnedSeries {
            cap: cap.max(1),
            stride: 1,
            rows_in_last: 0,
            rows: 0,
            steps: Vec::new(),
            channels: Default::default(),
        }
    }

    /// Adds one row at `step`: each channel's value if it was logged (non-finite values
    /// count as a row but are not plotted).
    pub fn push(&mut self, step: u64, values: &[Option<f64>; 5]) {
        self.rows += 1;
        if self.steps.is_empty() || self.rows_in_last >= self.stride {
            if self.steps.len() >= 2 * self.cap {
                self.halve();
            }
            if self.steps.is_empty() || self.rows_in_last >= self.stride {
                self.steps.push((step, step));
                for ch in self.channels.iter_mut().flatten() {
                    ch.push(Acc::EMPTY);
                }
                self.rows_in_last = 0;
            }
        }
        let n = self.steps.len();
        self.rows_in_last += 1;
        if let Some(last) = self.steps.last_mut() {
            last.1 = step;
        }
        for (i, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            let acc = self.channels[i].get_or_insert_with(|| vec![Acc::EMPTY; n]);
            acc[n - 1].add(*v);
        }
    }

    /// Merges neighbouring buckets pairwise and doubles the stride.
    fn halve(&mut self) {
        let pairs = self.steps.len().div_ceil(2);
        for i in 0..pairs {
            let a = self.steps[2 * i];
            let b = self.steps.get(2 * i + 1).copied().unwrap_or(a);
            self.steps[i] = (a.0, b.1);
        }
        let odd_tail = self.steps.len() % 2 == 1;
        self.steps.truncate(pairs);
        for ch in self.channels.iter_mut().flatten() {
            for i in 0..pairs {
                let mut acc = ch[2 * i];
                if let Some(next) = ch.get(2 * i + 1) {
                    acc.merge(next);
                }
                ch[i] = acc;
            }
            ch.truncate(pairs);
        }
        // A full last pair makes a full bucket; an unpaired last bucket keeps filling.
        self.rows_in_last = if odd_tail {
            self.rows_in_last
        } else {
            self.stride + self.rows_in_last
        };
        self.stride *= 2;
    }

    /// Rows pushed.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows per bucket (1 while nothing has been thinned).
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether `channel` was ever logged.
    pub fn has(&self, channel: Channel) -> bool {
        self.channels[channel.index()].is_some()
    }

    /// The buckets of `channel` that hold at least one finite value.
    pub fn points(&self, channel: Channel) -> Vec<SeriesPoint> {
        let Some(accs) = &self.channels[channel.index()] else {
            return Vec::new();
        };
        self.steps
            .iter()
            .zip(accs)
            .filter(|(_, a)| a.n > 0)
            .map(|((first, last), a)| SeriesPoint {
                step: (*first as f64 + *last as f64) / 2.0,
                mean: a.mean,
                min: a.min,
                max: a.max,
            })
            .collect()
    }

    /// The buckets of `channel` that hold NaN or infinite values.
    pub fn non_finite(&self, channel: Channel) -> Vec<NonFinitePoint> {
        let Some(accs) = &self.channels[channel.index()] else {
            return Vec::new();
        };
        self.steps
            .iter()
            .zip(accs)
            .filter(|(_, a)| a.non_finite > 0)
            .map(|((first, last), a)| NonFinitePoint {
                step: (*first as f64 + *last as f64) / 2.0,
                count: a.non_finite,
            })
            .collect()
    }

    /// Moves `channel` out into a new series of its own, as its raw channel (for an
    /// aggregate-looking key whose base was never logged).
    pub(crate) fn split_off(&mut self, channel: Channel) -> ThinnedSeries {
        let mut out = ThinnedSeries {
            cap: self.cap,
            stride: self.stride,
            rows_in_last: self.rows_in_last,
            rows: self.rows,
            steps: self.steps.clone(),
            channels: Default::default(),
        };
        out.channels[0] = self.channels[channel.index()].take();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: f64) -> [Option<f64>; 5] {
        [Some(v), None, None, None, None]
    }

    #[test]
    fn channels_split_from_keys() {
        assert_eq!(
            Channel::split("train/loss/std"),
            ("train/loss", Channel::Std)
        );
        assert_eq!(Channel::split("train/loss"), ("train/loss", Channel::Raw));
        assert_eq!(Channel::split("/mean"), ("/mean", Channel::Raw));
    }

    #[test]
    fn running_stats_skip_non_finite_but_keep_last() {
        let mut s = RunningStats::default();
        for (i, v) in [1.0, 3.0, f64::NAN, 2.0, f64::INFINITY].iter().enumerate() {
            s.push(i as u64, *v);
        }
        assert_eq!((s.count, s.non_finite, s.total()), (3, 2, 5));
        assert_eq!((s.min, s.max, s.mean), (1.0, 3.0, 2.0));
        assert_eq!((s.last, s.last_step), (f64::INFINITY, 4));
    }

    #[test]
    fn short_series_keep_every_point() {
        let mut s = ThinnedSeries::new(8);
        for i in 0..10 {
            s.push(i, &raw(i as f64 * 2.0));
        }
        let p = s.points(Channel::Raw);
        assert_eq!(p.len(), 10);
        assert_eq!(
            p[3],
            SeriesPoint {
                step: 3.0,
                mean: 6.0,
                min: 6.0,
                max: 6.0
            }
        );
        assert!(!s.has(Channel::Std));
    }

    #[test]
    fn a_million_rows_stay_bounded_cover_evenly_and_keep_spikes() {
        let cap = 256;
        let mut s = ThinnedSeries::new(cap);
        let n = 1_000_000u64;
        for i in 0..n {
            let v = if i == 777_777 { 1e6 } else { (i % 10) as f64 };
            s.push(i, &raw(v));
        }
        assert!(s.len() >= cap && s.len() <= 2 * cap, "{} buckets", s.len());
        let p = s.points(Channel::Raw);
        assert_eq!(p.len(), s.len());
        // Every row is in exactly one bucket, each full bucket holds `stride` rows.
        assert_eq!(s.rows(), n);
        let widths: Vec<f64> = p.windows(2).map(|w| w[1].step - w[0].step).collect();
        let full = &widths[..widths.len() - 1];
        assert!(
            full.iter().all(|w| *w == s.stride() as f64),
            "uneven buckets"
        );
        assert_eq!(p[0].step, (s.stride() as f64 - 1.0) / 2.0);
        // The spike survives thinning as a bucket maximum.
        assert_eq!(p.iter().map(|q| q.max).fold(0.0, f64::max), 1e6);
        let stride = s.stride();
        let expected = (0..stride).map(|i| (i % 10) as f64).sum::<f64>() / stride as f64;
        assert_eq!((p[0].min, p[0].max), (0.0, 9.0));
        assert!((p[0].mean - expected).abs() < 1e-12);
    }

    #[test]
    fn means_at_the_limits_of_f64_stay_finite_and_in_range() {
        let mut s = ThinnedSeries::new(2);
        let mut stats = RunningStats::default();
        for i in 0..1000u64 {
            let v = if i % 2 == 0 { f64::MAX } else { -f64::MAX };
            s.push(i, &raw(v));
            stats.push(i, f64::MAX);
        }
        for p in s.points(Channel::Raw) {
            assert!(p.mean.is_finite() && p.mean.abs() <= f64::MAX, "{p:?}");
            assert_eq!((p.min, p.max), (-f64::MAX, f64::MAX));
        }
        assert_eq!(stats.mean, f64::MAX);
        let mut one = ThinnedSeries::new(4);
        for i in 0..100u64 {
            one.push(i, &raw(f64::MAX));
        }
        assert!(one.points(Channel::Raw).iter().all(|p| p.mean == f64::MAX));
    }

    #[test]
    fn late_channels_and_non_finite_values_align_with_buckets() {
        let mut s = ThinnedSeries::new(2);
        for i in 0..9u64 {
            let std = if i >= 4 { Some(i as f64) } else { None };
            let raw_v = if i == 5 { f64::NAN } else { 1.0 };
            s.push(i, &[Some(raw_v), None, None, None, std]);
        }
        let std = s.points(Channel::Std);
        let raw = s.points(Channel::Raw);
        assert_eq!(raw.len(), s.len());
        assert!(std.iter().all(|p| p.min >= 4.0));
        assert_eq!(std.last().unwrap().max, 8.0);
        assert!(raw.iter().all(|p| p.mean == 1.0));
        assert_eq!(
            s.non_finite(Channel::Raw),
            [NonFinitePoint {
                step: 5.5,
                count: 1
            }]
        );
        let moved = s.split_off(Channel::Std);
        assert!(!s.has(Channel::Std));
        assert_eq!(moved.points(Channel::Raw), std);
    }
}
