//! `watch`: parameter and gradient norms (and histograms) of any burn module, like
//! `wandb.watch`.

mod collect;
mod counter;
mod grads;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use burn::module::Module;
use ezpz_tracker::{Metric, Tracker, Value, WeakTracker};

use crate::record::{WatchQueue, WatchRow};
pub use collect::{norms, readback_bytes, Norms, ParamNorm};
use counter::StepCounters;
pub use grads::Gradients;

/// The default [`Watch::log_freq`].
pub const DEFAULT_LOG_FREQ: u64 = 100;

/// What a [`Watch`] logs, as `wandb.watch`'s `log` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchLog {
    /// Gradient norms (and gradient histograms) only.
    Gradients,
    /// Parameter norms (and parameter histograms) only.
    Parameters,
    /// Both (the default).
    #[default]
    All,
}

impl WatchLog {
    fn params(self) -> bool {
        matches!(self, WatchLog::Parameters | WatchLog::All)
    }

    fn grads(self) -> bool {
        matches!(self, WatchLog::Gradients | WatchLog::All)
    }
}

/// Logs the L2 norm of every float parameter and of its gradient, and the global norms, every
/// `log_freq` optimizer steps; optionally histograms of the values every `hist_freq` steps.
///
/// Each call to [`observe`](Watch::observe) with a model is one optimizer step of that model
/// (the first is step 1): every watched model has its own count, and under burn's DDP
/// strategy, where every device thread calls `optimize` with its replica, the step is logged
/// once, by the first thread that reaches it. A step is logged when it is a multiple of the
/// frequency. Norms are computed on the model's device and read back in one transfer per
/// logged step. Histograms are binned on the device too, 64 equal bins over each tensor's
/// finite range as `wandb.watch` does, and only their counts, min, max, sum and sum of squares
/// join the same transfer (a few hundred bytes per tensor, whatever its size; NaN and ±inf are
/// counted apart, see [`HistogramBins`](ezpz_tracker::HistogramBins)). Squares and bins are
/// computed in `f32`.
///
/// Keys: `params/norm/<path>`, `grads/norm/<path>`, `params/global_norm`,
/// `grads/global_norm` (see [`Norms::metrics`]); histograms `params/hist/<path>` and
/// `grads/hist/<path>`. `<path>` is the module path (`encoder.layers.0.mha.query.weight`).
/// [`wandb_names`](Watch::wandb_names) spells them as `wandb.watch` does.
///
/// Linked to a training through [`Attach::watch`](crate::Attach::watch) (or installed, with
/// [`with_ezpz`](crate::SupervisedTrainingExt::with_ezpz) on the same tracker), its rows
/// join the batch rows of the same step and its steps continue the run's step axis.
///
/// Clones share the counts; configure before cloning or [installing](Watch::install).
#[derive(Clone, Debug)]
pub struct Watch {
    tracker: Tracker,
    log_freq: u64,
    hist_freq: u64,
    log: WatchLog,
    wandb_names: bool,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    counters: StepCounters,
    link: Mutex<Option<Link>>,
    warned: AtomicBool,
}

/// Where a linked watch's rows go: the training's queue, whose recorder places the steps
/// (counted from 1 for this training) on the run's axis; `base` places the rows the queue
/// refuses.
#[derive(Debug, Clone)]
struct Link {
    queue: Arc<WatchQueue>,
    base: u64,
}

/// The installed watch, holding its tracker weakly: installing a watch must not keep the run
/// open (dropping the last `Tracker` finishes it, and the watch then stops).
static INSTALLED: RwLock<Option<Installed>> = RwLock::new(None);

struct Installed {
    tracker: WeakTracker,
    /// The watch, its tracker replaced by a disabled one.
    watch: Watch,
}

impl Installed {
    /// The watch with its tracker, while the run is open.
    fn current(&self) -> Option<Watch> {
        Some(Watch {
            tracker: self.tracker.upgrade()?,
            ..self.watch.clone()
        })
    }
}

impl Watch {
    /// Watches into `tracker`: norms every [`DEFAULT_LOG_FREQ`] steps, no histograms.
    pub fn new(tracker: &Tracker) -> Self {
        Watch {
            tracker: tracker.clone(),
            log_freq: DEFAULT_LOG_FREQ,
            hist_freq: 0,
            log: WatchLog::All,
            wandb_names: false,
            state: Arc::default(),
        }
    }

