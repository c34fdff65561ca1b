//! The loaded model and its interpreter loop.

use core::ops::Range;

use tinykd_format::{
    bytes_as_i8, bytes_as_i8_mut, scratch_len_in, validate, ModelDesc, Op, Quant, Shape,
    TensorDesc, TensorId,
};

use crate::error::{need, Error, Result};
use crate::ops::{self, Flavor, In, Out};

/// A validated model, borrowing its blob (zero-copy: weights are read where they lie, e.g. in
/// flash). Only [`Model::from_bytes`] makes one, so every `Model` passed SPEC §6 validation.
///
/// A `Model` is a few words (a [`ModelDesc`]); it holds no mutable state, so one model can serve
/// several arenas, e.g. one per task.
///
/// ```
/// # let blob = [84u8, 75, 68, 1, 0, 0, 0, 0, 50, 0, 0, 0, 4, 100, 101, 109, 111, 5, 40, 2, 0, 2, 0, 1, 0, 0, 0, 205, 204, 204, 61, 0, 0, 0, 0, 4, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 205, 204, 204, 61, 4, 0, 0, 0, 1, 0, 0, 0, 1, 4, 0, 178, 125, 111, 197];
/// use tinykd_device::{Model, Quant, Shape};
/// let model = Model::from_bytes(&blob).unwrap(); // 2×2×1 input → global average pool
/// assert_eq!(model.input_shape(), Shape { h: 2, w: 2, c: 1 });
/// assert_eq!((model.input_len(), model.output_len()), (4, 1));
/// assert_eq!(model.output_shape(), Shape { h: 1, w: 1, c: 1 });
/// assert_eq!(model.input_quant(), Quant { scale: 0.1, zero_point: 0 });
/// assert_eq!(model.output_quant(), model.input_quant()); // pooling keeps the quantization
/// assert_eq!(model.arena_size(), 5);
/// assert_eq!(model.desc().name(), "demo");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    desc: ModelDesc<'a>,
}

impl<'a> Model<'a> {
    /// Validates `blob` (header, CRC, every shape, slice, enum and the memory plan) and wraps it.
    /// A malformed blob is an [`Error::Blob`] naming the failed check, never a panic.
    ///
    /// ```
    /// use tinykd_device::{Error, Model};
    /// assert_eq!(
    ///     Model::from_bytes(&[0u8; 16]).unwrap_err(),
    ///     Error::Blob(tinykd_format::Error::HeaderBadMagic)
    /// );
    /// ```
    pub fn from_bytes(blob: &'a [u8]) -> Result<Model<'a>> {
        match validate(blob) {
            Ok(desc) => {
                debug!(
                    "tinykd: model loaded, {} ops, arena {} B",
                    desc.op_count(),
                    desc.arena_size()
                );
                Ok(Model { desc })
            }
            Err(e) => {
                warn!("tinykd: blob rejected: {}", e);
                Err(Error::Blob(e))
            }
        }
    }

    /// The validated descriptor: name, tensors, ops, version.
    pub const fn desc(&self) -> &ModelDesc<'a> {
        &self.desc
    }

    /// Bytes of arena [`Model::run`] needs (an export-time fact stored in the blob).
    pub const fn arena_size(&self) -> usize {
        self.desc.arena_size()
    }

    /// Number of int8 values of one input.
    pub const fn input_len(&self) -> usize {
        self.desc.input().len as usize
    }

    /// Number of int8 values of the output.
    pub const fn output_len(&self) -> usize {
        self.desc.output().len as usize
    }

    /// Input shape (HWC).
    pub const fn input_shape(&self) -> Shape {
        self.desc.input().shape
    }

    /// Output shape (HWC; `[1, 1, classes]` for a classifier).
    pub const fn output_shape(&self) -> Shape {
        self.desc.output().shape
    }

    /// Input quantization, for quantizing sensor values on the host or an FPU-equipped core.
    pub const fn input_quant(&self) -> Quant {
        self.desc.input().quant
    }

