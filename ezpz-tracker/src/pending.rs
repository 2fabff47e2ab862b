//! The row being built by `log` calls, written over the entries of a recycled row.
//!
//! A tight loop logs the same keys in the same order every time, and the rows the workers
//! hand back hold exactly those keys. Writing the new values over such a row's entries, key
//! by key, costs no allocation and no reference-count traffic; only a key that differs from
//! the entry in its place takes the general path.

use std::sync::Arc;

use crate::value::{Metric, Value};

/// Entries `[0, filled)` are the row being built; the rest are a recycled row's, kept for
/// their keys.
#[derive(Debug, Default)]
pub(crate) struct PendingRow {
    entries: Vec<Metric>,
    filled: usize,
}

impl PendingRow {
    /// Whether no metric has been added since the last commit.
    pub(crate) fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Sets `key` to `value`. `hint` is a previous row whose key at the same position is
    /// reused when this row's recycled entries do not have it; `positional` says whether
    /// keys so far came in that row's order (so that no duplicate check is needed). Returns
    /// whether the next key may still be positional.
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: Value,
        positional: bool,
        hint: Option<&[Metric]>,
    ) -> bool {
        let idx = self.filled;
        if positional {
            if let Some((k, v)) = self.entries.get_mut(idx) {
                if &**k == key {
                    *v = value;
                    self.filled += 1;
                    return true;
                }
            }
            if let Some((k, _)) = hint.and_then(|h| h.get(idx)) {
                if &**k == key {
                    self.entries.truncate(idx);
                    self.entries.push((k.clone(), value));
                    self.filled += 1;
                    return true;
                }
            }
        }
        self.entries.truncate(idx);
        match self.entries.iter_mut().find(|(k, _)| &**k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((Arc::from(key), value)),
        }
        self.filled = self.entries.len();
        false
    }

    /// Swaps the built row into `row` (whose old entries become the recycled ones).
    pub(crate) fn swap_into(&mut self, row: &mut Vec<Metric>) {
        self.entries.truncate(self.filled);
        std::mem::swap(&mut self.entries, row);
        self.filled = 0;
        // A fresh row has no entries: room for one as wide as this, in one allocation.
        if self.entries.capacity() < row.len() {
            self.entries.reserve_exact(row.len() - self.entries.len());
        }
    }

    /// The built row, leaving room for one as wide.
    pub(crate) fn take(&mut self) -> Vec<Metric> {
        self.entries.truncate(self.filled);
        self.filled = 0;
        let row = std::mem::take(&mut self.entries);
        self.entries = Vec::with_capacity(row.len());
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(row: &[Metric]) -> Vec<&str> {
        row.iter().map(|(k, _)| &**k).collect()
    }

    #[test]
    fn recycled_entries_are_overwritten_in_place_and_the_rest_dropped() {
        let mut p = PendingRow::default();
        let mut recycled: Vec<Metric> = ["a", "b", "c"]
            .iter()
            .map(|k| (Arc::from(*k), Value::F64(0.0)))
            .collect();
        let a_key = recycled[0].0.clone();
        p.swap_into(&mut recycled); // an empty row out, the recycled entries in
        assert!(recycled.is_empty() && p.is_empty());
        assert!(p.set("a", Value::F64(1.0), true, None));
        assert!(p.set("b", Value::F64(2.0), true, None));
        let mut row = Vec::new();
        p.swap_into(&mut row);
        assert_eq!(
            keys(&row),
            ["a", "b"],
            "the stale `c` is not part of the row"
        );
        assert!(
            Arc::ptr_eq(&row[0].0, &a_key),
            "the key was reused, not reallocated"
        );
        assert_eq!(row[1].1, Value::F64(2.0));
    }

    #[test]
    fn other_orders_duplicates_and_hints() {
        let mut p = PendingRow::default();
        let hint: Vec<Metric> = vec![(Arc::from("x"), Value::F64(0.0))];
        assert!(p.set("x", Value::F64(1.0), true, Some(&hint)));
        assert!(Arc::ptr_eq(&p.entries[0].0, &hint[0].0));
        assert!(!p.set("y", Value::F64(2.0), true, Some(&hint)));
        assert!(
            !p.set("x", Value::F64(3.0), false, Some(&hint)),
            "a repeated key"
        );
        let row = p.take();
        assert_eq!(keys(&row), ["x", "y"]);
        assert_eq!(row[0].1, Value::F64(3.0), "the later value wins");
        assert!(p.is_empty());
    }
}
