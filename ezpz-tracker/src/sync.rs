//! `ezpz sync <outdir>`: delivers what remote backends left in a run's spool (after a
//! `finish` that timed out, or a process killed with `kill -9`) into the same run.

use std::path::{Path, PathBuf};

use crate::Result;

pub use crate::spool_replay::{SyncOptions, SyncReport};

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
