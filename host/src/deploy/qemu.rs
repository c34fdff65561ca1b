//! The board run: the `boards/qemu-mps2-an386` firmware under `qemu-system-arm`.
//!
//! The blob and the samples go to a fresh scratch folder, the firmware gets their paths through
//! semihosting argv, streams the samples, and writes a `.tko` file that is read back here:
//!
//! ```text
//! b"TKO1" | n: u32 LE | output_len: u32 LE | n × ( class: u32 LE | output_len int8 outputs )
//! ```
//!
//! QEMU always runs under a timeout (a fault loop must never hang a test), its exit status is
//! the firmware's semihosting exit status ([`FirmwareStatus`]), and with the insn-count plugin
//! (`tools/insn-plugin/insncount.c`) the run also yields the exact number of guest instructions
//! executed, which is deterministic from run to run.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{DeployError, Predictions, Result, SampleSet};

/// Magic of the firmware's output file.
const TKO_MAGIC: &[u8; 4] = b"TKO1";
/// Bytes of the output file's header: magic, `n`, `output_len`.
const TKO_HEADER_LEN: usize = 12;

/// How to run the firmware.
#[derive(Clone, Debug)]
pub struct QemuOptions {
    /// The firmware ELF (see [`super::build_firmware`]).
    pub firmware: PathBuf,
    /// The QEMU binary; `qemu-system-arm` on `PATH` by default.
    pub qemu: PathBuf,
    /// Wall-clock limit for one QEMU run; the default (120 s) is far above what a few hundred
    /// samples of a small CNN take (about a second).
    pub timeout: Duration,
    /// The insn-count plugin (`libinsncount.so`); when set, [`QemuRun::insns`] is filled.
    pub insn_plugin: Option<PathBuf>,
    /// Keep the scratch folder (blob, samples, outputs, QEMU log) for inspection instead of
    /// deleting it after the run.
    pub keep_files: bool,
}

impl QemuOptions {
    /// Defaults for `firmware`: `qemu-system-arm` on `PATH`, a 120 s timeout, no plugin.
    pub fn new(firmware: impl Into<PathBuf>) -> Self {
        Self {
            firmware: firmware.into(),
            qemu: PathBuf::from("qemu-system-arm"),
            timeout: Duration::from_secs(120),
            insn_plugin: None,
            keep_files: false,
        }
    }
}

/// The firmware's exit status, as documented in `boards/qemu-mps2-an386/src/main.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirmwareStatus {
    /// 0: every sample ran.
    Ok,
    /// 2: the semihosting argv was not `<blob> <samples> <out>`.
    Usage,
    /// 3: a file could not be opened, read or written.
    Io,
    /// 4: the blob was too large for the firmware or `tinykd-device` rejected it.
    BadBlob,
    /// 5: the sample set was malformed or did not fit the model's input.
    BadSamples,
    /// 6: the arena did not fit or a sample failed to run.
    RunFailed,
    /// 7: the core took a HardFault.
    HardFault,
    /// 101: the firmware panicked.
    Panic,
    /// Any other exit status.
    Other(i32),
}

impl FirmwareStatus {
    /// The meaning of an exit code.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => Self::Ok,
            2 => Self::Usage,
            3 => Self::Io,
            4 => Self::BadBlob,
            5 => Self::BadSamples,
            6 => Self::RunFailed,
            7 => Self::HardFault,
            101 => Self::Panic,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for FirmwareStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Ok => "success",
            Self::Usage => "bad semihosting arguments",
            Self::Io => "semihosting file I/O failed",
            Self::BadBlob => "the firmware rejected the blob",
            Self::BadSamples => "the firmware rejected the sample set",
            Self::RunFailed => "running a sample failed on the board",
            Self::HardFault => "HardFault",
            Self::Panic => "panic",
            Self::Other(_) => "unknown status",
        };
        f.write_str(text)
    }
}

