//! `tinykd quantize`: a trained student → an int8-ready student (calibration, optionally QAT).

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::quant::{quantize_run, QuantizeOptions};

/// Arguments of `tinykd quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The trained student's run directory (from `tinykd train` or `tinykd distill`).
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub student: Option<PathBuf>,
    /// Run directory to create for the quantized student.
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted QAT run in DIR.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "student"])]
    pub resume: Option<PathBuf>,
    /// Quantization-aware training epochs (0: post-training quantization only).
    #[arg(long, default_value_t = 2)]
    pub qat_epochs: usize,
    /// Training batches used to calibrate activation ranges.
    #[arg(long, default_value_t = 16)]
    pub calibration_batches: usize,
    /// QAT learning rate as a fraction of the student run's.
    #[arg(long, default_value_t = 0.1)]
    pub lr_scale: f64,
    /// Override a key of the QAT run's configuration (repeatable), e.g. `--set data.train_limit=1000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl QuantizeArgs {
    /// Runs `tinykd quantize`.
    ///
    /// # Errors
    /// A missing or non-student run, data and training errors.
    pub fn run(self) -> Result<(), CliError> {
        let options = QuantizeOptions {
            qat_epochs: self.qat_epochs,
            calibration_batches: self.calibration_batches,
            lr_scale: self.lr_scale,
            overrides: self.overrides,
        };
        let report = match (self.resume, self.student, self.out) {
            (Some(dir), _, _) => quantize_run(&dir.clone(), &dir, &options, true)?,
            (None, Some(student), Some(out)) => quantize_run(&student, &out, &options, false)?,
            _ => {
                return Err(CliError::Usage(
                    "give --student DIR and --out DIR, or --resume DIR".into(),
                ))
            }
        };
        println!(
            "quantized student in {}: int8-simulated test accuracy {:.2}%",
            report.run_dir.display(),
            100.0 * report.simulated_accuracy
        );
        Ok(())
    }
}
