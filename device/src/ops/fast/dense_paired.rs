//! Fast kernels of the paired dense (format 1.5, SPEC §3.4; the layout in `tinykd_format`'s
//! `paired` module).
//!
//! Cortex-M4 ([`dsp`]): the raw input is widened once per inference into two words per group of
//! four values, `O = (x1 − 127, x3 − 127)` and `E = (256·x0 − x1 + 127, 256·x2 − x3 + 127)`
//! (7 instructions per group, shared by every row), and the sum of each chunk's even inputs. Then
//! every weight word `W` costs `UXTB16` + 2 `SMLAD` (`SMLAD(W, O) + SMLAD(UXTB16(W), E)`), four
//! rows of a block sharing one `LDRD` of `(O, E)` and reading their four words with two `LDRD`s:
//! 15 instructions per 16 MACs. A chunk's accumulator starts at `odd term − 32768·Σ even x`
//! and ends at `256·Σ x·w` exactly (|Σ x·w| < 2^23 over 512 inputs), added to the row's total
//! shifted back by 8.
//!
//! Cortex-M0 ([`scalar`]): the weight bytes read as they are stored (even ones unsigned,
//! `w + 128`; odd ones sign-extended) against the int8 input read in place, four input bytes
//! loaded once per group for all rows of a block (4 rows: 68 instructions per 16 MACs), and
//! `128·Σ even x` taken off each row at the end; no scratch.

use tinykd_format::{
    paired_block, paired_chunks, paired_groups, DensePairedOp, PAIRED_CHUNK_GROUPS,
};

use super::simd::{pack16, smlad};
use super::{words, Rq};
use crate::error::{need, Result};
use crate::ops::{In, Out};

/// The input widened for the DSP kernels: `dst[2g..2g + 2] = (O, E)` of group `g` (SPEC §3.4; the
/// last group zero-padded) and `xneg[c] = −32768 · Σ` of chunk `c`'s even inputs.
fn widen(x: &[i8], dst: &mut [u32], xneg: &mut [u32]) -> Result<()> {
    let bytes = super::as_bytes(x);
    let full = bytes.len() / 4;
    for (c, neg) in xneg.iter_mut().enumerate() {
        let g0 = c * PAIRED_CHUNK_GROUPS;
        let g1 = (g0 + PAIRED_CHUNK_GROUPS).min(paired_groups(bytes.len()));
        let whole = g1.min(full);
        let mut even = 0i32;
        if whole > g0 {
            let src = need(bytes.get(4 * g0..4 * whole))?;
            let out = need(dst.get_mut(2 * g0..2 * whole))?;
            // SAFETY: `src` holds 4·n bytes and `out` 2·n aligned words, n = whole − g0 ≥ 1.
            let lanes = unsafe { widen_groups(src.as_ptr(), out.as_mut_ptr(), whole - g0) };
            even = i32::from(lanes as u16 as i16) + i32::from((lanes >> 16) as u16 as i16);
        }
        if g1 > whole {
            // The zero-padded last group.
            let tail = need(bytes.get(4 * whole..))?;
            let mut b = [0u8; 4];
            for (d, s) in b.iter_mut().zip(tail) {
                *d = *s;
            }
            let v = u32::from_le_bytes(b);
            need(dst.get_mut(2 * whole..2 * whole + 2))?.copy_from_slice(&widen_word(v));
            let [b0, _, b2, _] = b;
            even += i32::from(b0 as i8) + i32::from(b2 as i8);
        }
        *neg = even.wrapping_mul(-32768) as u32;
    }
    Ok(())
}

/// `(O, E)` of one group of four int8 values `v` (little-endian).
#[inline(always)]
fn widen_word(v: u32) -> [u32; 2] {
    let b = |i: u32| i32::from((v >> (8 * i)) as u8 as i8);
    [
        pack16(b(1) - 127, b(3) - 127),
        pack16(256 * b(0) - b(1) + 127, 256 * b(2) - b(3) + 127),
    ]
}

/// Widens `n` whole groups from `x` into `(O, E)` word pairs at `dst`; returns the even inputs'
/// sums as two int16 lanes (`(Σ x0, Σ x2)`; at most 128 groups: no lane overflows).
///
/// # Safety
/// `x` is readable for `4·n` bytes, `dst` 4-aligned and writable for `2·n` words, `n ≥ 1`.
#[cfg(tinykd_dsp)]
#[inline(always)]
unsafe fn widen_groups(x: *const u8, dst: *mut u32, n: usize) -> u32 {
    let mut sums: u32 = 0;
    if (x as usize).is_multiple_of(4) {
        // SAFETY: reads 4·n bytes from the 4-aligned `x` (LDR/LDRD) and writes 2·n words to the
        // aligned `dst` (STRD/STM), which the caller guarantees; 1, 2 and 4 groups at a time,
        // every group exactly once (the steps change no flags, so each `TST` decides its branch).
        unsafe {
            core::arch::asm!(
                "tst {n}, #1",
                "beq 5f",
                "ldr r4, [{xp}], #4",
                "sxtb16 r0, r4, ror #8",
                "ssub16 r0, r0, {c127}",
                "and r1, {m}, r4, lsl #8",
                "ssub16 r1, r1, r0",
                "sxtab16 {s}, {s}, r4",
                "strd r0, r1, [{dp}], #8",
                "5:",
                "tst {n}, #2",
                "beq 6f",
                "ldrd r4, r5, [{xp}], #8",
                "sxtb16 r0, r4, ror #8",
                "ssub16 r0, r0, {c127}",
                "and r1, {m}, r4, lsl #8",
                "ssub16 r1, r1, r0",
                "sxtab16 {s}, {s}, r4",
                "sxtb16 r2, r5, ror #8",
                "ssub16 r2, r2, {c127}",
                "and r3, {m}, r5, lsl #8",
                "ssub16 r3, r3, r2",
                "sxtab16 {s}, {s}, r5",
                "stm {dp}!, {{r0, r1, r2, r3}}",
                "6:",
                "lsrs {n}, {n}, #2",
                "beq 4f",
                "3:",
                "ldrd r4, r5, [{xp}], #8",
                "sxtb16 r0, r4, ror #8",
                "ssub16 r0, r0, {c127}",
                "and r1, {m}, r4, lsl #8",
                "ssub16 r1, r1, r0",
                "sxtab16 {s}, {s}, r4",
                "sxtb16 r2, r5, ror #8",
                "ssub16 r2, r2, {c127}",
                "and r3, {m}, r5, lsl #8",
                "ssub16 r3, r3, r2",
                "sxtab16 {s}, {s}, r5",
                "stm {dp}!, {{r0, r1, r2, r3}}",
                "ldrd r4, r5, [{xp}], #8",
                "sxtb16 r0, r4, ror #8",
                "ssub16 r0, r0, {c127}",
                "and r1, {m}, r4, lsl #8",
                "ssub16 r1, r1, r0",
                "sxtab16 {s}, {s}, r4",
                "sxtb16 r2, r5, ror #8",
                "ssub16 r2, r2, {c127}",
                "and r3, {m}, r5, lsl #8",
                "ssub16 r3, r3, r2",
                "sxtab16 {s}, {s}, r5",
                "stm {dp}!, {{r0, r1, r2, r3}}",
                "subs {n}, {n}, #1",
                "bne 3b",
                "4:",
                xp = inout(reg) x => _,
                dp = inout(reg) dst => _,
                n = inout(reg) n => _,
                s = inout(reg) sums,
                c127 = in(reg) 0x007F_007Fu32,
                m = in(reg) 0xFF00_FF00u32,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(nostack),
            );
        }
        return sums;
    }
    // SAFETY: reads 4·n bytes from `x` (LDR: unaligned reads are fine on ARMv7-M) and writes
    // 2·n words to the aligned `dst` (STRD), which the caller guarantees; n ≥ 1, so an odd count
    // ends at 0 after one group and an even one is ≥ 2 and reaches 0 two groups at a time.
    unsafe {
        core::arch::asm!(
            "tst {n}, #1",
            "beq 3f",
            "ldr {v}, [{xp}], #4",
            "sxtb16 {o}, {v}, ror #8",
            "ssub16 {o}, {o}, {c127}",
            "and {e}, {m}, {v}, lsl #8",
            "ssub16 {e}, {e}, {o}",
            "sxtab16 {s}, {s}, {v}",
            "strd {o}, {e}, [{dp}], #8",
            "subs {n}, {n}, #1",
            "beq 4f",
            "3:",
            "ldr {v}, [{xp}], #4",
            "sxtb16 {o}, {v}, ror #8",
            "ssub16 {o}, {o}, {c127}",
            "and {e}, {m}, {v}, lsl #8",
            "ssub16 {e}, {e}, {o}",
            "sxtab16 {s}, {s}, {v}",
            "strd {o}, {e}, [{dp}], #8",
            "ldr {v}, [{xp}], #4",
            "sxtb16 {o}, {v}, ror #8",
            "ssub16 {o}, {o}, {c127}",
            "and {e}, {m}, {v}, lsl #8",
            "ssub16 {e}, {e}, {o}",
            "sxtab16 {s}, {s}, {v}",
            "strd {o}, {e}, [{dp}], #8",
            "subs {n}, {n}, #2",
            "bne 3b",
            "4:",
            xp = inout(reg) x => _,
            dp = inout(reg) dst => _,
            n = inout(reg) n => _,
            s = inout(reg) sums,
            c127 = in(reg) 0x007F_007Fu32,
            m = in(reg) 0xFF00_FF00u32,
            v = out(reg) _,
            o = out(reg) _,
            e = out(reg) _,
            options(nostack),
        );
    }
    sums
}

