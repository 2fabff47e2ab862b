//! Where a run writes its files: a directory of its own, or the one an earlier run wrote when
//! that run is resumed.
//!
//! - **No outdir given**: `outputs/<project>/<UTC time to the millisecond>`
//!   (`2026-12-02-044356.123`), made with `create_dir`, which succeeds for exactly one process
//!   even on a shared file system; a process that loses the race takes `…-2`, `…-3`, …. Names
//!   sort by start time.
//! - **An outdir that holds no run** (missing, empty, or only other files): claimed by taking
//!   its lock, `ezpz.lock` ([`run_lock`](crate::run_lock)), made with `create_new`: of
//!   several processes started on it at once (an array job given one outdir, ranks that all
//!   think they are rank 0), on one host or several sharing the file system, exactly one gets
//!   it; the others are treated as below, as if it held a run.
//! - **An outdir that holds a run** (rows in `metrics.csv` or `metrics.jsonl`, or a
//!   `config.json`, `report.md`, `report.json`, `run_info.json`; or its lock, taken by a run
//!   that is starting, running or was killed): appended to when resuming
//!   ([`TrackerBuilder::resume`](crate::TrackerBuilder::resume), [`EZPZ_RESUME`]), once the
//!   resuming run holds the lock; otherwise refused with [`Error::RunExists`] by `build`, or
//!   replaced by a fresh sibling (`<outdir>-2`, …) with one warning where building never
//!   fails (`setup_tracker`, `build_lossy`). Nothing is ever truncated.
//! - **Resuming** takes the lock too, so of several processes resuming one run at once
//!   exactly one appends; `build` refuses the others with [`Error::RunInUse`] (naming the
//!   holder), `setup_tracker`/`build_lossy` move them to fresh siblings with one warning. A
//!   lock left by a killed run is taken over when its process ran on this host and is gone;
//!   one held from another host is respected (the error names the file to delete once that
//!   run is known to be gone).
//!
//! Every run holds its directory's lock from `build` until its backends have finished.
//!
//! [`EZPZ_RESUME`]: crate::env::EZPZ_RESUME

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::backends::appender::Appender;
use crate::run_lock::{Held, RunLock, LOCK_FILE};
use crate::user_paths::file_stem;
use crate::{Error, Result};

/// The folder the default outdirs of all projects go in.
const OUTPUTS: &str = "outputs";

/// Files that show a run was written in a directory (beside non-empty metrics files).
const RUN_FILES: &[&str] = &["config.json", "report.md", "report.json", "run_info.json"];

/// Metrics files whose rows show a run (an empty one was left by a build that failed).
const METRICS_FILES: &[&str] = &["metrics.jsonl", "metrics.csv"];

/// Bytes read from the end of a metrics file to find its last row.
const TAIL_BYTES: u64 = 1 << 20;

/// Siblings tried before giving up (`<dir>-2` … `<dir>-<MAX_SIBLINGS>`).
const MAX_SIBLINGS: u32 = 10_000;

/// The directory a run writes to, as [`prepare`] settled it.
#[derive(Debug)]
pub(crate) struct Outdir {
    /// Where the files go.
    pub path: PathBuf,
    /// Whether the backends append to a run already there.
    pub resume: bool,
    /// The last step that run wrote (when resuming; see [`last_step`]).
    pub last_step: Option<u64>,
    /// The run's lock on the directory, held until the run finishes.
    pub lock: RunLock,
}

/// What to do with an explicit outdir that holds a run when resuming was not asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenTaken {
    /// Return [`Error::RunExists`].
    Refuse,
    /// Write to a fresh sibling, with one warning.
    UseSibling,
}

/// The default outdir, before it is claimed: `outputs/<project>/<time>`.
pub(crate) fn default_dir(project: &str, stamp: DateTime<Utc>) -> PathBuf {
    Path::new(OUTPUTS)
        .join(file_stem(project))
        .join(stamp_name(stamp))
}

/// Readable, sortable, and distinct for runs a millisecond apart.
fn stamp_name(stamp: DateTime<Utc>) -> String {
    stamp.format("%Y-%m-%d-%H%M%S%.3f").to_string()
}

