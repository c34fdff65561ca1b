//! Binary ops (format 1.2, SPEC §3.2; the bit-sliced convolution of 1.4, §3.3): XNOR/popcount
//! convolution and dense layers, binary max pooling.
//!
//! Packed tensors hold 32 channels per little-endian `u32` word, bit 1 = −1, `ceil(c / 32)`
//! words per pixel. An output's accumulator is `p = Σ popcount(x XOR w)` over all `kh · kw` taps
//! (a padded tap is +1, i.e. the word 0, so it adds `popcount(w)`); the ±1 dot product is
//! `K − 2p`, `K = kh · kw · in`. A packed output bit is `p > t[c]` (`p < t[c]` where `flip[c]`);
//! an int8 output is `requantize(bias[c] ± (K − 2p))` as in the int8 conv.
//!
//! Two implementations giving the same bytes:
//! - the reference ([`conv`]): straight from the definition, word by word with `count_ones`,
//!   binarizing an int8 input channel by channel on the fly; it needs no scratch;
//! - the fast path ([`fast`]): binarizes an int8 input once into the scratch, gathers the packed
//!   taps of each output pixel side by side (so each output channel is one run of XOR +
//!   popcount over contiguous words), and counts bits two filters per pass with a blocked SWAR
//!   popcount: a Thumb-2 `asm!` micro-kernel on Cortex-M4/M7 (23 instructions per column word
//!   for two filters), portable Rust elsewhere, the native instruction where the target has one;
//!   for `BinaryConv2dSliced` (format 1.4, bit-sliced weights) the counts of 32 filters at once
//!   with bit-sliced adders ([`fast::sliced`]).

use tinykd_format::{BinaryConv2dOp, BinaryDenseOp, BinaryOutput, Bits, LeI32s, PoolOp};

use super::{clip, requantize_out, In, Out};
use crate::error::{need, Result};

/// Words per packed pixel of `c` channels.
#[inline(always)]
fn words(c: usize) -> usize {
    c.div_ceil(32)
}

/// The bytes of an int8 slice (same memory).
#[inline(always)]
pub(crate) fn as_bytes(x: &[i8]) -> &[u8] {
    // SAFETY: `i8` and `u8` have the same size and alignment and every bit pattern is valid for
    // both; the shared borrow is carried over.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast::<u8>(), x.len()) }
}

/// The window geometry of a binary conv (a dense layer is the conv whose kernel is the input).
#[derive(Clone, Copy)]
pub(crate) struct Geom {
    ih: usize,
    iw: usize,
    ic: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    pt: usize,
    pl: usize,
    ow: usize,
    oc: usize,
}

impl Geom {
    fn conv(op: &BinaryConv2dOp<'_>, x: &In<'_>, y: &Out<'_>) -> Geom {
        let [kh, kw] = op.kernel.map(usize::from);
        let [sh, sw] = op.stride.map(usize::from);
        let [pt, pl, _, _] = op.padding.map(usize::from);
        Geom {
            ih: usize::from(x.shape.h),
            iw: usize::from(x.shape.w),
            ic: usize::from(x.shape.c),
            kh,
            kw,
            sh,
            sw,
            pt,
            pl,
            ow: usize::from(y.shape.w).max(1),
            oc: usize::from(y.shape.c).max(1),
        }
    }

    fn dense(x: &In<'_>, y: &Out<'_>) -> Geom {
        let (ih, iw) = (usize::from(x.shape.h), usize::from(x.shape.w));
        Geom {
            ih,
            iw,
            ic: usize::from(x.shape.c),
            kh: ih,
            kw: iw,
            sh: 1,
            sw: 1,
            pt: 0,
            pl: 0,
            ow: 1,
            oc: usize::from(y.shape.c).max(1),
        }
    }

    /// Products per output: `K = kh · kw · in`.
    fn k(&self) -> i32 {
        (self.kh * self.kw * self.ic) as i32
    }
}

/// The parameters binary conv and dense share.
#[derive(Clone, Copy)]
pub(crate) struct Params<'a> {
    weights: Bits<'a>,
    /// The weights are bit-sliced (`BinaryConv2dSliced`, SPEC §3.3), not rows of filters.
    sliced: bool,
    input_thresholds: LeI32s<'a>,
    flip: &'a [u8],
    output: BinaryOutput<'a>,
}

impl<'a> Params<'a> {
    fn conv(op: &BinaryConv2dOp<'a>, sliced: bool) -> Self {
        Params {
            weights: op.weights,
            sliced,
            input_thresholds: op.input_thresholds,
            flip: op.flip.bytes(),
            output: op.output,
        }
    }
    fn dense(op: &BinaryDenseOp<'a>) -> Self {
        Params {
            weights: op.weights,
            sliced: false,
            input_thresholds: op.input_thresholds,
            flip: op.flip.bytes(),
            output: op.output,
        }
    }
}

/// Writes the outputs of one pixel from the popcounts `p(o)` of its output channels.
#[inline(always)]
fn epilogue(
    prm: &Params<'_>,
    k: i32,
    zp_out: i32,
    out_px: &mut [i8],
    mut p: impl FnMut(usize) -> Result<i32>,
) -> Result<()> {
    match prm.output {
        BinaryOutput::Packed { thresholds } => {
            for (j, word_out) in out_px.chunks_exact_mut(4).enumerate() {
                let mut word = 0u32;
                for bit in 0..32 {
                    let o = j * 32 + bit;
                    let Some(t) = thresholds.get(o) else {
                        break; // past the last channel: padding bits stay 0
                    };
                    let pc = p(o)?;
                    let minus = if need(prm.flip.get(o))? & 1 == 1 {
                        pc < t
                    } else {
                        pc > t
                    };
                    word |= u32::from(minus) << bit;
                }
                for (d, s) in word_out.iter_mut().zip(word.to_le_bytes()) {
                    *d = s as i8;
                }
            }
        }
        BinaryOutput::Int8 {
            bias,
            requant,
            act_min,
            act_max,
        } => {
            for (o, out) in out_px.iter_mut().enumerate() {
                let dot = k.wrapping_sub(2 * p(o)?);
                let dot = if need(prm.flip.get(o))? & 1 == 1 {
                    dot.wrapping_neg()
                } else {
                    dot
                };
                let acc = need(bias.get(o))?.wrapping_add(dot);
                let m = need(requant.multipliers.get(o))?;
                let s = need(requant.shifts.get(o))?;
                *out = requantize_out(acc, m, i32::from(s), zp_out, act_min, act_max);
            }
        }
    }
    Ok(())
}

/// Input word `j` of pixel `(iy, ix)`: read from a packed input, or binarized from an int8 one.
#[inline(always)]
fn input_word(x: &[i8], g: &Geom, thresholds: &LeI32s<'_>, pixel: usize, j: usize) -> Result<u32> {
    let wc = words(g.ic);
    if thresholds.is_empty() {
        let at = (pixel * wc + j) * 4;
        let b: [u8; 4] = need(as_bytes(x).get(at..at + 4))?
            .try_into()
            .unwrap_or([0; 4]);
        Ok(u32::from_le_bytes(b))
    } else {
        let per_channel = thresholds.len() > 1;
        let mut word = 0u32;
        for bit in 0..32 {
            let c = j * 32 + bit;
            if c >= g.ic {
                break;
            }
            let v = i32::from(*need(x.get(pixel * g.ic + c))?);
            let t = need(thresholds.get(if per_channel { c } else { 0 }))?;
            word |= u32::from(v < t) << bit;
        }
        Ok(word)
    }
}

/// Word `j` of tap `tap` of filter `o`, as in the row layout `[out][taps][words(in)]`: read, or
/// gathered bit by bit from the bit-sliced layout `[groups][taps][32 · words(in)]` (SPEC §3.3).
#[inline(always)]
fn filter_word(prm: &Params<'_>, g: &Geom, o: usize, tap: usize, j: usize) -> Result<u32> {
    let wc = words(g.ic);
    if !prm.sliced {
        return need(prm.weights.word((o * g.kh * g.kw + tap) * wc + j));
    }
    let lanes = 32 * wc;
    let base = ((o / 32) * g.kh * g.kw + tap) * lanes + 32 * j;
    let mut word = 0u32;
    for bit in 0..32 {
        word |= (need(prm.weights.word(base + bit))? >> (o % 32) & 1) << bit;
    }
    Ok(word)
}

/// The reference binary convolution / dense layer (no scratch).
pub(crate) fn conv(prm: &Params<'_>, g: &Geom, x: &[i8], y: &mut [i8], zp_out: i32) -> Result<()> {
    let wc = words(g.ic);
    let k = g.k();
    let out_stride = match prm.output {
        BinaryOutput::Packed { .. } => words(g.oc) * 4,
        BinaryOutput::Int8 { .. } => g.oc,
    };
    for (px, out_px) in y.chunks_exact_mut(out_stride.max(1)).enumerate() {
        let (oy, ox) = (px / g.ow, px % g.ow);
        let popcount = |o: usize| -> Result<i32> {
            let mut p = 0u32;
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let iy = (oy * g.sh + ky).checked_sub(g.pt).filter(|&v| v < g.ih);
                    let ix = (ox * g.sw + kx).checked_sub(g.pl).filter(|&v| v < g.iw);
                    for j in 0..wc {
                        let w = filter_word(prm, g, o, ky * g.kw + kx, j)?;
                        let a = match (iy, ix) {
                            (Some(iy), Some(ix)) => {
                                input_word(x, g, &prm.input_thresholds, iy * g.iw + ix, j)?
                            }
                            _ => 0, // padding: +1
                        };
                        p += (a ^ w).count_ones();
                    }
                }
            }
            Ok(p as i32)
        };
        epilogue(prm, k, zp_out, out_px, popcount)?;
    }
    Ok(())
}

/// Binary convolution (`sliced`: the bit-sliced weight layout): the fast path where it applies
/// (scratch given), else the reference.
pub(crate) fn conv2d_with(
    op: &BinaryConv2dOp<'_>,
    x: In<'_>,
    y: Out<'_>,
    scratch: Option<&mut [u8]>,
    sliced: bool,
) -> Result<()> {
    let g = Geom::conv(op, &x, &y);
    let prm = Params::conv(op, sliced);
    let zp = i32::from(y.zero_point);
    if let Some(s) = scratch {
        if fast::conv(&prm, &g, x.data, y.data, zp, s)? {
            return Ok(());
        }
    }
    conv(&prm, &g, x.data, y.data, zp)
}

/// Binary dense: as [`conv2d_with`], with the whole input as the window.
pub(crate) fn dense_with(
    op: &BinaryDenseOp<'_>,
    x: In<'_>,
    y: Out<'_>,
    scratch: Option<&mut [u8]>,
    allow_fast: bool,
) -> Result<()> {
    let g = Geom::dense(&x, &y);
    let prm = Params::dense(op);
    let zp = i32::from(y.zero_point);
    if allow_fast {
        let mut empty = [0u8; 0];
        let s = scratch.unwrap_or(&mut empty);
        if fast::conv(&prm, &g, x.data, y.data, zp, s)? {
            return Ok(());
        }
    }
    conv(&prm, &g, x.data, y.data, zp)
}

/// Binary max pooling: the max of ±1 values is −1 only if all are −1, i.e. the bitwise AND of
/// the packed bits over the window's valid cells (padded cells never win). Bytewise AND is the
/// same as word-wise, and the channel padding bits (0 everywhere) stay 0.
pub(crate) fn max_pool2d(op: &PoolOp, x: In<'_>, y: Out<'_>) -> Result<()> {
    let (ih, iw) = (usize::from(x.shape.h), usize::from(x.shape.w));
    let bytes = words(usize::from(x.shape.c)) * 4;
    let ow = usize::from(y.shape.w).max(1);
    let [kh, kw] = op.kernel.map(usize::from);
    let [sh, sw] = op.stride.map(usize::from);
    let [pt, pl, _, _] = op.padding.map(usize::from);
    for (p, out_px) in y.data.chunks_exact_mut(bytes.max(1)).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        let (iy0, _, ny) = clip(oy, sh, pt, kh, ih);
        let (ix0, _, nx) = clip(ox, sw, pl, kw, iw);
        out_px.fill(-1); // all bits set: AND identity (validation guarantees ≥ 1 valid cell)
        for iy in iy0..iy0 + ny {
            for ix in ix0..ix0 + nx {
                let start = (iy * iw + ix) * bytes;
                let cell = need(x.data.get(start..start + bytes))?;
                for (o, &v) in out_px.iter_mut().zip(cell) {
                    *o &= v;
                }
            }
        }
    }
    Ok(())
}

pub(crate) mod fast {
    //! The fast binary conv/dense path (see the module docs of `binary`).

    use super::{as_bytes, input_word, words, Geom, Params};
    use crate::error::{need, Result};
    use tinykd_format::BinaryOutput;
    #[cfg(all(target_arch = "arm", tinykd_dsp))]
    use tinykd_format::LeI32s;

    /// `Σ popcount(a[i] XOR w[i])` over `a.len()` words, `w` read little-endian from bytes.
    ///
    /// Blocked SWAR: three shift-and-mask steps turn each word into 4 byte counts (≤ 8), which
    /// accumulate in one register for up to 31 words (≤ 248 per byte) before one horizontal
    /// sum. Targets with a popcount instruction use it; Cortex-M4/M7 use the Thumb-2 kernel
    /// (two filters per pass) through `xor_popcount2`.
    #[inline(always)]
    pub(crate) fn xor_popcount(a: &[u32], w: &[u8]) -> u32 {
        let word = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
        if cfg!(any(target_feature = "popcnt", target_arch = "aarch64")) {
            return a
                .iter()
                .zip(w.chunks_exact(4))
                .map(|(x, w)| (x ^ word(w)).count_ones())
                .sum();
        }
        // Filters of up to 31 words (K ≤ 992: every 3×3 conv up to 96 channels) are one block.
        if a.len() <= 31 {
            return block(a, w);
        }
        a.chunks(31)
            .zip(w.chunks(31 * 4))
            .map(|(xa, wa)| block(xa, wa))
            .sum()
    }

    /// `Σ popcount(a XOR w)` over at most 31 words (byte counts ≤ 8 per word, ≤ 248 in all).
    #[inline(always)]
    fn block(a: &[u32], w: &[u8]) -> u32 {
        let mut acc = 0u32;
        for (x, w) in a.iter().zip(w.chunks_exact(4)) {
            let v = x ^ u32::from_le_bytes(w.try_into().unwrap_or([0; 4]));
            let v = v - ((v >> 1) & 0x5555_5555);
            let v = (v & 0x3333_3333) + ((v >> 2) & 0x3333_3333);
            acc += (v + (v >> 4)) & 0x0f0f_0f0f;
        }
        hsum(acc)
    }

