//! The descriptor: what a validated blob says about its tensors and ops (SPEC §2–3, §5).
//!
//! Weights, biases and requantization parameters are borrowed straight from the blob (`&'a [u8]`
//! inside [`I8s`] / [`LeI32s`]), so a model in flash stays in flash. The op list is decoded lazily
//! by [`Ops`] rather than into an array: a loaded model costs a few words of RAM whatever its
//! depth, and there is no op-count capacity to pick at compile time.

use serde::{Deserialize, Serialize};

use crate::{BinaryConv2dOp, BinaryDenseOp, BinaryOutput, Layout, Quant, MAX_TENSORS};

/// A tensor's shape, HWC, for one sample (no batch dimension). A flat vector is `[1, 1, n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Height (rows).
    pub h: u16,
    /// Width (columns).
    pub w: u16,
    /// Channels (innermost, contiguous).
    pub c: u16,
}

impl Shape {
    /// Number of elements `h · w · c` (cannot overflow a `u64`).
    ///
    /// ```
    /// use tinykd_format::Shape;
    /// assert_eq!(Shape { h: 28, w: 28, c: 1 }.elements(), 784);
    /// ```
    pub const fn elements(&self) -> u64 {
        self.h as u64 * self.w as u64 * self.c as u64
    }
}

/// Refers to a tensor of a model: 0 is the input, op `i` produces tensor `i + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorId(pub u16);

/// Size in bytes of one tensor record in the blob's tensor table (SPEC §2).
pub const TENSOR_RECORD_LEN: usize = 20;

/// One activation tensor: shape, quantization and its place in the arena.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorDesc {
    /// HWC shape.
    pub shape: Shape,
    /// Per-tensor quantization.
    pub quant: Quant,
    /// Byte offset in the arena.
    pub offset: u32,
    /// Length in bytes (= elements, int8).
    pub len: u32,
}

impl TensorDesc {
    /// Decodes a record: `h, w, c: u16 | zero_point: i8 | reserved: u8 | scale: f32 | offset: u32 |
    /// len: u32`, all little-endian. The reserved byte is returned for validation.
    pub(crate) fn from_record(r: &[u8; TENSOR_RECORD_LEN]) -> (Self, u8) {
        let [h0, h1, w0, w1, c0, c1, zp, reserved, s0, s1, s2, s3, o0, o1, o2, o3, l0, l1, l2, l3] =
            *r;
        let desc = TensorDesc {
            shape: Shape {
                h: u16::from_le_bytes([h0, h1]),
                w: u16::from_le_bytes([w0, w1]),
                c: u16::from_le_bytes([c0, c1]),
            },
            quant: Quant {
                scale: f32::from_bits(u32::from_le_bytes([s0, s1, s2, s3])),
                zero_point: zp as i8,
            },
            offset: u32::from_le_bytes([o0, o1, o2, o3]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
        };
        (desc, reserved)
    }

    /// Encodes the 20-byte record of SPEC §2.1 (reserved byte 0).
    ///
    /// ```
    /// use tinykd_format::{Quant, Shape, TensorDesc};
    /// let t = TensorDesc {
    ///     shape: Shape { h: 2, w: 3, c: 4 },
    ///     quant: Quant { scale: 1.0, zero_point: -1 },
    ///     offset: 256,
    ///     len: 24,
    /// };
    /// assert_eq!(t.to_record(), [2, 0, 3, 0, 4, 0, 0xff, 0, 0, 0, 0x80, 0x3f, 0, 1, 0, 0, 24, 0, 0, 0]);
    /// ```
    pub fn to_record(&self) -> [u8; TENSOR_RECORD_LEN] {
        let mut r = [0u8; TENSOR_RECORD_LEN];
        let fields = [
            &self.shape.h.to_le_bytes()[..],
            &self.shape.w.to_le_bytes()[..],
            &self.shape.c.to_le_bytes()[..],
            &[self.quant.zero_point as u8, 0][..],
            &self.quant.scale.to_bits().to_le_bytes()[..],
            &self.offset.to_le_bytes()[..],
            &self.len.to_le_bytes()[..],
        ];
        for (dst, src) in r.iter_mut().zip(fields.iter().flat_map(|f| f.iter())) {
            *dst = *src;
        }
        r
    }
}

/// A borrowed run of int8 values (weights, per-channel shifts), stored as raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct I8s<'a>(pub &'a [u8]);

impl<'a> I8s<'a> {
    /// Number of values.
    pub const fn len(&self) -> usize {
        self.0.len()
    }
    /// True if there are no values.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Value `i`, or `None` past the end.
    ///
    /// ```
    /// use tinykd_format::I8s;
    /// assert_eq!(I8s(&[0xff, 3]).get(0), Some(-1));
    /// assert_eq!(I8s(&[0xff, 3]).get(2), None);
    /// ```
    #[inline]
    pub fn get(&self, i: usize) -> Option<i8> {
        self.0.get(i).map(|&b| b as i8)
    }
    /// The raw bytes (two's complement).
    pub const fn bytes(&self) -> &'a [u8] {
        self.0
    }
    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = i8> + 'a {
        self.0.iter().map(|&b| b as i8)
    }
}

