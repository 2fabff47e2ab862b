//! The compact console line: `iter=180   loss=0.078000(±0.026) acc=0.984000(±9.9e-3) lr=0.000059`.
//!
//! The original's `format_compact_summary` (plus History's memory token): cross-rank
//! `key/std` is inlined as `(±…)` with two significant figures, the other aggregates
//! (`/mean`, `/min`, `/max`, `/avg`) are left to the trackers, counters are padded so the
//! next column lines up from one line to the next, and counters and known constants never
//! get a `±`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use super::keys::{leaf, split_aggregate};
use super::memory::{format_memory, is_memory_key};
use crate::value::{IntoMetrics, Value};

/// Counter names (the last path component): no `±`, padded for alignment.
const COUNTERS: [&str; 6] = ["iter", "step", "epoch", "batch", "idx", "bidx"];

/// Hyperparameters replicated on every rank: their spread is always zero, so no `±`.
const CONSTANTS: [&str; 16] = [
    "lr",
    "learning_rate",
    "momentum",
    "beta1",
    "beta2",
    "weight_decay",
    "wd",
    "eps",
    "epsilon",
    "clip_grad",
    "grad_clip",
    "clip_norm",
    "max_grad_norm",
    "warmup_steps",
    "warmup_iters",
    "warmup",
];

/// Minimum token widths (including `key=`) of counters: `iter=8` is padded to the width of
/// `iter=12000` so the following field starts in the same column on every line.
const DEFAULT_MIN_WIDTHS: [(&str, usize); 6] = [
    ("iter", 10),
    ("step", 10),
    ("epoch", 8),
    ("batch", 10),
    ("idx", 10),
    ("bidx", 10),
];

/// Formats metrics as one compact console line, as the original prints them
/// (`iter=180   loss=0.078000(±0.026) lr=0.000059`): cross-rank `key/std` inlined as `(±…)`.
///
/// ```
/// use ezpz_tracker::report::CompactFormat;
/// let line = CompactFormat::new().precision(3).format(ezpz_tracker::metrics! {
///     "train/iter" => 180, "train/loss" => 0.078, "train/loss/std" => 0.0261,
///     "train/loss/mean" => 0.08, "train/acc" => 0.984, "train/acc/std" => 0.0099,
/// });
/// assert_eq!(line, "iter=180   loss=0.078(±0.026) acc=0.984(±9.9e-3)");
/// ```
#[derive(Debug, Clone)]
pub struct CompactFormat {
    precision: usize,
    min_widths: HashMap<String, usize>,
    constant_keys: Vec<String>,
    skip: Vec<String>,
    strip_common_prefix: bool,
}

impl Default for CompactFormat {
    fn default() -> Self {
        CompactFormat {
            precision: 6,
            min_widths: DEFAULT_MIN_WIDTHS
                .iter()
                .map(|(k, w)| (k.to_string(), *w))
                .collect(),
            constant_keys: Vec::new(),
            skip: Vec::new(),
            strip_common_prefix: true,
        }
    }
}

impl CompactFormat {
    /// The original's defaults: 6 decimals, counters padded, a shared `train/` prefix
    /// stripped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decimals for float values (default 6). The `±` part always has two significant
    /// figures.
    pub fn precision(mut self, decimals: usize) -> Self {
        self.precision = decimals;
        self
    }

    /// Pads the token of counter `leaf` (`iter`, `epoch`, …; matched on the last path
    /// component) to at least `width` characters including `leaf=`.
    pub fn min_width(mut self, leaf: impl Into<String>, width: usize) -> Self {
        self.min_widths.insert(leaf.into(), width);
        self
    }

    /// Treats `leaf` as a constant hyperparameter: never a `±`.
    pub fn constant_key(mut self, leaf: impl Into<String>) -> Self {
        self.constant_keys.push(leaf.into());
        self
    }

    /// Leaves the metric `key` (full name) off the line.
    pub fn skip_key(mut self, key: impl Into<String>) -> Self {
        self.skip.push(key.into());
        self
    }

    /// Whether a first path component shared by every key (`train/`) is dropped from the
    /// line (default true).
    pub fn strip_common_prefix(mut self, strip: bool) -> Self {
        self.strip_common_prefix = strip;
        self
    }