    /// The popcounts of two filters against one column, `(Σ popcount(a XOR w0), … w1)`; both
    /// filters hold at least `a.len()` words.
    #[inline(always)]
    fn xor_popcount2(a: &[u32], w0: &[u8], w1: &[u8]) -> (u32, u32) {
        #[cfg(all(target_arch = "arm", tinykd_dsp))]
        if !a.is_empty()
            && a.len().is_multiple_of(3)
            && a.len() <= 30
            && w0.len() >= 4 * a.len()
            && w1.len() >= 4 * a.len()
        {
            // SAFETY: `a` has 3..=30 words, a multiple of 3, and both filters hold at least
            // `4 · a.len()` bytes (checked above), which is all the kernel reads.
            return unsafe {
                thumb2::xor_popcount2_by3(a.as_ptr(), a.len() / 3, w0.as_ptr(), w1.as_ptr())
            };
        }
        #[cfg(all(target_arch = "arm", tinykd_dsp))]
        if !a.is_empty() && w0.len() >= 4 * a.len() && w1.len() >= 4 * a.len() {
            if a.len() <= 31 {
                // SAFETY: `a` has 1..=31 words and both filters hold at least `4 · a.len()`
                // bytes (checked above), which is all the kernel reads.
                let (c0, c1) =
                    unsafe { thumb2::xor_popcount2(a.as_ptr(), a.len(), w0.as_ptr(), w1.as_ptr()) };
                return (hsum(c0), hsum(c1));
            }
            let (mut p0, mut p1) = (0, 0);
            for (i, block) in a.chunks(31).enumerate() {
                let at = i * 31 * 4;
                // SAFETY: as above, for the block at word `31 · i`.
                let (c0, c1) = unsafe {
                    thumb2::xor_popcount2(
                        block.as_ptr(),
                        block.len(),
                        w0.as_ptr().add(at),
                        w1.as_ptr().add(at),
                    )
                };
                p0 += hsum(c0);
                p1 += hsum(c1);
            }
            return (p0, p1);
        }
        (xor_popcount(a, w0), xor_popcount(a, w1))
    }

    /// The popcounts of `filters` (each `per_out` bytes) against `column`, into `pc`, two
    /// filters per pass.
    #[inline(always)]
    fn popcounts(column: &[u32], filters: &[u8], per_out: usize, pc: &mut [u32]) {
        #[cfg(all(target_arch = "arm", tinykd_dsp))]
        {
            let n = column.len();
            let pairs = pc.len() / 2;
            if (n == 9 || n == 18)
                && per_out == 4 * n
                && pairs > 0
                && filters.len() >= pc.len() * per_out
            {
                // SAFETY: 2·pairs ≤ pc.len() filters of per_out = 4n bytes lie within `filters`
                // (checked), `column` has n words, `pc` holds 2·pairs words.
                unsafe {
                    if n == 9 {
                        thumb2::pairs_by3::<9>(
                            column.as_ptr(),
                            filters.as_ptr(),
                            pairs,
                            pc.as_mut_ptr(),
                        );
                    } else {
                        thumb2::pairs_by3::<18>(
                            column.as_ptr(),
                            filters.as_ptr(),
                            pairs,
                            pc.as_mut_ptr(),
                        );
                    }
                }
                if let (Some(p), Some(rest)) =
                    (pc.get_mut(2 * pairs), filters.get(2 * pairs * per_out..))
                {
                    *p = xor_popcount(column, rest);
                }
                return;
            }
        }
        let pairs = filters.chunks_exact(2 * per_out);
        let rest = pairs.remainder();
        let mut out = pc.chunks_exact_mut(2);
        for (f, p) in pairs.zip(out.by_ref()) {
            let (w0, w1) = f.split_at(per_out);
            let (p0, p1) = xor_popcount2(column, w0, w1);
            if let [a, b] = p {
                (*a, *b) = (p0, p1);
            }
        }
        if let Some(p) = out.into_remainder().first_mut() {
            *p = xor_popcount(column, rest);
        }
    }

