//! `MlflowBackend`: turns records into spooled `log-batch` requests on the worker thread;
//! a delivery thread sends them (see [`super::sender`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::artifacts::{expand, Upload};
use super::auth::{strip_userinfo, Credentials, Secrets, Tls};
use super::batch::{write_metric, BatchBuilder, Kind};
use super::client::RestClient;
use super::keys::{local_renames, sanitize, KeyMapper};
use super::options::MlflowOptions;
use super::params::{system_params, GitInfo, ParamLog};
use super::run::{end_body, new_run_uid, RunMeta};
use super::sender::{
    lock, run_thread, spawn_watched, Control, Delivery, Refused, OP_ARTIFACT, OP_END, SENDERS,
};
use crate::backend::{
    Artifacts, Backend, BackendContext, ImageRecord, Record, RunInfo, RunStatus, Table,
};
use crate::backends::appender::file_stem;
use crate::backends::csv::table_to_csv;
use crate::config::flatten;
use crate::env::{self, var};
use crate::run_settings::RunSettings;
use crate::spool::{spool_dir, Spool};
use crate::{Error, MetricDefinition, Result};

/// Tags [`MlflowBackend`] sets from a metric definition start with this.
pub const METRIC_TAG_PREFIX: &str = "ezpz.metric.";

/// The tag MLflow shows as the run's description.
const NOTE_TAG: &str = "mlflow.note.content";
/// Longest tag value the server keeps, in characters.
const MAX_TAG_CHARS: usize = 8000;

/// Default cap on one HTTP request (MLflow's client uses the same).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Logs to an MLflow tracking server over its REST API, never losing a point.
///
/// Every request is first appended to a spool under the run's output directory
/// (`<outdir>/spool/mlflow/`) and leaves it only when the server acknowledged it; a delivery
/// thread (`ezpz-mlflow-tx`) sends in batches within the server's limits, retrying with
/// backoff. If the server is down at start the run is created when it appears. `finish`
/// waits a bounded time, then leaves what is undelivered for `ezpz sync <outdir>`.
pub struct MlflowBackend {
    spool: Arc<Mutex<Spool>>,
    control: Arc<Control>,
    sender: Option<JoinHandle<()>>,
    meta: RunMeta,
    /// One batch per lane: a key always goes to the same lane, so the delivery thread can
    /// send the lanes' requests at once and each key keeps its order.
    metrics: Vec<BatchBuilder>,
    keys: KeyMapper,
    params: ParamLog,
    secrets: Secrets,
    non_numeric: HashSet<Arc<str>>,
    /// Entries refused, per key (here: found before sending; the delivery thread adds the
    /// server's refusals).
    refused: Refused,
    /// The builder hands its configuration to `log_config` too; it was logged as `config.*`.
    initial_config: Option<serde_json::Value>,
    finish_cap: Duration,
    files: u64,
    finished: bool,
    undelivered: Option<u64>,
}

impl std::fmt::Debug for MlflowBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowBackend")
            .field("tracking_uri", &self.meta.tracking_uri)
            .field("experiment", &self.meta.experiment_name)
            .field("run_id", &self.meta.run_id)
            .finish_non_exhaustive()
    }
}

impl MlflowBackend {
    /// The registry constructor: everything from the environment.
    ///
    /// # Errors
    /// See [`MlflowBackend::new`].
    pub fn from_context(ctx: &BackendContext) -> Result<Box<dyn Backend>> {
        Ok(Box::new(MlflowBackend::new(ctx, MlflowOptions::new())?))
    }

