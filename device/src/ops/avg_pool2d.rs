//! Average pooling over the valid (non-padded) cells of each window, rounded half away from zero
//! with [`tinykd_format::average`] (SPEC §3–4). Output quantization equals the input's.

use tinykd_format::{average, PoolOp};

use super::{clip, In, Out};
use crate::error::{need, Result};

/// Runs one average pool.
pub(crate) fn avg_pool2d(op: &PoolOp, x: In<'_>, y: Out<'_>) -> Result<()> {
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
        // ≤ 255 · 255 cells of |v| ≤ 128: the sum fits an i32 comfortably.
        let count = (ny * nx) as i32;
        for (ch, out) in out_px.iter_mut().enumerate() {
            let mut sum = 0i32;
            for iy in iy0..iy0 + ny {
                let row = (iy * iw + ix0) * c + ch;
                let cells = need(x.data.get(row..row + (nx.saturating_sub(1)) * c + 1))?;
                for &v in cells.iter().step_by(c) {
                    sum += i32::from(v);
                }
            }
            *out = average(sum, count).clamp(-128, 127) as i8;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::max_pool2d::tests::{random_pool, windows};
    use crate::ops::testutil::*;
    use std::vec::Vec;
    use tinykd_format::Shape;

    #[test]
    fn matches_oracle_on_random_shapes() {
        let mut rng = Rng(0xA7);
        for _ in 0..500 {
            let (s, op) = random_pool(&mut rng);
            let x = rng.i8s(s.elements() as usize);
            let (out, cells) = windows(s, &op);
            let mut y = std::vec![0i8; out.elements() as usize];
            avg_pool2d(
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
                .map(|c| {
                    let sum: i64 = c.iter().map(|&i| x[i] as i64).sum();
                    let n = c.len() as i64;
                    // round half away from zero, in exact rationals: sign · floor((2|sum| + n) / 2n)
                    let q = (2 * sum.abs() + n) / (2 * n);
                    (sum.signum() * q) as i8
                })
                .collect();
            assert_eq!(y, want);
        }
    }

    #[test]
    fn rounds_half_away_from_zero() {
        let op = PoolOp {
            input: 0,
            kernel: [1, 2],
            stride: [1, 2],
            padding: [0; 4],
        };
        let x = [1i8, 2, -1, -2, 127, 127, -128, -127];
        let mut y = [0i8; 4];
        avg_pool2d(
            &op,
            In {
                data: &x,
                shape: Shape { h: 1, w: 8, c: 1 },
                zero_point: 0,
            },
            Out {
                data: &mut y,
                shape: Shape { h: 1, w: 4, c: 1 },
                zero_point: 0,
            },
        )
        .unwrap();
        assert_eq!(y, [2, -2, 127, -128]);
    }
}
