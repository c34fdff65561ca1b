//! Binary (1-bit) layers for students: what `tinykd-device` runs as XNOR/popcount kernels
//! (format 1.2, `shared/src/binary.rs`), trained as float simulations.
//!
//! A [`BinaryConvBlock`] binarizes its input, `sign(x − τ)` (τ = 0, or a learned per-channel
//! threshold: ReActNet's RSign), convolves it with the signs of latent float weights (optionally
//! scaled per output channel by `mean |w|`, XNOR-Net / Bi-Real's magnitude-aware sign), pads with
//! +1 as the device kernels do, and applies BatchNorm. Whatever consumes its output decides what
//! the device stores: a following binary layer makes it a packed tensor, the BatchNorm and the
//! consumer's sign (and τ) folded into one integer threshold per channel; anything else makes it
//! an int8 tensor.
//!
//! Conventions that keep training and the device in agreement (`shared/reference/bnn-quant.md`):
//! - sign(0) = +1, computed as `x ≥ 0`, never with a `sign` that returns 0;
//! - the forward value of a binarized tensor is exactly ±1; the straight-through gradient is added
//!   as `c(x) − detach(c(x))`, which is exactly 0 in the forward pass;
//! - latent weights are clipped to [−1, 1] after every optimizer step
//!   ([`crate::models::Classifier::after_step`]); without it a weight that drifts past the clip
//!   gets no gradient from the clipped STE again ("starved weights").

use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, PadMode};
use serde::{Deserialize, Serialize};

use super::student::Activation;

/// The pseudo-gradient of the activation sign (the forward pass is always sign, sign(0) = +1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignGrad {
    /// Clipped straight-through estimator: 1 where |x| ≤ 1, else 0 (BinaryNet).
    Ste,
    /// Bi-Real Net's ApproxSign: 2 − 2|x| where |x| ≤ 1, else 0 (also ReActNet's).
    #[default]
    ApproxSign,
}

/// A binary convolution layer, as written in a TOML config:
///
/// ```toml
/// { binary_conv = { out = 64, kernel = 3, padding = 1, threshold = true } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryConvSpec {
    /// Output channels.
    pub out: usize,
    /// Square kernel size (default 3).
    #[serde(default = "three")]
    pub kernel: usize,
    /// Stride (default 1).
    #[serde(default = "one")]
    pub stride: usize,
    /// Padding with +1 on every side (default 1).
    #[serde(default = "one")]
    pub padding: usize,
    /// Scale each output channel by the mean |w| of its latent weights (default true). It folds
    /// into the BatchNorm at export; in training it gives magnitude-aware weight gradients.
    #[serde(default = "yes")]
    pub scale: bool,
    /// Learn a per-channel threshold τ of the input's sign, ReActNet's RSign (default false).
    #[serde(default)]
    pub threshold: bool,
    /// Pseudo-gradient of the input's sign (default `approx_sign`).
    #[serde(default)]
    pub grad: SignGrad,
    /// Activation after the BatchNorm when the output is int8 (the layer before an int8 head);
    /// default none. A packed output is a sign, so an activation there is an error.
    #[serde(default)]
    pub activation: Activation,
    /// ReActNet's RPReLU after the BatchNorm (default false): a learned per-channel shift, slope
    /// and shift, see [`Rprelu`]. Only on a packed output, where it folds into the consumer's
    /// threshold; the device has no such int8 activation.
    #[serde(default)]
    pub rprelu: bool,
    /// Add the layer's int8 input to its output, Bi-Real Net's real-valued shortcut around a
    /// binary convolution (default false). Needs `out` = input channels, stride 1 and a
    /// shape-keeping padding; the output is then int8 (an int8 binary branch plus an `add`).
    #[serde(default)]
    pub shortcut: bool,
}

fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}

impl BinaryConvSpec {
    /// Builds the layer for `in_channels` input channels.
    pub fn init(&self, in_channels: usize, device: &Device) -> BinaryConvBlock {
        let k = self.kernel;
        let fan_in = (in_channels * k * k).max(1) as f64;
        // Kaiming-uniform magnitudes, as a float convolution: small latent weights flip easily.
        let bound = (1.0 / fan_in).sqrt();
        let weight = Tensor::<4>::random(
            [self.out, in_channels, k, k],
            burn::tensor::Distribution::Uniform(-bound, bound),
            device,
        );
        BinaryConvBlock {
            weight: Param::from_tensor(weight),
            bn: BatchNormConfig::new(self.out).init(device),
            threshold: self
                .threshold
                .then(|| Param::from_tensor(Tensor::zeros([in_channels], device))),
            rprelu: self.rprelu.then(|| Rprelu::new(self.out, device)),
            spec: self.clone(),
        }
    }
}

