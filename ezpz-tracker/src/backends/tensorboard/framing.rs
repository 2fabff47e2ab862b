//! TFRecord framing: how every event reaches an event file.
//!
//! A record is `u64 LE length | u32 LE masked CRC-32C of those 8 bytes | data | u32 LE masked
//! CRC-32C of the data`. Readers check both checksums and retry a trailing record that is not
//! complete yet, so a record must reach the file whole (see [`write_message`]).

use prost::Message;

use crate::{Error, Result};

/// Bytes of framing around each record (length, its CRC, the data's CRC).
pub const FRAMING_BYTES: usize = 8 + 4 + 4;

/// CRC-32C (Castagnoli), masked the way TFRecord stores it: rotated right by 15 bits plus a
/// constant, so that a CRC of data that itself contains CRCs stays well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends `data` as one framed record to `out`.
pub fn write_record(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(data.len() + FRAMING_BYTES);
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// Encodes `message` straight into `out` as one framed record (no intermediate buffer).
///
/// On error `out` is left as it was, so a buffer of whole records stays one.
///
/// # Errors
/// The message could not be encoded (prost reports this only for a full buffer, which a
/// `Vec` never is).
pub fn write_message(out: &mut Vec<u8>, message: &impl Message) -> Result<()> {
    let start = out.len();
    let len = message.encoded_len();
    out.reserve(len + FRAMING_BYTES);
    let len_bytes = (len as u64).to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&masked_crc32c(&len_bytes).to_le_bytes());
    if let Err(e) = message.encode(out) {
        out.truncate(start);
        return Err(Error::backend(
            "tensorboard",
            format!("cannot encode event: {e}"),
        ));
    }
    let crc = masked_crc32c(&out[start + 12..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Splits `bytes` into the data of its complete records, checking both checksums.
///
/// Returns the records and the number of trailing bytes that do not form a whole record yet
/// (what a reader tailing a file being written would retry later).
///
/// # Errors
/// A checksum does not match: the bytes are not (or no longer) a valid event file.
pub fn read_records(bytes: &[u8]) -> Result<(Vec<&[u8]>, usize)> {
    let corrupt = |at: usize, what: &str| {
        Error::backend(
            "tensorboard",
            format!("record at byte {at}: {what} checksum mismatch"),
        )
    };
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 12 {
        let header = &bytes[at..at + 12];
        let (len_bytes, crc_bytes) = header.split_at(8);
        if masked_crc32c(len_bytes).to_le_bytes() != crc_bytes {
            return Err(corrupt(at, "length"));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(len);
        let remaining = (bytes.len() - at - 12) as u64;
        if remaining < len.saturating_add(4) {
            break;
        }
        // `len` fits: it is below `remaining`, a usize.
        let end = at + 12 + len as usize;
        let data = &bytes[at + 12..end];
        if masked_crc32c(data).to_le_bytes() != bytes[end..end + 4] {
            return Err(corrupt(at, "data"));
        }
        records.push(data);
        at = end + 4;
    }
    Ok((records, bytes.len() - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vector: TensorBoard's own `RecordWriter` framing `b"hello"`.
    const HELLO: [u8; 21] = [
        0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // length 5
        0xea, 0xb2, 0x04, 0x3e, // masked crc of the length
        b'h', b'e', b'l', b'l', b'o', // data
        0xbb, 0x1f, 0x1c, 0x19, // masked crc of the data
    ];

    #[test]
    fn crc32c_is_castagnoli() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc32c(&5u64.to_le_bytes()), 0x3e04_b2ea);
        assert_eq!(masked_crc32c(b"hello"), 0x191c_1fbb);
    }

    #[test]
    fn framing_matches_tensorboards_record_writer_byte_for_byte() {
        let mut out = Vec::new();
        write_record(&mut out, b"hello");
        assert_eq!(out, HELLO);
    }

    #[test]
    fn messages_are_framed_like_their_encoded_bytes() {
        let event = super::super::proto::Event::file_version(12.5);
        let mut direct = Vec::new();
        write_message(&mut direct, &event).unwrap();
        let mut via_bytes = Vec::new();
        write_record(&mut via_bytes, &event.encode_to_vec());
        assert_eq!(direct, via_bytes);
    }

    #[test]
    fn a_record_split_across_writes_is_read_only_once_whole() {
        let mut file = Vec::new();
        write_record(&mut file, b"first");
        write_record(&mut file, b"second record");
        let whole = file.len();
        // A reader tailing the file sees every prefix of it at some point.
        let first = b"first".len() + FRAMING_BYTES;
        for cut in 0..=whole {
            let (records, pending) = read_records(&file[..cut]).unwrap();
            let expected: &[&[u8]] = match cut {
                c if c < first => &[],
                c if c < whole => &[b"first"],
                _ => &[b"first", b"second record"],
            };
            assert_eq!(records, expected, "cut at {cut}");
            let consumed: usize = records.iter().map(|r| r.len() + FRAMING_BYTES).sum();
            assert_eq!(consumed + pending, cut);
        }
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error() {
        let mut file = HELLO.to_vec();
        file[14] ^= 1;
        let err = read_records(&file).unwrap_err().to_string();
        assert!(err.contains("data checksum mismatch"), "{err}");
        let mut file = HELLO.to_vec();
        file[0] ^= 1;
        let err = read_records(&file).unwrap_err().to_string();
        assert!(err.contains("length checksum mismatch"), "{err}");
    }
}
