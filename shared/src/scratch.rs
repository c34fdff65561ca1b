//! Per-op scratch memory (SPEC §5.1): the working buffers the fast kernels need, planned into the
//! arena at export like any tensor, so the arena stays an export-time fact.
//!
//! The length is a function of the op and its shapes alone, computed here once for the exporter's
//! planner, for `validate()` and for the runtime, so all three agree by construction. It does not
//! depend on the target: a blob is the same for every core, and a kernel that needs less (or none,
//! like the portable reference kernels) leaves the rest unused.

use crate::{Op, Shape};

/// Columns the im2col buffer of a convolution holds: the fast kernels compute a tile of one output
/// channel by four output pixels, reading four int16 columns side by side.
pub const IM2COL_COLUMNS: u32 = 4;

/// One-channel 3×3 convolutions (format 1.5): output channels per pass of the kernel, whose
/// records the scratch holds side by side.
pub const ONE_CHANNEL_CHUNK: u32 = 16;
/// One-channel 3×3 convolutions (format 1.5): bytes of one output channel's record (bias, five
/// weight pairs, multiplier).
pub const ONE_CHANNEL_RECORD: u32 = 28;
/// One-channel 3×3 convolutions (format 1.5): bytes of the kernel's run state after the records.
pub const ONE_CHANNEL_STATE: u32 = 24;

/// One-channel 3×3 convolutions (format 1.5): bytes from one row of the three-row input band to
/// the next, for an input `w` values wide (the padded row, at most `w + 2`, plus the byte the
/// window's last word load reads, rounded up to a word).
pub const fn one_channel_band_stride(w: u16) -> u32 {
    (w as u32 + 3).next_multiple_of(4)
}

/// Bytes of scratch op `op` gets while it runs, given its input and output shapes, in the current
/// format (`scratch_len_in(VERSION_MINOR, …)`); 0 = none.
///
/// ```
/// use tinykd_format::{scratch_len, Op, Shape};
/// let s = |h, w, c| Shape { h, w, c };
/// assert_eq!(scratch_len(&Op::GlobalAvgPool { input: 0 }, s(4, 4, 8), s(1, 1, 8)), 0);
/// ```
pub fn scratch_len(op: &Op<'_>, input: Shape, output: Shape) -> u32 {
    scratch_len_in(crate::VERSION_MINOR, op, input, output)
}

/// Bytes of scratch op `op` gets while it runs in a blob of format minor version `minor`; 0 =
/// none. The plan of a blob is read with its own minor, so an older blob keeps the scratch it
/// was planned with.
///
/// - `Conv2d` with `groups = 1` (including 1×1): an int16 im2col buffer of
///   [`IM2COL_COLUMNS`] columns, each `kh·kw·in` values rounded up to a multiple of 4:
///   `4 · align4(kh·kw·in) · 2` bytes. From format 1.5, a 3×3 convolution of a one-channel
///   input gets at least `3 · one_channel_band_stride(w) + 28 · min(out, 16) + 24` bytes: the
///   three-row int8 band of the input, the channel records and the run state of its DSP kernel.
/// - Depthwise `Conv2d` (`groups = in = out`): the weights repacked as int16 channel pairs,
///   `kh·kw · align4(channels) · 2` bytes.
/// - `Dense`: the input widened to int16, `align4(in) · 2` bytes.
/// - `DensePaired`: the input widened to two words per group of four, `align4(in) · 2` bytes,
///   plus one word per chunk of 512 inputs (`−32768 · Σ` of the chunk's even inputs).
/// - `BinaryConv2d`: `kh·kw·words(in) · 4` bytes (the packed taps of one output pixel), plus
///   `packed_len(input)` when the input is int8 (binarized once, up front);
/// - `BinaryConv2dSliced`: as `BinaryConv2d`, plus `32 · kh·kw·words(in) · 4` bytes (the
///   weights of one group of 32 filters, word-aligned);
/// - `BinaryDense` with an int8 input: `packed_len(input)`;
/// - every other op (grouped convolutions, pooling, add, reshape, binary max pool, binary dense
///   on a packed input): 0.
///
/// Saturates at `u32::MAX` (such a blob then fails the arena checks).
///
/// ```
/// use tinykd_format::{scratch_len_in, Conv2dOp, I8s, LeI32s, Op, Requant, Shape};
/// let s = |h, w, c| Shape { h, w, c };
/// let (w, b, m, sh) = ([0u8; 9 * 16], [0u8; 4 * 16], [0u8; 4 * 16], [0u8; 16]);
/// let conv = Op::Conv2d(Conv2dOp {
///     input: 0, kernel: [3, 3], stride: [1, 1], padding: [1; 4], groups: 1,
///     weights: I8s(&w), bias: LeI32s(&b),
///     requant: Requant { multipliers: LeI32s(&m), shifts: I8s(&sh) },
///     act_min: -128, act_max: 127,
/// });
/// // 28×28×1 → 28×28×16: the im2col of 4 pixels before 1.5, the band and records from 1.5.
/// assert_eq!(scratch_len_in(4, &conv, s(28, 28, 1), s(28, 28, 16)), 96);
/// assert_eq!(scratch_len_in(5, &conv, s(28, 28, 1), s(28, 28, 16)), 3 * 32 + 28 * 16 + 24);
/// ```
pub fn scratch_len_in(minor: u8, op: &Op<'_>, input: Shape, output: Shape) -> u32 {
    let align4 = |n: u64| n.next_multiple_of(4);
    let bytes: u64 = match op {
        Op::Conv2d(c) => {
            let taps = u64::from(c.kernel[0]) * u64::from(c.kernel[1]);
            if c.groups == 1 {
                let im2col = u64::from(IM2COL_COLUMNS) * align4(taps * u64::from(input.c)) * 2;
                if minor >= 5 && input.c == 1 && c.kernel == [3, 3] {
                    let band = 3 * u64::from(one_channel_band_stride(input.w));
                    let records = u64::from(ONE_CHANNEL_RECORD)
                        * u64::from(output.c).min(u64::from(ONE_CHANNEL_CHUNK));
                    im2col.max(band + records + u64::from(ONE_CHANNEL_STATE))
                } else {
                    im2col
                }
            } else if c.groups == input.c && output.c == input.c {
                taps * align4(u64::from(input.c)) * 2
            } else {
                0
            }
        }
        Op::Dense(_) => align4(input.elements()) * 2,
        Op::DensePaired(_) => {
            let k = input.elements();
            align4(k) * 2
                + 4 * k
                    .div_ceil(4)
                    .div_ceil(crate::PAIRED_CHUNK_GROUPS as u64)
                    .max(1)
        }
        // Binary ops (format 1.2): an int8 input binarized once (packed), and for a convolution
        // the packed taps of one output pixel side by side (padded taps as +1 words).
        Op::BinaryConv2d(c) | Op::BinaryConv2dSliced(c) => {
            let taps = u64::from(c.kernel[0]) * u64::from(c.kernel[1]);
            let packed_input = if c.input_thresholds.is_empty() {
                0
            } else {
                crate::packed_len(input)
            };
            let column = taps * crate::packed_words(input.c) as u64 * 4;
            // Bit-sliced (format 1.4): one group's weights, 32 words per column word, copied
            // word-aligned into RAM (the blob's bytes may sit at any address).
            let group = match op {
                Op::BinaryConv2dSliced(_) => column * 32,
                _ => 0,
            };
            packed_input + column + group
        }
        Op::BinaryDense(d) if !d.input_thresholds.is_empty() => crate::packed_len(input),
        _ => 0,
    };
    u32::try_from(bytes).unwrap_or(u32::MAX)
}
