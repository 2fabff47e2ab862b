//! Optimizer steps per watched model, counted once per step whatever the threads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// A model is known by the id of its first float parameter: burn keeps parameter ids through
/// optimizer steps and across the replicas of its multi-device and DDP strategies.
fn model_id<M: Module>(model: &M) -> Option<ParamId> {
    struct First(Option<ParamId>);
    impl ModuleVisitor for First {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.get_or_insert(param.id);
        }
    }
    let mut first = First(None);
    model.visit(&mut first);
    first.0
}

#[derive(Debug, Default)]
struct Counts {
    base: u64,
    /// Calls per (model, thread): under DDP every device thread optimizes its replica.
    calls: HashMap<(Option<ParamId>, ThreadId), u64>,
    /// The last step handed out per model.
    last: HashMap<Option<ParamId>, u64>,
}

/// Step counts of every watched model.
#[derive(Debug, Default)]
pub(crate) struct StepCounters {
    counts: Mutex<Counts>,
}

impl StepCounters {
    /// Counts one `optimize` call on this thread for `model`; its step, or `None` when
    /// another thread (another replica) already had this step.
    pub(crate) fn count<M: Module>(&self, model: &M) -> Option<u64> {
        let id = model_id(model);
        let thread = std::thread::current().id();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let base = counts.base;
        let calls = counts.calls.entry((id, thread)).or_insert(0);
        *calls += 1;
        let step = base + *calls;
        let last = counts.last.entry(id).or_insert(base);
        if step <= *last {
            return None;
        }
        *last = step;
        Some(step)
    }

    /// The largest step handed out (the base before any).
    pub(crate) fn last(&self) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.last.values().copied().max().unwrap_or(counts.base)
    }

    /// Counts start over after `base`.
    pub(crate) fn restart_at(&self, base: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts = Counts {
            base,
            ..Counts::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    #[test]
    fn each_model_counts_its_own_steps_and_replica_threads_count_once() {
        let device = crate::cpu_device();
        let a = LinearConfig::new(2, 2).init(&device);
        let b = LinearConfig::new(2, 1).init(&device);
        let counters = StepCounters::default();
        assert_eq!(counters.count(&a), Some(1));
        assert_eq!(counters.count(&b), Some(1));
        assert_eq!(counters.count(&a), Some(2));
        // Another thread optimizing a replica of `a` (same parameter ids): steps 1 and 2
        // were logged already, step 3 is new.
        let replica = a.clone();
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(counters.count(&replica), None);
                assert_eq!(counters.count(&replica), None);
                assert_eq!(counters.count(&replica), Some(3));
            });
        });
        assert_eq!(counters.last(), 3);
        counters.restart_at(10);
        assert_eq!(counters.count(&b), Some(11));
    }
}
