//! `tinykd export`: a quantized student run → a `.tkd` blob (and its quantized test set).

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::export::export_run;

/// Arguments of `tinykd export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The quantized student's run directory (from `tinykd quantize`).
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// Blob file to write (default `<RUN>/student.tkd`).
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the test split, quantized for the blob, as a `.tks` sample set (default
    /// `<RUN>/test.tks`; `--no-test-set` to skip).
    #[arg(long, value_name = "FILE")]
    pub test_set: Option<PathBuf>,
    /// Do not write a test set.
    #[arg(long, conflicts_with = "test_set")]
    pub no_test_set: bool,
    /// Only the first N test images in the test set.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl ExportArgs {
    /// Runs `tinykd export`.
    ///
    /// # Errors
    /// [`crate::export::ExportRunError`], naming the layer the device cannot run.
    pub fn run(self) -> Result<(), CliError> {
        let blob = self.out.unwrap_or_else(|| self.run.join("student.tkd"));
        let tks =
            (!self.no_test_set).then(|| self.test_set.unwrap_or_else(|| self.run.join("test.tks")));
        let report = export_run(&self.run, &blob, tks.as_deref().map(|p| (p, self.limit)))
            .map_err(|e| CliError::Usage(e.to_string()))?;
        println!(
            "wrote {}: blob {} bytes, arena {} bytes",
            report.blob_path.display(),
            report.summary.blob_bytes,
            report.summary.arena_bytes
        );
        if let Some(t) = report.test_set {
            println!("wrote {}", t.display());
        }
        Ok(())
    }
}
