//! What a metric means: its unit and which way it improves ([`Tracker::define_metric`]).
//!
//! [`Tracker::define_metric`]: crate::Tracker::define_metric

use serde::{Deserialize, Serialize};

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Lower is better (a loss, an error rate).
    Minimize,
    /// Higher is better (an accuracy).
    Maximize,
}

impl Goal {
    /// `"minimize"` or `"maximize"` (W&B's and Optuna's words).
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::Minimize => "minimize",
            Goal::Maximize => "maximize",
        }
    }

    /// The better of two values (`NaN` never wins).
    pub fn better(self, a: f64, b: f64) -> f64 {
        match self {
            Goal::Minimize => a.min(b),
            Goal::Maximize => a.max(b),
        }
    }
}

/// The definition of the metric `key`: its unit and its goal. Backends show it where they
/// can: W&B summarises the metric by its best value as well as its last (`define_metric`
/// with `summary="min"` or `"max"`), MLflow gets the tags `ezpz.metric.<key>.unit` and
/// `ezpz.metric.<key>.goal`, the report's overview shows the unit and goal and the best value
/// in bold, and a custom backend sees it in
/// [`Backend::define_metric`](crate::Backend::define_metric).
///
/// ```
/// use ezpz_tracker::{Goal, MetricDefinition};
/// let accuracy = MetricDefinition::new("valid/accuracy").unit("%").goal(Goal::Maximize);
/// assert_eq!(accuracy.goal, Some(Goal::Maximize));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricDefinition {
    /// The metric's key, as logged (`valid/loss`).
    pub key: String,
    /// Its unit (`%`, `s`, `items/s`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Which way it improves, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
}

impl MetricDefinition {
    /// A definition of `key` with no unit and no goal.
    pub fn new(key: impl Into<String>) -> Self {
        MetricDefinition {
            key: key.into(),
            unit: None,
            goal: None,
        }
    }

    /// Sets the unit.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Sets the goal.
    pub fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }
}
