//! The global step: which optimizer step a training batch belongs to.

/// Counts optimizer steps from the training batches burn reports, the way burn's strategies
/// step (burn-train `src/learner/supervised/strategies/{single,multi,ddp}/epoch.rs`): each
/// optimizer step consumes `devices` batches (one per device; burn reports one item per
/// device) `accumulation` times, and the last step of an epoch takes whatever is left.
#[derive(Debug, Clone)]
pub(crate) struct StepCounter {
    devices: u64,
    accumulation: u64,
    /// The global step when the current training split started.
    split_base: u64,
    /// Training batches reported in the current split.
    batches: u64,
    current: u64,
}

impl StepCounter {
    /// A counter whose first optimizer step is `base + 1`.
    pub(crate) fn new(base: u64, devices: usize, accumulation: usize) -> Self {
        StepCounter {
            devices: devices.max(1) as u64,
            accumulation: accumulation.max(1) as u64,
            split_base: base,
            batches: 0,
            current: base,
        }
    }

    /// The global step now: the last optimizer step a reported batch belongs to (the base
    /// before the first batch).
    pub(crate) fn current(&self) -> u64 {
        self.current
    }

    /// Optimizer steps of one epoch of `batches` training batches.
    pub(crate) fn steps_per_epoch(&self, batches: u64) -> u64 {
        batches.div_ceil(self.devices).div_ceil(self.accumulation)
    }

    /// Moves the axis so that the current step is `step` (a resume found where it was).
    pub(crate) fn continue_from(&mut self, step: u64) {
        self.split_base += step - self.current.min(step);
        self.current = self.current.max(step);
    }

    /// A training split starts: its batches count from the current step.
    pub(crate) fn start_train_split(&mut self) {
        self.split_base = self.current;
        self.batches = 0;
    }

    /// Counts one training batch; returns its optimizer step and whether that step has now
    /// seen all its batches (a step cut short by the end of the epoch is completed by the
    /// end of the split).
    pub(crate) fn train_batch(&mut self) -> (u64, bool) {
        self.batches += 1;
        let round = self.batches.div_ceil(self.devices);
        self.current = self.split_base + round.div_ceil(self.accumulation);
        let complete = self
            .batches
            .is_multiple_of(self.devices * self.accumulation);
        (self.current, complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(counter: &mut StepCounter, batches: usize) -> Vec<(u64, bool)> {
        counter.start_train_split();
        (0..batches).map(|_| counter.train_batch()).collect()
    }

    #[test]
    fn one_step_per_batch_by_default_continuing_across_epochs() {
        let mut c = StepCounter::new(0, 1, 1);
        assert_eq!(steps(&mut c, 3), [(1, true), (2, true), (3, true)]);
        assert_eq!(steps(&mut c, 2), [(4, true), (5, true)]);
        assert_eq!(c.current(), 5);
    }

    #[test]
    fn accumulation_and_devices_share_a_step_and_epochs_end_short_steps() {
        // 5 batches, 2 accumulated: steps 1, 1, 2, 2, 3 (burn steps at the epoch's end).
        let mut c = StepCounter::new(10, 1, 2);
        let got: Vec<u64> = steps(&mut c, 5).iter().map(|s| s.0).collect();
        assert_eq!(got, [11, 11, 12, 12, 13]);
        assert_eq!(steps(&mut c, 2), [(14, false), (14, true)]);
        // 2 devices × 2 accumulated: 4 batches per step.
        let mut c = StepCounter::new(0, 2, 2);
        let got: Vec<(u64, bool)> = steps(&mut c, 6);
        assert_eq!(
            got,
            [
                (1, false),
                (1, false),
                (1, false),
                (1, true),
                (2, false),
                (2, false)
            ]
        );
        assert_eq!(c.steps_per_epoch(6), 2);
        assert_eq!(c.steps_per_epoch(9), 3);
    }

    #[test]
    fn a_resume_moves_the_axis_forward_only() {
        let mut c = StepCounter::new(0, 1, 1);
        c.start_train_split();
        c.continue_from(10);
        assert_eq!(c.train_batch(), (11, true));
        c.continue_from(5);
        assert_eq!(c.train_batch(), (12, true));
    }
}
