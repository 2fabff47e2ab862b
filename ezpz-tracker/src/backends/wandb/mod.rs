//! `WandbBackend`: Weights & Biases runs without the Python client.
//!
//! Every run writes W&B's own transaction log, `<outdir>/wandb/offline-run-<stamp>-<id>/
//! run-<id>.wandb` (`run-<stamp>-<id>/` online): a LevelDB-style log (`log.rs`) of protobuf
//! records (`proto.rs`) — the run first, then history rows, config and summary updates, files,
//! and the exit. `wandb sync <dir>` uploads it; `wandb leet inspect` reads it.
//!
//! - **offline** (`WANDB_MODE=offline`, or `dryrun`): only the log; the `wandb sync` command
//!   is printed at finish and returned by `run_info()`.
//! - **online** (an API key from `WANDB_API_KEY` or `~/.netrc`): the log, written first,
//!   always; streaming to `WANDB_BASE_URL` runs on its own thread (`ezpz-wandb-tx`,
//!   `online/`) from the lines already written, so a slow, hung or lost server never holds
//!   up the log. A server that is lost for good leaves the complete log for `wandb sync`.
//! - **disabled** (`WANDB_MODE=disabled`, any `WANDB_DISABLED`): nothing.
//!
//! Steps: W&B drops rows whose step goes backwards; here such a row keeps the next free
//! `_step` and carries the caller's step as a `step` key, with one warning.

mod auth;

pub use auth::logged_in;
mod history;
mod log;
mod media;
mod metrics;
mod mode;
mod online;
mod options;
mod proto;
mod run;
mod system;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

use crate::backend::{
    Artifacts, Backend, BackendContext, HistogramRecord, ImageRecord, Record, RunInfo, RunStatus,
    Table,
};
use crate::env::{self, var};
use crate::run_settings::split_tags;
use crate::{Error, MetricDefinition, Result};

use self::history::{value_json, Row, Steps};
use self::media::Media;
use self::metrics::{Definitions, WANDB_CONFIG_KEY};
use self::online::{Endpoint, OnlineHandle};
use self::run::{new_run_id, RunIdent, RunLog};

pub use self::mode::{resolve_mode, WandbMode};
pub use self::options::WandbOptions;

/// The public W&B server (used when `WANDB_BASE_URL` is unset).
pub const DEFAULT_BASE_URL: &str = "https://api.wandb.ai";
/// How long an online server may keep failing before streaming stops (the log keeps all).
pub const DEFAULT_OUTAGE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// How long the first row of a run with a given id (`WANDB_RUN_ID`: maybe a resumed run)
/// waits for the server to say how many history lines it has; then it goes on without.
const RESUME_WAIT: Duration = Duration::from_secs(5);

/// Writes W&B runs: always the local `.wandb` log, online also to the server. See the
/// [module docs](self).
#[derive(Debug)]
pub struct WandbBackend {
    active: Option<Box<Active>>,
}

#[derive(Debug)]
struct Active {
    mode: WandbMode,
    ident: RunIdent,
    run: RunLog,
    steps: Steps,
    rows: u64,
    /// Media logged for the next row (W&B shows media at a step, like metrics).
    pending_media: Vec<Media>,
    pending_media_step: u64,
    config: Map<String, Json>,
    definitions: Definitions,
    online: Option<OnlineHandle>,
    /// The run id was given (`WANDB_RUN_ID`): the run may be resumed.
    given_id: bool,
    lost_warned: bool,
    finish_timeout: Duration,
    finished: bool,
}

impl WandbBackend {
    /// A backend that does nothing (disabled mode, ranks other than 0, no credentials).
    pub fn disabled() -> Self {
        WandbBackend { active: None }
    }

