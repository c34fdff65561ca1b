//! Fast kernels (issue 10): the same results as the portable reference kernels in `ops/*.rs`,
//! byte for byte, in far fewer instructions.
//!
//! - [`dsp`]: Cortex-M4/M7/M33 with the DSP extension (`thumbv7em`; `cfg(tinykd_dsp)` from build.rs):
//!   convolutions as an int16 im2col (input offset folded in) times the int8 weights in a tile of
//!   one output channel × four output pixels, two MACs per `SMLAD`, the whole channel loop of a
//!   tile (with `SMMLA` requantization and four outputs clamped at once) in one asm block; dense
//!   as a three-row matrix-vector product over the widened input; depthwise convolutions on
//!   channel pairs (`SXTB16` + `SMLABB`/`SMLATT`) against weights repacked as int16 pairs, whole
//!   3×3 windows in one asm block.
//! - [`scalar`]: cores without DSP (Cortex-M0/M0+/M3): an im2col of biased unsigned halfwords read
//!   by a Thumb-1 asm micro-kernel (four pixels per weight), depthwise per pixel with a
//!   requantization table in the scratch, and requantization without a 64-bit multiply.
//!
//! Which one `Model::run` uses is decided at compile time (see `ops::kernels`); both compile
//! everywhere (the DSP instructions have a portable stand-in, `simd`), so `cargo test` on the host
//! checks both against the reference on random shapes, and `device/kernel-tests` does it again in
//! QEMU on the real instructions. The scratch buffers come from the memory plan
//! (`tinykd_format::scratch_len`); when a kernel cannot run (no scratch plan in a 1.0 blob, an
//! arena that is not 4-aligned, an op shape it does not handle) it says so and the caller runs
//! the reference kernel instead.

/// The epilogue of four requantized channels in `a0 … a3` (Thumb-2 text for `asm!`): the output
/// zero point in register `zp` added, each saturated to int8 (`SSAT`), the four bytes packed into
/// `a0` (`BFI`), then clamped to the activation range together: `min` and `max` (each repeated in
/// four bytes) loaded by `LDRD` from `[base, #off]` into `lo` / `hi` (`lo` may be `zp`), signed
/// bytewise max and min by `SSUB8` + `SEL` (`t` is clobbered; the GE flags are set).
#[cfg(tinykd_dsp)]
macro_rules! pack4_clamp {
    ($zp:literal, $lo:literal, $hi:literal, $t:literal, $base:literal, $off:literal) => {
        concat!(
            "add {a0}, {a0}, {",
            $zp,
            "}\n",
            "add {a1}, {a1}, {",
            $zp,
            "}\n",
            "add {a2}, {a2}, {",
            $zp,
            "}\n",
            "add {a3}, {a3}, {",
            $zp,
            "}\n",
            "ssat {a0}, #8, {a0}\n",
            "ssat {a1}, #8, {a1}\n",
            "ssat {a2}, #8, {a2}\n",
            "ssat {a3}, #8, {a3}\n",
            "bfi {a0}, {a1}, #8, #8\n",
            "bfi {a0}, {a2}, #16, #8\n",
            "bfi {a0}, {a3}, #24, #8\n",
            "ldrd {",
            $lo,
            "}, {",
            $hi,
            "}, [{",
            $base,
            "}, #",
            $off,
            "]\n",
            "ssub8 {",
            $t,
            "}, {a0}, {",
            $lo,
            "}\n",
            "sel {a0}, {a0}, {",
            $lo,
            "}\n",
            "ssub8 {",
            $t,
            "}, {a0}, {",
            $hi,
            "}\n",
            "sel {a0}, {",
            $hi,
            "}, {a0}\n",
        )
    };
}

pub(crate) mod dense_paired;
pub(crate) mod dsp;
#[cfg(any(tinykd_dsp, not(target_arch = "arm")))]
pub(crate) mod one_channel;
#[cfg(any(tinykd_dsp, not(target_arch = "arm")))]
pub(crate) mod pointwise;
pub(crate) mod scalar;
pub(crate) mod simd;

use tinykd_format::requantize;

/// Per-channel requantization, set up once per output channel: the same result as
/// `tinykd_format::requantize` (SPEC §4) for every accumulator. For the usual total shift of 33
/// or more (real multipliers below 0.5) it is the high word of the 64-bit product, a rounding
/// add and an arithmetic shift, exact because the rounding bit lies in the high word.
#[derive(Clone, Copy)]
pub(crate) struct Rq {
    multiplier: i32,
    shift: i32,
    /// `total − 32` when `total = 31 − shift ≥ 33`, else 0 (general path).
    high_shift: u32,
    round: i32,
    zp: i32,
    min: i32,
    max: i32,
}

