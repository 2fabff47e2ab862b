//! The row being built by `log` calls, following the key list of a previous row.
//!
//! A tight loop logs the same keys in the same order every time. While the keys so far match
//! a known list ([`Keys`]) position by position, a `log` call only compares each key with the
//! one in its place and stores the value's word: no allocation, no reference count, no
//! duplicate check (a known list has no duplicates). The committed row shares that list. Only
//! a key that leaves every known list takes the general path, which builds an owned list;
//! the lists of the last few distinct rows are kept, so a loop that alternates between a
//! training row and an evaluation row stays on the fast path.

use std::sync::Arc;

use crate::keys::{same_key, Keys};
use crate::record::Values;
use crate::value::Value;

/// Distinct key lists remembered for the fast path.
const RECENT: usize = 8;

/// See the module docs.
#[derive(Default)]
pub(crate) struct PendingRow {
    /// The list followed while `own` is `None`: the row's keys are `keys[..values.len()]`.
    keys: Option<Keys>,
    /// The row's keys once they left every known list (duplicates resolved).
    own: Option<Vec<Arc<str>>>,
    values: Values,
    /// Key lists of recent rows (no two equal), oldest first.
    recent: Vec<Keys>,
}

impl std::fmt::Debug for PendingRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRow")
            .field("values", &self.values.len())
            .finish()
    }
}

