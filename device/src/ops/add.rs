//! Elementwise Add with TFLite-style rescaling (SPEC §4): both inputs are shifted left by 20,
//! rescaled to a common scale (`a'`, `b'`), summed, and the sum requantized to the output.

use tinykd_format::{requantize, AddOp, ADD_LEFT_SHIFT};

use super::{requantize_out, In, Out};
use crate::error::{need, Result};

/// Runs one Add of two equally shaped tensors.
pub(crate) fn add(op: &AddOp, a: In<'_>, b: In<'_>, y: Out<'_>) -> Result<()> {
    let (zp_a, zp_b) = (i32::from(a.zero_point), i32::from(b.zero_point));
    let zp_out = i32::from(y.zero_point);
    if a.data.len() != y.data.len() || b.data.len() != y.data.len() {
        return need(None);
    }
    for ((out, &va), &vb) in y.data.iter_mut().zip(a.data).zip(b.data) {
        // |v − zp| ≤ 255, so `<< 20` stays below 2^28; validated input shifts are ≤ 0, so
        // |a'|, |b'| ≤ 2^28 and their sum cannot overflow.
        let ra = requantize(
            (i32::from(va) - zp_a) << ADD_LEFT_SHIFT,
            op.a_multiplier,
            i32::from(op.a_shift),
        );
        let rb = requantize(
            (i32::from(vb) - zp_b) << ADD_LEFT_SHIFT,
            op.b_multiplier,
            i32::from(op.b_shift),
        );
        *out = requantize_out(
            ra.wrapping_add(rb),
            op.out_multiplier,
            i32::from(op.out_shift),
            zp_out,
            op.act_min,
            op.act_max,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use tinykd_format::{quantize_multiplier, Quant, Shape};

    #[test]
    fn matches_oracle_and_float_reference() {
        let mut rng = Rng(0xADD);
        let mut worst = 0.0f64;
        for _ in 0..300 {
            let n = rng.range(1, 64) as usize;
            let s = Shape {
                h: 1,
                w: 1,
                c: n as u16,
            };
            let qa = Quant {
                scale: rng.range(1, 1000) as f32 / 5000.0,
                zero_point: rng.range(-128, 127) as i8,
            };
            let qb = Quant {
                scale: rng.range(1, 1000) as f32 / 5000.0,
                zero_point: rng.range(-128, 127) as i8,
            };
            let qo = Quant {
                scale: rng.range(1, 1000) as f32 / 2500.0,
                zero_point: rng.range(-128, 127) as i8,
            };
            let (sa, sb, so) = (qa.scale as f64, qb.scale as f64, qo.scale as f64);
            let twice_max = 2.0 * sa.max(sb);
            let (am, ash) = quantize_multiplier(sa / twice_max);
            let (bm, bsh) = quantize_multiplier(sb / twice_max);
            let (om, osh) = quantize_multiplier(twice_max / ((1 << 20) as f64 * so));
            let op = AddOp {
                a: 0,
                b: 0,
                a_multiplier: am,
                a_shift: ash as i8,
                b_multiplier: bm,
                b_shift: bsh as i8,
                out_multiplier: om,
                out_shift: osh as i8,
                act_min: -128,
                act_max: 127,
            };
            let (xa, xb) = (rng.i8s(n), rng.i8s(n));
            let mut y = std::vec![0i8; n];
            add(
                &op,
                In {
                    data: &xa,
                    shape: s,
                    zero_point: qa.zero_point,
                },
                In {
                    data: &xb,
                    shape: s,
                    zero_point: qb.zero_point,
                },
                Out {
                    data: &mut y,
                    shape: s,
                    zero_point: qo.zero_point,
                },
            )
            .unwrap();
            for i in 0..n {
                // Integer oracle: the SPEC §4 steps in i128.
                let wide = |v: i8, zp: i8, m: i32, sh: i32| {
                    let acc = (v as i128 - zp as i128) << 20;
                    let total = 31 - sh;
                    (acc * m as i128 + (1i128 << (total - 1))) >> total
                };
                let sum = wide(xa[i], qa.zero_point, am, ash) + wide(xb[i], qb.zero_point, bm, bsh);
                let want = oracle_requant(sum as i64, om, osh, qo.zero_point, -128, 127);
                assert_eq!(y[i], want);
                // And within one step of the real sum (when not saturated).
                let real = qa.dequantize(xa[i]) as f64 + qb.dequantize(xb[i]) as f64;
                let q = real / so + qo.zero_point as f64;
                if (-127.0..126.0).contains(&q) {
                    worst = worst.max((y[i] as f64 - q).abs());
                }
            }
        }
        assert!(worst <= 0.51, "worst deviation {worst} steps");
    }
}
