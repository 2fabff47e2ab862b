//! [`Record`]: one committed row of metrics, in the layout the logging thread can fill
//! cheaply.
//!
//! A training loop logs the same keys in the same order at every step. Rows logged with the
//! same keys therefore share one key list ([`Keys`]): committing a row costs one reference
//! count for its keys, not one per key, and a backend tells "same columns as the previous
//! row" by comparing two pointers. The values are stored as 8-byte words, one per key, with
//! a kind per value only when a row holds something other than floats; the common row of
//! floats is one small allocation that never needs dropping value by value.

use std::fmt;
use std::sync::Arc;

use crate::keys::KeyJoiner;
pub use crate::keys::Keys;
use crate::value::{IntoMetrics, Metric, MetricSink, Value};

/// What an 8-byte word in [`Values`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F64,
    I64,
    Bool,
    /// An index into the row's strings.
    Str,
}

/// A row's values, one word per key (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct Values {
    words: Vec<u64>,
    /// Empty while every value is a float, else one kind per word.
    kinds: Vec<Kind>,
    strs: Vec<Arc<str>>,
}

impl Values {
    pub(crate) fn with_capacity(n: usize) -> Values {
        Values {
            words: Vec::with_capacity(n),
            ..Values::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }

    /// Room for `n` values in all.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.words.reserve(n.saturating_sub(self.words.len()));
    }

    /// Empties the row, keeping its allocations.
    pub(crate) fn clear(&mut self) {
        self.words.clear();
        self.kinds.clear();
        self.strs.clear();
    }

    /// The word and kind for `value` (a string is moved into the row).
    #[inline]
    fn encode(&mut self, value: Value) -> (u64, Kind) {
        match value {
            Value::F64(v) => (v.to_bits(), Kind::F64),
            Value::I64(v) => (v as u64, Kind::I64),
            Value::Bool(b) => (u64::from(b), Kind::Bool),
            Value::Str(s) => {
                self.strs.push(s);
                ((self.strs.len() - 1) as u64, Kind::Str)
            }
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, value: Value) {
        let (word, kind) = self.encode(value);
        self.words.push(word);
        self.push_kind(kind);
    }

    /// Keeps `kinds` empty while every value is a float.
    #[inline]
    fn push_kind(&mut self, kind: Kind) {
        if !self.kinds.is_empty() {
            self.kinds.push(kind);
        } else if kind != Kind::F64 {
            self.kinds.resize(self.words.len() - 1, Kind::F64);
            self.kinds.push(kind);
        }
    }

    /// Replaces value `i` (a replaced string stays in the row's strings, unreferenced).
    pub(crate) fn set(&mut self, i: usize, value: Value) {
        let (word, kind) = self.encode(value);
        self.words[i] = word;
        if self.kinds.is_empty() && kind != Kind::F64 {
            self.kinds.resize(self.words.len(), Kind::F64);
        }
        if let Some(k) = self.kinds.get_mut(i) {
            *k = kind;
        }
    }

    pub(crate) fn get(&self, i: usize) -> Value {
        let word = self.words[i];
        match self.kinds.get(i).copied().unwrap_or(Kind::F64) {
            Kind::F64 => Value::F64(f64::from_bits(word)),
            Kind::I64 => Value::I64(word as i64),
            Kind::Bool => Value::Bool(word != 0),
            Kind::Str => Value::Str(self.strs[word as usize].clone()),
        }
    }

    /// Value `i` as a number, if it is one (as [`Value::as_f64`], without touching strings).
    pub(crate) fn number(&self, i: usize) -> Option<f64> {
        let word = self.words[i];
        match self.kinds.get(i).copied().unwrap_or(Kind::F64) {
            Kind::F64 => Some(f64::from_bits(word)),
            Kind::I64 => Some(word as i64 as f64),
            Kind::Bool => Some(word as f64),
            Kind::Str => None,
        }
    }
}

/// One committed row of metrics, shared by every backend (see the module docs for its
/// layout).
#[derive(Clone, Default)]
pub struct Record {
    /// The step: explicit, else the `"step"` key, else one more than the previous record.
    pub step: u64,
    /// Seconds since the Unix epoch when the row was committed.
    pub timestamp: f64,
    /// The rank that logged it.
    pub rank: usize,
    keys: Keys,
    values: Values,
}

impl Record {
    /// A record of `metrics`, in their order, as given (a custom backend's tests, a replay).
    pub fn new(step: u64, timestamp: f64, rank: usize, metrics: impl IntoMetrics) -> Record {
        let mut keys: Vec<Arc<str>> = Vec::new();
        let mut values = Values::default();
        metrics.for_each_metric(&mut |k: &str, v: Value| {
            keys.push(Arc::from(k));
            values.push(v);
        });
        Record::from_parts(step, timestamp, rank, keys.into(), values)
    }

    /// `keys` and `values` have one entry per metric.
    pub(crate) fn from_parts(
        step: u64,
        timestamp: f64,
        rank: usize,
        keys: Keys,
        values: Values,
    ) -> Record {
        debug_assert_eq!(keys.len(), values.len());
        Record {
            step,
            timestamp,
            rank,
            keys,
            values,
        }
    }

