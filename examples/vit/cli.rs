//! Command line: flags, model presets, and their resolution into one [`RunConfig`].

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Serialize;

use crate::data::DatasetKind;
use crate::device::DeviceName;
use crate::model::{Pool, VitConfig};

/// Train a Vision Transformer with burn, tracked by ezpz; distributed under `mpirun -np N`.
///
/// Precedence: an explicit flag beats the `--model` preset, which beats the defaults.
/// Without a preset the model is small enough to train in a few minutes on two CPU cores.
#[derive(Debug, Clone, Parser)]
#[command(name = "vit", version, about, long_about = None)]
pub struct Args {
    /// Images to train on. `synthetic` needs no files; `mnist` and `cifar10` read the standard
    /// files from --data-dir (nothing is ever downloaded).
    #[arg(long, value_enum, default_value = "synthetic")]
    pub dataset: DatasetKind,

    /// Directory with the dataset's files [default: data/<dataset>].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Model preset (batch size, heads, head width, depth), like the original's `--model`.
    #[arg(long, value_enum, value_name = "PRESET")]
    pub model: Option<Preset>,

    /// Image side in pixels (file datasets fix it: 28 for MNIST, 32 for CIFAR-10) [default: 32].
    #[arg(long, alias = "img_size", value_name = "PX")]
    pub img_size: Option<usize>,

    /// Patch side in pixels; must divide the image side [default: 4].
    #[arg(long, alias = "patch_size", value_name = "PX")]
    pub patch_size: Option<usize>,

    /// Attention heads per block [default: 4].
    #[arg(long, alias = "num_heads")]
    pub num_heads: Option<usize>,

    /// Width of each attention head; the embedding is num-heads × head-dim [default: 16].
    #[arg(long, alias = "head_dim")]
    pub head_dim: Option<usize>,

    /// Transformer blocks [default: 4].
    #[arg(long)]
    pub depth: Option<usize>,

    /// MLP hidden width as a multiple of the embedding width.
    #[arg(long, default_value_t = 4)]
    pub mlp_ratio: usize,

    /// Dropout rate after the position embedding and inside the blocks.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,

    /// Output classes [default: 10].
    #[arg(long, alias = "num_classes")]
    pub num_classes: Option<usize>,

    /// Mean pooling over patch tokens (the original's choice) or a learned class token.
    #[arg(long, value_enum, default_value = "mean")]
    pub pool: Pool,

    /// Images per step on each rank [default: 32].
    #[arg(long, alias = "batch_size")]
    pub batch_size: Option<usize>,

    /// Optimizer steps in total, over all epochs [default: 600 for synthetic data, one pass
    /// per epoch over the files otherwise].
    #[arg(long, alias = "max_iters", value_name = "STEPS")]
    pub max_iters: Option<usize>,

    /// Epochs; each ends with a validation pass [default: 3 for synthetic data, else 1].
    #[arg(long)]
    pub epochs: Option<usize>,

    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,

    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,

    /// Learning-rate warmup: steps (>= 1) or a fraction of all steps (< 1).
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,

    /// The cosine decay ends at lr × this.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,

    /// Validation images of the synthetic dataset.
    #[arg(long, default_value_t = 1024)]
    pub valid_size: usize,

    /// Pixel noise of the synthetic images (standard deviation; the signal's amplitude is
    /// about 1): higher is harder.
    #[arg(long, default_value_t = 2.0)]
    pub noise: f32,

    /// burn device: `flex` (CPU, always built), `ndarray`, `wgpu`, `cuda` (each needs the cargo
    /// feature of the same name).
    #[arg(long, value_enum, default_value = "flex")]
    pub device: DeviceName,

    /// Tracking backends, comma-separated (`csv,jsonl,tensorboard,mlflow,wandb`, `none`)
    /// [default: EZPZ_TRACKER_BACKENDS, else csv, jsonl, tensorboard and whatever the
    /// environment configures].
    #[arg(long, value_name = "NAMES")]
    pub backends: Option<String>,

    /// Project (experiment) name for the trackers.
    #[arg(long, default_value = "ezpz.examples.vit")]
    pub project: String,

    /// Output directory [default: outputs/<project>/<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    pub outdir: Option<PathBuf>,

    /// Log parameter and gradient norms every N steps (0: never).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub watch_freq: usize,

    /// Print a progress line every N steps when not on a terminal (0: about 20 lines a run).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub log_freq: usize,

    /// Seed for the parameters, the data order and the synthetic images.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Args {
    /// Parses the command line; `--version` also names the cargo features built in (what
    /// the tests check before running this binary).
    pub fn parse_with_features() -> Args {
        let matches = Args::command()
            .version(crate::features::version())
            .get_matches();
        Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The original's model presets (batch size, heads, head width, depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 4 images, 2 heads × 16, 2 blocks: a smoke test.
    Debug,
    /// 64 images, 12 heads × 64, 12 blocks (ViT-B sized).
    S,
    /// 32 images, 16 heads × 64, 16 blocks.
    M,
    /// 16 images, 16 heads × 80, 32 blocks.
    L,
}

impl Preset {
    /// `(batch_size, num_heads, head_dim, depth)`.
    pub fn values(self) -> (usize, usize, usize, usize) {
        match self {
            Preset::Debug => (4, 2, 16, 2),
            Preset::S => (64, 12, 64, 12),
            Preset::M => (32, 16, 64, 16),
            Preset::L => (16, 16, 80, 32),
        }
    }
}

/// Everything a run needs, after presets and defaults; logged as the run's configuration.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// The dataset.
    pub dataset: DatasetKind,
    /// Where its files are.
    pub data_dir: PathBuf,
    /// The preset used, if any.
    pub preset: Option<Preset>,
    /// The architecture.
    pub model: VitConfig,
    /// Images per step per rank.
    pub batch_size: usize,
    /// Step cap over the whole run (None: whole epochs).
    pub max_iters: Option<usize>,
    /// Epochs.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Warmup (steps or fraction).
    pub warmup: f64,
    /// Final learning rate / peak.
    pub min_lr_ratio: f64,
    /// Synthetic validation images.
    pub valid_size: usize,
    /// Synthetic pixel noise.
    pub noise: f32,
    /// The device.
    pub device: DeviceName,
    /// Backends named on the command line.
    pub backends: Option<String>,
    /// Project name.
    pub project: String,
    /// Output directory, if given.
    pub outdir: Option<PathBuf>,
    /// `watch` period.
    pub watch_freq: usize,
    /// Plain progress period.
    pub log_freq: usize,
    /// Seed.
    pub seed: u64,
}

