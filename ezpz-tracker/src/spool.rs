//! A durable local spool for remote backends: what must reach a server is written here
//! first, and leaves only once the server has acknowledged it.
//!
//! # Layout (one directory per backend, `<outdir>/spool/<backend>/`)
//! - `entries.log` — append-only, one request per line: `<id> <op> <body>\n`, where `id`
//!   increases, `op` names the request (the backend decides) and `body` is its payload on
//!   one line (JSON, for the built-in backends). A line is written whole or not at all: a
//!   short write (disk full, a file size limit) is cut off again before the error is
//!   reported, so a later append never glues onto half a line; a process killed with
//!   `kill -9` mid-write leaves a torn last line, which is ignored and cut.
//! - `acked.log` — append-only, the id of every acknowledged entry, one per line (same
//!   rules).
//! - `meta.json` — the backend's run identity (written atomically), so `ezpz sync` can
//!   replay into the same run.
//! - `owner.pid` — the process that writes the spool: its pid, host and start time (lines
//!   `pid`, `host`, `start`), so a replay never races it — not even from another node of the
//!   cluster, and not when the pid was reused.
//! - `files/` — payloads the backend generated (tables, images) until they are delivered.
//!
//! Entries are handed out in order; each is acknowledged at most once. When every entry is
//! acknowledged both logs are truncated, so a healthy run keeps the spool near-empty.
//!
//! # Durability
//! An entry is in the operating system when `append` returns: it survives the process being
//! killed. It reaches the disk itself (`fsync`) when the logs are truncated and at
//! [`Spool::sync`] (the backends call it at finish); a power loss or kernel crash can cost the
//! entries appended since the last of those, never the integrity of the rest.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backends::appender::{append_whole, write_atomic};
use crate::{Error, Result};

const ENTRIES: &str = "entries.log";
const ACKS: &str = "acked.log";
const META: &str = "meta.json";
const OWNER: &str = "owner.pid";
const FILES: &str = "files";

/// The spool directory of `backend` under a run's output directory.
pub fn spool_dir(outdir: &Path, backend: &str) -> PathBuf {
    outdir.join("spool").join(backend)
}

/// One spooled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id (increasing within a spool).
    pub id: u64,
    /// What kind of request it is (backend-defined, no spaces).
    pub op: String,
    /// The payload, on one line.
    pub body: String,
}

