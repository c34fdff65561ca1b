//! Kernels for cores without the DSP extension (Cortex-M0/M0+, also M3): the reference's
//! arithmetic, reorganised. Conv2d widens its im2col once to biased unsigned halfwords
//! (`x − zp + 256`, corrected by `256·Σw` per sum) that a Thumb-1 micro-kernel reads with
//! immediate offsets, each weight used for four output pixels; dense widens the input once to
//! int16 (zero point subtracted) and uses each value for two output rows.

use tinykd_format::{Conv2dOp, DenseOp};

use super::{halves, Rq};
use crate::error::{need, Result};
use crate::ops::{clip, In, Out};
#[cfg(all(target_arch = "arm", not(tinykd_dsp)))]
use core::arch::asm;

/// Output pixels computed together per weight.
const COLS: usize = 4;

/// What the im2col adds to every value: `x − zp + 256` lies in `[1, 511]`, so the columns hold
/// unsigned halfwords that Cortex-M0 loads with an immediate offset (`LDRH`; `LDRSH` has only a
/// register offset). The sums are corrected by `256·Σw` per output channel.
const BIAS: i32 = 256;

/// Conv2d with `groups = 1` via an int16 im2col of four columns, interleaved value by value:
/// `col[k·4 + j]` is value `k` of output pixel `p0 + j`, plus [`BIAS`].
pub(crate) fn conv2d(op: &Conv2dOp<'_>, x: In<'_>, y: Out<'_>, scratch: &mut [u8]) -> Result<bool> {
    let (ih, iw, ic) = (
        usize::from(x.shape.h),
        usize::from(x.shape.w),
        usize::from(x.shape.c),
    );
    let (ow, oc) = (usize::from(y.shape.w), usize::from(y.shape.c));
    let [kh, kw] = op.kernel.map(usize::from);
    let [sh, sw] = op.stride.map(usize::from);
    let [pt, pl, _, _] = op.padding.map(usize::from);
    if op.groups != 1 || ow == 0 || oc == 0 || ic == 0 {
        return Ok(false);
    }
    let k = kh * kw * ic;
    let Some(cols) = halves(scratch, k.div_ceil(2) * 2 * COLS) else {
        return Ok(false);
    };
    let weights = op.weights.bytes();
    let zp_in = i32::from(x.zero_point);
    let zp_out = i32::from(y.zero_point);
    let pixels = y.data.len() / oc;

    let mut p0 = 0;
    while p0 < pixels {
        let n = COLS.min(pixels - p0);
        for j in 0..COLS {
            let p = p0 + j;
            let (oy, ox) = (p / ow, p % ow);
            let (iy0, ky0, ny) = clip(oy, sh, pt, kh, ih);
            let (ix0, kx0, nx) = clip(ox, sw, pl, kw, iw);
            let jj = j % COLS;
            let (quads, _) = cols.as_chunks_mut::<COLS>();
            let mut q0 = 0;
            for ky in 0..kh {
                for kx in 0..kw {
                    let inside = j < n && ky >= ky0 && ky < ky0 + ny && kx >= kx0 && kx < kx0 + nx;
                    let dst = need(quads.get_mut(q0..q0 + ic))?;
                    if inside {
                        let s = ((iy0 + ky - ky0) * iw + ix0 + kx - kx0) * ic;
                        fill(dst, jj, need(x.data.get(s..s + ic))?, BIAS - zp_in);
                    } else {
                        fill(dst, jj, &[], BIAS);
                    }
                    q0 += ic;
                }
            }
            // For odd k, one padding value (a zero) after the last, for the two-weight steps.
            if let Some(e) = quads.get_mut(q0).and_then(|q| q.get_mut(jj)) {
                *e = BIAS as i16;
            }
        }
        let cols: &[i16] = cols;
        let (tile, _) = cols.as_chunks::<COLS>();
        // Whole steps of two weights; a row of odd length reads one weight of the next row,
        // which meets the padding zero after the columns' last value.
        let pairs = k.div_ceil(2);
        if tile.len() < 2 * pairs {
            return Ok(false);
        }
        for o in 0..oc {
            let at = o * k;
            let b = need(op.bias.get(o))?;
            let steps = if weights.len() - at >= 2 * pairs {
                pairs
            } else {
                k / 2
            };
            let mut a = [b; COLS];
            let mut sum = 0;
            if steps > 0 {
                // SAFETY: `2·steps` weights lie in `weights[at..]` (checked just above) and
                // `2·steps ≤ tile.len()` groups of four values in `cols`.
                sum = unsafe {
                    tile_1x4(
                        weights.as_ptr().add(at),
                        cols.as_ptr().cast(),
                        steps,
                        &mut a,
                    )
                };
            }
            if 2 * steps < k {
                let w = i32::from(need(weights.get(at + k - 1).copied())? as i8);
                for (a, &u) in a.iter_mut().zip(need(tile.get(k - 1))?) {
                    *a = a.wrapping_add(w * i32::from(u));
                }
                sum = sum.wrapping_add(w);
            }
            let [a0, a1, a2, a3] = a.map(|a| a.wrapping_sub(sum.wrapping_mul(BIAS)));
            let rq = Rq::new(
                need(op.requant.multipliers.get(o))?,
                i32::from(need(op.requant.shifts.get(o))?),
                zp_out,
                op.act_min,
                op.act_max,
            );
            for (j, acc) in [a0, a1, a2, a3].into_iter().enumerate().take(n) {
                *need(y.data.get_mut((p0 + j) * oc + o))? = rq.out(acc);
            }
        }
        p0 += n;
    }
    Ok(true)
}

