//! `DataParallel`: data parallelism over the ranks of a [`World`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::GradientsParams;
use ezpz_tracker::Stats;

use super::flat::{self, Layout};
use super::world::World;
use super::RankShard;
use crate::{Error, Result};

/// Data-parallel training over MPI ranks, or a world of one; cheap to clone, shareable
/// between threads.
///
/// [`DataParallel::local`] is a world of one without MPI: every collective returns what one
/// rank would get, so the same training code runs under `cargo run` (with or without the
/// `mpi` feature) and under `mpirun`. [`DataParallel::new`] (feature `mpi`) runs on its own
/// duplicate of the world communicator, so it never mixes collectives with a tracker's
/// aggregation. Call its collectives from one thread per rank (the training thread), the same
/// number of times on every rank.
///
/// A hand-written loop (with burn's `SupervisedTraining`, the all-reduce goes into
/// `TrainStep::optimize`, see the [module docs](super)):
///
/// ```no_run
/// # #[cfg(feature = "mpi")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use burn::data::dataset::{Dataset, InMemDataset};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::{AdamConfig, GradientsParams};
/// use burn::prelude::*;
/// use ezpz_burn::ddp::DataParallel;
/// use ezpz_tracker::{mpi::Mpi, TrackerBuilder};
///
/// let mpi = Mpi::init()?;
/// let tracker = TrackerBuilder::new().backends("csv").mpi(&mpi).build()?;
/// let ddp = DataParallel::new(&mpi);
/// let device = Device::flex().autodiff();
/// let mut model: Linear = ddp.broadcast_module(LinearConfig::new(2, 1).init(&device))?;
/// let data: Vec<[f32; 3]> = (0..64).map(|i| [i as f32, 1.0, 2.0 * i as f32]).collect();
/// let shard = ddp.shard(InMemDataset::new(data));          // 64 / world_size items
/// let mut optim = AdamConfig::new().init();
/// for step in 0..shard.len() / 8 {
///     let batch = shard.get_many((step * 8..step * 8 + 8).collect())?;
///     let x: Vec<f32> = batch.iter().flat_map(|p| [p[0], p[1]]).collect();
///     let y: Vec<f32> = batch.iter().map(|p| p[2]).collect();
///     let x = Tensor::<2>::from_data(TensorData::new(x, [8, 2]), &device);
///     let y = Tensor::<2>::from_data(TensorData::new(y, [8, 1]), &device);
///     let loss = (model.forward(x) - y).powi_scalar(2).mean();
///     let loss_value = loss.clone().into_scalar::<f64>();
///     tracker.log([("loss", loss_value)]);                        // + loss/mean|min|max|std
///     let grads = GradientsParams::from_grads(loss.backward(), &model);
///     let grads = ddp.all_reduce_grads(&model, grads);              // mean over the ranks
///     model = optim.step(1e-2, model, grads);
///     if ddp.agree_stop(loss_value < 1e-3) {                        // every rank stops together
///         break;
///     }
/// }
/// tracker.finish()?;
/// # Ok(()) }
/// # #[cfg(not(feature = "mpi"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct DataParallel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    world: World,
    /// Bits of the last step's local gradient norm.
    local_norm: AtomicU64,
    /// Values the last gradient all-reduce sent.
    sent: AtomicU64,
}

impl DataParallel {
    fn on(world: World) -> Self {
        DataParallel {
            inner: Arc::new(Inner {
                world,
                local_norm: AtomicU64::new(0f64.to_bits()),
                sent: AtomicU64::new(0),
            }),
        }
    }

    /// Sets up data parallelism on `mpi`'s ranks. A collective: every rank calls it.
    #[cfg(feature = "mpi")]
    pub fn new(mpi: &ezpz_tracker::mpi::Mpi) -> Self {
        DataParallel::on(World::mpi(mpi))
    }

    /// A world of one, without MPI: rank 0 of 1, every collective a no-op.
    pub fn local() -> Self {
        DataParallel::on(World::Local)
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.inner.world.rank()
    }

