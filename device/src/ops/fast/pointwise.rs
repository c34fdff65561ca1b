//! 1×1 convolution (stride 1, no padding) on the DSP extension: a tile of four output channels
//! × one pixel, the input read in place.
//!
//! A 1×1 convolution is a matrix product with no im2col to build: the pixel's `ic` input bytes
//! are the column. The general path (`dsp::conv2d`) still widens them into an im2col tile and
//! runs one channel × four pixels, re-deriving each channel's parameters per tile and
//! overlapping its last tile; for the small maps of the late layers (7×7 = 49 pixels) that
//! bookkeeping is a third of the instructions. Here the orientation is turned: four channels'
//! weights are widened once into the scratch (as `(w0, w2)`, `(w1, w3)` pairs, see the lane
//! order in `dsp`), with the input zero point folded into their biases (`bias − zp·Σw`), and
//! one asm loop runs every pixel against them: per four values of the reduction `LDR` +
//! 2 `SXTB16` of the input, then for each channel `LDRD` + 2 `SMLAD` (15 instructions per
//! 16 MACs); per pixel the four biases in one `LDM`, requantization in two instructions per
//! output (`SMMLAR` with the output zero point as its accumulate operand, then `SSAT`; the
//! multipliers the exporter writes allow it, see `smmlar_multiplier`) and the four outputs
//! stored as one word.

use tinykd_format::Conv2dOp;

use super::{smmlar_multiplier, words};
use crate::error::Result;
use crate::ops::{In, Out};

/// The state of [`pointwise_4x1`]: read by `LDM` and field offset (`repr(C)`; the order of the
/// first four fields is the register order of that `LDM`, asserted below).
#[repr(C)]
pub(crate) struct Pointwise {
    /// The four channels' biases with the input zero point folded in.
    pub(crate) bias: *const i32,
    /// The current pixel's first input byte; advanced by the loop.
    pub(crate) x: *const u8,
    /// The four channels' widened weights: per group of four values, 8 words (channel-major
    /// pairs `(w0, w2)`, `(w1, w3)`).
    pub(crate) w: *const u32,
    /// Passes of the MAC loop: `ic / 32` (eight groups per pass) or `ic / 16` (four).
    pub(crate) n: usize,
    /// The four channels' `SMMLAR` multipliers (`smmlar_multiplier`), then the output zero point.
    pub(crate) rq: *const i32,
    /// The current pixel's four outputs; advanced by `oc` bytes per pixel.
    pub(crate) y: *mut i8,
    pub(crate) oc: usize,
    /// `y` after the last pixel.
    pub(crate) end: *mut i8,
    /// `act_min` and `act_max` repeated in the four bytes of a word (for `SSUB8`/`SEL`).
    pub(crate) min: u32,
    pub(crate) max: u32,
}

#[cfg(target_arch = "arm")]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Pointwise, bias) == 0 && offset_of!(Pointwise, x) == 4);
    assert!(offset_of!(Pointwise, w) == 8 && offset_of!(Pointwise, n) == 12);
    assert!(offset_of!(Pointwise, rq) == 16 && offset_of!(Pointwise, y) == 20);
    assert!(offset_of!(Pointwise, oc) == 24 && offset_of!(Pointwise, end) == 28);
    assert!(offset_of!(Pointwise, min) == 32 && offset_of!(Pointwise, max) == 36);
};

