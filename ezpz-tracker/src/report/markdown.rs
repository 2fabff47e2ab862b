//! `report.md`: the run at a glance. Deterministic for the same inputs (no "generated at"
//! stamp), so `ezpz report` reproduces it byte for byte.

use std::fmt::Write;
use std::path::Path;

use super::history::{History, MetricHistory};
use super::identity::{human_duration, BackendLink, RunIdentity};
use super::series::Channel;
use super::text::{cell, code, link_target, number, stat};
use crate::backends::jsonl::METRICS_JSONL as METRICS_FILE;
use crate::{Goal, MetricDefinition};

/// What happened to one metric's plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plotted {
    /// Written to this path, relative to the run directory.
    File(String),
    /// A counter (`iter`, `epoch`, …): a straight line, not worth a picture.
    Counter,
    /// No finite value, or text only.
    NoData,
    /// Past the report's plot limit.
    OverLimit,
    /// A per-parameter norm, drawn in its group's heatmap.
    InHeatmap,
}

/// Everything the report is made of.
pub(crate) struct ReportInput<'a> {
    pub outdir: &'a Path,
    pub identity: &'a RunIdentity,
    pub history: &'a History,
    pub config: Option<&'a serde_json::Value>,
    pub plots: &'a [Plotted],
    pub max_plots: usize,
    /// `plots/overview.png` (relative) and its panels' titles, when drawn.
    pub overview: Option<(String, Vec<String>)>,
    pub heatmaps: &'a [super::heatmap::HeatmapInfo],
    /// Groups with more metrics than this get one row in the overview table.
    pub group_rows: usize,
}

/// `path` relative to the run directory, when it lies inside it: tried against the
/// directory recorded at the run (paths were recorded from its working directory) and the
/// one the report is written to, as given and canonicalized.
fn relative(input: &ReportInput<'_>, path: &str) -> Option<String> {
    let p = Path::new(path);
    let recorded = input.identity.outdir.as_deref().map(Path::new);
    let bases = recorded.into_iter().chain(std::iter::once(input.outdir));
    let rel = bases.into_iter().find_map(|base| {
        p.strip_prefix(base)
            .ok()
            .map(Path::to_path_buf)
            .or_else(|| {
                let (a, b) = (p.canonicalize().ok()?, base.canonicalize().ok()?);
                a.strip_prefix(b).ok().map(Path::to_path_buf)
            })
    })?;
    let rel = rel.to_string_lossy().to_string();
    (!rel.is_empty()).then_some(rel)
}

/// A link when the file exists inside the run directory, else the path as code.
fn path_text(input: &ReportInput<'_>, path: &str) -> String {
    match relative(input, path) {
        Some(rel) if input.outdir.join(&rel).exists() => {
            format!("[{}]({})", cell(&rel), link_target(&rel))
        }
        _ => code(path),
    }
}

fn backend_line(input: &ReportInput<'_>, b: &BackendLink) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &b.id {
        parts.push(format!("run {}", code(id)));
    }
    if let Some(url) = &b.url {
        if url.starts_with("http://") || url.starts_with("https://") {
            parts.push(format!("<{url}>"));
        } else {
            parts.push(code(url));
        }
    }
    if let Some(path) = &b.path {
        parts.push(path_text(input, path));
    }
    if let Some(cmd) = &b.command {
        parts.push(code(cmd));
    }
    if parts.is_empty() {
        parts.push("attached".into());
    }
    format!("- **{}**: {}\n", cell(&b.name), parts.join(" · "))
}

fn identity_table(out: &mut String, input: &ReportInput<'_>) {
    let id = input.identity;
    let h = input.history;
    let plain = |v: &Option<String>| v.as_deref().map(cell);
    let quoted = |v: &Option<String>| v.as_deref().map(|c| code(&cell(c)));
    let steps = match (h.first_step, h.last_step) {
        (Some(a), Some(b)) => format!("{} records, steps {a}–{b}", h.records),
        _ => "no records".to_string(),
    };
    let malformed =
        (h.malformed > 0).then(|| format!("{} malformed line(s) in the JSONL", h.malformed));
    let rows: [(&str, Option<String>); 18] = [
        ("Project", plain(&id.project)),
        ("Run name", plain(&id.run_name)),
        ("Started", plain(&id.started)),
        ("Ended", plain(&id.ended)),
        ("Duration", id.duration_s.map(human_duration)),
        ("Records", Some(steps)),
        ("Skipped lines", malformed),
        ("Command", quoted(&id.command)),
        ("Working directory", quoted(&id.cwd)),
        ("Git commit", quoted(&id.git_commit)),
        ("Host", plain(&id.host)),
        ("Machine", plain(&id.machine)),
        ("Scheduler", plain(&id.scheduler)),
        ("Job id", plain(&id.job_id)),
        ("World size", id.world_size.map(|w| w.to_string())),
        ("Device", plain(&id.device)),
        ("Output directory", quoted(&id.outdir)),
        (
            "Metrics",
            Some(path_text(
                input,
                &input.outdir.join(METRICS_FILE).to_string_lossy(),
            )),
        ),
    ];
    out.push_str("| | |\n|---|---|\n");
    let labels: Vec<(&str, Option<String>)> = id
        .labels()
        .into_iter()
        .map(|(l, v)| (l, Some(cell(&v))))
        .collect();
    // The run settings right after the project and run name.
    let (head, tail) = rows.split_at(2);
    for (label, value) in head.iter().chain(&labels).chain(tail) {
        if let Some(value) = value {
            let _ = writeln!(out, "| {label} | {value} |");
        }
    }
    out.push('\n');
}

