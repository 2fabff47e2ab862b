//! Reads `metrics.jsonl` in one streaming pass into per-metric summaries of bounded size.
//!
//! Memory grows with the number of distinct keys, never with the number of lines: each
//! metric keeps exact [`RunningStats`] per channel and a [`ThinnedSeries`] for its plot.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use super::series::{Channel, RunningStats, ThinnedSeries};
use crate::{Error, Result};

/// Buckets kept per metric for plotting unless told otherwise (between this and twice as
/// many, whatever the run's length).
pub const DEFAULT_MAX_POINTS: usize = 1000;

/// What one JSONL line holds (the [`JsonlBackend`](crate::JsonlBackend) format).
#[derive(Deserialize)]
pub(crate) struct Line {
    #[serde(default)]
    pub timestamp: Option<f64>,
    #[serde(default)]
    pub step: Option<u64>,
    #[serde(default)]
    rank: Option<usize>,
    #[serde(default)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl Line {
    /// Parses one line; `None` for a blank or malformed one.
    pub(crate) fn parse(text: &str) -> Option<Line> {
        if text.trim().is_empty() {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

/// One JSON metric value, decoded.
pub(crate) enum Cell {
    /// A number (non-finite ones arrive as the strings `NaN`, `Infinity`, `-Infinity`).
    Num(f64),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// Free text.
    Text(String),
}

impl Cell {
    pub(crate) fn decode(v: &serde_json::Value) -> Option<Cell> {
        use serde_json::Value as J;
        match v {
            J::Number(n) => Some(match n.as_i64() {
                Some(i) if !n.is_f64() => Cell::Int(i),
                _ => Cell::Num(n.as_f64().unwrap_or(f64::NAN)),
            }),
            J::String(s) => Some(match s.as_str() {
                "NaN" => Cell::Num(f64::NAN),
                "Infinity" => Cell::Num(f64::INFINITY),
                "-Infinity" => Cell::Num(f64::NEG_INFINITY),
                _ => Cell::Text(s.clone()),
            }),
            J::Bool(b) => Some(Cell::Bool(*b)),
            J::Null | J::Array(_) | J::Object(_) => None,
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Cell::Num(v) => Some(*v),
            Cell::Int(i) => Some(*i as f64),
            Cell::Bool(b) => Some(f64::from(u8::from(*b))),
            Cell::Text(_) => None,
        }
    }
}

/// Everything the report knows about one metric (a base key and its aggregates).
#[derive(Debug, Clone)]
pub struct MetricHistory {
    name: String,
    stats: [Option<RunningStats>; 5],
    series: ThinnedSeries,
    integer: bool,
    last_text: Option<String>,
}

impl MetricHistory {
    fn new(name: &str, cap: usize) -> Self {
        MetricHistory {
            name: name.to_string(),
            stats: [None; 5],
            series: ThinnedSeries::new(cap),
            integer: true,
            last_text: None,
        }
    }

    /// The metric's name (`train/loss`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group it belongs to: the name before its last `/` (`train`), empty at top level.
    pub fn group(&self) -> &str {
        self.name.rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// Exact statistics of `channel`, if it was logged with a number.
    pub fn stats(&self, channel: Channel) -> Option<&RunningStats> {
        self.stats[channel.index()].as_ref()
    }

    /// The channel that best stands for the metric: the raw value, else the cross-rank mean.
    pub fn main_channel(&self) -> Option<Channel> {
        [Channel::Raw, Channel::Mean]
            .into_iter()
            .find(|c| self.stats(*c).is_some())
    }

    /// Whether cross-rank aggregates were logged for it.
    pub fn has_aggregates(&self) -> bool {
        Channel::ALL[1..].iter().any(|c| self.stats(*c).is_some())
    }

    /// The thinned series for plotting.
    pub fn series(&self) -> &ThinnedSeries {
        &self.series
    }

    /// Whether every value logged was an integer or a flag (shown without decimals).
    pub fn is_integer(&self) -> bool {
        self.integer
    }

    /// The last text value, for a metric logged as text.
    pub fn last_text(&self) -> Option<&str> {
        self.last_text.as_deref()
    }
}

/// A run's metrics as read from its JSONL file: per metric, its series and running statistics.
#[derive(Debug, Clone, Default)]
pub struct History {
    metrics: Vec<MetricHistory>,
    index: HashMap<String, usize>,
    keys: Vec<(String, bool)>,
    key_index: HashMap<String, usize>,
    /// Lines read as records.
    pub records: u64,
    /// Lines that were not a record (a line cut short by a killed process, say), skipped.
    pub malformed: u64,
    /// Time of the first record, in seconds since the Unix epoch.
    pub first_timestamp: Option<f64>,
    /// Time of the last record.
    pub last_timestamp: Option<f64>,
    /// Smallest step seen.
    pub first_step: Option<u64>,
    /// Largest step seen.
    pub last_step: Option<u64>,
    /// Largest rank seen in the file.
    pub max_rank: usize,
}

impl History {
    /// Reads `path` (a `metrics.jsonl`), keeping at most `2 × max_points` plot buckets per
    /// metric.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub fn read(path: &Path, max_points: usize) -> Result<History> {
        let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        Self::from_reader(std::io::BufReader::new(file), max_points)
            .map_err(|e| Error::io("cannot read", path, e))
    }

    /// Reads JSONL records from any reader.
    ///
    /// # Errors
    /// The reader fails.
    pub fn from_reader(mut reader: impl BufRead, max_points: usize) -> std::io::Result<History> {
        let mut h = History::default();
        let mut line = String::new();
        let mut row: Vec<[Option<f64>; 5]> = Vec::new();
        let mut touched: Vec<usize> = Vec::new();
        let mut next_step = 0u64;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let Some(rec) = Line::parse(&line) else {
                h.malformed += u64::from(!line.trim().is_empty());
                continue;
            };
            let step = rec.step.unwrap_or(next_step);
            next_step = step + 1;
            h.records += 1;
            if let Some(t) = rec.timestamp.filter(|t| t.is_finite()) {
                h.first_timestamp.get_or_insert(t);
                h.last_timestamp = Some(t);
            }
            h.first_step = Some(h.first_step.map_or(step, |s| s.min(step)));
            h.last_step = Some(h.last_step.map_or(step, |s| s.max(step)));
            h.max_rank = h.max_rank.max(rec.rank.unwrap_or(0));
            for (key, value) in &rec.metrics {
                let Some(cell) = Cell::decode(value) else {
                    continue;
                };
                h.note_key(key, matches!(cell, Cell::Text(_)));
                let (base, channel) = Channel::split(key);
                let i = h.metric_index(base, max_points);
                let m = &mut h.metrics[i];
                match cell.number() {
                    Some(v) => {
                        if channel == Channel::Raw && matches!(cell, Cell::Num(_)) {
                            m.integer = false;
                        }
                        m.stats[channel.index()]
                            .get_or_insert_with(RunningStats::default)
                            .push(step, v);
                        if row.len() <= i {
                            row.resize(i + 1, [None; 5]);
                        }
                        if row[i].iter().all(Option::is_none) {
                            touched.push(i);
                        }
                        row[i][channel.index()] = Some(v);
                    }
                    None => {
                        if let Cell::Text(t) = cell {
                            m.last_text = Some(t);
                        }
                    }
                }
            }
            for i in touched.drain(..) {
                h.metrics[i].series.push(step, &row[i]);
                row[i] = [None; 5];
            }
        }
        h.split_orphan_aggregates();
        Ok(h)
    }

    fn metric_index(&mut self, base: &str, cap: usize) -> usize {
        if let Some(i) = self.index.get(base) {
            return *i;
        }
        self.metrics.push(MetricHistory::new(base, cap));
        self.index.insert(base.to_string(), self.metrics.len() - 1);
        self.metrics.len() - 1
    }

    fn note_key(&mut self, key: &str, text: bool) {
        match self.key_index.get(key) {
            Some(i) => self.keys[*i].1 |= text,
            None => {
                self.key_index.insert(key.to_string(), self.keys.len());
                self.keys.push((key.to_string(), text));
            }
        }
    }

    /// A key like `foo/std` whose base `foo` was never logged (raw or mean) is a metric of
    /// its own, not an aggregate.
    fn split_orphan_aggregates(&mut self) {
        let mut out = Vec::with_capacity(self.metrics.len());
        for mut m in std::mem::take(&mut self.metrics) {
            if m.main_channel().is_some() || m.last_text.is_some() {
                out.push(m);
                continue;
            }
            for ch in &Channel::ALL[1..] {
                let Some(stats) = m.stats[ch.index()].take() else {
                    continue;
                };
                let mut own = MetricHistory::new(&format!("{}{}", m.name, ch.suffix()), 1);
                own.series = m.series.split_off(*ch);
                own.stats[0] = Some(stats);
                own.integer = false;
                out.push(own);
            }
        }
        self.index = out
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        self.metrics = out;
    }

    /// Every metric, in order of first appearance.
    pub fn metrics(&self) -> &[MetricHistory] {
        &self.metrics
    }

    /// The metric called `name` (a base key: `train/loss`, not `train/loss/std`).
    pub fn get(&self, name: &str) -> Option<&MetricHistory> {
        self.index.get(name).map(|i| &self.metrics[*i])
    }

    /// Every key as logged (aggregates included), in order of first appearance, with
    /// whether it ever held text.
    pub fn keys(&self) -> impl Iterator<Item = (&str, bool)> {
        self.keys.iter().map(|(k, t)| (k.as_str(), *t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> History {
        History::from_reader(text.as_bytes(), 100).unwrap()
    }

    #[test]
    fn reads_the_jsonl_backend_format_with_non_finite_strings() {
        let h = read(concat!(
            r#"{"timestamp":10.0,"step":0,"rank":0,"metrics":{"train/loss":1.5,"train/iter":0,"phase":"warmup"}}"#,
            "\n",
            r#"{"timestamp":11.0,"step":1,"rank":0,"metrics":{"train/loss":"NaN","train/iter":1}}"#,
            "\n",
            r#"{"timestamp":12.5,"step":2,"rank":0,"metrics":{"train/loss":0.5,"train/iter":2,"ok":true,"phase":"main"}}"#,
            "\n",
            r#"{"timestamp":13.0,"step":3,"rank":0,"metr"#,
        ));
        assert_eq!((h.records, h.malformed), (3, 1));
        assert_eq!(
            (h.first_timestamp, h.last_timestamp),
            (Some(10.0), Some(12.5))
        );
        assert_eq!((h.first_step, h.last_step), (Some(0), Some(2)));
        let loss = h.get("train/loss").unwrap();
        let s = loss.stats(Channel::Raw).unwrap();
        assert_eq!(
            (s.count, s.non_finite, s.min, s.max, s.mean),
            (2, 1, 0.5, 1.5, 1.0)
        );
        assert!(!loss.is_integer() && !loss.has_aggregates());
        assert_eq!(loss.group(), "train");
        assert!(h.get("train/iter").unwrap().is_integer());
        assert_eq!(h.get("phase").unwrap().last_text(), Some("main"));
        assert_eq!(h.get("ok").unwrap().stats(Channel::Raw).unwrap().last, 1.0);
        let keys: Vec<_> = h.keys().collect();
        assert_eq!(
            keys,
            [
                ("train/loss", false),
                ("train/iter", false),
                ("phase", true),
                ("ok", false)
            ]
        );
    }

    #[test]
    fn aggregates_join_their_base_and_orphans_stand_alone() {
        let h = read(concat!(
            r#"{"step":0,"metrics":{"loss":1.0,"loss/mean":2.0,"loss/std":0.5,"grad/std":3.0}}"#,
            "\n",
            r#"{"step":1,"metrics":{"loss":2.0,"loss/mean":3.0,"loss/std":0.25,"grad/std":4.0}}"#,
            "\n",
        ));
        let loss = h.get("loss").unwrap();
        assert!(loss.has_aggregates());
        assert_eq!(loss.stats(Channel::Std).unwrap().last, 0.25);
        assert_eq!(loss.stats(Channel::Mean).unwrap().mean, 2.5);
        assert!(loss.stats(Channel::Min).is_none());
        assert_eq!(loss.series().points(Channel::Std).len(), 2);
        // `grad/std` has no `grad`: it is a metric of its own.
        assert!(h.get("grad").is_none());
        let g = h.get("grad/std").unwrap();
        assert!(!g.has_aggregates());
        assert_eq!(g.stats(Channel::Raw).unwrap().max, 4.0);
        assert_eq!(g.series().points(Channel::Raw).len(), 2);
        assert_eq!(g.group(), "grad");
    }
}
