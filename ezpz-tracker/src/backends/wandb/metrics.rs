//! Metric definitions, as W&B's `define_metric(key, summary="min,last")` (or `"max,last"`)
//! writes them: a `metric` record in the log, the `_wandb.m` entry of the configuration sent
//! online (what `wandb sync` makes of that record), and a summary holding the best value
//! beside the last one (`{"last": 0.31, "min": 0.27}`; W&B shows `valid/loss.min`).
//!
//! W&B has no units: a definition without a goal changes nothing here.

use std::collections::HashMap;

use serde_json::{json, Value as Json};

use super::proto::{MetricOptions, MetricRecord, MetricSummary};
use crate::value::Value;
use crate::{Goal, MetricDefinition};

use super::history::{json_string, value_json};

/// The key W&B keeps its own run settings under in the configuration.
pub(super) const WANDB_CONFIG_KEY: &str = "_wandb";

/// `MetricSummary` field numbers, as `_wandb.m` lists them.
const SUMMARY_MIN: u32 = 1;
const SUMMARY_MAX: u32 = 2;
const SUMMARY_LAST: u32 = 5;
/// `MetricOptions.defined`.
const OPTION_DEFINED: u32 = 3;

/// `MetricRecord.MetricGoal`.
fn goal_number(goal: Goal) -> i32 {
    match goal {
        Goal::Minimize => 1,
        Goal::Maximize => 2,
    }
}

/// The defined metrics of a run and each one's best value so far.
#[derive(Debug, Default)]
pub(super) struct Definitions {
    goals: Vec<(String, Goal)>,
    best: HashMap<String, f64>,
}

impl Definitions {
    /// Takes `definition`; its `metric` record when it has a goal (a new or changed one).
    pub fn define(&mut self, definition: &MetricDefinition) -> Option<MetricRecord> {
        let goal = definition.goal?;
        let key = &definition.key;
        match self.goals.iter_mut().find(|(k, _)| k == key) {
            Some((_, g)) if *g == goal => return None,
            Some((_, g)) => {
                *g = goal;
                self.best.remove(key);
            }
            None => self.goals.push((key.clone(), goal)),
        }
        Some(MetricRecord {
            name: key.clone(),
            options: Some(MetricOptions { defined: true }),
            summary: Some(MetricSummary {
                min: goal == Goal::Minimize,
                max: goal == Goal::Maximize,
                last: true,
            }),
            goal: goal_number(goal),
        })
    }

    /// Whether any metric is defined.
    pub fn is_empty(&self) -> bool {
        self.goals.is_empty()
    }

    /// The `_wandb` configuration entry listing the definitions (`{"m": [...]}`, keyed by
    /// `MetricRecord` field numbers, as the real client sends it).
    pub fn config_entry(&self) -> Json {
        let m: Vec<Json> = self
            .goals
            .iter()
            .map(|(key, goal)| {
                let best = match goal {
                    Goal::Minimize => SUMMARY_MIN,
                    Goal::Maximize => SUMMARY_MAX,
                };
                json!({
                    "1": key,
                    "6": [OPTION_DEFINED],
                    "7": [best, SUMMARY_LAST],
                    "8": goal_number(*goal),
                })
            })
            .collect();
        json!({ "m": m })
    }

    /// The summary of `key` after `value` when the key is defined: its last and best
    /// values as one JSON object (`NaN` is never the best).
    pub fn summary(&mut self, key: &str, value: &Value) -> Option<String> {
        let goal = self.goals.iter().find(|(k, _)| k == key)?.1;
        let v = value.as_f64()?;
        let best = match self.best.get(key) {
            Some(&b) => goal.better(b, v),
            None => v,
        };
        if !best.is_nan() {
            self.best.insert(key.to_string(), best);
        }
        let mut s = format!("{{{}:{}", json_string("last"), value_json(value));
        if let Some(&b) = self.best.get(key) {
            let name = match goal {
                Goal::Minimize => "min",
                Goal::Maximize => "max",
            };
            s.push_str(&format!(
                ",{}:{}",
                json_string(name),
                value_json(&Value::F64(b))
            ));
        }
        s.push('}');
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_keeps_the_last_and_the_best_value() {
        let mut d = Definitions::default();
        let def = MetricDefinition::new("valid/loss").goal(Goal::Minimize);
        assert!(d.define(&def).is_some());
        assert!(d.define(&def).is_none(), "the same definition again");
        assert_eq!(d.summary("other", &Value::F64(1.0)), None);
        let mut last = None;
        for v in [3.0, 1.0, f64::NAN, 2.0] {
            last = d.summary("valid/loss", &Value::F64(v));
        }
        assert_eq!(last.as_deref(), Some(r#"{"last":2.0,"min":1.0}"#));
        let acc = MetricDefinition::new("acc").unit("%").goal(Goal::Maximize);
        d.define(&acc);
        d.summary("acc", &Value::F64(0.5));
        assert_eq!(
            d.summary("acc", &Value::F64(0.25)).as_deref(),
            Some(r#"{"last":0.25,"max":0.5}"#)
        );
        assert!(d
            .define(&MetricDefinition::new("no-goal").unit("s"))
            .is_none());
    }
}
