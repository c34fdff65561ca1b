//! Kernels for cores without the DSP extension (Cortex-M0/M0+, also M3): the reference's
//! arithmetic, reorganised. The input is widened once to int16 with the zero point subtracted
//! (no per-MAC subtraction, no per-tap bounds checks), and each weight, loaded once, is used for
//! four output pixels (conv) or each widened input for two output rows (dense), unrolled.

use tinykd_format::{Conv2dOp, DenseOp};

use super::{halves, Rq};
use crate::error::{need, Result};
use crate::ops::{clip, In, Out};

/// Output pixels computed together per weight.
const COLS: usize = 4;

/// Conv2d with `groups = 1` via an int16 im2col of four columns, interleaved value by value:
/// `col[k·4 + j]` is value `k` of output pixel `p0 + j`.
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
    let Some(cols) = halves(scratch, k * COLS) else {
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
            let mut col = cols.iter_mut().skip(j).step_by(COLS);
            for ky in 0..kh {
                for kx in 0..kw {
                    let inside = j < n && ky >= ky0 && ky < ky0 + ny && kx >= kx0 && kx < kx0 + nx;
                    if inside {
                        let s = ((iy0 + ky - ky0) * iw + ix0 + kx - kx0) * ic;
                        for &v in need(x.data.get(s..s + ic))? {
                            *need(col.next())? = (i32::from(v) - zp_in) as i16;
                        }
                    } else {
                        for _ in 0..ic {
                            *need(col.next())? = 0;
                        }
                    }
                }
            }
        }
        let (tile, _) = cols.as_chunks::<COLS>();
        for o in 0..oc {
            let row = need(weights.get(o * k..(o + 1) * k))?;
            let b = need(op.bias.get(o))?;
            let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
            for (&w, &[x0, x1, x2, x3]) in row.iter().zip(tile) {
                let w = i32::from(w as i8);
                a0 = a0.wrapping_add(w * i32::from(x0));
                a1 = a1.wrapping_add(w * i32::from(x1));
                a2 = a2.wrapping_add(w * i32::from(x2));
                a3 = a3.wrapping_add(w * i32::from(x3));
            }
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
            let (mut a0, mut a1) = (need(op.bias.get(o))?, need(op.bias.get(o + 1))?);
            for ((&w0, &w1), &v) in r0.iter().zip(r1).zip(xs) {
                let v = i32::from(v);
                a0 = a0.wrapping_add(i32::from(w0 as i8) * v);
                a1 = a1.wrapping_add(i32::from(w1 as i8) * v);
            }
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
