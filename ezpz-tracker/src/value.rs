//! Metric values and the conversions that let callers pass plain Rust values.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// One logged value: a number, a flag or a string.
///
/// Everything a caller logs is converted to this on the calling thread, so no backend ever
/// holds a caller's data (or a device tensor).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A floating-point number (may be NaN or infinite).
    F64(f64),
    /// An integer.
    I64(i64),
    /// A flag.
    Bool(bool),
    /// Free text.
    Str(Arc<str>),
}

impl Value {
    /// The value as a number, if it is one (`bool` counts as 0/1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            Value::I64(v) => Some(*v as f64),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Str(_) => None,
        }
    }

    /// Whether the value is numeric (see [`Value::as_f64`]).
    pub fn is_numeric(&self) -> bool {
        !matches!(self, Value::Str(_))
    }

    /// The value as JSON; non-finite floats become the strings `"NaN"`, `"Infinity"`,
    /// `"-Infinity"` (JSON has no literal for them).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::F64(v) if v.is_finite() => serde_json::Value::from(*v),
            Value::F64(v) => serde_json::Value::from(non_finite_name(*v)),
            Value::I64(v) => serde_json::Value::from(*v),
            Value::Bool(b) => serde_json::Value::from(*b),
            Value::Str(s) => serde_json::Value::from(&**s),
        }
    }

    /// Appends the value as JSON text (non-finite floats as in [`Value::to_json`]).
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::F64(v) if v.is_finite() => write_f64(*v, out),
            Value::F64(v) => {
                out.push('"');
                out.push_str(non_finite_name(*v));
                out.push('"');
            }
            Value::Str(s) => out.push_str(&serde_json::Value::from(&**s).to_string()),
            other => other.write_text(out),
        }
    }

    /// Appends the value's text form to `out` (shortest round-trip float text, `NaN`, `inf`,
    /// `-inf`).
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::F64(v) => write_f64(*v, out),
            Value::I64(v) => {
                use std::fmt::Write;
                let _ = write!(out, "{v}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Str(s) => out.push_str(s),
        }
    }
}

