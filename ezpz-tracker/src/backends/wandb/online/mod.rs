//! Online mode: the run streamed to a W&B server over HTTP, from its own thread
//! (`thread.rs`: the backend's worker only hands lines over, after writing them to the log).
//!
//! `UpsertBucket` creates the run (and carries config updates), `CreateRunFiles` + `PUT`
//! upload media and artifacts, and `file_stream` carries history lines at line offsets, the
//! summary, and finally `complete`/`exitcode`, at most one request per second. Failures are
//! retried with backoff (connection errors, 408, 429, 5xx; `Retry-After` honoured) without
//! sleeping while the run goes on; the unsent lines wait in memory. A server that stays away
//! too long, or refuses the run, ends streaming: the local `.wandb` log already holds every
//! row, and `wandb sync` uploads it later.

mod filestream;
mod graphql;
mod thread;

pub use self::thread::OnlineHandle;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::retry::{classify, parse_retry_after, Backoff, Class};

use self::filestream::Stream;
use self::graphql::Bucket;
use super::run::RunIdent;

/// Minimum time between two `file_stream` requests.
pub const STREAM_INTERVAL: Duration = Duration::from_secs(1);
/// Cap on one request while the run goes on.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Unsent history kept in memory before streaming gives up (the log keeps everything).
const MAX_PENDING_BYTES: usize = 64 << 20;

/// Where and how to reach the server.
#[derive(Clone)]
pub struct Endpoint {
    /// Base URL (`WANDB_BASE_URL`), without a trailing `/`.
    pub base_url: String,
    /// The API key (never printed).
    pub api_key: String,
    /// How long the server may keep failing before streaming gives up.
    pub outage_limit: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("api_key", &"<hidden>")
            .field("outage_limit", &self.outage_limit)
            .finish()
    }
}

/// Why a request did not succeed.
#[derive(Debug)]
enum Failure {
    /// Worth another try (after `after`, when the server said so).
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Trying again will not help.
    Fatal(String),
}

/// The online side of a run.
#[derive(Debug)]
pub struct OnlineRun {
    endpoint: Endpoint,
    ident: RunIdent,
    files_dir: PathBuf,
    http: Option<Client>,
    bucket: Option<Bucket>,
    config: String,
    config_dirty: bool,
    stream: Stream,
    uploads: Vec<String>,
    last_stream: Option<Instant>,
    backoff: Backoff,
    lost: Option<String>,
    complete: bool,
}

impl OnlineRun {
    /// A run that connects on its first [`pump`](Self::pump) (never in the constructor).
    pub fn new(endpoint: Endpoint, ident: RunIdent, files_dir: PathBuf) -> Self {
        OnlineRun {
            endpoint,
            ident,
            files_dir,
            http: None,
            bucket: None,
            config: "{}".into(),
            config_dirty: true,
            stream: Stream::default(),
            uploads: Vec::new(),
            last_stream: None,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
                .with_max_retry_after(Duration::from_secs(60)),
            lost: None,
            complete: false,
        }
    }

    /// Why streaming stopped, if it did.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Whether the server acknowledged the end of the run.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// History lines the server had before this run wrote any (a resumed run), once known.
    pub fn resumed_lines(&self) -> Option<u64> {
        self.bucket
            .as_ref()
            .map(|b| b.history_line_count)
            .filter(|n| *n > 0)
    }

    /// Where a person can see the run, once the server answered.
    pub fn url(&self) -> Option<String> {
        let b = self.bucket.as_ref()?;
        let base = &self.endpoint.base_url;
        // The public API host serves the app on the bare domain; self-hosted servers serve
        // both on one URL.
        let app = if base == super::DEFAULT_BASE_URL {
            "https://wandb.ai"
        } else {
            base.as_str()
        };
        Some(format!(
            "{app}/{}/{}/runs/{}",
            b.entity, b.project, self.ident.run_id
        ))
    }

    /// Queues a history line.
    pub fn push_line(&mut self, line: String) {
        if self.lost.is_none() {
            self.stream.push_line(line);
        }
    }

    /// Sets the summary to send next (the whole object).
    pub fn set_summary(&mut self, summary: String) {
        if self.lost.is_none() {
            self.stream.set_summary(summary);
        }
    }

    /// Sets the full configuration (W&B's `{"key": {"value": v}}` JSON string).
    pub fn set_config(&mut self, config: String) {
        if config != self.config {
            self.config = config;
            self.config_dirty = true;
        }
    }

