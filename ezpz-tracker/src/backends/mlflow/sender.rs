//! Delivery: takes spooled requests in order, sends each until the server acknowledges it,
//! and only then acknowledges it in the spool.
//!
//! [`Delivery::step`] does one unit of work and says what to do next; the backend's delivery
//! thread ([`run_thread`]) and `ezpz sync` drive it. Failures are classified once here (see
//! [`Failure::is_permanent`]):
//! - transient (no answer, a timeout, 408, 429, 5xx, any answer without MLflow's JSON error
//!   body such as an HTML login page or a proxy's 404): wait with capped backoff and retry;
//!   a request that fails [`SET_ASIDE_AFTER`] times in a row is set aside (it stays in the
//!   spool, is retried when the queue is idle, and by `ezpz sync`) so it cannot block the
//!   requests behind it; requests touching the same metric or tag keys wait behind it, so
//!   each key's order is kept, and the run's final status goes last;
//! - refusals of access (401, 403) and a run that disappeared: warned about once, retried
//!   slowly, everything kept spooled;
//! - MLflow's own permanent refusal (`INVALID_PARAMETER_VALUE`, …): the batch is split until
//!   the refused entries are found; every other entry is delivered, the refused ones are
//!   counted per key (`RunInfo::refused`) with one warning per key.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::artifacts::{proxy_base, upload_url, Upload};
use super::batch::{with_run_id, Kind};
use super::client::{Failure, RestClient};
use super::run::{ensure_run, Resolved, RunMeta};
use crate::backend::RunInfo;
use crate::retry::Backoff;
use crate::spool::{Entry, Spool};

/// Spool op of an artifact upload (body: [`Upload`] as JSON).
pub(crate) const OP_ARTIFACT: &str = "artifact";
/// Spool op of the final status (body: a `runs/update` body without the run id).
pub(crate) const OP_END: &str = "end";

/// Metric requests sent at once (on as many threads), each with keys no request before it
/// still waiting has: every key's points keep their order. The backend spreads each row's
/// metrics over as many lanes by key, so consecutive requests usually qualify.
pub(crate) const SENDERS: usize = 2;

/// Consecutive failures after which a request is set aside (see the module docs).
pub(crate) const SET_ASIDE_AFTER: u32 = 4;
/// Most requests set aside (or waiting behind one) in memory at once: beyond this the server
/// is down for everything, and the rest of the queue waits in the spool, in order.
const MAX_ASIDE: usize = 64;

/// Points (or params, tags) the server refused for good, per key; shared by the backend
/// (refusals found before sending) and its delivery thread.
pub(crate) type Refused = Arc<Mutex<BTreeMap<String, u64>>>;

/// Locks a mutex, recovering the data if a holder panicked (nothing here is left half-done
/// across a panic that matters more than losing the spool).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`Delivery::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Something was delivered (or settled): call again.
    Progress,
    /// Nothing is waiting.
    Idle,
    /// Only requests set aside are waiting; the next retry of them is due in this long
    /// (new data may be sent before).
    Pending(Duration),
    /// A failure: wait this long before calling again.
    Wait(Duration),
}

/// See the module docs.
pub(crate) struct Delivery {
    client: RestClient,
    meta: RunMeta,
    spool: Arc<Mutex<Spool>>,
    spool_dir: PathBuf,
    /// The entry being retried.
    current: Option<Entry>,
    /// Entries taken from the spool but not sent yet, in spool order (before the spool's).
    lookahead: VecDeque<Entry>,
    /// Consecutive failures of `current`.
    attempts: u32,
    /// Requests set aside after failing again and again, in spool order.
    aside: VecDeque<Entry>,
    /// Metric and tag keys of the requests set aside (later ones wait behind them).
    aside_keys: HashSet<String>,
    /// When to retry the first request set aside.
    aside_backoff: Backoff,
    /// Refused entries per key.
    refused: Refused,
    warned: HashSet<String>,
    /// Waiting on a failure: whether its warning was printed during this episode (then
    /// recovery is announced too; a cause already warned about stays quiet).
    blocked: Option<bool>,
    /// Whether to print the banner when the run is resolved.
    banner: bool,
    /// Entries acknowledged by the server.
    pub delivered: u64,
    /// The latest failure, for reports.
    pub last_failure: Option<String>,
}

