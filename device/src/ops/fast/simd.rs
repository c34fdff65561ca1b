//! The Cortex-M DSP-extension instructions the fast kernels use, one function each.
//!
//! On targets with the DSP extension (`cfg(tinykd_dsp)`, set by build.rs) they are single instructions in inline `asm!`
//! (`core::arch::arm`'s intrinsics are not stable). Everywhere else they are plain Rust with the
//! same results, so the kernels' logic is tested on the host by `cargo test`; the QEMU tests
//! (`device/kernel-tests`) then check the instructions themselves.
//!
//! Lanes: a `u32` holds two 16-bit halfwords, "bottom" (bits 0–15) and "top" (bits 16–31).
//! All accumulations wrap (as the instructions do); validation bounds every true sum to i32.

/// The assembly of [`dw_plane`] with or without (empty lists) the `[min, max]` clamp after
/// `SSAT`, for a full pass (`$c4`) and a half pass (`$c2`).
#[cfg(tinykd_dsp)]
macro_rules! dw_plane_asm {
    ($ps:expr, $x:expr, $rb:expr, [$($c4:literal),*], [$($c2:literal),*]) => {
        asm!(
            "1:",
            "ldr {xa}, [{ps}, #8]",
            "str {xa}, [{ps}, #12]",
            "2:",
            "ldr {a0}, [{ps}, #24]",
            "mov {a1}, {a0}",
            "mov {a2}, {a0}",
            "mov {a3}, {a0}",
            "ldrd {xa}, {xb}, [{xp}]",
            "ldr {xc}, [{xp}, #8]",
            "ldrd {w0}, {w1}, [{ps}, #52]",
            "smlad {a0}, {xa}, {w0}, {a0}",
            "smlabt {a0}, {xb}, {w1}, {a0}",
            "smlatb {a1}, {xa}, {w0}, {a1}",
            "smlad {a1}, {xb}, {w1}, {a1}",
            "smlad {a2}, {xb}, {w0}, {a2}",
            "smlabt {a2}, {xc}, {w1}, {a2}",
            "smlatb {a3}, {xb}, {w0}, {a3}",
            "smlad {a3}, {xc}, {w1}, {a3}",
            "add {xp}, {xp}, {rb}",
            "ldrd {xa}, {xb}, [{xp}]",
            "ldr {xc}, [{xp}, #8]",
            "ldrd {w0}, {w1}, [{ps}, #60]",
            "smlad {a0}, {xa}, {w0}, {a0}",
            "smlabt {a0}, {xb}, {w1}, {a0}",
            "smlatb {a1}, {xa}, {w0}, {a1}",
            "smlad {a1}, {xb}, {w1}, {a1}",
            "smlad {a2}, {xb}, {w0}, {a2}",
            "smlabt {a2}, {xc}, {w1}, {a2}",
            "smlatb {a3}, {xb}, {w0}, {a3}",
            "smlad {a3}, {xc}, {w1}, {a3}",
            "add {xp}, {xp}, {rb}",
            "ldrd {xa}, {xb}, [{xp}]",
            "ldr {xc}, [{xp}, #8]",
            "ldrd {w0}, {w1}, [{ps}, #68]",
            "smlad {a0}, {xa}, {w0}, {a0}",
            "smlabt {a0}, {xb}, {w1}, {a0}",
            "smlatb {a1}, {xa}, {w0}, {a1}",
            "smlad {a1}, {xb}, {w1}, {a1}",
            "smlad {a2}, {xb}, {w0}, {a2}",
            "smlabt {a2}, {xc}, {w1}, {a2}",
            "smlatb {a3}, {xb}, {w0}, {a3}",
            "smlad {a3}, {xc}, {w1}, {a3}",
            "ldrd {xa}, {xb}, [{ps}, #28]",
            "smmla {a0}, {a0}, {xa}, {xb}",
            "smmla {a1}, {a1}, {xa}, {xb}",
            "smmla {a2}, {a2}, {xa}, {xb}",
            "smmla {a3}, {a3}, {xa}, {xb}",
            "ldrd {xa}, {xb}, [{ps}, #36]",
            "asr {a0}, {a0}, {xa}",
            "asr {a1}, {a1}, {xa}",
            "asr {a2}, {a2}, {xa}",
            "asr {a3}, {a3}, {xa}",
            "add {a0}, {a0}, {xb}",
            "add {a1}, {a1}, {xb}",
            "add {a2}, {a2}, {xb}",
            "add {a3}, {a3}, {xb}",
            "ssat {a0}, #8, {a0}",
            "ssat {a1}, #8, {a1}",
            "ssat {a2}, #8, {a2}",
            "ssat {a3}, #8, {a3}",
            $($c4,)*
            "ldrd {xa}, {xb}, [{ps}, #0]",
            "strb {a0}, [{xa}]",
            "strb {a1}, [{xa}, {xb}]",
            "add {xa}, {xa}, {xb}, lsl #1",
            "strb {a2}, [{xa}]",
            "strb {a3}, [{xa}, {xb}]",
            "add {xa}, {xa}, {xb}, lsl #1",
            "str {xa}, [{ps}, #0]",
            // Back to this pass's first row, on to the next pass.
            "sub {xp}, {xp}, {rb}, lsl #1",
            "add {xp}, {xp}, #8",
            "ldr {xc}, [{ps}, #12]",
            "subs {xc}, {xc}, #1",
            "str {xc}, [{ps}, #12]",
            "bne 2b",
            // Output width 4k + 2: a half pass (two outputs) ends the row.
            "ldr {xc}, [{ps}, #20]",
            "cmp {xc}, #0",
            "beq 3f",
            "ldr {a0}, [{ps}, #24]",
            "mov {a1}, {a0}",
            "ldrd {xa}, {xb}, [{xp}]",
            "ldrd {w0}, {w1}, [{ps}, #52]",
            "smlad {a0}, {xa}, {w0}, {a0}",
            "smlabt {a0}, {xb}, {w1}, {a0}",
            "smlatb {a1}, {xa}, {w0}, {a1}",
            "smlad {a1}, {xb}, {w1}, {a1}",
            "add {xp}, {xp}, {rb}",
            "ldrd {xa}, {xb}, [{xp}]",
            "ldrd {w0}, {w1}, [{ps}, #60]",
            "smlad {a0}, {xa}, {w0}, {a0}",
            "smlabt {a0}, {xb}, {w1}, {a0}",
            "smlatb {a1}, {xa}, {w0}, {a1}",
            "smlad {a1}, {xb}, {w1}, {a1}",
            "add {xp}, {xp}, {rb}",
            "ldrd {xa}, {xb}, [{xp}]",
            "ldrd {w0}, {w1}, [{ps}, #68]",
            "smlad {a0}, {xa}, {w0}, {a0}",
            "smlabt {a0}, {xb}, {w1}, {a0}",
            "smlatb {a1}, {xa}, {w0}, {a1}",
            "smlad {a1}, {xb}, {w1}, {a1}",
            "ldrd {xa}, {xb}, [{ps}, #28]",
            "smmla {a0}, {a0}, {xa}, {xb}",
            "smmla {a1}, {a1}, {xa}, {xb}",
            "ldrd {xa}, {xb}, [{ps}, #36]",
            "asr {a0}, {a0}, {xa}",
            "asr {a1}, {a1}, {xa}",
            "add {a0}, {a0}, {xb}",
            "add {a1}, {a1}, {xb}",
            "ssat {a0}, #8, {a0}",
            "ssat {a1}, #8, {a1}",
            $($c2,)*
            "ldrd {xa}, {xb}, [{ps}, #0]",
            "strb {a0}, [{xa}]",
            "strb {a1}, [{xa}, {xb}]",
            "add {xa}, {xa}, {xb}, lsl #1",
            "str {xa}, [{ps}, #0]",
            "sub {xp}, {xp}, {rb}, lsl #1",
            "add {xp}, {xp}, #4",
            "3:",
            // From plane column ow (after the row's last pass) to the next row's first.
            "add {xp}, {xp}, #4",
            "ldr {xc}, [{ps}, #16]",
            "subs {xc}, {xc}, #1",
            "str {xc}, [{ps}, #16]",
            "bne 1b",
            ps = in(reg) $ps,
            xp = inout(reg) $x => _,
            rb = in(reg) $rb,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            xc = out(reg) _,
            w0 = out(reg) _,
            w1 = out(reg) _,
            options(nostack),
        )
    };
}