    /// Starts a run: resolves the mode, creates the run directory and writes the `run`
    /// record. No network here: an online run connects from its own thread.
    ///
    /// Disabled mode, a rank other than 0, or online mode without an API key (one warning
    /// saying how to log in or go offline) give a backend that does nothing.
    ///
    /// # Errors
    /// An invalid mode name, or a run directory that cannot be written.
    pub fn start(ctx: &BackendContext, opts: WandbOptions) -> Result<Self> {
        if !ctx.rank.is_main() {
            return Ok(Self::disabled());
        }
        let mode = resolve_mode(opts.mode.as_deref())?;
        if mode == WandbMode::Disabled {
            return Ok(Self::disabled());
        }
        let base_url = opts
            .base_url
            .clone()
            .or_else(|| var(env::WANDB_BASE_URL))
            .unwrap_or_else(|| DEFAULT_BASE_URL.into())
            .trim_end_matches('/')
            .to_string();
        let endpoint = if mode.is_online() {
            let Some(api_key) = opts.api_key.clone().or_else(|| auth::api_key(&base_url)) else {
                crate::warn!(
                    "ezpz: W&B is not logged in, so the wandb backend is off for this run: set \
                     {} (or run `wandb login`), or set {}=offline to write a run that `wandb \
                     sync` uploads later",
                    env::WANDB_API_KEY,
                    env::WANDB_MODE
                );
                return Ok(Self::disabled());
            };
            Some(Endpoint {
                base_url,
                api_key,
                outage_limit: opts.outage_limit.unwrap_or(DEFAULT_OUTAGE_LIMIT),
            })
        } else {
            None
        };
        let given_id = opts.run_id.clone().or_else(|| var(env::WANDB_RUN_ID));
        // Each setting: these options, else W&B's own variable, else the tracker's.
        let settings = &ctx.settings;
        let ident = RunIdent {
            run_id: given_id.clone().unwrap_or_else(new_run_id),
            project: opts.project.unwrap_or_else(|| ctx.project.clone()),
            entity: opts
                .entity
                .or_else(|| var(env::WANDB_ENTITY))
                .or_else(|| settings.entity.clone()),
            display_name: opts
                .display_name
                .or_else(|| var(env::WANDB_NAME))
                .unwrap_or_else(|| settings.run_name.clone()),
            tags: opts
                .tags
                .or_else(|| var(env::WANDB_TAGS).map(|t| split_tags(&t)))
                .unwrap_or_else(|| settings.tags.clone()),
            notes: opts
                .notes
                .or_else(|| var(env::WANDB_NOTES))
                .or_else(|| settings.notes.clone()),
            group: opts
                .group
                .or_else(|| var(env::WANDB_RUN_GROUP))
                .or_else(|| settings.group.clone()),
            job_type: opts
                .job_type
                .or_else(|| var(env::WANDB_JOB_TYPE))
                .or_else(|| settings.job_type.clone()),
            host: ctx.rank.hostname.clone(),
            start_time: ctx.start_time,
        };
        // System fields first, the caller's configuration over them (at the top level).
        let mut config = system::system_config(&ctx.rank, ctx.start_time);
        if let Some(Json::Object(user)) = &ctx.config {
            for (k, v) in user {
                config.insert(k.clone(), scrubbed(v));
            }
        }
        let run = RunLog::create(&ctx.outdir, &ident, mode.is_online(), &config)?;
        let online = endpoint.map(|ep| {
            let mut o = OnlineHandle::start(ep, ident.clone(), run.files_dir().to_path_buf());
            o.set_config(wandb_config(&config));
            o
        });
        // 80 % of the tracker's cap (`EZPZ_FINISH_TIMEOUT`, already parsed and capped).
        let finish_timeout = env::clamp_wait(
            opts.finish_timeout
                .unwrap_or_else(|| ctx.finish_timeout.mul_f64(0.8)),
        );
        Ok(WandbBackend {
            active: Some(Box::new(Active {
                mode,
                ident,
                run,
                steps: Steps::default(),
                rows: 0,
                pending_media: Vec::new(),
                pending_media_step: 0,
                config,
                definitions: Definitions::default(),
                online,
                given_id: given_id.is_some(),
                lost_warned: false,
                finish_timeout,
                finished: false,
            })),
        })
    }

    /// The registry constructor: [`start`](Self::start) with everything from the environment.
    ///
    /// # Errors
    /// See [`start`](Self::start).
    pub fn from_context(ctx: &BackendContext) -> Result<Box<dyn Backend>> {
        Ok(Box::new(Self::start(ctx, WandbOptions::new())?))
    }

    /// The mode the run uses (`None` when the backend does nothing).
    pub fn mode(&self) -> Option<WandbMode> {
        self.active.as_ref().map(|a| a.mode)
    }