    /// Logs norms every `n` steps (`0` turns norms off).
    pub fn log_freq(mut self, n: u64) -> Self {
        self.log_freq = n;
        self
    }

    /// Logs histograms of every parameter and gradient every `n` steps (`0`, the default,
    /// turns them off). They are binned on the device (about ten passes over every value, no
    /// extra transfer of the values).
    pub fn hist_freq(mut self, n: u64) -> Self {
        self.hist_freq = n;
        self
    }

    /// What to log: gradients, parameters, or both (default).
    pub fn log(mut self, what: WatchLog) -> Self {
        self.log = what;
        self
    }

    /// Spells keys as `wandb.watch` does: `parameters/…` and `gradients/…` instead of
    /// `params/…` and `grads/…`, histograms `gradients/<path>` without `hist/`.
    pub fn wandb_names(mut self, yes: bool) -> Self {
        self.wandb_names = yes;
        self
    }

    /// Makes this the watch that [`observe`](crate::observe) uses (replacing any other), and
    /// returns it.
    ///
    /// The installed watch holds its tracker weakly: dropping the last clone of the tracker
    /// still finishes the run, and the watch is then gone.
    pub fn install(self) -> Self {
        let installed = Installed {
            tracker: self.tracker.downgrade(),
            watch: Watch {
                tracker: Tracker::disabled(),
                ..self.clone()
            },
        };
        *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(installed);
        self
    }

    /// Removes the installed watch, if any, and returns it (while its tracker lives).
    pub fn uninstall() -> Option<Watch> {
        INSTALLED
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .and_then(|i| i.current())
    }

    /// The installed watch, if any.
    pub fn installed() -> Option<Watch> {
        let installed = INSTALLED.read().unwrap_or_else(|e| e.into_inner());
        installed.as_ref().and_then(Installed::current)
    }

    /// Whether this watch writes to `tracker` (the same run).
    pub(crate) fn writes_to(&self, tracker: &Tracker) -> bool {
        self.tracker.ptr_eq(tracker)
    }

    /// Hands rows to `queue` from now on, steps counted from 1 again (the queue's recorder
    /// knows where this training starts on the run's axis; `base` is the best guess when
    /// attaching, for rows the queue refuses).
    pub(crate) fn link(&self, queue: Arc<WatchQueue>, base: u64) {
        self.state.counters.restart_at(0);
        *self.state.link.lock().unwrap_or_else(|e| e.into_inner()) = Some(Link { queue, base });
    }

    /// The last step observed (of any model; since the training it is linked to started).
    pub fn step(&self) -> u64 {
        self.state.counters.last()
    }

    /// Whether the next [`observe`](Watch::observe) logs norms (to compute extra, e.g.
    /// cross-rank, figures only on those steps).
    pub fn logs_norms_next(&self) -> bool {
        due(self.step() + 1, self.log_freq)
    }

    /// Counts one optimizer step of `model` and, when due, logs the norms of `model` and
    /// `grads`. Never fails: a device error is a warning (once) and the step is skipped.
    ///
    /// `grads` is what burn hands to `TrainStep::optimize` (`GradientsParams`) or to
    /// `TrainStep::optimize_multi` (`MultiGradientsParams`, one set per device: a
    /// parameter's gradient is their sum, as the optimizer applies it).
    pub fn observe<M: Module, G: Gradients>(&self, model: &M, grads: &G) {
        self.observe_with(model, grads, |_| Vec::new());
    }

    /// Like [`observe`](Watch::observe), adding the metrics `extra` returns to the norms' row
    /// (called only on steps that log norms, with the norms just computed).
    pub fn observe_with<M, G, F>(&self, model: &M, grads: &G, extra: F)
    where
        M: Module,
        G: Gradients,
        F: FnOnce(&Norms) -> Vec<(String, f64)>,
    {
        crate::cost::timed(|| self.observe_timed(model, grads, extra));
    }