#[cfg(tinykd_dsp)]
mod imp {
    use core::arch::asm;

    /// `SXTB16 r, x`: bytes 0 and 2 of `x`, sign-extended into the bottom and top halfwords.
    #[inline(always)]
    pub(crate) fn sxtb16(x: u32) -> u32 {
        let r: u32;
        // SAFETY: register-only instruction of the DSP extension (present: `cfg(tinykd_dsp)`, see build.rs);
        // reads `x`, writes `r`, touches no memory, stack or flags.
        unsafe {
            asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SXTB16 r, x, ROR #8`: bytes 1 and 3 of `x`, sign-extended.
    #[inline(always)]
    pub(crate) fn sxtb16_ror8(x: u32) -> u32 {
        let r: u32;
        // SAFETY: as `sxtb16`.
        unsafe {
            asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SXTAB16 r, a, x`: `a`'s halfwords plus bytes 0 and 2 of `x`, sign-extended.
    #[inline(always)]
    pub(crate) fn sxtab16(a: u32, x: u32) -> u32 {
        let r: u32;
        // SAFETY: as `sxtb16`.
        unsafe {
            asm!("sxtab16 {r}, {a}, {x}", r = lateout(reg) r, a = in(reg) a, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SXTAB16 r, a, x, ROR #8`: `a`'s halfwords plus bytes 1 and 3 of `x`, sign-extended.
    #[inline(always)]
    pub(crate) fn sxtab16_ror8(a: u32, x: u32) -> u32 {
        let r: u32;
        // SAFETY: as `sxtb16`.
        unsafe {
            asm!("sxtab16 {r}, {a}, {x}, ror #8", r = lateout(reg) r, a = in(reg) a, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SMLAD r, a, b, acc`: `acc + a.bottom·b.bottom + a.top·b.top` (signed halfwords).
    #[inline(always)]
    pub(crate) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: register-only DSP instruction; it may set the sticky Q flag (so flags are not
        // declared preserved), nothing else.
        unsafe {
            asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                c = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }

    /// The im2col micro-kernel: `groups` steps of four weights (`w`, int8) against four
    /// columns of int16 pairs (`x`, 8 words per step), accumulating into `a`.
    ///
    /// # Safety
    /// `w` is readable for `4·groups` bytes, `x` is 4-aligned and readable for `8·groups` words,
    /// and `groups ≥ 1`.
    #[inline(always)]
    pub(crate) unsafe fn tile_1x4(w: *const u8, x: *const u32, groups: usize, a: &mut [i32; 4]) {
        debug_assert!(groups >= 1 && (x as usize).is_multiple_of(4));
        let [mut a0, mut a1, mut a2, mut a3] = *a;
        // SAFETY: the loop reads 4·groups bytes from `w` (LDR: unaligned allowed on ARMv7-M)
        // and 8·groups words from the 4-aligned `x` (LDRD needs word alignment), which the
        // caller guarantees; `groups ≥ 1`, so an odd count ends at 0 after its single step and an
        // even one is ≥ 2 and reaches 0 in the two-step loop. Only the declared
        // registers are written; no stack use. SMLAD may set the Q flag.
        unsafe {
            asm!(
                // An odd count first takes one step, then the loop runs two steps per pass.
                "tst {n}, #1",
                "beq 3f",
                "ldr {w}, [{wp}], #4",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a3}, {w}, {xe}, {a3}",
                "smlad {a3}, {wo}, {xo}, {a3}",
                "subs {n}, {n}, #1",
                "beq 4f",
                "3:",
                "ldr {w}, [{wp}], #4",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a3}, {w}, {xe}, {a3}",
                "smlad {a3}, {wo}, {xo}, {a3}",
                "ldr {w}, [{wp}], #4",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a3}, {w}, {xe}, {a3}",
                "smlad {a3}, {wo}, {xo}, {a3}",
                "subs {n}, {n}, #2",
                "bne 3b",
                "4:",
                wp = inout(reg) w => _,
                xp = inout(reg) x => _,
                n = inout(reg) groups => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                w = out(reg) _,
                wo = out(reg) _,
                xe = out(reg) _,
                xo = out(reg) _,
                options(nostack, readonly),
            );
        }
        *a = [a0, a1, a2, a3];
    }

    /// The whole channel loop of one full im2col tile (four output pixels), in assembly:
    /// for each of `p.count` channels, bias, `p.steps` steps of [`tile_1x4`], then per pixel
    /// `SMMLA` (high word + rounding term), `ASR`, zero point, clamp, `STRB` at stride `p.oc`.
    /// Every channel's total shift must lie in 33..=62 (`shift` in −31..=−2), the fast path of
    /// `Rq`.
    ///
    /// # Safety
    /// `p.count ≥ 1` channels: rows `p.w + i·p.k` readable for `4·p.steps` bytes (`p.steps ≥ 1`),
    /// `p.tile` 4-aligned and readable for `8·p.steps` words, `p.bias`/`p.mult` readable for
    /// `4·p.count` bytes and `p.shift` for `p.count`, outputs `p.y + i + j·p.oc` (j < 4)
    /// writable, and every shift in −31..=−2.
    #[inline(always)]
    pub(crate) unsafe fn channels_1x4(p: &mut crate::ops::fast::ChannelLoop) {
        let p: *mut crate::ops::fast::ChannelLoop = p;
        // SAFETY: the caller guarantees every address read or written (see above); `p` is an
        // exclusive borrow, read and updated through `{ps}` at the field offsets of the
        // `repr(C)` struct. The MAC loop is `tile_1x4`'s. No stack use; flags and the Q flag
        // are clobbered (not declared preserved).
        unsafe {
            asm!(
                "5:",
                "ldr {w}, [{ps}, #16]",
                "ldr {a0}, [{w}], #4",
                "str {w}, [{ps}, #16]",
                "mov {a1}, {a0}",
                "mov {a2}, {a0}",
                "mov {a3}, {a0}",
                "ldrd {wp}, {w}, [{ps}, #0]",
                "add {w}, {wp}, {w}",
                "str {w}, [{ps}, #0]",
                "ldrd {xp}, {n}, [{ps}, #8]",
                "tst {n}, #1",
                "beq 3f",
                "ldr {w}, [{wp}], #4",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a3}, {w}, {xe}, {a3}",
                "smlad {a3}, {wo}, {xo}, {a3}",
                "subs {n}, {n}, #1",
                "beq 4f",
                "3:",
                "ldr {w}, [{wp}], #4",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a3}, {w}, {xe}, {a3}",
                "smlad {a3}, {wo}, {xo}, {a3}",
                "ldr {w}, [{wp}], #4",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "smlad {a3}, {w}, {xe}, {a3}",
                "smlad {a3}, {wo}, {xo}, {a3}",
                "subs {n}, {n}, #2",
                "bne 3b",
                "4:",
                // Requantization parameters of this channel (wp, xp, n, w, xe, xo are free).
                "ldr {w}, [{ps}, #20]",
                "ldr {wp}, [{w}], #4",
                "str {w}, [{ps}, #20]",
                "ldr {w}, [{ps}, #24]",
                "ldrsb {xp}, [{w}], #1",
                "str {w}, [{ps}, #24]",
                "mvn {xp}, {xp}",
                "sub {w}, {xp}, #1",
                "mov {n}, #1",
                "lsl {n}, {n}, {w}",
                "ldr {wo}, [{ps}, #36]",
                "smmla {a0}, {a0}, {wp}, {n}",
                "asr {a0}, {a0}, {xp}",
                "add {a0}, {a0}, {wo}",
                "ssat {a0}, #8, {a0}",
                "smmla {a1}, {a1}, {wp}, {n}",
                "asr {a1}, {a1}, {xp}",
                "add {a1}, {a1}, {wo}",
                "ssat {a1}, #8, {a1}",
                "smmla {a2}, {a2}, {wp}, {n}",
                "asr {a2}, {a2}, {xp}",
                "add {a2}, {a2}, {wo}",
                "ssat {a2}, #8, {a2}",
                "smmla {a3}, {a3}, {wp}, {n}",
                "asr {a3}, {a3}, {xp}",
                "add {a3}, {a3}, {wo}",
                "ssat {a3}, #8, {a3}",
                // The four bytes in one word, clamped to [min, max] together.
                "bfi {a0}, {a1}, #8, #8",
                "bfi {a0}, {a2}, #16, #8",
                "bfi {a0}, {a3}, #24, #8",
                "ldrd {xe}, {xo}, [{ps}, #40]",
                "ssub8 {a1}, {a0}, {xe}",
                "sel {a0}, {a0}, {xe}",
                "ssub8 {a1}, {a0}, {xo}",
                "sel {a0}, {xo}, {a0}",
                "ldrd {w}, {n}, [{ps}, #28]",
                "strb {a0}, [{w}]",
                "lsr {a1}, {a0}, #8",
                "strb {a1}, [{w}, {n}]",
                "add {wp}, {w}, {n}",
                "lsr {a1}, {a0}, #16",
                "strb {a1}, [{wp}, {n}]",
                "add {wp}, {wp}, {n}",
                "lsr {a1}, {a0}, #24",
                "strb {a1}, [{wp}, {n}]",
                "add {w}, {w}, #1",
                "str {w}, [{ps}, #28]",
                "ldr {w}, [{ps}, #48]",
                "subs {w}, {w}, #1",
                "str {w}, [{ps}, #48]",
                "bne 5b",
                ps = in(reg) p,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                wp = out(reg) _,
                xp = out(reg) _,
                n = out(reg) _,
                w = out(reg) _,
                wo = out(reg) _,
                xe = out(reg) _,
                xo = out(reg) _,
                options(nostack),
            );
        }
    }

    /// Depthwise micro-kernel: 1 tap(s) of one kernel row for four channels. Tap `i` reads
    /// the input word at `x + i·c` (channels `(0, 2)` and `(1, 3)` after `SXTAB16` with the
    /// offset pair `off`) and the weight pairs `w[2i]` = `(w0, w2)`, `w[2i + 1]` = `(w1, w3)`.
    ///
    /// # Safety
    /// `x + i·c` readable for 4 bytes and `w` (4-aligned) for `2·1` words.
    #[inline(always)]
    pub(crate) unsafe fn dw_row1(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        w: *const u32,
        off: u32,
    ) {
        let [mut a0, mut a1, mut a2, mut a3] = *a;
        // SAFETY: reads exactly the words the caller guarantees (`LDR` may be unaligned on
        // ARMv7-M, `LDRD` reads the 4-aligned `w`). Register-only otherwise; no stack.
        unsafe {
            asm!(
                "/* stride {c} unused for one tap */",
                "ldr {xw}, [{xp}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtab16 {xe}, {off}, {xw}",
                "sxtab16 {xw}, {off}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                xp = inout(reg) x => _,
                wp = inout(reg) w => _,
                c = in(reg) c,
                off = in(reg) off,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                xw = out(reg) _,
                xe = out(reg) _,
                we = out(reg) _,
                wo = out(reg) _,
                options(nostack, readonly),
            );
        }
        *a = [a0, a1, a2, a3];
    }

    /// Depthwise micro-kernel: 2 tap(s) of one kernel row for four channels. Tap `i` reads
    /// the input word at `x + i·c` (channels `(0, 2)` and `(1, 3)` after `SXTAB16` with the
    /// offset pair `off`) and the weight pairs `w[2i]` = `(w0, w2)`, `w[2i + 1]` = `(w1, w3)`.
    ///
    /// # Safety
    /// `x + i·c` readable for 4 bytes and `w` (4-aligned) for `2·2` words.
    #[inline(always)]
    pub(crate) unsafe fn dw_row2(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        w: *const u32,
        off: u32,
    ) {
        let [mut a0, mut a1, mut a2, mut a3] = *a;
        // SAFETY: reads exactly the words the caller guarantees (`LDR` may be unaligned on
        // ARMv7-M, `LDRD` reads the 4-aligned `w`). Register-only otherwise; no stack.
        unsafe {
            asm!(
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtab16 {xe}, {off}, {xw}",
                "sxtab16 {xw}, {off}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtab16 {xe}, {off}, {xw}",
                "sxtab16 {xw}, {off}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                xp = inout(reg) x => _,
                wp = inout(reg) w => _,
                c = in(reg) c,
                off = in(reg) off,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                xw = out(reg) _,
                xe = out(reg) _,
                we = out(reg) _,
                wo = out(reg) _,
                options(nostack, readonly),
            );
        }
        *a = [a0, a1, a2, a3];
    }

    /// Depthwise micro-kernel: 3 tap(s) of one kernel row for four channels. Tap `i` reads
    /// the input word at `x + i·c` (channels `(0, 2)` and `(1, 3)` after `SXTAB16` with the
    /// offset pair `off`) and the weight pairs `w[2i]` = `(w0, w2)`, `w[2i + 1]` = `(w1, w3)`.
    ///
    /// # Safety
    /// `x + i·c` readable for 4 bytes and `w` (4-aligned) for `2·3` words.
    #[inline(always)]
    pub(crate) unsafe fn dw_row3(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        w: *const u32,
        off: u32,
    ) {
        let [mut a0, mut a1, mut a2, mut a3] = *a;
        // SAFETY: reads exactly the words the caller guarantees (`LDR` may be unaligned on
        // ARMv7-M, `LDRD` reads the 4-aligned `w`). Register-only otherwise; no stack.
        unsafe {
            asm!(
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtab16 {xe}, {off}, {xw}",
                "sxtab16 {xw}, {off}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtab16 {xe}, {off}, {xw}",
                "sxtab16 {xw}, {off}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtab16 {xe}, {off}, {xw}",
                "sxtab16 {xw}, {off}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                xp = inout(reg) x => _,
                wp = inout(reg) w => _,
                c = in(reg) c,
                off = in(reg) off,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                xw = out(reg) _,
                xe = out(reg) _,
                we = out(reg) _,
                wo = out(reg) _,
                options(nostack, readonly),
            );
        }
        *a = [a0, a1, a2, a3];
    }

    /// Depthwise micro-kernel for a whole 3×3 window of four channels, without the input
    /// offset (`SXTB16`; the caller folds `−zp·Σw` into the bias): taps row by row from `x`,
    /// `c` bytes apart within a row, `rs` more bytes to the next row's first tap; weight pairs
    /// `w[2t]` = `(w0, w2)`, `w[2t + 1]` = `(w1, w3)` for taps t = 0..9.
    ///
    /// # Safety
    /// The nine input words `x + ky·(2c + rs) + kx·c` readable, `w` (4-aligned) for 18 words.
    #[inline(always)]
    pub(crate) unsafe fn dw_3x3(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        rs: usize,
        w: *const u32,
    ) {
        let [mut a0, mut a1, mut a2, mut a3] = *a;
        // SAFETY: reads exactly the words the caller guarantees (`LDR` may be unaligned on
        // ARMv7-M, `LDRD` reads the 4-aligned `w`). Register-only otherwise; no stack.
        unsafe {
            asm!(
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {rs}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {rs}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                xp = inout(reg) x => _,
                wp = inout(reg) w => _,
                c = in(reg) c,
                rs = in(reg) rs,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                xw = out(reg) _,
                xe = out(reg) _,
                we = out(reg) _,
                wo = out(reg) _,
                options(nostack, readonly),
            );
        }
        *a = [a0, a1, a2, a3];
    }

    /// A run of whole 3×3 depthwise windows along an output row for four channels, all in
    /// assembly: per pixel [`dw_3x3`]'s taps (the second and third of a row at register
    /// offsets `c` and `c << 1`, the row step `rs` = one input row read from the state), then
    /// [`requant_4x8`]'s requantization and one `STR`, then the next pixel.
    ///
    /// # Safety
    /// `st.count ≥ 1`; for each of the `count` pixels, its nine input words (`x + i·xstep +
    /// ky·rs + kx·c`) readable and its 4 output bytes (`y + i·ystep`) writable; `st.w`
    /// 4-aligned and readable for 18 words; every `st.q.hs` in 1..=30.
    #[inline(always)]
    pub(crate) unsafe fn dw_3x3_run(st: &mut crate::ops::fast::DwRun) {
        let ps: *mut crate::ops::fast::DwRun = st;
        // SAFETY: the caller guarantees every address read or written; the state is an
        // exclusive borrow, read and updated through `{ps}` at the field offsets asserted next
        // to `DwRun`. No stack; the Q and GE flags may change.
        unsafe {
            asm!(
                "5:",
                "ldrd {a0}, {a1}, [{ps}, #32]",
                "ldrd {a2}, {a3}, [{ps}, #40]",
                "ldr {xp}, [{ps}, #0]",
                "ldr {wp}, [{ps}, #16]",
                "ldr {c}, [{ps}, #8]",
                "ldr {xw}, [{xp}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}, {c}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}, {c}, lsl #1]",
                "ldr {xe}, [{ps}, #12]",
                "add {xp}, {xp}, {xe}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}, {c}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}, {c}, lsl #1]",
                "ldr {xe}, [{ps}, #12]",
                "add {xp}, {xp}, {xe}",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}, {c}]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{xp}, {c}, lsl #1]",
                "ldrd {we}, {wo}, [{wp}], #8",
                "sxtb16 {xe}, {xw}",
                "sxtb16 {xw}, {xw}, ror #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {we}, [{ps}, #48]",
                "ldr {wo}, [{ps}, #64]",
                "ldr {xw}, [{ps}, #80]",
                "smmla {a0}, {a0}, {we}, {wo}",
                "asr {a0}, {a0}, {xw}",
                "ldr {we}, [{ps}, #52]",
                "ldr {wo}, [{ps}, #68]",
                "ldr {xw}, [{ps}, #84]",
                "smmla {a1}, {a1}, {we}, {wo}",
                "asr {a1}, {a1}, {xw}",
                "ldr {we}, [{ps}, #56]",
                "ldr {wo}, [{ps}, #72]",
                "ldr {xw}, [{ps}, #88]",
                "smmla {a2}, {a2}, {we}, {wo}",
                "asr {a2}, {a2}, {xw}",
                "ldr {we}, [{ps}, #60]",
                "ldr {wo}, [{ps}, #76]",
                "ldr {xw}, [{ps}, #92]",
                "smmla {a3}, {a3}, {we}, {wo}",
                "asr {a3}, {a3}, {xw}",
                "ldr {we}, [{ps}, #96]",
                pack4_clamp!("we", "we", "wo", "xw", "ps", "100"),
                "ldrd {xp}, {wp}, [{ps}, #20]",
                "str {a0}, [{xp}]",
                "add {xp}, {xp}, {wp}",
                "str {xp}, [{ps}, #20]",
                "ldrd {xp}, {wp}, [{ps}, #0]",
                "add {xp}, {xp}, {wp}",
                "str {xp}, [{ps}, #0]",
                "ldr {c}, [{ps}, #28]",
                "subs {c}, {c}, #1",
                "str {c}, [{ps}, #28]",
                "bne 5b",
                ps = in(reg) ps,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                xw = out(reg) _,
                xe = out(reg) _,
                we = out(reg) _,
                wo = out(reg) _,
                xp = out(reg) _,
                wp = out(reg) _,
                c = out(reg) _,
                options(nostack),
            );
        }
    }

    /// One clipped depthwise window of four channels (`ny` rows of `nx` taps, input offset
    /// added by `SXTAB16`), then [`requant_4x8`]'s requantization and one `STR`: the border
    /// pixels' path, with its loop counters in the state.
    ///
    /// # Safety
    /// `st.ny ≥ 1`, `st.nx ≥ 1`; the window's input words (`x + r·(nx·c + rs) + t·c`) readable,
    /// its weight pairs (`w`, 4-aligned, `nx` pairs per row then `wskip` bytes) readable, the 4
    /// bytes at `st.y` writable, every `st.q.hs` in 1..=30.
    #[inline(always)]
    pub(crate) unsafe fn dw_window(st: &mut crate::ops::fast::DwWin) {
        let ps: *mut crate::ops::fast::DwWin = st;
        // SAFETY: the caller guarantees every address read or written; the state is an
        // exclusive borrow, read and updated through `{ps}` at the field offsets asserted next
        // to `DwWin`. No stack; the Q and GE flags may change.
        unsafe {
            asm!(
                "ldrd {a0}, {a1}, [{ps}, #32]",
                "ldrd {a2}, {a3}, [{ps}, #40]",
                "ldr {xp}, [{ps}, #0]",
                "ldr {wp}, [{ps}, #16]",
                "ldr {c}, [{ps}, #8]",
                "6:",
                "ldr {xw}, [{ps}, #24]",
                "str {xw}, [{ps}, #28]",
                "7:",
                "ldr {xw}, [{xp}]",
                "add {xp}, {xp}, {c}",
                "ldr {we}, [{ps}, #112]",
                "sxtab16 {xe}, {we}, {xw}",
                "sxtab16 {xw}, {we}, {xw}, ror #8",
                "ldrd {we}, {wo}, [{wp}], #8",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "smlabb {a1}, {xw}, {wo}, {a1}",
                "smlatt {a3}, {xw}, {wo}, {a3}",
                "ldr {xw}, [{ps}, #28]",
                "subs {xw}, {xw}, #1",
                "str {xw}, [{ps}, #28]",
                "bne 7b",
                "ldr {xw}, [{ps}, #12]",
                "add {xp}, {xp}, {xw}",
                "ldr {xw}, [{ps}, #20]",
                "add {wp}, {wp}, {xw}",
                "ldr {xw}, [{ps}, #4]",
                "subs {xw}, {xw}, #1",
                "str {xw}, [{ps}, #4]",
                "bne 6b",
                "ldr {we}, [{ps}, #48]",
                "ldr {wo}, [{ps}, #64]",
                "ldr {xw}, [{ps}, #80]",
                "smmla {a0}, {a0}, {we}, {wo}",
                "asr {a0}, {a0}, {xw}",
                "ldr {we}, [{ps}, #52]",
                "ldr {wo}, [{ps}, #68]",
                "ldr {xw}, [{ps}, #84]",
                "smmla {a1}, {a1}, {we}, {wo}",
                "asr {a1}, {a1}, {xw}",
                "ldr {we}, [{ps}, #56]",
                "ldr {wo}, [{ps}, #72]",
                "ldr {xw}, [{ps}, #88]",
                "smmla {a2}, {a2}, {we}, {wo}",
                "asr {a2}, {a2}, {xw}",
                "ldr {we}, [{ps}, #60]",
                "ldr {wo}, [{ps}, #76]",
                "ldr {xw}, [{ps}, #92]",
                "smmla {a3}, {a3}, {we}, {wo}",
                "asr {a3}, {a3}, {xw}",
                "ldr {we}, [{ps}, #96]",
                pack4_clamp!("we", "we", "wo", "xw", "ps", "100"),
                "ldr {xp}, [{ps}, #108]",
                "str {a0}, [{xp}]",
                ps = in(reg) ps,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                xw = out(reg) _,
                xe = out(reg) _,
                we = out(reg) _,
                wo = out(reg) _,
                xp = out(reg) _,
                wp = out(reg) _,
                c = out(reg) _,
                options(nostack),
            );
        }
    }

    /// One channel of a 3×3 stride-1 depthwise conv over its int16 plane, all in assembly:
    /// `st.rows` output rows of `st.passes` passes, each pass four outputs along the row from
    /// the plane words at `x + r·rb` (r = 0..3, three words each: plane columns s..s+6), then
    /// if `st.half` a half pass (two outputs, two words per row).
    /// Per kernel row, with `A = (p0, p1)`, `B = (p2, p3)`, `C = (p4, p5)` and the weight
    /// pairs `(w0, w1)`, `(w1, w2)`: `o0 += SMLAD(A, w01) + B.b·w2`, `o1 += A.t·w0 +
    /// SMLAD(B, w12)`, `o2 += SMLAD(B, w01) + C.b·w2`, `o3 += B.t·w0 + SMLAD(C, w12)`: 8
    /// instructions for 12 MACs. Then `SMMLA` requantization, `SSAT`, the clamp if `clamp`, and
    /// four `STRB` `c` bytes apart.
    ///
    /// # Safety
    /// `x` 4-aligned, `rb` = `8·passes + 4·half + 4` (the plane row: output width + 2
    /// halfwords), and for every pass (starting at `x`, +8 bytes per pass or half pass, +4
    /// from a row's end to the next row's first) its three rows of 12 bytes (half pass: 8)
    /// readable; its outputs (`y`, +`c` each, `y` advancing `c` per output) writable;
    /// `passes`, `rows` ≥ 1; `hs` in 1..=30.
    #[inline(always)]
    pub(crate) unsafe fn dw_plane(
        st: &mut crate::ops::fast::DwPlane,
        x: *const u32,
        rb: usize,
        clamp: bool,
    ) {
        let ps: *mut crate::ops::fast::DwPlane = st;
        // SAFETY: the caller guarantees every address read or written (`LDRD` reads the
        // 4-aligned plane words, `LDR`/`STRB` any); the state is an exclusive borrow, read and
        // updated through `{ps}` at the field offsets asserted next to `DwPlane`. No stack; the
        // flags, Q and GE flags change.
        unsafe {
            if clamp {
                dw_plane_asm!(
                    ps,
                    x,
                    rb,
                    [
                        "bfi {a0}, {a1}, #8, #8",
                        "bfi {a0}, {a2}, #16, #8",
                        "bfi {a0}, {a3}, #24, #8",
                        "ldrd {xa}, {xb}, [{ps}, #44]",
                        "ssub8 {xc}, {a0}, {xa}",
                        "sel {a0}, {a0}, {xa}",
                        "ssub8 {xc}, {a0}, {xb}",
                        "sel {a0}, {xb}, {a0}",
                        "lsr {a1}, {a0}, #8",
                        "lsr {a2}, {a0}, #16",
                        "lsr {a3}, {a0}, #24"
                    ],
                    [
                        "bfi {a0}, {a1}, #8, #8",
                        "ldrd {xa}, {xb}, [{ps}, #44]",
                        "ssub8 {xc}, {a0}, {xa}",
                        "sel {a0}, {a0}, {xa}",
                        "ssub8 {xc}, {a0}, {xb}",
                        "sel {a0}, {xb}, {a0}",
                        "lsr {a1}, {a0}, #8"
                    ]
                );
            } else {
                dw_plane_asm!(ps, x, rb, [], []);
            }
        }
    }

    /// One input channel into the interior of its plane, all rows in one block: `g[3]` rows of
    /// `4·g[0] + g[1]` values (`g[1]` < 4), value i of a row at `x + i·c` (the next row's
    /// first right after its last), sign-extended to int16 at `y` (consecutive halfwords, then
    /// `g[2]` bytes to the next row's first). `g[3]` is counted down to 0.
    ///
    /// # Safety
    /// `g[3]` ≥ 1; the `g[3]·(4·g[0] + g[1])` input bytes readable, the halfwords written
    /// (2-aligned) writable.
    #[inline(always)]
    pub(crate) unsafe fn gather_plane(x: *const u8, c: usize, y: *mut i16, g: &mut [usize; 4]) {
        let g: *mut [usize; 4] = g;
        // SAFETY: reads and writes exactly what the caller guarantees (`STR` may be unaligned
        // on ARMv7-M); `g` is an exclusive borrow read at offsets 0..16, its row count updated
        // in place. No stack; flags change.
        unsafe {
            asm!(
                "1:",
                "ldr {n}, [{g}, #0]",
                "cmp {n}, #0",
                "beq 3f",
                "2:",
                "ldrsb {a}, [{x}]",
                "ldrsb {b}, [{x}, {c}]",
                "ldrsb {e}, [{x}, {c}, lsl #1]",
                "add {x}, {x}, {c}, lsl #1",
                "ldrsb {f}, [{x}, {c}]",
                "add {x}, {x}, {c}, lsl #1",
                "pkhbt {a}, {a}, {b}, lsl #16",
                "pkhbt {e}, {e}, {f}, lsl #16",
                "str {a}, [{y}], #4",
                "str {e}, [{y}], #4",
                "subs {n}, {n}, #1",
                "bne 2b",
                "3:",
                "ldr {n}, [{g}, #4]",
                "cmp {n}, #0",
                "beq 5f",
                "4:",
                "ldrsb {a}, [{x}]",
                "add {x}, {x}, {c}",
                "strh {a}, [{y}], #2",
                "subs {n}, {n}, #1",
                "bne 4b",
                "5:",
                "ldr {a}, [{g}, #8]",
                "add {y}, {y}, {a}",
                "ldr {a}, [{g}, #12]",
                "subs {a}, {a}, #1",
                "str {a}, [{g}, #12]",
                "bne 1b",
                g = in(reg) g,
                x = inout(reg) x => _,
                c = in(reg) c,
                y = inout(reg) y => _,
                n = out(reg) _,
                a = out(reg) _,
                b = out(reg) _,
                e = out(reg) _,
                f = out(reg) _,
                options(nostack),
            );
        }
    }

    /// Requantizes four channels' sums into four contiguous output bytes: per channel `SMMLA`
    /// (high word + rounding term), `ASR`, zero point, `SSAT` to 8 bits; then the bytes packed
    /// (`BFI`), clamped to `[min, max]` four at a time (`SSUB8` + `SEL`) and stored with one `STR`.
    ///
    /// # Safety
    /// `y` writable for 4 bytes; every `q.hs` in 1..=30.
    #[inline(always)]
    pub(crate) unsafe fn requant_4x8(a: [i32; 4], q: &crate::ops::fast::Rq4, y: *mut i8) {
        let [a0, a1, a2, a3] = a;
        let q: *const crate::ops::fast::Rq4 = q;
        // SAFETY: reads the `repr(C)` `Rq4` at `q` (field offsets asserted next to it), writes
        // the 4 bytes at `y` (`STR` may be unaligned on ARMv7-M). SMMLA/SSAT may set the Q
        // flag, SSUB8 the GE flags; no stack.
        unsafe {
            asm!(
                "ldr {m}, [{q}, #0]",
                "ldr {r}, [{q}, #16]",
                "ldr {h}, [{q}, #32]",
                "smmla {a0}, {a0}, {m}, {r}",
                "asr {a0}, {a0}, {h}",
                "ldr {m}, [{q}, #4]",
                "ldr {r}, [{q}, #20]",
                "ldr {h}, [{q}, #36]",
                "smmla {a1}, {a1}, {m}, {r}",
                "asr {a1}, {a1}, {h}",
                "ldr {m}, [{q}, #8]",
                "ldr {r}, [{q}, #24]",
                "ldr {h}, [{q}, #40]",
                "smmla {a2}, {a2}, {m}, {r}",
                "asr {a2}, {a2}, {h}",
                "ldr {m}, [{q}, #12]",
                "ldr {r}, [{q}, #28]",
                "ldr {h}, [{q}, #44]",
                "smmla {a3}, {a3}, {m}, {r}",
                "asr {a3}, {a3}, {h}",
                "ldr {m}, [{q}, #48]",
                pack4_clamp!("m", "m", "r", "h", "q", "52"),
                "str {a0}, [{y}]",
                q = in(reg) q,
                y = in(reg) y,
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

    /// The dense micro-kernel for three rows: `w[i]` (int8) against one widened input (`x`, 2
    /// words per step of four), `groups` steps, the input words loaded once for all three
    /// rows; two steps per loop pass (an odd count takes one first).
    ///
    /// # Safety
    /// Each `w[i]` is readable for `4·groups` bytes, `x` is 4-aligned and readable for
    /// `2·groups` words, and `groups ≥ 1`.
    #[inline(always)]
    pub(crate) unsafe fn rows_3x1(
        w: [*const u8; 3],
        x: *const u32,
        groups: usize,
        a: &mut [i32; 3],
    ) {
        debug_assert!(groups >= 1 && (x as usize).is_multiple_of(4));
        let [mut a0, mut a1, mut a2] = *a;
        // SAFETY: as `rows_2x1`, for three rows; `groups ≥ 1`, so an odd count ends at 0 after
        // its single step and an even one is ≥ 2 and reaches 0 in the two-step loop.
        unsafe {
            asm!(
                "tst {n}, #1",
                "beq 3f",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "ldr {w}, [{p0}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldr {w}, [{p1}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldr {w}, [{p2}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "subs {n}, {n}, #1",
                "beq 4f",
                "3:",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "ldr {w}, [{p0}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldr {w}, [{p1}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldr {w}, [{p2}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "ldr {w}, [{p0}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldr {w}, [{p1}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldr {w}, [{p2}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a2}, {w}, {xe}, {a2}",
                "smlad {a2}, {wo}, {xo}, {a2}",
                "subs {n}, {n}, #2",
                "bne 3b",
                "4:",
                p0 = inout(reg) w[0] => _,
                p1 = inout(reg) w[1] => _,
                p2 = inout(reg) w[2] => _,
                xp = inout(reg) x => _,
                n = inout(reg) groups => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                w = out(reg) _,
                wo = out(reg) _,
                xe = out(reg) _,
                xo = out(reg) _,
                options(nostack, readonly),
            );
        }
        *a = [a0, a1, a2];
    }

    /// The dense micro-kernel: two weight rows (`w0`, `w1`, int8) against one widened input
    /// (`x`, 2 words per step of four), `groups` steps.
    ///
    /// # Safety
    /// `w0` and `w1` are readable for `4·groups` bytes, `x` is 4-aligned and readable for
    /// `2·groups` words, and `groups ≥ 1`.
    #[inline(always)]
    pub(crate) unsafe fn rows_2x1(
        w0: *const u8,
        w1: *const u8,
        x: *const u32,
        groups: usize,
        a: &mut [i32; 2],
    ) {
        debug_assert!(groups >= 1 && (x as usize).is_multiple_of(4));
        let [mut a0, mut a1] = *a;
        // SAFETY: as `tile_1x4`: 4·groups bytes from each row, 2·groups aligned words from `x`;
        // two steps per loop pass after an odd count's single step, as there.
        unsafe {
            asm!(
                "tst {n}, #1",
                "beq 3f",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "ldr {w}, [{p0}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldr {w}, [{p1}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "subs {n}, {n}, #1",
                "beq 4f",
                "3:",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "ldr {w}, [{p0}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldr {w}, [{p1}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "ldrd {xe}, {xo}, [{xp}], #8",
                "ldr {w}, [{p0}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a0}, {w}, {xe}, {a0}",
                "smlad {a0}, {wo}, {xo}, {a0}",
                "ldr {w}, [{p1}], #4",
                "sxtb16 {wo}, {w}, ror #8",
                "sxtb16 {w}, {w}",
                "smlad {a1}, {w}, {xe}, {a1}",
                "smlad {a1}, {wo}, {xo}, {a1}",
                "subs {n}, {n}, #2",
                "bne 3b",
                "4:",
                p0 = inout(reg) w0 => _,
                p1 = inout(reg) w1 => _,
                xp = inout(reg) x => _,
                n = inout(reg) groups => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                w = out(reg) _,
                wo = out(reg) _,
                xe = out(reg) _,
                xo = out(reg) _,
                options(nostack, readonly),
            );
        }
        *a = [a0, a1];
    }
}

#[cfg(not(tinykd_dsp))]
mod imp {
    fn lo(x: u32) -> i32 {
        i32::from(x as u16 as i16)
    }
    fn hi(x: u32) -> i32 {
        i32::from((x >> 16) as u16 as i16)
    }
    fn pack(bottom: i32, top: i32) -> u32 {
        u32::from(bottom as u16) | (u32::from(top as u16) << 16)
    }
    fn byte(x: u32, i: u32) -> i32 {
        i32::from((x >> (8 * i)) as u8 as i8)
    }

    pub(crate) fn sxtb16(x: u32) -> u32 {
        pack(byte(x, 0), byte(x, 2))
    }
    pub(crate) fn sxtb16_ror8(x: u32) -> u32 {
        pack(byte(x, 1), byte(x, 3))
    }
    pub(crate) fn sxtab16(a: u32, x: u32) -> u32 {
        pack(lo(a) + byte(x, 0), hi(a) + byte(x, 2))
    }
    pub(crate) fn sxtab16_ror8(a: u32, x: u32) -> u32 {
        pack(lo(a) + byte(x, 1), hi(a) + byte(x, 3))
    }
    pub(crate) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(lo(a) * lo(b)).wrapping_add(hi(a) * hi(b))
    }
    pub(crate) fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(lo(a) * lo(b))
    }
    pub(crate) fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(hi(a) * hi(b))
    }
    pub(crate) fn smlabt(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(lo(a) * hi(b))
    }
    pub(crate) fn smlatb(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(hi(a) * lo(b))
    }

    /// Stand-in for the Arm micro-kernel (same contract).
    ///
    /// # Safety
    /// As the Arm version: `w` readable for `4·groups` bytes, `x` for `8·groups` words.
    pub(crate) unsafe fn tile_1x4(w: *const u8, x: *const u32, groups: usize, a: &mut [i32; 4]) {
        for g in 0..groups {
            // SAFETY: within the ranges the caller guarantees.
            let (wv, xs) = unsafe {
                (
                    u32::from_le_bytes(core::ptr::read_unaligned(w.add(4 * g).cast::<[u8; 4]>())),
                    core::ptr::read(x.add(8 * g).cast::<[u32; 8]>()),
                )
            };
            let (we, wo) = (sxtb16(wv), sxtb16_ror8(wv));
            for (j, acc) in a.iter_mut().enumerate() {
                let (xe, xo) = (
                    xs.get(2 * j).copied().unwrap_or(0),
                    xs.get(2 * j + 1).copied().unwrap_or(0),
                );
                *acc = smlad(wo, xo, smlad(we, xe, *acc));
            }
        }
    }

    /// Stand-in for the Arm channel loop (same contract and arithmetic).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn channels_1x4(p: &mut crate::ops::fast::ChannelLoop) {
        while p.count > 0 {
            // SAFETY: within the ranges the caller guarantees.
            unsafe {
                let b = i32::from_le_bytes(core::ptr::read_unaligned(p.bias.cast::<[u8; 4]>()));
                let m = i32::from_le_bytes(core::ptr::read_unaligned(p.mult.cast::<[u8; 4]>()));
                let hs = !i32::from(*p.shift.cast::<i8>());
                let mut a = [b; 4];
                tile_1x4(p.w, p.tile, p.steps, &mut a);
                for (j, acc) in a.into_iter().enumerate() {
                    let high = (i64::from(acc) * i64::from(m) + (1i64 << (hs - 1 + 32))) >> 32;
                    let r = (((high as i32) >> hs) + p.zp).clamp(-128, 127) as i8;
                    let (lo, hi) = (p.min as u8 as i8, p.max as u8 as i8);
                    *p.y.add(j * p.oc) = r.max(lo).min(hi);
                }
                p.w = p.w.add(p.k);
                p.bias = p.bias.add(4);
                p.mult = p.mult.add(4);
                p.shift = p.shift.add(1);
                p.y = p.y.add(1);
            }
            p.count -= 1;
        }
    }

    /// Stand-in for the Arm depthwise micro-kernel (same contract).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn dw_row1(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        w: *const u32,
        off: u32,
    ) {
        // SAFETY: the caller guarantees the ranges for 1 tap(s).
        unsafe { dw_row(a, x, c, w, off, 1) }
    }

    /// Stand-in for the Arm depthwise micro-kernel (same contract).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn dw_row2(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        w: *const u32,
        off: u32,
    ) {
        // SAFETY: the caller guarantees the ranges for 2 tap(s).
        unsafe { dw_row(a, x, c, w, off, 2) }
    }

    /// Stand-in for the Arm depthwise micro-kernel (same contract).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn dw_row3(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        w: *const u32,
        off: u32,
    ) {
        // SAFETY: the caller guarantees the ranges for 3 tap(s).
        unsafe { dw_row(a, x, c, w, off, 3) }
    }

    /// The stand-ins' common body.
    ///
    /// # Safety
    /// As the Arm versions, for `n` taps.
    unsafe fn dw_row(a: &mut [i32; 4], x: *const u8, c: usize, w: *const u32, off: u32, n: usize) {
        for i in 0..n {
            // SAFETY: within the ranges the caller guarantees.
            let (v, we, wo) = unsafe {
                (
                    u32::from_le_bytes(core::ptr::read_unaligned(x.add(i * c).cast::<[u8; 4]>())),
                    *w.add(2 * i),
                    *w.add(2 * i + 1),
                )
            };
            let (xe, xo) = (sxtab16(off, v), sxtab16_ror8(off, v));
            let [a0, a1, a2, a3] = a;
            *a0 = smlabb(xe, we, *a0);
            *a2 = smlatt(xe, we, *a2);
            *a1 = smlabb(xo, wo, *a1);
            *a3 = smlatt(xo, wo, *a3);
        }
    }

    /// Stand-in for the Arm depthwise 3×3 micro-kernel (same contract).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn dw_3x3(
        a: &mut [i32; 4],
        x: *const u8,
        c: usize,
        rs: usize,
        w: *const u32,
    ) {
        for ky in 0..3 {
            // SAFETY: the caller guarantees the three taps of every row.
            unsafe { dw_row(a, x.add(ky * (2 * c + rs)), c, w.add(6 * ky), 0, 3) };
        }
    }

    /// Stand-in for the Arm run of 3×3 windows (same contract and results).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn dw_3x3_run(st: &mut crate::ops::fast::DwRun) {
        while st.count > 0 {
            let mut a = st.bias;
            // SAFETY: the caller guarantees this pixel's taps, weights and outputs.
            unsafe {
                dw_3x3(&mut a, st.x, st.c, st.rs - 2 * st.c, st.w);
                requant_4x8(a, &st.q, st.y);
                st.x = st.x.add(st.xstep);
                st.y = st.y.add(st.ystep);
            }
            st.count -= 1;
        }
    }

    /// Stand-in for the Arm clipped window (same contract and results).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn dw_window(st: &mut crate::ops::fast::DwWin) {
        let mut a = st.bias;
        let (mut x, mut w) = (st.x, st.w);
        for _ in 0..st.ny {
            // SAFETY: the caller guarantees this row's taps and weight pairs.
            unsafe {
                dw_row(&mut a, x, st.c, w, st.off, st.nx);
                x = x.add(st.nx * st.c + st.rs);
                w = w.add(2 * st.nx + st.wskip / 4);
            }
        }
        // SAFETY: the caller guarantees the outputs and the shifts.
        unsafe { requant_4x8(a, &st.q, st.y) };
    }