/// Binary convolution + BatchNorm (see the module docs).
#[derive(Module, Debug)]
pub struct BinaryConvBlock {
    /// Latent float weights `[out, in, k, k]`; the forward pass uses their signs.
    pub weight: Param<Tensor<4>>,
    /// BatchNorm after the convolution (folded into thresholds or requantization at export).
    pub bn: BatchNorm,
    /// RSign's learned input threshold τ, one per input channel.
    pub threshold: Option<Param<Tensor<1>>>,
    /// RPReLU after the BatchNorm.
    pub rprelu: Option<Rprelu>,
    /// The layer's settings.
    #[module(skip)]
    pub spec: BinaryConvSpec,
}

impl BinaryConvBlock {
    /// The layer's output before the int8 activation: `BN(conv(sign(x − τ), ±w))`.
    ///
    /// With `binary_weights` false the latent weights are used as they are (step 1 of the
    /// two-step recipe: binary activations, real weights).
    ///
    /// # Shapes
    /// - input `[batch, in, h, w]`, output `[batch, out, h', w']`
    pub fn forward(&self, x: Tensor<4>, binary_weights: bool) -> Tensor<4> {
        let y = self.bn.forward(self.scaled_dot(x, binary_weights));
        match &self.rprelu {
            Some(r) => r.forward(y),
            None => y,
        }
    }

    /// The int8-output stage as the device computes it ([`int8_stage`]): `A·dot + |A|·round(B/|A|)`
    /// with BatchNorm folded from its running statistics.
    pub fn forward_int8(&self, x: Tensor<4>) -> Tensor<4> {
        let [out, ..] = self.weight.dims();
        let dot = self.scaled_dot(x, true) / self.alpha().reshape([1, out, 1, 1]);
        let (a, b) = int8_stage(&self.bn, self.alpha());
        dot * a.reshape([1, out, 1, 1]) + b.reshape([1, out, 1, 1])
    }

    /// The per-output-channel weight scale α (ones without scaling), `[out]`, no gradient.
    fn alpha(&self) -> Tensor<1> {
        let w = self.weight.val();
        let [out, ..] = w.dims();
        match self.spec.scale {
            true => weight_scale(w).reshape([out]).detach(),
            false => Tensor::ones([out], &w.device()),
        }
    }

    /// `conv(sign(x − τ), α·±w)` padded with +1, before BatchNorm.
    fn scaled_dot(&self, x: Tensor<4>, binary_weights: bool) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        let x = match &self.threshold {
            Some(t) => x - t.val().reshape([1, c, 1, 1]),
            None => x,
        };
        let xb = binarize(x, self.spec.grad);
        let p = self.spec.padding;
        let xb = if p > 0 {
            xb.pad([(p, p), (p, p)], PadMode::Constant(1.0))
        } else {
            xb
        };
        let w = self.weight.val();
        let w = if binary_weights {
            let wb = binarize(w.clone(), SignGrad::Ste);
            if self.spec.scale {
                wb * weight_scale(w).detach()
            } else {
                wb
            }
        } else {
            w
        };
        let s = self.spec.stride;
        burn::tensor::module::conv2d(xb, w, None, ConvOptions::new([s, s], [0, 0], [1, 1], 1))
    }

    /// The block with its latent weights clipped to [−1, 1].
    pub fn clipped(mut self) -> Self {
        self.weight = self.weight.map(clip_latent);
        self
    }

    /// Products per output, `K = k · k · in`: the `K` of `dot = K − 2p` on the device.
    pub fn products(&self) -> usize {
        let [_, c, kh, kw] = self.weight.dims();
        c * kh * kw
    }
}

/// A binary fully connected layer, as written in a TOML config (over the flattened input):
///
/// ```toml
/// { binary_dense = { out = 256 } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryDenseSpec {
    /// Output features.
    pub out: usize,
    /// As [`BinaryConvSpec::scale`] (default true).
    #[serde(default = "yes")]
    pub scale: bool,
    /// As [`BinaryConvSpec::threshold`], one τ per input channel (default false).
    #[serde(default)]
    pub threshold: bool,
    /// As [`BinaryConvSpec::grad`].
    #[serde(default)]
    pub grad: SignGrad,
    /// As [`BinaryConvSpec::activation`].
    #[serde(default)]
    pub activation: Activation,
    /// As [`BinaryConvSpec::rprelu`].
    #[serde(default)]
    pub rprelu: bool,
}

