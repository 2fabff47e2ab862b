//! `ezpz compare`: several runs side by side — one PNG per shared key group with the runs
//! overlaid, a table of configuration differences and one of final metrics.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::compact::is_counter;
use super::config_diff::config_diff;
use super::history::{History, MetricHistory};
use super::keys::is_heatmap_metric;
use super::runs::RunOverview;
use super::text::{cell, code, link_target, number};
use crate::backends::appender::write_atomic;
use crate::backends::jsonl::METRICS_JSONL;
use crate::{Error, Result};

/// The comparison's Markdown file inside the output folder.
pub const COMPARE_MD: &str = "compare.md";

/// What [`compare`] found and wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The runs' labels (run names, made unique), in the order given.
    pub runs: Vec<String>,
    /// One PNG per key group, runs overlaid.
    pub plots: Vec<PathBuf>,
    /// Configuration entries (dotted paths) whose values differ, with each run's value
    /// (`None`: absent).
    pub config_diff: Vec<(String, Vec<Option<String>>)>,
    /// Compared metrics with each run's last value.
    pub finals: Vec<(String, Vec<Option<f64>>)>,
    /// `compare.md`: the tables and the plots.
    pub markdown: PathBuf,
}

fn plottable(m: &MetricHistory) -> bool {
    m.main_channel().is_some() && !is_counter(m.name()) && !is_heatmap_metric(m.name())
}

/// Metric names to compare: those matching `keys` (exact names or prefixes ending in `/`)
/// in any run, else every plottable metric all runs share.
pub(crate) fn chosen(histories: &[History], keys: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for h in histories {
        for m in h.metrics().iter().filter(|m| plottable(m)) {
            let wanted = if keys.is_empty() {
                histories.iter().all(|o| o.get(m.name()).is_some())
            } else {
                keys.iter().any(|k| {
                    m.name() == k || (k.ends_with('/') && m.name().starts_with(k.as_str()))
                })
            };
            if wanted && !names.iter().any(|n| n == m.name()) {
                names.push(m.name().to_string());
            }
        }
    }
    names
}

/// Compares the runs in `dirs`, writing one PNG per key group and `compare.md` into `out`.
///
/// `keys`: the metrics to compare (exact names, or group prefixes ending in `/`); empty
/// compares every metric all runs share. `cell`: the size of one panel in pixels.
///
/// # Errors
/// A run has no readable `metrics.jsonl`, or a file cannot be written.
pub fn compare(
    dirs: &[PathBuf],
    keys: &[String],
    out: &Path,
    max_points: usize,
    cell_size: (u32, u32),
) -> Result<Comparison> {
    let mut histories = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut configs = Vec::new();
    for dir in dirs {
        histories.push(History::read(&dir.join(METRICS_JSONL), max_points)?);
        let name = RunOverview::read(dir)
            .map(|o| o.name())
            .unwrap_or_else(|| dir.display().to_string());
        let mut label = name.clone();
        let mut n = 2;
        while labels.contains(&label) {
            label = format!("{name} ({n})");
            n += 1;
        }
        labels.push(label);
        configs.push(super::read_config(dir));
    }
    let names = chosen(&histories, keys);
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create directory", out, e))?;

    let plots = draw(&names, &labels, &histories, out, cell_size)?;

    let finals: Vec<(String, Vec<Option<f64>>)> = names
        .iter()
        .map(|n| {
            let values = histories
                .iter()
                .map(|h| {
                    let m = h.get(n)?;
                    Some(m.stats(m.main_channel()?)?.last)
                })
                .collect();
            (n.clone(), values)
        })
        .collect();
    let diff = config_diff(&configs);
    let md = markdown(&labels, dirs, &plots, out, &diff, &finals);
    let markdown_path = out.join(COMPARE_MD);
    write_atomic(&markdown_path, md.as_bytes())?;
    Ok(Comparison {
        runs: labels,
        plots,
        config_diff: diff,
        finals,
        markdown: markdown_path,
    })
}