/// Depthwise conv2d (`groups = in = out`) for cores without DSP: per output pixel, per channel,
/// the window's taps (`(x − zp)·w`, weights read in place) with the window clipped once per
/// pixel, and each channel's bias and requantization read from a table the kernel writes into
/// its scratch first (`[bias, multiplier, rounding term, shift]` per channel: 16 bytes, which
/// the weight scratch holds for kernels of 8 taps or more). `Ok(false)`: not handled here.
pub(crate) fn depthwise(
    op: &Conv2dOp<'_>,
    x: In<'_>,
    y: Out<'_>,
    scratch: &mut [u8],
) -> Result<bool> {
    let (ih, iw, c) = (
        usize::from(x.shape.h),
        usize::from(x.shape.w),
        usize::from(x.shape.c),
    );
    let ow = usize::from(y.shape.w);
    let [kh, kw] = op.kernel.map(usize::from);
    let [sh, sw] = op.stride.map(usize::from);
    let [pt, pl, _, _] = op.padding.map(usize::from);
    if usize::from(op.groups) != c || usize::from(y.shape.c) != c || ow == 0 || c == 0 {
        return Ok(false);
    }
    let taps = kh * kw;
    let weights = op.weights.bytes();
    if weights.len() != c * taps {
        return Ok(false);
    }
    let Some(table) = super::words(scratch, 4 * c) else {
        return Ok(false);
    };
    let (table, _) = table.as_chunks_mut::<4>();
    let zp_out = i32::from(y.zero_point);
    let (min, max) = (i32::from(op.act_min), i32::from(op.act_max));
    for (ch, e) in table.iter_mut().enumerate() {
        let shift = i32::from(need(op.requant.shifts.get(ch))?);
        if !(-31..=-2).contains(&shift) {
            return Ok(false);
        }
        let hs = -1 - shift;
        *e = [
            need(op.bias.get(ch))? as u32,
            need(op.requant.multipliers.get(ch))? as u32,
            (1u32 << (hs - 1)),
            hs as u32,
        ];
    }
    let table: &[[u32; 4]] = table;
    let zp_in = i32::from(x.zero_point);
    let xd = x.data;
    for (p, out_px) in y.data.chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        let (iy0, ky0, ny) = clip(oy, sh, pt, kh, ih);
        let (ix0, kx0, nx) = clip(ox, sw, pl, kw, iw);
        if nx == 0 || ny == 0 {
            for (d, e) in out_px.iter_mut().zip(table) {
                *d = out(e, zp_out, min, max, e[0] as i32);
            }
            continue;
        }
        // The window's first input byte (channel 0) and its span per row.
        let base = (iy0 * iw + ix0) * c;
        let span = (nx - 1) * c + 1;
        let last = base + (ny - 1) * iw * c + span + c - 1;
        let xw = need(xd.get(base..last))?;
        if ny == 3 && nx == 3 && kh == 3 && kw == 3 {
            window_3x3(
                xw,
                iw * c,
                c,
                weights,
                table,
                out_px,
                zp_in,
                zp_out,
                min,
                max,
            );
            continue;
        }
        for (ch, (d, e)) in out_px.iter_mut().zip(table).enumerate() {
            let mut acc = e[0] as i32;
            let w_ch = need(weights.get(ch * taps..(ch + 1) * taps))?;
            for dy in 0..ny {
                let s = dy * iw * c + ch;
                let xs = need(xw.get(s..s + span))?;
                let t = (ky0 + dy) * kw + kx0;
                let ws = need(w_ch.get(t..t + nx))?;
                let mac = |acc: i32, xv: i8, wv: u8| {
                    acc.wrapping_add((i32::from(xv) - zp_in) * i32::from(wv as i8))
                };
                if let ([w0, w1, w2], Some(&x0), Some(&x1), Some(&x2)) =
                    (ws, xs.first(), xs.get(c), xs.last())
                {
                    // The usual three taps (xs spans exactly 2c + 1 bytes then).
                    acc = mac(mac(mac(acc, x0, *w0), x1, *w1), x2, *w2);
                } else {
                    for (dx, &wv) in ws.iter().enumerate() {
                        acc = mac(acc, need(xs.get(dx * c).copied())?, wv);
                    }
                }
            }
            *d = out(e, zp_out, min, max, acc);
        }
    }
    Ok(true)
}

