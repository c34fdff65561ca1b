//! # tinykd-board
//!
//! What every tinykd firmware shares, so that a board crate holds only its HAL set-up:
//!
//! - [`Case`]: a blob, a test subset and the host's outputs for it, all in flash. The firmware's
//!   `build.rs` (crate `tinykd-board-build`) writes them: the blob from `TINYKD_BLOB` or a
//!   built-in test model, the outputs from `tinykd-device` run on the host, the oracle;
//! - [`run_case`]: runs every sample on the board, compares each output byte with the host's,
//!   counts correct predictions and times every inference with the board's clock;
//! - [`Stack`]: paints the stack before the run and finds its high-water mark after;
//! - [`log_report`]: the report, through defmt (feature `defmt`, real boards) or as text
//!   through semihosting (feature `semihosting`, QEMU).
//!
//! The same code runs in the on-device tests (`boards/ondevice-tests`) under QEMU and on a
//! board through `probe-rs`.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

#[cfg(target_os = "none")]
mod stack;
#[cfg(target_os = "none")]
pub use stack::Stack;

#[cfg(feature = "panic-exit")]
mod panic;

use tinykd_device::Model;

/// One embedded test: a blob, its test subset and what the host computed for it.
#[derive(Clone, Copy)]
pub struct Case {
    /// The model's name (a built-in test model, or the blob's file name).
    pub name: &'static str,
    /// The blob (`.tkd` bytes), 8-byte aligned in flash.
    pub blob: &'static [u8],
    /// The inputs, laid end to end (`samples × input_len` int8 values, as bytes).
    pub inputs: &'static [u8],
    /// One label per sample.
    pub labels: &'static [u8],
    /// The host's output of every sample (`tinykd-device` on the build machine), end to end,
    /// as bytes.
    pub expected: &'static [u8],
    /// How many of the host's predicted classes equal the labels.
    pub host_correct: u32,
    /// Multiply-accumulates per inference (int8 and binary), for the per-MAC figures.
    pub macs: u64,
}

impl Case {
    /// Number of samples.
    pub const fn samples(&self) -> usize {
        self.labels.len()
    }
}

/// The outcome of [`run_case`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// Samples run.
    pub samples: u32,
    /// Samples whose predicted class equals the label, on the board.
    pub correct: u32,
    /// The same count on the host.
    pub host_correct: u32,
    /// Samples with at least one output byte different from the host's.
    pub mismatches: u32,
    /// The first such sample.
    pub first_mismatch: Option<u32>,
    /// Clock ticks of all inferences together (0 when the board has no clock).
    pub ticks: u64,
    /// Fewest ticks of one inference.
    pub min_ticks: u32,
    /// Bytes of the blob.
    pub blob_len: u32,
    /// Bytes of arena the blob asks for.
    pub arena_len: u32,
    /// Multiply-accumulates per inference.
    pub macs: u64,
}

impl Report {
    /// Whether every output byte equals the host's.
    pub const fn identical(&self) -> bool {
        self.mismatches == 0
    }

    /// Mean ticks per inference.
    pub const fn ticks_per_inference(&self) -> u64 {
        match self.samples {
            0 => 0,
            n => self.ticks / n as u64,
        }
    }
}

/// Why a case could not run at all (a wrong output is a mismatch in the [`Report`], not this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CaseError {
    /// `tinykd-device` refused the blob.
    BlobRejected(tinykd_device::Error),
    /// The blob's arena is larger than the firmware's (the build script sizes it from the
    /// blobs it embeds, so this means the firmware and the case come from different builds).
    ArenaTooSmall {
        /// Bytes the blob asks for.
        needed: u32,
        /// Bytes the firmware has.
        have: u32,
    },
    /// The embedded inputs or outputs do not have the model's lengths.
    BadCase,
    /// Running a sample failed.
    RunFailed(tinykd_device::Error),
}

/// Runs every sample of `case` with `tinykd-device`, compares each output with the host's and
/// times each inference with `clock` (a free-running up-counter: cycles, or microseconds on a
/// core without a cycle counter; return 0 when there is none).
pub fn run_case(
    case: &Case,
    arena: &mut [u8],
    clock: &mut dyn FnMut() -> u32,
) -> Result<Report, CaseError> {
    let model = Model::from_bytes(case.blob).map_err(CaseError::BlobRejected)?;
    let (input_len, output_len) = (model.input_len(), model.output_len());
    let n = case.samples();
    let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    if model.arena_size() > arena.len() {
        return Err(CaseError::ArenaTooSmall {
            needed: to_u32(model.arena_size()),
            have: to_u32(arena.len()),
        });
    }
    if input_len == 0
        || output_len == 0
        || Some(case.inputs.len()) != n.checked_mul(input_len)
        || Some(case.expected.len()) != n.checked_mul(output_len)
    {
        return Err(CaseError::BadCase);
    }
    let mut report = Report {
        samples: to_u32(n),
        host_correct: case.host_correct,
        min_ticks: u32::MAX,
        blob_len: to_u32(case.blob.len()),
        arena_len: to_u32(model.arena_size()),
        macs: case.macs,
        ..Report::default()
    };
    let samples = tinykd_format::bytes_as_i8(case.inputs)
        .chunks_exact(input_len)
        .zip(tinykd_format::bytes_as_i8(case.expected).chunks_exact(output_len))
        .zip(case.labels);
    for (i, ((input, expected), &label)) in samples.enumerate() {
        let start = clock();
        let output = model.run(input, arena).map_err(CaseError::RunFailed)?;
        let ticks = clock().wrapping_sub(start);
        report.ticks += u64::from(ticks);
        report.min_ticks = report.min_ticks.min(ticks);
        if tinykd_device::argmax(output) == usize::from(label) {
            report.correct += 1;
        }
        if output != expected {
            report.mismatches += 1;
            report.first_mismatch = report.first_mismatch.or(Some(to_u32(i)));
        }
    }
    if n == 0 {
        report.min_ticks = 0;
    }
    Ok(report)
}

