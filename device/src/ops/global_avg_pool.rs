//! Global average pooling: the mean over H×W of each channel, to `[1, 1, C]`, rounded half away
//! from zero (SPEC §3–4). Output quantization equals the input's.

use tinykd_format::average;

use super::{In, Out};
use crate::error::{need, Result};

/// Runs one global average pool.
pub(crate) fn global_avg_pool(x: In<'_>, y: Out<'_>) -> Result<()> {
    let c = usize::from(x.shape.c).max(1); // ≥ 1 once validated; keeps `step_by` panic-free
    let cells = usize::from(x.shape.h) * usize::from(x.shape.w);
    // A validated tensor has ≤ 2^22 elements, so |sum| ≤ 2^22 · 128 = 2^29 fits an i32.
    let count = need(i32::try_from(cells).ok())?;
    for (ch, out) in y.data.iter_mut().enumerate() {
        let column = need(x.data.get(ch..))?;
        let sum = column
            .iter()
            .step_by(c)
            .take(cells)
            .fold(0i32, |s, &v| s.wrapping_add(i32::from(v)));
        *out = average(sum, count).clamp(-128, 127) as i8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;
    use tinykd_format::Shape;

    #[test]
    fn matches_oracle_on_random_shapes() {
        let mut rng = Rng(0x6A);
        for _ in 0..300 {
            let s = Shape {
                h: rng.range(1, 12) as u16,
                w: rng.range(1, 12) as u16,
                c: rng.range(1, 17) as u16,
            };
            let x = rng.i8s(s.elements() as usize);
            let mut y = std::vec![0i8; s.c as usize];
            global_avg_pool(
                In {
                    data: &x,
                    shape: s,
                    zero_point: 3,
                },
                Out {
                    data: &mut y,
                    shape: Shape { h: 1, w: 1, c: s.c },
                    zero_point: 3,
                },
            )
            .unwrap();
            for (ch, &got) in y.iter().enumerate() {
                let vals: std::vec::Vec<i64> = x
                    .iter()
                    .skip(ch)
                    .step_by(s.c as usize)
                    .map(|&v| v as i64)
                    .collect();
                let (sum, n) = (vals.iter().sum::<i64>(), vals.len() as i64);
                let want = sum.signum() * ((2 * sum.abs() + n) / (2 * n));
                assert_eq!(got as i64, want);
            }
        }
    }

    #[test]
    fn small_const_case() {
        // 2×1×2: channel 0 = (1, 2) → 1.5 → 2; channel 1 = (−3, −4) → −3.5 → −4
        let mut y = [0i8; 2];
        global_avg_pool(
            In {
                data: &[1, -3, 2, -4],
                shape: Shape { h: 2, w: 1, c: 2 },
                zero_point: 0,
            },
            Out {
                data: &mut y,
                shape: Shape { h: 1, w: 1, c: 2 },
                zero_point: 0,
            },
        )
        .unwrap();
        assert_eq!(y, [2, -4]);
    }
}