    /// The run directory (what `wandb sync` takes).
    pub fn run_dir(&self) -> Option<PathBuf> {
        self.active.as_ref().map(|a| a.run.dir().to_path_buf())
    }

    fn live(&mut self) -> Option<&mut Active> {
        self.active.as_deref_mut().filter(|a| !a.finished)
    }
}

/// `v` with every known secret value (`WANDB_API_KEY`, MLflow's credentials) in its strings
/// replaced by `***`: a configuration is uploaded and shown.
fn scrubbed(v: &Json) -> Json {
    let secrets = crate::report::known_secrets();
    fn walk(v: &mut Json, secrets: &[String]) {
        match v {
            Json::String(s) => *s = crate::report::redact_values(s, secrets),
            Json::Array(items) => items.iter_mut().for_each(|i| walk(i, secrets)),
            Json::Object(map) => map.values_mut().for_each(|i| walk(i, secrets)),
            _ => {}
        }
    }
    let mut v = v.clone();
    if !secrets.is_empty() {
        walk(&mut v, &secrets);
    }
    v
}

/// W&B's config JSON string: `{"key": {"value": v}}`.
fn wandb_config(config: &Map<String, Json>) -> String {
    let wrapped: Map<String, Json> = config
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!({ "value": v })))
        .collect();
    Json::Object(wrapped).to_string()
}

impl Active {
    fn sync_command(&self) -> String {
        let dir = self.run.dir().display();
        if self.mode.is_online() {
            // `wandb sync` skips run directories made online unless told otherwise.
            format!("wandb sync --include-online {dir}")
        } else {
            format!("wandb sync {dir}")
        }
    }

    /// Before the first row of a run whose id was given (it may be resumed), waits a
    /// bounded time for the server's history length, so the steps continue after it.
    fn connect_early(&mut self) {
        if self.rows > 0 {
            return;
        }
        if let Some(o) = &mut self.online {
            if self.given_id {
                o.wait_settled(RESUME_WAIT);
            }
            if let Some(n) = o.resumed_lines() {
                if self.steps.next() < n {
                    self.steps = Steps::starting_at(n);
                }
            }
        }
        self.check_lost();
    }

    fn check_lost(&mut self) {
        let Some(why) = self.online.as_ref().and_then(OnlineHandle::lost) else {
            return;
        };
        if !self.lost_warned {
            self.lost_warned = true;
            crate::warn!(
                "ezpz: W&B streaming stopped: {why}; nothing is lost: the run is complete in \
                 `{}`; upload it with `{}`",
                self.run.dir().display(),
                self.sync_command()
            );
        }
    }

    fn write_row(&mut self, step: u64, timestamp: f64, mut row: Row) -> Result<()> {
        for m in self.pending_media.drain(..) {
            row.set(&m.key, m.json);
        }
        let (placed, moved) = self.steps.place(step);
        if let Some(original) = moved {
            row.set("step", original.to_string());
        }
        row.stamp(placed, timestamp, timestamp - self.ident.start_time);
        self.run.history(&row)?;
        self.rows += 1;
        if let Some(o) = &mut self.online {
            o.push_line(row.to_line());
        }
        Ok(())
    }

    fn add_media(&mut self, media: Media, step: u64) -> Result<()> {
        self.run.files(&media.files)?;
        if let Some(o) = &mut self.online {
            o.upload(&media.files);
        }
        self.pending_media.retain(|m| m.key != media.key);
        self.pending_media.push(media);
        self.pending_media_step = step;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let summary_changed = self.run.summary_dirty();
        self.run.flush()?;
        if let Some(o) = &mut self.online {
            if summary_changed {
                o.set_summary(self.run.summary_json());
            }
        }
        self.check_lost();
        Ok(())
    }
}

/// Metric definitions (`metrics.rs`).
impl Active {
    /// A `metric` record in the log; online, the definitions in the configuration's
    /// `_wandb.m`, where the real client puts them (the log's configuration is left alone:
    /// `wandb sync` makes `_wandb.m` from the records).
    fn define_metric(&mut self, definition: &MetricDefinition) -> Result<()> {
        let Some(record) = self.definitions.define(definition) else {
            return Ok(());
        };
        self.run.metric(record)?;
        self.config
            .insert(WANDB_CONFIG_KEY.into(), self.definitions.config_entry());
        if let Some(o) = &mut self.online {
            o.set_config(wandb_config(&self.config));
        }
        Ok(())
    }