impl Delivery {
    /// Delivers the entries of `spool` into the run `meta` describes.
    pub fn new(
        client: RestClient,
        meta: RunMeta,
        spool: Arc<Mutex<Spool>>,
        refused: Refused,
        banner: bool,
    ) -> Self {
        let spool_dir = lock(&spool).dir().to_path_buf();
        Delivery {
            client,
            meta,
            spool,
            spool_dir,
            current: None,
            lookahead: VecDeque::new(),
            attempts: 0,
            aside: VecDeque::new(),
            aside_keys: HashSet::new(),
            aside_backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(30)),
            refused,
            warned: HashSet::new(),
            blocked: None,
            banner,
            delivered: 0,
            last_failure: None,
        }
    }

    /// The run as known so far.
    pub fn meta(&self) -> &RunMeta {
        &self.meta
    }

    /// The run identity for [`Backend::run_info`](crate::Backend::run_info).
    pub fn run_info(&self) -> RunInfo {
        RunInfo {
            id: self.meta.run_id.clone(),
            url: self.meta.url(),
            path: None,
            command: None,
            refused: lock(&self.refused).clone(),
        }
    }

    /// Does one unit of work: resolve the run, or deliver the next entry.
    pub fn step(&mut self, backoff: &mut Backoff) -> Step {
        if !self.meta.is_ready() {
            let spool = self.spool.clone();
            let mut persist = |m: &RunMeta| {
                if let Err(e) = lock(&spool).write_meta(m) {
                    crate::warn!("ezpz: mlflow: {e}");
                }
            };
            match ensure_run(&self.client, &mut self.meta, &mut persist) {
                Ok(Resolved::Known) => {}
                Ok(Resolved::Now) => {
                    persist(&self.meta);
                    if self.banner {
                        eprint!("{}", self.meta.banner());
                    }
                    self.succeeded(backoff);
                    return Step::Progress;
                }
                Err(f) => return self.failed(f, backoff, "create the run", true),
            }
        }
        let (entry, from_aside) = match self.current.take() {
            Some(e) => (e, false),
            None => match self.next_entry() {
                Ok(Some((e, false))) if e.op == Kind::Metrics.field() => {
                    let mut group = self.gather(e);
                    match group.pop() {
                        Some(last) if group.is_empty() => (last, false),
                        Some(last) => {
                            group.push(last);
                            return self.send_parallel(group, backoff);
                        }
                        None => return Step::Progress,
                    }
                }
                Ok(Some(next)) => next,
                Ok(None) => return Step::Idle,
                Err(step) => return step,
            },
        };
        let what = describe_op(&entry);
        match self.deliver(&entry) {
            Ok(()) => {
                self.settle(&entry);
                self.delivered += 1;
                self.attempts = 0;
                // The server answers again after failing: what was set aside during the
                // outage may go through now too.
                if backoff.failures() > 0 || from_aside {
                    self.aside_backoff.succeeded();
                }
                if from_aside {
                    self.aside_keys = keys_of_all(&self.aside);
                }
                self.succeeded(backoff);
                Step::Progress
            }
            Err(f) if is_rejection(&f) => {
                self.warn_once(format!("rejected:{}:{}", entry.op, f.message()), || {
                    format!(
                        "the server refused a request to {what} ({f}); it is dropped, since \
                         sending it again cannot succeed"
                    )
                });
                let counted = match serde_json::from_str::<Upload>(&entry.body) {
                    Ok(up) if entry.op == OP_ARTIFACT => format!("artifacts/{}", up.dest),
                    _ => entry.op.clone(),
                };
                *lock(&self.refused).entry(counted).or_default() += 1;
                self.settle(&entry);
                self.attempts = 0;
                if from_aside {
                    self.aside_keys = keys_of_all(&self.aside);
                }
                Step::Progress
            }
            Err(f) if from_aside => {
                // Back to the front: the order of what waits behind it is unchanged.
                self.aside.push_front(entry);
                self.aside_backoff.failed(Instant::now(), f.retry_after());
                self.note_failure(&f, &what);
                Step::Progress
            }
            Err(f) => {
                self.attempts += 1;
                let global = f.is_auth() || run_gone(&f);
                if self.attempts >= SET_ASIDE_AFTER && !global && self.aside.len() < MAX_ASIDE {
                    self.attempts = 0;
                    let dir = self.spool_dir.display().to_string();
                    self.warn_once(format!("aside:{what}"), || {
                        format!(
                            "a request to {what} failed {SET_ASIDE_AFTER} times in a row ({f}); \
                             it is set aside and retried later (it stays in {dir}; `ezpz sync` \
                             delivers it too) so that it does not hold up later points"
                        )
                    });
                    self.aside_keys.extend(entry_keys(&entry));
                    self.aside.push_back(entry);
                    let now = Instant::now();
                    if self.aside_backoff.ready(now) {
                        self.aside_backoff.failed(now, None);
                    }
                } else {
                    self.current = Some(entry);
                }
                self.failed(f, backoff, &what, false)
            }
        }
    }

    /// The next entry to send: from the spool in order (those that must wait behind a
    /// request set aside join it), else the first request set aside when its retry is due.
    fn next_entry(&mut self) -> Result<Option<(Entry, bool)>, Step> {
        // At most MAX_ASIDE requests are held in memory; the rest wait in the spool.
        while self.aside.len() < MAX_ASIDE {
            let next = self.pull();
            match next {
                Ok(Some(e)) => {
                    if self.waits_behind_aside(&e) {
                        self.aside_keys.extend(entry_keys(&e));
                        self.aside.push_back(e);
                        continue;
                    }
                    return Ok(Some((e, false)));
                }
                Ok(None) => break,
                Err(e) => {
                    self.warn_once("spool-read".into(), || format!("{e}"));
                    return Err(Step::Wait(Duration::from_secs(1)));
                }
            }
        }
        if self.aside.is_empty() {
            let _ = lock(&self.spool).compact();
            return Ok(None);
        }
        let now = Instant::now();
        if !self.aside_backoff.ready(now) {
            let due = self
                .aside_backoff
                .next_try()
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
            return Err(Step::Pending(due));
        }
        Ok(self.aside.pop_front().map(|e| (e, true)))
    }

    /// The next entry in spool order: one taken out already, else the spool's next.
    fn pull(&mut self) -> crate::Result<Option<Entry>> {
        match self.lookahead.pop_front() {
            Some(e) => Ok(Some(e)),
            None => lock(&self.spool).next_entry(),
        }
    }

    /// `first` and up to [`SENDERS`]` - 1` later metric requests that share no key with
    /// `first` or with any request between them (those stay first in line, in order).
    fn gather(&mut self, first: Entry) -> Vec<Entry> {
        let mut seen: HashSet<String> = entry_keys(&first).into_iter().collect();
        let mut group = vec![first];
        let mut skipped: Vec<Entry> = Vec::new();
        while group.len() < SENDERS && skipped.len() < 4 * SENDERS {
            let Ok(Some(e)) = self.pull() else { break };
            if e.op == OP_END || self.waits_behind_aside(&e) {
                skipped.push(e);
                break;
            }
            if e.op != Kind::Metrics.field() {
                skipped.push(e);
                continue;
            }
            let keys = entry_keys(&e);
            let clash = keys.iter().any(|k| seen.contains(k));
            seen.extend(keys);
            if clash {
                skipped.push(e);
            } else {
                group.push(e);
            }
        }
        for e in skipped.into_iter().rev() {
            self.lookahead.push_front(e);
        }
        group
    }

    /// Sends `group` (disjoint metric requests) at once, one thread each. What fails is
    /// retried the ordinary way, one request at a time, in spool order.
    fn send_parallel(&mut self, group: Vec<Entry>, backoff: &mut Backoff) -> Step {
        let run_id = self.run_id().to_string();
        let client = &self.client;
        let results: Vec<Result<(), Failure>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|e| {
                    let run_id = &run_id;
                    scope.spawn(move || {
                        client
                            .post("runs/log-batch", with_run_id(run_id, &e.body))
                            .map(drop)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Failure::Network("a sender thread failed".into())))
                })
                .collect()
        });
        let mut failed: Vec<Entry> = Vec::new();
        let mut failure = None;
        for (entry, result) in group.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    self.settle(&entry);
                    self.delivered += 1;
                }
                Err(f) => {
                    failed.push(entry);
                    failure.get_or_insert(f);
                }
            }
        }
        let Some(f) = failure else {
            if backoff.failures() > 0 {
                self.aside_backoff.succeeded();
            }
            self.attempts = 0;
            self.succeeded(backoff);
            return Step::Progress;
        };
        // The earliest failed request is retried first (isolation, set-aside and backoff as
        // for any); the others wait in line, in spool order.
        let mut failed = failed.into_iter();
        self.current = failed.next();
        self.lookahead.extend(failed);
        self.lookahead.make_contiguous().sort_by_key(|e| e.id);
        if is_rejection(&f) {
            return Step::Progress;
        }
        self.attempts += 1;
        self.failed(f, backoff, "log metrics", false)
    }

    /// The run is finishing (or `ezpz sync` replays): what was set aside is retried now and
    /// then at short intervals, since nothing else is left to send.
    pub fn hurry(&mut self) {
        self.aside_backoff = hurried_backoff();
    }

    /// Whether `entry` must wait behind the requests set aside: the final status always,
    /// metrics and tags when they share a key with one of them (each key keeps its order).
    fn waits_behind_aside(&self, entry: &Entry) -> bool {
        if self.aside.is_empty() {
            return false;
        }
        entry.op == OP_END
            || entry_keys(entry)
                .iter()
                .any(|k| self.aside_keys.contains(k))
    }

    /// Records a failure of a request set aside, for reports and warnings, without touching
    /// the main backoff (the queue goes on).
    fn note_failure(&mut self, f: &Failure, what: &str) {
        let (cause, message) = self.describe_failure(f, what, false);
        self.last_failure = Some(f.to_string());
        self.warn_once(cause, || message);
    }

    /// Acknowledges `entry` in the spool and deletes a payload the spool owned.
    fn settle(&mut self, entry: &Entry) {
        let acked = lock(&self.spool).ack(entry.id);
        if let Err(e) = acked {
            self.warn_once("spool-ack".into(), || format!("{e}"));
        }
        if entry.op == OP_ARTIFACT {
            if let Ok(up) = serde_json::from_str::<Upload>(&entry.body) {
                if up.owned {
                    let _ = std::fs::remove_file(&up.src);
                }
            }
        }
    }

    fn succeeded(&mut self, backoff: &mut Backoff) {
        backoff.succeeded();
        if self.blocked.take() == Some(true) {
            tracing::info!(
                "ezpz: mlflow: the tracking server at {} answers again; sending what was spooled",
                self.meta.tracking_uri
            );
        }
    }

    /// Warns once per cause, and says how long to wait.
    fn failed(&mut self, f: Failure, backoff: &mut Backoff, what: &str, creating: bool) -> Step {
        let (cause, message) = self.describe_failure(&f, what, creating);
        self.last_failure = Some(f.to_string());
        let said = self.warn_once(cause, || message);
        self.blocked = Some(said || self.blocked == Some(true));
        Step::Wait(backoff.failed(Instant::now(), f.retry_after()))
    }

    /// The warning's cause (said once) and text for a failure.
    fn describe_failure(&self, f: &Failure, what: &str, creating: bool) -> (String, String) {
        let uri = &self.meta.tracking_uri;
        let dir = self.spool_dir.display();
        if f.is_auth() {
            (
                format!("auth:{}", f.status().unwrap_or_default()),
                format!(
                    "the tracking server at {uri} answered {f} when asked to {what} for \
                     experiment `{}`. This is the server refusing access, not an ezpz bug: check \
                     the credentials (in use: {}; see MLFLOW_TRACKING_USERNAME/PASSWORD, \
                     MLFLOW_TRACKING_TOKEN, AMSC_API_KEY), your permissions on the experiment (or \
                     try another experiment name), and that the server accepts this host \
                     (`mlflow server --allowed-hosts`). Training continues; data is kept in {dir} \
                     and sent once access works (or later by `ezpz sync`)",
                    self.meta.experiment_name,
                    self.client.credentials().describe()
                ),
            )
        } else if !f.is_permanent() || !(creating || run_gone(f)) {
            (
                match f.status() {
                    Some(s) => format!("status:{s}"),
                    None => "network".into(),
                },
                format!(
                    "could not {what} on the tracking server at {uri} ({f}); training continues, \
                     data is kept in {dir} and retried with backoff"
                ),
            )
        } else {
            (
                format!("blocked:{}", f.message()),
                format!(
                    "could not {what} on the tracking server at {uri} ({f}); data is kept in \
                     {dir} and retried slowly"
                ),
            )
        }
    }

    /// Warns unless this cause was warned about already; returns whether it warned.
    fn warn_once(&mut self, cause: String, message: impl FnOnce() -> String) -> bool {
        let new = self.warned.insert(cause);
        if new {
            crate::warn!("ezpz: mlflow: {}", message());
        }
        new
    }

    fn run_id(&self) -> &str {
        self.meta.run_id.as_deref().unwrap_or_default()
    }

    /// Sends one entry.
    fn deliver(&mut self, entry: &Entry) -> Result<(), Failure> {
        match entry.op.as_str() {
            OP_ARTIFACT => self.upload(entry),
            OP_END => self
                .client
                .post("runs/update", with_run_id(self.run_id(), &entry.body))
                .map(drop),
            op => match Kind::from_op(op) {
                Some(kind) => self.deliver_batch(kind, &entry.body),
                None => Err(Failure::Local(format!("unknown spool entry `{op}`"))),
            },
        }
    }

    fn log_batch(&self, body: &str) -> Result<(), Failure> {
        self.client
            .post("runs/log-batch", with_run_id(self.run_id(), body))
            .map(drop)
    }

    /// Sends a `log-batch` body; when MLflow refuses it for good, finds the refused entries
    /// and delivers the others (see [`isolate`](Self::isolate)).
    fn deliver_batch(&mut self, kind: Kind, body: &str) -> Result<(), Failure> {
        match self.log_batch(body) {
            Err(f) if is_rejection(&f) && !matches!(f, Failure::Local(_)) => {
                let parsed: serde_json::Value = serde_json::from_str(body)
                    .map_err(|e| Failure::Local(format!("unreadable spooled request: {e}")))?;
                let items = parsed[kind.field()].as_array().cloned().unwrap_or_default();
                self.isolate(kind, items, &f)
            }
            other => other,
        }
    }

    /// After the server refused `items` with `refusal`: a single entry is refused (counted);
    /// entries of several keys are sent key by key; entries of one key are refused together
    /// when the refusal is about the name, else sent in halves. Every entry the server
    /// accepts is delivered (a repeat of an entry it already stored changes nothing).
    fn isolate(
        &mut self,
        kind: Kind,
        items: Vec<serde_json::Value>,
        refusal: &Failure,
    ) -> Result<(), Failure> {
        let mut keys: Vec<&str> = Vec::new();
        for item in &items {
            let key = item["key"].as_str().unwrap_or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let groups: Vec<Vec<serde_json::Value>> = if keys.len() > 1 {
            keys.iter()
                .map(|k| {
                    items
                        .iter()
                        .filter(|i| i["key"].as_str().unwrap_or_default() == *k)
                        .cloned()
                        .collect()
                })
                .collect()
        } else if items.len() <= 1 || refuses_the_name(refusal) {
            let key = keys.first().copied().unwrap_or_default().to_string();
            self.refuse(kind, &key, items.len() as u64, refusal);
            return Ok(());
        } else {
            let half = items.len() / 2;
            vec![items[..half].to_vec(), items[half..].to_vec()]
        };
        for group in groups {
            let body = serde_json::json!({ kind.field(): group }).to_string();
            match self.log_batch(&body) {
                Ok(()) => {}
                Err(f) if is_rejection(&f) => self.isolate(kind, group, &f)?,
                Err(f) => return Err(f),
            }
        }
        Ok(())
    }

    /// Counts `n` refused entries of `key` and warns once per key.
    fn refuse(&mut self, kind: Kind, key: &str, n: u64, refusal: &Failure) {
        let counted = match kind {
            Kind::Metrics => key.to_string(),
            Kind::Params => format!("params.{key}"),
            Kind::Tags => format!("tags.{key}"),
        };
        *lock(&self.refused).entry(counted.clone()).or_default() += n;
        let hint = match kind {
            Kind::Params => " MLflow params cannot change once logged; use a metric or a new key.",
            _ => "",
        };
        self.warn_once(format!("refused:{counted}"), || {
            format!(
                "the tracking server refused `{counted}` ({refusal}); the refused entries are \
                 not delivered (counted in the run's summary), every other entry is.{hint}"
            )
        });
    }

    fn upload(&mut self, entry: &Entry) -> Result<(), Failure> {
        let up: Upload = serde_json::from_str(&entry.body)
            .map_err(|e| Failure::Local(format!("unreadable spooled artifact: {e}")))?;
        let artifact_uri = self.meta.artifact_uri.clone().unwrap_or_default();
        let Some(base) = proxy_base(&artifact_uri, self.client.base()) else {
            return Err(Failure::Local(format!(
                "the run's artifact location `{artifact_uri}` is not served through the MLflow \
                 server's artifact proxy (start the server with `--serve-artifacts` and no \
                 direct `--default-artifact-root`), so `{}` and other artifacts cannot be \
                 uploaded over REST",
                up.dest
            )));
        };
        let src = self.locate(&up);
        self.client.put_file(upload_url(&base, &up.dest), &src)
    }
}