/// A borrowed run of `i32` values stored little-endian (biases, multipliers). Unaligned reads: the
/// blob can sit anywhere in flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeI32s<'a>(pub &'a [u8]);

impl<'a> LeI32s<'a> {
    /// Number of whole values.
    pub const fn len(&self) -> usize {
        self.0.len() / 4
    }
    /// True if there are no whole values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Value `i`, or `None` past the end.
    ///
    /// ```
    /// use tinykd_format::LeI32s;
    /// let bytes = [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff];
    /// assert_eq!(LeI32s(&bytes).get(1), Some(-2));
    /// assert_eq!(LeI32s(&bytes).get(2), None);
    /// ```
    #[inline]
    pub fn get(&self, i: usize) -> Option<i32> {
        let start = i.checked_mul(4)?;
        let b = self.0.get(start..start.checked_add(4)?)?;
        let mut w = [0u8; 4];
        w.copy_from_slice(b);
        Some(i32::from_le_bytes(w))
    }
    /// The raw bytes.
    pub const fn bytes(&self) -> &'a [u8] {
        self.0
    }
    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.0
            .chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .map(i32::from_le_bytes)
    }
}

/// Per-output-channel requantization: `multipliers[c]` (Q31, 0 or in `[2^30, 2^31)`) and
/// `shifts[c]` (in `[-31, 30]`), applied with [`requantize`](crate::requantize).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Requant<'a> {
    /// One Q31 multiplier per output channel.
    #[serde(borrow)]
    pub multipliers: LeI32s<'a>,
    /// One shift per output channel.
    #[serde(borrow)]
    pub shifts: I8s<'a>,
}

/// 2-D convolution, dense or grouped (depthwise when `groups` = input channels). SPEC §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Conv2dOp<'a> {
    /// Input tensor id.
    pub input: u16,
    /// Kernel height, width.
    pub kernel: [u8; 2],
    /// Stride along height, width.
    pub stride: [u8; 2],
    /// Padding: top, left, bottom, right (filled with the input zero point).
    pub padding: [u8; 4],
    /// Channel groups: 1 = dense convolution, input channels = depthwise.
    pub groups: u16,
    /// OHWI weights `[out][kh][kw][in / groups]`, symmetric int8.
    #[serde(borrow)]
    pub weights: I8s<'a>,
    /// One i32 bias per output channel, at scale `S_in · S_w[c]`.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Per-output-channel requantization.
    #[serde(borrow)]
    pub requant: Requant<'a>,
    /// Lower clamp of the output (fused activation).
    pub act_min: i8,
    /// Upper clamp of the output (fused activation).
    pub act_max: i8,
}