impl Rq {
    #[inline(always)]
    pub(crate) fn new(multiplier: i32, shift: i32, zp: i32, min: i8, max: i8) -> Rq {
        let total = 31 - shift;
        let (high_shift, round) = if (33..=62).contains(&total) {
            let t = (total - 32) as u32;
            (t, 1i32 << (t - 1))
        } else {
            (0, 0)
        };
        Rq {
            multiplier,
            shift,
            high_shift,
            round,
            zp,
            min: i32::from(min),
            max: i32::from(max),
        }
    }

    /// `clamp(requantize(acc) + zp, min, max)`, as the reference's `requantize_out`.
    #[inline(always)]
    pub(crate) fn out(&self, acc: i32) -> i8 {
        let r = if self.high_shift != 0 {
            // high + round in one `SMMLA` (the rounding term has no low word). |high| ≤ 2^30
            // and round ≤ 2^29, so nothing wraps; after the shift (≥ 1) adding the zero point
            // cannot overflow either, so no saturating add is needed on this path.
            let high = if cfg!(tinykd_dsp) {
                let acc_round =
                    i64::from(acc) * i64::from(self.multiplier) + (i64::from(self.round) << 32);
                (acc_round >> 32) as i32
            } else {
                mul_high(acc, self.multiplier) + self.round
            };
            (high >> self.high_shift) + self.zp
        } else {
            general(acc, self.multiplier, self.shift, self.zp)
        };
        r.max(self.min).min(self.max) as i8
    }
}

/// The multiplier for one `SMMLAR` (`⌊(acc·m' + zp·2³² + 2³¹) / 2³²⌋ = zp + requantize(acc, m,
/// shift)`): `m >> hs` when `hs = −1 − shift` lies in 0..=30 and `m` is a multiple of `2^hs`, as
/// the exporter writes multipliers (`tinykd_format::quantize_multiplier_q32`). Exact:
/// `⌊(acc·m' + 2^31)/2^32⌋ = ⌊(acc·m'·2^hs + 2^(31+hs))/2^(32+hs)⌋`, and the sum cannot wrap
/// (|acc·m'| ≤ 2^62, the result ≤ 2^30 + 128). `None` for any other pair (old blobs, factors of
/// 0.25 or more): the caller takes a general path.
#[cfg(any(tinykd_dsp, not(target_arch = "arm")))]
pub(crate) fn smmlar_multiplier(m: i32, shift: i8) -> Option<i32> {
    let hs = -1 - i32::from(shift);
    ((0..=30).contains(&hs) && m & ((1 << hs) - 1) == 0).then(|| m >> hs)
}

/// `⌊a·m / 2³²⌋`, the high word of the 64-bit product, from four 16×16-bit products and the
/// carries of the middle terms: on cores without a 64-bit multiply (Cortex-M0 calls
/// `__aeabi_lmul`, ~40 instructions) this is about 15. (With the DSP extension `SMMLA` does it.)
#[inline(always)]
pub(crate) fn mul_high(a: i32, m: i32) -> i32 {
    let (al, ah) = ((a & 0xFFFF) as u32, a >> 16);
    let (ml, mh) = ((m & 0xFFFF) as u32, m >> 16);
    let ll = al * ml; // < 2^32
    let lh = (al as i32) * mh; // |·| < 2^31
    let hl = ah * (ml as i32);
    let hh = ah * mh;
    // The middle terms' low halves and the low product's high half carry into the high word;
    // their high halves (arithmetic shifts) go in directly. The true result fits an i32.
    let mid = (ll >> 16) + (lh as u32 & 0xFFFF) + (hl as u32 & 0xFFFF);
    hh.wrapping_add(lh >> 16)
        .wrapping_add(hl >> 16)
        .wrapping_add((mid >> 16) as i32)
}

/// The rare path of [`Rq::out`] (real multipliers of 0.5 or more), kept out of the hot loops.
#[cold]
#[inline(never)]
fn general(acc: i32, multiplier: i32, shift: i32, zp: i32) -> i32 {
    requantize(acc, multiplier, shift).saturating_add(zp)
}

/// The state of [`simd::channels_1x4`], the assembly channel loop of the DSP conv2d: read and
/// advanced in place by field offset (`repr(C)`; the offsets below hold on 32-bit Arm).
#[repr(C)]
pub(crate) struct ChannelLoop {
    /// The current channel's weight row.
    pub(crate) w: *const u8,
    /// Row length (`kh·kw·in`).
    pub(crate) k: usize,
    /// The im2col tile: `steps` groups of 8 words.
    pub(crate) tile: *const u32,
    pub(crate) steps: usize,
    /// The current channel's bias and multiplier (little-endian `i32`) and shift (`i8`).
    pub(crate) bias: *const u8,
    pub(crate) mult: *const u8,
    pub(crate) shift: *const u8,
    /// The current channel's output at the tile's first pixel; pixels are `oc` apart.
    pub(crate) y: *mut i8,
    pub(crate) oc: usize,
    pub(crate) zp: i32,
    /// `act_min` and `act_max` repeated in the four bytes of a word (for `SSUB8`/`SEL`).
    pub(crate) min: u32,
    pub(crate) max: u32,
    /// Channels left.
    pub(crate) count: usize,
}

