//! "Distilling the Knowledge in a Neural Network", Hinton, Vinyals and Dean, NIPS Deep Learning
//! Workshop 2015.
//!
//! Golden vectors: `tests/golden/losses/kd.json`, from HobbitLong/RepDistiller
//! `distiller_zoo/KD.py` (`DistillKL`), float64 on the CPU.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};

use super::{Distiller, LossTerm, StepContext};
use crate::models::Output;

/// KL divergence between temperature-softened teacher and student distributions, scaled by `T²`
/// and averaged over the batch (RepDistiller `DistillKL`):
/// `T² / B · Σ_b KL(softmax(t_b/T) ‖ softmax(s_b/T))`.
///
/// # Shapes
/// - `student`, `teacher`: `[batch, classes]`
/// - output: `[1]`
pub fn kd_loss(student: Tensor<2>, teacher: Tensor<2>, temperature: f32) -> Tensor<1> {
    let [batch, _] = student.dims();
    let log_p_s = log_softmax(student / temperature, 1);
    let p_t = softmax(teacher.clone() / temperature, 1);
    let log_p_t = log_softmax(teacher / temperature, 1);
    let kl = (p_t * (log_p_t - log_p_s)).sum();
    kl * (temperature * temperature / batch as f32)
}

/// Hyper-parameters of KD. Defaults are RepDistiller's for `--distill kd` (`-r 0.1 -a 0.9`,
/// `--kd_T 4`), the same as mdistiller's `CFG.KD`: `T = 4`, CE weight γ = 0.1, KD weight α = 0.9.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdConfig {
    /// Softmax temperature (default 4, RepDistiller `--kd_T`).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the KD term (α, default 0.9, RepDistiller `-a`).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Weight of the student's cross-entropy (γ, default 0.1, RepDistiller `-r`).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
}

fn default_temperature() -> f64 {
    4.0
}
fn default_alpha() -> f64 {
    0.9
}
fn default_gamma() -> f64 {
    0.1
}

impl Default for KdConfig {
    fn default() -> Self {
        Self {
            temperature: default_temperature(),
            alpha: default_alpha(),
            gamma: default_gamma(),
        }
    }
}

impl KdConfig {
    /// Builds the (parameter-free) method.
    pub fn init(&self) -> Kd {
        Kd {
            temperature: self.temperature as f32,
            alpha: self.alpha as f32,
        }
    }
}

/// Vanilla knowledge distillation on the logits.
#[derive(Module, Debug)]
pub struct Kd {
    /// Softmax temperature.
    #[module(skip)]
    pub temperature: f32,
    /// Weight of the term.
    #[module(skip)]
    pub alpha: f32,
}

impl Distiller for Kd {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        let value = kd_loss(
            student.logits.clone(),
            teacher.logits.clone(),
            self.temperature,
        ) * self.alpha;
        vec![LossTerm { name: "kd", value }]
    }
}
