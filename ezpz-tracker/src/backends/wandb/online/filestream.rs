//! The `file_stream` request: history lines at line offsets, the latest summary, uploaded file
//! names, and the final `complete`/`exitcode`, batched under a size cap.

use std::collections::VecDeque;

use serde_json::{json, Map, Value};

/// Bytes of history lines per request (the server takes ~10 MiB; stay well below).
const MAX_BATCH_BYTES: usize = 4 << 20;

/// What has not reached the server yet.
#[derive(Debug, Default)]
pub struct Stream {
    /// Line index of `pending[0]` in the run's `wandb-history.jsonl`.
    offset: u64,
    pending: VecDeque<String>,
    pending_bytes: usize,
    summary: Option<String>,
    uploaded: Vec<String>,
}

/// One request's worth, remembered until the server acknowledges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The JSON body.
    pub body: Value,
    lines: usize,
    bytes: usize,
    summary: bool,
    uploaded: usize,
    /// Whether this request ends the run.
    pub complete: bool,
}

impl Stream {
    /// Starts history at line `offset` (the server's `historyLineCount` when resuming).
    pub fn set_offset(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// Queues a history line.
    pub fn push_line(&mut self, line: String) {
        self.pending_bytes += line.len();
        self.pending.push_back(line);
    }

    /// Replaces the summary to send (the server keeps the last one).
    pub fn set_summary(&mut self, summary: String) {
        self.summary = Some(summary);
    }

    /// Announces a file uploaded since the last request.
    pub fn uploaded(&mut self, name: String) {
        self.uploaded.push(name);
    }

    /// Bytes of history waiting.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.summary.is_none() && self.uploaded.is_empty()
    }

    /// The next request: as many lines as fit the size cap (at least one), the summary and
    /// the uploaded names; with `exit_code`, the final `complete` flag when everything fits.
    pub fn next_batch(&self, exit_code: Option<i32>) -> Batch {
        let mut lines = 0;
        let mut bytes = 0;
        for l in &self.pending {
            if lines > 0 && bytes + l.len() > MAX_BATCH_BYTES {
                break;
            }
            bytes += l.len();
            lines += 1;
        }
        let mut files = Map::new();
        if lines > 0 {
            let content: Vec<&String> = self.pending.iter().take(lines).collect();
            files.insert(
                "wandb-history.jsonl".into(),
                json!({"offset": self.offset, "content": content}),
            );
        }
        if let Some(s) = &self.summary {
            files.insert(
                "wandb-summary.json".into(),
                json!({"offset": 0, "content": [s]}),
            );
        }
        let mut body = Map::new();
        body.insert("files".into(), Value::Object(files));
        if !self.uploaded.is_empty() {
            body.insert("uploaded".into(), json!(self.uploaded));
        }
        let complete = exit_code.is_some() && lines == self.pending.len();
        if let (true, Some(code)) = (complete, exit_code) {
            body.insert("complete".into(), Value::Bool(true));
            body.insert("exitcode".into(), json!(code));
        }
        Batch {
            body: Value::Object(body),
            lines,
            bytes,
            summary: self.summary.is_some(),
            uploaded: self.uploaded.len(),
            complete,
        }
    }

    /// Drops what `batch` delivered.
    pub fn acknowledge(&mut self, batch: &Batch) {
        self.pending.drain(..batch.lines.min(self.pending.len()));
        self.pending_bytes = self.pending_bytes.saturating_sub(batch.bytes);
        self.offset += batch.lines as u64;
        if batch.summary {
            self.summary = None;
        }
        self.uploaded
            .drain(..batch.uploaded.min(self.uploaded.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_advance_only_on_acknowledge() {
        let mut s = Stream::default();
        s.set_offset(5);
        s.push_line("{\"a\":1}".into());
        s.push_line("{\"a\":2}".into());
        s.set_summary("{\"a\":2}".into());
        let b = s.next_batch(None);
        assert_eq!(b.body["files"]["wandb-history.jsonl"]["offset"], 5);
        assert_eq!(
            b.body["files"]["wandb-history.jsonl"]["content"][1],
            "{\"a\":2}"
        );
        assert_eq!(
            b.body["files"]["wandb-summary.json"]["content"][0],
            "{\"a\":2}"
        );
        assert!(b.body.get("complete").is_none());
        // A failed request changes nothing: the retry sends the same lines at the same offset.
        assert_eq!(s.next_batch(None), b);
        s.acknowledge(&b);
        assert!(s.is_empty());
        s.push_line("{\"a\":3}".into());
        let last = s.next_batch(Some(0));
        assert_eq!(last.body["files"]["wandb-history.jsonl"]["offset"], 7);
        assert_eq!(
            (last.body["complete"].clone(), last.body["exitcode"].clone()),
            (json!(true), json!(0))
        );
    }

    #[test]
    fn big_backlogs_are_split_and_complete_comes_last() {
        let mut s = Stream::default();
        let line = format!("{{\"x\":\"{}\"}}", "y".repeat(1 << 20));
        for _ in 0..6 {
            s.push_line(line.clone());
        }
        let b = s.next_batch(Some(0));
        assert!(!b.complete);
        assert_eq!(
            b.body["files"]["wandb-history.jsonl"]["content"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        s.acknowledge(&b);
        let b = s.next_batch(Some(0));
        assert!(b.complete);
        assert_eq!(b.body["files"]["wandb-history.jsonl"]["offset"], 3);
    }
}
