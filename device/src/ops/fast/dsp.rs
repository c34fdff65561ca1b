//! Cortex-M DSP-extension kernels (see the module docs of `fast`).
//!
//! Lane order: `SXTB16` splits a word of four int8 values `[v0 v1 v2 v3]` into the pairs
//! `(v0, v2)` and (with `ROR #8`) `(v1, v3)`. The weights are split that way as they are loaded,
//! so the int16 activations are stored in the same order: each group of four values along the
//! reduction axis is two words, `(x0, x2)` then `(x1, x3)`. `SMLAD` then pairs every weight with
//! its activation, and no repacking is ever needed.

use tinykd_format::{Conv2dOp, DenseOp};

use super::simd::{
    channels_1x4, dw_3x3, dw_3x3_run, dw_plane, dw_row1, dw_row2, dw_row3, dw_window, gather_plane,
    pack16, requant_4x8, rows_2x1, rows_3x1, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8,
    tile_1x4,
};
use super::{as_bytes, offset_pair, words, ChannelLoop, DwPlane, DwRun, DwWin, Rq, Rq4};
use crate::error::{need, Result};
use crate::ops::{clip, In, Out};

/// Columns of the im2col tile (output pixels computed together per weight row).
const COLS: usize = 4;

/// One group of four weights against the four columns' pairs: 8 `SMLAD`, 16 MACs.
#[inline(always)]
fn tile_step(w: u32, x: &[u32; 8], a: &mut [i32; COLS]) {
    let (we, wo) = (sxtb16(w), sxtb16_ror8(w));
    let [x0e, x0o, x1e, x1o, x2e, x2o, x3e, x3o] = *x;
    a[0] = smlad(wo, x0o, smlad(we, x0e, a[0]));
    a[1] = smlad(wo, x1o, smlad(we, x1e, a[1]));
    a[2] = smlad(wo, x2o, smlad(we, x2e, a[2]));
    a[3] = smlad(wo, x3o, smlad(we, x3e, a[3]));
}

/// Column `j` of one im2col group (its two words).
#[inline(always)]
fn put(group: &mut [u32; 2 * COLS], j: usize, pair: [u32; 2]) {
    let (cols, _) = group.as_chunks_mut::<2>();
    if let Some(c) = cols.get_mut(j % COLS) {
        *c = pair;
    }
}

/// The last `k mod 4` weights of a row as a zero-padded word.
#[inline(always)]
fn tail_word(tail: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    for (d, s) in b.iter_mut().zip(tail) {
        *d = *s;
    }
    u32::from_le_bytes(b)
}