/// Conv2d 1×1, stride 1, no padding, `ic` a multiple of 16 and `oc` of 4, every channel's
/// multiplier `SMMLAR`-ready (`smmlar_multiplier`). `Ok(false)`: not handled here (the caller takes the general path).
pub(crate) fn conv1x1(
    op: &Conv2dOp<'_>,
    x: In<'_>,
    y: Out<'_>,
    scratch: &mut [u8],
) -> Result<bool> {
    let (ic, oc) = (usize::from(x.shape.c), usize::from(y.shape.c));
    if op.kernel != [1, 1]
        || op.stride != [1, 1]
        || op.padding != [0; 4]
        || op.groups != 1
        || ic == 0
        || !ic.is_multiple_of(16)
        || oc == 0
        || !oc.is_multiple_of(4)
    {
        return Ok(false);
    }
    let pixels = y.data.len() / oc;
    let weights = op.weights.bytes();
    let (bias, mult) = (op.bias.bytes(), op.requant.multipliers.bytes());
    let shifts = op.requant.shifts.bytes();
    if pixels == 0
        || y.data.len() != pixels * oc
        || x.data.len() != pixels * ic
        || weights.len() != oc * ic
        || bias.len() < 4 * oc
        || mult.len() < 4 * oc
        || shifts.len() < oc
    {
        return Ok(false);
    }
    let Some(wq) = words(scratch, 2 * ic) else {
        return Ok(false);
    };
    let zp_in = i32::from(x.zero_point);
    let zp_out = i32::from(y.zero_point);
    let clamp = op.act_min != i8::MIN || op.act_max != i8::MAX;
    let eight = ic.is_multiple_of(32);
    let (bias, _) = bias.as_chunks::<4>();
    let (mult, _) = mult.as_chunks::<4>();
    let y0 = y.data.as_mut_ptr();
    for (q, rows) in weights.chunks_exact(4 * ic).enumerate() {
        let mut sums = [0i32; 4];
        // SAFETY: `rows` is four rows of ic bytes (ic/4 whole groups, an even count); `wq` holds
        // 2·ic = 8·(ic/4) words, 4-aligned.
        unsafe { widen_rows4(rows.as_ptr(), ic / 4, wq.as_mut_ptr(), &mut sums) };
        let mut biases = [0i32; 4];
        let mut rq = [0, 0, 0, 0, zp_out];
        for (c, sum) in sums.into_iter().enumerate() {
            let o = 4 * q + c;
            let (Some(b), Some(m), Some(&s)) = (bias.get(o), mult.get(o), shifts.get(o)) else {
                return Ok(false);
            };
            // A multiplier not written for `SMMLAR` (an older exporter): the caller redoes the
            // whole op on the general path (in practice at the first channel).
            let Some(m) = smmlar_multiplier(i32::from_le_bytes(*m), s as i8) else {
                return Ok(false);
            };
            if let (Some(bd), Some(md)) = (biases.get_mut(c), rq.get_mut(c)) {
                *bd = i32::from_le_bytes(*b).wrapping_sub(zp_in.wrapping_mul(sum));
                *md = m;
            }
        }
        let mut st = Pointwise {
            bias: biases.as_ptr(),
            x: x.data.as_ptr().cast(),
            w: wq.as_ptr(),
            n: if eight { ic / 32 } else { ic / 16 },
            rq: rq.as_ptr(),
            y: y0.wrapping_add(4 * q),
            oc,
            end: y0.wrapping_add(4 * q + pixels * oc),
            min: u32::from_le_bytes([op.act_min as u8; 4]),
            max: u32::from_le_bytes([op.act_max as u8; 4]),
        };
        // SAFETY: `pixels ≥ 1` pixels of `ic` input bytes each (x.data.len() = pixels·ic),
        // `wq` holds the four widened rows (2·ic words, 4-aligned), the state's biases and
        // multipliers live on this stack frame,
        // and the four output bytes of pixel p, y0 + p·oc + 4q .. + 4, lie inside
        // y.data (oc·pixels bytes, 4q + 4 ≤ oc).
        unsafe {
            if clamp {
                pointwise_4x1_clamp(&mut st, eight);
            } else {
                pointwise_4x1(&mut st, eight);
            }
        }
    }
    Ok(true)
}

#[cfg(tinykd_dsp)]
use imp_dsp::{pointwise_4x1, pointwise_4x1_clamp, widen_rows4};
#[cfg(not(tinykd_dsp))]
use imp_portable::{pointwise_4x1, pointwise_4x1_clamp, widen_rows4};

#[cfg(tinykd_dsp)]
mod imp_dsp {
    use core::arch::asm;

    use super::Pointwise;

