//! Running a blob where it will be deployed: on this machine through `tinykd-device`, and on an
//! emulated Cortex-M4F board (QEMU `mps2-an386`) through the firmware in
//! `boards/qemu-mps2-an386/`.
//!
//! Both paths take the same blob and the same [`SampleSet`] and return the same
//! [`Predictions`]: every sample's int8 output bytes, its predicted class and the number of
//! correct predictions. The promise of tinykd is that the two are identical, byte for byte,
//! and the end-to-end test (`tests/tests/qemu_e2e.rs`) checks exactly that.
//!
//! ```no_run
//! use std::path::Path;
//! use tinykd::deploy::{build_firmware, run_blob_host, run_blob_qemu, QemuOptions, SampleSet};
//!
//! # fn main() -> Result<(), tinykd::deploy::DeployError> {
//! let blob = std::fs::read("model.tkd").unwrap();
//! let samples = SampleSet::read_tks(Path::new("test.tks"))?;
//! let host = run_blob_host(&blob, &samples)?;
//! let firmware = build_firmware(Path::new("boards/qemu-mps2-an386"))?;
//! let board = run_blob_qemu(&blob, &samples, &QemuOptions::new(firmware))?;
//! assert_eq!(host, board.predictions);
//! println!("{} / {} correct", host.correct, host.len());
//! # Ok(())
//! # }
//! ```
//!
//! Why the board run goes through files and semihosting rather than a serial link: QEMU's
//! semihosting gives the firmware the host's file system, so the same firmware runs any blob
//! over any sample set without being rebuilt, and the output comes back exactly, as bytes.

mod firmware;
mod host_run;
mod qemu;
mod samples;

use std::path::PathBuf;

pub use firmware::build_firmware;
pub use host_run::run_blob_host;
pub use qemu::{
    count_instructions, run_blob_qemu, FirmwareStatus, InstructionCount, QemuOptions, QemuRun,
};
pub use samples::SampleSet;

/// Everything that can go wrong while running a blob on the host or on the emulated board.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// A sample set's shape is inconsistent (lengths that do not add up).
    #[error("bad sample set: {0}")]
    SamplesBadShape(String),
    /// A `.tks` file is malformed.
    #[error("bad .tks file: {0}")]
    SamplesBadFile(#[source] tinykd_format::Error),
    /// `tinykd-device` refused the blob.
    #[error("tinykd-device rejected the blob: {0}")]
    BlobRejected(#[source] tinykd_device::Error),
    /// The samples do not have the model's input length.
    #[error("the samples have {sample_len} values but the model takes {input_len}")]
    InputLenMismatch {
        /// Values per sample in the set.
        sample_len: usize,
        /// Values the model's input tensor holds.
        input_len: usize,
    },
    /// `tinykd-device` failed while running one sample.
    #[error("running sample {index} failed: {source}")]
    RunFailed {
        /// Index of the sample in the set.
        index: usize,
        /// The device's error.
        #[source]
        source: tinykd_device::Error,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The QEMU binary could not be started.
    #[error(
        "cannot start {}: {source}; install QEMU 10 for Arm \
         (`apt-get install -t bookworm-backports qemu-system-arm`, see docs/testing.md)",
        qemu.display()
    )]
    QemuMissing {
        /// The binary that was tried.
        qemu: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The firmware ran longer than the timeout and was killed.
    #[error("QEMU did not finish within {seconds} s and was killed; stderr:\n{stderr}")]
    QemuTimeout {
        /// The timeout that expired.
        seconds: u64,
        /// What QEMU and the firmware wrote on stderr.
        stderr: String,
    },
    /// The firmware exited with a failure status.
    #[error("the firmware failed: {status} (exit code {code:?}); stderr:\n{stderr}")]
    FirmwareFailed {
        /// The meaning of the exit status.
        status: FirmwareStatus,
        /// QEMU's exit code (`None` if it was killed by a signal).
        code: Option<i32>,
        /// What QEMU and the firmware wrote on stderr.
        stderr: String,
    },
    /// The firmware's output file or its summary line is not what the firmware writes.
    #[error("unexpected firmware output: {0}")]
    FirmwareOutput(String),
    /// The options cannot work (a missing plugin path, a scratch path QEMU cannot pass on).
    #[error("bad QEMU options: {0}")]
    Options(String),
    /// The insn-count plugin was requested but printed no count.
    #[error("the instruction-count plugin printed no `insns:` line in {}", log.display())]
    NoInstructionCount {
        /// The QEMU log that was searched.
        log: PathBuf,
    },
    /// Building the firmware with cargo failed.
    #[error("building the firmware in {} failed: {message}", board.display())]
    FirmwareBuild {
        /// The board crate's folder.
        board: PathBuf,
        /// cargo's diagnostics, or why cargo could not run.
        message: String,
    },
}

/// Shorthand for this module's results.
pub type Result<T, E = DeployError> = std::result::Result<T, E>;

/// The outcome of running a blob over a [`SampleSet`], on the host or on a board.
///
/// Two runs are equal exactly when every output byte, every predicted class and the correct
/// count agree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Predictions {
    /// int8 values in one output.
    pub output_len: usize,
    /// The outputs of every sample, laid end to end (`len() × output_len` values).
    pub outputs: Vec<i8>,
    /// The predicted class of every sample: the index of its largest output (first one on ties).
    pub classes: Vec<usize>,
    /// How many predicted classes equal the sample's label.
    pub correct: usize,
}

impl Predictions {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The output of sample `i`, or `None` past the end.
    pub fn output(&self, i: usize) -> Option<&[i8]> {
        let start = i.checked_mul(self.output_len)?;
        self.outputs.get(start..start.checked_add(self.output_len)?)
    }

    /// Fraction of correct predictions (0 for an empty run).
    pub fn accuracy(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.correct as f64 / self.len() as f64
        }
    }

    /// The first sample whose output bytes or class differ from `other`'s, if any; a length
    /// difference counts as a difference at the shorter length. For error messages.
    pub fn first_difference(&self, other: &Predictions) -> Option<usize> {
        let n = self.len().min(other.len());
        (0..n)
            .find(|&i| self.classes[i] != other.classes[i] || self.output(i) != other.output(i))
            .or((self.len() != other.len() || self.output_len != other.output_len).then_some(n))
    }
}