/// Conv2d with `groups = 1` (any kernel, stride, padding; 1×1 included) via im2col.
/// `Ok(false)`: not handled here (the caller runs the reference kernel).
pub(crate) fn conv2d(op: &Conv2dOp<'_>, x: In<'_>, y: Out<'_>, scratch: &mut [u8]) -> Result<bool> {
    #[cfg(any(tinykd_dsp, not(target_arch = "arm")))]
    let mut y = y;
    // Shape-specific paths. Their portable stand-ins (host tests) would only bloat a Cortex-M0
    // image, where this flavor never runs.
    #[cfg(any(tinykd_dsp, not(target_arch = "arm")))]
    if super::pointwise::conv1x1(op, x, y.reborrow(), scratch)?
        || super::one_channel::conv3x3(op, x, y.reborrow(), scratch)?
    {
        return Ok(true);
    }
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
    let groups = k.div_ceil(4);
    let weights = op.weights.bytes();
    if weights.len() != oc * k {
        return Ok(false);
    }
    let Some(cols) = words(scratch, groups * 2 * COLS) else {
        return Ok(false);
    };
    let xb = as_bytes(x.data);
    let off = offset_pair(x.zero_point);
    let zp_in = i32::from(x.zero_point);
    let zp_out = i32::from(y.zero_point);
    let pixels = y.data.len() / oc;
    // The assembly channel loop needs every parameter present and every channel on the usual
    // requantization path (total shift 33..=62, see `Rq`).
    let shifts = op.requant.shifts.bytes();
    let asm_rq = op.bias.len() >= oc
        && op.requant.multipliers.len() >= oc
        && shifts.len() >= oc
        && shifts
            .iter()
            .take(oc)
            .all(|&s| (-31..=-2).contains(&(s as i8)));

    // The last weight row, zero-padded to whole groups (it cannot be read on past its end).
    let mut last_row = [0u8; 64];
    let row = weights
        .get((oc - 1) * k..)
        .filter(|r| r.len() <= last_row.len());
    let last_ok = match (row, last_row.get_mut(..k)) {
        (Some(row), Some(dst)) if row.len() == k => {
            dst.copy_from_slice(row);
            true
        }
        _ => false,
    };

    let mut p0 = 0;
    while p0 < pixels {
        if pixels - p0 < COLS && pixels >= COLS {
            // A last partial tile overlaps the one before instead (its outputs are recomputed,
            // the same values), so that it is a full tile for the assembly channel loop.
            p0 = pixels - COLS;
        }
        let n = COLS.min(pixels - p0);
        // 1. im2col: column j ← the receptive field of output pixel p0 + j, minus the zero point.
        // Columns past `n` keep whatever they held: their sums are never stored.
        let (tile, _) = cols.as_chunks_mut::<{ 2 * COLS }>();
        for j in (0..n).filter(|_| ic % 4 == 0) {
            let p = p0 + j;
            let (oy, ox) = (p / ow, p % ow);
            let (iy0, ky0, ny) = clip(oy, sh, pt, kh, ih);
            let (ix0, kx0, nx) = clip(ox, sw, pl, kw, iw);
            let inside =
                |ky: usize, kx: usize| ky >= ky0 && ky < ky0 + ny && kx >= kx0 && kx < kx0 + nx;
            let src = |ky: usize, kx: usize| ((iy0 + ky - ky0) * iw + ix0 + kx - kx0) * ic;
            {
                // Whole words: each tap is ic/4 groups; padded taps are zeros.
                let mut dst = tile.iter_mut();
                for ky in 0..kh {
                    for kx in 0..kw {
                        if inside(ky, kx) {
                            let s = src(ky, kx);
                            let (words, _) = need(xb.get(s..s + ic))?.as_chunks::<4>();
                            for w in words {
                                let v = u32::from_le_bytes(*w);
                                put(
                                    need(dst.next())?,
                                    j,
                                    [sxtab16(off, v), sxtab16_ror8(off, v)],
                                );
                            }
                        } else {
                            for _ in 0..ic / 4 {
                                put(need(dst.next())?, j, [0, 0]);
                            }
                        }
                    }
                }
            }
        }
        if ic % 4 != 0 && 4 * groups <= SMALL {
            // A short reduction (e.g. 3×3 × one channel): gathered on the stack, then packed.
            let (tile, _) = cols.as_chunks_mut::<{ 2 * COLS }>();
            for j in 0..n {
                let p = p0 + j;
                let (oy, ox) = (p / ow, p % ow);
                let win = Window {
                    rows: clip(oy, sh, pt, kh, ih),
                    cols: clip(ox, sw, pl, kw, iw),
                    kh,
                    kw,
                    iw,
                    ic,
                };
                if ic == 1 && kh == 3 && kw == 3 && win.rows.2 == 3 && win.cols.2 == 3 {
                    // A whole 3×3 window of one channel: three runs of three bytes.
                    let s = win.rows.0 * iw + win.cols.0;
                    let row = |r: usize| -> Result<[i32; 3]> {
                        let at = s + r * iw;
                        let b = need(x.data.get(at..at + 3))?;
                        Ok([0, 1, 2].map(|i| b.get(i).map_or(0, |&v| i32::from(v) - zp_in)))
                    };
                    let ([v0, v1, v2], [v3, v4, v5], [v6, v7, v8]) = (row(0)?, row(1)?, row(2)?);
                    if let [t0, t1, t2, ..] = tile {
                        put(t0, j, [pack16(v0, v2), pack16(v1, v3)]);
                        put(t1, j, [pack16(v4, v6), pack16(v5, v7)]);
                        put(t2, j, [pack16(v8, 0), 0]);
                        continue;
                    }
                }
                fill_small(tile, j, x.data, &win, zp_in)?;
            }
        } else if ic % 4 != 0 {
            // Value by value (e.g. one input channel), through a halfword view of the columns;
            // every column's last group is padded with zeros (the weights read past a row
            // meet them).
            let Some(h) = super::halves(&mut *cols_bytes(cols), groups * 4 * COLS) else {
                return Ok(false);
            };
            for j in 0..n {
                let p = p0 + j;
                let (oy, ox) = (p / ow, p % ow);
                let win = Window {
                    rows: clip(oy, sh, pt, kh, ih),
                    cols: clip(ox, sw, pl, kw, iw),
                    kh,
                    kw,
                    iw,
                    ic,
                };
                fill_values(h, j, x.data, &win, zp_in, 4 * groups)?;
            }
        }
        // 2. Every output channel against the four columns.
        let (tile, _) = cols.as_chunks::<{ 2 * COLS }>();
        if tile.len() != groups {
            return Ok(false);
        }
        let mut o_start = 0;
        if n == COLS && asm_rq && groups > 0 {
            // The assembly loop for every channel whose row can be read on to a whole group.
            let fast = (0..oc)
                .take_while(|&o| weights.len() - o * k >= 4 * groups)
                .count();
            let out = need(y.data.get_mut(p0 * oc..(p0 + COLS) * oc))?;
            if fast > 0 {
                let mut cl = ChannelLoop {
                    w: weights.as_ptr(),
                    k,
                    tile: tile.as_ptr().cast(),
                    steps: groups,
                    bias: op.bias.bytes().as_ptr(),
                    mult: op.requant.multipliers.bytes().as_ptr(),
                    shift: op.requant.shifts.bytes().as_ptr(),
                    y: out.as_mut_ptr(),
                    oc,
                    zp: zp_out,
                    min: u32::from_le_bytes([op.act_min as u8; 4]),
                    max: u32::from_le_bytes([op.act_max as u8; 4]),
                    count: fast,
                };
                // SAFETY: `fast ≥ 1` rows of `weights` readable for 4·groups bytes each (the
                // `take_while` above), `tile` is `groups` aligned tiles, the bias, multipliers
                // and shifts hold ≥ oc ≥ fast values (checked once per call: `asm_rq`), `out`
                // holds the four pixels' oc outputs, and every shift lies in −31..=−2 (`asm_rq`).
                unsafe { channels_1x4(&mut cl) };
            }
            o_start = fast;
            if last_ok && fast + 1 == oc && 4 * groups <= last_row.len() {
                // The last row, zero-padded on the stack, through the same loop.
                let mut cl = ChannelLoop {
                    w: last_row.as_ptr(),
                    k,
                    tile: tile.as_ptr().cast(),
                    steps: groups,
                    bias: op.bias.bytes().as_ptr().wrapping_add(4 * fast),
                    mult: op
                        .requant
                        .multipliers
                        .bytes()
                        .as_ptr()
                        .wrapping_add(4 * fast),
                    shift: shifts.as_ptr().wrapping_add(fast),
                    y: out.as_mut_ptr().wrapping_add(fast),
                    oc,
                    zp: zp_out,
                    min: u32::from_le_bytes([op.act_min as u8; 4]),
                    max: u32::from_le_bytes([op.act_max as u8; 4]),
                    count: 1,
                };
                // SAFETY: as above for one channel, `fast` = oc − 1 < oc: its weights are the
                // 4·groups ≤ last_row.len() bytes of `last_row`, its parameters and outputs
                // those of channel oc − 1.
                unsafe { channels_1x4(&mut cl) };
                o_start = oc;
            }
        }
        if o_start < oc {
            channels(op, k, tile, zp_out, y.data, p0, n, oc, o_start)?;
        }
        p0 += n;
    }
    Ok(true)
}

