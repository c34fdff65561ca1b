//! Portable reference kernels, one file per op (SPEC §3).
//!
//! These are the ground truth: any future architecture fast path (Cortex-M DSP `SMLAD`, ...)
//! must produce the same bytes. They use only integer arithmetic, read weights in place from the
//! blob, and reach every element through `get()` (a missing element is
//! [`Error::RunInconsistent`](crate::Error::RunInconsistent), never a panic). Inner loops zip
//! whole sub-slices, so the bounds checks sit outside them.

use tinykd_format::{requantize, Shape};

pub(crate) mod add;
pub(crate) mod avg_pool2d;
pub(crate) mod binary;
pub(crate) mod conv2d;
pub(crate) mod dense;
pub(crate) mod dense_paired;
pub(crate) mod fast;
pub(crate) mod global_avg_pool;
pub(crate) mod max_pool2d;
pub(crate) mod reshape;

/// A kernel's input: data plus what the kernel needs from the tensor descriptor.
#[derive(Clone, Copy)]
pub(crate) struct In<'a> {
    pub(crate) data: &'a [i8],
    pub(crate) shape: Shape,
    pub(crate) zero_point: i8,
}

/// A kernel's output.
pub(crate) struct Out<'a> {
    pub(crate) data: &'a mut [i8],
    pub(crate) shape: Shape,
    pub(crate) zero_point: i8,
}

impl Out<'_> {
    /// The same output, borrowed for a shorter time (to try a fast kernel, then the reference).
    pub(crate) fn reborrow(&mut self) -> Out<'_> {
        Out {
            data: &mut *self.data,
            shape: self.shape,
            zero_point: self.zero_point,
        }
    }
}

/// A family of kernels (see [`fast`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// The portable reference kernels (`ops/*.rs`).
    Portable,
    /// Cortex-M DSP extension (`fast::dsp`).
    Dsp,
    /// Cores without DSP, e.g. Cortex-M0 (`fast::scalar`).
    Scalar,
}

/// The kernels this build runs: the fast ones for the target, unless the `portable` feature asks
/// for the reference everywhere. Other targets (x86, RISC-V) run the reference.
pub(crate) const NATIVE: Flavor = if cfg!(feature = "portable") {
    Flavor::Portable
} else if cfg!(tinykd_dsp) {
    Flavor::Dsp
} else if cfg!(target_arch = "arm") {
    Flavor::Scalar
} else {
    Flavor::Portable
};

/// Conv2d with the given kernels; falls back to the reference where a fast kernel does not
/// apply or has no scratch (a format 1.0 blob).
pub(crate) fn conv2d_with(
    flavor: Flavor,
    op: &tinykd_format::Conv2dOp<'_>,
    x: In<'_>,
    mut y: Out<'_>,
    scratch: Option<&mut [u8]>,
) -> crate::Result<()> {
    if let Some(s) = scratch {
        let done = match flavor {
            Flavor::Dsp if op.groups == 1 => fast::dsp::conv2d(op, x, y.reborrow(), s)?,
            Flavor::Dsp => fast::dsp::depthwise(op, x, y.reborrow(), s)?,
            Flavor::Scalar if op.groups == 1 => fast::scalar::conv2d(op, x, y.reborrow(), s)?,
            Flavor::Scalar => fast::scalar::depthwise(op, x, y.reborrow(), s)?,
            _ => false,
        };
        if done {
            return Ok(());
        }
    }
    conv2d::conv2d(op, x, y)
}

/// Dense with the given kernels (as [`conv2d_with`]).
pub(crate) fn dense_with(
    flavor: Flavor,
    op: &tinykd_format::DenseOp<'_>,
    x: In<'_>,
    mut y: Out<'_>,
    scratch: Option<&mut [u8]>,
) -> crate::Result<()> {
    if let Some(s) = scratch {
        let done = match flavor {
            Flavor::Dsp => fast::dsp::dense(op, x, y.reborrow(), s)?,
            Flavor::Scalar => fast::scalar::dense(op, x, y.reborrow(), s)?,
            Flavor::Portable => false,
        };
        if done {
            return Ok(());
        }
    }
    dense::dense(op, x, y)
}