/// See the module docs.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    entries: File,
    reader: BufReader<File>,
    /// Offset of the next entry to hand out.
    cursor: u64,
    /// Offset the reader is positioned at.
    reader_pos: u64,
    /// Bytes of whole lines in `entries.log`.
    len: u64,
    acks: File,
    /// Bytes in `acked.log` (whole lines).
    acks_len: u64,
    /// A failed write may have left a partial line: cut both logs before the next write.
    torn: bool,
    acked: HashSet<u64>,
    next_id: u64,
    unacked: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, reading what an earlier process left.
    ///
    /// # Errors
    /// The directory or its files cannot be created or read.
    pub fn open(dir: &Path) -> Result<Spool> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
        let entries_path = dir.join(ENTRIES);
        let acks_path = dir.join(ACKS);
        let open_append = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(p)
                .map_err(|e| Error::io("cannot open spool file", p, e))
        };
        let entries = open_append(&entries_path)?;
        let acks = open_append(&acks_path)?;
        let mut text = String::new();
        File::open(&acks_path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| Error::io("cannot read", &acks_path, e))?;
        // A torn last line (no newline) is an ack that was never completed: cut it, so the
        // next ack does not glue onto it.
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        let acks_len = text.rfind('\n').map_or(0, |i| i as u64 + 1);
        if acks_len < text.len() as u64 {
            acks.set_len(acks_len)
                .map_err(|e| Error::io("cannot truncate", &acks_path, e))?;
        }
        let acked: HashSet<u64> = complete
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let reader = BufReader::new(
            File::open(&entries_path).map_err(|e| Error::io("cannot open", &entries_path, e))?,
        );
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            entries,
            reader,
            cursor: 0,
            reader_pos: 0,
            len: 0,
            acks,
            acks_len,
            torn: false,
            acked,
            next_id: 1,
            unacked: 0,
        };
        spool.scan()?;
        Ok(spool)
    }

    /// Reads every whole line once to learn the next id, the unacknowledged count, and where
    /// the whole lines end (a torn tail left by a killed writer is cut off).
    fn scan(&mut self) -> Result<()> {
        let path = self.dir.join(ENTRIES);
        let mut reader =
            BufReader::new(File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?);
        let mut line = String::new();
        let mut end = 0u64;
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| Error::io("cannot read", &path, e))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            end += n as u64;
            if let Some(entry) = parse_line(&line) {
                self.next_id = self.next_id.max(entry.id + 1);
                if !self.acked.contains(&entry.id) {
                    self.unacked += 1;
                }
            }
        }
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io("cannot read", &path, e))?
            .len();
        if size > end {
            self.entries
                .set_len(end)
                .map_err(|e| Error::io("cannot truncate", &path, e))?;
        }
        self.len = end;
        if let Some(max_acked) = self.acked.iter().max() {
            self.next_id = self.next_id.max(max_acked + 1);
        }
        Ok(())
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where generated payloads (tables, images) wait for delivery.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn files_dir(&self) -> Result<PathBuf> {
        let dir = self.dir.join(FILES);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create directory", &dir, e))?;
        Ok(dir)
    }

    /// Appends a request; it is on disk (in the OS) when this returns. Returns its id.
    ///
    /// # Errors
    /// The write failed (the entry is then not in the spool).
    pub fn append(&mut self, op: &str, body: &str) -> Result<u64> {
        debug_assert!(!op.contains(' ') && !op.contains('\n') && !body.contains('\n'));
        let id = self.next_id;
        let line = format!("{id} {op} {body}\n");
        self.cut_torn()?;
        append_whole(&self.entries, self.len, line.as_bytes()).map_err(|e| {
            self.torn = true;
            Error::io("cannot append to spool", self.dir.join(ENTRIES), e)
        })?;
        self.next_id += 1;
        self.len += line.len() as u64;
        self.unacked += 1;
        Ok(id)
    }

    /// After a failed write whose partial line could not be cut off then, cuts it now.
    fn cut_torn(&mut self) -> Result<()> {
        if self.torn {
            self.entries
                .set_len(self.len)
                .map_err(|e| Error::io("cannot truncate", self.dir.join(ENTRIES), e))?;
            self.acks
                .set_len(self.acks_len)
                .map_err(|e| Error::io("cannot truncate", self.dir.join(ACKS), e))?;
            self.torn = false;
        }
        Ok(())
    }

    /// The next unacknowledged entry after those already handed out, if any.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        let mut line = String::new();
        while self.cursor < self.len {
            if self.reader_pos != self.cursor {
                self.reader
                    .seek(SeekFrom::Start(self.cursor))
                    .map_err(|e| Error::io("cannot read", self.dir.join(ENTRIES), e))?;
                self.reader_pos = self.cursor;
            }
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| Error::io("cannot read", self.dir.join(ENTRIES), e))?;
            self.reader_pos += n as u64;
            if n == 0 || !line.ends_with('\n') {
                // Our own view says more is there: the file changed under us. Stop here.
                return Ok(None);
            }
            self.cursor += n as u64;
            match parse_line(&line) {
                Some(entry) if !self.acked.contains(&entry.id) => return Ok(Some(entry)),
                Some(_) => {}
                None => crate::warn!(
                    "ezpz: skipping an unreadable line in `{}`",
                    self.dir.join(ENTRIES).display()
                ),
            }
        }
        Ok(None)
    }

    /// Hands out every unacknowledged entry again from the start (after a replay was cut
    /// short).
    pub fn rewind(&mut self) {
        self.cursor = 0;
    }

    /// Records that the server acknowledged entry `id` (idempotent).
    ///
    /// # Errors
    /// The acknowledgement could not be written (the entry will be sent again later).
    pub fn ack(&mut self, id: u64) -> Result<()> {
        if self.acked.contains(&id) {
            return Ok(());
        }
        let line = format!("{id}\n");
        self.cut_torn()?;
        append_whole(&self.acks, self.acks_len, line.as_bytes()).map_err(|e| {
            self.torn = true;
            Error::io("cannot append to spool", self.dir.join(ACKS), e)
        })?;
        self.acks_len += line.len() as u64;
        self.acked.insert(id);
        self.unacked = self.unacked.saturating_sub(1);
        Ok(())
    }

    /// Entries written but not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.unacked
    }

    /// When everything is acknowledged, empties both logs (ids keep increasing). Returns
    /// whether it did.
    ///
    /// # Errors
    /// A file could not be truncated.
    pub fn compact(&mut self) -> Result<bool> {
        if self.unacked > 0 || self.len == 0 {
            return Ok(false);
        }
        // Entries first: a crash between the two leaves acks of ids that no longer exist,
        // which is harmless.
        self.entries
            .set_len(0)
            .map_err(|e| Error::io("cannot truncate", self.dir.join(ENTRIES), e))?;
        self.acks
            .set_len(0)
            .map_err(|e| Error::io("cannot truncate", self.dir.join(ACKS), e))?;
        self.acked.clear();
        self.cursor = 0;
        self.len = 0;
        self.acks_len = 0;
        self.sync()?;
        Ok(true)
    }

    /// Puts both logs on the disk itself (`fsync`), not only in the operating system.
    ///
    /// # Errors
    /// The disk refused.
    pub fn sync(&self) -> Result<()> {
        self.entries
            .sync_data()
            .map_err(|e| Error::io("cannot sync", self.dir.join(ENTRIES), e))?;
        self.acks
            .sync_data()
            .map_err(|e| Error::io("cannot sync", self.dir.join(ACKS), e))
    }

    /// Writes the backend's run identity (atomically).
    ///
    /// # Errors
    /// It cannot be serialized or written.
    pub fn write_meta<T: Serialize>(&self, meta: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(meta).map_err(|e| Error::Invalid {
            what: "spool metadata",
            message: e.to_string(),
        })?;
        write_atomic(&self.dir.join(META), &bytes)
    }

    /// Reads the run identity a spool in `dir` holds.
    ///
    /// # Errors
    /// There is none, or it is not readable.
    pub fn read_meta<T: DeserializeOwned>(dir: &Path) -> Result<T> {
        let path = dir.join(META);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: "spool metadata",
            message: format!("`{}`: {e}", path.display()),
        })
    }

    /// Marks this process as the spool's writer (pid, host, start time).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn claim(&self) -> Result<()> {
        write_atomic(&self.dir.join(OWNER), Owner::me().to_text().as_bytes())
    }

    /// Another process that may still be writing the spool in `dir`: one alive on this host
    /// (same pid and start time), or any process on another host (whether it lives cannot be
    /// told from here; `ezpz sync --force` overrides).
    pub fn live_owner(dir: &Path) -> Option<Owner> {
        let text = std::fs::read_to_string(dir.join(OWNER)).ok()?;
        let owner = Owner::parse(&text)?;
        let me = Owner::me();
        if owner
            .host
            .as_deref()
            .is_some_and(|h| Some(h) != me.host.as_deref())
        {
            return Some(owner);
        }
        if owner.pid == me.pid {
            return None;
        }
        if !process_alive(owner.pid) {
            return None;
        }
        // A pid reused by an unrelated process has another start time.
        match (&owner.start, process_start(owner.pid)) {
            (Some(recorded), Some(now)) if *recorded != now => None,
            _ => Some(owner),
        }
    }

    /// No longer marks this process as the writer (it is about to exit).
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.dir.join(OWNER));
    }

    /// Deletes the spool in `dir` (everything was delivered), and the `spool/` directory
    /// above it when nothing else is left there.
    ///
    /// # Errors
    /// The directory could not be removed.
    pub fn remove_dir(dir: &Path) -> Result<()> {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("cannot remove", dir, e))?;
        if let Some(parent) = dir.parent().filter(|p| p.ends_with("spool")) {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }
}