    /// The output pixel from its column: the popcounts of 32 output channels at a time, then
    /// the threshold (packed) or requantization (int8) on zipped slices (no bounds checks).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fast_epilogue(
        prm: &Params<'_>,
        k: i32,
        zp_out: i32,
        out_px: &mut [i8],
        column: &[u32],
        weights: &[u8],
        per_out: usize,
        pre: &Pre,
        pc: &mut [u32; 32],
    ) -> Result<()> {
        let per_out = per_out.max(4);
        match prm.output {
            #[cfg(all(target_arch = "arm", tinykd_dsp))]
            BinaryOutput::Packed { thresholds }
                if let Pre::Packed(pre) = pre
                    && thresholds.len() <= 128
                    && prm.flip.len() >= thresholds.len()
                    && packed_by3(column, weights, per_out, thresholds.len(), pre, out_px, pc) =>
            {
                // Done by the grouped Thumb-2 kernel.
            }
            BinaryOutput::Packed { thresholds } => {
                // −1 iff p > t, or p < t ⇔ !(p > t − 1) where flipped: one compare, one XOR.
                let bit = |p: u32, t: &[u8], fl: u8| {
                    let fl = u32::from(fl & 1);
                    let t = i32::from_le_bytes(t.try_into().unwrap_or([0; 4]))
                        .saturating_sub(fl as i32);
                    u32::from(p as i32 > t) ^ fl
                };
                let mut channels = weights
                    .chunks_exact(per_out)
                    .zip(thresholds.bytes().chunks_exact(4))
                    .zip(prm.flip);
                for word_out in out_px.chunks_exact_mut(4) {
                    // 32 channels per word, two per pass (32 is even: pairs never straddle).
                    let mut group = channels.by_ref().take(32);
                    let mut word = 0u32;
                    let mut shift = 0;
                    while let Some(((w0, t0), &f0)) = group.next() {
                        match group.next() {
                            Some(((w1, t1), &f1)) => {
                                let (p0, p1) = xor_popcount2(column, w0, w1);
                                word |= (bit(p0, t0, f0) | bit(p1, t1, f1) << 1) << shift;
                                shift += 2;
                            }
                            None => {
                                word |= bit(xor_popcount(column, w0), t0, f0) << shift;
                                shift += 1;
                            }
                        }
                    }
                    for (d, s) in word_out.iter_mut().zip(word.to_le_bytes()) {
                        *d = s as i8;
                    }
                }
            }
            BinaryOutput::Int8 {
                act_min, act_max, ..
            } if let Pre::Int8(ip) = pre => {
                for (j, (outs, f)) in out_px
                    .chunks_mut(32)
                    .zip(weights.chunks(32 * per_out))
                    .enumerate()
                {
                    let pc = need(pc.get_mut(..outs.len()))?;
                    popcounts(column, f, per_out, pc);
                    ip.outs(outs, pc, 32 * j, zp_out, act_min, act_max);
                }
            }
            BinaryOutput::Int8 {
                bias,
                requant,
                act_min,
                act_max,
            } => {
                let mut params = prm
                    .flip
                    .iter()
                    .zip(bias.iter())
                    .zip(requant.multipliers.iter())
                    .zip(requant.shifts.iter());
                for (outs, f) in out_px.chunks_mut(32).zip(weights.chunks(32 * per_out)) {
                    let pc = need(pc.get_mut(..outs.len()))?;
                    popcounts(column, f, per_out, pc);
                    int8_outs(outs, pc, &mut params, k, zp_out, act_min, act_max);
                }
            }
        }
        Ok(())
    }

    /// The output stage prepared once per layer (the DSP build, up to 128 channels; on the
    /// stack: at most 1.3 KB, no allocator).
    #[allow(clippy::large_enum_variant)]
    pub(crate) enum Pre {
        None,
        #[allow(dead_code)] // built on the DSP targets only
        Packed(PackedPre),
        #[allow(dead_code)]
        Int8(Int8Pre),
    }

    /// The int8 output stage prepared once per layer: `acc = bias ± (K − 2p)` is
    /// `base + step · p` (step = ∓2), and the requantization's multiplier and total shift.
    pub(crate) struct Int8Pre {
        /// `bias ± K`: `acc = base + step · p`.
        base: [i32; 128],
        step: [i8; 128],
        mult: [i32; 128],
        /// The total right shift `t` of `acc · m`, in `[1, 62]`.
        total: [u8; 128],
        /// How every channel is requantized: [`Int8Pre::SMMULR`], [`Int8Pre::HIGH`] or mixed.
        mode: u8,
    }

    impl Int8Pre {
        /// Every channel has `t ≤ 31` and `|acc| < 2^(t−1)` over `p ∈ [0, K]`: `acc · 2^(32−t)`
        /// fits an i32 and one `SMMULR` by `m` rounds it exactly as `requantize` does.
        const SMMULR: u8 = 0;
        /// Every channel has `t ≥ 32`: the high word of `acc · m + 2^(t−1)`, shifted.
        const HIGH: u8 = 1;
        /// Otherwise: the 64-bit sum shifted per channel.
        const MIXED: u8 = 2;

        /// `None` past 128 channels, or where `bias ± K` is outside `±2^30` (a hostile bias:
        /// `acc` would wrap in 32 bits, which the 64-bit form here does not).
        fn new(prm: &Params<'_>, k: i32, oc: usize) -> Option<Int8Pre> {
            let BinaryOutput::Int8 { bias, requant, .. } = prm.output else {
                return None;
            };
            if oc > 128
                || prm.flip.len() < oc
                || bias.len() < oc
                || requant.multipliers.len() < oc
                || requant.shifts.len() < oc
            {
                return None;
            }
            let mut pre = Int8Pre {
                base: [0; 128],
                step: [0; 128],
                mult: [0; 128],
                total: [0; 128],
                mode: Self::SMMULR,
            };
            let (mut smmulr, mut high) = (true, true);
            let params = prm.flip.iter().zip(bias.iter());
            let params = params.zip(requant.multipliers.iter().zip(requant.shifts.iter()));
            for (o, ((&fl, b), (m, s))) in params.take(oc).enumerate() {
                let flipped = fl & 1 == 1;
                let (base, step) = if flipped {
                    (b.wrapping_sub(k), 2i8)
                } else {
                    (b.wrapping_add(k), -2i8)
                };
                if base.unsigned_abs() > 1 << 30 {
                    return None;
                }
                let t = (31 - i32::from(s).clamp(-31, 30)) as u8; // in [1, 62]
                let far = base
                    .unsigned_abs()
                    .max(base.wrapping_add(i32::from(step) * k).unsigned_abs());
                smmulr &= t <= 31 && far < 1 << (t - 1);
                high &= t >= 32;
                if let (Some(bd), Some(sd), Some(md), Some(td)) = (
                    pre.base.get_mut(o),
                    pre.step.get_mut(o),
                    pre.mult.get_mut(o),
                    pre.total.get_mut(o),
                ) {
                    (*bd, *sd, *md, *td) = (base, step, m, t);
                }
            }
            pre.mode = match (smmulr, high) {
                (true, _) => Self::SMMULR,
                (false, true) => Self::HIGH,
                _ => Self::MIXED,
            };
            Some(pre)
        }

        /// The outputs of channels `o0..` from their popcounts: `requantize_out` of
        /// `acc = base + step · p`, rounded as `requantize` does (see the modes), clamped to
        /// `[min − zp, max − zp]` before the zero point is added (which is what clamping to
        /// i32, the saturating add and the clamp give).
        #[inline(never)]
        fn outs(&self, outs: &mut [i8], pc: &[u32], o0: usize, zp: i32, min: i8, max: i8) {
            let n = outs.len();
            let (Some(base), Some(step), Some(mult), Some(total)) = (
                self.base.get(o0..o0 + n),
                self.step.get(o0..o0 + n),
                self.mult.get(o0..o0 + n),
                self.total.get(o0..o0 + n),
            ) else {
                return;
            };
            let (lo, hi) = (i32::from(min) - zp, i32::from(max) - zp);
            let params = base.iter().zip(step).zip(mult.iter().zip(total));
            let outs = outs.iter_mut().zip(pc).zip(params);
            // |acc| ≤ 2^30 + 2K: no wrap (`new`).
            match self.mode {
                Self::SMMULR => {
                    for ((out, &p), ((&b, &s), (&m, &t))) in outs {
                        let acc = b + i32::from(s) * p as i32;
                        let v = smmulr(acc << (32 - u32::from(t)), m);
                        *out = (v.clamp(lo, hi) + zp) as i8;
                    }
                }
                Self::HIGH => {
                    for ((out, &p), ((&b, &s), (&m, &t))) in outs {
                        let acc = b + i32::from(s) * p as i32;
                        let v = i64::from(acc) * i64::from(m) + (1i64 << (t - 1));
                        let v = ((v >> 32) as i32) >> (u32::from(t) - 32);
                        *out = (v.clamp(lo, hi) + zp) as i8;
                    }
                }
                _ => {
                    let (lo, hi) = (i64::from(lo), i64::from(hi));
                    for ((out, &p), ((&b, &s), (&m, &t))) in outs {
                        let acc = b + i32::from(s) * p as i32;
                        let v = i64::from(acc) * i64::from(m) + (1i64 << (t - 1));
                        *out = ((v >> t).clamp(lo, hi) + i64::from(zp)) as i8;
                    }
                }
            }
        }
    }

    /// `(a · b + 2^31) >> 32`: `SMMULR` on cores with the DSP extension.
    #[inline(always)]
    fn smmulr(a: i32, b: i32) -> i32 {
        #[cfg(all(target_arch = "arm", tinykd_dsp))]
        {
            let r: i32;
            // SAFETY: one register-only instruction.
            unsafe {
                core::arch::asm!(
                    "smmulr {r}, {a}, {b}",
                    r = lateout(reg) r,
                    a = in(reg) a,
                    b = in(reg) b,
                    options(pure, nomem, nostack),
                );
            }
            r
        }
        #[cfg(not(all(target_arch = "arm", tinykd_dsp)))]
        {
            ((i64::from(a) * i64::from(b) + (1 << 31)) >> 32) as i32
        }
    }

    /// The packed output stage prepared once per layer (up to 128 channels): −1 iff p > t, or
    /// p < t ⇔ !(p > t − 1) where flipped. `tadj` holds t − flip clamped to [−1, K] (the same
    /// compares for p ∈ [0, K]), so that `p > t'` is the sign bit of `t' − p`; `flips` holds
    /// the flips, XORed into each output word.
    pub(crate) struct PackedPre {
        tadj: [i32; 128],
        flips: [u32; 4],
    }

    impl PackedPre {
        fn new(thr: &[u8], flip: &[u8], k: i32) -> PackedPre {
            let mut pre = PackedPre {
                tadj: [0; 128],
                flips: [0; 4],
            };
            for (o, (dst, (t, f))) in pre
                .tadj
                .iter_mut()
                .zip(thr.chunks_exact(4).zip(flip))
                .enumerate()
            {
                let fl = i32::from(*f & 1);
                let raw = i32::from_le_bytes(t.try_into().unwrap_or([0; 4]));
                *dst = raw.saturating_sub(fl).clamp(-1, k.max(-1));
                if let Some(w) = pre.flips.get_mut(o / 32) {
                    *w |= (fl as u32) << (o % 32);
                }
            }
            pre
        }
    }

    /// A packed output pixel on Cortex-M4/M7 when every filter is 3..=30 words, a multiple of
    /// 3 (every 3×3 conv up to 320 input channels): the lengths are checked once, then per pair
    /// of filters one call of the grouped kernel and two threshold compares, no bounds checks.
    /// `false`: not this case (nothing written).
    #[cfg(all(target_arch = "arm", tinykd_dsp))]
    #[inline(always)]
    fn packed_by3(
        column: &[u32],
        weights: &[u8],
        per_out: usize,
        oc: usize,
        pre: &PackedPre,
        out_px: &mut [i8],
        pc: &mut [u32; 32],
    ) -> bool {
        let n = column.len();
        if n == 0
            || !n.is_multiple_of(3)
            || n > 30
            || per_out != 4 * n
            || oc == 0
            || weights.len() < oc * per_out
            || out_px.len() != 4 * oc.div_ceil(32)
        {
            return false;
        }
        let groups = n / 3;
        if oc > 128 {
            return false;
        }
        let (tadj, flips) = (&pre.tadj, &pre.flips);
        // Per output word: the popcounts of its (up to) 32 channels first, two per kernel call
        // (the kernel takes 12 registers: nothing else stays in one across it), then the 32
        // compares in a loop of their own.
        for (j, word_out) in out_px.chunks_exact_mut(4).enumerate() {
            let o0 = 32 * j;
            let m = (oc - o0).min(32);
            let mut o = 0;
            if m >= 2 && (n == 9 || n == 18) {
                // SAFETY: filters o0 .. o0 + 2·(m/2) ≤ oc lie within `weights` (oc · per_out
                // bytes, per_out = 4n, checked above), `column` has n words, `pc` holds 32 ≥ m
                // words, m/2 ≥ 1.
                unsafe {
                    let w0 = weights.as_ptr().add(o0 * per_out);
                    if n == 9 {
                        thumb2::pairs_by3::<9>(column.as_ptr(), w0, m / 2, pc.as_mut_ptr());
                    } else {
                        thumb2::pairs_by3::<18>(column.as_ptr(), w0, m / 2, pc.as_mut_ptr());
                    }
                }
                o = m / 2 * 2;
            }
            while o + 2 <= m {
                // SAFETY: filters o0 + o and o0 + o + 1 < oc lie within `weights` (oc · per_out
                // bytes, checked above), `column` has 3 · groups words, 1 ≤ groups ≤ 10.
                let (p0, p1) = unsafe {
                    let w0 = weights.as_ptr().add((o0 + o) * per_out);
                    thumb2::xor_popcount2_by3(column.as_ptr(), groups, w0, w0.add(per_out))
                };
                if let Some([a, b]) = pc.get_mut(o..o + 2) {
                    (*a, *b) = (p0, p1);
                }
                o += 2;
            }
            if o < m {
                let at = (o0 + o) * per_out;
                if let Some(p) = pc.get_mut(o) {
                    *p = xor_popcount(column, weights.get(at..at + per_out).unwrap_or(&[]));
                }
            }
            let mut word = flips.get(j).copied().unwrap_or(0);
            let t = tadj.get(o0..o0 + m).unwrap_or(&[]);
            for (i, (&p, &t)) in pc.iter().zip(t).enumerate() {
                word ^= ((t - p as i32) as u32 >> 31) << i;
            }
            for (d, s) in word_out.iter_mut().zip(word.to_le_bytes()) {
                *d = s as i8;
            }
        }
        true
    }

    /// Binarizes an int8 input of 32·m channels (m ≤ 4) into `packed` with the DSP extension:
    /// per four channels `SSUB8` against the four thresholds (clamped to int8; its GE flags are
    /// exactly `x ≥ t`), `SEL` of 0 or the bit weights `1, 2, 4, 8`, `USAD8` to sum them into a
    /// nibble: 5 instructions per 4 values (a threshold of 128 or more, which no int8 value
    /// reaches from below, sets its bit through a mask). `false`: not this case.
    #[cfg(all(target_arch = "arm", tinykd_dsp))]
    fn binarize_simd(x: &[i8], g: &Geom, thr: &LeI32s<'_>, packed: &mut [u32]) -> bool {
        let ic = g.ic;
        let wc = ic / 32;
        let pixels = g.ih * g.iw;
        let per_channel = thr.len() > 1;
        if ic == 0
            || !ic.is_multiple_of(32)
            || wc > 4
            || x.len() != pixels * ic
            || packed.len() != pixels * wc
            || (per_channel && thr.len() != ic)
        {
            return false;
        }
        // The thresholds as int8 bytes, four per word, and the always-set bits.
        let mut tw = [0u32; 32];
        let mut force = [0u32; 4];
        for c in 0..ic {
            let Some(t) = thr.get(if per_channel { c } else { 0 }) else {
                return false;
            };
            if let Some(w) = tw.get_mut(c / 4) {
                *w |= u32::from(t.clamp(-128, 127) as i8 as u8) << (8 * (c % 4));
            }
            if let (true, Some(f)) = (t > 127, force.get_mut(c / 32)) {
                *f |= 1 << (c % 32);
            }
        }
        for (px_words, px) in packed.chunks_exact_mut(wc).zip(x.chunks_exact(ic)) {
            for (j, (w, f)) in px_words.iter_mut().zip(force).enumerate() {
                let Some(t) = tw.get(8 * j..8 * j + 8) else {
                    return false;
                };
                let bits: u32;
                // SAFETY: `px` holds `ic = 32·wc` bytes, so the 32 bytes at `32·j` (j < wc) are
                // readable; `t` is 8 words. The asm only reads them (unaligned word loads are
                // allowed on Cortex-M3/M4/M7).
                unsafe {
                    core::arch::asm!(
                        "ldr {a}, [{x}, #0]", "ldr {b}, [{t}, #0]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {w}, {a}, {z}",
                        "ldr {a}, [{x}, #4]", "ldr {b}, [{t}, #4]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {a}, {a}, {z}", "orr {w}, {w}, {a}, lsl #4",
                        "ldr {a}, [{x}, #8]", "ldr {b}, [{t}, #8]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {a}, {a}, {z}", "orr {w}, {w}, {a}, lsl #8",
                        "ldr {a}, [{x}, #12]", "ldr {b}, [{t}, #12]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {a}, {a}, {z}", "orr {w}, {w}, {a}, lsl #12",
                        "ldr {a}, [{x}, #16]", "ldr {b}, [{t}, #16]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {a}, {a}, {z}", "orr {w}, {w}, {a}, lsl #16",
                        "ldr {a}, [{x}, #20]", "ldr {b}, [{t}, #20]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {a}, {a}, {z}", "orr {w}, {w}, {a}, lsl #20",
                        "ldr {a}, [{x}, #24]", "ldr {b}, [{t}, #24]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {a}, {a}, {z}", "orr {w}, {w}, {a}, lsl #24",
                        "ldr {a}, [{x}, #28]", "ldr {b}, [{t}, #28]", "ssub8 {a}, {a}, {b}",
                        "sel {a}, {z}, {pat}", "usad8 {a}, {a}, {z}", "orr {w}, {w}, {a}, lsl #28",
                        x = in(reg) px.as_ptr().add(32 * j),
                        t = in(reg) t.as_ptr(),
                        z = in(reg) 0u32,
                        pat = in(reg) 0x0804_0201u32,
                        w = out(reg) bits,
                        a = out(reg) _,
                        b = out(reg) _,
                        options(nostack, readonly, pure),
                    );
                }
                *w = bits | f;
            }
        }
        true
    }

    /// The Thumb-2 micro-kernel (Cortex-M3/M4/M7; selected with the DSP builds).
    #[cfg(all(target_arch = "arm", tinykd_dsp))]
    mod thumb2 {
        /// Byte-packed popcounts of `x XOR w0` and `x XOR w1` over `n` words (1 ≤ n ≤ 31):
        /// per word one load of `x`, one unaligned load of each filter word, and per filter
        /// `EOR` + 7 SWAR steps (the barrel shifter folds the shifts) + one accumulate.
        ///
        /// # Safety
        /// `x` points to `n` readable aligned words, `w0` and `w1` to `4n` readable bytes each,
        /// and `n ≥ 1`.
        #[inline(always)]
        pub(super) unsafe fn xor_popcount2(
            x: *const u32,
            n: usize,
            w0: *const u8,
            w1: *const u8,
        ) -> (u32, u32) {
            let (acc0, acc1): (u32, u32);
            // SAFETY: the caller guarantees the reads; the asm touches only its operands.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldr {v}, [{x}], #4",
                    "ldr {a}, [{w0}], #4",
                    "ldr {b}, [{w1}], #4",
                    "eors {a}, {a}, {v}",
                    "eors {b}, {b}, {v}",
                    "and {t}, {m55}, {a}, lsr #1",
                    "subs {a}, {a}, {t}",
                    "and {t}, {m33}, {a}, lsr #2",
                    "and {a}, {a}, {m33}",
                    "add {a}, {a}, {t}",
                    "add {a}, {a}, {a}, lsr #4",
                    "bic {a}, {a}, #0xf0f0f0f0",
                    "add {acc0}, {acc0}, {a}",
                    "and {t}, {m55}, {b}, lsr #1",
                    "subs {b}, {b}, {t}",
                    "and {t}, {m33}, {b}, lsr #2",
                    "and {b}, {b}, {m33}",
                    "add {b}, {b}, {t}",
                    "add {b}, {b}, {b}, lsr #4",
                    "bic {b}, {b}, #0xf0f0f0f0",
                    "add {acc1}, {acc1}, {b}",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    x = inout(reg) x => _,
                    w0 = inout(reg) w0 => _,
                    w1 = inout(reg) w1 => _,
                    n = inout(reg) n => _,
                    acc0 = inout(reg) 0u32 => acc0,
                    acc1 = inout(reg) 0u32 => acc1,
                    m55 = in(reg) 0x5555_5555u32,
                    m33 = in(reg) 0x3333_3333u32,
                    v = out(reg) _,
                    a = out(reg) _,
                    b = out(reg) _,
                    t = out(reg) _,
                    options(nostack, readonly),
                );
            }
            (acc0, acc1)
        }

        /// One group of three column words against two filters (`w` and `w + off`): nibble
        /// counts of each word added up (≤ 12), then both nibbles of each byte into the byte
        /// accumulators. 59 instructions (see [`xor_popcount2_by3`]).
        macro_rules! group3 {
            () => {
                concat!(
                    "ldr {x}, [{c}], #4\n",
                    "ldr {b}, [{w}, #{off}]\n",
                    "ldr {a}, [{w}], #4\n",
                    "eors {a}, {a}, {x}\n",
                    "eors {b}, {b}, {x}\n",
                    "and {t}, {a}, #0xaaaaaaaa\n",
                    "sub {a}, {a}, {t}, lsr #1\n",
                    "and {t}, {a}, #0xcccccccc\n",
                    "and {a}, {a}, #0x33333333\n",
                    "add {na}, {a}, {t}, lsr #2\n",
                    "and {t}, {b}, #0xaaaaaaaa\n",
                    "sub {b}, {b}, {t}, lsr #1\n",
                    "and {t}, {b}, #0xcccccccc\n",
                    "and {b}, {b}, #0x33333333\n",
                    "add {nb}, {b}, {t}, lsr #2\n",
                    "ldr {x}, [{c}], #4\n",
                    "ldr {b}, [{w}, #{off}]\n",
                    "ldr {a}, [{w}], #4\n",
                    "eors {a}, {a}, {x}\n",
                    "eors {b}, {b}, {x}\n",
                    "and {t}, {a}, #0xaaaaaaaa\n",
                    "sub {a}, {a}, {t}, lsr #1\n",
                    "and {t}, {a}, #0xcccccccc\n",
                    "and {a}, {a}, #0x33333333\n",
                    "add {na}, {na}, {a}\n",
                    "add {na}, {na}, {t}, lsr #2\n",
                    "and {t}, {b}, #0xaaaaaaaa\n",
                    "sub {b}, {b}, {t}, lsr #1\n",
                    "and {t}, {b}, #0xcccccccc\n",
                    "and {b}, {b}, #0x33333333\n",
                    "add {nb}, {nb}, {b}\n",
                    "add {nb}, {nb}, {t}, lsr #2\n",
                    "ldr {x}, [{c}], #4\n",
                    "ldr {b}, [{w}, #{off}]\n",
                    "ldr {a}, [{w}], #4\n",
                    "eors {a}, {a}, {x}\n",
                    "eors {b}, {b}, {x}\n",
                    "and {t}, {a}, #0xaaaaaaaa\n",
                    "sub {a}, {a}, {t}, lsr #1\n",
                    "and {t}, {a}, #0xcccccccc\n",
                    "and {a}, {a}, #0x33333333\n",
                    "add {na}, {na}, {a}\n",
                    "add {na}, {na}, {t}, lsr #2\n",
                    "and {t}, {b}, #0xaaaaaaaa\n",
                    "sub {b}, {b}, {t}, lsr #1\n",
                    "and {t}, {b}, #0xcccccccc\n",
                    "and {b}, {b}, #0x33333333\n",
                    "add {nb}, {nb}, {b}\n",
                    "add {nb}, {nb}, {t}, lsr #2\n",
                    "and {t}, {na}, #0xf0f0f0f0\n",
                    "and {na}, {na}, #0x0f0f0f0f\n",
                    "add {acc0}, {acc0}, {na}\n",
                    "add {acc0}, {acc0}, {t}, lsr #4\n",
                    "and {t}, {nb}, #0xf0f0f0f0\n",
                    "and {nb}, {nb}, #0x0f0f0f0f\n",
                    "add {acc1}, {acc1}, {nb}\n",
                    "add {acc1}, {acc1}, {t}, lsr #4\n",
                )
            };
        }

        /// The popcounts of `pairs` consecutive filter pairs of `N` words (N = 9 or 18: 3×3
        /// kernels over 32 or 64 channels) against one column, into `pc` (two per pair): the
        /// groups unrolled (no counter; the filter offset and the steps are immediates), the
        /// pair loop in the assembly too (one `STRD` per pair, ≈ 9 instructions of loop per
        /// pair).
        ///
        /// # Safety
        /// `x` points to `N` readable aligned words, `w` to `2 · pairs` filters of `4N` readable
        /// bytes each, `pc` to `2 · pairs` writable aligned words, and `pairs ≥ 1`.
        #[inline(always)]
        pub(super) unsafe fn pairs_by3<const N: usize>(
            x: *const u32,
            w: *const u8,
            pairs: usize,
            pc: *mut u32,
        ) {
            // SAFETY: the caller guarantees the reads and writes; the asm touches nothing else.
            unsafe {
                match N {
                    9 => core::arch::asm!(
                        "2:",
                        "movs {acc0}, #0",
                        "movs {acc1}, #0",
                        group3!(),
                        group3!(),
                        group3!(),
                        "movs {t}, #0",
                        "usad8 {acc0}, {acc0}, {t}",
                        "usad8 {acc1}, {acc1}, {t}",
                        "strd {acc0}, {acc1}, [{pc}], #8",
                        "add {w}, {w}, #{off}",
                        "sub {c}, {c}, #{off}",
                        "subs {n}, {n}, #1",
                        "bne 2b",
                        c = inout(reg) x => _,
                        w = inout(reg) w => _,
                        pc = inout(reg) pc => _,
                        n = inout(reg) pairs => _,
                        off = const 36,
                        acc0 = out(reg) _,
                        acc1 = out(reg) _,
                        x = out(reg) _,
                        a = out(reg) _,
                        b = out(reg) _,
                        t = out(reg) _,
                        na = out(reg) _,
                        nb = out(reg) _,
                        options(nostack),
                    ),
                    18 => core::arch::asm!(
                        "2:",
                        "movs {acc0}, #0",
                        "movs {acc1}, #0",
                        group3!(),
                        group3!(),
                        group3!(),
                        group3!(),
                        group3!(),
                        group3!(),
                        "movs {t}, #0",
                        "usad8 {acc0}, {acc0}, {t}",
                        "usad8 {acc1}, {acc1}, {t}",
                        "strd {acc0}, {acc1}, [{pc}], #8",
                        "add {w}, {w}, #{off}",
                        "sub {c}, {c}, #{off}",
                        "subs {n}, {n}, #1",
                        "bne 2b",
                        c = inout(reg) x => _,
                        w = inout(reg) w => _,
                        pc = inout(reg) pc => _,
                        n = inout(reg) pairs => _,
                        off = const 72,
                        acc0 = out(reg) _,
                        acc1 = out(reg) _,
                        x = out(reg) _,
                        a = out(reg) _,
                        b = out(reg) _,
                        t = out(reg) _,
                        na = out(reg) _,
                        nb = out(reg) _,
                        options(nostack),
                    ),
                    _ => {}
                }
            }
        }

        /// The popcounts of `x XOR w0` and `x XOR w1` over `3 · groups` words (1 ≤ groups ≤ 10),
        /// summed: per word one load of `x` and of each filter word, per filter `EOR` + 5 SWAR
        /// steps to nibble counts (≤ 4) with immediate masks (no mask registers); three words'
        /// nibbles add up (≤ 12) before both nibbles of each byte go into the byte accumulator
        /// (≤ 24 per group, ≤ 240 in all; two masks, two adds), and `USAD8` against zero sums
        /// the four bytes at the end. 59 instructions per 3 words and 2 filters (9.8 per word and
        /// filter, 11.5 for [`xor_popcount2`]).
        ///
        /// # Safety
        /// `x` points to `3 · groups` readable aligned words, `w0` and `w1` to `12 · groups`
        /// readable bytes each, and `1 ≤ groups ≤ 10`.
        #[inline(always)]
        pub(super) unsafe fn xor_popcount2_by3(
            x: *const u32,
            groups: usize,
            w0: *const u8,
            w1: *const u8,
        ) -> (u32, u32) {
            let (acc0, acc1): (u32, u32);
            let off = (w1 as usize).wrapping_sub(w0 as usize);
            // SAFETY: the caller guarantees the reads; the asm touches only its operands.
            unsafe {
                core::arch::asm!(
                    "2:",
                    // word 1: the nibble counts start the group
                    "ldr {x}, [{c}], #4",
                    "ldr {b}, [{w}, {off}]",
                    "ldr {a}, [{w}], #4",
                    "eors {a}, {a}, {x}",
                    "eors {b}, {b}, {x}",
                    "and {t}, {a}, #0xaaaaaaaa",
                    "sub {a}, {a}, {t}, lsr #1",
                    "and {t}, {a}, #0xcccccccc",
                    "and {a}, {a}, #0x33333333",
                    "add {na}, {a}, {t}, lsr #2",
                    "and {t}, {b}, #0xaaaaaaaa",
                    "sub {b}, {b}, {t}, lsr #1",
                    "and {t}, {b}, #0xcccccccc",
                    "and {b}, {b}, #0x33333333",
                    "add {nb}, {b}, {t}, lsr #2",
                    // words 2 and 3 add theirs
                    "ldr {x}, [{c}], #4",
                    "ldr {b}, [{w}, {off}]",
                    "ldr {a}, [{w}], #4",
                    "eors {a}, {a}, {x}",
                    "eors {b}, {b}, {x}",
                    "and {t}, {a}, #0xaaaaaaaa",
                    "sub {a}, {a}, {t}, lsr #1",
                    "and {t}, {a}, #0xcccccccc",
                    "and {a}, {a}, #0x33333333",
                    "add {na}, {na}, {a}",
                    "add {na}, {na}, {t}, lsr #2",
                    "and {t}, {b}, #0xaaaaaaaa",
                    "sub {b}, {b}, {t}, lsr #1",
                    "and {t}, {b}, #0xcccccccc",
                    "and {b}, {b}, #0x33333333",
                    "add {nb}, {nb}, {b}",
                    "add {nb}, {nb}, {t}, lsr #2",
                    "ldr {x}, [{c}], #4",
                    "ldr {b}, [{w}, {off}]",
                    "ldr {a}, [{w}], #4",
                    "eors {a}, {a}, {x}",
                    "eors {b}, {b}, {x}",
                    "and {t}, {a}, #0xaaaaaaaa",
                    "sub {a}, {a}, {t}, lsr #1",
                    "and {t}, {a}, #0xcccccccc",
                    "and {a}, {a}, #0x33333333",
                    "add {na}, {na}, {a}",
                    "add {na}, {na}, {t}, lsr #2",
                    "and {t}, {b}, #0xaaaaaaaa",
                    "sub {b}, {b}, {t}, lsr #1",
                    "and {t}, {b}, #0xcccccccc",
                    "and {b}, {b}, #0x33333333",
                    "add {nb}, {nb}, {b}",
                    "add {nb}, {nb}, {t}, lsr #2",
                    // nibbles (≤ 12): both of each byte added into the byte accumulator
                    "and {t}, {na}, #0xf0f0f0f0",
                    "and {na}, {na}, #0x0f0f0f0f",
                    "add {acc0}, {acc0}, {na}",
                    "add {acc0}, {acc0}, {t}, lsr #4",
                    "and {t}, {nb}, #0xf0f0f0f0",
                    "and {nb}, {nb}, #0x0f0f0f0f",
                    "add {acc1}, {acc1}, {nb}",
                    "add {acc1}, {acc1}, {t}, lsr #4",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    "movs {t}, #0",
                    "usad8 {acc0}, {acc0}, {t}",
                    "usad8 {acc1}, {acc1}, {t}",
                    c = inout(reg) x => _,
                    w = inout(reg) w0 => _,
                    off = in(reg) off,
                    n = inout(reg) groups => _,
                    acc0 = inout(reg) 0u32 => acc0,
                    acc1 = inout(reg) 0u32 => acc1,
                    x = out(reg) _,
                    a = out(reg) _,
                    b = out(reg) _,
                    t = out(reg) _,
                    na = out(reg) _,
                    nb = out(reg) _,
                    options(nostack, readonly),
                );
            }
            (acc0, acc1)
        }
    }

    /// The int8 outputs of up to 32 channels from their popcounts; a function of its own, so
    /// that the requantization has the registers the popcount kernel's caller spills.
    #[inline(never)]
    fn int8_outs<'p>(
        outs: &mut [i8],
        pc: &[u32],
        params: &mut impl Iterator<Item = (((&'p u8, i32), i32), i8)>,
        k: i32,
        zp_out: i32,
        act_min: i8,
        act_max: i8,
    ) {
        for (out, (&p, (((&fl, b), m), s))) in outs.iter_mut().zip(pc.iter().zip(params)) {
            let dot = k.wrapping_sub(2 * p as i32);
            let dot = if fl & 1 == 1 { dot.wrapping_neg() } else { dot };
            let acc = b.wrapping_add(dot);
            *out = rq_out(acc, m, i32::from(s), zp_out, act_min, act_max);
        }
    }

    /// `requantize_out` inline, in one 64-bit expression: binary int8 outputs often have real
    /// multipliers of 0.5 or more (`Rq`'s cold general path). Clamping the 64-bit value plus
    /// the zero point to `[min, max]` (int8) gives what clamping to i32, the saturating add and
    /// the clamp give.
    #[inline(always)]
    fn rq_out(acc: i32, m: i32, shift: i32, zp: i32, min: i8, max: i8) -> i8 {
        let total = 31 - shift.clamp(-31, 30); // in [1, 62]
        let v = (i64::from(acc) * i64::from(m) + (1i64 << (total - 1))) >> total;
        (v + i64::from(zp)).max(i64::from(min)).min(i64::from(max)) as i8
    }

    /// Sum of the four bytes of `v`.
    #[inline(always)]
    fn hsum(v: u32) -> u32 {
        let s = (v & 0x00ff_00ff) + ((v >> 8) & 0x00ff_00ff);
        (s & 0xffff) + (s >> 16)
    }

    /// Runs the op on the fast path; `Ok(false)` when it does not apply (scratch or tensors not
    /// word-aligned, scratch too short), so the caller runs the reference.
    pub(crate) fn conv(
        prm: &Params<'_>,
        g: &Geom,
        x: &[i8],
        y: &mut [i8],
        zp_out: i32,
        scratch: &mut [u8],
    ) -> Result<bool> {
        let wc = words(g.ic);
        let taps = g.kh * g.kw;

        // SAFETY: any bytes are valid u32 words; `align_to_mut` only hands out the aligned middle.
        let (head, scratch_words, _) = unsafe { scratch.align_to_mut::<u32>() };
        if !head.is_empty() {
            return Ok(false);
        }
        // The packed input: the tensor itself, or the int8 input binarized into the scratch.
        let (input, col): (&[u32], &mut [u32]) = if prm.input_thresholds.is_empty() {
            // SAFETY: as above, for a shared borrow.
            let (h, words_in, _) = unsafe { as_bytes(x).align_to::<u32>() };
            if !h.is_empty() || words_in.len() < g.ih * g.iw * wc {
                return Ok(false);
            }
            (words_in, scratch_words)
        } else {
            let n = g.ih * g.iw * wc;
            if scratch_words.len() < n {
                return Ok(false);
            }
            let (packed, col) = scratch_words.split_at_mut(n);
            #[cfg(all(target_arch = "arm", tinykd_dsp))]
            let done = binarize_simd(x, g, &prm.input_thresholds, packed);
            #[cfg(not(all(target_arch = "arm", tinykd_dsp)))]
            let done = false;
            if !done {
                for (i, w) in packed.iter_mut().enumerate() {
                    *w = input_word(x, g, &prm.input_thresholds, i / wc, i % wc)?;
                }
            }
            (&*packed, col)
        };
        // One output pixel whose window is exactly the input (a dense layer): the input is the
        // column; otherwise gather each pixel's taps.
        let one_pixel = y.len()
            == match prm.output {
                BinaryOutput::Packed { .. } => words(g.oc) * 4,
                BinaryOutput::Int8 { .. } => g.oc,
            };
        let is_dense =
            one_pixel && g.kh == g.ih && g.kw == g.iw && g.pt == 0 && g.pl == 0 && g.ow == 1;
        let col_len = taps * wc;
        if !is_dense && col.len() < col_len {
            return Ok(false);
        }
        let k = g.k();
        let weights = prm.weights.bytes();
        let per_out = col_len * 4;
        let out_stride = match prm.output {
            BinaryOutput::Packed { .. } => words(g.oc) * 4,
            BinaryOutput::Int8 { .. } => g.oc,
        };
        let dsp = cfg!(all(target_arch = "arm", tinykd_dsp));
        let pre = match prm.output {
            BinaryOutput::Packed { thresholds } if dsp && !prm.sliced => {
                Pre::Packed(PackedPre::new(thresholds.bytes(), prm.flip, k))
            }
            BinaryOutput::Int8 { .. } if dsp => {
                Int8Pre::new(prm, k, g.oc).map_or(Pre::None, Pre::Int8)
            }
            _ => Pre::None,
        };
        if prm.sliced {
            // The column, then one group's weights (SPEC §5.1).
            let Some((col, wbuf)) = col.split_at_mut_checked(col_len) else {
                return Ok(false);
            };
            let Some(wbuf) = wbuf.get_mut(..32 * col_len) else {
                return Ok(false);
            };
            let columns = Columns {
                g,
                input,
                is_dense,
                col_len,
            };
            sliced::run(prm, &columns, col, wbuf, y, out_stride, zp_out, &pre)?;
            return Ok(true);
        }
        let columns = Columns {
            g,
            input,
            is_dense,
            col_len,
        };
        let mut pc = [0u32; 32]; // popcounts of up to 32 channels of one pixel
        for (px, out_px) in y.chunks_exact_mut(out_stride.max(1)).enumerate() {
            let column = columns.of(px, col)?;
            fast_epilogue(
                prm, k, zp_out, out_px, column, weights, per_out, &pre, &mut pc,
            )?;
        }
        Ok(true)
    }

    /// Where the column of each output pixel comes from: the packed input itself (a window
    /// that is the whole input), or the taps gathered into the scratch.
    pub(crate) struct Columns<'a> {
        g: &'a Geom,
        input: &'a [u32],
        is_dense: bool,
        col_len: usize,
    }

    impl<'a> Columns<'a> {
        /// The column of output pixel `px` (gathered into `col` unless dense). Inline where the
        /// kernels are fast; one copy for both layouts' loops elsewhere (Armv6-M flash).
        #[cfg_attr(all(target_arch = "arm", tinykd_dsp), inline(always))]
        #[cfg_attr(not(all(target_arch = "arm", tinykd_dsp)), inline(never))]
        fn of<'c>(&self, px: usize, col: &'c mut [u32]) -> Result<&'c [u32]>
        where
            'a: 'c,
        {
            let (g, wc) = (self.g, words(self.g.ic));
            if self.is_dense {
                return need(self.input.get(..self.col_len));
            }
            let (oy, ox) = (px / g.ow, px % g.ow);
            let col = need(col.get_mut(..self.col_len))?;
            let (iy0, _, ny) = super::clip(oy, g.sh, g.pt, g.kh, g.ih);
            let (ix0, _, nx) = super::clip(ox, g.sw, g.pl, g.kw, g.iw);
            if (ny, nx) == (g.kh, g.kw) {
                // A window without padding: kh runs of kw·wc contiguous words.
                let run = g.kw * wc;
                for (ky, dst) in col.chunks_exact_mut(run.max(1)).enumerate() {
                    let src = ((iy0 + ky) * g.iw + ix0) * wc;
                    for (d, s) in dst.iter_mut().zip(need(self.input.get(src..src + run))?) {
                        *d = *s;
                    }
                }
            } else {
                gather_padded(g, self.input, col, oy, ox)?;
            }
            Ok(col)
        }
    }

    /// One output pixel's column where it lies (see [`Columns::window`]): `runs` runs of `run`
    /// words from the start of `src`, `gap` words apart.
    pub(crate) struct Window<'c> {
        src: &'c [u32],
        runs: usize,
        run: usize,
        gap: usize,
    }

    impl<'a> Columns<'a> {
        /// The column of output pixel `px` without copying it where the window has no padding
        /// (its `kh` rows are runs of `kw · wc` words in the input); gathered into `col` (one
        /// run) otherwise.
        #[inline(always)]
        fn window<'c>(&self, px: usize, col: &'c mut [u32]) -> Result<Window<'c>>
        where
            'a: 'c,
        {
            let (g, wc) = (self.g, words(self.g.ic));
            let whole = |src| Window {
                src,
                runs: 1,
                run: self.col_len,
                gap: 0,
            };
            if self.is_dense {
                return Ok(whole(need(self.input.get(..self.col_len))?));
            }
            let (oy, ox) = (px / g.ow, px % g.ow);
            let (iy0, _, ny) = super::clip(oy, g.sh, g.pt, g.kh, g.ih);
            let (ix0, _, nx) = super::clip(ox, g.sw, g.pl, g.kw, g.iw);
            if (ny, nx) == (g.kh, g.kw) {
                let (run, row) = (g.kw * wc, g.iw * wc);
                let start = (iy0 * g.iw + ix0) * wc;
                let len = (g.kh.max(1) - 1) * row + run;
                return Ok(Window {
                    src: need(self.input.get(start..start + len))?,
                    runs: g.kh,
                    run,
                    gap: row - run,
                });
            }
            let col = need(col.get_mut(..self.col_len))?;
            gather_padded(g, self.input, col, oy, ox)?;
            Ok(whole(col))
        }
    }

    pub(crate) mod sliced {
        //! The bit-sliced kernels of `BinaryConv2dSliced` (SPEC §3.3). Its weights hold, per
        //! group of 32 filters and per input bit position `i` (tap, channel), one word `W_i`
        //! whose bit `j` is filter `j`'s weight; the *vertical* count of a set of such words is
        //! 32 counts at once, kept as counter planes (plane `b` = bit `b` of the 32 counts) by
        //! carry-save adders (Harley-Seal in bit-sliced form, 5 logic operations per full
        //! adder).
        //!
        //! On Cortex-M4/M7 the **selection kernel** counts only the words of the column's set
        //! bits, or of its clear ones where those are fewer (at most half the column):
        //! `p_j = T_j + n1 − 2 S_j` or `2 S_j + n1 − T_j` ([`SelectPre`]). Per column nibble a
        //! `TBB` case appends the selected words to a list, Harley-Seal adds the list: about
        //! 4 instructions per input bit for 32 filters (the mismatch words `W_i XOR bcast(x_i)`
        //! of every bit took 7.2). A packed output compares `2S` plus per-group constants with
        //! a scalar by a bit-sliced borrow chain (the output word directly); an int8 output
        //! reads `S` back out of the planes. Elsewhere (and for columns past 31 words) the
        //! group's weights are transposed back to rows once per layer and counted with one XOR
        //! and popcount per word and filter. The layer runs group by group: the group's weights
        //! are first copied word-aligned into the scratch (SPEC §5.1).

        use super::{rq_out, Columns, Params, Pre as FastPre, Window};
        use crate::error::{need, Result};
        use tinykd_format::BinaryOutput;

        /// Most counter planes kept (the selection kernel's sums and `T` use 10).
        const MAX_PLANES: usize = 16;

        /// The Harley-Seal step in Thumb-2 (Cortex-M3/M4/M7): 16 input bits per `asm!` block,
        /// with the planes ones … eights, the input word, the weight pointer and six temporaries
        /// in the 12 registers there are; per two bits one `LDRD` of the two weight words, per
        /// bit `SBFX` + `EOR` (the mismatch word), per full adder 5 logic instructions: 115
        /// instructions per 16 bits (7.2 per bit and 32 filters).
        #[cfg(all(target_arch = "arm", tinykd_dsp))]
        mod thumb2 {

            /// Full adder `(acc, a) ← (acc ⊕ a ⊕ b, maj(acc, a, b))`: the sum into `acc`, the
            /// carry into `a`; `u` is clobbered.
            macro_rules! fa {
                ($acc:literal, $a:literal, $b:literal) => {
                    concat!(
                        "eor {u}, {",
                        $acc,
                        "}, {",
                        $a,
                        "}\n",
                        "and {",
                        $a,
                        "}, {",
                        $acc,
                        "}, {",
                        $a,
                        "}\n",
                        "eor {",
                        $acc,
                        "}, {u}, {",
                        $b,
                        "}\n",
                        "and {u}, {u}, {",
                        $b,
                        "}\n",
                        "orr {",
                        $a,
                        "}, {",
                        $a,
                        "}, {u}\n",
                    )
                };
            }

            /// The word in `r` added into the planes `ones` … `eights` by half adders; the carry
            /// out of `eights` is left in `r` (`d` is clobbered).
            macro_rules! ripple4 {
                () => {
                    concat!(
                        "and {d}, {ones}, {r}\n",
                        "eor {ones}, {ones}, {r}\n",
                        "and {r}, {twos}, {d}\n",
                        "eor {twos}, {twos}, {d}\n",
                        "and {d}, {fours}, {r}\n",
                        "eor {fours}, {fours}, {r}\n",
                        "and {r}, {eights}, {d}\n",
                        "eor {eights}, {eights}, {d}\n",
                    )
                };
            }

            /// Bits `k0`, `k1`: two weight words, their mismatch words, one full adder into
            /// `ones`; the carry (weight 2) in `d`.
            macro_rules! pair {
                ($d:literal; $k0:literal, $k1:literal) => {
                    concat!(
                        "ldrd {",
                        $d,
                        "}, {b}, [{w}], #8\n",
                        "sbfx {u}, {x}, #",
                        $k0,
                        ", #1\n",
                        "eor {",
                        $d,
                        "}, {",
                        $d,
                        "}, {u}\n",
                        "sbfx {u}, {x}, #",
                        $k1,
                        ", #1\n",
                        "eor {b}, {b}, {u}\n",
                        fa!("ones", $d, "b"),
                    )
                };
            }

            /// Four bits: the carry of weight 4 in `d`.
            macro_rules! quad {
                ($p:ident; $d:literal; $k0:literal, $k1:literal, $k2:literal, $k3:literal) => {
                    concat!($p!($d; $k0, $k1), $p!("a"; $k2, $k3), fa!("twos", $d, "a"))
                };
            }

            /// Eight bits: the carry of weight 8 in `d`.
            macro_rules! oct {
                ($p:ident; $d:literal; $k0:literal, $k1:literal, $k2:literal, $k3:literal,
                 $k4:literal, $k5:literal, $k6:literal, $k7:literal) => {
                    concat!(
                        quad!($p; $d; $k0, $k1, $k2, $k3),
                        quad!($p; "q"; $k4, $k5, $k6, $k7),
                        fa!("fours", $d, "q"),
                    )
                };
            }

            /// Sixteen bits: the carry of weight 16 in `d`.
            macro_rules! hex {
                ($p:ident; $d:literal; $k0:literal, $k1:literal, $k2:literal, $k3:literal,
                 $k4:literal, $k5:literal, $k6:literal, $k7:literal,
                 $k8:literal, $k9:literal, $k10:literal, $k11:literal,
                 $k12:literal, $k13:literal, $k14:literal, $k15:literal) => {
                    concat!(
                        oct!($p; $d; $k0, $k1, $k2, $k3, $k4, $k5, $k6, $k7),
                        oct!($p; "r"; $k8, $k9, $k10, $k11, $k12, $k13, $k14, $k15),
                        fa!("eights", $d, "r"),
                    )
                };
            }

            /// The counts of one column of `n` words (1 ≤ n ≤ 31) against one group's
            /// weights, as 10 planes into `planes[..10]`: per column word two 16-bit blocks,
            /// their carries of weight 16 into the sixteens plane (one full adder), and the
            /// carry of weight 32 into `c32`; after the column, the `n` carries of weight 32
            /// ripple into five planes (half adders, at most 31 of them). The column pointer,
            /// the word count, the sixteens and a carry live on the stack (12 registers).
            ///
            /// # Safety
            /// `col` points to `n` readable words, `w` to `32 · n` readable aligned words,
            /// `c32` to `n` writable words, `planes` to 10 writable aligned words;
            /// `1 ≤ n ≤ 31`.
            #[inline(always)]
            pub(super) unsafe fn column(
                col: *const u32,
                n: usize,
                w: *const u32,
                c32: *mut u32,
                planes: *mut u32,
            ) {
                // SAFETY: the caller guarantees the reads and writes; the stack frame is the
                // asm's own (28 bytes, restored).
                unsafe {
                    core::arch::asm!(
                        "sub sp, sp, #28",
                        "str {x}, [sp, #0]",
                        "str {d}, [sp, #4]",
                        "str {r}, [sp, #8]",
                        "str {b}, [sp, #20]",
                        "str {d}, [sp, #24]",
                        "movs {a}, #0",
                        "str {a}, [sp, #16]",
                        "movs {ones}, #0",
                        "movs {twos}, #0",
                        "movs {fours}, #0",
                        "movs {eights}, #0",
                        "2:",
                        "ldr {u}, [sp, #0]",
                        "ldr {x}, [{u}], #4",
                        "str {u}, [sp, #0]",
                        hex!(pair; "d"; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                        "str {d}, [sp, #12]",
                        hex!(pair; "d"; 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31),
                        "ldr {r}, [sp, #12]",
                        "ldr {a}, [sp, #16]",
                        fa!("a", "r", "d"),
                        "str {a}, [sp, #16]",
                        "ldr {q}, [sp, #8]",
                        "str {r}, [{q}], #4",
                        "str {q}, [sp, #8]",
                        "ldr {u}, [sp, #4]",
                        "subs {u}, {u}, #1",
                        "str {u}, [sp, #4]",
                        "bne 2b",
                        // The low planes out.
                        "ldr {q}, [sp, #20]",
                        "ldr {a}, [sp, #16]",
                        "strd {ones}, {twos}, [{q}, #0]",
                        "strd {fours}, {eights}, [{q}, #8]",
                        "str {a}, [{q}, #16]",
                        // The carries of weight 32: half adders into 32 … 512.
                        "ldr {w}, [sp, #8]",
                        "ldr {x}, [sp, #24]",
                        "sub {w}, {w}, {x}, lsl #2",
                        "movs {ones}, #0",
                        "movs {twos}, #0",
                        "movs {fours}, #0",
                        "movs {eights}, #0",
                        "movs {a}, #0",
                        "3:",
                        "ldr {r}, [{w}], #4",
                        ripple4!(),
                        "eor {a}, {a}, {r}",
                        "subs {x}, {x}, #1",
                        "bne 3b",
                        "strd {ones}, {twos}, [{q}, #20]",
                        "strd {fours}, {eights}, [{q}, #28]",
                        "str {a}, [{q}, #36]",
                        "add sp, sp, #28",
                        x = inout(reg) col => _,
                        d = inout(reg) n => _,
                        r = inout(reg) c32 => _,
                        b = inout(reg) planes => _,
                        w = inout(reg) w => _,
                        ones = out(reg) _,
                        twos = out(reg) _,
                        fours = out(reg) _,
                        eights = out(reg) _,
                        q = out(reg) _,
                        a = out(reg) _,
                        u = out(reg) _,
                    );
                }
            }

            /// Bits `k0`, `k1` of the selection list: two weight words as they are (no
            /// mismatch word: the list holds only the selected ones), one full adder into `ones`.
            macro_rules! pair_plain {
                ($d:literal; $k0:literal, $k1:literal) => {
                    concat!("ldrd {", $d, "}, {b}, [{w}], #8\n", fa!("ones", $d, "b"))
                };
            }

            /// One nibble of the column word in `r8` (bits `sh … sh + 3`): `TBB` on its value to
            /// one of 16 cases, each loading the weight words of its set bits (byte offsets
            /// `o0 … o3` from `r4`) into `r0 …` and appending them to the list at `r5`.
            macro_rules! nib {
                ($sh:literal; $o0:literal, $o1:literal, $o2:literal, $o3:literal) => {
                    concat!(
                        "ubfx r12, r8, #", $sh, ", #4\n",
                        "tbb [pc, r12]\n",
                        "1:\n",
                        ".byte (20f-1b)/2, (21f-1b)/2, (22f-1b)/2, (23f-1b)/2\n",
                        ".byte (24f-1b)/2, (25f-1b)/2, (26f-1b)/2, (27f-1b)/2\n",
                        ".byte (28f-1b)/2, (29f-1b)/2, (30f-1b)/2, (31f-1b)/2\n",
                        ".byte (32f-1b)/2, (33f-1b)/2, (34f-1b)/2, (35f-1b)/2\n",
                        "20:\n", "b 40f\n",
                        "21:\n", nib!(@ld r0, $o0), "stm r5!, {{r0}}\n", "b 40f\n",
                        "22:\n", nib!(@ld r0, $o1), "stm r5!, {{r0}}\n", "b 40f\n",
                        "23:\n", nib!(@ld r0, $o0), nib!(@ld r1, $o1), "stm r5!, {{r0, r1}}\n", "b 40f\n",
                        "24:\n", nib!(@ld r0, $o2), "stm r5!, {{r0}}\n", "b 40f\n",
                        "25:\n", nib!(@ld r0, $o0), nib!(@ld r1, $o2), "stm r5!, {{r0, r1}}\n", "b 40f\n",
                        "26:\n", nib!(@ld r0, $o1), nib!(@ld r1, $o2), "stm r5!, {{r0, r1}}\n", "b 40f\n",
                        "27:\n", nib!(@ld r0, $o0), nib!(@ld r1, $o1), nib!(@ld r2, $o2),
                        "stm r5!, {{r0, r1, r2}}\n", "b 40f\n",
                        "28:\n", nib!(@ld r0, $o3), "stm r5!, {{r0}}\n", "b 40f\n",
                        "29:\n", nib!(@ld r0, $o0), nib!(@ld r1, $o3), "stm r5!, {{r0, r1}}\n", "b 40f\n",
                        "30:\n", nib!(@ld r0, $o1), nib!(@ld r1, $o3), "stm r5!, {{r0, r1}}\n", "b 40f\n",
                        "31:\n", nib!(@ld r0, $o0), nib!(@ld r1, $o1), nib!(@ld r2, $o3),
                        "stm r5!, {{r0, r1, r2}}\n", "b 40f\n",
                        "32:\n", nib!(@ld r0, $o2), nib!(@ld r1, $o3), "stm r5!, {{r0, r1}}\n", "b 40f\n",
                        "33:\n", nib!(@ld r0, $o0), nib!(@ld r1, $o2), nib!(@ld r2, $o3),
                        "stm r5!, {{r0, r1, r2}}\n", "b 40f\n",
                        "34:\n", nib!(@ld r0, $o1), nib!(@ld r1, $o2), nib!(@ld r2, $o3),
                        "stm r5!, {{r0, r1, r2}}\n", "b 40f\n",
                        "35:\n", nib!(@ld r0, $o0), nib!(@ld r1, $o1), nib!(@ld r2, $o2),
                        nib!(@ld r3, $o3), "stm r5!, {{r0, r1, r2, r3}}\n",
                        "40:\n",
                    )
                };
                (@ld $r:ident, $o:literal) => {
                    concat!("ldr ", stringify!($r), ", [r4, #", $o, "]\n")
                };
            }

            /// The selection of one output pixel's column, read where it lies: `runs` runs of
            /// `run` words from `src`, `gap` words apart (the rows of a window; one run for a
            /// gathered column). First the column's set bits `n1` (SWAR popcount, `USADA8`);
            /// then, with `inv` = 0 if `2·n1 ≤ half·2` (the set bits are the fewer) else all
            /// ones, the weight words `W_i` of the bits `i` set in `word XOR inv` appended to
            /// `list` in order (one `TBB` case per nibble: 1.5 instructions per column bit at
            /// half the bits selected), and 16 zero words after them (the padding of the last
            /// block, not counted). Returns the end of the list, `n1` and `inv`.
            ///
            /// # Safety
            /// `src` points to `(runs − 1)·(run + gap) + run` readable words, `w` to
            /// `32 · runs · run` readable words, `list` to as many writable words as there are
            /// selected bits, plus 16; `runs, run ≥ 1`.
            #[inline(always)]
            pub(super) unsafe fn select(
                src: *const u32,
                runs: usize,
                run: usize,
                gap: usize,
                half: u32,
                w: *const u32,
                list: *mut u32,
            ) -> (*mut u32, u32, u32) {
                let (end, n1, inv): (*mut u32, u32, u32);
                // SAFETY: the caller guarantees the reads and writes; the stack frame is the
                // asm's own (24 bytes, restored).
                unsafe {
                    core::arch::asm!(
                        "sub sp, sp, #24",
                        "str r9, [sp, #0]",
                        "str r10, [sp, #4]",
                        "str lr, [sp, #8]",
                        "lsls r12, r12, #2",
                        "str r12, [sp, #12]",
                        "str r8, [sp, #16]",
                        // Pass 1: the set bits.
                        "mov r0, #0x55555555",
                        "mov r1, #0x33333333",
                        "mov r2, #0x0f0f0f0f",
                        "movs r3, #0",
                        "mov r11, #0",
                        "3:",
                        "ldr lr, [sp, #8]",
                        "4:",
                        "ldr r8, [r9], #4",
                        "and r12, r0, r8, lsr #1",
                        "sub r8, r8, r12",
                        "and r12, r1, r8, lsr #2",
                        "and r8, r8, r1",
                        "add r8, r8, r12",
                        "add r8, r8, r8, lsr #4",
                        "and r8, r8, r2",
                        "usada8 r3, r8, r11, r3",
                        "subs lr, lr, #1",
                        "bne 4b",
                        "ldr r12, [sp, #12]",
                        "add r9, r9, r12",
                        "subs r10, r10, #1",
                        "bne 3b",
                        "str r3, [sp, #20]",
                        "ldr r12, [sp, #16]",
                        "cmp r3, r12",
                        "it hi",
                        "movhi r11, #0xffffffff",
                        "ldr r9, [sp, #0]",
                        "ldr r10, [sp, #4]",
                        // Pass 2: the selection.
                        "5:",
                        "ldr lr, [sp, #8]",
                        "2:",
                        "ldr r8, [r9], #4",
                        "eor r8, r8, r11",
                        nib!(0; 0, 4, 8, 12),
                        nib!(4; 16, 20, 24, 28),
                        nib!(8; 32, 36, 40, 44),
                        nib!(12; 48, 52, 56, 60),
                        nib!(16; 64, 68, 72, 76),
                        nib!(20; 80, 84, 88, 92),
                        nib!(24; 96, 100, 104, 108),
                        nib!(28; 112, 116, 120, 124),
                        "adds r4, r4, #128",
                        "subs lr, lr, #1",
                        "bne 2b",
                        "ldr r12, [sp, #12]",
                        "add r9, r9, r12",
                        "subs r10, r10, #1",
                        "bne 5b",
                        // The padding of the last block.
                        "movs r0, #0",
                        "movs r1, #0",
                        "movs r2, #0",
                        "movs r3, #0",
                        "mov r8, r5",
                        "stm r8!, {{r0, r1, r2, r3}}",
                        "stm r8!, {{r0, r1, r2, r3}}",
                        "stm r8!, {{r0, r1, r2, r3}}",
                        "stm r8!, {{r0, r1, r2, r3}}",
                        "ldr r3, [sp, #20]",
                        "add sp, sp, #24",
                        inout("r9") src => _,
                        inout("r10") runs => _,
                        inout("lr") run => _,
                        inout("r12") gap => _,
                        inout("r8") half => _,
                        inout("r4") w => _,
                        inout("r5") list => end,
                        out("r11") inv,
                        out("r0") _,
                        out("r1") _,
                        out("r2") _,
                        out("r3") n1,
                    );
                }
                (end, n1, inv)
            }

            /// Lane `j` and `j + 16` of planes 0 … 9 (r0 … r5, r8 … r10, and plane 9 on the
            /// stack) as the two halfwords of `r12`, stored to the halfword lanes at the pointer
            /// on the stack.
            macro_rules! lane {
                ($j:literal, $lo:literal, $hi:literal) => {
                    concat!(
                        "and r12, r11, r0, lsr #", $j, "\n",
                        lane!(@p r1, 1, $j), lane!(@p r2, 2, $j), lane!(@p r3, 3, $j),
                        lane!(@p r4, 4, $j), lane!(@p r5, 5, $j), lane!(@p r8, 6, $j),
                        lane!(@p r9, 7, $j), lane!(@p r10, 8, $j),
                        "ldr lr, [sp, #4]\n",
                        lane!(@p lr, 9, $j),
                        "ldr lr, [sp, #0]\n",
                        "strh r12, [lr, #", $lo, "]\n",
                        "lsrs r12, r12, #16\n",
                        "strh r12, [lr, #", $hi, "]\n",
                    )
                };
                (@p $r:ident, $b:literal, $j:literal) => {
                    concat!(
                        "and lr, r11, ", stringify!($r), ", lsr #", $j, "\n",
                        "orr r12, r12, lr, lsl #", $b, "\n",
                    )
                };
            }

            /// The 32 counts of planes 0 … 9 (counts < 1024) as halfword lanes: 24 instructions
            /// per two lanes.
            ///
            /// # Safety
            /// `planes` points to 10 readable words, `lanes` to 32 writable halfwords.
            #[inline(always)]
            pub(super) unsafe fn unpack10(planes: *const u32, lanes: *mut u16) {
                // SAFETY: the caller guarantees the reads and writes; the stack frame is the
                // asm's own (8 bytes, restored).
                unsafe {
                    core::arch::asm!(
                        "ldr lr, [r12, #36]",
                        "sub sp, sp, #8",
                        "str r11, [sp, #0]",
                        "str lr, [sp, #4]",
                        "ldm r12, {{r0, r1, r2, r3, r4, r5, r8, r9, r10}}",
                        "mov r11, #0x00010001",
                        lane!(0, 0, 32), lane!(1, 2, 34), lane!(2, 4, 36), lane!(3, 6, 38),
                        lane!(4, 8, 40), lane!(5, 10, 42), lane!(6, 12, 44), lane!(7, 14, 46),
                        lane!(8, 16, 48), lane!(9, 18, 50), lane!(10, 20, 52), lane!(11, 22, 54),
                        lane!(12, 24, 56), lane!(13, 26, 58), lane!(14, 28, 60), lane!(15, 30, 62),
                        "add sp, sp, #8",
                        inout("r12") planes => _,
                        inout("r11") lanes => _,
                        out("r0") _,
                        out("r1") _,
                        out("r2") _,
                        out("r3") _,
                        out("r4") _,
                        out("r5") _,
                        out("r8") _,
                        out("r9") _,
                        out("r10") _,
                        out("lr") _,
                    );
                }
            }

            /// The vertical counts of the `16 · blocks` words of `list` (blocks ≥ 1) as 10
            /// planes into `planes[..10]`: Harley-Seal per 16 words (83 instructions), the
            /// block's carry of weight 16 stored into its own last (consumed) word, and after
            /// the list those carries rippled into planes 16 … 512.
            ///
            /// # Safety
            /// `list` points to `16 · blocks` readable and writable aligned words, `planes`
            /// to 10 writable aligned words; `1 ≤ blocks ≤ 63`.
            #[inline(always)]
            pub(super) unsafe fn sum_list(list: *mut u32, blocks: usize, planes: *mut u32) {
                // SAFETY: the caller guarantees the reads and writes; the stack frame is the
                // asm's own (8 bytes, restored).
                unsafe {
                    core::arch::asm!(
                        "sub sp, sp, #8",
                        "str {w}, [sp, #0]",
                        "str {b}, [sp, #4]",
                        "add {x}, {w}, {x}, lsl #6",
                        "movs {ones}, #0",
                        "movs {twos}, #0",
                        "movs {fours}, #0",
                        "movs {eights}, #0",
                        "2:",
                        hex!(pair_plain; "d"; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                        "str {d}, [{w}, #-4]",
                        "cmp {w}, {x}",
                        "bne 2b",
                        // The low planes out, then the carries of weight 16: half adders into
                        // 16 … 512.
                        "ldr {q}, [sp, #4]",
                        "strd {ones}, {twos}, [{q}, #0]",
                        "strd {fours}, {eights}, [{q}, #8]",
                        "ldr {w}, [sp, #0]",
                        "adds {w}, {w}, #60",
                        "adds {x}, {x}, #60",
                        "movs {ones}, #0",
                        "movs {twos}, #0",
                        "movs {fours}, #0",
                        "movs {eights}, #0",
                        "movs {a}, #0",
                        "movs {b}, #0",
                        "3:",
                        "ldr {r}, [{w}], #64",
                        ripple4!(),
                        "and {d}, {a}, {r}",
                        "eor {a}, {a}, {r}",
                        "eor {b}, {b}, {d}",
                        "cmp {w}, {x}",
                        "bne 3b",
                        "strd {ones}, {twos}, [{q}, #16]",
                        "strd {fours}, {eights}, [{q}, #24]",
                        "strd {a}, {b}, [{q}, #32]",
                        "add sp, sp, #8",
                        w = inout(reg) list => _,
                        x = inout(reg) blocks => _,
                        b = inout(reg) planes => _,
                        d = out(reg) _,
                        ones = out(reg) _,
                        twos = out(reg) _,
                        fours = out(reg) _,
                        eights = out(reg) _,
                        q = out(reg) _,
                        a = out(reg) _,
                        r = out(reg) _,
                        u = out(reg) _,
                    );
                }
            }
        }

        /// Whether the Thumb-2 kernels run here ([`select_planes`], and [`planes_of`] for the
        /// groups' `T`): columns of 1..=31 words.
        #[inline(always)]
        fn asm_path(n: usize) -> bool {
            cfg!(all(target_arch = "arm", tinykd_dsp)) && (1..=31).contains(&n)
        }

        /// The 32 counts `p_j` of one output pixel's `column` against one group's weights
        /// (`32 · column.len()` aligned words), as 10 counter planes (the Thumb-2 kernel; only
        /// where [`asm_path`] holds).
        #[inline(always)]
        fn planes_of(
            column: &[u32],
            wg: &[u32],
            planes: &mut [u32; MAX_PLANES],
            c32: &mut [u32; 31],
        ) {
            #[cfg(not(all(target_arch = "arm", tinykd_dsp)))]
            let _ = (column, wg, planes, c32);
            #[cfg(all(target_arch = "arm", tinykd_dsp))]
            {
                let n = column.len();
                if (1..=31).contains(&n) && wg.len() >= 32 * n {
                    // SAFETY: `column` has n ≤ 31 words, `wg` at least 32n aligned words, `c32`
                    // 31 words, `planes` 16 ≥ 10 words.
                    unsafe {
                        thumb2::column(
                            column.as_ptr(),
                            n,
                            wg.as_ptr(),
                            c32.as_mut_ptr(),
                            planes.as_mut_ptr(),
                        );
                    }
                }
            }
        }

        /// Transposes a 32×32 bit matrix in place: bit `k` of word `j` becomes bit `j` of word
        /// `k` (Hacker's Delight 7-3: five rounds of block swaps; the word order reversed on
        /// both sides for its most-significant-bit-first numbering).
        pub(crate) fn transpose32(a: &mut [u32; 32]) {
            a.reverse();
            let (mut j, mut m) = (16usize, 0x0000_ffffu32);
            while j != 0 {
                let mut k = 0usize;
                while k < 32 {
                    let lo = a.get(k).copied().unwrap_or(0);
                    let hi = a.get(k + j).copied().unwrap_or(0);
                    let t = (lo ^ (hi >> j)) & m;
                    if let Some(l) = a.get_mut(k) {
                        *l = lo ^ t;
                    }
                    if let Some(h) = a.get_mut(k + j) {
                        *h = hi ^ (t << j);
                    }
                    k = (k + j + 1) & !j;
                }
                j >>= 1;
                m ^= m << j;
            }
            a.reverse();
        }

        /// The counts by rows (where [`asm_path`] does not hold): the group's weights were
        /// transposed block by block, so word `32q + j` is filter `j`'s word `q`; one XOR and
        /// popcount per column word and filter, as the row layout's kernels.
        #[inline(always)]
        fn counts_by_rows(column: &[u32], wg: &[u32], counts: &mut [u32; 32]) {
            for (j, c) in counts.iter_mut().enumerate() {
                *c = column
                    .iter()
                    .zip(wg.iter().skip(j).step_by(32))
                    .map(|(x, w)| (x ^ w).count_ones())
                    .sum();
            }
        }

        /// The 32 counts out of the first `P` planes: lanes j and j + 16 per pass, in the two
        /// halfwords (counts < 2^16), the planes a constant count so that the loops unroll.
        #[inline(always)]
        fn unpack<const P: usize>(planes: &[u32; MAX_PLANES], counts: &mut [u32; 32]) {
            let (lo, hi) = counts.split_at_mut(16);
            for (j, (lo, hi)) in lo.iter_mut().zip(hi).enumerate() {
                let mut acc = 0u32;
                for (b, &p) in planes.iter().enumerate().take(P) {
                    acc += ((p >> j) & 0x0001_0001) << b;
                }
                (*lo, *hi) = (acc & 0xffff, acc >> 16);
            }
        }

        /// The lanes of `S` (10 planes: the selection kernel's sums are below 1024).
        #[inline(always)]
        fn unpack_s(planes: &[u32; MAX_PLANES]) -> [u16; 32] {
            let mut lanes = [0u16; 32];
            #[cfg(all(target_arch = "arm", tinykd_dsp))]
            // SAFETY: `planes` holds 16 ≥ 10 words, `lanes` 32 halfwords.
            unsafe {
                thumb2::unpack10(planes.as_ptr(), lanes.as_mut_ptr());
            }
            #[cfg(not(all(target_arch = "arm", tinykd_dsp)))]
            {
                let mut counts = [0u32; 32];
                unpack::<10>(planes, &mut counts);
                for (l, c) in lanes.iter_mut().zip(counts) {
                    *l = c as u16;
                }
            }
            lanes
        }

        /// Most words of a selection list: half the bits of a 31-word column, plus one
        /// block of padding (2 KiB of stack, where the selection kernel runs; none elsewhere).
        const LIST: usize = if cfg!(all(target_arch = "arm", tinykd_dsp)) {
            31 * 16 + 16
        } else {
            0
        };
        /// Planes of the selection kernel's compare (`2S + G < 2^13`).
        const SEL_PLANES: usize = 13;

        /// The selection kernel's constants of one group, from its weights (in `wbuf`) and
        /// thresholds. With the column's bits `x_i`, `n1` of them set, `T_j` filter `j`'s
        /// weight bits set and `S_j` the vertical count of the selected weight words,
        /// `p_j = T_j + n1 − 2 S_j` (the set bits selected) or `p_j = 2 S_j + n1 − T_j` (the
        /// clear ones). So `p_j ≥ u_j` ⇔ `2 S_j + G_j ≤ n1 + N` with `G_j = N + u_j − T_j`,
        /// or ⇔ `2 S_j + H_j ≥ 2N + 1 − n1` with `H_j = 2N + 1 − u_j − T_j` (`N` the column's
        /// bits; both `G` and `H` are ≥ 0). Lanes past the last filter get `G = 2^12 − 1`,
        /// `H = 0`: never −1.
        pub(crate) struct SelectPre {
            g: [u32; SEL_PLANES],
            h: [u32; SEL_PLANES],
            /// `T_j` (an int8 output reads `p_j` back from `S_j`).
            t: [u32; 32],
            /// A packed output's flips, XORed into the output word.
            flips: u32,
        }

        impl SelectPre {
            /// Group `grp`'s constants (`lanes` of its 32 filters exist); `k` is `K`.
            fn new(
                prm: &Params<'_>,
                k: i32,
                grp: usize,
                lanes: usize,
                wbuf: &[u32],
                n: usize,
            ) -> Result<Self> {
                let zeros = [0u32; 31];
                let mut planes = [0u32; MAX_PLANES];
                let mut c32 = [0u32; 31];
                // T: the vertical counts of all the group's weight words (a column of zeros).
                planes_of(need(zeros.get(..n))?, wbuf, &mut planes, &mut c32);
                let mut t = [0u32; 32];
                unpack::<10>(&planes, &mut t);
                // A packed output's `u = t' + 1`: −1 iff `p ≥ u`, with `t'` the threshold minus
                // the flip clamped to `[−1, K]`, as the row kernels do. (An int8 output: 0.)
                let (mut u, mut flips) = ([0u32; 32], 0u32);
                if let BinaryOutput::Packed { thresholds } = prm.output {
                    for (j, u) in u.iter_mut().enumerate().take(lanes) {
                        let o = 32 * grp + j;
                        let fl = i32::from(need(prm.flip.get(o))? & 1);
                        let th = need(thresholds.get(o))?;
                        flips |= (fl as u32) << j;
                        *u = (th.saturating_sub(fl).clamp(-1, k) + 1) as u32;
                    }
                }
                let nb = 32 * n as u32;
                let mut sp = SelectPre {
                    g: [0; SEL_PLANES],
                    h: [0; SEL_PLANES],
                    t,
                    flips,
                };
                for (j, (&t, &u)) in t.iter().zip(&u).enumerate() {
                    let (g, h) = if j < lanes {
                        (nb + u - t, 2 * nb + 1 - u - t)
                    } else {
                        ((1 << 12) - 1, 0)
                    };
                    for (b, (gw, hw)) in sp.g.iter_mut().zip(sp.h.iter_mut()).enumerate() {
                        *gw |= (g >> b & 1) << j;
                        *hw |= (h >> b & 1) << j;
                    }
                }
                Ok(sp)
            }

            /// `p_j` from `S_j` (an int8 output).
            #[inline(always)]
            fn counts(&self, s: &[u16; 32], n1: u32, ones: bool, p: &mut [u32; 32]) {
                for ((p, &s), &t) in p.iter_mut().zip(s).zip(&self.t) {
                    let s = u32::from(s);
                    *p = if ones {
                        (t + n1).wrapping_sub(2 * s)
                    } else {
                        (2 * s + n1).wrapping_sub(t)
                    };
                }
            }

            /// The packed output word before the flips: lane `j` is `p_j ≥ u_j`, from the
            /// planes of `S` and the column's `n1` (see [`SelectPre`]). Not inlined: in the
            /// pixel loop its 13 planes cost more spills than the call (`bsliced` measured
            /// 4.6 % more instructions inlined).
            #[inline(never)]
            fn word(&self, s: &[u32; MAX_PLANES], n1: u32, nb: u32, ones: bool) -> u32 {
                let (gp, c) = if ones {
                    (&self.g, n1 + nb)
                } else {
                    (&self.h, 2 * nb + 1 - n1)
                };
                // F = 2S + G plane by plane, and the borrow of c − F (F ≤ c) or F − c (F ≥ c).
                let (mut carry, mut borrow) = (0u32, 0u32);
                let mut a = 0u32; // plane b of 2S: plane b − 1 of S
                for (b, &g) in gp.iter().enumerate() {
                    let f = a ^ g ^ carry;
                    carry = (a & g) | (carry & (a ^ g));
                    borrow = match (ones, c >> b & 1 == 1) {
                        (true, false) => f | borrow,
                        (true, true) => f & borrow,
                        (false, false) => !f & borrow,
                        (false, true) => !f | borrow,
                    };
                    a = if b < 10 {
                        s.get(b).copied().unwrap_or(0)
                    } else {
                        0
                    };
                }
                !borrow
            }
        }

        /// The planes of `S` for one output pixel and group (the selection kernel, Thumb-2
        /// only): the column's set bits, or its clear ones where those are fewer, select their
        /// weight words into `list`, whose vertical count is `S`. Returns `(n1, ones)`.
        #[inline(always)]
        fn select_planes(
            win: &Window<'_>,
            wg: &[u32],
            list: &mut [u32; LIST],
            planes: &mut [u32; MAX_PLANES],
        ) -> Result<(u32, bool)> {
            let n = win.runs * win.run;
            let need_src = (win.runs.max(1) - 1) * (win.run + win.gap) + win.run;
            if !(1..=31).contains(&n) || wg.len() < 32 * n || win.src.len() < need_src {
                return Err(crate::error::Error::RunInconsistent);
            }
            #[cfg(not(all(target_arch = "arm", tinykd_dsp)))]
            let r = {
                let _ = (list, planes);
                Ok((0, true))
            };
            #[cfg(all(target_arch = "arm", tinykd_dsp))]
            let r = {
                // SAFETY: `win.src` holds the runs, `wg` 32n words for the n ≤ 31 column words;
                // at most 16n ≤ 496 words are selected (the fewer of the set and clear bits),
                // then 16 zero words: `list` holds 512.
                let (end, n1, inv) = unsafe {
                    thumb2::select(
                        win.src.as_ptr(),
                        win.runs,
                        win.run,
                        win.gap,
                        16 * n as u32,
                        wg.as_ptr(),
                        list.as_mut_ptr(),
                    )
                };
                let m = (end as usize - list.as_ptr() as usize) / 4;
                let blocks = m.div_ceil(16);
                if blocks == 0 {
                    *planes = [0; MAX_PLANES];
                } else {
                    // SAFETY: 16·blocks ≤ 512 list words; `planes` holds 16 ≥ 10 words.
                    unsafe { thumb2::sum_list(list.as_mut_ptr(), blocks, planes.as_mut_ptr()) };
                }
                Ok((n1, inv == 0))
            };
            r
        }

        /// The layer, group by group: one group's weights copied word-aligned into `wbuf`
        /// (and its [`SelectPre`]), then per output pixel the planes of `S` by the selection
        /// kernel (or the counts by rows, elsewhere), and the packed output word or the int8
        /// outputs of the group.
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn run(
            prm: &Params<'_>,
            columns: &Columns<'_>,
            col: &mut [u32],
            wbuf: &mut [u32],
            y: &mut [i8],
            out_stride: usize,
            zp_out: i32,
            fast_pre: &FastPre,
        ) -> Result<()> {
            let k = columns.g.k();
            let per_group = 4 * wbuf.len();
            let groups = prm.weights.bytes().chunks_exact(per_group.max(4));
            let by_select = asm_path(columns.col_len);
            let mut list = [0u32; LIST];
            let mut planes = [0u32; MAX_PLANES];
            let mut counts = [0u32; 32]; // every lane written before it is read, per pixel
            for (grp, wg) in groups.enumerate().take(columns.g.oc.div_ceil(32)) {
                for (d, s) in wbuf.iter_mut().zip(wg.chunks_exact(4)) {
                    *d = u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
                }
                if !by_select {
                    for block in wbuf.chunks_exact_mut(32) {
                        if let Ok(block) = <&mut [u32; 32]>::try_from(block) {
                            transpose32(block);
                        }
                    }
                }
                let wbuf: &[u32] = wbuf;
                let o0 = 32 * grp;
                let n = columns.col_len;
                let sel = if by_select {
                    let lanes = columns.g.oc.saturating_sub(o0).min(32);
                    Some(SelectPre::new(prm, k, grp, lanes, wbuf, n)?)
                } else {
                    None
                };
                for (px, out_px) in y.chunks_exact_mut(out_stride.max(1)).enumerate() {
                    // The selection kernel's planes of S, or the counts by rows.
                    let selected = match &sel {
                        Some(_) => {
                            let win = columns.window(px, col)?;
                            Some(select_planes(&win, wbuf, &mut list, &mut planes)?)
                        }
                        None => {
                            counts_by_rows(columns.of(px, col)?, wbuf, &mut counts);
                            None
                        }
                    };
                    match prm.output {
                        BinaryOutput::Packed { thresholds } => {
                            let word = if let (Some(sp), Some((n1, ones))) = (&sel, selected) {
                                sp.word(&planes, n1, 32 * n as u32, ones) ^ sp.flips
                            } else {
                                // −1 iff p > t, or p < t where flipped; the lanes past the last
                                // filter stay 0.
                                let mut word = 0u32;
                                let lanes = columns.g.oc.saturating_sub(o0).min(32);
                                for (j, &p) in counts.iter().enumerate().take(lanes) {
                                    let t = need(thresholds.get(o0 + j))?;
                                    let p = p as i32;
                                    let minus = if need(prm.flip.get(o0 + j))? & 1 == 1 {
                                        p < t
                                    } else {
                                        p > t
                                    };
                                    word |= u32::from(minus) << j;
                                }
                                word
                            };
                            let out = need(out_px.get_mut(4 * grp..4 * grp + 4))?;
                            for (d, s) in out.iter_mut().zip(word.to_le_bytes()) {
                                *d = s as i8;
                            }
                        }
                        BinaryOutput::Int8 {
                            bias,
                            requant,
                            act_min,
                            act_max,
                        } => {
                            if let (Some(sp), Some((n1, ones))) = (&sel, selected) {
                                sp.counts(&unpack_s(&planes), n1, ones, &mut counts);
                            }
                            let outs = need(out_px.get_mut(o0..(o0 + 32).min(out_stride)))?;
                            let counts = need(counts.get(..outs.len()))?;
                            match fast_pre {
                                FastPre::Int8(ip) => {
                                    ip.outs(outs, counts, o0, zp_out, act_min, act_max)
                                }
                                _ => {
                                    for (i, (out, &p)) in outs.iter_mut().zip(counts).enumerate() {
                                        let o = o0 + i;
                                        let dot = k.wrapping_sub(2 * p as i32);
                                        let dot = if need(prm.flip.get(o))? & 1 == 1 {
                                            dot.wrapping_neg()
                                        } else {
                                            dot
                                        };
                                        let acc = need(bias.get(o))?.wrapping_add(dot);
                                        let m = need(requant.multipliers.get(o))?;
                                        let sh = i32::from(need(requant.shifts.get(o))?);
                                        *out = rq_out(acc, m, sh, zp_out, act_min, act_max);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// The column of output pixel `(oy, ox)` whose window reaches into the padding (+1: the
    /// word 0): per window row, the padded taps left and right of the valid ones zeroed and the
    /// valid ones copied as one run (`copy_words`, `zero_words`: no `memcpy` calls).
    fn gather_padded(g: &Geom, input: &[u32], col: &mut [u32], oy: usize, ox: usize) -> Result<()> {
        use crate::ops::fast::{copy_words, zero_words};
        let wc = words(g.ic);
        let (iy0, ky0, ny) = super::clip(oy, g.sh, g.pt, g.kh, g.ih);
        let (ix0, kx0, nx) = super::clip(ox, g.sw, g.pl, g.kw, g.iw);
        let run = g.kw * wc;
        let rows = need(col.get_mut(..g.kh * run))?;
        for (ky, dst) in rows.chunks_exact_mut(run.max(1)).enumerate() {
            if ky < ky0 || ky >= ky0 + ny {
                zero_words(dst);
                continue;
            }
            let (left, rest) = dst.split_at_mut((kx0 * wc).min(run));
            let (mid, right) = rest.split_at_mut((nx * wc).min(rest.len()));
            zero_words(left);
            zero_words(right);
            if mid.is_empty() {
                continue; // a window past the input's edge (stride > kernel)
            }
            let src = ((iy0 + ky - ky0) * g.iw + ix0) * wc;
            let src = need(input.get(src..src + mid.len()))?;
            copy_words(mid, src);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use std::vec;
    use std::vec::Vec;
    use tinykd_format::{fold_sign, I8s, Requant, Shape};

    /// Packs ±1 values `[pixels][c]` (−1 → bit 1) into LE words, `ceil(c / 32)` per pixel.
    fn pack(v: &[i8], c: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for px in v.chunks(c) {
            for j in 0..c.div_ceil(32) {
                let mut w = 0u32;
                for (i, &s) in px.iter().skip(32 * j).take(32).enumerate() {
                    if s < 0 {
                        w |= 1 << i;
                    }
                }
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Bit-slices ±1 weights `[out][taps][c]` (SPEC §3.3): per group of 32 filters, tap and
    /// channel of `32 · ceil(c / 32)`, the word whose bit j is filter 32g + j (−1 → 1).
    fn slice(w: &[i8], out: usize, taps: usize, c: usize) -> Vec<u8> {
        let lanes = 32 * c.div_ceil(32);
        let mut bytes = Vec::new();
        for g in 0..out.div_ceil(32) {
            for tap in 0..taps {
                for ch in 0..lanes {
                    let mut word = 0u32;
                    for j in 0..32 {
                        let o = 32 * g + j;
                        if o < out && ch < c && w[(o * taps + tap) * c + ch] < 0 {
                            word |= 1 << j;
                        }
                    }
                    bytes.extend_from_slice(&word.to_le_bytes());
                }
            }
        }
        bytes
    }

    fn signs(rng: &mut Rng, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| if rng.next() & 1 == 1 { -1 } else { 1 })
            .collect()
    }

    /// A word-aligned copy of `bytes`, viewed as i8 (as the arena hands tensors to kernels).
    fn aligned(bytes: &[u8]) -> Vec<u32> {
        let mut w = vec![0u32; bytes.len().div_ceil(4) + 1];
        for (i, &b) in bytes.iter().enumerate() {
            w[i / 4] |= u32::from(b) << (8 * (i % 4));
        }
        w
    }

    fn view(w: &[u32], len: usize) -> &[i8] {
        // SAFETY (test): any bytes are valid i8s; `len` ≤ the words' byte length.
        unsafe { core::slice::from_raw_parts(w.as_ptr().cast::<i8>(), len) }
    }

    /// Random binary convs (and dense layers) against the ±1 integer oracle: every tap, padded
    /// taps as +1, odd channel counts, strides; packed (thresholds from `fold_sign` of a random
    /// affine z, compared with sign(z)) and int8 outputs; int8 (per-tensor and per-channel
    /// thresholds) and packed inputs; the reference and the fast path.
    #[test]
    fn binary_conv_and_dense_match_the_pm1_oracle() {
        let mut rng = Rng(0xB1_0001);
        let mut cases = [0usize; 4];
        for case in 0..600 {
            let dense = case % 5 == 4;
            let ic = match case % 4 {
                0 => 32 * rng.range(1, 3) as usize,
                _ => rng.range(1, 75) as usize,
            };
            // Every fifth case a conv1d: a `[1, T, C]` window, kernel `[1, k]`, k = 3..9.
            let conv1d = case % 5 == 3;
            let (ih, iw) = if conv1d {
                (1, rng.range(1, 40) as usize)
            } else {
                (rng.range(1, 6) as usize, rng.range(1, 6) as usize)
            };
            let oc = rng.range(1, 45) as usize;
            let (kh, kw, sh, sw, pad) = if dense {
                (ih, iw, 1, 1, [0usize; 4])
            } else if conv1d {
                let k = [3, 5, 7, 9][case % 4];
                let pad = [0, rng.range(0, 4) as usize, 0, rng.range(0, 4) as usize];
                (1, k, 1, rng.range(1, 2) as usize, pad)
            } else {
                (
                    rng.range(1, 3) as usize,
                    rng.range(1, 3) as usize,
                    rng.range(1, 2) as usize,
                    rng.range(1, 2) as usize,
                    [0; 4].map(|_| rng.range(0, 2) as usize),
                )
            };
            let (Some(oh), Some(ow)) = (
                (ih + pad[0] + pad[2]).checked_sub(kh).map(|s| s / sh + 1),
                (iw + pad[1] + pad[3]).checked_sub(kw).map(|s| s / sw + 1),
            ) else {
                continue;
            };
            let int8_in = rng.range(0, 1) == 1;
            let packed_out = rng.range(0, 1) == 1;
            cases[usize::from(int8_in) * 2 + usize::from(packed_out)] += 1;
            // Input: ±1 values, and what the kernel reads.
            let (s_in, x_bytes, thresholds): (Vec<i8>, Vec<u8>, Vec<i32>) = if int8_in {
                let x = rng.i8s(ih * iw * ic);
                let t: Vec<i32> = if rng.range(0, 1) == 1 {
                    vec![rng.range(-100, 100) as i32]
                } else {
                    (0..ic).map(|_| rng.range(-129, 128) as i32).collect()
                };
                let s = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let t = if t.len() == 1 { t[0] } else { t[i % ic] };
                        if i32::from(v) < t {
                            -1
                        } else {
                            1
                        }
                    })
                    .collect();
                (s, x.iter().map(|&v| v as u8).collect(), t)
            } else {
                let s = signs(&mut rng, ih * iw * ic);
                let b = pack(&s, ic);
                (s, b, vec![])
            };
            let w = signs(&mut rng, oc * kh * kw * ic);
            let w_packed = pack(&w, ic);
            let k = (kh * kw * ic) as i64;
            // The ±1 dot products.
            let mut dots = Vec::new();
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..oc {
                        let mut dot = 0i64;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sh + ky) as i64 - pad[0] as i64;
                                let ix = (ox * sw + kx) as i64 - pad[1] as i64;
                                let inside =
                                    (0..ih as i64).contains(&iy) && (0..iw as i64).contains(&ix);
                                for c in 0..ic {
                                    let a = if inside {
                                        s_in[(iy as usize * iw + ix as usize) * ic + c] as i64
                                    } else {
                                        1
                                    };
                                    dot += a * w[((o * kh + ky) * kw + kx) * ic + c] as i64;
                                }
                            }
                        }
                        dots.push(dot);
                    }
                }
            }
            let flip: Vec<u8> = (0..oc).map(|_| rng.range(0, 1) as u8).collect();
            let (want, out_len, thresholds_out, bias, m, s, act, zp) = if packed_out {
                // sign(a·dot + b) for random a (either sign), b, folded.
                let ab: Vec<(f64, f64)> = (0..oc)
                    .map(|o| {
                        let a = (rng.range(1, 100) as f64 / 37.0)
                            * if flip[o] == 1 { -1.0 } else { 1.0 };
                        let b = rng.range(-(k * 40), k * 40) as f64 / 37.0;
                        (a, b)
                    })
                    .collect();
                let mut t = Vec::new();
                for (o, &(a, b)) in ab.iter().enumerate() {
                    let (th, f) = fold_sign(k as u32, a, b);
                    assert_eq!(f, flip[o] == 1);
                    t.push(th);
                }
                let signs_out: Vec<i8> = dots
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        let (a, b) = ab[i % oc];
                        if a * d as f64 + b < 0.0 {
                            -1
                        } else {
                            1
                        }
                    })
                    .collect();
                let want: Vec<i8> = pack(&signs_out, oc).iter().map(|&b| b as i8).collect();
                let n = want.len();
                (want, n, le_i32(&t), vec![], vec![], vec![], (0, 0), 0i8)
            } else {
                let bias: Vec<i32> = (0..oc).map(|_| rng.range(-300, 300) as i32).collect();
                let (m, s) = requant(&mut rng, oc, (-10, 2));
                let act = act_range(&mut rng);
                let zp = rng.range(-128, 127) as i8;
                let want: Vec<i8> = dots
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        let o = i % oc;
                        let d = if flip[o] == 1 { -d } else { d };
                        let mm = i32::from_le_bytes(m[o * 4..o * 4 + 4].try_into().unwrap());
                        oracle_requant(bias[o] as i64 + d, mm, s[o] as i8 as i32, zp, act.0, act.1)
                    })
                    .collect();
                let n = want.len();
                (want, n, vec![], le_i32(&bias), m, s, act, zp)
            };
            let output = if packed_out {
                BinaryOutput::Packed {
                    thresholds: LeI32s(&thresholds_out),
                }
            } else {
                BinaryOutput::Int8 {
                    bias: LeI32s(&bias),
                    requant: Requant {
                        multipliers: LeI32s(&m),
                        shifts: I8s(&s),
                    },
                    act_min: act.0,
                    act_max: act.1,
                }
            };
            let t_bytes = le_i32(&thresholds);
            let prm = Params {
                weights: Bits(&w_packed),
                sliced: false,
                input_thresholds: LeI32s(&t_bytes),
                flip: &flip,
                output,
            };
            let g = Geom {
                ih,
                iw,
                ic,
                kh,
                kw,
                sh,
                sw,
                pt: pad[0],
                pl: pad[1],
                ow,
                oc,
            };
            let x_words = aligned(&x_bytes);
            let x = view(&x_words, x_bytes.len());
            let mut got = vec![0i8; out_len];
            conv(&prm, &g, x, &mut got, i32::from(zp)).unwrap();
            assert_eq!(got, want, "reference, case {case}");
            // The fast path, with exactly the scratch the format plans.
            let scratch_len = if int8_in {
                ih * iw * ic.div_ceil(32) * 4
            } else {
                0
            } + if dense {
                0
            } else {
                kh * kw * ic.div_ceil(32) * 4
            };
            let mut scratch = vec![0u32; scratch_len / 4];
            let scratch = unsafe {
                core::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<u8>(), scratch_len)
            };
            let mut got = vec![0i8; out_len];
            assert!(fast::conv(&prm, &g, x, &mut got, i32::from(zp), scratch).unwrap());
            assert_eq!(got, want, "fast, case {case}");
            // The same layer with bit-sliced weights (SPEC §3.3): reference and fast path.
            let w_sliced = slice(&w, oc, kh * kw, ic);
            let prm = Params {
                weights: Bits(&w_sliced),
                sliced: true,
                ..prm
            };
            let mut got = vec![0i8; out_len];
            conv(&prm, &g, x, &mut got, i32::from(zp)).unwrap();
            assert_eq!(got, want, "sliced reference, case {case}");
            // Its scratch (SPEC §5.1): the column and one group's weights after the packed input.
            let column = kh * kw * ic.div_ceil(32) * 4;
            let sliced_len = scratch_len + if dense { column } else { 0 } + 32 * column;
            let mut sliced_scratch = vec![0u32; sliced_len / 4];
            let sliced_scratch = unsafe {
                core::slice::from_raw_parts_mut(
                    sliced_scratch.as_mut_ptr().cast::<u8>(),
                    sliced_len,
                )
            };
            let mut got = vec![0i8; out_len];
            assert!(fast::conv(&prm, &g, x, &mut got, i32::from(zp), sliced_scratch).unwrap());
            assert_eq!(got, want, "sliced fast, case {case}");
            // One word short: the reference instead, the same bytes.
            let short = &mut sliced_scratch[..sliced_len - 4];
            let mut got = vec![0i8; out_len];
            let ran = fast::conv(&prm, &g, x, &mut got, i32::from(zp), short).unwrap();
            assert!(!ran, "case {case}: a short scratch falls back");
        }
        assert!(cases.iter().all(|&n| n > 80), "{cases:?}");
    }

    /// The 32×32 bit transpose of the bit-sliced fallback against the definition.
    #[test]
    fn transpose32_swaps_rows_and_columns() {
        let mut rng = Rng(0xB1_0004);
        for _ in 0..50 {
            let a: [u32; 32] = core::array::from_fn(|_| rng.next() as u32);
            let mut t = a;
            fast::sliced::transpose32(&mut t);
            for (j, &w) in t.iter().enumerate() {
                for (k, &v) in a.iter().enumerate() {
                    assert_eq!(w >> k & 1, v >> j & 1, "bit {k} of word {j}");
                }
            }
        }
    }

    #[test]
    fn swar_popcount_matches_count_ones() {
        let mut rng = Rng(0xB1_0002);
        for n in [0usize, 1, 5, 30, 31, 32, 62, 63, 100] {
            let a: Vec<u32> = (0..n).map(|_| rng.next() as u32).collect();
            let w: Vec<u8> = (0..4 * n).map(|_| rng.next() as u8).collect();
            let want: u32 = a
                .iter()
                .zip(w.chunks(4))
                .map(|(x, b)| (x ^ u32::from_le_bytes(b.try_into().unwrap())).count_ones())
                .sum();
            assert_eq!(fast::xor_popcount(&a, &w), want);
        }
        let ones = vec![u32::MAX; 100];
        assert_eq!(fast::xor_popcount(&ones, &[0u8; 400]), 3200);
    }

    /// Binary max pooling against max over ±1 values of the valid cells (padded cells ignored),
    /// odd channel counts.
    #[test]
    fn binary_max_pool_matches_pm1_max() {
        let mut rng = Rng(0xB1_0003);
        for _ in 0..300 {
            let c = rng.range(1, 70) as usize;
            let (ih, iw) = (rng.range(1, 7) as usize, rng.range(1, 7) as usize);
            let k = [rng.range(1, 3) as u8, rng.range(1, 3) as u8];
            let op = PoolOp {
                input: 0,
                kernel: k,
                stride: [rng.range(1, 3) as u8, rng.range(1, 2) as u8],
                padding: [
                    rng.range(0, k[0] as i64 - 1) as u8,
                    rng.range(0, k[1] as i64 - 1) as u8,
                    rng.range(0, k[0] as i64 - 1) as u8,
                    rng.range(0, k[1] as i64 - 1) as u8,
                ],
            };
            let xs = Shape {
                h: ih as u16,
                w: iw as u16,
                c: c as u16,
            };
            let (ys, windows) = super::super::max_pool2d::tests::windows(xs, &op);
            let fits = |i: usize, a: u8, b: u8, k: u8| {
                i + usize::from(a) + usize::from(b) >= usize::from(k)
            };
            if !fits(ih, op.padding[0], op.padding[2], k[0])
                || !fits(iw, op.padding[1], op.padding[3], k[1])
            {
                continue;
            }
            let s = signs(&mut rng, ih * iw * c);
            let want_signs: Vec<i8> = windows
                .iter()
                .map(|cells| cells.iter().map(|&i| s[i]).max().unwrap())
                .collect();
            let want: Vec<i8> = pack(&want_signs, c).iter().map(|&b| b as i8).collect();
            let x: Vec<i8> = pack(&s, c).iter().map(|&b| b as i8).collect();
            let mut got = vec![0x55i8; want.len()];
            max_pool2d(
                &op,
                In {
                    data: &x,
                    shape: xs,
                    zero_point: 0,
                },
                Out {
                    data: &mut got,
                    shape: ys,
                    zero_point: 0,
                },
            )
            .unwrap();
            assert_eq!(got, want);
        }
    }
}
