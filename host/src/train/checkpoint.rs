//! Checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! One directory per completed epoch, `<run>/checkpoints/epoch-NNNN/`, holding
//! - `trainee.bpk`: the model and the method's auxiliary modules (burnpack; parameter ids are kept,
//!   which is what ties the optimizer state back to its parameters), BatchNorm running statistics
//!   included;
//! - `optim.bpk`: the optimizer state (momentum / Adam moments and step counts);
//! - `state.json`: [`CheckpointState`] (epochs done, global step, seed, hook state).
//!
//! No random-generator state is stored because none is carried between epochs: shuffling,
//! augmentation and the device generator are re-seeded from `(seed, epoch)` at the start of every
//! epoch (see [`crate::data::derive_seed`]).
//!
//! A checkpoint is written into a hidden temporary directory and renamed into place, and
//! `state.json` is written last, so a crash while saving leaves the previous checkpoint intact and
//! a directory without `state.json` is never resumed from.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::TrainError;

/// Version of the checkpoint layout, bumped on any incompatible change.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// The scalar part of a checkpoint (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// [`CHECKPOINT_FORMAT`] of the writer.
    pub format: u32,
    /// Epochs completed; training resumes with epoch index `epochs_done`.
    pub epochs_done: usize,
    /// Optimizer steps taken so far.
    pub global_step: usize,
    /// The run's seed (a resumed run must use the same one).
    pub seed: u64,
    /// Test accuracy after the last completed epoch, if evaluated.
    pub test_accuracy: Option<f64>,
    /// State of the epoch hook ([`super::EpochHook::state`]).
    pub hook: serde_json::Value,
}

/// The checkpoint directory of a run.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn epoch_dir(run_dir: &Path, epochs_done: usize) -> PathBuf {
    checkpoints_dir(run_dir).join(format!("epoch-{epochs_done:04}"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn record_err(path: &Path) -> impl FnOnce(burn::store::RecordError) -> TrainError + '_ {
    move |e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The completed checkpoints of a run, oldest first, as `(epochs_done, directory)`.
///
/// # Errors
/// [`TrainError::Io`] if the checkpoint directory exists but cannot be listed.
pub fn list(run_dir: &Path) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let dir = checkpoints_dir(run_dir);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
        let entry = entry.map_err(io_err(&dir))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("epoch-"))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().join("state.json").is_file() {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the checkpoint after `state.epochs_done` epochs and keeps only the newest `keep`
/// (at least one).
///
/// # Errors
/// [`TrainError::Io`] / [`TrainError::Checkpoint`] naming the file that could not be written.
pub fn save<M: Module>(
    run_dir: &Path,
    trainee: &M,
    optim: &ModuleOptimizer,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf, TrainError> {
    let root = checkpoints_dir(run_dir);
    std::fs::create_dir_all(&root).map_err(io_err(&root))?;
    let tmp = root.join(format!(".tmp-epoch-{:04}", state.epochs_done));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;

    let model_path = tmp.join("trainee.bpk");
    trainee
        .clone()
        .save_file(&model_path)
        .map_err(record_err(&model_path))?;
    let optim_path = tmp.join("optim.bpk");
    optim.save(&optim_path).map_err(record_err(&optim_path))?;
    let state_path = tmp.join("state.json");
    let json = serde_json::to_string_pretty(state).map_err(|e| TrainError::Checkpoint {
        path: state_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&state_path, json).map_err(io_err(&state_path))?;

    let dest = epoch_dir(run_dir, state.epochs_done);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(io_err(&dest))?;
    }
    std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;

    let all = list(run_dir)?;
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, old) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    Ok(dest)
}

/// Loads the newest checkpoint of `run_dir` into `trainee` and `optim` (which must be built from
/// the same configuration as the run that wrote it).
///
/// # Errors
/// [`TrainError::NoCheckpoint`] when there is none; [`TrainError::Checkpoint`] when a file is
/// unreadable, from another layout version, or does not fit the module.
pub fn load_latest<M: Module>(
    run_dir: &Path,
    trainee: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, CheckpointState), TrainError> {
    let Some((_, dir)) = list(run_dir)?.pop() else {
        return Err(TrainError::NoCheckpoint {
            dir: run_dir.to_path_buf(),
        });
    };
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
    if state.format != CHECKPOINT_FORMAT {
        return Err(TrainError::Checkpoint {
            path: state_path,
            reason: format!(
                "checkpoint format {} is not the supported {CHECKPOINT_FORMAT}",
                state.format
            ),
        });
    }
    let model_path = dir.join("trainee.bpk");
    let trainee = trainee
        .try_load_file(&model_path)
        .map_err(record_err(&model_path))?;
    let optim_path = dir.join("optim.bpk");
    let optim = optim.load(&optim_path).map_err(record_err(&optim_path))?;
    Ok((trainee, optim, state))
}
