//! History rows: the same `(key, JSON)` pairs become the log's `HistoryRecord` and the
//! `wandb-history.jsonl` line sent online, so both paths carry identical values.

use crate::value::{write_f64, Value};

use super::proto::{HistoryRecord, HistoryStep, Item};

/// A value as W&B's JSON: numbers as shortest round-trip text, non-finite floats as the bare
/// `NaN`, `Infinity`, `-Infinity` that W&B's readers (Python's `json`) accept.
pub fn value_json(v: &Value) -> String {
    match v {
        Value::F64(f) if f.is_nan() => "NaN".into(),
        Value::F64(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        Value::F64(f) => {
            let mut s = String::new();
            write_f64(*f, &mut s);
            s
        }
        Value::I64(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => json_string(s),
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// One history row being assembled: keys in order, values as JSON text.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Row {
    /// `(key, JSON value)` pairs, the reserved `_step`, `_runtime`, `_timestamp` last.
    pub items: Vec<(String, String)>,
    /// W&B's `_step`.
    pub step: u64,
}

impl Row {
    /// Adds (or replaces) a key.
    pub fn set(&mut self, key: &str, json: String) {
        match self.items.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = json,
            None => self.items.push((key.to_string(), json)),
        }
    }

    /// Stamps the reserved keys W&B expects on every row.
    pub fn stamp(&mut self, step: u64, timestamp: f64, runtime: f64) {
        self.step = step;
        self.set("_timestamp", value_json(&Value::F64(timestamp)));
        self.set("_runtime", value_json(&Value::F64(runtime.max(0.0))));
        self.set("_step", step.to_string());
    }

    /// The row as a log record.
    pub fn to_record(&self) -> HistoryRecord {
        HistoryRecord {
            item: self
                .items
                .iter()
                .map(|(k, v)| Item::new(k.clone(), v.clone()))
                .collect(),
            step: Some(HistoryStep {
                num: i64::try_from(self.step).unwrap_or(i64::MAX),
            }),
        }
    }

    /// The row as one `wandb-history.jsonl` line.
    pub fn to_line(&self) -> String {
        let mut line = String::from("{");
        for (i, (k, v)) in self.items.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&json_string(k));
            line.push(':');
            line.push_str(v);
        }
        line.push('}');
        line
    }
}

/// Keeps W&B's `_step` strictly increasing. W&B silently drops rows whose step goes
/// backwards; here such a row gets the next free `_step` and keeps the caller's step as a
/// `step` key, with one warning.
#[derive(Debug, Default)]
pub struct Steps {
    next: u64,
    warned: bool,
}

impl Steps {
    /// Steps start at `first` (a resumed run continues after the server's rows).
    pub fn starting_at(first: u64) -> Self {
        Steps {
            next: first,
            warned: false,
        }
    }

    /// The `_step` for a row the caller logged at `step`, and the caller's step when it had
    /// to move.
    pub fn place(&mut self, step: u64) -> (u64, Option<u64>) {
        if step >= self.next {
            self.next = step + 1;
            return (step, None);
        }
        let placed = self.next;
        self.next += 1;
        if !self.warned {
            self.warned = true;
            crate::warn!(
                "ezpz: W&B requires increasing steps but step {step} came after step {}; W&B's \
                 `_step` continues at {placed} and your step is kept in the row as the `step` key \
                 (use it as the x-axis); this warning is shown once",
                placed - 1
            );
        }
        (placed, Some(step))
    }

    /// The next `_step` that would be used as is.
    pub fn next(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_of_values() {
        assert_eq!(value_json(&Value::F64(0.5)), "0.5");
        assert_eq!(value_json(&Value::F64(f64::NAN)), "NaN");
        assert_eq!(value_json(&Value::F64(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(value_json(&Value::I64(-3)), "-3");
        assert_eq!(value_json(&Value::from("a\"b")), "\"a\\\"b\"");
    }

    #[test]
    fn row_line_and_record_carry_the_same_values() {
        let mut row = Row::default();
        row.set("train/loss", value_json(&Value::F64(0.25)));
        row.stamp(4, 1.5e9, 2.0);
        let line: serde_json::Value = serde_json::from_str(&row.to_line()).unwrap();
        assert_eq!(line["train/loss"], 0.25);
        assert_eq!(line["_step"], 4);
        assert_eq!(line["_runtime"], 2.0);
        let rec = row.to_record();
        assert_eq!(rec.step.unwrap().num, 4);
        assert_eq!(rec.item[0].nested_key, ["train/loss"]);
        assert_eq!(rec.item[0].value_json, "0.25");
    }

    #[test]
    fn steps_never_go_backwards() {
        let mut s = Steps::default();
        assert_eq!(s.place(0), (0, None));
        assert_eq!(s.place(10), (10, None));
        assert_eq!(s.place(3), (11, Some(3)));
        assert_eq!(s.place(11), (12, Some(11)));
        assert_eq!(s.place(20), (20, None));
        let mut resumed = Steps::starting_at(5);
        assert_eq!(resumed.place(0), (5, Some(0)));
    }
}
