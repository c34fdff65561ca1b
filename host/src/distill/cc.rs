//! "Correlation Congruence for Knowledge Distillation", Peng et al., ICCV 2019, in the form the
//! authors gave RepDistiller: both embeddings go through a trainable linear map to 128-d, and the
//! loss is the correlation of consecutive samples' absolute differences.
//!
//! Golden vectors: `tests/golden/losses/cc.json`, RepDistiller `distiller_zoo/CC.py`
//! (`Correlation`), on already-embedded features.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::models::Output;

/// `mean_i Σ_d δ_i δ_{i+1}` with `δ = |e_s − e_t|` (RepDistiller `Correlation`).
///
/// # Shapes
/// - `student`, `teacher`: `[batch, dim]` embeddings; output `[1]`
pub fn cc_loss(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let [b, d] = student.dims();
    let delta = (student - teacher).abs();
    let head = delta.clone().slice([0..b - 1, 0..d]);
    let tail = delta.slice([1..b, 0..d]);
    (head * tail).sum_dim(1).mean()
}

/// Hyper-parameters of CC. Defaults: RepDistiller (`-b 0.02`, `--feat_dim 128`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CcConfig {
    /// Weight of the term (β, default 0.02).
    pub beta: f64,
    /// Width of both linear embeddings (default 128).
    pub feat_dim: usize,
}

impl Default for CcConfig {
    fn default() -> Self {
        Self {
            beta: 0.02,
            feat_dim: 128,
        }
    }
}

impl CcConfig {
    /// Builds the two embeddings.
    ///
    /// # Errors
    /// `feat_dim` is zero.
    pub fn init(
        &self,
        student: &TapShapes,
        teacher: &TapShapes,
        device: &Device,
    ) -> Result<Cc, String> {
        if self.feat_dim == 0 {
            return Err("cc.feat_dim must be at least 1".into());
        }
        Ok(Cc {
            embed_s: LinearConfig::new(student.embedding, self.feat_dim).init(device),
            embed_t: LinearConfig::new(teacher.embedding, self.feat_dim).init(device),
            weight: self.beta as f32,
        })
    }
}

/// Correlation congruence with its two trainable embeddings (RepDistiller `LinearEmbed`).
#[derive(Module, Debug)]
pub struct Cc {
    embed_s: Linear,
    embed_t: Linear,
    #[module(skip)]
    weight: f32,
}

impl Distiller for Cc {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        let value = cc_loss(
            self.embed_s.forward(student.embedding.clone()),
            self.embed_t.forward(teacher.embedding.clone()),
        ) * self.weight;
        vec![LossTerm { name: "cc", value }]
    }
}
