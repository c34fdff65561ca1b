//! "Decoupled Knowledge Distillation", Zhao et al., CVPR 2022: KD split into a target-class term
//! (TCKD, binary: target vs the rest) and a non-target term (NCKD, the distribution over the other
//! classes), weighted independently, with a linear warm-up of the whole term.
//!
//! Golden vectors: `tests/golden/losses/dkd.json`, mdistiller `mdistiller/distillers/DKD.py`
//! (`dkd_loss`).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use super::functional::kl_batchmean;
use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::models::Output;

/// `log [p_target, 1 − p_target]` from logits softened by `t`, `[batch, 2]`.
fn log_binary(logits: Tensor<2>, target_mask: Tensor<2>, t: f32) -> Tensor<2> {
    let p = log_softmax(logits / t, 1).exp();
    let p_target = (p.clone() * target_mask.clone()).sum_dim(1);
    let p_other = (p * (target_mask.neg() + 1.0)).sum_dim(1);
    Tensor::cat(vec![p_target, p_other], 1).log()
}

/// `α · TCKD + β · NCKD`, both `T² · KL` with batchmean reduction (no warm-up factor).
///
/// # Shapes
/// - `student`, `teacher`: `[batch, classes]`; `targets`: `[batch]`; output `[1]`
pub fn dkd_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    targets: Tensor<1, Int>,
    alpha: f32,
    beta: f32,
    temperature: f32,
) -> Tensor<1> {
    let [_, classes] = student.dims();
    let mask = targets
        .one_hot::<2>(classes)
        .float()
        .to_device(&student.device());
    let tckd = kl_batchmean(
        log_binary(teacher.clone(), mask.clone(), temperature),
        log_binary(student.clone(), mask.clone(), temperature),
    );
    // The target logit pushed down by 1000 removes it from the softmax (mdistiller's trick).
    let suppress = mask * 1000.0;
    let nckd = kl_batchmean(
        log_softmax(teacher / temperature - suppress.clone(), 1),
        log_softmax(student / temperature - suppress, 1),
    );
    let t2 = temperature * temperature;
    tckd * (alpha * t2) + nckd * (beta * t2)
}

/// Hyper-parameters of DKD. Defaults: mdistiller's CIFAR-100 configs (`α = 1`, `β = 8`, `T = 4`,
/// warm-up 20 epochs, CE weight 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkdConfig {
    /// Weight of the target-class term (default 1).
    pub alpha: f64,
    /// Weight of the non-target term (default 8).
    pub beta: f64,
    /// Softmax temperature (default 4).
    pub temperature: f64,
    /// Epochs over which the term ramps up linearly (default 20; 0 = no warm-up).
    pub warmup_epochs: usize,
}

impl Default for DkdConfig {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            beta: 8.0,
            temperature: 4.0,
            warmup_epochs: 20,
        }
    }
}

impl DkdConfig {
    /// Builds the (parameter-free) method.
    ///
    /// # Errors
    /// The temperature is not positive.
    pub fn init(&self, _student: &TapShapes, _teacher: &TapShapes) -> Result<Dkd, String> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "dkd.temperature must be > 0, got {}",
                self.temperature
            ));
        }
        Ok(Dkd {
            alpha: self.alpha as f32,
            beta: self.beta as f32,
            temperature: self.temperature as f32,
            warmup_epochs: self.warmup_epochs,
        })
    }
}

/// Decoupled KD (no trainable parameters).
#[derive(Module, Debug)]
pub struct Dkd {
    #[module(skip)]
    alpha: f32,
    #[module(skip)]
    beta: f32,
    #[module(skip)]
    temperature: f32,
    #[module(skip)]
    warmup_epochs: usize,
}

impl Distiller for Dkd {
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        // mdistiller counts epochs from 1: min(epoch / warmup, 1).
        let ramp = if self.warmup_epochs == 0 {
            1.0
        } else {
            ((ctx.epoch + 1) as f32 / self.warmup_epochs as f32).min(1.0)
        };
        let value = dkd_loss(
            student.logits.clone(),
            teacher.logits.clone(),
            ctx.targets.clone(),
            self.alpha,
            self.beta,
            self.temperature,
        ) * ramp;
        vec![LossTerm { name: "dkd", value }]
    }
}
