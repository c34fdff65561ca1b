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
