//! The MLflow backend: REST (`/api/2.0/mlflow/...`) to a tracking server, through a durable
//! spool, so a point logged is a point delivered — once.
//!
//! | file | concern |
//! |---|---|
//! | `backend.rs` | [`MlflowBackend`]: records → spooled requests, finish |
//! | `options.rs` | [`MlflowOptions`]: settings in code |
//! | `sender.rs` | delivery: order, retries, acknowledgement, failure classes |
//! | `client.rs` | the HTTP calls and how failures are classified |
//! | `batch.rs` | `log-batch` bodies within the server's limits |
//! | `keys.rs` | names MLflow accepts, `key/local` beside aggregates |
//! | `not_word.rs` | characters Rust calls alphanumeric that MLflow refuses |
//! | `params.rs` | config → params, write-once rules, `ezpz.*` system params |
//! | `run.rs` | experiment, run creation/attachment, banner, URL, final status |
//! | `artifacts.rs` | uploads through the `mlflow-artifacts` proxy |
//! | `auth.rs` | credentials, TLS, secret scrubbing |
//! | `replay.rs` | `ezpz sync` |
//!
//! # Exactly once
//! A request is appended to the spool before it is sent and acknowledged in the spool only
//! after the server answered 2xx, so nothing is lost to a crash, an outage or a finish that
//! ran out of time. A request applied by the server whose answer was lost is sent again:
//! metric bodies are deterministic and the server stores a metric once per (name, step,
//! timestamp, value), params are write-once with the same value, tags and uploads overwrite,
//! and runs are found by their `ezpz.run_uid` tag before a second creation — so a repeat
//! changes nothing.

mod artifacts;
mod auth;
mod backend;
mod batch;
mod client;
mod keys;
mod not_word;
mod options;
mod params;
mod replay;
mod run;
mod sender;

pub use backend::{MlflowBackend, METRIC_TAG_PREFIX};
pub use options::MlflowOptions;
pub(crate) use replay::replay;