/// Portable stand-in for the Arm widening (same contract).
///
/// # Safety
/// As the Arm version.
#[cfg(not(tinykd_dsp))]
#[inline(always)]
unsafe fn widen_groups(x: *const u8, dst: *mut u32, n: usize) -> u32 {
    // SAFETY: the caller guarantees both ranges.
    let (x, dst) = unsafe {
        (
            core::slice::from_raw_parts(x, 4 * n),
            core::slice::from_raw_parts_mut(dst, 2 * n),
        )
    };
    let (mut s0, mut s2) = (0i32, 0i32);
    let (xq, _) = x.as_chunks::<4>();
    for (v, d) in xq.iter().zip(dst.chunks_exact_mut(2)) {
        let v = u32::from_le_bytes(*v);
        d.copy_from_slice(&widen_word(v));
        s0 += i32::from(v as u8 as i8);
        s2 += i32::from((v >> 16) as u8 as i8);
    }
    pack16(s0, s2)
}

/// One block of `R` rows over `groups` groups of one chunk, word by word (any alignment): the
/// portable stand-in of the assembly kernels, and their fallback for weights that are not
/// 4-aligned in memory. `w` holds the block's words group by group (`R` per group).
#[inline(always)]
fn rows_any<const R: usize>(w: &[u8], x: &[u32], a: &mut [i32; R]) {
    let (words, _) = w.as_chunks::<4>();
    let (pairs, _) = x.as_chunks::<2>();
    for (ws, &[o, e]) in words.chunks_exact(R).zip(pairs) {
        for (acc, wb) in a.iter_mut().zip(ws) {
            let wv = u32::from_le_bytes(*wb);
            *acc = smlad(wv & 0x00FF_00FF, e, smlad(wv, o, *acc));
        }
    }
}

/// The block kernel for `R` = 4, 2 or 1 rows: the `LDRD` assembly on the DSP path when the
/// weights are 4-aligned, else word by word.
///
/// # Safety
/// `w` is readable for `4·R·groups` bytes (4-aligned if `aligned`), `x` 4-aligned and readable
/// for `2·groups` words, `groups ≥ 1`.
#[inline(always)]
unsafe fn block_rows<const R: usize>(
    w: *const u8,
    x: *const u32,
    groups: usize,
    aligned: bool,
    a: &mut [i32; R],
) {
    #[cfg(tinykd_dsp)]
    if aligned {
        // SAFETY: the caller's contract.
        unsafe { asm_rows::rows(w, x, groups, a) };
        return;
    }
    let _ = aligned;
    // SAFETY: the caller's contract.
    let (w, x) = unsafe {
        (
            core::slice::from_raw_parts(w, 4 * R * groups),
            core::slice::from_raw_parts(x, 2 * groups),
        )
    };
    rows_any(w, x, a);
}

#[cfg(tinykd_dsp)]
mod asm_rows {
    use core::arch::asm;

    /// `R` rows (4, 2, 1) against `groups` widened groups, two groups per loop pass (an odd
    /// count takes one first).
    ///
    /// # Safety
    /// `w` is 4-aligned and readable for `4·R·groups` bytes, `x` 4-aligned and readable for
    /// `2·groups` words, `groups ≥ 1`.
    #[inline(always)]
    pub(super) unsafe fn rows<const R: usize>(
        w: *const u8,
        x: *const u32,
        groups: usize,
        a: &mut [i32; R],
    ) {
        // SAFETY: forwarded; each variant reads exactly R words of `w` and 2 words of `x` per
        // group (LDRD on 4-aligned addresses).
        unsafe {
            match R {
                4 => rows4(w, x, groups, a.as_mut_ptr()),
                2 => rows2(w, x, groups, a.as_mut_ptr()),
                _ => rows1(w, x, groups, a.as_mut_ptr()),
            }
        }
    }

    /// One group of four rows: `LDRD (O, E)`, two `LDRD`s of weight words, 4 × (`UXTB16` + 2
    /// `SMLAD`): 15 instructions per 16 MACs.
    macro_rules! step4 {
        () => {
            concat!(
                "ldrd {o}, {e}, [{xp}], #8\n",
                "ldrd {wa}, {wb}, [{wp}], #8\n",
                "uxtb16 {t}, {wa}\n",
                "smlad {a0}, {wa}, {o}, {a0}\n",
                "smlad {a0}, {t}, {e}, {a0}\n",
                "uxtb16 {t}, {wb}\n",
                "smlad {a1}, {wb}, {o}, {a1}\n",
                "smlad {a1}, {t}, {e}, {a1}\n",
                "ldrd {wa}, {wb}, [{wp}], #8\n",
                "uxtb16 {t}, {wa}\n",
                "smlad {a2}, {wa}, {o}, {a2}\n",
                "smlad {a2}, {t}, {e}, {a2}\n",
                "uxtb16 {t}, {wb}\n",
                "smlad {a3}, {wb}, {o}, {a3}\n",
                "smlad {a3}, {t}, {e}, {a3}\n",
            )
        };
    }

