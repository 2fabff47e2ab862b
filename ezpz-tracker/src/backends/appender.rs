//! An append-only file that only ever receives whole rows.
//!
//! Rows accumulate in memory and reach the file in one write per flush (or when the buffer
//! passes a threshold), always at a row boundary: a reader tailing the file, or a process
//! killed with `kill -9`, never sees half a row. A short write (disk full, a file size
//! limit) is cut off again before the error is reported and the rows stay buffered, so a
//! later flush writes them once, whole, at the same place: no row is duplicated or torn, in
//! any format that goes through here (CSV, JSONL, TensorBoard events, `.wandb` logs).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Bytes buffered before a write is forced.
const SPILL_BYTES: usize = 1 << 20;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Appender {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Bytes of whole rows in the file.
    len: u64,
    /// A partial write could not be cut off: cut it before the next write.
    torn: bool,
}

impl Appender {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("cannot open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot open", path, e))?
            .len();
        Ok(Self::with_file(path, file, len))
    }

    /// Creates `path`, or truncates it (the `.wandb` log, written whole by one run).
    #[cfg(feature = "wandb")]
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
        Ok(Self::with_file(path, file, 0))
    }

    fn with_file(path: &Path, file: File, len: u64) -> Self {
        Appender {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(64 * 1024),
            len,
            torn: false,
        }
    }

    /// The buffer to append one complete row to; call [`row_done`](Self::row_done) after.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes the buffer out when it has grown large.
    pub fn row_done(&mut self) -> Result<()> {
        if self.buf.len() >= SPILL_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffered row to the file.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.torn {
            self.file
                .set_len(self.len)
                .map_err(|e| Error::io("cannot cut a partial write from", &self.path, e))?;
            self.torn = false;
        }
        match append_whole(&self.file, self.len, &self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                // Cut again before the next write, in case cutting failed this time.
                self.torn = true;
                Err(Error::io("cannot write", &self.path, e))
            }
        }
    }

    /// Flushes and asks the OS to put the file's data on disk (the `.wandb` log at exit).
    #[cfg(feature = "wandb")]
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("cannot sync", &self.path, e))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Appends `bytes` to `file` (opened for appending, `len` bytes long) entirely or not at all.
/// `write_all` would leave the bytes of a short write (disk full, `RLIMIT_FSIZE`) in the file
/// and report an error, and writing the buffer again would duplicate them; here the partial
/// write is cut off (`set_len(len)`) before the error is returned, so the caller may simply
/// try again later.
///
/// # Errors
/// The write's error (the file is as before), or — when cutting failed too — an error whose
/// text says the partial write could not be undone.
pub(crate) fn append_whole(file: &File, len: u64, bytes: &[u8]) -> io::Result<()> {
    let mut out = file;
    let mut written = 0;
    let failure = loop {
        if written == bytes.len() {
            return Ok(());
        }
        match out.write(&bytes[written..]) {
            Ok(0) => break io::Error::from(io::ErrorKind::WriteZero),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    if written > 0 {
        if let Err(cut) = file.set_len(len) {
            return Err(io::Error::other(format!(
                "{failure}; a partial write could not be undone ({cut})"
            )));
        }
    }
    Err(failure)
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))
}

// Kept here for the modules that import them from this file; they live in their own files.
#[cfg(feature = "wandb")]
pub(crate) use super::copy::copy_into;
#[cfg(any(feature = "mlflow", feature = "wandb"))]
pub(crate) use crate::user_paths::file_stem;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_paths::file_stem;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("train/loss"), "train_loss");
        assert_eq!(file_stem("../x"), "_.._x");
        assert_eq!(file_stem(""), "_");
    }

    #[test]
    fn a_failed_write_is_retried_whole_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"row0\n").unwrap();
        let mut a = Appender::open(&path).unwrap();
        // A handle that cannot write: the flush fails, the rows stay buffered.
        let good = std::mem::replace(&mut a.file, File::open(&path).unwrap());
        a.buffer().extend_from_slice(b"row1\n");
        assert!(a.flush().is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"row0\n");
        a.file = good;
        a.buffer().extend_from_slice(b"row2\n");
        a.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"row0\nrow1\nrow2\n");
    }

    #[test]
    fn rows_reach_the_file_only_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        let mut a = Appender::open(&path).unwrap();
        a.buffer().extend_from_slice(b"row1\n");
        a.row_done().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        a.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"row1\n");
    }
}
