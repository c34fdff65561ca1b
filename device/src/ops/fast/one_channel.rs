//! 3×3 convolution of a one-channel input (stride 1 or 2, padding 0 or 1 per side) on the DSP
//! extension: the first layer of a grayscale or single-sensor model, output pixel by output
//! pixel, all channels of a pixel against its window held in registers.
//!
//! With one input channel the reduction is only nine taps, so the general path (an im2col of
//! four pixels, one channel at a time, the taps padded to 12) spends most of its instructions on
//! per-channel bookkeeping. Here each output row gets a band of the three input rows it reads
//! (int8, in the op's scratch since format 1.5, the padding as the input zero point); a pixel's
//! window is three `LDR`s from the band, six `SXTB16` and a `PKHBT` into five registers
//! (`(a0, a2)`, `(b0, b2)`,
//! `(c0, c2)`, `(a1, b1)` and `c1`, rows a–c), and then every channel costs one record of seven
//! words (bias with the input zero point folded in, the nine weights as matching int16 pairs,
//! the `SMMLAR` multiplier) read in two `LDM`s, four `SMLAD` + one `SMLABT`, one `SMMLAR` with
//! the output zero point as its accumulate operand, `SSAT` and a post-incremented `STRB`: ten
//! instructions for nine MACs. Requires the multipliers the exporter writes
//! (`smmlar_multiplier`) and the full int8 output range (no extra clamp); anything else takes
//! the general path.

use tinykd_format::Conv2dOp;

use super::{simd::pack16, smmlar_multiplier, words};
use crate::error::Result;
use crate::ops::{In, Out};

/// Channels per pass over the pixels (their records sit side by side in the scratch).
const CHUNK: usize = tinykd_format::ONE_CHANNEL_CHUNK as usize;
/// Words of one channel record: `[bias', (wa0, wa2), (wb0, wb2), (wc0, wc2), (wa1, wb1),
/// (flag, wc1), multiplier]`; `flag` (bottom half) is 1 in a chunk's last channel, which must be
/// the second of a pair.
const RECORD: usize = tinykd_format::ONE_CHANNEL_RECORD as usize / 4;

/// The run state of [`one_channel_3x3`], read by field offset; on Cortex-M it lies in the
/// scratch right after the chunk's records (the loop steps back from it to the first record).
#[repr(C)]
pub(crate) struct Run {
    /// The current pixel's window in the band (its top-left byte, in the window's top row).
    pub(crate) x: *const u8,
    /// Byte offsets (wrapping) from the window's top row to its middle and bottom rows: the
    /// band is a ring of three rows, each input row written once.
    pub(crate) off_b: usize,
    pub(crate) off_c: usize,
    /// `28 · n`: from the state back to the chunk's first record.
    pub(crate) rec_bytes: usize,
    /// Output bytes from a pixel's last channel of the chunk to the next pixel's first.
    pub(crate) skip: usize,
    /// The output pointer after the run's last pixel.
    pub(crate) end: *mut i8,
}

#[cfg(target_arch = "arm")]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Run>() == tinykd_format::ONE_CHANNEL_STATE as usize);
    assert!(offset_of!(Run, off_b) == 4 && offset_of!(Run, off_c) == 8);
    assert!(offset_of!(Run, rec_bytes) == 12 && offset_of!(Run, skip) == 16);
    assert!(offset_of!(Run, end) == 20);
};

