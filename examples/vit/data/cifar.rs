//! CIFAR-10 from the standard binary batches (`data_batch_1.bin` … `data_batch_5.bin`,
//! `test_batch.bin`), in the data directory or its `cifar-10-batches-bin/` subdirectory.

use std::path::{Path, PathBuf};

use super::{read_any, ByteImages, DataError};

const DATASET: &str = "cifar10";
const SIDE: usize = 32;
/// One record: a label byte, then the red, green and blue 32×32 planes.
const RECORD: usize = 1 + 3 * SIDE * SIDE;
/// Per-channel mean and standard deviation of the training pixels.
const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// The train (five batches) and test splits.
///
/// # Errors
/// A missing batch (naming the accepted names and directory) or a malformed one.
pub fn load(dir: &Path) -> Result<(ByteImages, ByteImages), DataError> {
    let dir = batches_dir(dir);
    let train: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    Ok((
        read_batches(&dir, &train)?,
        read_batches(&dir, &["test_batch.bin".to_string()])?,
    ))
}

/// The directory holding the batches: `dir` itself, or the archive's own folder inside it.
fn batches_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("cifar-10-batches-bin");
    if !dir.join("test_batch.bin").is_file() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

fn read_batches(dir: &Path, names: &[String]) -> Result<ByteImages, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for name in names {
        let (path, bytes) = read_any(DATASET, name, dir, std::slice::from_ref(name))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(DataError::Malformed {
                dataset: DATASET,
                path,
                reason: format!(
                    "{} bytes is not a whole number of {RECORD}-byte records (label + 3×32×32 pixels)",
                    bytes.len()
                ),
            });
        }
        for record in bytes.chunks_exact(RECORD) {
            if record[0] > 9 {
                return Err(DataError::Malformed {
                    dataset: DATASET,
                    path,
                    reason: format!("label {} is not a class 0–9", record[0]),
                });
            }
            labels.push(record[0]);
            pixels.extend_from_slice(&record[1..]);
        }
    }
    Ok(ByteImages::new(pixels, labels, 3, SIDE, MEAN, STD))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::Dataset;

    fn batch(n: usize, first_label: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.push((first_label + i as u8) % 10);
            out.extend((0..3 * SIDE * SIDE).map(|p| (p / (SIDE * SIDE) * 100) as u8));
        }
        out
    }

    #[test]
    fn reads_the_nested_archive_folder() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&dir).unwrap();
        for i in 1..=5 {
            std::fs::write(dir.join(format!("data_batch_{i}.bin")), batch(2, i)).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), batch(3, 0)).unwrap();
        let (train, test) = load(root.path()).unwrap();
        assert_eq!((train.len(), test.len()), (10, 3));
        let item = train.get(2).unwrap();
        assert_eq!(item.label, 2);
        // the blue plane (byte 200) normalised with the blue statistics
        let blue = (200.0 / 255.0 - MEAN[2]) / STD[2];
        assert!((item.pixels[2 * SIDE * SIDE] - blue).abs() < 1e-6);
    }

    #[test]
    fn errors_name_the_batch_and_the_record_size() {
        let dir = tempfile::tempdir().unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("data_batch_1.bin"), "{msg}");
        for i in 1..=5 {
            std::fs::write(dir.path().join(format!("data_batch_{i}.bin")), batch(1, 0)).unwrap();
        }
        std::fs::write(dir.path().join("test_batch.bin"), vec![0u8; 100]).unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("test_batch.bin") && msg.contains("3073-byte records"),
            "{msg}"
        );
    }
}