    /// One group of two rows: `LDRD (O, E)`, one `LDRD` of both rows' words, 2 × (`UXTB16` + 2
    /// `SMLAD`): 8 instructions per 8 MACs.
    macro_rules! step2 {
        () => {
            concat!(
                "ldrd {o}, {e}, [{xp}], #8\n",
                "ldrd {wa}, {wb}, [{wp}], #8\n",
                "uxtb16 {t}, {wa}\n",
                "smlad {a0}, {wa}, {o}, {a0}\n",
                "smlad {a0}, {t}, {e}, {a0}\n",
                "uxtb16 {t}, {wb}\n",
                "smlad {a1}, {wb}, {o}, {a1}\n",
                "smlad {a1}, {t}, {e}, {a1}\n",
            )
        };
    }

    /// Four rows, four groups per loop pass (a count of `n mod 4` groups first).
    #[inline(always)]
    unsafe fn rows4(w: *const u8, x: *const u32, groups: usize, a: *mut i32) {
        // SAFETY: the caller's contract; `a` points at four accumulators.
        let [mut a0, mut a1, mut a2, mut a3] = unsafe { core::ptr::read(a.cast::<[i32; 4]>()) };
        // SAFETY: reads 4 words of `w` and 2 of `x` per group, `groups` groups (1, 2 and 4 at a
        // time: every group exactly once); only the declared registers are written, no stack.
        // The steps change no flags, so each `TST` decides its branch.
        unsafe {
            asm!(
                "tst {n}, #1",
                "beq 5f",
                step4!(),
                "5:",
                "tst {n}, #2",
                "beq 6f",
                step4!(),
                step4!(),
                "6:",
                "lsrs {n}, {n}, #2",
                "beq 4f",
                "3:",
                step4!(),
                step4!(),
                step4!(),
                step4!(),
                "subs {n}, {n}, #1",
                "bne 3b",
                "4:",
                wp = inout(reg) w => _,
                xp = inout(reg) x => _,
                n = inout(reg) groups => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                o = out(reg) _,
                e = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
            core::ptr::write(a.cast::<[i32; 4]>(), [a0, a1, a2, a3]);
        }
    }

    /// Two rows, four groups per loop pass (a count of `n mod 4` groups first).
    #[inline(always)]
    unsafe fn rows2(w: *const u8, x: *const u32, groups: usize, a: *mut i32) {
        // SAFETY: the caller's contract; `a` points at two accumulators.
        let [mut a0, mut a1] = unsafe { core::ptr::read(a.cast::<[i32; 2]>()) };
        // SAFETY: as `rows4`, 2 words of `w` per group.
        unsafe {
            asm!(
                "tst {n}, #1",
                "beq 5f",
                step2!(),
                "5:",
                "tst {n}, #2",
                "beq 6f",
                step2!(),
                step2!(),
                "6:",
                "lsrs {n}, {n}, #2",
                "beq 4f",
                "3:",
                step2!(),
                step2!(),
                step2!(),
                step2!(),
                "subs {n}, {n}, #1",
                "bne 3b",
                "4:",
                wp = inout(reg) w => _,
                xp = inout(reg) x => _,
                n = inout(reg) groups => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                o = out(reg) _,
                e = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
            core::ptr::write(a.cast::<[i32; 2]>(), [a0, a1]);
        }
    }

    /// The chunk loop of a block (from label `1`), for `block4` and `blocks4` (`step4`, rows
    /// `a0` … `a3`) and `block2` (`step2`, `a0`, `a1`): per chunk of at most 128 groups, the
    /// accumulators started from the odd terms (rows `e` bytes apart; `extra` starts rows 2 and
    /// 3), the MAC loop (1, 2, then 4 steps per pass; the state pointer waits on the stack) and
    /// `total += acc ASR 8` into the state at the given offsets, until no group is left.
    macro_rules! chunks {
        ($step:ident, [$($extra:literal),*], [$(($acc:literal, $off:literal)),+]) => {
            concat!(
                "1:\n",
                "ldr {t}, [{st}, #20]\n",
                "cmp {t}, #128\n",
                "ite hi\n",
                "movhi {n}, #128\n",
                "movls {n}, {t}\n",
                "subs {t}, {t}, {n}\n",
                "str {t}, [{st}, #20]\n",
                "ldr {o}, [{st}, #12]\n",
                "ldr {e}, [{st}, #16]\n",
                "ldr {t}, [{st}, #8]\n",
                "ldr {wa}, [{t}], #4\n",
                "str {t}, [{st}, #8]\n",
                "ldr {a0}, [{o}]\n",
                "add {a0}, {a0}, {wa}\n",
                "ldr {a1}, [{o}, {e}]\n",
                "add {a1}, {a1}, {wa}\n",
                $($extra, "\n",)*
                "add {o}, {o}, #4\n",
                "str {o}, [{st}, #12]\n",
                "ldr {xp}, [{st}, #4]\n",
                "ldr {wp}, [{st}, #0]\n",
                "push {{{st}}}\n",
                "tst {n}, #1\n",
                "beq 5f\n",
                $step!(),
                "5:\n",
                "tst {n}, #2\n",
                "beq 6f\n",
                $step!(),
                $step!(),
                "6:\n",
                "lsrs {n}, {n}, #2\n",
                "beq 4f\n",
                "3:\n",
                $step!(),
                $step!(),
                $step!(),
                $step!(),
                "subs {n}, {n}, #1\n",
                "bne 3b\n",
                "4:\n",
                "pop {{{st}}}\n",
                "str {xp}, [{st}, #4]\n",
                "str {wp}, [{st}, #0]\n",
                $(
                    "ldr {t}, [{st}, #", $off, "]\n",
                    "add {t}, {t}, {", $acc, "}, asr #8\n",
                    "str {t}, [{st}, #", $off, "]\n",
                )+
                "ldr {t}, [{st}, #20]\n",
                "cmp {t}, #0\n",
                "bne 1b\n",
            )
        };
    }

    /// [`chunks!`] of four rows.
    macro_rules! chunks4 {
        () => {
            chunks!(
                step4,
                [
                    "add {t}, {o}, {e}, lsl #1",
                    "ldr {a2}, [{t}]",
                    "add {a2}, {a2}, {wa}",
                    "ldr {a3}, [{t}, {e}]",
                    "add {a3}, {a3}, {wa}"
                ],
                [("a0", 24), ("a1", 28), ("a2", 32), ("a3", 36)]
            )
        };
    }

    /// Every chunk of a block of 4 rows in one asm block: per chunk the accumulators started at
    /// `odd term + xneg` (`LDR` with the rows' stride), the 4-row loop, and `total += acc ASR 8`
    /// in `st`; the state pointer waits on the stack while the loop needs every register.
    ///
    /// # Safety
    /// `st` describes a block of the op `dsp` checked: `w` 4-aligned with `4·4·left` bytes,
    /// `x` 4-aligned with `2·left` words, `xneg` one word and `terms` (rows `tstride` bytes
    /// apart) one value per chunk of 128 groups, `left ≥ 1`.
    #[inline(always)]
    pub(super) unsafe fn block4(st: &mut super::BlockState) {
        let st: *mut super::BlockState = st;
        // SAFETY: reads and advances the `repr(C)` state at `st` (offsets asserted next to it),
        // reads the ranges it describes (LDRD on 4-aligned addresses); one word of stack while
        // the loop runs; every chunk consumes min(left, 128) ≥ 1 groups until left = 0.
        unsafe {
            asm!(
                chunks4!(),
                st = in(reg) st,
                n = out(reg) _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                o = out(reg) _,
                e = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                t = out(reg) _,
                xp = out(reg) _,
                wp = out(reg) _,
            );
        }
    }

    /// Every chunk of a block of 2 rows in one asm block: per chunk the accumulators started at
    /// `odd term + xneg` (`LDR` with the rows' stride), the 2-row loop, and `total += acc ASR 8`
    /// in `st`; the state pointer waits on the stack while the loop needs every register.
    ///
    /// # Safety
    /// `st` describes a block of the op `dsp` checked: `w` 4-aligned with `4·2·left` bytes,
    /// `x` 4-aligned with `2·left` words, `xneg` one word and `terms` (rows `tstride` bytes
    /// apart) one value per chunk of 128 groups, `left ≥ 1`.
    #[inline(always)]
    pub(super) unsafe fn block2(st: &mut super::BlockState) {
        let st: *mut super::BlockState = st;
        // SAFETY: reads and advances the `repr(C)` state at `st` (offsets asserted next to it),
        // reads the ranges it describes (LDRD on 4-aligned addresses); one word of stack while
        // the loop runs; every chunk consumes min(left, 128) ≥ 1 groups until left = 0.
        unsafe {
            asm!(
                chunks!(step2, [], [("a0", 24), ("a1", 28)]),
                st = in(reg) st,
                n = out(reg) _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                o = out(reg) _,
                e = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                t = out(reg) _,
                xp = out(reg) _,
                wp = out(reg) _,
            );
        }
    }

    /// Every 4-row block of the op in one asm block: per block the totals started at the bias,
    /// per chunk the accumulators from the odd terms, the four-row loop and `total += acc ASR 8`
    /// (as `block4`), then the four rows requantized as `requant4` and stored with one `STR`.
    ///
    /// # Safety
    /// `st` describes `blocks ≥ 1` consecutive 4-row blocks of the op `dsp` checked, from their
    /// first: weights 4-aligned, `4·4·groups` bytes per block; input `2·groups` words and `xneg`
    /// one word per chunk; per block 4 biases, multipliers and shifts (every shift in
    /// −31..=−2) and 4 output bytes; the odd terms of the first row, rows `tstride` bytes apart.
    #[inline(always)]
    pub(super) unsafe fn blocks4(st: &mut super::BlocksState) {
        let st: *mut super::BlocksState = st;
        // SAFETY: reads and advances the `repr(C)` state at `st` (offsets asserted next to it) and
        // the ranges it describes (LDRD on 4-aligned addresses; LDR/STR of biases, multipliers
        // and outputs may be unaligned on ARMv7-M); one word of stack during the MAC loop; every
        // chunk consumes min(left, 128) ≥ 1 groups, every block decrements `blocks` to 0.
        // SMMLA/SSAT may set the Q flag, SSUB8 the GE flags.
        unsafe {
            asm!(
                "0:",
                "ldr {t}, [{st}, #52]",
                "ldr {o}, [{t}, #0]",
                "str {o}, [{st}, #24]",
                "ldr {o}, [{t}, #4]",
                "str {o}, [{st}, #28]",
                "ldr {o}, [{t}, #8]",
                "str {o}, [{st}, #32]",
                "ldr {o}, [{t}, #12]",
                "str {o}, [{st}, #36]",
                "add {t}, {t}, #16",
                "str {t}, [{st}, #52]",
                "ldr {t}, [{st}, #40]",
                "str {t}, [{st}, #4]",
                "ldr {t}, [{st}, #44]",
                "str {t}, [{st}, #8]",
                "ldr {t}, [{st}, #48]",
                "str {t}, [{st}, #20]",
                chunks4!(),
                "ldr {o}, [{st}, #12]",
                "ldr {e}, [{st}, #16]",
                "add {o}, {o}, {e}, lsl #1",
                "add {o}, {o}, {e}",
                "str {o}, [{st}, #12]",
                "ldr {a0}, [{st}, #24]",
                "ldr {a1}, [{st}, #28]",
                "ldr {a2}, [{st}, #32]",
                "ldr {a3}, [{st}, #36]",
                "ldr {o}, [{st}, #56]",
                "ldr {e}, [{st}, #60]",
                "mov {n}, #0x40000000",
                "ldr {wa}, [{o}, #0]",
                "ldrsb {t}, [{e}, #0]",
                "add {wb}, {t}, #32",
                "lsr {wb}, {n}, {wb}",
                "mvn {t}, {t}",
                "smmla {a0}, {a0}, {wa}, {wb}",
                "asr {a0}, {a0}, {t}",
                "ldr {wa}, [{o}, #4]",
                "ldrsb {t}, [{e}, #1]",
                "add {wb}, {t}, #32",
                "lsr {wb}, {n}, {wb}",
                "mvn {t}, {t}",
                "smmla {a1}, {a1}, {wa}, {wb}",
                "asr {a1}, {a1}, {t}",
                "ldr {wa}, [{o}, #8]",
                "ldrsb {t}, [{e}, #2]",
                "add {wb}, {t}, #32",
                "lsr {wb}, {n}, {wb}",
                "mvn {t}, {t}",
                "smmla {a2}, {a2}, {wa}, {wb}",
                "asr {a2}, {a2}, {t}",
                "ldr {wa}, [{o}, #12]",
                "ldrsb {t}, [{e}, #3]",
                "add {wb}, {t}, #32",
                "lsr {wb}, {n}, {wb}",
                "mvn {t}, {t}",
                "smmla {a3}, {a3}, {wa}, {wb}",
                "asr {a3}, {a3}, {t}",
                "add {o}, {o}, #16",
                "str {o}, [{st}, #56]",
                "add {e}, {e}, #4",
                "str {e}, [{st}, #60]",
                "ldr {wa}, [{st}, #72]",
                pack4_clamp!("wa", "wa", "wb", "t", "st", "76"),
                "ldr {t}, [{st}, #64]",
                "str {a0}, [{t}], #4",
                "str {t}, [{st}, #64]",
                "ldr {t}, [{st}, #68]",
                "subs {t}, {t}, #1",
                "str {t}, [{st}, #68]",
                "bne 0b",
                st = in(reg) st,
                n = out(reg) _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                o = out(reg) _,
                e = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                t = out(reg) _,
                xp = out(reg) _,
                wp = out(reg) _,
            );
        }
    }

    /// One row: per group `LDRD (O, E)`, `LDR`, `UXTB16` + 2 `SMLAD`: 5 instructions per 4 MACs.
    #[inline(always)]
    unsafe fn rows1(w: *const u8, x: *const u32, groups: usize, a: *mut i32) {
        // SAFETY: the caller's contract; `a` points at one accumulator.
        let mut a0 = unsafe { core::ptr::read(a) };
        // SAFETY: as `rows4`, 1 word of `w` per group.
        unsafe {
            asm!(
                "2:",
                "ldrd {o}, {e}, [{xp}], #8",
                "ldr {wa}, [{wp}], #4",
                "uxtb16 {t}, {wa}",
                "smlad {a0}, {wa}, {o}, {a0}",
                "smlad {a0}, {t}, {e}, {a0}",
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) w => _,
                xp = inout(reg) x => _,
                n = inout(reg) groups => _,
                a0 = inout(reg) a0,
                o = out(reg) _,
                e = out(reg) _,
                wa = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
            core::ptr::write(a, a0);
        }
    }
}

/// The Cortex-M4 paired dense. `Ok(false)`: not handled (no usable scratch).
pub(crate) fn dsp(
    op: &DensePairedOp<'_>,
    x: In<'_>,
    y: Out<'_>,
    scratch: &mut [u8],
) -> Result<bool> {
    let k = x.data.len();
    let rows = y.data.len();
    let groups = paired_groups(k);
    let chunks = paired_chunks(k);
    if k == 0 {
        return Ok(false);
    }
    let Some(sw) = words(scratch, 2 * groups + chunks) else {
        return Ok(false);
    };
    let (xw, xneg) = sw.split_at_mut(2 * groups);
    widen(x.data, xw, xneg)?;
    // Every length checked once here; the block loop then reads through pointers.
    let lengths_ok = op.weights.len() == 4 * rows * groups
        && op.bias.len() == rows
        && op.odd_terms.len() == rows * chunks
        && op.requant.multipliers.len() == rows
        && op.requant.shifts.len() == rows
        && xneg.len() == chunks;
    if !lengths_ok {
        return Err(crate::Error::RunInconsistent);
    }
    let p = Block {
        w: op.weights.bytes().as_ptr(),
        bias: op.bias.bytes().as_ptr(),
        terms: op.odd_terms.bytes().as_ptr(),
        x: xw.as_ptr(),
        xneg: xneg.as_ptr(),
        groups,
        chunks,
        aligned: (op.weights.bytes().as_ptr() as usize).is_multiple_of(4),
    };
    let zp_out = i32::from(y.zero_point);
    let (mult, shifts) = (op.requant.multipliers, op.requant.shifts.bytes());
    let rq = |o: usize| {
        let s = shifts.get(o).map_or(0, |&s| i32::from(s as i8));
        Rq::new(mult.get(o).unwrap_or(0), s, zp_out, op.act_min, op.act_max)
    };
    // Four rows at a time are requantized in assembly (the `SMMLA` path of `Rq`: every shift
    // in −31..=−2, as for real multipliers below 0.5).
    let smmla_path = shifts.iter().all(|&s| (-31..=-2).contains(&(s as i8)));
    let clamp = Clamp {
        zp: zp_out,
        min: u32::from_le_bytes([op.act_min as u8; 4]),
        max: u32::from_le_bytes([op.act_max as u8; 4]),
    };
    let mut r = 0;
    #[cfg(tinykd_dsp)]
    if smmla_path && p.aligned && rows >= 4 {
        let blocks = rows / 4;
        let mut st = BlocksState {
            block: BlockState {
                w: p.w,
                x: p.x,
                xneg: p.xneg,
                terms: p.terms,
                tstride: 4 * chunks,
                left: 0,
                total: [0; 4],
            },
            x0: p.x,
            xneg0: p.xneg,
            groups,
            bias: p.bias,
            mult: mult.bytes().as_ptr(),
            shifts: shifts.as_ptr(),
            y: y.data.as_mut_ptr(),
            blocks,
            zp: clamp.zp,
            min: clamp.min,
            max: clamp.max,
        };
        // SAFETY: rows 0..4·blocks of the op checked above (the 4-row blocks come first,
        // `paired_block`), weights 4-aligned, every shift in −31..=−2, `y` holds `rows` bytes.
        unsafe { asm_rows::blocks4(&mut st) };
        r = 4 * blocks;
    }
    while r < rows {
        let (first, len) = paired_block(rows, r);
        match len {
            4 => {
                // SAFETY: rows first..first + 4 exist (`paired_block`), lengths checked above.
                let t = unsafe { p.rows::<4>(first) };
                let out = need(y.data.get_mut(first..first + 4))?;
                if smmla_path {
                    // SAFETY: rows first..first + 4 of the checked multipliers and shifts, the
                    // four output bytes; every shift is in −31..=−2 (`smmla_path`).
                    unsafe {
                        requant4(
                            t,
                            mult.bytes().as_ptr().add(4 * first),
                            shifts.as_ptr().add(first),
                            &clamp,
                            out.as_mut_ptr(),
                        )
                    };
                } else {
                    for (i, (o, &t)) in out.iter_mut().zip(&t).enumerate() {
                        *o = rq(first + i).out(t);
                    }
                }
            }
            2 => {
                // SAFETY: as above, two rows.
                let t = unsafe { p.rows::<2>(first) };
                for (i, &t) in t.iter().enumerate() {
                    *need(y.data.get_mut(first + i))? = rq(first + i).out(t);
                }
            }
            _ => {
                // SAFETY: as above, one row.
                let [t] = unsafe { p.rows::<1>(first) };
                *need(y.data.get_mut(first))? = rq(first).out(t);
            }
        }
        r += len;
    }
    Ok(true)
}

/// The output zero point and the clamp bounds repeated in the four bytes of a word
/// (`SSUB8`/`SEL`), for [`requant4`] (`repr(C)`: read by offset).
#[repr(C)]
struct Clamp {
    zp: i32,
    min: u32,
    max: u32,
}

/// Requantizes four rows' sums into four contiguous output bytes: per row the multiplier and
/// shift read from the op, `SMMLA` with the rounding term `2^(hs−1) = 2^30 >> (32 + shift)`,
/// `ASR hs` (`hs = −1 − shift`), the zero point, `SSAT` to 8 bits; then the four bytes packed (`BFI`), clamped
/// together (`SSUB8` + `SEL`) and stored with one `STR`. The same results as `Rq::out`.
///
/// # Safety
/// `m` readable for 4 LE i32 (any alignment), `s` for 4 bytes, each shift in −31..=−2; `y`
/// writable for 4 bytes.
#[cfg(tinykd_dsp)]
#[inline(always)]
unsafe fn requant4(a: [i32; 4], m: *const u8, s: *const u8, q: &Clamp, y: *mut i8) {
    let [a0, a1, a2, a3] = a;
    let q: *const Clamp = q;
    // SAFETY: reads 16 bytes at `m`, 4 at `s` and the `repr(C)` `Clamp` at `q`, writes 4 bytes
    // at `y` (LDR/STR may be unaligned on ARMv7-M); every shift in −31..=−2 gives hs in 1..=30.
    // SMMLA/SSAT may set the Q flag, SSUB8 the GE flags; no stack.
    unsafe {
        core::arch::asm!(
            "ldr {m}, [{mp}, #0]",
            "ldrsb {h}, [{sp}, #0]",
            "add {r}, {h}, #32",
            "lsr {r}, {c}, {r}",
            "mvn {h}, {h}",
            "smmla {a0}, {a0}, {m}, {r}",
            "asr {a0}, {a0}, {h}",
            "ldr {m}, [{mp}, #4]",
            "ldrsb {h}, [{sp}, #1]",
            "add {r}, {h}, #32",
            "lsr {r}, {c}, {r}",
            "mvn {h}, {h}",
            "smmla {a1}, {a1}, {m}, {r}",
            "asr {a1}, {a1}, {h}",
            "ldr {m}, [{mp}, #8]",
            "ldrsb {h}, [{sp}, #2]",
            "add {r}, {h}, #32",
            "lsr {r}, {c}, {r}",
            "mvn {h}, {h}",
            "smmla {a2}, {a2}, {m}, {r}",
            "asr {a2}, {a2}, {h}",
            "ldr {m}, [{mp}, #12]",
            "ldrsb {h}, [{sp}, #3]",
            "add {r}, {h}, #32",
            "lsr {r}, {c}, {r}",
            "mvn {h}, {h}",
            "smmla {a3}, {a3}, {m}, {r}",
            "asr {a3}, {a3}, {h}",
            "ldr {m}, [{q}, #0]",
            pack4_clamp!("m", "m", "r", "h", "q", "4"),
            "str {a0}, [{y}]",
            mp = in(reg) m,
            sp = in(reg) s,
            q = in(reg) q,
            y = in(reg) y,
            c = in(reg) 1u32 << 30,
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            a2 = inout(reg) a2 => _,
            a3 = inout(reg) a3 => _,
            m = out(reg) _,
            r = out(reg) _,
            h = out(reg) _,
            options(nostack),
        );
    }
}

/// Portable stand-in for the Arm requantization of four rows (same contract and results).
///
/// # Safety
/// As the Arm version.
#[cfg(not(tinykd_dsp))]
#[inline(always)]
unsafe fn requant4(a: [i32; 4], m: *const u8, s: *const u8, q: &Clamp, y: *mut i8) {
    let (lo, hi) = (q.min as u8 as i8, q.max as u8 as i8);
    for (i, acc) in a.into_iter().enumerate() {
        // SAFETY: the caller guarantees 16 bytes at `m`, 4 at `s` and 4 at `y`.
        let (mult, shift) = unsafe {
            (
                i32::from_le_bytes(core::ptr::read_unaligned(m.add(4 * i).cast())),
                i32::from(*s.add(i) as i8),
            )
        };
        let hs = -1 - shift;
        let high = ((i64::from(acc) * i64::from(mult) + (1i64 << (hs - 1 + 32))) >> 32) as i32;
        let v = ((high >> hs) + q.zp).clamp(-128, 127) as i8;
        // SAFETY: as above.
        unsafe { *y.add(i) = v.max(lo).min(hi) };
    }
}

/// The state of the assembly block loops (`asm_rows::block4`/`block2`), read and advanced in
/// place by field offset (`repr(C)`, asserted below).
#[cfg(tinykd_dsp)]
#[repr(C)]
struct BlockState {
    /// The block's weights and the widened input at the current chunk.
    w: *const u8,
    x: *const u32,
    /// The current chunk's `−32768·Σ even x`.
    xneg: *const u32,
    /// The block's first row's odd term of the current chunk; rows `tstride` bytes apart.
    terms: *const u8,
    tstride: usize,
    /// Groups left.
    left: usize,
    /// Bias plus the chunks done, per row.
    total: [i32; 4],
}

#[cfg(tinykd_dsp)]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(BlockState, x) == 4 && offset_of!(BlockState, xneg) == 8);
    assert!(offset_of!(BlockState, terms) == 12 && offset_of!(BlockState, tstride) == 16);
    assert!(offset_of!(BlockState, left) == 20 && offset_of!(BlockState, total) == 24);
};

/// The state of `asm_rows::blocks4` (every 4-row block of an op in one asm block): the fields
/// of [`BlockState`] first, then what the block loop needs; `repr(C)`, asserted below.
#[cfg(tinykd_dsp)]
#[repr(C)]
struct BlocksState {
    block: BlockState,
    /// The widened input, `xneg` and the groups per row, for each block's start.
    x0: *const u32,
    xneg0: *const u32,
    groups: usize,
    /// The current block's biases, multipliers (LE i32) and shifts (i8), and outputs.
    bias: *const u8,
    mult: *const u8,
    shifts: *const u8,
    y: *mut i8,
    /// Blocks left (≥ 1).
    blocks: usize,
    /// Output zero point; `act_min`/`act_max` repeated in the four bytes of a word.
    zp: i32,
    min: u32,
    max: u32,
}

#[cfg(tinykd_dsp)]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(BlocksState, x0) == 40 && offset_of!(BlocksState, xneg0) == 44);
    assert!(offset_of!(BlocksState, groups) == 48 && offset_of!(BlocksState, bias) == 52);
    assert!(offset_of!(BlocksState, mult) == 56 && offset_of!(BlocksState, shifts) == 60);
    assert!(offset_of!(BlocksState, y) == 64 && offset_of!(BlocksState, blocks) == 68);
    assert!(offset_of!(BlocksState, zp) == 72 && offset_of!(BlocksState, min) == 76);
    assert!(offset_of!(BlocksState, max) == 80);
};

