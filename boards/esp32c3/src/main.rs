//! tinykd on the ESP32-C3 (RISC-V RV32IMC at 160 MHz).
//!
//! Runs the blob embedded at build time over its test subset, compares every output with the
//! host's, and logs accuracy, time per inference and the stack's high-water mark over
//! defmt/RTT; `probe-rs run` prints the log and ends with the firmware's exit status.
//! Inferences are timed with esp-hal's `Instant` (the 16 MHz system timer, in microseconds).
#![no_std]
#![no_main]

use defmt_rtt as _;
use esp_hal::{clock::CpuClock, time::Instant};
use tinykd_board::{Aligned, Ticks};

mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

esp_bootloader_esp_idf::esp_app_desc!();

/// `CpuClock::max()` on the ESP32-C3.
const CORE_HZ: u32 = 160_000_000;

static mut ARENA: Aligned<[u8; models::ARENA_SIZE]> = Aligned([0; models::ARENA_SIZE]);

#[esp_hal::main]
fn main() -> ! {
    let _peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // SAFETY: `main` runs once and is the only user of the arena.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    // The low 32 bits of the microseconds since boot (wraps after 71 minutes).
    let mut micros = || Instant::now().duration_since_epoch().as_micros() as u32;
    tinykd_board::run_all_and_exit(
        "ESP32-C3",
        &models::CASES,
        arena,
        &mut micros,
        Ticks::Micros(CORE_HZ),
    )
}