    /// Queues files (relative to the run's `files/`) for upload.
    pub fn upload(&mut self, files: &[String]) {
        if self.lost.is_none() {
            self.uploads.extend(files.iter().cloned());
        }
    }

    /// Makes progress without waiting: connects, uploads, streams when due. Called from the
    /// worker's periodic flush; returns at once while a retry is not due yet.
    pub fn pump(&mut self) {
        let now = Instant::now();
        if self.lost.is_some() || !self.backoff.ready(now) {
            return;
        }
        let due = self
            .last_stream
            .is_none_or(|t| now.duration_since(t) >= STREAM_INTERVAL);
        let result = self.step(None, REQUEST_TIMEOUT, due);
        self.settle(result, Instant::now());
    }

    /// Delivers everything and ends the run on the server, until `deadline`.
    ///
    /// # Errors
    /// Why the run could not be completed (server lost, refused, or out of time).
    pub fn finish(&mut self, exit_code: i32, deadline: Instant) -> Result<(), String> {
        // Nothing else waits now: try at once, then at short intervals, whatever a server's
        // `Retry-After` asks for (the deadline is the cap).
        if self.lost.is_none() {
            self.backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4))
                .with_max_retry_after(Duration::from_secs(4));
        }
        loop {
            if let Some(why) = &self.lost {
                return Err(why.clone());
            }
            if self.complete {
                return Ok(());
            }
            let now = Instant::now();
            let stream_at = self.last_stream.map(|t| t + STREAM_INTERVAL);
            let wait_until = match (self.backoff.next_try(), stream_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(t) = wait_until.filter(|t| *t > now) {
                if t >= deadline {
                    return Err(self.give_up("the time allowed to finish ran out"));
                }
                std::thread::sleep(t - now);
                continue;
            }
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Err(self.give_up("the time allowed to finish ran out"));
            }
            let result = self.step(Some(exit_code), left.min(REQUEST_TIMEOUT), true);
            self.settle(result, Instant::now());
        }
    }

    fn give_up(&mut self, why: &str) -> String {
        let why = match self.backoff.failures() {
            0 => why.to_string(),
            n => format!("{why} after {n} failed attempt(s)"),
        };
        self.lose(why.clone());
        why
    }

    fn lose(&mut self, why: String) {
        self.lost = Some(why);
        // The log holds everything; free the backlog.
        self.stream = Stream::default();
        self.uploads.clear();
    }

    fn settle(&mut self, result: Result<(), Failure>, now: Instant) {
        match result {
            Ok(()) => self.backoff.succeeded(),
            Err(Failure::Fatal(why)) => self.lose(why),
            Err(Failure::Retry { why, after }) => {
                self.backoff.failed(now, after);
                let outage = self.backoff.failing_for(now);
                if outage > self.endpoint.outage_limit {
                    self.lose(format!(
                        "the server kept failing for {:.0} s (last: {why})",
                        outage.as_secs_f64()
                    ));
                } else if self.stream.pending_bytes() > MAX_PENDING_BYTES {
                    self.lose(format!(
                        "more than {} MiB of history waited for the server (last: {why})",
                        MAX_PENDING_BYTES >> 20
                    ));
                } else {
                    tracing::debug!("ezpz: W&B request failed, will retry: {why}");
                }
            }
        }
    }

    /// One round: create/update the run, upload files, stream (when `stream_due`).
    fn step(
        &mut self,
        exit_code: Option<i32>,
        timeout: Duration,
        stream_due: bool,
    ) -> Result<(), Failure> {
        if self.bucket.is_none() || self.config_dirty {
            let body = graphql::upsert_bucket(&self.ident, &self.config);
            let reply = self.graphql(&body, timeout)?;
            let bucket = graphql::parse_bucket(&reply).map_err(|e| {
                Failure::Fatal(format!(
                    "W&B refused to create run `{}`: {e}",
                    self.ident.run_id
                ))
            })?;
            if self.bucket.is_none() {
                // A resumed run (same `WANDB_RUN_ID`) continues after the server's lines.
                self.stream.set_offset(bucket.history_line_count);
            }
            self.bucket = Some(bucket);
            self.config_dirty = false;
            // Progress: the next failure starts the backoff afresh.
            self.backoff.succeeded();
        }
        if !self.uploads.is_empty() {
            self.upload_files(timeout)?;
        }
        let finishing = exit_code.is_some();
        if stream_due && (finishing || !self.stream.is_empty()) {
            let batch = self.stream.next_batch(exit_code);
            let url = {
                let b = self
                    .bucket
                    .as_ref()
                    .ok_or_else(|| Failure::Fatal("no run".into()))?;
                format!(
                    "{}/files/{}/{}/{}/file_stream",
                    self.endpoint.base_url, b.entity, b.project, self.ident.run_id
                )
            };
            self.last_stream = Some(Instant::now());
            let req = self.client()?.post(url).json(&batch.body);
            self.send(req, timeout, "file_stream")?;
            self.stream.acknowledge(&batch);
            if batch.complete {
                self.complete = true;
            }
        }
        Ok(())
    }

    fn upload_files(&mut self, timeout: Duration) -> Result<(), Failure> {
        let (entity, project) = match &self.bucket {
            Some(b) => (b.entity.clone(), b.project.clone()),
            None => return Ok(()),
        };
        let mut names = self.uploads.clone();
        names.dedup();
        let body = graphql::create_run_files(&entity, &project, &self.ident.run_id, &names);
        let reply = self.graphql(&body, timeout)?;
        let urls = graphql::parse_upload_urls(&reply)
            .map_err(|e| Failure::Fatal(format!("W&B refused the file upload: {e}")))?;
        for (name, url) in &urls.files {
            let path = self.files_dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| {
                Failure::Fatal(format!("cannot read `{}` for upload: {e}", path.display()))
            })?;
            let mut req = self.client()?.put(url).body(bytes);
            for (k, v) in &urls.headers {
                req = req.header(k, v);
            }
            self.send_plain(req, timeout, "file upload")?;
            self.backoff.succeeded();
            self.uploads.retain(|u| u != name);
            self.stream.uploaded(name.clone());
        }
        // Names the server did not return cannot be uploaded; they stay in the local run.
        self.uploads.clear();
        Ok(())
    }

    fn client(&mut self) -> Result<&Client, Failure> {
        if self.http.is_none() {
            let client = Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .redirect(crate::retry::same_origin_redirects())
                .user_agent(concat!("ezpz-tracker/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| Failure::Fatal(format!("cannot start the HTTP client: {e}")))?;
            self.http = Some(client);
        }
        self.http
            .as_ref()
            .ok_or_else(|| Failure::Fatal("no HTTP client".into()))
    }

    fn graphql(&mut self, body: &Value, timeout: Duration) -> Result<Value, Failure> {
        let url = format!("{}/graphql", self.endpoint.base_url);
        let req = self.client()?.post(url).json(body);
        let text = self.send(req, timeout, "graphql")?;
        serde_json::from_str(&text).map_err(|e| Failure::Retry {
            why: format!("the server's GraphQL answer is not JSON ({e})"),
            after: None,
        })
    }

    /// Sends an authenticated request; returns the body of a 2xx answer.
    fn send(&self, req: RequestBuilder, timeout: Duration, what: &str) -> Result<String, Failure> {
        let req = req.basic_auth("api", Some(&self.endpoint.api_key));
        self.send_plain(req, timeout, what)
    }

    fn send_plain(
        &self,
        req: RequestBuilder,
        timeout: Duration,
        what: &str,
    ) -> Result<String, Failure> {
        let resp = req.timeout(timeout).send().map_err(|e| Failure::Retry {
            why: format!("{what}: {}", error_chain(&e)),
            after: None,
        })?;
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = resp.text();
        match classify(status) {
            Class::Success => body.map_err(|e| Failure::Retry {
                why: format!("{what}: reading the answer: {}", error_chain(&e)),
                after: None,
            }),
            Class::Retry => Err(Failure::Retry {
                why: format!("{what}: HTTP {status}"),
                after,
            }),
            Class::Fatal => Err(Failure::Fatal(fatal_message(
                status,
                what,
                &self.endpoint.base_url,
                body.unwrap_or_default(),
            ))),
        }
    }
}

/// An error and its causes on one line (reqwest's own text is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

fn fatal_message(status: u16, what: &str, base: &str, body: String) -> String {
    let hint = match status {
        401 | 403 => "check WANDB_API_KEY (or run `wandb login`) and WANDB_ENTITY",
        404 => "check WANDB_BASE_URL, WANDB_ENTITY and WANDB_PROJECT",
        _ => "the server rejected the request",
    };
    let body: String = body.chars().take(200).collect();
    format!("W&B at {base} answered HTTP {status} to {what}: {hint} ({body})")
}