/// What a block of rows reads: the op's constants and the widened input, lengths checked by
/// [`dsp`] (weights `4·rows·groups` bytes, bias `rows` and odd terms `rows·chunks` LE i32,
/// `x` `2·groups` and `xneg` `chunks` words).
struct Block {
    w: *const u8,
    bias: *const u8,
    terms: *const u8,
    x: *const u32,
    xneg: *const u32,
    groups: usize,
    chunks: usize,
    /// The weights are 4-aligned in memory (the `LDRD` kernels apply).
    aligned: bool,
}

impl Block {
    /// Bias plus every chunk's `256·Σ x·w` shifted back by 8, for rows `first..first + R`.
    ///
    /// # Safety
    /// Rows `first..first + R` exist in the op [`dsp`] checked.
    #[inline(always)]
    unsafe fn rows<const R: usize>(&self, first: usize) -> [i32; R] {
        let (groups, chunks) = (self.groups, self.chunks);
        let le = |p: *const u8, i: usize| {
            // SAFETY: `i` indexes a checked LE i32 array (the caller's rows).
            i32::from_le_bytes(unsafe { core::ptr::read_unaligned(p.add(4 * i).cast()) })
        };
        let mut total: [i32; R] = core::array::from_fn(|i| le(self.bias, first + i));
        // SAFETY: the block's weights start here (rows before it: 4·first·groups bytes).
        let w = unsafe { self.w.add(4 * first * groups) };
        #[cfg(tinykd_dsp)]
        if self.aligned && (R == 4 || R == 2) {
            let mut st = BlockState {
                w,
                x: self.x,
                xneg: self.xneg,
                // SAFETY: row `first`'s first odd term.
                terms: unsafe { self.terms.add(4 * first * chunks) },
                tstride: 4 * chunks,
                left: groups,
                total: [0; 4],
            };
            for (d, &t) in st.total.iter_mut().zip(&total) {
                *d = t;
            }
            // SAFETY: the state describes this block of the checked op; groups ≥ 1.
            unsafe {
                if R == 4 {
                    asm_rows::block4(&mut st);
                } else {
                    asm_rows::block2(&mut st);
                }
            }
            for (t, &v) in total.iter_mut().zip(&st.total) {
                *t = v;
            }
            return total;
        }
        let mut g0 = 0;
        for c in 0..chunks {
            let n = (groups - g0).min(PAIRED_CHUNK_GROUPS);
            // SAFETY: c < chunks.
            let neg = unsafe { *self.xneg.add(c) } as i32;
            let mut a: [i32; R] = core::array::from_fn(|i| {
                le(self.terms, (first + i) * chunks + c).wrapping_add(neg)
            });
            // SAFETY: chunk c's words of the block (R per group) and of the input (2 per group).
            let (wc, xc) = unsafe { (w.add(4 * R * g0), self.x.add(2 * g0)) };
            // SAFETY: n ≥ 1 groups of both lie inside the checked arrays.
            unsafe { block_rows::<R>(wc, xc, n, self.aligned, &mut a) };
            // Exactly 256·Σ x·w of the chunk: the shift is exact.
            for (t, &acc) in total.iter_mut().zip(&a) {
                *t = t.wrapping_add(acc >> 8);
            }
            g0 += PAIRED_CHUNK_GROUPS;
        }
        total
    }
}

