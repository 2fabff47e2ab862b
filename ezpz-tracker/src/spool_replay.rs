//! What replaying a spool takes and gives: shared by `ezpz sync` (the `sync` module) and the
//! backends that replay their own spools, so that neither imports the other's module.

use std::path::PathBuf;
use std::time::Duration;

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The tracking server, when it moved or its URI carries credentials (the spool stores
    /// the URI without them); else the one the run used.
    pub tracking_uri: Option<String>,
    /// How long to keep retrying a server that does not answer before giving up.
    pub timeout: Duration,
    /// Replay even a spool whose writer may still be alive on another host (its job has
    /// ended, but this host cannot tell).
    pub force: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            tracking_uri: None,
            timeout: Duration::from_secs(60),
            force: false,
        }
    }
}

/// What a replay did for one spool.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// The backend whose spool it was (`mlflow`).
    pub backend: String,
    /// The spool directory (removed when everything was delivered).
    pub spool: PathBuf,
    /// Where the run can be seen.
    pub run_url: Option<String>,
    /// Requests delivered now.
    pub delivered: u64,
    /// Requests still in the spool.
    pub remaining: u64,
    /// Why the last attempt failed, when something remains.
    pub last_failure: Option<String>,
    /// Entries the server refused for good, per key (not delivered, not kept).
    pub refused: std::collections::BTreeMap<String, u64>,
}

impl SyncReport {
    /// Whether nothing is left.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }
}
