//! Students sized for microcontrollers.
//!
//! A student is a plain sequence of layers that `tinykd-device` can run (convolution with optional
//! BatchNorm and a fused ReLU/ReLU6, max/average pooling, global average pooling, dense). Keeping
//! the student a list — rather than arbitrary Rust code — is what lets [`crate::export`] lower any
//! student to a blob and [`crate::quant`] simulate its integer arithmetic, layer by layer.
//!
//! The same forward pass serves float training and quantization-aware training: when a
//! [`StudentQuant`] is attached ([`Student::with_quant`]), BatchNorm is folded into the convolution
//! (running statistics, as at export), weights are fake-quantized per output channel and every
//! activation is fake-quantized with the ranges the exporter will write into the blob.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::binary::{BinaryConvBlock, BinaryConvSpec, BinaryDenseBlock, BinaryDenseSpec};
use super::{Classifier, Output};
use crate::data::series::window::resolve_channels;
use crate::data::series::ChannelRef;
use crate::quant::{
    fake_quant_activation, fake_quant_weight_per_channel, fold_batch_norm, StudentQuant,
};

/// The activation fused after a convolution or dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    pub(crate) fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::None => x,
            Activation::Relu => relu(x),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}

/// One layer of a student, as written in a TOML config.
///
/// ```toml
/// layers = [
///   { conv = { out = 16, kernel = 3, padding = 1 } },
///   { max_pool = { kernel = 2 } },
///   "global_avg_pool",
///   { dense = { out = 10 } },
/// ]
/// ```
///
/// Sizes are square (`kernel = 3`) or per axis (`kernel = [1, 5]`, height then width). A window
/// of a multichannel time series is a `[channels, 1, length]` input, so a 1-D convolution is
/// `{ conv = { out = 32, kernel = [1, 5], padding = [0, 2] } }` and a 1-D pool
/// `{ max_pool = { kernel = [1, 2] } }`: the device runs them with its 2-D kernels, as TFLite
/// lowers `Conv1D`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// 2-D convolution, optionally followed by BatchNorm (folded at export) and an activation.
    Conv(ConvSpec),
    /// Binary (XNOR/popcount) convolution + BatchNorm ([`crate::models::binary`]).
    BinaryConv(BinaryConvSpec),
    /// Binary fully connected layer + BatchNorm; flattens its input first.
    BinaryDense(BinaryDenseSpec),
    /// Max pooling (no padding).
    MaxPool(PoolSpec),
    /// Average pooling (no padding).
    AvgPool(PoolSpec),
    /// Average over height and width: `[b, c, h, w]` → `[b, c, 1, 1]`.
    GlobalAvgPool,
    /// Fully connected layer; flattens its input first.
    Dense(DenseSpec),
}

impl LayerSpec {
    /// A 3×3 convolution of `out` channels, stride 1, padding 1 (same size), BatchNorm, ReLU: the
    /// building block of the default students.
    pub fn conv3x3(out: usize) -> Self {
        Self::Conv(ConvSpec {
            out,
            kernel: Hw::square(3),
            stride: Hw::square(1),
            padding: Hw::square(1),
            groups: 1,
            batch_norm: true,
            activation: Activation::Relu,
        })
    }

    /// A 2×2 max pool, stride 2 (halves height and width).
    pub fn max_pool2() -> Self {
        Self::MaxPool(PoolSpec {
            kernel: Hw::square(2),
            stride: None,
        })
    }
}

/// A size along height and width: written `3` when both are equal, `[1, 5]` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hw(pub [usize; 2]);

impl Hw {
    /// The same size on both axes.
    pub const fn square(n: usize) -> Self {
        Self([n, n])
    }

    /// Whether either axis is 0.
    pub fn has_zero(self) -> bool {
        self.0.contains(&0)
    }
}

impl std::fmt::Display for Hw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [h, w] if h == w => write!(f, "{h}"),
            [h, w] => write!(f, "{h}x{w}"),
        }
    }
}

impl Serialize for Hw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [h, w] if h == w => h.serialize(s),
            hw => hw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Hw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Square(usize),
            PerAxis([usize; 2]),
        }
        match Written::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a size (3) or [height, width] ([1, 5])")
        })? {
            Written::Square(n) => Ok(Self::square(n)),
            Written::PerAxis(hw) => Ok(Self(hw)),
        }
    }
}

