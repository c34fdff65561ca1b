//! "Distilling the Knowledge in a Neural Network", Hinton, Vinyals and Dean, NIPS Deep Learning
//! Workshop 2015.
//!
//! Golden vectors: `tests/golden/losses/kd.json`, from HobbitLong/RepDistiller
//! `distiller_zoo/KD.py` (`DistillKL`), float64 on the CPU.
//!
//! KD is the `α · KD` term of every recipe ([`super::DistillSpec`]): `method = "kd"` is that term
//! alone, and any other method can add it (CRD+KD is `alpha = 1` with `method = "crd"`).

use burn::prelude::*;

use super::functional::softened_kl;
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
    softened_kl(student, teacher, temperature)
}

/// The weighted KD term on the logits (no trainable parameters).
#[derive(Module, Debug)]
pub struct Kd {
    /// Softmax temperature.
    #[module(skip)]
    pub temperature: f32,
    /// Weight of the term (α).
    #[module(skip)]
    pub alpha: f32,
}

impl Kd {
    /// KD at `temperature` weighted by `alpha`.
    pub fn new(temperature: f32, alpha: f32) -> Self {
        Self { temperature, alpha }
    }
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