/// The JSON-compatible spelling of a non-finite float (`NaN`, `Infinity`, `-Infinity`).
pub fn non_finite_name(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Shortest text that parses back to exactly `v`; `nan`, `inf`, `-inf` for non-finite values
/// (as Python writes them).
pub fn write_f64(v: f64, out: &mut String) {
    if v.is_nan() {
        // As Python's `str(float("nan"))`: what the original's CSV holds.
        out.push_str("nan");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
    } else {
        // ryu: shortest round-trip text; integral floats keep ".0" like Python's str().
        let mut buf = ryu::Buffer::new();
        out.push_str(buf.format_finite(v));
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_text(&mut s);
        f.write_str(&s)
    }
}

macro_rules! from_float {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::F64(f64::from(v)) }
        }
    )*};
}
from_float!(f32, f64);

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::I64(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

macro_rules! from_wide_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            /// Integers beyond `i64` become floats (nearest value).
            fn from(v: $t) -> Self {
                i64::try_from(v).map(Value::I64).unwrap_or(Value::F64(v as f64))
            }
        }
    )*};
}
from_wide_int!(u64, usize, isize, u128, i128);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(Arc::from(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(Arc::from(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Str(Arc::from(v.as_str()))
    }
}
impl From<Arc<str>> for Value {
    fn from(v: Arc<str>) -> Self {
        Value::Str(v)
    }
}

/// One metric name and its value, as stored in a [`Record`](crate::Record).
pub type Metric = (Arc<str>, Value);

/// Anything that can be logged as a set of metrics: arrays, vectors and slices of
/// `(key, value)` pairs, `HashMap`s and `BTreeMap`s, and the [`metrics!`](crate::metrics) macro.
///
/// Implementations hand each pair to a [`MetricSink`], so the tracker takes the values without
/// collecting the pairs first: a row with the same keys as a recent one shares its key list
/// (the common case: the same keys every step).
///
/// ```
/// use ezpz_tracker::IntoMetrics;
/// let m = [("loss", 0.42), ("lr", 1e-4)].into_metrics();
/// assert_eq!(m.len(), 2);
/// ```
pub trait IntoMetrics {
    /// Hands every `(key, value)` pair to `sink`, in the caller's order.
    fn for_each_metric<S: MetricSink + ?Sized>(self, sink: &mut S);

    /// Collects the pairs (allocating each key).
    fn into_metrics(self) -> Vec<Metric>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.for_each_metric(&mut |k: &str, v: Value| out.push((Arc::from(k), v)));
        out
    }
}

/// Receives the pairs of an [`IntoMetrics`]. Floats, the common case, have their own call so
/// that they travel in a register rather than as a [`Value`] in memory. Any
/// `FnMut(&str, Value)` is a sink.
pub trait MetricSink {
    /// One pair.
    fn value(&mut self, key: &str, value: Value);
    /// One float pair (the same as `value(key, Value::F64(value))`).
    fn number(&mut self, key: &str, value: f64) {
        self.value(key, Value::F64(value));
    }
}

impl<F: FnMut(&str, Value)> MetricSink for F {
    fn value(&mut self, key: &str, value: Value) {
        self(key, value)
    }
}

/// Hands one pair to `sink`, floats through [`MetricSink::number`].
#[inline(always)]
pub fn send_metric<S: MetricSink + ?Sized>(sink: &mut S, key: &str, value: impl Into<Value>) {
    match value.into() {
        Value::F64(v) => sink.number(key, v),
        other => sink.value(key, other),
    }
}

impl<K: AsRef<str>, V: Into<Value>, const N: usize> IntoMetrics for [(K, V); N] {
    fn for_each_metric<S: MetricSink + ?Sized>(self, sink: &mut S) {
        for (k, v) in self {
            send_metric(sink, k.as_ref(), v);
        }
    }
}
impl<K: AsRef<str>, V: Into<Value>> IntoMetrics for Vec<(K, V)> {
    fn for_each_metric<S: MetricSink + ?Sized>(self, sink: &mut S) {
        for (k, v) in self {
            send_metric(sink, k.as_ref(), v);
        }
    }
}
impl<K: AsRef<str>, V: Into<Value> + Clone> IntoMetrics for &[(K, V)] {
    fn for_each_metric<S: MetricSink + ?Sized>(self, sink: &mut S) {
        for (k, v) in self {
            send_metric(sink, k.as_ref(), v.clone());
        }
    }
}
impl<K: AsRef<str>, V: Into<Value>, H> IntoMetrics for HashMap<K, V, H> {
    fn for_each_metric<S: MetricSink + ?Sized>(self, sink: &mut S) {
        for (k, v) in self {
            send_metric(sink, k.as_ref(), v);
        }
    }
}
impl<K: AsRef<str>, V: Into<Value>> IntoMetrics for BTreeMap<K, V> {
    fn for_each_metric<S: MetricSink + ?Sized>(self, sink: &mut S) {
        for (k, v) in self {
            send_metric(sink, k.as_ref(), v);
        }
    }
}

/// Builds a metric list from `key => value` pairs of mixed types.
///
/// ```
/// let m = ezpz_tracker::metrics! { "loss" => 0.5, "epoch" => 3, "phase" => "train" };
/// assert_eq!(m.len(), 3);
/// ```
#[macro_export]
macro_rules! metrics {
    ($($k:expr => $v:expr),* $(,)?) => {
        ::std::vec![$((::std::sync::Arc::<str>::from(AsRef::<str>::as_ref(&$k)), $crate::Value::from($v))),*]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Value) -> String {
        v.to_string()
    }

    #[test]
    fn floats_print_shortest_round_trip_text() {
        assert_eq!(text(0.5.into()), "0.5");
        assert_eq!(text(1e-4.into()), "0.0001");
        assert_eq!(text(1.0.into()), "1.0");
        assert_eq!(text((1.0 / 3.0).into()), "0.3333333333333333");
        let third: f64 = text((1.0f64 / 7.0).into()).parse().unwrap();
        assert_eq!(third, 1.0 / 7.0);
    }

    #[test]
    fn non_finite_values_have_text_and_json_forms() {
        assert_eq!(text(f64::NAN.into()), "nan");
        assert_eq!(text(f64::INFINITY.into()), "inf");
        assert_eq!(text(f64::NEG_INFINITY.into()), "-inf");
        assert_eq!(Value::F64(f64::NAN).to_json(), serde_json::json!("NaN"));
        assert_eq!(
            Value::F64(f64::NEG_INFINITY).to_json(),
            serde_json::json!("-Infinity")
        );
    }

    #[test]
    fn conversions_keep_types() {
        assert_eq!(Value::from(3u32), Value::I64(3));
        assert_eq!(Value::from(u64::MAX), Value::F64(u64::MAX as f64));
        assert_eq!(Value::from(true).as_f64(), Some(1.0));
        assert_eq!(Value::from("x").as_f64(), None);
        let m = crate::metrics! {"a" => 1.5f32, "b" => "s"};
        assert_eq!(m[0].1, Value::F64(1.5));
        assert_eq!(m[1].1, Value::from("s"));
    }
}
