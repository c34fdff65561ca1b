//! Learning-rate schedules as pure functions of the position in training.
//!
//! A schedule here holds no state: the rate of a step is computed from `(epoch, step in epoch)`
//! alone, so a resumed run gets exactly the rates an uninterrupted run would, with nothing to save.
//!
//! ```
//! use tinykd::train::{Granularity, ScheduleConfig, ScheduleKind};
//! let cosine = ScheduleConfig {
//!     kind: ScheduleKind::Cosine, per: Granularity::Epoch, ..Default::default()
//! };
//! // 10 epochs: full rate at epoch 0, half way down at epoch 5.
//! assert_eq!(cosine.lr(0.1, 0, 0, 100, 10), 0.1);
//! assert!((cosine.lr(0.1, 5, 37, 100, 10) - 0.05).abs() < 1e-12);
//! // Decay by 10 every 3 epochs: epoch 6 runs at 1/100 of the base rate.
//! let step = ScheduleConfig {
//!     kind: ScheduleKind::Step, per: Granularity::Epoch, step_size: 3, gamma: 0.1, ..Default::default()
//! };
//! assert!((step.lr(1.0, 6, 99, 100, 10) - 0.01).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// The shape of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `step_size` units (PyTorch `StepLR`).
    Step,
    /// Cosine annealing from the base rate to `min_lr` over the run (PyTorch
    /// `CosineAnnealingLR` with `T_max` = the whole run, no restarts).
    Cosine,
}

/// How often the rate changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Once per epoch (the unit of `step_size` is epochs).
    Epoch,
    /// Every optimizer step (the unit of `step_size` is steps).
    Step,
}

/// Learning-rate schedule settings (`[schedule]` in a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Shape (default `cosine`).
    pub kind: ScheduleKind,
    /// Update granularity (default `step`).
    pub per: Granularity,
    /// `step` only: units between decays (default 30, PyTorch ImageNet recipe in epochs).
    pub step_size: usize,
    /// `step` only: decay factor (default 0.1).
    pub gamma: f64,
    /// `cosine` only: final rate (default 0).
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Cosine,
            per: Granularity::Step,
            step_size: 30,
            gamma: 0.1,
            min_lr: 0.0,
        }
    }
}

impl ScheduleConfig {
    /// Checks the fields the chosen kind uses; `base_lr` is the optimizer's rate.
    ///
    /// # Errors
    /// `(field, reason)` for the first bad field.
    pub fn validate(&self, base_lr: f64) -> Result<(), (&'static str, String)> {
        match self.kind {
            ScheduleKind::Constant => {}
            ScheduleKind::Step => {
                if self.step_size == 0 {
                    return Err(("step_size", "must be at least 1".into()));
                }
                if !(self.gamma.is_finite() && self.gamma > 0.0 && self.gamma <= 1.0) {
                    return Err(("gamma", format!("must be in (0, 1], got {}", self.gamma)));
                }
            }
            ScheduleKind::Cosine => {
                if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= base_lr) {
                    return Err((
                        "min_lr",
                        format!("must be in [0, optim.lr = {base_lr}], got {}", self.min_lr),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rate of step `step_in_epoch` of epoch `epoch` (both zero-based) in a run of `epochs`
    /// epochs of `steps_per_epoch` steps each.
    pub fn lr(
        &self,
        base_lr: f64,
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
        epochs: usize,
    ) -> f64 {
        let (t, total) = match self.per {
            Granularity::Epoch => (epoch, epochs),
            Granularity::Step => (
                epoch * steps_per_epoch + step_in_epoch,
                epochs * steps_per_epoch,
            ),
        };
        match self.kind {
            ScheduleKind::Constant => base_lr,
            ScheduleKind::Step => {
                let decays = (t / self.step_size.max(1)) as i32;
                base_lr * self.gamma.powi(decays)
            }
            ScheduleKind::Cosine => {
                let frac = t as f64 / total.max(1) as f64;
                self.min_lr
                    + (base_lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_step_cosine_decays_within_an_epoch() {
        let c = ScheduleConfig::default();
        let first = c.lr(0.1, 0, 0, 10, 2);
        let later = c.lr(0.1, 0, 5, 10, 2);
        assert_eq!(first, 0.1);
        assert!(later < first);
        // Half way through the run (step 10 of 20).
        assert!((c.lr(0.1, 1, 0, 10, 2) - 0.05).abs() < 1e-12);
        // Never below min_lr.
        let m = ScheduleConfig { min_lr: 0.01, ..c };
        assert!(m.lr(0.1, 1, 9, 10, 2) > 0.01);
    }

    #[test]
    fn step_per_step_counts_steps() {
        let s = ScheduleConfig {
            kind: ScheduleKind::Step,
            per: Granularity::Step,
            step_size: 15,
            gamma: 0.5,
            ..Default::default()
        };
        assert_eq!(s.lr(1.0, 1, 4, 10, 3), 1.0); // step 14
        assert_eq!(s.lr(1.0, 1, 5, 10, 3), 0.5); // step 15
    }

    #[test]
    fn validation_names_the_field() {
        let s = ScheduleConfig {
            kind: ScheduleKind::Step,
            step_size: 0,
            ..Default::default()
        };
        assert_eq!(s.validate(0.1).unwrap_err().0, "step_size");
        let c = ScheduleConfig {
            min_lr: 1.0,
            ..Default::default()
        };
        assert_eq!(c.validate(0.1).unwrap_err().0, "min_lr");
        assert!(ScheduleConfig::default().validate(0.1).is_ok());
    }
}