/// Conv2d 3×3, stride 1 or 2, padding ≤ 1 per side, one input channel, an even number of output
/// channels, full int8 output range and `SMMLAR`-ready multipliers. `Ok(false)`: not handled here
/// (the caller takes the general path).
pub(crate) fn conv3x3(
    op: &Conv2dOp<'_>,
    x: In<'_>,
    y: Out<'_>,
    scratch: &mut [u8],
) -> Result<bool> {
    let (ih, iw) = (usize::from(x.shape.h), usize::from(x.shape.w));
    let (oh, ow, oc) = (
        usize::from(y.shape.h),
        usize::from(y.shape.w),
        usize::from(y.shape.c),
    );
    let [pt, pl, pb, pr] = op.padding.map(usize::from);
    let row = iw + pl + pr; // padded band row
    let step = usize::from(op.stride[0]);
    if op.kernel != [3, 3]
        || !(op.stride == [1, 1] || op.stride == [2, 2])
        || op.groups != 1
        || x.shape.c != 1
        || pt > 1
        || pl > 1
        || pb > 1
        || pr > 1
        || op.act_min != i8::MIN
        || op.act_max != i8::MAX
        || oc == 0
        || !oc.is_multiple_of(2)
        || row < 3
        || ih + pt + pb < 3
        || ow != (row - 3) / step + 1
        || oh != (ih + pt + pb - 3) / step + 1
        || x.data.len() != ih * iw
        || y.data.len() != oh * ow * oc
    {
        return Ok(false);
    }
    let weights = op.weights.bytes();
    let (bias, _) = op.bias.bytes().as_chunks::<4>();
    let (mult, _) = op.requant.multipliers.bytes().as_chunks::<4>();
    let shifts = op.requant.shifts.bytes();
    if weights.len() != 9 * oc || bias.len() < oc || mult.len() < oc || shifts.len() < oc {
        return Ok(false);
    }
    let zp_in = x.zero_point;
    let zp_out = i32::from(y.zero_point);
    // The scratch (SPEC §5.1, format 1.5): the band's three rows `rs` bytes apart, the records
    // of up to CHUNK channels, the run state.
    let rs = tinykd_format::one_channel_band_stride(x.shape.w) as usize;
    let slots = CHUNK.min(oc);
    let Some(sw) = words(scratch, 3 * rs / 4 + RECORD * slots + 6) else {
        return Ok(false);
    };
    let (band, rest) = sw.split_at_mut(3 * rs / 4);
    let (recs, state) = rest.split_at_mut(RECORD * slots);
    band.fill(u32::from_ne_bytes([zp_in as u8; 4]));
    // SAFETY: `band` is 3·rs/4 initialized words; viewed as its 3·rs bytes (any value valid).
    let band = unsafe { core::slice::from_raw_parts_mut(band.as_mut_ptr().cast::<u8>(), 3 * rs) };
    let xb = super::as_bytes(x.data);
    let y0 = y.data.as_mut_ptr();
    let fresh = Run {
        x: core::ptr::null(),
        off_b: 0,
        off_c: 0,
        rec_bytes: 0,
        skip: 0,
        end: y0,
    };
    // On Cortex-M the run state follows the records in the scratch (6 words there, asserted
    // above); elsewhere (the host's stand-in) it lives here and the records are passed along.
    #[cfg(tinykd_dsp)]
    let st: &mut Run = {
        let p = state.as_mut_ptr().cast::<Run>();
        // SAFETY: `state` is 6 aligned, exclusively borrowed words, the size and alignment of
        // `Run` on 32-bit Arm; it is initialized here before any read.
        unsafe {
            p.write(fresh);
            &mut *p
        }
    };
    #[cfg(not(tinykd_dsp))]
    let _ = state;
    #[cfg(not(tinykd_dsp))]
    let mut run = fresh;
    #[cfg(not(tinykd_dsp))]
    let st = &mut run;
    let mut c0 = 0;
    while c0 < oc {
        let n = CHUNK.min(oc - c0);
        let first = slots - n;
        let (_, chunk) = recs.split_at_mut(RECORD * first);
        for (i, rec) in chunk.chunks_exact_mut(RECORD).enumerate() {
            let o = c0 + i;
            let (Some(w), Some(b), Some(m), Some(&s)) = (
                weights.get(9 * o..9 * o + 9),
                bias.get(o),
                mult.get(o),
                shifts.get(o),
            ) else {
                return Ok(false);
            };
            let Some(m) = smmlar_multiplier(i32::from_le_bytes(*m), s as i8) else {
                return Ok(false);
            };
            let t = |k: usize| w.get(k).map_or(0, |&v| i32::from(v as i8));
            let sum: i32 = (0..9).map(t).sum();
            let flag = i32::from(i + 1 == n);
            rec.copy_from_slice(&[
                i32::from_le_bytes(*b).wrapping_sub(i32::from(zp_in) * sum) as u32,
                pack16(t(0), t(2)),
                pack16(t(3), t(5)),
                pack16(t(6), t(8)),
                pack16(t(1), t(4)),
                pack16(flag, t(7)),
                m as u32,
            ]);
        }
        st.rec_bytes = 28 * n;
        st.skip = oc - n;
        for oy in 0..oh {
            // The ring holds padded rows s·oy .. s·oy + 2 (input rows minus pt) in slots j mod 3;
            // each new row is copied in once, its padding columns keep the zero point.
            let top = step * oy;
            for j in if oy == 0 {
                0..3
            } else {
                top + 3 - step..top + 3
            } {
                let dst = band.get_mut((j % 3) * rs + pl..(j % 3) * rs + pl + iw);
                let src = j
                    .checked_sub(pt)
                    .filter(|&iy| iy < ih)
                    .and_then(|iy| xb.get(iy * iw..iy * iw + iw));
                match (src, dst) {
                    (Some(src), Some(d)) => {
                        // Word by word (unaligned word access is allowed on these cores);
                        // `copy_from_slice` calls a byte-wise `memcpy` for these short rows.
                        let (dw, dt) = d.as_chunks_mut::<4>();
                        let (sw, st) = src.as_chunks::<4>();
                        for (d, s) in dw.iter_mut().zip(sw) {
                            *d = u32::from_ne_bytes(*s).to_ne_bytes();
                        }
                        dt.copy_from_slice(st);
                    }
                    (None, Some(d)) => d.fill(zp_in as u8),
                    (_, None) => return Ok(false),
                }
            }
            let slot = |j: usize| (j % 3) * rs;
            st.x = band.as_ptr().wrapping_add(slot(top));
            st.off_b = slot(top + 1).wrapping_sub(slot(top));
            st.off_c = slot(top + 2).wrapping_sub(slot(top));
            let out = y0.wrapping_add(oy * ow * oc + c0);
            st.end = out.wrapping_add(ow * oc);
            // SAFETY: `ow ≥ 1` pixels: pixel ox reads band bytes s·ox .. s·ox + 3 of each of the
            // three ring slots (s·(ow − 1) + 3 ≤ row < rs), writes outputs out + ox·oc .. + n
            // (inside y.data: (oy·ow + ox)·oc + c0 + n ≤ oh·ow·oc); the chunk's n records (n even,
            // the last flagged) end where the run state begins (on Cortex-M), or are `chunk`.
            unsafe {
                #[cfg(tinykd_dsp)]
                if step == 1 {
                    one_channel_3x3(st, out, zp_out);
                } else {
                    one_channel_3x3_s2(st, out, zp_out);
                }
                #[cfg(not(tinykd_dsp))]
                one_channel_3x3(st, chunk, out, zp_out, step);
            }
        }
        c0 += n;
    }
    Ok(true)
}