    fn is_constant(&self, base: &str) -> bool {
        let leaf = leaf(base);
        CONSTANTS.contains(&leaf) || self.constant_keys.iter().any(|k| k == leaf)
    }

    fn pad(&self, base: &str, token: &mut String) {
        if let Some(&width) = self.min_widths.get(leaf(base)) {
            let len = token.chars().count();
            if len < width {
                token.extend(std::iter::repeat_n(' ', width - len));
            }
        }
    }

    /// Formats one line (no trailing whitespace).
    pub fn format(&self, metrics: impl IntoMetrics) -> String {
        let metrics: Vec<(Arc<str>, Value)> = metrics
            .into_metrics()
            .into_iter()
            .filter(|(k, _)| !self.skip.iter().any(|s| s == &**k))
            .collect();
        let mut stds: HashMap<&str, f64> = HashMap::new();
        let mut bases: Vec<(&str, &Value)> = Vec::new();
        let mut aggregates: Vec<(&str, &str, &Value)> = Vec::new();
        for (key, value) in &metrics {
            match split_aggregate(key) {
                Some((base, suffix)) => {
                    if suffix == "/std" {
                        stds.insert(base, value.as_f64().unwrap_or(f64::NAN));
                    }
                    aggregates.push((key, base, value));
                }
                None => bases.push((key, value)),
            }
        }
        let prefix = if self.strip_common_prefix {
            common_prefix(
                bases
                    .iter()
                    .map(|(k, _)| *k)
                    .chain(aggregates.iter().map(|(_, base, _)| *base)),
            )
        } else {
            ""
        };
        let mut tokens: Vec<String> = Vec::new();
        for (key, value) in &bases {
            if is_memory_key(key) {
                continue;
            }
            let mut token = self.pair(&key[prefix.len()..], value);
            let counter = is_counter(key);
            let std = stds.get(key).copied();
            match std {
                Some(std) if !counter && !self.is_constant(key) => {
                    if let Some(s) = format_std(std) {
                        let _ = write!(token, "(±{s})");
                    }
                }
                _ => self.pad(key, &mut token),
            }
            tokens.push(token);
        }
        // Aggregates whose base is absent still show, so nothing is silently lost.
        for (key, base, value) in &aggregates {
            if is_memory_key(key) || bases.iter().any(|(b, _)| b == base) {
                continue;
            }
            tokens.push(self.pair(&key[prefix.len()..], value));
        }
        if let Some(memory) = format_memory(&metrics) {
            tokens.push(format!("memory={memory}"));
        }
        let mut line = tokens.join(" ");
        line.truncate(line.trim_end().len());
        line
    }

    fn pair(&self, key: &str, value: &Value) -> String {
        let mut out = String::with_capacity(key.len() + 12);
        out.push_str(key);
        out.push('=');
        write_value(value, self.precision, &mut out);
        out
    }
}

/// Formats metrics as one compact console line with the default [`CompactFormat`].
///
/// ```
/// let line = ezpz_tracker::report::format_compact(ezpz_tracker::metrics! {
///     "iter" => 8, "loss" => 0.5, "loss/std" => 0.000279, "lr" => 0.000059, "lr/std" => 0.0,
/// });
/// assert_eq!(line, "iter=8     loss=0.500000(±2.8e-4) lr=0.000059");
/// ```
pub fn format_compact(metrics: impl IntoMetrics) -> String {
    CompactFormat::default().format(metrics)
}

/// The `±` text of a cross-rank standard deviation: two significant figures, fixed-point
/// from 0.01 up (`0.16`, `0.012`, `1.3`, `13`), scientific below with the exponent's
/// leading zero dropped (`2.8e-4`); `None` for zero (no parenthetical at all).
pub fn format_std(std: f64) -> Option<String> {
    if std == 0.0 {
        return None;
    }
    if !std.is_finite() {
        return Some(non_finite(std).to_string());
    }
    if std.abs() >= 0.01 {
        let magnitude = std.abs().log10().floor() as i32;
        let decimals = (1 - magnitude).max(0) as usize;
        let fixed = format!("{std:.decimals$}");
        if fixed.parse::<f64>().is_ok_and(|v| v != 0.0) {
            return Some(fixed);
        }
    }
    // Rust's `{:e}` already omits exponent zeros (`2.8e-4`), which is the wanted form.
    let sci = format!("{std:.1e}");
    Some(sci)
}

