//! `watch`: parameter and gradient norms (and histograms) of any burn module, like
//! `wandb.watch`.

mod collect;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use burn::module::Module;
use burn::optim::GradientsParams;
use ezpz_tracker::{Metric, Tracker, Value};

pub use collect::{norms, Norms, ParamNorm};

/// The default [`Watch::log_freq`].
pub const DEFAULT_LOG_FREQ: u64 = 100;

/// Logs the L2 norm of every float parameter and of its gradient, and the global norms, every
/// `log_freq` optimizer steps; optionally histograms of the values every `hist_freq` steps.
///
/// Each call to [`observe`](Watch::observe) is one step (the first is step 1); a step is
/// logged when it is a multiple of the frequency, at that step. Norms are computed on the
/// model's device and read back in one transfer per logged step (histogram values join the
/// same transfer). Squares are summed in `f32`.
///
/// Keys: `params/norm/<path>`, `grads/norm/<path>`, `params/global_norm`,
/// `grads/global_norm` (see [`Norms::metrics`]); histograms `params/hist/<path>` and
/// `grads/hist/<path>`. `<path>` is the module path (`encoder.layers.0.mha.query.weight`).
///
/// Clones share the step count; configure before cloning or [installing](Watch::install).
/// Rows are logged at explicit steps, so an aggregating tracker pairs them across ranks
/// whatever thread the other rows come from; every rank should observe at the same steps.
#[derive(Clone, Debug)]
pub struct Watch {
    tracker: Tracker,
    log_freq: u64,
    hist_freq: u64,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    step: AtomicU64,
    warned: AtomicBool,
}

static INSTALLED: RwLock<Option<Watch>> = RwLock::new(None);

impl Watch {
    /// Watches into `tracker`: norms every [`DEFAULT_LOG_FREQ`] steps, no histograms.
    pub fn new(tracker: &Tracker) -> Self {
        Watch {
            tracker: tracker.clone(),
            log_freq: DEFAULT_LOG_FREQ,
            hist_freq: 0,
            state: Arc::default(),
        }
    }

    /// Logs norms every `n` steps (`0` turns norms off).
    pub fn log_freq(mut self, n: u64) -> Self {
        self.log_freq = n;
        self
    }

    /// Logs histograms of every parameter and gradient every `n` steps (`0`, the default,
    /// turns them off). They cost a transfer of the whole model: keep `n` large.
    pub fn hist_freq(mut self, n: u64) -> Self {
        self.hist_freq = n;
        self
    }

    /// Makes this the watch that [`observe`](crate::observe) uses (replacing any other), and
    /// returns it.
    pub fn install(self) -> Self {
        *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(self.clone());
        self
    }

    /// Removes the installed watch, if any, and returns it.
    pub fn uninstall() -> Option<Watch> {
        INSTALLED.write().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Steps observed so far.
    pub fn step(&self) -> u64 {
        self.state.step.load(Ordering::Relaxed)
    }

    /// Whether the next [`observe`](Watch::observe) logs norms (to compute extra, e.g.
    /// cross-rank, figures only on those steps).
    pub fn logs_norms_next(&self) -> bool {
        due(self.step() + 1, self.log_freq)
    }

    /// Counts one optimizer step and, when due, logs the norms of `model` and `grads`.
    /// Never fails: a device error is a warning (once) and the step is skipped.
    pub fn observe<M: Module>(&self, model: &M, grads: &GradientsParams) {
        self.observe_with(model, grads, |_| Vec::new());
    }

    /// Like [`observe`](Watch::observe), adding the metrics `extra` returns to the norms' row
    /// (called only on steps that log norms, with the norms just computed).
    pub fn observe_with<M, F>(&self, model: &M, grads: &GradientsParams, extra: F)
    where
        M: Module,
        F: FnOnce(&Norms) -> Vec<(String, f64)>,
    {
        let step = self.state.step.fetch_add(1, Ordering::Relaxed) + 1;
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
        if log_norms {
            let row: Vec<Metric> = readout
                .norms
                .metrics()
                .into_iter()
                .chain(extra(&readout.norms))
                .map(|(k, v)| (Arc::from(k), Value::F64(v)))
                .collect();
            self.tracker.log_at(step, row);
        }
        for (key, values) in readout.histograms {
            self.tracker.log_histogram_at(step, &key, values);
        }
    }
}

fn due(step: u64, freq: u64) -> bool {
    freq > 0 && step.is_multiple_of(freq)
}

/// Calls [`Watch::observe`] on the [installed](Watch::install) watch; does nothing when none
/// is installed. Put it in `TrainStep::optimize`, where burn hands over the final gradients.
pub fn observe<M: Module>(model: &M, grads: &GradientsParams) {
    let watch = INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(watch) = watch {
        watch.observe(model, grads);
    }
}