#[cfg(target_arch = "arm")]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(ChannelLoop, k) == 4 && offset_of!(ChannelLoop, tile) == 8);
    assert!(offset_of!(ChannelLoop, steps) == 12 && offset_of!(ChannelLoop, bias) == 16);
    assert!(offset_of!(ChannelLoop, mult) == 20 && offset_of!(ChannelLoop, shift) == 24);
    assert!(offset_of!(ChannelLoop, y) == 28 && offset_of!(ChannelLoop, oc) == 32);
    assert!(offset_of!(ChannelLoop, zp) == 36 && offset_of!(ChannelLoop, min) == 40);
    assert!(offset_of!(ChannelLoop, max) == 44 && offset_of!(ChannelLoop, count) == 48);
};

/// Requantization of four channels for [`simd::requant_4x8`] (all on the `SMMLA` path of [`Rq`]:
/// total shift 33..=62): multiplier, rounding term `2^(hs−1)` and shift `hs = total − 32` per
/// channel, the output zero point, and `min`/`max` repeated in the four bytes of a word.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Rq4 {
    pub(crate) m: [i32; 4],
    pub(crate) rnd: [i32; 4],
    pub(crate) hs: [i32; 4],
    pub(crate) zp: i32,
    pub(crate) min: u32,
    pub(crate) max: u32,
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Rq4, rnd) == 16 && offset_of!(Rq4, hs) == 32);
    assert!(offset_of!(Rq4, zp) == 48 && offset_of!(Rq4, min) == 52);
    assert!(offset_of!(Rq4, max) == 56);
};

impl Rq4 {
    /// From four (multiplier, shift) pairs, or `None` if a shift is outside −31..=−2.
    pub(crate) fn new(m: [i32; 4], shifts: [i8; 4], zp: i32, min: i8, max: i8) -> Option<Rq4> {
        if !shifts.iter().all(|s| (-31..=-2).contains(s)) {
            return None;
        }
        let hs = shifts.map(|s| -1 - i32::from(s));
        Some(Rq4 {
            m,
            rnd: hs.map(|h| 1 << (h - 1)),
            hs,
            zp,
            min: u32::from_le_bytes([min as u8; 4]),
            max: u32::from_le_bytes([max as u8; 4]),
        })
    }
}

/// The state of [`simd::dw_3x3_run`]: a run of whole 3×3 depthwise windows along an output row,
/// four channels, read and advanced in place by field offset (`repr(C)`, asserted below).
#[repr(C)]
pub(crate) struct DwRun {
    /// The current pixel's first tap (input byte of its group's first channel).
    pub(crate) x: *const u8,
    /// Input bytes from one pixel's first tap to the next's (`stride·c`).
    pub(crate) xstep: usize,
    /// Channels (bytes from one tap to the next along a row).
    pub(crate) c: usize,
    /// Bytes of one input row (`iw·c`).
    pub(crate) rs: usize,
    /// The group's nine weight pairs.
    pub(crate) w: *const u32,
    /// The current pixel's four outputs, and the bytes to the next pixel's.
    pub(crate) y: *mut i8,
    pub(crate) ystep: usize,
    /// Pixels left (≥ 1).
    pub(crate) count: usize,
    /// Bias with `−zp·Σw` folded in, per channel.
    pub(crate) bias: [i32; 4],
    pub(crate) q: Rq4,
}

#[cfg(target_arch = "arm")]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(DwRun, xstep) == 4 && offset_of!(DwRun, c) == 8);
    assert!(offset_of!(DwRun, rs) == 12 && offset_of!(DwRun, w) == 16);
    assert!(offset_of!(DwRun, y) == 20 && offset_of!(DwRun, ystep) == 24);
    assert!(offset_of!(DwRun, count) == 28 && offset_of!(DwRun, bias) == 32);
    assert!(offset_of!(DwRun, q) == 48);
};

