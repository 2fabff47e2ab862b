//! What an earlier run in the same output directory left: its last step and its epoch values.
//!
//! A training resumed with burn's `.checkpoint(k)` into a tracker whose output directory
//! already holds the run continues its step axis from the last step written there, and
//! [`HistoryLogger`](crate::HistoryLogger) answers burn's `read_numeric` for the epochs
//! before the resume from the epoch values written there.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

/// The JSONL backend's file (`ezpz-tracker` `backends/jsonl.rs`).
const JSONL: &str = "metrics.jsonl";

/// Bytes read from the end of the file to find the last step.
const TAIL: u64 = 256 * 1024;

#[derive(Deserialize)]
struct StepOnly {
    step: u64,
}

#[derive(Deserialize)]
struct Row {
    metrics: HashMap<String, serde_json::Value>,
}

/// The largest step in the last rows of `<outdir>/metrics.jsonl`; `None` without that file or
/// rows.
pub(crate) fn last_logged_step(outdir: &Path) -> Option<u64> {
    let mut file = File::open(outdir.join(JSONL)).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = String::new();
    file.take(TAIL).read_to_string(&mut tail).ok()?;
    // From the middle of the file the first line is partial: skip it.
    let lines = tail.lines().skip(usize::from(start > 0));
    lines
        .filter_map(|line| serde_json::from_str::<StepOnly>(line).ok())
        .map(|row| row.step)
        .max()
}

/// The epoch values (`<split>/epoch/<key>` in a row with `epoch`) in `<outdir>/metrics.jsonl`,
/// by `(split prefix, key, epoch)`; the last one written wins.
pub(crate) fn epoch_values(outdir: &Path) -> HashMap<(String, String, usize), f64> {
    let mut out = HashMap::new();
    let Ok(file) = File::open(outdir.join(JSONL)) else {
        return out;
    };
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if !line.contains("/epoch/") {
            continue;
        }
        let Ok(row) = serde_json::from_str::<Row>(&line) else {
            continue;
        };
        let Some(epoch) = row.metrics.get("epoch").and_then(serde_json::Value::as_u64) else {
            continue;
        };
        for (name, value) in &row.metrics {
            let (Some((split, key)), Some(v)) = (name.split_once("/epoch/"), value.as_f64()) else {
                continue;
            };
            out.insert((split.to_string(), key.to_string(), epoch as usize), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_step_and_the_epoch_values() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_logged_step(dir.path()), None);
        let rows = [
            r#"{"timestamp":1.0,"step":1,"rank":0,"metrics":{"train/loss":0.5,"epoch":1}}"#,
            r#"{"timestamp":1.0,"step":2,"rank":0,"metrics":{"train/epoch/loss":0.4,"valid/epoch/loss":0.3,"epoch":1}}"#,
            r#"{"timestamp":1.0,"step":4,"rank":0,"metrics":{"valid/epoch/loss":0.2,"epoch":2}}"#,
            r#"{"timestamp":1.0,"step":3,"rank":0,"metrics":{"grads/global_norm":1.0}}"#,
        ];
        std::fs::write(dir.path().join(JSONL), rows.join("\n") + "\n").unwrap();
        assert_eq!(last_logged_step(dir.path()), Some(4));
        let values = epoch_values(dir.path());
        assert_eq!(values.len(), 3);
        assert_eq!(values[&("valid".into(), "loss".into(), 2)], 0.2);
        assert_eq!(values[&("train".into(), "loss".into(), 1)], 0.4);
    }
}