/// Who writes a spool: see [`Spool::live_owner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its process id.
    pub pid: u32,
    /// The host it runs on (absent in spools of older versions).
    pub host: Option<String>,
    /// When it started (clock ticks since boot, from `/proc/<pid>/stat`), to tell a reused
    /// pid apart.
    pub start: Option<String>,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            host: Some(crate::env::hostname()).filter(|h| !h.is_empty()),
            start: process_start(pid),
        }
    }

    fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.pid,
            self.host.as_deref().unwrap_or_default(),
            self.start.as_deref().unwrap_or_default()
        )
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut lines = text.lines().map(str::trim);
        let pid = lines.next()?.parse().ok()?;
        let mut next = || lines.next().filter(|l| !l.is_empty()).map(str::to_string);
        Some(Owner {
            pid,
            host: next(),
            start: next(),
        })
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {}", self.pid)?;
        if let Some(host) = &self.host {
            write!(f, " on host `{host}`")?;
        }
        Ok(())
    }
}

/// A process's start time (field 22 of `/proc/<pid>/stat`), where `/proc` exists.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count fields after its `)`.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_string)
}

fn parse_line(line: &str) -> Option<Entry> {
    let line = line.strip_suffix('\n')?;
    let (id, rest) = line.split_once(' ')?;
    let (op, body) = rest.split_once(' ')?;
    Some(Entry {
        id: id.parse().ok()?,
        op: op.to_string(),
        body: body.to_string(),
    })
}

