//! Optimizer settings and their translation to burn optimizers.
//!
//! The defaults are PyTorch's where burn's differ, because recipes in the distillation
//! literature are written for PyTorch: Adam's `eps` is 1e-8 (burn: 1e-5), SGD momentum has no
//! dampening (burn's `MomentumConfig` default: 0.1).

use burn::optim::decay::WeightDecayConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use serde::{Deserialize, Serialize};

/// Which update rule to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (optionally Nesterov) momentum and L2 weight decay.
    Sgd,
    /// Adam with L2 weight decay added to the gradient (PyTorch `Adam(weight_decay=…)`).
    Adam,
    /// Adam with decoupled weight decay (PyTorch `AdamW`).
    Adamw,
}

/// Optimizer settings (`[optim]` in a run config). Fields that the chosen `kind` does not use are
/// ignored, so switching `kind` on the command line needs no other change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Update rule (default `sgd`).
    pub kind: OptimizerKind,
    /// Base learning rate, before the schedule (default 0.1, the ResNet recipe for SGD; use about
    /// 1e-3 for Adam).
    pub lr: f64,
    /// SGD momentum (default 0.9).
    pub momentum: f64,
    /// SGD Nesterov momentum (default true).
    pub nesterov: bool,
    /// L2 penalty (`sgd`, `adam`) or decoupled decay (`adamw`) (default 5e-4).
    pub weight_decay: f64,
    /// Adam β₁ (default 0.9).
    pub beta1: f64,
    /// Adam β₂ (default 0.999).
    pub beta2: f64,
    /// Adam ε (default 1e-8, PyTorch's; burn's own default is 1e-5).
    pub eps: f64,
    /// Clip each parameter's gradient to this L2 norm (default: no clipping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_clip_norm: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            grad_clip_norm: None,
        }
    }
}

impl OptimConfig {
    /// Checks every field the chosen kind uses.
    ///
    /// # Errors
    /// `(field, reason)` for the first bad field, the field named as in the config file.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(("lr", format!("must be a positive number, got {}", self.lr)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err((
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            ));
        }
        if let Some(c) = self.grad_clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(("grad_clip_norm", format!("must be positive, got {c}")));
            }
        }
        match self.kind {
            OptimizerKind::Sgd => {
                if !(0.0..1.0).contains(&self.momentum) {
                    return Err((
                        "momentum",
                        format!("must be in [0, 1), got {}", self.momentum),
                    ));
                }
                if self.nesterov && self.momentum == 0.0 {
                    return Err(("nesterov", "needs a momentum > 0".into()));
                }
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err((name, format!("must be in [0, 1), got {b}")));
                    }
                }
                if !(self.eps.is_finite() && self.eps > 0.0) {
                    return Err(("eps", format!("must be positive, got {}", self.eps)));
                }
            }
        }
        Ok(())
    }

    /// Builds the burn optimizer. Call [`OptimConfig::validate`] first.
    pub fn init(&self) -> ModuleOptimizer {
        let clip = self
            .grad_clip_norm
            .map(|c| GradientClippingConfig::Norm(c as f32));
        let decay =
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.kind {
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum((self.momentum > 0.0).then_some(MomentumConfig {
                    momentum: self.momentum,
                    dampening: 0.0,
                    nesterov: self.nesterov,
                }))
                .with_weight_decay(decay)
                .with_gradient_clipping(clip)
                .init(),
            OptimizerKind::Adam => AdamConfig::new()
                .with_beta_1(self.beta1 as f32)
                .with_beta_2(self.beta2 as f32)
                .with_epsilon(self.eps as f32)
                .with_weight_decay(decay)
                .with_grad_clipping(clip)
                .init(),
            OptimizerKind::Adamw => AdamWConfig::new()
                .with_beta_1(self.beta1 as f32)
                .with_beta_2(self.beta2 as f32)
                .with_epsilon(self.eps as f32)
                .with_weight_decay(self.weight_decay as f32)
                .with_grad_clipping(clip)
                .init(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_field() {
        assert_eq!(OptimConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut OptimConfig)| {
            let mut c = OptimConfig::default();
            f(&mut c);
            c.validate().unwrap_err().0
        };
        assert_eq!(bad(|c| c.lr = 0.0), "lr");
        assert_eq!(bad(|c| c.lr = f64::NAN), "lr");
        assert_eq!(bad(|c| c.momentum = 1.0), "momentum");
        assert_eq!(bad(|c| c.weight_decay = -1.0), "weight_decay");
        assert_eq!(bad(|c| c.grad_clip_norm = Some(0.0)), "grad_clip_norm");
        assert_eq!(
            bad(|c| {
                c.kind = OptimizerKind::Adam;
                c.eps = 0.0
            }),
            "eps"
        );
        assert_eq!(
            bad(|c| {
                c.kind = OptimizerKind::Adamw;
                c.beta2 = 1.0
            }),
            "beta2"
        );
        // Adam ignores SGD's momentum.
        let mut adam = OptimConfig {
            kind: OptimizerKind::Adam,
            ..OptimConfig::default()
        };
        adam.momentum = 5.0;
        assert_eq!(adam.validate(), Ok(()));
    }
}