    /// The per-channel `(mean, std)` the model input was normalised with (format 1.3, SPEC
    /// §5.2), if the blob carries it: feed `(raw − mean) / std`, quantized with
    /// [`Model::input_quant`]. [`Stream::push`](crate::Stream::push) does this for you.
    pub fn input_normalization(&self) -> Option<tinykd_format::InputNorm<'a>> {
        self.desc.input_normalization()
    }

    /// Output quantization, for dequantizing scores.
    pub const fn output_quant(&self) -> Quant {
        self.desc.output().quant
    }

    /// Runs the model on one int8 `input` (HWC, [`Model::input_len`] values) using `arena` as
    /// working memory, and returns the output, which lives in the arena.
    ///
    /// `arena` must hold at least [`Model::arena_size`] bytes; there is **no alignment
    /// requirement** (the reference kernels read bytes). The exporter places tensors at 4-aligned
    /// offsets, so a 4-aligned arena gives word-aligned tensors to future word-wise fast paths.
    /// The run uses integer arithmetic only and a fixed, small amount of stack.
    ///
    /// ```
    /// # let blob = [84u8, 75, 68, 1, 0, 0, 0, 0, 50, 0, 0, 0, 4, 100, 101, 109, 111, 5, 40, 2, 0, 2, 0, 1, 0, 0, 0, 205, 204, 204, 61, 0, 0, 0, 0, 4, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 205, 204, 204, 61, 4, 0, 0, 0, 1, 0, 0, 0, 1, 4, 0, 178, 125, 111, 197];
    /// use tinykd_device::{argmax, Model};
    /// let model = Model::from_bytes(&blob).unwrap(); // 2×2×1 input → global average pool
    /// let mut arena = [0u8; 64];
    /// assert_eq!(model.arena_size(), 5);
    /// let out = model.run(&[10, 20, 30, 41], &mut arena).unwrap();
    /// assert_eq!(out, &[25]); // (10 + 20 + 30 + 41) / 4 = 25.25 → 25
    /// assert_eq!(argmax(out), 0);
    /// ```
    pub fn run<'b>(&self, input: &[i8], arena: &'b mut [u8]) -> Result<&'b [i8]> {
        self.run_with(crate::kernels(), input, arena)
    }

    /// [`Model::run`] with a given kernel family.
    pub(crate) fn run_with<'b>(
        &self,
        flavor: Flavor,
        input: &[i8],
        arena: &'b mut [u8],
    ) -> Result<&'b [i8]> {
        if input.len() != self.input_len() {
            return Err(Error::RunInputLength);
        }
        if arena.len() < self.arena_size() {
            return Err(Error::RunArenaTooSmall);
        }
        let input_range = range(&self.desc.input())?;
        crate::ops::fast::copy_bytes(
            need(arena.get_mut(input_range))?,
            crate::ops::fast::as_bytes(input),
        );

        let mut done = 0usize;
        for (i, op) in self.desc.ops().enumerate() {
            self.run_op(flavor, i, &op, arena)?;
            done += 1;
        }
        if done != self.desc.op_count() {
            return Err(Error::RunInconsistent);
        }
        let out_range = range(&self.desc.output())?;
        let arena: &'b [u8] = arena;
        Ok(bytes_as_i8(need(arena.get(out_range))?))
    }

    fn tensor(&self, id: u16) -> Result<TensorDesc> {
        need(self.desc.tensor(TensorId(id)))
    }

    fn run_op(&self, flavor: Flavor, i: usize, op: &Op<'_>, arena: &mut [u8]) -> Result<()> {
        let out_id = need(u16::try_from(i + 1).ok())?;
        let yt = self.tensor(out_id)?;
        let [a, b] = op.inputs();
        let at = self.tensor(need(a)?)?;
        let bt = match b {
            Some(b) => Some(self.tensor(b)?),
            None => None,
        };
        // The op's scratch (format 1.1), if it has one and a fast kernel may use it.
        let scratch = match self.desc.scratch_offset(i) {
            Some(offset) if flavor != Flavor::Portable => {
                let len = scratch_len_in(self.desc.version().1, op, at.shape, yt.shape);
                let start = need(usize::try_from(offset).ok())?;
                let len = need(usize::try_from(len).ok())?;
                (len > 0).then_some(start..need(start.checked_add(len))?)
            }
            _ => None,
        };
        let (y, scratch, xa, xb) = split(arena, &yt, scratch, &at, bt.as_ref())?;
        let y = Out {
            data: y,
            shape: yt.shape,
            zero_point: yt.quant.zero_point,
        };
        let x = In {
            data: xa,
            shape: at.shape,
            zero_point: at.quant.zero_point,
        };
        match op {
            Op::Conv2d(c) => ops::conv2d_with(flavor, c, x, y, scratch),
            Op::Dense(d) => ops::dense_with(flavor, d, x, y, scratch),
            Op::DensePaired(d) => ops::dense_paired_with(flavor, d, x, y, scratch),
            Op::MaxPool2d(p) => ops::max_pool2d::max_pool2d_with(flavor, p, x, y),
            Op::AvgPool2d(p) => ops::avg_pool2d::avg_pool2d(p, x, y),
            Op::GlobalAvgPool { .. } => ops::global_avg_pool::global_avg_pool(x, y),
            Op::Add(add) => {
                let bt = need(bt)?;
                let xb = In {
                    data: need(xb)?,
                    shape: bt.shape,
                    zero_point: bt.quant.zero_point,
                };
                ops::add::add(add, x, xb, y)
            }
            Op::Reshape { .. } => ops::reshape::reshape(x, y),
            Op::BinaryConv2d(c) => ops::binary::conv2d_with(c, x, y, scratch, false),
            Op::BinaryConv2dSliced(c) => ops::binary::conv2d_with(c, x, y, scratch, true),
            Op::BinaryDense(d) => {
                ops::binary::dense_with(d, x, y, scratch, flavor != Flavor::Portable)
            }
            Op::BinaryMaxPool2d(p) => ops::binary::max_pool2d(p, x, y),
        }
    }
}