    fn observe_timed<M, G, F>(&self, model: &M, grads: &G, extra: F)
    where
        M: Module,
        G: Gradients,
        F: FnOnce(&Norms) -> Vec<(String, f64)>,
    {
        let Some(step) = self.state.counters.count(model) else {
            return;
        };
        let log_norms = due(step, self.log_freq);
        let log_hist = due(step, self.hist_freq);
        if !log_norms && !log_hist {
            return;
        }
        let readout = match collect::collect(model, grads, log_hist) {
            Ok(readout) => readout,
            Err(e) => {
                if !self.state.warned.swap(true, Ordering::Relaxed) {
                    ezpz_tracker::warn!("ezpz: watch skipped step {step}: {e}");
                }
                return;
            }
        };
        let metrics: Vec<Metric> = if log_norms {
            readout
                .norms
                .metrics()
                .into_iter()
                .filter(|(k, _)| self.keeps(k))
                .chain(extra(&readout.norms))
                .map(|(k, v)| (Arc::from(self.spell(&k)), Value::F64(v)))
                .collect()
        } else {
            Vec::new()
        };
        let histograms = readout
            .histograms
            .into_iter()
            .filter(|(k, _)| self.keeps(k))
            .map(|(k, v)| (self.spell(&k), v))
            .collect();
        self.write(WatchRow {
            step,
            metrics,
            histograms,
        });
    }

    fn keeps(&self, key: &str) -> bool {
        if key.starts_with("params/") {
            self.log.params()
        } else if key.starts_with("grads/") {
            self.log.grads()
        } else {
            true
        }
    }

    fn spell(&self, key: &str) -> String {
        if !self.wandb_names {
            return key.to_string();
        }
        let (prefix, rest) = match key.split_once('/') {
            Some(("params", rest)) => ("parameters", rest),
            Some(("grads", rest)) => ("gradients", rest),
            _ => return key.to_string(),
        };
        format!("{prefix}/{}", rest.strip_prefix("hist/").unwrap_or(rest))
    }

    /// To the linked training's queue, else straight to the tracker.
    fn write(&self, row: WatchRow) {
        let link = self
            .state
            .link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let row = match link {
            Some(link) => match link.queue.push(row) {
                Ok(()) => return,
                Err(mut row) => {
                    row.step += link.base;
                    row
                }
            },
            None => row,
        };
        if !row.metrics.is_empty() {
            self.tracker.log_at(row.step, row.metrics);
        }
        for (key, bins) in row.histograms {
            self.tracker.log_histogram_bins_at(row.step, &key, bins);
        }
    }
}

fn due(step: u64, freq: u64) -> bool {
    freq > 0 && step.is_multiple_of(freq)
}