    /// One 4-channel × every-pixel pass; `$clamp` are the instructions clamping the packed
    /// outputs in r0 to `[min, max]` (empty when they are the full int8 range).
    /// One group of four values of the reduction against the four channels: 15 instructions,
    /// 16 MACs.
    macro_rules! group {
        () => {
            concat!(
                "ldr r4, [r10], #4\n",
                "sxtb16 r5, r4, ror #8\n",
                "sxtb16 r4, r4\n",
                "ldrd r8, r9, [r11], #8\n",
                "smlad r0, r8, r4, r0\n",
                "smlad r0, r9, r5, r0\n",
                "ldrd r8, r9, [r11], #8\n",
                "smlad r1, r8, r4, r1\n",
                "smlad r1, r9, r5, r1\n",
                "ldrd r8, r9, [r11], #8\n",
                "smlad r2, r8, r4, r2\n",
                "smlad r2, r9, r5, r2\n",
                "ldrd r8, r9, [r11], #8\n",
                "smlad r3, r8, r4, r3\n",
                "smlad r3, r9, r5, r3\n",
            )
        };
    }

    /// Clamps the four packed outputs in r0 to `[min, max]` (the state's words at 32 and 36).
    macro_rules! clamp {
        () => {
            concat!(
                "ldrd r4, r5, [r12, #32]\n",
                "ssub8 r1, r0, r4\n",
                "sel r0, r0, r4\n",
                "ssub8 r1, r0, r5\n",
                "sel r0, r5, r0\n",
            )
        };
    }

    macro_rules! pointwise_asm {
        ($st:expr, [$($group:expr),*], [$($clamp:expr),*]) => {
            asm!(
                "1:",
                // bias pointer, x, w, passes; then the four biases.
                "ldm r12, {{r8, r10, r11, lr}}",
                "ldm r8, {{r0, r1, r2, r3}}",
                "2:",
                $($group,)*
                "subs lr, lr, #1",
                "bne 2b",
                // The next pixel's input follows this one's.
                "str r10, [r12, #4]",
                // Requantization: one `SMMLAR` (zero point as its accumulate operand) + `SSAT`.
                "ldr r8, [r12, #16]",
                "ldm r8, {{r4, r5, r9, r10, r11}}",
                "smmlar r0, r0, r4, r11",
                "smmlar r1, r1, r5, r11",
                "smmlar r2, r2, r9, r11",
                "smmlar r3, r3, r10, r11",
                "ssat r0, #8, r0",
                "ssat r1, #8, r1",
                "ssat r2, #8, r2",
                "ssat r3, #8, r3",
                "bfi r0, r1, #8, #8",
                "bfi r0, r2, #16, #8",
                "bfi r0, r3, #24, #8",
                $($clamp,)*
                "ldrd r4, r5, [r12, #20]",
                "str r0, [r4]",
                "add r4, r4, r5",
                "str r4, [r12, #20]",
                "ldr r5, [r12, #28]",
                "cmp r4, r5",
                "bne 1b",
                in("r12") $st,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                out("lr") _,
                options(nostack),
            )
        };
    }

    /// Every pixel against four channels (see the module docs), outputs in the full int8 range;
    /// `eight`: eight groups per pass of the MAC loop (`n = ic/32`), else four (`n = ic/16`).
    ///
    /// # Safety
    /// `st` as `conv1x1` sets it up: `st.y < st.end`, `(end − y)/oc` pixels of `16·n` (`32·n`
    /// with `eight`) input bytes at `x`, `w` 4-aligned with that many halfword pairs for four
    /// channels, four biases and 5 requantization words (multipliers, zero point), each pixel's
    /// four output bytes writable.
    #[inline(never)]
    pub(crate) unsafe fn pointwise_4x1(st: &mut Pointwise, eight: bool) {
        let st: *mut Pointwise = st;
        // SAFETY: the caller guarantees every address read or written; `st` is an exclusive
        // borrow, read and updated at the field offsets asserted next to `Pointwise`. Only the
        // declared registers are written; no stack use; flags and the Q flag are clobbered.
        unsafe {
            if eight {
                pointwise_asm!(
                    st,
                    [
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!()
                    ],
                    []
                )
            } else {
                pointwise_asm!(st, [group!(), group!(), group!(), group!()], [])
            }
        }
    }

    /// As [`pointwise_4x1`], clamping the outputs to `[min, max]` with `SSUB8`/`SEL`.
    ///
    /// # Safety
    /// As [`pointwise_4x1`].
    #[inline(never)]
    pub(crate) unsafe fn pointwise_4x1_clamp(st: &mut Pointwise, eight: bool) {
        let st: *mut Pointwise = st;
        // SAFETY: as `pointwise_4x1`.
        unsafe {
            if eight {
                pointwise_asm!(
                    st,
                    [
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!(),
                        group!()
                    ],
                    [clamp!()]
                )
            } else {
                pointwise_asm!(st, [group!(), group!(), group!(), group!()], [clamp!()])
            }
        }
    }

