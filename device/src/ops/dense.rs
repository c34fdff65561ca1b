//! Dense (fully connected): `acc[o] = bias[o] + Σ_i (x[i] − zp_in) · w[o][i]` over the
//! HWC-flattened input, requantized per output feature (SPEC §3).

use tinykd_format::DenseOp;

use super::{mac, requantize_out, In, Out};
use crate::error::{need, Result};

/// Runs one dense layer. Weights are `[out][in]`.
pub(crate) fn dense(op: &DenseOp<'_>, x: In<'_>, y: Out<'_>) -> Result<()> {
    let n_in = x.data.len();
    let zp_in = i32::from(x.zero_point);
    let zp_out = i32::from(y.zero_point);
    let weights = op.weights.bytes();
    for (o, out) in y.data.iter_mut().enumerate() {
        let row = need(weights.get(o * n_in..(o + 1) * n_in))?;
        let acc = mac(need(op.bias.get(o))?, x.data, row, zp_in);
        let m = need(op.requant.multipliers.get(o))?;
        let s = need(op.requant.shifts.get(o))?;
        *out = requantize_out(acc, m, i32::from(s), zp_out, op.act_min, op.act_max);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use std::vec::Vec;
    use tinykd_format::{I8s, LeI32s, Requant, Shape};

    #[test]
    fn matches_oracle_on_random_shapes() {
        let mut rng = Rng(0xDE);
        for _ in 0..300 {
            let in_shape = Shape {
                h: rng.range(1, 4) as u16,
                w: rng.range(1, 4) as u16,
                c: rng.range(1, 40) as u16,
            };
            let n_in = in_shape.elements() as usize;
            let n_out = rng.range(1, 33) as usize;
            let x = rng.i8s(n_in);
            let w = rng.weights(n_in * n_out);
            let bias: Vec<i32> = (0..n_out)
                .map(|_| rng.range(-1 << 20, 1 << 20) as i32)
                .collect();
            let bias_b = le_i32(&bias);
            let (m, s) = requant(&mut rng, n_out, (-20, -6));
            let (zp_in, zp_out) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
            let act = act_range(&mut rng);
            let op = DenseOp {
                input: 0,
                weights: I8s(&w),
                bias: LeI32s(&bias_b),
                requant: Requant {
                    multipliers: LeI32s(&m),
                    shifts: I8s(&s),
                },
                act_min: act.0,
                act_max: act.1,
            };
            let out_shape = Shape {
                h: 1,
                w: 1,
                c: n_out as u16,
            };
            let mut y = std::vec![0i8; n_out];
            dense(
                &op,
                In {
                    data: &x,
                    shape: in_shape,
                    zero_point: zp_in,
                },
                Out {
                    data: &mut y,
                    shape: out_shape,
                    zero_point: zp_out,
                },
            )
            .unwrap();
            let want: Vec<i8> = (0..n_out)
                .map(|o| {
                    let acc = bias[o] as i64
                        + (0..n_in)
                            .map(|i| (x[i] as i64 - zp_in as i64) * (w[o * n_in + i] as i8) as i64)
                            .sum::<i64>();
                    let mult = i32::from_le_bytes(m[o * 4..o * 4 + 4].try_into().unwrap());
                    oracle_requant(acc, mult, s[o] as i8 as i32, zp_out, act.0, act.1)
                })
                .collect();
            assert_eq!(y, want);
        }
    }

    #[test]
    fn short_weights_are_an_error_not_a_panic() {
        let w = [1u8; 3];
        let b = le_i32(&[0, 0]);
        let m = le_i32(&[1 << 30, 1 << 30]);
        let s = [0u8; 2];
        let op = DenseOp {
            input: 0,
            weights: I8s(&w),
            bias: LeI32s(&b),
            requant: Requant {
                multipliers: LeI32s(&m),
                shifts: I8s(&s),
            },
            act_min: -128,
            act_max: 127,
        };
        let mut y = [0i8; 2];
        let r = dense(
            &op,
            In {
                data: &[1, 2],
                shape: Shape { h: 1, w: 1, c: 2 },
                zero_point: 0,
            },
            Out {
                data: &mut y,
                shape: Shape { h: 1, w: 1, c: 2 },
                zero_point: 0,
            },
        );
        assert_eq!(r, Err(crate::Error::RunInconsistent));
    }
}