/// What one QEMU run of the firmware produced.
#[derive(Clone, Debug)]
pub struct QemuRun {
    /// The outputs, classes and correct count read back from the firmware.
    pub predictions: Predictions,
    /// Guest instructions executed from reset to exit, when the plugin was given.
    pub insns: Option<u64>,
    /// What the firmware printed (its `samples: N correct: K` line).
    pub stdout: String,
    /// Wall-clock time of the QEMU process.
    pub wall: Duration,
}

/// Runs `blob` over `samples` in the firmware under QEMU, and reads every output back.
///
/// Fails with [`DeployError::QemuMissing`] if QEMU cannot be started, [`DeployError::QemuTimeout`]
/// if it runs past `options.timeout`, [`DeployError::FirmwareFailed`] if the firmware exits with
/// a failure status, and [`DeployError::FirmwareOutput`] if its output file or its summary line
/// is inconsistent with the samples.
pub fn run_blob_qemu(blob: &[u8], samples: &SampleSet, options: &QemuOptions) -> Result<QemuRun> {
    let scratch = Scratch::new(options.keep_files)?;
    let blob_path = scratch.path.join("model.tkd");
    let samples_path = scratch.path.join("samples.tks");
    let out_path = scratch.path.join("out.tko");
    let log_path = scratch.path.join("qemu.log");
    let stdout_path = scratch.path.join("stdout.txt");
    let stderr_path = scratch.path.join("stderr.txt");
    write(&blob_path, blob)?;
    samples.write_tks(&samples_path)?;

    let mut semihosting = String::from("enable=on,target=native");
    for path in [&blob_path, &samples_path, &out_path] {
        semihosting.push_str(",arg=");
        semihosting.push_str(&semihosting_arg(path)?);
    }
    let mut command = Command::new(&options.qemu);
    command
        .args(["-machine", "mps2-an386", "-cpu", "cortex-m4"])
        .args(["-nographic", "-monitor", "none", "-serial", "none"])
        .arg("-semihosting-config")
        .arg(&semihosting);
    if let Some(plugin) = &options.insn_plugin {
        command
            .arg("-plugin")
            .arg(plugin)
            .args(["-d", "plugin", "-D"])
            .arg(&log_path);
    }
    command
        .arg("-kernel")
        .arg(&options.firmware)
        .stdin(Stdio::null())
        .stdout(create(&stdout_path)?)
        .stderr(create(&stderr_path)?);

    let started = Instant::now();
    let mut child = command.spawn().map_err(|source| DeployError::QemuMissing {
        qemu: options.qemu.clone(),
        source,
    })?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= options.timeout => {
                // Kill errors mean it already exited; the wait below reaps it either way.
                let _ = child.kill();
                let _ = child.wait();
                return Err(DeployError::QemuTimeout {
                    seconds: options.timeout.as_secs(),
                    stderr: read_text(&stderr_path),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                let _ = child.kill();
                return Err(DeployError::Io {
                    path: options.qemu.clone(),
                    source,
                });
            }
        }
    };
    let wall = started.elapsed();
    let stdout = read_text(&stdout_path);
    match status.code() {
        Some(0) => {}
        code => {
            return Err(DeployError::FirmwareFailed {
                status: code.map_or(FirmwareStatus::Other(-1), FirmwareStatus::from_code),
                code,
                stderr: read_text(&stderr_path),
            })
        }
    }

    let out = fs::read(&out_path).map_err(|source| DeployError::Io {
        path: out_path.clone(),
        source,
    })?;
    let predictions = parse_tko(&out, samples)?;
    check_summary(&stdout, &predictions)?;
    let insns = match &options.insn_plugin {
        Some(_) => Some(parse_insns(&log_path)?),
        None => None,
    };
    Ok(QemuRun {
        predictions,
        insns,
        stdout,
        wall,
    })
}

/// Instructions per inference, measured as the difference of two deterministic runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstructionCount {
    /// Samples in the measured run.
    pub samples: usize,
    /// Instructions of the run over all samples.
    pub with_samples: u64,
    /// Instructions of the same run over an empty sample set (boot, blob load, exit).
    pub without_samples: u64,
}