/// One PNG per key group of `names` in `out`, the runs overlaid (feature `report`; none
/// without it).
#[cfg(feature = "report")]
fn draw(
    names: &[String],
    labels: &[String],
    histories: &[History],
    out: &Path,
    cell_size: (u32, u32),
) -> Result<Vec<PathBuf>> {
    use super::overview::{self, Panel, COLOURS, MAX_PANELS};
    use crate::user_paths::file_stem;
    // Groups in order of first appearance, one panel per metric, one line per run.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for n in names {
        let group = n.rsplit_once('/').map_or("", |(g, _)| g).to_string();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, ms)) => ms.push(n),
            None => groups.push((group, vec![n.as_str()])),
        }
    }
    let mut plots = Vec::new();
    for (group, metrics) in &groups {
        let panels: Vec<Panel<'_>> = metrics
            .iter()
            .take(MAX_PANELS)
            .map(|name| Panel {
                title: name.to_string(),
                series: labels
                    .iter()
                    .zip(histories)
                    .take(COLOURS.len())
                    .filter_map(|(l, h)| Some((l.clone(), h.get(name)?)))
                    .collect(),
            })
            .collect();
        let Some(img) = overview::render(&panels, cell_size)? else {
            continue;
        };
        let stem = if group.is_empty() {
            "top-level".to_string()
        } else {
            file_stem(group)
        };
        let path = out.join(format!("{stem}.png"));
        super::plot::save(&img, &path)?;
        plots.push(path);
    }
    Ok(plots)
}

#[cfg(not(feature = "report"))]
fn draw(
    _names: &[String],
    _labels: &[String],
    _histories: &[History],
    _out: &Path,
    _cell_size: (u32, u32),
) -> Result<Vec<PathBuf>> {
    Ok(Vec::new())
}

/// The comparison as Markdown: runs, configuration differences, final values, plots.
pub(crate) fn markdown(
    labels: &[String],
    dirs: &[PathBuf],
    plots: &[PathBuf],
    out: &Path,
    diff: &[(String, Vec<Option<String>>)],
    finals: &[(String, Vec<Option<f64>>)],
) -> String {
    let mut s = String::from("# Run comparison\n\n");
    for (l, d) in labels.iter().zip(dirs) {
        let _ = writeln!(s, "- **{}**: {}", cell(l), code(&d.display().to_string()));
    }
    let head = |first: &str| {
        let mut h = format!("| {first} |");
        for l in labels {
            let _ = write!(h, " {} |", cell(l));
        }
        h.push_str("\n|---|");
        h.push_str(&"---:|".repeat(labels.len()));
        h.push('\n');
        h
    };
    s.push_str("\n## Configuration differences\n\n");
    if diff.is_empty() {
        s.push_str("_The configurations are the same._\n");
    } else {
        s.push_str(&head("entry"));
        for (k, values) in diff {
            let _ = write!(s, "| {} |", code(&cell(k)));
            for v in values {
                let _ = write!(s, " {} |", v.as_deref().map(cell).unwrap_or_default());
            }
            s.push('\n');
        }
    }
    s.push_str("\n## Final values\n\n");
    if finals.is_empty() {
        s.push_str("_No metric to compare._\n");
    } else {
        s.push_str(&head("metric"));
        for (k, values) in finals {
            let _ = write!(s, "| {} |", code(&cell(k)));
            for v in values {
                let _ = write!(s, " {} |", v.map(|v| number(v, 6)).unwrap_or_default());
            }
            s.push('\n');
        }
    }
    if !plots.is_empty() {
        s.push_str("\n## Plots\n\n");
        for p in plots {
            let rel = p
                .strip_prefix(out)
                .unwrap_or(p)
                .to_string_lossy()
                .to_string();
            let _ = writeln!(s, "![{}]({})\n", cell(&rel), link_target(&rel));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_differences_by_dotted_entry() {
        let a = serde_json::json!({"lr": 0.1, "model": {"depth": 2, "heads": 4}, "seed": 1});
        let b = serde_json::json!({"lr": 0.2, "model": {"depth": 2, "heads": 8}});
        let d = config_diff(&[Some(a), Some(b), None]);
        let keys: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["lr", "model.depth", "model.heads", "seed"]);
        assert_eq!(
            d[0].1,
            [Some("0.1".to_string()), Some("0.2".to_string()), None]
        );
    }
}