/// A whole 3×3 window, every channel: `xw` starts at the window's first input byte and ends
/// after its last (`2·row + 3·c` bytes), `weights` holds 9 per channel. Out of line and with
/// the nine taps at fixed offsets, so that Cortex-M0 keeps its few registers for the sums.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn window_3x3(
    xw: &[i8],
    row: usize,
    c: usize,
    weights: &[u8],
    table: &[[u32; 4]],
    out_px: &mut [i8],
    zp_in: i32,
    zp_out: i32,
    min: i32,
    max: i32,
) {
    if xw.len() < 2 * row + 3 * c || weights.len() < 9 * out_px.len() || table.len() < out_px.len()
    {
        return;
    }
    let (ws, _) = weights.as_chunks::<9>();
    for (ch, ((d, e), w)) in out_px.iter_mut().zip(table).zip(ws).enumerate() {
        let x = |off: usize| -> i32 {
            // SAFETY: every tap offset is at most 2·row + 2·c and ch < c, so the index is below
            // 2·row + 3·c ≤ xw.len(), checked above.
            i32::from(unsafe { *xw.get_unchecked(off + ch) }) - zp_in
        };
        let [w0, w1, w2, w3, w4, w5, w6, w7, w8] = w.map(|b| i32::from(b as i8));
        let mut acc = e[0] as i32;
        for (base, [a, b, d]) in [
            (0, [w0, w1, w2]),
            (row, [w3, w4, w5]),
            (2 * row, [w6, w7, w8]),
        ] {
            acc = acc
                .wrapping_add(x(base) * a)
                .wrapping_add(x(base + c) * b)
                .wrapping_add(x(base + 2 * c) * d);
        }
        *d = out(e, zp_out, min, max, acc);
    }
}

/// Requantizes with a table entry `[bias, multiplier, rounding term, shift]` (the `SMMLA` path
/// of [`Rq`], total shift 33..=62).
#[inline(always)]
fn out(e: &[u32; 4], zp: i32, min: i32, max: i32, acc: i32) -> i8 {
    let high = super::mul_high(acc, e[1] as i32) + e[2] as i32;
    ((high >> e[3]) + zp).max(min).min(max) as i8
}

/// Column `jj` of `dst` ← `src + add` (or `add` alone where `src` is empty: a padded tap).
/// Out of line: inlined, its loop loses its registers to the stack on Cortex-M0.
#[inline(never)]
fn fill(dst: &mut [[i16; COLS]], jj: usize, src: &[i8], add: i32) {
    if src.is_empty() {
        for q in dst {
            if let Some(e) = q.get_mut(jj) {
                *e = add as i16;
            }
        }
    } else {
        for (q, &v) in dst.iter_mut().zip(src) {
            if let Some(e) = q.get_mut(jj) {
                *e = (i32::from(v) + add) as i16;
            }
        }
    }
}

