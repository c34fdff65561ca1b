//! The class-conditional GAN of cGAN-KD, sized for 28×28 grayscale images on a CPU.
//!
//! The paper trains a BigGAN on CIFAR-100; a BigGAN is far too slow for two shared CPU cores, so
//! this is a DCGAN-style pair with the two conditioning devices BigGAN itself uses:
//!
//! - [`Generator`]: `[z, embed(y)]` → linear → `2w×7×7` → BN, ReLU → transposed conv (4×4,
//!   stride 2) → `w×14×14` → BN, ReLU → transposed conv → `1×28×28` → tanh. Images are in
//!   `[-1, 1]` (pixel/127.5 − 1), as in the paper's GAN code.
//! - [`Discriminator`]: two stride-2 4×4 convs with LeakyReLU(0.2) to features `h` of size
//!   `2w·7·7`, then the projection discriminator of Miyato & Koyama (ICLR 2018):
//!   `D(x, y) = ψ(h) + ⟨embed(y), h⟩`. No BatchNorm in D, so real and fake batches never share
//!   statistics.
//!
//! The loss is the hinge loss of the BigGAN/SNGAN code ([`d_hinge_loss`], [`g_hinge_loss`]).
//!
//! For regression the condition is a continuous value in `[0, 1]` ([`Condition::Values`]), as in
//! CcGAN (Ding et al., ICLR 2021), which cGAN-KD uses for its regression tasks: CcGAN maps the
//! label through a pretrained MLP (`y2h`) before both networks; here each network embeds it
//! with its own small MLP ([`LabelEmbed`]), trained with the pair, and the same two devices
//! (concatenation in G, projection in D) consume the embedding.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, tanh};

/// Side of the images the pair generates and judges (Fashion-MNIST, MNIST).
pub const SIDE: usize = 28;
/// Side of the generator's first feature map (two stride-2 upsamplings give [`SIDE`]).
const BASE: usize = SIDE / 4;

/// What a pair is conditioned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditioning {
    /// One of this many classes.
    Classes(usize),
    /// A continuous value in `[0, 1]` (a regression target).
    Value,
}

/// The conditions of a batch.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Class indices, `[batch]`.
    Classes(Tensor<1, Int>),
    /// Values in `[0, 1]`, `[batch]`.
    Values(Tensor<1>),
}

/// Hidden width of a value's embedding MLP (CcGAN's label embedding is 128-dimensional and
/// mapped linearly to D's features; a 16-wide hidden layer keeps D's projection from
/// dwarfing `ψ(h)` at the start: a `features × features` layer made D win outright).
const VALUE_HIDDEN: usize = 16;

/// A condition to a vector: a lookup table for classes, `Linear → ReLU → Linear` for a value.
// One per network, built once: the variants' size difference costs nothing, and a `Box` is not
// a burn module.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum LabelEmbed {
    /// One row per class.
    Classes(Embedding),
    /// A small MLP of the value.
    Value(ValueEmbed),
}

/// The value branch of [`LabelEmbed`].
#[derive(Module, Debug)]
pub struct ValueEmbed {
    hidden: Linear,
    out: Linear,
}

impl LabelEmbed {
    /// An embedding of `dim` values per condition.
    pub fn new(conditioning: Conditioning, dim: usize, device: &Device) -> Self {
        match conditioning {
            Conditioning::Classes(classes) => {
                Self::Classes(EmbeddingConfig::new(classes, dim).init(device))
            }
            Conditioning::Value => Self::Value(ValueEmbed {
                hidden: LinearConfig::new(1, VALUE_HIDDEN).init(device),
                out: LinearConfig::new(VALUE_HIDDEN, dim).init(device),
            }),
        }
    }

    /// `[batch, dim]`.
    ///
    /// # Panics
    /// When the condition is of the other kind than the embedding: the pair and the data that
    /// feeds it are built from the same dataset, so a mismatch is a bug in this module.
    pub fn forward(&self, condition: Condition) -> Tensor<2> {
        match (self, condition) {
            (Self::Classes(table), Condition::Classes(labels)) => {
                table.forward(labels.unsqueeze_dim(1)).squeeze_dim::<2>(1)
            }
            (Self::Value(mlp), Condition::Values(v)) => mlp
                .out
                .forward(relu(mlp.hidden.forward(v.unsqueeze_dim(1)))),
            _ => panic!("a GAN conditioned on classes was given values, or the reverse"),
        }
    }
}

/// The generator: noise and a condition to a `[1, 28, 28]` image in `[-1, 1]`.
#[derive(Module, Debug)]
pub struct Generator {
    embed: LabelEmbed,
    project: Linear,
    bn0: BatchNorm,
    up1: ConvTranspose2d,
    bn1: BatchNorm,
    up2: ConvTranspose2d,
    width: usize,
    z_dim: usize,
}

impl Generator {
    /// A generator with latent size `z_dim`, base width `width` and the given conditioning
    /// (classes embed in `classes` values, a continuous value in 16).
    pub fn new(z_dim: usize, width: usize, conditioning: Conditioning, device: &Device) -> Self {
        let embed_dim = match conditioning {
            Conditioning::Classes(classes) => classes.max(2),
            Conditioning::Value => 16,
        };
        Self {
            embed: LabelEmbed::new(conditioning, embed_dim, device),
            project: LinearConfig::new(z_dim + embed_dim, 2 * width * BASE * BASE).init(device),
            bn0: BatchNormConfig::new(2 * width).init(device),
            up1: up(2 * width, width, device),
            bn1: BatchNormConfig::new(width).init(device),
            up2: up(width, 1, device),
            width,
            z_dim,
        }
    }

