//! An append-only file that only ever receives whole rows.
//!
//! Rows accumulate in memory and reach the file in one `write_all` per flush (or when the
//! buffer passes a threshold), always at a row boundary: a reader tailing the file, or a
//! process killed with `kill -9`, never sees half a row.

use std::fs::{File, OpenOptions};
use std::io::Write;
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
}

impl Appender {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("cannot open", path, e))?;
        Ok(Self::with_file(path, file))
    }

    /// Creates `path`, or truncates it.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
        Ok(Self::with_file(path, file))
    }

    fn with_file(path: &Path, file: File) -> Self {
        Appender {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(64 * 1024),
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
        self.file
            .write_all(&self.buf)
            .map_err(|e| Error::io("cannot write", &self.path, e))?;
        self.buf.clear();
        Ok(())
    }

    /// Flushes and asks the OS to put the file's data on disk.
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

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))
}

// Kept here for the modules that import them from this file; they live in their own files.
#[cfg(feature = "wandb")]
pub(crate) use super::copy::copy_into;
pub(crate) use crate::user_paths::file_stem;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("train/loss"), "train_loss");
        assert_eq!(file_stem("../x"), "_.._x");
        assert_eq!(file_stem(""), "_");
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