    /// Stand-in for the Arm plane kernel (same contract and results).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn dw_plane(
        st: &mut crate::ops::fast::DwPlane,
        x: *const u32,
        rb: usize,
        clamp: bool,
    ) {
        let mut xp = x.cast::<u8>();
        let wa = st.w;
        let (w, _) = wa.as_chunks::<2>();
        loop {
            let outs = 4 * st.passes + 2 * st.half;
            for j0 in (0..outs).step_by(4) {
                let mut a = [st.bias; 4];
                for (r, &[w01, w12]) in w.iter().enumerate() {
                    // SAFETY: the caller guarantees this pass's three rows (a half pass reads
                    // 8 of the 12 bytes; the third word is then within the plane row's end).
                    let [pa, pb, pc] = unsafe {
                        core::ptr::read_unaligned(xp.add(r * rb + 2 * j0).cast::<[u32; 3]>())
                    };
                    let [a0, a1, a2, a3] = &mut a;
                    *a0 = smlabt(pb, w12, smlad(pa, w01, *a0));
                    *a1 = smlad(pb, w12, smlatb(pa, w01, *a1));
                    *a2 = smlabt(pc, w12, smlad(pb, w01, *a2));
                    *a3 = smlad(pc, w12, smlatb(pb, w01, *a3));
                }
                let (lo, hi) = (st.min as u8 as i8, st.max as u8 as i8);
                for acc in a.into_iter().take(outs - j0) {
                    let high = (i64::from(acc) * i64::from(st.m) + (i64::from(st.rnd) << 32)) >> 32;
                    let mut v = (((high as i32) >> st.hs) + st.zp).clamp(-128, 127) as i8;
                    if clamp {
                        v = v.max(lo).min(hi);
                    }
                    // SAFETY: the caller guarantees the outputs.
                    unsafe { *st.y = v };
                    st.y = st.y.wrapping_add(st.c);
                }
            }
            xp = xp.wrapping_add(rb);
            st.rows -= 1;
            if st.rows == 0 {
                break;
            }
        }
    }

    /// Stand-in for the Arm plane gather (same contract and results).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn gather_plane(x: *const u8, c: usize, y: *mut i16, g: &mut [usize; 4]) {
        let (mut x, mut y) = (x, y);
        while g[3] > 0 {
            for _ in 0..4 * g[0] + g[1] {
                // SAFETY: within the ranges the caller guarantees.
                unsafe {
                    *y = i16::from(*x.cast::<i8>());
                    x = x.add(c);
                    y = y.add(1);
                }
            }
            y = y.wrapping_byte_add(g[2]);
            g[3] -= 1;
        }
    }

    /// Stand-in for the Arm requantization of four channels (same contract and results).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn requant_4x8(a: [i32; 4], q: &crate::ops::fast::Rq4, y: *mut i8) {
        let (lo, hi) = (q.min.to_le_bytes(), q.max.to_le_bytes());
        let params = q.m.iter().zip(&q.rnd).zip(&q.hs).zip(lo.iter().zip(&hi));
        for (i, (acc, (((&m, &r), &h), (&lo, &hi)))) in a.into_iter().zip(params).enumerate() {
            let high = ((i64::from(acc) * i64::from(m) + (i64::from(r) << 32)) >> 32) as i32;
            let v = ((high >> h) + q.zp).clamp(-128, 127) as i8;
            // SAFETY: the caller guarantees the 4 bytes at `y`.
            unsafe { *y.add(i) = v.max(lo as i8).min(hi as i8) };
        }
    }

    /// Stand-in for the Arm micro-kernel (same contract).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn rows_3x1(
        w: [*const u8; 3],
        x: *const u32,
        groups: usize,
        a: &mut [i32; 3],
    ) {
        for g in 0..groups {
            // SAFETY: within the ranges the caller guarantees.
            let [xe, xo] = unsafe { core::ptr::read(x.add(2 * g).cast::<[u32; 2]>()) };
            for (acc, &p) in a.iter_mut().zip(&w) {
                // SAFETY: as above.
                let v = unsafe {
                    u32::from_le_bytes(core::ptr::read_unaligned(p.add(4 * g).cast::<[u8; 4]>()))
                };
                *acc = smlad(sxtb16_ror8(v), xo, smlad(sxtb16(v), xe, *acc));
            }
        }
    }

    /// Stand-in for the Arm micro-kernel (same contract).
    ///
    /// # Safety
    /// As the Arm version.
    pub(crate) unsafe fn rows_2x1(
        w0: *const u8,
        w1: *const u8,
        x: *const u32,
        groups: usize,
        a: &mut [i32; 2],
    ) {
        for g in 0..groups {
            // SAFETY: within the ranges the caller guarantees.
            let (v0, v1, [xe, xo]) = unsafe {
                (
                    u32::from_le_bytes(core::ptr::read_unaligned(w0.add(4 * g).cast::<[u8; 4]>())),
                    u32::from_le_bytes(core::ptr::read_unaligned(w1.add(4 * g).cast::<[u8; 4]>())),
                    core::ptr::read(x.add(2 * g).cast::<[u32; 2]>()),
                )
            };
            let [a0, a1] = a;
            *a0 = smlad(sxtb16_ror8(v0), xo, smlad(sxtb16(v0), xe, *a0));
            *a1 = smlad(sxtb16_ror8(v1), xo, smlad(sxtb16(v1), xe, *a1));
        }
    }
}

pub(crate) use imp::*;

/// Two int16 values as one word: `bottom` in bits 0–15, `top` in bits 16–31.
#[inline(always)]
pub(crate) fn pack16(bottom: i32, top: i32) -> u32 {
    u32::from(bottom as u16) | (u32::from(top as u16) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes() {
        let x = u32::from_le_bytes([0x80, 0x7f, 0xff, 0x01]);
        assert_eq!(sxtb16(x), pack16(-128, -1));
        assert_eq!(sxtb16_ror8(x), pack16(127, 1));
        assert_eq!(sxtab16(pack16(128, 3), x), pack16(0, 2));
        assert_eq!(sxtab16_ror8(pack16(128, 3), x), pack16(255, 4));
        assert_eq!(smlad(pack16(-2, 3), pack16(5, -7), 100), 100 - 10 - 21);
        assert_eq!(smlabb(pack16(-2, 3), pack16(5, -7), 1), -9);
        assert_eq!(smlatt(pack16(-2, 3), pack16(5, -7), 1), -20);
    }
}