/// The Cortex-M0 block kernels: per group the four input bytes loaded and sign-extended once for
/// the block's rows (straight from the input tensor: no widening pass), then per row and weight `LDRB` (`SXTB` for the odd, signed ones),
/// `MULS` and an `ADD` into a high-register accumulator. The even bytes are `w + 128`: the caller
/// takes `128·Σ even x` off each row.
#[cfg(all(target_arch = "arm", not(tinykd_dsp)))]
mod m0 {
    use core::arch::asm;

    /// The group's four input bytes (at `r5`) into `r0` … `r3`, sign-extended.
    macro_rules! m0_x {
        () => {
            concat!(
                "ldrb r0, [r5, #0]\n",
                "sxtb r0, r0\n",
                "ldrb r1, [r5, #1]\n",
                "sxtb r1, r1\n",
                "ldrb r2, [r5, #2]\n",
                "sxtb r2, r2\n",
                "ldrb r3, [r5, #3]\n",
                "sxtb r3, r3\n",
            )
        };
    }

    /// One row's four MACs of the group: the weight bytes at `r4 + o … o + 3` (the even ones
    /// stored `w + 128`, read unsigned; the odd ones signed, `SXTB`) times `r0` … `r3`, added
    /// into the high register `acc` (`r6` is clobbered).
    macro_rules! m0_row {
        ($o:literal, $acc:literal) => {
            concat!(
                "ldrb r6, [r4, #",
                $o,
                "]\n",
                "muls r6, r0, r6\n",
                "add ",
                $acc,
                ", r6\n",
                "ldrb r6, [r4, #",
                $o,
                " + 1]\n",
                "sxtb r6, r6\n",
                "muls r6, r1, r6\n",
                "add ",
                $acc,
                ", r6\n",
                "ldrb r6, [r4, #",
                $o,
                " + 2]\n",
                "muls r6, r2, r6\n",
                "add ",
                $acc,
                ", r6\n",
                "ldrb r6, [r4, #",
                $o,
                " + 3]\n",
                "sxtb r6, r6\n",
                "muls r6, r3, r6\n",
                "add ",
                $acc,
                ", r6\n",
            )
        };
    }