/// Paired dense (format 1.5) with the given kernels (as [`conv2d_with`]; the Cortex-M0 kernel
/// needs no scratch).
pub(crate) fn dense_paired_with(
    flavor: Flavor,
    op: &tinykd_format::DensePairedOp<'_>,
    x: In<'_>,
    mut y: Out<'_>,
    scratch: Option<&mut [u8]>,
) -> crate::Result<()> {
    let done = match (flavor, scratch) {
        (Flavor::Dsp, Some(s)) => fast::dense_paired::dsp(op, x, y.reborrow(), s)?,
        (Flavor::Scalar, _) => fast::dense_paired::scalar(op, x, y.reborrow())?,
        _ => false,
    };
    if done {
        return Ok(());
    }
    dense_paired::dense_paired(op, x, y)
}

/// `acc + Σ (x − zp_in) · w` over two equal-length runs: the multiply-accumulate at the heart of
/// conv2d and dense, kept in one place so an architecture fast path (SMLAD on Cortex-M) replaces
/// exactly this and nothing else. `w` holds int8 weights as raw bytes (as the blob stores them).
/// Wrapping arithmetic: validation has already proven that no sum overflows i32.
#[inline(always)]
pub(crate) fn mac(mut acc: i32, x: &[i8], w: &[u8], zp_in: i32) -> i32 {
    for (&xv, &wv) in x.iter().zip(w) {
        acc = acc.wrapping_add((i32::from(xv) - zp_in) * i32::from(wv as i8));
    }
    acc
}

/// Conv2d / Dense / Add epilogue: requantize, add the output zero point, clamp (SPEC §3).
#[inline(always)]
pub(crate) fn requantize_out(
    acc: i32,
    multiplier: i32,
    shift: i32,
    zp: i32,
    min: i8,
    max: i8,
) -> i8 {
    requantize(acc, multiplier, shift)
        .saturating_add(zp)
        // max/min rather than clamp: no panic path even if min > max (validation forbids it).
        .max(i32::from(min))
        .min(i32::from(max)) as i8
}

/// The input rows (or columns) a window at output position `o` covers, clipped to `[0, size)`,
/// as `(first input index, first kernel index, count)`.
#[inline(always)]
pub(crate) fn clip(
    o: usize,
    stride: usize,
    pad: usize,
    kernel: usize,
    size: usize,
) -> (usize, usize, usize) {
    let start = o * stride; // in padded coordinates
    let k0 = pad.saturating_sub(start);
    let k1 = kernel.min((size + pad).saturating_sub(start));
    let first = (start + k0).saturating_sub(pad);
    (first, k0, k1.saturating_sub(k0))
}

/// Shared helpers for the kernel tests: a tiny PRNG, random tensors and the i64 oracles' rounding.
#[cfg(test)]
pub(crate) mod testutil {
    use std::vec::Vec;