/// Fully connected layer over the HWC-flattened input; output shape `[1, 1, out]`. SPEC §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DenseOp<'a> {
    /// Input tensor id.
    pub input: u16,
    /// Weights `[out][in]`, symmetric int8.
    #[serde(borrow)]
    pub weights: I8s<'a>,
    /// One i32 bias per output feature, at scale `S_in · S_w[c]`.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Per-output-feature requantization.
    #[serde(borrow)]
    pub requant: Requant<'a>,
    /// Lower clamp of the output (fused activation).
    pub act_min: i8,
    /// Upper clamp of the output (fused activation).
    pub act_max: i8,
}

/// Fully connected layer with its weights in the paired layout (format 1.5, SPEC §3.4): the same
/// layer as a [`DenseOp`] of `[out][in]` symmetric weights, stored so the Cortex-M4 kernel does
/// four MACs per load (`crate::paired_weight` decodes them). Output shape `[1, 1, out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DensePairedOp<'a> {
    /// Input tensor id.
    pub input: u16,
    /// 0–3 zero bytes, chosen by the writer so that `weights` starts 4-aligned from the start of
    /// the blob: a blob loaded at a 4-aligned address then lets the kernel read two weight words
    /// with one `LDRD` (it checks the address, and reads word by word otherwise).
    #[serde(borrow)]
    pub pad: I8s<'a>,
    /// `out · ⌈in/4⌉ · 4` bytes: rows in blocks of 4, 2, 1 (`crate::paired_block`), each block
    /// group by group; per group of four the even weights `+ 128`, the odd ones as int8.
    #[serde(borrow)]
    pub weights: I8s<'a>,
    /// One i32 per output feature with the input zero point folded in: `b − zp_in · Σ_i w[o][i]`,
    /// so `acc = bias + Σ_i x[i] · w[o][i]` on the raw input.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Per row, per chunk of 512 inputs: `32512 · Σ` of the chunk's odd weights (row-major,
    /// `out · ⌈⌈in/4⌉/128⌉` values): the part of a chunk's starting accumulator the weights give.
    #[serde(borrow)]
    pub odd_terms: LeI32s<'a>,
    /// Per-output-feature requantization.
    #[serde(borrow)]
    pub requant: Requant<'a>,
    /// Lower clamp of the output (fused activation).
    pub act_min: i8,
    /// Upper clamp of the output (fused activation).
    pub act_max: i8,
}

/// Max or average pooling window. SPEC §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolOp {
    /// Input tensor id.
    pub input: u16,
    /// Window height, width.
    pub kernel: [u8; 2],
    /// Stride along height, width.
    pub stride: [u8; 2],
    /// Padding: top, left, bottom, right; each side smaller than the window.
    pub padding: [u8; 4],
}

/// Elementwise addition of two equally shaped tensors, TFLite-style rescaling (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AddOp {
    /// First input tensor id.
    pub a: u16,
    /// Second input tensor id.
    pub b: u16,
    /// Q31 multiplier of `(a − zp_a) << 20`.
    pub a_multiplier: i32,
    /// Shift of `a`'s rescale, in `[-31, 0]`.
    pub a_shift: i8,
    /// Q31 multiplier of `(b − zp_b) << 20`.
    pub b_multiplier: i32,
    /// Shift of `b`'s rescale, in `[-31, 0]`.
    pub b_shift: i8,
    /// Q31 multiplier of the sum.
    pub out_multiplier: i32,
    /// Shift of the sum's rescale, in `[-31, 30]`.
    pub out_shift: i8,
    /// Lower clamp of the output (fused activation).
    pub act_min: i8,
    /// Upper clamp of the output (fused activation).
    pub act_max: i8,
}

/// `Add`'s fixed left shift applied to both inputs before rescaling (TFLite uses 20 for int8).
pub const ADD_LEFT_SHIFT: u32 = 20;

