//! Parameter and gradient norms (ezpz-burn's one-transfer [`norms`]) every `--watch-freq`
//! steps, logged in order with burn's metrics.
//!
//! Under MPI every tracker `log` is a collective (the cross-rank aggregation), so all ranks
//! must log the same rows in the same order. burn's metric logger runs on burn's event-store
//! thread while gradients exist only on the training thread; logging the norms directly from
//! the training thread would interleave the two differently on different ranks and pair
//! unrelated rows in the aggregation. So the training thread only computes the norms and
//! queues them, and [`OrderedLogger`] logs them from the metric logger's thread right after
//! the batch of the same step: one thread, one order, on every rank.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, NumericEntry};
use ezpz_burn::{norms, EzpzMetricLogger};
use ezpz_tracker::{Metric, Tracker, Value};

use crate::dist::Dist;

/// Rows computed on the training thread, waiting for the logger's thread: `(step, metrics)`.
type Queue = Arc<Mutex<VecDeque<(u64, Vec<Metric>)>>>;

/// Computes the norms every `freq` optimizer steps (call [`observe`](Self::observe) from
/// `TrainStep::optimize` with the averaged gradients).
#[derive(Debug, Clone)]
pub struct NormWatch {
    freq: u64,
    step: Arc<AtomicU64>,
    warned: Arc<AtomicBool>,
    queue: Queue,
}

impl NormWatch {
    /// Norms every `freq` steps (0: never), queued for `logger`.
    pub fn new(freq: u64, logger: &OrderedLogger) -> Self {
        NormWatch {
            freq,
            step: Arc::default(),
            warned: Arc::default(),
            queue: logger.queue.clone(),
        }
    }

    /// Counts one optimizer step; when due, queues `params/norm/<path>`, `grads/norm/<path>`,
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
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((step, row));
    }
}

/// ezpz-burn's metric logger, plus the queued norm rows logged from the same thread.
pub struct OrderedLogger {
    inner: EzpzMetricLogger,
    tracker: Tracker,
    queue: Queue,
}

impl OrderedLogger {
    /// Wraps `inner`, which logs to `tracker`.
    pub fn new(inner: EzpzMetricLogger, tracker: &Tracker) -> Self {
        OrderedLogger {
            inner,
            tracker: tracker.clone(),
            queue: Queue::default(),
        }
    }

    /// Logs the queued rows of steps up to `step` (optimizer steps are training batches).
    fn drain(&self, step: u64) {
        loop {
            let next = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                match q.front() {
                    Some((s, _)) if *s <= step => q.pop_front(),
                    _ => None,
                }
            };
            let Some((s, row)) = next else { break };
            self.tracker.log_at(s, row);
        }
    }
}

impl MetricLogger for OrderedLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let end_of_split = update
            .entries_numeric
            .iter()
            .any(|u| matches!(u.numeric_entry, Some(NumericEntry::Final(_))));
        self.inner.log(update, epoch, split);
        if *split == Split::Train && !end_of_split {
            self.drain(self.inner.last_step(split));
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.inner.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.inner.log_metric_definition(definition);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.inner.log_epoch_summary(summary);
    }
}