fn backends_section(out: &mut String, input: &ReportInput<'_>) {
    out.push_str("## Backends\n\n");
    if input.identity.backends.is_empty() {
        // Rebuilt from the files alone: list what is there.
        for file in ["metrics.jsonl", "metrics.csv", "config.json"] {
            if input.outdir.join(file).is_file() {
                let _ = writeln!(out, "- [{file}]({file})");
            }
        }
    } else {
        for b in &input.identity.backends {
            out.push_str(&backend_line(input, b));
        }
    }
    out.push('\n');
}

fn config_section(out: &mut String, config: Option<&serde_json::Value>) {
    out.push_str("## Configuration\n\n");
    match config {
        Some(c) if c.as_object().is_some_and(|o| !o.is_empty()) => {
            let text = serde_json::to_string_pretty(c).unwrap_or_default();
            let fence = "`".repeat(3.max(longest_backtick_run(&text) + 1));
            let _ = writeln!(out, "{fence}json\n{text}\n{fence}\n");
        }
        _ => out.push_str(
            "_No configuration recorded (`config.json` is written by the `csv` backend)._\n\n",
        ),
    }
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// `" (%, lower is better)"`: what a definition says of a metric, for its table row.
fn meaning(definition: Option<&MetricDefinition>) -> String {
    let Some(d) = definition else {
        return String::new();
    };
    let goal = d.goal.map(|g| match g {
        Goal::Minimize => "lower is better",
        Goal::Maximize => "higher is better",
    });
    let parts: Vec<String> = d
        .unit
        .iter()
        .map(|u| cell(u))
        .chain(goal.map(String::from))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn bold(text: String) -> String {
    if text.is_empty() {
        text
    } else {
        format!("**{text}**")
    }
}

fn overview_row(m: &MetricHistory, definitions: &[MetricDefinition]) -> String {
    let definition = definitions.iter().find(|d| d.key == m.name());
    let name = format!("{}{}", code(&cell(m.name())), meaning(definition));
    let Some(main) = m.main_channel() else {
        let last = m.last_text().map(|t| code(&cell(t))).unwrap_or_default();
        return format!("| {name} | {last} | | | | | |\n");
    };
    let s = m.stats(main).copied().unwrap_or_default();
    let integer = m.is_integer() && main == Channel::Raw;
    let f = |v: f64| stat(v, integer);
    let spread = m
        .stats(Channel::Std)
        .map(|sd| number(sd.last, 3))
        .unwrap_or_default();
    let mut points = s.total().to_string();
    if s.non_finite > 0 {
        let _ = write!(points, " ({} non-finite)", s.non_finite);
    }
    let mean_note = if main == Channel::Mean {
        " (cross-rank mean)"
    } else {
        ""
    };
    // The best value, by the metric's goal, in bold.
    let (min, max) = match definition.and_then(|d| d.goal) {
        Some(Goal::Minimize) => (bold(f(s.min)), f(s.max)),
        Some(Goal::Maximize) => (f(s.min), bold(f(s.max))),
        None => (f(s.min), f(s.max)),
    };
    format!(
        "| {name}{mean_note} | {} | {min} | {max} | {} | {spread} | {points} |\n",
        f(s.last),
        number(s.mean, 6),
    )
}

const TABLE_HEAD: &str = "| metric | last | min | max | mean | ±std across ranks (last) | points |\n|---|---:|---:|---:|---:|---:|---:|\n";

/// Groups in order of first appearance, with their metrics.
fn groups(h: &History) -> Vec<(&str, Vec<&MetricHistory>)> {
    let mut out: Vec<(&str, Vec<&MetricHistory>)> = Vec::new();
    for m in h.metrics() {
        match out.iter_mut().find(|(g, _)| *g == m.group()) {
            Some((_, ms)) => ms.push(m),
            None => out.push((m.group(), vec![m])),
        }
    }
    out
}

/// One row standing for a whole group: how many metrics, and the range of their values.
fn group_row(group: &str, metrics: &[&MetricHistory]) -> String {
    let stats: Vec<_> = metrics
        .iter()
        .filter_map(|m| m.main_channel().and_then(|c| m.stats(c)))
        .collect();
    let fold = |f: &dyn Fn(&&crate::report::RunningStats) -> f64| {
        stats
            .iter()
            .map(f)
            .filter(|v| v.is_finite())
            .fold(None, |acc: Option<(f64, f64)>, v| {
                Some(acc.map_or((v, v), |(a, b)| (a.min(v), b.max(v))))
            })
    };
    let range = |r: Option<(f64, f64)>| match r {
        Some((a, b)) if a == b => number(a, 4),
        Some((a, b)) => format!("{} … {}", number(a, 4), number(b, 4)),
        None => String::new(),
    };
    let last = range(fold(&|s| s.last));
    let min = fold(&|s| s.min).map(|r| number(r.0, 6)).unwrap_or_default();
    let max = fold(&|s| s.max).map(|r| number(r.1, 6)).unwrap_or_default();
    let points: u64 = stats.iter().map(|s| s.total()).sum();
    let non_finite: u64 = stats.iter().map(|s| s.non_finite).sum();
    let mut points = points.to_string();
    if non_finite > 0 {
        let _ = write!(points, " ({non_finite} non-finite)");
    }
    format!(
        "| {} ({} metrics) | {last} | {min} | {max} | | | {points} |\n",
        code(&cell(&format!("{group}/*"))),
        metrics.len()
    )
}

fn overview_section(
    out: &mut String,
    h: &History,
    group_rows: usize,
    definitions: &[MetricDefinition],
) {
    out.push_str("## Metric overview\n\n");
    if h.metrics().is_empty() {
        out.push_str("_No metrics were logged._\n\n");
        return;
    }
    out.push_str(
        "Over every logged step: last value, smallest, largest and mean (non-finite values left \
         out); ±std is the spread across ranks at the last step, where aggregates were logged; \
         a metric defined with a goal shows its best value in bold.\n\n",
    );
    out.push_str(TABLE_HEAD);
    let groups = groups(h);
    let mut collapsed = false;
    for (group, metrics) in &groups {
        if metrics.len() > group_rows || super::keys::is_heatmap_metric(&format!("{group}/")) {
            collapsed = true;
            out.push_str(&group_row(group, metrics));
        } else {
            for m in metrics {
                out.push_str(&overview_row(m, definitions));
            }
        }
    }
    out.push('\n');
    if collapsed {
        let _ = writeln!(
            out,
            "<details><summary>Every metric ({})</summary>\n",
            h.metrics().len()
        );
        out.push_str(TABLE_HEAD);
        for m in h.metrics() {
            out.push_str(&overview_row(m, definitions));
        }
        out.push_str("\n</details>\n\n");
    }
}

fn group_sections(out: &mut String, input: &ReportInput<'_>) {
    let mut groups: Vec<&str> = Vec::new();
    for m in input.history.metrics() {
        if !groups.contains(&m.group()) {
            groups.push(m.group());
        }
    }
    for group in groups {
        let title = if group.is_empty() {
            "Top-level metrics"
        } else {
            group
        };
        let _ = writeln!(out, "## {}\n", cell(title));
        let mut counters = Vec::new();
        let mut unplotted = Vec::new();
        let mut over_limit = Vec::new();
        if let Some(map) = input
            .heatmaps
            .iter()
            .find(|m| m.prefix.trim_end_matches('/') == group)
        {
            let _ = writeln!(
                out,
                "![{} heatmap]({})\n\n{} parameters × {} logged steps; rows grouped by module, \
                 colour on a log scale{}.\n",
                cell(group),
                link_target(&map.file),
                map.rows,
                map.columns,
                if input.plots.contains(&Plotted::InHeatmap) {
                    " (plots per parameter: `ReportOptions::norm_plots`)"
                } else {
                    ""
                }
            );
        }
        for (m, plotted) in input.history.metrics().iter().zip(input.plots) {
            if m.group() != group {
                continue;
            }
            match plotted {
                Plotted::File(rel) if input.outdir.join(rel).is_file() => {
                    let _ = writeln!(out, "![{}]({})\n", cell(m.name()), link_target(rel));
                }
                Plotted::Counter => counters.push(code(m.name())),
                Plotted::OverLimit => over_limit.push(code(m.name())),
                Plotted::File(_) | Plotted::NoData => unplotted.push(code(m.name())),
                Plotted::InHeatmap => {}
            }
        }
        if !counters.is_empty() {
            let _ = writeln!(out, "Counters (not plotted): {}\n", counters.join(", "));
        }
        if !unplotted.is_empty() {
            let _ = writeln!(out, "No finite values to plot: {}\n", unplotted.join(", "));
        }
        if !over_limit.is_empty() {
            let _ = writeln!(
                out,
                "Not plotted (the report draws at most {} plots): {}\n",
                input.max_plots,
                over_limit.join(", ")
            );
        }
    }
}

/// The whole report.
pub(crate) fn render(input: &ReportInput<'_>) -> String {
    let mut out = String::new();
    let name = input
        .identity
        .run_name
        .as_deref()
        .or(input.identity.project.as_deref())
        .unwrap_or("run");
    let _ = writeln!(out, "# Run report: {}\n", cell(name));
    if let Some((file, panels)) = &input.overview {
        let _ = writeln!(
            out,
            "![overview]({})\n\n_Overview: {}._\n",
            link_target(file),
            panels.join(", ")
        );
    }
    identity_table(&mut out, input);
    backends_section(&mut out, input);
    config_section(&mut out, input.config);
    overview_section(
        &mut out,
        input.history,
        input.group_rows,
        &input.identity.definitions,
    );
    group_sections(&mut out, input);
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