/// One op of the model; op `i` produces tensor `i + 1`. The serde variant order is the wire
/// encoding (postcard varint tag): only append, and only in a new major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Op<'a> {
    /// 2-D convolution (incl. depthwise and 1×1).
    #[serde(borrow)]
    Conv2d(Conv2dOp<'a>),
    /// Fully connected.
    #[serde(borrow)]
    Dense(DenseOp<'a>),
    /// Max pooling (padded cells never win).
    MaxPool2d(PoolOp),
    /// Average pooling over the valid cells.
    AvgPool2d(PoolOp),
    /// Average over H×W per channel, to `[1, 1, C]`.
    GlobalAvgPool {
        /// Input tensor id.
        input: u16,
    },
    /// Elementwise addition.
    Add(AddOp),
    /// Same bytes, new shape.
    Reshape {
        /// Input tensor id.
        input: u16,
    },
    /// Binary (XNOR/popcount) convolution, format 1.2 (SPEC §3.2).
    #[serde(borrow)]
    BinaryConv2d(BinaryConv2dOp<'a>),
    /// Binary fully connected layer, format 1.2.
    #[serde(borrow)]
    BinaryDense(BinaryDenseOp<'a>),
    /// Max pooling of a packed tensor (bitwise AND of the −1 bits), format 1.2.
    BinaryMaxPool2d(PoolOp),
    /// [`Op::BinaryConv2d`] with its weights stored bit-sliced (format 1.4, SPEC §3.3): one word
    /// per input bit position holding that bit of 32 filters, so a kernel counts 32 filters at
    /// once with bit-sliced adders.
    #[serde(borrow)]
    BinaryConv2dSliced(BinaryConv2dOp<'a>),
    /// [`Op::Dense`] with its weights in the paired layout (format 1.5, SPEC §3.4).
    #[serde(borrow)]
    DensePaired(DensePairedOp<'a>),
}

/// The kind of an [`Op`], for summaries and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpKind {
    /// [`Op::Conv2d`].
    Conv2d,
    /// [`Op::Dense`].
    Dense,
    /// [`Op::MaxPool2d`].
    MaxPool2d,
    /// [`Op::AvgPool2d`].
    AvgPool2d,
    /// [`Op::GlobalAvgPool`].
    GlobalAvgPool,
    /// [`Op::Add`].
    Add,
    /// [`Op::Reshape`].
    Reshape,
    /// [`Op::BinaryConv2d`].
    BinaryConv2d,
    /// [`Op::BinaryDense`].
    BinaryDense,
    /// [`Op::BinaryMaxPool2d`].
    BinaryMaxPool2d,
    /// [`Op::BinaryConv2dSliced`].
    BinaryConv2dSliced,
    /// [`Op::DensePaired`].
    DensePaired,
}

impl OpKind {
    /// Lower-case name, as in reports.
    ///
    /// ```
    /// assert_eq!(tinykd_format::OpKind::MaxPool2d.name(), "max_pool2d");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Conv2d => "conv2d",
            OpKind::Dense => "dense",
            OpKind::MaxPool2d => "max_pool2d",
            OpKind::AvgPool2d => "avg_pool2d",
            OpKind::GlobalAvgPool => "global_avg_pool",
            OpKind::Add => "add",
            OpKind::Reshape => "reshape",
            OpKind::BinaryConv2d => "binary_conv2d",
            OpKind::BinaryDense => "binary_dense",
            OpKind::BinaryMaxPool2d => "binary_max_pool2d",
            OpKind::BinaryConv2dSliced => "binary_conv2d_sliced",
            OpKind::DensePaired => "dense_paired",
        }
    }
}

impl core::fmt::Display for OpKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Op<'_> {
    /// This op's kind.
    pub const fn kind(&self) -> OpKind {
        match self {
            Op::Conv2d(_) => OpKind::Conv2d,
            Op::Dense(_) => OpKind::Dense,
            Op::MaxPool2d(_) => OpKind::MaxPool2d,
            Op::AvgPool2d(_) => OpKind::AvgPool2d,
            Op::GlobalAvgPool { .. } => OpKind::GlobalAvgPool,
            Op::Add(_) => OpKind::Add,
            Op::Reshape { .. } => OpKind::Reshape,
            Op::BinaryConv2d(_) => OpKind::BinaryConv2d,
            Op::BinaryDense(_) => OpKind::BinaryDense,
            Op::BinaryMaxPool2d(_) => OpKind::BinaryMaxPool2d,
            Op::BinaryConv2dSliced(_) => OpKind::BinaryConv2dSliced,
            Op::DensePaired(_) => OpKind::DensePaired,
        }
    }

    /// True for the binary ops (format 1.2, SPEC §3.2; the bit-sliced conv of 1.4, §3.3).
    pub const fn is_binary(&self) -> bool {
        matches!(
            self,
            Op::BinaryConv2d(_)
                | Op::BinaryDense(_)
                | Op::BinaryMaxPool2d(_)
                | Op::BinaryConv2dSliced(_)
        )
    }

    /// The lowest minor format version whose readers know this op kind: 2 for the binary ops,
    /// 4 for [`Op::BinaryConv2dSliced`], 5 for [`Op::DensePaired`], 0 for the other int8 ops.
    ///
    /// ```
    /// assert_eq!(tinykd_format::Op::Reshape { input: 0 }.min_minor(), 0);
    /// ```
    pub const fn min_minor(&self) -> u8 {
        match self {
            Op::DensePaired(_) => 5,
            Op::BinaryConv2dSliced(_) => 4,
            Op::BinaryConv2d(_) | Op::BinaryDense(_) | Op::BinaryMaxPool2d(_) => 2,
            _ => 0,
        }
    }

    /// The layout of the tensor this op writes: [`Layout::Packed`] for binary max pooling and
    /// binary conv/dense with a packed output, [`Layout::Int8`] otherwise.
    pub const fn output_layout(&self) -> Layout {
        match self {
            Op::BinaryMaxPool2d(_)
            | Op::BinaryConv2d(BinaryConv2dOp {
                output: BinaryOutput::Packed { .. },
                ..
            })
            | Op::BinaryConv2dSliced(BinaryConv2dOp {
                output: BinaryOutput::Packed { .. },
                ..
            })
            | Op::BinaryDense(BinaryDenseOp {
                output: BinaryOutput::Packed { .. },
                ..
            }) => Layout::Packed,
            _ => Layout::Int8,
        }
    }

    /// The tensor ids this op reads (one, or two for `Add`).
    ///
    /// ```
    /// use tinykd_format::Op;
    /// assert_eq!(Op::Reshape { input: 3 }.inputs(), [Some(3), None]);
    /// ```
    pub const fn inputs(&self) -> [Option<u16>; 2] {
        match self {
            Op::Conv2d(c) => [Some(c.input), None],
            Op::Dense(d) => [Some(d.input), None],
            Op::DensePaired(d) => [Some(d.input), None],
            Op::MaxPool2d(p) | Op::AvgPool2d(p) => [Some(p.input), None],
            Op::GlobalAvgPool { input } | Op::Reshape { input } => [Some(*input), None],
            Op::Add(a) => [Some(a.a), Some(a.b)],
            Op::BinaryConv2d(c) | Op::BinaryConv2dSliced(c) => [Some(c.input), None],
            Op::BinaryDense(d) => [Some(d.input), None],
            Op::BinaryMaxPool2d(p) => [Some(p.input), None],
        }
    }

    /// Bytes of constant data (weights, biases, requantization) this op borrows from the blob.
    ///
    /// ```
    /// use tinykd_format::{DenseOp, I8s, LeI32s, Op, OpKind, Requant};
    /// let (w, b, m, s) = ([1u8; 6], [0u8; 8], [0u8; 8], [0u8; 2]);
    /// let op = Op::Dense(DenseOp {
    ///     input: 0, weights: I8s(&w), bias: LeI32s(&b),
    ///     requant: Requant { multipliers: LeI32s(&m), shifts: I8s(&s) }, act_min: -128, act_max: 127,
    /// });
    /// assert_eq!(op.kind(), OpKind::Dense);
    /// assert_eq!(op.param_bytes(), 6 + 8 + 8 + 2);
    /// assert_eq!(Op::GlobalAvgPool { input: 0 }.param_bytes(), 0);
    /// ```
    pub const fn param_bytes(&self) -> usize {
        match self {
            Op::Conv2d(c) => {
                c.weights.len()
                    + c.bias.bytes().len()
                    + c.requant.multipliers.bytes().len()
                    + c.requant.shifts.len()
            }
            Op::Dense(d) => {
                d.weights.len()
                    + d.bias.bytes().len()
                    + d.requant.multipliers.bytes().len()
                    + d.requant.shifts.len()
            }
            Op::DensePaired(d) => {
                d.weights.len()
                    + d.bias.bytes().len()
                    + d.odd_terms.bytes().len()
                    + d.requant.multipliers.bytes().len()
                    + d.requant.shifts.len()
            }
            Op::BinaryConv2d(c) | Op::BinaryConv2dSliced(c) => {
                c.weights.bytes().len()
                    + c.input_thresholds.bytes().len()
                    + c.flip.len()
                    + c.output.param_bytes()
            }
            Op::BinaryDense(d) => {
                d.weights.bytes().len()
                    + d.input_thresholds.bytes().len()
                    + d.flip.len()
                    + d.output.param_bytes()
            }
            _ => 0,
        }
    }
}

/// The fixed part of the body, before the op list (postcard, in this field order).
#[derive(Serialize, Deserialize)]
pub(crate) struct BodyHead<'a> {
    pub(crate) name: &'a str,
    pub(crate) arena_size: u32,
    pub(crate) tensors: &'a [u8],
}

