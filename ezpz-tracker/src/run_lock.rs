//! The lock a run holds on its outdir while it writes there: the file `ezpz.lock`, made with
//! `create_new` (`O_CREAT | O_EXCL`), so of several processes that try at once exactly one
//! gets it, also on a file system shared by several hosts (NFSv3 and later, Lustre, GPFS;
//! `flock` is not honoured on all of them). It holds the holder's host, pid and start time,
//! and is deleted when the run finishes (after its backends) or when building the tracker
//! fails.
//!
//! A lock left by a run that was killed names a process that is gone. A run that resumes
//! takes it over when that process ran on this host and no longer exists (one resuming
//! process wins: the takeover is itself a `create_new` of `ezpz.lock.<holder>`, kept until
//! the new holder finishes). A holder on another host cannot be checked from here: the lock
//! is then respected, and the error names the file to delete once that run is known to be
//! gone. A fresh (not resuming) run never takes a lock over: the directory holds a run.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::user_paths::file_stem;
use crate::{Error, Result};

/// The lock's file name in the outdir.
pub const LOCK_FILE: &str = "ezpz.lock";

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    /// When the lock was taken (ms since the Unix epoch).
    since_ms: i64,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            since_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// A file-name-safe name of this holder (distinct per process start).
    fn id(&self) -> String {
        file_stem(&format!("{}-{}-{}", self.host, self.pid, self.since_ms))
    }

    /// Whether this holder is known to be gone: it ran on this host and its process does
    /// not exist any more.
    fn is_gone(&self) -> bool {
        self.host == Holder::me().host && !process_exists(self.pid)
    }

    fn describe(&self) -> String {
        let since = chrono::DateTime::from_timestamp_millis(self.since_ms)
            .map(|t| t.format(" since %Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        format!("pid {} on host `{}`{since}", self.pid, self.host)
    }
}

#[cfg(target_os = "linux")]
fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Elsewhere a process is taken to be alive (a lock is never taken over wrongly).
#[cfg(not(target_os = "linux"))]
fn process_exists(_pid: u32) -> bool {
    true
}

/// A held lock; dropping it deletes the lock file (and the takeover mark, if any).
#[derive(Debug)]
pub(crate) struct RunLock {
    path: PathBuf,
    takeover: Option<PathBuf>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(mark) = &self.takeover {
            let _ = std::fs::remove_file(mark);
        }
    }
}

/// Why a lock was not taken: who holds it (described for an error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held(pub String);

impl RunLock {
    /// Takes the lock of `dir` (which exists); with `take_over_gone`, also one whose holder
    /// is known to be gone (see the module docs).
    ///
    /// # Errors
    /// The lock file cannot be created or read (not: it is held, that is `Ok(Err(_))`).
    pub(crate) fn take(
        dir: &Path,
        take_over_gone: bool,
    ) -> Result<std::result::Result<Self, Held>> {
        let path = dir.join(LOCK_FILE);
        let me = Holder::me();
        let mut holder = None;
        // A lock released between the try and the look is tried again (a few times).
        for _ in 0..3 {
            if create_with(&path, &me)? {
                return Ok(Ok(RunLock {
                    path,
                    takeover: None,
                }));
            }
            match std::fs::read(&path) {
                Ok(bytes) => {
                    holder = Some(serde_json::from_slice::<Holder>(&bytes).ok());
                    break;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot read", &path, e)),
            }
        }
        let holder = holder.flatten();
        // An unreadable lock is being written by its new holder (or damaged): held.
        let Some(holder) = holder else {
            return Ok(Err(Held(format!("`{LOCK_FILE}` is held"))));
        };
        if !take_over_gone || !holder.is_gone() {
            return Ok(Err(Held(holder.describe())));
        }
        let mark = dir.join(format!("{LOCK_FILE}.{}", holder.id()));
        if !create_with(&mark, &me)? {
            return Ok(Err(Held(format!(
                "{} (gone; another process is taking its lock over)",
                holder.describe()
            ))));
        }
        let temp = dir.join(format!("{LOCK_FILE}.{}.tmp", me.id()));
        std::fs::write(&temp, lock_text(&me))
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&mark);
                Error::io("cannot write", &path, e)
            })?;
        Ok(Ok(RunLock {
            path,
            takeover: Some(mark),
        }))
    }
}

fn lock_text(holder: &Holder) -> String {
    let mut text = serde_json::to_string(holder).unwrap_or_default();
    text.push('\n');
    text
}

/// Creates `path` with `create_new` and writes `holder` into it; `false` when it exists.
fn create_with(path: &Path, holder: &Holder) -> Result<bool> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut file) => {
            file.write_all(lock_text(holder).as_bytes())
                .map_err(|e| Error::io("cannot write", path, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("cannot create", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid of a process that has ended.
    fn gone_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn write_holder(dir: &Path, holder: &Holder) {
        std::fs::write(dir.join(LOCK_FILE), lock_text(holder)).unwrap();
    }

    #[test]
    fn one_taker_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::take(dir.path(), true).unwrap().unwrap();
        let held = RunLock::take(dir.path(), true).unwrap().unwrap_err();
        assert!(
            held.0.contains(&format!("pid {}", std::process::id())),
            "{held:?}"
        );
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        RunLock::take(dir.path(), false).unwrap().unwrap();
    }

    #[test]
    fn a_gone_holder_on_this_host_is_taken_over_once_and_only_when_resuming() {
        let dir = tempfile::tempdir().unwrap();
        let gone = Holder {
            pid: gone_pid(),
            ..Holder::me()
        };
        write_holder(dir.path(), &gone);
        assert!(RunLock::take(dir.path(), false).unwrap().is_err());
        let taken: Vec<_> = std::thread::scope(|s| {
            let takers: Vec<_> = (0..6)
                .map(|_| s.spawn(|| RunLock::take(dir.path(), true).unwrap()))
                .collect();
            takers.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(taken.iter().filter(|t| t.is_ok()).count(), 1);
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        let now: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(now.pid, std::process::id());
        drop(taken);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_holder_on_another_host_is_respected() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = Holder {
            host: format!("{}-elsewhere", Holder::me().host),
            pid: gone_pid(),
            since_ms: 0,
        };
        write_holder(dir.path(), &elsewhere);
        let held = RunLock::take(dir.path(), true).unwrap().unwrap_err();
        assert!(held.0.contains("-elsewhere`"), "{held:?}");
        assert!(dir.path().join(LOCK_FILE).exists());
    }
}