/// A receptive field: `(first input index, first kernel index, count)` per axis (see `clip`).
struct Window {
    rows: (usize, usize, usize),
    cols: (usize, usize, usize),
    kh: usize,
    kw: usize,
    iw: usize,
    ic: usize,
}

/// The words of the columns as bytes again (for the halfword view).
fn cols_bytes(cols: &mut [u32]) -> &mut [u8] {
    // SAFETY: any `u32` storage is valid as bytes; the borrow is exclusive and as long.
    unsafe { core::slice::from_raw_parts_mut(cols.as_mut_ptr().cast::<u8>(), cols.len() * 4) }
}

/// The longest reduction (`kh·kw·in` rounded up to 4) [`fill_small`] gathers on the stack.
const SMALL: usize = 16;

/// Column `j` of the im2col for a reduction of at most [`SMALL`] values: the window's values
/// (minus the zero point; zeros for padded taps and past `k`) gathered into a local array, then
/// packed four at a time into the column's pair of words (`SXTB16` order).
#[inline(never)]
fn fill_small(
    tile: &mut [[u32; 2 * COLS]],
    j: usize,
    x: &[i8],
    win: &Window,
    zp_in: i32,
) -> Result<()> {
    let (iy0, ky0, ny) = win.rows;
    let (ix0, kx0, nx) = win.cols;
    let ic = win.ic;
    let mut v = [0i32; SMALL];
    if nx > 0 {
        for dy in 0..ny {
            let s = ((iy0 + dy) * win.iw + ix0) * ic;
            let src = need(x.get(s..s + nx * ic))?;
            let at = ((ky0 + dy) * win.kw + kx0) * ic;
            let dst = need(v.get_mut(at..at + nx * ic))?;
            for (d, &b) in dst.iter_mut().zip(src) {
                *d = i32::from(b) - zp_in;
            }
        }
    }
    let (quads, _) = v.as_chunks::<4>();
    for (t, &[v0, v1, v2, v3]) in tile.iter_mut().zip(quads) {
        put(t, j, [pack16(v0, v2), pack16(v1, v3)]);
    }
    Ok(())
}