/// Lazily decodes the op list of a validated model, in order.
///
/// Decoding cannot fail on a validated blob; if it ever did, the iterator would end early, so a
/// runtime that needs every op compares the number it got with [`ModelDesc::op_count`].
#[derive(Clone, Debug)]
pub struct Ops<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Iterator for Ops<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        if self.remaining == 0 {
            return None;
        }
        match postcard::take_from_bytes::<Op<'a>>(self.rest) {
            Ok((op, rest)) => {
                self.rest = rest;
                self.remaining -= 1;
                Some(op)
            }
            Err(_) => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

impl<'a> Ops<'a> {
    pub(crate) const fn new(rest: &'a [u8], count: u16) -> Self {
        Ops {
            rest,
            remaining: count,
        }
    }
}

/// A validated model descriptor, borrowing the blob. Only [`validate`](crate::validate) makes
/// one, so holding a `ModelDesc` means every check of SPEC §6 passed.
///
/// ```
/// use tinykd_format::{validate, OpKind, Shape};
/// // A 4×4×2 input followed by one global average pool, byte by byte (SPEC §1–2).
/// let blob: [u8; 66] = [
///     b'T', b'K', b'D', 1, 0, 0, 0, 0, 50, 0, 0, 0, // magic, v1.0, flags, body_len 50
///     4, b'd', b'e', b'm', b'o', // name "demo"
///     34, // arena_size (varint)
///     40, // tensor table: 40 bytes = 2 records
///     4, 0, 4, 0, 2, 0, 0, 0, 205, 204, 204, 61, 0, 0, 0, 0, 32, 0, 0, 0, // 4×4×2, zp 0, scale 0.1, at 0
///     1, 0, 1, 0, 2, 0, 0, 0, 205, 204, 204, 61, 32, 0, 0, 0, 2, 0, 0, 0, // 1×1×2, same quant, at 32
///     1, // one op
///     4, 0, // Op::GlobalAvgPool { input: 0 }
///     99, 246, 197, 148, // CRC-32
/// ];
/// let desc = validate(&blob).unwrap();
/// assert_eq!(desc.name(), "demo");
/// assert_eq!(desc.op_count(), 1);
/// assert_eq!(desc.ops().next().map(|op| op.kind()), Some(OpKind::GlobalAvgPool));
/// assert_eq!(desc.output().shape, Shape { h: 1, w: 1, c: 2 });
/// assert_eq!(desc.arena_size(), 34);
/// ```
#[derive(Clone, Copy)]
pub struct ModelDesc<'a> {
    pub(crate) blob_len: usize,
    pub(crate) minor: u8,
    pub(crate) name: &'a str,
    pub(crate) arena_size: u32,
    pub(crate) tensors: &'a [u8],
    pub(crate) ops: &'a [u8],
    pub(crate) op_count: u16,
    /// The scratch table (SPEC §5.1): one u32 LE arena offset per op; empty in a v1.0 blob.
    pub(crate) scratch: &'a [u8],
    /// The input normalisation (SPEC §5.2, format 1.3), checked; empty if the blob has none.
    pub(crate) input_norm: &'a [u8],
    pub(crate) extension: &'a [u8],
    pub(crate) input: TensorDesc,
    pub(crate) output: TensorDesc,
}