/// Settles (and creates) the outdir: see the module docs.
///
/// # Errors
/// The directory cannot be created; or it holds a run, `resume` is off and `taken` is
/// [`WhenTaken::Refuse`].
pub(crate) fn prepare(
    explicit: Option<&Path>,
    project: &str,
    stamp: DateTime<Utc>,
    resume: bool,
    taken: WhenTaken,
) -> Result<Outdir> {
    let Some(dir) = explicit else {
        return fresh(claim(&default_dir(project, stamp))?);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create output directory", dir, e))?;
    let refused = match holds_run(dir) {
        Some(found) if !resume => Error::RunExists {
            path: dir.to_path_buf(),
            found: found.to_string(),
        },
        _ => match RunLock::take(dir, resume)? {
            Ok(lock) => return locked(dir, resume, lock),
            Err(Held(holder)) if resume => Error::RunInUse {
                path: dir.to_path_buf(),
                holder,
            },
            // Another run is starting (or was killed) in this directory.
            Err(Held(_)) => Error::RunExists {
                path: dir.to_path_buf(),
                found: LOCK_FILE.to_string(),
            },
        },
    };
    match taken {
        WhenTaken::Refuse => Err(refused),
        WhenTaken::UseSibling => {
            let sibling = claim(dir)?;
            crate::warn!(
                "ezpz: {refused}; this run writes to `{}`",
                sibling.display()
            );
            fresh(sibling)
        }
    }
}

/// The outdir `dir`, whose lock this run holds: resumed, or fresh when no run wrote there
/// (a run that finished between the first look and the lock is refused now).
fn locked(dir: &Path, resume: bool, lock: RunLock) -> Result<Outdir> {
    let found = holds_run(dir);
    if let (Some(found), false) = (found, resume) {
        return Err(Error::RunExists {
            path: dir.to_path_buf(),
            found: found.to_string(),
        });
    }
    Ok(Outdir {
        path: dir.to_path_buf(),
        resume,
        last_step: found.and_then(|_| last_step(dir)),
        lock,
    })
}

/// A directory this process just created (so no other run can hold it), locked.
fn fresh(path: PathBuf) -> Result<Outdir> {
    let lock = RunLock::take(&path, false)?.map_err(|Held(holder)| Error::RunInUse {
        path: path.clone(),
        holder,
    })?;
    Ok(Outdir {
        path,
        resume: false,
        last_step: None,
        lock,
    })
}

/// Creates `want`, or the first of `want-2`, `want-3`, … that does not exist yet, with
/// `create_dir` (atomic: two processes never get the same one).
fn claim(want: &Path) -> Result<PathBuf> {
    if let Some(parent) = want.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("cannot create output directory", parent, e))?;
    }
    for n in 1..=MAX_SIBLINGS {
        let candidate = if n == 1 {
            want.to_path_buf()
        } else {
            let mut name = want.as_os_str().to_os_string();
            name.push(format!("-{n}"));
            PathBuf::from(name)
        };
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("cannot create output directory", &candidate, e)),
        }
    }
    Err(Error::io(
        "cannot create output directory",
        want,
        std::io::Error::new(ErrorKind::AlreadyExists, "every sibling name is taken"),
    ))
}

/// The file that shows `dir` holds a run, if one does.
pub(crate) fn holds_run(dir: &Path) -> Option<&'static str> {
    let with_rows = METRICS_FILES
        .iter()
        .find(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0));
    with_rows
        .or_else(|| RUN_FILES.iter().find(|f| dir.join(f).exists()))
        .copied()
}

/// The last step written in `dir`: the largest step among the last rows of `metrics.jsonl`
/// (else `metrics.csv`); rows logged from several threads need not be in step order.
pub(crate) fn last_step(dir: &Path) -> Option<u64> {
    let jsonl = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()?
            .get("step")?
            .as_u64()
    };
    let csv = |line: &str| line.split(',').next()?.parse::<u64>().ok();
    largest_in_tail(&dir.join("metrics.jsonl"), jsonl)
        .or_else(|| largest_in_tail(&dir.join("metrics.csv"), csv))
}

/// The largest value `parse` finds in the lines of the last [`TAIL_BYTES`] of `path` (a torn
/// last line, left by a crash, is passed over).
fn largest_in_tail(path: &Path, parse: impl Fn(&str) -> Option<u64>) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    // A window that starts mid-file starts mid-line: that first piece is not a row.
    let skip = usize::from(start > 0);
    text.lines().skip(skip).filter_map(parse).max()
}

/// Opens the metrics file `name` in `dir` (created if missing) for appending rows: a new
/// run's, never truncating one that holds rows ([`create_fresh`]), or — when resuming — the
/// existing one, after its last line ([`end_with_newline`]).
///
/// # Errors
/// A new run's file already holds rows ([`Error::RunExists`]), or the directory or file
/// cannot be created or opened.
pub(crate) fn open_metrics_file(dir: &Path, name: &str, resume: bool) -> Result<Appender> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
    let path = dir.join(name);
    if resume {
        end_with_newline(&path)?;
    } else {
        create_fresh(&path)?;
    }
    Appender::open(&path)
}

