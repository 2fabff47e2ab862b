//! The memory token of the console line: the original's `format_memory_summary`.

use std::sync::Arc;

use super::keys::{leaf, split_aggregate};
use crate::value::Value;

/// The memory metrics of the original (`get_memory_metrics`), in GiB.
const MEMORY_KEYS: [&str; 4] = [
    "mem_alloc",
    "mem_peak_alloc",
    "mem_reserved",
    "mem_peak_reserved",
];

/// `mem_alloc`, `train/mem_peak_reserved`, `mem_alloc/mean`, … (not `mem_loss`).
pub(crate) fn is_memory_key(key: &str) -> bool {
    let base = split_aggregate(key).map_or(key, |(b, _)| b);
    MEMORY_KEYS.contains(&leaf(base))
}

/// The original's memory token: `<alloc>/<peak>GiB (cur/peak)`, `<alloc>GiB (cur)` or
/// `<peak>GiB (peak)`, from the raw (not aggregated) `mem_alloc`/`mem_peak_alloc` keys.
pub(crate) fn format_memory(metrics: &[(Arc<str>, Value)]) -> Option<String> {
    let find = |leaf_name: &str| {
        metrics
            .iter()
            .find(|(k, _)| leaf(k) == leaf_name && split_aggregate(k).is_none())
            .and_then(|(_, v)| v.as_f64())
    };
    match (find("mem_alloc"), find("mem_peak_alloc")) {
        (Some(a), Some(p)) => Some(format!("{a:.2}/{p:.2}GiB (cur/peak)")),
        (Some(a), None) => Some(format!("{a:.2}GiB (cur)")),
        (None, Some(p)) => Some(format!("{p:.2}GiB (peak)")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::CompactFormat;
    use crate::metrics;

    fn fmt(precision: usize, m: Vec<(std::sync::Arc<str>, crate::Value)>) -> String {
        CompactFormat::new().precision(precision).format(m)
    }

    #[test]
    fn memory_keys_become_one_token() {
        let m = metrics! {
            "loss" => 0.5, "mem_alloc" => 1.5, "mem_peak_alloc" => 2.25,
            "mem_reserved" => 3.0, "mem_alloc/mean" => 1.5, "mem_alloc/std" => 0.0,
        };
        assert_eq!(fmt(2, m), "loss=0.50 memory=1.50/2.25GiB (cur/peak)");
        assert_eq!(
            fmt(2, metrics! {"train/loss" => 0.5, "train/mem_alloc" => 1.5}),
            "loss=0.50 memory=1.50GiB (cur)"
        );
        assert_eq!(
            fmt(2, metrics! {"mem_peak_alloc" => 2.0}),
            "memory=2.00GiB (peak)"
        );
        // Not memory: only the four names are.
        assert_eq!(fmt(2, metrics! {"mem_loss" => 0.5}), "mem_loss=0.50");
    }
}
