//! Quantization-aware training as an epoch hook of the trainer.
//!
//! Before the first epoch, [`QatHook`] optionally replaces the freshly initialised student with the
//! weights of an already trained one (so QAT fine-tunes it), calibrates the activation ranges on
//! a few unaugmented training batches, and switches the student's int8 simulation on. The ranges
//! are the hook's state: every checkpoint stores them, so a resumed QAT run continues with exactly
//! the ranges it started with, and the exporter later writes the same ones into the blob.

use std::path::PathBuf;

use burn::module::Module;
use burn::prelude::Device;

use super::{calibrate, StudentQuant};
use crate::data::{Augmentation, Loader, LoaderConfig};
use crate::models::student::Student;
use crate::train::{EpochHook, HookContext};

/// Switches a student to quantization-aware training before its first epoch.
#[derive(Debug, Clone)]
pub struct QatHook {
    /// Weights (`model.bpk`) to start from instead of the seed's initialisation.
    pub init_from: Option<PathBuf>,
    /// Training batches used to calibrate the activation ranges.
    pub calibration_batches: usize,
    /// The calibrated quantization, once decided.
    pub quant: Option<StudentQuant>,
}

impl QatHook {
    /// A hook that starts from `init_from` (if given) and calibrates on `calibration_batches`.
    pub fn new(init_from: Option<PathBuf>, calibration_batches: usize) -> Self {
        Self {
            init_from,
            calibration_batches: calibration_batches.max(1),
            quant: None,
        }
    }
}

/// Calibrates `student` on the first `batches` batches of `train` in file order, without
/// augmentation, on `device` without autodiff.
pub fn calibrate_on(
    student: &Student,
    train: &Loader,
    batches: usize,
    device: &Device,
) -> StudentQuant {
    let config = LoaderConfig {
        shuffle: false,
        augmentation: Augmentation::default(),
        ..*train.config()
    };
    let loader = Loader::new(train.dataset(), config);
    let plain = device.clone().without_autodiff();
    calibrate(
        student,
        loader.epoch(0, 0, &plain).take(batches).map(|b| b.images),
    )
}

impl EpochHook<Student> for QatHook {
    fn before_epoch(
        &mut self,
        epoch: usize,
        model: Student,
        ctx: &HookContext,
    ) -> Result<Student, String> {
        let mut model = model;
        if epoch == 0 {
            if let Some(path) = &self.init_from {
                model = model
                    .try_load_file(path)
                    .map_err(|e| format!("cannot load student weights {}: {e}", path.display()))?;
            }
        }
        let quant = match &self.quant {
            Some(q) => q.clone(),
            None => {
                let q = calibrate_on(&model, ctx.train, self.calibration_batches, ctx.device);
                self.quant = Some(q.clone());
                q
            }
        };
        Ok(model.with_quant(Some(quant)))
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.quant).unwrap_or(serde_json::Value::Null)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), String> {
        self.quant = serde_json::from_value(state)
            .map_err(|e| format!("bad QAT state in checkpoint: {e}"))?;
        Ok(())
    }
}