    /// Starts the backend for the run `ctx` describes. No network here: the run is created by
    /// the delivery thread, as soon as the server answers.
    ///
    /// Credentials come from the environment, completed (never overridden) by `.env` in the
    /// working directory and `~/.amsc.env` (see [`env::load_dotenv`]).
    ///
    /// # Errors
    /// No tracking URI, a URI that is not `http(s)`, an unreadable CA file, or a spool that
    /// cannot be created (or that another live process is writing).
    pub fn new(ctx: &BackendContext, options: MlflowOptions) -> Result<Self> {
        env::load_dotenv();
        let uri = options
            .tracking_uri
            .or_else(|| var(env::MLFLOW_TRACKING_URI))
            .ok_or_else(|| Error::Invalid {
                what: "MLFLOW_TRACKING_URI",
                message: "not set: the mlflow backend needs a tracking server, e.g. \
                          MLFLOW_TRACKING_URI=http://127.0.0.1:5000"
                    .into(),
            })?;
        let client = RestClient::new(
            &uri,
            Credentials::from_env(),
            &Tls::from_env(),
            request_timeout(),
        )?;
        let secrets = client.secrets().clone();
        let experiment_name = options
            .experiment_name
            .or_else(|| var(env::MLFLOW_EXPERIMENT_NAME))
            .or_else(|| ctx.settings.experiment.clone())
            .unwrap_or_else(|| ctx.project.clone())
            .replace('.', "-");
        let dir = spool_dir(&ctx.outdir, "mlflow");
        set_aside_leftovers(&dir, &ctx.outdir)?;
        let spool = Spool::open(&dir)?;
        spool.claim()?;
        let git = GitInfo::detect();
        let run_id = options.run_id.or_else(|| var(env::MLFLOW_RUN_ID));
        let mut keys = KeyMapper::default();
        let mut tags = creation_tags(&git, &secrets);
        tags.extend(settings_tags(&ctx.settings, &mut keys, &secrets));
        let meta = RunMeta {
            tracking_uri: strip_userinfo(&uri).trim_end_matches('/').to_string(),
            experiment_name,
            experiment_id: options
                .experiment_id
                .or_else(|| var(env::MLFLOW_EXPERIMENT_ID)),
            run_id,
            run_name: ctx.settings.run_name.clone(),
            run_uid: new_run_uid(),
            start_time: (ctx.start_time * 1000.0).round() as i64,
            tags,
            artifact_uri: None,
            create_sent: false,
            outdir: std::path::absolute(&ctx.outdir).unwrap_or_else(|_| ctx.outdir.clone()),
        };
        spool.write_meta(&meta)?;
        let finish_cap = ctx.finish_timeout;
        let spool = Arc::new(Mutex::new(spool));
        let control = Arc::new(Control::default());
        let mut backend = MlflowBackend {
            spool: spool.clone(),
            control: control.clone(),
            sender: None,
            meta: meta.clone(),
            metrics: (0..SENDERS)
                .map(|_| BatchBuilder::new(Kind::Metrics))
                .collect(),
            keys,
            params: ParamLog::default(),
            secrets,
            non_numeric: HashSet::new(),
            refused: Refused::default(),
            initial_config: None,
            finish_cap,
            files: 0,
            finished: false,
            undelivered: None,
        };
        // An attached run (`MLFLOW_RUN_ID`) keeps the system params of the process that
        // created it: params are write-once, ours would only be refused.
        if backend.meta.run_id.is_none() {
            backend.log_params(system_params(ctx, &git))?;
        }
        if let Some(config) = &ctx.config {
            backend.log_params(flatten(&serde_json::json!({ "config": config }), "."))?;
            backend.initial_config = Some(config.clone());
        }
        let delivery = Delivery::new(client, meta, spool, backend.refused.clone(), true);
        let watched = control.clone();
        let thread = spawn_watched(watched, move || run_thread(delivery, control))
            .map_err(|e| Error::backend("mlflow", format!("cannot start delivery thread: {e}")))?;
        backend.sender = Some(thread);
        Ok(backend)
    }

    /// Where undelivered requests wait.
    pub fn spool_dir(&self) -> PathBuf {
        lock(&self.spool).dir().to_path_buf()
    }

    fn append(&mut self, op: &str, body: &str) -> Result<()> {
        lock(&self.spool).append(op, body)?;
        self.control.notify_data();
        Ok(())
    }

    fn seal_metrics(&mut self) -> Result<()> {
        let bodies: Vec<String> = self.metrics.iter_mut().filter_map(|b| b.seal()).collect();
        for body in bodies {
            self.append(Kind::Metrics.field(), &body)?;
        }
        Ok(())
    }

