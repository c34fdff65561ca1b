//! "Learning Deep Representations with Probabilistic Knowledge Transfer", Passalis and Tefas,
//! ECCV 2018: the student matches the teacher's conditional distribution of cosine similarities
//! between the batch's embeddings.
//!
//! Golden vectors: `tests/golden/losses/pkt.json`, RepDistiller `distiller_zoo/PKT.py`
//! (`cosine_similarity_loss`, ε = 1e-7).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::models::Output;

const EPS: f32 = 1e-7;

/// Row-stochastic cosine-kernel matrix `p_{j|i} = K_ij / Σ_k K_ik`, `K = (cos + 1) / 2`.
fn conditional_similarities(f: Tensor<2>) -> Tensor<2> {
    let norm = f.clone().powi_scalar(2).sum_dim(1).sqrt();
    let unit = f / (norm + EPS);
    let k = (unit.clone().matmul(unit.transpose()) + 1.0) / 2.0;
    k.clone() / k.sum_dim(1)
}

/// `mean_{i,j} p^t_{j|i} · log((p^t_{j|i} + ε) / (p^s_{j|i} + ε))`.
///
/// # Shapes
/// - `student`: `[batch, ds]`, `teacher`: `[batch, dt]`; output `[1]`
pub fn pkt_loss(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let ps = conditional_similarities(student);
    let pt = conditional_similarities(teacher);
    (pt.clone() * ((pt + EPS).log() - (ps + EPS).log())).mean()
}

/// Hyper-parameters of PKT. Default: RepDistiller (`-b 30000`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PktConfig {
    /// Weight of the term (β, default 30000).
    pub beta: f64,
}

impl Default for PktConfig {
    fn default() -> Self {
        Self { beta: 30000.0 }
    }
}

impl PktConfig {
    /// Builds the (parameter-free) method.
    pub fn init(&self, _student: &TapShapes, _teacher: &TapShapes) -> Result<Pkt, String> {
        Ok(Pkt {
            weight: self.beta as f32,
        })
    }
}

/// Probabilistic knowledge transfer on the penultimate embeddings (no trainable parameters).
#[derive(Module, Debug)]
pub struct Pkt {
    #[module(skip)]
    weight: f32,
}

impl Distiller for Pkt {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        let value = pkt_loss(student.embedding.clone(), teacher.embedding.clone()) * self.weight;
        vec![LossTerm { name: "pkt", value }]
    }
}
