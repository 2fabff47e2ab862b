//! Delivery: takes spooled requests in order, sends each until the server acknowledges it,
//! and only then acknowledges it in the spool.
//!
//! [`Delivery::step`] does one unit of work and says what to do next; the backend's delivery
//! thread ([`run_thread`]) and `ezpz sync` drive it. Failures are classified once here:
//! transient ones (network, 408, 429, 5xx) wait with backoff and retry the same request;
//! refusals of access (401, 403) and a run that disappeared are warned about once and retried
//! slowly, keeping everything spooled; a request the server rejects as invalid is warned
//! about and dropped (retrying would never succeed), params one by one so a single changed
//! value costs only itself.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::artifacts::{proxy_base, upload_url, Upload};
use super::batch::{with_run_id, write_key_value, Kind};
use super::client::{Failure, RestClient};
use super::run::{ensure_run, Resolved, RunMeta};
use crate::backend::RunInfo;
use crate::retry::Backoff;
use crate::spool::{Entry, Spool};

/// Spool op of an artifact upload (body: [`Upload`] as JSON).
pub(crate) const OP_ARTIFACT: &str = "artifact";
/// Spool op of the final status (body: a `runs/update` body without the run id).
pub(crate) const OP_END: &str = "end";

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
    pub fn new(client: RestClient, meta: RunMeta, spool: Arc<Mutex<Spool>>, banner: bool) -> Self {
        let spool_dir = lock(&spool).dir().to_path_buf();
        Delivery {
            client,
            meta,
            spool,
            spool_dir,
            current: None,
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
        let entry = match self.current.take() {
            Some(e) => e,
            None => {
                let mut spool = lock(&self.spool);
                match spool.next_entry() {
                    Ok(Some(e)) => e,
                    Ok(None) => {
                        let _ = spool.compact();
                        return Step::Idle;
                    }
                    Err(e) => {
                        drop(spool);
                        self.warn_once("spool-read".into(), || format!("{e}"));
                        return Step::Wait(Duration::from_secs(1));
                    }
                }
            }
        };
        let what = describe_op(&entry);
        match self.deliver(&entry) {
            Ok(()) => {
                self.settle(&entry);
                self.delivered += 1;
                self.succeeded(backoff);
                Step::Progress
            }
            Err(f) if is_rejection(&f) => {
                self.warn_once(format!("rejected:{}:{}", entry.op, f.message()), || {
                    format!(
                        "the server rejected a request to {what} ({f}); it is dropped, since \
                         sending it again cannot succeed"
                    )
                });
                self.settle(&entry);
                Step::Progress
            }
            Err(f) => {
                self.current = Some(entry);
                self.failed(f, backoff, &what, false)
            }
        }
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
        let uri = self.meta.tracking_uri.clone();
        let dir = self.spool_dir.display().to_string();
        let (cause, message) = if f.is_auth() {
            (
                format!("auth:{}", f.status().unwrap_or_default()),
                format!(
                    "the tracking server at {uri} answered {f} when asked to {what} for \
                     experiment `{}`. This is the server refusing access, not an ezpz bug: check \
                     the credentials (in use: {}; see MLFLOW_TRACKING_USERNAME/PASSWORD, \
                     MLFLOW_TRACKING_TOKEN, AMSC_API_KEY), your permissions on the experiment (or \
                     try another experiment name), and that the server accepts this host \
                     (`mlflow server --allowed-hosts`). Training continues; data is kept in {dir} \
                     and sent once access works",
                    self.meta.experiment_name,
                    self.client.credentials().describe()
                ),
            )
        } else if f.is_retryable() {
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
        } else if creating || run_gone(&f) {
            (
                format!("blocked:{}", f.message()),
                format!(
                    "could not {what} on the tracking server at {uri} ({f}); data is kept in \
                     {dir} and retried slowly"
                ),
            )
        } else {
            // Callers treat rejections before reaching here; anything left is transient.
            ("other".into(), format!("could not {what} ({f})"))
        };
        self.last_failure = Some(f.to_string());
        let said = self.warn_once(cause, || message);
        self.blocked = Some(said || self.blocked == Some(true));
        Step::Wait(backoff.failed(Instant::now(), f.retry_after()))
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
                Some(Kind::Params) => match self.log_batch(&entry.body) {
                    Err(f) if is_rejection(&f) => self.params_one_by_one(&entry.body),
                    other => other,
                },
                Some(_) => self.log_batch(&entry.body),
                None => Err(Failure::Local(format!("unknown spool entry `{op}`"))),
            },
        }
    }

    fn log_batch(&self, body: &str) -> Result<(), Failure> {
        self.client
            .post("runs/log-batch", with_run_id(self.run_id(), body))
            .map(drop)
    }

    /// After a params batch was rejected: each param alone, so only the offending ones (a
    /// value that changed since an earlier run attempt, say) are lost, each with a warning.
    fn params_one_by_one(&mut self, body: &str) -> Result<(), Failure> {
        let parsed: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| Failure::Local(format!("unreadable spooled params: {e}")))?;
        let params = parsed["params"].as_array().cloned().unwrap_or_default();
        for p in params {
            let (Some(key), Some(value)) = (p["key"].as_str(), p["value"].as_str()) else {
                continue;
            };
            let mut one = String::from("{\"params\":[");
            write_key_value(&mut one, key, value);
            one.push_str("]}");
            match self.log_batch(&one) {
                Ok(()) => {}
                Err(f) if is_rejection(&f) => {
                    self.warn_once(format!("param:{key}"), || {
                        format!(
                            "param `{key}` was not logged: the server refused it ({f}). MLflow \
                             params cannot change once logged; use a metric or a new key"
                        )
                    });
                }
                Err(f) => return Err(f),
            }
        }
        Ok(())
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
        self.client.put_file(upload_url(&base, &up.dest), &up.src)
    }
}

/// A request the server will never accept as it is (invalid input, a local problem).
fn is_rejection(f: &Failure) -> bool {
    match f {
        Failure::Local(_) => true,
        Failure::Network(_) => false,
        Failure::Status { .. } => !f.is_retryable() && !f.is_auth() && !run_gone(f),
    }
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
}

impl Control {
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

/// The delivery thread: steps until stopped, sleeping while idle or backing off.
pub(crate) fn run_thread(mut delivery: Delivery, control: Arc<Control>) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
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
            Step::Idle => {
                if !flags.data && !flags.stop && !flags.urgent {
                    flags = control
                        .cv
                        .wait_timeout(flags, Duration::from_secs(1))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
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
                    backoff.succeeded();
                }
                flags.data = false;
            }
        }
    }
}