    /// The summary of each defined key in `record`: its last and best values.
    fn summarize_defined(&mut self, record: &Record) {
        if self.definitions.is_empty() {
            return;
        }
        for (k, v) in record.metrics() {
            if let Some(json) = self.definitions.summary(k, &v) {
                self.run.set_summary(k, &json);
            }
        }
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Backend for WandbBackend {
    fn name(&self) -> &str {
        "wandb"
    }

    fn log(&mut self, record: &Record) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        a.connect_early();
        let mut row = Row::default();
        for (k, v) in record.metrics() {
            row.set(k, value_json(&v));
        }
        a.write_row(record.step, record.timestamp, row)?;
        a.summarize_defined(record);
        Ok(())
    }

    fn log_config(&mut self, config: &Json) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        let Json::Object(update) = config else {
            return Ok(());
        };
        let changed: Map<String, Json> = update
            .iter()
            .map(|(k, v)| (k, scrubbed(v)))
            .filter(|(k, v)| a.config.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        for (k, v) in &changed {
            a.config.insert(k.clone(), v.clone());
        }
        a.run.config(changed.iter())?;
        if let Some(o) = &mut a.online {
            o.set_config(wandb_config(&a.config));
        }
        a.connect_early();
        Ok(())
    }

    fn define_metric(&mut self, definition: &MetricDefinition) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        a.define_metric(definition)
    }

    fn log_table(&mut self, table: &Table) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        let m = media::table(a.run.files_dir(), table)?;
        a.add_media(m, table.step)
    }

    fn log_image(&mut self, image: &ImageRecord) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        let encoded = image.encode_png()?;
        let m = media::image(
            a.run.files_dir(),
            &image.key,
            image.step,
            &encoded,
            image.caption.as_deref(),
        )?;
        a.add_media(m, image.step)
    }

    fn log_histogram(&mut self, histogram: &HistogramRecord) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        match media::histogram(&histogram.key, &histogram.data.bins()) {
            Ok(m) => a.add_media(m, histogram.step),
            Err(problem) => Err(Error::Invalid {
                what: "histogram",
                message: format!("`{}` {problem}; not logged", histogram.key),
            }),
        }
    }

    fn log_artifacts(&mut self, artifacts: &Artifacts) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        let (files, result) = media::artifacts(a.run.files_dir(), artifacts);
        a.run.files(&files)?;
        if let Some(o) = &mut a.online {
            o.upload(&files);
        }
        result
    }

    fn flush(&mut self) -> Result<()> {
        match self.live() {
            Some(a) => a.flush(),
            None => Ok(()),
        }
    }

    fn finish(&mut self, status: RunStatus) -> Result<()> {
        let Some(a) = self.live() else { return Ok(()) };
        a.finished = true;
        if !a.pending_media.is_empty() {
            let step = a.pending_media_step;
            a.write_row(step, now(), Row::default())?;
        }
        let runtime = now() - a.ident.start_time;
        a.run.exit(status.exit_code(), runtime)?;
        let deadline = Instant::now() + a.finish_timeout;
        if let Some(o) = &mut a.online {
            o.set_summary(a.run.summary_json());
            let _ = o.finish(status.exit_code(), deadline);
            a.check_lost();
        } else {
            // W&B's own client prints this at the end of an offline run.
            eprintln!(
                "wandb: the run is saved offline in {}\nwandb: upload it with: {}",
                a.run.dir().display(),
                a.sync_command()
            );
        }
        Ok(())
    }

    fn run_info(&self) -> Option<RunInfo> {
        let a = self.active.as_ref()?;
        let online = a.online.as_ref();
        let needs_sync =
            online.is_none_or(|o| o.lost().is_some() || (a.finished && !o.is_complete()));
        Some(RunInfo {
            id: Some(a.ident.run_id.clone()),
            url: online.and_then(|o| o.url()),
            path: Some(a.run.dir().to_path_buf()),
            command: needs_sync.then(|| a.sync_command()),
            ..RunInfo::default()
        })
    }
}