/// What the clock of [`run_case`] counts, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Ticks {
    /// Core clock cycles (DWT `CYCCNT`), at this many Hz.
    Cycles(u32),
    /// Microseconds of a timer (the RP2040's and ESP32-C3's), the core running at this many Hz.
    Micros(u32),
    /// No clock (under QEMU: DWT is not emulated; count instructions with the plugin instead).
    None,
}

/// Logs one case's report: samples, accuracy on the board and on the host, whether every output
/// byte is identical, time per inference, blob / arena / stack bytes.
#[allow(unused_variables)]
pub fn log_report(name: &str, report: &Report, ticks: Ticks, stack_used: Option<usize>) {
    let per = report.ticks_per_inference();
    // Per-mille accuracies: integer arithmetic only, the same text on every core.
    let permille = |k: u32| match report.samples {
        0 => 0,
        n => u64::from(k) * 1000 / u64::from(n),
    };
    let (acc, host_acc) = (permille(report.correct), permille(report.host_correct));
    let (unit, hz) = match ticks {
        Ticks::Cycles(hz) => ("cycles", hz),
        Ticks::Micros(hz) => ("us", hz),
        Ticks::None => ("ticks (no clock)", 0),
    };
    let stack = stack_used.unwrap_or(0);
    #[cfg(feature = "defmt")]
    {
        defmt::info!(
            "{}: {} samples, {} correct ({}.{}%), host {} correct ({}.{}%), outputs identical to the host: {} (mismatches {}, first {})",
            name, report.samples, report.correct, acc / 10, acc % 10, report.host_correct,
            host_acc / 10, host_acc % 10, report.identical(), report.mismatches, report.first_mismatch
        );
        defmt::info!(
            "{}: {} {} per inference (min {}), core {} Hz, {} MACs; blob {} B, arena {} B, stack high-water {} B",
            name, per, unit, report.min_ticks, hz, report.macs, report.blob_len, report.arena_len, stack
        );
    }
    #[cfg(feature = "semihosting")]
    {
        semihosting::println!(
            "{}: {} samples, {} correct ({}.{}%), host {} correct ({}.{}%), outputs identical to the host: {} (mismatches {}, first {:?})",
            name, report.samples, report.correct, acc / 10, acc % 10, report.host_correct,
            host_acc / 10, host_acc % 10, report.identical(), report.mismatches, report.first_mismatch
        );
        semihosting::println!(
            "{}: {} {} per inference (min {}), core {} Hz, {} MACs; blob {} B, arena {} B, stack high-water {} B",
            name, per, unit, report.min_ticks, hz, report.macs, report.blob_len, report.arena_len, stack
        );
    }
}

/// A board firmware's whole run: paints the stack, runs every case ([`run_case`]), logs each
/// report ([`log_report`]) with the stack's high-water mark, and exits through semihosting with
/// status 0 when every output byte of every case equals the host's, 1 otherwise (2 when a case
/// could not run). `probe-rs run` ends with that status; without a debugger the core stops.
#[cfg(all(target_os = "none", feature = "semihosting"))]
pub fn run_all_and_exit(
    board: &str,
    cases: &[Case],
    arena: &mut [u8],
    clock: &mut dyn FnMut() -> u32,
    ticks: Ticks,
) -> ! {
    let stack = Stack::from_linker();
    stack.paint();
    #[cfg(feature = "defmt")]
    defmt::info!(
        "tinykd on {}: {} model(s), arena {} B, stack {} B",
        board,
        cases.len(),
        arena.len(),
        stack.size()
    );
    #[cfg(not(feature = "defmt"))]
    semihosting::println!(
        "tinykd on {}: {} model(s), arena {} B, stack {} B",
        board,
        cases.len(),
        arena.len(),
        stack.size()
    );
    let mut status = 0;
    for case in cases {
        match run_case(case, arena, clock) {
            Ok(report) => {
                log_report(case.name, &report, ticks, Some(stack.high_water()));
                if !report.identical() {
                    status = 1;
                }
            }
            Err(_e) => {
                #[cfg(feature = "defmt")]
                defmt::error!("{}: cannot run: {}", case.name, _e);
                status = 2;
            }
        }
    }
    semihosting::process::exit(status)
}

/// An 8-byte aligned wrapper, for blobs in flash and arenas in RAM: blob weights and the arena
/// are borrowed in place, and an aligned base keeps every offset the exporter aligned also
/// aligned in memory. `build.rs` wraps each embedded blob in it.
#[repr(C, align(8))]
pub struct Aligned<T: ?Sized>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_blob_is_an_error_not_a_panic() {
        let case = Case {
            name: "broken",
            blob: b"not a blob",
            inputs: &[],
            labels: &[],
            expected: &[],
            host_correct: 0,
            macs: 0,
        };
        let mut arena = [0u8; 16];
        assert!(matches!(
            run_case(&case, &mut arena, &mut || 0),
            Err(CaseError::BlobRejected(_))
        ));
    }

    #[test]
    fn reports_divide_safely() {
        let report = Report::default();
        assert_eq!(report.ticks_per_inference(), 0);
        assert!(report.identical());
    }
}
