//! How many steps a run takes: per-rank shard sizes, steps per epoch, warmup.

use serde::Serialize;

use crate::schedule::steps_of;

/// The run's shape, identical on every rank (collectives need equal step counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Training images per rank per epoch.
    pub train_per_rank: usize,
    /// Validation images per rank.
    pub valid_per_rank: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Optimizer steps in all.
    pub total_steps: usize,
    /// Warmup steps of the learning rate.
    pub warmup_steps: usize,
}

impl Plan {
    /// A plan for `train_len`/`valid_len` images split over `world` ranks, `batch` images per
    /// step per rank, `epochs` epochs and at most `max_iters` steps in all (then the epochs
    /// share them equally).
    ///
    /// # Errors
    /// A dataset too small to give every rank a batch.
    pub fn new(
        train_len: usize,
        valid_len: usize,
        world: usize,
        batch: usize,
        epochs: usize,
        max_iters: Option<usize>,
        warmup: f64,
    ) -> Result<Plan, String> {
        let shard = train_len / world;
        let valid_per_rank = valid_len / world;
        if shard < batch || valid_per_rank == 0 {
            return Err(format!(
                "{train_len} training / {valid_len} validation images cannot give each of {world} rank(s) a batch of {batch}"
            ));
        }
        let full = shard.div_ceil(batch);
        let steps_per_epoch = max_iters.map_or(full, |m| full.min(m.div_ceil(epochs)));
        let train_per_rank = shard.min(steps_per_epoch * batch);
        let total_steps = steps_per_epoch * epochs;
        Ok(Plan {
            train_per_rank,
            valid_per_rank,
            steps_per_epoch,
            epochs,
            total_steps,
            warmup_steps: steps_of(warmup, total_steps),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_iters_caps_the_epochs_equally() {
        let p = Plan::new(60_000, 10_000, 2, 32, 3, Some(100), 0.1).unwrap();
        assert_eq!(p.steps_per_epoch, 34);
        assert_eq!(p.train_per_rank, 34 * 32);
        assert_eq!((p.total_steps, p.warmup_steps), (102, 10));
        assert_eq!(p.valid_per_rank, 5_000);
    }

    #[test]
    fn whole_epochs_without_a_cap() {
        let p = Plan::new(1000, 100, 3, 32, 2, None, 5.0).unwrap();
        assert_eq!((p.train_per_rank, p.steps_per_epoch), (333, 11));
        assert_eq!((p.total_steps, p.warmup_steps), (22, 5));
    }

    #[test]
    fn too_little_data_is_an_error() {
        let e = Plan::new(40, 10, 2, 32, 1, None, 0.0).unwrap_err();
        assert!(e.contains("2 rank(s) a batch of 32"), "{e}");
    }
}