/// Dense: the input widened once into `scratch`, then two output rows per pass.
pub(crate) fn dense(op: &DenseOp<'_>, x: In<'_>, y: Out<'_>, scratch: &mut [u8]) -> Result<bool> {
    let n = x.data.len();
    let Some(xs) = halves(scratch, n) else {
        return Ok(false);
    };
    let zp = i32::from(x.zero_point);
    for (d, &v) in xs.iter_mut().zip(x.data) {
        *d = (i32::from(v) - zp) as i16;
    }
    let xs: &[i16] = xs;
    let weights = op.weights.bytes();
    let zp_out = i32::from(y.zero_point);
    let rq = |o: usize| -> Result<Rq> {
        Ok(Rq::new(
            need(op.requant.multipliers.get(o))?,
            i32::from(need(op.requant.shifts.get(o))?),
            zp_out,
            op.act_min,
            op.act_max,
        ))
    };
    let row = |o: usize| weights.get(o * n..(o + 1) * n);
    let out_n = y.data.len();
    let mut o = 0;
    while o < out_n {
        if o + 2 <= out_n {
            let (r0, r1) = (need(row(o))?, need(row(o + 1))?);
            let mut a = [need(op.bias.get(o))?, need(op.bias.get(o + 1))?];
            if r0.len() == n && r1.len() == n && xs.len() == n && n > 0 {
                // SAFETY: both rows and the widened input hold n ≥ 1 values.
                unsafe { rows_2x1(r0.as_ptr(), r1.as_ptr(), xs.as_ptr(), n, &mut a) };
            }
            let [a0, a1] = a;
            *need(y.data.get_mut(o))? = rq(o)?.out(a0);
            *need(y.data.get_mut(o + 1))? = rq(o + 1)?.out(a1);
            o += 2;
        } else {
            let mut a0 = need(op.bias.get(o))?;
            for (&w0, &v) in need(row(o))?.iter().zip(xs) {
                a0 = a0.wrapping_add(i32::from(w0 as i8) * i32::from(v));
            }
            *need(y.data.get_mut(o))? = rq(o)?.out(a0);
            o += 1;
        }
    }
    Ok(true)
}

/// The conv micro-kernel: `steps` steps of two weights (`w`, int8) against four columns of
/// biased values (`x`, four halfwords per weight), accumulating `w·x` into `a`; returns the sum
/// of the weights (for the bias correction). Thumb-1 assembly on Arm: 31 instructions per 8 MACs.
///
/// # Safety
/// `w` is readable for `2·steps` bytes, `x` is 2-aligned and readable for `8·steps` halfwords,
/// and `steps ≥ 1`.
#[cfg(all(target_arch = "arm", not(tinykd_dsp)))]
#[inline(always)]
unsafe fn tile_1x4(w: *const u8, x: *const u16, steps: usize, a: &mut [i32; COLS]) -> i32 {
    // The accumulators and the weight sum live in r8, r10, r11, r12 and lr (Thumb-1 `ADD` takes
    // high registers), loaded from and stored back to `acc` (`[a0, a1, a2, a3, sum]`).
    let mut acc = [a[0], a[1], a[2], a[3], 0];
    // The weights are read at `end + i` for i = −2·steps … −1 (LDRSB has only a register
    // offset), the values with immediate offsets from a pointer that moves 16 bytes per step.
    let end = w.wrapping_add(2 * steps);
    let neg = 0usize.wrapping_sub(2 * steps);
    // SAFETY: reads 2·steps bytes below `end` (inside `w`'s range) and 8·steps halfwords from
    // the 2-aligned `x`, which the caller guarantees; `steps ≥ 1`, so the counter, starting at
    // −2·steps and rising by 2, reaches 0. It reads and writes the five words of `acc` (r5
    // points there; r9 keeps the pointer during the loop). Only declared registers are written,
    // no stack.
    unsafe {
        asm!(
            "ldr r4, [r5, #0]",
            "mov r8, r4",
            "ldr r4, [r5, #4]",
            "mov r10, r4",
            "ldr r4, [r5, #8]",
            "mov r11, r4",
            "ldr r4, [r5, #12]",
            "mov r12, r4",
            "ldr r4, [r5, #16]",
            "mov lr, r4",
            "mov r9, r5",
            "2:",
            "ldrsb r4, [r0, r2]",
            "ldrh r5, [r3, #0]",
            "muls r5, r4, r5",
            "add r8, r5",
            "ldrh r5, [r3, #2]",
            "muls r5, r4, r5",
            "add r10, r5",
            "ldrh r5, [r3, #4]",
            "muls r5, r4, r5",
            "add r11, r5",
            "ldrh r5, [r3, #6]",
            "muls r5, r4, r5",
            "add r12, r5",
            "add lr, r4",
            "ldrsb r4, [r1, r2]",
            "ldrh r5, [r3, #8]",
            "muls r5, r4, r5",
            "add r8, r5",
            "ldrh r5, [r3, #10]",
            "muls r5, r4, r5",
            "add r10, r5",
            "ldrh r5, [r3, #12]",
            "muls r5, r4, r5",
            "add r11, r5",
            "ldrh r5, [r3, #14]",
            "muls r5, r4, r5",
            "add r12, r5",
            "add lr, r4",
            "adds r3, #16",
            "adds r2, #2",
            "bne 2b",
            "mov r5, r9",
            "mov r4, r8",
            "str r4, [r5, #0]",
            "mov r4, r10",
            "str r4, [r5, #4]",
            "mov r4, r11",
            "str r4, [r5, #8]",
            "mov r4, r12",
            "str r4, [r5, #12]",
            "mov r4, lr",
            "str r4, [r5, #16]",
            in("r0") end,
            in("r1") end.wrapping_add(1),
            inout("r2") neg => _,
            inout("r3") x => _,
            out("r4") _,
            inout("r5") acc.as_mut_ptr() => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        );
    }
    let [a0, a1, a2, a3, sum] = acc;
    *a = [a0, a1, a2, a3];
    sum
}

