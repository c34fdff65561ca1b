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
    /// Sensor students (HAPT): also write the start of a test subject's recording, raw readings
    /// of the student's channels with per-step labels, as a `.tkr` file to replay through the
    /// device's streaming API (`TINYKD_STREAM`, docs/sensor-nodes.md).
    #[arg(long, value_name = "FILE")]
    pub recording: Option<PathBuf>,
    /// Steps of the recording (default 3264: 50 windows of 128 with a hop of 64).
    #[arg(long, value_name = "N", default_value_t = 3264)]
    pub recording_steps: usize,
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
        if let Some(path) = &self.recording {
            let steps = write_recording(&self.run, path, self.recording_steps)?;
            println!("wrote {}: {steps} steps", path.display());
        }
        Ok(())
    }
}

/// Writes the `.tkr` recording of `run`'s student channels; returns the number of steps.
fn write_recording(
    run: &std::path::Path,
    path: &std::path::Path,
    steps: usize,
) -> Result<usize, CliError> {
    let config = crate::config::RunConfig::from_run_dir(run)?;
    let crate::config::ModelSpec::Student(student) = &config.model else {
        return Err(CliError::Usage("only students are exported".into()));
    };
    let channels = student
        .channel_indices()
        .map_err(|e| CliError::Usage(e.to_string()))?
        .unwrap_or_else(|| (0..student.in_channels).collect());
    let (values, labels) = crate::train::run::test_recording(&config.data, &channels, steps)?;
    let bytes = tinykd_format::recording::encode(channels.len() as u32, &values, &labels)
        .ok_or_else(|| CliError::Usage("the recording is too long for a .tkr file".into()))?;
    std::fs::write(path, bytes).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    Ok(labels.len())
}