/// The state of [`simd::dw_window`]: one clipped depthwise window (`ny` rows of `nx` taps) of
/// four channels, read and updated in place by field offset (`repr(C)`, asserted below).
#[repr(C)]
pub(crate) struct DwWin {
    /// The window's first valid tap (input byte of the group's first channel).
    pub(crate) x: *const u8,
    /// Rows left (≥ 1).
    pub(crate) ny: usize,
    pub(crate) c: usize,
    /// Bytes from after a row's last tap to the next row's first (`(iw − nx)·c`).
    pub(crate) rs: usize,
    /// The first valid tap's weight pair, and the bytes of weight pairs to skip per row
    /// (`(kw − nx)·8`).
    pub(crate) w: *const u32,
    pub(crate) wskip: usize,
    /// Taps per row (≥ 1), and the tap counter.
    pub(crate) nx: usize,
    pub(crate) left: usize,
    pub(crate) bias: [i32; 4],
    pub(crate) q: Rq4,
    /// The four outputs.
    pub(crate) y: *mut i8,
    /// The input offset pair (`SXTAB16`).
    pub(crate) off: u32,
}

#[cfg(target_arch = "arm")]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(DwWin, ny) == 4 && offset_of!(DwWin, c) == 8);
    assert!(offset_of!(DwWin, rs) == 12 && offset_of!(DwWin, w) == 16);
    assert!(offset_of!(DwWin, wskip) == 20 && offset_of!(DwWin, nx) == 24);
    assert!(offset_of!(DwWin, left) == 28 && offset_of!(DwWin, bias) == 32);
    assert!(offset_of!(DwWin, q) == 48 && offset_of!(DwWin, y) == 108);
    assert!(offset_of!(DwWin, off) == 112);
};

/// The state of [`simd::dw_plane`]: one channel of a 3×3 stride-1 depthwise conv over its int16
/// plane (the zero-padded input channel, padding = the input zero point), four outputs along a
/// row per pass; read and updated in place by field offset (`repr(C)`, asserted below).
#[repr(C)]
pub(crate) struct DwPlane {
    /// The current pass's first output, and the bytes from one output pixel to the next (`c`).
    pub(crate) y: *mut i8,
    pub(crate) c: usize,
    /// Full passes per output row (`⌊ow/4⌋` ≥ 1), passes left in the current row, rows left.
    pub(crate) passes: usize,
    pub(crate) left: usize,
    pub(crate) rows: usize,
    /// 1 if a half pass (two outputs) ends each row (`ow` = 4k + 2), else 0.
    pub(crate) half: usize,
    /// Bias with `−zp·Σw` folded in (the plane holds `x`, not `x − zp`).
    pub(crate) bias: i32,
    /// Requantization (the `SMMLA` path of [`Rq`]): multiplier, rounding term, shift, zero
    /// point, and `min`/`max` repeated in the four bytes of a word.
    pub(crate) m: i32,
    pub(crate) rnd: i32,
    pub(crate) hs: i32,
    pub(crate) zp: i32,
    pub(crate) min: u32,
    pub(crate) max: u32,
    /// Per kernel row `r`: `(w0, w1)` and `(w1, w2)` as int16 pairs (words `2r`, `2r + 1`).
    pub(crate) w: [u32; 6],
}

#[cfg(target_arch = "arm")]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(DwPlane, c) == 4 && offset_of!(DwPlane, passes) == 8);
    assert!(offset_of!(DwPlane, left) == 12 && offset_of!(DwPlane, rows) == 16);
    assert!(offset_of!(DwPlane, half) == 20 && offset_of!(DwPlane, bias) == 24);
    assert!(offset_of!(DwPlane, m) == 28 && offset_of!(DwPlane, rnd) == 32);
    assert!(offset_of!(DwPlane, hs) == 36 && offset_of!(DwPlane, zp) == 40);
    assert!(offset_of!(DwPlane, min) == 44 && offset_of!(DwPlane, max) == 48);
    assert!(offset_of!(DwPlane, w) == 52);
};

/// The input offset `−zp` in both halfwords, for `SXTAB16`.
#[inline(always)]
pub(crate) fn offset_pair(zp: i8) -> u32 {
    simd::pack16(-i32::from(zp), -i32::from(zp))
}

/// `scratch` as `n` words, or `None` if it is not 4-aligned or too short.
pub(crate) fn words(scratch: &mut [u8], n: usize) -> Option<&mut [u32]> {
    // SAFETY: every bit pattern is a valid `u32`; `align_to_mut` only hands out the properly
    // aligned middle part, which borrows `scratch` exclusively.
    let (head, middle, _) = unsafe { scratch.align_to_mut::<u32>() };
    if !head.is_empty() {
        return None;
    }
    middle.get_mut(..n)
}

/// `scratch` as `n` halfwords, or `None` if it is not 2-aligned or too short.
pub(crate) fn halves(scratch: &mut [u8], n: usize) -> Option<&mut [i16]> {
    // SAFETY: as `words`, for `i16`.
    let (head, middle, _) = unsafe { scratch.align_to_mut::<i16>() };
    if !head.is_empty() {
        return None;
    }
    middle.get_mut(..n)
}

