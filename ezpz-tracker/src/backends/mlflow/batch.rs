//! `runs/log-batch` bodies within the server's limits: at most 1000 metrics, 100 params or
//! 100 tags per request, and under 1 MB.
//!
//! Metrics, params and tags travel in separate requests: the server applies params first and
//! rejects the whole request when one param changes value, which must never cost metrics.
//! Bodies are written directly as JSON text (no intermediate values) and are deterministic:
//! a retried body is byte-for-byte the one first sent, so the server's duplicate detection
//! (a metric is keyed by name, step, timestamp and value) makes a retry harmless.

use crate::value::non_finite_name;

/// Most metrics in one request.
pub(crate) const MAX_METRICS: usize = 1000;
/// Most params, or tags, in one request.
pub(crate) const MAX_PARAMS_OR_TAGS: usize = 100;
/// Bytes a body may reach before it is sealed: under 1 MB with room for the run id.
pub(crate) const MAX_BODY_BYTES: usize = 1_000_000 - 4096;

/// Which list a batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `metrics`.
    Metrics,
    /// `params`.
    Params,
    /// `tags`.
    Tags,
}

impl Kind {
    /// The JSON field, which is also the spool op.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Metrics => "metrics",
            Kind::Params => "params",
            Kind::Tags => "tags",
        }
    }

    fn max_items(self) -> usize {
        match self {
            Kind::Metrics => MAX_METRICS,
            Kind::Params | Kind::Tags => MAX_PARAMS_OR_TAGS,
        }
    }

    /// The kind whose field is `op`.
    pub fn from_op(op: &str) -> Option<Kind> {
        [Kind::Metrics, Kind::Params, Kind::Tags]
            .into_iter()
            .find(|k| k.field() == op)
    }
}

/// Appends one metric entity (`{"key":…,"value":…,"timestamp":…,"step":…}`). Non-finite
/// values are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`: a bare `NaN` token is stored
/// as 0 by the server.
pub(crate) fn write_metric(out: &mut String, key: &str, value: f64, timestamp_ms: i64, step: u64) {
    use std::fmt::Write;
    out.push_str("{\"key\":");
    write_str(out, key);
    out.push_str(",\"value\":");
    if value.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.push_str(buf.format_finite(value));
    } else {
        out.push('"');
        out.push_str(non_finite_name(value));
        out.push('"');
    }
    let _ = write!(out, ",\"timestamp\":{timestamp_ms},\"step\":{step}}}");
}

/// Appends one `{"key":…,"value":…}` entity (params and tags).
pub(crate) fn write_key_value(out: &mut String, key: &str, value: &str) {
    out.push_str("{\"key\":");
    write_str(out, key);
    out.push_str(",\"value\":");
    write_str(out, value);
    out.push('}');
}

/// Appends `s` as a JSON string.
pub(crate) fn write_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Accumulates entities of one kind and seals them into request bodies under the limits.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    kind: Kind,
    body: String,
    items: usize,
    entity: String,
}

impl BatchBuilder {
    /// An empty builder for `kind`.
    pub fn new(kind: Kind) -> Self {
        BatchBuilder {
            kind,
            body: String::new(),
            items: 0,
            entity: String::new(),
        }
    }

    /// Adds the entity that `write` appends to its argument. Returns a sealed body when the
    /// entity did not fit in the current one (the entity then starts the next body).
    pub fn push(&mut self, write: impl FnOnce(&mut String)) -> Option<String> {
        self.entity.clear();
        write(&mut self.entity);
        let fits = self.items < self.kind.max_items()
            && self.body.len() + self.entity.len() + 2 <= MAX_BODY_BYTES;
        let sealed = if fits { None } else { self.seal() };
        if self.items == 0 {
            self.body.push_str("{\"");
            self.body.push_str(self.kind.field());
            self.body.push_str("\":[");
        } else {
            self.body.push(',');
        }
        self.body.push_str(&self.entity);
        self.items += 1;
        sealed
    }