    /// A block kernel of `R` rows, one `(accumulator, offset)` per row: the accumulator is a
    /// high register and `offset` both the row's byte offset in a group's weights and its
    /// word's offset in `state`.
    macro_rules! m0_rows {
        ($(#[$doc:meta])* $name:ident, $r:literal, $step:literal, [$(($acc:literal, $o:literal)),+]) => {
            $(#[$doc])*
            #[inline(always)]
            pub(super) unsafe fn $name(w: *const u8, x: *const i8, groups: usize, a: &mut [i32; $r]) {
                // The accumulators, the end of the weights and a slot for r6 (which `asm!` may
                // not name): the loop keeps them in r8–r12 (Thumb-1 high registers are clobbers
                // only) and lr.
                let mut state = [0u32; 6];
                for (s, &v) in state.iter_mut().zip(a.iter()) {
                    *s = v as u32;
                }
                state[4] = w.wrapping_add(4 * $r * groups) as u32;
                // SAFETY: reads 4·R·groups bytes from `w` and 4·groups bytes from `x`
                // (immediate offsets), which the caller guarantees; groups ≥ 1, so `w` reaches
                // the end in state[4]. Reads and writes the six words of `state`; r6 is saved
                // there and restored before the block ends; no stack.
                unsafe {
                    asm!(
                        "str r6, [r0, #20]",
                        $(concat!("ldr r1, [r0, #", $o, "]"), concat!("mov ", $acc, ", r1"),)+
                        "ldr r1, [r0, #16]",
                        "mov r12, r1",
                        "mov lr, r0",
                        "2:",
                        m0_x!(),
                        $(m0_row!($o, $acc),)+
                        concat!("adds r4, #", $step),
                        "adds r5, #4",
                        "cmp r4, r12",
                        "bne 2b",
                        "mov r0, lr",
                        $(concat!("mov r1, ", $acc), concat!("str r1, [r0, #", $o, "]"),)+
                        "ldr r6, [r0, #20]",
                        inout("r0") state.as_mut_ptr() => _,
                        inout("r4") w => _,
                        inout("r5") x => _,
                        out("r1") _,
                        out("r2") _,
                        out("r3") _,
                        out("r8") _,
                        out("r9") _,
                        out("r10") _,
                        out("r11") _,
                        out("r12") _,
                        out("lr") _,
                        options(nostack),
                    );
                }
                for (a, &s) in a.iter_mut().zip(state.iter()) {
                    *a = s as i32;
                }
            }
        };
    }

    m0_rows!(
        /// 4 rows: 68 instructions per 16 MACs.
        rows4, 4, 16, [("r8", 0), ("r9", 4), ("r10", 8), ("r11", 12)]
    );
    m0_rows!(
        /// 2 rows: 40 instructions per 8 MACs.
        rows2, 2, 8, [("r8", 0), ("r9", 4)]
    );
    m0_rows!(
        /// 1 row: 26 instructions per 4 MACs.
        rows1, 1, 4, [("r8", 0)]
    );
}

/// One block of `R` rows over `groups` whole groups with the stored bytes as they are (even
/// ones unsigned, odd ones signed): the portable stand-in of the Cortex-M0 kernels.
///
/// # Safety
/// `w` readable for `4·R·groups` bytes, `x` for `4·groups` bytes, `groups ≥ 1`.
#[inline(always)]
unsafe fn m0_rows<const R: usize>(w: *const u8, x: *const i8, groups: usize, a: &mut [i32; R]) {
    #[cfg(all(target_arch = "arm", not(tinykd_dsp)))]
    {
        let a: *mut [i32; R] = a;
        // SAFETY: the caller's contract; R is 4, 2 or 1, so the casts keep the type.
        unsafe {
            match R {
                4 => m0::rows4(w, x, groups, &mut *a.cast::<[i32; 4]>()),
                2 => m0::rows2(w, x, groups, &mut *a.cast::<[i32; 2]>()),
                _ => m0::rows1(w, x, groups, &mut *a.cast::<[i32; 1]>()),
            }
        }
    }
    #[cfg(not(all(target_arch = "arm", not(tinykd_dsp))))]
    {
        // SAFETY: the caller's contract.
        let (w, x) = unsafe {
            (
                core::slice::from_raw_parts(w, 4 * R * groups),
                core::slice::from_raw_parts(x, 4 * groups),
            )
        };
        let (wq, _) = w.as_chunks::<4>();
        let (xq, _) = x.as_chunks::<4>();
        for (ws, &xs) in wq.chunks_exact(R).zip(xq) {
            for (acc, &ws) in a.iter_mut().zip(ws) {
                *acc = acc.wrapping_add(stored_dot(ws, xs));
            }
        }
    }
}

/// One group's stored bytes (even ones `w + 128`, odd ones int8) against four inputs.
#[inline(always)]
fn stored_dot([b0, b1, b2, b3]: [u8; 4], [x0, x1, x2, x3]: [i8; 4]) -> i32 {
    i32::from(b0) * i32::from(x0)
        + i32::from(b1 as i8) * i32::from(x1)
        + i32::from(b2) * i32::from(x2)
        + i32::from(b3 as i8) * i32::from(x3)
}

/// The Cortex-M0 paired dense: each block's rows together straight from the int8 input
/// ([`m0_rows`]; a last partial group in Rust), `128·Σ even x` taken off every row at the end.
/// Needs no scratch.
pub(crate) fn scalar(op: &DensePairedOp<'_>, x: In<'_>, y: Out<'_>) -> Result<bool> {
    let k = x.data.len();
    let rows = y.data.len();
    let groups = paired_groups(k);
    let full = k / 4;
    let even: i32 = x.data.iter().step_by(2).map(|&v| i32::from(v)).sum();
    let correction = even.wrapping_mul(128);
    let weights = op.weights.bytes();
    if weights.len() != 4 * rows * groups {
        return Err(crate::Error::RunInconsistent);
    }
    // The zero-padded last group.
    let mut tail = [0i8; 4];
    for (d, &v) in tail.iter_mut().zip(x.data.get(4 * full..).unwrap_or(&[])) {
        *d = v;
    }
    let zp_out = i32::from(y.zero_point);
    let mut r = 0;
    while r < rows {
        let (first, len) = paired_block(rows, r);
        let block = need(weights.get(4 * first * groups..4 * (first + len) * groups))?;
        let mut a = [0i32; 4];
        if full > 0 {
            let (w, xp) = (block.as_ptr(), x.data.as_ptr());
            // SAFETY: the block holds 4·len·groups ≥ 4·len·full bytes, the input 4·full bytes,
            // full ≥ 1.
            unsafe {
                match len {
                    4 => m0_rows::<4>(w, xp, full, &mut a),
                    2 => {
                        let mut a2 = [0i32; 2];
                        m0_rows::<2>(w, xp, full, &mut a2);
                        a[..2].copy_from_slice(&a2);
                    }
                    _ => {
                        let mut a1 = [0i32; 1];
                        m0_rows::<1>(w, xp, full, &mut a1);
                        a[0] = a1[0];
                    }
                }
            }
        }
        if groups > full {
            let (words, _) = need(block.get(4 * len * full..))?.as_chunks::<4>();
            for (acc, &ws) in a.iter_mut().zip(words) {
                *acc = acc.wrapping_add(stored_dot(ws, tail));
            }
        }
        for (i, &acc) in a.iter().enumerate().take(len) {
            let o = first + i;
            let total = need(op.bias.get(o))?
                .wrapping_add(acc)
                .wrapping_sub(correction);
            let rq = Rq::new(
                need(op.requant.multipliers.get(o))?,
                i32::from(need(op.requant.shifts.get(o))?),
                zp_out,
                op.act_min,
                op.act_max,
            );
            *need(y.data.get_mut(o))? = rq.out(total);
        }
        r += len;
    }
    Ok(true)
}

/// Every paired kernel against the plain dense reference on the same layer: random shapes
/// (k not a multiple of 4 or of 512, 1–9 rows: blocks of 4, 2, 1), extreme inputs and weights,
/// input zero points at the extremes, misaligned weights (the word-by-word fallback).
#[cfg(test)]
mod tests {
    use crate::ops::testutil::*;
    use crate::ops::{dense_paired_with, dense_with, Flavor, In, Out};
    use std::vec::Vec;
    use tinykd_format::{
        pair_weights, scratch_len, DenseOp, DensePairedOp, I8s, LeI32s, Op, Requant, Shape,
    };

    #[test]
    fn paired_kernels_match_plain_dense() {
        let mut rng = Rng(0x9A_12ED);
        for i in 0..240 {
            let k = match i % 6 {
                0 => rng.range(1, 8) as usize,
                1 => rng.range(509, 1100) as usize,
                2 => 512,
                3 => 4 * rng.range(1, 40) as usize,
                _ => rng.range(1, 300) as usize,
            };
            let rows = rng.range(1, 9) as usize;
            let x: Vec<i8> = match i % 5 {
                0 => std::vec![-128; k],
                1 => std::vec![127; k],
                _ => rng.i8s(k),
            };
            let w: Vec<i8> = match i % 7 {
                0 => (0..rows * k)
                    .map(|j| if j % 3 == 0 { -127 } else { 127 })
                    .collect(),
                1 => std::vec![-127; rows * k],
                _ => rng.weights(rows * k).iter().map(|&b| b as i8).collect(),
            };
            let zp_in = [-128i8, 127, 0, rng.range(-128, 127) as i8][i % 4];
            let bias: Vec<i32> = (0..rows)
                .map(|_| rng.range(-1 << 20, 1 << 20) as i32)
                .collect();
            let (m, s) = requant(&mut rng, rows, (-24, -8));
            let zp_out = rng.range(-128, 127) as i8;
            let act = act_range(&mut rng);
            let requant = Requant {
                multipliers: LeI32s(&m),
                shifts: I8s(&s),
            };
            let wb: Vec<u8> = w.iter().map(|&v| v as u8).collect();
            let bias_b = le_i32(&bias);
            let plain = DenseOp {
                input: 0,
                weights: I8s(&wb),
                bias: LeI32s(&bias_b),
                requant,
                act_min: act.0,
                act_max: act.1,
            };
            let (pw, terms) = pair_weights(&w, rows, k).unwrap();
            let folded: Vec<i32> = (0..rows)
                .map(|r| {
                    let sum: i32 = w[r * k..(r + 1) * k].iter().map(|&v| i32::from(v)).sum();
                    bias[r] - i32::from(zp_in) * sum
                })
                .collect();
            let folded_b = le_i32(&folded);
            // The weights at a 4-aligned address and, for the fallback, one byte off.
            let mut store = std::vec![0u32; pw.len() / 4 + 2];
            let sb = unsafe {
                core::slice::from_raw_parts_mut(store.as_mut_ptr().cast::<u8>(), store.len() * 4)
            };
            let skew = usize::from(i % 3 == 0);
            sb[skew..skew + pw.len()].copy_from_slice(&pw);
            let paired = DensePairedOp {
                input: 0,
                pad: I8s(&[]),
                weights: I8s(&sb[skew..skew + pw.len()]),
                bias: LeI32s(&folded_b),
                odd_terms: LeI32s(&terms),
                requant,
                act_min: act.0,
                act_max: act.1,
            };
            let ins = Shape {
                h: 1,
                w: 1,
                c: k as u16,
            };
            let outs = Shape {
                h: 1,
                w: 1,
                c: rows as u16,
            };
            let len = scratch_len(&Op::DensePaired(paired), ins, outs) as usize;
            let run = |flavor: Flavor, is_paired: bool| {
                let mut y = std::vec![0i8; rows];
                let mut sc = std::vec![0xA5A5_A5A5u32; len.div_ceil(4) + 1];
                let scb =
                    unsafe { core::slice::from_raw_parts_mut(sc.as_mut_ptr().cast::<u8>(), len) };
                let (xi, yo) = (
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
                );
                if is_paired {
                    dense_paired_with(flavor, &paired, xi, yo, Some(scb)).unwrap();
                } else {
                    dense_with(Flavor::Portable, &plain, xi, yo, None).unwrap();
                }
                y
            };
            let want = run(Flavor::Portable, false);
            for flavor in [Flavor::Portable, Flavor::Dsp, Flavor::Scalar] {
                assert_eq!(
                    run(flavor, true),
                    want,
                    "{flavor:?} k {k} rows {rows} zp {zp_in}"
                );
            }
        }
    }
}
