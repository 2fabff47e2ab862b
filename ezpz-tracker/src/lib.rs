//! # ezpz-tracker
//!
//! Multi-backend, rank-aware experiment tracking for (distributed) training: one
//! [`Tracker`] fans metrics, configuration, tables, images, histograms and artifacts out to
//! CSV, JSONL, TensorBoard, MLflow and Weights & Biases — a Rust port of `ezpz.tracker`.
//!
//! ## Quick start
//!
//! ```no_run
//! # fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use ezpz_tracker::TrackerBuilder;
//!
//! let tracker = TrackerBuilder::new()
//!     .project("my-project")
//!     .backends("csv,jsonl")          // or EZPZ_TRACKER_BACKENDS, or the defaults
//!     .outdir("outputs/run-001")
//!     .config(&serde_json::json!({"lr": 1e-4, "model": {"depth": 6}}))
//!     .build()?;
//! for step in 0..100u64 {
//!     let loss = 1.0 / (1.0 + step as f64);
//!     tracker.log([("train/loss", loss), ("train/lr", 1e-4)]);
//! }
//! tracker.log_table("predictions", ["id", "label"], vec![vec![0, 3], vec![1, 7]]);
//! let summary = tracker.finish()?;
//! println!("wrote {}", summary.outdir.unwrap().display());
//! # Ok(()) }
//! ```
//!
//! The original's one-call form is [`setup_tracker`]; it never fails (problems are warnings).
//!
//! The run's name, tags, notes, group, job type, W&B entity and MLflow experiment are set
//! once — `TrackerBuilder::run_name`, `tags`, `notes`, `group`, `job_type`, `entity`,
//! `experiment`, else the `EZPZ_*` variables — and reach every backend that has the concept
//! ([`RunSettings`], [`run_settings`]).
//!
//! ## Backends
//!
//! | name | writes | notes |
//! |---|---|---|
//! | `csv` | `metrics.csv`, `config.json`, `<table>.csv`, `media/*.png`, `artifacts/<label>/` | appends rows; the header grows with new keys ([`CsvBackend`]) |
//! | `jsonl` | `metrics.jsonl` | one object per step ([`JsonlBackend`]) |
//! | `memory` | nothing | a test double ([`MemoryBackend`]) |
//! | `tensorboard` | `tensorboard/events.out.tfevents.<time>.<host>.<pid>.<n>` | scalars (one event per step), config and tables as text, images, histograms; open with `tensorboard --logdir <outdir>/tensorboard` (`TensorBoardBackend`, feature `tensorboard`) |
//! | `wandb` | `wandb/offline-run-<stamp>-<id>/run-<id>.wandb` (+ `files/media/`); online also streams to the server | W&B's own transaction log, so `wandb sync` uploads it; `WANDB_MODE` `online`/`offline`/`disabled`/`shared`/`dryrun`; feature `wandb` ([`WandbBackend`]) |
//! | `mlflow` | an MLflow run over REST: metrics, params (`config.*`, `ezpz.*`), tags, tables/images/files as artifacts | feature `mlflow` (default); `MLFLOW_TRACKING_URI`; a durable spool under `<outdir>/spool/mlflow/`, replayed by `ezpz sync <outdir>` ([`MlflowBackend`]) |
//!
//! Default backends (nothing named anywhere): `csv`, `jsonl`, `tensorboard` where compiled
//! in, plus `mlflow` when `MLFLOW_TRACKING_URI` is set, plus `wandb` when the user is logged
//! in (`WANDB_API_KEY`, or the `~/.netrc` entry `wandb login` writes) or
//! `WANDB_MODE=offline`. A custom backend implements [`Backend`] (four required methods:
//! `name`, `log`, `log_config`, `finish`) and is attached with
//! [`TrackerBuilder::add_backend`] or registered by name with [`register_backend`].
//!
//! ### MLflow
//!
//! The `mlflow` backend talks to a tracking server's REST API from its own threads. Every
//! request is appended to a spool in the run's output directory before it is sent and leaves
//! it only once the server acknowledged it, so a server that is down at start, restarts, or
//! answers 5xx, an HTML page or nothing at all never costs a point, and a retried request is
//! never stored twice. Only MLflow's own refusal of an entry (a name or step it cannot
//! store) is final, for that entry alone: it is counted per key in [`Summary::refused`], and
//! the rest of its batch is delivered. A request that keeps failing is set aside so it never
//! holds up the points behind it. `finish` waits at most `EZPZ_FINISH_TIMEOUT`; what is left
//! stays in the spool, and `ezpz sync <outdir>` (the `ezpz` binary of this crate) delivers it
//! into the same run, also after a `kill -9`. Settings in code: [`MlflowOptions`];
//! credentials as MLflow's client (`MLFLOW_TRACKING_USERNAME`/`PASSWORD`,
//! `MLFLOW_TRACKING_TOKEN`) or `AMSC_API_KEY`, completed (never overridden) from `.env` in
//! the working directory and `~/.amsc.env`, and sent only to the tracking server's own
//! origin.
//! ## End-of-run report
//!
//! At [`Tracker::finish`] on rank 0, when the `jsonl` backend is attached, the tracker reads
//! `metrics.jsonl` back (streaming; memory bounded by the number of metrics, not steps) and
//! writes into the run directory `report.md` (first `plots/overview.png`, the key series in
//! one grid; then run identity, backend links and commands, configuration, a
//! last/min/max/mean overview with cross-rank ±std, one section per metric group),
//! `report.html` (the same page with its images inlined), `plots/*.png` (per-parameter norms
//! as two heatmaps, one plot per other metric: raw series, cross-rank mean with ±std and
//! min–max bands when aggregates exist), `run_info.json` and `report.json` (what it wrote,
//! how the run ended); it then logs the history as the `training_history` table and the
//! outputs as artifacts, so they reach every backend. Plots take any `f64`. See
//! [`report`]. [`TrackerBuilder::report`]`(false)` turns it off; `ezpz report <outdir>`
//! rebuilds it from the files. The pages and plots need the `report` feature (on by
//! default). The console line of the original is
//! [`report::format_compact`]:
//!
//! ```
//! use ezpz_tracker::{metrics, report::format_compact};
//! let line = format_compact(metrics! {
//!     "train/iter" => 180, "train/loss" => 0.078, "train/loss/std" => 0.026,
//!     "train/loss/mean" => 0.08, "train/lr" => 0.000059,
//! });
//! assert_eq!(line, "iter=180   loss=0.078000(±0.026) lr=0.000059");
//! ```
//!
//! ## Output directory
//!
//! Files go directly into one directory per run: [`TrackerBuilder::outdir`], else a fresh
//! `outputs/<project>/<UTC time to the millisecond>` (`2026-12-02-044356.123`), created with
//! `create_dir` so that processes started together (an array job, a sweep; on one host or
//! many sharing a file system) never share one: the later ones get `…-2`, `…-3`. A run holds
//! its directory's lock, `ezpz.lock` (made with `create_new`, deleted when the run finishes),
//! so processes started together on one explicit outdir never share it either. A directory
//! that already holds a run (rows in `metrics.csv`/`metrics.jsonl`, a `config.json`,
//! `report.md` or `run_info.json`, or another run's lock) is never truncated: with
//! [`TrackerBuilder::resume`]`(true)` or `EZPZ_RESUME=1` the run continues in it (CSV, JSONL
//! and TensorBoard append; the CSV header is kept, and widened for new keys) once it holds
//! the lock (a killed run's lock is taken over when it was held from this host; of several
//! processes resuming at once, the others get [`Error::RunInUse`]); otherwise
//! [`TrackerBuilder::build`] refuses it with [`Error::RunExists`], and [`setup_tracker`]
//! (which never fails) writes to a fresh sibling `<outdir>-2` with a warning. Names of tables, images, histograms and artifacts
//! become one plain file name each (`/`, `..`, NUL and the like cannot leave the directory)
//! and never take the tracker's own files: `log_table("metrics", …)` writes `_metrics.csv`.
//! `log_artifacts` copies a folder with its symbolic links as links, and without the run
//! directory when the folder holds it.
//!
//! ## Distributed (MPI)
//!
//! The tracker is rank-aware: only rank 0 creates files, threads or connections; other ranks
//! keep nothing. With an [`Aggregator`] attached, every logged scalar also gets `key/mean`,
//! `key/min`, `key/max`, `key/std` (population std) across ranks, on rank 0. Rank, local rank
//! and world size come from the launcher's environment ([`RankInfo::from_env`]) unless given.
//!
//! With the `mpi` feature, `mpi::Mpi::init()` initialises MPI once for the whole program
//! (finalised when the handle and everything made from it are dropped) and
//! `TrackerBuilder::mpi(&handle)` attaches rank, world size and an `mpi::MpiAggregator`;
//! the same handle serves the training code (`ezpz-burn`'s data parallelism):
//!
//! ```no_run
//! # #[cfg(feature = "mpi")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // cargo build --features mpi; mpirun -np 4 target/debug/my-trainer
//! # use ezpz_tracker::TrackerBuilder;
//! # let loss = 0.5;
//! let mpi = ezpz_tracker::mpi::Mpi::init()?;
//! let tracker = TrackerBuilder::new().backends("csv").mpi(&mpi).build()?;
//! tracker.log([("train/loss", loss)]);   // rank 0 also gets train/loss/{mean,min,max,std}
//! tracker.finish()?;                     // returns once every rank has finished
//! # Ok(()) }
//! # #[cfg(not(feature = "mpi"))]
//! # fn main() {}
//! ```
//!
//! Logging never waits for the other ranks and makes no MPI call: each rank's
//! `ezpz-aggregate` thread sends its new rows to rank 0 every 100 ms (two non-blocking
//! collectives), and rank 0 matches rows by step and key set, so ranks may log from several
//! threads in different orders, and even different numbers of rows. Rank 0's backends get
//! its rows in the order it logged them, aggregates appended, about one round later.
//! Statistics are computed in `f64` in two passes, so values near 123 880 with a spread of
//! 0.5 keep their exact std. Ranks that log different keys at a step get the union of keys
//! aggregated (each key over the ranks that logged it) and one warning; [`LocalGroup`] runs
//! ranks as threads of one process. Running under OpenMPI as root needs
//! `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`, and more ranks than cores
//! `OMPI_MCA_rmaps_base_oversubscribe=1` (see `docs/mpi.md`).
//!
//! ## Flushing and shutdown
//!
//! Logging calls return `()`: they convert values on the caller's thread and enqueue them for
//! each backend's worker thread (`ezpz-<name>`). A row goes over at once when logging is
//! occasional; a tight loop's rows travel in batches (at most 64 rows or 1 ms apart, the rest
//! handed over by the `ezpz-handoff` thread within 20 ms), and the workers hand written rows
//! back to the logging thread, which frees or reuses them. No logging call waits for a
//! backend more than [`MAX_CALLER_WAIT`] (10 ms), and never while a lock is held: a backend
//! over its queue capacity that is still writing slows the caller by at most that; one that
//! wrote nothing for 100 ms (stuck) loses what it cannot take — counted per backend, warned
//! once, in the [`Summary`] — and the other backends get every row
//! ([`TrackerBuilder::queue_capacity`], [`TrackerBuilder::enqueue_timeout`]). A failing
//! backend warns once per cause and never stops the others; a panicking one is caught,
//! counted and disabled. Workers flush at least once a second.
//!
//! [`Tracker::flush`] and [`Tracker::finish`] are the only fallible calls. Both return within
//! one deadline, `EZPZ_FINISH_TIMEOUT` (default 30 s), whatever a backend, the report or
//! another rank does: `finish` gives at most a third of it to the other ranks (then rank 0
//! writes what it has and warns which ranks were missing), half of the rest to the finish
//! hooks (the report), and the rest to the backends. A failed `finish` still returns the
//! run's [`Summary`] inside its error ([`Error::summary`]), and a second call returns the
//! same result. Dropping the last clone of a tracker finishes it.
//!
//! Warnings go through `tracing` when the application installed a subscriber; without one,
//! each is printed once on stderr as `ezpz: …` ([`warning`]).
//!
//! ## Cargo features
//!
//! Backends beyond CSV/JSONL/memory are features, on by default where they exist: see the
//! workspace README. `tensorboard` (on) adds the TensorBoard backend (`prost`, `crc32c`).
//! `wandb` (on) adds the W&B backend (`prost`, `crc32fast`, `sha2`, `reqwest` with rustls).
//! `mlflow` (on) adds the MLflow backend and `ezpz sync` (`reqwest` with rustls).
//! `cli` (on) builds the `ezpz` command (`ls`, `show`, `compare`, `tail`, `report`, `sync`;
//! `clap`).
//! `report` (on) draws the end-of-run report's pages: `report.md`, `report.html`,
//! `plots/*.png`, `ezpz report` and the plots of `ezpz compare` (`plotters` with a bundled
//! font, `pulldown-cmark`, `base64`). Without it a run still writes `run_info.json` and
//! `report.json` (how it ended, which `ezpz ls` shows) and logs the `training_history`
//! table; [`TrackerBuilder::report`]`(true)` then gives one warning saying the pages are not
//! written, `ezpz report` exits 1 saying why, and `ezpz compare` writes its tables only.
//! `mpi` (off) adds the [`mpi`](crate#distributed-mpi) module: the MPI handle and cross-rank
//! aggregation (needs an MPI library such as OpenMPI to build).
//!
//! ## Environment variables
//!
//! Every variable is a documented constant in [`env`](mod@env): `EZPZ_TRACKER_BACKENDS`,
//! `EZPZ_TRACKERS`, `EZPZ_FINISH_TIMEOUT` (seconds; capped at 24 h, a negative or unparsable
//! value is ignored with a warning), `EZPZ_RESUME`, `WB_PROJECT`/`WANDB_PROJECT`/`WB_PROJECT_NAME`,
//! the run settings' `EZPZ_RUN_NAME`, `EZPZ_TAGS`, `EZPZ_NOTES`, `EZPZ_RUN_GROUP`,
//! `EZPZ_JOB_TYPE` (in [`run_settings`]),
//! the rank variables of MPI launchers and schedulers, `EZPZ_MPI_THREADING`, and each
//! backend's own (W&B:
//! `WANDB_MODE`, `WANDB_DISABLED`, `WANDB_API_KEY`, `WANDB_BASE_URL`, `WANDB_ENTITY`,
//! `WANDB_RUN_ID`, `WANDB_NAME`, `WANDB_TAGS`, `WANDB_NOTES`, `WANDB_RUN_GROUP`,
//! `WANDB_JOB_TYPE`; MLflow: `MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`,
//! `MLFLOW_EXPERIMENT_ID`, `MLFLOW_RUN_ID`, the credential variables above,
//! `MLFLOW_TRACKING_INSECURE_TLS`, `MLFLOW_TRACKING_SERVER_CERT_PATH`,
//! `MLFLOW_HTTP_REQUEST_TIMEOUT`).
#![warn(missing_docs)]

