//! Similarity-keeping KD (SK-KD), Huang, Chen and Wei, "Enhancing Low-Density EEG-Based
//! Brain-Computer Interfacing with Similarity-Keeping Knowledge Distillation" (IEEE TETCI; arXiv
//! 2212.03329): a student that sees a low-density subset of the sensors keeps the inter-sample
//! similarity of a teacher that sees all of them.
//!
//! The teacher and the student see the *same* windows of a batch, in two channel configurations
//! (the student's `model.channels`), so their batch similarity matrices are comparable entry for
//! entry. What the paper transfers is "the inter-sample similarity" of a late representation; its
//! method section is not available to us (no code was published), so the loss follows the form
//! the paper builds on and names as its relative, similarity-preserving KD (Tung and Mori), taken
//! at the penultimate embedding (the pooled features the classifier reads) rather than at a
//! feature map:
//!
//! `L_SK = ‖normalize(F_t F_tᵀ) − normalize(F_s F_sᵀ)‖²_F / B²`, rows L2-normalised,
//!
//! with `F = [B, d]` embeddings (the two widths may differ: only `B × B` matrices are compared).
//! `form = "cosine"` gives the variant of the same lab's follow-up (MUSE): `1 − mean_i cos(G_t[i],
//! G_s[i])` over rows of the cosine-similarity matrices. Both are parameter-free.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::l2_normalize;
use super::sp::sp_loss;
use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::models::Output;

/// How the two similarity matrices are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SkForm {
    /// Squared Frobenius distance of the row-normalised Gram matrices, `/ B²` (SP's form).
    #[default]
    Sp,
    /// `1 − mean_i cos(G_t[i], G_s[i])` of the cosine-similarity matrices (MUSE's form).
    Cosine,
}

/// Hyper-parameters of SK-KD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkConfig {
    /// Weight of the term (β; default 3000, SP's weight for the same `/ B²` normalisation; use
    /// about 1 with `form = "cosine"`, whose value lies in [0, 2]).
    pub beta: f64,
    /// The comparison (default `sp`).
    pub form: SkForm,
}

impl Default for SkConfig {
    fn default() -> Self {
        Self {
            beta: 3000.0,
            form: SkForm::Sp,
        }
    }
}

impl SkConfig {
    /// Checks that both networks have an embedding.
    ///
    /// # Errors
    /// An empty embedding.
    pub fn init(&self, student: &TapShapes, teacher: &TapShapes) -> Result<Sk, String> {
        if student.embedding == 0 || teacher.embedding == 0 {
            return Err("SK-KD compares the penultimate embeddings: both networks need one".into());
        }
        Ok(Sk {
            weight: self.beta as f32,
            form: self.form,
        })
    }
}

/// `1 − mean_i cos(G_t[i], G_s[i])`, `G = cos-similarity matrix of the rows of F`.
///
/// # Shapes
/// - `student`: `[batch, d_s]`, `teacher`: `[batch, d_t]`; output `[1]`
pub fn sk_cosine_loss(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let gram = |f: Tensor<2>| {
        let f = l2_normalize(f, 1);
        l2_normalize(f.clone().matmul(f.transpose()), 1)
    };
    let rows_cos = (gram(teacher) * gram(student)).sum_dim(1);
    rows_cos.mean().neg() + 1.0
}

/// SK-KD (no trainable parameters).
#[derive(Module, Debug)]
pub struct Sk {
    #[module(skip)]
    weight: f32,
    #[module(skip)]
    form: SkForm,
}

impl Distiller for Sk {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        let (s, t) = (student.embedding.clone(), teacher.embedding.clone());
        let value = match self.form {
            SkForm::Sp => sp_loss(s, t),
            SkForm::Cosine => sk_cosine_loss(s, t),
        };
        vec![LossTerm {
            name: "sk",
            value: value * self.weight,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(rows: &[[f32; 3]]) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &Device::flex())
    }

    #[test]
    fn same_similarity_costs_nothing_whatever_the_scale() {
        let a = t2(&[[1.0, 0.0, 2.0], [0.5, 1.0, 0.0], [0.0, 3.0, 1.0]]);
        // Scaling every embedding by one factor keeps every row-normalised similarity.
        let b = a.clone() * 7.0;
        let sp: f32 = sp_loss(a.clone(), b.clone()).into_scalar();
        let cos: f32 = sk_cosine_loss(a, b).into_scalar();
        assert!(sp.abs() < 1e-6 && cos.abs() < 1e-6, "sp {sp}, cos {cos}");
    }

    #[test]
    fn a_different_similarity_costs_something() {
        let a = t2(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let b = t2(&[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let sp: f32 = sp_loss(a.clone(), b.clone()).into_scalar();
        let cos: f32 = sk_cosine_loss(a, b).into_scalar();
        // Teacher rows 0 and 1 are identical (Gram rows [1,1,0]/√2), the student's orthogonal.
        let want_sp = 2.0 * ((1.0 - 1.0 / 2f32.sqrt()).powi(2) + 0.5) / 9.0;
        assert!((sp - want_sp).abs() < 1e-5, "sp {sp} vs {want_sp}");
        let want_cos = 1.0 - (2.0 / 2f32.sqrt() + 1.0) / 3.0;
        assert!((cos - want_cos).abs() < 1e-5, "cos {cos} vs {want_cos}");
    }
}