    /// splitmix64: tiny, seedable, good enough for test data.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Uniform in `lo..=hi`.
        pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
        pub(crate) fn i8s(&mut self, n: usize) -> Vec<i8> {
            (0..n).map(|_| self.range(-128, 127) as i8).collect()
        }
        pub(crate) fn weights(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.range(-127, 127) as i8 as u8).collect()
        }
    }

    /// SPEC §4 requantization in i128, independent of `tinykd_format::requantize`.
    pub(crate) fn oracle_requant(acc: i64, m: i32, shift: i32, zp: i8, min: i8, max: i8) -> i8 {
        let total = 31 - shift;
        let v = (acc as i128 * m as i128 + (1i128 << (total - 1))) >> total;
        let v = v.clamp(i32::MIN as i128, i32::MAX as i128) as i64 + zp as i64;
        v.clamp(min as i64, max as i64) as i8
    }

    /// Random per-channel (multiplier, shift) bytes, in the validated ranges.
    pub(crate) fn requant(rng: &mut Rng, n: usize, shifts: (i64, i64)) -> (Vec<u8>, Vec<u8>) {
        let mut m = Vec::new();
        let mut s = Vec::new();
        for _ in 0..n {
            let mult = if rng.range(0, 15) == 0 {
                0
            } else {
                rng.range(1 << 30, i32::MAX as i64) as i32
            };
            m.extend_from_slice(&mult.to_le_bytes());
            s.push(rng.range(shifts.0, shifts.1) as i8 as u8);
        }
        (m, s)
    }

    /// Random per-channel (multiplier, shift) bytes as the exporter writes them for convs
    /// (`quantize_multiplier_q32`, `SMMLAR`-ready), of reals `k · 2^−e`, `e` in `exps`.
    pub(crate) fn requant_q32(rng: &mut Rng, n: usize, exps: (i64, i64)) -> (Vec<u8>, Vec<u8>) {
        let mut m = Vec::new();
        let mut s = Vec::new();
        for _ in 0..n {
            let real =
                rng.range(1, 1 << 20) as f64 * 2f64.powi(-(rng.range(exps.0, exps.1) as i32));
            let (mq, sq) = tinykd_format::quantize_multiplier_q32(real);
            m.extend_from_slice(&mq.to_le_bytes());
            s.push(sq as i8 as u8);
        }
        (m, s)
    }

    /// Whether every channel's (multiplier, shift) bytes are `SMMLAR`-ready (the condition of
    /// the Cortex-M4 conv paths).
    pub(crate) fn smmlar_ready(m: &[u8], s: &[u8]) -> bool {
        m.chunks_exact(4).zip(s).all(|(m, &v)| {
            let m = i32::from_le_bytes(m.try_into().unwrap());
            crate::ops::fast::smmlar_multiplier(m, v as i8).is_some()
        })
    }

    /// `op` run on `x` by the `flavor` kernels with the scratch `sb`: its output.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv_out(
        flavor: crate::ops::Flavor,
        op: &tinykd_format::Conv2dOp<'_>,
        x: &[i8],
        ins: tinykd_format::Shape,
        zp_in: i8,
        outs: tinykd_format::Shape,
        zp_out: i8,
        sb: &mut [u8],
    ) -> Vec<i8> {
        let mut y = std::vec![0i8; outs.elements() as usize];
        let i = crate::ops::In {
            data: x,
            shape: ins,
            zero_point: zp_in,
        };
        let o = crate::ops::Out {
            data: &mut y,
            shape: outs,
            zero_point: zp_out,
        };
        crate::ops::conv2d_with(flavor, op, i, o, Some(sb)).unwrap();
        y
    }

    pub(crate) fn le_i32(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    pub(crate) fn act_range(rng: &mut Rng) -> (i8, i8) {
        let a = rng.range(-128, 127) as i8;
        let b = rng.range(-128, 127) as i8;
        match rng.range(0, 2) {
            0 => (-128, 127),
            _ => (a.min(b), a.max(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_matches_brute_force() {
        for size in 1..7 {
            for kernel in 1..5 {
                for pad in 0..4 {
                    for stride in 1..4 {
                        for o in 0..6 {
                            let start = (o * stride) as i64 - pad as i64;
                            let valid: std::vec::Vec<i64> = (0..kernel as i64)
                                .filter(|k| (0..size as i64).contains(&(start + k)))
                                .collect();
                            let (first, k0, n) = clip(o, stride, pad, kernel, size);
                            assert_eq!(n, valid.len(), "{size} {kernel} {pad} {stride} {o}");
                            if let Some(&k) = valid.first() {
                                assert_eq!(k0 as i64, k);
                                assert_eq!(first as i64, start + k);
                            }
                        }
                    }
                }
            }
        }
    }
}
