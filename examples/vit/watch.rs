//! Parameter and gradient norms (ezpz-burn's one-transfer [`norms`]) every `--watch-freq`
//! steps, logged from the training thread at the optimizer step.
//!
//! burn's metric logger logs the same steps from burn's event-store thread, so the two rows
//! of a step reach the tracker in an order that differs between ranks; the tracker's
//! aggregation pairs rows across ranks by step and key set, so that order does not matter.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use burn::module::Module;
use burn::optim::GradientsParams;
use ezpz_burn::norms;
use ezpz_tracker::{Metric, Tracker, Value};

use crate::dist::Dist;

/// Computes the norms every `freq` optimizer steps (call [`observe`](Self::observe) from
/// `TrainStep::optimize` with the averaged gradients).
#[derive(Debug, Clone)]
pub struct NormWatch {
    freq: u64,
    step: Arc<AtomicU64>,
    warned: Arc<AtomicBool>,
    tracker: Tracker,
}

impl NormWatch {
    /// Norms every `freq` steps (0: never), logged to `tracker`.
    pub fn new(freq: u64, tracker: &Tracker) -> Self {
        NormWatch {
            freq,
            step: Arc::default(),
            warned: Arc::default(),
            tracker: tracker.clone(),
        }
    }

    /// Counts one optimizer step; when due, logs `params/norm/<path>`, `grads/norm/<path>`,
    /// the global norms of the (averaged) gradients and, with several ranks,
    /// `grads/global_norm/mean|min|max|std` of the ranks' own gradient norms before averaging
    /// (the tracker keeps these figures instead of aggregating `grads/global_norm` itself).
    pub fn observe<M: Module>(&self, model: &M, grads: &GradientsParams, dist: &Dist) {
        let step = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        if self.freq == 0 || !step.is_multiple_of(self.freq) {
            return;
        }
        // A collective: every rank takes part, whatever its own device read gives below.
        let local = dist.local_grad_norm_stats();
        let mut row: Vec<Metric> = match norms(model, grads) {
            Ok(n) => n
                .metrics()
                .into_iter()
                .map(|(k, v)| (k.into(), Value::F64(v)))
                .collect(),
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!("watch: norms of step {step} not computed: {e}");
                }
                Vec::new()
            }
        };
        row.extend(
            local
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Value::F64(v))),
        );
        self.tracker.log_at(step, row);
    }
}
