//! The Vision Transformer: patch embedding, learned position embedding, class token or mean
//! pooling, pre-norm encoder blocks, final layer norm, linear head.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::*;
use burn::train::ClassificationOutput;
use serde::Serialize;

/// How the token sequence becomes one vector per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Average over the patch tokens (the original's `global_pool="avg"`).
    Mean,
    /// A learned class token prepended to the sequence; its output is classified.
    Cls,
}

/// Architecture of the ViT; `embed_dim = num_heads * head_dim`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VitConfig {
    /// Input images are `image_size × image_size`.
    pub image_size: usize,
    /// Input channels (1 for MNIST, 3 otherwise).
    pub channels: usize,
    /// Side of a square patch; must divide `image_size`.
    pub patch_size: usize,
    /// Attention heads per block.
    pub num_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Encoder blocks.
    pub depth: usize,
    /// Hidden width of the MLP as a multiple of the embedding width.
    pub mlp_ratio: usize,
    /// Dropout after the position embedding and inside every block.
    pub dropout: f64,
    /// Output classes.
    pub num_classes: usize,
    /// Class token or mean pooling.
    pub pool: Pool,
}

impl VitConfig {
    /// Width of the token embeddings.
    pub fn embed_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Patches per image.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Tokens the encoder sees (patches, plus the class token if any).
    pub fn num_tokens(&self) -> usize {
        self.num_patches() + usize::from(self.pool == Pool::Cls)
    }

    /// Checks the shape constraints before anything is allocated.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--img-size", self.image_size),
            ("--patch-size", self.patch_size),
            ("--num-heads", self.num_heads),
            ("--head-dim", self.head_dim),
            ("--depth", self.depth),
            ("--mlp-ratio", self.mlp_ratio),
            ("--num-classes", self.num_classes),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be at least 1"));
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "--patch-size {} does not divide --img-size {}",
                self.patch_size, self.image_size
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("--dropout {} must be in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// Floating-point operations of one forward pass of one image (multiply-add = 2), counting
    /// the matrix products: patch embedding, attention projections, attention itself, MLP, head.
    /// Training costs about three times this (forward + backward).
    pub fn forward_flops(&self) -> f64 {
        let d = self.embed_dim() as f64;
        let t = self.num_tokens() as f64;
        let patch_in = (self.channels * self.patch_size * self.patch_size) as f64;
        let d_ff = (self.mlp_ratio * self.embed_dim()) as f64;
        let embed = 2.0 * self.num_patches() as f64 * patch_in * d;
        let projections = 2.0 * t * d * 4.0 * d; // q, k, v, out
        let attention = 2.0 * 2.0 * t * t * d; // q·kᵀ and softmax·v
        let mlp = 2.0 * 2.0 * t * d * d_ff;
        let head = 2.0 * d * self.num_classes as f64;
        embed + self.depth as f64 * (projections + attention + mlp) + head
    }

    /// Builds the model with fresh parameters on `device`.
    pub fn init(&self, device: &Device) -> Vit {
        let d = self.embed_dim();
        let small = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        Vit {
            patch_embed: Conv2dConfig::new([self.channels, d], [self.patch_size; 2])
                .with_stride([self.patch_size; 2])
                .init(device),
            cls_token: (self.pool == Pool::Cls).then(|| small.init([d], device)),
            pos_embed: small.init([self.num_tokens(), d], device),
            pos_drop: DropoutConfig::new(self.dropout).init(),
            encoder: TransformerEncoderConfig::new(
                d,
                self.mlp_ratio * d,
                self.num_heads,
                self.depth,
            )
            .with_dropout(self.dropout)
            .with_norm_first(true)
            .init(device),
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, self.num_classes).init(device),
        }
    }
}

/// A Vision Transformer classifier.
#[derive(Module, Debug)]
pub struct Vit {
    patch_embed: Conv2d,
    cls_token: Option<Param<Tensor<1>>>,
    pos_embed: Param<Tensor<2>>,
    pos_drop: Dropout,
    encoder: TransformerEncoder,
    norm: LayerNorm,
    head: Linear,
}

impl Vit {
    /// Logits `[B, classes]` of images `[B, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.patch_embed.forward(images); // [B, D, H/p, W/p]
        let [b, d, h, w] = x.dims();
        let mut x = x.reshape([b, d, h * w]).swap_dims(1, 2); // [B, N, D]
        if let Some(cls) = &self.cls_token {
            let cls = cls.val().reshape([1, 1, d]).expand([b, 1, d]);
            x = Tensor::cat(vec![cls, x], 1);
        }
        let x = self
            .pos_drop
            .forward(x + self.pos_embed.val().unsqueeze::<3>());
        let x = self
            .norm
            .forward(self.encoder.forward(TransformerEncoderInput::new(x)));
        let pooled = match self.cls_token {
            Some(_) => x.narrow(1, 0, 1).reshape([b, d]),
            None => x.mean_dim(1).reshape([b, d]),
        };
        self.head.forward(pooled)
    }

    /// Loss, logits and targets of one batch.
    pub fn forward_classification(
        &self,
        images: Tensor<4>,
        targets: Tensor<1, Int>,
    ) -> ClassificationOutput {
        let output = self.forward(images);
        let loss = CrossEntropyLossConfig::new()
            .init(&output.device())
            .forward(output.clone(), targets.clone());
        ClassificationOutput::new(loss, output, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(pool: Pool) -> VitConfig {
        VitConfig {
            image_size: 8,
            channels: 3,
            patch_size: 4,
            num_heads: 2,
            head_dim: 4,
            depth: 1,
            mlp_ratio: 2,
            dropout: 0.0,
            num_classes: 5,
            pool,
        }
    }

    #[test]
    fn both_poolings_give_logits_per_image() {
        let device = Device::flex();
        for pool in [Pool::Mean, Pool::Cls] {
            let model = tiny(pool).init(&device);
            let logits = model.forward(Tensor::<4>::ones([3, 3, 8, 8], &device));
            assert_eq!(logits.dims(), [3, 5], "{pool:?}");
        }
    }

    #[test]
    fn flops_count_grows_with_depth_and_tokens() {
        let a = tiny(Pool::Mean);
        let mut b = a.clone();
        b.depth = 2;
        assert!(b.forward_flops() > a.forward_flops());
        let mut c = a.clone();
        c.patch_size = 2; // 16 patches instead of 4
        assert!(c.forward_flops() > a.forward_flops());
        // patch embed 2·4·48·8 + block (2·4·8·32 + 4·16·8 + 4·4·8·16) + head 2·8·5
        assert_eq!(a.forward_flops(), 3072.0 + 2048.0 + 512.0 + 2048.0 + 80.0);
    }

    #[test]
    fn validation_names_the_flag() {
        let mut c = tiny(Pool::Mean);
        c.patch_size = 3;
        assert!(c.validate().unwrap_err().contains("--patch-size 3"));
        c.patch_size = 4;
        c.depth = 0;
        assert!(c.validate().unwrap_err().contains("--depth"));
    }
}
