//! Max pooling: the largest valid cell of each window, per channel; padded cells never win
//! (SPEC §3). Output quantization equals the input's, so no rescaling.

use tinykd_format::PoolOp;

use super::{clip, Flavor, In, Out};
use crate::error::{need, Result};

/// Runs one max pool with the given kernels (the DSP one where it applies).
pub(crate) fn max_pool2d_with(flavor: Flavor, op: &PoolOp, x: In<'_>, y: Out<'_>) -> Result<()> {
    #[cfg(all(target_arch = "arm", tinykd_dsp))]
    if flavor == Flavor::Dsp && x.shape.c.is_multiple_of(4) {
        return max_pool2d_dsp(op, x, y);
    }
    let _ = flavor;
    max_pool2d(op, x, y)
}

/// Four channels at a time: the signed bytewise max of two words is `SSUB8` (its GE flags are
/// exactly `a ≥ b` per byte) and `SEL`. Channels a multiple of 4; the same windows and values
/// as [`max_pool2d`].
#[cfg(all(target_arch = "arm", tinykd_dsp))]
fn max_pool2d_dsp(op: &PoolOp, x: In<'_>, y: Out<'_>) -> Result<()> {
    let (ih, iw, c) = (
        usize::from(x.shape.h),
        usize::from(x.shape.w),
        usize::from(x.shape.c),
    );
    let ow = usize::from(y.shape.w).max(1);
    let [kh, kw] = op.kernel.map(usize::from);
    let [sh, sw] = op.stride.map(usize::from);
    let [pt, pl, _, _] = op.padding.map(usize::from);
    let c = c.max(4);
    let xb = super::fast::as_bytes(x.data);
    let word = |at: usize| -> Result<u32> {
        let b: &[u8; 4] = need(xb.get(at..at + 4).and_then(|b| b.try_into().ok()))?;
        Ok(u32::from_le_bytes(*b))
    };
    for (p, out_px) in y.data.chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        let (iy0, _, ny) = clip(oy, sh, pt, kh, ih);
        let (ix0, _, nx) = clip(ox, sw, pl, kw, iw);
        if (ny, nx) == (2, 2) {
            // A whole 2×2 window (the usual pool): four cells of c bytes, word by word.
            let cell = |iy: usize, ix: usize| {
                let at = (iy * iw + ix) * c;
                need(xb.get(at..at + c))
            };
            let (a, b) = (cell(iy0, ix0)?, cell(iy0, ix0 + 1)?);
            let (d, e) = (cell(iy0 + 1, ix0)?, cell(iy0 + 1, ix0 + 1)?);
            let w = |v: &[u8]| u32::from_le_bytes(v.try_into().unwrap_or([0x80; 4]));
            let cells = a.chunks_exact(4).zip(b.chunks_exact(4));
            let cells = cells.zip(d.chunks_exact(4).zip(e.chunks_exact(4)));
            for (out, ((a, b), (d, e))) in out_px.chunks_exact_mut(4).zip(cells) {
                let m = smax4(smax4(w(a), w(b)), smax4(w(d), w(e)));
                for (o, s) in out.iter_mut().zip(m.to_le_bytes()) {
                    *o = s as i8;
                }
            }
            continue;
        }
        for (j, out) in out_px.chunks_exact_mut(4).enumerate() {
            let mut m = 0x8080_8080u32; // −128 everywhere (validation: ≥ 1 valid cell)
            for iy in iy0..iy0 + ny {
                for ix in ix0..ix0 + nx {
                    m = smax4(m, word((iy * iw + ix) * c + 4 * j)?);
                }
            }
            for (d, s) in out.iter_mut().zip(m.to_le_bytes()) {
                *d = s as i8;
            }
        }
    }
    Ok(())
}

/// The bytewise signed max of two words of four int8 values.
#[cfg(all(target_arch = "arm", tinykd_dsp))]
#[inline(always)]
fn smax4(a: u32, b: u32) -> u32 {
    let m: u32;
    // SAFETY: register-only DSP instructions (`SEL` reads the GE flags `SSUB8` just set).
    unsafe {
        core::arch::asm!(
            "ssub8 {m}, {a}, {b}",
            "sel {m}, {a}, {b}",
            m = out(reg) m,
            a = in(reg) a,
            b = in(reg) b,
            options(pure, nomem, nostack),
        );
    }
    m
}