/// `dst.copy_from_slice(src)` (equal lengths; otherwise nothing is copied), 16 bytes per step on
/// cores with the DSP extension: four word loads from any address (Armv7-M allows unaligned
/// `LDR`) and one `STM` to the 4-aligned destination, 7 instructions per 16 bytes. `memcpy`
/// takes about a byte and a half per instruction when source and destination are not equally
/// aligned, which made copying a 1 568-byte input into the arena 15 % of a dense layer's run.
pub(crate) fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    if dst.len() != src.len() {
        return;
    }
    #[cfg(tinykd_dsp)]
    if (dst.as_ptr() as usize).is_multiple_of(4) && dst.len() >= 16 {
        let blocks = dst.len() / 16;
        // SAFETY: reads 16·blocks ≤ src.len() bytes from `src` (LDR: any alignment on
        // Armv7-M) and writes as many to the 4-aligned `dst` (STM); registers declared, no
        // stack.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr r0, [{s}], #4",
                "ldr r1, [{s}], #4",
                "ldr r2, [{s}], #4",
                "ldr r3, [{s}], #4",
                "stm {d}!, {{r0, r1, r2, r3}}",
                "subs {n}, {n}, #1",
                "bne 2b",
                s = inout(reg) src.as_ptr() => _,
                d = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) blocks => _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                options(nostack),
            );
        }
        let done = 16 * blocks;
        if let (Some(d), Some(s)) = (dst.get_mut(done..), src.get(done..)) {
            d.copy_from_slice(s);
        }
        return;
    }
    dst.copy_from_slice(src);
}

/// `dst.copy_from_slice(src)` for a few words (equal lengths; otherwise nothing is copied),
/// without a `memcpy` call on cores with the DSP extension: the binary kernels copy runs of 1 to
/// 6 words per window tap, where the call costs more than the copy (4 instructions a word here).
#[inline(always)]
pub(crate) fn copy_words(dst: &mut [u32], src: &[u32]) {
    if dst.len() != src.len() || dst.is_empty() {
        return;
    }
    #[cfg(all(target_arch = "arm", tinykd_dsp))]
    // SAFETY: reads and writes `dst.len()` ≥ 1 words of the two equal-length slices.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr {t}, [{s}], #4",
            "str {t}, [{d}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) src.as_ptr() => _,
            d = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) dst.len() => _,
            t = out(reg) _,
            options(nostack),
        );
    }
    #[cfg(not(all(target_arch = "arm", tinykd_dsp)))]
    dst.copy_from_slice(src);
}

/// `dst.fill(0)` for a few words, without a `memset` call on cores with the DSP extension
/// (see [`copy_words`]).
#[inline(always)]
pub(crate) fn zero_words(dst: &mut [u32]) {
    if dst.is_empty() {
        return;
    }
    #[cfg(all(target_arch = "arm", tinykd_dsp))]
    // SAFETY: writes `dst.len()` ≥ 1 words of `dst`.
    unsafe {
        core::arch::asm!(
            "2:",
            "str {z}, [{d}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            d = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) dst.len() => _,
            z = in(reg) 0u32,
            options(nostack),
        );
    }
    #[cfg(not(all(target_arch = "arm", tinykd_dsp)))]
    dst.fill(0);
}

/// The int8 values as their raw bytes.
#[inline(always)]
pub(crate) fn as_bytes(x: &[i8]) -> &[u8] {
    // SAFETY: `i8` and `u8` have the same size, alignment and validity.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast::<u8>(), x.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::Rng;

    #[test]
    fn mul_high_matches_i64() {
        let mut rng = Rng(91);
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -65537,
            -65536,
            -1,
            0,
            1,
            65535,
            65536,
            i32::MAX,
        ];
        for &a in &edges {
            for &m in &edges {
                assert_eq!(
                    mul_high(a, m),
                    ((a as i64 * m as i64) >> 32) as i32,
                    "{a} {m}"
                );
            }
        }
        for _ in 0..200_000 {
            let a = rng.next() as i32;
            let m = rng.next() as i32;
            assert_eq!(
                mul_high(a, m),
                ((a as i64 * m as i64) >> 32) as i32,
                "{a} {m}"
            );
        }
    }

    #[test]
    fn rq_matches_requantize() {
        let mut rng = Rng(77);
        for i in 0..200_000 {
            let m = if i % 50 == 0 {
                0
            } else {
                rng.range(1 << 30, i32::MAX as i64) as i32
            };
            let shift = rng.range(-31, 30) as i32;
            let acc = match i % 3 {
                0 => rng.range(i32::MIN as i64, i32::MAX as i64) as i32,
                1 => rng.range(-100_000, 100_000) as i32,
                _ => rng.range(-300, 300) as i32,
            };
            let zp = rng.range(-128, 127) as i32;
            let rq = Rq::new(m, shift, zp, -128, 127);
            let want = crate::ops::requantize_out(acc, m, shift, zp, -128, 127);
            assert_eq!(rq.out(acc), want, "acc {acc} m {m} shift {shift}");
        }
    }
}