/// Column `j` of the im2col, value by value into the halfword view `h`: value `kk` lands in
/// group `kk / 4`, word `2j + kk mod 2`, halfword `kk mod 4 / 2` (the `SXTB16` pair order);
/// values `k..k4` are zeros. Out of line, so that its loop keeps its registers.
#[inline(never)]
fn fill_values(
    h: &mut [i16],
    j: usize,
    x: &[i8],
    win: &Window,
    zp_in: i32,
    k4: usize,
) -> Result<()> {
    let (iy0, ky0, ny) = win.rows;
    let (ix0, kx0, nx) = win.cols;
    let base = 4 * (j % COLS);
    let mut put = |kk: usize, v: i32| {
        let r = kk & 3;
        if let Some(e) = h.get_mut(16 * (kk >> 2) + base + (((r & 1) << 1) | (r >> 1))) {
            *e = v as i16;
        }
    };
    let mut kk = 0;
    if win.ic == 1 {
        // One input channel: each kernel row is one run of input bytes, zeros around it.
        for ky in 0..win.kh {
            let run = if ky >= ky0 && ky < ky0 + ny && nx > 0 {
                let s = (iy0 + ky - ky0) * win.iw + ix0;
                need(x.get(s..s + nx))?
            } else {
                &[]
            };
            let first = if run.is_empty() { win.kw } else { kx0 };
            for _ in 0..first {
                put(kk, 0);
                kk += 1;
            }
            for &v in run {
                put(kk, i32::from(v) - zp_in);
                kk += 1;
            }
            for _ in first + run.len()..win.kw {
                put(kk, 0);
                kk += 1;
            }
        }
        while kk < k4 {
            put(kk, 0);
            kk += 1;
        }
        return Ok(());
    }
    for ky in 0..win.kh {
        let row_in = ky >= ky0 && ky < ky0 + ny;
        for kx in 0..win.kw {
            if row_in && kx >= kx0 && kx < kx0 + nx {
                let s = ((iy0 + ky - ky0) * win.iw + ix0 + kx - kx0) * win.ic;
                for &v in need(x.get(s..s + win.ic))? {
                    put(kk, i32::from(v) - zp_in);
                    kk += 1;
                }
            } else {
                for _ in 0..win.ic {
                    put(kk, 0);
                    kk += 1;
                }
            }
        }
    }
    while kk < k4 {
        put(kk, 0);
        kk += 1;
    }
    Ok(())
}

/// Step 2 of [`conv2d`] for one tile of `n ≤ 4` output pixels from `p0`: every output channel
/// against the four im2col columns, requantized into `y`. A row's last partial group reads on
/// into the next row's weights, which meet the zero padding of the columns; only the last row,
/// where that would leave the weights, takes the zero-padded tail word. (A function of its own:
/// inlined into the fill loop it loses its registers to the stack.)
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn channels(
    op: &Conv2dOp<'_>,
    k: usize,
    tile: &[[u32; 2 * COLS]],
    zp_out: i32,
    y: &mut [i8],
    p0: usize,
    n: usize,
    oc: usize,
    o_start: usize,
) -> Result<()> {
    let weights = op.weights.bytes();
    let groups = tile.len();
    let full = k / 4;
    let (bias, _) = op.bias.bytes().as_chunks::<4>();
    let (mult, _) = op.requant.multipliers.bytes().as_chunks::<4>();
    let shifts = op.requant.shifts.bytes();
    // Checked once: every channel has its bias, multiplier and shift.
    let last = oc.saturating_sub(1);
    need(bias.get(last).zip(mult.get(last)).zip(shifts.get(last)))?;
    let params = bias.iter().zip(mult).zip(shifts).take(oc);
    for (o, ((b, m), &sh)) in params.enumerate().skip(o_start) {
        let at = o * k;
        let mut a = [i32::from_le_bytes(*b); COLS];
        let readable = weights.len().saturating_sub(at);
        let steps = if readable >= 4 * groups { groups } else { full };
        if steps > 0 && readable >= 4 * steps {
            // SAFETY: `steps` groups of 4 weights lie in `weights[at..]` (checked just above)
            // and `steps ≤ groups = tile.len()` tiles of 8 words, 4-aligned as `[u32; 8]`.
            unsafe {
                tile_1x4(
                    weights.as_ptr().add(at),
                    tile.as_ptr().cast(),
                    steps,
                    &mut a,
                )
            };
        }
        if steps < groups {
            let tail = need(weights.get(at + 4 * full..at + k))?;
            tile_step(tail_word(tail), need(tile.get(full))?, &mut a);
        }
        let rq = Rq::new(
            i32::from_le_bytes(*m),
            i32::from(sh as i8),
            zp_out,
            op.act_min,
            op.act_max,
        );
        let base = p0 * oc + o;
        for (j, &acc) in a.iter().enumerate().take(n) {
            *need(y.get_mut(base + j * oc))? = rq.out(acc);
        }
    }
    Ok(())
}