    /// Number of ranks.
    pub fn world_size(&self) -> usize {
        self.inner.world.size()
    }

    /// Whether this is rank 0 (the one that logs, validates and saves).
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// `module` with rank 0's parameter values on every rank, so all replicas start equal
    /// whatever each rank's random initialisation was. Two collectives: an all-gather that
    /// checks every rank built the same architecture, then one broadcast of all parameters
    /// packed into one buffer. Devices, dtypes, ids and gradient flags are kept.
    ///
    /// # Errors
    /// A rank's model differs from rank 0's, or rank 0 cannot read its parameters; every
    /// rank returns the error.
    pub fn broadcast_module<M: Module>(&self, module: M) -> Result<M> {
        let world = &self.inner.world;
        let mine = flat::layout(&module);
        let mut flat = if self.is_main() {
            flat::read_params(&module)
        } else {
            Ok(vec![0f32; mine.elements])
        };
        let header = [
            mine.fingerprint,
            mine.params as u64,
            mine.elements as u64,
            u64::from(flat.is_ok()),
        ];
        let all = world.all_gather_u64(&header);
        let layouts: Vec<(Layout, bool)> = all
            .chunks_exact(header.len())
            .map(|h| {
                let layout = Layout {
                    fingerprint: h[0],
                    params: h[1] as usize,
                    elements: h[2] as usize,
                };
                (layout, h[3] == 1)
            })
            .collect();
        let (first, read_ok) = layouts[0];
        if !read_ok {
            return Err(match flat {
                Err(e) => Error::Readback(e),
                Ok(_) => Error::Readback("rank 0 could not read its model parameters".into()),
            });
        }
        if let Some((rank, (other, _))) = layouts.iter().enumerate().find(|(_, l)| l.0 != first) {
            return Err(Error::ModelMismatch {
                rank,
                params: other.params,
                elements: other.elements,
                params0: first.params,
                elements0: first.elements,
            });
        }
        let buffer = flat.as_mut().map_err(|e| Error::Readback(e.clone()))?;
        world.broadcast_f32(&mut buffer[..]);
        Ok(if self.is_main() {
            module
        } else {
            flat::write_params(module, buffer)
        })
    }

    /// Replaces each gradient in `grads` by its mean over the ranks, with **one** sum
    /// all-reduce of the trainable parameters' gradients packed into one buffer (one device
    /// read, one collective, one upload per parameter). Frozen parameters (no `require_grad`)
    /// do not travel. As in PyTorch's `DistributedDataParallel`, a parameter some ranks have
    /// no gradient for (unused in their forward pass) counts as a zero gradient there, and
    /// the sum is divided by the world size; a parameter no rank has a gradient for stays
    /// without one (the optimizer leaves it alone). Call it in `TrainStep::optimize` before
    /// the optimizer step, on every rank, every step.
    ///
    /// If this rank's device read fails, it contributes nothing (the others' mean is used)
    /// and a warning is printed, so the ranks stay in step.
    pub fn all_reduce_grads<M: Module>(
        &self,
        module: &M,
        mut grads: GradientsParams,
    ) -> GradientsParams {
        let packed = flat::take_grads(module, &mut grads);
        if let Some(e) = &packed.read_error {
            ezpz_tracker::warn!(
                "ezpz: rank {} could not read its gradients from the device ({e}); this step \
                 counts as zero",
                self.rank()
            );
        }
        self.inner
            .local_norm
            .store(packed.local_norm().to_bits(), Ordering::Relaxed);
        self.inner
            .sent
            .store(packed.buffer.len() as u64, Ordering::Relaxed);
        let summed = self.inner.world.all_reduce_sum_f32(&packed.buffer);
        flat::put_grads(module, &packed, &summed, self.world_size(), &mut grads);
        grads
    }

    /// How many `f32` values the last [`all_reduce_grads`](Self::all_reduce_grads) sent: the
    /// trainable parameters' elements plus one presence count per trainable parameter.
    pub fn last_exchange_len(&self) -> usize {
        self.inner.sent.load(Ordering::Relaxed) as usize
    }