    /// Latent size.
    pub fn z_dim(&self) -> usize {
        self.z_dim
    }

    /// Images for noise `z` `[batch, z_dim]` and conditions `[batch]`: `[batch, 1, 28, 28]` in
    /// `[-1, 1]`.
    pub fn forward(&self, z: Tensor<2>, condition: Condition) -> Tensor<4> {
        let b = z.dims()[0];
        let e = self.embed.forward(condition);
        let h = self.project.forward(Tensor::cat(vec![z, e], 1));
        let h = h.reshape([b, 2 * self.width, BASE, BASE]);
        let h = relu(self.bn0.forward(h));
        let h = relu(self.bn1.forward(self.up1.forward(h)));
        tanh(self.up2.forward(h))
    }
}

fn up(c_in: usize, c_out: usize, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([c_in, c_out], [4, 4])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .init(device)
}

fn down(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [4, 4])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// The projection discriminator: a score per (image, label) pair, higher = more real.
#[derive(Module, Debug)]
pub struct Discriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    psi: Linear,
    embed: LabelEmbed,
}

impl Discriminator {
    /// A discriminator of base width `width` with the given conditioning.
    pub fn new(width: usize, conditioning: Conditioning, device: &Device) -> Self {
        let features = 2 * width * BASE * BASE;
        Self {
            conv1: down(1, width, device),
            conv2: down(width, 2 * width, device),
            psi: LinearConfig::new(features, 1).init(device),
            embed: LabelEmbed::new(conditioning, features, device),
        }
    }

    /// Scores `[batch]` of images `[batch, 1, 28, 28]` (in `[-1, 1]`) with conditions
    /// `[batch]`.
    pub fn forward(&self, images: Tensor<4>, condition: Condition) -> Tensor<1> {
        let h = leaky_relu(self.conv1.forward(images), 0.2);
        let h = leaky_relu(self.conv2.forward(h), 0.2);
        let h: Tensor<2> = h.flatten(1, 3);
        let e = self.embed.forward(condition);
        let projection = (e * h.clone()).sum_dim(1);
        (self.psi.forward(h) + projection).flatten(0, 1)
    }
}

/// The two networks trained together; one module, so one checkpoint and one optimizer (Adam's
/// state is per parameter, and each step passes only one network's gradients).
#[derive(Module, Debug)]
pub struct GanPair {
    /// The generator.
    pub generator: Generator,
    /// The discriminator.
    pub discriminator: Discriminator,
}

/// The discriminator's hinge loss, `mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))`.
pub fn d_hinge_loss(real_scores: Tensor<1>, fake_scores: Tensor<1>) -> Tensor<1> {
    relu(real_scores.neg() + 1.0).mean() + relu(fake_scores + 1.0).mean()
}

/// The generator's hinge loss, `−mean(D(fake))`.
pub fn g_hinge_loss(fake_scores: Tensor<1>) -> Tensor<1> {
    fake_scores.mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex()
    }

    #[test]
    fn generator_and_discriminator_shapes() {
        let d = dev();
        let g = Generator::new(16, 8, Conditioning::Classes(10), &d);
        let z = Tensor::<2>::zeros([3, 16], &d);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 4, 9], [3]), &d);
        let x = g.forward(z.clone(), Condition::Classes(y.clone()));
        assert_eq!(x.dims(), [3, 1, 28, 28]);
        let v: Vec<f32> = x.clone().into_data().try_into_vec::<f32>().unwrap();
        assert!(v.iter().all(|p| (-1.0..=1.0).contains(p)), "tanh range");
        let disc = Discriminator::new(8, Conditioning::Classes(10), &d);
        assert_eq!(disc.forward(x, Condition::Classes(y)).dims(), [3]);
        // A continuous condition: different values give different images from the same noise.
        let g = Generator::new(16, 8, Conditioning::Value, &d);
        let v = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.5, 1.0], [3]), &d);
        let x = g.forward(z, Condition::Values(v.clone()));
        assert_eq!(x.dims(), [3, 1, 28, 28]);
        let first = x.clone().narrow(0, 0, 1);
        let last = x.clone().narrow(0, 2, 1);
        let gap: f32 = (first - last).abs().sum().into_scalar();
        assert!(gap > 0.0, "the value conditions the image");
        let disc = Discriminator::new(8, Conditioning::Value, &d);
        assert_eq!(disc.forward(x, Condition::Values(v)).dims(), [3]);
    }

    #[test]
    fn hinge_losses_by_hand() {
        let d = dev();
        let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &d);
        // real: relu(1-2)=0, relu(1-0.5)=0.5 → 0.25; fake: relu(1-3)=0, relu(1+0.5)=1.5 → 0.75.
        let l: f32 = d_hinge_loss(t(vec![2.0, 0.5]), t(vec![-3.0, 0.5])).into_scalar();
        assert!((l - 1.0).abs() < 1e-6, "{l}");
        let g: f32 = g_hinge_loss(t(vec![1.0, 3.0])).into_scalar();
        assert!((g + 2.0).abs() < 1e-6, "{g}");
    }
}