/// A convolution layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Output channels.
    pub out: usize,
    /// Kernel size (default 3).
    #[serde(default = "three")]
    pub kernel: Hw,
    /// Stride (default 1).
    #[serde(default = "one_hw")]
    pub stride: Hw,
    /// Zero padding: `p` on every side, or `[ph, pw]` above and below / left and right
    /// (default 0).
    #[serde(default = "zero_hw")]
    pub padding: Hw,
    /// Groups: 1 for a dense convolution, the input channel count for depthwise (default 1).
    #[serde(default = "one")]
    pub groups: usize,
    /// BatchNorm after the convolution (default true; folded into the weights at export).
    #[serde(default = "yes")]
    pub batch_norm: bool,
    /// Activation (default relu).
    #[serde(default = "relu_default")]
    pub activation: Activation,
}

/// A pooling layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Window size.
    pub kernel: Hw,
    /// Stride (default: the kernel size).
    #[serde(default)]
    pub stride: Option<Hw>,
}

impl PoolSpec {
    /// The stride, defaulting to the window.
    pub fn stride(&self) -> Hw {
        self.stride.unwrap_or(self.kernel)
    }
}

/// A dense layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseSpec {
    /// Output features.
    pub out: usize,
    /// Activation (default none: the last dense layer produces logits).
    #[serde(default)]
    pub activation: Activation,
}

fn one() -> usize {
    1
}
fn three() -> Hw {
    Hw::square(3)
}
fn one_hw() -> Hw {
    Hw::square(1)
}
fn zero_hw() -> Hw {
    Hw::square(0)
}
fn yes() -> bool {
    true
}
fn relu_default() -> Activation {
    Activation::Relu
}

/// Shape of a student's input and its layers. A config that names no field gets the default MCU
/// student ([`StudentConfig::mcu_small`]), so `--set model.kind=student` is enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// Input channels the network sees (1 for Fashion-MNIST; with `channels`, its length).
    pub in_channels: usize,
    /// The dataset channels the network reads, by index or by name, in the order given (default:
    /// all of them). This is how a student runs on a cheaper sensor than its teacher: the teacher
    /// reads every channel of a batch, the student `channels = ["acc_x", "acc_y", "acc_z"]` of
    /// the same batch. Names are resolved against the dataset when a run starts
    /// ([`StudentConfig::resolve_channels`]) and saved as indices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<ChannelRef>>,
    /// Input height and width.
    pub input_size: [usize; 2],
    /// The layers, in order. The last one must be a dense layer producing the class logits.
    pub layers: Vec<LayerSpec>,
}

/// An error in a student's layer list, found before any tensor is allocated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StudentConfigError {
    /// The list is empty or does not end with a dense layer.
    #[error("a student must end with a dense layer producing the logits")]
    NoClassifier,
    /// The channel selection is invalid.
    #[error("{0}")]
    Channels(String),
    /// A layer's parameters are invalid for the shape that reaches it.
    #[error("layer {index} ({kind}): {reason}")]
    Layer {
        /// Position in the layer list.
        index: usize,
        /// Layer kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Default for StudentConfig {
    fn default() -> Self {
        Self::mcu_small()
    }
}

impl StudentConfig {
    /// The default Fashion-MNIST student: three conv stages (16, 32, 64 channels), global average
    /// pooling and a dense classifier. About 24 K int8 weights: its blob fits in 32 KB.
    pub fn mcu_small() -> Self {
        let conv = LayerSpec::conv3x3;
        let pool = LayerSpec::max_pool2;
        Self {
            in_channels: 1,
            channels: None,
            input_size: [28, 28],
            layers: vec![
                conv(16),
                pool(),
                conv(32),
                pool(),
                conv(64),
                LayerSpec::GlobalAvgPool,
                LayerSpec::Dense(DenseSpec {
                    out: 10,
                    activation: Activation::None,
                }),
            ],
        }
    }

    /// Rewrites channel names as their indices in `names` (the dataset's channels, in order) and
    /// checks every index.
    ///
    /// # Errors
    /// An unknown name or an index past the end, naming the channels there are.
    pub fn resolve_channels(&mut self, names: &[String]) -> Result<(), StudentConfigError> {
        let Some(refs) = &mut self.channels else {
            return Ok(());
        };
        let indices = resolve_channels(names, refs, "the dataset")
            .map_err(|e| StudentConfigError::Channels(e.to_string()))?;
        *refs = indices.into_iter().map(ChannelRef::Index).collect();
        Ok(())
    }