    /// The L2 norm of this rank's own gradients at the last
    /// [`all_reduce_grads`](Self::all_reduce_grads) (before averaging; 0 before the first).
    pub fn local_grad_norm(&self) -> f64 {
        f64::from_bits(self.inner.local_norm.load(Ordering::Relaxed))
    }

    /// `grads/global_norm/mean`, `/min`, `/max`, `/std` (population) of every rank's local
    /// gradient norm, the same on every rank. One all-gather: a collective.
    ///
    /// The pairs fit `Tracker::log` and `Watch::observe_with`'s extra metrics; an
    /// aggregating tracker keeps them as they are (it does not aggregate aggregates). With
    /// `watch`, decide on every rank whether the collective runs before observing:
    ///
    /// ```no_run
    /// # use burn::module::Module;
    /// # use burn::optim::GradientsParams;
    /// # use ezpz_burn::{ddp::DataParallel, Watch};
    /// # fn optimize<M: Module>(model: &M, grads: GradientsParams, ddp: &DataParallel, watch: &Watch) -> GradientsParams {
    /// let grads = ddp.all_reduce_grads(model, grads);
    /// let extra = if watch.logs_norms_next() {
    ///     ddp.grad_norm_stats(ddp.local_grad_norm())
    /// } else {
    ///     Vec::new()
    /// };
    /// watch.observe_with(model, &grads, |_| extra);   // + grads/global_norm of the mean
    /// # grads
    /// # }
    /// ```
    pub fn grad_norm_stats(&self, local_norm: f64) -> Vec<(String, f64)> {
        let all = self.inner.world.all_gather_f64(local_norm);
        let s = Stats::of(&all);
        [
            ("mean", s.mean),
            ("min", s.min),
            ("max", s.max),
            ("std", s.std),
        ]
        .into_iter()
        .map(|(name, v)| (format!("grads/global_norm/{name}"), v))
        .collect()
    }

    /// Whether any rank wants to stop: every rank passes its own decision (early stopping, a
    /// signal, a NaN loss) and all get the same answer, so none is left waiting in the next
    /// step's collective. A collective: call it on every rank at the same point.
    pub fn agree_stop(&self, stop_here: bool) -> bool {
        self.inner.world.any(stop_here)
    }

    /// This rank's share of `dataset` (see [`RankShard`]).
    pub fn shard<D, I, E>(&self, dataset: D) -> RankShard<D, I>
    where
        D: Dataset<I, E>,
        E: std::error::Error + Send + Sync + 'static,
    {
        RankShard::new(dataset, self.rank(), self.world_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::InMemDataset;
    use burn::nn::{Linear, LinearConfig};
    use burn::prelude::*;

    #[test]
    fn a_world_of_one_needs_no_mpi_and_changes_nothing() {
        let ddp = DataParallel::local();
        assert_eq!((ddp.rank(), ddp.world_size(), ddp.is_main()), (0, 1, true));
        let device = Device::flex().autodiff();
        let model: Linear = LinearConfig::new(3, 2).init(&device);
        let before = flat::read_params(&model).unwrap();
        let model = ddp.broadcast_module(model).unwrap();
        assert_eq!(flat::read_params(&model).unwrap(), before);
        let x = Tensor::<2>::ones([4, 3], &device);
        let grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
        let weight = grads.get::<2>(model.weight.id).unwrap().into_data();
        let grads = ddp.all_reduce_grads(&model, grads);
        assert_eq!(grads.get::<2>(model.weight.id).unwrap().into_data(), weight);
        assert!(ddp.local_grad_norm() > 0.0);
        let stats = ddp.grad_norm_stats(2.0);
        assert!(stats.contains(&("grads/global_norm/mean".to_string(), 2.0)));
        assert!(ddp.agree_stop(true) && !ddp.agree_stop(false));
        assert_eq!(ddp.shard(InMemDataset::new(vec![1, 2, 3])).len(), 3);
    }
}
