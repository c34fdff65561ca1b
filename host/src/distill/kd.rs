//! "Distilling the Knowledge in a Neural Network", Hinton, Vinyals and Dean, NIPS Deep Learning
//! Workshop 2015.
//!
//! Golden vectors: `tests/golden/losses/kd.json`, from HobbitLong/RepDistiller
//! `distiller_zoo/KD.py` (`DistillKL`), float64 on the CPU.
//!
//! KD is the `α · KD` term of every recipe ([`super::DistillSpec`]): `method = "kd"` is that term
//! alone, and any other method can add it (CRD+KD is `alpha = 1` with `method = "crd"`).
//!
//! On a regression model (one output) a softmax is constant, so the term becomes the squared
//! error between the student's and the teacher's predictions ([`kd_regression_loss`]): the
//! teacher's output is the soft target, as in cGAN-KD's regression baselines.

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

/// The KD term of a regression head: `mean_b (s_b − t_b)²` over the single output.
///
/// # Shapes
/// - `student`, `teacher`: `[batch, 1]`
/// - output: `[1]`
pub fn kd_regression_loss(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let diff = student - teacher;
    (diff.clone() * diff).mean()
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
        let value = if student.logits.dims()[1] == 1 {
            kd_regression_loss(student.logits.clone(), teacher.logits.clone())
        } else {
            kd_loss(
                student.logits.clone(),
                teacher.logits.clone(),
                self.temperature,
            )
        } * self.alpha;
        vec![LossTerm { name: "kd", value }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_kd_is_the_squared_error_to_the_teacher() {
        let d = Device::flex();
        let s = Tensor::<2>::from_data(TensorData::new(vec![0.2f32, 0.9, 0.5], [3, 1]), &d);
        let t = Tensor::<2>::from_data(TensorData::new(vec![0.4f32, 0.6, 0.5], [3, 1]), &d);
        // (0.04 + 0.09 + 0) / 3
        let v: f32 = kd_regression_loss(s, t).into_scalar();
        assert!((v - 0.13 / 3.0).abs() < 1e-6, "{v}");
    }
}