mod aggregate;
mod backend;
pub mod backends;
pub mod config;
mod definition;
mod dispatch;
pub mod env;
mod error;
mod histogram;
mod keys;
#[cfg(any(feature = "mpi", test))]
pub mod mpi;
mod outdir;
mod pending;
mod record;
mod registry;
pub mod report;
#[cfg(any(feature = "wandb", feature = "mlflow"))]
mod retry;
mod run_lock;
pub mod run_settings;
mod setup;
pub mod spool;
mod spool_replay;
mod summary;
pub mod sync;
mod tracker;
mod user_paths;
mod value;
#[doc(hidden)]
pub mod warn;

pub use aggregate::{is_aggregate_key, Aggregator, Exchange, LocalAggregator, LocalGroup, Stats};
pub use backend::{
    Artifacts, Backend, BackendContext, Constructor, EncodedImage, HistogramRecord, ImageRecord,
    ImageSource, RunInfo, RunStatus, Table,
};
pub use backends::csv::CsvBackend;
pub use backends::jsonl::JsonlBackend;
pub use backends::memory::{MemoryBackend, MemorySnapshot};
#[cfg(feature = "mlflow")]
pub use backends::mlflow::{MlflowBackend, MlflowOptions};
#[cfg(feature = "tensorboard")]
pub use backends::tensorboard::TensorBoardBackend;
#[cfg(feature = "wandb")]
pub use backends::wandb::{WandbBackend, WandbMode, WandbOptions};
pub use definition::{Goal, MetricDefinition};
pub use dispatch::MAX_CALLER_WAIT;
pub use env::RankInfo;
pub use error::{Error, Result};
pub use histogram::{HistogramBins, HistogramData, HISTOGRAM_BINS};
pub use record::{Keys, Record};
pub use registry::{register_backend, registered_backends, unregister_backend};
pub use run_settings::RunSettings;
pub use setup::{
    default_backend_names, resolve_backend_names, setup_tracker, TrackerBuilder,
    DEFAULT_ENQUEUE_TIMEOUT, DEFAULT_FINISH_TIMEOUT, DEFAULT_QUEUE_CAPACITY,
};
pub use tracker::{
    BackendInfo, BackendSummary, FinishHook, Summary, Tracker, WeakTracker, MAX_STEP,
};
pub use value::{send_metric, IntoMetrics, Metric, MetricSink, Value};
pub use warn::warning;
