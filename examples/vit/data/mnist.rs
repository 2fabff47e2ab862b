//! MNIST from the standard IDX files, plain or gzipped.

use std::path::Path;

use super::{read_any, ByteImages, DataError};

const DATASET: &str = "mnist";
/// The usual MNIST normalisation (mean and standard deviation of the training pixels).
const MEAN: [f32; 3] = [0.1307, 0.0, 0.0];
const STD: [f32; 3] = [0.3081, 1.0, 1.0];

/// The train and test splits from `dir`.
///
/// # Errors
/// A missing file (naming the accepted names) or a malformed one.
pub fn load(dir: &Path) -> Result<(ByteImages, ByteImages), DataError> {
    Ok((split(dir, "train")?, split(dir, "t10k")?))
}

fn split(dir: &Path, prefix: &str) -> Result<ByteImages, DataError> {
    let (images, size) = idx_file(dir, &format!("{prefix}-images-idx3-ubyte"), 0x0803)?;
    let (labels, _) = idx_file(dir, &format!("{prefix}-labels-idx1-ubyte"), 0x0801)?;
    let n = labels.len();
    let [rows, cols] = [size[1], size[2]];
    if size[0] != n || rows != cols {
        return Err(DataError::Malformed {
            dataset: DATASET,
            path: dir.join(format!("{prefix}-images-idx3-ubyte")),
            reason: format!(
                "{} square images expected (one per label), found {}×{}×{}",
                n, size[0], rows, cols
            ),
        });
    }
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(DataError::Malformed {
            dataset: DATASET,
            path: dir.join(format!("{prefix}-labels-idx1-ubyte")),
            reason: format!("label {bad} is not a digit 0–9"),
        });
    }
    Ok(ByteImages::new(images, labels, 1, rows, MEAN, STD))
}

/// Reads an unsigned-byte IDX file (`name` or `name.gz`) with the given magic number; returns
/// the payload and the dimensions.
fn idx_file(dir: &Path, name: &str, magic: u32) -> Result<(Vec<u8>, Vec<usize>), DataError> {
    let names = [name.to_string(), format!("{name}.gz")];
    let (path, bytes) = read_any(DATASET, name, dir, &names)?;
    let malformed = |reason: String| DataError::Malformed {
        dataset: DATASET,
        path: path.clone(),
        reason,
    };
    let word = |i: usize| -> Option<u32> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let found = word(0).ok_or_else(|| malformed("shorter than an IDX header".into()))?;
    if found != magic {
        return Err(malformed(format!(
            "IDX magic number {found:#010x}, expected {magic:#010x} (unsigned bytes, {} dimensions)",
            magic & 0xff
        )));
    }
    let ndims = (magic & 0xff) as usize;
    let dims = (1..=ndims)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| malformed("IDX header cut short".into()))?;
    let header = 4 * (ndims + 1);
    let expected: usize = dims.iter().product();
    let payload = bytes.len() - header.min(bytes.len());
    if payload != expected {
        return Err(malformed(format!(
            "dimensions {dims:?} need {expected} bytes of data, the file has {payload}"
        )));
    }
    Ok((bytes[header..].to_vec(), dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::Dataset;
    use std::io::Write;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        out
    }

    fn write_split(dir: &Path, prefix: &str, n: u32, gz: bool) {
        let images: Vec<u8> = (0..n * 4).map(|i| (i * 10) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let files = [
            (
                format!("{prefix}-images-idx3-ubyte"),
                idx(0x0803, &[n, 2, 2], &images),
            ),
            (
                format!("{prefix}-labels-idx1-ubyte"),
                idx(0x0801, &[n], &labels),
            ),
        ];
        for (name, bytes) in files {
            if gz {
                let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
                let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                enc.write_all(&bytes).unwrap();
                enc.finish().unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn reads_plain_and_gzipped_files() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 5, true);
        write_split(dir.path(), "t10k", 3, false);
        let (train, test) = load(dir.path()).unwrap();
        assert_eq!((train.len(), test.len()), (5, 3));
        let item = train.get(1).unwrap();
        assert_eq!(item.label, 1);
        let first = (40.0 / 255.0 - MEAN[0]) / STD[0];
        assert!((item.pixels[0] - first).abs() < 1e-6);
    }

    #[test]
    fn missing_file_names_both_accepted_names_and_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 2, false);
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("t10k-images-idx3-ubyte, t10k-images-idx3-ubyte.gz"),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("never downloads"), "{msg}");
    }

    #[test]
    fn wrong_magic_and_truncated_data_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "t10k", 2, false);
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx(0x0801, &[2], &[0, 0]),
        )
        .unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("magic number 0x00000801, expected 0x00000803"),
            "{msg}"
        );
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx(0x0803, &[2, 2, 2], &[0; 7]),
        )
        .unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("need 8 bytes of data, the file has 7"),
            "{msg}"
        );
    }
}
