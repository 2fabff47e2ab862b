//! Rank 0's table of metric keys: one shared allocation per key for the rows that arrive
//! from other ranks, and each key's aggregate names (`key/mean`, `/min`, `/max`, `/std`),
//! formatted once instead of on every row.

use std::collections::HashMap;
use std::sync::Arc;

use super::stats::Stats;

/// Distinct keys kept before the table starts over (a program inventing new keys on every
/// row must not grow it without bound).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    keys: HashMap<Arc<str>, [Arc<str>; 4]>,
}

impl KeyTable {
    /// The shared allocation for `key`.
    pub(crate) fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some((k, _)) = self.keys.get_key_value(key) {
            return k.clone();
        }
        self.entry(key).0
    }

    /// `key/mean`, `key/min`, `key/max`, `key/std`.
    pub(crate) fn aggregate_names(&mut self, key: &str) -> [Arc<str>; 4] {
        if let Some(names) = self.keys.get(key) {
            return names.clone();
        }
        self.entry(key).1
    }

    fn entry(&mut self, key: &str) -> (Arc<str>, [Arc<str>; 4]) {
        if self.keys.len() >= MAX_KEYS {
            self.keys.clear();
        }
        let key: Arc<str> = Arc::from(key);
        // `Stats::metrics` owns the naming convention.
        let names = Stats::of(&[]).metrics(&key).map(|(name, _)| name);
        self.keys.insert(key.clone(), names.clone());
        (key, names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shared_and_names_formatted_once() {
        let mut t = KeyTable::default();
        let a = t.intern("train/loss");
        assert!(Arc::ptr_eq(&a, &t.intern("train/loss")));
        let names = t.aggregate_names("train/loss");
        assert_eq!(&*names[0], "train/loss/mean");
        assert_eq!(&*names[3], "train/loss/std");
        assert!(Arc::ptr_eq(&names[1], &t.aggregate_names("train/loss")[1]));
    }
}