impl BinaryDenseSpec {
    /// Builds the layer for an input of shape `[channels, height, width]`.
    pub fn init(&self, input: [usize; 3], device: &Device) -> BinaryDenseBlock {
        let fan_in = input.iter().product::<usize>().max(1);
        let bound = (1.0 / fan_in as f64).sqrt();
        BinaryDenseBlock {
            weight: Param::from_tensor(Tensor::<2>::random(
                [self.out, fan_in],
                burn::tensor::Distribution::Uniform(-bound, bound),
                device,
            )),
            bn: BatchNormConfig::new(self.out).init(device),
            threshold: self
                .threshold
                .then(|| Param::from_tensor(Tensor::zeros([input[0]], device))),
            rprelu: self.rprelu.then(|| Rprelu::new(self.out, device)),
            spec: self.clone(),
        }
    }
}

/// Binary fully connected layer + BatchNorm (see the module docs).
#[derive(Module, Debug)]
pub struct BinaryDenseBlock {
    /// Latent float weights `[out, in]` over the CHW-flattened input.
    pub weight: Param<Tensor<2>>,
    /// BatchNorm over the output features.
    pub bn: BatchNorm,
    /// RSign's learned input threshold τ, one per input channel.
    pub threshold: Option<Param<Tensor<1>>>,
    /// RPReLU after the BatchNorm.
    pub rprelu: Option<Rprelu>,
    /// The layer's settings.
    #[module(skip)]
    pub spec: BinaryDenseSpec,
}

impl BinaryDenseBlock {
    /// `BN(sign(x − τ) · ±wᵀ)` before the int8 activation (see [`BinaryConvBlock::forward`]).
    ///
    /// # Shapes
    /// - input `[batch, c, h, w]`, output `[batch, out]`
    pub fn forward(&self, x: Tensor<4>, binary_weights: bool) -> Tensor<2> {
        let y = self.bn.forward(self.scaled_dot(x, binary_weights));
        match &self.rprelu {
            Some(r) => r.forward(y),
            None => y,
        }
    }

    /// As [`BinaryConvBlock::forward_int8`].
    pub fn forward_int8(&self, x: Tensor<4>) -> Tensor<2> {
        let [out, _] = self.weight.dims();
        let dot = self.scaled_dot(x, true) / self.alpha().reshape([1, out]);
        let (a, b) = int8_stage(&self.bn, self.alpha());
        dot * a.reshape([1, out]) + b.reshape([1, out])
    }

    /// As [`BinaryConvBlock::alpha`].
    fn alpha(&self) -> Tensor<1> {
        let w = self.weight.val();
        let [out, inp] = w.dims();
        match self.spec.scale {
            true => weight_scale(w.reshape([out, inp, 1, 1]))
                .reshape([out])
                .detach(),
            false => Tensor::ones([out], &w.device()),
        }
    }

    /// `sign(x − τ) · (α·±w)ᵀ`, before BatchNorm.
    fn scaled_dot(&self, x: Tensor<4>, binary_weights: bool) -> Tensor<2> {
        let [_, c, _, _] = x.dims();
        let x = match &self.threshold {
            Some(t) => x - t.val().reshape([1, c, 1, 1]),
            None => x,
        };
        let xb = binarize(x, self.spec.grad).flatten::<2>(1, 3);
        let w = self.weight.val();
        let w = if binary_weights {
            let wb = binarize(w.clone(), SignGrad::Ste);
            if self.spec.scale {
                let [out, inp] = w.dims();
                let scale = weight_scale(w.reshape([out, inp, 1, 1])).reshape([out, 1]);
                wb * scale.detach()
            } else {
                wb
            }
        } else {
            w
        };
        xb.matmul(w.transpose())
    }

    /// The block with its latent weights clipped to [−1, 1].
    pub fn clipped(mut self) -> Self {
        self.weight = self.weight.map(clip_latent);
        self
    }
}

/// ReActNet's RPReLU, per channel `c`: `f(z) = z − γ_c + ζ_c` for `z > γ_c`, else
/// `β_c·(z − γ_c) + ζ_c`. The slope is used as `max(β, 0.01)`, so `f` is strictly increasing: then
/// `sign(f(z) − τ) = sign(z − f⁻¹(τ))` and the whole function folds into the consumer's popcount
/// threshold ([`Rprelu::inverse`]). Without a residual stream (ReActNet's) it adds no function a
/// threshold could not express, only another parametrisation to train.
#[derive(Module, Debug)]
pub struct Rprelu {
    /// γ, the input shift.
    pub shift_in: Param<Tensor<1>>,
    /// β, the slope below γ (initialised to 0.25, PReLU's default).
    pub slope: Param<Tensor<1>>,
    /// ζ, the output shift.
    pub shift_out: Param<Tensor<1>>,
}

