//! Datasets (synthetic, MNIST, CIFAR-10; never downloaded), per-rank shards and batching.

mod cifar;
mod mnist;
mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::transform::PartialDataset;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use serde::Serialize;

pub use synthetic::SyntheticDataset;

/// Which images to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Deterministic class-conditioned images generated on the fly (no files needed).
    Synthetic,
    /// MNIST from the standard IDX files (`train-images-idx3-ubyte` …, gzipped or not).
    Mnist,
    /// CIFAR-10 from the standard binary batches (`data_batch_1.bin` … `test_batch.bin`).
    Cifar10,
}

impl DatasetKind {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// Image side of a file dataset (none for synthetic, whose size is configurable).
    pub fn native_size(self) -> Option<usize> {
        match self {
            DatasetKind::Synthetic => None,
            DatasetKind::Mnist => Some(28),
            DatasetKind::Cifar10 => Some(32),
        }
    }

    /// Channels of a file dataset.
    pub fn native_channels(self) -> Option<usize> {
        match self {
            DatasetKind::Synthetic => None,
            DatasetKind::Mnist => Some(1),
            DatasetKind::Cifar10 => Some(3),
        }
    }
}

/// A dataset that could not be read: always names the file and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// None of the accepted names exists.
    #[error("{dataset}: {what} not found in {dir}: expected one of {expected} (download it yourself; this example never downloads)")]
    Missing {
        /// Dataset name.
        dataset: &'static str,
        /// What the file holds.
        what: String,
        /// The directory searched.
        dir: PathBuf,
        /// Accepted file names, comma-separated.
        expected: String,
    },
    /// The file exists but is not what its name says.
    #[error("{dataset}: {path} is malformed: {reason}")]
    Malformed {
        /// Dataset name.
        dataset: &'static str,
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be read.
    #[error("{dataset}: cannot read {path}: {source}")]
    Io {
        /// Dataset name.
        dataset: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's answer.
        source: std::io::Error,
    },
}

/// One image, normalised, channel-major (`C × H × W`), and its class.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// Pixel values after normalisation.
    pub pixels: Vec<f32>,
    /// Class index.
    pub label: usize,
}

/// Images stored as bytes (`n × C × H × W`), normalised per channel when read.
#[derive(Debug, Clone)]
pub struct ByteImages {
    pixels: Arc<[u8]>,
    labels: Arc<[u8]>,
    channels: usize,
    size: usize,
    mean: [f32; 3],
    std: [f32; 3],
}

impl ByteImages {
    /// Wraps decoded bytes; `pixels.len()` must be `labels.len() × channels × size²`.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        channels: usize,
        size: usize,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Self {
        debug_assert_eq!(pixels.len(), labels.len() * channels * size * size);
        ByteImages {
            pixels: pixels.into(),
            labels: labels.into(),
            channels,
            size,
            mean,
            std,
        }
    }

    /// The largest label present plus one.
    pub fn num_classes(&self) -> usize {
        self.labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1)
    }
}