/// Depthwise conv2d (`groups = in = out`): four channels at a time as the pairs (0, 2) and
/// (1, 3), one `SXTAB16` per pair of inputs and `SMLABB`/`SMLATT` per MAC (an `asm!` micro-kernel
/// per kernel row), against the weights repacked once per call into `scratch` as int16 pairs
/// `[group][tap][(w0,w2), (w1,w3)]`. Groups outside, pixels inside, so a group's requantization
/// parameters are set up once. Channels past the last multiple of 4 run the plain way.
pub(crate) fn depthwise(
    op: &Conv2dOp<'_>,
    x: In<'_>,
    mut y: Out<'_>,
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
    if kh == 3 && kw == 3 && sh == 1 && sw == 1 && depthwise_plane(op, x, y.reborrow(), scratch)? {
        return Ok(true);
    }
    let taps = kh * kw;
    let g_all = c.div_ceil(4);
    let g_full = c / 4;
    let Some(packed) = words(scratch, taps * g_all * 2) else {
        return Ok(false);
    };
    let weights = op.weights.bytes();
    if weights.len() != c * taps {
        return Ok(false);
    }
    let w = |ch: usize, t: usize| -> i32 {
        weights
            .get(ch * taps + t)
            .map_or(0, |&v| i32::from(v as i8))
    };
    for (i, pair) in packed.chunks_exact_mut(2).enumerate() {
        let (g, t) = (i / taps, i % taps);
        let ch = 4 * g;
        pair.copy_from_slice(&[
            pack16(w(ch, t), if ch + 2 < c { w(ch + 2, t) } else { 0 }),
            pack16(
                if ch + 1 < c { w(ch + 1, t) } else { 0 },
                if ch + 3 < c { w(ch + 3, t) } else { 0 },
            ),
        ]);
    }
    let packed: &[u32] = packed;
    let xb = as_bytes(x.data);
    let off = offset_pair(x.zero_point);
    let zp_in = i32::from(x.zero_point);
    let zp_out = i32::from(y.zero_point);
    let rq = |ch: usize| -> Result<Rq> {
        Ok(Rq::new(
            need(op.requant.multipliers.get(ch))?,
            i32::from(need(op.requant.shifts.get(ch))?),
            zp_out,
            op.act_min,
            op.act_max,
        ))
    };
    let pixels = y.data.len() / c;
    // Every input byte pixel p reads lies below `end(p)` (the last tap's pixel, all channels).
    let window = |p: usize| {
        let (oy, ox) = (p / ow, p % ow);
        let rows = clip(oy, sh, pt, kh, ih);
        let cols = clip(ox, sw, pl, kw, iw);
        let (iy0, _, ny) = rows;
        let (ix0, _, nx) = cols;
        let end = if ny > 0 && nx > 0 {
            ((iy0 + ny - 1) * iw + ix0 + nx) * c
        } else {
            0
        };
        (rows, cols, end)
    };

    for g in 0..g_full {
        let ch = 4 * g;
        let rqs = [rq(ch)?, rq(ch + 1)?, rq(ch + 2)?, rq(ch + 3)?];
        let mut bias = [0i32; 4];
        let mut mults = [0i32; 4];
        let mut shifts = [0i8; 4];
        for (i, ((b, m), s)) in bias
            .iter_mut()
            .zip(mults.iter_mut())
            .zip(shifts.iter_mut())
            .enumerate()
        {
            *b = need(op.bias.get(ch + i))?;
            *m = need(op.requant.multipliers.get(ch + i))?;
            *s = need(op.requant.shifts.get(ch + i))?;
        }
        let rq4 = Rq4::new(mults, shifts, zp_out, op.act_min, op.act_max);
        let wg = need(packed.get(g * taps * 2..(g + 1) * taps * 2))?;
        // A whole 3×3 window runs without the input offset, its −zp·Σw folded into the bias.
        let mut folded = bias;
        for (i, f) in folded.iter_mut().enumerate() {
            let sum: i32 = (0..taps).map(|t| w(ch + i, t)).sum();
            *f = f.wrapping_sub(zp_in.wrapping_mul(sum));
        }
        let full3 = kh == 3 && kw == 3 && wg.len() >= 18;
        // Output columns whose window lies wholly inside the input: ox_lo..ox_hi.
        let ox_lo = pl.div_ceil(sw);
        let ox_hi = ((iw + pl).saturating_sub(kw) / sw + 1).min(ow);
        let (mut oy, mut ox) = (0, 0);
        let (mut iy0, mut ky0, mut ny) = clip(0, sh, pt, kh, ih);
        let mut p = 0;
        while p < pixels {
            if ox == ow {
                (oy, ox) = (oy + 1, 0);
                (iy0, ky0, ny) = clip(oy, sh, pt, kh, ih);
            }
            let start = ox * sw;
            let (ix0, kx0, nx) = if start >= pl && start + kw <= iw + pl {
                (start - pl, 0, kw)
            } else {
                clip(ox, sw, pl, kw, iw)
            };
            // Every input byte this pixel reads lies below the last tap's pixel, all channels.
            if ny > 0 && nx > 0 && ((iy0 + ny - 1) * iw + ix0 + nx) * c > xb.len() {
                return Ok(false);
            }
            if let (true, 3, 3, Some(q)) = (full3, ny, nx, &rq4) {
                // A run of whole windows along the row, all in assembly.
                let run = ox_hi.saturating_sub(ox).min(pixels - p);
                // The run's last window ends at input column (ox + run − 1)·sw − pl + 3.
                let fits = run > 0
                    && ox >= ox_lo
                    && ((iy0 + 2) * iw + (ox + run - 1) * sw + 3 - pl) * c <= xb.len()
                    && (p + run) * c <= y.data.len();
                if fits {
                    let mut st = DwRun {
                        x: xb.as_ptr().wrapping_add((iy0 * iw + ix0) * c + ch),
                        xstep: sw * c,
                        c,
                        rs: iw * c,
                        w: wg.as_ptr(),
                        y: y.data.as_mut_ptr().wrapping_add(p * c + ch),
                        ystep: c,
                        count: run,
                        bias: folded,
                        q: *q,
                    };
                    // SAFETY: `run ≥ 1` whole 3×3 windows: each reads nine input words below
                    // its last tap's pixel end, the last of which is ≤ xb.len() (checked just
                    // above; ch + 4 ≤ c), `wg` holds 18 aligned words (`full3`), each writes 4
                    // bytes at (p + i)·c + ch < (p + run)·c ≤ y.len(), and `q` came from
                    // `Rq4::new` (every shift checked).
                    unsafe { dw_3x3_run(&mut st) };
                    p += run;
                    ox += run;
                    continue;
                }
            }
            ox += 1;
            if let (Some(q), true, true) = (&rq4, ny > 0, nx > 0) {
                // One clipped window (a border pixel, or a kernel other than 3×3).
                let t0 = ky0 * kw + kx0;
                let tl = (ky0 + ny - 1) * kw + kx0 + nx;
                if tl * 2 <= wg.len() && (p + 1) * c <= y.data.len() {
                    let mut st = DwWin {
                        x: xb.as_ptr().wrapping_add((iy0 * iw + ix0) * c + ch),
                        ny,
                        c,
                        rs: (iw - nx) * c,
                        w: wg.as_ptr().wrapping_add(2 * t0),
                        wskip: (kw - nx) * 8,
                        nx,
                        left: 0,
                        bias,
                        q: *q,
                        y: y.data.as_mut_ptr().wrapping_add(p * c + ch),
                        off,
                    };
                    // SAFETY: ny, nx ≥ 1; the window's input words lie below its last tap's
                    // pixel end ≤ xb.len() (checked above; ch + 4 ≤ c), its weight pairs are
                    // `wg[2·t0..2·tl]` (checked just above; 4-aligned words), the outputs are
                    // 4 bytes at p·c + ch < (p + 1)·c ≤ y.len(), and `q` came from `Rq4::new`.
                    unsafe { dw_window(&mut st) };
                    p += 1;
                    continue;
                }
            }
            let mut a;
            if full3 && ny == 3 && nx == 3 {
                a = folded;
                let at = (iy0 * iw + ix0) * c + ch;
                // SAFETY: the nine taps read the input words at `at + ky·iw·c + kx·c`, all
                // below the last tap's pixel end ≤ xb.len() (checked above; ch + 4 ≤ c for a
                // full group); `wg` holds 18 aligned words (`full3`).
                unsafe { dw_3x3(&mut a, xb.as_ptr().add(at), c, (iw - 2) * c, wg.as_ptr()) };
            } else {
                a = bias;
                for dy in 0..ny {
                    let mut at = ((iy0 + dy) * iw + ix0) * c + ch;
                    let mut t = (ky0 + dy) * kw + kx0;
                    if 2 * (t + nx) > wg.len() {
                        return Ok(false);
                    }
                    let mut left = nx;
                    while left > 0 {
                        let step = left.min(3);
                        // SAFETY: the taps read the input words at `at + i·c` (i < step), all
                        // below the last tap's pixel end ≤ xb.len() (checked above; ch + 4 ≤ c
                        // for a full group), and the weight
                        // pairs `wg[2t..2(t + step)]`, inside `wg` (checked above; `packed` is
                        // 4-aligned words).
                        unsafe {
                            let (xp, wp) = (xb.as_ptr().add(at), wg.as_ptr().add(2 * t));
                            match step {
                                3 => dw_row3(&mut a, xp, c, wp, off),
                                2 => dw_row2(&mut a, xp, c, wp, off),
                                _ => dw_row1(&mut a, xp, c, wp, off),
                            }
                        }
                        at += step * c;
                        t += step;
                        left -= step;
                    }
                }
            }
            let out = need(y.data.get_mut(p * c + ch..p * c + ch + 4))?;
            if let Some(q) = &rq4 {
                // SAFETY: `out` is 4 bytes; `Rq4::new` checked every shift.
                unsafe { requant_4x8(a, q, out.as_mut_ptr()) };
            } else {
                for ((d, acc), rq) in out.iter_mut().zip(a).zip(&rqs) {
                    *d = rq.out(acc);
                }
            }
            p += 1;
        }
    }
    for ch in 4 * g_full..c {
        let rq = rq(ch)?;
        let bias = need(op.bias.get(ch))?;
        for p in 0..pixels {
            let ((iy0, ky0, ny), (ix0, kx0, nx), _) = window(p);
            let mut acc = bias;
            for dy in 0..ny {
                for dx in 0..nx {
                    let at = ((iy0 + dy) * iw + ix0 + dx) * c + ch;
                    let xv = i32::from(need(x.data.get(at).copied())?) - zp_in;
                    let t = (ky0 + dy) * kw + kx0 + dx;
                    acc = acc.wrapping_add(xv * w(ch, t));
                }
            }
            *need(y.data.get_mut(p * c + ch))? = rq.out(acc);
        }
    }
    Ok(true)
}

