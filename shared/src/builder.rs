//! The host-side model builder (feature `alloc`): the exporter's only way to write a blob.
//!
//! The builder takes float scales and int8/i32 parameters, derives everything the device needs
//! (requantization multipliers and shifts, activation clamps, output shapes, the memory plan),
//! encodes the blob and finally runs [`validate`](crate::validate) on its own output, so a blob
//! that leaves `finish()` is one the device accepts.
//!
//! ```
//! use tinykd_format::*;
//! let q_in = Quant { scale: 1.0 / 255.0, zero_point: -128 };
//! let mut b = ModelBuilder::new("tiny", Shape { h: 4, w: 4, c: 1 }, q_in);
//! let x = b.input();
//! let x = b.conv2d(x, Conv2dSpec {
//!     out_channels: 2, kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1], groups: 1,
//!     weights: vec![1; 2 * 9], weight_scales: vec![0.01, 0.02], bias: vec![0, 10],
//!     output: Quant { scale: 0.05, zero_point: -128 }, activation: Activation::Relu,
//! }).unwrap();
//! assert_eq!(b.shape(x), Shape { h: 4, w: 4, c: 2 });
//! let x = b.global_avg_pool(x).unwrap();
//! let y = b.dense(x, DenseSpec {
//!     out_features: 3, weights: vec![1, -1, 2, 0, 5, -5], weight_scales: vec![0.1],
//!     bias: vec![0; 3], output: Quant { scale: 0.1, zero_point: 0 }, activation: Activation::None,
//! }).unwrap();
//! assert_eq!(b.shape(y), Shape { h: 1, w: 1, c: 3 });
//! let blob = b.finish().unwrap();
//! let desc = validate(&blob).unwrap();
//! assert_eq!(desc.op_count(), 3);
//! // 16 input + 32 conv output bytes (then reused), plus the conv's 104-byte scratch (format
//! // 1.5: a one-channel 3×3 conv's band, channel records and kernel state, SPEC §5.1).
//! assert_eq!(desc.arena_size(), 152);
//! assert_eq!(desc.version(), (1, 5));
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::desc::BodyHead;
use crate::validate::window_out;
use crate::{
    quantize_multiplier, quantize_multiplier_q32, scratch_len, scratch_len_in, validate,
    Activation, AddOp, BinaryConv2dOp, BinaryDenseOp, BinaryOutput, Bits, Conv2dOp, DenseOp,
    DensePairedOp, Error, Header, I8s, Layout, LeI32s, Op, OpKind, PoolOp, Quant, Requant, Shape,
    TensorDesc, TensorId, MAX_NAME_LEN, MAX_TENSORS, MAX_TENSOR_LEN,
};

/// A 2-D convolution to add (dense, grouped, depthwise or 1×1).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dSpec {
    /// Output channels.
    pub out_channels: u16,
    /// Kernel height, width.
    pub kernel: [u8; 2],
    /// Stride along height, width.
    pub stride: [u8; 2],
    /// Padding: top, left, bottom, right.
    pub padding: [u8; 4],
    /// Channel groups: 1 = dense, input channels = depthwise (`out = in · multiplier`).
    pub groups: u16,
    /// OHWI weights `[out][kh][kw][in / groups]`, symmetric in `[-127, 127]`.
    pub weights: Vec<i8>,
    /// Weight scale per output channel (or one value for all); finite and ≥ 0.
    pub weight_scales: Vec<f32>,
    /// Bias per output channel at scale `S_in · S_w[c]`.
    pub bias: Vec<i32>,
    /// Output quantization.
    pub output: Quant,
    /// Fused activation.
    pub activation: Activation,
}

/// A fully connected layer to add; the input is flattened in HWC order.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSpec {
    /// Output features.
    pub out_features: u16,
    /// Weights `[out][in]`, `in` = HWC-flattened input, symmetric in `[-127, 127]`.
    pub weights: Vec<i8>,
    /// Weight scale per output feature (or one value for all); finite and ≥ 0.
    pub weight_scales: Vec<f32>,
    /// Bias per output feature at scale `S_in · S_w[c]`.
    pub bias: Vec<i32>,
    /// Output quantization.
    pub output: Quant,
    /// Fused activation.
    pub activation: Activation,
}

/// The checked parameters [`ModelBuilder::dense_common`] hands both dense layouts.
struct DenseCommon {
    cout: usize,
    terms: u64,
    input_quant: Quant,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
    act: (i8, i8),
}

/// A pooling window to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Window height, width.
    pub kernel: [u8; 2],
    /// Stride along height, width.
    pub stride: [u8; 2],
    /// Padding: top, left, bottom, right; each side smaller than the window.
    pub padding: [u8; 4],
}

/// What a binary conv/dense layer writes (format 1.2, SPEC §3.2).
#[derive(Clone, Debug, PartialEq)]
pub enum BinaryOutputSpec {
    /// A packed tensor: BatchNorm + sign folded per output channel by
    /// [`fold_batchnorm_sign`](crate::fold_batchnorm_sign) / [`fold_sign`](crate::fold_sign)
    /// into `(thresholds[c], flip[c])`.
    Packed {
        /// One threshold on the popcount per output channel.
        thresholds: Vec<i32>,
        /// One flag per output channel: compare `p < t` instead of `p > t` (negative slope).
        flip: Vec<bool>,
    },
    /// An int8 tensor: per channel `real = scales[c] · (bias[c] ± dot)` (`−dot` where `flip[c]`),
    /// `dot` the ±1 dot product, requantized to `output`. For `real = a·dot + b` use
    /// `scales = |a|`, `flip = a < 0`, `bias = round(b / |a|)`.
    Int8 {
        /// One flag per output channel (negative slope).
        flip: Vec<bool>,
        /// One bias per output channel, in units of one ±1 product.
        bias: Vec<i32>,
        /// Real value of one accumulator unit per output channel (or one for all), finite, ≥ 0.
        scales: Vec<f32>,
        /// Output quantization.
        output: Quant,
        /// Fused activation.
        activation: Activation,
    },
}

/// A binary (XNOR/popcount) convolution to add (format 1.2): `groups = 1`, padding with +1.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryConv2dSpec {
    /// Output channels.
    pub out_channels: u16,
    /// Kernel height, width.
    pub kernel: [u8; 2],
    /// Stride along height, width.
    pub stride: [u8; 2],
    /// Padding: top, left, bottom, right (padded taps are +1, as in training with
    /// `pad_values = 1`).
    pub padding: [u8; 4],
    /// Weight signs, OHWI `[out][kh][kw][in]`, each −1 or +1.
    pub weights: Vec<i8>,
    /// For an int8 input only (must be empty for a packed one): 1 or `in` thresholds `t`; the
    /// input is −1 where `q < t` (see [`binarize_threshold`](crate::binarize_threshold)).
    pub input_thresholds: Vec<i32>,
    /// Packed or int8 output.
    pub output: BinaryOutputSpec,
}

/// A binary fully connected layer to add (format 1.2); the input is flattened in HWC order.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryDenseSpec {
    /// Output features.
    pub out_features: u16,
    /// Weight signs `[out][h][w][c]` over the input's shape, each −1 or +1.
    pub weights: Vec<i8>,
    /// As [`BinaryConv2dSpec::input_thresholds`].
    pub input_thresholds: Vec<i32>,
    /// Packed or int8 output.
    pub output: BinaryOutputSpec,
}

/// The op a [`BuildError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOp {
    /// Index of the op in the model (the op being added, for errors from the adding call).
    pub index: usize,
    /// Its kind.
    pub kind: OpKind,
}

/// What is wrong with a builder call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildFault {
    /// A `TensorId` that this builder did not hand out.
    UnknownTensor(TensorId),
    /// A quantization scale that is not finite and positive (weight scales may also be 0).
    BadScale,
    /// A parameter vector has the wrong length.
    Length {
        /// Which vector: `"weights"`, `"weight_scales"` or `"bias"`.
        what: &'static str,
        /// The length the shapes call for.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A weight is -128; weights are symmetric in `[-127, 127]` (DESIGN §5, as in TFLite).
    WeightOutOfRange,
    /// Zero kernel or stride, a pooling pad not smaller than its window, or a window larger than
    /// the padded input.
    BadWindow,
    /// `groups` is zero or does not divide the input and output channels.
    BadGroups,
    /// Shapes that must agree do not (`add` inputs, `reshape` element counts).
    ShapeMismatch {
        /// The shape required.
        expected: Shape,
        /// The shape given.
        got: Shape,
    },
    /// An output shape has a zero dimension or more than `MAX_TENSOR_LEN` elements.
    TensorTooLarge,
    /// More than `MAX_TENSORS - 1` ops.
    TooManyOps,
    /// A requantization factor of `2^30` or more, which `(multiplier, shift)` cannot encode.
    MultiplierTooLarge,
    /// Bias plus the worst-case sum of products could overflow the i32 accumulator.
    AccumulatorOverflow,
    /// `finish()` on a model without ops.
    NoOps,
    /// The model name is longer than `MAX_NAME_LEN` bytes.
    NameTooLong,
    /// The encoded blob failed validation (a builder bug: please report it).
    Invalid(Error),
    /// A binary op's input has the wrong layout for its `input_thresholds` (empty for a packed
    /// input, 1 or `in` values for an int8 one), or binary max pooling of an int8 tensor.
    Layout,
}

/// A builder call failed: which op, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildError {
    /// The op concerned, or `None` for whole-model faults (`finish`).
    pub op: Option<BuildOp>,
    /// What is wrong.
    pub fault: BuildFault,
}

impl fmt::Display for BuildFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildFault::UnknownTensor(t) => write!(f, "tensor {} does not exist", t.0),
            BuildFault::BadScale => f.write_str("scale not finite and positive"),
            BuildFault::Length {
                what,
                expected,
                got,
            } => write!(f, "{what} has {got} values, expected {expected}"),
            BuildFault::WeightOutOfRange => f.write_str("weight -128 (symmetric range is ±127)"),
            BuildFault::BadWindow => f.write_str("bad kernel, stride or padding"),
            BuildFault::BadGroups => f.write_str("groups do not divide the channels"),
            BuildFault::ShapeMismatch { expected, got } => write!(
                f,
                "shape {}x{}x{} does not match {}x{}x{}",
                got.h, got.w, got.c, expected.h, expected.w, expected.c
            ),
            BuildFault::TensorTooLarge => f.write_str("output tensor empty or too large"),
            BuildFault::TooManyOps => f.write_str("too many ops"),
            BuildFault::MultiplierTooLarge => f.write_str("requantization factor ≥ 2^30"),
            BuildFault::AccumulatorOverflow => f.write_str("accumulator could overflow i32"),
            BuildFault::NoOps => f.write_str("model has no ops"),
            BuildFault::NameTooLong => f.write_str("model name too long"),
            BuildFault::Invalid(e) => write!(f, "encoded blob is invalid: {e}"),
            BuildFault::Layout => f.write_str("input layout (int8 or packed) does not fit the op"),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Some(op) => write!(f, "op {} ({}): {}", op.index, op.kind, self.fault),
            None => write!(f, "model: {}", self.fault),
        }
    }
}

