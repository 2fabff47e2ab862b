//! The run's history as one table (`training_history`), thinned to a bounded number of rows.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use super::history::{Cell, History, Line};
use crate::value::Value;
use crate::{Error, Result};

/// Rows of the `training_history` table unless told otherwise.
pub const DEFAULT_MAX_TABLE_ROWS: usize = 10_000;

/// The history table: a `step` column, then every logged key (aggregates included) in order
/// of first appearance; one row per record, or every k-th record (always keeping the last)
/// when there are more than `max_rows`. Missing numbers are NaN, missing text is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryTable {
    /// Column names.
    pub columns: Vec<String>,
    /// The rows, each as long as `columns`.
    pub rows: Vec<Vec<Value>>,
    /// Records per row (1 when nothing was left out).
    pub stride: u64,
}

/// Reads `path` a second time (after [`History::read`]) to build the table.
///
/// # Errors
/// The file cannot be opened or read.
pub fn history_table(path: &Path, history: &History, max_rows: usize) -> Result<HistoryTable> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let keys: Vec<(&str, bool)> = history.keys().collect();
    let columns = std::iter::once("step".to_string())
        .chain(keys.iter().map(|(k, _)| k.to_string()))
        .collect();
    let index: std::collections::HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, i + 1))
        .collect();
    let empty: Vec<Value> = std::iter::once(Value::I64(0))
        .chain(keys.iter().map(|(_, text)| {
            if *text {
                Value::Str(Arc::from(""))
            } else {
                Value::F64(f64::NAN)
            }
        }))
        .collect();
    let stride = history.records.div_ceil(max_rows.max(1) as u64).max(1);
    let mut rows = Vec::new();
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    let mut i = 0u64;
    let mut next_step = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        let Some(rec) = Line::parse(&line) else {
            continue;
        };
        let step = rec.step.unwrap_or(next_step);
        next_step = step + 1;
        let keep = i.is_multiple_of(stride) || i + 1 == history.records;
        i += 1;
        if !keep {
            continue;
        }
        let mut row = empty.clone();
        row[0] = Value::from(step);
        for (k, v) in &rec.metrics {
            let (Some(col), Some(cell)) = (index.get(k.as_str()), Cell::decode(v)) else {
                continue;
            };
            row[*col] = match cell {
                Cell::Num(x) => Value::F64(x),
                Cell::Int(x) => Value::I64(x),
                Cell::Bool(b) => Value::Bool(b),
                Cell::Text(t) => Value::from(t),
            };
        }
        rows.push(row);
    }
    Ok(HistoryTable {
        columns,
        rows,
        stride,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rows_are_thinned_evenly_and_keep_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        for step in 0..25u64 {
            let extra = if step == 3 { r#","note":"x""# } else { "" };
            writeln!(
                f,
                r#"{{"timestamp":1.0,"step":{step},"rank":0,"metrics":{{"loss":{}.5,"n":{step}{extra}}}}}"#,
                step
            )
            .unwrap();
        }
        drop(f);
        let h = History::read(&path, 10).unwrap();
        let t = history_table(&path, &h, 10).unwrap();
        assert_eq!(t.columns, ["step", "loss", "n", "note"]);
        assert_eq!(t.stride, 3);
        let steps: Vec<_> = t.rows.iter().map(|r| r[0].clone()).collect();
        let expected: Vec<Value> = [0, 3, 6, 9, 12, 15, 18, 21, 24].map(Value::I64).to_vec();
        assert_eq!(steps, expected);
        assert_eq!(t.rows[1][1], Value::F64(3.5));
        assert_eq!(t.rows[1][2], Value::I64(3));
        assert_eq!(t.rows[1][3], Value::from("x"));
        assert_eq!(t.rows[2][3], Value::from(""));
        assert!(t.rows.iter().all(|r| r.len() == 4));
    }
}