impl Dataset<ImageItem> for ByteImages {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let plane = self.size * self.size;
        let n = self.channels * plane;
        let bytes = &self.pixels[index * n..(index + 1) * n];
        let pixels = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let c = i / plane;
                (b as f32 / 255.0 - self.mean[c]) / self.std[c]
            })
            .collect();
        Ok(ImageItem {
            pixels,
            label: usize::from(self.labels[index]),
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Shared handle to a dataset of images.
pub type Images = Arc<dyn Dataset<ImageItem>>;

/// The train and validation splits, with their image geometry.
pub struct Splits {
    /// Training images (all of them; see [`shard`]).
    pub train: Images,
    /// Validation images.
    pub valid: Images,
    /// Channels per image.
    pub channels: usize,
    /// Image side.
    pub image_size: usize,
    /// Classes present.
    pub num_classes: usize,
    /// Where the data came from, for the summary.
    pub source: String,
}

/// What the synthetic generator needs (file datasets ignore it).
#[derive(Debug, Clone, Copy)]
pub struct SyntheticSpec {
    /// Image side.
    pub image_size: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Training images.
    pub train_len: usize,
    /// Validation images.
    pub valid_len: usize,
    /// Pixel noise (standard deviation).
    pub noise: f32,
    /// Generator seed.
    pub seed: u64,
}

/// Loads `kind` from `dir` (file datasets) or builds it (synthetic).
///
/// # Errors
/// A missing or malformed file, naming what was expected where.
pub fn load(kind: DatasetKind, dir: &Path, spec: SyntheticSpec) -> Result<Splits, DataError> {
    match kind {
        DatasetKind::Synthetic => {
            let make = |split, len| {
                Arc::new(SyntheticDataset::new(
                    spec.seed,
                    split,
                    len,
                    spec.image_size,
                    spec.num_classes,
                    spec.noise,
                )) as Images
            };
            Ok(Splits {
                train: make(0, spec.train_len),
                valid: make(1, spec.valid_len),
                channels: synthetic::CHANNELS,
                image_size: spec.image_size,
                num_classes: spec.num_classes,
                source: format!(
                    "synthetic ({} classes, {}×{}, noise {}, seed {})",
                    spec.num_classes, spec.image_size, spec.image_size, spec.noise, spec.seed
                ),
            })
        }
        DatasetKind::Mnist => {
            let (train, valid) = mnist::load(dir)?;
            Ok(splits_of(
                train,
                valid,
                format!("MNIST from {}", dir.display()),
            ))
        }
        DatasetKind::Cifar10 => {
            let (train, valid) = cifar::load(dir)?;
            Ok(splits_of(
                train,
                valid,
                format!("CIFAR-10 from {}", dir.display()),
            ))
        }
    }
}

fn splits_of(train: ByteImages, valid: ByteImages, source: String) -> Splits {
    Splits {
        channels: train.channels,
        image_size: train.size,
        num_classes: train.num_classes().max(valid.num_classes()),
        train: Arc::new(train),
        valid: Arc::new(valid),
        source,
    }
}

/// Rank `rank`'s part of `data`: an equal, contiguous share of `world` (the remainder is
/// dropped so every rank runs the same number of steps), then at most `limit` images of it.
pub fn shard(data: Images, rank: usize, world: usize, limit: Option<usize>) -> Images {
    let per_rank = data.len() / world.max(1);
    let start = rank * per_rank;
    let len = limit.map_or(per_rank, |l| l.min(per_rank));
    Arc::new(PartialDataset::new(data, start, start + len))
}

/// Reads the first existing file among `names` in `dir`, gunzipping `.gz` files.
fn read_any(
    dataset: &'static str,
    what: &str,
    dir: &Path,
    names: &[String],
) -> Result<(PathBuf, Vec<u8>), DataError> {
    use std::io::Read;
    for name in names {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let io = |source| DataError::Io {
            dataset,
            path: path.clone(),
            source,
        };
        let raw = std::fs::read(&path).map_err(io)?;
        if !name.ends_with(".gz") {
            return Ok((path, raw));
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Malformed {
                dataset,
                path: path.clone(),
                reason: format!("not a valid gzip file ({e})"),
            })?;
        return Ok((path, out));
    }
    Err(DataError::Missing {
        dataset,
        what: what.to_string(),
        dir: dir.to_path_buf(),
        expected: names.join(", "),
    })
}

/// A batch on the training device.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// `[B, C, H, W]`.
    pub images: Tensor<4>,
    /// `[B]` class indices.
    pub targets: Tensor<1, Int>,
}

/// Stacks [`ImageItem`]s into an [`ImageBatch`].
#[derive(Debug, Clone, Copy)]
pub struct ImageBatcher {
    /// Channels per image.
    pub channels: usize,
    /// Image side.
    pub size: usize,
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let b = items.len();
        let mut pixels = Vec::with_capacity(b * self.channels * self.size * self.size);
        let mut labels = Vec::with_capacity(b);
        for item in items {
            pixels.extend_from_slice(&item.pixels);
            labels.push(item.label as i64);
        }
        let shape = [b, self.channels, self.size, self.size];
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, shape), device),
            targets: Tensor::from_data(TensorData::new(labels, [b]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_images_normalise_per_channel() {
        let pixels = vec![0, 255, 51, 102, /* second image */ 255, 255, 255, 255];
        let d = ByteImages::new(pixels, vec![3, 1], 1, 2, [0.2, 0.0, 0.0], [0.5, 1.0, 1.0]);
        assert_eq!(d.len(), 2);
        assert_eq!(d.num_classes(), 4);
        let item = d.get(0).unwrap();
        assert_eq!(item.label, 3);
        let expected = [-0.4, 1.6, 0.0, 0.4];
        for (a, b) in item.pixels.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", item.pixels);
        }
    }

    #[test]
    fn shards_are_equal_and_disjoint() {
        let labels: Vec<u8> = (0..10).collect();
        let d: Images = Arc::new(ByteImages::new(
            labels.clone(),
            labels,
            1,
            1,
            [0.0; 3],
            [1.0; 3],
        ));
        let a = shard(d.clone(), 0, 3, None);
        let b = shard(d.clone(), 1, 3, None);
        let c = shard(d.clone(), 2, 3, Some(2));
        assert_eq!((a.len(), b.len(), c.len()), (3, 3, 2));
        let first = |s: &Images| s.get(0).unwrap().label;
        assert_eq!((first(&a), first(&b), first(&c)), (0, 3, 6));
    }

    #[test]
    fn batcher_stacks_images_and_labels() {
        let items = vec![
            ImageItem {
                pixels: vec![1.0; 4],
                label: 2,
            },
            ImageItem {
                pixels: vec![2.0; 4],
                label: 5,
            },
        ];
        let batch = ImageBatcher {
            channels: 1,
            size: 2,
        }
        .batch(items, &Device::flex());
        assert_eq!(batch.images.dims(), [2, 1, 2, 2]);
        let labels: Vec<i64> = batch.targets.into_data().iter::<i64>().collect();
        assert_eq!(labels, [2, 5]);
        let sum: f32 = batch.images.sum().into_scalar::<f32>();
        assert_eq!(sum, 12.0);
    }
}
