//! tinykd on the Raspberry Pi Pico (RP2040: Cortex-M0+ at 125 MHz, set by `embassy_rp::init`).
//!
//! Runs the blob embedded at build time over its test subset, compares every output with the
//! host's, and logs accuracy, time per inference and the stack's high-water mark over
//! defmt/RTT; `probe-rs run` prints the log and ends with the firmware's exit status. The M0+
//! has no cycle counter: inferences are timed with the RP2040's 1 MHz timer.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_rtt as _;
use embassy_rp::pac::TIMER;
use tinykd_board::{Aligned, Ticks};

mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

/// The system clock `embassy_rp::init` sets up from the 12 MHz crystal.
const CORE_HZ: u32 = 125_000_000;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns `static mut` items of the entry function into `&'static mut`.
    static mut ARENA: Aligned<[u8; models::ARENA_SIZE]> = Aligned([0; models::ARENA_SIZE]);
    let _peripherals = embassy_rp::init(Default::default());
    // The low word of the free-running microsecond timer (wraps after 71 minutes).
    let mut micros = || TIMER.timerawl().read();
    tinykd_board::run_all_and_exit(
        "Raspberry Pi Pico (RP2040)",
        &models::CASES,
        &mut ARENA.0,
        &mut micros,
        Ticks::Micros(CORE_HZ),
    )
}