    /// Spools params (deduplicated and checked, see [`ParamLog`]).
    fn log_params(&mut self, flat: Vec<(String, String)>) -> Result<()> {
        let admitted = self.params.admit(flat, &mut self.keys, &self.secrets);
        self.spool_key_values(Kind::Params, &admitted)
    }

    /// Spools `items` as `kind` (params or tags) in batches within the server's limits.
    fn spool_key_values(&mut self, kind: Kind, items: &[(String, String)]) -> Result<()> {
        let mut batch = BatchBuilder::new(kind);
        let mut bodies = Vec::new();
        for (k, v) in items {
            bodies.extend(batch.push(|o| super::batch::write_key_value(o, k, v)));
        }
        bodies.extend(batch.seal());
        for body in bodies {
            self.append(kind.field(), &body)?;
        }
        Ok(())
    }

    /// Spools an upload.
    fn upload(&mut self, upload: &Upload) -> Result<()> {
        let body = serde_json::to_string(upload).map_err(|e| Error::Invalid {
            what: "artifact",
            message: e.to_string(),
        })?;
        self.append(OP_ARTIFACT, &body)
    }

    /// Writes generated bytes into the spool and spools their upload to `dest`.
    fn upload_bytes(&mut self, dest: String, bytes: &[u8]) -> Result<()> {
        let files = lock(&self.spool).files_dir()?;
        self.files += 1;
        let name = dest.rsplit('/').next().unwrap_or("file");
        // Absolute: `ezpz sync` may run from any directory.
        let src = files.join(format!("{}-{name}", self.files));
        let src = std::path::absolute(&src).unwrap_or(src);
        std::fs::write(&src, bytes).map_err(|e| Error::io("cannot write", &src, e))?;
        self.upload(&Upload {
            src,
            dest,
            owned: true,
        })
    }

    /// Counts the metrics of a row whose step MLflow cannot store, warning once.
    fn refuse_step(&mut self, record: &Record) {
        let mut refused = lock(&self.refused);
        for (key, value) in record.metrics() {
            if value.as_f64().is_some() {
                *refused.entry(key.to_string()).or_default() += 1;
            }
        }
        drop(refused);
        if self.non_numeric.insert(Arc::from("\u{0}step")) {
            crate::warn!(
                "ezpz: mlflow: step {} is above {} (MLflow steps are 64-bit signed integers); \
                 rows with such steps are not sent to MLflow (counted as refused in the summary)",
                record.step,
                i64::MAX
            );
        }
    }

