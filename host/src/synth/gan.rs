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

/// The generator: noise and a class label to a `[1, 28, 28]` image in `[-1, 1]`.
#[derive(Module, Debug)]
pub struct Generator {
    embed: Embedding,
    project: Linear,
    bn0: BatchNorm,
    up1: ConvTranspose2d,
    bn1: BatchNorm,
    up2: ConvTranspose2d,
    width: usize,
    z_dim: usize,
}

impl Generator {
    /// A generator with latent size `z_dim`, base width `width` and `classes` classes.
    pub fn new(z_dim: usize, width: usize, classes: usize, device: &Device) -> Self {
        let embed_dim = classes.max(2);
        Self {
            embed: EmbeddingConfig::new(classes, embed_dim).init(device),
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

    /// Images for noise `z` `[batch, z_dim]` and labels `[batch]`: `[batch, 1, 28, 28]` in
    /// `[-1, 1]`.
    pub fn forward(&self, z: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<4> {
        let b = z.dims()[0];
        let e = self
            .embed
            .forward(labels.unsqueeze_dim(1))
            .squeeze_dim::<2>(1);
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
    embed: Embedding,
}

impl Discriminator {
    /// A discriminator of base width `width` for `classes` classes.
    pub fn new(width: usize, classes: usize, device: &Device) -> Self {
        let features = 2 * width * BASE * BASE;
        Self {
            conv1: down(1, width, device),
            conv2: down(width, 2 * width, device),
            psi: LinearConfig::new(features, 1).init(device),
            embed: EmbeddingConfig::new(classes, features).init(device),
        }
    }

    /// Scores `[batch]` of images `[batch, 1, 28, 28]` (in `[-1, 1]`) with labels `[batch]`.
    pub fn forward(&self, images: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
        let h = leaky_relu(self.conv1.forward(images), 0.2);
        let h = leaky_relu(self.conv2.forward(h), 0.2);
        let h: Tensor<2> = h.flatten(1, 3);
        let e = self
            .embed
            .forward(labels.unsqueeze_dim(1))
            .squeeze_dim::<2>(1);
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
        let g = Generator::new(16, 8, 10, &d);
        let z = Tensor::<2>::zeros([3, 16], &d);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 4, 9], [3]), &d);
        let x = g.forward(z, y.clone());
        assert_eq!(x.dims(), [3, 1, 28, 28]);
        let v: Vec<f32> = x.clone().into_data().try_into_vec::<f32>().unwrap();
        assert!(v.iter().all(|p| (-1.0..=1.0).contains(p)), "tanh range");
        let disc = Discriminator::new(8, 10, &d);
        assert_eq!(disc.forward(x, y).dims(), [3]);
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
