//! tinykd on the NUCLEO-L4R5ZI (STM32L4R5ZI: Cortex-M4F, here at 80 MHz from HSI16 through the
//! PLL), the board of MLPerf Tiny's STM32 results.
//!
//! Runs the blob embedded at build time over its test subset, compares every output with the
//! host's, and logs accuracy, cycles per inference (DWT) and the stack's high-water mark over
//! defmt/RTT; `probe-rs run` prints the log and ends with the firmware's exit status.
//!
//! 80 MHz, not the part's 120 MHz: above 80 MHz the L4+ needs the voltage regulator's boost
//! mode and 5 flash wait states, which embassy-stm32 0.6 does not set up for this family.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use embassy_stm32::rcc::{Pll, PllMul, PllPreDiv, PllRDiv, PllSource, Sysclk};
use tinykd_board::{Aligned, Ticks};

mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

/// HSI16 / 1 × 10 / 2.
const CORE_HZ: u32 = 80_000_000;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns `static mut` items of the entry function into `&'static mut`.
    static mut ARENA: Aligned<[u8; models::ARENA_SIZE]> = Aligned([0; models::ARENA_SIZE]);
    let mut config = embassy_stm32::Config::default();
    config.rcc.hsi = true;
    config.rcc.pll = Some(Pll {
        source: PllSource::HSI,
        prediv: PllPreDiv::DIV1,
        mul: PllMul::MUL10,
        divp: None,
        divq: None,
        divr: Some(PllRDiv::DIV2),
    });
    config.rcc.sys = Sysclk::PLL1_R;
    let _peripherals = embassy_stm32::init(config);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    tinykd_board::run_all_and_exit(
        "NUCLEO-L4R5ZI (STM32L4R5ZI)",
        &models::CASES,
        &mut ARENA.0,
        &mut DWT::cycle_count,
        Ticks::Cycles(CORE_HZ),
    )
}