impl InstructionCount {
    /// `(with_samples − without_samples) / samples`: one inference, plus streaming its input in
    /// and its output out through semihosting (a few dozen instructions).
    pub fn per_inference(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        self.with_samples.saturating_sub(self.without_samples) as f64 / self.samples as f64
    }
}

/// Counts the guest instructions one inference takes on the Cortex-M4 in QEMU.
///
/// Runs the firmware twice with the insn-count plugin (`options.insn_plugin` must be set): over
/// `samples` and over an empty set, and reports both totals; the difference divided by the
/// sample count is exact and the same on every run. Returns the full run too, so that a caller
/// can check its predictions.
pub fn count_instructions(
    blob: &[u8],
    samples: &SampleSet,
    options: &QemuOptions,
) -> Result<(InstructionCount, QemuRun)> {
    if options.insn_plugin.is_none() {
        return Err(DeployError::Options(
            "count_instructions needs QemuOptions::insn_plugin".to_string(),
        ));
    }
    let full = run_blob_qemu(blob, samples, options)?;
    let empty = run_blob_qemu(blob, &SampleSet::empty(samples.sample_len())?, options)?;
    let count = InstructionCount {
        samples: samples.len(),
        with_samples: full.insns.unwrap_or(0),
        without_samples: empty.insns.unwrap_or(0),
    };
    Ok((count, full))
}

/// Parses the firmware's `.tko` output and checks it against the samples it was given.
fn parse_tko(bytes: &[u8], samples: &SampleSet) -> Result<Predictions> {
    let bad = |why: String| DeployError::FirmwareOutput(why);
    let header = bytes
        .get(..TKO_HEADER_LEN)
        .ok_or_else(|| bad(format!("the output file has only {} bytes", bytes.len())))?;
    if &header[..4] != TKO_MAGIC {
        return Err(bad("the output file does not start with TKO1".to_string()));
    }
    let n = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let output_len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    if n != samples.len() {
        return Err(bad(format!(
            "the firmware reports {n} samples, {} were sent",
            samples.len()
        )));
    }
    let record = output_len + 4;
    let body = &bytes[TKO_HEADER_LEN..];
    if Some(body.len()) != n.checked_mul(record) {
        return Err(bad(format!(
            "{n} records of {record} bytes expected, the output has {} bytes",
            body.len()
        )));
    }
    let mut predictions = Predictions {
        output_len,
        outputs: Vec::with_capacity(n * output_len),
        classes: Vec::with_capacity(n),
        correct: 0,
    };
    for (chunk, &label) in body.chunks_exact(record).zip(samples.labels()) {
        let class = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        predictions
            .outputs
            .extend(chunk[4..].iter().map(|&b| b as i8));
        predictions.classes.push(class);
        if class == usize::from(label) {
            predictions.correct += 1;
        }
    }
    Ok(predictions)
}

/// Checks the firmware's `samples: N correct: K` line against what its output file says.
fn check_summary(stdout: &str, predictions: &Predictions) -> Result<()> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("samples: "))
        .ok_or_else(|| {
            DeployError::FirmwareOutput(format!("no `samples:` line in stdout {stdout:?}"))
        })?;
    let expected = format!(
        "samples: {} correct: {}",
        predictions.len(),
        predictions.correct
    );
    if line.trim_end() != expected {
        return Err(DeployError::FirmwareOutput(format!(
            "the firmware printed {line:?}, its output file says {expected:?}"
        )));
    }
    Ok(())
}

/// Reads the plugin's `insns: N` line from the QEMU log.
fn parse_insns(log: &Path) -> Result<u64> {
    read_text(log)
        .lines()
        .find_map(|l| l.strip_prefix("insns: ")?.trim().parse().ok())
        .ok_or_else(|| DeployError::NoInstructionCount {
            log: log.to_path_buf(),
        })
}

/// A path as one semihosting `arg=` item: absolute (QEMU opens it relative to its own working
/// directory), without blanks (the firmware splits argv on them), commas doubled (QEMU's
/// option syntax).
fn semihosting_arg(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| DeployError::Options(format!("{} is not UTF-8", path.display())))?;
    if text.contains(char::is_whitespace) {
        return Err(DeployError::Options(format!(
            "semihosting paths cannot contain blanks: {text:?} (set TMPDIR to a folder without)"
        )));
    }
    Ok(text.replace(',', ",,"))
}