/// Depthwise 3×3, stride 1, an even output width ≥ 4: channel by channel over an int16 plane of
/// the zero-padded input channel in `scratch` (padding = the input zero point, whose products
/// the bias cancels: `bias − zp·Σw`), so that border pixels need no code of their own; per
/// channel one [`dw_plane`] call, four outputs along a row per pass, pairs of taps along a
/// kernel row per `SMLAD`. `Ok(false)`: not handled here (shapes, a plane larger than the
/// scratch, a shift off the `SMMLA` path).
fn depthwise_plane(op: &Conv2dOp<'_>, x: In<'_>, y: Out<'_>, scratch: &mut [u8]) -> Result<bool> {
    let (ih, iw, c) = (
        usize::from(x.shape.h),
        usize::from(x.shape.w),
        usize::from(x.shape.c),
    );
    let (oh, ow) = (usize::from(y.shape.h), usize::from(y.shape.w));
    let [pt, pl, pb, pr] = op.padding.map(usize::from);
    let (ph, pw) = (ih + pt + pb, iw + pl + pr);
    if ow < 4
        || oh == 0
        || !ow.is_multiple_of(2)
        || ph != oh + 2
        || pw != ow + 2
        || x.data.len() != ih * iw * c
        || y.data.len() != oh * ow * c
        || op.weights.len() != 9 * c
        || op.bias.len() < c
        || op.requant.multipliers.len() < c
        || op.requant.shifts.len() < c
        || !op
            .requant
            .shifts
            .bytes()
            .iter()
            .take(c)
            .all(|&s| (-31..=-2).contains(&(s as i8)))
    {
        return Ok(false);
    }
    let Some(plane) = super::halves(scratch, ph * pw) else {
        return Ok(false);
    };
    if !(plane.as_ptr() as usize).is_multiple_of(4) {
        return Ok(false);
    }
    // The padding once (the interior is rewritten per channel).
    let zp_in = i16::from(x.zero_point);
    plane.fill(zp_in);
    let weights = op.weights.bytes();
    let clamp = op.act_min != i8::MIN || op.act_max != i8::MAX;
    // Full passes of four outputs, then (ow = 4k + 2) a half pass of two.
    let (passes, half) = (ow / 4, ow % 4 / 2);
    let xb = as_bytes(x.data);
    for ch in 0..c {
        let interior = need(plane.get_mut(pt * pw + pl..(pt + ih - 1) * pw + pl + iw))?;
        let mut g = [iw / 4, iw % 4, 2 * (pw - iw), ih];
        // SAFETY: the input bytes x[(iy·iw + ix)·c + ch] (iy < ih, ix < iw; ch < c) lie in
        // `xb` (ih·iw·c bytes, checked), and the halfwords written are the interior's:
        // row iy at (pt + iy)·pw + pl + ix, inside `interior` (ih ≥ 1 rows, checked above).
        unsafe { gather_plane(xb.as_ptr().add(ch), c, interior.as_mut_ptr(), &mut g) };
        let w = need(weights.get(9 * ch..9 * ch + 9))?;
        let wv = |t: usize| w.get(t).map_or(0, |&v| i32::from(v as i8));
        let sum: i32 = (0..9).map(wv).sum();
        let shift = need(op.requant.shifts.get(ch))?;
        let hs = -1 - i32::from(shift);
        let mut st = DwPlane {
            y: y.data.as_mut_ptr().wrapping_add(ch),
            c,
            passes,
            left: 0,
            rows: oh,
            half,
            bias: need(op.bias.get(ch))?.wrapping_sub(i32::from(zp_in).wrapping_mul(sum)),
            m: need(op.requant.multipliers.get(ch))?,
            rnd: 1 << (hs - 1),
            hs,
            zp: i32::from(y.zero_point),
            min: u32::from_le_bytes([op.act_min as u8; 4]),
            max: u32::from_le_bytes([op.act_max as u8; 4]),
            w: [0, 1, 2]
                .map(|r| {
                    [
                        pack16(wv(3 * r), wv(3 * r + 1)),
                        pack16(wv(3 * r + 1), wv(3 * r + 2)),
                    ]
                })
                .as_flattened()
                .try_into()
                .unwrap_or([0; 6]),
        };
        // SAFETY: the plane is ph·pw halfwords at a 4-aligned address, its rows 2·pw bytes (pw
        // = ow + 2 = 4·passes + 2·half + 2, even); a pass at plane row oy, column s = 4k reads
        // rows oy..oy + 3 < ph = oh + 2, columns s..s + 6 ≤ pw (a half pass at s = ow − 2:
        // s..s + 4 = pw); its outputs are pixels (oy, s..s + 4) (or s..s + 2) of channel ch < c
        // in y (oh·ow·c bytes, checked); rows = oh ≥ 1, passes ≥ 1 (ow ≥ 4), and
        // hs = −1 − shift lies in 1..=30 (every shift checked in −31..=−2).
        unsafe { dw_plane(&mut st, plane.as_ptr().cast::<u32>(), 2 * pw, clamp) };
    }
    Ok(true)
}

