//! How metric keys are read: the last path component, and an aggregate suffix.

/// Aggregate suffixes recognised on the console (`/avg` is the original's extra spelling).
const AGGREGATE_SUFFIXES: [&str; 5] = ["/mean", "/min", "/max", "/std", "/avg"];

/// `train/loss` → `loss`.
pub(crate) fn leaf(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// `train/loss/std` → (`train/loss`, `/std`).
pub(crate) fn split_aggregate(key: &str) -> Option<(&str, &'static str)> {
    AGGREGATE_SUFFIXES.iter().find_map(|s| {
        key.strip_suffix(s)
            .filter(|base| !base.is_empty())
            .map(|base| (base, *s))
    })
}

/// The metric prefixes drawn as heatmaps.
pub const HEATMAP_PREFIXES: [&str; 2] = ["params/norm/", "grads/norm/"];

/// Whether `name` is drawn in a heatmap rather than as a plot of its own.
pub(crate) fn is_heatmap_metric(name: &str) -> bool {
    HEATMAP_PREFIXES.iter().any(|p| name.starts_with(p))
}