/// A fresh scratch folder under the system temp dir, removed on drop unless kept.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn new(keep: bool) -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "tinykd-qemu-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        // A folder left by an earlier process with the same pid is stale.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(|source| DeployError::Io {
            path: path.clone(),
            source,
        })?;
        let path = path.canonicalize().map_err(|source| DeployError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path, keep })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept QEMU run files in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|source| DeployError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn create(path: &Path) -> Result<fs::File> {
    fs::File::create(path).map_err(|source| DeployError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A text file's content, or an empty string if it cannot be read (for diagnostics only).
fn read_text(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tko(n: u32, output_len: u32, records: &[(u32, &[i8])]) -> Vec<u8> {
        let mut bytes = b"TKO1".to_vec();
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes.extend_from_slice(&output_len.to_le_bytes());
        for (class, out) in records {
            bytes.extend_from_slice(&class.to_le_bytes());
            bytes.extend(out.iter().map(|&v| v as u8));
        }
        bytes
    }

    #[test]
    fn tko_is_parsed_and_scored_against_the_labels() {
        let samples = SampleSet::new(1, vec![0, 0], vec![1, 0]).unwrap();
        let bytes = tko(2, 2, &[(1, &[-5, 7]), (1, &[3, 4])]);
        let p = parse_tko(&bytes, &samples).unwrap();
        assert_eq!(p.output_len, 2);
        assert_eq!(p.outputs, vec![-5, 7, 3, 4]);
        assert_eq!(p.classes, vec![1, 1]);
        assert_eq!(p.correct, 1);
        check_summary("samples: 2 correct: 1\n", &p).unwrap();
        assert!(check_summary("samples: 2 correct: 2\n", &p).is_err());
        assert!(check_summary("", &p).is_err());
    }

    #[test]
    fn inconsistent_tko_is_refused() {
        let samples = SampleSet::new(1, vec![0, 0], vec![1, 0]).unwrap();
        let good = tko(2, 2, &[(1, &[-5, 7]), (1, &[3, 4])]);
        for len in 0..good.len() {
            assert!(
                parse_tko(&good[..len], &samples).is_err(),
                "truncated at {len}"
            );
        }
        assert!(parse_tko(&tko(1, 2, &[(1, &[-5, 7])]), &samples).is_err());
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(parse_tko(&magic, &samples).is_err());
    }

    #[test]
    fn semihosting_args_escape_commas_and_refuse_blanks() {
        assert_eq!(semihosting_arg(Path::new("/a,b/c")).unwrap(), "/a,,b/c");
        assert!(semihosting_arg(Path::new("/a b/c")).is_err());
    }

    #[test]
    fn status_codes_map_to_their_meaning() {
        assert_eq!(FirmwareStatus::from_code(4), FirmwareStatus::BadBlob);
        assert_eq!(FirmwareStatus::from_code(101), FirmwareStatus::Panic);
        assert_eq!(FirmwareStatus::from_code(9), FirmwareStatus::Other(9));
    }

    #[test]
    fn missing_qemu_is_a_clear_error() {
        let samples = SampleSet::new(1, vec![0], vec![0]).unwrap();
        let mut options = QemuOptions::new("/nonexistent/firmware.elf");
        options.qemu = PathBuf::from("/nonexistent/qemu-system-arm");
        let err = run_blob_qemu(&[], &samples, &options).unwrap_err();
        assert!(matches!(err, DeployError::QemuMissing { .. }), "{err}");
        assert!(err.to_string().contains("install QEMU"), "{err}");
    }

    #[test]
    fn per_inference_is_the_difference_over_the_samples() {
        let c = InstructionCount {
            samples: 4,
            with_samples: 1400,
            without_samples: 200,
        };
        assert_eq!(c.per_inference(), 300.0);
    }
}
