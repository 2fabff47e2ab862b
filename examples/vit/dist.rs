//! One process, or one MPI rank of many (feature `mpi`): rank identity, tracker setup,
//! identical initial parameters, per-rank data, averaged gradients, and the cross-rank checks.

use burn::module::Module;
use burn::optim::GradientsParams;
use ezpz_tracker::{RankInfo, Stats, TrackerBuilder};

use crate::data::{self, Images};

/// The processes training together.
#[derive(Clone, Debug)]
pub struct Dist {
    rank: RankInfo,
    #[cfg(feature = "mpi")]
    mpi: ezpz_tracker::mpi::Mpi,
    #[cfg(feature = "mpi")]
    ddp: ezpz_burn::ddp::DataParallel,
}

impl Dist {
    /// Starts MPI when built with `mpi` (works without a launcher too: a single rank);
    /// otherwise one process, whatever the environment says.
    ///
    /// # Errors
    /// MPI cannot be initialised.
    pub fn init() -> Result<Dist, String> {
        #[cfg(feature = "mpi")]
        {
            let mpi = ezpz_tracker::mpi::Mpi::init().map_err(|e| e.to_string())?;
            let ddp = ezpz_burn::ddp::DataParallel::new(&mpi);
            Ok(Dist {
                rank: mpi.rank_info(),
                mpi,
                ddp,
            })
        }
        #[cfg(not(feature = "mpi"))]
        {
            let env = RankInfo::from_env();
            if env.world_size > 1 {
                tracing::warn!(
                    "launched as one of {} ranks, but this build has no MPI: every rank trains \
                     alone (rebuild with `--features mpi`)",
                    env.world_size
                );
            }
            Ok(Dist {
                rank: env.with_rank(0, 1),
            })
        }
    }

    /// This process's rank and topology.
    pub fn rank(&self) -> &RankInfo {
        &self.rank
    }

    /// Rank identity and, under MPI, cross-rank aggregation (`key/mean|min|max|std`).
    pub fn tracker(&self, builder: TrackerBuilder) -> TrackerBuilder {
        #[cfg(feature = "mpi")]
        {
            builder.mpi(&self.mpi)
        }
        #[cfg(not(feature = "mpi"))]
        {
            builder.rank_info(self.rank.clone())
        }
    }

    /// `model` with rank 0's parameters on every rank.
    ///
    /// # Errors
    /// The ranks built different models (the same error on every rank).
    pub fn broadcast<M: Module>(&self, model: M) -> Result<M, String> {
        #[cfg(feature = "mpi")]
        {
            self.ddp.broadcast_module(model).map_err(|e| e.to_string())
        }
        #[cfg(not(feature = "mpi"))]
        {
            Ok(model)
        }
    }

    /// This rank's equal share of `data`, at most `limit` images of it.
    pub fn shard(&self, data: Images, limit: Option<usize>) -> Images {
        data::shard(data, self.rank.rank, self.rank.world_size, limit)
    }

    /// The gradients averaged over the ranks (one packed all-reduce; a no-op alone).
    pub fn average<M: Module>(&self, model: &M, grads: GradientsParams) -> GradientsParams {
        #[cfg(feature = "mpi")]
        {
            self.ddp.all_reduce_grads(model, grads)
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = model;
            grads
        }
    }

    /// `grads/global_norm/mean|min|max|std` of every rank's own gradient norm at the last
    /// [`average`](Self::average), before averaging (a collective: every rank calls it at the
    /// same steps). Empty in a single process, where the watch's `grads/global_norm` is that
    /// norm.
    pub fn local_grad_norm_stats(&self) -> Vec<(String, f64)> {
        #[cfg(feature = "mpi")]
        {
            if self.rank.world_size > 1 {
                return self.ddp.grad_norm_stats(self.ddp.local_grad_norm());
            }
        }
        Vec::new()
    }

    /// `value` from every rank, in rank order (a collective under MPI).
    pub fn gather(&self, value: f64) -> Vec<f64> {
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::CommunicatorCollectives;
            let mut all = vec![0f64; self.rank.world_size];
            let _mpi = ezpz_tracker::mpi::lock();
            self.mpi.world().all_gather_into(&value, &mut all[..]);
            all
        }
        #[cfg(not(feature = "mpi"))]
        {
            vec![value]
        }
    }
}

/// Whether every rank holds the same parameters: the checksums' cross-rank `std` is 0 and
/// `min == max`, exactly.
pub fn replicas_identical(checksums: &[f64]) -> (bool, Stats) {
    let stats = Stats::of(checksums);
    (stats.std == 0.0 && stats.min == stats.max, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_checksums_pass_and_any_difference_fails() {
        let x = 554.040_740_7_f64;
        assert!(replicas_identical(&[x, x, x, x]).0);
        for y in [x, 0.1, 1.0 / 3.0, 123_880.3, -7.77e-5] {
            assert!(
                replicas_identical(&[y, y, y]).0,
                "three equal replicas of {y}"
            );
        }
        assert!(replicas_identical(&[x]).0);
        let (ok, stats) = replicas_identical(&[x, x, x + 1e-9]);
        assert!(!ok);
        assert!(stats.max > stats.min);
        assert!(
            !replicas_identical(&[x, f64::NAN]).0,
            "an unreadable replica fails"
        );
    }
}
