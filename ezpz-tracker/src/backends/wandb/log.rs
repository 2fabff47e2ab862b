//! The `.wandb` transaction log: LevelDB's log format as W&B modified it.
//!
//! A 7-byte file header (`:W&B`, magic `0xBEE1` little-endian, version 0), then 32 KiB blocks
//! (block 0 counts the header). Each record is one or more chunks `crc u32 LE | len u16 LE |
//! type u8 | payload`: `FULL` when it fits the block, else `FIRST`, `MIDDLE`…, `LAST`. The CRC is
//! plain CRC-32 (IEEE) over the type byte followed by the payload. Fewer than 7 bytes left in a
//! block are zero-filled. Records reach the file only whole (one `write_all` per flush), so a
//! reader never sees half a record from a live run.

use std::path::Path;

use crate::backends::appender::Appender;
use crate::Result;

/// The file header: ident `:W&B`, magic `0xBEE1` (LE), version 0 (what wandb 0.31.0 writes).
pub const HEADER: [u8; 7] = [b':', b'W', b'&', b'B', 0xE1, 0xBE, 0];
/// Block size.
pub const BLOCK: usize = 32 * 1024;
/// Chunk header size.
const CHUNK_HEADER: usize = 7;

/// Chunk types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChunkType {
    /// A whole record.
    Full = 1,
    /// The first piece of a record split across blocks.
    First = 2,
    /// A middle piece.
    Middle = 3,
    /// The last piece.
    Last = 4,
}

/// Frames records into the log format in memory (no I/O), tracking the file offset.
#[derive(Debug)]
pub struct Framer {
    /// Bytes written so far, header included (the position in the file).
    offset: u64,
}

impl Framer {
    /// A framer for a new file; `out` receives the header.
    pub fn new(out: &mut Vec<u8>) -> Self {
        out.extend_from_slice(&HEADER);
        Framer {
            offset: HEADER.len() as u64,
        }
    }

    /// Appends `payload` to `out` as one record.
    pub fn append(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let mut rest = payload;
        let mut first = true;
        loop {
            let left = BLOCK - (self.offset as usize % BLOCK);
            if left < CHUNK_HEADER {
                out.resize(out.len() + left, 0);
                self.offset += left as u64;
                continue;
            }
            let room = left - CHUNK_HEADER;
            let take = rest.len().min(room);
            let last = take == rest.len();
            let kind = match (first, last) {
                (true, true) => ChunkType::Full,
                (true, false) => ChunkType::First,
                (false, false) => ChunkType::Middle,
                (false, true) => ChunkType::Last,
            };
            let (chunk, tail) = rest.split_at(take);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&[kind as u8]);
            crc.update(chunk);
            out.extend_from_slice(&crc.finalize().to_le_bytes());
            // `take` fits in a u16: a block is 32 KiB.
            out.extend_from_slice(&(take as u16).to_le_bytes());
            out.push(kind as u8);
            out.extend_from_slice(chunk);
            self.offset += (CHUNK_HEADER + take) as u64;
            rest = tail;
            first = false;
            if last {
                return;
            }
        }
    }
}

/// A `.wandb` file being written.
#[derive(Debug)]
pub struct LogWriter {
    out: Appender,
    framer: Framer,
}

impl LogWriter {
    /// Creates (or truncates) `path` and writes the header.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(path: &Path) -> Result<Self> {
        let mut out = Appender::create(path)?;
        let framer = Framer::new(out.buffer());
        let mut w = LogWriter { out, framer };
        w.flush()?;
        Ok(w)
    }

    /// Appends one encoded record (written out at the next flush, or when much is buffered).
    ///
    /// # Errors
    /// A forced write failed.
    pub fn append(&mut self, payload: &[u8]) -> Result<()> {
        self.framer.append(payload, self.out.buffer());
        self.out.row_done()
    }

    /// Writes every buffered record to the file.
    ///
    /// # Errors
    /// The write failed.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()
    }

    /// Flushes and asks the OS to put the file on disk (at finish).
    ///
    /// # Errors
    /// The write or the sync failed.
    pub fn sync(&mut self) -> Result<()> {
        self.out.sync()
    }
}