impl<'a> ModelDesc<'a> {
    /// The model's name.
    pub const fn name(&self) -> &'a str {
        self.name
    }
    /// Length of the whole blob in bytes.
    pub const fn blob_len(&self) -> usize {
        self.blob_len
    }
    /// `(major, minor)` format version of the blob.
    pub const fn version(&self) -> (u8, u8) {
        (crate::VERSION_MAJOR, self.minor)
    }
    /// Bytes of arena `run` needs: the peak of the memory plan.
    pub const fn arena_size(&self) -> usize {
        self.arena_size as usize
    }
    /// Number of tensors (ops + 1).
    pub const fn tensor_count(&self) -> usize {
        self.tensors.len() / TENSOR_RECORD_LEN
    }
    /// Tensor `id`, or `None` if there is no such tensor.
    pub fn tensor(&self, id: TensorId) -> Option<TensorDesc> {
        let start = usize::from(id.0).checked_mul(TENSOR_RECORD_LEN)?;
        let bytes = self
            .tensors
            .get(start..start.checked_add(TENSOR_RECORD_LEN)?)?;
        let record: &[u8; TENSOR_RECORD_LEN] = bytes.try_into().ok()?;
        Some(TensorDesc::from_record(record).0)
    }
    /// All tensors in id order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorDesc> + 'a {
        self.tensors
            .chunks_exact(TENSOR_RECORD_LEN)
            .filter_map(|c| <&[u8; TENSOR_RECORD_LEN]>::try_from(c).ok())
            .map(|r| TensorDesc::from_record(r).0)
    }
    /// The input tensor (id 0).
    pub const fn input(&self) -> TensorDesc {
        self.input
    }
    /// The output tensor (the last op's).
    pub const fn output(&self) -> TensorDesc {
        self.output
    }
    /// Number of ops.
    pub const fn op_count(&self) -> usize {
        self.op_count as usize
    }
    /// The ops in execution order.
    pub const fn ops(&self) -> Ops<'a> {
        Ops::new(self.ops, self.op_count)
    }
    /// Arena offset of op `op`'s scratch buffer (SPEC §5.1), whose length is
    /// [`scratch_len`](crate::scratch_len) of the op. `None` for a v1.0 blob, which has no scratch
    /// plan (its ops then run on kernels that need no scratch), or for an op index out of range.
    /// For an op that needs no scratch the offset is 0.
    pub fn scratch_offset(&self, op: usize) -> Option<u32> {
        let start = op.checked_mul(4)?;
        let b = self.scratch.get(start..start.checked_add(4)?)?;
        let b: [u8; 4] = b.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    }
    /// True if the blob carries a scratch plan (format 1.1 and later).
    pub const fn has_scratch_plan(&self) -> bool {
        !self.scratch.is_empty()
    }
    /// The layout of tensor `id` (SPEC §2.2): the input is int8, every other tensor has its
    /// op's [`Op::output_layout`]. `None` for an id out of range. Decodes the ops up to `id`.
    pub fn layout(&self, id: TensorId) -> Option<Layout> {
        match usize::from(id.0) {
            0 => Some(Layout::Int8),
            t => self.ops().nth(t - 1).map(|op| op.output_layout()),
        }
    }
    /// The per-channel `(mean, std)` of the model input (SPEC §5.2, format 1.3), if the blob
    /// carries one: a sensor node feeds `(raw − mean) / std`, quantized with
    /// [`ModelDesc::input`]'s quantization. `None` for older blobs and models without one.
    pub fn input_normalization(&self) -> Option<crate::InputNorm<'a>> {
        if self.input_norm.is_empty() {
            return None;
        }
        crate::InputNorm::new(self.input_norm, usize::from(self.input.shape.c)).ok()
    }
    /// Optional data a newer minor version appended after the op list (empty for this version's
    /// blobs); this reader does not interpret it.
    pub const fn extension(&self) -> &'a [u8] {
        self.extension
    }
}