    /// The dataset channel indices the network reads (`None`: all of them).
    ///
    /// # Errors
    /// A name that [`StudentConfig::resolve_channels`] has not rewritten.
    pub fn channel_indices(&self) -> Result<Option<Vec<usize>>, StudentConfigError> {
        let Some(refs) = &self.channels else {
            return Ok(None);
        };
        refs.iter()
            .map(|r| match r {
                ChannelRef::Index(i) => Ok(*i),
                ChannelRef::Name(n) => Err(StudentConfigError::Channels(format!(
                    "channel `{n}` is not resolved against a dataset"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Walks the layers and returns the `[channels, height, width]` shape after each one (a dense
    /// layer's output is `[out, 1, 1]`), checking every layer against the shape reaching it.
    pub fn shapes(&self) -> Result<Vec<[usize; 3]>, StudentConfigError> {
        if !matches!(self.layers.last(), Some(LayerSpec::Dense(_))) {
            return Err(StudentConfigError::NoClassifier);
        }
        if let Some(refs) = &self.channels {
            if refs.len() != self.in_channels {
                return Err(StudentConfigError::Channels(format!(
                    "{} channels selected but in_channels = {}",
                    refs.len(),
                    self.in_channels
                )));
            }
        }
        let [h, w] = self.input_size;
        let mut shape = [self.in_channels, h, w];
        let mut out = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let err = |kind, reason: String| StudentConfigError::Layer {
                index,
                kind,
                reason,
            };
            let [c, h, w] = shape;
            shape = match layer {
                LayerSpec::Conv(s) => {
                    if s.out == 0 || s.kernel.has_zero() || s.stride.has_zero() || s.groups == 0 {
                        return Err(err(
                            "conv",
                            "out, kernel, stride and groups must be > 0".into(),
                        ));
                    }
                    if c % s.groups != 0 || s.out % s.groups != 0 {
                        return Err(err(
                            "conv",
                            format!("groups {} must divide in {c} and out {}", s.groups, s.out),
                        ));
                    }
                    let size = |n: usize, a: usize| {
                        (n + 2 * s.padding.0[a])
                            .checked_sub(s.kernel.0[a])
                            .map(|v| v / s.stride.0[a] + 1)
                    };
                    match (size(h, 0), size(w, 1)) {
                        (Some(oh), Some(ow)) => [s.out, oh, ow],
                        _ => {
                            return Err(err(
                                "conv",
                                format!("kernel {} larger than padded input {h}x{w}", s.kernel),
                            ))
                        }
                    }
                }
                LayerSpec::BinaryConv(s) => {
                    if s.out == 0 || s.kernel == 0 || s.stride == 0 {
                        return Err(err(
                            "binary_conv",
                            "out, kernel and stride must be > 0".into(),
                        ));
                    }
                    let size = |n: usize| {
                        (n + 2 * s.padding)
                            .checked_sub(s.kernel)
                            .map(|v| v / s.stride + 1)
                    };
                    if s.shortcut && (s.out != c || s.stride != 1 || s.kernel != 2 * s.padding + 1)
                    {
                        return Err(err(
                            "binary_conv",
                            format!(
                                "a shortcut adds the input to the output: it needs out = {c} \
                                 (the input channels), stride 1 and padding (kernel − 1) / 2"
                            ),
                        ));
                    }
                    match (size(h), size(w)) {
                        (Some(oh), Some(ow)) => [s.out, oh, ow],
                        _ => {
                            return Err(err(
                                "binary_conv",
                                format!("kernel {} larger than padded input {h}x{w}", s.kernel),
                            ))
                        }
                    }
                }
                LayerSpec::BinaryDense(d) => {
                    if d.out == 0 {
                        return Err(err("binary_dense", "out must be > 0".into()));
                    }
                    [d.out, 1, 1]
                }
                LayerSpec::MaxPool(p) | LayerSpec::AvgPool(p) => {
                    let ([kh, kw], [sh, sw]) = (p.kernel.0, p.stride().0);
                    if p.kernel.has_zero() || p.stride().has_zero() || kh > h || kw > w {
                        return Err(err(
                            "pool",
                            format!("window {} does not fit input {h}x{w}", p.kernel),
                        ));
                    }
                    [c, (h - kh) / sh + 1, (w - kw) / sw + 1]
                }
                LayerSpec::GlobalAvgPool => [c, 1, 1],
                LayerSpec::Dense(d) => {
                    if d.out == 0 {
                        return Err(err("dense", "out must be > 0".into()));
                    }
                    [d.out, 1, 1]
                }
            };
            out.push(shape);
        }
        for (index, (layer, packed)) in self.layers.iter().zip(self.packed_outputs()).enumerate() {
            let (kind, activation, rprelu) = match layer {
                LayerSpec::BinaryConv(s) => ("binary_conv", s.activation, s.rprelu),
                LayerSpec::BinaryDense(d) => ("binary_dense", d.activation, d.rprelu),
                _ => continue,
            };
            if rprelu && !packed {
                return Err(StudentConfigError::Layer {
                    index,
                    kind,
                    reason: "RPReLU needs a packed output (a binary layer next), where it folds \
                             into that layer's threshold; an int8 output has no RPReLU on the \
                             device"
                        .into(),
                });
            }
            if packed && activation != Activation::None {
                return Err(StudentConfigError::Layer {
                    index,
                    kind,
                    reason: "its output feeds a binary layer, so it is a sign: the activation \
                             must be none"
                        .into(),
                });
            }
        }
        Ok(out)
    }

    /// Which layers produce a packed (1-bit) tensor on the device: a binary layer (convolution or
    /// dense) whose output reaches another binary layer, through max pools only, and those max
    /// pools.
    /// Every other tensor is int8.
    pub fn packed_outputs(&self) -> Vec<bool> {
        let mut packed = vec![false; self.layers.len()];
        // A shortcut layer reads and writes int8 (its input is added to its output): it neither
        // writes nor reads a packed tensor.
        let binary = |l: &LayerSpec| match l {
            LayerSpec::BinaryConv(s) => !s.shortcut,
            LayerSpec::BinaryDense(_) => true,
            _ => false,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            if !binary(layer) {
                continue;
            }
            let next = self.layers[i + 1..]
                .iter()
                .position(|l| !matches!(l, LayerSpec::MaxPool(_)))
                .map(|k| i + 1 + k);
            if let Some(j) = next {
                if binary(&self.layers[j]) {
                    packed[i..j].iter_mut().for_each(|p| *p = true);
                }
            }
        }
        packed
    }

    /// The index in [`StudentConfig::layers`] of each feature-map tap, shallow to deep: every
    /// convolution (float or binary) and every hidden dense layer, as
    /// [`crate::models::Output::feature_maps`] lists them.
    pub fn tap_layers(&self) -> Vec<usize> {
        let last = self.layers.len().saturating_sub(1);
        self.layers
            .iter()
            .enumerate()
            .filter(|&(i, l)| match l {
                LayerSpec::Conv(_) | LayerSpec::BinaryConv(_) => true,
                LayerSpec::Dense(_) => i != last,
                _ => false,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// An auxiliary classifier on feature map `tap`: a fresh network that reads that map and runs
    /// new copies of the layers after it, then a dense layer of `outputs` logits in place of the
    /// student's classifier. On the deepest tap, which has no layers of its own left, the tap's
    /// layer is repeated once at stride 1 (so every auxiliary has at least one layer to learn).
    ///
    /// These are the auxiliary branches of HSAKD (Yang et al., IJCAI 2021) and L-MCL (Yang et al.,
    /// TPAMI 2023): "copies of the remaining stages + pooling + FC". They are trained with the
    /// student and dropped at export.
    ///
    /// # Errors
    /// `tap` is not a feature map of this student, or the copied layers do not fit.
    pub fn aux_tail(&self, tap: usize, outputs: usize) -> Result<Self, StudentConfigError> {
        let taps = self.tap_layers();
        let &at = taps.get(tap).ok_or_else(|| StudentConfigError::Layer {
            index: tap,
            kind: "tap",
            reason: format!("the student has {} feature maps", taps.len()),
        })?;
        let shapes = self.shapes()?;
        let [c, h, w] = shapes[at];
        let classifier = self.layers.len() - 1;
        let mut layers: Vec<LayerSpec> = self.layers[at + 1..classifier].to_vec();
        if Some(&at) == taps.last() {
            let mut again = self.layers[at].clone();
            match &mut again {
                LayerSpec::Conv(s) => s.stride = Hw::square(1),
                LayerSpec::BinaryConv(s) => s.stride = 1,
                _ => {}
            }
            layers.insert(0, again);
        }
        layers.push(LayerSpec::Dense(DenseSpec {
            out: outputs,
            activation: Activation::None,
        }));
        let tail = Self {
            in_channels: c,
            channels: None,
            input_size: [h, w],
            layers,
        };
        tail.shapes()?;
        Ok(tail)
    }

    /// Whether any layer is binary.
    pub fn is_binary(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l, LayerSpec::BinaryConv(_) | LayerSpec::BinaryDense(_)))
    }

    /// Number of classes (the last dense layer's width).
    pub fn num_classes(&self) -> usize {
        match self.layers.last() {
            Some(LayerSpec::Dense(d)) => d.out,
            _ => 0,
        }
    }

    /// Builds the student on `device`.
    pub fn init(&self, device: &Device) -> Result<Student, StudentConfigError> {
        let shapes = self.shapes()?;
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut prev = [self.in_channels, self.input_size[0], self.input_size[1]];
        for (spec, shape) in self.layers.iter().zip(&shapes) {
            layers.push(match spec {
                LayerSpec::Conv(s) => StudentLayer::Conv(ConvBlock {
                    conv: Conv2dConfig::new([prev[0], s.out], s.kernel.0)
                        .with_stride(s.stride.0)
                        .with_padding(PaddingConfig2d::Explicit(
                            s.padding.0[0],
                            s.padding.0[1],
                            s.padding.0[0],
                            s.padding.0[1],
                        ))
                        .with_groups(s.groups)
                        .with_bias(!s.batch_norm)
                        .init(device),
                    bn: s
                        .batch_norm
                        .then(|| BatchNormConfig::new(s.out).init(device)),
                    activation: s.activation,
                }),
                LayerSpec::BinaryConv(s) => StudentLayer::BinaryConv(s.init(prev[0], device)),
                LayerSpec::BinaryDense(d) => StudentLayer::BinaryDense(d.init(prev, device)),
                LayerSpec::MaxPool(p) => StudentLayer::MaxPool(
                    MaxPool2dConfig::new(p.kernel.0)
                        .with_strides(p.stride().0)
                        .init(),
                ),
                LayerSpec::AvgPool(p) => StudentLayer::AvgPool(
                    AvgPool2dConfig::new(p.kernel.0)
                        .with_strides(p.stride().0)
                        .init(),
                ),
                LayerSpec::GlobalAvgPool => StudentLayer::GlobalAvgPool(GlobalAvgPool),
                LayerSpec::Dense(d) => StudentLayer::Dense(DenseBlock {
                    linear: LinearConfig::new(prev.iter().product(), d.out).init(device),
                    activation: d.activation,
                }),
            });
            prev = *shape;
        }
        Ok(Student {
            layers,
            input_select: self.channel_indices()?,
            packed: self.packed_outputs(),
            config: self.clone(),
            quant: None,
            binary_weights: true,
        })
    }
}

/// Convolution + optional BatchNorm + activation.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// The convolution (no bias when followed by BatchNorm).
    pub conv: Conv2d,
    /// BatchNorm, folded into `conv` at export and during quantization-aware training.
    pub bn: Option<BatchNorm>,
    /// Fused activation.
    #[module(skip)]
    pub activation: Activation,
}

/// Dense layer + activation.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// Weights `[in, out]` (burn's row layout) and bias.
    pub linear: Linear,
    /// Fused activation.
    #[module(skip)]
    pub activation: Activation,
}

/// Global average pooling (no parameters).
#[derive(Module, Debug)]
pub struct GlobalAvgPool;

/// One layer of a [`Student`].
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum StudentLayer {
    /// See [`LayerSpec::Conv`].
    Conv(ConvBlock),
    /// See [`LayerSpec::BinaryConv`].
    BinaryConv(BinaryConvBlock),
    /// See [`LayerSpec::BinaryDense`].
    BinaryDense(BinaryDenseBlock),
    /// See [`LayerSpec::MaxPool`].
    MaxPool(MaxPool2d),
    /// See [`LayerSpec::AvgPool`].
    AvgPool(AvgPool2d),
    /// See [`LayerSpec::GlobalAvgPool`].
    GlobalAvgPool(GlobalAvgPool),
    /// See [`LayerSpec::Dense`].
    Dense(DenseBlock),
}

/// A student network: a sequence of exportable layers.
#[derive(Module, Debug)]
pub struct Student {
    /// The layers, in order.
    pub layers: Vec<StudentLayer>,
    /// The configuration it was built from (needed to export it).
    #[module(skip)]
    pub config: StudentConfig,
    /// Quantization ranges; when present the forward pass simulates int8 inference.
    #[module(skip)]
    pub quant: Option<StudentQuant>,
    /// Whether binary layers use the signs of their latent weights (true) or the latent weights
    /// themselves (false: step 1 of the two-step recipe).
    #[module(skip)]
    pub binary_weights: bool,
    /// [`StudentConfig::packed_outputs`] of `config`.
    #[module(skip)]
    pub packed: Vec<bool>,
    /// [`StudentConfig::channel_indices`] of `config`: the input channels kept, in order.
    #[module(skip)]
    pub input_select: Option<Vec<usize>>,
}

/// Activations of every layer, for calibration and taps.
enum Act {
    Map(Tensor<4>),
    Flat(Tensor<2>),
}

impl Act {
    fn into_flat(self) -> Tensor<2> {
        match self {
            Act::Flat(t) => t,
            Act::Map(t) => t.flatten(1, 3),
        }
    }
    fn into_map(self) -> Tensor<4> {
        match self {
            Act::Map(t) => t,
            Act::Flat(t) => t.unsqueeze_dims(&[2, 3]),
        }
    }
}

impl Student {
    /// This student with int8 simulation on (`Some`) or off (`None`).
    pub fn with_quant(mut self, quant: Option<StudentQuant>) -> Self {
        self.quant = quant;
        self
    }

    /// This student with binary layers using the signs of their weights (`true`, the default)
    /// or the real latent weights (`false`).
    pub fn with_binary_weights(mut self, binary: bool) -> Self {
        self.binary_weights = binary;
        self
    }

    /// The output of every layer, in float (for calibrating activation ranges), plus the input.
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`; each output flattened to `[batch, features]`.
    pub fn layer_outputs(&self, x: Tensor<4>) -> Vec<Tensor<2>> {
        self.layer_and_branch_outputs(x).0
    }

    /// [`Student::layer_outputs`], plus the binary branch of each layer with a shortcut (before
    /// the add; `None` for other layers), flattened to `[batch, features]`.
    pub fn layer_and_branch_outputs(
        &self,
        x: Tensor<4>,
    ) -> (Vec<Tensor<2>>, Vec<Option<Tensor<2>>>) {
        let mut outs = Vec::with_capacity(self.layers.len() + 1);
        let mut branches = vec![None; self.layers.len()];
        self.run(
            x,
            |t| outs.push(t.clone().flatten(1, 3)),
            |i, t| {
                if let Some(b) = branches.get_mut(i) {
                    *b = Some(t.clone().flatten(1, 3));
                }
            },
        );
        (outs, branches)
    }

    /// Runs the layers, calling `tap` with the (post-activation, post-fake-quant) input and each
    /// layer's output as a 4-D map, and returns (embedding, logits, conv feature maps).
    fn run(
        &self,
        x: Tensor<4>,
        mut tap: impl FnMut(&Tensor<4>),
        mut branch_tap: impl FnMut(usize, &Tensor<4>),
    ) -> (Tensor<2>, Tensor<2>, Vec<Tensor<4>>) {
        let q = self.quant.as_ref();
        let x = match &self.input_select {
            Some(keep) => select_channels(x, keep),
            None => x,
        };
        let mut act = Act::Map(match q {
            Some(q) => fake_quant_activation(x, q.input),
            None => x,
        });
        if let Act::Map(t) = &act {
            tap(t);
        }
        let mut feature_maps = Vec::new();
        let mut embedding = None;
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            let out_q = q.and_then(|q| q.layers.get(i).copied());
            act = match layer {
                StudentLayer::Conv(b) => {
                    let x = act.into_map();
                    let y = match (out_q, &b.bn) {
                        (Some(oq), _) => {
                            let (w, bias) = fold_batch_norm(&b.conv, b.bn.as_ref());
                            let w = fake_quant_weight_per_channel(w);
                            let y = burn::tensor::module::conv2d(
                                x,
                                w,
                                Some(bias),
                                conv_options(&b.conv),
                            );
                            fake_quant_activation(b.activation.apply(y), oq)
                        }
                        (None, Some(bn)) => b.activation.apply(bn.forward(b.conv.forward(x))),
                        (None, None) => b.activation.apply(b.conv.forward(x)),
                    };
                    feature_maps.push(y.clone());
                    Act::Map(y)
                }
                StudentLayer::BinaryConv(b) => {
                    let x = act.into_map();
                    let packed = self.packed.get(i).copied().unwrap_or(false);
                    let branch_q = q.and_then(|q| q.branches.get(i).copied().flatten());
                    let y = match (out_q, packed) {
                        // A packed output is the next layer's sign: nothing to quantize.
                        (_, true) => b.forward(x.clone(), self.binary_weights),
                        // With a shortcut the branch is quantized before the add.
                        (Some(_), false) if b.spec.shortcut => {
                            let y = b.spec.activation.apply(b.forward_int8(x.clone()));
                            match branch_q {
                                Some(bq) => fake_quant_activation(y, bq),
                                None => y,
                            }
                        }
                        (Some(oq), false) => fake_quant_activation(
                            b.spec.activation.apply(b.forward_int8(x.clone())),
                            oq,
                        ),
                        (None, false) => b
                            .spec
                            .activation
                            .apply(b.forward(x.clone(), self.binary_weights)),
                    };
                    let y = if b.spec.shortcut {
                        branch_tap(i, &y);
                        let sum = y + x;
                        match out_q {
                            Some(oq) => fake_quant_activation(sum, oq),
                            None => sum,
                        }
                    } else {
                        y
                    };
                    feature_maps.push(y.clone());
                    Act::Map(y)
                }
                StudentLayer::BinaryDense(d) => {
                    let x = act.into_map();
                    if i + 1 == n {
                        embedding = Some(x.clone().flatten(1, 3));
                    }
                    let packed = self.packed.get(i).copied().unwrap_or(false);
                    Act::Flat(match (out_q, packed) {
                        (_, true) => d.forward(x, self.binary_weights),
                        (Some(oq), false) => {
                            fake_quant_activation(d.spec.activation.apply(d.forward_int8(x)), oq)
                        }
                        (None, false) => d.spec.activation.apply(d.forward(x, self.binary_weights)),
                    })
                }
                StudentLayer::MaxPool(p) => Act::Map(p.forward(act.into_map())),
                StudentLayer::AvgPool(p) => {
                    let y = p.forward(act.into_map());
                    Act::Map(match out_q {
                        Some(oq) => fake_quant_activation(y, oq),
                        None => y,
                    })
                }
                StudentLayer::GlobalAvgPool(_) => {
                    let x = act.into_map();
                    let [b, c, _, _] = x.dims();
                    let y = x.flatten::<3>(2, 3).mean_dim(2).reshape([b, c, 1, 1]);
                    Act::Map(match out_q {
                        Some(oq) => fake_quant_activation(y, oq),
                        None => y,
                    })
                }
                StudentLayer::Dense(d) => {
                    let x = act.into_flat();
                    if i + 1 == n {
                        embedding = Some(x.clone());
                    }
                    let y = match out_q {
                        Some(oq) => {
                            // burn stores [in, out]; quantize per output channel = per column.
                            let w = fake_quant_weight_per_channel(
                                d.linear
                                    .weight
                                    .val()
                                    .transpose()
                                    .unsqueeze_dims::<4>(&[2, 3]),
                            );
                            let w = w.squeeze_dims::<2>(&[2, 3]).transpose();
                            let mut y = x.matmul(w);
                            if let Some(bias) = &d.linear.bias {
                                y = y + bias.val().unsqueeze_dim(0);
                            }
                            fake_quant_activation(d.activation.apply(y), oq)
                        }
                        None => d.activation.apply(d.linear.forward(x)),
                    };
                    // A hidden dense layer is a feature map too (an MLP student's only ones):
                    // `[batch, features, 1, 1]`.
                    if i + 1 != n {
                        feature_maps.push(y.clone().unsqueeze_dims(&[2, 3]));
                    }
                    Act::Flat(y)
                }
            };
            match &act {
                Act::Map(t) => tap(t),
                Act::Flat(t) => tap(&t.clone().unsqueeze_dims(&[2, 3])),
            }
        }
        let logits = act.into_flat();
        let embedding = embedding.unwrap_or_else(|| logits.clone());
        (embedding, logits, feature_maps)
    }
}

/// Channels `keep` of an NCHW batch, in that order (see [`StudentConfig::channels`]).
pub fn select_channels(x: Tensor<4>, keep: &[usize]) -> Tensor<4> {
    let keep: Vec<i64> = keep.iter().map(|&c| c as i64).collect();
    let n = keep.len();
    let keep = Tensor::<1, Int>::from_data(TensorData::new(keep, [n]), &x.device());
    x.select(1, keep)
}

/// The convolution options of a burn `Conv2d` with explicit padding (the only kind students use).
pub(crate) fn conv_options(conv: &Conv2d) -> burn::tensor::ops::ConvOptions<2> {
    let (t, l, b, r) = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => (t, l, b, r),
        _ => (0, 0, 0, 0),
    };
    burn::tensor::ops::ConvOptions::new_with_padding(
        conv.stride,
        [(t, b), (l, r)],
        conv.dilation,
        conv.groups,
    )
}

impl Classifier for Student {
    fn after_step(mut self) -> Self {
        if self.binary_weights {
            self.layers = self
                .layers
                .into_iter()
                .map(|l| match l {
                    StudentLayer::BinaryConv(b) => StudentLayer::BinaryConv(b.clipped()),
                    StudentLayer::BinaryDense(d) => StudentLayer::BinaryDense(d.clipped()),
                    other => other,
                })
                .collect();
        }
        self
    }

    fn forward_taps(&self, x: Tensor<4>) -> Output {
        let (embedding, logits, feature_maps) = self.run(x, |_| {}, |_, _| {});
        Output {
            logits,
            embedding,
            candidate_maps: feature_maps.clone(),
            feature_maps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> StudentConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn sizes_are_square_or_per_axis_and_conv1d_shapes_follow() {
        let cfg = parse(
            r#"
            in_channels = 3
            input_size = [1, 128]
            layers = [
                { conv = { out = 8, kernel = [1, 5], padding = [0, 2] } },
                { max_pool = { kernel = [1, 2] } },
                { conv = { out = 8, kernel = [1, 3], stride = [1, 2] } },
                "global_avg_pool",
                { dense = { out = 6 } },
            ]
            "#,
        );
        let shapes = cfg.shapes().unwrap();
        assert_eq!(shapes[0], [8, 1, 128]);
        assert_eq!(shapes[1], [8, 1, 64]);
        assert_eq!(shapes[2], [8, 1, 31]);
        // Square sizes are written back as one number, per-axis ones as a pair.
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains("kernel = [1, 5]"), "{text}");
        let back: StudentConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let square = toml::to_string(&StudentConfig::mcu_small()).unwrap();
        assert!(square.contains("kernel = 3"), "{square}");
        // A 2-D kernel on a one-row input does not fit.
        let mut tall = cfg.clone();
        tall.layers[0] = parse(
            r#"
            in_channels = 3
            input_size = [1, 128]
            layers = [{ conv = { out = 8, kernel = 3 } }, { dense = { out = 6 } }]
            "#,
        )
        .layers[0]
            .clone();
        let err = tall.shapes().unwrap_err().to_string();
        assert!(
            err.contains("kernel 3 larger than padded input 1x128"),
            "{err}"
        );
    }

    #[test]
    fn a_channel_subset_is_selected_before_the_first_layer() {
        let mut cfg = parse(
            r#"
            in_channels = 2
            channels = ["b", 0]
            input_size = [1, 4]
            layers = [{ dense = { out = 2 } }]
            "#,
        );
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        cfg.resolve_channels(&names).unwrap();
        assert_eq!(cfg.channel_indices().unwrap(), Some(vec![1, 0]));
        let dev = Device::flex();
        let student = cfg.init(&dev).unwrap();
        // Channel c of sample 0 holds c everywhere: the network must see [1, 1, 1, 1, 0, …].
        let x: Vec<f32> = (0..3).flat_map(|c| [c as f32; 4]).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [1, 3, 1, 4]), &dev);
        let seen = student.layer_outputs(x).remove(0);
        let seen: Vec<f32> = seen.to_data().iter::<f32>().collect();
        assert_eq!(seen, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let mut bad = cfg.clone();
        bad.channels = Some(vec![ChannelRef::Name("z".into()), ChannelRef::Index(0)]);
        assert!(bad.resolve_channels(&names).is_err());
    }

    #[test]
    fn aux_tails_copy_the_remaining_layers() {
        let cfg = StudentConfig::mcu_small();
        assert_eq!(cfg.tap_layers(), [0, 2, 4]);
        let first = cfg.aux_tail(0, 40).unwrap();
        assert_eq!((first.in_channels, first.input_size), (16, [28, 28]));
        // pool, conv 32, pool, conv 64, GAP, then a dense layer of 40.
        assert_eq!(first.layers.len(), 6);
        assert_eq!(first.layers[..5], cfg.layers[1..6]);
        assert_eq!(first.num_classes(), 40);
        // The deepest tap repeats its own layer, input channels = its output channels.
        let last = cfg.aux_tail(2, 40).unwrap();
        assert_eq!((last.in_channels, last.input_size), (64, [7, 7]));
        assert_eq!(last.layers[0], cfg.layers[4]);
        assert_eq!(last.shapes().unwrap()[0], [64, 7, 7]);
        let dev = Device::flex();
        let out = last
            .init(&dev)
            .unwrap()
            .forward(Tensor::zeros([2, 64, 7, 7], &dev));
        assert_eq!(out.dims(), [2, 40]);
        assert!(cfg.aux_tail(3, 40).is_err());
    }

    #[test]
    fn hidden_dense_layers_are_feature_maps() {
        let cfg = parse(
            r#"
            in_channels = 1
            input_size = [4, 4]
            layers = [
                { dense = { out = 8, activation = "relu" } },
                { dense = { out = 5, activation = "relu" } },
                { dense = { out = 3 } },
            ]
            "#,
        );
        let dev = Device::flex();
        let out = cfg
            .init(&dev)
            .unwrap()
            .forward_taps(Tensor::zeros([2, 1, 4, 4], &dev));
        let dims: Vec<[usize; 4]> = out.feature_maps.iter().map(|m| m.dims()).collect();
        assert_eq!(dims, [[2, 8, 1, 1], [2, 5, 1, 1]]);
        assert_eq!(out.embedding.dims(), [2, 5]);
    }
}