/// Whether a process is alive (Linux `/proc`; elsewhere it cannot be told and counts as gone,
/// so a replay is never blocked forever).
fn process_alive(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return false;
    }
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        // A zombie (state `Z`) has exited but was not reaped yet.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start())
            .is_some_and(|rest| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ids(spool: &mut Spool) -> Vec<u64> {
        std::iter::from_fn(|| spool.next_entry().unwrap())
            .map(|e| e.id)
            .collect()
    }

    #[test]
    fn entries_leave_only_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        let a = s.append("metrics", r#"{"a":1}"#).unwrap();
        let b = s.append("params", r#"{"b":2}"#).unwrap();
        let first = s.next_entry().unwrap().unwrap();
        assert_eq!(
            first,
            Entry {
                id: a,
                op: "metrics".into(),
                body: r#"{"a":1}"#.into()
            }
        );
        s.ack(a).unwrap();
        s.ack(a).unwrap();
        assert_eq!(s.unacked(), 1);
        drop(s);
        // A new process (a replay) sees only the unacknowledged one, and continues the ids.
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.unacked(), 1);
        assert_eq!(ids(&mut s), vec![b]);
        assert_eq!(s.append("x", "{}").unwrap(), b + 1);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        s.append("metrics", "{}").unwrap();
        drop(s);
        let path = dir.path().join(ENTRIES);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"2 metrics {\"half").unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.unacked(), 1);
        assert_eq!(ids(&mut s), vec![1]);
        let id = s.append("metrics", "{}").unwrap();
        assert_eq!(id, 2);
        s.rewind();
        assert_eq!(ids(&mut s), vec![1, 2]);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("2 metrics {}\n"));
    }

    #[test]
    fn an_owner_on_another_host_or_a_reused_pid() {
        let dir = tempfile::tempdir().unwrap();
        let me = Owner::me();
        // A live pid (ours would not count as another owner: use the parent's) on another
        // host: refused, whatever runs here under that pid.
        let parent = std::os::unix::process::parent_id();
        let elsewhere = Owner {
            pid: parent,
            host: Some("compute-node-17".into()),
            start: None,
        };
        std::fs::write(dir.path().join(OWNER), elsewhere.to_text()).unwrap();
        assert_eq!(Spool::live_owner(dir.path()), Some(elsewhere));
        // Even a pid that does not exist here may be alive there.
        let gone_here = Owner {
            pid: 4_000_000,
            host: Some("compute-node-17".into()),
            start: None,
        };
        std::fs::write(dir.path().join(OWNER), gone_here.to_text()).unwrap();
        assert!(Spool::live_owner(dir.path()).is_some());
        // Same host, live pid, same start time: the owner.
        let parent_here = Owner {
            pid: parent,
            host: me.host.clone(),
            start: process_start(parent),
        };
        std::fs::write(dir.path().join(OWNER), parent_here.to_text()).unwrap();
        assert_eq!(Spool::live_owner(dir.path()), Some(parent_here.clone()));
        // Same pid started at another time: a reused pid, not the owner.
        let reused = Owner {
            start: Some("1".into()),
            ..parent_here
        };
        std::fs::write(dir.path().join(OWNER), reused.to_text()).unwrap();
        assert_eq!(Spool::live_owner(dir.path()), None);
    }

    #[test]
    fn a_short_write_leaves_whole_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        s.append("m", "{}").unwrap();
        // A file that refuses to grow past its current size + 5 bytes is simulated by a
        // read-only handle: the write fails at once, nothing is kept.
        let path = dir.path().join(ENTRIES);
        let before = std::fs::read(&path).unwrap();
        let ro = File::open(&path).unwrap();
        assert!(append_whole(&ro, before.len() as u64, b"2 m {}\n").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // A torn ack line is cut at open, so the next ack stays on its own line.
        std::fs::write(dir.path().join(ACKS), "1").unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.unacked(), 1);
        s.ack(1).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(ACKS)).unwrap(),
            "1\n"
        );
    }

    #[test]
    fn compaction_happens_only_when_everything_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        let a = s.append("m", "{}").unwrap();
        let b = s.append("m", "{}").unwrap();
        assert_eq!(ids(&mut s), vec![a, b]);
        s.ack(a).unwrap();
        assert!(!s.compact().unwrap());
        s.ack(b).unwrap();
        assert!(s.compact().unwrap());
        assert_eq!(
            std::fs::metadata(dir.path().join(ENTRIES)).unwrap().len(),
            0
        );
        assert_eq!(std::fs::metadata(dir.path().join(ACKS)).unwrap().len(), 0);
        let c = s.append("m", "{}").unwrap();
        assert_eq!(c, b + 1);
        assert_eq!(ids(&mut s), vec![c]);
    }

    #[test]
    fn meta_round_trips_and_owner_is_tracked() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        s.write_meta(&serde_json::json!({"run_id": "abc"})).unwrap();
        let meta: serde_json::Value = Spool::read_meta(dir.path()).unwrap();
        assert_eq!(meta["run_id"], "abc");
        s.claim().unwrap();
        // Our own pid is not "another" owner.
        assert_eq!(Spool::live_owner(dir.path()), None);
        let owner = Owner::parse(&std::fs::read_to_string(dir.path().join(OWNER)).unwrap());
        assert_eq!(owner, Some(Owner::me()));
        std::fs::write(dir.path().join(OWNER), "1").unwrap();
        assert_eq!(
            Spool::live_owner(dir.path()).map(|o| o.pid),
            Path::new("/proc/1").exists().then_some(1)
        );
        std::fs::write(dir.path().join(OWNER), "4294967295").unwrap();
        assert_eq!(Spool::live_owner(dir.path()), None);
        let inner = dir.path().join("spool/mlflow");
        let s2 = Spool::open(&inner).unwrap();
        s2.claim().unwrap();
        s2.release();
        assert!(!inner.join(OWNER).exists());
        Spool::remove_dir(&inner).unwrap();
        assert!(!dir.path().join("spool").exists());
    }
}