#[cfg(tinykd_dsp)]
use imp_dsp::{one_channel_3x3, one_channel_3x3_s2};
#[cfg(not(tinykd_dsp))]
use imp_portable::one_channel_3x3;

#[cfg(tinykd_dsp)]
mod imp_dsp {
    use core::arch::asm;

    use super::Run;

    /// One channel of a pixel (see the module docs): 10 instructions, 9 MACs.
    macro_rules! channel {
        () => {
            concat!(
                "ldm r11!, {{r5, r8, r9, r10}}\n",
                "smlad r5, r0, r8, r5\n",
                "smlad r5, r1, r9, r5\n",
                "smlad r5, r2, r10, r5\n",
                "ldm r11!, {{r8, r9, r10}}\n",
                "smlad r5, r3, r8, r5\n",
                "smlabt r5, r4, r9, r5\n",
                "smmlar r5, r5, r10, lr\n",
                "ssat r5, #8, r5\n",
                "strb r5, [r12], #1\n",
            )
        };
    }

    /// The pixel loop; `$step` advances the window to the next pixel (the stride).
    macro_rules! run_asm {
        ($run:expr, $y:expr, $zp:expr, $step:literal) => {
            asm!(
                "1:",
                "ldm r11, {{r8, r9, r10}}",
                "ldr r0, [r8]",
                "ldr r1, [r8, r9]",
                "ldr r2, [r8, r10]",
                $step,
                "str r8, [r11]",
                "ldr r10, [r11, #12]",
                "sub r11, r11, r10",
                "sxtb16 r3, r0, ror #8",
                "sxtb16 r0, r0",
                "sxtb16 r4, r1, ror #8",
                "sxtb16 r1, r1",
                "pkhbt r3, r3, r4, lsl #16",
                "sxtb16 r4, r2, ror #8",
                "sxtb16 r2, r2",
                "2:",
                channel!(),
                channel!(),
                "tst r9, #1",
                "beq 2b",
                "ldrd r8, r9, [r11, #16]",
                "add r12, r12, r8",
                "cmp r12, r9",
                "bne 1b",
                inout("r11") $run => _,
                inout("r12") $y => _,
                in("lr") $zp,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                options(nostack),
            )
        };
    }

