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

/// A key made safe as a file name (`train/loss` → `train_loss`).
pub(crate) fn file_stem(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// Copies a file or a whole directory tree into `dest_dir`, keeping its name.
pub(crate) fn copy_into(src: &Path, dest_dir: &Path) -> Result<()> {
    let name = src.file_name().ok_or_else(|| Error::Invalid {
        what: "artifact",
        message: format!("`{}` has no file name", src.display()),
    })?;
    let meta = std::fs::metadata(src).map_err(|e| Error::io("cannot read artifact", src, e))?;
    std::fs::create_dir_all(dest_dir)
        .map_err(|e| Error::io("cannot create directory", dest_dir, e))?;
    let dest = dest_dir.join(name);
    if meta.is_dir() {
        for entry in std::fs::read_dir(src).map_err(|e| Error::io("cannot read", src, e))? {
            let entry = entry.map_err(|e| Error::io("cannot read", src, e))?;
            copy_into(&entry.path(), &dest)?;
        }
        std::fs::create_dir_all(&dest).map_err(|e| Error::io("cannot create directory", &dest, e))
    } else {
        std::fs::copy(src, &dest)
            .map(|_| ())
            .map_err(|e| Error::io("cannot copy artifact", src, e))
    }
}

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
