//! Wall-clock timing of training steps, measured on the training thread and handed to the
//! metrics (which burn computes later, on its event thread).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// What one training step took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Images in the step's batch (this rank).
    pub images: usize,
    /// Forward, backward, gradient exchange and optimizer update, in seconds.
    pub compute_secs: f64,
    /// From the previous step's start to this one's (data loading and logging included), in
    /// seconds; the compute time for the first step.
    pub interval_secs: f64,
}

/// A step's stats, filled in when its optimizer update ends.
#[derive(Debug, Default)]
pub struct StepTiming(OnceLock<StepStats>);

impl StepTiming {
    /// The stats, once the step has finished.
    pub fn get(&self) -> Option<StepStats> {
        self.0.get().copied()
    }
}

/// Times the steps of one training run; shared by the model's replicas.
#[derive(Debug, Default)]
pub struct StepClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    previous_start: Option<Instant>,
    current: Option<(Instant, usize, Arc<StepTiming>)>,
}

impl StepClock {
    /// Marks the start of a step over `images` images; the returned handle is filled by
    /// [`finish`](Self::finish).
    pub fn start(&self, images: usize) -> Arc<StepTiming> {
        let timing = Arc::new(StepTiming::default());
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.current = Some((Instant::now(), images, timing.clone()));
        timing
    }

    /// Marks the end of the current step's optimizer update.
    pub fn finish(&self) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start, images, timing)) = s.current.take() {
            let compute_secs = (now - start).as_secs_f64();
            let interval_secs = s
                .previous_start
                .map_or(compute_secs, |p| (start - p).as_secs_f64());
            s.previous_start = Some(start);
            let _ = timing.0.set(StepStats {
                images,
                compute_secs,
                interval_secs,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_filled_at_finish_and_intervals_chain() {
        let clock = StepClock::default();
        let first = clock.start(8);
        assert_eq!(first.get(), None, "not before the optimizer step");
        std::thread::sleep(std::time::Duration::from_millis(5));
        clock.finish();
        let a = first.get().unwrap();
        assert_eq!(a.images, 8);
        assert!(a.compute_secs >= 0.004);
        assert_eq!(
            a.interval_secs, a.compute_secs,
            "first step: no previous start"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = clock.start(8);
        clock.finish();
        let b = second.get().unwrap();
        assert!(
            b.interval_secs >= a.compute_secs + 0.004,
            "{b:?} after {a:?}"
        );
    }
}