    /// The body of everything pushed since the last seal, if anything was.
    pub fn seal(&mut self) -> Option<String> {
        if self.items == 0 {
            return None;
        }
        self.items = 0;
        let mut body = std::mem::take(&mut self.body);
        body.push_str("]}");
        Some(body)
    }
}

/// Adds the run id to a spooled body (`{"metrics":[…]}` → `{"run_id":"…","metrics":[…]}`).
pub(crate) fn with_run_id(run_id: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + run_id.len() + 16);
    out.push_str("{\"run_id\":");
    write_str(&mut out, run_id);
    match body.trim_start().strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => out.push_str(rest.trim_start()),
        Some(rest) => {
            out.push(',');
            out.push_str(rest);
        }
        None => out.push('}'),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn metric_entities_are_json_with_non_finite_strings() {
        let mut s = String::new();
        write_metric(&mut s, "a\"b", 0.5, 1_700_000_000_123, 7);
        assert_eq!(
            parse(&s),
            json!({"key": "a\"b", "value": 0.5, "timestamp": 1_700_000_000_123i64, "step": 7})
        );
        for (v, name) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            s.clear();
            write_metric(&mut s, "x", v, 0, 0);
            assert_eq!(parse(&s)["value"], json!(name));
        }
        s.clear();
        write_key_value(&mut s, "k", "line\nbreak\t\u{1}");
        assert_eq!(parse(&s)["value"], json!("line\nbreak\t\u{1}"));
    }

    #[test]
    fn metric_batches_hold_at_most_1000() {
        let mut b = BatchBuilder::new(Kind::Metrics);
        let mut sealed = Vec::new();
        for i in 0..2500u64 {
            sealed.extend(b.push(|o| write_metric(o, "m", i as f64, 0, i)));
        }
        sealed.extend(b.seal());
        let counts: Vec<usize> = sealed
            .iter()
            .map(|s| parse(s)["metrics"].as_array().unwrap().len())
            .collect();
        assert_eq!(counts, vec![1000, 1000, 500]);
        let steps: Vec<u64> = sealed
            .iter()
            .flat_map(|s| {
                parse(s)["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["step"].as_u64().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(steps, (0..2500).collect::<Vec<_>>());
        assert!(b.seal().is_none());
    }

    #[test]
    fn param_batches_respect_count_and_size() {
        let mut b = BatchBuilder::new(Kind::Params);
        let big = "v".repeat(6000);
        let mut sealed = Vec::new();
        for i in 0..350 {
            sealed.extend(b.push(|o| write_key_value(o, &format!("p{i}"), &big)));
        }
        sealed.extend(b.seal());
        let total: usize = sealed
            .iter()
            .map(|s| {
                assert!(s.len() < MAX_BODY_BYTES, "{}", s.len());
                let n = parse(s)["params"].as_array().unwrap().len();
                assert!(n <= MAX_PARAMS_OR_TAGS);
                n
            })
            .sum();
        assert_eq!(total, 350);
        // 100 params of 6000 chars fit in 1 MB; what limits here is the count.
        assert_eq!(sealed.len(), 4);
        let mut t = BatchBuilder::new(Kind::Tags);
        let huge = "t".repeat(8000);
        let mut tags = Vec::new();
        for i in 0..150 {
            tags.extend(t.push(|o| write_key_value(o, &format!("t{i}"), &huge)));
        }
        tags.extend(t.seal());
        assert!(tags.iter().all(|s| s.len() < MAX_BODY_BYTES));
        assert_eq!(tags.len(), 2);
    }

    #[test]
    fn run_id_is_spliced_in() {
        assert_eq!(
            parse(&with_run_id("abc", r#"{"metrics":[]}"#)),
            json!({"run_id": "abc", "metrics": []})
        );
        assert_eq!(parse(&with_run_id("abc", "{}")), json!({"run_id": "abc"}));
        assert_eq!(
            parse(&with_run_id("abc", r#"{"status":"FINISHED","end_time":5}"#)),
            json!({"run_id": "abc", "status": "FINISHED", "end_time": 5})
        );
    }
}