impl core::fmt::Debug for ModelDesc<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ModelDesc")
            .field("name", &self.name)
            .field("version", &self.version())
            .field("blob_len", &self.blob_len)
            .field("arena_size", &self.arena_size)
            .field("tensors", &self.tensor_count())
            .field("ops", &self.op_count)
            .field("input", &self.input)
            .field("output", &self.output)
            .finish()
    }
}

// The validator's last-use table is indexed by tensor id with op indices stored in a `u8`.
const _: () = assert!(MAX_TENSORS <= 256);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_record_round_trips() {
        let t = TensorDesc {
            shape: Shape {
                h: 3,
                w: 0x102,
                c: 7,
            },
            quant: Quant {
                scale: 0.25,
                zero_point: -3,
            },
            offset: 0x0403_0201,
            len: 42,
        };
        let r = t.to_record();
        assert_eq!(
            r,
            [3, 0, 2, 1, 7, 0, 0xfd, 0, 0, 0, 0x80, 0x3e, 1, 2, 3, 4, 42, 0, 0, 0]
        );
        assert_eq!(TensorDesc::from_record(&r), (t, 0));
    }

    #[test]
    fn op_wire_encoding_is_pinned() {
        let op = Op::AvgPool2d(PoolOp {
            input: 300,
            kernel: [2, 3],
            stride: [1, 2],
            padding: [0, 1, 0, 1],
        });
        let bytes = postcard::to_extend(&op, std::vec::Vec::new()).unwrap();
        assert_eq!(bytes, [3, 0xac, 0x02, 2, 3, 1, 2, 0, 1, 0, 1]);
        assert_eq!(postcard::from_bytes::<Op>(&bytes).unwrap(), op);
        let w = [1u8, 0xff];
        let b = [5u8, 0, 0, 0];
        let m = [0u8, 0, 0, 0x40];
        let s = [0xffu8];
        let dense = Op::Dense(DenseOp {
            input: 1,
            weights: I8s(&w),
            bias: LeI32s(&b),
            requant: Requant {
                multipliers: LeI32s(&m),
                shifts: I8s(&s),
            },
            act_min: -128,
            act_max: 127,
        });
        let bytes = postcard::to_extend(&dense, std::vec::Vec::new()).unwrap();
        assert_eq!(
            bytes,
            [1, 1, 2, 1, 0xff, 4, 5, 0, 0, 0, 4, 0, 0, 0, 0x40, 1, 0xff, 0x80, 0x7f]
        );
        let back: Op = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, dense);
        // Zero-copy: the weights point into `bytes`.
        if let Op::Dense(d) = back {
            assert_eq!(d.weights.bytes().as_ptr(), bytes[3..].as_ptr());
        }
    }
}
