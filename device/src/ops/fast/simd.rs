//! The Cortex-M DSP-extension instructions the fast kernels use, one function each.
//!
//! On targets with the DSP extension (`cfg(tinykd_dsp)`, set by build.rs) they are single instructions in inline `asm!`
//! (`core::arch::arm`'s intrinsics are not stable). Everywhere else they are plain Rust with the
//! same results, so the kernels' logic is tested on the host by `cargo test`; the QEMU tests
//! (`device/kernel-tests`) then check the instructions themselves.
//!
//! Lanes: a `u32` holds two 16-bit halfwords, "bottom" (bits 0–15) and "top" (bits 16–31).
//! All accumulations wrap (as the instructions do); validation bounds every true sum to i32.

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

    /// `SMLABB r, a, b, acc`: `acc + a.bottom·b.bottom`.
    #[inline(always)]
    pub(crate) fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: as `smlad`.
        unsafe {
            asm!("smlabb {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                c = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }

    /// `SMLATT r, a, b, acc`: `acc + a.top·b.top`.
    #[inline(always)]
    pub(crate) fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: as `smlad`.
        unsafe {
            asm!("smlatt {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
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
        // SAFETY: as `tile_1x4`: 4·groups bytes from each row, 2·groups aligned words from `x`.
        unsafe {
            asm!(
                "2:",
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
                "bne 2b",
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
