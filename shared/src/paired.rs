//! The paired layout of `DensePaired` weights (format 1.5, SPEC §3.4): symmetric int8 dense
//! weights stored so that a Cortex-M4 does four MACs with one load, one `UXTB16` and two `SMLAD`
//! (1.0 instruction per MAC) instead of a load, two `SXTB16` and two `SMLAD` (1.25).
//!
//! Per row, the weights are cut into groups of four (`w0 w1 w2 w3`, the last group padded with
//! zeros); in a group the even weights are stored biased (`w + 128`, so `1..=255`), the odd ones
//! as they are. Read as a little-endian word `W`, its halfwords are `u0 + 256·w1` and
//! `u2 + 256·w3` and `UXTB16(W) = (u0, u2)`; against the input widened to
//! `O = (x1 − 127, x3 − 127)` and `E = (256·x0 − x1 + 127, 256·x2 − x3 + 127)`:
//! `SMLAD(W, O) + SMLAD(UXTB16(W), E) = 256·Σ x·w + 32768·(x0 + x2) − 32512·(w1 + w3)`.
//! A kernel starts each chunk of [`PAIRED_CHUNK_GROUPS`] groups at
//! `32512·Σ odd weights − 32768·Σ even inputs` (the first term is stored per row and chunk,
//! [`paired_odd_terms`]) and ends it at exactly `256·Σ x·w`.
//!
//! Rows are interleaved in blocks ([`paired_block`]): four rows at a time from the top, then two,
//! then one, each block's words group by group, so one pointer feeds every row of a block.

/// Groups of four weights per chunk: `|Σ x·w| ≤ 512·128·127 < 2^23` over a chunk, so
/// `256·Σ x·w` fits the 32-bit accumulator and the shift back by 8 is exact.
pub const PAIRED_CHUNK_GROUPS: usize = 128;

/// `256·127`: the factor of the odd weights' sum in a chunk's starting accumulator.
pub const PAIRED_ODD_FACTOR: i32 = 32512;

/// Groups of four per row for `k` inputs.
pub const fn paired_groups(k: usize) -> usize {
    k.div_ceil(4)
}

/// Chunks per row for `k` inputs (at least one).
pub const fn paired_chunks(k: usize) -> usize {
    let c = paired_groups(k).div_ceil(PAIRED_CHUNK_GROUPS);
    if c == 0 {
        1
    } else {
        c
    }
}

/// The block of rows holding row `r` of `rows`: `(first row, rows in the block)`. Blocks of four
/// from the top; a remainder of three is a block of two and a block of one.
///
/// ```
/// use tinykd_format::paired_block;
/// assert_eq!(paired_block(10, 5), (4, 4));
/// assert_eq!(paired_block(10, 9), (8, 2));
/// assert_eq!(paired_block(7, 6), (6, 1));
/// ```
pub const fn paired_block(rows: usize, r: usize) -> (usize, usize) {
    let full = rows / 4 * 4;
    if r < full {
        (r / 4 * 4, 4)
    } else if rows - full >= 2 && r < full + 2 {
        (full, 2)
    } else {
        (full + (rows - full) / 2 * 2, 1)
    }
}

/// Byte offset of row `r`'s group `g` (four bytes) in the paired weights of `rows` rows of
/// `groups` groups.
pub const fn paired_index(rows: usize, groups: usize, r: usize, g: usize) -> usize {
    let (first, len) = paired_block(rows, r);
    (first * groups + g * len + (r - first)) * 4
}

/// Weight `i` of row `r`, decoded, or `None` outside the weights.
pub fn paired_weight(bytes: &[u8], rows: usize, k: usize, r: usize, i: usize) -> Option<i8> {
    if r >= rows || i >= k {
        return None;
    }
    let b = *bytes.get(paired_index(rows, paired_groups(k), r, i / 4) + i % 4)?;
    Some(decode(b, i.is_multiple_of(2)))
}

/// A stored byte as the weight it holds (even positions are biased by 128).
const fn decode(b: u8, even: bool) -> i8 {
    if even {
        (b as i16 - 128) as i8
    } else {
        b as i8
    }
}

/// `32512 · Σ odd weights` of row `r`, chunk `c`, from the paired bytes (validation recomputes
/// the stored table with this). `None` if the bytes are short.
pub fn paired_odd_term(bytes: &[u8], rows: usize, k: usize, r: usize, c: usize) -> Option<i32> {
    let groups = paired_groups(k);
    let start = c * PAIRED_CHUNK_GROUPS;
    let end = groups.min(start + PAIRED_CHUNK_GROUPS);
    let mut sum = 0i32;
    for g in start..end {
        let at = paired_index(rows, groups, r, g);
        let &[_, w1, _, w3] = bytes.get(at..at + 4)? else {
            return None;
        };
        sum += i32::from(w1 as i8) + i32::from(w3 as i8);
    }
    Some(sum * PAIRED_ODD_FACTOR)
}