/// Fast vs reference on random shapes: every flavor, odd channel counts, padding, strides, zero
/// points, tails of the reduction length, and a misaligned scratch (which must fall back).
#[cfg(test)]
mod equivalence {
    use crate::ops::testutil::*;
    use crate::ops::{conv2d_with, dense_with, Flavor, In, Out};
    use std::vec::Vec;
    use tinykd_format::{scratch_len, Conv2dOp, DenseOp, I8s, LeI32s, Op, Requant, Shape};

    fn out_dim(i: u16, k: u8, s: u8, a: u8, b: u8) -> Option<u16> {
        let padded = i as i64 + a as i64 + b as i64 - k as i64;
        (padded >= 0).then(|| (padded / s as i64 + 1) as u16)
    }

    /// A scratch buffer of `len` bytes at a 4-aligned address (plus `skew` bytes).
    fn scratch(len: usize, skew: usize) -> Vec<u32> {
        std::vec![0xA5A5_A5A5; (len + skew).div_ceil(4) + 1]
    }

    fn bytes(v: &mut [u32]) -> &mut [u8] {
        unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 4) }
    }

    #[test]
    fn conv2d_fast_matches_reference() {
        let mut rng = Rng(0xFA57);
        let mut ran = 0;
        for i in 0..600 {
            let depthwise = i % 3 == 2;
            let kernel = [rng.range(1, 4) as u8, rng.range(1, 4) as u8];
            let padding = [0; 4].map(|_| rng.range(0, 2) as u8);
            let stride = [rng.range(1, 2) as u8, rng.range(1, 2) as u8];
            let (h, w) = (rng.range(1, 9) as u16, rng.range(1, 9) as u16);
            let ic = if i % 5 == 0 {
                4 * rng.range(1, 5) as u16
            } else {
                rng.range(1, 11) as u16
            };
            let (oc, groups) = if depthwise {
                (ic, ic)
            } else {
                (rng.range(1, 13) as u16, 1)
            };
            let (Some(oh), Some(ow)) = (
                out_dim(h, kernel[0], stride[0], padding[0], padding[2]),
                out_dim(w, kernel[1], stride[1], padding[1], padding[3]),
            ) else {
                continue;
            };
            let ins = Shape { h, w, c: ic };
            let outs = Shape {
                h: oh,
                w: ow,
                c: oc,
            };
            let per_out = kernel[0] as usize * kernel[1] as usize * (ic / groups) as usize;
            let x = rng.i8s(ins.elements() as usize);
            let wts = rng.weights(oc as usize * per_out);
            let bias: Vec<i32> = (0..oc).map(|_| rng.range(-40_000, 40_000) as i32).collect();
            let bias_b = le_i32(&bias);
            let (m, s) = requant(&mut rng, oc as usize, (-14, -4));
            let (zp_in, zp_out) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
            let act = act_range(&mut rng);
            let op = Conv2dOp {
                input: 0,
                kernel,
                stride,
                padding,
                groups,
                weights: I8s(&wts),
                bias: LeI32s(&bias_b),
                requant: Requant {
                    multipliers: LeI32s(&m),
                    shifts: I8s(&s),
                },
                act_min: act.0,
                act_max: act.1,
            };
            let len = scratch_len(&Op::Conv2d(op), ins, outs) as usize;
            assert!(len > 0);
            let run = |flavor: Flavor, skew: usize| {
                let mut y = std::vec![0i8; outs.elements() as usize];
                let mut sc = scratch(len, skew);
                let sb = &mut bytes(&mut sc)[skew..skew + len];
                conv2d_with(
                    flavor,
                    &op,
                    In {
                        data: &x,
                        shape: ins,
                        zero_point: zp_in,
                    },
                    Out {
                        data: &mut y,
                        shape: outs,
                        zero_point: zp_out,
                    },
                    Some(sb),
                )
                .unwrap();
                y
            };
            let want = run(Flavor::Portable, 0);
            for flavor in [Flavor::Dsp, Flavor::Scalar] {
                assert_eq!(run(flavor, 0), want, "{flavor:?} {ins:?} {outs:?} {op:?}");
            }
            assert_eq!(run(Flavor::Dsp, 1), want, "misaligned scratch");
            ran += 1;
        }
        assert!(ran > 400, "{ran}");
    }

    /// Conv1d as TFLite lowers it: the window `[1, T, C]` (time-major HWC), kernel `[1, k]`,
    /// stride `[1, s]`, padding `[0, p, 0, q]`; every flavor against the reference on random
    /// shapes (k = 3, 5, 7, 9, odd channel counts, depthwise, long and short sequences).
    #[test]
    fn conv1d_fast_matches_reference() {
        let mut rng = Rng(0xC0_1D);
        let mut ran = 0;
        for i in 0..400 {
            let depthwise = i % 3 == 2;
            let k = [3u8, 5, 7, 9][i % 4];
            let s = rng.range(1, 2) as u8;
            let (p, q) = if i % 2 == 0 {
                (k / 2, k / 2)
            } else {
                (
                    rng.range(0, i64::from(k) - 1) as u8,
                    rng.range(0, i64::from(k) - 1) as u8,
                )
            };
            let w = if i % 7 == 0 {
                rng.range(64, 160) as u16
            } else {
                rng.range(1, 40) as u16
            };
            let ic = [1, 3, 6, 16, rng.range(1, 33) as u16][i % 5];
            let (oc, groups) = if depthwise {
                (ic, ic)
            } else {
                (rng.range(1, 35) as u16, 1)
            };
            let Some(ow) = out_dim(w, k, s, p, q) else {
                continue;
            };
            let ins = Shape { h: 1, w, c: ic };
            let outs = Shape { h: 1, w: ow, c: oc };
            let per_out = k as usize * (ic / groups) as usize;
            let x = rng.i8s(ins.elements() as usize);
            let wts = rng.weights(oc as usize * per_out);
            let bias: Vec<i32> = (0..oc).map(|_| rng.range(-40_000, 40_000) as i32).collect();
            let bias_b = le_i32(&bias);
            let (m, sh) = requant(&mut rng, oc as usize, (-14, -4));
            let zp_in = [-128, 127, 0, rng.range(-128, 127) as i8][i % 4];
            let zp_out = rng.range(-128, 127) as i8;
            let act = act_range(&mut rng);
            let op = Conv2dOp {
                input: 0,
                kernel: [1, k],
                stride: [1, s],
                padding: [0, p, 0, q],
                groups,
                weights: I8s(&wts),
                bias: LeI32s(&bias_b),
                requant: Requant {
                    multipliers: LeI32s(&m),
                    shifts: I8s(&sh),
                },
                act_min: act.0,
                act_max: act.1,
            };
            let len = scratch_len(&Op::Conv2d(op), ins, outs) as usize;
            let run = |flavor: Flavor, skew: usize| {
                let mut y = std::vec![0i8; outs.elements() as usize];
                let mut sc = scratch(len, skew);
                conv2d_with(
                    flavor,
                    &op,
                    In {
                        data: &x,
                        shape: ins,
                        zero_point: zp_in,
                    },
                    Out {
                        data: &mut y,
                        shape: outs,
                        zero_point: zp_out,
                    },
                    Some(&mut bytes(&mut sc)[skew..skew + len]),
                )
                .unwrap();
                y
            };
            let want = run(Flavor::Portable, 0);
            // The reference itself against the i64 oracle.
            assert_eq!(want, oracle_conv1d(&x, ins, &op, outs, zp_in, zp_out));
            for flavor in [Flavor::Dsp, Flavor::Scalar] {
                assert_eq!(run(flavor, 0), want, "{flavor:?} {ins:?} {outs:?} {op:?}");
            }
            assert_eq!(run(Flavor::Dsp, 1), want, "misaligned scratch");
            ran += 1;
        }
        assert!(ran > 300, "{ran}");
    }

    /// Conv1d written out in i64 with no shared code (the oracle of `ops::testutil`'s rounding).
    fn oracle_conv1d(
        x: &[i8],
        ins: Shape,
        op: &Conv2dOp<'_>,
        outs: Shape,
        zp_in: i8,
        zp_out: i8,
    ) -> Vec<i8> {
        let (k, s, p) = (
            op.kernel[1] as i64,
            op.stride[1] as i64,
            op.padding[1] as i64,
        );
        let cpg = (ins.c / op.groups) as i64;
        let opg = (outs.c / op.groups) as i64;
        let mut y = Vec::new();
        for t in 0..outs.w as i64 {
            for o in 0..outs.c as i64 {
                let g = o / opg;
                let mut acc = op.bias.get(o as usize).unwrap() as i64;
                for j in 0..k {
                    let ti = t * s + j - p;
                    if ti < 0 || ti >= ins.w as i64 {
                        continue;
                    }
                    for ci in 0..cpg {
                        let xv = x[(ti * ins.c as i64 + g * cpg + ci) as usize] as i64;
                        let wv = op.weights.0[((o * k + j) * cpg + ci) as usize] as i8 as i64;
                        acc += (xv - zp_in as i64) * wv;
                    }
                }
                y.push(oracle_requant(
                    acc,
                    op.requant.multipliers.get(o as usize).unwrap(),
                    op.requant.shifts.0[o as usize] as i8 as i32,
                    zp_out,
                    op.act_min,
                    op.act_max,
                ));
            }
        }
        y
    }

    /// The depthwise plane path (3×3, stride 1, even output width ≥ 4): every padding, odd
    /// channel counts, full and partial activation ranges, zero points at the extremes.
    #[test]
    fn depthwise_plane_matches_reference() {
        let mut rng = Rng(0xD3_3A7E);
        let mut ran = 0;
        for i in 0..400 {
            let padding = [0; 4].map(|_| rng.range(0, 1) as u8);
            let (h, w) = (rng.range(1, 12) as u16, rng.range(1, 12) as u16);
            let c = rng.range(1, 9) as u16;
            let (Some(oh), Some(ow)) = (
                out_dim(h, 3, 1, padding[0], padding[2]),
                out_dim(w, 3, 1, padding[1], padding[3]),
            ) else {
                continue;
            };
            if ow < 4 || ow % 2 != 0 || oh == 0 {
                continue;
            }
            let ins = Shape { h, w, c };
            let outs = Shape { h: oh, w: ow, c };
            let x = rng.i8s(ins.elements() as usize);
            let wts = rng.weights(9 * c as usize);
            let bias: Vec<i32> = (0..c).map(|_| rng.range(-40_000, 40_000) as i32).collect();
            let bias_b = le_i32(&bias);
            let (m, s) = requant(&mut rng, c as usize, (-14, -4));
            let zp_in = [-128, 127, 0, rng.range(-128, 127) as i8][i % 4];
            let zp_out = rng.range(-128, 127) as i8;
            let act = act_range(&mut rng);
            let op = Conv2dOp {
                input: 0,
                kernel: [3, 3],
                stride: [1, 1],
                padding,
                groups: c,
                weights: I8s(&wts),
                bias: LeI32s(&bias_b),
                requant: Requant {
                    multipliers: LeI32s(&m),
                    shifts: I8s(&s),
                },
                act_min: act.0,
                act_max: act.1,
            };
            let len = scratch_len(&Op::Conv2d(op), ins, outs) as usize;
            let run = |flavor: Flavor| {
                let mut y = std::vec![0i8; outs.elements() as usize];
                let mut sc = scratch(len, 0);
                conv2d_with(
                    flavor,
                    &op,
                    In {
                        data: &x,
                        shape: ins,
                        zero_point: zp_in,
                    },
                    Out {
                        data: &mut y,
                        shape: outs,
                        zero_point: zp_out,
                    },
                    Some(&mut bytes(&mut sc)[..len]),
                )
                .unwrap();
                y
            };
            assert_eq!(run(Flavor::Dsp), run(Flavor::Portable), "{ins:?} {op:?}");
            ran += 1;
        }
        assert!(ran > 100, "{ran}");
    }

    #[test]
    fn dense_fast_matches_reference() {
        let mut rng = Rng(0xDE45);
        for _ in 0..300 {
            let n_in = rng.range(1, 70) as usize;
            let n_out = rng.range(1, 20) as usize;
            let x = rng.i8s(n_in);
            let wts = rng.weights(n_in * n_out);
            let bias: Vec<i32> = (0..n_out)
                .map(|_| rng.range(-1 << 20, 1 << 20) as i32)
                .collect();
            let bias_b = le_i32(&bias);
            let (m, s) = requant(&mut rng, n_out, (-20, -6));
            let (zp_in, zp_out) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
            let act = act_range(&mut rng);
            let op = DenseOp {
                input: 0,
                weights: I8s(&wts),
                bias: LeI32s(&bias_b),
                requant: Requant {
                    multipliers: LeI32s(&m),
                    shifts: I8s(&s),
                },
                act_min: act.0,
                act_max: act.1,
            };
            let ins = Shape {
                h: 1,
                w: 1,
                c: n_in as u16,
            };
            let outs = Shape {
                h: 1,
                w: 1,
                c: n_out as u16,
            };
            let len = scratch_len(&Op::Dense(op), ins, outs) as usize;
            let run = |flavor: Flavor| {
                let mut y = std::vec![0i8; n_out];
                let mut sc = scratch(len, 0);
                dense_with(
                    flavor,
                    &op,
                    In {
                        data: &x,
                        shape: ins,
                        zero_point: zp_in,
                    },
                    Out {
                        data: &mut y,
                        shape: outs,
                        zero_point: zp_out,
                    },
                    Some(&mut bytes(&mut sc)[..len]),
                )
                .unwrap();
                y
            };
            let want = run(Flavor::Portable);
            assert_eq!(run(Flavor::Dsp), want);
            assert_eq!(run(Flavor::Scalar), want);
        }
    }
}
