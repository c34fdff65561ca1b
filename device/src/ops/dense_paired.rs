//! Dense with paired weights (format 1.5, SPEC §3.4): `acc[o] = bias[o] + Σ_i x[i] · w[o][i]`
//! on the raw input (the input zero point is folded into the bias), requantized per output
//! feature. The reference decodes each weight from the paired layout and ignores the odd-weight
//! terms (validation has checked them against the weights).

use tinykd_format::{paired_block, paired_groups, DensePairedOp};

use super::{requantize_out, In, Out};
use crate::error::{need, Result};

/// Runs one paired dense layer: block by block (`paired_block`), each row's words `n` words
/// apart (`n` = rows in the block).
pub(crate) fn dense_paired(op: &DensePairedOp<'_>, x: In<'_>, y: Out<'_>) -> Result<()> {
    let k = x.data.len();
    let rows = y.data.len();
    let groups = paired_groups(k);
    let zp_out = i32::from(y.zero_point);
    let (words, _) = op.weights.bytes().as_chunks::<4>();
    let (xq, xt) = x.data.as_chunks::<4>();
    // The last, zero-padded group.
    let mut tail = [0i8; 4];
    for (d, &v) in tail.iter_mut().zip(xt) {
        *d = v;
    }
    let mut o = 0;
    while o < rows {
        let (first, n) = paired_block(rows, o);
        let block = need(words.get(first * groups..(first + n) * groups))?;
        for (j, out) in need(y.data.get_mut(first..first + n))?
            .iter_mut()
            .enumerate()
        {
            let row = block.iter().skip(j).step_by(n);
            let mut acc = need(op.bias.get(first + j))?;
            for (&[b0, b1, b2, b3], &[x0, x1, x2, x3]) in
                row.zip(xq.iter().chain(core::iter::once(&tail)))
            {
                // Even positions are stored + 128, odd ones as int8.
                let dot = i32::from(x0) * (i32::from(b0) - 128)
                    + i32::from(x1) * i32::from(b1 as i8)
                    + i32::from(x2) * (i32::from(b2) - 128)
                    + i32::from(x3) * i32::from(b3 as i8);
                acc = acc.wrapping_add(dot);
            }
            let m = need(op.requant.multipliers.get(first + j))?;
            let s = need(op.requant.shifts.get(first + j))?;
            *out = requantize_out(acc, m, i32::from(s), zp_out, op.act_min, op.act_max);
        }
        o += n;
    }
    Ok(())
}