    /// A run of output pixels (one output row) for one chunk of channels, stride 1.
    ///
    /// # Safety
    /// As `conv3x3` sets it up: `st.x` the run's first window in a band of three rows (the
    /// others at `st.x + off_b`, `st.x + off_c`, wrapping), each readable for `s·(pixels − 1) + 4`
    /// bytes; the chunk's records directly before the run fields (`rec_bytes` bytes, an even
    /// count of channels, the last flagged); `y` .. `st.end` the run's outputs, `n` per pixel
    /// then `skip`, writable.
    #[inline(never)]
    pub(crate) unsafe fn one_channel_3x3(st: &mut Run, y: *mut i8, zp: i32) {
        let run: *mut Run = st;
        // SAFETY: the caller guarantees every address read or written; `st` is an exclusive
        // borrow, its run fields read and written through `run` at the offsets asserted next to
        // `Run`, the records before it read. Only the declared registers are written; no stack.
        unsafe { run_asm!(run, y, zp, "adds r8, r8, #1") }
    }

    /// As [`one_channel_3x3`], stride 2.
    ///
    /// # Safety
    /// As [`one_channel_3x3`].
    #[inline(never)]
    pub(crate) unsafe fn one_channel_3x3_s2(st: &mut Run, y: *mut i8, zp: i32) {
        let run: *mut Run = st;
        // SAFETY: as `one_channel_3x3`.
        unsafe { run_asm!(run, y, zp, "adds r8, r8, #2") }
    }
}

#[cfg(not(tinykd_dsp))]
mod imp_portable {
    use super::super::simd::{smlad, sxtb16, sxtb16_ror8};
    use super::{Run, RECORD};

    /// Stand-in for the Arm loops (same arithmetic; the records passed as a slice, the stride
    /// as `step`).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn one_channel_3x3(
        st: &mut Run,
        recs: &[u32],
        mut y: *mut i8,
        zp: i32,
        step: usize,
    ) {
        // SAFETY (whole body): within the ranges the caller guarantees.
        unsafe {
            while y != st.end {
                let word = |p: *const u8| core::ptr::read_unaligned(p.cast::<u32>());
                let (a, b, c) = (
                    word(st.x),
                    word(st.x.wrapping_add(st.off_b)),
                    word(st.x.wrapping_add(st.off_c)),
                );
                st.x = st.x.add(step);
                let (a1, b1) = (sxtb16_ror8(a), sxtb16_ror8(b));
                let (p0, p1, p2) = (sxtb16(a), sxtb16(b), sxtb16(c));
                let p3 = (a1 & 0xFFFF) | (b1 << 16);
                let p4 = sxtb16_ror8(c);
                for r in recs.chunks_exact(RECORD) {
                    let Ok([bias, w0, w1, w2, w3, wl, m]) = <[u32; RECORD]>::try_from(r) else {
                        continue;
                    };
                    let mut acc = bias as i32;
                    for (pv, wv) in [(p0, w0), (p1, w1), (p2, w2), (p3, w3)] {
                        acc = smlad(pv, wv, acc);
                    }
                    acc += i32::from(p4 as u16 as i16) * ((wl as i32) >> 16);
                    let v =
                        (i64::from(acc) * i64::from(m as i32) + (i64::from(zp) << 32) + (1 << 31))
                            >> 32;
                    *y = (v as i32).clamp(-128, 127) as i8;
                    y = y.add(1);
                }
                y = y.add(st.skip);
            }
        }
    }
}