/// Calls [`Watch::observe`] on the [installed](Watch::install) watch; does nothing when none
/// is installed. Put it in `TrainStep::optimize`, where burn hands over the final gradients,
/// and in `TrainStep::optimize_multi` if you train with burn's multi-device strategy and
/// `MultiDeviceOptim::OptimSharded` (burn calls it instead of `optimize` there).
pub fn observe<M: Module, G: Gradients>(model: &M, grads: &G) {
    if let Some(watch) = Watch::installed() {
        watch.observe(model, grads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{GradientsParams, MultiGradientsParams};
    use burn::tensor::Tensor;

    #[test]
    fn an_installed_watch_does_not_keep_the_run_open() {
        let (tracker, memory) = crate::test_support::memory_tracker();
        let watch = Watch::new(&tracker).install();
        assert!(Watch::installed().is_some_and(|w| w.writes_to(&tracker)));
        drop(watch);
        tracker.log([("x", 1.0)]);
        // Dropping the last clone finishes the run although the watch is still installed.
        drop(tracker);
        assert_eq!(
            memory.snapshot().finished,
            Some(ezpz_tracker::RunStatus::Finished)
        );
        assert!(Watch::installed().is_none(), "the watch went with its run");
        assert!(Watch::uninstall().is_none());
    }

    /// Steps 2, 4 and 6 of a watch logging norms and histograms every 2 steps: the device
    /// reads and bytes they made, and what the tracker got.
    fn watch_six_steps(d_in: usize, d_out: usize) -> (u64, u64, ezpz_tracker::MemorySnapshot) {
        let (tracker, memory) = crate::test_support::memory_tracker();
        let device = crate::cpu_device().autodiff();
        let model: Linear = LinearConfig::new(d_in, d_out).init(&device);
        let loss = model.forward(Tensor::<2>::ones([4, d_in], &device)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let watch = Watch::new(&tracker)
            .log_freq(2)
            .hist_freq(2)
            .wandb_names(true);
        let reads = collect::READBACKS.with(|n| n.get());
        let bytes = collect::READBACK_BYTES_HERE.with(|n| n.get());
        for _ in 0..6 {
            watch.observe(&model, &grads);
        }
        let reads = collect::READBACKS.with(|n| n.get()) - reads;
        let bytes = collect::READBACK_BYTES_HERE.with(|n| n.get()) - bytes;
        tracker.finish().unwrap();
        (reads, bytes, memory.snapshot())
    }

    #[test]
    fn one_device_read_per_logged_step_histograms_included() {
        let (reads, small_bytes, snap) = watch_six_steps(3, 2);
        // Steps 2, 4 and 6 log norms and histograms of 2 parameters and 2 gradients.
        assert_eq!(reads, 3);
        assert_eq!(snap.histograms.len(), 3 * 4);
        let weight = snap.histograms.iter().find(|h| h.key == "gradients/weight");
        let bins = weight.unwrap().data.bins();
        assert_eq!((bins.counts.len(), bins.count()), (64, 6));
        let steps: Vec<u64> = snap
            .series("gradients/global_norm")
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(steps, [2, 4, 6]);
        // Only bins come back: a model 10,000 times larger reads back the same bytes.
        let (reads, large_bytes, snap) = watch_six_steps(300, 200);
        assert_eq!(reads, 3);
        assert_eq!(large_bytes, small_bytes);
        let weight = snap
            .histograms
            .iter()
            .find(|h| h.key == "parameters/weight");
        assert_eq!(weight.unwrap().data.bins().count(), 60_000);
        // Per step, each of the 4 vectors: its squared sum and 4 statistics in f32, 65 counts.
        let per_step = small_bytes / 3;
        assert!(
            per_step == 4 * (5 * 4 + 65 * 4) || per_step == 4 * (5 * 4 + 65 * 8),
            "{per_step} bytes per step"
        );
    }

    #[test]
    fn the_log_selector_keeps_only_what_was_asked() {
        let (tracker, memory) = crate::test_support::memory_tracker();
        let device = crate::cpu_device().autodiff();
        let model: Linear = LinearConfig::new(3, 2).init(&device);
        let loss = model.forward(Tensor::<2>::ones([4, 3], &device)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        Watch::new(&tracker)
            .log_freq(1)
            .log(WatchLog::Gradients)
            .observe(&model, &grads);
        tracker.finish().unwrap();
        let snap = memory.snapshot();
        let keys: Vec<&str> = snap.records[0].keys().iter().map(|k| &**k).collect();
        assert!(keys.iter().all(|k| k.starts_with("grads/")), "{keys:?}");
        assert!(keys.contains(&"grads/global_norm"), "{keys:?}");
    }

    #[test]
    fn optimize_multi_gradients_count_once_and_their_norm_is_of_the_sum() {
        let (tracker, memory) = crate::test_support::memory_tracker();
        let device = crate::cpu_device().autodiff();
        let model: Linear = LinearConfig::new(3, 2).init(&device);
        // Two devices' gradients of different batches (both on one CPU device here).
        let grads_of = |scale: f32| {
            let x = Tensor::<2>::ones([4, 3], &device) * scale;
            GradientsParams::from_grads(model.forward(x).sum().backward(), &model)
        };
        let (a, b) = (grads_of(1.0), grads_of(-3.0));
        let weight = model.weight.id;
        let sum = a.get::<2>(weight).unwrap() + b.get::<2>(weight).unwrap();
        let expected = sum
            .into_data()
            .iter::<f64>()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt();
        let multi = MultiGradientsParams {
            grads: vec![(a, device.clone()), (b, device.clone())],
        };
        let watch = Watch::new(&tracker).log_freq(1);
        watch.observe(&model, &multi);
        watch.observe(&model, &multi);
        tracker.finish().unwrap();
        assert_eq!(watch.step(), 2, "one step per optimize_multi call");
        let snap = memory.snapshot();
        let norms = snap.series("grads/norm/weight");
        assert_eq!(norms.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2]);
        let tol = 1e-5 * expected.max(1.0);
        assert!(
            (norms[0].1 - expected).abs() <= tol,
            "{norms:?} vs {expected}"
        );
    }
}
