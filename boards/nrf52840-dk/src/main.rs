//! tinykd on the nRF52840-DK (Cortex-M4F at 64 MHz from the external crystal).
//!
//! Runs the blob embedded at build time over its test subset, compares every output with the
//! host's, and logs accuracy, cycles per inference (DWT) and the stack's high-water mark over
//! defmt/RTT; `probe-rs run` prints the log and ends with the firmware's exit status.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use embassy_nrf::config::{Config, HfclkSource};
use tinykd_board::{Aligned, Ticks};

mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

/// HFCLK from the 32 MHz crystal: the core runs at 64 MHz.
const CORE_HZ: u32 = 64_000_000;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns `static mut` items of the entry function into `&'static mut`.
    static mut ARENA: Aligned<[u8; models::ARENA_SIZE]> = Aligned([0; models::ARENA_SIZE]);
    let mut config = Config::default();
    config.hfclk_source = HfclkSource::ExternalXtal;
    let _peripherals = embassy_nrf::init(config);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    tinykd_board::run_all_and_exit(
        "nRF52840-DK",
        &models::CASES,
        &mut ARENA.0,
        &mut DWT::cycle_count,
        Ticks::Cycles(CORE_HZ),
    )
}