impl core::error::Error for BuildError {}

/// One op as the builder keeps it: its postcard encoding (ops hold no arena offsets, so they can
/// be encoded as soon as they are added) and the tensors it reads, for the memory plan.
#[derive(Clone)]
struct Encoded {
    bytes: Vec<u8>,
    inputs: [Option<u16>; 2],
}

/// Builds a model op by op and encodes it as a blob (see the module docs).
#[derive(Clone)]
pub struct ModelBuilder {
    name: String,
    tensors: Vec<(Shape, Quant)>,
    ops: Vec<Encoded>,
    /// Layout of each tensor (format 1.2: binary ops write packed tensors).
    layouts: Vec<Layout>,
    /// Per-channel `(mean, std)` of the input (format 1.3), if set.
    input_norm: Option<Vec<(f32, f32)>>,
}

type Built<T> = core::result::Result<T, BuildError>;

fn scale_ok(s: f32) -> bool {
    s.is_finite() && s > 0.0
}

impl ModelBuilder {
    /// Starts a model whose input (tensor 0) has this shape and quantization.
    pub fn new(name: &str, input_shape: Shape, input_quant: Quant) -> Self {
        ModelBuilder {
            name: String::from(name),
            tensors: alloc::vec![(input_shape, input_quant)],
            ops: Vec::new(),
            layouts: alloc::vec![Layout::Int8],
            input_norm: None,
        }
    }

    /// Stores the per-channel `(mean, std)` of the model input (format 1.3, SPEC §5.2): the
    /// model was trained on `(raw − mean) / std`, and a device feeding raw physical values
    /// (`tinykd_device::Stream`) applies the same before quantizing. One pair per input channel;
    /// every mean finite, every std finite and positive. A blob with a normalisation is written
    /// as format 1.3; without one the blob keeps its older minor and bytes.
    ///
    /// ```
    /// use tinykd_format::{validate, Error, ModelBuilder, Quant, Shape, BuildFault};
    /// let q = Quant { scale: 0.05, zero_point: 0 };
    /// let mut b = ModelBuilder::new("imu", Shape { h: 1, w: 4, c: 2 }, q);
    /// let x = b.input();
    /// b.global_avg_pool(x).unwrap();
    /// assert_eq!(
    ///     b.input_normalization(&[(0.0, 1.0)]).unwrap_err().fault,
    ///     BuildFault::Invalid(Error::InputNormBadCount)
    /// );
    /// b.input_normalization(&[(0.0, 1.0), (-1.0, 0.5)]).unwrap();
    /// let blob = b.finish().unwrap();
    /// let desc = validate(&blob).unwrap();
    /// assert_eq!(desc.version(), (1, 3));
    /// let norm = desc.input_normalization().unwrap();
    /// assert_eq!(norm.get(1), Some((-1.0, 0.5)));
    /// ```
    pub fn input_normalization(&mut self, pairs: &[(f32, f32)]) -> Built<()> {
        let channels = usize::from(self.shape(TensorId(0)).c);
        let bytes = crate::norm::encode(pairs);
        crate::InputNorm::new(&bytes, channels).map_err(|e| BuildError {
            op: None,
            fault: BuildFault::Invalid(e),
        })?;
        self.input_norm = Some(pairs.to_vec());
        Ok(())
    }

    /// The input tensor.
    pub fn input(&self) -> TensorId {
        TensorId(0)
    }

    /// Shape of `t`; all zeros for an id this builder did not hand out.
    pub fn shape(&self, t: TensorId) -> Shape {
        self.tensors
            .get(usize::from(t.0))
            .map_or(Shape { h: 0, w: 0, c: 0 }, |t| t.0)
    }

    /// Quantization of `t`; scale 0 and zero point 0 for an id this builder did not hand out.
    pub fn quant(&self, t: TensorId) -> Quant {
        self.tensors.get(usize::from(t.0)).map_or(
            Quant {
                scale: 0.0,
                zero_point: 0,
            },
            |t| t.1,
        )
    }

    fn err(&self, kind: OpKind, fault: BuildFault) -> BuildError {
        BuildError {
            op: Some(BuildOp {
                index: self.ops.len(),
                kind,
            }),
            fault,
        }
    }

    fn tensor(&self, kind: OpKind, t: TensorId) -> Built<(Shape, Quant)> {
        let found = self
            .tensors
            .get(usize::from(t.0))
            .copied()
            .ok_or_else(|| self.err(kind, BuildFault::UnknownTensor(t)))?;
        // The int8 ops cannot read a packed tensor (format 1.2).
        let binary = matches!(
            kind,
            OpKind::BinaryConv2d
                | OpKind::BinaryDense
                | OpKind::BinaryMaxPool2d
                | OpKind::BinaryConv2dSliced
        );
        if !binary && self.layout(t) == Layout::Packed {
            return Err(self.err(kind, BuildFault::Layout));
        }
        Ok(found)
    }

    fn push(&mut self, kind: OpKind, op: &Op<'_>, shape: Shape, quant: Quant) -> Built<TensorId> {
        if shape.h == 0 || shape.w == 0 || shape.c == 0 || shape.elements() > MAX_TENSOR_LEN as u64
        {
            return Err(self.err(kind, BuildFault::TensorTooLarge));
        }
        let id = u16::try_from(self.tensors.len())
            .ok()
            .filter(|&id| usize::from(id) < MAX_TENSORS)
            .ok_or_else(|| self.err(kind, BuildFault::TooManyOps))?;
        let bytes = postcard::to_extend(op, Vec::new())
            .map_err(|e| self.err(kind, BuildFault::Invalid(Error::from(e))))?;
        self.ops.push(Encoded {
            bytes,
            inputs: op.inputs(),
        });
        self.tensors.push((shape, quant));
        self.layouts.push(op.output_layout());
        Ok(TensorId(id))
    }

    /// The per-channel requantization of a conv/dense layer: `S_in · S_w[c] / S_out`.
    fn requant(
        &self,
        kind: OpKind,
        channels: usize,
        s_in: f32,
        weight_scales: &[f32],
        output: Quant,
    ) -> Built<(Vec<u8>, Vec<u8>)> {
        if !scale_ok(output.scale) || !scale_ok(s_in) {
            return Err(self.err(kind, BuildFault::BadScale));
        }
        if weight_scales.len() != channels && weight_scales.len() != 1 {
            return Err(self.err(
                kind,
                BuildFault::Length {
                    what: "weight_scales",
                    expected: channels,
                    got: weight_scales.len(),
                },
            ));
        }
        let mut multipliers = Vec::with_capacity(channels * 4);
        let mut shifts = Vec::with_capacity(channels);
        for c in 0..channels {
            let s_w = weight_scales
                .get(c)
                .or(weight_scales.first())
                .copied()
                .unwrap_or(0.0);
            if !s_w.is_finite() || s_w < 0.0 {
                return Err(self.err(kind, BuildFault::BadScale));
            }
            let (m, s) = self.multiplier(
                kind,
                f64::from(s_in) * f64::from(s_w) / f64::from(output.scale),
                quantize_multiplier_q32,
            )?;
            multipliers.extend_from_slice(&m.to_le_bytes());
            shifts.push(s as u8);
        }
        Ok((multipliers, shifts))
    }

    /// `(multiplier, shift)` of `real` by `encode`: [`quantize_multiplier_q32`] for the
    /// per-channel requantization of convolutions and dense layers (the device's fast kernels
    /// requantize those with one `SMMLAR`), [`quantize_multiplier`] for `Add`'s input and output
    /// factors.
    fn multiplier(
        &self,
        kind: OpKind,
        real: f64,
        encode: fn(f64) -> (i32, i32),
    ) -> Built<(i32, i8)> {
        if real >= (1u64 << 30) as f64 {
            return Err(self.err(kind, BuildFault::MultiplierTooLarge));
        }
        let (m, s) = encode(real);
        let s = i8::try_from(s).map_err(|_| self.err(kind, BuildFault::MultiplierTooLarge))?;
        Ok((m, s))
    }

    fn check_params(
        &self,
        kind: OpKind,
        weights: &[i8],
        expected_weights: u64,
        bias: &[i32],
        channels: usize,
        terms: u64,
    ) -> Built<()> {
        if weights.len() as u64 != expected_weights {
            return Err(self.err(
                kind,
                BuildFault::Length {
                    what: "weights",
                    expected: usize::try_from(expected_weights).unwrap_or(usize::MAX),
                    got: weights.len(),
                },
            ));
        }
        if weights.contains(&i8::MIN) {
            return Err(self.err(kind, BuildFault::WeightOutOfRange));
        }
        if bias.len() != channels {
            return Err(self.err(
                kind,
                BuildFault::Length {
                    what: "bias",
                    expected: channels,
                    got: bias.len(),
                },
            ));
        }
        let worst = terms.saturating_mul(255 * 128);
        if bias
            .iter()
            .any(|b| u64::from(b.unsigned_abs()).saturating_add(worst) > i32::MAX as u64)
        {
            return Err(self.err(kind, BuildFault::AccumulatorOverflow));
        }
        Ok(())
    }