impl Delivery {
    /// Where a spooled upload's file is now: its recorded path, or — for a file the spool
    /// made, recorded relative to another working directory or moved with the output
    /// directory — the same name in this spool's `files/`.
    fn locate(&self, up: &Upload) -> PathBuf {
        if up.src.is_absolute() && up.src.exists() || !up.owned {
            return up.src.clone();
        }
        up.src
            .file_name()
            .map(|name| self.spool_dir.join("files").join(name))
            .filter(|p| p.exists())
            .unwrap_or_else(|| up.src.clone())
    }
}

/// A request the server will never accept as it is (MLflow's permanent refusal, a local
/// problem), unless the refusal is about the run rather than the request.
fn is_rejection(f: &Failure) -> bool {
    f.is_permanent() && !run_gone(f)
}

/// Whether MLflow's refusal is about the entity's name (`…parameter 'metrics[3].name'…`):
/// then every entry with that name is refused alike.
fn refuses_the_name(f: &Failure) -> bool {
    let m = f.message();
    m.contains(".name'") || m.contains(".key'")
}

/// The metric and tag keys a spooled request touches (tags `tags.`-prefixed), for ordering.
fn entry_keys(entry: &Entry) -> Vec<String> {
    let Some(kind) = Kind::from_op(&entry.op).filter(|k| *k != Kind::Params) else {
        return Vec::new();
    };
    let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&entry.body) else {
        return Vec::new();
    };
    let prefix = if kind == Kind::Tags { "tags." } else { "" };
    parsed[kind.field()]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["key"].as_str())
                .map(|k| format!("{prefix}{k}"))
                .collect()
        })
        .unwrap_or_default()
}