/// Reads the records of a log back (the inverse of [`Framer`]), checking every CRC.
///
/// # Errors
/// A bad header, CRC, chunk order or truncated chunk, described.
#[cfg(test)]
pub fn read_records(data: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    if data.len() < HEADER.len() || data[..HEADER.len()] != HEADER {
        return Err("bad header".into());
    }
    let mut pos = HEADER.len();
    let mut records = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    while pos < data.len() {
        let left = BLOCK - pos % BLOCK;
        if left < CHUNK_HEADER {
            pos += left;
            continue;
        }
        let h = data
            .get(pos..pos + CHUNK_HEADER)
            .ok_or("truncated chunk header")?;
        let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len = u16::from_le_bytes([h[4], h[5]]) as usize;
        let kind = h[6];
        let payload = data
            .get(pos + CHUNK_HEADER..pos + CHUNK_HEADER + len)
            .ok_or("truncated chunk")?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[kind]);
        hasher.update(payload);
        if hasher.finalize() != crc {
            return Err(format!("bad crc at offset {pos}"));
        }
        pos += CHUNK_HEADER + len;
        match (kind, partial.as_mut()) {
            (1, None) => records.push(payload.to_vec()),
            (2, None) => partial = Some(payload.to_vec()),
            (3, Some(p)) => p.extend_from_slice(payload),
            (4, Some(p)) => {
                p.extend_from_slice(payload);
                records.extend(partial.take());
            }
            _ => return Err(format!("unexpected chunk type {kind} at offset {pos}")),
        }
    }
    if partial.is_some() {
        return Err("log ends inside a record".into());
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_test_vector() {
        // protocols.md §2.3: header + one FULL record `hello`, crc 0x8aac239d.
        let mut out = Vec::new();
        let mut f = Framer::new(&mut out);
        f.append(b"hello", &mut out);
        let expected: &[u8] = &[
            0x3a, 0x57, 0x26, 0x42, 0xe1, 0xbe, 0x00, 0x9d, 0x23, 0xac, 0x8a, 0x05, 0x00, 0x01,
            0x68, 0x65, 0x6c, 0x6c, 0x6f,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn large_records_split_across_blocks_and_read_back() {
        let mut out = Vec::new();
        let mut f = Framer::new(&mut out);
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let records: Vec<Vec<u8>> = vec![b"a".to_vec(), big.clone(), b"bb".to_vec(), big];
        for r in &records {
            f.append(r, &mut out);
        }
        // 100 000 bytes span four blocks: FIRST, MIDDLE, MIDDLE, LAST.
        assert_eq!(out[7 + 7 + 1 + 6], ChunkType::First as u8);
        assert_eq!(out[BLOCK + 6], ChunkType::Middle as u8);
        assert_eq!(read_records(&out).unwrap(), records);
    }

    #[test]
    fn block_trailers_shorter_than_a_header_are_zero_filled() {
        let mut out = Vec::new();
        let mut f = Framer::new(&mut out);
        // Leave exactly 3 bytes in block 0: header 7 + chunk header 7 + payload.
        let payload = vec![7u8; BLOCK - 7 - 7 - 3];
        f.append(&payload, &mut out);
        assert_eq!(out.len(), BLOCK - 3);
        f.append(b"next", &mut out);
        assert_eq!(&out[BLOCK - 3..BLOCK], &[0, 0, 0]);
        assert_eq!(out[BLOCK + 6], ChunkType::Full as u8);
        let back = read_records(&out).unwrap();
        assert_eq!(back, vec![payload, b"next".to_vec()]);
    }

    #[test]
    fn a_record_filling_a_block_exactly_leaves_the_next_block_clean() {
        let mut out = Vec::new();
        let mut f = Framer::new(&mut out);
        let payload = vec![1u8; BLOCK - 7 - 7];
        f.append(&payload, &mut out);
        assert_eq!(out.len(), BLOCK);
        f.append(b"x", &mut out);
        assert_eq!(out[BLOCK + 6], ChunkType::Full as u8);
        assert_eq!(read_records(&out).unwrap().len(), 2);
    }

    #[test]
    fn writer_puts_whole_records_in_the_file_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-x.wandb");
        let mut w = LogWriter::create(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), HEADER);
        w.append(b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), HEADER.len());
        w.sync().unwrap();
        let back = read_records(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, vec![b"one".to_vec()]);
    }
}