    fn window(&self, kind: OpKind, x: Shape, spec: &PoolSpec) -> Built<(u16, u16)> {
        let [kh, kw] = spec.kernel;
        let [sh, sw] = spec.stride;
        let [pt, pl, pb, pr] = spec.padding;
        match (
            window_out(x.h, kh, sh, pt, pb),
            window_out(x.w, kw, sw, pl, pr),
        ) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(self.err(kind, BuildFault::BadWindow)),
        }
    }

    /// Adds a 2-D convolution reading `x`.
    pub fn conv2d(&mut self, x: TensorId, spec: Conv2dSpec) -> Built<TensorId> {
        let kind = OpKind::Conv2d;
        let (xs, xq) = self.tensor(kind, x)?;
        let pool = PoolSpec {
            kernel: spec.kernel,
            stride: spec.stride,
            padding: spec.padding,
        };
        let (h, w) = self.window(kind, xs, &pool)?;
        let g = spec.groups;
        if g == 0 || !xs.c.is_multiple_of(g) || !spec.out_channels.is_multiple_of(g) {
            return Err(self.err(kind, BuildFault::BadGroups));
        }
        let cout = usize::from(spec.out_channels);
        let terms = u64::from(spec.kernel[0]) * u64::from(spec.kernel[1]) * u64::from(xs.c / g);
        self.check_params(
            kind,
            &spec.weights,
            cout as u64 * terms,
            &spec.bias,
            cout,
            terms,
        )?;
        let (multipliers, shifts) =
            self.requant(kind, cout, xq.scale, &spec.weight_scales, spec.output)?;
        let (act_min, act_max) = spec.output.activation_range(spec.activation);
        let weights: Vec<u8> = spec.weights.iter().map(|&v| v as u8).collect();
        let bias: Vec<u8> = spec.bias.iter().flat_map(|b| b.to_le_bytes()).collect();
        let op = Op::Conv2d(Conv2dOp {
            input: x.0,
            kernel: spec.kernel,
            stride: spec.stride,
            padding: spec.padding,
            groups: g,
            weights: I8s(&weights),
            bias: LeI32s(&bias),
            requant: Requant {
                multipliers: LeI32s(&multipliers),
                shifts: I8s(&shifts),
            },
            act_min,
            act_max,
        });
        let shape = Shape {
            h,
            w,
            c: spec.out_channels,
        };
        self.push(kind, &op, shape, spec.output)
    }

    /// Adds a fully connected layer reading `x` (flattened in HWC order); output `[1, 1, out]`.
    pub fn dense(&mut self, x: TensorId, spec: DenseSpec) -> Built<TensorId> {
        let kind = OpKind::Dense;
        let DenseCommon {
            multipliers,
            shifts,
            act: (act_min, act_max),
            ..
        } = self.dense_common(kind, x, &spec)?;
        let weights: Vec<u8> = spec.weights.iter().map(|&v| v as u8).collect();
        let bias: Vec<u8> = spec.bias.iter().flat_map(|b| b.to_le_bytes()).collect();
        let op = Op::Dense(DenseOp {
            input: x.0,
            weights: I8s(&weights),
            bias: LeI32s(&bias),
            requant: Requant {
                multipliers: LeI32s(&multipliers),
                shifts: I8s(&shifts),
            },
            act_min,
            act_max,
        });
        let shape = Shape {
            h: 1,
            w: 1,
            c: spec.out_features,
        };
        self.push(kind, &op, shape, spec.output)
    }

    /// Adds the same fully connected layer as [`ModelBuilder::dense`] with its weights in the
    /// paired layout (format 1.5, SPEC §3.4): the input zero point folded into the bias, the
    /// odd-weight terms of every row and chunk computed here. Same checks and results.
    pub fn dense_paired(&mut self, x: TensorId, spec: DenseSpec) -> Built<TensorId> {
        let kind = OpKind::DensePaired;
        let DenseCommon {
            cout,
            terms,
            input_quant: xq,
            multipliers,
            shifts,
            act: (act_min, act_max),
        } = self.dense_common(kind, x, &spec)?;
        let k = usize::try_from(terms).map_err(|_| self.err(kind, BuildFault::TensorTooLarge))?;
        let (weights, odd_terms) = crate::pair_weights(&spec.weights, cout, k)
            .ok_or_else(|| self.err(kind, BuildFault::WeightOutOfRange))?;
        // `b − zp_in·Σw`: within i32 because `|b| + in·255·128` is (checked above).
        let zp = i64::from(xq.zero_point);
        let bias: Vec<u8> = spec
            .bias
            .iter()
            .zip(spec.weights.chunks(k.max(1)))
            .flat_map(|(&b, row)| {
                let sum: i64 = row.iter().map(|&w| i64::from(w)).sum();
                ((i64::from(b) - zp * sum) as i32).to_le_bytes()
            })
            .collect();
        let op = Op::DensePaired(DensePairedOp {
            input: x.0,
            pad: I8s(&[]), // set when the blob is encoded (`align_paired`)
            weights: I8s(&weights),
            bias: LeI32s(&bias),
            odd_terms: LeI32s(&odd_terms),
            requant: Requant {
                multipliers: LeI32s(&multipliers),
                shifts: I8s(&shifts),
            },
            act_min,
            act_max,
        });
        let shape = Shape {
            h: 1,
            w: 1,
            c: spec.out_features,
        };
        self.push(kind, &op, shape, spec.output)
    }

    /// What [`ModelBuilder::dense`] and [`ModelBuilder::dense_paired`] share: the parameter
    /// checks, the per-row requantization and the activation clamps.
    fn dense_common(&self, kind: OpKind, x: TensorId, spec: &DenseSpec) -> Built<DenseCommon> {
        let (xs, xq) = self.tensor(kind, x)?;
        let cout = usize::from(spec.out_features);
        let terms = xs.elements();
        self.check_params(
            kind,
            &spec.weights,
            cout as u64 * terms,
            &spec.bias,
            cout,
            terms,
        )?;
        let (multipliers, shifts) =
            self.requant(kind, cout, xq.scale, &spec.weight_scales, spec.output)?;
        Ok(DenseCommon {
            cout,
            terms,
            input_quant: xq,
            multipliers,
            shifts,
            act: spec.output.activation_range(spec.activation),
        })
    }

    fn pool(&mut self, kind: OpKind, x: TensorId, spec: PoolSpec) -> Built<TensorId> {
        let (xs, xq) = self.tensor(kind, x)?;
        let [kh, kw] = spec.kernel;
        let [pt, pl, pb, pr] = spec.padding;
        if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
            return Err(self.err(kind, BuildFault::BadWindow));
        }
        let (h, w) = self.window(kind, xs, &spec)?;
        let p = PoolOp {
            input: x.0,
            kernel: spec.kernel,
            stride: spec.stride,
            padding: spec.padding,
        };
        let op = if kind == OpKind::MaxPool2d {
            Op::MaxPool2d(p)
        } else {
            Op::AvgPool2d(p)
        };
        self.push(kind, &op, Shape { h, w, c: xs.c }, xq)
    }

    /// Adds max pooling reading `x`; the output keeps `x`'s quantization.
    pub fn max_pool2d(&mut self, x: TensorId, spec: PoolSpec) -> Built<TensorId> {
        self.pool(OpKind::MaxPool2d, x, spec)
    }

    /// Adds average pooling (over valid cells) reading `x`; the output keeps `x`'s quantization.
    pub fn avg_pool2d(&mut self, x: TensorId, spec: PoolSpec) -> Built<TensorId> {
        self.pool(OpKind::AvgPool2d, x, spec)
    }

    /// Adds a global average pool reading `x`: output `[1, 1, C]`, same quantization.
    pub fn global_avg_pool(&mut self, x: TensorId) -> Built<TensorId> {
        let kind = OpKind::GlobalAvgPool;
        let (xs, xq) = self.tensor(kind, x)?;
        let op = Op::GlobalAvgPool { input: x.0 };
        self.push(
            kind,
            &op,
            Shape {
                h: 1,
                w: 1,
                c: xs.c,
            },
            xq,
        )
    }

    /// Adds `a + b` (equal shapes), rescaled to `output` TFLite-style, with a fused activation.
    pub fn add(
        &mut self,
        a: TensorId,
        b: TensorId,
        output: Quant,
        activation: Activation,
    ) -> Built<TensorId> {
        let kind = OpKind::Add;
        let (sa, qa) = self.tensor(kind, a)?;
        let (sb, qb) = self.tensor(kind, b)?;
        if sa != sb {
            return Err(self.err(
                kind,
                BuildFault::ShapeMismatch {
                    expected: sa,
                    got: sb,
                },
            ));
        }
        if !scale_ok(output.scale) || !scale_ok(qa.scale) || !scale_ok(qb.scale) {
            return Err(self.err(kind, BuildFault::BadScale));
        }
        let (s_a, s_b, s_o) = (
            f64::from(qa.scale),
            f64::from(qb.scale),
            f64::from(output.scale),
        );
        let twice_max = 2.0 * if s_a > s_b { s_a } else { s_b };
        let (a_multiplier, a_shift) =
            self.multiplier(kind, s_a / twice_max, quantize_multiplier)?;
        let (b_multiplier, b_shift) =
            self.multiplier(kind, s_b / twice_max, quantize_multiplier)?;
        let left = (1u64 << crate::ADD_LEFT_SHIFT) as f64;
        let (out_multiplier, out_shift) =
            self.multiplier(kind, twice_max / (left * s_o), quantize_multiplier)?;
        let (act_min, act_max) = output.activation_range(activation);
        let op = Op::Add(AddOp {
            a: a.0,
            b: b.0,
            a_multiplier,
            a_shift,
            b_multiplier,
            b_shift,
            out_multiplier,
            out_shift,
            act_min,
            act_max,
        });
        self.push(kind, &op, sa, output)
    }

    /// Layout of `t` (format 1.2); int8 for an id this builder did not hand out.
    pub fn layout(&self, t: TensorId) -> Layout {
        self.layouts
            .get(usize::from(t.0))
            .copied()
            .unwrap_or(Layout::Int8)
    }

    /// Packs ±1 weights `[out][taps][cin]` into `[out][taps][words(cin)]` u32 LE words.
    fn pack_weights(
        &self,
        kind: OpKind,
        w: &[i8],
        out: u16,
        taps: u64,
        cin: u16,
    ) -> Built<Vec<u8>> {
        let expected = u64::from(out) * taps * u64::from(cin);
        if w.len() as u64 != expected {
            return Err(self.err(
                kind,
                BuildFault::Length {
                    what: "weights",
                    expected: usize::try_from(expected).unwrap_or(usize::MAX),
                    got: w.len(),
                },
            ));
        }
        if w.iter().any(|&v| v != 1 && v != -1) {
            return Err(self.err(kind, BuildFault::WeightOutOfRange));
        }
        let words = crate::packed_words(cin);
        let mut bytes = Vec::with_capacity(w.len() / 8 + 4);
        for pixel in w.chunks(usize::from(cin).max(1)) {
            for j in 0..words {
                let mut word = 0u32;
                for (i, &v) in pixel.iter().skip(32 * j).take(32).enumerate() {
                    if v < 0 {
                        word |= 1 << i;
                    }
                }
                bytes.extend_from_slice(&word.to_le_bytes());
            }
        }
        Ok(bytes)
    }

    /// The same checked ±1 weights `[out][taps][in]` bit-sliced (SPEC §3.3): per group of 32
    /// filters, per tap and per channel of the padded `32 · words(in)`, one word whose bit `j`
    /// is filter `32g + j` (1 = −1); padding channels and padding filters are 0.
    fn slice_weights(
        &self,
        kind: OpKind,
        w: &[i8],
        out: u16,
        taps: u64,
        cin: u16,
    ) -> Built<Vec<u8>> {
        self.pack_weights(kind, w, out, taps, cin)?; // the same length and value checks
        let (out, cin) = (usize::from(out), usize::from(cin));
        let taps = usize::try_from(taps).unwrap_or(usize::MAX);
        let lanes = crate::packed_words(cin as u16) * 32;
        let mut bytes = Vec::with_capacity(out.div_ceil(32) * taps * lanes * 4);
        for g in 0..out.div_ceil(32) {
            for tap in 0..taps {
                for c in 0..lanes {
                    let mut word = 0u32;
                    for j in 0..32 {
                        let o = 32 * g + j;
                        let v = if o < out && c < cin {
                            w.get((o * taps + tap) * cin + c).copied().unwrap_or(1)
                        } else {
                            1
                        };
                        if v < 0 {
                            word |= 1 << j;
                        }
                    }
                    bytes.extend_from_slice(&word.to_le_bytes());
                }
            }
        }
        Ok(bytes)
    }

    /// Checks the input thresholds against `x`'s layout.
    fn input_thresholds(&self, kind: OpKind, x: TensorId, t: &[i32]) -> Built<Vec<u8>> {
        let c = usize::from(self.shape(x).c);
        let ok = match self.layout(x) {
            Layout::Packed => t.is_empty(),
            Layout::Int8 => t.len() == 1 || t.len() == c,
        };
        if !ok {
            return Err(self.err(kind, BuildFault::Layout));
        }
        Ok(t.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// The output stage's parameters (flip bytes, then the rest) and the output quantization.
    #[allow(clippy::type_complexity)]
    fn binary_output(
        &self,
        kind: OpKind,
        spec: &BinaryOutputSpec,
        cout: u16,
        k: u64,
    ) -> Built<(Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, (i8, i8), Quant)> {
        let n = usize::from(cout);
        let len = |what, got: usize| {
            if got == n {
                Ok(())
            } else {
                Err(self.err(
                    kind,
                    BuildFault::Length {
                        what,
                        expected: n,
                        got,
                    },
                ))
            }
        };
        let flips = |f: &[bool]| f.iter().map(|&f| u8::from(f)).collect::<Vec<u8>>();
        match spec {
            BinaryOutputSpec::Packed { thresholds, flip } => {
                len("thresholds", thresholds.len())?;
                len("flip", flip.len())?;
                let t = thresholds.iter().flat_map(|v| v.to_le_bytes()).collect();
                let packed = Quant {
                    scale: 1.0,
                    zero_point: 0,
                };
                Ok((
                    flips(flip),
                    t,
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    (0, 0),
                    packed,
                ))
            }
            BinaryOutputSpec::Int8 {
                flip,
                bias,
                scales,
                output,
                activation,
            } => {
                len("flip", flip.len())?;
                len("bias", bias.len())?;
                if bias
                    .iter()
                    .any(|b| u64::from(b.unsigned_abs()).saturating_add(k) > i32::MAX as u64)
                {
                    return Err(self.err(kind, BuildFault::AccumulatorOverflow));
                }
                let (m, s) = self.requant(kind, n, 1.0, scales, *output)?;
                let b = bias.iter().flat_map(|v| v.to_le_bytes()).collect();
                let act = output.activation_range(*activation);
                Ok((flips(flip), Vec::new(), b, m, s, act, *output))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn binary_layer(
        &mut self,
        kind: OpKind,
        x: TensorId,
        window: Option<&PoolSpec>,
        cout: u16,
        weights: &[i8],
        input_thresholds: &[i32],
        output: &BinaryOutputSpec,
    ) -> Built<TensorId> {
        let (xs, _) = self.tensor(kind, x)?;
        let (h, w, taps) = match window {
            Some(p) => {
                let (h, w) = self.window(kind, xs, p)?;
                (h, w, u64::from(p.kernel[0]) * u64::from(p.kernel[1]))
            }
            None => (1, 1, u64::from(xs.h) * u64::from(xs.w)),
        };
        let k = taps * u64::from(xs.c);
        if k > i32::MAX as u64 / 2 {
            return Err(self.err(kind, BuildFault::AccumulatorOverflow));
        }
        let packed_w = if kind == OpKind::BinaryConv2dSliced {
            self.slice_weights(kind, weights, cout, taps, xs.c)?
        } else {
            self.pack_weights(kind, weights, cout, taps, xs.c)?
        };
        let thresholds_in = self.input_thresholds(kind, x, input_thresholds)?;
        let (flip, thresholds, bias, m, s, (act_min, act_max), quant) =
            self.binary_output(kind, output, cout, k)?;
        let out = match output {
            BinaryOutputSpec::Packed { .. } => BinaryOutput::Packed {
                thresholds: LeI32s(&thresholds),
            },
            BinaryOutputSpec::Int8 { .. } => BinaryOutput::Int8 {
                bias: LeI32s(&bias),
                requant: Requant {
                    multipliers: LeI32s(&m),
                    shifts: I8s(&s),
                },
                act_min,
                act_max,
            },
        };
        let op = match window {
            Some(p) => {
                let conv = BinaryConv2dOp {
                    input: x.0,
                    kernel: p.kernel,
                    stride: p.stride,
                    padding: p.padding,
                    weights: Bits(&packed_w),
                    input_thresholds: LeI32s(&thresholds_in),
                    flip: I8s(&flip),
                    output: out,
                };
                if kind == OpKind::BinaryConv2dSliced {
                    Op::BinaryConv2dSliced(conv)
                } else {
                    Op::BinaryConv2d(conv)
                }
            }
            None => Op::BinaryDense(BinaryDenseOp {
                input: x.0,
                weights: Bits(&packed_w),
                input_thresholds: LeI32s(&thresholds_in),
                flip: I8s(&flip),
                output: out,
            }),
        };
        self.push(kind, &op, Shape { h, w, c: cout }, quant)
    }

    /// Adds a binary convolution reading `x` (packed, or int8 binarized by
    /// `input_thresholds`); writes a packed or an int8 tensor (format 1.2).
    pub fn binary_conv2d(&mut self, x: TensorId, spec: BinaryConv2dSpec) -> Built<TensorId> {
        let window = PoolSpec {
            kernel: spec.kernel,
            stride: spec.stride,
            padding: spec.padding,
        };
        self.binary_layer(
            OpKind::BinaryConv2d,
            x,
            Some(&window),
            spec.out_channels,
            &spec.weights,
            &spec.input_thresholds,
            &spec.output,
        )
    }

    /// Adds the same binary convolution as [`ModelBuilder::binary_conv2d`] with its weights stored
    /// bit-sliced (format 1.4, SPEC §3.3): the kernels count 32 filters at once. It pays where
    /// [`sliced_pays`](crate::sliced_pays) says so.
    pub fn binary_conv2d_sliced(&mut self, x: TensorId, spec: BinaryConv2dSpec) -> Built<TensorId> {
        let window = PoolSpec {
            kernel: spec.kernel,
            stride: spec.stride,
            padding: spec.padding,
        };
        self.binary_layer(
            OpKind::BinaryConv2dSliced,
            x,
            Some(&window),
            spec.out_channels,
            &spec.weights,
            &spec.input_thresholds,
            &spec.output,
        )
    }

    /// Adds a binary fully connected layer reading `x` (flattened HWC); output `[1, 1, out]`.
    pub fn binary_dense(&mut self, x: TensorId, spec: BinaryDenseSpec) -> Built<TensorId> {
        self.binary_layer(
            OpKind::BinaryDense,
            x,
            None,
            spec.out_features,
            &spec.weights,
            &spec.input_thresholds,
            &spec.output,
        )
    }

    /// Adds max pooling of the packed tensor `x` (bitwise AND of the −1 bits over the window's
    /// valid cells; padded cells never win).
    pub fn binary_max_pool2d(&mut self, x: TensorId, spec: PoolSpec) -> Built<TensorId> {
        let kind = OpKind::BinaryMaxPool2d;
        let (xs, xq) = self.tensor(kind, x)?;
        if self.layout(x) != Layout::Packed {
            return Err(self.err(kind, BuildFault::Layout));
        }
        let [kh, kw] = spec.kernel;
        let [pt, pl, pb, pr] = spec.padding;
        if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
            return Err(self.err(kind, BuildFault::BadWindow));
        }
        let (h, w) = self.window(kind, xs, &spec)?;
        let op = Op::BinaryMaxPool2d(PoolOp {
            input: x.0,
            kernel: spec.kernel,
            stride: spec.stride,
            padding: spec.padding,
        });
        self.push(kind, &op, Shape { h, w, c: xs.c }, xq)
    }

    /// Adds a reshape of `x` to `shape` (same element count, same quantization).
    pub fn reshape(&mut self, x: TensorId, shape: Shape) -> Built<TensorId> {
        let kind = OpKind::Reshape;
        let (xs, xq) = self.tensor(kind, x)?;
        if xs.elements() != shape.elements() {
            return Err(self.err(
                kind,
                BuildFault::ShapeMismatch {
                    expected: xs,
                    got: shape,
                },
            ));
        }
        self.push(kind, &Op::Reshape { input: x.0 }, shape, xq)
    }

    /// Plans the arena (tensors and the fast kernels' scratch, SPEC §5), encodes the blob
    /// (header, postcard body, scratch table, CRC) and validates it. The last op's tensor is the
    /// model output.
    pub fn finish(self) -> Built<Vec<u8>> {
        self.finish_impl(true)
    }

    /// As [`ModelBuilder::finish`], but writes a format 1.0 blob: no scratch table, so the arena
    /// holds the tensors only and every op runs on the portable kernels, which need no scratch.
    /// For the smallest arena, or for readers older than 1.1.
    pub fn finish_without_scratch(self) -> Built<Vec<u8>> {
        self.finish_impl(false)
    }

    fn finish_impl(self, with_scratch: bool) -> Built<Vec<u8>> {
        let model_err = |fault| BuildError { op: None, fault };
        if self.ops.is_empty() {
            return Err(model_err(BuildFault::NoOps));
        }
        if self.name.len() > MAX_NAME_LEN {
            return Err(model_err(BuildFault::NameTooLong));
        }
        if !scale_ok(self.quant(TensorId(0)).scale) {
            return Err(model_err(BuildFault::BadScale));
        }
        let sizes: Vec<u32> = self
            .tensors
            .iter()
            .zip(&self.layouts)
            .map(|((s, _), l)| u32::try_from(l.len(*s)).unwrap_or(u32::MAX))
            .collect();
        let op_minor = self
            .ops
            .iter()
            .filter_map(|o| postcard::from_bytes::<Op<'_>>(&o.bytes).ok())
            .map(|op| op.min_minor())
            .max()
            .unwrap_or(0);
        let op_minor = if self.layouts.contains(&Layout::Packed) {
            op_minor.max(2)
        } else {
            op_minor
        };
        let inputs: Vec<[Option<u16>; 2]> = self.ops.iter().map(|o| o.inputs).collect();
        // Planned with the current format's scratch lengths; an op whose length differs from
        // the one a 1.4 reader computes (a one-channel 3×3 conv, SPEC §5.1) makes the blob 1.5.
        let mut op_minor = op_minor;
        let mut scratch = Vec::with_capacity(self.ops.len());
        for (i, enc) in self.ops.iter().enumerate() {
            let len = match (with_scratch, postcard::from_bytes::<Op<'_>>(&enc.bytes)) {
                (false, _) => 0,
                (true, Ok(op)) => {
                    let shape = |t: Option<u16>| {
                        t.and_then(|t| self.tensors.get(usize::from(t)))
                            .map_or(Shape { h: 0, w: 0, c: 0 }, |t| t.0)
                    };
                    let out = self.tensors.get(i + 1).map_or(shape(None), |t| t.0);
                    let input = shape(op.inputs()[0]);
                    let len = scratch_len(&op, input, out);
                    if len != scratch_len_in(4, &op, input, out) {
                        op_minor = op_minor.max(5);
                    }
                    len
                }
                (true, Err(e)) => return Err(model_err(BuildFault::Invalid(Error::from(e)))),
            };
            scratch.push(len);
        }
        let (offsets, scratch_offsets, arena_size) = plan(&sizes, &inputs, &scratch);

        let records: Vec<TensorDesc> = self
            .tensors
            .iter()
            .zip(&offsets)
            .zip(&sizes)
            .map(|(((shape, quant), offset), len)| TensorDesc {
                shape: *shape,
                quant: *quant,
                offset: *offset,
                len: *len,
            })
            .collect();
        let mut body = Vec::new();
        for op in &self.ops {
            body.extend_from_slice(&op.bytes);
        }
        let table = with_scratch.then_some(&scratch_offsets[..]);
        let norm = self.input_norm.as_deref().map(crate::norm::encode);
        let blob = encode_parts(
            &self.name,
            arena_size,
            &records,
            self.ops.len(),
            &body,
            table,
            op_minor,
            norm.as_deref(),
        )
        .map_err(|e| model_err(BuildFault::Invalid(e)))?;
        validate(&blob).map_err(|e| model_err(BuildFault::Invalid(e)))?;
        Ok(blob)
    }
}

/// Encodes a descriptor exactly as given — no planning, no checks — with a valid header and CRC,
/// as a format **1.0** blob (no scratch table; see [`encode_blob_with_scratch`] for 1.1).
///
/// This is the wire layout of SPEC §1–3 in one function; [`ModelBuilder::finish`] uses it after
/// planning. Tools and tests use it to write blobs on purpose (e.g. a corrupted plan that must be
/// refused), so its output is *not* guaranteed to pass [`validate`].
///
/// ```
/// use tinykd_format::*;
/// let q = Quant { scale: 0.5, zero_point: 0 };
/// let t = |shape: Shape, offset| TensorDesc { shape, quant: q, offset, len: shape.elements() as u32 };
/// let tensors = [t(Shape { h: 1, w: 1, c: 4 }, 0), t(Shape { h: 2, w: 2, c: 1 }, 0)];
/// // The reshape's output overlaps its input: well-formed bytes, invalid plan.
/// let blob = encode_blob("x", 4, &tensors, &[Op::Reshape { input: 0 }]).unwrap();
/// assert_eq!(validate(&blob).unwrap_err(), Error::PlanOverlap);
/// ```
pub fn encode_blob(
    name: &str,
    arena_size: u32,
    tensors: &[TensorDesc],
    ops: &[Op<'_>],
) -> crate::Result<Vec<u8>> {
    let mut body = Vec::new();
    for op in ops {
        body = postcard::to_extend(op, body)?;
    }
    let op_minor = ops.iter().map(Op::min_minor).max().unwrap_or(0);
    encode_parts(
        name,
        arena_size,
        tensors,
        ops.len(),
        &body,
        None,
        op_minor,
        None,
    )
}

/// As [`encode_blob`], as a format 1.1 blob with the scratch table `scratch` (one arena offset per
/// op, SPEC §5.1), exactly as given: no checks.
///
/// ```
/// use tinykd_format::*;
/// let q = Quant { scale: 0.5, zero_point: 0 };
/// let t = |shape: Shape, offset| TensorDesc { shape, quant: q, offset, len: shape.elements() as u32 };
/// let tensors = [t(Shape { h: 1, w: 1, c: 4 }, 0), t(Shape { h: 2, w: 2, c: 1 }, 4)];
/// let blob = encode_blob_with_scratch("x", 8, &tensors, &[Op::Reshape { input: 0 }], &[0]).unwrap();
/// assert_eq!(validate(&blob).unwrap().scratch_offset(0), Some(0));
/// // A reshape needs no scratch, so its offset must be 0.
/// let blob = encode_blob_with_scratch("x", 8, &tensors, &[Op::Reshape { input: 0 }], &[4]).unwrap();
/// assert_eq!(validate(&blob).unwrap_err(), Error::PlanBadScratch);
/// ```
pub fn encode_blob_with_scratch(
    name: &str,
    arena_size: u32,
    tensors: &[TensorDesc],
    ops: &[Op<'_>],
    scratch: &[u32],
) -> crate::Result<Vec<u8>> {
    let mut body = Vec::new();
    for op in ops {
        body = postcard::to_extend(op, body)?;
    }
    let op_minor = ops.iter().map(Op::min_minor).max().unwrap_or(0);
    encode_parts(
        name,
        arena_size,
        tensors,
        ops.len(),
        &body,
        Some(scratch),
        op_minor,
        None,
    )
}

/// Header, postcard head, op count, pre-encoded ops, the scratch table (1.1) if given, CRC.
///
/// The minor version is the lowest that expresses the model: 1.0 without a scratch table, 1.1
/// with one, 1.2 when an op is binary (then "no scratch plan" is an empty table), 1.3 with an
/// input normalisation (`norm`: its stored bytes, SPEC §5.2), and 1.4 when an op is bit-sliced
/// (then the normalisation is present, empty if there is none). `op_minor` is the highest
/// [`Op::min_minor`] of the ops.
#[allow(clippy::too_many_arguments)]
fn encode_parts(
    name: &str,
    arena_size: u32,
    tensors: &[TensorDesc],
    op_count: usize,
    op_bytes: &[u8],
    scratch: Option<&[u32]>,
    op_minor: u8,
    norm: Option<&[u8]>,
) -> crate::Result<Vec<u8>> {
    let binary = op_minor >= 2;
    let table: Vec<u8> = tensors.iter().flat_map(|t| t.to_record()).collect();
    let head = BodyHead {
        name,
        arena_size,
        tensors: &table,
    };
    let mut body = postcard::to_extend(&head, Vec::new())?;
    let count = u32::try_from(op_count).map_err(|_| Error::OpBadCount)?;
    body = postcard::to_extend(&count, body)?;
    let op_bytes = align_paired(crate::HEADER_LEN + body.len(), op_bytes, op_count)?;
    body.extend_from_slice(&op_bytes);
    let minor = match (scratch, binary) {
        (Some(offsets), _) => {
            let table: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
            body = postcard::to_extend(&table[..], body)?;
            if binary {
                2
            } else {
                1
            }
        }
        (None, true) => {
            body = postcard::to_extend(&[0u8; 0][..], body)?;
            2
        }
        (None, false) if norm.is_some() => {
            body = postcard::to_extend(&[0u8; 0][..], body)?;
            2
        }
        (None, false) => 0,
    };
    let minor = match norm {
        Some(norm) => {
            body = postcard::to_extend(norm, body)?;
            3
        }
        None if op_minor >= 4 => {
            body = postcard::to_extend(&[0u8; 0][..], body)?;
            3
        }
        None => minor,
    };
    let minor = minor.max(op_minor);
    let body_len = u32::try_from(body.len()).map_err(|_| Error::BodyTruncated)?;
    let mut blob = Vec::with_capacity(body.len() + crate::HEADER_LEN + crate::CRC_LEN);
    blob.extend_from_slice(&Header::encode_minor(minor, body_len));
    blob.extend_from_slice(&body);
    let crc = crate::crc32(&blob);
    blob.extend_from_slice(&crc.to_le_bytes());
    Ok(blob)
}

/// The encoded ops (`count` of them, starting `at` bytes into the blob) with each
/// `DensePaired`'s `pad` set so that its weights start 4-aligned from the blob's start
/// (SPEC §3.4); the other ops' bytes unchanged.
fn align_paired(at: usize, op_bytes: &[u8], count: usize) -> crate::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(op_bytes.len() + 3 * count);
    let mut rest = op_bytes;
    for _ in 0..count {
        let (op, tail) = postcard::take_from_bytes::<Op<'_>>(rest)?;
        let raw = rest
            .get(..rest.len() - tail.len())
            .ok_or(Error::BodyTruncated)?;
        rest = tail;
        let Op::DensePaired(d) = op else {
            out.extend_from_slice(raw);
            continue;
        };
        // Where the weights land with no padding (the pad's length byte stays one byte).
        let plain = postcard::to_extend(
            &Op::DensePaired(DensePairedOp { pad: I8s(&[]), ..d }),
            Vec::new(),
        )?;
        let offset = match postcard::from_bytes::<Op<'_>>(&plain)? {
            Op::DensePaired(p) => p.weights.bytes().as_ptr() as usize - plain.as_ptr() as usize,
            _ => 0,
        };
        let zeros = [0u8; 3];
        let pad = zeros
            .get(..(4 - (at + out.len() + offset) % 4) % 4)
            .unwrap_or(&[]);
        out = postcard::to_extend(&Op::DensePaired(DensePairedOp { pad: I8s(pad), ..d }), out)?;
    }
    out.extend_from_slice(rest);
    Ok(out)
}

/// Greedy memory plan (TFLM's `GreedyMemoryPlanner`, SPEC §5): buffers by decreasing size, each
/// at the lowest 4-aligned offset that does not overlap a placed buffer alive at the same time.
/// The buffers are the tensors and each op's scratch (`scratch[i]` bytes, alive during op `i`
/// only). Returns the tensor offsets, the scratch offsets (0 where no scratch) and the arena size
/// (the peak end). `inputs[i]` are the tensors op `i` reads.
fn plan(sizes: &[u32], inputs: &[[Option<u16>; 2]], scratch: &[u32]) -> (Vec<u32>, Vec<u32>, u32) {
    let n = sizes.len();
    let birth = |t: usize| t.saturating_sub(1);
    let mut last: Vec<usize> = (0..n).map(birth).collect();
    for (i, ins) in inputs.iter().enumerate() {
        for t in ins.iter().flatten() {
            if let Some(l) = last.get_mut(usize::from(*t)) {
                *l = (*l).max(i);
            }
        }
    }
    if let Some(l) = last.last_mut() {
        *l = inputs.len();
    }
    // (size, birth, last use) of every buffer: tensors first, then one scratch per op.
    let mut items: Vec<(u64, usize, usize)> = (0..n)
        .map(|t| {
            let size = u64::from(sizes.get(t).copied().unwrap_or(0));
            (size, birth(t), last.get(t).copied().unwrap_or(0))
        })
        .collect();
    items.extend(
        scratch
            .iter()
            .enumerate()
            .map(|(i, &s)| (u64::from(s), i, i)),
    );
    let item = |b: usize| items.get(b).copied().unwrap_or((0, 0, 0));
    let mut order: Vec<usize> = (0..items.len()).filter(|&b| item(b).0 > 0).collect();
    order.sort_by_key(|&b| (core::cmp::Reverse(item(b).0), b));

    let mut offsets = alloc::vec![0u64; items.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(items.len());
    for &b in &order {
        let (len, tb, tl) = item(b);
        let mut live: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&p| {
                let (_, pb, pl) = item(p);
                pb <= tl && tb <= pl
            })
            .map(|&p| {
                let off = offsets.get(p).copied().unwrap_or(0);
                (off, off + item(p).0)
            })
            .collect();
        live.sort_unstable();
        let mut candidate = 0u64;
        for (start, end) in live {
            if candidate + len <= start {
                break;
            }
            candidate = candidate.max(end.next_multiple_of(4));
        }
        if let Some(o) = offsets.get_mut(b) {
            *o = candidate;
        }
        placed.push(b);
    }
    let peak = offsets
        .iter()
        .zip(&items)
        .map(|(&o, &(s, _, _))| o + s)
        .max()
        .unwrap_or(0);
    let to_u32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let (tensor_offsets, scratch_offsets) = offsets.split_at(n.min(offsets.len()));
    (
        tensor_offsets.iter().map(|&o| to_u32(o)).collect(),
        scratch_offsets.iter().map(|&o| to_u32(o)).collect(),
        to_u32(peak),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn q(scale: f32, zero_point: i8) -> Quant {
        Quant { scale, zero_point }
    }

    fn pool(k: u8, s: u8, padding: [u8; 4]) -> PoolSpec {
        PoolSpec {
            kernel: [k, k],
            stride: [s, s],
            padding,
        }
    }

    /// Every op kind once: conv → depthwise → add (residual) → max pool → avg pool → reshape →
    /// dense → reshape → global average pool.
    pub(crate) fn tiny() -> Vec<u8> {
        tiny_builder().finish().unwrap()
    }

    /// A binary model (format 1.2): int8 input binarized per channel → binary conv (37 packed
    /// channels, +1 padding) → binary max pool → binary conv (33 channels, stride 2) → binary
    /// dense to int8 → int8 dense head.
    pub(crate) fn binary_model() -> Vec<u8> {
        let mut b = ModelBuilder::new("bin", Shape { h: 6, w: 5, c: 3 }, q(0.02, -5));
        let x = b.input();
        let signs = |n: usize, seed: usize| -> Vec<i8> {
            (0..n)
                .map(|i| {
                    if (i * 7 + seed).is_multiple_of(3) {
                        -1
                    } else {
                        1
                    }
                })
                .collect()
        };
        let t1 = b
            .binary_conv2d(
                x,
                BinaryConv2dSpec {
                    out_channels: 37,
                    kernel: [3, 3],
                    stride: [1, 1],
                    padding: [1, 1, 1, 1],
                    weights: signs(37 * 9 * 3, 1),
                    input_thresholds: vec![-5, 0, 3],
                    output: BinaryOutputSpec::Packed {
                        thresholds: (0..37).map(|c| 8 + c % 11).collect(),
                        flip: (0..37).map(|c| c % 4 == 0).collect(),
                    },
                },
            )
            .unwrap();
        let t2 = b.binary_max_pool2d(t1, pool(2, 2, [0, 0, 1, 1])).unwrap();
        let t3 = b
            .binary_conv2d(
                t2,
                BinaryConv2dSpec {
                    out_channels: 33,
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [1, 0, 0, 1],
                    weights: signs(33 * 4 * 37, 2),
                    input_thresholds: vec![],
                    output: BinaryOutputSpec::Packed {
                        thresholds: (0..33).map(|c| 60 + c % 30).collect(),
                        flip: (0..33).map(|c| c % 3 == 0).collect(),
                    },
                },
            )
            .unwrap();
        let n = b.shape(t3).elements() as usize;
        let t4 = b
            .binary_dense(
                t3,
                BinaryDenseSpec {
                    out_features: 6,
                    weights: signs(6 * n, 3),
                    input_thresholds: vec![],
                    output: BinaryOutputSpec::Int8 {
                        flip: vec![false, true, false, false, true, false],
                        bias: vec![3, -7, 0, 11, 2, -1],
                        scales: vec![0.05],
                        output: q(0.1, 4),
                        activation: Activation::Relu,
                    },
                },
            )
            .unwrap();
        b.dense(
            t4,
            DenseSpec {
                out_features: 3,
                weights: (0..18).map(|i| (i * 13 % 19) as i8 - 9).collect(),
                weight_scales: vec![0.02],
                bias: vec![1, -2, 3],
                output: q(0.2, 0),
                activation: Activation::None,
            },
        )
        .unwrap();
        b.finish().unwrap()
    }

    #[test]
    fn binary_model_builds_with_packed_tensors() {
        let blob = binary_model();
        let desc = validate(&blob).unwrap();
        assert_eq!(desc.version(), (1, 2));
        let layouts: Vec<Layout> = (0..6).map(|t| desc.layout(TensorId(t)).unwrap()).collect();
        use Layout::*;
        assert_eq!(layouts, [Int8, Packed, Packed, Packed, Int8, Int8]);
        let t1 = desc.tensor(TensorId(1)).unwrap();
        assert_eq!(t1.shape, Shape { h: 6, w: 5, c: 37 });
        assert_eq!(t1.len, 6 * 5 * 2 * 4);
        assert_eq!(
            desc.tensor(TensorId(3)).unwrap().shape,
            Shape { h: 2, w: 2, c: 33 }
        );
        // Scratch: the first conv binarizes its int8 input and gathers 9 taps of 1 word.
        let op0 = desc.ops().next().unwrap();
        assert_eq!(
            scratch_len(&op0, desc.input().shape, t1.shape),
            6 * 5 * 4 + 9 * 4
        );
        // Without a scratch plan: still 1.2, with an empty table.
        let mut b = ModelBuilder::new("bin", Shape { h: 2, w: 2, c: 1 }, q(0.1, 0));
        let x = b.input();
        b.binary_conv2d(
            x,
            BinaryConv2dSpec {
                out_channels: 2,
                kernel: [1, 1],
                stride: [1, 1],
                padding: [0; 4],
                weights: vec![1, -1],
                input_thresholds: vec![0],
                output: BinaryOutputSpec::Packed {
                    thresholds: vec![0, 0],
                    flip: vec![false, true],
                },
            },
        )
        .unwrap();
        let blob = b.finish_without_scratch().unwrap();
        let desc = validate(&blob).unwrap();
        assert_eq!(desc.version(), (1, 2));
        assert!(!desc.has_scratch_plan());
    }

    #[test]
    fn binary_builder_faults() {
        let mut b = ModelBuilder::new("bin", Shape { h: 3, w: 3, c: 2 }, q(0.1, 0));
        let x = b.input();
        let spec = |thresholds: Vec<i32>, weights: Vec<i8>| BinaryConv2dSpec {
            out_channels: 1,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0; 4],
            weights,
            input_thresholds: thresholds,
            output: BinaryOutputSpec::Packed {
                thresholds: vec![0],
                flip: vec![false],
            },
        };
        let fault = |r: Built<TensorId>| r.unwrap_err().fault;
        assert_eq!(
            fault(b.binary_conv2d(x, spec(vec![], vec![1, 1]))),
            BuildFault::Layout
        );
        assert_eq!(
            fault(b.binary_conv2d(x, spec(vec![0; 3], vec![1, 1]))),
            BuildFault::Layout
        );
        assert_eq!(
            fault(b.binary_conv2d(x, spec(vec![0], vec![1, 0]))),
            BuildFault::WeightOutOfRange
        );
        assert_eq!(
            fault(b.binary_max_pool2d(x, pool(2, 1, [0; 4]))),
            BuildFault::Layout
        );
        let y = b.binary_conv2d(x, spec(vec![0, 1], vec![1, -1])).unwrap();
        assert_eq!(b.layout(y), Layout::Packed);
        assert_eq!(fault(b.global_avg_pool(y)), BuildFault::Layout);
        assert_eq!(
            fault(b.binary_conv2d(y, spec(vec![0], vec![1]))),
            BuildFault::Layout
        );
        assert!(b.binary_conv2d(y, spec(vec![], vec![1])).is_ok());
    }

    pub(crate) fn tiny_builder() -> ModelBuilder {
        let mut b = ModelBuilder::new("tiny", Shape { h: 3, w: 3, c: 1 }, q(0.02, -5));
        let x = b.input();
        let t1 = b
            .conv2d(
                x,
                Conv2dSpec {
                    out_channels: 2,
                    kernel: [2, 2],
                    stride: [1, 1],
                    padding: [0, 0, 1, 1],
                    groups: 1,
                    weights: vec![1, -2, 3, -4, 5, -6, 7, -8],
                    weight_scales: vec![0.01, 0.02],
                    bias: vec![3, -4],
                    output: q(0.05, -10),
                    activation: Activation::Relu,
                },
            )
            .unwrap();
        let t2 = b
            .conv2d(
                t1,
                Conv2dSpec {
                    out_channels: 2,
                    kernel: [1, 1],
                    stride: [1, 1],
                    padding: [0; 4],
                    groups: 2,
                    weights: vec![100, -100],
                    weight_scales: vec![0.004],
                    bias: vec![0, 7],
                    output: q(0.03, 0),
                    activation: Activation::Relu6,
                },
            )
            .unwrap();
        let t3 = b.add(t1, t2, q(0.06, -3), Activation::None).unwrap();
        let t4 = b.max_pool2d(t3, pool(2, 2, [0, 0, 1, 1])).unwrap();
        let t5 = b.avg_pool2d(t4, pool(2, 1, [0, 0, 1, 1])).unwrap();
        let t6 = b.reshape(t5, Shape { h: 1, w: 1, c: 8 }).unwrap();
        let t7 = b
            .dense(
                t6,
                DenseSpec {
                    out_features: 8,
                    weights: (0..64).map(|i| (i * 37 % 255 - 127) as i8).collect(),
                    weight_scales: vec![0.001; 8],
                    bias: (0..8).map(|i| i * 100 - 400).collect(),
                    output: q(0.1, 2),
                    activation: Activation::None,
                },
            )
            .unwrap();
        let t8 = b.reshape(t7, Shape { h: 2, w: 2, c: 2 }).unwrap();
        b.global_avg_pool(t8).unwrap();
        b
    }

    /// The tiny model, byte for byte: any change to the wire layout, the planner or the
    /// multiplier encoding shows up here (and needs a version decision, SPEC §1).
    #[test]
    fn tiny_model_is_byte_pinned() {
        // Format 1.0 (no scratch table): the bytes v1.0 of this crate wrote, except the conv and
        // dense multipliers, rounded by `quantize_multiplier_q32` since 2026-11-29 (an encoder
        // choice: the same format, read the same way by every reader).
        let blob = tiny_builder().finish_without_scratch().unwrap();
        assert_eq!(blob, TINY);
        assert_eq!(&blob[..8], b"TKD\x01\x00\x00\x00\x00");
        // Format 1.1: the same tensors and ops, plus the scratch table (the conv's im2col and
        // the dense layer's widened input), which the planner fits into the arena.
        let blob = tiny();
        assert_eq!(blob, TINY_1_1);
        assert_eq!(&blob[..8], b"TKD\x01\x01\x00\x00\x00");
    }

    #[rustfmt::skip]
    const TINY: &[u8] = &[84, 75, 68, 1, 0, 0, 0, 0, 226, 1, 0, 0, 4, 116, 105, 110, 121, 58, 200, 1, 3, 0, 3, 0, 1, 0, 251, 0, 10, 215, 163, 60, 20, 0, 0, 0, 9, 0, 0, 0, 3, 0, 3, 0, 2, 0, 246, 0, 205, 204, 76, 61, 0, 0, 0, 0, 18, 0, 0, 0, 3, 0, 3, 0, 2, 0, 0, 0, 143, 194, 245, 60, 20, 0, 0, 0, 18, 0, 0, 0, 3, 0, 3, 0, 2, 0, 253, 0, 143, 194, 117, 61, 40, 0, 0, 0, 18, 0, 0, 0, 2, 0, 2, 0, 2, 0, 253, 0, 143, 194, 117, 61, 0, 0, 0, 0, 8, 0, 0, 0, 2, 0, 2, 0, 2, 0, 253, 0, 143, 194, 117, 61, 8, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 8, 0, 253, 0, 143, 194, 117, 61, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 8, 0, 2, 0, 205, 204, 204, 61, 8, 0, 0, 0, 8, 0, 0, 0, 2, 0, 2, 0, 2, 0, 2, 0, 205, 204, 204, 61, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 2, 0, 2, 0, 205, 204, 204, 61, 8, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 2, 2, 1, 1, 0, 0, 1, 1, 1, 8, 1, 254, 3, 252, 5, 250, 7, 248, 8, 3, 0, 0, 0, 252, 255, 255, 255, 8, 0, 55, 137, 65, 0, 55, 137, 65, 2, 249, 250, 246, 127, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 100, 156, 8, 0, 0, 0, 0, 7, 0, 0, 0, 8, 128, 7, 58, 109, 128, 7, 58, 109, 2, 249, 249, 0, 127, 5, 1, 2, 128, 128, 128, 128, 8, 0, 186, 178, 230, 204, 9, 255, 218, 171, 213, 170, 13, 237, 128, 127, 2, 3, 2, 2, 2, 2, 0, 0, 1, 1, 3, 4, 2, 2, 1, 1, 0, 0, 1, 1, 6, 5, 1, 6, 64, 129, 166, 203, 240, 21, 58, 95, 133, 170, 207, 244, 25, 62, 99, 137, 174, 211, 248, 29, 66, 103, 141, 178, 215, 252, 33, 70, 107, 145, 182, 219, 0, 37, 74, 111, 149, 186, 223, 4, 41, 78, 115, 153, 190, 227, 8, 45, 82, 119, 157, 194, 231, 12, 49, 86, 123, 161, 198, 235, 16, 53, 90, 127, 165, 32, 112, 254, 255, 255, 212, 254, 255, 255, 56, 255, 255, 255, 156, 255, 255, 255, 0, 0, 0, 0, 100, 0, 0, 0, 200, 0, 0, 0, 44, 1, 0, 0, 32, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 8, 246, 246, 246, 246, 246, 246, 246, 246, 128, 127, 6, 7, 4, 8, 150, 12, 253, 248];

    #[rustfmt::skip]
    const TINY_1_1: &[u8] = &[84, 75, 68, 1, 1, 0, 0, 0, 7, 2, 0, 0, 4, 116, 105, 110, 121, 70, 200, 1, 3, 0, 3, 0, 1, 0, 251, 0, 10, 215, 163, 60, 52, 0, 0, 0, 9, 0, 0, 0, 3, 0, 3, 0, 2, 0, 246, 0, 205, 204, 76, 61, 32, 0, 0, 0, 18, 0, 0, 0, 3, 0, 3, 0, 2, 0, 0, 0, 143, 194, 245, 60, 0, 0, 0, 0, 18, 0, 0, 0, 3, 0, 3, 0, 2, 0, 253, 0, 143, 194, 117, 61, 52, 0, 0, 0, 18, 0, 0, 0, 2, 0, 2, 0, 2, 0, 253, 0, 143, 194, 117, 61, 0, 0, 0, 0, 8, 0, 0, 0, 2, 0, 2, 0, 2, 0, 253, 0, 143, 194, 117, 61, 8, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 8, 0, 253, 0, 143, 194, 117, 61, 16, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 8, 0, 2, 0, 205, 204, 204, 61, 24, 0, 0, 0, 8, 0, 0, 0, 2, 0, 2, 0, 2, 0, 2, 0, 205, 204, 204, 61, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 2, 0, 2, 0, 205, 204, 204, 61, 8, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 2, 2, 1, 1, 0, 0, 1, 1, 1, 8, 1, 254, 3, 252, 5, 250, 7, 248, 8, 3, 0, 0, 0, 252, 255, 255, 255, 8, 0, 55, 137, 65, 0, 55, 137, 65, 2, 249, 250, 246, 127, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 100, 156, 8, 0, 0, 0, 0, 7, 0, 0, 0, 8, 128, 7, 58, 109, 128, 7, 58, 109, 2, 249, 249, 0, 127, 5, 1, 2, 128, 128, 128, 128, 8, 0, 186, 178, 230, 204, 9, 255, 218, 171, 213, 170, 13, 237, 128, 127, 2, 3, 2, 2, 2, 2, 0, 0, 1, 1, 3, 4, 2, 2, 1, 1, 0, 0, 1, 1, 6, 5, 1, 6, 64, 129, 166, 203, 240, 21, 58, 95, 133, 170, 207, 244, 25, 62, 99, 137, 174, 211, 248, 29, 66, 103, 141, 178, 215, 252, 33, 70, 107, 145, 182, 219, 0, 37, 74, 111, 149, 186, 223, 4, 41, 78, 115, 153, 190, 227, 8, 45, 82, 119, 157, 194, 231, 12, 49, 86, 123, 161, 198, 235, 16, 53, 90, 127, 165, 32, 112, 254, 255, 255, 212, 254, 255, 255, 56, 255, 255, 255, 156, 255, 255, 255, 0, 0, 0, 0, 100, 0, 0, 0, 200, 0, 0, 0, 44, 1, 0, 0, 32, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 0, 168, 164, 78, 8, 246, 246, 246, 246, 246, 246, 246, 246, 128, 127, 6, 7, 4, 8, 36, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 239, 161, 124, 47];

    #[test]
    fn round_trip_preserves_every_parameter() {
        let blob = tiny();
        let desc = validate(&blob).unwrap();
        assert_eq!(desc.name(), "tiny");
        assert_eq!(desc.version(), (1, 1));
        assert_eq!(desc.tensor_count(), 10);
        let kinds: Vec<OpKind> = desc.ops().map(|o| o.kind()).collect();
        use OpKind::*;
        assert_eq!(
            kinds,
            [
                Conv2d,
                Conv2d,
                Add,
                MaxPool2d,
                AvgPool2d,
                Reshape,
                Dense,
                Reshape,
                GlobalAvgPool
            ]
        );
        let ops: Vec<Op> = desc.ops().collect();
        let Op::Conv2d(c) = ops[0] else { panic!() };
        assert_eq!(
            c.weights.iter().collect::<Vec<_>>(),
            [1, -2, 3, -4, 5, -6, 7, -8]
        );
        assert_eq!(c.bias.iter().collect::<Vec<_>>(), [3, -4]);
        assert_eq!((c.act_min, c.act_max), (-10, 127));
        for (ch, s_w) in [0.01f32, 0.02].iter().enumerate() {
            let real = 0.02f32 as f64 * *s_w as f64 / 0.05f32 as f64;
            let (m, s) = quantize_multiplier_q32(real);
            assert_eq!(c.requant.multipliers.get(ch), Some(m));
            assert_eq!(c.requant.shifts.get(ch), Some(s as i8));
        }
        let Op::Conv2d(dw) = ops[1] else { panic!() };
        assert_eq!(dw.groups, 2);
        // ReLU6 at scale 0.03: 6 / 0.03 = 200 saturates at 127.
        assert_eq!((dw.act_min, dw.act_max), (0, 127));
        let Op::Add(a) = ops[2] else { panic!() };
        assert_eq!((a.a, a.b), (1, 2));
        assert_eq!(
            (a.a_multiplier, a.a_shift as i32),
            quantize_multiplier(0.05f32 as f64 / (2.0 * 0.05f32 as f64))
        );
        let out = desc.output();
        assert_eq!(out.shape, Shape { h: 1, w: 1, c: 2 });
        assert_eq!(out.quant, q(0.1, 2));
        // Every tensor's record matches the builder's view.
        assert_eq!(
            desc.tensor(TensorId(4)).unwrap().shape,
            Shape { h: 2, w: 2, c: 2 }
        );
        assert_eq!(desc.tensor(TensorId(10)), None);
        let total_params: usize = desc.ops().map(|o| o.param_bytes()).sum();
        assert_eq!(
            total_params,
            (8 + 8 + 8 + 2) + (2 + 8 + 8 + 2) + (64 + 32 + 32 + 8)
        );
    }

    fn err(r: Built<TensorId>) -> (Option<BuildOp>, BuildFault) {
        let e = r.unwrap_err();
        (e.op, e.fault)
    }

    fn conv_spec(out: u16, k: u8, groups: u16, in_per_group: usize) -> Conv2dSpec {
        Conv2dSpec {
            out_channels: out,
            kernel: [k, k],
            stride: [1, 1],
            padding: [0; 4],
            groups,
            weights: vec![1; out as usize * (k as usize).pow(2) * in_per_group],
            weight_scales: vec![0.1; out as usize],
            bias: vec![0; out as usize],
            output: q(0.1, 0),
            activation: Activation::None,
        }
    }

    #[test]
    fn errors_name_the_op_and_the_fault() {
        let mut b = ModelBuilder::new("e", Shape { h: 4, w: 4, c: 4 }, q(0.1, 0));
        let x = b.input();
        let at = |index, kind| Some(BuildOp { index, kind });
        assert_eq!(
            err(b.conv2d(TensorId(9), conv_spec(2, 1, 1, 4))),
            (
                at(0, OpKind::Conv2d),
                BuildFault::UnknownTensor(TensorId(9))
            )
        );
        let mut s = conv_spec(2, 3, 1, 4);
        s.weights.pop();
        assert_eq!(
            err(b.conv2d(x, s)).1,
            BuildFault::Length {
                what: "weights",
                expected: 72,
                got: 71
            }
        );
        let mut s = conv_spec(2, 1, 1, 4);
        s.weights[3] = -128;
        assert_eq!(err(b.conv2d(x, s)).1, BuildFault::WeightOutOfRange);
        let mut s = conv_spec(2, 1, 1, 4);
        s.bias.push(0);
        assert_eq!(
            err(b.conv2d(x, s)).1,
            BuildFault::Length {
                what: "bias",
                expected: 2,
                got: 3
            }
        );
        let mut s = conv_spec(2, 1, 1, 4);
        s.weight_scales = vec![0.1; 3];
        assert!(matches!(
            err(b.conv2d(x, s)).1,
            BuildFault::Length {
                what: "weight_scales",
                ..
            }
        ));
        let mut s = conv_spec(2, 1, 1, 4);
        s.weight_scales[1] = f32::NAN;
        assert_eq!(err(b.conv2d(x, s)).1, BuildFault::BadScale);
        let mut s = conv_spec(2, 1, 1, 4);
        s.output.scale = 0.0;
        assert_eq!(err(b.conv2d(x, s)).1, BuildFault::BadScale);
        assert_eq!(
            err(b.conv2d(x, conv_spec(2, 5, 1, 4))).1,
            BuildFault::BadWindow
        );
        let mut s = conv_spec(2, 1, 1, 4);
        s.stride = [0, 1];
        assert_eq!(err(b.conv2d(x, s)).1, BuildFault::BadWindow);
        assert_eq!(
            err(b.conv2d(x, conv_spec(3, 1, 2, 2))).1,
            BuildFault::BadGroups
        );
        assert_eq!(
            err(b.conv2d(x, conv_spec(2, 1, 0, 2))).1,
            BuildFault::BadGroups
        );
        let mut s = conv_spec(2, 1, 1, 4);
        s.weight_scales = vec![1e6];
        s.output.scale = 1e-6;
        assert_eq!(err(b.conv2d(x, s)).1, BuildFault::MultiplierTooLarge);
        let mut s = conv_spec(2, 1, 1, 4);
        s.bias[0] = i32::MAX - 1000;
        assert_eq!(err(b.conv2d(x, s)).1, BuildFault::AccumulatorOverflow);
        assert_eq!(
            err(b.max_pool2d(x, pool(2, 1, [2, 0, 0, 0]))).1,
            BuildFault::BadWindow
        );
        assert_eq!(
            err(b.avg_pool2d(x, pool(5, 1, [0; 4]))).1,
            BuildFault::BadWindow
        );
        assert_eq!(
            err(b.reshape(x, Shape { h: 1, w: 1, c: 63 })).1,
            BuildFault::ShapeMismatch {
                expected: Shape { h: 4, w: 4, c: 4 },
                got: Shape { h: 1, w: 1, c: 63 }
            }
        );
        // Nothing was added by the failed calls.
        let y = b.global_avg_pool(x).unwrap();
        assert_eq!(y, TensorId(1));
        assert_eq!(
            err(b.add(x, y, q(0.1, 0), Activation::None)),
            (
                at(1, OpKind::Add),
                BuildFault::ShapeMismatch {
                    expected: Shape { h: 4, w: 4, c: 4 },
                    got: Shape { h: 1, w: 1, c: 4 }
                }
            )
        );
        assert_eq!(b.shape(TensorId(7)), Shape { h: 0, w: 0, c: 0 });
        assert_eq!(b.quant(TensorId(7)).scale, 0.0);
        let e = b
            .dense(
                y,
                DenseSpec {
                    out_features: 2,
                    weights: vec![1; 7],
                    weight_scales: vec![0.1],
                    bias: vec![0; 2],
                    output: q(0.1, 0),
                    activation: Activation::None,
                },
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "op 1 (dense): weights has 7 values, expected 8"
        );

        let empty = ModelBuilder::new("e", Shape { h: 1, w: 1, c: 1 }, q(0.1, 0));
        assert_eq!(empty.finish().unwrap_err().fault, BuildFault::NoOps);
        let mut long = ModelBuilder::new(&"n".repeat(65), Shape { h: 1, w: 1, c: 1 }, q(0.1, 0));
        long.global_avg_pool(TensorId(0)).unwrap();
        let e = long.finish().unwrap_err();
        assert_eq!(e.fault, BuildFault::NameTooLong);
        assert_eq!(e.to_string(), "model: model name too long");
        let mut bad_in = ModelBuilder::new("e", Shape { h: 1, w: 1, c: 1 }, q(-1.0, 0));
        bad_in.global_avg_pool(TensorId(0)).unwrap();
        assert_eq!(bad_in.finish().unwrap_err().fault, BuildFault::BadScale);
        let mut big = ModelBuilder::new(
            "e",
            Shape {
                h: 4096,
                w: 4096,
                c: 1,
            },
            q(0.1, 0),
        );
        assert_eq!(
            err(big.reshape(
                TensorId(0),
                Shape {
                    h: 4096,
                    w: 4096,
                    c: 1
                }
            ))
            .1,
            BuildFault::TensorTooLarge
        );
    }

    #[test]
    fn too_many_ops_is_an_error() {
        let mut b = ModelBuilder::new("deep", Shape { h: 1, w: 1, c: 1 }, q(0.1, 0));
        let mut x = b.input();
        for _ in 0..MAX_TENSORS - 1 {
            x = b.reshape(x, Shape { h: 1, w: 1, c: 1 }).unwrap();
        }
        assert_eq!(
            err(b.reshape(x, Shape { h: 1, w: 1, c: 1 })).1,
            BuildFault::TooManyOps
        );
        // The deepest allowed model still encodes and validates; a chain needs only 2 buffers.
        let blob = b.finish().unwrap();
        assert_eq!(validate(&blob).unwrap().arena_size(), 5);
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn b_shape(desc: &crate::ModelDesc<'_>, t: u16) -> Shape {
        desc.tensor(TensorId(t)).unwrap().shape
    }

    /// Random graphs with residual adds and skip connections: the plan always validates (no live
    /// overlap) and its peak lies between the largest live set and the sum of all tensors.
    #[test]
    fn planner_is_valid_and_tight_on_random_graphs() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..300 {
            let c = 1 + rng.below(8) as u16;
            let mut b = ModelBuilder::new(
                "g",
                Shape {
                    h: 1 + rng.below(6) as u16,
                    w: 3,
                    c,
                },
                q(0.1, 0),
            );
            let mut same_shape = vec![b.input()];
            let n_ops = 1 + rng.below(25) as usize;
            for _ in 0..n_ops {
                let last = *same_shape.last().unwrap();
                let y = match rng.below(3) {
                    0 => {
                        let other = same_shape[rng.below(same_shape.len() as u64) as usize];
                        b.add(last, other, q(0.1, 0), Activation::Relu).unwrap()
                    }
                    1 => b
                        .conv2d(last, {
                            let mut s = conv_spec(c, 3, 1, c as usize);
                            s.padding = [1; 4];
                            s
                        })
                        .unwrap(),
                    _ => b.max_pool2d(last, pool(3, 1, [1; 4])).unwrap(),
                };
                same_shape.push(y);
            }
            let sizes: Vec<u64> = (0..=n_ops)
                .map(|t| b.shape(TensorId(t as u16)).elements())
                .collect();
            // With the scratch plan: valid, and at least as large as the tensors-only plan
            // plus the scratch of any one op beside what is alive then.
            let with = validate(&b.clone().finish().unwrap()).unwrap().arena_size() as u64;
            let blob = b.finish_without_scratch().unwrap();
            let desc = validate(&blob).unwrap();
            assert!(!desc.has_scratch_plan());
            // Largest live set: at op i, its inputs, its output, and everything read later.
            let ops: Vec<Op> = desc.ops().collect();
            let mut last_use: Vec<usize> = (0..=n_ops).map(|t| t.saturating_sub(1)).collect();
            for (i, op) in ops.iter().enumerate() {
                for t in op.inputs().into_iter().flatten() {
                    last_use[t as usize] = i;
                }
            }
            last_use[n_ops] = n_ops;
            let live_peak = (0..n_ops)
                .map(|i| {
                    (0..=n_ops)
                        .filter(|&t| t.saturating_sub(1) <= i && i <= last_use[t])
                        .map(|t| sizes[t])
                        .sum::<u64>()
                })
                .max()
                .unwrap();
            let arena = desc.arena_size() as u64;
            assert!(arena >= live_peak, "{arena} < {live_peak}");
            let scratch_max = ops
                .iter()
                .enumerate()
                .map(|(i, op)| {
                    let x = b_shape(&desc, op.inputs()[0].unwrap());
                    scratch_len(op, x, b_shape(&desc, i as u16 + 1)) as u64
                })
                .max()
                .unwrap();
            assert!(
                with >= arena && with >= scratch_max,
                "{with} {arena} {scratch_max}"
            );
            assert!(arena <= sizes.iter().map(|s| s.next_multiple_of(4)).sum::<u64>());
            for t in desc.tensors() {
                assert_eq!(t.offset % 4, 0);
            }
        }
    }
}
