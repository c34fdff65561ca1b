//! The on-device accuracy tests' shared half: the embedded models (written by `build.rs`) and
//! [`check`], which runs one of them on this core and compares every output byte with the
//! host's. The tests themselves are in `tests/accuracy.rs`.
#![no_std]

use tinykd_board::{log_report, run_case, Aligned, Case, Report, Stack, Ticks};

mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}
pub use models::{ARENA_SIZE, CASES};

#[cfg(target_arch = "arm")]
use cortex_m as _; // the critical-section implementation
#[cfg(target_arch = "arm")]
use cortex_m_rt as _; // vector table, reset handler → embedded-test's `main`
#[cfg(feature = "hw")]
use defmt_rtt as _; // the defmt logger on a board (probe-rs reads RTT)
#[cfg(target_arch = "riscv32")]
use riscv as _;
#[cfg(target_arch = "riscv32")]
use riscv_rt as _;

/// Index of each built-in model in [`CASES`] (the order of `tinykd_test_models::MODEL_NAMES`).
pub mod case {
    /// The end-to-end CNN: every int8 op kind.
    pub const E2E_CNN: usize = 0;
    /// The Fashion-MNIST-size int8 student.
    pub const INT8_STUDENT: usize = 1;
    /// The binary student.
    pub const BINARY_STUDENT: usize = 2;
    /// `TINYKD_BLOB`, when it was set at build time.
    pub const USER_BLOB: usize = 3;
}

/// Runs case `index` on this core and logs its report (accuracy, time, stack); the report comes
/// back for the test to judge. Panics (fails the test) if the case cannot run at all.
pub fn check(index: usize) -> Report {
    static mut ARENA: Aligned<[u8; ARENA_SIZE]> = Aligned([0; ARENA_SIZE]);
    let case: &Case = &CASES[index];
    let stack = Stack::from_linker();
    stack.paint();
    // SAFETY: every test runs in its own boot and calls `check` once, so this is the only
    // reference to the arena.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    let (mut clock, ticks) = clock();
    let report = match run_case(case, arena, &mut clock) {
        Ok(report) => report,
        Err(_) => panic!("the case could not run"),
    };
    log_report(case.name, &report, ticks, Some(stack.high_water()));
    report
}

/// Runs case `index` ([`check`]) and asserts that every output byte and the number of correct
/// predictions equal the host's.
pub fn assert_identical(index: usize) {
    let report = check(index);
    assert!(report.samples > 0, "no samples embedded");
    assert_eq!(report.mismatches, 0, "outputs differ from the host's");
    assert_eq!(
        report.correct, report.host_correct,
        "accuracy differs from the host's"
    );
}

/// The cycle counter on a board whose core has one; none under QEMU, which does not emulate it.
fn clock() -> (impl FnMut() -> u32, Ticks) {
    #[cfg(all(has_dwt, feature = "hw"))]
    {
        // SAFETY: the tests own the core; nothing else uses DCB or DWT.
        let mut p = unsafe { cortex_m::Peripherals::steal() };
        p.DCB.enable_trace();
        p.DWT.enable_cycle_counter();
        (
            || cortex_m::peripheral::DWT::cycle_count(),
            Ticks::Cycles(0), // the core clock after reset is the board's; 0 = not known here
        )
    }
    #[cfg(not(all(has_dwt, feature = "hw")))]
    {
        (|| 0, Ticks::None)
    }
}
