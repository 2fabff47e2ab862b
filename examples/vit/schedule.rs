//! Linear warmup, then cosine decay to `min_lr_ratio × lr` (the original's `LambdaLR`).

use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::LearningRate;

/// Learning rate of step `s` (1-based, one per optimizer step): `peak·s/warmup` during the
/// warmup, then a half cosine from `peak` to `peak·min_ratio` at `total`, flat after it.
#[derive(Debug, Clone, Copy)]
pub struct WarmupCosine {
    peak: f64,
    min: f64,
    warmup: usize,
    total: usize,
    step: usize,
}

impl WarmupCosine {
    /// A schedule over `total` optimizer steps, the first `warmup` of them warming up.
    pub fn new(peak: f64, min_ratio: f64, warmup: usize, total: usize) -> Self {
        WarmupCosine {
            peak,
            min: peak * min_ratio,
            warmup: warmup.min(total.saturating_sub(1)),
            total: total.max(1),
            step: 0,
        }
    }

    /// The rate at step `s` without advancing.
    pub fn at(&self, s: usize) -> f64 {
        if s <= self.warmup {
            return self.peak * s as f64 / self.warmup.max(1) as f64;
        }
        let span = (self.total - self.warmup).max(1) as f64;
        let progress = ((s - self.warmup) as f64 / span).min(1.0);
        self.min + 0.5 * (self.peak - self.min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

impl LrScheduler for WarmupCosine {
    fn step(&mut self) -> LearningRate {
        self.step += 1;
        self.at(self.step)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<usize>("step") {
            self.step = step;
        }
    }
}

/// Resolves a step count given as a whole number of steps (`>= 1`) or a fraction of `total`
/// (`< 1`), like the original's `--warmup 0.1`.
pub fn steps_of(value: f64, total: usize) -> usize {
    if value >= 1.0 {
        value.round() as usize
    } else {
        (value.max(0.0) * total as f64).round() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_the_floor() {
        let mut s = WarmupCosine::new(1e-3, 0.1, 10, 110);
        let lrs: Vec<f64> = (0..120).map(|_| s.step()).collect();
        assert!((lrs[0] - 1e-4).abs() < 1e-12, "{}", lrs[0]);
        assert!((lrs[9] - 1e-3).abs() < 1e-12);
        assert!(lrs[10] < 1e-3 && lrs[10] > 0.99e-3);
        assert!((lrs[59] - 0.55e-3).abs() < 1e-9, "midpoint {}", lrs[59]);
        assert!((lrs[109] - 1e-4).abs() < 1e-12);
        assert!((lrs[119] - 1e-4).abs() < 1e-12, "flat after the end");
        assert!(lrs[10..110].windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn record_round_trip_resumes_the_step() {
        let mut a = WarmupCosine::new(1e-3, 0.0, 5, 50);
        for _ in 0..17 {
            a.step();
        }
        let mut b = WarmupCosine::new(1e-3, 0.0, 5, 50);
        b.load_record(a.to_record());
        assert_eq!(a.step(), b.step());
    }

    #[test]
    fn warmup_as_steps_or_fraction() {
        assert_eq!(steps_of(0.1, 300), 30);
        assert_eq!(steps_of(25.0, 300), 25);
        assert_eq!(steps_of(0.0, 300), 0);
        let no_warmup = WarmupCosine::new(1.0, 0.0, 0, 10);
        let expected = 0.5 * (1.0 + (std::f64::consts::PI * 0.1).cos());
        assert!(
            (no_warmup.at(1) - expected).abs() < 1e-12,
            "no warmup starts near the peak"
        );
    }
}