    fn stop_sender(&mut self, wait: Duration) {
        self.control.stop();
        if let Some(thread) = self.sender.take() {
            let deadline = Instant::now() + wait;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

/// The lane of `key` among `lanes` (a fixed hash: the same key, the same lane).
fn lane_of(key: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

/// The backend's own deadline inside the tracker's finish cap: a tenth earlier (at least a
/// second), so the tracker still hears the outcome in time.
fn own_deadline(cap: Duration) -> Duration {
    cap.saturating_sub((cap / 10).max(Duration::from_secs(1)))
}

pub(crate) fn request_timeout() -> Duration {
    env::var_seconds(env::MLFLOW_HTTP_REQUEST_TIMEOUT)
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT)
}

/// Tags set when the run is created: source, user, commit.
fn creation_tags(git: &GitInfo, secrets: &Secrets) -> Vec<(String, String)> {
    let source = crate::report::redacted_args()
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut tags = vec![
        ("mlflow.source.name".to_string(), secrets.redact(&source)),
        ("mlflow.source.type".to_string(), "LOCAL".to_string()),
    ];
    if let Some(user) = env::USER_VARS.iter().find_map(|v| var(v)) {
        tags.push(("mlflow.user".to_string(), user));
    }
    if let Some(commit) = &git.commit {
        tags.push(("mlflow.source.git.commit".to_string(), commit.clone()));
    }
    tags
}

/// The tracker's [`RunSettings`] as tags set at creation: each tag (name made acceptable,
/// empty value), the notes as the run's description (`mlflow.note.content`), `group` and
/// `job_type`. Values are cut to what the server keeps.
fn settings_tags(
    settings: &RunSettings,
    keys: &mut KeyMapper,
    secrets: &Secrets,
) -> Vec<(String, String)> {
    let value = |v: &str| secrets.redact(v).chars().take(MAX_TAG_CHARS).collect();
    let mut tags: Vec<(String, String)> = settings
        .tags
        .iter()
        .map(|t| {
            (
                keys.map(&Arc::from(t.as_str()), "tag").to_string(),
                String::new(),
            )
        })
        .collect();
    let labelled = [
        (NOTE_TAG, &settings.notes),
        ("group", &settings.group),
        ("job_type", &settings.job_type),
    ];
    for (key, v) in labelled {
        if let Some(v) = v {
            tags.push((key.to_string(), value(v)));
        }
    }
    tags
}

/// An earlier run in the same output directory left undelivered requests: they belong to
/// that run, so they move aside (still found by `ezpz sync <outdir>`) instead of leaking
/// into this one.
fn set_aside_leftovers(dir: &Path, outdir: &Path) -> Result<()> {
    if !dir.join("entries.log").exists() {
        return Ok(());
    }
    if let Some(owner) = Spool::live_owner(dir) {
        return Err(Error::Invalid {
            what: "output directory",
            message: format!(
                "{owner} is logging to MLflow from `{}` already; use another outdir",
                outdir.display()
            ),
        });
    }
    if Spool::open(dir)?.unacked() == 0 {
        return Ok(());
    }
    let aside = dir.with_file_name(format!(
        "mlflow-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f")
    ));
    std::fs::rename(dir, &aside).map_err(|e| Error::io("cannot move aside", dir, e))?;
    crate::warn!(
        "ezpz: mlflow: an earlier run left undelivered data in `{}`; it was moved to `{}`. \
         Replay it with: ezpz sync {}",
        outdir.display(),
        aside.display(),
        outdir.display()
    );
    Ok(())
}

impl Backend for MlflowBackend {
    fn name(&self) -> &str {
        "mlflow"
    }

    fn log(&mut self, record: &Record) -> Result<()> {
        let timestamp = ((record.timestamp * 1000.0).round() as i64).max(0);
        if i64::try_from(record.step).is_err() {
            // MLflow steps are 64-bit signed: the server would refuse the whole batch.
            self.refuse_step(record);
            return Ok(());
        }
        let renames = local_renames(record.keys().iter().map(|k| &**k));
        let mut sealed = Vec::new();
        for (key, value) in record.metrics() {
            let Some(v) = value.as_f64() else {
                if self.non_numeric.insert(key.clone()) {
                    crate::warn!(
                        "ezpz: mlflow: `{key}` has a non-numeric value (`{}`); MLflow metrics \
                         are numbers, so it is not sent (said once per key)",
                        self.secrets.redact(&value.to_string())
                    );
                }
                continue;
            };
            let key = if renames.contains(&&**key) {
                self.keys.map(&Arc::from(format!("{key}/local")), "metric")
            } else {
                self.keys.map(key, "metric")
            };
            let lane = lane_of(&key, self.metrics.len());
            sealed.extend(
                self.metrics[lane].push(|o| write_metric(o, &key, v, timestamp, record.step)),
            );
        }
        for body in sealed {
            self.append(Kind::Metrics.field(), &body)?;
        }
        Ok(())
    }

    fn log_config(&mut self, config: &serde_json::Value) -> Result<()> {
        if let Some(initial) = self.initial_config.take() {
            if initial == *config {
                return Ok(());
            }
        }
        self.log_params(flatten(config, "."))
    }

    /// Tags the run with the metric's unit and goal: `ezpz.metric.<key>.unit` and
    /// `ezpz.metric.<key>.goal` (`minimize` / `maximize`), `<key>` as the run shows the
    /// metric. Tags, unlike params, may change.
    fn define_metric(&mut self, definition: &MetricDefinition) -> Result<()> {
        let name = self.keys.map(&Arc::from(definition.key.as_str()), "metric");
        let tag = |what: &str| {
            let key = format!("{METRIC_TAG_PREFIX}{name}.{what}");
            sanitize(&key).unwrap_or(key)
        };
        let mut tags = Vec::new();
        if let Some(unit) = &definition.unit {
            tags.push((tag("unit"), unit.clone()));
        }
        if let Some(goal) = definition.goal {
            tags.push((tag("goal"), goal.as_str().to_string()));
        }
        self.spool_key_values(Kind::Tags, &tags)
    }

    fn log_table(&mut self, table: &Table) -> Result<()> {
        let dest = format!("tables/{}_{}.csv", file_stem(&table.key), table.step);
        self.upload_bytes(dest, &table_to_csv(table))
    }

    fn log_image(&mut self, image: &ImageRecord) -> Result<()> {
        let encoded = image.encode_png()?;
        let dest = format!("images/{}_{}.png", file_stem(&image.key), image.step);
        self.upload_bytes(dest, &encoded.png)
    }

    fn log_artifacts(&mut self, artifacts: &Artifacts) -> Result<()> {
        let mut errors = Vec::new();
        for (label, path) in &artifacts.items {
            match expand(label, path) {
                Ok(uploads) => {
                    for up in uploads {
                        if let Err(e) = self.upload(&up) {
                            errors.push(e);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        Error::collect(errors)
    }

    fn flush(&mut self) -> Result<()> {
        self.seal_metrics()
    }

    fn finish(&mut self, status: RunStatus) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let started = Instant::now();
        self.seal_metrics()?;
        let end_time = chrono::Utc::now().timestamp_millis();
        self.append(OP_END, &end_body(status, end_time))?;
        // On the disk itself before waiting: what is not delivered must survive a crash.
        if let Err(e) = lock(&self.spool).sync() {
            crate::warn!("ezpz: mlflow: {e}");
        }
        self.control.hurry();
        let deadline = started + own_deadline(self.finish_cap);
        let spool = self.spool.clone();
        let drained = self
            .control
            .wait_until(deadline, || lock(&spool).unacked() == 0);
        self.stop_sender(Duration::from_millis(200));
        if drained {
            let dir = self.spool_dir();
            return Spool::remove_dir(&dir);
        }
        let left = {
            let spool = lock(&self.spool);
            spool.release();
            spool.unacked()
        };
        self.undelivered = Some(left);
        let command = self.meta.sync_command();
        let dir = self.spool_dir();
        if let Some(what) = self.control.panicked() {
            return Err(Error::backend(
                "mlflow",
                format!(
                    "the delivery thread panicked ({what}); {left} request(s) kept in `{}`; \
                     replay with `{command}`",
                    dir.display()
                ),
            ));
        }
        eprintln!(
            "ezpz: mlflow: {left} request(s) not delivered to {} within {:.1} s; they are kept \
             in {}. Replay them into the same run with:\n    {command}",
            self.meta.tracking_uri,
            own_deadline(self.finish_cap).as_secs_f64(),
            dir.display()
        );
        Err(Error::backend(
            "mlflow",
            format!(
                "{left} request(s) not delivered in time; kept in `{}`; replay with `{command}`",
                dir.display()
            ),
        ))
    }

    fn run_info(&self) -> Option<RunInfo> {
        let mut info = lock(&self.control.run_info).clone().unwrap_or_default();
        info.refused = lock(&self.refused).clone();
        if self.undelivered.is_some() {
            info.path = Some(self.spool_dir());
            info.command = Some(self.meta.sync_command());
        }
        (info != RunInfo::default()).then_some(info)
    }
}

impl Drop for MlflowBackend {
    fn drop(&mut self) {
        // The worker always finishes first; this only stops a delivery thread that outlives
        // an unfinished backend.
        self.control.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_deadline_is_inside_the_trackers_cap() {
        assert_eq!(
            own_deadline(Duration::from_secs(30)),
            Duration::from_secs(27)
        );
        assert_eq!(own_deadline(Duration::from_secs(3)), Duration::from_secs(2));
        assert_eq!(own_deadline(Duration::from_millis(800)), Duration::ZERO);
    }
}
