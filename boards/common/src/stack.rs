//! Stack high-water mark by painting: fill the unused stack with a pattern before the run, and
//! after it find the deepest word that no longer holds the pattern.

/// The pattern painted on the unused stack.
const PAINT: u32 = 0xC0DE_57AC;
/// Bytes left unpainted under the current stack pointer, for the painting function's own frame.
const MARGIN: usize = 256;

// The runtime's linker script names the stack's ends: cortex-m-rt and esp-hal call the
// bottom `_stack_end` and the top `_stack_start`; riscv-rt calls them `__estack` / `__sstack`.
#[cfg(not(feature = "riscv-rt"))]
extern "C" {
    static _stack_end: u32;
    static _stack_start: u32;
}
#[cfg(feature = "riscv-rt")]
extern "C" {
    #[link_name = "__estack"]
    static _stack_end: u32;
    #[link_name = "__sstack"]
    static _stack_start: u32;
}

/// The main stack, between the linker script's bounds.
pub struct Stack {
    bottom: usize,
    top: usize,
}

impl Stack {
    /// The stack as the linker script laid it out.
    pub fn from_linker() -> Self {
        // Only the symbols' addresses are taken; their contents are never read.
        let bottom = core::ptr::addr_of!(_stack_end) as usize;
        let top = core::ptr::addr_of!(_stack_start) as usize;
        Self { bottom, top }
    }

    /// Bytes between the stack's bottom and top.
    pub const fn size(&self) -> usize {
        self.top - self.bottom
    }

    /// Paints every word from the bottom of the stack to a little under the current stack
    /// pointer. Call it once, early, from a shallow frame; [`Stack::high_water`] then reads
    /// how deep the stack has ever been since.
    #[inline(never)]
    pub fn paint(&self) {
        let here = 0u32;
        let sp = core::ptr::addr_of!(here) as usize;
        let end = sp.saturating_sub(MARGIN).min(self.top);
        let mut p = (self.bottom + 3) & !3;
        while p + 4 <= end {
            // SAFETY: `p` lies in the stack region below the live frames (under the stack pointer
            // by MARGIN bytes), which nothing else uses; the stack is single-threaded here.
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
    }

    /// Bytes of stack used at the deepest point since [`Stack::paint`]: from the top down to the
    /// lowest word that lost its paint.
    pub fn high_water(&self) -> usize {
        let mut p = (self.bottom + 3) & !3;
        while p + 4 <= self.top {
            // SAFETY: `p` is a word-aligned address inside the stack region.
            if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
                break;
            }
            p += 4;
        }
        self.top - p
    }
}
