//! The model as burn's `SupervisedTraining` sees it: train and inference steps, the step's
//! output for the metrics, and the hooks that run where gradients exist.

use std::sync::Arc;

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::ExecutionError;
use burn::train::metric::{AccuracyInput, Adaptor, ItemLazy, LossInput};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

use crate::data::ImageBatch;
use crate::dist::Dist;
use crate::metrics::StepInput;
use crate::model::Vit;
use crate::timing::{StepClock, StepTiming};
use ezpz_burn::Watch;

/// What runs beside each training step; cloned with the model (everything shared).
#[derive(Clone)]
pub struct StepHooks {
    /// Times every step.
    pub clock: Arc<StepClock>,
    /// Averages gradients across ranks.
    pub dist: Dist,
    /// Parameter and gradient norms every `--watch-freq` steps.
    pub watch: Watch,
}

impl std::fmt::Debug for StepHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepHooks")
    }
}

/// The ViT plus its step hooks: the model burn trains.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The network (parameter paths start with `vit.`).
    pub vit: Vit,
    #[module(skip)]
    hooks: StepHooks,
}

impl Classifier {
    /// Wraps `vit` with `hooks`.
    pub fn new(vit: Vit, hooks: StepHooks) -> Self {
        Classifier { vit, hooks }
    }
}

/// A training step's output: what the loss/accuracy metrics need, and the step's timing.
pub struct TrainItem {
    cls: ClassificationOutput,
    timing: Arc<StepTiming>,
}

impl ItemLazy for TrainItem {
    fn sync(self) -> Result<Self, ExecutionError> {
        Ok(TrainItem {
            cls: self.cls.sync()?,
            timing: self.timing,
        })
    }
}

impl Adaptor<LossInput> for TrainItem {
    fn adapt(&self) -> LossInput {
        self.cls.adapt()
    }
}

impl Adaptor<AccuracyInput> for TrainItem {
    fn adapt(&self) -> AccuracyInput {
        self.cls.adapt()
    }
}

impl Adaptor<StepInput> for TrainItem {
    fn adapt(&self) -> StepInput {
        StepInput(self.timing.get())
    }
}

impl TrainStep for Classifier {
    type Input = ImageBatch;
    type Output = TrainItem;

    fn step(&self, batch: ImageBatch) -> TrainOutput<TrainItem> {
        let timing = self.hooks.clock.start(batch.images.dims()[0]);
        let cls = self.vit.forward_classification(batch.images, batch.targets);
        let grads = cls.loss.backward();
        TrainOutput::new(self, grads, TrainItem { cls, timing })
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let hooks = self.hooks.clone();
        let grads = hooks.dist.average(&self, grads);
        // With several ranks, each rank's own gradient norm across ranks joins the norms'
        // row: a collective, so every rank decides the same way whether it runs.
        let spread = if hooks.watch.logs_norms_next() {
            hooks.dist.local_grad_norm_stats()
        } else {
            Vec::new()
        };
        hooks.watch.observe_with(&self, &grads, |_| spread);
        let model = optim.step(lr, self, grads);
        hooks.clock.finish();
        model
    }
}

impl InferenceStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> ClassificationOutput {
        self.vit.forward_classification(batch.images, batch.targets)
    }
}