impl PendingRow {
    /// Whether no metric has been added since the last commit.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.len() == 0
    }

    /// Sets `key` to `value` (a repeated key: the later value wins).
    #[inline(always)]
    pub(crate) fn set(&mut self, key: &str, value: Value) {
        if self.own.is_none() && self.follows(self.values.len(), key) {
            self.values.push(value);
        } else {
            self.set_elsewhere(key, value);
        }
    }

    /// [`set`](Self::set) for a key that is not the followed list's next.
    #[cold]
    #[inline(never)]
    fn set_elsewhere(&mut self, key: &str, value: Value) {
        let i = self.values.len();
        if self.own.is_none() {
            if self.switch_list(i, key) {
                self.values.push(value);
                return;
            }
            let prefix = self.keys.as_deref().map_or(&[][..], |k| &k[..i]);
            self.own = Some(prefix.to_vec());
        }
        let own = self.own.as_mut().expect("set above");
        match own
            .iter()
            .position(|k| same_key(k.as_bytes(), key.as_bytes()))
        {
            Some(j) => self.values.set(j, value),
            None => {
                own.push(Arc::from(key));
                self.values.push(value);
            }
        }
    }

    /// Whether `key` is the followed list's `i`-th.
    #[inline]
    fn follows(&self, i: usize, key: &str) -> bool {
        self.keys.as_ref().is_some_and(|k| k.matches(i, key))
    }

    /// Follows a recent list that starts with the row's keys so far and has `key` next.
    fn switch_list(&mut self, i: usize, key: &str) -> bool {
        let so_far = self.keys.as_deref().map_or(&[][..], |k| &k[..i]);
        let found = self.recent.iter().find(|list| {
            list.matches(i, key)
                && list[..i]
                    .iter()
                    .zip(so_far)
                    .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
        });
        match found {
            Some(list) => {
                self.keys = Some(list.clone());
                true
            }
            None => false,
        }
    }

    /// The built row's key list: the followed one when the row matched all of it, else a
    /// remembered or new one. The next row follows it.
    fn commit_keys(&mut self) -> Keys {
        let n = self.values.len();
        let keys = match (self.own.take(), self.keys.take()) {
            (None, Some(keys)) if keys.len() == n => keys,
            // A prefix of the followed list.
            (None, keys) => self.remember(keys.as_deref().map_or(&[][..], |k| &k[..n])),
            (Some(own), _) => self.remember(&own),
        };
        self.keys = Some(keys.clone());
        keys
    }

    /// The remembered list equal to `keys`, or a new one (forgetting the oldest): a row that
    /// repeats a known list allocates nothing.
    fn remember(&mut self, keys: &[Arc<str>]) -> Keys {
        if let Some(list) = self.recent.iter().find(|l| l[..] == *keys) {
            return list.clone();
        }
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        let list: Keys = keys.to_vec().into();
        self.recent.push(list.clone());
        list
    }

    /// Moves the built row into `keys`/`values` (a recycled row's, whose value buffer becomes
    /// the next row's).
    pub(crate) fn swap_into(&mut self, keys: &mut Keys, values: &mut Values) {
        *keys = self.commit_keys();
        std::mem::swap(&mut self.values, values);
        self.values.clear();
        self.values.reserve(values.len());
    }

    /// The built row, leaving room for one as wide.
    pub(crate) fn take(&mut self) -> (Keys, Values) {
        let keys = self.commit_keys();
        let width = self.values.len();
        let values = std::mem::replace(&mut self.values, Values::with_capacity(width));
        (keys, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: &mut PendingRow, keys: &[&str]) -> Keys {
        for (i, k) in keys.iter().enumerate() {
            p.set(k, Value::F64(i as f64));
        }
        p.take().0
    }

    fn names(keys: &Keys) -> Vec<&str> {
        keys.iter().map(|k| &**k).collect()
    }

    #[test]
    fn rows_with_the_same_keys_share_one_list() {
        let mut p = PendingRow::default();
        let a = row(&mut p, &["x", "y"]);
        let b = row(&mut p, &["x", "y"]);
        assert!(Keys::ptr_eq(&a, &b));
        assert_eq!(names(&b), ["x", "y"]);
    }

    #[test]
    fn alternating_rows_and_prefixes_reuse_their_lists() {
        let mut p = PendingRow::default();
        let train = row(&mut p, &["loss", "lr"]);
        let valid = row(&mut p, &["val/loss"]);
        let prefix = row(&mut p, &["loss"]);
        assert_eq!(names(&prefix), ["loss"]);
        for _ in 0..3 {
            assert!(Keys::ptr_eq(&row(&mut p, &["loss", "lr"]), &train));
            assert!(Keys::ptr_eq(&row(&mut p, &["val/loss"]), &valid));
            assert!(Keys::ptr_eq(&row(&mut p, &["loss"]), &prefix));
        }
    }

    #[test]
    fn repeated_keys_keep_the_later_value_and_other_orders_work() {
        let mut p = PendingRow::default();
        row(&mut p, &["a", "b"]);
        p.set("a", Value::F64(1.0));
        p.set("b", Value::F64(2.0));
        p.set("a", Value::F64(3.0));
        p.set("c", Value::Str("s".into()));
        let (keys, values) = p.take();
        assert_eq!(names(&keys), ["a", "b", "c"]);
        assert_eq!(values.get(0), Value::F64(3.0), "the later value wins");
        assert_eq!(values.get(2), Value::Str("s".into()));
        let (keys, _) = {
            p.set("b", Value::F64(0.0));
            p.set("a", Value::F64(0.0));
            p.take()
        };
        assert_eq!(names(&keys), ["b", "a"]);
        assert!(p.is_empty());
    }

    #[test]
    fn a_recycled_buffer_is_emptied_before_reuse() {
        let mut p = PendingRow::default();
        p.set("a", Value::F64(1.0));
        let mut keys = Keys::default();
        let mut values = Values::default();
        values.push(Value::Str("old".into()));
        values.push(Value::F64(9.0));
        p.swap_into(&mut keys, &mut values);
        assert_eq!(names(&keys), ["a"]);
        assert_eq!((values.len(), values.get(0)), (1, Value::F64(1.0)));
        assert!(p.is_empty(), "the old row's values are gone");
        p.set("a", Value::F64(2.0));
        let (_, v) = p.take();
        assert_eq!(v.get(0), Value::F64(2.0));
    }
}
