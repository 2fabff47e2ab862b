//! Which series the overview shows (`plots/overview.png`, `ezpz show`, `ezpz compare`):
//! the run's key series — loss, accuracy, learning rate, throughput, global gradient and
//! parameter norms, and the metrics the user names — in one panel per name with the split
//! removed (`train/loss` and `valid/loss` share `loss`). Choosing draws nothing: `ezpz show`
//! uses it without the `report` feature.

use super::compact::is_counter;
use super::history::{History, MetricHistory};

/// Panels drawn at most.
pub const MAX_PANELS: usize = 12;

/// Split prefixes: a metric `valid/loss` is drawn in the `loss` panel beside `train/loss`.
const SPLITS: &[&str] = &[
    "train",
    "training",
    "valid",
    "val",
    "validation",
    "eval",
    "test",
];

/// Series in one panel at most (one colour each).
pub(crate) const MAX_SERIES: usize = 5;

/// The kinds of key series, in panel order, and how to recognise one from a metric name.
fn kind(name: &str) -> Option<usize> {
    let leaf = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let lower = name.to_ascii_lowercase();
    let kinds: [&dyn Fn() -> bool; 6] = [
        &|| leaf.contains("loss"),
        &|| leaf.contains("acc") || leaf == "top1" || leaf == "top5",
        &|| leaf == "lr" || leaf.contains("learning_rate") || leaf == "learning-rate",
        &|| {
            [
                "per_sec",
                "per_s",
                "throughput",
                "tokens_per",
                "samples_per",
            ]
            .iter()
            .any(|t| leaf.contains(t))
                || leaf == "ips"
                || lower.ends_with("/s")
        },
        &|| lower.starts_with("grads/global_norm") || lower.ends_with("grad_norm"),
        &|| lower.starts_with("params/global_norm") || lower.ends_with("param_norm"),
    ];
    kinds.iter().position(|k| k())
}

/// `valid/epoch/loss` → (`loss`, 3): the panel key, and the series' place in the panel
/// (training before validation, per-step before per-epoch). Per-epoch values share the
/// panel of the per-step ones, on the same step axis.
pub(crate) fn panel_key(name: &str) -> (String, usize) {
    let (rest, split) = match name.split_once('/') {
        Some((first, rest)) if SPLITS.contains(&first.to_ascii_lowercase().as_str()) => {
            (rest, usize::from(!matches!(first, "train" | "training")))
        }
        _ => (name, 0),
    };
    match rest.strip_prefix("epoch/") {
        Some(leaf) if !leaf.is_empty() => (leaf.to_string(), split * 2 + 1),
        _ => (rest.to_string(), split * 2),
    }
}

/// One panel: a title and the series drawn in it, each with its legend label.
#[derive(Debug, Clone)]
pub(crate) struct Panel<'a> {
    pub title: String,
    pub series: Vec<(String, &'a MetricHistory)>,
}

/// The overview's panels: the key series found in `history` (in kind order), then the
/// metrics named in `extra` (exact names, or a group prefix ending in `/`).
pub(crate) fn panels<'a>(history: &'a History, extra: &[String]) -> Vec<Panel<'a>> {
    let plottable = |m: &&MetricHistory| m.main_channel().is_some() && !is_counter(m.name());
    let mut chosen: Vec<(usize, &MetricHistory)> = history
        .metrics()
        .iter()
        .filter(plottable)
        // Per-parameter norms belong to the heatmaps, not here.
        .filter(|m| !m.name().contains("/norm/"))
        .filter_map(|m| kind(m.name()).map(|k| (k, m)))
        .collect();
    for (i, want) in extra.iter().enumerate() {
        for m in history.metrics().iter().filter(plottable) {
            let hit =
                m.name() == want || (want.ends_with('/') && m.name().starts_with(want.as_str()));
            if hit && !chosen.iter().any(|(_, c)| c.name() == m.name()) {
                chosen.push((100 + i, m));
            }
        }
    }
    chosen.sort_by_key(|(k, _)| *k);
    let mut out: Vec<Panel<'a>> = Vec::new();
    for (_, m) in chosen {
        let (key, _) = panel_key(m.name());
        let entry = (m.name().to_string(), m);
        match out.iter().position(|p| p.title == key) {
            Some(i) if out[i].series.len() < MAX_SERIES => out[i].series.push(entry),
            Some(_) => {}
            None if out.len() < MAX_PANELS => out.push(Panel {
                title: key,
                series: vec![entry],
            }),
            None => {}
        }
    }
    for p in &mut out {
        p.series.sort_by_key(|(name, _)| panel_key(name).1);
    }
    out
}