fn range(t: &TensorDesc) -> Result<Range<usize>> {
    let start = need(usize::try_from(t.offset).ok())?;
    let len = need(usize::try_from(t.len).ok())?;
    Ok(start..need(start.checked_add(len))?)
}

/// Splits the arena into the output and the op's scratch (mutable) and one or two inputs
/// (shared). Validation guarantees that the inputs, the output and the scratch do not overlap;
/// if they did, this returns an error.
#[allow(clippy::type_complexity)]
fn split<'s>(
    arena: &'s mut [u8],
    out: &TensorDesc,
    scratch: Option<Range<usize>>,
    a: &TensorDesc,
    b: Option<&TensorDesc>,
) -> Result<(
    &'s mut [i8],
    Option<&'s mut [u8]>,
    &'s [i8],
    Option<&'s [i8]>,
)> {
    let o = range(out)?;
    // The two mutable ranges in address order (an empty one after the output if no scratch).
    let s = scratch.clone().unwrap_or(o.end..o.end);
    let scratch_first = s.end <= o.start && scratch.is_some();
    let (lo, hi) = if scratch_first {
        (s.clone(), o.clone())
    } else if s.start >= o.end {
        (o.clone(), s.clone())
    } else {
        return Err(Error::RunInconsistent);
    };
    let (before, rest) = need(arena.split_at_mut_checked(lo.start))?;
    let (m_lo, rest) = need(rest.split_at_mut_checked(lo.len()))?;
    let (mid, rest) = need(rest.split_at_mut_checked(hi.start - lo.end))?;
    let (m_hi, after) = need(rest.split_at_mut_checked(hi.len()))?;
    let pieces: [(usize, &'s [u8]); 3] = [(0, before), (lo.end, mid), (hi.end, after)];
    let pick = |t: &TensorDesc| -> Result<&'s [i8]> {
        let r = range(t)?;
        let bytes = pieces.iter().find_map(|&(start, piece)| {
            let from = r.start.checked_sub(start)?;
            piece.get(from..from + r.len())
        });
        Ok(bytes_as_i8(need(bytes)?))
    };
    let xa = pick(a)?;
    let xb = match b {
        Some(b) => Some(pick(b)?),
        None => None,
    };
    let (y, scratch) = if scratch_first {
        (m_hi, Some(m_lo))
    } else {
        (m_lo, scratch.is_some().then_some(m_hi))
    };
    Ok((bytes_as_i8_mut(y), scratch, xa, xb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::Rng;
    use std::vec;
    use std::vec::Vec;
    use tinykd_format::{Activation, Conv2dSpec, DenseSpec, ModelBuilder, PoolSpec};

    fn q(rng: &mut Rng) -> Quant {
        Quant {
            scale: rng.range(1, 100) as f32 / 1000.0,
            zero_point: rng.range(-128, 127) as i8,
        }
    }

    fn act(rng: &mut Rng) -> Activation {
        [Activation::None, Activation::Relu, Activation::Relu6][rng.range(0, 2) as usize]
    }

    /// A random network: a chain of random ops on the latest tensor, with adds reaching back to
    /// any earlier tensor of the same shape, so the plan has long-lived tensors and reuse.
    fn random_model(rng: &mut Rng) -> Vec<u8> {
        let shape = Shape {
            h: rng.range(1, 7) as u16,
            w: rng.range(1, 7) as u16,
            c: rng.range(1, 5) as u16,
        };
        let mut b = ModelBuilder::new("random", shape, q(rng));
        let mut x = b.input();
        for _ in 0..rng.range(1, 12) {
            let s = b.shape(x);
            let pick = rng.range(0, 7);
            let y = match pick {
                0 | 1 => {
                    let depthwise = pick == 1;
                    let k = [rng.range(1, 3) as u8, rng.range(1, 3) as u8];
                    let pad = [0, 1, 0, 1].map(|_| rng.range(0, 1) as u8);
                    let groups = if depthwise { s.c } else { 1 };
                    let out = if depthwise {
                        s.c * rng.range(1, 2) as u16
                    } else {
                        rng.range(1, 6) as u16
                    };
                    let n = out as usize * k[0] as usize * k[1] as usize * (s.c / groups) as usize;
                    b.conv2d(
                        x,
                        Conv2dSpec {
                            out_channels: out,
                            kernel: k,
                            stride: [rng.range(1, 2) as u8, rng.range(1, 2) as u8],
                            padding: pad,
                            groups,
                            weights: (0..n).map(|_| rng.range(-127, 127) as i8).collect(),
                            weight_scales: (0..out)
                                .map(|_| rng.range(1, 50) as f32 / 1000.0)
                                .collect(),
                            bias: (0..out).map(|_| rng.range(-2000, 2000) as i32).collect(),
                            output: q(rng),
                            activation: act(rng),
                        },
                    )
                }
                2 => {
                    let out = rng.range(1, 12) as u16;
                    let n = out as usize * s.elements() as usize;
                    b.dense(
                        x,
                        DenseSpec {
                            out_features: out,
                            weights: (0..n).map(|_| rng.range(-127, 127) as i8).collect(),
                            weight_scales: vec![rng.range(1, 50) as f32 / 1000.0],
                            bias: (0..out).map(|_| rng.range(-2000, 2000) as i32).collect(),
                            output: q(rng),
                            activation: act(rng),
                        },
                    )
                }
                3 | 4 => {
                    let k = [rng.range(1, 3) as u8, rng.range(1, 3) as u8];
                    let spec = PoolSpec {
                        kernel: k,
                        stride: [rng.range(1, 2) as u8, rng.range(1, 2) as u8],
                        padding: [
                            rng.range(0, k[0] as i64 - 1) as u8,
                            rng.range(0, k[1] as i64 - 1) as u8,
                            rng.range(0, k[0] as i64 - 1) as u8,
                            rng.range(0, k[1] as i64 - 1) as u8,
                        ],
                    };
                    if pick == 3 {
                        b.max_pool2d(x, spec)
                    } else {
                        b.avg_pool2d(x, spec)
                    }
                }
                5 => b.global_avg_pool(x),
                6 => {
                    let same: Vec<u16> = (0..=x.0).filter(|&t| b.shape(TensorId(t)) == s).collect();
                    let other = TensorId(same[rng.range(0, same.len() as i64 - 1) as usize]);
                    b.add(x, other, q(rng), act(rng))
                }
                _ => b.reshape(
                    x,
                    Shape {
                        h: 1,
                        w: 1,
                        c: s.elements() as u16,
                    },
                ),
            };
            // Windows that do not fit the current shape are skipped.
            if let Ok(y) = y {
                x = y;
            }
        }
        if x.0 == 0 {
            b.global_avg_pool(x).unwrap();
        }
        b.finish().unwrap()
    }

    /// Runs the model op by op with one fresh buffer per tensor (no arena, no plan), calling the
    /// same kernels: any difference from `Model::run` is an arena-wiring bug.
    fn run_unplanned(desc: &ModelDesc<'_>, input: &[i8]) -> Vec<i8> {
        let mut values: Vec<Vec<i8>> = vec![input.to_vec()];
        for (i, op) in desc.ops().enumerate() {
            let t = |id: u16| desc.tensor(TensorId(id)).unwrap();
            let yt = t(i as u16 + 1);
            let mut y = vec![0i8; yt.len as usize];
            let [a, b] = op.inputs();
            let at = t(a.unwrap());
            let x = In {
                data: &values[a.unwrap() as usize],
                shape: at.shape,
                zero_point: at.quant.zero_point,
            };
            let out = Out {
                data: &mut y,
                shape: yt.shape,
                zero_point: yt.quant.zero_point,
            };
            match op {
                Op::Conv2d(c) => ops::conv2d::conv2d(&c, x, out),
                Op::Dense(d) => ops::dense::dense(&d, x, out),
                Op::DensePaired(d) => ops::dense_paired::dense_paired(&d, x, out),
                Op::MaxPool2d(p) => ops::max_pool2d::max_pool2d(&p, x, out),
                Op::AvgPool2d(p) => ops::avg_pool2d::avg_pool2d(&p, x, out),
                Op::GlobalAvgPool { .. } => ops::global_avg_pool::global_avg_pool(x, out),
                Op::Add(add) => {
                    let bt = t(b.unwrap());
                    let xb = In {
                        data: &values[b.unwrap() as usize],
                        shape: bt.shape,
                        zero_point: bt.quant.zero_point,
                    };
                    ops::add::add(&add, x, xb, out)
                }
                Op::Reshape { .. } => ops::reshape::reshape(x, out),
                Op::BinaryConv2d(c) => ops::binary::conv2d_with(&c, x, out, None, false),
                Op::BinaryConv2dSliced(c) => ops::binary::conv2d_with(&c, x, out, None, true),
                Op::BinaryDense(d) => ops::binary::dense_with(&d, x, out, None, false),
                Op::BinaryMaxPool2d(p) => ops::binary::max_pool2d(&p, x, out),
            }
            .unwrap();
            values.push(y);
        }
        values.pop().unwrap()
    }

    #[test]
    fn arena_run_matches_unplanned_run_on_random_models() {
        let mut rng = Rng(0x5EED_1234);
        let mut reused = 0;
        let mut seen = [0usize; 10];
        for _ in 0..300 {
            let blob = random_model(&mut rng);
            let model = Model::from_bytes(&blob).unwrap();
            let desc = model.desc();
            let total: usize = desc.tensors().map(|t| t.len as usize).sum();
            for op in desc.ops() {
                seen[op.kind() as usize] += 1;
            }
            if model.arena_size() < total {
                reused += 1;
            }
            for _ in 0..3 {
                let input = rng.i8s(model.input_len());
                let want = run_unplanned(desc, &input);
                // Garbage in the arena and an odd start address must not matter.
                let mut arena = vec![0u8; model.arena_size() + 1];
                for v in arena.iter_mut() {
                    *v = rng.next() as u8;
                }
                let got = model.run(&input, &mut arena[1..]).unwrap();
                assert_eq!(got, &want[..]);
                assert_eq!(got.len(), model.output_len());
            }
        }
        assert!(
            reused > 100,
            "the planner reused memory in only {reused} models"
        );
        let kinds: usize = seen.iter().filter(|&&n| n > 50).count();
        assert_eq!(kinds, 7, "every op kind appears often: {seen:?}");
    }

    /// Whole models: the fast kernel families give the reference's bytes, with the scratch plan
    /// (4-aligned arena), with a misaligned arena (fast kernels fall back), and on 1.0 blobs.
    #[test]
    fn fast_kernels_match_reference_on_random_models() {
        let mut rng = Rng(0xFA57_0001);
        for _ in 0..200 {
            let blob = random_model(&mut rng);
            let model = Model::from_bytes(&blob).unwrap();
            assert!(model.desc().has_scratch_plan());
            let input = rng.i8s(model.input_len());
            let mut words = vec![0u32; model.arena_size() / 4 + 2];
            // SAFETY (test): any bytes are valid u32s and vice versa.
            let arena: &mut [u8] = unsafe {
                core::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 4)
            };
            let want = model
                .run_with(Flavor::Portable, &input, arena)
                .unwrap()
                .to_vec();
            for flavor in [Flavor::Dsp, Flavor::Scalar] {
                for skew in [0, 1] {
                    let got = model.run_with(flavor, &input, &mut arena[skew..]).unwrap();
                    assert_eq!(got, &want[..], "{flavor:?} skew {skew}");
                }
            }
        }
    }

    /// A random binary model as the issue describes it: int8 conv → binary conv (int8 input
    /// binarized) → binary convs / binary max pools → binary conv or dense with int8 output →
    /// int8 dense head. Odd channel counts, padding and strides.
    pub(crate) fn random_binary_model(rng: &mut Rng) -> Vec<u8> {
        use tinykd_format::{fold_sign, BinaryConv2dSpec, BinaryDenseSpec, BinaryOutputSpec};
        loop {
            let shape = Shape {
                h: rng.range(3, 9) as u16,
                w: rng.range(3, 9) as u16,
                c: rng.range(1, 3) as u16,
            };
            let mut b = ModelBuilder::new("binary", shape, q(rng));
            let x = b.input();
            let c1 = rng.range(1, 40) as u16;
            let n = c1 as usize * 9 * shape.c as usize;
            let Ok(x) = b.conv2d(
                x,
                Conv2dSpec {
                    out_channels: c1,
                    kernel: [3, 3],
                    stride: [1, 1],
                    padding: [1; 4],
                    groups: 1,
                    weights: (0..n).map(|_| rng.range(-127, 127) as i8).collect(),
                    weight_scales: vec![0.02],
                    bias: (0..c1).map(|_| rng.range(-2000, 2000) as i32).collect(),
                    output: q(rng),
                    activation: act(rng),
                },
            ) else {
                continue;
            };
            let mut x = x;
            let mut ok = true;
            let layers = rng.range(1, 4);
            for layer in 0..layers {
                let s = b.shape(x);
                if layer > 0 && rng.range(0, 2) == 0 {
                    let k = rng.range(1, 3) as u8;
                    let r = b.binary_max_pool2d(
                        x,
                        PoolSpec {
                            kernel: [k, k],
                            stride: [rng.range(1, 2) as u8; 2],
                            padding: [0, 0, rng.range(0, k as i64 - 1) as u8, 0],
                        },
                    );
                    match r {
                        Ok(y) => x = y,
                        Err(_) => ok = false,
                    }
                    continue;
                }
                let oc = rng.range(1, 70) as u16;
                let k = [rng.range(1, 3) as u8, rng.range(1, 3) as u8];
                let kk = k[0] as u32 * k[1] as u32 * s.c as u32;
                let (t, flip): (Vec<i32>, Vec<bool>) = (0..oc)
                    .map(|_| {
                        let a = rng.range(-5, 5) as f64;
                        fold_sign(kk, a, rng.range(-(kk as i64), kk as i64) as f64)
                    })
                    .unzip();
                let input_thresholds = if layer == 0 {
                    if rng.range(0, 1) == 0 {
                        vec![rng.range(-20, 20) as i32]
                    } else {
                        (0..s.c).map(|_| rng.range(-128, 127) as i32).collect()
                    }
                } else {
                    vec![]
                };
                // Half the convs bit-sliced (format 1.4).
                let add = if rng.range(0, 1) == 0 {
                    ModelBuilder::binary_conv2d
                } else {
                    ModelBuilder::binary_conv2d_sliced
                };
                let r = add(
                    &mut b,
                    x,
                    BinaryConv2dSpec {
                        out_channels: oc,
                        kernel: k,
                        stride: [rng.range(1, 2) as u8, rng.range(1, 2) as u8],
                        padding: [0; 4].map(|_| rng.range(0, 1) as u8),
                        weights: (0..oc as usize * kk as usize)
                            .map(|_| if rng.next() & 1 == 1 { -1 } else { 1 })
                            .collect(),
                        input_thresholds,
                        output: BinaryOutputSpec::Packed {
                            thresholds: t,
                            flip,
                        },
                    },
                );
                match r {
                    Ok(y) => x = y,
                    Err(_) => ok = false,
                }
            }
            if !ok {
                continue;
            }
            // The last binary layer, with an int8 output: a conv or a dense.
            let s = b.shape(x);
            let oc = rng.range(1, 20) as u16;
            let int8 = BinaryOutputSpec::Int8 {
                flip: (0..oc).map(|_| rng.range(0, 1) == 1).collect(),
                bias: (0..oc).map(|_| rng.range(-50, 50) as i32).collect(),
                scales: (0..oc).map(|_| rng.range(1, 100) as f32 / 400.0).collect(),
                output: q(rng),
                activation: act(rng),
            };
            let pm1 = |rng: &mut Rng, n: usize| -> Vec<i8> {
                (0..n)
                    .map(|_| if rng.next() & 1 == 1 { -1 } else { 1 })
                    .collect()
            };
            let y = if rng.range(0, 2) < 2 {
                let add = if rng.range(0, 1) == 0 {
                    ModelBuilder::binary_conv2d
                } else {
                    ModelBuilder::binary_conv2d_sliced
                };
                add(
                    &mut b,
                    x,
                    BinaryConv2dSpec {
                        out_channels: oc,
                        kernel: [2, 2],
                        stride: [1, 1],
                        padding: [0, 0, 1, 1],
                        weights: pm1(rng, oc as usize * 4 * s.c as usize),
                        input_thresholds: vec![],
                        output: int8,
                    },
                )
            } else {
                b.binary_dense(
                    x,
                    BinaryDenseSpec {
                        out_features: oc,
                        weights: pm1(rng, oc as usize * s.elements() as usize),
                        input_thresholds: vec![],
                        output: int8,
                    },
                )
            };
            let Ok(y) = y else { continue };
            let n = b.shape(y).elements() as usize;
            b.dense(
                y,
                DenseSpec {
                    out_features: 10,
                    weights: (0..10 * n).map(|_| rng.range(-127, 127) as i8).collect(),
                    weight_scales: vec![0.01],
                    bias: vec![0; 10],
                    output: q(rng),
                    activation: Activation::None,
                },
            )
            .unwrap();
            return b.finish().unwrap();
        }
    }

    /// Binary models: the arena run equals the unplanned run, and the fast binary path (with
    /// the scratch plan, 4-aligned arena) and the fallback (misaligned arena) give the
    /// reference's bytes.
    #[test]
    fn binary_models_run_the_same_everywhere() {
        let mut rng = Rng(0xB1_AA01);
        let mut sliced = 0;
        for _ in 0..150 {
            let blob = random_binary_model(&mut rng);
            let model = Model::from_bytes(&blob).unwrap();
            // 1.4 where a conv is bit-sliced, 1.5 where the int8 stem is a one-channel 3×3
            // conv (its scratch grew in 1.5).
            let minor = model.desc().version().1;
            assert!(matches!(minor, 2 | 4 | 5), "{minor}");
            sliced += usize::from(
                model
                    .desc()
                    .ops()
                    .any(|o| matches!(o, Op::BinaryConv2dSliced(_))),
            );
            let input = rng.i8s(model.input_len());
            let want = run_unplanned(model.desc(), &input);
            let mut words = vec![0u32; model.arena_size() / 4 + 2];
            // SAFETY (test): any bytes are valid u32s and vice versa.
            let arena: &mut [u8] = unsafe {
                core::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 4)
            };
            let got = model.run_with(Flavor::Portable, &input, arena).unwrap();
            assert_eq!(got, &want[..]);
            for flavor in [Flavor::Dsp, Flavor::Scalar] {
                for skew in [0, 1] {
                    let got = model.run_with(flavor, &input, &mut arena[skew..]).unwrap();
                    assert_eq!(got, &want[..], "{flavor:?} skew {skew}");
                }
            }
        }
        assert!(sliced > 40, "only {sliced} models with a bit-sliced conv");
    }

    #[test]
    fn caller_errors() {
        let mut rng = Rng(9);
        let blob = random_model(&mut rng);
        let model = Model::from_bytes(&blob).unwrap();
        let input = vec![0i8; model.input_len()];
        let mut arena = vec![0u8; model.arena_size()];
        assert_eq!(
            model.run(&input[1..], &mut arena),
            Err(Error::RunInputLength)
        );
        assert_eq!(
            model.run(&input, &mut arena[..model.arena_size() - 1]),
            Err(Error::RunArenaTooSmall)
        );
        assert!(model.run(&input, &mut arena).is_ok());
        assert_eq!(model.input_shape(), model.desc().input().shape);
        assert_eq!(model.output_quant(), model.desc().output().quant);
        assert_eq!(model.input_quant(), model.desc().input().quant);
        assert_eq!(model.output_shape().elements() as usize, model.output_len());
    }
}