/// The paired bytes of `rows × k` weights (`[out][in]`, each in `-127..=127`) and the per-row,
/// per-chunk odd terms (`rows × chunks` little-endian `i32`), or `None` if a weight is −128 or
/// the length is not `rows · k`.
#[cfg(any(test, feature = "alloc"))]
pub fn pair_weights(
    weights: &[i8],
    rows: usize,
    k: usize,
) -> Option<(alloc::vec::Vec<u8>, alloc::vec::Vec<u8>)> {
    if weights.len() != rows.checked_mul(k)? || weights.contains(&i8::MIN) {
        return None;
    }
    let groups = paired_groups(k);
    let mut bytes = alloc::vec![0u8; rows * groups * 4];
    for r in 0..rows {
        for g in 0..groups {
            let at = paired_index(rows, groups, r, g);
            for j in 0..4 {
                let i = 4 * g + j;
                let w = if i < k { *weights.get(r * k + i)? } else { 0 };
                *bytes.get_mut(at + j)? = if j.is_multiple_of(2) {
                    (i16::from(w) + 128) as u8
                } else {
                    w as u8
                };
            }
        }
    }
    let mut terms = alloc::vec::Vec::with_capacity(rows * paired_chunks(k) * 4);
    for r in 0..rows {
        for c in 0..paired_chunks(k) {
            terms.extend_from_slice(&paired_odd_term(&bytes, rows, k, r, c)?.to_le_bytes());
        }
    }
    Some((bytes, terms))
}

/// Checks paired bytes against `rows × k`: every even byte ≥ 1 and every odd byte ≠ 0x80 (the
/// weights are symmetric, −127..=127), and the padding of the last group zero weights. Lengths
/// are the caller's.
pub(crate) fn paired_bytes_ok(bytes: &[u8], rows: usize, k: usize) -> bool {
    let groups = paired_groups(k);
    for r in 0..rows {
        for g in 0..groups {
            let at = paired_index(rows, groups, r, g);
            let Some(w) = bytes.get(at..at + 4) else {
                return false;
            };
            for (j, &b) in w.iter().enumerate() {
                let even = j.is_multiple_of(2);
                let symmetric = if even { b != 0 } else { b != 0x80 };
                let padding = 4 * g + j >= k;
                if !symmetric || (padding && decode(b, even) != 0) {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_row_once_in_order() {
        for rows in 1..20 {
            let mut next = 0;
            while next < rows {
                let (first, len) = paired_block(rows, next);
                assert_eq!(first, next, "rows {rows}");
                assert!([1, 2, 4].contains(&len));
                for r in first..first + len {
                    assert_eq!(paired_block(rows, r), (first, len));
                }
                next += len;
            }
        }
        // 10 rows: 4 + 4 + 2; 7 rows: 4 + 2 + 1.
        assert_eq!(paired_block(10, 8), (8, 2));
        assert_eq!(paired_block(7, 4), (4, 2));
        assert_eq!(paired_block(7, 6), (6, 1));
    }

    /// Worked by hand: 2 rows of k = 5 (two groups, the second padded): row 0 = 1 −2 3 −4 5,
    /// row 1 = −127 127 0 1 −1. One block of two rows, group by group.
    #[test]
    fn layout_and_odd_terms_by_hand() {
        let w: [i8; 10] = [1, -2, 3, -4, 5, -127, 127, 0, 1, -1];
        let (bytes, terms) = pair_weights(&w, 2, 5).unwrap();
        assert_eq!(
            bytes,
            [
                129, 0xfe, 131, 0xfc, // row 0, group 0
                1, 127, 128, 1, // row 1, group 0
                133, 0, 128, 0, // row 0, group 1 (padded)
                127, 0, 128, 0, // row 1, group 1
            ]
        );
        let t: std::vec::Vec<i32> = terms
            .chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(t, [32512 * -6, 32512 * 128]);
        for r in 0..2 {
            for i in 0..5 {
                assert_eq!(paired_weight(&bytes, 2, 5, r, i), Some(w[r * 5 + i]));
            }
        }
        assert!(paired_bytes_ok(&bytes, 2, 5));
        let mut zero_even = bytes.clone();
        zero_even[4] = 0;
        assert!(!paired_bytes_ok(&zero_even, 2, 5));
        let mut odd_min = bytes.clone();
        odd_min[5] = 0x80;
        assert!(!paired_bytes_ok(&odd_min, 2, 5));
        let mut padding = bytes;
        padding[14] = 129;
        assert!(!paired_bytes_ok(&padding, 2, 5));
        assert_eq!(pair_weights(&[i8::MIN], 1, 1), None);
    }

    /// The identity the kernels rest on, for every extreme of one group.
    #[test]
    fn smlad_identity_holds_at_the_extremes() {
        let vals = [-128i32, -127, -1, 0, 1, 126, 127];
        let ws = [-127i32, -1, 0, 1, 127];
        for &x0 in &vals {
            for &x1 in &vals {
                for &w0 in &ws {
                    for &w1 in &ws {
                        let h0 = (w0 + 128) + 256 * w1;
                        assert!((-32768..=32767).contains(&h0));
                        let (o, e) = (x1 - 127, 256 * x0 - x1 + 127);
                        assert!((-32768..=32767).contains(&e));
                        let got = h0 * o + (w0 + 128) * e;
                        assert_eq!(got, 256 * (x0 * w0 + x1 * w1) + 32768 * x0 - 32512 * w1);
                    }
                }
            }
        }
        assert!(PAIRED_CHUNK_GROUPS as i64 * 4 * 128 * 127 * 256 < 1 << 31);
    }
}