    /// Widens four weight rows of `groups` groups of four (contiguous at `src`) into the pairs
    /// `(w0, w2)`, `(w1, w3)`: row c's group i at words `8i + 2c`, `8i + 2c + 1` of `dst`; the
    /// rows' sums go to `sums`.
    ///
    /// # Safety
    /// `src` readable for `16·groups` bytes, `dst` 4-aligned and writable for `8·groups` words,
    /// `groups` even and ≥ 2.
    #[inline(always)]
    pub(crate) unsafe fn widen_rows4(
        src: *const u8,
        groups: usize,
        dst: *mut u32,
        sums: &mut [i32; 4],
    ) {
        // SAFETY: reads 16·groups bytes from `src` (LDR: unaligned allowed) and writes every
        // word of dst[..8·groups] (STRD, 4-aligned) and the four sums, as the caller
        // guarantees; no stack.
        unsafe {
            asm!(
                "mov {one}, #1",
                "orr {one}, {one}, {one}, lsl #16",
                "mov {c}, #4",
                "3:",
                "mov {n}, {g}",
                "mov {d}, {dst}",
                "mov {s}, #0",
                "2:",
                "ldr {w}, [{src}], #4",
                "sxtb16 {o}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "strd {w}, {o}, [{d}], #32",
                "smlad {s}, {w}, {one}, {s}",
                "smlad {s}, {o}, {one}, {s}",
                "ldr {w}, [{src}], #4",
                "sxtb16 {o}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "strd {w}, {o}, [{d}], #32",
                "smlad {s}, {w}, {one}, {s}",
                "smlad {s}, {o}, {one}, {s}",
                "subs {n}, {n}, #2",
                "bne 2b",
                "str {s}, [{sums}], #4",
                "add {dst}, {dst}, #8",
                "subs {c}, {c}, #1",
                "bne 3b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                g = in(reg) groups,
                sums = inout(reg) sums.as_mut_ptr() => _,
                one = out(reg) _,
                c = out(reg) _,
                n = out(reg) _,
                d = out(reg) _,
                s = out(reg) _,
                w = out(reg) _,
                o = out(reg) _,
                options(nostack),
            );
        }
    }
}

#[cfg(not(tinykd_dsp))]
mod imp_portable {
    use super::super::simd::{smlad, sxtb16, sxtb16_ror8};
    use super::Pointwise;

    /// Stand-in for the Arm loop (same contract and arithmetic).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn pointwise_4x1(st: &mut Pointwise, eight: bool) {
        // SAFETY: as the caller guarantees.
        unsafe { run(st, eight, false) }
    }

    /// Stand-in for the Arm loop with the clamp.
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn pointwise_4x1_clamp(st: &mut Pointwise, eight: bool) {
        // SAFETY: as the caller guarantees.
        unsafe { run(st, eight, true) }
    }

    unsafe fn run(st: &mut Pointwise, eight: bool, clamp: bool) {
        // SAFETY (whole body): within the ranges the caller guarantees.
        unsafe {
            while st.y != st.end {
                let mut a: [i32; 4] = core::ptr::read(st.bias.cast());
                let mut w = st.w;
                for _ in 0..st.n * if eight { 8 } else { 4 } {
                    let v = core::ptr::read_unaligned(st.x.cast::<u32>());
                    st.x = st.x.add(4);
                    let (xe, xo) = (sxtb16(v), sxtb16_ror8(v));
                    for acc in a.iter_mut() {
                        *acc = smlad(*w.add(1), xo, smlad(*w, xe, *acc));
                        w = w.add(2);
                    }
                }
                let zp = i64::from(*st.rq.add(4));
                for (c, acc) in a.into_iter().enumerate() {
                    let m = i64::from(*st.rq.add(c));
                    let high = (i64::from(acc) * m + (zp << 32) + (1 << 31)) >> 32;
                    let mut r = (high as i32).clamp(-128, 127) as i8;
                    if clamp {
                        r = r.max(st.min as u8 as i8).min(st.max as u8 as i8);
                    }
                    *st.y.add(c) = r;
                }
                st.y = st.y.add(st.oc);
            }
        }
    }

    /// Stand-in for the Arm widening (same contract).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn widen_rows4(
        src: *const u8,
        groups: usize,
        dst: *mut u32,
        sums: &mut [i32; 4],
    ) {
        // SAFETY: as the caller guarantees.
        unsafe {
            for (c, sum) in sums.iter_mut().enumerate() {
                *sum = 0;
                for i in 0..groups {
                    let v = core::ptr::read_unaligned(src.add(4 * (c * groups + i)).cast::<u32>());
                    let (e, o) = (sxtb16(v), sxtb16_ror8(v));
                    *dst.add(8 * i + 2 * c) = e;
                    *dst.add(8 * i + 2 * c + 1) = o;
                    *sum = smlad(o, 0x0001_0001, smlad(e, 0x0001_0001, *sum));
                }
            }
        }
    }
}