/// Portable stand-in for the Arm micro-kernel (same contract), for host tests and other cores.
///
/// # Safety
/// As the Arm version.
#[cfg(not(all(target_arch = "arm", not(tinykd_dsp))))]
#[inline(always)]
unsafe fn tile_1x4(w: *const u8, x: *const u16, steps: usize, a: &mut [i32; COLS]) -> i32 {
    // SAFETY: the caller guarantees both ranges.
    let (w, x) = unsafe {
        (
            core::slice::from_raw_parts(w, 2 * steps),
            core::slice::from_raw_parts(x, 8 * steps),
        )
    };
    let mut sum = 0i32;
    for (&w, xs) in w.iter().zip(x.chunks_exact(COLS)) {
        let w = i32::from(w as i8);
        for (a, &u) in a.iter_mut().zip(xs) {
            *a = a.wrapping_add(w * i32::from(u));
        }
        sum = sum.wrapping_add(w);
    }
    sum
}

/// The dense micro-kernel: two weight rows (`w0`, `w1`, int8) against the widened input (`x`,
/// int16), `n` values, accumulating into `a`. Thumb-1 assembly on Arm: `LDRSH` and `LDRSB` with
/// register offsets counting up to 0 from −n, 10 instructions per 2 MACs; it borrows r6 (which
/// `asm!` may not name) for the halfword index and restores it.
///
/// # Safety
/// `w0`, `w1` readable for `n` bytes, `x` 2-aligned and readable for `n` halfwords, `n ≥ 1`.
#[cfg(all(target_arch = "arm", not(tinykd_dsp)))]
#[inline(always)]
unsafe fn rows_2x1(w0: *const u8, w1: *const u8, x: *const i16, n: usize, a: &mut [i32; 2]) {
    let mut acc = *a;
    let neg = 0usize.wrapping_sub(n);
    // SAFETY: reads w0[0..n], w1[0..n] and x[0..n] (as `end + i` for i = −n … −1 and
    // `xend + 2i`), which the caller guarantees; n ≥ 1, so the counter reaches 0. r6 is saved
    // in r12 and restored before the block ends; r8–r12 are declared clobbered; `acc` (two words)
    // is read and written through r5/r9. No stack.
    unsafe {
        asm!(
            "mov r12, r6",
            "mov r9, r5",
            "ldr r4, [r5, #0]",
            "mov r8, r4",
            "ldr r4, [r5, #4]",
            "mov r10, r4",
            "lsls r6, r2, #1",
            "2:",
            "ldrsh r5, [r3, r6]",
            "ldrsb r4, [r0, r2]",
            "muls r4, r5, r4",
            "add r8, r4",
            "ldrsb r4, [r1, r2]",
            "muls r4, r5, r4",
            "add r10, r4",
            "adds r6, #2",
            "adds r2, #1",
            "bne 2b",
            "mov r5, r9",
            "mov r4, r8",
            "str r4, [r5, #0]",
            "mov r4, r10",
            "str r4, [r5, #4]",
            "mov r6, r12",
            in("r0") w0.wrapping_add(n),
            in("r1") w1.wrapping_add(n),
            inout("r2") neg => _,
            in("r3") x.wrapping_add(n),
            out("r4") _,
            inout("r5") acc.as_mut_ptr() => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r12") _,
            options(nostack),
        );
    }
    *a = acc;
}

/// Portable stand-in for the Arm dense micro-kernel (same contract).
///
/// # Safety
/// As the Arm version.
#[cfg(not(all(target_arch = "arm", not(tinykd_dsp))))]
#[inline(always)]
unsafe fn rows_2x1(w0: *const u8, w1: *const u8, x: *const i16, n: usize, a: &mut [i32; 2]) {
    // SAFETY: the caller guarantees the three ranges.
    let (w0, w1, x) = unsafe {
        (
            core::slice::from_raw_parts(w0, n),
            core::slice::from_raw_parts(w1, n),
            core::slice::from_raw_parts(x, n),
        )
    };
    let [a0, a1] = a;
    for ((&u, &v), &x) in w0.iter().zip(w1).zip(x) {
        *a0 = a0.wrapping_add(i32::from(u as i8) * i32::from(x));
        *a1 = a1.wrapping_add(i32::from(v as i8) * i32::from(x));
    }
}