fn keys_of_all(entries: &VecDeque<Entry>) -> HashSet<String> {
    entries.iter().flat_map(entry_keys).collect()
}

/// The run was deleted or never existed (an `MLFLOW_RUN_ID` from elsewhere): waiting may
/// help (it can be restored), dropping would lose data.
fn run_gone(f: &Failure) -> bool {
    f.code() == Some("RESOURCE_DOES_NOT_EXIST")
        || f.message().contains("must be in the 'active' state")
}

fn describe_op(entry: &Entry) -> String {
    match entry.op.as_str() {
        OP_ARTIFACT => match serde_json::from_str::<Upload>(&entry.body) {
            Ok(up) => format!("upload artifact `{}`", up.dest),
            Err(_) => "upload an artifact".into(),
        },
        OP_END => "end the run".into(),
        "params" => "log params".into(),
        "tags" => "set tags".into(),
        _ => "log metrics".into(),
    }
}

/// The backoff while finishing or replaying: nothing else waits, the deadline is near.
pub(crate) fn hurried_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(250), Duration::from_secs(2))
        .with_max_retry_after(Duration::from_secs(2))
}

/// Signals between the backend (on its worker) and its delivery thread.
#[derive(Debug, Default)]
pub(crate) struct Control {
    flags: Mutex<Flags>,
    cv: Condvar,
    /// The run identity, once known.
    pub run_info: Mutex<Option<RunInfo>>,
}

