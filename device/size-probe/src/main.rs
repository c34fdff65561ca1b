//! Loads the blob at `BLOB`, runs it once and stores the class: every byte of the runtime a real
//! firmware links (validation, CRC, all kernels) and nothing else. Entry is `_start`; there is
//! no vector table or runtime crate, so `llvm-size` measures tinykd-device plus `core`.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

/// A blob "in flash"; its contents are irrelevant to code size (read through a volatile pointer
/// so the compiler cannot specialise the runtime on it).
static BLOB: [u8; 64] = [0; 64];
static mut ARENA: [u8; 1024] = [0; 1024];
static mut INPUT: [i8; 64] = [0; 64];
static mut RESULT: i32 = 0;

#[no_mangle]
pub extern "C" fn _start() -> ! {
    let blob: &'static [u8] = unsafe { &*read_volatile(&addr_of!(BLOB)) };
    let result = match tinykd_device::Model::from_bytes(blob) {
        Ok(model) => {
            let arena = unsafe { &mut *addr_of_mut!(ARENA) };
            let input = unsafe { &*addr_of!(INPUT) };
            match model.run(input.get(..model.input_len()).unwrap_or(&[]), arena) {
                Ok(out) => tinykd_device::argmax(out) as i32,
                Err(e) => -i32::from(e.code()),
            }
        }
        Err(e) => -i32::from(e.code()),
    };
    unsafe { write_volatile(addr_of_mut!(RESULT), result) };
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
