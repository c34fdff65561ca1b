//! Conv2d: dense, grouped and depthwise (`groups` = input channels), any kernel incl. 1×1.
//!
//! `acc[c] = bias[c] + Σ (x − zp_in) · w[c]` over the window's valid cells and the channel's group
//! (padding holds the input zero point, so padded taps add exactly 0 and are skipped), then
//! requantized per output channel (SPEC §3).

use tinykd_format::Conv2dOp;

use super::{clip, mac, requantize_out, In, Out};
use crate::error::{need, Result};

/// Runs one convolution. Weights are OHWI `[out][kh][kw][in / groups]`.
///
/// Compiled on its own (not inlined into `Model::run` next to the fast kernels), so that its
/// code does not change with theirs: inlined there, LLVM once gave its inner loop a division
/// per tap on Cortex-M0.
#[inline(never)]
pub(crate) fn conv2d(op: &Conv2dOp<'_>, x: In<'_>, y: Out<'_>) -> Result<()> {
    let (ih, iw, ic) = (
        usize::from(x.shape.h),
        usize::from(x.shape.w),
        usize::from(x.shape.c),
    );
    let (ow, oc) = (usize::from(y.shape.w), usize::from(y.shape.c));
    let [kh, kw] = op.kernel.map(usize::from);
    let [sh, sw] = op.stride.map(usize::from);
    let [pt, pl, _, _] = op.padding.map(usize::from);
    let groups = usize::from(op.groups);
    let icg = need(ic.checked_div(groups))?;
    let ocg = need(oc.checked_div(groups).filter(|&n| n > 0))?;
    let per_out = kh * kw * icg; // weights per output channel
    let zp_in = i32::from(x.zero_point);
    let zp_out = i32::from(y.zero_point);
    let weights = op.weights.bytes();

    // Zero sizes cannot pass validation; `max(1)` keeps even the impossible case panic-free.
    let (ow, oc) = (ow.max(1), oc.max(1));
    for (p, out_px) in y.data.chunks_exact_mut(oc).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        let (iy0, ky0, ny) = clip(oy, sh, pt, kh, ih);
        let (ix0, kx0, nx) = clip(ox, sw, pl, kw, iw);
        for (o, out) in out_px.iter_mut().enumerate() {
            // No division for the common cases (depthwise, groups = 1): Cortex-M0 has no divider.
            let g = match ocg {
                1 => o,
                _ if groups == 1 => 0,
                _ => o / ocg,
            };
            let w_o = need(weights.get(o * per_out..(o + 1) * per_out))?;
            let mut acc = need(op.bias.get(o))?;
            for dy in 0..ny {
                let row = (iy0 + dy) * iw;
                let w_row = (ky0 + dy) * kw;
                for dx in 0..nx {
                    let xs = (row + ix0 + dx) * ic + g * icg;
                    let ws = (w_row + kx0 + dx) * icg;
                    let xs = need(x.data.get(xs..xs + icg))?;
                    let ws = need(w_o.get(ws..ws + icg))?;
                    acc = mac(acc, xs, ws, zp_in);
                }
            }
            let m = need(op.requant.multipliers.get(o))?;
            let s = need(op.requant.shifts.get(o))?;
            *out = requantize_out(acc, m, i32::from(s), zp_out, op.act_min, op.act_max);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use std::vec::Vec;
    use tinykd_format::{I8s, LeI32s, Requant, Shape};

    struct Case {
        in_shape: Shape,
        out_c: u16,
        kernel: [u8; 2],
        stride: [u8; 2],
        padding: [u8; 4],
        groups: u16,
    }

    fn out_dim(i: u16, k: u8, s: u8, a: u8, b: u8) -> Option<u16> {
        let padded = i as i64 + a as i64 + b as i64 - k as i64;
        (padded >= 0).then(|| (padded / s as i64 + 1) as u16)
    }

    /// Straight from the definition: every tap, padded ones read as the zero point, i64 sums.
    #[allow(clippy::too_many_arguments)]
    fn oracle(
        c: &Case,
        x: &[i8],
        zp_in: i8,
        w: &[u8],
        bias: &[i32],
        m: &[u8],
        s: &[u8],
        zp_out: i8,
        act: (i8, i8),
        out: Shape,
    ) -> Vec<i8> {
        let (ih, iw, ic) = (
            c.in_shape.h as i64,
            c.in_shape.w as i64,
            c.in_shape.c as i64,
        );
        let (kh, kw) = (c.kernel[0] as i64, c.kernel[1] as i64);
        let g = c.groups as i64;
        let (icg, ocg) = (ic / g, out.c as i64 / g);
        let mut y = Vec::new();
        for oy in 0..out.h as i64 {
            for ox in 0..out.w as i64 {
                for o in 0..out.c as i64 {
                    let grp = o / ocg;
                    let mut acc = bias[o as usize] as i64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = oy * c.stride[0] as i64 + ky - c.padding[0] as i64;
                            let ix = ox * c.stride[1] as i64 + kx - c.padding[1] as i64;
                            for i in 0..icg {
                                let xv = if iy < 0 || iy >= ih || ix < 0 || ix >= iw {
                                    zp_in as i64
                                } else {
                                    x[((iy * iw + ix) * ic + grp * icg + i) as usize] as i64
                                };
                                let wv = w[(((o * kh + ky) * kw + kx) * icg + i) as usize] as i8;
                                acc += (xv - zp_in as i64) * wv as i64;
                            }
                        }
                    }
                    let mult = i32::from_le_bytes(
                        m[o as usize * 4..o as usize * 4 + 4].try_into().unwrap(),
                    );
                    y.push(oracle_requant(
                        acc,
                        mult,
                        s[o as usize] as i8 as i32,
                        zp_out,
                        act.0,
                        act.1,
                    ));
                }
            }
        }
        y
    }

    fn run_case(rng: &mut Rng, c: &Case) {
        let out = Shape {
            h: out_dim(
                c.in_shape.h,
                c.kernel[0],
                c.stride[0],
                c.padding[0],
                c.padding[2],
            )
            .unwrap(),
            w: out_dim(
                c.in_shape.w,
                c.kernel[1],
                c.stride[1],
                c.padding[1],
                c.padding[3],
            )
            .unwrap(),
            c: c.out_c,
        };
        let icg = (c.in_shape.c / c.groups) as usize;
        let per_out = c.kernel[0] as usize * c.kernel[1] as usize * icg;
        let x = rng.i8s(c.in_shape.elements() as usize);
        let w = rng.weights(c.out_c as usize * per_out);
        let bias: Vec<i32> = (0..c.out_c)
            .map(|_| rng.range(-40_000, 40_000) as i32)
            .collect();
        let bias_b = le_i32(&bias);
        let (m, s) = requant(rng, c.out_c as usize, (-14, -4));
        let (zp_in, zp_out) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
        let act = act_range(rng);
        let op = Conv2dOp {
            input: 0,
            kernel: c.kernel,
            stride: c.stride,
            padding: c.padding,
            groups: c.groups,
            weights: I8s(&w),
            bias: LeI32s(&bias_b),
            requant: Requant {
                multipliers: LeI32s(&m),
                shifts: I8s(&s),
            },
            act_min: act.0,
            act_max: act.1,
        };
        let mut y = std::vec![0i8; out.elements() as usize];
        conv2d(
            &op,
            In {
                data: &x,
                shape: c.in_shape,
                zero_point: zp_in,
            },
            Out {
                data: &mut y,
                shape: out,
                zero_point: zp_out,
            },
        )
        .unwrap();
        let want = oracle(c, &x, zp_in, &w, &bias, &m, &s, zp_out, act, out);
        assert_eq!(
            y, want,
            "{:?} k{:?} s{:?} p{:?} g{}",
            c.in_shape, c.kernel, c.stride, c.padding, c.groups
        );
    }

    #[test]
    fn matches_oracle_on_random_shapes() {
        let mut rng = Rng(0xC0);
        for i in 0..400 {
            let kernel = [rng.range(1, 5) as u8, rng.range(1, 5) as u8];
            let padding = [
                rng.range(0, 3) as u8,
                rng.range(0, 3) as u8,
                rng.range(0, 3) as u8,
                rng.range(0, 3) as u8,
            ];
            let stride = [rng.range(1, 3) as u8, rng.range(1, 3) as u8];
            let h = rng.range(1, 9) as u16;
            let w = rng.range(1, 9) as u16;
            // dense, grouped or depthwise (with channel multiplier)
            let (ic, out_c, groups) = match i % 3 {
                0 => (rng.range(1, 6) as u16, rng.range(1, 6) as u16, 1),
                1 => {
                    let g = rng.range(1, 3) as u16;
                    (g * rng.range(1, 3) as u16, g * rng.range(1, 3) as u16, g)
                }
                _ => {
                    let c = rng.range(1, 6) as u16;
                    (c, c * rng.range(1, 2) as u16, c)
                }
            };
            let in_shape = Shape { h, w, c: ic };
            if out_dim(h, kernel[0], stride[0], padding[0], padding[2]).is_none()
                || out_dim(w, kernel[1], stride[1], padding[1], padding[3]).is_none()
            {
                continue;
            }
            run_case(
                &mut rng,
                &Case {
                    in_shape,
                    out_c,
                    kernel,
                    stride,
                    padding,
                    groups,
                },
            );
        }
    }

    #[test]
    fn pointwise_and_depthwise_fixed_cases() {
        let mut rng = Rng(0x11);
        // 1×1 convolution, 7×7×32 → 7×7×16 (the shape of CMSIS-NN's 1×1 fast path).
        run_case(
            &mut rng,
            &Case {
                in_shape: Shape { h: 7, w: 7, c: 32 },
                out_c: 16,
                kernel: [1, 1],
                stride: [1, 1],
                padding: [0; 4],
                groups: 1,
            },
        );
        // Depthwise 3×3, stride 2, "same" padding on an odd size.
        run_case(
            &mut rng,
            &Case {
                in_shape: Shape { h: 9, w: 7, c: 8 },
                out_c: 8,
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1, 1, 1],
                groups: 8,
            },
        );
        // Padding larger than the kernel: whole windows of zero-point taps give bias only.
        run_case(
            &mut rng,
            &Case {
                in_shape: Shape { h: 2, w: 2, c: 3 },
                out_c: 2,
                kernel: [1, 1],
                stride: [1, 1],
                padding: [2, 2, 2, 2],
                groups: 1,
            },
        );
    }

    /// A hand-computed 1×1 case: out = requant(bias + Σ(x − zp)·w).
    #[test]
    fn small_const_case() {
        let x = [10i8, -5, 3, 0]; // 2×1×2, zp 2
        let w = [1i8 as u8, 2, (-1i8) as u8, 3]; // 2 out channels × 2 in
        let bias = le_i32(&[100, -7]);
        let m = le_i32(&[1 << 30, 1 << 30]); // 0.5 with shift 0
        let s = [0u8, 0];
        let op = Conv2dOp {
            input: 0,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0; 4],
            groups: 1,
            weights: I8s(&w),
            bias: LeI32s(&bias),
            requant: Requant {
                multipliers: LeI32s(&m),
                shifts: I8s(&s),
            },
            act_min: -128,
            act_max: 127,
        };
        let mut y = [0i8; 4];
        conv2d(
            &op,
            In {
                data: &x,
                shape: Shape { h: 2, w: 1, c: 2 },
                zero_point: 2,
            },
            Out {
                data: &mut y,
                shape: Shape { h: 2, w: 1, c: 2 },
                zero_point: -1,
            },
        )
        .unwrap();
        // pixel 0: x−zp = (8, −7): c0 = 100 + 8 − 14 = 94 → 47 − 1 = 46;
        //                           c1 = −7 − 8 − 21 = −36 → −18 − 1 = −19
        // pixel 1: x−zp = (1, −2): c0 = 100 + 1 − 4 = 97 → 48.5 ↑ 49 − 1 = 48;
        //                           c1 = −7 − 1 − 6 = −14 → −7 − 1 = −8
        assert_eq!(y, [46, -19, 48, -8]);
    }
}
