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
//! assert_eq!(desc.arena_size(), 48); // 16 input bytes + 32 conv output bytes, then reused
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::desc::BodyHead;
use crate::validate::window_out;
use crate::{
    quantize_multiplier, validate, Activation, AddOp, Conv2dOp, DenseOp, Error, Header, I8s,
    LeI32s, Op, OpKind, PoolOp, Quant, Requant, Shape, TensorDesc, TensorId, MAX_NAME_LEN,
    MAX_TENSORS, MAX_TENSOR_LEN,
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
struct Encoded {
    bytes: Vec<u8>,
    inputs: [Option<u16>; 2],
}

/// Builds a model op by op and encodes it as a blob (see the module docs).
pub struct ModelBuilder {
    name: String,
    tensors: Vec<(Shape, Quant)>,
    ops: Vec<Encoded>,
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
        }
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
        self.tensors
            .get(usize::from(t.0))
            .copied()
            .ok_or_else(|| self.err(kind, BuildFault::UnknownTensor(t)))
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
            )?;
            multipliers.extend_from_slice(&m.to_le_bytes());
            shifts.push(s as u8);
        }
        Ok((multipliers, shifts))
    }

    fn multiplier(&self, kind: OpKind, real: f64) -> Built<(i32, i8)> {
        if real >= (1u64 << 30) as f64 {
            return Err(self.err(kind, BuildFault::MultiplierTooLarge));
        }
        let (m, s) = quantize_multiplier(real);
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
        let (act_min, act_max) = spec.output.activation_range(spec.activation);
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
        let (a_multiplier, a_shift) = self.multiplier(kind, s_a / twice_max)?;
        let (b_multiplier, b_shift) = self.multiplier(kind, s_b / twice_max)?;
        let left = (1u64 << crate::ADD_LEFT_SHIFT) as f64;
        let (out_multiplier, out_shift) = self.multiplier(kind, twice_max / (left * s_o))?;
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

    /// Plans the arena, encodes the blob (header, postcard body, CRC) and validates it. The last
    /// op's tensor is the model output.
    pub fn finish(self) -> Built<Vec<u8>> {
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
            .map(|(s, _)| u32::try_from(s.elements()).unwrap_or(u32::MAX))
            .collect();
        let inputs: Vec<[Option<u16>; 2]> = self.ops.iter().map(|o| o.inputs).collect();
        let (offsets, arena_size) = plan(&sizes, &inputs);

        let mut table = Vec::with_capacity(self.tensors.len() * crate::TENSOR_RECORD_LEN);
        for (((shape, quant), offset), len) in self.tensors.iter().zip(&offsets).zip(&sizes) {
            let record = TensorDesc {
                shape: *shape,
                quant: *quant,
                offset: *offset,
                len: *len,
            }
            .to_record();
            table.extend_from_slice(&record);
        }
        let head = BodyHead {
            name: &self.name,
            arena_size,
            tensors: &table,
        };
        let encode = |v: core::result::Result<Vec<u8>, postcard::Error>| {
            v.map_err(|e| model_err(BuildFault::Invalid(Error::from(e))))
        };
        let mut body = encode(postcard::to_extend(&head, Vec::new()))?;
        let count = u32::try_from(self.ops.len()).unwrap_or(u32::MAX);
        body = encode(postcard::to_extend(&count, body))?;
        for op in &self.ops {
            body.extend_from_slice(&op.bytes);
        }
        let body_len = u32::try_from(body.len())
            .map_err(|_| model_err(BuildFault::Invalid(Error::BodyTruncated)))?;
        let mut blob = Vec::with_capacity(body.len() + crate::HEADER_LEN + crate::CRC_LEN);
        blob.extend_from_slice(&Header::encode(body_len));
        blob.extend_from_slice(&body);
        let crc = crate::crc32(&blob);
        blob.extend_from_slice(&crc.to_le_bytes());
        validate(&blob).map_err(|e| model_err(BuildFault::Invalid(e)))?;
        Ok(blob)
    }
}

/// Greedy memory plan (TFLM's `GreedyMemoryPlanner`, SPEC §5): tensors by decreasing size, each
/// at the lowest 4-aligned offset that does not overlap a placed tensor alive at the same time.
/// Returns the offsets and the arena size (the peak end). `inputs[i]` are the tensors op `i` reads.
fn plan(sizes: &[u32], inputs: &[[Option<u16>; 2]]) -> (Vec<u32>, u32) {
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
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&t| (core::cmp::Reverse(sizes.get(t).copied().unwrap_or(0)), t));

    let mut offsets = alloc::vec![0u32; n];
    let mut placed: Vec<usize> = Vec::with_capacity(n);
    let life = |t: usize| (birth(t), last.get(t).copied().unwrap_or(0));
    for &t in &order {
        let (tb, tl) = life(t);
        let len = u64::from(sizes.get(t).copied().unwrap_or(0));
        let mut live: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&p| {
                let (pb, pl) = life(p);
                pb <= tl && tb <= pl
            })
            .map(|&p| {
                let off = u64::from(offsets.get(p).copied().unwrap_or(0));
                (off, off + u64::from(sizes.get(p).copied().unwrap_or(0)))
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
        if let Some(o) = offsets.get_mut(t) {
            *o = u32::try_from(candidate).unwrap_or(u32::MAX);
        }
        placed.push(t);
    }
    let peak = offsets
        .iter()
        .zip(sizes)
        .map(|(&o, &s)| u64::from(o) + u64::from(s))
        .max()
        .unwrap_or(0);
    (offsets, u32::try_from(peak).unwrap_or(u32::MAX))
}