    /// The metric names, in the caller's order (a `"step"` key is removed). Rows with the
    /// same keys usually share this list: compare with [`Keys::ptr_eq`] first.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// How many metrics the row holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the row holds no metric.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `i`-th value (in the order of [`Record::keys`]).
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn value(&self, i: usize) -> Value {
        self.values.get(i)
    }

    /// `(key, value)` pairs, in the caller's order.
    pub fn metrics(&self) -> impl ExactSizeIterator<Item = (&Arc<str>, Value)> + '_ {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k, self.values.get(i)))
    }

    /// `(key, number)` for the numeric values (`bool` as 0/1; strings left out).
    pub fn numbers(&self) -> impl Iterator<Item = (&Arc<str>, f64)> + '_ {
        self.keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((k, self.values.number(i)?)))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value> {
        let i = self.keys.iter().position(|k| &**k == key)?;
        Some(self.values.get(i))
    }

    /// Appends `metrics` (the aggregation appends `key/mean`, … to rank 0's rows), with key
    /// lists shared through `joiner`.
    pub(crate) fn extend(&mut self, metrics: Vec<Metric>, joiner: &mut KeyJoiner) {
        if metrics.is_empty() {
            return;
        }
        self.keys = joiner.join(&self.keys, &metrics);
        for (_, v) in metrics {
            self.values.push(v);
        }
    }

    /// The row's parts, for reuse by the logging thread.
    pub(crate) fn parts_mut(&mut self) -> (&mut Keys, &mut Values) {
        (&mut self.keys, &mut self.values)
    }
}

impl IntoMetrics for &Record {
    fn for_each_metric<S: MetricSink + ?Sized>(self, sink: &mut S) {
        for (k, v) in self.metrics() {
            sink.value(k, v);
        }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.step == other.step
            && self.timestamp == other.timestamp
            && self.rank == other.rank
            && self.len() == other.len()
            && self.metrics().eq(other.metrics())
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("step", &self.step)
            .field("timestamp", &self.timestamp)
            .field("rank", &self.rank)
            .field("metrics", &self.metrics().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_it_was_logged() {
        let r = Record::new(
            3,
            1.5,
            0,
            [
                (Arc::from("f"), Value::F64(-0.0)),
                (Arc::from("i"), Value::I64(i64::MIN)),
                (Arc::from("b"), Value::Bool(true)),
                (Arc::from("s"), Value::Str("x".into())),
                (Arc::from("n"), Value::F64(f64::NAN)),
            ],
        );
        assert_eq!(r.len(), 5);
        assert_eq!(r.get("i"), Some(Value::I64(i64::MIN)));
        assert_eq!(r.get("b"), Some(Value::Bool(true)));
        assert_eq!(r.get("s"), Some(Value::Str("x".into())));
        assert!(matches!(r.get("f"), Some(Value::F64(v)) if v == 0.0 && v.is_sign_negative()));
        assert!(matches!(r.get("n"), Some(Value::F64(v)) if v.is_nan()));
        assert_eq!(r.get("missing"), None);
        let numbers: Vec<_> = r.numbers().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(numbers.len(), 4, "the string is not a number: {numbers:?}");
        assert_eq!(numbers[1], ("i".into(), i64::MIN as f64));
        assert_eq!(numbers[2], ("b".into(), 1.0));
    }

    #[test]
    fn a_replaced_value_can_change_kind_either_way() {
        let mut v = Values::default();
        v.push(Value::F64(1.0));
        v.push(Value::F64(2.0));
        assert!(v.kinds.is_empty(), "floats need no kinds");
        v.set(0, Value::Str("a".into()));
        v.set(1, Value::I64(7));
        assert_eq!(v.get(0), Value::Str("a".into()));
        assert_eq!(v.get(1), Value::I64(7));
        v.set(0, Value::F64(4.0));
        v.push(Value::Bool(false));
        assert_eq!(v.get(0), Value::F64(4.0));
        assert_eq!(v.get(2), Value::Bool(false));
        v.clear();
        assert_eq!(v.len(), 0);
        v.push(Value::F64(1.0));
        assert!(v.kinds.is_empty(), "a cleared row starts as floats again");
    }

    #[test]
    fn appended_metrics_share_one_joined_list_per_key_set() {
        let mut joiner = KeyJoiner::default();
        let extra: Vec<Metric> = vec![(Arc::from("k/mean"), Value::F64(2.0))];
        let mut a = Record::new(1, 0.0, 0, [(Arc::from("k"), Value::F64(1.0))]);
        let mut b = a.clone();
        a.extend(extra.clone(), &mut joiner);
        b.extend(extra, &mut joiner);
        assert!(Keys::ptr_eq(a.keys(), b.keys()));
        assert_eq!(a.get("k/mean"), Some(Value::F64(2.0)));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn equality_compares_contents_not_key_lists() {
        let a = Record::new(1, 0.0, 0, [(Arc::from("k"), Value::F64(1.0))]);
        let b = Record::new(1, 0.0, 0, [(Arc::from("k"), Value::F64(1.0))]);
        assert!(!Keys::ptr_eq(a.keys(), b.keys()));
        assert_eq!(a, b);
        let c = Record::new(1, 0.0, 0, [(Arc::from("k"), Value::I64(1))]);
        assert_ne!(a, c, "a float and an integer differ");
    }
}