#[derive(Debug, Default)]
struct Flags {
    /// New entries were spooled.
    data: bool,
    /// Finishing: stop waiting out a backoff and try now.
    urgent: bool,
    /// Stop after the current request.
    stop: bool,
    /// The delivery thread died of a panic (what it said).
    panicked: Option<String>,
}

impl Control {
    /// The delivery thread died of a panic: wakes whoever waits for it.
    pub fn set_panicked(&self, what: String) {
        lock(&self.flags).panicked = Some(what);
        self.cv.notify_all();
    }

    /// What the delivery thread said when it panicked, if it did.
    pub fn panicked(&self) -> Option<String> {
        lock(&self.flags).panicked.clone()
    }

    /// New entries are in the spool.
    pub fn notify_data(&self) {
        lock(&self.flags).data = true;
        self.cv.notify_all();
    }

    /// Retry now (the run is finishing).
    pub fn hurry(&self) {
        lock(&self.flags).urgent = true;
        self.cv.notify_all();
    }

    /// Stop the delivery thread.
    pub fn stop(&self) {
        lock(&self.flags).stop = true;
        self.cv.notify_all();
    }

    /// Waits until `done()` holds or `deadline` passes; returns whether it holds.
    pub fn wait_until(&self, deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
        let mut flags = lock(&self.flags);
        loop {
            if done() {
                return true;
            }
            if flags.panicked.is_some() {
                return false; // nobody delivers any more
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            flags = self
                .cv
                .wait_timeout(flags, slice)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// Starts `deliver` on the `ezpz-mlflow-tx` thread. A panic there is caught, warned once and
/// kept in `control`: waiting for delivery stops at once, and `finish` reports it (what was
/// not sent stays in the spool for `ezpz sync`).
pub(crate) fn spawn_watched(
    control: Arc<Control>,
    deliver: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ezpz-mlflow-tx".into())
        .spawn(move || {
            if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(deliver)) {
                let what = crate::error::panic_message(&*panic);
                crate::warn!(
                    "ezpz: mlflow: the delivery thread panicked ({what}); nothing is lost: what \
                     it had not sent stays in the spool for `ezpz sync`"
                );
                control.set_panicked(what);
            }
        })
}

/// The delivery thread: steps until stopped, sleeping while idle or backing off.
pub(crate) fn run_thread(mut delivery: Delivery, control: Arc<Control>) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10))
        .with_max_retry_after(Duration::from_secs(60));
    loop {
        if lock(&control.flags).stop {
            return;
        }
        let step = delivery.step(&mut backoff);
        if delivery.meta().run_id.is_some() {
            let info = delivery.run_info();
            let mut slot = lock(&control.run_info);
            if slot.as_ref() != Some(&info) {
                *slot = Some(info);
            }
        }
        // Whoever waits for the spool to drain re-checks now.
        control.cv.notify_all();
        let mut flags = lock(&control.flags);
        match step {
            Step::Progress => {}
            Step::Idle | Step::Pending(_) => {
                let nap = match step {
                    Step::Pending(due) => {
                        due.clamp(Duration::from_millis(10), Duration::from_secs(1))
                    }
                    _ => Duration::from_secs(1),
                };
                if !flags.data && !flags.stop && !flags.urgent {
                    flags = control
                        .cv
                        .wait_timeout(flags, nap)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                if flags.urgent {
                    backoff = hurried_backoff();
                    delivery.hurry();
                }
                flags.data = false;
                flags.urgent = false;
            }
            Step::Wait(delay) => {
                // New data does not cut a backoff short (that would hammer a dead server);
                // finishing does.
                let until = Instant::now() + delay;
                while !flags.urgent && !flags.stop {
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    flags = control
                        .cv
                        .wait_timeout(flags, until - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                if flags.urgent {
                    flags.urgent = false;
                    // Finishing: short waits whatever the server asks, within the deadline.
                    backoff = hurried_backoff();
                    delivery.hurry();
                }
                flags.data = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_on_the_delivery_thread_is_caught_and_stops_the_wait() {
        let control = Arc::new(Control::default());
        let thread = spawn_watched(control.clone(), || panic!("injected")).unwrap();
        // Far deadline: the wait ends because the thread died, not by the clock.
        let delivered = control.wait_until(Instant::now() + Duration::from_secs(3600), || false);
        assert!(!delivered);
        assert_eq!(control.panicked().as_deref(), Some("injected"));
        assert!(thread.join().is_ok(), "the panic did not escape the thread");
    }
}