/// The 4×1 path against the reference kernel on random 1×1 convolutions it takes (and a few it
/// must refuse), with extreme inputs, weights, biases and zero points, full and clamped
/// activation ranges, and every shift of the folded range.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use crate::ops::Flavor;
    use std::vec::Vec;
    use tinykd_format::{scratch_len, I8s, LeI32s, Op, Requant, Shape};

    #[test]
    fn pointwise_matches_reference() {
        let mut rng = Rng(0x1_1C0);
        let mut taken = 0;
        for i in 0..300 {
            let ic = if i % 13 == 12 {
                8
            } else {
                16 * rng.range(1, 4) as u16
            };
            let oc = if i % 10 == 9 {
                6
            } else {
                4 * rng.range(1, 6) as u16
            };
            let (h, w) = (rng.range(1, 7) as u16, rng.range(1, 7) as u16);
            let ins = Shape { h, w, c: ic };
            let outs = Shape { h, w, c: oc };
            let x: Vec<i8> = match i % 4 {
                0 => std::vec![-128; ins.elements() as usize],
                1 => std::vec![127; ins.elements() as usize],
                _ => rng.i8s(ins.elements() as usize),
            };
            let wts: Vec<u8> = match i % 7 {
                0 => std::vec![127u8; (oc * ic) as usize],
                1 => std::vec![(-127i8) as u8; (oc * ic) as usize],
                _ => rng.weights((oc * ic) as usize),
            };
            let bias: Vec<i32> = (0..oc)
                .map(|_| rng.range(-2_000_000, 2_000_000) as i32)
                .collect();
            let bias_b = le_i32(&bias);
            // Multipliers as the exporter writes them (SMMLAR-ready), and every 11th op with
            // full-precision ones, which this path must refuse.
            let (m, s) = if i % 11 == 10 {
                requant(&mut rng, oc as usize, (-31, -2))
            } else {
                requant_q32(&mut rng, oc as usize, (24, 48))
            };
            let zp_in = [-128, 127, 0][i % 3] as i8;
            let zp_out = if i % 5 == 0 {
                rng.range(-128, 127) as i8
            } else {
                -128
            };
            let act = if i % 2 == 0 {
                (-128, 127)
            } else {
                act_range(&mut rng)
            };
            let op = Conv2dOp {
                input: 0,
                kernel: [1, 1],
                stride: [1, 1],
                padding: [0; 4],
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
            let run =
                |flavor, sb: &mut [u8]| conv_out(flavor, &op, &x, ins, zp_in, outs, zp_out, sb);
            let want = run(Flavor::Portable, sb);
            assert_eq!(run(Flavor::Dsp, sb), want, "{ins:?} {outs:?} {op:?}");
            let mut y = std::vec![0i8; outs.elements() as usize];
            let i = In {
                data: &x,
                shape: ins,
                zero_point: zp_in,
            };
            let o = Out {
                data: &mut y,
                shape: outs,
                zero_point: zp_out,
            };
            let eligible = ic % 16 == 0 && oc % 4 == 0 && smmlar_ready(&m, &s);
            assert_eq!(conv1x1(&op, i, o, sb).unwrap(), eligible);
            if eligible {
                assert_eq!(y, want);
                taken += 1;
            }
        }
        assert!(taken > 150, "{taken}");
    }
}
