//! `ezpz sync <outdir>`: delivers what remote backends left in a run's spool (after a
//! `finish` that timed out, or a process killed with `kill -9`) into the same run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Result;

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

/// Replays every spool under `<outdir>/spool/`. An output directory without spools gives
/// an empty list (nothing was left behind).
///
/// # Errors
/// A spool that another live process still writes, an unreadable spool, or one whose
/// backend is not compiled in.
pub fn sync(outdir: &Path, options: &SyncOptions) -> Result<Vec<SyncReport>> {
    let root = outdir.join("spool");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::Error::io("cannot read", &root, e)),
    };
    dirs.sort();
    let mut reports = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        // `mlflow`, or `mlflow-<stamp>` for data an earlier run in the same outdir left.
        let backend = name.split('-').next().unwrap_or_default();
        reports.push(replay(backend, &dir, options)?);
    }
    Ok(reports)
}

fn replay(backend: &str, dir: &Path, options: &SyncOptions) -> Result<SyncReport> {
    match backend {
        #[cfg(feature = "mlflow")]
        "mlflow" => crate::backends::mlflow::replay(dir, options),
        other => {
            let _ = options;
            Err(crate::Error::Invalid {
                what: "spool",
                message: format!(
                    "`{}` belongs to backend `{other}`, which this build cannot replay",
                    dir.display()
                ),
            })
        }
    }
}