/// The smallest slope RPReLU uses: keeps it strictly increasing, so it folds into a threshold.
pub const RPRELU_MIN_SLOPE: f32 = 0.01;

impl Rprelu {
    /// Identity shifts and slope 0.25 for `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            shift_in: Param::from_tensor(Tensor::zeros([channels], device)),
            slope: Param::from_tensor(Tensor::full([channels], 0.25, device)),
            shift_out: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    /// Applies it over dimension 1 of `[batch, channels, …]`.
    pub fn forward<const D: usize>(&self, z: Tensor<D>) -> Tensor<D> {
        let mut shape = [1usize; D];
        shape[1] = self.shift_in.dims()[0];
        let g = self.shift_in.val().reshape(shape);
        let b = self.slope.val().clamp_min(RPRELU_MIN_SLOPE).reshape(shape);
        let zeta = self.shift_out.val().reshape(shape);
        let x = z - g;
        let below = x.clone().lower_equal_elem(0.0);
        x.clone().mask_where(below, x * b) + zeta
    }

    /// `f⁻¹(v)` for channel `c`, in f64 (for folding the consumer's threshold τ = `v`).
    pub fn inverse(&self, c: usize, v: f64) -> f64 {
        let at = |p: &Param<Tensor<1>>| {
            let v: Vec<f32> = p
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .unwrap_or_default();
            f64::from(v.get(c).copied().unwrap_or(0.0))
        };
        let (g, b, zeta) = (at(&self.shift_in), at(&self.slope), at(&self.shift_out));
        let b = b.max(f64::from(RPRELU_MIN_SLOPE));
        if v >= zeta {
            v - zeta + g
        } else {
            (v - zeta) / b + g
        }
    }
}

/// The int8 output stage of a binary layer, per channel: with BatchNorm folded from its running
/// statistics, `z = A·dot + B` (`A = γα/√(σ²+ε)`, `B = β − γμ/√(σ²+ε)`); the device stores `B` in
/// whole units of one ±1 product (`bias = round(B/|A|)`, SPEC §3.2), so this returns
/// `(A, |A|·round(B/|A|))`, the rounding with a straight-through gradient. Quantization-aware
/// training and the int8 simulation use it, so they compute what the device computes.
pub fn int8_stage(bn: &BatchNorm, alpha: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
    let sd = (bn.running_var.value() + bn.epsilon).sqrt();
    let g = bn.gamma.val() / sd;
    let a = g.clone() * alpha;
    let b = bn.beta.val() - g * bn.running_mean.value();
    let units = b / a.clone().abs();
    let rounded = units.clone() + (units.clone().round() - units).detach();
    (a.clone(), a.abs() * rounded)
}

/// Latent weights clipped to [−1, 1], a fresh leaf that keeps its `require_grad`.
fn clip_latent<const D: usize>(w: Tensor<D>) -> Tensor<D> {
    let grad = w.is_require_grad();
    let w = w.detach().clamp(-1.0, 1.0).detach();
    if grad {
        w.require_grad()
    } else {
        w
    }
}

/// Per-output-channel scale `α_c = mean |w_c|`, `[out, 1, 1, 1]`.
pub fn weight_scale(w: Tensor<4>) -> Tensor<4> {
    let [out, ..] = w.dims();
    w.abs()
        .flatten::<2>(1, 3)
        .mean_dim(1)
        .reshape([out, 1, 1, 1])
}

