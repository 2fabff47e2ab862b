//! A synthetic image classification task that a small ViT learns in minutes on a CPU.
//!
//! Class `c` is a colour grating: a sinusoid whose orientation (`π·c/classes`) and frequency
//! (2–4 cycles per image) depend on the class, tinted by a class colour, with a random phase,
//! a random contrast and Gaussian noise per image. The phase makes pixel memorisation useless:
//! the model has to learn orientation, frequency and colour. Every image is a pure function of
//! `(seed, split, index)`, so all ranks and all runs see the same data without storing it.

use burn::data::dataset::{Dataset, DatasetError};

use super::ImageItem;

/// Synthetic images are RGB.
pub const CHANNELS: usize = 3;

/// Deterministic, class-conditioned images generated on demand.
#[derive(Debug, Clone)]
pub struct SyntheticDataset {
    seed: u64,
    split: u64,
    len: usize,
    size: usize,
    noise: f32,
    classes: Vec<ClassPattern>,
}

#[derive(Debug, Clone, Copy)]
struct ClassPattern {
    /// Direction of the wave vector, scaled by cycles per image / size, in radians per pixel.
    kx: f32,
    ky: f32,
    /// Colour of the grating per channel.
    tint: [f32; CHANNELS],
}

impl SyntheticDataset {
    /// `len` images of side `size` over `num_classes` classes, with Gaussian pixel noise of
    /// standard deviation `noise` (the gratings' amplitude is about 1); `split` separates
    /// train (0) from validation (1) so they never share an image.
    pub fn new(
        seed: u64,
        split: u64,
        len: usize,
        size: usize,
        num_classes: usize,
        noise: f32,
    ) -> Self {
        let classes = (0..num_classes)
            .map(|c| {
                let mut rng = SplitMix64::new(seed ^ 0x0C1A_55E5 ^ (c as u64).wrapping_mul(0x9E37));
                let theta = std::f32::consts::PI * c as f32 / num_classes as f32;
                let cycles = 2.0 + (c % 3) as f32;
                let k = 2.0 * std::f32::consts::PI * cycles / size as f32;
                let tint = [0; CHANNELS].map(|_| 0.5 + rng.unit() as f32);
                ClassPattern {
                    kx: k * theta.cos(),
                    ky: k * theta.sin(),
                    tint,
                }
            })
            .collect();
        SyntheticDataset {
            seed,
            split,
            len,
            size,
            noise,
            classes,
        }
    }
}

impl Dataset<ImageItem> for SyntheticDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let mut rng = SplitMix64::new(
            self.seed
                .wrapping_add(self.split.wrapping_mul(0xD1B5_4A32_D192_ED03))
                .wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        let label = (rng.next() % self.classes.len() as u64) as usize;
        let class = self.classes[label];
        let phase = 2.0 * std::f32::consts::PI * rng.unit() as f32;
        let contrast = 0.6 + 0.8 * rng.unit() as f32;
        let s = self.size;
        let mut pixels = Vec::with_capacity(CHANNELS * s * s);
        for tint in class.tint {
            for y in 0..s {
                for x in 0..s {
                    let wave = (class.kx * x as f32 + class.ky * y as f32 + phase).cos();
                    pixels.push(contrast * tint * wave + self.noise * rng.gaussian() as f32);
                }
            }
        }
        Ok(ImageItem { pixels, label })
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// SplitMix64: tiny, fast, and good enough for test images (not for cryptography).
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn gaussian(&mut self) -> f64 {
        let u = 1.0 - self.unit(); // (0, 1]
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic_and_splits_differ() {
        let a = SyntheticDataset::new(7, 0, 100, 8, 10, 0.8);
        let b = SyntheticDataset::new(7, 0, 100, 8, 10, 0.8);
        let v = SyntheticDataset::new(7, 1, 100, 8, 10, 0.8);
        assert_eq!(a.get(42).unwrap(), b.get(42).unwrap());
        assert_ne!(a.get(42).unwrap().pixels, v.get(42).unwrap().pixels);
        assert_eq!(a.get(3).unwrap().pixels.len(), 3 * 8 * 8);
    }

    #[test]
    fn labels_cover_more_classes_than_a_byte_holds() {
        let d = SyntheticDataset::new(3, 0, 4000, 4, 1000, 1.0);
        let labels: Vec<usize> = (0..4000).map(|i| d.get(i).unwrap().label).collect();
        assert!(labels.iter().all(|&l| l < 1000));
        assert!(
            labels.iter().any(|&l| l > 255),
            "the original's 1000 classes"
        );
    }

    #[test]
    fn classes_are_balanced_and_separable_by_a_matched_filter() {
        // Correlating with each class's noiseless grating (best phase) must recover the label
        // far above chance: the task is learnable.
        let (n, size, k) = (400, 16, 10);
        let d = SyntheticDataset::new(1, 0, n, size, k, 1.5);
        let mut counts = vec![0usize; k];
        let mut correct = 0;
        for i in 0..n {
            let item = d.get(i).unwrap();
            counts[item.label] += 1;
            let score = |c: &ClassPattern| {
                let (mut re, mut im) = (0.0f32, 0.0f32);
                for (ch, tint) in c.tint.iter().enumerate() {
                    for y in 0..size {
                        for x in 0..size {
                            let p = item.pixels[ch * size * size + y * size + x];
                            let arg = c.kx * x as f32 + c.ky * y as f32;
                            re += tint * p * arg.cos();
                            im += tint * p * arg.sin();
                        }
                    }
                }
                re.hypot(im)
            };
            let best = (0..k)
                .max_by(|&a, &b| score(&d.classes[a]).total_cmp(&score(&d.classes[b])))
                .unwrap();
            correct += usize::from(best == item.label);
        }
        assert!(counts.iter().all(|&c| c > n / k / 2), "{counts:?}");
        assert!(correct > n * 8 / 10, "matched filter got {correct}/{n}");
    }
}