/// Dense: the input widened once into `scratch` (offset folded in, pair order), then two output
/// rows at a time, each weight word split by `SXTB16` and two `SMLAD` per four MACs.
pub(crate) fn dense(op: &DenseOp<'_>, x: In<'_>, y: Out<'_>, scratch: &mut [u8]) -> Result<bool> {
    let n = x.data.len();
    let groups = n.div_ceil(4);
    let Some(xw) = words(scratch, groups * 2) else {
        return Ok(false);
    };
    let off = offset_pair(x.zero_point);
    let xb = as_bytes(x.data);
    let (xq, xt) = xb.as_chunks::<4>();
    let (xw2, _) = xw.as_chunks_mut::<2>();
    for (d, s) in xw2.iter_mut().zip(xq) {
        let v = u32::from_le_bytes(*s);
        *d = [sxtab16(off, v), sxtab16_ror8(off, v)];
    }
    if !xt.is_empty() {
        // The zero-padded tail: padded lanes must be 0 after the offset, so add it per lane.
        let zp = i32::from(x.zero_point);
        let v = |i: usize| xt.get(i).map_or(0, |&b| i32::from(b as i8) - zp);
        let d = need(xw.get_mut(2 * xq.len()..2 * xq.len() + 2))?;
        d.copy_from_slice(&[pack16(v(0), v(2)), pack16(v(1), v(3))]);
    }
    let xw: &[u32] = xw;
    let (xp, _) = xw.as_chunks::<2>();
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
    let full = n / 4;
    let mut o = 0;
    while o < out_n {
        // Three rows per pass where possible (the input words loaded once for all three),
        // two for a remainder of 2 or 4, one for a last single row.
        let r = match out_n - o {
            1 => 1,
            2 | 4 => 2,
            _ => 3,
        };
        let mut a = [0i32; 3];
        let mut rows: [&[u8]; 3] = [&[]; 3];
        for (i, (a, rw)) in a.iter_mut().zip(rows.iter_mut()).enumerate().take(r) {
            *a = need(op.bias.get(o + i))?;
            *rw = need(row(o + i))?;
        }
        let [r0, r1, r2] = rows;
        let steps = full.min(xp.len());
        if steps > 0 {
            // SAFETY: each of the `r` rows holds n ≥ 4·steps bytes, `xw` holds 2·steps aligned
            // words.
            unsafe {
                match r {
                    3 => rows_3x1(
                        [r0.as_ptr(), r1.as_ptr(), r2.as_ptr()],
                        xw.as_ptr(),
                        steps,
                        &mut a,
                    ),
                    2 => {
                        let mut a2 = [a[0], a[1]];
                        rows_2x1(r0.as_ptr(), r1.as_ptr(), xw.as_ptr(), steps, &mut a2);
                        [a[0], a[1]] = a2;
                    }
                    _ => {
                        let (q0, _) = r0.as_chunks::<4>();
                        for (w0, &[xe, xo]) in q0.iter().zip(xp) {
                            let w0 = u32::from_le_bytes(*w0);
                            a[0] = smlad(sxtb16_ror8(w0), xo, smlad(sxtb16(w0), xe, a[0]));
                        }
                    }
                }
            }
        }
        if !n.is_multiple_of(4) {
            let &[xe, xo] = need(xp.get(full))?;
            for (acc, rw) in a.iter_mut().zip(rows).take(r) {
                let w = tail_word(need(rw.get(4 * full..))?);
                *acc = smlad(sxtb16_ror8(w), xo, smlad(sxtb16(w), xe, *acc));
            }
        }
        for (i, &acc) in a.iter().enumerate().take(r) {
            *need(y.data.get_mut(o + i))? = rq(o + i)?.out(acc);
        }
        o += r;
    }
    Ok(true)
}