/// `±1` with sign(0) = +1 in the forward pass and `grad`'s pseudo-gradient in the backward pass.
pub fn binarize<const D: usize>(x: Tensor<D>, grad: SignGrad) -> Tensor<D> {
    let sign = x.clone().greater_equal_elem(0.0).float() * 2.0 - 1.0;
    let clipped = x.clamp(-1.0, 1.0);
    let surrogate = match grad {
        SignGrad::Ste => clipped,
        // x(2 − |x|) on [−1, 1]: the piecewise quadratic whose derivative is 2 − 2|x|.
        SignGrad::ApproxSign => clipped.clone() * (clipped.abs().neg() + 2.0),
    };
    sign.detach() + (surrogate.clone() - surrogate.detach())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::default()
    }

    #[test]
    fn sign_of_zero_is_plus_one_and_values_are_exact() {
        let x = Tensor::<1>::from_floats([-2.0, -0.5, 0.0, 1e-30, 0.7, 3.0], &dev());
        let y: Vec<f32> = binarize(x, SignGrad::ApproxSign)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(y, vec![-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn pseudo_gradients_are_the_documented_ones() {
        let d = dev().autodiff();
        let xs = [-1.5f32, -0.5, 0.0, 0.25, 0.9, 1.2];
        for (grad, want) in [
            (SignGrad::Ste, [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
            (SignGrad::ApproxSign, [0.0, 1.0, 2.0, 1.5, 0.2, 0.0]),
        ] {
            let x = Tensor::<1>::from_floats(xs, &d).require_grad();
            let g = binarize(x.clone(), grad).sum().backward();
            let got: Vec<f32> = x.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap();
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{grad:?}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn padding_is_plus_one_and_the_output_is_a_signed_count() {
        // One input channel of −1s, one filter of +1s, no scale: a 3×3 window over a 1×1
        // input padded with +1 sees 8 padded +1 and one −1 → dot = 7.
        let spec = BinaryConvSpec {
            out: 1,
            kernel: 3,
            stride: 1,
            padding: 1,
            scale: false,
            threshold: false,
            grad: SignGrad::Ste,
            activation: Activation::None,
            rprelu: false,
            shortcut: false,
        };
        let block = spec.init(1, &dev());
        let block = BinaryConvBlock {
            weight: Param::from_tensor(Tensor::ones([1, 1, 3, 3], &dev())),
            ..block
        };
        let x = Tensor::<4>::full([1, 1, 1, 1], -3.0, &dev());
        let xb = binarize(x, SignGrad::Ste).pad([(1, 1), (1, 1)], PadMode::Constant(1.0));
        let w = binarize(block.weight.val(), SignGrad::Ste);
        let y =
            burn::tensor::module::conv2d(xb, w, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        assert_eq!(y.into_scalar::<f32>(), 7.0);
        assert_eq!(block.products(), 9);
    }

    #[test]
    fn clipping_bounds_the_latent_weights() {
        let spec = BinaryConvSpec {
            out: 2,
            kernel: 1,
            stride: 1,
            padding: 0,
            scale: true,
            threshold: true,
            grad: SignGrad::ApproxSign,
            activation: Activation::None,
            rprelu: false,
            shortcut: false,
        };
        let block = spec.init(2, &dev());
        let block = BinaryConvBlock {
            weight: Param::from_tensor(Tensor::from_floats(
                [[[[3.0]], [[-0.5]]], [[[-2.0]], [[0.25]]]],
                &dev(),
            )),
            ..block
        }
        .clipped();
        let w: Vec<f32> = block.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w, vec![1.0, -0.5, -1.0, 0.25]);
    }
}

#[cfg(test)]
mod int8_stage_tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The device's int8 stage differs from BatchNorm only by the rounding of the bias to whole
    /// product units: at most |A|/2 per output.
    #[test]
    fn int8_stage_is_batchnorm_up_to_half_a_product() {
        let device = Device::default();
        device.seed(3);
        let spec = BinaryDenseSpec {
            out: 6,
            scale: true,
            threshold: true,
            grad: SignGrad::Ste,
            activation: Activation::None,
            rprelu: false,
        };
        let mut block = spec.init([5, 2, 2], &device);
        let p = |s: f64| {
            Param::from_tensor(Tensor::<1>::random(
                [6],
                Distribution::Normal(0.2, s),
                &device,
            ))
        };
        block.bn.gamma = p(1.0);
        block.bn.beta = p(3.0);
        let x = Tensor::<4>::random([8, 5, 2, 2], Distribution::Normal(0.0, 1.0), &device);
        let exact: Vec<f32> = block
            .forward(x.clone(), true)
            .into_data()
            .try_to_vec()
            .unwrap();
        let stage: Vec<f32> = block.forward_int8(x).into_data().try_to_vec().unwrap();
        let (a, _) = int8_stage(&block.bn, block.alpha());
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        for (i, (e, s)) in exact.iter().zip(&stage).enumerate() {
            let half = a[i % 6].abs() / 2.0 + 1e-5;
            assert!(
                (e - s).abs() <= half,
                "output {i}: {e} vs {s}, |A|/2 = {half}"
            );
        }
    }
}
