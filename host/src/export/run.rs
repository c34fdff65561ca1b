//! `tinykd export` as a library function: a quantized student run → a blob and a test set.

use std::path::{Path, PathBuf};

use super::{export_student, quantize_inputs, summarize, BlobSummary, ExportError};
use crate::config::{ModelSpec, RunConfig};
use crate::data::Split;
use crate::deploy::{DeployError, SampleSet};
use crate::models::student::select_channels;
use crate::quant::{read_quant, Quant};
use crate::train::run::{channel_stats, device_of, eval_loader, load_split};
use crate::train::{load_model, RunError, RunModel};

/// Why exporting a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportRunError {
    /// The run could not be loaded.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The student cannot be lowered to a blob.
    #[error("export of {}: {source}", run.display())]
    Export {
        /// The run directory.
        run: PathBuf,
        /// What is wrong.
        source: ExportError,
    },
    /// The blob the exporter wrote does not load on the device runtime (a bug in tinykd).
    #[error("the exported blob does not load: {0}")]
    Invalid(tinykd_device::Error),
    /// The test set could not be built or written.
    #[error(transparent)]
    Samples(#[from] DeployError),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What [`export_run`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The blob file.
    pub blob_path: PathBuf,
    /// Blob and arena sizes.
    pub summary: BlobSummary,
    /// The test set file, when one was requested.
    pub test_set: Option<PathBuf>,
}

/// Exports the quantized student of `run_dir` (from [`crate::quant::quantize_run`]) to `blob_path`,
/// and, with `test_set`, writes the run's test split (first `limit` images) quantized with the
/// blob's input quantization as a `.tks` sample set.
///
/// # Errors
/// [`ExportRunError`], naming the layer when the device cannot run the student.
pub fn export_run(
    run_dir: &Path,
    blob_path: &Path,
    test_set: Option<(&Path, Option<usize>)>,
) -> Result<ExportReport, ExportRunError> {
    let config = RunConfig::from_run_dir(run_dir).map_err(RunError::from)?;
    if config.data.dataset.is_regression() {
        return Err(RunError::Run {
            dir: run_dir.to_path_buf(),
            reason: crate::quant::REGRESSION_NOT_DEPLOYED.into(),
        }
        .into());
    }
    let device = device_of(&config)?;
    let (model, config) = load_model(run_dir, &device)?;
    let RunModel::Student(student) = model else {
        return Err(RunError::Run {
            dir: run_dir.to_path_buf(),
            reason: "only students can be exported".into(),
        }
        .into());
    };
    let quant = read_quant(run_dir)?;
    let name = run_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("student");
    // Sensor students carry the normalization of their channels, so a node can push raw
    // readings (tinykd_device::stream).
    let input_norm = channel_stats(&config.data)?.map(|all| match &student.input_select {
        Some(keep) => keep.iter().filter_map(|&c| all.get(c).copied()).collect(),
        None => all,
    });
    let blob = export_student(&student, &quant, name, input_norm.as_deref()).map_err(|source| {
        ExportRunError::Export {
            run: run_dir.to_path_buf(),
            source,
        }
    })?;
    let summary = summarize(&blob).map_err(ExportRunError::Invalid)?;
    std::fs::write(blob_path, &blob).map_err(|source| ExportRunError::Io {
        path: blob_path.to_path_buf(),
        source,
    })?;
    let test_set = match test_set {
        Some((path, limit)) => {
            let samples =
                quantized_split(&config, Split::Test, limit, quant.input.into(), &device)?;
            samples.write_tks(path)?;
            Some(path.to_path_buf())
        }
        None => None,
    };
    Ok(ExportReport {
        blob_path: blob_path.to_path_buf(),
        summary,
        test_set,
    })
}

/// A split of the run's dataset, normalized as in training and quantized with `input` (the blob's
/// input quantization), in file order.
///
/// # Errors
/// Data errors, or a set too large for a `.tks` file.
pub fn quantized_split(
    config: &RunConfig,
    split: Split,
    limit: Option<usize>,
    input: Quant,
    device: &burn::prelude::Device,
) -> Result<SampleSet, ExportRunError> {
    let mut set = load_split(&config.data, split)?;
    if let Some(n) = limit {
        set.truncate(n);
    }
    // The blob's input is the student's channels only (`model.channels`).
    let keep = match &config.model {
        ModelSpec::Student(s) => s
            .channel_indices()
            .map_err(|e| RunError::Model(e.to_string()))?,
        ModelSpec::Teacher(_) => None,
    };
    let loader = eval_loader(&set, &config.data);
    let plain = device.clone().without_autodiff();
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    for batch in loader.epoch(0, 0, &plain) {
        let images = match &keep {
            Some(keep) => select_channels(batch.images, keep),
            None => batch.images,
        };
        inputs.extend(quantize_inputs(images, input));
        let targets = batch
            .targets
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        labels.extend(targets.into_iter().map(|t| t as u8));
    }
    let sample_len = inputs.len().checked_div(labels.len()).unwrap_or(0).max(1);
    Ok(SampleSet::new(sample_len, inputs, labels)?)
}
