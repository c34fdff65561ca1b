//! Dense with paired weights (format 1.5, SPEC §3.4): `acc[o] = bias[o] + Σ_i x[i] · w[o][i]`
//! on the raw input (the input zero point is folded into the bias), requantized per output
//! feature. The reference decodes each weight from the paired layout and ignores the odd-weight
//! terms (validation has checked them against the weights).

use tinykd_format::{paired_groups, paired_index, DensePairedOp};

use super::{requantize_out, In, Out};
use crate::error::{need, Result};

/// Runs one paired dense layer.
pub(crate) fn dense_paired(op: &DensePairedOp<'_>, x: In<'_>, y: Out<'_>) -> Result<()> {
    let k = x.data.len();
    let rows = y.data.len();
    let groups = paired_groups(k);
    let zp_out = i32::from(y.zero_point);
    let weights = op.weights.bytes();
    for (o, out) in y.data.iter_mut().enumerate() {
        let mut acc = need(op.bias.get(o))?;
        for (g, xs) in x.data.chunks(4).enumerate() {
            let at = paired_index(rows, groups, o, g);
            let w = need(weights.get(at..at + 4))?;
            for (j, (&v, &b)) in xs.iter().zip(w).enumerate() {
                // Even positions are stored + 128, odd ones as int8.
                let wv = if j.is_multiple_of(2) {
                    i32::from(b) - 128
                } else {
                    i32::from(b as i8)
                };
                acc = acc.wrapping_add(i32::from(v) * wv);
            }
        }
        let m = need(op.requant.multipliers.get(o))?;
        let s = need(op.requant.shifts.get(o))?;
        *out = requantize_out(acc, m, i32::from(s), zp_out, op.act_min, op.act_max);
    }
    Ok(())
}