fn write_value(value: &Value, precision: usize, out: &mut String) {
    match value {
        Value::F64(v) if v.is_finite() => {
            let _ = write!(out, "{v:.precision$}");
        }
        Value::F64(v) => out.push_str(non_finite(*v)),
        Value::I64(v) => {
            let _ = write!(out, "{v}");
        }
        // Python's spelling, as in the original's lines.
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Str(s) => out.push_str(s),
    }
}

/// Python's text for non-finite floats (`nan`, `inf`, `-inf`).
fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "nan"
    } else if v > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// Whether `key`'s last path component is a counter (`iter`, `train/epoch`, …).
pub(crate) fn is_counter(key: &str) -> bool {
    COUNTERS.contains(&leaf(key))
}

/// The first path component shared by every key, with its slash (`train/`), if any.
fn common_prefix<'a>(mut keys: impl Iterator<Item = &'a str>) -> &'a str {
    let Some(first) = keys.next() else {
        return "";
    };
    let Some(slash) = first.find('/') else {
        return "";
    };
    let prefix = &first[..=slash];
    // Every key must keep a name after the prefix.
    let shared = |k: &str| k.starts_with(prefix) && k.len() > prefix.len();
    if shared(first) && keys.all(shared) {
        prefix
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics;

    fn fmt(precision: usize, m: Vec<(Arc<str>, Value)>) -> String {
        CompactFormat::new().precision(precision).format(m)
    }

    #[test]
    fn the_issue_example_line() {
        let line = CompactFormat::new().precision(3).format(metrics! {
            "train/iter" => 180, "train/loss" => 0.078, "train/loss/mean" => 0.08,
            "train/loss/min" => 0.05, "train/loss/max" => 0.12, "train/loss/std" => 0.0261,
            "train/acc" => 0.984, "train/acc/std" => 0.0099, "train/acc/mean" => 0.98,
        });
        assert_eq!(line, "iter=180   loss=0.078(±0.026) acc=0.984(±9.9e-3)");
        let lr = format_compact(metrics! {"lr" => 0.000059, "lr/std" => 0.0});
        assert_eq!(lr, "lr=0.000059");
    }

    #[test]
    fn std_is_inlined_and_other_aggregates_dropped() {
        assert_eq!(
            fmt(2, metrics! {"loss" => 0.5, "loss/std" => 0.02}),
            "loss=0.50(±0.020)"
        );
        let all = metrics! {
            "loss" => 0.5, "loss/mean" => 0.4, "loss/min" => 0.1, "loss/max" => 0.9,
            "loss/std" => 0.02, "loss/avg" => 0.4,
        };
        assert_eq!(fmt(2, all), "loss=0.50(±0.020)");
        assert_eq!(fmt(2, metrics! {"loss" => 0.5}), "loss=0.50");
    }

    #[test]
    fn std_has_two_significant_figures_fixed_from_one_hundredth() {
        assert_eq!(format_std(0.157124).as_deref(), Some("0.16"));
        assert_eq!(format_std(0.012).as_deref(), Some("0.012"));
        assert_eq!(format_std(1.297581).as_deref(), Some("1.3"));
        assert_eq!(format_std(12.97).as_deref(), Some("13"));
        assert_eq!(
            fmt(6, metrics! {"loss" => 0.289993, "loss/std" => 0.157124}),
            "loss=0.289993(±0.16)"
        );
        assert_eq!(
            fmt(
                6,
                metrics! {"tflops" => 16.778491, "tflops/std" => 1.297581}
            ),
            "tflops=16.778491(±1.3)"
        );
    }

    #[test]
    fn small_std_is_scientific_without_exponent_zero() {
        assert_eq!(format_std(0.000302).as_deref(), Some("3.0e-4"));
        assert_eq!(format_std(0.003686).as_deref(), Some("3.7e-3"));
        let line = fmt(6, metrics! {"dtf" => 0.008877, "dtf/std" => 0.000279});
        assert_eq!(line, "dtf=0.008877(±2.8e-4)");
        assert!(!line.contains("e-04"));
    }

    #[test]
    fn zero_std_has_no_parenthetical() {
        assert_eq!(format_std(0.0), None);
        assert_eq!(
            fmt(6, metrics! {"loss" => 0.5, "loss/std" => 0.0}),
            "loss=0.500000"
        );
    }

    #[test]
    fn counters_and_constants_never_get_a_std() {
        let line = fmt(
            2,
            metrics! {"iter" => 100, "iter/std" => 5.0, "loss" => 0.5, "loss/std" => 0.02},
        );
        assert_eq!(line, "iter=100   loss=0.50(±0.020)");
        let line = fmt(
            6,
            metrics! {"lr" => 0.000059, "lr/std" => 1e-5, "momentum" => 0.9, "momentum/std" => 0.1},
        );
        assert_eq!(line, "lr=0.000059 momentum=0.900000");
        let line = CompactFormat::new().constant_key("my_const").format(
            metrics! {"my_const" => 42.0, "my_const/std" => 0.5, "loss" => 0.5, "loss/std" => 0.02},
        );
        assert_eq!(line, "my_const=42.000000 loss=0.500000(±0.020)");
    }

    #[test]
    fn counters_are_padded_so_the_next_column_aligns() {
        let short = fmt(6, metrics! {"iter" => 0, "loss" => 0.5});
        let long = fmt(6, metrics! {"iter" => 1234, "loss" => 0.5});
        assert_eq!(short, "iter=0     loss=0.500000");
        assert_eq!(short.find("loss="), long.find("loss="));
        let epoch = fmt(6, metrics! {"epoch" => 3, "train/step" => 7, "loss" => 0.5});
        // The width counts the whole token, prefix included (as the original does).
        assert_eq!(epoch, "epoch=3  train/step=7 loss=0.500000");
        // Overridden widths; a value wider than its width is never cut.
        let narrow = CompactFormat::new()
            .min_width("iter", 3)
            .format(metrics! {"iter" => 5, "loss" => 0.5});
        assert_eq!(narrow, "iter=5 loss=0.500000");
        let wide = CompactFormat::new()
            .min_width("iter", 12)
            .format(metrics! {"iter" => 123456, "loss" => 0.5});
        assert_eq!(wide, "iter=123456  loss=0.500000");
        // No trailing padding at the end of a line.
        assert_eq!(
            fmt(6, metrics! {"loss" => 0.5, "iter" => 1}),
            "loss=0.500000 iter=1"
        );
    }

    #[test]
    fn aggregates_without_base_are_kept() {
        assert_eq!(fmt(2, metrics! {"loss/mean" => 0.4}), "loss/mean=0.40");
        assert_eq!(
            fmt(
                2,
                metrics! {"acc" => 0.9, "loss/mean" => 0.4, "loss/std" => 0.1}
            ),
            "acc=0.90 loss/mean=0.40 loss/std=0.10"
        );
    }

    #[test]
    fn values_print_like_the_original() {
        let m = metrics! {
            "ok" => true, "n" => 7, "phase" => "train", "bad" => f64::NAN,
            "big" => f64::INFINITY, "small" => f64::NEG_INFINITY,
        };
        assert_eq!(
            fmt(3, m),
            "ok=True n=7 phase=train bad=nan big=inf small=-inf"
        );
        let line = fmt(2, metrics! {"loss" => 0.5, "loss/std" => f64::NAN});
        assert_eq!(line, "loss=0.50(±nan)");
    }

    #[test]
    fn a_shared_prefix_is_stripped_and_skip_keys_dropped() {
        let m = metrics! {"train/iter" => 3, "train/loss" => 0.5, "train/loss/std" => 0.25};
        assert_eq!(fmt(2, m.clone()), "iter=3     loss=0.50(±0.25)");
        let kept = CompactFormat::new()
            .precision(2)
            .strip_common_prefix(false)
            .format(m);
        assert_eq!(kept, "train/iter=3 train/loss=0.50(±0.25)");
        let mixed = fmt(2, metrics! {"train/loss" => 0.5, "eval/loss" => 0.75});
        assert_eq!(mixed, "train/loss=0.50 eval/loss=0.75");
        let skipped = CompactFormat::new()
            .precision(2)
            .skip_key("train/loss")
            .format(metrics! {"train/loss" => 0.5, "train/acc" => 0.75});
        assert_eq!(skipped, "acc=0.75");
    }
}
