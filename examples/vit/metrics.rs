//! Step metrics for burn's metric pipeline: step time, images per second, TFLOP/s.

use std::sync::Arc;

use burn::tensor::TensorReadError;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

use crate::timing::StepStats;

/// Input of the step metrics: the step's timing, once known.
#[derive(Debug, Clone, Copy)]
pub struct StepInput(pub Option<StepStats>);

/// Which figure a [`StepMetric`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepFigure {
    /// Seconds of forward, backward, gradient exchange and update.
    StepTime,
    /// Images per second on this rank, from one step's start to the next.
    Throughput,
    /// Analytic TFLOP/s: 3 × forward FLOPs per image × images / step time.
    Tflops {
        /// Forward FLOPs of one image.
        forward_flops: f64,
    },
}

/// One step figure as a burn numeric metric.
#[derive(Clone)]
pub struct StepMetric {
    figure: StepFigure,
    name: MetricName,
    state: NumericMetricState,
}

impl StepMetric {
    /// A metric reporting `figure`.
    pub fn new(figure: StepFigure) -> Self {
        let name = match figure {
            StepFigure::StepTime => "Step Time",
            StepFigure::Throughput => "Images Per Second",
            StepFigure::Tflops { .. } => "TFLOPS",
        };
        StepMetric {
            figure,
            name: Arc::new(name.to_string()),
            state: NumericMetricState::new(),
        }
    }

    fn unit(&self) -> &'static str {
        match self.figure {
            StepFigure::StepTime => "s",
            StepFigure::Throughput => "images/s",
            StepFigure::Tflops { .. } => "TFLOP/s",
        }
    }

    fn format(&self) -> FormatOptions {
        FormatOptions::new(self.name.clone())
            .unit(self.unit())
            .precision(4)
    }

    /// The figure for one step.
    pub fn value_of(&self, s: &StepStats) -> f64 {
        match self.figure {
            StepFigure::StepTime => s.compute_secs,
            StepFigure::Throughput => s.images as f64 / s.interval_secs.max(1e-9),
            StepFigure::Tflops { forward_flops } => {
                3.0 * forward_flops * s.images as f64 / s.compute_secs.max(1e-9) / 1e12
            }
        }
    }
}

impl Metric for StepMetric {
    type Input = StepInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some(self.unit().to_string()),
            higher_is_better: self.figure != StepFigure::StepTime,
        }
        .into()
    }

    fn update(
        &mut self,
        input: &StepInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        // A step always finishes before burn hands its item to the metrics; NaN would only
        // show a broken invariant, visibly, instead of skipping a step.
        let value = input.0.as_ref().map_or(f64::NAN, |s| self.value_of(s));
        self.state.update(value, 1);
        Ok(self.state.compute_update(self.format()))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.state.compute_final(self.format()))
    }

    fn clear(&mut self) {
        self.state.reset()
    }
}

impl Numeric for StepMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.state.current_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.state.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.state.final_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_one_step() {
        let s = StepStats {
            images: 32,
            compute_secs: 0.5,
            interval_secs: 0.8,
        };
        assert_eq!(StepMetric::new(StepFigure::StepTime).value_of(&s), 0.5);
        assert_eq!(StepMetric::new(StepFigure::Throughput).value_of(&s), 40.0);
        let tflops = StepMetric::new(StepFigure::Tflops { forward_flops: 1e9 }).value_of(&s);
        assert!((tflops - 3.0 * 32.0 * 1e9 / 0.5 / 1e12).abs() < 1e-12);
    }
}
