//! Training telemetry: `metrics.jsonl` in the run directory and the terminal progress bar.
//!
//! `metrics.jsonl` gets one JSON object per line, appended and flushed as it happens, so a crashed
//! or still-running job can be inspected with `tail -f` or `jq`. Every line has a `"kind"`:
//! - `"step"`: every `log_every` optimizer steps: `epoch`, `step`, `lr`, `loss`, `ce` and each
//!   distillation term by name;
//! - `"epoch"`: after each epoch: the same means over the epoch plus `train_accuracy`,
//!   `test_accuracy`, `test_loss`, `images_per_sec` and `seconds`;
//! - `"resume"`: a run continued from a checkpoint (`from_epoch`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::TrainError;

/// Appends JSON lines to `<run>/metrics.jsonl`.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens (creating if needed) `<run_dir>/metrics.jsonl` for appending.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file.
    pub fn open(run_dir: &Path) -> Result<Self, TrainError> {
        let path = run_dir.join("metrics.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| TrainError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Self { path, file })
    }

    /// Appends one record as a line and flushes it.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), TrainError> {
        let mut line = serde_json::to_string(record).map_err(|e| TrainError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| TrainError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// A per-epoch progress bar on stderr, or nothing when `visible` is false.
pub fn epoch_bar(visible: bool, epoch: usize, epochs: usize, steps: usize) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
    bar
}