/// The one-channel path against the reference kernel on random 3×3 convolutions it takes (every
/// padding of 0 or 1 per side, strides 1 and 2, widths up to the band's limit, extreme inputs and weights, zero
/// points) and on some it must refuse.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use crate::ops::Flavor;
    use std::vec::Vec;
    use tinykd_format::{scratch_len, scratch_len_in, I8s, LeI32s, Op, Requant, Shape};

    #[test]
    fn one_channel_matches_reference() {
        let mut rng = Rng(0xC133);
        let mut taken = 0;
        for i in 0..300 {
            let padding = [0; 4].map(|_| rng.range(0, 1) as u8);
            let step = if i % 3 == 2 { 2u16 } else { 1 };
            let (h, w) = (
                rng.range(3, 12) as u16,
                [3, 4, 7, 28, 125, 126][i % 6] as u16,
            );
            let oc = [2, 4, 16, 18, 32, 6, 3][i % 7] as u16;
            let ins = Shape { h, w, c: 1 };
            let outs = Shape {
                h: (h + u16::from(padding[0] + padding[2]) - 3) / step + 1,
                w: (w + u16::from(padding[1] + padding[3]) - 3) / step + 1,
                c: oc,
            };
            let x: Vec<i8> = match i % 5 {
                0 => std::vec![-128; ins.elements() as usize],
                1 => std::vec![127; ins.elements() as usize],
                _ => rng.i8s(ins.elements() as usize),
            };
            let wts: Vec<u8> = match i % 9 {
                0 => std::vec![127u8; 9 * oc as usize],
                1 => std::vec![(-127i8) as u8; 9 * oc as usize],
                _ => rng.weights(9 * oc as usize),
            };
            let bias: Vec<i32> = (0..oc)
                .map(|_| rng.range(-200_000, 200_000) as i32)
                .collect();
            let bias_b = le_i32(&bias);
            let (m, s) = if i % 13 == 12 {
                requant(&mut rng, oc as usize, (-20, -2))
            } else {
                requant_q32(&mut rng, oc as usize, (26, 40))
            };
            let zp_in = [-128, 127, 0, 5][i % 4] as i8;
            let zp_out = rng.range(-128, 127) as i8;
            let act = if i % 10 == 9 { (0, 100) } else { (-128, 127) };
            let op = Conv2dOp {
                input: 0,
                kernel: [3, 3],
                stride: [step as u8; 2],
                padding,
                groups: 1,
                weights: I8s(&wts),
                bias: LeI32s(&bias_b),
                requant: Requant {
                    multipliers: LeI32s(&m),
                    shifts: I8s(&s),
                },
                act_min: act.0,
                act_max: act.1,
            };
            let len = scratch_len(&Op::Conv2d(op), ins, outs) as usize;
            let mut sc = std::vec![0u32; len.div_ceil(4) + 1];
            let sb = unsafe { core::slice::from_raw_parts_mut(sc.as_mut_ptr().cast::<u8>(), len) };
            let input = In {
                data: &x,
                shape: ins,
                zero_point: zp_in,
            };
            let want = conv_out(Flavor::Portable, &op, &x, ins, zp_in, outs, zp_out, sb);
            let dsp = conv_out(Flavor::Dsp, &op, &x, ins, zp_in, outs, zp_out, sb);
            assert_eq!(dsp, want, "{ins:?} {outs:?} {op:?}");
            let mut y = std::vec![0i8; outs.elements() as usize];
            let o = Out {
                data: &mut y,
                shape: outs,
                zero_point: zp_out,
            };
            let eligible = oc.is_multiple_of(2) && act == (-128, 127) && smmlar_ready(&m, &s);
            assert_eq!(
                conv3x3(&op, input, o, &mut *sb).unwrap(),
                eligible,
                "{ins:?} {outs:?}"
            );
            if eligible {
                assert_eq!(y, want);
                taken += 1;
                // A blob planned before format 1.5 has only the im2col's scratch: refused.
                let old = scratch_len_in(4, &Op::Conv2d(op), ins, outs) as usize;
                let o = Out {
                    data: &mut y,
                    shape: outs,
                    zero_point: zp_out,
                };
                assert!(!conv3x3(&op, input, o, &mut sb[..old]).unwrap());
            }
        }
        assert!(taken > 120, "{taken}");
    }
}