/// Steps of the synthetic default run: a few minutes on two CPU cores.
const SYNTHETIC_ITERS: usize = 600;

impl Args {
    /// Applies the preset and the defaults; checks what can be checked before loading data.
    ///
    /// # Errors
    /// A flag combination that cannot work, with the flag named.
    pub fn resolve(self) -> Result<RunConfig, String> {
        let preset = self.model.map(Preset::values);
        let pick = |flag: Option<usize>, from_preset: Option<usize>, default: usize| {
            flag.or(from_preset).unwrap_or(default)
        };
        let synthetic = self.dataset == DatasetKind::Synthetic;
        let image_size = match (self.dataset.native_size(), self.img_size) {
            (Some(native), Some(asked)) if asked != native => {
                return Err(format!(
                    "--img-size {asked}: {} images are {native}×{native}; leave --img-size out",
                    self.dataset.name()
                ))
            }
            (Some(native), _) => native,
            (None, asked) => asked.unwrap_or(32),
        };
        let model = VitConfig {
            image_size,
            channels: self.dataset.native_channels().unwrap_or(3),
            patch_size: self.patch_size.unwrap_or(4),
            num_heads: pick(self.num_heads, preset.map(|p| p.1), 4),
            head_dim: pick(self.head_dim, preset.map(|p| p.2), 16),
            depth: pick(self.depth, preset.map(|p| p.3), 4),
            mlp_ratio: self.mlp_ratio,
            dropout: self.dropout,
            num_classes: self.num_classes.unwrap_or(10),
            pool: self.pool,
        };
        model.validate()?;
        if !synthetic && model.num_classes < 10 {
            return Err(format!(
                "--num-classes {}: {} has 10 classes",
                model.num_classes,
                self.dataset.name()
            ));
        }
        let batch_size = pick(self.batch_size, preset.map(|p| p.0), 32);
        let epochs = self.epochs.unwrap_or(if synthetic { 3 } else { 1 });
        let max_iters = self.max_iters.or(synthetic.then_some(SYNTHETIC_ITERS));
        for (flag, v) in [("--batch-size", batch_size), ("--epochs", epochs)] {
            if v == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        if max_iters == Some(0) {
            return Err("--max-iters must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr {} must be a positive number", self.lr));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(format!(
                "--min-lr-ratio {} must be in [0, 1]",
                self.min_lr_ratio
            ));
        }
        Ok(RunConfig {
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("data").join(self.dataset.name())),
            dataset: self.dataset,
            preset: self.model,
            model,
            batch_size,
            max_iters,
            epochs,
            lr: self.lr,
            weight_decay: self.weight_decay,
            warmup: self.warmup,
            min_lr_ratio: self.min_lr_ratio,
            valid_size: self.valid_size,
            noise: self.noise,
            device: self.device,
            backends: self.backends,
            project: self.project,
            outdir: self.outdir,
            watch_freq: self.watch_freq,
            log_freq: self.log_freq,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunConfig, String> {
        let mut argv = vec!["vit"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .resolve()
    }

    #[test]
    fn explicit_flags_beat_the_preset_which_beats_defaults() {
        let c = parse(&["--model", "s", "--depth", "3"]).unwrap();
        assert_eq!(
            (c.batch_size, c.model.num_heads, c.model.head_dim),
            (64, 12, 64)
        );
        assert_eq!(c.model.depth, 3);
        let d = parse(&[]).unwrap();
        assert_eq!(
            (d.batch_size, d.model.embed_dim(), d.model.depth),
            (32, 64, 4)
        );
        assert_eq!((d.max_iters, d.epochs), (Some(SYNTHETIC_ITERS), 3));
        assert_eq!(d.data_dir, PathBuf::from("data/synthetic"));
    }

    #[test]
    fn file_datasets_fix_the_geometry_and_run_whole_epochs() {
        let c = parse(&["--dataset", "mnist"]).unwrap();
        assert_eq!((c.model.image_size, c.model.channels), (28, 1));
        assert_eq!((c.max_iters, c.epochs), (None, 1));
        let e = parse(&["--dataset", "cifar10", "--img-size", "64"]).unwrap_err();
        assert!(e.contains("cifar10 images are 32×32"), "{e}");
        let e = parse(&["--dataset", "mnist", "--patch-size", "5"]).unwrap_err();
        assert!(
            e.contains("--patch-size 5 does not divide --img-size 28"),
            "{e}"
        );
    }

    #[test]
    fn underscore_aliases_of_the_original_are_accepted() {
        let c = parse(&["--batch_size", "8", "--max_iters", "5", "--num_heads", "2"]).unwrap();
        assert_eq!(
            (c.batch_size, c.max_iters, c.model.num_heads),
            (8, Some(5), 2)
        );
    }
}