/// Runs one max pool (the reference).
pub(crate) fn max_pool2d(op: &PoolOp, x: In<'_>, y: Out<'_>) -> Result<()> {
    let (ih, iw, c) = (
        usize::from(x.shape.h),
        usize::from(x.shape.w),
        usize::from(x.shape.c),
    );
    let ow = usize::from(y.shape.w);
    let [kh, kw] = op.kernel.map(usize::from);
    let [sh, sw] = op.stride.map(usize::from);
    let [pt, pl, _, _] = op.padding.map(usize::from);
    // Zero sizes cannot pass validation; `max(1)` keeps even the impossible case panic-free.
    let (ow, c) = (ow.max(1), c.max(1));
    for (p, out_px) in y.data.chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        let (iy0, _, ny) = clip(oy, sh, pt, kh, ih);
        let (ix0, _, nx) = clip(ox, sw, pl, kw, iw);
        out_px.fill(i8::MIN); // validation guarantees ≥ 1 valid cell per window
        for iy in iy0..iy0 + ny {
            for ix in ix0..ix0 + nx {
                let start = (iy * iw + ix) * c;
                let cell = need(x.data.get(start..start + c))?;
                for (o, &v) in out_px.iter_mut().zip(cell) {
                    *o = (*o).max(v);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use std::vec::Vec;
    use tinykd_format::Shape;

    /// Brute-force pooling oracle shared with `avg_pool2d`: the valid cells of every window.
    pub(crate) fn windows(x_shape: Shape, op: &PoolOp) -> (Shape, Vec<Vec<usize>>) {
        let (ih, iw, c) = (x_shape.h as i64, x_shape.w as i64, x_shape.c as i64);
        let (kh, kw) = (op.kernel[0] as i64, op.kernel[1] as i64);
        let (sh, sw) = (op.stride[0] as i64, op.stride[1] as i64);
        let [pt, pl, pb, pr] = op.padding.map(|p| p as i64);
        let oh = (ih + pt + pb - kh) / sh + 1;
        let ow = (iw + pl + pr - kw) / sw + 1;
        let mut out = Vec::new();
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut cells = Vec::new();
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = oy * sh + ky - pt;
                            let ix = ox * sw + kx - pl;
                            if (0..ih).contains(&iy) && (0..iw).contains(&ix) {
                                cells.push(((iy * iw + ix) * c + ch) as usize);
                            }
                        }
                    }
                    out.push(cells);
                }
            }
        }
        (
            Shape {
                h: oh as u16,
                w: ow as u16,
                c: c as u16,
            },
            out,
        )
    }

    pub(crate) fn random_pool(rng: &mut Rng) -> (Shape, PoolOp) {
        loop {
            let kernel = [rng.range(1, 4) as u8, rng.range(1, 4) as u8];
            let op = PoolOp {
                input: 0,
                kernel,
                stride: [rng.range(1, 3) as u8, rng.range(1, 3) as u8],
                padding: [
                    rng.range(0, kernel[0] as i64 - 1) as u8,
                    rng.range(0, kernel[1] as i64 - 1) as u8,
                    rng.range(0, kernel[0] as i64 - 1) as u8,
                    rng.range(0, kernel[1] as i64 - 1) as u8,
                ],
            };
            let s = Shape {
                h: rng.range(1, 9) as u16,
                w: rng.range(1, 9) as u16,
                c: rng.range(1, 5) as u16,
            };
            let fits = |i: u16, k: u8, a: u8, b: u8| i as i64 + a as i64 + b as i64 >= k as i64;
            if fits(s.h, op.kernel[0], op.padding[0], op.padding[2])
                && fits(s.w, op.kernel[1], op.padding[1], op.padding[3])
            {
                return (s, op);
            }
        }
    }

    #[test]
    fn matches_oracle_on_random_shapes() {
        let mut rng = Rng(0x3A);
        for _ in 0..500 {
            let (s, op) = random_pool(&mut rng);
            let x = rng.i8s(s.elements() as usize);
            let (out, cells) = windows(s, &op);
            let mut y = std::vec![0i8; out.elements() as usize];
            max_pool2d(
                &op,
                In {
                    data: &x,
                    shape: s,
                    zero_point: 0,
                },
                Out {
                    data: &mut y,
                    shape: out,
                    zero_point: 0,
                },
            )
            .unwrap();
            let want: Vec<i8> = cells
                .iter()
                .map(|c| c.iter().map(|&i| x[i]).max().unwrap())
                .collect();
            assert_eq!(y, want);
        }
    }

    #[test]
    fn padded_cells_never_win() {
        // All inputs −100, padding 1: a padded zero point (0) must not appear in the output.
        let op = PoolOp {
            input: 0,
            kernel: [2, 2],
            stride: [2, 2],
            padding: [1, 1, 1, 1],
        };
        let s = Shape { h: 3, w: 3, c: 1 };
        let x = [-100i8; 9];
        let mut y = [0i8; 4];
        max_pool2d(
            &op,
            In {
                data: &x,
                shape: s,
                zero_point: 0,
            },
            Out {
                data: &mut y,
                shape: Shape { h: 2, w: 2, c: 1 },
                zero_point: 0,
            },
        )
        .unwrap();
        assert_eq!(y, [-100; 4]);
    }
}