/// Creates the empty file `path` for a new run, never truncating one with data: an empty
/// file (left by a build that failed) is taken as it is.
///
/// # Errors
/// The file holds data ([`Error::RunExists`]), or cannot be created.
fn create_fresh(path: &Path) -> Result<()> {
    let created = OpenOptions::new().write(true).create_new(true).open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => Ok(()),
            _ => Err(Error::RunExists {
                path: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                found: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            }),
        },
        Err(e) => Err(Error::io("cannot create", path, e)),
    }
}

/// Makes sure a file about to be appended to ends with a line break, so a row torn by a
/// crash stays a (short) line of its own instead of swallowing the first new row.
fn end_with_newline(path: &Path) -> Result<()> {
    let mut file = match OpenOptions::new().read(true).append(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot open", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot read", path, e))?
        .len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(|e| Error::io("cannot read", path, e))?;
    if last[0] != b'\n' {
        file.write_all(b"\n")
            .map_err(|e| Error::io("cannot write", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_780_000_000_000 + ms).unwrap()
    }

    #[test]
    fn default_names_are_readable_and_sort_by_time() {
        let a = default_dir("ezpz.examples.vit", at(0));
        assert_eq!(
            a,
            Path::new("outputs/ezpz.examples.vit/2026-05-28-202640.000")
        );
        let names: Vec<String> = [0, 1, 999, 1000, 61_000]
            .iter()
            .map(|ms| stamp_name(at(*ms)))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(default_dir("../../etc", at(0)).components().count(), 3);
    }

    /// Runs started in the same millisecond (a fixed clock) on many threads each get a
    /// directory of their own.
    #[test]
    fn runs_started_together_get_their_own_directories() {
        let root = tempfile::tempdir().unwrap();
        let want = root.path().join("outputs/p").join(stamp_name(at(5)));
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| claim(&want).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = dirs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{dirs:?}");
        assert!(dirs.iter().all(|d| d.is_dir()));
        assert!(unique
            .iter()
            .any(|d| d.to_string_lossy().ends_with(".005-8")));
    }

    #[test]
    fn an_outdir_with_a_run_is_refused_resumed_or_replaced_by_a_sibling() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let p = |resume, taken| prepare(Some(&dir), "p", at(0), resume, taken);
        // Empty, or only an empty metrics file (a build that failed): not a run.
        assert_eq!(p(false, WhenTaken::Refuse).unwrap().path, dir);
        std::fs::write(dir.join("metrics.jsonl"), b"").unwrap();
        assert!(!p(false, WhenTaken::Refuse).unwrap().resume);

        std::fs::write(dir.join("metrics.csv"), b"step,a\n0,1\n7,2\n").unwrap();
        let err = p(false, WhenTaken::Refuse).unwrap_err().to_string();
        assert!(
            err.contains("metrics.csv") && err.contains("EZPZ_RESUME=1"),
            "{err}"
        );
        let resumed = p(true, WhenTaken::Refuse).unwrap();
        assert_eq!((resumed.path, resumed.resume), (dir.clone(), true));
        assert_eq!(resumed.last_step, Some(7));
        let sibling = p(false, WhenTaken::UseSibling).unwrap();
        assert_eq!(sibling.path, root.path().join("run-2"));
        assert!(sibling.path.is_dir() && !sibling.resume);
        assert_eq!(
            p(false, WhenTaken::UseSibling).unwrap().path,
            root.path().join("run-3")
        );
    }

    #[test]
    fn the_last_step_is_the_largest_in_the_last_whole_rows() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_step(dir.path()), None);
        std::fs::write(dir.path().join("metrics.csv"), b"step,a\n").unwrap();
        assert_eq!(last_step(dir.path()), None);
        std::fs::write(dir.path().join("metrics.csv"), b"step,a\n3,1\n5,1\n4,").unwrap();
        assert_eq!(last_step(dir.path()), Some(5));
        let jsonl = dir.path().join("metrics.jsonl");
        std::fs::write(&jsonl, b"{\"step\":9,\"metrics\":{}}\n{\"step\":10,\"met").unwrap();
        assert_eq!(last_step(dir.path()), Some(9));
        end_with_newline(&jsonl).unwrap();
        assert!(std::fs::read(&jsonl).unwrap().ends_with(b"met\n"));
        end_with_newline(&jsonl).unwrap();
        assert!(std::fs::read(&jsonl).unwrap().ends_with(b"met\n"));
    }

    #[test]
    fn a_fresh_file_never_truncates_one_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        create_fresh(&path).unwrap();
        create_fresh(&path).unwrap();
        std::fs::write(&path, b"step\n0\n").unwrap();
        let err = create_fresh(&path).unwrap_err();
        assert!(matches!(err, Error::RunExists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"step\n0\n");
    }
}
